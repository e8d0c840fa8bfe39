//! Prometheus metrics at `GET /metrics`, in the text exposition format
//! 0.0.4, written by hand: the node's order and command counters, the
//! journal's commit latency and batch sizes, the shard queue depths, each
//! plugin version's calls, failures and traps, open circuit breakers, the
//! analytics consumers' lag, the device bus's traffic, tasks and fleet,
//! and requests and latency per HTTP route.
//!
//! The HTTP counters are updated on every request's path, so they are
//! sharded by thread: a thread adds to its own shard's relaxed atomics (no
//! lock, and two threads rarely share a cache line), and a scrape sums the
//! shards. Routes are numbered once, from the API document that the router
//! is built from, so a request finds its counters with one hash lookup of
//! its matched path template.
//!
//! Everything else is read when scraped, from counters the node keeps
//! anyway; a scrape costs a few locks held for microseconds, off the
//! reactor, and at most [`METRICS_SCRAPES_MAX`] run at once.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::Method;
use bazaar_node::consumer::ConsumerLag;
use bazaar_node::devices::DeviceBus;
use bazaar_node::platform::{BreakerView, CounterView};
use bazaar_store::{HistogramSnapshot, JournalStats};

/// The `Content-Type` of the exposition format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Most scrapes served at once: a scraper asks every few seconds, so more
/// than a handful at once is a misconfigured or hostile client, and each
/// one copies every counter into a fresh text of some kilobytes.
pub const METRICS_SCRAPES_MAX: usize = 4;

/// Upper bounds of the HTTP latency buckets, in microseconds (a last,
/// unbounded bucket follows): from an answer straight from memory to a
/// request stuck behind a saturated shard.
pub const HTTP_LATENCY_US_BUCKETS: [u64; 13] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];

/// The stages of a placed order's time in the node, as the handler that
/// placed it saw them, by their label in `bazaar_order_stage_seconds`:
/// - `shard`: from its submission until the shard writer applied it: the
///   wait in the shard's queue, then the plugin calls and the kernel work
///   of the orders before it in its batch and of its own;
/// - `journal`: from then until its journal commit was durable: the rest
///   of its batch, the wait for the commit under way, and its own;
/// - `reply`: from then until the handler ran again on an HTTP thread to
///   write the answer.
///
/// Each stage's share tells an operator what to look at when orders are
/// slow: the plugins and the shard count, the disk, or the HTTP threads.
pub const ORDER_STAGES: [&str; 3] = ["shard", "journal", "reply"];

/// Shards of the HTTP counters: more than the worker threads of a small
/// machine, so two threads seldom add to the same one; each shard costs
/// about 400 bytes per route.
const SHARDS: usize = 8;

/// The statuses counted under their own code: every status the API
/// answers with, and the common ones of HTTP besides. Anything else is
/// counted as `status="other"`.
const STATUS_CODES: [u16; 32] = [
    200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 405, 406, 408, 409, 410, 411, 412, 413,
    414, 415, 416, 422, 425, 429, 431, 500, 501, 502, 503, 504, 507,
];

/// One more slot than [`STATUS_CODES`]: the one of every other status.
const STATUS_SLOTS: usize = STATUS_CODES.len() + 1;

/// The methods the API routes use, in the order of a route's slots.
const METHODS: [Method; 5] =
    [Method::GET, Method::PUT, Method::POST, Method::DELETE, Method::PATCH];

/// The route label of requests that matched no route (404 and 405).
const UNMATCHED_ROUTE: &str = "unmatched";
/// The method label of the two catch-all routes, which count every method.
const ANY_METHOD: &str = "any";
/// The route label of requests to routes outside the API document (such as
/// the console's static files), or with a method it does not list.
const OTHER_ROUTE: &str = "other";

/// The slot of `status` among [`STATUS_CODES`], or the last slot.
fn status_slot(status: u16) -> usize {
    STATUS_CODES.iter().position(|&code| code == status).unwrap_or(STATUS_CODES.len())
}

/// The slot of `method` among [`METHODS`].
fn method_slot(method: &Method) -> Option<usize> {
    METHODS.iter().position(|known| known == method)
}

/// `duration` in whole microseconds, as the latency histograms count it.
pub(crate) fn whole_micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// One latency histogram over [`HTTP_LATENCY_US_BUCKETS`] in one shard.
struct LatencyCells {
    /// Observations per bucket, not cumulative.
    buckets: [AtomicU64; HTTP_LATENCY_US_BUCKETS.len() + 1],
    /// Sum of every observation, in microseconds.
    sum_us: AtomicU64,
}

impl LatencyCells {
    fn new() -> Self {
        Self { buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum_us: AtomicU64::new(0) }
    }

    fn observe(&self, latency_us: u64) {
        let bucket = HTTP_LATENCY_US_BUCKETS.partition_point(|&bound| bound < latency_us);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(latency_us, Ordering::Relaxed);
    }

    /// Adds this shard's counts to `totals`.
    fn add_to(&self, totals: &mut LatencyTotals) {
        for (total, cell) in totals.counts.iter_mut().zip(&self.buckets) {
            *total += cell.load(Ordering::Relaxed);
        }
        totals.sum_us += self.sum_us.load(Ordering::Relaxed);
    }
}

/// One latency histogram summed over the shards.
#[derive(Clone, Copy, Default)]
struct LatencyTotals {
    counts: [u64; HTTP_LATENCY_US_BUCKETS.len() + 1],
    sum_us: u64,
}

impl LatencyTotals {
    fn is_empty(&self) -> bool {
        self.counts.iter().all(|&count| count == 0)
    }

    fn buckets(&self) -> Buckets<'_> {
        Buckets {
            upper_bounds: &HTTP_LATENCY_US_BUCKETS,
            counts: &self.counts,
            sum: self.sum_us,
            unit: Unit::MicrosecondsAsSeconds,
        }
    }
}

/// The counters of one route in one shard.
#[repr(align(64))]
struct RouteCells {
    /// Responses per status slot.
    responses: [AtomicU64; STATUS_SLOTS],
    /// Its requests' latency.
    latency: LatencyCells,
}

impl RouteCells {
    fn new() -> Self {
        Self { responses: std::array::from_fn(|_| AtomicU64::new(0)), latency: LatencyCells::new() }
    }
}

/// The time placed orders spent in each of [`ORDER_STAGES`], in one shard.
#[repr(align(64))]
struct OrderStageCells([LatencyCells; ORDER_STAGES.len()]);

/// Requests and latency per HTTP route, status and method, and the stages
/// of the orders placed through the API.
pub struct HttpMetrics {
    /// Each route's labels: method and path template, then the two
    /// catch-alls ([`OTHER_ROUTE`], [`UNMATCHED_ROUTE`]).
    labels: Vec<(String, String)>,
    /// Route numbers by path template, one slot per method of [`METHODS`].
    by_template: HashMap<String, [Option<usize>; METHODS.len()]>,
    /// The counters: `SHARDS` rows of one [`RouteCells`] per route.
    shards: Box<[Box<[RouteCells]>]>,
    /// The order stages, one [`OrderStageCells`] per shard.
    order_stages: Box<[OrderStageCells]>,
    /// Connections answered 503 at once for want of a connection slot;
    /// the listener counts them.
    connections_refused: Arc<AtomicU64>,
}

impl HttpMetrics {
    /// Counters for `operations`, each a method and a path template as the
    /// router matches it (`/v1/stores/{store}/orders`).
    pub fn new(operations: &[(Method, String)]) -> Self {
        let mut labels = Vec::with_capacity(operations.len() + 2);
        let mut by_template: HashMap<String, [Option<usize>; METHODS.len()]> = HashMap::new();
        for (method, template) in operations {
            let Some(slot) = method_slot(method) else { continue };
            let slots = by_template.entry(template.clone()).or_default();
            if slots[slot].is_none() {
                slots[slot] = Some(labels.len());
                labels.push((method.as_str().to_string(), template.clone()));
            }
        }
        labels.push((ANY_METHOD.to_string(), OTHER_ROUTE.to_string()));
        labels.push((ANY_METHOD.to_string(), UNMATCHED_ROUTE.to_string()));
        let shards = (0..SHARDS)
            .map(|_| labels.iter().map(|_| RouteCells::new()).collect::<Box<[_]>>())
            .collect();
        let order_stages = (0..SHARDS)
            .map(|_| OrderStageCells(std::array::from_fn(|_| LatencyCells::new())))
            .collect();
        Self { labels, by_template, shards, order_stages, connections_refused: Arc::default() }
    }

    /// The counter of connections refused beyond `connections_max`, for
    /// the listener to add to.
    pub fn connections_refused(&self) -> Arc<AtomicU64> {
        self.connections_refused.clone()
    }

    /// The number of the route a request to `method` matched as
    /// `template` (`None`: it matched no route).
    pub fn route(&self, method: &Method, template: Option<&str>) -> usize {
        let Some(template) = template else { return self.labels.len() - 1 };
        self.operation(method, template).unwrap_or(self.labels.len() - 2)
    }

    /// The route number of the operation `method` `template`; `None` when
    /// the API has no such operation.
    pub fn operation(&self, method: &Method, template: &str) -> Option<usize> {
        let slot = method_slot(method)?;
        self.by_template.get(template).and_then(|slots| slots[slot])
    }

    /// How many route numbers there are, the catch-alls included.
    pub fn routes(&self) -> usize {
        self.labels.len()
    }

    /// Counts one response of `route` with `status` after `latency_us`.
    pub fn record(&self, route: usize, status: u16, latency_us: u64) {
        let Some(cells) = self.shards[shard_of_this_thread()].get(route) else { return };
        cells.responses[status_slot(status)].fetch_add(1, Ordering::Relaxed);
        cells.latency.observe(latency_us);
    }

    /// Counts one placed order's time in each of [`ORDER_STAGES`], in
    /// microseconds.
    pub fn record_order_stages(&self, stages_us: [u64; ORDER_STAGES.len()]) {
        let OrderStageCells(stages) = &self.order_stages[shard_of_this_thread()];
        for (stage, stage_us) in stages.iter().zip(stages_us) {
            stage.observe(stage_us);
        }
    }

    /// Writes `bazaar_http_requests_total` and `bazaar_http_request_seconds`
    /// for every route that served a request, then
    /// `bazaar_order_stage_seconds`.
    fn write(&self, out: &mut Exposition) {
        let routes = self.labels.len();
        let mut responses = vec![[0u64; STATUS_SLOTS]; routes];
        let mut latencies = vec![LatencyTotals::default(); routes];
        for shard in self.shards.iter() {
            for (route, cells) in shard.iter().enumerate() {
                for (total, cell) in responses[route].iter_mut().zip(&cells.responses) {
                    *total += cell.load(Ordering::Relaxed);
                }
                cells.latency.add_to(&mut latencies[route]);
            }
        }
        out.family(
            "bazaar_http_requests_total",
            Kind::Counter,
            "HTTP responses by method, matched route template and status.",
        );
        for (route, (method, template)) in self.labels.iter().enumerate() {
            for (slot, &count) in responses[route].iter().enumerate() {
                if count == 0 {
                    continue;
                }
                let status = match STATUS_CODES.get(slot) {
                    Some(code) => code.to_string(),
                    None => "other".to_string(),
                };
                out.sample(
                    "bazaar_http_requests_total",
                    &[("method", method), ("route", template), ("status", &status)],
                    count,
                );
            }
        }
        out.family(
            "bazaar_http_request_seconds",
            Kind::Histogram,
            "HTTP latency by method and matched route template, until the response headers (a live stream counts until it starts).",
        );
        for ((method, template), latency) in self.labels.iter().zip(&latencies) {
            if latency.is_empty() {
                continue;
            }
            out.histogram(
                "bazaar_http_request_seconds",
                &[("method", method), ("route", template)],
                &latency.buckets(),
            );
        }
        out.family(
            "bazaar_http_connections_refused_total",
            Kind::Counter,
            "Connections answered 503 and closed at once because connections_max were open.",
        );
        out.sample(
            "bazaar_http_connections_refused_total",
            &[],
            self.connections_refused.load(Ordering::Relaxed),
        );
        self.write_order_stages(out);
    }

    /// Writes `bazaar_order_stage_seconds`, one histogram per stage.
    fn write_order_stages(&self, out: &mut Exposition) {
        let mut totals = [LatencyTotals::default(); ORDER_STAGES.len()];
        for OrderStageCells(stages) in self.order_stages.iter() {
            for (stage, total) in stages.iter().zip(&mut totals) {
                stage.add_to(total);
            }
        }
        out.family(
            "bazaar_order_stage_seconds",
            Kind::Histogram,
            "Time placed orders spent in each stage in the node: shard (queue, plugins, kernel), journal (until durable), reply (until an HTTP thread resumed the handler).",
        );
        for (label, total) in ORDER_STAGES.iter().zip(&totals) {
            out.histogram("bazaar_order_stage_seconds", &[("stage", label)], &total.buckets());
        }
    }
}

/// This thread's shard of the HTTP counters, assigned round robin on the
/// thread's first request.
fn shard_of_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|shard| *shard)
}

/// Everything a scrape reads besides the HTTP counters, copied at one
/// moment.
pub struct Scrape {
    /// Orders created.
    pub orders_placed: u64,
    /// Orders answered from an earlier identical request.
    pub orders_duplicate: u64,
    /// Orders and commands the kernel refused.
    pub commands_refused: u64,
    /// The journal's counters and histograms.
    pub journal: JournalStats,
    /// Requests waiting in each shard's queue, by shard.
    pub queue_depths: Vec<usize>,
    /// Orders the node holds, and the most it may (`orders_held_max`).
    pub orders_held: (u64, u64),
    /// Each loaded plugin version's call counters.
    pub plugin_counters: Vec<CounterView>,
    /// Every circuit breaker that is not plainly closed.
    pub breakers: Vec<BreakerView>,
    /// How far each consuming analytics plugin is behind.
    pub consumer_lag: Vec<ConsumerLag>,
    /// Requests being served now.
    pub requests_in_flight: usize,
    /// Live analytics streams open now.
    pub live_streams: usize,
    /// The device bus's figures, unless the node runs without one.
    pub devices: Option<DeviceScrape>,
}

/// The device bus's figures, copied at one moment.
pub struct DeviceScrape {
    /// Whether its MQTT connection is up.
    pub connected: bool,
    /// Each counter of the bus: metric name, help, value.
    pub counters: Vec<(&'static str, &'static str, u64)>,
    /// Devices the bus tracks.
    pub devices: usize,
    /// Of those, the ones whose link is up.
    pub online: usize,
    /// Of those, the ones quarantined.
    pub quarantined: usize,
}

impl DeviceScrape {
    /// The figures of `bus` now.
    pub fn of(bus: &DeviceBus) -> Self {
        let counters = bus.counters();
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let fleet = bus.fleet();
        Self {
            connected: bus.is_connected(),
            counters: vec![
                (
                    "bazaar_device_frames_in_total",
                    "MQTT frames the device bus received.",
                    load(&counters.frames_in),
                ),
                (
                    "bazaar_device_frames_out_total",
                    "MQTT frames the device bus published.",
                    load(&counters.frames_out),
                ),
                (
                    "bazaar_device_frames_unrouted_total",
                    "Frames on a topic no registered device owns.",
                    load(&counters.frames_unrouted),
                ),
                (
                    "bazaar_device_frames_malformed_total",
                    "Frames a driver called malformed (counted and dropped).",
                    load(&counters.frames_malformed),
                ),
                (
                    "bazaar_device_driver_faults_total",
                    "Driver faults (trap, deadline, garbage); each quarantines a device.",
                    load(&counters.driver_faults),
                ),
                (
                    "bazaar_device_events_applied_total",
                    "Device events the bus applied.",
                    load(&counters.events_applied),
                ),
                (
                    "bazaar_device_publish_failures_total",
                    "Publishes the MQTT client refused (queue full, disconnected).",
                    load(&counters.publish_failures),
                ),
                (
                    "bazaar_device_commands_rate_limited_total",
                    "Device commands held back by a device's rate limit.",
                    load(&counters.commands_rate_limited),
                ),
                (
                    "bazaar_device_tasks_assigned_total",
                    "Robot tasks assigned to a device.",
                    load(&counters.tasks_assigned),
                ),
                (
                    "bazaar_device_tasks_done_total",
                    "Robot tasks finished.",
                    load(&counters.tasks_done),
                ),
                (
                    "bazaar_device_tasks_released_total",
                    "Robot task attempts ended unfinished (timeouts, failed actions, lost robots).",
                    load(&counters.tasks_released),
                ),
            ],
            devices: fleet.len(),
            online: fleet.iter().filter(|status| status.device.online).count(),
            quarantined: fleet.iter().filter(|status| status.device.quarantine.is_some()).count(),
        }
    }
}

/// The exposition text of `scrape` and `http`.
pub fn render(scrape: &Scrape, http: &HttpMetrics) -> String {
    let mut out = Exposition::default();
    let counters = [
        (
            "bazaar_orders_placed_total",
            "Orders created since the node started.",
            scrape.orders_placed,
        ),
        (
            "bazaar_orders_duplicate_total",
            "Order requests answered with the order an earlier request with the same idempotency key created.",
            scrape.orders_duplicate,
        ),
        (
            "bazaar_commands_refused_total",
            "Orders and commands the kernel refused (stock, limits, validation).",
            scrape.commands_refused,
        ),
        (
            "bazaar_journal_commits_total",
            "Durable journal commits (one fsync each).",
            scrape.journal.commits,
        ),
        (
            "bazaar_journal_commit_failures_total",
            "Journal commits that failed; the first one stops the journal.",
            scrape.journal.commits_failed,
        ),
        (
            "bazaar_journal_records_total",
            "Journal records (shard batches, event batches, snapshots) made durable.",
            scrape.journal.records,
        ),
        (
            "bazaar_journal_bytes_total",
            "Record and snapshot payload bytes made durable.",
            scrape.journal.payload_bytes,
        ),
    ];
    for (name, help, value) in counters {
        out.family(name, Kind::Counter, help);
        out.sample(name, &[], value);
    }
    out.family(
        "bazaar_journal_commit_seconds",
        Kind::Histogram,
        "Latency of each journal commit attempt, fsync included.",
    );
    out.histogram(
        "bazaar_journal_commit_seconds",
        &[],
        &Buckets::of(&scrape.journal.commit_latency_us, Unit::MicrosecondsAsSeconds),
    );
    out.family(
        "bazaar_journal_records_per_commit",
        Kind::Histogram,
        "Records carried by each successful journal commit (group commit batch size).",
    );
    out.histogram(
        "bazaar_journal_records_per_commit",
        &[],
        &Buckets::of(&scrape.journal.records_per_commit, Unit::Count),
    );
    out.family(
        "bazaar_shard_queue_depth",
        Kind::Gauge,
        "Requests waiting in each shard writer's queue.",
    );
    for (shard, depth) in scrape.queue_depths.iter().enumerate() {
        out.sample("bazaar_shard_queue_depth", &[("shard", &shard.to_string())], count(*depth));
    }
    let (held, held_max) = scrape.orders_held;
    out.family(
        "bazaar_orders_held",
        Kind::Gauge,
        "Orders the node holds in memory; at bazaar_orders_held_max it refuses new ones (507).",
    );
    out.sample("bazaar_orders_held", &[], held);
    out.family(
        "bazaar_orders_held_max",
        Kind::Gauge,
        "The most orders the node may hold (orders_held_max).",
    );
    out.sample("bazaar_orders_held_max", &[], held_max);
    write_plugins(&mut out, scrape);
    out.family(
        "bazaar_http_requests_in_flight",
        Kind::Gauge,
        "HTTP requests being served (live streams count only until they start).",
    );
    out.sample("bazaar_http_requests_in_flight", &[], count(scrape.requests_in_flight));
    out.family("bazaar_analytics_streams", Kind::Gauge, "Live analytics streams open.");
    out.sample("bazaar_analytics_streams", &[], count(scrape.live_streams));
    write_devices(&mut out, scrape.devices.as_ref());
    http.write(&mut out);
    out.text
}

/// A count held as `usize`, as a sample value.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The device bus families: whether it runs and is connected, its
/// counters, and the fleet's gauges. A node without a bus reports only
/// that it has none.
fn write_devices(out: &mut Exposition, devices: Option<&DeviceScrape>) {
    out.family(
        "bazaar_device_bus_enabled",
        Kind::Gauge,
        "1 when the node runs a device bus, 0 when it runs with mqtt_disabled.",
    );
    out.sample("bazaar_device_bus_enabled", &[], u64::from(devices.is_some()));
    let Some(devices) = devices else { return };
    out.family(
        "bazaar_device_bus_connected",
        Kind::Gauge,
        "1 while the device bus's MQTT connection is up.",
    );
    out.sample("bazaar_device_bus_connected", &[], u64::from(devices.connected));
    for (name, help, value) in &devices.counters {
        out.family(name, Kind::Counter, help);
        out.sample(name, &[], *value);
    }
    let gauges = [
        ("bazaar_devices", "Devices the device bus tracks, over every store.", devices.devices),
        ("bazaar_devices_online", "Tracked devices whose link is up.", devices.online),
        (
            "bazaar_devices_quarantined",
            "Tracked devices quarantined until someone releases them.",
            devices.quarantined,
        ),
    ];
    for (name, help, value) in gauges {
        out.family(name, Kind::Gauge, help);
        out.sample(name, &[], count(value));
    }
}

/// The plugin families: counters per version, breakers, consumer lag.
fn write_plugins(out: &mut Exposition, scrape: &Scrape) {
    type Counter = fn(&CounterView) -> u64;
    let families: [(&str, &str, Counter); 4] = [
        (
            "bazaar_plugin_calls_total",
            "Calls made to each loaded plugin version since the node started.",
            |counters| counters.calls,
        ),
        (
            "bazaar_plugin_failures_total",
            "Calls to each plugin version that returned an error of any kind.",
            |counters| counters.failures,
        ),
        (
            "bazaar_plugin_traps_total",
            "Calls to each plugin version whose instance was thrown away (traps, deadlines, limits).",
            |counters| counters.traps,
        ),
        (
            "bazaar_plugin_instantiations_total",
            "Instances created of each plugin version.",
            |counters| counters.instantiations,
        ),
    ];
    for (name, help, value) in families {
        out.family(name, Kind::Counter, help);
        for counters in &scrape.plugin_counters {
            out.sample(
                name,
                &[("plugin", &counters.plugin), ("version", &counters.version)],
                value(counters),
            );
        }
    }
    out.family(
        "bazaar_plugin_call_seconds",
        Kind::Histogram,
        "Duration of each call to a plugin version, from admission to outcome.",
    );
    for counters in &scrape.plugin_counters {
        out.histogram(
            "bazaar_plugin_call_seconds",
            &[("plugin", &counters.plugin), ("version", &counters.version)],
            &Buckets {
                upper_bounds: &bazaar_runtime::CALL_LATENCY_BUCKETS_US,
                counts: &counters.latency_counts,
                sum: counters.latency_sum_us,
                unit: Unit::MicrosecondsAsSeconds,
            },
        );
    }
    out.family(
        "bazaar_plugin_breaker_open",
        Kind::Gauge,
        "1 while a store's circuit breaker skips the plugin, 0 while it is half open or closed with recent failures; breakers plainly closed are not listed.",
    );
    for breaker in &scrape.breakers {
        out.sample(
            "bazaar_plugin_breaker_open",
            &[("store", &breaker.store), ("plugin", &breaker.plugin)],
            u64::from(breaker.state == "open"),
        );
    }
    type Gauge = fn(&ConsumerLag) -> u64;
    let consumer_families: [(&str, &str, Gauge); 2] = [
        (
            "bazaar_consumer_lag_records",
            "Event records committed on a store's shard that its analytics plugin has not consumed yet.",
            |lag| lag.records_behind,
        ),
        (
            "bazaar_consumer_batch_events",
            "Events a store's analytics plugin is offered per call: the most a call takes, or fewer while its recent batches were too much work for one call.",
            |lag| lag.batch_events as u64,
        ),
    ];
    for (name, help, value) in consumer_families {
        out.family(name, Kind::Gauge, help);
        for lag in &scrape.consumer_lag {
            out.sample(name, &[("store", &lag.store), ("plugin", &lag.plugin)], value(lag));
        }
    }
}

/// The type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (until the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Counts of observations in cumulative buckets, with their sum.
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// What a histogram's observations count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Plain numbers, written as they are.
    Count,
    /// Microseconds, written as seconds (Prometheus' base unit).
    MicrosecondsAsSeconds,
}

impl Unit {
    /// Writes `value` in this unit.
    fn write(self, out: &mut String, value: u64) {
        match self {
            Unit::Count => {
                let _ = write!(out, "{value}");
            }
            Unit::MicrosecondsAsSeconds => write_micros_as_seconds(out, value),
        }
    }
}

/// Writes `micros` as decimal seconds without rounding: `1500` is `0.0015`.
fn write_micros_as_seconds(out: &mut String, micros: u64) {
    let (seconds, fraction) = (micros / 1_000_000, micros % 1_000_000);
    // Writing to a String cannot fail.
    let _ = write!(out, "{seconds}");
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// A histogram's buckets as kept: bounds, counts per bucket (not
/// cumulative; one more than the bounds, for the unbounded last bucket)
/// and the sum, all in `unit`.
pub struct Buckets<'a> {
    /// Inclusive upper bound of each bucket but the last.
    pub upper_bounds: &'a [u64],
    /// Observations per bucket.
    pub counts: &'a [u64],
    /// Sum of the observations.
    pub sum: u64,
    /// What the bounds and the sum count.
    pub unit: Unit,
}

impl<'a> Buckets<'a> {
    /// The buckets of a journal histogram.
    fn of(snapshot: &'a HistogramSnapshot, unit: Unit) -> Self {
        Self {
            upper_bounds: snapshot.upper_bounds,
            counts: &snapshot.bucket_counts,
            sum: snapshot.sum,
            unit,
        }
    }
}

/// Exposition text being written, family by family.
#[derive(Default)]
pub struct Exposition {
    /// The text so far.
    text: String,
}

impl Exposition {
    /// Starts a family: its help and type lines. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = write!(self.text, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => self.text.push_str("\\\\"),
                '\n' => self.text.push_str("\\n"),
                c => self.text.push(c),
            }
        }
        let _ = writeln!(self.text, "\n# TYPE {name} {}", kind.name());
    }

    /// One sample of an integer value.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.text.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.text, " {value}");
    }

    /// One histogram: cumulative `_bucket` samples up to `le="+Inf"`, then
    /// `_sum` and `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], buckets: &Buckets<'_>) {
        let mut cumulative: u64 = 0;
        for (index, count) in buckets.counts.iter().enumerate() {
            cumulative = cumulative.saturating_add(*count);
            let mut bound = String::new();
            match buckets.upper_bounds.get(index) {
                Some(upper) => buckets.unit.write(&mut bound, *upper),
                None => bound.push_str("+Inf"),
            }
            let _ = write!(self.text, "{name}_bucket");
            self.labels(labels, Some(&bound));
            let _ = writeln!(self.text, " {cumulative}");
        }
        let _ = write!(self.text, "{name}_sum");
        self.labels(labels, None);
        self.text.push(' ');
        buckets.unit.write(&mut self.text, buckets.sum);
        let _ = write!(self.text, "\n{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.text, " {cumulative}");
    }

    /// `{name="value",...}`, with `le` last when given; nothing when empty.
    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.text.push('{');
        let all = labels.iter().copied().chain(le.map(|bound| ("le", bound)));
        for (index, (name, value)) in all.enumerate() {
            if index > 0 {
                self.text.push(',');
            }
            self.text.push_str(name);
            self.text.push_str("=\"");
            push_label_value(&mut self.text, value);
            self.text.push('"');
        }
        self.text.push('}');
    }
}

/// Appends a label value escaped as the format requires: backslash, double
/// quote and line feed.
fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut out = Exposition::default();
        out.family("m", Kind::Gauge, "a \\ b\nc");
        out.sample("m", &[("store", "a\"b\\c\nd")], 1);
        assert_eq!(
            out.text,
            "# HELP m a \\\\ b\\nc\n# TYPE m gauge\nm{store=\"a\\\"b\\\\c\\nd\"} 1\n"
        );
    }

    #[test]
    fn histograms_are_written_cumulative_with_infinity_sum_and_count() {
        let mut out = Exposition::default();
        let buckets = Buckets {
            upper_bounds: &[250, 1_500_000],
            counts: &[2, 0, 3],
            sum: 2_000_250,
            unit: Unit::MicrosecondsAsSeconds,
        };
        out.histogram("h", &[("route", "/x/{id}")], &buckets);
        assert_eq!(
            out.text,
            "h_bucket{route=\"/x/{id}\",le=\"0.00025\"} 2\n\
             h_bucket{route=\"/x/{id}\",le=\"1.5\"} 2\n\
             h_bucket{route=\"/x/{id}\",le=\"+Inf\"} 5\n\
             h_sum{route=\"/x/{id}\"} 2.00025\n\
             h_count{route=\"/x/{id}\"} 5\n"
        );
    }

    #[test]
    fn microseconds_are_written_as_exact_seconds() {
        for (micros, text) in [(0, "0"), (1, "0.000001"), (1_000_000, "1"), (2_500_000, "2.5")] {
            let mut out = String::new();
            write_micros_as_seconds(&mut out, micros);
            assert_eq!(out, text);
        }
    }

    #[test]
    fn an_order_s_stages_are_counted_each_in_its_own_histogram() {
        let http = HttpMetrics::new(&[]);
        http.record_order_stages([300, 2_000, 50]);
        http.record_order_stages([100, 7_000, 1_000_000]);
        let mut out = Exposition::default();
        http.write(&mut out);
        let text = out.text;
        let sample = |name: &str, stage: &str, le: Option<&str>| {
            let labels = match le {
                Some(le) => format!("{{stage=\"{stage}\",le=\"{le}\"}}"),
                None => format!("{{stage=\"{stage}\"}}"),
            };
            let prefix = format!("bazaar_order_stage_seconds_{name}{labels} ");
            text.lines()
                .find_map(|line| line.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
                .to_string()
        };
        for stage in ORDER_STAGES {
            assert_eq!(sample("count", stage, None), "2", "{stage}");
        }
        assert_eq!(sample("sum", "shard", None), "0.0004");
        assert_eq!(sample("sum", "journal", None), "0.009");
        assert_eq!(sample("sum", "reply", None), "1.00005");
        // 100 µs falls in the first bucket, its bound included; 300 µs not.
        assert_eq!(sample("bucket", "shard", Some("0.0001")), "1");
        assert_eq!(sample("bucket", "shard", Some("0.0005")), "2");
        assert_eq!(sample("bucket", "journal", Some("0.0025")), "1");
        assert_eq!(sample("bucket", "journal", Some("0.01")), "2");
        assert_eq!(sample("bucket", "reply", Some("0.0001")), "1");
        assert_eq!(sample("bucket", "reply", Some("0.25")), "1");
        assert_eq!(sample("bucket", "reply", Some("1")), "2");
    }

    #[test]
    fn requests_are_counted_by_route_method_and_status() {
        let template = "/v1/stores/{store}/orders".to_string();
        let http =
            HttpMetrics::new(&[(Method::POST, template.clone()), (Method::GET, template.clone())]);
        let create = http.route(&Method::POST, Some(&template));
        let list = http.route(&Method::GET, Some(&template));
        assert_ne!(create, list);
        http.record(create, 201, 300);
        http.record(create, 201, 2_000_000);
        http.record(create, 599, 10);
        http.record(http.route(&Method::GET, None), 404, 10);
        http.record(http.route(&Method::GET, Some("/console")), 200, 10);
        let mut out = Exposition::default();
        http.write(&mut out);
        let text = out.text;
        let line =
            |needle: &str| text.lines().find(|line| line.starts_with(needle)).map(str::to_string);
        assert_eq!(
            line("bazaar_http_requests_total{method=\"POST\",route=\"/v1/stores/{store}/orders\",status=\"201\"}"),
            Some("bazaar_http_requests_total{method=\"POST\",route=\"/v1/stores/{store}/orders\",status=\"201\"} 2".into())
        );
        assert!(text.contains("status=\"other\"} 1"), "{text}");
        assert!(text.contains("{method=\"any\",route=\"unmatched\",status=\"404\"} 1"), "{text}");
        assert!(text.contains("{method=\"any\",route=\"other\",status=\"200\"} 1"), "{text}");
        assert!(
            text.contains("bazaar_http_request_seconds_count{method=\"POST\",route=\"/v1/stores/{store}/orders\"} 3"),
            "{text}"
        );
        assert!(!text.contains("method=\"GET\",route=\"/v1/stores"), "unused routes are left out");
    }
}
