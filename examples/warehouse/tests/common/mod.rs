//! Test support: a real rumqttd broker on a free loopback port, a "master
//! control" MQTT client that sends orders and instant actions and reads
//! what the vehicles publish, and builders for VDA 5050 messages.

#![allow(dead_code, reason = "each test file uses a different part of the support")]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use warehouse::{Fleet, FleetConfig, VehicleSpec};

/// How long any awaited condition may take before the test fails. Generous:
/// the machine is shared and slow; the tests never measure time.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Manufacturer used by the tests.
pub const MANUFACTURER: &str = "BazaarSim";

/// The map the test vehicles drive on.
pub const MAP_ID: &str = "hall-1";

/// Messages buffered by the master control before its reader waits.
const INBOX_CAPACITY: usize = 100_000;

/// Starts rumqttd on a free loopback port and returns the port once the
/// broker accepts connections.
pub fn start_broker() -> u16 {
    let port = free_port();
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let server = ServerSettings {
        name: "v4".to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 256 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("v4".to_owned(), server)])),
        ..Config::default()
    };
    std::thread::spawn(move || {
        let mut broker = Broker::new(config);
        // `start` blocks for the broker's lifetime (the test process's).
        if let Err(error) = broker.start() {
            eprintln!("broker stopped: {error}");
        }
    });
    let deadline = std::time::Instant::now() + PATIENCE;
    while TcpStream::connect(listen).is_err() {
        assert!(std::time::Instant::now() < deadline, "the broker did not start listening");
        std::thread::sleep(Duration::from_millis(10));
    }
    port
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A fleet configuration against the broker on `port`, fast for tests.
pub fn config(port: u16, speedup: u32) -> FleetConfig {
    FleetConfig {
        broker_port: port,
        speedup,
        state_interval_ms: 200,
        visualization_interval_ms: 100,
        ..FleetConfig::default()
    }
}

/// A vehicle standing on node `start` at (`x_mm`, `y_mm`).
pub fn vehicle(serial: &str, start: &str, x_mm: i64, y_mm: i64) -> VehicleSpec {
    VehicleSpec {
        serial_number: serial.to_owned(),
        model: "SimCarrier".to_owned(),
        map_id: MAP_ID.to_owned(),
        start_node_id: start.to_owned(),
        start_x_mm: x_mm,
        start_y_mm: y_mm,
    }
}

/// A broker, a master control listening to everything of the manufacturer,
/// and a fleet of `vehicles`.
pub async fn setup(speedup: u32, vehicles: Vec<VehicleSpec>) -> (MasterControl, Fleet, u16) {
    let port = start_broker();
    let master = MasterControl::connect(port, &format!("uagv/v2/{MANUFACTURER}/#")).await;
    let fleet = Fleet::spawn(config(port, speedup), vehicles).await.expect("fleet comes online");
    (master, fleet, port)
}

/// The topic `name` of vehicle `serial`.
pub fn topic(serial: &str, name: &str) -> String {
    format!("uagv/v2/{MANUFACTURER}/{serial}/{name}")
}

/// A message the master control received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its topic.
    pub topic: String,
    /// Its payload as JSON (`Value::Null` if it was not JSON).
    pub payload: Value,
    /// The QoS it was delivered with.
    pub qos: QoS,
    /// Whether it was delivered as a retained message.
    pub retain: bool,
}

/// A master control: an MQTT client that publishes to the vehicles and
/// reads everything under a filter.
pub struct MasterControl {
    /// The client.
    client: AsyncClient,
    /// What arrived.
    inbox: mpsc::Receiver<Received>,
    /// The event loop's task.
    poller: JoinHandle<()>,
    /// Header id of the next message sent.
    header_id: u64,
}

impl Drop for MasterControl {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

impl MasterControl {
    /// Connects to the broker on `port` and subscribes to `filter` (QoS 1).
    pub async fn connect(port: u16, filter: &str) -> MasterControl {
        static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut options = MqttOptions::new(format!("master-control-{id}"), "127.0.0.1", port);
        options.set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (inbox_tx, inbox) = mpsc::channel(INBOX_CAPACITY);
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        client.subscribe(filter, QoS::AtLeastOnce).await.expect("queue the subscription");
        let poller = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(subscribed) = subscribed_tx.take() {
                            let _ = subscribed.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let received = Received {
                            topic: publish.topic.clone(),
                            payload: serde_json::from_slice(&publish.payload)
                                .unwrap_or(Value::Null),
                            qos: publish.qos,
                            retain: publish.retain,
                        };
                        if inbox_tx.send(received).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(PATIENCE, subscribed_rx)
            .await
            .expect("the broker acknowledges the subscription in time")
            .expect("the poller runs");
        MasterControl { client, inbox, poller, header_id: 0 }
    }

    /// Publishes raw bytes to `topic` with QoS 1.
    pub async fn publish_raw(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("queue a publish");
    }

    /// Sends an order to `serial` (QoS 0, as VDA 5050 §6.2 prescribes).
    pub async fn send_order(&mut self, serial: &str, order: Value) {
        let mut order = order;
        self.stamp(serial, &mut order);
        self.client
            .publish(topic(serial, "order"), QoS::AtMostOnce, false, order.to_string())
            .await
            .expect("queue an order");
    }

    /// Sends instant actions to `serial` under the 2.0 key `actions`.
    pub async fn send_instant_actions(&mut self, serial: &str, actions: Vec<Value>) {
        self.send_instant_actions_under(serial, "actions", actions).await;
    }

    /// Sends instant actions to `serial` under the given array key.
    pub async fn send_instant_actions_under(
        &mut self,
        serial: &str,
        key: &str,
        actions: Vec<Value>,
    ) {
        let mut message = json!({ key: actions });
        self.stamp(serial, &mut message);
        self.publish_raw(&topic(serial, "instantActions"), message.to_string()).await;
    }

    /// Adds the protocol header to an outgoing message.
    fn stamp(&mut self, serial: &str, message: &mut Value) {
        message["headerId"] = json!(self.header_id);
        message["timestamp"] = json!("2026-11-26T11:22:44.123Z");
        message["version"] = json!("2.0.0");
        message["manufacturer"] = json!(MANUFACTURER);
        message["serialNumber"] = json!(serial);
        self.header_id += 1;
    }

    /// Waits for the next message that satisfies `condition`, skipping the
    /// others; panics naming `what` if none comes within [`PATIENCE`].
    pub async fn wait_for(
        &mut self,
        what: &str,
        mut condition: impl FnMut(&Received) -> bool,
    ) -> Received {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                Ok(Some(received)) if condition(&received) => return received,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the master control stopped while waiting for {what}"),
                Err(_) => panic!("no message within {PATIENCE:?}: {what}"),
            }
        }
    }

    /// Waits for a state of `serial` that satisfies `condition`.
    pub async fn wait_for_state(
        &mut self,
        serial: &str,
        what: &str,
        mut condition: impl FnMut(&Value) -> bool,
    ) -> Value {
        let state_topic = topic(serial, "state");
        self.wait_for(what, |received| {
            received.topic == state_topic && condition(&received.payload)
        })
        .await
        .payload
    }

    /// Collects the states of `serial` up to and including the first that
    /// satisfies `condition`.
    pub async fn states_until(
        &mut self,
        serial: &str,
        what: &str,
        mut condition: impl FnMut(&Value) -> bool,
    ) -> Vec<Value> {
        let state_topic = topic(serial, "state");
        let mut states = Vec::new();
        self.wait_for(what, |received| {
            if received.topic != state_topic {
                return false;
            }
            states.push(received.payload.clone());
            condition(&received.payload)
        })
        .await;
        states
    }
}

/// A node of an order: id, position in metres, actions.
pub struct Stop {
    /// The node id.
    pub id: &'static str,
    /// East, metres.
    pub x: f64,
    /// North, metres.
    pub y: f64,
    /// The node's actions.
    pub actions: Vec<Value>,
}

/// A stop without actions.
pub fn stop(id: &'static str, x: f64, y: f64) -> Stop {
    Stop { id, x, y, actions: Vec::new() }
}

/// A stop with actions.
pub fn stop_with(id: &'static str, x: f64, y: f64, actions: Vec<Value>) -> Stop {
    Stop { id, x, y, actions }
}

/// An action.
pub fn action(action_type: &str, action_id: &str, blocking_type: &str) -> Value {
    json!({ "actionType": action_type, "actionId": action_id, "blockingType": blocking_type })
}

/// A pick or drop of `load_id`.
pub fn load_action(action_type: &str, action_id: &str, load_id: &str) -> Value {
    json!({
        "actionType": action_type,
        "actionId": action_id,
        "blockingType": "HARD",
        "actionParameters": [
            { "key": "loadId", "value": load_id },
            { "key": "stationType", "value": "rack" },
        ],
    })
}

/// An order (without header) through `stops`, the first `released` of them
/// in the base; sequence ids start at `first_sequence_id`.
pub fn order(
    order_id: &str,
    order_update_id: u32,
    first_sequence_id: u32,
    stops: Vec<Stop>,
    released: usize,
) -> Value {
    let nodes: Vec<Value> = stops
        .iter()
        .enumerate()
        .map(|(index, stop)| {
            json!({
                "nodeId": stop.id,
                "sequenceId": first_sequence_id + 2 * index as u32,
                "released": index < released,
                "nodePosition": { "x": stop.x, "y": stop.y, "mapId": MAP_ID },
                "actions": stop.actions,
            })
        })
        .collect();
    let edges: Vec<Value> = stops
        .windows(2)
        .enumerate()
        .map(|(index, pair)| {
            json!({
                "edgeId": format!("{}-{}", pair[0].id, pair[1].id),
                "sequenceId": first_sequence_id + 2 * index as u32 + 1,
                "released": index + 1 < released,
                "startNodeId": pair[0].id,
                "endNodeId": pair[1].id,
                "actions": [],
            })
        })
        .collect();
    json!({
        "orderId": order_id,
        "orderUpdateId": order_update_id,
        "nodes": nodes,
        "edges": edges,
    })
}

/// The action state `action_id` of a state, if present.
pub fn action_state<'a>(state: &'a Value, action_id: &str) -> Option<&'a Value> {
    state["actionStates"].as_array()?.iter().find(|action| action["actionId"] == action_id)
}

/// The status of action `action_id` in a state (`""` if absent).
pub fn action_status(state: &Value, action_id: &str) -> String {
    action_state(state, action_id)
        .and_then(|action| action["actionStatus"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Whether the state shows the standard's implied order completion.
pub fn order_complete(state: &Value, order_id: &str) -> bool {
    state["orderId"] == order_id
        && state["nodeStates"].as_array().is_some_and(Vec::is_empty)
        && state["edgeStates"].as_array().is_some_and(Vec::is_empty)
        && state["driving"] == false
        && state["actionStates"].as_array().is_some_and(|actions| {
            actions.iter().all(|action| {
                action["actionStatus"] == "FINISHED" || action["actionStatus"] == "FAILED"
            })
        })
}

/// The errors of a state with the given type.
pub fn errors_of_type<'a>(state: &'a Value, error_type: &str) -> Vec<&'a Value> {
    state["errors"]
        .as_array()
        .map(|errors| errors.iter().filter(|error| error["errorType"] == error_type).collect())
        .unwrap_or_default()
}

/// Whether an error refers to `key` = `value`.
pub fn refers_to(error: &Value, key: &str, value: &str) -> bool {
    error["errorReferences"].as_array().is_some_and(|references| {
        references.iter().any(|reference| {
            reference["referenceKey"] == key && reference["referenceValue"] == value
        })
    })
}
