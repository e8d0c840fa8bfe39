//! The group-commit writer: many shard writers append, one thread commits.
//!
//! Durability is paid per fsync, not per order. Shard writers hand their
//! batches to [`Journal::append`], which only enqueues (blocking when the
//! bounded queue is full, which is the back-pressure that slows writers down
//! to what the disk can take). One thread drains whatever has queued, up to
//! [`JournalLimits`], into a single [`Commit`], makes it durable with one
//! transaction, then runs every request's `on_durable` callback in
//! submission order. Under load the queue fills while the previous commit
//! fsyncs, so commits grow and the fsync cost per order falls.
//!
//! A request carrying a snapshot closes its group, so one commit carries at
//! most one snapshot: snapshots can be hundreds of megabytes, and bounding
//! them per commit bounds both memory and the latency added to the records
//! that share the commit.
//!
//! Failure is terminal. If a commit fails, all its callbacks get the error and
//! the journal stops: the kernel's in-memory state has moved ahead of what is
//! durable, so acknowledging anything more would acknowledge orders that a
//! restart would not have. Later appends fail fast with
//! [`StoreError::JournalStopped`]; requests that were already queued get the
//! same error through their callbacks. Recovery is a restart from storage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::storage::{
    Commit, JournalRecord, RECORD_PAYLOAD_BYTES_MAX, SNAPSHOT_PAYLOAD_BYTES_MAX, Snapshot, Storage,
    StoreError, check_size,
};

/// Default bound on queued appends.
///
/// One append is one shard's command batch. 1,024 lets every shard of a node
/// queue several batches while a commit fsyncs, and bounds the memory held
/// by queued appends to 1,024 × the per-commit byte budget in the worst case.
pub const QUEUE_DEPTH_MAX_DEFAULT: usize = 1024;

/// Default bound on records in one commit.
///
/// A record costs a B-tree insert while a commit costs an fsync (about a
/// millisecond on SSDs); 8,192 records amortise the fsync to nothing while
/// keeping the callbacks of one commit from waiting on a huge write.
pub const RECORDS_PER_COMMIT_MAX_DEFAULT: usize = 8192;

/// Default bound on record payload bytes in one commit.
///
/// 64 MiB is written in tens of milliseconds on an SSD, which bounds the
/// extra latency a large group adds, and it is four times
/// [`RECORD_PAYLOAD_BYTES_MAX`], so the largest record always fits.
pub const BYTES_PER_COMMIT_MAX_DEFAULT: usize = 64 * 1024 * 1024;

/// Upper bounds of the records-per-commit histogram buckets (a last,
/// unbounded bucket follows), powers of four up to the default commit limit.
pub const RECORDS_PER_COMMIT_BUCKETS: &[u64] = &[1, 4, 16, 64, 256, 1024, 4096, 8192];

/// Upper bounds of the commit-latency histogram buckets in microseconds (a
/// last, unbounded bucket follows), from a cached fsync to a stalled disk.
pub const COMMIT_LATENCY_US_BUCKETS: &[u64] =
    &[100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000];

/// Called once with the outcome of the commit that carried an append.
pub type OnDurable = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Bounds of the journal's queue and of each commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalLimits {
    /// Appends that may wait in the queue before [`Journal::append`] blocks.
    pub queue_depth_max: usize,
    /// Records one commit may carry; also the most one append may carry.
    pub records_per_commit_max: usize,
    /// Record payload bytes one commit may carry; also the most one append
    /// may carry.
    pub bytes_per_commit_max: usize,
}

impl Default for JournalLimits {
    fn default() -> Self {
        Self {
            queue_depth_max: QUEUE_DEPTH_MAX_DEFAULT,
            records_per_commit_max: RECORDS_PER_COMMIT_MAX_DEFAULT,
            bytes_per_commit_max: BYTES_PER_COMMIT_MAX_DEFAULT,
        }
    }
}

impl JournalLimits {
    /// Refuses limits under which the journal could not make progress.
    fn validate(&self) -> Result<(), StoreError> {
        let zero =
            |name: &str| StoreError::InvalidLimits { reason: format!("{name} must be at least 1") };
        if self.queue_depth_max == 0 {
            return Err(zero("queue_depth_max"));
        }
        if self.records_per_commit_max == 0 {
            return Err(zero("records_per_commit_max"));
        }
        if self.bytes_per_commit_max == 0 {
            return Err(zero("bytes_per_commit_max"));
        }
        Ok(())
    }
}

/// A fixed-bucket histogram updated with relaxed atomics, shaped for a
/// Prometheus export (bucket upper bounds, sum, count).
struct Histogram {
    /// Upper bound of each bucket but the last, ascending.
    upper_bounds: &'static [u64],
    /// Observations per bucket (not cumulative); one more than the bounds.
    bucket_counts: Box<[AtomicU64]>,
    /// Sum of all observations.
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `upper_bounds`.
    fn new(upper_bounds: &'static [u64]) -> Self {
        Self {
            upper_bounds,
            bucket_counts: (0..=upper_bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    fn observe(&self, value: u64) {
        let bucket = self.upper_bounds.partition_point(|&bound| bound < value);
        if let Some(count) = self.bucket_counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// The current counts.
    fn snapshot(&self) -> HistogramSnapshot {
        let bucket_counts: Vec<u64> =
            self.bucket_counts.iter().map(|count| count.load(Ordering::Relaxed)).collect();
        HistogramSnapshot {
            upper_bounds: self.upper_bounds,
            count: bucket_counts.iter().sum(),
            bucket_counts,
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Inclusive upper bound of each bucket but the last, which is unbounded.
    pub upper_bounds: &'static [u64],
    /// Observations per bucket, not cumulative; `upper_bounds.len() + 1` long.
    pub bucket_counts: Vec<u64>,
    /// Sum of all observations.
    pub sum: u64,
    /// Number of observations.
    pub count: u64,
}

/// Counters the journal thread updates after every commit.
struct Stats {
    /// Appends accepted into the queue.
    appends: AtomicU64,
    /// Commits that succeeded.
    commits: AtomicU64,
    /// Commits that failed (at most one: failure stops the journal).
    commits_failed: AtomicU64,
    /// Records made durable.
    records: AtomicU64,
    /// Record and snapshot payload bytes made durable.
    payload_bytes: AtomicU64,
    /// Latency of the most recent commit.
    commit_latency_us_last: AtomicU64,
    /// Highest commit latency seen.
    commit_latency_us_max: AtomicU64,
    /// Records per successful commit.
    records_per_commit: Histogram,
    /// Latency of every commit attempt.
    commit_latency_us: Histogram,
}

/// The journal's counters at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalStats {
    /// Appends accepted into the queue.
    pub appends: u64,
    /// Commits that succeeded.
    pub commits: u64,
    /// Commits that failed (at most one: failure stops the journal).
    pub commits_failed: u64,
    /// Records made durable.
    pub records: u64,
    /// Record and snapshot payload bytes made durable.
    pub payload_bytes: u64,
    /// Latency of the most recent commit, in microseconds.
    pub commit_latency_us_last: u64,
    /// Highest commit latency seen, in microseconds.
    pub commit_latency_us_max: u64,
    /// Records per successful commit.
    pub records_per_commit: HistogramSnapshot,
    /// Latency of every commit attempt, in microseconds.
    pub commit_latency_us: HistogramSnapshot,
}

/// State shared by the appending side and the journal thread.
struct Shared {
    /// Set once, by the journal thread, when a commit fails.
    failure: OnceLock<StoreError>,
    /// Counters.
    stats: Stats,
}

/// One queued append.
struct Request {
    /// Records to append.
    records: Vec<JournalRecord>,
    /// Snapshot to store with them, if any.
    snapshot: Option<Snapshot>,
    /// Sum of the records' payload lengths.
    record_bytes: usize,
    /// Told the outcome of the commit that carries this request.
    on_durable: OnDurable,
}

/// The group-commit journal writer; see the module documentation.
///
/// Shared by reference between shard writers (`append` takes `&self`).
/// Dropping it flushes everything queued and joins the thread, like
/// [`Journal::shutdown`].
pub struct Journal {
    /// The queue; taken on shutdown so the thread sees the end.
    sender: Option<Sender<Request>>,
    /// The journal thread; taken on shutdown to join it.
    thread: Option<JoinHandle<()>>,
    /// Failure flag and counters.
    shared: Arc<Shared>,
    /// The limits the journal runs with.
    limits: JournalLimits,
}

impl Journal {
    /// Starts the journal thread over `storage`.
    ///
    /// Fails on limits with a zero bound, or when the operating system
    /// refuses a thread.
    pub fn start(storage: Arc<dyn Storage>, limits: JournalLimits) -> Result<Self, StoreError> {
        limits.validate()?;
        let (sender, receiver) = crossbeam_channel::bounded(limits.queue_depth_max);
        let shared = Arc::new(Shared {
            failure: OnceLock::new(),
            stats: Stats {
                appends: AtomicU64::new(0),
                commits: AtomicU64::new(0),
                commits_failed: AtomicU64::new(0),
                records: AtomicU64::new(0),
                payload_bytes: AtomicU64::new(0),
                commit_latency_us_last: AtomicU64::new(0),
                commit_latency_us_max: AtomicU64::new(0),
                records_per_commit: Histogram::new(RECORDS_PER_COMMIT_BUCKETS),
                commit_latency_us: Histogram::new(COMMIT_LATENCY_US_BUCKETS),
            },
        });
        let writer =
            Writer { storage, receiver, shared: Arc::clone(&shared), limits, carried: None };
        let thread = std::thread::Builder::new()
            .name("bazaar-journal".to_owned())
            .spawn(move || writer.run())
            .map_err(|error| StoreError::Io {
                action: "starting the journal thread",
                path: String::new(),
                message: error.to_string(),
            })?;
        Ok(Self { sender: Some(sender), thread: Some(thread), shared, limits })
    }

    /// Queues `records` (and `snapshot`) for the next group commit;
    /// `on_durable` runs on the journal thread with the commit's outcome.
    ///
    /// Blocks only while the queue is full. Returns an error, without
    /// queueing and without calling `on_durable`, when the journal has
    /// stopped after a failed commit or when the append alone exceeds a
    /// per-commit limit or a payload limit.
    pub fn append(
        &self,
        records: Vec<JournalRecord>,
        snapshot: Option<Snapshot>,
        on_durable: OnDurable,
    ) -> Result<(), StoreError> {
        self.refuse_if_stopped()?;
        if records.len() > self.limits.records_per_commit_max {
            return Err(StoreError::TooLarge {
                what: "record count of one append".to_owned(),
                size_bytes: records.len(),
                size_bytes_max: self.limits.records_per_commit_max,
            });
        }
        let mut record_bytes: usize = 0;
        for record in &records {
            check_size(
                || {
                    format!(
                        "record payload of stream {} sequence {}",
                        record.stream, record.sequence
                    )
                },
                record.payload.len(),
                RECORD_PAYLOAD_BYTES_MAX,
            )?;
            record_bytes = record_bytes.saturating_add(record.payload.len());
        }
        check_size(
            || "record payload of one append".to_owned(),
            record_bytes,
            self.limits.bytes_per_commit_max,
        )?;
        if let Some(snapshot) = &snapshot {
            check_size(
                || format!("snapshot payload of stream {}", snapshot.stream),
                snapshot.payload.len(),
                SNAPSHOT_PAYLOAD_BYTES_MAX,
            )?;
        }
        let sender = self.sender.as_ref().ok_or_else(thread_gone)?;
        sender
            .send(Request { records, snapshot, record_bytes, on_durable })
            .map_err(|_| thread_gone())?;
        self.shared.stats.appends.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The counters so far.
    pub fn stats(&self) -> JournalStats {
        let stats = &self.shared.stats;
        JournalStats {
            appends: stats.appends.load(Ordering::Relaxed),
            commits: stats.commits.load(Ordering::Relaxed),
            commits_failed: stats.commits_failed.load(Ordering::Relaxed),
            records: stats.records.load(Ordering::Relaxed),
            payload_bytes: stats.payload_bytes.load(Ordering::Relaxed),
            commit_latency_us_last: stats.commit_latency_us_last.load(Ordering::Relaxed),
            commit_latency_us_max: stats.commit_latency_us_max.load(Ordering::Relaxed),
            records_per_commit: stats.records_per_commit.snapshot(),
            commit_latency_us: stats.commit_latency_us.snapshot(),
        }
    }

    /// The limits the journal runs with.
    pub fn limits(&self) -> JournalLimits {
        self.limits
    }

    /// Commits everything queued, answers every callback and joins the
    /// thread. Returns the failure that stopped the journal, if one did.
    pub fn shutdown(mut self) -> Result<(), StoreError> {
        self.stop();
        self.refuse_if_stopped()
    }

    /// The error appends get once the journal has stopped, if it has.
    fn refuse_if_stopped(&self) -> Result<(), StoreError> {
        match self.shared.failure.get() {
            Some(cause) => Err(StoreError::JournalStopped { cause: cause.to_string() }),
            None => Ok(()),
        }
    }

    /// Closes the queue and waits for the thread to drain it.
    fn stop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the journal thread panicked");
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The error for a journal whose thread is gone (a callback panicked).
fn thread_gone() -> StoreError {
    StoreError::JournalStopped { cause: "the journal thread has exited".to_owned() }
}

/// The journal thread's state.
struct Writer {
    /// Where commits go.
    storage: Arc<dyn Storage>,
    /// The queue of appends.
    receiver: Receiver<Request>,
    /// Failure flag and counters.
    shared: Arc<Shared>,
    /// Bounds of each commit.
    limits: JournalLimits,
    /// A request drained but left for the next commit because it did not
    /// fit the current one.
    carried: Option<Request>,
}

impl Writer {
    /// Commits groups until the queue is closed and empty.
    fn run(mut self) {
        while let Some(group) = self.next_group() {
            match self.shared.failure.get() {
                Some(cause) => {
                    let stopped = StoreError::JournalStopped { cause: cause.to_string() };
                    for request in group {
                        (request.on_durable)(Err(stopped.clone()));
                    }
                }
                None => self.commit(group),
            }
        }
    }

    /// Waits for one request, then takes every queued request that fits the
    /// per-commit limits; `None` once the queue is closed and empty.
    fn next_group(&mut self) -> Option<Vec<Request>> {
        let first = match self.carried.take() {
            Some(request) => request,
            None => self.receiver.recv().ok()?,
        };
        let mut records = first.records.len();
        let mut bytes = first.record_bytes;
        let mut closed = first.snapshot.is_some();
        let mut group = vec![first];
        while !closed {
            let request = match self.receiver.try_recv() {
                Ok(request) => request,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            };
            let fits = records + request.records.len() <= self.limits.records_per_commit_max
                && bytes + request.record_bytes <= self.limits.bytes_per_commit_max;
            if !fits {
                self.carried = Some(request);
                break;
            }
            records += request.records.len();
            bytes += request.record_bytes;
            closed = request.snapshot.is_some();
            group.push(request);
        }
        Some(group)
    }

    /// Commits one group and answers its callbacks in submission order.
    fn commit(&self, group: Vec<Request>) {
        let mut commit = Commit::default();
        let mut callbacks = Vec::with_capacity(group.len());
        for request in group {
            commit.records.extend(request.records);
            commit.snapshots.extend(request.snapshot);
            callbacks.push(request.on_durable);
        }
        let started = Instant::now();
        let outcome = self.storage.commit(&commit);
        let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);

        let stats = &self.shared.stats;
        stats.commit_latency_us_last.store(latency_us, Ordering::Relaxed);
        stats.commit_latency_us_max.fetch_max(latency_us, Ordering::Relaxed);
        stats.commit_latency_us.observe(latency_us);
        match &outcome {
            Ok(()) => {
                let records = commit.records.len() as u64;
                let payload_bytes: usize = commit
                    .records
                    .iter()
                    .map(|record| record.payload.len())
                    .chain(commit.snapshots.iter().map(|snapshot| snapshot.payload.len()))
                    .sum();
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.records.fetch_add(records, Ordering::Relaxed);
                stats.payload_bytes.fetch_add(payload_bytes as u64, Ordering::Relaxed);
                stats.records_per_commit.observe(records);
            }
            Err(error) => {
                stats.commits_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, appends = callbacks.len(), "journal commit failed; the journal stops accepting appends");
                // Set before any callback runs, so a caller that sees the
                // error and appends again is refused.
                let _first_failure = self.shared.failure.set(error.clone());
            }
        }
        for on_durable in callbacks {
            on_durable(outcome.clone());
        }
    }
}
