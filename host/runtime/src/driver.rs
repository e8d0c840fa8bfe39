//! The device-driver extension point: a loaded driver plugin, and the
//! per-worker [`DeviceDriver`] that asks it for a device's topics and
//! turns commands into frames and frames into events.
//!
//! A driver owns a vendor protocol and nothing else: it is pure, and the
//! host does all the input and output (MQTT, retries, the device
//! registry). Like analytics it is never on the order path; its calls come
//! from the device bus, one per command sent and one per message received.
//!
//! The host quarantines a device whose driver faults, so what counts as a
//! fault is decided here, strictly: a trap, a deadline, fuel, memory, the
//! concurrency cap, and any output out of shape ([`CallError::InvalidOutput`]:
//! a topic with a wildcard, too many frames, a battery at 1,200 permille).
//! The driver's own refusal ([`DriverRefusal`]) is an answer, not a fault.
//! The host's input is checked too, before the plugin sees it
//! ([`CallError::InvalidInput`]). Every size the driver or a device
//! controls has a limit below, with the reason for its value.
//!
//! The world has no `state` import: a driver remembers a device through the
//! `memory` it returns, which the host keeps and hands back on the next
//! call. So the state map of a [`PluginCall`] is unused (pass an empty
//! one), and an outcome never carries state writes.

use bazaar_kernel::model::TEXT_LEN_MAX;

use crate::bindings::device_driver::bazaar::commerce::device_types as wit;
use crate::bindings::device_driver::{DeviceDriver as DriverWorld, DeviceDriverPre};
use crate::call::{CallOutcome, PluginCall};
use crate::convert::quote;
use crate::device::{
    ActionKind, ActionStatus, ConnectionState, Decoded, DeviceCommand, DeviceContext, DeviceError,
    DeviceEvent, DeviceInfo, DevicePosition, DriverRefusal, Encoded, ErrorLevel, Frame, Job,
    MapNode,
};
use crate::error::CallError;
use crate::extension::extension_point;
use crate::store_data::InstanceState;
use crate::text::sanitize_for_log;

/// The longest MQTT topic (and namespace) a driver may name, in bytes. A
/// VDA 5050 topic (`uagv/v2/<manufacturer>/<serial>/state`) is 30 to 80
/// bytes; 256 leaves room for long vendor names and serial numbers while
/// keeping every topic the bus routes by cheap to compare. MQTT itself
/// allows 65,535.
pub const TOPIC_BYTES_MAX: usize = 256;

/// The most topics one device's driver may subscribe to. VDA 5050 needs
/// four (state, connection, visualization, factsheet); 16 leaves room for
/// chattier protocols while bounding the broker subscriptions a thousand
/// devices cost.
pub const SUBSCRIPTIONS_PER_DEVICE_MAX: usize = 16;

/// The most frames one command may become. VDA 5050 carries every command
/// in one message (an `order` or an `instantActions`); 8 allows protocols
/// that split a command, and bounds what one command can make the bus
/// publish.
pub const FRAMES_PER_COMMAND_MAX: usize = 8;

/// The largest payload of a frame a driver produces, in bytes. A VDA 5050
/// order of [`JOB_STOPS_MAX`] stops with their nodes, edges and actions is
/// about 50 KB; 256 KiB leaves headroom and stays well under the packet
/// size MQTT brokers accept by default.
pub const FRAME_PAYLOAD_BYTES_MAX: usize = 256 * 1024;

/// The largest inbound payload handed to a driver, in bytes. A VDA 5050
/// state message is 1 to 5 KB and a factsheet tens of KB; 256 KiB admits
/// them all and bounds the copy into the guest and the guest's parse,
/// which run for every message a device sends.
pub const INBOUND_PAYLOAD_BYTES_MAX: usize = 256 * 1024;

/// The most a driver may remember of one device between calls, in bytes:
/// header counters, the current job's id and update, the last node and
/// action states seen. 4 KiB holds that many times over, and the host
/// keeps one per device, so 10,000 devices cost at most 40 MiB.
pub const DRIVER_MEMORY_BYTES_MAX: usize = 4 * 1024;

/// The most stops in one job. A job is released to a device in pieces
/// (`extend-job`), the way VDA 5050 releases an order's horizon, so one
/// message never needs more; 64 is a long pick route and keeps an encoded
/// order far under [`FRAME_PAYLOAD_BYTES_MAX`].
pub const JOB_STOPS_MAX: usize = 64;

/// The most events one inbound frame may become. A VDA 5050 state message
/// gives a handful of facts (connection, position, battery, mode, paused,
/// driving, errors, a node reached, a finished job) plus one progress event
/// per action the vehicle reports, and a job extended several times can
/// carry a few hundred actions (the first-party driver reports at most 256
/// and 264 events in all). 512 leaves room for that and bounds what one
/// message makes the bus apply.
pub const EVENTS_PER_FRAME_MAX: usize = 512;

/// The longest identifier or name in a device's identity, a job or an
/// event (ids, map ids, stations, loads, operating modes, error types), in
/// bytes: the host's limit for free text, far beyond any vendor's ids.
pub const DEVICE_TEXT_BYTES_MAX: usize = TEXT_LEN_MAX;

/// The longest description of a device error, in bytes: a sentence or two
/// for the operator's console; longer prose is noise the node would store
/// and serve for every state message.
pub const ERROR_DESCRIPTION_BYTES_MAX: usize = 1024;

/// The most errors one event may list. A device reports a few at a time;
/// 32 is far beyond a real one and bounds what the node stores per device.
pub const ERRORS_PER_EVENT_MAX: usize = 32;

/// The largest coordinate, either sign, in millimetres: 1,000 km, far
/// beyond any site's map, and small enough that the squared distance
/// between two points (`dx² + dy²` with `dx, dy ≤ 2·10⁹`) fits an `i64`.
pub const COORDINATE_MM_MAX: i64 = 1_000_000_000;

/// The largest heading, either sign, in milliradians: one full turn
/// (2π rad, rounded up), so a driver may report headings in -π..π
/// (VDA 5050's range) or 0..2π; anything beyond is not a heading.
pub const THETA_MRAD_MAX: i32 = 6_284;

/// A full battery, in tenths of a percent, as the WIT defines the charge.
pub const BATTERY_PERMILLE_MAX: u16 = 1000;

/// The longest text of a driver's refusal kept, in bytes; longer text is
/// cut, not refused, since the refusal is the driver's answer: enough for
/// the message and its context, short enough for a counter's label or an
/// operator's notice.
pub const REFUSAL_TEXT_BYTES_MAX: usize = 1024;

/// The MQTT quality of service levels a frame may ask for: at most once
/// and at least once. Exactly once (2) costs a four-packet handshake per
/// message that a protocol with its own header ids does not need.
const QOS_LEVELS: [u8; 2] = [0, 1];

extension_point! {
    /// A compiled and linked device-driver plugin at one version. Cheap to
    /// clone and to share between threads; instances come from
    /// [`DriverPlugin::driver`].
    plugin DriverPlugin(pre: DeviceDriverPre<InstanceState>);

    /// One worker's instance of a device-driver plugin: created on the
    /// first call, reused by the next ones, replaced after a fault. Not
    /// shared between threads; each worker makes its own with
    /// [`DriverPlugin::driver`].
    worker DeviceDriver(bindings: DriverWorld), made by driver;
}

impl DeviceDriver {
    /// Asks the driver for the topic prefix all of `device`'s traffic lies
    /// under: 1 to [`TOPIC_BYTES_MAX`] bytes, ending with `/`, with no
    /// wildcard, control character or leading `$`. Blocking CPU work, like
    /// every call here: run it on a worker thread, never on an async
    /// reactor.
    pub fn namespace(&mut self, call: PluginCall, device: &DeviceInfo) -> CallOutcome<String> {
        if let Err(refused) = check_device(device) {
            return CallOutcome::refused(refused);
        }
        let input = device_to_guest(device);
        self.plugin.loaded.call(
            &mut self.instance,
            call,
            |pre, store| pre.instantiate(store),
            |driver, store| driver.bazaar_commerce_driver().call_namespace(store, &input).map(Ok),
            check_namespace,
        )
    }

    /// Asks the driver for the topics the host subscribes to for `device`:
    /// at most [`SUBSCRIPTIONS_PER_DEVICE_MAX`], each an exact topic of the
    /// namespace's shape. That they lie under the device's namespace is
    /// the caller's to check, since it holds the namespace.
    pub fn subscriptions(
        &mut self,
        call: PluginCall,
        device: &DeviceInfo,
    ) -> CallOutcome<Vec<String>> {
        if let Err(refused) = check_device(device) {
            return CallOutcome::refused(refused);
        }
        let input = device_to_guest(device);
        self.plugin.loaded.call(
            &mut self.instance,
            call,
            |pre, store| pre.instantiate(store),
            |driver, store| {
                driver.bazaar_commerce_driver().call_subscriptions(store, &input).map(Ok)
            },
            check_subscriptions,
        )
    }

    /// Asks the driver for the frames that carry `command` to the device:
    /// at most [`FRAMES_PER_COMMAND_MAX`], each with a topic of the
    /// namespace's shape, a payload of at most [`FRAME_PAYLOAD_BYTES_MAX`]
    /// bytes and a QoS of 0 or 1, with a memory of at most
    /// [`DRIVER_MEMORY_BYTES_MAX`] bytes. `Ok(Err(_))` is the driver's
    /// refusal to express the command. That the topics lie under the
    /// device's namespace is the caller's to check.
    pub fn encode(
        &mut self,
        call: PluginCall,
        context: DeviceContext<'_>,
        command: &DeviceCommand,
    ) -> CallOutcome<Result<Encoded, DriverRefusal>> {
        if let Err(refused) = check_context(&context).and_then(|()| check_command(command)) {
            return CallOutcome::refused(refused);
        }
        let context = context_to_guest(&context);
        let command = command_to_guest(command);
        self.plugin.loaded.call(
            &mut self.instance,
            call,
            |pre, store| pre.instantiate(store),
            |driver, store| {
                driver.bazaar_commerce_driver().call_encode(store, &context, &command).map(Ok)
            },
            |answer| match answer {
                Ok(encoded) => encoded_from_guest(encoded).map(Ok),
                Err(refusal) => Ok(Err(refusal_from_guest(refusal))),
            },
        )
    }

    /// Asks the driver for the events the inbound frame (`topic`,
    /// `payload`) carries: at most [`EVENTS_PER_FRAME_MAX`], every text
    /// and number within its limit, with a memory of at most
    /// [`DRIVER_MEMORY_BYTES_MAX`] bytes. `Ok(Err(DriverRefusal::Malformed(_)))`
    /// is a payload the driver does not understand, for the caller to count
    /// and drop. A payload over [`INBOUND_PAYLOAD_BYTES_MAX`] is refused
    /// before the driver sees it. The payload is copied once, straight into
    /// the guest.
    pub fn decode(
        &mut self,
        call: PluginCall,
        context: DeviceContext<'_>,
        topic: &str,
        payload: &[u8],
    ) -> CallOutcome<Result<Decoded, DriverRefusal>> {
        let checked = check_context(&context)
            .and_then(|()| check_topic("the topic", topic).map_err(CallError::InvalidInput))
            .and_then(|()| check_payload(payload));
        if let Err(refused) = checked {
            return CallOutcome::refused(refused);
        }
        let context = context_to_guest(&context);
        self.plugin.loaded.call(
            &mut self.instance,
            call,
            |pre, store| pre.instantiate(store),
            |driver, store| {
                driver.bazaar_commerce_driver().call_decode(store, &context, topic, payload).map(Ok)
            },
            |answer| match answer {
                Ok(decoded) => decoded_from_guest(decoded).map(Ok),
                Err(refusal) => Ok(Err(refusal_from_guest(refusal))),
            },
        )
    }
}

// ---- The host's input, checked before the plugin sees it ----

fn refuse_input(message: String) -> CallError {
    CallError::InvalidInput(message)
}

/// Checks a text of the host's input against its limit.
fn check_text_in(what: &str, text: &str, bytes_max: usize) -> Result<(), CallError> {
    if text.len() > bytes_max {
        return Err(refuse_input(format!(
            "{what} is {} bytes long; at most {bytes_max} are accepted",
            text.len()
        )));
    }
    Ok(())
}

/// Checks a coordinate of the host's input.
fn check_coordinate_in(what: &str, value_mm: i64) -> Result<(), CallError> {
    if !(-COORDINATE_MM_MAX..=COORDINATE_MM_MAX).contains(&value_mm) {
        return Err(refuse_input(format!(
            "{what} is {value_mm} mm; coordinates lie within ±{COORDINATE_MM_MAX} mm"
        )));
    }
    Ok(())
}

/// Checks a device's identity: an id, and every text within its limit.
fn check_device(device: &DeviceInfo) -> Result<(), CallError> {
    if device.id.is_empty() {
        return Err(refuse_input("the device has no id".to_owned()));
    }
    check_text_in("the device id", &device.id, DEVICE_TEXT_BYTES_MAX)?;
    check_text_in("the device's manufacturer", &device.manufacturer, DEVICE_TEXT_BYTES_MAX)?;
    check_text_in("the device's serial number", &device.serial_number, DEVICE_TEXT_BYTES_MAX)?;
    check_text_in("the device's model", &device.model, DEVICE_TEXT_BYTES_MAX)
}

/// Checks what the host hands the driver with every encode and decode.
fn check_context(context: &DeviceContext<'_>) -> Result<(), CallError> {
    check_device(context.device)?;
    if context.memory.len() > DRIVER_MEMORY_BYTES_MAX {
        return Err(refuse_input(format!(
            "the driver's memory is {} bytes; at most {DRIVER_MEMORY_BYTES_MAX} are kept",
            context.memory.len()
        )));
    }
    if let Some(position) = context.position {
        check_coordinate_in("the position's x", position.x_mm)?;
        check_coordinate_in("the position's y", position.y_mm)?;
        check_text_in("the position's map id", &position.map_id, DEVICE_TEXT_BYTES_MAX)?;
        if let Some(node) = &position.last_node_id {
            check_text_in("the position's last node id", node, DEVICE_TEXT_BYTES_MAX)?;
        }
    }
    Ok(())
}

/// Checks a command: a job's id, its stops' number and every text and
/// coordinate in them.
fn check_command(command: &DeviceCommand) -> Result<(), CallError> {
    let job = match command {
        DeviceCommand::StartJob(job) | DeviceCommand::ExtendJob(job) => job,
        DeviceCommand::Pause | DeviceCommand::Resume | DeviceCommand::CancelJob => return Ok(()),
    };
    if job.job_id.is_empty() {
        return Err(refuse_input("the job has no id".to_owned()));
    }
    check_text_in("the job id", &job.job_id, DEVICE_TEXT_BYTES_MAX)?;
    if job.stops.is_empty() || job.stops.len() > JOB_STOPS_MAX {
        return Err(refuse_input(format!(
            "the job has {} stops; a job has 1 to {JOB_STOPS_MAX}",
            job.stops.len()
        )));
    }
    for stop in &job.stops {
        check_text_in("a stop's node id", &stop.node.id, DEVICE_TEXT_BYTES_MAX)?;
        check_text_in("a stop's map id", &stop.node.map_id, DEVICE_TEXT_BYTES_MAX)?;
        check_coordinate_in("a stop's x", stop.node.x_mm)?;
        check_coordinate_in("a stop's y", stop.node.y_mm)?;
        if let Some(action) = &stop.action {
            check_text_in("an action id", &action.action_id, DEVICE_TEXT_BYTES_MAX)?;
            check_text_in("an action's load id", &action.load_id, DEVICE_TEXT_BYTES_MAX)?;
            check_text_in("an action's station", &action.station, DEVICE_TEXT_BYTES_MAX)?;
        }
    }
    Ok(())
}

/// Checks an inbound payload's size.
fn check_payload(payload: &[u8]) -> Result<(), CallError> {
    if payload.len() > INBOUND_PAYLOAD_BYTES_MAX {
        return Err(refuse_input(format!(
            "an inbound payload of {} bytes; at most {INBOUND_PAYLOAD_BYTES_MAX} are accepted",
            payload.len()
        )));
    }
    Ok(())
}

/// Checks the shape of an MQTT topic to publish or subscribe to: 1 to
/// [`TOPIC_BYTES_MAX`] bytes, no wildcard (`+`, `#`: the host names exact
/// topics, so its namespace check, a prefix test, holds for every message),
/// no control character (MQTT forbids NUL; the rest would garble logs) and
/// no leading `$` (reserved for the broker's own topics). The message names
/// `what` the topic is.
fn check_topic(what: &str, topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.len() > TOPIC_BYTES_MAX {
        return Err(format!(
            "{what} is {} bytes long; a topic is 1 to {TOPIC_BYTES_MAX} bytes",
            topic.len()
        ));
    }
    if topic.contains(['+', '#']) {
        return Err(format!("{what} {} holds an MQTT wildcard (`+` or `#`)", quote(topic)));
    }
    if topic.chars().any(char::is_control) {
        return Err(format!("{what} {} holds a control character", quote(topic)));
    }
    if topic.starts_with('$') {
        return Err(format!("{what} {} starts with `$`, reserved for the broker", quote(topic)));
    }
    Ok(())
}

// ---- The driver's output, checked and converted ----

fn invalid(message: String) -> CallError {
    CallError::InvalidOutput(message)
}

/// Checks a namespace: a topic's shape, ending with `/`.
fn check_namespace(namespace: String) -> Result<String, CallError> {
    check_topic("the namespace", &namespace).map_err(invalid)?;
    if !namespace.ends_with('/') {
        return Err(invalid(format!("the namespace {} does not end with `/`", quote(&namespace))));
    }
    Ok(namespace)
}

/// Checks a device's subscriptions: few enough, each a topic's shape.
fn check_subscriptions(topics: Vec<String>) -> Result<Vec<String>, CallError> {
    if topics.len() > SUBSCRIPTIONS_PER_DEVICE_MAX {
        return Err(invalid(format!(
            "{} subscriptions; at most {SUBSCRIPTIONS_PER_DEVICE_MAX} are accepted per device",
            topics.len()
        )));
    }
    for topic in &topics {
        check_topic("a subscription", topic).map_err(invalid)?;
    }
    Ok(topics)
}

/// Checks the memory a driver returns.
fn check_memory(memory: &[u8]) -> Result<(), CallError> {
    if memory.len() > DRIVER_MEMORY_BYTES_MAX {
        return Err(invalid(format!(
            "a memory of {} bytes; at most {DRIVER_MEMORY_BYTES_MAX} are kept per device",
            memory.len()
        )));
    }
    Ok(())
}

/// Checks and converts an encoded command.
fn encoded_from_guest(encoded: wit::Encoded) -> Result<Encoded, CallError> {
    if encoded.frames.len() > FRAMES_PER_COMMAND_MAX {
        return Err(invalid(format!(
            "{} frames for one command; at most {FRAMES_PER_COMMAND_MAX} are accepted",
            encoded.frames.len()
        )));
    }
    check_memory(&encoded.memory)?;
    let frames = encoded
        .frames
        .into_iter()
        .map(|frame| {
            check_topic("a frame's topic", &frame.topic).map_err(invalid)?;
            if frame.payload.len() > FRAME_PAYLOAD_BYTES_MAX {
                return Err(invalid(format!(
                    "a frame's payload is {} bytes; at most {FRAME_PAYLOAD_BYTES_MAX} are accepted",
                    frame.payload.len()
                )));
            }
            if !QOS_LEVELS.contains(&frame.qos) {
                return Err(invalid(format!(
                    "a frame asks for QoS {}; only 0 and 1 are accepted",
                    frame.qos
                )));
            }
            Ok(Frame {
                topic: frame.topic,
                payload: frame.payload,
                qos: frame.qos,
                retain: frame.retain,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Encoded { frames, memory: encoded.memory })
}

/// Checks and converts a decoded frame.
fn decoded_from_guest(decoded: wit::Decoded) -> Result<Decoded, CallError> {
    if decoded.events.len() > EVENTS_PER_FRAME_MAX {
        return Err(invalid(format!(
            "{} events from one frame; at most {EVENTS_PER_FRAME_MAX} are accepted",
            decoded.events.len()
        )));
    }
    check_memory(&decoded.memory)?;
    let events = decoded.events.into_iter().map(event_from_guest).collect::<Result<Vec<_>, _>>()?;
    Ok(Decoded { events, memory: decoded.memory })
}

/// Checks a text of the driver's output against its limit.
fn text_out(what: &str, text: String, bytes_max: usize) -> Result<String, CallError> {
    if text.len() > bytes_max {
        return Err(invalid(format!(
            "{what} is {} bytes long; at most {bytes_max} are accepted",
            text.len()
        )));
    }
    Ok(text)
}

/// Checks and converts one event.
fn event_from_guest(event: wit::DeviceEvent) -> Result<DeviceEvent, CallError> {
    let id = |what: &str, text: String| text_out(what, text, DEVICE_TEXT_BYTES_MAX);
    Ok(match event {
        wit::DeviceEvent::Connection(state) => DeviceEvent::Connection(match state {
            wit::ConnectionState::Online => ConnectionState::Online,
            wit::ConnectionState::Offline => ConnectionState::Offline,
            wit::ConnectionState::ConnectionBroken => ConnectionState::ConnectionBroken,
        }),
        wit::DeviceEvent::Position(position) => {
            DeviceEvent::Position(position_from_guest(position)?)
        }
        wit::DeviceEvent::Battery(battery) => {
            if battery.charge_permille > BATTERY_PERMILLE_MAX {
                return Err(invalid(format!(
                    "a battery charge of {} permille; the charge is 0 to {BATTERY_PERMILLE_MAX}",
                    battery.charge_permille
                )));
            }
            DeviceEvent::Battery {
                charge_permille: battery.charge_permille,
                charging: battery.charging,
            }
        }
        wit::DeviceEvent::OperatingMode(mode) => {
            DeviceEvent::OperatingMode(id("an operating mode", mode)?)
        }
        wit::DeviceEvent::Paused(paused) => DeviceEvent::Paused(paused),
        wit::DeviceEvent::Driving(driving) => DeviceEvent::Driving(driving),
        wit::DeviceEvent::NodeReached(reached) => DeviceEvent::NodeReached {
            job_id: id("a reached node's job id", reached.job_id)?,
            node_id: id("a reached node's id", reached.node_id)?,
        },
        wit::DeviceEvent::Action(update) => DeviceEvent::Action {
            job_id: id("an action's job id", update.job_id)?,
            action_id: id("an action id", update.action_id)?,
            status: match update.status {
                wit::ActionStatus::Waiting => ActionStatus::Waiting,
                wit::ActionStatus::Running => ActionStatus::Running,
                wit::ActionStatus::Finished => ActionStatus::Finished,
                wit::ActionStatus::Failed => ActionStatus::Failed,
            },
        },
        wit::DeviceEvent::JobFinished(job_id) => {
            DeviceEvent::JobFinished(id("a finished job's id", job_id)?)
        }
        wit::DeviceEvent::Errors(errors) => {
            if errors.len() > ERRORS_PER_EVENT_MAX {
                return Err(invalid(format!(
                    "{} device errors in one event; at most {ERRORS_PER_EVENT_MAX} are accepted",
                    errors.len()
                )));
            }
            DeviceEvent::Errors(
                errors
                    .into_iter()
                    .map(|error| {
                        Ok(DeviceError {
                            error_type: id("an error type", error.error_type)?,
                            level: match error.level {
                                wit::ErrorLevel::Warning => ErrorLevel::Warning,
                                wit::ErrorLevel::Fatal => ErrorLevel::Fatal,
                            },
                            description: text_out(
                                "an error description",
                                error.description,
                                ERROR_DESCRIPTION_BYTES_MAX,
                            )?,
                        })
                    })
                    .collect::<Result<Vec<_>, CallError>>()?,
            )
        }
    })
}

/// Checks and converts a reported position.
fn position_from_guest(position: wit::DevicePosition) -> Result<DevicePosition, CallError> {
    for (axis, value_mm) in [("x", position.x_mm), ("y", position.y_mm)] {
        if !(-COORDINATE_MM_MAX..=COORDINATE_MM_MAX).contains(&value_mm) {
            return Err(invalid(format!(
                "a position's {axis} of {value_mm} mm; coordinates lie within \
                 ±{COORDINATE_MM_MAX} mm"
            )));
        }
    }
    if !(-THETA_MRAD_MAX..=THETA_MRAD_MAX).contains(&position.theta_mrad) {
        return Err(invalid(format!(
            "a heading of {} mrad; headings lie within ±{THETA_MRAD_MAX} mrad",
            position.theta_mrad
        )));
    }
    Ok(DevicePosition {
        x_mm: position.x_mm,
        y_mm: position.y_mm,
        theta_mrad: position.theta_mrad,
        map_id: text_out("a position's map id", position.map_id, DEVICE_TEXT_BYTES_MAX)?,
        last_node_id: position
            .last_node_id
            .map(|node| text_out("a position's last node id", node, DEVICE_TEXT_BYTES_MAX))
            .transpose()?,
    })
}

/// The driver's refusal, its text cut to size and made printable.
fn refusal_from_guest(refusal: wit::DriverError) -> DriverRefusal {
    let trimmed = |text: String| sanitize_for_log(text, REFUSAL_TEXT_BYTES_MAX);
    match refusal {
        wit::DriverError::Malformed(text) => DriverRefusal::Malformed(trimmed(text)),
        wit::DriverError::Unsupported(text) => DriverRefusal::Unsupported(trimmed(text)),
    }
}

// ---- The host's values as the driver sees them ----

fn device_to_guest(device: &DeviceInfo) -> wit::DeviceInfo {
    wit::DeviceInfo {
        id: device.id.clone(),
        manufacturer: device.manufacturer.clone(),
        serial_number: device.serial_number.clone(),
        model: device.model.clone(),
    }
}

fn context_to_guest(context: &DeviceContext<'_>) -> wit::DeviceContext {
    wit::DeviceContext {
        device: device_to_guest(context.device),
        memory: context.memory.to_vec(),
        now_ms: context.now_ms,
        position: context.position.map(|position| wit::DevicePosition {
            x_mm: position.x_mm,
            y_mm: position.y_mm,
            theta_mrad: position.theta_mrad,
            map_id: position.map_id.clone(),
            last_node_id: position.last_node_id.clone(),
        }),
    }
}

fn map_node_to_guest(node: &MapNode) -> wit::MapNode {
    wit::MapNode {
        id: node.id.clone(),
        x_mm: node.x_mm,
        y_mm: node.y_mm,
        map_id: node.map_id.clone(),
    }
}

fn job_to_guest(job: &Job) -> wit::Job {
    wit::Job {
        job_id: job.job_id.clone(),
        update: job.update,
        stops: job
            .stops
            .iter()
            .map(|stop| wit::Stop {
                node: map_node_to_guest(&stop.node),
                action: stop.action.as_ref().map(|action| wit::StopAction {
                    kind: match action.kind {
                        ActionKind::Pick => wit::ActionKind::Pick,
                        ActionKind::Drop => wit::ActionKind::Drop,
                        ActionKind::Charge => wit::ActionKind::Charge,
                    },
                    action_id: action.action_id.clone(),
                    load_id: action.load_id.clone(),
                    station: action.station.clone(),
                }),
            })
            .collect(),
    }
}

fn command_to_guest(command: &DeviceCommand) -> wit::DeviceCommand {
    match command {
        DeviceCommand::StartJob(job) => wit::DeviceCommand::StartJob(job_to_guest(job)),
        DeviceCommand::ExtendJob(job) => wit::DeviceCommand::ExtendJob(job_to_guest(job)),
        DeviceCommand::Pause => wit::DeviceCommand::Pause,
        DeviceCommand::Resume => wit::DeviceCommand::Resume,
        DeviceCommand::CancelJob => wit::DeviceCommand::CancelJob,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> DeviceInfo {
        DeviceInfo {
            id: "agv-1".to_owned(),
            manufacturer: "Acme".to_owned(),
            serial_number: "SN-0001".to_owned(),
            model: "Lift-2".to_owned(),
        }
    }

    fn job(stops: usize) -> Job {
        Job {
            job_id: "job-1".to_owned(),
            update: 0,
            stops: (0..stops)
                .map(|index| crate::device::Stop {
                    node: MapNode {
                        id: format!("N{index}"),
                        x_mm: 1_000 * index as i64,
                        y_mm: 0,
                        map_id: "hall-1".to_owned(),
                    },
                    action: None,
                })
                .collect(),
        }
    }

    fn invalid_input_mentions(result: Result<(), CallError>, fragment: &str) {
        match result {
            Err(CallError::InvalidInput(text)) => {
                assert!(text.contains(fragment), "{text:?} does not mention {fragment:?}")
            }
            other => panic!("expected invalid input mentioning {fragment:?}, got {other:?}"),
        }
    }

    fn invalid_output_mentions<T: std::fmt::Debug>(result: Result<T, CallError>, fragment: &str) {
        match result {
            Err(CallError::InvalidOutput(text)) => {
                assert!(text.contains(fragment), "{text:?} does not mention {fragment:?}")
            }
            other => panic!("expected invalid output mentioning {fragment:?}, got {other:?}"),
        }
    }

    fn frame(topic: &str, payload_bytes: usize, qos: u8) -> wit::Frame {
        wit::Frame {
            topic: topic.to_owned(),
            payload: vec![b'x'; payload_bytes],
            qos,
            retain: false,
        }
    }

    fn decoded(events: Vec<wit::DeviceEvent>) -> wit::Decoded {
        wit::Decoded { events, memory: Vec::new() }
    }

    fn position(x_mm: i64, theta_mrad: i32) -> wit::DevicePosition {
        wit::DevicePosition {
            x_mm,
            y_mm: 0,
            theta_mrad,
            map_id: "hall-1".to_owned(),
            last_node_id: None,
        }
    }

    #[test]
    fn a_namespace_is_an_exact_topic_prefix_ending_with_a_slash() {
        let namespace = "uagv/v2/Acme/SN-0001/".to_owned();
        assert_eq!(check_namespace(namespace.clone()), Ok(namespace));
        invalid_output_mentions(check_namespace("uagv/v2/Acme/SN-0001".to_owned()), "end with");
        invalid_output_mentions(check_namespace(String::new()), "1 to 256 bytes");
        invalid_output_mentions(check_namespace(format!("{}/", "a".repeat(256))), "1 to 256");
        invalid_output_mentions(check_namespace("uagv/+/".to_owned()), "wildcard");
        invalid_output_mentions(check_namespace("uagv/#/".to_owned()), "wildcard");
        invalid_output_mentions(check_namespace("uagv/\0/".to_owned()), "control character");
        invalid_output_mentions(check_namespace("$SYS/".to_owned()), "reserved");
    }

    #[test]
    fn subscriptions_are_few_exact_topics() {
        let topics = vec!["ns/state".to_owned(), "ns/connection".to_owned()];
        assert_eq!(check_subscriptions(topics.clone()), Ok(topics));
        assert_eq!(check_subscriptions(Vec::new()), Ok(Vec::new()));
        invalid_output_mentions(check_subscriptions(vec!["ns/#".to_owned()]), "wildcard");
        let many = vec!["ns/state".to_owned(); SUBSCRIPTIONS_PER_DEVICE_MAX + 1];
        invalid_output_mentions(check_subscriptions(many), "at most 16");
    }

    #[test]
    fn encoded_frames_are_few_small_and_at_most_qos_1() {
        let ok = encoded_from_guest(wit::Encoded {
            frames: vec![frame("ns/order", 10, 1), frame("ns/instantActions", 0, 0)],
            memory: vec![7; DRIVER_MEMORY_BYTES_MAX],
        })
        .expect("a well-formed command");
        assert_eq!(ok.frames.len(), 2);
        assert_eq!(ok.frames[0].topic, "ns/order");
        assert_eq!(ok.memory.len(), DRIVER_MEMORY_BYTES_MAX);

        let encoded = |frames: Vec<wit::Frame>, memory_bytes: usize| {
            encoded_from_guest(wit::Encoded { frames, memory: vec![0; memory_bytes] })
        };
        invalid_output_mentions(
            encoded(vec![frame("ns/order", 1, 0); FRAMES_PER_COMMAND_MAX + 1], 0),
            "at most 8",
        );
        invalid_output_mentions(encoded(vec![frame("ns/order", 1, 2)], 0), "QoS 2");
        invalid_output_mentions(
            encoded(vec![frame("ns/order", FRAME_PAYLOAD_BYTES_MAX + 1, 0)], 0),
            "payload",
        );
        invalid_output_mentions(encoded(vec![frame("ns/+", 1, 0)], 0), "wildcard");
        invalid_output_mentions(encoded(vec![], DRIVER_MEMORY_BYTES_MAX + 1), "memory");
    }

    #[test]
    fn decoded_events_are_converted_field_by_field() {
        let events = vec![
            wit::DeviceEvent::Connection(wit::ConnectionState::ConnectionBroken),
            wit::DeviceEvent::Position(wit::DevicePosition {
                last_node_id: Some("N3".to_owned()),
                ..position(-12_500, -3_141)
            }),
            wit::DeviceEvent::Battery(wit::Battery { charge_permille: 1000, charging: true }),
            wit::DeviceEvent::OperatingMode("AUTOMATIC".to_owned()),
            wit::DeviceEvent::Paused(false),
            wit::DeviceEvent::Driving(true),
            wit::DeviceEvent::NodeReached(wit::NodeReached {
                job_id: "job-1".to_owned(),
                node_id: "N3".to_owned(),
            }),
            wit::DeviceEvent::Action(wit::ActionUpdate {
                job_id: "job-1".to_owned(),
                action_id: "pick-1".to_owned(),
                status: wit::ActionStatus::Failed,
            }),
            wit::DeviceEvent::JobFinished("job-1".to_owned()),
            wit::DeviceEvent::Errors(vec![wit::DeviceError {
                error_type: "noRoute".to_owned(),
                level: wit::ErrorLevel::Fatal,
                description: "blocked aisle".to_owned(),
            }]),
        ];
        let converted = decoded_from_guest(wit::Decoded { events, memory: vec![1, 2] })
            .expect("every event is in range");
        assert_eq!(converted.memory, [1, 2]);
        assert_eq!(
            converted.events,
            [
                DeviceEvent::Connection(ConnectionState::ConnectionBroken),
                DeviceEvent::Position(DevicePosition {
                    x_mm: -12_500,
                    y_mm: 0,
                    theta_mrad: -3_141,
                    map_id: "hall-1".to_owned(),
                    last_node_id: Some("N3".to_owned()),
                }),
                DeviceEvent::Battery { charge_permille: 1000, charging: true },
                DeviceEvent::OperatingMode("AUTOMATIC".to_owned()),
                DeviceEvent::Paused(false),
                DeviceEvent::Driving(true),
                DeviceEvent::NodeReached { job_id: "job-1".to_owned(), node_id: "N3".to_owned() },
                DeviceEvent::Action {
                    job_id: "job-1".to_owned(),
                    action_id: "pick-1".to_owned(),
                    status: ActionStatus::Failed,
                },
                DeviceEvent::JobFinished("job-1".to_owned()),
                DeviceEvent::Errors(vec![DeviceError {
                    error_type: "noRoute".to_owned(),
                    level: ErrorLevel::Fatal,
                    description: "blocked aisle".to_owned(),
                }]),
            ]
        );
    }

    #[test]
    fn decoded_events_out_of_range_are_invalid_output() {
        let one = |event: wit::DeviceEvent| decoded_from_guest(decoded(vec![event]));
        invalid_output_mentions(
            one(wit::DeviceEvent::Battery(wit::Battery { charge_permille: 1001, charging: false })),
            "1001 permille",
        );
        invalid_output_mentions(
            one(wit::DeviceEvent::Position(position(COORDINATE_MM_MAX + 1, 0))),
            "coordinates",
        );
        invalid_output_mentions(
            one(wit::DeviceEvent::Position(position(0, THETA_MRAD_MAX + 1))),
            "heading",
        );
        invalid_output_mentions(
            one(wit::DeviceEvent::OperatingMode("m".repeat(DEVICE_TEXT_BYTES_MAX + 1))),
            "operating mode",
        );
        invalid_output_mentions(
            one(wit::DeviceEvent::Errors(vec![
                wit::DeviceError {
                    error_type: "e".to_owned(),
                    level: wit::ErrorLevel::Warning,
                    description: String::new(),
                };
                ERRORS_PER_EVENT_MAX + 1
            ])),
            "at most 32",
        );
        invalid_output_mentions(
            one(wit::DeviceEvent::Errors(vec![wit::DeviceError {
                error_type: "e".to_owned(),
                level: wit::ErrorLevel::Warning,
                description: "d".repeat(ERROR_DESCRIPTION_BYTES_MAX + 1),
            }])),
            "description",
        );
        invalid_output_mentions(
            decoded_from_guest(decoded(vec![
                wit::DeviceEvent::Paused(true);
                EVENTS_PER_FRAME_MAX + 1
            ])),
            &format!("at most {EVENTS_PER_FRAME_MAX}"),
        );
        invalid_output_mentions(
            decoded_from_guest(wit::Decoded {
                events: Vec::new(),
                memory: vec![0; DRIVER_MEMORY_BYTES_MAX + 1],
            }),
            "memory",
        );
    }

    #[test]
    fn a_refusal_is_an_answer_with_its_text_cut_and_printable() {
        let refusal = refusal_from_guest(wit::DriverError::Malformed(format!(
            "bad\njson{}",
            "x".repeat(2 * REFUSAL_TEXT_BYTES_MAX)
        )));
        let DriverRefusal::Malformed(text) = refusal else { panic!("{refusal:?}") };
        assert_eq!(text.len(), REFUSAL_TEXT_BYTES_MAX);
        assert!(text.starts_with("bad json"));
        assert_eq!(
            refusal_from_guest(wit::DriverError::Unsupported("no charging".to_owned())),
            DriverRefusal::Unsupported("no charging".to_owned())
        );
    }

    #[test]
    fn the_hosts_input_is_checked_before_the_driver_sees_it() {
        assert_eq!(check_device(&device()), Ok(()));
        invalid_input_mentions(
            check_device(&DeviceInfo { id: String::new(), ..device() }),
            "no id",
        );
        invalid_input_mentions(
            check_device(&DeviceInfo { serial_number: "s".repeat(257), ..device() }),
            "serial number",
        );

        let device = device();
        let memory = vec![0; DRIVER_MEMORY_BYTES_MAX + 1];
        let context = DeviceContext { device: &device, memory: &[], now_ms: 1, position: None };
        assert_eq!(check_context(&context), Ok(()));
        invalid_input_mentions(
            check_context(&DeviceContext { memory: &memory, ..context }),
            "memory",
        );
        let far = DevicePosition {
            x_mm: 0,
            y_mm: -COORDINATE_MM_MAX - 1,
            theta_mrad: 0,
            map_id: String::new(),
            last_node_id: None,
        };
        invalid_input_mentions(
            check_context(&DeviceContext { position: Some(&far), ..context }),
            "position's y",
        );

        assert_eq!(check_command(&DeviceCommand::StartJob(job(JOB_STOPS_MAX))), Ok(()));
        assert_eq!(check_command(&DeviceCommand::Pause), Ok(()));
        invalid_input_mentions(
            check_command(&DeviceCommand::ExtendJob(job(JOB_STOPS_MAX + 1))),
            "1 to 64",
        );
        invalid_input_mentions(check_command(&DeviceCommand::StartJob(job(0))), "0 stops");
        let nameless = Job { job_id: String::new(), ..job(1) };
        invalid_input_mentions(check_command(&DeviceCommand::StartJob(nameless)), "no id");

        assert_eq!(check_payload(&vec![0; INBOUND_PAYLOAD_BYTES_MAX]), Ok(()));
        invalid_input_mentions(check_payload(&vec![0; INBOUND_PAYLOAD_BYTES_MAX + 1]), "payload");
    }

    #[test]
    fn commands_reach_the_driver_unchanged() {
        let mut job = job(2);
        job.stops[1].action = Some(crate::device::StopAction {
            kind: ActionKind::Drop,
            action_id: "drop-1".to_owned(),
            load_id: "SKU-1".to_owned(),
            station: "pack-3".to_owned(),
        });
        let wit::DeviceCommand::ExtendJob(guest) =
            command_to_guest(&DeviceCommand::ExtendJob(job.clone()))
        else {
            panic!("an extension stays an extension");
        };
        assert_eq!(guest.job_id, job.job_id);
        assert_eq!(guest.stops.len(), 2);
        assert_eq!(guest.stops[1].node.x_mm, 1_000);
        let action = guest.stops[1].action.as_ref().expect("the drop action");
        assert!(matches!(action.kind, wit::ActionKind::Drop));
        assert_eq!(action.station, "pack-3");
        assert!(matches!(
            command_to_guest(&DeviceCommand::CancelJob),
            wit::DeviceCommand::CancelJob
        ));
    }
}
