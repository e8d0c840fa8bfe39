//! redb's page cache stays within [`REDB_CACHE_BYTES`]: a journal several
//! times larger than the cache grows the process's memory by about the
//! cache, not by the journal. A test binary of its own, so that no other
//! test's memory shares the resident set it measures.

#![cfg(target_os = "linux")]

use bazaar_store::{Backend, Commit, JournalRecord, REDB_CACHE_BYTES};

/// Bytes of one record's payload.
const RECORD_BYTES: usize = 256 * 1024;
/// Records per commit: 8 MiB, so a commit's own pages are small beside the
/// cache.
const RECORDS_PER_COMMIT: usize = 32;

/// The process's resident set in KiB, from `/proc/self/status`.
fn resident_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

#[test]
fn a_journal_larger_than_the_page_cache_is_not_kept_in_memory() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let storage = bazaar_store::open(Backend::Redb, dir.path()).expect("open fresh storage");
    let journal_bytes = 4 * REDB_CACHE_BYTES;
    let before_kib = resident_kib();
    let mut sequence = 0;
    while sequence * RECORD_BYTES < journal_bytes {
        let records = (0..RECORDS_PER_COMMIT)
            .map(|_| {
                sequence += 1;
                // Every byte set, so no page of the payload stays untouched.
                let payload = vec![u8::try_from(sequence % 251).expect("fits") + 1; RECORD_BYTES];
                JournalRecord { stream: 0, sequence: sequence as u64, payload }
            })
            .collect();
        storage.commit(&Commit { records, snapshots: Vec::new() }).expect("commit");
    }
    let grown_kib = resident_kib().saturating_sub(before_kib);
    // The cache, one commit's pages and the allocator's slack stay well
    // under half the journal; redb's default cache (1 GiB) kept all of it.
    let bound_kib = (REDB_CACHE_BYTES + journal_bytes) / 2 / 1024;
    assert!(
        grown_kib < bound_kib,
        "writing {} MiB of journal grew the resident set by {} MiB (cache {} MiB)",
        journal_bytes >> 20,
        grown_kib >> 10,
        REDB_CACHE_BYTES >> 20
    );
    // Every record is still there, read back from the file.
    let mut read = 0;
    storage
        .read_journal(0, 0, &mut |record| {
            read += 1;
            assert_eq!(record.payload.len(), RECORD_BYTES);
            Ok(())
        })
        .expect("read the journal");
    assert_eq!(read, sequence);
}
