//! One shard writer's run of a store's plugins on an order: which plugins
//! and versions the store runs, in which order, with which stacking rules,
//! and what each failure does to the order.
//!
//! Instances are kept per store: every (store, plugin version) pair has its
//! own instance on the shard that owns the store, so nothing a plugin keeps
//! in its linear memory while serving one store (a configuration, a
//! customer id) can reach another store's orders. The instances of a shard
//! are bounded ([`INSTANCES_PER_SHARD_MAX`]); the least recently used goes
//! first, and a store whose instance was evicted gets a fresh one (one
//! instantiation, tens of microseconds).

use std::collections::HashMap;
use std::sync::Arc;

use bazaar_kernel::model::{
    Adjustment, Cart, PluginFailure, PluginId, PluginKind, PluginRef, RiskCheck, Router,
    ShipmentPlan, StoreId, Warehouse,
};
use bazaar_kernel::{PluginConfig, Shard, StateWrite, StoreState, validate_adjustments};
use bazaar_runtime::{
    CustomerHistory, Decision, PluginCall, Pricer, RiskAssessor, RiskRequest, RouteRequest,
    ShipmentRouter, UnitsHeld,
};

use crate::breaker::{Breakers, PublishedBreakers};
use crate::native::{NativeLogistics, NativePricing};
use crate::plugins::{
    CatalogView, FailurePolicy, Implementation, InstalledPlugin, PluginSet, Shadow,
    describe_adjustments, describe_plan, describe_risk,
};
use crate::router;

/// Most plugin instances one shard keeps: a few plugins for each of the
/// few hundred stores a shard serves at once in a flash sale. Each holds
/// a pool slot and its linear memory (a Rust plugin touches about a
/// megabyte), so this bounds a shard's plugin memory to a few hundred MiB.
pub const INSTANCES_PER_SHARD_MAX: usize = 192;

/// What the plugins decided for one order.
#[derive(Clone, Debug)]
pub struct PluginOutputs {
    /// Accepted price adjustments, in order.
    pub adjustments: Vec<Adjustment>,
    /// Their sum, as the kernel validated it against the cart.
    pub discount_minor: i64,
    /// Pricing plugins skipped because they failed.
    pub pricing_failures: Vec<PluginFailure>,
    /// How the order ships.
    pub shipment_plan: ShipmentPlan,
    /// State writes of the plugins whose output was used.
    pub state_writes: Vec<StateWrite>,
}

/// Why the plugins stopped an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A risk plugin rejected it.
    Rejected {
        /// The plugin.
        plugin: PluginRef,
        /// Its code for the rule.
        code: String,
        /// Its explanation, for the customer.
        reason: String,
    },
    /// A plugin whose failure policy is fail-closed failed or was skipped.
    Unavailable {
        /// The plugin.
        plugin: PluginRef,
        /// Its extension point.
        kind: PluginKind,
        /// What went wrong.
        reason: String,
    },
}

/// One shard's instance of one plugin version for one store.
enum Holder {
    Pricing(Pricer),
    Logistics(ShipmentRouter),
    Risk(RiskAssessor),
    NativePricing(Box<dyn NativePricing>),
    NativeLogistics(Box<dyn NativeLogistics>),
}

impl Holder {
    /// The order path's instance of `implementation`; none for an analytics
    /// plugin, which never runs on the order path.
    fn new(implementation: &Implementation) -> Option<Self> {
        Some(match implementation {
            Implementation::Pricing(plugin) => Holder::Pricing(plugin.pricer()),
            Implementation::Logistics(plugin) => Holder::Logistics(plugin.router()),
            Implementation::Risk(plugin) => Holder::Risk(plugin.assessor()),
            Implementation::NativePricing(plugin, make) => {
                Holder::NativePricing(make(plugin.clone()))
            }
            Implementation::NativeLogistics(plugin, make) => {
                Holder::NativeLogistics(make(plugin.clone()))
            }
            Implementation::Analytics(_) | Implementation::Driver(_) => return None,
        })
    }
}

/// A holder with what it belongs to and when it was last used.
struct Slot {
    /// The plugin version it runs.
    implementation: Arc<Implementation>,
    /// The instance.
    holder: Holder,
    /// The shard's use counter at its last use.
    last_used: u64,
}

/// The version a call runs on, resolved for one store.
struct Resolved {
    /// The version to run.
    implementation: Arc<Implementation>,
    /// The shadow to run beside it, when this call is sampled.
    shadow: Option<(Arc<Implementation>, Shadow)>,
}

/// A shard writer's plugin instances and its view of the catalogue.
pub struct ShardPlugins {
    /// The node's catalogue.
    set: PluginSet,
    /// The view this shard runs on, and its generation.
    view: Arc<CatalogView>,
    generation: u64,
    /// Instances by store, each store's a short list.
    slots: HashMap<StoreId, Vec<Slot>>,
    /// Instances held over all stores.
    slot_count: usize,
    /// Counts uses, to find the least recently used instance.
    uses: u64,
    /// A circuit breaker per plugin per store of this shard.
    breakers: Breakers,
    /// Each store's plugin configurations as shared text, refreshed when
    /// the store's configuration revision changes, so a call does not copy
    /// the document.
    configs: HashMap<StoreId, HashMap<PluginId, (u64, Arc<str>)>>,
}

impl ShardPlugins {
    pub(crate) fn new(set: PluginSet, breakers: PublishedBreakers) -> Self {
        let generation = set.generation();
        let view = set.view();
        Self {
            set,
            view,
            generation,
            slots: HashMap::new(),
            slot_count: 0,
            uses: 0,
            breakers: Breakers::new(breakers),
            configs: HashMap::new(),
        }
    }

    /// The kind of an installed plugin.
    pub fn kind_of(&self, plugin: &PluginId) -> Option<PluginKind> {
        self.view.plugins.get(plugin).map(|installed| installed.kind)
    }

    /// Picks up a changed catalogue and drops the instances of versions it
    /// no longer has. Called between batches, never during a call.
    pub fn refresh(&mut self) {
        let generation = self.set.generation();
        if generation == self.generation {
            return;
        }
        self.view = self.set.view();
        self.generation = generation;
        let view = &self.view;
        let mut dropped = 0;
        for slots in self.slots.values_mut() {
            slots.retain(|slot| {
                let plugin = slot.implementation.plugin_ref();
                let kept = view
                    .plugins
                    .get(&plugin.id)
                    .and_then(|installed| installed.versions.get(&plugin.version))
                    .is_some_and(|current| Arc::ptr_eq(current, &slot.implementation));
                dropped += usize::from(!kept);
                kept
            });
        }
        self.slot_count -= dropped;
        self.slots.retain(|_, slots| !slots.is_empty());
    }

    fn config_text(
        &mut self,
        store: &StoreId,
        plugin: &PluginId,
        config: &PluginConfig,
    ) -> Arc<str> {
        let plugins = self.configs.entry(store.clone()).or_default();
        match plugins.get(plugin) {
            Some((revision, text)) if *revision == config.revision => text.clone(),
            _ => {
                let text: Arc<str> = Arc::from(config.json.as_str());
                plugins.insert(plugin.clone(), (config.revision, text.clone()));
                text
            }
        }
    }

    /// The store's instance of `implementation`, made on first use; none for
    /// a plugin that has no place on the order path.
    fn holder(
        &mut self,
        store: &StoreId,
        implementation: &Arc<Implementation>,
    ) -> Option<&mut Holder> {
        self.uses += 1;
        let uses = self.uses;
        let found = self.slots.get(store).and_then(|slots| {
            slots.iter().position(|slot| Arc::ptr_eq(&slot.implementation, implementation))
        });
        let index = match found {
            Some(index) => index,
            None => {
                let holder = Holder::new(implementation)?;
                if self.slot_count >= INSTANCES_PER_SHARD_MAX {
                    self.evict_least_recently_used();
                }
                let slots = self.slots.entry(store.clone()).or_default();
                slots.push(Slot {
                    implementation: implementation.clone(),
                    holder,
                    last_used: uses,
                });
                self.slot_count += 1;
                slots.len() - 1
            }
        };
        let slot = &mut self.slots.get_mut(store).expect("the store's slots exist")[index];
        slot.last_used = uses;
        Some(&mut slot.holder)
    }

    fn evict_least_recently_used(&mut self) {
        let oldest = self
            .slots
            .iter()
            .flat_map(|(store, slots)| {
                slots.iter().enumerate().map(move |(index, slot)| (slot.last_used, store, index))
            })
            .min_by_key(|(last_used, ..)| *last_used)
            .map(|(_, store, index)| (store.clone(), index));
        if let Some((store, index)) = oldest
            && let Some(slots) = self.slots.get_mut(&store)
        {
            slots.swap_remove(index);
            self.slot_count -= 1;
            if slots.is_empty() {
                self.slots.remove(&store);
            }
        }
    }

    /// The version `store` runs of `installed`, per its settings, and the
    /// shadow to compare when the call is sampled.
    fn resolve(
        installed: &InstalledPlugin,
        config: &PluginConfig,
        seed: u64,
    ) -> Result<Resolved, String> {
        let (version, following) = match &config.settings.version_pin {
            Some(pin) => (pin.as_str(), false),
            None => (
                installed
                    .active
                    .as_deref()
                    .ok_or("the plugin has no active version on this node")?,
                true,
            ),
        };
        let implementation = installed
            .versions
            .get(version)
            .ok_or_else(|| format!("version {version} is not installed on this node"))?
            .clone();
        let shadow = installed
            .shadow
            .as_ref()
            .filter(|shadow| following && seed % 100 < u64::from(shadow.share_percent))
            .and_then(|shadow| {
                Some((installed.versions.get(&shadow.version)?.clone(), shadow.clone()))
            });
        Ok(Resolved { implementation, shadow })
    }

    /// The store's configured plugins of `kind` with their configuration,
    /// in the order they run: by priority, then by id.
    fn configured<'a>(
        view: &'a CatalogView,
        state: &'a StoreState,
        kind: PluginKind,
    ) -> Vec<(&'a PluginId, &'a PluginConfig, &'a InstalledPlugin)> {
        let mut configured: Vec<_> = state
            .plugin_configs()
            .iter()
            .filter_map(|(id, config)| {
                let installed = view.plugins.get(id).filter(|installed| installed.kind == kind)?;
                Some((id, config, installed))
            })
            .collect();
        configured.sort_by_key(|(id, config, _)| (config.settings.priority, *id));
        configured
    }

    /// Runs the store's pricing plugins and its router on `cart`, applying
    /// the failure policies and the store's stacking rules. The cart was
    /// prepared by the kernel, so its store exists and its stock suffices.
    pub fn price_and_route(
        &mut self,
        shard: &Shard,
        cart: &Cart,
        seed: u64,
    ) -> Result<PluginOutputs, Refusal> {
        let state = shard.store(&cart.store_id).expect("the cart was prepared from this store");
        let view = self.view.clone();
        let mut adjustments: Vec<Adjustment> = Vec::new();
        let mut discount_minor = 0;
        let mut pricing_failures = Vec::new();
        let mut state_writes = Vec::new();
        let subtotal_minor =
            bazaar_kernel::order_totals(&cart.lines, 0, 0).map_or(0, |t| t.subtotal_minor);
        let cap_minor = state.pricing_rules().discount_cap(subtotal_minor);
        for (id, config, installed) in Self::configured(&view, state, PluginKind::Pricing) {
            if cap_minor.is_some_and(|cap| discount_minor >= cap) {
                break;
            }
            let outcome = self.run_pricing(state, cart, id, config, installed, seed);
            let (plugin, result, writes) = match outcome {
                Ok(ran) => ran,
                Err((plugin, reason)) => {
                    match installed.failure_policy {
                        FailurePolicy::FailClosed => {
                            return Err(Refusal::Unavailable {
                                plugin,
                                kind: PluginKind::Pricing,
                                reason,
                            });
                        }
                        // A pricing plugin cannot declare quarantine (the registry
                        // refuses it); it would fail open like the default.
                        FailurePolicy::FailOpen
                        | FailurePolicy::Fallback
                        | FailurePolicy::Quarantine => {
                            pricing_failures.push(PluginFailure { plugin, reason: clip(reason) });
                        }
                    }
                    continue;
                }
            };
            // Validated together with the adjustments already accepted, and
            // taken back out if the whole no longer holds.
            let accepted = adjustments.len();
            let checked = result.and_then(|proposed| {
                adjustments.extend(proposed);
                validate_adjustments(&cart.lines, &adjustments).map_err(|e| e.to_string())
            });
            self.breakers.record(&cart.store_id, id, cart.placed_at_ms, checked.is_ok());
            match checked {
                Ok(discount) => {
                    discount_minor = match cap_minor {
                        Some(cap) if discount > cap => {
                            trim_to_cap(&mut adjustments, accepted, discount - cap);
                            cap
                        }
                        _ => discount,
                    };
                    state_writes.extend(writes);
                    if config.settings.exclusive && adjustments.len() > accepted {
                        break;
                    }
                }
                Err(reason) => {
                    adjustments.truncate(accepted);
                    if installed.failure_policy == FailurePolicy::FailClosed {
                        return Err(Refusal::Unavailable {
                            plugin,
                            kind: PluginKind::Pricing,
                            reason: clip(reason),
                        });
                    }
                    pricing_failures.push(PluginFailure { plugin, reason: clip(reason) })
                }
            }
        }
        let shipment_plan = self.route(&view, shard, state, cart, seed, &mut state_writes)?;
        Ok(PluginOutputs {
            adjustments,
            discount_minor,
            pricing_failures,
            shipment_plan,
            state_writes,
        })
    }

    /// Calls one pricing plugin (and its shadow, when sampled). The error
    /// is a failure before any output: unresolvable version or open breaker.
    #[allow(clippy::type_complexity)]
    fn run_pricing(
        &mut self,
        state: &StoreState,
        cart: &Cart,
        id: &PluginId,
        config: &PluginConfig,
        installed: &InstalledPlugin,
        seed: u64,
    ) -> Result<(PluginRef, Result<Vec<Adjustment>, String>, Vec<StateWrite>), (PluginRef, String)>
    {
        let unresolved = |reason: String| {
            (PluginRef { id: id.clone(), version: configured_version(installed, config) }, reason)
        };
        let resolved = Self::resolve(installed, config, seed).map_err(unresolved)?;
        let plugin = resolved.implementation.plugin_ref().clone();
        if !self.breakers.allow(&cart.store_id, id, cart.placed_at_ms) {
            return Err((plugin, BREAKER_OPEN_REASON.to_string()));
        }
        let (result, writes) =
            self.call_pricing(state, cart, config, &resolved.implementation, seed);
        if let Some((shadow, run)) = resolved.shadow
            && let Ok(active) = &result
        {
            let (shadowed, _) = self.call_pricing(state, cart, config, &shadow, seed);
            let shadowed = shadowed.map(|adjustments| describe_adjustments(&adjustments));
            run.stats.record(&cart.store_id, describe_adjustments(active), shadowed);
        }
        Ok((plugin, result, writes))
    }

    fn call_pricing(
        &mut self,
        state: &StoreState,
        cart: &Cart,
        config: &PluginConfig,
        implementation: &Arc<Implementation>,
        seed: u64,
    ) -> (Result<Vec<Adjustment>, String>, Vec<StateWrite>) {
        let call = self.call(state, cart, implementation.plugin_ref(), config, seed);
        match self.holder(&cart.store_id, implementation) {
            Some(Holder::Pricing(pricer)) => {
                let outcome = pricer.price_cart(call, cart);
                (outcome.result.map_err(|e| e.to_string()), outcome.state_writes)
            }
            Some(Holder::NativePricing(native)) => (native.price(config, cart), Vec::new()),
            _ => (Err("not a pricing plugin".into()), Vec::new()),
        }
    }

    /// Asks every risk plugin the store configured to judge the order,
    /// whose price after promotions (before shipping) is `total_minor`.
    /// Returns the approvals and the plugins' state writes, or why the
    /// order must not be placed.
    pub fn assess_risk(
        &mut self,
        shard: &Shard,
        cart: &Cart,
        total_minor: i64,
        seed: u64,
    ) -> Result<(Vec<RiskCheck>, Vec<StateWrite>), Refusal> {
        let state = shard.store(&cart.store_id).expect("the cart was prepared from this store");
        let view = self.view.clone();
        let mut checks = Vec::new();
        let mut state_writes = Vec::new();
        let configured = Self::configured(&view, state, PluginKind::Risk);
        if configured.is_empty() {
            return Ok((checks, state_writes));
        }
        let request = RiskRequest {
            cart: cart.clone(),
            total_minor,
            history: CustomerHistory {
                orders_placed: state.customer_orders(&cart.customer.id),
                units_held: cart
                    .lines
                    .iter()
                    .map(|line| UnitsHeld {
                        sku: line.sku.clone(),
                        units: state.limit_holding(&cart.customer.id, &line.sku).into(),
                    })
                    .collect(),
            },
        };
        for (id, config, installed) in configured {
            let failed = |plugin: PluginRef, reason: String| match installed.failure_policy {
                FailurePolicy::FailOpen => {
                    Ok(RiskCheck { plugin, code: RISK_SKIPPED_CODE.into(), reason: clip(reason) })
                }
                FailurePolicy::FailClosed | FailurePolicy::Fallback | FailurePolicy::Quarantine => {
                    Err(Refusal::Unavailable {
                        plugin,
                        kind: PluginKind::Risk,
                        reason: clip(reason),
                    })
                }
            };
            let resolved = match Self::resolve(installed, config, seed) {
                Ok(resolved) => resolved,
                Err(reason) => {
                    let version = configured_version(installed, config);
                    checks.push(failed(PluginRef { id: id.clone(), version }, reason)?);
                    continue;
                }
            };
            let plugin = resolved.implementation.plugin_ref().clone();
            if !self.breakers.allow(&cart.store_id, id, cart.placed_at_ms) {
                checks.push(failed(plugin, BREAKER_OPEN_REASON.into())?);
                continue;
            }
            let (verdict, writes) =
                self.call_risk(state, cart, config, &resolved.implementation, &request, seed);
            self.breakers.record(&cart.store_id, id, cart.placed_at_ms, verdict.is_ok());
            if let Some((shadow, run)) = resolved.shadow
                && let Ok(active) = &verdict
            {
                let (shadowed, _) = self.call_risk(state, cart, config, &shadow, &request, seed);
                run.stats.record(
                    &cart.store_id,
                    describe_risk(active),
                    shadowed.map(|verdict| describe_risk(&verdict)),
                );
            }
            match verdict {
                Ok(RiskAnswer::Approve(check)) => {
                    checks.push(check);
                    state_writes.extend(writes);
                }
                Ok(RiskAnswer::Reject { code, reason }) => {
                    return Err(Refusal::Rejected { plugin, code, reason });
                }
                Err(reason) => checks.push(failed(plugin, reason)?),
            }
        }
        Ok((checks, state_writes))
    }

    /// One risk call; `Err` is a failure.
    fn call_risk(
        &mut self,
        state: &StoreState,
        cart: &Cart,
        config: &PluginConfig,
        implementation: &Arc<Implementation>,
        request: &RiskRequest,
        seed: u64,
    ) -> (Result<RiskAnswer, String>, Vec<StateWrite>) {
        let plugin = implementation.plugin_ref().clone();
        let call = self.call(state, cart, &plugin, config, seed);
        let Some(Holder::Risk(assessor)) = self.holder(&cart.store_id, implementation) else {
            return (Err("not a risk plugin".into()), Vec::new());
        };
        let outcome = assessor.assess_order(call, request);
        let verdict = outcome.result.map_err(|e| e.to_string()).map(|verdict| {
            if verdict.decision == Decision::Approve {
                RiskAnswer::Approve(RiskCheck {
                    plugin,
                    code: verdict.code,
                    reason: verdict.reason,
                })
            } else {
                RiskAnswer::Reject { code: verdict.code, reason: verdict.reason }
            }
        });
        (verdict, outcome.state_writes)
    }

    fn call(
        &mut self,
        state: &StoreState,
        cart: &Cart,
        plugin: &PluginRef,
        config: &PluginConfig,
        seed: u64,
    ) -> PluginCall {
        PluginCall {
            store: cart.store_id.clone(),
            config_json: Some(self.config_text(&cart.store_id, &plugin.id, config)),
            state: state.plugin_state(&plugin.id),
            now_ms: cart.placed_at_ms,
            random_seed: seed,
        }
    }

    fn route(
        &mut self,
        view: &CatalogView,
        shard: &Shard,
        state: &StoreState,
        cart: &Cart,
        seed: u64,
        state_writes: &mut Vec<StateWrite>,
    ) -> Result<ShipmentPlan, Refusal> {
        // A store routes with the first logistics plugin it configured.
        let configured = Self::configured(view, state, PluginKind::Logistics);
        let mut fallback_reason = None;
        if let Some((id, config, installed)) = configured.first().copied() {
            let (plugin, reason) = match Self::resolve(installed, config, seed) {
                Err(reason) => {
                    let version = configured_version(installed, config);
                    (PluginRef { id: id.clone(), version }, reason)
                }
                Ok(resolved) => {
                    let plugin = resolved.implementation.plugin_ref().clone();
                    if !self.breakers.allow(&cart.store_id, id, cart.placed_at_ms) {
                        (plugin, BREAKER_OPEN_REASON.to_string())
                    } else {
                        let request = route_request(state, cart);
                        let implementation = &resolved.implementation;
                        let (result, writes) =
                            self.call_router(state, cart, config, implementation, &request, seed);
                        let checked = result.and_then(|plan| {
                            shard
                                .check_shipment_plan(&cart.store_id, cart, &plan)
                                .map(|_| plan)
                                .map_err(|e| e.to_string())
                        });
                        self.breakers.record(
                            &cart.store_id,
                            id,
                            cart.placed_at_ms,
                            checked.is_ok(),
                        );
                        if let Some((shadow, run)) = resolved.shadow
                            && let Ok(active) = &checked
                        {
                            let (shadowed, _) =
                                self.call_router(state, cart, config, &shadow, &request, seed);
                            let shadowed = shadowed.map(|plan| describe_plan(&plan));
                            run.stats.record(&cart.store_id, describe_plan(active), shadowed);
                        }
                        match checked {
                            Ok(plan) => {
                                state_writes.extend(writes);
                                return Ok(plan);
                            }
                            Err(reason) => (plugin, reason),
                        }
                    }
                }
            };
            if installed.failure_policy == FailurePolicy::FailClosed {
                return Err(Refusal::Unavailable {
                    plugin,
                    kind: PluginKind::Logistics,
                    reason: clip(reason),
                });
            }
            fallback_reason = Some(clip(format!("{}: {reason}", plugin.id)));
        }
        let mut plan = router::route(state, cart).unwrap_or(ShipmentPlan {
            shipments: Vec::new(),
            routed_by: Router::BuiltIn,
            fallback_reason: None,
        });
        plan.fallback_reason = fallback_reason;
        Ok(plan)
    }

    fn call_router(
        &mut self,
        state: &StoreState,
        cart: &Cart,
        config: &PluginConfig,
        implementation: &Arc<Implementation>,
        request: &RouteRequest<'_>,
        seed: u64,
    ) -> (Result<ShipmentPlan, String>, Vec<StateWrite>) {
        let call = self.call(state, cart, implementation.plugin_ref(), config, seed);
        match self.holder(&cart.store_id, implementation) {
            Some(Holder::Logistics(router)) => {
                let outcome = router.plan_shipment(call, request);
                (outcome.result.map_err(|e| e.to_string()), outcome.state_writes)
            }
            Some(Holder::NativeLogistics(native)) => (native.plan(config, request), Vec::new()),
            _ => (Err("not a logistics plugin".into()), Vec::new()),
        }
    }
}

/// A risk plugin's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RiskAnswer {
    /// It approves; the check is kept with the order.
    Approve(RiskCheck),
    /// It rejects, with its code and its explanation for the customer.
    Reject {
        /// The rule's code.
        code: String,
        /// The explanation.
        reason: String,
    },
}

/// The version a store asked for, for naming a plugin that could not run.
fn configured_version(installed: &InstalledPlugin, config: &PluginConfig) -> String {
    config
        .settings
        .version_pin
        .clone()
        .or_else(|| installed.active.clone())
        .unwrap_or_else(|| "none".into())
}

/// Takes `excess_minor` back off the adjustments from `from` on, last first,
/// so the total meets the store's cap exactly; emptied ones are dropped.
fn trim_to_cap(adjustments: &mut Vec<Adjustment>, from: usize, mut excess_minor: i64) {
    while excess_minor > 0 && adjustments.len() > from {
        let last = adjustments.last_mut().expect("more adjustments than accepted");
        if last.amount_off_minor > excess_minor {
            last.amount_off_minor -= excess_minor;
            last.reason = clip(format!("{} (reduced to the store's discount cap)", last.reason));
            excess_minor = 0;
        } else {
            excess_minor -= last.amount_off_minor;
            adjustments.pop();
        }
    }
}

/// The code of a risk check a fail-open risk plugin could not make.
const RISK_SKIPPED_CODE: &str = "check-skipped";

/// What an order records for a plugin skipped by its open breaker.
const BREAKER_OPEN_REASON: &str = "circuit breaker open: the plugin failed repeatedly for this store and is skipped until a probe succeeds";

/// Longest failure reason kept on an order (the kernel's text limit).
const FAILURE_REASON_LEN_MAX: usize = bazaar_kernel::model::TEXT_LEN_MAX;

fn clip(mut text: String) -> String {
    if text.len() > FAILURE_REASON_LEN_MAX {
        let mut end = FAILURE_REASON_LEN_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The route request for `cart`: every warehouse, and what each holds of
/// each line's SKU.
pub fn route_request<'a>(state: &'a StoreState, cart: &'a Cart) -> RouteRequest<'a> {
    let warehouses: Vec<&Warehouse> = state.warehouses().values().collect();
    let stock = cart
        .lines
        .iter()
        .map(|line| {
            let levels = state.stock().get(&line.sku);
            warehouses
                .iter()
                .map(|warehouse| {
                    levels
                        .and_then(|levels| levels.get(&warehouse.id))
                        .map_or(0, |level| level.available)
                })
                .collect()
        })
        .collect();
    RouteRequest { cart, warehouses, stock }
}

#[cfg(test)]
mod tests {
    use bazaar_kernel::model::{Coordinates, StoreId, Warehouse, WarehouseId};
    use bazaar_kernel::{Command, Shard};

    use super::route_request;
    use crate::seed;

    #[test]
    fn the_route_request_holds_each_lines_stock_in_every_warehouse_in_warehouse_order() {
        let store = StoreId::new("s").unwrap();
        let mut shard = Shard::new();
        // Ten hot units over the four seeded warehouses: HGH 3, SHA 3, PEK 2, CAN 2.
        for command in seed::flagship_store(&store, 10) {
            shard.apply(&command).unwrap();
        }
        let empty = Warehouse {
            id: WarehouseId::new("ZZZ").unwrap(),
            name: "empty".into(),
            location: Coordinates { latitude_micro: 0, longitude_micro: 0 },
        };
        shard.apply(&Command::UpsertWarehouse { store: store.clone(), warehouse: empty }).unwrap();
        let hot = bazaar_kernel::model::Sku::new(seed::HOT_SKU).unwrap();
        let request =
            seed::order_request(1, vec![(hot, 1), (seed::ordinary_sku(0), 2)], None, None);
        let cart = shard.prepare_cart(&store, &request, 0).unwrap();
        let state = shard.store(&store).unwrap();

        let route = route_request(state, &cart);

        let ids: Vec<&str> = route.warehouses.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(ids, ["CAN", "HGH", "PEK", "SHA", "ZZZ"]);
        let ordinary = seed::ORDINARY_STOCK_PER_WAREHOUSE;
        assert_eq!(
            route.stock,
            vec![vec![2, 3, 2, 3, 0], vec![ordinary, ordinary, ordinary, ordinary, 0]]
        );
    }
}
