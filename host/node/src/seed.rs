//! A Double-11 flagship store to seed a node with: warehouses across China,
//! a flash-sale phone with fixed stock and a per-customer limit, an ordinary
//! catalogue, and the first-party plugins configured. Used by the demo, the
//! benchmarks and the tests, so all of them exercise the same shop.

use bazaar_kernel::model::{
    Address, Coordinates, Customer, CustomerId, CustomerSegment, IdempotencyKey, LineRequest,
    OrderRequest, PluginId, Product, Sku, StoreId, Warehouse, WarehouseId,
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
        idempotency_key: idempotency_key.map(IdempotencyKey::from),
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

/// The robot warehouse's id.
pub const ROBOT_WAREHOUSE: &str = "hangzhou-robots";
/// Its one zone.
pub const ROBOT_ZONE: &str = "zone-a";
/// Its map's id, as the robots know it.
pub const ROBOT_MAP: &str = "hangzhou-robots-floor";
/// The first-party VDA 5050 driver the robots speak through.
pub const ROBOT_DRIVER: &str = "driver-vda5050";
/// The vendor name the simulated robots use on the wire.
pub const ROBOT_MANUFACTURER: &str = "BazaarSim";
/// The robots' model.
pub const ROBOT_MODEL: &str = "sim-agv";
/// SKUs the robot warehouse stocks, each picked at its own shelf.
pub const ROBOT_SKUS: usize = 10;
/// Millimetres between neighbouring shelves, and between neighbouring
/// robots' home positions.
pub const ROBOT_GRID_SPACING_MM: i64 = 2_000;

/// A robot of the robot warehouse: its serial number and home node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RobotHome {
    /// Serial number (also its device id).
    pub serial_number: String,
    /// Home node.
    pub node: String,
    /// East coordinate of its home, millimetres.
    pub x_mm: i64,
    /// North coordinate of its home, millimetres.
    pub y_mm: i64,
}

/// The SKU of robot-warehouse item `index`.
pub fn robot_sku(index: usize) -> Sku {
    Sku::new(format!("D11-ITEM-{index}")).expect("generated SKUs are valid identifiers")
}

/// A store whose orders robots fulfil: one warehouse with a map (shelves
/// along the north wall, a pack station at the origin, one home node per
/// robot along the south wall), [`ROBOT_SKUS`] products with `units` each,
/// the VDA 5050 driver enabled, and `robots` AGVs registered. Returns the
/// commands and where each robot starts.
pub fn robot_warehouse(
    store: &StoreId,
    robots: usize,
    units: u64,
) -> (Vec<Command>, Vec<RobotHome>) {
    use bazaar_kernel::PluginSettings;
    use bazaar_kernel::device::{DeviceKind, DeviceSpec, MapNode, WarehouseLayout};
    use bazaar_kernel::model::{Capability, DeviceId, MapNodeId, ZoneId};

    let generated = "generated ids are valid identifiers";
    let node = |name: &str, x_mm: i64, y_mm: i64| MapNode {
        id: MapNodeId::new(name).expect(generated),
        x_mm,
        y_mm,
    };
    let cny = Currency::parse("CNY").expect("CNY is a currency code");
    let warehouse = WarehouseId::new(ROBOT_WAREHOUSE).expect(generated);
    let driver = PluginId::new(ROBOT_DRIVER).expect(generated);
    let mut nodes = vec![node("pack", 0, 0)];
    let mut pick_locations = std::collections::BTreeMap::new();
    for index in 0..ROBOT_SKUS {
        let name = format!("shelf-{index}");
        nodes.push(node(&name, index as i64 * ROBOT_GRID_SPACING_MM, 3 * ROBOT_GRID_SPACING_MM));
        pick_locations.insert(robot_sku(index), MapNodeId::new(name).expect(generated));
    }
    let homes: Vec<RobotHome> = (0..robots)
        .map(|index| RobotHome {
            serial_number: format!("agv-{index}"),
            node: format!("home-{index}"),
            x_mm: index as i64 * ROBOT_GRID_SPACING_MM,
            y_mm: -ROBOT_GRID_SPACING_MM,
        })
        .collect();
    nodes.extend(homes.iter().map(|home| node(&home.node, home.x_mm, home.y_mm)));
    let mut commands = vec![
        Command::CreateStore {
            store: store.clone(),
            name: "Robot warehouse".into(),
            currency: cny,
        },
        Command::UpsertWarehouse {
            store: store.clone(),
            warehouse: Warehouse {
                id: warehouse.clone(),
                name: "Hangzhou robot warehouse".into(),
                location: Coordinates { latitude_micro: 30_274_100, longitude_micro: 120_155_100 },
            },
        },
        Command::SetWarehouseLayout {
            store: store.clone(),
            warehouse: warehouse.clone(),
            layout: WarehouseLayout {
                map_id: ROBOT_MAP.into(),
                nodes,
                pick_locations,
                pack_station: MapNodeId::new("pack").expect(generated),
            },
        },
        Command::ConfigurePlugin {
            store: store.clone(),
            plugin: driver.clone(),
            config_json: Some("{}".into()),
            settings: PluginSettings {
                consented: vec![Capability::Log, Capability::Config],
                ..PluginSettings::default()
            },
        },
    ];
    for index in 0..ROBOT_SKUS {
        commands.push(Command::UpsertProduct {
            store: store.clone(),
            product: Product {
                sku: robot_sku(index),
                title: format!("Warehouse item {index}"),
                unit_price_minor: 9_900,
                purchase_limit_per_customer: None,
            },
            currency: cny,
        });
        commands.push(Command::ReceiveStock {
            store: store.clone(),
            sku: robot_sku(index),
            warehouse: warehouse.clone(),
            quantity: units,
        });
    }
    for home in &homes {
        commands.push(Command::RegisterDevice {
            store: store.clone(),
            device: DeviceSpec {
                id: DeviceId::new(home.serial_number.as_str()).expect(generated),
                kind: DeviceKind::Agv,
                warehouse: warehouse.clone(),
                zone: ZoneId::new(ROBOT_ZONE).expect(generated),
                driver: driver.clone(),
                manufacturer: ROBOT_MANUFACTURER.into(),
                serial_number: home.serial_number.clone(),
                model: ROBOT_MODEL.into(),
            },
            at_ms: 0,
        });
    }
    (commands, homes)
}

/// Places and pays `count` one-line orders of the robot warehouse's SKUs in
/// turn, for customers `from..from + count`; returns the order numbers.
pub fn place_paid_robot_orders(
    node: &Node,
    store: &StoreId,
    from: u64,
    count: u64,
) -> Result<Vec<u64>, NodeError> {
    (from..from + count)
        .map(|customer| {
            let sku = robot_sku(customer as usize % ROBOT_SKUS);
            let receipt = node
                .place_order(store.clone(), order_request(customer, vec![(sku, 1)], None, None))?;
            node.execute(Command::PayOrder {
                store: store.clone(),
                order: receipt.order,
                at_ms: crate::node::wall_clock_ms(),
            })?;
            Ok(receipt.order)
        })
        .collect()
}
