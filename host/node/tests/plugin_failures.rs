//! Failure policies through the real node and real components: a pricing
//! plugin that hangs, traps or returns nonsense fails open (the order is
//! placed at catalogue price and flagged with the reason), a broken router
//! falls back to the built-in one, and stores that do not use the broken
//! plugin are untouched.

use bazaar_kernel::Command;
use bazaar_kernel::model::{Order, PluginId, Router, StoreId};
use bazaar_node::node::{Node, NodeConfig, NodeError};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed;

fn node_with_hostile_pricing(dir: &std::path::Path) -> Node {
    let plugins = PluginSet::first_party_wasm().unwrap();
    plugins.add_artifact(&bazaar_artifacts::HOSTILE_PRICING).unwrap();
    Node::open(NodeConfig::new(dir), plugins).unwrap()
}

fn configure(node: &Node, store: &StoreId, plugin: &str, config: &str) {
    node.execute(Command::ConfigurePlugin {
        store: store.clone(),
        plugin: PluginId::new(plugin).unwrap(),
        config_json: Some(config.into()),
        settings: bazaar_kernel::PluginSettings::default(),
    })
    .unwrap();
}

fn order(node: &Node, store: &StoreId, customer: u64) -> Order {
    let request = seed::order_request(customer, vec![(seed::ordinary_sku(10), 2)], None, None);
    let receipt = node.place_order(store.clone(), request).unwrap();
    let store_id = store.clone();
    node.read(store, move |shard| {
        shard.store(&store_id).unwrap().order(receipt.order).unwrap().clone()
    })
    .unwrap()
}

#[test]
fn a_hanging_or_trapping_pricing_plugin_fails_open_and_flags_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_hostile_pricing(dir.path());
    let broken = StoreId::new("broken").unwrap();
    let healthy = StoreId::new("healthy").unwrap();
    seed::seed_flagship_store(&node, &broken, 10).unwrap();
    seed::seed_flagship_store(&node, &healthy, 10).unwrap();
    for (behaviour, expected) in [
        ("loop-forever", &["deadline"][..]),
        ("trap", &["trap"]),
        // Growing to the memory cap may take longer than the call deadline;
        // either limit stops it.
        ("grow-memory", &["memory", "deadline"]),
        ("discount-above-price", &["exceeds the subtotal"]),
    ] {
        configure(&node, &broken, "hostile-pricing", &format!(r#"{{"behaviour": "{behaviour}"}}"#));
        let flagged = order(&node, &broken, 1);
        assert_eq!(
            flagged.pricing_failures.len(),
            1,
            "{behaviour}: {:?}",
            flagged.pricing_failures
        );
        let failure = &flagged.pricing_failures[0];
        assert_eq!(failure.plugin.id.as_str(), "hostile-pricing");
        let reason = failure.reason.to_lowercase();
        assert!(expected.iter().any(|e| reason.contains(e)), "{behaviour}: {}", failure.reason);
        // The promotions plugin ran first and its discount stands.
        assert!(flagged.totals.discount_minor > 0, "{behaviour}: promotions were lost");
        let clean = order(&node, &healthy, 2);
        assert!(clean.pricing_failures.is_empty(), "{behaviour} leaked into another store");
        assert_eq!(clean.totals.discount_minor, flagged.totals.discount_minor);
    }
    node.check_invariants().unwrap();
}

#[test]
fn a_router_that_fails_falls_back_to_the_built_in_router() {
    let dir = tempfile::tempdir().unwrap();
    let node =
        Node::open(NodeConfig::new(dir.path()), PluginSet::first_party_wasm().unwrap()).unwrap();
    let store = StoreId::new("shop").unwrap();
    seed::seed_flagship_store(&node, &store, 10).unwrap();
    let routed = order(&node, &store, 3);
    assert!(
        matches!(routed.shipment_plan.routed_by, Router::Plugin(ref p) if p.id.as_str() == "logistics-router")
    );
    configure(&node, &store, "logistics-router", r#"{"carriers": "not a list"}"#);
    let fallback = order(&node, &store, 3);
    assert_eq!(fallback.shipment_plan.routed_by, Router::BuiltIn);
    let reason = fallback.shipment_plan.fallback_reason.clone().unwrap();
    assert!(reason.starts_with("logistics-router:"), "{reason}");
    assert_eq!(fallback.shipment_plan.shipments.len(), 1);
    node.check_invariants().unwrap();
}

#[test]
fn risk_fails_closed_and_a_rejection_reserves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = PluginSet::first_party_wasm().unwrap();
    plugins.add_artifact(&bazaar_artifacts::HOSTILE_RISK).unwrap();
    let node = Node::open(NodeConfig::new(dir.path()), plugins).unwrap();
    let guarded = StoreId::new("guarded").unwrap();
    let healthy = StoreId::new("healthy").unwrap();
    seed::seed_flagship_store(&node, &guarded, 10).unwrap();
    seed::seed_flagship_store(&node, &healthy, 10).unwrap();
    let request =
        |customer| seed::order_request(customer, vec![(seed::ordinary_sku(1), 1)], None, None);

    // The first-party guard approves, and its approval is kept with the order.
    configure(
        &node,
        &guarded,
        "risk-guard",
        r#"{"currency": "CNY", "blocked_customers": ["c13"]}"#,
    );
    let approved = node.place_order(guarded.clone(), request(12)).unwrap();
    let id = guarded.clone();
    let checks = node
        .read(&guarded, move |shard| {
            shard.store(&id).unwrap().order(approved.order).unwrap().risk_checks.clone()
        })
        .unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!(
        (checks[0].plugin.id.as_str(), checks[0].plugin.version.as_str()),
        ("risk-guard", "0.1.0")
    );

    let before = node.digest().unwrap();
    let error = node.place_order(guarded.clone(), request(13)).unwrap_err();
    assert!(
        matches!(&error, NodeError::RiskRejected { code, .. } if code == "customer-blocked"),
        "{error}"
    );
    assert_eq!(node.digest().unwrap(), before, "a rejected order changed the state");

    // A risk plugin that traps or hangs stops the order: risk fails closed.
    for behaviour in ["trap", "loop-forever"] {
        configure(&node, &guarded, "hostile-risk", &format!(r#"{{"behaviour": "{behaviour}"}}"#));
        let before = node.digest().unwrap();
        let error = node.place_order(guarded.clone(), request(14)).unwrap_err();
        assert!(
            matches!(&error, NodeError::RiskUnavailable { plugin, .. } if plugin == "hostile-risk@0.1.0"),
            "{behaviour}: {error}"
        );
        assert_eq!(
            node.digest().unwrap(),
            before,
            "{behaviour}: a refused order changed the state"
        );
        // Another store, without the broken plugin, keeps selling.
        node.place_order(healthy.clone(), request(15)).unwrap();
    }
    node.check_invariants().unwrap();
}

#[test]
fn a_plugin_failing_repeatedly_for_a_store_is_skipped_by_its_breaker_until_a_probe_succeeds() {
    use bazaar_node::breaker::{BreakerState, FAILURES_TO_OPEN};
    let dir = tempfile::tempdir().unwrap();
    let plugins = PluginSet::first_party_wasm().unwrap();
    plugins.add_artifact(&bazaar_artifacts::HOSTILE_PRICING).unwrap();
    let node = Node::open(NodeConfig::new(dir.path()), plugins.clone()).unwrap();
    let broken = StoreId::new("broken").unwrap();
    let healthy = StoreId::new("healthy").unwrap();
    seed::seed_flagship_store(&node, &broken, 10).unwrap();
    seed::seed_flagship_store(&node, &healthy, 10).unwrap();
    configure(&node, &broken, "hostile-pricing", r#"{"behaviour": "loop-forever"}"#);
    configure(&node, &healthy, "hostile-pricing", r#"{"behaviour": "well-behaved"}"#);
    let hostile_calls = || {
        plugins
            .call_counters()
            .into_iter()
            .find(|(plugin, _)| plugin.id.as_str() == "hostile-pricing")
            .unwrap()
            .1
            .calls
    };

    for attempt in 0..FAILURES_TO_OPEN + 3 {
        let flagged = order(&node, &broken, 1);
        let reason = &flagged.pricing_failures[0].reason;
        if attempt < FAILURES_TO_OPEN {
            assert!(reason.contains("deadline"), "attempt {attempt}: {reason}");
        } else {
            assert!(reason.starts_with("circuit breaker open"), "attempt {attempt}: {reason}");
        }
    }
    // Only the calls before the breaker opened reached the plugin.
    assert_eq!(hostile_calls(), u64::from(FAILURES_TO_OPEN));
    let key = (broken.clone(), PluginId::new("hostile-pricing").unwrap());
    assert!(matches!(plugins.breakers().get(&key), Some(BreakerState::Open { .. })));
    // The same plugin keeps serving the other store.
    assert!(order(&node, &healthy, 2).pricing_failures.is_empty());

    // Fixed, and after the backoff one probe goes through and closes it.
    configure(&node, &broken, "hostile-pricing", r#"{"behaviour": "well-behaved"}"#);
    std::thread::sleep(std::time::Duration::from_millis(
        bazaar_node::breaker::BACKOFF_MS_INITIAL + 100,
    ));
    assert!(order(&node, &broken, 3).pricing_failures.is_empty());
    assert!(!plugins.breakers().contains_key(&key));
}
