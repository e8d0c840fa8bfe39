//! What every handler shares (node, plugin platform, event consumer,
//! device bus, tokens, limits, metrics) and the bridge from the node's
//! callbacks to async handlers.
//!
//! The node never blocks its caller: each request is queued with a callback
//! (or refused at once when the shard's queue is full), and the callback
//! completes a `oneshot` channel the handler awaits. No tokio worker thread
//! ever waits on a shard.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use axum::http::StatusCode;
use bazaar_kernel::model::{OrderRequest, PluginId, StoreId};
use bazaar_kernel::money::Currency;
use bazaar_kernel::{Command, Outcome, Shard};
use bazaar_node::consumer::Consumers;
use bazaar_node::devices::{DeviceBus, DeviceStatus};
use bazaar_node::platform::{Platform, PlatformError};
use bazaar_node::{Node, NodeError, Preview};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};

use crate::admission::{Rate, RateLimits};
use crate::auth::{Role, TokenBook, TokenRequest};
use crate::error::ApiError;
use crate::metrics::{DeviceScrape, HttpMetrics, METRICS_SCRAPES_MAX, Scrape, whole_micros};

/// Name of the file, in the data directory, that holds the first operator
/// token (readable by its owner only).
pub const OPERATOR_TOKEN_FILE: &str = "operator-token";

/// Most plugin uploads handled at once. Each holds its body (up to
/// `PLUGIN_UPLOAD_BYTES_MAX`, about 90 MB) and its decoded component in
/// memory and then compiles it, which takes both of a small machine's cores
/// for seconds; two at once bound that to a few hundred megabytes, and
/// installs are rare operator or partner actions that can retry.
pub const PLUGIN_UPLOADS_MAX: usize = 2;

/// Most analytics queries running at once. A query runs on the blocking
/// pool and waits for the consumer's lock on the store's plugin instance,
/// so queries beyond a few at once only hold threads while they wait; more
/// are refused with 503 (a live stream waits for its turn instead).
pub const ANALYTICS_QUERIES_MAX: usize = 8;

/// Most live analytics streams open at once. Each asks its store's
/// headline every `LIVE_INTERVAL_MS` (two queries a second, each a fraction
/// of a millisecond of plugin time) and holds a connection: 64 dashboards
/// cost well under a tenth of a core. More are refused with 503.
pub const LIVE_STREAMS_MAX: usize = 64;

/// Most warehouse layouts being uploaded at once. A layout body may be
/// up to `LAYOUT_BODY_BYTES_MAX` (16 MiB) and is held twice while it is
/// parsed and checked; four at once bound that to about 128 MiB, and maps
/// change a few times a day, so a fifth upload can retry.
pub const LAYOUT_UPLOADS_MAX: usize = 4;

/// A running device bus and its broker, as the API reaches them.
#[derive(Clone)]
pub struct DeviceBusHandle {
    /// The bus.
    pub bus: Arc<DeviceBus>,
    /// Its broker as the node's own client reaches it, `mqtt://host:port`.
    pub broker: String,
    /// Whether the node itself runs that broker.
    pub embedded: bool,
}

impl std::fmt::Debug for DeviceBusHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBusHandle")
            .field("broker", &self.broker)
            .field("embedded", &self.embedded)
            .finish_non_exhaustive()
    }
}

/// Who may read `GET /metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Operator tokens only (the default).
    Operator,
    /// Anyone who reaches the port, as a Prometheus scraper without a
    /// token needs.
    Public,
}

/// Whether an analytics query waits for a free slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryAdmission {
    /// Refused at once with 503 when [`ANALYTICS_QUERIES_MAX`] run already:
    /// a client's request.
    Refuse,
    /// Waits (without holding a thread) for a slot: a live stream's next
    /// event, which is bounded by [`LIVE_STREAMS_MAX`].
    Wait,
}

/// The limits an [`AppState`] enforces.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most requests served at once.
    pub in_flight_max: usize,
    /// Rate of every request to one store's routes.
    pub store_rate: Rate,
    /// Rate of orders and cart prices per customer of a store.
    pub customer_rate: Rate,
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The shared parts.
    shared: Arc<Shared>,
}

/// The parts of [`AppState`].
struct Shared {
    /// The node.
    node: Arc<Node>,
    /// Every bearer token.
    tokens: TokenBook,
    /// Permits for requests in flight.
    in_flight: Arc<Semaphore>,
    /// The number of permits.
    in_flight_max: usize,
    /// Rate limits.
    rate_limits: RateLimits,
    /// The plugin platform: registry, marketplace, version controls.
    platform: Platform,
    /// Permits for plugin uploads in progress.
    uploads: Arc<Semaphore>,
    /// Each store's currency, remembered once seen: it never changes after
    /// the store is created, so checking an order's currency needs no read.
    /// One entry per store, and only operators create stores.
    currencies: RwLock<HashMap<StoreId, Currency>>,
    /// The event consumer feeding the stores' analytics plugins; it also
    /// answers their queries.
    consumers: Arc<Consumers>,
    /// Permits for analytics queries running.
    analytics_queries: Arc<Semaphore>,
    /// Permits for open live streams.
    live_streams: Arc<Semaphore>,
    /// Set when the server stops: live streams end, rather than hold the
    /// graceful shutdown open until its grace runs out.
    streams_stop: watch::Sender<bool>,
    /// Requests and latency per route.
    http_metrics: HttpMetrics,
    /// Who may read `GET /metrics`.
    metrics_access: MetricsAccess,
    /// Permits for scrapes in progress.
    scrapes: Arc<Semaphore>,
    /// The device bus, unless the node runs without one.
    devices: Option<DeviceBusHandle>,
    /// Permits for warehouse layout uploads in progress.
    layout_uploads: Arc<Semaphore>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("in_flight_max", &self.shared.in_flight_max).finish()
    }
}

/// Where the operator can find a token at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorToken {
    /// A first operator token was generated and written to this file.
    Created(PathBuf),
    /// Operator tokens exist already; the first one was written to this file
    /// (which may have been removed since).
    Existing(PathBuf),
}

impl AppState {
    /// State over `node`, its plugin `platform`, the event `consumers` of
    /// its analytics plugins and its device bus (`None`: the node runs
    /// without one), loading the tokens from the node's registry. Reads
    /// storage: call at start-up.
    pub fn new(
        node: Arc<Node>,
        limits: Limits,
        platform: Platform,
        consumers: Arc<Consumers>,
        metrics_access: MetricsAccess,
        devices: Option<DeviceBusHandle>,
    ) -> anyhow::Result<Self> {
        let tokens = TokenBook::load(node.storage().clone())?;
        let in_flight_max = limits.in_flight_max.max(1);
        let (streams_stop, _) = watch::channel(false);
        Ok(Self {
            shared: Arc::new(Shared {
                node,
                tokens,
                in_flight: Arc::new(Semaphore::new(in_flight_max)),
                in_flight_max,
                rate_limits: RateLimits::new(limits.store_rate, limits.customer_rate),
                platform,
                uploads: Arc::new(Semaphore::new(PLUGIN_UPLOADS_MAX)),
                currencies: RwLock::new(HashMap::new()),
                consumers,
                analytics_queries: Arc::new(Semaphore::new(ANALYTICS_QUERIES_MAX)),
                live_streams: Arc::new(Semaphore::new(LIVE_STREAMS_MAX)),
                streams_stop,
                http_metrics: HttpMetrics::new(&crate::routes::operations()),
                metrics_access,
                scrapes: Arc::new(Semaphore::new(METRICS_SCRAPES_MAX)),
                devices,
                layout_uploads: Arc::new(Semaphore::new(LAYOUT_UPLOADS_MAX)),
            }),
        })
    }

    /// Generates an operator token when there is none, writing its secret to
    /// `<data_dir>/operator-token` (mode 0600); says where to find it.
    /// Blocks on storage: call at start-up.
    pub fn ensure_operator_token(&self, data_dir: &Path) -> anyhow::Result<OperatorToken> {
        let path = data_dir.join(OPERATOR_TOKEN_FILE);
        if self.shared.tokens.has_operator() {
            return Ok(OperatorToken::Existing(path));
        }
        let (_, secret) = self
            .shared
            .tokens
            .issue(TokenRequest {
                role: Role::Operator,
                stores: Vec::new(),
                plugins: Vec::new(),
                label: "first operator token, generated at start-up".into(),
            })
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        write_secret_file(&path, &secret)?;
        Ok(OperatorToken::Created(path))
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    /// The tokens.
    pub fn tokens(&self) -> &TokenBook {
        &self.shared.tokens
    }

    /// The rate limits.
    pub fn rate_limits(&self) -> &RateLimits {
        &self.shared.rate_limits
    }

    /// The in-flight permits.
    pub fn in_flight(&self) -> &Arc<Semaphore> {
        &self.shared.in_flight
    }

    /// The in-flight cap.
    pub fn in_flight_max(&self) -> usize {
        self.shared.in_flight_max
    }

    /// The plugin upload permits.
    pub fn uploads(&self) -> &Arc<Semaphore> {
        &self.shared.uploads
    }

    /// The warehouse layout upload permits.
    pub fn layout_uploads(&self) -> &Arc<Semaphore> {
        &self.shared.layout_uploads
    }

    /// The device bus, unless the node runs without one.
    pub fn devices(&self) -> Option<&DeviceBusHandle> {
        self.shared.devices.as_ref()
    }

    /// Every device the bus knows with its telemetry, sorted by store and
    /// device; empty when the node runs without a bus.
    pub fn fleet(&self) -> Arc<Vec<DeviceStatus>> {
        self.shared.devices.as_ref().map(|handle| handle.bus.fleet()).unwrap_or_default()
    }

    /// Runs `work` on the plugin platform off the async reactor: platform
    /// calls read and write the registry's storage, and installs compile.
    pub async fn platform<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Platform) -> Result<T, PlatformError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let platform = self.shared.platform.clone();
        tokio::task::spawn_blocking(move || work(&platform))
            .await
            .map_err(|error| ApiError::internal(format!("a plugin platform task failed: {error}")))?
            .map_err(ApiError::from)
    }

    /// Asks `plugin`, as `store` enabled it, the query `name` with
    /// `arguments_json` (a JSON object) on the blocking pool; its answer as
    /// JSON.
    pub async fn ask_analytics(
        &self,
        store: StoreId,
        plugin: PluginId,
        name: String,
        arguments_json: String,
        admission: QueryAdmission,
    ) -> Result<serde_json::Value, ApiError> {
        let permits = self.shared.analytics_queries.clone();
        let permit: OwnedSemaphorePermit = match admission {
            QueryAdmission::Refuse => permits.try_acquire_owned().map_err(|_| {
                ApiError::overloaded(format!(
                    "{ANALYTICS_QUERIES_MAX} analytics queries are running already; retry shortly"
                ))
            })?,
            QueryAdmission::Wait => permits
                .acquire_owned()
                .await
                .map_err(|_| ApiError::from(NodeError::ShuttingDown))?,
        };
        let consumers = self.shared.consumers.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let answer = consumers.query(&store, &plugin, &name, &arguments_json);
            drop(permit);
            answer
        })
        .await
        .map_err(|error| {
            ApiError::internal(format!("an analytics query task failed: {error}"))
        })??;
        // The runtime checked that the answer is JSON; parsing it again
        // sends it as a document, in one line whatever its layout.
        serde_json::from_str(&answer).map_err(|error| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "plugin_failed",
                format!("the plugin's answer is not JSON: {error}"),
            )
        })
    }

    /// The live stream permits.
    pub fn live_streams(&self) -> &Arc<Semaphore> {
        &self.shared.live_streams
    }

    /// Tells when the server stops (the value turns true).
    pub fn streams_stopping(&self) -> watch::Receiver<bool> {
        self.shared.streams_stop.subscribe()
    }

    /// Ends every live stream, now and from now on.
    pub fn stop_live_streams(&self) {
        self.shared.streams_stop.send_replace(true);
    }

    /// The per-route HTTP counters.
    pub fn http_metrics(&self) -> &HttpMetrics {
        &self.shared.http_metrics
    }

    /// Who may read `GET /metrics`.
    pub fn metrics_access(&self) -> MetricsAccess {
        self.shared.metrics_access
    }

    /// The scrape permits.
    pub fn scrapes(&self) -> &Arc<Semaphore> {
        &self.shared.scrapes
    }

    /// Copies every figure `GET /metrics` reports but the HTTP counters,
    /// off the reactor: the platform and the consumer keep theirs behind
    /// locks.
    pub async fn scrape(&self) -> Result<Scrape, ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let shared = &state.shared;
            let stats = shared.node.stats();
            Scrape {
                orders_placed: stats.orders_placed.load(Ordering::Relaxed),
                orders_duplicate: stats.orders_duplicate.load(Ordering::Relaxed),
                commands_refused: stats.refused.load(Ordering::Relaxed),
                journal: shared.node.journal().stats(),
                queue_depths: shared.node.queue_depths(),
                orders_held: (shared.node.orders_held().held(), shared.node.orders_held().limit()),
                plugin_counters: shared.platform.call_counters(None),
                breakers: shared.platform.breakers(None),
                consumer_lag: shared.consumers.lag(),
                requests_in_flight: shared
                    .in_flight_max
                    .saturating_sub(shared.in_flight.available_permits()),
                live_streams: LIVE_STREAMS_MAX
                    .saturating_sub(shared.live_streams.available_permits()),
                devices: shared.devices.as_ref().map(|handle| DeviceScrape::of(&handle.bus)),
            }
        })
        .await
        .map_err(|error| ApiError::internal(format!("a metrics task failed: {error}")))
    }

    /// Remembers a store's currency.
    pub fn remember_currency(&self, store: &StoreId, currency: Currency) {
        let mut currencies = self.shared.currencies.write().unwrap_or_else(PoisonError::into_inner);
        currencies.entry(store.clone()).or_insert(currency);
    }

    /// A store's currency: remembered, or read once from its shard.
    pub async fn store_currency(&self, store: &StoreId) -> Result<Currency, ApiError> {
        let known = self
            .shared
            .currencies
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(store)
            .copied();
        if let Some(currency) = known {
            return Ok(currency);
        }
        let id = store.clone();
        let currency = self
            .read(store, move |shard| shard.store(&id).map(|state| state.currency()))
            .await?
            .ok_or_else(|| {
                ApiError::from(bazaar_kernel::KernelError::UnknownStore(store.to_string()))
            })?;
        self.remember_currency(store, currency);
        Ok(currency)
    }

    /// Runs `read` on the shard owning `store`.
    pub async fn read<T: Send + 'static>(
        &self,
        store: &StoreId,
        read: impl FnOnce(&Shard) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (sender, receiver) = oneshot::channel();
        self.node().submit_read(
            store,
            Box::new(move |shard| {
                let _ = sender.send(read(shard));
            }),
        )?;
        receiver.await.map_err(|_| NodeError::ShuttingDown.into())
    }

    /// Runs `read` on every shard and collects the results.
    pub async fn read_all<T: Send + 'static>(
        &self,
        read: impl Fn(&Shard) -> T + Send + Sync + 'static,
    ) -> Result<Vec<T>, ApiError> {
        let read = Arc::new(read);
        let mut receivers = Vec::new();
        self.node().submit_read_all(|_| {
            let (sender, receiver) = oneshot::channel();
            receivers.push(receiver);
            let read = read.clone();
            Box::new(move |shard| {
                let _ = sender.send(read(shard));
            })
        })?;
        let mut results = Vec::with_capacity(receivers.len());
        for receiver in receivers {
            results.push(receiver.await.map_err(|_| ApiError::from(NodeError::ShuttingDown))?);
        }
        Ok(results)
    }

    /// Applies `command`; once it is durable, returns its outcome and what
    /// `view` saw right after it was applied.
    pub async fn execute<T: Send + 'static>(
        &self,
        command: Command,
        view: impl FnOnce(&Shard, &Outcome) -> T + Send + 'static,
    ) -> Result<(Outcome, T), ApiError> {
        let (after, viewed) = after_apply(view);
        let (reply, replied) = reply();
        self.node().submit_command_then(command, after, reply)?;
        let (outcome, (view, _applied), _durable) = settle(replied, viewed).await?;
        Ok((outcome, view))
    }

    /// Places an order; once it is durable, returns the outcome and what
    /// `view` saw right after it was placed. Counts the order's time in
    /// each of its stages (see [`crate::metrics::ORDER_STAGES`]).
    pub async fn place_order<T: Send + 'static>(
        &self,
        store: StoreId,
        request: OrderRequest,
        view: impl FnOnce(&Shard, &Outcome) -> T + Send + 'static,
    ) -> Result<(Outcome, T), ApiError> {
        let submitted = Instant::now();
        let (after, viewed) = after_apply(view);
        let (reply, replied) = reply();
        self.node().submit_order_then(store, request, after, reply)?;
        let (outcome, (view, applied), durable) = settle(replied, viewed).await?;
        let micros = |from: Instant, to: Instant| whole_micros(to.saturating_duration_since(from));
        self.http_metrics().record_order_stages([
            micros(submitted, applied),
            micros(applied, durable),
            micros(durable, Instant::now()),
        ]);
        Ok((outcome, view))
    }

    /// Prices and routes an order without placing it.
    pub async fn preview(
        &self,
        store: StoreId,
        request: OrderRequest,
    ) -> Result<Preview, ApiError> {
        let (sender, receiver) = oneshot::channel();
        self.node().submit_preview(
            store,
            request,
            Box::new(move |result| {
                let _ = sender.send(result);
            }),
        )?;
        Ok(receiver.await.map_err(|_| NodeError::ShuttingDown)??)
    }
}

/// What a change's `view` saw on the writer, and when it ran there.
type Viewed<T> = oneshot::Receiver<(T, Instant)>;
/// The node's answer once the change is durable, and when it came.
type Replied = oneshot::Receiver<(Result<Outcome, NodeError>, Instant)>;

fn after_apply<T: Send + 'static>(
    view: impl FnOnce(&Shard, &Outcome) -> T + Send + 'static,
) -> (bazaar_node::AfterApply, Viewed<T>) {
    let (sender, receiver) = oneshot::channel();
    let after: bazaar_node::AfterApply = Box::new(move |shard, outcome| {
        let _ = sender.send((view(shard, outcome), Instant::now()));
    });
    (after, receiver)
}

fn reply() -> (bazaar_node::Reply, Replied) {
    let (sender, receiver) = oneshot::channel();
    let reply: bazaar_node::Reply = Box::new(move |result| {
        let _ = sender.send((result, Instant::now()));
    });
    (reply, receiver)
}

/// The outcome, the view with when it was taken, and when the change was
/// durable.
async fn settle<T>(
    replied: Replied,
    viewed: Viewed<T>,
) -> Result<(Outcome, (T, Instant), Instant), ApiError> {
    let (outcome, durable) = replied.await.map_err(|_| NodeError::ShuttingDown)?;
    let outcome = outcome?;
    // The view ran before the reply (on the writer, at apply time), so it
    // is there whenever the reply says the change was applied.
    let view = viewed
        .await
        .map_err(|_| ApiError::internal("the node acknowledged a change without showing it"))?;
    Ok((outcome, view, durable))
}

/// Writes a secret to a new file readable by its owner only, replacing any
/// older file atomically.
fn write_secret_file(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let partial = path.with_extension("partial");
    // A leftover from an interrupted start would keep its old mode.
    let _ = std::fs::remove_file(&partial);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&partial)
        .map_err(|error| anyhow::anyhow!("writing {}: {error}", partial.display()))?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
        .map_err(|error| anyhow::anyhow!("writing {}: {error}", path.display()))?;
    Ok(())
}
