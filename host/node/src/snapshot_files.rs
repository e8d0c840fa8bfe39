//! Shard snapshots in files of their own, beside the journal's database.
//!
//! A large shard's snapshot is hundreds of megabytes. Committed into the
//! database it would travel the journal's one commit path, and every order
//! acknowledgement queued behind it would wait for it, up to a second under
//! a flash sale. Instead the snapshot thread writes the state to a file at
//! its own low priority (streamed, fsync'd, renamed into place, the
//! directory fsync'd), and the journal then commits only a reference: the
//! file's name, length and SHA-256. That small commit compacts the stream
//! as a snapshot always did, and it is made only once the file is durable,
//! so a stored reference always names a whole file.
//!
//! A snapshot file that no stored reference names (the snapshot it
//! replaced, or one whose reference was never committed) is deleted once a
//! newer reference is durable, and at start-up. Anything else in the
//! directory is the operator's and is left alone. Snapshots stored before
//! files existed hold the state in the payload itself and are still read.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bazaar_kernel::{Shard, SnapshotCopy};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The directory under the data directory that holds the files.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// Opens a journal snapshot payload that is a reference to a file. A
/// payload that is the state itself begins with the shard's store count and
/// the length of its first store id, and these bytes would read as a first
/// id of 97 characters, longer than any identifier may be.
const REFERENCE_MAGIC: &[u8] = b"bazaar-snapshot-file/1\n";

/// Buffer between the encoder and the file: large writes, few syscalls.
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// Bytes of a snapshot file written between two flushes to the disk. The
/// journal's commits share the disk: left to the final `fsync`, hundreds of
/// megabytes of a large state reach the disk in one burst, and a commit's
/// `fdatasync` waits behind it (an 800 MB burst beside a 256-connection load
/// took its p99.9 from about 25 ms to 45–143 ms; in 8 MiB steps it stayed
/// at 29 ms). In steps, a commit waits behind one step at most.
const SYNC_EVERY_BYTES: u64 = 8 * 1024 * 1024;

/// What the journal stores for a snapshot held in a file.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileReference {
    /// The file's name in [`SNAPSHOT_DIR`].
    name: String,
    /// Its length.
    bytes: u64,
    /// Its SHA-256.
    sha256: [u8; 32],
}

/// A snapshot file made durable, and the payload the journal stores for it.
pub struct WrittenSnapshot {
    /// The file's name.
    pub name: String,
    /// The reference to commit as the stream's snapshot.
    pub payload: Vec<u8>,
}

/// The snapshot files of one data directory.
pub struct SnapshotFiles {
    dir: PathBuf,
}

impl SnapshotFiles {
    /// The snapshot directory of `data_dir`, created if missing.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let dir = data_dir.join(SNAPSHOT_DIR);
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// Writes `copy`, the state of `stream` after record `sequence`, to its
    /// file and makes the file durable.
    pub fn write(
        &self,
        stream: u32,
        sequence: u64,
        copy: SnapshotCopy,
    ) -> Result<WrittenSnapshot, String> {
        let name = format!("shard-{stream}-{sequence}{SNAPSHOT_SUFFIX}");
        let path = self.dir.join(&name);
        let partial = self.dir.join(format!("{name}{PARTIAL_SUFFIX}"));
        let failed = |what: &str, error: &dyn std::fmt::Display| {
            format!("snapshot file {}: {what}: {error}", path.display())
        };
        let file = File::create(&partial).map_err(|e| failed("creating", &e))?;
        // The encoder writes field by field; the hash sees the buffer's
        // megabyte chunks on their way to the file.
        let out = BufWriter::with_capacity(
            WRITE_BUFFER_BYTES,
            HashingWriter { file, hasher: Sha256::new(), bytes: 0, unsynced: 0 },
        );
        let out = copy.write_to(out).map_err(|e| failed("writing", &e))?;
        let out = out.into_inner().map_err(|e| failed("writing", &e.error()))?;
        out.file.sync_all().map_err(|e| failed("syncing", &e))?;
        fs::rename(&partial, &path).map_err(|e| failed("renaming", &e))?;
        // The rename is durable only once the directory is.
        File::open(&self.dir).and_then(|dir| dir.sync_all()).map_err(|e| failed("syncing", &e))?;
        let reference = FileReference {
            name: name.clone(),
            bytes: out.bytes,
            sha256: out.hasher.finalize().into(),
        };
        let mut payload = REFERENCE_MAGIC.to_vec();
        payload.extend(postcard::to_allocvec(&reference).map_err(|e| failed("encoding", &e))?);
        Ok(WrittenSnapshot { name, payload })
    }

    /// The state a stored snapshot payload holds: the file it names, checked
    /// against the length and digest the reference recorded, or the payload
    /// itself for a snapshot stored before files. Also the file's name, if
    /// there is one.
    pub fn read(&self, payload: &[u8]) -> Result<(Shard, Option<String>), String> {
        let Some(reference) = payload.strip_prefix(REFERENCE_MAGIC) else {
            let shard = Shard::decode(payload).map_err(|e| format!("snapshot: {e}"))?;
            return Ok((shard, None));
        };
        let reference: FileReference = postcard::from_bytes(reference)
            .map_err(|e| format!("snapshot reference is unreadable: {e}"))?;
        if reference.name.contains(['/', '\\']) || reference.name.starts_with('.') {
            return Err(format!("snapshot reference names no plain file: {:?}", reference.name));
        }
        let path = self.dir.join(&reference.name);
        let failed = |what: String| format!("snapshot file {}: {what}", path.display());
        let mut file = File::open(&path).map_err(|e| failed(format!("cannot be opened: {e}")))?;
        let length = file.metadata().map_err(|e| failed(e.to_string()))?.len();
        if length != reference.bytes {
            return Err(failed(format!(
                "is {length} bytes, but the journal recorded {}",
                reference.bytes
            )));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(|e| failed(format!("cannot be read: {e}")))?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if digest != reference.sha256 {
            return Err(failed("does not match the digest the journal recorded".into()));
        }
        let shard = Shard::decode(&bytes).map_err(|e| failed(format!("cannot be decoded: {e}")))?;
        Ok((shard, Some(reference.name)))
    }

    /// Deletes every snapshot file in the directory but the one of each
    /// stream in `kept`: older snapshots, any whose reference was never
    /// committed, and any left half-written. Other files are not the
    /// node's, and stay.
    pub fn keep_only(&self, kept: &BTreeMap<u32, String>) -> io::Result<()> {
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_written_by_a_node(name)
                && !kept.values().any(|kept| kept == name)
                && entry.file_type()?.is_file()
            {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
}

/// How the name of a snapshot file ends.
const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// What the name of a snapshot file being written adds.
const PARTIAL_SUFFIX: &str = ".partial";

/// Whether `name` is one [`SnapshotFiles::write`] gives a file:
/// `shard-<stream>-<sequence>.snapshot`, with `.partial` while it is being
/// written.
fn is_written_by_a_node(name: &str) -> bool {
    let name = name.strip_suffix(PARTIAL_SUFFIX).unwrap_or(name);
    let Some(numbers) = name.strip_prefix("shard-").and_then(|n| n.strip_suffix(SNAPSHOT_SUFFIX))
    else {
        return false;
    };
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    numbers.split_once('-').is_some_and(|(stream, sequence)| digits(stream) && digits(sequence))
}

/// Passes bytes on to a file while hashing and counting them, and has the
/// file's data written to the disk every [`SYNC_EVERY_BYTES`].
struct HashingWriter {
    file: File,
    hasher: Sha256,
    bytes: u64,
    /// Bytes written since the last flush to the disk.
    unsynced: u64,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
        self.unsynced += written as u64;
        if self.unsynced >= SYNC_EVERY_BYTES {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::is_written_by_a_node;

    #[test]
    fn only_the_names_a_node_writes_are_its_snapshot_files() {
        for name in ["shard-0-1.snapshot", "shard-12-90000.snapshot", "shard-1-7.snapshot.partial"]
        {
            assert!(is_written_by_a_node(name), "{name}");
        }
        for name in [
            "shard-0-1.snapshot.bak",
            "backup-shard-0-1.snapshot",
            "shard-0.snapshot",
            "shard--1.snapshot",
            "shard-a-1.snapshot",
            "shard-0-1-2.snapshot",
            "README",
            ".partial",
        ] {
            assert!(!is_written_by_a_node(name), "{name}");
        }
    }
}
