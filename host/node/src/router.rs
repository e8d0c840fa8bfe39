//! The built-in router: where an order ships from when the store has no
//! logistics plugin, or its plugin failed (logistics fails over to this).
//!
//! Deliberately plain: the nearest warehouse that holds the whole order,
//! otherwise each line from the nearest warehouses with stock; one standard
//! carrier, no fee, an ETA that grows with distance.

use bazaar_kernel::StoreState;
use bazaar_kernel::model::{Cart, Router, Shipment, ShipmentLine, ShipmentPlan, WarehouseId};
use bazaar_sdk::geo::distance_km;

/// The carrier the built-in router books.
pub const BUILT_IN_CARRIER: &str = "Bazaar Standard";
/// Base delivery time of the built-in carrier, hours.
const ETA_HOURS_BASE: u32 = 24;
/// Extra delivery time per started 500 km, hours.
const ETA_HOURS_PER_500_KM: u32 = 24;

/// Plans `cart` from the store's available stock. Returns `None` only when
/// the stock cannot cover the cart (the kernel then refuses the order).
pub fn route(state: &StoreState, cart: &Cart) -> Option<ShipmentPlan> {
    let destination = sdk_coordinates(cart.shipping_address.location);
    let mut warehouses: Vec<(u32, &WarehouseId)> = state
        .warehouses()
        .values()
        .map(|w| (distance_km(sdk_coordinates(w.location), destination), &w.id))
        .collect();
    warehouses.sort();
    let available = |sku, warehouse| state.stock_level(sku, warehouse).available;

    let whole = warehouses.iter().find(|(_, warehouse)| {
        cart.lines.iter().all(|line| available(&line.sku, warehouse) >= u64::from(line.quantity))
    });
    let mut shipments: Vec<(u32, Shipment)> = Vec::new();
    if let Some((distance, warehouse)) = whole {
        let lines = cart
            .lines
            .iter()
            .map(|line| ShipmentLine { sku: line.sku.clone(), quantity: line.quantity })
            .collect();
        shipments.push((*distance, shipment(warehouse, lines, *distance)));
    } else {
        for line in &cart.lines {
            let mut left = line.quantity;
            for (distance, warehouse) in &warehouses {
                if left == 0 {
                    break;
                }
                let take = u64::from(left).min(available(&line.sku, warehouse)) as u32;
                if take == 0 {
                    continue;
                }
                left -= take;
                let part = ShipmentLine { sku: line.sku.clone(), quantity: take };
                match shipments.iter_mut().find(|(_, s)| &s.warehouse == *warehouse) {
                    Some((_, existing)) => existing.lines.push(part),
                    None => shipments.push((*distance, shipment(warehouse, vec![part], *distance))),
                }
            }
            if left > 0 {
                return None;
            }
        }
    }
    Some(ShipmentPlan {
        shipments: shipments.into_iter().map(|(_, s)| s).collect(),
        routed_by: Router::BuiltIn,
        fallback_reason: None,
    })
}

fn shipment(warehouse: &WarehouseId, lines: Vec<ShipmentLine>, distance_km: u32) -> Shipment {
    Shipment {
        warehouse: warehouse.clone(),
        lines,
        carrier: BUILT_IN_CARRIER.into(),
        fee_minor: 0,
        eta_hours: ETA_HOURS_BASE + ETA_HOURS_PER_500_KM * distance_km.div_ceil(500),
    }
}

/// The SDK's coordinates for the kernel's (the same micro-degrees).
pub fn sdk_coordinates(c: bazaar_kernel::model::Coordinates) -> bazaar_sdk::Coordinates {
    bazaar_sdk::Coordinates::new(c.latitude_micro, c.longitude_micro)
}
