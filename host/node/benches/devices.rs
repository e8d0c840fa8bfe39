//! The device bus's benchmarks, printing `RESULT` lines for BENCHMARKS.md:
//!
//! 1. Telemetry ingestion: VDA 5050 state messages per second decoded by
//!    the first-party driver (Wasm) and applied to the fleet registry, on
//!    one thread, without the broker in between.
//! 2. Emergency-stop latency: from the stop request to the last of 100
//!    simulated AGVs (driving, over the embedded broker) reporting paused.
//! 3. A fleet of 500 simulated AGVs working on one node: the node's CPU
//!    and RSS. The fleet runs in a child process (this benchmark, started
//!    again), so the figures are the node's alone.
//!
//! Run with `cargo bench -p bazaar-node --bench devices`.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bazaar_kernel::model::{StoreId, WarehouseId, ZoneId};
use bazaar_node::devices::{self, BrokerAddress, BusSettings, DeviceBus, EmbeddedBroker};
use bazaar_node::node::{Node, NodeConfig};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed::{self, RobotHome};
use warehouse::{Fleet, FleetConfig, VehicleSpec};

/// Devices whose state messages the ingestion run cycles through.
const INGEST_DEVICES: usize = 100;
/// State messages decoded per ingestion run.
const INGEST_FRAMES: usize = 300_000;
/// Emergency stops measured.
const ESTOP_ROUNDS: usize = 10;
const ESTOP_AGVS: usize = 100;
const FLEET_AGVS: usize = 500;
/// How long the 500-AGV fleet is measured, after a settling period.
const FLEET_MEASURE_S: u64 = 30;
/// The environment variable that makes this binary the fleet process.
const FLEET_ROLE: &str = "BAZAAR_BENCH_FLEET_PORT";
/// Simulated time runs this much faster than real time.
const SPEEDUP: u32 = 10;

fn main() -> anyhow::Result<()> {
    if let Ok(port) = std::env::var(FLEET_ROLE) {
        return run_fleet_process(port.parse()?);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cores} cores, {}", std::env::consts::ARCH);
    ingestion()?;
    emergency_stop()?;
    fleet()?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A node with the robot warehouse seeded, its plugins, the store, an
/// embedded broker's address, and the robots' homes.
type RobotNode = (Arc<Node>, PluginSet, StoreId, BrokerAddress, Vec<RobotHome>);

/// Starts a [`RobotNode`] with `robots` AGVs registered.
fn robot_node(dir: &std::path::Path, robots: usize) -> anyhow::Result<RobotNode> {
    let plugins = PluginSet::first_party_wasm()?;
    let node = Arc::new(Node::open(NodeConfig::new(dir), plugins.clone())?);
    let store = StoreId::new("robot-store")?;
    let (commands, homes) = seed::robot_warehouse(&store, robots, 1_000_000);
    for command in commands {
        node.execute(command)?;
    }
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let broker = EmbeddedBroker::start(address)?;
    let broker = BrokerAddress { host: "127.0.0.1".into(), port: broker.address().port() };
    Ok((node, plugins, store, broker, homes))
}

fn vehicles(homes: Vec<RobotHome>) -> Vec<VehicleSpec> {
    homes
        .into_iter()
        .map(|home| VehicleSpec {
            serial_number: home.serial_number,
            model: seed::ROBOT_MODEL.into(),
            map_id: seed::ROBOT_MAP.into(),
            start_node_id: home.node,
            start_x_mm: home.x_mm,
            start_y_mm: home.y_mm,
        })
        .collect()
}

fn fleet_config(port: u16) -> FleetConfig {
    FleetConfig {
        broker_host: "127.0.0.1".into(),
        broker_port: port,
        manufacturer: seed::ROBOT_MANUFACTURER.into(),
        speedup: SPEEDUP,
        ..FleetConfig::default()
    }
}

/// A VDA 5050 2.0 state message of a vehicle in the middle of an order:
/// about a kilobyte, like a real vehicle's.
fn state_message(serial: &str, header_id: u64) -> Vec<u8> {
    let x = (header_id % 10_000) as f64 / 100.0;
    format!(
        r#"{{"headerId":{header_id},"timestamp":"2026-11-11T00:00:00.000Z","version":"2.0.0","manufacturer":"{manufacturer}","serialNumber":"{serial}","orderId":"task-7-1","orderUpdateId":0,"zoneSetId":"","lastNodeId":"shelf-3","lastNodeSequenceId":2,"driving":true,"paused":false,"newBaseRequest":false,"distanceSinceLastNode":1.25,"operatingMode":"AUTOMATIC","nodeStates":[{{"nodeId":"pack","sequenceId":4,"released":true,"nodeDescription":"","nodePosition":{{"x":0.0,"y":0.0,"theta":0.0,"mapId":"{map}"}}}}],"edgeStates":[{{"edgeId":"shelf-3-pack","sequenceId":3,"released":true,"edgeDescription":""}}],"agvPosition":{{"x":{x},"y":4.5,"theta":1.5708,"mapId":"{map}","positionInitialized":true,"localizationScore":0.98,"deviationRange":0.05}},"velocity":{{"vx":1.5,"vy":0.0,"omega":0.0}},"loads":[{{"loadId":"D11-ITEM-3","loadType":"EPAL","loadPosition":"front"}}],"actionStates":[{{"actionId":"pick-7-1","actionType":"pick","actionStatus":"FINISHED","resultDescription":""}},{{"actionId":"drop-7-1","actionType":"drop","actionStatus":"WAITING","resultDescription":""}}],"batteryState":{{"batteryCharge":87.5,"batteryVoltage":48.1,"batteryHealth":98,"charging":false,"reach":12000}},"errors":[],"information":[],"safetyState":{{"eStop":"NONE","fieldViolation":false}}}}"#,
        manufacturer = seed::ROBOT_MANUFACTURER,
        map = seed::ROBOT_MAP,
    )
    .into_bytes()
}

fn ingestion() -> anyhow::Result<()> {
    println!(
        "\n== telemetry ingestion ({INGEST_FRAMES} state messages, {INGEST_DEVICES} devices) =="
    );
    let dir = tempfile::tempdir()?;
    let (node, plugins, _store, broker, _homes) = robot_node(dir.path(), INGEST_DEVICES)?;
    let frames: Vec<(String, Vec<u8>)> = (0..INGEST_FRAMES)
        .map(|index| {
            let serial = format!("agv-{}", index % INGEST_DEVICES);
            let topic = format!("uagv/v2/{}/{serial}/state", seed::ROBOT_MANUFACTURER);
            (topic, state_message(&serial, index as u64))
        })
        .collect();
    let bytes: usize = frames.iter().map(|(_, payload)| payload.len()).sum();
    println!("mean message: {} bytes", bytes / frames.len());
    // Warm-up: instances, caches.
    devices::ingest_frames(node.clone(), plugins.clone(), &broker, &frames[..10_000])?;
    let mut rates = Vec::new();
    for _ in 0..3 {
        let (elapsed, counters) =
            devices::ingest_frames(node.clone(), plugins.clone(), &broker, &frames)?;
        let decoded = counters.frames_in.load(std::sync::atomic::Ordering::Relaxed)
            - counters.frames_malformed.load(std::sync::atomic::Ordering::Relaxed)
            - counters.frames_unrouted.load(std::sync::atomic::Ordering::Relaxed);
        anyhow::ensure!(decoded == INGEST_FRAMES as u64, "only {decoded} frames decoded");
        let rate = INGEST_FRAMES as f64 / elapsed.as_secs_f64();
        println!(
            "  {rate:.0} messages/s ({:.2} µs each, {} events applied)",
            elapsed.as_secs_f64() * 1e6 / INGEST_FRAMES as f64,
            counters.events_applied.load(std::sync::atomic::Ordering::Relaxed)
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!("RESULT telemetry_ingest_messages_per_s={:.0} (median of 3)", rates[1]);
    Ok(())
}

fn emergency_stop() -> anyhow::Result<()> {
    println!("\n== emergency stop, {ESTOP_AGVS} AGVs ==");
    let dir = tempfile::tempdir()?;
    let (node, plugins, store, broker, homes) = robot_node(dir.path(), ESTOP_AGVS)?;
    let bus = DeviceBus::start(node.clone(), plugins, &broker, BusSettings::default())?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let fleet = runtime.block_on(Fleet::spawn(fleet_config(broker.port), vehicles(homes)))?;
    wait("every AGV online", Duration::from_secs(60), || {
        bus.fleet().iter().filter(|status| status.device.online).count() == ESTOP_AGVS
    })?;
    // Work for every robot, so they are driving when stopped.
    seed::place_paid_robot_orders(&node, &store, 1, 4 * ESTOP_AGVS as u64)?;
    let warehouse = WarehouseId::new(seed::ROBOT_WAREHOUSE)?;
    let zone = ZoneId::new(seed::ROBOT_ZONE)?;
    let mut latencies = Vec::new();
    for _ in 0..ESTOP_ROUNDS {
        wait("robots driving", Duration::from_secs(60), || {
            fleet.status().iter().filter(|vehicle| vehicle.driving).count() >= ESTOP_AGVS / 2
        })?;
        let started = Instant::now();
        // The pauses go out before the hold is journaled; the latency is
        // to the last vehicle's own paused state.
        let hold = std::thread::scope(|scope| {
            let hold = scope.spawn(|| {
                bus.set_zone_and_wait(store.clone(), warehouse.clone(), zone.clone(), true)
            });
            let paused = wait("every AGV paused", Duration::from_secs(30), || {
                fleet.status().iter().all(|vehicle| vehicle.paused)
            });
            paused.map(|()| (started.elapsed(), hold.join()))
        })?;
        hold.1.map_err(|_| anyhow::anyhow!("the hold panicked"))??;
        latencies.push(hold.0);
        bus.set_zone_and_wait(store.clone(), warehouse.clone(), zone.clone(), false)?;
        wait("every AGV resumed", Duration::from_secs(30), || {
            fleet.status().iter().all(|vehicle| !vehicle.paused)
        })?;
    }
    latencies.sort();
    println!(
        "  latencies ms: {:?}",
        latencies.iter().map(|l| format!("{:.1}", l.as_secs_f64() * 1e3)).collect::<Vec<_>>()
    );
    println!(
        "RESULT estop_last_agv_paused_ms p50={:.1} max={:.1} agvs={ESTOP_AGVS}",
        latencies[latencies.len() / 2].as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
    );
    runtime.block_on(fleet.shutdown());
    bus.shutdown();
    Ok(())
}

fn fleet() -> anyhow::Result<()> {
    println!("\n== {FLEET_AGVS} AGVs on one node ==");
    let dir = tempfile::tempdir()?;
    let (node, plugins, store, broker, _homes) = robot_node(dir.path(), FLEET_AGVS)?;
    let rss_idle_mib = rss_mib();
    let bus = DeviceBus::start(node.clone(), plugins, &broker, BusSettings::default())?;
    let mut child = Process::new(std::env::current_exe()?)
        .env(FLEET_ROLE, broker.port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    wait("every AGV online", Duration::from_secs(120), || {
        bus.fleet().iter().filter(|status| status.device.online).count() == FLEET_AGVS
    })?;
    seed::place_paid_robot_orders(&node, &store, 1, 4 * FLEET_AGVS as u64)?;
    std::thread::sleep(Duration::from_secs(5));
    let (cpu_before, frames_before, done_before) = (
        cpu_seconds(),
        bus.counters().frames_in.load(std::sync::atomic::Ordering::Relaxed),
        bus.counters().tasks_done.load(std::sync::atomic::Ordering::Relaxed),
    );
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(FLEET_MEASURE_S));
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let frames =
        bus.counters().frames_in.load(std::sync::atomic::Ordering::Relaxed) - frames_before;
    let done = bus.counters().tasks_done.load(std::sync::atomic::Ordering::Relaxed) - done_before;
    let rss = rss_mib();
    println!(
        "  {:.0} frames/s in, {:.1} tasks/s done, node RSS {rss:.0} MiB (before the bus and fleet: {rss_idle_mib:.0} MiB)",
        frames as f64 / wall,
        done as f64 / wall,
    );
    println!(
        "RESULT fleet_{FLEET_AGVS}_agvs node_cpu_percent={:.1} node_rss_mib={rss:.0} frames_per_s={:.0}",
        cpu / wall * 100.0,
        frames as f64 / wall,
    );
    drop(child.stdin.take());
    child.wait()?;
    bus.shutdown();
    Ok(())
}

/// The fleet process: runs 500 AGVs until its standard input closes.
fn run_fleet_process(port: u16) -> anyhow::Result<()> {
    let (_, homes) = seed::robot_warehouse(&StoreId::new("robot-store")?, FLEET_AGVS, 0);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let fleet = runtime.block_on(Fleet::spawn(fleet_config(port), vehicles(homes)))?;
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    runtime.block_on(fleet.shutdown());
    Ok(())
}

fn wait(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// User plus system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of this process, MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}
