//! The optional sled backend (cargo feature `sled`).
//!
//! sled is on the original design card, but its own README calls it beta and
//! its last stable release (0.34.7) dates from 2021, so it is never the
//! default for orders; it exists to keep the storage contract honest and must
//! pass the same conformance suite as redb.
//!
//! Everything lives in sled's default tree, under one-byte prefixes, because
//! sled applies a [`sled::Batch`] atomically only within one tree: a commit's
//! records, snapshots and compaction deletes form one batch, followed by
//! `flush()`, which fsyncs before the commit is acknowledged.
//! - `j` + stream (u32 BE) + sequence (u64 BE) -> record payload. Big-endian
//!   keys sort numerically, so a stream's records are one ordered range.
//! - `s` + stream (u32 BE) -> sequence (u64 BE) + snapshot payload.
//! - `k` + key -> registry value.
//!
//! sled makes a batch atomic in its log, so recovery after a crash sees all
//! of a commit or none of it; if a batch fails half-applied, the open tree
//! may hold part of it until restart, which is harmless because the journal
//! stops at the first failed commit and recovery starts from what is on disk.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::storage::{
    Commit, JournalRecord, KvEntry, ScanCollector, Snapshot, Storage, StoreError, StreamBook,
    StreamState, check_kv,
};

/// Prefix of journal record keys.
const JOURNAL_PREFIX: u8 = b'j';

/// Prefix of snapshot keys.
const SNAPSHOT_PREFIX: u8 = b's';

/// Prefix of registry keys.
const REGISTRY_PREFIX: u8 = b'k';

/// Length of a journal key: prefix, stream, sequence.
const JOURNAL_KEY_BYTES: usize = 1 + 4 + 8;

/// Length of a snapshot key: prefix, stream.
const SNAPSHOT_KEY_BYTES: usize = 1 + 4;

/// How long opening waits for a busy file lock to be released.
const LOCK_WAIT_MS: u64 = 5_000;

/// Pause between attempts to take a busy file lock.
const LOCK_RETRY_MS: u64 = 10;

/// Name of the engine in errors.
const BACKEND: &str = "sled";

/// sled's cache, in bytes, instead of its 1 GiB default, which kept every
/// record written in memory until it filled (as redb's did, see
/// `REDB_CACHE_BYTES`). It bounds records of the size a shard batch writes
/// (tens of KiB); values of 256 KiB were kept whole whatever the bound.
pub const SLED_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Storage in a sled database directory.
pub struct SledStorage {
    /// The open database; its default tree holds everything.
    database: sled::Db,
    /// Stream positions, recovered at open and kept in memory.
    book: StreamBook,
}

impl SledStorage {
    /// Opens the sled database directory at `path`, creating it if absent,
    /// and recovers every stream's position.
    ///
    /// A handle of this process that was just dropped can keep sled's file
    /// lock for a moment, until sled's background threads and deferred
    /// frees let go of the last reference, so a busy lock is retried for up
    /// to [`LOCK_WAIT_MS`] before it is reported.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let deadline = Instant::now() + Duration::from_millis(LOCK_WAIT_MS);
        let database = loop {
            match sled::Config::new().path(path).cache_capacity(SLED_CACHE_BYTES as u64).open() {
                // sled reports a busy lock only in its message.
                Err(sled::Error::Io(error))
                    if error.to_string().starts_with("could not acquire lock")
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(LOCK_RETRY_MS));
                }
                opened => break opened.map_err(engine("opening the database"))?,
            }
        };
        let streams = recover_streams(&database)?;
        tracing::info!(path = %path.display(), streams = streams.len(), "opened sled storage");
        Ok(Self { database, book: StreamBook::new(streams) })
    }

    /// Makes every applied write durable.
    fn flush(&self) -> Result<(), StoreError> {
        self.database.flush().map(|_flushed_bytes| ()).map_err(engine("flushing to disk"))
    }
}

impl Storage for SledStorage {
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        self.book.commit_with(commit, || {
            let mut batch = sled::Batch::default();
            for record in &commit.records {
                batch.insert(
                    &journal_key(record.stream, record.sequence)[..],
                    record.payload.as_slice(),
                );
            }
            for snapshot in &commit.snapshots {
                let mut value = Vec::with_capacity(8 + snapshot.payload.len());
                value.extend_from_slice(&snapshot.sequence.to_be_bytes());
                value.extend_from_slice(&snapshot.payload);
                batch.insert(&snapshot_key(snapshot.stream)[..], value);
                // Stored records are found by a range scan; the book's writer
                // lock keeps other commits from changing that range meanwhile.
                let start = journal_key(snapshot.stream, 0);
                let end = journal_key(snapshot.stream, snapshot.sequence);
                for key in self.database.range(start..=end).keys() {
                    batch.remove(key.map_err(engine("compacting the journal"))?);
                }
                // Records of this same commit are not stored yet; a batch keeps
                // the last operation per key, so removing them cancels their
                // insert.
                for record in &commit.records {
                    if record.stream == snapshot.stream && record.sequence <= snapshot.sequence {
                        batch.remove(&journal_key(record.stream, record.sequence)[..]);
                    }
                }
            }
            self.database.apply_batch(batch).map_err(engine("applying a journal batch"))?;
            self.flush()
        })
    }

    fn read_journal(
        &self,
        stream: u32,
        after_sequence: u64,
        visit: &mut dyn FnMut(JournalRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let Some(first) = after_sequence.checked_add(1) else {
            return Ok(());
        };
        let start = journal_key(stream, first);
        let end = journal_key(stream, u64::MAX);
        for entry in self.database.range(start..=end) {
            let (key, value) = entry.map_err(engine("reading the journal"))?;
            let (stream, sequence) = decode_journal_key(&key)?;
            visit(JournalRecord { stream, sequence, payload: value.to_vec() })?;
        }
        Ok(())
    }

    fn latest_snapshot(&self, stream: u32) -> Result<Option<Snapshot>, StoreError> {
        let stored =
            self.database.get(snapshot_key(stream)).map_err(engine("reading a snapshot"))?;
        stored
            .map(|value| {
                let (sequence, payload) = decode_snapshot_value(&value)?;
                Ok(Snapshot { stream, sequence, payload: payload.to_vec() })
            })
            .transpose()
    }

    fn last_sequence(&self, stream: u32) -> u64 {
        self.book.last_sequence(stream)
    }

    fn streams(&self) -> Vec<u32> {
        self.book.streams()
    }

    fn kv_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_kv(key, None)?;
        let value =
            self.database.get(registry_key(key)).map_err(engine("reading a registry key"))?;
        Ok(value.map(|value| value.to_vec()))
    }

    fn kv_put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        check_kv(key, Some(value))?;
        self.database.insert(registry_key(key), value).map_err(engine("writing a registry key"))?;
        self.flush()
    }

    fn kv_delete(&self, key: &[u8]) -> Result<(), StoreError> {
        check_kv(key, None)?;
        self.database.remove(registry_key(key)).map_err(engine("deleting a registry key"))?;
        self.flush()
    }

    fn kv_scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KvEntry>, StoreError> {
        check_kv(prefix, None)?;
        let mut collector = ScanCollector::default();
        for entry in self.database.scan_prefix(registry_key(prefix)) {
            let (key, value) = entry.map_err(engine("scanning the registry"))?;
            let key = key.get(1..).unwrap_or_default();
            collector.push(key.to_vec(), value.to_vec())?;
        }
        Ok(collector.finish())
    }
}

/// The key of one journal record.
fn journal_key(stream: u32, sequence: u64) -> [u8; JOURNAL_KEY_BYTES] {
    let mut key = [0; JOURNAL_KEY_BYTES];
    key[0] = JOURNAL_PREFIX;
    key[1..5].copy_from_slice(&stream.to_be_bytes());
    key[5..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// The key of a stream's snapshot.
fn snapshot_key(stream: u32) -> [u8; SNAPSHOT_KEY_BYTES] {
    let mut key = [0; SNAPSHOT_KEY_BYTES];
    key[0] = SNAPSHOT_PREFIX;
    key[1..].copy_from_slice(&stream.to_be_bytes());
    key
}

/// The stored key of a registry key.
fn registry_key(key: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(1 + key.len());
    stored.push(REGISTRY_PREFIX);
    stored.extend_from_slice(key);
    stored
}

/// Stream and sequence of a journal key.
fn decode_journal_key(key: &[u8]) -> Result<(u32, u64), StoreError> {
    let corrupt = || StoreError::Corrupt {
        backend: BACKEND,
        detail: format!("journal key of {} bytes", key.len()),
    };
    let key: &[u8; JOURNAL_KEY_BYTES] = key.try_into().map_err(|_| corrupt())?;
    let (stream, sequence) = key[1..].split_at(4);
    let stream = u32::from_be_bytes(stream.try_into().map_err(|_| corrupt())?);
    let sequence = u64::from_be_bytes(sequence.try_into().map_err(|_| corrupt())?);
    Ok((stream, sequence))
}

/// Sequence and payload of a stored snapshot value.
fn decode_snapshot_value(value: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let Some((sequence, payload)) = value.split_first_chunk::<8>() else {
        return Err(StoreError::Corrupt {
            backend: BACKEND,
            detail: format!("snapshot value of {} bytes", value.len()),
        });
    };
    Ok((u64::from_be_bytes(*sequence), payload))
}

/// Reads every stream's last record and snapshot sequence.
fn recover_streams(database: &sled::Db) -> Result<BTreeMap<u32, StreamState>, StoreError> {
    let mut streams: BTreeMap<u32, StreamState> = BTreeMap::new();
    for entry in database.scan_prefix([SNAPSHOT_PREFIX]) {
        let (key, value) = entry.map_err(engine("reading snapshots"))?;
        let stream_bytes: [u8; 4] = key
            .get(1..)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| StoreError::Corrupt {
                backend: BACKEND,
                detail: format!("snapshot key of {} bytes", key.len()),
            })?;
        let (sequence, _) = decode_snapshot_value(&value)?;
        streams.insert(
            u32::from_be_bytes(stream_bytes),
            StreamState { last_sequence: sequence, snapshot_sequence: Some(sequence) },
        );
    }

    // Jump from stream to stream instead of walking every record: one range
    // lookup finds the next stream, a reverse one its last record.
    let mut next_stream = Some(0_u32);
    while let Some(from) = next_stream {
        let first = database.range(journal_key(from, 0)..=journal_key(u32::MAX, u64::MAX)).next();
        let Some(first) = first else { break };
        let (stream, _) = decode_journal_key(&first.map_err(engine("recovering the journal"))?.0)?;
        let last =
            database.range(journal_key(stream, 0)..=journal_key(stream, u64::MAX)).next_back();
        if let Some(last) = last {
            let (_, sequence) =
                decode_journal_key(&last.map_err(engine("recovering the journal"))?.0)?;
            let state = streams.entry(stream).or_default();
            state.last_sequence = state.last_sequence.max(sequence);
        }
        next_stream = stream.checked_add(1);
    }
    Ok(streams)
}

/// Maps a sled error to [`StoreError::Backend`] with what was being done.
fn engine(action: &'static str) -> impl Fn(sled::Error) -> StoreError {
    move |error| StoreError::Backend { backend: BACKEND, action, message: error.to_string() }
}
