//! What the wasmtime `Store` of one plugin instance holds: the WASI
//! context, the host interfaces' per-call state, and the limiter that
//! enforces the instance's memory cap.
//!
//! An instance serves many calls, so everything about a call (store,
//! configuration, state, clock, seed) is installed when the call begins and
//! removed when it ends; between calls the instance pins no store's data.

use std::sync::Arc;

use bazaar_kernel::PluginStateMap;
use bazaar_kernel::model::{PluginId, StoreId};
use wasmtime::ResourceLimiter;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::host::config::{self, ConfigCtx};
use crate::host::log::{self, LogCtx};
use crate::host::state::{self, PendingWrite, StateCtx};
use crate::host::wasi::{self, CallEnvironment, FrozenTimers};
use crate::limits::RuntimeLimits;

/// Data of the store of one plugin instance.
pub(crate) struct InstanceState {
    /// The deny-all WASI context.
    wasi: WasiCtx,
    /// Resources the guest holds (WASI streams, pollables).
    table: ResourceTable,
    /// The clocks and random streams, reset per call.
    environment: CallEnvironment,
    /// `bazaar:commerce/log`.
    log: LogCtx,
    /// `bazaar:commerce/config`.
    config: ConfigCtx,
    /// `bazaar:commerce/state`.
    state: StateCtx,
    /// The instance's memory and table caps.
    pub(crate) limiter: InstanceLimiter,
}

/// The part of a call that outlives it: what it wrote and what it broke.
#[derive(Default)]
pub(crate) struct FinishedCall {
    /// The call's state writes, in key order.
    pub(crate) writes: Vec<PendingWrite>,
    /// Log lines the call tried to write beyond its limit.
    pub(crate) log_lines_dropped: u32,
    /// Whether the limiter refused the call a memory growth.
    pub(crate) memory_limit_hit: bool,
}

/// What a call brings into the instance.
pub(crate) struct CallInputs {
    /// The store the call is made for.
    pub(crate) store: StoreId,
    /// The store's configuration of the plugin.
    pub(crate) config_json: Option<Arc<str>>,
    /// The store's state of the plugin.
    pub(crate) state: Arc<PluginStateMap>,
    /// The order's timestamp, milliseconds since the Unix epoch.
    pub(crate) now_ms: u64,
    /// Seed of the call's randomness.
    pub(crate) random_seed: u64,
}

impl InstanceState {
    /// Fresh store data for an instance of `plugin` whose memories may
    /// hold `memory_bytes_max` in all.
    pub(crate) fn new(plugin: &PluginId, limits: &RuntimeLimits, memory_bytes_max: u64) -> Self {
        let (environment, wasi) = CallEnvironment::new();
        Self {
            wasi,
            table: ResourceTable::new(),
            environment,
            log: LogCtx::new(
                plugin.clone(),
                limits.log_lines_per_call_max,
                limits.log_line_bytes_max,
            ),
            config: ConfigCtx::default(),
            state: StateCtx::default(),
            limiter: InstanceLimiter::new(memory_bytes_max, limits.table_elements_max),
        }
    }

    /// Installs a call's inputs.
    pub(crate) fn begin_call(&mut self, inputs: CallInputs) {
        self.environment.begin_call(inputs.now_ms, inputs.random_seed);
        self.log.begin_call(inputs.store);
        self.config.begin_call(inputs.config_json);
        self.state.begin_call(inputs.state);
        self.limiter.memory_limit_hit = false;
    }

    /// Removes the call's inputs (dropping the store's shared maps, so the
    /// kernel's copy-on-write state is not cloned later) and returns what
    /// the call left behind.
    pub(crate) fn finish_call(&mut self) -> FinishedCall {
        self.config.finish_call();
        FinishedCall {
            writes: self.state.finish_call(),
            log_lines_dropped: self.log.finish_call(),
            memory_limit_hit: self.limiter.memory_limit_hit,
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Adds every interface a plugin may import to `linker`: WASI (deny-all)
/// and Bazaar's log, config and state.
pub(crate) fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wasi::add_to_linker(linker, |data| FrozenTimers {
        environment: &data.environment,
        table: &mut data.table,
    })?;
    log::add_to_linker(linker, |data| &mut data.log)?;
    config::add_to_linker(linker, |data| &mut data.config)?;
    state::add_to_linker(linker, |data| &mut data.state)?;
    Ok(())
}

/// Caps the memory and tables of one instance. A refused memory growth is
/// remembered, so the trap that usually follows (an allocator aborting)
/// is reported as the memory limit it really is.
pub(crate) struct InstanceLimiter {
    /// Linear memory the instance may hold, over all its memories.
    memory_bytes_max: u64,
    /// Elements one table may hold.
    table_elements_max: usize,
    /// Linear memory the instance holds now.
    memory_bytes: u64,
    /// Bytes of the last growth allowed, to undo if it then fails.
    pending_growth_bytes: u64,
    /// Whether a growth was refused since the call began.
    memory_limit_hit: bool,
}

impl InstanceLimiter {
    fn new(memory_bytes_max: u64, table_elements_max: usize) -> Self {
        Self {
            memory_bytes_max,
            table_elements_max,
            memory_bytes: 0,
            pending_growth_bytes: 0,
            memory_limit_hit: false,
        }
    }
}

fn bytes_u64(bytes: usize) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = bytes_u64(desired.saturating_sub(current));
        let total = self.memory_bytes.saturating_add(growth);
        if total > self.memory_bytes_max {
            self.memory_limit_hit = true;
            return Ok(false);
        }
        self.memory_bytes = total;
        self.pending_growth_bytes = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_bytes = self.memory_bytes.saturating_sub(self.pending_growth_bytes);
        self.pending_growth_bytes = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    fn limiter(memory_bytes_max: u64) -> InstanceLimiter {
        InstanceLimiter::new(memory_bytes_max, RuntimeLimits::default().table_elements_max)
    }

    #[test]
    fn growth_past_the_cap_is_refused_and_remembered() {
        let mut limiter = limiter(4 * MIB as u64);
        assert!(limiter.memory_growing(0, 2 * MIB, None).unwrap());
        assert!(!limiter.memory_limit_hit);
        assert!(!limiter.memory_growing(2 * MIB, 5 * MIB, None).unwrap());
        assert!(limiter.memory_limit_hit);
    }

    #[test]
    fn the_cap_counts_every_memory_of_the_instance() {
        let mut limiter = limiter(4 * MIB as u64);
        assert!(limiter.memory_growing(0, 3 * MIB, None).unwrap());
        assert!(!limiter.memory_growing(0, 2 * MIB, None).unwrap());
    }

    #[test]
    fn a_failed_growth_gives_its_bytes_back() {
        let mut limiter = limiter(4 * MIB as u64);
        assert!(limiter.memory_growing(0, 3 * MIB, None).unwrap());
        limiter.memory_grow_failed(wasmtime::Error::msg("no room")).unwrap();
        assert!(limiter.memory_growing(0, 4 * MIB, None).unwrap());
    }
}
