//! The registry over real redb storage and a real blob directory: what it
//! records survives a reopen, rollouts move in the documented order,
//! conflicting or incomplete installs are refused without changing anything,
//! and a blob changed on disk is caught when read.

use std::path::PathBuf;
use std::sync::Arc;

use bazaar_kernel::model::PluginId;
use bazaar_registry::{
    ACTIVATION_HISTORY_MAX, Package, PluginActivation, PublisherId, PublisherSecret, PutOutcome,
    Registry, RegistryError, ShadowSetting, SignatureError, VERSIONS_PER_PLUGIN_MAX, VersionRecord,
    content_hash, sign,
};
use bazaar_store::{Backend, Storage};
use semver::Version;
use tempfile::TempDir;

/// A registry in a fresh data directory that can be closed and reopened.
struct Harness {
    /// The data directory: the redb file and the blobs.
    dir: TempDir,
    /// The open registry.
    registry: Registry,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let registry = open_registry(&dir);
        Self { dir, registry }
    }

    /// Closes the registry and its storage and opens them again, as a
    /// restart would.
    fn reopen(self) -> Self {
        let Self { dir, registry } = self;
        drop(registry);
        let registry = open_registry(&dir);
        Self { dir, registry }
    }

    fn blob_dir(&self) -> PathBuf {
        self.dir.path().join("blobs")
    }

    /// Installs `id` at `version` with a component derived from both.
    fn install(&self, id: &str, version: &str) -> VersionRecord {
        let package = package(id, version, &component(id, version));
        let (record, outcome) = self.registry.install_package(&package).expect("installs");
        assert_eq!(outcome, PutOutcome::Created);
        record
    }
}

fn open_storage(dir: &TempDir) -> Arc<dyn Storage> {
    bazaar_store::open(Backend::Redb, &dir.path().join("store")).expect("open storage")
}

fn open_registry(dir: &TempDir) -> Registry {
    Registry::open(open_storage(dir), dir.path().join("blobs")).expect("open registry")
}

fn manifest(id: &str, version: &str) -> String {
    format!(
        "id = \"{id}\"\nversion = \"{version}\"\nkind = \"pricing\"\npublisher = \"acme\"\n\
         name = \"Test plugin\"\ndescription = \"\"\ncapabilities = [\"config\"]\n"
    )
}

fn component(id: &str, version: &str) -> Vec<u8> {
    format!("\0asm component of {id} {version}").into_bytes()
}

fn package(id: &str, version: &str, component: &[u8]) -> Package {
    Package { manifest_text: manifest(id, version), component: component.to_vec(), signature: None }
}

fn id(text: &str) -> PluginId {
    PluginId::new(text).expect("plugin id")
}

fn version(text: &str) -> Version {
    Version::parse(text).expect("version")
}

fn acme() -> PublisherId {
    PublisherId::new("acme").expect("publisher id")
}

#[test]
fn trusted_publishers_survive_a_reopen() {
    let harness = Harness::new();
    let acme_key = PublisherSecret::generate().public_key();
    let globex = PublisherId::new("globex").expect("publisher id");
    let trusted = harness.registry.trust(acme(), acme_key).expect("trust acme");
    harness
        .registry
        .trust(globex.clone(), PublisherSecret::generate().public_key())
        .expect("trust");
    assert!(harness.registry.distrust(&globex).expect("distrust"), "it was trusted");
    assert!(!harness.registry.distrust(&globex).expect("distrust again"), "no longer trusted");

    let harness = harness.reopen();
    assert_eq!(harness.registry.publishers(), vec![trusted]);
    assert_eq!(harness.registry.publisher_key(&acme()), Some(acme_key));
    assert_eq!(harness.registry.publisher_key(&globex), None);
}

#[test]
fn trusting_the_same_key_again_changes_nothing_and_a_new_key_replaces_the_old() {
    let harness = Harness::new();
    let first_key = PublisherSecret::generate().public_key();
    let first = harness.registry.trust(acme(), first_key).expect("trust");
    assert_eq!(harness.registry.trust(acme(), first_key).expect("trust again"), first);
    let second_key = PublisherSecret::generate().public_key();
    harness.registry.trust(acme(), second_key).expect("rotate key");
    assert_eq!(harness.registry.publishers().len(), 1);
    assert_eq!(harness.registry.publisher_key(&acme()), Some(second_key));
}

#[test]
fn installed_versions_survive_a_reopen_and_list_in_semver_order() {
    let harness = Harness::new();
    for text in ["1.10.0", "1.2.0", "0.9.0", "1.2.0-rc.1"] {
        harness.install("bulk-discount", text);
    }
    let harness = harness.reopen();
    let versions: Vec<String> = harness
        .registry
        .versions(&id("bulk-discount"))
        .expect("versions")
        .into_iter()
        .map(|record| record.version.to_string())
        .collect();
    assert_eq!(versions, ["0.9.0", "1.2.0-rc.1", "1.2.0", "1.10.0"]);
    let record = harness
        .registry
        .version(&id("bulk-discount"), &version("1.2.0"))
        .expect("read")
        .expect("installed");
    assert_eq!(record.content_hash, content_hash(&component("bulk-discount", "1.2.0")));
    assert_eq!(record.manifest().expect("manifest").version, version("1.2.0"));
    assert_eq!(
        harness.registry.read_blob(&record.content_hash).expect("blob"),
        component("bulk-discount", "1.2.0")
    );
    assert_eq!(
        harness.registry.version(&id("bulk-discount"), &version("2.0.0")).expect("read"),
        None
    );
}

#[test]
fn putting_the_same_version_again_is_already_present_and_keeps_the_original() {
    let harness = Harness::new();
    let original = harness.install("bulk-discount", "1.0.0");
    let again = package("bulk-discount", "1.0.0", &component("bulk-discount", "1.0.0"));
    let (stored, outcome) = harness.registry.install_package(&again).expect("reinstall");
    assert_eq!(outcome, PutOutcome::AlreadyPresent);
    assert_eq!(stored, original);
    let record = VersionRecord::from_package(&again, 1).expect("record");
    assert_eq!(harness.registry.put_version(record).expect("put"), PutOutcome::AlreadyPresent);
    assert_eq!(harness.registry.versions(&id("bulk-discount")).expect("versions"), vec![original]);
}

#[test]
fn the_same_version_with_other_bytes_is_a_conflict_that_changes_nothing() {
    let harness = Harness::new();
    let original = harness.install("bulk-discount", "1.0.0");
    let other_component = package("bulk-discount", "1.0.0", b"\0asm something else");
    let error = harness.registry.install_package(&other_component).expect_err("conflict");
    assert!(matches!(error, RegistryError::VersionConflict { .. }), "{error:?}");

    let mut other_manifest =
        package("bulk-discount", "1.0.0", &component("bulk-discount", "1.0.0"));
    other_manifest.manifest_text = other_manifest.manifest_text.replace("Test plugin", "Renamed");
    let error = harness.registry.install_package(&other_manifest).expect_err("conflict");
    assert!(error.to_string().contains("publish a new version"), "{error}");

    let harness = harness.reopen();
    assert_eq!(harness.registry.versions(&id("bulk-discount")).expect("versions"), vec![original]);
}

#[test]
fn a_version_whose_blob_is_not_stored_is_refused() {
    let harness = Harness::new();
    let bytes = component("bulk-discount", "1.0.0");
    let record =
        VersionRecord::new(manifest("bulk-discount", "1.0.0"), &bytes, None, 7).expect("record");
    let error = harness.registry.put_version(record.clone()).expect_err("no blob yet");
    assert!(matches!(error, RegistryError::BlobMissing { .. }), "{error:?}");
    assert_eq!(harness.registry.plugins().expect("plugins"), vec![]);

    harness.registry.put_blob(&bytes).expect("store blob");
    assert_eq!(harness.registry.put_version(record).expect("put"), PutOutcome::Created);
}

#[test]
fn a_record_that_disagrees_with_its_manifest_is_refused() {
    let harness = Harness::new();
    let bytes = component("bulk-discount", "1.0.0");
    harness.registry.put_blob(&bytes).expect("store blob");
    let mut record =
        VersionRecord::new(manifest("bulk-discount", "1.0.0"), &bytes, None, 7).expect("record");
    record.version = version("9.9.9");
    let error = harness.registry.put_version(record).expect_err("mismatch");
    assert!(matches!(error, RegistryError::RecordMismatch { field: "version", .. }), "{error:?}");
}

#[test]
fn activation_and_rollback_survive_a_reopen_and_walk_back_in_order() {
    let harness = Harness::new();
    let plugin = id("bulk-discount");
    for text in ["1.0.0", "2.0.0", "3.0.0"] {
        harness.install("bulk-discount", text);
    }
    assert_eq!(harness.registry.activate(&plugin, &version("1.0.0")).expect("activate"), None);
    assert_eq!(
        harness.registry.activate(&plugin, &version("2.0.0")).expect("activate"),
        Some(version("1.0.0"))
    );
    assert_eq!(
        harness.registry.activate(&plugin, &version("3.0.0")).expect("activate"),
        Some(version("2.0.0"))
    );

    let harness = harness.reopen();
    assert_eq!(
        harness.registry.activation(&plugin).expect("activation"),
        Some(PluginActivation {
            active: Some(version("3.0.0")),
            history: vec![version("1.0.0"), version("2.0.0")],
            shadow: None,
        })
    );
    assert_eq!(
        harness.registry.rollback(&plugin).expect("rollback"),
        (version("3.0.0"), version("2.0.0"))
    );
    let harness = harness.reopen();
    assert_eq!(
        harness.registry.rollback(&plugin).expect("rollback"),
        (version("2.0.0"), version("1.0.0"))
    );
    let before = harness.registry.activation(&plugin).expect("activation");
    let error = harness.registry.rollback(&plugin).expect_err("nothing left");
    assert!(matches!(error, RegistryError::NothingToRollBackTo { .. }), "{error:?}");
    assert_eq!(harness.registry.activation(&plugin).expect("activation"), before);
    assert_eq!(before.and_then(|activation| activation.active), Some(version("1.0.0")));
}

#[test]
fn rollback_skips_versions_removed_since_they_were_active() {
    let harness = Harness::new();
    let plugin = id("bulk-discount");
    for text in ["1.0.0", "2.0.0", "3.0.0"] {
        harness.install("bulk-discount", text);
        harness.registry.activate(&plugin, &version(text)).expect("activate");
    }
    harness.registry.remove_version(&plugin, &version("2.0.0")).expect("remove 2.0.0");
    assert_eq!(
        harness.registry.rollback(&plugin).expect("rollback"),
        (version("3.0.0"), version("1.0.0"))
    );
}

#[test]
fn activating_the_active_version_again_changes_nothing() {
    let harness = Harness::new();
    let plugin = id("bulk-discount");
    harness.install("bulk-discount", "1.0.0");
    harness.registry.activate(&plugin, &version("1.0.0")).expect("activate");
    assert_eq!(
        harness.registry.activate(&plugin, &version("1.0.0")).expect("activate again"),
        Some(version("1.0.0"))
    );
    let activation = harness.registry.activation(&plugin).expect("read").expect("known");
    assert!(activation.history.is_empty());
}

#[test]
fn activating_a_version_that_is_not_installed_is_refused() {
    let harness = Harness::new();
    let plugin = id("bulk-discount");
    let unknown = harness.registry.activate(&plugin, &version("1.0.0")).expect_err("unknown");
    assert!(matches!(unknown, RegistryError::UnknownPlugin { .. }), "{unknown:?}");
    harness.install("bulk-discount", "1.0.0");
    let missing = harness.registry.activate(&plugin, &version("2.0.0")).expect_err("missing");
    assert!(matches!(missing, RegistryError::NotInstalled { .. }), "{missing:?}");
}

#[test]
fn the_rollback_history_keeps_only_the_most_recent_versions() {
    let harness = Harness::new();
    let plugin = id("bulk-discount");
    let count = ACTIVATION_HISTORY_MAX + 3;
    for minor in 0..count {
        let text = format!("1.{minor}.0");
        harness.install("bulk-discount", &text);
        harness.registry.activate(&plugin, &version(&text)).expect("activate");
    }
    let activation = harness.registry.activation(&plugin).expect("read").expect("known");
    assert_eq!(activation.history.len(), ACTIVATION_HISTORY_MAX);
    assert_eq!(activation.history.first(), Some(&version("1.2.0")));
    assert_eq!(activation.history.last(), Some(&version(&format!("1.{}.0", count - 2))));
}

#[test]
fn a_version_cannot_be_removed_while_active_or_shadow() {
    let harness = Harness::new();
    let plugin = id("bulk-discount");
    harness.install("bulk-discount", "1.0.0");
    harness.install("bulk-discount", "2.0.0");
    harness.install("bulk-discount", "3.0.0");
    harness.registry.activate(&plugin, &version("1.0.0")).expect("activate");
    let shadow = ShadowSetting { version: version("2.0.0"), share_percent: 10 };
    harness.registry.set_shadow(&plugin, Some(shadow)).expect("shadow");

    let active = harness.registry.remove_version(&plugin, &version("1.0.0")).expect_err("active");
    assert!(matches!(active, RegistryError::VersionInUse { role: "active", .. }), "{active:?}");
    let shadowed = harness.registry.remove_version(&plugin, &version("2.0.0")).expect_err("shadow");
    assert!(matches!(shadowed, RegistryError::VersionInUse { role: "shadow", .. }), "{shadowed:?}");
    harness.registry.remove_version(&plugin, &version("3.0.0")).expect("remove an idle version");

    let harness = harness.reopen();
    let summaries = harness.registry.plugins().expect("plugins");
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].versions, vec![version("1.0.0"), version("2.0.0")]);
    assert_eq!(harness.registry.version(&plugin, &version("3.0.0")).expect("read"), None);
    let missing = harness.registry.remove_version(&plugin, &version("3.0.0")).expect_err("gone");
    assert!(matches!(missing, RegistryError::NotInstalled { .. }), "{missing:?}");
}

#[test]
fn removing_the_last_version_forgets_the_plugin() {
    let harness = Harness::new();
    let plugin = id("bulk-discount");
    harness.install("bulk-discount", "1.0.0");
    harness.registry.remove_version(&plugin, &version("1.0.0")).expect("remove");
    assert_eq!(harness.registry.plugins().expect("plugins"), vec![]);
    assert_eq!(harness.registry.activation(&plugin).expect("activation"), None);
    harness.install("bulk-discount", "1.0.0");
}

#[test]
fn a_shadow_must_be_installed_differ_from_the_active_version_and_see_a_real_share() {
    let harness = Harness::new();
    let plugin = id("bulk-discount");
    harness.install("bulk-discount", "1.0.0");
    harness.install("bulk-discount", "2.0.0");
    let shadow =
        |text: &str, share_percent| Some(ShadowSetting { version: version(text), share_percent });
    let no_active = harness.registry.set_shadow(&plugin, shadow("2.0.0", 10)).expect_err("none");
    assert!(matches!(no_active, RegistryError::InvalidShadow { .. }), "{no_active:?}");
    harness.registry.activate(&plugin, &version("1.0.0")).expect("activate");
    for (text, share) in [("2.0.0", 0), ("2.0.0", 101), ("1.0.0", 10)] {
        let error = harness.registry.set_shadow(&plugin, shadow(text, share)).expect_err("invalid");
        assert!(matches!(error, RegistryError::InvalidShadow { .. }), "{text} {share}: {error:?}");
    }
    let missing = harness.registry.set_shadow(&plugin, shadow("3.0.0", 10)).expect_err("missing");
    assert!(matches!(missing, RegistryError::NotInstalled { .. }), "{missing:?}");

    harness.registry.set_shadow(&plugin, shadow("2.0.0", 25)).expect("shadow");
    let harness = harness.reopen();
    let activation = harness.registry.activation(&plugin).expect("read").expect("known");
    assert_eq!(activation.shadow, shadow("2.0.0", 25));

    // Promoting the shadow makes it active and ends the shadowing.
    harness.registry.activate(&plugin, &version("2.0.0")).expect("promote");
    let activation = harness.registry.activation(&plugin).expect("read").expect("known");
    assert_eq!(activation.active, Some(version("2.0.0")));
    assert_eq!(activation.shadow, None);

    harness.registry.set_shadow(&plugin, shadow("1.0.0", 100)).expect("shadow the old one");
    harness.registry.set_shadow(&plugin, None).expect("clear");
    let activation = harness.registry.activation(&plugin).expect("read").expect("known");
    assert_eq!(activation.shadow, None);
}

#[test]
fn a_blob_modified_on_disk_is_detected_when_read() {
    let harness = Harness::new();
    let record = harness.install("bulk-discount", "1.0.0");
    let path = harness.blob_dir().join(format!("{}.wasm", record.content_hash));
    let mut bytes = std::fs::read(&path).expect("blob file");
    bytes[0] ^= 0xff;
    std::fs::write(&path, &bytes).expect("tamper");
    let error = harness.registry.read_blob(&record.content_hash).expect_err("tampered");
    assert!(matches!(error, RegistryError::BlobTampered { .. }), "{error:?}");

    // Storing the component again repairs the damaged blob.
    harness.registry.put_blob(&component("bulk-discount", "1.0.0")).expect("repair");
    assert_eq!(
        harness.registry.read_blob(&record.content_hash).expect("repaired"),
        component("bulk-discount", "1.0.0")
    );

    std::fs::remove_file(&path).expect("delete blob");
    let error = harness.registry.read_blob(&record.content_hash).expect_err("missing");
    assert!(matches!(error, RegistryError::BlobMissing { .. }), "{error:?}");
}

#[test]
fn identical_components_share_one_blob() {
    let harness = Harness::new();
    let shared = b"\0asm the same bytes".to_vec();
    for text in ["1.0.0", "1.0.1"] {
        let (record, _) = harness
            .registry
            .install_package(&package("bulk-discount", text, &shared))
            .expect("install");
        assert_eq!(record.content_hash, content_hash(&shared));
    }
    let blobs: Vec<_> = std::fs::read_dir(harness.blob_dir())
        .expect("blob dir")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(blobs, vec![std::ffi::OsString::from(format!("{}.wasm", content_hash(&shared)))]);
}

#[test]
fn a_plugin_holds_at_most_the_version_limit() {
    let harness = Harness::new();
    for patch in 0..VERSIONS_PER_PLUGIN_MAX {
        harness.install("bulk-discount", &format!("1.0.{patch}"));
    }
    let over = package("bulk-discount", "2.0.0", &component("bulk-discount", "2.0.0"));
    let error = harness.registry.install_package(&over).expect_err("over the limit");
    assert!(matches!(error, RegistryError::LimitReached { limit: VERSIONS_PER_PLUGIN_MAX, .. }));
    assert_eq!(
        harness.registry.versions(&id("bulk-discount")).expect("versions").len(),
        VERSIONS_PER_PLUGIN_MAX
    );
}

#[test]
fn plugins_lists_every_plugin_with_its_versions_and_rollout() {
    let harness = Harness::new();
    harness.install("risk-guard", "0.1.0");
    harness.install("bulk-discount", "1.0.0");
    harness.install("bulk-discount", "1.1.0");
    harness.registry.activate(&id("bulk-discount"), &version("1.1.0")).expect("activate");
    let harness = harness.reopen();
    let summaries = harness.registry.plugins().expect("plugins");
    let listed: Vec<(&str, usize, Option<&Version>)> = summaries
        .iter()
        .map(|summary| {
            (summary.id.as_str(), summary.versions.len(), summary.activation.active.as_ref())
        })
        .collect();
    assert_eq!(
        listed,
        vec![("bulk-discount", 2, Some(&version("1.1.0"))), ("risk-guard", 1, None)]
    );
}

#[test]
fn a_package_verifies_only_with_its_publishers_trusted_key() {
    let harness = Harness::new();
    let secret = PublisherSecret::generate();
    let mut signed = package("bulk-discount", "1.0.0", &component("bulk-discount", "1.0.0"));
    signed.signature = Some(sign(&secret, signed.manifest_text.as_bytes(), &signed.component));

    let untrusted = harness.registry.verify_package(&signed).expect_err("untrusted");
    assert!(matches!(untrusted, RegistryError::UntrustedPublisher { .. }), "{untrusted:?}");

    harness.registry.trust(acme(), PublisherSecret::generate().public_key()).expect("trust");
    let wrong_key = harness.registry.verify_package(&signed).expect_err("wrong key");
    assert!(
        matches!(wrong_key, RegistryError::Signature { error: SignatureError::Mismatch, .. }),
        "{wrong_key:?}"
    );

    harness.registry.trust(acme(), secret.public_key()).expect("trust the real key");
    let manifest = harness.registry.verify_package(&signed).expect("verifies");
    assert_eq!(manifest.publisher, acme());

    let mut unsigned = signed.clone();
    unsigned.signature = None;
    let error = harness.registry.verify_package(&unsigned).expect_err("unsigned");
    assert!(
        matches!(error, RegistryError::Signature { error: SignatureError::Unsigned, .. }),
        "{error:?}"
    );
    let (record, _) = harness.registry.install_package(&signed).expect("install");
    assert_eq!(record.signature, signed.signature);
}

#[test]
fn a_registry_written_in_an_unknown_layout_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let storage = open_storage(&dir);
    storage.kv_put(b"registry/format", b"99").expect("write a future layout");
    let error = Registry::open(storage, dir.path().join("blobs")).expect_err("unknown layout");
    assert!(matches!(error, RegistryError::UnsupportedFormat { .. }), "{error:?}");
}
