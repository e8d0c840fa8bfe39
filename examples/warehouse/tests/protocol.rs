//! A simulated vehicle speaks VDA 5050 2.0.0 to a master control through a
//! real MQTT broker: connection, factsheet, orders, updates, refusals,
//! instant actions and bad input.

mod common;

use common::{
    MANUFACTURER, MAP_ID, MasterControl, action, action_state, action_status, errors_of_type,
    load_action, order, order_complete, refers_to, setup, stop, stop_with, topic, vehicle,
};
use rumqttc::QoS;
use serde_json::{Value, json};

/// Whether a header has the fields and formats of VDA 5050 §6.4.
fn has_header(message: &Value, serial: &str) -> bool {
    let timestamp = message["timestamp"].as_str().unwrap_or_default().as_bytes();
    let timestamp_ok = timestamp.len() == 24
        && timestamp[4] == b'-'
        && timestamp[10] == b'T'
        && timestamp[19] == b'.'
        && timestamp[23] == b'Z';
    message["headerId"].is_u64()
        && timestamp_ok
        && message["version"] == "2.0.0"
        && message["manufacturer"] == MANUFACTURER
        && message["serialNumber"] == serial
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vehicle_announces_itself_online_and_publishes_its_factsheet_and_state() {
    let (mut master, fleet, port) = setup(1, vec![vehicle("agv-001", "n0", 1000, 2000)]).await;

    let online = master
        .wait_for("ONLINE on the connection topic", |received| {
            received.topic == topic("agv-001", "connection")
                && received.payload["connectionState"] == "ONLINE"
        })
        .await;
    assert!(has_header(&online.payload, "agv-001"), "{}", online.payload);
    assert_eq!(online.qos, QoS::AtLeastOnce, "connection messages travel with QoS 1");

    let factsheet = master
        .wait_for("the factsheet", |received| received.topic == topic("agv-001", "factsheet"))
        .await
        .payload;
    assert!(has_header(&factsheet, "agv-001"), "{factsheet}");
    assert_eq!(factsheet["typeSpecification"]["seriesName"], "SimCarrier");
    assert_eq!(factsheet["physicalParameters"]["speedMax"], 1.5);
    for required in ["protocolLimits", "protocolFeatures", "agvGeometry", "loadSpecification"] {
        assert!(factsheet[required].is_object(), "factsheet lacks {required}");
    }
    assert!(factsheet["protocolLimits"]["timing"]["minOrderInterval"].is_number());
    let action_types: Vec<&str> = factsheet["protocolFeatures"]["agvActions"]
        .as_array()
        .expect("agvActions")
        .iter()
        .filter_map(|entry| entry["actionType"].as_str())
        .collect();
    for supported in ["pick", "drop", "startCharging", "startPause", "stopPause", "cancelOrder"] {
        assert!(action_types.contains(&supported), "factsheet lacks {supported}");
    }

    let state = master.wait_for_state("agv-001", "a first state", |_| true).await;
    assert!(has_header(&state, "agv-001"), "{state}");
    assert_eq!(state["orderId"], "");
    assert_eq!(state["orderUpdateId"], 0);
    assert_eq!(state["lastNodeId"], "n0");
    assert_eq!(state["nodeStates"], json!([]));
    assert_eq!(state["edgeStates"], json!([]));
    assert_eq!(state["driving"], false);
    assert_eq!(state["operatingMode"], "AUTOMATIC");
    assert_eq!(state["safetyState"], json!({ "eStop": "NONE", "fieldViolation": false }));
    assert_eq!(state["agvPosition"]["x"], 1.0);
    assert_eq!(state["agvPosition"]["y"], 2.0);
    assert_eq!(state["agvPosition"]["mapId"], MAP_ID);
    assert_eq!(state["agvPosition"]["positionInitialized"], true);
    assert_eq!(state["loads"], json!([]));

    // The broker keeps ONLINE and the factsheet for master controls that
    // subscribe later (§6.14, §6.16: retained).
    let mut latecomer = MasterControl::connect(port, &topic("agv-001", "+")).await;
    let (mut connection, mut factsheet) = (None, None);
    latecomer
        .wait_for("the retained ONLINE and factsheet", |received| {
            if received.topic == topic("agv-001", "connection") {
                connection = Some(received.clone());
            } else if received.topic == topic("agv-001", "factsheet") {
                factsheet = Some(received.clone());
            }
            connection.is_some() && factsheet.is_some()
        })
        .await;
    let connection = connection.expect("the connection message");
    assert!(connection.retain, "ONLINE is retained");
    assert_eq!(connection.payload["connectionState"], "ONLINE");
    assert!(factsheet.is_some_and(|factsheet| factsheet.retain), "the factsheet is retained");

    fleet.shutdown().await;
    let offline = master
        .wait_for("OFFLINE after a graceful shutdown", |received| {
            received.topic == topic("agv-001", "connection")
                && received.payload["connectionState"] != "ONLINE"
        })
        .await;
    assert_eq!(offline.payload["connectionState"], "OFFLINE");
    assert!(
        offline.payload["headerId"].as_u64() > online.payload["headerId"].as_u64(),
        "headerIds count up per topic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_through_two_nodes_with_pick_and_drop_completes_with_the_right_loads() {
    let (mut master, fleet, _port) = setup(20, vec![vehicle("agv-001", "n0", 0, 0)]).await;
    let route = vec![
        stop("n0", 0.0, 0.0),
        stop_with("n1", 3.0, 0.0, vec![load_action("pick", "pick-1", "tote-7")]),
        stop_with("n2", 3.0, 3.0, vec![load_action("drop", "drop-1", "tote-7")]),
    ];
    master.send_order("agv-001", order("order-1", 0, 0, route, 3)).await;

    let states = master
        .states_until("agv-001", "the order's completion", |state| order_complete(state, "order-1"))
        .await;
    let accepted = states
        .iter()
        .find(|state| state["orderId"] == "order-1")
        .expect("a state shows the accepted order");
    // The vehicle stands on the first node, which counts as traversed at once.
    assert_eq!(accepted["lastNodeId"], "n0");
    assert_eq!(accepted["lastNodeSequenceId"], 0);
    let ids = |state: &Value, list: &str, key: &str| -> Vec<String> {
        state[list]
            .as_array()
            .map(|items| {
                items.iter().filter_map(|item| item[key].as_str().map(str::to_owned)).collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(ids(accepted, "nodeStates", "nodeId"), ["n1", "n2"]);
    assert_eq!(ids(accepted, "edgeStates", "edgeId"), ["n0-n1", "n1-n2"]);
    assert_eq!(action_status(accepted, "pick-1"), "WAITING");
    assert_eq!(action_status(accepted, "drop-1"), "WAITING");

    let driving =
        states.iter().find(|state| state["driving"] == true).expect("a state while driving");
    assert!(driving["velocity"]["vx"].as_f64().is_some_and(|vx| vx > 0.0), "{driving}");

    let at_n1 = states
        .iter()
        .find(|state| state["lastNodeId"] == "n1" && action_status(state, "pick-1") == "RUNNING")
        .expect("a state shows the pick running at n1");
    assert_eq!(at_n1["lastNodeSequenceId"], 2);
    assert_eq!(ids(at_n1, "nodeStates", "nodeId"), ["n2"]);
    assert_eq!(ids(at_n1, "edgeStates", "edgeId"), ["n1-n2"]);
    assert_eq!(at_n1["driving"], false, "a HARD pick keeps the vehicle still");

    let loaded = states
        .iter()
        .find(|state| action_status(state, "pick-1") == "FINISHED")
        .expect("a state shows the pick finished");
    assert_eq!(loaded["loads"].as_array().map(Vec::len), Some(1));
    assert_eq!(loaded["loads"][0]["loadId"], "tote-7");

    let done = states.last().expect("the final state");
    assert_eq!(done["lastNodeId"], "n2");
    assert_eq!(done["lastNodeSequenceId"], 4);
    assert_eq!(action_status(done, "drop-1"), "FINISHED");
    assert_eq!(done["loads"], json!([]));
    assert_eq!(done["agvPosition"]["x"], 3.0);
    assert_eq!(done["agvPosition"]["y"], 3.0);
    assert_eq!(done["orderUpdateId"], 0, "the order stays in the state once complete");
    assert!(done["batteryState"]["batteryCharge"].as_f64().is_some_and(|charge| charge < 100.0));

    let status = fleet.status();
    assert_eq!(status[0].orders_completed, 1);
    assert_eq!(status[0].loads, 0);
    assert_eq!(status[0].last_node_id, "n2");
    assert_eq!((status[0].x_mm, status[0].y_mm), (3000, 3000));
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_update_extends_the_order_from_the_last_node_of_its_base() {
    let (mut master, fleet, _port) = setup(20, vec![vehicle("agv-001", "n0", 0, 0)]).await;
    let first = vec![stop("n0", 0.0, 0.0), stop("n1", 2.0, 0.0), stop("n2", 4.0, 0.0)];
    master.send_order("agv-001", order("order-2", 0, 0, first, 2)).await;

    let waiting = master
        .wait_for_state("agv-001", "the vehicle waiting at the end of its base", |state| {
            state["lastNodeId"] == "n1" && state["driving"] == false
        })
        .await;
    assert_eq!(waiting["nodeStates"][0]["nodeId"], "n2");
    assert_eq!(waiting["nodeStates"][0]["released"], false, "n2 is horizon");
    assert_eq!(waiting["edgeStates"][0]["released"], false);
    assert!(!order_complete(&waiting, "order-2"), "a horizon keeps the order open");

    let update = vec![stop("n1", 2.0, 0.0), stop("n2", 4.0, 0.0), stop("n3", 4.0, 2.0)];
    master.send_order("agv-001", order("order-2", 1, 2, update, 3)).await;
    let done = master
        .wait_for_state("agv-001", "the extended order's completion", |state| {
            order_complete(state, "order-2") && state["lastNodeId"] == "n3"
        })
        .await;
    assert_eq!(done["orderUpdateId"], 1);
    assert_eq!(done["lastNodeSequenceId"], 6);
    assert_eq!(done["errors"], json!([]));

    // The same update again is a resend and is ignored; an older one is refused.
    let resend = vec![stop("n1", 2.0, 0.0), stop("n2", 4.0, 0.0), stop("n3", 4.0, 2.0)];
    master.send_order("agv-001", order("order-2", 1, 2, resend, 3)).await;
    let older = vec![stop("n3", 4.0, 2.0), stop("n4", 6.0, 2.0)];
    master.send_order("agv-001", order("order-2", 0, 6, older, 2)).await;
    let refused = master
        .wait_for_state("agv-001", "an orderUpdateError", |state| {
            !errors_of_type(state, "orderUpdateError").is_empty()
        })
        .await;
    assert_eq!(refused["errors"].as_array().map(Vec::len), Some(1), "the resend caused no error");
    assert_eq!(refused["orderUpdateId"], 1);
    assert_eq!(refused["lastNodeId"], "n3");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_that_does_not_start_where_the_vehicle_stands_is_refused() {
    let (mut master, fleet, _port) = setup(10, vec![vehicle("agv-001", "n0", 0, 0)]).await;
    let elsewhere = vec![stop("n5", 10.0, 10.0), stop("n6", 12.0, 10.0)];
    master.send_order("agv-001", order("order-3", 0, 0, elsewhere, 2)).await;

    let refused = master
        .wait_for_state("agv-001", "a noRouteError", |state| {
            !errors_of_type(state, "noRouteError").is_empty()
        })
        .await;
    let error = errors_of_type(&refused, "noRouteError")[0];
    assert_eq!(error["errorLevel"], "WARNING");
    assert!(refers_to(error, "orderId", "order-3"), "{error}");
    assert!(refers_to(error, "nodeId", "n5"), "{error}");
    assert_eq!(refused["orderId"], "", "the refused order is not taken over");
    assert_eq!(refused["nodeStates"], json!([]));
    assert_eq!(refused["driving"], false);

    // A good order is taken over and clears the warning.
    let long = vec![stop("n0", 0.0, 0.0), stop("n1", 60.0, 0.0)];
    master.send_order("agv-001", order("order-4", 0, 0, long, 2)).await;
    let accepted = master
        .wait_for_state("agv-001", "order-4 accepted", |state| state["orderId"] == "order-4")
        .await;
    assert_eq!(accepted["errors"], json!([]));

    // A new order while order-4 is under way is refused (VDA 5050 figure 8).
    let other = vec![stop("n0", 0.0, 0.0), stop("n9", 0.0, 5.0)];
    master.send_order("agv-001", order("order-5", 0, 0, other, 2)).await;
    let busy = master
        .wait_for_state("agv-001", "order-5 refused", |state| {
            errors_of_type(state, "orderUpdateError")
                .iter()
                .any(|e| refers_to(e, "orderId", "order-5"))
        })
        .await;
    assert_eq!(busy["orderId"], "order-4");
    assert_eq!(busy["nodeStates"][0]["nodeId"], "n1");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_pause_freezes_the_vehicle_and_stop_pause_resumes_it() {
    let (mut master, fleet, _port) = setup(10, vec![vehicle("agv-001", "n0", 0, 0)]).await;
    let long = vec![stop("n0", 0.0, 0.0), stop("n1", 30.0, 0.0)];
    master.send_order("agv-001", order("order-6", 0, 0, long, 2)).await;
    master.wait_for_state("agv-001", "the vehicle driving", |state| state["driving"] == true).await;

    master.send_instant_actions("agv-001", vec![action("startPause", "pause-1", "HARD")]).await;
    let paused = master
        .wait_for_state("agv-001", "the vehicle paused", |state| state["paused"] == true)
        .await;
    assert_eq!(paused["driving"], false);
    assert_eq!(action_status(&paused, "pause-1"), "FINISHED");
    let frozen_x = paused["agvPosition"]["x"].as_f64().expect("x");
    assert!(frozen_x > 0.0 && frozen_x < 30.0, "paused between the nodes at {frozen_x}");
    let header_id = paused["headerId"].as_u64().expect("headerId");

    // The periodic states that follow show the vehicle where it stopped.
    for _ in 0..3 {
        let later = master
            .wait_for_state("agv-001", "a later state while paused", |state| {
                state["headerId"].as_u64() > Some(header_id)
            })
            .await;
        assert_eq!(later["agvPosition"]["x"].as_f64(), Some(frozen_x));
        assert_eq!(later["driving"], false);
        assert_eq!(later["nodeStates"][0]["nodeId"], "n1", "the order is kept");
    }

    master.send_instant_actions("agv-001", vec![action("stopPause", "resume-1", "HARD")]).await;
    let resumed = master
        .wait_for_state("agv-001", "the vehicle driving again", |state| {
            state["paused"] == false && state["driving"] == true
        })
        .await;
    assert_eq!(action_status(&resumed, "resume-1"), "FINISHED");
    master
        .wait_for_state("agv-001", "the order's completion", |state| {
            order_complete(state, "order-6")
        })
        .await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_actions_under_the_version_1_1_key_are_executed() {
    let (mut master, fleet, _port) = setup(10, vec![vehicle("agv-001", "n0", 0, 0)]).await;
    master
        .send_instant_actions_under(
            "agv-001",
            "instantActions",
            vec![action("startPause", "pause-11", "HARD")],
        )
        .await;
    let paused = master
        .wait_for_state("agv-001", "paused by a 1.1 message", |state| state["paused"] == true)
        .await;
    assert_eq!(action_status(&paused, "pause-11"), "FINISHED");

    master
        .send_instant_actions_under(
            "agv-001",
            "instantActions",
            vec![action("stopPause", "resume-11", "HARD")],
        )
        .await;
    let resumed = master
        .wait_for_state("agv-001", "resumed by a 1.1 message", |state| {
            action_status(state, "resume-11") == "FINISHED"
        })
        .await;
    assert_eq!(resumed["paused"], false);
    assert_eq!(resumed["errors"], json!([]));
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_order_stops_the_vehicle_drops_the_route_and_fails_unfinished_actions() {
    let (mut master, fleet, _port) = setup(10, vec![vehicle("agv-001", "n0", 0, 0)]).await;
    let long = vec![
        stop("n0", 0.0, 0.0),
        stop_with("n1", 30.0, 0.0, vec![load_action("pick", "pick-9", "tote-9")]),
    ];
    master.send_order("agv-001", order("order-7", 0, 0, long, 2)).await;
    master.wait_for_state("agv-001", "the vehicle driving", |state| state["driving"] == true).await;

    master.send_instant_actions("agv-001", vec![action("cancelOrder", "cancel-1", "HARD")]).await;
    let cancelled = master
        .wait_for_state("agv-001", "the order cancelled", |state| {
            action_status(state, "cancel-1") == "FINISHED"
        })
        .await;
    assert_eq!(cancelled["driving"], false);
    assert_eq!(cancelled["nodeStates"], json!([]));
    assert_eq!(cancelled["edgeStates"], json!([]));
    assert_eq!(action_status(&cancelled, "pick-9"), "FAILED");
    assert_eq!(cancelled["orderId"], "order-7", "orderId is kept after a cancellation");
    assert_eq!(cancelled["lastNodeId"], "n0");
    let stopped_x = cancelled["agvPosition"]["x"].as_f64().expect("x");
    assert!(stopped_x > 0.0 && stopped_x < 30.0, "stopped between the nodes at {stopped_x}");

    // Nothing left to cancel: the second cancelOrder fails with a warning.
    master.send_instant_actions("agv-001", vec![action("cancelOrder", "cancel-2", "HARD")]).await;
    let nothing = master
        .wait_for_state("agv-001", "noOrderToCancel", |state| {
            action_status(state, "cancel-2") == "FAILED"
        })
        .await;
    let warning = errors_of_type(&nothing, "noOrderToCancel");
    assert!(refers_to(warning[0], "actionId", "cancel-2"), "{nothing}");

    // §6.6.3.1: a new order may start at a temporary node where the vehicle stands.
    let mut restart =
        order("order-8", 0, 0, vec![stop("here", stopped_x, 0.0), stop("n1", 30.0, 0.0)], 2);
    restart["nodes"][0]["nodePosition"]["allowedDeviationXY"] = json!(0.5);
    master.send_order("agv-001", restart).await;
    master
        .wait_for_state("agv-001", "order-8 complete", |state| order_complete(state, "order-8"))
        .await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_are_reported_and_the_vehicle_keeps_working() {
    let (mut master, fleet, _port) = setup(20, vec![vehicle("agv-001", "n0", 0, 0)]).await;
    master.publish_raw(&topic("agv-001", "order"), "this is not json").await;
    let reported = master
        .wait_for_state("agv-001", "a validationError", |state| {
            !errors_of_type(state, "validationError").is_empty()
        })
        .await;
    assert_eq!(errors_of_type(&reported, "validationError")[0]["errorLevel"], "WARNING");

    let wrong_types = json!({
        "headerId": "one", "timestamp": 5, "version": "2.0.0", "manufacturer": MANUFACTURER,
        "serialNumber": "agv-001", "orderId": 7, "orderUpdateId": -1, "nodes": {}, "edges": null,
    });
    master.publish_raw(&topic("agv-001", "order"), wrong_types.to_string()).await;
    master.publish_raw(&topic("agv-001", "instantActions"), vec![0xff, 0x00, 0x7b]).await;
    let mut bad_sequence =
        order("order-9", 0, 0, vec![stop("n0", 0.0, 0.0), stop("n1", 2.0, 0.0)], 2);
    bad_sequence["edges"][0]["sequenceId"] = json!(2);
    master.send_order("agv-001", bad_sequence).await;
    let flooded = master
        .wait_for_state("agv-001", "four validationErrors", |state| {
            errors_of_type(state, "validationError").len() == 4
        })
        .await;
    assert_eq!(flooded["orderId"], "");

    // An unknown instant action fails with a warning; the vehicle goes on.
    master.send_instant_actions("agv-001", vec![action("doABarrelRoll", "roll-1", "NONE")]).await;
    let unknown = master
        .wait_for_state("agv-001", "the unknown action failed", |state| {
            action_status(state, "roll-1") == "FAILED"
        })
        .await;
    let roll = action_state(&unknown, "roll-1").expect("roll-1");
    assert!(roll["resultDescription"].as_str().is_some_and(|text| !text.is_empty()));
    assert!(!errors_of_type(&unknown, "instantActionError").is_empty());

    let good = vec![stop("n0", 0.0, 0.0), stop("n1", 2.0, 0.0)];
    master.send_order("agv-001", order("order-10", 0, 0, good, 2)).await;
    let done = master
        .wait_for_state("agv-001", "order-10 complete", |state| order_complete(state, "order-10"))
        .await;
    assert_eq!(done["errors"], json!([]), "accepting an order clears the warnings");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_with_actions_the_vehicle_cannot_perform_is_refused_with_an_order_error() {
    let (mut master, fleet, _port) = setup(20, vec![vehicle("agv-001", "n0", 0, 0)]).await;
    let route = vec![
        stop("n0", 0.0, 0.0),
        stop_with("n1", 2.0, 0.0, vec![action("weldSeam", "weld-1", "HARD")]),
    ];
    master.send_order("agv-001", order("order-11", 0, 0, route, 2)).await;
    let refused = master
        .wait_for_state("agv-001", "an orderError", |state| {
            !errors_of_type(state, "orderError").is_empty()
        })
        .await;
    let error = errors_of_type(&refused, "orderError")[0];
    assert!(refers_to(error, "actionId", "weld-1"), "{error}");
    assert_eq!(refused["orderId"], "");
    assert!(action_state(&refused, "weld-1").is_none(), "a refused action is not reported");
    fleet.shutdown().await;
}
