//! The logistics extension point: a loaded logistics plugin, the
//! per-worker [`ShipmentRouter`] that calls it, and the request it routes.

use bazaar_kernel::model::{Cart, ShipmentPlan, Warehouse};

use crate::bindings::logistics::{Logistics, LogisticsPre};
use crate::bindings::types;
use crate::call::{CallOutcome, PluginCall};
use crate::convert::{self, plan_from_guest};
use crate::extension::extension_point;
use crate::store_data::InstanceState;

/// What a logistics plugin is asked to route (the WIT `route-request`),
/// borrowed from the cart and the store's state: it is built for every
/// order, and only the plugin's own copy needs to own anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRequest<'a> {
    /// The cart to ship.
    pub cart: &'a Cart,
    /// Every warehouse of the store.
    pub warehouses: Vec<&'a Warehouse>,
    /// Units available to reserve now, by cart line and warehouse:
    /// `stock[l][w]` is what `warehouses[w]` holds of the SKU of
    /// `cart.lines[l]` (the WIT `route-request`'s matrix).
    pub stock: Vec<Vec<u64>>,
}

impl RouteRequest<'_> {
    /// The stock matrix as plugins see it (WIT counts are `u32`): a count
    /// above `u32::MAX` is shown as `u32::MAX`, which no cart comes near,
    /// so no route changes.
    pub fn guest_stock(&self) -> Vec<Vec<u32>> {
        self.stock
            .iter()
            .map(|row| row.iter().map(|&available| guest_units(available)).collect())
            .collect()
    }
}

/// A count of units as plugins see it: `u32::MAX` stands for any more.
pub(crate) fn guest_units(available: u64) -> u32 {
    u32::try_from(available).unwrap_or(u32::MAX)
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
    worker ShipmentRouter(bindings: Logistics, kept input: types::RouteRequest), made by router;
}

impl ShipmentRouter {
    /// Asks the plugin how to ship `request.cart`. The plan comes back
    /// marked as routed by this plugin. Blocking CPU work: run it on a
    /// worker thread, never on an async reactor.
    pub fn plan_shipment(
        &mut self,
        call: PluginCall,
        request: &RouteRequest<'_>,
    ) -> CallOutcome<ShipmentPlan> {
        let loaded = &self.plugin.loaded;
        let input = self.input.get_or_insert_with(convert::empty_route_request);
        convert::refill_route_request(input, request);
        loaded.call(
            &mut self.instance,
            call,
            |pre, store| pre.instantiate(store),
            |logistics, store| logistics.bazaar_commerce_router().call_plan_shipment(store, input),
            |output| plan_from_guest(output, request.cart, &loaded.plugin, &loaded.runtime.limits),
        )
    }
}
