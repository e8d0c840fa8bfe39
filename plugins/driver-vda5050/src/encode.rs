//! Host commands as VDA 5050 2.0 messages: `order` for a job and its
//! updates, `instantActions` for pause, resume and cancel.
//!
//! A job becomes an order graph whose first node is where the vehicle is:
//!
//! - the vehicle's `lastNodeId`, when it reported one, with the position
//!   it reported as `nodePosition` (a free-navigating vehicle needs a
//!   position on every node; the standard makes it optional only for
//!   line-guided ones);
//! - otherwise a node `start-{job}` at its reported position, which the
//!   vehicle finds trivially reachable (the standard's option for a vehicle
//!   that stopped between nodes);
//! - otherwise, when it reported nothing, the first stop itself.
//!
//! Then one node per stop, consecutive stops at the same node being one
//! node with each stop's action (a vehicle cannot drive an edge from a node
//! to itself). Nodes get the even `sequenceId`s from 0, the edges between
//! them (`{start}-{end}`) the odd ones; everything is released, since the
//! host sends only what the vehicle may drive now.
//!
//! An `extend-job` is an order update: the same `orderId`, the job's
//! `update` as `orderUpdateId`, and as first node the last node of the
//! previous message, sent again unchanged with its `sequenceId` (the
//! standard's stitching node), then the new stops continuing the
//! numbering.

use std::borrow::Cow;

use bazaar_sdk::device::{
    ActionKind, DeviceCommand, DeviceContext, DriverError, Encoded, Frame, Job, MapNode, StopAction,
};
use serde::Serialize;

use crate::config::{Config, Parameter, ParameterValue};
use crate::memory::{ACTIONS_PER_NODE_MAX, JobMemory, LastNode, Memory};
use crate::timestamp::iso8601_utc;
use crate::topics::{self, Outbound};
use crate::{ID_BYTES_MAX, POSITION_MM_ABS_MAX, PROTOCOL_VERSION};

/// The most stops one command may carry. A warehouse job is a route of a
/// few to a few dozen stops; 64 bounds an order message to tens of
/// kilobytes, which every vehicle's MQTT stack accepts.
pub const JOB_STOPS_MAX: usize = 64;

/// MQTT quality of service of everything the driver publishes. VDA 5050
/// 2.0 section 6.2 asks for QoS 0 on `order` (and 2.1 says the same of
/// `instantActions`, which 2.0 does not name): the headerId, orderUpdateId
/// and the vehicle's state let master control see and resend what was
/// lost. Only `connection`, which the vehicle publishes, is QoS 1.
const QOS_AT_MOST_ONCE: u8 = 0;

/// Encodes `command` for the vehicle in `context`.
pub fn encode(
    context: &DeviceContext,
    command: &DeviceCommand,
    config: &Config,
) -> Result<Encoded, DriverError> {
    let device = &context.device;
    if let Some(problem) = topics::addressing_problem(device) {
        return Err(DriverError::unsupported(problem));
    }
    let mut memory = match Memory::read(&context.memory) {
        Ok(memory) => memory,
        Err(problem) => {
            // The host's copy is unreadable (another driver version wrote
            // it, or it was damaged): start afresh rather than refuse the
            // vehicle every command. Header ids restart at 0 and an order
            // update is refused until the next new job.
            bazaar_sdk::log::warn(&format!(
                "vda5050: the memory of device {:?} is unreadable ({problem}); starting afresh",
                device.id
            ));
            Memory::default()
        }
    };
    let timestamp = iso8601_utc(context.now_ms);
    let header = |header_id| Header {
        header_id,
        timestamp: &timestamp,
        version: PROTOCOL_VERSION,
        manufacturer: &device.manufacturer,
        serial_number: &device.serial_number,
    };
    let (outbound, payload) = match command {
        DeviceCommand::StartJob(job) => {
            check_job(job)?;
            if job.update != 0 {
                return Err(DriverError::unsupported(format!(
                    "start-job {:?} has update {}; a new job starts at update 0 (use \
                     extend-job to add stops)",
                    job.job_id, job.update
                )));
            }
            let first = start_node(context, job);
            let plan = plan(job, first, None)?;
            let header_id = memory.order_header_id;
            let payload = order_payload(header(header_id), job, &plan, context, config)?;
            memory.order_header_id = header_id.wrapping_add(1);
            memory.job = Some(plan.into_memory(job));
            (Outbound::Order, payload)
        }
        DeviceCommand::ExtendJob(job) => {
            check_job(job)?;
            let Some(current) = &memory.job else {
                return Err(DriverError::unsupported(format!(
                    "extend-job {:?}: the vehicle has no job to extend (none was started, or it \
                     was cancelled)",
                    job.job_id
                )));
            };
            if current.order_id != job.job_id {
                return Err(DriverError::unsupported(format!(
                    "extend-job {:?}: the vehicle's job is {:?}; only the current job can be \
                     extended",
                    job.job_id, current.order_id
                )));
            }
            if job.update <= current.order_update_id {
                return Err(DriverError::unsupported(format!(
                    "extend-job {:?} has update {}, but update {} was already sent; each \
                     extension must count up",
                    job.job_id, job.update, current.order_update_id
                )));
            }
            let last = &current.last_node;
            let stitch = PlannedNode {
                id: Cow::Borrowed(&last.node.id),
                position: Some(Position::of(&last.node)),
                actions: last.actions.iter().collect(),
            };
            let plan = plan(job, Some(stitch), Some(last.sequence_id))?;
            let header_id = memory.order_header_id;
            let payload = order_payload(header(header_id), job, &plan, context, config)?;
            let job_memory = plan.into_memory(job);
            memory.order_header_id = header_id.wrapping_add(1);
            memory.job = Some(job_memory);
            (Outbound::Order, payload)
        }
        DeviceCommand::Pause => instant_action(&mut memory, header, "startPause", context.now_ms)?,
        DeviceCommand::Resume => instant_action(&mut memory, header, "stopPause", context.now_ms)?,
        DeviceCommand::CancelJob => {
            let sent = instant_action(&mut memory, header, "cancelOrder", context.now_ms)?;
            // The vehicle deletes the order; an update of it would be refused.
            memory.job = None;
            sent
        }
    };
    let frame = Frame {
        topic: topics::outbound(device, config, outbound),
        payload,
        qos: QOS_AT_MOST_ONCE,
        retain: false,
    };
    Ok(Encoded { frames: vec![frame], memory: memory.write() })
}

/// The instantActions message with one action of `action_type`, its header
/// id taken from and counted up in `memory`.
fn instant_action<'a>(
    memory: &mut Memory,
    header: impl Fn(u32) -> Header<'a>,
    action_type: &'static str,
    now_ms: u64,
) -> Result<(Outbound, Vec<u8>), DriverError> {
    let header_id = memory.instant_actions_header_id;
    // The header id alone repeats if the host loses the memory; with the
    // time it stays unique for the vehicle, as the standard asks.
    let action_id = format!("{action_type}-{header_id}-{now_ms}");
    let actions = [ActionJson {
        action_type,
        action_id: Cow::Owned(action_id),
        blocking_type: "HARD",
        action_parameters: Vec::new(),
    }];
    let message = InstantActionsJson {
        header: header(header_id),
        actions: &actions,
        instant_actions: &actions,
    };
    let payload = to_json(&message)?;
    memory.instant_actions_header_id = header_id.wrapping_add(1);
    Ok((Outbound::InstantActions, payload))
}

/// Refuses a job the driver cannot express: no stops, too many, or
/// identifiers that are empty or too long, or positions beyond the range
/// the wire's floats carry exactly.
fn check_job(job: &Job) -> Result<(), DriverError> {
    let refuse = |problem: String| {
        Err(DriverError::unsupported(format!("job {:?}: {problem}", truncated(&job.job_id))))
    };
    check_id("the job id", &job.job_id, false).or_else(refuse)?;
    if job.stops.is_empty() {
        return refuse("has no stops".to_owned());
    }
    if job.stops.len() > JOB_STOPS_MAX {
        return refuse(format!(
            "has {} stops; at most {JOB_STOPS_MAX} can be sent at once (send the rest with \
             extend-job)",
            job.stops.len()
        ));
    }
    for (index, stop) in job.stops.iter().enumerate() {
        let at = |what: &str| format!("stop {index}: {what}");
        check_id(&at("the node id"), &stop.node.id, false).or_else(refuse)?;
        check_id(&at("the map id"), &stop.node.map_id, true).or_else(refuse)?;
        check_position(stop.node.x_mm, stop.node.y_mm)
            .map_err(|problem| at(&problem))
            .or_else(refuse)?;
        if let Some(action) = &stop.action {
            check_id(&at("the action id"), &action.action_id, false).or_else(refuse)?;
            check_id(&at("the load id"), &action.load_id, true).or_else(refuse)?;
            check_id(&at("the station"), &action.station, true).or_else(refuse)?;
        }
    }
    Ok(())
}

fn check_id(what: &str, text: &str, may_be_empty: bool) -> Result<(), String> {
    if text.is_empty() && !may_be_empty {
        return Err(format!("{what} is empty"));
    }
    if text.len() > ID_BYTES_MAX {
        return Err(format!(
            "{what} is {} bytes long; at most {ID_BYTES_MAX} are allowed",
            text.len()
        ));
    }
    Ok(())
}

fn check_position(x_mm: i64, y_mm: i64) -> Result<(), String> {
    if x_mm.unsigned_abs() > POSITION_MM_ABS_MAX || y_mm.unsigned_abs() > POSITION_MM_ABS_MAX {
        return Err(format!(
            "the position ({x_mm} mm, {y_mm} mm) is beyond {POSITION_MM_ABS_MAX} mm from the \
             map's origin"
        ));
    }
    Ok(())
}

/// At most 64 bytes of `text`, for quoting in a message.
fn truncated(text: &str) -> &str {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Where the vehicle starts a new job: its last node, else its position,
/// else nowhere (the first stop is the first node).
fn start_node<'a>(context: &'a DeviceContext, job: &Job) -> Option<PlannedNode<'a>> {
    let position = context.position.as_ref()?;
    match position.last_node_id.as_deref() {
        Some(last_node_id) if !last_node_id.is_empty() => Some(PlannedNode {
            id: Cow::Borrowed(last_node_id),
            position: Some(Position {
                x_mm: position.x_mm,
                y_mm: position.y_mm,
                map_id: &position.map_id,
            }),
            actions: Vec::new(),
        }),
        _ => Some(PlannedNode {
            id: Cow::Owned(format!("start-{}", job.job_id)),
            position: Some(Position {
                x_mm: position.x_mm,
                y_mm: position.y_mm,
                map_id: &position.map_id,
            }),
            actions: Vec::new(),
        }),
    }
}

/// A node as it will be sent.
struct PlannedNode<'a> {
    /// Its `nodeId`.
    id: Cow<'a, str>,
    /// Its `nodePosition`, when the driver knows it.
    position: Option<Position<'a>>,
    /// Its actions, in order.
    actions: Vec<&'a StopAction>,
}

/// A node's position on its map, in millimetres.
#[derive(Clone, Copy)]
struct Position<'a> {
    /// East, millimetres.
    x_mm: i64,
    /// North, millimetres.
    y_mm: i64,
    /// The map.
    map_id: &'a str,
}

impl<'a> Position<'a> {
    fn of(node: &'a MapNode) -> Self {
        Self { x_mm: node.x_mm, y_mm: node.y_mm, map_id: &node.map_id }
    }
}

/// The nodes of one order message and the `sequenceId` of the first.
struct Plan<'a> {
    /// The nodes, in driving order.
    nodes: Vec<PlannedNode<'a>>,
    /// The first node's `sequenceId`; node `i` has `first + 2 i`.
    first_sequence_id: u32,
    /// The last node's map node, which the next update starts from.
    last_stop: &'a MapNode,
}

impl Plan<'_> {
    /// The `sequenceId` of node `index`.
    fn sequence_id(&self, index: usize) -> u32 {
        // `plan` checked that the last node's id fits.
        self.first_sequence_id + 2 * index as u32
    }

    /// What the driver remembers of the job after sending this plan.
    fn into_memory(self, job: &Job) -> JobMemory {
        let last_index = self.nodes.len() - 1;
        let sequence_id = self.sequence_id(last_index);
        let last_stop = self.last_stop.clone();
        let actions = self
            .nodes
            .into_iter()
            .next_back()
            .map_or_else(Vec::new, |node| node.actions.into_iter().cloned().collect());
        JobMemory {
            order_id: job.job_id.clone(),
            order_update_id: job.update,
            last_node: LastNode { node: last_stop, sequence_id, actions },
        }
    }
}

/// The nodes for `job`'s stops after `first` (the start node of a new job
/// or the stitching node of an update, which keeps its actions
/// unchanged), numbered from `stitch_sequence_id` (an update) or 0.
fn plan<'a>(
    job: &'a Job,
    first: Option<PlannedNode<'a>>,
    stitch_sequence_id: Option<u32>,
) -> Result<Plan<'a>, DriverError> {
    let mut nodes: Vec<PlannedNode<'a>> = Vec::with_capacity(job.stops.len() + 1);
    nodes.extend(first);
    let mut last_stop = None;
    for stop in &job.stops {
        last_stop = Some(&stop.node);
        let after_stitch = stitch_sequence_id.is_some() && nodes.len() == 1;
        match nodes.last_mut() {
            Some(previous) if previous.id == stop.node.id.as_str() => {
                // The start node was the vehicle's own node at the position
                // it reported; now that it is a stop, the map's position
                // stands. A stitching node is resent exactly as before.
                if !after_stitch {
                    previous.position = Some(Position::of(&stop.node));
                }
                let Some(action) = &stop.action else {
                    continue;
                };
                if after_stitch {
                    return Err(DriverError::unsupported(format!(
                        "extend-job {:?}: the first new stop, at node {:?}, is where the job \
                         already ends, and an action cannot be added to a node the vehicle was \
                         already sent",
                        job.job_id, stop.node.id
                    )));
                }
                if previous.actions.len() == ACTIONS_PER_NODE_MAX {
                    return Err(DriverError::unsupported(format!(
                        "job {:?}: more than {ACTIONS_PER_NODE_MAX} consecutive stops with \
                         actions at node {:?}",
                        job.job_id, stop.node.id
                    )));
                }
                previous.actions.push(action);
            }
            _ => nodes.push(PlannedNode {
                id: Cow::Borrowed(&stop.node.id),
                position: Some(Position::of(&stop.node)),
                actions: stop.action.iter().collect(),
            }),
        }
    }
    let first_sequence_id = stitch_sequence_id.unwrap_or(0);
    if stitch_sequence_id.is_some() && nodes.len() == 1 {
        return Err(DriverError::unsupported(format!(
            "extend-job {:?}: every new stop is the node the job already ends at; there is \
             nothing to add",
            job.job_id
        )));
    }
    let steps = u32::try_from(nodes.len() - 1).ok().and_then(|count| count.checked_mul(2));
    if steps.and_then(|steps| first_sequence_id.checked_add(steps)).is_none() {
        return Err(DriverError::unsupported(format!(
            "job {:?} has been extended so often that its sequence ids are exhausted; start a \
             new job",
            job.job_id
        )));
    }
    // `check_job` refused a job without stops.
    let last_stop = last_stop.ok_or_else(|| DriverError::unsupported("a job needs a stop"))?;
    Ok(Plan { nodes, first_sequence_id, last_stop })
}

/// The order message of `plan`.
fn order_payload(
    header: Header<'_>,
    job: &Job,
    plan: &Plan<'_>,
    context: &DeviceContext,
    config: &Config,
) -> Result<Vec<u8>, DriverError> {
    let model = context.device.model.as_str();
    let mut nodes = Vec::with_capacity(plan.nodes.len());
    for (index, node) in plan.nodes.iter().enumerate() {
        let node_position = match node.position {
            Some(position) => {
                check_position(position.x_mm, position.y_mm).map_err(DriverError::unsupported)?;
                Some(NodePositionJson {
                    x: metres(position.x_mm),
                    y: metres(position.y_mm),
                    map_id: position.map_id,
                })
            }
            None => None,
        };
        nodes.push(NodeJson {
            node_id: &node.id,
            sequence_id: plan.sequence_id(index),
            released: true,
            node_position,
            actions: node
                .actions
                .iter()
                .map(|action| ActionJson {
                    action_type: action_type(action.kind),
                    action_id: Cow::Borrowed(&action.action_id),
                    blocking_type: "HARD",
                    action_parameters: parameters(config.parameters(model, action.kind), action),
                })
                .collect(),
        });
    }
    let edges: Vec<EdgeJson<'_>> = plan
        .nodes
        .windows(2)
        .enumerate()
        .map(|(index, pair)| EdgeJson {
            edge_id: format!("{}-{}", pair[0].id, pair[1].id),
            sequence_id: plan.sequence_id(index) + 1,
            released: true,
            start_node_id: &pair[0].id,
            end_node_id: &pair[1].id,
            actions: Vec::new(),
        })
        .collect();
    to_json(&OrderJson { header, order_id: &job.job_id, order_update_id: job.update, nodes, edges })
}

/// The VDA 5050 predefined action for `kind`.
fn action_type(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Pick => "pick",
        ActionKind::Drop => "drop",
        ActionKind::Charge => "startCharging",
    }
}

/// The configured parameters, then `stationName` and, when known, `loadId`.
fn parameters<'a>(configured: &'a [Parameter], action: &'a StopAction) -> Vec<ParameterJson<'a>> {
    let mut list = Vec::with_capacity(configured.len() + 2);
    list.extend(configured.iter().map(|parameter| ParameterJson {
        key: &parameter.key,
        value: ValueJson::Configured(&parameter.value),
    }));
    list.push(ParameterJson { key: "stationName", value: ValueJson::Text(&action.station) });
    if !action.load_id.is_empty() {
        list.push(ParameterJson { key: "loadId", value: ValueJson::Text(&action.load_id) });
    }
    list
}

/// Millimetres as the wire's metres. Exact to the millimetre: positions are
/// bounded far below 2^53 mm, where `f64` stops holding every integer, and
/// the shortest decimal form of `n / 1000.0` is `n` with three decimals.
fn metres(millimetres: i64) -> f64 {
    millimetres as f64 / 1000.0
}

fn to_json(message: &impl Serialize) -> Result<Vec<u8>, DriverError> {
    // Serialising these structs cannot fail (string keys, finite numbers);
    // the error is kept rather than unwrapped all the same.
    serde_json::to_vec(message).map_err(|error| {
        DriverError::unsupported(format!("the message cannot be written: {error}"))
    })
}

/// The header every message starts with.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Header<'a> {
    /// Counts up by one per message on the topic.
    header_id: u32,
    /// ISO 8601, UTC, milliseconds.
    timestamp: &'a str,
    /// The protocol version, `2.0.0`.
    version: &'static str,
    /// The vehicle's manufacturer.
    manufacturer: &'a str,
    /// The vehicle's serial number.
    serial_number: &'a str,
}

/// An `order` message.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderJson<'a> {
    /// The header fields.
    #[serde(flatten)]
    header: Header<'a>,
    /// The job id.
    order_id: &'a str,
    /// 0, then the job's update.
    order_update_id: u32,
    /// The nodes, in driving order.
    nodes: Vec<NodeJson<'a>>,
    /// The edges between consecutive nodes.
    edges: Vec<EdgeJson<'a>>,
}

/// A node of an order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeJson<'a> {
    /// The map node's id.
    node_id: &'a str,
    /// Its place in the order: even numbers from 0.
    sequence_id: u32,
    /// Always true: the host sends only what may be driven now.
    released: bool,
    /// Where it is, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    node_position: Option<NodePositionJson<'a>>,
    /// What to do there.
    actions: Vec<ActionJson<'a>>,
}

/// A node's position in metres.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodePositionJson<'a> {
    /// East, metres.
    x: f64,
    /// North, metres.
    y: f64,
    /// The map.
    map_id: &'a str,
}

/// An edge of an order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EdgeJson<'a> {
    /// `{startNodeId}-{endNodeId}`.
    edge_id: String,
    /// Its place in the order: odd numbers, between its nodes'.
    sequence_id: u32,
    /// Always true, as the nodes.
    released: bool,
    /// Where it starts.
    start_node_id: &'a str,
    /// Where it ends.
    end_node_id: &'a str,
    /// None: actions happen at stops.
    actions: Vec<ActionJson<'a>>,
}

/// An action, on a node or instant.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActionJson<'a> {
    /// The predefined action, such as `pick`.
    action_type: &'static str,
    /// Unique for the vehicle.
    action_id: Cow<'a, str>,
    /// Always `HARD`: nothing else runs (and the vehicle does not drive)
    /// while a load is handled, charging starts or the vehicle pauses.
    blocking_type: &'static str,
    /// The parameters.
    action_parameters: Vec<ParameterJson<'a>>,
}

/// One action parameter.
#[derive(Serialize)]
struct ParameterJson<'a> {
    /// The key.
    key: &'a str,
    /// The value.
    value: ValueJson<'a>,
}

/// A parameter's value: a configured one, or a stop's text.
#[derive(Serialize)]
#[serde(untagged)]
enum ValueJson<'a> {
    /// From the configuration.
    Configured(&'a ParameterValue),
    /// From the stop.
    Text(&'a str),
}

/// An `instantActions` message.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InstantActionsJson<'a> {
    /// The header fields.
    #[serde(flatten)]
    header: Header<'a>,
    /// The actions, under the 2.0 key.
    actions: &'a [ActionJson<'a>],
    /// The same actions under the 1.1 key, which some vehicles sold as 2.0
    /// still read.
    instant_actions: &'a [ActionJson<'a>],
}
