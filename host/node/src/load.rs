//! A closed-loop load driver: client threads that each keep a window of
//! orders in flight against an in-process node, measuring the latency from
//! submission to durable acknowledgement. The demo, the benchmarks and the
//! soak of the `bazaar` command, and the plugin-platform benchmarks of
//! this crate, all drive the node through it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bazaar_kernel::model::{OrderRequest, StoreId};
use bazaar_kernel::{KernelError, Outcome};

use crate::node::{Node, NodeError};
use crate::seed;

/// Back-off after the node refused a request as overloaded.
const OVERLOAD_BACKOFF: Duration = Duration::from_millis(1);

/// What the driver asks of each attempt.
pub type RequestSource = dyn Fn(u64) -> (StoreId, OrderRequest) + Send + Sync;

/// Called once per acknowledged order with the attempt index, its request
/// and the outcome.
pub type AckSink = dyn Fn(u64, &OrderRequest, &Outcome) + Send + Sync;

/// How to drive the node.
pub struct LoadPlan {
    /// Client threads.
    pub clients: u32,
    /// Orders each client keeps in flight.
    pub window_per_client: usize,
    /// Attempts in all; `u64::MAX` runs until `stop` is set.
    pub attempts: u64,
    /// The request of attempt `i`.
    pub source: Arc<RequestSource>,
    /// Optional observer of acknowledged orders.
    pub on_ack: Option<Arc<AckSink>>,
}

/// Live counters, readable while the load runs.
#[derive(Debug, Default)]
pub struct LoadProgress {
    /// Orders acknowledged as new.
    pub placed: AtomicU64,
    /// Orders acknowledged as duplicates of an earlier request.
    pub duplicates: AtomicU64,
    /// Attempts the kernel refused.
    pub refused: AtomicU64,
    /// Attempts refused as overloaded and retried.
    pub overload_retries: AtomicU64,
    /// Set to stop the clients early.
    pub stop: AtomicBool,
}

/// The result of a run.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Orders acknowledged as new.
    pub placed: u64,
    /// Orders acknowledged as duplicates.
    pub duplicates: u64,
    /// Refusals by kind (e.g. "insufficient stock").
    pub refusals: BTreeMap<&'static str, u64>,
    /// Overload refusals that were retried.
    pub overload_retries: u64,
    /// Latency of every acknowledged order, microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Acknowledged orders (new and duplicate) per second.
    pub fn orders_per_second(&self) -> f64 {
        (self.placed + self.duplicates) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0.0 to 1.0), in microseconds.
    pub fn latency_us(&self, q: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let index = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        self.latencies_us[index]
    }
}

/// The mixed-catalogue order of attempt `attempt`, for a store chosen
/// among `stores`: 1 to 3 ordinary lines of 1 or 2 units, a quarter with a
/// coupon. Returns the store's index and the request. A pure function of
/// `attempt`, shared by the in-process and the HTTP benchmarks.
pub fn mixed_order(attempt: u64, stores: usize) -> (usize, OrderRequest) {
    let r = splitmix64(attempt);
    let store = (r % stores.max(1) as u64) as usize;
    let count = 1 + ((r >> 8) % 3) as usize;
    let first = ((r >> 12) % seed::ORDINARY_SKUS as u64) as usize;
    let lines = (0..count)
        .map(|i| {
            let sku = seed::ordinary_sku((first + i * 5) % seed::ORDINARY_SKUS);
            (sku, 1 + ((r >> (20 + i)) % 2) as u32)
        })
        .collect();
    let coupon = (r >> 40).is_multiple_of(4).then_some("D11-10");
    (store, seed::order_request(r >> 16, lines, coupon, None))
}

/// A plan of `attempts` mixed-catalogue orders ([`mixed_order`]) spread
/// over `stores`, for `clients` clients each keeping `window_per_client`
/// orders in flight.
pub fn mixed_plan(
    stores: &[StoreId],
    clients: u32,
    window_per_client: usize,
    attempts: u64,
) -> LoadPlan {
    let stores = stores.to_vec();
    LoadPlan {
        clients,
        window_per_client,
        attempts,
        source: Arc::new(move |attempt| {
            let (store, mut request) = mixed_order(attempt, stores.len());
            // Checkout traffic always carries a key (a storefront retries),
            // so the node holds and checks one per order, as at a peak.
            request.idempotency_key = Some(checkout_key(attempt).into());
            (stores[store].clone(), request)
        }),
        on_ack: None,
    }
}

/// The idempotency key of attempt `attempt`, shaped as the UUID a
/// storefront would send.
fn checkout_key(attempt: u64) -> String {
    let high = splitmix64(attempt ^ 0x6b65_795f_6869_6768);
    let low = splitmix64(attempt ^ 0x6b65_795f_6c6f_7700);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xfff,
        0x8000 | (low >> 48 & 0x3fff),
        low & 0xffff_ffff_ffff
    )
}

/// A short name for a refusal, for reports.
pub fn refusal_kind(error: &NodeError) -> &'static str {
    match error {
        NodeError::Kernel(KernelError::InsufficientStock { .. }) => "sold out",
        NodeError::Kernel(KernelError::PurchaseLimitExceeded { .. }) => "over purchase limit",
        NodeError::Kernel(KernelError::IdempotencyConflict { .. }) => "idempotency conflict",
        NodeError::Kernel(_) => "invalid request",
        NodeError::Overloaded { .. } => "overloaded",
        NodeError::Journal(_) => "journal failure",
        NodeError::ShuttingDown => "shutting down",
        NodeError::OrdersHeldFull { .. } => "node full",
        NodeError::Recovery(_) => "recovery failure",
        NodeError::RiskRejected { .. } => "rejected by risk check",
        NodeError::RiskUnavailable { .. } => "risk check unavailable",
        NodeError::PluginUnavailable { .. } => "plugin unavailable",
    }
}

/// Runs the plan to completion (or until `progress.stop`).
pub fn drive(node: &Arc<Node>, plan: &LoadPlan, progress: &Arc<LoadProgress>) -> LoadReport {
    let started = Instant::now();
    let clients = u64::from(plan.clients.max(1));
    let reports: Vec<LoadReport> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let node = node.clone();
                let progress = progress.clone();
                scope.spawn(move || run_client(&node, plan, &progress, client, clients))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let mut total = LoadReport { elapsed: started.elapsed(), ..LoadReport::default() };
    for report in reports {
        total.placed += report.placed;
        total.duplicates += report.duplicates;
        total.overload_retries += report.overload_retries;
        total.latencies_us.extend(report.latencies_us);
        for (kind, count) in report.refusals {
            *total.refusals.entry(kind).or_default() += count;
        }
    }
    total.latencies_us.sort_unstable();
    total
}

/// One client: attempts `client, client + clients, ...` with a window.
fn run_client(
    node: &Node,
    plan: &LoadPlan,
    progress: &LoadProgress,
    client: u64,
    clients: u64,
) -> LoadReport {
    let (done_sender, done) = crossbeam_channel::unbounded::<Completion>();
    let mut report = LoadReport::default();
    let mut in_flight = 0usize;
    let mut attempt = client;
    let window = plan.window_per_client.max(1);
    loop {
        let more = attempt < plan.attempts && !progress.stop.load(Ordering::Relaxed);
        if more && in_flight < window {
            let (store, request) = (plan.source)(attempt);
            let sender = done_sender.clone();
            let submitted = Instant::now();
            // Only an observer needs the request back; the benchmarks do not
            // pay for a copy of every order.
            let echo = plan.on_ack.as_ref().map(|_| request.clone());
            let reply = Box::new(move |result| {
                let _ = sender.send((attempt, echo, submitted, result));
            });
            match node.submit_order(store, request, reply) {
                Ok(()) => {
                    in_flight += 1;
                    attempt += clients;
                }
                Err(NodeError::Overloaded { .. }) => {
                    report.overload_retries += 1;
                    progress.overload_retries.fetch_add(1, Ordering::Relaxed);
                    if in_flight == 0 {
                        std::thread::sleep(OVERLOAD_BACKOFF);
                    } else {
                        collect(&done, &mut in_flight, &mut report, plan, progress);
                    }
                }
                Err(error) => {
                    *report.refusals.entry(refusal_kind(&error)).or_default() += 1;
                    progress.refused.fetch_add(1, Ordering::Relaxed);
                    attempt += clients;
                }
            }
            continue;
        }
        if in_flight == 0 {
            break;
        }
        collect(&done, &mut in_flight, &mut report, plan, progress);
    }
    report
}

/// A finished attempt: its index, its request (when an observer wants it),
/// when it was submitted, and its result.
type Completion = (u64, Option<OrderRequest>, Instant, Result<Outcome, NodeError>);

fn collect(
    done: &crossbeam_channel::Receiver<Completion>,
    in_flight: &mut usize,
    report: &mut LoadReport,
    plan: &LoadPlan,
    progress: &LoadProgress,
) {
    // Waits for one completion, then takes every other one already there.
    let first = done.recv().ok();
    let Some(first) = first else { return };
    for (attempt, request, submitted, result) in std::iter::once(first).chain(done.try_iter()) {
        *in_flight -= 1;
        match result {
            Ok(outcome) => {
                let duplicate = matches!(outcome, Outcome::OrderPlaced { duplicate: true, .. });
                let counter = if duplicate { &progress.duplicates } else { &progress.placed };
                counter.fetch_add(1, Ordering::Relaxed);
                if duplicate {
                    report.duplicates += 1;
                } else {
                    report.placed += 1;
                }
                report
                    .latencies_us
                    .push(submitted.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                if let (Some(on_ack), Some(request)) = (&plan.on_ack, &request) {
                    on_ack(attempt, request, &outcome);
                }
            }
            Err(error) => {
                *report.refusals.entry(refusal_kind(&error)).or_default() += 1;
                progress.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A well-mixed 64-bit hash of `x` (SplitMix64): turns attempt numbers
/// into reproducible, evenly spread choices.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
