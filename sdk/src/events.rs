//! Plain Rust mirrors of the `bazaar:commerce/events` records: the domain
//! events of a store, as an analytics plugin receives them.
//!
//! Every committed change of a store's orders and stock becomes one event;
//! the host hands a plugin one store's events in batches, in sequence
//! order, never repeating one that was folded in successfully. Amounts are
//! integer [`Money`] in the store's currency, never floats.

use crate::money::Money;

/// One event of one store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its position in the node's event stream: strictly increasing, never
    /// reused, with gaps where other stores' events are.
    pub sequence: u64,
    /// When it was committed, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// An order was placed: its stock is reserved.
    OrderPlaced(OrderPlaced),
    /// An order was paid.
    OrderPaid(OrderStatus),
    /// An order was cancelled; its units are free again.
    OrderCancelled(OrderStatus),
    /// An order shipped.
    OrderFulfilled(OrderStatus),
    /// A stock level changed (received, written off, reserved, sold, shipped).
    StockChanged(StockChanged),
    /// Checkout attempts were refused.
    CheckoutRefused(CheckoutRefused),
}

/// One ordered line of an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLine {
    /// The SKU.
    pub sku: String,
    /// Units.
    pub quantity: u32,
    /// Catalogue unit price.
    pub unit_price: Money,
}

/// A discount an order received, and the plugin that gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discount {
    /// The pricing plugin's id.
    pub plugin_id: String,
    /// The rule's code, such as "spend-300-get-50".
    pub code: String,
    /// The amount taken off.
    pub amount: Money,
}

/// An order was placed: its stock is reserved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderPlaced {
    /// The order's number in its store.
    pub order: u64,
    /// The customer's id.
    pub customer_id: String,
    /// What was ordered.
    pub lines: Vec<EventLine>,
    /// The sum of the lines at catalogue prices.
    pub subtotal: Money,
    /// The total of `discounts`.
    pub discount: Money,
    /// Shipping fees.
    pub shipping: Money,
    /// What the customer pays.
    pub total: Money,
    /// Each discount, in the order it applied.
    pub discounts: Vec<Discount>,
}

/// An order changed status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderStatus {
    /// The order's number in its store.
    pub order: u64,
    /// The order's total.
    pub total: Money,
}

/// Units of a SKU in a warehouse after a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockChanged {
    /// The SKU.
    pub sku: String,
    /// The warehouse.
    pub warehouse: String,
    /// Units free to sell.
    pub available: u64,
    /// Units held by unpaid orders.
    pub reserved: u64,
    /// Units paid for and not yet shipped.
    pub sold: u64,
}

/// Why checkout attempts were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefusalReason {
    /// Not enough stock.
    SoldOut,
    /// Over the customer's purchase limit.
    PurchaseLimit,
    /// A risk plugin rejected or could not check the order.
    Risk,
    /// Anything else (invalid request).
    Other,
}

impl RefusalReason {
    /// Every reason, in the WIT's order.
    pub const ALL: [RefusalReason; 4] = [
        RefusalReason::SoldOut,
        RefusalReason::PurchaseLimit,
        RefusalReason::Risk,
        RefusalReason::Other,
    ];

    /// The reason's WIT name, such as "sold-out".
    pub fn name(self) -> &'static str {
        match self {
            RefusalReason::SoldOut => "sold-out",
            RefusalReason::PurchaseLimit => "purchase-limit",
            RefusalReason::Risk => "risk",
            RefusalReason::Other => "other",
        }
    }
}

/// Checkout attempts the node refused, counted per SKU over a short
/// interval (refusals change no state, so the host summarises them rather
/// than journaling them one by one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutRefused {
    /// The SKU the refused orders asked for.
    pub sku: String,
    /// Refused attempts that included the SKU.
    pub attempts: u32,
    /// Units those attempts asked for.
    pub units: u64,
    /// Why they were refused.
    pub reason: RefusalReason,
}
