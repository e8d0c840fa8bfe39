//! The device registry and robot tasks, through `Shard::apply`: which
//! registrations and maps are refused, which tasks a paid order becomes,
//! how task steps move the order from paid to fulfilled, how a device
//! leaving service hands its task on, and that a random mix of device and
//! task commands keeps every invariant and replays to the same state.
//!
//! Every command but the bulk fillers of the limit tests goes through
//! [`Floor::apply`], which checks the shard's invariants after it and, for
//! a refused command, that nothing changed.

use std::collections::BTreeMap;

use bazaar_kernel::device::{
    COORDINATE_MM_MAX, DEVICES_PER_STORE_MAX, Device, DeviceKind, DeviceSpec, LAYOUT_NODES_MAX,
    MapNode, STOPPED_ZONES_MAX, TASK_ATTEMPTS_MAX, Task, TaskId, TaskStatus, TaskStep,
    WarehouseLayout,
};
use bazaar_kernel::event::{EventKind, derive_events};
use bazaar_kernel::model::{
    Address, Coordinates, Customer, CustomerId, CustomerSegment, DeviceId, LineRequest, MapNodeId,
    OrderNumber, OrderRequest, OrderStatus, PluginId, Product, Router, Shipment, ShipmentLine,
    ShipmentPlan, Sku, StockLevel, StoreId, TEXT_LEN_MAX, Warehouse, WarehouseId, ZoneId,
};
use bazaar_kernel::money::Currency;
use bazaar_kernel::{Command, KernelError, Outcome, PlaceOrder, PluginSettings, Shard, StoreState};
use proptest::prelude::*;

/// The warehouse with a robot map.
const MAPPED: &str = "HZ";
/// The warehouse without one: everything there is picked by hand.
const MANUAL: &str = "SH";
/// A SKU with a pick location on the map.
const PHONE: &str = "PHONE";
/// Another SKU with a pick location on the map.
const CASE: &str = "CASE";
/// A SKU without a pick location: picked by hand even in the mapped warehouse.
const CABLE: &str = "CABLE";
/// Every SKU of the store.
const SKUS: [&str; 3] = [PHONE, CASE, CABLE];
/// Units of every SKU each warehouse starts with: more than any test sells.
const STOCK_UNITS: u64 = 1_000;
/// The registered devices: (id, warehouse, zone, kind). All start online.
const DEVICES: [(&str, &str, &str, DeviceKind); 5] = [
    ("agv-1", MAPPED, "z1", DeviceKind::Agv),
    ("agv-2", MAPPED, "z1", DeviceKind::Agv),
    ("agv-3", MAPPED, "z2", DeviceKind::Agv),
    ("agv-sh", MANUAL, "z1", DeviceKind::Agv),
    ("belt-1", MAPPED, "z1", DeviceKind::Conveyor),
];
/// The driver every fixture device speaks through.
const DRIVER: &str = "driver-vda5050";

fn store_id() -> StoreId {
    StoreId::new("tmall").unwrap()
}

fn sku(text: &str) -> Sku {
    Sku::new(text).unwrap()
}

fn warehouse_id(text: &str) -> WarehouseId {
    WarehouseId::new(text).unwrap()
}

fn device_id(text: &str) -> DeviceId {
    DeviceId::new(text).unwrap()
}

fn zone_id(text: &str) -> ZoneId {
    ZoneId::new(text).unwrap()
}

fn node_id(text: &str) -> MapNodeId {
    MapNodeId::new(text).unwrap()
}

fn cny() -> Currency {
    Currency::parse("CNY").unwrap()
}

/// A registration whose serial number is its id, so fixture devices never
/// collide on the wire.
fn spec(id: &str, warehouse: &str, zone: &str, kind: DeviceKind) -> DeviceSpec {
    DeviceSpec {
        id: device_id(id),
        kind,
        warehouse: warehouse_id(warehouse),
        zone: zone_id(zone),
        driver: PluginId::new(DRIVER).unwrap(),
        manufacturer: "Acme Robotics".into(),
        serial_number: format!("SN-{id}"),
        model: "AGV-1".into(),
    }
}

fn node(id: &str, x_mm: i64, y_mm: i64) -> MapNode {
    MapNode { id: node_id(id), x_mm, y_mm }
}

/// The mapped warehouse's floor: a pack station and one pick location for
/// each of PHONE and CASE; CABLE has none.
fn layout() -> WarehouseLayout {
    WarehouseLayout {
        map_id: "hz-floor-1".into(),
        nodes: vec![node("pack", 0, 0), node("A1", 5_000, 0), node("A2", 10_000, 2_500)],
        pick_locations: BTreeMap::from([(sku(PHONE), node_id("A1")), (sku(CASE), node_id("A2"))]),
        pack_station: node_id("pack"),
    }
}

/// A shipment plan from `(warehouse, sku, units)` lines, one shipment per
/// warehouse in the order the warehouses first appear.
fn plan(lines: &[(&str, &str, u32)]) -> ShipmentPlan {
    let mut shipments: Vec<Shipment> = Vec::new();
    for (warehouse, sku_text, quantity) in lines {
        let line = ShipmentLine { sku: sku(sku_text), quantity: *quantity };
        let warehouse = warehouse_id(warehouse);
        match shipments.iter_mut().find(|shipment| shipment.warehouse == warehouse) {
            Some(shipment) => shipment.lines.push(line),
            None => shipments.push(Shipment {
                warehouse,
                lines: vec![line],
                carrier: "sf-express".into(),
                fee_minor: 800,
                eta_hours: 24,
            }),
        }
    }
    ShipmentPlan { shipments, routed_by: Router::BuiltIn, fallback_reason: None }
}

/// An order request for the units of `lines`, one request line per SKU.
fn request(lines: &[(&str, &str, u32)]) -> OrderRequest {
    let mut units: BTreeMap<&str, u32> = BTreeMap::new();
    for (_, sku_text, quantity) in lines {
        *units.entry(sku_text).or_default() += quantity;
    }
    OrderRequest {
        idempotency_key: None,
        customer: Customer {
            id: CustomerId::new("alice").unwrap(),
            segment: CustomerSegment::Regular,
        },
        lines: units
            .into_iter()
            .map(|(sku_text, quantity)| LineRequest { sku: sku(sku_text), quantity })
            .collect(),
        coupon_codes: vec![],
        shipping_address: Address {
            country: "CN".into(),
            city: "Hangzhou".into(),
            location: Coordinates { latitude_micro: 30_274_000, longitude_micro: 120_155_000 },
            ..Address::default()
        },
    }
}

/// Where an order status stands on the way to fulfilment; cancelled is
/// off the way and terminal.
fn rank(status: OrderStatus) -> u8 {
    match status {
        OrderStatus::Reserved => 0,
        OrderStatus::Paid => 1,
        OrderStatus::Picked => 2,
        OrderStatus::Packed => 3,
        OrderStatus::Fulfilled => 4,
        OrderStatus::Cancelled => 5,
    }
}

/// A store with two warehouses (one mapped), stock, and the fixture
/// devices online, plus the events its commands caused.
struct Floor {
    /// The state under test.
    shard: Shard,
    /// Every event the accepted commands caused, in order.
    events: Vec<EventKind>,
}

impl Floor {
    fn new() -> Self {
        let mut floor = Floor { shard: Shard::new(), events: Vec::new() };
        let store = store_id();
        floor.ok(Command::CreateStore {
            store: store.clone(),
            name: "Tmall".into(),
            currency: cny(),
        });
        for (index, sku_text) in SKUS.iter().enumerate() {
            let product = Product {
                sku: sku(sku_text),
                title: sku_text.to_string(),
                unit_price_minor: 1_000 * (index as i64 + 1),
                purchase_limit_per_customer: None,
            };
            floor.ok(Command::UpsertProduct { store: store.clone(), product, currency: cny() });
        }
        for id in [MAPPED, MANUAL] {
            let warehouse = Warehouse {
                id: warehouse_id(id),
                name: id.to_string(),
                location: Coordinates { latitude_micro: 30_000_000, longitude_micro: 120_000_000 },
            };
            floor.ok(Command::UpsertWarehouse { store: store.clone(), warehouse });
            for sku_text in SKUS {
                floor.ok(Command::ReceiveStock {
                    store: store.clone(),
                    sku: sku(sku_text),
                    warehouse: warehouse_id(id),
                    quantity: STOCK_UNITS,
                });
            }
        }
        floor.ok(floor.set_layout(MAPPED, layout()));
        floor.ok(floor.enable_plugin(DRIVER));
        for (id, warehouse, zone, kind) in DEVICES {
            floor.ok(floor.register_device(spec(id, warehouse, zone, kind)));
            floor.ok(floor.connection(id, true));
        }
        floor
    }

    /// Applies `command`; checks the invariants after it, and that a
    /// refused command changed nothing.
    fn apply(&mut self, command: &Command) -> Result<Outcome, KernelError> {
        let before = self.shard.digest();
        let result = self.shard.apply(command);
        match &result {
            Ok(outcome) => self.events.extend(derive_events(&self.shard, command, outcome)),
            Err(error) => assert_eq!(
                self.shard.digest(),
                before,
                "refused {command:?} ({error}) changed the state"
            ),
        }
        if let Err(violation) = self.shard.check_invariants() {
            panic!("after {command:?}: {violation}");
        }
        result
    }

    /// Applies a command that must be accepted.
    fn ok(&mut self, command: Command) -> Outcome {
        self.apply(&command).unwrap_or_else(|error| panic!("{command:?} was refused: {error}"))
    }

    /// Applies a command that must be refused; returns why.
    fn refused(&mut self, command: Command) -> KernelError {
        match self.apply(&command) {
            Ok(outcome) => panic!("{command:?} was accepted: {outcome:?}"),
            Err(error) => error,
        }
    }

    fn store(&self) -> &StoreState {
        self.shard.store(&store_id()).unwrap()
    }

    /// The time the next command carries: the store's revision, which
    /// grows with every accepted command.
    fn now_ms(&self) -> u64 {
        self.store().revision() * 1_000
    }

    fn order_status(&self, order: OrderNumber) -> OrderStatus {
        self.store().order(order).unwrap().status
    }

    fn task(&self, task: TaskId) -> &Task {
        self.store().floor().task(task).unwrap_or_else(|| panic!("task {task} is gone"))
    }

    fn device(&self, id: &str) -> &Device {
        self.store().floor().device(&device_id(id)).unwrap()
    }

    /// The open tasks of `order`, oldest first.
    fn tasks_of(&self, order: OrderNumber) -> Vec<TaskId> {
        let tasks = self.store().floor().tasks().values();
        tasks.filter(|task| task.order == order).map(|task| task.id).collect()
    }

    /// The one open task of `order`.
    fn only_task(&self, order: OrderNumber) -> TaskId {
        let tasks = self.tasks_of(order);
        assert_eq!(tasks.len(), 1, "order {order} has tasks {tasks:?}");
        tasks[0]
    }

    fn pending(&self) -> Vec<TaskId> {
        self.store().floor().pending().map(|task| task.id).collect()
    }

    fn level(&self, sku_text: &str, warehouse: &str) -> StockLevel {
        self.store().stock_level(&sku(sku_text), &warehouse_id(warehouse))
    }

    /// How many `OrderFulfilled` events `order` caused.
    fn fulfilled_events(&self, order: OrderNumber) -> usize {
        let fulfilled = |event: &&EventKind| matches!(event, EventKind::OrderFulfilled { order: shipped, .. } if *shipped == order);
        self.events.iter().filter(fulfilled).count()
    }

    fn place_command(&self, lines: &[(&str, &str, u32)]) -> Command {
        Command::PlaceOrder(Box::new(PlaceOrder {
            store: store_id(),
            request: request(lines),
            placed_at_ms: self.now_ms(),
            adjustments: vec![],
            pricing_failures: vec![],
            risk_checks: vec![],
            shipment_plan: plan(lines),
            state_writes: vec![],
        }))
    }

    /// Places an order shipping `(warehouse, sku, units)` lines.
    fn place(&mut self, lines: &[(&str, &str, u32)]) -> OrderNumber {
        match self.ok(self.place_command(lines)) {
            Outcome::OrderPlaced { order, duplicate: false, .. } => order,
            other => panic!("placing gave {other:?}"),
        }
    }

    /// Places and pays an order shipping `(warehouse, sku, units)` lines.
    fn paid(&mut self, lines: &[(&str, &str, u32)]) -> OrderNumber {
        let order = self.place(lines);
        self.ok(self.pay(order));
        order
    }

    fn pay(&self, order: OrderNumber) -> Command {
        Command::PayOrder { store: store_id(), order, at_ms: self.now_ms() }
    }

    fn cancel(&self, order: OrderNumber) -> Command {
        Command::CancelOrder { store: store_id(), order, at_ms: self.now_ms() }
    }

    fn fulfil(&self, order: OrderNumber) -> Command {
        Command::FulfilOrder { store: store_id(), order, at_ms: self.now_ms() }
    }

    fn enable_plugin(&self, plugin: &str) -> Command {
        Command::ConfigurePlugin {
            store: store_id(),
            plugin: PluginId::new(plugin).unwrap(),
            config_json: Some("{}".into()),
            settings: PluginSettings::default(),
        }
    }

    fn register_device(&self, device: DeviceSpec) -> Command {
        Command::RegisterDevice { store: store_id(), device, at_ms: self.now_ms() }
    }

    fn remove_device(&self, device: &str) -> Command {
        Command::RemoveDevice { store: store_id(), device: device_id(device), at_ms: self.now_ms() }
    }

    fn set_layout(&self, warehouse: &str, layout: WarehouseLayout) -> Command {
        Command::SetWarehouseLayout {
            store: store_id(),
            warehouse: warehouse_id(warehouse),
            layout,
        }
    }

    fn connection(&self, device: &str, online: bool) -> Command {
        Command::DeviceConnection {
            store: store_id(),
            device: device_id(device),
            online,
            at_ms: self.now_ms(),
        }
    }

    fn quarantine(&self, device: &str, reason: Option<&str>) -> Command {
        Command::QuarantineDevice {
            store: store_id(),
            device: device_id(device),
            reason: reason.map(str::to_owned),
            at_ms: self.now_ms(),
        }
    }

    fn assign_task(&self, task: TaskId, device: &str) -> Command {
        Command::AssignTask {
            store: store_id(),
            task,
            device: device_id(device),
            at_ms: self.now_ms(),
        }
    }

    fn progress(&self, task: TaskId, attempt: u32, step: TaskStep) -> Command {
        Command::ProgressTask { store: store_id(), task, attempt, step, at_ms: self.now_ms() }
    }

    fn release_task(&self, task: TaskId, attempt: u32) -> Command {
        Command::ReleaseTask {
            store: store_id(),
            task,
            attempt,
            reason: "pick action failed".into(),
            at_ms: self.now_ms(),
        }
    }

    fn stop_zone(&self, warehouse: &str, zone: &str, stopped: bool) -> Command {
        Command::StopZone {
            store: store_id(),
            warehouse: warehouse_id(warehouse),
            zone: zone_id(zone),
            stopped,
            at_ms: self.now_ms(),
        }
    }

    /// Assigns `task` to `device`; returns the attempt it is on.
    fn assign(&mut self, task: TaskId, device: &str) -> u32 {
        match self.ok(self.assign_task(task, device)) {
            Outcome::TaskAssigned { task: assigned, attempt } if assigned == task => attempt,
            other => panic!("assigning gave {other:?}"),
        }
    }

    /// Records a step of `task`; returns the order's new status, if it moved.
    fn advance(&mut self, task: TaskId, attempt: u32, step: TaskStep) -> Option<OrderStatus> {
        match self.ok(self.progress(task, attempt, step)) {
            Outcome::TaskProgressed { task: stepped, order_status, .. } if stepped == task => {
                order_status
            }
            other => panic!("the step gave {other:?}"),
        }
    }

    /// Ends an attempt unfinished; returns where the task is now.
    fn release(&mut self, task: TaskId, attempt: u32) -> TaskStatus {
        match self.ok(self.release_task(task, attempt)) {
            Outcome::TaskReleased { task: released, status } if released == task => status,
            other => panic!("releasing gave {other:?}"),
        }
    }

    /// Records picked, dropped and done for `attempt` of `task`; returns
    /// the order's status after each step.
    fn run_steps(&mut self, task: TaskId, attempt: u32) -> [Option<OrderStatus>; 3] {
        [TaskStep::Picked, TaskStep::Dropped, TaskStep::Done]
            .map(|step| self.advance(task, attempt, step))
    }

    /// Runs `task` from assignment to done on `device`; returns the
    /// order's status after each of the three steps.
    fn run(&mut self, task: TaskId, device: &str) -> [Option<OrderStatus>; 3] {
        let attempt = self.assign(task, device);
        self.run_steps(task, attempt)
    }
}

/// Asserts `error` is an `InvalidTaskStep` whose text mentions `phrase`.
#[track_caller]
fn assert_task_refusal(error: &KernelError, phrase: &str) {
    assert!(
        matches!(error, KernelError::InvalidTaskStep(detail) if detail.contains(phrase)),
        "expected a task refusal mentioning {phrase:?}, got: {error}"
    );
}

/// Asserts `error` is an `InvalidLayout` whose text mentions `phrase`.
#[track_caller]
fn assert_layout_refusal(error: &KernelError, phrase: &str) {
    assert!(
        matches!(error, KernelError::InvalidLayout(detail) if detail.contains(phrase)),
        "expected a layout refusal mentioning {phrase:?}, got: {error}"
    );
}

/// A floor with one paid order of one PHONE, whose one task is pending.
fn with_one_pending_task() -> (Floor, OrderNumber, TaskId) {
    let mut floor = Floor::new();
    let order = floor.paid(&[(MAPPED, PHONE, 1)]);
    let task = floor.only_task(order);
    (floor, order, task)
}

// Registration.

#[test]
fn registering_a_device_in_an_unknown_warehouse_is_refused() {
    let mut floor = Floor::new();
    let error = floor.refused(floor.register_device(spec("agv-9", "BJ", "z1", DeviceKind::Agv)));
    assert_eq!(error, KernelError::UnknownWarehouse("BJ".into()));
    assert!(floor.store().floor().device(&device_id("agv-9")).is_none());
}

#[test]
fn registering_a_device_whose_driver_the_store_has_not_enabled_is_refused() {
    let mut floor = Floor::new();
    let mut device = spec("agv-9", MAPPED, "z1", DeviceKind::Agv);
    device.driver = PluginId::new("driver-unknown").unwrap();
    let error = floor.refused(floor.register_device(device.clone()));
    assert!(
        matches!(&error, KernelError::InvalidDevice(detail) if detail.contains("driver-unknown")),
        "{error}"
    );
    floor.ok(floor.enable_plugin("driver-unknown"));
    floor.ok(floor.register_device(device));
}

#[test]
fn a_device_with_an_empty_or_over_long_text_is_refused() {
    let mut floor = Floor::new();
    let too_long = "x".repeat(TEXT_LEN_MAX + 1);
    type Field = fn(&mut DeviceSpec) -> &mut String;
    let fields: [(&str, Field); 3] = [
        ("manufacturer", |device| &mut device.manufacturer),
        ("serial number", |device| &mut device.serial_number),
        ("model", |device| &mut device.model),
    ];
    for (name, field) in fields {
        let mut empty = spec("agv-9", MAPPED, "z1", DeviceKind::Agv);
        field(&mut empty).clear();
        let error = floor.refused(floor.register_device(empty));
        assert_eq!(error, KernelError::InvalidDevice(format!("the {name} is empty")));

        let mut long = spec("agv-9", MAPPED, "z1", DeviceKind::Agv);
        *field(&mut long) = too_long.clone();
        let error = floor.refused(floor.register_device(long));
        assert!(
            matches!(error, KernelError::TextTooLong { what, limit: TEXT_LEN_MAX } if what == name),
            "{name}: {error}"
        );

        let mut longest = spec("agv-9", MAPPED, "z1", DeviceKind::Agv);
        *field(&mut longest) = "x".repeat(TEXT_LEN_MAX);
        floor.ok(floor.register_device(longest));
        floor.ok(floor.remove_device("agv-9"));
    }
}

#[test]
fn a_second_device_with_the_same_driver_manufacturer_and_serial_number_is_refused() {
    let mut floor = Floor::new();
    let mut twin = spec("agv-9", MAPPED, "z1", DeviceKind::Agv);
    twin.serial_number = floor.device("agv-1").spec.serial_number.clone();
    let error = floor.refused(floor.register_device(twin.clone()));
    assert!(
        matches!(&error, KernelError::InvalidDevice(detail) if detail.contains("agv-1")),
        "{error}"
    );
    assert!(floor.store().floor().device(&device_id("agv-9")).is_none());

    // The same serial number under another driver is another device.
    floor.ok(floor.enable_plugin("driver-other"));
    twin.driver = PluginId::new("driver-other").unwrap();
    floor.ok(floor.register_device(twin));

    // A device registering again under its own serial number changes its
    // registration and keeps its link state.
    let mut again = floor.device("agv-1").spec.clone();
    again.model = "AGV-2".into();
    floor.ok(floor.register_device(again));
    assert_eq!(floor.device("agv-1").spec.model, "AGV-2");
    assert!(floor.device("agv-1").online);
}

#[test]
fn a_store_registers_at_most_the_device_limit_but_may_still_change_a_registration() {
    let mut floor = Floor::new();
    let registered = floor.store().floor().devices().len();
    // Filled directly: checking every invariant after each of thousands of
    // registrations adds nothing to what the last one shows.
    for index in registered..DEVICES_PER_STORE_MAX {
        let filler = spec(&format!("filler-{index}"), MAPPED, "z9", DeviceKind::Locker);
        floor.shard.apply(&floor.register_device(filler)).unwrap();
    }
    assert_eq!(floor.store().floor().devices().len(), DEVICES_PER_STORE_MAX);
    let error = floor.refused(floor.register_device(spec("agv-9", MAPPED, "z1", DeviceKind::Agv)));
    assert_eq!(error, KernelError::TooMany { what: "devices", limit: DEVICES_PER_STORE_MAX });

    let mut moved = floor.device("agv-1").spec.clone();
    moved.zone = zone_id("z2");
    floor.ok(floor.register_device(moved));
    assert_eq!(floor.device("agv-1").spec.zone, zone_id("z2"));
}

#[test]
fn a_device_holding_a_task_cannot_move_to_another_warehouse_until_the_task_is_done() {
    let (mut floor, _, task) = with_one_pending_task();
    let attempt = floor.assign(task, "agv-1");
    let mut moved = floor.device("agv-1").spec.clone();
    moved.warehouse = warehouse_id(MANUAL);
    let error = floor.refused(floor.register_device(moved.clone()));
    assert!(
        matches!(&error, KernelError::InvalidDevice(detail) if detail.contains("holds a task")),
        "{error}"
    );

    for step in [TaskStep::Picked, TaskStep::Dropped, TaskStep::Done] {
        floor.advance(task, attempt, step);
    }
    floor.ok(floor.register_device(moved));
    assert_eq!(floor.device("agv-1").spec.warehouse, warehouse_id(MANUAL));
}

// Layout validation.

#[test]
fn a_layout_whose_pack_station_is_not_a_node_is_refused() {
    let mut floor = Floor::new();
    let mut broken = layout();
    broken.pack_station = node_id("dock");
    let error = floor.refused(floor.set_layout(MAPPED, broken));
    assert_layout_refusal(&error, "pack station dock is not a node");
    assert_eq!(floor.store().floor().layouts()[&warehouse_id(MAPPED)], layout());
}

#[test]
fn a_layout_whose_pick_location_is_not_a_node_is_refused() {
    let mut floor = Floor::new();
    let mut broken = layout();
    broken.pick_locations.insert(sku(CABLE), node_id("B7"));
    let error = floor.refused(floor.set_layout(MAPPED, broken));
    assert_layout_refusal(&error, "pick location of CABLE (B7) is not a node");
}

#[test]
fn a_layout_listing_a_node_twice_is_refused() {
    let mut floor = Floor::new();
    let mut broken = layout();
    broken.nodes.push(node("A1", 7_000, 0));
    let error = floor.refused(floor.set_layout(MAPPED, broken));
    assert_layout_refusal(&error, "node A1 is listed twice");
}

#[test]
fn a_layout_with_a_coordinate_beyond_the_limit_is_refused() {
    let mut floor = Floor::new();
    let beyond = COORDINATE_MM_MAX + 1;
    for (x_mm, y_mm) in [(beyond, 0), (0, beyond), (-beyond, 0), (0, -beyond), (i64::MIN, 0)] {
        let mut broken = layout();
        broken.nodes.push(node("far", x_mm, y_mm));
        let error = floor.refused(floor.set_layout(MAPPED, broken));
        assert_layout_refusal(&error, "node far lies more than");
    }
    let mut edge = layout();
    edge.nodes.push(node("edge", COORDINATE_MM_MAX, -COORDINATE_MM_MAX));
    floor.ok(floor.set_layout(MAPPED, edge));
}

#[test]
fn a_layout_with_more_nodes_than_the_limit_is_refused() {
    let mut floor = Floor::new();
    let grid = |count: usize| WarehouseLayout {
        map_id: "grid".into(),
        nodes: (0..count).map(|index| node(&format!("n{index}"), index as i64, 0)).collect(),
        pick_locations: BTreeMap::new(),
        pack_station: node_id("n0"),
    };
    let error = floor.refused(floor.set_layout(MAPPED, grid(LAYOUT_NODES_MAX + 1)));
    assert_layout_refusal(&error, &format!("at most {LAYOUT_NODES_MAX}"));
    floor.ok(floor.set_layout(MAPPED, grid(LAYOUT_NODES_MAX)));
}

#[test]
fn a_layout_with_an_empty_map_id_or_for_an_unknown_warehouse_is_refused() {
    let mut floor = Floor::new();
    let mut unnamed = layout();
    unnamed.map_id.clear();
    let error = floor.refused(floor.set_layout(MAPPED, unnamed));
    assert_layout_refusal(&error, "map id is empty");
    let error = floor.refused(floor.set_layout("BJ", layout()));
    assert_eq!(error, KernelError::UnknownWarehouse("BJ".into()));
}

// Tasks made at payment.

#[test]
fn paying_an_order_from_a_mapped_warehouse_makes_one_task_per_line_with_a_pick_location() {
    let mut floor = Floor::new();
    let order = floor.place(&[(MAPPED, PHONE, 2), (MAPPED, CABLE, 3), (MAPPED, CASE, 1)]);
    assert!(floor.tasks_of(order).is_empty(), "an unpaid order has no tasks");
    floor.ok(floor.pay(order));

    let tasks = floor.tasks_of(order);
    assert_eq!(tasks.len(), 2, "CABLE has no pick location");
    assert_eq!(floor.pending(), tasks);
    let made: Vec<(&str, u32, &str)> = tasks
        .iter()
        .map(|id| {
            let task = floor.task(*id);
            (task.sku.as_str(), task.quantity, task.pick.id.as_str())
        })
        .collect();
    assert_eq!(made, [(PHONE, 2, "A1"), (CASE, 1, "A2")]);
    for id in &tasks {
        let task = floor.task(*id);
        assert_eq!(task.status, TaskStatus::Pending);
        assert_eq!((task.device.as_ref(), task.attempt), (None, 0));
        assert_eq!(task.warehouse, warehouse_id(MAPPED));
        assert_eq!(task.pack_station, node("pack", 0, 0));
        assert_eq!(task.map_id, "hz-floor-1");
    }
    let progress = floor.store().floor().order_tasks(order).unwrap();
    assert_eq!((progress.total, progress.picked, progress.dropped, progress.done), (2, 0, 0, 0));
    assert_eq!(floor.order_status(order), OrderStatus::Paid);
}

#[test]
fn a_split_order_gets_tasks_only_for_the_lines_leaving_the_mapped_warehouse() {
    let mut floor = Floor::new();
    let order = floor.paid(&[(MANUAL, PHONE, 1), (MAPPED, CASE, 2), (MANUAL, CASE, 1)]);
    let task = floor.only_task(order);
    assert_eq!((floor.task(task).sku.as_str(), floor.task(task).quantity), (CASE, 2));
}

#[test]
fn paying_an_order_from_a_warehouse_without_a_layout_makes_no_tasks_and_it_ships_by_hand() {
    let mut floor = Floor::new();
    let order = floor.paid(&[(MANUAL, PHONE, 2), (MANUAL, CASE, 1)]);
    assert!(floor.tasks_of(order).is_empty());
    assert!(floor.pending().is_empty());
    assert_eq!(floor.store().floor().order_tasks(order), None);
    assert_eq!(floor.level(PHONE, MANUAL).sold, 2);

    let outcome = floor.ok(floor.fulfil(order));
    assert_eq!(outcome, Outcome::OrderStatusChanged { order, status: OrderStatus::Fulfilled });
    let level = floor.level(PHONE, MANUAL);
    assert_eq!((level.on_hand, level.sold, level.shipped), (STOCK_UNITS - 2, 0, 2));
    assert_eq!(floor.fulfilled_events(order), 1);
}

// The happy path.

#[test]
fn a_task_assigned_picked_dropped_and_done_moves_its_order_from_paid_to_fulfilled() {
    let (mut floor, order, task) = with_one_pending_task();
    let sold = floor.level(PHONE, MAPPED);
    assert_eq!((sold.sold, sold.shipped), (1, 0));

    let attempt = floor.assign(task, "agv-1");
    assert_eq!(attempt, 1);
    assert_eq!(floor.task(task).status, TaskStatus::Assigned);
    assert_eq!(floor.task(task).device, Some(device_id("agv-1")));
    assert_eq!(floor.device("agv-1").task, Some(task));
    assert!(!floor.device("agv-1").is_available());
    assert!(floor.pending().is_empty());
    assert_eq!(floor.order_status(order), OrderStatus::Paid);

    assert_eq!(floor.advance(task, attempt, TaskStep::Picked), Some(OrderStatus::Picked));
    assert_eq!(floor.order_status(order), OrderStatus::Picked);
    assert_eq!(floor.level(PHONE, MAPPED), sold, "picking moves no stock");
    assert_eq!(floor.advance(task, attempt, TaskStep::Dropped), Some(OrderStatus::Packed));
    assert_eq!(floor.order_status(order), OrderStatus::Packed);
    assert_eq!(floor.level(PHONE, MAPPED), sold, "packing moves no stock");
    assert_eq!(floor.fulfilled_events(order), 0);

    assert_eq!(floor.advance(task, attempt, TaskStep::Done), Some(OrderStatus::Fulfilled));
    assert_eq!(floor.order_status(order), OrderStatus::Fulfilled);
    let shipped = floor.level(PHONE, MAPPED);
    assert_eq!((shipped.on_hand, shipped.sold, shipped.shipped), (STOCK_UNITS - 1, 0, 1));
    assert!(floor.store().floor().task(task).is_none(), "a done task is gone");
    assert_eq!(floor.store().floor().order_tasks(order), None);
    assert!(floor.device("agv-1").is_available());
    assert_eq!(floor.fulfilled_events(order), 1);

    let error = floor.refused(floor.progress(task, attempt, TaskStep::Done));
    assert_eq!(error, KernelError::UnknownTask(task));
    assert_eq!(floor.fulfilled_events(order), 1);
}

#[test]
fn an_order_with_two_tasks_moves_only_when_both_reach_each_step() {
    let mut floor = Floor::new();
    let order = floor.paid(&[(MAPPED, PHONE, 1), (MAPPED, CASE, 4)]);
    let [first, second] = floor.tasks_of(order)[..] else { panic!("two tasks expected") };
    let first_attempt = floor.assign(first, "agv-1");
    let second_attempt = floor.assign(second, "agv-3");

    assert_eq!(floor.advance(first, first_attempt, TaskStep::Picked), None);
    assert_eq!(floor.order_status(order), OrderStatus::Paid);
    assert_eq!(floor.advance(second, second_attempt, TaskStep::Picked), Some(OrderStatus::Picked));
    assert_eq!(floor.advance(second, second_attempt, TaskStep::Dropped), None);
    assert_eq!(floor.order_status(order), OrderStatus::Picked);
    assert_eq!(floor.advance(first, first_attempt, TaskStep::Dropped), Some(OrderStatus::Packed));
    assert_eq!(floor.advance(first, first_attempt, TaskStep::Done), None);
    assert_eq!(floor.order_status(order), OrderStatus::Packed);
    assert!(floor.device("agv-1").is_available(), "a device is free as soon as its task is done");
    assert_eq!(floor.level(CASE, MAPPED).sold, 4, "nothing ships before the last task is done");
    assert_eq!(floor.fulfilled_events(order), 0);

    assert_eq!(floor.advance(second, second_attempt, TaskStep::Done), Some(OrderStatus::Fulfilled));
    assert_eq!((floor.level(PHONE, MAPPED).shipped, floor.level(CASE, MAPPED).shipped), (1, 4));
    assert!(floor.device("agv-3").is_available());
    assert!(floor.store().floor().tasks().is_empty());
    assert_eq!(floor.fulfilled_events(order), 1);
}

// Assignment refusals.

#[test]
fn a_task_cannot_go_to_an_offline_device() {
    let (mut floor, _, task) = with_one_pending_task();
    floor.ok(floor.connection("agv-1", false));
    let error = floor.refused(floor.assign_task(task, "agv-1"));
    assert_task_refusal(&error, "online false");
    floor.ok(floor.connection("agv-1", true));
    assert_eq!(floor.assign(task, "agv-1"), 1);
}

#[test]
fn a_task_cannot_go_to_a_quarantined_device() {
    let (mut floor, _, task) = with_one_pending_task();
    floor.ok(floor.quarantine("agv-1", Some("driver trapped")));
    let error = floor.refused(floor.assign_task(task, "agv-1"));
    assert_task_refusal(&error, "quarantined true");
    floor.ok(floor.quarantine("agv-1", None));
    assert_eq!(floor.assign(task, "agv-1"), 1);
}

#[test]
fn a_task_cannot_go_to_a_device_that_holds_another() {
    let mut floor = Floor::new();
    let order = floor.paid(&[(MAPPED, PHONE, 1), (MAPPED, CASE, 1)]);
    let [first, second] = floor.tasks_of(order)[..] else { panic!("two tasks expected") };
    floor.assign(first, "agv-1");
    let error = floor.refused(floor.assign_task(second, "agv-1"));
    assert_task_refusal(&error, &format!("holding Some({first})"));
    assert_eq!(floor.device("agv-1").task, Some(first));
    assert_eq!(floor.pending(), [second]);
}

#[test]
fn a_task_cannot_go_to_a_device_in_another_warehouse() {
    let (mut floor, _, task) = with_one_pending_task();
    let error = floor.refused(floor.assign_task(task, "agv-sh"));
    assert_task_refusal(&error, &format!("works in warehouse {MANUAL}"));
}

#[test]
fn a_task_cannot_start_on_a_device_in_a_stopped_zone() {
    let mut floor = Floor::new();
    let order = floor.paid(&[(MAPPED, PHONE, 1), (MAPPED, CASE, 1)]);
    let [first, second] = floor.tasks_of(order)[..] else { panic!("two tasks expected") };
    floor.ok(floor.stop_zone(MAPPED, "z1", true));
    assert!(floor.store().floor().is_zone_stopped(&warehouse_id(MAPPED), &zone_id("z1")));
    let error = floor.refused(floor.assign_task(first, "agv-1"));
    assert_task_refusal(&error, "zone z1 of warehouse HZ is stopped");
    // Another zone of the same warehouse works on.
    assert_eq!(floor.assign(first, "agv-3"), 1);
    floor.ok(floor.stop_zone(MAPPED, "z1", false));
    assert_eq!(floor.assign(second, "agv-1"), 1);
}

#[test]
fn a_task_that_is_not_pending_cannot_be_assigned() {
    let (mut floor, _, task) = with_one_pending_task();
    floor.assign(task, "agv-1");
    let error = floor.refused(floor.assign_task(task, "agv-2"));
    assert_task_refusal(&error, "not pending");
    assert_eq!(floor.task(task).device, Some(device_id("agv-1")));
}

#[test]
fn a_task_cannot_go_to_a_device_that_is_not_an_agv() {
    let (mut floor, _, task) = with_one_pending_task();
    assert!(floor.device("belt-1").online);
    let error = floor.refused(floor.assign_task(task, "belt-1"));
    assert_task_refusal(&error, "kind Conveyor");
}

#[test]
fn an_unknown_task_or_device_is_refused_by_name() {
    let (mut floor, _, task) = with_one_pending_task();
    let error = floor.refused(floor.assign_task(task + 100, "agv-1"));
    assert_eq!(error, KernelError::UnknownTask(task + 100));
    let error = floor.refused(floor.assign_task(task, "ghost"));
    assert_eq!(error, KernelError::UnknownDevice("ghost".into()));
    for command in [
        floor.connection("ghost", true),
        floor.quarantine("ghost", Some("no such robot")),
        floor.remove_device("ghost"),
    ] {
        assert_eq!(floor.refused(command), KernelError::UnknownDevice("ghost".into()));
    }
}

// Steps.

#[test]
fn a_step_of_an_earlier_attempt_is_refused_after_the_task_is_released_and_reassigned() {
    let (mut floor, order, task) = with_one_pending_task();
    let first = floor.assign(task, "agv-1");
    assert_eq!(floor.release(task, first), TaskStatus::Pending);
    let error = floor.refused(floor.progress(task, first, TaskStep::Picked));
    assert_task_refusal(&error, "Picked needs it Assigned");

    let second = floor.assign(task, "agv-2");
    assert_eq!(second, first + 1);
    for step in [TaskStep::Picked, TaskStep::Dropped, TaskStep::Done] {
        let error = floor.refused(floor.progress(task, first, step));
        assert_task_refusal(&error, &format!("is on attempt {second}, not {first}"));
    }
    let error = floor.refused(floor.release_task(task, first));
    assert_task_refusal(&error, &format!("attempt {first} cannot be released"));

    assert_eq!(
        floor.run_steps(task, second),
        [Some(OrderStatus::Picked), Some(OrderStatus::Packed), Some(OrderStatus::Fulfilled)]
    );
    for attempt in [first, second] {
        let error = floor.refused(floor.progress(task, attempt, TaskStep::Done));
        assert_eq!(error, KernelError::UnknownTask(task), "no task is done twice");
    }
    assert_eq!(floor.fulfilled_events(order), 1);
}

#[test]
fn steps_out_of_order_are_refused() {
    let (mut floor, order, task) = with_one_pending_task();
    let error = floor.refused(floor.progress(task, 0, TaskStep::Picked));
    assert_task_refusal(&error, "Pending; Picked needs it Assigned");
    let attempt = floor.assign(task, "agv-1");
    for (step, needs) in [(TaskStep::Dropped, "Picked"), (TaskStep::Done, "Dropped")] {
        let error = floor.refused(floor.progress(task, attempt, step));
        assert_task_refusal(&error, &format!("is Assigned; {step:?} needs it {needs}"));
    }
    floor.advance(task, attempt, TaskStep::Picked);
    let error = floor.refused(floor.progress(task, attempt, TaskStep::Done));
    assert_task_refusal(&error, "is Picked; Done needs it Dropped");
    assert_eq!(floor.order_status(order), OrderStatus::Picked);
}

#[test]
fn a_repeated_step_is_refused() {
    let (mut floor, order, task) = with_one_pending_task();
    let attempt = floor.assign(task, "agv-1");
    floor.advance(task, attempt, TaskStep::Picked);
    let error = floor.refused(floor.progress(task, attempt, TaskStep::Picked));
    assert_task_refusal(&error, "is Picked; Picked needs it Assigned");
    floor.advance(task, attempt, TaskStep::Dropped);
    let error = floor.refused(floor.progress(task, attempt, TaskStep::Dropped));
    assert_task_refusal(&error, "is Dropped; Dropped needs it Picked");
    let progress = floor.store().floor().order_tasks(order).unwrap();
    assert_eq!((progress.picked, progress.dropped), (1, 1), "a repeat counts nothing");
}

#[test]
fn a_dropped_task_cannot_be_released() {
    let (mut floor, order, task) = with_one_pending_task();
    let attempt = floor.assign(task, "agv-1");
    floor.advance(task, attempt, TaskStep::Picked);
    floor.advance(task, attempt, TaskStep::Dropped);
    let error = floor.refused(floor.release_task(task, attempt));
    assert_task_refusal(&error, "is Dropped on attempt 1");
    assert_eq!(floor.order_status(order), OrderStatus::Packed);
}

// Devices leaving service.

#[test]
fn a_device_going_offline_releases_its_task_for_another_device_to_finish() {
    let (mut floor, order, task) = with_one_pending_task();
    let lost = floor.assign(task, "agv-1");
    assert_eq!(floor.advance(task, lost, TaskStep::Picked), Some(OrderStatus::Picked));

    let outcome = floor.ok(floor.connection("agv-1", false));
    assert_eq!(
        outcome,
        Outcome::DeviceUpdated { released: Some(task), finished: None, order_moved: None }
    );
    let released = floor.task(task);
    assert_eq!((released.status, released.device.as_ref()), (TaskStatus::Pending, None));
    assert_eq!(released.attempt, 1, "the lost attempt counts");
    assert_eq!(released.last_release_reason.as_deref(), Some("device went offline"));
    assert_eq!(floor.pending(), [task]);
    assert_eq!(floor.device("agv-1").task, None);
    assert_eq!(floor.store().floor().order_tasks(order).unwrap().picked, 0);
    assert_eq!(floor.order_status(order), OrderStatus::Picked, "an order never goes back");

    // The lost device's late report changes nothing, even once it is back.
    let error = floor.refused(floor.progress(task, lost, TaskStep::Dropped));
    assert_task_refusal(&error, "is Pending");
    floor.ok(floor.connection("agv-1", true));
    let error = floor.refused(floor.progress(task, lost, TaskStep::Dropped));
    assert_task_refusal(&error, "is Pending");

    let attempt = floor.assign(task, "agv-2");
    assert_eq!(attempt, 2);
    let error = floor.refused(floor.progress(task, lost, TaskStep::Picked));
    assert_task_refusal(&error, "is on attempt 2, not 1");
    assert_eq!(
        floor.run_steps(task, attempt),
        [None, Some(OrderStatus::Packed), Some(OrderStatus::Fulfilled)]
    );
    assert_eq!(floor.level(PHONE, MAPPED).shipped, 1, "the order ships once");
    assert_eq!(floor.fulfilled_events(order), 1);
}

#[test]
fn a_quarantined_device_releases_its_task_and_its_late_steps_are_refused() {
    let (mut floor, order, task) = with_one_pending_task();
    let lost = floor.assign(task, "agv-1");
    let outcome = floor.ok(floor.quarantine("agv-1", Some("driver trapped")));
    assert_eq!(
        outcome,
        Outcome::DeviceUpdated { released: Some(task), finished: None, order_moved: None }
    );
    let released = floor.task(task);
    assert_eq!((released.status, released.attempt), (TaskStatus::Pending, 1));
    assert_eq!(released.last_release_reason.as_deref(), Some("device quarantined: driver trapped"));
    let quarantine = floor.device("agv-1").quarantine.clone().unwrap();
    assert_eq!(quarantine.reason, "driver trapped");
    assert!(floor.device("agv-1").online, "quarantine is not a link change");

    let error = floor.refused(floor.progress(task, lost, TaskStep::Picked));
    assert_task_refusal(&error, "is Pending");
    let runs = floor.run(task, "agv-2");
    assert_eq!(runs[2], Some(OrderStatus::Fulfilled));
    assert_eq!(floor.fulfilled_events(order), 1);
}

#[test]
fn a_release_reason_is_kept_within_the_text_limit() {
    let (mut floor, _, task) = with_one_pending_task();
    floor.assign(task, "agv-1");
    // The longest reason a quarantine takes, in two-byte characters, with
    // the kernel's own words in front of it.
    let reason = "é".repeat(TEXT_LEN_MAX / 2);
    floor.ok(floor.quarantine("agv-1", Some(&reason)));
    let kept = floor.task(task).last_release_reason.clone().unwrap();
    assert!(kept.len() <= TEXT_LEN_MAX, "{} bytes kept", kept.len());
    assert!(kept.starts_with("device quarantined: éé"), "{kept}");
    assert!(format!("device quarantined: {reason}").starts_with(&kept));
}

#[test]
fn a_device_going_offline_with_its_units_at_the_pack_station_finishes_the_task() {
    let (mut floor, order, task) = with_one_pending_task();
    let attempt = floor.assign(task, "agv-1");
    floor.advance(task, attempt, TaskStep::Picked);
    floor.advance(task, attempt, TaskStep::Dropped);

    let outcome = floor.ok(floor.connection("agv-1", false));
    assert_eq!(
        outcome,
        Outcome::DeviceUpdated {
            released: None,
            finished: Some(task),
            order_moved: Some((order, OrderStatus::Fulfilled))
        }
    );
    assert_eq!(floor.order_status(order), OrderStatus::Fulfilled);
    assert!(floor.store().floor().task(task).is_none());
    assert_eq!(floor.device("agv-1").task, None);
    let level = floor.level(PHONE, MAPPED);
    assert_eq!((level.sold, level.shipped), (0, 1));
    assert_eq!(floor.fulfilled_events(order), 1);
    let error = floor.refused(floor.progress(task, attempt, TaskStep::Done));
    assert_eq!(error, KernelError::UnknownTask(task));
}

#[test]
fn removing_a_device_releases_its_task_or_finishes_it_at_the_pack_station() {
    let mut floor = Floor::new();
    let order = floor.paid(&[(MAPPED, PHONE, 1), (MAPPED, CASE, 1)]);
    let [first, second] = floor.tasks_of(order)[..] else { panic!("two tasks expected") };
    floor.assign(first, "agv-1");
    let attempt = floor.assign(second, "agv-2");
    floor.advance(second, attempt, TaskStep::Picked);
    floor.advance(second, attempt, TaskStep::Dropped);

    let outcome = floor.ok(floor.remove_device("agv-1"));
    assert_eq!(
        outcome,
        Outcome::DeviceUpdated { released: Some(first), finished: None, order_moved: None }
    );
    assert!(floor.store().floor().device(&device_id("agv-1")).is_none());
    assert_eq!(floor.task(first).status, TaskStatus::Pending);

    // The other task finishes, but the order waits for the released one.
    let outcome = floor.ok(floor.remove_device("agv-2"));
    assert_eq!(
        outcome,
        Outcome::DeviceUpdated { released: None, finished: Some(second), order_moved: None }
    );
    assert_eq!(floor.tasks_of(order), [first]);
    assert_eq!(floor.order_status(order), OrderStatus::Paid);

    let runs = floor.run(first, "agv-3");
    assert_eq!(
        runs,
        [Some(OrderStatus::Picked), Some(OrderStatus::Packed), Some(OrderStatus::Fulfilled)]
    );
    assert_eq!(floor.fulfilled_events(order), 1);
}

// Releases.

#[test]
fn releasing_a_picked_task_takes_back_its_pick_but_never_moves_the_order_backwards() {
    let (mut floor, order, task) = with_one_pending_task();
    let first = floor.assign(task, "agv-1");
    assert_eq!(floor.advance(task, first, TaskStep::Picked), Some(OrderStatus::Picked));
    assert_eq!(floor.store().floor().order_tasks(order).unwrap().picked, 1);

    assert_eq!(floor.release(task, first), TaskStatus::Pending);
    assert_eq!(floor.store().floor().order_tasks(order).unwrap().picked, 0);
    assert_eq!(floor.order_status(order), OrderStatus::Picked);
    assert_eq!(floor.task(task).last_release_reason.as_deref(), Some("pick action failed"));
    assert!(floor.device("agv-1").is_available());

    let second = floor.assign(task, "agv-1");
    assert_eq!(floor.advance(task, second, TaskStep::Picked), None, "already picked once");
    assert_eq!(floor.store().floor().order_tasks(order).unwrap().picked, 1);
    assert_eq!(floor.advance(task, second, TaskStep::Dropped), Some(OrderStatus::Packed));
    assert_eq!(floor.advance(task, second, TaskStep::Done), Some(OrderStatus::Fulfilled));
    assert_eq!(floor.fulfilled_events(order), 1);
}

#[test]
fn a_task_released_too_often_fails_and_its_order_is_fulfilled_by_hand() {
    let mut floor = Floor::new();
    let order = floor.paid(&[(MAPPED, PHONE, 1), (MAPPED, CASE, 2)]);
    let [doomed, other] = floor.tasks_of(order)[..] else { panic!("two tasks expected") };
    for round in 1..=TASK_ATTEMPTS_MAX {
        let attempt = floor.assign(doomed, "agv-1");
        assert_eq!(attempt, round);
        floor.advance(doomed, attempt, TaskStep::Picked);
        let expected =
            if round < TASK_ATTEMPTS_MAX { TaskStatus::Pending } else { TaskStatus::Failed };
        assert_eq!(floor.release(doomed, attempt), expected, "release {round}");
    }
    let failed = floor.task(doomed);
    assert_eq!((failed.status, failed.attempt), (TaskStatus::Failed, TASK_ATTEMPTS_MAX));
    assert_eq!(failed.device, None);
    assert_eq!(floor.pending(), [other], "a failed task is not offered again");
    assert!(floor.device("agv-1").is_available());
    let error = floor.refused(floor.assign_task(doomed, "agv-1"));
    assert_task_refusal(&error, "Failed, not pending");

    // The order's other task is under way when the order ships by hand.
    let attempt = floor.assign(other, "agv-2");
    assert_eq!(floor.advance(other, attempt, TaskStep::Picked), None);
    assert_eq!(floor.order_status(order), OrderStatus::Paid);
    let outcome = floor.ok(floor.fulfil(order));
    assert_eq!(outcome, Outcome::OrderStatusChanged { order, status: OrderStatus::Fulfilled });
    assert!(floor.tasks_of(order).is_empty());
    assert!(floor.pending().is_empty());
    assert_eq!(floor.store().floor().order_tasks(order), None);
    assert!(floor.device("agv-2").is_available(), "its device is freed");
    assert_eq!((floor.level(PHONE, MAPPED).shipped, floor.level(CASE, MAPPED).shipped), (1, 2));
    assert_eq!(floor.fulfilled_events(order), 1);
    let error = floor.refused(floor.progress(other, attempt, TaskStep::Dropped));
    assert_eq!(error, KernelError::UnknownTask(other));
}

// Cancellation.

#[test]
fn cancelling_a_paid_order_drops_its_tasks_and_frees_its_devices() {
    let mut floor = Floor::new();
    let order = floor.paid(&[(MAPPED, PHONE, 1), (MAPPED, CASE, 2), (MAPPED, CABLE, 1)]);
    let kept = floor.paid(&[(MAPPED, PHONE, 1)]);
    let [first, second] = floor.tasks_of(order)[..] else { panic!("two tasks expected") };
    let attempt = floor.assign(first, "agv-1");
    floor.advance(first, attempt, TaskStep::Picked);
    assert_eq!(floor.pending(), [second, floor.only_task(kept)]);

    let outcome = floor.ok(floor.cancel(order));
    assert_eq!(outcome, Outcome::OrderStatusChanged { order, status: OrderStatus::Cancelled });
    assert!(floor.tasks_of(order).is_empty());
    assert_eq!(floor.pending(), [floor.only_task(kept)], "other orders keep their tasks");
    assert_eq!(floor.store().floor().order_tasks(order), None);
    assert!(floor.device("agv-1").is_available());
    let level = floor.level(CASE, MAPPED);
    assert_eq!((level.available, level.sold), (STOCK_UNITS, 0));
    let error = floor.refused(floor.progress(first, attempt, TaskStep::Dropped));
    assert_eq!(error, KernelError::UnknownTask(first));
    assert_eq!(floor.fulfilled_events(order), 0);
}

// Emergency stops.

#[test]
fn a_store_holds_at_most_the_stopped_zone_limit_and_may_always_free_one() {
    let mut floor = Floor::new();
    // Filled directly, as in the device limit test.
    for index in 0..STOPPED_ZONES_MAX {
        floor.shard.apply(&floor.stop_zone(MAPPED, &format!("zone-{index}"), true)).unwrap();
    }
    let error = floor.refused(floor.stop_zone(MANUAL, "z1", true));
    assert_eq!(error, KernelError::TooMany { what: "stopped zones", limit: STOPPED_ZONES_MAX });
    floor.ok(floor.stop_zone(MAPPED, "zone-0", true));
    floor.ok(floor.stop_zone(MAPPED, "zone-0", false));
    floor.ok(floor.stop_zone(MANUAL, "z1", true));
    assert_eq!(floor.store().floor().stopped_zones().len(), STOPPED_ZONES_MAX);
}

// Random sequences.

/// One generated action; turned into a command against the current state,
/// so that most of them name tasks, orders and attempts that exist.
#[derive(Clone, Debug)]
enum Action {
    /// Place an order of `(sku, units)` lines from the mapped warehouse,
    /// the manual one, or alternating between them; pay it at once if
    /// `pay`.
    Place { lines: Vec<(usize, u32)>, route: usize, pay: bool },
    /// Pay the chosen order.
    Pay(prop::sample::Index),
    /// Cancel the chosen order.
    Cancel(prop::sample::Index),
    /// Fulfil the chosen order by hand.
    Fulfil(prop::sample::Index),
    /// The chosen device's link goes up or down.
    Connect { device: usize, online: bool },
    /// The chosen device is quarantined or put back in service.
    Quarantine { device: usize, quarantined: bool },
    /// Give the chosen pending task to the chosen device.
    Assign { task: prop::sample::Index, device: usize },
    /// A step of the chosen held task, on its current attempt or the one
    /// before: the step that comes next (`None`) or the one named.
    Progress { task: prop::sample::Index, step: Option<TaskStep>, stale: bool },
    /// End the chosen held task's current attempt (or the one before).
    Release { task: prop::sample::Index, stale: bool },
    /// Hold or free a zone of the mapped warehouse.
    Stop { zone: usize, stopped: bool },
}

fn action() -> impl Strategy<Value = Action> {
    let index = any::<prop::sample::Index>;
    let step = prop_oneof![
        6 => Just(None),
        1 => Just(Some(TaskStep::Picked)),
        1 => Just(Some(TaskStep::Dropped)),
        1 => Just(Some(TaskStep::Done)),
    ];
    prop_oneof![
        4 => (prop::collection::vec((0..3usize, 1..4u32), 1..4), 0..3usize, prop::bool::weighted(0.8))
            .prop_map(|(lines, route, pay)| Action::Place { lines, route, pay }),
        1 => index().prop_map(Action::Pay),
        1 => index().prop_map(Action::Cancel),
        1 => index().prop_map(Action::Fulfil),
        2 => (0..DEVICES.len(), prop::bool::weighted(0.6))
            .prop_map(|(device, online)| Action::Connect { device, online }),
        1 => (0..DEVICES.len(), prop::bool::weighted(0.4))
            .prop_map(|(device, quarantined)| Action::Quarantine { device, quarantined }),
        6 => (index(), 0..DEVICES.len()).prop_map(|(task, device)| Action::Assign { task, device }),
        10 => (index(), step, prop::bool::weighted(0.1))
            .prop_map(|(task, step, stale)| Action::Progress { task, step, stale }),
        2 => (index(), prop::bool::weighted(0.2))
            .prop_map(|(task, stale)| Action::Release { task, stale }),
        1 => (0..2usize, prop::bool::weighted(0.4))
            .prop_map(|(zone, stopped)| Action::Stop { zone, stopped }),
    ]
}

impl Floor {
    /// The order `index` picks among the store's orders (order 1 when
    /// there are none yet, which the kernel refuses).
    fn pick_order(&self, index: &prop::sample::Index) -> OrderNumber {
        let orders = self.store().orders().len();
        if orders == 0 { 1 } else { index.index(orders) as OrderNumber + 1 }
    }

    /// The task `index` picks among the open tasks whose status `wanted`
    /// accepts, or among all open tasks when none is: its id, attempt and
    /// status (task 1, pending on attempt 1, when there are no open tasks;
    /// the kernel refuses it).
    fn pick_task(
        &self,
        index: &prop::sample::Index,
        wanted: fn(TaskStatus) -> bool,
    ) -> (TaskId, u32, TaskStatus) {
        let open: Vec<&Task> = self.store().floor().tasks().values().collect();
        let fitting: Vec<&Task> = open.iter().copied().filter(|task| wanted(task.status)).collect();
        let choice = if fitting.is_empty() { open } else { fitting };
        match choice.len() {
            0 => (1, 1, TaskStatus::Pending),
            len => {
                let task = choice[index.index(len)];
                (task.id, task.attempt, task.status)
            }
        }
    }

    fn command_for(&self, action: &Action) -> Command {
        let device = |index: usize| DEVICES[index].0;
        let stale_attempt = |attempt: u32, stale: bool| {
            if stale { attempt.checked_sub(1).unwrap_or(attempt + 1) } else { attempt }
        };
        let held = |status| {
            matches!(status, TaskStatus::Assigned | TaskStatus::Picked | TaskStatus::Dropped)
        };
        match action {
            Action::Place { lines, route, .. } => {
                let mut seen = Vec::new();
                let mut shipped = Vec::new();
                for (position, (sku_index, units)) in lines.iter().enumerate() {
                    if seen.contains(sku_index) {
                        continue;
                    }
                    seen.push(*sku_index);
                    let warehouse = match route {
                        0 => MAPPED,
                        1 => MANUAL,
                        _ if position % 2 == 0 => MAPPED,
                        _ => MANUAL,
                    };
                    shipped.push((warehouse, SKUS[*sku_index], *units));
                }
                self.place_command(&shipped)
            }
            Action::Pay(index) => self.pay(self.pick_order(index)),
            Action::Cancel(index) => self.cancel(self.pick_order(index)),
            Action::Fulfil(index) => self.fulfil(self.pick_order(index)),
            Action::Connect { device: index, online } => self.connection(device(*index), *online),
            Action::Quarantine { device: index, quarantined } => {
                self.quarantine(device(*index), quarantined.then_some("driver fault"))
            }
            Action::Assign { task, device: index } => {
                let (task, ..) = self.pick_task(task, |status| status == TaskStatus::Pending);
                self.assign_task(task, device(*index))
            }
            Action::Progress { task, step, stale } => {
                let (task, attempt, status) = self.pick_task(task, held);
                let next = match status {
                    TaskStatus::Picked => TaskStep::Dropped,
                    TaskStatus::Dropped => TaskStep::Done,
                    TaskStatus::Pending | TaskStatus::Assigned | TaskStatus::Failed => {
                        TaskStep::Picked
                    }
                };
                self.progress(task, stale_attempt(attempt, *stale), step.unwrap_or(next))
            }
            Action::Release { task, stale } => {
                let (task, attempt, _) = self.pick_task(task, held);
                self.release_task(task, stale_attempt(attempt, *stale))
            }
            Action::Stop { zone, stopped } => self.stop_zone(MAPPED, ["z1", "z2"][*zone], *stopped),
        }
    }
}

/// Checks, after every command of a random run, what the kernel's own
/// invariant check cannot see: each order's status only moves forward,
/// each order has exactly one `OrderFulfilled` event once fulfilled and
/// none before, tasks serve only paid orders not yet shipped, and only
/// devices in service hold tasks.
fn check_run(
    floor: &Floor,
    statuses: &mut BTreeMap<OrderNumber, OrderStatus>,
    action: &Action,
) -> Result<(), TestCaseError> {
    let state = floor.store();
    for order in state.orders().iter() {
        if let Some(before) = statuses.insert(order.number, order.status) {
            let cancelled_from_unshipped = order.status != OrderStatus::Cancelled
                || matches!(
                    before,
                    OrderStatus::Reserved | OrderStatus::Paid | OrderStatus::Cancelled
                );
            prop_assert!(
                rank(order.status) >= rank(before) && cancelled_from_unshipped,
                "order {} went from {:?} to {:?} on {:?}",
                order.number,
                before,
                order.status,
                action
            );
        }
        let shipped = usize::from(order.status == OrderStatus::Fulfilled);
        prop_assert_eq!(
            floor.fulfilled_events(order.number),
            shipped,
            "order {} is {:?}",
            order.number,
            order.status
        );
    }
    for task in state.floor().tasks().values() {
        let status = state.order(task.order).map(|order| order.status);
        prop_assert!(
            matches!(status, Some(OrderStatus::Paid | OrderStatus::Picked | OrderStatus::Packed)),
            "task {} serves order {} which is {:?}",
            task.id,
            task.order,
            status
        );
    }
    for (id, device) in state.floor().devices() {
        if device.task.is_some() {
            prop_assert!(
                device.online && device.quarantine.is_none(),
                "device {} holds a task out of service",
                id
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_device_and_task_commands_keep_every_invariant_ship_each_order_once_and_replay_exactly(
        actions in prop::collection::vec(action(), 1..100)
    ) {
        let mut floor = Floor::new();
        let mut commands = Vec::new();
        let mut results = Vec::new();
        let mut statuses: BTreeMap<OrderNumber, OrderStatus> = BTreeMap::new();
        for action in &actions {
            let command = floor.command_for(action);
            // `apply` checks the invariants and that a refusal changed nothing.
            let result = floor.apply(&command);
            let placed = match &result {
                Ok(Outcome::OrderPlaced { order, .. }) => Some(*order),
                _ => None,
            };
            commands.push(command);
            results.push(result);
            if let (Action::Place { pay: true, .. }, Some(order)) = (action, placed) {
                let pay = floor.pay(order);
                results.push(floor.apply(&pay));
                commands.push(pay);
            }
            check_run(&floor, &mut statuses, action)?;
        }

        // The same commands on a fresh shard give the same answers and state.
        let mut replayed = Floor::new().shard;
        for (command, result) in commands.iter().zip(&results) {
            prop_assert_eq!(&replayed.apply(command), result);
        }
        prop_assert_eq!(replayed.digest(), floor.shard.digest());
        prop_assert_eq!(Shard::decode(&floor.shard.encode()).unwrap().digest(), floor.shard.digest());
    }
}
