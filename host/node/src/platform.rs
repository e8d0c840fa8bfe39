//! The plugin platform of a node: installing signed packages after every
//! check, the durable registry of versions, the compiled-artifact cache,
//! the operator's version controls (activate, roll back, shadow, remove)
//! and the merchant's enabling of a plugin for a store.
//!
//! The registry (in the node's store) is the truth; the live catalogue
//! ([`PluginSet`]) follows it. Every change is written to the registry
//! first and applied to the catalogue second, under one lock, so a failed
//! write changes nothing and a restart rebuilds the same catalogue.
//!
//! An install runs every check before anything is stored: the manifest,
//! the publisher's trust and signature, the capabilities the node allows,
//! the component's size, shape and compilation (within the runtime's
//! budget, on its compile thread), its imports against the grants, its
//! world, and its limits. Only then are its bytes and record written. The
//! first version of a new plugin becomes its active version.
//!
//! A server builds it right after opening the node, before it serves:
//!
//! ```text
//! let plugins = PluginSet::none();            // empty; the platform fills it
//! let node = Node::open(config, plugins.clone())?;
//! let (platform, report) = Platform::open(node.storage().clone(), &data_dir, plugins)?;
//! ```
//!
//! The bundled first-party plugins are registered (unsigned, publisher
//! `bazaar`) and activated on first start, and every installed version is
//! loaded, so there is no need for [`PluginSet::first_party_wasm`] here.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bazaar_kernel::PluginSettings;
use bazaar_kernel::model::{Capability, PluginId, PluginKind, PluginRef, StoreId};
use bazaar_registry::{
    ConfigErrors, Manifest, ManifestError, Package, PutOutcome, Registry, RegistryError,
    ShadowSetting, VersionRecord,
};
use bazaar_runtime::{ArtifactCache, CacheOutcome, LoadError, LoadedPlugin, PluginLimits, Runtime};
use bazaar_store::Storage;
use semver::Version;
use serde::Serialize;

use crate::breaker::BreakerState;
use crate::plugins::{CatalogError, Implementation, PluginSet, ShadowReport};

/// Highest priority number a store may give a plugin: far more than the
/// plugins one store can configure, small enough to print.
pub const PRIORITY_MAX: u32 = 1_000_000;

/// Why a platform request was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The manifest is invalid.
    #[error("invalid manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// The package is not signed.
    #[error("the package is unsigned: every plugin must carry its publisher's ed25519 signature")]
    Unsigned,
    /// The signature does not verify.
    #[error("invalid signature: {0}")]
    Signature(String),
    /// The publisher is not trusted.
    #[error("publisher {0} is not trusted on this node; an operator must trust its key first")]
    UntrustedPublisher(String),
    /// The plugin asks for a capability the node does not grant.
    #[error("the plugin asks for the {0} capability, which this node does not grant to plugins")]
    CapabilityNotAllowed(Capability),
    /// The component was refused.
    #[error("{0}")]
    Component(LoadError),
    /// The compiler is busy with another upload.
    #[error("the plugin compiler is busy with another upload; retry shortly")]
    CompilerBusy,
    /// The same version exists with other bytes, or the id has another kind.
    #[error("{0}")]
    Conflict(String),
    /// No such plugin or version.
    #[error("{0}")]
    NotFound(String),
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// A store's configuration does not match the plugin's schema.
    #[error("{0}")]
    Config(ConfigErrors),
    /// The merchant did not consent to every capability.
    #[error("consent is missing for: {0}")]
    ConsentMissing(String),
    /// The registry's storage failed.
    #[error("plugin registry failure: {0}")]
    Storage(String),
}

impl PlatformError {
    /// The HTTP status that fits.
    pub fn status(&self) -> u16 {
        match self {
            PlatformError::Component(LoadError::TooLarge { .. }) => 413,
            PlatformError::Manifest(_)
            | PlatformError::Unsigned
            | PlatformError::Signature(_)
            | PlatformError::Component(_)
            | PlatformError::Invalid(_)
            | PlatformError::Config(_)
            | PlatformError::ConsentMissing(_) => 422,
            PlatformError::UntrustedPublisher(_) | PlatformError::CapabilityNotAllowed(_) => 403,
            PlatformError::CompilerBusy | PlatformError::Storage(_) => 503,
            PlatformError::Conflict(_) => 409,
            PlatformError::NotFound(_) => 404,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PlatformError::Manifest(_) => "manifest_invalid",
            PlatformError::Unsigned => "signature_missing",
            PlatformError::Signature(_) => "signature_invalid",
            PlatformError::UntrustedPublisher(_) => "publisher_not_trusted",
            PlatformError::CapabilityNotAllowed(_) => "capability_not_allowed",
            PlatformError::Component(error) => match error {
                LoadError::TooLarge { .. } => "component_too_large",
                LoadError::NotWasm => "not_wasm",
                LoadError::CoreModule => "core_module",
                LoadError::WrongWorld { .. } => "wrong_world",
                LoadError::NotGranted { .. } => "import_not_granted",
                LoadError::UnknownImport { .. } | LoadError::UnsatisfiedImport(_) => {
                    "import_unknown"
                }
                LoadError::CompileBudgetExceeded { .. } => "compile_budget_exceeded",
                LoadError::LimitAboveNode { .. } | LoadError::LimitBelowMinimum { .. } => {
                    "limit_invalid"
                }
                _ => "component_invalid",
            },
            PlatformError::CompilerBusy => "compiler_busy",
            PlatformError::Conflict(_) => "plugin_conflict",
            PlatformError::NotFound(_) => "plugin_not_found",
            PlatformError::Invalid(_) => "plugin_request_invalid",
            PlatformError::Config(_) => "plugin_config_invalid",
            PlatformError::ConsentMissing(_) => "consent_missing",
            PlatformError::Storage(_) => "registry_unavailable",
        }
    }
}

impl From<LoadError> for PlatformError {
    fn from(error: LoadError) -> Self {
        match error {
            LoadError::CompilerBusy => PlatformError::CompilerBusy,
            error => PlatformError::Component(error),
        }
    }
}

impl From<RegistryError> for PlatformError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::Manifest(error) => PlatformError::Manifest(error),
            RegistryError::UntrustedPublisher { publisher } => {
                PlatformError::UntrustedPublisher(publisher.to_string())
            }
            RegistryError::Signature {
                error: bazaar_registry::SignatureError::Unsigned, ..
            } => PlatformError::Unsigned,
            RegistryError::Signature { publisher, error } => {
                PlatformError::Signature(format!("publisher {publisher}: {error}"))
            }
            error @ RegistryError::VersionConflict { .. } => {
                PlatformError::Conflict(error.to_string())
            }
            error @ (RegistryError::UnknownPlugin { .. } | RegistryError::NotInstalled { .. }) => {
                PlatformError::NotFound(error.to_string())
            }
            error @ (RegistryError::VersionInUse { .. }
            | RegistryError::NothingToRollBackTo { .. }
            | RegistryError::InvalidShadow { .. }
            | RegistryError::LimitReached { .. }) => PlatformError::Invalid(error.to_string()),
            error @ RegistryError::ComponentTooLarge { .. } => {
                PlatformError::Invalid(error.to_string())
            }
            error => PlatformError::Storage(error.to_string()),
        }
    }
}

impl From<CatalogError> for PlatformError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::UnknownPlugin(_) | CatalogError::UnknownVersion { .. } => {
                PlatformError::NotFound(error.to_string())
            }
            CatalogError::KindMismatch { .. } => PlatformError::Conflict(error.to_string()),
            _ => PlatformError::Invalid(error.to_string()),
        }
    }
}

/// What an install did.
#[derive(Clone, Debug, Serialize)]
pub struct Installed {
    /// The version, as listed in the marketplace.
    pub version: VersionView,
    /// False when the identical version was already installed.
    pub created: bool,
    /// True when it became the active version (the plugin's first).
    pub activated: bool,
    /// Whether its compiled artifact came from the cache.
    pub compiled_from_cache: bool,
    /// Time spent on the install, milliseconds.
    pub elapsed_ms: u64,
}

/// A version change.
#[derive(Clone, Debug, Serialize)]
pub struct Swap {
    /// The plugin.
    pub plugin: String,
    /// The version it replaced, if any.
    pub from: Option<String>,
    /// The version now active.
    pub to: String,
    /// Time from the request to the new version being the one every new
    /// call runs, microseconds.
    pub elapsed_us: u64,
}

/// A capability as a merchant reads it.
#[derive(Clone, Debug, Serialize)]
pub struct CapabilityView {
    /// Its name.
    pub name: &'static str,
    /// What it lets the plugin do.
    pub plain_words: &'static str,
}

/// One installed version.
#[derive(Clone, Debug, Serialize)]
pub struct VersionView {
    /// The semantic version.
    pub version: String,
    /// SHA-256 of the component, hex.
    pub content_hash: String,
    /// Size of the component.
    pub size_bytes: u64,
    /// When it was installed, milliseconds since the epoch.
    pub installed_at_ms: u64,
    /// Whether it carries a signature (bundled plugins do not).
    pub signed: bool,
    /// "active", "shadow" or "available".
    pub status: &'static str,
}

/// A plugin as the marketplace lists it.
#[derive(Clone, Debug, Serialize)]
pub struct PluginListing {
    /// Its id.
    pub id: String,
    /// Display name (of the newest version).
    pub name: String,
    /// Its publisher.
    pub publisher: String,
    /// What it does.
    pub description: String,
    /// Its extension point.
    pub kind: PluginKind,
    /// What it does when it fails.
    pub failure_policy: String,
    /// The capabilities it asks for, in plain words.
    pub capabilities: Vec<CapabilityView>,
    /// The JSON Schema of its per-store configuration.
    pub config_schema: serde_json::Value,
    /// Installed versions, ascending.
    pub versions: Vec<VersionView>,
    /// The active version.
    pub active: Option<String>,
    /// The shadow version and its share of calls.
    pub shadow: Option<ShadowSetting>,
}

/// A trusted publisher.
#[derive(Clone, Debug, Serialize)]
pub struct PublisherView {
    /// Its id.
    pub publisher: String,
    /// Its public key, hex.
    pub public_key: String,
    /// When it was trusted, milliseconds since the epoch.
    pub trusted_at_ms: u64,
}

/// A circuit breaker that is not plainly closed.
#[derive(Clone, Debug, Serialize)]
pub struct BreakerView {
    /// The store.
    pub store: String,
    /// The plugin.
    pub plugin: String,
    /// "closed" (with recent failures), "open" or "half-open".
    pub state: &'static str,
    /// Failures in a row, when closed.
    pub consecutive_failures: u32,
    /// When an open breaker lets a probe through, ms since the epoch.
    pub open_until_ms: Option<u64>,
    /// The backoff that applies.
    pub backoff_ms: Option<u64>,
}

/// One version's call counters.
#[derive(Clone, Debug, Serialize)]
pub struct CounterView {
    /// The plugin.
    pub plugin: String,
    /// The version.
    pub version: String,
    /// Calls made.
    pub calls: u64,
    /// Calls that returned an error of any kind.
    pub failures: u64,
    /// Calls whose instance was thrown away (traps, deadlines, limits).
    pub traps: u64,
    /// Instances created.
    pub instantiations: u64,
    /// Call durations: counts per bucket of
    /// [`bazaar_runtime::CALL_LATENCY_BUCKETS_US`], the last for longer.
    pub latency_counts: Vec<u64>,
    /// Sum of call durations, microseconds.
    pub latency_sum_us: u64,
}

/// What a merchant asks for when enabling a plugin for a store.
#[derive(Clone, Debug)]
pub struct EnableRequest {
    /// The configuration, validated against the plugin's schema.
    pub config: serde_json::Value,
    /// The capabilities the merchant consents to.
    pub consent: Vec<Capability>,
    /// A version to pin, or `None` to follow the active version.
    pub version: Option<String>,
    /// Its place among the store's pricing plugins (lower runs first).
    pub priority: u32,
    /// Whether its discount excludes the store's later pricing plugins.
    pub exclusive: bool,
}

/// What opening the platform found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StartupReport {
    /// Versions loaded into the catalogue.
    pub loaded: usize,
    /// Of those, compiled artifacts taken from the cache.
    pub from_cache: usize,
    /// Versions that could not be loaded, with the reason; the node runs
    /// without them.
    pub failed: Vec<String>,
    /// Time to open, milliseconds.
    pub elapsed_ms: u64,
}

/// The node's plugin platform. Cheap to clone.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    /// The durable record.
    registry: Registry,
    /// The live catalogue the shards run.
    plugins: PluginSet,
    /// The runtime that compiles and links.
    runtime: Runtime,
    /// Compiled artifacts by content hash and engine settings.
    cache: ArtifactCache,
    /// Capabilities the node lets plugins have.
    capabilities_allowed: BTreeSet<Capability>,
    /// Serialises changes so the registry and the catalogue agree.
    changes: Mutex<()>,
}

impl Platform {
    /// Opens the registry in `storage` (component blobs and compiled
    /// artifacts under `data_dir/plugins`), registers the bundled
    /// first-party plugins on first start, and loads every installed
    /// version into `plugins`, compiled artifacts from the cache.
    pub fn open(
        storage: Arc<dyn Storage>,
        data_dir: &Path,
        plugins: PluginSet,
    ) -> anyhow::Result<(Platform, StartupReport)> {
        let started = Instant::now();
        let registry = Registry::open(storage, data_dir.join("plugins").join("components"))?;
        let cache = ArtifactCache::open(data_dir.join("plugins").join("compiled"))?;
        let runtime = plugins.runtime()?;
        let platform = Platform {
            inner: Arc::new(Inner {
                registry,
                plugins,
                runtime,
                cache,
                capabilities_allowed: Capability::ALL.into_iter().collect(),
                changes: Mutex::new(()),
            }),
        };
        platform.register_bundled()?;
        let mut report = platform.load_all()?;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok((platform, report))
    }

    /// The live catalogue.
    pub fn plugins(&self) -> &PluginSet {
        &self.inner.plugins
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the first-party plugins built into this binary, activating
    /// each one that has no active version yet.
    fn register_bundled(&self) -> Result<(), PlatformError> {
        let registry = &self.inner.registry;
        for artifact in bazaar_artifacts::FIRST_PARTY {
            let record =
                VersionRecord::new(artifact.manifest.to_string(), artifact.wasm, None, now_ms())?;
            if registry.version(&record.id, &record.version)?.is_none() {
                registry.put_blob(artifact.wasm)?;
                registry.put_version(record.clone())?;
            }
            let active = registry.activation(&record.id)?.and_then(|a| a.active);
            if active.is_none() {
                registry.activate(&record.id, &record.version)?;
            }
        }
        Ok(())
    }

    /// Loads every installed version into the catalogue.
    fn load_all(&self) -> Result<StartupReport, PlatformError> {
        let registry = &self.inner.registry;
        let mut report = StartupReport::default();
        for summary in registry.plugins()? {
            let active = summary.activation.active.as_ref();
            for version in &summary.versions {
                let loaded = registry
                    .version(&summary.id, version)
                    .map_err(PlatformError::from)
                    .and_then(|record| {
                        let record = record.ok_or_else(|| {
                            PlatformError::NotFound(format!("{} {version}", summary.id))
                        })?;
                        self.load_record(&record, active == Some(version))
                    });
                match loaded {
                    Ok(outcome) => {
                        report.loaded += 1;
                        report.from_cache += usize::from(outcome == CacheOutcome::Hit);
                    }
                    Err(error) => {
                        tracing::error!(plugin = %summary.id, %version, %error, "plugin version not loaded");
                        report.failed.push(format!("{} {version}: {error}", summary.id));
                    }
                }
            }
            if let Some(shadow) = &summary.activation.shadow {
                let version = shadow.version.to_string();
                if let Err(error) = self
                    .inner
                    .plugins
                    .set_shadow(&summary.id, Some((&version, shadow.share_percent)))
                {
                    report.failed.push(format!("{} shadow {version}: {error}", summary.id));
                }
            }
        }
        Ok(report)
    }

    /// Compiles (or takes from the cache) and links one recorded version,
    /// and adds it to the catalogue.
    fn load_record(
        &self,
        record: &VersionRecord,
        activate: bool,
    ) -> Result<CacheOutcome, PlatformError> {
        let manifest = record.manifest()?;
        let wasm = self.inner.registry.read_blob(&record.content_hash)?;
        let (compiled, outcome) = self.inner.runtime.compile_cached(
            &wasm,
            record.content_hash.as_str(),
            &self.inner.cache,
        )?;
        let plugin = PluginRef { id: record.id.clone(), version: record.version.to_string() };
        let loaded = self.inner.runtime.load(plugin, manifest.kind, &compiled, limits(manifest))?;
        self.inner.plugins.install(
            implementation(loaded),
            Some(manifest.failure_policy),
            activate,
        )?;
        Ok(outcome)
    }

    /// Installs a package after every check; see the module documentation.
    /// Blocking (it may compile for seconds): call it off the async reactor.
    pub fn install(&self, package: Package) -> Result<Installed, PlatformError> {
        let started = Instant::now();
        let registry = &self.inner.registry;
        let runtime = &self.inner.runtime;
        let size_bytes_max = runtime.limits().component_bytes_max;
        if package.component.len() > size_bytes_max {
            return Err(PlatformError::Component(LoadError::TooLarge {
                size_bytes: package.component.len(),
                limit_bytes: size_bytes_max,
            }));
        }
        let manifest = registry.verify_package(&package)?;
        if let Some(capability) = manifest
            .capabilities
            .iter()
            .find(|capability| !self.inner.capabilities_allowed.contains(capability))
        {
            return Err(PlatformError::CapabilityNotAllowed(*capability));
        }
        let hash = package.content_hash();
        if let Some(existing) = registry.version(&manifest.id, &manifest.version)? {
            if existing.content_hash == hash && existing.manifest_text == package.manifest_text {
                return Ok(Installed {
                    version: self.version_view(&existing),
                    created: false,
                    activated: false,
                    compiled_from_cache: true,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                });
            }
            return Err(RegistryError::VersionConflict {
                id: manifest.id.clone(),
                version: manifest.version.clone(),
            }
            .into());
        }
        if let Some(other) = registry.versions(&manifest.id)?.first()
            && other.kind != manifest.kind
        {
            return Err(PlatformError::Conflict(format!(
                "{} is installed as a {} plugin; this package is a {} plugin",
                manifest.id, other.kind, manifest.kind
            )));
        }
        let (compiled, outcome) =
            runtime.compile_cached(&package.component, hash.as_str(), &self.inner.cache)?;
        runtime.check(&compiled, manifest.kind, &manifest.capabilities)?;
        let plugin = PluginRef { id: manifest.id.clone(), version: manifest.version.to_string() };
        let loaded = runtime.load(plugin, manifest.kind, &compiled, limits(&manifest))?;

        let _changes = self.lock();
        let (record, put) = registry.install_package(&package)?;
        let activated = registry.activation(&manifest.id)?.and_then(|a| a.active).is_none();
        if activated {
            registry.activate(&manifest.id, &manifest.version)?;
        }
        self.inner.plugins.install(
            implementation(loaded),
            Some(manifest.failure_policy),
            activated,
        )?;
        Ok(Installed {
            version: self.version_view(&record),
            created: put == PutOutcome::Created,
            activated,
            compiled_from_cache: outcome == CacheOutcome::Hit,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Makes `version` active: every call that starts from now on runs it;
    /// calls already running finish on the version they started with.
    pub fn activate(&self, id: &PluginId, version: &str) -> Result<Swap, PlatformError> {
        let started = Instant::now();
        let parsed = parse_version(version)?;
        let _changes = self.lock();
        let from = self.inner.registry.activate(id, &parsed)?;
        self.inner.plugins.activate(id, version)?;
        Ok(Swap {
            plugin: id.to_string(),
            from: from.map(|v| v.to_string()),
            to: version.to_string(),
            elapsed_us: started.elapsed().as_micros() as u64,
        })
    }

    /// Reactivates the version that was active before the current one.
    pub fn rollback(&self, id: &PluginId) -> Result<Swap, PlatformError> {
        let started = Instant::now();
        let _changes = self.lock();
        let (from, to) = self.inner.registry.rollback(id)?;
        self.inner.plugins.activate(id, &to.to_string())?;
        Ok(Swap {
            plugin: id.to_string(),
            from: Some(from.to_string()),
            to: to.to_string(),
            elapsed_us: started.elapsed().as_micros() as u64,
        })
    }

    /// Runs `version` beside the active version on `share_percent` of the
    /// calls of stores that follow the plugin, comparing outputs.
    pub fn start_shadow(
        &self,
        id: &PluginId,
        version: &str,
        share_percent: u8,
    ) -> Result<(), PlatformError> {
        let setting = ShadowSetting { version: parse_version(version)?, share_percent };
        let _changes = self.lock();
        self.inner.registry.set_shadow(id, Some(setting))?;
        self.inner.plugins.set_shadow(id, Some((version, share_percent)))?;
        Ok(())
    }

    /// Ends a shadow run, discarding its version's trial.
    pub fn stop_shadow(&self, id: &PluginId) -> Result<(), PlatformError> {
        let _changes = self.lock();
        self.inner.registry.set_shadow(id, None)?;
        self.inner.plugins.set_shadow(id, None)?;
        Ok(())
    }

    /// Makes the shadow version the active one.
    pub fn promote_shadow(&self, id: &PluginId) -> Result<Swap, PlatformError> {
        let report = self
            .shadow_report(id)
            .ok_or_else(|| PlatformError::Invalid(format!("{id} has no shadow version running")))?;
        self.activate(id, &report.version)
    }

    /// The shadow run of a plugin and what it found so far.
    pub fn shadow_report(&self, id: &PluginId) -> Option<ShadowReport> {
        self.inner.plugins.shadow_report(id)
    }

    /// Removes a version that is neither active nor the shadow.
    pub fn remove_version(&self, id: &PluginId, version: &str) -> Result<(), PlatformError> {
        let parsed = parse_version(version)?;
        let _changes = self.lock();
        self.inner.registry.remove_version(id, &parsed)?;
        self.inner.plugins.remove_version(id, version)?;
        Ok(())
    }

    /// Trusts `key_hex` to sign `publisher`'s packages.
    pub fn trust_publisher(&self, publisher: &str, key_hex: &str) -> Result<(), PlatformError> {
        let publisher = bazaar_registry::PublisherId::new(publisher)
            .map_err(|error| PlatformError::Invalid(format!("publisher id: {error}")))?;
        let key = bazaar_registry::PublisherKey::parse(key_hex)
            .map_err(|error| PlatformError::Invalid(format!("public key: {error}")))?;
        self.inner.registry.trust(publisher, key)?;
        Ok(())
    }

    /// Stops trusting a publisher; its installed versions stay.
    pub fn distrust_publisher(&self, publisher: &str) -> Result<(), PlatformError> {
        let id = bazaar_registry::PublisherId::new(publisher)
            .map_err(|error| PlatformError::Invalid(format!("publisher id: {error}")))?;
        if !self.inner.registry.distrust(&id)? {
            return Err(PlatformError::NotFound(format!("publisher {publisher} is not trusted")));
        }
        Ok(())
    }

    /// The trusted publishers.
    pub fn publishers(&self) -> Vec<PublisherView> {
        self.inner
            .registry
            .publishers()
            .into_iter()
            .map(|trusted| PublisherView {
                publisher: trusted.publisher.to_string(),
                public_key: trusted.key.to_string(),
                trusted_at_ms: trusted.trusted_at_ms,
            })
            .collect()
    }

    /// The marketplace: every installed plugin.
    pub fn listings(&self) -> Result<Vec<PluginListing>, PlatformError> {
        let summaries = self.inner.registry.plugins()?;
        summaries.iter().map(|summary| self.listing_of(&summary.id)).collect()
    }

    /// One plugin's listing, or `None` when it is not installed.
    pub fn listing(&self, id: &PluginId) -> Result<Option<PluginListing>, PlatformError> {
        match self.inner.registry.activation(id)? {
            None => Ok(None),
            Some(_) => self.listing_of(id).map(Some),
        }
    }

    fn listing_of(&self, id: &PluginId) -> Result<PluginListing, PlatformError> {
        let registry = &self.inner.registry;
        let records = registry.versions(id)?;
        let activation = registry.activation(id)?.unwrap_or_default();
        let newest = records
            .last()
            .ok_or_else(|| PlatformError::NotFound(format!("no plugin {id} is installed")))?;
        let manifest = newest.manifest()?;
        Ok(PluginListing {
            id: id.to_string(),
            name: manifest.name.clone(),
            publisher: manifest.publisher.to_string(),
            description: manifest.description.clone(),
            kind: manifest.kind,
            failure_policy: manifest.failure_policy.to_string(),
            capabilities: capability_views(&manifest.capabilities),
            config_schema: manifest.config_schema.to_json(),
            versions: records.iter().map(|record| self.version_view(record)).collect(),
            active: activation.active.as_ref().map(Version::to_string),
            shadow: activation.shadow.clone(),
        })
    }

    fn version_view(&self, record: &VersionRecord) -> VersionView {
        let activation =
            self.inner.registry.activation(&record.id).ok().flatten().unwrap_or_default();
        let status = if activation.active.as_ref() == Some(&record.version) {
            "active"
        } else if activation.shadow.as_ref().is_some_and(|s| s.version == record.version) {
            "shadow"
        } else {
            "available"
        };
        VersionView {
            version: record.version.to_string(),
            content_hash: record.content_hash.to_string(),
            size_bytes: record.size_bytes,
            installed_at_ms: record.installed_at_ms,
            signed: record.signature.is_some(),
            status,
        }
    }

    /// Checks a merchant's request to enable `id` for a store: the version
    /// exists, the configuration matches the version's schema, and the
    /// consent covers every capability it asks for. Returns the settings
    /// to journal with the configuration.
    pub fn check_enable(
        &self,
        id: &PluginId,
        request: &EnableRequest,
    ) -> Result<PluginSettings, PlatformError> {
        let registry = &self.inner.registry;
        let activation = registry
            .activation(id)?
            .ok_or_else(|| PlatformError::NotFound(format!("no plugin {id} is installed")))?;
        let version = match &request.version {
            Some(pin) => parse_version(pin)?,
            None => activation.active.clone().ok_or_else(|| {
                PlatformError::Invalid(format!("{id} has no active version to follow; pin one"))
            })?,
        };
        let record = registry.version(id, &version)?.ok_or_else(|| {
            PlatformError::NotFound(format!("{id} has no version {version} installed"))
        })?;
        let manifest = record.manifest()?;
        if !request.config.is_object() {
            return Err(PlatformError::Invalid(
                "the configuration must be a JSON object".to_string(),
            ));
        }
        manifest.config_schema.validate(&request.config).map_err(PlatformError::Config)?;
        let consented: BTreeSet<Capability> = request.consent.iter().copied().collect();
        let missing: Vec<String> = manifest
            .capabilities
            .difference(&consented)
            .map(|capability| format!("{capability} ({})", capability.plain_words()))
            .collect();
        if !missing.is_empty() {
            return Err(PlatformError::ConsentMissing(missing.join("; ")));
        }
        if request.priority > PRIORITY_MAX {
            return Err(PlatformError::Invalid(format!(
                "priority {} is above the maximum of {PRIORITY_MAX}",
                request.priority
            )));
        }
        if request.exclusive && manifest.kind != PluginKind::Pricing {
            return Err(PlatformError::Invalid(
                "only pricing plugins can be exclusive".to_string(),
            ));
        }
        Ok(PluginSettings {
            version_pin: request.version.as_ref().map(|_| version.to_string()),
            priority: request.priority,
            exclusive: request.exclusive,
            consented: consented.into_iter().collect(),
        })
    }

    /// Every circuit breaker that is not plainly closed, optionally only
    /// those of `stores`.
    pub fn breakers(&self, stores: Option<&[StoreId]>) -> Vec<BreakerView> {
        self.inner
            .plugins
            .breakers()
            .into_iter()
            .filter(|((store, _), _)| stores.is_none_or(|stores| stores.contains(store)))
            .map(|((store, plugin), state)| {
                let (name, consecutive_failures, open_until_ms, backoff_ms) = match state {
                    BreakerState::Closed { consecutive_failures } => {
                        ("closed", consecutive_failures, None, None)
                    }
                    BreakerState::Open { until_ms, backoff_ms } => {
                        ("open", 0, Some(until_ms), Some(backoff_ms))
                    }
                    BreakerState::HalfOpen { backoff_ms } => {
                        ("half-open", 0, None, Some(backoff_ms))
                    }
                };
                BreakerView {
                    store: store.to_string(),
                    plugin: plugin.to_string(),
                    state: name,
                    consecutive_failures,
                    open_until_ms,
                    backoff_ms,
                }
            })
            .collect()
    }

    /// The call counters of every loaded version of `id`, or of all.
    pub fn call_counters(&self, id: Option<&PluginId>) -> Vec<CounterView> {
        self.inner
            .plugins
            .call_counters()
            .into_iter()
            .filter(|(plugin, _)| id.is_none_or(|id| plugin.id == *id))
            .map(|(plugin, counters)| CounterView {
                plugin: plugin.id.to_string(),
                version: plugin.version,
                calls: counters.calls,
                failures: counters.failures,
                traps: counters.traps,
                instantiations: counters.instantiations,
                latency_counts: counters.latency.counts.to_vec(),
                latency_sum_us: counters.latency.sum_us,
            })
            .collect()
    }
}

fn parse_version(version: &str) -> Result<Version, PlatformError> {
    Version::parse(version)
        .map_err(|error| PlatformError::Invalid(format!("version {version:?}: {error}")))
}

fn limits(manifest: &Manifest) -> PluginLimits {
    PluginLimits {
        call_deadline_ms: manifest.limits.deadline_ms,
        memory_bytes_max: manifest.limits.memory_bytes_max,
        fuel_per_call: manifest.limits.fuel_per_call,
        concurrency_max: manifest.limits.concurrency_max,
    }
}

fn implementation(loaded: LoadedPlugin) -> Implementation {
    match loaded {
        LoadedPlugin::Pricing(plugin) => Implementation::Pricing(plugin),
        LoadedPlugin::Logistics(plugin) => Implementation::Logistics(plugin),
        LoadedPlugin::Risk(plugin) => Implementation::Risk(plugin),
        LoadedPlugin::Analytics(plugin) => Implementation::Analytics(plugin),
        LoadedPlugin::Driver(plugin) => Implementation::Driver(plugin),
    }
}

fn capability_views(capabilities: &BTreeSet<Capability>) -> Vec<CapabilityView> {
    capabilities
        .iter()
        .map(|capability| CapabilityView {
            name: capability.name(),
            plain_words: capability.plain_words(),
        })
        .collect()
}

fn now_ms() -> u64 {
    crate::node::wall_clock_ms()
}
