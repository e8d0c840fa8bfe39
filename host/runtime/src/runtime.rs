//! The node's one plugin runtime: a wasmtime engine with the pooling
//! allocator and epoch interruption, the linker of every host interface,
//! and the way a component becomes a plugin: compiled (within a budget, or
//! from the artifact cache), checked against its grants and world, and
//! loaded under its own limits.
//!
//! One engine serves every plugin so compiled code, the instance pool and
//! the epoch clock are shared. A background thread advances the epoch every
//! [`EPOCH_TICK_MS`]; a call's deadline is a number of ticks, so a plugin
//! stuck in a loop is interrupted without the host polling it.

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bazaar_kernel::model::{Capability, PluginKind, PluginRef};
use wasmtime::component::{InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::analytics::AnalyticsPlugin;
use crate::bindings::analytics::AnalyticsPre;
use crate::bindings::device_driver::DeviceDriverPre;
use crate::bindings::logistics::LogisticsPre;
use crate::bindings::pricing::PricingPre;
use crate::bindings::risk::RiskPre;
use crate::cache::{self, ArtifactCache, CacheOutcome};
use crate::check::{self, ComponentReport};
use crate::compile::{self, CompileSlot, CompiledComponent};
use crate::driver::DriverPlugin;
use crate::error::LoadError;
use crate::limits::{
    COMPILE_BUDGET_MS_LIMIT, EffectiveLimits, PluginLimits, RuntimeLimits, WASM_PAGE_BYTES, bounded,
};
use crate::logistics::LogisticsPlugin;
use crate::plugin::LoadedPlugin;
use crate::pricing::PricingPlugin;
use crate::risk::RiskPlugin;
use crate::store_data::{self, InstanceState};
use crate::text::truncate_utf8;

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
    /// The one compilation that may run at a time.
    compile_slot: Arc<CompileSlot>,
    /// Names the directory of this engine's artifacts in a cache.
    engine_fingerprint: String,
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
        let engine_fingerprint = cache::engine_fingerprint(&engine);
        let ticker = EpochTicker::start(engine.clone())
            .map_err(|error| RuntimeError::EpochThread(error.to_string()))?;
        Ok(Self {
            shared: Arc::new(RuntimeShared {
                engine,
                linker,
                limits,
                live_instances: AtomicUsize::new(0),
                compile_slot: Arc::default(),
                engine_fingerprint,
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
    /// [`ShipmentRouter`](crate::ShipmentRouter)s,
    /// [`RiskAssessor`](crate::RiskAssessor)s,
    /// [`Analyzer`](crate::Analyzer)s and
    /// [`DeviceDriver`](crate::DeviceDriver)s and leave with them.
    pub fn live_instances(&self) -> usize {
        self.shared.live_instances.load(Ordering::Relaxed)
    }

    /// Checks and compiles a component with the runtime's compile budget
    /// ([`RuntimeLimits::compile_budget_ms`]); see [`Runtime::compile_within`].
    pub fn compile(&self, wasm: &[u8]) -> Result<CompiledComponent, LoadError> {
        self.compile_within(wasm, self.shared.limits.compile_budget_ms)
    }

    /// Checks and compiles a component within `budget_ms` (1 ms to
    /// [`COMPILE_BUDGET_MS_LIMIT`]), for a caller that knows a component
    /// needs another budget than the runtime's, such as an operator
    /// re-installing a large component they trust.
    ///
    /// First the checks that need no compiler: size, header, a component
    /// rather than a core module, and the code-shape budget
    /// ([`FUNCTIONS_PER_COMPONENT_MAX`](crate::FUNCTIONS_PER_COMPONENT_MAX),
    /// [`FUNCTION_BODY_BYTES_MAX`](crate::FUNCTION_BODY_BYTES_MAX)). Then
    /// Cranelift on the runtime's compile thread, one compilation at a time:
    /// the caller waits at most `budget_ms` for a running compilation to
    /// finish ([`LoadError::CompilerBusy`]) and at most `budget_ms` for its
    /// own ([`LoadError::CompileBudgetExceeded`], after which it goes on in
    /// the background and keeps the compiler busy until done).
    pub fn compile_within(
        &self,
        wasm: &[u8],
        budget_ms: u64,
    ) -> Result<CompiledComponent, LoadError> {
        bounded("compile_budget_ms", Some(budget_ms), 1, COMPILE_BUDGET_MS_LIMIT)?;
        compile::check_bytes(wasm, self.shared.limits.component_bytes_max)?;
        self.compile_checked(wasm, budget_ms)
    }

    /// Compiles bytes that passed [`compile::check_bytes`], in the compile
    /// slot.
    fn compile_checked(&self, wasm: &[u8], budget_ms: u64) -> Result<CompiledComponent, LoadError> {
        let budget = Duration::from_millis(budget_ms);
        let slot = CompileSlot::acquire(&self.shared.compile_slot, budget)
            .ok_or(LoadError::CompilerBusy)?;
        let component = compile::compile_in_slot(&self.shared.engine, wasm, slot, budget_ms)?;
        Ok(CompiledComponent::new(component))
    }

    /// Like [`Runtime::compile`], but through `cache`: a verified artifact
    /// for this component and this engine's settings is loaded instead of
    /// compiled ([`CacheOutcome::Hit`]); otherwise the component is
    /// compiled and its artifact written ([`CacheOutcome::Miss`]).
    ///
    /// `content_hash` is the component's lowercase hex SHA-256, as the
    /// registry records it; it is checked against the bytes, so a wrong
    /// hash can never file an artifact under another component's name. The
    /// checks that need no compiler run on a hit too. A failure to write
    /// the artifact is logged and does not fail the compile.
    pub fn compile_cached(
        &self,
        wasm: &[u8],
        content_hash: &str,
        cache: &ArtifactCache,
    ) -> Result<(CompiledComponent, CacheOutcome), LoadError> {
        compile::check_bytes(wasm, self.shared.limits.component_bytes_max)?;
        let actual = cache::sha256_hex(wasm);
        if content_hash != actual {
            let mut given = content_hash.to_owned();
            truncate_utf8(&mut given, cache::SHA256_HEX_LEN);
            return Err(LoadError::ContentHashMismatch { given, actual });
        }
        // Checked above: the hash is 64 lowercase hex digits, so the path
        // cannot leave the cache directory.
        let path = cache.artifact_path(&self.shared.engine_fingerprint, &actual);
        match cache.load(&self.shared.engine, &path) {
            Ok(component) => return Ok((CompiledComponent::new(component), CacheOutcome::Hit)),
            Err(unusable) if unusable.is_absent() => {}
            Err(unusable) => tracing::warn!(
                artifact = %path.display(),
                reason = %unusable,
                "cached artifact unusable; compiling again"
            ),
        }
        let compiled = self.compile_checked(wasm, self.shared.limits.compile_budget_ms)?;
        let stored = compiled
            .component
            .serialize()
            .map_err(|error| std::io::Error::other(format!("{error:#}")))
            .and_then(|artifact| cache.store(&path, &artifact));
        if let Err(error) = stored {
            tracing::warn!(
                artifact = %path.display(),
                %error,
                "compiled artifact could not be cached"
            );
        }
        Ok((compiled, CacheOutcome::Miss))
    }

    /// The install-time check of a compiled component as a plugin of
    /// `kind` with the capabilities in `granted`: every Bazaar import must
    /// be `types` or a granted capability's interface
    /// ([`LoadError::NotGranted`]), every WASI import one the host provides,
    /// anything else is [`LoadError::UnknownImport`]; the component must
    /// export `kind`'s interface and implement its world
    /// ([`LoadError::WrongWorld`]). [`Runtime::load`] trusts that this
    /// check passed at install.
    pub fn check(
        &self,
        compiled: &CompiledComponent,
        kind: PluginKind,
        granted: &BTreeSet<Capability>,
    ) -> Result<ComponentReport, LoadError> {
        self.same_engine(compiled)?;
        check::check(&self.shared.linker, compiled, kind, granted, |instance_pre| match kind {
            PluginKind::Pricing => world_pre(instance_pre, kind, PricingPre::new).map(drop),
            PluginKind::Logistics => world_pre(instance_pre, kind, LogisticsPre::new).map(drop),
            PluginKind::Risk => world_pre(instance_pre, kind, RiskPre::new).map(drop),
            PluginKind::Analytics => world_pre(instance_pre, kind, AnalyticsPre::new).map(drop),
            PluginKind::DeviceDriver => {
                world_pre(instance_pre, kind, DeviceDriverPre::new).map(drop)
            }
        })
    }

    /// Links a compiled component as a plugin of `kind` that runs under
    /// `limits` (each at most the node's own). Cheap, with no compilation,
    /// because it is on the hot-swap path: measured at 7 to 10 µs for the
    /// first-party Rust plugins and 42 µs for an 18 MB CPython component.
    /// Grants are not checked here; [`Runtime::check`] does that at
    /// install.
    pub fn load(
        &self,
        plugin: PluginRef,
        kind: PluginKind,
        compiled: &CompiledComponent,
        limits: PluginLimits,
    ) -> Result<LoadedPlugin, LoadError> {
        let limits = limits.resolve(&self.shared.limits)?;
        Ok(match kind {
            PluginKind::Pricing => {
                LoadedPlugin::Pricing(self.link_pricing(plugin, compiled, limits)?)
            }
            PluginKind::Logistics => {
                LoadedPlugin::Logistics(self.link_logistics(plugin, compiled, limits)?)
            }
            PluginKind::Risk => LoadedPlugin::Risk(self.link_risk(plugin, compiled, limits)?),
            PluginKind::Analytics => {
                LoadedPlugin::Analytics(self.link_analytics(plugin, compiled, limits)?)
            }
            PluginKind::DeviceDriver => {
                LoadedPlugin::Driver(self.link_driver(plugin, compiled, limits)?)
            }
        })
    }

    /// Compiles and links a pricing plugin under the node's limits. The
    /// component must export `bazaar:commerce/pricer` and import nothing
    /// beyond WASI and Bazaar's log, config and state.
    pub fn load_pricing(&self, plugin: PluginRef, wasm: &[u8]) -> Result<PricingPlugin, LoadError> {
        let compiled = self.compile(wasm)?;
        self.link_pricing(plugin, &compiled, EffectiveLimits::of_node(&self.shared.limits))
    }

    /// Compiles and links a logistics plugin under the node's limits. The
    /// component must export `bazaar:commerce/router` and import nothing
    /// beyond WASI and Bazaar's log, config and state.
    pub fn load_logistics(
        &self,
        plugin: PluginRef,
        wasm: &[u8],
    ) -> Result<LogisticsPlugin, LoadError> {
        let compiled = self.compile(wasm)?;
        self.link_logistics(plugin, &compiled, EffectiveLimits::of_node(&self.shared.limits))
    }

    /// Compiles and links a risk plugin under the node's limits. The
    /// component must export `bazaar:commerce/risk-assessor` and import
    /// nothing beyond WASI and Bazaar's log, config and state.
    pub fn load_risk(&self, plugin: PluginRef, wasm: &[u8]) -> Result<RiskPlugin, LoadError> {
        let compiled = self.compile(wasm)?;
        self.link_risk(plugin, &compiled, EffectiveLimits::of_node(&self.shared.limits))
    }

    /// Compiles and links an analytics plugin under the node's limits. The
    /// component must export `bazaar:commerce/analyzer` and import nothing
    /// beyond WASI and Bazaar's log, config and state.
    pub fn load_analytics(
        &self,
        plugin: PluginRef,
        wasm: &[u8],
    ) -> Result<AnalyticsPlugin, LoadError> {
        let compiled = self.compile(wasm)?;
        self.link_analytics(plugin, &compiled, EffectiveLimits::of_node(&self.shared.limits))
    }

    /// Compiles and links a device-driver plugin under the node's limits.
    /// The component must export `bazaar:commerce/driver` and import
    /// nothing beyond WASI and Bazaar's log and config.
    pub fn load_driver(&self, plugin: PluginRef, wasm: &[u8]) -> Result<DriverPlugin, LoadError> {
        let compiled = self.compile(wasm)?;
        self.link_driver(plugin, &compiled, EffectiveLimits::of_node(&self.shared.limits))
    }

    fn link_pricing(
        &self,
        plugin: PluginRef,
        compiled: &CompiledComponent,
        limits: EffectiveLimits,
    ) -> Result<PricingPlugin, LoadError> {
        let pre = world_pre(self.pre_link(compiled)?, PluginKind::Pricing, PricingPre::new)?;
        Ok(PricingPlugin::new(plugin, pre, Arc::clone(&self.shared), limits))
    }

    fn link_logistics(
        &self,
        plugin: PluginRef,
        compiled: &CompiledComponent,
        limits: EffectiveLimits,
    ) -> Result<LogisticsPlugin, LoadError> {
        let pre = world_pre(self.pre_link(compiled)?, PluginKind::Logistics, LogisticsPre::new)?;
        Ok(LogisticsPlugin::new(plugin, pre, Arc::clone(&self.shared), limits))
    }

    fn link_risk(
        &self,
        plugin: PluginRef,
        compiled: &CompiledComponent,
        limits: EffectiveLimits,
    ) -> Result<RiskPlugin, LoadError> {
        let pre = world_pre(self.pre_link(compiled)?, PluginKind::Risk, RiskPre::new)?;
        Ok(RiskPlugin::new(plugin, pre, Arc::clone(&self.shared), limits))
    }

    fn link_analytics(
        &self,
        plugin: PluginRef,
        compiled: &CompiledComponent,
        limits: EffectiveLimits,
    ) -> Result<AnalyticsPlugin, LoadError> {
        let pre = world_pre(self.pre_link(compiled)?, PluginKind::Analytics, AnalyticsPre::new)?;
        Ok(AnalyticsPlugin::new(plugin, pre, Arc::clone(&self.shared), limits))
    }

    fn link_driver(
        &self,
        plugin: PluginRef,
        compiled: &CompiledComponent,
        limits: EffectiveLimits,
    ) -> Result<DriverPlugin, LoadError> {
        let pre =
            world_pre(self.pre_link(compiled)?, PluginKind::DeviceDriver, DeviceDriverPre::new)?;
        Ok(DriverPlugin::new(plugin, pre, Arc::clone(&self.shared), limits))
    }

    /// Links a compiled component against every host interface.
    fn pre_link(
        &self,
        compiled: &CompiledComponent,
    ) -> Result<InstancePre<InstanceState>, LoadError> {
        self.same_engine(compiled)?;
        check::pre_link(&self.shared.linker, compiled)
    }

    /// Refuses a component compiled by another engine, which the linker
    /// could not use.
    fn same_engine(&self, compiled: &CompiledComponent) -> Result<(), LoadError> {
        if Engine::same(compiled.component.engine(), &self.shared.engine) {
            Ok(())
        } else {
            Err(LoadError::CompiledElsewhere)
        }
    }
}

/// Checks that a pre-linked component implements `kind`'s world with that
/// world's generated `new`.
fn world_pre<P>(
    instance_pre: InstancePre<InstanceState>,
    kind: PluginKind,
    new_pre: impl FnOnce(InstancePre<InstanceState>) -> wasmtime::Result<P>,
) -> Result<P, LoadError> {
    new_pre(instance_pre).map_err(|error| LoadError::WrongWorld {
        world: kind.world(),
        detail: format!("{error:#}"),
    })
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
        assert_send_sync::<AnalyticsPlugin>();
        assert_send_sync::<DriverPlugin>();
    }

    #[test]
    fn a_workers_instance_holders_can_move_to_its_thread() {
        assert_send::<crate::Pricer>();
        assert_send::<crate::ShipmentRouter>();
        assert_send::<crate::RiskAssessor>();
        assert_send::<crate::Analyzer>();
        assert_send::<crate::DeviceDriver>();
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
