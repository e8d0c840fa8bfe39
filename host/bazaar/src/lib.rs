//! The `bazaar` command's work: the Double-11 demo, the benchmarks, and the
//! soak load that the crash test drives, all over an in-process node.

pub mod bench;
pub mod demo;
pub mod load;
pub mod soak;
