//! The device bus's vocabulary in the host's own types: plain Rust mirrors
//! of the WIT `device-types` that a driver plugin reads and produces.
//!
//! The node keeps devices, their positions and their events, stores some of
//! them and serves them over its API, so every type here is plain data
//! (`Clone`, `Eq`, serde) with no tie to wasmtime; the driver module
//! converts to and from the generated bindings at the call. Positions are
//! integers (millimetres, milliradians), never floats, as in the WIT.

use serde::{Deserialize, Serialize};

/// A device as the operator registered it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The node's identifier of the device, unique within its store.
    pub id: String,
    /// The vendor as it appears on the wire (VDA 5050 `manufacturer`).
    pub manufacturer: String,
    /// The vendor's serial number (VDA 5050 `serialNumber`).
    pub serial_number: String,
    /// The device model; a driver may keep settings per model in its
    /// configuration.
    pub model: String,
}

/// A place on a warehouse map.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MapNode {
    /// The node's identifier on the map.
    pub id: String,
    /// East coordinate in millimetres.
    pub x_mm: i64,
    /// North coordinate in millimetres.
    pub y_mm: i64,
    /// The map the node is on.
    pub map_id: String,
}

/// Where a device says it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DevicePosition {
    /// East coordinate in millimetres.
    pub x_mm: i64,
    /// North coordinate in millimetres.
    pub y_mm: i64,
    /// Heading in milliradians, counter-clockwise from east.
    pub theta_mrad: i32,
    /// The map the coordinates are on.
    pub map_id: String,
    /// The last map node the device reported reaching, if any.
    pub last_node_id: Option<String>,
}

/// What a device does at a stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// Take a load from the station.
    Pick,
    /// Put the carried load down at the station.
    Drop,
    /// Charge the battery.
    Charge,
}

/// An action a device performs when it reaches a stop.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StopAction {
    /// What to do.
    pub kind: ActionKind,
    /// The action's identifier, unique within the job; events name it.
    pub action_id: String,
    /// The load concerned (for example the SKU), empty when unknown.
    pub load_id: String,
    /// The station's name at the stop.
    pub station: String,
}

/// One stop of a job: drive to `node`, then perform `action`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stop {
    /// Where.
    pub node: MapNode,
    /// What to do there, if anything.
    pub action: Option<StopAction>,
}

/// A job: a route of stops the device follows in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Job {
    /// The job's identifier, unique per attempt; events name it.
    pub job_id: String,
    /// 0 for a new job; each extension of the same job counts up.
    pub update: u32,
    /// The stops, in the order the device visits them.
    pub stops: Vec<Stop>,
}

/// What the host asks of a device.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceCommand {
    /// Start a new job from wherever the device is.
    StartJob(Job),
    /// Append stops to the device's current job (same `job_id`, higher
    /// `update`), continuing from the job's last stop.
    ExtendJob(Job),
    /// Stop moving at once and hold (emergency stop).
    Pause,
    /// Continue after a pause.
    Resume,
    /// Abandon the current job.
    CancelJob,
}

/// The state of a device's link, as the device or the broker says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionState {
    /// The device is connected and working.
    Online,
    /// The device disconnected on purpose.
    Offline,
    /// The link broke (the broker published the device's last will).
    ConnectionBroken,
}

/// How far an action has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionStatus {
    /// Not started.
    Waiting,
    /// Being prepared or performed.
    Running,
    /// Done.
    Finished,
    /// Given up; the device will not complete it.
    Failed,
}

/// How serious a device error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorLevel {
    /// The device can go on.
    Warning,
    /// The device cannot go on without help.
    Fatal,
}

/// An error a device reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceError {
    /// The vendor's or standard's error type.
    pub error_type: String,
    /// How serious it is.
    pub level: ErrorLevel,
    /// A human-readable description, possibly empty.
    pub description: String,
}

/// Something a device reported, in the host's terms.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceEvent {
    /// The link changed.
    Connection(ConnectionState),
    /// The device moved.
    Position(DevicePosition),
    /// The battery changed.
    Battery {
        /// Charge in tenths of a percent, 0 to 1000.
        charge_permille: u16,
        /// Whether the device is charging.
        charging: bool,
    },
    /// The device's operating mode, in the vendor's words.
    OperatingMode(String),
    /// The device is (true) or is no longer (false) paused.
    Paused(bool),
    /// The device is (true) or is not (false) driving.
    Driving(bool),
    /// The device reached a node of a job.
    NodeReached {
        /// The job.
        job_id: String,
        /// The node.
        node_id: String,
    },
    /// An action of a job progressed.
    Action {
        /// The job the action belongs to.
        job_id: String,
        /// The action.
        action_id: String,
        /// Its status now.
        status: ActionStatus,
    },
    /// A job is complete: no stops left to drive, every action finished or
    /// failed, and the device is not moving. Carries the job's id.
    JobFinished(String),
    /// The device's current errors, replacing the ones reported before.
    Errors(Vec<DeviceError>),
}

/// What the host knows of a device when it calls the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceContext<'a> {
    /// The device.
    pub device: &'a DeviceInfo,
    /// What the driver returned as `memory` from its previous call for
    /// this device, empty at first; the host keeps it between calls.
    pub memory: &'a [u8],
    /// Wall-clock time of the call, milliseconds since the Unix epoch, for
    /// message timestamps.
    pub now_ms: u64,
    /// Where the device last reported being, if it has.
    pub position: Option<&'a DevicePosition>,
}

/// One MQTT message to publish.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    /// The topic; the host refuses one outside the device's namespace.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// MQTT quality of service: 0 (at most once) or 1 (at least once).
    pub qos: u8,
    /// Whether the broker keeps it for later subscribers.
    pub retain: bool,
}

/// A command turned into frames.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Encoded {
    /// What to publish, in order.
    pub frames: Vec<Frame>,
    /// The driver's memory of the device to keep for its next call.
    pub memory: Vec<u8>,
}

/// An inbound frame turned into events.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decoded {
    /// What the frame said, in order.
    pub events: Vec<DeviceEvent>,
    /// The driver's memory of the device to keep for its next call.
    pub memory: Vec<u8>,
}

/// The driver's own refusal (not a fault): `Malformed` inbound payloads are
/// counted and dropped; `Unsupported` commands are reported to the
/// operator. The text is the driver's, cut to
/// [`REFUSAL_TEXT_BYTES_MAX`](crate::REFUSAL_TEXT_BYTES_MAX) bytes with
/// control characters replaced.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "kebab-case")]
pub enum DriverRefusal {
    /// The inbound payload is not a message of the protocol (not JSON,
    /// wrong types, missing fields).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The command cannot be expressed for this device.
    #[error("unsupported command: {0}")]
    Unsupported(String),
}
