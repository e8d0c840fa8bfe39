//! The first-party plugins compiled natively into the host, behind the
//! same call shape as their Wasm builds, so the cost of the sandbox can be
//! measured against no sandbox.

use std::collections::HashMap;
use std::sync::Arc;

use bazaar_kernel::PluginConfig;
use bazaar_kernel::model::{
    Adjustment, Cart, PluginRef, Router, Shipment, ShipmentLine, ShipmentPlan, Sku, StoreId,
    WarehouseId,
};
use bazaar_runtime::RouteRequest;

use crate::router::sdk_coordinates;

/// A pricing plugin compiled into the host.
pub trait NativePricing: Send {
    /// Prices `cart` with the store's configuration `config`.
    fn price(&mut self, config: &PluginConfig, cart: &Cart) -> Result<Vec<Adjustment>, String>;
}

/// A logistics plugin compiled into the host.
pub trait NativeLogistics: Send {
    /// Routes `request` with the store's configuration `config`.
    fn plan(
        &mut self,
        config: &PluginConfig,
        request: &RouteRequest<'_>,
    ) -> Result<ShipmentPlan, String>;
}

/// Makes a native pricing instance for a plugin reference.
pub type MakeNativePricing = fn(PluginRef) -> Box<dyn NativePricing>;
/// Makes a native logistics instance for a plugin reference.
pub type MakeNativeLogistics = fn(PluginRef) -> Box<dyn NativeLogistics>;

/// The first-party promotions plugin, natively.
pub fn promotions(plugin: PluginRef) -> Box<dyn NativePricing> {
    Box::new(NativePricer::<pricing_promotions::Promotions>::new(plugin))
}

/// The first-party router plugin, natively.
pub fn router(plugin: PluginRef) -> Box<dyn NativeLogistics> {
    Box::new(NativeRouter::<logistics_router::Router>::new(plugin))
}

/// A native pricing plugin with its parsed configuration per store.
struct NativePricer<P: bazaar_sdk::PricingPlugin> {
    /// Which plugin this is.
    plugin: PluginRef,
    /// Parsed configuration per store, with the revision it was parsed at.
    configs: HashMap<StoreId, (u64, Arc<P::Config>)>,
}

impl<P: bazaar_sdk::PricingPlugin> NativePricer<P> {
    fn new(plugin: PluginRef) -> Self {
        Self { plugin, configs: HashMap::new() }
    }
}

/// The parsed configuration of `store`, parsing only when it changed.
fn parsed_config<C: bazaar_sdk::PluginConfig>(
    cache: &mut HashMap<StoreId, (u64, Arc<C>)>,
    store: &StoreId,
    config: &PluginConfig,
) -> Result<Arc<C>, String> {
    if let Some((revision, parsed)) = cache.get(store)
        && *revision == config.revision
    {
        return Ok(parsed.clone());
    }
    let parsed = Arc::new(bazaar_sdk::config::parse::<C>(&config.json).map_err(|e| e.to_string())?);
    cache.insert(store.clone(), (config.revision, parsed.clone()));
    Ok(parsed)
}

impl<P> NativePricing for NativePricer<P>
where
    P: bazaar_sdk::PricingPlugin,
    P::Config: Send + Sync,
{
    fn price(&mut self, config: &PluginConfig, cart: &Cart) -> Result<Vec<Adjustment>, String> {
        let parsed = parsed_config(&mut self.configs, &cart.store_id, config)?;
        let adjustments = P::price(&sdk_cart(cart), &parsed).map_err(|e| e.to_string())?;
        adjustments
            .into_iter()
            .map(|a| {
                check_currency(&a.amount_off, cart)?;
                Ok(Adjustment {
                    line_index: a.line_index,
                    amount_off_minor: a.amount_off.amount_minor,
                    code: a.code,
                    reason: a.reason,
                    plugin: self.plugin.clone(),
                })
            })
            .collect()
    }
}

/// A native logistics plugin with its parsed configuration per store.
struct NativeRouter<P: bazaar_sdk::LogisticsPlugin> {
    /// Which plugin this is.
    plugin: PluginRef,
    /// Parsed configuration per store.
    configs: HashMap<StoreId, (u64, Arc<P::Config>)>,
}

impl<P: bazaar_sdk::LogisticsPlugin> NativeRouter<P> {
    fn new(plugin: PluginRef) -> Self {
        Self { plugin, configs: HashMap::new() }
    }
}

impl<P> NativeLogistics for NativeRouter<P>
where
    P: bazaar_sdk::LogisticsPlugin,
    P::Config: Send + Sync,
{
    fn plan(
        &mut self,
        config: &PluginConfig,
        request: &RouteRequest<'_>,
    ) -> Result<ShipmentPlan, String> {
        let parsed = parsed_config(&mut self.configs, &request.cart.store_id, config)?;
        let sdk_request = bazaar_sdk::RouteRequest {
            cart: sdk_cart(request.cart),
            warehouses: request
                .warehouses
                .iter()
                .map(|w| bazaar_sdk::Warehouse {
                    id: w.id.to_string(),
                    location: sdk_coordinates(w.location),
                })
                .collect(),
            stock: request.guest_stock(),
        };
        let plan = P::plan(&sdk_request, &parsed).map_err(|e| e.to_string())?;
        let shipments = plan
            .shipments
            .into_iter()
            .map(|s| {
                check_currency(&s.fee, request.cart)?;
                Ok(Shipment {
                    warehouse: WarehouseId::new(s.warehouse_id).map_err(|e| e.to_string())?,
                    lines: s
                        .lines
                        .into_iter()
                        .map(|l| {
                            Ok(ShipmentLine {
                                sku: Sku::new(l.sku).map_err(|e| e.to_string())?,
                                quantity: l.quantity,
                            })
                        })
                        .collect::<Result<_, String>>()?,
                    carrier: s.carrier,
                    fee_minor: s.fee.amount_minor,
                    eta_hours: s.eta_hours,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(ShipmentPlan {
            shipments,
            routed_by: Router::Plugin(self.plugin.clone()),
            fallback_reason: None,
        })
    }
}

fn check_currency(money: &bazaar_sdk::Money, cart: &Cart) -> Result<(), String> {
    if money.currency != cart.currency.as_str() {
        return Err(format!("amount in {} but the cart is in {}", money.currency, cart.currency));
    }
    Ok(())
}

/// The SDK's view of a kernel cart (what the native plugins take).
fn sdk_cart(cart: &Cart) -> bazaar_sdk::Cart {
    let currency = cart.currency.as_str();
    bazaar_sdk::Cart {
        store_id: cart.store_id.to_string(),
        customer: bazaar_sdk::Customer {
            id: cart.customer.id.to_string(),
            segment: match cart.customer.segment {
                bazaar_kernel::model::CustomerSegment::NewCustomer => {
                    bazaar_sdk::CustomerSegment::NewCustomer
                }
                bazaar_kernel::model::CustomerSegment::Regular => {
                    bazaar_sdk::CustomerSegment::Regular
                }
                bazaar_kernel::model::CustomerSegment::Vip => bazaar_sdk::CustomerSegment::Vip,
                bazaar_kernel::model::CustomerSegment::Staff => bazaar_sdk::CustomerSegment::Staff,
            },
        },
        lines: cart
            .lines
            .iter()
            .map(|line| bazaar_sdk::CartLine {
                sku: line.sku.to_string(),
                quantity: line.quantity,
                unit_price: bazaar_sdk::Money::new(line.unit_price_minor, currency),
            })
            .collect(),
        coupon_codes: cart.coupon_codes.clone(),
        shipping_address: bazaar_sdk::Address {
            country: cart.shipping_address.country.clone(),
            region: cart.shipping_address.region.clone(),
            city: cart.shipping_address.city.clone(),
            street: cart.shipping_address.street.clone(),
            postal_code: cart.shipping_address.postal_code.clone(),
            location: sdk_coordinates(cart.shipping_address.location),
        },
        placed_at_ms: cart.placed_at_ms,
    }
}
