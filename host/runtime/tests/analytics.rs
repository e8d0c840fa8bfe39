//! The analytics extension point end to end: the first-party
//! analytics-live component folding a store's events into its state, its
//! state carried from batch to batch the way the node journals it, its
//! queries answered from that state alone, and the batches and queries
//! the runtime refuses before the plugin sees them.

// Prices are written as yuan_fen: 4999_00 is 4999.00 CNY.
#![allow(clippy::inconsistent_digit_grouping)]

// Every test binary compiles the shared helpers whole; this one calls
// plugins with events, not carts.
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use bazaar_artifacts::{ANALYTICS_LIVE, PRICING_PROMOTIONS};
use bazaar_kernel::event::{Event, EventDiscount, EventKind, EventLine, RefusalReason};
use bazaar_kernel::model::{
    Capability, CustomerId, PluginId, PluginKind, Sku, StockLevel, StoreId, Totals, WarehouseId,
};
use bazaar_kernel::money::Currency;
use bazaar_kernel::{PluginStateMap, StateWrite};
use bazaar_runtime::{
    AnalyticsPlugin, Analyzer, CallError, CallOutcome, EVENTS_PER_BATCH_MAX, LoadError,
    LoadedPlugin, PluginError, PluginLimits, QUERY_ARGUMENTS_BYTES_MAX, Runtime,
};
use common::{NOW_MS, call, plugin_ref, runtime, test_limits};
use serde_json::{Value, json};

const FLASH: &str = r#"{"flash_skus": ["D11-PHONE"]}"#;

fn load_analytics_live(runtime: &Runtime) -> AnalyticsPlugin {
    runtime
        .load_analytics(plugin_ref(&ANALYTICS_LIVE), ANALYTICS_LIVE.wasm)
        .expect("analytics-live loads")
}

/// Builds one store's events with increasing sequence numbers.
struct Stream {
    /// The store.
    store: StoreId,
    /// The store's currency.
    currency: Currency,
    /// The next event's sequence number.
    next_sequence: u64,
    /// The next event's time.
    now_ms: u64,
    /// The events so far.
    events: Vec<Event>,
}

impl Stream {
    fn new(store: &str, currency: &str) -> Self {
        Self {
            store: StoreId::new(store).unwrap(),
            currency: Currency::parse(currency).unwrap(),
            next_sequence: 1,
            now_ms: NOW_MS,
            events: Vec::new(),
        }
    }

    fn push(&mut self, kind: EventKind) -> &mut Self {
        self.events.push(Event {
            sequence: self.next_sequence,
            store: self.store.clone(),
            currency: self.currency,
            at_ms: self.now_ms,
            kind,
        });
        self.next_sequence += 1;
        self
    }

    fn after_ms(&mut self, elapsed_ms: u64) -> &mut Self {
        self.now_ms += elapsed_ms;
        self
    }

    /// Order `order` of `(sku, quantity, unit price)` lines with `discounts`
    /// of `(code, amount)` from pricing-promotions.
    fn placed(
        &mut self,
        order: u64,
        lines: &[(&str, u32, i64)],
        discounts: &[(&str, i64)],
    ) -> &mut Self {
        let subtotal_minor =
            lines.iter().map(|&(_, quantity, price)| i64::from(quantity) * price).sum::<i64>();
        let discount_minor = discounts.iter().map(|&(_, amount)| amount).sum::<i64>();
        self.push(EventKind::OrderPlaced {
            order,
            customer: CustomerId::new(format!("customer-{order}")).unwrap(),
            lines: lines
                .iter()
                .map(|&(sku, quantity, unit_price_minor)| EventLine {
                    sku: Sku::new(sku).unwrap(),
                    quantity,
                    unit_price_minor,
                })
                .collect(),
            totals: Totals {
                subtotal_minor,
                discount_minor,
                shipping_minor: 0,
                total_minor: subtotal_minor - discount_minor,
            },
            discounts: discounts
                .iter()
                .map(|&(code, amount_minor)| EventDiscount {
                    plugin: PluginId::new("pricing-promotions").unwrap(),
                    code: code.to_owned(),
                    amount_minor,
                })
                .collect(),
        })
    }

    fn cancelled(&mut self, order: u64, total_minor: i64) -> &mut Self {
        self.push(EventKind::OrderCancelled { order, total_minor })
    }

    fn stock(&mut self, sku: &str, warehouse: &str, available: u64, reserved: u64) -> &mut Self {
        self.push(EventKind::StockChanged {
            sku: Sku::new(sku).unwrap(),
            warehouse: WarehouseId::new(warehouse).unwrap(),
            level: StockLevel {
                on_hand: available + reserved,
                available,
                reserved,
                sold: 0,
                shipped: 0,
            },
        })
    }

    fn refused(&mut self, sku: &str, attempts: u32, reason: RefusalReason) -> &mut Self {
        self.push(EventKind::CheckoutRefused {
            sku: Sku::new(sku).unwrap(),
            attempts,
            units: u64::from(attempts),
            reason,
        })
    }

    fn take(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

/// The opening seconds of a flash sale of store A.
fn opening() -> Vec<Event> {
    let mut stream = Stream::new("store-a", "CNY");
    stream
        .placed(1, &[("D11-PHONE", 1, 4999_00), ("CASE", 2, 49_00)], &[("d11-flash", 500_00)])
        .stock("D11-PHONE", "WH-SH", 99, 1)
        .after_ms(1_000)
        .placed(2, &[("D11-PHONE", 2, 4999_00)], &[])
        .stock("D11-PHONE", "WH-SH", 97, 3)
        .refused("D11-PHONE", 4, RefusalReason::SoldOut)
        .after_ms(1_000)
        .cancelled(2, 2 * 4999_00);
    stream.take()
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

/// Ingests `events` for store A and returns the state after the batch.
fn ingest(
    analyzer: &mut Analyzer,
    state: &Arc<PluginStateMap>,
    events: &[Event],
) -> Arc<PluginStateMap> {
    let outcome = analyzer.ingest(call("store-a", Some(FLASH), Arc::clone(state)), events);
    assert_eq!(outcome.result, Ok(()));
    assert!(outcome.state_writes.iter().all(|write| write.plugin.as_str() == "analytics-live"));
    apply(state, &outcome.state_writes)
}

fn ask(analyzer: &mut Analyzer, state: &Arc<PluginStateMap>, name: &str, arguments: &str) -> Value {
    let outcome = analyzer.query(call("store-a", Some(FLASH), Arc::clone(state)), name, arguments);
    assert!(outcome.state_writes.is_empty(), "a query writes nothing");
    let answer = outcome.result.unwrap_or_else(|error| panic!("query {name}: {error}"));
    serde_json::from_str(&answer).expect("answers are JSON")
}

fn refused_input(outcome: CallOutcome<impl std::fmt::Debug>, fragment: &str) {
    assert!(outcome.state_writes.is_empty());
    match outcome.result {
        Err(CallError::InvalidInput(text)) => {
            assert!(text.contains(fragment), "{text:?} does not mention {fragment:?}")
        }
        other => panic!("expected invalid input mentioning {fragment:?}, got {other:?}"),
    }
}

#[test]
fn analytics_live_folds_a_batch_and_answers_the_headline_from_its_state() {
    let runtime = runtime(test_limits());
    let mut analyzer = load_analytics_live(&runtime).analyzer();
    let state = ingest(&mut analyzer, &Arc::default(), &opening());

    let headline = ask(&mut analyzer, &state, "headline", "{}");
    // Order 1: 4999.00 + 98.00 - 500.00; order 2 placed and cancelled.
    assert_eq!(headline["currency"], "CNY");
    assert_eq!(headline["gmv_minor"], 4597_00);
    assert_eq!(headline["orders"], 1);
    assert_eq!(headline["orders_placed"], 2);
    assert_eq!(headline["orders_cancelled"], 1);
    assert_eq!(headline["average_order_value_minor"], 4597_00);
    assert_eq!(headline["refused_attempts"], 4);
    assert_eq!(headline["last_sequence"], 6);
    assert_eq!(headline["as_of_ms"], NOW_MS + 2_000);
}

#[test]
fn every_query_answers_through_the_component() {
    let runtime = runtime(test_limits());
    let mut analyzer = load_analytics_live(&runtime).analyzer();
    let state = ingest(&mut analyzer, &Arc::default(), &opening());

    let top = ask(&mut analyzer, &state, "top-skus", r#"{"by": "revenue", "limit": 2}"#);
    assert_eq!(
        top["skus"],
        json!([
            {"rank": 1, "sku": "D11-PHONE", "units": 3, "revenue_minor": 3 * 4999_00},
            {"rank": 2, "sku": "CASE", "units": 2, "revenue_minor": 98_00},
        ])
    );
    let phone = &ask(&mut analyzer, &state, "sell-through", "{}")["skus"][0];
    assert_eq!(phone["attempts"], 6);
    assert_eq!(phone["orders"], 2);
    assert_eq!(phone["available"], 97);
    let discounts = ask(&mut analyzer, &state, "discounts", "{}");
    assert_eq!(discounts["total_minor"], 500_00);
    let series = ask(&mut analyzer, &state, "gmv-series", "{}");
    assert_eq!(series["seconds"].as_array().map(Vec::len), Some(120));
    let last = &series["seconds"][119];
    assert_eq!(last["cancelled_orders"], 1);
    assert_eq!(last["gmv_minor"], -2 * 4999_00);
}

#[test]
fn the_same_events_give_the_same_state_in_one_batch_or_many_and_after_a_restart() {
    let events = opening();
    let runtime = runtime(test_limits());
    let mut analyzer = load_analytics_live(&runtime).analyzer();
    let whole = ingest(&mut analyzer, &Arc::default(), &events);
    let mut state = Arc::default();
    for event in &events {
        state = ingest(&mut analyzer, &state, std::slice::from_ref(event));
    }
    assert_eq!(state, whole);

    // A new runtime and instance, as after a node restart, answers the same
    // from the journaled state.
    let before = ask(&mut analyzer, &whole, "headline", "{}");
    drop(analyzer);
    drop(runtime);
    let restarted = common::runtime(test_limits());
    let mut fresh = load_analytics_live(&restarted).analyzer();
    assert_eq!(ask(&mut fresh, &whole, "headline", "{}"), before);
}

#[test]
fn a_batch_offered_again_changes_nothing() {
    let runtime = runtime(test_limits());
    let mut analyzer = load_analytics_live(&runtime).analyzer();
    let events = opening();
    let state = ingest(&mut analyzer, &Arc::default(), &events);
    let outcome = analyzer.ingest(call("store-a", Some(FLASH), Arc::clone(&state)), &events);
    assert_eq!(outcome.result, Ok(()));
    assert!(outcome.state_writes.is_empty());
}

#[test]
fn a_batch_the_plugin_refuses_leaves_no_state_writes() {
    let runtime = runtime(test_limits());
    let mut analyzer = load_analytics_live(&runtime).analyzer();
    let state = ingest(&mut analyzer, &Arc::default(), &opening());
    let mut dollars = Stream::new("store-a", "USD");
    dollars.next_sequence = 100;
    let outcome = analyzer.ingest(
        call("store-a", Some(FLASH), Arc::clone(&state)),
        &dollars.placed(9, &[("CASE", 1, 49_00)], &[]).take(),
    );
    match outcome.result {
        Err(CallError::Plugin(PluginError::Unsupported(text))) => {
            assert!(text.contains("USD"), "{text}")
        }
        other => panic!("expected an unsupported error, got {other:?}"),
    }
    assert!(outcome.state_writes.is_empty());
}

#[test]
fn batches_over_the_limit_of_another_store_or_out_of_order_never_reach_the_plugin() {
    let runtime = runtime(test_limits());
    let plugin = load_analytics_live(&runtime);
    let mut analyzer = plugin.analyzer();
    let mut stream = Stream::new("store-a", "CNY");
    for _ in 0..=EVENTS_PER_BATCH_MAX {
        stream.refused("CASE", 1, RefusalReason::Other);
    }
    let too_many = stream.take();
    refused_input(
        analyzer.ingest(call("store-a", None, Arc::default()), &too_many),
        "at most 4096",
    );
    let store_b = Stream::new("store-b", "CNY").refused("CASE", 1, RefusalReason::Other).take();
    refused_input(
        analyzer.ingest(call("store-a", None, Arc::default()), &store_b),
        "store store-b",
    );
    let mut backwards = opening();
    backwards.swap(0, 1);
    refused_input(
        analyzer.ingest(call("store-a", None, Arc::default()), &backwards),
        "follows event 2",
    );
    assert_eq!(plugin.counters().calls, 0, "the plugin was never called");
}

#[test]
fn malformed_queries_never_reach_the_plugin_and_unknown_ones_are_its_error() {
    let runtime = runtime(test_limits());
    let plugin = load_analytics_live(&runtime);
    let mut analyzer = plugin.analyzer();
    let query = |analyzer: &mut Analyzer, name: &str, arguments: &str| {
        analyzer.query(call("store-a", None, Arc::default()), name, arguments)
    };
    refused_input(query(&mut analyzer, "", "{}"), "query name");
    refused_input(query(&mut analyzer, "headline", "[]"), "JSON object");
    let long = format!(r#"{{"pad": "{}"}}"#, "x".repeat(QUERY_ARGUMENTS_BYTES_MAX));
    refused_input(query(&mut analyzer, "headline", &long), "at most 4096");
    assert_eq!(plugin.counters().calls, 0);

    match query(&mut analyzer, "revenue", "{}").result {
        Err(CallError::Plugin(PluginError::Unsupported(text))) => {
            assert!(text.contains("headline"), "{text}")
        }
        other => panic!("expected the plugin's unsupported error, got {other:?}"),
    }
    match query(&mut analyzer, "top-skus", r#"{"limit": 0}"#).result {
        Err(CallError::Plugin(PluginError::Unsupported(text))) => {
            assert!(text.contains("limit"), "{text}")
        }
        other => panic!("expected the plugin's unsupported error, got {other:?}"),
    }
}

#[test]
fn analytics_live_installs_with_its_grants_and_loads_as_an_analytics_plugin() {
    let runtime = runtime(test_limits());
    let compiled = runtime.compile(ANALYTICS_LIVE.wasm).expect("compiles");
    let granted: BTreeSet<Capability> = Capability::ALL.into_iter().collect();
    let report = runtime
        .check(&compiled, PluginKind::Analytics, &granted)
        .expect("passes the install check");
    assert_eq!(report.exports, ["bazaar:commerce/analyzer@0.2.0"]);
    assert!(
        report.imports.iter().any(|name| name == "bazaar:commerce/events@0.2.0"),
        "{:?}",
        report.imports
    );
    assert_eq!(report.capabilities_used, granted);

    let loaded = runtime
        .load(
            plugin_ref(&ANALYTICS_LIVE),
            PluginKind::Analytics,
            &compiled,
            PluginLimits::default(),
        )
        .expect("links");
    assert_eq!(loaded.kind(), PluginKind::Analytics);
    let LoadedPlugin::Analytics(plugin) = loaded else {
        panic!("expected an analytics plugin");
    };
    let outcome = plugin.analyzer().ingest(call("store-a", None, Arc::default()), &opening());
    assert_eq!(outcome.result, Ok(()));
}

#[test]
fn an_analytics_component_is_no_pricing_plugin_and_the_reverse() {
    let runtime = runtime(test_limits());
    let granted: BTreeSet<Capability> = Capability::ALL.into_iter().collect();
    let analytics = runtime.compile(ANALYTICS_LIVE.wasm).expect("compiles");
    assert!(matches!(
        runtime.check(&analytics, PluginKind::Pricing, &granted),
        Err(LoadError::WrongWorld { world: "pricing", .. })
    ));
    let pricing = runtime.compile(PRICING_PROMOTIONS.wasm).expect("compiles");
    match runtime.check(&pricing, PluginKind::Analytics, &granted) {
        Err(LoadError::WrongWorld { world, detail }) => {
            assert_eq!(world, "analytics");
            assert!(detail.contains("bazaar:commerce/analyzer@0.2.0"), "{detail}");
        }
        other => panic!("expected the wrong world, got {other:?}"),
    }
}
