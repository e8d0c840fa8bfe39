//! The kernel's nouns: identifiers, catalogue entries, warehouses, stock
//! levels, carts and orders. Every identifier a client controls has a named
//! length limit and a restricted alphabet, checked when it enters.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::KernelError;
use crate::money::Currency;

/// Longest identifier (store, SKU, warehouse, customer, plugin): long enough
/// for UUIDs and merchant SKU schemes, short enough to keep keys cheap.
pub const ID_LEN_MAX: usize = 64;
/// Longest idempotency key: a UUID or a client's request id fits easily.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;
/// Longest free text (product title, store name, address field).
pub const TEXT_LEN_MAX: usize = 256;
/// Most lines in one order: a real basket is far smaller; this bounds the
/// work and the journal bytes one request can cause.
pub const ORDER_LINES_MAX: usize = 100;
/// Most units of one SKU in one order line.
pub const LINE_QUANTITY_MAX: u32 = 10_000;
/// Most coupon codes on one order.
pub const COUPON_CODES_MAX: usize = 8;
/// Most units one warehouse may hold of one SKU: bounds every sum of levels.
pub const STOCK_QUANTITY_MAX: u64 = 1_000_000_000_000;

/// A newtype over shared text: a clone is a reference count, not a copy;
/// it prints, compares and encodes as the plain string.
macro_rules! shared_text {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(SharedTextVisitor).map(Self)
            }
        }
    };
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        shared_text!(
            $(#[$doc])*
            ///
            /// The text is shared: a clone is a reference count, not a copy, so
            /// an order's lines, shipments, events and journal command hold one
            /// allocation per identifier between them.
            $name
        );

        impl $name {
            /// Checks the text: 1 to [`ID_LEN_MAX`] characters of
            /// `A-Z a-z 0-9 . _ -`.
            pub fn new(text: impl AsRef<str>) -> Result<Self, KernelError> {
                let text = text.as_ref();
                check_identifier($what, text)?;
                Ok(Self(Arc::from(text)))
            }
        }
    };
}

shared_text!(
    /// A client's idempotency key. Its text is shared, as an identifier's
    /// is: the order's request and the store's index of keys hold one
    /// allocation between them, not a copy each. Its length and characters
    /// are checked with the rest of the request.
    IdempotencyKey
);

impl From<&str> for IdempotencyKey {
    fn from(text: &str) -> Self {
        Self(Arc::from(text))
    }
}

impl From<String> for IdempotencyKey {
    fn from(text: String) -> Self {
        Self(Arc::from(text))
    }
}

impl std::borrow::Borrow<str> for IdempotencyKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Reads a string into one shared allocation, with no `String` in between.
struct SharedTextVisitor;

impl serde::de::Visitor<'_> for SharedTextVisitor {
    type Value = Arc<str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Arc<str>, E> {
        Ok(Arc::from(text))
    }
}

identifier!(
    /// A store (tenant) identifier.
    StoreId,
    "store id"
);
identifier!(
    /// A stock-keeping unit.
    Sku,
    "sku"
);
identifier!(
    /// A warehouse identifier, unique within its store.
    WarehouseId,
    "warehouse id"
);
identifier!(
    /// A customer identifier, unique within its store.
    CustomerId,
    "customer id"
);
identifier!(
    /// A plugin identifier such as `pricing-promotions`.
    PluginId,
    "plugin id"
);
identifier!(
    /// A device (robot, conveyor, locker) identifier, unique within its store.
    DeviceId,
    "device id"
);
identifier!(
    /// A zone of a warehouse: the unit an emergency stop applies to.
    ZoneId,
    "zone id"
);
identifier!(
    /// A node of a warehouse map: a place a robot can drive to.
    MapNodeId,
    "map node id"
);

fn check_identifier(what: &'static str, text: &str) -> Result<(), KernelError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if text.is_empty() || text.len() > ID_LEN_MAX || !text.chars().all(allowed) {
        return Err(KernelError::InvalidIdentifier {
            what,
            detail: format!(
                "must be 1 to {ID_LEN_MAX} characters of A-Z a-z 0-9 . _ -, got {:?}",
                text.chars().take(ID_LEN_MAX + 1).collect::<String>()
            ),
        });
    }
    Ok(())
}

/// Checks free text against [`TEXT_LEN_MAX`].
pub fn check_text(what: &'static str, text: &str) -> Result<(), KernelError> {
    if text.len() > TEXT_LEN_MAX {
        return Err(KernelError::TextTooLong { what, limit: TEXT_LEN_MAX });
    }
    Ok(())
}

/// An order's number, dense and increasing within its store from 1.
pub type OrderNumber = u64;

/// A customer's segment, as the store classifies them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CustomerSegment {
    /// First order.
    NewCustomer,
    /// Returning customer.
    Regular,
    /// Loyalty programme member.
    Vip,
    /// Merchant employee.
    Staff,
}

/// The buyer of an order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Customer {
    /// The store's identifier of the customer.
    pub id: CustomerId,
    /// The customer's segment.
    pub segment: CustomerSegment,
}

/// A point in integer micro-degrees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Coordinates {
    /// Latitude, -90,000,000 to 90,000,000.
    pub latitude_micro: i32,
    /// Longitude, -180,000,000 to 180,000,000.
    pub longitude_micro: i32,
}

impl Coordinates {
    /// Checks the ranges of latitude and longitude.
    pub fn validate(&self) -> Result<(), KernelError> {
        if self.latitude_micro.unsigned_abs() > 90_000_000
            || self.longitude_micro.unsigned_abs() > 180_000_000
        {
            return Err(KernelError::InvalidCoordinates);
        }
        Ok(())
    }
}

/// A delivery address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    /// ISO-3166 alpha-2 country code.
    pub country: String,
    /// Province, state or region.
    pub region: String,
    /// City.
    pub city: String,
    /// Street and house.
    pub street: String,
    /// Postal code.
    pub postal_code: String,
    /// Where it is, for routing.
    pub location: Coordinates,
}

impl Address {
    /// Checks every field's length and the coordinates.
    pub fn validate(&self) -> Result<(), KernelError> {
        for (what, text) in [
            ("address country", &self.country),
            ("address region", &self.region),
            ("address city", &self.city),
            ("address street", &self.street),
            ("address postal code", &self.postal_code),
        ] {
            check_text(what, text)?;
        }
        self.location.validate()
    }

    /// Gives back the spare capacity of its texts.
    fn shrink_to_fit(&mut self) {
        for text in [
            &mut self.country,
            &mut self.region,
            &mut self.city,
            &mut self.street,
            &mut self.postal_code,
        ] {
            text.shrink_to_fit();
        }
    }
}

/// A product of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Its SKU.
    pub sku: Sku,
    /// Display title.
    pub title: String,
    /// Catalogue price of one unit in the store's currency, minor units.
    pub unit_price_minor: i64,
    /// For flash-sale SKUs: most units one customer may hold across their
    /// orders that are not cancelled.
    pub purchase_limit_per_customer: Option<u32>,
}

/// A warehouse of a store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warehouse {
    /// Its identifier.
    pub id: WarehouseId,
    /// Display name.
    pub name: String,
    /// Where it is.
    pub location: Coordinates,
}

/// The stock of one SKU in one warehouse.
///
/// Invariant: `on_hand == available + reserved + sold`. Units leave
/// `on_hand` only when an order ships; `shipped` counts them afterwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    /// Units physically in the warehouse.
    pub on_hand: u64,
    /// Units free to reserve.
    pub available: u64,
    /// Units held by orders that are not paid yet.
    pub reserved: u64,
    /// Units paid for and waiting to ship.
    pub sold: u64,
    /// Units that have left the warehouse in fulfilled orders.
    pub shipped: u64,
}

impl StockLevel {
    /// Whether `on_hand == available + reserved + sold` holds.
    pub fn is_balanced(&self) -> bool {
        self.available.checked_add(self.reserved).and_then(|sum| sum.checked_add(self.sold))
            == Some(self.on_hand)
    }
}

/// What a customer asks for: the part of an order request that the
/// idempotency key protects.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderRequest {
    /// The client's idempotency key: the same key and the same request give
    /// the same order; the same key with another request is refused.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The buyer.
    pub customer: Customer,
    /// SKUs and quantities.
    pub lines: Vec<LineRequest>,
    /// Coupon codes entered.
    pub coupon_codes: Vec<String>,
    /// Where to ship.
    pub shipping_address: Address,
}

impl OrderRequest {
    /// Gives back the spare capacity of its lists and texts: an order's
    /// request is held as long as the order, whatever buffers it was built
    /// in. Free when there is none (a request decoded from JSON or from the
    /// journal has none).
    pub fn shrink_to_fit(&mut self) {
        self.lines.shrink_to_fit();
        self.coupon_codes.shrink_to_fit();
        for code in &mut self.coupon_codes {
            code.shrink_to_fit();
        }
        self.shipping_address.shrink_to_fit();
    }
}

/// One requested line.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LineRequest {
    /// The SKU.
    pub sku: Sku,
    /// Units, 1 to [`LINE_QUANTITY_MAX`].
    pub quantity: u32,
}

/// A priced cart, as the kernel hands it to pricing and logistics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    /// The store.
    pub store_id: StoreId,
    /// The store's currency, the currency of every amount in the cart.
    pub currency: Currency,
    /// The buyer.
    pub customer: Customer,
    /// Lines with catalogue unit prices.
    pub lines: Vec<CartLine>,
    /// Coupon codes entered.
    pub coupon_codes: Vec<String>,
    /// Where to ship.
    pub shipping_address: Address,
    /// When the order is placed, milliseconds since the Unix epoch.
    pub placed_at_ms: u64,
}

/// One line of a cart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// The SKU.
    pub sku: Sku,
    /// Units.
    pub quantity: u32,
    /// Catalogue unit price, minor units of the cart currency.
    pub unit_price_minor: i64,
}

/// Which plugin, at which version, produced an output.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PluginRef {
    /// The plugin.
    pub id: PluginId,
    /// Its semantic version.
    pub version: String,
}

/// The extension point a plugin implements: its WIT world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// Prices a cart (`pricing` world, exports `pricer`).
    Pricing,
    /// Plans shipments (`logistics` world, exports `router`).
    Logistics,
    /// Judges an order before it is placed (`risk` world, exports
    /// `risk-assessor`).
    Risk,
    /// Consumes a store's events and answers queries about them
    /// (`analytics` world, exports `analyzer`); never on the order path.
    Analytics,
    /// Speaks a device vendor's protocol on the device bus
    /// (`device-driver` world, exports `driver`); never on the order path.
    DeviceDriver,
}

impl PluginKind {
    /// Every kind.
    pub const ALL: [PluginKind; 5] = [
        PluginKind::Pricing,
        PluginKind::Logistics,
        PluginKind::Risk,
        PluginKind::Analytics,
        PluginKind::DeviceDriver,
    ];

    /// The WIT world's name, also the kind's name in manifests.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::Pricing => "pricing",
            PluginKind::Logistics => "logistics",
            PluginKind::Risk => "risk",
            PluginKind::Analytics => "analytics",
            PluginKind::DeviceDriver => "device-driver",
        }
    }

    /// The kind whose world is named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.world() == name)
    }

    /// The capabilities the kind's world imports, so a plugin of the kind
    /// may ask for: a device driver is pure and has no state.
    pub fn capabilities(self) -> &'static [Capability] {
        match self {
            PluginKind::DeviceDriver => &[Capability::Log, Capability::Config],
            PluginKind::Pricing
            | PluginKind::Logistics
            | PluginKind::Risk
            | PluginKind::Analytics => &Capability::ALL,
        }
    }

    /// The versioned interface a plugin of this kind exports.
    pub fn export(self) -> &'static str {
        match self {
            PluginKind::Pricing => "bazaar:commerce/pricer@0.2.0",
            PluginKind::Logistics => "bazaar:commerce/router@0.2.0",
            PluginKind::Risk => "bazaar:commerce/risk-assessor@0.2.0",
            PluginKind::Analytics => "bazaar:commerce/analyzer@0.2.0",
            PluginKind::DeviceDriver => "bazaar:commerce/driver@0.2.0",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

/// A host interface a plugin may be granted. WASI is always linked deny-all
/// (no files, no network, frozen clocks, seeded randomness) and needs no
/// grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Write log lines to the node's log.
    Log,
    /// Read the store's configuration of the plugin.
    Config,
    /// Keep private key-value state per store, journaled with orders.
    State,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 3] = [Capability::Log, Capability::Config, Capability::State];

    /// The capability's name in manifests and the API.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Config => "config",
            Capability::State => "state",
        }
    }

    /// The capability named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|capability| capability.name() == name)
    }

    /// The versioned WIT interface a plugin imports to use it.
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Log => "bazaar:commerce/log@0.2.0",
            Capability::Config => "bazaar:commerce/config@0.2.0",
            Capability::State => "bazaar:commerce/state@0.2.0",
        }
    }

    /// What a merchant reads before consenting to it.
    pub fn plain_words(self) -> &'static str {
        match self {
            Capability::Log => {
                "Write diagnostic messages to the operator's log (a few short lines per order)."
            }
            Capability::Config => "Read the settings you give it for your store.",
            Capability::State => {
                "Keep its own small records about your store's orders (for example counters \
                 per customer); they stay in your store and are visible to no other store."
            }
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One price change on an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    /// The line it applies to, or none for the whole order.
    pub line_index: Option<u32>,
    /// The amount taken off, positive, minor units of the order currency.
    pub amount_off_minor: i64,
    /// The rule's machine-readable code.
    pub code: String,
    /// A human-readable reason.
    pub reason: String,
    /// The plugin that produced it.
    pub plugin: PluginRef,
}

/// A pricing plugin that failed on this order, whose output was therefore
/// ignored (pricing fails open): the order is flagged with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginFailure {
    /// The plugin that failed.
    pub plugin: PluginRef,
    /// What went wrong.
    pub reason: String,
}

/// A risk plugin's approval of an order, kept with the order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskCheck {
    /// The plugin that approved it.
    pub plugin: PluginRef,
    /// The plugin's code for its decision.
    pub code: String,
    /// The plugin's explanation.
    pub reason: String,
}

/// Units of one SKU in one shipment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentLine {
    /// The SKU.
    pub sku: Sku,
    /// Units, at least 1.
    pub quantity: u32,
}

/// One parcel leaving one warehouse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// The warehouse it leaves from.
    pub warehouse: WarehouseId,
    /// What it carries.
    pub lines: Vec<ShipmentLine>,
    /// The carrier.
    pub carrier: String,
    /// Fee charged to the customer, minor units of the order currency.
    pub fee_minor: i64,
    /// Promised delivery time in hours.
    pub eta_hours: u32,
}

/// Who routed an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Router {
    /// The kernel-adjacent built-in router (no plugin, or the plugin failed).
    BuiltIn,
    /// A logistics plugin.
    Plugin(PluginRef),
}

/// How an order ships.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentPlan {
    /// The shipments; together they carry every ordered unit exactly once.
    pub shipments: Vec<Shipment>,
    /// Who made the plan.
    pub routed_by: Router,
    /// When a logistics plugin failed and the built-in router stood in: why.
    pub fallback_reason: Option<String>,
}

/// The life of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Stock reserved, awaiting payment.
    Reserved,
    /// Paid; stock sold, awaiting shipment.
    Paid,
    /// Paid, and robots have picked every unit they carry for it.
    Picked,
    /// Paid, and every picked unit is at a pack station.
    Packed,
    /// Shipped; stock left the warehouses.
    Fulfilled,
    /// Cancelled; stock released.
    Cancelled,
}

/// An order as the kernel keeps it.
///
/// The lists fixed when the order is placed are boxed slices rather than
/// vectors: 8 bytes less each keeps an order with its reference counts in
/// the allocator's 512-byte class (a test checks it). They encode as the
/// sequences they always were.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Its number within the store.
    pub number: OrderNumber,
    /// The request it was created from.
    pub request: OrderRequest,
    /// Fingerprint of the request, for idempotent retries.
    pub request_fingerprint: [u8; 32],
    /// Lines with the catalogue prices at the time of the order.
    pub lines: Vec<CartLine>,
    /// Price adjustments applied, in order.
    pub adjustments: Box<[Adjustment]>,
    /// Pricing plugins whose output was ignored because they failed.
    pub pricing_failures: Box<[PluginFailure]>,
    /// The risk plugins that approved it.
    pub risk_checks: Box<[RiskCheck]>,
    /// How it ships.
    pub shipment_plan: ShipmentPlan,
    /// Totals, in minor units of `currency`.
    pub totals: Totals,
    /// Units of purchase-limited SKUs this order holds against the
    /// customer's limits, returned when it is cancelled.
    pub limited_units: Box<[LineRequest]>,
    /// The store's currency at the time of the order.
    pub currency: Currency,
    /// Current status.
    pub status: OrderStatus,
    /// When it was placed, milliseconds since the Unix epoch.
    pub placed_at_ms: u64,
    /// When its status last changed.
    pub updated_at_ms: u64,
}

/// An order's money, all in minor units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Sum of quantity times catalogue unit price.
    pub subtotal_minor: i64,
    /// Sum of every adjustment.
    pub discount_minor: i64,
    /// Sum of shipment fees.
    pub shipping_minor: i64,
    /// What the customer pays: subtotal - discount + shipping.
    pub total_minor: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_and_its_reference_counts_fit_the_allocators_512_byte_class() {
        // Every order lives in an `Arc` for as long as the node runs: one
        // byte over 512 and the allocator hands out its 640-byte class,
        // 128 bytes or about 8 % more memory per order (`bench memory`).
        let counts_bytes = 2 * std::mem::size_of::<usize>();
        assert!(std::mem::size_of::<Order>() + counts_bytes <= 512);
    }

    #[test]
    fn a_cloned_identifier_shares_its_text() {
        let sku = Sku::new("PHONE-1").unwrap();
        let copy = sku.clone();
        assert_eq!(copy, sku);
        assert!(std::ptr::eq(sku.as_str().as_ptr(), copy.as_str().as_ptr()));
    }

    #[test]
    fn a_cloned_idempotency_key_shares_its_text_and_encodes_as_the_plain_string() {
        // The order's request and the store's index of keys hold one copy.
        let key = IdempotencyKey::from("checkout-7f3a");
        let copy = key.clone();
        assert!(std::ptr::eq(key.as_str().as_ptr(), copy.as_str().as_ptr()));
        // Journals and snapshots written when the key was a `String` read
        // back unchanged.
        let as_string = postcard::to_allocvec(&Some(String::from("checkout-7f3a"))).unwrap();
        assert_eq!(postcard::to_allocvec(&Some(key.clone())).unwrap(), as_string);
        assert_eq!(postcard::from_bytes::<Option<IdempotencyKey>>(&as_string).unwrap(), Some(key));
    }

    #[test]
    fn identifiers_encode_as_the_plain_strings_the_journal_always_held() {
        // Journals and snapshots written when identifiers were `String`s
        // must read back unchanged, and new records must read as before.
        let text = String::from("warehouse-7");
        let id = WarehouseId::new(&text).unwrap();
        let as_string = postcard::to_allocvec(&text).unwrap();
        assert_eq!(postcard::to_allocvec(&id).unwrap(), as_string);
        assert_eq!(postcard::from_bytes::<WarehouseId>(&as_string).unwrap(), id);
        let wrong = postcard::to_allocvec(&7_u32).unwrap();
        assert!(postcard::from_bytes::<WarehouseId>(&wrong).is_err());
    }
}
