//! The one error type a plugin returns, mirroring the WIT `plugin-error`.

use std::fmt;

/// Why a plugin could not produce a result. The host shows the text to the
/// operator and the merchant, so it says what is wrong and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginError {
    /// The store's configuration of the plugin is unusable; the text says why.
    InvalidConfig(String),
    /// The input is outside what the plugin handles; the text says why.
    Unsupported(String),
    /// Anything else; the text says what.
    Internal(String),
}

impl PluginError {
    /// An [`PluginError::InvalidConfig`] with `message`.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::InvalidConfig(message.into())
    }

    /// An [`PluginError::Unsupported`] with `message`.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::Unsupported(message.into())
    }

    /// An [`PluginError::Internal`] with `message`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// The explanation, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidConfig(message) | Self::Unsupported(message) | Self::Internal(message) => {
                message
            }
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig(message) => write!(f, "invalid configuration: {message}"),
            Self::Unsupported(message) => write!(f, "unsupported input: {message}"),
            Self::Internal(message) => write!(f, "internal error: {message}"),
        }
    }
}

impl std::error::Error for PluginError {}
