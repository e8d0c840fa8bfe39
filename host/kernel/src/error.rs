//! The one error type of the kernel: every refusal says what was wrong.

use crate::model::{OrderNumber, OrderStatus, PluginId};

/// Why the kernel refused a command. A refused command changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A malformed identifier.
    #[error("invalid {what}: {detail}")]
    InvalidIdentifier {
        /// Which identifier.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// Free text over its length limit.
    #[error("{what} is longer than {limit} bytes")]
    TextTooLong {
        /// Which field.
        what: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// Not an ISO-4217 code.
    #[error("invalid currency code {0:?}: expected three upper-case letters such as CNY")]
    InvalidCurrency(String),
    /// An amount in the wrong currency.
    #[error("currency mismatch: the store sells in {expected}, got {got}")]
    CurrencyMismatch {
        /// The store's currency.
        expected: String,
        /// The currency given.
        got: String,
    },
    /// Latitude or longitude out of range.
    #[error("coordinates out of range: latitude must be within ±90° and longitude within ±180°")]
    InvalidCoordinates,
    /// A price, fee or total past the supported maximum.
    #[error("amount out of range: prices, fees and totals are at most 10^15 minor units")]
    AmountOverflow,
    /// A negative price or fee.
    #[error("{what} must not be negative, got {amount_minor}")]
    NegativeAmount {
        /// Which amount.
        what: &'static str,
        /// The value given.
        amount_minor: i64,
    },
    /// A quantity out of its range.
    #[error("invalid quantity {quantity} for {what}: must be 1 to {max}")]
    InvalidQuantity {
        /// What was counted.
        what: String,
        /// The value given.
        quantity: u64,
        /// The largest allowed.
        max: u64,
    },
    /// A request with too many items of some kind.
    #[error("too many {what}: at most {limit}")]
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The store exists already.
    #[error("store {0} already exists")]
    StoreExists(String),
    /// No such store.
    #[error("unknown store {0}")]
    UnknownStore(String),
    /// No such product.
    #[error("unknown sku {0}")]
    UnknownSku(String),
    /// No such warehouse.
    #[error("unknown warehouse {0}")]
    UnknownWarehouse(String),
    /// No such order.
    #[error("unknown order {0}")]
    UnknownOrder(OrderNumber),
    /// An order with no lines.
    #[error("an order needs at least one line")]
    EmptyOrder,
    /// The same SKU on two lines of one order.
    #[error("sku {0} appears on more than one line; put the whole quantity on one line")]
    DuplicateLine(String),
    /// Not enough available stock.
    #[error("insufficient stock for sku {sku}: requested {requested}, available {available}")]
    InsufficientStock {
        /// The SKU.
        sku: String,
        /// Units asked for.
        requested: u64,
        /// Units available.
        available: u64,
    },
    /// A flash-sale purchase limit would be exceeded.
    #[error(
        "purchase limit for sku {sku} is {limit} per customer; customer already holds {held}, asked for {requested}"
    )]
    PurchaseLimitExceeded {
        /// The SKU.
        sku: String,
        /// The limit.
        limit: u32,
        /// Units the customer's live orders hold.
        held: u32,
        /// Units asked for.
        requested: u32,
    },
    /// The idempotency key was used for a different request.
    #[error(
        "idempotency key {key:?} was already used for a different request (order {order}); use a new key"
    )]
    IdempotencyConflict {
        /// The key.
        key: String,
        /// The order the key belongs to.
        order: OrderNumber,
    },
    /// The order's status forbids the change.
    #[error("order {order} is {status:?} and cannot be {action}")]
    InvalidTransition {
        /// The order.
        order: OrderNumber,
        /// Its current status.
        status: OrderStatus,
        /// What was attempted.
        action: &'static str,
    },
    /// A price adjustment that makes no sense.
    #[error("invalid price adjustment {index} ({code}): {reason}")]
    InvalidAdjustment {
        /// Its position.
        index: usize,
        /// Its rule code.
        code: String,
        /// What is wrong.
        reason: String,
    },
    /// A shipment plan that does not ship the order exactly.
    #[error("invalid shipment plan: {0}")]
    InvalidShipmentPlan(String),
    /// A plugin state write over a limit.
    #[error("invalid plugin state write: {0}")]
    InvalidStateWrite(String),
    /// A consumer reported progress it had already recorded (a retry after
    /// a crash): nothing is applied twice.
    #[error(
        "{plugin} already consumed this store's events through {consumed}; {through_sequence} is not new"
    )]
    AlreadyConsumed {
        /// The consumer.
        plugin: PluginId,
        /// The position it reported.
        through_sequence: u64,
        /// The position already recorded.
        consumed: u64,
    },
    /// Pricing rules out of range.
    #[error("invalid pricing rules: {0}")]
    InvalidPricingRules(String),
    /// Adjustments that take more off than the store's pricing rules allow.
    #[error("the discounts total {discount_minor}, over the store's cap of {cap_minor}")]
    DiscountOverCap {
        /// The adjustments' total.
        discount_minor: i64,
        /// The store's cap for this cart.
        cap_minor: i64,
    },
    /// A plugin configuration over its limit.
    #[error("plugin configuration is larger than {limit} bytes")]
    ConfigTooLarge {
        /// The limit.
        limit: usize,
    },
    /// An unknown device.
    #[error("unknown device {0}")]
    UnknownDevice(String),
    /// A device registration that makes no sense.
    #[error("invalid device: {0}")]
    InvalidDevice(String),
    /// A warehouse map that makes no sense.
    #[error("invalid warehouse layout: {0}")]
    InvalidLayout(String),
    /// A task that does not exist, or is already done.
    #[error("unknown task {0} (it may be done already)")]
    UnknownTask(u64),
    /// A task change its state forbids.
    #[error("invalid task change: {0}")]
    InvalidTaskStep(String),
    /// Write-off of units that are not available.
    #[error("cannot write off {requested} units of sku {sku}: only {available} available")]
    WriteOffExceedsAvailable {
        /// The SKU.
        sku: String,
        /// Units asked.
        requested: u64,
        /// Units available.
        available: u64,
    },
}
