//! Bazaar's durable storage: shard journals with group commit, snapshots
//! that bound recovery, and a registry key-value space.
//!
//! Every accepted command batch is appended to its shard's journal stream and
//! made durable before any of its requests is acknowledged; the [`Journal`]
//! thread groups the appends of all shards into one fsync'd transaction.
//! Recovery is the latest [`Snapshot`] of a stream plus a replay of the
//! records after it, read back with [`Storage::read_journal`].
//!
//! Storage sits behind the object-safe, byte-oriented [`Storage`] trait so a
//! clustered backend can be added without touching the kernel. Two embedded
//! backends implement it: [`RedbStorage`] (the default: stable file format,
//! crash-safe commits) and, behind the cargo feature `sled`, `SledStorage`,
//! which must pass the same conformance suite but is never the default for
//! orders because sled is beta.
//!
//! [`open`] lays a backend out inside a data directory (`bazaar.redb` or
//! `sled/`) and refuses a directory that already holds the other backend's
//! files, so a misconfigured node cannot start on an empty store next to its
//! real data.

mod journal;
mod redb_storage;
#[cfg(feature = "sled")]
mod sled_storage;
mod storage;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

pub use journal::{
    BYTES_PER_COMMIT_MAX_DEFAULT, COMMIT_LATENCY_US_BUCKETS, HistogramSnapshot, Journal,
    JournalLimits, JournalStats, OnDurable, QUEUE_DEPTH_MAX_DEFAULT, RECORDS_PER_COMMIT_BUCKETS,
    RECORDS_PER_COMMIT_MAX_DEFAULT,
};
pub use redb_storage::{REDB_CACHE_BYTES, RedbStorage};
#[cfg(feature = "sled")]
pub use sled_storage::{SLED_CACHE_BYTES, SledStorage};
pub use storage::{
    Commit, JournalRecord, KV_KEY_BYTES_MAX, KV_SCAN_BYTES_MAX, KV_VALUE_BYTES_MAX, KvEntry,
    RECORD_PAYLOAD_BYTES_MAX, SNAPSHOT_PAYLOAD_BYTES_MAX, Snapshot, Storage, StoreError,
};

/// File of the redb backend inside a data directory.
const REDB_FILE_NAME: &str = "bazaar.redb";

/// Directory of the sled backend inside a data directory.
const SLED_DIR_NAME: &str = "sled";

/// The embedded storage engines this build can open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// redb, the default.
    #[default]
    Redb,
    /// sled, optional (cargo feature `sled`).
    #[cfg(feature = "sled")]
    Sled,
}

impl Backend {
    /// The backend's name, as accepted by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Redb => "redb",
            #[cfg(feature = "sled")]
            Self::Sled => "sled",
        }
    }

    /// The file or directory the backend keeps inside a data directory.
    fn entry_name(self) -> &'static str {
        match self {
            Self::Redb => REDB_FILE_NAME,
            #[cfg(feature = "sled")]
            Self::Sled => SLED_DIR_NAME,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = StoreError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "redb" => Ok(Self::Redb),
            #[cfg(feature = "sled")]
            "sled" => Ok(Self::Sled),
            #[cfg(not(feature = "sled"))]
            "sled" => Err(StoreError::UnknownBackend {
                name: name.to_owned(),
                hint: "this build has no sled backend; rebuild with the cargo feature `sled`"
                    .to_owned(),
            }),
            _ => Err(StoreError::UnknownBackend {
                name: name.to_owned(),
                hint: if cfg!(feature = "sled") {
                    "expected \"redb\" or \"sled\"".to_owned()
                } else {
                    "expected \"redb\"".to_owned()
                },
            }),
        }
    }
}

/// Opens `backend` inside the data directory `dir`, creating the directory
/// if needed.
///
/// Refuses a directory holding the files of another backend, detected by the
/// names each backend uses, so no marker file is needed.
pub fn open(backend: Backend, dir: &Path) -> Result<Arc<dyn Storage>, StoreError> {
    std::fs::create_dir_all(dir).map_err(|error| StoreError::Io {
        action: "creating data directory",
        path: dir.display().to_string(),
        message: error.to_string(),
    })?;
    let foreign =
        [("redb", REDB_FILE_NAME), ("sled", SLED_DIR_NAME)].into_iter().find(|(_, entry_name)| {
            *entry_name != backend.entry_name() && dir.join(entry_name).exists()
        });
    if let Some((found, _)) = foreign {
        return Err(StoreError::WrongBackend {
            dir: dir.display().to_string(),
            found: found.to_owned(),
            requested: backend.name().to_owned(),
        });
    }
    let path = dir.join(backend.entry_name());
    match backend {
        Backend::Redb => Ok(Arc::new(RedbStorage::open(&path)?)),
        #[cfg(feature = "sled")]
        Backend::Sled => Ok(Arc::new(SledStorage::open(&path)?)),
    }
}
