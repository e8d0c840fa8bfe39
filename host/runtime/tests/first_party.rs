//! The first-party plugins, compiled to components by the build, running in
//! the runtime; and the load-time refusals of components that do not fit.

// Prices are written as yuan_fen: 200_00 is 200.00 CNY.
#![allow(clippy::inconsistent_digit_grouping)]

mod common;

use std::sync::Arc;

use bazaar_artifacts::{LOGISTICS_ROUTER, PRICING_PROMOTIONS};
use bazaar_kernel::model::{Cart, Coordinates, Router, ShipmentLine, Sku, Warehouse, WarehouseId};
use bazaar_runtime::{CallError, LoadError, PluginError, RouteRequest, RuntimeLimits};
use common::{SHANGHAI, call, cart, plugin_ref, runtime, test_limits};

const THRESHOLD_CONFIG: &str = r#"{
    "currency": "CNY",
    "spend_thresholds": [{ "every": "300.00", "off": "50.00" }]
}"#;

#[test]
fn pricing_promotions_takes_the_spend_threshold_off_a_cart_that_reaches_it() {
    let runtime = runtime(test_limits());
    let plugin = runtime
        .load_pricing(plugin_ref(&PRICING_PROMOTIONS), PRICING_PROMOTIONS.wasm)
        .expect("pricing-promotions loads");
    let mut pricer = plugin.pricer();
    let cart = cart("store-a", &[("TEA-250G", 2, 200_00)]);

    let outcome = pricer.price_cart(call("store-a", Some(THRESHOLD_CONFIG), Arc::default()), &cart);

    let adjustments = outcome.result.expect("the cart is priced");
    assert_eq!(adjustments.len(), 1);
    let adjustment = &adjustments[0];
    assert_eq!(adjustment.line_index, None);
    assert_eq!(adjustment.amount_off_minor, 50_00);
    assert_eq!(adjustment.code, "spend-300-get-50");
    assert_eq!(adjustment.reason, "Double 11: every 300.00 CNY spent, 50.00 CNY off (x1)");
    assert_eq!(adjustment.plugin, plugin_ref(&PRICING_PROMOTIONS));
    assert!(outcome.state_writes.is_empty());
}

#[test]
fn pricing_promotions_leaves_a_cart_below_the_threshold_alone() {
    let runtime = runtime(test_limits());
    let plugin = runtime
        .load_pricing(plugin_ref(&PRICING_PROMOTIONS), PRICING_PROMOTIONS.wasm)
        .expect("pricing-promotions loads");
    let cart = cart("store-a", &[("CUP", 1, 150_00)]);

    let outcome =
        plugin.pricer().price_cart(call("store-a", Some(THRESHOLD_CONFIG), Arc::default()), &cart);

    assert_eq!(outcome.result, Ok(Vec::new()));
}

#[test]
fn a_pricing_plugins_own_refusal_comes_back_as_a_plugin_error() {
    let runtime = runtime(test_limits());
    let plugin = runtime
        .load_pricing(plugin_ref(&PRICING_PROMOTIONS), PRICING_PROMOTIONS.wasm)
        .expect("pricing-promotions loads");
    let mut pricer = plugin.pricer();
    let usd_config = THRESHOLD_CONFIG.replace("CNY", "USD");
    let cart = cart("store-a", &[("TEA-250G", 2, 200_00)]);

    let outcome = pricer.price_cart(call("store-a", Some(&usd_config), Arc::default()), &cart);

    assert!(
        matches!(&outcome.result, Err(CallError::Plugin(PluginError::Unsupported(text))) if text.contains("USD")),
        "{:?}",
        outcome.result
    );
    // The plugin answered normally, so its instance is kept.
    let outcome = pricer.price_cart(call("store-a", Some(THRESHOLD_CONFIG), Arc::default()), &cart);
    assert!(outcome.result.is_ok());
    assert_eq!(plugin.counters().instantiations, 1);
}

fn warehouse(id: &str, latitude_micro: i32, longitude_micro: i32) -> Warehouse {
    Warehouse {
        id: WarehouseId::new(id).expect("valid warehouse id"),
        name: id.to_owned(),
        location: Coordinates { latitude_micro, longitude_micro },
    }
}

/// The request's stock matrix for `cart` and `warehouses` from levels
/// given as (SKU, warehouse, units available); 0 where none is given.
fn stock(cart: &Cart, warehouses: &[Warehouse], levels: &[(&str, &str, u64)]) -> Vec<Vec<u64>> {
    cart.lines
        .iter()
        .map(|line| {
            warehouses
                .iter()
                .map(|warehouse| {
                    levels
                        .iter()
                        .find(|(sku, id, _)| {
                            *sku == line.sku.as_str() && *id == warehouse.id.as_str()
                        })
                        .map_or(0, |(_, _, available)| *available)
                })
                .collect()
        })
        .collect()
}

fn line(sku: &str, quantity: u32) -> ShipmentLine {
    ShipmentLine { sku: Sku::new(sku).expect("valid sku"), quantity }
}

#[test]
fn logistics_router_splits_an_order_between_the_nearest_and_a_distant_warehouse() {
    let runtime = runtime(test_limits());
    let plugin = runtime
        .load_logistics(plugin_ref(&LOGISTICS_ROUTER), LOGISTICS_ROUTER.wasm)
        .expect("logistics-router loads");
    let mut router = plugin.router();
    let cart = cart("store-a", &[("TEA-250G", 2, 99_00), ("COAT", 1, 400_00)]);
    let warehouses = [
        warehouse("wh-shanghai", SHANGHAI.latitude_micro, SHANGHAI.longitude_micro),
        warehouse("wh-beijing", 39_904_200, 116_407_400),
    ];
    let stock = stock(
        &cart,
        &warehouses,
        &[
            ("TEA-250G", "wh-shanghai", 1),
            ("COAT", "wh-shanghai", 2),
            ("TEA-250G", "wh-beijing", 5),
        ],
    );
    let request = RouteRequest { cart: &cart, warehouses: warehouses.iter().collect(), stock };

    let outcome = router.plan_shipment(call("store-a", None, Arc::default()), &request);

    let plan = outcome.result.expect("the order is routed");
    assert_eq!(plan.routed_by, Router::Plugin(plugin_ref(&LOGISTICS_ROUTER)));
    assert_eq!(plan.fallback_reason, None);
    assert_eq!(plan.shipments.len(), 2);
    let local = &plan.shipments[0];
    assert_eq!(local.warehouse.as_str(), "wh-shanghai");
    assert_eq!(local.lines, vec![line("TEA-250G", 1), line("COAT", 1)]);
    assert_eq!(local.carrier, "SF Same-Day");
    assert_eq!(local.fee_minor, 15_00);
    assert_eq!(local.eta_hours, 6);
    let distant = &plan.shipments[1];
    assert_eq!(distant.warehouse.as_str(), "wh-beijing");
    assert_eq!(distant.lines, vec![line("TEA-250G", 1)]);
    assert_eq!(distant.carrier, "SF Express");
}

#[test]
fn logistics_router_refuses_an_order_the_stock_cannot_cover() {
    let runtime = runtime(test_limits());
    let plugin = runtime
        .load_logistics(plugin_ref(&LOGISTICS_ROUTER), LOGISTICS_ROUTER.wasm)
        .expect("logistics-router loads");
    let cart = cart("store-a", &[("TEA-250G", 3, 99_00)]);
    let warehouses = [warehouse("wh-shanghai", SHANGHAI.latitude_micro, SHANGHAI.longitude_micro)];
    let stock = stock(&cart, &warehouses, &[("TEA-250G", "wh-shanghai", 2)]);
    let request = RouteRequest { cart: &cart, warehouses: warehouses.iter().collect(), stock };

    let outcome = plugin.router().plan_shipment(call("store-a", None, Arc::default()), &request);

    assert!(
        matches!(&outcome.result, Err(CallError::Plugin(PluginError::Unsupported(_)))),
        "{:?}",
        outcome.result
    );
}

#[test]
fn a_core_module_is_refused_as_not_a_component() {
    let runtime = runtime(test_limits());
    // The smallest valid core module: magic and version 1.
    let core_module = b"\0asm\x01\0\0\0";

    let refused = runtime.load_pricing(plugin_ref(&PRICING_PROMOTIONS), core_module);

    assert_eq!(refused.err(), Some(LoadError::CoreModule));
}

#[test]
fn bytes_that_are_not_webassembly_are_refused() {
    let runtime = runtime(test_limits());

    let refused = runtime.load_logistics(plugin_ref(&LOGISTICS_ROUTER), b"#!/bin/sh\necho hi\n");

    assert_eq!(refused.err(), Some(LoadError::NotWasm));
}

#[test]
fn a_component_over_the_size_limit_is_refused_before_compiling() {
    let runtime = runtime(RuntimeLimits { component_bytes_max: 1024, ..test_limits() });

    let refused = runtime.load_pricing(plugin_ref(&PRICING_PROMOTIONS), PRICING_PROMOTIONS.wasm);

    assert_eq!(
        refused.err(),
        Some(LoadError::TooLarge { size_bytes: PRICING_PROMOTIONS.wasm.len(), limit_bytes: 1024 })
    );
}

#[test]
fn the_logistics_component_loaded_as_pricing_is_refused_for_the_wrong_world() {
    let runtime = runtime(test_limits());

    let refused = runtime.load_pricing(plugin_ref(&LOGISTICS_ROUTER), LOGISTICS_ROUTER.wasm);

    match refused.err() {
        Some(LoadError::WrongWorld { world, detail }) => {
            assert_eq!(world, "pricing");
            assert!(detail.contains("bazaar:commerce/pricer"), "{detail}");
        }
        other => panic!("expected a wrong-world refusal, got {other:?}"),
    }
}

#[test]
fn the_pricing_component_loaded_as_logistics_is_refused_for_the_wrong_world() {
    let runtime = runtime(test_limits());

    let refused = runtime.load_logistics(plugin_ref(&PRICING_PROMOTIONS), PRICING_PROMOTIONS.wasm);

    assert!(
        matches!(&refused, Err(LoadError::WrongWorld { world: "logistics", .. })),
        "{:?}",
        refused.err()
    );
}
