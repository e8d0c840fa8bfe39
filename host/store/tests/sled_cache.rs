//! sled's cache stays within [`SLED_CACHE_BYTES`]: with sled's default
//! (1 GiB) the 512 MiB journal written here stayed in memory whole.

#![cfg(all(target_os = "linux", feature = "sled"))]

mod cache_bound;

use bazaar_store::{Backend, SLED_CACHE_BYTES};

#[test]
fn a_journal_larger_than_the_cache_is_not_kept_in_memory() {
    // Eight caches' worth, in records of 16 KiB, the size of a shard
    // batch's record under load (a few dozen orders of about 440 bytes),
    // and commits of 1 MiB. sled's write buffers come on top of its cache:
    // it grows about 130 MiB, against a bound of 288 MiB.
    cache_bound::a_journal_larger_than_the_cache_stays_out_of_memory(
        Backend::Sled,
        SLED_CACHE_BYTES,
        8,
        16 * 1024,
        64,
    );
}
