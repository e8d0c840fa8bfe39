//! The JSON of the API: request bodies (strict: unknown fields are refused)
//! and responses, with their OpenAPI schemas, and the conversions to and
//! from the kernel's types.
//!
//! Money is always `{"amount_minor": 599900, "currency": "CNY"}`: integer
//! minor units of an ISO-4217 currency, never a float. Every timestamp is
//! milliseconds since the Unix epoch, named `..._at_ms`.

use bazaar_kernel::StoreState;
use bazaar_kernel::model::{
    self as kernel, CustomerId, LineRequest, OrderRequest, Router, Sku, StockLevel as KernelLevel,
    StoreId,
};
use bazaar_kernel::money::Currency;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Most items one page of a list returns: a hundred orders of a few KiB
/// each keep a response well under a megabyte and the shard read that
/// copies them short, since it runs on the shard's writer thread.
pub const PAGE_LIMIT_MAX: u32 = 100;
/// Items a page returns when the client does not say: half a full page.
pub const PAGE_LIMIT_DEFAULT: u32 = 50;

/// An amount of money.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount_minor": 599900, "currency": "CNY"}))]
pub struct Money {
    /// Integer count of the currency's minor unit (fen, cents).
    pub amount_minor: i64,
    /// ISO-4217 code, e.g. `CNY`.
    pub currency: String,
}

impl Money {
    /// `amount_minor` of `currency`.
    pub fn of(amount_minor: i64, currency: Currency) -> Self {
        Self { amount_minor, currency: currency.to_string() }
    }
}

fn parse_currency(field: &str, code: &str) -> Result<Currency, ApiError> {
    Currency::parse(code).map_err(|error| ApiError::from(error).at_field(field))
}

fn parse_id<T>(
    field: impl Into<String>,
    parse: impl FnOnce(String) -> Result<T, bazaar_kernel::KernelError>,
    text: String,
) -> Result<T, ApiError> {
    parse(text).map_err(|error| ApiError::from(error).at_field(field))
}

/// A page request: items after the cursor `after`, at most `limit`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Return items after this one (the `next_after` of the previous page).
    pub after: Option<String>,
    /// Most items to return, 1 to 100 (default 50).
    pub limit: Option<u32>,
}

impl PageQuery {
    /// The checked limit.
    pub fn limit(&self) -> Result<usize, ApiError> {
        let limit = self.limit.unwrap_or(PAGE_LIMIT_DEFAULT);
        if !(1..=PAGE_LIMIT_MAX).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("limit must be 1 to {PAGE_LIMIT_MAX}, got {limit}"),
            ));
        }
        Ok(limit as usize)
    }
}

// ----- health -----

/// The server is up.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The server's version.
    pub version: String,
}

/// Whether the node takes work.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Ready {
    /// True when every shard answered.
    pub ready: bool,
    /// Shards of the node.
    pub shards: u32,
}

// ----- tokens -----

/// A token to issue.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Its role.
    pub role: crate::auth::Role,
    /// Stores of a merchant (1 to 100) or checkout (exactly 1) token.
    #[serde(default)]
    pub stores: Vec<String>,
    /// Plugins of a partner token (1 to 100).
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Who or what it is for (at most 128 bytes).
    #[serde(default)]
    pub label: String,
}

/// A token, without its secret.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Token {
    /// Identifier, for revoking.
    pub id: String,
    /// Its role.
    pub role: crate::auth::Role,
    /// Stores it is scoped to.
    pub stores: Vec<String>,
    /// Plugins it is scoped to.
    pub plugins: Vec<String>,
    /// Who or what it is for.
    pub label: String,
    /// When it was issued.
    pub created_at_ms: u64,
}

impl From<&crate::auth::TokenRecord> for Token {
    fn from(record: &crate::auth::TokenRecord) -> Self {
        Self {
            id: record.id.clone(),
            role: record.role,
            stores: record.stores.iter().map(ToString::to_string).collect(),
            plugins: record.plugins.iter().map(ToString::to_string).collect(),
            label: record.label.clone(),
            created_at_ms: record.created_at_ms,
        }
    }
}

/// A newly issued token: the secret is shown this once and never stored.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    /// The bearer secret: send it as `Authorization: Bearer <secret>`.
    pub secret: String,
    /// The token.
    pub token: Token,
}

/// Every token.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// Oldest first.
    pub tokens: Vec<Token>,
}

// ----- stores -----

/// A store to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStore {
    /// Identifier: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
    pub id: String,
    /// Display name (at most 256 bytes).
    pub name: String,
    /// ISO-4217 currency of every price in the store; fixed for its life.
    pub currency: String,
}

impl CreateStore {
    /// The kernel command.
    pub fn into_command(self) -> Result<bazaar_kernel::Command, ApiError> {
        Ok(bazaar_kernel::Command::CreateStore {
            store: parse_id("id", StoreId::new, self.id)?,
            name: self.name,
            currency: parse_currency("currency", &self.currency)?,
        })
    }
}

/// A plugin a store has configured.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ConfiguredPlugin {
    /// The plugin.
    pub plugin: String,
    /// The store revision at which its configuration was last set.
    pub revision: u64,
}

/// A store.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Store {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Currency of every price.
    pub currency: String,
    /// Changes applied to the store so far.
    pub revision: u64,
    /// Products in the catalogue.
    pub products: usize,
    /// Warehouses.
    pub warehouses: usize,
    /// Orders ever placed.
    pub orders: usize,
    /// Plugins configured, by id.
    pub plugins: Vec<ConfiguredPlugin>,
}

impl Store {
    /// The view of a kernel store.
    pub fn of(id: &StoreId, state: &StoreState) -> Self {
        Self {
            id: id.to_string(),
            name: state.name().to_string(),
            currency: state.currency().to_string(),
            revision: state.revision(),
            products: state.products().len(),
            warehouses: state.warehouses().len(),
            orders: state.orders().len(),
            plugins: state
                .plugin_configs()
                .iter()
                .map(|(plugin, config)| ConfiguredPlugin {
                    plugin: plugin.to_string(),
                    revision: config.revision,
                })
                .collect(),
        }
    }
}

/// A page of stores.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct StoreList {
    /// Stores in id order.
    pub stores: Vec<Store>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
}

// ----- catalogue -----

/// A product to create or replace.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Display title (at most 256 bytes).
    pub title: String,
    /// Catalogue price of one unit, in the store's currency.
    pub price: Money,
    /// For flash-sale products: most units one customer may hold across
    /// orders that are not cancelled.
    #[serde(default)]
    pub purchase_limit_per_customer: Option<u32>,
}

impl ProductInput {
    /// The kernel command for `sku` in `store`.
    pub fn into_command(
        self,
        store: StoreId,
        sku: Sku,
    ) -> Result<bazaar_kernel::Command, ApiError> {
        Ok(bazaar_kernel::Command::UpsertProduct {
            store,
            currency: parse_currency("price.currency", &self.price.currency)?,
            product: kernel::Product {
                sku,
                title: self.title,
                unit_price_minor: self.price.amount_minor,
                purchase_limit_per_customer: self.purchase_limit_per_customer,
            },
        })
    }
}

/// A product of the catalogue.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// Its SKU.
    pub sku: String,
    /// Display title.
    pub title: String,
    /// Catalogue price of one unit.
    pub price: Money,
    /// Most units one customer may hold, for flash-sale products.
    pub purchase_limit_per_customer: Option<u32>,
}

impl Product {
    /// The view of a kernel product.
    pub fn of(product: &kernel::Product, currency: Currency) -> Self {
        Self {
            sku: product.sku.to_string(),
            title: product.title.clone(),
            price: Money::of(product.unit_price_minor, currency),
            purchase_limit_per_customer: product.purchase_limit_per_customer,
        }
    }
}

/// A page of products.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ProductList {
    /// Products in SKU order.
    pub products: Vec<Product>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
}

/// A point, in integer micro-degrees.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Coordinates {
    /// Latitude, -90,000,000 to 90,000,000.
    pub latitude_micro: i32,
    /// Longitude, -180,000,000 to 180,000,000.
    pub longitude_micro: i32,
}

impl From<Coordinates> for kernel::Coordinates {
    fn from(point: Coordinates) -> Self {
        Self { latitude_micro: point.latitude_micro, longitude_micro: point.longitude_micro }
    }
}

impl From<kernel::Coordinates> for Coordinates {
    fn from(point: kernel::Coordinates) -> Self {
        Self { latitude_micro: point.latitude_micro, longitude_micro: point.longitude_micro }
    }
}

/// A warehouse to create or replace.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarehouseInput {
    /// Display name.
    pub name: String,
    /// Where it is, for routing.
    pub location: Coordinates,
}

/// A warehouse.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Warehouse {
    /// Identifier, unique in its store.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Where it is.
    pub location: Coordinates,
}

impl From<&kernel::Warehouse> for Warehouse {
    fn from(warehouse: &kernel::Warehouse) -> Self {
        Self {
            id: warehouse.id.to_string(),
            name: warehouse.name.clone(),
            location: warehouse.location.into(),
        }
    }
}

/// A page of warehouses.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct WarehouseList {
    /// Warehouses in id order.
    pub warehouses: Vec<Warehouse>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
}

// ----- stock -----

/// Units arriving in, or written off from, a warehouse.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockMovement {
    /// The SKU.
    pub sku: String,
    /// The warehouse.
    pub warehouse: String,
    /// Units, at least 1.
    pub quantity: u64,
}

/// Stock of one SKU in one warehouse. `on_hand = available + reserved +
/// sold`; `shipped` counts units that have left.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct WarehouseStock {
    /// The warehouse.
    pub warehouse: String,
    /// Units physically there.
    pub on_hand: u64,
    /// Units free to order.
    pub available: u64,
    /// Units held by unpaid orders.
    pub reserved: u64,
    /// Units paid for, waiting to ship.
    pub sold: u64,
    /// Units shipped.
    pub shipped: u64,
}

/// Stock of one SKU summed over warehouses.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct StockTotals {
    /// Units physically in all warehouses.
    pub on_hand: u64,
    /// Units free to order.
    pub available: u64,
    /// Units held by unpaid orders.
    pub reserved: u64,
    /// Units paid for, waiting to ship.
    pub sold: u64,
    /// Units shipped.
    pub shipped: u64,
}

/// Stock of one SKU.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct SkuStock {
    /// The SKU.
    pub sku: String,
    /// Sums over all warehouses.
    pub totals: StockTotals,
    /// Per warehouse, in id order.
    pub warehouses: Vec<WarehouseStock>,
}

impl SkuStock {
    /// The stock of `sku` in `state` (zero when never stocked).
    pub fn of(sku: &Sku, state: &StoreState) -> Self {
        let mut totals = StockTotals::default();
        let mut warehouses = Vec::new();
        for (warehouse, level) in state.stock().get(sku).into_iter().flatten() {
            let KernelLevel { on_hand, available, reserved, sold, shipped } = *level;
            // Each level is bounded by the kernel, but a store may have
            // many warehouses: the sum saturates rather than wrap.
            totals.on_hand = totals.on_hand.saturating_add(on_hand);
            totals.available = totals.available.saturating_add(available);
            totals.reserved = totals.reserved.saturating_add(reserved);
            totals.sold = totals.sold.saturating_add(sold);
            totals.shipped = totals.shipped.saturating_add(shipped);
            warehouses.push(WarehouseStock {
                warehouse: warehouse.to_string(),
                on_hand,
                available,
                reserved,
                sold,
                shipped,
            });
        }
        Self { sku: sku.to_string(), totals, warehouses }
    }
}

/// A page of stock levels.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct StockList {
    /// SKUs of the catalogue in SKU order, with their stock.
    pub stock: Vec<SkuStock>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
}

// ----- plugins -----

/// A plugin and version.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginRef {
    /// The plugin.
    pub id: String,
    /// Its semantic version.
    pub version: String,
}

impl From<&kernel::PluginRef> for PluginRef {
    fn from(plugin: &kernel::PluginRef) -> Self {
        Self { id: plugin.id.to_string(), version: plugin.version.clone() }
    }
}

// ----- orders -----

/// A customer's segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// First order.
    NewCustomer,
    /// Returning customer.
    #[default]
    Regular,
    /// Loyalty programme member.
    Vip,
    /// Merchant employee.
    Staff,
}

impl From<Segment> for kernel::CustomerSegment {
    fn from(segment: Segment) -> Self {
        match segment {
            Segment::NewCustomer => Self::NewCustomer,
            Segment::Regular => Self::Regular,
            Segment::Vip => Self::Vip,
            Segment::Staff => Self::Staff,
        }
    }
}

impl From<kernel::CustomerSegment> for Segment {
    fn from(segment: kernel::CustomerSegment) -> Self {
        match segment {
            kernel::CustomerSegment::NewCustomer => Self::NewCustomer,
            kernel::CustomerSegment::Regular => Self::Regular,
            kernel::CustomerSegment::Vip => Self::Vip,
            kernel::CustomerSegment::Staff => Self::Staff,
        }
    }
}

/// The buyer.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// The store's identifier of the customer.
    pub id: String,
    /// Segment (default `regular`).
    #[serde(default)]
    pub segment: Segment,
}

/// One requested line.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    /// The SKU.
    pub sku: String,
    /// Units, 1 to 10,000.
    pub quantity: u32,
}

/// A delivery address.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// ISO-3166 alpha-2 country code.
    pub country: String,
    /// Province, state or region.
    #[serde(default)]
    pub region: String,
    /// City.
    pub city: String,
    /// Street and house.
    pub street: String,
    /// Postal code.
    #[serde(default)]
    pub postal_code: String,
    /// Where it is, for routing.
    pub location: Coordinates,
}

impl From<Address> for kernel::Address {
    fn from(address: Address) -> Self {
        Self {
            country: address.country,
            region: address.region,
            city: address.city,
            street: address.street,
            postal_code: address.postal_code,
            location: address.location.into(),
        }
    }
}

impl From<&kernel::Address> for Address {
    fn from(address: &kernel::Address) -> Self {
        Self {
            country: address.country.clone(),
            region: address.region.clone(),
            city: address.city.clone(),
            street: address.street.clone(),
            postal_code: address.postal_code.clone(),
            location: address.location.into(),
        }
    }
}

/// An order to place, or a cart to price.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    /// The buyer.
    pub customer: Customer,
    /// SKUs and quantities (1 to 100 lines, each SKU once).
    pub lines: Vec<LineInput>,
    /// Coupon codes entered (at most 8).
    #[serde(default)]
    pub coupon_codes: Vec<String>,
    /// Where to ship.
    pub shipping_address: Address,
    /// The currency the client shows prices in; when given it must be the
    /// store's, so a storefront never charges in a currency it did not show.
    #[serde(default)]
    pub currency: Option<String>,
}

impl OrderInput {
    /// The currency the client expects, checked as a code.
    pub fn expected_currency(&self) -> Result<Option<Currency>, ApiError> {
        self.currency.as_deref().map(|code| parse_currency("currency", code)).transpose()
    }

    /// The kernel request.
    pub fn into_request(
        self,
        idempotency_key: Option<kernel::IdempotencyKey>,
    ) -> Result<OrderRequest, ApiError> {
        let customer = kernel::Customer {
            id: parse_id("customer.id", CustomerId::new, self.customer.id)?,
            segment: self.customer.segment.into(),
        };
        let lines = self
            .lines
            .into_iter()
            .enumerate()
            .map(|(index, line)| {
                // The field's name is built only for an error: every line of
                // every order passes through here.
                let sku = Sku::new(line.sku).map_err(|error| {
                    ApiError::from(error).at_field(format!("lines[{index}].sku"))
                })?;
                Ok(LineRequest { sku, quantity: line.quantity })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(OrderRequest {
            idempotency_key,
            customer,
            lines,
            coupon_codes: self.coupon_codes,
            shipping_address: self.shipping_address.into(),
        })
    }
}

/// The life of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Stock reserved, awaiting payment.
    Reserved,
    /// Paid; stock sold, awaiting shipment.
    Paid,
    /// Paid, and robots have picked every unit they carry for it.
    Picked,
    /// Paid, and every unit robots picked is at a pack station.
    Packed,
    /// Shipped.
    Fulfilled,
    /// Cancelled; stock released.
    Cancelled,
}

impl From<kernel::OrderStatus> for OrderStatus {
    fn from(status: kernel::OrderStatus) -> Self {
        match status {
            kernel::OrderStatus::Reserved => Self::Reserved,
            kernel::OrderStatus::Paid => Self::Paid,
            kernel::OrderStatus::Picked => Self::Picked,
            kernel::OrderStatus::Packed => Self::Packed,
            kernel::OrderStatus::Fulfilled => Self::Fulfilled,
            kernel::OrderStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// A priced line.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PricedLine {
    /// The SKU.
    pub sku: String,
    /// Units.
    pub quantity: u32,
    /// Catalogue price of one unit when the order was priced.
    pub unit_price: Money,
    /// `quantity * unit_price`, before adjustments.
    pub amount: Money,
}

fn priced_lines(lines: &[kernel::CartLine], currency: Currency) -> Vec<PricedLine> {
    lines
        .iter()
        .map(|line| PricedLine {
            sku: line.sku.to_string(),
            quantity: line.quantity,
            unit_price: Money::of(line.unit_price_minor, currency),
            amount: Money::of(
                i64::from(line.quantity).saturating_mul(line.unit_price_minor),
                currency,
            ),
        })
        .collect()
}

/// A price change made by a pricing plugin.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Adjustment {
    /// The plugin and version that made it.
    pub plugin: PluginRef,
    /// The line it applies to (index into `lines`), or none for the order.
    pub line_index: Option<u32>,
    /// The amount taken off.
    pub amount_off: Money,
    /// The rule's machine-readable code.
    pub code: String,
    /// Why, for the customer.
    pub reason: String,
}

fn adjustment(adjustment: &kernel::Adjustment, currency: Currency) -> Adjustment {
    Adjustment {
        plugin: (&adjustment.plugin).into(),
        line_index: adjustment.line_index,
        amount_off: Money::of(adjustment.amount_off_minor, currency),
        code: adjustment.code.clone(),
        reason: adjustment.reason.clone(),
    }
}

/// A plugin whose output was not used because it failed.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PluginFailure {
    /// The plugin and version.
    pub plugin: PluginRef,
    /// What went wrong.
    pub reason: String,
}

/// Units of one SKU in a shipment.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ShipmentLine {
    /// The SKU.
    pub sku: String,
    /// Units.
    pub quantity: u32,
}

/// One parcel from one warehouse.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Shipment {
    /// The warehouse it leaves from.
    pub warehouse: String,
    /// The carrier.
    pub carrier: String,
    /// Fee charged to the customer.
    pub fee: Money,
    /// Promised delivery time in hours.
    pub eta_hours: u32,
    /// What it carries.
    pub lines: Vec<ShipmentLine>,
}

/// Who planned the shipments.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RoutedBy {
    /// `plugin` or `built_in`.
    pub kind: String,
    /// The logistics plugin and version, when a plugin routed the order.
    pub plugin: Option<PluginRef>,
}

/// How an order ships.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ShipmentPlan {
    /// Who made the plan.
    pub routed_by: RoutedBy,
    /// Why the built-in router stood in for a failed logistics plugin.
    pub fallback_reason: Option<String>,
    /// The shipments; together they carry every unit exactly once.
    pub shipments: Vec<Shipment>,
}

impl ShipmentPlan {
    /// The view of a kernel plan.
    pub fn of(plan: &kernel::ShipmentPlan, currency: Currency) -> Self {
        Self {
            routed_by: match &plan.routed_by {
                Router::BuiltIn => RoutedBy { kind: "built_in".into(), plugin: None },
                Router::Plugin(plugin) => {
                    RoutedBy { kind: "plugin".into(), plugin: Some(plugin.into()) }
                }
            },
            fallback_reason: plan.fallback_reason.clone(),
            shipments: plan
                .shipments
                .iter()
                .map(|shipment| Shipment {
                    warehouse: shipment.warehouse.to_string(),
                    carrier: shipment.carrier.clone(),
                    fee: Money::of(shipment.fee_minor, currency),
                    eta_hours: shipment.eta_hours,
                    lines: shipment
                        .lines
                        .iter()
                        .map(|line| ShipmentLine {
                            sku: line.sku.to_string(),
                            quantity: line.quantity,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// An order's money.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Totals {
    /// Sum of line amounts at catalogue prices.
    pub subtotal: Money,
    /// Sum of every adjustment.
    pub discount: Money,
    /// Sum of shipment fees.
    pub shipping: Money,
    /// What the customer pays: subtotal - discount + shipping.
    pub total: Money,
}

impl Totals {
    /// The view of kernel totals.
    pub fn of(totals: &kernel::Totals, currency: Currency) -> Self {
        Self {
            subtotal: Money::of(totals.subtotal_minor, currency),
            discount: Money::of(totals.discount_minor, currency),
            shipping: Money::of(totals.shipping_minor, currency),
            total: Money::of(totals.total_minor, currency),
        }
    }
}

/// An order. Responses are written from the kernel's order by
/// `order_json`, which writes exactly what serialising this view would (a
/// test there checks it): this type is the document's schema.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// The store.
    pub store: String,
    /// Its number in the store, from 1.
    pub number: u64,
    /// Current status.
    pub status: OrderStatus,
    /// The idempotency key it was placed with.
    pub idempotency_key: Option<String>,
    /// The buyer.
    pub customer: Customer,
    /// Lines at the catalogue prices of the time of the order.
    pub lines: Vec<PricedLine>,
    /// Coupon codes entered.
    pub coupon_codes: Vec<String>,
    /// Where it ships.
    pub shipping_address: Address,
    /// Price adjustments, in the order they were applied, each with the
    /// plugin version that made it.
    pub adjustments: Vec<Adjustment>,
    /// Pricing plugins that failed on this order (their output was ignored).
    pub pricing_failures: Vec<PluginFailure>,
    /// How it ships.
    pub shipment_plan: ShipmentPlan,
    /// Its money.
    pub totals: Totals,
    /// When it was placed.
    pub placed_at_ms: u64,
    /// When its status last changed.
    pub updated_at_ms: u64,
}

impl Order {
    /// The view of a kernel order: the reference `order_json` is checked
    /// against.
    #[cfg(test)]
    pub fn of(store: &StoreId, order: &kernel::Order) -> Self {
        let currency = order.currency;
        Self {
            store: store.to_string(),
            number: order.number,
            status: order.status.into(),
            idempotency_key: order.request.idempotency_key.as_ref().map(ToString::to_string),
            customer: Customer {
                id: order.request.customer.id.to_string(),
                segment: order.request.customer.segment.into(),
            },
            lines: priced_lines(&order.lines, currency),
            coupon_codes: order.request.coupon_codes.clone(),
            shipping_address: (&order.request.shipping_address).into(),
            adjustments: order.adjustments.iter().map(|a| adjustment(a, currency)).collect(),
            pricing_failures: order
                .pricing_failures
                .iter()
                .map(|failure| PluginFailure {
                    plugin: (&failure.plugin).into(),
                    reason: failure.reason.clone(),
                })
                .collect(),
            shipment_plan: ShipmentPlan::of(&order.shipment_plan, currency),
            totals: Totals::of(&order.totals, currency),
            placed_at_ms: order.placed_at_ms,
            updated_at_ms: order.updated_at_ms,
        }
    }
}

/// A page of orders (written by `order_json`, like [`Order`]).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OrderList {
    /// Orders in number order.
    pub orders: Vec<Order>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u64>,
}

/// What one pricing plugin did to a cart.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PluginContribution {
    /// The plugin and version.
    pub plugin: PluginRef,
    /// Its adjustments (empty when it failed or found nothing to apply).
    pub adjustments: Vec<Adjustment>,
    /// The sum of its adjustments.
    pub discount: Money,
    /// Why its output was ignored, when it failed.
    pub failure: Option<String>,
}

/// A cart priced and routed by the store's plugins, without ordering.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CartPrice {
    /// The store.
    pub store: String,
    /// The store's currency.
    pub currency: String,
    /// Lines at catalogue prices.
    pub lines: Vec<PricedLine>,
    /// Each pricing plugin's contribution, in the order they ran.
    pub contributions: Vec<PluginContribution>,
    /// How the cart would ship, and who routed it.
    pub shipment_plan: ShipmentPlan,
    /// What the order would cost now.
    pub totals: Totals,
    /// When it was priced.
    pub priced_at_ms: u64,
}

impl CartPrice {
    /// The view of a node preview.
    pub fn of(store: &StoreId, preview: &bazaar_node::Preview) -> Self {
        let currency = preview.cart.currency;
        let mut contributions: Vec<PluginContribution> = Vec::new();
        for adjustment_made in &preview.outputs.adjustments {
            let view = adjustment(adjustment_made, currency);
            match contributions.iter_mut().find(|c| c.plugin.id == view.plugin.id) {
                Some(contribution) => {
                    contribution.discount.amount_minor = contribution
                        .discount
                        .amount_minor
                        .saturating_add(adjustment_made.amount_off_minor);
                    contribution.adjustments.push(view);
                }
                None => contributions.push(PluginContribution {
                    plugin: view.plugin.clone(),
                    discount: Money::of(adjustment_made.amount_off_minor, currency),
                    adjustments: vec![view],
                    failure: None,
                }),
            }
        }
        for failure in &preview.outputs.pricing_failures {
            contributions.push(PluginContribution {
                plugin: (&failure.plugin).into(),
                adjustments: Vec::new(),
                discount: Money::of(0, currency),
                failure: Some(failure.reason.clone()),
            });
        }
        Self {
            store: store.to_string(),
            currency: currency.to_string(),
            lines: priced_lines(&preview.cart.lines, currency),
            contributions,
            shipment_plan: ShipmentPlan::of(&preview.outputs.shipment_plan, currency),
            totals: Totals::of(&preview.totals, currency),
            priced_at_ms: preview.cart.placed_at_ms,
        }
    }
}
