//! Domain events: what a committed command did, in terms a consumer
//! (analytics, dashboards, integrations) cares about. Events are derived
//! from journaled commands and their outcomes, so the event stream is a
//! pure function of the journal.

use serde::{Deserialize, Serialize};

use crate::command::{Command, Outcome};
use crate::model::{
    CustomerId, Order, OrderNumber, OrderStatus, PluginId, Sku, StockLevel, StoreId, Totals,
    WarehouseId,
};
use crate::money::Currency;
use crate::shard::{Shard, StoreState};

/// One ordered line, as an event reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    /// The SKU.
    pub sku: Sku,
    /// Units.
    pub quantity: u32,
    /// Catalogue unit price, minor units of the order currency.
    pub unit_price_minor: i64,
}

/// A discount an order received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDiscount {
    /// The pricing plugin that gave it.
    pub plugin: PluginId,
    /// The rule's code.
    pub code: String,
    /// Minor units taken off.
    pub amount_minor: i64,
}

/// Why checkout attempts were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RefusalReason {
    /// Not enough stock.
    SoldOut,
    /// Over the customer's purchase limit.
    PurchaseLimit,
    /// A risk plugin rejected or could not check the order.
    Risk,
    /// Anything else.
    Other,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// An order was placed and its stock reserved.
    OrderPlaced {
        /// Its number.
        order: OrderNumber,
        /// The buyer.
        customer: CustomerId,
        /// What was ordered.
        lines: Vec<EventLine>,
        /// Its totals.
        totals: Totals,
        /// The discounts, in the order they applied.
        discounts: Vec<EventDiscount>,
    },
    /// An order was paid.
    OrderPaid {
        /// Its number.
        order: OrderNumber,
        /// Its total.
        total_minor: i64,
    },
    /// An order was cancelled.
    OrderCancelled {
        /// Its number.
        order: OrderNumber,
        /// Its total.
        total_minor: i64,
    },
    /// An order shipped.
    OrderFulfilled {
        /// Its number.
        order: OrderNumber,
        /// Its total.
        total_minor: i64,
    },
    /// A stock level changed.
    StockChanged {
        /// The SKU.
        sku: Sku,
        /// The warehouse.
        warehouse: WarehouseId,
        /// The level after the change.
        level: StockLevel,
    },
    /// Checkout attempts were refused (summarised per SKU and reason).
    CheckoutRefused {
        /// The SKU the attempts asked for.
        sku: Sku,
        /// Attempts.
        attempts: u32,
        /// Units asked for.
        units: u64,
        /// Why.
        reason: RefusalReason,
    },
}

/// One event of one store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the node's event stream: strictly increasing.
    pub sequence: u64,
    /// The store.
    pub store: StoreId,
    /// The store's currency (every amount of the event is in it).
    pub currency: Currency,
    /// When it was committed, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    pub kind: EventKind,
}

/// The events an applied command caused, read from the shard right after
/// `command` was applied with `outcome`. A duplicate order and a
/// configuration change cause none.
pub fn derive_events(shard: &Shard, command: &Command, outcome: &Outcome) -> Vec<EventKind> {
    let Some(state) = shard.store(command.store()) else { return Vec::new() };
    match (command, outcome) {
        (Command::PlaceOrder(_), Outcome::OrderPlaced { .. }) => placed_events(state, outcome),
        (
            Command::PayOrder { order, .. }
            | Command::CancelOrder { order, .. }
            | Command::FulfilOrder { order, .. },
            Outcome::OrderStatusChanged { status, .. },
        ) => {
            let Some(order) = state.order(*order) else { return Vec::new() };
            let total_minor = order.totals.total_minor;
            let number = order.number;
            let changed = match status {
                OrderStatus::Paid => EventKind::OrderPaid { order: number, total_minor },
                OrderStatus::Cancelled => EventKind::OrderCancelled { order: number, total_minor },
                OrderStatus::Fulfilled => EventKind::OrderFulfilled { order: number, total_minor },
                // Warehouse progress, not a change of money or stock.
                OrderStatus::Reserved | OrderStatus::Picked | OrderStatus::Packed => {
                    return Vec::new();
                }
            };
            let mut events = vec![changed];
            events.extend(stock_levels(state, order));
            events
        }
        // Robots shipped an order: the same event as fulfilling it by hand.
        (
            Command::ProgressTask { .. },
            Outcome::TaskProgressed { order, order_status: Some(OrderStatus::Fulfilled), .. },
        )
        | (
            Command::DeviceConnection { .. }
            | Command::QuarantineDevice { .. }
            | Command::RemoveDevice { .. },
            Outcome::DeviceUpdated { order_moved: Some((order, OrderStatus::Fulfilled)), .. },
        ) => {
            let Some(order) = state.order(*order) else { return Vec::new() };
            let mut events = vec![EventKind::OrderFulfilled {
                order: order.number,
                total_minor: order.totals.total_minor,
            }];
            events.extend(stock_levels(state, order));
            events
        }
        (
            Command::ReceiveStock { sku, warehouse, .. }
            | Command::WriteOffStock { sku, warehouse, .. },
            Outcome::StockChanged(level),
        ) => vec![EventKind::StockChanged {
            sku: sku.clone(),
            warehouse: warehouse.clone(),
            level: *level,
        }],
        _ => Vec::new(),
    }
}

/// The events of an order placed in `store` with `outcome`, read from the
/// shard right after: what [`derive_events`] gives for the order's command,
/// for a writer that moved the command into the shard
/// ([`Shard::place_owned_order`](crate::Shard::place_owned_order)).
pub fn order_placed_events(shard: &Shard, store: &StoreId, outcome: &Outcome) -> Vec<EventKind> {
    shard.store(store).map(|state| placed_events(state, outcome)).unwrap_or_default()
}

/// A new order's placement and the stock levels it changed; nothing for a
/// duplicate.
fn placed_events(state: &StoreState, outcome: &Outcome) -> Vec<EventKind> {
    let Outcome::OrderPlaced { order, duplicate: false, .. } = outcome else { return Vec::new() };
    let Some(order) = state.order(*order) else { return Vec::new() };
    let mut events = vec![EventKind::OrderPlaced {
        order: order.number,
        customer: order.request.customer.id.clone(),
        lines: order
            .lines
            .iter()
            .map(|line| EventLine {
                sku: line.sku.clone(),
                quantity: line.quantity,
                unit_price_minor: line.unit_price_minor,
            })
            .collect(),
        totals: order.totals,
        discounts: order
            .adjustments
            .iter()
            .map(|adjustment| EventDiscount {
                plugin: adjustment.plugin.id.clone(),
                code: adjustment.code.clone(),
                amount_minor: adjustment.amount_off_minor,
            })
            .collect(),
    }];
    events.extend(stock_levels(state, order));
    events
}

/// The stock levels now of every SKU and warehouse `order` ships from.
fn stock_levels(state: &StoreState, order: &Order) -> Vec<EventKind> {
    order
        .shipment_plan
        .shipments
        .iter()
        .flat_map(|shipment| {
            shipment.lines.iter().map(|line| EventKind::StockChanged {
                sku: line.sku.clone(),
                warehouse: shipment.warehouse.clone(),
                level: state.stock_level(&line.sku, &shipment.warehouse),
            })
        })
        .collect()
}
