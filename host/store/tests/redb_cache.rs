//! redb's page cache stays within [`REDB_CACHE_BYTES`]: with redb's
//! default (1 GiB) the 256 MiB journal written here stayed in memory whole.

#![cfg(target_os = "linux")]

mod cache_bound;

use bazaar_store::{Backend, REDB_CACHE_BYTES};

#[test]
fn a_journal_larger_than_the_page_cache_is_not_kept_in_memory() {
    // Four caches' worth, in records of 256 KiB and commits of 8 MiB, so a
    // commit's own pages are small beside the cache. It grows about 72 MiB.
    cache_bound::a_journal_larger_than_the_cache_stays_out_of_memory(
        Backend::Redb,
        REDB_CACHE_BYTES,
        4,
        256 * 1024,
        32,
    );
}
