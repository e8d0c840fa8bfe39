//! Calling a plugin: what a call takes, what it gives back, and the one
//! driver every extension point shares.
//!
//! The driver admits the call under the plugin's concurrency cap, keeps an
//! instance alive across calls (instantiating from the plugin's pre-linked
//! `InstancePre` only when there is none), arms the plugin's deadline and
//! fuel, installs the call's inputs, runs the export, and classifies any
//! failure. An instance that trapped, ran out of time or hit
//! its memory cap is thrown away, and the next call starts on a fresh one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use bazaar_kernel::model::{PluginRef, StoreId};
use bazaar_kernel::{PluginStateMap, StateWrite};
use wasmtime::{FrameInfo, Store, Trap, WasmBacktrace};

use crate::bindings::types;
use crate::error::{CallError, GuestLimitExceeded, PluginError};
use crate::limits::EffectiveLimits;
use crate::runtime::{RuntimeShared, deadline_ticks};
use crate::store_data::{CallInputs, FinishedCall, InstanceState};
use crate::text::{sanitize_for_log, truncate_utf8};

/// Longest failure text taken from a trap or a plugin's own error: enough
/// for the message and its context, short enough for an order's flag.
const FAILURE_TEXT_BYTES_MAX: usize = 1024;
/// Innermost wasm frames quoted in a trap's text: enough to locate the
/// fault, few enough to keep the text readable.
const BACKTRACE_FRAMES_QUOTED_MAX: usize = 6;
/// Bytes of one frame's function name quoted in a trap's text.
const FRAME_NAME_BYTES_MAX: usize = 48;
/// Frames a backtrace must hold for an out-of-bounds trap to be read as a
/// linear-memory stack overflow (see [`overran_linear_memory_stack`]); at
/// most [`crate::runtime::BACKTRACE_FRAMES_CAPTURED`] are ever recorded.
const RECURSION_FRAMES_MIN: usize = 16;
/// Distinct functions such a backtrace may hold: a function recursing on
/// itself, or two recursing on each other (or one plus the `memset` or
/// `memcpy` it calls to fill its frame).
const RECURSION_FUNCTIONS_MAX: usize = 2;

/// Everything one call needs besides its input.
#[derive(Clone, Debug)]
pub struct PluginCall {
    /// The store the call is made for.
    pub store: StoreId,
    /// The store's configuration of the plugin (JSON), if any.
    pub config_json: Option<Arc<str>>,
    /// The plugin's state in the store, as the kernel holds it.
    pub state: Arc<PluginStateMap>,
    /// The order's timestamp, milliseconds since the Unix epoch: both WASI
    /// clocks stand still at it.
    pub now_ms: u64,
    /// Seed of the call's WASI randomness, derived from the order id by the
    /// caller so a retried order sees the same random numbers.
    pub random_seed: u64,
}

/// The result of one call, with what the call left behind.
#[derive(Debug)]
pub struct CallOutcome<T> {
    /// The plugin's converted, shape-checked output, or why there is none.
    pub result: Result<T, CallError>,
    /// The call's state writes, for the kernel to journal and apply. Empty
    /// when the call failed: a failed call changes nothing.
    pub state_writes: Vec<StateWrite>,
    /// Log lines the call tried to write beyond its limit.
    pub log_lines_dropped: u32,
}

impl<T> CallOutcome<T> {
    /// The outcome of a call refused before the plugin ran: nothing
    /// written, nothing logged, and no call counted.
    pub(crate) fn refused(error: CallError) -> Self {
        Self { result: Err(error), state_writes: Vec::new(), log_lines_dropped: 0 }
    }
}

/// A snapshot of a plugin's call counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounters {
    /// Calls made.
    pub calls: u64,
    /// Calls that returned an error of any kind.
    pub failures: u64,
    /// Calls whose instance was thrown away: traps, deadlines, memory and
    /// stack exhaustion, fuel, broken host-interface limits.
    pub traps: u64,
    /// Instances created.
    pub instantiations: u64,
    /// Calls running now.
    pub in_flight: u32,
    /// How long calls took, from admission to outcome.
    pub latency: CallLatency,
}

/// Upper bounds of the call-latency buckets, microseconds: a Rust plugin
/// answers in a few microseconds, an interpreted one in hundreds, and the
/// default deadline is 20 ms.
pub const CALL_LATENCY_BUCKETS_US: [u64; 12] =
    [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000];

/// A histogram of call durations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallLatency {
    /// Calls per bucket: `counts[i]` took at most
    /// `CALL_LATENCY_BUCKETS_US[i]` (and more than the bound before); the
    /// last count is for longer calls.
    pub counts: [u64; CALL_LATENCY_BUCKETS_US.len() + 1],
    /// The durations' sum, microseconds.
    pub sum_us: u64,
}

/// A plugin's call counters; relaxed atomics, cheap enough for every call.
#[derive(Default)]
struct Counters {
    /// Calls made.
    calls: AtomicU64,
    /// Calls that returned an error.
    failures: AtomicU64,
    /// Calls whose instance was thrown away.
    traps: AtomicU64,
    /// Instances created.
    instantiations: AtomicU64,
    /// Calls per latency bucket.
    latency_counts: [AtomicU64; CALL_LATENCY_BUCKETS_US.len() + 1],
    /// Sum of call durations, microseconds.
    latency_sum_us: AtomicU64,
}

/// Records a call's duration in its plugin's histogram when dropped, so
/// every way out of a call is timed.
struct CallTimer<'a> {
    counters: &'a Counters,
    started: Instant,
}

impl Drop for CallTimer<'_> {
    fn drop(&mut self) {
        let elapsed_us = self.started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = CALL_LATENCY_BUCKETS_US.partition_point(|bound| *bound < elapsed_us);
        self.counters.latency_counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.counters.latency_sum_us.fetch_add(elapsed_us, Ordering::Relaxed);
    }
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A loaded plugin of any extension point: its identity, its pre-linked
/// component and the runtime it runs in.
pub(crate) struct Loaded<P> {
    /// Which plugin and version.
    pub(crate) plugin: PluginRef,
    /// The bindings' pre-instantiated component.
    pre: P,
    /// The runtime it was loaded into.
    pub(crate) runtime: Arc<RuntimeShared>,
    /// The limits its calls run under.
    limits: EffectiveLimits,
    /// Calls running now, over every holder of its instances.
    in_flight: AtomicU32,
    /// Its call counters.
    counters: Counters,
}

/// Counts one call in [`Loaded::in_flight`] while it runs.
struct InFlight<'a>(&'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A live instance of a plugin, with the store it lives in.
pub(crate) struct LiveInstance<B> {
    /// The instance's store; dropping it frees the pool slot.
    store: Store<InstanceState>,
    /// The world's exports in this instance.
    bindings: B,
    /// Counts the instance among the runtime's live ones; declared last so
    /// it is dropped after the store has released the slot.
    _slot: SlotCount,
}

/// Keeps [`RuntimeShared::live_instances`] in step with live instances.
struct SlotCount(Arc<RuntimeShared>);

impl SlotCount {
    fn new(runtime: &Arc<RuntimeShared>) -> Self {
        runtime.live_instances.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(runtime))
    }
}

impl Drop for SlotCount {
    fn drop(&mut self) {
        self.0.live_instances.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<P> Loaded<P> {
    pub(crate) fn new(
        plugin: PluginRef,
        pre: P,
        runtime: Arc<RuntimeShared>,
        limits: EffectiveLimits,
    ) -> Self {
        Self {
            plugin,
            pre,
            runtime,
            limits,
            in_flight: AtomicU32::new(0),
            counters: Counters::default(),
        }
    }

    /// Counts a call in flight, or refuses it when the plugin's
    /// concurrency cap is reached.
    fn admit(&self) -> Result<InFlight<'_>, CallError> {
        match self.limits.concurrency_max {
            None => {
                self.in_flight.fetch_add(1, Ordering::AcqRel);
            }
            Some(max) => {
                self.in_flight
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                        (now < max).then(|| now.saturating_add(1))
                    })
                    .map_err(|_| CallError::ConcurrencyLimit { max })?;
            }
        }
        Ok(InFlight(&self.in_flight))
    }

    /// The counters as they stand.
    pub(crate) fn counters(&self) -> CallCounters {
        CallCounters {
            calls: self.counters.calls.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
            traps: self.counters.traps.load(Ordering::Relaxed),
            instantiations: self.counters.instantiations.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Acquire),
            latency: CallLatency {
                counts: std::array::from_fn(|index| {
                    self.counters.latency_counts[index].load(Ordering::Relaxed)
                }),
                sum_us: self.counters.latency_sum_us.load(Ordering::Relaxed),
            },
        }
    }

    /// Runs one call on the instance in `slot` (creating it first if there
    /// is none): `invoke` calls the export, `convert` checks and converts
    /// its output. The instance goes back into `slot` unless the call
    /// trapped or hit the memory cap.
    pub(crate) fn call<B, W, R>(
        &self,
        slot: &mut Option<LiveInstance<B>>,
        call: PluginCall,
        instantiate: impl FnOnce(&P, &mut Store<InstanceState>) -> wasmtime::Result<B>,
        invoke: impl FnOnce(
            &B,
            &mut Store<InstanceState>,
        ) -> wasmtime::Result<Result<W, types::PluginError>>,
        convert: impl FnOnce(W) -> Result<R, CallError>,
    ) -> CallOutcome<R> {
        Counters::bump(&self.counters.calls);
        let _timer = CallTimer { counters: &self.counters, started: Instant::now() };
        let _in_flight = match self.admit() {
            Ok(in_flight) => in_flight,
            Err(refused) => return self.outcome(Err(refused), FinishedCall::default()),
        };
        let mut live = match slot.take() {
            Some(mut live) => match self.begin_call(&mut live.store, call) {
                Ok(()) => live,
                Err(error) => return self.failed(&mut live.store, error, false),
            },
            None => match self.instantiate(call, instantiate) {
                Ok(live) => live,
                Err(outcome) => return outcome,
            },
        };
        let raw = invoke(&live.bindings, &mut live.store);
        let finished = live.store.data_mut().finish_call();
        let (result, trapped) = match raw {
            Ok(Ok(output)) => (convert(output), false),
            Ok(Err(error)) => (Err(CallError::Plugin(plugin_error(error))), false),
            Err(error) => (Err(self.classify(&error, &finished, false)), true),
        };
        if trapped {
            Counters::bump(&self.counters.traps);
        }
        // A refused growth leaves the instance at its cap; start afresh.
        if !trapped && !finished.memory_limit_hit {
            *slot = Some(live);
        }
        self.outcome(result, finished)
    }

    /// Creates a store and an instance in it, for a call.
    fn instantiate<B, R>(
        &self,
        call: PluginCall,
        instantiate: impl FnOnce(&P, &mut Store<InstanceState>) -> wasmtime::Result<B>,
    ) -> Result<LiveInstance<B>, CallOutcome<R>> {
        let runtime = &self.runtime;
        let mut store = Store::new(
            &runtime.engine,
            InstanceState::new(&self.plugin.id, &runtime.limits, self.limits.memory_bytes_max),
        );
        store.limiter(|data| &mut data.limiter);
        store.epoch_deadline_trap();
        let bindings =
            self.begin_call(&mut store, call).and_then(|()| instantiate(&self.pre, &mut store));
        match bindings {
            Ok(bindings) => {
                Counters::bump(&self.counters.instantiations);
                Ok(LiveInstance { store, bindings, _slot: SlotCount::new(runtime) })
            }
            Err(error) => Err(self.failed(&mut store, error, true)),
        }
    }

    /// Installs the call's inputs and arms its deadline and fuel.
    fn begin_call(
        &self,
        store: &mut Store<InstanceState>,
        call: PluginCall,
    ) -> wasmtime::Result<()> {
        store.data_mut().begin_call(CallInputs {
            store: call.store,
            config_json: call.config_json,
            state: call.state,
            now_ms: call.now_ms,
            random_seed: call.random_seed,
        });
        store.set_epoch_deadline(deadline_ticks(self.limits.call_deadline_ms));
        if let Some(fuel) = self.limits.fuel_per_call {
            store.set_fuel(fuel)?;
        }
        Ok(())
    }

    /// The outcome of a call that failed before its export returned.
    fn failed<R>(
        &self,
        store: &mut Store<InstanceState>,
        error: wasmtime::Error,
        instantiating: bool,
    ) -> CallOutcome<R> {
        let finished = store.data_mut().finish_call();
        let error = self.classify(&error, &finished, instantiating);
        if !matches!(error, CallError::Instantiate(_)) {
            Counters::bump(&self.counters.traps);
        }
        self.outcome(Err(error), finished)
    }

    /// Names the cause of a failed call.
    fn classify(
        &self,
        error: &wasmtime::Error,
        finished: &FinishedCall,
        instantiating: bool,
    ) -> CallError {
        let limits = &self.limits;
        if let Some(limit) = error.downcast_ref::<GuestLimitExceeded>() {
            return CallError::InvalidOutput(limit.0.clone());
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                CallError::DeadlineExceeded { deadline_ms: limits.call_deadline_ms }
            }
            Some(Trap::OutOfFuel) => CallError::FuelExhausted,
            Some(Trap::StackOverflow) => CallError::StackOverflow,
            _ if finished.memory_limit_hit => {
                CallError::MemoryLimitExceeded { limit_bytes: limits.memory_bytes_max }
            }
            Some(Trap::MemoryOutOfBounds) if overran_linear_memory_stack(error) => {
                CallError::StackOverflow
            }
            Some(_) => CallError::Trap(failure_text(error)),
            None => match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => CallError::Trap(format!("plugin exited with status {}", exit.0)),
                None if instantiating => CallError::Instantiate(failure_text(error)),
                None => CallError::Trap(failure_text(error)),
            },
        }
    }

    /// Assembles an outcome, attaching the writes only to a success.
    fn outcome<R>(&self, result: Result<R, CallError>, finished: FinishedCall) -> CallOutcome<R> {
        let state_writes = match result {
            Ok(_) => finished
                .writes
                .into_iter()
                .map(|(key, value)| StateWrite { plugin: self.plugin.id.clone(), key, value })
                .collect(),
            Err(_) => {
                Counters::bump(&self.counters.failures);
                Vec::new()
            }
        };
        CallOutcome { result, state_writes, log_lines_dropped: finished.log_lines_dropped }
    }
}

/// Whether an out-of-bounds access is a stack overflow in disguise.
///
/// Toolchains built on LLVM (Rust, C, C++) keep part of each call frame on
/// a stack in linear memory, below the program's data. Unbounded recursion
/// usually exhausts that stack before wasm's own: the stack pointer wraps
/// below zero and the next frame's store lands out of bounds. The sign is
/// a backtrace made of one or two functions repeated as deep as wasmtime
/// records it; a genuine wild pointer almost never looks like that.
fn overran_linear_memory_stack(error: &wasmtime::Error) -> bool {
    let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() else {
        return false;
    };
    let frames = backtrace.frames();
    if frames.len() < RECURSION_FRAMES_MIN {
        return false;
    }
    let mut functions: Vec<u32> = frames.iter().map(FrameInfo::func_index).collect();
    functions.sort_unstable();
    functions.dedup();
    functions.len() <= RECURSION_FUNCTIONS_MAX
}

/// A plugin's own error, with its text cut to size.
fn plugin_error(error: types::PluginError) -> PluginError {
    let trimmed = |text: String| sanitize_for_log(text, FAILURE_TEXT_BYTES_MAX);
    match error {
        types::PluginError::InvalidConfig(text) => PluginError::InvalidConfig(trimmed(text)),
        types::PluginError::Unsupported(text) => PluginError::Unsupported(trimmed(text)),
        types::PluginError::Internal(text) => PluginError::Internal(trimmed(text)),
    }
}

/// An error's message, cut to size. When the error carries a wasm
/// backtrace, the message is the root cause (the trap) followed by the
/// innermost frames, which is where a plugin author starts looking.
fn failure_text(error: &wasmtime::Error) -> String {
    let mut text = match error.downcast_ref::<WasmBacktrace>() {
        Some(backtrace) => {
            let frames = backtrace.frames();
            let mut text = format!("{}; wasm backtrace: ", error.root_cause());
            let quoted: Vec<String> =
                frames.iter().take(BACKTRACE_FRAMES_QUOTED_MAX).map(frame_label).collect();
            text.push_str(&quoted.join(" <- "));
            if frames.len() > BACKTRACE_FRAMES_QUOTED_MAX {
                text.push_str(" <- ...");
            }
            text
        }
        None => format!("{error:#}"),
    };
    truncate_utf8(&mut text, FAILURE_TEXT_BYTES_MAX);
    text
}

/// A frame's function name, or its index when the component has no name
/// section. Long (mangled) names keep their end, which holds the
/// function's own name.
fn frame_label(frame: &FrameInfo) -> String {
    let Some(name) = frame.func_name() else {
        return format!("function {}", frame.func_index());
    };
    if name.len() <= FRAME_NAME_BYTES_MAX {
        return name.to_owned();
    }
    let mut start = name.len() - FRAME_NAME_BYTES_MAX;
    while !name.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &name[start..])
}
