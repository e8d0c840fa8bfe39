//! The MQTT broker `bazaar serve` embeds by default (rumqttd), so a node
//! with no configuration already has a device bus its robots can connect
//! to. An operator with a broker of their own (mosquitto, a cloud broker)
//! points the node at it instead and this is not started.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Largest MQTT payload the embedded broker accepts, in bytes. The largest
/// VDA 5050 message, a state with a long order, is tens of kilobytes; a
/// device publishing more is refused by the broker before the node reads
/// a byte of it.
pub const BROKER_PAYLOAD_BYTES_MAX: usize = 1024 * 1024;

/// Most client connections the embedded broker takes: a 500-vehicle fleet,
/// the node's own connection and monitoring tools, with room to spare.
pub const BROKER_CONNECTIONS_MAX: usize = 4096;

/// Most QoS 1 messages in flight to one client: bounds the broker's
/// memory per slow subscriber.
const BROKER_INFLIGHT_MAX: usize = 100;

/// How long a client may take to send CONNECT after opening the socket.
const BROKER_CONNECT_TIMEOUT_MS: u16 = 10_000;

/// How long [`EmbeddedBroker::start`] waits for the broker to listen.
const BROKER_START_TIMEOUT_MS: u64 = 10_000;

/// A running embedded broker. rumqttd has no shutdown: it serves until the
/// process exits, which is when a node's bus ends anyway.
#[derive(Debug)]
pub struct EmbeddedBroker {
    /// Where it listens.
    address: SocketAddr,
}

impl EmbeddedBroker {
    /// Starts the broker on `address` (MQTT 3.1.1) and returns once it
    /// accepts connections.
    pub fn start(address: SocketAddr) -> anyhow::Result<Self> {
        // Fails early and clearly when the port is taken, rather than in
        // the broker's thread.
        drop(
            TcpListener::bind(address)
                .with_context(|| format!("the MQTT port {address} is not free"))?,
        );
        let connections = ConnectionSettings {
            connection_timeout_ms: BROKER_CONNECT_TIMEOUT_MS,
            max_payload_size: BROKER_PAYLOAD_BYTES_MAX,
            max_inflight_count: BROKER_INFLIGHT_MAX,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        };
        let server = ServerSettings {
            name: "bazaar-mqtt".into(),
            listen: address,
            tls: None,
            next_connection_delay_ms: 0,
            connections,
        };
        let config = Config {
            id: 0,
            router: RouterConfig {
                max_connections: BROKER_CONNECTIONS_MAX,
                max_outgoing_packet_count: 200,
                max_segment_size: 16 * 1024 * 1024,
                max_segment_count: 10,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
            },
            v4: Some(HashMap::from([("1".to_owned(), server)])),
            ..Config::default()
        };
        let mut broker = Broker::new(config);
        std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                if let Err(error) = broker.start() {
                    tracing::error!(%error, "the embedded MQTT broker stopped");
                }
            })
            .context("starting the MQTT broker thread")?;
        let deadline = Instant::now() + Duration::from_millis(BROKER_START_TIMEOUT_MS);
        while std::net::TcpStream::connect(address).is_err() {
            if Instant::now() > deadline {
                anyhow::bail!("the embedded MQTT broker did not listen on {address}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self { address })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}
