//! The event stream: every committed order, status change and stock change
//! yields typed events, durably, in the same commit as its command; refused
//! checkout attempts are summarised; sequence numbers only grow, across
//! restarts too.

use bazaar_kernel::Command;
use bazaar_kernel::event::{Event, EventKind, RefusalReason};
use bazaar_kernel::model::StoreId;
use bazaar_node::events::EventReader;
use bazaar_node::node::{Node, NodeConfig};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed;

fn all_events(node: &Node) -> Vec<Event> {
    let reader = EventReader::new(node.storage().clone());
    let mut events = Vec::new();
    for shard in 0..node.shard_count() {
        let mut after = 0;
        loop {
            let read = reader.read(shard, after).unwrap();
            let Some(last) = read.last() else { break };
            after = last.sequence;
            events.extend(read);
        }
    }
    events
}

#[test]
fn orders_and_refusals_become_durable_events_whose_sequence_only_grows() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig { shard_count: 1, ..NodeConfig::new(dir.path()) };
    let store = StoreId::new("evented").unwrap();
    let hot = bazaar_kernel::model::Sku::new(seed::HOT_SKU).unwrap();
    {
        let node = Node::open(config.clone(), PluginSet::none()).unwrap();
        seed::seed_flagship_store(&node, &store, 3).unwrap();
        for customer in 0..5 {
            let request = seed::order_request(customer, vec![(hot.clone(), 1)], None, None);
            let _ = node.place_order(store.clone(), request);
        }
        node.execute(Command::PayOrder { store: store.clone(), order: 1, at_ms: 5 }).unwrap();
        node.shutdown();
    }
    let node = Node::open(config, PluginSet::none()).unwrap();
    node.execute(Command::CancelOrder { store: store.clone(), order: 2, at_ms: 6 }).unwrap();
    let events = all_events(&node);
    assert!(events.windows(2).all(|pair| pair[0].sequence < pair[1].sequence));
    assert!(events.iter().all(|event| event.store == store));

    let placed: Vec<u64> = events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::OrderPlaced { order, .. } => Some(*order),
            _ => None,
        })
        .collect();
    assert_eq!(placed, [1, 2, 3], "three phones, three orders");
    let refused: u32 = events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::CheckoutRefused {
                sku, attempts, reason: RefusalReason::SoldOut, ..
            } if *sku == hot => Some(*attempts),
            _ => None,
        })
        .sum();
    assert_eq!(refused, 2, "the two attempts after the sell-out are counted");
    assert!(events.iter().any(|e| matches!(e.kind, EventKind::OrderPaid { order: 1, .. })));
    let cancelled =
        events.iter().position(|e| matches!(e.kind, EventKind::OrderCancelled { order: 2, .. }));
    let cancelled = cancelled.expect("the cancellation after the restart is an event");
    // The cancellation's stock event shows the unit available again.
    let after_cancel = &events[cancelled + 1];
    match &after_cancel.kind {
        EventKind::StockChanged { sku, level, .. } => {
            assert_eq!(sku, &hot);
            assert_eq!(level.available, 1);
        }
        other => panic!("expected a stock change, got {other:?}"),
    }
}

fn first_retained_record(node: &Node) -> u64 {
    let reader = EventReader::new(node.storage().clone());
    let events = reader.read(0, 0).unwrap();
    bazaar_node::events::record_of(events.first().expect("some events are kept").sequence)
}

fn enable(node: &Node, store: &StoreId, plugin: &str, config: &str) {
    node.execute(Command::ConfigurePlugin {
        store: store.clone(),
        plugin: bazaar_kernel::model::PluginId::new(plugin).unwrap(),
        config_json: Some(config.into()),
        settings: bazaar_kernel::PluginSettings::default(),
    })
    .unwrap();
}

fn orders(node: &Node, store: &StoreId, from: u64, count: u64) {
    for customer in from..from + count {
        let request = seed::order_request(customer, vec![(seed::ordinary_sku(2), 1)], None, None);
        node.place_order(store.clone(), request).unwrap();
    }
}

/// Waits until every analytics consumer of `store` has read every event.
fn caught_up(consumers: &bazaar_node::consumer::Consumers, store: &StoreId) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let lag = consumers.lag();
        let mine: Vec<_> = lag.iter().filter(|l| l.store == store.as_str()).collect();
        if !mine.is_empty() && mine.iter().all(|l| l.records_behind == 0) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "never caught up: {lag:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn snapshots_drop_the_event_records_every_consumer_passed_and_keep_what_a_laggard_needs() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        NodeConfig { shard_count: 1, snapshot_every_commands: 20, ..NodeConfig::new(dir.path()) };
    let plugins = PluginSet::first_party_wasm().unwrap();
    plugins.add_artifact(&bazaar_artifacts::HOSTILE_ANALYTICS).unwrap();
    let node = std::sync::Arc::new(Node::open(config, plugins.clone()).unwrap());
    let store = StoreId::new("compacted").unwrap();
    seed::seed_flagship_store(&node, &store, 0).unwrap();
    enable(&node, &store, "analytics-live", "{}");
    let consumers = bazaar_node::consumer::Consumers::start(node.clone(), plugins).unwrap();
    orders(&node, &store, 0, 40);
    caught_up(&consumers, &store);
    orders(&node, &store, 40, 40);
    let compacted = first_retained_record(&node);
    assert!(compacted > 1, "the records the consumer passed were dropped");

    // A consumer that never gets anywhere holds every record from now on.
    enable(&node, &store, "hostile-analytics", r#"{"behaviour":"fail"}"#);
    orders(&node, &store, 80, 60);
    assert_eq!(first_retained_record(&node), compacted);
}
