//! The device bus end to end: a node with its first-party VDA 5050 driver,
//! a real MQTT broker (the embedded one, and Debian's mosquitto) and a
//! fleet of simulated AGVs from `examples/warehouse` that speak the
//! protocol. Paid orders become pick tasks that the robots carry out;
//! every order ships exactly once, whatever happens to the robots.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bazaar_kernel::device::{DeviceKind, DeviceSpec, TaskStatus};
use bazaar_kernel::model::{
    Capability, Coordinates, DeviceId, OrderStatus, PluginId, StoreId, Warehouse, WarehouseId,
    ZoneId,
};
use bazaar_kernel::money::Currency;
use bazaar_kernel::{Command, PluginSettings};
use bazaar_node::devices::{BrokerAddress, BusSettings, DeviceBus, EmbeddedBroker};
use bazaar_node::node::{Node, NodeConfig};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed;
use rumqttc::{Client, MqttOptions, QoS};
use warehouse::{Fleet, FleetConfig, VehicleSpec};

/// A free loopback port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A node with the first-party plugins (the VDA 5050 driver among them).
fn open_node(dir: &Path) -> (Arc<Node>, PluginSet) {
    let plugins = PluginSet::first_party_wasm().unwrap();
    let config = NodeConfig { shard_count: 2, ..NodeConfig::new(dir) };
    (Arc::new(Node::open(config, plugins.clone()).unwrap()), plugins)
}

fn place_paid_orders(node: &Node, store: &StoreId, from: u64, count: u64) -> Vec<u64> {
    seed::place_paid_robot_orders(node, store, from, count).unwrap()
}

fn statuses(node: &Node, store: &StoreId, orders: &[u64]) -> Vec<OrderStatus> {
    let (store, orders) = (store.clone(), orders.to_vec());
    node.read(&store.clone(), move |shard| {
        let state = shard.store(&store).unwrap();
        orders.iter().map(|order| state.order(*order).unwrap().status).collect()
    })
    .unwrap()
}

/// Waits until `done` holds, panicking with `what` after `limit`.
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until every order has shipped.
fn wait_shipped(node: &Node, store: &StoreId, orders: &[u64], limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline
        && !statuses(node, store, orders).iter().all(|status| *status == OrderStatus::Fulfilled)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for(
        &format!("every order to ship; open tasks {:?}", open_tasks(node, store)),
        Duration::ZERO,
        || statuses(node, store, orders).iter().all(|status| *status == OrderStatus::Fulfilled),
    );
}

/// The open tasks of the store, by status.
fn open_tasks(node: &Node, store: &StoreId) -> BTreeMap<u64, (TaskStatus, u32)> {
    let store = store.clone();
    node.read(&store.clone(), move |shard| {
        let floor = shard.store(&store).unwrap().floor();
        floor.tasks().values().map(|task| (task.id, (task.status, task.attempt))).collect()
    })
    .unwrap()
}

/// Debian's mosquitto on a free loopback port, stopped (by pid) on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::spawn(dir.path(), port);
        Self { child, port, _dir: dir }
    }

    /// Stops the broker (by pid) and starts it again on the same port.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self._dir.path(), self.port);
    }

    fn spawn(dir: &Path, port: u16) -> Child {
        let config = dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_packet_size 1048576\n"),
        )
        .unwrap();
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|path| Path::new(path).exists())
            .expect("mosquitto is installed by scripts/test");
        let child = Process::new(binary)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("mosquitto to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        child
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node, its bus and a simulated fleet on one broker.
struct Floor {
    /// The node (taken out only while it restarts).
    node: Option<Arc<Node>>,
    plugins: PluginSet,
    bus: Option<DeviceBus>,
    fleet: Option<Fleet>,
    runtime: tokio::runtime::Runtime,
    store: StoreId,
    broker_port: u16,
    _dir: tempfile::TempDir,
}

impl Floor {
    /// Starts everything; `broker_port` is an external broker's, or `None`
    /// for an embedded one.
    fn start(robots: usize, units: u64, broker_port: Option<u16>, settings: BusSettings) -> Self {
        // `RUST_LOG=bazaar_node=debug` shows the bus at work.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let (node, plugins) = open_node(dir.path());
        let store = StoreId::new("robot-store").unwrap();
        let (commands, homes) = seed::robot_warehouse(&store, robots, units);
        for command in commands {
            node.execute(command).unwrap();
        }
        let vehicles = homes
            .into_iter()
            .map(|home| VehicleSpec {
                serial_number: home.serial_number,
                model: seed::ROBOT_MODEL.into(),
                map_id: seed::ROBOT_MAP.into(),
                start_node_id: home.node,
                start_x_mm: home.x_mm,
                start_y_mm: home.y_mm,
            })
            .collect();
        let broker_port = broker_port.unwrap_or_else(|| {
            let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
            EmbeddedBroker::start(address).unwrap().address().port()
        });
        let broker = BrokerAddress { host: "127.0.0.1".into(), port: broker_port };
        let bus = DeviceBus::start(node.clone(), plugins.clone(), &broker, settings).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let config = FleetConfig {
            broker_host: "127.0.0.1".into(),
            broker_port,
            manufacturer: seed::ROBOT_MANUFACTURER.into(),
            speedup: 100,
            ..FleetConfig::default()
        };
        let fleet = runtime.block_on(Fleet::spawn(config, vehicles)).unwrap();
        let floor = Self {
            node: Some(node),
            plugins,
            bus: Some(bus),
            fleet: Some(fleet),
            runtime,
            store,
            broker_port,
            _dir: dir,
        };
        floor.wait_online(robots);
        floor
    }

    /// Stops the bus and the node and opens them again on the same data
    /// directory and broker, while the robots carry on.
    fn restart_node(&mut self) {
        self.bus.take().unwrap().shutdown();
        let node = self.node.take().unwrap();
        Arc::try_unwrap(node).expect("the test holds the only handle").shutdown();
        let (node, plugins) = open_node(self._dir.path());
        let broker = BrokerAddress { host: "127.0.0.1".into(), port: self.broker_port };
        self.bus = Some(
            DeviceBus::start(node.clone(), plugins.clone(), &broker, BusSettings::default())
                .unwrap(),
        );
        self.node = Some(node);
        self.plugins = plugins;
    }

    fn node(&self) -> &Arc<Node> {
        self.node.as_ref().unwrap()
    }

    fn bus(&self) -> &DeviceBus {
        self.bus.as_ref().unwrap()
    }

    fn fleet(&self) -> &Fleet {
        self.fleet.as_ref().unwrap()
    }

    fn wait_online(&self, robots: usize) {
        wait_for("every robot to be online", Duration::from_secs(30), || {
            self.bus().fleet().iter().filter(|status| status.device.online).count() == robots
        });
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        if let Some(fleet) = self.fleet.take() {
            self.runtime.block_on(fleet.shutdown());
        }
        if let Some(bus) = self.bus.take() {
            bus.shutdown();
        }
    }
}

/// Runs 1,000 orders through 10 robots and checks each shipped once.
fn thousand_orders_ship_exactly_once(broker_port: Option<u16>) {
    let floor = Floor::start(10, 1_000, broker_port, BusSettings::default());
    let orders = place_paid_orders(floor.node(), &floor.store, 1, 1_000);
    wait_shipped(floor.node(), &floor.store, &orders, Duration::from_secs(600));
    assert!(open_tasks(floor.node(), &floor.store).is_empty(), "no task is left over");
    let counters = floor.bus().counters();
    let done = counters.tasks_done.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(done, 1_000, "one task per order line, each done once");
    let completed: u64 =
        floor.fleet().status().iter().map(|vehicle| vehicle.orders_completed).sum();
    assert!(completed >= 1_000, "the robots completed {completed} jobs");
    floor.node().check_invariants().unwrap();
    // Every unit left the warehouse exactly once.
    let store = floor.store.clone();
    let shipped: u64 = floor
        .node()
        .read(&store.clone(), move |shard| {
            let state = shard.store(&store).unwrap();
            state
                .stock()
                .values()
                .flat_map(|levels| levels.values())
                .map(|level| level.shipped)
                .sum()
        })
        .unwrap();
    assert_eq!(shipped, 1_000);
}

#[test]
fn ten_agvs_fulfil_a_thousand_orders_through_the_embedded_broker() {
    thousand_orders_ship_exactly_once(None);
}

#[test]
fn ten_agvs_fulfil_a_thousand_orders_through_mosquitto() {
    let mosquitto = Mosquitto::start();
    thousand_orders_ship_exactly_once(Some(mosquitto.port));
}

/// The serial number of a robot holding a task, once one does.
fn robot_on_a_task(floor: &Floor) -> String {
    let mut holder = None;
    wait_for("a robot to take a task", Duration::from_secs(60), || {
        holder = floor
            .bus()
            .fleet()
            .iter()
            .find(|status| status.device.task.is_some())
            .map(|status| status.device.spec.serial_number.clone());
        holder.is_some()
    });
    holder.unwrap()
}

#[test]
fn orders_ship_across_a_restart_of_the_broker() {
    let mut mosquitto = Mosquitto::start();
    let floor = Floor::start(3, 100, Some(mosquitto.port), BusSettings::default());
    let before = place_paid_orders(floor.node(), &floor.store, 1, 6);
    robot_on_a_task(&floor);
    // Whatever was in flight is lost with the broker: the bus and the
    // robots reconnect, the bus subscribes again, and a job whose order
    // never arrived is taken back and sent again.
    mosquitto.restart();
    let during = place_paid_orders(floor.node(), &floor.store, 7, 6);
    wait_shipped(floor.node(), &floor.store, &before, Duration::from_secs(180));
    wait_shipped(floor.node(), &floor.store, &during, Duration::from_secs(180));
    assert!(floor.bus().is_connected());
    floor.node().check_invariants().unwrap();
}

#[test]
fn a_lost_order_update_is_noticed_and_the_task_offered_again() {
    // The robot picks, then never hears of its drop stop and waits at the
    // pick node, naming that node in every state. Repeating a node is not
    // taking the update, so the accept timeout takes the job back.
    let settings = BusSettings { job_accept_timeout_ms: 3_000, ..BusSettings::default() };
    let floor = Floor::start(1, 100, None, settings);
    let serial = floor.bus().fleet()[0].device.spec.serial_number.clone();
    assert!(floor.fleet().lose_next_order_update(&serial));
    let orders = place_paid_orders(floor.node(), &floor.store, 1, 1);
    wait_shipped(floor.node(), &floor.store, &orders, Duration::from_secs(90));
    let released = floor.bus().counters().tasks_released.load(std::sync::atomic::Ordering::Relaxed);
    assert!(released >= 1, "the job without its drop stop was taken back");
    floor.node().check_invariants().unwrap();
}

#[test]
fn a_robot_killed_mid_task_has_its_task_reassigned_and_the_order_ships() {
    let floor = Floor::start(3, 100, None, BusSettings::default());
    let orders = place_paid_orders(floor.node(), &floor.store, 1, 1);
    let victim = robot_on_a_task(&floor);
    assert!(floor.fleet().kill(&victim));
    wait_shipped(floor.node(), &floor.store, &orders, Duration::from_secs(120));
    let fleet = floor.bus().fleet();
    let dead = fleet.iter().find(|status| status.device.spec.serial_number == victim).unwrap();
    assert!(!dead.device.online, "the killed robot's last will marked it offline");
    floor.node().check_invariants().unwrap();
}

#[test]
fn a_robot_failing_mid_task_has_its_task_reassigned_and_gets_no_more_work() {
    let floor = Floor::start(3, 100, None, BusSettings::default());
    let first = place_paid_orders(floor.node(), &floor.store, 1, 1);
    let victim = robot_on_a_task(&floor);
    let completed = |floor: &Floor| {
        let vehicles = floor.fleet().status();
        vehicles.into_iter().find(|vehicle| vehicle.serial_number == victim).unwrap()
    };
    assert!(floor.fleet().fail(&victim, "motorFault"));
    // The fault is applied by the vehicle's own task, and failing every
    // action can itself end the order in the standard's sense, so the count
    // to compare with is the one reported together with the fault.
    wait_for("the robot to report its fault", Duration::from_secs(30), || {
        completed(&floor).errors.iter().any(|error| error == "motorFault")
    });
    let completed_before = completed(&floor).orders_completed;
    wait_shipped(floor.node(), &floor.store, &first, Duration::from_secs(120));
    // More work goes to the healthy robots only.
    let more = place_paid_orders(floor.node(), &floor.store, 2, 6);
    wait_shipped(floor.node(), &floor.store, &more, Duration::from_secs(120));
    let failed =
        floor.fleet().status().into_iter().find(|vehicle| vehicle.serial_number == victim).unwrap();
    assert_eq!(failed.orders_completed, completed_before, "the failed robot finished nothing more");
    assert!(failed.errors.iter().any(|error| error == "motorFault"));
    floor.node().check_invariants().unwrap();
}

#[test]
fn a_node_restarted_mid_task_offers_the_task_again_and_the_order_ships() {
    let mut floor = Floor::start(2, 100, None, BusSettings::default());
    let orders = place_paid_orders(floor.node(), &floor.store, 1, 2);
    robot_on_a_task(&floor);
    floor.restart_node();
    wait_shipped(floor.node(), &floor.store, &orders, Duration::from_secs(120));
    assert!(open_tasks(floor.node(), &floor.store).is_empty());
    floor.node().check_invariants().unwrap();
}

#[test]
fn an_emergency_stop_pauses_every_agv_of_the_zone_and_resume_continues_the_work() {
    let floor = Floor::start(4, 100, None, BusSettings::default());
    let orders = place_paid_orders(floor.node(), &floor.store, 1, 8);
    wait_for("robots to start working", Duration::from_secs(60), || {
        floor.bus().fleet().iter().any(|status| status.device.task.is_some())
    });
    let zone = |stopped| {
        floor.bus().set_zone_and_wait(
            floor.store.clone(),
            WarehouseId::new(seed::ROBOT_WAREHOUSE).unwrap(),
            ZoneId::new(seed::ROBOT_ZONE).unwrap(),
            stopped,
        )
    };
    assert_eq!(zone(true).unwrap(), 4, "every robot of the zone was commanded");
    wait_for("every AGV to report paused", Duration::from_secs(30), || {
        floor.fleet().status().iter().all(|vehicle| vehicle.paused)
            && floor.bus().fleet().iter().all(|status| status.paused)
    });
    // While held, nothing ships and no robot drives.
    let held = statuses(floor.node(), &floor.store, &orders);
    std::thread::sleep(Duration::from_millis(500));
    assert!(floor.fleet().status().iter().all(|vehicle| !vehicle.driving));
    assert_eq!(statuses(floor.node(), &floor.store, &orders), held);

    zone(false).unwrap();
    wait_shipped(floor.node(), &floor.store, &orders, Duration::from_secs(120));
    floor.node().check_invariants().unwrap();
}

#[test]
fn malformed_mqtt_payloads_are_counted_and_dropped_and_the_robot_works_on() {
    let floor = Floor::start(1, 10, None, BusSettings::default());
    let publisher = |name: &str| {
        let mut options = MqttOptions::new(name, "127.0.0.1", floor.broker_port);
        options.set_max_packet_size(4 << 20, 4 << 20);
        let (client, mut connection) = Client::new(options, 16);
        let pump = std::thread::spawn(move || {
            for event in connection.iter() {
                if event.is_err() {
                    break;
                }
            }
        });
        (client, pump)
    };
    let topic = format!("uagv/v2/{}/agv-0/state", seed::ROBOT_MANUFACTURER);
    // Larger than the broker takes: the broker drops the publisher, and
    // the node never sees a byte of it.
    let (oversized, oversized_pump) = publisher("oversized-publisher");
    oversized.publish(topic.clone(), QoS::AtLeastOnce, false, vec![b'x'; 2 << 20]).unwrap();
    let (client, pump) = publisher("hostile-publisher");
    let bad: Vec<Vec<u8>> = vec![
        b"not json at all".to_vec(),
        br#"{"headerId": "one", "timestamp": 5}"#.to_vec(),
        br#"[1, 2, 3]"#.to_vec(),
        // Bigger than a driver may be handed, smaller than the broker's cap.
        vec![b'{'; 300 * 1024],
    ];
    let sent = bad.len() as u64;
    for payload in bad {
        client.publish(topic.clone(), QoS::AtLeastOnce, false, payload).unwrap();
    }
    let counters = floor.bus().counters();
    wait_for("the malformed frames to be counted", Duration::from_secs(30), || {
        counters.frames_malformed.load(std::sync::atomic::Ordering::Relaxed) >= sent
    });
    let fleet = floor.bus().fleet();
    assert!(fleet[0].device.quarantine.is_none(), "malformed input is not a driver fault");
    let orders = place_paid_orders(floor.node(), &floor.store, 1, 2);
    wait_shipped(floor.node(), &floor.store, &orders, Duration::from_secs(120));
    assert!(floor.bus().is_connected(), "the node's own connection never dropped");
    client.disconnect().unwrap();
    pump.join().unwrap();
    let _ = oversized.disconnect();
    oversized_pump.join().unwrap();
}

#[test]
fn a_driver_that_traps_quarantines_only_its_own_devices() {
    let floor = Floor::start(2, 100, None, BusSettings::default());
    floor.plugins.load_artifact(&bazaar_artifacts::HOSTILE_DRIVER, true).unwrap();
    // A second store whose robot speaks through the trapping driver.
    let hostile_store = StoreId::new("hostile-store").unwrap();
    let warehouse = WarehouseId::new("shed").unwrap();
    let driver = PluginId::new("hostile-driver").unwrap();
    for command in [
        Command::CreateStore {
            store: hostile_store.clone(),
            name: "Hostile".into(),
            currency: Currency::parse("CNY").unwrap(),
        },
        Command::UpsertWarehouse {
            store: hostile_store.clone(),
            warehouse: Warehouse {
                id: warehouse.clone(),
                name: "Shed".into(),
                location: Coordinates { latitude_micro: 30_000_000, longitude_micro: 120_000_000 },
            },
        },
        Command::ConfigurePlugin {
            store: hostile_store.clone(),
            plugin: driver.clone(),
            config_json: Some(r#"{"behaviour":"trap"}"#.into()),
            settings: PluginSettings {
                consented: vec![Capability::Config],
                ..PluginSettings::default()
            },
        },
        Command::RegisterDevice {
            store: hostile_store.clone(),
            device: DeviceSpec {
                id: DeviceId::new("trapper").unwrap(),
                kind: DeviceKind::Agv,
                warehouse,
                zone: ZoneId::new(seed::ROBOT_ZONE).unwrap(),
                driver,
                manufacturer: "Hostile".into(),
                serial_number: "trapper".into(),
                model: "any".into(),
            },
            at_ms: 1,
        },
    ] {
        floor.node().execute(command).unwrap();
    }
    // Whether the driver traps when asked for the namespace or on the
    // first frame, the device ends in quarantine.
    let options = MqttOptions::new("hostile-robot", "127.0.0.1", floor.broker_port);
    let (client, mut connection) = Client::new(options, 16);
    let pump = std::thread::spawn(move || {
        for event in connection.iter() {
            if event.is_err() {
                break;
            }
        }
    });
    let trapper_quarantined = || {
        floor.bus().fleet().iter().any(|status| {
            status.device.spec.id.as_str() == "trapper" && status.device.quarantine.is_some()
        })
    };
    wait_for("the trapping driver's device to be quarantined", Duration::from_secs(30), || {
        let _ =
            client.publish("hostile/trapper/state", QoS::AtLeastOnce, false, b"online".to_vec());
        trapper_quarantined()
    });
    assert!(floor.bus().counters().driver_faults.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    // The other store's robots are untouched and keep shipping.
    let fleet = floor.bus().fleet();
    let healthy: Vec<_> = fleet.iter().filter(|status| status.store == floor.store).collect();
    assert!(
        healthy.iter().all(|status| status.device.quarantine.is_none() && status.device.online)
    );
    let orders = place_paid_orders(floor.node(), &floor.store, 1, 4);
    wait_shipped(floor.node(), &floor.store, &orders, Duration::from_secs(120));
    client.disconnect().unwrap();
    pump.join().unwrap();
}
