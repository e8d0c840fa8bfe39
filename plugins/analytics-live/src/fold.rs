//! Folding a batch of events into the figures: each part is read from
//! state when the batch first needs it, changed in memory, and written
//! back once at the end of the batch if it changed. An error anywhere
//! returns before the first write, and the host drops a failed batch's
//! writes anyway, so a failed batch changes nothing.

use bazaar_sdk::{Event, EventKind, Money, OrderPlaced, PluginError};

use crate::Config;
use crate::figures::{
    self, DISCOUNTS_KEY, Discounts, FLASH_KEY, Flash, MINUTE_MS, MINUTES_KEY, Minutes, Part,
    SECOND_MS, SECONDS_KEY, SKU_SHARDS, Seconds, SkuShard, TOTALS_KEY, Totals,
};

/// A part read on demand, and whether the batch changed it.
struct Slot<P> {
    /// The part, once read.
    part: Option<P>,
    /// Whether it must be written back.
    changed: bool,
}

impl<P> Default for Slot<P> {
    fn default() -> Self {
        Self { part: None, changed: false }
    }
}

impl<P: Part> Slot<P> {
    /// The part stored under `key`, read on first use, to be changed.
    fn change(&mut self, key: &str) -> &mut P {
        self.changed = true;
        self.part.get_or_insert_with(|| figures::load(key))
    }

    /// Writes the part back under `key` if the batch changed it.
    fn save(&self, key: &str) -> Result<(), PluginError> {
        match &self.part {
            Some(part) if self.changed => figures::save(key, part),
            _ => Ok(()),
        }
    }
}

/// The figures one batch works on.
pub struct Batch<'c> {
    /// The store's configuration.
    config: &'c Config,
    /// The store-wide totals, always read: every batch checks sequence
    /// numbers against them.
    totals: Totals,
    /// Whether any event was folded in.
    totals_changed: bool,
    /// The per-second series.
    seconds: Slot<Seconds>,
    /// The per-minute series.
    minutes: Slot<Minutes>,
    /// The SKU table's shards.
    shards: Vec<Slot<SkuShard>>,
    /// The flash-sale figures.
    flash: Slot<Flash>,
    /// The discount spend.
    discounts: Slot<Discounts>,
}

impl<'c> Batch<'c> {
    /// A batch over the store's figures as they stand.
    pub fn begin(config: &'c Config) -> Self {
        Self {
            config,
            totals: figures::load(TOTALS_KEY),
            totals_changed: false,
            seconds: Slot::default(),
            minutes: Slot::default(),
            shards: (0..SKU_SHARDS).map(|_| Slot::default()).collect(),
            flash: Slot::default(),
            discounts: Slot::default(),
        }
    }

    /// Folds `event` in. An event at or below the last sequence number
    /// folded in was already counted and is skipped, so a batch offered
    /// twice counts once.
    pub fn fold(&mut self, event: &Event) -> Result<(), PluginError> {
        if self.totals.last_sequence.is_some_and(|last| event.sequence <= last) {
            return Ok(());
        }
        match &event.kind {
            EventKind::OrderPlaced(placed) => self.order_placed(event.at_ms, placed)?,
            EventKind::OrderCancelled(cancelled) => {
                let total_minor = self.amount(&cancelled.total)?;
                let totals = &mut self.totals;
                totals.orders_cancelled = totals.orders_cancelled.saturating_add(1);
                totals.cancelled_minor = totals.cancelled_minor.saturating_add(total_minor);
                self.count_in_series(event.at_ms, |bucket| {
                    bucket.cancelled_orders = bucket.cancelled_orders.saturating_add(1);
                    bucket.cancelled_minor = bucket.cancelled_minor.saturating_add(total_minor);
                });
            }
            EventKind::OrderPaid(paid) => {
                self.amount(&paid.total)?;
                self.totals.orders_paid = self.totals.orders_paid.saturating_add(1);
            }
            EventKind::OrderFulfilled(fulfilled) => {
                self.amount(&fulfilled.total)?;
                self.totals.orders_fulfilled = self.totals.orders_fulfilled.saturating_add(1);
            }
            EventKind::StockChanged(changed) => {
                if self.config.is_flash(&changed.sku)
                    && let Some(flash) = self.flash_sku(&changed.sku)
                {
                    flash.set_available(&changed.warehouse, changed.available);
                }
            }
            EventKind::CheckoutRefused(refused) => {
                let totals = &mut self.totals;
                totals.refused_attempts =
                    totals.refused_attempts.saturating_add(u64::from(refused.attempts));
                if self.config.is_flash(&refused.sku)
                    && let Some(flash) = self.flash_sku(&refused.sku)
                {
                    flash.refuse(refused.reason, refused.attempts, refused.units);
                }
            }
        }
        let totals = &mut self.totals;
        totals.last_sequence = Some(event.sequence);
        totals.latest_ms =
            Some(totals.latest_ms.map_or(event.at_ms, |latest| latest.max(event.at_ms)));
        totals.events = totals.events.saturating_add(1);
        self.totals_changed = true;
        Ok(())
    }

    /// Writes back every part the batch changed.
    pub fn finish(self) -> Result<(), PluginError> {
        if !self.totals_changed {
            return Ok(());
        }
        figures::save(TOTALS_KEY, &self.totals)?;
        self.seconds.save(SECONDS_KEY)?;
        self.minutes.save(MINUTES_KEY)?;
        for (shard, slot) in self.shards.iter().enumerate() {
            if slot.changed {
                slot.save(&figures::shard_key(shard))?;
            }
        }
        self.flash.save(FLASH_KEY)?;
        self.discounts.save(DISCOUNTS_KEY)
    }

    fn order_placed(&mut self, at_ms: u64, placed: &OrderPlaced) -> Result<(), PluginError> {
        let total_minor = self.amount(&placed.total)?;
        for money in [&placed.subtotal, &placed.discount, &placed.shipping] {
            self.amount(money)?;
        }
        let totals = &mut self.totals;
        totals.orders_placed = totals.orders_placed.saturating_add(1);
        totals.placed_minor = totals.placed_minor.saturating_add(total_minor);
        self.count_in_series(at_ms, |bucket| {
            bucket.orders = bucket.orders.saturating_add(1);
            bucket.placed_minor = bucket.placed_minor.saturating_add(total_minor);
        });
        for (index, line) in placed.lines.iter().enumerate() {
            let unit_price_minor = self.amount(&line.unit_price)?;
            let units = u64::from(line.quantity);
            let revenue_minor = unit_price_minor.saturating_mul(i64::from(line.quantity));
            self.totals.units = self.totals.units.saturating_add(units);
            let shard = figures::shard_of(&line.sku);
            let slot = &mut self.shards[shard];
            slot.changed = true;
            let table = slot.part.get_or_insert_with(|| figures::load(&figures::shard_key(shard)));
            match table.entry(&line.sku) {
                Some(sku) => {
                    sku.units = sku.units.saturating_add(units);
                    sku.revenue_minor = sku.revenue_minor.saturating_add(revenue_minor);
                }
                None => {
                    let totals = &mut self.totals;
                    totals.untracked_units = totals.untracked_units.saturating_add(units);
                    totals.untracked_revenue_minor =
                        totals.untracked_revenue_minor.saturating_add(revenue_minor);
                }
            }
            if self.config.is_flash(&line.sku)
                && let Some(flash) = self.flash_sku(&line.sku)
            {
                flash.units = flash.units.saturating_add(units);
                // An order with the SKU on two lines is one order of it.
                if !placed.lines[..index].iter().any(|earlier| earlier.sku == line.sku) {
                    flash.orders = flash.orders.saturating_add(1);
                }
            }
        }
        for discount in &placed.discounts {
            let amount_minor = self.amount(&discount.amount)?;
            self.discounts.change(DISCOUNTS_KEY).add(
                &discount.plugin_id,
                &discount.code,
                amount_minor,
            );
        }
        Ok(())
    }

    /// Adds to the buckets of `at_ms` in both series, if they are still
    /// in the windows.
    fn count_in_series(&mut self, at_ms: u64, count: impl Fn(&mut figures::Bucket)) {
        if let Some(bucket) = self.seconds.change(SECONDS_KEY).bucket_mut(at_ms / SECOND_MS) {
            count(bucket);
        }
        if let Some(bucket) = self.minutes.change(MINUTES_KEY).bucket_mut(at_ms / MINUTE_MS) {
            count(bucket);
        }
    }

    /// The figures of flash-sale SKU `sku` (one the configuration lists),
    /// added if it has none yet. The part is read with the figures of SKUs
    /// the store no longer lists dropped.
    fn flash_sku(&mut self, sku: &str) -> Option<&mut figures::FlashSku> {
        let config = self.config;
        let flash = self.flash.part.get_or_insert_with(|| {
            let mut flash: Flash = figures::load(FLASH_KEY);
            flash.keep_only(config.flash_skus());
            flash
        });
        self.flash.changed = true;
        // Looked up by `&str` first: at a flash sale's peak nearly every
        // order has the SKU, and `entry` would copy its name every time.
        if !flash.skus.contains_key(sku) {
            flash.skus.insert(sku.to_owned(), figures::FlashSku::default());
        }
        flash.skus.get_mut(sku)
    }

    /// The minor units of `money`, which must be in the store's currency;
    /// the first amount the plugin ever sees sets it.
    fn amount(&mut self, money: &Money) -> Result<i64, PluginError> {
        match &self.totals.currency {
            Some(currency) if *currency == money.currency => Ok(money.amount_minor),
            Some(currency) => Err(PluginError::unsupported(format!(
                "an amount is in {:?}, but this store's figures are in {currency}",
                money.currency
            ))),
            None if money.currency.len() == 3
                && money.currency.bytes().all(|byte| byte.is_ascii_uppercase()) =>
            {
                self.totals.currency = Some(money.currency.clone());
                Ok(money.amount_minor)
            }
            None => Err(PluginError::unsupported(format!(
                "{:?} is not an ISO-4217 currency code",
                money.currency
            ))),
        }
    }
}
