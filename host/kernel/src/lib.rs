//! Bazaar's kernel: a deterministic state machine for catalogue, inventory
//! and orders.
//!
//! The kernel does no IO: no files, no sockets, no clock, no plugins. Time,
//! identifiers and plugin outputs enter as data inside [`Command`]s, so
//! applying the same commands to the same state always gives the same state;
//! that is what makes recovery by journal replay exact. State is partitioned
//! into [`Shard`]s of whole stores; each shard has one writer.

mod command;
pub mod device;
mod error;
pub mod event;
mod hash_index;
pub mod model;
pub mod money;
mod order_log;
mod shard;

pub use command::{
    Command, Outcome, PLUGIN_CONFIG_LEN_MAX, PLUGINS_PER_STORE_MAX, PlaceOrder, PlaceOrderCommand,
    PluginSettings, PricingRules, STATE_KEY_LEN_MAX, STATE_KEYS_MAX, STATE_VALUE_LEN_MAX,
    STATE_WRITES_PER_ORDER_MAX, StateWrite,
};
pub use error::KernelError;
pub use order_log::OrderLog;
pub use shard::{
    ADJUSTMENTS_MAX, Digest, IdempotencyCheck, PluginConfig, PluginStateMap,
    SHIPMENT_FEE_MINOR_MAX, SHIPMENTS_MAX, Shard, SnapshotCopy, StoreState, order_totals,
    validate_adjustments,
};
