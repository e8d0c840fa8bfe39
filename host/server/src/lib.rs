//! The Bazaar HTTP service: a JSON API under `/v1` over a [`Node`] and its
//! plugin platform, with bearer tokens and roles, an OpenAPI document
//! generated from the code, a page to browse it, and bounded admission.
//!
//! [`app`] builds the router over an [`AppState`] (testable without a
//! socket); [`serve`] opens a node from a [`ServeConfig`], starts the event
//! consumer of its analytics plugins and its device bus (with the embedded
//! MQTT broker unless the bus is disabled or uses an external broker),
//! listens, and shuts down gracefully on SIGINT or SIGTERM: it stops
//! accepting, ends the live streams, lets requests in flight finish, stops
//! the device bus and the consumer, then drops the node, which drains the
//! shard queues and flushes the journal.
//!
//! Handlers never block a tokio worker on the node: every node request is
//! queued with a callback bridged to a `oneshot` channel, and a full queue
//! is an immediate 503.

mod admission;
mod auth;
mod config;
mod console;
mod device_dto;
mod dto;
mod error;
mod extract;
mod listener;
mod metrics;
mod observe;
pub mod order_json;
mod platform_dto;
mod routes;
mod state;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bazaar_node::consumer::Consumers;
use bazaar_node::devices::{BrokerAddress, DeviceBus, EmbeddedBroker};
use bazaar_node::platform::Platform;
use bazaar_node::{Node, NodeConfig, PluginSet};

pub use admission::{RATE_LIMIT_KEYS_MAX, RATE_PER_SECOND_MAX, Rate};
pub use auth::{Permission, Role, TOKENS_MAX};
pub use config::{
    CONNECTIONS_MAX_DEFAULT, DATA_DIR_DEFAULT, DeviceBusConfig, IN_FLIGHT_MAX_DEFAULT,
    LISTEN_DEFAULT, LogFormat, MQTT_LISTEN_DEFAULT, MQTT_PORT_DEFAULT, MqttBroker, PORT_DEFAULT,
    ServeConfig, Settings,
};
pub use device_dto::{DEVICES_PAGE_LIMIT_DEFAULT, DEVICES_PAGE_LIMIT_MAX};
pub use error::{ApiError, OVERLOAD_RETRY_AFTER_S};
pub use extract::{
    BODY_BYTES_MAX, BODY_READ_TIMEOUT_MS, PLUGIN_UPLOAD_BYTES_MAX, PLUGIN_UPLOAD_READ_TIMEOUT_MS,
};
pub use listener::{
    IDLE_TIMEOUT_MS, LISTEN_BACKLOG, REFUSAL_DRAIN_BYTES_MAX, REFUSAL_LINGER_MS,
    REFUSALS_AT_ONCE_MAX,
};
pub use metrics::{HTTP_LATENCY_US_BUCKETS, METRICS_SCRAPES_MAX, ORDER_STAGES};
pub use routes::{
    IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER, LAYOUT_BODY_BYTES_MAX,
    LAYOUT_BODY_READ_TIMEOUT_MS, LIVE_INTERVAL_MS, LIVE_KEEP_ALIVE_MS, LIVE_QUERY,
    QUERY_PARAMETERS_MAX, QUERY_STRING_BYTES_MAX, openapi,
};
pub use state::{
    ANALYTICS_QUERIES_MAX, AppState, DeviceBusHandle, LAYOUT_UPLOADS_MAX, LIVE_STREAMS_MAX, Limits,
    MetricsAccess, OPERATOR_TOKEN_FILE, OperatorToken, PLUGIN_UPLOADS_MAX, QueryAdmission,
};

/// Longest time a graceful shutdown waits for requests in flight and for
/// the node to let go, before the process stops anyway: a request waits on
/// the node for milliseconds, so anything still running after this is stuck.
pub const SHUTDOWN_GRACE_MS: u64 = 10_000;

/// The router of the API over `state`.
pub fn app(state: AppState) -> axum::Router {
    routes::router(state)
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let node_config = NodeConfig {
        backend: config.backend,
        shard_count: config.shards,
        queue_depth: config.shard_queue_depth,
        orders_held_max: config.orders_held_max,
        ..NodeConfig::new(&config.data_dir)
    };
    let data_dir = config.data_dir.clone();
    // Opening replays the journal, then the platform loads every installed
    // plugin version (compiled artifacts from its cache): blocking work.
    // Replay never calls a plugin, so the node opens with an empty catalogue
    // that the platform fills before anything is served.
    let (node, platform, report) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let plugins = PluginSet::none();
        let node = Node::open(node_config, plugins.clone())
            .with_context(|| format!("opening data directory {}", data_dir.display()))?;
        let (platform, report) = Platform::open(node.storage().clone(), &data_dir, plugins)
            .with_context(|| format!("opening the plugin registry in {}", data_dir.display()))?;
        Ok((node, platform, report))
    })
    .await??;
    let node = Arc::new(node);
    // The consumer feeds committed events to the stores' analytics plugins
    // from the catalogue the platform keeps up to date.
    let consumers = Arc::new(
        Consumers::start(node.clone(), platform.plugins().clone())
            .context("starting the event consumer")?,
    );
    // The bus drives devices with the driver plugins of the same catalogue.
    let (devices, devices_line) =
        start_device_bus(&config.devices, node.clone(), platform.plugins().clone()).await?;
    let bus = devices.as_ref().map(|handle| handle.bus.clone());
    let metrics_access =
        if config.metrics_public { MetricsAccess::Public } else { MetricsAccess::Operator };
    let limits = Limits {
        in_flight_max: config.in_flight_max,
        store_rate: config.store_rate,
        customer_rate: config.customer_rate,
    };
    let data_dir = config.data_dir.clone();
    let (state, operator) = {
        let node = node.clone();
        let consumers = consumers.clone();
        let devices = devices.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let state = AppState::new(node, limits, platform, consumers, metrics_access, devices)?;
            let operator = state.ensure_operator_token(&data_dir)?;
            Ok((state, operator))
        })
        .await??
    };
    let listener =
        listener::bind(config.listen).with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        match &operator {
            OperatorToken::Created(path) => writeln!(
                out,
                "operator token: generated and written to {} (read it with `cat {}`)",
                path.display(),
                path.display()
            )?,
            OperatorToken::Existing(path) => writeln!(
                out,
                "operator token: in {} (written when this data directory was created)",
                path.display()
            )?,
        }
        writeln!(
            out,
            "data: {} ({}, {} shards, {} of at most {} orders held); API docs at http://{address}/docs",
            config.data_dir.display(),
            config.backend,
            node.shard_count(),
            node.orders_held().held(),
            node.orders_held().limit()
        )?;
        writeln!(
            out,
            "plugins: {} versions loaded ({} compiled artifacts from the cache) in {} ms",
            report.loaded, report.from_cache, report.elapsed_ms
        )?;
        for failure in &report.failed {
            tracing::warn!("plugin version not loaded, the node runs without it: {failure}");
        }
        writeln!(out, "{devices_line}")?;
        writeln!(out, "listening on http://{address}")?;
        out.flush()?;
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let streams = state.clone();
    let server = {
        let mut stopped = stopped.clone();
        let refused = state.http_metrics().connections_refused();
        let listener = listener::Bounded::new(listener, config.connections_max, refused);
        tokio::spawn(
            axum::serve(listener, app(state))
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .into_future(),
        )
    };
    let mut server = server;
    tokio::select! {
        result = &mut server => {
            result.context("the server task failed")?.context("serving")?;
            anyhow::bail!("the server stopped on its own");
        }
        signal = shutdown_signal() => {
            signal?;
        }
    }
    println!("stopping: finishing requests in flight");
    let _ = stop.send(true);
    // Live streams never end by themselves; the graceful shutdown waits
    // for every response, theirs included.
    streams.stop_live_streams();
    drop(streams);
    let grace = Duration::from_millis(SHUTDOWN_GRACE_MS);
    let deadline = Instant::now() + grace;
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => result.context("the server task failed")?.context("serving")?,
        Err(_) => {
            server.abort();
            tracing::warn!("requests still in flight after {SHUTDOWN_GRACE_MS} ms were dropped");
        }
    }
    // Connection tasks let go of their copies of the state as they finish.
    // The device bus stops first (it holds the node and may be journaling
    // a robot's step), then the consumer (it holds the node and may be
    // recording what it consumed); then the node is dropped (queues
    // drained, journal flushed) by its last owner.
    drop(devices);
    if let Some(bus) = bus {
        match sole_owner(bus, deadline).await {
            Some(bus) => tokio::task::spawn_blocking(move || bus.shutdown()).await?,
            None => tracing::warn!("the device bus was still in use at exit"),
        }
    }
    let node = match sole_owner(consumers, deadline).await {
        Some(consumers) => {
            tokio::task::spawn_blocking(move || consumers.stop()).await?;
            sole_owner(node, deadline).await
        }
        None => None,
    };
    match node {
        Some(node) => {
            tokio::task::spawn_blocking(move || node.shutdown()).await?;
            println!("stopped: journal flushed");
        }
        None => {
            tracing::warn!("the node was still in use at exit; acknowledged orders are durable")
        }
    }
    Ok(())
}

/// Starts the device bus `config` asks for over `node` with the driver
/// plugins of `plugins`, and first the embedded MQTT broker when the bus
/// uses it. Returns the bus (`None` when it is disabled) and the line
/// that tells the operator where its broker is.
async fn start_device_bus(
    config: &DeviceBusConfig,
    node: Arc<Node>,
    plugins: PluginSet,
) -> anyhow::Result<(Option<DeviceBusHandle>, String)> {
    let (broker, embedded, line) = match &config.broker {
        MqttBroker::Disabled => {
            let line = "device bus: disabled (mqtt_disabled); devices can be registered, nothing drives them";
            return Ok((None, line.to_string()));
        }
        MqttBroker::External(address) => {
            let line = format!("device bus: connecting to the external MQTT broker {address}");
            (address.clone(), false, line)
        }
        MqttBroker::Embedded(listen) => {
            let listen = *listen;
            // Binding and waiting for the broker to listen blocks.
            let started = tokio::task::spawn_blocking(move || {
                EmbeddedBroker::start(free_port_if_zero(listen)?)
            })
            .await??;
            let line = format!(
                "device bus: embedded MQTT broker listening on mqtt://{}",
                started.address()
            );
            (broker_for_local_clients(started.address()), true, line)
        }
    };
    let settings = config.settings();
    let address = broker.clone();
    let bus =
        tokio::task::spawn_blocking(move || DeviceBus::start(node, plugins, &address, settings))
            .await?
            .with_context(|| format!("starting the device bus on {broker}"))?;
    let handle = DeviceBusHandle { bus: Arc::new(bus), broker: broker.to_string(), embedded };
    Ok((Some(handle), line))
}

/// `address` itself, or with port 0 the same address on a port that was
/// free a moment ago: the embedded broker must know its port before it
/// listens, so a port is picked by binding and letting go of it. Another
/// process taking the port in between makes the broker's start fail and
/// say so.
fn free_port_if_zero(address: SocketAddr) -> anyhow::Result<SocketAddr> {
    if address.port() != 0 {
        return Ok(address);
    }
    let probe = std::net::TcpListener::bind(address)
        .with_context(|| format!("finding a free MQTT port on {}", address.ip()))?;
    Ok(probe.local_addr()?)
}

/// Where the node's own client reaches a broker listening on `listen`:
/// loopback when it listens on every interface.
fn broker_for_local_clients(listen: SocketAddr) -> BrokerAddress {
    let host = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
        IpAddr::V6(ip) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.to_string(),
        ip => ip.to_string(),
    };
    BrokerAddress { host, port: listen.port() }
}

/// `shared` itself once every other owner let go of it, or `None` if some
/// still hold it at `deadline`.
async fn sole_owner<T>(mut shared: Arc<T>, deadline: Instant) -> Option<T> {
    loop {
        match Arc::try_unwrap(shared) {
            Ok(owned) => return Some(owned),
            Err(still_shared) if Instant::now() < deadline => {
                shared = still_shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => return None,
        }
    }
}

/// Runs [`serve`] on a multi-threaded runtime of its own.
pub fn serve_blocking(config: ServeConfig) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bazaar-http")
        .build()
        .context("starting the async runtime")?
        .block_on(serve(config))
}

/// Resolves when SIGINT or SIGTERM arrives.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
