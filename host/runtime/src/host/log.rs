//! `bazaar:commerce/log`: a plugin's diagnostic lines, written to
//! `tracing` tagged with the plugin and the calling store.
//!
//! Plugins run on the order path at flash-sale rates, so logging is
//! bounded per call: lines beyond the limit are dropped and counted (the
//! count is returned with the call's outcome for metrics), long lines are
//! truncated, and control characters are blanked so a plugin cannot forge
//! the host's log lines.

use bazaar_kernel::model::{PluginId, StoreId};
use wasmtime::component::{HasData, Linker};

use crate::bindings::log;
use crate::text::sanitize_for_log;

/// The `tracing` target of plugin log lines, so operators can filter them.
pub const PLUGIN_LOG_TARGET: &str = "bazaar::plugin";

/// Per-instance logging state.
pub(crate) struct LogCtx {
    /// The plugin whose lines these are.
    plugin: PluginId,
    /// The store of the call under way, if any.
    store: Option<StoreId>,
    /// Lines one call may write.
    lines_per_call_max: u32,
    /// Bytes one line may have.
    line_bytes_max: usize,
    /// Lines written by the call under way.
    lines_written: u32,
    /// Lines the call under way tried to write beyond the limit.
    lines_dropped: u32,
}

impl LogCtx {
    /// Logging for `plugin` within the given per-call limits.
    pub(crate) fn new(plugin: PluginId, lines_per_call_max: u32, line_bytes_max: usize) -> Self {
        Self {
            plugin,
            store: None,
            lines_per_call_max,
            line_bytes_max,
            lines_written: 0,
            lines_dropped: 0,
        }
    }

    /// Starts counting for a call made on behalf of `store`.
    pub(crate) fn begin_call(&mut self, store: StoreId) {
        self.store = Some(store);
        self.lines_written = 0;
        self.lines_dropped = 0;
    }

    /// Ends the call; returns how many lines it had dropped.
    pub(crate) fn finish_call(&mut self) -> u32 {
        self.store = None;
        std::mem::take(&mut self.lines_dropped)
    }
}

impl log::Host for LogCtx {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        if self.lines_written >= self.lines_per_call_max {
            self.lines_dropped = self.lines_dropped.saturating_add(1);
            return Ok(());
        }
        self.lines_written += 1;
        let message = sanitize_for_log(message, self.line_bytes_max);
        let plugin = self.plugin.as_str();
        let store = self.store.as_ref().map_or("", StoreId::as_str);
        match level {
            log::Level::Debug => {
                tracing::debug!(target: PLUGIN_LOG_TARGET, plugin, store, "{message}");
            }
            log::Level::Info => {
                tracing::info!(target: PLUGIN_LOG_TARGET, plugin, store, "{message}");
            }
            log::Level::Warn => {
                tracing::warn!(target: PLUGIN_LOG_TARGET, plugin, store, "{message}");
            }
            log::Level::Error => {
                tracing::error!(target: PLUGIN_LOG_TARGET, plugin, store, "{message}");
            }
        }
        Ok(())
    }
}

/// Adds `bazaar:commerce/log` to `linker`, writing through the context
/// `get` picks out of the store data.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogCtx,
) -> wasmtime::Result<()> {
    log::add_to_linker::<T, HasLog>(linker, get)
}

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = &'a mut LogCtx;
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Host as _;

    fn ctx() -> LogCtx {
        let mut ctx = LogCtx::new(PluginId::new("test-plugin").unwrap(), 2, 8);
        ctx.begin_call(StoreId::new("store-a").unwrap());
        ctx
    }

    #[test]
    fn lines_beyond_the_per_call_limit_are_dropped_and_counted() {
        let mut ctx = ctx();
        for _ in 0..5 {
            ctx.log(log::Level::Info, "hello".into()).unwrap();
        }
        assert_eq!(ctx.finish_call(), 3);
    }

    #[test]
    fn each_call_starts_with_a_fresh_line_budget() {
        let mut ctx = ctx();
        for _ in 0..3 {
            ctx.log(log::Level::Warn, "hello".into()).unwrap();
        }
        assert_eq!(ctx.finish_call(), 1);
        ctx.begin_call(StoreId::new("store-b").unwrap());
        ctx.log(log::Level::Warn, "hello".into()).unwrap();
        assert_eq!(ctx.finish_call(), 0);
    }
}
