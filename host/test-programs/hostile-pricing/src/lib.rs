//! A pricing component that misbehaves on request, for the plugin runtime's
//! tests of deadlines, memory caps, output checks and tenant isolation.
//!
//! The store configuration `{"behaviour": "..."}` picks what `price-cart`
//! does; other fields are allowed (and echoed by `read-config-and-state`),
//! and a missing configuration means `well-behaved`:
//!
//! | behaviour               | what `price-cart` does                                      |
//! |-------------------------|-------------------------------------------------------------|
//! | `well-behaved`          | returns no adjustments                                      |
//! | `loop-forever`          | spins until the host interrupts it                          |
//! | `grow-memory`           | allocates 1 MiB blocks and keeps them until allocation traps |
//! | `recurse-forever`       | recurses until the stack overflows                          |
//! | `trap`                  | panics, which aborts: a wasm trap                           |
//! | `huge-output`           | returns 1,000,000 adjustments of one minor unit             |
//! | `discount-above-price`  | one adjustment of the cart subtotal plus 1.00               |
//! | `wrong-currency`        | one adjustment of one minor unit in another currency        |
//! | `state-counter`         | adds 1 to state key `calls` (decimal text), logs `calls=N` at info, returns nothing |
//! | `read-config-and-state` | one adjustment whose reason is `config=<raw JSON>;secret=<state "secret" or <none>>` |
//!
//! Built as a component by `bazaar-artifacts` (feature `test-guests`); it
//! has no native use.

use bazaar_sdk::{Cart, Money, PluginConfig, PluginError, PriceAdjustment, PricingPlugin};
use serde::Deserialize;
use std::hint::black_box;

/// Adjustments returned by `huge-output`: far beyond any real cart, to test
/// the host's output limits.
const HUGE_OUTPUT_ADJUSTMENTS: usize = 1_000_000;

/// Bytes per block `grow-memory` allocates and keeps.
const GROW_BLOCK_BYTES: usize = 1 << 20;

/// The plugin.
pub struct Hostile;

bazaar_sdk::export_pricing!(Hostile);

/// The configuration: which misbehaviour to show.
#[derive(Default, Deserialize)]
pub struct Config {
    /// What `price-cart` does.
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
    LoopForever,
    GrowMemory,
    RecurseForever,
    Trap,
    HugeOutput,
    DiscountAbovePrice,
    WrongCurrency,
    StateCounter,
    ReadConfigAndState,
}

impl PricingPlugin for Hostile {
    type Config = Config;

    fn price(cart: &Cart, config: &Config) -> Result<Vec<PriceAdjustment>, PluginError> {
        let currency = cart.lines.first().map_or("CNY", |line| line.unit_price.currency.as_str());
        match config.behaviour {
            Behaviour::WellBehaved => Ok(Vec::new()),
            Behaviour::LoopForever => loop_forever(),
            Behaviour::GrowMemory => grow_memory(),
            Behaviour::RecurseForever => Ok(vec![PriceAdjustment::whole_cart(
                Money::new(i64::try_from(recurse(0)).unwrap_or(1), currency),
                "unreachable",
                "",
            )]),
            Behaviour::Trap => panic!("hostile-pricing traps on request"),
            Behaviour::HugeOutput => Ok((0..HUGE_OUTPUT_ADJUSTMENTS)
                .map(|_| PriceAdjustment::whole_cart(Money::new(1, currency), "", ""))
                .collect()),
            Behaviour::DiscountAbovePrice => {
                let subtotal = cart.subtotal().map_or(0, |subtotal| subtotal.amount_minor);
                Ok(vec![PriceAdjustment::whole_cart(
                    Money::new(subtotal.saturating_add(100), currency),
                    "above-price",
                    "More off than the cart costs",
                )])
            }
            Behaviour::WrongCurrency => {
                let other = if currency == "USD" { "EUR" } else { "USD" };
                Ok(vec![PriceAdjustment::whole_cart(
                    Money::new(1, other),
                    "wrong-currency",
                    "An adjustment in a currency the cart is not in",
                )])
            }
            Behaviour::StateCounter => {
                let calls = bazaar_sdk::state::get("calls")
                    .and_then(|value| String::from_utf8(value).ok())
                    .and_then(|text| text.parse::<u64>().ok())
                    .unwrap_or(0)
                    .saturating_add(1);
                bazaar_sdk::state::set("calls", calls.to_string().as_bytes())?;
                bazaar_sdk::log::info(&format!("calls={calls}"));
                Ok(Vec::new())
            }
            Behaviour::ReadConfigAndState => {
                let config = bazaar_sdk::config::get_raw().unwrap_or_default();
                let secret = bazaar_sdk::state::get("secret")
                    .map(|value| String::from_utf8_lossy(&value).into_owned())
                    .unwrap_or_else(|| "<none>".to_owned());
                Ok(vec![PriceAdjustment::whole_cart(
                    Money::new(1, currency),
                    "config-and-state",
                    format!("config={config};secret={secret}"),
                )])
            }
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

/// Allocates and keeps 1 MiB blocks, writing to each so the pages are
/// really used, until allocation fails and aborts.
fn grow_memory() -> ! {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        kept.push(black_box(vec![0xA5; GROW_BLOCK_BYTES]));
        black_box(&kept);
    }
}

/// Recurses until the stack overflows. The exit condition never holds at
/// run time but the optimiser cannot know, so it cannot drop the recursion
/// (and the compiler does not flag it as unconditional); the frame-sized
/// array keeps each call from being turned into a loop.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    if black_box(depth) == u64::MAX {
        return frame[31];
    }
    recurse(frame[0] + 1).wrapping_add(frame[31])
}
