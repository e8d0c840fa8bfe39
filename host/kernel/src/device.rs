//! The device registry and the robots' work: devices (AGVs first; the model
//! allows conveyors and lockers) with their driver plugin and zone, each
//! warehouse's map, the pick tasks a paid order becomes, and which zones an
//! emergency stop holds.
//!
//! Only what decides who does what is kept here and journaled: a device's
//! registration, whether it is online or quarantined, the task it holds,
//! and every step of every task. Telemetry (position, battery, errors) is
//! the node's soft state: it changes many times a second, is worthless
//! after a restart, and enters the kernel only as the decisions the node
//! makes from it (which robot is nearest, which task to release).
//!
//! A task goes `Pending` → `Assigned` (to one device, attempt n) →
//! `Picked` → `Dropped` → done. A device that goes offline, is
//! quarantined or fails an action releases its task back to `Pending`,
//! and the next attempt may go to another device; steps name the attempt,
//! so a late report from the device that lost the task changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::KernelError;
use crate::model::{
    DeviceId, MapNodeId, OrderNumber, PluginId, ShipmentPlan, Sku, TEXT_LEN_MAX, WarehouseId,
    ZoneId, check_text,
};

/// Most devices one store may register: a 500-robot fleet with room for
/// its conveyors and lockers; bounds the registry one store can grow.
pub const DEVICES_PER_STORE_MAX: usize = 4096;
/// Most nodes on one warehouse map: a large warehouse's grid of aisles.
pub const LAYOUT_NODES_MAX: usize = 10_000;
/// Most SKUs with a pick location in one warehouse.
pub const PICK_LOCATIONS_MAX: usize = 100_000;
/// Largest coordinate on a map, in millimetres: 1,000 km from the origin,
/// far beyond any warehouse, and far from overflowing a distance.
pub const COORDINATE_MM_MAX: i64 = 1_000_000_000;
/// Attempts after which a task is given up (`Failed`) instead of being
/// offered to yet another device: a task that failed this often has a
/// cause no robot will fix (a blocked location, a wrong layout), and an
/// operator must look at it. Its order can still be fulfilled by hand.
pub const TASK_ATTEMPTS_MAX: u32 = 16;
/// Most zones one store may hold stopped at once. Each device works in one
/// zone, so no more zones than [`DEVICES_PER_STORE_MAX`] can hold a device
/// an emergency stop would halt; the bound keeps an operator's (or a
/// script's) stops from growing the set without end.
pub const STOPPED_ZONES_MAX: usize = DEVICES_PER_STORE_MAX;

/// What kind of device it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// An automated guided vehicle: drives, picks and drops.
    Agv,
    /// A conveyor.
    Conveyor,
    /// A parcel locker.
    Locker,
}

/// A device as its operator registers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// Its identifier in the store.
    pub id: DeviceId,
    /// What it is.
    pub kind: DeviceKind,
    /// The warehouse it works in.
    pub warehouse: WarehouseId,
    /// Its zone there; an emergency stop holds a whole zone.
    pub zone: ZoneId,
    /// The driver plugin that speaks its protocol.
    pub driver: PluginId,
    /// The vendor, as on the wire.
    pub manufacturer: String,
    /// The vendor's serial number, as on the wire.
    pub serial_number: String,
    /// The model; drivers may keep settings per model.
    pub model: String,
}

/// Why a device is out of service until an operator releases it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    /// What went wrong (a driver fault, named).
    pub reason: String,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// A registered device and what the kernel decides about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Its registration.
    pub spec: DeviceSpec,
    /// Whether its link is up, as its connection messages and last will say.
    pub online: bool,
    /// When `online` last changed, milliseconds since the Unix epoch.
    pub online_changed_at_ms: u64,
    /// Set while it is quarantined.
    pub quarantine: Option<Quarantine>,
    /// The task it holds, if any.
    pub task: Option<TaskId>,
}

impl Device {
    /// Whether the kernel would give it a task: online, not quarantined,
    /// free, and an AGV.
    pub fn is_available(&self) -> bool {
        self.online
            && self.quarantine.is_none()
            && self.task.is_none()
            && self.spec.kind == DeviceKind::Agv
    }
}

/// A place on a warehouse map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapNode {
    /// The node.
    pub id: MapNodeId,
    /// East coordinate, millimetres.
    pub x_mm: i64,
    /// North coordinate, millimetres.
    pub y_mm: i64,
}

/// A warehouse's map for its robots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarehouseLayout {
    /// The map's identifier, as the robots know it.
    pub map_id: String,
    /// Every node, at most [`LAYOUT_NODES_MAX`].
    pub nodes: Vec<MapNode>,
    /// Where each SKU is picked. A paid order's lines of SKUs listed here
    /// become robot tasks; other lines are picked by hand.
    pub pick_locations: BTreeMap<Sku, MapNodeId>,
    /// Where robots drop what they picked.
    pub pack_station: MapNodeId,
}

impl WarehouseLayout {
    /// The node `id`, if on the map.
    pub fn node(&self, id: &MapNodeId) -> Option<&MapNode> {
        self.nodes.iter().find(|node| &node.id == id)
    }

    fn validate(&self) -> Result<(), KernelError> {
        let invalid = |detail: String| Err(KernelError::InvalidLayout(detail));
        check_text("map id", &self.map_id)?;
        if self.map_id.is_empty() {
            return invalid("the map id is empty".into());
        }
        if self.nodes.len() > LAYOUT_NODES_MAX {
            return invalid(format!("{} nodes; at most {LAYOUT_NODES_MAX}", self.nodes.len()));
        }
        if self.pick_locations.len() > PICK_LOCATIONS_MAX {
            return invalid(format!(
                "{} pick locations; at most {PICK_LOCATIONS_MAX}",
                self.pick_locations.len()
            ));
        }
        let mut ids = BTreeSet::new();
        for node in &self.nodes {
            // `unsigned_abs`: `i64::MIN` has no `i64` absolute value.
            let limit = COORDINATE_MM_MAX.unsigned_abs();
            if node.x_mm.unsigned_abs() > limit || node.y_mm.unsigned_abs() > limit {
                return invalid(format!(
                    "node {} lies more than {COORDINATE_MM_MAX} mm from the origin",
                    node.id
                ));
            }
            if !ids.insert(&node.id) {
                return invalid(format!("node {} is listed twice", node.id));
            }
        }
        if !ids.contains(&self.pack_station) {
            return invalid(format!("the pack station {} is not a node", self.pack_station));
        }
        for (sku, node) in &self.pick_locations {
            if !ids.contains(node) {
                return invalid(format!("the pick location of {sku} ({node}) is not a node"));
            }
        }
        Ok(())
    }
}

/// A task's number, dense and increasing within its store from 1.
pub type TaskId = u64;

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    /// Waiting for a device.
    Pending,
    /// A device is driving to the pick location.
    Assigned,
    /// The device picked the units and drives to the pack station.
    Picked,
    /// The units are at the pack station; the device finishes its job.
    Dropped,
    /// Given up after [`TASK_ATTEMPTS_MAX`] attempts.
    Failed,
}

/// A step a device reports for the task it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStep {
    /// It picked the units (from `Assigned`).
    Picked,
    /// It dropped them at the pack station (from `Picked`).
    Dropped,
    /// It finished its job and is free (from `Dropped`): the task is done.
    Done,
}

/// One robot's work for one order line: pick its units, carry them to
/// the pack station.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Its number in the store.
    pub id: TaskId,
    /// The order it serves.
    pub order: OrderNumber,
    /// The warehouse.
    pub warehouse: WarehouseId,
    /// The SKU to pick.
    pub sku: Sku,
    /// Units to pick.
    pub quantity: u32,
    /// Where to pick them (copied from the layout when the task was made).
    pub pick: MapNode,
    /// Where to drop them.
    pub pack_station: MapNode,
    /// The map both are on.
    pub map_id: String,
    /// Where it is.
    pub status: TaskStatus,
    /// The device holding it (`Assigned`, `Picked`, `Dropped`).
    pub device: Option<DeviceId>,
    /// Attempts so far; the current one while a device holds it.
    pub attempt: u32,
    /// Why its last attempt ended without finishing, if one did.
    pub last_release_reason: Option<String>,
    /// When it was made, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When it last changed.
    pub updated_at_ms: u64,
}

/// How far an order's robot tasks have come: the counts that move the
/// order through picked, packed and shipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderTasks {
    /// Tasks the order became.
    pub total: u32,
    /// Tasks whose units are picked (or further).
    pub picked: u32,
    /// Tasks whose units are at the pack station (or further).
    pub dropped: u32,
    /// Tasks done.
    pub done: u32,
}

/// What a task change means for its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderMilestone {
    /// Every task of the order is picked.
    Picked,
    /// Every task of the order is at the pack station.
    Packed,
    /// Every task of the order is done: it ships.
    Shipped,
}

/// What became of the task a device held when it left service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeldTask {
    /// Released: pending again (or failed), for another device.
    Released(TaskId),
    /// Its units were already at the pack station: it is done.
    Finished {
        /// The task.
        task: TaskId,
        /// Its order.
        order: OrderNumber,
        /// The milestone the order reached, if any.
        milestone: Option<OrderMilestone>,
    },
}

/// The devices, maps and tasks of one store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceFloor {
    /// Registered devices.
    devices: BTreeMap<DeviceId, Device>,
    /// Each warehouse's map, for those that have robots.
    layouts: BTreeMap<WarehouseId, WarehouseLayout>,
    /// Tasks not yet done (done tasks live on in the journal only).
    tasks: BTreeMap<TaskId, Task>,
    /// Pending tasks, oldest first: what the dispatcher offers to devices.
    pending: BTreeSet<TaskId>,
    /// Progress of each order that has tasks not yet done.
    order_tasks: BTreeMap<OrderNumber, OrderTasks>,
    /// Zones an emergency stop holds: no task starts in them.
    stopped_zones: BTreeSet<(WarehouseId, ZoneId)>,
    /// The number the next task gets.
    next_task: TaskId,
}

impl DeviceFloor {
    /// Every registered device.
    pub fn devices(&self) -> &BTreeMap<DeviceId, Device> {
        &self.devices
    }

    /// The device `id`.
    pub fn device(&self, id: &DeviceId) -> Option<&Device> {
        self.devices.get(id)
    }

    /// Each warehouse's map.
    pub fn layouts(&self) -> &BTreeMap<WarehouseId, WarehouseLayout> {
        &self.layouts
    }

    /// Tasks not yet done.
    pub fn tasks(&self) -> &BTreeMap<TaskId, Task> {
        &self.tasks
    }

    /// The task `id`, if not yet done.
    pub fn task(&self, id: TaskId) -> Option<&Task> {
        self.tasks.get(&id)
    }

    /// Pending tasks, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &Task> {
        self.pending.iter().filter_map(|id| self.tasks.get(id))
    }

    /// The robot progress of `order`, if it has tasks not yet done.
    pub fn order_tasks(&self, order: OrderNumber) -> Option<OrderTasks> {
        self.order_tasks.get(&order).copied()
    }

    /// Whether an emergency stop holds `zone` of `warehouse`.
    pub fn is_zone_stopped(&self, warehouse: &WarehouseId, zone: &ZoneId) -> bool {
        self.stopped_zones.contains(&(warehouse.clone(), zone.clone()))
    }

    /// The zones an emergency stop holds.
    pub fn stopped_zones(&self) -> &BTreeSet<(WarehouseId, ZoneId)> {
        &self.stopped_zones
    }

    /// Registers `spec`, or replaces the registration of the device of its
    /// id; true when the device is new.
    pub(crate) fn register(&mut self, spec: &DeviceSpec, at_ms: u64) -> Result<bool, KernelError> {
        for (what, text) in [
            ("manufacturer", &spec.manufacturer),
            ("serial number", &spec.serial_number),
            ("model", &spec.model),
        ] {
            check_text(what, text)?;
            if text.is_empty() {
                return Err(KernelError::InvalidDevice(format!("the {what} is empty")));
            }
        }
        if let Some(other) = self.devices.values().find(|other| {
            other.spec.id != spec.id
                && other.spec.driver == spec.driver
                && other.spec.manufacturer == spec.manufacturer
                && other.spec.serial_number == spec.serial_number
        }) {
            return Err(KernelError::InvalidDevice(format!(
                "device {} already has manufacturer {} and serial number {}",
                other.spec.id, spec.manufacturer, spec.serial_number
            )));
        }
        match self.devices.get_mut(&spec.id) {
            Some(device) => {
                if device.task.is_some()
                    && (device.spec.warehouse != spec.warehouse || device.spec.kind != spec.kind)
                {
                    return Err(KernelError::InvalidDevice(format!(
                        "device {} holds a task; it cannot change warehouse or kind now",
                        spec.id
                    )));
                }
                device.spec = spec.clone();
                Ok(false)
            }
            None => {
                if self.devices.len() >= DEVICES_PER_STORE_MAX {
                    return Err(KernelError::TooMany {
                        what: "devices",
                        limit: DEVICES_PER_STORE_MAX,
                    });
                }
                self.devices.insert(
                    spec.id.clone(),
                    Device {
                        spec: spec.clone(),
                        online: false,
                        online_changed_at_ms: at_ms,
                        quarantine: None,
                        task: None,
                    },
                );
                Ok(true)
            }
        }
    }

    pub(crate) fn remove(
        &mut self,
        id: &DeviceId,
        at_ms: u64,
    ) -> Result<Option<HeldTask>, KernelError> {
        self.device_ref(id)?;
        let held = self.release_held(id, "device removed", at_ms);
        self.devices.remove(id);
        Ok(held)
    }

    pub(crate) fn set_layout(
        &mut self,
        warehouse: &WarehouseId,
        layout: &WarehouseLayout,
    ) -> Result<(), KernelError> {
        layout.validate()?;
        self.layouts.insert(warehouse.clone(), layout.clone());
        Ok(())
    }

    /// Records a link change; a device that goes offline releases its task.
    pub(crate) fn set_online(
        &mut self,
        id: &DeviceId,
        online: bool,
        at_ms: u64,
    ) -> Result<Option<HeldTask>, KernelError> {
        let device = self.device_mut(id)?;
        if device.online != online {
            device.online = online;
            device.online_changed_at_ms = at_ms;
        }
        Ok(if online { None } else { self.release_held(id, "device went offline", at_ms) })
    }

    /// Quarantines a device (releasing its task) or, with no reason, lets
    /// it work again.
    pub(crate) fn set_quarantine(
        &mut self,
        id: &DeviceId,
        reason: Option<&str>,
        at_ms: u64,
    ) -> Result<Option<HeldTask>, KernelError> {
        if let Some(reason) = reason {
            check_text("quarantine reason", reason)?;
        }
        let device = self.device_mut(id)?;
        device.quarantine = reason.map(|reason| Quarantine { reason: reason.to_owned(), at_ms });
        Ok(match reason {
            Some(reason) => self.release_held(id, &format!("device quarantined: {reason}"), at_ms),
            None => None,
        })
    }

    /// Holds or frees a zone; freeing is never refused, so an operator can
    /// always undo a stop.
    pub(crate) fn set_zone_stopped(
        &mut self,
        warehouse: &WarehouseId,
        zone: &ZoneId,
        stopped: bool,
    ) -> Result<(), KernelError> {
        let key = (warehouse.clone(), zone.clone());
        if !stopped {
            self.stopped_zones.remove(&key);
            return Ok(());
        }
        if !self.stopped_zones.contains(&key) && self.stopped_zones.len() >= STOPPED_ZONES_MAX {
            return Err(KernelError::TooMany { what: "stopped zones", limit: STOPPED_ZONES_MAX });
        }
        self.stopped_zones.insert(key);
        Ok(())
    }

    /// Makes the robot tasks of a paid order: one per shipment line whose
    /// SKU has a pick location in a warehouse with a map.
    pub(crate) fn create_tasks(&mut self, order: OrderNumber, plan: &ShipmentPlan, at_ms: u64) {
        let mut total = 0;
        for shipment in &plan.shipments {
            let Some(layout) = self.layouts.get(&shipment.warehouse) else { continue };
            let Some(pack_station) = layout.node(&layout.pack_station).cloned() else { continue };
            for line in &shipment.lines {
                let Some(pick) =
                    layout.pick_locations.get(&line.sku).and_then(|node| layout.node(node))
                else {
                    continue;
                };
                self.next_task += 1;
                let id = self.next_task;
                self.tasks.insert(
                    id,
                    Task {
                        id,
                        order,
                        warehouse: shipment.warehouse.clone(),
                        sku: line.sku.clone(),
                        quantity: line.quantity,
                        pick: pick.clone(),
                        pack_station: pack_station.clone(),
                        map_id: layout.map_id.clone(),
                        status: TaskStatus::Pending,
                        device: None,
                        attempt: 0,
                        last_release_reason: None,
                        created_at_ms: at_ms,
                        updated_at_ms: at_ms,
                    },
                );
                self.pending.insert(id);
                total += 1;
            }
        }
        if total > 0 {
            self.order_tasks.insert(order, OrderTasks { total, ..OrderTasks::default() });
        }
    }

    /// Drops every task of `order` (cancelled, or fulfilled by hand): the
    /// devices holding them are free again. Returns the devices that were
    /// working on them, whose jobs the node cancels.
    pub(crate) fn drop_order_tasks(&mut self, order: OrderNumber) -> Vec<DeviceId> {
        if self.order_tasks.remove(&order).is_none() {
            return Vec::new();
        }
        let ids: Vec<TaskId> =
            self.tasks.values().filter(|task| task.order == order).map(|task| task.id).collect();
        let mut freed = Vec::new();
        for id in ids {
            let Some(task) = self.tasks.remove(&id) else { continue };
            self.pending.remove(&id);
            if let Some(device) = task.device
                && let Some(holder) = self.devices.get_mut(&device)
            {
                holder.task = None;
                freed.push(device);
            }
        }
        freed
    }

    /// Checks an assignment without making it.
    pub(crate) fn check_assign(&self, task: TaskId, device: &DeviceId) -> Result<(), KernelError> {
        let task = self.task_ref(task)?;
        if task.status != TaskStatus::Pending {
            return Err(KernelError::InvalidTaskStep(format!(
                "task {} is {:?}, not pending",
                task.id, task.status
            )));
        }
        let holder = self.device_ref(device)?;
        if !holder.is_available() {
            return Err(KernelError::InvalidTaskStep(format!(
                "device {device} cannot take a task now (online {}, quarantined {}, holding {:?}, kind {:?})",
                holder.online,
                holder.quarantine.is_some(),
                holder.task,
                holder.spec.kind
            )));
        }
        if holder.spec.warehouse != task.warehouse {
            return Err(KernelError::InvalidTaskStep(format!(
                "device {device} works in warehouse {}, task {} is in {}",
                holder.spec.warehouse, task.id, task.warehouse
            )));
        }
        if self.is_zone_stopped(&holder.spec.warehouse, &holder.spec.zone) {
            return Err(KernelError::InvalidTaskStep(format!(
                "zone {} of warehouse {} is stopped",
                holder.spec.zone, holder.spec.warehouse
            )));
        }
        Ok(())
    }

    /// Gives a pending task to an available device: the next attempt.
    pub(crate) fn assign(
        &mut self,
        task: TaskId,
        device: &DeviceId,
        at_ms: u64,
    ) -> Result<u32, KernelError> {
        self.check_assign(task, device)?;
        let entry = self.tasks.get_mut(&task).ok_or(KernelError::UnknownTask(task))?;
        entry.status = TaskStatus::Assigned;
        entry.device = Some(device.clone());
        entry.attempt += 1;
        entry.updated_at_ms = at_ms;
        let attempt = entry.attempt;
        self.pending.remove(&task);
        if let Some(holder) = self.devices.get_mut(device) {
            holder.task = Some(task);
        }
        Ok(attempt)
    }

    /// Applies a step of attempt `attempt` of `task`; returns the order and
    /// the milestone it reached, if any.
    pub(crate) fn progress(
        &mut self,
        task: TaskId,
        attempt: u32,
        step: TaskStep,
        at_ms: u64,
    ) -> Result<(OrderNumber, Option<OrderMilestone>), KernelError> {
        let current = self.task_ref(task)?;
        if current.attempt != attempt {
            return Err(KernelError::InvalidTaskStep(format!(
                "task {task} is on attempt {}, not {attempt}",
                current.attempt
            )));
        }
        let (from, to) = match step {
            TaskStep::Picked => (TaskStatus::Assigned, TaskStatus::Picked),
            TaskStep::Dropped => (TaskStatus::Picked, TaskStatus::Dropped),
            TaskStep::Done => (TaskStatus::Dropped, TaskStatus::Dropped),
        };
        if current.status != from {
            return Err(KernelError::InvalidTaskStep(format!(
                "task {task} is {:?}; {step:?} needs it {from:?}",
                current.status
            )));
        }
        let order = current.order;
        let device = current.device.clone();
        let counts = self.order_tasks.entry(order).or_default();
        let milestone = match step {
            TaskStep::Picked => {
                counts.picked += 1;
                (counts.picked == counts.total).then_some(OrderMilestone::Picked)
            }
            TaskStep::Dropped => {
                counts.dropped += 1;
                (counts.dropped == counts.total).then_some(OrderMilestone::Packed)
            }
            TaskStep::Done => {
                counts.done += 1;
                (counts.done == counts.total).then_some(OrderMilestone::Shipped)
            }
        };
        if milestone == Some(OrderMilestone::Shipped) {
            self.order_tasks.remove(&order);
        }
        if step == TaskStep::Done {
            self.tasks.remove(&task);
            if let Some(device) = device
                && let Some(holder) = self.devices.get_mut(&device)
            {
                holder.task = None;
            }
        } else if let Some(entry) = self.tasks.get_mut(&task) {
            entry.status = to;
            entry.updated_at_ms = at_ms;
        }
        Ok((order, milestone))
    }

    /// Ends attempt `attempt` of `task` without finishing it: the task is
    /// pending again, or failed after [`TASK_ATTEMPTS_MAX`] attempts.
    pub(crate) fn release(
        &mut self,
        task: TaskId,
        attempt: u32,
        reason: &str,
        at_ms: u64,
    ) -> Result<TaskStatus, KernelError> {
        check_text("release reason", reason)?;
        let current = self.task_ref(task)?;
        if current.attempt != attempt
            || !matches!(current.status, TaskStatus::Assigned | TaskStatus::Picked)
        {
            return Err(KernelError::InvalidTaskStep(format!(
                "task {task} is {:?} on attempt {}; attempt {attempt} cannot be released",
                current.status, current.attempt
            )));
        }
        Ok(self.release_task(task, reason, at_ms))
    }

    /// Ends the attempt of the task `device` holds, if any. A task whose
    /// units are already at the pack station only waits for the end of the
    /// device's job, which a vanished device never reports: it is done.
    /// Any other is released to be redone.
    fn release_held(&mut self, device: &DeviceId, reason: &str, at_ms: u64) -> Option<HeldTask> {
        let task = self.devices.get(device)?.task?;
        let entry = self.tasks.get(&task)?;
        if entry.status == TaskStatus::Dropped {
            let attempt = entry.attempt;
            let (order, milestone) = self.progress(task, attempt, TaskStep::Done, at_ms).ok()?;
            return Some(HeldTask::Finished { task, order, milestone });
        }
        self.release_task(task, reason, at_ms);
        Some(HeldTask::Released(task))
    }

    fn release_task(&mut self, task: TaskId, reason: &str, at_ms: u64) -> TaskStatus {
        let Some(entry) = self.tasks.get_mut(&task) else { return TaskStatus::Failed };
        let was_picked = entry.status == TaskStatus::Picked;
        let device = entry.device.take();
        entry.last_release_reason = Some(clip_text(reason).to_owned());
        entry.updated_at_ms = at_ms;
        entry.status = if entry.attempt >= TASK_ATTEMPTS_MAX {
            TaskStatus::Failed
        } else {
            self.pending.insert(task);
            TaskStatus::Pending
        };
        let status = entry.status;
        let order = entry.order;
        if was_picked && let Some(counts) = self.order_tasks.get_mut(&order) {
            counts.picked -= 1;
        }
        if let Some(device) = device
            && let Some(holder) = self.devices.get_mut(&device)
        {
            holder.task = None;
        }
        status
    }

    fn device_ref(&self, id: &DeviceId) -> Result<&Device, KernelError> {
        self.devices.get(id).ok_or_else(|| KernelError::UnknownDevice(id.to_string()))
    }

    fn device_mut(&mut self, id: &DeviceId) -> Result<&mut Device, KernelError> {
        self.devices.get_mut(id).ok_or_else(|| KernelError::UnknownDevice(id.to_string()))
    }

    fn task_ref(&self, id: TaskId) -> Result<&Task, KernelError> {
        self.tasks.get(&id).ok_or(KernelError::UnknownTask(id))
    }

    /// Checks that devices and tasks agree: a device holds a task exactly
    /// when the task names it, and only while it is in service in the
    /// task's warehouse; pending tasks are exactly those indexed; attempts
    /// stay within [`TASK_ATTEMPTS_MAX`]; each order's progress record
    /// matches its open tasks, and exists exactly while it has some; the
    /// stopped zones stay within [`STOPPED_ZONES_MAX`].
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        for (id, device) in &self.devices {
            if let Some(task) = device.task {
                let Some(held) = self.tasks.get(&task) else {
                    return Err(format!("device {id} holds task {task}, which does not exist"));
                };
                if held.device.as_ref() != Some(id) {
                    return Err(format!(
                        "device {id} holds task {task}, which names {:?}",
                        held.device
                    ));
                }
                if !device.online || device.quarantine.is_some() {
                    return Err(format!("device {id} holds task {task} while out of service"));
                }
                if device.spec.warehouse != held.warehouse {
                    return Err(format!(
                        "device {id} works in warehouse {}, its task {task} is in {}",
                        device.spec.warehouse, held.warehouse
                    ));
                }
            }
        }
        // Per order: `total` counts its open tasks here, the rest as recorded.
        let mut counts: BTreeMap<OrderNumber, OrderTasks> = BTreeMap::new();
        for (id, task) in &self.tasks {
            let held = matches!(
                task.status,
                TaskStatus::Assigned | TaskStatus::Picked | TaskStatus::Dropped
            );
            match &task.device {
                Some(device) if held => {
                    if self.devices.get(device).and_then(|d| d.task) != Some(*id) {
                        return Err(format!(
                            "task {id} names device {device}, which does not hold it"
                        ));
                    }
                }
                None if !held => {}
                other => {
                    return Err(format!("task {id} is {:?} with device {other:?}", task.status));
                }
            }
            if (task.status == TaskStatus::Pending) != self.pending.contains(id) {
                return Err(format!(
                    "task {id} is {:?} but the pending index disagrees",
                    task.status
                ));
            }
            let attempts_fit = match task.status {
                TaskStatus::Pending => task.attempt < TASK_ATTEMPTS_MAX,
                TaskStatus::Failed => task.attempt == TASK_ATTEMPTS_MAX,
                TaskStatus::Assigned | TaskStatus::Picked | TaskStatus::Dropped => {
                    (1..=TASK_ATTEMPTS_MAX).contains(&task.attempt)
                }
            };
            if !attempts_fit {
                return Err(format!("task {id} is {:?} on attempt {}", task.status, task.attempt));
            }
            let entry = counts.entry(task.order).or_default();
            entry.total += 1;
            match task.status {
                TaskStatus::Picked => entry.picked += 1,
                TaskStatus::Dropped => {
                    entry.picked += 1;
                    entry.dropped += 1;
                }
                _ => {}
            }
        }
        if let Some(order) = counts.keys().find(|order| !self.order_tasks.contains_key(order)) {
            return Err(format!("order {order} has tasks but no progress record"));
        }
        for (order, recorded) in &self.order_tasks {
            let live = counts.get(order).copied().unwrap_or_default();
            let open = recorded.total.checked_sub(recorded.done);
            if open.is_none_or(|open| open == 0 || open != live.total)
                || recorded.picked != live.picked + recorded.done
                || recorded.dropped != live.dropped + recorded.done
            {
                return Err(format!(
                    "order {order}: progress {recorded:?} disagrees with its {} open tasks",
                    live.total
                ));
            }
        }
        if self.stopped_zones.len() > STOPPED_ZONES_MAX {
            return Err(format!("{} zones are stopped", self.stopped_zones.len()));
        }
        Ok(())
    }
}

/// `text` cut to at most [`TEXT_LEN_MAX`] bytes on a character boundary:
/// a release reason is the kernel's words around a caller's text, which
/// alone may already be that long.
fn clip_text(text: &str) -> &str {
    let mut end = text.len().min(TEXT_LEN_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}
