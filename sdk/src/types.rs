//! Plain Rust mirrors of the `bazaar:commerce/types` records.
//!
//! Plugin logic is written against these, not against the generated
//! bindings, so the same code compiles and is unit tested natively, and the
//! host can call it directly in a native-versus-wasm benchmark. On wasm the
//! export glue converts the generated types to and from these, field by
//! field, moving strings rather than copying them.

use crate::PluginError;
use crate::money::{Money, MoneyError};

/// A customer's segment, as the store classifies them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CustomerSegment {
    /// A customer placing their first order.
    NewCustomer,
    /// A returning customer without special status.
    Regular,
    /// A member of the store's loyalty programme.
    Vip,
    /// An employee of the merchant.
    Staff,
}

/// The buyer of a cart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    /// The store's identifier of the customer.
    pub id: String,
    /// The customer's segment.
    pub segment: CustomerSegment,
}

/// A point on Earth in integer micro-degrees (degrees x 1,000,000).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Coordinates {
    /// Latitude in micro-degrees, -90,000,000 to 90,000,000.
    pub latitude_micro: i32,
    /// Longitude in micro-degrees, -180,000,000 to 180,000,000.
    pub longitude_micro: i32,
}

impl Coordinates {
    /// The point at `latitude_micro`, `longitude_micro`.
    pub const fn new(latitude_micro: i32, longitude_micro: i32) -> Self {
        Self { latitude_micro, longitude_micro }
    }

    /// True when both values are within their ranges.
    pub fn is_valid(self) -> bool {
        self.latitude_micro.unsigned_abs() <= 90_000_000
            && self.longitude_micro.unsigned_abs() <= 180_000_000
    }
}

/// A delivery address.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Where the address is, used for routing.
    pub location: Coordinates,
}

/// One line of a cart: a SKU, how many, and its catalogue unit price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CartLine {
    /// The SKU bought.
    pub sku: String,
    /// Units bought, at least 1.
    pub quantity: u32,
    /// The catalogue price of one unit, before any promotion.
    pub unit_price: Money,
}

impl CartLine {
    /// `unit_price * quantity`.
    pub fn total(&self) -> Result<Money, MoneyError> {
        self.unit_price.checked_mul(self.quantity)
    }
}

/// A cart being priced or routed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cart {
    /// The store the cart belongs to.
    pub store_id: String,
    /// The buyer.
    pub customer: Customer,
    /// The lines, in the order the customer added them.
    pub lines: Vec<CartLine>,
    /// Coupon codes the customer entered.
    pub coupon_codes: Vec<String>,
    /// Where the order ships to.
    pub shipping_address: Address,
    /// When the order is placed, in milliseconds since the Unix epoch.
    pub placed_at_ms: u64,
}

impl Cart {
    /// The one currency every line is priced in: `Unsupported` for a cart
    /// without lines (it has no currency) or with lines in several.
    pub fn currency(&self) -> Result<&str, PluginError> {
        let Some(first) = self.lines.first() else {
            return Err(PluginError::unsupported("the cart has no lines"));
        };
        let currency = first.unit_price.currency.as_str();
        match self.lines.iter().position(|line| line.unit_price.currency != currency) {
            None => Ok(currency),
            Some(index) => Err(PluginError::unsupported(format!(
                "the cart mixes currencies: line 0 is in {currency}, line {index} in {}",
                self.lines[index].unit_price.currency
            ))),
        }
    }

    /// The sum of every line's `unit_price * quantity`, before promotions;
    /// errors as for [`Cart::currency`], or if the sum is out of range.
    pub fn subtotal(&self) -> Result<Money, PluginError> {
        let mut subtotal = Money::zero(self.currency()?);
        for line in &self.lines {
            subtotal = subtotal.checked_add(&line.total()?)?;
        }
        Ok(subtotal)
    }
}

/// One price change a pricing plugin applies to a cart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceAdjustment {
    /// The line the adjustment applies to, or none for the whole cart.
    pub line_index: Option<u32>,
    /// The amount taken off, positive, in the cart's currency.
    pub amount_off: Money,
    /// A short machine-readable code for the rule, such as "spend-300-get-50".
    pub code: String,
    /// A human-readable explanation shown to the customer.
    pub reason: String,
}

impl PriceAdjustment {
    /// An adjustment of the whole cart.
    pub fn whole_cart(
        amount_off: Money,
        code: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self { line_index: None, amount_off, code: code.into(), reason: reason.into() }
    }

    /// An adjustment of the line at `line_index`.
    pub fn for_line(
        line_index: u32,
        amount_off: Money,
        code: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self { line_index: Some(line_index), amount_off, code: code.into(), reason: reason.into() }
    }
}

/// A warehouse the store ships from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warehouse {
    /// The warehouse identifier.
    pub id: String,
    /// Where the warehouse is.
    pub location: Coordinates,
}

/// What a logistics plugin is asked to route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRequest {
    /// The cart to ship.
    pub cart: Cart,
    /// Every warehouse of the store.
    pub warehouses: Vec<Warehouse>,
    /// Units available to reserve now, by cart line and warehouse:
    /// `stock[l][w]` is what `warehouses[w]` holds of the SKU of
    /// `cart.lines[l]`. Read it with [`RouteRequest::available`].
    pub stock: Vec<Vec<u32>>,
}

impl RouteRequest {
    /// Units of the SKU of `cart.lines[line]` available in
    /// `warehouses[warehouse]`; 0 for a position the request does not hold.
    pub fn available(&self, line: usize, warehouse: usize) -> u32 {
        self.stock.get(line).and_then(|row| row.get(warehouse)).copied().unwrap_or(0)
    }
}

/// Units of one SKU taken from one warehouse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipmentLine {
    /// The SKU.
    pub sku: String,
    /// Units shipped from this warehouse, at least 1.
    pub quantity: u32,
}

/// One parcel: what leaves one warehouse, with whom, and when it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipment {
    /// The warehouse it ships from.
    pub warehouse_id: String,
    /// What it carries.
    pub lines: Vec<ShipmentLine>,
    /// The carrier's name.
    pub carrier: String,
    /// The shipping fee charged to the customer.
    pub fee: Money,
    /// Promised delivery time in hours from the order.
    pub eta_hours: u32,
}

/// How an order is fulfilled: one shipment per warehouse used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipmentPlan {
    /// The shipments; together they carry every unit of the cart exactly once.
    pub shipments: Vec<Shipment>,
}

/// Units of one SKU that a customer already holds in a store: the sum over
/// their orders that are not cancelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitsHeld {
    /// The SKU.
    pub sku: String,
    /// Units held; the host shows counts beyond the range of `u32` as
    /// `u32::MAX`.
    pub units: u32,
}

/// What the host knows of a customer in the store an order is placed in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomerHistory {
    /// Orders the customer has placed in the store that are not cancelled.
    pub orders_placed: u64,
    /// For each SKU of the cart, in the order of the cart's lines, the units
    /// the customer already holds; zero when they hold none.
    pub units_held: Vec<UnitsHeld>,
}

impl CustomerHistory {
    /// The units of `sku` the customer already holds: zero for a SKU the
    /// host did not list.
    pub fn units_held_of(&self, sku: &str) -> u32 {
        self.units_held.iter().find(|held| held.sku == sku).map_or(0, |held| held.units)
    }
}

/// What a risk plugin is asked to judge: an order about to be placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskRequest {
    /// The cart, with catalogue unit prices.
    pub cart: Cart,
    /// What the order costs after promotions (the cart's subtotal less every
    /// price adjustment), before shipping fees, in the cart's currency.
    pub total: Money,
    /// The customer's past orders in this store.
    pub history: CustomerHistory,
}

/// Whether an order may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The order may be placed.
    Approve,
    /// The order is refused before anything is reserved.
    Reject,
}

/// A risk plugin's judgement of one order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskVerdict {
    /// Approve or reject.
    pub decision: Decision,
    /// A short machine-readable code for the rule that decided, such as
    /// "order-rate-over-limit"; the host refuses an empty one.
    pub code: String,
    /// A human-readable explanation; for a rejection it is shown to the
    /// customer, and the host refuses an empty one.
    pub reason: String,
}

impl RiskVerdict {
    /// Lets the order go ahead.
    pub fn approve(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { decision: Decision::Approve, code: code.into(), reason: reason.into() }
    }

    /// Refuses the order; `reason` is shown to the customer.
    pub fn reject(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { decision: Decision::Reject, code: code.into(), reason: reason.into() }
    }

    /// True for [`Decision::Approve`].
    pub fn is_approved(&self) -> bool {
        self.decision == Decision::Approve
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::CartBuilder;

    #[test]
    fn a_cart_subtotal_sums_every_line() {
        let cart =
            CartBuilder::new("CNY").line("TEA-250G", 2, "129.00").line("CUP", 3, "19.90").build();
        assert_eq!(cart.subtotal(), Ok(Money::new(31770, "CNY")));
    }

    #[test]
    fn a_cart_without_lines_or_with_mixed_currencies_has_no_subtotal() {
        let empty = CartBuilder::new("CNY").build();
        assert!(matches!(empty.subtotal(), Err(PluginError::Unsupported(_))));

        let mut mixed =
            CartBuilder::new("CNY").line_minor("A", 1, 100).line_minor("B", 1, 100).build();
        mixed.lines[1].unit_price.currency = "USD".to_owned();
        let error = mixed.subtotal().unwrap_err();
        assert!(error.message().contains("line 1 in USD"), "{error}");
    }

    #[test]
    fn history_answers_zero_for_a_sku_it_does_not_list() {
        let history = CustomerHistory {
            orders_placed: 2,
            units_held: vec![UnitsHeld { sku: "PHONE".to_owned(), units: 3 }],
        };
        assert_eq!(history.units_held_of("PHONE"), 3);
        assert_eq!(history.units_held_of("CASE"), 0);
    }
}
