//! How fast a device driver decodes a vehicle's messages: the first-party
//! VDA 5050 driver, in the runtime, fed the state messages a fleet of
//! automated guided vehicles publishes, the way the device bus feeds it
//! (one call per message, the driver's memory of the device handed back
//! on the next call).
//!
//! Run with `cargo bench -p bazaar-runtime --bench driver`. Prints its
//! figures and `RESULT <name> <value> <unit>` lines for BENCHMARKS.md. The
//! device bus's target is 100,000 state messages a second decoded and
//! applied on a 2-core machine.
//!
//! The messages are built before the clock starts: [`MESSAGES`] VDA 5050
//! 2.0 state messages of about 1 KB each (a vehicle driving a job, its
//! position, battery, one node and edge ahead, one pending action), their
//! header ids counting up and their positions moving along an aisle. Each
//! pass starts a fresh device memory, as a vehicle that has just
//! connected. The timed part is the runtime call (the input checks, the
//! copy of the payload into the guest, the guest's parse and translation,
//! the copy of its events out and their checks). For scale, the same
//! messages are also parsed natively into a `serde_json::Value` on the
//! host, and a small connection message is decoded to show the cost of a
//! call itself.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bazaar_artifacts::DRIVER_VDA5050;
use bazaar_kernel::model::{PluginId, PluginRef, StoreId};
use bazaar_runtime::{
    DeviceContext, DeviceDriver, DeviceInfo, DriverPlugin, PluginCall, Runtime, RuntimeLimits,
};

/// Distinct state messages decoded per pass.
const MESSAGES: usize = 8_192;
/// Passes over the messages per round.
const PASSES: usize = 4;
/// Rounds of each measurement; the median is reported.
const ROUNDS: usize = 5;
/// The store's configuration of the driver.
const CONFIG: &str = r#"{"interface_name": "uagv", "major_version": "v2"}"#;
/// Wall-clock time of the calls, milliseconds since the Unix epoch.
const NOW_MS: u64 = 1_795_687_200_000;
/// The connection message a vehicle publishes when it comes online.
const ONLINE: &str = r#"{"headerId":1,"timestamp":"2026-11-26T10:00:00.000Z","version":"2.0.0","manufacturer":"M","serialNumber":"S","connectionState":"ONLINE"}"#;

/// The vehicle the messages come from.
fn vehicle() -> DeviceInfo {
    DeviceInfo {
        id: "agv-1".to_owned(),
        manufacturer: "M".to_owned(),
        serial_number: "S".to_owned(),
        model: "lift-2".to_owned(),
    }
}

/// The `index`th state message of a vehicle driving job-1 along an aisle.
fn state_message(index: usize) -> Vec<u8> {
    let header_id = index + 1;
    let second = index / 1000;
    let milli = index % 1000;
    let x_m = 2.0 + (index % 4_000) as f64 * 0.005;
    let last_node = 2 + index % 40;
    format!(
        r#"{{"headerId":{header_id},"timestamp":"2026-11-26T10:{minute:02}:{second:02}.{milli:03}Z","version":"2.0.0","manufacturer":"M","serialNumber":"S","orderId":"job-1","orderUpdateId":0,"zoneSetId":"","lastNodeId":"N{last_node}","lastNodeSequenceId":{last_sequence},"driving":true,"paused":false,"newBaseRequest":false,"distanceSinceLastNode":1.25,"operatingMode":"AUTOMATIC","nodeStates":[{{"nodeId":"N{next_node}","sequenceId":{next_sequence},"released":true,"nodePosition":{{"x":{next_x:.3},"y":4.0,"mapId":"hall-1"}}}}],"edgeStates":[{{"edgeId":"N{last_node}-N{next_node}","sequenceId":{edge_sequence},"released":true}}],"agvPosition":{{"x":{x_m:.3},"y":4.0,"theta":1.5708,"mapId":"hall-1","positionInitialized":true,"localizationScore":0.98}},"velocity":{{"vx":1.0,"vy":0.0,"omega":0.0}},"loads":[],"actionStates":[{{"actionId":"pick-1","actionType":"pick","actionStatus":"WAITING"}}],"batteryState":{{"batteryCharge":{charge:.1},"batteryVoltage":48.2,"batteryHealth":96,"charging":false,"reach":12000}},"errors":[],"information":[],"safetyState":{{"eStop":"NONE","fieldViolation":false}}}}"#,
        minute = (second / 60) % 60,
        second = second % 60,
        last_sequence = 2 * last_node,
        next_node = last_node + 1,
        next_sequence = 2 * last_node + 2,
        edge_sequence = 2 * last_node + 1,
        next_x = x_m + 1.0,
        charge = 90.0 - (index % 500) as f64 * 0.01,
    )
    .into_bytes()
}

/// A driver call for one store; a driver has no state.
fn call() -> PluginCall {
    PluginCall {
        store: StoreId::new("store-a").expect("valid store id"),
        config_json: Some(Arc::from(CONFIG)),
        state: Arc::default(),
        now_ms: NOW_MS,
        random_seed: 0,
    }
}

/// Decodes every message `passes` times on `driver`, each pass from an
/// empty memory; returns the time taken and the events produced.
fn decode_all(
    driver: &mut DeviceDriver,
    device: &DeviceInfo,
    topic: &str,
    messages: &[Vec<u8>],
    passes: usize,
) -> anyhow::Result<(Duration, usize)> {
    let mut events = 0;
    let started = Instant::now();
    for _ in 0..passes {
        let mut memory = Vec::new();
        for message in messages {
            let context = DeviceContext { device, memory: &memory, now_ms: NOW_MS, position: None };
            let decoded = driver
                .decode(call(), context, topic, message)
                .result
                .map_err(|error| anyhow::anyhow!("a decode faulted: {error}"))?
                .map_err(|refusal| anyhow::anyhow!("the driver refused a message: {refusal}"))?;
            events += decoded.events.len();
            memory = decoded.memory;
        }
    }
    Ok((started.elapsed(), events))
}

/// The median rate over [`ROUNDS`] rounds of `round`, which returns the
/// messages handled and the time taken.
fn median_rate(
    mut round: impl FnMut() -> anyhow::Result<(usize, Duration)>,
) -> anyhow::Result<(f64, Vec<u64>)> {
    let mut rates = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let (messages, elapsed) = round()?;
        rates.push(messages as f64 / elapsed.as_secs_f64());
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    Ok((sorted[sorted.len() / 2], rates.iter().map(|rate| *rate as u64).collect()))
}

/// Decodes on `threads` workers at once, each with its own instance and
/// its own vehicle; returns the messages handled and the wall-clock time.
fn decode_in_parallel(
    plugin: &DriverPlugin,
    namespace_of: &dyn Fn(&DeviceInfo) -> anyhow::Result<String>,
    messages: &[Vec<u8>],
    threads: usize,
) -> anyhow::Result<(usize, Duration)> {
    let workers: Vec<(DeviceDriver, DeviceInfo, String)> = (0..threads)
        .map(|index| {
            let device = DeviceInfo { id: format!("agv-{index}"), ..vehicle() };
            let topic = format!("{}state", namespace_of(&device)?);
            Ok((plugin.driver(), device, topic))
        })
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|(mut driver, device, topic)| {
                scope.spawn(move || decode_all(&mut driver, &device, &topic, messages, PASSES))
            })
            .collect();
        for handle in handles {
            handle.join().map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        anyhow::Ok(())
    })?;
    Ok((messages.len() * PASSES * threads, started.elapsed()))
}

fn main() -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cores} cores, {}", std::env::consts::ARCH);
    let messages: Vec<Vec<u8>> = (0..MESSAGES).map(state_message).collect();
    let mean_bytes = messages.iter().map(Vec::len).sum::<usize>() / messages.len();
    println!("messages: {MESSAGES} VDA 5050 state messages, {mean_bytes} bytes on average");

    let runtime = Runtime::new(RuntimeLimits::default())?;
    let plugin = runtime.load_driver(
        PluginRef {
            id: PluginId::new(DRIVER_VDA5050.id)?,
            version: DRIVER_VDA5050.version.to_owned(),
        },
        DRIVER_VDA5050.wasm,
    )?;
    let mut driver = plugin.driver();
    let device = vehicle();
    let namespace = driver
        .namespace(call(), &device)
        .result
        .map_err(|error| anyhow::anyhow!("namespace: {error}"))?;
    let state_topic = format!("{namespace}state");
    let connection_topic = format!("{namespace}connection");

    // Warm the instance and the caches once.
    let (_, events) = decode_all(&mut driver, &device, &state_topic, &messages, 1)?;
    println!("events: {:.1} per state message", events as f64 / MESSAGES as f64);

    let (rate, rounds) = median_rate(|| {
        let (elapsed, _) = decode_all(&mut driver, &device, &state_topic, &messages, PASSES)?;
        Ok((MESSAGES * PASSES, elapsed))
    })?;
    println!(
        "decode, 1 worker: median {rate:.0} state messages/s ({:.2} µs each); rounds: {rounds:?}",
        1e6 / rate
    );
    println!("RESULT driver_decode_state_messages_per_second {rate:.0} msgs/s");

    let parallel_namespace = |device: &DeviceInfo| {
        plugin
            .driver()
            .namespace(call(), device)
            .result
            .map_err(|error| anyhow::anyhow!("namespace: {error}"))
    };
    let (parallel_rate, rounds) =
        median_rate(|| decode_in_parallel(&plugin, &parallel_namespace, &messages, cores))?;
    println!(
        "decode, {cores} workers: median {parallel_rate:.0} state messages/s; rounds: {rounds:?}"
    );
    println!(
        "RESULT driver_decode_state_messages_per_second_{cores}_workers {parallel_rate:.0} msgs/s"
    );

    let online = vec![ONLINE.as_bytes().to_vec(); MESSAGES];
    let (connection_rate, rounds) = median_rate(|| {
        let (elapsed, _) = decode_all(&mut driver, &device, &connection_topic, &online, PASSES)?;
        Ok((MESSAGES * PASSES, elapsed))
    })?;
    println!(
        "decode of a {}-byte connection message, 1 worker: median {connection_rate:.0}/s \
         ({:.2} µs each); rounds: {rounds:?}",
        ONLINE.len(),
        1e6 / connection_rate
    );
    println!("RESULT driver_decode_connection_messages_per_second {connection_rate:.0} msgs/s");

    let (native_rate, rounds) = median_rate(|| {
        let started = Instant::now();
        for _ in 0..PASSES {
            for message in &messages {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(message))?);
            }
        }
        Ok((MESSAGES * PASSES, started.elapsed()))
    })?;
    println!(
        "native serde_json::Value parse of the state messages, 1 thread: median \
         {native_rate:.0}/s; rounds: {rounds:?}"
    );
    println!("wasm decode / native parse: {:.2}", rate / native_rate);
    println!("RESULT driver_decode_vs_native_parse_ratio {:.2} x", rate / native_rate);
    Ok(())
}
