//! The plugin platform end to end on a real node: signed packages are
//! installed only after every check, each rejection names its reason and
//! leaves nothing behind, versions are activated and rolled back, the
//! catalogue comes back after a restart from cached artifacts, and a
//! merchant's enabling is checked against the plugin's schema and
//! capabilities.

mod common;

use common::{installed_ids, package, signed, tests_publisher};

use bazaar_kernel::Command;
use bazaar_kernel::model::{Capability, PluginId, StoreId};
use bazaar_node::node::{Node, NodeConfig};
use bazaar_node::platform::{EnableRequest, Platform, PlatformError};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed;
use bazaar_registry::{Package, PublisherSecret};
use serde_json::json;

struct Running {
    node: Node,
    platform: Platform,
    report: bazaar_node::platform::StartupReport,
}

fn open(dir: &std::path::Path) -> Running {
    let plugins = PluginSet::none();
    let node = Node::open(NodeConfig::new(dir), plugins.clone()).unwrap();
    let (platform, report) = Platform::open(node.storage().clone(), dir, plugins).unwrap();
    Running { node, platform, report }
}

#[test]
fn a_fresh_node_lists_the_bundled_plugins_active() {
    let dir = tempfile::tempdir().unwrap();
    let running = open(dir.path());
    assert_eq!(
        installed_ids(&running.platform),
        [
            "analytics-live",
            "driver-vda5050",
            "logistics-router",
            "pricing-promotions",
            "risk-guard"
        ]
    );
    let promotions = running.platform.listing(&PluginId::new("pricing-promotions").unwrap());
    let promotions = promotions.unwrap().unwrap();
    assert_eq!(promotions.active.as_deref(), Some("0.1.0"));
    assert!(
        promotions.capabilities.iter().any(|c| c.name == "config" && !c.plain_words.is_empty())
    );
    assert_eq!(running.report.failed, Vec::<String>::new());
}

#[test]
fn signed_versions_install_once_activate_roll_back_and_survive_a_restart_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let tagged = PluginId::new("tagged-pricing").unwrap();
    {
        let running = open(dir.path());
        let platform = &running.platform;
        let secret = tests_publisher(platform);
        let first =
            platform.install(signed(&bazaar_artifacts::TAGGED_PRICING_V1, &secret)).unwrap();
        assert!(first.created && first.activated);
        let again =
            platform.install(signed(&bazaar_artifacts::TAGGED_PRICING_V1, &secret)).unwrap();
        assert!(!again.created && !again.activated, "the same bytes twice are idempotent");
        let second =
            platform.install(signed(&bazaar_artifacts::TAGGED_PRICING_V2, &secret)).unwrap();
        assert!(second.created && !second.activated, "a later version waits for activation");

        let swap = platform.activate(&tagged, "2.0.0").unwrap();
        assert_eq!((swap.from.as_deref(), swap.to.as_str()), (Some("1.0.0"), "2.0.0"));
        let back = platform.rollback(&tagged).unwrap();
        assert_eq!((back.from.as_deref(), back.to.as_str()), (Some("2.0.0"), "1.0.0"));
        platform.start_shadow(&tagged, "2.0.0", 25).unwrap();
        running.node.shutdown();
    }
    let running = open(dir.path());
    assert!(running.report.failed.is_empty(), "{:?}", running.report.failed);
    assert_eq!(running.report.loaded, 7);
    assert_eq!(running.report.from_cache, 7, "a restart compiles nothing");
    let listing = running.platform.listing(&tagged).unwrap().unwrap();
    assert_eq!(listing.active.as_deref(), Some("1.0.0"));
    assert_eq!(
        listing.shadow.map(|s| (s.version.to_string(), s.share_percent)),
        Some(("2.0.0".into(), 25))
    );
    let statuses: Vec<_> =
        listing.versions.iter().map(|v| (v.version.as_str(), v.status)).collect();
    assert_eq!(statuses, [("1.0.0", "active"), ("2.0.0", "shadow")]);
    assert!(running.platform.shadow_report(&tagged).is_some());
}

#[test]
fn every_bad_upload_is_refused_with_its_reason_and_leaves_nothing_installed() {
    let dir = tempfile::tempdir().unwrap();
    let running = open(dir.path());
    let platform = &running.platform;
    let secret = tests_publisher(platform);
    let before = installed_ids(platform);
    let spy = &bazaar_artifacts::SPY_PRICING;

    let mut unsigned = signed(spy, &secret);
    unsigned.signature = None;
    let stranger = PublisherSecret::generate();
    let spy_without_state = spy.manifest.replace(
        r#"capabilities = ["log", "config", "state"]"#,
        r#"capabilities = ["log", "config"]"#,
    );
    let router_as_pricing = bazaar_artifacts::TAGGED_PRICING_V1
        .manifest
        .replace(r#"id = "tagged-pricing""#, r#"id = "router-in-disguise""#);
    let untrusted =
        spy.manifest.replace(r#"publisher = "bazaar-tests""#, r#"publisher = "nobody""#);
    let tampered = {
        let mut package = signed(spy, &secret);
        package.component[100] ^= 1;
        package
    };
    let cases: Vec<(&str, Package, &str)> = vec![
        ("unsigned", unsigned, "signature_missing"),
        ("signed by another key", signed(spy, &stranger), "signature_invalid"),
        ("tampered after signing", tampered, "signature_invalid"),
        ("untrusted publisher", package(&untrusted, spy.wasm, &secret), "publisher_not_trusted"),
        (
            "a core module",
            package(spy.manifest, bazaar_artifacts::CORE_MODULE, &secret),
            "core_module",
        ),
        (
            "the wrong world",
            package(&router_as_pricing, bazaar_artifacts::LOGISTICS_ROUTER.wasm, &secret),
            "wrong_world",
        ),
        (
            "an import it was not granted",
            package(&spy_without_state, spy.wasm, &secret),
            "import_not_granted",
        ),
        (
            "an interface the host lacks",
            signed(&bazaar_artifacts::FOREIGN_IMPORT, &secret),
            "import_unknown",
        ),
        (
            "an invalid manifest",
            package(
                &spy.manifest.replace("kind = \"pricing\"", "kind = \"teleport\""),
                spy.wasm,
                &secret,
            ),
            "manifest_invalid",
        ),
    ];
    for (what, package, code) in cases {
        let error = platform.install(package).expect_err(what);
        assert_eq!(error.code(), code, "{what}: {error}");
        assert!((400..500).contains(&error.status()), "{what}: {}", error.status());
    }
    let error = platform.install(package(&spy_without_state, spy.wasm, &secret)).unwrap_err();
    assert!(error.to_string().contains("state"), "names the capability: {error}");
    assert_eq!(installed_ids(platform), before, "nothing was left half-installed");

    // A released version cannot change its bytes.
    platform.install(signed(spy, &secret)).unwrap();
    let changed = package(spy.manifest, bazaar_artifacts::TAGGED_PRICING_V1.wasm, &secret);
    assert_eq!(platform.install(changed).unwrap_err().status(), 409);
}

#[test]
fn a_merchant_enables_a_plugin_only_with_a_valid_configuration_and_full_consent() {
    let dir = tempfile::tempdir().unwrap();
    let running = open(dir.path());
    let platform = &running.platform;
    let promotions = PluginId::new("pricing-promotions").unwrap();
    let request = |config: serde_json::Value, consent: Vec<Capability>| EnableRequest {
        config,
        consent,
        version: None,
        priority: 0,
        exclusive: false,
    };
    let all = vec![Capability::Log, Capability::Config];
    let invalid = platform
        .check_enable(&promotions, &request(json!({"flash_sales": "soon"}), all.clone()))
        .unwrap_err();
    assert!(matches!(invalid, PlatformError::Config(_)), "{invalid}");
    assert!(invalid.to_string().contains("/flash_sales"), "names the pointer: {invalid}");

    let config: serde_json::Value = serde_json::from_str(seed::PROMOTIONS_CONFIG).unwrap();
    let no_consent = platform
        .check_enable(&promotions, &request(config.clone(), vec![Capability::Config]))
        .unwrap_err();
    assert_eq!(no_consent.code(), "consent_missing");
    assert!(no_consent.to_string().contains("log"), "{no_consent}");

    let pinned =
        EnableRequest { version: Some("9.0.0".into()), ..request(config.clone(), all.clone()) };
    assert_eq!(platform.check_enable(&promotions, &pinned).unwrap_err().status(), 404);

    let settings = platform.check_enable(&promotions, &request(config.clone(), all)).unwrap();
    assert_eq!(settings.version_pin, None);
    let store = StoreId::new("merchant").unwrap();
    seed::seed_flagship_store(&running.node, &store, 0).unwrap();
    running
        .node
        .execute(Command::ConfigurePlugin {
            store,
            plugin: promotions,
            config_json: Some(config.to_string()),
            settings,
        })
        .unwrap();
}
