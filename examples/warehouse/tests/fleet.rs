//! The fleet as a whole: many vehicles come online and go offline together,
//! bad configurations are refused before anything starts, and a fleet
//! without a broker fails with a clear error.

mod common;

use common::{MasterControl, config, start_broker, topic, vehicle};
use warehouse::{Fleet, FleetConfig, grid_node_id, grid_vehicles};

/// A fleet large enough to exercise many connections at once in a test.
const FLEET_SIZE: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_two_hundred_vehicles_comes_online_and_goes_offline_together() {
    let port = start_broker();
    let mut master = MasterControl::connect(port, "uagv/v2/BazaarSim/+/connection").await;
    let vehicles = grid_vehicles(FLEET_SIZE, "agv-", 2000, common::MAP_ID, "SimCarrier");
    let fleet = Fleet::spawn(config(port, 1), vehicles).await.expect("the fleet comes online");
    assert!(fleet.status().iter().all(|status| status.connected));

    let mut online = 0;
    master
        .wait_for("every vehicle ONLINE", |received| {
            online += usize::from(received.payload["connectionState"] == "ONLINE");
            online == FLEET_SIZE
        })
        .await;

    fleet.shutdown().await;
    let mut offline = 0;
    master
        .wait_for("every vehicle OFFLINE", |received| {
            assert_ne!(
                received.payload["connectionState"], "CONNECTIONBROKEN",
                "{:?}",
                received.topic
            );
            offline += usize::from(received.payload["connectionState"] == "OFFLINE");
            offline == FLEET_SIZE
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_without_a_broker_fails_to_spawn_with_a_clear_error() {
    // Nothing listens on a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let error = Fleet::spawn(config(port, 1), vec![vehicle("agv-001", "n0", 0, 0)])
        .await
        .expect_err("no broker, no fleet");
    let message = format!("{error:#}");
    assert!(message.contains("agv-001") && message.contains("cannot connect"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configurations_are_refused_before_anything_starts() {
    let port = start_broker();
    let mut master = MasterControl::connect(port, "uagv/#").await;
    let refused = [
        (FleetConfig { speedup: 0, ..config(port, 1) }, vec![vehicle("agv-001", "n0", 0, 0)]),
        (
            FleetConfig { speed_mm_per_s: 0, ..config(port, 1) },
            vec![vehicle("agv-001", "n0", 0, 0)],
        ),
        (
            FleetConfig { state_interval_ms: 0, ..config(port, 1) },
            vec![vehicle("agv-001", "n0", 0, 0)],
        ),
        (
            FleetConfig { manufacturer: "a/b".to_owned(), ..config(port, 1) },
            vec![vehicle("agv-001", "n0", 0, 0)],
        ),
        (config(port, 1), vec![vehicle("agv/1", "n0", 0, 0)]),
        (config(port, 1), vec![vehicle("agv-001", "n0", 0, 0), vehicle("agv-001", "n1", 0, 0)]),
        (config(port, 1), vec![vehicle("agv-001", "", 0, 0)]),
    ];
    for (config, vehicles) in refused {
        let outcome = Fleet::spawn(config.clone(), vehicles.clone()).await;
        assert!(outcome.is_err(), "{config:?} {vehicles:?} should be refused");
    }
    // Nothing connected: the first message is from a vehicle started now.
    let fleet = Fleet::spawn(config(port, 1), vec![vehicle("agv-009", "n0", 0, 0)])
        .await
        .expect("a good fleet comes online");
    let first = master.wait_for("any message", |_| true).await;
    assert!(first.topic.starts_with(&topic("agv-009", "")), "{}", first.topic);
    fleet.shutdown().await;
}

#[test]
fn grid_vehicles_stand_on_a_square_grid_row_by_row() {
    let vehicles = grid_vehicles(5, "agv-", 2000, "hall", "SimCarrier");
    let placed: Vec<(&str, &str, i64, i64)> = vehicles
        .iter()
        .map(|spec| {
            (
                spec.serial_number.as_str(),
                spec.start_node_id.as_str(),
                spec.start_x_mm,
                spec.start_y_mm,
            )
        })
        .collect();
    assert_eq!(
        placed,
        [
            ("agv-001", "n0-0", 0, 0),
            ("agv-002", "n1-0", 2000, 0),
            ("agv-003", "n2-0", 4000, 0),
            ("agv-004", "n0-1", 0, 2000),
            ("agv-005", "n1-1", 2000, 2000),
        ]
    );
    assert_eq!(grid_node_id(2, 0), "n2-0");
}
