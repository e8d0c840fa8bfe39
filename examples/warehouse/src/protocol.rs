//! The VDA 5050 2.0.0 wire format as a vehicle sees it: topic names, quality
//! of service, the protocol header, the messages master control sends
//! (`order`, `instantActions`) and the ones the vehicle publishes
//! (`connection`, `state`, `visualization`; the factsheet has its own module).
//!
//! Field names follow the standard's JSON schemas (`json_schemas/*.schema`
//! of the 2.0.0 release) exactly; the serde renames below are the contract.
//! Unknown fields are ignored on input, as the schemas allow additional
//! properties; missing required fields and wrong types are refused by serde
//! and reported by the vehicle as a `validationError`.

use std::time::{SystemTime, UNIX_EPOCH};

use rumqttc::QoS;
use serde::{Deserialize, Serialize};

/// The protocol version every message carries in its header.
pub(crate) const PROTOCOL_VERSION: &str = "2.0.0";

/// VDA 5050 2.0.0 §6.2 and §6.14: "The topic `connection` shall use the QoS
/// level 1 (At Least Once)"; master control must not miss a vehicle going
/// away.
pub(crate) const CONNECTION_QOS: QoS = QoS::AtLeastOnce;

/// VDA 5050 2.0.0 §6.2: "the MQTT QoS level 0 (Best Effort) is to be used for
/// the topics `order`, `state`, `factsheet` and `visualization`". A lost
/// state is replaced by the next one, at the latest one state interval later.
pub(crate) const STATE_QOS: QoS = QoS::AtMostOnce;

/// VDA 5050 2.0.0 §6.2 (see [`STATE_QOS`]).
pub(crate) const VISUALIZATION_QOS: QoS = QoS::AtMostOnce;

/// VDA 5050 2.0.0 §6.2 (see [`STATE_QOS`]); §6.16 adds that factsheet
/// messages are retained.
pub(crate) const FACTSHEET_QOS: QoS = QoS::AtMostOnce;

/// The maximum QoS the vehicle asks for when it subscribes to `order` and
/// `instantActions`. The publisher chooses the QoS of a message (QoS 0 for
/// `order` per §6.2, the standard names none for `instantActions`); the
/// subscription only caps it. Asking for 1 lets a master control that sends
/// an e-stop at least once have it delivered at least once; a duplicate is
/// harmless because a resent order (same `orderUpdateId`) is ignored and the
/// supported instant actions are idempotent.
pub(crate) const SUBSCRIPTION_QOS: QoS = QoS::AtLeastOnce;

/// The MQTT topics of one vehicle: `interfaceName/majorVersion/manufacturer/serialNumber/topic`
/// (VDA 5050 2.0.0 §6.3).
#[derive(Debug, Clone)]
pub(crate) struct Topics {
    /// Orders from master control (subscribed).
    pub(crate) order: String,
    /// Instant actions from master control (subscribed).
    pub(crate) instant_actions: String,
    /// The vehicle's state (published).
    pub(crate) state: String,
    /// Position and velocity at a higher rate (published).
    pub(crate) visualization: String,
    /// `ONLINE`/`OFFLINE`/`CONNECTIONBROKEN` (published, and the last will).
    pub(crate) connection: String,
    /// The vehicle type's description (published).
    pub(crate) factsheet: String,
}

impl Topics {
    /// The topics under `interface_name/major_version/manufacturer/serial_number/`.
    pub(crate) fn new(
        interface_name: &str,
        major_version: &str,
        manufacturer: &str,
        serial_number: &str,
    ) -> Topics {
        let prefix = format!("{interface_name}/{major_version}/{manufacturer}/{serial_number}");
        Topics {
            order: format!("{prefix}/order"),
            instant_actions: format!("{prefix}/instantActions"),
            state: format!("{prefix}/state"),
            visualization: format!("{prefix}/visualization"),
            connection: format!("{prefix}/connection"),
            factsheet: format!("{prefix}/factsheet"),
        }
    }
}

/// The header that starts every message (VDA 5050 2.0.0 §6.4).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Header {
    /// Counts up by one per topic with every message sent.
    pub(crate) header_id: u32,
    /// ISO 8601 UTC with milliseconds, see [`timestamp_now`].
    pub(crate) timestamp: String,
    /// Always [`PROTOCOL_VERSION`].
    pub(crate) version: &'static str,
    /// The vehicle's manufacturer.
    pub(crate) manufacturer: String,
    /// The vehicle's serial number.
    pub(crate) serial_number: String,
}

/// The wall clock as an ISO 8601 UTC timestamp with milliseconds.
pub(crate) fn timestamp_now() -> String {
    // A clock before 1970 is a broken machine, not input: it is written as the epoch.
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    timestamp(unix_ms)
}

/// `unix_ms` (milliseconds since 1970-01-01T00:00:00Z) as
/// `YYYY-MM-DDTHH:mm:ss.sssZ`, the format of §6.4 with milliseconds.
pub(crate) fn timestamp(unix_ms: u64) -> String {
    const MS_PER_DAY: u64 = 86_400_000;
    let days = unix_ms / MS_PER_DAY;
    let ms_of_day = unix_ms % MS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let hour = ms_of_day / 3_600_000;
    let minute = ms_of_day / 60_000 % 60;
    let second = ms_of_day / 1000 % 60;
    let millisecond = ms_of_day % 1000;
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millisecond:03}Z")
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, restricted to dates on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days end each 400-year era.
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------
// From master control to the vehicle.
// ---------------------------------------------------------------------------

/// An `order` message (VDA 5050 2.0.0 §6.7, `order.schema`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderMessage {
    /// Header: the sender's message counter, quoted in error references.
    pub(crate) header_id: u32,
    /// Header: when master control sent the order. Required by the schema,
    /// so read (and type-checked) but not otherwise used.
    #[serde(rename = "timestamp")]
    pub(crate) _timestamp: String,
    /// Header: the sender's protocol version. Required by the schema, so
    /// read (and type-checked) but not otherwise used.
    #[serde(rename = "version")]
    pub(crate) _version: String,
    /// Header: must be this vehicle's manufacturer.
    pub(crate) manufacturer: String,
    /// Header: must be this vehicle's serial number.
    pub(crate) serial_number: String,
    /// The order; several messages with one `orderId` are updates of one order.
    pub(crate) order_id: String,
    /// The update's number within the order.
    pub(crate) order_update_id: u32,
    /// Base and horizon nodes, in the order they are to be traversed.
    pub(crate) nodes: Vec<OrderNode>,
    /// The edges between consecutive nodes.
    pub(crate) edges: Vec<OrderEdge>,
}

/// A node of an order.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderNode {
    /// The node's identifier on the map.
    pub(crate) node_id: String,
    /// Position in the order: nodes even, edges odd, counting up.
    pub(crate) sequence_id: u32,
    /// Optional description, echoed in `nodeStates`.
    pub(crate) node_description: Option<String>,
    /// Base (`true`) or horizon (`false`).
    pub(crate) released: bool,
    /// Where the node is; this vehicle requires it (see the factsheet).
    pub(crate) node_position: Option<NodePosition>,
    /// What to do on the node, executed in this order.
    pub(crate) actions: Vec<Action>,
}

/// A node's position (metres and radians, as in the standard).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodePosition {
    /// East, metres.
    pub(crate) x: f64,
    /// North, metres.
    pub(crate) y: f64,
    /// Heading to assume on the node, radians in [-π, π].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) theta: Option<f64>,
    /// How close, in metres, counts as on the node; 0 or absent means the
    /// vehicle's own tolerance. The release schema spells it
    /// `allowedDeviationXY`, the 2.0.0 draft `allowedDeviationXy`.
    #[serde(rename = "allowedDeviationXY", alias = "allowedDeviationXy")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) allowed_deviation_xy: Option<f64>,
    /// How close, in radians, counts as the node's heading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) allowed_deviation_theta: Option<f64>,
    /// The map the coordinates are on.
    pub(crate) map_id: String,
}

/// An edge of an order.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderEdge {
    /// The edge's identifier on the map.
    pub(crate) edge_id: String,
    /// Position in the order (odd).
    pub(crate) sequence_id: u32,
    /// Optional description, echoed in `edgeStates`.
    pub(crate) edge_description: Option<String>,
    /// Base (`true`) or horizon (`false`).
    pub(crate) released: bool,
    /// The node the edge leaves.
    pub(crate) start_node_id: String,
    /// The node the edge reaches.
    pub(crate) end_node_id: String,
    /// Speed limit on the edge, m/s.
    pub(crate) max_speed: Option<f64>,
    /// A NURBS the vehicle would have to follow; this vehicle drives straight
    /// lines only and refuses an order that carries one (§6.6.4.2).
    pub(crate) trajectory: Option<serde_json::Value>,
    /// What to do while on the edge.
    pub(crate) actions: Vec<Action>,
}

/// An action on a node, an edge or sent as an instant action.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Action {
    /// What to do (`pick`, `drop`, `startPause`, ...).
    pub(crate) action_type: String,
    /// Unique identifier, reported back in `actionStates`.
    pub(crate) action_id: String,
    /// Optional description, echoed in `actionStates`.
    pub(crate) action_description: Option<String>,
    /// Whether the action lets the vehicle drive or other actions run.
    pub(crate) blocking_type: BlockingType,
    /// Key-value parameters.
    #[serde(default)]
    pub(crate) action_parameters: Vec<ActionParameter>,
}

/// One action parameter.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ActionParameter {
    /// The parameter's name (`loadId`, `lhd`, ...).
    pub(crate) key: String,
    /// Array, boolean, number, string or object.
    pub(crate) value: serde_json::Value,
}

/// How an action may run alongside driving and other actions (§6.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum BlockingType {
    /// In parallel with other actions and with driving.
    None,
    /// In parallel with other actions; the vehicle must not drive.
    Soft,
    /// Alone; the vehicle must not drive.
    Hard,
}

/// An `instantActions` message (§6.9). 2.0 carries the array under
/// `actions`; 1.1 called it `instantActions`, and both are read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InstantActionsMessage {
    /// Header: the sender's message counter, quoted in error references.
    pub(crate) header_id: u32,
    /// Header: when master control sent it (read and type-checked only).
    #[serde(rename = "timestamp")]
    pub(crate) _timestamp: String,
    /// Header: the sender's protocol version (read and type-checked only).
    #[serde(rename = "version")]
    pub(crate) _version: String,
    /// Header: must be this vehicle's manufacturer.
    pub(crate) manufacturer: String,
    /// Header: must be this vehicle's serial number.
    pub(crate) serial_number: String,
    /// The actions (2.0 key).
    pub(crate) actions: Option<Vec<Action>>,
    /// The actions (1.1 key).
    pub(crate) instant_actions: Option<Vec<Action>>,
}

// ---------------------------------------------------------------------------
// From the vehicle to master control.
// ---------------------------------------------------------------------------

/// A `connection` message (§6.14, `connection.schema`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectionMessage {
    /// The header.
    #[serde(flatten)]
    pub(crate) header: Header,
    /// The state of the link.
    pub(crate) connection_state: ConnectionState,
}

/// The `connectionState` enumeration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum ConnectionState {
    /// Connected and working.
    Online,
    /// Disconnecting on purpose.
    Offline,
    /// The last will: the link broke.
    #[serde(rename = "CONNECTIONBROKEN")]
    ConnectionBroken,
}

/// A `state` message (§6.10.6, `state.schema`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StateMessage {
    /// The header.
    #[serde(flatten)]
    pub(crate) header: Header,
    /// The current or last order, `""` if none.
    pub(crate) order_id: String,
    /// The last accepted update of that order, 0 if none.
    pub(crate) order_update_id: u32,
    /// The node reached last (or stood on), `""` if none.
    pub(crate) last_node_id: String,
    /// Its sequence id, 0 if none.
    pub(crate) last_node_sequence_id: u32,
    /// Nodes still to traverse.
    pub(crate) node_states: Vec<NodeState>,
    /// Edges still to traverse.
    pub(crate) edge_states: Vec<EdgeState>,
    /// Where the vehicle is.
    pub(crate) agv_position: AgvPosition,
    /// How fast it moves, in vehicle coordinates.
    pub(crate) velocity: Velocity,
    /// What it carries; present because this vehicle knows its loads.
    pub(crate) loads: Vec<Load>,
    /// Whether it is driving or rotating.
    pub(crate) driving: bool,
    /// Whether it is paused (by `startPause`).
    pub(crate) paused: bool,
    /// Order and instant actions with their progress.
    pub(crate) action_states: Vec<ActionState>,
    /// The battery.
    pub(crate) battery_state: BatteryState,
    /// Always `AUTOMATIC`: master control is in charge.
    pub(crate) operating_mode: &'static str,
    /// Active errors.
    pub(crate) errors: Vec<ErrorEntry>,
    /// E-stop and protective field.
    pub(crate) safety_state: SafetyState,
}

/// A `visualization` message (§6.13, `visualization.schema`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VisualizationMessage {
    /// The header.
    #[serde(flatten)]
    pub(crate) header: Header,
    /// Where the vehicle is.
    pub(crate) agv_position: AgvPosition,
    /// How fast it moves.
    pub(crate) velocity: Velocity,
}

/// A node still to traverse.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeState {
    /// The node.
    pub(crate) node_id: String,
    /// Its sequence id in the order.
    pub(crate) sequence_id: u32,
    /// Echo of the order's description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) node_description: Option<String>,
    /// Echo of the order's position (optional in the state; sent for debugging).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) node_position: Option<NodePosition>,
    /// Base or horizon.
    pub(crate) released: bool,
}

/// An edge still to traverse.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EdgeState {
    /// The edge.
    pub(crate) edge_id: String,
    /// Its sequence id in the order.
    pub(crate) sequence_id: u32,
    /// Echo of the order's description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) edge_description: Option<String>,
    /// Base or horizon.
    pub(crate) released: bool,
}

/// The vehicle's pose on a map (metres, radians).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AgvPosition {
    /// East, metres.
    pub(crate) x: f64,
    /// North, metres.
    pub(crate) y: f64,
    /// Heading, radians in [-π, π], counter-clockwise from east.
    pub(crate) theta: f64,
    /// The map.
    pub(crate) map_id: String,
    /// Always true: the simulated vehicle knows where it is.
    pub(crate) position_initialized: bool,
}

/// Velocity in vehicle coordinates (m/s, rad/s).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Velocity {
    /// Forward.
    pub(crate) vx: f64,
    /// Sideways (always 0 for a differential drive).
    pub(crate) vy: f64,
    /// Turning rate (rotations are instantaneous in the simulation).
    pub(crate) omega: f64,
}

/// A load on the vehicle.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Load {
    /// The load's identifier, if the pick named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) load_id: Option<String>,
    /// The load's type, if the pick named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) load_type: Option<String>,
    /// The load handling position (shelf) it occupies.
    pub(crate) load_position: String,
}

/// An action's progress.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActionState {
    /// The action.
    pub(crate) action_id: String,
    /// Its type (optional in the schema; sent for readability).
    pub(crate) action_type: String,
    /// Echo of the action's description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) action_description: Option<String>,
    /// Where it stands.
    pub(crate) action_status: ActionStatus,
    /// What came of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) result_description: Option<String>,
}

/// The `actionStatus` enumeration (§6.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum ActionStatus {
    /// Received; its node is not reached yet.
    Waiting,
    /// Being performed.
    Running,
    /// Interrupted by a pause; resumes with the vehicle.
    Paused,
    /// Done.
    Finished,
    /// Given up.
    Failed,
}

impl ActionStatus {
    /// Whether the action will not change any more.
    pub(crate) fn is_terminal(self) -> bool {
        matches!(self, ActionStatus::Finished | ActionStatus::Failed)
    }
}

/// The battery.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatteryState {
    /// State of charge, percent.
    pub(crate) battery_charge: f64,
    /// Whether it is charging.
    pub(crate) charging: bool,
}

/// An error in `errors`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorEntry {
    /// The kind of error (`validationError`, `orderError`, ...).
    pub(crate) error_type: String,
    /// What the error refers to (`orderId`, `actionId`, ...).
    pub(crate) error_references: Vec<ErrorReference>,
    /// A human-readable explanation.
    pub(crate) error_description: String,
    /// `WARNING` or `FATAL`.
    pub(crate) error_level: ErrorLevel,
}

/// One reference of an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorReference {
    /// What kind of thing is referred to.
    pub(crate) reference_key: String,
    /// Which one.
    pub(crate) reference_value: String,
}

/// The `errorLevel` enumeration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum ErrorLevel {
    /// The vehicle can go on by itself.
    Warning,
    /// The vehicle needs an operator.
    Fatal,
}

/// The safety state.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SafetyState {
    /// E-stop acknowledge type; `NONE` when no e-stop is active.
    pub(crate) e_stop: &'static str,
    /// Whether a protective field is violated.
    pub(crate) field_violation: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_is_written_with_milliseconds_and_a_z() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_leap_day_is_dated_correctly() {
        // 2024-02-29T12:34:56.789Z
        assert_eq!(timestamp(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn the_last_millisecond_of_a_century_year_rolls_over() {
        // 2000-12-31T23:59:59.999Z, then 2001-01-01T00:00:00.000Z
        assert_eq!(timestamp(978_307_199_999), "2000-12-31T23:59:59.999Z");
        assert_eq!(timestamp(978_307_200_000), "2001-01-01T00:00:00.000Z");
    }

    #[test]
    fn topics_follow_the_standard_levels() {
        let topics = Topics::new("uagv", "v2", "KIT", "0001");
        assert_eq!(topics.order, "uagv/v2/KIT/0001/order");
        assert_eq!(topics.instant_actions, "uagv/v2/KIT/0001/instantActions");
        assert_eq!(topics.connection, "uagv/v2/KIT/0001/connection");
    }

    #[test]
    fn the_connection_states_are_spelled_as_in_the_schema() {
        let text = |state| serde_json::to_string(&state).unwrap_or_default();
        assert_eq!(text(ConnectionState::Online), "\"ONLINE\"");
        assert_eq!(text(ConnectionState::Offline), "\"OFFLINE\"");
        assert_eq!(text(ConnectionState::ConnectionBroken), "\"CONNECTIONBROKEN\"");
    }
}
