//! The figures the plugin keeps, each part under its own state key, and
//! how each part is encoded (see [`crate::codec`] for the primitives and
//! the crate documentation for the layout as a whole).
//!
//! Every part has a fixed worst-case size, checked at compile time against
//! the host's limit on one state value, so no input can make a write fail
//! for size: what does not fit a part's bound is counted in that part's
//! "other" figures instead of growing it.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use bazaar_sdk::{PluginError, RefusalReason, log, state};

use crate::codec::{DecodeError, Decoder, Encoder, VARINT_BYTES_MAX};

/// The host's largest state value (the kernel's `STATE_VALUE_LEN_MAX`):
/// every part is sized to fit it.
pub const STATE_VALUE_BYTES_MAX: usize = 64 * 1024;

/// The most state keys the host lets a call write (the kernel's
/// `STATE_WRITES_PER_ORDER_MAX`): a batch writes at most every key this
/// plugin has, [`STATE_KEYS_USED`].
pub const STATE_WRITES_PER_CALL_MAX: usize = 64;

/// The longest SKU, warehouse id, plugin id or rule code kept by name, in
/// bytes: the kernel accepts no longer ids, and the worst-case sizes below
/// count on it. A longer one is counted in the "other" figures.
pub const ID_BYTES_MAX: usize = 64;

/// Seconds in the per-second series: two minutes, enough for a live chart
/// of the last moments of a flash sale at one point a second.
pub const SECONDS_KEPT: usize = 120;

/// Minutes in the per-minute series: two hours, the build-up and the peak
/// of a Double-11 midnight.
pub const MINUTES_KEPT: usize = 120;

/// State keys the SKU table is spread over. Each batch rewrites only the
/// shards its SKUs fall in, so a small batch writes a few kilobytes rather
/// than the whole table.
pub const SKU_SHARDS: usize = 32;

/// SKUs one shard keeps by name. 256 entries of at most 85 bytes fit a
/// state value three times over (see [`SKU_SHARD_BYTES_MAX`]).
pub const SKUS_PER_SHARD_MAX: usize = 256;

/// SKUs the top-SKU figures can count exactly: 8,192 covers a flash sale's
/// catalogue many times over while a query sorts at most that many
/// entries. A SKU is kept from its first order while its shard has room;
/// a SKU whose shard is full is counted in the untracked totals.
pub const SKUS_TRACKED_MAX: usize = SKU_SHARDS * SKUS_PER_SHARD_MAX;

/// Flash-sale SKUs one store may list: a Double-11 flash sale features a
/// handful to a few dozen SKUs, and all of them share one state value.
pub const FLASH_SKUS_MAX: usize = 32;

/// Warehouses whose stock is kept per flash-sale SKU: a SKU is stocked in
/// a few regional warehouses; further ones are left out of its stock.
pub const WAREHOUSES_PER_FLASH_SKU_MAX: usize = 16;

/// Promotion rules (plugin id and code) whose spend is kept by name: a
/// store runs a few dozen promotions at most; further rules are counted
/// together as "other".
pub const DISCOUNT_RULES_MAX: usize = 256;

/// The key of the store-wide totals.
pub const TOTALS_KEY: &str = "totals";
/// The key of the per-second series.
pub const SECONDS_KEY: &str = "seconds";
/// The key of the per-minute series.
pub const MINUTES_KEY: &str = "minutes";
/// The key of the flash-sale figures.
pub const FLASH_KEY: &str = "flash";
/// The key of the discount spend.
pub const DISCOUNTS_KEY: &str = "discounts";
/// The keys of the SKU table are this prefix and the shard's two-digit
/// number, `skus/00` to `skus/31`.
pub const SKU_SHARD_PREFIX: &str = "skus/";

/// Every state key the plugin may hold.
pub const STATE_KEYS_USED: usize = 5 + SKU_SHARDS;

/// Bytes of a string kept by name, at its longest.
const ID_ENTRY_BYTES_MAX: usize = 1 + ID_BYTES_MAX;
/// Worst-case bytes of one SKU shard: version, count, entries of a name,
/// units and revenue.
pub const SKU_SHARD_BYTES_MAX: usize =
    1 + VARINT_BYTES_MAX + SKUS_PER_SHARD_MAX * (ID_ENTRY_BYTES_MAX + 2 * VARINT_BYTES_MAX);
/// Worst-case bytes of the flash-sale figures: per SKU its name, seven
/// counters, a warehouse count and the warehouses' names and stock.
pub const FLASH_BYTES_MAX: usize = 1
    + VARINT_BYTES_MAX
    + FLASH_SKUS_MAX
        * (ID_ENTRY_BYTES_MAX
            + 8 * VARINT_BYTES_MAX
            + WAREHOUSES_PER_FLASH_SKU_MAX * (ID_ENTRY_BYTES_MAX + VARINT_BYTES_MAX));
/// Worst-case bytes of the discount spend: per rule two names and two
/// counters, plus the "other" counters.
pub const DISCOUNTS_BYTES_MAX: usize =
    1 + 3 * VARINT_BYTES_MAX + DISCOUNT_RULES_MAX * (2 * ID_ENTRY_BYTES_MAX + 2 * VARINT_BYTES_MAX);
/// Worst-case bytes of a series: version, latest bucket, four counters a
/// bucket.
pub const SERIES_BYTES_MAX: usize = 1
    + VARINT_BYTES_MAX
    + if SECONDS_KEPT > MINUTES_KEPT { SECONDS_KEPT } else { MINUTES_KEPT } * 4 * VARINT_BYTES_MAX;

const _: () = assert!(SKU_SHARD_BYTES_MAX <= STATE_VALUE_BYTES_MAX);
const _: () = assert!(FLASH_BYTES_MAX <= STATE_VALUE_BYTES_MAX);
const _: () = assert!(DISCOUNTS_BYTES_MAX <= STATE_VALUE_BYTES_MAX);
const _: () = assert!(SERIES_BYTES_MAX <= STATE_VALUE_BYTES_MAX);
const _: () = assert!(STATE_KEYS_USED <= STATE_WRITES_PER_CALL_MAX);

/// One part of the figures, stored under one key.
pub trait Part: Default + Sized {
    /// Writes the part (after the version byte).
    fn encode(&self, encoder: &mut Encoder);
    /// Reads the part (after the version byte).
    fn decode(decoder: &mut Decoder<'_>) -> Result<Self, DecodeError>;
    /// Bytes to reserve for its encoding.
    fn size_hint_bytes(&self) -> usize;
}

/// The part stored under `key`, or an empty one if there is none. A value
/// that cannot be read is logged and started afresh: stopping every later
/// batch of the store on a damaged value would turn it into an outage of
/// the dashboard, and the other parts stay right.
pub fn load<P: Part>(key: &str) -> P {
    let Some(bytes) = state::get(key) else {
        return P::default();
    };
    let decoded = Decoder::new(&bytes).and_then(|mut decoder| {
        let part = P::decode(&mut decoder)?;
        decoder.finish()?;
        Ok(part)
    });
    decoded.unwrap_or_else(|error| {
        log::warn(&format!("state value {key:?} is damaged ({error}); starting it afresh"));
        P::default()
    })
}

/// Stores `part` under `key`.
pub fn save<P: Part>(key: &str, part: &P) -> Result<(), PluginError> {
    let mut encoder = Encoder::with_capacity(part.size_hint_bytes());
    part.encode(&mut encoder);
    state::set(key, &encoder.finish())?;
    Ok(())
}

/// An `Option<u64>` as one integer: 0 for none, the value plus one
/// otherwise (a value of `u64::MAX` is kept as `u64::MAX - 1`, which no
/// sequence number or timestamp reaches).
fn encode_optional(encoder: &mut Encoder, value: Option<u64>) {
    encoder.u64(value.map_or(0, |value| value.saturating_add(1)));
}

fn decode_optional(decoder: &mut Decoder<'_>) -> Result<Option<u64>, DecodeError> {
    Ok(decoder.u64()?.checked_sub(1))
}

/// The store-wide totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// The sequence number of the last event folded in.
    pub last_sequence: Option<u64>,
    /// The latest event time seen, milliseconds since the Unix epoch.
    pub latest_ms: Option<u64>,
    /// The store's currency, from its first amount.
    pub currency: Option<String>,
    /// Events folded in.
    pub events: u64,
    /// Orders placed.
    pub orders_placed: u64,
    /// Sum of the totals of placed orders, minor units.
    pub placed_minor: i64,
    /// Orders cancelled.
    pub orders_cancelled: u64,
    /// Sum of the totals of cancelled orders, minor units.
    pub cancelled_minor: i64,
    /// Orders paid.
    pub orders_paid: u64,
    /// Orders fulfilled.
    pub orders_fulfilled: u64,
    /// Units ordered over every SKU.
    pub units: u64,
    /// Refused checkout attempts over every SKU.
    pub refused_attempts: u64,
    /// Units of SKUs the SKU table had no room for.
    pub untracked_units: u64,
    /// Revenue (quantity times catalogue price) of those SKUs, minor units.
    pub untracked_revenue_minor: i64,
}

/// Longest currency code kept: ISO-4217 codes have three letters.
const CURRENCY_BYTES_MAX: usize = 8;

impl Part for Totals {
    fn encode(&self, encoder: &mut Encoder) {
        encode_optional(encoder, self.last_sequence);
        encode_optional(encoder, self.latest_ms);
        encoder.str(self.currency.as_deref().unwrap_or(""));
        encoder.u64(self.events);
        encoder.u64(self.orders_placed);
        encoder.i64(self.placed_minor);
        encoder.u64(self.orders_cancelled);
        encoder.i64(self.cancelled_minor);
        encoder.u64(self.orders_paid);
        encoder.u64(self.orders_fulfilled);
        encoder.u64(self.units);
        encoder.u64(self.refused_attempts);
        encoder.u64(self.untracked_units);
        encoder.i64(self.untracked_revenue_minor);
    }

    fn decode(decoder: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            last_sequence: decode_optional(decoder)?,
            latest_ms: decode_optional(decoder)?,
            currency: Some(decoder.str(CURRENCY_BYTES_MAX)?)
                .filter(|currency| !currency.is_empty())
                .map(str::to_owned),
            events: decoder.u64()?,
            orders_placed: decoder.u64()?,
            placed_minor: decoder.i64()?,
            orders_cancelled: decoder.u64()?,
            cancelled_minor: decoder.i64()?,
            orders_paid: decoder.u64()?,
            orders_fulfilled: decoder.u64()?,
            units: decoder.u64()?,
            refused_attempts: decoder.u64()?,
            untracked_units: decoder.u64()?,
            untracked_revenue_minor: decoder.i64()?,
        })
    }

    fn size_hint_bytes(&self) -> usize {
        1 + 16 * VARINT_BYTES_MAX
    }
}

impl Totals {
    /// Gross merchandise value: placed orders' totals less cancelled ones'.
    pub fn gmv_minor(&self) -> i64 {
        self.placed_minor.saturating_sub(self.cancelled_minor)
    }

    /// Orders placed and not cancelled.
    pub fn orders(&self) -> u64 {
        self.orders_placed.saturating_sub(self.orders_cancelled)
    }
}

/// What one time bucket counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Orders placed in the bucket.
    pub orders: u64,
    /// Their totals, minor units.
    pub placed_minor: i64,
    /// Orders cancelled in the bucket (whenever they were placed).
    pub cancelled_orders: u64,
    /// Their totals, minor units.
    pub cancelled_minor: i64,
}

/// The last `N` buckets of `width_ms` each, as a ring: bucket `index`
/// (event time divided by the width) lives in slot `index % N`, and the
/// slots hold exactly the buckets `latest - N + 1 ..= latest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series<const N: usize> {
    /// The newest bucket's index, if any event was counted.
    latest: Option<u64>,
    /// The buckets by slot.
    slots: [Bucket; N],
}

impl<const N: usize> Default for Series<N> {
    fn default() -> Self {
        Self { latest: None, slots: [Bucket::default(); N] }
    }
}

/// The per-second series.
pub type Seconds = Series<SECONDS_KEPT>;
/// The per-minute series.
pub type Minutes = Series<MINUTES_KEPT>;

/// Milliseconds of one bucket of [`Seconds`].
pub const SECOND_MS: u64 = 1000;
/// Milliseconds of one bucket of [`Minutes`].
pub const MINUTE_MS: u64 = 60_000;

impl<const N: usize> Series<N> {
    /// `N` as a bucket count.
    const BUCKETS: u64 = N as u64;

    /// The bucket `index`, moving the window on when it is newer than the
    /// newest; `None` when it is older than the window keeps.
    pub fn bucket_mut(&mut self, index: u64) -> Option<&mut Bucket> {
        match self.latest {
            Some(latest) if index <= latest => {
                if latest - index >= Self::BUCKETS {
                    return None;
                }
            }
            Some(latest) => {
                // Empty the slots of the buckets the window moves past.
                let cleared = (index - latest).min(Self::BUCKETS);
                for step in 1..=cleared {
                    self.slots[Self::slot(latest + step)] = Bucket::default();
                }
                self.latest = Some(index);
            }
            None => self.latest = Some(index),
        }
        Some(&mut self.slots[Self::slot(index)])
    }

    /// The newest bucket's index.
    pub fn latest(&self) -> Option<u64> {
        self.latest
    }

    /// The bucket `index` if the window keeps it (empty if nothing
    /// happened in it).
    pub fn bucket(&self, index: u64) -> Option<Bucket> {
        let latest = self.latest?;
        (index <= latest && latest - index < Self::BUCKETS).then(|| self.slots[Self::slot(index)])
    }

    /// Every bucket of the window, oldest first, with its index; buckets
    /// before the first event's (or before time zero) are left out.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, Bucket)> + '_ {
        let latest = self.latest;
        let first = latest.map_or(1, |latest| latest.saturating_sub(Self::BUCKETS - 1));
        let last = latest.unwrap_or(0);
        (first..=last).map(|index| (index, self.slots[Self::slot(index)]))
    }

    fn slot(index: u64) -> usize {
        // The remainder is below N, a usize.
        (index % Self::BUCKETS) as usize
    }
}

impl<const N: usize> Part for Series<N> {
    fn encode(&self, encoder: &mut Encoder) {
        encode_optional(encoder, self.latest);
        let Some(latest) = self.latest else {
            return;
        };
        // Oldest first; buckets before index 0 are written empty.
        for age in (0..Self::BUCKETS).rev() {
            let bucket = latest.checked_sub(age).map(|index| self.slots[Self::slot(index)]);
            let bucket = bucket.unwrap_or_default();
            encoder.u64(bucket.orders);
            encoder.i64(bucket.placed_minor);
            encoder.u64(bucket.cancelled_orders);
            encoder.i64(bucket.cancelled_minor);
        }
    }

    fn decode(decoder: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let mut series = Self { latest: decode_optional(decoder)?, ..Self::default() };
        let Some(latest) = series.latest else {
            return Ok(series);
        };
        for age in (0..Self::BUCKETS).rev() {
            let bucket = Bucket {
                orders: decoder.u64()?,
                placed_minor: decoder.i64()?,
                cancelled_orders: decoder.u64()?,
                cancelled_minor: decoder.i64()?,
            };
            if let Some(index) = latest.checked_sub(age) {
                series.slots[Self::slot(index)] = bucket;
            }
        }
        Ok(series)
    }

    fn size_hint_bytes(&self) -> usize {
        16 + N * 8
    }
}

/// FNV-1a, 64-bit: a small, fast hash that is the same on every platform
/// and in every version, so it can place SKUs in state shards for good.
/// It also hashes the maps looked up on every order line (a shard's SKUs,
/// the flash-sale SKUs), several times faster than the standard SipHash on
/// short keys; those keys come from the store's own journal and
/// configuration, not from an attacker choosing collisions.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map hashed with [`Fnv1a`].
pub type FnvHashMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv1a>>;

/// The shard `sku` is kept in. Part of the state layout: changing it
/// would scatter the figures kept so far.
pub fn shard_of(sku: &str) -> usize {
    let mut hasher = Fnv1a::default();
    hasher.write(sku.as_bytes());
    // The remainder is below SKU_SHARDS, a usize.
    (hasher.finish() % SKU_SHARDS as u64) as usize
}

/// The state key of shard `shard`.
pub fn shard_key(shard: usize) -> String {
    format!("{SKU_SHARD_PREFIX}{shard:02}")
}

/// What one SKU sold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkuTotals {
    /// Units ordered.
    pub units: u64,
    /// Quantity times catalogue unit price, minor units.
    pub revenue_minor: i64,
}

/// The SKUs of one shard. A hash map rather than a sorted one: every
/// order line looks a SKU up, and hashing a short name once beats the
/// dozen string comparisons of a B-tree search (measured: about 5% more
/// ingest throughput), while sorting a shard's few dozen names when it is
/// written costs less than that.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkuShard {
    /// Totals by SKU, at most [`SKUS_PER_SHARD_MAX`].
    pub skus: FnvHashMap<String, SkuTotals>,
}

impl SkuShard {
    /// The totals of `sku`, added if the shard has room and the name is
    /// not too long; `None` otherwise.
    pub fn entry(&mut self, sku: &str) -> Option<&mut SkuTotals> {
        if !self.skus.contains_key(sku) {
            if self.skus.len() >= SKUS_PER_SHARD_MAX || sku.len() > ID_BYTES_MAX {
                return None;
            }
            self.skus.insert(sku.to_owned(), SkuTotals::default());
        }
        self.skus.get_mut(sku)
    }
}

impl Part for SkuShard {
    fn encode(&self, encoder: &mut Encoder) {
        // Sorted, so the same figures give the same bytes.
        let mut skus: Vec<(&String, &SkuTotals)> = self.skus.iter().collect();
        skus.sort_unstable_by(|left, right| left.0.cmp(right.0));
        encoder.u64(skus.len() as u64);
        for (sku, totals) in skus {
            encoder.str(sku);
            encoder.u64(totals.units);
            encoder.i64(totals.revenue_minor);
        }
    }

    fn decode(decoder: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let count = decoder.count("SKUs", SKUS_PER_SHARD_MAX)?;
        let mut skus = FnvHashMap::with_capacity_and_hasher(count, Default::default());
        for _ in 0..count {
            let sku = decoder.str(ID_BYTES_MAX)?.to_owned();
            let totals = SkuTotals { units: decoder.u64()?, revenue_minor: decoder.i64()? };
            // A SKU listed twice would make the count lie about the size.
            if skus.insert(sku, totals).is_some() {
                return Err(DecodeError::new("a SKU is listed twice"));
            }
        }
        Ok(Self { skus })
    }

    fn size_hint_bytes(&self) -> usize {
        16 + self.skus.len() * 24
    }
}

/// What one flash-sale SKU saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlashSku {
    /// Orders placed that include the SKU.
    pub orders: u64,
    /// Units of it in those orders.
    pub units: u64,
    /// Refused attempts that asked for it, by reason in
    /// [`RefusalReason::ALL`] order.
    pub refused: [u64; 4],
    /// Units those attempts asked for.
    pub refused_units: u64,
    /// Units available per warehouse, from each warehouse's latest stock
    /// change, at most [`WAREHOUSES_PER_FLASH_SKU_MAX`] warehouses.
    pub available: BTreeMap<String, u64>,
}

impl FlashSku {
    /// Refused attempts for every reason.
    pub fn refused_attempts(&self) -> u64 {
        self.refused.iter().fold(0, |sum, count| sum.saturating_add(*count))
    }

    /// Counts refused attempts for `reason`.
    pub fn refuse(&mut self, reason: RefusalReason, attempts: u32, units: u64) {
        let slot = RefusalReason::ALL.iter().position(|known| *known == reason).unwrap_or(3);
        self.refused[slot] = self.refused[slot].saturating_add(u64::from(attempts));
        self.refused_units = self.refused_units.saturating_add(units);
    }

    /// Records that `warehouse` now has `available` units, if the
    /// warehouse is kept.
    pub fn set_available(&mut self, warehouse: &str, available: u64) {
        if let Some(units) = self.available.get_mut(warehouse) {
            *units = available;
        } else if self.available.len() < WAREHOUSES_PER_FLASH_SKU_MAX
            && warehouse.len() <= ID_BYTES_MAX
        {
            self.available.insert(warehouse.to_owned(), available);
        }
    }

    /// Units available over every kept warehouse.
    pub fn available_units(&self) -> u64 {
        self.available.values().fold(0, |sum, units| sum.saturating_add(*units))
    }
}

/// The flash-sale SKUs' figures, by SKU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flash {
    /// Figures by SKU, at most [`FLASH_SKUS_MAX`].
    pub skus: BTreeMap<String, FlashSku>,
}

impl Flash {
    /// Drops the figures of SKUs the store no longer lists, so the part
    /// never holds more than the configuration allows.
    pub fn keep_only(&mut self, listed: &[String]) {
        self.skus.retain(|sku, _| listed.iter().any(|listed| listed == sku));
    }
}

impl Part for Flash {
    fn encode(&self, encoder: &mut Encoder) {
        encoder.u64(self.skus.len() as u64);
        for (sku, figures) in &self.skus {
            encoder.str(sku);
            encoder.u64(figures.orders);
            encoder.u64(figures.units);
            for count in figures.refused {
                encoder.u64(count);
            }
            encoder.u64(figures.refused_units);
            encoder.u64(figures.available.len() as u64);
            for (warehouse, units) in &figures.available {
                encoder.str(warehouse);
                encoder.u64(*units);
            }
        }
    }

    fn decode(decoder: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let count = decoder.count("flash-sale SKUs", FLASH_SKUS_MAX)?;
        let mut skus = BTreeMap::new();
        for _ in 0..count {
            let sku = decoder.str(ID_BYTES_MAX)?.to_owned();
            let mut figures =
                FlashSku { orders: decoder.u64()?, units: decoder.u64()?, ..FlashSku::default() };
            for count in &mut figures.refused {
                *count = decoder.u64()?;
            }
            figures.refused_units = decoder.u64()?;
            let warehouses = decoder.count("warehouses", WAREHOUSES_PER_FLASH_SKU_MAX)?;
            for _ in 0..warehouses {
                let warehouse = decoder.str(ID_BYTES_MAX)?.to_owned();
                figures.available.insert(warehouse, decoder.u64()?);
            }
            skus.insert(sku, figures);
        }
        Ok(Self { skus })
    }

    fn size_hint_bytes(&self) -> usize {
        16 + self.skus.len() * 128
    }
}

/// What one promotion rule (or the rules counted together) took off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spend {
    /// Orders it applied to.
    pub uses: u64,
    /// Minor units it took off.
    pub amount_minor: i64,
}

impl Spend {
    /// Counts one use taking `amount_minor` off.
    pub fn add(&mut self, amount_minor: i64) {
        self.uses = self.uses.saturating_add(1);
        self.amount_minor = self.amount_minor.saturating_add(amount_minor);
    }
}

/// Discount spend per promotion rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discounts {
    /// Spend by pricing plugin id, then rule code.
    pub rules: BTreeMap<String, BTreeMap<String, Spend>>,
    /// Rules kept by name, over every plugin; at most [`DISCOUNT_RULES_MAX`].
    pub rule_count: usize,
    /// Rules with no room (or too long a name), together.
    pub other: Spend,
}

impl Discounts {
    /// Counts one use of rule `code` of plugin `plugin_id`.
    pub fn add(&mut self, plugin_id: &str, code: &str, amount_minor: i64) {
        if let Some(spend) = self.rules.get_mut(plugin_id).and_then(|codes| codes.get_mut(code)) {
            spend.add(amount_minor);
            return;
        }
        let fits = plugin_id.len() <= ID_BYTES_MAX && code.len() <= ID_BYTES_MAX;
        if !fits || self.rule_count >= DISCOUNT_RULES_MAX {
            self.other.add(amount_minor);
            return;
        }
        let mut spend = Spend::default();
        spend.add(amount_minor);
        self.rules.entry(plugin_id.to_owned()).or_default().insert(code.to_owned(), spend);
        self.rule_count += 1;
    }

    /// Every rule kept by name: plugin id, code, spend.
    pub fn each(&self) -> impl Iterator<Item = (&str, &str, Spend)> {
        self.rules.iter().flat_map(|(plugin_id, codes)| {
            codes.iter().map(move |(code, spend)| (plugin_id.as_str(), code.as_str(), *spend))
        })
    }
}

impl Part for Discounts {
    fn encode(&self, encoder: &mut Encoder) {
        encoder.u64(self.other.uses);
        encoder.i64(self.other.amount_minor);
        encoder.u64(self.rule_count as u64);
        for (plugin_id, code, spend) in self.each() {
            encoder.str(plugin_id);
            encoder.str(code);
            encoder.u64(spend.uses);
            encoder.i64(spend.amount_minor);
        }
    }

    fn decode(decoder: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let other = Spend { uses: decoder.u64()?, amount_minor: decoder.i64()? };
        let rule_count = decoder.count("promotion rules", DISCOUNT_RULES_MAX)?;
        let mut rules: BTreeMap<String, BTreeMap<String, Spend>> = BTreeMap::new();
        for _ in 0..rule_count {
            let plugin_id = decoder.str(ID_BYTES_MAX)?.to_owned();
            let code = decoder.str(ID_BYTES_MAX)?.to_owned();
            let spend = Spend { uses: decoder.u64()?, amount_minor: decoder.i64()? };
            if rules.entry(plugin_id).or_default().insert(code, spend).is_some() {
                return Err(DecodeError::new("a promotion rule is listed twice"));
            }
        }
        Ok(Self { rules, rule_count, other })
    }

    fn size_hint_bytes(&self) -> usize {
        32 + self.rule_count * 48
    }
}

#[cfg(test)]
// Amounts are written as yuan_fen: 500_00 is 500.00 CNY.
#[allow(clippy::inconsistent_digit_grouping)]
mod tests {
    use super::*;

    fn round_trip<P: Part + PartialEq + std::fmt::Debug>(part: &P) {
        let mut encoder = Encoder::with_capacity(part.size_hint_bytes());
        part.encode(&mut encoder);
        let bytes = encoder.finish();
        let mut decoder = Decoder::new(&bytes).unwrap();
        let decoded = P::decode(&mut decoder).unwrap();
        decoder.finish().unwrap();
        assert_eq!(&decoded, part);
    }

    #[test]
    fn a_series_keeps_the_last_n_buckets_and_refuses_older_ones() {
        let mut series = Series::<4>::default();
        series.bucket_mut(10).unwrap().orders = 1;
        series.bucket_mut(12).unwrap().orders = 2;
        series.bucket_mut(11).unwrap().orders = 3;
        assert_eq!(series.bucket(9), Some(Bucket::default()));
        assert_eq!(series.bucket(8), None);
        assert!(series.bucket_mut(8).is_none());
        let orders: Vec<(u64, u64)> =
            series.buckets().map(|(index, bucket)| (index, bucket.orders)).collect();
        assert_eq!(orders, [(9, 0), (10, 1), (11, 3), (12, 2)]);
        // Moving on by two empties the two slots it reuses.
        series.bucket_mut(14).unwrap().orders = 4;
        let orders: Vec<(u64, u64)> =
            series.buckets().map(|(index, bucket)| (index, bucket.orders)).collect();
        assert_eq!(orders, [(11, 3), (12, 2), (13, 0), (14, 4)]);
        // Moving on by more than the window empties every slot.
        series.bucket_mut(100).unwrap().orders = 5;
        let orders: Vec<u64> = series.buckets().map(|(_, bucket)| bucket.orders).collect();
        assert_eq!(orders, [0, 0, 0, 5]);
        round_trip(&series);
    }

    #[test]
    fn a_series_near_time_zero_round_trips() {
        let mut series = Series::<4>::default();
        round_trip(&series);
        series.bucket_mut(1).unwrap().placed_minor = -7;
        assert_eq!(series.buckets().count(), 2);
        round_trip(&series);
    }

    #[test]
    fn every_part_round_trips_through_its_encoding() {
        round_trip(&Totals {
            last_sequence: Some(41),
            latest_ms: Some(1_762_790_400_000),
            currency: Some("CNY".to_owned()),
            events: 9,
            orders_placed: 3,
            placed_minor: 1_000_00,
            orders_cancelled: 1,
            cancelled_minor: 10_00,
            orders_paid: 2,
            orders_fulfilled: 1,
            units: 7,
            refused_attempts: 40,
            untracked_units: 1,
            untracked_revenue_minor: 5,
        });
        let mut shard = SkuShard::default();
        *shard.entry("D11-PHONE").unwrap() = SkuTotals { units: 3, revenue_minor: 14_997_00 };
        round_trip(&shard);
        let mut flash = Flash::default();
        let phone = flash.skus.entry("D11-PHONE".to_owned()).or_default();
        phone.orders = 2;
        phone.refuse(RefusalReason::SoldOut, 5, 6);
        phone.set_available("WH-SH", 10);
        round_trip(&flash);
        let mut discounts = Discounts::default();
        discounts.add("pricing-promotions", "d11-flash", 500_00);
        discounts.add("pricing-promotions", "spend-300-get-50", 50_00);
        round_trip(&discounts);
    }

    #[test]
    fn a_full_shard_takes_no_new_sku_and_the_worst_case_fits_a_state_value() {
        let mut shard = SkuShard::default();
        for index in 0..SKUS_PER_SHARD_MAX {
            let sku = format!("{index:0>64}");
            *shard.entry(&sku).unwrap() = SkuTotals { units: u64::MAX, revenue_minor: i64::MIN };
        }
        assert!(shard.entry("one-more").is_none());
        assert!(shard.entry(&format!("{:0>64}", 0)).is_some());
        let mut encoder = Encoder::with_capacity(0);
        shard.encode(&mut encoder);
        let size = encoder.finish().len();
        assert!(size <= SKU_SHARD_BYTES_MAX, "{size}");
    }

    #[test]
    fn discount_rules_beyond_the_bound_are_counted_together() {
        let mut discounts = Discounts::default();
        for index in 0..DISCOUNT_RULES_MAX {
            discounts.add("pricing-promotions", &format!("rule-{index}"), 1);
        }
        discounts.add("pricing-promotions", "one-more", 7);
        discounts.add("pricing-promotions", "rule-0", 2);
        discounts.add(&"p".repeat(ID_BYTES_MAX + 1), "rule-0", 3);
        assert_eq!(discounts.rule_count, DISCOUNT_RULES_MAX);
        assert_eq!(discounts.other, Spend { uses: 2, amount_minor: 10 });
        assert_eq!(
            discounts.rules["pricing-promotions"]["rule-0"],
            Spend { uses: 2, amount_minor: 3 }
        );
    }

    #[test]
    fn shards_are_spread_and_stable() {
        // Part of the state layout: these must never change.
        assert_eq!(shard_of(""), (0xcbf2_9ce4_8422_2325_u64 % SKU_SHARDS as u64) as usize);
        assert_eq!(shard_key(7), "skus/07");
        let mut used = [false; SKU_SHARDS];
        for index in 0..1000 {
            used[shard_of(&format!("SKU-{index:04}"))] = true;
        }
        assert!(used.iter().all(|used| *used));
    }
}
