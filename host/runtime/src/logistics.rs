//! The logistics extension point: a loaded logistics plugin, and the
//! per-worker [`ShipmentRouter`] that calls it.

use std::fmt;
use std::sync::Arc;

use bazaar_kernel::model::{Cart, PluginRef, ShipmentPlan, Sku, Warehouse, WarehouseId};

use crate::bindings::logistics::{Logistics, LogisticsPre};
use crate::call::{CallCounters, CallOutcome, LiveInstance, Loaded, PluginCall};
use crate::convert::{plan_from_guest, route_request_to_guest};
use crate::runtime::RuntimeShared;
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

/// A compiled and linked logistics plugin at one version. Cheap to clone
/// and to share between threads; instances come from
/// [`LogisticsPlugin::router`].
#[derive(Clone)]
pub struct LogisticsPlugin {
    /// The plugin, shared with every [`ShipmentRouter`] made from it.
    loaded: Arc<Loaded<LogisticsPre<InstanceState>>>,
}

impl LogisticsPlugin {
    pub(crate) fn new(
        plugin: PluginRef,
        pre: LogisticsPre<InstanceState>,
        runtime: Arc<RuntimeShared>,
    ) -> Self {
        Self { loaded: Arc::new(Loaded::new(plugin, pre, runtime)) }
    }

    /// Which plugin and version this is.
    pub fn plugin_ref(&self) -> &PluginRef {
        &self.loaded.plugin
    }

    /// Calls, failures, traps and instantiations so far, over every
    /// [`ShipmentRouter`] of this plugin.
    pub fn counters(&self) -> CallCounters {
        self.loaded.counters()
    }

    /// A holder for one worker's instance of the plugin.
    pub fn router(&self) -> ShipmentRouter {
        ShipmentRouter { plugin: self.clone(), instance: None }
    }
}

impl fmt::Debug for LogisticsPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogisticsPlugin")
            .field("plugin", &self.loaded.plugin)
            .field("counters", &self.loaded.counters())
            .finish_non_exhaustive()
    }
}

/// One worker's instance of a logistics plugin: created on the first call,
/// reused by the next ones, replaced after a trap. Not shared between
/// threads; each worker makes its own with [`LogisticsPlugin::router`].
pub struct ShipmentRouter {
    /// The plugin it runs.
    plugin: LogisticsPlugin,
    /// The live instance, if any.
    instance: Option<LiveInstance<Logistics>>,
}

impl fmt::Debug for ShipmentRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShipmentRouter")
            .field("plugin", &self.plugin.loaded.plugin)
            .field("warm", &self.instance.is_some())
            .finish()
    }
}

impl ShipmentRouter {
    /// The plugin it runs.
    pub fn plugin(&self) -> &LogisticsPlugin {
        &self.plugin
    }

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
