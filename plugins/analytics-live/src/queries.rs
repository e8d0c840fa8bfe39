//! The named queries: each reads the parts it needs from state and writes
//! its answer as JSON. The shapes are documented in the crate
//! documentation; every amount is integer minor units of `currency`.

use bazaar_sdk::{PluginError, RefusalReason, query};
use serde::{Deserialize, Serialize};

use crate::Config;
use crate::figures::{
    self, Bucket, DISCOUNTS_KEY, Discounts, FLASH_KEY, Flash, MINUTE_MS, MINUTES_KEY, Minutes,
    SECOND_MS, SECONDS_KEY, SKU_SHARDS, Seconds, SkuShard, SkuTotals, Spend, TOTALS_KEY, Totals,
};

/// The headline figures.
pub const HEADLINE: &str = "headline";
/// GMV and orders per second and per minute.
pub const GMV_SERIES: &str = "gmv-series";
/// The best-selling SKUs.
pub const TOP_SKUS: &str = "top-skus";
/// Attempts, successes and stock of each flash-sale SKU.
pub const SELL_THROUGH: &str = "sell-through";
/// Discount spend per promotion rule.
pub const DISCOUNTS: &str = "discounts";

/// Every query the plugin answers.
pub const NAMES: [&str; 5] = [HEADLINE, GMV_SERIES, TOP_SKUS, SELL_THROUGH, DISCOUNTS];

/// Complete seconds the headline's order rate is averaged over: long
/// enough to smooth the jitter of batching, short enough to follow a
/// flash sale's opening second by second.
pub const RECENT_SECONDS: u64 = 5;

/// SKUs `top-skus` lists when not told.
pub const TOP_SKUS_LIMIT_DEFAULT: u32 = 10;

/// The most SKUs `top-skus` lists: a dashboard's table, and an answer far
/// below the host's size limit.
pub const TOP_SKUS_LIMIT_MAX: u32 = 100;

/// Basis points in a whole (10,000 basis points = 100%): ratios are
/// integers, never floats.
pub const BASIS_POINTS: u64 = 10_000;

/// Answers query `name`.
pub fn answer(name: &str, arguments_json: &str, config: &Config) -> Result<String, PluginError> {
    match name {
        HEADLINE => {
            no_arguments(arguments_json)?;
            query::answer(&headline())
        }
        GMV_SERIES => {
            no_arguments(arguments_json)?;
            query::answer(&gmv_series())
        }
        TOP_SKUS => query::answer(&top_skus(query::arguments(arguments_json)?)?),
        SELL_THROUGH => {
            no_arguments(arguments_json)?;
            query::answer(&sell_through(config))
        }
        DISCOUNTS => {
            no_arguments(arguments_json)?;
            query::answer(&discounts())
        }
        _ => Err(query::unknown(name, &NAMES)),
    }
}

/// The arguments of a query that takes none: `{}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArguments {}

fn no_arguments(arguments_json: &str) -> Result<(), PluginError> {
    query::arguments::<NoArguments>(arguments_json).map(drop)
}

/// The answer to `headline`.
#[derive(Debug, Serialize)]
pub struct Headline {
    /// The store's currency; `null` before the first order.
    pub currency: Option<String>,
    /// Placed orders' totals less cancelled orders' totals.
    pub gmv_minor: i64,
    /// Orders placed and not cancelled.
    pub orders: u64,
    /// Orders placed.
    pub orders_placed: u64,
    /// Orders cancelled.
    pub orders_cancelled: u64,
    /// Orders paid.
    pub orders_paid: u64,
    /// Orders fulfilled.
    pub orders_fulfilled: u64,
    /// Units ordered.
    pub units: u64,
    /// `gmv_minor / orders`, rounded toward zero; 0 without orders.
    pub average_order_value_minor: i64,
    /// `recent_orders / recent_seconds`, rounded down.
    pub orders_per_second: u64,
    /// Orders placed in the [`RECENT_SECONDS`] complete seconds before the
    /// second of the latest event.
    pub recent_orders: u64,
    /// The seconds `recent_orders` counts.
    pub recent_seconds: u64,
    /// Checkout attempts refused.
    pub refused_attempts: u64,
    /// Events folded in.
    pub events: u64,
    /// The sequence number of the last event folded in.
    pub last_sequence: Option<u64>,
    /// The latest event time, milliseconds since the Unix epoch: the
    /// figures are as of then.
    pub as_of_ms: Option<u64>,
}

fn headline() -> Headline {
    let totals: Totals = figures::load(TOTALS_KEY);
    let seconds: Seconds = figures::load(SECONDS_KEY);
    let recent_orders = seconds.latest().map_or(0, |latest| {
        (1..=RECENT_SECONDS)
            .filter_map(|age| latest.checked_sub(age))
            .filter_map(|index| seconds.bucket(index))
            .fold(0_u64, |sum, bucket| sum.saturating_add(bucket.orders))
    });
    let orders = totals.orders();
    let average_order_value_minor = match i64::try_from(orders) {
        Ok(orders) if orders > 0 => totals.gmv_minor() / orders,
        _ => 0,
    };
    Headline {
        currency: totals.currency.clone(),
        gmv_minor: totals.gmv_minor(),
        orders,
        orders_placed: totals.orders_placed,
        orders_cancelled: totals.orders_cancelled,
        orders_paid: totals.orders_paid,
        orders_fulfilled: totals.orders_fulfilled,
        units: totals.units,
        average_order_value_minor,
        orders_per_second: recent_orders / RECENT_SECONDS,
        recent_orders,
        recent_seconds: RECENT_SECONDS,
        refused_attempts: totals.refused_attempts,
        events: totals.events,
        last_sequence: totals.last_sequence,
        as_of_ms: totals.latest_ms,
    }
}

/// One point of a series.
#[derive(Debug, Serialize)]
pub struct Point {
    /// When the bucket starts, milliseconds since the Unix epoch.
    pub start_ms: u64,
    /// Totals of orders placed in it less totals of orders cancelled in it.
    pub gmv_minor: i64,
    /// Orders placed in it.
    pub orders: u64,
    /// Orders cancelled in it (whenever they were placed).
    pub cancelled_orders: u64,
    /// Their totals.
    pub cancelled_minor: i64,
}

/// The answer to `gmv-series`.
#[derive(Debug, Serialize)]
pub struct GmvSeries {
    /// The store's currency; `null` before the first order.
    pub currency: Option<String>,
    /// One point a second, oldest first, up to the latest event's second.
    pub seconds: Vec<Point>,
    /// One point a minute, oldest first, up to the latest event's minute.
    pub minutes: Vec<Point>,
}

fn points(buckets: impl Iterator<Item = (u64, Bucket)>, width_ms: u64) -> Vec<Point> {
    buckets
        .map(|(index, bucket)| Point {
            start_ms: index.saturating_mul(width_ms),
            gmv_minor: bucket.placed_minor.saturating_sub(bucket.cancelled_minor),
            orders: bucket.orders,
            cancelled_orders: bucket.cancelled_orders,
            cancelled_minor: bucket.cancelled_minor,
        })
        .collect()
}

fn gmv_series() -> GmvSeries {
    let totals: Totals = figures::load(TOTALS_KEY);
    let seconds: Seconds = figures::load(SECONDS_KEY);
    let minutes: Minutes = figures::load(MINUTES_KEY);
    GmvSeries {
        currency: totals.currency,
        seconds: points(seconds.buckets(), SECOND_MS),
        minutes: points(minutes.buckets(), MINUTE_MS),
    }
}

/// What `top-skus` ranks by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RankBy {
    /// Units ordered.
    #[default]
    Units,
    /// Quantity times catalogue unit price.
    Revenue,
}

/// The arguments of `top-skus`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopSkusArguments {
    /// What to rank by; units when not given.
    #[serde(default)]
    pub by: RankBy,
    /// How many SKUs to list, 1 to [`TOP_SKUS_LIMIT_MAX`].
    #[serde(default = "top_skus_limit_default")]
    pub limit: u32,
}

fn top_skus_limit_default() -> u32 {
    TOP_SKUS_LIMIT_DEFAULT
}

/// One SKU of `top-skus`.
#[derive(Debug, Serialize)]
pub struct RankedSku {
    /// Its rank, from 1.
    pub rank: u32,
    /// The SKU.
    pub sku: String,
    /// Units ordered.
    pub units: u64,
    /// Quantity times catalogue unit price.
    pub revenue_minor: i64,
}

/// The answer to `top-skus`.
#[derive(Debug, Serialize)]
pub struct TopSkus {
    /// The store's currency; `null` before the first order.
    pub currency: Option<String>,
    /// What the list is ranked by.
    pub by: RankBy,
    /// The best SKUs, best first; ties go to the SKU first in byte order.
    pub skus: Vec<RankedSku>,
    /// SKUs counted by name.
    pub tracked_skus: u64,
    /// Units of SKUs the table had no room for.
    pub untracked_units: u64,
    /// Their revenue.
    pub untracked_revenue_minor: i64,
}

fn top_skus(arguments: TopSkusArguments) -> Result<TopSkus, PluginError> {
    if !(1..=TOP_SKUS_LIMIT_MAX).contains(&arguments.limit) {
        return Err(PluginError::unsupported(format!(
            "query arguments at `limit`: {} is not from 1 to {TOP_SKUS_LIMIT_MAX}",
            arguments.limit
        )));
    }
    let totals: Totals = figures::load(TOTALS_KEY);
    let shards: Vec<SkuShard> =
        (0..SKU_SHARDS).map(|shard| figures::load(&figures::shard_key(shard))).collect();
    let mut skus: Vec<(&String, &SkuTotals)> =
        shards.iter().flat_map(|shard| shard.skus.iter()).collect();
    let tracked_skus = skus.len() as u64;
    let better = |left: &(&String, &SkuTotals), right: &(&String, &SkuTotals)| {
        let by_figure = match arguments.by {
            RankBy::Units => right.1.units.cmp(&left.1.units),
            RankBy::Revenue => right.1.revenue_minor.cmp(&left.1.revenue_minor),
        };
        by_figure.then_with(|| left.0.cmp(right.0))
    };
    // `limit` is at most 100, so the conversion is exact.
    let limit = arguments.limit as usize;
    if skus.len() > limit {
        skus.select_nth_unstable_by(limit - 1, better);
        skus.truncate(limit);
    }
    skus.sort_unstable_by(better);
    Ok(TopSkus {
        currency: totals.currency,
        by: arguments.by,
        skus: skus
            .into_iter()
            .zip(1..)
            .map(|((sku, figures), rank)| RankedSku {
                rank,
                sku: sku.clone(),
                units: figures.units,
                revenue_minor: figures.revenue_minor,
            })
            .collect(),
        tracked_skus,
        untracked_units: totals.untracked_units,
        untracked_revenue_minor: totals.untracked_revenue_minor,
    })
}

/// Refused attempts of one SKU by reason.
#[derive(Debug, Serialize)]
pub struct RefusedByReason {
    /// Not enough stock.
    #[serde(rename = "sold-out")]
    pub sold_out: u64,
    /// Over the customer's purchase limit.
    #[serde(rename = "purchase-limit")]
    pub purchase_limit: u64,
    /// A risk plugin rejected or could not check the order.
    pub risk: u64,
    /// Anything else.
    pub other: u64,
}

/// The stock of a flash-sale SKU in one warehouse.
#[derive(Debug, Serialize)]
pub struct WarehouseStock {
    /// The warehouse.
    pub warehouse: String,
    /// Units available, from its latest stock change.
    pub available: u64,
}

/// One flash-sale SKU of `sell-through`.
#[derive(Debug, Serialize)]
pub struct SellThrough {
    /// The SKU.
    pub sku: String,
    /// Checkout attempts that included it: `orders + refused_attempts`.
    pub attempts: u64,
    /// Orders placed with it (the successful attempts).
    pub orders: u64,
    /// Units of it in those orders.
    pub units: u64,
    /// Refused attempts.
    pub refused_attempts: u64,
    /// Units the refused attempts asked for.
    pub refused_units: u64,
    /// Refused attempts by reason.
    pub refused: RefusedByReason,
    /// Units available over its warehouses, from each one's latest stock
    /// change.
    pub available: u64,
    /// Units available per warehouse.
    pub warehouses: Vec<WarehouseStock>,
    /// `orders / attempts` in basis points (10,000 = 100%), rounded down;
    /// 0 without attempts.
    pub success_rate_bp: u64,
    /// `units / (units + available)` in basis points, rounded down: how
    /// much of the stock on offer has sold; 0 when both are 0.
    pub sell_through_bp: u64,
}

/// The answer to `sell-through`.
#[derive(Debug, Serialize)]
pub struct SellThroughAnswer {
    /// Each flash-sale SKU of the configuration, in its order.
    pub skus: Vec<SellThrough>,
}

/// `part / whole` in basis points, rounded down; 0 when `whole` is 0.
fn basis_points(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    let ratio = u128::from(part) * u128::from(BASIS_POINTS) / u128::from(whole);
    u64::try_from(ratio).unwrap_or(u64::MAX)
}

fn sell_through(config: &Config) -> SellThroughAnswer {
    let flash: Flash = figures::load(FLASH_KEY);
    let skus = config
        .flash_skus()
        .iter()
        .map(|sku| {
            let figures = flash.skus.get(sku).cloned().unwrap_or_default();
            let refused_attempts = figures.refused_attempts();
            let attempts = figures.orders.saturating_add(refused_attempts);
            let available = figures.available_units();
            let refused_of = |reason: RefusalReason| {
                RefusalReason::ALL
                    .iter()
                    .position(|known| *known == reason)
                    .map_or(0, |slot| figures.refused[slot])
            };
            SellThrough {
                sku: sku.clone(),
                attempts,
                orders: figures.orders,
                units: figures.units,
                refused_attempts,
                refused_units: figures.refused_units,
                refused: RefusedByReason {
                    sold_out: refused_of(RefusalReason::SoldOut),
                    purchase_limit: refused_of(RefusalReason::PurchaseLimit),
                    risk: refused_of(RefusalReason::Risk),
                    other: refused_of(RefusalReason::Other),
                },
                available,
                warehouses: figures
                    .available
                    .iter()
                    .map(|(warehouse, available)| WarehouseStock {
                        warehouse: warehouse.clone(),
                        available: *available,
                    })
                    .collect(),
                success_rate_bp: basis_points(figures.orders, attempts),
                sell_through_bp: basis_points(
                    figures.units,
                    figures.units.saturating_add(available),
                ),
            }
        })
        .collect();
    SellThroughAnswer { skus }
}

/// One promotion rule of `discounts`.
#[derive(Debug, Serialize)]
pub struct RuleSpend {
    /// The pricing plugin that gave the discounts.
    pub plugin_id: String,
    /// The rule's code.
    pub code: String,
    /// Orders it applied to.
    pub uses: u64,
    /// Minor units it took off.
    pub amount_minor: i64,
}

/// Rules counted together.
#[derive(Debug, Serialize)]
pub struct OtherSpend {
    /// Orders they applied to.
    pub uses: u64,
    /// Minor units they took off.
    pub amount_minor: i64,
}

/// The answer to `discounts`.
#[derive(Debug, Serialize)]
pub struct DiscountsAnswer {
    /// The store's currency; `null` before the first order.
    pub currency: Option<String>,
    /// Minor units taken off over every rule.
    pub total_minor: i64,
    /// Each rule kept by name, largest spend first; ties by plugin id,
    /// then code.
    pub rules: Vec<RuleSpend>,
    /// Rules beyond the plugin's bound, together.
    pub other: OtherSpend,
}

fn discounts() -> DiscountsAnswer {
    let totals: Totals = figures::load(TOTALS_KEY);
    let discounts: Discounts = figures::load(DISCOUNTS_KEY);
    let mut rules: Vec<(&str, &str, Spend)> = discounts.each().collect();
    rules.sort_by(|left, right| {
        right
            .2
            .amount_minor
            .cmp(&left.2.amount_minor)
            .then_with(|| (left.0, left.1).cmp(&(right.0, right.1)))
    });
    let total_minor = rules
        .iter()
        .fold(discounts.other.amount_minor, |sum, rule| sum.saturating_add(rule.2.amount_minor));
    DiscountsAnswer {
        currency: totals.currency,
        total_minor,
        rules: rules
            .into_iter()
            .map(|(plugin_id, code, spend)| RuleSpend {
                plugin_id: plugin_id.to_owned(),
                code: code.to_owned(),
                uses: spend.uses,
                amount_minor: spend.amount_minor,
            })
            .collect(),
        other: OtherSpend {
            uses: discounts.other.uses,
            amount_minor: discounts.other.amount_minor,
        },
    }
}
