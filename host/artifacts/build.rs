//! Compiles the plugin crates to wasm32-wasip2 components as part of the
//! normal build, so `cargo build` is the only step and the host embeds
//! components that match the sources. Each component is embedded with its
//! manifest, the `plugin.toml` beside its Cargo.toml, whose `id` and
//! `version` the build checks against the crate (see [`checked_manifest`]).
//!
//! Modelled on wasmtime's `crates/test-programs/artifacts/build.rs`, with
//! three differences that matter here:
//!
//! - The nested cargo gets its own target directory, `<target>/wasm-guests`:
//!   the outer cargo holds the lock on its own build directory for the whole
//!   build, and a directory outside `OUT_DIR` is shared by dev, test and
//!   release builds instead of each rebuilding every component.
//! - Each component is built by its own cargo invocation: cargo unifies the
//!   features of one invocation, and a plugin built together with a plugin
//!   of another world would see both worlds enabled in the SDK.
//! - The environment cargo gives build scripts is scrubbed (see
//!   [`scrubbed_cargo`]), so the outer build's flags, profile and wrappers do
//!   not leak into, or break, the wasm build.
//!
//! One crate may also be built a second time with other cargo features, as
//! another version of the same plugin (a [`Variant`], for hot-swap tests);
//! such a build gets a target directory of its own (see
//! [`build_component`]).

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

// Shared with the crate's tests, which check it without a build.
#[path = "build/manifest.rs"]
mod manifest;

/// The target every component is built for.
const WASM_TARGET: &str = "wasm32-wasip2";

/// The manifest every component crate keeps beside its Cargo.toml.
const MANIFEST_FILE: &str = "plugin.toml";

/// A component this build compiles.
struct Component {
    /// The cargo package name; also the artifact's id.
    package: &'static str,
    /// Its directory, relative to the workspace root.
    directory: &'static str,
    /// The name of the generated constant.
    constant: &'static str,
    /// What the constant's documentation says it is.
    summary: &'static str,
    /// Built only with the `test-guests` feature.
    test_guest: bool,
    /// A variant of the crate: the cargo features it is built with and the
    /// version it is, which replaces the `version` of its manifest. `None`
    /// builds the crate as it is, at its own version.
    variant: Option<Variant>,
}

/// A second build of a component crate with other cargo features.
struct Variant {
    /// The cargo features enabled.
    features: &'static str,
    /// The plugin version this build is.
    version: &'static str,
}

const COMPONENTS: &[Component] = &[
    Component {
        package: "pricing-promotions",
        directory: "plugins/pricing-promotions",
        constant: "PRICING_PROMOTIONS",
        summary: "The first-party pricing plugin: Double-11 flash sales, spend thresholds, coupons, discount cap.",
        test_guest: false,
        variant: None,
    },
    Component {
        package: "logistics-router",
        directory: "plugins/logistics-router",
        constant: "LOGISTICS_ROUTER",
        summary: "The first-party logistics plugin: nearest warehouse with stock, order splitting, carriers.",
        test_guest: false,
        variant: None,
    },
    Component {
        package: "risk-guard",
        directory: "plugins/risk-guard",
        constant: "RISK_GUARD",
        summary: "The first-party risk plugin: anti-scalper limits for flash sales.",
        test_guest: false,
        variant: None,
    },
    Component {
        package: "analytics-live",
        directory: "plugins/analytics-live",
        constant: "ANALYTICS_LIVE",
        summary: "The first-party analytics plugin: live Double-11 figures (GMV and orders per second and minute, top SKUs, flash-sale sell-through, discount spend).",
        test_guest: false,
        variant: None,
    },
    Component {
        package: "driver-vda5050",
        directory: "plugins/driver-vda5050",
        constant: "DRIVER_VDA5050",
        summary: "The first-party device driver: VDA 5050 2.0 automated guided vehicles over MQTT.",
        test_guest: false,
        variant: None,
    },
    Component {
        package: "hostile-pricing",
        directory: "host/test-programs/hostile-pricing",
        constant: "HOSTILE_PRICING",
        summary: "A pricing test guest that misbehaves as its configuration asks (loops, traps, floods).",
        test_guest: true,
        variant: None,
    },
    Component {
        package: "hostile-risk",
        directory: "host/test-programs/hostile-risk",
        constant: "HOSTILE_RISK",
        summary: "A risk test guest that misbehaves as its configuration asks (rejects, loops, traps).",
        test_guest: true,
        variant: None,
    },
    Component {
        package: "bulk-discount",
        directory: "examples/bulk-discount",
        constant: "BULK_DISCOUNT_EXAMPLE",
        summary: "The example partner plugin of examples/bulk-discount, written against the SDK alone.",
        test_guest: true,
        variant: None,
    },
    Component {
        package: "spy-pricing",
        directory: "host/test-programs/spy-pricing",
        constant: "SPY_PRICING",
        summary: "A pricing test guest that reports the first configuration its instance saw and the state it read (tenant isolation).",
        test_guest: true,
        variant: None,
    },
    Component {
        package: "foreign-import",
        directory: "host/test-programs/foreign-import",
        constant: "FOREIGN_IMPORT",
        summary: "A pricing test guest that imports `partner:net/socket`, an interface Bazaar does not provide: install must refuse it.",
        test_guest: true,
        variant: None,
    },
    Component {
        package: "tagged-pricing",
        directory: "host/test-programs/tagged-pricing",
        constant: "TAGGED_PRICING_V1",
        summary: "Version 1.0.0 of a pricing test guest that takes 1 minor unit off line 0 with code `tagged-v1` (hot swap).",
        test_guest: true,
        variant: None,
    },
    Component {
        package: "tagged-pricing",
        directory: "host/test-programs/tagged-pricing",
        constant: "TAGGED_PRICING_V2",
        summary: "Version 2.0.0 of a pricing test guest that takes 2 minor units off line 0 with code `tagged-v2` (hot swap).",
        test_guest: true,
        variant: Some(Variant { features: "v2", version: "2.0.0" }),
    },
    Component {
        package: "hostile-analytics",
        directory: "host/test-programs/hostile-analytics",
        constant: "HOSTILE_ANALYTICS",
        summary: "An analytics test guest that fails every batch or burns work per event as its configuration asks.",
        test_guest: true,
        variant: None,
    },
    Component {
        package: "hostile-driver",
        directory: "host/test-programs/hostile-driver",
        constant: "HOSTILE_DRIVER",
        summary: "Version 0.1.0 of a device-driver test guest that traps, loops or emits garbage as its configuration asks, or behaves and reports `0.1.0` as the operating mode of a device that sends `version` (hot swap).",
        test_guest: true,
        variant: None,
    },
    Component {
        package: "hostile-driver",
        directory: "host/test-programs/hostile-driver",
        constant: "HOSTILE_DRIVER_V2",
        summary: "Version 2.0.0 of the device-driver test guest `HOSTILE_DRIVER`: the same behaviours, reporting `2.0.0` as the operating mode of a device that sends `version` (hot swap).",
        test_guest: true,
        variant: Some(Variant { features: "v2", version: "2.0.0" }),
    },
];

/// Paths, relative to the workspace root, whose changes must rebuild the
/// components: the WIT, everything the components are built from, and the
/// manifests and lock file that decide how.
const WATCHED_PATHS: &[&str] =
    &["wit", "sdk", "plugins", "host/test-programs", "examples", "Cargo.toml", "Cargo.lock"];

fn main() {
    if let Err(message) = build() {
        // `cargo::error` shows the message without a panic backtrace; the
        // exit status makes sure the build stops.
        println!("cargo::error={message}");
        std::process::exit(1);
    }
}

fn build() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let workspace_root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .ok_or("host/artifacts is not two levels below the workspace root")?
        .to_path_buf();
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let with_test_guests = env::var_os("CARGO_FEATURE_TEST_GUESTS").is_some();

    for path in WATCHED_PATHS {
        println!("cargo::rerun-if-changed={}", workspace_root.join(path).display());
    }

    check_target_installed()?;
    let outer_target_dir = outer_target_dir(&out_dir)?;
    let versions = package_versions(&workspace_root)?;

    let mut generated = String::new();
    for component in COMPONENTS {
        if component.test_guest && !with_test_guests {
            continue;
        }
        let crate_version = versions
            .iter()
            .find(|(name, _)| name == component.package)
            .map(|(_, version)| version.as_str())
            .ok_or_else(|| format!("cargo metadata does not list {}", component.package))?;
        // Checked before the slow part, so a wrong manifest fails at once.
        let manifest = checked_manifest(component, &workspace_root, crate_version)?;
        let wasm = build_component(component, &workspace_root, &outer_target_dir)?;
        // Snapshots in OUT_DIR, named after the constant (one crate may make
        // several artifacts): a later build of the shared guest directory
        // (by another profile or checkout state) cannot change what this
        // build embedded.
        let file_stem = component.constant.to_ascii_lowercase();
        let embedded_wasm = out_dir.join(format!("{file_stem}.wasm"));
        fs::copy(&wasm, &embedded_wasm).map_err(|error| {
            format!("copying {} to {}: {error}", wasm.display(), embedded_wasm.display())
        })?;
        let embedded_manifest = out_dir.join(format!("{file_stem}.{MANIFEST_FILE}"));
        fs::write(&embedded_manifest, manifest)
            .map_err(|error| format!("writing {}: {error}", embedded_manifest.display()))?;
        let version = component.variant.as_ref().map_or(crate_version, |variant| variant.version);
        write_constant(&mut generated, component, version, &embedded_wasm, &embedded_manifest);
    }
    let generated_path = out_dir.join("artifacts.rs");
    fs::write(&generated_path, generated)
        .map_err(|error| format!("writing {}: {error}", generated_path.display()))
}

/// The manifest of `component`: the `plugin.toml` beside its Cargo.toml,
/// checked against the crate (see [`manifest::checked`]), with the
/// variant's version put in for a variant.
fn checked_manifest(
    component: &Component,
    workspace_root: &Path,
    crate_version: &str,
) -> Result<String, String> {
    let shown = format!("{}/{MANIFEST_FILE}", component.directory);
    let path = workspace_root.join(component.directory).join(MANIFEST_FILE);
    let text = fs::read_to_string(&path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{shown} is missing: every component ships with its manifest (id, version, kind, \
             publisher, capabilities and configuration schema) beside its Cargo.toml"
        ),
        _ => format!("reading {}: {error}", path.display()),
    })?;
    let variant = component.variant.as_ref().map(|variant| (variant.features, variant.version));
    manifest::checked(&text, &shown, component.package, crate_version, variant)
}

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name} for the build script"))
}

/// Fails with the fix when the wasm32-wasip2 standard library is missing.
fn check_target_installed() -> Result<(), String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|error| format!("running {} --print sysroot: {error}", rustc.to_string_lossy()))?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let target_lib = Path::new(&sysroot).join("lib/rustlib").join(WASM_TARGET).join("lib");
    if output.status.success() && target_lib.is_dir() {
        return Ok(());
    }
    Err(format!(
        "the {WASM_TARGET} target is not installed for this toolchain ({sysroot}), and the \
         plugins are built for it. Install it with: rustup target add {WASM_TARGET}"
    ))
}

/// The outer build's target directory. `OUT_DIR` is
/// `<target>[/<triple>]/<profile>/build/<package>-<hash>/out`, which is
/// always right, even when the target directory comes from a config file
/// rather than `CARGO_TARGET_DIR`; that variable is the fallback for an
/// unrecognised layout.
fn outer_target_dir(out_dir: &Path) -> Result<PathBuf, String> {
    let build_dir = out_dir.parent().and_then(Path::parent);
    let profile_dir = build_dir
        .filter(|build_dir| build_dir.file_name().is_some_and(|name| name == "build"))
        .and_then(Path::parent);
    if let Some(mut target_dir) = profile_dir.and_then(Path::parent) {
        let triple = env::var("TARGET").unwrap_or_default();
        if target_dir.file_name().is_some_and(|name| name == triple.as_str())
            && let Some(parent) = target_dir.parent()
        {
            target_dir = parent;
        }
        return Ok(target_dir.to_path_buf());
    }
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => Ok(PathBuf::from(dir)),
        _ => Err(format!(
            "cannot tell the target directory from OUT_DIR {} (set an absolute CARGO_TARGET_DIR)",
            out_dir.display()
        )),
    }
}

/// A `cargo` for a nested command, with the build-script environment
/// removed. What cargo hands a build script describes the *outer* build:
///
/// - `RUSTFLAGS`, `CARGO_ENCODED_RUSTFLAGS`, `CARGO_BUILD_RUSTFLAGS` and
///   `RUSTDOCFLAGS` are host flags (a `-C target-cpu=native` would break the
///   wasm build);
/// - `CARGO_TARGET_DIR` and `CARGO_BUILD_TARGET` would point the nested build
///   at the locked outer directory or another target;
/// - `CARGO_PROFILE_*` would change the profile, and `CARGO_BUILD_*` the
///   build, behind the build script's back;
/// - `RUSTC_WORKSPACE_WRAPPER` is clippy-driver under `cargo clippy`, which
///   would make every clippy run rebuild the components;
/// - `CARGO_MAKEFLAGS`, `MAKEFLAGS` and `MFLAGS` carry the outer jobserver,
///   whose descriptors the nested cargo must not share;
/// - `__CARGO_*` are cargo's internal variables (`__CARGO_FIX_PLZ` and the
///   like), and every other `CARGO_*` variable (`CARGO_PKG_*`,
///   `CARGO_CFG_*`, `CARGO_FEATURE_*`, `CARGO_MANIFEST_*`, ...) describes
///   this package, not the nested one.
///
/// Kept: `CARGO_HOME` and the network, registry, HTTP and terminal
/// settings, which say how to fetch crates and print; `RUSTC` and
/// `RUSTUP_TOOLCHAIN`, so both builds use one toolchain.
fn scrubbed_cargo() -> Command {
    const KEPT_CARGO_PREFIXES: &[&str] = &[
        "CARGO_HOME",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
    ];
    const REMOVED: &[&str] =
        &["RUSTFLAGS", "RUSTDOCFLAGS", "RUSTC_WORKSPACE_WRAPPER", "MAKEFLAGS", "MFLAGS"];
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    for (name, _) in env::vars_os() {
        let Some(name) = name.to_str() else {
            continue;
        };
        let cargo_variable = name.starts_with("CARGO") || name.starts_with("__CARGO");
        let kept = KEPT_CARGO_PREFIXES.iter().any(|prefix| name.starts_with(prefix));
        if (cargo_variable && !kept) || REMOVED.contains(&name) {
            command.env_remove(name);
        }
    }
    command
}

/// The `(name, version)` of every workspace package, from `cargo metadata`,
/// so `version` follows each plugin's own manifest however it is written.
fn package_versions(workspace_root: &Path) -> Result<Vec<(String, String)>, String> {
    let output = scrubbed_cargo()
        .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
        .arg(workspace_root.join("Cargo.toml"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| format!("running cargo metadata: {error}"))?;
    if !output.status.success() {
        return Err("cargo metadata failed; its error is above".to_owned());
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|error| format!("reading cargo metadata: {error}"))?;
    let packages = metadata["packages"].as_array().ok_or("cargo metadata has no package list")?;
    Ok(packages
        .iter()
        .filter_map(|package| {
            Some((package["name"].as_str()?.to_owned(), package["version"].as_str()?.to_owned()))
        })
        .collect())
}

/// Runs `cargo build --release --target wasm32-wasip2 -p <package>` (with
/// the variant's `--features`) and returns the component's path.
///
/// A variant builds in a target directory of its own. The output of a
/// `cdylib` is named after the crate alone, without the hash that keeps the
/// builds of other features apart, so two feature sets built in turn in one
/// directory would overwrite each other's file, and cargo, finding the file
/// newer than the sources, could take the other build's output as fresh.
fn build_component(
    component: &Component,
    workspace_root: &Path,
    outer_target_dir: &Path,
) -> Result<PathBuf, String> {
    let guests_target_dir = match &component.variant {
        None => outer_target_dir.join("wasm-guests"),
        Some(_) => outer_target_dir.join(format!(
            "wasm-guests-{}",
            component.constant.to_ascii_lowercase().replace('_', "-")
        )),
    };
    let mut command = scrubbed_cargo();
    command
        .env("CARGO_TARGET_DIR", &guests_target_dir)
        // A component is a shipped artifact: optimised, small, and without
        // unwinding, which wasm32-wasip2 does not support (the workspace's
        // release profile asks for `panic = "unwind"` for the host).
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .args(["build", "--release", "--target", WASM_TARGET, "--package", component.package])
        .args(component.variant.iter().flat_map(|variant| ["--features", variant.features]))
        .arg("--manifest-path")
        .arg(workspace_root.join("Cargo.toml"))
        .current_dir(workspace_root)
        // The build script's stdout is read by cargo as directives; the
        // nested cargo's output goes to stderr, shown when the build fails.
        .stdout(std::io::stderr())
        .stderr(Stdio::inherit());
    eprintln!("building {} for {WASM_TARGET}: {command:?}", component.constant);
    let status = command
        .status()
        .map_err(|error| format!("running cargo for {}: {error}", component.package))?;
    if !status.success() {
        return Err(format!(
            "building the {} component ({}) for {WASM_TARGET} failed (see the cargo output \
             above; directory {})",
            component.package, component.constant, component.directory
        ));
    }
    let wasm = guests_target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", component.package.replace('-', "_")));
    if !wasm.is_file() {
        return Err(format!("cargo succeeded but {} is missing", wasm.display()));
    }
    Ok(wasm)
}

/// Appends the `pub const` of one component to the generated source.
fn write_constant(
    generated: &mut String,
    component: &Component,
    version: &str,
    wasm: &Path,
    manifest: &Path,
) {
    let feature_gate =
        if component.test_guest { "#[cfg(feature = \"test-guests\")]\n" } else { "" };
    let features = match &component.variant {
        None => String::new(),
        Some(variant) => format!(" with `--features {}`", variant.features),
    };
    generated.push_str(&format!(
        "/// {summary}\n\
         ///\n\
         /// Built from `{directory}`{features}, version {version}.\n\
         {feature_gate}pub const {constant}: Artifact = Artifact {{\n    \
             id: {id:?},\n    \
             version: {version:?},\n    \
             wasm: include_bytes!({wasm_path:?}),\n    \
             manifest: include_str!({manifest_path:?}),\n\
         }};\n\n",
        summary = component.summary,
        directory = component.directory,
        constant = component.constant,
        id = component.package,
        wasm_path = wasm.display().to_string(),
        manifest_path = manifest.display().to_string(),
    ));
}
