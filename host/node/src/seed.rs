//! A Double-11 flagship store to seed a node with: warehouses across China,
//! a flash-sale phone with fixed stock and a per-customer limit, an ordinary
//! catalogue, and the first-party plugins configured. Used by the demo, the
//! benchmarks and the tests, so all of them exercise the same shop.

use bazaar_kernel::model::{
    Address, Coordinates, Customer, CustomerId, CustomerSegment, LineRequest, OrderRequest,
    PluginId, Product, Sku, StoreId, Warehouse, WarehouseId,
};
use bazaar_kernel::money::Currency;
use bazaar_kernel::{Command, KernelError};

use crate::node::{Node, NodeError};

/// The flash-sale SKU.
pub const HOT_SKU: &str = "D11-PHONE";
/// Units one customer may hold of the flash-sale SKU.
pub const HOT_SKU_LIMIT_PER_CUSTOMER: u32 = 2;
/// Catalogue price of the flash-sale SKU: 5,999.00 CNY.
pub const HOT_SKU_PRICE_MINOR: i64 = 599_900;
/// Its flash-sale price: 4,999.00 CNY.
pub const HOT_SKU_FLASH_PRICE_MINOR: i64 = 499_900;
/// Ordinary SKUs in the catalogue.
pub const ORDINARY_SKUS: usize = 20;
/// Units of each ordinary SKU in each warehouse: plenty, so ordinary orders
/// never run out during a run.
pub const ORDINARY_STOCK_PER_WAREHOUSE: u64 = 100_000_000;

/// The warehouses: (id, name, latitude, longitude) in micro-degrees.
const WAREHOUSES: [(&str, &str, i32, i32); 4] = [
    ("HGH", "Hangzhou", 30_274_100, 120_155_100),
    ("SHA", "Shanghai", 31_230_400, 121_473_700),
    ("PEK", "Beijing", 39_904_200, 116_407_400),
    ("CAN", "Guangzhou", 23_129_100, 113_264_400),
];

/// Delivery cities for generated customers: (city, latitude, longitude).
const CITIES: [(&str, i32, i32); 6] = [
    ("Hangzhou", 30_274_100, 120_155_100),
    ("Nanjing", 32_060_300, 118_796_900),
    ("Beijing", 39_904_200, 116_407_400),
    ("Chengdu", 30_572_800, 104_066_800),
    ("Shenzhen", 22_543_100, 114_057_900),
    ("Wuhan", 30_592_800, 114_305_500),
];

/// The store's promotions: 50.00 off every 300.00, 10% coupon over 1,000.00,
/// the flash price, and at most 1,000.00 off an order.
pub const PROMOTIONS_CONFIG: &str = r#"{
  "currency": "CNY",
  "campaign": "Double 11",
  "flash_sale": [{"sku": "D11-PHONE", "unit_price": "4999.00"}],
  "spend_thresholds": [{"every": "300.00", "off": "50.00"}],
  "coupons": [{"code": "D11-10", "percent": 10, "min_spend": "1000.00"}],
  "max_discount": "1000.00"
}"#;

/// The store's carriers: same-day city courier, then express, then economy.
pub const ROUTER_CONFIG: &str = r#"{
  "carriers": [
    {"name": "City Courier", "max_distance_km": 50, "base_fee_minor": 800, "fee_per_100_km_minor": 0, "eta_hours_base": 6, "eta_hours_per_500_km": 0},
    {"name": "SF Express", "max_distance_km": 1500, "base_fee_minor": 1200, "fee_per_100_km_minor": 100, "eta_hours_base": 24, "eta_hours_per_500_km": 12},
    {"name": "China Post", "max_distance_km": 5000, "base_fee_minor": 600, "fee_per_100_km_minor": 50, "eta_hours_base": 48, "eta_hours_per_500_km": 24}
  ],
  "free_shipping_over_minor": 9900
}"#;

/// Anti-scalper rules for the flash sale: at most two phones an order,
/// three orders a minute per customer, and a blocked reseller account.
pub const RISK_GUARD_CONFIG: &str = r#"{
  "currency": "CNY",
  "blocked_customers": ["c13"],
  "max_units_per_order": {"skus": [{"sku": "D11-PHONE", "max_units": 2}]},
  "max_orders_per_customer_per_minute": 3
}"#;

/// The SKU of ordinary product `index`.
pub fn ordinary_sku(index: usize) -> Sku {
    Sku::new(format!("SKU-{index:03}")).expect("generated SKUs are valid identifiers")
}

/// The commands that create a flagship store with `hot_stock` units of the
/// flash-sale SKU spread over the warehouses.
pub fn flagship_store(store: &StoreId, hot_stock: u64) -> Vec<Command> {
    let cny = Currency::parse("CNY").expect("CNY is a currency code");
    let mut commands = vec![Command::CreateStore {
        store: store.clone(),
        name: format!("{store} (Double 11 flagship)"),
        currency: cny,
    }];
    for (id, name, latitude_micro, longitude_micro) in WAREHOUSES {
        commands.push(Command::UpsertWarehouse {
            store: store.clone(),
            warehouse: Warehouse {
                id: WarehouseId::new(id).expect("valid warehouse id"),
                name: name.into(),
                location: Coordinates { latitude_micro, longitude_micro },
            },
        });
    }
    let hot = Sku::new(HOT_SKU).expect("valid sku");
    commands.push(Command::UpsertProduct {
        store: store.clone(),
        product: Product {
            sku: hot.clone(),
            title: "Double 11 flagship phone".into(),
            unit_price_minor: HOT_SKU_PRICE_MINOR,
            purchase_limit_per_customer: Some(HOT_SKU_LIMIT_PER_CUSTOMER),
        },
        currency: cny,
    });
    let warehouses = WAREHOUSES.len() as u64;
    for (index, (id, ..)) in WAREHOUSES.iter().enumerate() {
        let share = hot_stock / warehouses + u64::from((index as u64) < hot_stock % warehouses);
        if share > 0 {
            commands.push(Command::ReceiveStock {
                store: store.clone(),
                sku: hot.clone(),
                warehouse: WarehouseId::new(*id).expect("valid warehouse id"),
                quantity: share,
            });
        }
    }
    for index in 0..ORDINARY_SKUS {
        let sku = ordinary_sku(index);
        commands.push(Command::UpsertProduct {
            store: store.clone(),
            product: Product {
                sku: sku.clone(),
                title: format!("Everyday item {index}"),
                unit_price_minor: 1_990 + 3_700 * index as i64,
                purchase_limit_per_customer: None,
            },
            currency: cny,
        });
        for (id, ..) in WAREHOUSES {
            commands.push(Command::ReceiveStock {
                store: store.clone(),
                sku: sku.clone(),
                warehouse: WarehouseId::new(id).expect("valid warehouse id"),
                quantity: ORDINARY_STOCK_PER_WAREHOUSE,
            });
        }
    }
    for (plugin, config) in
        [("pricing-promotions", PROMOTIONS_CONFIG), ("logistics-router", ROUTER_CONFIG)]
    {
        commands.push(Command::ConfigurePlugin {
            store: store.clone(),
            plugin: PluginId::new(plugin).expect("valid plugin id"),
            config_json: Some(config.into()),
            settings: bazaar_kernel::PluginSettings::default(),
        });
    }
    commands
}

/// Seeds `store` unless it exists already (so a restarted run continues).
pub fn seed_flagship_store(node: &Node, store: &StoreId, hot_stock: u64) -> Result<(), NodeError> {
    for command in flagship_store(store, hot_stock) {
        match node.execute(command) {
            Ok(_) => {}
            Err(NodeError::Kernel(KernelError::StoreExists(_))) => return Ok(()),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// A customer's order request. `customer` picks the buyer and their city;
/// `lines` are (SKU, quantity).
pub fn order_request(
    customer: u64,
    lines: Vec<(Sku, u32)>,
    coupon: Option<&str>,
    idempotency_key: Option<String>,
) -> OrderRequest {
    let (city, latitude_micro, longitude_micro) = CITIES[(customer % CITIES.len() as u64) as usize];
    OrderRequest {
        idempotency_key,
        customer: Customer {
            id: CustomerId::new(format!("c{customer}")).expect("valid customer id"),
            segment: if customer.is_multiple_of(10) {
                CustomerSegment::Vip
            } else {
                CustomerSegment::Regular
            },
        },
        lines: lines.into_iter().map(|(sku, quantity)| LineRequest { sku, quantity }).collect(),
        coupon_codes: coupon.map(|code| vec![code.to_string()]).unwrap_or_default(),
        shipping_address: Address {
            country: "CN".into(),
            region: city.into(),
            city: city.into(),
            street: format!("{} Double Eleven Road", customer % 1000),
            postal_code: "310000".into(),
            location: Coordinates { latitude_micro, longitude_micro },
        },
    }
}
