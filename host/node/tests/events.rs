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
