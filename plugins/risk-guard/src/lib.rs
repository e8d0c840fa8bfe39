//! Anti-scalper rules for flash sales, configured per store: blocked
//! customers, a ceiling on the order total, units per order and per
//! customer, orders per customer in all and per minute, and customers per
//! shipping address.
//!
//! # Configuration
//!
//! ```json
//! {
//!   "currency": "CNY",
//!   "blocked_customers": ["scalper-007", "bot-4411"],
//!   "max_order_total": "20000.00",
//!   "max_units_per_order": {
//!     "any_sku": 10,
//!     "skus": [{ "sku": "PHONE-17-PRO", "max_units": 2 }]
//!   },
//!   "max_units_per_customer": {
//!     "skus": [{ "sku": "PHONE-17-PRO", "max_units": 4 }]
//!   },
//!   "max_orders_per_customer": 50,
//!   "max_orders_per_customer_per_minute": 3,
//!   "max_customers_per_address": 3
//! }
//! ```
//!
//! Every rule is optional; a rule left out is not checked.
//!
//! - `currency`: the ISO-4217 code of `max_order_total`; required with it.
//!   An order in another currency cannot be compared and is refused with
//!   `unsupported` (the host's failure policy for risk then applies).
//! - `blocked_customers`: customer ids whose orders are always rejected.
//! - `max_order_total`: the most one order may cost after promotions,
//!   before shipping; a decimal string ("20000.00") or an integer, never a
//!   JSON number with a fraction.
//! - `max_units_per_order`: units of one SKU in one order. `any_sku`
//!   applies to every SKU; an entry of `skus` overrides it for that SKU.
//! - `max_units_per_customer`: the same shape, counting the units the
//!   customer already holds in orders that are not cancelled plus this
//!   order's.
//! - `max_orders_per_customer`: the most orders one customer may have in
//!   the store (not cancelled), this one included: with 50, a customer who
//!   holds 50 orders cannot place another until one is cancelled.
//! - `max_orders_per_customer_per_minute`: orders one customer may place in
//!   any 60 seconds, by the orders' own timestamps; kept in the plugin's
//!   state.
//! - `max_customers_per_address`: distinct customers whose orders may ship
//!   to one address (country, city, street and postal code, compared
//!   without case, spacing or punctuation) within
//!   [`ADDRESS_MEMORY_MS`]; kept in the plugin's state.
//!
//! Limits are at least 1: a limit of 0 would reject every order, which is
//! a configuration mistake rather than a rule (take the SKU off sale
//! instead).
//!
//! A store that gives no configuration gets no rules: every order is
//! approved. A risk plugin sits on the path of every order and its failure
//! stops the order, so an unconfigured store must keep selling rather than
//! fail each order with an error.
//!
//! # Verdicts
//!
//! Rules are checked in the order listed above; the first one broken
//! rejects the order with its code (see [`codes`]) and a reason the
//! customer can read. An approved order is remembered by the state-based
//! rules; a rejected order is not, and since the host applies a call's
//! state writes only with a placed order, an order that fails later is not
//! either.

pub mod tracking;

use std::collections::{BTreeMap, BTreeSet};

use bazaar_sdk::money::{self, DecimalAmount};
use bazaar_sdk::{Cart, Money, PluginConfig, PluginError, RiskPlugin, RiskRequest, RiskVerdict};
use serde::Deserialize;

use crate::tracking::{Bucket, Entry};

/// The machine codes of the verdicts.
pub mod codes {
    /// The order broke no rule.
    pub const APPROVED: &str = "approved";
    /// The customer is on the store's block list.
    pub const CUSTOMER_BLOCKED: &str = "customer-blocked";
    /// The order costs more than `max_order_total`.
    pub const ORDER_TOTAL_OVER_LIMIT: &str = "order-total-over-limit";
    /// A SKU's units in the order exceed `max_units_per_order`.
    pub const UNITS_PER_ORDER_OVER_LIMIT: &str = "units-per-order-over-limit";
    /// A SKU's units held plus ordered exceed `max_units_per_customer`.
    pub const UNITS_PER_CUSTOMER_OVER_LIMIT: &str = "units-per-customer-over-limit";
    /// The customer already holds `max_orders_per_customer` orders.
    pub const ORDERS_PER_CUSTOMER_OVER_LIMIT: &str = "orders-per-customer-over-limit";
    /// The customer placed `max_orders_per_customer_per_minute` orders in
    /// the last minute.
    pub const ORDER_RATE_OVER_LIMIT: &str = "order-rate-over-limit";
    /// The address already served `max_customers_per_address` other
    /// customers.
    pub const CUSTOMERS_PER_ADDRESS_OVER_LIMIT: &str = "customers-per-address-over-limit";
}

/// The window of `max_orders_per_customer_per_minute`.
pub const RATE_WINDOW_MS: u64 = 60_000;

/// How long an address remembers its customers after its last order: a
/// day covers a Double-11 sale from midnight to midnight, and a longer
/// memory would catch households that order from one address over weeks.
pub const ADDRESS_MEMORY_MS: u64 = 24 * 60 * 60 * 1000;

/// The largest `max_orders_per_customer_per_minute`: one order a second is
/// already no limit on a person, and each allowed order is a timestamp
/// kept in state per customer.
pub const ORDERS_PER_MINUTE_LIMIT_MAX: u32 = 60;

/// The largest `max_customers_per_address`: above a hundred the rule no
/// longer tells a scalper's drop address from an office, and each customer
/// is a hash kept in state per address.
pub const CUSTOMERS_PER_ADDRESS_LIMIT_MAX: u32 = 100;

/// The most customers on the block list. It is matched on every order and
/// kept in every instance; ten thousand known scalper accounts is already a
/// long list (the host's limit on a configuration document is tighter).
pub const BLOCKED_CUSTOMERS_MAX: usize = 10_000;

/// The most SKUs listed in one unit limit, for the same reasons as
/// [`BLOCKED_CUSTOMERS_MAX`].
pub const LIMITED_SKUS_MAX: usize = 10_000;

/// The longest customer id or SKU in the configuration, in bytes: the host
/// accepts none longer, so a longer one can never match and is a mistake.
pub const ID_BYTES_MAX: usize = 64;

/// The state keys of the order-rate rule start with this.
const RATE_RULE: &str = "rate";

/// The state keys of the customers-per-address rule start with this.
const ADDRESS_RULE: &str = "address";

/// The plugin: implements [`RiskPlugin`] with [`Config`].
pub struct RiskGuard;

bazaar_sdk::export_risk!(RiskGuard);

impl RiskPlugin for RiskGuard {
    type Config = Config;

    fn assess(request: &RiskRequest, config: &Config) -> Result<RiskVerdict, PluginError> {
        if let Some(rejection) = check_stateless_rules(request, config)? {
            return Ok(rejection);
        }
        // The state-based rules are judged first and remembered after, so
        // a rejection by the second leaves the first's state untouched.
        let cart = &request.cart;
        let mut remembered = Vec::with_capacity(2);
        if let Some(limit) = config.max_orders_per_customer_per_minute {
            match check_order_rate(cart, limit) {
                Judged::Passed(update) => remembered.push(update),
                Judged::Rejected(rejection) => return Ok(rejection),
            }
        }
        if let Some(limit) = config.max_customers_per_address {
            match check_customers_per_address(cart, limit) {
                Judged::Passed(update) => remembered.push(update),
                Judged::Rejected(rejection) => return Ok(rejection),
            }
        }
        for update in remembered {
            update.bucket.save(update.keep)?;
        }
        Ok(RiskVerdict::approve(codes::APPROVED, ""))
    }
}

/// The rules that need nothing but the request: the first one broken.
fn check_stateless_rules(
    request: &RiskRequest,
    config: &Config,
) -> Result<Option<RiskVerdict>, PluginError> {
    let cart = &request.cart;
    if config.blocked_customers.contains(&cart.customer.id) {
        return Ok(Some(reject(
            codes::CUSTOMER_BLOCKED,
            "This account cannot place orders in this store; please contact the store's \
             customer service."
                .to_owned(),
        )));
    }
    if let Some(max_total) = &config.max_order_total {
        if request.total.currency != max_total.currency {
            return Err(PluginError::unsupported(format!(
                "the order total limit is configured in {} but the order is in {}",
                max_total.currency, request.total.currency
            )));
        }
        if request.total.amount_minor > max_total.amount_minor {
            return Ok(Some(reject(
                codes::ORDER_TOTAL_OVER_LIMIT,
                format!(
                    "Orders in this store are limited to {max_total} each; this order comes to {}.",
                    request.total
                ),
            )));
        }
    }
    let units = units_per_sku(cart);
    if let Some(limits) = &config.max_units_per_order {
        for &(sku, ordered) in &units {
            if let Some(limit) = limits.limit_of(sku)
                && ordered > u64::from(limit)
            {
                return Ok(Some(reject(
                    codes::UNITS_PER_ORDER_OVER_LIMIT,
                    format!("At most {limit} units of {sku} per order; this order has {ordered}."),
                )));
            }
        }
    }
    if let Some(limits) = &config.max_units_per_customer {
        for &(sku, ordered) in &units {
            let held = u64::from(request.history.units_held_of(sku));
            if let Some(limit) = limits.limit_of(sku)
                && held + ordered > u64::from(limit)
            {
                return Ok(Some(reject(
                    codes::UNITS_PER_CUSTOMER_OVER_LIMIT,
                    format!(
                        "At most {limit} units of {sku} per customer; you already have {held} \
                         in earlier orders and this order adds {ordered}."
                    ),
                )));
            }
        }
    }
    if let Some(limit) = config.max_orders_per_customer
        && request.history.orders_placed >= limit
    {
        return Ok(Some(reject(
            codes::ORDERS_PER_CUSTOMER_OVER_LIMIT,
            format!(
                "At most {limit} open orders per customer in this store; you already have {}.",
                request.history.orders_placed
            ),
        )));
    }
    Ok(None)
}

/// A rejection, logged at debug level: at a flash sale's rate, rejections
/// are routine, and the verdict itself is recorded with the order attempt.
fn reject(code: &str, reason: String) -> RiskVerdict {
    bazaar_sdk::log::debug(&format!("rejected: {code}"));
    RiskVerdict::reject(code, reason)
}

/// Units per SKU of the cart, in the order SKUs first appear; a SKU on
/// several lines is summed.
fn units_per_sku(cart: &Cart) -> Vec<(&str, u64)> {
    let mut units: Vec<(&str, u64)> = Vec::with_capacity(cart.lines.len());
    for line in &cart.lines {
        match units.iter_mut().find(|(sku, _)| *sku == line.sku) {
            Some((_, total)) => *total += u64::from(line.quantity),
            None => units.push((&line.sku, u64::from(line.quantity))),
        }
    }
    units
}

/// A state-based rule's judgement of one order.
enum Judged {
    /// The order passes; this is what to remember if it is approved.
    Passed(Remembered),
    /// The order breaks the rule.
    Rejected(RiskVerdict),
}

/// A bucket changed by a passed rule, and the entry it must not evict.
struct Remembered {
    /// The bucket, with the order recorded.
    bucket: Bucket,
    /// The key hash of the order's own entry.
    keep: u64,
}

/// `max_orders_per_customer_per_minute`: the orders of the customer in the
/// 60 seconds up to this one, by the orders' timestamps.
fn check_order_rate(cart: &Cart, limit: u32) -> Judged {
    let customer = tracking::customer_hash(&cart.customer.id);
    let mut bucket = Bucket::load(RATE_RULE, customer);
    let now_ms = cart.placed_at_ms;
    let window_start_ms = now_ms.saturating_sub(RATE_WINDOW_MS);
    bucket.forget_last_seen_by(window_start_ms);
    let mut recent: Vec<u64> = bucket
        .entry(customer)
        .map(|entry| {
            entry.values.iter().copied().filter(|&at_ms| at_ms > window_start_ms).collect()
        })
        .unwrap_or_default();
    if recent.len() >= limit as usize {
        return Judged::Rejected(reject(
            codes::ORDER_RATE_OVER_LIMIT,
            format!(
                "At most {limit} orders per customer per minute; you placed {} in the last \
                 minute. Please try again shortly.",
                recent.len()
            ),
        ));
    }
    recent.push(now_ms);
    recent.sort_unstable();
    let last_seen_ms = recent.last().copied().unwrap_or(now_ms);
    bucket.insert(customer, Entry { last_seen_ms, values: recent });
    Judged::Passed(Remembered { bucket, keep: customer })
}

/// `max_customers_per_address`: the distinct customers seen at the order's
/// shipping address within [`ADDRESS_MEMORY_MS`] of its last order.
fn check_customers_per_address(cart: &Cart, limit: u32) -> Judged {
    let address = tracking::address_fingerprint(&cart.shipping_address);
    let customer = tracking::customer_hash(&cart.customer.id);
    let mut bucket = Bucket::load(ADDRESS_RULE, address);
    let now_ms = cart.placed_at_ms;
    bucket.forget_last_seen_by(now_ms.saturating_sub(ADDRESS_MEMORY_MS));
    let mut entry = bucket.entry(address).cloned().unwrap_or_default();
    if let Err(position) = entry.values.binary_search(&customer) {
        if entry.values.len() >= limit as usize {
            return Judged::Rejected(reject(
                codes::CUSTOMERS_PER_ADDRESS_OVER_LIMIT,
                format!(
                    "Orders to one address are limited to {limit} customer accounts, and {} \
                     have already used this address.",
                    entry.values.len()
                ),
            ));
        }
        entry.values.insert(position, customer);
    }
    entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
    bucket.insert(address, entry);
    Judged::Passed(Remembered { bucket, keep: address })
}

/// A store's validated rules. Build it from JSON with [`Config::from_json`]
/// (or through the SDK's configuration loading); the default has no rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ConfigJson")]
pub struct Config {
    /// Customers whose orders are always rejected.
    blocked_customers: BTreeSet<String>,
    /// The most one order may cost after promotions, before shipping.
    max_order_total: Option<Money>,
    /// Units of one SKU in one order.
    max_units_per_order: Option<UnitLimits>,
    /// Units of one SKU one customer may hold, this order included.
    max_units_per_customer: Option<UnitLimits>,
    /// Orders one customer may have in the store, this one included.
    max_orders_per_customer: Option<u64>,
    /// Orders one customer may place in any [`RATE_WINDOW_MS`].
    max_orders_per_customer_per_minute: Option<u32>,
    /// Distinct customers whose orders may ship to one address.
    max_customers_per_address: Option<u32>,
}

impl Config {
    /// Parses and validates a configuration; errors are `invalid-config`
    /// and say which field is wrong.
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        bazaar_sdk::config::parse(json)
    }
}

/// A store without configuration has no rules: every order is approved.
impl PluginConfig for Config {
    fn when_missing() -> Result<Self, PluginError> {
        Ok(Self::default())
    }
}

/// A limit on units of a SKU: one for every SKU, overridden per SKU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct UnitLimits {
    /// The limit of a SKU not listed in `skus`, if any.
    any_sku: Option<u32>,
    /// The limits of listed SKUs.
    skus: BTreeMap<String, u32>,
}

impl UnitLimits {
    /// The limit that applies to `sku`, if any.
    fn limit_of(&self, sku: &str) -> Option<u32> {
        self.skus.get(sku).copied().or(self.any_sku)
    }
}

/// The configuration as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigJson {
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    blocked_customers: Vec<String>,
    #[serde(default)]
    max_order_total: Option<DecimalAmount>,
    #[serde(default)]
    max_units_per_order: Option<UnitLimitsJson>,
    #[serde(default)]
    max_units_per_customer: Option<UnitLimitsJson>,
    #[serde(default)]
    max_orders_per_customer: Option<u64>,
    #[serde(default)]
    max_orders_per_customer_per_minute: Option<u32>,
    #[serde(default)]
    max_customers_per_address: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitLimitsJson {
    #[serde(default)]
    any_sku: Option<u32>,
    #[serde(default)]
    skus: Vec<SkuLimitJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkuLimitJson {
    sku: String,
    max_units: u32,
}

impl TryFrom<ConfigJson> for Config {
    type Error = String;

    fn try_from(json: ConfigJson) -> Result<Self, String> {
        if let Some(currency) = &json.currency {
            money::validate_currency_code(currency)
                .map_err(|error| format!("currency: {error}"))?;
        }
        let max_order_total = match (json.max_order_total, &json.currency) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(
                    "max_order_total: needs `currency`, the currency of the amount".to_owned()
                );
            }
            (Some(amount), Some(currency)) => {
                let total = amount
                    .in_currency(currency)
                    .map_err(|error| format!("max_order_total: {error}"))?;
                if !total.is_positive() {
                    return Err(format!("max_order_total: must be above zero, got {total}"));
                }
                Some(total)
            }
        };

        check_count("blocked_customers", json.blocked_customers.len(), BLOCKED_CUSTOMERS_MAX)?;
        let mut blocked_customers = BTreeSet::new();
        for (index, customer) in json.blocked_customers.into_iter().enumerate() {
            check_id(&format!("blocked_customers[{index}]"), &customer)?;
            if !blocked_customers.insert(customer.clone()) {
                return Err(format!(
                    "blocked_customers[{index}]: customer {customer:?} is listed twice"
                ));
            }
        }

        let max_units_per_order = json
            .max_units_per_order
            .map(|limits| unit_limits("max_units_per_order", limits))
            .transpose()?;
        let max_units_per_customer = json
            .max_units_per_customer
            .map(|limits| unit_limits("max_units_per_customer", limits))
            .transpose()?;
        if let Some(limit) = json.max_orders_per_customer {
            check_limit("max_orders_per_customer", limit, u64::MAX)?;
        }
        if let Some(limit) = json.max_orders_per_customer_per_minute {
            check_limit(
                "max_orders_per_customer_per_minute",
                u64::from(limit),
                u64::from(ORDERS_PER_MINUTE_LIMIT_MAX),
            )?;
        }
        if let Some(limit) = json.max_customers_per_address {
            check_limit(
                "max_customers_per_address",
                u64::from(limit),
                u64::from(CUSTOMERS_PER_ADDRESS_LIMIT_MAX),
            )?;
        }

        Ok(Config {
            blocked_customers,
            max_order_total,
            max_units_per_order,
            max_units_per_customer,
            max_orders_per_customer: json.max_orders_per_customer,
            max_orders_per_customer_per_minute: json.max_orders_per_customer_per_minute,
            max_customers_per_address: json.max_customers_per_address,
        })
    }
}

fn unit_limits(field: &str, json: UnitLimitsJson) -> Result<UnitLimits, String> {
    if let Some(any_sku) = json.any_sku {
        check_limit(&format!("{field}.any_sku"), u64::from(any_sku), u64::from(u32::MAX))?;
    }
    check_count(&format!("{field}.skus"), json.skus.len(), LIMITED_SKUS_MAX)?;
    let mut skus = BTreeMap::new();
    for (index, entry) in json.skus.into_iter().enumerate() {
        check_id(&format!("{field}.skus[{index}].sku"), &entry.sku)?;
        check_limit(
            &format!("{field}.skus[{index}].max_units"),
            u64::from(entry.max_units),
            u64::from(u32::MAX),
        )?;
        if skus.insert(entry.sku.clone(), entry.max_units).is_some() {
            return Err(format!("{field}.skus[{index}]: SKU {:?} is listed twice", entry.sku));
        }
    }
    Ok(UnitLimits { any_sku: json.any_sku, skus })
}

fn check_limit(field: &str, limit: u64, limit_max: u64) -> Result<(), String> {
    if limit == 0 {
        return Err(format!("{field}: must be at least 1 (0 would reject every order)"));
    }
    if limit > limit_max {
        return Err(format!("{field}: {limit} is above the largest accepted, {limit_max}"));
    }
    Ok(())
}

fn check_id(field: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("{field}: must not be empty"));
    }
    if id.len() > ID_BYTES_MAX {
        return Err(format!("{field}: longer than {ID_BYTES_MAX} bytes"));
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
    use bazaar_sdk::Decision;
    use bazaar_sdk::stand_in;
    use bazaar_sdk::testing::{CartBuilder, RiskRequestBuilder};

    /// 2025-11-11T00:00:00+08:00, the builder's default order time.
    const MIDNIGHT_MS: u64 = 1_762_790_400_000;

    fn config(json: &str) -> Config {
        Config::from_json(json).expect("valid test configuration")
    }

    fn config_error(json: &str) -> String {
        match Config::from_json(json) {
            Err(PluginError::InvalidConfig(message)) => message,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    fn phone_order(customer: &str, quantity: u32) -> RiskRequestBuilder {
        RiskRequestBuilder::new(
            CartBuilder::new("CNY")
                .customer(customer)
                .line("PHONE-17-PRO", quantity, "7999.00")
                .build(),
        )
    }

    fn assess(request: &RiskRequest, config: &Config) -> RiskVerdict {
        RiskGuard::assess(request, config).expect("a verdict")
    }

    fn assert_rejected(verdict: &RiskVerdict, code: &str, reason: &str) {
        assert_eq!(verdict.decision, Decision::Reject, "{verdict:?}");
        assert_eq!(verdict.code, code);
        assert_eq!(verdict.reason, reason);
    }

    const FLASH_SALE: &str = r#"{
        "currency": "CNY",
        "blocked_customers": ["scalper-007"],
        "max_order_total": "20000.00",
        "max_units_per_order": {
            "any_sku": 10,
            "skus": [{ "sku": "PHONE-17-PRO", "max_units": 2 }]
        },
        "max_units_per_customer": { "skus": [{ "sku": "PHONE-17-PRO", "max_units": 4 }] },
        "max_orders_per_customer": 50,
        "max_orders_per_customer_per_minute": 3,
        "max_customers_per_address": 3
    }"#;

    #[test]
    fn the_example_configuration_of_the_crate_documentation_is_valid() {
        let documented = include_str!("lib.rs")
            .split("```json")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the crate documentation has a JSON example")
            .lines()
            .map(|line| line.trim_start().trim_start_matches("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let example = Config::from_json(&documented).expect("the example is valid");
        assert!(example.blocked_customers.contains("bot-4411"));
        assert_eq!(example.max_orders_per_customer_per_minute, Some(3));
    }

    #[test]
    fn a_normal_order_passes_every_rule_and_is_remembered() {
        stand_in::reset();
        let request = phone_order("customer-1", 1).build();

        let verdict = assess(&request, &config(FLASH_SALE));

        assert_eq!(verdict, RiskVerdict::approve(codes::APPROVED, ""));
        let customer = tracking::customer_hash("customer-1");
        let rate = Bucket::load("rate", customer);
        assert_eq!(rate.entry(customer).unwrap().values, vec![MIDNIGHT_MS]);
        let address = tracking::address_fingerprint(&request.cart.shipping_address);
        let seen = Bucket::load("address", address);
        assert_eq!(seen.entry(address).unwrap().values, vec![customer]);
    }

    #[test]
    fn a_store_without_configuration_approves_every_order_and_keeps_nothing() {
        stand_in::reset();
        let request = phone_order("scalper-007", 500).orders_placed(10_000).build();

        let verdict = RiskGuard::assess_with_store_config(&request).unwrap();

        assert!(verdict.is_approved(), "{verdict:?}");
        let customer = tracking::customer_hash("scalper-007");
        assert_eq!(bazaar_sdk::state::get(Bucket::load("rate", customer).state_key()), None);
        let address = tracking::address_fingerprint(&request.cart.shipping_address);
        assert_eq!(bazaar_sdk::state::get(Bucket::load("address", address).state_key()), None);
        assert!(stand_in::log_lines().is_empty());
    }

    #[test]
    fn a_blocked_customer_is_rejected() {
        stand_in::reset();
        let verdict = assess(&phone_order("scalper-007", 1).build(), &config(FLASH_SALE));
        assert_rejected(
            &verdict,
            codes::CUSTOMER_BLOCKED,
            "This account cannot place orders in this store; please contact the store's \
             customer service.",
        );
    }

    #[test]
    fn an_order_above_the_total_limit_is_rejected_and_one_at_the_limit_is_not() {
        stand_in::reset();
        let rules = config(r#"{"currency": "CNY", "max_order_total": "20000.00"}"#);

        let above = assess(&phone_order("customer-1", 1).total("20000.01").build(), &rules);
        assert_rejected(
            &above,
            codes::ORDER_TOTAL_OVER_LIMIT,
            "Orders in this store are limited to 20000.00 CNY each; this order comes to \
             20000.01 CNY.",
        );
        let at = assess(&phone_order("customer-1", 1).total("20000.00").build(), &rules);
        assert!(at.is_approved());
    }

    #[test]
    fn an_order_in_another_currency_than_the_total_limit_is_unsupported() {
        stand_in::reset();
        let rules = config(r#"{"currency": "USD", "max_order_total": "2000.00"}"#);
        let error = RiskGuard::assess(&phone_order("customer-1", 1).build(), &rules).unwrap_err();
        assert!(
            matches!(&error, PluginError::Unsupported(text) if text.contains("USD")),
            "{error:?}"
        );
    }

    #[test]
    fn units_per_order_use_the_sku_limit_or_else_the_limit_for_any_sku() {
        stand_in::reset();
        let rules = config(FLASH_SALE);

        // A total within its limit, so the unit limit is what decides.
        let phones = assess(&phone_order("customer-1", 3).total("100.00").build(), &rules);
        assert_rejected(
            &phones,
            codes::UNITS_PER_ORDER_OVER_LIMIT,
            "At most 2 units of PHONE-17-PRO per order; this order has 3.",
        );
        let cases = RiskRequestBuilder::new(
            CartBuilder::new("CNY").line("PHONE-CASE", 11, "99.00").build(),
        )
        .build();
        assert_rejected(
            &assess(&cases, &rules),
            codes::UNITS_PER_ORDER_OVER_LIMIT,
            "At most 10 units of PHONE-CASE per order; this order has 11.",
        );
        let split = CartBuilder::new("CNY")
            .line("PHONE-17-PRO", 2, "7999.00")
            .line("PHONE-17-PRO", 1, "7999.00")
            .build();
        let split = RiskRequestBuilder::new(split).total("100.00").build();
        let verdict = assess(&split, &rules);
        assert_eq!(verdict.code, codes::UNITS_PER_ORDER_OVER_LIMIT, "lines of one SKU are summed");
        assert!(assess(&phone_order("customer-3", 2).build(), &rules).is_approved());
    }

    #[test]
    fn units_the_customer_already_holds_count_towards_the_per_customer_limit() {
        stand_in::reset();
        let rules = config(FLASH_SALE);

        let over = assess(&phone_order("customer-1", 2).holds("PHONE-17-PRO", 3).build(), &rules);
        assert_rejected(
            &over,
            codes::UNITS_PER_CUSTOMER_OVER_LIMIT,
            "At most 4 units of PHONE-17-PRO per customer; you already have 3 in earlier orders \
             and this order adds 2.",
        );
        let within = assess(&phone_order("customer-1", 1).holds("PHONE-17-PRO", 3).build(), &rules);
        assert!(within.is_approved());
    }

    #[test]
    fn the_per_customer_order_limit_counts_the_orders_already_placed() {
        stand_in::reset();
        let rules = config(r#"{"max_orders_per_customer": 2}"#);

        let third = assess(&phone_order("customer-1", 1).orders_placed(2).build(), &rules);
        assert_rejected(
            &third,
            codes::ORDERS_PER_CUSTOMER_OVER_LIMIT,
            "At most 2 open orders per customer in this store; you already have 2.",
        );
        assert!(
            assess(&phone_order("customer-1", 1).orders_placed(1).build(), &rules).is_approved()
        );
    }

    fn order_at(customer: &str, street: &str, placed_at_ms: u64) -> RiskRequest {
        RiskRequestBuilder::new(
            CartBuilder::new("CNY")
                .customer(customer)
                .street(street)
                .placed_at_ms(placed_at_ms)
                .line("PHONE-17-PRO", 1, "7999.00")
                .build(),
        )
        .build()
    }

    #[test]
    fn a_fourth_order_within_a_minute_is_rejected_and_the_next_minute_is_open_again() {
        stand_in::reset();
        let rules = config(r#"{"max_orders_per_customer_per_minute": 3}"#);
        for second in [0, 20, 40] {
            let order = order_at("customer-1", "Nanjing Rd 1", MIDNIGHT_MS + second * 1000);
            assert!(assess(&order, &rules).is_approved(), "order at +{second} s");
        }

        let fourth = assess(&order_at("customer-1", "Nanjing Rd 1", MIDNIGHT_MS + 59_999), &rules);
        assert_rejected(
            &fourth,
            codes::ORDER_RATE_OVER_LIMIT,
            "At most 3 orders per customer per minute; you placed 3 in the last minute. Please \
             try again shortly.",
        );
        // Another customer is not affected.
        assert!(
            assess(&order_at("customer-2", "Nanjing Rd 2", MIDNIGHT_MS + 59_999), &rules)
                .is_approved()
        );
        // A minute after the first order, it no longer counts.
        let later = assess(&order_at("customer-1", "Nanjing Rd 1", MIDNIGHT_MS + 60_000), &rules);
        assert!(later.is_approved(), "{later:?}");
        let customer = tracking::customer_hash("customer-1");
        let kept = Bucket::load("rate", customer).entry(customer).unwrap().values.clone();
        assert_eq!(kept, vec![MIDNIGHT_MS + 20_000, MIDNIGHT_MS + 40_000, MIDNIGHT_MS + 60_000]);
    }

    #[test]
    fn a_fourth_customer_at_one_address_is_rejected_while_known_customers_may_return() {
        stand_in::reset();
        let rules = config(r#"{"max_customers_per_address": 3}"#);
        for (index, customer) in ["alice", "bob", "carol"].into_iter().enumerate() {
            let order = order_at(customer, "Nanjing Rd 1", MIDNIGHT_MS + index as u64);
            assert!(assess(&order, &rules).is_approved(), "{customer}");
        }

        // The same address written differently is the same address.
        let dave = assess(&order_at("dave", " nanjing RD. 1", MIDNIGHT_MS + 10), &rules);
        assert_rejected(
            &dave,
            codes::CUSTOMERS_PER_ADDRESS_OVER_LIMIT,
            "Orders to one address are limited to 3 customer accounts, and 3 have already used \
             this address.",
        );
        assert!(assess(&order_at("bob", "Nanjing Rd 1", MIDNIGHT_MS + 20), &rules).is_approved());
        assert!(assess(&order_at("dave", "Nanjing Rd 2", MIDNIGHT_MS + 30), &rules).is_approved());
        // A day after the address's last order, it is forgotten.
        let next_day = MIDNIGHT_MS + 20 + ADDRESS_MEMORY_MS;
        assert!(assess(&order_at("dave", "Nanjing Rd 1", next_day), &rules).is_approved());
    }

    #[test]
    fn a_rejected_order_changes_no_state() {
        stand_in::reset();
        let rules =
            config(r#"{"max_orders_per_customer_per_minute": 1, "max_customers_per_address": 1}"#);
        assert!(assess(&order_at("alice", "Nanjing Rd 1", MIDNIGHT_MS), &rules).is_approved());
        let alice = tracking::customer_hash("alice");
        let address = tracking::address_fingerprint(
            &order_at("bob", "Nanjing Rd 1", MIDNIGHT_MS).cart.shipping_address,
        );
        let before = (
            bazaar_sdk::state::get(Bucket::load("rate", alice).state_key()),
            bazaar_sdk::state::get(Bucket::load("address", address).state_key()),
        );

        // Bob passes the rate rule, then the address rule rejects him: his
        // rate entry must not be recorded.
        let bob = assess(&order_at("bob", "Nanjing Rd 1", MIDNIGHT_MS + 1), &rules);
        assert_eq!(bob.code, codes::CUSTOMERS_PER_ADDRESS_OVER_LIMIT);
        let bob_hash = tracking::customer_hash("bob");
        assert_eq!(Bucket::load("rate", bob_hash).entry(bob_hash), None);
        let after = (
            bazaar_sdk::state::get(Bucket::load("rate", alice).state_key()),
            bazaar_sdk::state::get(Bucket::load("address", address).state_key()),
        );
        assert_eq!(before, after);
    }

    #[test]
    fn the_store_configuration_is_read_through_the_config_import() {
        stand_in::reset();
        stand_in::set_config(Some(FLASH_SALE));
        let verdict = RiskGuard::assess_with_store_config(&phone_order("scalper-007", 1).build());
        assert_eq!(verdict.map(|verdict| verdict.code), Ok(codes::CUSTOMER_BLOCKED.to_owned()));

        stand_in::set_config(Some(r#"{"max_customers_per_address": 0}"#));
        let broken = RiskGuard::assess_with_store_config(&phone_order("customer-1", 1).build());
        assert!(matches!(broken, Err(PluginError::InvalidConfig(_))), "{broken:?}");
    }

    #[test]
    fn invalid_configurations_are_refused_with_the_field_named() {
        let cases = [
            (r#"{"max_order_total": "100.00"}"#, "max_order_total: needs `currency`"),
            (
                r#"{"currency": "CNY", "max_order_total": "0"}"#,
                "max_order_total: must be above zero",
            ),
            (r#"{"currency": "CNY", "max_order_total": "1.005"}"#, "max_order_total"),
            (r#"{"currency": "CNY", "max_order_total": 99.5}"#, "max_order_total"),
            (r#"{"currency": "yuan"}"#, "currency:"),
            (
                r#"{"blocked_customers": ["a", "a"]}"#,
                "blocked_customers[1]: customer \"a\" is listed twice",
            ),
            (r#"{"blocked_customers": [""]}"#, "blocked_customers[0]: must not be empty"),
            (
                r#"{"max_units_per_order": {"skus": [{"sku": "A", "max_units": 0}]}}"#,
                "max_units_per_order.skus[0].max_units: must be at least 1",
            ),
            (
                r#"{"max_units_per_customer": {"skus": [
                    {"sku": "A", "max_units": 1}, {"sku": "A", "max_units": 2}
                ]}}"#,
                "max_units_per_customer.skus[1]: SKU \"A\" is listed twice",
            ),
            (r#"{"max_units_per_order": {"any_sku": 0}}"#, "max_units_per_order.any_sku"),
            (r#"{"max_units_per_order": {"any_sku": -1}}"#, "max_units_per_order.any_sku"),
            (r#"{"max_orders_per_customer": 0}"#, "max_orders_per_customer: must be at least 1"),
            (
                r#"{"max_orders_per_customer_per_minute": 61}"#,
                "max_orders_per_customer_per_minute: 61 is above the largest accepted, 60",
            ),
            (
                r#"{"max_customers_per_address": 101}"#,
                "max_customers_per_address: 101 is above the largest accepted, 100",
            ),
            (r#"{"max_units_per_sku": 3}"#, "unknown field `max_units_per_sku`"),
        ];
        for (json, expected) in cases {
            let message = config_error(json);
            assert!(message.contains(expected), "{json}: {message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn oversized_lists_and_identifiers_are_refused() {
        let blocked = vec!["\"x\""; BLOCKED_CUSTOMERS_MAX + 1].join(",");
        let message = config_error(&format!(r#"{{"blocked_customers": [{blocked}]}}"#));
        assert!(message.contains("at most 10000"), "{message}");
        let long_sku = "S".repeat(ID_BYTES_MAX + 1);
        let message = config_error(&format!(
            r#"{{"max_units_per_order": {{"skus": [{{"sku": "{long_sku}", "max_units": 1}}]}}}}"#
        ));
        assert!(message.contains("longer than 64 bytes"), "{message}");
    }
}
