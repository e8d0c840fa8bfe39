//! The data platform's benchmarks: checkout throughput with the live
//! analytics plugin consuming every store's events against none, and how
//! fresh the analytics are: the time from an order's acknowledgement to
//! the consumer having folded its events in; and checkout beside a
//! deliberately slow analytics plugin, whose lag grows instead. Prints
//! `RESULT` lines for BENCHMARKS.md.
//!
//! Run with `cargo bench -p bazaar-node --bench events`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bazaar_kernel::model::{PluginId, StoreId};
use bazaar_kernel::{Command, PluginSettings};
use bazaar_node::consumer::Consumers;
use bazaar_node::node::{Node, NodeConfig};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed;
use common::{drive, median};

/// Orders per throughput run.
const ORDERS_PER_RUN: u64 = 150_000;
/// Rounds of the comparison; medians are reported and the two sides
/// alternate, so machine noise weighs on both alike.
const ROUNDS: usize = 3;
/// Stores the orders spread over.
const STORES: usize = 8;
/// Freshness samples.
const FRESHNESS_SAMPLES: usize = 200;
const ANALYTICS: &str = "analytics-live";
/// A consumer far slower than the event rate: about 10 µs of work per
/// event, so a full batch runs into its deadline and the consumer goes on
/// in smaller ones.
const SLOW_CONFIG: &str = r#"{"behaviour": "spin", "spin_iterations": 20000}"#;

fn main() -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cores} cores, {}", std::env::consts::ARCH);
    let dir = tempfile::tempdir()?;
    let plugins = PluginSet::first_party_wasm()?;
    let node = Arc::new(Node::open(NodeConfig::new(dir.path()), plugins.clone())?);
    plugins.add_artifact(&bazaar_artifacts::HOSTILE_ANALYTICS)?;
    let plain = stores(&node, "plain", None)?;
    let watched = stores(&node, "watched", Some((ANALYTICS, r#"{"flash_skus": ["D11-PHONE"]}"#)))?;
    let slow = stores(&node, "slow", Some(("hostile-analytics", SLOW_CONFIG)))?;
    let consumers = Consumers::start(node.clone(), plugins)?;

    println!(
        "\n== checkout with live analytics ({ORDERS_PER_RUN} orders per run, median of {ROUNDS}) =="
    );
    // Warm-up: every store's plugin instances.
    for stores in [&plain, &watched, &slow] {
        drive(&node, stores, ORDERS_PER_RUN)?;
    }
    let (mut without, mut with, mut beside_slow) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        without.push(drive(&node, &plain, ORDERS_PER_RUN)?.orders_per_second());
        with.push(drive(&node, &watched, ORDERS_PER_RUN)?.orders_per_second());
        beside_slow.push(drive(&node, &slow, ORDERS_PER_RUN)?.orders_per_second());
    }
    let (without, with, beside_slow) = (median(without), median(with), median(beside_slow));
    println!("analytics disabled: {without:.0} orders/s");
    println!("analytics enabled:  {with:.0} orders/s ({:.1}%)", 100.0 * with / without);
    println!(
        "a slow analytics plugin enabled: {beside_slow:.0} orders/s ({:.1}%)",
        100.0 * beside_slow / without
    );
    let lag = consumers.lag();
    let behind: u64 = lag
        .iter()
        .filter(|l| l.plugin == "hostile-analytics")
        .map(|l| l.records_behind)
        .max()
        .unwrap_or(0);
    println!("the slow plugin's lag: up to {behind} event records behind");
    println!("RESULT checkout_with_analytics {:.1} %", 100.0 * with / without);
    println!("RESULT checkout_beside_slow_analytics {:.1} %", 100.0 * beside_slow / without);

    println!(
        "\n== freshness: acknowledgement to analytics, {FRESHNESS_SAMPLES} orders under load =="
    );
    let background = {
        let (node, plain) = (node.clone(), plain.clone());
        std::thread::spawn(move || drive(&node, &plain, ORDERS_PER_RUN))
    };
    let store = &watched[0];
    let plugin = PluginId::new(ANALYTICS)?;
    let mut samples = Vec::new();
    for customer in 0..FRESHNESS_SAMPLES as u64 {
        let request = seed::order_request(customer, vec![(seed::ordinary_sku(1), 1)], None, None);
        let receipt = node.place_order(store.clone(), request)?;
        let acknowledged = Instant::now();
        loop {
            let headline: serde_json::Value =
                serde_json::from_str(&consumers.query(store, &plugin, "headline", "{}")?)?;
            let orders = headline["orders_placed"].as_u64().unwrap_or(0);
            if orders >= receipt.order {
                break;
            }
            anyhow::ensure!(acknowledged.elapsed() < Duration::from_secs(30), "never caught up");
            std::thread::sleep(Duration::from_millis(1));
        }
        samples.push(acknowledged.elapsed().as_micros() as u64);
    }
    background.join().expect("background load")?;
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    println!("freshness: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", at(0.5), at(0.99), at(1.0));
    println!("RESULT analytics_freshness_p99 {:.1} ms", at(0.99));
    Ok(())
}

fn stores(
    node: &Node,
    prefix: &str,
    analytics: Option<(&str, &str)>,
) -> anyhow::Result<Vec<StoreId>> {
    let stores: Vec<StoreId> =
        (0..STORES).map(|i| StoreId::new(format!("{prefix}-{i}"))).collect::<Result<_, _>>()?;
    for store in &stores {
        seed::seed_flagship_store(node, store, 0)?;
        if let Some((plugin, config)) = analytics {
            node.execute(Command::ConfigurePlugin {
                store: store.clone(),
                plugin: PluginId::new(plugin)?,
                config_json: Some(config.into()),
                settings: PluginSettings::default(),
            })?;
        }
    }
    Ok(stores)
}
