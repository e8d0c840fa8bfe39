//! The benchmarks' temporary data directories, and what SIGINT or SIGTERM
//! does to a benchmark run: a stopped run would otherwise leave gigabytes
//! of journal behind, and `bench http` a `bazaar serve` child running.
//!
//! One watcher thread takes both signals for the whole process, from the
//! moment the first directory or run needs it. On a signal:
//! - while a run that stops itself is active ([`StopsItself`]: every run
//!   with a node, whose threads would write into a directory removed under
//!   them, and `bench http`'s child node, which must be stopped before its
//!   directory goes), the watcher tells the run (its stop hook, and
//!   [`interrupted`]); the run ends, stops its node and drops its
//!   directory;
//! - otherwise (between the runs of `bench all`, or in a benchmark with no
//!   node) it removes every live directory and ends the process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use anyhow::Context as _;
use tokio::sync::watch;

/// Exit status of a run stopped by a signal, as a shell reports SIGINT.
const INTERRUPTED_EXIT_STATUS: i32 = 130;

/// How many times a directory is removed before giving up: the node's
/// threads still run and may create a file in it meanwhile.
const REMOVE_ATTEMPTS_MAX: u32 = 3;

/// The scratch directories that exist now, for the watcher.
static LIVE_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// The stop hooks of the runs active now that stop themselves on a signal,
/// by run; the lock also orders a signal against a run's start.
static SELF_STOPPING_RUNS: Mutex<Vec<(u64, StopHook)>> = Mutex::new(Vec::new());
/// Numbers the self-stopping runs.
static NEXT_RUN: AtomicU64 = AtomicU64::new(0);
/// Set by the watcher, which is started with the first scratch directory,
/// when a signal has come.
static SIGNALLED: OnceLock<watch::Sender<bool>> = OnceLock::new();

/// A temporary directory removed when dropped or when the run is stopped
/// by SIGINT or SIGTERM.
pub(crate) struct ScratchDir(tempfile::TempDir);

impl ScratchDir {
    pub(crate) fn new() -> anyhow::Result<Self> {
        watch_signals()?;
        let dir = tempfile::tempdir().context("creating a temporary data directory")?;
        live_dirs().push(dir.path().to_owned());
        Ok(Self(dir))
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        live_dirs().retain(|dir| dir != self.0.path());
    }
}

/// How a self-stopping run is told to stop; called on the watcher's thread.
type StopHook = Box<dyn Fn() + Send>;

/// Held by a run that ends itself on a signal: while it is held, a signal
/// neither removes directories nor ends the process.
pub(crate) struct StopsItself {
    run: u64,
}

impl StopsItself {
    /// `stop` is called when a signal comes while the run holds this, or at
    /// once if one came before; it may be called more than once.
    pub(crate) fn new(stop: impl Fn() + Send + 'static) -> anyhow::Result<Self> {
        watch_signals()?;
        let run = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
        let mut runs = self_stopping_runs();
        if signalled() {
            stop();
        }
        runs.push((run, Box::new(stop)));
        Ok(Self { run })
    }
}

impl Drop for StopsItself {
    fn drop(&mut self) {
        self_stopping_runs().retain(|(run, _)| *run != self.run);
    }
}

/// Whether SIGINT or SIGTERM has come.
pub(crate) fn signalled() -> bool {
    SIGNALLED.get().is_some_and(|signalled| *signalled.borrow())
}

/// Runs' hooks are plain calls; a panic elsewhere leaves them usable.
fn self_stopping_runs() -> MutexGuard<'static, Vec<(u64, StopHook)>> {
    SELF_STOPPING_RUNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Resolves once SIGINT or SIGTERM has come, also if it came before the
/// call; never while the watcher is not running.
pub(crate) async fn interrupted() {
    let Some(signalled) = SIGNALLED.get() else {
        return std::future::pending().await;
    };
    let mut signalled = signalled.subscribe();
    if signalled.wait_for(|&came| came).await.is_err() {
        // The sender lives in a static and is never dropped.
        std::future::pending::<()>().await;
    }
}

/// The list survives a panic on another thread: it is only paths.
fn live_dirs() -> MutexGuard<'static, Vec<PathBuf>> {
    LIVE_DIRS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the watcher once. It takes over SIGINT and SIGTERM before this
/// returns, so no signal that comes later finds the process unwatched.
fn watch_signals() -> anyhow::Result<()> {
    static STARTED: Mutex<bool> = Mutex::new(false);
    let mut started = STARTED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if *started {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal watcher's runtime")?;
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        let _entered = runtime.enter();
        (
            signal(SignalKind::interrupt()).context("watching SIGINT")?,
            signal(SignalKind::terminate()).context("watching SIGTERM")?,
        )
    };
    let signalled = SIGNALLED.get_or_init(|| watch::Sender::new(false));
    std::thread::Builder::new()
        .name("bench-signals".to_owned())
        .spawn(move || {
            loop {
                #[cfg(unix)]
                runtime.block_on(async {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                });
                #[cfg(not(unix))]
                if runtime.block_on(tokio::signal::ctrl_c()).is_err() {
                    return;
                }
                let runs = self_stopping_runs();
                signalled.send_replace(true);
                if runs.is_empty() {
                    break;
                }
                for (_, stop) in runs.iter() {
                    stop();
                }
            }
            for dir in live_dirs().drain(..) {
                remove(&dir);
            }
            eprintln!("interrupted: the benchmark's data directories are removed");
            std::process::exit(INTERRUPTED_EXIT_STATUS);
        })
        .context("starting the signal watcher")?;
    *started = true;
    Ok(())
}

fn remove(dir: &Path) {
    for attempt in 1..=REMOVE_ATTEMPTS_MAX {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            // Already gone is as good as removed.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return,
            Err(error) if attempt == REMOVE_ATTEMPTS_MAX => {
                eprintln!("could not remove {}: {error}", dir.display());
            }
            Err(_) => {}
        }
    }
}
