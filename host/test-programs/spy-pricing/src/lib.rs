//! A pricing component that reports what it has seen, for the node's tests
//! of tenant isolation: one store's instance of a plugin must never see
//! another store's configuration, and one store's state must never be
//! readable from another store.
//!
//! Every call of `price-cart`:
//!
//! 1. remembers, in a `static` that lives as long as the instance, the
//!    configuration text of the first call the instance ever served
//!    (`none` when that store gave none);
//! 2. reads state key `secret`, which the previous call in the same store
//!    wrote;
//! 3. writes the current configuration text to state key `secret`;
//! 4. logs what it saw at info level;
//! 5. returns one adjustment of one minor unit on line 0, code `spy`, whose
//!    reason is `first-config=<first configuration text>; secret=<value
//!    read in step 2, or none>`, clipped to the host's limit on reasons.
//!
//! If the host ever let one instance serve two stores, the second store's
//! `first-config` would show the first store's configuration; if state
//! leaked between stores, its `secret` would.
//!
//! Built as a component by `bazaar-artifacts` (feature `test-guests`); it
//! has no native use.

use std::sync::OnceLock;

use bazaar_sdk::{Cart, Money, PluginConfig, PluginError, PriceAdjustment, PricingPlugin};
use serde::Deserialize;

/// The state key the guest writes the configuration text to, and reads
/// back on the next call.
const SECRET_KEY: &str = "secret";

/// What the report shows for a missing configuration or state value.
const NOTHING: &str = "none";

/// The longest reason the host accepts by default: its limit on text a
/// plugin shows to people (256 bytes). A longer reason would make the host
/// refuse the whole result, and a test would see a failure instead of what
/// the guest saw.
const REASON_BYTES_MAX: usize = 256;

/// The configuration text of the first call this instance served.
static FIRST_CONFIG: OnceLock<String> = OnceLock::new();

/// The plugin.
pub struct Spy;

bazaar_sdk::export_pricing!(Spy);

/// The configuration: any JSON object. The guest reads the raw text
/// instead, so that it reports exactly what the host handed over.
#[derive(Deserialize)]
pub struct Config {}

impl PluginConfig for Config {
    fn when_missing() -> Result<Self, PluginError> {
        Ok(Self {})
    }
}

impl PricingPlugin for Spy {
    type Config = Config;

    fn price(cart: &Cart, _config: &Config) -> Result<Vec<PriceAdjustment>, PluginError> {
        let Some(first_line) = cart.lines.first() else {
            return Err(PluginError::unsupported("the spy reports on line 0; the cart is empty"));
        };
        let config_text = bazaar_sdk::config::get_raw().unwrap_or_else(|| NOTHING.to_owned());
        let first_config = FIRST_CONFIG.get_or_init(|| config_text.clone());
        let secret = bazaar_sdk::state::get(SECRET_KEY)
            .map(|value| String::from_utf8_lossy(&value).into_owned())
            .unwrap_or_else(|| NOTHING.to_owned());
        bazaar_sdk::state::set(SECRET_KEY, config_text.as_bytes())?;
        let mut reason = format!("first-config={first_config}; secret={secret}");
        clip(&mut reason, REASON_BYTES_MAX);
        bazaar_sdk::log::info(&reason);
        Ok(vec![PriceAdjustment::for_line(
            0,
            Money::new(1, &first_line.unit_price.currency),
            "spy",
            reason,
        )])
    }
}

/// Shortens `text` to at most `bytes_max` bytes, at a character boundary.
fn clip(text: &mut String, bytes_max: usize) {
    if text.len() <= bytes_max {
        return;
    }
    let mut end = bytes_max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bazaar_sdk::stand_in;
    use bazaar_sdk::testing::CartBuilder;

    fn reason_of_one_call(cart: &Cart) -> String {
        let adjustments = Spy::price(cart, &Config {}).expect("the spy prices every cart");
        assert_eq!(adjustments.len(), 1);
        assert_eq!(adjustments[0].line_index, Some(0));
        assert_eq!(adjustments[0].amount_off, Money::new(1, "CNY"));
        adjustments[0].reason.clone()
    }

    // The only test that calls `price`: the first configuration is kept
    // per process, as it is per instance in a component.
    #[test]
    fn the_report_shows_the_first_configuration_and_what_the_last_call_wrote() {
        stand_in::reset();
        let cart = CartBuilder::new("CNY").line("TEA", 1, "10.00").build();
        stand_in::set_config(Some(r#"{"store":"a"}"#));
        assert_eq!(reason_of_one_call(&cart), r#"first-config={"store":"a"}; secret=none"#);
        assert_eq!(
            reason_of_one_call(&cart),
            r#"first-config={"store":"a"}; secret={"store":"a"}"#
        );
        stand_in::set_config(Some(r#"{"store":"b"}"#));
        assert_eq!(
            reason_of_one_call(&cart),
            r#"first-config={"store":"a"}; secret={"store":"a"}"#
        );
        assert_eq!(
            reason_of_one_call(&cart),
            r#"first-config={"store":"a"}; secret={"store":"b"}"#
        );
        assert_eq!(stand_in::log_lines().len(), 4);

        stand_in::set_config(Some(&format!(r#"{{"padding":"{}"}}"#, "é".repeat(200))));
        reason_of_one_call(&cart);
        let long = reason_of_one_call(&cart);
        assert!(long.len() <= REASON_BYTES_MAX && long.len() > REASON_BYTES_MAX - 2, "{long}");
    }

    #[test]
    fn an_empty_cart_is_refused_rather_than_priced_on_a_missing_line() {
        let cart = CartBuilder::new("CNY").build();
        assert!(matches!(Spy::price(&cart, &Config {}), Err(PluginError::Unsupported(_))));
    }
}
