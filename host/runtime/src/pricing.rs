//! The pricing extension point: a loaded pricing plugin, and the
//! per-worker [`Pricer`] that calls it.

use bazaar_kernel::model::{Adjustment, Cart};

use crate::bindings::pricing::{Pricing, PricingPre};
use crate::bindings::types;
use crate::call::{CallOutcome, PluginCall};
use crate::convert::{self, adjustments_from_guest};
use crate::extension::extension_point;
use crate::store_data::InstanceState;

extension_point! {
    /// A compiled and linked pricing plugin at one version. Cheap to clone
    /// and to share between threads; instances come from
    /// [`PricingPlugin::pricer`].
    plugin PricingPlugin(pre: PricingPre<InstanceState>);

    /// One worker's instance of a pricing plugin: created on the first call,
    /// reused by the next ones, replaced after a trap. Not shared between
    /// threads; each worker makes its own with [`PricingPlugin::pricer`].
    worker Pricer(bindings: Pricing, kept input: types::Cart), made by pricer;
}

impl Pricer {
    /// Asks the plugin for the adjustments to `cart`. Blocking CPU work:
    /// run it on a worker thread, never on an async reactor.
    pub fn price_cart(&mut self, call: PluginCall, cart: &Cart) -> CallOutcome<Vec<Adjustment>> {
        let loaded = &self.plugin.loaded;
        let input = self.input.get_or_insert_with(convert::empty_cart);
        convert::refill_cart(input, cart);
        loaded.call(
            &mut self.instance,
            call,
            |pre, store| pre.instantiate(store),
            |pricing, store| pricing.bazaar_commerce_pricer().call_price_cart(store, input),
            |output| adjustments_from_guest(output, cart, &loaded.plugin, &loaded.runtime.limits),
        )
    }
}
