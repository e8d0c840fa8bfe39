//! The JSON of the plugin platform's routes: publishers, packages, the
//! marketplace, version controls, shadow runs, breakers and call counters,
//! and a store's enabled plugins. Request bodies are strict (unknown fields
//! are refused); responses mirror the node's platform views with their
//! OpenAPI schemas.

use bazaar_kernel::model::{Capability, StoreId};
use bazaar_kernel::{PluginConfig, PricingRules};
use bazaar_node::platform::{
    BreakerView, CounterView, Installed, PluginListing, PublisherView, Swap, VersionView,
};
use bazaar_node::plugins::ShadowReport;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

// ----- publishers -----

/// A publisher key to trust.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustPublisher {
    /// The publisher's ed25519 public key: 64 lowercase hex characters.
    pub public_key: String,
}

/// A trusted publisher.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Publisher {
    /// The publisher id, as in its manifests' `publisher`.
    pub publisher: String,
    /// Its ed25519 public key, hex.
    pub public_key: String,
    /// When it was trusted.
    pub trusted_at_ms: u64,
}

impl From<PublisherView> for Publisher {
    fn from(view: PublisherView) -> Self {
        Self {
            publisher: view.publisher,
            public_key: view.public_key,
            trusted_at_ms: view.trusted_at_ms,
        }
    }
}

/// Every trusted publisher.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PublisherList {
    /// In id order.
    pub publishers: Vec<Publisher>,
}

// ----- packages and the marketplace -----

/// A signed package to install: the three files a partner publishes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallPlugin {
    /// The exact text of `plugin.toml` (the signature covers its bytes).
    pub manifest: String,
    /// The component (`plugin.wasm`), standard base64 with padding.
    pub component: String,
    /// The signature (`plugin.sig`): 128 lowercase hex characters. A package
    /// without one is refused.
    #[serde(default)]
    pub signature: Option<String>,
}

/// One installed version of a plugin.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PluginVersion {
    /// Its semantic version.
    pub version: String,
    /// SHA-256 of the component, hex.
    pub content_hash: String,
    /// Size of the component.
    pub size_bytes: u64,
    /// When it was installed.
    pub installed_at_ms: u64,
    /// Whether it carries a publisher's signature (the bundled first-party
    /// plugins do not).
    pub signed: bool,
    /// `active`, `shadow` or `available`.
    pub status: String,
}

impl From<VersionView> for PluginVersion {
    fn from(view: VersionView) -> Self {
        Self {
            version: view.version,
            content_hash: view.content_hash,
            size_bytes: view.size_bytes,
            installed_at_ms: view.installed_at_ms,
            signed: view.signed,
            status: view.status.to_string(),
        }
    }
}

/// What an install did.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct InstalledPlugin {
    /// The plugin.
    pub id: String,
    /// The version installed.
    pub version: String,
    /// False when the identical version was installed already.
    pub created: bool,
    /// True when it became the active version (a plugin's first version does).
    pub activated: bool,
    /// Whether the compiled component came from the node's cache.
    pub compiled_from_cache: bool,
    /// Time the install took on the node.
    pub elapsed_ms: u64,
    /// The version as the marketplace lists it.
    pub details: PluginVersion,
}

impl InstalledPlugin {
    /// The view of an install of `id`.
    pub fn of(id: &str, installed: Installed) -> Self {
        Self {
            id: id.to_string(),
            version: installed.version.version.clone(),
            created: installed.created,
            activated: installed.activated,
            compiled_from_cache: installed.compiled_from_cache,
            elapsed_ms: installed.elapsed_ms,
            details: installed.version.into(),
        }
    }
}

/// A capability, as a merchant reads it before consenting.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PluginCapability {
    /// Its name, as sent in `consent`: `log`, `config` or `state`.
    pub name: String,
    /// What it lets the plugin do.
    pub plain_words: String,
}

/// A version running beside the active one on a share of calls.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ShadowSetting {
    /// The version under trial.
    pub version: String,
    /// Percentage of calls it also runs on.
    pub share_percent: u8,
}

/// A plugin as the marketplace lists it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Plugin {
    /// Its id.
    pub id: String,
    /// Display name (of its newest version).
    pub name: String,
    /// Who publishes it.
    pub publisher: String,
    /// What it does.
    pub description: String,
    /// Its extension point: `pricing`, `logistics` or `risk`.
    pub kind: String,
    /// What an order gets when it fails: `fail-open`, `fail-closed` or `fallback`.
    pub failure_policy: String,
    /// The capabilities it asks for; enabling it needs consent to each.
    pub capabilities: Vec<PluginCapability>,
    /// The JSON Schema of its per-store configuration.
    pub config_schema: serde_json::Value,
    /// Installed versions, ascending.
    pub versions: Vec<PluginVersion>,
    /// The version stores that follow the plugin run.
    pub active: Option<String>,
    /// A version under trial beside the active one.
    pub shadow: Option<ShadowSetting>,
}

impl From<PluginListing> for Plugin {
    fn from(listing: PluginListing) -> Self {
        Self {
            id: listing.id,
            name: listing.name,
            publisher: listing.publisher,
            description: listing.description,
            kind: listing.kind.world().to_string(),
            failure_policy: listing.failure_policy,
            capabilities: listing
                .capabilities
                .into_iter()
                .map(|capability| PluginCapability {
                    name: capability.name.to_string(),
                    plain_words: capability.plain_words.to_string(),
                })
                .collect(),
            config_schema: listing.config_schema,
            versions: listing.versions.into_iter().map(PluginVersion::from).collect(),
            active: listing.active,
            shadow: listing.shadow.map(|shadow| ShadowSetting {
                version: shadow.version.to_string(),
                share_percent: shadow.share_percent,
            }),
        }
    }
}

/// The marketplace.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PluginList {
    /// Every installed plugin, in id order.
    pub plugins: Vec<Plugin>,
}

// ----- version controls -----

/// The version to make active.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivatePlugin {
    /// An installed version, such as `1.2.0`.
    pub version: String,
}

/// A hot swap of the active version.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PluginSwap {
    /// The plugin.
    pub plugin: String,
    /// The version it replaced, if any.
    pub from: Option<String>,
    /// The version every call starting from now runs.
    pub to: String,
    /// Time from the request to the swap, microseconds; calls in flight
    /// finish on the version they started with.
    pub elapsed_us: u64,
}

impl From<Swap> for PluginSwap {
    fn from(swap: Swap) -> Self {
        Self { plugin: swap.plugin, from: swap.from, to: swap.to, elapsed_us: swap.elapsed_us }
    }
}

/// A shadow run to start.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartShadow {
    /// The installed version to try (not the active one).
    pub version: String,
    /// Percentage of the calls of following stores it also runs on, 1 to 100.
    pub share_percent: u8,
}

/// One call on which the shadow answered differently.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ShadowDifference {
    /// The store whose call it was.
    pub store: String,
    /// What the active version answered.
    pub active: String,
    /// What the shadow answered.
    pub shadow: String,
}

/// A shadow run and what it found so far.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ShadowRun {
    /// The version under trial.
    pub version: String,
    /// Percentage of calls it runs on.
    pub share_percent: u8,
    /// Calls run on both versions and compared.
    pub compared: u64,
    /// Compared calls with the same output.
    pub same: u64,
    /// Compared calls with a different output.
    pub different: u64,
    /// Calls where only the shadow failed.
    pub shadow_failed: u64,
    /// The most recent differences, oldest first.
    pub samples: Vec<ShadowDifference>,
}

impl From<ShadowReport> for ShadowRun {
    fn from(report: ShadowReport) -> Self {
        Self {
            version: report.version,
            share_percent: report.share_percent,
            compared: report.compared,
            same: report.same,
            different: report.different,
            shadow_failed: report.shadow_failed,
            samples: report
                .samples
                .into_iter()
                .map(|sample| ShadowDifference {
                    store: sample.store,
                    active: sample.active,
                    shadow: sample.shadow,
                })
                .collect(),
        }
    }
}

// ----- breakers and counters -----

/// A circuit breaker (per plugin per store) that is not plainly closed.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Breaker {
    /// The store.
    pub store: String,
    /// The plugin.
    pub plugin: String,
    /// `closed` (with recent failures), `open` (calls skipped) or
    /// `half-open` (one probe call going through).
    pub state: String,
    /// Failures in a row, when closed.
    pub consecutive_failures: u32,
    /// When an open breaker lets a probe call through.
    pub open_until_ms: Option<u64>,
    /// The backoff that applies, milliseconds.
    pub backoff_ms: Option<u64>,
}

impl From<BreakerView> for Breaker {
    fn from(view: BreakerView) -> Self {
        Self {
            store: view.store,
            plugin: view.plugin,
            state: view.state.to_string(),
            consecutive_failures: view.consecutive_failures,
            open_until_ms: view.open_until_ms,
            backoff_ms: view.backoff_ms,
        }
    }
}

/// Circuit breakers.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BreakerList {
    /// By store, then plugin.
    pub breakers: Vec<Breaker>,
}

/// The call counters of one loaded version, since the node started.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct VersionCounters {
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
}

impl From<CounterView> for VersionCounters {
    fn from(view: CounterView) -> Self {
        Self {
            version: view.version,
            calls: view.calls,
            failures: view.failures,
            traps: view.traps,
            instantiations: view.instantiations,
        }
    }
}

/// A plugin's call counters.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PluginStats {
    /// The plugin.
    pub plugin: String,
    /// Each loaded version.
    pub versions: Vec<VersionCounters>,
}

// ----- a store's plugins -----

/// What a merchant sends to enable a plugin for a store, or to change how
/// it runs there.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnablePlugin {
    /// The configuration: a JSON object matching the plugin's
    /// `config_schema`, at most 64 KiB.
    pub config: serde_json::Value,
    /// The capabilities consented to (`log`, `config`, `state`); must cover
    /// every capability the plugin asks for.
    #[serde(default)]
    pub consent: Vec<String>,
    /// A version to pin, or null to follow the version the operator
    /// activates.
    #[serde(default)]
    pub version: Option<String>,
    /// Its place among the store's pricing plugins: lower runs first.
    #[serde(default)]
    pub priority: u32,
    /// For pricing plugins: when it grants a discount, the store's later
    /// pricing plugins do not run.
    #[serde(default)]
    pub exclusive: bool,
}

impl EnablePlugin {
    /// The capabilities consented to; an unknown name is refused by index.
    pub fn consent(&self) -> Result<Vec<Capability>, ApiError> {
        self.consent
            .iter()
            .enumerate()
            .map(|(index, name)| {
                Capability::parse(name).ok_or_else(|| {
                    let known: Vec<&str> = Capability::ALL.iter().map(|c| c.name()).collect();
                    ApiError::unprocessable(
                        "invalid_body",
                        format!(
                            "consent[{index}] is {:?}, not a capability; the capabilities are {}",
                            name.chars().take(64).collect::<String>(),
                            known.join(", ")
                        ),
                    )
                    .at_field(format!("consent[{index}]"))
                })
            })
            .collect()
    }
}

/// How a plugin runs for a store.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct StorePluginSettings {
    /// The pinned version, or null when the store follows the active one.
    pub version_pin: Option<String>,
    /// Its place among the store's pricing plugins: lower runs first.
    pub priority: u32,
    /// Whether its discount stops the store's later pricing plugins.
    pub exclusive: bool,
    /// The capabilities the merchant consented to.
    pub consented: Vec<String>,
}

/// A plugin a store has enabled.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct StorePlugin {
    /// The store.
    pub store: String,
    /// The plugin.
    pub plugin: String,
    /// The configuration as stored.
    pub config: serde_json::Value,
    /// How it runs for the store.
    pub settings: StorePluginSettings,
    /// The store revision at which it was last set.
    pub revision: u64,
}

impl StorePlugin {
    /// The view of a stored configuration.
    pub fn of(store: &StoreId, plugin: &str, config: &PluginConfig) -> Self {
        let settings = &config.settings;
        Self {
            store: store.to_string(),
            plugin: plugin.to_string(),
            config: serde_json::from_str(&config.json).unwrap_or(serde_json::Value::Null),
            settings: StorePluginSettings {
                version_pin: settings.version_pin.clone(),
                priority: settings.priority,
                exclusive: settings.exclusive,
                consented: settings.consented.iter().map(|c| c.name().to_string()).collect(),
            },
            revision: config.revision,
        }
    }
}

/// How a store's pricing plugins combine, beyond their order.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PricingRulesBody {
    /// The largest total discount as a percentage of the subtotal, 0 to
    /// 100, or null for none.
    #[serde(default)]
    pub discount_cap_percent: Option<u8>,
    /// The largest total discount in minor units of the store's currency,
    /// or null for none.
    #[serde(default)]
    pub discount_cap_minor: Option<i64>,
}

impl From<PricingRulesBody> for PricingRules {
    fn from(body: PricingRulesBody) -> Self {
        Self {
            discount_cap_percent: body.discount_cap_percent,
            discount_cap_minor: body.discount_cap_minor,
        }
    }
}

impl From<&PricingRules> for PricingRulesBody {
    fn from(rules: &PricingRules) -> Self {
        Self {
            discount_cap_percent: rules.discount_cap_percent,
            discount_cap_minor: rules.discount_cap_minor,
        }
    }
}

/// What a store has enabled.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct StorePluginList {
    /// The store.
    pub store: String,
    /// Its enabled plugins, by id.
    pub plugins: Vec<StorePlugin>,
    /// How its pricing plugins combine.
    pub pricing_rules: PricingRulesBody,
}
