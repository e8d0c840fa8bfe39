//! The benchmarks' temporary data directories, and what SIGINT or SIGTERM
//! does to a benchmark run: a stopped run would otherwise leave gigabytes
//! of journal behind, and `bench http` a `bazaar serve` child running.
//!
//! A directory belongs to a [`ScratchRun`], which is told to stop when a
//! signal comes (its stop hook, and [`interrupted`]); the run then closes
//! its node and drops the run, which removes the directory. Removing it
//! from under a running node would not do: a node still opening creates it
//! again. One watcher thread takes both signals for the whole process from
//! the first run on; a signal that comes while no run is active (between
//! the benchmarks of `bench all`) ends the process, as it would have
//! without the watcher.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use anyhow::Context as _;
use tokio::sync::watch;

/// Exit status of a run stopped by a signal, as a shell reports SIGINT.
const INTERRUPTED_EXIT_STATUS: i32 = 130;

/// The stop hooks of the runs active now, by run; the lock also orders a
/// signal against a run's start.
static ACTIVE_RUNS: Mutex<Vec<(u64, StopHook)>> = Mutex::new(Vec::new());
/// Numbers the runs.
static NEXT_RUN: AtomicU64 = AtomicU64::new(0);
/// Set by the watcher, which is started with the first run, when a signal
/// has come.
static SIGNALLED: OnceLock<watch::Sender<bool>> = OnceLock::new();

/// How a run is told to stop; called on the watcher's thread.
type StopHook = Box<dyn Fn() + Send>;

/// A benchmark run with a temporary data directory: dropping it removes
/// the directory, so whatever uses the directory (a node) must be closed
/// first.
pub(crate) struct ScratchRun {
    /// Removed on drop, before the run stops being active.
    dir: tempfile::TempDir,
    /// Keeps the run active, so a signal tells it to stop instead of
    /// ending the process.
    _active: ActiveRun,
}

impl ScratchRun {
    /// `stop` is called when a signal comes while the run is active, or at
    /// once if one came before; it may be called more than once.
    pub(crate) fn new(stop: impl Fn() + Send + 'static) -> anyhow::Result<Self> {
        watch_signals()?;
        let run = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
        {
            let mut runs = active_runs();
            if signalled() {
                stop();
            }
            runs.push((run, Box::new(stop)));
        }
        let active = ActiveRun(run);
        let dir = tempfile::tempdir().context("creating a temporary data directory")?;
        Ok(Self { dir, _active: active })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A run's place among the active runs, given up on drop.
struct ActiveRun(u64);

impl Drop for ActiveRun {
    fn drop(&mut self) {
        active_runs().retain(|(run, _)| *run != self.0);
    }
}

/// Whether SIGINT or SIGTERM has come.
pub(crate) fn signalled() -> bool {
    SIGNALLED.get().is_some_and(|signalled| *signalled.borrow())
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

/// The hooks are plain calls; a panic elsewhere leaves them usable.
fn active_runs() -> MutexGuard<'static, Vec<(u64, StopHook)>> {
    ACTIVE_RUNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
                let runs = active_runs();
                signalled.send_replace(true);
                if runs.is_empty() {
                    eprintln!("interrupted");
                    std::process::exit(INTERRUPTED_EXIT_STATUS);
                }
                for (_, stop) in runs.iter() {
                    stop();
                }
            }
        })
        .context("starting the signal watcher")?;
    *started = true;
    Ok(())
}
