//! An in-process stand-in for the host imports, used on native targets.
//!
//! It exists so plugin logic can be unit tested with a plain `cargo test`
//! and called directly by the host's native benchmarks: [`crate::config`],
//! [`crate::log`] and [`crate::state`] read and write here instead of
//! calling the host. Everything is thread-local, so tests running in
//! parallel do not see each other's configuration, state or log.
//!
//! It is not the host: the real limits are the host's, and a component
//! built for wasm never contains this module.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::log::Level;
use crate::state::StateError;

/// The longest state key the stand-in accepts, so a test can exercise the
/// `key-too-long` path; 256 bytes fits any sensible key.
pub const STATE_KEY_BYTES_MAX: u32 = 256;

/// The largest state value the stand-in accepts (64 KiB), so a test can
/// exercise the `value-too-large` path.
pub const STATE_VALUE_BYTES_MAX: u32 = 64 * 1024;

/// The most state keys the stand-in holds, so a test can exercise the
/// `too-many-keys` path.
pub const STATE_KEYS_MAX: u32 = 1024;

/// The most log lines the stand-in keeps; older lines are dropped first, so
/// a benchmark that logs on every call does not grow without bound.
pub const LOG_LINES_MAX: usize = 1000;

/// The longest log message kept, in bytes; longer ones are cut on a
/// character boundary, as the host does.
pub const LOG_MESSAGE_BYTES_MAX: usize = 4096;

/// One line a plugin logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Its severity.
    pub level: Level,
    /// Its text, cut to [`LOG_MESSAGE_BYTES_MAX`].
    pub message: String,
}

/// What the stand-in host holds for the current thread.
#[derive(Default)]
struct StandIn {
    /// The configuration JSON `config::get_raw` returns.
    config: Option<String>,
    /// The plugin's key-value state.
    state: BTreeMap<String, Vec<u8>>,
    /// Keys set or deleted since the last [`take_written_keys`].
    written: BTreeSet<String>,
    /// The most recent log lines, oldest first.
    log: VecDeque<LogLine>,
}

thread_local! {
    static STAND_IN: RefCell<StandIn> = RefCell::new(StandIn::default());
}

/// Sets the configuration the plugin sees (`None`: the store gave none).
pub fn set_config(json: Option<&str>) {
    STAND_IN.with_borrow_mut(|host| host.config = json.map(str::to_owned));
}

/// The lines logged on this thread since the last [`reset`], oldest first.
pub fn log_lines() -> Vec<LogLine> {
    STAND_IN.with_borrow(|host| host.log.iter().cloned().collect())
}

/// The plugin's whole state on this thread, in key order: what a test
/// compares to check that the same events give the same state bytes.
pub fn state_entries() -> BTreeMap<String, Vec<u8>> {
    STAND_IN.with_borrow(|host| host.state.clone())
}

/// Replaces the plugin's whole state on this thread, as a node does when
/// it rebuilds state from its journal. Nothing counts as written.
pub fn set_state_entries(entries: BTreeMap<String, Vec<u8>>) {
    STAND_IN.with_borrow_mut(|host| host.state = entries);
}

/// The keys set or deleted on this thread since the previous call (or the
/// last [`reset`]), in key order: what a test checks to see that a call
/// wrote only what it changed.
pub fn take_written_keys() -> Vec<String> {
    STAND_IN.with_borrow_mut(|host| std::mem::take(&mut host.written).into_iter().collect())
}

/// Forgets the configuration, state and log of this thread.
pub fn reset() {
    STAND_IN.set(StandIn::default());
}

pub(crate) fn config_get() -> Option<String> {
    STAND_IN.with_borrow(|host| host.config.clone())
}

pub(crate) fn log(level: Level, message: &str) {
    let mut end = message.len().min(LOG_MESSAGE_BYTES_MAX);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    STAND_IN.with_borrow_mut(|host| {
        if host.log.len() == LOG_LINES_MAX {
            host.log.pop_front();
        }
        host.log.push_back(LogLine { level, message: message[..end].to_owned() });
    });
}

pub(crate) fn state_get(key: &str) -> Option<Vec<u8>> {
    STAND_IN.with_borrow(|host| host.state.get(key).cloned())
}

pub(crate) fn state_set(key: &str, value: &[u8]) -> Result<(), StateError> {
    if key.len() > STATE_KEY_BYTES_MAX as usize {
        return Err(StateError::KeyTooLong { key_bytes_max: STATE_KEY_BYTES_MAX });
    }
    if value.len() > STATE_VALUE_BYTES_MAX as usize {
        return Err(StateError::ValueTooLarge { value_bytes_max: STATE_VALUE_BYTES_MAX });
    }
    STAND_IN.with_borrow_mut(|host| {
        if !host.state.contains_key(key) && host.state.len() >= STATE_KEYS_MAX as usize {
            return Err(StateError::TooManyKeys { keys_max: STATE_KEYS_MAX });
        }
        host.state.insert(key.to_owned(), value.to_vec());
        host.written.insert(key.to_owned());
        Ok(())
    })
}

pub(crate) fn state_delete(key: &str) {
    STAND_IN.with_borrow_mut(|host| {
        if host.state.remove(key).is_some() {
            host.written.insert(key.to_owned());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config, log, state};

    #[test]
    fn state_round_trips_and_deleting_an_absent_key_is_fine() {
        reset();
        assert_eq!(state::get("calls"), None);
        state::set("calls", b"1").unwrap();
        assert_eq!(state::get("calls"), Some(b"1".to_vec()));
        state::delete("calls");
        state::delete("calls");
        assert_eq!(state::get("calls"), None);
    }

    #[test]
    fn written_keys_are_reported_once_and_then_forgotten() {
        reset();
        state::set("b", b"1").unwrap();
        state::set("a", b"1").unwrap();
        state::set("b", b"2").unwrap();
        state::delete("absent");
        assert_eq!(take_written_keys(), ["a", "b"]);
        assert!(take_written_keys().is_empty());
        set_state_entries(BTreeMap::from([("c".to_owned(), b"3".to_vec())]));
        assert!(take_written_keys().is_empty());
        assert_eq!(state::get("c"), Some(b"3".to_vec()));
        assert_eq!(state_entries().len(), 1);
    }

    #[test]
    fn state_limits_are_reported_with_the_limit() {
        reset();
        let long_key = "k".repeat(STATE_KEY_BYTES_MAX as usize + 1);
        assert_eq!(
            state::set(&long_key, b""),
            Err(StateError::KeyTooLong { key_bytes_max: STATE_KEY_BYTES_MAX })
        );
        let big_value = vec![0; STATE_VALUE_BYTES_MAX as usize + 1];
        assert!(matches!(state::set("k", &big_value), Err(StateError::ValueTooLarge { .. })));
        for index in 0..STATE_KEYS_MAX {
            state::set(&index.to_string(), b"").unwrap();
        }
        assert!(matches!(state::set("one-more", b""), Err(StateError::TooManyKeys { .. })));
        // Replacing an existing key needs no new slot.
        state::set("0", b"again").unwrap();
    }

    #[test]
    fn the_log_keeps_the_latest_lines_and_cuts_long_messages() {
        reset();
        for index in 0..LOG_LINES_MAX + 5 {
            log::info(&index.to_string());
        }
        let lines = log_lines();
        assert_eq!(lines.len(), LOG_LINES_MAX);
        assert_eq!(lines[0].message, "5");

        reset();
        log::warn(&"é".repeat(LOG_MESSAGE_BYTES_MAX));
        let lines = log_lines();
        assert_eq!(lines[0].level, Level::Warn);
        assert!(lines[0].message.len() <= LOG_MESSAGE_BYTES_MAX);
    }

    #[test]
    fn each_thread_has_its_own_stand_in() {
        reset();
        set_config(Some("{}"));
        let other = std::thread::spawn(config::get_raw).join().unwrap();
        assert_eq!(other, None);
        assert_eq!(config::get_raw().as_deref(), Some("{}"));
    }
}
