//! The event consumer: feeds each store's committed events to the analytics
//! plugins the store enabled, exactly once, off the order path.
//!
//! One thread reads every shard's event stream ([`EventReader`]), groups the
//! new events by store, and hands each enabled analytics plugin the events
//! after its recorded position, in batches of at most
//! [`EVENTS_PER_BATCH_MAX`]; a batch that is too much work for one call
//! (past the plugin's deadline, fuel or memory) is offered again at once as
//! half as many events, and the batch grows back as calls go through
//! ([`BatchSize`]). The plugin's state writes and its new position
//! go back to the store's shard as one `RecordConsumed` command, so they
//! are journaled together: after a crash the consumer resumes exactly where
//! the journal says it stopped, and a batch retried after a crash is
//! refused by the kernel as already consumed rather than counted twice.
//!
//! Checkout never waits for it: it reads committed events from storage on
//! its own thread, and its commands are small. A slow or failing plugin
//! only falls behind; its lag is measured ([`Consumers::lag`]).
//!
//! Queries ([`Consumers::query`]) read the plugin's state for the store
//! from the shard and ask the plugin on the caller's thread, with an
//! instance per store like every other call.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bazaar_kernel::event::Event;
use bazaar_kernel::model::{PluginId, PluginKind, StoreId};
use bazaar_kernel::{Command, KernelError, PluginStateMap};
use bazaar_runtime::{Analyzer, CallError, EVENTS_PER_BATCH_MAX, PluginCall};

use crate::events::{EventReader, last_sequence_of_record, record_of};
use crate::node::{Node, NodeError};
use crate::plugins::{Implementation, PluginSet};

/// How often the consumer looks for new events when it found none: short
/// enough that a dashboard sees an order within a fraction of a second.
pub const POLL_INTERVAL_MS: u64 = 50;
/// Most analyzer instances the consumer and the queries keep (one per
/// store and plugin version), least recently used first out.
pub const ANALYZERS_MAX: usize = 256;
/// How long a plugin that failed a batch waits before it is offered the
/// batch again, at first; doubled on each further failure.
pub const RETRY_BACKOFF_MS_INITIAL: u64 = 100;
/// The longest wait between retries of a failing plugin.
pub const RETRY_BACKOFF_MS_MAX: u64 = 30_000;

/// How many times [`recompute`] offers a single event that ran past its
/// deadline (a larger batch is halved first, as the consumer does). The
/// deadline is wall time, which a busy machine may spend on other threads;
/// the live consumer offers such an event again later, and the reference
/// must not fail where the consumer would go on.
pub const RECOMPUTE_ATTEMPTS_MAX: u32 = 5;

/// The longest a slow consumer (one whose batches were cut down,
/// [`BatchSize`]) at a shard's frontier is fed in one pass, its batch under
/// way finished, before it is left to catch up as a laggard: a plugin too
/// slow to keep up must not hold back the fresh events of the shard's
/// other consumers.
pub const FRONTIER_FEED_MS_MAX: u64 = 25;

/// The longest one pass over a shard spends on its slow consumers behind
/// the frontier (a batch under way is finished), taking them in turn from
/// pass to pass: they use the consumer's spare time and never delay the
/// consumers that keep up by much more than this. Laggards with whole
/// batches (a failure, or a late start) catch up as fast as they can.
pub const CATCH_UP_MS_PER_PASS: u64 = 25;

/// Batches in a row that must go through before a consumer's batch, once
/// halved, doubles again: a plugin whose batches missed their deadline
/// under a burst of load gets back to large batches, while one that is
/// simply slow spends one miss in this many calls finding its size again.
pub const BATCH_GROWTH_AFTER_BATCHES: u32 = 16;

/// How many events a consumer offers its plugin per call. All it may
/// ([`EVENTS_PER_BATCH_MAX`]) at first; half the batch that was too much
/// work for one call, down to a single event; twice as many again after
/// [`BATCH_GROWTH_AFTER_BATCHES`] whole batches in a row went through.
/// Without this a plugin that needs more than its deadline for a full
/// batch would be offered that same batch for ever, however quickly it
/// could fold a smaller one. The state a plugin builds must not depend on where batches
/// end (the live consumer's batches already depend on when it read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSize {
    events: usize,
    batches_through: u32,
}

impl Default for BatchSize {
    fn default() -> Self {
        Self { events: EVENTS_PER_BATCH_MAX, batches_through: 0 }
    }
}

impl BatchSize {
    /// Events to offer in the next call.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Whether batches are cut down below [`EVENTS_PER_BATCH_MAX`]: the
    /// plugin is slow, and gets only a share of the consumer's time.
    pub fn is_cut(&self) -> bool {
        self.events < EVENTS_PER_BATCH_MAX
    }

    /// The next batch to offer out of `waiting`.
    pub fn next_batch<'a>(&self, waiting: &'a [Event]) -> &'a [Event] {
        &waiting[..self.events.min(waiting.len())]
    }

    /// After a call over `offered` events failed with `error`: whether to
    /// offer half as many at once (the batch size is then halved), rather
    /// than give up on the batch for now.
    pub fn shrink_after(&mut self, offered: usize, error: &CallError) -> bool {
        let too_much_for_one_call = matches!(
            error,
            CallError::DeadlineExceeded { .. }
                | CallError::FuelExhausted
                | CallError::MemoryLimitExceeded { .. }
        );
        if !too_much_for_one_call || offered <= 1 {
            return false;
        }
        self.events = offered / 2;
        self.batches_through = 0;
        true
    }

    /// After a call over `offered` events went through; only a whole batch
    /// of [`BatchSize::events`] counts towards growing (a shorter one shows
    /// nothing about the size).
    pub fn went_through(&mut self, offered: usize) {
        if offered < self.events {
            return;
        }
        self.batches_through += 1;
        if self.batches_through >= BATCH_GROWTH_AFTER_BATCHES {
            self.events = (self.events * 2).min(EVENTS_PER_BATCH_MAX);
            self.batches_through = 0;
        }
    }
}

/// How far one store's plugin is behind its shard's event stream.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConsumerLag {
    /// The store.
    pub store: String,
    /// The plugin.
    pub plugin: String,
    /// The last event sequence it processed.
    pub consumed_through: u64,
    /// Event records committed on the store's shard after that one.
    pub records_behind: u64,
    /// Events it is offered per call now: [`EVENTS_PER_BATCH_MAX`] unless
    /// recent batches were too much work for one call ([`BatchSize`]).
    pub batch_events: usize,
}

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The store has not enabled the plugin, or it is not an analytics
    /// plugin this node runs.
    #[error("{0}")]
    NotEnabled(String),
    /// The plugin failed or refused the query.
    #[error("the plugin could not answer: {0}")]
    Plugin(String),
    /// The node refused the read.
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// The running consumer.
pub struct Consumers {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    node: Arc<Node>,
    plugins: PluginSet,
    reader: EventReader,
    stop: AtomicBool,
    /// Analyzer instances by (store, plugin, version).
    analyzers: Mutex<Analyzers>,
    /// The lag of every consuming (store, plugin), refreshed each pass.
    lag: Mutex<BTreeMap<(StoreId, PluginId), ConsumerLag>>,
    /// Plugins that failed a batch: when they may retry, and the backoff
    /// that led there. Touched by the consumer thread only.
    retries: Mutex<HashMap<(StoreId, PluginId), (Instant, u64)>>,
    /// Consumers whose batches were cut down, and to what. Touched by the
    /// consumer thread only.
    batch_sizes: Mutex<HashMap<(StoreId, PluginId), BatchSize>>,
}

#[derive(Default)]
struct Analyzers {
    instances: HashMap<(StoreId, PluginId, String), (Analyzer, u64)>,
    uses: u64,
}

impl Analyzers {
    fn get(&mut self, store: &StoreId, plugin: &bazaar_runtime::AnalyticsPlugin) -> &mut Analyzer {
        self.uses += 1;
        let uses = self.uses;
        let key =
            (store.clone(), plugin.plugin_ref().id.clone(), plugin.plugin_ref().version.clone());
        if !self.instances.contains_key(&key) && self.instances.len() >= ANALYZERS_MAX {
            let oldest =
                self.instances.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.instances.remove(&oldest);
            }
        }
        let entry = self.instances.entry(key).or_insert_with(|| (plugin.analyzer(), uses));
        entry.1 = uses;
        &mut entry.0
    }
}

/// Where the consumer's reading of one shard stands.
#[derive(Default)]
struct ShardReading {
    /// Every event up to this sequence was offered to every consumer that
    /// is not a laggard.
    frontier: u64,
    /// Consumers behind the frontier (a failed batch, a slow one whose time
    /// ran out, or one enabled after the frontier passed its position),
    /// with how far they have read.
    laggards: BTreeMap<(StoreId, PluginId), u64>,
    /// Consumers seen at the frontier.
    known: std::collections::BTreeSet<(StoreId, PluginId)>,
    /// When the shard was last asked whether any of its stores enabled an
    /// analytics plugin, and the answer.
    consumers_checked: Option<(Instant, bool)>,
    /// Where among the slow laggards the next pass starts catching up, so
    /// that each gets its turn.
    next_slow_laggard: usize,
}

/// How far feeding a consumer got in the time it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fed {
    /// Every event it was offered.
    Everything,
    /// The time ran out once it had consumed the events through this
    /// sequence.
    Through(u64),
}

/// `events` grouped by store, each in sequence order.
fn by_store(events: Vec<Event>) -> BTreeMap<StoreId, Vec<Event>> {
    let mut grouped: BTreeMap<StoreId, Vec<Event>> = BTreeMap::new();
    for event in events {
        grouped.entry(event.store.clone()).or_default().push(event);
    }
    grouped
}

/// What the consumer needs of one store's analytics plugin for a pass.
struct Consuming {
    plugin: bazaar_runtime::AnalyticsPlugin,
    config: Option<Arc<str>>,
    state: Arc<PluginStateMap>,
    consumed_through: u64,
}

impl Consumers {
    /// Starts the consumer thread over `node`'s event streams, running the
    /// analytics plugins of `plugins`.
    pub fn start(node: Arc<Node>, plugins: PluginSet) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            reader: EventReader::new(node.storage().clone()),
            node,
            plugins,
            stop: AtomicBool::new(false),
            analyzers: Mutex::default(),
            lag: Mutex::default(),
            retries: Mutex::default(),
            batch_sizes: Mutex::default(),
        });
        let thread = std::thread::Builder::new().name("event-consumer".into()).spawn({
            let shared = shared.clone();
            move || shared.run()
        })?;
        Ok(Self { shared, thread: Some(thread) })
    }

    /// How far behind every consuming (store, plugin) is.
    pub fn lag(&self) -> Vec<ConsumerLag> {
        self.shared.lag.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    /// Asks `plugin`, as enabled by `store`, the query `name` with
    /// `arguments_json`; the answer is JSON. Blocking: call it off the
    /// async reactor.
    pub fn query(
        &self,
        store: &StoreId,
        plugin: &PluginId,
        name: &str,
        arguments_json: &str,
    ) -> Result<String, QueryError> {
        let shared = &self.shared;
        let consuming = shared.consuming(store)?;
        let Some(found) = consuming.into_iter().find(|(id, _)| id == plugin) else {
            return Err(QueryError::NotEnabled(format!(
                "store {store} has not enabled an analytics plugin {plugin}"
            )));
        };
        let (_, consuming) = found;
        let call = PluginCall {
            store: store.clone(),
            config_json: consuming.config.clone(),
            state: consuming.state.clone(),
            now_ms: crate::node::wall_clock_ms(),
            random_seed: 0,
        };
        let mut analyzers = shared.analyzers.lock().unwrap_or_else(PoisonError::into_inner);
        let outcome = analyzers.get(store, &consuming.plugin).query(call, name, arguments_json);
        outcome.result.map_err(|error| QueryError::Plugin(error.to_string()))
    }

    /// Stops the thread after its current pass.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // A panic in the consumer was already reported by the thread;
            // there is nothing left to undo here.
            let _ = thread.join();
        }
    }
}

impl Drop for Consumers {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    fn run(&self) {
        let mut shards: Vec<ShardReading> =
            (0..self.node.shard_count()).map(|_| ShardReading::default()).collect();
        while !self.stop.load(Ordering::Acquire) {
            let mut busy = false;
            for (shard, reading) in shards.iter_mut().enumerate() {
                match self.pass(shard as u32, reading) {
                    Ok(found) => busy |= found,
                    Err(error) => tracing::warn!(shard, %error, "event consumer pass failed"),
                }
            }
            if !busy {
                std::thread::park_timeout(Duration::from_millis(POLL_INTERVAL_MS));
            }
        }
    }

    /// One read of `shard`'s stream at its frontier, then one catch-up read
    /// for each consumer behind it, as time allows; returns whether there
    /// is more to do at once (it found events, or ran out of time).
    fn pass(&self, shard: u32, reading: &mut ShardReading) -> Result<bool, QueryError> {
        let has_consumers = self.shard_has_consumers(shard, reading)?;
        if reading.laggards.is_empty() && !has_consumers {
            // Nothing to feed: the frontier passes every committed record
            // without reading or decoding one, and the thread rests.
            let last_record = self.reader.last_record(shard);
            if last_record > 0 {
                reading.frontier = reading.frontier.max(last_sequence_of_record(last_record));
            }
            return Ok(false);
        }
        let after = reading.frontier;
        let events =
            self.reader.read(shard, after).map_err(|e| QueryError::Plugin(e.to_string()))?;
        let found = !events.is_empty();
        let mut consumers = BTreeMap::new();
        if let Some(last) = events.last().map(|event| event.sequence) {
            for (store, events) in by_store(events) {
                for (plugin, consuming) in self.consuming(&store)? {
                    let key = (store.clone(), plugin.clone());
                    consumers.insert(key.clone(), ());
                    if reading.laggards.contains_key(&key) {
                        continue;
                    }
                    // Seen first after the frontier moved on: it may have
                    // missed earlier events, so it catches up on its own.
                    if !reading.known.contains(&key) && consuming.consumed_through < after {
                        reading.laggards.insert(key, consuming.consumed_through);
                        continue;
                    }
                    reading.known.insert(key.clone());
                    let until = Instant::now() + Duration::from_millis(FRONTIER_FEED_MS_MAX);
                    match self.offer(&key, consuming, &events, until) {
                        Ok(Fed::Everything) => {}
                        Ok(Fed::Through(consumed_through)) | Err(consumed_through) => {
                            reading.laggards.insert(key, consumed_through);
                        }
                    }
                }
            }
            reading.frontier = last;
        }
        // Each consumer behind the frontier reads from its own position, so
        // a slow or failing one never holds the others back. Those with
        // whole batches catch up as fast as they can; the slow ones take
        // turns at a bounded share of the pass.
        for key in reading.laggards.keys() {
            consumers.insert(key.clone(), ());
        }
        let (mut slow, whole): (Vec<_>, Vec<_>) = reading
            .laggards
            .iter()
            .filter(|(key, _)| !self.retry_wait(key))
            .map(|(key, cursor)| (key.clone(), *cursor))
            .partition(|(key, _)| self.batch_size(key).is_cut());
        for (key, cursor) in whole {
            let until = Instant::now() + Duration::from_millis(FRONTIER_FEED_MS_MAX);
            self.catch_up(shard, reading, &mut consumers, key, cursor, until)?;
        }
        let first = reading.next_slow_laggard % slow.len().max(1);
        slow.rotate_left(first);
        let catch_up_until = Instant::now() + Duration::from_millis(CATCH_UP_MS_PER_PASS);
        let mut time_ran_out = false;
        for (key, cursor) in slow {
            if Instant::now() >= catch_up_until {
                time_ran_out = true;
                break;
            }
            reading.next_slow_laggard = reading.next_slow_laggard.wrapping_add(1);
            time_ran_out |=
                self.catch_up(shard, reading, &mut consumers, key, cursor, catch_up_until)?;
        }
        self.measure(shard, &consumers);
        // A catch-up cut short goes on at once, not after a poll interval.
        Ok(found || time_ran_out)
    }

    /// Offers laggard `key` the window of `shard`'s stream after `cursor`,
    /// a slow one only until `until`; returns whether its time ran out.
    fn catch_up(
        &self,
        shard: u32,
        reading: &mut ShardReading,
        consumers: &mut BTreeMap<(StoreId, PluginId), ()>,
        key: (StoreId, PluginId),
        cursor: u64,
        until: Instant,
    ) -> Result<bool, QueryError> {
        let window =
            self.reader.read(shard, cursor).map_err(|e| QueryError::Plugin(e.to_string()))?;
        let end = window.last().map_or(reading.frontier, |event| event.sequence);
        let (store, plugin) = &key;
        let mine: Vec<Event> = window.into_iter().filter(|event| event.store == *store).collect();
        let consuming = self.consuming(store)?.into_iter().find(|(id, _)| id == plugin);
        let Some((_, consuming)) = consuming else {
            // Disabled meanwhile: nothing more to do for it, or to report.
            consumers.remove(&key);
            self.forget(reading, &key);
            return Ok(false);
        };
        match self.offer(&key, consuming, &mine, until) {
            Ok(Fed::Everything) if end >= reading.frontier => {
                reading.laggards.remove(&key);
                reading.known.insert(key);
            }
            Ok(Fed::Everything) => {
                reading.laggards.insert(key, end);
            }
            Ok(Fed::Through(consumed_through)) => {
                reading.laggards.insert(key, consumed_through);
                return Ok(true);
            }
            Err(_) => {}
        }
        Ok(false)
    }

    /// Drops what the consumer keeps about `key`, a plugin the store no
    /// longer runs: its place in `reading`, its lag, batch size and
    /// backoff.
    fn forget(&self, reading: &mut ShardReading, key: &(StoreId, PluginId)) {
        reading.laggards.remove(key);
        reading.known.remove(key);
        self.lag.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        self.batch_sizes.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        self.retries.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    /// Feeds `events` (one store's, in order) to a consumer from its
    /// position on, a slow one only until `until` ([`Shared::feed`]). On
    /// failure schedules a retry and returns the position.
    fn offer(
        &self,
        key: &(StoreId, PluginId),
        consuming: Consuming,
        events: &[Event],
        until: Instant,
    ) -> Result<Fed, u64> {
        let consumed_through = consuming.consumed_through;
        if self.retry_wait(key) {
            return Err(consumed_through);
        }
        // A store's events are in sequence order: the unseen ones are a
        // suffix.
        let seen = events.partition_point(|e| e.sequence <= consumed_through);
        if seen == events.len() {
            return Ok(Fed::Everything);
        }
        let (store, plugin) = key;
        match self.feed(store, plugin, consuming, &events[seen..], until) {
            Ok(fed) => {
                self.retry_clear(key);
                Ok(fed)
            }
            Err(consumed_through) => {
                self.retry_later(key.clone());
                Err(consumed_through)
            }
        }
    }

    /// Whether `key` is still waiting out its backoff.
    fn retry_wait(&self, key: &(StoreId, PluginId)) -> bool {
        let retries = self.retries.lock().unwrap_or_else(PoisonError::into_inner);
        retries.get(key).is_some_and(|(until, _)| Instant::now() < *until)
    }

    /// Schedules `key`'s next attempt after a doubled backoff.
    fn retry_later(&self, key: (StoreId, PluginId)) {
        let mut retries = self.retries.lock().unwrap_or_else(PoisonError::into_inner);
        let backoff_ms = retries
            .get(&key)
            .map_or(RETRY_BACKOFF_MS_INITIAL, |(_, last)| (last * 2).min(RETRY_BACKOFF_MS_MAX));
        let until = Instant::now() + Duration::from_millis(backoff_ms);
        retries.insert(key, (until, backoff_ms));
    }

    /// Forgets `key`'s failures after a success.
    fn retry_clear(&self, key: &(StoreId, PluginId)) {
        self.retries.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    /// Feeds `events` to one store's plugin in batches, recording each.
    /// While its batches are cut down (a slow plugin) it starts no batch
    /// after `until`: neither a next batch nor a halved retry, though the
    /// first call always runs. On failure returns the sequence the plugin
    /// had consumed through.
    fn feed(
        &self,
        store: &StoreId,
        plugin: &PluginId,
        mut consuming: Consuming,
        events: &[Event],
        until: Instant,
    ) -> Result<Fed, u64> {
        let key = (store.clone(), plugin.clone());
        let mut size = self.batch_size(&key);
        let mut rest = events;
        let fed = loop {
            if rest.is_empty() {
                break Ok(Fed::Everything);
            }
            if size.is_cut() && rest.len() < events.len() && Instant::now() >= until {
                break Ok(Fed::Through(consuming.consumed_through));
            }
            let batch = size.next_batch(rest);
            let through_sequence = batch.last().map_or(0, |event| event.sequence);
            let call = PluginCall {
                store: store.clone(),
                config_json: consuming.config.clone(),
                state: consuming.state.clone(),
                now_ms: batch.last().map_or(0, |event| event.at_ms),
                random_seed: through_sequence,
            };
            let outcome = {
                let mut analyzers = self.analyzers.lock().unwrap_or_else(PoisonError::into_inner);
                analyzers.get(store, &consuming.plugin).ingest(call, batch)
            };
            if let Err(error) = outcome.result {
                if size.shrink_after(batch.len(), &error) {
                    tracing::info!(%store, %plugin, %error, events = size.events(), "an analytics batch was too much for one call; offering fewer events");
                    if Instant::now() >= until {
                        break Ok(Fed::Through(consuming.consumed_through));
                    }
                    continue;
                }
                tracing::warn!(%store, %plugin, %error, "analytics batch failed; it will be offered again");
                break Err(consuming.consumed_through);
            }
            size.went_through(batch.len());
            let command = Command::RecordConsumed {
                store: store.clone(),
                plugin: plugin.clone(),
                through_sequence,
                state_writes: outcome.state_writes,
            };
            match self.node.execute(command) {
                Ok(_) | Err(NodeError::Kernel(KernelError::AlreadyConsumed { .. })) => {}
                Err(error) => {
                    tracing::warn!(%store, %plugin, %error, "recording consumed events failed");
                    break Err(consuming.consumed_through);
                }
            }
            consuming.consumed_through = through_sequence;
            rest = &rest[batch.len()..];
            // The next batch builds on the state this one wrote.
            let state = self.node.read(store, {
                let (store, plugin) = (store.clone(), plugin.clone());
                move |shard| {
                    shard.store(&store).map(|state| state.plugin_state(&plugin)).unwrap_or_default()
                }
            });
            match state {
                Ok(state) => consuming.state = state,
                Err(_) => break Err(consuming.consumed_through),
            }
        };
        self.keep_batch_size(key, size);
        fed
    }

    /// The batch size `key` is offered now.
    fn batch_size(&self, key: &(StoreId, PluginId)) -> BatchSize {
        let sizes = self.batch_sizes.lock().unwrap_or_else(PoisonError::into_inner);
        sizes.get(key).copied().unwrap_or_default()
    }

    /// Keeps `key`'s batch size for its next batch; only cut-down sizes
    /// take room.
    fn keep_batch_size(&self, key: (StoreId, PluginId), size: BatchSize) {
        let mut sizes = self.batch_sizes.lock().unwrap_or_else(PoisonError::into_inner);
        if !size.is_cut() {
            sizes.remove(&key);
        } else {
            sizes.insert(key, size);
        }
    }

    /// Whether any store of `shard` enabled an analytics plugin, asked of
    /// the shard at most once per [`POLL_INTERVAL_MS`]: a plugin enabled
    /// meanwhile is found at the next check and catches up from its own
    /// position. The same read finds the consumers of the shard whose
    /// plugin was switched off: they are forgotten (their lag, batch size,
    /// backoff and place in the reading), so their figures stop being
    /// reported and one switched on again catches up from its position.
    fn shard_has_consumers(
        &self,
        shard: u32,
        reading: &mut ShardReading,
    ) -> Result<bool, QueryError> {
        if let Some((checked_at, answer)) = reading.consumers_checked
            && checked_at.elapsed() < Duration::from_millis(POLL_INTERVAL_MS)
        {
            return Ok(answer);
        }
        let tracked: Vec<(StoreId, PluginId)> = {
            let lag = self.lag.lock().unwrap_or_else(PoisonError::into_inner);
            lag.keys().filter(|(store, _)| self.node.shard_of(store) == shard).cloned().collect()
        };
        let view = self.plugins.view();
        let (answer, switched_off) = self.node.read_shard(shard, move |state| {
            let analytics = |id: &PluginId| {
                view.plugins.get(id).is_some_and(|plugin| plugin.kind == PluginKind::Analytics)
            };
            let answer =
                state.stores().values().any(|store| store.plugin_configs().keys().any(&analytics));
            let switched_off: Vec<(StoreId, PluginId)> = tracked
                .into_iter()
                .filter(|(store, plugin)| {
                    let enabled = state
                        .stores()
                        .get(store)
                        .is_some_and(|store| store.plugin_configs().contains_key(plugin));
                    !(enabled && analytics(plugin))
                })
                .collect();
            (answer, switched_off)
        })?;
        for key in switched_off {
            self.forget(reading, &key);
        }
        reading.consumers_checked = Some((Instant::now(), answer));
        Ok(answer)
    }

    /// The store's enabled analytics plugins with their configuration,
    /// state and position, read from its shard.
    fn consuming(&self, store: &StoreId) -> Result<Vec<(PluginId, Consuming)>, QueryError> {
        let view = self.plugins.view();
        let store_id = store.clone();
        let enabled = self.node.read(store, move |shard| {
            let Some(state) = shard.store(&store_id) else { return Vec::new() };
            state
                .plugin_configs()
                .iter()
                .map(|(id, config)| {
                    (
                        id.clone(),
                        config.settings.version_pin.clone(),
                        Arc::<str>::from(config.json.as_str()),
                        state.plugin_state(id),
                        state.consumed_through(id),
                    )
                })
                .collect::<Vec<_>>()
        })?;
        Ok(enabled
            .into_iter()
            .filter_map(|(id, pin, config, state, consumed_through)| {
                let installed =
                    view.plugins.get(&id).filter(|p| p.kind == PluginKind::Analytics)?;
                let version = pin.or_else(|| installed.active.clone())?;
                let Implementation::Analytics(plugin) = installed.versions.get(&version)?.as_ref()
                else {
                    return None;
                };
                let consuming = Consuming {
                    plugin: plugin.clone(),
                    config: Some(config),
                    state,
                    consumed_through,
                };
                Some((id, consuming))
            })
            .collect())
    }

    /// Records the lag of `shard`'s consumers.
    fn measure(&self, shard: u32, consumers: &BTreeMap<(StoreId, PluginId), ()>) {
        let head = self.reader.last_record(shard);
        let mut lag = self.lag.lock().unwrap_or_else(PoisonError::into_inner);
        for (store, plugin) in consumers.keys() {
            let Ok(consumed_through) = self.node.read(store, {
                let (store, plugin) = (store.clone(), plugin.clone());
                move |shard| shard.store(&store).map_or(0, |state| state.consumed_through(&plugin))
            }) else {
                continue;
            };
            lag.insert(
                (store.clone(), plugin.clone()),
                ConsumerLag {
                    store: store.to_string(),
                    plugin: plugin.to_string(),
                    consumed_through,
                    records_behind: head.saturating_sub(record_of(consumed_through)),
                    batch_events: self.batch_size(&(store.clone(), plugin.clone())).events(),
                },
            );
        }
    }
}

/// Folds every retained event of `store` on `shard` into a fresh state of
/// `plugin`, from scratch: the reference a live consumer must match.
/// Batches the way a consumer does ([`BatchSize`]), on the caller's thread.
pub fn recompute(
    reader: &EventReader,
    shard: u32,
    store: &StoreId,
    plugin: &bazaar_runtime::AnalyticsPlugin,
    config: Option<Arc<str>>,
) -> Result<PluginStateMap, String> {
    let mut analyzer = plugin.analyzer();
    let mut state = PluginStateMap::new();
    let mut size = BatchSize::default();
    let mut after = 0;
    loop {
        let events = reader.read(shard, after).map_err(|error| error.to_string())?;
        let Some(last) = events.last().map(|event| event.sequence) else { break };
        after = last;
        let mine: Vec<Event> = events.into_iter().filter(|event| event.store == *store).collect();
        let mut rest = mine.as_slice();
        let mut attempts = 1;
        while !rest.is_empty() {
            let batch = size.next_batch(rest);
            let call = PluginCall {
                store: store.clone(),
                config_json: config.clone(),
                state: Arc::new(state.clone()),
                now_ms: batch.last().map_or(0, |event| event.at_ms),
                random_seed: batch.last().map_or(0, |event| event.sequence),
            };
            let outcome = analyzer.ingest(call, batch);
            match outcome.result {
                Ok(()) => {}
                Err(error) if size.shrink_after(batch.len(), &error) => continue,
                Err(CallError::DeadlineExceeded { .. }) if attempts < RECOMPUTE_ATTEMPTS_MAX => {
                    attempts += 1;
                    continue;
                }
                Err(error) => return Err(error.to_string()),
            }
            attempts = 1;
            size.went_through(batch.len());
            for write in outcome.state_writes {
                match write.value {
                    Some(value) => state.insert(write.key, value),
                    None => state.remove(&write.key),
                };
            }
            rest = &rest[batch.len()..];
        }
    }
    Ok(state)
}

/// Asks `plugin` the query `name` over `state`, as `store` would.
pub fn ask(
    plugin: &bazaar_runtime::AnalyticsPlugin,
    store: &StoreId,
    config: Option<Arc<str>>,
    state: PluginStateMap,
    name: &str,
    arguments_json: &str,
) -> Result<String, String> {
    let call = PluginCall {
        store: store.clone(),
        config_json: config,
        state: Arc::new(state),
        now_ms: crate::node::wall_clock_ms(),
        random_seed: 0,
    };
    plugin.analyzer().query(call, name, arguments_json).result.map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_too_much_for_one_call_halves_down_to_one_event_and_grows_back_on_whole_batches() {
        let mut size = BatchSize::default();
        let deadline = CallError::DeadlineExceeded { deadline_ms: 20 };
        assert!(size.shrink_after(3_000, &deadline), "the batch offered is what is halved");
        assert_eq!(size.events(), 1_500);
        assert!(size.shrink_after(1_500, &CallError::FuelExhausted));
        assert!(size.shrink_after(750, &CallError::MemoryLimitExceeded { limit_bytes: 1 }));
        assert_eq!(size.events(), 375);
        // Other failures say nothing about the batch's size.
        assert!(!size.shrink_after(375, &CallError::Trap("unreachable".into())));
        assert_eq!(size.events(), 375);
        while size.events() > 1 {
            assert!(size.shrink_after(size.events(), &deadline));
        }
        assert!(!size.shrink_after(1, &deadline), "one event is never split");

        for _ in 1..BATCH_GROWTH_AFTER_BATCHES {
            size.went_through(size.events());
        }
        assert_eq!(size.events(), 1);
        size.went_through(size.events());
        assert_eq!(size.events(), 2);
        for _ in 0..BATCH_GROWTH_AFTER_BATCHES * 20 {
            size.went_through(size.events());
        }
        assert_eq!(size.events(), EVENTS_PER_BATCH_MAX);
    }
}
