//! Routes an order: which warehouses ship it, with which carrier, at what
//! fee and by when.
//!
//! # Routing
//!
//! 1. Every unit must be covered: if the warehouses together hold fewer
//!    units of a SKU than the cart asks for, the answer is `unsupported`.
//! 2. Warehouses are chosen greedily for the fewest shipments: each step
//!    takes the unused warehouse that can ship the most of what is still
//!    missing; among equals the nearest to the address, then the smallest
//!    id. So a warehouse holding the whole cart is always chosen alone, the
//!    nearest such one if there are several, and a split starts with the
//!    warehouse that carries the most and uses the nearest stock among
//!    equals. The answer depends only on the request and configuration.
//! 3. Each shipment gets the carrier of the first distance band that
//!    reaches it (the band with the smallest `max_distance_km` not below
//!    the distance; a band without `max_distance_km` reaches everywhere).
//!    Fee = `base_fee_minor` + `fee_per_100_km_minor` per 100 km or part of
//!    it; ETA = `eta_hours_base` + `eta_hours_per_500_km` per 500 km or part
//!    of it. Fees are in the cart's currency.
//! 4. When the order's value (the cart subtotal before promotions) is at
//!    least `free_shipping_over_minor`, every fee is zero.
//!
//! # Configuration
//!
//! ```json
//! {
//!   "carriers": [
//!     { "name": "SF Same-Day", "max_distance_km": 50, "base_fee_minor": 1500,
//!       "fee_per_100_km_minor": 0, "eta_hours_base": 6, "eta_hours_per_500_km": 0 },
//!     { "name": "SF Express", "max_distance_km": 1500, "base_fee_minor": 1200,
//!       "fee_per_100_km_minor": 100, "eta_hours_base": 24, "eta_hours_per_500_km": 12 },
//!     { "name": "EMS", "base_fee_minor": 1000,
//!       "fee_per_100_km_minor": 80, "eta_hours_base": 48, "eta_hours_per_500_km": 24 }
//!   ],
//!   "free_shipping_over_minor": 9900
//! }
//! ```
//!
//! Both fields are optional: without `carriers` the table above is used,
//! without `free_shipping_over_minor` shipping is never free. A store that
//! gives no configuration gets these defaults.

use std::collections::{BTreeMap, BTreeSet};

use bazaar_sdk::geo::distance_km;
use bazaar_sdk::money::AMOUNT_MINOR_MAX;
use bazaar_sdk::{
    LogisticsPlugin, Money, PluginConfig, PluginError, RouteRequest, Shipment, ShipmentLine,
    ShipmentPlan,
};
use serde::Deserialize;

/// The most warehouses one request may list. Each routing step scans every
/// warehouse holding stock of the cart; a national network has tens, and
/// 1,000 bounds the scan.
pub const WAREHOUSES_MAX: usize = 1_000;

/// The most distinct SKUs routed in one cart. Routing keeps a row of counts
/// per SKU for every candidate warehouse; a cart of 1,000 different SKUs is
/// already a wholesale order.
pub const CART_SKUS_MAX: usize = 1_000;

/// The most carriers in the table: each shipment scans it, and distance
/// bands beyond a dozen tell nothing new.
pub const CARRIERS_MAX: usize = 32;

/// The longest carrier name, in bytes; it is shown to customers.
pub const CARRIER_NAME_BYTES_MAX: usize = 64;

/// The plugin: implements [`LogisticsPlugin`] with [`Config`].
pub struct Router;

bazaar_sdk::export_logistics!(Router);

impl LogisticsPlugin for Router {
    type Config = Config;

    fn plan(request: &RouteRequest, config: &Config) -> Result<ShipmentPlan, PluginError> {
        let cart = &request.cart;
        let currency = cart.currency()?;
        let order_value = cart.subtotal()?;
        let destination = cart.shipping_address.location;

        let demand = Demand::of(request)?;
        let candidates = candidates(request, &demand)?;
        demand.check_covered(&candidates)?;

        let mut missing: Vec<u64> = demand.quantities.clone();
        let mut used = vec![false; candidates.len()];
        let mut shipments = Vec::new();
        while missing.iter().any(|&quantity| quantity > 0) {
            let Some(chosen) = pick_next(&candidates, &used, &missing, destination) else {
                // check_covered makes this unreachable; refuse rather than loop.
                return Err(PluginError::internal("stock ran out while splitting the order"));
            };
            used[chosen] = true;
            let candidate = &candidates[chosen];
            let mut lines = Vec::new();
            for (sku_index, available) in candidate.available.iter().enumerate() {
                let quantity = missing[sku_index].min(*available);
                if quantity == 0 {
                    continue;
                }
                missing[sku_index] -= quantity;
                lines.push(ShipmentLine {
                    sku: demand.skus[sku_index].to_owned(),
                    // At most the cart's own u32 quantities summed; checked.
                    quantity: u32::try_from(quantity).map_err(|_| {
                        PluginError::unsupported("a SKU's total quantity exceeds u32")
                    })?,
                });
            }
            let distance = distance_km(candidate.location, destination);
            let carrier = config.carrier_for(distance).ok_or_else(|| {
                PluginError::unsupported(format!(
                    "no carrier serves {distance} km (from warehouse {})",
                    candidate.id
                ))
            })?;
            let fee = if config.ships_free(&order_value) {
                Money::zero(currency)
            } else {
                Money::new(carrier.fee_minor(distance)?, currency)
            };
            shipments.push(Shipment {
                warehouse_id: candidate.id.to_owned(),
                lines,
                carrier: carrier.name.clone(),
                fee,
                eta_hours: carrier.eta_hours(distance)?,
            });
        }
        Ok(ShipmentPlan { shipments })
    }
}

/// What the cart asks for: distinct SKUs in order of first appearance.
struct Demand<'request> {
    /// The SKUs.
    skus: Vec<&'request str>,
    /// Units wanted per SKU, parallel to `skus`.
    quantities: Vec<u64>,
    /// The index in `skus` of each cart line's SKU, in line order.
    line_skus: Vec<usize>,
}

impl<'request> Demand<'request> {
    fn of(request: &'request RouteRequest) -> Result<Self, PluginError> {
        let mut skus: Vec<&str> = Vec::new();
        let mut quantities: Vec<u64> = Vec::new();
        let mut line_skus: Vec<usize> = Vec::with_capacity(request.cart.lines.len());
        let mut index_by_sku: BTreeMap<&str, usize> = BTreeMap::new();
        for line in &request.cart.lines {
            let index = *index_by_sku.entry(line.sku.as_str()).or_insert_with(|| {
                skus.push(line.sku.as_str());
                quantities.push(0);
                skus.len() - 1
            });
            quantities[index] += u64::from(line.quantity);
            line_skus.push(index);
        }
        if skus.len() > CART_SKUS_MAX {
            return Err(PluginError::unsupported(format!(
                "the cart has {} distinct SKUs; at most {CART_SKUS_MAX} are routed",
                skus.len()
            )));
        }
        Ok(Self { skus, quantities, line_skus })
    }

    /// `unsupported` naming the first SKU the candidates cannot cover.
    fn check_covered(&self, candidates: &[Candidate<'_>]) -> Result<(), PluginError> {
        for (sku_index, wanted) in self.quantities.iter().enumerate() {
            let available: u64 = candidates.iter().map(|c| c.available[sku_index]).sum();
            if available < *wanted {
                return Err(PluginError::unsupported(format!(
                    "stock cannot cover the cart: {} needs {wanted} units, {available} available",
                    self.skus[sku_index]
                )));
            }
        }
        Ok(())
    }
}

/// A warehouse holding some of what the cart asks for.
struct Candidate<'request> {
    /// The warehouse identifier.
    id: &'request str,
    /// Where it is.
    location: bazaar_sdk::Coordinates,
    /// Units available per SKU of the demand, parallel to `Demand::skus`.
    available: Vec<u64>,
}

/// The warehouses that hold any of the cart's SKUs, in request order.
fn candidates<'request>(
    request: &'request RouteRequest,
    demand: &Demand<'request>,
) -> Result<Vec<Candidate<'request>>, PluginError> {
    if request.warehouses.len() > WAREHOUSES_MAX {
        return Err(PluginError::unsupported(format!(
            "the request lists {} warehouses; at most {WAREHOUSES_MAX} are routed",
            request.warehouses.len()
        )));
    }
    let mut ids: BTreeSet<&str> = BTreeSet::new();
    let mut candidates = Vec::new();
    // Filled for each warehouse; only a candidate's is kept.
    let mut available = vec![0u64; demand.skus.len()];
    for (warehouse_index, warehouse) in request.warehouses.iter().enumerate() {
        if !ids.insert(warehouse.id.as_str()) {
            return Err(PluginError::unsupported(format!(
                "warehouse {} is listed twice",
                warehouse.id
            )));
        }
        available.fill(0);
        // Lines of one SKU show the same stock: it is counted once.
        for (line_index, &sku) in demand.line_skus.iter().enumerate() {
            let units = u64::from(request.available(line_index, warehouse_index));
            available[sku] = available[sku].max(units);
        }
        if available.iter().any(|&units| units > 0) {
            candidates.push(Candidate {
                id: &warehouse.id,
                location: warehouse.location,
                available: std::mem::replace(&mut available, vec![0; demand.skus.len()]),
            });
        }
    }
    Ok(candidates)
}

/// The unused candidate that ships the most of `missing`; ties go to the
/// nearest to `destination`, then to the smallest id. `None` when no unused
/// candidate ships anything.
fn pick_next(
    candidates: &[Candidate<'_>],
    used: &[bool],
    missing: &[u64],
    destination: bazaar_sdk::Coordinates,
) -> Option<usize> {
    let mut best: Option<(usize, u64, u32)> = None;
    for (index, candidate) in candidates.iter().enumerate() {
        if used[index] {
            continue;
        }
        let units: u64 = candidate
            .available
            .iter()
            .zip(missing)
            .map(|(available, wanted)| (*available).min(*wanted))
            .sum();
        if units == 0 {
            continue;
        }
        let distance = distance_km(candidate.location, destination);
        let better = match best {
            None => true,
            Some((best_index, best_units, best_distance)) => {
                (units, std::cmp::Reverse(distance), std::cmp::Reverse(candidate.id))
                    > (
                        best_units,
                        std::cmp::Reverse(best_distance),
                        std::cmp::Reverse(candidates[best_index].id),
                    )
            }
        };
        if better {
            best = Some((index, units, distance));
        }
    }
    best.map(|(index, _, _)| index)
}

/// A store's validated routing settings. Build it from JSON with
/// [`Config::from_json`]; the default is the documented carrier table
/// without free shipping.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ConfigJson")]
pub struct Config {
    /// Carriers by increasing reach; a carrier without a limit comes last.
    carriers: Vec<Carrier>,
    /// The order value from which shipping is free, in minor units.
    free_shipping_over_minor: Option<i64>,
}

impl Config {
    /// Parses and validates a configuration; errors are `invalid-config`
    /// and say which field is wrong.
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        bazaar_sdk::config::parse(json)
    }

    fn carrier_for(&self, distance_km: u32) -> Option<&Carrier> {
        self.carriers.iter().find(|carrier| {
            carrier.max_distance_km.is_none_or(|max_distance_km| distance_km <= max_distance_km)
        })
    }

    fn ships_free(&self, order_value: &Money) -> bool {
        self.free_shipping_over_minor.is_some_and(|threshold| order_value.amount_minor >= threshold)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self { carriers: default_carriers(), free_shipping_over_minor: None }
    }
}

/// A store without configuration routes with the default carrier table.
impl PluginConfig for Config {
    fn when_missing() -> Result<Self, PluginError> {
        Ok(Self::default())
    }
}

/// One row of the carrier table: who delivers up to what distance, at what
/// fee and how fast.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Carrier {
    /// The name shown to the customer.
    name: String,
    /// The farthest this carrier delivers, in km; `None` for anywhere.
    #[serde(default)]
    max_distance_km: Option<u32>,
    /// The fee of any shipment, in minor units.
    base_fee_minor: u32,
    /// Added per 100 km or part of it, in minor units.
    #[serde(default)]
    fee_per_100_km_minor: u32,
    /// Hours to deliver any shipment.
    eta_hours_base: u32,
    /// Hours added per 500 km or part of it.
    #[serde(default)]
    eta_hours_per_500_km: u32,
}

impl Carrier {
    fn fee_minor(&self, distance_km: u32) -> Result<i64, PluginError> {
        let fee = u64::from(self.base_fee_minor)
            + u64::from(self.fee_per_100_km_minor) * u64::from(distance_km.div_ceil(100));
        i64::try_from(fee)
            .ok()
            .filter(|fee| *fee <= AMOUNT_MINOR_MAX)
            .ok_or_else(|| PluginError::unsupported("the shipping fee is out of range"))
    }

    fn eta_hours(&self, distance_km: u32) -> Result<u32, PluginError> {
        let hours = u64::from(self.eta_hours_base)
            + u64::from(self.eta_hours_per_500_km) * u64::from(distance_km.div_ceil(500));
        u32::try_from(hours)
            .map_err(|_| PluginError::unsupported("the delivery time is out of range"))
    }
}

fn default_carriers() -> Vec<Carrier> {
    vec![
        Carrier {
            name: "SF Same-Day".to_owned(),
            max_distance_km: Some(50),
            base_fee_minor: 15_00,
            fee_per_100_km_minor: 0,
            eta_hours_base: 6,
            eta_hours_per_500_km: 0,
        },
        Carrier {
            name: "SF Express".to_owned(),
            max_distance_km: Some(1_500),
            base_fee_minor: 12_00,
            fee_per_100_km_minor: 1_00,
            eta_hours_base: 24,
            eta_hours_per_500_km: 12,
        },
        Carrier {
            name: "EMS".to_owned(),
            max_distance_km: None,
            base_fee_minor: 10_00,
            fee_per_100_km_minor: 80,
            eta_hours_base: 48,
            eta_hours_per_500_km: 24,
        },
    ]
}

/// The configuration as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigJson {
    #[serde(default)]
    carriers: Option<Vec<Carrier>>,
    #[serde(default)]
    free_shipping_over_minor: Option<i64>,
}

impl TryFrom<ConfigJson> for Config {
    type Error = String;

    fn try_from(json: ConfigJson) -> Result<Self, String> {
        let mut carriers = match json.carriers {
            None => default_carriers(),
            Some(carriers) if carriers.is_empty() => {
                return Err("carriers: at least one carrier is needed".to_owned());
            }
            Some(carriers) if carriers.len() > CARRIERS_MAX => {
                return Err(format!(
                    "carriers: {} entries, at most {CARRIERS_MAX} are allowed",
                    carriers.len()
                ));
            }
            Some(carriers) => carriers,
        };
        for (index, carrier) in carriers.iter().enumerate() {
            if carrier.name.trim().is_empty() {
                return Err(format!("carriers[{index}].name: must not be empty"));
            }
            if carrier.name.len() > CARRIER_NAME_BYTES_MAX {
                return Err(format!(
                    "carriers[{index}].name: longer than {CARRIER_NAME_BYTES_MAX} bytes"
                ));
            }
        }
        if let Some(threshold) = json.free_shipping_over_minor
            && !(0..=AMOUNT_MINOR_MAX).contains(&threshold)
        {
            return Err(format!(
                "free_shipping_over_minor: must be from 0 to {AMOUNT_MINOR_MAX}, got {threshold}"
            ));
        }
        // Stable: carriers with the same reach keep their configured order.
        carriers.sort_by_key(|carrier| carrier.max_distance_km.unwrap_or(u32::MAX));
        Ok(Self { carriers, free_shipping_over_minor: json.free_shipping_over_minor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bazaar_sdk::stand_in;
    use bazaar_sdk::testing::{CartBuilder, RouteRequestBuilder, places};

    fn plan(request: &RouteRequest) -> ShipmentPlan {
        Router::plan(request, &Config::default()).expect("a plan")
    }

    fn warehouses_of(plan: &ShipmentPlan) -> Vec<&str> {
        plan.shipments.iter().map(|s| s.warehouse_id.as_str()).collect()
    }

    fn lines_of(shipment: &Shipment) -> Vec<(&str, u32)> {
        shipment.lines.iter().map(|l| (l.sku.as_str(), l.quantity)).collect()
    }

    #[test]
    fn the_nearest_warehouse_with_the_whole_cart_ships_it() {
        let cart = CartBuilder::new("CNY")
            .line("TEA", 2, "129.00")
            .line("CUP", 1, "19.00")
            .ship_to(places::HANGZHOU)
            .build();
        let request = RouteRequestBuilder::new(cart)
            .warehouse("WH-BEIJING", places::BEIJING)
            .warehouse("WH-SHANGHAI", places::SHANGHAI)
            .stock("WH-BEIJING", "TEA", 50)
            .stock("WH-BEIJING", "CUP", 50)
            .stock("WH-SHANGHAI", "TEA", 5)
            .stock("WH-SHANGHAI", "CUP", 5)
            .build();
        let plan = plan(&request);
        assert_eq!(warehouses_of(&plan), ["WH-SHANGHAI"]);
        let shipment = &plan.shipments[0];
        assert_eq!(lines_of(shipment), [("TEA", 2), ("CUP", 1)]);
        // Shanghai to Hangzhou is 165 km: SF Express, 12.00 + 2 x 1.00 per
        // started 100 km, 24 h + 12 h for the started 500 km.
        assert_eq!(shipment.carrier, "SF Express");
        assert_eq!(shipment.fee, Money::new(14_00, "CNY"));
        assert_eq!(shipment.eta_hours, 36);
    }

    #[test]
    fn a_warehouse_with_the_whole_cart_beats_a_nearer_one_with_part_of_it() {
        let cart = CartBuilder::new("CNY").line("TEA", 4, "129.00").build();
        let request = RouteRequestBuilder::new(cart)
            .warehouse("WH-SHANGHAI", places::SHANGHAI)
            .warehouse("WH-WUHAN", places::WUHAN)
            .stock("WH-SHANGHAI", "TEA", 3)
            .stock("WH-WUHAN", "TEA", 4)
            .build();
        assert_eq!(warehouses_of(&plan(&request)), ["WH-WUHAN"]);
    }

    #[test]
    fn an_order_no_single_warehouse_can_serve_is_split() {
        let cart = CartBuilder::new("CNY").line("TEA", 5, "129.00").line("CUP", 2, "19.00").build();
        let request = RouteRequestBuilder::new(cart)
            .warehouse("WH-BEIJING", places::BEIJING)
            .warehouse("WH-HANGZHOU", places::HANGZHOU)
            .warehouse("WH-WUHAN", places::WUHAN)
            .stock("WH-HANGZHOU", "TEA", 3)
            .stock("WH-HANGZHOU", "CUP", 2)
            .stock("WH-WUHAN", "TEA", 1)
            .stock("WH-BEIJING", "TEA", 2)
            .build();
        let plan = plan(&request);
        // Hangzhou ships most (5 units); then Beijing's 2 TEA beat Wuhan's 1.
        assert_eq!(warehouses_of(&plan), ["WH-HANGZHOU", "WH-BEIJING"]);
        assert_eq!(lines_of(&plan.shipments[0]), [("TEA", 3), ("CUP", 2)]);
        assert_eq!(lines_of(&plan.shipments[1]), [("TEA", 2)]);
    }

    #[test]
    fn equal_splits_take_the_nearest_stock_first_then_the_smallest_id() {
        let cart = CartBuilder::new("CNY").line("TEA", 2, "129.00").build();
        let request = RouteRequestBuilder::new(cart)
            .warehouse("WH-B", places::BEIJING)
            .warehouse("WH-A", places::BEIJING)
            .warehouse("WH-NEAR", places::HANGZHOU)
            .stock("WH-B", "TEA", 1)
            .stock("WH-A", "TEA", 1)
            .stock("WH-NEAR", "TEA", 1)
            .build();
        assert_eq!(warehouses_of(&plan(&request)), ["WH-NEAR", "WH-A"]);
    }

    #[test]
    fn every_unit_ships_exactly_once_even_for_repeated_skus() {
        let cart =
            CartBuilder::new("CNY").line("TEA", 2, "129.00").line("TEA", 3, "129.00").build();
        let request = RouteRequestBuilder::new(cart)
            .warehouse("WH-SHANGHAI", places::SHANGHAI)
            .warehouse("WH-BEIJING", places::BEIJING)
            .stock("WH-SHANGHAI", "TEA", 4)
            .stock("WH-BEIJING", "TEA", 4)
            .build();
        let plan = plan(&request);
        let shipped: u32 = plan.shipments.iter().flat_map(|s| &s.lines).map(|l| l.quantity).sum();
        assert_eq!(shipped, 5);
        assert_eq!(warehouses_of(&plan), ["WH-SHANGHAI", "WH-BEIJING"]);
    }

    #[test]
    fn stock_that_cannot_cover_the_cart_is_unsupported() {
        let cart = CartBuilder::new("CNY").line("TEA", 5, "129.00").build();
        let request = RouteRequestBuilder::new(cart)
            .warehouse("WH-SHANGHAI", places::SHANGHAI)
            .stock("WH-SHANGHAI", "TEA", 3)
            .stock("WH-NOWHERE", "TEA", 10)
            .build();
        let error = Router::plan(&request, &Config::default()).unwrap_err();
        assert_eq!(
            error,
            PluginError::unsupported("stock cannot cover the cart: TEA needs 5 units, 3 available")
        );
    }

    #[test]
    fn carriers_are_chosen_by_distance_band() {
        let cart =
            CartBuilder::new("CNY").line("TEA", 1, "129.00").ship_to(places::SHANGHAI).build();
        let route_from = |location| {
            let request = RouteRequestBuilder::new(cart.clone())
                .warehouse("WH", location)
                .stock("WH", "TEA", 1)
                .build();
            plan(&request).shipments.remove(0)
        };
        let local = route_from(places::SHANGHAI);
        assert_eq!(
            (local.carrier.as_str(), local.fee.amount_minor, local.eta_hours),
            ("SF Same-Day", 15_00, 6)
        );
        let far = route_from(places::CHENGDU);
        // 1,661 km: beyond SF Express's 1,500 km band.
        assert_eq!(far.carrier, "EMS");
        assert_eq!(far.fee, Money::new(10_00 + 17 * 80, "CNY"));
        assert_eq!(far.eta_hours, 48 + 4 * 24);
    }

    #[test]
    fn orders_over_the_free_shipping_value_ship_free() {
        let config = Config::from_json(r#"{"free_shipping_over_minor": 9900}"#).unwrap();
        let route = |unit_price| {
            let cart = CartBuilder::new("CNY").line("TEA", 1, unit_price).build();
            let request = RouteRequestBuilder::new(cart)
                .warehouse("WH", places::BEIJING)
                .stock("WH", "TEA", 1)
                .build();
            Router::plan(&request, &config).unwrap().shipments.remove(0).fee
        };
        assert_eq!(route("99.00"), Money::zero("CNY"));
        assert!(route("98.99").is_positive());
    }

    #[test]
    fn a_distance_beyond_every_configured_carrier_is_unsupported() {
        let config = Config::from_json(
            r#"{"carriers": [{"name": "Courier", "max_distance_km": 100, "base_fee_minor": 500, "eta_hours_base": 4}]}"#,
        )
        .unwrap();
        let cart = CartBuilder::new("CNY").line("TEA", 1, "129.00").build();
        let request = RouteRequestBuilder::new(cart)
            .warehouse("WH", places::BEIJING)
            .stock("WH", "TEA", 1)
            .build();
        let error = Router::plan(&request, &config).unwrap_err();
        assert!(error.message().starts_with("no carrier serves 1068 km"), "{error}");
    }

    #[test]
    fn invalid_configurations_are_refused_with_the_field_named() {
        let cases = [
            (r#"{"carriers": []}"#, "at least one carrier"),
            (
                r#"{"carriers": [{"name": " ", "base_fee_minor": 1, "eta_hours_base": 1}]}"#,
                "carriers[0].name",
            ),
            (
                r#"{"carriers": [{"name": "X", "base_fee_minor": -1, "eta_hours_base": 1}]}"#,
                "carriers[0].base_fee_minor",
            ),
            (
                r#"{"carriers": [{"name": "X", "eta_hours_base": 1}]}"#,
                "missing field `base_fee_minor`",
            ),
            (r#"{"free_shipping_over_minor": -5}"#, "free_shipping_over_minor"),
            (r#"{"free_shiping_over_minor": 5}"#, "unknown field"),
        ];
        for (json, expected) in cases {
            let error = Config::from_json(json).unwrap_err();
            assert!(matches!(error, PluginError::InvalidConfig(_)), "{json}: {error:?}");
            assert!(error.message().contains(expected), "{json}: {error} lacks {expected:?}");
        }
    }

    #[test]
    fn duplicate_warehouses_and_empty_carts_are_unsupported() {
        let cart = CartBuilder::new("CNY").line("TEA", 1, "129.00").build();
        let twice = RouteRequestBuilder::new(cart)
            .warehouse("WH", places::SHANGHAI)
            .warehouse("WH", places::BEIJING)
            .build();
        assert!(matches!(
            Router::plan(&twice, &Config::default()),
            Err(PluginError::Unsupported(_))
        ));
        let empty = RouteRequestBuilder::new(CartBuilder::new("CNY").build()).build();
        assert!(matches!(
            Router::plan(&empty, &Config::default()),
            Err(PluginError::Unsupported(_))
        ));
    }

    #[test]
    fn a_stock_matrix_shorter_than_the_cart_or_the_warehouses_counts_as_no_stock() {
        let cart = CartBuilder::new("CNY").line("TEA", 1, "129.00").line("CUP", 1, "19.00").build();
        let mut request = RouteRequestBuilder::new(cart)
            .warehouse("WH-SHANGHAI", places::SHANGHAI)
            .warehouse("WH-BEIJING", places::BEIJING)
            .stock("WH-BEIJING", "TEA", 5)
            .stock("WH-BEIJING", "CUP", 5)
            .build();
        // CUP's row is missing and TEA's has no count for Beijing.
        request.stock = vec![vec![0]];
        assert!(matches!(
            Router::plan(&request, &Config::default()),
            Err(PluginError::Unsupported(_))
        ));
        request.stock = vec![vec![0, 5], vec![0, 5]];
        assert_eq!(warehouses_of(&plan(&request)), ["WH-BEIJING"]);
    }

    #[test]
    fn a_store_without_configuration_routes_with_the_default_carriers() {
        stand_in::reset();
        let cart = CartBuilder::new("CNY").line("TEA", 1, "129.00").build();
        let request = RouteRequestBuilder::new(cart)
            .warehouse("WH", places::SHANGHAI)
            .stock("WH", "TEA", 1)
            .build();
        let plan = Router::plan_with_store_config(&request).unwrap();
        assert_eq!(plan.shipments[0].carrier, "SF Same-Day");
    }
}
