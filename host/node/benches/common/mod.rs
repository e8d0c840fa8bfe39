//! What the node's benchmarks share.

use std::sync::Arc;

use bazaar_kernel::model::StoreId;
use bazaar_node::load::{self, LoadProgress, LoadReport};
use bazaar_node::node::Node;

/// Client threads and the orders each keeps in flight, as the pipeline
/// benchmark of `bazaar bench` uses.
const CLIENTS: u32 = 4;
const WINDOW: usize = 512;

/// The median of `values` (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `orders` mixed-catalogue orders over `stores`, closed loop; every one
/// must be placed.
pub fn drive(node: &Arc<Node>, stores: &[StoreId], orders: u64) -> anyhow::Result<LoadReport> {
    let plan = load::mixed_plan(stores, CLIENTS, WINDOW, orders);
    let report = load::drive(node, &plan, &Arc::new(LoadProgress::default()));
    anyhow::ensure!(report.refusals.is_empty(), "orders refused: {:?}", report.refusals);
    Ok(report)
}
