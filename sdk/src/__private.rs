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

// Exactly one world is enabled in a component (the crate root refuses
// more); the conditions only keep a refused build from piling up errors.
#[cfg(all(feature = "logistics", not(feature = "risk")))]
use logistics::bazaar::commerce::types as wit;
#[cfg(all(feature = "pricing", not(feature = "logistics"), not(feature = "risk")))]
use pricing::bazaar::commerce::types as wit;
#[cfg(feature = "risk")]
use risk::bazaar::commerce::types as wit;

use crate::types::{Address, Cart, CartLine, Coordinates, Customer, CustomerSegment};
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
        stock: request
            .stock
            .into_iter()
            .map(|level| crate::types::StockLevel {
                sku: level.sku,
                warehouse_id: level.warehouse_id,
                available: level.available,
            })
            .collect(),
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

fn error_to_wit(error: PluginError) -> wit::PluginError {
    match error {
        PluginError::InvalidConfig(message) => wit::PluginError::InvalidConfig(message),
        PluginError::Unsupported(message) => wit::PluginError::Unsupported(message),
        PluginError::Internal(message) => wit::PluginError::Internal(message),
    }
}
