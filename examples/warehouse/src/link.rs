//! The MQTT side of one vehicle: a single tokio task that owns the
//! vehicle's simulation and its MQTT connection, feeds inbound messages to
//! the simulation and publishes what it reports.
//!
//! The task sleeps until the next thing that can happen: a node arrival, an
//! action completion, the periodic state or (while driving) the next
//! visualization. An idle vehicle thus wakes only for its periodic state,
//! which is what lets one machine run hundreds of vehicles.
//!
//! Publishing never waits: messages go into the MQTT client's bounded
//! request queue with `try_publish`. When the queue is full the message
//! stays due (states and visualizations are snapshots, so the newest one is
//! built when there is room) and the header id is only consumed by a message
//! that was actually queued.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, SubscribeFilter,
    SubscribeReasonCode,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use crate::factsheet::factsheet;
use crate::protocol::{
    CONNECTION_QOS, ConnectionMessage, ConnectionState, FACTSHEET_QOS, Header, PROTOCOL_VERSION,
    STATE_QOS, SUBSCRIPTION_QOS, Topics, VISUALIZATION_QOS, timestamp_now,
};
use crate::vehicle::Vehicle;
use crate::{MESSAGE_SIZE_BYTES_MAX, VehicleStatus};

/// Capacity of the MQTT client's request queue per vehicle. A vehicle
/// queues at most a subscription, two connection messages, a factsheet, a
/// state and a visualization between two turns of its loop; 64 absorbs a
/// slow broker for a while without holding much memory per vehicle.
pub(crate) const REQUEST_QUEUE_CAPACITY: usize = 64;

/// MQTT keep-alive: VDA 5050 2.0.0 §6.14 says the heartbeat "should be set
/// around 15 seconds".
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Pause before reconnecting after the connection failed, so that a broker
/// that is down is not hammered by every vehicle at once.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Longest a graceful disconnect (OFFLINE, its acknowledgement, DISCONNECT)
/// may take before the vehicle gives up and closes the socket.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the fleet asks of a running vehicle.
#[derive(Debug)]
pub(crate) enum Control {
    /// Drop the connection abruptly (no DISCONNECT) and stop for good.
    Kill,
    /// Report a FATAL error of this type and stop.
    Fail(String),
    /// Lose the next update of a running order, as if lost in transit.
    LoseNextOrderUpdate,
    /// Publish OFFLINE, disconnect and stop.
    Shutdown,
}

/// Where and how a vehicle connects and reports.
#[derive(Debug, Clone)]
pub(crate) struct LinkSettings {
    /// Broker host name or address.
    pub(crate) broker_host: String,
    /// Broker port.
    pub(crate) broker_port: u16,
    /// The vehicle's topics.
    pub(crate) topics: Topics,
    /// The MQTT client id.
    pub(crate) client_id: String,
    /// The vehicle model, for the factsheet.
    pub(crate) model: String,
    /// Periodic state interval, wall milliseconds.
    pub(crate) state_interval_ms: u64,
    /// Visualization interval while driving, wall milliseconds; 0 disables.
    pub(crate) visualization_interval_ms: u64,
}

/// Simulated time: wall time since the vehicle started, times the speedup.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SimClock {
    /// When simulated time was 0.
    epoch: Instant,
    /// Simulated seconds per wall second.
    speedup: u64,
}

impl SimClock {
    /// A clock starting now.
    pub(crate) fn start(speedup: u32) -> SimClock {
        SimClock { epoch: Instant::now(), speedup: u64::from(speedup.max(1)) }
    }

    /// Simulated microseconds at wall time `now`.
    fn sim_us(&self, now: Instant) -> u64 {
        let wall_us = u64::try_from(now.saturating_duration_since(self.epoch).as_micros())
            .unwrap_or(u64::MAX);
        wall_us.saturating_mul(self.speedup)
    }

    /// The wall time at which simulated time reaches `sim_us`, if representable.
    fn wall_instant(&self, sim_us: u64) -> Option<Instant> {
        self.epoch.checked_add(Duration::from_micros(sim_us.div_ceil(self.speedup)))
    }
}

/// Per-topic header ids: each counts up by one per message sent (§6.4).
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderIds {
    /// `connection` messages (including the last will).
    connection: u32,
    /// `state` messages.
    state: u32,
    /// `visualization` messages.
    visualization: u32,
    /// `factsheet` messages.
    factsheet: u32,
}

/// A vehicle with what survives a restart: its clock and header counters.
#[derive(Debug)]
pub(crate) struct Unit {
    /// The simulation.
    pub(crate) vehicle: Vehicle,
    /// Its clock.
    pub(crate) clock: SimClock,
    /// Its header counters.
    pub(crate) header_ids: HeaderIds,
}

/// What the current connection has done and what is due.
#[derive(Debug)]
struct Exchange {
    /// Whether the broker acknowledged the connection.
    connected: bool,
    /// Whether the broker acknowledged the subscriptions.
    subscribed: bool,
    /// Whether ONLINE was queued.
    online_sent: bool,
    /// Whether the broker acknowledged ONLINE.
    online_acked: bool,
    /// The subscriptions are to be sent.
    subscribe_due: bool,
    /// ONLINE is to be published.
    online_due: bool,
    /// The factsheet is to be published.
    factsheet_due: bool,
    /// A state is to be published.
    state_due: bool,
    /// A visualization is to be published.
    visualization_due: bool,
    /// When the periodic state is next due.
    next_state_at: Instant,
    /// When the next visualization is due while driving.
    next_visualization_at: Instant,
}

impl Exchange {
    /// An exchange before the first connection.
    fn new(now: Instant) -> Exchange {
        Exchange {
            connected: false,
            subscribed: false,
            online_sent: false,
            online_acked: false,
            subscribe_due: false,
            online_due: false,
            factsheet_due: false,
            state_due: false,
            visualization_due: false,
            next_state_at: now,
            next_visualization_at: now,
        }
    }

    /// The broker accepted a (re)connection: subscribe, announce, describe, report.
    fn connected(&mut self) {
        self.connected = true;
        self.subscribed = false;
        self.online_sent = false;
        self.online_acked = false;
        self.subscribe_due = true;
        self.online_due = true;
        self.factsheet_due = true;
        self.state_due = true;
    }

    /// Whether the vehicle is subscribed and its ONLINE acknowledged.
    fn ready(&self) -> bool {
        self.subscribed && self.online_acked
    }
}

/// How the inner loop of [`run`] ended.
enum Outcome {
    /// The event loop produced an event or an error.
    Network(Result<Event, rumqttc::ConnectionError>),
    /// The fleet killed the vehicle.
    Kill,
    /// The fleet shuts the vehicle down (or is gone).
    Shutdown,
}

/// The MQTT options of a vehicle, with its last will (§6.14).
fn mqtt_options(unit: &mut Unit, settings: &LinkSettings) -> MqttOptions {
    let mut options =
        MqttOptions::new(&settings.client_id, &settings.broker_host, settings.broker_port);
    options.set_keep_alive(KEEP_ALIVE);
    options.set_clean_session(true);
    options.set_max_packet_size(MESSAGE_SIZE_BYTES_MAX, MESSAGE_SIZE_BYTES_MAX);
    // The will is fixed when connecting, so its headerId and timestamp are
    // those of the connection (§6.14 notes they are always outdated).
    let header_id = next_id(&mut unit.header_ids.connection);
    let will = connection_message(&unit.vehicle, header_id, ConnectionState::ConnectionBroken);
    options.set_last_will(LastWill::new(&settings.topics.connection, will, CONNECTION_QOS, true));
    options
}

/// The counter's value, then counts it up.
fn next_id(counter: &mut u32) -> u32 {
    let id = *counter;
    *counter = counter.wrapping_add(1);
    id
}

/// A header for the vehicle's next message on a topic.
fn header(vehicle: &Vehicle, header_id: u32) -> Header {
    let identity = vehicle.identity();
    Header {
        header_id,
        timestamp: timestamp_now(),
        version: PROTOCOL_VERSION,
        manufacturer: identity.manufacturer.clone(),
        serial_number: identity.serial_number.clone(),
    }
}

/// A `connection` payload.
fn connection_message(vehicle: &Vehicle, header_id: u32, state: ConnectionState) -> Vec<u8> {
    encode(&ConnectionMessage { header: header(vehicle, header_id), connection_state: state })
}

/// JSON bytes of an outbound message. Serializing these plain structs
/// cannot fail; should it ever, an empty payload is sent and logged rather
/// than taking the vehicle down.
fn encode(message: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(message).unwrap_or_else(|error| {
        tracing::error!(%error, "cannot serialize an outbound message");
        Vec::new()
    })
}

/// Runs one vehicle until it is killed or shut down, and hands it back.
pub(crate) async fn run(
    mut unit: Unit,
    settings: LinkSettings,
    mut control: mpsc::Receiver<Control>,
    status: Arc<Mutex<VehicleStatus>>,
    ready: oneshot::Sender<Result<(), String>>,
) -> Unit {
    let (client, mut eventloop) =
        AsyncClient::new(mqtt_options(&mut unit, &settings), REQUEST_QUEUE_CAPACITY);
    let mut ready = Some(ready);
    let mut exchange = Exchange::new(Instant::now());
    let mut reconnect_at: Option<Instant> = None;
    loop {
        let outcome = {
            let delay = reconnect_at.take();
            let poll = async {
                if let Some(at) = delay {
                    sleep_until(at).await;
                }
                eventloop.poll().await
            };
            tokio::pin!(poll);
            loop {
                let wake = next_wake(&unit, &exchange, &settings);
                tokio::select! {
                    biased;
                    command = control.recv() => match command {
                        Some(Control::Fail(error_type)) => {
                            unit.vehicle.advance(unit.clock.sim_us(Instant::now()));
                            unit.vehicle.fail(&error_type);
                        }
                        Some(Control::LoseNextOrderUpdate) => unit.vehicle.lose_next_order_update(),
                        Some(Control::Kill) => break Outcome::Kill,
                        Some(Control::Shutdown) | None => break Outcome::Shutdown,
                    },
                    event = &mut poll => break Outcome::Network(event),
                    () = sleep_until(wake) => {}
                }
                tick(&mut unit, &mut exchange, &settings);
                flush(&client, &mut unit, &mut exchange, &settings);
                report_status(&status, &unit, &exchange);
            }
        };
        match outcome {
            Outcome::Kill => {
                // Returning drops the event loop and with it the socket,
                // without a DISCONNECT packet: the broker publishes the will.
                unit.vehicle.advance(unit.clock.sim_us(Instant::now()));
                unit.vehicle.power_off();
                exchange.connected = false;
                report_status(&status, &unit, &exchange);
                return unit;
            }
            Outcome::Shutdown => {
                unit.vehicle.advance(unit.clock.sim_us(Instant::now()));
                disconnect(&client, &mut eventloop, &mut unit, &exchange, &settings).await;
                unit.vehicle.power_off();
                exchange.connected = false;
                report_status(&status, &unit, &exchange);
                return unit;
            }
            Outcome::Network(Ok(event)) => {
                handle_event(event, &mut unit, &mut exchange, &settings);
                if exchange.ready()
                    && let Some(ready) = ready.take()
                {
                    // The spawner may have given up waiting; nothing to tell then.
                    let _ = ready.send(Ok(()));
                }
            }
            Outcome::Network(Err(error)) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(format!(
                        "cannot connect to the broker at {}:{}: {error}",
                        settings.broker_host, settings.broker_port
                    )));
                    exchange.connected = false;
                    report_status(&status, &unit, &exchange);
                    return unit;
                }
                if exchange.connected {
                    tracing::warn!(client_id = %settings.client_id, %error, "connection lost");
                }
                exchange.connected = false;
                reconnect_at = Some(Instant::now() + RECONNECT_DELAY);
            }
        }
        tick(&mut unit, &mut exchange, &settings);
        flush(&client, &mut unit, &mut exchange, &settings);
        report_status(&status, &unit, &exchange);
    }
}

/// Applies an event of the MQTT connection.
fn handle_event(event: Event, unit: &mut Unit, exchange: &mut Exchange, settings: &LinkSettings) {
    match event {
        Event::Incoming(Packet::ConnAck(_)) => exchange.connected(),
        Event::Incoming(Packet::SubAck(ack)) => {
            if ack.return_codes.iter().all(|code| matches!(code, SubscribeReasonCode::Success(_))) {
                exchange.subscribed = true;
            } else {
                tracing::error!(client_id = %settings.client_id, "the broker refused a subscription");
            }
        }
        // ONLINE is the only QoS 1 message sent while running.
        Event::Incoming(Packet::PubAck(_)) if exchange.online_sent => exchange.online_acked = true,
        Event::Incoming(Packet::Publish(publish)) => {
            unit.vehicle.advance(unit.clock.sim_us(Instant::now()));
            if publish.topic == settings.topics.order {
                unit.vehicle.handle_order(&publish.payload);
            } else if publish.topic == settings.topics.instant_actions {
                unit.vehicle.handle_instant_actions(&publish.payload);
            }
        }
        _ => {}
    }
}

/// Brings the simulation up to now and marks what is due.
fn tick(unit: &mut Unit, exchange: &mut Exchange, settings: &LinkSettings) {
    let now = Instant::now();
    unit.vehicle.advance(unit.clock.sim_us(now));
    if unit.vehicle.take_state_changed() {
        exchange.state_due = true;
    }
    if unit.vehicle.take_factsheet_requested() {
        exchange.factsheet_due = true;
    }
    if now >= exchange.next_state_at {
        exchange.state_due = true;
        exchange.next_state_at = now + Duration::from_millis(settings.state_interval_ms);
    }
    if settings.visualization_interval_ms > 0
        && unit.vehicle.is_driving()
        && now >= exchange.next_visualization_at
    {
        exchange.visualization_due = true;
        exchange.next_visualization_at =
            now + Duration::from_millis(settings.visualization_interval_ms);
    }
}

/// When the task must wake next if nothing arrives.
fn next_wake(unit: &Unit, exchange: &Exchange, settings: &LinkSettings) -> Instant {
    let mut wake = exchange.next_state_at;
    if let Some(at) =
        unit.vehicle.next_event_us().and_then(|sim_us| unit.clock.wall_instant(sim_us))
    {
        wake = wake.min(at);
    }
    if settings.visualization_interval_ms > 0 && unit.vehicle.is_driving() {
        wake = wake.min(exchange.next_visualization_at);
    }
    wake
}

/// Queues what is due, in order, until the request queue is full.
fn flush(client: &AsyncClient, unit: &mut Unit, exchange: &mut Exchange, settings: &LinkSettings) {
    if !exchange.connected {
        // States are snapshots: the newest is sent once connected again.
        exchange.state_due = false;
        exchange.visualization_due = false;
        return;
    }
    let topics = &settings.topics;
    if exchange.subscribe_due {
        let filters = [
            SubscribeFilter::new(topics.order.clone(), SUBSCRIPTION_QOS),
            SubscribeFilter::new(topics.instant_actions.clone(), SUBSCRIPTION_QOS),
        ];
        if client.try_subscribe_many(filters).is_err() {
            return;
        }
        exchange.subscribe_due = false;
    }
    if exchange.online_due {
        let payload =
            connection_message(&unit.vehicle, unit.header_ids.connection, ConnectionState::Online);
        if !queue(client, &topics.connection, CONNECTION_QOS, true, payload) {
            return;
        }
        unit.header_ids.connection = unit.header_ids.connection.wrapping_add(1);
        exchange.online_due = false;
        exchange.online_sent = true;
    }
    if exchange.factsheet_due {
        let payload = encode(&factsheet(
            header(&unit.vehicle, unit.header_ids.factsheet),
            &settings.model,
            unit.vehicle.motion(),
            settings.state_interval_ms,
            settings.visualization_interval_ms,
        ));
        // §6.16: "All messages on this topic shall be sent with a retained flag."
        if !queue(client, &topics.factsheet, FACTSHEET_QOS, true, payload) {
            return;
        }
        unit.header_ids.factsheet = unit.header_ids.factsheet.wrapping_add(1);
        exchange.factsheet_due = false;
    }
    if exchange.state_due {
        let payload = encode(&unit.vehicle.state(header(&unit.vehicle, unit.header_ids.state)));
        if !queue(client, &topics.state, STATE_QOS, false, payload) {
            return;
        }
        unit.header_ids.state = unit.header_ids.state.wrapping_add(1);
        exchange.state_due = false;
        exchange.next_state_at = Instant::now() + Duration::from_millis(settings.state_interval_ms);
    }
    if exchange.visualization_due {
        let message =
            unit.vehicle.visualization(header(&unit.vehicle, unit.header_ids.visualization));
        if !queue(client, &topics.visualization, VISUALIZATION_QOS, false, encode(&message)) {
            return;
        }
        unit.header_ids.visualization = unit.header_ids.visualization.wrapping_add(1);
        exchange.visualization_due = false;
    }
}

/// Puts a message into the request queue; false when the queue is full.
fn queue(client: &AsyncClient, topic: &str, qos: QoS, retain: bool, payload: Vec<u8>) -> bool {
    client.try_publish(topic, qos, retain, payload).is_ok()
}

/// Publishes the vehicle's summary for the fleet.
fn report_status(status: &Mutex<VehicleStatus>, unit: &Unit, exchange: &Exchange) {
    let summary = unit.vehicle.status(exchange.connected);
    *status.lock().unwrap_or_else(PoisonError::into_inner) = summary;
}

/// The graceful goodbye of §6.14: OFFLINE (QoS 1, retained), then an MQTT
/// DISCONNECT, which tells the broker not to publish the last will.
async fn disconnect(
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    unit: &mut Unit,
    exchange: &Exchange,
    settings: &LinkSettings,
) {
    if !exchange.connected {
        return;
    }
    let header_id = next_id(&mut unit.header_ids.connection);
    let offline = connection_message(&unit.vehicle, header_id, ConnectionState::Offline);
    let goodbye = async {
        while client
            .try_publish(&settings.topics.connection, CONNECTION_QOS, true, offline.clone())
            .is_err()
        {
            eventloop.poll().await?;
        }
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await? {
                break;
            }
        }
        while client.try_disconnect().is_err() {
            eventloop.poll().await?;
        }
        loop {
            if let Event::Outgoing(Outgoing::Disconnect) = eventloop.poll().await? {
                break;
            }
        }
        Ok::<(), rumqttc::ConnectionError>(())
    };
    match tokio::time::timeout(SHUTDOWN_TIMEOUT, goodbye).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(client_id = %settings.client_id, %error, "graceful disconnect failed");
        }
        Err(_) => tracing::warn!(client_id = %settings.client_id, "graceful disconnect timed out"),
    }
}
