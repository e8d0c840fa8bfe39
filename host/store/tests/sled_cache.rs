//! sled's cache stays within [`SLED_CACHE_BYTES`]: with sled's default
//! (1 GiB) the 256 MiB journal written here stayed in memory whole.

#![cfg(all(target_os = "linux", feature = "sled"))]

mod cache_bound;

use bazaar_store::{Backend, SLED_CACHE_BYTES};

#[test]
fn a_journal_larger_than_the_cache_is_not_kept_in_memory() {
    // Records of 16 KiB, the size of a shard batch's record under load (a
    // few dozen orders of about 440 bytes), in commits of 1 MiB.
    cache_bound::a_journal_larger_than_the_cache_stays_out_of_memory(
        Backend::Sled,
        SLED_CACHE_BYTES,
        16 * 1024,
        64,
    );
}
