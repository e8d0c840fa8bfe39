//! VDA 5050 2.0 messages from the vehicle as device events: `state`,
//! `visualization`, `connection` and `factsheet`.
//!
//! Parsing borrows from the payload (strings are copied only into the
//! events that carry them) and skips every field the events do not need
//! without building a value for it: a state message of a kilobyte decodes
//! in a few microseconds.
//!
//! Strict where the events depend on it: the fields the standard requires
//! and the events use must be present with the right types, and the
//! header's manufacturer and serial number must be the device's. Lenient
//! elsewhere: unknown and optional fields are ignored, `paused` and
//! `agvPosition.positionInitialized` may be absent (no `paused` event; the
//! position is taken as initialised), and a heading in `[0, 2π)` is
//! accepted as well as the standard's `[-π, π]`.

use std::borrow::Cow;
use std::f64::consts::{PI, TAU};
use std::fmt;
use std::marker::PhantomData;

use bazaar_sdk::device::{
    ActionStatus, ActionUpdate, Battery, ConnectionState, Decoded, DeviceContext, DeviceError,
    DeviceEvent, DeviceInfo, DevicePosition, DriverError, ErrorLevel, NodeReached,
};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};

use crate::config::Config;
use crate::topics::{self, Inbound};
use crate::{ID_BYTES_MAX, POSITION_MM_ABS_MAX};

/// The largest payload parsed. A state message is one to a few kilobytes;
/// a factsheet, the largest message of the standard, some tens. 256 KiB
/// leaves room for long order graphs in `nodeStates` while bounding the
/// time and memory one frame may cost; larger payloads are refused before
/// parsing.
pub const PAYLOAD_BYTES_MAX: usize = 256 * 1024;

/// The most `action` events one state message gives. A vehicle lists every
/// action of its order, instant actions included, until the next order;
/// Bazaar's jobs carry at most one action per stop, so 256 covers a long
/// job extended several times. Entries past it are left out of the events
/// (they still count for the job's completion), so that one message's
/// events stay bounded.
pub const ACTION_UPDATES_MAX: usize = 256;

/// The most errors one `errors` event carries; more are left out. No
/// operator reads more than a few dozen simultaneous errors of one vehicle.
pub const ERRORS_MAX: usize = 64;

/// The longest error description kept, in bytes; longer ones are cut on a
/// character boundary. Descriptions are shown to operators, one line each.
pub const DESCRIPTION_BYTES_MAX: usize = 512;

/// The largest heading accepted, in radians either way: a full turn, since
/// some vehicles report `[0, 2π)` instead of the standard's `[-π, π]`, plus
/// a milliradian for rounding.
const THETA_RADIANS_ABS_MAX: f64 = TAU + 0.001;

/// The largest coordinate accepted, in metres (see [`POSITION_MM_ABS_MAX`]).
const POSITION_METRES_ABS_MAX: f64 = POSITION_MM_ABS_MAX as f64 / 1000.0;

/// The most events one frame gives: those of a state message.
pub const EVENTS_MAX: usize = 8 + ACTION_UPDATES_MAX;

/// Decodes a frame from the vehicle in `context` that arrived on `topic`.
pub fn decode(
    context: &DeviceContext,
    topic: &str,
    payload: &[u8],
    config: &Config,
) -> Result<Decoded, DriverError> {
    let device = &context.device;
    let Some(inbound) = topics::inbound(topic, device, config) else {
        return Err(DriverError::malformed(format!(
            "topic {:?} is not one the driver reads for device {:?}",
            cut(topic, DESCRIPTION_BYTES_MAX),
            device.id
        )));
    };
    if payload.len() > PAYLOAD_BYTES_MAX {
        return Err(DriverError::malformed(format!(
            "the payload is {} bytes; at most {PAYLOAD_BYTES_MAX} are read",
            payload.len()
        )));
    }
    let events = match inbound {
        Inbound::State => state_events(parse::<StateJson<'_>>(payload, "state")?, device)?,
        Inbound::Visualization => {
            let message = parse::<VisualizationJson<'_>>(payload, "visualization")?;
            check_optional_header(device, message.manufacturer, message.serial_number)?;
            match message.agv_position {
                Some(agv_position) => position_event(&agv_position, None)?.into_iter().collect(),
                None => Vec::new(),
            }
        }
        Inbound::Connection => {
            let message = parse::<ConnectionJson<'_>>(payload, "connection")?;
            check_header(device, &message.manufacturer, &message.serial_number)?;
            vec![DeviceEvent::Connection(match message.connection_state {
                ConnectionStateJson::Online => ConnectionState::Online,
                ConnectionStateJson::Offline => ConnectionState::Offline,
                ConnectionStateJson::ConnectionBroken => ConnectionState::ConnectionBroken,
            })]
        }
        Inbound::Factsheet => {
            let message = parse::<FactsheetJson<'_>>(payload, "factsheet")?;
            check_optional_header(device, message.manufacturer, message.serial_number)?;
            Vec::new()
        }
    };
    Ok(Decoded { events, memory: context.memory.clone() })
}

/// The events of a state message, in the host's order.
fn state_events(
    state: StateJson<'_>,
    device: &DeviceInfo,
) -> Result<Vec<DeviceEvent>, DriverError> {
    check_header(device, &state.manufacturer, &state.serial_number)?;
    let order_id = id("orderId", &state.order_id)?;
    let last_node_id = id("lastNodeId", &state.last_node_id)?;
    let kept_actions = state.action_states.len().min(ACTION_UPDATES_MAX);
    let mut events = Vec::with_capacity(8 + kept_actions);

    if let Some(agv_position) = &state.agv_position {
        let last_node = (!last_node_id.is_empty()).then(|| last_node_id.clone());
        events.extend(position_event(agv_position, last_node)?);
    }
    let charge = state.battery_state.battery_charge;
    if !charge.is_finite() {
        return Err(DriverError::malformed("batteryState.batteryCharge is not a number"));
    }
    events.push(DeviceEvent::Battery(Battery {
        // Percent to permille; the clamp keeps a vehicle's 100.4 % or -1 %
        // (sensor noise) within the range the host accepts.
        charge_permille: (charge * 10.0).round().clamp(0.0, 1000.0) as u16,
        charging: state.battery_state.charging,
    }));
    events.push(DeviceEvent::OperatingMode(id("operatingMode", &state.operating_mode)?));
    if let Some(paused) = state.paused {
        events.push(DeviceEvent::Paused(paused));
    }
    events.push(DeviceEvent::Driving(state.driving));
    if !order_id.is_empty() && !last_node_id.is_empty() {
        events.push(DeviceEvent::NodeReached(NodeReached {
            job_id: order_id.clone(),
            node_id: last_node_id,
        }));
    }
    for action in &state.action_states[..kept_actions] {
        events.push(DeviceEvent::Action(ActionUpdate {
            job_id: order_id.clone(),
            action_id: id("actionStates.actionId", &action.action_id)?,
            status: match action.action_status {
                ActionStatusJson::Waiting => ActionStatus::Waiting,
                // Initialising and paused actions have started and not
                // ended: for the host they are running.
                ActionStatusJson::Initializing
                | ActionStatusJson::Running
                | ActionStatusJson::Paused => ActionStatus::Running,
                ActionStatusJson::Finished => ActionStatus::Finished,
                ActionStatusJson::Failed => ActionStatus::Failed,
            },
        }));
    }
    let mut errors = Vec::with_capacity(state.errors.len().min(ERRORS_MAX));
    for error in state.errors.iter().take(ERRORS_MAX) {
        errors.push(DeviceError {
            error_type: id("errors.errorType", &error.error_type)?,
            level: match error.error_level {
                ErrorLevelJson::Warning => ErrorLevel::Warning,
                ErrorLevelJson::Fatal => ErrorLevel::Fatal,
            },
            description: error
                .error_description
                .as_ref()
                .map(|text| cut(text, DESCRIPTION_BYTES_MAX).to_owned())
                .unwrap_or_default(),
        });
    }
    events.push(DeviceEvent::Errors(errors));
    // The standard's end of an order (sections 6.10 and 6.11): nothing left to
    // drive, every action ended, the vehicle standing.
    let finished = !order_id.is_empty()
        && state.node_states.0 == 0
        && state.edge_states.0 == 0
        && !state.driving
        && state.action_states.iter().all(|action| {
            matches!(action.action_status, ActionStatusJson::Finished | ActionStatusJson::Failed)
        });
    if finished {
        events.push(DeviceEvent::JobFinished(order_id));
    }
    Ok(events)
}

/// The position event of `agv_position`, if the vehicle says its position
/// is initialised (before that its coordinates mean nothing).
fn position_event(
    agv_position: &AgvPositionJson<'_>,
    last_node_id: Option<String>,
) -> Result<Option<DeviceEvent>, DriverError> {
    if agv_position.position_initialized == Some(false) {
        return Ok(None);
    }
    Ok(Some(DeviceEvent::Position(DevicePosition {
        x_mm: millimetres("agvPosition.x", agv_position.x)?,
        y_mm: millimetres("agvPosition.y", agv_position.y)?,
        theta_mrad: milliradians(agv_position.theta)?,
        map_id: id("agvPosition.mapId", &agv_position.map_id)?,
        last_node_id,
    })))
}

/// Metres on the wire as whole millimetres, rounded to the nearest.
fn millimetres(field: &str, metres: f64) -> Result<i64, DriverError> {
    if !metres.is_finite() || metres.abs() > POSITION_METRES_ABS_MAX {
        return Err(DriverError::malformed(format!(
            "{field} is {metres} m; a coordinate is a number within {POSITION_METRES_ABS_MAX} m \
             of the map's origin"
        )));
    }
    // In range: at most 1e11 mm, far inside i64.
    Ok((metres * 1000.0).round() as i64)
}

/// A heading in radians as whole milliradians in `[-π, π]`.
fn milliradians(radians: f64) -> Result<i32, DriverError> {
    if !radians.is_finite() || radians.abs() > THETA_RADIANS_ABS_MAX {
        return Err(DriverError::malformed(format!(
            "agvPosition.theta is {radians} rad; a heading is within one turn either way"
        )));
    }
    let mut normalised = radians;
    if normalised > PI {
        normalised -= TAU;
    } else if normalised < -PI {
        normalised += TAU;
    }
    // Within [-π - 0.001, π] after one turn at most: a few thousand.
    Ok((normalised * 1000.0).round() as i32)
}

/// `text` as an identifier for an event, refused when longer than
/// [`ID_BYTES_MAX`].
fn id(field: &str, text: &str) -> Result<String, DriverError> {
    if text.len() > ID_BYTES_MAX {
        return Err(DriverError::malformed(format!(
            "{field} is {} bytes long; at most {ID_BYTES_MAX} are accepted",
            text.len()
        )));
    }
    Ok(text.to_owned())
}

/// At most `bytes_max` bytes of `text`, cut on a character boundary.
fn cut(text: &str, bytes_max: usize) -> &str {
    let mut end = text.len().min(bytes_max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn check_header(
    device: &DeviceInfo,
    manufacturer: &str,
    serial_number: &str,
) -> Result<(), DriverError> {
    if manufacturer != device.manufacturer {
        return Err(DriverError::malformed(format!(
            "the header's manufacturer {:?} is not the device's {:?}",
            cut(manufacturer, ID_BYTES_MAX),
            device.manufacturer
        )));
    }
    if serial_number != device.serial_number {
        return Err(DriverError::malformed(format!(
            "the header's serialNumber {:?} is not the device's {:?}",
            cut(serial_number, ID_BYTES_MAX),
            device.serial_number
        )));
    }
    Ok(())
}

/// The header check of a message whose header fields are optional: those
/// present must be the device's.
fn check_optional_header(
    device: &DeviceInfo,
    manufacturer: Option<Text<'_>>,
    serial_number: Option<Text<'_>>,
) -> Result<(), DriverError> {
    check_header(
        device,
        manufacturer.as_deref().unwrap_or(&device.manufacturer),
        serial_number.as_deref().unwrap_or(&device.serial_number),
    )
}

/// Parses `payload` as a `what` message.
fn parse<'a, T: Deserialize<'a>>(payload: &'a [u8], what: &str) -> Result<T, DriverError> {
    serde_json::from_slice(payload)
        .map_err(|error| DriverError::malformed(format!("not a VDA 5050 {what} message: {error}")))
}

/// A JSON string, borrowed from the payload unless it holds escapes.
#[derive(Debug)]
struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(PhantomData<&'a str>);

        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }

        deserializer.deserialize_str(TextVisitor(PhantomData))
    }
}

/// The length of a JSON array whose elements are skipped unread.
struct ListLength(usize);

impl<'de> Deserialize<'de> for ListLength {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LengthVisitor;

        impl<'de> Visitor<'de> for LengthVisitor {
            type Value = ListLength;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an array")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<ListLength, A::Error> {
                let mut length = 0;
                while items.next_element::<IgnoredAny>()?.is_some() {
                    length += 1;
                }
                Ok(ListLength(length))
            }
        }

        deserializer.deserialize_seq(LengthVisitor)
    }
}

/// The fields of a `state` message the events need.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateJson<'a> {
    /// Header: must be the device's.
    #[serde(borrow)]
    manufacturer: Text<'a>,
    /// Header: must be the device's.
    #[serde(borrow)]
    serial_number: Text<'a>,
    /// The current or last order, empty if none.
    #[serde(borrow)]
    order_id: Text<'a>,
    /// The last node reached, empty if none.
    #[serde(borrow)]
    last_node_id: Text<'a>,
    /// Nodes still to drive.
    node_states: ListLength,
    /// Edges still to drive.
    edge_states: ListLength,
    /// Whether the vehicle drives or turns.
    driving: bool,
    /// Whether the vehicle is paused; optional in the standard.
    #[serde(default)]
    paused: Option<bool>,
    /// `AUTOMATIC`, `MANUAL`, ...
    #[serde(borrow)]
    operating_mode: Text<'a>,
    /// Where the vehicle is; optional in the standard.
    #[serde(borrow, default)]
    agv_position: Option<AgvPositionJson<'a>>,
    /// The battery.
    battery_state: BatteryStateJson,
    /// The actions of the order and the instant actions.
    #[serde(borrow)]
    action_states: Vec<ActionStateJson<'a>>,
    /// The current errors.
    #[serde(borrow)]
    errors: Vec<ErrorJson<'a>>,
}

/// `agvPosition`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgvPositionJson<'a> {
    /// East, metres.
    x: f64,
    /// North, metres.
    y: f64,
    /// Heading, radians.
    theta: f64,
    /// The map.
    #[serde(borrow)]
    map_id: Text<'a>,
    /// False until the vehicle has localised itself.
    #[serde(default)]
    position_initialized: Option<bool>,
}

/// `batteryState`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatteryStateJson {
    /// Percent.
    battery_charge: f64,
    /// Whether it charges.
    charging: bool,
}

/// One of `actionStates`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActionStateJson<'a> {
    /// The action.
    #[serde(borrow)]
    action_id: Text<'a>,
    /// Its status.
    action_status: ActionStatusJson,
}

/// `actionStatus`.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum ActionStatusJson {
    /// Not started.
    Waiting,
    /// Being prepared.
    Initializing,
    /// Being performed.
    Running,
    /// Interrupted, to be continued.
    Paused,
    /// Done.
    Finished,
    /// Given up.
    Failed,
}

/// One of `errors`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorJson<'a> {
    /// The error's type.
    #[serde(borrow)]
    error_type: Text<'a>,
    /// How serious it is.
    error_level: ErrorLevelJson,
    /// What it is, optional in the standard.
    #[serde(borrow, default)]
    error_description: Option<Text<'a>>,
}

/// `errorLevel`.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum ErrorLevelJson {
    /// The vehicle can go on.
    Warning,
    /// It cannot.
    Fatal,
}

/// A `visualization` message: every field is optional in the standard.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VisualizationJson<'a> {
    /// Header, if present: must be the device's.
    #[serde(borrow, default)]
    manufacturer: Option<Text<'a>>,
    /// Header, if present: must be the device's.
    #[serde(borrow, default)]
    serial_number: Option<Text<'a>>,
    /// Where the vehicle is.
    #[serde(borrow, default)]
    agv_position: Option<AgvPositionJson<'a>>,
}

/// A `connection` message.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionJson<'a> {
    /// Header: must be the device's.
    #[serde(borrow)]
    manufacturer: Text<'a>,
    /// Header: must be the device's.
    #[serde(borrow)]
    serial_number: Text<'a>,
    /// The link's state.
    connection_state: ConnectionStateJson,
}

/// `connectionState`.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum ConnectionStateJson {
    /// Connected.
    Online,
    /// Disconnected on purpose.
    Offline,
    /// The broker published the last will.
    #[serde(rename = "CONNECTIONBROKEN")]
    ConnectionBroken,
}

/// A `factsheet` message: only its header is checked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FactsheetJson<'a> {
    /// Header, if present: must be the device's.
    #[serde(borrow, default)]
    manufacturer: Option<Text<'a>>,
    /// Header, if present: must be the device's.
    #[serde(borrow, default)]
    serial_number: Option<Text<'a>>,
}
