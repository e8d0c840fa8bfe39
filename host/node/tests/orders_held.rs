//! The cap on the orders a node holds: exact across shards, never charged
//! for a refused order or a retry, and kept across a restart, where the
//! orders replayed count even beyond a lowered cap.

use bazaar_kernel::KernelError;
use bazaar_kernel::model::{OrderRequest, Sku, StoreId};
use bazaar_node::node::{Node, NodeConfig, NodeError};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed;

const HELD_MAX: u64 = 3;

fn phone_order(customer: u64, quantity: u32) -> OrderRequest {
    let phone = Sku::new(seed::HOT_SKU).unwrap();
    seed::order_request(customer, vec![(phone, quantity)], None, Some(format!("key-{customer}")))
}

fn assert_full(result: Result<impl std::fmt::Debug, NodeError>, held: u64, limit: u64) {
    match result {
        Err(NodeError::OrdersHeldFull { held: got_held, limit: got_limit }) => {
            assert_eq!((got_held, got_limit), (held, limit));
        }
        other => panic!("expected the node to be full, got {other:?}"),
    }
}

/// A store's orders, and the phones they reserve over all warehouses.
fn reserved(node: &Node, store: &StoreId) -> (usize, u64) {
    let id = store.clone();
    node.read(store, move |shard| {
        let state = shard.store(&id).unwrap();
        let phone = Sku::new(seed::HOT_SKU).unwrap();
        let levels = state.stock().get(&phone).unwrap();
        (state.orders().len(), levels.values().map(|level| level.reserved).sum())
    })
    .unwrap()
}

#[test]
fn a_full_node_refuses_new_orders_but_answers_retries_and_keeps_its_count_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig { orders_held_max: HELD_MAX, ..NodeConfig::new(dir.path()) };
    let node = Node::open(config.clone(), PluginSet::none()).unwrap();
    // Two stores on different shards: the cap is the node's, not a shard's.
    let west = StoreId::new("west").unwrap();
    let east = (0..)
        .map(|i| StoreId::new(format!("east-{i}")).unwrap())
        .find(|store| node.shard_of(store) != node.shard_of(&west))
        .unwrap();
    seed::seed_flagship_store(&node, &west, 2).unwrap();
    seed::seed_flagship_store(&node, &east, 10).unwrap();

    let first = node.place_order(west.clone(), phone_order(1, 1)).unwrap();
    node.place_order(east.clone(), phone_order(2, 1)).unwrap();
    // A refused order takes no place: west has one phone left.
    let refused = node.place_order(west.clone(), phone_order(3, 2));
    assert!(
        matches!(refused, Err(NodeError::Kernel(KernelError::InsufficientStock { .. }))),
        "{refused:?}"
    );
    node.place_order(west.clone(), phone_order(4, 1)).unwrap();
    assert_eq!((node.orders_held().held(), node.orders_held().limit()), (3, HELD_MAX));

    // Full: a new order is refused on either shard, and nothing is reserved.
    assert_full(node.place_order(east.clone(), phone_order(5, 1)), 3, HELD_MAX);
    assert_full(node.place_order(west.clone(), phone_order(6, 1)), 3, HELD_MAX);
    assert_eq!(reserved(&node, &west), (2, 2));
    assert_eq!(reserved(&node, &east), (1, 1));
    // A retry of a placed order is still answered with that order.
    let retry = node.place_order(west.clone(), phone_order(1, 1)).unwrap();
    assert_eq!(retry.order, first.order);
    assert_eq!(node.orders_held().held(), 3);
    node.shutdown();

    // Reopened under a lower cap: the replayed orders all count, none is
    // lost, and new ones are refused.
    let lowered = NodeConfig { orders_held_max: 2, ..config.clone() };
    let node = Node::open(lowered, PluginSet::none()).unwrap();
    assert_eq!(node.orders_held().held(), 3);
    assert_eq!(reserved(&node, &west), (2, 2));
    assert_full(node.place_order(east.clone(), phone_order(7, 1)), 3, 2);
    node.shutdown();

    // Under a raised cap the node takes orders again.
    let raised = NodeConfig { orders_held_max: 4, ..config };
    let node = Node::open(raised, PluginSet::none()).unwrap();
    node.place_order(east.clone(), phone_order(8, 1)).unwrap();
    assert_eq!(node.orders_held().held(), 4);
    assert_full(node.place_order(east.clone(), phone_order(9, 1)), 4, 4);
    assert_eq!(reserved(&node, &east), (2, 2));
    node.shutdown();
}

#[test]
fn orders_racing_on_every_shard_never_pass_the_cap() {
    const THREADS: u64 = 4;
    const ORDERS_PER_THREAD: u64 = 60;
    const CAP: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig { orders_held_max: CAP, ..NodeConfig::new(dir.path()) };
    let node = Node::open(config, PluginSet::none()).unwrap();
    let stores: Vec<StoreId> = (0..8).map(|i| StoreId::new(format!("race-{i}")).unwrap()).collect();
    let shards: std::collections::BTreeSet<u32> =
        stores.iter().map(|store| node.shard_of(store)).collect();
    assert_eq!(shards.len(), 2, "the stores cover both shards");
    for store in &stores {
        seed::seed_flagship_store(&node, store, 1_000).unwrap();
    }
    let placed: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (node, stores) = (&node, &stores);
                scope.spawn(move || {
                    let mut placed = 0;
                    for i in 0..ORDERS_PER_THREAD {
                        let customer = thread * ORDERS_PER_THREAD + i;
                        let store = stores[(customer % stores.len() as u64) as usize].clone();
                        match node.place_order(store, phone_order(customer, 1)) {
                            Ok(_) => placed += 1,
                            Err(NodeError::OrdersHeldFull { limit: CAP, .. }) => {}
                            Err(other) => panic!("unexpected refusal: {other}"),
                        }
                    }
                    placed
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().unwrap()).sum()
    });
    assert_eq!(placed, CAP);
    assert_eq!(node.orders_held().held(), CAP);
    let orders: usize = stores.iter().map(|store| reserved(&node, store).0).sum();
    assert_eq!(orders as u64, CAP);
    node.shutdown();
}
