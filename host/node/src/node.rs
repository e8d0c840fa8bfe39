//! The node: stores partitioned into shards, one writer thread per shard,
//! one group-committing journal, and recovery by snapshot plus replay.
//!
//! A request travels: caller -> bounded shard queue -> shard writer (which
//! runs the plugins, applies the command to the kernel and batches it) ->
//! journal thread (one durable commit for many batches) -> the caller's
//! reply. Nothing is acknowledged before the journal says it is durable.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use bazaar_kernel::event::{EventKind, RefusalReason, derive_events, order_placed_events};
use bazaar_kernel::model::{
    Cart, LineRequest, OrderNumber, OrderRequest, PluginKind, Sku, StoreId, Totals,
};
use bazaar_kernel::money::Currency;
use bazaar_kernel::{
    Command, IdempotencyCheck, KernelError, Outcome, PlaceOrder, PlaceOrderCommand, Shard,
    SnapshotCopy, order_totals,
};
use bazaar_store::{Backend, Journal, JournalLimits, JournalRecord, Snapshot, Storage};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::events::{
    EVENT_RECORDS_RETAINED_MAX, EVENTS_PER_RECORD_MAX, EventRecord, SHARDS_MAX, StoreEvents,
    event_stream, record_of,
};
use crate::pipeline::{PluginOutputs, Refusal, ShardPlugins};
use crate::plugins::PluginSet;
use crate::snapshot_files::SnapshotFiles;

/// Default number of shards: one writer per core of a small machine.
pub const SHARD_COUNT_DEFAULT: u32 = 2;
/// Default depth of each shard's request queue. Deep enough to keep a
/// writer busy through a journal commit, shallow enough that a saturated
/// node refuses at once rather than queueing for seconds.
pub const SHARD_QUEUE_DEPTH_DEFAULT: usize = 8_192;
/// Most requests one shard writer takes into one batch (one journal record).
/// A batch goes to the journal only once all of it is applied, so its first
/// order waits for its last: with 64, a burst of a few hundred orders
/// reaches the journal in parts, and the journal commits the first while
/// the writer applies the next. At 256 connections the order p99 came out
/// lower than with 1,024, and orders per second no lower (BENCHMARKS.md).
pub const BATCH_REQUESTS_MAX_DEFAULT: usize = 64;
/// Commands between two snapshots of a shard: bounds replay at start-up to
/// about a second of work without snapshotting a large state too often.
pub const SNAPSHOT_EVERY_COMMANDS_DEFAULT: u64 = 500_000;
/// Default cap on the orders a node holds. Every order stays in memory
/// (about 1.8 KB each with its idempotency key, `bench memory`), so without
/// a cap a busy node grows until the system kills it, and then cannot even
/// start again: replay rebuilds the same state. Four million orders are
/// about 6.6 GiB.
pub const ORDERS_HELD_MAX_DEFAULT: u64 = 4_000_000;
/// Registry key holding the shard count the data directory was created with.
const SHARD_COUNT_KEY: &[u8] = b"node/shard-count";

/// How to open a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where the journal and snapshots live.
    pub data_dir: PathBuf,
    /// The storage engine.
    pub backend: Backend,
    /// Shards for a new data directory (an existing one keeps its own).
    pub shard_count: u32,
    /// Depth of each shard's request queue.
    pub queue_depth: usize,
    /// Most requests in one shard batch.
    pub batch_requests_max: usize,
    /// Commands between snapshots of a shard.
    pub snapshot_every_commands: u64,
    /// Keep event records after every consumer has read them (for audit,
    /// or to feed a consumer enabled later); only the retention limit
    /// drops them.
    pub keep_consumed_events: bool,
    /// Group-commit limits of the journal.
    pub journal: JournalLimits,
    /// Most orders the node holds; beyond it new orders are refused with
    /// [`NodeError::OrdersHeldFull`] (retries of placed orders are still
    /// answered). Orders replayed at start-up count but are never refused.
    pub orders_held_max: u64,
}

impl NodeConfig {
    /// The embedded defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            backend: Backend::Redb,
            shard_count: SHARD_COUNT_DEFAULT,
            queue_depth: SHARD_QUEUE_DEPTH_DEFAULT,
            batch_requests_max: BATCH_REQUESTS_MAX_DEFAULT,
            snapshot_every_commands: SNAPSHOT_EVERY_COMMANDS_DEFAULT,
            keep_consumed_events: false,
            journal: JournalLimits::default(),
            orders_held_max: ORDERS_HELD_MAX_DEFAULT,
        }
    }
}

/// Why the node could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The kernel refused the command; nothing changed.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The shard's queue is full: retry later.
    #[error("the node is saturated: shard {shard} has {depth} requests queued; retry shortly")]
    Overloaded {
        /// The shard.
        shard: u32,
        /// Its queue depth.
        depth: usize,
    },
    /// The journal failed; the node stops acknowledging until restarted.
    #[error("journal failure, the node must be restarted: {0}")]
    Journal(String),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The node holds as many orders as it may: a new one is refused until
    /// the operator raises the limit.
    #[error(
        "the node holds {held} orders, at or over its limit of {limit} (orders_held_max): it \
         takes no new orders until the limit is raised; the orders it holds are still served"
    )]
    OrdersHeldFull {
        /// Orders held.
        held: u64,
        /// The limit.
        limit: u64,
    },
    /// The data directory could not be opened or replayed.
    #[error("recovery failed: {0}")]
    Recovery(String),
    /// A risk plugin of the store rejected the order; nothing was reserved.
    #[error("order rejected by {plugin} ({code}): {reason}")]
    RiskRejected {
        /// The plugin, `id@version`.
        plugin: String,
        /// Its code for the rule.
        code: String,
        /// Its explanation, for the customer.
        reason: String,
    },
    /// A risk plugin failed; risk fails closed, so the order was not placed.
    #[error("order not placed: risk check by {plugin} is unavailable: {reason}")]
    RiskUnavailable {
        /// The plugin, `id@version`.
        plugin: String,
        /// What went wrong.
        reason: String,
    },
    /// A pricing or logistics plugin whose failure policy is fail-closed
    /// failed, so the order was not placed.
    #[error("order not placed: {kind} plugin {plugin} is unavailable: {reason}")]
    PluginUnavailable {
        /// The plugin, `id@version`.
        plugin: String,
        /// Its extension point.
        kind: bazaar_kernel::model::PluginKind,
        /// What went wrong.
        reason: String,
    },
}

impl From<Refusal> for NodeError {
    fn from(refusal: Refusal) -> Self {
        let name =
            |plugin: &bazaar_kernel::model::PluginRef| format!("{}@{}", plugin.id, plugin.version);
        match refusal {
            Refusal::Rejected { plugin, code, reason } => {
                NodeError::RiskRejected { plugin: name(&plugin), code, reason }
            }
            Refusal::Unavailable { plugin, kind: PluginKind::Risk, reason } => {
                NodeError::RiskUnavailable { plugin: name(&plugin), reason }
            }
            Refusal::Unavailable { plugin, kind, reason } => {
                NodeError::PluginUnavailable { plugin: name(&plugin), kind, reason }
            }
        }
    }
}

/// An acknowledged order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderReceipt {
    /// Its number in the store.
    pub order: OrderNumber,
    /// Its totals.
    pub totals: Totals,
    /// True when the idempotency key matched an earlier identical request.
    pub duplicate: bool,
}

impl OrderReceipt {
    fn from_outcome(outcome: Outcome) -> Self {
        match outcome {
            Outcome::OrderPlaced { order, totals, duplicate } => Self { order, totals, duplicate },
            other => unreachable!("placing an order produced {other:?}"),
        }
    }
}

/// Where the result of a request goes; called exactly once, after the
/// result is durable (or at once for a refusal).
pub type Reply = Box<dyn FnOnce(Result<Outcome, NodeError>) + Send>;

/// A read run on a shard's writer thread against its current state.
pub type Read = Box<dyn FnOnce(&Shard) + Send>;

/// A look at the state run on the shard writer right after a request was
/// applied (or an order was found to repeat an earlier one), before it is
/// durable; never run for a refused request. The request's [`Reply`] still
/// comes later, once the change is durable.
pub type AfterApply = Box<dyn FnOnce(&Shard, &Outcome) + Send>;

/// A unit of work for a shard writer.
enum Work {
    /// Price, route and place an order.
    PlaceOrder { store: StoreId, request: OrderRequest, reply: Reply, after: Option<AfterApply> },
    /// Apply an administrative command as given.
    Command { command: Command, reply: Reply, after: Option<AfterApply> },
    /// Run a read.
    Read(Read),
    /// Price and route an order without placing it.
    Preview { store: StoreId, request: OrderRequest, reply: PreviewReply },
}

/// What an order would be, priced and routed by the store's plugins, without
/// being placed: nothing is reserved or journaled.
#[derive(Clone, Debug)]
pub struct Preview {
    /// The cart at catalogue prices.
    pub cart: Cart,
    /// Each plugin's contribution and failures, and the plan.
    pub outputs: PluginOutputs,
    /// What the order would cost.
    pub totals: Totals,
}

/// Where a preview goes; called exactly once.
pub type PreviewReply = Box<dyn FnOnce(Result<Preview, NodeError>) + Send>;

/// One journal record: the commands one shard batch applied, in order.
#[derive(Serialize, Deserialize)]
enum JournalEntry {
    /// Format 1.
    V1(Vec<Command>),
}

/// A batch's journal record, encoded command by command as the writer
/// applies them, so that an order is encoded before it is moved into the
/// shard's state rather than copied there. The payload is the bytes of
/// `JournalEntry::V1` of the same commands.
#[derive(Default)]
struct JournalBatch {
    /// The commands' encodings, one after another.
    commands_encoded: Vec<u8>,
    /// How many commands.
    commands: usize,
}

/// serde's number of `JournalEntry::V1`, its first variant.
const JOURNAL_ENTRY_V1: u32 = 0;

impl JournalBatch {
    /// Adds `command` (a [`Command`], or a [`PlaceOrderCommand`] that
    /// encodes as one).
    fn push(&mut self, command: &impl Serialize) {
        // Commands encode into a Vec; a failure is a bug that must not
        // reach the journal as a broken record.
        self.commands_encoded =
            postcard::to_extend(command, std::mem::take(&mut self.commands_encoded))
                .expect("commands encode");
        self.commands += 1;
    }

    fn is_empty(&self) -> bool {
        self.commands == 0
    }

    /// The record: the variant of `JournalEntry::V1` and the number of
    /// commands as postcard writes them, then the commands.
    fn into_payload(self) -> Vec<u8> {
        let header = Vec::with_capacity(self.commands_encoded.len() + 8);
        let mut payload = postcard::to_extend(&(JOURNAL_ENTRY_V1, self.commands), header)
            .expect("a variant and a count encode");
        payload.extend_from_slice(&self.commands_encoded);
        payload
    }
}

/// Counters of the node's activity.
#[derive(Debug, Default)]
pub struct NodeStats {
    /// Orders created.
    pub orders_placed: AtomicU64,
    /// Orders answered from an earlier identical request.
    pub orders_duplicate: AtomicU64,
    /// Orders and commands the kernel refused.
    pub refused: AtomicU64,
    /// Shard batches sent to the journal.
    pub batches: AtomicU64,
    /// Commands journaled.
    pub commands_journaled: AtomicU64,
    /// Snapshots taken (handed to the snapshot thread).
    pub snapshots: AtomicU64,
    /// Snapshots durably written.
    pub snapshots_written: AtomicU64,
}

/// The orders the node holds, against its limit. The shard writers share
/// it: a writer takes a place just before it applies a new order and gives
/// it back if the kernel refuses the order, so the limit holds exactly
/// across shards.
#[derive(Debug)]
pub struct OrdersHeld {
    held: AtomicU64,
    limit: u64,
}

impl OrdersHeld {
    /// Orders held now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// The most the node may hold.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The refusal of a new order while `held` orders are held.
    fn full(&self, held: u64) -> NodeError {
        NodeError::OrdersHeldFull { held, limit: self.limit }
    }

    /// Refuses at once when no place is left, before any plugin runs for
    /// an order that cannot be placed.
    fn check(&self) -> Result<(), NodeError> {
        let held = self.held();
        if held >= self.limit {
            return Err(self.full(held));
        }
        Ok(())
    }

    /// Takes a place for a new order.
    fn take(&self) -> Result<(), NodeError> {
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held < self.limit).then_some(held + 1)
            })
            .map(drop)
            .map_err(|held| self.full(held))
    }

    /// Gives back a place taken for an order that was not placed.
    fn give_back(&self) {
        self.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running node.
pub struct Node {
    /// Each shard's request queue.
    shards: Vec<Sender<Work>>,
    /// The writer threads, joined on shutdown.
    writers: Vec<JoinHandle<()>>,
    /// The snapshot thread, joined after the writers (it finishes the
    /// snapshots they handed it).
    snapshotter: Option<JoinHandle<()>>,
    /// The group-commit journal.
    journal: Arc<Journal>,
    /// The storage under the journal.
    storage: Arc<dyn Storage>,
    /// Activity counters.
    stats: Arc<NodeStats>,
    /// The orders held, against the limit.
    orders_held: Arc<OrdersHeld>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("shards", &self.shards.len()).finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the data directory, recovers every shard from its latest
    /// snapshot plus journal, and starts the writers.
    pub fn open(config: NodeConfig, plugins: PluginSet) -> Result<Self, NodeError> {
        let recovery = |e: &dyn std::fmt::Display| NodeError::Recovery(e.to_string());
        let storage =
            bazaar_store::open(config.backend, &config.data_dir).map_err(|e| recovery(&e))?;
        let shard_count = match storage.kv_get(SHARD_COUNT_KEY).map_err(|e| recovery(&e))? {
            Some(bytes) => {
                let bytes: [u8; 4] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| recovery(&"the stored shard count is corrupt"))?;
                u32::from_le_bytes(bytes)
            }
            None => {
                let count = config.shard_count.max(1);
                storage.kv_put(SHARD_COUNT_KEY, &count.to_le_bytes()).map_err(|e| recovery(&e))?;
                count
            }
        };
        if shard_count > SHARDS_MAX {
            return Err(recovery(&format!(
                "{shard_count} shards is more than the {SHARDS_MAX} an event sequence can name"
            )));
        }
        let snapshot_files = SnapshotFiles::open(&config.data_dir).map_err(|e| recovery(&e))?;
        let mut recovered = Vec::new();
        let mut snapshot_names = BTreeMap::new();
        for index in 0..shard_count {
            let (shard, last_sequence, snapshot_file) =
                recover_shard(storage.as_ref(), &snapshot_files, index)?;
            recovered.push((shard, last_sequence));
            snapshot_names.extend(snapshot_file.map(|name| (index, name)));
        }
        // Files no stored snapshot names: replaced ones, and any whose
        // reference was never committed.
        snapshot_files
            .keep_only(&snapshot_names)
            .map_err(|e| recovery(&format!("cleaning the snapshot directory: {e}")))?;
        let journal =
            Arc::new(Journal::start(storage.clone(), config.journal).map_err(|e| recovery(&e))?);
        let stats = Arc::new(NodeStats::default());
        // Replayed orders count, even beyond a limit lowered since: they
        // were acknowledged.
        let held = recovered
            .iter()
            .flat_map(|(shard, _)| shard.stores().values())
            .map(|state| state.orders().len() as u64)
            .sum();
        let orders_held =
            Arc::new(OrdersHeld { held: AtomicU64::new(held), limit: config.orders_held_max });
        // One snapshot in flight per shard at most; a writer that finds the
        // queue full snapshots later rather than waiting.
        let (snapshot_sender, snapshot_jobs) = crossbeam_channel::bounded(shard_count as usize);
        let snapshotter = {
            let snapshotter = Snapshotter {
                journal: journal.clone(),
                stats: stats.clone(),
                files: snapshot_files,
                names: snapshot_names,
            };
            std::thread::Builder::new()
                .name("snapshots".into())
                .spawn(move || snapshotter.run(&snapshot_jobs))
                .map_err(|e| recovery(&e))?
        };
        let mut shards = Vec::new();
        let mut writers = Vec::new();
        for (index, (shard, last_sequence)) in (0..shard_count).zip(recovered) {
            let (sender, receiver) = crossbeam_channel::bounded(config.queue_depth.max(1));
            let writer = ShardWriter {
                index,
                shard,
                next_sequence: last_sequence + 1,
                commands_since_snapshot: 0,
                plugins: plugins.for_shard(),
                journal: journal.clone(),
                stats: stats.clone(),
                orders_held: orders_held.clone(),
                batch_requests_max: config.batch_requests_max.max(1),
                snapshot_every_commands: config.snapshot_every_commands.max(1),
                keep_consumed_events: config.keep_consumed_events,
                snapshots: snapshot_sender.clone(),
                last_time_ms: 0,
                next_event_record: storage.last_sequence(event_stream(index)) + 1,
                events_compacted_through: storage
                    .latest_snapshot(event_stream(index))
                    .map_err(|e| recovery(&e))?
                    .map_or(0, |snapshot| snapshot.sequence),
            };
            let handle = std::thread::Builder::new()
                .name(format!("shard-{index}"))
                .spawn(move || writer.run(receiver))
                .map_err(|e| recovery(&e))?;
            shards.push(sender);
            writers.push(handle);
        }
        drop(snapshot_sender);
        Ok(Self {
            shards,
            writers,
            snapshotter: Some(snapshotter),
            journal,
            storage,
            stats,
            orders_held,
        })
    }

    /// The node's activity counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// The orders the node holds, and its limit.
    pub fn orders_held(&self) -> &OrdersHeld {
        &self.orders_held
    }

    /// The journal (for its statistics).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The storage (for registry data).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Requests waiting in each shard's queue, by shard.
    pub fn queue_depths(&self) -> Vec<usize> {
        self.shards.iter().map(|queue| queue.len()).collect()
    }

    /// How many shards the node has.
    pub fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    /// The shard that owns `store`. A stable hash (FNV-1a), so a store stays
    /// on its shard across restarts and builds.
    pub fn shard_of(&self, store: &StoreId) -> u32 {
        let hash = store.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        (hash % self.shards.len() as u64) as u32
    }

    fn submit(&self, shard: u32, work: Work) -> Result<(), NodeError> {
        let queue = &self.shards[shard as usize];
        queue.try_send(work).map_err(|error| match error {
            TrySendError::Full(_) => NodeError::Overloaded { shard, depth: queue.len() },
            TrySendError::Disconnected(_) => NodeError::ShuttingDown,
        })
    }

    /// Queues an order; `reply` gets the result once it is durable. Refused
    /// at once with [`NodeError::Overloaded`] when the shard's queue is full
    /// (then `reply` is not called).
    pub fn submit_order(
        &self,
        store: StoreId,
        request: OrderRequest,
        reply: Reply,
    ) -> Result<(), NodeError> {
        self.submit(self.shard_of(&store), Work::PlaceOrder { store, request, reply, after: None })
    }

    /// Like [`Node::submit_order`], and runs `after` on the shard writer
    /// right after the order is placed (or found to repeat an earlier one),
    /// so a caller can copy the whole order out of the state that holds it.
    /// A second request for that copy could be refused when the queue is
    /// full, leaving a durable order its client never sees.
    pub fn submit_order_then(
        &self,
        store: StoreId,
        request: OrderRequest,
        after: AfterApply,
        reply: Reply,
    ) -> Result<(), NodeError> {
        let shard = self.shard_of(&store);
        self.submit(shard, Work::PlaceOrder { store, request, reply, after: Some(after) })
    }

    /// Queues a command; like [`Node::submit_order`].
    pub fn submit_command(&self, command: Command, reply: Reply) -> Result<(), NodeError> {
        self.submit(self.shard_of(command.store()), Work::Command { command, reply, after: None })
    }

    /// Like [`Node::submit_command`], and runs `after` on the shard writer
    /// right after the command is applied; see [`Node::submit_order_then`].
    pub fn submit_command_then(
        &self,
        command: Command,
        after: AfterApply,
        reply: Reply,
    ) -> Result<(), NodeError> {
        let shard = self.shard_of(command.store());
        self.submit(shard, Work::Command { command, reply, after: Some(after) })
    }

    /// Places an order and waits until it is durable.
    pub fn place_order(
        &self,
        store: StoreId,
        request: OrderRequest,
    ) -> Result<OrderReceipt, NodeError> {
        let (reply, wait) = reply_channel();
        self.submit_order(store, request, reply)?;
        wait().map(OrderReceipt::from_outcome)
    }

    /// Applies a command and waits until it is durable.
    pub fn execute(&self, command: Command) -> Result<Outcome, NodeError> {
        let (reply, wait) = reply_channel();
        self.submit_command(command, reply)?;
        wait()
    }

    /// Queues a read of the shard owning `store`; refused at once when the
    /// shard's queue is full (then `read` is not run).
    pub fn submit_read(&self, store: &StoreId, read: Read) -> Result<(), NodeError> {
        self.submit(self.shard_of(store), Work::Read(read))
    }

    /// Queues a read of every shard (one closure per shard); refused at once
    /// when a queue is full, in which case some shards may have run theirs.
    pub fn submit_read_all(&self, mut read: impl FnMut(u32) -> Read) -> Result<(), NodeError> {
        for shard in 0..self.shard_count() {
            self.submit(shard, Work::Read(read(shard)))?;
        }
        Ok(())
    }

    /// Queues a preview: the order priced and routed by the store's plugins
    /// as it would be if placed now, without placing it.
    pub fn submit_preview(
        &self,
        store: StoreId,
        request: OrderRequest,
        reply: PreviewReply,
    ) -> Result<(), NodeError> {
        self.submit(self.shard_of(&store), Work::Preview { store, request, reply })
    }

    /// Runs `read` against the current state of the shard owning `store`.
    /// The state may include work not yet durable.
    pub fn read<T: Send + 'static>(
        &self,
        store: &StoreId,
        read: impl FnOnce(&Shard) -> T + Send + 'static,
    ) -> Result<T, NodeError> {
        self.read_shard(self.shard_of(store), read)
    }

    /// Runs `read` against the current state of shard `shard`.
    pub fn read_shard<T: Send + 'static>(
        &self,
        shard: u32,
        read: impl FnOnce(&Shard) -> T + Send + 'static,
    ) -> Result<T, NodeError> {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        self.submit(
            shard,
            Work::Read(Box::new(move |state| {
                let _ = sender.send(read(state));
            })),
        )?;
        receiver.recv().map_err(|_| NodeError::ShuttingDown)
    }

    /// Runs `read` on every shard in turn and collects the results.
    pub fn read_all<T: Send + 'static>(
        &self,
        read: impl Fn(&Shard) -> T + Send + Sync + 'static,
    ) -> Result<Vec<T>, NodeError> {
        let read = Arc::new(read);
        let mut receivers = Vec::new();
        for shard in 0..self.shard_count() {
            let (sender, receiver) = crossbeam_channel::bounded(1);
            let read = read.clone();
            self.submit(
                shard,
                Work::Read(Box::new(move |state| {
                    let _ = sender.send(read(state));
                })),
            )?;
            receivers.push(receiver);
        }
        receivers.into_iter().map(|r| r.recv().map_err(|_| NodeError::ShuttingDown)).collect()
    }

    /// A digest of the whole node's state: equal digests, equal states.
    pub fn digest(&self) -> Result<[u8; 32], NodeError> {
        let digests = self.read_all(|shard| shard.digest())?;
        let mut hasher = Sha256::new();
        for digest in digests {
            hasher.update(digest);
        }
        Ok(hasher.finalize().into())
    }

    /// Checks the kernel invariants on every shard.
    pub fn check_invariants(&self) -> Result<(), String> {
        let results = self.read_all(|shard| shard.check_invariants()).map_err(|e| e.to_string())?;
        results.into_iter().collect()
    }

    /// Stops accepting, lets the writers finish what is queued, and flushes
    /// the journal (dropping the last handle of the journal drains it).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shards.clear();
        for writer in self.writers.drain(..) {
            let _ = writer.join();
        }
        if let Some(snapshotter) = self.snapshotter.take() {
            let _ = snapshotter.join();
        }
    }
}

/// A copy of a shard's state after journal record `sequence`, to encode
/// and store off the writer thread.
struct SnapshotJob {
    /// The shard's journal stream.
    stream: u32,
    /// The last record the copy includes.
    sequence: u64,
    /// The copy.
    shard: SnapshotCopy,
}

/// How much lower than the order path the snapshot thread runs (a nice
/// value): encoding a large state takes seconds of CPU, which on a small
/// machine under a flash sale must come from idle time, not from checkout.
/// A snapshot only bounds recovery time, so it may take longer.
pub const SNAPSHOT_THREAD_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`SNAPSHOT_THREAD_NICE`]. On
/// Linux a thread id names one thread to `setpriority`; elsewhere the
/// thread keeps the default priority.
fn yield_to_the_order_path() {
    #[cfg(target_os = "linux")]
    if let Err(error) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), SNAPSHOT_THREAD_NICE)
    {
        tracing::warn!(%error, "could not lower the snapshot thread's priority");
    }
}

/// The snapshot thread: writes each copy to its file, then has the journal
/// commit a reference to the file (which also compacts the stream), then
/// deletes the file it replaced.
struct Snapshotter {
    journal: Arc<Journal>,
    stats: Arc<NodeStats>,
    files: SnapshotFiles,
    /// Each stream's snapshot file whose reference is durable.
    names: BTreeMap<u32, String>,
}

impl Snapshotter {
    fn run(mut self, jobs: &Receiver<SnapshotJob>) {
        yield_to_the_order_path();
        for job in jobs {
            let stream = job.stream;
            if !self.store(job) {
                return;
            }
            // The new file, or the one it failed to replace, is the stream's
            // snapshot now; every other (a replaced file, a partial one left
            // by a failed write) is done with.
            if let Err(error) = self.files.keep_only(&self.names) {
                tracing::warn!(stream, %error, "old snapshot files not deleted");
            }
        }
    }

    /// Writes one snapshot's file and commits its reference; false once
    /// the journal has stopped (the node is shutting down).
    fn store(&mut self, job: SnapshotJob) -> bool {
        let stream = job.stream;
        // Writing consumes the copy, so the order chunks it shares are the
        // writer's alone again once the file is written.
        let written = match self.files.write(stream, job.sequence, job.shard) {
            Ok(written) => written,
            Err(error) => {
                tracing::warn!(stream, %error, "snapshot not written");
                return true;
            }
        };
        let snapshot = Snapshot { stream, sequence: job.sequence, payload: written.payload };
        let (durable, committed) = crossbeam_channel::bounded(1);
        let on_durable = Box::new(move |result: Result<(), bazaar_store::StoreError>| {
            let _ = durable.send(result);
        });
        if let Err(error) = self.journal.append(Vec::new(), Some(snapshot), on_durable) {
            tracing::warn!(stream, %error, "snapshot not queued");
            return true;
        }
        match committed.recv() {
            Ok(Ok(())) => {
                self.stats.snapshots_written.fetch_add(1, Ordering::Relaxed);
                self.names.insert(stream, written.name);
                true
            }
            Ok(Err(error)) => {
                tracing::warn!(stream, %error, "snapshot not committed");
                true
            }
            // The journal stopped without answering.
            Err(_) => false,
        }
    }
}

/// A reply that a caller can wait on.
fn reply_channel() -> (Reply, impl FnOnce() -> Result<Outcome, NodeError>) {
    let (sender, receiver) = crossbeam_channel::bounded(1);
    let reply: Reply = Box::new(move |result| {
        let _ = sender.send(result);
    });
    (reply, move || receiver.recv().unwrap_or(Err(NodeError::ShuttingDown)))
}

/// The current wall-clock time in milliseconds since the Unix epoch.
pub fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Rebuilds one shard from its latest snapshot and the journal after it;
/// returns the state, the last sequence number of its stream, and the
/// snapshot file recovery read, if any.
fn recover_shard(
    storage: &dyn Storage,
    files: &SnapshotFiles,
    index: u32,
) -> Result<(Shard, u64, Option<String>), NodeError> {
    let recovery = |what: String| NodeError::Recovery(format!("shard {index}: {what}"));
    let (mut shard, after, file) =
        match storage.latest_snapshot(index).map_err(|e| recovery(e.to_string()))? {
            Some(snapshot) => {
                let (shard, file) = files.read(&snapshot.payload).map_err(recovery)?;
                (shard, snapshot.sequence, file)
            }
            None => (Shard::new(), 0, None),
        };
    let mut replay_error = None;
    storage
        .read_journal(index, after, &mut |record| {
            match postcard::from_bytes::<JournalEntry>(&record.payload) {
                Ok(JournalEntry::V1(commands)) => {
                    for command in commands {
                        // An order moves into the state, as when it was placed.
                        let applied = match command {
                            Command::PlaceOrder(place) => {
                                shard.place_owned_order(place, |_| {}).map_err(|(error, _)| error)
                            }
                            command => shard.apply(&command),
                        };
                        if let Err(error) = applied {
                            // A journaled command was accepted once; refusing it
                            // now means the journal and the kernel disagree.
                            replay_error.get_or_insert(format!(
                                "record {} no longer applies: {error}",
                                record.sequence
                            ));
                        }
                    }
                }
                Err(error) => {
                    replay_error.get_or_insert(format!(
                        "record {} is unreadable: {error}",
                        record.sequence
                    ));
                }
            }
            Ok(())
        })
        .map_err(|e| recovery(e.to_string()))?;
    if let Some(error) = replay_error {
        return Err(recovery(error));
    }
    Ok((shard, storage.last_sequence(index), file))
}

/// The single writer of one shard.
struct ShardWriter {
    /// The shard's index, also its journal stream.
    index: u32,
    /// The state.
    shard: Shard,
    /// The sequence number of the next journal record.
    next_sequence: u64,
    /// Commands applied since the last snapshot.
    commands_since_snapshot: u64,
    /// This thread's plugin instances.
    plugins: ShardPlugins,
    /// Where batches go.
    journal: Arc<Journal>,
    /// Node counters.
    stats: Arc<NodeStats>,
    /// The orders the node holds, shared by every writer.
    orders_held: Arc<OrdersHeld>,
    /// Most requests per batch.
    batch_requests_max: usize,
    /// Commands between snapshots.
    snapshot_every_commands: u64,
    /// Whether event records stay after every consumer read them.
    keep_consumed_events: bool,
    /// Where snapshot jobs go.
    snapshots: Sender<SnapshotJob>,
    /// The last timestamp handed out, to keep time monotonic per shard.
    last_time_ms: u64,
    /// The sequence number of the next record of the shard's event stream.
    next_event_record: u64,
    /// The event records deleted so far: a compaction never goes back,
    /// which the storage would refuse.
    events_compacted_through: u64,
}

/// The events of the batch being processed, and its refused checkout
/// attempts summarised per store, SKU and reason.
#[derive(Default)]
struct BatchEvents {
    /// Each store's events, in the order the stores first had one.
    groups: Vec<StoreEvents>,
    /// Where each store's group is in `groups`.
    group_of: HashMap<StoreId, usize>,
    refused: BTreeMap<(StoreId, Sku, RefusalReason), (u32, u64)>,
}

impl BatchEvents {
    fn add(&mut self, shard: &Shard, command: &Command, outcome: &Outcome) {
        self.extend(shard, command.store(), derive_events(shard, command, outcome));
    }

    /// Adds the events of an order placed in `store` by value.
    fn add_placed(&mut self, shard: &Shard, store: &StoreId, outcome: &Outcome) {
        self.extend(shard, store, order_placed_events(shard, store, outcome));
    }

    fn extend(&mut self, shard: &Shard, store: &StoreId, events: Vec<EventKind>) {
        if let Some(state) = shard.store(store)
            && !events.is_empty()
        {
            self.group(store, state.currency()).extend(events);
        }
    }

    /// The events of `store` in this batch, its group started on first use.
    fn group(&mut self, store: &StoreId, currency: Currency) -> &mut Vec<EventKind> {
        let index = match self.group_of.get(store) {
            Some(index) => *index,
            None => {
                self.groups.push(StoreEvents {
                    store: store.clone(),
                    currency,
                    events: Vec::new(),
                });
                self.group_of.insert(store.clone(), self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        &mut self.groups[index].events
    }

    fn refuse(&mut self, store: &StoreId, lines: &[LineRequest], error: &NodeError) {
        let reason = match error {
            NodeError::Kernel(KernelError::InsufficientStock { .. }) => RefusalReason::SoldOut,
            NodeError::Kernel(KernelError::PurchaseLimitExceeded { .. }) => {
                RefusalReason::PurchaseLimit
            }
            NodeError::RiskRejected { .. } | NodeError::RiskUnavailable { .. } => {
                RefusalReason::Risk
            }
            _ => RefusalReason::Other,
        };
        for line in lines {
            let entry = self.refused.entry((store.clone(), line.sku.clone(), reason)).or_default();
            entry.0 = entry.0.saturating_add(1);
            entry.1 = entry.1.saturating_add(u64::from(line.quantity));
        }
    }

    /// The batch's events by store, each store's refusal summaries last.
    fn into_groups(mut self, shard: &Shard) -> Vec<StoreEvents> {
        for ((store, sku, reason), (attempts, units)) in std::mem::take(&mut self.refused) {
            if let Some(state) = shard.store(&store) {
                let kind = EventKind::CheckoutRefused { sku, attempts, units, reason };
                self.group(&store, state.currency()).push(kind);
            }
        }
        let mut room = EVENTS_PER_RECORD_MAX;
        for group in &mut self.groups {
            group.events.truncate(room);
            room -= group.events.len();
        }
        self.groups.retain(|group| !group.events.is_empty());
        self.groups
    }
}

impl ShardWriter {
    fn run(mut self, queue: Receiver<Work>) {
        let mut batch = Vec::with_capacity(self.batch_requests_max);
        while let Ok(first) = queue.recv() {
            batch.push(first);
            while batch.len() < self.batch_requests_max {
                match queue.try_recv() {
                    Ok(work) => batch.push(work),
                    Err(_) => break,
                }
            }
            self.process(&mut batch);
        }
    }

    fn now_ms(&mut self) -> u64 {
        self.last_time_ms = self.last_time_ms.max(wall_clock_ms());
        self.last_time_ms
    }

    fn process(&mut self, batch: &mut Vec<Work>) {
        // A new plugin version takes effect between batches: every call of
        // this batch runs on the catalogue it started with.
        self.plugins.refresh();
        let mut journal = JournalBatch::default();
        let mut acknowledgements: Vec<Acknowledgement> = Vec::new();
        let mut events = BatchEvents::default();
        for work in batch.drain(..) {
            match work {
                Work::Read(read) => read(&self.shard),
                Work::Preview { store, request, reply } => {
                    reply(self.preview(store, request));
                }
                Work::Command { command, reply, after } => match self.shard.apply(&command) {
                    Ok(outcome) => {
                        if let Some(after) = after {
                            after(&self.shard, &outcome);
                        }
                        events.add(&self.shard, &command, &outcome);
                        journal.push(&command);
                        acknowledgements.push((reply, outcome, tracing::Span::none()));
                    }
                    Err(error) => {
                        self.stats.refused.fetch_add(1, Ordering::Relaxed);
                        reply(Err(error.into()));
                    }
                },
                Work::PlaceOrder { store, request, reply, after } => {
                    // Plugin calls, their log lines and the acknowledgement
                    // after the journal commit happen inside this span, so
                    // each carries the store and the order number.
                    let span = tracing::debug_span!(
                        "order",
                        store = %store,
                        shard = self.index,
                        order = tracing::field::Empty
                    );
                    let placed = span
                        .in_scope(|| self.place_order(store, request, &mut events, &mut journal));
                    match placed {
                        Ok(outcome) => {
                            if let Some(after) = after {
                                after(&self.shard, &outcome);
                            }
                            acknowledgements.push((reply, outcome, span));
                        }
                        Err(error) => {
                            self.stats.refused.fetch_add(1, Ordering::Relaxed);
                            reply(Err(error));
                        }
                    }
                }
            }
        }
        let events = events.into_groups(&self.shard);
        if acknowledgements.is_empty() && events.is_empty() {
            return;
        }
        // Duplicates alone still wait for a journal round trip: the order
        // they repeat may be in a commit that is not durable yet.
        let mut records = Vec::new();
        let mut snapshot_due = None;
        let mut journal_sequence = None;
        if !journal.is_empty() {
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            self.commands_since_snapshot += journal.commands as u64;
            self.stats.commands_journaled.fetch_add(journal.commands as u64, Ordering::Relaxed);
            journal_sequence = Some(sequence);
            let payload = journal.into_payload();
            records.push(JournalRecord { stream: self.index, sequence, payload });
            if self.commands_since_snapshot >= self.snapshot_every_commands {
                snapshot_due = Some(sequence);
            }
        }
        if !events.is_empty() {
            let payload =
                postcard::to_allocvec(&EventRecord::V1 { at_ms: self.now_ms(), stores: events })
                    .expect("events encode");
            let sequence = self.next_event_record;
            self.next_event_record += 1;
            records.push(JournalRecord { stream: event_stream(self.index), sequence, payload });
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        // The callback owns the replies; if the journal refuses the append
        // outright, the replies come back through this shared slot.
        let replies = Arc::new(std::sync::Mutex::new(Some(acknowledgements)));
        let stats = self.stats.clone();
        let on_durable = {
            let replies = replies.clone();
            Box::new(move |result: Result<(), bazaar_store::StoreError>| {
                let taken = replies.lock().ok().and_then(|mut slot| slot.take());
                acknowledge(
                    &stats,
                    taken.unwrap_or_default(),
                    journal_sequence,
                    result.map_err(|e| e.to_string()),
                );
            })
        };
        // With a snapshot due, the event stream is compacted too, up to what
        // every consumer of the shard has read (or the retention limit).
        let event_compaction = snapshot_due.and_then(|_| self.event_compaction());
        if let Some(compaction) = &event_compaction {
            self.events_compacted_through = compaction.sequence;
        }
        if let Err(error) = self.journal.append(records, event_compaction, on_durable) {
            let taken = replies.lock().ok().and_then(|mut slot| slot.take());
            acknowledge(&self.stats, taken.unwrap_or_default(), None, Err(error.to_string()));
        }
        // The record is queued before the snapshot that includes it, so the
        // journal sees them in order. The copy is cheap (orders are shared
        // in chunks, look-ups are rebuilt from them); encoding and writing
        // happen on the snapshot thread. If that thread is still busy, the
        // next batch tries again.
        if let Some(sequence) = snapshot_due
            && !self.snapshots.is_full()
        {
            let job =
                SnapshotJob { stream: self.index, sequence, shard: self.shard.snapshot_copy() };
            if self.snapshots.try_send(job).is_ok() {
                self.commands_since_snapshot = 0;
                self.stats.snapshots.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The event-stream snapshot that deletes every event record all the
    /// shard's analytics consumers have passed, and any beyond
    /// [`EVENT_RECORDS_RETAINED_MAX`]; `None` when there is nothing to drop.
    fn event_compaction(&self) -> Option<Snapshot> {
        let last_record = self.next_event_record - 1;
        let mut slowest: Option<u64> = None;
        for state in self.shard.stores().values() {
            for plugin in state.plugin_configs().keys() {
                if self.plugins.kind_of(plugin) == Some(PluginKind::Analytics) {
                    let record = record_of(state.consumed_through(plugin));
                    slowest = Some(slowest.map_or(record, |slowest| slowest.min(record)));
                }
            }
        }
        // A record a consumer is inside of is kept; with no consumer,
        // everything written is done with.
        let consumed = if self.keep_consumed_events {
            0
        } else {
            slowest.map_or(last_record, |record| record.saturating_sub(1))
        };
        let through = consumed.max(last_record.saturating_sub(EVENT_RECORDS_RETAINED_MAX));
        (through > self.events_compacted_through).then(|| Snapshot {
            stream: event_stream(self.index),
            sequence: through,
            payload: Vec::new(),
        })
    }

    /// Prices and routes an order as if placing it now, without applying it.
    fn preview(&mut self, store: StoreId, request: OrderRequest) -> Result<Preview, NodeError> {
        let placed_at_ms = self.now_ms();
        let cart = self.shard.prepare_cart(&store, &request, placed_at_ms)?;
        let next_order = self.shard.store(&store).map_or(1, |state| state.orders().next_number());
        let outputs =
            self.plugins.price_and_route(&self.shard, &cart, order_seed(&store, next_order))?;
        let shipping_minor =
            self.shard.check_shipment_plan(&store, &cart, &outputs.shipment_plan)?;
        let totals = order_totals(&cart.lines, outputs.discount_minor, shipping_minor)?;
        Ok(Preview { cart, outputs, totals })
    }

    /// Prices, routes and applies one order, adding its command (none for
    /// a duplicate) to the batch's `journal` and its events to `events`.
    fn place_order(
        &mut self,
        store: StoreId,
        request: OrderRequest,
        events: &mut BatchEvents,
        journal: &mut JournalBatch,
    ) -> Result<Outcome, NodeError> {
        // A refusal is summarised from the request's lines, so only a
        // refused order pays for reading them.
        let decided = match self.decide(&store, &request) {
            Ok(decided) => decided,
            Err(error) => {
                events.refuse(&store, &request.lines, &error);
                return Err(error);
            }
        };
        let decisions = match decided {
            Decided::Duplicate(outcome) => return Ok(outcome),
            Decided::New(decisions) => decisions,
        };
        if let Err(error) = self.orders_held.take() {
            events.refuse(&store, &request.lines, &error);
            return Err(error);
        }
        let place = Box::new(PlaceOrder {
            store,
            request,
            placed_at_ms: decisions.placed_at_ms,
            adjustments: decisions.outputs.adjustments,
            pricing_failures: decisions.outputs.pricing_failures,
            risk_checks: decisions.risk_checks,
            shipment_plan: decisions.outputs.shipment_plan,
            state_writes: decisions.outputs.state_writes,
        });
        let store = place.store.clone();
        // Checked, journaled, then moved into the shard: the order's
        // request, plan and adjustments are never copied.
        let placed =
            self.shard.place_owned_order(place, |place| journal.push(&PlaceOrderCommand(place)));
        match placed {
            Ok(outcome) => {
                events.add_placed(&self.shard, &store, &outcome);
                Ok(outcome)
            }
            Err((error, place)) => {
                self.orders_held.give_back();
                let error = NodeError::from(error);
                events.refuse(&store, &place.request.lines, &error);
                Err(error)
            }
        }
    }

    /// Everything a new order needs decided before it is applied: its time,
    /// and what its pricing, logistics and risk plugins answered; or the
    /// answer of the earlier order a repeated request gets.
    fn decide(&mut self, store: &StoreId, request: &OrderRequest) -> Result<Decided, NodeError> {
        if let IdempotencyCheck::Duplicate(order) = self.shard.check_idempotency(store, request)? {
            let totals = self
                .shard
                .store(store)
                .and_then(|state| state.order(order))
                .map(|order| order.totals)
                .unwrap_or_default();
            return Ok(Decided::Duplicate(Outcome::OrderPlaced { order, totals, duplicate: true }));
        }
        self.orders_held.check()?;
        let placed_at_ms = self.now_ms();
        let cart = self.shard.prepare_cart(store, request, placed_at_ms)?;
        let next_order = self.shard.store(store).map_or(1, |state| state.orders().next_number());
        tracing::Span::current().record("order", next_order);
        let seed = order_seed(store, next_order);
        let mut outputs = self.plugins.price_and_route(&self.shard, &cart, seed)?;
        // The risk plugins judge the price after promotions, before shipping.
        let total_minor = order_totals(&cart.lines, outputs.discount_minor, 0)?.total_minor;
        let (risk_checks, risk_writes) = self
            .plugins
            .assess_risk(&self.shard, &cart, total_minor, seed)
            .map_err(NodeError::from)?;
        outputs.state_writes.extend(risk_writes);
        Ok(Decided::New(Decisions { placed_at_ms, outputs, risk_checks }))
    }
}

/// What [`ShardWriter::decide`] found.
enum Decided {
    /// An earlier order served the same request: its answer.
    Duplicate(Outcome),
    /// A new order, with its decisions.
    New(Decisions),
}

/// A new order's time and its plugins' answers.
struct Decisions {
    placed_at_ms: u64,
    outputs: PluginOutputs,
    risk_checks: Vec<bazaar_kernel::model::RiskCheck>,
}

/// A request waiting for its batch's journal commit: its reply, what it
/// did, and (for an order) the span its acknowledgement is traced in.
type Acknowledgement = (Reply, Outcome, tracing::Span);

/// Answers every request of a batch once its journal record is durable
/// (or failed).
fn acknowledge(
    stats: &NodeStats,
    acknowledgements: Vec<Acknowledgement>,
    journal_sequence: Option<u64>,
    result: Result<(), String>,
) {
    for (reply, outcome, span) in acknowledgements {
        match &result {
            Ok(()) => {
                span.in_scope(|| tracing::debug!(journal_sequence, "durable"));
                if let Outcome::OrderPlaced { duplicate, .. } = outcome {
                    let counter =
                        if duplicate { &stats.orders_duplicate } else { &stats.orders_placed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                reply(Ok(outcome));
            }
            Err(error) => reply(Err(NodeError::Journal(error.clone()))),
        }
    }
}

/// The seed of an order's plugin randomness: the same order always gets the
/// same seed, so a plugin's choices are reproducible.
fn order_seed(store: &StoreId, order: OrderNumber) -> u64 {
    let digest =
        Sha256::new().chain_update(store.as_str()).chain_update(order.to_le_bytes()).finalize();
    u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use bazaar_kernel::model::{Router, ShipmentPlan};

    use super::*;
    use crate::seed;

    fn order(store: &StoreId, customer: u64) -> PlaceOrder {
        PlaceOrder {
            store: store.clone(),
            request: seed::order_request(
                customer,
                vec![(seed::ordinary_sku(1), 2), (Sku::new(seed::HOT_SKU).unwrap(), 1)],
                Some("D11-10"),
                Some(format!("checkout-{customer}")),
            ),
            placed_at_ms: 1_700_000_000_000 + customer,
            adjustments: Vec::new(),
            pricing_failures: Vec::new(),
            risk_checks: Vec::new(),
            shipment_plan: ShipmentPlan {
                shipments: Vec::new(),
                routed_by: Router::BuiltIn,
                fallback_reason: None,
            },
            state_writes: Vec::new(),
        }
    }

    #[test]
    fn a_batch_encoded_command_by_command_is_the_record_of_its_commands() {
        let store = StoreId::new("encoded").unwrap();
        let plain = seed::flagship_store(&store, 1_000);
        // Past 127 commands the count takes a second byte.
        for orders in [0, 1, 200] {
            let mut batch = JournalBatch::default();
            let mut commands = Vec::new();
            for command in &plain {
                batch.push(command);
                commands.push(command.clone());
            }
            for customer in 0..orders {
                let place = order(&store, customer);
                batch.push(&PlaceOrderCommand(&place));
                commands.push(Command::PlaceOrder(Box::new(place)));
            }
            let expected = postcard::to_allocvec(&JournalEntry::V1(commands)).unwrap();
            assert_eq!(batch.into_payload(), expected, "{orders} orders");
        }
    }
}
