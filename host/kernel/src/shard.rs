//! A shard: the state of a set of whole stores, changed only by [`Command`]s.
//!
//! Every command is validated completely before anything is written, so a
//! refused command leaves the state exactly as it was. The node gives each
//! shard one writer thread; nothing here locks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::KernelError;
use crate::command::{
    Command, Outcome, PLUGIN_CONFIG_LEN_MAX, PLUGINS_PER_STORE_MAX, PlaceOrder, PluginSettings,
    PricingRules, STATE_KEY_LEN_MAX, STATE_KEYS_MAX, STATE_VALUE_LEN_MAX,
    STATE_WRITES_PER_ORDER_MAX, StateWrite,
};
use crate::device::{DeviceFloor, HeldTask, OrderMilestone};
use crate::hash_index::HashIndex;
use crate::model::{
    COUPON_CODES_MAX, Cart, CartLine, CustomerId, IDEMPOTENCY_KEY_LEN_MAX, IdempotencyKey,
    LINE_QUANTITY_MAX, LineRequest, ORDER_LINES_MAX, Order, OrderNumber, OrderRequest, OrderStatus,
    PluginId, Product, STOCK_QUANTITY_MAX, ShipmentPlan, Sku, StockLevel, StoreId, Totals,
    Warehouse, WarehouseId, check_text,
};
use crate::money::{AMOUNT_MINOR_MAX, Currency, add_amounts, line_amount};
use crate::order_log::OrderLog;

/// Most price adjustments on one order: promotions stack a handful deep;
/// this bounds what a misbehaving pricing plugin can add to the journal.
pub const ADJUSTMENTS_MAX: usize = 64;
/// Most shipments in one plan: one per warehouse is the most that is useful.
pub const SHIPMENTS_MAX: usize = 32;
/// Highest shipping fee of one shipment: 100,000.00 in a two-digit currency.
pub const SHIPMENT_FEE_MINOR_MAX: i64 = 10_000_000;
/// Longest promised delivery time: a year.
const ETA_HOURS_MAX: u32 = 24 * 365;

/// A plugin's private key-value state in one store.
pub type PluginStateMap = BTreeMap<String, Vec<u8>>;

/// A SHA-256 digest of a shard's whole state, to compare two states.
pub type Digest = [u8; 32];

/// A store's configuration of one plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginConfig {
    /// The configuration document (JSON).
    pub json: String,
    /// The store revision at which it was set; changes whenever it changes.
    pub revision: u64,
    /// How the plugin runs for the store.
    pub settings: PluginSettings,
}

/// Everything the kernel knows about one store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreState {
    /// Display name.
    name: String,
    /// The currency of every price.
    currency: Currency,
    /// The catalogue.
    products: BTreeMap<Sku, Product>,
    /// Warehouses.
    warehouses: BTreeMap<WarehouseId, Warehouse>,
    /// Stock per SKU per warehouse.
    stock: BTreeMap<Sku, BTreeMap<WarehouseId, StockLevel>>,
    /// Orders, numbered from 1.
    orders: OrderLog,
    /// Look-ups derived from the orders.
    indexes: OrderIndexes,
    /// Plugins configured for this store.
    plugin_configs: BTreeMap<PluginId, PluginConfig>,
    /// Each plugin's private state. Shared with in-flight plugin calls by
    /// `Arc` and copied on write only if a call still holds it.
    #[serde(with = "arc_state")]
    plugin_state: BTreeMap<PluginId, Arc<PluginStateMap>>,
    /// How the store's pricing plugins combine.
    pricing_rules: PricingRules,
    /// The last event sequence each consuming plugin processed.
    consumed_through: BTreeMap<PluginId, u64>,
    /// Devices, warehouse maps and robot tasks.
    floor: DeviceFloor,
    /// Commands applied to this store so far.
    revision: u64,
}

/// Look-ups over a store's orders, kept up to date as orders change and
/// always equal to [`OrderIndexes::derive`] of them. A snapshot's copy of
/// the state leaves them out (copying them would pause the writer for
/// hundreds of milliseconds at half a million orders) and derives them
/// again on the snapshot thread; they encode exactly where the fields
/// would, so the snapshot is the same bytes either way. Each grows by an
/// entry per order, so they are [`HashIndex`]es: a look-up among a million
/// keys costs a cache miss or two, not dozens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct OrderIndexes {
    /// Idempotency key to the order it created.
    idempotency: HashIndex<IdempotencyKey, OrderNumber>,
    /// Units of purchase-limited SKUs held by each customer's live orders,
    /// by SKU; encoded as one map keyed by (customer, SKU).
    #[serde(with = "flat_holdings")]
    limit_holdings: HashIndex<CustomerId, LimitHoldings>,
    /// Orders of each customer that are not cancelled.
    customer_orders: HashIndex<CustomerId, u64>,
}

/// One customer's units of each purchase-limited SKU, ordered by SKU: a
/// customer holds a few at most.
type LimitHoldings = Vec<(Sku, u32)>;

impl OrderIndexes {
    /// The indexes of `orders`, from scratch.
    fn derive(orders: &OrderLog) -> Self {
        let mut indexes = Self::default();
        for order in orders.iter() {
            if let Some(key) = &order.request.idempotency_key {
                indexes.idempotency.get_or_insert_with(key, || order.number);
            }
            if order.status != OrderStatus::Cancelled {
                indexes.add_live_order(&order.request.customer.id, &order.limited_units);
            }
        }
        indexes
    }

    /// Counts a live order of `customer` holding `limited_units`.
    fn add_live_order(&mut self, customer: &CustomerId, limited_units: &[LineRequest]) {
        *self.customer_orders.get_or_insert_with(customer, || 0) += 1;
        if limited_units.is_empty() {
            return;
        }
        let holdings = self.limit_holdings.get_or_insert_with(customer, Vec::new);
        for line in limited_units {
            match holdings.binary_search_by(|(sku, _)| sku.cmp(&line.sku)) {
                Ok(found) => holdings[found].1 += line.quantity,
                Err(at) => holdings.insert(at, (line.sku.clone(), line.quantity)),
            }
        }
    }

    /// Forgets a cancelled order of `customer` and the units it held
    /// against purchase limits.
    fn remove_live_order(&mut self, customer: &CustomerId, limited_units: &[LineRequest]) {
        if let Some(count) = self.customer_orders.get_mut(customer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.customer_orders.remove(customer);
            }
        }
        let Some(holdings) = self.limit_holdings.get_mut(customer) else {
            return;
        };
        for line in limited_units {
            if let Ok(found) = holdings.binary_search_by(|(sku, _)| sku.cmp(&line.sku)) {
                let held = &mut holdings[found].1;
                *held = held.saturating_sub(line.quantity);
                if *held == 0 {
                    holdings.remove(found);
                }
            }
        }
        if holdings.is_empty() {
            self.limit_holdings.remove(customer);
        }
    }

    /// Units of `sku` the customer's live orders hold against its limit.
    fn limit_holding(&self, customer: &CustomerId, sku: &Sku) -> u32 {
        let Some(holdings) = self.limit_holdings.get(customer) else {
            return 0;
        };
        holdings.binary_search_by(|(held, _)| held.cmp(sku)).map_or(0, |found| holdings[found].1)
    }
}

mod flat_holdings {
    //! Serde for the purchase-limit holdings as one map keyed by
    //! (customer, SKU), the encoding they have always had.
    use super::{CustomerId, HashIndex, LimitHoldings, Sku};
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        holdings: &HashIndex<CustomerId, LimitHoldings>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        // `iter` sorts the index, so once: the entry count comes first.
        let customers: Vec<_> = holdings.iter().collect();
        let entries = customers.iter().map(|(_, skus)| skus.len()).sum();
        let mut map = serializer.serialize_map(Some(entries))?;
        for (customer, skus) in customers {
            for (sku, units) in skus {
                map.serialize_entry(&(customer, sku), units)?;
            }
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<HashIndex<CustomerId, LimitHoldings>, D::Error> {
        let flat = BTreeMap::<(CustomerId, Sku), u32>::deserialize(deserializer)?;
        let mut holdings = HashIndex::<CustomerId, LimitHoldings>::default();
        // In (customer, SKU) order, so each customer's SKUs arrive sorted.
        for ((customer, sku), units) in flat {
            holdings.get_or_insert_with(&customer, Vec::new).push((sku, units));
        }
        Ok(holdings)
    }
}

mod arc_state {
    //! Serde for the `Arc`-shared plugin state maps (serde's `rc` feature
    //! would change serde for every crate of the build).
    use super::{Arc, BTreeMap, PluginId, PluginStateMap};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<PluginId, Arc<PluginStateMap>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let plain: BTreeMap<&PluginId, &PluginStateMap> =
            map.iter().map(|(id, state)| (id, state.as_ref())).collect();
        plain.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<PluginId, Arc<PluginStateMap>>, D::Error> {
        let plain = BTreeMap::<PluginId, PluginStateMap>::deserialize(deserializer)?;
        Ok(plain.into_iter().map(|(id, state)| (id, Arc::new(state))).collect())
    }
}

impl StoreState {
    /// Whether a request is new or repeats an earlier order of this store;
    /// an error when its key was used for a different request.
    fn check_idempotency(&self, request: &OrderRequest) -> Result<IdempotencyCheck, KernelError> {
        let Some(key) = &request.idempotency_key else {
            return Ok(IdempotencyCheck::New);
        };
        let Some(&number) = self.indexes.idempotency.get(key.as_str()) else {
            return Ok(IdempotencyCheck::New);
        };
        let earlier = self.order(number).ok_or(KernelError::UnknownOrder(number))?;
        if earlier.request_fingerprint == request_fingerprint(request) {
            Ok(IdempotencyCheck::Duplicate(number))
        } else {
            Err(KernelError::IdempotencyConflict { key: key.to_string(), order: number })
        }
    }

    /// Everything placing `place` checks, without changing anything.
    fn check_order(&self, place: &PlaceOrder) -> Result<Checked, KernelError> {
        if let IdempotencyCheck::Duplicate(order) = self.check_idempotency(&place.request)? {
            let totals = self.order(order).map(|o| o.totals).unwrap_or_default();
            return Ok(Checked::Duplicate(Outcome::OrderPlaced { order, totals, duplicate: true }));
        }
        let fingerprint = request_fingerprint(&place.request);
        let lines = self.priced_lines(&place.request)?;
        let discount_minor = validate_adjustments(&lines, &place.adjustments)?;
        let subtotal_minor = order_totals(&lines, 0, 0)?.subtotal_minor;
        if let Some(cap_minor) = self.pricing_rules.discount_cap(subtotal_minor)
            && discount_minor > cap_minor
        {
            return Err(KernelError::DiscountOverCap { discount_minor, cap_minor });
        }
        for failure in &place.pricing_failures {
            check_text("plugin failure reason", &failure.reason)?;
        }
        for check in &place.risk_checks {
            check_text("risk check code", &check.code)?;
            check_text("risk check reason", &check.reason)?;
        }
        let shipping_minor = self.validate_plan(&lines, &place.shipment_plan)?;
        self.validate_state_writes(&place.state_writes)?;
        let totals = order_totals(&lines, discount_minor, shipping_minor)?;
        let limited_units: Vec<LineRequest> = place
            .request
            .lines
            .iter()
            .filter(|line| {
                self.products
                    .get(&line.sku)
                    .is_some_and(|p| p.purchase_limit_per_customer.is_some())
            })
            .cloned()
            .collect();
        Ok(Checked::New { fingerprint, lines, totals, limited_units })
    }

    /// Writes an order that [`StoreState::check_order`] checked against
    /// this very state.
    fn commit_order(&mut self, place: Box<PlaceOrder>, checked: Checked) -> Outcome {
        let (fingerprint, lines, totals, limited_units) = match checked {
            Checked::Duplicate(outcome) => return outcome,
            Checked::New { fingerprint, lines, totals, limited_units } => {
                (fingerprint, lines, totals, limited_units)
            }
        };
        // Everything is validated: from here on the order is written.
        let PlaceOrder {
            store: _,
            mut request,
            placed_at_ms,
            adjustments,
            pricing_failures,
            risk_checks,
            shipment_plan,
            state_writes,
        } = *place;
        for shipment in &shipment_plan.shipments {
            for line in &shipment.lines {
                let level = self.level_mut(&line.sku, &shipment.warehouse);
                level.available -= u64::from(line.quantity);
                level.reserved += u64::from(line.quantity);
                debug_assert!(level.is_balanced());
            }
        }
        self.indexes.add_live_order(&request.customer.id, &limited_units);
        self.apply_state_writes(&state_writes);
        let number = self.orders.next_number();
        if let Some(key) = &request.idempotency_key {
            self.indexes.idempotency.insert(key.clone(), number);
        }
        request.shrink_to_fit();
        self.orders.push(Order {
            number,
            request,
            request_fingerprint: fingerprint,
            lines,
            adjustments: adjustments.into_boxed_slice(),
            pricing_failures: pricing_failures.into_boxed_slice(),
            risk_checks: risk_checks.into_boxed_slice(),
            shipment_plan,
            totals,
            limited_units: limited_units.into(),
            currency: self.currency,
            status: OrderStatus::Reserved,
            placed_at_ms,
            updated_at_ms: placed_at_ms,
        });
        self.revision += 1;
        Outcome::OrderPlaced { order: number, totals, duplicate: false }
    }

    /// A copy whose derived look-ups are empty (see [`OrderIndexes`]).
    fn copy_without_indexes(&self) -> Self {
        Self {
            name: self.name.clone(),
            currency: self.currency,
            products: self.products.clone(),
            warehouses: self.warehouses.clone(),
            stock: self.stock.clone(),
            orders: self.orders.clone(),
            indexes: OrderIndexes::default(),
            plugin_configs: self.plugin_configs.clone(),
            plugin_state: self.plugin_state.clone(),
            pricing_rules: self.pricing_rules,
            consumed_through: self.consumed_through.clone(),
            floor: self.floor.clone(),
            revision: self.revision,
        }
    }

    /// Display name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The store's currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }
    /// The catalogue.
    pub fn products(&self) -> &BTreeMap<Sku, Product> {
        &self.products
    }
    /// The warehouses.
    pub fn warehouses(&self) -> &BTreeMap<WarehouseId, Warehouse> {
        &self.warehouses
    }
    /// Stock levels per SKU per warehouse.
    pub fn stock(&self) -> &BTreeMap<Sku, BTreeMap<WarehouseId, StockLevel>> {
        &self.stock
    }
    /// The stock level of one SKU in one warehouse (zero when never stocked).
    pub fn stock_level(&self, sku: &Sku, warehouse: &WarehouseId) -> StockLevel {
        self.stock.get(sku).and_then(|levels| levels.get(warehouse)).copied().unwrap_or_default()
    }
    /// All orders, oldest first.
    pub fn orders(&self) -> &OrderLog {
        &self.orders
    }
    /// One order.
    pub fn order(&self, number: OrderNumber) -> Option<&Order> {
        self.orders.get(number)
    }
    /// How the store's pricing plugins combine.
    pub fn pricing_rules(&self) -> &PricingRules {
        &self.pricing_rules
    }
    /// The last event sequence `plugin` processed for this store (0: none).
    pub fn consumed_through(&self, plugin: &PluginId) -> u64 {
        self.consumed_through.get(plugin).copied().unwrap_or(0)
    }
    /// Plugins configured for this store.
    pub fn plugin_configs(&self) -> &BTreeMap<PluginId, PluginConfig> {
        &self.plugin_configs
    }
    /// A plugin's state in this store (empty when it has none).
    pub fn plugin_state(&self, plugin: &PluginId) -> Arc<PluginStateMap> {
        self.plugin_state.get(plugin).cloned().unwrap_or_default()
    }
    /// The order an idempotency key created, if any.
    pub fn order_for_idempotency_key(&self, key: &str) -> Option<OrderNumber> {
        self.indexes.idempotency.get(key).copied()
    }
    /// Commands applied to this store.
    pub fn revision(&self) -> u64 {
        self.revision
    }
    /// Orders of the customer that are not cancelled.
    pub fn customer_orders(&self, customer: &CustomerId) -> u64 {
        self.indexes.customer_orders.get(customer).copied().unwrap_or(0)
    }

    /// Units of `sku` the customer's live orders hold against its limit.
    pub fn limit_holding(&self, customer: &CustomerId, sku: &Sku) -> u32 {
        self.indexes.limit_holding(customer, sku)
    }

    /// Devices, warehouse maps and robot tasks.
    pub fn floor(&self) -> &DeviceFloor {
        &self.floor
    }

    fn order_mut(&mut self, number: OrderNumber) -> Result<&mut Order, KernelError> {
        self.orders.get_mut(number).ok_or(KernelError::UnknownOrder(number))
    }

    fn available_total(&self, sku: &Sku) -> u64 {
        self.stock.get(sku).map_or(0, |levels| levels.values().map(|l| l.available).sum())
    }

    fn level_mut(&mut self, sku: &Sku, warehouse: &WarehouseId) -> &mut StockLevel {
        self.stock.entry(sku.clone()).or_default().entry(warehouse.clone()).or_default()
    }

    /// Validates `request` and prices it at catalogue prices.
    fn cart_for(
        &self,
        store: &StoreId,
        request: &OrderRequest,
        placed_at_ms: u64,
    ) -> Result<Cart, KernelError> {
        Ok(Cart {
            store_id: store.clone(),
            currency: self.currency,
            customer: request.customer.clone(),
            lines: self.priced_lines(request)?,
            coupon_codes: request.coupon_codes.clone(),
            shipping_address: request.shipping_address.clone(),
            placed_at_ms,
        })
    }

    /// Validates `request` and prices its lines at catalogue prices: all of
    /// a cart that placing the order needs, without copying the rest.
    fn priced_lines(&self, request: &OrderRequest) -> Result<Vec<CartLine>, KernelError> {
        validate_request_shape(request)?;
        let mut lines = Vec::with_capacity(request.lines.len());
        for line in &request.lines {
            let product = self
                .products
                .get(&line.sku)
                .ok_or_else(|| KernelError::UnknownSku(line.sku.to_string()))?;
            if let Some(limit) = product.purchase_limit_per_customer {
                let held = self.limit_holding(&request.customer.id, &line.sku);
                if held.saturating_add(line.quantity) > limit {
                    return Err(KernelError::PurchaseLimitExceeded {
                        sku: line.sku.to_string(),
                        limit,
                        held,
                        requested: line.quantity,
                    });
                }
            }
            let available = self.available_total(&line.sku);
            if u64::from(line.quantity) > available {
                return Err(KernelError::InsufficientStock {
                    sku: line.sku.to_string(),
                    requested: line.quantity.into(),
                    available,
                });
            }
            lines.push(CartLine {
                sku: line.sku.clone(),
                quantity: line.quantity,
                unit_price_minor: product.unit_price_minor,
            });
        }
        Ok(lines)
    }

    /// Checks `plan` ships every cart unit exactly once from stock that is
    /// available now; returns the sum of its fees.
    fn validate_plan(&self, lines: &[CartLine], plan: &ShipmentPlan) -> Result<i64, KernelError> {
        let invalid = |text: String| Err(KernelError::InvalidShipmentPlan(text));
        if plan.shipments.is_empty() {
            return invalid("it has no shipments".into());
        }
        if plan.shipments.len() > SHIPMENTS_MAX {
            return invalid(format!("it has more than {SHIPMENTS_MAX} shipments"));
        }
        if let Some(reason) = &plan.fallback_reason {
            check_text("fallback reason", reason)?;
        }
        let mut shipped: BTreeMap<&Sku, u64> = BTreeMap::new();
        let mut taken: BTreeMap<(&Sku, &WarehouseId), u64> = BTreeMap::new();
        let mut warehouses_used = BTreeSet::new();
        let mut fees_minor = 0i64;
        for shipment in &plan.shipments {
            if !self.warehouses.contains_key(&shipment.warehouse) {
                return Err(KernelError::UnknownWarehouse(shipment.warehouse.to_string()));
            }
            if !warehouses_used.insert(&shipment.warehouse) {
                return invalid(format!("warehouse {} has two shipments", shipment.warehouse));
            }
            if shipment.lines.is_empty() {
                return invalid(format!("the shipment from {} is empty", shipment.warehouse));
            }
            if !(0..=SHIPMENT_FEE_MINOR_MAX).contains(&shipment.fee_minor) {
                return invalid(format!(
                    "fee {} is outside 0..={SHIPMENT_FEE_MINOR_MAX}",
                    shipment.fee_minor
                ));
            }
            if shipment.eta_hours > ETA_HOURS_MAX {
                return invalid(format!("eta of {} hours is over a year", shipment.eta_hours));
            }
            check_text("carrier", &shipment.carrier)?;
            fees_minor = add_amounts(fees_minor, shipment.fee_minor)?;
            for line in &shipment.lines {
                if line.quantity == 0 {
                    return invalid(format!("a line of sku {} ships 0 units", line.sku));
                }
                *shipped.entry(&line.sku).or_default() += u64::from(line.quantity);
                *taken.entry((&line.sku, &shipment.warehouse)).or_default() +=
                    u64::from(line.quantity);
            }
        }
        for line in lines {
            let units = shipped.remove(&line.sku).unwrap_or(0);
            if units != u64::from(line.quantity) {
                return invalid(format!(
                    "it ships {units} units of sku {} but the order has {}",
                    line.sku, line.quantity
                ));
            }
        }
        if let Some((sku, _)) = shipped.into_iter().next() {
            return invalid(format!("it ships sku {sku}, which is not in the order"));
        }
        for ((sku, warehouse), units) in taken {
            let available = self.stock_level(sku, warehouse).available;
            if units > available {
                return Err(KernelError::InsufficientStock {
                    sku: format!("{sku} in warehouse {warehouse}"),
                    requested: units,
                    available,
                });
            }
        }
        Ok(fees_minor)
    }

    /// Applies checked plugin state writes.
    fn apply_state_writes(&mut self, writes: &[StateWrite]) {
        for write in writes {
            let map = Arc::make_mut(self.plugin_state.entry(write.plugin.clone()).or_default());
            match &write.value {
                Some(value) => map.insert(write.key.clone(), value.clone()),
                None => map.remove(&write.key),
            };
        }
    }

    /// Checks a batch of plugin state writes against the state limits.
    fn validate_state_writes(&self, writes: &[StateWrite]) -> Result<(), KernelError> {
        let invalid = |text: String| Err(KernelError::InvalidStateWrite(text));
        if writes.len() > STATE_WRITES_PER_ORDER_MAX {
            return invalid(format!("more than {STATE_WRITES_PER_ORDER_MAX} writes in one order"));
        }
        let mut new_keys: BTreeMap<&PluginId, BTreeSet<&str>> = BTreeMap::new();
        for write in writes {
            if write.key.is_empty() || write.key.len() > STATE_KEY_LEN_MAX {
                return invalid(format!("key length must be 1 to {STATE_KEY_LEN_MAX} bytes"));
            }
            if write.value.as_ref().is_some_and(|v| v.len() > STATE_VALUE_LEN_MAX) {
                return invalid(format!("value longer than {STATE_VALUE_LEN_MAX} bytes"));
            }
            let existing = self.plugin_state.get(&write.plugin);
            if write.value.is_some() && !existing.is_some_and(|map| map.contains_key(&write.key)) {
                new_keys.entry(&write.plugin).or_default().insert(&write.key);
            }
        }
        for (plugin, keys) in new_keys {
            let held = self.plugin_state.get(plugin).map_or(0, |map| map.len());
            if held + keys.len() > STATE_KEYS_MAX {
                return invalid(format!(
                    "plugin {plugin} would hold more than {STATE_KEYS_MAX} keys"
                ));
            }
        }
        Ok(())
    }
}

fn validate_request_shape(request: &OrderRequest) -> Result<(), KernelError> {
    if let Some(key) = request.idempotency_key.as_ref().map(IdempotencyKey::as_str)
        && (key.is_empty() || key.len() > IDEMPOTENCY_KEY_LEN_MAX)
    {
        return Err(KernelError::InvalidIdentifier {
            what: "idempotency key",
            detail: format!("must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} bytes"),
        });
    }
    if request.lines.is_empty() {
        return Err(KernelError::EmptyOrder);
    }
    if request.lines.len() > ORDER_LINES_MAX {
        return Err(KernelError::TooMany { what: "order lines", limit: ORDER_LINES_MAX });
    }
    if request.coupon_codes.len() > COUPON_CODES_MAX {
        return Err(KernelError::TooMany { what: "coupon codes", limit: COUPON_CODES_MAX });
    }
    for code in &request.coupon_codes {
        check_text("coupon code", code)?;
    }
    request.shipping_address.validate()?;
    let mut seen = BTreeSet::new();
    for line in &request.lines {
        check_quantity(
            || format!("sku {}", line.sku),
            line.quantity.into(),
            LINE_QUANTITY_MAX.into(),
        )?;
        if !seen.insert(&line.sku) {
            return Err(KernelError::DuplicateLine(line.sku.to_string()));
        }
    }
    Ok(())
}

/// `what` names the quantity in the error; it is only built for one, since
/// every line of every order passes through here.
fn check_quantity(
    what: impl FnOnce() -> String,
    quantity: u64,
    max: u64,
) -> Result<(), KernelError> {
    if quantity == 0 || quantity > max {
        return Err(KernelError::InvalidQuantity { what: what(), quantity, max });
    }
    Ok(())
}

/// Checks pricing adjustments against a cart and returns the total discount:
/// every amount positive, line adjustments within their line's amount, the
/// total within the subtotal, texts within limits.
pub fn validate_adjustments(
    lines: &[CartLine],
    adjustments: &[crate::model::Adjustment],
) -> Result<i64, KernelError> {
    if adjustments.len() > ADJUSTMENTS_MAX {
        return Err(KernelError::TooMany { what: "price adjustments", limit: ADJUSTMENTS_MAX });
    }
    let mut line_remaining = Vec::with_capacity(lines.len());
    let mut subtotal_minor = 0i64;
    for line in lines {
        let amount = line_amount(line.quantity, line.unit_price_minor)?;
        subtotal_minor = add_amounts(subtotal_minor, amount)?;
        line_remaining.push(amount);
    }
    let mut discount_minor = 0i64;
    for (index, adjustment) in adjustments.iter().enumerate() {
        let invalid = |reason: String| KernelError::InvalidAdjustment {
            index,
            code: adjustment.code.chars().take(64).collect(),
            reason,
        };
        check_text("adjustment code", &adjustment.code)?;
        check_text("adjustment reason", &adjustment.reason)?;
        let amount = adjustment.amount_off_minor;
        if amount <= 0 {
            return Err(invalid(format!("amount off must be positive, got {amount}")));
        }
        if let Some(line_index) = adjustment.line_index {
            let remaining = usize::try_from(line_index)
                .ok()
                .and_then(|i| line_remaining.get_mut(i))
                .ok_or_else(|| invalid(format!("line {line_index} does not exist")))?;
            if amount > *remaining {
                return Err(invalid(format!(
                    "takes {amount} off line {line_index}, which has only {remaining} left"
                )));
            }
            *remaining -= amount;
        }
        discount_minor = add_amounts(discount_minor, amount)?;
        if discount_minor > subtotal_minor {
            return Err(invalid(format!(
                "total discount {discount_minor} exceeds the subtotal {subtotal_minor}"
            )));
        }
    }
    Ok(discount_minor)
}

/// An order's totals from its cart, its validated discount and its fees.
pub fn order_totals(
    lines: &[CartLine],
    discount_minor: i64,
    shipping_minor: i64,
) -> Result<Totals, KernelError> {
    let subtotal_minor = lines.iter().try_fold(0i64, |sum, line| {
        add_amounts(sum, line_amount(line.quantity, line.unit_price_minor)?)
    })?;
    let total_minor = add_amounts(subtotal_minor - discount_minor, shipping_minor)?;
    Ok(Totals { subtotal_minor, discount_minor, shipping_minor, total_minor })
}

/// What an idempotency key says about a request before it is processed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyCheck {
    /// No earlier order has this key (or there is no key): process it.
    New,
    /// The same request already created this order: answer with it.
    Duplicate(OrderNumber),
}

/// What checking an order found it would do.
enum Checked {
    /// An earlier order with the same key and request: its answer.
    Duplicate(Outcome),
    /// A new order: what writing it takes.
    New {
        fingerprint: [u8; 32],
        lines: Vec<CartLine>,
        totals: Totals,
        limited_units: Vec<LineRequest>,
    },
}

/// The fingerprint of what a request asks for, without its key.
fn request_fingerprint(request: &OrderRequest) -> [u8; 32] {
    let body =
        (&request.customer, &request.lines, &request.coupon_codes, &request.shipping_address);
    // Plain data encodes into a Vec; a failure is a bug, not a fingerprint.
    let bytes = postcard::to_allocvec(&body).expect("an order request encodes");
    Sha256::digest(&bytes).into()
}

/// The state of a set of stores, changed by one writer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// The stores of this shard.
    stores: BTreeMap<StoreId, StoreState>,
}

impl Shard {
    /// An empty shard.
    pub fn new() -> Self {
        Self::default()
    }

    /// One store.
    pub fn store(&self, store: &StoreId) -> Option<&StoreState> {
        self.stores.get(store)
    }

    /// Every store.
    pub fn stores(&self) -> &BTreeMap<StoreId, StoreState> {
        &self.stores
    }

    fn store_ref(&self, store: &StoreId) -> Result<&StoreState, KernelError> {
        self.stores.get(store).ok_or_else(|| KernelError::UnknownStore(store.to_string()))
    }

    fn store_mut(&mut self, store: &StoreId) -> Result<&mut StoreState, KernelError> {
        self.stores.get_mut(store).ok_or_else(|| KernelError::UnknownStore(store.to_string()))
    }

    /// Whether a request is new or repeats an earlier one; an error when its
    /// key was used for a different request.
    pub fn check_idempotency(
        &self,
        store: &StoreId,
        request: &OrderRequest,
    ) -> Result<IdempotencyCheck, KernelError> {
        self.store_ref(store)?.check_idempotency(request)
    }

    /// Validates a request (shape, SKUs, purchase limits, total stock) and
    /// returns the cart to hand to pricing and logistics plugins.
    pub fn prepare_cart(
        &self,
        store: &StoreId,
        request: &OrderRequest,
        placed_at_ms: u64,
    ) -> Result<Cart, KernelError> {
        self.store_ref(store)?.cart_for(store, request, placed_at_ms)
    }

    /// Checks that `plan` would ship `cart` from stock available now, as
    /// placing the order would; returns the plan's total fee.
    pub fn check_shipment_plan(
        &self,
        store: &StoreId,
        cart: &Cart,
        plan: &ShipmentPlan,
    ) -> Result<i64, KernelError> {
        self.store_ref(store)?.validate_plan(&cart.lines, plan)
    }

    /// Applies one command. On error nothing changed.
    pub fn apply(&mut self, command: &Command) -> Result<Outcome, KernelError> {
        match command {
            Command::CreateStore { store, name, currency } => {
                check_text("store name", name)?;
                if self.stores.contains_key(store) {
                    return Err(KernelError::StoreExists(store.to_string()));
                }
                self.stores.insert(
                    store.clone(),
                    StoreState {
                        name: name.clone(),
                        currency: *currency,
                        products: BTreeMap::new(),
                        warehouses: BTreeMap::new(),
                        stock: BTreeMap::new(),
                        orders: OrderLog::default(),
                        indexes: OrderIndexes::default(),
                        plugin_configs: BTreeMap::new(),
                        plugin_state: BTreeMap::new(),
                        pricing_rules: PricingRules::default(),
                        consumed_through: BTreeMap::new(),
                        floor: DeviceFloor::default(),
                        revision: 1,
                    },
                );
                Ok(Outcome::StoreCreated)
            }
            Command::UpsertProduct { store, product, currency } => {
                check_text("product title", &product.title)?;
                if product.unit_price_minor < 0 {
                    return Err(KernelError::NegativeAmount {
                        what: "unit price",
                        amount_minor: product.unit_price_minor,
                    });
                }
                if product.unit_price_minor > AMOUNT_MINOR_MAX {
                    return Err(KernelError::AmountOverflow);
                }
                if product.purchase_limit_per_customer == Some(0) {
                    return Err(KernelError::InvalidQuantity {
                        what: "purchase limit".into(),
                        quantity: 0,
                        max: u32::MAX.into(),
                    });
                }
                let state = self.store_mut(store)?;
                if *currency != state.currency {
                    return Err(KernelError::CurrencyMismatch {
                        expected: state.currency.to_string(),
                        got: currency.to_string(),
                    });
                }
                state.products.insert(product.sku.clone(), product.clone());
                state.revision += 1;
                Ok(Outcome::ProductUpserted)
            }
            Command::UpsertWarehouse { store, warehouse } => {
                check_text("warehouse name", &warehouse.name)?;
                warehouse.location.validate()?;
                let state = self.store_mut(store)?;
                state.warehouses.insert(warehouse.id.clone(), warehouse.clone());
                state.revision += 1;
                Ok(Outcome::WarehouseUpserted)
            }
            Command::ReceiveStock { store, sku, warehouse, quantity } => {
                let state = self.store_mut(store)?;
                check_stock_target(state, sku, warehouse)?;
                check_quantity(|| format!("stock of sku {sku}"), *quantity, STOCK_QUANTITY_MAX)?;
                let level = state.stock_level(sku, warehouse);
                if level.on_hand + quantity > STOCK_QUANTITY_MAX {
                    return Err(KernelError::InvalidQuantity {
                        what: format!("stock of sku {sku} after receiving"),
                        quantity: level.on_hand + quantity,
                        max: STOCK_QUANTITY_MAX,
                    });
                }
                let level = state.level_mut(sku, warehouse);
                level.on_hand += quantity;
                level.available += quantity;
                let level = *level;
                state.revision += 1;
                Ok(Outcome::StockChanged(level))
            }
            Command::WriteOffStock { store, sku, warehouse, quantity } => {
                let state = self.store_mut(store)?;
                check_stock_target(state, sku, warehouse)?;
                check_quantity(
                    || format!("write-off of sku {sku}"),
                    *quantity,
                    STOCK_QUANTITY_MAX,
                )?;
                let available = state.stock_level(sku, warehouse).available;
                if *quantity > available {
                    return Err(KernelError::WriteOffExceedsAvailable {
                        sku: sku.to_string(),
                        requested: *quantity,
                        available,
                    });
                }
                let level = state.level_mut(sku, warehouse);
                level.on_hand -= quantity;
                level.available -= quantity;
                let level = *level;
                state.revision += 1;
                Ok(Outcome::StockChanged(level))
            }
            Command::ConfigurePlugin { store, plugin, config_json, settings } => {
                if config_json.as_ref().is_some_and(|json| json.len() > PLUGIN_CONFIG_LEN_MAX) {
                    return Err(KernelError::ConfigTooLarge { limit: PLUGIN_CONFIG_LEN_MAX });
                }
                if let Some(pin) = &settings.version_pin {
                    check_text("plugin version", pin)?;
                }
                let state = self.store_mut(store)?;
                if config_json.is_some()
                    && !state.plugin_configs.contains_key(plugin)
                    && state.plugin_configs.len() >= PLUGINS_PER_STORE_MAX
                {
                    return Err(KernelError::TooMany {
                        what: "plugins configured for one store",
                        limit: PLUGINS_PER_STORE_MAX,
                    });
                }
                state.revision += 1;
                match config_json {
                    Some(json) => {
                        let config = PluginConfig {
                            json: json.clone(),
                            revision: state.revision,
                            settings: settings.clone(),
                        };
                        state.plugin_configs.insert(plugin.clone(), config);
                    }
                    None => {
                        state.plugin_configs.remove(plugin);
                    }
                }
                Ok(Outcome::PluginConfigured)
            }
            Command::SetPricingRules { store, rules } => {
                if rules.discount_cap_percent.is_some_and(|percent| percent > 100) {
                    return Err(KernelError::InvalidPricingRules(
                        "discount_cap_percent must be between 0 and 100".into(),
                    ));
                }
                if rules.discount_cap_minor.is_some_and(|cap| cap < 0) {
                    return Err(KernelError::InvalidPricingRules(
                        "discount_cap_minor must not be negative".into(),
                    ));
                }
                let state = self.store_mut(store)?;
                state.revision += 1;
                state.pricing_rules = *rules;
                Ok(Outcome::PricingRulesSet)
            }
            Command::RecordConsumed { store, plugin, through_sequence, state_writes } => {
                let state = self.store_mut(store)?;
                let consumed = state.consumed_through(plugin);
                if *through_sequence <= consumed {
                    return Err(KernelError::AlreadyConsumed {
                        plugin: plugin.clone(),
                        through_sequence: *through_sequence,
                        consumed,
                    });
                }
                state.validate_state_writes(state_writes)?;
                state.apply_state_writes(state_writes);
                state.consumed_through.insert(plugin.clone(), *through_sequence);
                Ok(Outcome::ConsumedRecorded)
            }
            Command::PlaceOrder(place) => self.place_order(place),
            Command::PayOrder { store, order, at_ms } => {
                let outcome = self.transition(store, *order, *at_ms, "paid", |status| {
                    (status == OrderStatus::Reserved).then_some(OrderStatus::Paid)
                })?;
                let state = self.store_mut(store)?;
                if let Some(paid) = state.orders.get(*order) {
                    let plan = paid.shipment_plan.clone();
                    state.floor.create_tasks(*order, &plan, *at_ms);
                }
                Ok(outcome)
            }
            Command::CancelOrder { store, order, at_ms } => {
                let outcome = self.transition(store, *order, *at_ms, "cancelled", |status| {
                    matches!(status, OrderStatus::Reserved | OrderStatus::Paid)
                        .then_some(OrderStatus::Cancelled)
                })?;
                self.store_mut(store)?.floor.drop_order_tasks(*order);
                Ok(outcome)
            }
            Command::FulfilOrder { store, order, at_ms } => {
                let outcome = self.transition(store, *order, *at_ms, "fulfilled", |status| {
                    matches!(status, OrderStatus::Paid | OrderStatus::Picked | OrderStatus::Packed)
                        .then_some(OrderStatus::Fulfilled)
                })?;
                self.store_mut(store)?.floor.drop_order_tasks(*order);
                Ok(outcome)
            }
            Command::RegisterDevice { store, device, at_ms } => {
                let state = self.store_mut(store)?;
                if !state.warehouses.contains_key(&device.warehouse) {
                    return Err(KernelError::UnknownWarehouse(device.warehouse.to_string()));
                }
                // A device is driven by a plugin the merchant switched on
                // for the store, like every other plugin.
                if !state.plugin_configs.contains_key(&device.driver) {
                    return Err(KernelError::InvalidDevice(format!(
                        "the store has not enabled the driver plugin {}",
                        device.driver
                    )));
                }
                let created = state.floor.register(device, *at_ms)?;
                state.revision += 1;
                Ok(Outcome::DeviceRegistered { created })
            }
            Command::RemoveDevice { store, device, at_ms } => {
                let held = self.store_mut(store)?.floor.remove(device, *at_ms)?;
                self.after_held(store, held, *at_ms)
            }
            Command::SetWarehouseLayout { store, warehouse, layout } => {
                let state = self.store_mut(store)?;
                if !state.warehouses.contains_key(warehouse) {
                    return Err(KernelError::UnknownWarehouse(warehouse.to_string()));
                }
                state.floor.set_layout(warehouse, layout)?;
                state.revision += 1;
                Ok(Outcome::LayoutSet)
            }
            Command::DeviceConnection { store, device, online, at_ms } => {
                let held = self.store_mut(store)?.floor.set_online(device, *online, *at_ms)?;
                self.after_held(store, held, *at_ms)
            }
            Command::QuarantineDevice { store, device, reason, at_ms } => {
                let held = self.store_mut(store)?.floor.set_quarantine(
                    device,
                    reason.as_deref(),
                    *at_ms,
                )?;
                self.after_held(store, held, *at_ms)
            }
            Command::AssignTask { store, task, device, at_ms } => {
                let state = self.store_mut(store)?;
                let attempt = state.floor.assign(*task, device, *at_ms)?;
                state.revision += 1;
                Ok(Outcome::TaskAssigned { task: *task, attempt })
            }
            Command::ProgressTask { store, task, attempt, step, at_ms } => {
                // A task exists only while its order is paid and not yet
                // shipped (cancelling or fulfilling by hand drops it), so
                // the milestone below always finds its order able to move.
                let state = self.store_mut(store)?;
                let (order, milestone) = state.floor.progress(*task, *attempt, *step, *at_ms)?;
                state.revision += 1;
                let order_status = self.reach_milestone(store, order, milestone, *at_ms)?;
                Ok(Outcome::TaskProgressed { task: *task, order, order_status })
            }
            Command::ReleaseTask { store, task, attempt, reason, at_ms } => {
                let state = self.store_mut(store)?;
                let status = state.floor.release(*task, *attempt, reason, *at_ms)?;
                state.revision += 1;
                Ok(Outcome::TaskReleased { task: *task, status })
            }
            Command::StopZone { store, warehouse, zone, stopped, at_ms: _ } => {
                let state = self.store_mut(store)?;
                if !state.warehouses.contains_key(warehouse) {
                    return Err(KernelError::UnknownWarehouse(warehouse.to_string()));
                }
                state.floor.set_zone_stopped(warehouse, zone, *stopped)?;
                state.revision += 1;
                Ok(Outcome::ZoneSet)
            }
        }
    }

    /// The outcome of a device change that may have ended the attempt of
    /// the task it held.
    fn after_held(
        &mut self,
        store: &StoreId,
        held: Option<HeldTask>,
        at_ms: u64,
    ) -> Result<Outcome, KernelError> {
        self.store_mut(store)?.revision += 1;
        Ok(match held {
            None => Outcome::DeviceUpdated { released: None, finished: None, order_moved: None },
            Some(HeldTask::Released(task)) => {
                Outcome::DeviceUpdated { released: Some(task), finished: None, order_moved: None }
            }
            Some(HeldTask::Finished { task, order, milestone }) => {
                let status = self.reach_milestone(store, order, milestone, at_ms)?;
                Outcome::DeviceUpdated {
                    released: None,
                    finished: Some(task),
                    order_moved: status.map(|status| (order, status)),
                }
            }
        })
    }

    /// Moves an order forward to the status of `milestone`, through every
    /// status between; never backwards (a task re-picked after its device
    /// was lost reaches `Picked` a second time). Returns the new status if
    /// it changed.
    fn reach_milestone(
        &mut self,
        store: &StoreId,
        order: OrderNumber,
        milestone: Option<OrderMilestone>,
        at_ms: u64,
    ) -> Result<Option<OrderStatus>, KernelError> {
        let Some(milestone) = milestone else { return Ok(None) };
        let target = match milestone {
            OrderMilestone::Picked => OrderStatus::Picked,
            OrderMilestone::Packed => OrderStatus::Packed,
            OrderMilestone::Shipped => OrderStatus::Fulfilled,
        };
        let rank = |status: OrderStatus| match status {
            OrderStatus::Reserved => 0,
            OrderStatus::Paid => 1,
            OrderStatus::Picked => 2,
            OrderStatus::Packed => 3,
            OrderStatus::Fulfilled => 4,
            OrderStatus::Cancelled => 5,
        };
        let mut changed = None;
        loop {
            let current =
                self.store_ref(store)?.order(order).ok_or(KernelError::UnknownOrder(order))?.status;
            if rank(current) >= rank(target) {
                return Ok(changed);
            }
            let next = match current {
                OrderStatus::Paid => OrderStatus::Picked,
                OrderStatus::Picked => OrderStatus::Packed,
                OrderStatus::Packed => OrderStatus::Fulfilled,
                // Only paid orders have tasks.
                OrderStatus::Reserved | OrderStatus::Fulfilled | OrderStatus::Cancelled => {
                    return Ok(changed);
                }
            };
            self.transition(store, order, at_ms, "moved by its robot tasks", |status| {
                (status == current).then_some(next)
            })?;
            changed = Some(next);
        }
    }

    fn place_order(&mut self, place: &PlaceOrder) -> Result<Outcome, KernelError> {
        self.place_owned_order(Box::new(place.clone()), |_| {}).map_err(|(error, _)| error)
    }

    /// Places an order taken by value: checked as [`Shard::apply`] checks
    /// it, handed to `accepted` (a shard writer encodes it for its journal
    /// there), then moved into the store, so its request, plan and
    /// adjustments are never copied. A refused order comes back with the
    /// error; then nothing changed and `accepted` was not called.
    pub fn place_owned_order(
        &mut self,
        place: Box<PlaceOrder>,
        accepted: impl FnOnce(&PlaceOrder),
    ) -> Result<Outcome, (KernelError, Box<PlaceOrder>)> {
        let checked =
            self.store_mut(&place.store).and_then(|state| Ok((state.check_order(&place)?, state)));
        match checked {
            Ok((checked, state)) => {
                accepted(&place);
                Ok(state.commit_order(place, checked))
            }
            Err(error) => Err((error, place)),
        }
    }

    /// Moves an order to the status `next` gives for its current one,
    /// moving its units between the stock buckets to match.
    fn transition(
        &mut self,
        store: &StoreId,
        number: OrderNumber,
        at_ms: u64,
        action: &'static str,
        next: impl Fn(OrderStatus) -> Option<OrderStatus>,
    ) -> Result<Outcome, KernelError> {
        let state = self.store_mut(store)?;
        let order = state.order_mut(number)?;
        let from = order.status;
        let to = next(from).ok_or(KernelError::InvalidTransition {
            order: number,
            status: from,
            action,
        })?;
        order.status = to;
        order.updated_at_ms = at_ms;
        let shipments = order.shipment_plan.shipments.clone();
        let customer = order.request.customer.id.clone();
        let limited_units =
            if to == OrderStatus::Cancelled { order.limited_units.clone() } else { Box::default() };
        for shipment in &shipments {
            for line in &shipment.lines {
                let units = u64::from(line.quantity);
                let level = state.level_mut(&line.sku, &shipment.warehouse);
                match (from, to) {
                    (OrderStatus::Reserved, OrderStatus::Paid) => {
                        level.reserved -= units;
                        level.sold += units;
                    }
                    (OrderStatus::Reserved, OrderStatus::Cancelled) => {
                        level.reserved -= units;
                        level.available += units;
                    }
                    (OrderStatus::Paid, OrderStatus::Cancelled) => {
                        level.sold -= units;
                        level.available += units;
                    }
                    (OrderStatus::Paid, OrderStatus::Picked)
                    | (OrderStatus::Picked, OrderStatus::Packed) => {}
                    (
                        OrderStatus::Paid | OrderStatus::Picked | OrderStatus::Packed,
                        OrderStatus::Fulfilled,
                    ) => {
                        level.sold -= units;
                        level.on_hand -= units;
                        level.shipped += units;
                    }
                    _ => unreachable!("transition {from:?} -> {to:?} is not offered"),
                }
                debug_assert!(level.is_balanced());
            }
        }
        if to == OrderStatus::Cancelled {
            state.indexes.remove_live_order(&customer, &limited_units);
        }
        state.revision += 1;
        Ok(Outcome::OrderStatusChanged { order: number, status: to })
    }

    /// Checks every invariant, returning the first violation found:
    /// each stock level balances, reserved and sold units match the live
    /// orders exactly, and the idempotency keys, purchase-limit holdings
    /// and per-customer counts are those the orders give.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (store_id, state) in &self.stores {
            let mut reserved: BTreeMap<(&Sku, &WarehouseId), u64> = BTreeMap::new();
            let mut sold: BTreeMap<(&Sku, &WarehouseId), u64> = BTreeMap::new();
            for order in state.orders.iter() {
                let bucket = match order.status {
                    OrderStatus::Reserved => Some(&mut reserved),
                    OrderStatus::Paid | OrderStatus::Picked | OrderStatus::Packed => {
                        Some(&mut sold)
                    }
                    OrderStatus::Fulfilled | OrderStatus::Cancelled => None,
                };
                if let Some(bucket) = bucket {
                    for shipment in &order.shipment_plan.shipments {
                        for line in &shipment.lines {
                            *bucket.entry((&line.sku, &shipment.warehouse)).or_default() +=
                                u64::from(line.quantity);
                        }
                    }
                }
            }
            for (sku, levels) in &state.stock {
                for (warehouse, level) in levels {
                    if !level.is_balanced() {
                        return Err(format!(
                            "store {store_id} sku {sku} warehouse {warehouse}: on hand {} != available {} + reserved {} + sold {}",
                            level.on_hand, level.available, level.reserved, level.sold
                        ));
                    }
                    let expected_reserved = reserved.remove(&(sku, warehouse)).unwrap_or(0);
                    let expected_sold = sold.remove(&(sku, warehouse)).unwrap_or(0);
                    if level.reserved != expected_reserved || level.sold != expected_sold {
                        return Err(format!(
                            "store {store_id} sku {sku} warehouse {warehouse}: reserved {} sold {} but live orders hold {expected_reserved} and {expected_sold}",
                            level.reserved, level.sold
                        ));
                    }
                }
            }
            if let Some(((sku, warehouse), units)) = reserved.into_iter().chain(sold).next() {
                return Err(format!(
                    "store {store_id}: orders hold {units} units of sku {sku} in warehouse {warehouse}, which has no stock level"
                ));
            }
            let derived = OrderIndexes::derive(&state.orders);
            if derived.idempotency != state.indexes.idempotency {
                return Err(format!("store {store_id}: idempotency keys differ from the orders'"));
            }
            if derived.limit_holdings != state.indexes.limit_holdings {
                return Err(format!(
                    "store {store_id}: purchase-limit holdings differ from live orders"
                ));
            }
            if derived.customer_orders != state.indexes.customer_orders {
                return Err(format!(
                    "store {store_id}: per-customer order counts differ from live orders"
                ));
            }
            state
                .floor
                .check_invariants()
                .map_err(|problem| format!("store {store_id}: {problem}"))?;
            // Cancelling or fulfilling an order drops its tasks: a task
            // always serves an order that is paid and not yet shipped.
            for task in state.floor.tasks().values() {
                let status = state.orders.get(task.order).map(|order| order.status);
                if !matches!(
                    status,
                    Some(OrderStatus::Paid | OrderStatus::Picked | OrderStatus::Packed)
                ) {
                    return Err(format!(
                        "store {store_id}: task {} serves order {}, which is {status:?}",
                        task.id, task.order
                    ));
                }
            }
            for (id, order) in state.orders.iter().enumerate() {
                if order.number != id as OrderNumber + 1 {
                    return Err(format!(
                        "store {store_id}: order at index {id} has number {}",
                        order.number
                    ));
                }
            }
        }
        Ok(())
    }

    /// A SHA-256 digest of the whole state: equal digests, equal states.
    pub fn digest(&self) -> Digest {
        Sha256::digest(self.encode()).into()
    }

    /// A copy of the state for a snapshot thread to encode, taken without
    /// copying the look-ups derived from the orders: the orders themselves
    /// are shared in chunks, so the copy costs about a pointer per chunk
    /// and per store, whatever the number of orders.
    pub fn snapshot_copy(&self) -> SnapshotCopy {
        let stores = self
            .stores
            .iter()
            .map(|(id, state)| (id.clone(), state.copy_without_indexes()))
            .collect();
        SnapshotCopy(Shard { stores })
    }

    /// The state encoded for a snapshot.
    pub fn encode(&self) -> Vec<u8> {
        // Every type here encodes into a Vec; a failure is a bug that must
        // not be written to disk as an empty snapshot.
        postcard::to_allocvec(self).expect("the kernel state encodes")
    }

    /// The state decoded from a snapshot.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// A copy of a shard's state taken by [`Shard::snapshot_copy`].
pub struct SnapshotCopy(Shard);

impl SnapshotCopy {
    /// Writes the snapshot to `out` as it is encoded, without holding it all
    /// in memory; returns `out`. The derived look-ups are rebuilt from the
    /// orders first, so the bytes are those [`Shard::encode`] gives for the
    /// original.
    pub fn write_to<W: std::io::Write>(mut self, out: W) -> Result<W, postcard::Error> {
        for state in self.0.stores.values_mut() {
            state.indexes = OrderIndexes::derive(&state.orders);
        }
        postcard::to_io(&self.0, out)
    }
}

fn check_stock_target(
    state: &StoreState,
    sku: &Sku,
    warehouse: &WarehouseId,
) -> Result<(), KernelError> {
    if !state.products.contains_key(sku) {
        return Err(KernelError::UnknownSku(sku.to_string()));
    }
    if !state.warehouses.contains_key(warehouse) {
        return Err(KernelError::UnknownWarehouse(warehouse.to_string()));
    }
    Ok(())
}
