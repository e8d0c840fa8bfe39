//! Builders that keep a plugin's native unit tests short.
//!
//! ```
//! use bazaar_sdk::testing::{places, CartBuilder, RiskRequestBuilder, RouteRequestBuilder};
//!
//! let cart = CartBuilder::new("CNY")
//!     .line("TEA-250G", 2, "129.00")
//!     .coupon("D11VIP")
//!     .ship_to(places::HANGZHOU)
//!     .build();
//! let request = RouteRequestBuilder::new(cart.clone())
//!     .warehouse("WH-SHANGHAI", places::SHANGHAI)
//!     .stock("WH-SHANGHAI", "TEA-250G", 10)
//!     .build();
//! assert_eq!(request.warehouses.len(), 1);
//!
//! let risk = RiskRequestBuilder::new(cart)
//!     .total("208.00")
//!     .orders_placed(3)
//!     .holds("TEA-250G", 1)
//!     .build();
//! assert_eq!(risk.history.units_held_of("TEA-250G"), 1);
//! ```
//!
//! Prices are written as decimal text ("129.00"), read exactly in the
//! cart's currency; a typo fails the test at once with the text quoted.
//!
//! An analytics plugin's events come from an [`EventStream`]:
//!
//! ```
//! use bazaar_sdk::RefusalReason;
//! use bazaar_sdk::testing::EventStream;
//!
//! let events = EventStream::new("CNY")
//!     .order_placed(1, "customer-1", &[("D11-PHONE", 1, "4999.00")])
//!     .discount("pricing-promotions", "d11-flash", "500.00")
//!     .stock_changed("D11-PHONE", "WH-SHANGHAI", 99, 1, 0)
//!     .after_ms(1_000)
//!     .checkout_refused("D11-PHONE", 3, 3, RefusalReason::SoldOut)
//!     .order_cancelled(1)
//!     .build();
//! assert_eq!(events.len(), 4);
//! assert_eq!(events[3].sequence, 4);
//! ```
//!
//! A device driver is called through a [`DriverSession`], which threads the
//! driver's memory from call to call as the host does.

use std::collections::BTreeMap;

mod driver;
pub use driver::DriverSession;

use crate::events::{
    CheckoutRefused, Discount, Event, EventKind, EventLine, OrderPlaced, OrderStatus,
    RefusalReason, StockChanged,
};
use crate::money::Money;
use crate::types::{
    Address, Cart, CartLine, Coordinates, Customer, CustomerHistory, CustomerSegment, RiskRequest,
    RouteRequest, UnitsHeld, Warehouse,
};

/// City centres, for addresses and warehouses in tests.
pub mod places {
    use crate::types::Coordinates;

    /// Shanghai, People's Square.
    pub const SHANGHAI: Coordinates = Coordinates::new(31_230_400, 121_473_700);
    /// Hangzhou, 165 km south-west of Shanghai.
    pub const HANGZHOU: Coordinates = Coordinates::new(30_274_100, 120_155_100);
    /// Beijing, 1,067 km north of Shanghai.
    pub const BEIJING: Coordinates = Coordinates::new(39_904_200, 116_407_400);
    /// Guangzhou, 1,889 km south of Beijing.
    pub const GUANGZHOU: Coordinates = Coordinates::new(23_129_100, 113_264_400);
    /// Shenzhen, 104 km south-east of Guangzhou.
    pub const SHENZHEN: Coordinates = Coordinates::new(22_543_100, 114_057_900);
    /// Chengdu, 1,661 km west of Shanghai.
    pub const CHENGDU: Coordinates = Coordinates::new(30_572_800, 104_066_800);
    /// Wuhan, 687 km west of Shanghai.
    pub const WUHAN: Coordinates = Coordinates::new(30_592_800, 114_305_500);
}

/// Builds a [`Cart`]: store "store-1", a regular customer "customer-1",
/// shipping to Shanghai, placed at 2025-11-11 00:00:00 China time, unless
/// told otherwise.
#[derive(Clone, Debug)]
pub struct CartBuilder {
    /// The currency of every line added.
    currency: String,
    /// The cart so far.
    cart: Cart,
}

impl CartBuilder {
    /// An empty cart whose lines will be priced in `currency`.
    pub fn new(currency: &str) -> Self {
        Self {
            currency: currency.to_owned(),
            cart: Cart {
                store_id: "store-1".to_owned(),
                customer: Customer {
                    id: "customer-1".to_owned(),
                    segment: CustomerSegment::Regular,
                },
                lines: Vec::new(),
                coupon_codes: Vec::new(),
                shipping_address: Address {
                    country: "CN".to_owned(),
                    region: "Shanghai".to_owned(),
                    city: "Shanghai".to_owned(),
                    street: "People's Square 1".to_owned(),
                    postal_code: "200000".to_owned(),
                    location: places::SHANGHAI,
                },
                // 2025-11-11T00:00:00+08:00.
                placed_at_ms: 1_762_790_400_000,
            },
        }
    }

    /// Adds `quantity` units of `sku` at `unit_price` each, written as
    /// decimal text such as "129.00".
    ///
    /// # Panics
    ///
    /// If `unit_price` is not an amount of the cart's currency: this is a
    /// test helper, and a mistyped price should fail the test loudly.
    pub fn line(mut self, sku: &str, quantity: u32, unit_price: &str) -> Self {
        let unit_price = Money::parse(unit_price, &self.currency).unwrap_or_else(|error| {
            panic!("test cart line {sku}: {error}");
        });
        self.cart.lines.push(CartLine { sku: sku.to_owned(), quantity, unit_price });
        self
    }

    /// Adds `quantity` units of `sku` at `unit_price_minor` minor units each,
    /// for prices a test computes.
    pub fn line_minor(mut self, sku: &str, quantity: u32, unit_price_minor: i64) -> Self {
        self.cart.lines.push(CartLine {
            sku: sku.to_owned(),
            quantity,
            unit_price: Money::new(unit_price_minor, &self.currency),
        });
        self
    }

    /// Adds a coupon code the customer entered.
    pub fn coupon(mut self, code: &str) -> Self {
        self.cart.coupon_codes.push(code.to_owned());
        self
    }

    /// Sets the store.
    pub fn store(mut self, store_id: &str) -> Self {
        self.cart.store_id = store_id.to_owned();
        self
    }

    /// Sets the customer's segment.
    pub fn segment(mut self, segment: CustomerSegment) -> Self {
        self.cart.customer.segment = segment;
        self
    }

    /// Sets the customer's identifier.
    pub fn customer(mut self, customer_id: &str) -> Self {
        self.cart.customer.id = customer_id.to_owned();
        self
    }

    /// Moves the shipping address to another street (and house) of the same
    /// city.
    pub fn street(mut self, street: &str) -> Self {
        self.cart.shipping_address.street = street.to_owned();
        self
    }

    /// Sets when the order is placed, in milliseconds since the Unix epoch.
    pub fn placed_at_ms(mut self, placed_at_ms: u64) -> Self {
        self.cart.placed_at_ms = placed_at_ms;
        self
    }

    /// Moves the shipping address to `location`.
    pub fn ship_to(mut self, location: Coordinates) -> Self {
        self.cart.shipping_address.location = location;
        self
    }

    /// The cart.
    pub fn build(self) -> Cart {
        self.cart
    }
}

/// Builds a [`RouteRequest`] for a cart from warehouses and stock levels
/// named by SKU and warehouse id, laid out at `build` into the request's
/// matrix as the host lays it out.
#[derive(Clone, Debug)]
pub struct RouteRequestBuilder {
    /// The cart to route.
    cart: Cart,
    /// The warehouses so far.
    warehouses: Vec<Warehouse>,
    /// (warehouse id, SKU, units) so far; a later entry for the same pair
    /// replaces an earlier one.
    stock: Vec<(String, String, u32)>,
}

impl RouteRequestBuilder {
    /// A request to route `cart`, with no warehouses yet.
    pub fn new(cart: Cart) -> Self {
        Self { cart, warehouses: Vec::new(), stock: Vec::new() }
    }

    /// Adds the warehouse `id` at `location`.
    pub fn warehouse(mut self, id: &str, location: Coordinates) -> Self {
        self.warehouses.push(Warehouse { id: id.to_owned(), location });
        self
    }

    /// Says warehouse `warehouse_id` has `available` units of `sku`. Stock
    /// of a SKU the cart does not have, or in a warehouse the request does
    /// not list, is not in the request, as the host would not send it.
    pub fn stock(mut self, warehouse_id: &str, sku: &str, available: u32) -> Self {
        self.stock.push((warehouse_id.to_owned(), sku.to_owned(), available));
        self
    }

    /// The request: one row per cart line, one count per warehouse.
    pub fn build(self) -> RouteRequest {
        let units = |warehouse: &Warehouse, sku: &str| {
            self.stock
                .iter()
                .rev()
                .find(|(id, stocked, _)| *id == warehouse.id && stocked == sku)
                .map_or(0, |(_, _, available)| *available)
        };
        let stock = self
            .cart
            .lines
            .iter()
            .map(|line| {
                self.warehouses.iter().map(|warehouse| units(warehouse, &line.sku)).collect()
            })
            .collect();
        RouteRequest { cart: self.cart, warehouses: self.warehouses, stock }
    }
}

/// Builds a [`RiskRequest`] for a cart: by default the total is the cart's
/// subtotal (nothing off), the customer has placed no orders and holds no
/// units of the cart's SKUs.
#[derive(Clone, Debug)]
pub struct RiskRequestBuilder {
    /// The request so far.
    request: RiskRequest,
}

impl RiskRequestBuilder {
    /// A request to judge `cart`. A cart without a subtotal (no lines, or
    /// lines in several currencies) starts with a total of zero in the
    /// currency of its first line, if any.
    pub fn new(cart: Cart) -> Self {
        let total = cart.subtotal().unwrap_or_else(|_| {
            Money::zero(cart.lines.first().map_or("", |line| line.unit_price.currency.as_str()))
        });
        let units_held =
            cart.lines.iter().map(|line| UnitsHeld { sku: line.sku.clone(), units: 0 }).collect();
        Self {
            request: RiskRequest {
                cart,
                total,
                history: CustomerHistory { orders_placed: 0, units_held },
            },
        }
    }

    /// Sets the total after promotions, written as decimal text such as
    /// "199.00" in the currency of the default total.
    ///
    /// # Panics
    ///
    /// If `total` is not an amount of that currency: this is a test helper,
    /// and a mistyped amount should fail the test loudly.
    pub fn total(mut self, total: &str) -> Self {
        let currency = self.request.total.currency.clone();
        self.request.total = Money::parse(total, &currency).unwrap_or_else(|error| {
            panic!("test risk request total: {error}");
        });
        self
    }

    /// Sets the number of orders the customer has placed in the store.
    pub fn orders_placed(mut self, orders_placed: u64) -> Self {
        self.request.history.orders_placed = orders_placed;
        self
    }

    /// Says the customer already holds `units` of `sku`.
    pub fn holds(mut self, sku: &str, units: u32) -> Self {
        let units_held = &mut self.request.history.units_held;
        match units_held.iter_mut().find(|held| held.sku == sku) {
            Some(held) => held.units = units,
            None => units_held.push(UnitsHeld { sku: sku.to_owned(), units }),
        }
        self
    }

    /// The request.
    pub fn build(self) -> RiskRequest {
        self.request
    }
}

/// Builds a store's event stream: sequence numbers from 1, one apart;
/// timestamps from 2025-11-11 00:00:00 China time, moved on with
/// [`EventStream::after_ms`]; every amount in one currency.
#[derive(Clone, Debug)]
pub struct EventStream {
    /// The currency of every amount.
    currency: String,
    /// The sequence number of the next event.
    next_sequence: u64,
    /// The timestamp of the next event.
    now_ms: u64,
    /// The events so far.
    events: Vec<Event>,
    /// The total of each order placed so far, for its status events.
    totals: BTreeMap<u64, Money>,
}

impl EventStream {
    /// An empty stream whose amounts are in `currency`.
    pub fn new(currency: &str) -> Self {
        Self {
            currency: currency.to_owned(),
            next_sequence: 1,
            // 2025-11-11T00:00:00+08:00.
            now_ms: 1_762_790_400_000,
            events: Vec::new(),
            totals: BTreeMap::new(),
        }
    }

    /// The timestamp the next event gets.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Moves the clock on by `elapsed_ms` for the events that follow.
    pub fn after_ms(mut self, elapsed_ms: u64) -> Self {
        self.now_ms += elapsed_ms;
        self
    }

    /// Sets the timestamp of the events that follow.
    pub fn at_ms(mut self, at_ms: u64) -> Self {
        self.now_ms = at_ms;
        self
    }

    /// Leaves `count` sequence numbers out, as another store's events do.
    pub fn skip_sequences(mut self, count: u64) -> Self {
        self.next_sequence += count;
        self
    }

    /// Places order `order` of `customer_id` with `(sku, quantity, unit
    /// price)` lines, prices written as decimal text such as "129.00":
    /// nothing off, no shipping fee, so the total is the subtotal.
    ///
    /// # Panics
    ///
    /// If a price is not an amount of the stream's currency: this is a test
    /// helper, and a mistyped price should fail the test loudly.
    pub fn order_placed(self, order: u64, customer_id: &str, lines: &[(&str, u32, &str)]) -> Self {
        let currency = self.currency.clone();
        let lines: Vec<(&str, u32, i64)> = lines
            .iter()
            .map(|&(sku, quantity, unit_price)| {
                let unit_price = Money::parse(unit_price, &currency)
                    .unwrap_or_else(|error| panic!("test event line {sku}: {error}"));
                (sku, quantity, unit_price.amount_minor)
            })
            .collect();
        self.order_placed_minor(order, customer_id, &lines)
    }

    /// Like [`EventStream::order_placed`], with unit prices in minor units,
    /// for prices a test computes.
    pub fn order_placed_minor(
        mut self,
        order: u64,
        customer_id: &str,
        lines: &[(&str, u32, i64)],
    ) -> Self {
        let subtotal_minor =
            lines.iter().map(|&(_, quantity, unit_price)| i64::from(quantity) * unit_price).sum();
        let subtotal = self.money(subtotal_minor);
        let placed = OrderPlaced {
            order,
            customer_id: customer_id.to_owned(),
            lines: lines
                .iter()
                .map(|&(sku, quantity, unit_price_minor)| EventLine {
                    sku: sku.to_owned(),
                    quantity,
                    unit_price: self.money(unit_price_minor),
                })
                .collect(),
            subtotal: subtotal.clone(),
            discount: self.money(0),
            shipping: self.money(0),
            total: subtotal.clone(),
            discounts: Vec::new(),
        };
        self.totals.insert(order, subtotal);
        self.push(EventKind::OrderPlaced(placed))
    }

    /// Gives the order placed last a discount of `amount` (decimal text)
    /// from pricing plugin `plugin_id` under rule `code`, lowering its total.
    ///
    /// # Panics
    ///
    /// If the last event is not a placed order, or `amount` is not an amount
    /// of the stream's currency.
    pub fn discount(mut self, plugin_id: &str, code: &str, amount: &str) -> Self {
        let amount = Money::parse(amount, &self.currency)
            .unwrap_or_else(|error| panic!("test discount {code}: {error}"));
        let placed = self.last_placed("discount");
        placed.discount.amount_minor += amount.amount_minor;
        placed.total.amount_minor -= amount.amount_minor;
        placed.discounts.push(Discount {
            plugin_id: plugin_id.to_owned(),
            code: code.to_owned(),
            amount,
        });
        let (order, total) = (placed.order, placed.total.clone());
        self.totals.insert(order, total);
        self
    }

    /// Adds a shipping fee of `amount` (decimal text) to the order placed
    /// last, raising its total.
    ///
    /// # Panics
    ///
    /// As for [`EventStream::discount`].
    pub fn shipping(mut self, amount: &str) -> Self {
        let amount = Money::parse(amount, &self.currency)
            .unwrap_or_else(|error| panic!("test shipping fee: {error}"));
        let placed = self.last_placed("shipping");
        placed.shipping.amount_minor += amount.amount_minor;
        placed.total.amount_minor += amount.amount_minor;
        let (order, total) = (placed.order, placed.total.clone());
        self.totals.insert(order, total);
        self
    }

    /// Order `order` (placed earlier in the stream) was paid.
    pub fn order_paid(self, order: u64) -> Self {
        let status = self.status(order);
        self.push(EventKind::OrderPaid(status))
    }

    /// Order `order` (placed earlier in the stream) was cancelled.
    pub fn order_cancelled(self, order: u64) -> Self {
        let status = self.status(order);
        self.push(EventKind::OrderCancelled(status))
    }

    /// Order `order` (placed earlier in the stream) shipped.
    pub fn order_fulfilled(self, order: u64) -> Self {
        let status = self.status(order);
        self.push(EventKind::OrderFulfilled(status))
    }

    /// `sku` in `warehouse` now has `available`, `reserved` and `sold` units.
    pub fn stock_changed(
        self,
        sku: &str,
        warehouse: &str,
        available: u64,
        reserved: u64,
        sold: u64,
    ) -> Self {
        self.push(EventKind::StockChanged(StockChanged {
            sku: sku.to_owned(),
            warehouse: warehouse.to_owned(),
            available,
            reserved,
            sold,
        }))
    }

    /// `attempts` checkout attempts asking for `units` units of `sku` were
    /// refused for `reason`.
    pub fn checkout_refused(
        self,
        sku: &str,
        attempts: u32,
        units: u64,
        reason: RefusalReason,
    ) -> Self {
        self.push(EventKind::CheckoutRefused(CheckoutRefused {
            sku: sku.to_owned(),
            attempts,
            units,
            reason,
        }))
    }

    /// The events.
    pub fn build(self) -> Vec<Event> {
        self.events
    }

    fn money(&self, amount_minor: i64) -> Money {
        Money::new(amount_minor, &self.currency)
    }

    fn push(mut self, kind: EventKind) -> Self {
        self.events.push(Event { sequence: self.next_sequence, at_ms: self.now_ms, kind });
        self.next_sequence += 1;
        self
    }

    /// The order placed by the last event, for `what` to change.
    fn last_placed(&mut self, what: &str) -> &mut OrderPlaced {
        match self.events.last_mut().map(|event| &mut event.kind) {
            Some(EventKind::OrderPlaced(placed)) => placed,
            _ => panic!("test event stream: `{what}` must follow `order_placed`"),
        }
    }

    /// A status event of `order` with its total.
    fn status(&self, order: u64) -> OrderStatus {
        let total = self
            .totals
            .get(&order)
            .unwrap_or_else(|| panic!("test event stream: order {order} was not placed"))
            .clone();
        OrderStatus { order, total }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_requests_stock_is_laid_out_by_cart_line_and_warehouse() {
        let cart = CartBuilder::new("CNY").line("TEA", 1, "1.00").line("CUP", 1, "1.00").build();
        let request = RouteRequestBuilder::new(cart)
            .warehouse("A", places::SHANGHAI)
            .warehouse("B", places::BEIJING)
            .stock("B", "TEA", 4)
            .stock("A", "CUP", 2)
            .stock("B", "TEA", 5)
            .stock("A", "COAT", 9)
            .stock("C", "TEA", 9)
            .build();
        // Later entries replace earlier ones; a SKU outside the cart and a
        // warehouse outside the request are left out.
        assert_eq!(request.stock, vec![vec![0, 5], vec![2, 0]]);
        assert_eq!(request.available(0, 1), 5);
        assert_eq!(request.available(1, 0), 2);
        assert_eq!(request.available(2, 0), 0, "no such line");
        assert_eq!(request.available(0, 7), 0, "no such warehouse");
    }
}
