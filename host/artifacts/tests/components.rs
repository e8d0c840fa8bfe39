//! The embedded artifacts are real components with the world they claim:
//! the right header, one exported extension point, and no imports besides
//! Bazaar's interfaces and the WASI interfaces Rust's standard library uses.

use bazaar_artifacts::{Artifact, FIRST_PARTY, LOGISTICS_ROUTER, PRICING_PROMOTIONS, RISK_GUARD};
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

fn all_artifacts() -> Vec<Artifact> {
    let mut artifacts = FIRST_PARTY.to_vec();
    #[cfg(feature = "test-guests")]
    artifacts.extend([
        bazaar_artifacts::HOSTILE_PRICING,
        bazaar_artifacts::HOSTILE_RISK,
        bazaar_artifacts::BULK_DISCOUNT_EXAMPLE,
    ]);
    artifacts
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
fn each_plugin_exports_exactly_its_own_extension_point() {
    let (_, pricing_exports) = interface_names(PRICING_PROMOTIONS.wasm);
    assert_eq!(pricing_exports, ["bazaar:commerce/pricer@0.1.0"]);
    let (_, logistics_exports) = interface_names(LOGISTICS_ROUTER.wasm);
    assert_eq!(logistics_exports, ["bazaar:commerce/router@0.1.0"]);
    let (_, risk_exports) = interface_names(RISK_GUARD.wasm);
    assert_eq!(risk_exports, ["bazaar:commerce/risk-assessor@0.1.0"]);
    #[cfg(feature = "test-guests")]
    {
        let (_, hostile_exports) = interface_names(bazaar_artifacts::HOSTILE_PRICING.wasm);
        assert_eq!(hostile_exports, ["bazaar:commerce/pricer@0.1.0"]);
        let (_, hostile_risk_exports) = interface_names(bazaar_artifacts::HOSTILE_RISK.wasm);
        assert_eq!(hostile_risk_exports, ["bazaar:commerce/risk-assessor@0.1.0"]);
    }
}

#[test]
fn components_import_only_bazaar_interfaces_and_std_wasi() {
    for artifact in all_artifacts() {
        let (imports, _) = interface_names(artifact.wasm);
        assert!(
            imports.iter().any(|name| name.starts_with("bazaar:commerce/config@")),
            "{} should read its configuration: {imports:?}",
            artifact.id
        );
        for name in &imports {
            let bazaar = name.starts_with("bazaar:commerce/");
            let wasi = WASI_PREFIXES.iter().any(|prefix| name.starts_with(prefix));
            assert!(bazaar || wasi, "{} imports {name}", artifact.id);
            assert!(
                !name.starts_with("bazaar:commerce/pricer")
                    && !name.starts_with("bazaar:commerce/router")
                    && !name.starts_with("bazaar:commerce/risk-assessor"),
                "{} imports an extension point: {name}",
                artifact.id
            );
        }
    }
}

#[test]
fn versions_come_from_the_plugin_manifests() {
    assert_eq!(PRICING_PROMOTIONS.id, "pricing-promotions");
    assert_eq!(LOGISTICS_ROUTER.id, "logistics-router");
    assert_eq!(RISK_GUARD.id, "risk-guard");
    assert_eq!(RISK_GUARD.version, "0.1.0");
    for artifact in all_artifacts() {
        let parts: Vec<&str> = artifact.version.split('.').collect();
        assert_eq!(parts.len(), 3, "{}: {:?}", artifact.id, artifact.version);
        assert!(parts.iter().all(|part| part.parse::<u64>().is_ok()), "{}", artifact.version);
    }
}
