//! The embedded artifacts are real components with the world they claim:
//! the right header, the extension point of their manifest's kind, and no
//! imports besides the Bazaar interfaces their manifest asks for and the
//! WASI interfaces Rust's standard library uses (except the guest built to
//! import something else).

use std::collections::BTreeSet;

use bazaar_artifacts::{
    ANALYTICS_LIVE, Artifact, DRIVER_VDA5050, FIRST_PARTY, LOGISTICS_ROUTER, PRICING_PROMOTIONS,
    RISK_GUARD,
};
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

/// `\0asm`, then version 0x0d and layer 1: the component-model binary
/// header. A core module has version 1 and layer 0 instead.
const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// Smaller than any real Rust component (the SDK, serde_json and the std
/// adapter alone weigh more), so a stub or truncated file fails.
const COMPONENT_BYTES_MIN: usize = 16 * 1024;

/// The WASI interfaces Rust's std for wasm32-wasip2 may import; the host
/// links them with a deny-all context.
const WASI_PREFIXES: &[&str] = &["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/"];

/// The prefix and version of Bazaar's own interfaces.
const BAZAAR_PREFIX: &str = "bazaar:commerce/";
const BAZAAR_VERSION: &str = "@0.2.0";

/// The Bazaar interfaces of shared types (every plugin imports `types`,
/// analytics plugins `events`, device drivers `device-types`): they have no
/// functions and need no grant.
const TYPE_INTERFACES: [&str; 3] = ["types", "events", "device-types"];

/// The test guests, when this build has them.
#[cfg(feature = "test-guests")]
const TEST_GUESTS: &[Artifact] = bazaar_artifacts::TEST_GUESTS;
#[cfg(not(feature = "test-guests"))]
const TEST_GUESTS: &[Artifact] = &[];

fn all_artifacts() -> Vec<Artifact> {
    [FIRST_PARTY, TEST_GUESTS].concat()
}

/// Every artifact but the one built to import an interface Bazaar lacks.
fn well_formed_artifacts() -> Vec<Artifact> {
    #[cfg(feature = "test-guests")]
    let foreign = Some(bazaar_artifacts::FOREIGN_IMPORT);
    #[cfg(not(feature = "test-guests"))]
    let foreign: Option<Artifact> = None;
    all_artifacts().into_iter().filter(|artifact| Some(*artifact) != foreign).collect()
}

/// The top-level import and export names of `component`.
fn interface_names(component: &[u8]) -> (Vec<String>, Vec<String>) {
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut depth = 0;
    for payload in Parser::new(0).parse_all(component) {
        match payload.expect("a well-formed component") {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(section) if depth == 1 => {
                for import in section {
                    imports.push(import.expect("an import").name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    exports.push(export.expect("an export").name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    (imports, exports)
}

/// The manifest of `artifact`, parsed.
fn manifest_of(artifact: &Artifact) -> toml::Table {
    toml::from_str(artifact.manifest)
        .unwrap_or_else(|error| panic!("the manifest of {} is not TOML: {error}", artifact.id))
}

/// The `kind` and `capabilities` of `artifact`'s manifest.
fn kind_and_capabilities(artifact: &Artifact) -> (String, BTreeSet<String>) {
    let manifest = manifest_of(artifact);
    let kind = manifest["kind"].as_str().expect("a kind").to_owned();
    let capabilities = manifest["capabilities"]
        .as_array()
        .expect("a capability list")
        .iter()
        .map(|capability| capability.as_str().expect("a capability name").to_owned())
        .collect();
    (kind, capabilities)
}

#[test]
fn every_artifact_is_a_component_and_not_a_core_module() {
    for artifact in all_artifacts() {
        assert!(
            artifact.wasm.starts_with(&COMPONENT_HEADER),
            "{} does not start with the component header: {:02x?}",
            artifact.id,
            &artifact.wasm[..artifact.wasm.len().min(8)]
        );
        assert!(
            artifact.wasm.len() >= COMPONENT_BYTES_MIN,
            "{} is only {} bytes",
            artifact.id,
            artifact.wasm.len()
        );
    }
}

#[test]
fn every_artifact_validates_as_a_component() {
    for artifact in all_artifacts() {
        Validator::new_with_features(WasmFeatures::all())
            .validate_all(artifact.wasm)
            .unwrap_or_else(|error| panic!("{} is invalid: {error}", artifact.id));
    }
}

#[test]
fn each_plugin_exports_exactly_the_extension_point_of_its_manifest_kind() {
    let (_, pricing_exports) = interface_names(PRICING_PROMOTIONS.wasm);
    assert_eq!(pricing_exports, ["bazaar:commerce/pricer@0.2.0"]);
    let (_, logistics_exports) = interface_names(LOGISTICS_ROUTER.wasm);
    assert_eq!(logistics_exports, ["bazaar:commerce/router@0.2.0"]);
    let (_, risk_exports) = interface_names(RISK_GUARD.wasm);
    assert_eq!(risk_exports, ["bazaar:commerce/risk-assessor@0.2.0"]);
    let (_, analytics_exports) = interface_names(ANALYTICS_LIVE.wasm);
    assert_eq!(analytics_exports, ["bazaar:commerce/analyzer@0.2.0"]);
    let (_, driver_exports) = interface_names(DRIVER_VDA5050.wasm);
    assert_eq!(driver_exports, ["bazaar:commerce/driver@0.2.0"]);
    for artifact in all_artifacts() {
        let (kind, _) = kind_and_capabilities(&artifact);
        let export = match kind.as_str() {
            "pricing" => "bazaar:commerce/pricer@0.2.0",
            "logistics" => "bazaar:commerce/router@0.2.0",
            "risk" => "bazaar:commerce/risk-assessor@0.2.0",
            "analytics" => "bazaar:commerce/analyzer@0.2.0",
            "device-driver" => "bazaar:commerce/driver@0.2.0",
            other => panic!("{} has an unknown kind {other:?}", artifact.id),
        };
        let (_, exports) = interface_names(artifact.wasm);
        assert_eq!(exports, [export], "{}", artifact.id);
    }
}

#[test]
fn components_import_only_bazaar_interfaces_and_std_wasi() {
    for artifact in well_formed_artifacts() {
        let (imports, _) = interface_names(artifact.wasm);
        assert!(
            imports.iter().any(|name| name.starts_with("bazaar:commerce/config@")),
            "{} should read its configuration: {imports:?}",
            artifact.id
        );
        for name in &imports {
            let bazaar = name.starts_with(BAZAAR_PREFIX);
            let wasi = WASI_PREFIXES.iter().any(|prefix| name.starts_with(prefix));
            assert!(bazaar || wasi, "{} imports {name}", artifact.id);
            assert!(
                !name.starts_with("bazaar:commerce/pricer")
                    && !name.starts_with("bazaar:commerce/router")
                    && !name.starts_with("bazaar:commerce/risk-assessor")
                    && !name.starts_with("bazaar:commerce/analyzer"),
                "{} imports an extension point: {name}",
                artifact.id
            );
        }
    }
}

#[test]
fn every_manifest_asks_for_exactly_the_bazaar_interfaces_its_component_imports() {
    for artifact in all_artifacts() {
        let (_, capabilities) = kind_and_capabilities(&artifact);
        let (imports, _) = interface_names(artifact.wasm);
        let imported: BTreeSet<String> = imports
            .iter()
            .filter_map(|name| name.strip_prefix(BAZAAR_PREFIX))
            .map(|interface| {
                interface
                    .strip_suffix(BAZAAR_VERSION)
                    .unwrap_or_else(|| {
                        panic!("{} imports {interface} of another version", artifact.id)
                    })
                    .to_owned()
            })
            .filter(|interface| !TYPE_INTERFACES.contains(&interface.as_str()))
            .collect();
        assert_eq!(imported, capabilities, "{}: imports {imports:?}", artifact.id);
    }
}

#[test]
fn versions_come_from_the_plugin_manifests() {
    assert_eq!(PRICING_PROMOTIONS.id, "pricing-promotions");
    assert_eq!(LOGISTICS_ROUTER.id, "logistics-router");
    assert_eq!(RISK_GUARD.id, "risk-guard");
    assert_eq!(RISK_GUARD.version, "0.1.0");
    assert_eq!(ANALYTICS_LIVE.id, "analytics-live");
    assert_eq!(DRIVER_VDA5050.id, "driver-vda5050");
    for artifact in all_artifacts() {
        let parts: Vec<&str> = artifact.version.split('.').collect();
        assert_eq!(parts.len(), 3, "{}: {:?}", artifact.id, artifact.version);
        assert!(parts.iter().all(|part| part.parse::<u64>().is_ok()), "{}", artifact.version);
    }
}

#[cfg(feature = "test-guests")]
mod test_guests {
    use super::*;
    use bazaar_artifacts::{
        CORE_MODULE, FOREIGN_IMPORT, HOSTILE_DRIVER, HOSTILE_DRIVER_V2, TAGGED_PRICING_V1,
        TAGGED_PRICING_V2,
    };
    use wasmparser::{Encoding, ExternalKind};

    #[test]
    fn the_foreign_import_guest_really_imports_the_partner_socket() {
        let (imports, _) = interface_names(FOREIGN_IMPORT.wasm);
        assert!(imports.iter().any(|name| name == "partner:net/socket"), "{imports:?}");
        let unknown: Vec<&String> = imports
            .iter()
            .filter(|name| {
                !name.starts_with(BAZAAR_PREFIX)
                    && !WASI_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
            })
            .collect();
        assert_eq!(unknown, ["partner:net/socket"]);
    }

    #[test]
    fn the_two_tagged_versions_are_one_plugin_in_two_different_builds() {
        assert_eq!(TAGGED_PRICING_V1.id, "tagged-pricing");
        assert_eq!(TAGGED_PRICING_V2.id, "tagged-pricing");
        assert_eq!(TAGGED_PRICING_V1.version, "1.0.0");
        assert_eq!(TAGGED_PRICING_V2.version, "2.0.0");
        assert_ne!(TAGGED_PRICING_V1.wasm, TAGGED_PRICING_V2.wasm);
        let code_of = |wasm: &[u8]| {
            let text = String::from_utf8_lossy(wasm).into_owned();
            (text.contains("tagged-v1"), text.contains("tagged-v2"))
        };
        assert_eq!(code_of(TAGGED_PRICING_V1.wasm), (true, false));
        assert_eq!(code_of(TAGGED_PRICING_V2.wasm), (false, true));
        // The manifests differ in their version line and nowhere else.
        let differing: Vec<(&str, &str)> = TAGGED_PRICING_V1
            .manifest
            .lines()
            .zip(TAGGED_PRICING_V2.manifest.lines())
            .filter(|(v1, v2)| v1 != v2)
            .collect();
        assert_eq!(differing, [("version = \"1.0.0\"", "version = \"2.0.0\"")]);
        assert_eq!(
            TAGGED_PRICING_V1.manifest.lines().count(),
            TAGGED_PRICING_V2.manifest.lines().count()
        );
    }

    #[test]
    fn the_two_hostile_driver_versions_are_one_plugin_in_two_different_builds() {
        assert_eq!(HOSTILE_DRIVER.id, "hostile-driver");
        assert_eq!(HOSTILE_DRIVER_V2.id, "hostile-driver");
        assert_eq!(HOSTILE_DRIVER.version, "0.1.0");
        assert_eq!(HOSTILE_DRIVER_V2.version, "2.0.0");
        assert_ne!(HOSTILE_DRIVER.wasm, HOSTILE_DRIVER_V2.wasm);
        // Both are drivers with the same grants: a swap changes no consent.
        assert_eq!(
            kind_and_capabilities(&HOSTILE_DRIVER),
            kind_and_capabilities(&HOSTILE_DRIVER_V2)
        );
        // The manifests differ in their version line and nowhere else.
        let differing: Vec<(&str, &str)> = HOSTILE_DRIVER
            .manifest
            .lines()
            .zip(HOSTILE_DRIVER_V2.manifest.lines())
            .filter(|(v1, v2)| v1 != v2)
            .collect();
        assert_eq!(differing, [("version = \"0.1.0\"", "version = \"2.0.0\"")]);
        assert_eq!(
            HOSTILE_DRIVER.manifest.lines().count(),
            HOSTILE_DRIVER_V2.manifest.lines().count()
        );
    }

    #[test]
    fn the_core_module_is_a_valid_module_exporting_one_function() {
        Validator::new_with_features(WasmFeatures::all())
            .validate_all(CORE_MODULE)
            .expect("a valid core module");
        assert!(!CORE_MODULE.starts_with(&COMPONENT_HEADER));
        let mut encoding = None;
        let mut exports = Vec::new();
        for payload in Parser::new(0).parse_all(CORE_MODULE) {
            match payload.expect("a well-formed module") {
                Payload::Version { encoding: found, .. } => encoding = Some(found),
                Payload::ExportSection(section) => {
                    for export in section {
                        let export = export.expect("an export");
                        exports.push((export.name.to_owned(), export.kind));
                    }
                }
                _ => {}
            }
        }
        assert_eq!(encoding, Some(Encoding::Module));
        assert_eq!(exports, [("run".to_owned(), ExternalKind::Func)]);
    }
}
