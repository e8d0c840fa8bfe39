//! Temporary data directories for the in-process benchmarks that are
//! removed even when SIGINT or SIGTERM stops the run: a stopped
//! `bazaar bench pipeline` or `memory` would otherwise leave gigabytes of
//! journal behind. (`bench http` and `freshness` stop their child node and
//! drop its directory themselves; see `loadgen::Bench::run`.)

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once};

use anyhow::Context as _;

/// Exit status of a run stopped by a signal, as a shell reports SIGINT.
const INTERRUPTED_EXIT_STATUS: i32 = 130;

/// The scratch directories that exist now, for the signal watcher.
static LIVE_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// The signal watcher is started with the first scratch directory.
static SIGNAL_WATCHER: Once = Once::new();

/// A temporary directory removed when dropped or when the run is stopped
/// by SIGINT or SIGTERM.
pub(crate) struct ScratchDir(tempfile::TempDir);

impl ScratchDir {
    pub(crate) fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary data directory")?;
        live_dirs().push(dir.path().to_owned());
        let mut watching = Ok(());
        SIGNAL_WATCHER.call_once(|| watching = start_signal_watcher());
        watching?;
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

/// The list survives a panic on another thread: it is only paths.
fn live_dirs() -> MutexGuard<'static, Vec<PathBuf>> {
    LIVE_DIRS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes over SIGINT and SIGTERM before returning, so a signal that comes
/// once a directory exists always finds the watcher: it removes every live
/// directory and ends the process.
fn start_signal_watcher() -> anyhow::Result<()> {
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
    std::thread::Builder::new()
        .name("bench-signals".to_owned())
        .spawn(move || {
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
            for dir in live_dirs().drain(..) {
                remove(&dir);
            }
            eprintln!("interrupted: the benchmark's data directories are removed");
            std::process::exit(INTERRUPTED_EXIT_STATUS);
        })
        .context("starting the signal watcher")?;
    Ok(())
}

/// How many times a directory is removed before giving up: the node's
/// threads still run and may create a file in it meanwhile.
const REMOVE_ATTEMPTS_MAX: u32 = 3;

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
