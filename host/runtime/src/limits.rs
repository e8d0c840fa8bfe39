//! The limits of the plugin runtime: what one plugin instance may consume
//! and what one call may hand back.
//!
//! Everything a plugin controls has a ceiling here, with the reason for its
//! default next to it. The engine-wide numbers (pool slots, stack size, fuel
//! switch) are fixed when the [`Runtime`](crate::Runtime) is built; the
//! per-call numbers apply to every call of every plugin it hosts.

use bazaar_kernel::model::{ID_LEN_MAX, TEXT_LEN_MAX};
use bazaar_kernel::{ADJUSTMENTS_MAX, SHIPMENTS_MAX};

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
/// Default number of live plugin instances (pool slots) on one node: one
/// per plugin per worker thread, for a few dozen workers and a few plugins.
pub const INSTANCES_MAX_DEFAULT: u32 = 256;
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
/// Most pool slots accepted: each reserves address space for its
/// memories; 10,000 slots stay well inside a 64-bit address space.
pub const INSTANCES_LIMIT: u32 = 10_000;
/// Largest wasm stack accepted: it must stay well below the stack of the
/// host threads that run plugin calls.
pub const WASM_STACK_BYTES_LIMIT: usize = 1024 * 1024;

impl RuntimeLimits {
    /// Checks that every limit is usable: non-zero where zero would make
    /// every call fail, and within the ceilings above.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(&str, bool); 8] = [
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
