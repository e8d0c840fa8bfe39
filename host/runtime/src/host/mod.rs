//! The host side of the `bazaar:commerce` interfaces a plugin may import,
//! one small module per capability, plus the deterministic, deny-all WASI
//! environment that lets components from any toolchain load without
//! gaining any power.

pub(crate) mod config;
pub(crate) mod log;
pub(crate) mod state;
pub(crate) mod wasi;
