//! The plugins a node runs: every installed version of every plugin, which
//! version is active, which runs as a shadow beside it, and each plugin's
//! failure policy.
//!
//! The catalogue is one immutable [`CatalogView`] behind a lock, replaced
//! whole on every change and stamped with a generation number. Shard
//! writers check the generation once per batch and pick up the new view
//! between batches, so a plugin call always finishes on the version it
//! started with, and a swap never waits for calls to drain. A version that
//! no view references any more is dropped with its last instance.
//!
//! Failure policies: pricing fails open by default (the plugin contributes
//! nothing and the order is flagged), logistics falls back to the built-in
//! router, risk fails closed. A manifest may choose the other policy its
//! kind allows (see [`FailurePolicy`]). A plugin that keeps failing for a
//! store is skipped by its circuit breaker (see `breaker`) under the same
//! policy.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use anyhow::Context as _;
use bazaar_artifacts::Artifact;
use bazaar_kernel::model::{Adjustment, PluginId, PluginKind, PluginRef, ShipmentPlan, StoreId};
use bazaar_runtime::{
    AnalyticsPlugin, CallCounters, DriverPlugin, LogisticsPlugin, PricingPlugin, RiskPlugin,
    Runtime, RuntimeLimits,
};

pub use bazaar_registry::FailurePolicy;

use crate::breaker::{BreakerState, PublishedBreakers};
use crate::native::{self, MakeNativeLogistics, MakeNativePricing};
use crate::pipeline::{RiskAnswer, ShardPlugins};

pub use crate::pipeline::{PluginOutputs, Refusal, route_request};

/// One loaded version of a plugin.
#[derive(Clone)]
pub enum Implementation {
    /// A pricing component.
    Pricing(PricingPlugin),
    /// A logistics component.
    Logistics(LogisticsPlugin),
    /// A risk component.
    Risk(RiskPlugin),
    /// An analytics component: fed its stores' events off the order path,
    /// never called by the order pipeline.
    Analytics(AnalyticsPlugin),
    /// A device driver: called by the device bus, never by the order
    /// pipeline.
    Driver(DriverPlugin),
    /// A pricing plugin compiled into the host (benchmarks only).
    NativePricing(PluginRef, MakeNativePricing),
    /// A logistics plugin compiled into the host (benchmarks only).
    NativeLogistics(PluginRef, MakeNativeLogistics),
}

impl Implementation {
    /// The plugin and version.
    pub fn plugin_ref(&self) -> &PluginRef {
        match self {
            Implementation::Pricing(plugin) => plugin.plugin_ref(),
            Implementation::Logistics(plugin) => plugin.plugin_ref(),
            Implementation::Risk(plugin) => plugin.plugin_ref(),
            Implementation::Analytics(plugin) => plugin.plugin_ref(),
            Implementation::Driver(plugin) => plugin.plugin_ref(),
            Implementation::NativePricing(plugin, _)
            | Implementation::NativeLogistics(plugin, _) => plugin,
        }
    }

    /// The extension point it implements.
    pub fn kind(&self) -> PluginKind {
        match self {
            Implementation::Pricing(_) | Implementation::NativePricing(..) => PluginKind::Pricing,
            Implementation::Logistics(_) | Implementation::NativeLogistics(..) => {
                PluginKind::Logistics
            }
            Implementation::Risk(_) => PluginKind::Risk,
            Implementation::Analytics(_) => PluginKind::Analytics,
            Implementation::Driver(_) => PluginKind::DeviceDriver,
        }
    }

    /// Call counters over every instance, for Wasm plugins.
    pub fn counters(&self) -> Option<CallCounters> {
        match self {
            Implementation::Pricing(plugin) => Some(plugin.counters()),
            Implementation::Logistics(plugin) => Some(plugin.counters()),
            Implementation::Risk(plugin) => Some(plugin.counters()),
            Implementation::Analytics(plugin) => Some(plugin.counters()),
            Implementation::Driver(plugin) => Some(plugin.counters()),
            Implementation::NativePricing(..) | Implementation::NativeLogistics(..) => None,
        }
    }

    fn is_native(&self) -> bool {
        matches!(self, Implementation::NativePricing(..) | Implementation::NativeLogistics(..))
    }
}

/// Most differences a shadow run keeps as examples.
pub const SHADOW_SAMPLES_MAX: usize = 16;

/// A version running beside the active one on a share of calls, its
/// outputs compared and thrown away.
#[derive(Clone)]
pub struct Shadow {
    /// The version under test.
    pub version: String,
    /// Percentage of the calls of following stores it also runs on.
    pub share_percent: u8,
    /// What the comparison found so far.
    pub stats: Arc<ShadowStats>,
}

/// Counts of a shadow run.
#[derive(Debug, Default)]
pub struct ShadowStats {
    /// Calls run on both versions and compared.
    pub compared: AtomicU64,
    /// Compared calls whose outputs were the same.
    pub same: AtomicU64,
    /// Compared calls whose outputs differed.
    pub different: AtomicU64,
    /// Calls where the shadow failed and the active version did not.
    pub shadow_failed: AtomicU64,
    /// The most recent differences.
    pub samples: Mutex<VecDeque<ShadowDifference>>,
}

/// One difference a shadow run found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ShadowDifference {
    /// The store whose call it was.
    pub store: String,
    /// What the active version answered.
    pub active: String,
    /// What the shadow answered.
    pub shadow: String,
}

impl ShadowStats {
    /// Records one comparison.
    pub(crate) fn record(&self, store: &StoreId, active: String, shadow: Result<String, String>) {
        self.compared.fetch_add(1, Ordering::Relaxed);
        let shadow = match shadow {
            Ok(shadow) if shadow == active => {
                self.same.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(shadow) => {
                self.different.fetch_add(1, Ordering::Relaxed);
                shadow
            }
            Err(error) => {
                self.shadow_failed.fetch_add(1, Ordering::Relaxed);
                format!("failed: {error}")
            }
        };
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if samples.len() == SHADOW_SAMPLES_MAX {
            samples.pop_front();
        }
        samples.push_back(ShadowDifference { store: store.to_string(), active, shadow });
    }
}

/// A shadow run's results, as operators see them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ShadowReport {
    /// The version under test.
    pub version: String,
    /// Percentage of calls it runs on.
    pub share_percent: u8,
    /// Calls compared.
    pub compared: u64,
    /// Calls with the same output.
    pub same: u64,
    /// Calls with a different output.
    pub different: u64,
    /// Calls where only the shadow failed.
    pub shadow_failed: u64,
    /// The most recent differences, oldest first.
    pub samples: Vec<ShadowDifference>,
}

/// Everything the node runs of one plugin.
#[derive(Clone)]
pub struct InstalledPlugin {
    /// Its extension point.
    pub kind: PluginKind,
    /// What its failures do to an order.
    pub failure_policy: FailurePolicy,
    /// Each loaded version.
    pub versions: BTreeMap<String, Arc<Implementation>>,
    /// The version stores that follow the plugin run, if any.
    pub active: Option<String>,
    /// A version running as a shadow, if any.
    pub shadow: Option<Shadow>,
}

/// One immutable state of the catalogue.
#[derive(Clone, Default)]
pub struct CatalogView {
    /// Every plugin, by id.
    pub plugins: BTreeMap<PluginId, InstalledPlugin>,
}

/// Why a catalogue change was refused. Nothing changed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    /// No such plugin.
    #[error("plugin {0} is not installed on this node")]
    UnknownPlugin(String),
    /// No such version of the plugin.
    #[error("plugin {plugin} has no version {version} on this node")]
    UnknownVersion {
        /// The plugin.
        plugin: String,
        /// The version asked for.
        version: String,
    },
    /// A version of another kind under the same id.
    #[error("plugin {plugin} is a {installed} plugin; version {version} is {offered}")]
    KindMismatch {
        /// The plugin.
        plugin: String,
        /// The version offered.
        version: String,
        /// The kind already installed.
        installed: PluginKind,
        /// The kind offered.
        offered: PluginKind,
    },
    /// A policy the kind does not allow.
    #[error("a {kind} plugin cannot have the failure policy {policy}")]
    PolicyNotAllowed {
        /// The kind.
        kind: PluginKind,
        /// The policy.
        policy: FailurePolicy,
    },
    /// A shadow share outside 1..=100.
    #[error("a shadow share must be between 1 and 100 percent, got {0}")]
    ShadowShare(u8),
    /// The active version cannot also be the shadow, nor be removed.
    #[error("version {0} is active")]
    VersionActive(String),
}

/// The plugins of a node. Cheap to clone; clones share the catalogue, so
/// a change made through one is seen by every shard of the node.
#[derive(Clone, Default)]
pub struct PluginSet {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// The current view.
    view: RwLock<Arc<CatalogView>>,
    /// Bumped after every change of `view`.
    generation: AtomicU64,
    /// Serialises changes, so two concurrent edits cannot lose one another.
    edits: Mutex<()>,
    /// The circuit breakers that are not plain closed, across all shards.
    breakers: PublishedBreakers,
    /// The Wasm runtime of components added from artifacts.
    runtime: Mutex<Option<Runtime>>,
}

/// The plugin reference (id and version) of a built artifact.
pub fn plugin_ref(artifact: &Artifact) -> anyhow::Result<PluginRef> {
    Ok(PluginRef { id: PluginId::new(artifact.id)?, version: artifact.version.to_string() })
}

impl PluginSet {
    /// No plugins: every order at catalogue price, routed by the built-in router.
    pub fn none() -> Self {
        Self::default()
    }

    /// The first-party plugins as Wasm components in a runtime with the
    /// default limits, each active.
    pub fn first_party_wasm() -> anyhow::Result<Self> {
        let set = Self::none();
        for artifact in bazaar_artifacts::FIRST_PARTY {
            set.add_artifact(artifact)?;
        }
        Ok(set)
    }

    /// The first-party pricing and logistics plugins compiled natively into
    /// the host, each active.
    pub fn first_party_native() -> Self {
        let set = Self::none();
        let pricing = plugin_ref(&bazaar_artifacts::PRICING_PROMOTIONS).expect("valid plugin id");
        let logistics = plugin_ref(&bazaar_artifacts::LOGISTICS_ROUTER).expect("valid plugin id");
        for implementation in [
            Implementation::NativePricing(pricing, native::promotions),
            Implementation::NativeLogistics(logistics, native::router),
        ] {
            set.install(implementation, None, true).expect("a fresh set accepts both");
        }
        set
    }

    /// Compiles a built artifact in the set's runtime (started on first
    /// use with the default limits), installs it and activates it.
    pub fn add_artifact(&self, artifact: &Artifact) -> anyhow::Result<()> {
        self.load_artifact(artifact, true)
    }

    /// Compiles a built artifact in the set's runtime and installs it,
    /// active or not.
    pub fn load_artifact(&self, artifact: &Artifact, activate: bool) -> anyhow::Result<()> {
        let runtime = self.runtime()?;
        let plugin = plugin_ref(artifact)?;
        let kind = manifest_kind(artifact.manifest)
            .with_context(|| format!("the manifest of {}", artifact.id))?;
        let implementation = match kind {
            PluginKind::Pricing => {
                Implementation::Pricing(runtime.load_pricing(plugin, artifact.wasm)?)
            }
            PluginKind::Logistics => {
                Implementation::Logistics(runtime.load_logistics(plugin, artifact.wasm)?)
            }
            PluginKind::Risk => Implementation::Risk(runtime.load_risk(plugin, artifact.wasm)?),
            PluginKind::Analytics => {
                Implementation::Analytics(runtime.load_analytics(plugin, artifact.wasm)?)
            }
            PluginKind::DeviceDriver => {
                Implementation::Driver(runtime.load_driver(plugin, artifact.wasm)?)
            }
        };
        self.install(implementation, None, activate)
            .with_context(|| format!("installing {}", artifact.id))
    }

    /// The set's Wasm runtime, started on first use.
    pub fn runtime(&self) -> anyhow::Result<Runtime> {
        let mut slot = self.shared.runtime.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(runtime) = slot.as_ref() {
            return Ok(runtime.clone());
        }
        let runtime = Runtime::new(RuntimeLimits::default())?;
        *slot = Some(runtime.clone());
        Ok(runtime)
    }

    /// Uses `runtime` for the components this set loads from now on.
    pub fn use_runtime(&self, runtime: Runtime) {
        *self.shared.runtime.lock().unwrap_or_else(PoisonError::into_inner) = Some(runtime);
    }

    /// The current catalogue.
    pub fn view(&self) -> Arc<CatalogView> {
        self.shared.view.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The catalogue's generation: it changes with every change.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Applies `change` to a copy of the view and publishes the copy.
    fn edit<T>(
        &self,
        change: impl FnOnce(&mut CatalogView) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        let _serialised = self.shared.edits.lock().unwrap_or_else(PoisonError::into_inner);
        let mut view = CatalogView::clone(&self.view());
        let result = change(&mut view)?;
        *self.shared.view.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        Ok(result)
    }

    /// Adds a loaded version. `policy` applies to the whole plugin (the
    /// kind's default when `None` and the plugin is new); with `activate`
    /// the version becomes the active one at once.
    pub fn install(
        &self,
        implementation: Implementation,
        policy: Option<FailurePolicy>,
        activate: bool,
    ) -> Result<(), CatalogError> {
        let kind = implementation.kind();
        if let Some(policy) = policy
            && !FailurePolicy::allowed_for(kind).contains(&policy)
        {
            return Err(CatalogError::PolicyNotAllowed { kind, policy });
        }
        let plugin = implementation.plugin_ref().clone();
        self.edit(|view| {
            let entry = view.plugins.entry(plugin.id.clone()).or_insert_with(|| InstalledPlugin {
                kind,
                failure_policy: policy.unwrap_or(FailurePolicy::default_for(kind)),
                versions: BTreeMap::new(),
                active: None,
                shadow: None,
            });
            if entry.kind != kind {
                return Err(CatalogError::KindMismatch {
                    plugin: plugin.id.to_string(),
                    version: plugin.version.clone(),
                    installed: entry.kind,
                    offered: kind,
                });
            }
            if let Some(policy) = policy {
                entry.failure_policy = policy;
            }
            entry.versions.insert(plugin.version.clone(), Arc::new(implementation));
            if activate {
                entry.active = Some(plugin.version.clone());
            }
            Ok(())
        })
    }

    /// Makes `version` the one following stores run; returns the version
    /// it replaces. Calls already running finish on the old version.
    pub fn activate(&self, id: &PluginId, version: &str) -> Result<Option<String>, CatalogError> {
        self.edit(|view| {
            let entry = known_version(view, id, version)?;
            if entry.shadow.as_ref().is_some_and(|shadow| shadow.version == version) {
                entry.shadow = None;
            }
            Ok(entry.active.replace(version.to_string()))
        })
    }

    /// Runs `version` as a shadow of the active version on `share_percent`
    /// of the calls of stores that follow the plugin, with fresh counts;
    /// `None` ends the shadow run.
    pub fn set_shadow(
        &self,
        id: &PluginId,
        shadow: Option<(&str, u8)>,
    ) -> Result<(), CatalogError> {
        self.edit(|view| match shadow {
            None => {
                view.plugins
                    .get_mut(id)
                    .ok_or_else(|| CatalogError::UnknownPlugin(id.to_string()))?
                    .shadow = None;
                Ok(())
            }
            Some((version, share_percent)) => {
                if !(1..=100).contains(&share_percent) {
                    return Err(CatalogError::ShadowShare(share_percent));
                }
                let entry = known_version(view, id, version)?;
                if entry.active.as_deref() == Some(version) {
                    return Err(CatalogError::VersionActive(version.to_string()));
                }
                entry.shadow = Some(Shadow {
                    version: version.to_string(),
                    share_percent,
                    stats: Arc::default(),
                });
                Ok(())
            }
        })
    }

    /// Unloads a version that is neither active nor the shadow.
    pub fn remove_version(&self, id: &PluginId, version: &str) -> Result<(), CatalogError> {
        self.edit(|view| {
            let entry = known_version(view, id, version)?;
            let shadowed = entry.shadow.as_ref().is_some_and(|shadow| shadow.version == version);
            if entry.active.as_deref() == Some(version) || shadowed {
                return Err(CatalogError::VersionActive(version.to_string()));
            }
            entry.versions.remove(version);
            if entry.versions.is_empty() {
                view.plugins.remove(id);
            }
            Ok(())
        })
    }

    /// The shadow run of a plugin and its results so far.
    pub fn shadow_report(&self, id: &PluginId) -> Option<ShadowReport> {
        let view = self.view();
        let shadow = view.plugins.get(id)?.shadow.as_ref()?;
        let stats = &shadow.stats;
        Some(ShadowReport {
            version: shadow.version.clone(),
            share_percent: shadow.share_percent,
            compared: stats.compared.load(Ordering::Relaxed),
            same: stats.same.load(Ordering::Relaxed),
            different: stats.different.load(Ordering::Relaxed),
            shadow_failed: stats.shadow_failed.load(Ordering::Relaxed),
            samples: stats
                .samples
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .cloned()
                .collect(),
        })
    }

    /// "id version (wasm|native), ..." of the active versions, for reports.
    pub fn describe(&self) -> String {
        let view = self.view();
        let all: Vec<String> = view
            .plugins
            .values()
            .filter_map(|plugin| plugin.versions.get(plugin.active.as_ref()?))
            .map(|implementation| {
                let plugin = implementation.plugin_ref();
                let how = if implementation.is_native() { "native" } else { "wasm" };
                format!("{} {} ({how})", plugin.id, plugin.version)
            })
            .collect();
        if all.is_empty() { "none".into() } else { all.join(", ") }
    }

    /// The call counters of every loaded Wasm version.
    pub fn call_counters(&self) -> Vec<(PluginRef, CallCounters)> {
        let view = self.view();
        view.plugins
            .values()
            .flat_map(|plugin| plugin.versions.values())
            .filter_map(|implementation| {
                Some((implementation.plugin_ref().clone(), implementation.counters()?))
            })
            .collect()
    }

    /// Every circuit breaker that is open, half open, or has recent
    /// failures, by store and plugin.
    pub fn breakers(&self) -> BTreeMap<(StoreId, PluginId), BreakerState> {
        self.shared.breakers.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// One shard writer's view of the plugins, with its own instances.
    pub fn for_shard(&self) -> ShardPlugins {
        ShardPlugins::new(self.clone(), self.shared.breakers.clone())
    }
}

fn known_version<'a>(
    view: &'a mut CatalogView,
    id: &PluginId,
    version: &str,
) -> Result<&'a mut InstalledPlugin, CatalogError> {
    let entry =
        view.plugins.get_mut(id).ok_or_else(|| CatalogError::UnknownPlugin(id.to_string()))?;
    if !entry.versions.contains_key(version) {
        return Err(CatalogError::UnknownVersion {
            plugin: id.to_string(),
            version: version.to_string(),
        });
    }
    Ok(entry)
}

/// The `kind` of a plugin.toml, read without the full manifest parser:
/// built-in artifacts carry manifests checked by their own build.
fn manifest_kind(manifest: &str) -> anyhow::Result<PluginKind> {
    let value: toml::Table = manifest.parse()?;
    let kind = value.get("kind").and_then(toml::Value::as_str).context("no `kind`")?;
    PluginKind::parse(kind).with_context(|| format!("unknown kind {kind:?}"))
}

/// Describes an output for a shadow comparison: the fields a plugin
/// decides, without the version that produced them.
pub(crate) fn describe_adjustments(adjustments: &[Adjustment]) -> String {
    adjustments
        .iter()
        .map(|a| format!("{:?}:{}:{}", a.line_index, a.amount_off_minor, a.code))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Describes a shipment plan for a shadow comparison.
pub(crate) fn describe_plan(plan: &ShipmentPlan) -> String {
    plan.shipments
        .iter()
        .map(|s| {
            let lines: Vec<String> =
                s.lines.iter().map(|l| format!("{}x{}", l.sku, l.quantity)).collect();
            format!("{}[{}] {} {}", s.warehouse, lines.join(" "), s.carrier, s.fee_minor)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Describes a risk decision for a shadow comparison.
pub(crate) fn describe_risk(answer: &RiskAnswer) -> String {
    match answer {
        RiskAnswer::Approve(check) => format!("approve {}", check.code),
        RiskAnswer::Reject { code, .. } => format!("reject {code}"),
    }
}
