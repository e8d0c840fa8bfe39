//! What the export macros expand to: the generated bindings of the world
//! this build embeds, and the glue between them and the plain types.
//!
//! Not part of the SDK's API; the macros reach it through `$crate`.
//!
//! Each world's bindings sit behind its own feature because a component
//! embeds the type of exactly one world: generating two would link two
//! `component-type` sections, and the component would claim exports it does
//! not have.

#[cfg(feature = "pricing")]
pub mod pricing {
    wit_bindgen::generate!({
        world: "pricing",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__bazaar_export_pricing_world",
    });
}

#[cfg(feature = "logistics")]
pub mod logistics {
    wit_bindgen::generate!({
        world: "logistics",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__bazaar_export_logistics_world",
    });
}

#[cfg(feature = "risk")]
pub mod risk {
    wit_bindgen::generate!({
        world: "risk",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__bazaar_export_risk_world",
    });
}

#[cfg(feature = "analytics")]
pub mod analytics {
    wit_bindgen::generate!({
        world: "analytics",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__bazaar_export_analytics_world",
    });
}

#[cfg(feature = "device-driver")]
pub mod device_driver {
    wit_bindgen::generate!({
        world: "device-driver",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__bazaar_export_device_driver_world",
    });
}

// The device driver's glue lives apart: its world shares no types with the
// commerce worlds (no `types` interface, no `plugin-error`).
#[cfg(feature = "device-driver")]
mod driver;
#[cfg(feature = "device-driver")]
pub use driver::{driver_decode, driver_encode, driver_namespace, driver_subscriptions};

// The bindings of the one world this build embeds, for the glue below and
// for the host imports (`crate::host`). Exactly one world is enabled in a
// component (the crate root refuses more); the order of precedence only
// keeps a refused build from piling up errors.
#[cfg(feature = "analytics")]
pub(crate) use analytics as world;
#[cfg(all(
    feature = "device-driver",
    not(any(feature = "pricing", feature = "logistics", feature = "risk", feature = "analytics"))
))]
pub(crate) use device_driver as world;
#[cfg(all(
    feature = "logistics",
    not(any(feature = "pricing", feature = "risk", feature = "analytics"))
))]
pub(crate) use logistics as world;
#[cfg(all(feature = "pricing", not(any(feature = "risk", feature = "analytics"))))]
pub(crate) use pricing as world;
#[cfg(all(feature = "risk", not(feature = "analytics")))]
pub(crate) use risk as world;

#[cfg(any(
    feature = "pricing",
    feature = "logistics",
    feature = "risk",
    feature = "analytics"
))]
use world::bazaar::commerce::types as wit;

#[cfg(any(feature = "pricing", feature = "logistics", feature = "risk"))]
use crate::types::{Address, Cart, CartLine, Coordinates, Customer, CustomerSegment};
#[cfg(any(
    feature = "pricing",
    feature = "logistics",
    feature = "risk",
    feature = "analytics"
))]
use crate::{Money, PluginError};

/// The body of the exported `price-cart`: converts, prices with the store's
/// configuration, converts back.
#[cfg(feature = "pricing")]
pub fn price_cart<P: crate::PricingPlugin>(
    cart: wit::Cart,
) -> Result<Vec<wit::PriceAdjustment>, wit::PluginError> {
    let cart = cart_from_wit(cart);
    match P::price_with_store_config(&cart) {
        Ok(adjustments) => Ok(adjustments
            .into_iter()
            .map(|adjustment| wit::PriceAdjustment {
                line_index: adjustment.line_index,
                amount_off: money_to_wit(adjustment.amount_off),
                code: adjustment.code,
                reason: adjustment.reason,
            })
            .collect()),
        Err(error) => Err(error_to_wit(error)),
    }
}

/// The body of the exported `plan-shipment`: converts, plans with the
/// store's configuration, converts back.
#[cfg(feature = "logistics")]
pub fn plan_shipment<P: crate::LogisticsPlugin>(
    request: wit::RouteRequest,
) -> Result<wit::ShipmentPlan, wit::PluginError> {
    let request = crate::types::RouteRequest {
        cart: cart_from_wit(request.cart),
        warehouses: request
            .warehouses
            .into_iter()
            .map(|warehouse| crate::types::Warehouse {
                id: warehouse.id,
                location: coordinates_from_wit(warehouse.location),
            })
            .collect(),
        stock: request.stock,
    };
    match P::plan_with_store_config(&request) {
        Ok(plan) => Ok(wit::ShipmentPlan {
            shipments: plan
                .shipments
                .into_iter()
                .map(|shipment| wit::Shipment {
                    warehouse_id: shipment.warehouse_id,
                    lines: shipment
                        .lines
                        .into_iter()
                        .map(|line| wit::ShipmentLine { sku: line.sku, quantity: line.quantity })
                        .collect(),
                    carrier: shipment.carrier,
                    fee: money_to_wit(shipment.fee),
                    eta_hours: shipment.eta_hours,
                })
                .collect(),
        }),
        Err(error) => Err(error_to_wit(error)),
    }
}

/// The body of the exported `assess-order`: converts, assesses with the
/// store's configuration, converts back.
#[cfg(feature = "risk")]
pub fn assess_order<P: crate::RiskPlugin>(
    request: wit::RiskRequest,
) -> Result<wit::RiskVerdict, wit::PluginError> {
    let request = crate::types::RiskRequest {
        cart: cart_from_wit(request.cart),
        total: Money { amount_minor: request.total.amount_minor, currency: request.total.currency },
        history: crate::types::CustomerHistory {
            orders_placed: request.history.orders_placed,
            units_held: request
                .history
                .units_held
                .into_iter()
                .map(|held| crate::types::UnitsHeld { sku: held.sku, units: held.units })
                .collect(),
        },
    };
    match P::assess_with_store_config(&request) {
        Ok(verdict) => Ok(wit::RiskVerdict {
            decision: match verdict.decision {
                crate::types::Decision::Approve => wit::Decision::Approve,
                crate::types::Decision::Reject => wit::Decision::Reject,
            },
            code: verdict.code,
            reason: verdict.reason,
        }),
        Err(error) => Err(error_to_wit(error)),
    }
}

/// The body of the exported `ingest`: converts the events (moving their
/// strings, copying nothing) and ingests them with the store's
/// configuration.
#[cfg(feature = "analytics")]
pub fn ingest<P: crate::AnalyticsPlugin>(
    events: Vec<analytics::bazaar::commerce::events::Event>,
) -> Result<(), wit::PluginError> {
    let events: Vec<crate::events::Event> = events.into_iter().map(event_from_wit).collect();
    P::ingest_with_store_config(&events).map_err(error_to_wit)
}

/// The body of the exported `query`: answers with the store's
/// configuration.
#[cfg(feature = "analytics")]
pub fn query<P: crate::AnalyticsPlugin>(
    name: &str,
    arguments_json: &str,
) -> Result<String, wit::PluginError> {
    P::query_with_store_config(name, arguments_json).map_err(error_to_wit)
}

#[cfg(feature = "analytics")]
fn event_from_wit(event: analytics::bazaar::commerce::events::Event) -> crate::events::Event {
    use crate::events::{
        CheckoutRefused, Discount, EventKind, EventLine, OrderPlaced, OrderStatus, RefusalReason,
        StockChanged,
    };
    use analytics::bazaar::commerce::events as wit_events;

    let status = |status: wit_events::OrderStatus| OrderStatus {
        order: status.order,
        total: money_from_wit(status.total),
    };
    let kind = match event.kind {
        wit_events::EventKind::OrderPlaced(placed) => EventKind::OrderPlaced(OrderPlaced {
            order: placed.order,
            customer_id: placed.customer_id,
            lines: placed
                .lines
                .into_iter()
                .map(|line| EventLine {
                    sku: line.sku,
                    quantity: line.quantity,
                    unit_price: money_from_wit(line.unit_price),
                })
                .collect(),
            subtotal: money_from_wit(placed.subtotal),
            discount: money_from_wit(placed.discount),
            shipping: money_from_wit(placed.shipping),
            total: money_from_wit(placed.total),
            discounts: placed
                .discounts
                .into_iter()
                .map(|discount| Discount {
                    plugin_id: discount.plugin_id,
                    code: discount.code,
                    amount: money_from_wit(discount.amount),
                })
                .collect(),
        }),
        wit_events::EventKind::OrderPaid(paid) => EventKind::OrderPaid(status(paid)),
        wit_events::EventKind::OrderCancelled(cancelled) => {
            EventKind::OrderCancelled(status(cancelled))
        }
        wit_events::EventKind::OrderFulfilled(fulfilled) => {
            EventKind::OrderFulfilled(status(fulfilled))
        }
        wit_events::EventKind::StockChanged(changed) => EventKind::StockChanged(StockChanged {
            sku: changed.sku,
            warehouse: changed.warehouse,
            available: changed.available,
            reserved: changed.reserved,
            sold: changed.sold,
        }),
        wit_events::EventKind::CheckoutRefused(refused) => {
            EventKind::CheckoutRefused(CheckoutRefused {
                sku: refused.sku,
                attempts: refused.attempts,
                units: refused.units,
                reason: match refused.reason {
                    wit_events::RefusalReason::SoldOut => RefusalReason::SoldOut,
                    wit_events::RefusalReason::PurchaseLimit => RefusalReason::PurchaseLimit,
                    wit_events::RefusalReason::Risk => RefusalReason::Risk,
                    wit_events::RefusalReason::Other => RefusalReason::Other,
                },
            })
        }
    };
    crate::events::Event { sequence: event.sequence, at_ms: event.at_ms, kind }
}

#[cfg(feature = "analytics")]
fn money_from_wit(money: wit::Money) -> Money {
    Money { amount_minor: money.amount_minor, currency: money.currency }
}

#[cfg(any(feature = "pricing", feature = "logistics", feature = "risk"))]
fn cart_from_wit(cart: wit::Cart) -> Cart {
    Cart {
        store_id: cart.store_id,
        customer: Customer {
            id: cart.customer.id,
            segment: match cart.customer.segment {
                wit::CustomerSegment::NewCustomer => CustomerSegment::NewCustomer,
                wit::CustomerSegment::Regular => CustomerSegment::Regular,
                wit::CustomerSegment::Vip => CustomerSegment::Vip,
                wit::CustomerSegment::Staff => CustomerSegment::Staff,
            },
        },
        lines: cart
            .lines
            .into_iter()
            .map(|line| CartLine {
                sku: line.sku,
                quantity: line.quantity,
                unit_price: Money {
                    amount_minor: line.unit_price.amount_minor,
                    currency: line.unit_price.currency,
                },
            })
            .collect(),
        coupon_codes: cart.coupon_codes,
        shipping_address: Address {
            country: cart.shipping_address.country,
            region: cart.shipping_address.region,
            city: cart.shipping_address.city,
            street: cart.shipping_address.street,
            postal_code: cart.shipping_address.postal_code,
            location: coordinates_from_wit(cart.shipping_address.location),
        },
        placed_at_ms: cart.placed_at_ms,
    }
}

#[cfg(any(feature = "pricing", feature = "logistics", feature = "risk"))]
fn coordinates_from_wit(coordinates: wit::Coordinates) -> Coordinates {
    Coordinates {
        latitude_micro: coordinates.latitude_micro,
        longitude_micro: coordinates.longitude_micro,
    }
}

#[cfg(any(feature = "pricing", feature = "logistics"))]
fn money_to_wit(money: Money) -> wit::Money {
    wit::Money { amount_minor: money.amount_minor, currency: money.currency }
}

#[cfg(any(feature = "pricing", feature = "logistics", feature = "risk", feature = "analytics"))]
fn error_to_wit(error: PluginError) -> wit::PluginError {
    match error {
        PluginError::InvalidConfig(message) => wit::PluginError::InvalidConfig(message),
        PluginError::Unsupported(message) => wit::PluginError::Unsupported(message),
        PluginError::Internal(message) => wit::PluginError::Internal(message),
    }
}
