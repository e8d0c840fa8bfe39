//! A pricing component built in two versions from this one crate, for the
//! node's hot-swap tests: every order must be priced by exactly one
//! version, never by neither or by a mix.
//!
//! `price-cart` returns one adjustment on line 0:
//!
//! | build           | version | amount off     | code        |
//! |-----------------|---------|----------------|-------------|
//! | default         | 1.0.0   | 1 minor unit   | `tagged-v1` |
//! | feature `v2`    | 2.0.0   | 2 minor units  | `tagged-v2` |
//!
//! Built as a component twice by `bazaar-artifacts` (feature
//! `test-guests`): `TAGGED_PRICING_V1` and `TAGGED_PRICING_V2`. It has no
//! native use.

use bazaar_sdk::{Cart, Money, PluginConfig, PluginError, PriceAdjustment, PricingPlugin};
use serde::Deserialize;

/// What this build tags an order with.
struct Tag {
    /// The plugin version this build is.
    version: &'static str,
    /// Minor units taken off line 0.
    amount_off_minor: i64,
    /// The adjustment's code.
    code: &'static str,
}

/// Version 1.0.0.
#[cfg(not(feature = "v2"))]
const TAG: Tag = Tag { version: "1.0.0", amount_off_minor: 1, code: "tagged-v1" };

/// Version 2.0.0.
#[cfg(feature = "v2")]
const TAG: Tag = Tag { version: "2.0.0", amount_off_minor: 2, code: "tagged-v2" };

/// The plugin.
pub struct Tagged;

bazaar_sdk::export_pricing!(Tagged);

/// The configuration: any JSON object, ignored.
#[derive(Deserialize)]
pub struct Config {}

impl PluginConfig for Config {
    fn when_missing() -> Result<Self, PluginError> {
        Ok(Self {})
    }
}

impl PricingPlugin for Tagged {
    type Config = Config;

    fn price(cart: &Cart, _config: &Config) -> Result<Vec<PriceAdjustment>, PluginError> {
        let Some(first_line) = cart.lines.first() else {
            return Err(PluginError::unsupported("the tag goes on line 0; the cart is empty"));
        };
        Ok(vec![PriceAdjustment::for_line(
            0,
            Money::new(TAG.amount_off_minor, &first_line.unit_price.currency),
            TAG.code,
            format!("Priced by tagged-pricing {}", TAG.version),
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bazaar_sdk::testing::CartBuilder;

    #[test]
    fn every_cart_gets_the_tag_of_this_build_on_its_first_line() {
        let cart = CartBuilder::new("CNY").line("TEA", 2, "10.00").line("CUP", 1, "5.00").build();
        let adjustments = Tagged::price(&cart, &Config {}).unwrap();
        assert_eq!(adjustments.len(), 1);
        assert_eq!(adjustments[0].line_index, Some(0));
        assert_eq!(adjustments[0].code, TAG.code);
        assert_eq!(adjustments[0].amount_off, Money::new(TAG.amount_off_minor, "CNY"));
        assert!(adjustments[0].reason.ends_with(TAG.version), "{}", adjustments[0].reason);
    }
}
