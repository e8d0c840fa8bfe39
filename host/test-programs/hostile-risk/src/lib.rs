//! A risk component that misbehaves on request, for the plugin runtime's
//! tests of how a failing risk plugin is stopped and classified.
//!
//! The store configuration `{"behaviour": "..."}` picks what `assess-order`
//! does; a missing configuration means `well-behaved`:
//!
//! | behaviour      | what `assess-order` does                                        |
//! |----------------|-----------------------------------------------------------------|
//! | `well-behaved` | approves with code `approved`                                   |
//! | `reject-all`   | rejects with code `rejected-on-request`                          |
//! | `loop-forever` | spins until the host interrupts it                              |
//! | `trap`         | panics, which aborts: a wasm trap                               |
//! | `garbage`      | rejects with a reason of 100,000 bytes, far over the host's limit |
//! | `empty-reason` | rejects with an empty reason, which a customer could not read    |
//!
//! Built as a component by `bazaar-artifacts` (feature `test-guests`); it
//! has no native use.

use std::hint::black_box;

use bazaar_sdk::{PluginConfig, PluginError, RiskPlugin, RiskRequest, RiskVerdict};
use serde::Deserialize;

/// Bytes of the reason `garbage` returns: far beyond any host limit on
/// text shown to customers.
const GARBAGE_REASON_BYTES: usize = 100_000;

/// The plugin.
pub struct Hostile;

bazaar_sdk::export_risk!(Hostile);

/// The configuration: which misbehaviour to show.
#[derive(Default, Deserialize)]
pub struct Config {
    /// What `assess-order` does.
    #[serde(default)]
    behaviour: Behaviour,
}

impl PluginConfig for Config {
    fn when_missing() -> Result<Self, PluginError> {
        Ok(Self::default())
    }
}

/// The behaviours, named as in the configuration.
#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Behaviour {
    #[default]
    WellBehaved,
    RejectAll,
    LoopForever,
    Trap,
    Garbage,
    EmptyReason,
}

impl RiskPlugin for Hostile {
    type Config = Config;

    fn assess(_request: &RiskRequest, config: &Config) -> Result<RiskVerdict, PluginError> {
        match config.behaviour {
            Behaviour::WellBehaved => Ok(RiskVerdict::approve("approved", "")),
            Behaviour::RejectAll => Ok(RiskVerdict::reject(
                "rejected-on-request",
                "This test plugin rejects every order",
            )),
            Behaviour::LoopForever => loop_forever(),
            Behaviour::Trap => panic!("hostile-risk traps on request"),
            Behaviour::Garbage => {
                Ok(RiskVerdict::reject("garbage", "x".repeat(GARBAGE_REASON_BYTES)))
            }
            Behaviour::EmptyReason => Ok(RiskVerdict::reject("empty-reason", "")),
        }
    }
}

/// Spins forever; `black_box` keeps the optimiser from proving the loop
/// empty.
fn loop_forever() -> ! {
    let mut spins: u64 = 0;
    loop {
        spins = black_box(spins).wrapping_add(1);
    }
}
