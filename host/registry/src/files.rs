//! File helpers shared by packages and the blob store: reading with a size
//! limit checked before the bytes are held, and writing a file so that a
//! crash leaves either the old file or the complete new one, never a part.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A failed file operation, with what was being done and where.
#[derive(Debug)]
pub(crate) struct FileError {
    /// What was being done, e.g. "reading".
    pub(crate) action: &'static str,
    /// The file involved.
    pub(crate) path: PathBuf,
    /// The operating system's error.
    pub(crate) error: io::Error,
}

/// What [`read_limited`] found.
pub(crate) enum Limited {
    /// The whole file, within the limit.
    Bytes(Vec<u8>),
    /// The file is larger than the limit; nothing beyond it was read.
    TooLarge {
        /// The size seen: the file's length, or the limit plus one when the
        /// file grew while it was read.
        size_bytes: u64,
    },
}

/// Reads `path` if it holds at most `size_bytes_max` bytes. The length is
/// checked before reading, and the read itself stops one byte past the limit
/// in case the file grows in between, so an oversized file is never held in
/// memory.
pub(crate) fn read_limited(path: &Path, size_bytes_max: usize) -> Result<Limited, FileError> {
    let failed = |action: &'static str| {
        move |error: io::Error| FileError { action, path: path.to_owned(), error }
    };
    let file = File::open(path).map_err(failed("opening"))?;
    let length = file.metadata().map_err(failed("reading the size of"))?.len();
    let limit = size_bytes_max as u64;
    if length > limit {
        return Ok(Limited::TooLarge { size_bytes: length });
    }
    // The length fits in usize: it is at most the limit, itself a usize.
    let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(size_bytes_max));
    file.take(limit + 1).read_to_end(&mut bytes).map_err(failed("reading"))?;
    if bytes.len() > size_bytes_max {
        return Ok(Limited::TooLarge { size_bytes: limit + 1 });
    }
    Ok(Limited::Bytes(bytes))
}

/// Distinguishes the temporary files of concurrent writers in one process;
/// the process id distinguishes processes.
static TEMPORARY_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `dir/name` atomically and durably: a temporary file in
/// the same directory is written and fsync'd, renamed over the target (an
/// atomic replacement on one file system), and the directory is fsync'd so
/// the rename itself survives a crash.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), FileError> {
    let sequence = TEMPORARY_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let temporary = dir.join(format!(".{name}.{}.{sequence}.tmp", std::process::id()));
    let target = dir.join(name);
    let result = write_then_rename(&temporary, &target, bytes);
    if result.is_err() {
        // Best effort: the temporary file is garbage either way, and the
        // error that matters is the one being returned.
        let _ = fs::remove_file(&temporary);
    }
    result?;
    sync_dir(dir)
}

/// The body of [`write_atomically`] up to the rename.
fn write_then_rename(temporary: &Path, target: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let failed = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |error: io::Error| FileError { action, path, error }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temporary)
        .map_err(failed("creating", temporary))?;
    file.write_all(bytes).map_err(failed("writing", temporary))?;
    file.sync_all().map_err(failed("syncing", temporary))?;
    drop(file);
    fs::rename(temporary, target).map_err(failed("renaming into place", target))
}

/// Makes the directory's entries (a rename) durable.
fn sync_dir(dir: &Path) -> Result<(), FileError> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|directory| directory.sync_all()).map_err(|error| FileError {
            action: "syncing directory",
            path: dir.to_owned(),
            error,
        })
    }
    #[cfg(not(unix))]
    {
        // Other platforms cannot open a directory for fsync; their rename
        // durability comes from the file system's own journal.
        let _ = dir;
        Ok(())
    }
}
