//! Injected failures: a killed vehicle's broken connection is announced by
//! the broker's last will; a failed vehicle reports a FATAL error and stays
//! connected; a killed vehicle can be restarted where it stopped.

mod common;

use common::{
    MasterControl, action_status, errors_of_type, load_action, order, setup, stop, stop_with,
    topic, vehicle,
};
use rumqttc::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_vehicle_is_announced_connection_broken_by_the_brokers_last_will() {
    let (mut master, fleet, port) =
        setup(10, vec![vehicle("agv-001", "n0", 0, 0), vehicle("agv-002", "m0", 0, 5000)]).await;
    master
        .wait_for("agv-001 ONLINE", |received| {
            received.topic == topic("agv-001", "connection")
                && received.payload["connectionState"] == "ONLINE"
        })
        .await;
    let long = vec![stop("n0", 0.0, 0.0), stop("n1", 40.0, 0.0)];
    master.send_order("agv-001", order("order-1", 0, 0, long, 2)).await;
    master.wait_for_state("agv-001", "agv-001 driving", |state| state["driving"] == true).await;

    assert!(fleet.kill("agv-001"));
    let will = master
        .wait_for("CONNECTIONBROKEN published by the broker", |received| {
            received.topic == topic("agv-001", "connection")
                && received.payload["connectionState"] == "CONNECTIONBROKEN"
        })
        .await;
    assert_eq!(will.qos, QoS::AtLeastOnce);
    assert_eq!(will.payload["serialNumber"], "agv-001");
    assert_eq!(will.payload["version"], "2.0.0");

    // The will is retained: a master control that connects later learns it.
    let mut latecomer = MasterControl::connect(port, &topic("agv-001", "connection")).await;
    let retained = latecomer.wait_for("the retained will", |received| received.retain).await;
    assert_eq!(retained.payload["connectionState"], "CONNECTIONBROKEN");

    assert!(!fleet.kill("agv-001"), "a dead vehicle cannot be killed twice");
    assert!(!fleet.fail("agv-001", "motorFault"), "nor failed");
    let status = fleet.status();
    assert!(!status[0].connected);
    assert!(!status[0].driving, "a killed vehicle stops for good");
    assert!(status[1].connected, "the other vehicle is unaffected");

    // It comes back where it stopped, without its order.
    let stopped_at_mm = status[0].x_mm;
    assert!(fleet.restart("agv-001").await.expect("restart"));
    let state = master
        .wait_for_state("agv-001", "a state after the restart", |state| {
            state["orderId"] == "" && state["lastNodeId"] == "n0"
        })
        .await;
    let x_mm = state["agvPosition"]["x"].as_f64().map(|x| (x * 1000.0).round() as i64);
    assert_eq!(x_mm, Some(stopped_at_mm));
    assert!(fleet.status()[0].connected);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_vehicle_reports_a_fatal_error_and_fails_its_actions_while_staying_connected() {
    let (mut master, fleet, _port) = setup(10, vec![vehicle("agv-001", "n0", 0, 0)]).await;
    let route = vec![
        stop_with("n0", 0.0, 0.0, vec![load_action("pick", "pick-1", "tote-1")]),
        stop_with("n1", 30.0, 0.0, vec![load_action("drop", "drop-1", "tote-1")]),
    ];
    master.send_order("agv-001", order("order-2", 0, 0, route, 2)).await;
    master
        .wait_for_state("agv-001", "the pick running", |state| {
            action_status(state, "pick-1") == "RUNNING"
        })
        .await;

    assert!(fleet.fail("agv-001", "motorFault"));
    let failed = master
        .wait_for_state("agv-001", "a FATAL error", |state| {
            !errors_of_type(state, "motorFault").is_empty()
        })
        .await;
    assert_eq!(errors_of_type(&failed, "motorFault")[0]["errorLevel"], "FATAL");
    assert_eq!(failed["driving"], false);
    assert_eq!(action_status(&failed, "pick-1"), "FAILED");
    assert_eq!(action_status(&failed, "drop-1"), "FAILED");

    // Still connected: it keeps publishing states, and no will was sent.
    let header_id = failed["headerId"].as_u64();
    let later = master
        .wait_for_state("agv-001", "a later state", |state| state["headerId"].as_u64() > header_id)
        .await;
    assert_eq!(later["driving"], false, "a failed vehicle does not drive on");
    assert!(fleet.status()[0].connected);
    assert_eq!(fleet.status()[0].errors, ["motorFault"]);
    fleet.shutdown().await;
    let goodbye = master
        .wait_for("OFFLINE, not CONNECTIONBROKEN", |received| {
            received.topic == topic("agv-001", "connection")
                && received.payload["connectionState"] != "ONLINE"
        })
        .await;
    assert_eq!(goodbye.payload["connectionState"], "OFFLINE");
}
