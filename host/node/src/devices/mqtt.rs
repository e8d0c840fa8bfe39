//! The node's MQTT connection: one client for the whole bus, with
//! reconnection, re-subscription after every reconnect, bounded queues in
//! both directions, and backpressure instead of loss on the way in.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_channel::Sender;
use rumqttc::{Client, ConnectionError, Event, MqttOptions, Packet, QoS};

use crate::devices::core::Inbound;

/// Requests (publishes, subscriptions) the client queues before
/// `try_publish` refuses: enough for an emergency stop of a 500-vehicle
/// zone in one go, small enough that a dead broker is noticed at once
/// rather than after minutes of queued orders.
pub const OUTBOUND_QUEUE_MAX: usize = 2048;

/// Largest packet the node reads or writes, in bytes: the broker refuses
/// larger payloads first (see `broker`); one over this from an external
/// broker ends the connection, which then reconnects.
pub const PACKET_BYTES_MAX: usize = 2 * 1024 * 1024;

/// How often the client pings an idle broker, in seconds.
const KEEP_ALIVE_S: u64 = 10;

/// First and longest wait between reconnection attempts, in milliseconds.
const RECONNECT_BACKOFF_MS_MIN: u64 = 100;
const RECONNECT_BACKOFF_MS_MAX: u64 = 5_000;

/// Where the bus's broker is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl BrokerAddress {
    /// Parses `mqtt://host:port` or `host:port`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text.strip_prefix("mqtt://").unwrap_or(text);
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} is not host:port or mqtt://host:port"))?;
        let port = port.parse().map_err(|_| format!("{port:?} is not a port number"))?;
        if host.is_empty() {
            return Err(format!("{text:?} names no host"));
        }
        Ok(Self { host: host.to_owned(), port })
    }
}

impl std::fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mqtt://{}:{}", self.host, self.port)
    }
}

/// The client side the bus worker uses: publish and (un)subscribe. The
/// topics subscribed are remembered and subscribed again after every
/// reconnect, since the session is clean. A subscription the client's full
/// request queue refuses (publishes queued while the broker was away can
/// fill it) is queued again as the connection makes progress: lost, it
/// would leave the bus deaf to its robots until the next reconnect.
#[derive(Clone)]
pub struct MqttLink {
    /// The client's request queue.
    client: Client,
    /// The topics the bus wants, and those not queued yet.
    subscriptions: Arc<Mutex<Subscriptions>>,
    /// Whether some subscription waits for room in the queue: read on
    /// every MQTT event, so the lock is taken only when there is work.
    waiting: Arc<AtomicBool>,
    /// Whether the connection is up.
    connected: Arc<AtomicBool>,
    /// Set on shutdown, so the connection thread stops reconnecting.
    stopping: Arc<AtomicBool>,
}

/// The topics the bus wants, and those of them whose subscription the
/// client's full request queue refused and that wait to be queued.
#[derive(Default)]
struct Subscriptions {
    wanted: BTreeSet<String>,
    unqueued: BTreeSet<String>,
}

/// Why a frame could not be handed to the client.
#[derive(Debug, thiserror::Error)]
#[error("the MQTT client refused the message: {0}")]
pub struct PublishError(String);

impl MqttLink {
    /// Connects to `broker` as `client_id` and starts the connection
    /// thread, which sends every inbound publish to `inbound` (blocking
    /// when the bus is behind: the broker then holds the messages).
    pub fn connect(
        broker: &BrokerAddress,
        client_id: &str,
        inbound: Sender<Inbound>,
    ) -> std::io::Result<Self> {
        let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
        options
            .set_keep_alive(Duration::from_secs(KEEP_ALIVE_S))
            .set_clean_session(true)
            .set_max_packet_size(PACKET_BYTES_MAX, PACKET_BYTES_MAX);
        let (client, mut connection) = Client::new(options, OUTBOUND_QUEUE_MAX);
        let link = Self {
            client,
            subscriptions: Arc::default(),
            waiting: Arc::default(),
            connected: Arc::default(),
            stopping: Arc::default(),
        };
        let thread_link = link.clone();
        let broker = broker.clone();
        std::thread::Builder::new().name("mqtt-link".into()).spawn(move || {
            let mut backoff_ms = RECONNECT_BACKOFF_MS_MIN;
            for notification in connection.iter() {
                if thread_link.waiting.load(Ordering::Acquire)
                    && notification.is_ok()
                    && thread_link.is_connected()
                {
                    thread_link.queue_unqueued();
                }
                match notification {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff_ms = RECONNECT_BACKOFF_MS_MIN;
                        thread_link.connected.store(true, Ordering::Release);
                        tracing::info!(%broker, "device bus connected");
                        thread_link.resubscribe();
                        if inbound.send(Inbound::Connected).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let frame = Inbound::Frame {
                            topic: publish.topic,
                            payload: publish.payload.to_vec(),
                        };
                        if inbound.send(frame).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        thread_link.connected.store(false, Ordering::Release);
                        if thread_link.stopping.load(Ordering::Acquire)
                            || matches!(error, ConnectionError::RequestsDone)
                        {
                            return;
                        }
                        tracing::warn!(%broker, %error, backoff_ms, "device bus disconnected; reconnecting");
                        std::thread::sleep(Duration::from_millis(backoff_ms));
                        backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
                    }
                }
            }
        })?;
        Ok(link)
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Queues a publish; refused at once when the queue is full.
    pub fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
    ) -> Result<(), PublishError> {
        self.client
            .try_publish(topic, qos_of(qos), retain, payload)
            .map_err(|error| PublishError(error.to_string()))
    }

    /// Subscribes to `topics` (at QoS 1: the publisher's QoS caps it) and
    /// remembers them for reconnects.
    pub fn subscribe(&self, topics: &[String]) {
        let mut subscriptions = self.lock_subscriptions();
        for topic in topics {
            if subscriptions.wanted.insert(topic.clone()) {
                self.queue_subscription(topic, &mut subscriptions.unqueued);
            }
        }
        self.note_unqueued(&subscriptions);
    }

    /// Unsubscribes from `topics`.
    pub fn unsubscribe(&self, topics: &[String]) {
        let mut subscriptions = self.lock_subscriptions();
        for topic in topics {
            if subscriptions.wanted.remove(topic) {
                subscriptions.unqueued.remove(topic);
                let _ = self.client.try_unsubscribe(topic.clone());
            }
        }
        self.set_waiting(&subscriptions);
    }

    /// Subscribes again to every wanted topic (after a reconnect).
    fn resubscribe(&self) {
        let mut subscriptions = self.lock_subscriptions();
        let Subscriptions { wanted, unqueued } = &mut *subscriptions;
        unqueued.clear();
        for topic in wanted.iter() {
            self.queue_subscription(topic, unqueued);
        }
        self.note_unqueued(&subscriptions);
    }

    /// Queues again the subscriptions the request queue refused before.
    fn queue_unqueued(&self) {
        let mut subscriptions = self.lock_subscriptions();
        for topic in std::mem::take(&mut subscriptions.unqueued) {
            self.queue_subscription(&topic, &mut subscriptions.unqueued);
        }
        self.set_waiting(&subscriptions);
    }

    fn lock_subscriptions(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.subscriptions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a subscription to `topic`, or notes it in `unqueued` when the
    /// request queue is full.
    fn queue_subscription(&self, topic: &str, unqueued: &mut BTreeSet<String>) {
        if self.client.try_subscribe(topic, QoS::AtLeastOnce).is_err() {
            unqueued.insert(topic.to_owned());
        }
    }

    /// Sets the waiting flag from `subscriptions`; whether some waits.
    fn set_waiting(&self, subscriptions: &Subscriptions) -> bool {
        let waiting = !subscriptions.unqueued.is_empty();
        self.waiting.store(waiting, Ordering::Release);
        waiting
    }

    /// Sets the waiting flag, with a warning when some subscription waits.
    fn note_unqueued(&self, subscriptions: &Subscriptions) {
        if self.set_waiting(subscriptions) {
            tracing::warn!(
                topics = subscriptions.unqueued.len(),
                "the MQTT request queue is full; subscriptions are queued as it drains"
            );
        }
    }

    /// Disconnects and stops the connection thread.
    pub fn close(&self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.client.try_disconnect();
    }
}

fn qos_of(qos: u8) -> QoS {
    if qos == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce }
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpListener};
    use std::time::Instant;

    use super::*;
    use crate::devices::EmbeddedBroker;

    #[test]
    fn a_subscription_refused_by_a_full_queue_is_made_once_the_queue_drains() {
        let address: SocketAddr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let broker = BrokerAddress { host: "127.0.0.1".into(), port: address.port() };
        let (inbound, frames) = crossbeam_channel::unbounded();
        let link = MqttLink::connect(&broker, "bus-under-test", inbound).unwrap();
        // The broker is away: publishes pile up until the queue is full,
        // and the subscription finds no room.
        let mut queued = 0;
        while link.publish("filler", b"x".to_vec(), 0, false).is_ok() {
            queued += 1;
        }
        assert!(queued <= OUTBOUND_QUEUE_MAX, "{queued} publishes queued");
        link.subscribe(&["robots/state".to_owned()]);
        assert!(!link.lock_subscriptions().unqueued.is_empty(), "the queue had room after all");

        let _broker = EmbeddedBroker::start(address).unwrap();
        // Its connection thread runs while its inbound channel is open.
        let (sender, _robot_frames) = crossbeam_channel::unbounded();
        let robot = MqttLink::connect(&broker, "robot-under-test", sender).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "the subscription was never made");
            // Until the subscription is made, these reach nobody.
            let _ = robot.publish("robots/state", b"idle".to_vec(), 0, false);
            match frames.recv_timeout(Duration::from_millis(100)) {
                Ok(Inbound::Frame { topic, payload }) => {
                    assert_eq!(
                        (topic.as_str(), payload.as_slice()),
                        ("robots/state", &b"idle"[..])
                    );
                    break;
                }
                Ok(Inbound::Connected) | Err(_) => {}
            }
        }
        link.close();
        robot.close();
    }
}
