//! One conformance suite for every storage backend.
//!
//! Each check is written once as a function over a [`Harness`] holding an
//! `Arc<dyn Storage>`; the `conformance!` macro instantiates every check as a
//! test per backend (`redb::...`, and `sled::...` with the `sled` feature),
//! so a backend passes exactly the same behaviour or fails by name.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use bazaar_store::{
    Backend, Commit, Journal, JournalLimits, JournalRecord, KV_KEY_BYTES_MAX, KV_VALUE_BYTES_MAX,
    RECORD_PAYLOAD_BYTES_MAX, Snapshot, Storage, StoreError,
};
use tempfile::TempDir;

/// A backend opened in a fresh data directory that outlives reopening.
struct Harness {
    /// The data directory, deleted when the harness drops.
    dir: TempDir,
    /// The backend under test.
    backend: Backend,
    /// The open storage.
    storage: Arc<dyn Storage>,
}

impl Harness {
    fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let storage = bazaar_store::open(backend, dir.path()).expect("open fresh storage");
        Self { dir, backend, storage }
    }

    /// Closes the storage and opens the same directory again, as a restart
    /// would.
    fn reopen(self) -> Self {
        let Self { dir, backend, storage } = self;
        drop(storage);
        let storage = bazaar_store::open(backend, dir.path()).expect("reopen storage");
        Self { dir, backend, storage }
    }
}

fn record(stream: u32, sequence: u64) -> JournalRecord {
    JournalRecord {
        stream,
        sequence,
        payload: format!("stream {stream} record {sequence}").into_bytes(),
    }
}

fn records(stream: u32, sequences: std::ops::RangeInclusive<u64>) -> Vec<JournalRecord> {
    sequences.map(|sequence| record(stream, sequence)).collect()
}

fn snapshot(stream: u32, sequence: u64) -> Snapshot {
    Snapshot {
        stream,
        sequence,
        payload: format!("stream {stream} state at {sequence}").into_bytes(),
    }
}

fn commit_records(storage: &dyn Storage, records: Vec<JournalRecord>) -> Result<(), StoreError> {
    storage.commit(&Commit { records, snapshots: Vec::new() })
}

fn read_all(storage: &dyn Storage, stream: u32, after_sequence: u64) -> Vec<JournalRecord> {
    let mut read = Vec::new();
    storage
        .read_journal(stream, after_sequence, &mut |record| {
            read.push(record);
            Ok(())
        })
        .expect("read journal");
    read
}

fn sequences(records: &[JournalRecord]) -> Vec<u64> {
    records.iter().map(|record| record.sequence).collect()
}

fn appended_records_read_back_in_order(harness: Harness) {
    let storage = &*harness.storage;
    let mut first = records(1, 1..=2);
    first.extend(records(2, 1..=2));
    commit_records(storage, first).expect("first commit");
    commit_records(storage, vec![record(1, 3), record(2, 3), record(1, 4)])
        .expect("interleaved commit");

    assert_eq!(read_all(storage, 1, 0), records(1, 1..=4));
    assert_eq!(read_all(storage, 2, 0), records(2, 1..=3));
    assert_eq!(sequences(&read_all(storage, 1, 2)), vec![3, 4]);
    assert!(read_all(storage, 1, 4).is_empty());
    assert!(read_all(storage, 1, u64::MAX).is_empty());
    assert!(read_all(storage, 9, 0).is_empty());
    assert_eq!(storage.last_sequence(1), 4);
    assert_eq!(storage.last_sequence(2), 3);
    assert_eq!(storage.last_sequence(9), 0);
    assert_eq!(storage.streams(), vec![1, 2]);
}

fn reading_stops_at_the_first_error_of_the_visitor(harness: Harness) {
    let storage = &*harness.storage;
    commit_records(storage, records(1, 1..=5)).expect("commit");
    let mut visited = Vec::new();
    let stop = StoreError::InvalidLimits { reason: "visitor stops here".to_owned() };
    let outcome = storage.read_journal(1, 0, &mut |record| {
        visited.push(record.sequence);
        if record.sequence == 2 {
            return Err(stop.clone());
        }
        Ok(())
    });
    assert_eq!(outcome, Err(stop));
    assert_eq!(visited, vec![1, 2]);
}

fn a_gap_in_sequences_is_refused_and_nothing_is_written(harness: Harness) {
    let storage = &*harness.storage;
    commit_records(storage, vec![record(1, 1)]).expect("first record");

    let refused = commit_records(storage, vec![record(2, 1), record(1, 3)]);
    assert_eq!(refused, Err(StoreError::NotContiguous { stream: 1, expected: 2, found: 3 }));
    assert!(
        read_all(storage, 2, 0).is_empty(),
        "the valid part of a refused commit is not written"
    );
    assert_eq!(storage.last_sequence(1), 1);
    assert_eq!(storage.last_sequence(2), 0);
    assert_eq!(storage.streams(), vec![1]);

    let not_from_one = commit_records(storage, vec![record(3, 2)]);
    assert!(matches!(not_from_one, Err(StoreError::NotContiguous { expected: 1, .. })));
    let gap_inside_commit = commit_records(storage, vec![record(1, 2), record(1, 4)]);
    assert!(matches!(gap_inside_commit, Err(StoreError::NotContiguous { expected: 3, .. })));
    assert_eq!(read_all(storage, 1, 0), vec![record(1, 1)]);
}

fn a_duplicate_sequence_is_refused(harness: Harness) {
    let storage = &*harness.storage;
    commit_records(storage, records(1, 1..=2)).expect("first records");

    let duplicate = commit_records(storage, vec![record(1, 2)]);
    assert_eq!(duplicate, Err(StoreError::NotContiguous { stream: 1, expected: 3, found: 2 }));
    let repeated_in_one_commit = commit_records(storage, vec![record(1, 3), record(1, 3)]);
    assert!(matches!(repeated_in_one_commit, Err(StoreError::NotContiguous { .. })));
    assert_eq!(read_all(storage, 1, 0), records(1, 1..=2));
    assert_eq!(storage.last_sequence(1), 2);
}

fn a_snapshot_replaces_the_previous_one_and_compacts_the_journal(harness: Harness) {
    let storage = &*harness.storage;
    commit_records(storage, records(1, 1..=5)).expect("records");
    commit_records(storage, records(2, 1..=2)).expect("other stream");
    storage
        .commit(&Commit { records: Vec::new(), snapshots: vec![snapshot(1, 3)] })
        .expect("first snapshot");
    assert_eq!(storage.latest_snapshot(1).expect("read snapshot"), Some(snapshot(1, 3)));
    assert_eq!(sequences(&read_all(storage, 1, 0)), vec![4, 5]);
    assert_eq!(read_all(storage, 2, 0), records(2, 1..=2), "other streams keep their records");

    // A snapshot may cover records of its own commit, which are then never
    // visible in the journal.
    storage
        .commit(&Commit { records: records(1, 6..=7), snapshots: vec![snapshot(1, 6)] })
        .expect("second snapshot");
    assert_eq!(storage.latest_snapshot(1).expect("read snapshot"), Some(snapshot(1, 6)));
    assert_eq!(sequences(&read_all(storage, 1, 0)), vec![7]);
    assert_eq!(storage.last_sequence(1), 7);

    storage
        .commit(&Commit { records: Vec::new(), snapshots: vec![snapshot(1, 7)] })
        .expect("snapshot at the last sequence");
    assert!(read_all(storage, 1, 0).is_empty());
    assert_eq!(storage.last_sequence(1), 7, "the snapshot keeps the position");
    assert_eq!(storage.streams(), vec![1, 2]);
    commit_records(storage, vec![record(1, 8)]).expect("appending continues after the snapshot");
    assert_eq!(storage.latest_snapshot(2).expect("read snapshot"), None);
}

fn a_snapshot_beyond_the_last_sequence_is_refused(harness: Harness) {
    let storage = &*harness.storage;
    commit_records(storage, records(1, 1..=2)).expect("records");
    let refused =
        storage.commit(&Commit { records: vec![record(1, 3)], snapshots: vec![snapshot(1, 4)] });
    assert_eq!(
        refused,
        Err(StoreError::SnapshotBeyondJournal { stream: 1, sequence: 4, last_sequence: 3 })
    );
    assert_eq!(storage.latest_snapshot(1).expect("read snapshot"), None);
    assert_eq!(read_all(storage, 1, 0), records(1, 1..=2));
    assert_eq!(storage.last_sequence(1), 2);

    let on_empty_stream =
        storage.commit(&Commit { records: Vec::new(), snapshots: vec![snapshot(5, 1)] });
    assert!(matches!(on_empty_stream, Err(StoreError::SnapshotBeyondJournal { .. })));
    assert_eq!(storage.streams(), vec![1]);
}

fn a_snapshot_older_than_the_stored_one_is_refused(harness: Harness) {
    let storage = &*harness.storage;
    storage
        .commit(&Commit { records: records(1, 1..=4), snapshots: vec![snapshot(1, 3)] })
        .expect("records and snapshot");
    let refused = storage.commit(&Commit { records: Vec::new(), snapshots: vec![snapshot(1, 2)] });
    assert_eq!(
        refused,
        Err(StoreError::SnapshotBehindStored { stream: 1, sequence: 2, stored_sequence: 3 })
    );
    assert_eq!(storage.latest_snapshot(1).expect("read snapshot"), Some(snapshot(1, 3)));
}

fn everything_survives_reopening(harness: Harness) {
    let storage = &*harness.storage;
    storage
        .commit(&Commit { records: records(1, 1..=4), snapshots: vec![snapshot(1, 2)] })
        .expect("stream 1");
    commit_records(storage, records(7, 1..=3)).expect("stream 7");
    storage
        .commit(&Commit { records: records(9, 1..=2), snapshots: vec![snapshot(9, 2)] })
        .expect("stream 9, fully compacted");
    storage.kv_put(b"plugin/pricing", b"v1").expect("kv put");

    let harness = harness.reopen();
    let storage = &*harness.storage;
    assert_eq!(storage.streams(), vec![1, 7, 9]);
    assert_eq!(storage.last_sequence(1), 4);
    assert_eq!(storage.last_sequence(7), 3);
    assert_eq!(storage.last_sequence(9), 2, "a snapshot alone keeps the position");
    assert_eq!(read_all(storage, 1, 0), records(1, 3..=4));
    assert_eq!(read_all(storage, 7, 0), records(7, 1..=3));
    assert!(read_all(storage, 9, 0).is_empty());
    assert_eq!(storage.latest_snapshot(1).expect("read snapshot"), Some(snapshot(1, 2)));
    assert_eq!(storage.latest_snapshot(9).expect("read snapshot"), Some(snapshot(9, 2)));
    assert_eq!(storage.kv_get(b"plugin/pricing").expect("kv get"), Some(b"v1".to_vec()));

    // Contiguity is enforced from the recovered positions.
    assert!(matches!(
        commit_records(storage, vec![record(7, 3)]),
        Err(StoreError::NotContiguous { expected: 4, .. })
    ));
    assert!(matches!(
        commit_records(storage, vec![record(9, 1)]),
        Err(StoreError::NotContiguous { expected: 3, .. })
    ));
    commit_records(storage, vec![record(7, 4), record(9, 3)]).expect("appends continue");
}

fn registry_puts_gets_deletes_and_scans_by_prefix(harness: Harness) {
    let storage = &*harness.storage;
    assert_eq!(storage.kv_get(b"plugin/a").expect("get absent"), None);
    storage.kv_put(b"plugin/b", b"2").expect("put");
    storage.kv_put(b"plugin/a", b"1").expect("put");
    storage.kv_put(b"plugins", b"not under plugin/").expect("put");
    storage.kv_put(b"token/x", b"t").expect("put");
    storage.kv_put(b"plugin/a", b"1 again").expect("overwrite");

    assert_eq!(storage.kv_get(b"plugin/a").expect("get"), Some(b"1 again".to_vec()));
    assert_eq!(
        storage.kv_scan_prefix(b"plugin/").expect("scan"),
        vec![(b"plugin/a".to_vec(), b"1 again".to_vec()), (b"plugin/b".to_vec(), b"2".to_vec()),]
    );
    assert_eq!(storage.kv_scan_prefix(b"").expect("scan everything").len(), 4);
    assert!(storage.kv_scan_prefix(b"zzz").expect("scan nothing").is_empty());

    storage.kv_delete(b"plugin/a").expect("delete");
    storage.kv_delete(b"plugin/never").expect("deleting an absent key is fine");
    assert_eq!(storage.kv_get(b"plugin/a").expect("get deleted"), None);
    assert_eq!(storage.kv_scan_prefix(b"plugin/").expect("scan").len(), 1);
    assert!(storage.streams().is_empty(), "the registry is not a journal stream");
}

fn oversized_registry_keys_and_values_are_refused(harness: Harness) {
    let storage = &*harness.storage;
    let long_key = vec![b'k'; KV_KEY_BYTES_MAX + 1];
    let long_value = vec![b'v'; KV_VALUE_BYTES_MAX + 1];
    assert!(matches!(storage.kv_put(&long_key, b"v"), Err(StoreError::TooLarge { .. })));
    assert!(matches!(storage.kv_put(b"k", &long_value), Err(StoreError::TooLarge { .. })));
    assert!(matches!(storage.kv_get(&long_key), Err(StoreError::TooLarge { .. })));
    assert!(storage.kv_scan_prefix(b"").expect("scan").is_empty());
    storage
        .kv_put(&vec![b'k'; KV_KEY_BYTES_MAX], &vec![b'v'; KV_VALUE_BYTES_MAX])
        .expect("sizes at the limits are accepted");
}

fn an_empty_commit_is_accepted_and_changes_nothing(harness: Harness) {
    let storage = &*harness.storage;
    storage.commit(&Commit::default()).expect("empty commit on empty storage");
    assert!(storage.streams().is_empty());
    commit_records(storage, vec![record(1, 1)]).expect("record");
    storage.commit(&Commit::default()).expect("empty commit");
    assert_eq!(storage.last_sequence(1), 1);
    assert_eq!(read_all(storage, 1, 0), vec![record(1, 1)]);
}

fn an_oversized_record_is_refused_and_nothing_is_written(harness: Harness) {
    let storage = &*harness.storage;
    let oversized =
        JournalRecord { stream: 1, sequence: 2, payload: vec![0; RECORD_PAYLOAD_BYTES_MAX + 1] };
    let refused = commit_records(storage, vec![record(1, 1), oversized]);
    assert!(
        matches!(
            refused,
            Err(StoreError::TooLarge { size_bytes, size_bytes_max, .. })
                if size_bytes == RECORD_PAYLOAD_BYTES_MAX + 1 && size_bytes_max == RECORD_PAYLOAD_BYTES_MAX
        ),
        "{refused:?}"
    );
    assert!(read_all(storage, 1, 0).is_empty());
    assert_eq!(storage.last_sequence(1), 0);
    assert!(storage.streams().is_empty());
}

fn a_thousand_records_of_300_bytes_are_one_commit(harness: Harness) {
    let journal = Journal::start(Arc::clone(&harness.storage), JournalLimits::default())
        .expect("start journal");
    let batch: Vec<JournalRecord> = (1..=1000)
        .map(|sequence| JournalRecord { stream: 3, sequence, payload: vec![7; 300] })
        .collect();
    let (done, acknowledged) = mpsc::channel();
    journal.append(batch, None, Box::new(move |outcome| drop(done.send(outcome)))).expect("append");
    assert_eq!(acknowledged.recv().expect("acknowledgement"), Ok(()));
    let stats = journal.stats();
    assert_eq!(stats.commits, 1);
    assert_eq!(stats.records, 1000);
    assert_eq!(stats.payload_bytes, 300_000);
    assert_eq!(stats.records_per_commit.count, 1);
    journal.shutdown().expect("clean shutdown");
    assert_eq!(read_all(&*harness.storage, 3, 0).len(), 1000);
}

fn journal_groups_appends_from_eight_threads_into_fewer_commits(harness: Harness) {
    const THREADS: u32 = 8;
    const APPENDS_PER_THREAD: u64 = 1000;
    let journal = Journal::start(Arc::clone(&harness.storage), JournalLimits::default())
        .expect("start journal");
    let acknowledged_ok = Arc::new(AtomicUsize::new(0));
    let acknowledged_order: Arc<Mutex<Vec<Vec<u64>>>> =
        Arc::new(Mutex::new(vec![Vec::new(); THREADS as usize]));

    std::thread::scope(|scope| {
        for stream in 0..THREADS {
            let journal = &journal;
            let acknowledged_ok = Arc::clone(&acknowledged_ok);
            let acknowledged_order = Arc::clone(&acknowledged_order);
            scope.spawn(move || {
                for sequence in 1..=APPENDS_PER_THREAD {
                    let acknowledged_ok = Arc::clone(&acknowledged_ok);
                    let acknowledged_order = Arc::clone(&acknowledged_order);
                    journal
                        .append(
                            vec![record(stream, sequence)],
                            None,
                            Box::new(move |outcome| {
                                if outcome.is_ok() {
                                    acknowledged_ok.fetch_add(1, Ordering::SeqCst);
                                }
                                acknowledged_order.lock().expect("order lock")[stream as usize]
                                    .push(sequence);
                            }),
                        )
                        .expect("append");
                }
            });
        }
    });
    let stats = journal.stats();
    journal.shutdown().expect("clean shutdown");

    let total = (u64::from(THREADS) * APPENDS_PER_THREAD) as usize;
    assert_eq!(acknowledged_ok.load(Ordering::SeqCst), total);
    let expected: Vec<u64> = (1..=APPENDS_PER_THREAD).collect();
    for (stream, order) in acknowledged_order.lock().expect("order lock").iter().enumerate() {
        assert_eq!(order, &expected, "stream {stream} acknowledged in submission order");
    }
    for stream in 0..THREADS {
        let read = read_all(&*harness.storage, stream, 0);
        assert_eq!(read, records(stream, 1..=APPENDS_PER_THREAD));
    }
    assert_eq!(stats.appends, total as u64);
    assert!(
        stats.commits < total as u64,
        "{} commits for {total} appends: appends were not grouped",
        stats.commits
    );
}

fn journal_stores_a_snapshot_with_its_records(harness: Harness) {
    let journal = Journal::start(Arc::clone(&harness.storage), JournalLimits::default())
        .expect("start journal");
    let (done, acknowledged) = mpsc::channel();
    let first = done.clone();
    journal
        .append(records(4, 1..=3), None, Box::new(move |outcome| drop(first.send(outcome))))
        .expect("append records");
    journal
        .append(
            records(4, 4..=5),
            Some(snapshot(4, 5)),
            Box::new(move |outcome| drop(done.send(outcome))),
        )
        .expect("append records with snapshot");
    assert_eq!(acknowledged.recv().expect("first"), Ok(()));
    assert_eq!(acknowledged.recv().expect("second"), Ok(()));
    journal.shutdown().expect("clean shutdown");
    let storage = &*harness.storage;
    assert_eq!(storage.latest_snapshot(4).expect("read snapshot"), Some(snapshot(4, 5)));
    assert!(read_all(storage, 4, 0).is_empty());
    assert_eq!(storage.last_sequence(4), 5);
}

fn journal_refuses_appends_after_a_failed_commit(harness: Harness) {
    let journal = Journal::start(Arc::clone(&harness.storage), JournalLimits::default())
        .expect("start journal");
    let (done, acknowledged) = mpsc::channel();
    let first = done.clone();
    journal
        .append(vec![record(1, 1)], None, Box::new(move |outcome| drop(first.send(outcome))))
        .expect("append");
    assert_eq!(acknowledged.recv().expect("first"), Ok(()));

    journal
        .append(vec![record(1, 3)], None, Box::new(move |outcome| drop(done.send(outcome))))
        .expect("a gap is only detected at commit");
    assert_eq!(
        acknowledged.recv().expect("second"),
        Err(StoreError::NotContiguous { stream: 1, expected: 2, found: 3 })
    );

    let called = Arc::new(AtomicUsize::new(0));
    let called_by_callback = Arc::clone(&called);
    let refused = journal.append(
        vec![record(1, 2)],
        None,
        Box::new(move |_| {
            called_by_callback.fetch_add(1, Ordering::SeqCst);
        }),
    );
    assert!(matches!(refused, Err(StoreError::JournalStopped { .. })), "{refused:?}");
    let stats = journal.stats();
    assert_eq!((stats.commits, stats.commits_failed), (1, 1));
    assert!(matches!(journal.shutdown(), Err(StoreError::JournalStopped { .. })));
    assert_eq!(called.load(Ordering::SeqCst), 0, "a refused append never calls back");
    assert_eq!(read_all(&*harness.storage, 1, 0), vec![record(1, 1)]);
}

/// Instantiates every check above as a test of one backend.
macro_rules! conformance {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;

            conformance!(@tests $backend;
                appended_records_read_back_in_order,
                reading_stops_at_the_first_error_of_the_visitor,
                a_gap_in_sequences_is_refused_and_nothing_is_written,
                a_duplicate_sequence_is_refused,
                a_snapshot_replaces_the_previous_one_and_compacts_the_journal,
                a_snapshot_beyond_the_last_sequence_is_refused,
                a_snapshot_older_than_the_stored_one_is_refused,
                everything_survives_reopening,
                registry_puts_gets_deletes_and_scans_by_prefix,
                oversized_registry_keys_and_values_are_refused,
                an_empty_commit_is_accepted_and_changes_nothing,
                an_oversized_record_is_refused_and_nothing_is_written,
                a_thousand_records_of_300_bytes_are_one_commit,
                journal_groups_appends_from_eight_threads_into_fewer_commits,
                journal_stores_a_snapshot_with_its_records,
                journal_refuses_appends_after_a_failed_commit,
            );
        }
    };
    (@tests $backend:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                super::$check(Harness::new($backend));
            }
        )*
    };
}

conformance!(redb, Backend::Redb);
#[cfg(feature = "sled")]
conformance!(sled, Backend::Sled);

#[test]
fn backend_names_parse_and_display() {
    assert_eq!("redb".parse::<Backend>(), Ok(Backend::Redb));
    assert_eq!(Backend::Redb.to_string(), "redb");
    assert_eq!(Backend::default(), Backend::Redb);
    assert!(matches!("postgres".parse::<Backend>(), Err(StoreError::UnknownBackend { .. })));
    #[cfg(feature = "sled")]
    assert_eq!("sled".parse::<Backend>().map(|backend| backend.to_string()), Ok("sled".to_owned()));
    #[cfg(not(feature = "sled"))]
    assert!(matches!("sled".parse::<Backend>(), Err(StoreError::UnknownBackend { .. })));
}

#[test]
fn a_directory_of_another_backend_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(dir.path().join("sled")).expect("sled directory");
    let refused = bazaar_store::open(Backend::Redb, dir.path()).err();
    assert!(
        matches!(&refused, Some(StoreError::WrongBackend { found, requested, .. })
            if found == "sled" && requested == "redb"),
        "{refused:?}"
    );
    assert!(!dir.path().join("bazaar.redb").exists(), "nothing was created");
}

#[cfg(feature = "sled")]
#[test]
fn a_redb_directory_is_refused_by_sled() {
    let dir = tempfile::tempdir().expect("temporary directory");
    drop(bazaar_store::open(Backend::Redb, dir.path()).expect("open redb"));
    let refused = bazaar_store::open(Backend::Sled, dir.path()).err();
    assert!(matches!(refused, Some(StoreError::WrongBackend { .. })), "{refused:?}");
}

#[test]
fn journal_limits_with_a_zero_bound_are_refused() {
    let harness = Harness::new(Backend::Redb);
    let limits = JournalLimits { queue_depth_max: 0, ..JournalLimits::default() };
    let refused = Journal::start(Arc::clone(&harness.storage), limits).err();
    assert!(matches!(refused, Some(StoreError::InvalidLimits { .. })), "{refused:?}");
}

#[test]
fn an_append_larger_than_a_commit_is_refused_before_queueing() {
    let harness = Harness::new(Backend::Redb);
    let limits = JournalLimits { records_per_commit_max: 2, ..JournalLimits::default() };
    let journal = Journal::start(Arc::clone(&harness.storage), limits).expect("start journal");
    let refused = journal.append(records(1, 1..=3), None, Box::new(|_| {}));
    assert!(matches!(refused, Err(StoreError::TooLarge { .. })), "{refused:?}");
    journal.shutdown().expect("a refused append does not stop the journal");
    assert_eq!(harness.storage.last_sequence(1), 0);
}
