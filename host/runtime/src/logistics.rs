//! The logistics extension point: a loaded logistics plugin, the
//! per-worker [`ShipmentRouter`] that calls it, and the request it routes.

use bazaar_kernel::model::{Cart, ShipmentPlan, Sku, Warehouse, WarehouseId};

use crate::bindings::logistics::{Logistics, LogisticsPre};
use crate::call::{CallOutcome, PluginCall};
use crate::convert::{plan_from_guest, route_request_to_guest};
use crate::extension::extension_point;
use crate::store_data::InstanceState;

/// What a logistics plugin is asked to route (the WIT `route-request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRequest {
    /// The cart to ship.
    pub cart: Cart,
    /// Every warehouse of the store.
    pub warehouses: Vec<Warehouse>,
    /// Available stock of the cart's SKUs in every warehouse that holds any.
    pub stock: Vec<StockAvailability>,
}

/// Units of one SKU one warehouse can still promise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockAvailability {
    /// The SKU.
    pub sku: Sku,
    /// The warehouse.
    pub warehouse: WarehouseId,
    /// Units available to reserve now.
    pub available: u64,
}

extension_point! {
    /// A compiled and linked logistics plugin at one version. Cheap to clone
    /// and to share between threads; instances come from
    /// [`LogisticsPlugin::router`].
    plugin LogisticsPlugin(pre: LogisticsPre<InstanceState>);

    /// One worker's instance of a logistics plugin: created on the first
    /// call, reused by the next ones, replaced after a trap. Not shared
    /// between threads; each worker makes its own with
    /// [`LogisticsPlugin::router`].
    worker ShipmentRouter(bindings: Logistics), made by router;
}

impl ShipmentRouter {
    /// Asks the plugin how to ship `request.cart`. The plan comes back
    /// marked as routed by this plugin. Blocking CPU work: run it on a
    /// worker thread, never on an async reactor.
    pub fn plan_shipment(
        &mut self,
        call: PluginCall,
        request: &RouteRequest,
    ) -> CallOutcome<ShipmentPlan> {
        let loaded = &self.plugin.loaded;
        let input = route_request_to_guest(request);
        loaded.call(
            &mut self.instance,
            call,
            |pre, store| pre.instantiate(store),
            |logistics, store| logistics.bazaar_commerce_router().call_plan_shipment(store, &input),
            |output| plan_from_guest(output, &request.cart, &loaded.plugin, &loaded.runtime.limits),
        )
    }
}
