//! `bazaar:commerce/config`: the calling store's configuration of the
//! plugin.
//!
//! The configuration is handed in with each call (stores configure a plugin
//! independently, and one instance serves every store), and dropped when
//! the call ends so the instance holds no store's settings between calls.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::bindings::config;

/// The configuration visible to the call under way.
#[derive(Default)]
pub(crate) struct ConfigCtx {
    /// The calling store's JSON document, or `None` when the store gave
    /// none or no call is under way.
    config_json: Option<Arc<str>>,
}

impl ConfigCtx {
    /// Makes `config_json` visible to the call that starts now.
    pub(crate) fn begin_call(&mut self, config_json: Option<Arc<str>>) {
        self.config_json = config_json;
    }

    /// Forgets the call's configuration.
    pub(crate) fn finish_call(&mut self) {
        self.config_json = None;
    }
}

impl config::Host for ConfigCtx {
    fn get(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.config_json.as_deref().map(str::to_owned))
    }
}

/// Adds `bazaar:commerce/config` to `linker`, reading from the context
/// `get` picks out of the store data.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ConfigCtx,
) -> wasmtime::Result<()> {
    config::add_to_linker::<T, HasConfig>(linker, get)
}

struct HasConfig;

impl HasData for HasConfig {
    type Data<'a> = &'a mut ConfigCtx;
}
