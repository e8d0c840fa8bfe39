//! An analytics component that misbehaves as its configuration asks, for
//! the node's tests and benchmarks of the event consumer: a consumer that
//! fails or is slow must only fall behind, never slow checkout.
//!
//! | `behaviour` | what `ingest` does                                          |
//! |-------------|-------------------------------------------------------------|
//! | `fail`      | refuses every batch (`internal` error)                      |
//! | `spin`      | burns `spin_iterations` loop iterations per event, succeeds |
//!
//! It keeps no state and answers every query with `{}`. Built as a
//! component by `bazaar-artifacts` (feature `test-guests`).

use bazaar_sdk::{AnalyticsPlugin, Event, PluginConfig, PluginError};
use serde::Deserialize;

/// The plugin.
pub struct Hostile;

bazaar_sdk::export_analytics!(Hostile);

/// What to do.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Refuse every batch.
    #[default]
    Fail,
    /// Burn work per event, then succeed.
    Spin,
}

/// The configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What to do.
    #[serde(default)]
    pub behaviour: Behaviour,
    /// Loop iterations burnt per event by `spin`.
    #[serde(default)]
    pub spin_iterations: u64,
}

impl PluginConfig for Config {
    fn when_missing() -> Result<Self, PluginError> {
        Ok(Self::default())
    }
}

impl AnalyticsPlugin for Hostile {
    type Config = Config;

    fn ingest(events: &[Event], config: &Config) -> Result<(), PluginError> {
        match config.behaviour {
            Behaviour::Fail => Err(PluginError::internal("hostile-analytics refuses every batch")),
            Behaviour::Spin => {
                let mut accumulator = 0u64;
                for event in events {
                    for iteration in 0..config.spin_iterations {
                        // black_box keeps the loop from being optimised away.
                        accumulator =
                            std::hint::black_box(accumulator ^ iteration ^ event.sequence);
                    }
                }
                std::hint::black_box(accumulator);
                Ok(())
            }
        }
    }

    fn query(_name: &str, _arguments_json: &str, _config: &Config) -> Result<String, PluginError> {
        Ok("{}".to_string())
    }
}
