//! Recovery: a node that is closed and reopened rebuilds exactly the same
//! state from its snapshots and journal, on every storage backend.

use bazaar_kernel::Command;
use bazaar_kernel::model::{Sku, StoreId};
use bazaar_node::node::{Node, NodeConfig, wall_clock_ms};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed;
use bazaar_store::Backend;

fn backends() -> Vec<Backend> {
    vec![
        Backend::Redb,
        #[cfg(feature = "sled")]
        Backend::Sled,
    ]
}

/// Places `orders` orders in two stores and pays, cancels and fulfils some.
fn run_orders(node: &Node, stores: &[StoreId], orders: u64) {
    for i in 0..orders {
        let store = &stores[(i % stores.len() as u64) as usize];
        let mut lines = vec![(seed::ordinary_sku((i % 7) as usize), 1 + (i % 3) as u32)];
        if i % 5 == 0 {
            lines.push((Sku::new(seed::HOT_SKU).unwrap(), 1));
        }
        let request =
            seed::order_request(i, lines, (i % 4 == 0).then_some("D11-10"), Some(format!("k{i}")));
        match node.place_order(store.clone(), request) {
            Ok(receipt) => {
                let follow_up = match i % 6 {
                    0 => Some(Command::PayOrder {
                        store: store.clone(),
                        order: receipt.order,
                        at_ms: wall_clock_ms(),
                    }),
                    1 => Some(Command::CancelOrder {
                        store: store.clone(),
                        order: receipt.order,
                        at_ms: wall_clock_ms(),
                    }),
                    _ => None,
                };
                if let Some(command) = follow_up {
                    node.execute(command).unwrap();
                }
                if i % 6 == 0 && i % 12 == 0 {
                    node.execute(Command::FulfilOrder {
                        store: store.clone(),
                        order: receipt.order,
                        at_ms: wall_clock_ms(),
                    })
                    .unwrap();
                }
            }
            Err(error) => assert!(
                error.to_string().contains("purchase limit")
                    || error.to_string().contains("insufficient stock"),
                "unexpected refusal: {error}"
            ),
        }
    }
}

#[test]
fn a_reopened_node_has_the_identical_state_on_every_backend() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        // Snapshots every few hundred commands, so recovery goes through
        // snapshot, compaction and replay of the tail.
        let config =
            NodeConfig { backend, snapshot_every_commands: 300, ..NodeConfig::new(dir.path()) };
        let stores = [StoreId::new("alpha").unwrap(), StoreId::new("beta").unwrap()];
        let digest = {
            let node = Node::open(config.clone(), PluginSet::first_party_wasm().unwrap()).unwrap();
            for store in &stores {
                seed::seed_flagship_store(&node, store, 50).unwrap();
            }
            run_orders(&node, &stores, 1_500);
            assert!(
                node.stats().snapshots.load(std::sync::atomic::Ordering::Relaxed) > 0,
                "{backend}: no snapshot taken"
            );
            node.check_invariants().unwrap();
            node.digest().unwrap()
        };
        // Recovery never calls a plugin: reopen with none at all.
        let node = Node::open(config, PluginSet::none()).unwrap();
        let snapshots = (0..node.shard_count())
            .filter(|stream| node.storage().latest_snapshot(*stream).unwrap().is_some())
            .count();
        assert!(snapshots > 0, "{backend}: no snapshot was written before shutdown");
        assert_eq!(node.digest().unwrap(), digest, "{backend}: recovered state differs");
        node.check_invariants().unwrap();
    }
}

#[test]
fn an_idempotency_key_still_names_its_order_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig::new(dir.path());
    let store = StoreId::new("alpha").unwrap();
    let request =
        seed::order_request(42, vec![(seed::ordinary_sku(1), 2)], None, Some("retry-me".into()));
    let first = {
        let node = Node::open(config.clone(), PluginSet::first_party_wasm().unwrap()).unwrap();
        seed::seed_flagship_store(&node, &store, 10).unwrap();
        node.place_order(store.clone(), request.clone()).unwrap()
    };
    assert!(!first.duplicate);
    let node = Node::open(config, PluginSet::first_party_wasm().unwrap()).unwrap();
    let again = node.place_order(store.clone(), request.clone()).unwrap();
    assert!(again.duplicate);
    assert_eq!((again.order, again.totals), (first.order, first.totals));
    let mut changed = request;
    changed.lines[0].quantity = 3;
    let error = node.place_order(store, changed).unwrap_err();
    assert!(error.to_string().contains("already used for a different request"), "{error}");
}
