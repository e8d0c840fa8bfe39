//! `bazaar demo`: a Double-11 flash sale against a live node.
//!
//! Two stores on different shards: the flagship sells a phone with fixed
//! stock and a per-customer limit to a crowd of buyers, while ordinary
//! orders flow in both stores. Every order is priced by the
//! pricing-promotions plugin and routed by the logistics-router plugin (both
//! Wasm), reserved by the kernel and made durable by the journal before it
//! is acknowledged. Then a fleet of simulated VDA 5050 robots
//! (`examples/warehouse`) fulfils paid orders of a robot warehouse over the
//! embedded MQTT broker, driven through the first-party driver plugin. The
//! report checks that nothing was oversold, that every robot order shipped
//! exactly once, and that a restart recovers exactly the same state.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bazaar_kernel::Command;
use bazaar_kernel::model::{OrderStatus, PluginId, Sku, StoreId};
use bazaar_store::Backend;

use crate::load::{self, LoadPlan, LoadProgress, splitmix64};
use bazaar_node::node::{Node, NodeConfig};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed::{self, HOT_SKU};

/// How to run the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Data directory; must be empty or absent (the default one is recreated).
    pub data_dir: PathBuf,
    /// Order attempts.
    pub orders: u64,
    /// Concurrent buyers.
    pub buyers: u32,
    /// Units of the flash-sale phone.
    pub hot_stock: u64,
    /// Storage engine.
    pub backend: Backend,
    /// Simulated robots for the warehouse part (0 skips it).
    pub robots: usize,
    /// Paid orders the robots fulfil.
    pub robot_orders: u64,
}

/// The flagship store, which runs the flash sale.
const FLAGSHIP: &str = "tmall-flagship";
/// Orders each buyer keeps in flight (a buyer here is a checkout session
/// of the storefront, which pipelines its customers' requests).
const WINDOW_PER_BUYER: usize = 8;
/// One attempt in this many repeats an earlier attempt's idempotency key
/// and body, as a client retrying after a timeout would.
const RETRY_EVERY: u64 = 100;

/// Runs the demo and prints its report.
pub fn run(options: DemoOptions) -> anyhow::Result<()> {
    prepare_data_dir(&options.data_dir)?;
    println!("Bazaar Double-11 demo");
    println!("=====================");
    let started = Instant::now();
    let plugins = PluginSet::first_party_wasm().context("loading the first-party plugins")?;
    println!("plugins   {} (compiled in {} ms)", plugins.describe(), started.elapsed().as_millis());
    let config = NodeConfig { backend: options.backend, ..NodeConfig::new(&options.data_dir) };
    let node = Arc::new(Node::open(config.clone(), plugins.clone())?);
    let flagship = StoreId::new(FLAGSHIP)?;
    let outlet = (0..)
        .map(|n| StoreId::new(format!("daily-mart-{n}")).expect("valid store id"))
        .find(|store| node.shard_of(store) != node.shard_of(&flagship) || node.shard_count() == 1)
        .expect("some store lands on another shard");
    println!(
        "node      {} shards, {} journal in {}",
        node.shard_count(),
        options.backend,
        options.data_dir.display()
    );
    seed::seed_flagship_store(&node, &flagship, options.hot_stock)?;
    seed::seed_flagship_store(&node, &outlet, 0)?;
    node.execute(Command::ConfigurePlugin {
        store: flagship.clone(),
        plugin: PluginId::new("risk-guard")?,
        config_json: Some(seed::RISK_GUARD_CONFIG.into()),
        settings: bazaar_kernel::PluginSettings::default(),
    })?;
    println!(
        "stores    {flagship} ({} x {HOT_SKU} at 4,999.00 instead of 5,999.00, limit {} per customer, anti-scalper risk rules), {outlet}",
        options.hot_stock,
        seed::HOT_SKU_LIMIT_PER_CUSTOMER
    );
    println!(
        "sale      {} attempts by {} concurrent buyers; ~60% want the phone\n",
        options.orders, options.buyers
    );

    let source = demo_requests(flagship.clone(), outlet.clone(), options.hot_stock);
    let plan = LoadPlan {
        clients: options.buyers,
        window_per_client: WINDOW_PER_BUYER,
        attempts: options.orders,
        source,
        on_ack: None,
    };
    let progress = Arc::new(LoadProgress::default());
    let report = std::thread::scope(|scope| {
        let printer = scope.spawn({
            let progress = progress.clone();
            let node = node.clone();
            let flagship = flagship.clone();
            let total = options.orders;
            move || print_progress(&node, &flagship, &progress, total)
        });
        let report = load::drive(&node, &plan, &progress);
        progress.stop.store(true, Ordering::Relaxed);
        let _ = printer.join();
        report
    });
    println!();
    println!("Results");
    println!("-------");
    println!(
        "acknowledged  {} orders in {:.2} s = {:.0} orders/s ({} idempotent retries answered with the original order)",
        report.placed,
        report.elapsed.as_secs_f64(),
        report.orders_per_second(),
        report.duplicates
    );
    println!(
        "latency       p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms (submit to durable acknowledgement)",
        f64::from(report.latency_us(0.5)) / 1000.0,
        f64::from(report.latency_us(0.99)) / 1000.0,
        f64::from(report.latency_us(0.999)) / 1000.0
    );
    let refusals: Vec<String> =
        report.refusals.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
    println!(
        "refused       {}",
        if refusals.is_empty() { "none".into() } else { refusals.join(", ") }
    );
    let journal = node.journal().stats();
    println!(
        "journal       {} durable commits for {} shard batches ({} commands): {:.1} batches per fsync",
        journal.commits,
        node.stats().batches.load(Ordering::Relaxed),
        node.stats().commands_journaled.load(Ordering::Relaxed),
        node.stats().batches.load(Ordering::Relaxed) as f64 / journal.commits.max(1) as f64
    );

    let hot = Sku::new(HOT_SKU)?;
    let audit = node.read(&flagship, move |shard| {
        let state = shard.store(&StoreId::new(FLAGSHIP).expect("valid")).expect("seeded");
        let levels: Vec<_> =
            state.stock().get(&hot).map(|l| l.values().copied().collect()).unwrap_or_default();
        let held: u64 = state
            .orders()
            .iter()
            .filter(|order| order.status != OrderStatus::Cancelled)
            .flat_map(|order| order.lines.iter())
            .filter(|line| line.sku == hot)
            .map(|line| u64::from(line.quantity))
            .sum();
        let flagged = state.orders().iter().filter(|o| !o.pricing_failures.is_empty()).count();
        let gmv: i64 = state.orders().iter().map(|o| o.totals.total_minor).sum();
        let discount: i64 = state.orders().iter().map(|o| o.totals.discount_minor).sum();
        (levels, held, flagged, gmv, discount)
    })?;
    let (levels, held, flagged, gmv_minor, discount_minor) = audit;
    let on_hand: u64 = levels.iter().map(|l| l.on_hand).sum();
    let reserved: u64 = levels.iter().map(|l| l.reserved + l.sold).sum();
    let available: u64 = levels.iter().map(|l| l.available).sum();
    println!(
        "{HOT_SKU}     sold {held} of {} in stock, {available} left; warehouses hold {reserved} reserved+sold of {on_hand} on hand",
        options.hot_stock
    );
    println!(
        "flagship GMV  {} after {} of promotions; {flagged} orders flagged by a failing pricing plugin",
        bazaar_sdk::Money::new(gmv_minor, "CNY"),
        bazaar_sdk::Money::new(discount_minor, "CNY"),
    );
    let oversold = held > options.hot_stock || reserved != held;
    let invariants = node.check_invariants();
    println!(
        "oversell      {}",
        if oversold {
            "OVERSOLD!".to_string()
        } else {
            format!("none ({held} <= {})", options.hot_stock)
        }
    );
    println!(
        "invariants    {}",
        match &invariants {
            Ok(()) => "hold: on_hand = available + reserved + sold for every SKU and warehouse"
                .to_string(),
            Err(violation) => format!("VIOLATED: {violation}"),
        }
    );

    let robots_ok = if options.robots > 0 {
        robot_warehouse(&node, &plugins, options.robots, options.robot_orders)?
    } else {
        true
    };

    let digest = node.digest()?;
    drop(node);
    let reopened = Instant::now();
    let node = Node::open(config, plugins)?;
    let recovered = node.digest()?;
    println!(
        "recovery      reopened in {} ms; state digest {} {}",
        reopened.elapsed().as_millis(),
        hex(&recovered[..8]),
        if recovered == digest {
            "identical to before the restart"
        } else {
            "DIFFERS from before the restart!"
        }
    );
    node.shutdown();
    if oversold || invariants.is_err() || recovered != digest || !robots_ok {
        bail!("the demo found a consistency failure (see above)");
    }
    Ok(())
}

/// Simulated time runs this much faster than real time in the warehouse
/// part, so the robots' minutes of driving take seconds.
const ROBOT_SPEEDUP: u32 = 50;
/// The robot warehouse's store.
const ROBOT_STORE: &str = "cainiao-robots";
/// How long the warehouse part may take before the demo calls it failed.
const ROBOT_PART_TIMEOUT_S: u64 = 600;

/// The warehouse part: `robots` simulated AGVs on the embedded broker
/// fulfil `orders` paid orders; returns whether every order shipped once.
fn robot_warehouse(
    node: &Arc<Node>,
    plugins: &PluginSet,
    robots: usize,
    orders: u64,
) -> anyhow::Result<bool> {
    use bazaar_node::devices::{BrokerAddress, BusSettings, DeviceBus, EmbeddedBroker};

    println!();
    println!("Warehouse robots");
    println!("----------------");
    let store = StoreId::new(ROBOT_STORE)?;
    let (commands, homes) = seed::robot_warehouse(&store, robots, orders.max(1));
    for command in commands {
        node.execute(command)?;
    }
    // A free loopback port, so the demo runs beside a `bazaar serve`.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let broker = EmbeddedBroker::start(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    let address = BrokerAddress { host: "127.0.0.1".into(), port: broker.address().port() };
    let bus = DeviceBus::start(node.clone(), plugins.clone(), &address, BusSettings::default())?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let vehicles = homes
        .into_iter()
        .map(|home| warehouse::VehicleSpec {
            serial_number: home.serial_number,
            model: seed::ROBOT_MODEL.into(),
            map_id: seed::ROBOT_MAP.into(),
            start_node_id: home.node,
            start_x_mm: home.x_mm,
            start_y_mm: home.y_mm,
        })
        .collect();
    let config = warehouse::FleetConfig {
        broker_host: "127.0.0.1".into(),
        broker_port: address.port,
        manufacturer: seed::ROBOT_MANUFACTURER.into(),
        speedup: ROBOT_SPEEDUP,
        ..warehouse::FleetConfig::default()
    };
    let fleet = runtime.block_on(warehouse::Fleet::spawn(config, vehicles))?;
    println!(
        "fleet     {robots} simulated VDA 5050 AGVs on the embedded MQTT broker at {address}, driven by \
         the driver-vda5050 plugin (Wasm); time runs {ROBOT_SPEEDUP}x"
    );
    let started = Instant::now();
    let placed = seed::place_paid_robot_orders(node, &store, 1, orders)?;
    let count_shipped = || -> anyhow::Result<(usize, usize)> {
        let (store, placed) = (store.clone(), placed.clone());
        Ok(node.read(&store.clone(), move |shard| {
            let state = shard.store(&store).expect("seeded");
            let shipped = placed
                .iter()
                .filter(|order| {
                    state.order(**order).map(|o| o.status) == Some(OrderStatus::Fulfilled)
                })
                .count();
            (shipped, state.floor().tasks().len())
        })?)
    };
    let deadline = started + Duration::from_secs(ROBOT_PART_TIMEOUT_S);
    let mut last_print = Instant::now();
    let (shipped, open_tasks) = loop {
        let (shipped, open_tasks) = count_shipped()?;
        if shipped == placed.len() || Instant::now() > deadline {
            break (shipped, open_tasks);
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let driving = fleet.status().iter().filter(|vehicle| vehicle.driving).count();
            print!(
                "\rshipped   {shipped}/{} orders, {open_tasks} tasks open, {driving} robots driving   ",
                placed.len()
            );
            let _ = std::io::stdout().flush();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    let counters = bus.counters();
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    println!("\r{:80}", "");
    println!(
        "fulfilled {shipped} of {} paid orders in {:.1} s: {} tasks done, {} attempts taken back, every order picked, packed and shipped",
        placed.len(),
        elapsed.as_secs_f64(),
        load(&counters.tasks_done),
        load(&counters.tasks_released),
    );
    println!(
        "bus       {} frames in, {} out, {} malformed, {} driver faults",
        load(&counters.frames_in),
        load(&counters.frames_out),
        load(&counters.frames_malformed),
        load(&counters.driver_faults),
    );
    let ok = shipped == placed.len() && open_tasks == 0 && load(&counters.tasks_done) == orders;
    runtime.block_on(fleet.shutdown());
    bus.shutdown();
    if !ok {
        println!("robots    NOT every order shipped exactly once ({open_tasks} tasks open)");
    }
    Ok(ok)
}

/// Recreates the default directory; refuses to touch a non-empty one the
/// user named unless it is a previous demo's.
fn prepare_data_dir(dir: &PathBuf) -> anyhow::Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        let is_default = dir == &PathBuf::from("bazaar-demo-data");
        let is_bazaar = dir.join("bazaar.redb").exists() || dir.join("sled").exists();
        if !is_default && !is_bazaar {
            bail!(
                "{} is not empty and holds no Bazaar data; choose an empty directory",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// The demo's request mix, a pure function of the attempt index so that a
/// retry can repeat an earlier attempt exactly.
fn demo_requests(flagship: StoreId, outlet: StoreId, hot_stock: u64) -> Arc<load::RequestSource> {
    // Five buyers per phone: it sells out early, and the few who come back
    // for more run into the purchase limit.
    let crowd = (hot_stock * 5).max(100);
    Arc::new(move |attempt: u64| {
        let attempt = if attempt % RETRY_EVERY == RETRY_EVERY - 1 && attempt >= 7 {
            attempt - 7
        } else {
            attempt
        };
        let r = splitmix64(attempt);
        let key = Some(format!("demo-{attempt}"));
        if r % 10 < 6 {
            let customer = (r >> 8) % crowd;
            let mut lines = vec![(Sku::new(HOT_SKU).expect("valid"), 1 + ((r >> 40) % 2) as u32)];
            if (r >> 20).is_multiple_of(3) {
                lines.push((
                    seed::ordinary_sku(((r >> 24) % seed::ORDINARY_SKUS as u64) as usize),
                    1,
                ));
            }
            (flagship.clone(), seed::order_request(customer, lines, None, key))
        } else {
            let customer = 1_000_000 + (r >> 8) % 1_000_000;
            let count = 1 + ((r >> 30) % 3) as usize;
            let first = ((r >> 34) % seed::ORDINARY_SKUS as u64) as usize;
            let lines = (0..count)
                .map(|i| {
                    (
                        seed::ordinary_sku((first + i * 7) % seed::ORDINARY_SKUS),
                        1 + ((r >> (40 + i)) % 3) as u32,
                    )
                })
                .collect();
            let coupon = (r >> 50).is_multiple_of(5).then_some("D11-10");
            let store = if (r >> 52).is_multiple_of(2) { &flagship } else { &outlet };
            (store.clone(), seed::order_request(customer, lines, coupon, key))
        }
    })
}

fn print_progress(node: &Node, flagship: &StoreId, progress: &LoadProgress, total: u64) {
    let started = Instant::now();
    let mut last = (Instant::now(), 0u64);
    let hot = Sku::new(HOT_SKU).expect("valid");
    while !progress.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        if last.0.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let placed = progress.placed.load(Ordering::Relaxed);
        let refused = progress.refused.load(Ordering::Relaxed);
        let rate = (placed - last.1) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), placed);
        let hot = hot.clone();
        let left = node
            .read(flagship, move |shard| {
                shard
                    .stores()
                    .values()
                    .filter_map(|state| state.stock().get(&hot))
                    .flat_map(|levels| levels.values())
                    .map(|level| level.available)
                    .sum::<u64>()
            })
            .unwrap_or(0);
        let done = placed + refused + progress.duplicates.load(Ordering::Relaxed);
        print!(
            "\r[{:5.1}s] {:>3}% | {placed:>8} orders ({rate:>7.0}/s) | {refused:>7} refused | {HOT_SKU} left: {left:<8}",
            started.elapsed().as_secs_f64(),
            done * 100 / total.max(1),
        );
        let _ = std::io::stdout().flush();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
