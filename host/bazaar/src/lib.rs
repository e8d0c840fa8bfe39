//! The Bazaar node as a library: the sharded order pipeline over the kernel,
//! the journal and the plugin runtime, plus the demo, benchmarks and soak
//! load that the `bazaar` command runs.

pub mod bench;
pub mod demo;
pub mod load;
pub mod node;
pub mod plugins;
pub mod router;
pub mod seed;
pub mod soak;
