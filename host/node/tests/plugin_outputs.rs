//! What plugins produce is recorded with the order and survives restarts:
//! a partner plugin written against the SDK alone prices orders and is
//! named with its version on each adjustment, and a plugin's private state
//! is journaled with the orders that changed it and rebuilt on recovery.

use bazaar_kernel::Command;
use bazaar_kernel::model::{Order, PluginId, StoreId};
use bazaar_node::node::{Node, NodeConfig};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed;

fn configure(node: &Node, store: &StoreId, plugin: &str, config: &str) {
    let command = Command::ConfigurePlugin {
        store: store.clone(),
        plugin: PluginId::new(plugin).unwrap(),
        config_json: Some(config.into()),
        settings: bazaar_kernel::PluginSettings::default(),
    };
    node.execute(command).unwrap();
}

fn place(node: &Node, store: &StoreId, quantity: u32) -> Order {
    let request = seed::order_request(9, vec![(seed::ordinary_sku(0), quantity)], None, None);
    let receipt = node.place_order(store.clone(), request).unwrap();
    let id = store.clone();
    node.read(store, move |shard| shard.store(&id).unwrap().order(receipt.order).unwrap().clone())
        .unwrap()
}

#[test]
fn a_partner_plugin_prices_orders_and_is_named_with_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = PluginSet::first_party_wasm().unwrap();
    plugins.add_artifact(&bazaar_artifacts::BULK_DISCOUNT_EXAMPLE).unwrap();
    let node = Node::open(NodeConfig::new(dir.path()), plugins).unwrap();
    let store = StoreId::new("partner-shop").unwrap();
    seed::seed_flagship_store(&node, &store, 0).unwrap();
    configure(&node, &store, "bulk-discount", r#"{"min_units": 10, "percent": "7.5"}"#);
    // 12 x 19.90 = 238.80, under every first-party threshold.
    let order = place(&node, &store, 12);
    let bulk: Vec<_> =
        order.adjustments.iter().filter(|a| a.plugin.id.as_str() == "bulk-discount").collect();
    assert_eq!(bulk.len(), 1, "{:?}", order.adjustments);
    assert_eq!(bulk[0].plugin.version, "1.0.0");
    assert_eq!(bulk[0].line_index, Some(0));
    assert_eq!(bulk[0].amount_off_minor, 1791);
    assert_eq!(bulk[0].reason, "7.5% off 10 units or more of SKU-000");
    assert_eq!(order.totals.subtotal_minor - order.totals.discount_minor, 23_880 - 1791);
    assert!(place(&node, &store, 9).adjustments.is_empty());
}

#[test]
fn plugin_state_is_journaled_with_the_orders_and_rebuilt_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreId::new("stateful").unwrap();
    let other = StoreId::new("elsewhere").unwrap();
    let plugins = || {
        let plugins = PluginSet::first_party_wasm().unwrap();
        plugins.add_artifact(&bazaar_artifacts::HOSTILE_PRICING).unwrap();
        plugins
    };
    let counter = |node: &Node, store: &StoreId| {
        let id = store.clone();
        node.read(store, move |shard| {
            let state =
                shard.store(&id).unwrap().plugin_state(&PluginId::new("hostile-pricing").unwrap());
            state.get("calls").map(|v| String::from_utf8(v.clone()).unwrap())
        })
        .unwrap()
    };
    {
        let node = Node::open(NodeConfig::new(dir.path()), plugins()).unwrap();
        for id in [&store, &other] {
            seed::seed_flagship_store(&node, id, 0).unwrap();
        }
        configure(&node, &store, "hostile-pricing", r#"{"behaviour": "state-counter"}"#);
        configure(&node, &other, "hostile-pricing", r#"{"behaviour": "state-counter"}"#);
        for _ in 0..5 {
            place(&node, &store, 1);
        }
        place(&node, &other, 1);
        assert_eq!(counter(&node, &store).as_deref(), Some("5"));
        assert_eq!(counter(&node, &other).as_deref(), Some("1"));
    }
    let node = Node::open(NodeConfig::new(dir.path()), plugins()).unwrap();
    assert_eq!(counter(&node, &store).as_deref(), Some("5"), "state lost on recovery");
    place(&node, &store, 1);
    assert_eq!(counter(&node, &store).as_deref(), Some("6"));
}

#[test]
fn a_preview_shows_each_plugins_contribution_and_reserves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node =
        Node::open(NodeConfig::new(dir.path()), PluginSet::first_party_wasm().unwrap()).unwrap();
    let store = StoreId::new("preview-shop").unwrap();
    seed::seed_flagship_store(&node, &store, 5).unwrap();
    let before = node.digest().unwrap();
    let request = seed::order_request(3, vec![(seed::ordinary_sku(19), 2)], Some("D11-10"), None);
    let (sender, receiver) = std::sync::mpsc::channel();
    node.submit_preview(
        store.clone(),
        request,
        Box::new(move |preview| sender.send(preview).unwrap()),
    )
    .unwrap();
    let preview = receiver.recv().unwrap().unwrap();
    let codes: Vec<&str> = preview.outputs.adjustments.iter().map(|a| a.code.as_str()).collect();
    assert_eq!(codes.len(), 2, "a spend threshold and a coupon expected, got {codes:?}");
    assert!(
        preview.outputs.adjustments.iter().all(|a| a.plugin.id.as_str() == "pricing-promotions")
    );
    // 2 x 722.90: 200.00 off for four times 300.00, then 10% of the rest.
    assert_eq!(preview.totals.subtotal_minor, 144_580);
    assert_eq!(preview.totals.discount_minor, 20_000 + 12_458);
    assert_eq!(
        preview.totals.discount_minor,
        preview.outputs.adjustments.iter().map(|a| a.amount_off_minor).sum::<i64>()
    );
    assert!(matches!(
        preview.outputs.shipment_plan.routed_by,
        bazaar_kernel::model::Router::Plugin(_)
    ));
    assert_eq!(node.digest().unwrap(), before, "a preview changed the state");
}
