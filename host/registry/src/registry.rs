//! The durable registry of trusted publishers, installed plugin versions and
//! which version of each plugin is active, shadowed or rolled back to.
//!
//! Records live in the store's key-value space under `registry/`, as JSON:
//!
//! - `registry/format`: the layout version, checked at open;
//! - `registry/publishers/<publisher>`: a [`TrustedPublisher`];
//! - `registry/plugins/<id>`: the plugin's installed versions and its
//!   [`PluginActivation`];
//! - `registry/versions/<id>/<version>`: a [`VersionRecord`].
//!
//! Component bytes are not in the key-value space (values are bounded at
//! 1 MiB, components at 64 MiB) but in `blob_dir/<content-hash>.wasm`.
//!
//! Crash safety comes from write order, since the store has no multi-key
//! transactions. Installing writes the blob, then the version record, then
//! the plugin entry; the plugin entry is the commit point: a version exists
//! exactly when its plugin entry lists it. A crash before the entry is
//! written leaves an unlisted record and perhaps a blob, both invisible and
//! overwritten or reused by the next install. Removing a version unlists it
//! first and deletes the record after, for the same reason. Blobs are shared
//! by content and never deleted here: an orphan blob is harmless.
//!
//! One `Registry` owns its storage's registry keys; writers are serialised
//! by a mutex, so read-modify-write operations (activate, rollback) never
//! lose an update.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bazaar_kernel::model::{PluginId, PluginKind};
use bazaar_store::{Storage, StoreError};
use semver::Version;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::files::{self, Limited};
use crate::manifest::{Manifest, ManifestError, PublisherId};
use crate::package::{PACKAGE_COMPONENT_BYTES_MAX, Package};
use crate::signature::{self, ContentHash, PluginSignature, PublisherKey, SignatureError};

/// Most versions of one plugin kept installed.
///
/// Enough for a long release history with room to roll back, small enough
/// that listing a plugin's versions (each carrying a manifest of up to
/// 64 KiB) stays a few megabytes.
pub const VERSIONS_PER_PLUGIN_MAX: usize = 64;

/// Most plugins installed on one node.
///
/// A marketplace of a thousand plugins is large; the bound keeps the plugin
/// list, scanned on every listing, well inside the store's scan limit.
pub const PLUGINS_MAX: usize = 1024;

/// Most trusted publishers.
///
/// Each is a key an operator vetted by hand; the whole set is held in memory
/// and shown on one page.
pub const TRUSTED_PUBLISHERS_MAX: usize = 256;

/// Most previously active versions remembered per plugin for rollback.
///
/// Rolling back further than 32 releases is a reinstall, not a rollback; the
/// bound keeps each plugin entry small.
pub const ACTIVATION_HISTORY_MAX: usize = 32;

/// Largest share of calls a shadow version may receive: all of them.
pub const SHADOW_SHARE_PERCENT_MAX: u8 = 100;

/// Layout version of the registry's keys and values. Bumped on any
/// incompatible change, so an older binary refuses a newer layout instead of
/// misreading it.
const FORMAT_VERSION: &str = "1";
/// Key of the layout version.
const FORMAT_KEY: &str = "registry/format";
/// Prefix of trusted publisher records.
const PUBLISHER_PREFIX: &str = "registry/publishers/";
/// Prefix of plugin entries (installed versions and activation).
const PLUGIN_PREFIX: &str = "registry/plugins/";
/// Prefix of version records.
const VERSION_PREFIX: &str = "registry/versions/";

/// Why the registry refused a request or failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The store failed.
    #[error("registry storage: {0}")]
    Store(#[from] StoreError),
    /// A blob file operation failed.
    #[error("{action} {}: {message}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// A stored value does not decode; the registry was changed outside
    /// this crate or by an incompatible version.
    #[error("registry entry {key} is corrupt: {detail}")]
    Corrupt {
        /// The key of the value.
        key: String,
        /// What failed to decode.
        detail: String,
    },
    /// The store holds a registry layout this build does not know.
    #[error(
        "the registry uses layout version {found:?}, but this build reads version \
         {FORMAT_VERSION}; use a matching build"
    )]
    UnsupportedFormat {
        /// The layout version found.
        found: String,
    },
    /// A version record's manifest does not parse.
    #[error("the version record's manifest is invalid: {0}")]
    Manifest(#[from] ManifestError),
    /// A version record's field disagrees with its own manifest.
    #[error("the version record says {field} is {record:?}, but its manifest says {manifest:?}")]
    RecordMismatch {
        /// The field, e.g. "version".
        field: &'static str,
        /// The record's value.
        record: String,
        /// The manifest's value.
        manifest: String,
    },
    /// The same id and version is installed with other bytes.
    #[error(
        "{id} {version} is already installed with a different manifest or component; \
         publish a new version instead of changing a released one"
    )]
    VersionConflict {
        /// The plugin.
        id: PluginId,
        /// The version.
        version: Version,
    },
    /// No plugin with this id is installed.
    #[error("no plugin {id} is installed")]
    UnknownPlugin {
        /// The plugin.
        id: PluginId,
    },
    /// The plugin is installed but not at this version.
    #[error("{id} {version} is not installed")]
    NotInstalled {
        /// The plugin.
        id: PluginId,
        /// The version.
        version: Version,
    },
    /// A version cannot be removed while it serves traffic.
    #[error("{id} {version} is the {role} version; {remedy} before removing it")]
    VersionInUse {
        /// The plugin.
        id: PluginId,
        /// The version.
        version: Version,
        /// "active" or "shadow".
        role: &'static str,
        /// What to do first.
        remedy: &'static str,
    },
    /// Rollback found no earlier version that is still installed.
    #[error("{id} has no earlier active version that is still installed to roll back to")]
    NothingToRollBackTo {
        /// The plugin.
        id: PluginId,
    },
    /// A shadow setting that cannot work.
    #[error("cannot shadow {id}: {reason}")]
    InvalidShadow {
        /// The plugin.
        id: PluginId,
        /// Why.
        reason: String,
    },
    /// A named limit would be exceeded; nothing was written.
    #[error("{what}: the limit of {limit} is reached")]
    LimitReached {
        /// What is full, e.g. "versions of pricing-promotions".
        what: String,
        /// The limit.
        limit: usize,
    },
    /// A component is larger than [`PACKAGE_COMPONENT_BYTES_MAX`].
    #[error(
        "the component is {size_bytes} bytes, more than the limit of {PACKAGE_COMPONENT_BYTES_MAX}"
    )]
    ComponentTooLarge {
        /// Its size.
        size_bytes: u64,
    },
    /// A version record names a blob that is not stored.
    #[error("component blob {hash} is not stored{detail}")]
    BlobMissing {
        /// The blob's content hash.
        hash: ContentHash,
        /// More about what was found, if anything.
        detail: String,
    },
    /// A stored blob's bytes no longer have its hash: the file was changed.
    #[error("component blob {expected} was modified on disk: its bytes now hash to {actual}")]
    BlobTampered {
        /// The hash the blob is stored under.
        expected: ContentHash,
        /// A description of what the bytes hash to now.
        actual: String,
    },
    /// The package's publisher is not trusted.
    #[error("publisher {publisher} is not trusted; an operator must trust its key first")]
    UntrustedPublisher {
        /// The publisher named by the manifest.
        publisher: PublisherId,
    },
    /// The package's signature does not verify with its publisher's key.
    #[error("publisher {publisher}: {error}")]
    Signature {
        /// The publisher named by the manifest.
        publisher: PublisherId,
        /// Why verification failed.
        error: SignatureError,
    },
}

impl From<files::FileError> for RegistryError {
    fn from(failure: files::FileError) -> Self {
        RegistryError::Io {
            action: failure.action,
            path: failure.path,
            message: failure.error.to_string(),
        }
    }
}

/// A publisher whose key the operator trusts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedPublisher {
    /// The publisher.
    pub publisher: PublisherId,
    /// The key that verifies its packages.
    pub key: PublisherKey,
    /// When the key was trusted, milliseconds since the Unix epoch.
    pub trusted_at_ms: u64,
}

/// One installed version of a plugin.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The plugin, as its manifest says.
    pub id: PluginId,
    /// The version, as its manifest says.
    pub version: Version,
    /// The extension point, as its manifest says.
    pub kind: PluginKind,
    /// The publisher, as its manifest says.
    pub publisher: PublisherId,
    /// The exact manifest text, as signed.
    pub manifest_text: String,
    /// The hash of the component, naming its blob.
    pub content_hash: ContentHash,
    /// The component's size.
    pub size_bytes: u64,
    /// The publisher's signature, if the package was signed.
    pub signature: Option<PluginSignature>,
    /// When it was installed, milliseconds since the Unix epoch.
    pub installed_at_ms: u64,
    /// The parsed manifest, filled on first use.
    #[serde(skip)]
    manifest: OnceLock<Manifest>,
}

impl PartialEq for VersionRecord {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.version == other.version
            && self.kind == other.kind
            && self.publisher == other.publisher
            && self.manifest_text == other.manifest_text
            && self.content_hash == other.content_hash
            && self.size_bytes == other.size_bytes
            && self.signature == other.signature
            && self.installed_at_ms == other.installed_at_ms
    }
}

impl Eq for VersionRecord {}

impl VersionRecord {
    /// A record for a component with this manifest; the identifying fields
    /// are taken from the manifest, so they always agree with it.
    pub fn new(
        manifest_text: String,
        component: &[u8],
        signature: Option<PluginSignature>,
        installed_at_ms: u64,
    ) -> Result<VersionRecord, ManifestError> {
        let manifest = Manifest::parse(&manifest_text)?;
        Ok(VersionRecord {
            id: manifest.id.clone(),
            version: manifest.version.clone(),
            kind: manifest.kind,
            publisher: manifest.publisher.clone(),
            manifest_text,
            content_hash: signature::content_hash(component),
            size_bytes: component.len() as u64,
            signature,
            installed_at_ms,
            manifest: OnceLock::from(manifest),
        })
    }

    /// A record for `package`.
    pub fn from_package(
        package: &Package,
        installed_at_ms: u64,
    ) -> Result<VersionRecord, ManifestError> {
        Self::new(
            package.manifest_text.clone(),
            &package.component,
            package.signature,
            installed_at_ms,
        )
    }

    /// The parsed manifest; parsed once, then served from the record.
    pub fn manifest(&self) -> Result<&Manifest, ManifestError> {
        if let Some(manifest) = self.manifest.get() {
            return Ok(manifest);
        }
        let manifest = Manifest::parse(&self.manifest_text)?;
        Ok(self.manifest.get_or_init(|| manifest))
    }

    /// Refuses a record whose fields disagree with its manifest.
    fn check_consistent(&self) -> Result<&Manifest, RegistryError> {
        let manifest = self.manifest()?;
        let mismatch = |field: &'static str, record: String, manifest: String| {
            Err(RegistryError::RecordMismatch { field, record, manifest })
        };
        if self.id != manifest.id {
            return mismatch("id", self.id.to_string(), manifest.id.to_string());
        }
        if self.version != manifest.version {
            return mismatch("version", self.version.to_string(), manifest.version.to_string());
        }
        if self.kind != manifest.kind {
            return mismatch("kind", self.kind.to_string(), manifest.kind.to_string());
        }
        if self.publisher != manifest.publisher {
            return mismatch(
                "publisher",
                self.publisher.to_string(),
                manifest.publisher.to_string(),
            );
        }
        Ok(manifest)
    }
}

/// A plugin's rollout state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginActivation {
    /// The version serving calls, if any.
    pub active: Option<Version>,
    /// Previously active versions, most recent last, at most
    /// [`ACTIVATION_HISTORY_MAX`].
    pub history: Vec<Version>,
    /// A version run alongside the active one on a share of calls, whose
    /// outputs are compared but not used.
    pub shadow: Option<ShadowSetting>,
}

/// A shadow (canary) version and the share of calls it sees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowSetting {
    /// The shadow version.
    pub version: Version,
    /// Percentage of calls also sent to it, 1 to
    /// [`SHADOW_SHARE_PERCENT_MAX`].
    pub share_percent: u8,
}

/// A plugin with its installed versions and rollout state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PluginSummary {
    /// The plugin.
    pub id: PluginId,
    /// Installed versions, ascending.
    pub versions: Vec<Version>,
    /// Its rollout state.
    pub activation: PluginActivation,
}

/// What [`Registry::put_version`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The version was new and is now installed.
    Created,
    /// The identical version was already installed; nothing changed.
    AlreadyPresent,
}

/// What is stored per plugin: the commit point of its versions.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct PluginEntry {
    /// Installed versions, ascending; a version exists exactly when listed.
    versions: Vec<Version>,
    /// Its rollout state.
    activation: PluginActivation,
}

/// The registry over a store's key-value space and a blob directory.
pub struct Registry {
    /// The store holding the records.
    storage: Arc<dyn Storage>,
    /// Where component blobs are kept.
    blob_dir: PathBuf,
    /// Serialises every write, so read-modify-write never loses an update.
    writer: Mutex<()>,
    /// Trusted publishers, mirrored from the store: consulted on every
    /// install and small by [`TRUSTED_PUBLISHERS_MAX`].
    publishers: RwLock<BTreeMap<PublisherId, TrustedPublisher>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Registry").field("blob_dir", &self.blob_dir).finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens the registry in `storage`, keeping blobs in `blob_dir` (created
    /// if missing). Refuses a registry written with another layout version.
    pub fn open(storage: Arc<dyn Storage>, blob_dir: PathBuf) -> Result<Registry, RegistryError> {
        fs::create_dir_all(&blob_dir).map_err(|error| RegistryError::Io {
            action: "creating blob directory",
            path: blob_dir.clone(),
            message: error.to_string(),
        })?;
        match storage.kv_get(FORMAT_KEY.as_bytes())? {
            None => storage.kv_put(FORMAT_KEY.as_bytes(), FORMAT_VERSION.as_bytes())?,
            Some(found) if found == FORMAT_VERSION.as_bytes() => {}
            Some(found) => {
                return Err(RegistryError::UnsupportedFormat {
                    found: String::from_utf8_lossy(&found).into_owned(),
                });
            }
        }
        let mut publishers = BTreeMap::new();
        for (key, value) in storage.kv_scan_prefix(PUBLISHER_PREFIX.as_bytes())? {
            let key = String::from_utf8_lossy(&key).into_owned();
            let trusted: TrustedPublisher = decode(&key, &value)?;
            publishers.insert(trusted.publisher.clone(), trusted);
        }
        Ok(Registry {
            storage,
            blob_dir,
            writer: Mutex::new(()),
            publishers: RwLock::new(publishers),
        })
    }

    // ---- trusted publishers ----

    /// Trusts `key` for `publisher`, replacing any earlier key. Trusting the
    /// same key again changes nothing.
    pub fn trust(
        &self,
        publisher: PublisherId,
        key: PublisherKey,
    ) -> Result<TrustedPublisher, RegistryError> {
        let _writer = self.lock();
        let existing = self.read_publishers().get(&publisher).cloned();
        if let Some(existing) = existing {
            if existing.key == key {
                return Ok(existing);
            }
        } else if self.read_publishers().len() >= TRUSTED_PUBLISHERS_MAX {
            return Err(RegistryError::LimitReached {
                what: "trusted publishers".to_owned(),
                limit: TRUSTED_PUBLISHERS_MAX,
            });
        }
        let trusted = TrustedPublisher { publisher, key, trusted_at_ms: now_ms() };
        self.put(&publisher_key(&trusted.publisher), &trusted)?;
        self.publishers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(trusted.publisher.clone(), trusted.clone());
        Ok(trusted)
    }

    /// Stops trusting `publisher`; returns whether it was trusted. Installed
    /// versions stay installed: trust gates new installs.
    pub fn distrust(&self, publisher: &PublisherId) -> Result<bool, RegistryError> {
        let _writer = self.lock();
        if !self.read_publishers().contains_key(publisher) {
            return Ok(false);
        }
        self.storage.kv_delete(publisher_key(publisher).as_bytes())?;
        self.publishers.write().unwrap_or_else(PoisonError::into_inner).remove(publisher);
        Ok(true)
    }

    /// Every trusted publisher, by id.
    pub fn publishers(&self) -> Vec<TrustedPublisher> {
        self.read_publishers().values().cloned().collect()
    }

    /// The trusted key of `publisher`.
    pub fn publisher_key(&self, publisher: &PublisherId) -> Option<PublisherKey> {
        self.read_publishers().get(publisher).map(|trusted| trusted.key)
    }

    /// Checks that `package` is signed by the trusted key of the publisher
    /// its manifest names; returns the parsed manifest.
    pub fn verify_package(&self, package: &Package) -> Result<Manifest, RegistryError> {
        let manifest = package.manifest()?;
        let key = self.publisher_key(&manifest.publisher).ok_or_else(|| {
            RegistryError::UntrustedPublisher { publisher: manifest.publisher.clone() }
        })?;
        package.verify(&key).map_err(|error| RegistryError::Signature {
            publisher: manifest.publisher.clone(),
            error,
        })?;
        Ok(manifest)
    }

    // ---- versions ----

    /// Stores `component` as a blob and returns its hash. A blob already
    /// stored with the right bytes is reused; one whose bytes were damaged is
    /// replaced. Written atomically and durably.
    pub fn put_blob(&self, component: &[u8]) -> Result<ContentHash, RegistryError> {
        if component.len() > PACKAGE_COMPONENT_BYTES_MAX {
            return Err(RegistryError::ComponentTooLarge { size_bytes: component.len() as u64 });
        }
        let hash = signature::content_hash(component);
        if self.read_blob(&hash).is_ok() {
            return Ok(hash);
        }
        files::write_atomically(&self.blob_dir, &blob_file_name(&hash), component)?;
        Ok(hash)
    }

    /// The component bytes stored under `hash`, checked against the hash.
    pub fn read_blob(&self, hash: &ContentHash) -> Result<Vec<u8>, RegistryError> {
        let path = self.blob_path(hash);
        let bytes = match files::read_limited(&path, PACKAGE_COMPONENT_BYTES_MAX) {
            Ok(Limited::Bytes(bytes)) => bytes,
            Ok(Limited::TooLarge { size_bytes }) => {
                return Err(RegistryError::BlobTampered {
                    expected: hash.clone(),
                    actual: format!(
                        "a file of {size_bytes} bytes, larger than any component can be"
                    ),
                });
            }
            Err(failure) if failure.error.kind() == std::io::ErrorKind::NotFound => {
                return Err(RegistryError::BlobMissing {
                    hash: hash.clone(),
                    detail: String::new(),
                });
            }
            Err(failure) => return Err(failure.into()),
        };
        let actual = signature::content_hash(&bytes);
        if actual != *hash {
            return Err(RegistryError::BlobTampered {
                expected: hash.clone(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Installs a version whose blob is already stored (see
    /// [`Registry::put_blob`]). The same id and version with the same
    /// manifest and component is [`PutOutcome::AlreadyPresent`]; with other
    /// bytes it is [`RegistryError::VersionConflict`]. Refuses a record that
    /// disagrees with its manifest, a missing blob, and limits reached.
    pub fn put_version(&self, record: VersionRecord) -> Result<PutOutcome, RegistryError> {
        record.check_consistent()?;
        if record.size_bytes > PACKAGE_COMPONENT_BYTES_MAX as u64 {
            return Err(RegistryError::ComponentTooLarge { size_bytes: record.size_bytes });
        }
        self.check_blob_present(&record)?;
        let _writer = self.lock();
        let existing_entry = self.entry(&record.id)?;
        let mut entry = match existing_entry {
            Some(entry) => entry,
            None => {
                let plugins = self.storage.kv_scan_prefix(PLUGIN_PREFIX.as_bytes())?.len();
                if plugins >= PLUGINS_MAX {
                    return Err(RegistryError::LimitReached {
                        what: "installed plugins".to_owned(),
                        limit: PLUGINS_MAX,
                    });
                }
                PluginEntry::default()
            }
        };
        if entry.versions.contains(&record.version) {
            let stored = self.stored_record(&record.id, &record.version)?;
            if stored.content_hash == record.content_hash
                && stored.manifest_text == record.manifest_text
            {
                return Ok(PutOutcome::AlreadyPresent);
            }
            return Err(RegistryError::VersionConflict { id: record.id, version: record.version });
        }
        if entry.versions.len() >= VERSIONS_PER_PLUGIN_MAX {
            return Err(RegistryError::LimitReached {
                what: format!("installed versions of {}", record.id),
                limit: VERSIONS_PER_PLUGIN_MAX,
            });
        }
        // Record first, entry second: the entry listing the version is the
        // commit point (see the module documentation).
        self.put(&version_key(&record.id, &record.version), &record)?;
        let position = entry.versions.partition_point(|version| *version < record.version);
        entry.versions.insert(position, record.version.clone());
        self.put(&plugin_key(&record.id), &entry)?;
        Ok(PutOutcome::Created)
    }

    /// Stores the package's component and installs its version, timestamped
    /// now. Returns the installed record (for
    /// [`PutOutcome::AlreadyPresent`], the one stored earlier). Does not
    /// check the signature: see [`Registry::verify_package`].
    pub fn install_package(
        &self,
        package: &Package,
    ) -> Result<(VersionRecord, PutOutcome), RegistryError> {
        let record = VersionRecord::from_package(package, now_ms())?;
        self.put_blob(&package.component)?;
        let (id, version) = (record.id.clone(), record.version.clone());
        let outcome = self.put_version(record)?;
        let stored = self.stored_record(&id, &version)?;
        Ok((stored, outcome))
    }

    /// The record of `id` at `version`, if installed.
    pub fn version(
        &self,
        id: &PluginId,
        version: &Version,
    ) -> Result<Option<VersionRecord>, RegistryError> {
        match self.entry(id)? {
            Some(entry) if entry.versions.contains(version) => {
                Ok(Some(self.stored_record(id, version)?))
            }
            _ => Ok(None),
        }
    }

    /// Every installed version of `id`, ascending; empty for an unknown
    /// plugin.
    pub fn versions(&self, id: &PluginId) -> Result<Vec<VersionRecord>, RegistryError> {
        let Some(entry) = self.entry(id)? else { return Ok(Vec::new()) };
        entry.versions.iter().map(|version| self.stored_record(id, version)).collect()
    }

    /// Every installed plugin with its versions and rollout state, by id.
    pub fn plugins(&self) -> Result<Vec<PluginSummary>, RegistryError> {
        let mut summaries = Vec::new();
        for (key, value) in self.storage.kv_scan_prefix(PLUGIN_PREFIX.as_bytes())? {
            let key = String::from_utf8_lossy(&key).into_owned();
            let entry: PluginEntry = decode(&key, &value)?;
            let id = PluginId::new(&key[PLUGIN_PREFIX.len()..]).map_err(|error| {
                RegistryError::Corrupt { key: key.clone(), detail: error.to_string() }
            })?;
            summaries.push(PluginSummary {
                id,
                versions: entry.versions,
                activation: entry.activation,
            });
        }
        Ok(summaries)
    }

    /// Uninstalls `id` at `version`; refused while it is active or the
    /// shadow. It also leaves the rollback history. The blob stays (blobs
    /// are shared by content).
    pub fn remove_version(&self, id: &PluginId, version: &Version) -> Result<(), RegistryError> {
        let _writer = self.lock();
        let mut entry = self.installed_entry(id, version)?;
        if entry.activation.active.as_ref() == Some(version) {
            return Err(RegistryError::VersionInUse {
                id: id.clone(),
                version: version.clone(),
                role: "active",
                remedy: "activate another version or roll back",
            });
        }
        if entry.activation.shadow.as_ref().is_some_and(|shadow| shadow.version == *version) {
            return Err(RegistryError::VersionInUse {
                id: id.clone(),
                version: version.clone(),
                role: "shadow",
                remedy: "clear or change the shadow",
            });
        }
        entry.versions.retain(|installed| installed != version);
        entry.activation.history.retain(|previous| previous != version);
        // Unlist first, delete the record second (see the module
        // documentation); a plugin left with no versions disappears.
        if entry.versions.is_empty() {
            self.storage.kv_delete(plugin_key(id).as_bytes())?;
        } else {
            self.put(&plugin_key(id), &entry)?;
        }
        self.storage.kv_delete(version_key(id, version).as_bytes())?;
        Ok(())
    }

    // ---- activation ----

    /// The rollout state of `id`, or `None` for an unknown plugin.
    pub fn activation(&self, id: &PluginId) -> Result<Option<PluginActivation>, RegistryError> {
        Ok(self.entry(id)?.map(|entry| entry.activation))
    }

    /// Makes `version` the active version of `id`; returns the previously
    /// active one, which joins the rollback history. Activating the active
    /// version changes nothing. Activating the shadow version promotes it
    /// and clears the shadow.
    pub fn activate(
        &self,
        id: &PluginId,
        version: &Version,
    ) -> Result<Option<Version>, RegistryError> {
        let _writer = self.lock();
        let mut entry = self.installed_entry(id, version)?;
        let activation = &mut entry.activation;
        let previous = activation.active.clone();
        if previous.as_ref() == Some(version) {
            return Ok(previous);
        }
        if let Some(previous) = &previous {
            activation.history.push(previous.clone());
            if activation.history.len() > ACTIVATION_HISTORY_MAX {
                let excess = activation.history.len() - ACTIVATION_HISTORY_MAX;
                activation.history.drain(..excess);
            }
        }
        activation.active = Some(version.clone());
        if activation.shadow.as_ref().is_some_and(|shadow| shadow.version == *version) {
            activation.shadow = None;
        }
        self.put(&plugin_key(id), &entry)?;
        Ok(previous)
    }

    /// Reactivates the most recent previously active version that is still
    /// installed; returns (from, to). History entries newer than it (removed
    /// versions) are dropped; the version rolled back from does not join the
    /// history, so repeated rollbacks walk further back.
    pub fn rollback(&self, id: &PluginId) -> Result<(Version, Version), RegistryError> {
        let _writer = self.lock();
        let mut entry =
            self.entry(id)?.ok_or_else(|| RegistryError::UnknownPlugin { id: id.clone() })?;
        let nothing = || RegistryError::NothingToRollBackTo { id: id.clone() };
        let from = entry.activation.active.clone().ok_or_else(nothing)?;
        let position = entry
            .activation
            .history
            .iter()
            .rposition(|previous| *previous != from && entry.versions.contains(previous))
            .ok_or_else(nothing)?;
        let to = entry.activation.history[position].clone();
        entry.activation.history.truncate(position);
        entry.activation.active = Some(to.clone());
        if entry.activation.shadow.as_ref().is_some_and(|shadow| shadow.version == to) {
            entry.activation.shadow = None;
        }
        self.put(&plugin_key(id), &entry)?;
        Ok((from, to))
    }

    /// Sets or clears the shadow version of `id`. A shadow must be installed,
    /// differ from the active version (which must exist: a shadow is
    /// compared against it) and see 1 to [`SHADOW_SHARE_PERCENT_MAX`] percent
    /// of calls.
    pub fn set_shadow(
        &self,
        id: &PluginId,
        shadow: Option<ShadowSetting>,
    ) -> Result<(), RegistryError> {
        let _writer = self.lock();
        let mut entry = match &shadow {
            Some(setting) => self.installed_entry(id, &setting.version)?,
            None => {
                self.entry(id)?.ok_or_else(|| RegistryError::UnknownPlugin { id: id.clone() })?
            }
        };
        if let Some(setting) = &shadow {
            let invalid = |reason: String| RegistryError::InvalidShadow { id: id.clone(), reason };
            if setting.share_percent == 0 || setting.share_percent > SHADOW_SHARE_PERCENT_MAX {
                return Err(invalid(format!(
                    "share_percent must be 1 to {SHADOW_SHARE_PERCENT_MAX}, got {}",
                    setting.share_percent
                )));
            }
            match &entry.activation.active {
                None => {
                    return Err(invalid(
                        "it has no active version to compare the shadow with; activate one first"
                            .to_owned(),
                    ));
                }
                Some(active) if *active == setting.version => {
                    return Err(invalid(format!("{active} is already the active version")));
                }
                Some(_) => {}
            }
        }
        entry.activation.shadow = shadow;
        self.put(&plugin_key(id), &entry)?;
        Ok(())
    }

    // ---- internals ----

    /// Takes the writer lock; a panic elsewhere leaves no half-written state
    /// in memory (the store is the state), so poisoning is ignored.
    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the publisher mirror.
    fn read_publishers(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<PublisherId, TrustedPublisher>> {
        self.publishers.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file of the blob `hash`.
    fn blob_path(&self, hash: &ContentHash) -> PathBuf {
        self.blob_dir.join(blob_file_name(hash))
    }

    /// Refuses a record whose blob is absent or of another size; the bytes
    /// themselves are verified whenever the blob is read.
    fn check_blob_present(&self, record: &VersionRecord) -> Result<(), RegistryError> {
        let path = self.blob_path(&record.content_hash);
        match fs::metadata(&path) {
            Ok(metadata) if metadata.len() == record.size_bytes => Ok(()),
            Ok(metadata) => Err(RegistryError::BlobMissing {
                hash: record.content_hash.clone(),
                detail: format!(
                    " with the record's size: the file holds {} bytes, the record says {}",
                    metadata.len(),
                    record.size_bytes
                ),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Err(RegistryError::BlobMissing {
                    hash: record.content_hash.clone(),
                    detail: "; store it with put_blob before putting the version".to_owned(),
                })
            }
            Err(error) => {
                Err(RegistryError::Io { action: "inspecting", path, message: error.to_string() })
            }
        }
    }

    /// The stored entry of `id`.
    fn entry(&self, id: &PluginId) -> Result<Option<PluginEntry>, RegistryError> {
        self.get(&plugin_key(id))
    }

    /// The entry of `id`, refusing an unknown plugin or a version it does
    /// not list.
    fn installed_entry(
        &self,
        id: &PluginId,
        version: &Version,
    ) -> Result<PluginEntry, RegistryError> {
        let entry =
            self.entry(id)?.ok_or_else(|| RegistryError::UnknownPlugin { id: id.clone() })?;
        if !entry.versions.contains(version) {
            return Err(RegistryError::NotInstalled { id: id.clone(), version: version.clone() });
        }
        Ok(entry)
    }

    /// The record of a version its entry lists; its absence is corruption.
    fn stored_record(
        &self,
        id: &PluginId,
        version: &Version,
    ) -> Result<VersionRecord, RegistryError> {
        let key = version_key(id, version);
        self.get(&key)?.ok_or_else(|| RegistryError::Corrupt {
            key,
            detail: "the plugin entry lists this version but its record is missing".to_owned(),
        })
    }

    /// Reads and decodes one value.
    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, RegistryError> {
        match self.storage.kv_get(key.as_bytes())? {
            None => Ok(None),
            Some(value) => decode(key, &value).map(Some),
        }
    }

    /// Encodes and writes one value durably.
    fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), RegistryError> {
        let bytes = serde_json::to_vec(value).map_err(|error| RegistryError::Corrupt {
            key: key.to_owned(),
            detail: format!("cannot encode: {error}"),
        })?;
        self.storage.kv_put(key.as_bytes(), &bytes)?;
        Ok(())
    }
}

/// Decodes a stored JSON value.
fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(value)
        .map_err(|error| RegistryError::Corrupt { key: key.to_owned(), detail: error.to_string() })
}

/// Key of a trusted publisher.
fn publisher_key(publisher: &PublisherId) -> String {
    format!("{PUBLISHER_PREFIX}{publisher}")
}

/// Key of a plugin entry.
fn plugin_key(id: &PluginId) -> String {
    format!("{PLUGIN_PREFIX}{id}")
}

/// Key of a version record. Ids cannot contain `/`, so one plugin's
/// versions never share a prefix with another's.
fn version_key(id: &PluginId, version: &Version) -> String {
    format!("{VERSION_PREFIX}{id}/{version}")
}

/// File name of a blob.
fn blob_file_name(hash: &ContentHash) -> String {
    format!("{hash}.wasm")
}

/// Milliseconds since the Unix epoch; 0 for a clock set before it.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}
