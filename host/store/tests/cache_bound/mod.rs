//! The check both engines' cache tests share: writing a journal several
//! times larger than the engine's cache grows the process's memory by about
//! the cache, not by the journal, and every record reads back. Each engine's
//! test is a binary of its own, so that no other test's memory shares the
//! resident set it measures.

use bazaar_store::{Backend, Commit, JournalRecord};

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

/// Writes `caches` times `cache_bytes` of journal to a fresh `backend`, in
/// commits of `records_per_commit` records of `record_bytes`, requires the
/// resident set to grow by less than half of the cache and the journal
/// together, and reads every record back.
pub fn a_journal_larger_than_the_cache_stays_out_of_memory(
    backend: Backend,
    cache_bytes: usize,
    caches: usize,
    record_bytes: usize,
    records_per_commit: usize,
) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let storage = bazaar_store::open(backend, dir.path()).expect("open fresh storage");
    let journal_bytes = caches * cache_bytes;
    let before_kib = resident_kib();
    let mut sequence = 0;
    while sequence * record_bytes < journal_bytes {
        let records = (0..records_per_commit)
            .map(|_| {
                sequence += 1;
                // Every byte set, so no page of the payload stays untouched.
                let payload = vec![u8::try_from(sequence % 251).expect("fits") + 1; record_bytes];
                JournalRecord { stream: 0, sequence: sequence as u64, payload }
            })
            .collect();
        storage.commit(&Commit { records, snapshots: Vec::new() }).expect("commit");
    }
    let grown_kib = resident_kib().saturating_sub(before_kib);
    // The cache, one commit's pages and the allocator's slack stay well
    // under half the journal; both engines' default caches (1 GiB) kept
    // all of it.
    let bound_kib = (cache_bytes + journal_bytes) / 2 / 1024;
    assert!(
        grown_kib < bound_kib,
        "writing {} MiB of journal to {backend:?} grew the resident set by {} MiB (cache {} MiB)",
        journal_bytes >> 20,
        grown_kib >> 10,
        cache_bytes >> 20
    );
    // Every record is still there, read back from the file.
    let mut read = 0;
    storage
        .read_journal(0, 0, &mut |record| {
            read += 1;
            assert_eq!(record.payload.len(), record_bytes);
            Ok(())
        })
        .expect("read the journal");
    assert_eq!(read, sequence);
}
