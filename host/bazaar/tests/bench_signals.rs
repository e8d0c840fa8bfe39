//! How a benchmark ends. One stopped by SIGINT or SIGTERM leaves no data
//! directory behind: the in-process pipeline removes its own, and the HTTP
//! benchmark stops its `bazaar serve` child and removes the child's, also
//! when the in-process benchmarks ran before it in the same process. One
//! that runs to its end stops its node the way an operator does, and the
//! node shuts down cleanly.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a debug build may take to reach the point where it is stopped.
const STARTUP_WAIT_MAX: Duration = Duration::from_secs(180);

/// Entries of `dir`, by name.
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read the temporary directory")
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// Runs `bazaar bench <args>` with its own temporary directory, waits
/// until it printed `ready_line` and its data directory holds files, sends
/// `signal`, and checks that the run failed and left the directory empty.
fn stopped_bench_leaves_nothing(args: &[&str], ready_line: &str, signal: &str) {
    let temporary = tempfile::tempdir().expect("a temporary directory");
    let mut bench = Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .arg("bench")
        .args(args)
        .env("TMPDIR", temporary.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bazaar bench");
    let stdout = bench.stdout.take().expect("piped stdout");
    let (lines, printed) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut ready = false;
    loop {
        while let Ok(line) = printed.try_recv() {
            ready |= line.contains(ready_line);
        }
        let holds_files = entries(temporary.path())
            .iter()
            .any(|name| !entries(&temporary.path().join(name)).is_empty());
        if ready && holds_files {
            break;
        }
        if let Some(status) = bench.try_wait().expect("poll the bench") {
            panic!("bazaar bench {args:?} ended ({status}) before it was stopped");
        }
        assert!(started.elapsed() < STARTUP_WAIT_MAX, "bazaar bench {args:?} never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args(["-s", signal, &bench.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -s {signal} failed");
    let output = bench.wait_with_output().expect("wait for the bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a stopped run must not report success");
    assert!(stderr.contains("interrupted"), "stderr says why it stopped: {stderr}");
    assert_eq!(entries(temporary.path()), Vec::<String>::new(), "left behind; stderr: {stderr}");
}

#[test]
fn an_interrupted_pipeline_bench_removes_its_data_directory() {
    stopped_bench_leaves_nothing(&["pipeline", "--orders", "100000000"], "== pipeline", "INT");
}

#[test]
fn a_terminated_memory_bench_removes_its_data_directory() {
    stopped_bench_leaves_nothing(&["memory", "--orders", "100000000"], "== memory", "TERM");
}

#[test]
fn an_interrupted_http_bench_stops_its_node_and_removes_its_data_directory() {
    stopped_bench_leaves_nothing(
        &["http", "--scenarios", "mixed", "--connections", "4", "--seconds", "600"],
        "seeded",
        "INT",
    );
}

#[test]
fn an_http_bench_interrupted_after_the_in_process_ones_stops_its_node_and_removes_everything() {
    stopped_bench_leaves_nothing(
        &[
            "all",
            "--orders",
            "2000",
            "--scenarios",
            "mixed",
            "--connections",
            "4",
            "--seconds",
            "600",
        ],
        "seeded",
        "INT",
    );
}

#[test]
fn a_finished_http_bench_stops_its_node_through_the_node_s_own_shutdown() {
    let temporary = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .args(["bench", "http", "--scenarios", "hot", "--connections", "4", "--seconds", "1"])
        .env("TMPDIR", temporary.path())
        .output()
        .expect("run bazaar bench http");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the bench failed: {stdout}\n{stderr}");
    assert!(stdout.contains("RESULT http_hot_4_orders_per_s"), "it measured: {stdout}");
    // Said only once the node exited with success, which it does only at
    // the end of its graceful shutdown: a signal's default action or a
    // kill would have ended it with a failure.
    assert!(stdout.contains("node: stopped on SIGTERM, journal flushed"), "{stdout}\n{stderr}");
    assert_eq!(entries(temporary.path()), Vec::<String>::new(), "left behind; stderr: {stderr}");
}
