//! The plugin components, compiled to wasm32-wasip2 by this crate's build
//! script and embedded as constants, the way wasmtime's test programs are,
//! each with the manifest (`plugin.toml`) it is published with.
//!
//! The first-party plugins are always here: the `bazaar` binary installs
//! them on a fresh node. The test guests and the example partner plugin are
//! built and embedded only with the `test-guests` feature, so the
//! production binary carries no component written to misbehave.
//!
//! Each component is a complete, self-contained component binary: the host
//! compiles it with wasmtime and instantiates it against its own imports.

/// A component ready to install: what it is, which version, its bytes and
/// its manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// The plugin id: the crate's package name, such as "pricing-promotions".
    pub id: &'static str,
    /// The plugin's version: the crate's, from its own Cargo.toml (or the
    /// variant's, for a crate built a second time as another version);
    /// recorded with every result the plugin produces.
    pub version: &'static str,
    /// The component binary (wasm32-wasip2, component model).
    pub wasm: &'static [u8],
    /// The text of the plugin's `plugin.toml`: kind, publisher,
    /// capabilities, limits and configuration schema. Its `id` and
    /// `version` are this artifact's; the build refuses a manifest that
    /// disagrees with its crate.
    pub manifest: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// The first-party plugins, in a fixed order.
pub const FIRST_PARTY: &[Artifact] =
    &[PRICING_PROMOTIONS, LOGISTICS_ROUTER, RISK_GUARD, ANALYTICS_LIVE, DRIVER_VDA5050];

/// Every component built for tests (the example partner plugin included),
/// in a fixed order.
#[cfg(feature = "test-guests")]
pub const TEST_GUESTS: &[Artifact] = &[
    HOSTILE_PRICING,
    HOSTILE_RISK,
    BULK_DISCOUNT_EXAMPLE,
    SPY_PRICING,
    FOREIGN_IMPORT,
    TAGGED_PRICING_V1,
    TAGGED_PRICING_V2,
    HOSTILE_ANALYTICS,
    HOSTILE_DRIVER,
    HOSTILE_DRIVER_V2,
];

/// A valid WebAssembly *core module*, not a component: the smallest module
/// with one exported function, `run: func() -> ()`, which does nothing.
/// Install must refuse it, since a plugin is a component.
///
/// The 33 bytes, section by section:
///
/// ```text
/// 00 61 73 6d              magic: "\0asm"
/// 01 00 00 00              version 1, layer 0: a core module (a component
///                          has version 0x0d and layer 1)
/// 01 04 01 60 00 00        type section (id 1), 4 bytes: 1 type,
///                          a function type (0x60) with 0 params, 0 results
/// 03 02 01 00              function section (id 3), 2 bytes: 1 function,
///                          of type 0
/// 07 07 01 03 72 75 6e 00 00
///                          export section (id 7), 7 bytes: 1 export,
///                          name of 3 bytes "run", kind function (0x00),
///                          function index 0
/// 0a 04 01 02 00 0b        code section (id 10), 4 bytes: 1 body of
///                          2 bytes: 0 local declarations, `end` (0x0b)
/// ```
#[cfg(feature = "test-guests")]
pub const CORE_MODULE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, // magic
    0x01, 0x00, 0x00, 0x00, // version 1 (core module)
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: [] -> []
    0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
    0x07, 0x07, 0x01, 0x03, 0x72, 0x75, 0x6e, 0x00, 0x00, // export "run" = function 0
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code section: an empty body
];
