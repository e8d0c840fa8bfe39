//! The node's plugin catalogue at work: versions swapped under load, each
//! store's plugins isolated from every other store's, the store's stacking
//! rules, version pins, shadow runs and fail-closed policies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bazaar_kernel::model::{Order, PluginId, PluginKind, StoreId};
use bazaar_kernel::{Command, PluginSettings, PricingRules};
use bazaar_node::node::{Node, NodeConfig, NodeError};
use bazaar_node::plugins::{FailurePolicy, PluginSet};
use bazaar_node::seed;

const TAGGED: &str = "tagged-pricing";

fn configure(node: &Node, store: &StoreId, plugin: &str, config: &str, settings: PluginSettings) {
    let command = Command::ConfigurePlugin {
        store: store.clone(),
        plugin: PluginId::new(plugin).unwrap(),
        config_json: Some(config.into()),
        settings,
    };
    node.execute(command).unwrap();
}

fn order_of(node: &Node, store: &StoreId, number: u64) -> Order {
    let id = store.clone();
    node.read(store, move |shard| shard.store(&id).unwrap().order(number).unwrap().clone()).unwrap()
}

fn place(node: &Node, store: &StoreId, customer: u64) -> Result<Order, NodeError> {
    let request = seed::order_request(customer, vec![(seed::ordinary_sku(0), 1)], None, None);
    let receipt = node.place_order(store.clone(), request)?;
    Ok(order_of(node, store, receipt.order))
}

/// A flagship store with only the tagged plugin configured for pricing.
fn tagged_store(node: &Node, name: &str, settings: PluginSettings) -> StoreId {
    let store = StoreId::new(name).unwrap();
    seed::seed_flagship_store(node, &store, 0).unwrap();
    node.execute(Command::ConfigurePlugin {
        store: store.clone(),
        plugin: PluginId::new("pricing-promotions").unwrap(),
        config_json: None,
        settings: PluginSettings::default(),
    })
    .unwrap();
    configure(node, &store, TAGGED, "{}", settings);
    store
}

fn tagged_plugins() -> PluginSet {
    let plugins = PluginSet::first_party_wasm().unwrap();
    plugins.load_artifact(&bazaar_artifacts::TAGGED_PRICING_V1, true).unwrap();
    plugins.load_artifact(&bazaar_artifacts::TAGGED_PRICING_V2, false).unwrap();
    plugins
}

/// The version an order's tagged adjustment says priced it, checked
/// against what that version computes.
fn tagged_version(order: &Order) -> String {
    let tagged: Vec<_> =
        order.adjustments.iter().filter(|a| a.plugin.id.as_str() == TAGGED).collect();
    assert_eq!(tagged.len(), 1, "exactly one tagged adjustment: {:?}", order.adjustments);
    let adjustment = tagged[0];
    let expected = match adjustment.plugin.version.as_str() {
        "1.0.0" => ("tagged-v1", 1),
        "2.0.0" => ("tagged-v2", 2),
        other => panic!("unknown version {other}"),
    };
    assert_eq!((adjustment.code.as_str(), adjustment.amount_off_minor), expected);
    adjustment.plugin.version.clone()
}

#[test]
fn a_plugin_swapped_a_hundred_times_under_load_fails_no_order_and_prices_each_with_one_version() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = tagged_plugins();
    let node = Arc::new(Node::open(NodeConfig::new(dir.path()), plugins.clone()).unwrap());
    let stores: Vec<StoreId> = (0..4)
        .map(|index| tagged_store(&node, &format!("swap-{index}"), PluginSettings::default()))
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let placed = Arc::new(AtomicU64::new(0));
    let orderers: Vec<_> = stores
        .iter()
        .map(|store| {
            let (node, store, done, placed) =
                (node.clone(), store.clone(), done.clone(), placed.clone());
            std::thread::spawn(move || {
                let mut orders = Vec::new();
                let mut customer = 0;
                while !done.load(Ordering::Acquire) {
                    customer += 1;
                    let order = place(&node, &store, customer).expect("no order fails");
                    placed.fetch_add(1, Ordering::Relaxed);
                    orders.push(order);
                }
                orders
            })
        })
        .collect();
    let tagged = PluginId::new(TAGGED).unwrap();
    for swap in 0..100 {
        let version = if swap % 2 == 0 { "2.0.0" } else { "1.0.0" };
        // Let a few orders through on each version.
        let seen = placed.load(Ordering::Relaxed);
        while placed.load(Ordering::Relaxed) < seen + 4 {
            std::thread::yield_now();
        }
        plugins.activate(&tagged, version).unwrap();
    }
    done.store(true, Ordering::Release);
    let mut by_version = std::collections::BTreeMap::<String, usize>::new();
    for orderer in orderers {
        for order in orderer.join().unwrap() {
            assert!(order.pricing_failures.is_empty(), "{:?}", order.pricing_failures);
            *by_version.entry(tagged_version(&order)).or_default() += 1;
        }
    }
    assert!(by_version.len() == 2, "both versions priced orders: {by_version:?}");
    assert!(by_version.values().sum::<usize>() >= 400);
    node.check_invariants().unwrap();
}

#[test]
fn one_stores_plugin_instance_never_sees_another_stores_configuration_or_state() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = PluginSet::first_party_wasm().unwrap();
    plugins.add_artifact(&bazaar_artifacts::SPY_PRICING).unwrap();
    // One shard: both stores share one writer thread, the case where a
    // shared instance would leak.
    let config = NodeConfig { shard_count: 1, ..NodeConfig::new(dir.path()) };
    let node = Node::open(config, plugins).unwrap();
    let stores = [("alpha", r#"{"secret":"alpha-only"}"#), ("beta", r#"{"secret":"beta-only"}"#)];
    for (name, config) in stores {
        let store = StoreId::new(name).unwrap();
        seed::seed_flagship_store(&node, &store, 0).unwrap();
        configure(&node, &store, "spy-pricing", config, PluginSettings::default());
    }
    for round in 0..5 {
        for (name, config) in stores {
            let store = StoreId::new(name).unwrap();
            let order = place(&node, &store, round).unwrap();
            let spy = order
                .adjustments
                .iter()
                .find(|a| a.plugin.id.as_str() == "spy-pricing")
                .expect("the spy priced the order");
            let other = if name == "alpha" { "beta-only" } else { "alpha-only" };
            assert!(
                !spy.reason.contains(other),
                "store {name} saw another store's data: {}",
                spy.reason
            );
            assert!(spy.reason.starts_with(&format!("first-config={config}")), "{}", spy.reason);
            let secret = if round == 0 { "none".to_string() } else { config.to_string() };
            assert!(spy.reason.ends_with(&format!("secret={secret}")), "{}", spy.reason);
        }
    }
}

#[test]
fn a_stores_pricing_plugins_run_in_its_order_and_obey_exclusive_and_the_discount_cap() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = PluginSet::first_party_wasm().unwrap();
    plugins.add_artifact(&bazaar_artifacts::TAGGED_PRICING_V2).unwrap();
    plugins.add_artifact(&bazaar_artifacts::BULK_DISCOUNT_EXAMPLE).unwrap();
    let node = Node::open(NodeConfig::new(dir.path()), plugins).unwrap();
    let store =
        tagged_store(&node, "stacked", PluginSettings { priority: 20, ..Default::default() });
    let bulk = r#"{"min_units": 1, "percent": "10"}"#;
    configure(
        &node,
        &store,
        "bulk-discount",
        bulk,
        PluginSettings { priority: 10, ..Default::default() },
    );
    let codes = |order: &Order| -> Vec<(String, i64)> {
        order.adjustments.iter().map(|a| (a.plugin.id.to_string(), a.amount_off_minor)).collect()
    };
    // SKU-000 costs 19.90: bulk takes 10 % (199), then tagged v2 takes 2.
    let order = place(&node, &store, 1).unwrap();
    assert_eq!(codes(&order), [("bulk-discount".into(), 199), (TAGGED.into(), 2)]);

    // Tagged first and exclusive: bulk never runs.
    let exclusive = PluginSettings { priority: 0, exclusive: true, ..Default::default() };
    configure(&node, &store, TAGGED, "{}", exclusive);
    let order = place(&node, &store, 2).unwrap();
    assert_eq!(codes(&order), [(TAGGED.into(), 2)]);

    // Both again, under a cap of 1 % of 19.90 = 0.19: bulk is cut to the
    // cap and tagged has nothing left to give.
    configure(&node, &store, TAGGED, "{}", PluginSettings { priority: 20, ..Default::default() });
    let rules = PricingRules { discount_cap_percent: Some(1), discount_cap_minor: None };
    node.execute(Command::SetPricingRules { store: store.clone(), rules }).unwrap();
    let order = place(&node, &store, 3).unwrap();
    assert_eq!(codes(&order), [("bulk-discount".into(), 19)]);
    assert_eq!(order.totals.discount_minor, 19);
    assert!(
        order.adjustments[0].reason.contains("discount cap"),
        "{}",
        order.adjustments[0].reason
    );
}

#[test]
fn a_store_pinned_to_a_version_keeps_it_while_followers_move_on() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = tagged_plugins();
    let node = Node::open(NodeConfig::new(dir.path()), plugins.clone()).unwrap();
    let pinned = PluginSettings { version_pin: Some("1.0.0".into()), ..Default::default() };
    let pinned = tagged_store(&node, "pinned", pinned);
    let follower = tagged_store(&node, "follower", PluginSettings::default());
    plugins.activate(&PluginId::new(TAGGED).unwrap(), "2.0.0").unwrap();
    assert_eq!(tagged_version(&place(&node, &pinned, 1).unwrap()), "1.0.0");
    assert_eq!(tagged_version(&place(&node, &follower, 1).unwrap()), "2.0.0");

    // A pin to a version the node does not have fails open, flagged.
    let missing = PluginSettings { version_pin: Some("9.9.9".into()), ..Default::default() };
    configure(&node, &pinned, TAGGED, "{}", missing);
    let order = place(&node, &pinned, 2).unwrap();
    assert!(order.adjustments.is_empty());
    assert!(order.pricing_failures[0].reason.contains("9.9.9"), "{:?}", order.pricing_failures);
}

#[test]
fn a_shadow_version_is_compared_on_live_orders_without_changing_them() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = tagged_plugins();
    let node = Node::open(NodeConfig::new(dir.path()), plugins.clone()).unwrap();
    let store = tagged_store(&node, "shadowed", PluginSettings::default());
    let tagged = PluginId::new(TAGGED).unwrap();
    plugins.set_shadow(&tagged, Some(("2.0.0", 100))).unwrap();
    for customer in 0..10 {
        assert_eq!(tagged_version(&place(&node, &store, customer).unwrap()), "1.0.0");
    }
    let report = plugins.shadow_report(&tagged).unwrap();
    assert_eq!((report.compared, report.different, report.same), (10, 10, 0));
    assert!(report.samples[0].shadow.contains("tagged-v2"), "{:?}", report.samples[0]);
    // Promote: the shadow becomes the active version and the run ends.
    plugins.activate(&tagged, "2.0.0").unwrap();
    assert!(plugins.shadow_report(&tagged).is_none());
    assert_eq!(tagged_version(&place(&node, &store, 11).unwrap()), "2.0.0");
}

#[test]
fn a_fail_closed_pricing_plugin_that_fails_refuses_the_order_and_reserves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = PluginSet::first_party_wasm().unwrap();
    let runtime = plugins.runtime().unwrap();
    let hostile = &bazaar_artifacts::HOSTILE_PRICING;
    let loaded = runtime
        .load_pricing(bazaar_node::plugins::plugin_ref(hostile).unwrap(), hostile.wasm)
        .unwrap();
    let implementation = bazaar_node::plugins::Implementation::Pricing(loaded);
    plugins.install(implementation, Some(FailurePolicy::FailClosed), true).unwrap();
    let node = Node::open(NodeConfig::new(dir.path()), plugins).unwrap();
    let store = StoreId::new("strict").unwrap();
    seed::seed_flagship_store(&node, &store, 0).unwrap();
    configure(
        &node,
        &store,
        "hostile-pricing",
        r#"{"behaviour":"trap"}"#,
        PluginSettings::default(),
    );
    let before = node.digest().unwrap();
    let error = place(&node, &store, 1).unwrap_err();
    assert!(
        matches!(&error, NodeError::PluginUnavailable { kind: PluginKind::Pricing, .. }),
        "{error}"
    );
    assert_eq!(node.digest().unwrap(), before);
}

#[test]
fn a_policy_a_kind_does_not_allow_is_refused() {
    let plugins = PluginSet::first_party_native();
    let view = plugins.view();
    let router = view.plugins.get(&PluginId::new("logistics-router").unwrap()).unwrap();
    let implementation = router.versions.values().next().unwrap().as_ref().clone();
    let error = plugins.install(implementation, Some(FailurePolicy::FailOpen), false).unwrap_err();
    assert!(error.to_string().contains("failure policy"), "{error}");
}
