//! The `bazaar` command's work: the Double-11 demo, the benchmarks (over an
//! in-process node, and over HTTP against `bazaar serve`), the soak load
//! that the crash test drives, and the `bazaar plugin` commands.

mod arrival;
pub mod bench;
pub mod demo;
pub mod freshness;
pub use bazaar_node::load;
pub mod loadgen;
pub mod overload;
pub mod plugin_cli;
mod scratch;
pub mod soak;
