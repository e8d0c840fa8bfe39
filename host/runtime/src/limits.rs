//! The limits of the plugin runtime: what one plugin instance may consume
//! and what one call may hand back.
//!
//! Everything a plugin controls has a ceiling here, with the reason for its
//! default next to it. The engine-wide numbers (pool slots, stack size, fuel
//! switch) are fixed when the [`Runtime`](crate::Runtime) is built; the
//! per-call numbers apply to every call of every plugin it hosts, unless
//! the plugin's own [`PluginLimits`] ask for less.

use bazaar_kernel::model::{ID_LEN_MAX, TEXT_LEN_MAX};
use bazaar_kernel::{ADJUSTMENTS_MAX, SHIPMENTS_MAX};

use crate::error::LoadError;

/// Default deadline of one call: a pricing or routing call sits on the
/// order path, so it gets a few milliseconds of real budget; a Rust plugin
/// answers in microseconds, and 20 ms leaves room for interpreted
/// toolchains (Python, JavaScript) without letting a stuck plugin hold an
/// order for long.
pub const CALL_DEADLINE_MS_DEFAULT: u64 = 20;
/// Default memory of one plugin instance: 64 MiB holds the heap of a
/// Python or JavaScript component with room to spare and keeps a full pool
/// of instances within a small machine's RAM.
pub const MEMORY_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;
/// Default number of live plugin instances (pool slots) on one node.
///
/// A node keeps one instance per (plugin version, store) per worker, so
/// that one store's guest memory is never seen by another store's calls:
/// a few workers times a few dozen stores and a few plugins needs hundreds
/// to a thousand. The cost of a slot is address space, not RAM: on x86_64
/// each of the (at most two) linear memories of a slot reserves wasmtime's 4 GiB static reservation plus a 32 MiB guard region
/// (kept: they are what let compiled code skip bounds checks), so 1024
/// slots reserve 2048 x 4.03 GiB = 8.06 TiB, about 6% of the 128 TiB a
/// process can address, plus 6 GiB for tables; none of it is committed
/// until an instance touches it.
pub const INSTANCES_MAX_DEFAULT: u32 = 1024;
/// Default number of elements of one wasm table: interpreters built as
/// components (CPython, StarlingMonkey) have function tables of tens of
/// thousands of entries; each element costs one pointer per pool slot.
pub const TABLE_ELEMENTS_MAX_DEFAULT: usize = 100_000;
/// Default wasm stack of one call: 512 KiB is wasmtime's own default and
/// far below the 2 MiB stack of a Rust worker thread, so a runaway
/// recursion is a clean trap, never a host stack overflow.
pub const WASM_STACK_BYTES_MAX_DEFAULT: usize = 512 * 1024;
/// Default size of a component's binary: interpreted toolchains produce
/// components of 12 to 18 MB; 64 MiB admits them and refuses anything
/// absurd before compilation spends seconds on it.
pub const COMPONENT_BYTES_MAX_DEFAULT: usize = 64 * 1024 * 1024;
/// Default number of log lines one call may write: enough to explain a
/// decision, not enough to flood the node's log at a flash-sale's rate.
pub const LOG_LINES_PER_CALL_MAX_DEFAULT: u32 = 16;
/// Default length of one log line in bytes; longer lines are truncated.
pub const LOG_LINE_BYTES_MAX_DEFAULT: usize = 1024;
/// Default length of a plugin-produced machine code (adjustment code, risk
/// verdict code): codes are identifiers such as "spend-300-get-50".
pub const OUTPUT_CODE_BYTES_MAX_DEFAULT: usize = ID_LEN_MAX;
/// Default length of plugin-produced text shown to people (adjustment
/// reason, carrier name, the reason of a risk verdict): the kernel's limit
/// on free text.
pub const OUTPUT_TEXT_BYTES_MAX_DEFAULT: usize = TEXT_LEN_MAX;
/// Default number of lines in one shipment: one per distinct SKU of the
/// largest order the kernel accepts.
pub const SHIPMENT_LINES_MAX_DEFAULT: usize = bazaar_kernel::model::ORDER_LINES_MAX;
/// Default wall-clock budget of one compilation: interpreted toolchains
/// took 6 to 13 s on a 2-core machine that was busy with other work
/// (measured: componentize-py 18 MB, 8.8 to 9.3 s; componentize-js 12 MB,
/// 6.0 to 12.7 s), a Rust plugin 0.1 to 0.3 s. 60 s is about five times
/// the slowest, for a node compiling while it serves orders, and is as
/// long as an install waits for the compiler.
pub const COMPILE_BUDGET_MS_DEFAULT: u64 = 60_000;

/// What the runtime allows a plugin instance and a plugin call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeLimits {
    /// Wall-clock budget of one call (and of the instantiation that may
    /// precede it), enforced by epoch interruption.
    pub call_deadline_ms: u64,
    /// Linear memory one plugin instance may hold, over all its memories.
    pub memory_bytes_max: u64,
    /// Live plugin instances on the node: the slots of the pooling
    /// allocator. A call that needs a new instance when every slot is taken
    /// fails with [`CallError::Instantiate`](crate::CallError::Instantiate).
    pub instances_max: u32,
    /// Elements of one wasm table of a plugin instance.
    pub table_elements_max: usize,
    /// Wasm stack of one call; deeper recursion traps as a stack overflow.
    pub wasm_stack_bytes_max: usize,
    /// Instruction budget of one call in wasmtime fuel units, or `None` to
    /// run without fuel metering. Metering is engine-wide and costs speed,
    /// so it is meant for certification runs rather than production.
    pub fuel_per_call: Option<u64>,
    /// Size of a component binary accepted for loading.
    pub component_bytes_max: usize,
    /// Wall-clock budget of one compilation; also the longest a compile
    /// waits for another one to release the compiler.
    pub compile_budget_ms: u64,
    /// Price adjustments one pricing call may return.
    pub adjustments_per_call_max: usize,
    /// Shipments one routing call may return.
    pub shipments_per_plan_max: usize,
    /// Lines one shipment may carry.
    pub shipment_lines_max: usize,
    /// Length of a machine-readable code a plugin returns, in bytes.
    pub output_code_bytes_max: usize,
    /// Length of human-readable text a plugin returns, in bytes.
    pub output_text_bytes_max: usize,
    /// Log lines one call may write; further lines are dropped and counted.
    pub log_lines_per_call_max: u32,
    /// Length of one log line in bytes; longer lines are truncated.
    pub log_line_bytes_max: usize,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        Self {
            call_deadline_ms: CALL_DEADLINE_MS_DEFAULT,
            memory_bytes_max: MEMORY_BYTES_MAX_DEFAULT,
            instances_max: INSTANCES_MAX_DEFAULT,
            table_elements_max: TABLE_ELEMENTS_MAX_DEFAULT,
            wasm_stack_bytes_max: WASM_STACK_BYTES_MAX_DEFAULT,
            fuel_per_call: None,
            component_bytes_max: COMPONENT_BYTES_MAX_DEFAULT,
            compile_budget_ms: COMPILE_BUDGET_MS_DEFAULT,
            adjustments_per_call_max: ADJUSTMENTS_MAX,
            shipments_per_plan_max: SHIPMENTS_MAX,
            shipment_lines_max: SHIPMENT_LINES_MAX_DEFAULT,
            output_code_bytes_max: OUTPUT_CODE_BYTES_MAX_DEFAULT,
            output_text_bytes_max: OUTPUT_TEXT_BYTES_MAX_DEFAULT,
            log_lines_per_call_max: LOG_LINES_PER_CALL_MAX_DEFAULT,
            log_line_bytes_max: LOG_LINE_BYTES_MAX_DEFAULT,
        }
    }
}

/// Largest call deadline accepted: a minute is already far beyond any
/// order-path budget; the bound keeps the epoch arithmetic trivially safe.
pub const CALL_DEADLINE_MS_LIMIT: u64 = 60_000;
/// Largest instance memory accepted: 4 GiB is all a 32-bit wasm memory
/// can address.
pub const MEMORY_BYTES_LIMIT: u64 = 4 * 1024 * 1024 * 1024;
/// Most pool slots accepted: each reserves address space for its two
/// memories (2 x 4.03 GiB, see [`INSTANCES_MAX_DEFAULT`]); 10,000 slots
/// reserve about 79 TiB, still inside the 128 TiB a process can address on
/// x86_64.
pub const INSTANCES_LIMIT: u32 = 10_000;
/// Largest wasm stack accepted: it must stay well below the stack of the
/// host threads that run plugin calls.
pub const WASM_STACK_BYTES_LIMIT: usize = 1024 * 1024;
/// Largest compile budget accepted: ten minutes is already far beyond any
/// real toolchain's output, and a compile slot held longer would keep
/// every other install waiting.
pub const COMPILE_BUDGET_MS_LIMIT: u64 = 600_000;

impl RuntimeLimits {
    /// Checks that every limit is usable: non-zero where zero would make
    /// every call fail, and within the ceilings above.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(&str, bool); 9] = [
            (
                "call_deadline_ms must be 1 to 60000",
                (1..=CALL_DEADLINE_MS_LIMIT).contains(&self.call_deadline_ms),
            ),
            (
                "memory_bytes_max must be 64 KiB to 4 GiB",
                (WASM_PAGE_BYTES..=MEMORY_BYTES_LIMIT).contains(&self.memory_bytes_max),
            ),
            (
                "instances_max must be 1 to 10000",
                (1..=INSTANCES_LIMIT).contains(&self.instances_max),
            ),
            ("table_elements_max must be at least 1", self.table_elements_max >= 1),
            (
                "wasm_stack_bytes_max must be 64 KiB to 1 MiB",
                (64 * 1024..=WASM_STACK_BYTES_LIMIT).contains(&self.wasm_stack_bytes_max),
            ),
            ("fuel_per_call must be at least 1", self.fuel_per_call != Some(0)),
            ("component_bytes_max must be at least 1", self.component_bytes_max >= 1),
            (
                "compile_budget_ms must be 1 to 600000",
                (1..=COMPILE_BUDGET_MS_LIMIT).contains(&self.compile_budget_ms),
            ),
            ("log_line_bytes_max must be at least 1", self.log_line_bytes_max >= 1),
        ];
        match checks.iter().find(|(_, ok)| !ok) {
            Some((message, _)) => Err((*message).to_owned()),
            None => Ok(()),
        }
    }
}

/// Size of a WebAssembly page: linear memory grows in these steps.
pub(crate) const WASM_PAGE_BYTES: u64 = 64 * 1024;

/// What one plugin asks for below the node's limits (its manifest's
/// `[limits]`). `None` takes the node's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PluginLimits {
    /// Wall-clock budget of one call; at most the node's.
    pub call_deadline_ms: Option<u64>,
    /// Linear memory one instance may hold; at most the node's.
    pub memory_bytes_max: Option<u64>,
    /// Instruction budget of one call in fuel units; needs a node that
    /// meters fuel, and at most the node's budget.
    pub fuel_per_call: Option<u64>,
    /// Calls in flight at once over every worker's instance of the plugin;
    /// at most the node's instance pool, since each call needs an instance.
    /// `None` leaves it bounded only by the worker threads.
    pub concurrency_max: Option<u32>,
}

/// The limits one loaded plugin runs under: the node's, lowered where the
/// plugin asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EffectiveLimits {
    /// Wall-clock budget of one call.
    pub(crate) call_deadline_ms: u64,
    /// Linear memory one instance may hold.
    pub(crate) memory_bytes_max: u64,
    /// Fuel of one call, when the engine meters fuel.
    pub(crate) fuel_per_call: Option<u64>,
    /// Calls in flight at once, if capped.
    pub(crate) concurrency_max: Option<u32>,
}

impl PluginLimits {
    /// The limits a plugin runs under on a node with `node`'s limits, or
    /// why the request cannot be met.
    pub(crate) fn resolve(&self, node: &RuntimeLimits) -> Result<EffectiveLimits, LoadError> {
        let call_deadline_ms =
            bounded("call_deadline_ms", self.call_deadline_ms, 1, node.call_deadline_ms)?;
        let memory_bytes_max = bounded(
            "memory_bytes_max",
            self.memory_bytes_max,
            WASM_PAGE_BYTES,
            node.memory_bytes_max,
        )?;
        let fuel_per_call = match (self.fuel_per_call, node.fuel_per_call) {
            (Some(requested), None) => return Err(LoadError::FuelNotMetered { requested }),
            (requested, Some(node_fuel)) => {
                Some(bounded("fuel_per_call", requested, 1, node_fuel)?)
            }
            (None, None) => None,
        };
        let concurrency_max = match self.concurrency_max {
            Some(requested) => {
                let max = bounded(
                    "concurrency_max",
                    Some(u64::from(requested)),
                    1,
                    u64::from(node.instances_max),
                )?;
                // Bounded by a u32 just above, so the conversion is exact.
                Some(u32::try_from(max).unwrap_or(u32::MAX))
            }
            None => None,
        };
        Ok(EffectiveLimits { call_deadline_ms, memory_bytes_max, fuel_per_call, concurrency_max })
    }
}

impl EffectiveLimits {
    /// The node's own limits, for a plugin that asks for nothing less.
    pub(crate) fn of_node(node: &RuntimeLimits) -> Self {
        Self {
            call_deadline_ms: node.call_deadline_ms,
            memory_bytes_max: node.memory_bytes_max,
            fuel_per_call: node.fuel_per_call,
            concurrency_max: None,
        }
    }
}

/// `requested` if it lies in `minimum..=node`, `node` if absent.
pub(crate) fn bounded(
    limit: &'static str,
    requested: Option<u64>,
    minimum: u64,
    node: u64,
) -> Result<u64, LoadError> {
    match requested {
        None => Ok(node),
        Some(requested) if requested < minimum => {
            Err(LoadError::LimitBelowMinimum { limit, requested, minimum })
        }
        Some(requested) if requested > node => {
            Err(LoadError::LimitAboveNode { limit, requested, node })
        }
        Some(requested) => Ok(requested),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_that_asks_for_nothing_runs_under_the_nodes_limits() {
        let node = RuntimeLimits::default();
        assert_eq!(PluginLimits::default().resolve(&node), Ok(EffectiveLimits::of_node(&node)));
    }

    #[test]
    fn a_plugin_may_ask_for_less_than_the_node() {
        let node = RuntimeLimits { fuel_per_call: Some(1_000), ..RuntimeLimits::default() };
        let asked = PluginLimits {
            call_deadline_ms: Some(5),
            memory_bytes_max: Some(WASM_PAGE_BYTES),
            fuel_per_call: Some(10),
            concurrency_max: Some(3),
        };
        assert_eq!(
            asked.resolve(&node),
            Ok(EffectiveLimits {
                call_deadline_ms: 5,
                memory_bytes_max: WASM_PAGE_BYTES,
                fuel_per_call: Some(10),
                concurrency_max: Some(3),
            })
        );
    }

    #[test]
    fn a_limit_of_zero_is_refused_naming_the_minimum() {
        let asked = PluginLimits { concurrency_max: Some(0), ..PluginLimits::default() };
        assert_eq!(
            asked.resolve(&RuntimeLimits::default()),
            Err(LoadError::LimitBelowMinimum {
                limit: "concurrency_max",
                requested: 0,
                minimum: 1
            })
        );
    }

    #[test]
    fn concurrency_above_the_instance_pool_is_refused() {
        let node = RuntimeLimits { instances_max: 4, ..RuntimeLimits::default() };
        let asked = PluginLimits { concurrency_max: Some(5), ..PluginLimits::default() };
        assert_eq!(
            asked.resolve(&node),
            Err(LoadError::LimitAboveNode { limit: "concurrency_max", requested: 5, node: 4 })
        );
    }

    #[test]
    fn fuel_on_a_node_without_metering_is_refused_naming_the_fix() {
        let asked = PluginLimits { fuel_per_call: Some(10), ..PluginLimits::default() };
        let refused = asked.resolve(&RuntimeLimits::default());
        assert_eq!(refused, Err(LoadError::FuelNotMetered { requested: 10 }));
        let message = refused.err().map(|error| error.to_string()).unwrap_or_default();
        assert!(message.contains("RuntimeLimits::fuel_per_call"), "{message}");
    }
}
