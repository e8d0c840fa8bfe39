//! What a snapshot costs the shard writer: the copy of a store's state it
//! hands to the snapshot thread, taken on the writer with every request
//! queued behind it, and the worst order latency while that copy is held
//! (the writer copies the parts it changes that the copy still shares).
//! Every order has its own customer, idempotency key and unit of the
//! purchase-limited SKU, so every per-order map of the store grows.
//! Prints `RESULT` lines for BENCHMARKS.md.
//!
//! Run with `cargo bench -p bazaar-node --bench snapshot`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bazaar_kernel::model::{Sku, StoreId};
use bazaar_node::load::{self, LoadPlan, LoadProgress};
use bazaar_node::node::{Node, NodeConfig};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed;

/// Orders in the store when the copy is measured.
const CHECKPOINTS: [u64; 3] = [100_000, 250_000, 500_000];
/// Orders placed while the copy is held.
const ORDERS_WHILE_HELD: u64 = 20_000;

fn main() -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cores} cores, {}", std::env::consts::ARCH);
    let dir = tempfile::tempdir()?;
    let config = NodeConfig {
        shard_count: 1,
        // Only the copies this benchmark takes.
        snapshot_every_commands: u64::MAX,
        ..NodeConfig::new(dir.path())
    };
    let node = Arc::new(Node::open(config, PluginSet::first_party_native())?);
    let store = StoreId::new("flagship")?;
    let orders_max = CHECKPOINTS[CHECKPOINTS.len() - 1] + ORDERS_WHILE_HELD * 3;
    seed::seed_flagship_store(&node, &store, orders_max * 2)?;

    let mut placed = 0;
    for checkpoint in CHECKPOINTS {
        place(&node, &store, placed, checkpoint - placed - ORDERS_WHILE_HELD)?;
        placed = checkpoint - ORDERS_WHILE_HELD;
        // The same number of orders without a copy held, for comparison.
        let free = place(&node, &store, placed, ORDERS_WHILE_HELD)?;
        placed = checkpoint;
        let (copy_time, copy) = node.read(&store, |shard| {
            let started = Instant::now();
            let copy = shard.snapshot_copy();
            (started.elapsed(), copy)
        })?;
        let held = place(&node, &store, placed, ORDERS_WHILE_HELD)?;
        placed += ORDERS_WHILE_HELD;
        drop(copy);
        let copy_ms = copy_time.as_secs_f64() * 1000.0;
        println!(
            "{checkpoint} orders: copy on the writer {copy_ms:.2} ms; the {ORDERS_WHILE_HELD} orders before: p99 {:.2} ms, max {:.2} ms, {:.0} orders/s; after, copy held: p99 {:.2} ms, max {:.2} ms, {:.0} orders/s",
            free.0, free.1, free.2, held.0, held.1, held.2
        );
        println!("RESULT snapshot_copy_{checkpoint}_orders {copy_ms:.2} ms");
        println!("RESULT orders_after_snapshot_{checkpoint}_max {:.2} ms", held.1);
    }
    Ok(())
}

/// Places `count` orders of new customers from `first` on, each with an
/// idempotency key and one unit of the limited SKU; returns the p99 and
/// the maximum latency in milliseconds and the orders per second.
fn place(
    node: &Arc<Node>,
    store: &StoreId,
    first: u64,
    count: u64,
) -> anyhow::Result<(f64, f64, f64)> {
    let hot = Sku::new(seed::HOT_SKU)?;
    let store = store.clone();
    let plan = LoadPlan {
        // Few in flight, so that a pause shows as latency, not as a queue.
        clients: 2,
        window_per_client: 16,
        attempts: count,
        source: Arc::new(move |attempt| {
            let customer = first + attempt;
            let key = Some(format!("order-{customer}"));
            let request = seed::order_request(customer, vec![(hot.clone(), 1)], None, key);
            (store.clone(), request)
        }),
        on_ack: None,
    };
    let report = load::drive(node, &plan, &Arc::new(LoadProgress::default()));
    anyhow::ensure!(report.refusals.is_empty(), "orders refused: {:?}", report.refusals);
    anyhow::ensure!(report.placed == count, "placed {} of {count}", report.placed);
    let at = |q: f64| {
        let index = ((report.latencies_us.len() - 1) as f64 * q).round() as usize;
        Duration::from_micros(u64::from(report.latencies_us[index])).as_secs_f64() * 1000.0
    };
    Ok((at(0.99), at(1.0), report.orders_per_second()))
}
