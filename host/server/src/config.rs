//! How `bazaar serve` is configured: embedded defaults that work with no
//! configuration at all, overridden by a TOML file, then by environment
//! variables, then by flags (flag > env > file > default).
//!
//! Every setting has one name used three ways: `in_flight_max` in the file,
//! `BAZAAR_IN_FLIGHT_MAX` in the environment, `--in-flight-max` on the
//! command line. The binary parses flags and environment; this module reads
//! the file, merges, checks every value against its limit and fills in the
//! defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bazaar_node::devices::{BrokerAddress, BusSettings};
use bazaar_store::Backend;
use serde::Deserialize;

use crate::admission::{RATE_PER_SECOND_MAX, Rate};

/// The default port: Double 11.
pub const PORT_DEFAULT: u16 = 1111;
/// The default address: loopback only, so a fresh node is not exposed.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:1111";
/// The default data directory, relative to the working directory.
pub const DATA_DIR_DEFAULT: &str = "bazaar-data";
/// Default cap on requests being served at once. Well above the 1,024
/// connections of the largest benchmark, so only a real overload reaches
/// it; each request in flight holds a few KiB at most.
pub const IN_FLIGHT_MAX_DEFAULT: usize = 4_096;
/// Largest configurable in-flight cap.
pub const IN_FLIGHT_MAX_LIMIT: usize = 1_000_000;
/// Default cap on open connections: each holds a socket and a task, and the
/// default open-file limit of a process is often a few thousand.
pub const CONNECTIONS_MAX_DEFAULT: usize = 4_096;
/// Largest configurable connection cap.
pub const CONNECTIONS_MAX_LIMIT: usize = 1_000_000;
/// Largest configurable shard queue depth: a million queued orders is
/// seconds of work, beyond which queueing only adds latency.
pub const SHARD_QUEUE_DEPTH_LIMIT: usize = 1_000_000;
/// Largest configurable cap on the orders a node holds: a billion orders
/// would need well over a terabyte of memory.
pub const ORDERS_HELD_MAX_LIMIT: u64 = 1_000_000_000;
/// Most shards a new data directory may get: each is a writer thread, and
/// far more threads than cores only contend.
pub const SHARDS_LIMIT: u32 = 256;
/// Largest configuration file read: a real one is a few hundred bytes.
pub const CONFIG_FILE_BYTES_MAX: u64 = 64 * 1024;
/// The default port of the embedded MQTT broker: the standard MQTT port.
pub const MQTT_PORT_DEFAULT: u16 = 1883;
/// The default address of the embedded MQTT broker: loopback only, so a
/// fresh node takes no device traffic from the network until its operator
/// opens it.
pub const MQTT_LISTEN_DEFAULT: &str = "127.0.0.1:1883";
/// Longest configurable dispatch interval of the device bus: beyond ten
/// seconds a free robot idles visibly while tasks wait.
pub const BUS_DISPATCH_INTERVAL_MS_LIMIT: u64 = 10_000;
/// Shortest configurable job progress timeout: a robot crossing a large
/// warehouse reports nothing new for seconds; less than this would take
/// working robots' tasks away.
pub const BUS_JOB_PROGRESS_TIMEOUT_MS_MIN: u64 = 1_000;
/// Longest configurable job progress timeout: a task stuck on a silent
/// robot for more than an hour has lost its order's shipping slot anyway.
pub const BUS_JOB_PROGRESS_TIMEOUT_MS_LIMIT: u64 = 3_600_000;
/// Most commands per second one device may be sent: far above what any
/// vehicle controller acts on, low enough that a misconfigured node cannot
/// flood the broker on behalf of one device.
pub const BUS_DEVICE_COMMANDS_PER_SECOND_LIMIT: u32 = 1_000;

/// The resolved configuration of a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeConfig {
    /// Where to listen (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The data directory: journal, snapshots, registry, operator token.
    pub data_dir: PathBuf,
    /// The storage engine.
    pub backend: Backend,
    /// Shards of a new data directory (an existing one keeps its count).
    pub shards: u32,
    /// Depth of each shard's request queue.
    pub shard_queue_depth: usize,
    /// Most orders the node holds; more are refused with 507.
    pub orders_held_max: u64,
    /// Most requests served at once; more are refused with 503.
    pub in_flight_max: usize,
    /// Most open connections; more are answered 503 and closed at once.
    pub connections_max: usize,
    /// Rate limit of every request to one store's routes.
    pub store_rate: Rate,
    /// Rate limit of orders and cart prices per customer of a store.
    pub customer_rate: Rate,
    /// How the process writes its logs.
    pub log_format: LogFormat,
    /// Whether `GET /metrics` answers without a token. Off by default, so
    /// only an operator token reads the node's figures; a Prometheus
    /// scraper that cannot send a bearer token needs it on (and the port
    /// kept to the monitoring network).
    pub metrics_public: bool,
    /// The device bus: its broker, or none at all, and how it runs.
    pub devices: DeviceBusConfig,
}

/// Where the device bus finds its MQTT broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MqttBroker {
    /// No device bus at all (`mqtt_disabled`): devices can be registered
    /// but nothing drives them, and an emergency stop is refused.
    Disabled,
    /// The node starts its own broker listening here (`mqtt_listen`;
    /// port 0 picks a free port).
    Embedded(SocketAddr),
    /// The node connects to this broker and starts none (`mqtt_broker`).
    External(BrokerAddress),
}

/// How the device bus runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceBusConfig {
    /// Its broker.
    pub broker: MqttBroker,
    /// How often the bus rereads the floor and dispatches tasks, ms.
    pub dispatch_interval_ms: u64,
    /// A job that reports no progress for this long is taken back and its
    /// task offered to another robot, ms.
    pub job_progress_timeout_ms: u64,
    /// Commands per second one device may be sent (pauses and resumes are
    /// never held back).
    pub device_commands_per_second: u32,
}

impl DeviceBusConfig {
    /// The settings the bus is started with.
    pub fn settings(&self) -> BusSettings {
        BusSettings {
            dispatch_interval_ms: self.dispatch_interval_ms,
            job_progress_timeout_ms: self.job_progress_timeout_ms,
            device_commands_per_second: self.device_commands_per_second,
            ..BusSettings::default()
        }
    }
}

impl Default for DeviceBusConfig {
    fn default() -> Self {
        let settings = BusSettings::default();
        Self {
            broker: MqttBroker::Embedded(SocketAddr::from(([127, 0, 0, 1], MQTT_PORT_DEFAULT))),
            dispatch_interval_ms: settings.dispatch_interval_ms,
            job_progress_timeout_ms: settings.job_progress_timeout_ms,
            device_commands_per_second: settings.device_commands_per_second,
        }
    }
}

/// How the process writes its logs (to standard error).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => anyhow::bail!(
                "log format {:?} is not one of text, json",
                text.chars().take(32).collect::<String>()
            ),
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], PORT_DEFAULT)),
            data_dir: PathBuf::from(DATA_DIR_DEFAULT),
            backend: Backend::Redb,
            shards: bazaar_node::node::SHARD_COUNT_DEFAULT,
            shard_queue_depth: bazaar_node::node::SHARD_QUEUE_DEPTH_DEFAULT,
            orders_held_max: bazaar_node::node::ORDERS_HELD_MAX_DEFAULT,
            in_flight_max: IN_FLIGHT_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            store_rate: Rate::OFF,
            customer_rate: Rate::OFF,
            log_format: LogFormat::Text,
            metrics_public: false,
            devices: DeviceBusConfig::default(),
        }
    }
}

/// Settings from one source (file, environment or flags); `None` leaves the
/// setting to the next source down.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `listen`: address and port, e.g. `127.0.0.1:1111`.
    pub listen: Option<String>,
    /// `data_dir`: the data directory.
    pub data_dir: Option<PathBuf>,
    /// `backend`: `redb` (default) or `sled` (if built in).
    pub backend: Option<String>,
    /// `shards`: shards of a new data directory.
    pub shards: Option<u32>,
    /// `shard_queue_depth`: requests queued per shard before 503.
    pub shard_queue_depth: Option<usize>,
    /// `orders_held_max`: orders the node holds before new ones get 507.
    pub orders_held_max: Option<u64>,
    /// `in_flight_max`: requests served at once before 503.
    pub in_flight_max: Option<usize>,
    /// `connections_max`: open connections.
    pub connections_max: Option<usize>,
    /// `store_rate_per_second`: requests per second per store, 0 = off.
    pub store_rate_per_second: Option<u32>,
    /// `store_rate_burst`: burst per store (default: one second's worth).
    pub store_rate_burst: Option<u32>,
    /// `customer_rate_per_second`: orders and cart prices per second per
    /// customer, 0 = off.
    pub customer_rate_per_second: Option<u32>,
    /// `customer_rate_burst`: burst per customer (default: one second's worth).
    pub customer_rate_burst: Option<u32>,
    /// `log_format`: `text` (default) or `json`.
    pub log_format: Option<String>,
    /// `metrics_public`: serve `GET /metrics` without a token (default: false).
    pub metrics_public: Option<bool>,
    /// `mqtt_listen`: address and port of the embedded MQTT broker
    /// (default `127.0.0.1:1883`; port 0 picks a free port).
    pub mqtt_listen: Option<String>,
    /// `mqtt_broker`: `mqtt://host:port` of an external broker; when set,
    /// no broker is embedded and `mqtt_listen` is not used.
    pub mqtt_broker: Option<String>,
    /// `mqtt_disabled`: run without a device bus (default: false).
    pub mqtt_disabled: Option<bool>,
    /// `bus_dispatch_interval_ms`: how often the device bus dispatches
    /// tasks (default 50).
    pub bus_dispatch_interval_ms: Option<u64>,
    /// `bus_job_progress_timeout_ms`: how long a robot's job may report no
    /// progress before its task goes to another (default 120000).
    pub bus_job_progress_timeout_ms: Option<u64>,
    /// `bus_device_commands_per_second`: commands per second per device
    /// (default 10).
    pub bus_device_commands_per_second: Option<u32>,
}

impl Settings {
    /// Reads a TOML configuration file; unknown keys are an error, so a
    /// misspelt setting is not silently ignored.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let size = std::fs::metadata(path)
            .with_context(|| format!("reading configuration file {}", path.display()))?
            .len();
        anyhow::ensure!(
            size <= CONFIG_FILE_BYTES_MAX,
            "configuration file {} is {size} bytes; the limit is {CONFIG_FILE_BYTES_MAX}",
            path.display()
        );
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("configuration file {} is invalid", path.display()))
    }

    /// These settings, with every unset one taken from `lower`.
    pub fn over(self, lower: Settings) -> Settings {
        Settings {
            listen: self.listen.or(lower.listen),
            data_dir: self.data_dir.or(lower.data_dir),
            backend: self.backend.or(lower.backend),
            shards: self.shards.or(lower.shards),
            shard_queue_depth: self.shard_queue_depth.or(lower.shard_queue_depth),
            orders_held_max: self.orders_held_max.or(lower.orders_held_max),
            in_flight_max: self.in_flight_max.or(lower.in_flight_max),
            connections_max: self.connections_max.or(lower.connections_max),
            store_rate_per_second: self.store_rate_per_second.or(lower.store_rate_per_second),
            store_rate_burst: self.store_rate_burst.or(lower.store_rate_burst),
            customer_rate_per_second: self
                .customer_rate_per_second
                .or(lower.customer_rate_per_second),
            customer_rate_burst: self.customer_rate_burst.or(lower.customer_rate_burst),
            log_format: self.log_format.or(lower.log_format),
            metrics_public: self.metrics_public.or(lower.metrics_public),
            mqtt_listen: self.mqtt_listen.or(lower.mqtt_listen),
            mqtt_broker: self.mqtt_broker.or(lower.mqtt_broker),
            mqtt_disabled: self.mqtt_disabled.or(lower.mqtt_disabled),
            bus_dispatch_interval_ms: self
                .bus_dispatch_interval_ms
                .or(lower.bus_dispatch_interval_ms),
            bus_job_progress_timeout_ms: self
                .bus_job_progress_timeout_ms
                .or(lower.bus_job_progress_timeout_ms),
            bus_device_commands_per_second: self
                .bus_device_commands_per_second
                .or(lower.bus_device_commands_per_second),
        }
    }

    /// The configuration: these settings over the defaults, each checked.
    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let defaults = ServeConfig::default();
        let devices = self.device_bus(&defaults.devices)?;
        let listen = match self.listen {
            Some(text) => text.parse().with_context(|| {
                format!(
                    "listen address {text:?} is not an IP address and port such as {LISTEN_DEFAULT}"
                )
            })?,
            None => defaults.listen,
        };
        let log_format = match self.log_format {
            Some(text) => text.parse()?,
            None => defaults.log_format,
        };
        let backend = match self.backend {
            Some(name) => name.parse::<Backend>().map_err(|error| anyhow::anyhow!("{error}"))?,
            None => defaults.backend,
        };
        Ok(ServeConfig {
            listen,
            data_dir: self.data_dir.unwrap_or(defaults.data_dir),
            backend,
            shards: within("shards", self.shards, defaults.shards, 1, SHARDS_LIMIT)?,
            shard_queue_depth: within(
                "shard_queue_depth",
                self.shard_queue_depth,
                defaults.shard_queue_depth,
                1,
                SHARD_QUEUE_DEPTH_LIMIT,
            )?,
            orders_held_max: within(
                "orders_held_max",
                self.orders_held_max,
                defaults.orders_held_max,
                1,
                ORDERS_HELD_MAX_LIMIT,
            )?,
            in_flight_max: within(
                "in_flight_max",
                self.in_flight_max,
                defaults.in_flight_max,
                1,
                IN_FLIGHT_MAX_LIMIT,
            )?,
            connections_max: within(
                "connections_max",
                self.connections_max,
                defaults.connections_max,
                1,
                CONNECTIONS_MAX_LIMIT,
            )?,
            store_rate: rate("store_rate", self.store_rate_per_second, self.store_rate_burst)?,
            customer_rate: rate(
                "customer_rate",
                self.customer_rate_per_second,
                self.customer_rate_burst,
            )?,
            log_format,
            metrics_public: self.metrics_public.unwrap_or(defaults.metrics_public),
            devices,
        })
    }

    /// The device bus settings, each checked. Every address is checked
    /// even when the bus is disabled, so a typo is caught before the day
    /// the bus is switched on.
    fn device_bus(&self, defaults: &DeviceBusConfig) -> anyhow::Result<DeviceBusConfig> {
        let listen = match &self.mqtt_listen {
            Some(text) => text.parse().with_context(|| {
                format!(
                    "mqtt_listen {text:?} is not an IP address and port such as {MQTT_LISTEN_DEFAULT}"
                )
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], MQTT_PORT_DEFAULT)),
        };
        let external = match &self.mqtt_broker {
            Some(text) => Some(BrokerAddress::parse(text).map_err(|error| {
                anyhow::anyhow!(
                    "mqtt_broker is not a broker address such as mqtt://host:1883: {error}"
                )
            })?),
            None => None,
        };
        let broker = if self.mqtt_disabled.unwrap_or(false) {
            MqttBroker::Disabled
        } else if let Some(external) = external {
            MqttBroker::External(external)
        } else {
            MqttBroker::Embedded(listen)
        };
        Ok(DeviceBusConfig {
            broker,
            dispatch_interval_ms: within(
                "bus_dispatch_interval_ms",
                self.bus_dispatch_interval_ms,
                defaults.dispatch_interval_ms,
                1,
                BUS_DISPATCH_INTERVAL_MS_LIMIT,
            )?,
            job_progress_timeout_ms: within(
                "bus_job_progress_timeout_ms",
                self.bus_job_progress_timeout_ms,
                defaults.job_progress_timeout_ms,
                BUS_JOB_PROGRESS_TIMEOUT_MS_MIN,
                BUS_JOB_PROGRESS_TIMEOUT_MS_LIMIT,
            )?,
            device_commands_per_second: within(
                "bus_device_commands_per_second",
                self.bus_device_commands_per_second,
                defaults.device_commands_per_second,
                1,
                BUS_DEVICE_COMMANDS_PER_SECOND_LIMIT,
            )?,
        })
    }
}

fn within<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
) -> anyhow::Result<T> {
    let value = value.unwrap_or(default);
    anyhow::ensure!(value >= min && value <= max, "{name} must be {min} to {max}, got {value}");
    Ok(value)
}

fn rate(name: &str, per_second: Option<u32>, burst: Option<u32>) -> anyhow::Result<Rate> {
    let per_second = within(&format!("{name}_per_second"), per_second, 0, 0, RATE_PER_SECOND_MAX)?;
    if per_second == 0 {
        return Ok(Rate::OFF);
    }
    let burst = within(&format!("{name}_burst"), burst, per_second, 1, RATE_PER_SECOND_MAX)?;
    Ok(Rate { per_second, burst })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_configuration_gives_the_embedded_defaults() {
        let config = Settings::default().resolve().unwrap();
        assert_eq!(config, ServeConfig::default());
        assert_eq!(config.listen.to_string(), LISTEN_DEFAULT);
        assert_eq!(config.data_dir, PathBuf::from("bazaar-data"));
        assert!(!config.store_rate.is_on() && !config.customer_rate.is_on());
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(!config.metrics_public, "metrics need an operator token by default");
        assert_eq!(
            config.devices.broker,
            MqttBroker::Embedded(MQTT_LISTEN_DEFAULT.parse().unwrap()),
            "the node embeds a broker on loopback"
        );
    }

    #[test]
    fn an_external_broker_replaces_the_embedded_one_and_disabling_wins_over_both() {
        let file: Settings =
            toml::from_str("mqtt_listen = \"0.0.0.0:1884\"\nbus_dispatch_interval_ms = 20\n")
                .unwrap();
        let config = Settings::default().over(file.clone()).resolve().unwrap();
        assert_eq!(config.devices.broker, MqttBroker::Embedded("0.0.0.0:1884".parse().unwrap()));
        assert_eq!(config.devices.settings().dispatch_interval_ms, 20);
        let env = Settings {
            mqtt_broker: Some("mqtt://broker.local:1883".into()),
            ..Settings::default()
        };
        let config = env.clone().over(file.clone()).resolve().unwrap();
        assert_eq!(
            config.devices.broker,
            MqttBroker::External(BrokerAddress { host: "broker.local".into(), port: 1883 })
        );
        let flags = Settings { mqtt_disabled: Some(true), ..Settings::default() };
        let config = flags.over(env.over(file)).resolve().unwrap();
        assert_eq!(config.devices.broker, MqttBroker::Disabled);
    }

    #[test]
    fn malformed_broker_addresses_and_bus_settings_out_of_range_are_refused() {
        let error = Settings { mqtt_broker: Some("broker.local".into()), ..Settings::default() }
            .resolve()
            .unwrap_err();
        assert!(error.to_string().contains("mqtt_broker"), "{error}");
        let error = Settings {
            mqtt_listen: Some("localhost".into()),
            mqtt_disabled: Some(true),
            ..Settings::default()
        }
        .resolve()
        .unwrap_err();
        assert!(error.to_string().contains("mqtt_listen"), "{error}");
        let error = Settings { bus_job_progress_timeout_ms: Some(10), ..Settings::default() }
            .resolve()
            .unwrap_err();
        assert!(
            error.to_string().contains("bus_job_progress_timeout_ms must be 1000 to"),
            "{error}"
        );
    }

    #[test]
    fn logs_switch_to_json_and_metrics_open_up_only_when_asked() {
        let file: Settings =
            toml::from_str("log_format = \"json\"\nmetrics_public = true\n").unwrap();
        let config = Settings::default().over(file).resolve().unwrap();
        assert_eq!((config.log_format, config.metrics_public), (LogFormat::Json, true));
        let error = Settings { log_format: Some("xml".into()), ..Settings::default() }
            .resolve()
            .unwrap_err();
        assert!(error.to_string().contains("not one of text, json"), "{error}");
    }

    #[test]
    fn higher_sources_override_lower_ones_setting_by_setting() {
        let file: Settings = toml::from_str(
            "listen = \"127.0.0.1:2222\"\nin_flight_max = 64\ncustomer_rate_per_second = 5\n\
             orders_held_max = 1000\n",
        )
        .unwrap();
        let env = Settings { in_flight_max: Some(32), ..Settings::default() };
        let flags = Settings { listen: Some("127.0.0.1:0".into()), ..Settings::default() };
        let config = flags.over(env.over(file)).resolve().unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.in_flight_max, 32);
        assert_eq!(config.customer_rate, Rate { per_second: 5, burst: 5 });
        assert_eq!(config.orders_held_max, 1000);
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let error = toml::from_str::<Settings>("in_flight_maximum = 3\n").unwrap_err();
        assert!(error.to_string().contains("in_flight_maximum"), "{error}");
    }

    #[test]
    fn values_outside_their_limits_are_refused_with_the_limit() {
        let error =
            Settings { in_flight_max: Some(0), ..Settings::default() }.resolve().unwrap_err();
        assert!(error.to_string().contains("in_flight_max must be 1 to"), "{error}");
        let error =
            Settings { orders_held_max: Some(0), ..Settings::default() }.resolve().unwrap_err();
        assert!(error.to_string().contains("orders_held_max must be 1 to"), "{error}");
        let error = Settings { listen: Some("localhost".into()), ..Settings::default() }
            .resolve()
            .unwrap_err();
        assert!(error.to_string().contains("listen address"), "{error}");
    }
}
