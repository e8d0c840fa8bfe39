//! Live Double-11 figures from a store's events: GMV and orders per second
//! and per minute, the best-selling SKUs, sell-through of the flash-sale
//! SKUs, and the spend of each promotion, answered as JSON to the live
//! dashboard.
//!
//! # Configuration
//!
//! ```json
//! { "flash_skus": ["D11-PHONE", "D11-TV"] }
//! ```
//!
//! `flash_skus` lists the SKUs whose sell-through is followed: at most
//! [`FLASH_SKUS_MAX`](figures::FLASH_SKUS_MAX), each 1 to
//! [`ID_BYTES_MAX`](figures::ID_BYTES_MAX) bytes, none twice. A store that
//! gives no configuration follows no flash-sale SKU; every other figure is
//! kept regardless. The figures of a SKU taken off the list are dropped by
//! the next batch that touches a flash-sale SKU.
//!
//! # What is counted
//!
//! - GMV: the totals (after discounts, with shipping) of placed orders,
//!   less the totals of cancelled orders. A cancellation counts in the
//!   time buckets of the cancellation, not of the order.
//! - Orders: placed, cancelled, paid and fulfilled, each counted once.
//! - Top SKUs: units and revenue (quantity times catalogue unit price,
//!   before discounts) of placed orders; cancellations are not taken back,
//!   since a cancellation event carries no lines.
//! - Sell-through of each flash-sale SKU: attempts (orders placed with it,
//!   plus refused checkout attempts that asked for it), successes (orders
//!   and units placed), refusals by reason, and the units available in
//!   each warehouse from its latest stock change.
//! - Discount spend per promotion rule (pricing plugin id and rule code):
//!   uses and minor units taken off.
//!
//! Every amount must be in the store's currency, which the first amount
//! sets; an amount in another currency fails the batch with `unsupported`
//! and changes nothing. Sums saturate rather than wrap.
//!
//! # Queries
//!
//! Every answer is a JSON object; amounts are integer minor units of
//! `currency` (`null` before the first order); ratios are integer basis
//! points (10,000 = 100%). Every query but `top-skus` takes no arguments
//! (`{}`); unknown arguments and unknown names are `unsupported` errors.
//!
//! - `headline`: `currency`, `gmv_minor`, `orders` (placed, not
//!   cancelled), `orders_placed`, `orders_cancelled`, `orders_paid`,
//!   `orders_fulfilled`, `units`, `average_order_value_minor` (GMV over
//!   orders, rounded toward zero), `orders_per_second` (orders placed in
//!   the [`RECENT_SECONDS`](queries::RECENT_SECONDS) complete seconds before
//!   the latest event's second, divided by that many, rounded down),
//!   `recent_orders`, `recent_seconds`, `refused_attempts`, `events`,
//!   `last_sequence`, `as_of_ms` (the latest event time).
//! - `gmv-series`: `currency`, `seconds` and `minutes`: one point per
//!   bucket, oldest first, up to the latest event's bucket (the last
//!   [`SECONDS_KEPT`](figures::SECONDS_KEPT) seconds and
//!   [`MINUTES_KEPT`](figures::MINUTES_KEPT) minutes), each `{start_ms,
//!   gmv_minor, orders, cancelled_orders, cancelled_minor}`.
//! - `top-skus`, arguments `{"by": "units" | "revenue", "limit": n}` (both
//!   optional: units, 10; `limit` 1 to
//!   [`TOP_SKUS_LIMIT_MAX`](queries::TOP_SKUS_LIMIT_MAX)): `currency`,
//!   `by`, `skus` (best first, ties to the SKU first in byte order), each
//!   `{rank, sku, units, revenue_minor}`, then `tracked_skus`,
//!   `untracked_units`, `untracked_revenue_minor`.
//! - `sell-through`: `skus`, one per configured flash-sale SKU in the
//!   configuration's order, each `{sku, attempts, orders, units,
//!   refused_attempts, refused_units, refused: {sold-out, purchase-limit,
//!   risk, other}, available, warehouses: [{warehouse, available}],
//!   success_rate_bp, sell_through_bp}`, where `success_rate_bp` is orders
//!   over attempts and `sell_through_bp` is units over units plus
//!   available.
//! - `discounts`: `currency`, `total_minor`, `rules` (largest spend first,
//!   each `{plugin_id, code, uses, amount_minor}`) and `other` (`{uses,
//!   amount_minor}` of rules beyond the bound).
//!
//! # State layout
//!
//! The figures live in the host's `state`, so a node that rebuilds state
//! from its journal answers exactly as before; nothing is kept in the
//! instance's memory between calls. They are split into parts, one state
//! key each, so a batch rewrites only the parts it changed:
//!
//! | key | what | largest value |
//! |---|---|---|
//! | `totals` | last sequence number, latest event time, currency, store-wide counters | ~170 B |
//! | `seconds` | per-second buckets, a ring of 120 | 4.8 KB |
//! | `minutes` | per-minute buckets, a ring of 120 | 4.8 KB |
//! | `skus/00` .. `skus/31` | units and revenue per SKU, the SKU's shard chosen by FNV-1a of its name | 21.8 KB each |
//! | `flash` | per flash-sale SKU: orders, units, refusals by reason, available per warehouse | 43 KB |
//! | `discounts` | uses and amount per (plugin id, code), plus "other" | 38 KB |
//!
//! That is 37 keys, below the host's 10,000 per plugin and store and its
//! 64 writes per call; every worst case is checked at compile time
//! against the host's 64 KiB per value (see [`figures`]). Each value is a
//! version byte and LEB128 integers (zigzag for signed ones) and
//! length-prefixed strings, written in sorted order so the same events
//! always give the same bytes (see [`codec`]).
//!
//! Memory and state are bounded: the SKU table keeps at most
//! [`SKUS_PER_SHARD_MAX`](figures::SKUS_PER_SHARD_MAX) SKUs per shard,
//! [`SKUS_TRACKED_MAX`](figures::SKUS_TRACKED_MAX) in all, each from its
//! first order while its shard has room, with exact counts; the units and
//! revenue of SKUs that find no room are summed as "untracked". Promotion
//! rules beyond [`DISCOUNT_RULES_MAX`](figures::DISCOUNT_RULES_MAX) are
//! summed as "other"; warehouses beyond
//! [`WAREHOUSES_PER_FLASH_SKU_MAX`](figures::WAREHOUSES_PER_FLASH_SKU_MAX)
//! per flash-sale SKU are left out of its stock; ids longer than the
//! kernel allows are treated as having no room.
//!
//! A batch reads `totals`, then each other part the first time one of its
//! events needs it, folds every event in memory, and writes the changed
//! parts once at the end: the cost of state is per batch, not per event.
//! An event whose sequence number is not above the last one folded in is
//! skipped, so a batch offered again counts once. A value that cannot be
//! read is logged at warn level and started afresh, rather than stopping
//! every later batch of the store.

pub mod codec;
pub mod figures;
pub mod queries;

mod fold;

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use bazaar_sdk::{AnalyticsPlugin, Event, PluginConfig, PluginError};
use serde::Deserialize;

use crate::figures::{FLASH_SKUS_MAX, Fnv1a, ID_BYTES_MAX};

/// The plugin: implements [`AnalyticsPlugin`] with [`Config`].
pub struct AnalyticsLive;

bazaar_sdk::export_analytics!(AnalyticsLive);

impl AnalyticsPlugin for AnalyticsLive {
    type Config = Config;

    fn ingest(events: &[Event], config: &Config) -> Result<(), PluginError> {
        let mut batch = fold::Batch::begin(config);
        for event in events {
            batch.fold(event)?;
        }
        batch.finish()
    }

    fn query(name: &str, arguments_json: &str, config: &Config) -> Result<String, PluginError> {
        queries::answer(name, arguments_json, config)
    }
}

/// A store's validated configuration. Build it from JSON with
/// [`Config::from_json`] (or through the SDK's configuration loading); the
/// default follows no flash-sale SKU.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(try_from = "ConfigJson")]
pub struct Config {
    /// The flash-sale SKUs, in the order `sell-through` lists them.
    flash_skus: Vec<String>,
    /// The same SKUs, for the check made on every order line.
    flash_set: HashSet<String, BuildHasherDefault<Fnv1a>>,
}

impl Config {
    /// Parses and validates a configuration; errors are `invalid-config`
    /// and say which field is wrong.
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        bazaar_sdk::config::parse(json)
    }

    /// The flash-sale SKUs, in the configuration's order.
    pub fn flash_skus(&self) -> &[String] {
        &self.flash_skus
    }

    /// Whether `sku` is a flash-sale SKU.
    pub fn is_flash(&self, sku: &str) -> bool {
        !self.flash_set.is_empty() && self.flash_set.contains(sku)
    }
}

/// A store without configuration follows no flash-sale SKU; every other
/// figure needs no configuration.
impl PluginConfig for Config {
    fn when_missing() -> Result<Self, PluginError> {
        Ok(Self::default())
    }
}

/// The configuration as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigJson {
    #[serde(default)]
    flash_skus: Vec<String>,
}

impl TryFrom<ConfigJson> for Config {
    type Error = String;

    fn try_from(json: ConfigJson) -> Result<Self, String> {
        if json.flash_skus.len() > FLASH_SKUS_MAX {
            return Err(format!(
                "flash_skus lists {} SKUs; at most {FLASH_SKUS_MAX} are followed",
                json.flash_skus.len()
            ));
        }
        let mut flash_set =
            HashSet::with_capacity_and_hasher(json.flash_skus.len(), Default::default());
        for sku in &json.flash_skus {
            if sku.is_empty() || sku.len() > ID_BYTES_MAX {
                return Err(format!("flash_skus: {sku:?} is not 1 to {ID_BYTES_MAX} bytes long"));
            }
            if !flash_set.insert(sku.clone()) {
                return Err(format!("flash_skus lists {sku:?} twice"));
            }
        }
        Ok(Self { flash_skus: json.flash_skus, flash_set })
    }
}

#[cfg(test)]
mod tests;
