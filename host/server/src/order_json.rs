//! The JSON of orders, written straight from the kernel's orders into one
//! buffer.
//!
//! Every placed order is answered with the whole order, which made its
//! encoding the largest part of the server's own work per order: going
//! through the [`Order`](crate::dto::Order) view and `serde` built some
//! thirty strings per order (each amount's currency among them), then
//! escaped every field name again. This writer emits the field names as
//! literals and escapes only the values. It writes exactly the document that
//! serialising the view writes, which stays the schema in the OpenAPI
//! document; a test checks that the two agree, field by field and byte by
//! byte, so a change to one without the other fails the build's tests.

use std::sync::Arc;

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bazaar_kernel::model::{
    self as kernel, CustomerSegment, IdempotencyKey, OrderNumber, OrderStatus, Router, StoreId,
};
use bazaar_kernel::money::Currency;

/// Room reserved for one order's JSON: an order of three lines with a
/// discount is about 1.3 KiB, so the buffer is allocated once.
const ORDER_JSON_CAPACITY_BYTES: usize = 2 * 1024;

/// A JSON document already encoded, answered as `application/json`.
pub struct JsonBytes(pub Vec<u8>);

impl IntoResponse for JsonBytes {
    fn into_response(self) -> Response {
        ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], self.0).into_response()
    }
}

/// The JSON of `order` of `store`.
pub fn order(store: &StoreId, order: &kernel::Order) -> JsonBytes {
    let mut out = Vec::with_capacity(ORDER_JSON_CAPACITY_BYTES);
    write_order(&mut out, store, order);
    JsonBytes(out)
}

/// The JSON of a page of orders: `{"orders": [...], "next_after": n}`.
pub fn order_page(
    store: &StoreId,
    orders: &[Arc<kernel::Order>],
    next_after: Option<OrderNumber>,
) -> JsonBytes {
    let mut out = Vec::with_capacity(ORDER_JSON_CAPACITY_BYTES * orders.len().max(1));
    out.extend_from_slice(b"{\"orders\":");
    write_array(&mut out, orders, |out, order| write_order(out, store, order));
    out.extend_from_slice(b",\"next_after\":");
    match next_after {
        Some(number) => write_u64(&mut out, number),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    JsonBytes(out)
}

/// Appends the order's document, in the field order of the view.
fn write_order(out: &mut Vec<u8>, store: &StoreId, order: &kernel::Order) {
    let currency = order.currency;
    let request = &order.request;
    out.extend_from_slice(b"{\"store\":");
    write_str(out, store.as_str());
    out.extend_from_slice(b",\"number\":");
    write_u64(out, order.number);
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(status_name(order.status).as_bytes());
    out.extend_from_slice(b"\",\"idempotency_key\":");
    write_optional_str(out, request.idempotency_key.as_ref().map(IdempotencyKey::as_str));
    out.extend_from_slice(b",\"customer\":{\"id\":");
    write_str(out, request.customer.id.as_str());
    out.extend_from_slice(b",\"segment\":\"");
    out.extend_from_slice(segment_name(request.customer.segment).as_bytes());
    out.extend_from_slice(b"\"},\"lines\":");
    write_array(out, &order.lines, |out, line| {
        out.extend_from_slice(b"{\"sku\":");
        write_str(out, line.sku.as_str());
        out.extend_from_slice(b",\"quantity\":");
        write_u64(out, u64::from(line.quantity));
        out.extend_from_slice(b",\"unit_price\":");
        write_money(out, line.unit_price_minor, currency);
        out.extend_from_slice(b",\"amount\":");
        let amount_minor = i64::from(line.quantity).saturating_mul(line.unit_price_minor);
        write_money(out, amount_minor, currency);
        out.push(b'}');
    });
    write_coupons_and_address(out, request);
    out.extend_from_slice(b",\"adjustments\":");
    write_array(out, &order.adjustments, |out, adjustment| {
        out.extend_from_slice(b"{\"plugin\":");
        write_plugin(out, &adjustment.plugin);
        out.extend_from_slice(b",\"line_index\":");
        match adjustment.line_index {
            Some(line) => write_u64(out, u64::from(line)),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"amount_off\":");
        write_money(out, adjustment.amount_off_minor, currency);
        out.extend_from_slice(b",\"code\":");
        write_str(out, &adjustment.code);
        out.extend_from_slice(b",\"reason\":");
        write_str(out, &adjustment.reason);
        out.push(b'}');
    });
    out.extend_from_slice(b",\"pricing_failures\":");
    write_array(out, &order.pricing_failures, |out, failure| {
        out.extend_from_slice(b"{\"plugin\":");
        write_plugin(out, &failure.plugin);
        out.extend_from_slice(b",\"reason\":");
        write_str(out, &failure.reason);
        out.push(b'}');
    });
    let plan = &order.shipment_plan;
    out.extend_from_slice(b",\"shipment_plan\":{\"routed_by\":");
    match &plan.routed_by {
        Router::BuiltIn => out.extend_from_slice(b"{\"kind\":\"built_in\",\"plugin\":null}"),
        Router::Plugin(plugin) => {
            out.extend_from_slice(b"{\"kind\":\"plugin\",\"plugin\":");
            write_plugin(out, plugin);
            out.push(b'}');
        }
    }
    out.extend_from_slice(b",\"fallback_reason\":");
    write_optional_str(out, plan.fallback_reason.as_deref());
    out.extend_from_slice(b",\"shipments\":");
    write_array(out, &plan.shipments, |out, shipment| {
        out.extend_from_slice(b"{\"warehouse\":");
        write_str(out, shipment.warehouse.as_str());
        out.extend_from_slice(b",\"carrier\":");
        write_str(out, &shipment.carrier);
        out.extend_from_slice(b",\"fee\":");
        write_money(out, shipment.fee_minor, currency);
        out.extend_from_slice(b",\"eta_hours\":");
        write_u64(out, u64::from(shipment.eta_hours));
        out.extend_from_slice(b",\"lines\":");
        write_sku_quantities(
            out,
            shipment.lines.iter().map(|line| (line.sku.as_str(), line.quantity)),
        );
        out.push(b'}');
    });
    let totals = &order.totals;
    out.extend_from_slice(b"},\"totals\":{\"subtotal\":");
    write_money(out, totals.subtotal_minor, currency);
    out.extend_from_slice(b",\"discount\":");
    write_money(out, totals.discount_minor, currency);
    out.extend_from_slice(b",\"shipping\":");
    write_money(out, totals.shipping_minor, currency);
    out.extend_from_slice(b",\"total\":");
    write_money(out, totals.total_minor, currency);
    out.extend_from_slice(b"},\"placed_at_ms\":");
    write_u64(out, order.placed_at_ms);
    out.extend_from_slice(b",\"updated_at_ms\":");
    write_u64(out, order.updated_at_ms);
    out.push(b'}');
}

/// The status as the view names it.
fn status_name(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Reserved => "reserved",
        OrderStatus::Paid => "paid",
        OrderStatus::Picked => "picked",
        OrderStatus::Packed => "packed",
        OrderStatus::Fulfilled => "fulfilled",
        OrderStatus::Cancelled => "cancelled",
    }
}

/// The segment as the view names it.
fn segment_name(segment: CustomerSegment) -> &'static str {
    match segment {
        CustomerSegment::NewCustomer => "new_customer",
        CustomerSegment::Regular => "regular",
        CustomerSegment::Vip => "vip",
        CustomerSegment::Staff => "staff",
    }
}

/// `{"id": ..., "version": ...}`.
fn write_plugin(out: &mut Vec<u8>, plugin: &kernel::PluginRef) {
    out.extend_from_slice(b"{\"id\":");
    write_str(out, plugin.id.as_str());
    out.extend_from_slice(b",\"version\":");
    write_str(out, &plugin.version);
    out.push(b'}');
}

/// `{"amount_minor": ..., "currency": ...}`.
fn write_money(out: &mut Vec<u8>, amount_minor: i64, currency: Currency) {
    out.extend_from_slice(b"{\"amount_minor\":");
    write_i64(out, amount_minor);
    out.extend_from_slice(b",\"currency\":");
    write_str(out, currency.as_str());
    out.push(b'}');
}

/// A string, or `null`.
fn write_optional_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => write_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON array of `items`, each written by `write_item`.
fn write_array<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut write_item: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_item(out, item);
    }
    out.push(b']');
}

/// A JSON array of `{"sku", "quantity"}` objects.
pub fn write_sku_quantities<'a>(out: &mut Vec<u8>, lines: impl Iterator<Item = (&'a str, u32)>) {
    write_array(out, lines, |out, (sku, quantity)| {
        out.extend_from_slice(b"{\"sku\":");
        write_str(out, sku);
        out.extend_from_slice(b",\"quantity\":");
        write_u64(out, u64::from(quantity));
        out.push(b'}');
    });
}

/// The `coupon_codes` and `shipping_address` members of an order request,
/// each after a comma, as the API takes them and answers them.
pub fn write_coupons_and_address(out: &mut Vec<u8>, request: &kernel::OrderRequest) {
    out.extend_from_slice(b",\"coupon_codes\":");
    write_array(out, &request.coupon_codes, |out, code| write_str(out, code));
    let address = &request.shipping_address;
    out.extend_from_slice(b",\"shipping_address\":{\"country\":");
    write_str(out, &address.country);
    out.extend_from_slice(b",\"region\":");
    write_str(out, &address.region);
    out.extend_from_slice(b",\"city\":");
    write_str(out, &address.city);
    out.extend_from_slice(b",\"street\":");
    write_str(out, &address.street);
    out.extend_from_slice(b",\"postal_code\":");
    write_str(out, &address.postal_code);
    out.extend_from_slice(b",\"location\":{\"latitude_micro\":");
    write_i64(out, i64::from(address.location.latitude_micro));
    out.extend_from_slice(b",\"longitude_micro\":");
    write_i64(out, i64::from(address.location.longitude_micro));
    out.extend_from_slice(b"}}");
}

/// A JSON string, escaped as `serde_json` escapes it: quote and backslash
/// by a backslash, the control characters below U+0020 by their short form
/// or `\u00xx`, everything else (UTF-8 included) as it is.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    // Nearly every value (ids, SKUs, reasons) needs no escaping: find how
    // much of it is plain eight bytes at a time and copy that in one go.
    let plain = plain_prefix_len(bytes);
    out.extend_from_slice(&bytes[..plain]);
    write_escaped(out, &bytes[plain..]);
    out.push(b'"');
}

/// How many leading bytes of `bytes` need no escaping, counted in whole
/// eight-byte words (the rest is left to [`write_escaped`]).
fn plain_prefix_len(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    // Non-zero if some byte of `word` is below `bound` (at most 0x80); a
    // byte of 0x80 or more never counts, so UTF-8 passes as it is.
    let has_byte_below =
        |word: u64, bound: u8| word.wrapping_sub(ONES * u64::from(bound)) & !word & HIGH_BITS;
    let has_byte = |word: u64, byte: u8| has_byte_below(word ^ (ONES * u64::from(byte)), 1);
    let mut plain = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        if has_byte_below(word, 0x20) | has_byte(word, b'"') | has_byte(word, b'\\') != 0 {
            break;
        }
        plain += 8;
    }
    plain
}

/// Appends `bytes` escaped, without quotes.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut unescaped_from = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let short: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[unescaped_from..index]);
        if short.is_empty() {
            let code = [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX_DIGITS[usize::from(byte >> 4)],
                HEX_DIGITS[usize::from(byte & 0xf)],
            ];
            out.extend_from_slice(&code);
        } else {
            out.extend_from_slice(short);
        }
        unescaped_from = index + 1;
    }
    out.extend_from_slice(&bytes[unescaped_from..]);
}

/// A signed integer in decimal.
pub fn write_i64(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    write_u64(out, value.unsigned_abs());
}

/// An unsigned integer in decimal.
pub fn write_u64(out: &mut Vec<u8>, mut value: u64) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use bazaar_kernel::model::{
        Address, Adjustment, CartLine, Coordinates, Customer, CustomerId, OrderRequest,
        PluginFailure, PluginId, PluginRef, RiskCheck, Shipment, ShipmentLine, ShipmentPlan, Sku,
        Totals, WarehouseId,
    };

    use super::*;
    use crate::dto;

    fn plugin(id: &str) -> PluginRef {
        PluginRef { id: PluginId::new(id).unwrap(), version: "1.2.3".into() }
    }

    /// An order with every optional part present, and text that needs
    /// escaping in every free-text field.
    fn full_order() -> kernel::Order {
        let awkward =
            "quote \" backslash \\ tab \t newline \n nul \u{0} bell \u{7} del \u{7f} 杭州 é /";
        kernel::Order {
            number: 42,
            request: OrderRequest {
                idempotency_key: Some("key-\"1\"".into()),
                customer: Customer {
                    id: CustomerId::new("c-7").unwrap(),
                    segment: CustomerSegment::Vip,
                },
                lines: Vec::new(),
                coupon_codes: vec!["D11-10".into(), awkward.into()],
                shipping_address: Address {
                    country: "CN".into(),
                    region: "浙江".into(),
                    city: awkward.into(),
                    street: "1 \"Double\" Eleven Road\r\n".into(),
                    postal_code: String::new(),
                    location: Coordinates {
                        latitude_micro: -30_274_084,
                        longitude_micro: 120_155_070,
                    },
                },
            },
            request_fingerprint: [7; 32],
            lines: vec![
                CartLine {
                    sku: Sku::new("PHONE-1").unwrap(),
                    quantity: 2,
                    unit_price_minor: 599_900,
                },
                CartLine { sku: Sku::new("case.2").unwrap(), quantity: 1, unit_price_minor: -5 },
            ],
            adjustments: Box::new([
                Adjustment {
                    line_index: Some(0),
                    amount_off_minor: 10_000,
                    code: "spend-300-get-50".into(),
                    reason: awkward.into(),
                    plugin: plugin("pricing-promotions"),
                },
                Adjustment {
                    line_index: None,
                    amount_off_minor: i64::MIN,
                    code: "order".into(),
                    reason: String::new(),
                    plugin: plugin("bulk"),
                },
            ]),
            pricing_failures: Box::new([PluginFailure {
                plugin: plugin("hostile-pricing"),
                reason: "trap: \u{1f} unreachable".into(),
            }]),
            risk_checks: Box::new([RiskCheck {
                plugin: plugin("risk-guard"),
                code: "ok".into(),
                reason: "fine".into(),
            }]),
            shipment_plan: ShipmentPlan {
                shipments: vec![
                    Shipment {
                        warehouse: WarehouseId::new("HGH").unwrap(),
                        lines: vec![ShipmentLine {
                            sku: Sku::new("PHONE-1").unwrap(),
                            quantity: 2,
                        }],
                        carrier: "SF Express".into(),
                        fee_minor: 1_200,
                        eta_hours: 24,
                    },
                    Shipment {
                        warehouse: WarehouseId::new("SHA").unwrap(),
                        lines: vec![
                            ShipmentLine { sku: Sku::new("case.2").unwrap(), quantity: 1 },
                            ShipmentLine { sku: Sku::new("PHONE-1").unwrap(), quantity: 0 },
                        ],
                        carrier: awkward.into(),
                        fee_minor: 0,
                        eta_hours: u32::MAX,
                    },
                ],
                routed_by: Router::Plugin(plugin("logistics-router")),
                fallback_reason: None,
            },
            totals: Totals {
                subtotal_minor: 1_199_795,
                discount_minor: 10_000,
                shipping_minor: 1_200,
                total_minor: 1_190_995,
            },
            limited_units: Box::default(),
            currency: Currency::parse("CNY").unwrap(),
            status: OrderStatus::Reserved,
            placed_at_ms: 1_700_000_000_000,
            updated_at_ms: u64::MAX,
        }
    }

    /// An order with every optional part absent.
    fn bare_order() -> kernel::Order {
        let mut order = full_order();
        order.request.idempotency_key = None;
        order.request.coupon_codes.clear();
        order.lines.clear();
        order.adjustments = Box::default();
        order.pricing_failures = Box::default();
        order.shipment_plan = ShipmentPlan {
            shipments: Vec::new(),
            routed_by: Router::BuiltIn,
            fallback_reason: Some("logistics-router@1.2.3 trapped".into()),
        };
        order.totals = Totals::default();
        order
    }

    fn view_json(store: &StoreId, order: &kernel::Order) -> Vec<u8> {
        serde_json::to_vec(&dto::Order::of(store, order)).unwrap()
    }

    #[test]
    fn integers_are_written_in_full_with_their_sign() {
        let mut out = Vec::new();
        write_u64(&mut out, u64::MAX);
        out.push(b' ');
        write_u64(&mut out, 0);
        out.push(b' ');
        write_i64(&mut out, i64::MIN);
        out.push(b' ');
        write_i64(&mut out, 7);
        assert_eq!(String::from_utf8(out).unwrap(), format!("{} 0 {} 7", u64::MAX, i64::MIN));
    }

    #[test]
    fn an_order_is_written_byte_for_byte_as_its_view_serialises() {
        let store = StoreId::new("flagship-1").unwrap();
        for order in [full_order(), bare_order()] {
            let written = super::order(&store, &order).0;
            assert_eq!(
                String::from_utf8(written).unwrap(),
                String::from_utf8(view_json(&store, &order)).unwrap()
            );
        }
    }

    #[test]
    fn every_status_and_segment_is_named_as_the_view_names_it() {
        let store = StoreId::new("s").unwrap();
        let statuses = [
            OrderStatus::Reserved,
            OrderStatus::Paid,
            OrderStatus::Picked,
            OrderStatus::Packed,
            OrderStatus::Fulfilled,
            OrderStatus::Cancelled,
        ];
        let segments = [
            CustomerSegment::NewCustomer,
            CustomerSegment::Regular,
            CustomerSegment::Vip,
            CustomerSegment::Staff,
        ];
        for (status, segment) in statuses.into_iter().zip(segments.into_iter().cycle()) {
            let mut order = bare_order();
            order.status = status;
            order.request.customer.segment = segment;
            assert_eq!(super::order(&store, &order).0, view_json(&store, &order));
        }
    }

    #[test]
    fn a_page_of_orders_is_written_as_its_view_serialises() {
        let store = StoreId::new("s").unwrap();
        let orders = [Arc::new(full_order()), Arc::new(bare_order())];
        for (page, next_after) in [(&orders[..], Some(2)), (&orders[..1], None), (&[][..], None)] {
            let view = dto::OrderList {
                orders: page.iter().map(|order| dto::Order::of(&store, order)).collect(),
                next_after,
            };
            assert_eq!(order_page(&store, page, next_after).0, serde_json::to_vec(&view).unwrap());
        }
    }

    #[test]
    fn every_ascii_character_is_escaped_as_serde_json_escapes_it() {
        let text: String = (0u8..=0x7f).map(char::from).chain("é杭州😀".chars()).collect();
        let mut written = Vec::new();
        write_str(&mut written, &text);
        assert_eq!(written, serde_json::to_vec(&text).unwrap());
    }

    #[test]
    fn a_character_to_escape_is_found_at_every_position_of_a_word() {
        for special in (0u8..0x20).chain([b'"', b'\\', 0x7f]).map(char::from) {
            for len in 1..=24 {
                for position in 0..len {
                    let text: String = (0..len)
                        .map(|index| if index == position { special } else { 'a' })
                        .collect();
                    let mut written = Vec::new();
                    write_str(&mut written, &text);
                    assert_eq!(written, serde_json::to_vec(&text).unwrap(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn integers_are_written_in_full_at_their_extremes() {
        for value in [0, 1, -1, 9, 10, i64::MAX, i64::MIN] {
            let mut written = Vec::new();
            write_i64(&mut written, value);
            assert_eq!(written, value.to_string().into_bytes());
        }
        let mut written = Vec::new();
        write_u64(&mut written, u64::MAX);
        assert_eq!(written, u64::MAX.to_string().into_bytes());
    }
}
