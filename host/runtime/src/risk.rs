//! The risk extension point: a loaded risk plugin, the per-worker
//! [`RiskAssessor`] that calls it, and the request and verdict it
//! exchanges.
//!
//! A risk plugin judges an order before anything is reserved. Its verdict
//! comes back tagged with the plugin and version that produced it, so the
//! caller can record it with the order; what happens when the call fails
//! (risk fails closed) is the caller's policy, not the runtime's.

use bazaar_kernel::model::{Cart, PluginRef, Sku};

use crate::bindings::risk::{Risk, RiskPre};
use crate::bindings::types;
use crate::call::{CallOutcome, PluginCall};
use crate::convert::{self, verdict_from_guest};
use crate::extension::extension_point;
use crate::store_data::InstanceState;

/// What a risk plugin is asked to judge (the WIT `risk-request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskRequest {
    /// The cart, with catalogue unit prices.
    pub cart: Cart,
    /// What the order costs after promotions (the cart's subtotal less
    /// every price adjustment), before shipping fees, in minor units of the
    /// cart's currency.
    pub total_minor: i64,
    /// The customer's past orders in the cart's store.
    pub history: CustomerHistory,
}

/// What the host knows of a customer in one store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomerHistory {
    /// Orders the customer has placed in the store that are not cancelled.
    pub orders_placed: u64,
    /// For each SKU of the cart, in the order of the cart's lines, the
    /// units the customer already holds.
    pub units_held: Vec<UnitsHeld>,
}

/// Units of one SKU a customer already holds in orders that are not
/// cancelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitsHeld {
    /// The SKU.
    pub sku: Sku,
    /// Units held. Plugins see counts above `u32::MAX` as `u32::MAX`: no
    /// limit a store sets comes near it, so no verdict changes.
    pub units: u64,
}

/// Whether an order may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The order may be placed.
    Approve,
    /// The order is refused before anything is reserved.
    Reject,
}

/// A risk plugin's judgement of one order, checked for shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskVerdict {
    /// Approve or reject.
    pub decision: Decision,
    /// The machine-readable code of the rule that decided; never empty.
    pub code: String,
    /// A human-readable explanation; for a rejection it is shown to the
    /// customer, and it is never empty.
    pub reason: String,
    /// The plugin that produced it.
    pub plugin: PluginRef,
}

impl RiskVerdict {
    /// True for [`Decision::Approve`].
    pub fn is_approved(&self) -> bool {
        self.decision == Decision::Approve
    }
}

extension_point! {
    /// A compiled and linked risk plugin at one version. Cheap to clone and
    /// to share between threads; instances come from
    /// [`RiskPlugin::assessor`].
    plugin RiskPlugin(pre: RiskPre<InstanceState>);

    /// One worker's instance of a risk plugin: created on the first call,
    /// reused by the next ones, replaced after a trap. Not shared between
    /// threads; each worker makes its own with [`RiskPlugin::assessor`].
    worker RiskAssessor(bindings: Risk, kept input: types::RiskRequest), made by assessor;
}

impl RiskAssessor {
    /// Asks the plugin whether the order in `request` may be placed. The
    /// verdict comes back tagged with this plugin. Blocking CPU work: run
    /// it on a worker thread, never on an async reactor.
    pub fn assess_order(
        &mut self,
        call: PluginCall,
        request: &RiskRequest,
    ) -> CallOutcome<RiskVerdict> {
        let loaded = &self.plugin.loaded;
        let input = self.input.get_or_insert_with(convert::empty_risk_request);
        convert::refill_risk_request(input, request);
        loaded.call(
            &mut self.instance,
            call,
            |pre, store| pre.instantiate(store),
            |risk, store| risk.bazaar_commerce_risk_assessor().call_assess_order(store, input),
            |output| verdict_from_guest(output, &loaded.plugin, &loaded.runtime.limits),
        )
    }
}
