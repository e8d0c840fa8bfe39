//! The host imports of a component, called through the generated bindings
//! of the one world this build embeds.

use crate::__private::world::bazaar::commerce as wit;

use crate::log::Level;
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

pub(crate) fn state_get(key: &str) -> Option<Vec<u8>> {
    wit::state::get(key)
}

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

pub(crate) fn state_delete(key: &str) {
    wit::state::delete(key);
}
