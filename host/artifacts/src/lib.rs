//! The plugin components, compiled to wasm32-wasip2 by this crate's build
//! script and embedded as constants, the way wasmtime's test programs are.
//!
//! The first-party plugins are always here: the `bazaar` binary installs
//! them on a fresh node. The hostile test guests and the example partner
//! plugin are built and embedded only with the `test-guests` feature, so
//! the production binary carries no component written to misbehave.
//!
//! Each component is a complete, self-contained component binary: the host
//! compiles it with wasmtime and instantiates it against its own imports.

/// A component ready to install: what it is, which version, and its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// The plugin id: the crate's package name, such as "pricing-promotions".
    pub id: &'static str,
    /// The crate's version, from its own Cargo.toml; recorded with every
    /// result the plugin produces.
    pub version: &'static str,
    /// The component binary (wasm32-wasip2, component model).
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// The first-party plugins, in a fixed order.
pub const FIRST_PARTY: &[Artifact] = &[PRICING_PROMOTIONS, LOGISTICS_ROUTER, RISK_GUARD];
