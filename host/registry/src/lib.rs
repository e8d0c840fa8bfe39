//! Bazaar's plugin registry: everything the host knows about plugins before
//! it runs one.
//!
//! - [`manifest`]: `plugin.toml`, parsed strictly into a typed [`Manifest`].
//! - [`schema`]: the JSON Schema subset of a plugin's per-store
//!   configuration, and the validator merchants' configurations go through.
//! - [`signature`]: publisher keys, ed25519 package signatures, content
//!   hashes.
//! - [`package`]: the directory a partner publishes (`plugin.toml`,
//!   `plugin.wasm`, `plugin.sig`).
//! - [`registry`]: the durable record of trusted publishers, installed
//!   versions (component bytes as content-addressed blobs) and which version
//!   of each plugin is active, shadowed or rolled back to.
//!
//! The crate is data and storage only: it never compiles or runs a
//! component. The runtime decides whether a component is acceptable and
//! then installs it here.

mod files;
pub mod manifest;
pub mod package;
pub mod registry;
pub mod schema;
pub mod signature;

pub use manifest::{
    DESCRIPTION_BYTES_MAX, FailurePolicy, Location, MANIFEST_BYTES_MAX, Manifest, ManifestError,
    ManifestLimits, NAME_BYTES_MAX, PublisherId, VERSION_BYTES_MAX,
};
pub use package::{
    COMPONENT_FILE_NAME, MANIFEST_FILE_NAME, PACKAGE_COMPONENT_BYTES_MAX, Package, PackageError,
    SIGNATURE_FILE_NAME,
};
pub use registry::{
    ACTIVATION_HISTORY_MAX, PLUGINS_MAX, PluginActivation, PluginSummary, PutOutcome, Registry,
    RegistryError, SHADOW_SHARE_PERCENT_MAX, ShadowSetting, TRUSTED_PUBLISHERS_MAX,
    TrustedPublisher, VERSIONS_PER_PLUGIN_MAX, VersionRecord,
};
pub use schema::{
    CONFIG_VIOLATIONS_MAX, ConfigErrors, ConfigSchema, ConfigViolation, SCHEMA_DEPTH_MAX,
    SCHEMA_NODES_MAX, SchemaError,
};
pub use signature::{
    ContentHash, PluginSignature, PublisherKey, PublisherSecret, SignatureError, content_hash,
    sign, signing_digest, verify,
};
