//! The risk extension point end to end: the first-party risk-guard
//! component judging orders in the runtime, its state carried from call to
//! call the way the kernel carries it, and a misbehaving risk component
//! stopped with an error that names the cause.

// Prices are written as yuan_fen: 7999_00 is 7999.00 CNY.
#![allow(clippy::inconsistent_digit_grouping)]

mod common;

use std::sync::Arc;

use bazaar_artifacts::{HOSTILE_RISK, PRICING_PROMOTIONS, RISK_GUARD};
use bazaar_kernel::model::{Cart, CustomerId};
use bazaar_kernel::{PluginStateMap, StateWrite};
use bazaar_runtime::{
    CallError, CallOutcome, CustomerHistory, Decision, LoadError, PluginError, RiskAssessor,
    RiskPlugin, RiskRequest, RiskVerdict, Runtime, UnitsHeld,
};
use common::{NOW_MS, call, cart, plugin_ref, runtime, test_limits};

const FLASH_SALE: &str = r#"{
    "currency": "CNY",
    "blocked_customers": ["scalper-007"],
    "max_order_total": "20000.00",
    "max_units_per_order": {
        "any_sku": 10,
        "skus": [{ "sku": "PHONE-17-PRO", "max_units": 2 }]
    },
    "max_units_per_customer": { "skus": [{ "sku": "PHONE-17-PRO", "max_units": 4 }] },
    "max_orders_per_customer": 50,
    "max_orders_per_customer_per_minute": 3,
    "max_customers_per_address": 3
}"#;

fn load_risk_guard(runtime: &Runtime) -> RiskPlugin {
    runtime.load_risk(plugin_ref(&RISK_GUARD), RISK_GUARD.wasm).expect("risk-guard loads")
}

/// A phone order of `customer`, placed `after_ms` after the test's `NOW_MS`.
fn phone_cart(customer: &str, quantity: u32, after_ms: u64) -> Cart {
    let mut cart = cart("store-a", &[("PHONE-17-PRO", quantity, 7999_00)]);
    cart.customer.id = CustomerId::new(customer).expect("valid customer id");
    cart.placed_at_ms = NOW_MS + after_ms;
    cart
}

/// The request for `cart`: nothing off, a customer with no history.
fn request(cart: Cart) -> RiskRequest {
    let total_minor =
        cart.lines.iter().map(|line| line.unit_price_minor * i64::from(line.quantity)).sum();
    let units_held =
        cart.lines.iter().map(|line| UnitsHeld { sku: line.sku.clone(), units: 0 }).collect();
    RiskRequest { cart, total_minor, history: CustomerHistory { orders_placed: 0, units_held } }
}

/// Assesses `request` for store A with `config` and `state`.
fn assess(
    assessor: &mut RiskAssessor,
    config: &str,
    state: &Arc<PluginStateMap>,
    request: &RiskRequest,
) -> CallOutcome<RiskVerdict> {
    assessor.assess_order(call("store-a", Some(config), Arc::clone(state)), request)
}

fn verdict(outcome: &CallOutcome<RiskVerdict>) -> &RiskVerdict {
    outcome.result.as_ref().expect("a verdict")
}

/// Applies `writes` to `state` the way the kernel does.
fn apply(state: &PluginStateMap, writes: &[StateWrite]) -> Arc<PluginStateMap> {
    let mut next = state.clone();
    for write in writes {
        match &write.value {
            Some(value) => next.insert(write.key.clone(), value.clone()),
            None => next.remove(&write.key),
        };
    }
    Arc::new(next)
}

#[test]
fn risk_guard_approves_a_normal_order_and_hands_back_what_it_remembers() {
    let runtime = runtime(test_limits());
    let plugin = load_risk_guard(&runtime);
    let mut assessor = plugin.assessor();

    let outcome =
        assess(&mut assessor, FLASH_SALE, &Arc::default(), &request(phone_cart("alice", 1, 0)));

    let verdict = verdict(&outcome);
    assert_eq!(verdict.decision, Decision::Approve);
    assert_eq!(verdict.code, "approved");
    assert_eq!(verdict.plugin, plugin_ref(&RISK_GUARD));
    // One write for the order-rate rule, one for the address rule.
    let keys: Vec<&str> = outcome.state_writes.iter().map(|write| write.key.as_str()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|key| key.starts_with("rate/")), "{keys:?}");
    assert!(keys.iter().any(|key| key.starts_with("address/")), "{keys:?}");
    assert!(outcome.state_writes.iter().all(|write| write.plugin == plugin_ref(&RISK_GUARD).id));
}

#[test]
fn risk_guard_rejects_by_each_stateless_rule_with_its_code_and_reason() {
    let runtime = runtime(test_limits());
    let plugin = load_risk_guard(&runtime);
    let mut assessor = plugin.assessor();

    let blocked = request(phone_cart("scalper-007", 1, 0));
    let mut expensive = request(phone_cart("alice", 1, 0));
    expensive.total_minor = 20000_01;
    let mut many = request(phone_cart("alice", 3, 0));
    many.total_minor = 100_00;
    let mut hoarder = request(phone_cart("alice", 2, 0));
    hoarder.history.units_held[0].units = 3;
    let mut regular = request(phone_cart("alice", 1, 0));
    regular.history.orders_placed = 50;
    let cases = [
        (
            blocked,
            "customer-blocked",
            "This account cannot place orders in this store; please contact the store's \
             customer service.",
        ),
        (
            expensive,
            "order-total-over-limit",
            "Orders in this store are limited to 20000.00 CNY each; this order comes to \
             20000.01 CNY.",
        ),
        (
            many,
            "units-per-order-over-limit",
            "At most 2 units of PHONE-17-PRO per order; this order has 3.",
        ),
        (
            hoarder,
            "units-per-customer-over-limit",
            "At most 4 units of PHONE-17-PRO per customer; you already have 3 in earlier orders \
             and this order adds 2.",
        ),
        (
            regular,
            "orders-per-customer-over-limit",
            "At most 50 open orders per customer in this store; you already have 50.",
        ),
    ];

    for (request, code, reason) in cases {
        let outcome = assess(&mut assessor, FLASH_SALE, &Arc::default(), &request);
        let verdict = verdict(&outcome);
        assert_eq!(verdict.decision, Decision::Reject, "{code}");
        assert_eq!(verdict.code, code);
        assert_eq!(verdict.reason, reason);
        assert!(outcome.state_writes.is_empty(), "{code}: a rejection remembers nothing");
    }
    assert_eq!(plugin.counters().instantiations, 1);
}

#[test]
fn the_order_rate_rule_advances_as_each_calls_state_writes_are_fed_back() {
    let runtime = runtime(test_limits());
    let plugin = load_risk_guard(&runtime);
    let mut assessor = plugin.assessor();
    let config = r#"{"max_orders_per_customer_per_minute": 3}"#;
    let mut state = Arc::new(PluginStateMap::new());

    for after_ms in [0, 20_000, 40_000] {
        let outcome =
            assess(&mut assessor, config, &state, &request(phone_cart("alice", 1, after_ms)));
        assert!(verdict(&outcome).is_approved(), "order at +{after_ms} ms");
        state = apply(&state, &outcome.state_writes);
    }

    let fourth = assess(&mut assessor, config, &state, &request(phone_cart("alice", 1, 59_999)));
    assert_eq!(verdict(&fourth).code, "order-rate-over-limit");
    assert_eq!(
        verdict(&fourth).reason,
        "At most 3 orders per customer per minute; you placed 3 in the last minute. Please try \
         again shortly."
    );
    assert!(fourth.state_writes.is_empty());
    // Without the writes fed back, the plugin remembers nothing: its memory
    // is the store's state, not the instance.
    let forgetful =
        assess(&mut assessor, config, &Arc::default(), &request(phone_cart("alice", 1, 59_999)));
    assert!(verdict(&forgetful).is_approved());
    // A minute after the first order, it no longer counts.
    let later = assess(&mut assessor, config, &state, &request(phone_cart("alice", 1, 60_000)));
    assert!(verdict(&later).is_approved());
}

#[test]
fn the_customers_per_address_rule_advances_as_each_calls_state_writes_are_fed_back() {
    let runtime = runtime(test_limits());
    let plugin = load_risk_guard(&runtime);
    let mut assessor = plugin.assessor();
    let config = r#"{"max_customers_per_address": 3}"#;
    let mut state = Arc::new(PluginStateMap::new());

    for customer in ["alice", "bob", "carol"] {
        let outcome = assess(&mut assessor, config, &state, &request(phone_cart(customer, 1, 0)));
        assert!(verdict(&outcome).is_approved(), "{customer}");
        state = apply(&state, &outcome.state_writes);
    }

    let dave = assess(&mut assessor, config, &state, &request(phone_cart("dave", 1, 1_000)));
    assert_eq!(verdict(&dave).code, "customers-per-address-over-limit");
    assert_eq!(
        verdict(&dave).reason,
        "Orders to one address are limited to 3 customer accounts, and 3 have already used this \
         address."
    );
    let bob_again = assess(&mut assessor, config, &state, &request(phone_cart("bob", 1, 2_000)));
    assert!(verdict(&bob_again).is_approved(), "a known customer may return");
}

#[test]
fn risk_guard_without_configuration_approves_every_order() {
    let runtime = runtime(test_limits());
    let plugin = load_risk_guard(&runtime);
    let mut order = request(phone_cart("scalper-007", 500, 0));
    order.history.orders_placed = 1_000_000;

    let outcome = plugin.assessor().assess_order(call("store-a", None, Arc::default()), &order);

    assert!(verdict(&outcome).is_approved());
    assert!(outcome.state_writes.is_empty());
}

#[test]
fn a_broken_risk_guard_configuration_comes_back_as_the_plugins_own_error() {
    let runtime = runtime(test_limits());
    let plugin = load_risk_guard(&runtime);
    let config = r#"{"max_customers_per_address": 0}"#;

    let outcome = assess(
        &mut plugin.assessor(),
        config,
        &Arc::default(),
        &request(phone_cart("alice", 1, 0)),
    );

    assert!(
        matches!(&outcome.result, Err(CallError::Plugin(PluginError::InvalidConfig(text)))
            if text.contains("max_customers_per_address")),
        "{:?}",
        outcome.result
    );
}

fn load_hostile(runtime: &Runtime) -> RiskPlugin {
    runtime.load_risk(plugin_ref(&HOSTILE_RISK), HOSTILE_RISK.wasm).expect("hostile-risk loads")
}

fn behaviour(name: &str) -> String {
    format!(r#"{{"behaviour": "{name}"}}"#)
}

#[test]
fn a_risk_plugin_may_reject_every_order() {
    let runtime = runtime(test_limits());
    let plugin = load_hostile(&runtime);

    let outcome = assess(
        &mut plugin.assessor(),
        &behaviour("reject-all"),
        &Arc::default(),
        &request(phone_cart("alice", 1, 0)),
    );

    assert_eq!(
        outcome.result,
        Ok(RiskVerdict {
            decision: Decision::Reject,
            code: "rejected-on-request".to_owned(),
            reason: "This test plugin rejects every order".to_owned(),
            plugin: plugin_ref(&HOSTILE_RISK),
        })
    );
}

/// Runs `misbehaviour`, checks the error with `expected` and whether the
/// instance was thrown away, then checks that the same assessor's next,
/// well-behaved call approves.
fn assert_stopped_then_recovered(
    misbehaviour: &str,
    instance_discarded: bool,
    expected: impl Fn(&CallError) -> bool,
) {
    let runtime = runtime(test_limits());
    let plugin = load_hostile(&runtime);
    let mut assessor = plugin.assessor();
    let order = request(phone_cart("alice", 1, 0));

    let stopped = assess(&mut assessor, &behaviour(misbehaviour), &Arc::default(), &order);
    match &stopped.result {
        Err(error) => assert!(expected(error), "{misbehaviour}: unexpected error {error:?}"),
        Ok(verdict) => panic!("{misbehaviour}: expected an error, got {verdict:?}"),
    }
    assert!(stopped.state_writes.is_empty());

    let recovered = assess(&mut assessor, &behaviour("well-behaved"), &Arc::default(), &order);
    assert!(verdict(&recovered).is_approved(), "{misbehaviour}: {:?}", recovered.result);
    let counters = plugin.counters();
    assert_eq!(counters.calls, 2);
    assert_eq!(counters.failures, 1);
    assert_eq!(counters.traps, u64::from(instance_discarded));
    assert_eq!(counters.instantiations, 1 + u64::from(instance_discarded));
}

#[test]
fn a_risk_plugin_that_loops_forever_is_stopped_at_its_deadline() {
    let deadline_ms = test_limits().call_deadline_ms;
    assert_stopped_then_recovered("loop-forever", true, |error| {
        *error == CallError::DeadlineExceeded { deadline_ms }
    });
}

#[test]
fn a_risk_plugin_that_panics_is_reported_as_a_trap() {
    assert_stopped_then_recovered(
        "trap",
        true,
        |error| matches!(error, CallError::Trap(text) if text.contains("unreachable")),
    );
}

#[test]
fn a_verdict_with_a_reason_far_over_the_limit_is_refused_as_invalid_output() {
    assert_stopped_then_recovered("garbage", false, |error| {
        matches!(error, CallError::InvalidOutput(text)
            if text.contains("reason is 100000 bytes long; at most 256"))
    });
}

#[test]
fn a_rejection_without_a_reason_is_refused_as_invalid_output() {
    assert_stopped_then_recovered(
        "empty-reason",
        false,
        |error| matches!(error, CallError::InvalidOutput(text) if text.contains("empty reason")),
    );
}

#[test]
fn the_risk_component_loaded_as_pricing_is_refused_for_the_wrong_world() {
    let runtime = runtime(test_limits());

    let refused = runtime.load_pricing(plugin_ref(&RISK_GUARD), RISK_GUARD.wasm);

    match refused.err() {
        Some(LoadError::WrongWorld { world, detail }) => {
            assert_eq!(world, "pricing");
            assert!(detail.contains("bazaar:commerce/pricer"), "{detail}");
        }
        other => panic!("expected a wrong-world refusal, got {other:?}"),
    }
}

#[test]
fn the_pricing_component_loaded_as_risk_is_refused_for_the_wrong_world() {
    let runtime = runtime(test_limits());

    let refused = runtime.load_risk(plugin_ref(&PRICING_PROMOTIONS), PRICING_PROMOTIONS.wasm);

    match refused.err() {
        Some(LoadError::WrongWorld { world, detail }) => {
            assert_eq!(world, "risk");
            assert!(detail.contains("bazaar:commerce/risk-assessor"), "{detail}");
        }
        other => panic!("expected a wrong-world refusal, got {other:?}"),
    }
}
