//! The pricing extension point: a loaded pricing plugin, and the
//! per-worker [`Pricer`] that calls it.

use std::fmt;
use std::sync::Arc;

use bazaar_kernel::model::{Adjustment, Cart, PluginRef};

use crate::bindings::pricing::{Pricing, PricingPre};
use crate::call::{CallCounters, CallOutcome, LiveInstance, Loaded, PluginCall};
use crate::convert::{adjustments_from_guest, cart_to_guest};
use crate::runtime::RuntimeShared;
use crate::store_data::InstanceState;

/// A compiled and linked pricing plugin at one version. Cheap to clone and
/// to share between threads; instances come from [`PricingPlugin::pricer`].
#[derive(Clone)]
pub struct PricingPlugin {
    /// The plugin, shared with every [`Pricer`] made from it.
    loaded: Arc<Loaded<PricingPre<InstanceState>>>,
}

impl PricingPlugin {
    pub(crate) fn new(
        plugin: PluginRef,
        pre: PricingPre<InstanceState>,
        runtime: Arc<RuntimeShared>,
    ) -> Self {
        Self { loaded: Arc::new(Loaded::new(plugin, pre, runtime)) }
    }

    /// Which plugin and version this is.
    pub fn plugin_ref(&self) -> &PluginRef {
        &self.loaded.plugin
    }

    /// Calls, failures, traps and instantiations so far, over every
    /// [`Pricer`] of this plugin.
    pub fn counters(&self) -> CallCounters {
        self.loaded.counters()
    }

    /// A holder for one worker's instance of the plugin.
    pub fn pricer(&self) -> Pricer {
        Pricer { plugin: self.clone(), instance: None }
    }
}

impl fmt::Debug for PricingPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PricingPlugin")
            .field("plugin", &self.loaded.plugin)
            .field("counters", &self.loaded.counters())
            .finish_non_exhaustive()
    }
}

/// One worker's instance of a pricing plugin: created on the first call,
/// reused by the next ones, replaced after a trap. Not shared between
/// threads; each worker makes its own with [`PricingPlugin::pricer`].
pub struct Pricer {
    /// The plugin it runs.
    plugin: PricingPlugin,
    /// The live instance, if any.
    instance: Option<LiveInstance<Pricing>>,
}

impl fmt::Debug for Pricer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pricer")
            .field("plugin", &self.plugin.loaded.plugin)
            .field("warm", &self.instance.is_some())
            .finish()
    }
}

impl Pricer {
    /// The plugin it runs.
    pub fn plugin(&self) -> &PricingPlugin {
        &self.plugin
    }

    /// Asks the plugin for the adjustments to `cart`. Blocking CPU work:
    /// run it on a worker thread, never on an async reactor.
    pub fn price_cart(&mut self, call: PluginCall, cart: &Cart) -> CallOutcome<Vec<Adjustment>> {
        let loaded = &self.plugin.loaded;
        let input = cart_to_guest(cart);
        loaded.call(
            &mut self.instance,
            call,
            |pre, store| pre.instantiate(store),
            |pricing, store| pricing.bazaar_commerce_pricer().call_price_cart(store, &input),
            |output| adjustments_from_guest(output, cart, &loaded.plugin, &loaded.runtime.limits),
        )
    }
}
