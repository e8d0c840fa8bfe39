//! The host imports of a component, called through the generated bindings
//! of the one world this build embeds.
//!
//! The device-driver world imports no `state` (a driver keeps what it must
//! remember in the memory the host threads through its calls), so the state
//! calls exist only in the other worlds; a component enables exactly one.

use crate::__private::world::bazaar::commerce as wit;

use crate::log::Level;
#[cfg(not(feature = "device-driver"))]
use crate::state::StateError;

pub(crate) fn config_get() -> Option<String> {
    wit::config::get()
}

pub(crate) fn log(level: Level, message: &str) {
    let level = match level {
        Level::Debug => wit::log::Level::Debug,
        Level::Info => wit::log::Level::Info,
        Level::Warn => wit::log::Level::Warn,
        Level::Error => wit::log::Level::Error,
    };
    wit::log::log(level, message);
}

#[cfg(not(feature = "device-driver"))]
pub(crate) fn state_get(key: &str) -> Option<Vec<u8>> {
    wit::state::get(key)
}

#[cfg(not(feature = "device-driver"))]
pub(crate) fn state_set(key: &str, value: &[u8]) -> Result<(), StateError> {
    wit::state::set(key, value).map_err(|error| match error {
        wit::state::StateError::KeyTooLong(key_bytes_max) => {
            StateError::KeyTooLong { key_bytes_max }
        }
        wit::state::StateError::ValueTooLarge(value_bytes_max) => {
            StateError::ValueTooLarge { value_bytes_max }
        }
        wit::state::StateError::TooManyKeys(keys_max) => StateError::TooManyKeys { keys_max },
    })
}

#[cfg(not(feature = "device-driver"))]
pub(crate) fn state_delete(key: &str) {
    wit::state::delete(key);
}
