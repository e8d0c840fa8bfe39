//! Persistent key-value state, private to this plugin in the calling store.
//! On native targets it lives in the [`crate::stand_in`].
//!
//! The host enforces limits on key length, value size and key count and
//! reports them through [`StateError`]; a plugin treats them as hard limits.

use std::fmt;

use crate::PluginError;

/// Why a state operation failed; each variant carries the host's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateError {
    /// The key is longer than the host allows.
    KeyTooLong {
        /// The longest key allowed, in bytes.
        key_bytes_max: u32,
    },
    /// The value is larger than the host allows.
    ValueTooLarge {
        /// The largest value allowed, in bytes.
        value_bytes_max: u32,
    },
    /// The plugin holds as many keys as the host allows.
    TooManyKeys {
        /// The most keys one plugin may hold in one store.
        keys_max: u32,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyTooLong { key_bytes_max } => {
                write!(f, "state key too long: at most {key_bytes_max} bytes")
            }
            Self::ValueTooLarge { value_bytes_max } => {
                write!(f, "state value too large: at most {value_bytes_max} bytes")
            }
            Self::TooManyKeys { keys_max } => {
                write!(f, "too many state keys: at most {keys_max}")
            }
        }
    }
}

impl std::error::Error for StateError {}

/// A state limit hit while handling a request is the plugin's own failure.
impl From<StateError> for PluginError {
    fn from(error: StateError) -> Self {
        PluginError::Internal(error.to_string())
    }
}

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Option<Vec<u8>> {
    crate::backend::state_get(key)
}

/// Stores `value` under `key`, replacing any previous value.
pub fn set(key: &str, value: &[u8]) -> Result<(), StateError> {
    crate::backend::state_set(key, value)
}

/// Removes `key`; removing an absent key is not an error.
pub fn delete(key: &str) {
    crate::backend::state_delete(key);
}
