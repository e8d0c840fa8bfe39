//! The driver's behaviour through the SDK's stand-in host: commands in,
//! VDA 5050 messages out; vehicle messages in, events out, with the memory
//! threaded from call to call as the host does.

use bazaar_sdk::device::{
    ActionKind, ActionStatus, ActionUpdate, Battery, ConnectionState, DeviceCommand, DeviceError,
    DeviceEvent, DeviceInfo, DevicePosition, DriverError, ErrorLevel, Frame, Job, MapNode,
    NodeReached, Stop, StopAction, UNROUTABLE_NAMESPACE,
};
use bazaar_sdk::log::Level;
use bazaar_sdk::stand_in;
use bazaar_sdk::testing::DriverSession;
use serde_json::{Value, json};

use super::*;
use crate::decode::{ACTION_UPDATES_MAX, PAYLOAD_BYTES_MAX};
use crate::encode::JOB_STOPS_MAX;

/// 2026-11-26T11:22:44.123Z.
const NOW_MS: u64 = 1_795_692_164_123;

const STATE: &str = "uagv/v2/KIT/0001/state";

fn vehicle() -> DeviceInfo {
    DeviceInfo::new("agv-7", "KIT", "0001", "x2")
}

/// A fresh stand-in host with `config`, and a session for [`vehicle`].
fn session(config: Option<&str>) -> DriverSession<Vda5050> {
    stand_in::reset();
    stand_in::set_config(config);
    let mut session = DriverSession::new(vehicle());
    session.at_ms(NOW_MS);
    session
}

fn action(kind: ActionKind, action_id: &str, load_id: &str, station: &str) -> StopAction {
    StopAction {
        kind,
        action_id: action_id.to_owned(),
        load_id: load_id.to_owned(),
        station: station.to_owned(),
    }
}

fn stop(node: &str, x_mm: i64, y_mm: i64, action: Option<StopAction>) -> Stop {
    Stop { node: MapNode::new(node, x_mm, y_mm, "hall-1"), action }
}

/// Pick SKU-1 at shelf A, drop it at dock B.
fn pick_and_drop(job_id: &str) -> Job {
    Job {
        job_id: job_id.to_owned(),
        update: 0,
        stops: vec![
            stop("A", 1_500, 2_000, Some(action(ActionKind::Pick, "pick-1", "SKU-1", "shelf-A"))),
            stop("B", 10_250, -500, Some(action(ActionKind::Drop, "drop-1", "SKU-1", "dock-B"))),
        ],
    }
}

fn at_node(node: &str) -> DevicePosition {
    DevicePosition {
        x_mm: 0,
        y_mm: 0,
        theta_mrad: 0,
        map_id: "hall-1".to_owned(),
        last_node_id: Some(node.to_owned()),
    }
}

fn json_of(frame: &Frame) -> Value {
    serde_json::from_slice(&frame.payload).expect("the driver writes JSON")
}

fn only_frame(frames: Vec<Frame>) -> Frame {
    assert_eq!(frames.len(), 1, "{frames:?}");
    frames.into_iter().next().expect("one frame")
}

fn send(session: &mut DriverSession<Vda5050>, command: DeviceCommand) -> Value {
    json_of(&only_frame(session.encode(&command).expect("the command encodes")))
}

fn node_ids(order: &Value) -> Vec<(String, u64)> {
    order["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|node| {
            (
                node["nodeId"].as_str().expect("id").to_owned(),
                node["sequenceId"].as_u64().expect("seq"),
            )
        })
        .collect()
}

fn edge_ids(order: &Value) -> Vec<(String, u64, String, String)> {
    order["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| {
            (
                edge["edgeId"].as_str().expect("id").to_owned(),
                edge["sequenceId"].as_u64().expect("seq"),
                edge["startNodeId"].as_str().expect("start").to_owned(),
                edge["endNodeId"].as_str().expect("end").to_owned(),
            )
        })
        .collect()
}

fn owned(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|&(id, sequence)| (id.to_owned(), sequence)).collect()
}

fn edges(list: &[(&str, u64, &str, &str)]) -> Vec<(String, u64, String, String)> {
    list.iter()
        .map(|&(id, sequence, start, end)| {
            (id.to_owned(), sequence, start.to_owned(), end.to_owned())
        })
        .collect()
}

// ---------------------------------------------------------------- encode

#[test]
fn a_new_job_is_the_order_the_standard_describes_starting_at_the_vehicle_s_last_node() {
    let mut session = session(Some(
        r#"{"default_parameters": {"pick": [{"key": "stationType", "value": "floor"}]}}"#,
    ));
    session.set_position(Some(at_node("home")));
    let frame =
        only_frame(session.encode(&DeviceCommand::StartJob(pick_and_drop("job-1"))).unwrap());
    assert_eq!(frame.topic, "uagv/v2/KIT/0001/order");
    assert_eq!((frame.qos, frame.retain), (0, false));
    let expected = json!({
        "headerId": 0,
        "timestamp": "2026-11-26T11:22:44.123Z",
        "version": "2.0.0",
        "manufacturer": "KIT",
        "serialNumber": "0001",
        "orderId": "job-1",
        "orderUpdateId": 0,
        "nodes": [
            {
                "nodeId": "home", "sequenceId": 0, "released": true,
                "nodePosition": {"x": 0.0, "y": 0.0, "mapId": "hall-1"},
                "actions": []
            },
            {
                "nodeId": "A", "sequenceId": 2, "released": true,
                "nodePosition": {"x": 1.5, "y": 2.0, "mapId": "hall-1"},
                "actions": [{
                    "actionType": "pick", "actionId": "pick-1", "blockingType": "HARD",
                    "actionParameters": [
                        {"key": "stationType", "value": "floor"},
                        {"key": "stationName", "value": "shelf-A"},
                        {"key": "loadId", "value": "SKU-1"}
                    ]
                }]
            },
            {
                "nodeId": "B", "sequenceId": 4, "released": true,
                "nodePosition": {"x": 10.25, "y": -0.5, "mapId": "hall-1"},
                "actions": [{
                    "actionType": "drop", "actionId": "drop-1", "blockingType": "HARD",
                    "actionParameters": [
                        {"key": "stationName", "value": "dock-B"},
                        {"key": "loadId", "value": "SKU-1"}
                    ]
                }]
            }
        ],
        "edges": [
            {"edgeId": "home-A", "sequenceId": 1, "released": true, "startNodeId": "home", "endNodeId": "A", "actions": []},
            {"edgeId": "A-B", "sequenceId": 3, "released": true, "startNodeId": "A", "endNodeId": "B", "actions": []}
        ]
    });
    assert_eq!(json_of(&frame), expected);
}

#[test]
fn a_vehicle_between_nodes_starts_from_a_node_at_its_reported_position() {
    let mut session = session(None);
    session.set_position(Some(DevicePosition {
        x_mm: -1_234,
        y_mm: 5_678,
        theta_mrad: 1_571,
        map_id: "hall-1".to_owned(),
        last_node_id: None,
    }));
    let order = send(&mut session, DeviceCommand::StartJob(pick_and_drop("job-2")));
    assert_eq!(node_ids(&order), owned(&[("start-job-2", 0), ("A", 2), ("B", 4)]));
    assert_eq!(
        order["nodes"][0]["nodePosition"],
        json!({"x": -1.234, "y": 5.678, "mapId": "hall-1"})
    );
    assert_eq!(
        edge_ids(&order),
        edges(&[("start-job-2-A", 1, "start-job-2", "A"), ("A-B", 3, "A", "B")])
    );
    // An empty last node id is no last node either.
    session.set_position(Some(DevicePosition { last_node_id: Some(String::new()), ..at_node("") }));
    let order = send(&mut session, DeviceCommand::StartJob(pick_and_drop("job-3")));
    assert_eq!(order["nodes"][0]["nodeId"], "start-job-3");
}

#[test]
fn a_vehicle_that_reported_no_position_starts_at_the_first_stop() {
    let mut session = session(None);
    let order = send(&mut session, DeviceCommand::StartJob(pick_and_drop("job-1")));
    assert_eq!(node_ids(&order), owned(&[("A", 0), ("B", 2)]));
    assert_eq!(edge_ids(&order), edges(&[("A-B", 1, "A", "B")]));
    assert_eq!(order["nodes"][0]["actions"][0]["actionId"], "pick-1");
}

#[test]
fn consecutive_stops_at_one_node_are_one_node_with_each_stop_s_action() {
    let mut session = session(None);
    session.set_position(Some(at_node("A")));
    let mut job = pick_and_drop("job-1");
    job.stops.insert(
        1,
        stop("A", 1_500, 2_000, Some(action(ActionKind::Pick, "pick-2", "SKU-2", "shelf-A"))),
    );
    let order = send(&mut session, DeviceCommand::StartJob(job));
    // The vehicle stands on A: A is the first node, with both picks and
    // its position now that it is a stop.
    assert_eq!(node_ids(&order), owned(&[("A", 0), ("B", 2)]));
    let actions: Vec<&str> = order["nodes"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|action| action["actionId"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["pick-1", "pick-2"]);
    assert_eq!(order["nodes"][0]["nodePosition"]["x"], 1.5);
}

#[test]
fn an_extension_is_an_order_update_that_repeats_the_last_node_and_continues_the_numbering() {
    let mut session = session(None);
    session.set_position(Some(at_node("home")));
    let first = send(&mut session, DeviceCommand::StartJob(pick_and_drop("job-1")));
    let extension = Job {
        job_id: "job-1".to_owned(),
        update: 1,
        stops: vec![
            stop("C", 20_000, 0, None),
            stop("D", 30_000, 1, Some(action(ActionKind::Charge, "charge-1", "", "charger-D"))),
        ],
    };
    let update = send(&mut session, DeviceCommand::ExtendJob(extension));
    assert_eq!(update["headerId"], 1);
    assert_eq!(update["orderId"], "job-1");
    assert_eq!(update["orderUpdateId"], 1);
    assert_eq!(node_ids(&update), owned(&[("B", 4), ("C", 6), ("D", 8)]));
    assert_eq!(edge_ids(&update), edges(&[("B-C", 5, "B", "C"), ("C-D", 7, "C", "D")]));
    // The stitching node is sent again exactly as before.
    assert_eq!(update["nodes"][0], first["nodes"][2]);
    assert_eq!(update["nodes"][2]["actions"][0]["actionType"], "startCharging");
    assert_eq!(
        update["nodes"][2]["actions"][0]["actionParameters"],
        json!([{"key": "stationName", "value": "charger-D"}])
    );

    let again = Job { job_id: "job-1".to_owned(), update: 2, stops: vec![stop("E", 0, 0, None)] };
    let second = send(&mut session, DeviceCommand::ExtendJob(again));
    assert_eq!(node_ids(&second), owned(&[("D", 8), ("E", 10)]));
    assert_eq!(second["nodes"][0], update["nodes"][2]);
}

#[test]
fn an_extension_of_another_job_an_old_update_or_no_job_is_refused_and_changes_nothing() {
    let mut session = session(None);
    let next = |job_id: &str, update| Job {
        job_id: job_id.to_owned(),
        update,
        stops: vec![stop("C", 0, 0, None)],
    };
    let error = session.encode(&DeviceCommand::ExtendJob(next("job-1", 1))).unwrap_err();
    assert!(
        matches!(&error, DriverError::Unsupported(reason) if reason.contains("no job")),
        "{error}"
    );

    send(&mut session, DeviceCommand::StartJob(pick_and_drop("job-1")));
    send(&mut session, DeviceCommand::ExtendJob(next("job-1", 2)));
    let memory = session.memory().to_vec();
    let other = session.encode(&DeviceCommand::ExtendJob(next("job-9", 3))).unwrap_err();
    assert!(
        matches!(&other, DriverError::Unsupported(reason) if reason.contains("job-1")),
        "{other}"
    );
    for stale in [1, 2] {
        let error = session.encode(&DeviceCommand::ExtendJob(next("job-1", stale))).unwrap_err();
        assert!(matches!(&error, DriverError::Unsupported(reason) if reason.contains("count up")));
    }
    assert_eq!(session.memory(), memory, "a refused command changes nothing");

    send(&mut session, DeviceCommand::CancelJob);
    let cancelled = session.encode(&DeviceCommand::ExtendJob(next("job-1", 3))).unwrap_err();
    assert!(matches!(cancelled, DriverError::Unsupported(_)));
}

#[test]
fn an_extension_that_adds_an_action_to_the_node_already_sent_is_refused() {
    let mut session = session(None);
    send(&mut session, DeviceCommand::StartJob(pick_and_drop("job-1")));
    let same_node = Job {
        job_id: "job-1".to_owned(),
        update: 1,
        stops: vec![stop(
            "B",
            10_250,
            -500,
            Some(action(ActionKind::Pick, "pick-9", "", "dock-B")),
        )],
    };
    assert!(matches!(
        session.encode(&DeviceCommand::ExtendJob(same_node)),
        Err(DriverError::Unsupported(_))
    ));
    // Passing through the end node again without an action is no stop at
    // all; what follows it continues the job.
    let onwards = Job {
        job_id: "job-1".to_owned(),
        update: 1,
        stops: vec![stop("B", 10_250, -500, None), stop("C", 0, 0, None)],
    };
    let update = send(&mut session, DeviceCommand::ExtendJob(onwards));
    assert_eq!(node_ids(&update), owned(&[("B", 2), ("C", 4)]));
}

#[test]
fn jobs_the_driver_cannot_express_are_unsupported_and_change_nothing() {
    let mut session = session(None);
    send(&mut session, DeviceCommand::Pause);
    let memory = session.memory().to_vec();
    let mut updated = pick_and_drop("job-1");
    updated.update = 1;
    let mut empty_node = pick_and_drop("job-1");
    empty_node.stops[0].node.id.clear();
    let mut long_load = pick_and_drop("job-1");
    if let Some(action) = &mut long_load.stops[0].action {
        action.load_id = "x".repeat(ID_BYTES_MAX + 1);
    }
    let mut far = pick_and_drop("job-1");
    far.stops[1].node.x_mm = i64::MIN;
    let many = Job {
        job_id: "job-1".to_owned(),
        update: 0,
        stops: (0..=JOB_STOPS_MAX).map(|index| stop(&format!("n{index}"), 0, 0, None)).collect(),
    };
    let crowded = Job {
        job_id: "job-1".to_owned(),
        update: 0,
        stops: (0..=memory::ACTIONS_PER_NODE_MAX)
            .map(|index| {
                stop("A", 0, 0, Some(action(ActionKind::Pick, &format!("p{index}"), "", "s")))
            })
            .collect(),
    };
    for job in [
        Job { job_id: "job-1".to_owned(), update: 0, stops: Vec::new() },
        Job { job_id: String::new(), ..pick_and_drop("") },
        updated,
        empty_node,
        long_load,
        far,
        many,
        crowded,
    ] {
        let error = session.encode(&DeviceCommand::StartJob(job.clone())).unwrap_err();
        assert!(matches!(error, DriverError::Unsupported(_)), "{job:?}: {error}");
    }
    assert_eq!(session.memory(), memory);
}

#[test]
fn header_ids_count_up_by_one_per_topic_and_per_vehicle() {
    let mut session = session(None);
    let header_of = |value: Value| value["headerId"].as_u64().unwrap();
    assert_eq!(header_of(send(&mut session, DeviceCommand::StartJob(pick_and_drop("j")))), 0);
    assert_eq!(header_of(send(&mut session, DeviceCommand::Pause)), 0);
    assert_eq!(header_of(send(&mut session, DeviceCommand::Resume)), 1);
    let extension = Job { job_id: "j".to_owned(), update: 1, stops: vec![stop("C", 0, 0, None)] };
    assert_eq!(header_of(send(&mut session, DeviceCommand::ExtendJob(extension))), 1);
    assert_eq!(header_of(send(&mut session, DeviceCommand::CancelJob)), 2);
    assert_eq!(header_of(send(&mut session, DeviceCommand::StartJob(pick_and_drop("k")))), 2);

    // Another vehicle has counters of its own.
    let mut other = DriverSession::<Vda5050>::new(DeviceInfo::new("agv-8", "KIT", "0002", "x2"));
    assert_eq!(header_of(send(&mut other, DeviceCommand::Pause)), 0);
}

#[test]
fn instant_actions_carry_the_action_under_both_keys_with_a_unique_id() {
    let mut session = session(None);
    let mut ids = Vec::new();
    for (command, action_type) in [
        (DeviceCommand::Pause, "startPause"),
        (DeviceCommand::Resume, "stopPause"),
        (DeviceCommand::CancelJob, "cancelOrder"),
        (DeviceCommand::Pause, "startPause"),
    ] {
        let frame = only_frame(session.encode(&command).unwrap());
        assert_eq!(frame.topic, "uagv/v2/KIT/0001/instantActions");
        assert_eq!((frame.qos, frame.retain), (0, false));
        let message = json_of(&frame);
        assert_eq!(message["actions"], message["instantActions"]);
        let actions = message["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0]["actionType"], action_type);
        assert_eq!(actions[0]["blockingType"], "HARD");
        assert_eq!(actions[0]["actionParameters"], json!([]));
        ids.push(actions[0]["actionId"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], format!("startPause-0-{NOW_MS}"));
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
}

#[test]
fn an_instant_action_message_has_the_standard_s_shape() {
    let mut session = session(None);
    let message = send(&mut session, DeviceCommand::CancelJob);
    let action = json!({
        "actionType": "cancelOrder",
        "actionId": format!("cancelOrder-0-{NOW_MS}"),
        "blockingType": "HARD",
        "actionParameters": []
    });
    assert_eq!(
        message,
        json!({
            "headerId": 0,
            "timestamp": "2026-11-26T11:22:44.123Z",
            "version": "2.0.0",
            "manufacturer": "KIT",
            "serialNumber": "0001",
            "actions": [action.clone()],
            "instantActions": [action]
        })
    );
}

#[test]
fn action_parameters_come_from_the_vehicle_s_model_then_the_defaults() {
    let config = r#"{
        "interface_name": "fleet",
        "major_version": "v2",
        "default_parameters": {
            "pick": [{"key": "stationType", "value": "floor"}],
            "drop": [{"key": "stationType", "value": "floor"}]
        },
        "models": {
            "x2": {
                "pick": [
                    {"key": "loadType", "value": "EPAL"},
                    {"key": "stationType", "value": "rack"},
                    {"key": "height", "value": 1.2},
                    {"key": "lhd", "value": "LHD1"}
                ]
            }
        }
    }"#;
    let mut session = session(Some(config));
    let mut job = pick_and_drop("job-1");
    if let Some(action) = &mut job.stops[1].action {
        action.load_id.clear();
    }
    let frame = only_frame(session.encode(&DeviceCommand::StartJob(job.clone())).unwrap());
    assert_eq!(frame.topic, "fleet/v2/KIT/0001/order");
    let order = json_of(&frame);
    assert_eq!(
        order["nodes"][0]["actions"][0]["actionParameters"],
        json!([
            {"key": "loadType", "value": "EPAL"},
            {"key": "stationType", "value": "rack"},
            {"key": "height", "value": 1.2},
            {"key": "lhd", "value": "LHD1"},
            {"key": "stationName", "value": "shelf-A"},
            {"key": "loadId", "value": "SKU-1"}
        ])
    );
    // The model lists no drop parameters: the defaults apply; the load is
    // unknown, so no loadId.
    assert_eq!(
        order["nodes"][1]["actions"][0]["actionParameters"],
        json!([{"key": "stationType", "value": "floor"}, {"key": "stationName", "value": "dock-B"}])
    );

    let mut other_model =
        DriverSession::<Vda5050>::new(DeviceInfo::new("agv-9", "KIT", "0009", "x1"));
    let order = send(&mut other_model, DeviceCommand::StartJob(job));
    assert_eq!(
        order["nodes"][0]["actions"][0]["actionParameters"][0],
        json!({"key": "stationType", "value": "floor"})
    );
}

#[test]
fn an_unusable_configuration_is_reported_on_every_command() {
    let mut session = session(Some(r#"{"interface_name": "a/b"}"#));
    assert_eq!(session.namespace(), UNROUTABLE_NAMESPACE);
    assert!(session.subscriptions().is_empty());
    let error = session.encode(&DeviceCommand::Pause).unwrap_err();
    assert!(
        matches!(&error, DriverError::Unsupported(reason) if reason.contains("interface_name"))
    );
}

#[test]
fn a_vehicle_whose_serial_number_is_no_topic_level_cannot_be_commanded_or_heard() {
    stand_in::reset();
    for serial_number in ["", "a/b", "0+1", "#"] {
        let device = DeviceInfo::new("agv-x", "KIT", serial_number, "x2");
        let mut session = DriverSession::<Vda5050>::new(device);
        assert_eq!(session.namespace(), UNROUTABLE_NAMESPACE);
        assert!(session.subscriptions().is_empty());
        let error = session.encode(&DeviceCommand::Pause).unwrap_err();
        assert!(matches!(&error, DriverError::Unsupported(reason) if reason.contains("serial")));
        let topic = format!("uagv/v2/KIT/{serial_number}/state");
        assert!(matches!(session.decode(&topic, b"{}"), Err(DriverError::Malformed(_))));
    }
}

#[test]
fn an_unreadable_memory_is_logged_and_the_vehicle_is_commanded_afresh() {
    let mut session = session(None);
    session.set_memory(vec![9, 9, 9]);
    let order = send(&mut session, DeviceCommand::StartJob(pick_and_drop("job-1")));
    assert_eq!(order["headerId"], 0);
    let lines = stand_in::log_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].level, Level::Warn);
    assert!(lines[0].message.contains("agv-7"), "{}", lines[0].message);
    assert_eq!(memory::Memory::read(session.memory()).unwrap().order_header_id, 1);
}

#[test]
fn the_namespace_and_subscriptions_are_the_vehicle_s_topics() {
    let session = session(None);
    assert_eq!(session.namespace(), "uagv/v2/KIT/0001/");
    assert_eq!(
        session.subscriptions(),
        [
            "uagv/v2/KIT/0001/state",
            "uagv/v2/KIT/0001/visualization",
            "uagv/v2/KIT/0001/connection",
            "uagv/v2/KIT/0001/factsheet",
        ]
    );
}

// ---------------------------------------------------------------- decode

/// A state message as a vehicle driving `job-1` sends it, in the shape of
/// the standard's state.schema, with fields the driver ignores.
const DRIVING_STATE: &str = r#"{
    "headerId": 4711,
    "timestamp": "2026-11-26T11:22:45.01Z",
    "version": "2.0.0",
    "manufacturer": "KIT",
    "serialNumber": "0001",
    "orderId": "job-1",
    "orderUpdateId": 0,
    "zoneSetId": "",
    "lastNodeId": "A",
    "lastNodeSequenceId": 2,
    "driving": true,
    "paused": false,
    "newBaseRequest": false,
    "distanceSinceLastNode": 0.4,
    "operatingMode": "AUTOMATIC",
    "nodeStates": [
        {"nodeId": "B", "sequenceId": 4, "released": true,
         "nodePosition": {"x": 10.25, "y": -0.5, "mapId": "hall-1"}}
    ],
    "edgeStates": [{"edgeId": "A-B", "sequenceId": 3, "released": true}],
    "agvPosition": {"x": 1.9004, "y": 1.9996, "theta": -0.7854, "mapId": "hall-1",
                    "positionInitialized": true, "localizationScore": 0.98},
    "velocity": {"vx": 1.2, "vy": 0.0, "omega": 0.0},
    "loads": [{"loadId": "SKU-1", "loadType": "EPAL"}],
    "actionStates": [
        {"actionId": "pick-1", "actionType": "pick", "actionStatus": "FINISHED"},
        {"actionId": "drop-1", "actionType": "drop", "actionStatus": "WAITING"},
        {"actionId": "startPause-0-1", "actionStatus": "FAILED", "resultDescription": "not paused"}
    ],
    "batteryState": {"batteryCharge": 76.45, "batteryVoltage": 48.1, "charging": false},
    "errors": [
        {"errorType": "lowBattery", "errorLevel": "WARNING",
         "errorReferences": [{"referenceKey": "orderId", "referenceValue": "job-1"}],
         "errorDescription": "battery below 80 %, \"soon\" to charge"}
    ],
    "information": [{"infoType": "debug", "infoLevel": "DEBUG"}],
    "safetyState": {"eStop": "NONE", "fieldViolation": false}
}"#;

/// The same vehicle at B with everything done.
fn finished_state() -> Value {
    let mut state: Value = serde_json::from_str(DRIVING_STATE).unwrap();
    state["lastNodeId"] = json!("B");
    state["lastNodeSequenceId"] = json!(4);
    state["driving"] = json!(false);
    state["nodeStates"] = json!([]);
    state["edgeStates"] = json!([]);
    state["actionStates"][1]["actionStatus"] = json!("FINISHED");
    state
}

fn decode_value(
    session: &mut DriverSession<Vda5050>,
    state: &Value,
) -> Result<Vec<DeviceEvent>, DriverError> {
    session.decode(STATE, &serde_json::to_vec(state).unwrap())
}

#[test]
fn a_state_message_gives_the_events_in_the_host_s_order() {
    let mut session = session(None);
    let events = session.decode(STATE, DRIVING_STATE.as_bytes()).unwrap();
    let job = |action_id: &str, status| {
        DeviceEvent::Action(ActionUpdate {
            job_id: "job-1".to_owned(),
            action_id: action_id.to_owned(),
            status,
        })
    };
    assert_eq!(
        events,
        [
            DeviceEvent::Position(DevicePosition {
                x_mm: 1_900,
                y_mm: 2_000,
                theta_mrad: -785,
                map_id: "hall-1".to_owned(),
                last_node_id: Some("A".to_owned()),
            }),
            DeviceEvent::Battery(Battery { charge_permille: 765, charging: false }),
            DeviceEvent::OperatingMode("AUTOMATIC".to_owned()),
            DeviceEvent::Paused(false),
            DeviceEvent::Driving(true),
            DeviceEvent::NodeReached(NodeReached {
                job_id: "job-1".to_owned(),
                node_id: "A".to_owned(),
            }),
            job("pick-1", ActionStatus::Finished),
            job("drop-1", ActionStatus::Waiting),
            job("startPause-0-1", ActionStatus::Failed),
            DeviceEvent::Errors(vec![DeviceError {
                error_type: "lowBattery".to_owned(),
                level: ErrorLevel::Warning,
                description: "battery below 80 %, \"soon\" to charge".to_owned(),
            }]),
        ]
    );
    assert_eq!(session.position().map(|position| position.x_mm), Some(1_900));
}

#[test]
fn the_job_is_finished_only_when_nothing_is_left_to_drive_or_do_and_the_vehicle_stands() {
    let mut session = session(None);
    let finished = finished_state();
    let events = decode_value(&mut session, &finished).unwrap();
    assert_eq!(events.last(), Some(&DeviceEvent::JobFinished("job-1".to_owned())));

    let mut unfinished = Vec::new();
    let mut driving = finished.clone();
    driving["driving"] = json!(true);
    unfinished.push(driving);
    let mut node_left = finished.clone();
    node_left["nodeStates"] = json!([{"nodeId": "C", "sequenceId": 6, "released": true}]);
    unfinished.push(node_left);
    let mut edge_left = finished.clone();
    edge_left["edgeStates"] = json!([{"edgeId": "B-C", "sequenceId": 5, "released": true}]);
    unfinished.push(edge_left);
    for status in ["WAITING", "INITIALIZING", "RUNNING", "PAUSED"] {
        let mut acting = finished.clone();
        acting["actionStates"][1]["actionStatus"] = json!(status);
        unfinished.push(acting);
    }
    let mut no_order = finished.clone();
    no_order["orderId"] = json!("");
    unfinished.push(no_order);
    for state in unfinished {
        let events = decode_value(&mut session, &state).unwrap();
        assert!(
            !events.iter().any(|event| matches!(event, DeviceEvent::JobFinished(_))),
            "{state}"
        );
    }
    // Failed actions end a job as well as finished ones.
    let mut failed = finished;
    failed["actionStates"][1]["actionStatus"] = json!("FAILED");
    let events = decode_value(&mut session, &failed).unwrap();
    assert_eq!(events.last(), Some(&DeviceEvent::JobFinished("job-1".to_owned())));
}

#[test]
fn initialising_and_paused_actions_are_running_for_the_host() {
    let mut session = session(None);
    let mut state: Value = serde_json::from_str(DRIVING_STATE).unwrap();
    state["actionStates"] = json!([
        {"actionId": "a", "actionStatus": "INITIALIZING"},
        {"actionId": "b", "actionStatus": "PAUSED"},
        {"actionId": "c", "actionStatus": "RUNNING"}
    ]);
    let statuses: Vec<ActionStatus> = decode_value(&mut session, &state)
        .unwrap()
        .into_iter()
        .filter_map(|event| match event {
            DeviceEvent::Action(update) => Some(update.status),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, [ActionStatus::Running; 3]);
}

#[test]
fn an_idle_vehicle_without_position_pause_flag_or_order_gives_only_what_it_said() {
    let mut session = session(None);
    let idle = json!({
        "headerId": 1, "timestamp": "2026-11-26T11:22:45.01Z", "version": "2.0.0",
        "manufacturer": "KIT", "serialNumber": "0001",
        "orderId": "", "orderUpdateId": 0, "lastNodeId": "", "lastNodeSequenceId": 0,
        "driving": false, "operatingMode": "MANUAL",
        "nodeStates": [], "edgeStates": [], "actionStates": [],
        "batteryState": {"batteryCharge": 100.4, "charging": true},
        "errors": [], "safetyState": {"eStop": "NONE", "fieldViolation": false}
    });
    assert_eq!(
        decode_value(&mut session, &idle).unwrap(),
        [
            DeviceEvent::Battery(Battery { charge_permille: 1000, charging: true }),
            DeviceEvent::OperatingMode("MANUAL".to_owned()),
            DeviceEvent::Driving(false),
            DeviceEvent::Errors(Vec::new()),
        ]
    );
}

#[test]
fn an_uninitialised_position_is_not_reported() {
    let mut session = session(None);
    let mut state: Value = serde_json::from_str(DRIVING_STATE).unwrap();
    state["agvPosition"]["positionInitialized"] = json!(false);
    let events = decode_value(&mut session, &state).unwrap();
    assert!(!events.iter().any(|event| matches!(event, DeviceEvent::Position(_))));
}

#[test]
fn coordinates_are_rounded_to_the_millimetre_and_headings_brought_into_one_half_turn() {
    let mut session = session(None);
    let position_of = |session: &mut DriverSession<Vda5050>, x: f64, theta: f64| {
        let visualization = json!({
            "agvPosition": {"x": x, "y": -0.0006, "theta": theta, "mapId": "m", "positionInitialized": true}
        });
        let events = session
            .decode("uagv/v2/KIT/0001/visualization", &serde_json::to_vec(&visualization).unwrap())
            .unwrap();
        match events.as_slice() {
            [DeviceEvent::Position(position)] => {
                (position.x_mm, position.y_mm, position.theta_mrad)
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(position_of(&mut session, 12.3456, 3.0), (12_346, -1, 3_000));
    // A heading in [0, 2π) comes back within [-π, π].
    assert_eq!(position_of(&mut session, -0.0004, 4.0), (0, -1, -2_283));
    assert_eq!(position_of(&mut session, 1e8, -3.5), (100_000_000_000, -1, 2_783));
}

#[test]
fn battery_charge_is_rounded_to_permille_and_clamped() {
    let mut session = session(None);
    for (charge, permille) in [(55.56, 556), (0.04, 0), (-1.0, 0), (100.0, 1000), (250.0, 1000)] {
        let mut state = finished_state();
        state["batteryState"]["batteryCharge"] = json!(charge);
        let events = decode_value(&mut session, &state).unwrap();
        assert!(
            events.contains(&DeviceEvent::Battery(Battery {
                charge_permille: permille,
                charging: false
            })),
            "{charge}: {events:?}"
        );
    }
}

#[test]
fn visualization_gives_the_position_and_its_header_is_optional_but_checked() {
    let mut session = session(None);
    let topic = "uagv/v2/KIT/0001/visualization";
    let bare = br#"{"agvPosition": {"x": 1, "y": 2, "theta": 0, "mapId": "m", "positionInitialized": true}}"#;
    let events = session.decode(topic, bare).unwrap();
    assert_eq!(
        events,
        [DeviceEvent::Position(DevicePosition {
            x_mm: 1_000,
            y_mm: 2_000,
            theta_mrad: 0,
            map_id: "m".to_owned(),
            last_node_id: None,
        })]
    );
    assert_eq!(session.decode(topic, br#"{"headerId": 3}"#).unwrap(), []);
    let other =
        br#"{"serialNumber": "0002", "agvPosition": {"x": 1, "y": 2, "theta": 0, "mapId": "m"}}"#;
    assert!(matches!(session.decode(topic, other), Err(DriverError::Malformed(_))));
}

#[test]
fn connection_messages_give_the_link_state() {
    let mut session = session(None);
    let topic = "uagv/v2/KIT/0001/connection";
    for (state, expected) in [
        ("ONLINE", ConnectionState::Online),
        ("OFFLINE", ConnectionState::Offline),
        ("CONNECTIONBROKEN", ConnectionState::ConnectionBroken),
    ] {
        let message = json!({
            "headerId": 0, "timestamp": "2026-11-26T11:22:45.01Z", "version": "2.0.0",
            "manufacturer": "KIT", "serialNumber": "0001", "connectionState": state
        });
        let events = session.decode(topic, &serde_json::to_vec(&message).unwrap()).unwrap();
        assert_eq!(events, [DeviceEvent::Connection(expected)]);
    }
    let unknown =
        br#"{"manufacturer": "KIT", "serialNumber": "0001", "connectionState": "DISCONNECTED"}"#;
    assert!(matches!(session.decode(topic, unknown), Err(DriverError::Malformed(_))));
}

#[test]
fn a_factsheet_is_accepted_and_gives_no_events() {
    let mut session = session(None);
    let topic = "uagv/v2/KIT/0001/factsheet";
    let factsheet = br#"{
        "headerId": 0, "timestamp": "2026-11-26T11:22:45.01Z", "version": "2.0.0",
        "manufacturer": "KIT", "serialNumber": "0001",
        "typeSpecification": {"seriesName": "x2", "agvKinematic": "DIFF", "agvClass": "FORKLIFT",
                              "maxLoadMass": 1000, "localizationTypes": ["NATURAL"],
                              "navigationTypes": ["AUTONOMOUS"]},
        "physicalParameters": {}, "protocolLimits": {}, "protocolFeatures": {},
        "agvGeometry": {}, "loadSpecification": {}
    }"#;
    assert_eq!(session.decode(topic, factsheet).unwrap(), []);
    assert!(matches!(session.decode(topic, b"[1, 2]"), Err(DriverError::Malformed(_))));
    assert!(matches!(
        session.decode(topic, br#"{"manufacturer": "ACME"}"#),
        Err(DriverError::Malformed(_))
    ));
}

#[test]
fn decoding_hands_back_the_memory_unchanged() {
    let mut session = session(None);
    send(&mut session, DeviceCommand::StartJob(pick_and_drop("job-1")));
    let memory = session.memory().to_vec();
    session.decode(STATE, DRIVING_STATE.as_bytes()).unwrap();
    assert_eq!(session.memory(), memory);
}

#[test]
fn malformed_messages_are_refused_with_a_reason() {
    let mut session = session(None);
    let state: Value = serde_json::from_str(DRIVING_STATE).unwrap();
    let with = |pointer: &str, value: Value| {
        let mut changed = state.clone();
        *changed.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer}")) = value;
        serde_json::to_vec(&changed).unwrap()
    };
    let without = |field: &str| {
        let mut changed = state.clone();
        changed.as_object_mut().unwrap().remove(field);
        serde_json::to_vec(&changed).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"state: fine".to_vec()),
        ("empty", Vec::new()),
        ("an array", b"[]".to_vec()),
        ("driving as text", with("/driving", json!("yes"))),
        ("orderId as a number", with("/orderId", json!(7))),
        ("nodeStates as an object", with("/nodeStates", json!({}))),
        ("an unknown action status", with("/actionStates/0/actionStatus", json!("DONE"))),
        ("an unknown error level", with("/errors/0/errorLevel", json!("PANIC"))),
        ("x beyond the range", with("/agvPosition/x", json!(1.0e9))),
        ("theta beyond a turn", with("/agvPosition/theta", json!(7.0))),
        ("a huge number", br#"{"driving": 1e400}"#.to_vec()),
        ("a too long lastNodeId", with("/lastNodeId", json!("n".repeat(ID_BYTES_MAX + 1)))),
        ("another serial number", with("/serialNumber", json!("0002"))),
        ("another manufacturer", with("/manufacturer", json!("ACME"))),
        ("no batteryState", without("batteryState")),
        ("no actionStates", without("actionStates")),
        ("no serialNumber", without("serialNumber")),
        ("no driving", without("driving")),
    ];
    let memory = session.memory().to_vec();
    for (what, payload) in cases {
        match session.decode(STATE, &payload) {
            Err(DriverError::Malformed(reason)) => assert!(!reason.is_empty(), "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!(session.memory(), memory);
    assert_eq!(session.position(), None);
}

#[test]
fn payloads_over_the_limit_are_refused_before_parsing() {
    let mut session = session(None);
    let mut huge = DRIVING_STATE.as_bytes().to_vec();
    huge.resize(PAYLOAD_BYTES_MAX + 1, b' ');
    let error = session.decode(STATE, &huge).unwrap_err();
    assert!(
        matches!(&error, DriverError::Malformed(reason) if reason.contains("bytes")),
        "{error}"
    );
}

#[test]
fn frames_on_topics_the_driver_does_not_read_are_malformed() {
    let mut session = session(None);
    for topic in ["uagv/v2/KIT/0001/order", "uagv/v2/KIT/0002/state", "uagv/v2/KIT/0001/unknown"] {
        assert!(
            matches!(
                session.decode(topic, DRIVING_STATE.as_bytes()),
                Err(DriverError::Malformed(_))
            ),
            "{topic}"
        );
    }
}

#[test]
fn action_updates_beyond_the_limit_are_left_out_but_still_hold_the_job_open() {
    let mut session = session(None);
    let mut state = finished_state();
    let mut actions: Vec<Value> = (0..ACTION_UPDATES_MAX + 10)
        .map(|index| json!({"actionId": format!("a{index}"), "actionStatus": "FINISHED"}))
        .collect();
    let events = {
        state["actionStates"] = Value::Array(actions.clone());
        decode_value(&mut session, &state).unwrap()
    };
    let updates = events.iter().filter(|event| matches!(event, DeviceEvent::Action(_))).count();
    assert_eq!(updates, ACTION_UPDATES_MAX);
    assert!(events.len() <= decode::EVENTS_MAX, "{} events", events.len());
    assert_eq!(events.last(), Some(&DeviceEvent::JobFinished("job-1".to_owned())));

    actions.last_mut().unwrap()["actionStatus"] = json!("RUNNING");
    state["actionStates"] = Value::Array(actions);
    let events = decode_value(&mut session, &state).unwrap();
    assert!(!events.iter().any(|event| matches!(event, DeviceEvent::JobFinished(_))));
}

#[test]
fn long_error_descriptions_are_cut_on_a_character_boundary() {
    let mut session = session(None);
    let mut state = finished_state();
    state["errors"][0]["errorDescription"] = json!("é".repeat(decode::DESCRIPTION_BYTES_MAX));
    let events = decode_value(&mut session, &state).unwrap();
    let description = events
        .iter()
        .find_map(|event| match event {
            DeviceEvent::Errors(errors) => Some(errors[0].description.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(description.len(), decode::DESCRIPTION_BYTES_MAX);
    assert!(description.chars().all(|c| c == 'é'));
}

// ---------------------------------------------------------------- round trip

#[test]
fn a_job_driven_to_its_end_reports_what_it_was_sent() {
    // Encode a job, play the vehicle from its order, decode what the
    // vehicle reports: the ids the host gave come back unchanged.
    let mut session = session(None);
    session.set_position(Some(at_node("home")));
    let order = send(&mut session, DeviceCommand::StartJob(pick_and_drop("job-1")));
    let nodes = order["nodes"].as_array().unwrap();
    let last = nodes.last().unwrap();
    let action_states: Vec<Value> = nodes
        .iter()
        .flat_map(|node| node["actions"].as_array().unwrap().clone())
        .map(|action| json!({"actionId": action["actionId"], "actionType": action["actionType"], "actionStatus": "FINISHED"}))
        .collect();
    let position = &last["nodePosition"];
    let state = json!({
        "headerId": 9, "timestamp": "2026-11-26T11:23:00.00Z", "version": "2.0.0",
        "manufacturer": order["manufacturer"], "serialNumber": order["serialNumber"],
        "orderId": order["orderId"], "orderUpdateId": order["orderUpdateId"],
        "lastNodeId": last["nodeId"], "lastNodeSequenceId": last["sequenceId"],
        "driving": false, "paused": false, "operatingMode": "AUTOMATIC",
        "nodeStates": [], "edgeStates": [],
        "agvPosition": {"x": position["x"], "y": position["y"], "theta": 0.0,
                        "mapId": position["mapId"], "positionInitialized": true},
        "actionStates": action_states,
        "batteryState": {"batteryCharge": 50.0, "charging": false},
        "errors": [], "safetyState": {"eStop": "NONE", "fieldViolation": false}
    });
    let events = decode_value(&mut session, &state).unwrap();
    assert_eq!(
        events[0],
        DeviceEvent::Position(DevicePosition {
            x_mm: 10_250,
            y_mm: -500,
            theta_mrad: 0,
            map_id: "hall-1".to_owned(),
            last_node_id: Some("B".to_owned()),
        })
    );
    let finished: Vec<&str> = events
        .iter()
        .filter_map(|event| match event {
            DeviceEvent::Action(update) if update.status == ActionStatus::Finished => {
                Some(update.action_id.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(finished, ["pick-1", "drop-1"]);
    assert_eq!(events.last(), Some(&DeviceEvent::JobFinished("job-1".to_owned())));
}
