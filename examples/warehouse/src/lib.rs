//! A fleet of simulated automated guided vehicles that speak VDA 5050 2.0.0
//! over MQTT, for the demo, the node's integration tests and the benchmarks.
//!
//! Each vehicle is a faithful VDA 5050 vehicle: it announces itself on
//! `connection` (with a last will), publishes its factsheet, accepts,
//! updates and refuses orders as the standard prescribes, drives straight
//! lines between node positions at a configurable speed (times a time-lapse
//! factor), runs node actions with their blocking types, obeys instant
//! actions, and reports everything on `state` and `visualization`. Faults
//! can be injected: a vehicle can be killed (its connection drops without a
//! DISCONNECT, so the broker publishes its last will) or failed (a FATAL
//! error while it stays connected).
//!
//! Each vehicle is one tokio task with one MQTT connection; an idle vehicle
//! wakes only for its periodic state, so hundreds run on one machine.

mod factsheet;
mod link;
mod protocol;
mod vehicle;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::factsheet::TOPIC_ELEMENT_LENGTH_BYTES_MAX;
use crate::link::{Control, HeaderIds, LinkSettings, SimClock, Unit};
use crate::protocol::Topics;
use crate::vehicle::{ID_LENGTH_BYTES_MAX, Identity, Motion, Vehicle};

/// Largest MQTT packet a vehicle sends or accepts. The largest messages are
/// a full order (256 nodes, about 64 KiB) and the state echoing it; 256 KiB
/// leaves room for action parameters. A larger inbound packet is refused by
/// the MQTT client, which then drops the connection and reconnects.
pub const MESSAGE_SIZE_BYTES_MAX: usize = 256 * 1024;

/// Vehicles in one fleet: each holds a socket and a task; 5,000 is ten
/// times the largest benchmark and within default file descriptor limits
/// when raised as usual for brokers.
pub const FLEET_VEHICLES_MAX: usize = 5_000;

/// Largest time-lapse factor. At 1,500 mm/s times 10,000 a vehicle crosses
/// 15 km per wall second; beyond that the millisecond resolution of timers
/// makes the simulation meaningless.
pub const SPEEDUP_MAX: u32 = 10_000;

/// Shortest periodic state and visualization interval: below 10 ms a fleet
/// of hundreds of vehicles would flood the broker for no reader's benefit.
pub const REPORT_INTERVAL_MS_MIN: u64 = 10;

/// Longest wait for every vehicle of a new fleet to connect, subscribe and
/// have its ONLINE acknowledged: generous for hundreds of vehicles on a
/// loaded machine.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(60);

/// Commands (kill, fail, shutdown) queued per vehicle: they are rare, and a
/// full queue makes [`Fleet::kill`] and [`Fleet::fail`] report false rather
/// than block.
const CONTROL_QUEUE_CAPACITY: usize = 16;

/// How a fleet connects, moves and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// MQTT broker host name or address.
    pub broker_host: String,
    /// MQTT broker port.
    pub broker_port: u16,
    /// First topic level (`uagv` in the standard).
    pub interface_name: String,
    /// Second topic level (`v2` for VDA 5050 2.x).
    pub major_version: String,
    /// Manufacturer in topics, headers and the factsheet.
    pub manufacturer: String,
    /// Time-lapse factor: simulated time runs this many times faster than
    /// wall time (1 to [`SPEEDUP_MAX`]).
    pub speedup: u32,
    /// Cruising speed in simulated time, mm/s.
    pub speed_mm_per_s: u32,
    /// Duration of each node action in simulated time, ms.
    pub action_duration_ms: u64,
    /// Periodic state interval in wall time, ms (states are also sent on
    /// every change).
    pub state_interval_ms: u64,
    /// Visualization interval in wall time while driving, ms; 0 disables.
    pub visualization_interval_ms: u64,
}

impl Default for FleetConfig {
    fn default() -> FleetConfig {
        FleetConfig {
            broker_host: "127.0.0.1".to_owned(),
            broker_port: 1883,
            interface_name: "uagv".to_owned(),
            major_version: "v2".to_owned(),
            manufacturer: "BazaarSim".to_owned(),
            speedup: 1,
            speed_mm_per_s: 1500,
            action_duration_ms: 2000,
            state_interval_ms: 1000,
            visualization_interval_ms: 500,
        }
    }
}

/// One vehicle of a fleet and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VehicleSpec {
    /// Serial number (VDA 5050 §6.3: letters, digits, `_`, `.`, `:`, `-`).
    pub serial_number: String,
    /// Model, reported as the factsheet's series name.
    pub model: String,
    /// The map the vehicle drives on.
    pub map_id: String,
    /// The node it stands on at start, reported as `lastNodeId`.
    pub start_node_id: String,
    /// East coordinate of that node, mm.
    pub start_x_mm: i64,
    /// North coordinate of that node, mm.
    pub start_y_mm: i64,
}

/// A vehicle's situation as the fleet sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VehicleStatus {
    /// The vehicle.
    pub serial_number: String,
    /// Whether its MQTT connection is up.
    pub connected: bool,
    /// East coordinate, mm.
    pub x_mm: i64,
    /// North coordinate, mm.
    pub y_mm: i64,
    /// The node reached last.
    pub last_node_id: String,
    /// The current or last order, empty if none.
    pub order_id: String,
    /// Whether it is driving.
    pub driving: bool,
    /// Whether it is paused.
    pub paused: bool,
    /// Loads on board.
    pub loads: usize,
    /// Orders completed (each orderId counted once).
    pub orders_completed: u64,
    /// `errorType` of each active error.
    pub errors: Vec<String>,
}

/// A vehicle task and how to reach it.
#[derive(Debug)]
struct Running {
    /// Commands to the task.
    control: mpsc::Sender<Control>,
    /// The task; it hands the vehicle back when it ends.
    task: JoinHandle<Unit>,
    /// Whether it was killed (its task ends without saying goodbye).
    killed: bool,
}

/// One vehicle of the fleet.
#[derive(Debug)]
struct Slot {
    /// Its serial number.
    serial_number: String,
    /// How it connects.
    settings: LinkSettings,
    /// Its latest summary, written by its task.
    status: Arc<Mutex<VehicleStatus>>,
    /// Its task, absent once shut down or handed to a restart.
    running: Mutex<Option<Running>>,
}

/// A running fleet of simulated vehicles.
///
/// Dropping a fleet without [`Fleet::shutdown`] aborts its vehicles
/// abruptly, as if every one were killed.
#[derive(Debug)]
pub struct Fleet {
    /// The vehicles, in the order they were specified.
    slots: Vec<Slot>,
}

/// Locks a mutex, ignoring poisoning: the data is a plain summary or handle.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Fleet {
    /// Starts one task and one MQTT connection per vehicle and returns once
    /// every vehicle has connected, subscribed and had its ONLINE
    /// acknowledged. If one cannot connect, the others are shut down and the
    /// error says why.
    pub async fn spawn(config: FleetConfig, vehicles: Vec<VehicleSpec>) -> anyhow::Result<Fleet> {
        validate(&config, &vehicles)?;
        let mut slots = Vec::with_capacity(vehicles.len());
        let mut readiness = Vec::with_capacity(vehicles.len());
        for spec in vehicles {
            let identity = Identity {
                manufacturer: config.manufacturer.clone(),
                serial_number: spec.serial_number.clone(),
                map_id: spec.map_id.clone(),
            };
            let motion = Motion {
                speed_mm_per_s: config.speed_mm_per_s,
                action_duration_us: config.action_duration_ms.saturating_mul(1000),
            };
            let vehicle = Vehicle::new(
                identity,
                motion,
                &spec.start_node_id,
                spec.start_x_mm,
                spec.start_y_mm,
            );
            let settings = LinkSettings {
                broker_host: config.broker_host.clone(),
                broker_port: config.broker_port,
                topics: Topics::new(
                    &config.interface_name,
                    &config.major_version,
                    &config.manufacturer,
                    &spec.serial_number,
                ),
                client_id: format!("{}-{}", config.manufacturer, spec.serial_number),
                model: spec.model.clone(),
                state_interval_ms: config.state_interval_ms,
                visualization_interval_ms: config.visualization_interval_ms,
            };
            let status = Arc::new(Mutex::new(vehicle.status(false)));
            let unit = Unit {
                vehicle,
                clock: SimClock::start(config.speedup),
                header_ids: HeaderIds::default(),
            };
            let (running, ready) = start(unit, settings.clone(), Arc::clone(&status));
            readiness.push((spec.serial_number.clone(), ready));
            slots.push(Slot {
                serial_number: spec.serial_number,
                settings,
                status,
                running: Mutex::new(Some(running)),
            });
        }
        let fleet = Fleet { slots };
        let all_ready = async {
            for (serial_number, ready) in readiness {
                match ready.await {
                    Ok(Ok(())) => {}
                    Ok(Err(reason)) => bail!("vehicle {serial_number}: {reason}"),
                    Err(_) => bail!("vehicle {serial_number} stopped before it came online"),
                }
            }
            Ok(())
        };
        let outcome = match tokio::time::timeout(SPAWN_TIMEOUT, all_ready).await {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow::anyhow!(
                "the vehicles did not all come online within {} s",
                SPAWN_TIMEOUT.as_secs()
            )),
        };
        match outcome {
            Ok(()) => Ok(fleet),
            Err(error) => {
                fleet.shutdown().await;
                Err(error)
            }
        }
    }

    /// Drops the vehicle's connection abruptly (no DISCONNECT, so the broker
    /// publishes its last will `CONNECTIONBROKEN`) and stops it for good.
    /// False if there is no such live vehicle.
    pub fn kill(&self, serial: &str) -> bool {
        let Some(slot) = self.slot(serial) else {
            return false;
        };
        let mut running = lock(&slot.running);
        match running.as_mut() {
            Some(running) if !running.killed => {
                let sent = running.control.try_send(Control::Kill).is_ok();
                running.killed |= sent;
                sent
            }
            _ => false,
        }
    }

    /// Makes the vehicle report a FATAL error of `error_type`, stop driving
    /// and fail its running and pending actions, while staying connected.
    /// False if there is no such live vehicle.
    pub fn fail(&self, serial: &str, error_type: &str) -> bool {
        self.control(serial, Control::Fail(error_type.to_owned()))
    }

    /// Makes the vehicle lose the next update of a running order (an
    /// `orderUpdateId` above 0) as if it were lost in transit: it finishes
    /// what it has and waits at its last node. False if there is no such
    /// live vehicle.
    pub fn lose_next_order_update(&self, serial: &str) -> bool {
        self.control(serial, Control::LoseNextOrderUpdate)
    }

    /// Hands `command` to a live vehicle; false if there is none.
    fn control(&self, serial: &str, command: Control) -> bool {
        let Some(slot) = self.slot(serial) else {
            return false;
        };
        let running = lock(&slot.running);
        match running.as_ref() {
            Some(running) if !running.killed => running.control.try_send(command).is_ok(),
            _ => false,
        }
    }

    /// Brings a killed vehicle back: it reconnects where it stopped, with
    /// its last node, loads and battery, but without an order (as after a
    /// reboot). Returns once it is online again; false if the vehicle was
    /// not killed.
    pub async fn restart(&self, serial: &str) -> anyhow::Result<bool> {
        let Some(slot) = self.slot(serial) else {
            return Ok(false);
        };
        let previous = {
            let mut running = lock(&slot.running);
            match running.as_ref() {
                Some(killed) if killed.killed => running.take(),
                _ => None,
            }
        };
        let Some(previous) = previous else {
            return Ok(false);
        };
        let mut unit = previous.task.await.with_context(|| format!("vehicle {serial} crashed"))?;
        unit.vehicle.reboot();
        let (running, ready) = start(unit, slot.settings.clone(), Arc::clone(&slot.status));
        *lock(&slot.running) = Some(running);
        match tokio::time::timeout(SPAWN_TIMEOUT, ready).await {
            Ok(Ok(Ok(()))) => Ok(true),
            Ok(Ok(Err(reason))) => bail!("vehicle {serial}: {reason}"),
            Ok(Err(_)) => bail!("vehicle {serial} stopped before it came online"),
            Err(_) => {
                bail!("vehicle {serial} did not come online within {} s", SPAWN_TIMEOUT.as_secs())
            }
        }
    }

    /// The latest summary of every vehicle, in the order they were specified.
    pub fn status(&self) -> Vec<VehicleStatus> {
        self.slots.iter().map(|slot| lock(&slot.status).clone()).collect()
    }

    /// Publishes OFFLINE and disconnects every live vehicle, then waits for
    /// all of them to stop.
    pub async fn shutdown(self) {
        let running: Vec<Running> =
            self.slots.iter().filter_map(|slot| lock(&slot.running).take()).collect();
        for vehicle in &running {
            if !vehicle.killed {
                // A task that already ended has dropped its receiver; fine.
                let _ = vehicle.control.send(Control::Shutdown).await;
            }
        }
        for vehicle in running {
            if let Err(error) = vehicle.task.await {
                tracing::error!(%error, "a vehicle task ended abnormally");
            }
        }
    }

    /// The slot of the vehicle `serial`.
    fn slot(&self, serial: &str) -> Option<&Slot> {
        self.slots.iter().find(|slot| slot.serial_number == serial)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for slot in &self.slots {
            if let Some(running) = lock(&slot.running).take() {
                running.task.abort();
            }
        }
    }
}

/// Starts the task of a vehicle; the receiver says when it is online.
fn start(
    unit: Unit,
    settings: LinkSettings,
    status: Arc<Mutex<VehicleStatus>>,
) -> (Running, oneshot::Receiver<Result<(), String>>) {
    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE_CAPACITY);
    let (ready_tx, ready_rx) = oneshot::channel();
    let task = tokio::spawn(link::run(unit, settings, control_rx, status, ready_tx));
    (Running { control, task, killed: false }, ready_rx)
}

/// Checks a fleet's configuration and vehicles before anything starts.
fn validate(config: &FleetConfig, vehicles: &[VehicleSpec]) -> anyhow::Result<()> {
    check_topic_level("interface_name", &config.interface_name)?;
    check_topic_level("major_version", &config.major_version)?;
    check_topic_level("manufacturer", &config.manufacturer)?;
    if config.broker_host.is_empty() {
        bail!("broker_host is empty");
    }
    if !(1..=SPEEDUP_MAX).contains(&config.speedup) {
        bail!("speedup must be between 1 and {SPEEDUP_MAX}, not {}", config.speedup);
    }
    if config.speed_mm_per_s == 0 {
        bail!("speed_mm_per_s must be positive");
    }
    if config.state_interval_ms < REPORT_INTERVAL_MS_MIN {
        bail!("state_interval_ms must be at least {REPORT_INTERVAL_MS_MIN}");
    }
    if config.visualization_interval_ms != 0
        && config.visualization_interval_ms < REPORT_INTERVAL_MS_MIN
    {
        bail!("visualization_interval_ms must be 0 (off) or at least {REPORT_INTERVAL_MS_MIN}");
    }
    if vehicles.len() > FLEET_VEHICLES_MAX {
        bail!("a fleet has at most {FLEET_VEHICLES_MAX} vehicles, not {}", vehicles.len());
    }
    for (index, spec) in vehicles.iter().enumerate() {
        let serial = &spec.serial_number;
        // VDA 5050 2.0.0 §6.3: the characters a serial number may use.
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
        if serial.is_empty()
            || serial.len() > TOPIC_ELEMENT_LENGTH_BYTES_MAX
            || !serial.chars().all(allowed)
        {
            bail!(
                "serial number {serial:?} must be 1 to {TOPIC_ELEMENT_LENGTH_BYTES_MAX} of \
                 A-Z a-z 0-9 _ . : -"
            );
        }
        if vehicles[..index].iter().any(|other| &other.serial_number == serial) {
            bail!("serial number {serial} appears twice");
        }
        for (field, value) in [("map_id", &spec.map_id), ("start_node_id", &spec.start_node_id)] {
            if value.is_empty() || value.len() > ID_LENGTH_BYTES_MAX {
                bail!("vehicle {serial}: {field} must be 1 to {ID_LENGTH_BYTES_MAX} bytes");
            }
        }
        if spec.model.is_empty() || spec.model.len() > ID_LENGTH_BYTES_MAX {
            bail!("vehicle {serial}: model must be 1 to {ID_LENGTH_BYTES_MAX} bytes");
        }
    }
    Ok(())
}

/// Checks a topic level: not empty, short, and free of the characters MQTT
/// reserves (`/` separates levels, `+` and `#` are wildcards, `$` marks
/// broker topics; §6.3).
fn check_topic_level(field: &str, value: &str) -> anyhow::Result<()> {
    if value.is_empty()
        || value.len() > TOPIC_ELEMENT_LENGTH_BYTES_MAX
        || value.contains(['/', '+', '#', '$'])
    {
        bail!(
            "{field} {value:?} must be 1 to {TOPIC_ELEMENT_LENGTH_BYTES_MAX} bytes without / + # $"
        );
    }
    Ok(())
}

/// The id of the grid node in `column` and `row`, as used by [`grid_vehicles`].
pub fn grid_node_id(column: usize, row: usize) -> String {
    format!("n{column}-{row}")
}

/// `count` vehicles on the nodes of a square grid, `spacing_mm` apart, row
/// by row from the origin: vehicle `i` is `{serial_prefix}{i+1:03}` and
/// stands on [`grid_node_id`]`(i % columns, i / columns)` at
/// (`column × spacing_mm`, `row × spacing_mm`).
pub fn grid_vehicles(
    count: usize,
    serial_prefix: &str,
    spacing_mm: i64,
    map_id: &str,
    model: &str,
) -> Vec<VehicleSpec> {
    let columns = (1..=count).find(|side| side * side >= count).unwrap_or(1);
    (0..count)
        .map(|index| {
            let (column, row) = (index % columns, index / columns);
            VehicleSpec {
                serial_number: format!("{serial_prefix}{:03}", index + 1),
                model: model.to_owned(),
                map_id: map_id.to_owned(),
                start_node_id: grid_node_id(column, row),
                start_x_mm: spacing_mm.saturating_mul(column as i64),
                start_y_mm: spacing_mm.saturating_mul(row as i64),
            }
        })
        .collect()
}
