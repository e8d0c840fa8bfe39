//! `bazaar bench`: the engine's benchmarks. Each prints its figures and
//! ends with `RESULT <name> <value> <unit>` lines for BENCHMARKS.md.
//!
//! Machines here are shared and noisy, so comparisons (Wasm against native
//! plugins) are measured in one run, back to back.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bazaar_kernel::model::{
    PluginId, PluginRef, Product, Router, Shipment, ShipmentLine, ShipmentPlan, Sku, StoreId,
    Warehouse, WarehouseId,
};
use bazaar_kernel::money::Currency;
use bazaar_kernel::{Command, PlaceOrder, Shard};
use bazaar_store::Backend;

use crate::load::{self, LoadProgress, LoadReport};
use crate::loadgen::{self, HttpBenchOptions};
use crate::scratch::{self, ScratchRun};
use bazaar_node::node::{Node, NodeConfig, ORDERS_HELD_MAX_DEFAULT};
use bazaar_node::plugins::{PluginSet, plugin_ref, route_request};
use bazaar_node::seed;
use bazaar_runtime::{PluginCall, Runtime, RuntimeLimits};

/// The benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Benchmark {
    /// Order pipeline (pricing + logistics + reservation + durable journal), Wasm vs native plugins.
    Pipeline,
    /// Reservations per second on one hot SKU through the kernel alone.
    HotSku,
    /// Plugin call and instantiation cost.
    PluginCalls,
    /// Peak memory for a million orders.
    Memory,
    /// Orders over HTTP against a `bazaar serve` child process.
    Http,
    /// Time from an order's acknowledgement to the live dashboard stream.
    Freshness,
    /// A crowd four times a node's caps: how fast the refused hear so.
    Overload,
    /// Every benchmark in turn.
    All,
}

/// Options common to the benchmarks.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Orders or calls to measure (each benchmark has its own default).
    pub orders: Option<u64>,
    /// Storage engine for the node benchmarks.
    pub backend: Backend,
    /// The HTTP benchmark's settings.
    pub http: HttpBenchOptions,
}

/// Stores the pipeline spreads its orders over: several per shard.
const PIPELINE_STORES: usize = 8;
/// Client threads of the pipeline benchmark.
const PIPELINE_CLIENTS: u32 = 4;
/// Orders each pipeline client keeps in flight.
const PIPELINE_WINDOW: usize = 512;

/// Runs `benchmark`.
pub fn run(benchmark: Benchmark, options: BenchOptions) -> anyhow::Result<()> {
    println!("machine: {} cores, {}", num_cpus(), std::env::consts::ARCH);
    match benchmark {
        Benchmark::Pipeline => pipeline(&options),
        Benchmark::HotSku => hot_sku(&options),
        Benchmark::PluginCalls => plugin_calls(options.orders.unwrap_or(100_000)),
        Benchmark::Memory => memory(&options),
        Benchmark::Http => loadgen::run(options.http),
        Benchmark::Freshness => crate::freshness::run(),
        Benchmark::Overload => crate::overload::run(),
        Benchmark::All => {
            pipeline(&options)?;
            hot_sku(&options)?;
            plugin_calls(options.orders.unwrap_or(100_000))?;
            memory(&options)?;
            loadgen::run(options.http)
        }
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `orders` mixed-catalogue orders through a fresh node with `plugins`
/// in a scratch directory. SIGINT or SIGTERM stops the load; the node is
/// then closed before its directory is removed.
fn run_pipeline(backend: Backend, plugins: PluginSet, orders: u64) -> anyhow::Result<LoadReport> {
    let progress = Arc::new(LoadProgress::default());
    let scratch = ScratchRun::new({
        let progress = progress.clone();
        move || progress.stop.store(true, Ordering::Relaxed)
    })?;
    let report = drive_pipeline(scratch.path(), backend, plugins, orders, &progress)?;
    anyhow::ensure!(
        !scratch::signalled(),
        "interrupted: the node is closed and its data directory removed"
    );
    Ok(report)
}

fn drive_pipeline(
    dir: &Path,
    backend: Backend,
    plugins: PluginSet,
    orders: u64,
    progress: &Arc<LoadProgress>,
) -> anyhow::Result<LoadReport> {
    // Room for every order asked for, however many: the bench measures
    // them all.
    let config = NodeConfig {
        backend,
        orders_held_max: orders.max(ORDERS_HELD_MAX_DEFAULT),
        ..NodeConfig::new(dir)
    };
    let node = Arc::new(Node::open(config, plugins)?);
    let stores: Vec<StoreId> =
        (0..PIPELINE_STORES).map(|i| StoreId::new(format!("store-{i}")).expect("valid")).collect();
    for store in &stores {
        seed::seed_flagship_store(&node, store, 0)?;
    }
    let plan = load::mixed_plan(&stores, PIPELINE_CLIENTS, PIPELINE_WINDOW, orders);
    let report = load::drive(&node, &plan, progress);
    anyhow::ensure!(
        report.refusals.is_empty(),
        "pipeline orders were refused: {:?}",
        report.refusals
    );
    node.check_invariants().map_err(anyhow::Error::msg)?;
    Ok(report)
}

fn pipeline(options: &BenchOptions) -> anyhow::Result<()> {
    let orders = options.orders.unwrap_or(300_000);
    println!(
        "\n== pipeline: {orders} orders, pricing + logistics + reservation + group-committed {} journal ==",
        options.backend
    );
    let wasm_plugins = PluginSet::first_party_wasm()?;
    let native_plugins = PluginSet::first_party_native();
    let mut results = Vec::new();
    for (name, plugins) in [("native", native_plugins), ("wasm", wasm_plugins)] {
        let report = run_pipeline(options.backend, plugins, orders)?;
        println!(
            "{name:>6}: {:>9.0} orders/s  p50 {:>6.2} ms  p99 {:>6.2} ms  p99.9 {:>6.2} ms",
            report.orders_per_second(),
            f64::from(report.latency_us(0.5)) / 1000.0,
            f64::from(report.latency_us(0.99)) / 1000.0,
            f64::from(report.latency_us(0.999)) / 1000.0,
        );
        results.push((name, report.orders_per_second()));
    }
    let ratio = results[1].1 / results[0].1;
    println!("RESULT pipeline_native_orders_per_s {:.0}", results[0].1);
    println!("RESULT pipeline_wasm_orders_per_s {:.0}", results[1].1);
    println!("RESULT pipeline_wasm_over_native {ratio:.2}");
    Ok(())
}

fn hot_sku(options: &BenchOptions) -> anyhow::Result<()> {
    let orders = options.orders.unwrap_or(1_000_000);
    println!("\n== hot SKU: {orders} reservations of one SKU through the kernel ==");
    let store = StoreId::new("hot")?;
    let cny = Currency::parse("CNY")?;
    let sku = Sku::new(seed::HOT_SKU)?;
    let warehouse = WarehouseId::new("HGH")?;
    let mut shard = Shard::new();
    let setup = [
        Command::CreateStore { store: store.clone(), name: "hot".into(), currency: cny },
        Command::UpsertWarehouse {
            store: store.clone(),
            warehouse: Warehouse {
                id: warehouse.clone(),
                name: "Hangzhou".into(),
                location: Default::default(),
            },
        },
        Command::UpsertProduct {
            store: store.clone(),
            product: Product {
                sku: sku.clone(),
                title: "phone".into(),
                unit_price_minor: seed::HOT_SKU_PRICE_MINOR,
                purchase_limit_per_customer: Some(seed::HOT_SKU_LIMIT_PER_CUSTOMER),
            },
            currency: cny,
        },
        Command::ReceiveStock {
            store: store.clone(),
            sku: sku.clone(),
            warehouse: warehouse.clone(),
            quantity: orders,
        },
    ];
    for command in &setup {
        shard.apply(command)?;
    }
    let plan = ShipmentPlan {
        shipments: vec![Shipment {
            warehouse,
            lines: vec![ShipmentLine { sku: sku.clone(), quantity: 1 }],
            carrier: "SF Express".into(),
            fee_minor: 0,
            eta_hours: 24,
        }],
        routed_by: Router::Plugin(PluginRef {
            id: PluginId::new("logistics-router")?,
            version: "0.1.0".into(),
        }),
        fallback_reason: None,
    };
    // Commands are built before the clock starts: the figure is the kernel's.
    let commands: Vec<Command> = (0..orders)
        .map(|i| {
            Command::PlaceOrder(Box::new(PlaceOrder {
                store: store.clone(),
                request: seed::order_request(
                    i,
                    vec![(sku.clone(), 1)],
                    None,
                    Some(format!("k{i}")),
                ),
                placed_at_ms: 1_700_000_000_000 + i,
                adjustments: Vec::new(),
                pricing_failures: Vec::new(),
                risk_checks: Vec::new(),
                shipment_plan: plan.clone(),
                state_writes: Vec::new(),
            }))
        })
        .collect();
    let started = Instant::now();
    for command in &commands {
        shard.apply(command)?;
    }
    let elapsed = started.elapsed();
    // One more must be refused: the stock is exactly sold out.
    let extra = Command::PlaceOrder(Box::new(PlaceOrder {
        store: store.clone(),
        request: seed::order_request(orders, vec![(sku.clone(), 1)], None, None),
        placed_at_ms: 0,
        adjustments: Vec::new(),
        pricing_failures: Vec::new(),
        risk_checks: Vec::new(),
        shipment_plan: plan,
        state_writes: Vec::new(),
    }));
    anyhow::ensure!(shard.apply(&extra).is_err(), "the kernel oversold the hot SKU");
    shard.check_invariants().map_err(anyhow::Error::msg)?;
    let rate = orders as f64 / elapsed.as_secs_f64();
    println!(
        "{orders} reservations in {:.3} s: {rate:.0} reservations/s; the next one is refused (sold out)",
        elapsed.as_secs_f64()
    );
    println!("RESULT hot_sku_reservations_per_s {rate:.0}");
    Ok(())
}

fn memory(options: &BenchOptions) -> anyhow::Result<()> {
    let orders = options.orders.unwrap_or(1_000_000);
    println!("\n== memory: {orders} orders through the node with Wasm plugins ==");
    let before = rss_kib("VmRSS");
    let report = run_pipeline(options.backend, PluginSet::first_party_wasm()?, orders)?;
    let peak = rss_kib("VmHWM");
    println!(
        "{} orders at {:.0} orders/s (p99 {:.2} ms); RSS before {} MiB, peak {} MiB ({} bytes per order)",
        report.placed,
        report.orders_per_second(),
        f64::from(report.latency_us(0.99)) / 1000.0,
        before / 1024,
        peak / 1024,
        (peak.saturating_sub(before)) * 1024 / report.placed.max(1)
    );
    println!(
        "RESULT memory_peak_rss_mib_per_million_orders {}",
        peak / 1024 * 1_000_000 / report.placed.max(1)
    );
    Ok(())
}

/// A field of /proc/self/status in KiB (0 where unavailable).
fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()))
        })
        .unwrap_or(0)
}

/// `bazaar bench plugin-calls`: the cost of one call to each first-party
/// plugin on a reused instance, and of instantiating a fresh instance from
/// the pre-linked component (pooling allocator).
fn plugin_calls(calls: u64) -> anyhow::Result<()> {
    println!(
        "\n== plugin calls: {calls} calls per plugin on a reused instance; 1,000 fresh instances =="
    );
    let runtime = Runtime::new(RuntimeLimits::default())?;
    let pricing = runtime.load_pricing(
        plugin_ref(&bazaar_artifacts::PRICING_PROMOTIONS)?,
        bazaar_artifacts::PRICING_PROMOTIONS.wasm,
    )?;
    let logistics = runtime.load_logistics(
        plugin_ref(&bazaar_artifacts::LOGISTICS_ROUTER)?,
        bazaar_artifacts::LOGISTICS_ROUTER.wasm,
    )?;
    let store = StoreId::new("bench")?;
    let mut shard = Shard::new();
    for command in seed::flagship_store(&store, 1_000) {
        shard.apply(&command)?;
    }
    let request = seed::order_request(
        7,
        vec![(Sku::new(seed::HOT_SKU)?, 1), (seed::ordinary_sku(3), 2)],
        Some("D11-10"),
        None,
    );
    let cart = shard.prepare_cart(&store, &request, 1_700_000_000_000)?;
    let state = shard.store(&store).expect("seeded");
    let route = route_request(state, &cart);
    let call_for = |plugin: &str| {
        let id = PluginId::new(plugin).expect("valid");
        PluginCall {
            store: store.clone(),
            config_json: state.plugin_configs().get(&id).map(|c| Arc::from(c.json.as_str())),
            state: state.plugin_state(&id),
            now_ms: cart.placed_at_ms,
            random_seed: 1,
        }
    };
    let pricing_call = call_for("pricing-promotions");
    let routing_call = call_for("logistics-router");

    let mut pricer = pricing.pricer();
    let mut router = logistics.router();
    let mut call_ns = (Vec::new(), Vec::new());
    for _ in 0..calls {
        let started = Instant::now();
        let priced = pricer.price_cart(pricing_call.clone(), &cart);
        call_ns.0.push(started.elapsed().as_nanos() as u64);
        priced.result?;
        let started = Instant::now();
        let routed = router.plan_shipment(routing_call.clone(), &route);
        call_ns.1.push(started.elapsed().as_nanos() as u64);
        routed.result?;
    }
    let fresh = 1_000;
    let mut first_call_ns = Vec::new();
    for _ in 0..fresh {
        let mut pricer = pricing.pricer();
        let started = Instant::now();
        pricer.price_cart(pricing_call.clone(), &cart).result?;
        first_call_ns.push(started.elapsed().as_nanos() as u64);
    }
    let (p50_price, p99_price) = percentiles(&mut call_ns.0);
    let (p50_route, p99_route) = percentiles(&mut call_ns.1);
    let (p50_first, p99_first) = percentiles(&mut first_call_ns);
    // A fresh instance's first call is instantiation plus one call.
    let (p50_inst, p99_inst) =
        (p50_first.saturating_sub(p50_price), p99_first.saturating_sub(p50_price));
    println!("pricing-promotions call: p50 {:.2} us, p99 {:.2} us", us(p50_price), us(p99_price));
    println!("logistics-router call:   p50 {:.2} us, p99 {:.2} us", us(p50_route), us(p99_route));
    println!(
        "instantiation (first call on a fresh instance minus a call): p50 {:.2} us, p99 {:.2} us",
        us(p50_inst),
        us(p99_inst)
    );
    println!("RESULT pricing_call_p50_us {:.2}", us(p50_price));
    println!("RESULT pricing_call_p99_us {:.2}", us(p99_price));
    println!("RESULT logistics_call_p50_us {:.2}", us(p50_route));
    println!("RESULT logistics_call_p99_us {:.2}", us(p99_route));
    println!("RESULT instantiation_p50_us {:.2}", us(p50_inst));
    println!("RESULT instantiation_p99_us {:.2}", us(p99_inst));
    Ok(())
}

fn percentiles(samples: &mut [u64]) -> (u64, u64) {
    samples.sort_unstable();
    let at = |q: f64| {
        samples.get(((samples.len().max(1) - 1) as f64 * q) as usize).copied().unwrap_or(0)
    };
    (at(0.5), at(0.99))
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}
