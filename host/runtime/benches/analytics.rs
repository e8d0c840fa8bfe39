//! How fast an analytics plugin folds a store's events in: the
//! first-party analytics-live component, in the runtime, fed batches of a
//! flash sale's events the way the node's event consumer feeds it, its
//! state writes applied between batches the way the kernel applies them.
//! Also the latency of each of its queries over the resulting state.
//!
//! Run with `cargo bench -p bazaar-runtime --bench analytics`. Prints its
//! figures and `RESULT <name> <value> <unit>` lines for BENCHMARKS.md.
//!
//! The events are built before the clock starts: 100,000 orders of 1 to 3
//! lines (1 to 3 units each) over 1,000 SKUs, one in ten with the
//! flash-sale SKU and one in five with a discount from one of eight
//! promotion rules; each order placed is followed by the stock change of
//! each of its lines (as the kernel reports them); one order in three is
//! later paid, one in fifty cancelled (with its stock changes), and every
//! 25 orders a summary of refused checkout attempts; about 50,000 orders a
//! second of event time. The timed part is the runtime call (conversion to
//! the WIT types, the copy into the guest, the plugin's fold, its state
//! reads and writes) plus applying the writes to the store's state map.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bazaar_artifacts::ANALYTICS_LIVE;
use bazaar_kernel::PluginStateMap;
use bazaar_kernel::event::{Event, EventDiscount, EventKind, EventLine, RefusalReason};
use bazaar_kernel::model::{
    CustomerId, PluginId, PluginRef, Sku, StockLevel, StoreId, Totals, WarehouseId,
};
use bazaar_kernel::money::Currency;
use bazaar_runtime::{Analyzer, EVENTS_PER_BATCH_MAX, PluginCall, Runtime, RuntimeLimits};

/// Orders in the event stream.
const ORDERS: u64 = 100_000;
/// Distinct SKUs ordered.
const SKUS: u64 = 1_000;
/// The flash-sale SKU, in one order in ten.
const FLASH_SKU: &str = "D11-PHONE";
/// The store's configuration: the flash-sale SKU followed.
const CONFIG: &str = r#"{"flash_skus": ["D11-PHONE"]}"#;
/// Warehouses stock is spread over.
const WAREHOUSES: [&str; 3] = ["WH-SHANGHAI", "WH-BEIJING", "WH-SHENZHEN"];
/// Promotion rules discounts come from.
const PROMOTIONS: [&str; 8] = [
    "d11-flash",
    "spend-300-get-50",
    "spend-500-get-100",
    "vip-5-percent",
    "new-customer-20",
    "bundle-tea-cup",
    "coupon-D11VIP",
    "coupon-WELCOME",
];
/// Event time between two orders: 50,000 orders a second.
const ORDER_INTERVAL_US: u64 = 20;
/// Rounds of each measurement; the median is reported.
const ROUNDS: usize = 5;
/// Calls of each query timed.
const QUERY_CALLS: usize = 200;

/// A small deterministic generator (SplitMix64), so every run ingests the
/// same events without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number from 0 to `bound - 1`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// The flash sale's events, in sequence order.
fn flash_sale_events() -> Vec<Event> {
    let store = StoreId::new("store-d11").expect("valid store id");
    let currency = Currency::parse("CNY").expect("valid currency");
    let skus: Vec<(Sku, i64)> = (0..SKUS)
        .map(|index| {
            let sku = Sku::new(format!("SKU-{index:04}")).expect("valid sku");
            // 9.90 to 999.00 CNY.
            (sku, 990 + (index as i64 * 7_919) % 98_910)
        })
        .collect();
    // 4999.00 CNY.
    let flash = (Sku::new(FLASH_SKU).expect("valid sku"), 499_900);
    let warehouses: Vec<WarehouseId> =
        WAREHOUSES.iter().map(|id| WarehouseId::new(*id).expect("valid warehouse id")).collect();
    let promotions = PluginId::new("pricing-promotions").expect("valid plugin id");
    let start_ms = 1_762_790_400_000;
    let mut random = SplitMix(11);
    let mut events = Vec::new();
    let mut stock: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    let push = |events: &mut Vec<Event>, at_ms: u64, kind: EventKind| {
        let sequence = events.len() as u64 + 1;
        events.push(Event { sequence, store: store.clone(), currency, at_ms, kind });
    };
    let mut totals_of: Vec<i64> = Vec::with_capacity(ORDERS as usize);
    for order in 0..ORDERS {
        let at_ms = start_ms + order * ORDER_INTERVAL_US / 1000;
        let line_count = 1 + random.below(3) as usize;
        let mut lines = Vec::with_capacity(line_count);
        // Each line's SKU by index, the flash-sale SKU being number SKUS.
        let mut line_skus = Vec::with_capacity(line_count);
        for line in 0..line_count {
            let sku_index = if line == 0 && random.below(10) == 0 {
                SKUS as usize
            } else {
                random.below(SKUS) as usize
            };
            let (sku, price) = skus.get(sku_index).unwrap_or(&flash).clone();
            let quantity = 1 + random.below(3) as u32;
            lines.push(EventLine { sku, quantity, unit_price_minor: price });
            line_skus.push(sku_index);
        }
        let subtotal_minor: i64 =
            lines.iter().map(|line| i64::from(line.quantity) * line.unit_price_minor).sum();
        let discounts = if random.below(5) == 0 {
            let code = PROMOTIONS[random.below(PROMOTIONS.len() as u64) as usize];
            vec![EventDiscount {
                plugin: promotions.clone(),
                code: code.to_owned(),
                amount_minor: subtotal_minor / 10,
            }]
        } else {
            Vec::new()
        };
        let discount_minor: i64 = discounts.iter().map(|discount| discount.amount_minor).sum();
        let totals = Totals {
            subtotal_minor,
            discount_minor,
            shipping_minor: 0,
            total_minor: subtotal_minor - discount_minor,
        };
        totals_of.push(totals.total_minor);
        let warehouse = random.below(WAREHOUSES.len() as u64) as usize;
        let stock_events: Vec<EventKind> = lines
            .iter()
            .zip(&line_skus)
            .map(|(line, &sku_index)| {
                let available = stock.entry((sku_index, warehouse)).or_insert(1_000_000);
                *available = available.saturating_sub(u64::from(line.quantity));
                EventKind::StockChanged {
                    sku: line.sku.clone(),
                    warehouse: warehouses[warehouse].clone(),
                    level: StockLevel {
                        on_hand: 1_000_000,
                        available: *available,
                        reserved: 1_000_000 - *available,
                        sold: 0,
                        shipped: 0,
                    },
                }
            })
            .collect();
        let customer = CustomerId::new(format!("customer-{}", random.below(200_000)))
            .expect("valid customer id");
        push(
            &mut events,
            at_ms,
            EventKind::OrderPlaced { order, customer, lines, totals, discounts },
        );
        for kind in stock_events {
            push(&mut events, at_ms, kind);
        }
        if order % 3 == 2 {
            let paid = order - 2;
            push(
                &mut events,
                at_ms,
                EventKind::OrderPaid { order: paid, total_minor: totals_of[paid as usize] },
            );
        }
        if order % 50 == 49 {
            let cancelled = order - 20;
            push(
                &mut events,
                at_ms,
                EventKind::OrderCancelled {
                    order: cancelled,
                    total_minor: totals_of[cancelled as usize],
                },
            );
        }
        if order % 25 == 24 {
            let refused_sku = if random.below(2) == 0 {
                flash.0.clone()
            } else {
                skus[random.below(SKUS) as usize].0.clone()
            };
            let attempts = 1 + random.below(40) as u32;
            let reason = match random.below(4) {
                0 => RefusalReason::SoldOut,
                1 => RefusalReason::PurchaseLimit,
                2 => RefusalReason::Risk,
                _ => RefusalReason::Other,
            };
            push(
                &mut events,
                at_ms,
                EventKind::CheckoutRefused {
                    sku: refused_sku,
                    attempts,
                    units: u64::from(attempts) * 2,
                    reason,
                },
            );
        }
    }
    events
}

/// A call for the store with `state`, at the time of the batch's last event.
fn call(store: &StoreId, state: &Arc<PluginStateMap>, now_ms: u64) -> PluginCall {
    PluginCall {
        store: store.clone(),
        config_json: Some(Arc::from(CONFIG)),
        state: Arc::clone(state),
        now_ms,
        random_seed: 0,
    }
}

/// Ingests every event in batches of `batch_size`, applying each batch's
/// writes; returns the time taken and the final state.
fn ingest_all(
    analyzer: &mut Analyzer,
    events: &[Event],
    batch_size: usize,
) -> anyhow::Result<(Duration, Arc<PluginStateMap>)> {
    let store = events[0].store.clone();
    let mut state: Arc<PluginStateMap> = Arc::default();
    let started = Instant::now();
    for batch in events.chunks(batch_size) {
        let now_ms = batch.last().map_or(0, |event| event.at_ms);
        let outcome = analyzer.ingest(call(&store, &state, now_ms), batch);
        outcome.result.map_err(|error| anyhow::anyhow!("a batch failed: {error}"))?;
        // The runtime has let go of the map, so it is changed in place.
        let map = Arc::make_mut(&mut state);
        for write in outcome.state_writes {
            match write.value {
                Some(value) => map.insert(write.key, value),
                None => map.remove(&write.key),
            };
        }
    }
    Ok((started.elapsed(), state))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cores} cores, {}", std::env::consts::ARCH);
    let events = flash_sale_events();
    println!("events: {} from {ORDERS} orders over {SKUS} SKUs", events.len());

    let runtime = Runtime::new(RuntimeLimits::default())?;
    let plugin = runtime.load_analytics(
        PluginRef {
            id: PluginId::new(ANALYTICS_LIVE.id)?,
            version: ANALYTICS_LIVE.version.to_owned(),
        },
        ANALYTICS_LIVE.wasm,
    )?;
    let mut analyzer = plugin.analyzer();
    // Warm the instance and the caches once.
    ingest_all(&mut analyzer, &events[..EVENTS_PER_BATCH_MAX * 4], EVENTS_PER_BATCH_MAX)?;

    let mut state = Arc::default();
    for batch_size in [EVENTS_PER_BATCH_MAX, 1024] {
        let mut rates = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let (elapsed, final_state) = ingest_all(&mut analyzer, &events, batch_size)?;
            rates.push(events.len() as f64 / elapsed.as_secs_f64());
            state = final_state;
        }
        let rate = median(rates.clone());
        let per_batch_us = 1e6 * batch_size as f64 / rate;
        println!(
            "batches of {batch_size}: median {rate:.0} events/s ({per_batch_us:.0} µs a batch); \
             rounds: {:?}",
            rates.iter().map(|rate| *rate as u64).collect::<Vec<_>>()
        );
        if batch_size == EVENTS_PER_BATCH_MAX {
            println!("RESULT analytics_ingest_events_per_second {rate:.0} events/s");
        } else {
            println!(
                "RESULT analytics_ingest_events_per_second_batch_{batch_size} {rate:.0} events/s"
            );
        }
    }
    let state_bytes: usize = state.iter().map(|(key, value)| key.len() + value.len()).sum();
    println!("state: {} keys, {state_bytes} bytes", state.len());

    let store = events[0].store.clone();
    let now_ms = events.last().map_or(0, |event| event.at_ms);
    for (name, arguments) in [
        ("headline", "{}"),
        ("gmv-series", "{}"),
        ("top-skus", r#"{"by": "revenue", "limit": 20}"#),
        ("sell-through", "{}"),
        ("discounts", "{}"),
    ] {
        let mut latencies = Vec::with_capacity(QUERY_CALLS);
        let mut answer_bytes = 0;
        for _ in 0..QUERY_CALLS {
            let started = Instant::now();
            let outcome = analyzer.query(call(&store, &state, now_ms), name, arguments);
            latencies.push(started.elapsed().as_secs_f64() * 1e6);
            let answer =
                outcome.result.map_err(|error| anyhow::anyhow!("query {name}: {error}"))?;
            answer_bytes = answer.len();
        }
        let p50 = median(latencies);
        println!("query {name}: p50 {p50:.1} µs, answer {answer_bytes} bytes");
        println!("RESULT analytics_query_{}_p50 {p50:.1} µs", name.replace('-', "_"));
    }
    Ok(())
}
