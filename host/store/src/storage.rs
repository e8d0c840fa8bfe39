//! The storage contract every backend fulfils: journal records grouped in
//! durable commits, one snapshot per stream, and a registry key-value space.
//!
//! The contract is byte-oriented on purpose: the kernel encodes its own
//! records and snapshots, so a backend never learns the kernel's types and a
//! clustered backend (NATS JetStream streams and KV) can be added later
//! without touching the kernel.
//!
//! A *stream* is one shard's journal. Sequences within a stream start at 1 and
//! are contiguous; [`StreamBook`] enforces that before any backend writes a
//! byte, so a double append (a retried batch, two writers for one shard) is
//! refused loudly instead of silently duplicating orders on replay. The same
//! book keeps the last sequence of each stream in memory, which makes
//! [`Storage::last_sequence`] free and lets validation run without a read
//! transaction.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError, RwLock};

/// Largest payload of one journal record.
///
/// The kernel writes one record per applied command batch; a batch of a few
/// thousand orders at a few hundred bytes each is about a megabyte, so 16 MiB
/// leaves an order of magnitude of headroom while keeping one record far
/// below the journal's per-commit byte budget.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Largest payload of one snapshot.
///
/// A shard holding a million orders encodes to a few hundred megabytes; 1 GiB
/// gives that peak room to grow while staying well below redb's 3 GiB limit
/// for a single value and leaving memory for the encoder's copy on a 24 GiB
/// machine.
pub const SNAPSHOT_PAYLOAD_BYTES_MAX: usize = 1024 * 1024 * 1024;

/// Largest registry key.
///
/// Registry keys are names (plugin ids and versions, token digests, store
/// scopes); 1 KiB is far beyond any such name and keeps scans cheap.
pub const KV_KEY_BYTES_MAX: usize = 1024;

/// Largest registry value.
///
/// Registry values are manifests, grants and small plugin state; compiled
/// plugin artifacts live in their own content-addressed cache, not here.
/// 1 MiB bounds what one plugin or client can make the host hold per key.
pub const KV_VALUE_BYTES_MAX: usize = 1024 * 1024;

/// Largest total size of keys and values one prefix scan may return.
///
/// A scan materialises its result in memory; 64 MiB is many thousands of
/// registry entries yet cannot exhaust the host. A larger scan is refused
/// rather than silently truncated.
pub const KV_SCAN_BYTES_MAX: usize = 64 * 1024 * 1024;

/// One registry entry: key and value.
pub type KvEntry = (Vec<u8>, Vec<u8>);

/// One entry of a stream's journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalRecord {
    /// The stream (shard journal) this record belongs to.
    pub stream: u32,
    /// Position in the stream: 1 for the first record, then contiguous.
    pub sequence: u64,
    /// The kernel's encoding of one applied command batch.
    pub payload: Vec<u8>,
}

/// The state of one stream as of a journal position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The stream (shard) this snapshot describes.
    pub stream: u32,
    /// The last journal sequence whose effect the snapshot includes.
    pub sequence: u64,
    /// The kernel's encoding of the shard state.
    pub payload: Vec<u8>,
}

/// Everything written by one durable transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    /// Records appended, in order; records of different streams may interleave.
    pub records: Vec<JournalRecord>,
    /// Snapshots stored; each replaces its stream's previous snapshot and
    /// deletes that stream's records up to and including its sequence.
    pub snapshots: Vec<Snapshot>,
}

/// Every way storage refuses a request or fails.
///
/// The error is `Clone` because one failed group commit is reported to every
/// caller whose records were in it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A record's sequence is not the one after the stream's last.
    #[error(
        "stream {stream}: record sequence {found} is not contiguous, expected {expected} \
         (a gap or a duplicate append); nothing was written"
    )]
    NotContiguous {
        /// The stream of the refused record.
        stream: u32,
        /// The sequence the stream expects next.
        expected: u64,
        /// The sequence the record carried.
        found: u64,
    },
    /// A stream has used every sequence number.
    #[error("stream {stream}: sequence numbers are exhausted; nothing was written")]
    SequenceExhausted {
        /// The exhausted stream.
        stream: u32,
    },
    /// A snapshot claims a sequence the journal has not reached.
    #[error(
        "stream {stream}: snapshot at sequence {sequence} is beyond the journal's last \
         sequence {last_sequence}; nothing was written"
    )]
    SnapshotBeyondJournal {
        /// The stream of the refused snapshot.
        stream: u32,
        /// The sequence the snapshot claimed.
        sequence: u64,
        /// The stream's last sequence, including records of the same commit.
        last_sequence: u64,
    },
    /// A snapshot is older than the one already stored, whose compaction has
    /// already deleted the records the older one would need.
    #[error(
        "stream {stream}: snapshot at sequence {sequence} is older than the stored snapshot \
         at {stored_sequence}; nothing was written"
    )]
    SnapshotBehindStored {
        /// The stream of the refused snapshot.
        stream: u32,
        /// The sequence the snapshot claimed.
        sequence: u64,
        /// The sequence of the snapshot already stored.
        stored_sequence: u64,
    },
    /// A payload, key or value is larger than its named limit.
    #[error("{what} is {size_bytes} bytes, more than the limit of {size_bytes_max}")]
    TooLarge {
        /// What was too large, e.g. "record payload of stream 3 sequence 9".
        what: String,
        /// Its size.
        size_bytes: usize,
        /// The limit it exceeded.
        size_bytes_max: usize,
    },
    /// Journal limits that cannot work (a zero bound).
    #[error("invalid journal limits: {reason}")]
    InvalidLimits {
        /// Which limit is wrong and why.
        reason: String,
    },
    /// The journal refuses appends because an earlier commit failed: state
    /// built on top of a failed journal must not keep being acknowledged.
    #[error(
        "the journal stopped accepting appends after a failed commit ({cause}); \
         recover from storage before accepting more"
    )]
    JournalStopped {
        /// The failure that stopped the journal.
        cause: String,
    },
    /// The name given for a backend is not one this build knows.
    #[error("unknown storage backend {name:?}: {hint}")]
    UnknownBackend {
        /// The name given.
        name: String,
        /// Which names are accepted.
        hint: String,
    },
    /// The data directory holds files of another backend.
    #[error(
        "data directory {dir} holds a {found} store, not a {requested} store; \
         open it with the {found} backend or use another directory"
    )]
    WrongBackend {
        /// The data directory.
        dir: String,
        /// The backend whose files were found.
        found: String,
        /// The backend that was asked for.
        requested: String,
    },
    /// A file-system operation outside the storage engine failed.
    #[error("{action} {path}: {message}")]
    Io {
        /// What was being done, e.g. "creating data directory".
        action: &'static str,
        /// The path involved.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// The storage engine failed; the message is the engine's own.
    #[error("{backend} storage failed while {action}: {message}")]
    Backend {
        /// The engine, "redb" or "sled".
        backend: &'static str,
        /// What was being done.
        action: &'static str,
        /// The engine's message.
        message: String,
    },
    /// Stored bytes do not have the layout this crate writes.
    #[error("{backend} storage holds a corrupt entry: {detail}")]
    Corrupt {
        /// The engine, "redb" or "sled".
        backend: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// Durable storage for journals, snapshots and the registry.
///
/// Object-safe so the host picks a backend at start-up and holds an
/// `Arc<dyn Storage>`. Every mutating method is its own durable transaction:
/// when it returns `Ok`, the data survives a crash; when it returns `Err`,
/// nothing of that call was written.
pub trait Storage: Send + Sync + 'static {
    /// Writes all records and snapshots of `commit` in one transaction that is
    /// fsync'd before returning.
    ///
    /// Refused without writing anything when a record breaks its stream's
    /// contiguity, a snapshot is beyond its stream's last sequence (records of
    /// this commit included) or behind the stored snapshot, or a payload
    /// exceeds its limit. A snapshot replaces the stream's previous one and
    /// deletes the stream's records with sequence <= its sequence.
    fn commit(&self, commit: &Commit) -> Result<(), StoreError>;

    /// Calls `visit` with the records of `stream` whose sequence is greater
    /// than `after_sequence`, in sequence order; stops at the first error
    /// `visit` returns and passes it on.
    fn read_journal(
        &self,
        stream: u32,
        after_sequence: u64,
        visit: &mut dyn FnMut(JournalRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// The stream's stored snapshot, if any.
    fn latest_snapshot(&self, stream: u32) -> Result<Option<Snapshot>, StoreError>;

    /// The stream's last sequence: the larger of its last record and its
    /// snapshot, 0 for a stream without data. Served from memory.
    fn last_sequence(&self, stream: u32) -> u64;

    /// Streams holding records or a snapshot, ascending.
    fn streams(&self) -> Vec<u32>;

    /// The registry value under `key`.
    fn kv_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores `value` under `key`, replacing any previous value.
    fn kv_put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;

    /// Removes `key`; removing an absent key is not an error.
    fn kv_delete(&self, key: &[u8]) -> Result<(), StoreError>;

    /// Every registry entry whose key starts with `prefix`, in key order.
    fn kv_scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KvEntry>, StoreError>;
}

/// What storage remembers about one stream between commits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StreamState {
    /// Sequence of the newest record or snapshot; 0 before any.
    pub(crate) last_sequence: u64,
    /// Sequence of the stored snapshot, if one is stored.
    pub(crate) snapshot_sequence: Option<u64>,
}

/// The in-memory book of stream positions shared by all backends: it
/// validates a commit against the positions, serialises writers, and moves
/// the positions forward only after the backend reports the commit durable.
pub(crate) struct StreamBook {
    /// Held for a whole commit, so validation and the write see the same
    /// positions; the engines serialise writers anyway, so this costs nothing.
    writer: Mutex<()>,
    /// Position of every stream with data; readers take it only briefly, never
    /// across an fsync.
    streams: RwLock<BTreeMap<u32, StreamState>>,
}

impl StreamBook {
    /// A book starting from the positions recovered from disk.
    pub(crate) fn new(streams: BTreeMap<u32, StreamState>) -> Self {
        Self { writer: Mutex::new(()), streams: RwLock::new(streams) }
    }

    /// See [`Storage::last_sequence`].
    pub(crate) fn last_sequence(&self, stream: u32) -> u64 {
        let streams = self.streams.read().unwrap_or_else(PoisonError::into_inner);
        streams.get(&stream).map_or(0, |state| state.last_sequence)
    }

    /// See [`Storage::streams`].
    pub(crate) fn streams(&self) -> Vec<u32> {
        let streams = self.streams.read().unwrap_or_else(PoisonError::into_inner);
        streams.keys().copied().collect()
    }

    /// Validates `commit`, runs `write` (the backend's single transaction)
    /// and, when it succeeds, records the new positions.
    pub(crate) fn commit_with(
        &self,
        commit: &Commit,
        write: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // A panic elsewhere while holding the lock leaves no half-updated
        // positions (they change in one statement below), so poisoning is
        // safe to ignore.
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let updated = {
            let streams = self.streams.read().unwrap_or_else(PoisonError::into_inner);
            plan_commit(commit, &streams)?
        };
        write()?;
        let mut streams = self.streams.write().unwrap_or_else(PoisonError::into_inner);
        streams.extend(updated);
        Ok(())
    }
}

/// Checks `commit` against the current positions and returns the positions
/// of the streams it touches as they will be once it is durable.
fn plan_commit(
    commit: &Commit,
    streams: &BTreeMap<u32, StreamState>,
) -> Result<BTreeMap<u32, StreamState>, StoreError> {
    let mut updated: BTreeMap<u32, StreamState> = BTreeMap::new();
    for record in &commit.records {
        check_size(
            || format!("record payload of stream {} sequence {}", record.stream, record.sequence),
            record.payload.len(),
            RECORD_PAYLOAD_BYTES_MAX,
        )?;
        let state = updated
            .entry(record.stream)
            .or_insert_with(|| streams.get(&record.stream).copied().unwrap_or_default());
        let expected = state
            .last_sequence
            .checked_add(1)
            .ok_or(StoreError::SequenceExhausted { stream: record.stream })?;
        if record.sequence != expected {
            return Err(StoreError::NotContiguous {
                stream: record.stream,
                expected,
                found: record.sequence,
            });
        }
        state.last_sequence = expected;
    }
    for snapshot in &commit.snapshots {
        check_size(
            || format!("snapshot payload of stream {}", snapshot.stream),
            snapshot.payload.len(),
            SNAPSHOT_PAYLOAD_BYTES_MAX,
        )?;
        let state = updated
            .entry(snapshot.stream)
            .or_insert_with(|| streams.get(&snapshot.stream).copied().unwrap_or_default());
        if snapshot.sequence > state.last_sequence {
            return Err(StoreError::SnapshotBeyondJournal {
                stream: snapshot.stream,
                sequence: snapshot.sequence,
                last_sequence: state.last_sequence,
            });
        }
        if let Some(stored_sequence) = state.snapshot_sequence
            && snapshot.sequence < stored_sequence
        {
            return Err(StoreError::SnapshotBehindStored {
                stream: snapshot.stream,
                sequence: snapshot.sequence,
                stored_sequence,
            });
        }
        state.snapshot_sequence = Some(snapshot.sequence);
    }
    Ok(updated)
}

/// Refuses a size above its limit; `what` is only formatted on refusal.
pub(crate) fn check_size(
    what: impl FnOnce() -> String,
    size_bytes: usize,
    size_bytes_max: usize,
) -> Result<(), StoreError> {
    if size_bytes > size_bytes_max {
        return Err(StoreError::TooLarge { what: what(), size_bytes, size_bytes_max });
    }
    Ok(())
}

/// Refuses a registry key or value above its limit.
pub(crate) fn check_kv(key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
    check_size(|| "registry key".to_owned(), key.len(), KV_KEY_BYTES_MAX)?;
    if let Some(value) = value {
        check_size(|| "registry value".to_owned(), value.len(), KV_VALUE_BYTES_MAX)?;
    }
    Ok(())
}

/// Accumulates a prefix scan's result, refusing it once it passes
/// [`KV_SCAN_BYTES_MAX`].
#[derive(Default)]
pub(crate) struct ScanCollector {
    /// Entries collected so far, in key order.
    entries: Vec<KvEntry>,
    /// Sum of the lengths of collected keys and values.
    size_bytes: usize,
}

impl ScanCollector {
    /// Adds one entry, or refuses the scan if it would grow past the limit.
    pub(crate) fn push(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        self.size_bytes = self.size_bytes.saturating_add(key.len() + value.len());
        check_size(
            || "registry prefix scan result".to_owned(),
            self.size_bytes,
            KV_SCAN_BYTES_MAX,
        )?;
        self.entries.push((key, value));
        Ok(())
    }

    /// The collected entries.
    pub(crate) fn finish(self) -> Vec<KvEntry> {
        self.entries
    }
}
