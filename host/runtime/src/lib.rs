//! Bazaar's plugin runtime: partners' WebAssembly components, hosted by
//! wasmtime with a deadline, a memory cap and no ambient power.
//!
//! One [`Runtime`] per node owns the engine (pooling allocator, epoch
//! interruption, optional fuel). A component goes through three steps:
//!
//! 1. [`Runtime::compile`] (or [`Runtime::compile_cached`] through an
//!    [`ArtifactCache`]): size, header and code-shape checks, then Cranelift
//!    on the runtime's compile thread within a time budget, one compilation
//!    at a time. The result is a [`CompiledComponent`].
//! 2. [`Runtime::check`], at install: every import against the plugin's
//!    granted [`Capability`](bazaar_kernel::model::Capability)s and the
//!    interfaces the host provides, every export against its extension
//!    point's world; the answer is a [`ComponentReport`].
//! 3. [`Runtime::load`]: links the compiled component against the host
//!    interfaces (Bazaar's `log`, `config` and `state`, and WASI with a
//!    deny-all, deterministic context) under the plugin's own
//!    [`PluginLimits`], giving a [`LoadedPlugin`]. Cheap, so it can sit on
//!    the hot-swap path. [`Runtime::load_pricing`],
//!    [`Runtime::load_logistics`], [`Runtime::load_risk`],
//!    [`Runtime::load_analytics`] and [`Runtime::load_driver`] do steps 1
//!    and 3 in one go for trusted first-party components.
//!
//! Each worker thread then holds a [`Pricer`], [`ShipmentRouter`],
//! [`RiskAssessor`], [`Analyzer`] or [`DeviceDriver`], which keeps one
//! instance alive across calls and replaces it after a trap. The first
//! three sit on the order path; an [`Analyzer`] is fed a store's committed
//! events in batches and answers dashboards' queries, off the order path.
//! A [`DeviceDriver`] speaks a device vendor's protocol for the device bus,
//! also off the order path: it names a device's MQTT topics, turns the
//! host's [`DeviceCommand`]s into [`Frame`]s to publish and inbound
//! messages into [`DeviceEvent`]s, and remembers each device only through
//! the memory the host hands back to it; the host does all the input and
//! output, and its output is checked strictly, since a fault quarantines
//! the device. A plugin's deadline, memory cap and fuel apply
//! to every call; its concurrency cap counts calls in flight over all its
//! workers, and a call over it fails at once with
//! [`CallError::ConcurrencyLimit`].
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
//! calls it serves; a node that keeps one instance per store (the reason
//! for the size of [`INSTANCES_MAX_DEFAULT`]) keeps what one store's calls
//! left in memory from every other store. A plugin cannot see another
//! plugin's memory, and nothing it remembers reaches the journal except
//! through `state`.

mod analytics;
mod bindings;
mod cache;
mod call;
mod check;
mod compile;
mod convert;
mod device;
mod driver;
mod error;
mod event_lowering;
mod extension;
mod host;
mod limits;
mod logistics;
mod plugin;
mod pricing;
mod risk;
mod runtime;
mod store_data;
mod text;

pub use analytics::{
    AnalyticsPlugin, Analyzer, EVENTS_PER_BATCH_MAX, QUERY_ANSWER_BYTES_MAX,
    QUERY_ARGUMENTS_BYTES_MAX, QUERY_NAME_BYTES_MAX,
};
pub use cache::{ArtifactCache, CacheOutcome};
pub use call::{CALL_LATENCY_BUCKETS_US, CallCounters, CallLatency, CallOutcome, PluginCall};
pub use check::ComponentReport;
pub use compile::{CompiledComponent, FUNCTION_BODY_BYTES_MAX, FUNCTIONS_PER_COMPONENT_MAX};
pub use device::{
    ActionKind, ActionStatus, ConnectionState, Decoded, DeviceCommand, DeviceContext, DeviceError,
    DeviceEvent, DeviceInfo, DevicePosition, DriverRefusal, Encoded, ErrorLevel, Frame, Job,
    MapNode, Stop, StopAction,
};
pub use driver::{
    BATTERY_PERMILLE_MAX, COORDINATE_MM_MAX, DEVICE_TEXT_BYTES_MAX, DRIVER_MEMORY_BYTES_MAX,
    DeviceDriver, DriverPlugin, ERROR_DESCRIPTION_BYTES_MAX, ERRORS_PER_EVENT_MAX,
    EVENTS_PER_FRAME_MAX, FRAME_PAYLOAD_BYTES_MAX, FRAMES_PER_COMMAND_MAX,
    INBOUND_PAYLOAD_BYTES_MAX, JOB_STOPS_MAX, REFUSAL_TEXT_BYTES_MAX, SUBSCRIPTIONS_PER_DEVICE_MAX,
    THETA_MRAD_MAX, TOPIC_BYTES_MAX,
};
pub use error::{CallError, LoadError, PluginError};
pub use host::log::PLUGIN_LOG_TARGET;
pub use limits::{
    CALL_DEADLINE_MS_DEFAULT, CALL_DEADLINE_MS_LIMIT, COMPILE_BUDGET_MS_DEFAULT,
    COMPILE_BUDGET_MS_LIMIT, COMPONENT_BYTES_MAX_DEFAULT, INSTANCES_LIMIT, INSTANCES_MAX_DEFAULT,
    LOG_LINE_BYTES_MAX_DEFAULT, LOG_LINES_PER_CALL_MAX_DEFAULT, MEMORY_BYTES_LIMIT,
    MEMORY_BYTES_MAX_DEFAULT, OUTPUT_CODE_BYTES_MAX_DEFAULT, OUTPUT_TEXT_BYTES_MAX_DEFAULT,
    PluginLimits, RuntimeLimits, SHIPMENT_LINES_MAX_DEFAULT, TABLE_ELEMENTS_MAX_DEFAULT,
    WASM_STACK_BYTES_LIMIT, WASM_STACK_BYTES_MAX_DEFAULT,
};
pub use logistics::{LogisticsPlugin, RouteRequest, ShipmentRouter};
pub use plugin::LoadedPlugin;
pub use pricing::{Pricer, PricingPlugin};
pub use risk::{
    CustomerHistory, Decision, RiskAssessor, RiskPlugin, RiskRequest, RiskVerdict, UnitsHeld,
};
pub use runtime::{EPOCH_TICK_MS, Runtime, RuntimeError};
