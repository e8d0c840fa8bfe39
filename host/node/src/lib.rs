//! The Bazaar node: stores partitioned into shards with one writer thread
//! each, the plugins every order runs through (with their failure
//! policies), the group-committed journal, and recovery. The `bazaar`
//! binary and the HTTP server drive it.

pub mod breaker;
pub mod consumer;
pub mod devices;
pub mod events;
pub mod load;
pub mod native;
pub mod node;
pub mod pipeline;
pub mod platform;
pub mod plugins;
pub mod router;
pub mod seed;
pub mod snapshot_files;

pub use node::{
    AfterApply, Node, NodeConfig, NodeError, NodeStats, OrderReceipt, Preview, PreviewReply, Read,
    Reply, wall_clock_ms,
};
pub use pipeline::{PluginOutputs, Refusal};
pub use plugins::{FailurePolicy, Implementation, PluginSet};
