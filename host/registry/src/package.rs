//! The package a partner publishes: a directory holding `plugin.toml`,
//! `plugin.wasm` and, once signed, `plugin.sig`.
//!
//! Reading checks each file's size before holding its bytes, so pointing the
//! host at a huge file costs nothing. The package keeps the manifest's exact
//! bytes because the signature covers the bytes, not their meaning.

use std::path::{Path, PathBuf};

use crate::files::{self, FileError, Limited};
use crate::manifest::{MANIFEST_BYTES_MAX, Manifest, ManifestError};
use crate::signature::{
    self, ContentHash, PluginSignature, PublisherKey, PublisherSecret, SignatureError,
};

/// Largest component.
///
/// Components built with componentize-py weigh about 18 MB and with
/// componentize-js about 12 MB; 64 MiB leaves room for larger runtimes while
/// bounding what one install makes the host read, hash, store and compile.
pub const PACKAGE_COMPONENT_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Largest signature file: 128 hex characters and a line ending, with room
/// for stray whitespace an editor may add.
const SIGNATURE_FILE_BYTES_MAX: usize = 256;

/// The manifest's file name inside a package.
pub const MANIFEST_FILE_NAME: &str = "plugin.toml";
/// The component's file name inside a package.
pub const COMPONENT_FILE_NAME: &str = "plugin.wasm";
/// The signature's file name inside a package.
pub const SIGNATURE_FILE_NAME: &str = "plugin.sig";

/// Why a package could not be read or signed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A required file does not exist.
    #[error("{} is missing: a package needs {what}", path.display())]
    Missing {
        /// The missing file.
        path: PathBuf,
        /// What the file is for.
        what: &'static str,
    },
    /// A file is larger than its limit.
    #[error("{} is {size_bytes} bytes, more than the limit of {size_bytes_max}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (for a file that grew while read, the limit plus one).
        size_bytes: u64,
        /// The limit.
        size_bytes_max: usize,
    },
    /// The component file is empty.
    #[error("{} is empty; build the component before packaging it", path.display())]
    EmptyComponent {
        /// The file.
        path: PathBuf,
    },
    /// The manifest is not UTF-8 text.
    #[error("{} is not UTF-8 text", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// The signature file does not hold a signature.
    #[error("{}: {error}", path.display())]
    MalformedSignature {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: SignatureError,
    },
    /// The manifest does not parse; a package is never signed in that state.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The file system failed.
    #[error("{action} {}: {error}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
}

impl From<FileError> for PackageError {
    fn from(failure: FileError) -> Self {
        PackageError::Io { action: failure.action, path: failure.path, error: failure.error }
    }
}

/// A package's files as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// The exact text of `plugin.toml`, as signed.
    pub manifest_text: String,
    /// The bytes of `plugin.wasm`.
    pub component: Vec<u8>,
    /// The signature from `plugin.sig`, if the package is signed.
    pub signature: Option<PluginSignature>,
}

impl Package {
    /// Reads the package in `dir`: `plugin.toml` (at most
    /// [`MANIFEST_BYTES_MAX`]), `plugin.wasm` (at most
    /// [`PACKAGE_COMPONENT_BYTES_MAX`]) and `plugin.sig` if present. The
    /// manifest is read as text but not parsed; see [`Package::manifest`].
    pub fn read_dir(dir: &Path) -> Result<Package, PackageError> {
        let (manifest_text, component) = read_signed_files(dir)?;
        let signature_path = dir.join(SIGNATURE_FILE_NAME);
        let signature = if signature_path.exists() {
            let bytes = read_file(&signature_path, SIGNATURE_FILE_BYTES_MAX, "its signature")?;
            let text = String::from_utf8(bytes)
                .map_err(|_| PackageError::NotUtf8 { path: signature_path.clone() })?;
            let signature = PluginSignature::parse(text.trim()).map_err(|error| {
                PackageError::MalformedSignature { path: signature_path.clone(), error }
            })?;
            Some(signature)
        } else {
            None
        };
        Ok(Package { manifest_text, component, signature })
    }

    /// Parses the manifest.
    pub fn manifest(&self) -> Result<Manifest, ManifestError> {
        Manifest::parse(&self.manifest_text)
    }

    /// The content hash of the component.
    pub fn content_hash(&self) -> ContentHash {
        signature::content_hash(&self.component)
    }

    /// Checks the package's signature against `key`.
    pub fn verify(&self, key: &PublisherKey) -> Result<(), SignatureError> {
        let signature = self.signature.as_ref().ok_or(SignatureError::Unsigned)?;
        signature::verify(key, self.manifest_text.as_bytes(), &self.component, signature)
    }

    /// Signs the package in `dir` with `secret` and writes `plugin.sig`
    /// atomically, replacing any earlier signature. Refuses a package whose
    /// manifest does not parse, so a publisher never ships a signed package
    /// that every host would refuse.
    pub fn write_signature(
        dir: &Path,
        secret: &PublisherSecret,
    ) -> Result<PluginSignature, PackageError> {
        let (manifest_text, component) = read_signed_files(dir)?;
        Manifest::parse(&manifest_text)?;
        let signature = signature::sign(secret, manifest_text.as_bytes(), &component);
        files::write_atomically(dir, SIGNATURE_FILE_NAME, format!("{signature}\n").as_bytes())?;
        Ok(signature)
    }
}

/// Reads the two files a signature covers: the manifest text and the
/// component bytes.
fn read_signed_files(dir: &Path) -> Result<(String, Vec<u8>), PackageError> {
    let manifest_path = dir.join(MANIFEST_FILE_NAME);
    let manifest_bytes = read_file(&manifest_path, MANIFEST_BYTES_MAX, "its manifest")?;
    let manifest_text = String::from_utf8(manifest_bytes)
        .map_err(|_| PackageError::NotUtf8 { path: manifest_path })?;
    let component_path = dir.join(COMPONENT_FILE_NAME);
    let component = read_file(&component_path, PACKAGE_COMPONENT_BYTES_MAX, "its component")?;
    if component.is_empty() {
        return Err(PackageError::EmptyComponent { path: component_path });
    }
    Ok((manifest_text, component))
}

/// Reads one package file of at most `size_bytes_max` bytes.
fn read_file(
    path: &Path,
    size_bytes_max: usize,
    what: &'static str,
) -> Result<Vec<u8>, PackageError> {
    match files::read_limited(path, size_bytes_max) {
        Ok(Limited::Bytes(bytes)) => Ok(bytes),
        Ok(Limited::TooLarge { size_bytes }) => {
            Err(PackageError::TooLarge { path: path.to_owned(), size_bytes, size_bytes_max })
        }
        Err(failure) if failure.error.kind() == std::io::ErrorKind::NotFound => {
            Err(PackageError::Missing { path: path.to_owned(), what })
        }
        Err(failure) => Err(failure.into()),
    }
}
