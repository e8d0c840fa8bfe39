//! The device bus's vocabulary as plain Rust: what a driver plugin reads and
//! produces, mirroring the WIT interface `device-types`.
//!
//! A driver owns a vendor protocol and nothing else. The host owns the
//! transport (MQTT), retries, timeouts, rate limits and the device
//! registry; the driver is a pure translation between the host's commands
//! and the wire, and between the wire and typed device events. Positions are
//! integers (millimetres and milliradians), never floats.
//!
//! A driver keeps what it must remember about a device (message counters,
//! the job it is driving) in [`DeviceContext::memory`]: the host hands back
//! on each call the bytes the previous call returned as
//! [`Encoded::memory`] or [`Decoded::memory`]. A driver instance itself
//! keeps nothing between calls, so any instance can serve any device.

use std::fmt;

use crate::PluginError;

/// A namespace no MQTT frame can lie under, for a device a driver cannot
/// address (or a store whose configuration of the driver is unusable).
///
/// MQTT forbids `#` in the topic name of a published message, so no
/// inbound frame is routed to the device and every outbound frame is
/// refused as outside its namespace; a host that checks namespaces for
/// wildcards refuses it outright. Either way nothing reaches or leaves the
/// device, which is the safe outcome for a device that cannot be named.
pub const UNROUTABLE_NAMESPACE: &str = "#unroutable/";

/// A device as the operator registered it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The node's identifier of the device, unique within its store.
    pub id: String,
    /// The vendor as it appears on the wire (VDA 5050 `manufacturer`).
    pub manufacturer: String,
    /// The vendor's serial number (VDA 5050 `serialNumber`).
    pub serial_number: String,
    /// The device model; a driver may keep settings per model in its
    /// configuration (for example action parameters).
    pub model: String,
}

impl DeviceInfo {
    /// A device with these identifiers.
    pub fn new(id: &str, manufacturer: &str, serial_number: &str, model: &str) -> Self {
        Self {
            id: id.to_owned(),
            manufacturer: manufacturer.to_owned(),
            serial_number: serial_number.to_owned(),
            model: model.to_owned(),
        }
    }
}

/// A place on a warehouse map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

impl MapNode {
    /// The node `id` at (`x_mm`, `y_mm`) on map `map_id`.
    pub fn new(id: &str, x_mm: i64, y_mm: i64, map_id: &str) -> Self {
        Self { id: id.to_owned(), x_mm, y_mm, map_id: map_id.to_owned() }
    }
}

/// Where a device says it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// Take a load from the station.
    Pick,
    /// Put the carried load down at the station.
    Drop,
    /// Charge the battery.
    Charge,
}

/// An action a device performs when it reaches a stop.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    /// Where.
    pub node: MapNode,
    /// What to do there, if anything.
    pub action: Option<StopAction>,
}

/// A job: a route of stops the device follows in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Job {
    /// The job's identifier, unique per attempt; events name it.
    pub job_id: String,
    /// 0 for a new job; each extension of the same job counts up.
    pub update: u32,
    /// The stops, in the order the device visits them.
    pub stops: Vec<Stop>,
}

/// What the host asks of a device.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// The state of the device's link, as the device or the broker says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// The device is connected and working.
    Online,
    /// The device disconnected on purpose.
    Offline,
    /// The link broke (the broker published the device's last will).
    ConnectionBroken,
}

/// How far an action has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// An action's progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionUpdate {
    /// The job the action belongs to.
    pub job_id: String,
    /// The action.
    pub action_id: String,
    /// Its status now.
    pub status: ActionStatus,
}

/// A node the device reached while following a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeReached {
    /// The job.
    pub job_id: String,
    /// The node.
    pub node_id: String,
}

/// The battery's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Battery {
    /// Charge in tenths of a percent, 0 to 1000.
    pub charge_permille: u16,
    /// Whether the device is charging.
    pub charging: bool,
}

/// How serious a device error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorLevel {
    /// The device can go on.
    Warning,
    /// The device cannot go on without help.
    Fatal,
}

/// An error the device reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceError {
    /// The vendor's or standard's error type.
    pub error_type: String,
    /// How serious it is.
    pub level: ErrorLevel,
    /// A human-readable description, possibly empty.
    pub description: String,
}

/// Something a device reported, in the host's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The link changed.
    Connection(ConnectionState),
    /// The device moved.
    Position(DevicePosition),
    /// The battery changed.
    Battery(Battery),
    /// The device's operating mode, in the vendor's words.
    OperatingMode(String),
    /// The device is (true) or is no longer (false) paused.
    Paused(bool),
    /// The device is (true) or is not (false) driving.
    Driving(bool),
    /// The device reached a node of a job.
    NodeReached(NodeReached),
    /// An action of a job progressed.
    Action(ActionUpdate),
    /// A job is complete: the device has no stops left to drive, every
    /// action finished or failed, and it is not moving. Carries the job id.
    JobFinished(String),
    /// The device's current errors, replacing the ones reported before.
    Errors(Vec<DeviceError>),
}

/// What the host knows of a device when it calls the driver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceContext {
    /// The device.
    pub device: DeviceInfo,
    /// What the driver returned as `memory` from its previous call for
    /// this device, empty at first. The host keeps it between calls.
    pub memory: Vec<u8>,
    /// Wall-clock time of the call, milliseconds since the Unix epoch, for
    /// message timestamps.
    pub now_ms: u64,
    /// Where the device last reported being, if it has.
    pub position: Option<DevicePosition>,
}

impl DeviceContext {
    /// The context of a first call for `device` at `now_ms`: no memory, no
    /// position yet.
    pub fn new(device: DeviceInfo, now_ms: u64) -> Self {
        Self { device, memory: Vec::new(), now_ms, position: None }
    }
}

/// One MQTT message to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoded {
    /// What to publish, in order.
    pub frames: Vec<Frame>,
    /// The driver's memory of the device to keep for its next call.
    pub memory: Vec<u8>,
}

/// An inbound frame turned into events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// What the frame said, in order.
    pub events: Vec<DeviceEvent>,
    /// The driver's memory of the device to keep for its next call.
    pub memory: Vec<u8>,
}

/// Why a driver could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriverError {
    /// The inbound payload is not a message of the protocol (not JSON,
    /// wrong types, missing fields): the host counts and drops it.
    Malformed(String),
    /// The command cannot be expressed for this device (the reason is shown
    /// to the operator).
    Unsupported(String),
}

impl DriverError {
    /// A [`DriverError::Malformed`] with `reason`.
    pub fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed(reason.into())
    }

    /// A [`DriverError::Unsupported`] with `reason`.
    pub fn unsupported(reason: impl Into<String>) -> Self {
        Self::Unsupported(reason.into())
    }

    /// The explanation, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::Malformed(reason) | Self::Unsupported(reason) => reason,
        }
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(reason) => write!(f, "malformed message: {reason}"),
            Self::Unsupported(reason) => write!(f, "unsupported: {reason}"),
        }
    }
}

impl std::error::Error for DriverError {}

/// A driver reports a configuration it cannot use (or any other plugin
/// failure) as `unsupported`: the reason reaches the operator, who can fix
/// it, whereas a `malformed` inbound frame is only counted and dropped.
impl From<PluginError> for DriverError {
    fn from(error: PluginError) -> Self {
        Self::Unsupported(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_error_becomes_an_unsupported_driver_error_that_keeps_its_kind_in_the_text() {
        let error = DriverError::from(PluginError::invalid_config("models.x: not a list"));
        assert_eq!(
            error,
            DriverError::Unsupported("invalid configuration: models.x: not a list".to_owned())
        );
        assert_eq!(error.message(), "invalid configuration: models.x: not a list");
        assert_eq!(DriverError::malformed("not JSON").to_string(), "malformed message: not JSON");
    }

    #[test]
    fn the_unroutable_namespace_contains_a_character_no_published_topic_may_contain() {
        assert!(UNROUTABLE_NAMESPACE.contains('#'));
        assert!(UNROUTABLE_NAMESPACE.ends_with('/'));
    }
}
