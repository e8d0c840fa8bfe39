//! Commands (what may change the state) and outcomes (what a change did).
//!
//! A command carries everything needed to apply it deterministically: the
//! time it happened, the order's prices and routes as plugins produced
//! them, and which plugin version produced each. The journal stores
//! commands, so replaying it never calls a plugin and never reads a clock.

use serde::{Deserialize, Serialize};

use crate::device::{DeviceSpec, TaskId, TaskStatus, TaskStep, WarehouseLayout};
use crate::model::{
    Adjustment, Capability, DeviceId, OrderNumber, OrderRequest, OrderStatus, PluginFailure,
    PluginId, Product, RiskCheck, ShipmentPlan, Sku, StockLevel, StoreId, Totals, Warehouse,
    WarehouseId, ZoneId,
};
use crate::money::Currency;

/// Longest key of a plugin's state entry.
pub const STATE_KEY_LEN_MAX: usize = 256;
/// Largest value of a plugin's state entry: 64 KiB fits a counter table or
/// a small model; bigger blobs do not belong in the order path.
pub const STATE_VALUE_LEN_MAX: usize = 64 * 1024;
/// Most keys one plugin may hold in one store.
pub const STATE_KEYS_MAX: usize = 10_000;
/// Most state writes one plugin call may make.
pub const STATE_WRITES_PER_ORDER_MAX: usize = 64;
/// Largest plugin configuration document of a store.
pub const PLUGIN_CONFIG_LEN_MAX: usize = 64 * 1024;

/// A change to the state of one store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Open a store that sells in `currency`.
    CreateStore {
        /// The new store.
        store: StoreId,
        /// Display name.
        name: String,
        /// The currency of every price in the store.
        currency: Currency,
    },
    /// Add a product or replace its title, price or purchase limit.
    UpsertProduct {
        /// The store.
        store: StoreId,
        /// The product.
        product: Product,
        /// The currency of the product's price; must be the store's.
        currency: Currency,
    },
    /// Add a warehouse or replace its name and location.
    UpsertWarehouse {
        /// The store.
        store: StoreId,
        /// The warehouse.
        warehouse: Warehouse,
    },
    /// Units arrive in a warehouse: on hand and available both grow.
    ReceiveStock {
        /// The store.
        store: StoreId,
        /// The SKU.
        sku: Sku,
        /// The warehouse.
        warehouse: WarehouseId,
        /// Units received, at least 1.
        quantity: u64,
    },
    /// Available units are written off (damaged, lost): on hand and
    /// available both shrink. Reserved and sold units cannot be written off.
    WriteOffStock {
        /// The store.
        store: StoreId,
        /// The SKU.
        sku: Sku,
        /// The warehouse.
        warehouse: WarehouseId,
        /// Units written off, at least 1.
        quantity: u64,
    },
    /// Set (or with `None`, remove) the store's configuration of a plugin;
    /// a configured plugin runs on the store's orders.
    ConfigurePlugin {
        /// The store.
        store: StoreId,
        /// The plugin.
        plugin: PluginId,
        /// The configuration as JSON, or `None` to switch it off.
        config_json: Option<String>,
        /// How the plugin runs for the store (ignored when switching off).
        settings: PluginSettings,
    },
    /// Set how the store's pricing plugins combine.
    SetPricingRules {
        /// The store.
        store: StoreId,
        /// The rules.
        rules: PricingRules,
    },
    /// An event consumer (an analytics plugin) processed the store's events
    /// up to `through_sequence`: its state writes and its new position are
    /// applied together, so after a crash it resumes exactly where the
    /// journal says it stopped and no event counts twice.
    RecordConsumed {
        /// The store.
        store: StoreId,
        /// The consuming plugin.
        plugin: PluginId,
        /// The sequence of the last event processed.
        through_sequence: u64,
        /// The plugin's state writes for those events.
        state_writes: Vec<StateWrite>,
    },
    /// Create an order and reserve its stock.
    PlaceOrder(Box<PlaceOrder>),
    /// A reserved order is paid: its reserved units become sold.
    PayOrder {
        /// The store.
        store: StoreId,
        /// The order.
        order: OrderNumber,
        /// When, milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// A reserved or paid order whose picking has not finished is
    /// cancelled: its units become available again, its purchase-limit
    /// units are returned and its robot tasks are dropped. Once every unit
    /// is picked (status picked or packed) it can only ship.
    CancelOrder {
        /// The store.
        store: StoreId,
        /// The order.
        order: OrderNumber,
        /// When, milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// A paid order ships: its sold units leave the warehouses. Any robot
    /// tasks it still has are dropped (fulfilled by hand).
    FulfilOrder {
        /// The store.
        store: StoreId,
        /// The order.
        order: OrderNumber,
        /// When, milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// Register a device, or change its registration. Its driver must be a
    /// plugin the store has configured (enabled).
    RegisterDevice {
        /// The store.
        store: StoreId,
        /// The device.
        device: DeviceSpec,
        /// When, milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// Remove a device; the task it held is released.
    RemoveDevice {
        /// The store.
        store: StoreId,
        /// The device.
        device: DeviceId,
        /// When.
        at_ms: u64,
    },
    /// Set a warehouse's map: its nodes, pick locations and pack station.
    SetWarehouseLayout {
        /// The store.
        store: StoreId,
        /// The warehouse.
        warehouse: WarehouseId,
        /// The map.
        layout: WarehouseLayout,
    },
    /// A device's link came up or went down (its connection message or
    /// last will); going down releases its task.
    DeviceConnection {
        /// The store.
        store: StoreId,
        /// The device.
        device: DeviceId,
        /// Whether it is online now.
        online: bool,
        /// When.
        at_ms: u64,
    },
    /// Quarantine a device whose driver failed on it (releasing its task),
    /// or with no reason, put it back in service.
    QuarantineDevice {
        /// The store.
        store: StoreId,
        /// The device.
        device: DeviceId,
        /// Why, or `None` to release it.
        reason: Option<String>,
        /// When.
        at_ms: u64,
    },
    /// Give a pending task to an available device in its warehouse.
    AssignTask {
        /// The store.
        store: StoreId,
        /// The task.
        task: TaskId,
        /// The device.
        device: DeviceId,
        /// When.
        at_ms: u64,
    },
    /// A device reports a step of the task it holds.
    ProgressTask {
        /// The store.
        store: StoreId,
        /// The task.
        task: TaskId,
        /// The attempt the step belongs to: a step of an earlier attempt
        /// is refused.
        attempt: u32,
        /// The step.
        step: TaskStep,
        /// When.
        at_ms: u64,
    },
    /// End an attempt without finishing it (an action failed, the device
    /// stopped answering): the task is offered again.
    ReleaseTask {
        /// The store.
        store: StoreId,
        /// The task.
        task: TaskId,
        /// The attempt ended.
        attempt: u32,
        /// Why.
        reason: String,
        /// When.
        at_ms: u64,
    },
    /// Hold (emergency stop) or free a zone of a warehouse: no task starts
    /// on a device in a held zone.
    StopZone {
        /// The store.
        store: StoreId,
        /// The warehouse.
        warehouse: WarehouseId,
        /// The zone.
        zone: ZoneId,
        /// Whether the zone is held.
        stopped: bool,
        /// When.
        at_ms: u64,
    },
}

impl Command {
    /// The store the command changes: every command touches exactly one.
    pub fn store(&self) -> &StoreId {
        match self {
            Command::CreateStore { store, .. }
            | Command::UpsertProduct { store, .. }
            | Command::UpsertWarehouse { store, .. }
            | Command::ReceiveStock { store, .. }
            | Command::WriteOffStock { store, .. }
            | Command::ConfigurePlugin { store, .. }
            | Command::SetPricingRules { store, .. }
            | Command::RecordConsumed { store, .. }
            | Command::PayOrder { store, .. }
            | Command::CancelOrder { store, .. }
            | Command::FulfilOrder { store, .. }
            | Command::RegisterDevice { store, .. }
            | Command::RemoveDevice { store, .. }
            | Command::SetWarehouseLayout { store, .. }
            | Command::DeviceConnection { store, .. }
            | Command::QuarantineDevice { store, .. }
            | Command::AssignTask { store, .. }
            | Command::ProgressTask { store, .. }
            | Command::ReleaseTask { store, .. }
            | Command::StopZone { store, .. } => store,
            Command::PlaceOrder(place) => &place.store,
        }
    }
}

/// Most plugins one store may configure: each runs on every order of the
/// store, so this bounds the plugin work one order can cause.
pub const PLUGINS_PER_STORE_MAX: usize = 16;

/// How a configured plugin runs for a store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginSettings {
    /// The version the store runs, or `None` to follow the version the
    /// operator activates.
    pub version_pin: Option<String>,
    /// The plugin's place among the store's pricing plugins: lower runs
    /// first, equal priorities run in plugin-id order.
    pub priority: u32,
    /// When this pricing plugin grants a discount, the store's later
    /// pricing plugins do not run.
    pub exclusive: bool,
    /// The capabilities the merchant consented to when enabling it.
    pub consented: Vec<Capability>,
}

/// How a store's pricing plugins combine, beyond their order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricingRules {
    /// The largest total discount as a percentage of the subtotal.
    pub discount_cap_percent: Option<u8>,
    /// The largest total discount in minor units of the store currency.
    pub discount_cap_minor: Option<i64>,
}

impl PricingRules {
    /// The most the store's plugins may take off a cart of `subtotal_minor`
    /// together, or `None` when uncapped. A percentage rounds down, so
    /// the cap never exceeds the stated share.
    pub fn discount_cap(&self, subtotal_minor: i64) -> Option<i64> {
        let by_percent = self.discount_cap_percent.map(|percent| {
            let capped = i128::from(subtotal_minor.max(0)) * i128::from(percent) / 100;
            i64::try_from(capped).unwrap_or(i64::MAX)
        });
        match (by_percent, self.discount_cap_minor) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Everything needed to create one order, plugin outputs included.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    /// The store.
    pub store: StoreId,
    /// What the customer asked for.
    pub request: OrderRequest,
    /// When, milliseconds since the Unix epoch.
    pub placed_at_ms: u64,
    /// Price adjustments from pricing plugins, in application order.
    pub adjustments: Vec<Adjustment>,
    /// Pricing plugins that failed and were skipped.
    pub pricing_failures: Vec<PluginFailure>,
    /// Risk plugins that approved the order.
    pub risk_checks: Vec<RiskCheck>,
    /// Where the stock is reserved and how it ships.
    pub shipment_plan: ShipmentPlan,
    /// Plugin state changes made while pricing and routing this order.
    pub state_writes: Vec<StateWrite>,
}

/// `Command::PlaceOrder(place)` by reference: it encodes to the same bytes
/// as the command, so a shard writer journals an order and then moves it
/// into its state instead of copying it there.
pub struct PlaceOrderCommand<'a>(pub &'a PlaceOrder);

/// The number serde gives `Command::PlaceOrder` among the variants (its
/// position); the kernel's property test
/// `an_order_moved_in_leaves_what_its_command_applied_leaves` holds the two
/// encodings equal.
const PLACE_ORDER_VARIANT_INDEX: u32 = 8;

impl Serialize for PlaceOrderCommand<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_variant(
            "Command",
            PLACE_ORDER_VARIANT_INDEX,
            "PlaceOrder",
            self.0,
        )
    }
}

/// One change to a plugin's state in a store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateWrite {
    /// Whose state.
    pub plugin: PluginId,
    /// The key.
    pub key: String,
    /// The new value, or `None` to delete.
    pub value: Option<Vec<u8>>,
}

/// What an applied command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The store exists now.
    StoreCreated,
    /// The product was stored.
    ProductUpserted,
    /// The warehouse was stored.
    WarehouseUpserted,
    /// The stock level after the change.
    StockChanged(StockLevel),
    /// The plugin configuration was stored or removed.
    PluginConfigured,
    /// The store's pricing rules were stored.
    PricingRulesSet,
    /// A consumer's progress was recorded.
    ConsumedRecorded,
    /// An order exists: new, or the earlier order of the same idempotency key.
    OrderPlaced {
        /// Its number.
        order: OrderNumber,
        /// Its totals.
        totals: Totals,
        /// True when an identical earlier request already created it.
        duplicate: bool,
    },
    /// The order's new status.
    OrderStatusChanged {
        /// The order.
        order: OrderNumber,
        /// Its status now.
        status: OrderStatus,
    },
    /// A device was registered, or its registration replaced.
    DeviceRegistered {
        /// True when the store had no device of that id before.
        created: bool,
    },
    /// A device's link or quarantine changed.
    DeviceUpdated {
        /// The task it held and released, if any.
        released: Option<TaskId>,
        /// The task it held and that this change finished, if any: its
        /// units were already at the pack station.
        finished: Option<TaskId>,
        /// An order that moved because the device's task was finished
        /// (its units were already at the pack station), and its status.
        order_moved: Option<(OrderNumber, OrderStatus)>,
    },
    /// A warehouse's map was stored.
    LayoutSet,
    /// A zone was held or freed.
    ZoneSet,
    /// A task was given to a device.
    TaskAssigned {
        /// The task.
        task: TaskId,
        /// The attempt it is on now.
        attempt: u32,
    },
    /// A task's step was recorded.
    TaskProgressed {
        /// The task.
        task: TaskId,
        /// Its order.
        order: OrderNumber,
        /// The order's new status, when the step moved it.
        order_status: Option<OrderStatus>,
    },
    /// An attempt ended unfinished.
    TaskReleased {
        /// The task.
        task: TaskId,
        /// Where it is now: pending, or failed after too many attempts.
        status: TaskStatus,
    },
}
