//! Double-11 promotions, configured per store: flash-sale unit prices,
//! repeatable spend thresholds, percent coupons and a cap on the total
//! discount.
//!
//! # Configuration
//!
//! ```json
//! {
//!   "currency": "CNY",
//!   "campaign": "Double 11",
//!   "flash_sale": [
//!     { "sku": "TEA-250G", "unit_price": "99.00" }
//!   ],
//!   "spend_thresholds": [
//!     { "every": "300.00", "off": "50.00" },
//!     { "every": "1000.00", "off": "200.00", "repeat": false }
//!   ],
//!   "coupons": [
//!     { "code": "D11VIP", "percent": 10, "min_spend": "199.00" },
//!     { "code": "WELCOME", "percent": "12.5" }
//!   ],
//!   "max_discount": "500.00"
//! }
//! ```
//!
//! - `currency` (required): the ISO-4217 code every amount is in. A cart in
//!   another currency is refused with `unsupported`.
//! - `campaign`: the name that starts the reasons; "Double 11" by default.
//! - Amounts are decimal strings ("300.00") or integers, never JSON numbers
//!   with a fraction, so no digit goes through a float.
//! - `flash_sale`: a unit price per SKU; lines of those SKUs priced above it
//!   get the difference off, per unit.
//! - `spend_thresholds`: "every `every` spent, `off` off", counted on the
//!   subtotal after flash-sale prices. With `"repeat": false` the rule
//!   applies once ("spend 1000.00, get 200.00 off"). When several rules are
//!   configured, the one worth the most to the customer applies (the first
//!   listed on a tie); they do not stack.
//! - `coupons`: a percentage off what is left to pay after thresholds, for
//!   customers who entered the code (letter case ignored). `min_spend` is
//!   compared with the subtotal after flash-sale prices. Several different
//!   coupons may apply, in the order configured.
//! - `max_discount`: the most all adjustments together may take off; the
//!   last adjustments are trimmed (or dropped) to fit.
//!
//! A store that gives no configuration gets no promotions.
//!
//! # Order of application
//!
//! Flash-sale prices per line, then the best spend threshold on the
//! post-flash subtotal, then coupons on what is left, then the cap trims
//! from the last adjustment backwards. Every adjustment is positive and the
//! adjustments together never exceed the cart's subtotal.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use bazaar_sdk::money::{self, DecimalAmount, Percent};
use bazaar_sdk::{Cart, Money, PluginConfig, PluginError, PriceAdjustment, PricingPlugin};
use serde::Deserialize;

/// The most flash-sale SKUs one store may list. A Double-11 flash sale runs
/// hundreds of SKUs; 10,000 leaves room while bounding the configuration's
/// parse time and memory in every instance.
pub const FLASH_SALE_SKUS_MAX: usize = 10_000;

/// The most spend-threshold rules. Each cart evaluates every rule, and no
/// promotion calendar needs more than a handful of tiers.
pub const SPEND_THRESHOLDS_MAX: usize = 16;

/// The most coupons one store may configure. Each cart is matched against
/// every coupon; 1,000 campaigns' worth of codes is more than any store runs
/// at once.
pub const COUPONS_MAX: usize = 1_000;

/// The most coupon codes read from one cart. Customers type them, so the
/// list is client-controlled; codes past the first 16 are ignored.
pub const CART_COUPON_CODES_MAX: usize = 16;

/// The longest coupon code, SKU or campaign name, in bytes: they appear in
/// reasons shown to customers, and longer ones are configuration mistakes.
pub const NAME_BYTES_MAX: usize = 64;

/// The plugin: implements [`PricingPlugin`] with [`Config`].
pub struct Promotions;

bazaar_sdk::export_pricing!(Promotions);

impl PricingPlugin for Promotions {
    type Config = Config;

    fn price(cart: &Cart, config: &Config) -> Result<Vec<PriceAdjustment>, PluginError> {
        if cart.lines.is_empty() || config.has_no_rules() {
            return Ok(Vec::new());
        }
        let currency = cart.currency()?;
        if currency != config.currency {
            return Err(PluginError::unsupported(format!(
                "the promotions are configured in {} but the cart is in {currency}",
                config.currency
            )));
        }
        let mut pricing = Pricing { config, adjustments: Vec::new(), remaining: cart.subtotal()? };
        pricing.apply_flash_sale(cart)?;
        let post_flash_subtotal = pricing.remaining.clone();
        pricing.apply_best_spend_threshold(&post_flash_subtotal)?;
        pricing.apply_coupons(cart, &post_flash_subtotal)?;
        pricing.apply_cap()?;
        Ok(pricing.adjustments)
    }
}

/// A cart being priced: the adjustments so far and what is left to pay.
struct Pricing<'config> {
    /// The store's rules.
    config: &'config Config,
    /// The adjustments so far, in the order they apply.
    adjustments: Vec<PriceAdjustment>,
    /// The subtotal minus every adjustment so far; never negative.
    remaining: Money,
}

impl Pricing<'_> {
    /// One adjustment per line of a flash-sale SKU priced above its
    /// flash-sale price.
    fn apply_flash_sale(&mut self, cart: &Cart) -> Result<(), PluginError> {
        for (index, line) in cart.lines.iter().enumerate() {
            let Some(FlashSale { unit_price: flash_price, reason_start }) =
                self.config.flash_sale.get(&line.sku)
            else {
                continue;
            };
            if flash_price.amount_minor >= line.unit_price.amount_minor || line.quantity == 0 {
                continue;
            }
            let amount_off =
                line.unit_price.checked_sub(flash_price)?.checked_mul(line.quantity)?;
            let line_index = u32::try_from(index).map_err(|_| {
                PluginError::unsupported("the cart has more lines than u32 can count")
            })?;
            let reason = with_tail(
                reason_start,
                format_args!("{} each (x{})", line.unit_price, line.quantity),
            );
            self.push(PriceAdjustment::for_line(line_index, amount_off, "flash-sale", reason))?;
        }
        Ok(())
    }

    /// The spend threshold worth the most on `post_flash_subtotal`.
    fn apply_best_spend_threshold(
        &mut self,
        post_flash_subtotal: &Money,
    ) -> Result<(), PluginError> {
        let mut best: Option<(&SpendThreshold, u32, Money)> = None;
        for rule in &self.config.spend_thresholds {
            let times = rule.times_reached(post_flash_subtotal);
            if times == 0 {
                continue;
            }
            let amount_off = rule.off.checked_mul(times)?.min(&self.remaining)?;
            let better = match &best {
                Some((_, _, best_off)) => amount_off.amount_minor > best_off.amount_minor,
                None => true,
            };
            if better {
                best = Some((rule, times, amount_off));
            }
        }
        let Some((rule, times, amount_off)) = best else {
            return Ok(());
        };
        let reason = if rule.repeat {
            with_tail(&rule.reason, format_args!(" (x{times})"))
        } else {
            rule.reason.clone()
        };
        self.push(PriceAdjustment::whole_cart(amount_off, rule.code.clone(), reason))
    }

    /// Every configured coupon the customer entered, in configuration order.
    fn apply_coupons(
        &mut self,
        cart: &Cart,
        post_flash_subtotal: &Money,
    ) -> Result<(), PluginError> {
        let entered: Vec<String> = cart
            .coupon_codes
            .iter()
            .take(CART_COUPON_CODES_MAX)
            .map(|code| code.to_ascii_uppercase())
            .collect();
        for coupon in &self.config.coupons {
            if !entered.contains(&coupon.code) {
                continue;
            }
            if let Some(min_spend) = &coupon.min_spend
                && post_flash_subtotal.amount_minor < min_spend.amount_minor
            {
                bazaar_sdk::log::debug(&format!(
                    "coupon {} needs {min_spend}, the cart has {post_flash_subtotal}",
                    coupon.code
                ));
                continue;
            }
            let amount_off = self.remaining.percent(coupon.percent)?;
            if !amount_off.is_positive() {
                continue;
            }
            self.push(PriceAdjustment::whole_cart(
                amount_off,
                coupon.adjustment_code.clone(),
                coupon.reason.clone(),
            ))?;
        }
        Ok(())
    }

    /// Trims the last adjustments until the total is within the cap.
    fn apply_cap(&mut self) -> Result<(), PluginError> {
        let Some(cap) = &self.config.max_discount else {
            return Ok(());
        };
        let mut total = Money::zero(&cap.currency);
        for adjustment in &self.adjustments {
            total = total.checked_add(&adjustment.amount_off)?;
        }
        let mut excess = total.checked_sub(cap)?.amount_minor;
        while excess > 0 {
            let Some(last) = self.adjustments.last_mut() else {
                break;
            };
            let cut = excess.min(last.amount_off.amount_minor);
            last.amount_off.amount_minor -= cut;
            excess -= cut;
            if last.amount_off.is_positive() {
                last.reason.push_str(&format!(" (reduced: discounts are capped at {cap})"));
            } else {
                self.adjustments.pop();
            }
        }
        Ok(())
    }

    /// Records `adjustment`, keeping the invariants: positive, and never
    /// more than what is left to pay.
    fn push(&mut self, mut adjustment: PriceAdjustment) -> Result<(), PluginError> {
        adjustment.amount_off = adjustment.amount_off.min(&self.remaining)?;
        if adjustment.amount_off.is_positive() {
            self.remaining = self.remaining.checked_sub(&adjustment.amount_off)?;
            self.adjustments.push(adjustment);
        }
        Ok(())
    }
}

/// `start` (a text written once per configuration) followed by `tail`, in
/// one allocation sized for both.
fn with_tail(start: &str, tail: fmt::Arguments<'_>) -> String {
    /// Room for a tail: an amount with its currency and a count.
    const TAIL_BYTES_TYPICAL: usize = 32;
    let mut text = String::with_capacity(start.len() + TAIL_BYTES_TYPICAL);
    text.push_str(start);
    // Writing into a String cannot fail.
    let _ = text.write_fmt(tail);
    text
}

/// "300" for 300.00, "299.50" for 299.50: amounts inside machine codes.
fn plain_amount(amount: &Money) -> String {
    let shown = amount.to_string();
    let number = shown.split_once(' ').map_or(shown.as_str(), |(number, _)| number);
    match number.split_once('.') {
        Some((whole, fraction)) if fraction.bytes().all(|digit| digit == b'0') => whole.to_owned(),
        _ => number.to_owned(),
    }
}

/// A store's validated promotion rules. Build it from JSON with
/// [`Config::from_json`] (or through the SDK's configuration loading); the
/// default has no rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ConfigJson")]
pub struct Config {
    /// The currency of every amount and of the carts the rules apply to.
    currency: String,
    /// Flash-sale price per SKU.
    flash_sale: BTreeMap<String, FlashSale>,
    /// Spend-threshold rules, in configuration order.
    spend_thresholds: Vec<SpendThreshold>,
    /// Coupons, in configuration order, codes in upper case.
    coupons: Vec<Coupon>,
    /// The most all adjustments together may take off.
    max_discount: Option<Money>,
}

impl Config {
    /// Parses and validates a configuration; errors are `invalid-config`
    /// and say which field is wrong.
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        bazaar_sdk::config::parse(json)
    }

    fn has_no_rules(&self) -> bool {
        self.flash_sale.is_empty() && self.spend_thresholds.is_empty() && self.coupons.is_empty()
    }
}

/// A store without configuration runs no promotions.
impl PluginConfig for Config {
    fn when_missing() -> Result<Self, PluginError> {
        Ok(Self::default())
    }
}

/// A SKU's flash-sale price.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FlashSale {
    /// The unit price during the sale.
    unit_price: Money,
    /// The start of the adjustment's reason, up to the line's own price:
    /// `Double 11 flash sale: 99.00 CNY instead of `.
    reason_start: String,
}

/// "Every `every` spent, `off` off."
#[derive(Clone, Debug, PartialEq, Eq)]
struct SpendThreshold {
    /// The spend that earns one `off`; positive.
    every: Money,
    /// The amount off per `every`; positive and at most `every`.
    off: Money,
    /// Whether the rule applies once per `every` (true) or once at most.
    repeat: bool,
    /// The adjustment's code, `spend-300-get-50`.
    code: String,
    /// The adjustment's reason; a repeating rule's gets the times reached
    /// appended. Written once per configuration rather than per cart.
    reason: String,
}

impl SpendThreshold {
    /// The rule with its code and reason written out.
    fn new(campaign: &str, every: Money, off: Money, repeat: bool) -> Self {
        let reason = if repeat {
            format!("{campaign}: every {every} spent, {off} off")
        } else {
            format!("{campaign}: spend {every}, get {off} off")
        };
        let code = format!("spend-{}-get-{}", plain_amount(&every), plain_amount(&off));
        Self { every, off, repeat, code, reason }
    }

    /// How many times `subtotal` earns this rule's `off`.
    fn times_reached(&self, subtotal: &Money) -> u32 {
        let times = subtotal.amount_minor / self.every.amount_minor;
        if !self.repeat {
            return u32::from(times > 0);
        }
        u32::try_from(times.max(0)).unwrap_or(u32::MAX)
    }
}

/// A percent-off coupon.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Coupon {
    /// The code, in upper case.
    code: String,
    /// The share of what is left to pay that it takes off; above 0.
    percent: Percent,
    /// The post-flash subtotal a cart needs for the coupon to apply.
    min_spend: Option<Money>,
    /// The adjustment's code, `coupon-<CODE>`.
    adjustment_code: String,
    /// The adjustment's reason, written once per configuration.
    reason: String,
}

impl Coupon {
    /// The coupon with its adjustment's code and reason written out.
    fn new(code: String, percent: Percent, min_spend: Option<Money>) -> Self {
        let reason = match &min_spend {
            Some(min_spend) => {
                format!("Coupon {code}: {percent} off orders of {min_spend} or more")
            }
            None => format!("Coupon {code}: {percent} off"),
        };
        let adjustment_code = format!("coupon-{code}");
        Self { code, percent, min_spend, adjustment_code, reason }
    }
}

/// The configuration as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigJson {
    currency: String,
    #[serde(default)]
    campaign: Option<String>,
    #[serde(default)]
    flash_sale: Vec<FlashSaleJson>,
    #[serde(default)]
    spend_thresholds: Vec<SpendThresholdJson>,
    #[serde(default)]
    coupons: Vec<CouponJson>,
    #[serde(default)]
    max_discount: Option<DecimalAmount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlashSaleJson {
    sku: String,
    unit_price: DecimalAmount,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpendThresholdJson {
    every: DecimalAmount,
    off: DecimalAmount,
    #[serde(default = "repeat_by_default")]
    repeat: bool,
}

fn repeat_by_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CouponJson {
    code: String,
    percent: Percent,
    #[serde(default)]
    min_spend: Option<DecimalAmount>,
}

impl TryFrom<ConfigJson> for Config {
    type Error = String;

    fn try_from(json: ConfigJson) -> Result<Self, String> {
        money::validate_currency_code(&json.currency)
            .map_err(|error| format!("currency: {error}"))?;
        let currency = json.currency;
        let amount = |field: &str, value: DecimalAmount| -> Result<Money, String> {
            let money =
                value.in_currency(&currency).map_err(|error| format!("{field}: {error}"))?;
            if money.amount_minor < 0 {
                return Err(format!("{field}: must not be negative, got {money}"));
            }
            Ok(money)
        };
        let campaign = json.campaign.unwrap_or_else(|| "Double 11".to_owned());
        check_name("campaign", &campaign)?;

        check_count("flash_sale", json.flash_sale.len(), FLASH_SALE_SKUS_MAX)?;
        let mut flash_sale = BTreeMap::new();
        for (index, entry) in json.flash_sale.into_iter().enumerate() {
            check_name(&format!("flash_sale[{index}].sku"), &entry.sku)?;
            let unit_price = amount(&format!("flash_sale[{index}].unit_price"), entry.unit_price)?;
            let reason_start = format!("{campaign} flash sale: {unit_price} instead of ");
            let sale = FlashSale { unit_price, reason_start };
            if flash_sale.insert(entry.sku.clone(), sale).is_some() {
                return Err(format!("flash_sale[{index}]: SKU {:?} is listed twice", entry.sku));
            }
        }

        check_count("spend_thresholds", json.spend_thresholds.len(), SPEND_THRESHOLDS_MAX)?;
        let mut spend_thresholds = Vec::with_capacity(json.spend_thresholds.len());
        for (index, rule) in json.spend_thresholds.into_iter().enumerate() {
            let every = amount(&format!("spend_thresholds[{index}].every"), rule.every)?;
            let off = amount(&format!("spend_thresholds[{index}].off"), rule.off)?;
            if !every.is_positive() {
                return Err(format!("spend_thresholds[{index}].every: must be above zero"));
            }
            if !off.is_positive() {
                return Err(format!("spend_thresholds[{index}].off: must be above zero"));
            }
            if off.amount_minor > every.amount_minor {
                return Err(format!(
                    "spend_thresholds[{index}]: off ({off}) must not exceed every ({every})"
                ));
            }
            spend_thresholds.push(SpendThreshold::new(&campaign, every, off, rule.repeat));
        }

        check_count("coupons", json.coupons.len(), COUPONS_MAX)?;
        let mut coupons: Vec<Coupon> = Vec::with_capacity(json.coupons.len());
        for (index, coupon) in json.coupons.into_iter().enumerate() {
            check_name(&format!("coupons[{index}].code"), &coupon.code)?;
            let code = coupon.code.to_ascii_uppercase();
            if coupons.iter().any(|existing| existing.code == code) {
                return Err(format!("coupons[{index}]: code {code:?} is listed twice"));
            }
            if coupon.percent.is_zero() {
                return Err(format!("coupons[{index}].percent: must be above zero"));
            }
            let min_spend = coupon
                .min_spend
                .map(|min_spend| amount(&format!("coupons[{index}].min_spend"), min_spend))
                .transpose()?;
            coupons.push(Coupon::new(code, coupon.percent, min_spend));
        }

        let max_discount = json.max_discount.map(|cap| amount("max_discount", cap)).transpose()?;

        Ok(Config { currency, flash_sale, spend_thresholds, coupons, max_discount })
    }
}

fn check_name(field: &str, name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(format!("{field}: must not be empty"));
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(format!("{field}: longer than {NAME_BYTES_MAX} bytes"));
    }
    Ok(())
}

fn check_count(field: &str, count: usize, count_max: usize) -> Result<(), String> {
    if count > count_max {
        return Err(format!("{field}: {count} entries, at most {count_max} are allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bazaar_sdk::stand_in;
    use bazaar_sdk::testing::CartBuilder;

    fn config(json: &str) -> Config {
        Config::from_json(json).expect("valid test configuration")
    }

    fn config_error(json: &str) -> String {
        match Config::from_json(json) {
            Err(PluginError::InvalidConfig(message)) => message,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    fn cny(amount: &str) -> Money {
        Money::parse(amount, "CNY").expect("a valid test amount")
    }

    fn total_off(adjustments: &[PriceAdjustment]) -> i64 {
        adjustments.iter().map(|adjustment| adjustment.amount_off.amount_minor).sum()
    }

    const DOUBLE_11: &str = r#"{
        "currency": "CNY",
        "flash_sale": [{ "sku": "TEA-250G", "unit_price": "99.00" }],
        "spend_thresholds": [{ "every": "300.00", "off": "50.00" }],
        "coupons": [{ "code": "D11VIP", "percent": 10, "min_spend": "199.00" }]
    }"#;

    #[test]
    fn every_300_spent_takes_50_off_as_often_as_it_is_reached() {
        let cart = CartBuilder::new("CNY").line("COAT", 1, "650.00").build();
        let adjustments = Promotions::price(&cart, &config(DOUBLE_11)).unwrap();
        assert_eq!(
            adjustments,
            vec![PriceAdjustment::whole_cart(
                cny("100.00"),
                "spend-300-get-50",
                "Double 11: every 300.00 CNY spent, 50.00 CNY off (x2)"
            )]
        );
    }

    #[test]
    fn a_cart_below_every_threshold_gets_nothing() {
        let cart = CartBuilder::new("CNY").line("COAT", 1, "299.99").build();
        assert_eq!(Promotions::price(&cart, &config(DOUBLE_11)).unwrap(), vec![]);
    }

    #[test]
    fn flash_sale_prices_apply_per_line_before_thresholds() {
        // 3 x 129.00 = 387.00; flash price 99.00 takes 90.00 off, leaving
        // 297.00: under the 300.00 threshold.
        let cart = CartBuilder::new("CNY").line("TEA-250G", 3, "129.00").build();
        let adjustments = Promotions::price(&cart, &config(DOUBLE_11)).unwrap();
        assert_eq!(
            adjustments,
            vec![PriceAdjustment::for_line(
                0,
                cny("90.00"),
                "flash-sale",
                "Double 11 flash sale: 99.00 CNY instead of 129.00 CNY each (x3)"
            )]
        );
    }

    #[test]
    fn a_flash_price_above_the_catalogue_price_changes_nothing() {
        let cart = CartBuilder::new("CNY").line("TEA-250G", 1, "89.00").build();
        assert_eq!(Promotions::price(&cart, &config(DOUBLE_11)).unwrap(), vec![]);
    }

    #[test]
    fn rules_apply_in_order_flash_then_threshold_then_coupon() {
        // Subtotal 2 x 129.00 + 400.00 = 658.00; flash -60.00 -> 598.00;
        // threshold x1 -50.00 -> 548.00; coupon 10% -> -54.80.
        let cart = CartBuilder::new("CNY")
            .line("TEA-250G", 2, "129.00")
            .line("COAT", 1, "400.00")
            .coupon("d11vip")
            .build();
        let adjustments = Promotions::price(&cart, &config(DOUBLE_11)).unwrap();
        let codes: Vec<&str> = adjustments.iter().map(|a| a.code.as_str()).collect();
        assert_eq!(codes, ["flash-sale", "spend-300-get-50", "coupon-D11VIP"]);
        let amounts: Vec<i64> = adjustments.iter().map(|a| a.amount_off.amount_minor).collect();
        assert_eq!(amounts, [60_00, 50_00, 54_80]);
        assert_eq!(adjustments[2].reason, "Coupon D11VIP: 10% off orders of 199.00 CNY or more");
    }

    #[test]
    fn a_coupon_below_its_minimum_spend_does_not_apply() {
        let cart = CartBuilder::new("CNY").line("CUP", 1, "150.00").coupon("D11VIP").build();
        assert_eq!(Promotions::price(&cart, &config(DOUBLE_11)).unwrap(), vec![]);
    }

    #[test]
    fn unknown_and_repeated_coupon_codes_apply_nothing_extra() {
        let cart = CartBuilder::new("CNY")
            .line("CUP", 1, "250.00")
            .coupon("NOPE")
            .coupon("D11VIP")
            .coupon("D11VIP")
            .build();
        let adjustments = Promotions::price(&cart, &config(DOUBLE_11)).unwrap();
        assert_eq!(adjustments.len(), 1);
        assert_eq!(adjustments[0].amount_off, cny("25.00"));
    }

    #[test]
    fn the_best_threshold_applies_and_thresholds_do_not_stack() {
        let tiers = config(
            r#"{"currency": "CNY", "spend_thresholds": [
                {"every": "300", "off": "30"},
                {"every": "1000", "off": "200", "repeat": false}
            ]}"#,
        );
        // 1,200.00: 4 x 30.00 = 120.00 against 200.00 once.
        let big = CartBuilder::new("CNY").line("TV", 1, "1200.00").build();
        let adjustments = Promotions::price(&big, &tiers).unwrap();
        assert_eq!(adjustments.len(), 1);
        assert_eq!(adjustments[0].amount_off, cny("200.00"));
        assert_eq!(adjustments[0].code, "spend-1000-get-200");
        assert_eq!(adjustments[0].reason, "Double 11: spend 1000.00 CNY, get 200.00 CNY off");
        // 900.00: only the repeatable rule is reached.
        let small = CartBuilder::new("CNY").line("TV", 1, "900.00").build();
        assert_eq!(Promotions::price(&small, &tiers).unwrap()[0].amount_off, cny("90.00"));
    }

    #[test]
    fn the_cap_trims_the_last_adjustments_first() {
        let capped = config(
            r#"{"currency": "CNY",
                "flash_sale": [{"sku": "TEA-250G", "unit_price": "99.00"}],
                "spend_thresholds": [{"every": "300.00", "off": "50.00"}],
                "coupons": [{"code": "D11VIP", "percent": 10}],
                "max_discount": "100.00"}"#,
        );
        // Flash 60.00 + threshold 50.00 = 110.00 already: the threshold is
        // cut to 40.00 and the coupon is dropped.
        let cart = CartBuilder::new("CNY")
            .line("TEA-250G", 2, "129.00")
            .line("COAT", 1, "400.00")
            .coupon("D11VIP")
            .build();
        let adjustments = Promotions::price(&cart, &capped).unwrap();
        assert_eq!(total_off(&adjustments), 10000);
        assert_eq!(adjustments.len(), 2);
        assert_eq!(adjustments[1].amount_off, cny("40.00"));
        assert!(adjustments[1].reason.ends_with("(reduced: discounts are capped at 100.00 CNY)"));
    }

    #[test]
    fn discounts_never_exceed_the_price_and_are_always_positive() {
        let generous = config(
            r#"{"currency": "CNY",
                "flash_sale": [{"sku": "GIFT", "unit_price": "0"}],
                "spend_thresholds": [{"every": "0.01", "off": "0.01"}],
                "coupons": [{"code": "ALL", "percent": 100}]}"#,
        );
        let cart = CartBuilder::new("CNY")
            .line("GIFT", 2, "10.00")
            .line("CUP", 1, "5.00")
            .coupon("ALL")
            .build();
        let adjustments = Promotions::price(&cart, &generous).unwrap();
        assert_eq!(total_off(&adjustments), 25_00, "everything free, nothing more");
        assert!(adjustments.iter().all(|a| a.amount_off.is_positive()));
    }

    #[test]
    fn a_cart_in_another_currency_is_unsupported() {
        let cart = CartBuilder::new("USD").line("COAT", 1, "650.00").build();
        let error = Promotions::price(&cart, &config(DOUBLE_11)).unwrap_err();
        assert!(matches!(error, PluginError::Unsupported(_)), "{error:?}");
    }

    #[test]
    fn an_empty_cart_or_an_empty_configuration_gives_no_adjustments() {
        let empty = CartBuilder::new("CNY").build();
        assert_eq!(Promotions::price(&empty, &config(DOUBLE_11)).unwrap(), vec![]);
        let cart = CartBuilder::new("USD").line("COAT", 1, "650.00").build();
        assert_eq!(Promotions::price(&cart, &Config::default()).unwrap(), vec![]);
    }

    #[test]
    fn amounts_in_yen_use_no_decimals() {
        let yen = config(
            r#"{"currency": "JPY", "campaign": "Singles Day",
                "spend_thresholds": [{"every": "3000", "off": "500"}]}"#,
        );
        let cart = CartBuilder::new("JPY").line("TEA", 1, "6500").build();
        let adjustments = Promotions::price(&cart, &yen).unwrap();
        assert_eq!(adjustments[0].reason, "Singles Day: every 3000 JPY spent, 500 JPY off (x2)");
        assert_eq!(adjustments[0].amount_off, Money::new(1000, "JPY"));
    }

    #[test]
    fn invalid_configurations_are_refused_with_the_field_named() {
        let cases = [
            (
                r#"{"currency": "CNY", "spend_thresholds": [{"every": "0", "off": "1"}]}"#,
                "spend_thresholds[0].every: must be above zero",
            ),
            (
                r#"{"currency": "CNY", "spend_thresholds": [{"every": "300", "off": "-5"}]}"#,
                "spend_thresholds[0].off: must not be negative",
            ),
            (
                r#"{"currency": "CNY", "spend_thresholds": [{"every": "30", "off": "50"}]}"#,
                "must not exceed every",
            ),
            (
                r#"{"currency": "CNY", "coupons": [{"code": "X", "percent": 120}]}"#,
                "coupons[0].percent",
            ),
            (
                r#"{"currency": "CNY", "coupons": [{"code": "X", "percent": 0}]}"#,
                "coupons[0].percent: must be above zero",
            ),
            (
                r#"{"currency": "CNY", "coupons": [{"code": "x", "percent": 5}, {"code": "X", "percent": 5}]}"#,
                "coupons[1]: code \"X\" is listed twice",
            ),
            (
                r#"{"currency": "CNY", "flash_sale": [{"sku": "A", "unit_price": "1.005"}]}"#,
                "flash_sale[0].unit_price",
            ),
            (
                r#"{"currency": "CNY", "flash_sale": [{"sku": "A", "unit_price": 9.9}]}"#,
                "flash_sale[0].unit_price",
            ),
            (r#"{"currency": "CNY", "max_discount": "-1"}"#, "max_discount: must not be negative"),
            (r#"{"currency": "yuan"}"#, "currency:"),
            (r#"{"currency": "CNY", "coupon": []}"#, "unknown field `coupon`"),
            (r#"{"spend_thresholds": []}"#, "missing field `currency`"),
        ];
        for (json, expected) in cases {
            let message = config_error(json);
            assert!(message.contains(expected), "{json}: {message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn oversized_rule_lists_are_refused() {
        let thresholds = vec![r#"{"every": "1", "off": "1"}"#; SPEND_THRESHOLDS_MAX + 1].join(",");
        let message =
            config_error(&format!(r#"{{"currency": "CNY", "spend_thresholds": [{thresholds}]}}"#));
        assert!(message.contains("at most 16"), "{message}");
    }

    #[test]
    fn a_store_without_configuration_gets_no_promotions() {
        stand_in::reset();
        let cart = CartBuilder::new("CNY").line("COAT", 1, "650.00").build();
        assert_eq!(Promotions::price_with_store_config(&cart).unwrap(), vec![]);

        stand_in::set_config(Some(DOUBLE_11));
        assert_eq!(Promotions::price_with_store_config(&cart).unwrap().len(), 1);
    }
}
