//! A deliberately misbehaving pricing component against the runtime's
//! limits: each misbehaviour is stopped with an error that names it, and
//! the same worker's next call runs on a fresh instance.

// Prices are written as yuan_fen: 200_00 is 200.00 CNY.
#![allow(clippy::inconsistent_digit_grouping)]

mod common;

use std::sync::Arc;

use bazaar_artifacts::HOSTILE_PRICING;
use bazaar_kernel::model::Cart;
use bazaar_kernel::{PluginStateMap, StateWrite};
use bazaar_runtime::{CallError, Pricer, PricingPlugin, Runtime, RuntimeLimits};
use common::{call, cart, plugin_ref, runtime, test_limits};

fn load(runtime: &Runtime) -> PricingPlugin {
    runtime
        .load_pricing(plugin_ref(&HOSTILE_PRICING), HOSTILE_PRICING.wasm)
        .expect("the hostile guest loads")
}

fn behaviour(name: &str) -> String {
    format!(r#"{{"behaviour": "{name}"}}"#)
}

fn tea_cart() -> Cart {
    cart("store-a", &[("TEA-250G", 2, 129_00)])
}

/// Runs `misbehaviour` on a pricer, checks the error with `expected`, then
/// checks that the same pricer's next, well-behaved call succeeds on a
/// new instance.
fn assert_stopped_then_recovered(
    limits: RuntimeLimits,
    misbehaviour: &str,
    expected: impl Fn(&CallError) -> bool,
) {
    let runtime = runtime(limits);
    let plugin = load(&runtime);
    let mut pricer = plugin.pricer();
    let cart = tea_cart();

    let stopped =
        pricer.price_cart(call("store-a", Some(&behaviour(misbehaviour)), Arc::default()), &cart);
    match &stopped.result {
        Err(error) => assert!(expected(error), "{misbehaviour}: unexpected error {error:?}"),
        Ok(output) => panic!("{misbehaviour}: expected an error, got {output:?}"),
    }
    assert_eq!(runtime.live_instances(), 0, "the trapped instance is gone");

    let recovered =
        pricer.price_cart(call("store-a", Some(&behaviour("well-behaved")), Arc::default()), &cart);
    assert_eq!(recovered.result, Ok(Vec::new()));
    let counters = plugin.counters();
    assert_eq!(counters.calls, 2);
    assert_eq!(counters.traps, 1);
    assert_eq!(counters.failures, 1);
    assert_eq!(counters.instantiations, 2);
}

#[test]
fn a_plugin_that_loops_forever_is_stopped_at_its_deadline() {
    let limits = test_limits();
    let deadline_ms = limits.call_deadline_ms;
    assert_stopped_then_recovered(limits, "loop-forever", |error| {
        *error == CallError::DeadlineExceeded { deadline_ms }
    });
}

#[test]
fn a_plugin_that_grows_its_memory_without_end_is_stopped_at_its_cap() {
    let limits = test_limits();
    let limit_bytes = limits.memory_bytes_max;
    assert_stopped_then_recovered(limits, "grow-memory", |error| {
        *error == CallError::MemoryLimitExceeded { limit_bytes }
    });
}

#[test]
fn a_plugin_that_recurses_forever_is_stopped_with_a_stack_overflow() {
    assert_stopped_then_recovered(test_limits(), "recurse-forever", |error| {
        *error == CallError::StackOverflow
    });
}

#[test]
fn a_plugin_that_panics_is_reported_as_a_trap_with_its_backtrace() {
    assert_stopped_then_recovered(test_limits(), "trap", |error| {
        matches!(error, CallError::Trap(text)
            if text.contains("unreachable") && text.contains("wasm backtrace"))
    });
}

#[test]
fn a_plugin_out_of_fuel_is_stopped_when_fuel_metering_is_on() {
    let limits = RuntimeLimits { fuel_per_call: Some(10_000_000), ..test_limits() };
    assert_stopped_then_recovered(limits, "loop-forever", |error| {
        *error == CallError::FuelExhausted
    });
}

#[test]
fn a_million_adjustments_are_refused_as_invalid_output() {
    // Room and time for the guest to build its answer, so the output check
    // is what refuses it rather than the memory cap or the deadline.
    let runtime = runtime(RuntimeLimits {
        memory_bytes_max: 512 * 1024 * 1024,
        call_deadline_ms: 10_000,
        ..test_limits()
    });
    let plugin = load(&runtime);

    let outcome = plugin
        .pricer()
        .price_cart(call("store-a", Some(&behaviour("huge-output")), Arc::default()), &tea_cart());

    assert!(
        matches!(&outcome.result, Err(CallError::InvalidOutput(text))
            if text.contains("1000000 price adjustments")),
        "{:?}",
        outcome.result
    );
}

#[test]
fn an_adjustment_in_another_currency_is_refused_as_invalid_output() {
    let runtime = runtime(test_limits());
    let plugin = load(&runtime);
    let mut pricer = plugin.pricer();

    let outcome = pricer.price_cart(
        call("store-a", Some(&behaviour("wrong-currency")), Arc::default()),
        &tea_cart(),
    );

    assert!(
        matches!(&outcome.result, Err(CallError::InvalidOutput(text))
            if text.contains("\"USD\"") && text.contains("CNY")),
        "{:?}",
        outcome.result
    );
    // The plugin did not trap: its instance serves the next call.
    let next = pricer.price_cart(call("store-a", None, Arc::default()), &tea_cart());
    assert_eq!(next.result, Ok(Vec::new()));
    assert_eq!(plugin.counters().instantiations, 1);
}

#[test]
fn a_discount_above_the_price_passes_the_runtime_for_the_kernel_to_judge() {
    let runtime = runtime(test_limits());
    let plugin = load(&runtime);
    let cart = tea_cart();

    let outcome = plugin.pricer().price_cart(
        call("store-a", Some(&behaviour("discount-above-price")), Arc::default()),
        &cart,
    );

    let adjustments = outcome.result.expect("the shape is valid");
    assert_eq!(adjustments.len(), 1);
    assert_eq!(adjustments[0].amount_off_minor, 2 * 129_00 + 1_00);
    assert_eq!(adjustments[0].code, "above-price");
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
fn state_writes_come_back_and_fed_back_they_advance_the_counter() {
    let runtime = runtime(test_limits());
    let plugin = load(&runtime);
    let mut pricer = plugin.pricer();
    let config = behaviour("state-counter");
    let mut state = Arc::new(PluginStateMap::new());

    for expected in 1..=3u32 {
        let outcome =
            pricer.price_cart(call("store-a", Some(&config), Arc::clone(&state)), &tea_cart());
        assert_eq!(outcome.result, Ok(Vec::new()));
        assert_eq!(
            outcome.state_writes,
            vec![StateWrite {
                plugin: plugin_ref(&HOSTILE_PRICING).id,
                key: "calls".to_owned(),
                value: Some(expected.to_string().into_bytes()),
            }]
        );
        assert_eq!(outcome.log_lines_dropped, 0);
        // The kernel's map is untouched until the kernel applies the writes.
        assert_eq!(
            state.get("calls"),
            (expected > 1).then(|| (expected - 1).to_string().into_bytes()).as_ref()
        );
        state = apply(&state, &outcome.state_writes);
    }
}

#[test]
fn one_stores_state_and_config_are_invisible_to_the_next_stores_call() {
    let runtime = runtime(test_limits());
    let plugin = load(&runtime);
    let mut pricer = plugin.pricer();
    let config_a = r#"{"behaviour": "read-config-and-state", "store": "a"}"#;
    let config_b = r#"{"behaviour": "read-config-and-state", "store": "b"}"#;
    let state_a: PluginStateMap = [("secret".to_owned(), b"a-secret".to_vec())].into();
    let counter_config = behaviour("state-counter");

    let a = pricer.price_cart(call("store-a", Some(config_a), Arc::new(state_a)), &tea_cart());
    let a_writes =
        pricer.price_cart(call("store-a", Some(&counter_config), Arc::default()), &tea_cart());
    let b = pricer.price_cart(call("store-b", Some(config_b), Arc::default()), &tea_cart());
    let b_counter =
        pricer.price_cart(call("store-b", Some(&counter_config), Arc::default()), &tea_cart());

    let reason = |outcome: &bazaar_runtime::CallOutcome<Vec<bazaar_kernel::model::Adjustment>>| {
        outcome.result.as_ref().expect("priced")[0].reason.clone()
    };
    assert_eq!(reason(&a), format!("config={config_a};secret=a-secret"));
    assert_eq!(reason(&b), format!("config={config_b};secret=<none>"));
    // Store A's write is not in store B's state: B's counter starts at 1.
    assert_eq!(a_writes.state_writes[0].value, Some(b"1".to_vec()));
    assert_eq!(b_counter.state_writes[0].value, Some(b"1".to_vec()));
    // One instance served both stores.
    assert_eq!(plugin.counters().instantiations, 1);
}

#[test]
fn a_call_releases_the_stores_config_and_state_when_it_ends() {
    let runtime = runtime(test_limits());
    let plugin = load(&runtime);
    let mut pricer = plugin.pricer();
    let state: Arc<PluginStateMap> = Arc::new([("secret".to_owned(), b"x".to_vec())].into());
    let config: Arc<str> = Arc::from(behaviour("read-config-and-state"));
    let mut plugin_call = call("store-a", None, Arc::clone(&state));
    plugin_call.config_json = Some(Arc::clone(&config));

    let outcome = pricer.price_cart(plugin_call, &tea_cart());

    assert!(outcome.result.is_ok());
    assert_eq!(runtime.live_instances(), 1, "the instance stays warm");
    assert_eq!(Arc::strong_count(&state), 1, "the instance keeps no state map");
    assert_eq!(Arc::strong_count(&config), 1, "the instance keeps no config");
}

#[test]
fn one_instance_serves_a_hundred_calls() {
    let runtime = runtime(test_limits());
    let plugin = load(&runtime);
    let mut pricer = plugin.pricer();

    for _ in 0..100 {
        let outcome = pricer.price_cart(call("store-a", None, Arc::default()), &tea_cart());
        assert_eq!(outcome.result, Ok(Vec::new()));
    }

    let counters = plugin.counters();
    assert_eq!(counters.calls, 100);
    assert_eq!(counters.instantiations, 1);
    assert_eq!(counters.failures, 0);
    assert_eq!(runtime.live_instances(), 1);
    drop(pricer);
    assert_eq!(runtime.live_instances(), 0);
}

#[test]
fn a_thousand_trapping_calls_leak_no_pool_slot() {
    let runtime = runtime(RuntimeLimits { instances_max: 2, ..test_limits() });
    let plugin = load(&runtime);
    let mut pricer = plugin.pricer();
    let trap = behaviour("trap");

    for _ in 0..1_000 {
        let outcome = pricer.price_cart(call("store-a", Some(&trap), Arc::default()), &tea_cart());
        assert!(matches!(outcome.result, Err(CallError::Trap(_))), "{:?}", outcome.result);
    }
    assert_eq!(runtime.live_instances(), 0);
    assert_eq!(plugin.counters().traps, 1_000);

    // Both slots of the pool are still free.
    let mut first = plugin.pricer();
    let mut second = plugin.pricer();
    for pricer in [&mut first, &mut second] {
        let outcome = pricer.price_cart(call("store-a", None, Arc::default()), &tea_cart());
        assert_eq!(outcome.result, Ok(Vec::new()));
    }
    assert_eq!(runtime.live_instances(), 2);
}

#[test]
fn a_full_pool_refuses_another_instance_until_one_is_dropped() {
    let runtime = runtime(RuntimeLimits { instances_max: 2, ..test_limits() });
    let plugin = load(&runtime);
    let mut pricers: Vec<Pricer> = (0..3).map(|_| plugin.pricer()).collect();
    let price = |pricer: &mut Pricer| {
        pricer.price_cart(call("store-a", None, Arc::default()), &tea_cart()).result
    };

    assert!(price(&mut pricers[0]).is_ok());
    assert!(price(&mut pricers[1]).is_ok());
    let refused = price(&mut pricers[2]);
    assert!(matches!(refused, Err(CallError::Instantiate(_))), "{refused:?}");

    pricers.remove(0);
    assert!(price(&mut pricers[1]).is_ok());
}
