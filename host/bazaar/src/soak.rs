//! `bazaar soak`: places orders against a node until the process is
//! killed, printing `ack <idempotency-key> <order-number>` for every order
//! only after the journal made it durable, while the event consumer feeds
//! the store's analytics plugin. The crash test kills it with SIGKILL at
//! random moments and checks every printed order survived and the
//! analytics equal a recomputation over the journal.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use bazaar_kernel::model::{PluginId, StoreId};
use bazaar_kernel::{Command, Outcome, PluginSettings};
use bazaar_store::Backend;

use crate::load::{self, LoadPlan, LoadProgress, splitmix64};
use bazaar_node::consumer::Consumers;
use bazaar_node::node::{Node, NodeConfig, wall_clock_ms};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed;

/// The store the soak orders from.
pub const SOAK_STORE: &str = "soak-store";
/// The analytics plugin the soak store enables.
pub const SOAK_ANALYTICS_PLUGIN: &str = "analytics-live";
/// Its configuration: follow the flash-sale SKU.
pub const SOAK_ANALYTICS_CONFIG: &str = r#"{"flash_skus": ["D11-PHONE"]}"#;
/// Units of the flash-sale SKU the soak store starts with.
const SOAK_HOT_STOCK: u64 = 1_000_000;
/// Orders each client keeps in flight.
const WINDOW_PER_CLIENT: usize = 16;

/// How to run the soak.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// Data directory (reused across runs: the soak continues where it was).
    pub data_dir: PathBuf,
    /// Storage engine.
    pub backend: Backend,
    /// Concurrent clients.
    pub clients: u32,
    /// Commands between snapshots of a shard.
    pub snapshot_every_commands: u64,
    /// Keep event records after the consumer read them.
    pub keep_events: bool,
}

/// Runs until killed (or until the node fails).
pub fn run(options: SoakOptions) -> anyhow::Result<()> {
    let plugins = PluginSet::first_party_wasm().context("loading the first-party plugins")?;
    let config = NodeConfig {
        backend: options.backend,
        snapshot_every_commands: options.snapshot_every_commands,
        keep_consumed_events: options.keep_events,
        ..NodeConfig::new(&options.data_dir)
    };
    let node = Arc::new(Node::open(config, plugins.clone())?);
    let store = StoreId::new(SOAK_STORE)?;
    seed::seed_flagship_store(&node, &store, SOAK_HOT_STOCK)?;
    // The live dashboard's plugin follows the store, so every kill also
    // interrupts the event consumer somewhere in its stream.
    node.execute(Command::ConfigurePlugin {
        store: store.clone(),
        plugin: PluginId::new(SOAK_ANALYTICS_PLUGIN)?,
        config_json: Some(SOAK_ANALYTICS_CONFIG.into()),
        settings: PluginSettings::default(),
    })?;
    let _consumers = Consumers::start(node.clone(), plugins.clone())?;
    // Keys must never repeat across runs on the same directory.
    let run = format!("{}-{}", wall_clock_ms(), std::process::id());
    println!("ready {run}");
    std::io::stdout().flush()?;
    let source_store = store.clone();
    let source_run = run.clone();
    let plan = LoadPlan {
        clients: options.clients,
        window_per_client: WINDOW_PER_CLIENT,
        attempts: u64::MAX,
        source: Arc::new(move |attempt| {
            let r = splitmix64(attempt);
            let mut lines = vec![(
                seed::ordinary_sku((r % seed::ORDINARY_SKUS as u64) as usize),
                1 + (r >> 32) as u32 % 3,
            )];
            if r.is_multiple_of(7) {
                lines.push((bazaar_kernel::model::Sku::new(seed::HOT_SKU).expect("valid"), 1));
            }
            let key = format!("{source_run}-{attempt}");
            (source_store.clone(), seed::order_request(r >> 16, lines, None, Some(key)))
        }),
        on_ack: Some(Arc::new(|_, request, outcome| {
            if let (Some(key), Outcome::OrderPlaced { order, .. }) =
                (&request.idempotency_key, outcome)
            {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "ack {key} {order}");
                let _ = out.flush();
            }
        })),
    };
    let progress = Arc::new(LoadProgress::default());
    load::drive(&node, &plan, &progress);
    anyhow::bail!("the soak stopped: the node refused further work")
}
