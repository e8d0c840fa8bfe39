//! The `bazaar` command's work: the Double-11 demo, the benchmarks (over an
//! in-process node, and over HTTP against `bazaar serve`), and the soak load
//! that the crash test drives.

pub mod bench;
pub mod demo;
pub mod load;
pub mod loadgen;
pub mod soak;
