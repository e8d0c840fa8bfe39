//! An example partner plugin, as short as the SDK makes it: a percentage
//! off every line of at least `min_units` units.
//!
//! Configuration: `{"min_units": 10, "percent": "7.5"}`. Build it as a
//! component with `cargo build --release --target wasm32-wasip2 -p bulk-discount`.

use bazaar_sdk::money::Percent;
use bazaar_sdk::{Cart, PluginConfig, PluginError, PriceAdjustment, PricingPlugin, export_pricing};
use serde::Deserialize;

/// A store's settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Units a line needs for the discount.
    pub min_units: u32,
    /// The discount on such a line.
    pub percent: Percent,
}

impl PluginConfig for Config {}

/// The plugin.
pub struct BulkDiscount;

impl PricingPlugin for BulkDiscount {
    type Config = Config;

    fn price(cart: &Cart, config: &Config) -> Result<Vec<PriceAdjustment>, PluginError> {
        let mut adjustments = Vec::new();
        for (index, line) in cart.lines.iter().enumerate() {
            if line.quantity < config.min_units.max(1) {
                continue;
            }
            let off = line.total()?.percent(config.percent)?;
            if off.is_positive() {
                let reason = format!(
                    "{} off {} units or more of {}",
                    config.percent, config.min_units, line.sku
                );
                adjustments.push(PriceAdjustment::for_line(index as u32, off, "bulk", reason));
            }
        }
        Ok(adjustments)
    }
}

export_pricing!(BulkDiscount);

#[cfg(test)]
mod tests {
    use super::*;
    use bazaar_sdk::testing::CartBuilder;

    fn config(json: &str) -> Config {
        bazaar_sdk::config::parse(json).unwrap()
    }

    #[test]
    fn lines_at_the_threshold_get_the_percentage_off() {
        let cart = CartBuilder::new("CNY").line("TEA", 10, "20.00").line("CUP", 9, "5.00").build();
        let adjustments =
            BulkDiscount::price(&cart, &config(r#"{"min_units": 10, "percent": "7.5"}"#)).unwrap();
        assert_eq!(adjustments.len(), 1);
        assert_eq!(adjustments[0].line_index, Some(0));
        assert_eq!(adjustments[0].amount_off.amount_minor, 1500);
        assert_eq!(adjustments[0].reason, "7.5% off 10 units or more of TEA");
    }

    #[test]
    fn a_percentage_over_one_hundred_is_a_configuration_error() {
        let error = bazaar_sdk::config::parse::<Config>(r#"{"min_units": 1, "percent": 120}"#)
            .err()
            .unwrap();
        assert!(error.to_string().contains("percent"), "{error}");
    }
}
