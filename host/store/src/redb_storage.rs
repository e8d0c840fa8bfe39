//! The default backend: one redb file.
//!
//! redb is chosen as the default because its file format is stable and its
//! commits are crash-safe copy-on-write transactions: a commit with
//! [`Durability::Immediate`] is on disk when `commit` returns, and a crash
//! mid-commit leaves the previous state. A whole [`Commit`] (thousands of
//! records plus snapshots and their compaction) is one write transaction, so
//! group commit costs one fsync however many records it carries.
//!
//! Layout, three tables:
//! - `journal`: `(stream, sequence) -> payload`; the tuple key sorts records
//!   of a stream together and in order, so reading from a sequence and
//!   compacting up to one are range operations.
//! - `snapshots`: `stream -> (sequence, payload)`; one row per stream, so
//!   storing a snapshot replaces the previous one.
//! - `registry`: `key -> value` bytes.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::storage::{
    Commit, JournalRecord, KvEntry, ScanCollector, Snapshot, Storage, StoreError, StreamBook,
    StreamState, check_kv,
};

/// Journal records keyed by stream then sequence.
const JOURNAL: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("journal");

/// The one stored snapshot of each stream, with its sequence.
const SNAPSHOTS: TableDefinition<u32, (u64, &[u8])> = TableDefinition::new("snapshots");

/// Registry key-value space.
const REGISTRY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("registry");

/// Name of the engine in errors.
const BACKEND: &str = "redb";

/// The most memory redb's page cache holds, in bytes.
///
/// redb keeps every page a commit writes in its cache until the cache is
/// full, and its default is 1 GiB. The journal is written once and read
/// back at recovery and by the event consumers, which read what was just
/// written and which the kernel's page cache holds as well. So a large
/// cache is a second copy of the newest gigabyte of the file in the
/// node's memory (about a third of its memory per order until it fills),
/// and each commit faults in fresh pages for it. 64 MiB still holds the
/// B-trees' branch pages and the latest commits.
pub const REDB_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Storage in a single redb database file.
pub struct RedbStorage {
    /// The open database; redb serialises write transactions itself.
    database: Database,
    /// Stream positions, recovered at open and kept in memory.
    book: StreamBook,
}

impl RedbStorage {
    /// Opens the database file at `path`, creating it if absent, and
    /// recovers every stream's position.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let database = Database::builder()
            .set_cache_size(REDB_CACHE_BYTES)
            .create(path)
            .map_err(engine("opening the database"))?;
        // Tables are created up front so that a read transaction on a fresh
        // file never meets a missing table.
        let transaction = begin_write(&database)?;
        {
            transaction.open_table(JOURNAL).map_err(engine("creating the journal table"))?;
            transaction.open_table(SNAPSHOTS).map_err(engine("creating the snapshot table"))?;
            transaction.open_table(REGISTRY).map_err(engine("creating the registry table"))?;
        }
        transaction.commit().map_err(engine("committing table creation"))?;
        let streams = recover_streams(&database)?;
        tracing::info!(path = %path.display(), streams = streams.len(), "opened redb storage");
        Ok(Self { database, book: StreamBook::new(streams) })
    }

    /// A read transaction, mapped to a storage error.
    fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.database.begin_read().map_err(engine("beginning a read transaction"))
    }
}

impl Storage for RedbStorage {
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        self.book.commit_with(commit, || {
            let transaction = begin_write(&self.database)?;
            {
                let mut journal =
                    transaction.open_table(JOURNAL).map_err(engine("opening the journal table"))?;
                for record in &commit.records {
                    journal
                        .insert((record.stream, record.sequence), record.payload.as_slice())
                        .map_err(engine("appending a journal record"))?;
                }
                let mut snapshots = transaction
                    .open_table(SNAPSHOTS)
                    .map_err(engine("opening the snapshot table"))?;
                for snapshot in &commit.snapshots {
                    snapshots
                        .insert(snapshot.stream, (snapshot.sequence, snapshot.payload.as_slice()))
                        .map_err(engine("storing a snapshot"))?;
                    journal
                        .retain_in(
                            (snapshot.stream, 0)..=(snapshot.stream, snapshot.sequence),
                            |_, _| false,
                        )
                        .map_err(engine("compacting the journal"))?;
                }
            }
            // Dropping the transaction on any error above aborts it, so a
            // refused or failed commit writes nothing.
            transaction.commit().map_err(engine("committing a journal transaction"))
        })
    }

    fn read_journal(
        &self,
        stream: u32,
        after_sequence: u64,
        visit: &mut dyn FnMut(JournalRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let transaction = self.begin_read()?;
        let journal =
            transaction.open_table(JOURNAL).map_err(engine("opening the journal table"))?;
        let range = journal
            .range::<(u32, u64)>((
                Bound::Excluded((stream, after_sequence)),
                Bound::Included((stream, u64::MAX)),
            ))
            .map_err(engine("reading the journal"))?;
        for entry in range {
            let (key, value) = entry.map_err(engine("reading the journal"))?;
            let (stream, sequence) = key.value();
            visit(JournalRecord { stream, sequence, payload: value.value().to_vec() })?;
        }
        Ok(())
    }

    fn latest_snapshot(&self, stream: u32) -> Result<Option<Snapshot>, StoreError> {
        let transaction = self.begin_read()?;
        let snapshots =
            transaction.open_table(SNAPSHOTS).map_err(engine("opening the snapshot table"))?;
        let stored = snapshots.get(stream).map_err(engine("reading a snapshot"))?;
        Ok(stored.map(|guard| {
            let (sequence, payload) = guard.value();
            Snapshot { stream, sequence, payload: payload.to_vec() }
        }))
    }

    fn last_sequence(&self, stream: u32) -> u64 {
        self.book.last_sequence(stream)
    }

    fn streams(&self) -> Vec<u32> {
        self.book.streams()
    }

    fn kv_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_kv(key, None)?;
        let transaction = self.begin_read()?;
        let registry =
            transaction.open_table(REGISTRY).map_err(engine("opening the registry table"))?;
        let value = registry.get(key).map_err(engine("reading a registry key"))?;
        Ok(value.map(|guard| guard.value().to_vec()))
    }

    fn kv_put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        check_kv(key, Some(value))?;
        let transaction = begin_write(&self.database)?;
        {
            let mut registry =
                transaction.open_table(REGISTRY).map_err(engine("opening the registry table"))?;
            registry.insert(key, value).map_err(engine("writing a registry key"))?;
        }
        transaction.commit().map_err(engine("committing a registry write"))
    }

    fn kv_delete(&self, key: &[u8]) -> Result<(), StoreError> {
        check_kv(key, None)?;
        let transaction = begin_write(&self.database)?;
        {
            let mut registry =
                transaction.open_table(REGISTRY).map_err(engine("opening the registry table"))?;
            registry.remove(key).map_err(engine("deleting a registry key"))?;
        }
        transaction.commit().map_err(engine("committing a registry delete"))
    }

    fn kv_scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KvEntry>, StoreError> {
        check_kv(prefix, None)?;
        let transaction = self.begin_read()?;
        let registry =
            transaction.open_table(REGISTRY).map_err(engine("opening the registry table"))?;
        let range = registry.range::<&[u8]>(prefix..).map_err(engine("scanning the registry"))?;
        let mut collector = ScanCollector::default();
        for entry in range {
            let (key, value) = entry.map_err(engine("scanning the registry"))?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            collector.push(key.to_vec(), value.value().to_vec())?;
        }
        Ok(collector.finish())
    }
}

/// A write transaction that is fsync'd on commit.
fn begin_write(database: &Database) -> Result<redb::WriteTransaction, StoreError> {
    let mut transaction =
        database.begin_write().map_err(engine("beginning a write transaction"))?;
    // Immediate is redb's default; it is set explicitly because every
    // acknowledgement in Bazaar rests on it.
    transaction.set_durability(Durability::Immediate).map_err(engine("setting durability"))?;
    Ok(transaction)
}

/// Reads every stream's last record and snapshot sequence.
fn recover_streams(database: &Database) -> Result<BTreeMap<u32, StreamState>, StoreError> {
    let transaction = database.begin_read().map_err(engine("beginning a read transaction"))?;
    let mut streams: BTreeMap<u32, StreamState> = BTreeMap::new();

    let snapshots =
        transaction.open_table(SNAPSHOTS).map_err(engine("opening the snapshot table"))?;
    for entry in snapshots.iter().map_err(engine("reading snapshots"))? {
        let (key, value) = entry.map_err(engine("reading snapshots"))?;
        let (sequence, _) = value.value();
        streams.insert(
            key.value(),
            StreamState { last_sequence: sequence, snapshot_sequence: Some(sequence) },
        );
    }

    // Jump from stream to stream instead of walking every record: one range
    // lookup finds the next stream, a reverse one its last record.
    let journal = transaction.open_table(JOURNAL).map_err(engine("opening the journal table"))?;
    let mut next_stream = Some(0_u32);
    while let Some(from) = next_stream {
        let first = journal
            .range::<(u32, u64)>((from, 0)..)
            .map_err(engine("recovering the journal"))?
            .next();
        let Some(first) = first else { break };
        let stream = first.map_err(engine("recovering the journal"))?.0.value().0;
        let last = journal
            .range::<(u32, u64)>((stream, 0)..=(stream, u64::MAX))
            .map_err(engine("recovering the journal"))?
            .next_back();
        if let Some(last) = last {
            let sequence = last.map_err(engine("recovering the journal"))?.0.value().1;
            let state = streams.entry(stream).or_default();
            state.last_sequence = state.last_sequence.max(sequence);
        }
        next_stream = stream.checked_add(1);
    }
    Ok(streams)
}

/// Maps any redb error to [`StoreError::Backend`] with what was being done.
fn engine<E: std::fmt::Display>(action: &'static str) -> impl Fn(E) -> StoreError {
    move |error| StoreError::Backend { backend: BACKEND, action, message: error.to_string() }
}
