//! The plugins a node runs on its orders, and the failure policy of each
//! extension point.
//!
//! A store runs a plugin when it has configured it. Pricing fails open: a
//! failing or nonsensical pricing plugin contributes nothing and the order
//! is flagged with the reason. Logistics fails over: when the store's
//! router fails or plans something the stock cannot honour, the built-in
//! router plans the order and the reason is recorded. Risk fails closed:
//! every configured risk plugin must approve, and one that fails stops the
//! order, since letting an order through unchecked is what risk exists to
//! prevent. A plugin that keeps failing for a store is skipped by its
//! circuit breaker (see `breaker`), and the same policy applies.
//!
//! The first-party plugins exist in two forms: as Wasm components (what
//! the node runs) and as native Rust (the same source compiled into the
//! host), so the cost of the sandbox can be measured against no sandbox.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError};

use anyhow::Context as _;
use bazaar_artifacts::Artifact;
use bazaar_kernel::model::{
    Adjustment, Cart, PluginFailure, PluginId, PluginRef, RiskCheck, Router, Shipment,
    ShipmentLine, ShipmentPlan, Sku, StoreId, WarehouseId,
};
use bazaar_kernel::{PluginConfig, Shard, StateWrite, StoreState, validate_adjustments};
use bazaar_runtime::{
    CallCounters, CustomerHistory, Decision, LogisticsPlugin, PluginCall, Pricer, PricingPlugin,
    RiskAssessor, RiskPlugin, RiskRequest, RouteRequest, Runtime, RuntimeLimits, ShipmentRouter,
    StockAvailability, UnitsHeld,
};

use crate::breaker::{BreakerState, Breakers, PublishedBreakers};
use crate::router::{self, sdk_coordinates};

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

/// A pricing plugin compiled into the host (for the native benchmark).
trait NativePricing: Send {
    /// Prices `cart` with the store's configuration `config`.
    fn price(&mut self, config: &PluginConfig, cart: &Cart) -> Result<Vec<Adjustment>, String>;
}

/// A logistics plugin compiled into the host (for the native benchmark).
trait NativeLogistics: Send {
    /// Routes `request` with the store's configuration `config`.
    fn plan(
        &mut self,
        config: &PluginConfig,
        request: &RouteRequest,
    ) -> Result<ShipmentPlan, String>;
}

/// How a pricing plugin is run.
#[derive(Clone)]
enum PricingImpl {
    /// In the Wasm sandbox.
    Wasm(PricingPlugin),
    /// Natively; `make` creates one shard's instance.
    Native(PluginRef, fn(PluginRef) -> Box<dyn NativePricing>),
}

/// Why the risk plugins stopped an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RiskRefusal {
    /// A plugin rejected it.
    Rejected {
        /// The plugin.
        plugin: PluginRef,
        /// Its code for the rule.
        code: String,
        /// Its explanation, for the customer.
        reason: String,
    },
    /// A plugin failed, and risk fails closed.
    Unavailable {
        /// The plugin.
        plugin: PluginRef,
        /// What went wrong.
        reason: String,
    },
}

/// How a logistics plugin is run.
#[derive(Clone)]
enum LogisticsImpl {
    /// In the Wasm sandbox.
    Wasm(LogisticsPlugin),
    /// Natively.
    Native(PluginRef, fn(PluginRef) -> Box<dyn NativeLogistics>),
}

/// The plugins of a node. Cheap to clone.
#[derive(Clone, Default)]
pub struct PluginSet {
    /// Pricing plugins, in the order they apply.
    pricing: Vec<PricingImpl>,
    /// Logistics plugins; a store uses the first it configured.
    logistics: Vec<LogisticsImpl>,
    /// Risk plugins; every one a store configured must approve its orders.
    risk: Vec<RiskPlugin>,
    /// The circuit breakers that are not plain closed, across all shards.
    breakers: PublishedBreakers,
    /// The Wasm runtime, kept alive as long as plugins use it.
    runtime: Option<Arc<Runtime>>,
}

/// The plugin reference (id and version) of a built artifact.
pub fn plugin_ref(artifact: &Artifact) -> anyhow::Result<PluginRef> {
    Ok(PluginRef { id: PluginId::new(artifact.id)?, version: artifact.version.to_string() })
}

impl PluginSet {
    /// No plugins: every order at catalogue price, routed by the built-in router.
    pub fn none() -> Self {
        Self::default()
    }

    /// The first-party plugins as Wasm components in a runtime with the
    /// default limits.
    pub fn first_party_wasm() -> anyhow::Result<Self> {
        let runtime = Arc::new(Runtime::new(RuntimeLimits::default())?);
        let mut set = Self { runtime: Some(runtime.clone()), ..Self::default() };
        set.add_wasm_pricing(&bazaar_artifacts::PRICING_PROMOTIONS)?;
        let router = &bazaar_artifacts::LOGISTICS_ROUTER;
        let loaded = runtime
            .load_logistics(plugin_ref(router)?, router.wasm)
            .with_context(|| format!("loading {}", router.id))?;
        set.logistics.push(LogisticsImpl::Wasm(loaded));
        let guard = &bazaar_artifacts::RISK_GUARD;
        let loaded = runtime
            .load_risk(plugin_ref(guard)?, guard.wasm)
            .with_context(|| format!("loading {}", guard.id))?;
        set.risk.push(loaded);
        Ok(set)
    }

    /// Adds a risk component (after those already present).
    pub fn add_wasm_risk(&mut self, artifact: &Artifact) -> anyhow::Result<()> {
        let runtime = self.runtime()?;
        let loaded = runtime
            .load_risk(plugin_ref(artifact)?, artifact.wasm)
            .with_context(|| format!("loading {}", artifact.id))?;
        self.risk.push(loaded);
        Ok(())
    }

    /// The set's Wasm runtime, started on first use.
    fn runtime(&mut self) -> anyhow::Result<Arc<Runtime>> {
        if let Some(runtime) = &self.runtime {
            return Ok(runtime.clone());
        }
        let runtime = Arc::new(Runtime::new(RuntimeLimits::default())?);
        self.runtime = Some(runtime.clone());
        Ok(runtime)
    }

    /// Adds a pricing component (after those already present).
    pub fn add_wasm_pricing(&mut self, artifact: &Artifact) -> anyhow::Result<()> {
        let runtime = self.runtime()?;
        let loaded = runtime
            .load_pricing(plugin_ref(artifact)?, artifact.wasm)
            .with_context(|| format!("loading {}", artifact.id))?;
        self.pricing.push(PricingImpl::Wasm(loaded));
        Ok(())
    }

    /// The first-party plugins compiled natively into the host.
    pub fn first_party_native() -> Self {
        let pricing = plugin_ref(&bazaar_artifacts::PRICING_PROMOTIONS).expect("valid plugin id");
        let logistics = plugin_ref(&bazaar_artifacts::LOGISTICS_ROUTER).expect("valid plugin id");
        Self {
            pricing: vec![PricingImpl::Native(pricing, |plugin| {
                Box::new(NativePricer::<pricing_promotions::Promotions>::new(plugin))
            })],
            logistics: vec![LogisticsImpl::Native(logistics, |plugin| {
                Box::new(NativeRouter::<logistics_router::Router>::new(plugin))
            })],
            risk: Vec::new(),
            breakers: PublishedBreakers::default(),
            runtime: None,
        }
    }

    /// "id version (wasm|native), ..." for reports.
    pub fn describe(&self) -> String {
        let pricing = self.pricing.iter().map(|p| match p {
            PricingImpl::Wasm(w) => {
                format!("{} {} (wasm)", w.plugin_ref().id, w.plugin_ref().version)
            }
            PricingImpl::Native(r, _) => format!("{} {} (native)", r.id, r.version),
        });
        let logistics = self.logistics.iter().map(|p| match p {
            LogisticsImpl::Wasm(w) => {
                format!("{} {} (wasm)", w.plugin_ref().id, w.plugin_ref().version)
            }
            LogisticsImpl::Native(r, _) => format!("{} {} (native)", r.id, r.version),
        });
        let risk = self
            .risk
            .iter()
            .map(|r| format!("{} {} (wasm)", r.plugin_ref().id, r.plugin_ref().version));
        let all: Vec<String> = pricing.chain(logistics).chain(risk).collect();
        if all.is_empty() { "none".into() } else { all.join(", ") }
    }

    /// The call counters of every Wasm plugin, in set order.
    pub fn call_counters(&self) -> Vec<(PluginRef, CallCounters)> {
        let pricing = self.pricing.iter().filter_map(|p| match p {
            PricingImpl::Wasm(w) => Some((w.plugin_ref().clone(), w.counters())),
            PricingImpl::Native(..) => None,
        });
        let logistics = self.logistics.iter().filter_map(|p| match p {
            LogisticsImpl::Wasm(w) => Some((w.plugin_ref().clone(), w.counters())),
            LogisticsImpl::Native(..) => None,
        });
        let risk = self.risk.iter().map(|r| (r.plugin_ref().clone(), r.counters()));
        pricing.chain(logistics).chain(risk).collect()
    }

    /// Every circuit breaker that is open, half open, or has recent
    /// failures, by store and plugin.
    pub fn breakers(&self) -> BTreeMap<(StoreId, PluginId), BreakerState> {
        self.breakers.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// One shard writer's instances of every plugin.
    pub fn for_shard(&self) -> ShardPlugins {
        ShardPlugins {
            pricing: self
                .pricing
                .iter()
                .map(|p| match p {
                    PricingImpl::Wasm(w) => ShardPricing::Wasm(w.pricer()),
                    PricingImpl::Native(r, make) => {
                        ShardPricing::Native(r.clone(), make(r.clone()))
                    }
                })
                .collect(),
            logistics: self
                .logistics
                .iter()
                .map(|p| match p {
                    LogisticsImpl::Wasm(w) => ShardLogistics::Wasm(w.router()),
                    LogisticsImpl::Native(r, make) => {
                        ShardLogistics::Native(r.clone(), make(r.clone()))
                    }
                })
                .collect(),
            risk: self.risk.iter().map(RiskPlugin::assessor).collect(),
            breakers: Breakers::new(self.breakers.clone()),
            configs: HashMap::new(),
        }
    }
}

/// One shard's instance of a pricing plugin.
enum ShardPricing {
    /// A Wasm instance holder.
    Wasm(Pricer),
    /// A native instance.
    Native(PluginRef, Box<dyn NativePricing>),
}

/// One shard's instance of a logistics plugin.
enum ShardLogistics {
    /// A Wasm instance holder.
    Wasm(ShipmentRouter),
    /// A native instance.
    Native(PluginRef, Box<dyn NativeLogistics>),
}

impl ShardPricing {
    fn plugin(&self) -> &PluginRef {
        match self {
            ShardPricing::Wasm(pricer) => pricer.plugin().plugin_ref(),
            ShardPricing::Native(plugin, _) => plugin,
        }
    }
}

impl ShardLogistics {
    fn plugin(&self) -> &PluginRef {
        match self {
            ShardLogistics::Wasm(router) => router.plugin().plugin_ref(),
            ShardLogistics::Native(plugin, _) => plugin,
        }
    }
}

/// A shard writer's plugin instances.
pub struct ShardPlugins {
    /// Pricing plugins in order.
    pricing: Vec<ShardPricing>,
    /// Logistics plugins in order.
    logistics: Vec<ShardLogistics>,
    /// Risk plugins in order.
    risk: Vec<RiskAssessor>,
    /// A circuit breaker per plugin per store of this shard.
    breakers: Breakers,
    /// Each store's plugin configurations as shared text, refreshed when
    /// the store's configuration revision changes, so a call does not copy
    /// the document.
    configs: HashMap<StoreId, HashMap<PluginId, (u64, Arc<str>)>>,
}

impl ShardPlugins {
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

    /// Runs the store's pricing plugins and its router on `cart`, applying
    /// the failure policies. The cart was prepared by the kernel, so its
    /// store exists and its stock suffices.
    pub fn price_and_route(&mut self, shard: &Shard, cart: &Cart, seed: u64) -> PluginOutputs {
        let state = shard.store(&cart.store_id).expect("the cart was prepared from this store");
        let mut adjustments: Vec<Adjustment> = Vec::new();
        let mut discount_minor = 0;
        let mut pricing_failures = Vec::new();
        let mut state_writes = Vec::new();
        for index in 0..self.pricing.len() {
            let plugin = self.pricing[index].plugin().clone();
            let Some(config) = state.plugin_configs().get(&plugin.id) else { continue };
            if !self.breakers.allow(&cart.store_id, &plugin.id, cart.placed_at_ms) {
                let reason = BREAKER_OPEN_REASON.to_string();
                pricing_failures.push(PluginFailure { plugin, reason });
                continue;
            }
            let call = self.call(state, cart, &plugin, config, seed);
            let (result, writes) = match &mut self.pricing[index] {
                ShardPricing::Wasm(pricer) => {
                    let outcome = pricer.price_cart(call, cart);
                    (outcome.result.map_err(|e| e.to_string()), outcome.state_writes)
                }
                ShardPricing::Native(_, native) => (native.price(config, cart), Vec::new()),
            };
            // Validated together with the adjustments already accepted, and
            // taken back out if the whole no longer holds.
            let accepted = adjustments.len();
            let checked = result.and_then(|proposed| {
                adjustments.extend(proposed);
                validate_adjustments(cart, &adjustments).map_err(|e| e.to_string())
            });
            self.breakers.record(&cart.store_id, &plugin.id, cart.placed_at_ms, checked.is_ok());
            match checked {
                Ok(discount) => {
                    discount_minor = discount;
                    state_writes.extend(writes);
                }
                Err(reason) => {
                    adjustments.truncate(accepted);
                    pricing_failures.push(PluginFailure { plugin, reason: clip(reason) })
                }
            }
        }
        let shipment_plan = self.route(shard, state, cart, seed, &mut state_writes);
        PluginOutputs { adjustments, discount_minor, pricing_failures, shipment_plan, state_writes }
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
    ) -> Result<(Vec<RiskCheck>, Vec<StateWrite>), RiskRefusal> {
        let state = shard.store(&cart.store_id).expect("the cart was prepared from this store");
        let mut checks = Vec::new();
        let mut state_writes = Vec::new();
        for index in 0..self.risk.len() {
            let plugin = self.risk[index].plugin().plugin_ref().clone();
            let Some(config) = state.plugin_configs().get(&plugin.id) else { continue };
            if !self.breakers.allow(&cart.store_id, &plugin.id, cart.placed_at_ms) {
                return Err(RiskRefusal::Unavailable {
                    plugin,
                    reason: BREAKER_OPEN_REASON.into(),
                });
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
            let call = self.call(state, cart, &plugin, config, seed);
            let outcome = self.risk[index].assess_order(call, &request);
            let succeeded = outcome.result.is_ok();
            self.breakers.record(&cart.store_id, &plugin.id, cart.placed_at_ms, succeeded);
            match outcome.result {
                Ok(verdict) if verdict.decision == Decision::Approve => {
                    checks.push(RiskCheck { plugin, code: verdict.code, reason: verdict.reason });
                    state_writes.extend(outcome.state_writes);
                }
                Ok(verdict) => {
                    return Err(RiskRefusal::Rejected {
                        plugin,
                        code: verdict.code,
                        reason: verdict.reason,
                    });
                }
                Err(error) => {
                    return Err(RiskRefusal::Unavailable {
                        plugin,
                        reason: clip(error.to_string()),
                    });
                }
            }
        }
        Ok((checks, state_writes))
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
        shard: &Shard,
        state: &StoreState,
        cart: &Cart,
        seed: u64,
        state_writes: &mut Vec<StateWrite>,
    ) -> ShipmentPlan {
        let configured =
            self.logistics.iter().position(|l| state.plugin_configs().contains_key(&l.plugin().id));
        let mut fallback_reason = None;
        if let Some(index) = configured {
            let plugin = self.logistics[index].plugin().clone();
            if self.breakers.allow(&cart.store_id, &plugin.id, cart.placed_at_ms) {
                let config = &state.plugin_configs()[&plugin.id];
                let request = route_request(state, cart);
                let call = self.call(state, cart, &plugin, config, seed);
                let (result, writes) = match &mut self.logistics[index] {
                    ShardLogistics::Wasm(router) => {
                        let outcome = router.plan_shipment(call, &request);
                        (outcome.result.map_err(|e| e.to_string()), outcome.state_writes)
                    }
                    ShardLogistics::Native(_, native) => {
                        (native.plan(config, &request), Vec::new())
                    }
                };
                let checked = result.and_then(|plan| {
                    shard
                        .check_shipment_plan(&cart.store_id, cart, &plan)
                        .map(|_| plan)
                        .map_err(|e| e.to_string())
                });
                self.breakers.record(
                    &cart.store_id,
                    &plugin.id,
                    cart.placed_at_ms,
                    checked.is_ok(),
                );
                match checked {
                    Ok(plan) => {
                        state_writes.extend(writes);
                        return plan;
                    }
                    Err(reason) => fallback_reason = Some(clip(format!("{}: {reason}", plugin.id))),
                }
            } else {
                fallback_reason = Some(format!("{}: {BREAKER_OPEN_REASON}", plugin.id));
            }
        }
        let mut plan = router::route(state, cart).unwrap_or(ShipmentPlan {
            shipments: Vec::new(),
            routed_by: Router::BuiltIn,
            fallback_reason: None,
        });
        plan.fallback_reason = fallback_reason;
        plan
    }
}

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

/// The route request for `cart`: every warehouse, and the available stock
/// of the cart's SKUs wherever there is some.
pub fn route_request(state: &StoreState, cart: &Cart) -> RouteRequest {
    let mut stock = Vec::new();
    for line in &cart.lines {
        if let Some(levels) = state.stock().get(&line.sku) {
            for (warehouse, level) in levels {
                if level.available > 0 {
                    stock.push(StockAvailability {
                        sku: line.sku.clone(),
                        warehouse: warehouse.clone(),
                        available: level.available,
                    });
                }
            }
        }
    }
    RouteRequest {
        cart: cart.clone(),
        warehouses: state.warehouses().values().cloned().collect(),
        stock,
    }
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
        request: &RouteRequest,
    ) -> Result<ShipmentPlan, String> {
        let parsed = parsed_config(&mut self.configs, &request.cart.store_id, config)?;
        let sdk_request = bazaar_sdk::RouteRequest {
            cart: sdk_cart(&request.cart),
            warehouses: request
                .warehouses
                .iter()
                .map(|w| bazaar_sdk::Warehouse {
                    id: w.id.to_string(),
                    location: sdk_coordinates(w.location),
                })
                .collect(),
            stock: request
                .stock
                .iter()
                .map(|s| bazaar_sdk::StockLevel {
                    sku: s.sku.to_string(),
                    warehouse_id: s.warehouse.to_string(),
                    available: u32::try_from(s.available).unwrap_or(u32::MAX),
                })
                .collect(),
        };
        let plan = P::plan(&sdk_request, &parsed).map_err(|e| e.to_string())?;
        let shipments = plan
            .shipments
            .into_iter()
            .map(|s| {
                check_currency(&s.fee, &request.cart)?;
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
