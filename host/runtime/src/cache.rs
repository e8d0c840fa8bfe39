//! The compiled-artifact cache: Cranelift's output kept on disk so that a
//! restart (or a second node process on the same disk) loads a component
//! in milliseconds instead of compiling it again for seconds.
//!
//! Layout of the cache directory:
//!
//! ```text
//! <dir>/<engine fingerprint>/<content hash>.cwasm          Component::serialize() output
//! <dir>/<engine fingerprint>/<content hash>.cwasm.sha256   SHA-256 of that file, hex, newline
//! ```
//!
//! The content hash is the lowercase hex SHA-256 of the component's bytes.
//! The engine fingerprint is the hex SHA-256 of wasmtime's
//! `Engine::precompile_compatibility_hash` (the wasmtime version, the
//! target, and every engine setting that shapes compiled code: fuel
//! metering, epoch interruption, memory reservation and guard sizes, wasm
//! features) together with this cache's format version: a node whose
//! settings change compiled code, or a newer wasmtime, looks in another
//! directory and never loads a stale artifact. Limits enforced at run time
//! (pool size, memory cap, deadlines) do not change the code, so nodes
//! that differ only in those share artifacts. Old fingerprint directories
//! are never read again and may be deleted by the operator.
//!
//! Writes are atomic (a temporary file, fsync, rename, then the directory's
//! fsync), artifact first, sidecar second; files are only ever replaced by
//! rename, never changed in place. Before an artifact is loaded its bytes
//! are hashed and compared with the sidecar: a torn, truncated or tampered
//! file (or a missing sidecar) is a miss, compiled again and rewritten,
//! never loaded. A hit still runs every check of a compile that needs no
//! compiler (size, header, code shape), so a cached artifact never admits
//! what the current limits refuse.

use std::fs::{self, File};
use std::hash::Hasher;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Format version of the cache, hashed into the engine fingerprint: bump
/// it when the layout or the sidecar changes, and old entries are ignored.
const CACHE_FORMAT: &[u8] = b"bazaar-artifact-cache-v1\0";
/// Extension of an artifact file.
const ARTIFACT_EXTENSION: &str = "cwasm";
/// Extension added to an artifact's name for its hash sidecar.
const SIDECAR_EXTENSION: &str = "sha256";
/// Bytes read of a sidecar at most: 64 hex digits and a newline, with room
/// to spare; anything longer is not one of ours.
const SIDECAR_BYTES_MAX: u64 = 128;
/// Length of a SHA-256 in hex.
pub(crate) const SHA256_HEX_LEN: usize = 64;
/// Buffer for hashing an artifact file: large enough that the hash, not
/// the system calls, sets the pace.
const HASH_BUFFER_BYTES: usize = 256 * 1024;

/// Distinguishes the temporary files of concurrent writers in one process;
/// the process id distinguishes processes.
static TEMP_FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory of compiled artifacts shared by every runtime that opens
/// it; see the module documentation for its layout.
#[derive(Clone, Debug)]
pub struct ArtifactCache {
    /// The root of the cache.
    dir: PathBuf,
}

/// Whether [`Runtime::compile_cached`](crate::Runtime::compile_cached)
/// found a usable artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A verified artifact was loaded; nothing was compiled.
    Hit,
    /// There was no usable artifact: the component was compiled and the
    /// artifact written for next time.
    Miss,
}

impl ArtifactCache {
    /// Opens (creating it if needed) the cache rooted at `dir`.
    pub fn open(dir: PathBuf) -> io::Result<ArtifactCache> {
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The root of the cache.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the artifact of `content_hash` for `engine_fingerprint` lives.
    /// Both are checked hex strings, so the path stays inside the cache.
    pub(crate) fn artifact_path(&self, engine_fingerprint: &str, content_hash: &str) -> PathBuf {
        self.dir.join(engine_fingerprint).join(format!("{content_hash}.{ARTIFACT_EXTENSION}"))
    }

    /// The verified artifact at `path`, deserialized for `engine`; `Err`
    /// says why there is none to use.
    pub(crate) fn load(&self, engine: &Engine, path: &Path) -> Result<Component, Unusable> {
        let expected = read_sidecar(&sidecar_path(path))?;
        let actual = hash_file(path).map_err(Unusable::Io)?;
        if actual != expected {
            return Err(Unusable::HashMismatch);
        }
        deserialize_verified(engine, path)
            .map_err(|error| Unusable::Deserialize(format!("{error:#}")))
    }

    /// Writes `artifact` at `path` with its sidecar, atomically.
    pub(crate) fn store(&self, path: &Path, artifact: &[u8]) -> io::Result<()> {
        let dir = path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(dir)?;
        write_atomically(path, artifact)?;
        let sidecar = format!("{}\n", hex(&Sha256::digest(artifact)));
        write_atomically(&sidecar_path(path), sidecar.as_bytes())?;
        sync_dir(dir)
    }
}

/// Why a cached artifact was not used.
#[derive(Debug)]
pub(crate) enum Unusable {
    /// There is none yet.
    Absent,
    /// A file could not be read.
    Io(io::Error),
    /// The sidecar is not a hash written by this cache.
    BadSidecar,
    /// The artifact's bytes are not the ones the sidecar names.
    HashMismatch,
    /// wasmtime refused the artifact.
    Deserialize(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Absent => f.write_str("no artifact yet"),
            Unusable::Io(error) => write!(f, "unreadable: {error}"),
            Unusable::BadSidecar => f.write_str("its hash sidecar is malformed"),
            Unusable::HashMismatch => f.write_str("its bytes do not match its recorded hash"),
            Unusable::Deserialize(error) => write!(f, "wasmtime refused it: {error}"),
        }
    }
}

impl Unusable {
    /// Whether this is the normal first-time miss rather than damage worth
    /// an operator's attention.
    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, Unusable::Absent)
    }
}

/// Loads an artifact whose bytes were just verified against their sidecar.
#[allow(unsafe_code)]
fn deserialize_verified(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize_file` trusts the file to be
    // `Component::serialize` output of a compatible engine that nobody
    // modifies while it is mapped. The file is the node's own, in the
    // node's private cache directory, written by `ArtifactCache::store`
    // from `Component::serialize`; its bytes were hashed just now and match
    // the SHA-256 recorded when it was written, so it is not torn, truncated
    // or altered; its directory is named by the engine's compatibility
    // fingerprint (and wasmtime checks its own header as well); and files
    // there are only ever replaced by rename, never rewritten in place, so
    // the mapped file stays the verified one.
    unsafe { Component::deserialize_file(engine, path) }
}

/// The hex fingerprint of `engine`'s compiled-code compatibility.
pub(crate) fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.write(CACHE_FORMAT);
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hex(&hasher.0.finalize())
}

/// Feeds `std::hash::Hash` output into SHA-256, so the fingerprint has
/// 256 bits and a stable algorithm.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Whether `text` is a SHA-256 in lowercase hex.
pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == SHA256_HEX_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(text, "{byte:02x}");
    }
    text
}

fn sidecar_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_owned();
    name.push(".");
    name.push(SIDECAR_EXTENSION);
    PathBuf::from(name)
}

fn read_sidecar(path: &Path) -> Result<String, Unusable> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(Unusable::Absent),
        Err(error) => return Err(Unusable::Io(error)),
    };
    let mut text = String::new();
    file.take(SIDECAR_BYTES_MAX).read_to_string(&mut text).map_err(|_| Unusable::BadSidecar)?;
    let hash = text.strip_suffix('\n').unwrap_or(&text);
    if is_sha256_hex(hash) { Ok(hash.to_owned()) } else { Err(Unusable::BadSidecar) }
}

fn hash_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; HASH_BUFFER_BYTES];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Writes `bytes` to a fresh temporary file beside `path`, makes them
/// durable, and renames the file over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_FILE_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temporary = PathBuf::from(temporary);
    let written = File::create_new(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| fs::rename(&temporary, path));
    if renamed.is_err() {
        // Best effort: a leftover temporary file is only wasted space.
        let _ = fs::remove_file(&temporary);
    }
    renamed
}

/// Makes the renames in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lowercase_hex_of_the_right_length_is_a_content_hash() {
        assert!(is_sha256_hex(&sha256_hex(b"component")));
        assert!(!is_sha256_hex(&sha256_hex(b"component").to_uppercase()));
        assert!(!is_sha256_hex("../../etc/passwd"));
        assert!(!is_sha256_hex(&"a".repeat(63)));
    }

    #[test]
    fn the_sidecar_sits_beside_its_artifact() {
        assert_eq!(
            sidecar_path(Path::new("/cache/f/abc.cwasm")),
            PathBuf::from("/cache/f/abc.cwasm.sha256")
        );
    }

    #[test]
    fn the_same_engine_settings_give_the_same_fingerprint() {
        let engine = Engine::default();
        let fingerprint = engine_fingerprint(&engine);
        assert!(is_sha256_hex(&fingerprint));
        assert_eq!(fingerprint, engine_fingerprint(&Engine::default()));
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let metered = Engine::new(&config).expect("a fuel-metering engine");
        assert_ne!(fingerprint, engine_fingerprint(&metered));
    }
}
