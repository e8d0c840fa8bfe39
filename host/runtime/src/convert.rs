//! Conversions between the kernel's types and the WIT types plugins see.
//!
//! Inputs come from the kernel and are already valid. Outputs come from
//! plugins and are checked for shape here (currency, ranges, identifiers,
//! list and text lengths) before they become kernel values; the business
//! rules (a discount below the price, a plan that ships every unit) are
//! the kernel's to check when it applies them.

use std::fmt::Display;

use bazaar_kernel::model::{
    Address, Adjustment, Cart, Coordinates, CustomerSegment, PluginRef, Router, Shipment,
    ShipmentLine, ShipmentPlan, Sku, WarehouseId,
};
use bazaar_kernel::money::{AMOUNT_MINOR_MAX, Currency};

use crate::bindings::types;
use crate::error::CallError;
use crate::limits::RuntimeLimits;
use crate::logistics::{RouteRequest, guest_units};
use crate::risk::{Decision, RiskRequest, RiskVerdict};
use crate::text::sanitize_for_log;

/// How much of a plugin's bad value an error message quotes.
const QUOTED_VALUE_BYTES_MAX: usize = 64;

/// A plugin's value, cut short and made printable, for an error message.
pub(crate) fn quote(value: &str) -> String {
    format!("{:?}", sanitize_for_log(value.to_owned(), QUOTED_VALUE_BYTES_MAX))
}

fn invalid(message: String) -> CallError {
    CallError::InvalidOutput(message)
}

/// `text` now holds `value`, in the buffer it already had.
fn set_text(text: &mut String, value: &str) {
    text.clear();
    text.push_str(value);
}

/// `list` now holds one item per `source` item, each written by `write`
/// over the item at its place, or over `fresh()` past the old end: a list
/// that held as many items before allocates nothing.
fn refill_list<S, T>(
    list: &mut Vec<T>,
    source: impl ExactSizeIterator<Item = S>,
    fresh: impl Fn() -> T,
    mut write: impl FnMut(&mut T, S),
) {
    list.truncate(source.len());
    for (index, item) in source.enumerate() {
        if index == list.len() {
            list.push(fresh());
        }
        write(&mut list[index], item);
    }
}

/// Where a fresh input's places are until they are filled.
const NOWHERE: types::Coordinates = types::Coordinates { latitude_micro: 0, longitude_micro: 0 };

fn guest_coordinates(location: &Coordinates) -> types::Coordinates {
    types::Coordinates {
        latitude_micro: location.latitude_micro,
        longitude_micro: location.longitude_micro,
    }
}

/// A cart with nothing in it, to be filled by [`refill_cart`].
pub(crate) fn empty_cart() -> types::Cart {
    types::Cart {
        store_id: String::new(),
        customer: types::Customer { id: String::new(), segment: types::CustomerSegment::Regular },
        lines: Vec::new(),
        coupon_codes: Vec::new(),
        shipping_address: types::Address {
            country: String::new(),
            region: String::new(),
            city: String::new(),
            street: String::new(),
            postal_code: String::new(),
            location: NOWHERE,
        },
        placed_at_ms: 0,
    }
}

/// Writes `cart` as plugins see it over `guest`, reusing its strings and
/// lists. A worker keeps the input of its last call and refills it: the
/// plugin call copies the input into the guest's memory anyway, and carts
/// of one store have the same shape order after order, so the host side of
/// a call allocates nothing once warm.
pub(crate) fn refill_cart(guest: &mut types::Cart, cart: &Cart) {
    let currency = cart.currency.as_str();
    set_text(&mut guest.store_id, cart.store_id.as_str());
    set_text(&mut guest.customer.id, cart.customer.id.as_str());
    guest.customer.segment = match cart.customer.segment {
        CustomerSegment::NewCustomer => types::CustomerSegment::NewCustomer,
        CustomerSegment::Regular => types::CustomerSegment::Regular,
        CustomerSegment::Vip => types::CustomerSegment::Vip,
        CustomerSegment::Staff => types::CustomerSegment::Staff,
    };
    refill_list(
        &mut guest.lines,
        cart.lines.iter(),
        || types::CartLine {
            sku: String::new(),
            quantity: 0,
            unit_price: types::Money { amount_minor: 0, currency: String::new() },
        },
        |guest_line, line| {
            set_text(&mut guest_line.sku, line.sku.as_str());
            guest_line.quantity = line.quantity;
            guest_line.unit_price.amount_minor = line.unit_price_minor;
            set_text(&mut guest_line.unit_price.currency, currency);
        },
    );
    refill_list(&mut guest.coupon_codes, cart.coupon_codes.iter(), String::new, |code, source| {
        set_text(code, source)
    });
    refill_address(&mut guest.shipping_address, &cart.shipping_address);
    guest.placed_at_ms = cart.placed_at_ms;
}

fn refill_address(guest: &mut types::Address, address: &Address) {
    set_text(&mut guest.country, &address.country);
    set_text(&mut guest.region, &address.region);
    set_text(&mut guest.city, &address.city);
    set_text(&mut guest.street, &address.street);
    set_text(&mut guest.postal_code, &address.postal_code);
    guest.location = guest_coordinates(&address.location);
}

/// A route request with nothing in it, to be filled by
/// [`refill_route_request`].
pub(crate) fn empty_route_request() -> types::RouteRequest {
    types::RouteRequest { cart: empty_cart(), warehouses: Vec::new(), stock: Vec::new() }
}

/// Writes `request` as plugins see it over `guest`, reusing its buffers as
/// [`refill_cart`] does. Stock above `u32::MAX` units is shown as
/// `u32::MAX`: no order line comes near it, so no routing decision changes.
pub(crate) fn refill_route_request(guest: &mut types::RouteRequest, request: &RouteRequest<'_>) {
    refill_cart(&mut guest.cart, request.cart);
    refill_list(
        &mut guest.warehouses,
        request.warehouses.iter(),
        || types::Warehouse { id: String::new(), location: NOWHERE },
        |guest_warehouse, warehouse| {
            set_text(&mut guest_warehouse.id, warehouse.id.as_str());
            guest_warehouse.location = guest_coordinates(&warehouse.location);
        },
    );
    refill_list(&mut guest.stock, request.stock.iter(), Vec::new, |guest_row, row| {
        guest_row.clear();
        guest_row.extend(row.iter().map(|&available| guest_units(available)));
    });
}

/// A risk request with nothing in it, to be filled by
/// [`refill_risk_request`].
pub(crate) fn empty_risk_request() -> types::RiskRequest {
    types::RiskRequest {
        cart: empty_cart(),
        total: types::Money { amount_minor: 0, currency: String::new() },
        history: types::CustomerHistory { orders_placed: 0, units_held: Vec::new() },
    }
}

/// Writes `request` as plugins see it over `guest`, reusing its buffers as
/// [`refill_cart`] does: the total in the cart's currency, and held units
/// above `u32::MAX` shown as `u32::MAX` (no limit comes near it, so no
/// verdict changes).
pub(crate) fn refill_risk_request(guest: &mut types::RiskRequest, request: &RiskRequest) {
    refill_cart(&mut guest.cart, &request.cart);
    guest.total.amount_minor = request.total_minor;
    set_text(&mut guest.total.currency, request.cart.currency.as_str());
    guest.history.orders_placed = request.history.orders_placed;
    refill_list(
        &mut guest.history.units_held,
        request.history.units_held.iter(),
        || types::UnitsHeld { sku: String::new(), units: 0 },
        |guest_held, held| {
            set_text(&mut guest_held.sku, held.sku.as_str());
            guest_held.units = guest_units(held.units);
        },
    );
}

/// The `index`-th item of a plugin's output, as error messages name it:
/// formatted only when there is an error, since the checks run on every
/// order.
struct Item {
    kind: &'static str,
    index: usize,
}

impl Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.index)
    }
}

/// Checks an amount a plugin returned: in the cart's currency, not
/// negative, within the kernel's range.
fn check_money(
    what: &dyn Display,
    money: &types::Money,
    currency: Currency,
) -> Result<i64, CallError> {
    if money.currency != currency.as_str() {
        return Err(invalid(format!(
            "{what} is in currency {}, but the cart is in {currency}",
            quote(&money.currency)
        )));
    }
    if money.amount_minor < 0 {
        return Err(invalid(format!("{what} is negative ({} minor units)", money.amount_minor)));
    }
    if money.amount_minor > AMOUNT_MINOR_MAX {
        return Err(invalid(format!(
            "{what} is {} minor units, above the maximum of {AMOUNT_MINOR_MAX}",
            money.amount_minor
        )));
    }
    Ok(money.amount_minor)
}

/// Checks a text a plugin returned against a length limit.
fn check_text(what: &dyn Display, text: &str, bytes_max: usize) -> Result<(), CallError> {
    if text.len() > bytes_max {
        return Err(invalid(format!(
            "{what} is {} bytes long; at most {bytes_max} are accepted",
            text.len()
        )));
    }
    Ok(())
}

/// Checks that a text a plugin returned holds no control characters: codes
/// and reasons end up in logs, journals and customers' screens, where a
/// newline or an escape sequence could forge lines or garble the display.
fn check_printable(what: &dyn Display, text: &str) -> Result<(), CallError> {
    if text.chars().any(char::is_control) {
        return Err(invalid(format!("{what} contains control characters: {}", quote(text))));
    }
    Ok(())
}

/// A risk plugin's verdict, checked for shape and tagged with its plugin:
/// a code that is present, printable and short; a printable reason within
/// the limit on text shown to people, and present for a rejection, since
/// the customer is shown it.
pub(crate) fn verdict_from_guest(
    output: types::RiskVerdict,
    plugin: &PluginRef,
    limits: &RuntimeLimits,
) -> Result<RiskVerdict, CallError> {
    if output.code.is_empty() {
        return Err(invalid("the verdict has an empty code".to_owned()));
    }
    check_text(&"the verdict's code", &output.code, limits.output_code_bytes_max)?;
    check_printable(&"the verdict's code", &output.code)?;
    check_text(&"the verdict's reason", &output.reason, limits.output_text_bytes_max)?;
    check_printable(&"the verdict's reason", &output.reason)?;
    let decision = match output.decision {
        types::Decision::Approve => Decision::Approve,
        types::Decision::Reject => Decision::Reject,
    };
    if decision == Decision::Reject && output.reason.trim().is_empty() {
        return Err(invalid(
            "the verdict rejects the order with an empty reason; the customer is shown the reason"
                .to_owned(),
        ));
    }
    Ok(RiskVerdict { decision, code: output.code, reason: output.reason, plugin: plugin.clone() })
}

/// A pricing plugin's adjustments as kernel values, checked for shape.
pub(crate) fn adjustments_from_guest(
    output: Vec<types::PriceAdjustment>,
    cart: &Cart,
    plugin: &PluginRef,
    limits: &RuntimeLimits,
) -> Result<Vec<Adjustment>, CallError> {
    if output.len() > limits.adjustments_per_call_max {
        return Err(invalid(format!(
            "{} price adjustments; at most {} are accepted per call",
            output.len(),
            limits.adjustments_per_call_max
        )));
    }
    output
        .into_iter()
        .enumerate()
        .map(|(index, adjustment)| {
            let what = Item { kind: "adjustment", index };
            if let Some(line) = adjustment.line_index
                && usize::try_from(line).map_or(true, |line| line >= cart.lines.len())
            {
                return Err(invalid(format!(
                    "{what} applies to line {line}, but the cart has {} lines",
                    cart.lines.len()
                )));
            }
            let amount_off_minor =
                check_money(&format_args!("{what} amount"), &adjustment.amount_off, cart.currency)?;
            if adjustment.code.is_empty() {
                return Err(invalid(format!("{what} has an empty code")));
            }
            check_text(
                &format_args!("{what} code"),
                &adjustment.code,
                limits.output_code_bytes_max,
            )?;
            check_text(
                &format_args!("{what} reason"),
                &adjustment.reason,
                limits.output_text_bytes_max,
            )?;
            Ok(Adjustment {
                line_index: adjustment.line_index,
                amount_off_minor,
                code: adjustment.code,
                reason: adjustment.reason,
                plugin: plugin.clone(),
            })
        })
        .collect()
}

/// A logistics plugin's plan as a kernel value, checked for shape.
pub(crate) fn plan_from_guest(
    output: types::ShipmentPlan,
    cart: &Cart,
    plugin: &PluginRef,
    limits: &RuntimeLimits,
) -> Result<ShipmentPlan, CallError> {
    if output.shipments.len() > limits.shipments_per_plan_max {
        return Err(invalid(format!(
            "{} shipments; at most {} are accepted per plan",
            output.shipments.len(),
            limits.shipments_per_plan_max
        )));
    }
    let shipments = output
        .shipments
        .into_iter()
        .enumerate()
        .map(|(index, shipment)| shipment_from_guest(index, shipment, cart, limits))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ShipmentPlan { shipments, routed_by: Router::Plugin(plugin.clone()), fallback_reason: None })
}

fn shipment_from_guest(
    index: usize,
    shipment: types::Shipment,
    cart: &Cart,
    limits: &RuntimeLimits,
) -> Result<Shipment, CallError> {
    let what = Item { kind: "shipment", index };
    let warehouse = WarehouseId::new(shipment.warehouse_id.as_str()).map_err(|_| {
        invalid(format!("{what} names an invalid warehouse id {}", quote(&shipment.warehouse_id)))
    })?;
    if shipment.lines.is_empty() {
        return Err(invalid(format!("{what} carries no lines")));
    }
    if shipment.lines.len() > limits.shipment_lines_max {
        return Err(invalid(format!(
            "{what} has {} lines; at most {} are accepted",
            shipment.lines.len(),
            limits.shipment_lines_max
        )));
    }
    let lines = shipment
        .lines
        .into_iter()
        .map(|line| {
            let sku = Sku::new(line.sku.as_str()).map_err(|_| {
                invalid(format!("{what} names an invalid sku {}", quote(&line.sku)))
            })?;
            if line.quantity == 0 {
                return Err(invalid(format!("{what} ships 0 units of sku {sku}")));
            }
            Ok(ShipmentLine { sku, quantity: line.quantity })
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_text(&format_args!("{what} carrier"), &shipment.carrier, limits.output_text_bytes_max)?;
    let fee_minor = check_money(&format_args!("{what} fee"), &shipment.fee, cart.currency)?;
    Ok(Shipment {
        warehouse,
        lines,
        carrier: shipment.carrier,
        fee_minor,
        eta_hours: shipment.eta_hours,
    })
}

#[cfg(test)]
mod tests {
    use bazaar_kernel::model::{Customer, CustomerId, PluginId, StoreId, Warehouse};

    use super::*;

    fn cny_cart() -> Cart {
        Cart {
            store_id: StoreId::new("store-a").unwrap(),
            currency: Currency::parse("CNY").unwrap(),
            customer: Customer {
                id: CustomerId::new("customer-1").unwrap(),
                segment: CustomerSegment::Vip,
            },
            lines: vec![bazaar_kernel::model::CartLine {
                sku: Sku::new("TEA").unwrap(),
                quantity: 1,
                unit_price_minor: 100,
            }],
            coupon_codes: Vec::new(),
            shipping_address: Address::default(),
            placed_at_ms: 0,
        }
    }

    fn plugin() -> PluginRef {
        PluginRef { id: PluginId::new("test-plugin").unwrap(), version: "1.0.0".to_owned() }
    }

    fn cny(amount_minor: i64) -> types::Money {
        types::Money { amount_minor, currency: "CNY".to_owned() }
    }

    fn adjustment(
        line_index: Option<u32>,
        amount_minor: i64,
        code: &str,
    ) -> types::PriceAdjustment {
        types::PriceAdjustment {
            line_index,
            amount_off: cny(amount_minor),
            code: code.to_owned(),
            reason: "because".to_owned(),
        }
    }

    fn check(adjustments: Vec<types::PriceAdjustment>) -> Result<Vec<Adjustment>, CallError> {
        adjustments_from_guest(adjustments, &cny_cart(), &plugin(), &RuntimeLimits::default())
    }

    fn shipment(
        warehouse_id: &str,
        sku: &str,
        quantity: u32,
        fee: types::Money,
    ) -> types::Shipment {
        types::Shipment {
            warehouse_id: warehouse_id.to_owned(),
            lines: vec![types::ShipmentLine { sku: sku.to_owned(), quantity }],
            carrier: "SF Express".to_owned(),
            fee,
            eta_hours: 24,
        }
    }

    fn check_plan(shipments: Vec<types::Shipment>) -> Result<ShipmentPlan, CallError> {
        plan_from_guest(
            types::ShipmentPlan { shipments },
            &cny_cart(),
            &plugin(),
            &RuntimeLimits::default(),
        )
    }

    fn refused_because(result: Result<impl std::fmt::Debug, CallError>, fragment: &str) {
        match result {
            Err(CallError::InvalidOutput(text)) => {
                assert!(text.contains(fragment), "{text:?} does not mention {fragment:?}")
            }
            other => panic!("expected invalid output mentioning {fragment:?}, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_adjustment_becomes_a_kernel_adjustment_tagged_with_its_plugin() {
        let adjustments = check(vec![adjustment(Some(0), 30, "flash-sale")]).unwrap();
        assert_eq!(
            adjustments,
            vec![Adjustment {
                line_index: Some(0),
                amount_off_minor: 30,
                code: "flash-sale".to_owned(),
                reason: "because".to_owned(),
                plugin: plugin(),
            }]
        );
    }

    #[test]
    fn adjustments_of_the_wrong_shape_are_refused() {
        refused_because(check(vec![adjustment(None, -1, "c")]), "adjustment 0 amount is negative");
        refused_because(check(vec![adjustment(None, AMOUNT_MINOR_MAX + 1, "c")]), "maximum");
        refused_because(check(vec![adjustment(Some(1), 1, "c")]), "line 1");
        refused_because(check(vec![adjustment(None, 1, "")]), "empty code");
        let long_code = vec![adjustment(None, 1, "c"), adjustment(None, 1, &"c".repeat(65))];
        refused_because(check(long_code), "adjustment 1 code is 65 bytes");
        refused_because(check(vec![adjustment(None, 1, "c"); 65]), "65 price adjustments");
    }

    #[test]
    fn a_valid_plan_is_marked_as_routed_by_its_plugin() {
        let plan = check_plan(vec![shipment("wh-1", "TEA", 1, cny(500))]).unwrap();
        assert_eq!(plan.routed_by, Router::Plugin(plugin()));
        assert_eq!(plan.shipments[0].warehouse.as_str(), "wh-1");
        assert_eq!(plan.shipments[0].fee_minor, 500);
    }

    #[test]
    fn plans_of_the_wrong_shape_are_refused() {
        refused_because(check_plan(vec![shipment("wh 1", "TEA", 1, cny(0))]), "warehouse id");
        refused_because(check_plan(vec![shipment("wh-1", "", 1, cny(0))]), "invalid sku");
        refused_because(check_plan(vec![shipment("wh-1", "TEA", 0, cny(0))]), "0 units");
        let dollars = types::Money { amount_minor: 1, currency: "USD".to_owned() };
        refused_because(
            check_plan(vec![shipment("wh-1", "TEA", 1, dollars)]),
            "shipment 0 fee is in currency \"USD\"",
        );
        let mut empty = shipment("wh-1", "TEA", 1, cny(0));
        empty.lines.clear();
        refused_because(check_plan(vec![empty]), "no lines");
        let many = vec![shipment("wh-1", "TEA", 1, cny(0)); 33];
        refused_because(check_plan(many), "33 shipments");
    }

    fn verdict(decision: types::Decision, code: &str, reason: &str) -> types::RiskVerdict {
        types::RiskVerdict { decision, code: code.to_owned(), reason: reason.to_owned() }
    }

    fn check_verdict(output: types::RiskVerdict) -> Result<RiskVerdict, CallError> {
        verdict_from_guest(output, &plugin(), &RuntimeLimits::default())
    }

    #[test]
    fn a_valid_verdict_is_tagged_with_its_plugin() {
        let approved = check_verdict(verdict(types::Decision::Approve, "approved", "")).unwrap();
        assert!(approved.is_approved());
        assert_eq!(approved.plugin, plugin());
        let rejected =
            check_verdict(verdict(types::Decision::Reject, "order-rate-over-limit", "Too fast."))
                .unwrap();
        assert_eq!(rejected.decision, Decision::Reject);
        assert_eq!(rejected.reason, "Too fast.");
    }

    #[test]
    fn verdicts_of_the_wrong_shape_are_refused() {
        use types::Decision::{Approve, Reject};
        refused_because(check_verdict(verdict(Approve, "", "")), "empty code");
        refused_because(check_verdict(verdict(Reject, &"c".repeat(65), "r")), "code is 65 bytes");
        refused_because(
            check_verdict(verdict(Reject, "c", &"r".repeat(257))),
            "reason is 257 bytes",
        );
        refused_because(check_verdict(verdict(Reject, "c", " ")), "empty reason");
        refused_because(check_verdict(verdict(Reject, "c", "a\nb")), "control characters");
        refused_because(check_verdict(verdict(Approve, "c\u{1b}[2J", "")), "control characters");
    }

    #[test]
    fn a_risk_request_carries_the_total_in_the_carts_currency_and_caps_held_units() {
        let request = RiskRequest {
            cart: cny_cart(),
            total_minor: 90,
            history: crate::CustomerHistory {
                orders_placed: 4,
                units_held: vec![crate::UnitsHeld {
                    sku: Sku::new("TEA").unwrap(),
                    units: u64::from(u32::MAX) + 1,
                }],
            },
        };
        let mut guest = empty_risk_request();
        refill_risk_request(&mut guest, &request);
        assert_eq!(guest.total.amount_minor, 90);
        assert_eq!(guest.total.currency, "CNY");
        assert_eq!(guest.history.orders_placed, 4);
        assert_eq!(guest.history.units_held[0].sku, "TEA");
        assert_eq!(guest.history.units_held[0].units, u32::MAX);
    }

    #[test]
    fn stock_beyond_u32_is_shown_as_the_largest_u32() {
        let cart = cny_cart();
        let request = RouteRequest {
            cart: &cart,
            warehouses: Vec::new(),
            stock: vec![vec![u64::from(u32::MAX) + 5, 7]],
        };
        let mut guest = empty_route_request();
        refill_route_request(&mut guest, &request);
        assert_eq!(guest.stock, vec![vec![u32::MAX, 7]]);
    }

    /// A route request as plugins see it, written over a fresh value.
    fn fresh(request: &RouteRequest<'_>) -> String {
        let mut guest = empty_route_request();
        refill_route_request(&mut guest, request);
        format!("{guest:?}")
    }

    #[test]
    fn a_refilled_input_equals_a_fresh_one_whatever_it_held_before() {
        let big = Cart {
            lines: ["TEA", "CUP", "POT"]
                .iter()
                .map(|sku| bazaar_kernel::model::CartLine {
                    sku: Sku::new(sku).unwrap(),
                    quantity: 2,
                    unit_price_minor: 300,
                })
                .collect(),
            coupon_codes: vec!["SAVE-10-PERCENT".to_owned(), "VIP".to_owned()],
            shipping_address: Address {
                country: "CN".to_owned(),
                region: "Zhejiang".to_owned(),
                city: "Hangzhou".to_owned(),
                street: "1 Hefang Street".to_owned(),
                postal_code: "310000".to_owned(),
                location: Default::default(),
            },
            ..cny_cart()
        };
        let warehouses = [
            Warehouse {
                id: WarehouseId::new("HGH").unwrap(),
                name: "Hangzhou".to_owned(),
                location: Default::default(),
            },
            Warehouse {
                id: WarehouseId::new("SHA").unwrap(),
                name: "Shanghai".to_owned(),
                location: Default::default(),
            },
        ];
        let big_request = RouteRequest {
            cart: &big,
            warehouses: warehouses.iter().collect(),
            stock: vec![vec![5, 6], vec![7, 8], vec![9, 10]],
        };
        let small = cny_cart();
        let small_request =
            RouteRequest { cart: &small, warehouses: vec![&warehouses[1]], stock: vec![vec![1]] };

        let mut kept = empty_route_request();
        for request in [&big_request, &small_request, &big_request, &small_request] {
            refill_route_request(&mut kept, request);
            assert_eq!(format!("{kept:?}"), fresh(request));
        }
        assert_eq!(kept.cart.lines.len(), 1);
        assert_eq!(kept.cart.lines[0].sku, "TEA");
        assert!(kept.cart.coupon_codes.is_empty());
        assert_eq!(kept.cart.shipping_address.city, "");
        assert_eq!(kept.warehouses.len(), 1);
        assert_eq!(kept.warehouses[0].id, "SHA");
    }
}
