//! The bus worker: one thread that owns every device's soft state and every
//! driver instance, decodes inbound frames through the device's driver,
//! turns what they say into telemetry or kernel commands, dispatches
//! pending tasks to the nearest free robot, and carries each task's job to
//! the robot through its driver.
//!
//! Everything the kernel decides arrives here as a periodic read of every
//! store's devices and tasks (the floor view). The worker compares it with
//! the jobs it is running and repairs any difference: a job whose task the
//! kernel no longer gives the device is cancelled on the device, and a
//! task the kernel gives a device the worker knows no job for (after a
//! restart) is released to be done again. A kernel command is submitted
//! without waiting; its result comes back on a channel, so a slow journal
//! never stalls telemetry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bazaar_kernel::device::{Device, MapNode, Task, TaskId, TaskStatus, TaskStep};
use bazaar_kernel::model::{
    DeviceId, PluginId, PluginKind, PluginRef, StoreId, WarehouseId, ZoneId,
};
use bazaar_kernel::{Command, Outcome, PluginStateMap};
use bazaar_runtime::{
    ActionKind, ActionStatus, ConnectionState, DeviceCommand, DeviceContext, DeviceDriver,
    DeviceError, DeviceEvent, DeviceInfo, DevicePosition, DriverPlugin, DriverRefusal, ErrorLevel,
    INBOUND_PAYLOAD_BYTES_MAX, Job, PluginCall, Stop, StopAction,
};
use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use crate::devices::mqtt::MqttLink;
use crate::node::{Node, NodeError, wall_clock_ms};
use crate::plugins::{Implementation, PluginSet};

/// Pending tasks read per store per refresh: the dispatcher can start at
/// most one job per free robot per round, so a few hundred is plenty even
/// for a large fleet, and it bounds the copy however many orders wait.
pub const PENDING_TASKS_READ_MAX: usize = 512;

/// Inbound frames waiting for the worker. The MQTT thread blocks when it
/// is full, so the broker holds the rest: telemetry is never dropped here.
pub const INBOUND_QUEUE_FRAMES_MAX: usize = 4096;

/// Malformed-payload log lines per second, over all devices: every
/// malformed frame is counted, but a device spraying garbage must not
/// flood the log.
const MALFORMED_LOG_LINES_PER_SECOND: u32 = 10;

/// How far a device must move, along either axis, for the move to count
/// as progress on its job. A vehicle reports its position every state,
/// jittering by millimetres while it stands; a metre is real travel, so a
/// long drive between two nodes is not taken for a stall, and a vehicle
/// blocked in place is.
pub const JOB_PROGRESS_MOVE_MM: i64 = 1_000;

/// An inbound message for the worker.
#[derive(Debug)]
pub enum Inbound {
    /// The MQTT connection is (again) up.
    Connected,
    /// A publish on `topic`.
    Frame {
        /// The topic.
        topic: String,
        /// The payload.
        payload: Vec<u8>,
    },
}

/// How the bus runs.
#[derive(Clone, Debug)]
pub struct BusSettings {
    /// How often the worker rereads the floor and dispatches, ms.
    pub dispatch_interval_ms: u64,
    /// A job that reports no progress for this long (not counting time
    /// paused) is taken back and its task offered to another robot, ms.
    pub job_progress_timeout_ms: u64,
    /// A job the device has not acknowledged this long after it was sent
    /// (no report names it: the device refused it, or never got it) is
    /// taken back, ms. A VDA 5050 vehicle lists a new order's actions in
    /// its very next state, so this is short next to the progress timeout.
    pub job_accept_timeout_ms: u64,
    /// Commands per second one device may be sent, beyond a pause or
    /// resume (which are never held back).
    pub device_commands_per_second: u32,
}

impl Default for BusSettings {
    fn default() -> Self {
        Self {
            dispatch_interval_ms: 50,
            job_progress_timeout_ms: 120_000,
            job_accept_timeout_ms: 10_000,
            device_commands_per_second: 10,
        }
    }
}

/// A device as the bus sees it, for the API and the console.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceStatus {
    /// The store.
    pub store: StoreId,
    /// The device.
    pub device: Device,
    /// The driver version driving it, if the store's driver is installed.
    pub driver_version: Option<String>,
    /// Where it last said it was.
    pub position: Option<DevicePosition>,
    /// Battery charge, tenths of a percent.
    pub battery_permille: Option<u16>,
    /// Whether it is charging.
    pub charging: bool,
    /// Its operating mode, in the vendor's words.
    pub operating_mode: Option<String>,
    /// Whether it reports being paused.
    pub paused: bool,
    /// Whether it reports driving.
    pub driving: bool,
    /// Its current errors.
    pub errors: Vec<DeviceError>,
    /// When it last sent anything, ms since the epoch.
    pub last_seen_ms: Option<u64>,
    /// The job it runs for the bus, if any.
    pub job: Option<String>,
    /// Frames received from it.
    pub frames_in: u64,
    /// Frames from it its driver called malformed.
    pub frames_malformed: u64,
    /// Commands sent to it.
    pub commands_sent: u64,
}

/// The bus's counters.
#[derive(Debug, Default)]
pub struct BusCounters {
    /// Frames received.
    pub frames_in: AtomicU64,
    /// Frames on a topic no device owns.
    pub frames_unrouted: AtomicU64,
    /// Frames the driver called malformed (counted and dropped).
    pub frames_malformed: AtomicU64,
    /// Driver faults (trap, deadline, garbage): each quarantines a device.
    pub driver_faults: AtomicU64,
    /// Events applied.
    pub events_applied: AtomicU64,
    /// Frames published.
    pub frames_out: AtomicU64,
    /// Publishes the client refused (queue full, disconnected).
    pub publish_failures: AtomicU64,
    /// Commands held back by a device's rate limit.
    pub commands_rate_limited: AtomicU64,
    /// Tasks assigned.
    pub tasks_assigned: AtomicU64,
    /// Tasks finished.
    pub tasks_done: AtomicU64,
    /// Task attempts ended unfinished (timeouts, failed actions, lost robots).
    pub tasks_released: AtomicU64,
}

/// A request from the API to the worker.
pub(crate) enum Control {
    /// Hold or free a zone: pause or resume its devices, and journal it.
    Zone {
        store: StoreId,
        warehouse: WarehouseId,
        zone: ZoneId,
        stopped: bool,
        reply: Box<dyn FnOnce(Result<usize, NodeError>) + Send>,
    },
    /// Stop the worker.
    Stop,
}

/// A kernel command's result, routed back to the worker.
struct CommandResult {
    purpose: Purpose,
    result: Result<Outcome, NodeError>,
}

/// Why the worker submitted a command.
enum Purpose {
    /// An assignment of `task` to the device.
    Assign { key: DeviceKey, task: Box<Task> },
    /// A step of the device's job.
    Step { key: DeviceKey, task: TaskId, step: TaskStep },
    /// A change of the device's link.
    Link { key: DeviceKey },
    /// The device's quarantine after a driver fault.
    Quarantine { key: DeviceKey },
    /// Anything whose result needs no follow-up.
    Other,
}

/// A device's key: its store and id.
type DeviceKey = (StoreId, DeviceId);

/// A task the bus is carrying out on a device.
struct JobInFlight {
    task: Task,
    attempt: u32,
    job_id: String,
    phase: Phase,
    /// A step submitted and not yet answered.
    awaiting: Option<TaskStep>,
    /// Last progress, for the timeout: a node reached, a step, or a move
    /// of [`JOB_PROGRESS_MOVE_MM`].
    last_progress: Instant,
    /// Where the device stood when a move last counted, to measure the
    /// next move from.
    progress_position: Option<(String, i64, i64)>,
    /// The last node the device reported reaching on this job. A vehicle
    /// repeats its last node in every state, so only a different one is
    /// progress (and names a newly sent part of the job).
    last_node: Option<String>,
    /// Whether the device has shown it holds the job (or its latest
    /// extension) since it was sent: it reached a new node of it, or
    /// listed the action of its newest stop.
    acknowledged: bool,
}

impl JobInFlight {
    /// Counts a move as progress once it reaches [`JOB_PROGRESS_MOVE_MM`]
    /// from where a move last counted (the first position reported on the
    /// job only sets where to measure from).
    fn moved_to(&mut self, position: &DevicePosition) {
        if let Some(from) = &self.progress_position {
            if !is_progress_move(from, position) {
                return;
            }
            self.last_progress = Instant::now();
        }
        self.progress_position = Some((position.map_id.clone(), position.x_mm, position.y_mm));
    }
}

/// Whether going from `from` (map, x, y) to `to` is a move of at least
/// [`JOB_PROGRESS_MOVE_MM`] along an axis, or onto another map.
fn is_progress_move((map_id, x_mm, y_mm): &(String, i64, i64), to: &DevicePosition) -> bool {
    *map_id != to.map_id
        || x_mm.abs_diff(to.x_mm) >= JOB_PROGRESS_MOVE_MM.unsigned_abs()
        || y_mm.abs_diff(to.y_mm) >= JOB_PROGRESS_MOVE_MM.unsigned_abs()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Driving to the pick location and picking.
    ToPick,
    /// Carrying the units to the pack station.
    ToPack,
    /// Dropped; waiting for the job to finish.
    Finishing,
}

/// What the bus keeps per device.
struct DeviceRuntime {
    /// The kernel's view of it (from the last floor read).
    device: Device,
    /// The driver version its namespace was computed with.
    driver: Option<PluginRef>,
    /// The store's driver for it and its configuration, as of the last
    /// floor read (a version swap takes effect at the next read).
    decoder: Option<(DriverPlugin, Arc<str>)>,
    /// What the driver is told about it.
    info: DeviceInfo,
    /// Its topic prefix and subscriptions.
    namespace: String,
    subscriptions: Vec<String>,
    /// The driver's memory of it.
    memory: Vec<u8>,
    position: Option<DevicePosition>,
    battery_permille: Option<u16>,
    charging: bool,
    operating_mode: Option<String>,
    paused: bool,
    driving: bool,
    errors: Vec<DeviceError>,
    last_seen_ms: Option<u64>,
    job: Option<JobInFlight>,
    /// An assignment submitted and not answered.
    assigning: bool,
    /// A task the bus ended on its own (released, or finished after a
    /// restart) that the kernel may still show the device holding until
    /// the next floor read.
    releasing: Option<TaskId>,
    /// A link change submitted and not answered.
    reporting_online: Option<bool>,
    /// A quarantine submitted (faults stop all traffic at once).
    quarantining: bool,
    /// Token bucket for commands.
    tokens: f64,
    tokens_at: Instant,
    frames_in: u64,
    frames_malformed: u64,
    commands_sent: u64,
}

/// A store's floor, as last read from its shard.
struct FloorView {
    /// Devices.
    devices: BTreeMap<DeviceId, Device>,
    /// The oldest pending tasks.
    pending: Vec<Task>,
    /// Tasks held by devices.
    held: BTreeMap<TaskId, Task>,
    /// Held zones.
    stopped: BTreeSet<(WarehouseId, ZoneId)>,
    /// The store's driver plugins: version pin and configuration.
    drivers: BTreeMap<PluginId, (Option<String>, Arc<str>)>,
}

/// The worker.
pub(crate) struct BusCore {
    node: Arc<Node>,
    plugins: PluginSet,
    link: MqttLink,
    settings: BusSettings,
    counters: Arc<BusCounters>,
    devices: HashMap<DeviceKey, DeviceRuntime>,
    by_namespace: HashMap<String, DeviceKey>,
    drivers: HashMap<PluginRef, DeviceDriver>,
    floors: BTreeMap<StoreId, FloorView>,
    results: Sender<CommandResult>,
    results_rx: Receiver<CommandResult>,
    published: Arc<Mutex<Arc<Vec<DeviceStatus>>>>,
    empty_state: Arc<PluginStateMap>,
    malformed_logged: (Instant, u32),
}

impl BusCore {
    pub(crate) fn new(
        node: Arc<Node>,
        plugins: PluginSet,
        link: MqttLink,
        settings: BusSettings,
        counters: Arc<BusCounters>,
        published: Arc<Mutex<Arc<Vec<DeviceStatus>>>>,
    ) -> Self {
        let (results, results_rx) = crossbeam_channel::unbounded();
        Self {
            node,
            plugins,
            link,
            settings,
            counters,
            devices: HashMap::new(),
            by_namespace: HashMap::new(),
            drivers: HashMap::new(),
            floors: BTreeMap::new(),
            results,
            results_rx,
            published,
            empty_state: Arc::default(),
            malformed_logged: (Instant::now(), 0),
        }
    }

    /// Runs until told to stop or every sender is gone.
    pub(crate) fn run(mut self, inbound: Receiver<Inbound>, control: Receiver<Control>) {
        let interval = Duration::from_millis(self.settings.dispatch_interval_ms.max(1));
        let mut next_round = Instant::now();
        loop {
            let timeout = next_round.saturating_duration_since(Instant::now());
            crossbeam_channel::select! {
                recv(inbound) -> message => match message {
                    Ok(Inbound::Frame { topic, payload }) => self.handle_frame(&topic, &payload),
                    Ok(Inbound::Connected) => {}
                    Err(_) => return,
                },
                recv(self.results_rx.clone()) -> result => {
                    if let Ok(result) = result {
                        self.handle_result(result);
                    }
                }
                recv(control) -> message => match message {
                    Ok(Control::Zone { store, warehouse, zone, stopped, reply }) => {
                        self.set_zone(store, warehouse, zone, stopped, reply);
                    }
                    Ok(Control::Stop) | Err(_) => return,
                },
                default(timeout) => {}
            }
            if Instant::now() >= next_round {
                self.round();
                next_round = Instant::now() + interval;
            }
        }
    }

    /// One dispatch round: reread the floor, reconcile, time out stuck
    /// jobs, assign pending tasks, publish the fleet for the API.
    pub(crate) fn round(&mut self) {
        self.refresh();
        self.reconcile();
        self.expire_jobs();
        self.dispatch();
        self.publish_status();
    }

    /// Reads every store's floor and brings the device table in line.
    fn refresh(&mut self) {
        let read = self.node.read_all(|shard| {
            shard
                .stores()
                .iter()
                .filter(|(_, state)| !state.floor().devices().is_empty())
                .map(|(id, state)| {
                    let floor = state.floor();
                    let held = floor
                        .devices()
                        .values()
                        .filter_map(|device| device.task)
                        .filter_map(|task| floor.task(task).cloned())
                        .map(|task| (task.id, task))
                        .collect();
                    let drivers = floor
                        .devices()
                        .values()
                        .map(|device| &device.spec.driver)
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .filter_map(|driver| {
                            let config = state.plugin_configs().get(driver)?;
                            Some((
                                driver.clone(),
                                (
                                    config.settings.version_pin.clone(),
                                    Arc::<str>::from(config.json.as_str()),
                                ),
                            ))
                        })
                        .collect();
                    (
                        id.clone(),
                        FloorView {
                            devices: floor.devices().clone(),
                            pending: floor
                                .pending()
                                .take(PENDING_TASKS_READ_MAX)
                                .cloned()
                                .collect(),
                            held,
                            stopped: floor.stopped_zones().clone(),
                            drivers,
                        },
                    )
                })
                .collect::<Vec<_>>()
        });
        let Ok(read) = read else { return };
        self.floors = read.into_iter().flatten().collect();
        let mut present = BTreeSet::new();
        let stores: Vec<StoreId> = self.floors.keys().cloned().collect();
        for store in stores {
            let devices: Vec<Device> = self.floors[&store].devices.values().cloned().collect();
            for device in devices {
                let key = (store.clone(), device.spec.id.clone());
                present.insert(key.clone());
                self.track(key, device);
            }
        }
        let gone: Vec<DeviceKey> =
            self.devices.keys().filter(|key| !present.contains(*key)).cloned().collect();
        for key in gone {
            if let Some(runtime) = self.devices.remove(&key) {
                self.by_namespace.remove(&runtime.namespace);
                self.link.unsubscribe(&runtime.subscriptions);
            }
        }
        // A version no device runs any more (swapped, rolled back, removed)
        // is dropped with its instance, as on the shard writers.
        let in_use: std::collections::HashSet<&PluginRef> =
            self.devices.values().filter_map(|runtime| runtime.driver.as_ref()).collect();
        self.drivers.retain(|plugin, _| in_use.contains(plugin));
    }

    /// Adds or updates a device from the kernel's view, (re)computing its
    /// namespace when its driver version changed.
    fn track(&mut self, key: DeviceKey, device: Device) {
        let decoder = self.driver_for(&key.0, &device.spec.driver);
        let driver = decoder.as_ref().map(|(plugin, _)| plugin.clone());
        let driver_ref = driver.as_ref().map(|plugin| plugin.plugin_ref().clone());
        let known = self.devices.get(&key).map(|runtime| runtime.driver.clone());
        if let Some(runtime) = self.devices.get_mut(&key) {
            if runtime.device.spec != device.spec {
                runtime.info = device_info(&device);
            }
            runtime.device = device.clone();
            runtime.decoder = decoder.clone();
        }
        if known.as_ref() == Some(&driver_ref) {
            return;
        }
        // New device, or its driver version changed (hot swap): ask the
        // driver where its traffic is.
        let info = device_info(&device);
        let mut namespace = String::new();
        let mut subscriptions = Vec::new();
        if let Some(plugin) = &driver {
            let config = self.config_for(&key.0, &device.spec.driver);
            let call = self.call(&key.0, config.clone());
            let instance = self.instance(plugin);
            match instance.namespace(call, &info).result {
                Ok(text) => namespace = text,
                Err(error) => {
                    self.fault(&key, &device, &format!("namespace: {error}"));
                }
            }
            if !namespace.is_empty() {
                let call = self.call(&key.0, config);
                match self.instance(plugin).subscriptions(call, &info).result {
                    Ok(topics) => {
                        if let Some(outside) =
                            topics.iter().find(|topic| !topic.starts_with(&namespace))
                        {
                            self.fault(
                                &key,
                                &device,
                                &format!("subscription {outside} is outside {namespace}"),
                            );
                            namespace.clear();
                        } else {
                            subscriptions = topics;
                        }
                    }
                    Err(error) => {
                        self.fault(&key, &device, &format!("subscriptions: {error}"));
                        namespace.clear();
                    }
                }
            }
        }
        if let Some(other) = self.by_namespace.get(&namespace)
            && !namespace.is_empty()
            && other != &key
        {
            tracing::warn!(
                store = %key.0, device = %key.1, namespace,
                "another device already uses this namespace; the device is not connected to the bus"
            );
            namespace.clear();
            subscriptions.clear();
        }
        let runtime = self.devices.entry(key.clone()).or_insert_with(|| DeviceRuntime {
            device: device.clone(),
            driver: None,
            decoder: None,
            info: device_info(&device),
            namespace: String::new(),
            subscriptions: Vec::new(),
            memory: Vec::new(),
            position: None,
            battery_permille: None,
            charging: false,
            operating_mode: None,
            paused: false,
            driving: false,
            errors: Vec::new(),
            last_seen_ms: None,
            job: None,
            assigning: false,
            releasing: None,
            reporting_online: None,
            quarantining: false,
            tokens: f64::from(self.settings.device_commands_per_second),
            tokens_at: Instant::now(),
            frames_in: 0,
            frames_malformed: 0,
            commands_sent: 0,
        });
        if runtime.driver.is_some() && runtime.driver != driver_ref {
            // Another version keeps its own memory of the device: the old
            // one's may mean nothing to it.
            runtime.memory.clear();
        }
        runtime.driver = driver_ref;
        runtime.decoder = decoder;
        runtime.info = device_info(&device);
        if runtime.namespace != namespace {
            self.by_namespace.remove(&runtime.namespace);
            self.link.unsubscribe(&runtime.subscriptions);
        }
        runtime.namespace = namespace.clone();
        runtime.subscriptions = subscriptions.clone();
        if !namespace.is_empty() {
            self.by_namespace.insert(namespace, key);
            self.link.subscribe(&subscriptions);
        }
    }

    /// The driver plugin version the store runs for `driver`, and its
    /// configuration.
    fn driver_for(&self, store: &StoreId, driver: &PluginId) -> Option<(DriverPlugin, Arc<str>)> {
        let (pin, config) = self.floors.get(store)?.drivers.get(driver)?.clone();
        let view = self.plugins.view();
        let installed =
            view.plugins.get(driver).filter(|plugin| plugin.kind == PluginKind::DeviceDriver)?;
        let version = pin.or_else(|| installed.active.clone())?;
        match installed.versions.get(&version)?.as_ref() {
            Implementation::Driver(plugin) => Some((plugin.clone(), config)),
            _ => None,
        }
    }

    fn config_for(&self, store: &StoreId, driver: &PluginId) -> Option<Arc<str>> {
        Some(self.floors.get(store)?.drivers.get(driver)?.1.clone())
    }

    fn call(&self, store: &StoreId, config: Option<Arc<str>>) -> PluginCall {
        PluginCall {
            store: store.clone(),
            config_json: config,
            state: self.empty_state.clone(),
            now_ms: wall_clock_ms(),
            random_seed: 0,
        }
    }

    fn instance(&mut self, plugin: &DriverPlugin) -> &mut DeviceDriver {
        self.drivers.entry(plugin.plugin_ref().clone()).or_insert_with(|| plugin.driver())
    }

    /// Decodes one inbound frame through its device's driver and applies
    /// what it says.
    pub(crate) fn handle_frame(&mut self, topic: &str, payload: &[u8]) {
        self.counters.frames_in.fetch_add(1, Ordering::Relaxed);
        let Some(key) =
            topic.rfind('/').and_then(|slash| self.by_namespace.get(&topic[..=slash])).cloned()
        else {
            self.counters.frames_unrouted.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(runtime) = self.devices.get_mut(&key) else { return };
        runtime.frames_in += 1;
        runtime.last_seen_ms = Some(wall_clock_ms());
        if runtime.device.quarantine.is_some() || runtime.quarantining {
            return;
        }
        if payload.len() > INBOUND_PAYLOAD_BYTES_MAX {
            // The device's fault, not the driver's: never handed over.
            runtime.frames_malformed += 1;
            self.counters.frames_malformed.fetch_add(1, Ordering::Relaxed);
            let reason = format!(
                "{} bytes, more than the {INBOUND_PAYLOAD_BYTES_MAX} a driver is handed",
                payload.len()
            );
            self.log_malformed(&key, topic, &reason);
            return;
        }
        let Some((plugin, config)) = runtime.decoder.clone() else { return };
        let memory = std::mem::take(&mut runtime.memory);
        let call = PluginCall {
            store: key.0.clone(),
            config_json: Some(config),
            state: self.empty_state.clone(),
            now_ms: wall_clock_ms(),
            random_seed: 0,
        };
        let runtime = &self.devices[&key];
        let context = DeviceContext {
            device: &runtime.info,
            memory: &memory,
            now_ms: call.now_ms,
            position: runtime.position.as_ref(),
        };
        let outcome = match self.drivers.get_mut(plugin.plugin_ref()) {
            Some(instance) => instance.decode(call, context, topic, payload),
            None => {
                let mut instance = plugin.driver();
                let outcome = instance.decode(call, context, topic, payload);
                self.drivers.insert(plugin.plugin_ref().clone(), instance);
                outcome
            }
        };
        match outcome.result {
            Ok(Ok(decoded)) => self.apply_events(&key, decoded.memory, decoded.events),
            Ok(Err(DriverRefusal::Malformed(reason))) => {
                if let Some(runtime) = self.devices.get_mut(&key) {
                    runtime.memory = memory;
                    runtime.frames_malformed += 1;
                }
                self.counters.frames_malformed.fetch_add(1, Ordering::Relaxed);
                self.log_malformed(&key, topic, &reason);
            }
            Ok(Err(DriverRefusal::Unsupported(reason))) => {
                if let Some(runtime) = self.devices.get_mut(&key) {
                    runtime.memory = memory;
                }
                tracing::warn!(store = %key.0, device = %key.1, topic, reason, "the driver could not read a frame");
            }
            Err(error) => {
                let device = self.devices[&key].device.clone();
                self.fault(&key, &device, &format!("decode: {error}"));
            }
        }
    }

    /// Applies what a frame said: telemetry in place, in one look-up of
    /// the device; the rest (links, task steps) one by one.
    fn apply_events(&mut self, key: &DeviceKey, memory: Vec<u8>, events: Vec<DeviceEvent>) {
        self.counters.events_applied.fetch_add(events.len() as u64, Ordering::Relaxed);
        let Some(runtime) = self.devices.get_mut(key) else { return };
        runtime.memory = memory;
        let mut decisions = Vec::new();
        for event in events {
            match event {
                DeviceEvent::Position(position) => {
                    if let Some(job) = runtime.job.as_mut() {
                        job.moved_to(&position);
                    }
                    runtime.position = Some(position);
                }
                DeviceEvent::Battery { charge_permille, charging } => {
                    runtime.battery_permille = Some(charge_permille);
                    runtime.charging = charging;
                }
                DeviceEvent::OperatingMode(mode) => {
                    if runtime.operating_mode.as_deref() != Some(mode.as_str()) {
                        runtime.operating_mode = Some(mode);
                    }
                }
                DeviceEvent::Paused(paused) => runtime.paused = paused,
                DeviceEvent::Driving(driving) => runtime.driving = driving,
                other => decisions.push(other),
            }
        }
        for event in decisions {
            self.apply_event(key, event);
        }
    }

    fn log_malformed(&mut self, key: &DeviceKey, topic: &str, reason: &str) {
        let (since, lines) = &mut self.malformed_logged;
        if since.elapsed() >= Duration::from_secs(1) {
            *since = Instant::now();
            *lines = 0;
        }
        if *lines < MALFORMED_LOG_LINES_PER_SECOND {
            *lines += 1;
            tracing::warn!(store = %key.0, device = %key.1, topic, reason, "malformed device message dropped");
        }
    }

    /// A driver fault: the device is quarantined, nothing more is sent to
    /// it or read from it, and the bus carries on.
    fn fault(&mut self, key: &DeviceKey, device: &Device, reason: &str) {
        self.counters.driver_faults.fetch_add(1, Ordering::Relaxed);
        tracing::error!(store = %key.0, device = %key.1, driver = %device.spec.driver, reason, "driver fault; quarantining the device");
        if let Some(runtime) = self.devices.get_mut(key) {
            if runtime.quarantining {
                return;
            }
            runtime.quarantining = true;
            runtime.job = None;
        }
        let reason: String = reason.chars().take(200).collect();
        self.submit(
            Command::QuarantineDevice {
                store: key.0.clone(),
                device: key.1.clone(),
                reason: Some(format!("driver fault: {reason}")),
                at_ms: wall_clock_ms(),
            },
            Purpose::Quarantine { key: key.clone() },
        );
    }

    /// Applies one event that may lead to a decision (the telemetry ones
    /// are applied in place by `apply_events`).
    fn apply_event(&mut self, key: &DeviceKey, event: DeviceEvent) {
        let Some(runtime) = self.devices.get_mut(key) else { return };
        match event {
            DeviceEvent::Position(_)
            | DeviceEvent::Battery { .. }
            | DeviceEvent::OperatingMode(_)
            | DeviceEvent::Paused(_)
            | DeviceEvent::Driving(_) => {}
            DeviceEvent::Errors(errors) => {
                let fatal = errors.iter().any(|error| error.level == ErrorLevel::Fatal);
                runtime.errors = errors;
                if fatal && runtime.job.is_some() {
                    // A fatal error needs a person: the task goes to
                    // another robot now rather than after a timeout.
                    self.abandon(key, "the device reported a fatal error");
                }
            }
            DeviceEvent::Connection(state) => {
                let online = state == ConnectionState::Online;
                if runtime.device.online != online && runtime.reporting_online != Some(online) {
                    runtime.reporting_online = Some(online);
                    if !online {
                        runtime.job = None;
                    }
                    self.submit(
                        Command::DeviceConnection {
                            store: key.0.clone(),
                            device: key.1.clone(),
                            online,
                            at_ms: wall_clock_ms(),
                        },
                        Purpose::Link { key: key.clone() },
                    );
                }
            }
            DeviceEvent::NodeReached { job_id, node_id } => {
                // Only a node the job has not seen yet: the same node in
                // every state while the device waits there (for an
                // extension that never came, say) is neither progress nor
                // a sign that it holds the extension.
                if let Some(job) = runtime.job.as_mut()
                    && job.job_id == job_id
                    && job.last_node.as_deref() != Some(node_id.as_str())
                {
                    job.last_node = Some(node_id);
                    job.last_progress = Instant::now();
                    job.acknowledged = true;
                }
            }
            DeviceEvent::Action { job_id, action_id, status } => {
                self.action(key, &job_id, &action_id, status);
            }
            DeviceEvent::JobFinished(job_id) => self.job_finished(key, &job_id),
        }
    }

    fn action(&mut self, key: &DeviceKey, job_id: &str, action_id: &str, status: ActionStatus) {
        let Some(runtime) = self.devices.get_mut(key) else { return };
        let Some(job) = runtime.job.as_mut().filter(|job| job.job_id == job_id) else { return };
        let (expected_phase, step) = if action_id == pick_action_id(job) {
            (Phase::ToPick, TaskStep::Picked)
        } else if action_id == drop_action_id(job) {
            (Phase::ToPack, TaskStep::Dropped)
        } else {
            return;
        };
        if job.phase != expected_phase {
            return;
        }
        job.acknowledged = true;
        match status {
            ActionStatus::Waiting | ActionStatus::Running => {}
            ActionStatus::Finished => {
                if job.awaiting.is_none() {
                    job.awaiting = Some(step);
                    job.last_progress = Instant::now();
                    let command = Command::ProgressTask {
                        store: key.0.clone(),
                        task: job.task.id,
                        attempt: job.attempt,
                        step,
                        at_ms: wall_clock_ms(),
                    };
                    let task = job.task.id;
                    self.submit(command, Purpose::Step { key: key.clone(), task, step });
                }
            }
            ActionStatus::Failed => {
                let reason = format!("the device failed its {step:?} action");
                self.abandon(key, &reason);
            }
        }
    }

    fn job_finished(&mut self, key: &DeviceKey, job_id: &str) {
        let Some(runtime) = self.devices.get_mut(key) else { return };
        let Some(job) = runtime.job.as_mut().filter(|job| job.job_id == job_id) else { return };
        if job.phase != Phase::Finishing || job.awaiting.is_some() {
            return;
        }
        job.awaiting = Some(TaskStep::Done);
        let command = Command::ProgressTask {
            store: key.0.clone(),
            task: job.task.id,
            attempt: job.attempt,
            step: TaskStep::Done,
            at_ms: wall_clock_ms(),
        };
        let task = job.task.id;
        self.submit(command, Purpose::Step { key: key.clone(), task, step: TaskStep::Done });
    }

    /// Gives up the device's job: the task is released for another robot
    /// and the device told to cancel.
    fn abandon(&mut self, key: &DeviceKey, reason: &str) {
        let Some(runtime) = self.devices.get_mut(key) else { return };
        let Some(job) = runtime.job.take() else { return };
        runtime.releasing = Some(job.task.id);
        self.counters.tasks_released.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(store = %key.0, device = %key.1, task = job.task.id, reason, "task taken back from the device");
        self.submit(
            Command::ReleaseTask {
                store: key.0.clone(),
                task: job.task.id,
                attempt: job.attempt,
                reason: reason.to_owned(),
                at_ms: wall_clock_ms(),
            },
            Purpose::Other,
        );
        self.send(key, &DeviceCommand::CancelJob, true);
    }

    fn handle_result(&mut self, result: CommandResult) {
        // Every task the kernel finished is counted here, once: by the
        // device's `Done` (whether or not the bus still holds the job: one
        // dropped by a reconnect while its completion was in flight is done
        // all the same), or by a change that found the device gone with its
        // units already at the pack station.
        if matches!(
            (&result.purpose, &result.result),
            (Purpose::Step { step: TaskStep::Done, .. }, Ok(_))
                | (_, Ok(Outcome::DeviceUpdated { finished: Some(_), .. }))
        ) {
            self.counters.tasks_done.fetch_add(1, Ordering::Relaxed);
        }
        match (result.purpose, result.result) {
            (Purpose::Assign { key, task }, Ok(Outcome::TaskAssigned { attempt, .. })) => {
                self.counters.tasks_assigned.fetch_add(1, Ordering::Relaxed);
                let Some(runtime) = self.devices.get_mut(&key) else { return };
                runtime.assigning = false;
                let job_id = format!("task-{}-{attempt}", task.id);
                let job = JobInFlight {
                    task: *task,
                    attempt,
                    job_id,
                    phase: Phase::ToPick,
                    awaiting: None,
                    last_progress: Instant::now(),
                    progress_position: None,
                    last_node: None,
                    acknowledged: false,
                };
                let command = DeviceCommand::StartJob(Job {
                    job_id: job.job_id.clone(),
                    update: 0,
                    stops: vec![Stop {
                        node: map_node(&job.task.pick, &job.task.map_id),
                        action: Some(StopAction {
                            kind: ActionKind::Pick,
                            action_id: pick_action_id(&job),
                            load_id: job.task.sku.to_string(),
                            station: job.task.pick.id.to_string(),
                        }),
                    }],
                });
                runtime.job = Some(job);
                if !self.send(&key, &command, false) {
                    self.abandon(&key, "the job could not be sent to the device");
                }
            }
            (Purpose::Assign { key, .. }, refused) => {
                if let Some(runtime) = self.devices.get_mut(&key) {
                    runtime.assigning = false;
                }
                tracing::debug!(store = %key.0, device = %key.1, ?refused, "assignment refused");
            }
            (Purpose::Step { key, task, step }, Ok(_)) => {
                let Some(runtime) = self.devices.get_mut(&key) else { return };
                let Some(job) = runtime.job.as_mut().filter(|job| job.task.id == task) else {
                    return;
                };
                job.awaiting = None;
                job.last_progress = Instant::now();
                match step {
                    TaskStep::Picked => {
                        job.phase = Phase::ToPack;
                        job.acknowledged = false;
                        let command = DeviceCommand::ExtendJob(Job {
                            job_id: job.job_id.clone(),
                            update: 1,
                            stops: vec![Stop {
                                node: map_node(&job.task.pack_station, &job.task.map_id),
                                action: Some(StopAction {
                                    kind: ActionKind::Drop,
                                    action_id: drop_action_id(job),
                                    load_id: job.task.sku.to_string(),
                                    station: job.task.pack_station.id.to_string(),
                                }),
                            }],
                        });
                        if !self.send(&key, &command, false) {
                            self.abandon(&key, "the order update could not be sent to the device");
                        }
                    }
                    TaskStep::Dropped => job.phase = Phase::Finishing,
                    TaskStep::Done => runtime.job = None,
                }
            }
            (Purpose::Step { key, task, step }, Err(error)) => {
                let Some(runtime) = self.devices.get_mut(&key) else { return };
                let Some(job) = runtime.job.as_mut().filter(|job| job.task.id == task) else {
                    return;
                };
                job.awaiting = None;
                if matches!(error, NodeError::Kernel(_)) {
                    // The kernel no longer gives the device this attempt
                    // (released, cancelled): drop the job; reconciliation
                    // cancels it on the device.
                    tracing::debug!(store = %key.0, device = %key.1, task, ?step, %error, "step refused");
                    runtime.job = None;
                    self.send(&key, &DeviceCommand::CancelJob, true);
                }
                // Otherwise (queue full) the device's next state repeats
                // the step and it is submitted again.
            }
            (Purpose::Link { key }, result) => {
                if let Some(runtime) = self.devices.get_mut(&key) {
                    if let (Ok(_), Some(online)) = (&result, runtime.reporting_online) {
                        runtime.device.online = online;
                    }
                    runtime.reporting_online = None;
                }
            }
            (Purpose::Quarantine { key }, result) => {
                if let Some(runtime) = self.devices.get_mut(&key) {
                    runtime.quarantining = false;
                    if result.is_ok() {
                        // Until the next floor read shows it.
                        runtime.device.quarantine = Some(bazaar_kernel::device::Quarantine {
                            reason: "driver fault".into(),
                            at_ms: wall_clock_ms(),
                        });
                        runtime.device.task = None;
                    }
                }
            }
            (Purpose::Other, Err(error)) => {
                tracing::debug!(%error, "device bus command refused");
            }
            (Purpose::Other, Ok(_)) => {}
        }
    }

    /// Repairs differences between the jobs the bus runs and the tasks the
    /// kernel gives devices.
    fn reconcile(&mut self) {
        let keys: Vec<DeviceKey> = self.devices.keys().cloned().collect();
        for key in keys {
            let runtime = self.devices.get_mut(&key).expect("tracked");
            if runtime.device.quarantine.is_some() || runtime.quarantining {
                runtime.job = None;
                continue;
            }
            if runtime.releasing.is_some() && runtime.releasing != runtime.device.task {
                runtime.releasing = None;
            }
            let runtime = &self.devices[&key];
            let kernel_task = runtime.device.task;
            match (&runtime.job, kernel_task) {
                (Some(job), Some(task)) if job.task.id == task => {}
                (Some(job), _) => {
                    if job.awaiting.is_some() || runtime.assigning {
                        continue;
                    }
                    // The kernel took the task away (order cancelled or
                    // fulfilled by hand, released): stop the robot's job.
                    self.devices.get_mut(&key).expect("tracked").job = None;
                    self.send(&key, &DeviceCommand::CancelJob, true);
                }
                (None, Some(task)) if !runtime.assigning && runtime.releasing.is_none() => {
                    // A task the bus runs no job for: the node restarted
                    // while the device held it. Offer it again.
                    let Some(held) = self.floors.get(&key.0).and_then(|f| f.held.get(&task)) else {
                        continue;
                    };
                    if matches!(held.status, TaskStatus::Assigned | TaskStatus::Picked) {
                        let attempt = held.attempt;
                        self.submit(
                            Command::ReleaseTask {
                                store: key.0.clone(),
                                task,
                                attempt,
                                reason: "the node restarted while the device held it".into(),
                                at_ms: wall_clock_ms(),
                            },
                            Purpose::Other,
                        );
                    } else if held.status == TaskStatus::Dropped {
                        let attempt = held.attempt;
                        self.submit(
                            Command::ProgressTask {
                                store: key.0.clone(),
                                task,
                                attempt,
                                step: TaskStep::Done,
                                at_ms: wall_clock_ms(),
                            },
                            Purpose::Other,
                        );
                    }
                    if self.devices[&key].device.online {
                        self.send(&key, &DeviceCommand::CancelJob, true);
                    }
                    // Not again until the floor shows the release.
                    self.devices.get_mut(&key).expect("tracked").releasing = Some(task);
                }
                _ => {}
            }
        }
    }

    /// Takes back jobs the device did not acknowledge in time, or made no
    /// progress on for too long.
    fn expire_jobs(&mut self) {
        let progress_timeout = Duration::from_millis(self.settings.job_progress_timeout_ms);
        let accept_timeout = Duration::from_millis(self.settings.job_accept_timeout_ms);
        let stale: Vec<(DeviceKey, &'static str)> = self
            .devices
            .iter_mut()
            .filter_map(|(key, runtime)| {
                let job = runtime.job.as_mut()?;
                if runtime.paused {
                    // Time paused (an emergency stop) is not a lack of progress.
                    job.last_progress = Instant::now();
                    return None;
                }
                if job.awaiting.is_some() {
                    return None;
                }
                let idle = job.last_progress.elapsed();
                if !job.acknowledged && idle > accept_timeout {
                    Some((key.clone(), "the device did not take the job (see its errors)"))
                } else if idle > progress_timeout {
                    Some((key.clone(), "the device made no progress in time"))
                } else {
                    None
                }
            })
            .collect();
        for (key, reason) in stale {
            self.abandon(&key, reason);
        }
    }

    /// Offers pending tasks to the nearest free robot of their warehouse.
    fn dispatch(&mut self) {
        let stores: Vec<StoreId> = self.floors.keys().cloned().collect();
        for store in stores {
            let floor = &self.floors[&store];
            if floor.pending.is_empty() {
                continue;
            }
            let pending = floor.pending.clone();
            let stopped = floor.stopped.clone();
            let mut free: Vec<DeviceKey> = self
                .devices
                .iter()
                .filter(|((owner, _), runtime)| {
                    owner == &store
                        && runtime.device.is_available()
                        && runtime.job.is_none()
                        && !runtime.assigning
                        && !runtime.paused
                        && !runtime.namespace.is_empty()
                        // Nearest first needs to know where it is, and a job
                        // starts where the device says it stands.
                        && runtime.position.is_some()
                        // A fatal error needs a person before more work.
                        && !runtime.errors.iter().any(|error| error.level == ErrorLevel::Fatal)
                        && !stopped.contains(&(
                            runtime.device.spec.warehouse.clone(),
                            runtime.device.spec.zone.clone(),
                        ))
                })
                .map(|(key, _)| key.clone())
                .collect();
            for task in pending {
                let nearest = free
                    .iter()
                    .enumerate()
                    .filter(|(_, key)| self.devices[*key].device.spec.warehouse == task.warehouse)
                    .min_by_key(|(_, key)| {
                        distance_squared(self.devices[*key].position.as_ref(), &task.pick)
                    })
                    .map(|(index, _)| index);
                let Some(index) = nearest else { continue };
                let key = free.swap_remove(index);
                if !self.take_token(&key) {
                    continue;
                }
                self.devices.get_mut(&key).expect("tracked").assigning = true;
                self.submit(
                    Command::AssignTask {
                        store: store.clone(),
                        task: task.id,
                        device: key.1.clone(),
                        at_ms: wall_clock_ms(),
                    },
                    Purpose::Assign { key, task: Box::new(task) },
                );
                if free.is_empty() {
                    break;
                }
            }
        }
    }

    /// Holds or frees a zone: the pauses go out first (safety before
    /// bookkeeping), then the zone's state is journaled.
    fn set_zone(
        &mut self,
        store: StoreId,
        warehouse: WarehouseId,
        zone: ZoneId,
        stopped: bool,
        reply: Box<dyn FnOnce(Result<usize, NodeError>) + Send>,
    ) {
        let command = if stopped { DeviceCommand::Pause } else { DeviceCommand::Resume };
        let keys: Vec<DeviceKey> = self
            .devices
            .iter()
            .filter(|((owner, _), runtime)| {
                owner == &store
                    && runtime.device.spec.warehouse == warehouse
                    && runtime.device.spec.zone == zone
            })
            .map(|(key, _)| key.clone())
            .collect();
        let mut commanded = 0;
        for key in &keys {
            if self.send(key, &command, true) {
                commanded += 1;
            }
        }
        let result = self.node.submit_command(
            Command::StopZone { store, warehouse, zone, stopped, at_ms: wall_clock_ms() },
            Box::new(move |result| reply(result.map(|_| commanded))),
        );
        if let Err(error) = result {
            tracing::error!(%error, "the zone change could not be journaled");
        }
    }

    /// Encodes `command` through the device's driver and publishes it;
    /// `safety` commands (pause, resume, cancel) skip the rate limit.
    /// Returns whether every frame was handed to the client.
    fn send(&mut self, key: &DeviceKey, command: &DeviceCommand, safety: bool) -> bool {
        let Some(runtime) = self.devices.get(key) else { return false };
        if runtime.device.quarantine.is_some()
            || runtime.quarantining
            || runtime.namespace.is_empty()
        {
            return false;
        }
        if !safety && !self.take_token(key) {
            return false;
        }
        let runtime = &self.devices[key];
        let device = runtime.device.clone();
        let namespace = runtime.namespace.clone();
        let Some((plugin, config)) = self.driver_for(&key.0, &device.spec.driver) else {
            return false;
        };
        let call = self.call(&key.0, Some(config));
        let info = device_info(&device);
        let memory = std::mem::take(&mut self.devices.get_mut(key).expect("tracked").memory);
        let position = self.devices[key].position.clone();
        let context = DeviceContext {
            device: &info,
            memory: &memory,
            now_ms: call.now_ms,
            position: position.as_ref(),
        };
        let outcome = self.instance(&plugin).encode(call, context, command);
        let encoded = match outcome.result {
            Ok(Ok(encoded)) => encoded,
            Ok(Err(refusal)) => {
                self.devices.get_mut(key).expect("tracked").memory = memory;
                tracing::warn!(store = %key.0, device = %key.1, ?refusal, "the driver cannot express a command");
                return false;
            }
            Err(error) => {
                self.fault(key, &device, &format!("encode: {error}"));
                return false;
            }
        };
        if let Some(outside) =
            encoded.frames.iter().find(|frame| !frame.topic.starts_with(&namespace))
        {
            let reason = format!("frame topic {} is outside {namespace}", outside.topic);
            self.fault(key, &device, &reason);
            return false;
        }
        let runtime = self.devices.get_mut(key).expect("tracked");
        runtime.memory = encoded.memory;
        runtime.commands_sent += 1;
        let mut delivered = true;
        for frame in encoded.frames {
            match self.link.publish(&frame.topic, frame.payload, frame.qos, frame.retain) {
                Ok(()) => {
                    self.counters.frames_out.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    delivered = false;
                    self.counters.publish_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(store = %key.0, device = %key.1, %error, "frame not published");
                }
            }
        }
        delivered
    }

    /// Takes one command token from the device's bucket.
    fn take_token(&mut self, key: &DeviceKey) -> bool {
        let rate = f64::from(self.settings.device_commands_per_second.max(1));
        let Some(runtime) = self.devices.get_mut(key) else { return false };
        let now = Instant::now();
        runtime.tokens =
            (runtime.tokens + now.duration_since(runtime.tokens_at).as_secs_f64() * rate).min(rate);
        runtime.tokens_at = now;
        if runtime.tokens >= 1.0 {
            runtime.tokens -= 1.0;
            true
        } else {
            self.counters.commands_rate_limited.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    fn submit(&self, command: Command, purpose: Purpose) {
        let results = self.results.clone();
        let (reply_purpose, reply_results) = (Arc::new(Mutex::new(Some(purpose))), results.clone());
        let taken = reply_purpose.clone();
        let result = self.node.submit_command(
            command,
            Box::new(move |result| {
                if let Some(purpose) = taken.lock().unwrap_or_else(PoisonError::into_inner).take() {
                    let _ = reply_results.send(CommandResult { purpose, result });
                }
            }),
        );
        if let Err(error) = result
            && let Some(purpose) =
                reply_purpose.lock().unwrap_or_else(PoisonError::into_inner).take()
        {
            let _ = results.send(CommandResult { purpose, result: Err(error) });
        }
    }

    fn publish_status(&self) {
        let mut statuses: Vec<DeviceStatus> = self
            .devices
            .iter()
            .map(|((store, _), runtime)| DeviceStatus {
                store: store.clone(),
                device: runtime.device.clone(),
                driver_version: runtime.driver.as_ref().map(|plugin| plugin.version.clone()),
                position: runtime.position.clone(),
                battery_permille: runtime.battery_permille,
                charging: runtime.charging,
                operating_mode: runtime.operating_mode.clone(),
                paused: runtime.paused,
                driving: runtime.driving,
                errors: runtime.errors.clone(),
                last_seen_ms: runtime.last_seen_ms,
                job: runtime.job.as_ref().map(|job| job.job_id.clone()),
                frames_in: runtime.frames_in,
                frames_malformed: runtime.frames_malformed,
                commands_sent: runtime.commands_sent,
            })
            .collect();
        statuses.sort_by(|a, b| (&a.store, &a.device.spec.id).cmp(&(&b.store, &b.device.spec.id)));
        *self.published.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(statuses);
    }
}

fn device_info(device: &Device) -> DeviceInfo {
    DeviceInfo {
        id: device.spec.id.to_string(),
        manufacturer: device.spec.manufacturer.clone(),
        serial_number: device.spec.serial_number.clone(),
        model: device.spec.model.clone(),
    }
}

fn map_node(node: &MapNode, map_id: &str) -> bazaar_runtime::MapNode {
    bazaar_runtime::MapNode {
        id: node.id.to_string(),
        x_mm: node.x_mm,
        y_mm: node.y_mm,
        map_id: map_id.to_owned(),
    }
}

fn pick_action_id(job: &JobInFlight) -> String {
    format!("pick-{}-{}", job.task.id, job.attempt)
}

fn drop_action_id(job: &JobInFlight) -> String {
    format!("drop-{}-{}", job.task.id, job.attempt)
}

/// Squared distance from a device to a node; a device that has not said
/// where it is comes last.
fn distance_squared(position: Option<&DevicePosition>, node: &MapNode) -> i128 {
    match position {
        Some(position) => {
            let dx = i128::from(position.x_mm) - i128::from(node.x_mm);
            let dy = i128::from(position.y_mm) - i128::from(node.y_mm);
            dx * dx + dy * dy
        }
        None => i128::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(map_id: &str, x_mm: i64, y_mm: i64) -> DevicePosition {
        DevicePosition { x_mm, y_mm, theta_mrad: 0, map_id: map_id.into(), last_node_id: None }
    }

    #[test]
    fn a_move_is_progress_from_a_metre_along_an_axis_or_onto_another_map() {
        let from = ("floor-1".to_owned(), 5_000, -2_000);
        assert!(!is_progress_move(&from, &at("floor-1", 5_000, -2_000)));
        assert!(!is_progress_move(&from, &at("floor-1", 5_999, -1_001)), "jitter and creep");
        assert!(!is_progress_move(&from, &at("floor-1", 4_001, -2_999)));
        assert!(is_progress_move(&from, &at("floor-1", 6_000, -2_000)));
        assert!(is_progress_move(&from, &at("floor-1", 5_000, -3_000)));
        assert!(is_progress_move(&from, &at("floor-2", 5_000, -2_000)));
        assert!(is_progress_move(&from, &at("floor-1", i64::MIN, i64::MAX)), "no overflow");
    }
}
