//! Per-plugin limits (deadline, memory, fuel, concurrency) below the
//! node's, and the compile budget.

// Prices are written as yuan_fen: 200_00 is 200.00 CNY.
#![allow(clippy::inconsistent_digit_grouping)]

mod common;

use std::sync::Arc;
use std::thread;

use bazaar_artifacts::{HOSTILE_PRICING, PRICING_PROMOTIONS};
use bazaar_kernel::model::{Adjustment, PluginKind};
use bazaar_runtime::{
    CallError, CallOutcome, LoadError, LoadedPlugin, PluginLimits, Pricer, PricingPlugin, Runtime,
    RuntimeLimits,
};
use common::{call, cart, plugin_ref, runtime, test_limits};

fn behaviour(name: &str) -> String {
    format!(r#"{{"behaviour": "{name}"}}"#)
}

fn load_hostile(runtime: &Runtime, limits: PluginLimits) -> Result<PricingPlugin, LoadError> {
    let compiled = runtime.compile(HOSTILE_PRICING.wasm).expect("the hostile guest compiles");
    match runtime.load(plugin_ref(&HOSTILE_PRICING), PluginKind::Pricing, &compiled, limits)? {
        LoadedPlugin::Pricing(plugin) => Ok(plugin),
        other => panic!("loaded as {:?}", other.kind()),
    }
}

fn price(pricer: &mut Pricer, behaviour_name: &str) -> CallOutcome<Vec<Adjustment>> {
    let config = behaviour(behaviour_name);
    pricer.price_cart(
        call("store-a", Some(&config), Arc::default()),
        &cart("store-a", &[("TEA-250G", 2, 129_00)]),
    )
}

#[test]
fn a_plugin_limit_above_the_nodes_is_refused() {
    let runtime = runtime(test_limits());
    let node = test_limits();

    let deadline = load_hostile(
        &runtime,
        PluginLimits {
            call_deadline_ms: Some(node.call_deadline_ms + 1),
            ..PluginLimits::default()
        },
    );
    let memory = load_hostile(
        &runtime,
        PluginLimits {
            memory_bytes_max: Some(node.memory_bytes_max * 2),
            ..PluginLimits::default()
        },
    );

    assert_eq!(
        deadline.err(),
        Some(LoadError::LimitAboveNode {
            limit: "call_deadline_ms",
            requested: node.call_deadline_ms + 1,
            node: node.call_deadline_ms,
        })
    );
    assert_eq!(
        memory.err(),
        Some(LoadError::LimitAboveNode {
            limit: "memory_bytes_max",
            requested: node.memory_bytes_max * 2,
            node: node.memory_bytes_max,
        })
    );
}

#[test]
fn a_fuel_limit_on_a_node_without_fuel_metering_is_refused() {
    let runtime = runtime(test_limits());

    let refused = load_hostile(
        &runtime,
        PluginLimits { fuel_per_call: Some(1_000_000), ..PluginLimits::default() },
    );

    assert_eq!(refused.err(), Some(LoadError::FuelNotMetered { requested: 1_000_000 }));
}

#[test]
fn a_plugins_own_deadline_stops_it_before_the_nodes() {
    let runtime = runtime(test_limits());
    let plugin = load_hostile(
        &runtime,
        PluginLimits { call_deadline_ms: Some(30), ..PluginLimits::default() },
    )
    .expect("it loads");

    let outcome = price(&mut plugin.pricer(), "loop-forever");

    assert_eq!(outcome.result, Err(CallError::DeadlineExceeded { deadline_ms: 30 }));
}

#[test]
fn a_plugins_own_memory_cap_stops_it_below_the_nodes() {
    let runtime = runtime(test_limits());
    let cap_bytes = 8 * 1024 * 1024;
    let plugin = load_hostile(
        &runtime,
        PluginLimits { memory_bytes_max: Some(cap_bytes), ..PluginLimits::default() },
    )
    .expect("it loads");

    let outcome = price(&mut plugin.pricer(), "grow-memory");

    assert_eq!(outcome.result, Err(CallError::MemoryLimitExceeded { limit_bytes: cap_bytes }));
}

#[test]
fn a_plugins_own_fuel_budget_applies_on_a_metering_node() {
    let runtime = runtime(RuntimeLimits { fuel_per_call: Some(100_000_000), ..test_limits() });
    let generous = load_hostile(&runtime, PluginLimits::default()).expect("it loads");
    let starved =
        load_hostile(&runtime, PluginLimits { fuel_per_call: Some(1), ..PluginLimits::default() })
            .expect("it loads");

    let fed = price(&mut generous.pricer(), "well-behaved");
    let hungry = price(&mut starved.pricer(), "well-behaved");

    assert_eq!(fed.result, Ok(Vec::new()));
    assert_eq!(hungry.result, Err(CallError::FuelExhausted));
}

#[test]
fn a_call_over_the_concurrency_cap_fails_at_once_while_another_is_running() {
    // The spinning call ends at this deadline; the other thread's call is
    // made while it spins.
    let runtime = runtime(RuntimeLimits { call_deadline_ms: 3_000, ..test_limits() });
    let plugin = load_hostile(
        &runtime,
        PluginLimits { concurrency_max: Some(1), ..PluginLimits::default() },
    )
    .expect("it loads");
    let (started, spinning) = std::sync::mpsc::channel();

    let slow = thread::spawn({
        let plugin = plugin.clone();
        move || {
            let mut pricer = plugin.pricer();
            started.send(()).expect("the test waits for the start");
            price(&mut pricer, "loop-forever").result
        }
    });
    spinning.recv().expect("the slow thread starts");
    // The slow call is admitted when the plugin counts it in flight.
    while plugin.counters().in_flight == 0 {
        assert!(!slow.is_finished(), "the slow call ended before it was counted");
        thread::yield_now();
    }
    let refused = price(&mut plugin.pricer(), "well-behaved");

    assert_eq!(refused.result, Err(CallError::ConcurrencyLimit { max: 1 }));
    let slow_result = slow.join().expect("the slow thread does not panic");
    assert_eq!(slow_result, Err(CallError::DeadlineExceeded { deadline_ms: 3_000 }));
    // With the slow call over, the cap admits the next one.
    assert_eq!(plugin.counters().in_flight, 0);
    assert_eq!(price(&mut plugin.pricer(), "well-behaved").result, Ok(Vec::new()));
}

#[test]
fn a_compile_over_its_budget_is_refused_and_a_later_compile_succeeds_once_the_slot_frees() {
    let runtime = runtime(RuntimeLimits { compile_budget_ms: 1, ..test_limits() });

    let refused = runtime.compile(PRICING_PROMOTIONS.wasm);
    // Waits for the overrun compilation to finish in the background, then
    // compiles within a budget a real component fits.
    let compiled = runtime.compile_within(PRICING_PROMOTIONS.wasm, 60_000);

    assert_eq!(refused.err(), Some(LoadError::CompileBudgetExceeded { budget_ms: 1 }));
    let compiled = compiled.expect("the component compiles with a normal budget");
    let loaded = runtime.load(
        plugin_ref(&PRICING_PROMOTIONS),
        PluginKind::Pricing,
        &compiled,
        PluginLimits::default(),
    );
    assert_eq!(loaded.map(|plugin| plugin.kind()).ok(), Some(PluginKind::Pricing));
}
