//! Recovery: a node that is closed and reopened rebuilds exactly the same
//! state from its snapshots and journal, on every storage backend.

use std::path::Path;

use bazaar_kernel::Command;
use bazaar_kernel::model::{Sku, StoreId};
use bazaar_node::node::{Node, NodeConfig, wall_clock_ms};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed;
use bazaar_node::snapshot_files::SNAPSHOT_DIR;
use bazaar_store::{Backend, Commit, Snapshot};

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

/// A closed node of two seeded stores whose shards snapshot every 100
/// commands, after `orders` orders: its directory, its configuration and
/// its state's digest.
fn snapshotted_node(orders: u64) -> (tempfile::TempDir, NodeConfig, [u8; 32]) {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig { snapshot_every_commands: 100, ..NodeConfig::new(dir.path()) };
    let stores = [StoreId::new("alpha").unwrap(), StoreId::new("beta").unwrap()];
    let node = Node::open(config.clone(), PluginSet::first_party_wasm().unwrap()).unwrap();
    for store in &stores {
        seed::seed_flagship_store(&node, store, 50).unwrap();
    }
    run_orders(&node, &stores, orders);
    let digest = node.digest().unwrap();
    (dir, config, digest)
}

/// The names of the files in the snapshot directory, sorted.
fn snapshot_files(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir.join(SNAPSHOT_DIR))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn snapshots_live_in_files_of_their_own_and_only_the_latest_is_kept() {
    let (dir, config, digest) = snapshotted_node(900);
    let files = snapshot_files(dir.path());
    let node = Node::open(config, PluginSet::none()).unwrap();
    let snapshotted: Vec<u32> = (0..node.shard_count())
        .filter(|stream| node.storage().latest_snapshot(*stream).unwrap().is_some())
        .collect();
    assert!(!snapshotted.is_empty(), "no snapshot was taken");
    // One file per snapshotted shard: each replaced one was deleted.
    assert_eq!(files.len(), snapshotted.len(), "{files:?}");
    for stream in snapshotted {
        let stored = node.storage().latest_snapshot(stream).unwrap().unwrap();
        assert!(stored.payload.len() < 256, "the journal holds the state, not a reference");
        let name = format!("shard-{stream}-{}.snapshot", stored.sequence);
        assert!(files.contains(&name), "{name} is not among {files:?}");
    }
    assert_eq!(node.digest().unwrap(), digest);
}

#[test]
fn a_damaged_or_missing_snapshot_file_stops_recovery_with_its_name() {
    let (dir, config, _) = snapshotted_node(600);
    let name = snapshot_files(dir.path()).pop().expect("a snapshot file");
    let path = dir.path().join(SNAPSHOT_DIR).join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let error = Node::open(config.clone(), PluginSet::none()).expect_err("a damaged file");
    let text = error.to_string();
    assert!(text.contains(&name) && text.contains("digest"), "{text}");

    std::fs::remove_file(&path).unwrap();
    let error = Node::open(config, PluginSet::none()).expect_err("a missing file");
    let text = error.to_string();
    assert!(text.contains(&name) && text.contains("cannot be opened"), "{text}");
}

#[test]
fn snapshot_files_no_snapshot_names_are_deleted_at_start_and_nothing_else() {
    let (dir, config, digest) = snapshotted_node(600);
    let snapshots = dir.path().join(SNAPSHOT_DIR);
    // An operator's own files, and a directory, are not the node's to delete.
    let operators = ["shard-0-1.snapshot.bak", "NOTES.txt"];
    for name in operators {
        std::fs::write(snapshots.join(name), b"the operator's").unwrap();
    }
    std::fs::create_dir(snapshots.join("old-shard-0-1.snapshot")).unwrap();
    let kept = snapshot_files(dir.path());
    // What a crash leaves: a file being written, and one written whose
    // reference was never committed.
    for stray in ["shard-0-999999.snapshot.partial", "shard-1-999999.snapshot"] {
        std::fs::write(snapshots.join(stray), b"half a snapshot").unwrap();
    }
    let node = Node::open(config, PluginSet::none()).unwrap();
    assert_eq!(snapshot_files(dir.path()), kept);
    for name in operators {
        assert_eq!(std::fs::read(snapshots.join(name)).unwrap(), b"the operator's");
    }
    assert_eq!(node.digest().unwrap(), digest);
}

#[test]
fn a_snapshot_stored_in_the_journal_itself_still_recovers() {
    let dir = tempfile::tempdir().unwrap();
    // No snapshot of the node's own: the only one is stored below, the way
    // snapshots were stored before they had files.
    let config = NodeConfig::new(dir.path());
    let (before, after) = ([StoreId::new("alpha").unwrap()], [StoreId::new("beta").unwrap()]);
    let digest = {
        let node = Node::open(config.clone(), PluginSet::first_party_wasm().unwrap()).unwrap();
        seed::seed_flagship_store(&node, &before[0], 50).unwrap();
        seed::seed_flagship_store(&node, &after[0], 50).unwrap();
        run_orders(&node, &before, 200);
        for stream in 0..node.shard_count() {
            let payload = node.read_shard(stream, |shard| shard.encode()).unwrap();
            let sequence = node.storage().last_sequence(stream);
            let snapshot = Snapshot { stream, sequence, payload };
            node.storage()
                .commit(&Commit { records: Vec::new(), snapshots: vec![snapshot] })
                .unwrap();
        }
        // Orders after the snapshot are replayed from the journal.
        run_orders(&node, &after, 50);
        node.digest().unwrap()
    };
    assert!(snapshot_files(dir.path()).is_empty());
    let node = Node::open(config, PluginSet::none()).unwrap();
    assert_eq!(node.digest().unwrap(), digest);
    node.check_invariants().unwrap();
}
