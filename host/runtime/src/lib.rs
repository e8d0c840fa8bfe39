//! Bazaar's plugin runtime: partners' WebAssembly components, hosted by
//! wasmtime with a deadline, a memory cap and no ambient power.
//!
//! One [`Runtime`] per node owns the engine (pooling allocator, epoch
//! interruption, optional fuel). [`Runtime::load_pricing`],
//! [`Runtime::load_logistics`] and [`Runtime::load_risk`] compile a
//! component once per plugin version and link it against the host
//! interfaces it may import: Bazaar's `log`, `config` and `state`, and WASI
//! with a deny-all, deterministic context. Each worker thread then holds a
//! [`Pricer`], [`ShipmentRouter`] or [`RiskAssessor`], which keeps one
//! instance alive across calls and replaces it after a trap.
//!
//! A call is blocking CPU work. It takes a [`PluginCall`] (the store, its
//! configuration and state, the order's timestamp and a random seed) and
//! returns a [`CallOutcome`]: the plugin's output converted to kernel types
//! and checked for shape, or a [`CallError`] naming the cause, plus the
//! state writes for the kernel to journal.
//!
//! Isolation: the host hands each call only its own store's configuration
//! and state, and takes them back when the call ends. An instance's linear
//! memory does outlive a call, so a plugin can remember things between the
//! calls it serves (for any store that enabled it); it cannot see another
//! plugin's memory, and nothing it remembers reaches the journal except
//! through `state`.

mod bindings;
mod call;
mod convert;
mod error;
mod extension;
mod host;
mod limits;
mod logistics;
mod pricing;
mod risk;
mod runtime;
mod store_data;
mod text;

pub use call::{CallCounters, CallOutcome, PluginCall};
pub use error::{CallError, LoadError, PluginError};
pub use host::log::PLUGIN_LOG_TARGET;
pub use limits::{
    CALL_DEADLINE_MS_DEFAULT, CALL_DEADLINE_MS_LIMIT, COMPONENT_BYTES_MAX_DEFAULT, INSTANCES_LIMIT,
    INSTANCES_MAX_DEFAULT, LOG_LINE_BYTES_MAX_DEFAULT, LOG_LINES_PER_CALL_MAX_DEFAULT,
    MEMORY_BYTES_LIMIT, MEMORY_BYTES_MAX_DEFAULT, OUTPUT_CODE_BYTES_MAX_DEFAULT,
    OUTPUT_TEXT_BYTES_MAX_DEFAULT, RuntimeLimits, SHIPMENT_LINES_MAX_DEFAULT,
    TABLE_ELEMENTS_MAX_DEFAULT, WASM_STACK_BYTES_LIMIT, WASM_STACK_BYTES_MAX_DEFAULT,
};
pub use logistics::{LogisticsPlugin, RouteRequest, ShipmentRouter, StockAvailability};
pub use pricing::{Pricer, PricingPlugin};
pub use risk::{
    CustomerHistory, Decision, RiskAssessor, RiskPlugin, RiskRequest, RiskVerdict, UnitsHeld,
};
pub use runtime::{EPOCH_TICK_MS, Runtime, RuntimeError};
