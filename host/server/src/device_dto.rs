//! The JSON of the device bus's routes: warehouse maps, device
//! registrations and what the node knows of each device, robot tasks,
//! zone holds and the bus itself, with their OpenAPI schemas and the
//! conversions to and from the kernel's and the bus's types.
//!
//! A device's view joins two sources. What the kernel decided (its
//! registration, whether it is online or quarantined, the task it holds)
//! is read from its store's shard and is always current. What the device
//! last said (position, battery, errors) is the bus's soft state, copied
//! at its last dispatch round; it is absent while the bus has not seen the
//! device, and always when the node runs without a bus. Positions are in
//! millimetres on the warehouse's map, timestamps in milliseconds since
//! the Unix epoch.

use std::collections::BTreeMap;

use bazaar_kernel::device::{Device, DeviceKind, MapNode, Task, TaskStatus, WarehouseLayout};
use bazaar_kernel::model::{DeviceId, MapNodeId, PluginId, Sku, StoreId, WarehouseId, ZoneId};
use bazaar_node::devices::{BusCounters, DeviceStatus};
use bazaar_runtime::ErrorLevel;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Most devices one page of a device list returns. A device's view is
/// under a kilobyte when it is healthy and at most about 33 KiB when its
/// driver reports the most errors a driver may (32 of up to 1 KiB each):
/// 200 keep a healthy page under 200 KiB and the worst under 7 MiB, and a
/// 500-robot fleet is three pages.
pub const DEVICES_PAGE_LIMIT_MAX: u32 = 200;
/// Devices a page returns when the client does not say.
pub const DEVICES_PAGE_LIMIT_DEFAULT: u32 = 100;

/// A page request over devices: those after the cursor `after`, at most
/// `limit`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DevicePageQuery {
    /// Return devices after this one (the `next_after` of the previous
    /// page).
    pub after: Option<String>,
    /// Most devices to return, 1 to 200 (default 100).
    pub limit: Option<u32>,
}

impl DevicePageQuery {
    /// The checked limit.
    pub fn limit(&self) -> Result<usize, ApiError> {
        let limit = self.limit.unwrap_or(DEVICES_PAGE_LIMIT_DEFAULT);
        if !(1..=DEVICES_PAGE_LIMIT_MAX).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("limit must be 1 to {DEVICES_PAGE_LIMIT_MAX}, got {limit}"),
            ));
        }
        Ok(limit as usize)
    }
}

fn parse_id<T>(
    field: impl Into<String>,
    parse: impl FnOnce(String) -> Result<T, bazaar_kernel::KernelError>,
    text: String,
) -> Result<T, ApiError> {
    parse(text).map_err(|error| ApiError::from(error).at_field(field))
}

// ----- warehouse maps -----

/// A place on a warehouse map.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MapNodeBody {
    /// The node's id, as the robots know it.
    pub id: String,
    /// East coordinate, millimetres.
    pub x_mm: i64,
    /// North coordinate, millimetres.
    pub y_mm: i64,
}

impl From<&MapNode> for MapNodeBody {
    fn from(node: &MapNode) -> Self {
        Self { id: node.id.to_string(), x_mm: node.x_mm, y_mm: node.y_mm }
    }
}

/// A warehouse's map for its robots: the places they drive to, where each
/// SKU is picked and where picked units are dropped. A paid order's lines
/// of SKUs listed here become robot tasks; other lines are picked by hand.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "map_id": "hgh-floor-1",
    "nodes": [
        {"id": "dock", "x_mm": 0, "y_mm": 0},
        {"id": "A1", "x_mm": 12000, "y_mm": 3500},
        {"id": "pack", "x_mm": 2000, "y_mm": 15000}
    ],
    "pick_locations": {"D11-PHONE": "A1"},
    "pack_station": "pack"
}))]
pub struct Layout {
    /// The map's identifier, as the robots know it.
    pub map_id: String,
    /// Every node (at most 10,000).
    pub nodes: Vec<MapNodeBody>,
    /// Where each SKU is picked: SKU → node id (at most 100,000).
    pub pick_locations: BTreeMap<String, String>,
    /// The node where robots drop what they picked.
    pub pack_station: String,
}

impl Layout {
    /// The kernel's layout; each malformed id is refused with its field.
    pub fn into_kernel(self) -> Result<WarehouseLayout, ApiError> {
        let nodes = self
            .nodes
            .into_iter()
            .enumerate()
            .map(|(index, node)| {
                Ok(MapNode {
                    id: parse_id(format!("nodes[{index}].id"), MapNodeId::new, node.id)?,
                    x_mm: node.x_mm,
                    y_mm: node.y_mm,
                })
            })
            .collect::<Result<_, ApiError>>()?;
        let pick_locations = self
            .pick_locations
            .into_iter()
            .map(|(sku, node)| {
                let field = format!("pick_locations.{}", sku.chars().take(64).collect::<String>());
                let node = parse_id(field.clone(), MapNodeId::new, node)?;
                Ok((parse_id(field, Sku::new, sku)?, node))
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(WarehouseLayout {
            map_id: self.map_id,
            nodes,
            pick_locations,
            pack_station: parse_id("pack_station", MapNodeId::new, self.pack_station)?,
        })
    }
}

impl From<&WarehouseLayout> for Layout {
    fn from(layout: &WarehouseLayout) -> Self {
        Self {
            map_id: layout.map_id.clone(),
            nodes: layout.nodes.iter().map(MapNodeBody::from).collect(),
            pick_locations: layout
                .pick_locations
                .iter()
                .map(|(sku, node)| (sku.to_string(), node.to_string()))
                .collect(),
            pack_station: layout.pack_station.to_string(),
        }
    }
}

/// A warehouse's map as stored.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct StoredLayout {
    /// The warehouse.
    pub warehouse: String,
    /// Its map.
    pub layout: Layout,
}

// ----- devices -----

/// What kind of device it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An automated guided vehicle: drives, picks and drops. Only these
    /// are given robot tasks.
    Agv,
    /// A conveyor.
    Conveyor,
    /// A parcel locker.
    Locker,
}

impl From<Kind> for DeviceKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Agv => DeviceKind::Agv,
            Kind::Conveyor => DeviceKind::Conveyor,
            Kind::Locker => DeviceKind::Locker,
        }
    }
}

impl From<DeviceKind> for Kind {
    fn from(kind: DeviceKind) -> Self {
        match kind {
            DeviceKind::Agv => Kind::Agv,
            DeviceKind::Conveyor => Kind::Conveyor,
            DeviceKind::Locker => Kind::Locker,
        }
    }
}

/// A device to register, or its new registration.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "kind": "agv", "warehouse": "HGH", "zone": "north", "driver": "driver-vda5050",
    "manufacturer": "acme-robotics", "serial_number": "AGV-0001", "model": "T1"
}))]
pub struct DeviceInput {
    /// What it is.
    pub kind: Kind,
    /// The warehouse it works in (it must exist).
    pub warehouse: String,
    /// Its zone there; an emergency stop holds a whole zone.
    pub zone: String,
    /// The device-driver plugin that speaks its protocol; the store must
    /// have enabled it.
    pub driver: String,
    /// The vendor, as on the wire (at most 256 bytes).
    pub manufacturer: String,
    /// The vendor's serial number, as on the wire (at most 256 bytes).
    pub serial_number: String,
    /// The model (at most 256 bytes).
    pub model: String,
}

impl DeviceInput {
    /// The kernel's registration of device `id`; each malformed id is
    /// refused with its field.
    pub fn into_spec(self, id: DeviceId) -> Result<bazaar_kernel::device::DeviceSpec, ApiError> {
        Ok(bazaar_kernel::device::DeviceSpec {
            id,
            kind: self.kind.into(),
            warehouse: parse_id("warehouse", WarehouseId::new, self.warehouse)?,
            zone: parse_id("zone", ZoneId::new, self.zone)?,
            driver: parse_id("driver", PluginId::new, self.driver)?,
            manufacturer: self.manufacturer,
            serial_number: self.serial_number,
            model: self.model,
        })
    }
}

/// Why a device is out of service until someone releases it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct QuarantineView {
    /// What went wrong (a driver fault, named).
    pub reason: String,
    /// When.
    pub at_ms: u64,
}

/// Where a device last said it was.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Position {
    /// East coordinate, millimetres.
    pub x_mm: i64,
    /// North coordinate, millimetres.
    pub y_mm: i64,
    /// Heading, milliradians counter-clockwise from east.
    pub theta_mrad: i32,
    /// The map the coordinates are on.
    pub map_id: String,
    /// The last map node it reported reaching.
    pub last_node_id: Option<String>,
}

/// How serious a device's error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorSeverity {
    /// The device can go on.
    Warning,
    /// The device cannot go on without help.
    Fatal,
}

/// An error a device reports.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DeviceErrorView {
    /// The vendor's or the standard's error type.
    pub error_type: String,
    /// How serious it is.
    pub level: ErrorSeverity,
    /// What it says, possibly empty.
    pub description: String,
}

/// What a device last told the bus, and the bus's traffic with it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Telemetry {
    /// The version of the driver plugin driving it, if installed.
    pub driver_version: Option<String>,
    /// Where it last said it was.
    pub position: Option<Position>,
    /// Battery charge, tenths of a percent (0 to 1000).
    pub battery_permille: Option<u16>,
    /// Whether it is charging.
    pub charging: bool,
    /// Its operating mode, in the vendor's words.
    pub operating_mode: Option<String>,
    /// Whether it reports being paused (an emergency stop pauses it).
    pub paused: bool,
    /// Whether it reports driving.
    pub driving: bool,
    /// Its current errors.
    pub errors: Vec<DeviceErrorView>,
    /// When it last sent anything.
    pub last_seen_ms: Option<u64>,
    /// The job the bus runs on it, if any.
    pub job: Option<String>,
    /// Frames received from it.
    pub frames_in: u64,
    /// Frames from it its driver called malformed.
    pub frames_malformed: u64,
    /// Commands sent to it.
    pub commands_sent: u64,
}

impl From<&DeviceStatus> for Telemetry {
    fn from(status: &DeviceStatus) -> Self {
        Self {
            driver_version: status.driver_version.clone(),
            position: status.position.as_ref().map(|position| Position {
                x_mm: position.x_mm,
                y_mm: position.y_mm,
                theta_mrad: position.theta_mrad,
                map_id: position.map_id.clone(),
                last_node_id: position.last_node_id.clone(),
            }),
            battery_permille: status.battery_permille,
            charging: status.charging,
            operating_mode: status.operating_mode.clone(),
            paused: status.paused,
            driving: status.driving,
            errors: status
                .errors
                .iter()
                .map(|error| DeviceErrorView {
                    error_type: error.error_type.clone(),
                    level: match error.level {
                        ErrorLevel::Warning => ErrorSeverity::Warning,
                        ErrorLevel::Fatal => ErrorSeverity::Fatal,
                    },
                    description: error.description.clone(),
                })
                .collect(),
            last_seen_ms: status.last_seen_ms,
            job: status.job.clone(),
            frames_in: status.frames_in,
            frames_malformed: status.frames_malformed,
            commands_sent: status.commands_sent,
        }
    }
}

/// A device: its registration, what the kernel decided about it, and what
/// it last told the bus.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DeviceView {
    /// The store.
    pub store: String,
    /// Its id in the store.
    pub id: String,
    /// What it is.
    pub kind: Kind,
    /// The warehouse it works in.
    pub warehouse: String,
    /// Its zone there.
    pub zone: String,
    /// The driver plugin.
    pub driver: String,
    /// The vendor.
    pub manufacturer: String,
    /// The vendor's serial number.
    pub serial_number: String,
    /// The model.
    pub model: String,
    /// Whether its link is up, as its connection messages and last will
    /// say.
    pub online: bool,
    /// When `online` last changed.
    pub online_changed_at_ms: u64,
    /// Set while it is quarantined; `POST .../release` clears it.
    pub quarantine: Option<QuarantineView>,
    /// The robot task it holds, if any.
    pub task: Option<u64>,
    /// Whether an emergency stop holds its zone.
    pub zone_stopped: bool,
    /// What it last told the bus; absent until the bus has seen it, and
    /// always when the node runs without a bus.
    pub telemetry: Option<Telemetry>,
}

impl DeviceView {
    /// The view of `device` of `store`, with the bus's `status` of it.
    pub fn of(
        store: &StoreId,
        device: &Device,
        zone_stopped: bool,
        status: Option<&DeviceStatus>,
    ) -> Self {
        let spec = &device.spec;
        Self {
            store: store.to_string(),
            id: spec.id.to_string(),
            kind: spec.kind.into(),
            warehouse: spec.warehouse.to_string(),
            zone: spec.zone.to_string(),
            driver: spec.driver.to_string(),
            manufacturer: spec.manufacturer.clone(),
            serial_number: spec.serial_number.clone(),
            model: spec.model.clone(),
            online: device.online,
            online_changed_at_ms: device.online_changed_at_ms,
            quarantine: device
                .quarantine
                .as_ref()
                .map(|q| QuarantineView { reason: q.reason.clone(), at_ms: q.at_ms }),
            task: device.task,
            zone_stopped,
            telemetry: status.map(Telemetry::from),
        }
    }
}

/// The bus's status of device `id` of `store` in `fleet` (sorted by store
/// and device, as the bus publishes it).
pub fn status_in<'a>(
    fleet: &'a [DeviceStatus],
    store: &StoreId,
    id: &DeviceId,
) -> Option<&'a DeviceStatus> {
    fleet
        .binary_search_by(|status| (&status.store, &status.device.spec.id).cmp(&(store, id)))
        .ok()
        .and_then(|index| fleet.get(index))
}

/// A zone of a warehouse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ZoneRef {
    /// The warehouse.
    pub warehouse: String,
    /// The zone.
    pub zone: String,
}

/// Whether the node runs a device bus and whether it is connected.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BusState {
    /// False when the node runs with `mqtt_disabled`: devices can be
    /// registered, but nothing drives them and emergency stops are refused.
    pub enabled: bool,
    /// Whether its MQTT connection is up now.
    pub connected: bool,
}

/// A page of a store's devices, the zones an emergency stop holds, and the
/// bus's state.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DeviceList {
    /// Devices in id order.
    pub devices: Vec<DeviceView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
    /// Every zone of the store an emergency stop holds (with or without
    /// devices in it), in warehouse and zone order.
    pub stopped_zones: Vec<ZoneRef>,
    /// The device bus.
    pub bus: BusState,
}

/// What an emergency stop or a resume did.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ZoneChange {
    /// The warehouse.
    pub warehouse: String,
    /// The zone.
    pub zone: String,
    /// Whether the zone is held now.
    pub stopped: bool,
    /// Devices of the zone the bus sent the pause (or resume) to, before
    /// the hold was journaled.
    pub devices_commanded: usize,
}

// ----- the node's fleet -----

/// The device bus's counters since the node started.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BusCountersView {
    /// Frames received.
    pub frames_in: u64,
    /// Frames published.
    pub frames_out: u64,
    /// Frames on a topic no device owns.
    pub frames_unrouted: u64,
    /// Frames a driver called malformed.
    pub frames_malformed: u64,
    /// Driver faults, each of which quarantined a device.
    pub driver_faults: u64,
    /// Device events applied.
    pub events_applied: u64,
    /// Publishes the MQTT client refused.
    pub publish_failures: u64,
    /// Commands held back by a device's rate limit.
    pub commands_rate_limited: u64,
    /// Tasks assigned.
    pub tasks_assigned: u64,
    /// Tasks finished.
    pub tasks_done: u64,
    /// Task attempts ended unfinished.
    pub tasks_released: u64,
}

impl From<&BusCounters> for BusCountersView {
    fn from(counters: &BusCounters) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Self {
            frames_in: counters.frames_in.load(Relaxed),
            frames_out: counters.frames_out.load(Relaxed),
            frames_unrouted: counters.frames_unrouted.load(Relaxed),
            frames_malformed: counters.frames_malformed.load(Relaxed),
            driver_faults: counters.driver_faults.load(Relaxed),
            events_applied: counters.events_applied.load(Relaxed),
            publish_failures: counters.publish_failures.load(Relaxed),
            commands_rate_limited: counters.commands_rate_limited.load(Relaxed),
            tasks_assigned: counters.tasks_assigned.load(Relaxed),
            tasks_done: counters.tasks_done.load(Relaxed),
            tasks_released: counters.tasks_released.load(Relaxed),
        }
    }
}

/// The device bus of the node and a page of every store's devices.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Fleet {
    /// The device bus.
    pub bus: BusState,
    /// Its broker, `mqtt://host:port`; absent without a bus.
    pub broker: Option<String>,
    /// Whether the node itself runs that broker.
    pub embedded_broker: bool,
    /// Its counters; absent without a bus.
    pub counters: Option<BusCountersView>,
    /// Devices in store and id order.
    pub devices: Vec<DeviceView>,
    /// Pass as `after` for the next page (`store/device`); absent on the
    /// last page.
    pub next_after: Option<String>,
}

// ----- tasks -----

/// Where a robot task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for a device.
    Pending,
    /// A device is driving to the pick location.
    Assigned,
    /// The device picked the units and carries them to the pack station.
    Picked,
    /// The units are at the pack station; the device finishes its job.
    Dropped,
    /// Given up after too many attempts; the order can still be fulfilled
    /// by hand.
    Failed,
}

impl From<TaskStatus> for TaskState {
    fn from(status: TaskStatus) -> Self {
        match status {
            TaskStatus::Pending => TaskState::Pending,
            TaskStatus::Assigned => TaskState::Assigned,
            TaskStatus::Picked => TaskState::Picked,
            TaskStatus::Dropped => TaskState::Dropped,
            TaskStatus::Failed => TaskState::Failed,
        }
    }
}

/// One robot's work for one order line: pick its units, carry them to the
/// pack station.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    /// Its number in the store.
    pub id: u64,
    /// The order it serves.
    pub order: u64,
    /// The warehouse.
    pub warehouse: String,
    /// The SKU to pick.
    pub sku: String,
    /// Units to pick.
    pub quantity: u32,
    /// Where it is.
    pub status: TaskState,
    /// The device holding it.
    pub device: Option<String>,
    /// Attempts so far; the current one while a device holds it.
    pub attempt: u32,
    /// Why its last attempt ended without finishing, if one did.
    pub last_release_reason: Option<String>,
    /// Where the units are picked.
    pub pick: MapNodeBody,
    /// Where they are dropped.
    pub pack_station: MapNodeBody,
    /// The map both are on.
    pub map_id: String,
    /// When it was made.
    pub created_at_ms: u64,
    /// When it last changed.
    pub updated_at_ms: u64,
}

impl From<&Task> for TaskView {
    fn from(task: &Task) -> Self {
        Self {
            id: task.id,
            order: task.order,
            warehouse: task.warehouse.to_string(),
            sku: task.sku.to_string(),
            quantity: task.quantity,
            status: task.status.into(),
            device: task.device.as_ref().map(ToString::to_string),
            attempt: task.attempt,
            last_release_reason: task.last_release_reason.clone(),
            pick: MapNodeBody::from(&task.pick),
            pack_station: MapNodeBody::from(&task.pack_station),
            map_id: task.map_id.clone(),
            created_at_ms: task.created_at_ms,
            updated_at_ms: task.updated_at_ms,
        }
    }
}

/// A page of a store's open robot tasks (done tasks are in the journal
/// only).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TaskList {
    /// Tasks in id order (oldest first).
    pub tasks: Vec<TaskView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u64>,
}
