//! Crash: a `bazaar soak` process takes orders and is killed with SIGKILL
//! at random moments. After every kill the data directory is reopened:
//! every order the process acknowledged is there under its idempotency key
//! with the same number, and the kernel invariants hold. Then the soak
//! resumes on the same directory for the next cycle. The soak's event
//! consumer was killed as often: at the end its analytics, once caught up,
//! equal a from-scratch recomputation over the journal, so no event was
//! lost or counted twice.
//!
//! `BAZAAR_CRASH_CYCLES` sets the number of kill cycles per backend
//! (default 20) for longer runs.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use std::sync::Arc;
use std::time::Instant;

use bazaar::soak::{SOAK_ANALYTICS_CONFIG, SOAK_ANALYTICS_PLUGIN, SOAK_STORE};
use bazaar_kernel::model::{PluginId, StoreId};
use bazaar_node::consumer::{Consumers, ask, recompute};
use bazaar_node::events::EventReader;
use bazaar_node::node::{Node, NodeConfig};
use bazaar_node::plugins::{Implementation, PluginSet};
use bazaar_store::Backend;
use rand::Rng as _;

/// Kill cycles per backend in the default run.
const CYCLES_DEFAULT: usize = 20;

fn backends() -> Vec<Backend> {
    vec![
        Backend::Redb,
        #[cfg(feature = "sled")]
        Backend::Sled,
    ]
}

/// Runs the soak until a random moment after it is ready, kills it, and
/// returns the (key, order) pairs it acknowledged.
fn soak_and_kill(dir: &std::path::Path, backend: Backend) -> Vec<(String, u64)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .args(["soak", "--clients", "4", "--snapshot-every-commands", "2000", "--keep-events"])
        .args(["--backend", &backend.to_string(), "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the bazaar binary starts");
    let stdout = child.stdout.take().unwrap();
    let (ready_sender, ready) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("ready") {
                let _ = ready_sender.send(());
            }
            let mut words = line.split(' ');
            if let (Some("ack"), Some(key), Some(order)) =
                (words.next(), words.next(), words.next())
            {
                // A line cut short by the kill has no number; it was never complete.
                if let Ok(order) = order.parse() {
                    acks.push((key.to_string(), order));
                }
            }
        }
        acks
    });
    ready.recv_timeout(Duration::from_secs(120)).expect("the soak got ready");
    let delay_ms = rand::rng().random_range(20..400);
    std::thread::sleep(Duration::from_millis(delay_ms));
    child.kill().expect("SIGKILL the soak");
    child.wait().unwrap();
    reader.join().unwrap()
}

#[test]
fn every_acknowledged_order_survives_sigkill() {
    let cycles = std::env::var("BAZAAR_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CYCLES_DEFAULT);
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreId::new(SOAK_STORE).unwrap();
        let mut acknowledged = Vec::new();
        for cycle in 0..cycles {
            let acks = soak_and_kill(dir.path(), backend);
            acknowledged.extend(acks);
            let node = Node::open(
                NodeConfig { backend, ..NodeConfig::new(dir.path()) },
                PluginSet::none(),
            )
            .unwrap_or_else(|e| panic!("{backend} cycle {cycle}: reopening failed: {e}"));
            let keys: Vec<(String, u64)> = acknowledged.clone();
            let missing = node
                .read(&store, move |shard| {
                    let state = shard
                        .store(&StoreId::new(SOAK_STORE).unwrap())
                        .expect("the store was seeded");
                    keys.into_iter()
                        .filter(|(key, order)| state.order_for_idempotency_key(key) != Some(*order))
                        .collect::<Vec<_>>()
                })
                .unwrap();
            assert!(
                missing.is_empty(),
                "{backend} cycle {cycle}: acknowledged orders lost: {:?}",
                &missing[..missing.len().min(5)]
            );
            node.check_invariants().unwrap_or_else(|v| panic!("{backend} cycle {cycle}: {v}"));
        }
        assert!(
            acknowledged.len() > cycles,
            "{backend}: the soak acknowledged only {} orders",
            acknowledged.len()
        );
        eprintln!(
            "{backend}: {cycles} kill cycles, {} acknowledged orders all present",
            acknowledged.len()
        );
        analytics_equal_a_recomputation(dir.path(), backend);
    }
}

/// Reopens the directory with the consumer running and waits until the
/// live analytics answer exactly what a from-scratch fold of the journal's
/// events answers.
fn analytics_equal_a_recomputation(dir: &std::path::Path, backend: Backend) {
    let plugins = PluginSet::first_party_wasm().unwrap();
    let node = Arc::new(
        Node::open(
            NodeConfig { backend, keep_consumed_events: true, ..NodeConfig::new(dir) },
            plugins.clone(),
        )
        .unwrap(),
    );
    let consumers = Consumers::start(node.clone(), plugins.clone()).unwrap();
    let store = StoreId::new(SOAK_STORE).unwrap();
    let plugin = PluginId::new(SOAK_ANALYTICS_PLUGIN).unwrap();
    let view = plugins.view();
    let installed = &view.plugins[&plugin];
    let Implementation::Analytics(analytics) =
        installed.versions[installed.active.as_ref().unwrap()].as_ref()
    else {
        panic!("{SOAK_ANALYTICS_PLUGIN} is an analytics plugin")
    };
    let reader = EventReader::new(node.storage().clone());
    let config: Option<Arc<str>> = Some(SOAK_ANALYTICS_CONFIG.into());
    let shard = node.shard_of(&store);
    let expected = recompute(&reader, shard, &store, analytics, config.clone()).unwrap();
    for query in ["headline", "sell-through", "discounts", "top-skus"] {
        let want: serde_json::Value = serde_json::from_str(
            &ask(analytics, &store, config.clone(), expected.clone(), query, "{}").unwrap(),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let live: serde_json::Value =
                serde_json::from_str(&consumers.query(&store, &plugin, query, "{}").unwrap())
                    .unwrap();
            if live == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{backend} {query}: live {live} never matched the recomputation {want}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let orders = node
        .read(&store, move |shard| {
            shard.store(&StoreId::new(SOAK_STORE).unwrap()).unwrap().orders().len()
        })
        .unwrap();
    let headline: serde_json::Value =
        serde_json::from_str(&consumers.query(&store, &plugin, "headline", "{}").unwrap()).unwrap();
    assert_eq!(headline["orders_placed"], orders, "{backend}: every order counted once");
    eprintln!("{backend}: analytics over {orders} orders equal the recomputation");
}
