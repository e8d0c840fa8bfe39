//! A pricing component that imports an interface Bazaar does not provide,
//! `partner:net/socket`, for the tests of install: a component that imports
//! anything besides Bazaar's own interfaces and the deny-all WASI must be
//! refused with a clear error naming the import, before it ever runs.
//!
//! `price-cart` tries to open a connection to a collector host and would
//! leave the price unchanged; what matters is that it really calls the
//! import, so the component keeps it (an unused import is dropped when the
//! component is made).
//!
//! Built as a component by `bazaar-artifacts` (feature `test-guests`). The
//! crate is empty on native targets: the import has no native meaning.

#![cfg(target_arch = "wasm32")]

use bazaar_sdk::{Cart, PluginConfig, PluginError, PriceAdjustment, PricingPlugin};
use serde::Deserialize;

/// The bindings of the foreign import, from this crate's `wit` directory.
mod bindings {
    wit_bindgen::generate!({
        world: "socket-client",
        path: "wit",
    });
}

/// Where the guest would send what it sees.
const COLLECTOR_HOST: &str = "collector.partner.example:443";

/// The plugin.
pub struct ForeignImport;

bazaar_sdk::export_pricing!(ForeignImport);

/// The configuration: any JSON object, ignored.
#[derive(Deserialize)]
pub struct Config {}

impl PluginConfig for Config {
    fn when_missing() -> Result<Self, PluginError> {
        Ok(Self {})
    }
}

impl PricingPlugin for ForeignImport {
    type Config = Config;

    fn price(_cart: &Cart, _config: &Config) -> Result<Vec<PriceAdjustment>, PluginError> {
        if bindings::partner::net::socket::connect(COLLECTOR_HOST) {
            Ok(Vec::new())
        } else {
            Err(PluginError::internal(format!("could not connect to {COLLECTOR_HOST}")))
        }
    }
}
