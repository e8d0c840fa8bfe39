//! The device-driver extension point end to end: the first-party VDA 5050
//! driver installed and loaded as a device driver, naming a device's
//! topics, turning a job into frames and the vehicle's messages into
//! events; the inputs the runtime refuses before a driver sees them; and a
//! hostile driver's faults (a trap, a loop, garbage) reported as faults,
//! with the worker's next call served by a fresh instance.

// Every test binary compiles the shared helpers whole; this one calls
// drivers, not carts.
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use bazaar_artifacts::{DRIVER_VDA5050, HOSTILE_DRIVER, PRICING_PROMOTIONS};
use bazaar_kernel::model::{Capability, PluginKind};
use bazaar_runtime::{
    ActionKind, CallError, ConnectionState, DeviceCommand, DeviceContext, DeviceDriver,
    DeviceEvent, DeviceInfo, DriverPlugin, DriverRefusal, INBOUND_PAYLOAD_BYTES_MAX, Job,
    LoadError, LoadedPlugin, MapNode, PluginCall, PluginLimits, Runtime, Stop, StopAction,
    TOPIC_BYTES_MAX,
};
use common::{NOW_MS, call, plugin_ref, runtime, test_limits};

/// The store's configuration of the VDA 5050 driver: the standard's
/// interface name and major version, which its topics begin with.
const VDA_CONFIG: &str = r#"{"interface_name": "uagv", "major_version": "v2"}"#;

/// The connection message a VDA 5050 vehicle publishes when it comes online.
const ONLINE: &str = r#"{"headerId":1,"timestamp":"2026-11-26T10:00:00.000Z","version":"2.0.0","manufacturer":"M","serialNumber":"S","connectionState":"ONLINE"}"#;

/// A VDA 5050 state message of about 1 KB: driving job-1 towards N3 at
/// (12.345 m, 4 m), heading north, battery at 87.5 %.
const STATE: &str = r#"{"headerId":42,"timestamp":"2026-11-26T10:00:01.000Z","version":"2.0.0","manufacturer":"M","serialNumber":"S","orderId":"job-1","orderUpdateId":0,"zoneSetId":"","lastNodeId":"N2","lastNodeSequenceId":2,"driving":true,"paused":false,"newBaseRequest":false,"distanceSinceLastNode":1.25,"operatingMode":"AUTOMATIC","nodeStates":[{"nodeId":"N3","sequenceId":4,"released":true,"nodePosition":{"x":15.0,"y":4.0,"mapId":"hall-1"}}],"edgeStates":[{"edgeId":"N2-N3","sequenceId":3,"released":true}],"agvPosition":{"x":12.345,"y":4.0,"theta":1.5708,"mapId":"hall-1","positionInitialized":true,"localizationScore":0.98},"velocity":{"vx":1.0,"vy":0.0,"omega":0.0},"loads":[],"actionStates":[{"actionId":"pick-1","actionType":"pick","actionStatus":"WAITING"}],"batteryState":{"batteryCharge":87.5,"batteryVoltage":48.2,"batteryHealth":96,"charging":false,"reach":12000},"errors":[],"information":[],"safetyState":{"eStop":"NONE","fieldViolation":false}}"#;

/// The vehicle the messages above come from.
fn vehicle() -> DeviceInfo {
    DeviceInfo {
        id: "agv-1".to_owned(),
        manufacturer: "M".to_owned(),
        serial_number: "S".to_owned(),
        model: "lift-2".to_owned(),
    }
}

/// A driver call for store A with `config_json`; drivers have no state.
fn driver_call(config_json: &str) -> PluginCall {
    call("store-a", Some(config_json), Arc::default())
}

/// A context for `device` with the driver's `memory` and no position yet.
fn context<'a>(device: &'a DeviceInfo, memory: &'a [u8]) -> DeviceContext<'a> {
    DeviceContext { device, memory, now_ms: NOW_MS, position: None }
}

/// A job from N1 to a pick at N2 and a drop at N3.
fn pick_job() -> Job {
    let node = |id: &str, x_mm: i64| MapNode {
        id: id.to_owned(),
        x_mm,
        y_mm: 4_000,
        map_id: "hall-1".to_owned(),
    };
    let action = |kind: ActionKind, action_id: &str, station: &str| StopAction {
        kind,
        action_id: action_id.to_owned(),
        load_id: "D11-PHONE".to_owned(),
        station: station.to_owned(),
    };
    Job {
        job_id: "job-1".to_owned(),
        update: 0,
        stops: vec![
            Stop { node: node("N1", 0), action: None },
            Stop {
                node: node("N2", 6_000),
                action: Some(action(ActionKind::Pick, "pick-1", "A-12")),
            },
            Stop {
                node: node("N3", 15_000),
                action: Some(action(ActionKind::Drop, "drop-1", "pack-3")),
            },
        ],
    }
}

fn every_grant() -> BTreeSet<Capability> {
    Capability::ALL.into_iter().collect()
}

fn load_vda(runtime: &Runtime) -> DriverPlugin {
    runtime.load_driver(plugin_ref(&DRIVER_VDA5050), DRIVER_VDA5050.wasm).expect("the driver loads")
}

fn load_hostile(runtime: &Runtime) -> DriverPlugin {
    runtime
        .load_driver(plugin_ref(&HOSTILE_DRIVER), HOSTILE_DRIVER.wasm)
        .expect("the hostile driver loads")
}

/// The VDA driver's namespace for `device`, checked for shape.
fn namespace(driver: &mut DeviceDriver, device: &DeviceInfo) -> String {
    let namespace = driver
        .namespace(driver_call(VDA_CONFIG), device)
        .result
        .expect("the driver names a namespace");
    assert!(namespace.ends_with('/') && namespace.len() <= TOPIC_BYTES_MAX, "{namespace:?}");
    namespace
}

/// A hostile driver's call configured to behave as `behaviour`.
fn behaving(behaviour: &str) -> PluginCall {
    driver_call(&format!(r#"{{"behaviour": "{behaviour}"}}"#))
}

fn refused_input<T: std::fmt::Debug>(result: Result<T, CallError>) {
    assert!(matches!(result, Err(CallError::InvalidInput(_))), "{result:?}");
}

fn invalid_output<T: std::fmt::Debug>(result: Result<T, CallError>) {
    assert!(matches!(result, Err(CallError::InvalidOutput(_))), "{result:?}");
}

#[test]
fn the_vda_driver_installs_as_a_device_driver_with_log_and_config() {
    let runtime = runtime(test_limits());
    let compiled = runtime.compile(DRIVER_VDA5050.wasm).expect("compiles");
    let granted: BTreeSet<Capability> = [Capability::Log, Capability::Config].into();
    let report = runtime
        .check(&compiled, PluginKind::DeviceDriver, &granted)
        .expect("passes the install check with log and config");
    assert_eq!(report.exports, ["bazaar:commerce/driver@0.2.0"]);
    assert!(report.capabilities_used.is_subset(&granted), "{:?}", report.capabilities_used);

    let loaded = runtime
        .load(
            plugin_ref(&DRIVER_VDA5050),
            PluginKind::DeviceDriver,
            &compiled,
            PluginLimits::default(),
        )
        .expect("links");
    assert_eq!(loaded.kind(), PluginKind::DeviceDriver);
    assert_eq!(loaded.plugin_ref(), &plugin_ref(&DRIVER_VDA5050));
    let LoadedPlugin::Driver(plugin) = loaded else {
        panic!("expected a driver plugin");
    };
    namespace(&mut plugin.driver(), &vehicle());
}

#[test]
fn a_pricing_component_is_no_device_driver_and_a_driver_is_no_pricing_plugin() {
    let runtime = runtime(test_limits());
    let pricing = runtime.compile(PRICING_PROMOTIONS.wasm).expect("compiles");
    match runtime.check(&pricing, PluginKind::DeviceDriver, &every_grant()) {
        Err(LoadError::WrongWorld { world, detail }) => {
            assert_eq!(world, "device-driver");
            assert!(detail.contains("bazaar:commerce/driver@0.2.0"), "{detail}");
        }
        other => panic!("expected the wrong world, got {other:?}"),
    }
    assert!(matches!(
        runtime.load(
            plugin_ref(&PRICING_PROMOTIONS),
            PluginKind::DeviceDriver,
            &pricing,
            PluginLimits::default()
        ),
        Err(LoadError::WrongWorld { world: "device-driver", .. })
    ));

    let driver = runtime.compile(DRIVER_VDA5050.wasm).expect("compiles");
    assert!(matches!(
        runtime.check(&driver, PluginKind::Pricing, &every_grant()),
        Err(LoadError::WrongWorld { world: "pricing", .. })
    ));
}

#[test]
fn the_vda_driver_subscribes_to_the_vehicles_topics_under_its_namespace() {
    let runtime = runtime(test_limits());
    let mut driver = load_vda(&runtime).driver();
    let device = vehicle();
    let namespace = namespace(&mut driver, &device);
    let subscriptions = driver
        .subscriptions(driver_call(VDA_CONFIG), &device)
        .result
        .expect("the driver names its subscriptions");
    assert!(subscriptions.iter().all(|topic| topic.starts_with(&namespace)), "{subscriptions:?}");
    for topic in ["state", "connection"] {
        assert!(subscriptions.contains(&format!("{namespace}{topic}")), "{subscriptions:?}");
    }

    // Another vehicle lies under another namespace.
    let other = DeviceInfo { serial_number: "T".to_owned(), id: "agv-2".to_owned(), ..vehicle() };
    assert_ne!(self::namespace(&mut driver, &other), namespace);
}

#[test]
fn a_vehicle_the_driver_cannot_address_gets_no_namespace() {
    let runtime = runtime(test_limits());
    let mut driver = load_vda(&runtime).driver();
    // A `#` in a topic level would claim every topic; the driver answers
    // with a namespace no frame can lie under, which the runtime refuses.
    let unaddressable = DeviceInfo { serial_number: "S#1".to_owned(), ..vehicle() };
    match driver.namespace(driver_call(VDA_CONFIG), &unaddressable).result {
        Err(CallError::InvalidOutput(text)) => assert!(text.contains("wildcard"), "{text}"),
        other => panic!("expected invalid output, got {other:?}"),
    }
}

#[test]
fn a_job_becomes_frames_under_the_namespace_and_the_vehicles_messages_become_events() {
    let runtime = runtime(test_limits());
    let plugin = load_vda(&runtime);
    let mut driver = plugin.driver();
    let device = vehicle();
    let namespace = namespace(&mut driver, &device);

    let outcome = driver.encode(
        driver_call(VDA_CONFIG),
        context(&device, &[]),
        &DeviceCommand::StartJob(pick_job()),
    );
    assert!(outcome.state_writes.is_empty(), "a driver has no state");
    let encoded = outcome.result.expect("no fault").expect("a job is expressible");
    assert!(!encoded.frames.is_empty());
    assert!(encoded.frames.iter().all(|frame| frame.topic.starts_with(&namespace)));
    assert!(encoded.frames.iter().all(|frame| !frame.payload.is_empty()));

    let connection = format!("{namespace}connection");
    let decoded = driver
        .decode(
            driver_call(VDA_CONFIG),
            context(&device, &encoded.memory),
            &connection,
            ONLINE.as_bytes(),
        )
        .result
        .expect("no fault")
        .expect("a connection message is understood");
    assert!(
        decoded.events.contains(&DeviceEvent::Connection(ConnectionState::Online)),
        "{:?}",
        decoded.events
    );

    let state = format!("{namespace}state");
    let decoded = driver
        .decode(
            driver_call(VDA_CONFIG),
            context(&device, &decoded.memory),
            &state,
            STATE.as_bytes(),
        )
        .result
        .expect("no fault")
        .expect("a state message is understood");
    let position = decoded.events.iter().find_map(|event| match event {
        DeviceEvent::Position(position) => Some(position),
        _ => None,
    });
    let position = position.unwrap_or_else(|| panic!("no position in {:?}", decoded.events));
    assert_eq!((position.x_mm, position.y_mm), (12_345, 4_000));
    assert_eq!(position.map_id, "hall-1");
    assert!(
        decoded.events.contains(&DeviceEvent::Battery { charge_permille: 875, charging: false }),
        "{:?}",
        decoded.events
    );
    let counters = plugin.counters();
    assert_eq!((counters.failures, counters.traps), (0, 0));
}

#[test]
fn a_payload_that_is_not_json_is_the_drivers_refusal_not_a_fault() {
    let runtime = runtime(test_limits());
    let plugin = load_vda(&runtime);
    let mut driver = plugin.driver();
    let device = vehicle();
    let state = format!("{}state", namespace(&mut driver, &device));
    let outcome =
        driver.decode(driver_call(VDA_CONFIG), context(&device, &[]), &state, b"not json {");
    assert!(matches!(outcome.result, Ok(Err(DriverRefusal::Malformed(_)))), "{:?}", outcome.result);
    assert_eq!(plugin.counters().failures, 0, "a refusal is an answer");
}

#[test]
fn inputs_out_of_bounds_never_reach_the_driver() {
    let runtime = runtime(test_limits());
    let plugin = load_vda(&runtime);
    let mut driver = plugin.driver();
    let device = vehicle();

    let huge = vec![b' '; INBOUND_PAYLOAD_BYTES_MAX + 1];
    refused_input(
        driver.decode(driver_call(VDA_CONFIG), context(&device, &[]), "uagv/x", &huge).result,
    );
    refused_input(
        driver.decode(driver_call(VDA_CONFIG), context(&device, &[]), "uagv/#", b"{}").result,
    );
    let memory = vec![0; bazaar_runtime::DRIVER_MEMORY_BYTES_MAX + 1];
    refused_input(
        driver
            .encode(driver_call(VDA_CONFIG), context(&device, &memory), &DeviceCommand::Pause)
            .result,
    );
    let mut long_job = pick_job();
    long_job.stops = vec![long_job.stops[0].clone(); bazaar_runtime::JOB_STOPS_MAX + 1];
    refused_input(
        driver
            .encode(
                driver_call(VDA_CONFIG),
                context(&device, &[]),
                &DeviceCommand::StartJob(long_job),
            )
            .result,
    );
    let nameless = DeviceInfo { id: String::new(), ..vehicle() };
    refused_input(driver.namespace(driver_call(VDA_CONFIG), &nameless).result);
    assert_eq!(plugin.counters().calls, 0, "the driver was never called");
}

/// The hostile driver's answer to `online` when it behaves: the vehicle is
/// online.
fn echoes_online(driver: &mut DeviceDriver, device: &DeviceInfo) {
    let outcome =
        driver.decode(behaving("echo"), context(device, &[]), "hostile/S/state", b"online");
    match outcome.result {
        Ok(Ok(decoded)) => {
            assert_eq!(decoded.events, [DeviceEvent::Connection(ConnectionState::Online)])
        }
        other => panic!("expected the connection event, got {other:?}"),
    }
}

#[test]
fn a_trapping_driver_faults_and_the_next_call_gets_a_fresh_instance() {
    let runtime = runtime(test_limits());
    let plugin = load_hostile(&runtime);
    let mut driver = plugin.driver();
    let device = vehicle();
    echoes_online(&mut driver, &device);
    let outcome = driver.decode(behaving("trap"), context(&device, &[]), "hostile/S/state", b"{}");
    assert!(matches!(outcome.result, Err(CallError::Trap(_))), "{:?}", outcome.result);
    let outcome = driver.encode(behaving("trap"), context(&device, &[]), &DeviceCommand::Pause);
    assert!(matches!(outcome.result, Err(CallError::Trap(_))), "{:?}", outcome.result);
    assert_eq!(plugin.counters().traps, 2);

    echoes_online(&mut driver, &device);
    assert_eq!(plugin.counters().instantiations, 3, "each trapped instance was replaced");
}

#[test]
fn a_looping_driver_is_stopped_at_its_deadline_and_the_next_call_is_served() {
    let runtime = runtime(test_limits());
    let plugin = load_hostile(&runtime);
    let mut driver = plugin.driver();
    let device = vehicle();
    let outcome = driver.decode(behaving("loop"), context(&device, &[]), "hostile/S/state", b"{}");
    assert!(
        matches!(outcome.result, Err(CallError::DeadlineExceeded { deadline_ms: 250 })),
        "{:?}",
        outcome.result
    );
    echoes_online(&mut driver, &device);
}

#[test]
fn a_driver_emitting_garbage_is_a_fault_of_invalid_output() {
    let runtime = runtime(test_limits());
    let plugin = load_hostile(&runtime);
    let mut driver = plugin.driver();
    let device = vehicle();
    // A 2 MiB frame, over FRAME_PAYLOAD_BYTES_MAX.
    invalid_output(
        driver.encode(behaving("garbage"), context(&device, &[]), &DeviceCommand::Resume).result,
    );
    // 10,000 events from one frame, over EVENTS_PER_FRAME_MAX.
    invalid_output(
        driver.decode(behaving("garbage"), context(&device, &[]), "hostile/S/state", b"{}").result,
    );
    assert_eq!(plugin.counters().failures, 2);
    echoes_online(&mut driver, &device);
}
