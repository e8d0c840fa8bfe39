//! Installing a component: the checks before compiling, the grant and
//! world checks of a compiled component, and the compiled-artifact cache.

// Prices are written as yuan_fen: 200_00 is 200.00 CNY.
#![allow(clippy::inconsistent_digit_grouping)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bazaar_artifacts::{LOGISTICS_ROUTER, PRICING_PROMOTIONS, RISK_GUARD};
use bazaar_kernel::model::{Capability, PluginKind};
use bazaar_runtime::{
    ArtifactCache, CacheOutcome, CompiledComponent, LoadError, LoadedPlugin, PluginLimits, Runtime,
    RuntimeLimits,
};
use common::{call, cart, plugin_ref, runtime, test_limits};
use sha2::{Digest, Sha256};

const THRESHOLD_CONFIG: &str = r#"{
    "currency": "CNY",
    "spend_thresholds": [{ "every": "300.00", "off": "50.00" }]
}"#;

fn grants(capabilities: &[Capability]) -> BTreeSet<Capability> {
    capabilities.iter().copied().collect()
}

fn every_grant() -> BTreeSet<Capability> {
    grants(&Capability::ALL)
}

fn content_hash(wasm: &[u8]) -> String {
    Sha256::digest(wasm).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn compile(runtime: &Runtime, wasm: &[u8]) -> CompiledComponent {
    runtime.compile(wasm).expect("the component compiles")
}

/// Every artifact file (not sidecar) under the cache directory.
fn artifact_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).expect("the cache directory is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            found.extend(artifact_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "cwasm") {
            found.push(path);
        }
    }
    found
}

/// Prices a 400.00 CNY cart with pricing-promotions loaded from `compiled`
/// and returns the amount taken off.
fn promotion_off(runtime: &Runtime, compiled: &CompiledComponent) -> i64 {
    let loaded = runtime
        .load(
            plugin_ref(&PRICING_PROMOTIONS),
            PluginKind::Pricing,
            compiled,
            PluginLimits::default(),
        )
        .expect("pricing-promotions loads");
    let LoadedPlugin::Pricing(plugin) = loaded else {
        panic!("loaded as {:?}", loaded.kind());
    };
    let cart = cart("store-a", &[("TEA-250G", 2, 200_00)]);
    let outcome =
        plugin.pricer().price_cart(call("store-a", Some(THRESHOLD_CONFIG), Arc::default()), &cart);
    outcome.result.expect("the cart is priced").iter().map(|a| a.amount_off_minor).sum()
}

#[test]
fn a_core_module_is_refused_by_compile() {
    let runtime = runtime(test_limits());

    let refused = runtime.compile(b"\0asm\x01\0\0\0");

    assert_eq!(refused.err(), Some(LoadError::CoreModule));
}

#[test]
fn bytes_that_are_not_webassembly_are_refused_by_compile() {
    let runtime = runtime(test_limits());

    let refused = runtime.compile(b"PK\x03\x04 a zip archive");

    assert_eq!(refused.err(), Some(LoadError::NotWasm));
}

#[test]
fn a_component_over_the_size_limit_is_refused_before_the_compiler_runs() {
    // With a 1 ms budget any compilation would overrun: the size refusal
    // shows the compiler was never started.
    let runtime =
        runtime(RuntimeLimits { component_bytes_max: 1024, compile_budget_ms: 1, ..test_limits() });

    let refused = runtime.compile(PRICING_PROMOTIONS.wasm);

    assert_eq!(
        refused.err(),
        Some(LoadError::TooLarge { size_bytes: PRICING_PROMOTIONS.wasm.len(), limit_bytes: 1024 })
    );
}

#[test]
fn the_logistics_component_checked_as_pricing_is_refused_for_the_wrong_world() {
    let runtime = runtime(test_limits());
    let compiled = compile(&runtime, LOGISTICS_ROUTER.wasm);

    let refused = runtime.check(&compiled, PluginKind::Pricing, &every_grant());

    match refused {
        Err(LoadError::WrongWorld { world, detail }) => {
            assert_eq!(world, "pricing");
            assert!(detail.contains("bazaar:commerce/pricer"), "{detail}");
        }
        other => panic!("expected a wrong-world refusal, got {other:?}"),
    }
}

#[test]
fn risk_guard_checked_without_the_state_grant_is_refused_naming_state() {
    let runtime = runtime(test_limits());
    let compiled = compile(&runtime, RISK_GUARD.wasm);

    let refused =
        runtime.check(&compiled, PluginKind::Risk, &grants(&[Capability::Log, Capability::Config]));

    assert_eq!(
        refused.err(),
        Some(LoadError::NotGranted {
            interface: Capability::State.interface().to_owned(),
            capability: Capability::State,
        })
    );
}

#[test]
fn risk_guard_with_every_grant_passes_and_reports_the_capabilities_it_uses() {
    let runtime = runtime(test_limits());
    let compiled = compile(&runtime, RISK_GUARD.wasm);

    let report = runtime.check(&compiled, PluginKind::Risk, &every_grant()).expect("it passes");

    assert_eq!(report.capabilities_used, every_grant());
    assert_eq!(report.exports, vec![PluginKind::Risk.export().to_owned()]);
    for capability in Capability::ALL {
        assert!(report.imports.iter().any(|import| import == capability.interface()));
    }
    assert!(report.imports.iter().any(|import| import.starts_with("wasi:cli/")));
}

#[test]
fn a_plugin_whose_code_never_touches_state_does_not_import_it_or_need_its_grant() {
    let runtime = runtime(test_limits());
    let compiled = compile(&runtime, PRICING_PROMOTIONS.wasm);
    let log_and_config = grants(&[Capability::Log, Capability::Config]);

    let report = runtime.check(&compiled, PluginKind::Pricing, &log_and_config).expect("it passes");

    assert_eq!(report.capabilities_used, log_and_config);
    assert!(!report.imports.iter().any(|import| import == Capability::State.interface()));
}

#[test]
fn a_component_compiled_by_another_runtime_is_refused() {
    let compiling = runtime(test_limits());
    let compiled = compile(&compiling, PRICING_PROMOTIONS.wasm);
    let other = runtime(test_limits());

    let checked = other.check(&compiled, PluginKind::Pricing, &every_grant());
    let loaded = other.load(
        plugin_ref(&PRICING_PROMOTIONS),
        PluginKind::Pricing,
        &compiled,
        PluginLimits::default(),
    );

    assert_eq!(checked.err(), Some(LoadError::CompiledElsewhere));
    assert_eq!(loaded.err(), Some(LoadError::CompiledElsewhere));
}

#[test]
fn a_cached_artifact_misses_once_then_hits_in_another_runtime_and_prices_correctly() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cache = ArtifactCache::open(dir.path().join("artifacts")).expect("the cache opens");
    let hash = content_hash(PRICING_PROMOTIONS.wasm);
    let first = runtime(test_limits());
    let second = runtime(test_limits());

    let (compiled, outcome) =
        first.compile_cached(PRICING_PROMOTIONS.wasm, &hash, &cache).expect("it compiles");
    assert_eq!(outcome, CacheOutcome::Miss);
    assert_eq!(promotion_off(&first, &compiled), 50_00);
    assert_eq!(artifact_files(cache.dir()).len(), 1);

    let (cached, outcome) =
        second.compile_cached(PRICING_PROMOTIONS.wasm, &hash, &cache).expect("it loads");
    assert_eq!(outcome, CacheOutcome::Hit);
    assert_eq!(promotion_off(&second, &cached), 50_00);
}

#[test]
fn a_tampered_artifact_is_detected_recompiled_and_rewritten() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cache = ArtifactCache::open(dir.path().to_path_buf()).expect("the cache opens");
    let hash = content_hash(PRICING_PROMOTIONS.wasm);
    let runtime = runtime(test_limits());
    runtime.compile_cached(PRICING_PROMOTIONS.wasm, &hash, &cache).expect("it compiles");
    let artifact = artifact_files(cache.dir()).pop().expect("the artifact was written");
    let mut bytes = fs::read(&artifact).expect("the artifact is readable");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&artifact, &bytes).expect("the artifact is writable");

    let (compiled, outcome) =
        runtime.compile_cached(PRICING_PROMOTIONS.wasm, &hash, &cache).expect("it recompiles");

    assert_eq!(outcome, CacheOutcome::Miss);
    assert_eq!(promotion_off(&runtime, &compiled), 50_00);
    assert_ne!(fs::read(&artifact).expect("the artifact is readable"), bytes, "rewritten");
    let (_, outcome) =
        runtime.compile_cached(PRICING_PROMOTIONS.wasm, &hash, &cache).expect("it loads");
    assert_eq!(outcome, CacheOutcome::Hit);
}

#[test]
fn a_truncated_artifact_is_recompiled_rather_than_loaded() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cache = ArtifactCache::open(dir.path().to_path_buf()).expect("the cache opens");
    let hash = content_hash(PRICING_PROMOTIONS.wasm);
    let runtime = runtime(test_limits());
    runtime.compile_cached(PRICING_PROMOTIONS.wasm, &hash, &cache).expect("it compiles");
    let artifact = artifact_files(cache.dir()).pop().expect("the artifact was written");
    let length = fs::metadata(&artifact).expect("the artifact exists").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&artifact)
        .and_then(|file| file.set_len(length / 2))
        .expect("the artifact can be truncated");

    let (compiled, outcome) =
        runtime.compile_cached(PRICING_PROMOTIONS.wasm, &hash, &cache).expect("it recompiles");

    assert_eq!(outcome, CacheOutcome::Miss);
    assert_eq!(promotion_off(&runtime, &compiled), 50_00);
    assert_eq!(fs::metadata(&artifact).expect("the artifact exists").len(), length);
}

#[test]
fn a_runtime_whose_settings_change_compiled_code_never_loads_anothers_artifact() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cache = ArtifactCache::open(dir.path().to_path_buf()).expect("the cache opens");
    let hash = content_hash(PRICING_PROMOTIONS.wasm);
    let unmetered = runtime(test_limits());
    // Fuel metering adds a counter to every block of compiled code.
    let metered = runtime(RuntimeLimits { fuel_per_call: Some(100_000_000), ..test_limits() });
    // The pool's memory cap is checked at run time; the code is the same.
    let larger_pool = runtime(RuntimeLimits { memory_bytes_max: 128 << 20, ..test_limits() });

    let outcomes = [&unmetered, &metered, &larger_pool].map(|runtime| {
        runtime.compile_cached(PRICING_PROMOTIONS.wasm, &hash, &cache).expect("it compiles").1
    });

    assert_eq!(outcomes, [CacheOutcome::Miss, CacheOutcome::Miss, CacheOutcome::Hit]);
    assert_eq!(artifact_files(cache.dir()).len(), 2);
}

#[test]
fn a_content_hash_that_is_not_the_components_is_refused_and_nothing_is_cached() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cache = ArtifactCache::open(dir.path().to_path_buf()).expect("the cache opens");
    let runtime = runtime(test_limits());
    let other_hash = content_hash(LOGISTICS_ROUTER.wasm);

    let wrong = runtime.compile_cached(PRICING_PROMOTIONS.wasm, &other_hash, &cache);
    let escaping = runtime.compile_cached(PRICING_PROMOTIONS.wasm, "../../escape", &cache);

    assert!(matches!(wrong, Err(LoadError::ContentHashMismatch { .. })), "{wrong:?}");
    assert!(matches!(escaping, Err(LoadError::ContentHashMismatch { .. })), "{escaping:?}");
    assert!(artifact_files(cache.dir()).is_empty());
}
