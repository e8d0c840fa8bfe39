//! The node's one plugin runtime: a wasmtime engine with the pooling
//! allocator and epoch interruption, the linker of every host interface,
//! and the loading of components into plugins.
//!
//! One engine serves every plugin so compiled code, the instance pool and
//! the epoch clock are shared. A background thread advances the epoch every
//! [`EPOCH_TICK_MS`]; a call's deadline is a number of ticks, so a plugin
//! stuck in a loop is interrupted without the host polling it.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bazaar_kernel::model::PluginRef;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::logistics::LogisticsPre;
use crate::bindings::pricing::PricingPre;
use crate::bindings::risk::RiskPre;
use crate::error::LoadError;
use crate::limits::{RuntimeLimits, WASM_PAGE_BYTES};
use crate::logistics::LogisticsPlugin;
use crate::pricing::PricingPlugin;
use crate::risk::RiskPlugin;
use crate::store_data::{self, InstanceState};

/// Period of the epoch clock. Deadlines are enforced to within one tick;
/// 1 ms matches the order-path budgets and costs one atomic increment per
/// millisecond.
pub const EPOCH_TICK_MS: u64 = 1;

/// Core wasm instances one plugin instance may contain: a Rust component
/// has a handful (the module plus shims); an interpreter built with
/// dynamic linking (componentize-py) has one per shared library.
const CORE_INSTANCES_PER_PLUGIN_MAX: u32 = 64;
/// Linear memories one plugin instance may contain: the program's, plus
/// one for a WASI adapter in components built from core modules.
const MEMORIES_PER_PLUGIN_MAX: u32 = 2;
/// Tables one plugin instance may contain: the program's function table
/// plus the small tables of the component's import shims.
const TABLES_PER_PLUGIN_MAX: u32 = 8;

/// Wasm frames recorded in a trap's backtrace: enough to quote the
/// innermost frames and to recognise a runaway recursion, while keeping
/// the capture (a frame-pointer walk) cheap.
pub(crate) const BACKTRACE_FRAMES_CAPTURED: usize = 32;

/// The first eight bytes of every WebAssembly binary are `\0asm` and a
/// version; a core module's version is 1 with layer 0, a component's has
/// layer 1.
const WASM_MAGIC: [u8; 4] = *b"\0asm";
/// Bytes 6 and 7 of a core module: layer 0.
const CORE_MODULE_LAYER: [u8; 2] = [0, 0];

/// Why the runtime could not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// A limit is out of its accepted range.
    #[error("invalid runtime limits: {0}")]
    InvalidLimits(String),
    /// wasmtime refused the configuration (for example, the pool does not
    /// fit in the address space).
    #[error("the wasm engine could not be configured: {0}")]
    Engine(String),
    /// The epoch thread could not be started.
    #[error("the epoch thread could not be started: {0}")]
    EpochThread(String),
}

/// The plugin runtime of a node. Cheap to clone (one `Arc`), `Send` and
/// `Sync`: every worker thread holds a clone.
#[derive(Clone)]
pub struct Runtime {
    /// The engine, linker and limits shared with every loaded plugin.
    shared: Arc<RuntimeShared>,
}

/// What the runtime and its plugins share; lives as long as the runtime or
/// any plugin loaded from it.
pub(crate) struct RuntimeShared {
    /// The one engine.
    pub(crate) engine: Engine,
    /// Every host interface a plugin may import, linked once.
    linker: Linker<InstanceState>,
    /// The limits fixed at start.
    pub(crate) limits: RuntimeLimits,
    /// Plugin instances alive now (pool slots in use).
    pub(crate) live_instances: AtomicUsize,
    /// Advances the epoch; stopped when this is dropped.
    _ticker: EpochTicker,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.shared.limits)
            .field("live_instances", &self.live_instances())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Builds the engine, the instance pool and the linker, and starts the
    /// epoch thread.
    pub fn new(limits: RuntimeLimits) -> Result<Self, RuntimeError> {
        limits.validate().map_err(RuntimeError::InvalidLimits)?;
        let engine = Engine::new(&engine_config(&limits))
            .map_err(|error| RuntimeError::Engine(format!("{error:#}")))?;
        let mut linker = Linker::new(&engine);
        store_data::add_to_linker(&mut linker)
            .map_err(|error| RuntimeError::Engine(format!("{error:#}")))?;
        let ticker = EpochTicker::start(engine.clone())
            .map_err(|error| RuntimeError::EpochThread(error.to_string()))?;
        Ok(Self {
            shared: Arc::new(RuntimeShared {
                engine,
                linker,
                limits,
                live_instances: AtomicUsize::new(0),
                _ticker: ticker,
            }),
        })
    }

    /// The limits the runtime was built with.
    pub fn limits(&self) -> &RuntimeLimits {
        &self.shared.limits
    }

    /// Plugin instances alive now, over every plugin: the pool slots in
    /// use. Instances live in [`Pricer`](crate::Pricer)s,
    /// [`ShipmentRouter`](crate::ShipmentRouter)s and
    /// [`RiskAssessor`](crate::RiskAssessor)s and leave with them.
    pub fn live_instances(&self) -> usize {
        self.shared.live_instances.load(Ordering::Relaxed)
    }

    /// Compiles and links a pricing plugin. The component must export
    /// `bazaar:commerce/pricer` and import nothing beyond WASI and
    /// Bazaar's log, config and state.
    pub fn load_pricing(&self, plugin: PluginRef, wasm: &[u8]) -> Result<PricingPlugin, LoadError> {
        let pre = self.prepare_world(wasm, "pricing", PricingPre::new)?;
        Ok(PricingPlugin::new(plugin, pre, Arc::clone(&self.shared)))
    }

    /// Compiles and links a logistics plugin. The component must export
    /// `bazaar:commerce/router` and import nothing beyond WASI and
    /// Bazaar's log, config and state.
    pub fn load_logistics(
        &self,
        plugin: PluginRef,
        wasm: &[u8],
    ) -> Result<LogisticsPlugin, LoadError> {
        let pre = self.prepare_world(wasm, "logistics", LogisticsPre::new)?;
        Ok(LogisticsPlugin::new(plugin, pre, Arc::clone(&self.shared)))
    }

    /// Compiles and links a risk plugin. The component must export
    /// `bazaar:commerce/risk-assessor` and import nothing beyond WASI and
    /// Bazaar's log, config and state.
    pub fn load_risk(&self, plugin: PluginRef, wasm: &[u8]) -> Result<RiskPlugin, LoadError> {
        let pre = self.prepare_world(wasm, "risk", RiskPre::new)?;
        Ok(RiskPlugin::new(plugin, pre, Arc::clone(&self.shared)))
    }

    /// Checks, compiles and links a component, then checks that it
    /// implements `world` with that world's generated `new_pre`.
    fn prepare_world<P>(
        &self,
        wasm: &[u8],
        world: &'static str,
        new_pre: impl FnOnce(InstancePre<InstanceState>) -> wasmtime::Result<P>,
    ) -> Result<P, LoadError> {
        let instance_pre = self.prepare(wasm)?;
        new_pre(instance_pre)
            .map_err(|error| LoadError::WrongWorld { world, detail: format!("{error:#}") })
    }

    /// Checks, compiles and links a component, leaving the world check to
    /// the caller.
    fn prepare(&self, wasm: &[u8]) -> Result<InstancePre<InstanceState>, LoadError> {
        let limit_bytes = self.shared.limits.component_bytes_max;
        if wasm.len() > limit_bytes {
            return Err(LoadError::TooLarge { size_bytes: wasm.len(), limit_bytes });
        }
        if wasm.len() < 8 || wasm[..4] != WASM_MAGIC {
            return Err(LoadError::NotWasm);
        }
        if wasm[6..8] == CORE_MODULE_LAYER {
            return Err(LoadError::CoreModule);
        }
        let component = Component::new(&self.shared.engine, wasm)
            .map_err(|error| LoadError::Compile(format!("{error:#}")))?;
        self.shared
            .linker
            .instantiate_pre(&component)
            .map_err(|error| LoadError::UnsatisfiedImport(format!("{error:#}")))
    }
}

/// The engine configuration the limits call for.
fn engine_config(limits: &RuntimeLimits) -> Config {
    let instances = limits.instances_max;
    let memory_bytes_max = limits.memory_bytes_max.next_multiple_of(WASM_PAGE_BYTES);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_PLUGIN_MAX))
        .total_memories(instances.saturating_mul(MEMORIES_PER_PLUGIN_MAX))
        .total_tables(instances.saturating_mul(TABLES_PER_PLUGIN_MAX))
        .max_core_instances_per_component(CORE_INSTANCES_PER_PLUGIN_MAX)
        .max_memories_per_component(MEMORIES_PER_PLUGIN_MAX)
        .max_tables_per_component(TABLES_PER_PLUGIN_MAX)
        .max_memory_size(usize::try_from(memory_bytes_max).unwrap_or(usize::MAX))
        .table_elements(limits.table_elements_max);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(limits.wasm_stack_bytes_max)
        .wasm_backtrace_max_frames(NonZeroUsize::new(BACKTRACE_FRAMES_CAPTURED))
        .consume_fuel(limits.fuel_per_call.is_some())
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// The background thread that advances the engine's epoch.
struct EpochTicker {
    /// Set to ask the thread to stop.
    stop: Arc<AtomicBool>,
    /// The thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::Builder::new().name("bazaar-epoch".to_owned()).spawn({
            let stop = Arc::clone(&stop);
            move || {
                while !stop.load(Ordering::Acquire) {
                    thread::park_timeout(Duration::from_millis(EPOCH_TICK_MS));
                    engine.increment_epoch();
                }
            }
        })?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // The thread only sleeps and increments; it cannot panic, and
            // if it somehow did there is nothing left to clean up.
            let _ = thread.join();
        }
    }
}

/// The number of epoch ticks that covers `deadline_ms`: one more than the
/// quotient, because the first tick may come at once.
pub(crate) fn deadline_ticks(deadline_ms: u64) -> u64 {
    deadline_ms.div_ceil(EPOCH_TICK_MS).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn the_runtime_and_loaded_plugins_can_be_shared_between_threads() {
        assert_send_sync::<Runtime>();
        assert_send_sync::<PricingPlugin>();
        assert_send_sync::<LogisticsPlugin>();
        assert_send_sync::<RiskPlugin>();
    }

    #[test]
    fn a_workers_instance_holders_can_move_to_its_thread() {
        assert_send::<crate::Pricer>();
        assert_send::<crate::ShipmentRouter>();
        assert_send::<crate::RiskAssessor>();
    }

    #[test]
    fn the_default_limits_start_a_runtime() {
        let runtime = Runtime::new(RuntimeLimits::default()).expect("the defaults are usable");
        assert_eq!(runtime.live_instances(), 0);
    }

    #[test]
    fn limits_out_of_range_are_refused() {
        let limits = RuntimeLimits { call_deadline_ms: 0, ..RuntimeLimits::default() };
        assert!(matches!(Runtime::new(limits), Err(RuntimeError::InvalidLimits(_))));
    }

    #[test]
    fn a_deadline_never_ends_before_its_time() {
        assert_eq!(deadline_ticks(1), 2);
        assert_eq!(deadline_ticks(20), 21);
    }
}
