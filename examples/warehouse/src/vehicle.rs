//! One simulated vehicle as a pure state machine: VDA 5050 messages and time
//! in, state out. No IO and no clock: the caller passes the simulated time
//! (microseconds since the vehicle's start) into every call, which is what
//! makes the behaviour testable without a broker and lets one task per
//! vehicle sleep until the next thing that can happen.
//!
//! The rules implemented here are those of VDA 5050 2.0.0: order acceptance
//! and update (§6.6.2, figure 8), rejection (§6.6.4), cancellation (§6.6.3),
//! node traversal and action triggering (§6.10.2), action states (§6.11) and
//! blocking types (§6.12, figure 15), and the predefined actions (§6.8).

use std::collections::VecDeque;
use std::f64::consts::PI;

use crate::VehicleStatus;
use crate::protocol::{
    Action, ActionParameter, ActionState, ActionStatus, AgvPosition, BatteryState, BlockingType,
    EdgeState, ErrorEntry, ErrorLevel, ErrorReference, Header, InstantActionsMessage, Load,
    NodePosition, NodeState, OrderEdge, OrderMessage, OrderNode, SafetyState, StateMessage,
    Velocity, VisualizationMessage,
};

/// Nodes in one order message (base and horizon). A route between two
/// stations spans tens of nodes; 256 leaves room for a tour of an aisle
/// while keeping an order, and the state echoing it, near 64 KiB.
pub(crate) const ORDER_NODES_MAX: usize = 256;

/// Nodes left to traverse after updates have been appended: the same bound
/// as one order, so that updates cannot grow the state without driving.
pub(crate) const NODE_STATES_MAX: usize = ORDER_NODES_MAX;

/// Actions on one node. A station stop needs a handful (pick, drop, charge);
/// 16 leaves room without letting one node keep the vehicle busy for long.
pub(crate) const NODE_ACTIONS_MAX: usize = 16;

/// Parameters of one action: the predefined actions use at most seven.
pub(crate) const ACTION_PARAMETERS_MAX: usize = 16;

/// Instant actions in one message: pause, resume, cancel and a few requests
/// fit many times over.
pub(crate) const INSTANT_ACTIONS_MAX: usize = 16;

/// Order action states kept (they accumulate over updates until a new
/// order): enough for a long order, small enough for one state message.
pub(crate) const ORDER_ACTION_STATES_MAX: usize = 1024;

/// Instant action states kept; the oldest finished ones are dropped first
/// so that a master control pausing and resuming all day does not grow the
/// state forever.
pub(crate) const INSTANT_ACTION_STATES_MAX: usize = 32;

/// Errors reported at once; the oldest warnings are dropped first (a FATAL
/// error is never dropped). A flood of malformed messages thus costs a
/// bounded state.
pub(crate) const ERRORS_MAX: usize = 16;

/// Length of identifiers (orderId, nodeId, edgeId, actionId, mapId, load
/// ids): UUIDs take 36 bytes; 128 leaves room for readable names.
pub(crate) const ID_LENGTH_BYTES_MAX: usize = 128;

/// Length of descriptions echoed in the state and of parameter values kept
/// in loads: long enough for a sentence, short enough to keep states small.
pub(crate) const DESCRIPTION_LENGTH_BYTES_MAX: usize = 256;

/// Largest coordinate accepted, metres: larger than any site, small enough
/// that millimetres stay exact in an f64 and travel times stay finite.
const COORDINATE_M_MAX: f64 = 100_000.0;

/// How close to a node counts as on it when the order allows no deviation
/// ("the normal tolerance of the AGV manufacturer", §6.7): the positioning
/// repeatability of a natural-navigation carrier.
const POSITION_TOLERANCE_MM: f64 = 50.0;

/// The load handling positions (shelves) of the simulated tote carrier, as
/// listed in the factsheet's `loadSpecification.loadPositions`.
pub(crate) const LOAD_POSITIONS: [&str; 4] = ["shelf1", "shelf2", "shelf3", "shelf4"];

/// Battery used per kilometre driven: a warehouse carrier drives about 50 km
/// on a charge.
const BATTERY_DRAIN_PERCENT_PER_KM: f64 = 2.0;

/// Battery gained per minute on the charger: empty to full in a bit over an
/// hour.
const BATTERY_CHARGE_PERCENT_PER_MINUTE: f64 = 1.5;

/// Battery charge of a vehicle when it is created, percent.
const BATTERY_CHARGE_INITIAL_PERCENT: f64 = 100.0;

/// Microseconds per second, for speed and duration arithmetic.
const US_PER_S: f64 = 1_000_000.0;

/// The actions this vehicle performs; the factsheet lists exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActionKind {
    /// Take a load onto a shelf (node).
    Pick,
    /// Put a load down (node).
    Drop,
    /// Start charging (node or instant).
    StartCharging,
    /// Stop charging (node or instant).
    StopCharging,
    /// Activate the pause mode (instant).
    StartPause,
    /// Deactivate the pause mode (instant).
    StopPause,
    /// Cancel the order (instant).
    CancelOrder,
    /// Publish a state now (instant).
    StateRequest,
    /// Publish the factsheet now (instant).
    FactsheetRequest,
}

impl ActionKind {
    /// Every supported action, in the factsheet's order.
    pub(crate) const ALL: [ActionKind; 9] = [
        ActionKind::Pick,
        ActionKind::Drop,
        ActionKind::StartCharging,
        ActionKind::StopCharging,
        ActionKind::StartPause,
        ActionKind::StopPause,
        ActionKind::CancelOrder,
        ActionKind::StateRequest,
        ActionKind::FactsheetRequest,
    ];

    /// The `actionType` string of the standard (§6.8.1).
    pub(crate) fn name(self) -> &'static str {
        match self {
            ActionKind::Pick => "pick",
            ActionKind::Drop => "drop",
            ActionKind::StartCharging => "startCharging",
            ActionKind::StopCharging => "stopCharging",
            ActionKind::StartPause => "startPause",
            ActionKind::StopPause => "stopPause",
            ActionKind::CancelOrder => "cancelOrder",
            ActionKind::StateRequest => "stateRequest",
            ActionKind::FactsheetRequest => "factsheetRequest",
        }
    }

    /// The action named `action_type`, if this vehicle supports it.
    fn parse(action_type: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|kind| kind.name() == action_type)
    }

    /// Whether the action may be attached to a node.
    pub(crate) fn on_nodes(self) -> bool {
        matches!(
            self,
            ActionKind::Pick
                | ActionKind::Drop
                | ActionKind::StartCharging
                | ActionKind::StopCharging
        )
    }

    /// Whether the action may be sent as an instant action.
    pub(crate) fn instant(self) -> bool {
        !matches!(self, ActionKind::Pick | ActionKind::Drop)
    }
}

/// Motion and timing settings of a vehicle (simulated time).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Motion {
    /// Cruising speed, mm/s.
    pub(crate) speed_mm_per_s: u32,
    /// How long each node action takes once running, microseconds.
    pub(crate) action_duration_us: u64,
}

/// Who the vehicle is.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The manufacturer in topics and headers.
    pub(crate) manufacturer: String,
    /// The serial number in topics and headers.
    pub(crate) serial_number: String,
    /// The map the vehicle drives on.
    pub(crate) map_id: String,
}

/// A point on the map, millimetres.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    /// East.
    x_mm: f64,
    /// North.
    y_mm: f64,
}

impl Point {
    /// Straight-line distance to `other`.
    fn distance_mm(self, other: Point) -> f64 {
        (other.x_mm - self.x_mm).hypot(other.y_mm - self.y_mm)
    }

    /// The point of a node position.
    fn of(position: &NodePosition) -> Point {
        Point { x_mm: position.x * 1000.0, y_mm: position.y * 1000.0 }
    }
}

/// The straight drive to the next node.
#[derive(Debug, Clone, Copy)]
struct Leg {
    /// Where the drive started.
    from: Point,
    /// The node driven to.
    to: Point,
    /// Simulated time the drive started.
    start_us: u64,
    /// Simulated duration of the drive.
    duration_us: u64,
    /// Speed on the leg, mm/s.
    speed_mm_per_s: f64,
}

impl Leg {
    /// When the node is reached.
    fn arrival_us(&self) -> u64 {
        self.start_us.saturating_add(self.duration_us)
    }

    /// Where the vehicle is at `now_us`.
    fn position_at(&self, now_us: u64) -> Point {
        if self.duration_us == 0 {
            return self.to;
        }
        let elapsed_us = now_us.saturating_sub(self.start_us).min(self.duration_us);
        let fraction = elapsed_us as f64 / self.duration_us as f64;
        Point {
            x_mm: self.from.x_mm + (self.to.x_mm - self.from.x_mm) * fraction,
            y_mm: self.from.y_mm + (self.to.y_mm - self.from.y_mm) * fraction,
        }
    }

    /// The heading of the drive, radians.
    fn heading_rad(&self) -> f64 {
        (self.to.y_mm - self.from.y_mm).atan2(self.to.x_mm - self.from.x_mm)
    }
}

/// Where an action's clock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActionTimer {
    /// Not running.
    Idle,
    /// Running; done at this simulated time.
    FinishesAt(u64),
    /// Paused with this much left.
    Remaining(u64),
}

/// An action the vehicle knows of, with its progress.
#[derive(Debug, Clone)]
struct ActionRecord {
    /// The action's identifier.
    action_id: String,
    /// The action's type as sent.
    action_type: String,
    /// The action's description as sent.
    description: Option<String>,
    /// What the action does, if supported.
    kind: Option<ActionKind>,
    /// Whether it blocks driving or other actions.
    blocking_type: BlockingType,
    /// Its parameters.
    parameters: Vec<ActionParameter>,
    /// Its status.
    status: ActionStatus,
    /// What came of it.
    result_description: Option<String>,
    /// Its clock.
    timer: ActionTimer,
}

impl ActionRecord {
    /// A new record for `action`, in `status`.
    fn new(action: &Action, status: ActionStatus) -> ActionRecord {
        ActionRecord {
            action_id: action.action_id.clone(),
            action_type: action.action_type.clone(),
            description: action.action_description.clone(),
            kind: ActionKind::parse(&action.action_type),
            blocking_type: action.blocking_type,
            parameters: action.action_parameters.clone(),
            status,
            result_description: None,
            timer: ActionTimer::Idle,
        }
    }

    /// The parameter `key` as a string, if present and a string.
    fn text_parameter(&self, key: &str) -> Option<String> {
        self.parameters
            .iter()
            .find(|parameter| parameter.key == key)
            .and_then(|parameter| parameter.value.as_str())
            .map(str::to_owned)
    }

    /// The record as reported in `actionStates`.
    fn state(&self) -> ActionState {
        ActionState {
            action_id: self.action_id.clone(),
            action_type: self.action_type.clone(),
            action_description: self.description.clone(),
            action_status: self.status,
            result_description: self.result_description.clone(),
        }
    }
}

/// The result of checking an order: which error to report.
#[derive(Debug)]
struct Refusal {
    /// `validationError`, `orderError`, `orderUpdateError` or `noRouteError`.
    error_type: &'static str,
    /// Why.
    description: String,
    /// What it refers to beyond the order itself.
    references: Vec<ErrorReference>,
}

impl Refusal {
    /// A refusal without extra references.
    fn new(error_type: &'static str, description: impl Into<String>) -> Refusal {
        Refusal { error_type, description: description.into(), references: Vec::new() }
    }

    /// The same refusal, also referring to `key` = `value`.
    fn referring(mut self, key: &str, value: &str) -> Refusal {
        self.references.push(reference(key, value));
        self
    }
}

/// An error reference.
fn reference(key: &str, value: &str) -> ErrorReference {
    ErrorReference { reference_key: key.to_owned(), reference_value: value.to_owned() }
}

/// `text` cut to [`DESCRIPTION_LENGTH_BYTES_MAX`] on a character boundary.
fn clip(text: &str) -> String {
    if text.len() <= DESCRIPTION_LENGTH_BYTES_MAX {
        return text.to_owned();
    }
    let mut end = DESCRIPTION_LENGTH_BYTES_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// `angle` wrapped into [-π, π].
fn wrap_angle(angle: f64) -> f64 {
    let wrapped = (angle + PI).rem_euclid(2.0 * PI) - PI;
    if wrapped < -PI { wrapped + 2.0 * PI } else { wrapped }
}

/// One simulated vehicle.
#[derive(Debug, Clone)]
pub(crate) struct Vehicle {
    /// Who it is.
    identity: Identity,
    /// How it moves.
    motion: Motion,
    /// The simulated time everything below is current at.
    clock_us: u64,
    /// Where it stands, or where its current leg started from.
    position: Point,
    /// Its heading, radians.
    theta_rad: f64,
    /// The drive under way, if any.
    leg: Option<Leg>,
    /// The node reached last.
    last_node_id: String,
    /// Its sequence id.
    last_node_sequence_id: u32,
    /// The current or last order, `""` if none.
    order_id: String,
    /// Its last accepted update.
    order_update_id: u32,
    /// Whether the current order was cancelled.
    order_cancelled: bool,
    /// Whether the completion of the current order has been counted.
    order_completion_counted: bool,
    /// Orders completed since the vehicle was created.
    orders_completed: u64,
    /// Nodes still to traverse.
    nodes: VecDeque<OrderNode>,
    /// Edges still to traverse.
    edges: VecDeque<OrderEdge>,
    /// Actions of released nodes of the order, in order of arrival.
    order_actions: Vec<ActionRecord>,
    /// Instant actions received since the order was accepted.
    instant_actions: VecDeque<ActionRecord>,
    /// Indices (into `order_actions`) of the actions running together now.
    running_stage: Vec<usize>,
    /// Groups of actions to run after the running ones, in order (figure 15).
    pending_stages: VecDeque<Vec<usize>>,
    /// Loads on board.
    loads: Vec<Load>,
    /// Battery charge, percent, as of `charge_settled_us` and excluding the
    /// leg under way.
    battery_charge_percent: f64,
    /// When the charge was last brought up to date.
    charge_settled_us: u64,
    /// Whether it is charging.
    charging: bool,
    /// Whether it is paused.
    paused: bool,
    /// Whether a FATAL error stopped it for good.
    failed: bool,
    /// Active errors.
    errors: Vec<ErrorEntry>,
    /// Whether something changed that master control must hear of.
    state_changed: bool,
    /// Whether master control asked for the factsheet.
    factsheet_requested: bool,
    /// An injected fault: the next update of a running order is lost.
    losing_next_order_update: bool,
}

impl Vehicle {
    /// A vehicle standing on node `start_node_id` at (`x_mm`, `y_mm`) facing east.
    pub(crate) fn new(
        identity: Identity,
        motion: Motion,
        start_node_id: &str,
        x_mm: i64,
        y_mm: i64,
    ) -> Vehicle {
        Vehicle {
            identity,
            motion,
            clock_us: 0,
            position: Point { x_mm: x_mm as f64, y_mm: y_mm as f64 },
            theta_rad: 0.0,
            leg: None,
            last_node_id: start_node_id.to_owned(),
            last_node_sequence_id: 0,
            order_id: String::new(),
            order_update_id: 0,
            order_cancelled: false,
            order_completion_counted: false,
            orders_completed: 0,
            nodes: VecDeque::new(),
            edges: VecDeque::new(),
            order_actions: Vec::new(),
            instant_actions: VecDeque::new(),
            running_stage: Vec::new(),
            pending_stages: VecDeque::new(),
            loads: Vec::new(),
            battery_charge_percent: BATTERY_CHARGE_INITIAL_PERCENT,
            charge_settled_us: 0,
            charging: false,
            paused: false,
            failed: false,
            errors: Vec::new(),
            state_changed: true,
            factsheet_requested: false,
            losing_next_order_update: false,
        }
    }

    /// The vehicle's identity.
    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The vehicle's motion settings.
    pub(crate) fn motion(&self) -> Motion {
        self.motion
    }

    // -----------------------------------------------------------------------
    // Time.
    // -----------------------------------------------------------------------

    /// Runs the simulation up to `now_us`: arrivals, action completions and
    /// what they trigger, each at its own time and in the order they happen.
    pub(crate) fn advance(&mut self, now_us: u64) {
        while let Some(event_us) = self.next_event_us() {
            if event_us > now_us {
                break;
            }
            self.run_events_at(event_us.max(self.clock_us));
        }
        if now_us > self.clock_us {
            self.settle_charge(now_us);
            self.clock_us = now_us;
        }
    }

    /// The simulated time of the next thing that will happen by itself, if any.
    pub(crate) fn next_event_us(&self) -> Option<u64> {
        let arrival = self.leg.as_ref().map(Leg::arrival_us);
        let action = self
            .running_stage
            .iter()
            .filter_map(|&index| match self.order_actions[index].timer {
                ActionTimer::FinishesAt(at_us) => Some(at_us),
                ActionTimer::Idle | ActionTimer::Remaining(_) => None,
            })
            .min();
        [arrival, action].into_iter().flatten().min()
    }

    /// Processes everything due at `at_us` (not after `at_us`).
    fn run_events_at(&mut self, at_us: u64) {
        self.settle_charge(at_us);
        self.clock_us = at_us;
        for index in self.running_stage.clone() {
            if let ActionTimer::FinishesAt(due_us) = self.order_actions[index].timer
                && due_us <= at_us
            {
                self.finish_order_action(index);
            }
        }
        if let Some(leg) = self.leg
            && leg.arrival_us() <= at_us
        {
            self.arrive(leg);
        }
        self.proceed();
    }

    /// Brings the battery charge up to `now_us` while charging on the spot.
    /// The charge stops at 100 %: the vehicle protects its battery from
    /// overcharging (§6.8.1) and stays on the charger until told otherwise.
    fn settle_charge(&mut self, now_us: u64) {
        if self.charging && self.leg.is_none() && now_us > self.charge_settled_us {
            let minutes = (now_us - self.charge_settled_us) as f64 / (60.0 * US_PER_S);
            self.battery_charge_percent = (self.battery_charge_percent
                + minutes * BATTERY_CHARGE_PERCENT_PER_MINUTE)
                .min(100.0);
        }
        self.charge_settled_us = self.charge_settled_us.max(now_us);
    }

    /// Uses battery for `distance_mm` driven.
    fn drain(&mut self, distance_mm: f64) {
        let used_percent = distance_mm / 1_000_000.0 * BATTERY_DRAIN_PERCENT_PER_KM;
        self.battery_charge_percent = (self.battery_charge_percent - used_percent).max(0.0);
    }

    // -----------------------------------------------------------------------
    // Driving and actions.
    // -----------------------------------------------------------------------

    /// Starts what can start now: the next group of actions, then the drive
    /// to the next node.
    fn proceed(&mut self) {
        if self.paused || self.failed {
            return;
        }
        let stage_done =
            self.running_stage.iter().all(|&index| self.order_actions[index].status.is_terminal());
        if stage_done && let Some(stage) = self.pending_stages.pop_front() {
            let finishes_at_us = self.clock_us.saturating_add(self.motion.action_duration_us);
            for &index in &stage {
                let record = &mut self.order_actions[index];
                record.status = ActionStatus::Running;
                record.timer = ActionTimer::FinishesAt(finishes_at_us);
            }
            self.running_stage = stage;
            self.state_changed = true;
        }
        if self.leg.is_none() && !self.actions_block_driving() {
            self.start_leg();
        }
    }

    /// Whether a SOFT or HARD action is running or still to run on the
    /// nodes already reached (§6.12).
    fn actions_block_driving(&self) -> bool {
        self.running_stage.iter().chain(self.pending_stages.iter().flatten()).any(|&index| {
            let record = &self.order_actions[index];
            record.blocking_type != BlockingType::None && !record.status.is_terminal()
        })
    }

    /// Starts driving to the next node if it and the edge to it are released.
    fn start_leg(&mut self) {
        let (Some(node), Some(edge)) = (self.nodes.front(), self.edges.front()) else {
            return;
        };
        if !node.released || !edge.released {
            return;
        }
        let Some(target) = node.node_position.as_ref().map(Point::of) else {
            return;
        };
        let mut speed_mm_per_s = f64::from(self.motion.speed_mm_per_s);
        if let Some(max_speed_m_per_s) = edge.max_speed {
            speed_mm_per_s = speed_mm_per_s.min(max_speed_m_per_s * 1000.0);
        }
        let distance_mm = self.position.distance_mm(target);
        let duration_us = (distance_mm / speed_mm_per_s * US_PER_S).ceil() as u64;
        let leg = Leg {
            from: self.position,
            to: target,
            start_us: self.clock_us,
            duration_us,
            speed_mm_per_s,
        };
        if distance_mm > 0.0 {
            self.theta_rad = leg.heading_rad();
        }
        // Driving off the charging spot ends charging.
        self.charging = false;
        self.leg = Some(leg);
        self.state_changed = true;
    }

    /// Stops at once where the vehicle is, keeping the node it drove to.
    fn stop_driving(&mut self) {
        if let Some(leg) = self.leg.take() {
            let here = leg.position_at(self.clock_us);
            self.drain(leg.from.distance_mm(here));
            self.position = here;
            self.state_changed = true;
        }
    }

    /// Reaches the node at the end of `leg` (§6.10.2).
    fn arrive(&mut self, leg: Leg) {
        self.leg = None;
        self.drain(leg.from.distance_mm(leg.to));
        self.position = leg.to;
        // The edge leading to the node is left as the node is traversed.
        self.edges.pop_front();
        self.traverse_next_node();
    }

    /// Reports the first node of `nodes` as traversed and triggers its actions.
    fn traverse_next_node(&mut self) {
        let Some(node) = self.nodes.pop_front() else {
            return;
        };
        if let Some(theta) = node.node_position.as_ref().and_then(|position| position.theta) {
            self.theta_rad = theta;
        }
        self.last_node_id = node.node_id.clone();
        self.last_node_sequence_id = node.sequence_id;
        self.state_changed = true;
        self.schedule_node_actions(&node);
    }

    /// Queues the actions of a reached node in groups (§6.12, figure 15):
    /// NONE and SOFT actions run together; a HARD action runs alone, after
    /// the group before it.
    fn schedule_node_actions(&mut self, node: &OrderNode) {
        let mut parallel = Vec::new();
        for action in &node.actions {
            let Some(index) = self.order_action_index(&action.action_id) else {
                continue;
            };
            match action.blocking_type {
                BlockingType::None | BlockingType::Soft => parallel.push(index),
                BlockingType::Hard => {
                    if !parallel.is_empty() {
                        self.pending_stages.push_back(std::mem::take(&mut parallel));
                    }
                    self.pending_stages.push_back(vec![index]);
                }
            }
        }
        if !parallel.is_empty() {
            self.pending_stages.push_back(parallel);
        }
    }

    /// The index of the order action `action_id`.
    fn order_action_index(&self, action_id: &str) -> Option<usize> {
        self.order_actions.iter().position(|record| record.action_id == action_id)
    }

    /// Completes a running order action and applies its effect.
    fn finish_order_action(&mut self, index: usize) {
        let record = self.order_actions[index].clone();
        let outcome = match record.kind {
            Some(ActionKind::Pick) => self.pick(&record),
            Some(ActionKind::Drop) => self.drop_load(&record),
            Some(ActionKind::StartCharging) => {
                self.charging = true;
                Ok("charging".to_owned())
            }
            Some(ActionKind::StopCharging) => {
                self.charging = false;
                Ok("not charging".to_owned())
            }
            // Orders with other actions are refused before they get here.
            _ => Err(format!("{} cannot run on a node", record.action_type)),
        };
        let record = &mut self.order_actions[index];
        record.timer = ActionTimer::Idle;
        match outcome {
            Ok(result) => {
                record.status = ActionStatus::Finished;
                record.result_description = Some(result);
            }
            Err(reason) => {
                record.status = ActionStatus::Failed;
                record.result_description = Some(reason.clone());
                let action_id = record.action_id.clone();
                // §6.8.2: "Failed pick operations should correspond with an error."
                self.report(
                    "loadHandlingError",
                    ErrorLevel::Warning,
                    reason,
                    vec![reference("actionId", &action_id)],
                );
            }
        }
        self.state_changed = true;
    }

    /// Puts a load on a shelf: the one named by `lhd`, else the first free one.
    fn pick(&mut self, record: &ActionRecord) -> Result<String, String> {
        let occupied = |shelf: &str| self.loads.iter().any(|load| load.load_position == shelf);
        let shelf = match record.text_parameter("lhd") {
            Some(lhd) => {
                let Some(shelf) = LOAD_POSITIONS.into_iter().find(|shelf| *shelf == lhd) else {
                    return Err(format!("the vehicle has no load handling device {}", clip(&lhd)));
                };
                if occupied(shelf) {
                    return Err(format!("{shelf} already carries a load"));
                }
                shelf
            }
            None => match LOAD_POSITIONS.into_iter().find(|shelf| !occupied(shelf)) {
                Some(shelf) => shelf,
                None => return Err("every shelf already carries a load".to_owned()),
            },
        };
        let load_id = record.text_parameter("loadId").map(|id| clip(&id));
        let result = format!("picked {} onto {shelf}", load_id.as_deref().unwrap_or("a load"));
        self.loads.push(Load {
            load_id,
            load_type: record.text_parameter("loadType").map(|kind| clip(&kind)),
            load_position: shelf.to_owned(),
        });
        Ok(result)
    }

    /// Takes a load off: the one named by `loadId`, else the one on `lhd`,
    /// else the one picked last.
    fn drop_load(&mut self, record: &ActionRecord) -> Result<String, String> {
        let position = if let Some(load_id) = record.text_parameter("loadId") {
            self.loads.iter().position(|load| load.load_id.as_deref() == Some(load_id.as_str()))
        } else if let Some(lhd) = record.text_parameter("lhd") {
            self.loads.iter().position(|load| load.load_position == lhd)
        } else {
            self.loads.len().checked_sub(1)
        };
        match position {
            Some(position) => {
                let load = self.loads.remove(position);
                Ok(format!(
                    "dropped {} from {}",
                    load.load_id.as_deref().unwrap_or("the load"),
                    load.load_position
                ))
            }
            None => Err("no such load on board".to_owned()),
        }
    }

    // -----------------------------------------------------------------------
    // Orders.
    // -----------------------------------------------------------------------

    /// Handles a message on the `order` topic (§6.6, figure 8). A refused
    /// order changes nothing but the errors.
    pub(crate) fn handle_order(&mut self, payload: &[u8]) {
        let message: OrderMessage = match serde_json::from_slice(payload) {
            Ok(message) => message,
            Err(error) => {
                self.report(
                    "validationError",
                    ErrorLevel::Warning,
                    format!("order is not a valid VDA 5050 order: {error}"),
                    vec![reference("topic", "order")],
                );
                return;
            }
        };
        if self.losing_next_order_update && message.order_update_id > 0 {
            // As if lost on the way: no error, no state change.
            self.losing_next_order_update = false;
            return;
        }
        let order_references = vec![
            reference("headerId", &message.header_id.to_string()),
            reference("topic", "order"),
            reference("orderId", &clip(&message.order_id)),
            reference("orderUpdateId", &message.order_update_id.to_string()),
        ];
        let outcome = self.validate_order(&message).and_then(|()| self.apply_order(message));
        if let Err(refusal) = outcome {
            let mut references = order_references;
            references.extend(refusal.references);
            self.report(refusal.error_type, ErrorLevel::Warning, refusal.description, references);
        }
    }

    /// Checks an order against the schema's rules and §6.6.1 (`validationError`).
    fn validate_order(&self, message: &OrderMessage) -> Result<(), Refusal> {
        let invalid = |description: String| Refusal::new("validationError", description);
        if message.manufacturer != self.identity.manufacturer
            || message.serial_number != self.identity.serial_number
        {
            return Err(invalid(format!(
                "order is addressed to {}/{}, not to this vehicle",
                clip(&message.manufacturer),
                clip(&message.serial_number)
            )));
        }
        check_id("orderId", &message.order_id).map_err(invalid)?;
        if message.nodes.is_empty() {
            return Err(invalid("an order needs at least one node".to_owned()));
        }
        if message.nodes.len() > ORDER_NODES_MAX {
            return Err(invalid(format!(
                "an order may have at most {ORDER_NODES_MAX} nodes, this one has {}",
                message.nodes.len()
            )));
        }
        if message.edges.len() + 1 != message.nodes.len() {
            return Err(invalid(format!(
                "an order with {} nodes needs {} edges, not {}",
                message.nodes.len(),
                message.nodes.len() - 1,
                message.edges.len()
            )));
        }
        let mut action_ids: Vec<&str> = Vec::new();
        let mut horizon_started = false;
        for (index, node) in message.nodes.iter().enumerate() {
            let at_node = |description: String| {
                invalid(description).referring("nodeId", &clip(&node.node_id))
            };
            check_id("nodeId", &node.node_id).map_err(at_node)?;
            check_description(node.node_description.as_deref()).map_err(at_node)?;
            if node.sequence_id % 2 != 0 {
                return Err(at_node(format!("node sequenceId {} is not even", node.sequence_id)));
            }
            if index > 0 {
                let previous = &message.nodes[index - 1];
                if Some(node.sequence_id) != previous.sequence_id.checked_add(2) {
                    return Err(at_node(format!(
                        "node sequenceId {} does not follow {}",
                        node.sequence_id, previous.sequence_id
                    )));
                }
            }
            if let Some(position) = &node.node_position {
                check_position(position).map_err(at_node)?;
            }
            if index == 0 && !node.released {
                return Err(at_node("the first node of an order must be released".to_owned()));
            }
            if horizon_started && node.released {
                return Err(at_node("a released node follows the horizon".to_owned()));
            }
            horizon_started |= !node.released;
            check_actions(&node.actions, &mut action_ids).map_err(at_node)?;
            let Some(edge) = message.edges.get(index) else {
                continue;
            };
            let at_edge = |description: String| {
                invalid(description).referring("edgeId", &clip(&edge.edge_id))
            };
            check_id("edgeId", &edge.edge_id).map_err(at_edge)?;
            check_description(edge.edge_description.as_deref()).map_err(at_edge)?;
            if Some(edge.sequence_id) != node.sequence_id.checked_add(1) {
                return Err(at_edge(format!(
                    "edge sequenceId {} does not follow node sequenceId {}",
                    edge.sequence_id, node.sequence_id
                )));
            }
            let next_node = &message.nodes[index + 1];
            if edge.start_node_id != node.node_id || edge.end_node_id != next_node.node_id {
                return Err(at_edge(format!(
                    "edge runs from {} to {} but sits between {} and {}",
                    clip(&edge.start_node_id),
                    clip(&edge.end_node_id),
                    clip(&node.node_id),
                    clip(&next_node.node_id)
                )));
            }
            if edge.released && !(node.released && next_node.released) {
                return Err(at_edge("a released edge needs released end nodes".to_owned()));
            }
            if horizon_started && edge.released {
                return Err(at_edge("a released edge follows the horizon".to_owned()));
            }
            horizon_started |= !edge.released;
            if let Some(max_speed) = edge.max_speed
                && !(max_speed > 0.0 && max_speed.is_finite())
            {
                return Err(at_edge(format!("maxSpeed {max_speed} is not a positive speed")));
            }
            check_actions(&edge.actions, &mut action_ids).map_err(at_edge)?;
        }
        Ok(())
    }

    /// Checks that this vehicle can execute a valid order (§6.6.4.2, `orderError`).
    fn check_capabilities(&self, message: &OrderMessage) -> Result<(), Refusal> {
        let refuse = |description: String| Refusal::new("orderError", description);
        if self.failed {
            return Err(refuse(
                "the vehicle has a FATAL error and takes no orders until an operator clears it"
                    .to_owned(),
            ));
        }
        for node in &message.nodes {
            let Some(position) = &node.node_position else {
                return Err(refuse("this vehicle requires nodePosition on every node".to_owned())
                    .referring("nodeId", &node.node_id));
            };
            if position.map_id != self.identity.map_id {
                return Err(refuse(format!(
                    "node is on map {}, this vehicle drives on {}",
                    position.map_id, self.identity.map_id
                ))
                .referring("nodeId", &node.node_id));
            }
            for action in &node.actions {
                if !ActionKind::parse(&action.action_type).is_some_and(ActionKind::on_nodes) {
                    return Err(refuse(format!(
                        "this vehicle cannot perform {} on a node",
                        action.action_type
                    ))
                    .referring("actionId", &action.action_id)
                    .referring("actionType", &action.action_type));
                }
            }
        }
        for edge in &message.edges {
            if edge.trajectory.is_some() {
                return Err(refuse(
                    "this vehicle drives straight lines and cannot follow a trajectory".to_owned(),
                )
                .referring("edgeId", &edge.edge_id));
            }
            if let Some(action) = edge.actions.first() {
                return Err(refuse(format!(
                    "this vehicle performs no actions on edges ({})",
                    action.action_type
                ))
                .referring("edgeId", &edge.edge_id)
                .referring("actionId", &action.action_id));
            }
        }
        Ok(())
    }

    /// Whether an order is under way: nodes or edges left, an order action
    /// unfinished, or the vehicle moving (figure 8, "AGV has current order").
    fn order_in_progress(&self) -> bool {
        !self.nodes.is_empty()
            || !self.edges.is_empty()
            || self.leg.is_some()
            || self.order_actions.iter().any(|record| !record.status.is_terminal())
    }

    /// Accepts a valid order as new order or update, or refuses it (figure 8).
    fn apply_order(&mut self, message: OrderMessage) -> Result<(), Refusal> {
        if message.order_id != self.order_id {
            if self.order_in_progress() {
                // Figure 8: a new orderId while the current order is under way
                // is rejected with an orderUpdateError.
                return Err(Refusal::new(
                    "orderUpdateError",
                    format!(
                        "order {} is still in progress; a new order must wait until it is \
                         complete or cancelled",
                        clip(&self.order_id)
                    ),
                ));
            }
            self.check_capabilities(&message)?;
            let first = &message.nodes[0];
            if !self.trivially_reachable(first) {
                return Err(Refusal::new(
                    "noRouteError",
                    format!(
                        "the first node {} is not where the vehicle stands",
                        clip(&first.node_id)
                    ),
                )
                .referring("nodeId", &first.node_id));
            }
            self.accept_new_order(message);
            return Ok(());
        }
        if message.order_update_id < self.order_update_id {
            return Err(Refusal::new(
                "orderUpdateError",
                format!(
                    "orderUpdateId {} is older than the accepted {}",
                    message.order_update_id, self.order_update_id
                ),
            ));
        }
        if message.order_update_id == self.order_update_id {
            // §6.6.4.3: the same update again is a resend and is ignored.
            return Ok(());
        }
        self.check_capabilities(&message)?;
        let first = &message.nodes[0];
        let (base_end_id, base_end_sequence_id) = match self.nodes.iter().rev().find(|n| n.released)
        {
            Some(node) => (node.node_id.clone(), node.sequence_id),
            None => (self.last_node_id.clone(), self.last_node_sequence_id),
        };
        if first.node_id != base_end_id || first.sequence_id != base_end_sequence_id {
            return Err(Refusal::new(
                "orderUpdateError",
                format!(
                    "the update starts at {} ({}) but the base ends at {} ({})",
                    clip(&first.node_id),
                    first.sequence_id,
                    clip(&base_end_id),
                    base_end_sequence_id
                ),
            )
            .referring("nodeId", &first.node_id));
        }
        self.accept_update(message)
    }

    /// Whether `node` is where the vehicle stands, within the node's allowed
    /// deviation (§6.6.1: "the AGV is already standing on the node, or the
    /// AGV is in the node's deviation range").
    fn trivially_reachable(&self, node: &OrderNode) -> bool {
        let Some(position) = &node.node_position else {
            return false;
        };
        let allowed_mm =
            (position.allowed_deviation_xy.unwrap_or(0.0) * 1000.0).max(POSITION_TOLERANCE_MM);
        position.map_id == self.identity.map_id
            && self.here().distance_mm(Point::of(position)) <= allowed_mm
    }

    /// Takes over a new order: previous action states are deleted, the
    /// first node counts as traversed (the vehicle stands on it).
    fn accept_new_order(&mut self, message: OrderMessage) {
        self.clear_warnings();
        self.order_id = message.order_id;
        self.order_update_id = message.order_update_id;
        self.order_cancelled = false;
        self.order_completion_counted = false;
        self.order_actions.clear();
        self.instant_actions.clear();
        self.running_stage.clear();
        self.pending_stages.clear();
        self.nodes = message.nodes.into();
        self.edges = message.edges.into();
        let released: Vec<OrderNode> =
            self.nodes.iter().filter(|node| node.released).cloned().collect();
        self.record_actions(&released);
        self.traverse_next_node();
        self.state_changed = true;
        self.proceed();
    }

    /// Appends an update to the order: the horizon is replaced, the base
    /// extended from its last node, whose content stays as first sent.
    fn accept_update(&mut self, message: OrderMessage) -> Result<(), Refusal> {
        let mut new_nodes = message.nodes;
        new_nodes.remove(0);
        let kept_nodes = self.nodes.iter().filter(|node| node.released).count();
        if kept_nodes + new_nodes.len() > NODE_STATES_MAX {
            return Err(Refusal::new(
                "orderError",
                format!("the vehicle holds at most {NODE_STATES_MAX} nodes of an order"),
            ));
        }
        let released: Vec<OrderNode> =
            new_nodes.iter().filter(|node| node.released).cloned().collect();
        let new_action_count: usize = released.iter().map(|node| node.actions.len()).sum();
        if self.order_actions.len() + new_action_count > ORDER_ACTION_STATES_MAX {
            return Err(Refusal::new(
                "orderError",
                format!("the vehicle holds at most {ORDER_ACTION_STATES_MAX} actions of an order"),
            ));
        }
        if let Some(duplicate) = released
            .iter()
            .flat_map(|node| &node.actions)
            .find(|action| self.order_action_index(&action.action_id).is_some())
        {
            return Err(Refusal::new(
                "validationError",
                "the update reuses an actionId of the order".to_owned(),
            )
            .referring("actionId", &duplicate.action_id));
        }
        self.clear_warnings();
        self.order_update_id = message.order_update_id;
        self.order_cancelled = false;
        self.nodes.retain(|node| node.released);
        self.edges.retain(|edge| edge.released);
        self.record_actions(&released);
        self.nodes.extend(new_nodes);
        self.edges.extend(message.edges);
        self.state_changed = true;
        self.proceed();
        Ok(())
    }

    /// Adds WAITING action states for the actions of `nodes`.
    fn record_actions(&mut self, nodes: &[OrderNode]) {
        for action in nodes.iter().flat_map(|node| &node.actions) {
            self.order_actions.push(ActionRecord::new(action, ActionStatus::Waiting));
        }
    }

    // -----------------------------------------------------------------------
    // Instant actions.
    // -----------------------------------------------------------------------

    /// Handles a message on the `instantActions` topic (§6.9).
    pub(crate) fn handle_instant_actions(&mut self, payload: &[u8]) {
        let message: InstantActionsMessage = match serde_json::from_slice(payload) {
            Ok(message) => message,
            Err(error) => {
                self.report(
                    "validationError",
                    ErrorLevel::Warning,
                    format!("instantActions is not a valid VDA 5050 message: {error}"),
                    vec![reference("topic", "instantActions")],
                );
                return;
            }
        };
        let references = vec![
            reference("headerId", &message.header_id.to_string()),
            reference("topic", "instantActions"),
        ];
        if message.manufacturer != self.identity.manufacturer
            || message.serial_number != self.identity.serial_number
        {
            let description = format!(
                "instantActions is addressed to {}/{}, not to this vehicle",
                clip(&message.manufacturer),
                clip(&message.serial_number)
            );
            self.report("validationError", ErrorLevel::Warning, description, references);
            return;
        }
        let Some(actions) = message.actions.or(message.instant_actions) else {
            let description =
                "instantActions carries neither `actions` (2.0) nor `instantActions` (1.1)";
            self.report("validationError", ErrorLevel::Warning, description.to_owned(), references);
            return;
        };
        if actions.len() > INSTANT_ACTIONS_MAX {
            let description = format!(
                "a message may carry at most {INSTANT_ACTIONS_MAX} instant actions, this one has {}",
                actions.len()
            );
            self.report("validationError", ErrorLevel::Warning, description, references);
            return;
        }
        if let Err(description) = check_actions(&actions, &mut Vec::new()) {
            self.report("validationError", ErrorLevel::Warning, description, references);
            return;
        }
        for action in &actions {
            self.run_instant_action(action);
        }
        self.state_changed = true;
    }

    /// Performs one instant action and records its outcome.
    fn run_instant_action(&mut self, action: &Action) {
        let mut record = ActionRecord::new(action, ActionStatus::Finished);
        let kind = record.kind.filter(|kind| kind.instant());
        let outcome: Result<&str, String> = match kind {
            Some(ActionKind::StartPause) => {
                self.pause();
                Ok("paused")
            }
            Some(ActionKind::StopPause) => {
                self.resume();
                Ok("resumed")
            }
            Some(ActionKind::CancelOrder) => self.cancel_order(&action.action_id),
            Some(ActionKind::StartCharging) => {
                if self.leg.is_some() {
                    Err("the vehicle charges on a charging spot, not while driving".to_owned())
                } else {
                    self.charging = true;
                    Ok("charging")
                }
            }
            Some(ActionKind::StopCharging) => {
                self.charging = false;
                Ok("not charging")
            }
            Some(ActionKind::StateRequest) => Ok("state sent"),
            Some(ActionKind::FactsheetRequest) => {
                self.factsheet_requested = true;
                Ok("factsheet sent")
            }
            Some(ActionKind::Pick | ActionKind::Drop) | None => {
                let reason = format!(
                    "{} is not supported as an instant action by this vehicle",
                    clip(&action.action_type)
                );
                self.report(
                    "instantActionError",
                    ErrorLevel::Warning,
                    reason.clone(),
                    vec![
                        reference("actionId", &action.action_id),
                        reference("actionType", &clip(&action.action_type)),
                    ],
                );
                Err(reason)
            }
        };
        match outcome {
            Ok(result) => record.result_description = Some(result.to_owned()),
            Err(reason) => {
                record.status = ActionStatus::Failed;
                record.result_description = Some(reason);
            }
        }
        // The instant actions are idempotent, so a resend (or a duplicate
        // delivery at QoS 1) runs again and replaces the earlier state.
        self.instant_actions.retain(|earlier| earlier.action_id != record.action_id);
        if self.instant_actions.len() >= INSTANT_ACTION_STATES_MAX {
            self.instant_actions.pop_front();
        }
        self.instant_actions.push_back(record);
    }

    /// `startPause`: stop moving at once, pause running actions (§6.8.2).
    fn pause(&mut self) {
        if self.paused {
            return;
        }
        self.stop_driving();
        for &index in &self.running_stage {
            let record = &mut self.order_actions[index];
            if let ActionTimer::FinishesAt(at_us) = record.timer {
                record.timer = ActionTimer::Remaining(at_us.saturating_sub(self.clock_us));
                record.status = ActionStatus::Paused;
            }
        }
        self.paused = true;
        self.state_changed = true;
    }

    /// `stopPause`: resume paused actions and driving.
    fn resume(&mut self) {
        if !self.paused {
            return;
        }
        self.paused = false;
        for &index in &self.running_stage {
            let record = &mut self.order_actions[index];
            if let ActionTimer::Remaining(remaining_us) = record.timer {
                record.timer = ActionTimer::FinishesAt(self.clock_us.saturating_add(remaining_us));
                record.status = ActionStatus::Running;
            }
        }
        self.state_changed = true;
        self.proceed();
    }

    /// `cancelOrder` (§6.6.3, figure 9): this vehicle can stop between
    /// nodes, so it stops at once, fails every unfinished order action and
    /// forgets the remaining nodes and edges; orderId and orderUpdateId stay.
    fn cancel_order(&mut self, action_id: &str) -> Result<&'static str, String> {
        if self.order_id.is_empty() || self.order_cancelled || !self.order_in_progress() {
            // §6.6.3.2: no order (or a cancelled one) to cancel.
            let reason = "there is no order to cancel".to_owned();
            self.report(
                "noOrderToCancel",
                ErrorLevel::Warning,
                reason.clone(),
                vec![reference("actionId", action_id)],
            );
            return Err(reason);
        }
        self.stop_driving();
        self.fail_unfinished_actions("cancelled by cancelOrder");
        self.nodes.clear();
        self.edges.clear();
        self.order_cancelled = true;
        self.state_changed = true;
        Ok("order cancelled")
    }

    /// Fails every order action that has not finished and empties the queue.
    fn fail_unfinished_actions(&mut self, reason: &str) {
        for record in &mut self.order_actions {
            if !record.status.is_terminal() {
                record.status = ActionStatus::Failed;
                record.result_description = Some(reason.to_owned());
                record.timer = ActionTimer::Idle;
            }
        }
        self.running_stage.clear();
        self.pending_stages.clear();
    }

    // -----------------------------------------------------------------------
    // Failures.
    // -----------------------------------------------------------------------

    /// An injected fault: a FATAL error, driving stops for good and every
    /// unfinished action fails; the remaining route stays in the state.
    pub(crate) fn fail(&mut self, error_type: &str) {
        self.stop_driving();
        self.fail_unfinished_actions("the vehicle failed");
        self.failed = true;
        let mut references = Vec::new();
        if !self.order_id.is_empty() {
            references.push(reference("orderId", &self.order_id));
        }
        self.report(
            &clip(error_type),
            ErrorLevel::Fatal,
            "the vehicle failed and needs an operator".to_owned(),
            references,
        );
    }

    /// An injected fault: the next update of a running order (an
    /// `orderUpdateId` above 0) never arrives; the vehicle finishes what it
    /// has and waits at its last node, reporting it in every state.
    pub(crate) fn lose_next_order_update(&mut self) {
        self.losing_next_order_update = true;
    }

    /// Power lost (the vehicle was killed): it stops where it is.
    pub(crate) fn power_off(&mut self) {
        self.stop_driving();
    }

    /// A reboot after power loss: position, last node, loads, battery and
    /// counters are kept; the order, actions, errors and pause are gone.
    pub(crate) fn reboot(&mut self) {
        self.stop_driving();
        self.order_id.clear();
        self.order_update_id = 0;
        self.order_cancelled = false;
        self.order_completion_counted = false;
        self.nodes.clear();
        self.edges.clear();
        self.order_actions.clear();
        self.instant_actions.clear();
        self.running_stage.clear();
        self.pending_stages.clear();
        self.charging = false;
        self.paused = false;
        self.failed = false;
        self.errors.clear();
        self.state_changed = true;
    }

    /// Adds an error to `errors`, dropping the oldest warning when full.
    fn report(
        &mut self,
        error_type: &str,
        level: ErrorLevel,
        description: String,
        references: Vec<ErrorReference>,
    ) {
        if self.errors.len() >= ERRORS_MAX {
            match self.errors.iter().position(|error| error.error_level == ErrorLevel::Warning) {
                Some(oldest_warning) => {
                    self.errors.remove(oldest_warning);
                }
                None if level == ErrorLevel::Warning => return,
                None => {
                    self.errors.remove(0);
                }
            }
        }
        self.errors.push(ErrorEntry {
            error_type: error_type.to_owned(),
            error_references: references,
            error_description: clip(&description),
            error_level: level,
        });
        self.state_changed = true;
    }

    /// Clears the warnings when an order is accepted: §6.6.4 keeps order
    /// warnings "until the vehicle has accepted a new order"; the others are
    /// self-resolving by definition (§6.10.5).
    fn clear_warnings(&mut self) {
        self.errors.retain(|error| error.error_level == ErrorLevel::Fatal);
    }

    // -----------------------------------------------------------------------
    // Reporting.
    // -----------------------------------------------------------------------

    /// Whether something changed since the last call (and forgets it).
    pub(crate) fn take_state_changed(&mut self) -> bool {
        self.count_completion();
        std::mem::take(&mut self.state_changed)
    }

    /// Whether master control asked for the factsheet since the last call.
    pub(crate) fn take_factsheet_requested(&mut self) -> bool {
        std::mem::take(&mut self.factsheet_requested)
    }

    /// Counts the current order once when it becomes complete.
    fn count_completion(&mut self) {
        if self.order_complete() && !self.order_completion_counted {
            self.order_completion_counted = true;
            self.orders_completed += 1;
        }
    }

    /// The standard's implied completion: an order, not cancelled, with no
    /// nodes or edges left, every action finished or failed, not driving.
    fn order_complete(&self) -> bool {
        !self.order_id.is_empty() && !self.order_cancelled && !self.order_in_progress()
    }

    /// Whether the vehicle is driving.
    pub(crate) fn is_driving(&self) -> bool {
        self.leg.is_some()
    }

    /// Where the vehicle is now.
    fn here(&self) -> Point {
        match &self.leg {
            Some(leg) => leg.position_at(self.clock_us),
            None => self.position,
        }
    }

    /// The battery charge now, counting the leg under way.
    fn battery_charge_now_percent(&self) -> f64 {
        let driven_mm = self.leg.map_or(0.0, |leg| leg.from.distance_mm(self.here()));
        let used_percent = driven_mm / 1_000_000.0 * BATTERY_DRAIN_PERCENT_PER_KM;
        (self.battery_charge_percent - used_percent).max(0.0)
    }

    /// The pose as published.
    fn agv_position(&self) -> AgvPosition {
        let here = self.here();
        AgvPosition {
            x: here.x_mm / 1000.0,
            y: here.y_mm / 1000.0,
            theta: wrap_angle(self.theta_rad),
            map_id: self.identity.map_id.clone(),
            position_initialized: true,
        }
    }

    /// The velocity as published (vehicle coordinates).
    fn velocity(&self) -> Velocity {
        Velocity {
            vx: self.leg.map_or(0.0, |leg| leg.speed_mm_per_s / 1000.0),
            vy: 0.0,
            omega: 0.0,
        }
    }

    /// The `state` message under `header`.
    pub(crate) fn state(&self, header: Header) -> StateMessage {
        StateMessage {
            header,
            order_id: self.order_id.clone(),
            order_update_id: self.order_update_id,
            last_node_id: self.last_node_id.clone(),
            last_node_sequence_id: self.last_node_sequence_id,
            node_states: self
                .nodes
                .iter()
                .map(|node| NodeState {
                    node_id: node.node_id.clone(),
                    sequence_id: node.sequence_id,
                    node_description: node.node_description.clone(),
                    node_position: node.node_position.clone(),
                    released: node.released,
                })
                .collect(),
            edge_states: self
                .edges
                .iter()
                .map(|edge| EdgeState {
                    edge_id: edge.edge_id.clone(),
                    sequence_id: edge.sequence_id,
                    edge_description: edge.edge_description.clone(),
                    released: edge.released,
                })
                .collect(),
            agv_position: self.agv_position(),
            velocity: self.velocity(),
            loads: self.loads.clone(),
            driving: self.is_driving(),
            paused: self.paused,
            action_states: self
                .order_actions
                .iter()
                .chain(&self.instant_actions)
                .map(ActionRecord::state)
                .collect(),
            battery_state: BatteryState {
                battery_charge: self.battery_charge_now_percent(),
                charging: self.charging,
            },
            operating_mode: "AUTOMATIC",
            errors: self.errors.clone(),
            safety_state: SafetyState { e_stop: "NONE", field_violation: false },
        }
    }

    /// The `visualization` message under `header`.
    pub(crate) fn visualization(&self, header: Header) -> VisualizationMessage {
        VisualizationMessage {
            header,
            agv_position: self.agv_position(),
            velocity: self.velocity(),
        }
    }

    /// A summary for the fleet's owner.
    pub(crate) fn status(&self, connected: bool) -> VehicleStatus {
        let here = self.here();
        VehicleStatus {
            serial_number: self.identity.serial_number.clone(),
            connected,
            x_mm: here.x_mm.round() as i64,
            y_mm: here.y_mm.round() as i64,
            last_node_id: self.last_node_id.clone(),
            order_id: self.order_id.clone(),
            driving: self.is_driving(),
            paused: self.paused,
            loads: self.loads.len(),
            orders_completed: self.orders_completed,
            errors: self.errors.iter().map(|error| error.error_type.clone()).collect(),
        }
    }
}

/// Checks an identifier's length (and that it is not empty).
fn check_id(field: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("{field} is empty"));
    }
    if id.len() > ID_LENGTH_BYTES_MAX {
        return Err(format!("{field} is longer than {ID_LENGTH_BYTES_MAX} bytes"));
    }
    Ok(())
}

/// Checks a description's length.
fn check_description(description: Option<&str>) -> Result<(), String> {
    match description {
        Some(text) if text.len() > DESCRIPTION_LENGTH_BYTES_MAX => {
            Err(format!("a description is longer than {DESCRIPTION_LENGTH_BYTES_MAX} bytes"))
        }
        _ => Ok(()),
    }
}

/// Checks a node position against the schema's ranges.
fn check_position(position: &NodePosition) -> Result<(), String> {
    check_id("mapId", &position.map_id)?;
    if position.x.abs() > COORDINATE_M_MAX || position.y.abs() > COORDINATE_M_MAX {
        return Err(format!(
            "nodePosition ({}, {}) lies beyond {COORDINATE_M_MAX} m",
            position.x, position.y
        ));
    }
    // The schema bounds theta by ±3.14159265359; a little slack for rounding.
    if let Some(theta) = position.theta
        && theta.abs() > PI + 1e-9
    {
        return Err(format!("theta {theta} is outside [-π, π]"));
    }
    if let Some(deviation) = position.allowed_deviation_xy
        && deviation < 0.0
    {
        return Err(format!("allowedDeviationXY {deviation} is negative"));
    }
    Ok(())
}

/// Checks a list of actions: count, identifiers, parameters, and that no
/// actionId repeats (`seen` collects them across the message).
fn check_actions<'a>(actions: &'a [Action], seen: &mut Vec<&'a str>) -> Result<(), String> {
    if actions.len() > NODE_ACTIONS_MAX {
        return Err(format!("at most {NODE_ACTIONS_MAX} actions may be attached at one place"));
    }
    for action in actions {
        check_id("actionId", &action.action_id)?;
        check_id("actionType", &action.action_type)?;
        check_description(action.action_description.as_deref())?;
        if action.action_parameters.len() > ACTION_PARAMETERS_MAX {
            return Err(format!("an action may have at most {ACTION_PARAMETERS_MAX} parameters"));
        }
        if seen.contains(&action.action_id.as_str()) {
            return Err(format!("actionId {} appears twice", clip(&action.action_id)));
        }
        seen.push(&action.action_id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// Microseconds in a millisecond.
    const MS: u64 = 1000;

    /// A vehicle on node n0 at the origin: 1 m/s, actions of 1 s.
    fn vehicle() -> Vehicle {
        let identity = Identity {
            manufacturer: "Sim".to_owned(),
            serial_number: "v1".to_owned(),
            map_id: "map".to_owned(),
        };
        let motion = Motion { speed_mm_per_s: 1000, action_duration_us: 1000 * MS };
        Vehicle::new(identity, motion, "n0", 0, 0)
    }

    /// An order through nodes (id, x metres, actions); all released.
    fn order(
        order_id: &str,
        update: u32,
        first_sequence_id: u32,
        nodes: &[(&str, f64, Value)],
    ) -> Vec<u8> {
        let node_list: Vec<Value> = nodes
            .iter()
            .enumerate()
            .map(|(index, (id, x, actions))| {
                json!({
                    "nodeId": id, "sequenceId": first_sequence_id + 2 * index as u32, "released": true,
                    "nodePosition": { "x": x, "y": 0.0, "mapId": "map" }, "actions": actions,
                })
            })
            .collect();
        let edge_list: Vec<Value> = nodes
            .windows(2)
            .enumerate()
            .map(|(index, pair)| {
                json!({
                    "edgeId": format!("{}{}", pair[0].0, pair[1].0),
                    "sequenceId": first_sequence_id + 2 * index as u32 + 1, "released": true,
                    "startNodeId": pair[0].0, "endNodeId": pair[1].0, "actions": [],
                })
            })
            .collect();
        json!({
            "headerId": 1, "timestamp": "2026-01-01T00:00:00.000Z", "version": "2.0.0",
            "manufacturer": "Sim", "serialNumber": "v1", "orderId": order_id,
            "orderUpdateId": update, "nodes": node_list, "edges": edge_list,
        })
        .to_string()
        .into_bytes()
    }

    /// An action of `blocking_type`.
    fn act(action_type: &str, action_id: &str, blocking_type: &str) -> Value {
        json!({ "actionType": action_type, "actionId": action_id, "blockingType": blocking_type })
    }

    /// The status of order action `action_id`.
    fn status_of(vehicle: &Vehicle, action_id: &str) -> ActionStatus {
        vehicle.order_actions[vehicle.order_action_index(action_id).expect("known action")].status
    }

    /// The error types reported.
    fn error_types(vehicle: &Vehicle) -> Vec<&str> {
        vehicle.errors.iter().map(|error| error.error_type.as_str()).collect()
    }

    #[test]
    fn a_hard_action_runs_alone_after_the_actions_before_it_and_blocks_driving() {
        let mut vehicle = vehicle();
        let actions = json!([
            act("startCharging", "a", "NONE"),
            act("pick", "b", "HARD"),
            act("stopCharging", "c", "NONE"),
        ]);
        vehicle.handle_order(&order("o", 0, 0, &[("n0", 0.0, actions), ("n1", 5.0, json!([]))]));
        assert_eq!(status_of(&vehicle, "a"), ActionStatus::Running);
        assert_eq!(status_of(&vehicle, "b"), ActionStatus::Waiting);
        assert!(!vehicle.is_driving(), "a HARD action still to run keeps the vehicle still");

        vehicle.advance(1000 * MS);
        assert_eq!(status_of(&vehicle, "a"), ActionStatus::Finished);
        assert_eq!(status_of(&vehicle, "b"), ActionStatus::Running);
        assert_eq!(status_of(&vehicle, "c"), ActionStatus::Waiting);
        assert!(!vehicle.is_driving());

        vehicle.advance(2000 * MS);
        assert_eq!(status_of(&vehicle, "b"), ActionStatus::Finished);
        assert_eq!(status_of(&vehicle, "c"), ActionStatus::Running);
        assert!(vehicle.is_driving(), "a NONE action lets the vehicle drive on");
        assert_eq!(vehicle.loads.len(), 1);
    }

    #[test]
    fn events_are_run_at_their_own_time_even_when_the_vehicle_wakes_late() {
        let mut vehicle = vehicle();
        let pick = json!([act("pick", "p", "SOFT")]);
        vehicle.handle_order(&order(
            "o",
            0,
            0,
            &[("n0", 0.0, json!([])), ("n1", 2.0, pick), ("n2", 4.0, json!([]))],
        ));
        // Drive 2 s, pick 1 s, drive 2 s: done at 5 s, whenever it is looked at.
        vehicle.advance(60_000 * MS);
        assert_eq!(vehicle.last_node_id, "n2");
        assert!(vehicle.order_complete());
        assert_eq!(vehicle.here(), Point { x_mm: 4000.0, y_mm: 0.0 });
        assert!(vehicle.battery_charge_percent < 100.0, "driving 4 m uses battery");
    }

    #[test]
    fn an_update_must_start_at_the_last_node_of_the_base() {
        let mut vehicle = vehicle();
        vehicle.handle_order(&order("o", 0, 0, &[("n0", 0.0, json!([])), ("n1", 2.0, json!([]))]));
        vehicle.advance(10_000 * MS);
        vehicle.handle_order(&order("o", 1, 0, &[("n0", 0.0, json!([])), ("n2", 4.0, json!([]))]));
        assert_eq!(error_types(&vehicle), ["orderUpdateError"]);
        assert_eq!(vehicle.order_update_id, 0);

        vehicle.handle_order(&order("o", 1, 2, &[("n1", 2.0, json!([])), ("n2", 4.0, json!([]))]));
        assert!(vehicle.errors.is_empty(), "an accepted update clears the warning");
        assert_eq!(vehicle.order_update_id, 1);
        assert!(vehicle.is_driving());
    }

    #[test]
    fn sequence_ids_that_do_not_interleave_are_a_validation_error() {
        let mut vehicle = vehicle();
        vehicle.handle_order(&order("o", 0, 1, &[("n0", 0.0, json!([])), ("n1", 2.0, json!([]))]));
        assert_eq!(error_types(&vehicle), ["validationError"]);
        assert!(vehicle.order_id.is_empty());
    }

    #[test]
    fn an_order_for_another_vehicle_is_a_validation_error() {
        let mut vehicle = vehicle();
        let mut message: Value =
            serde_json::from_slice(&order("o", 0, 0, &[("n0", 0.0, json!([]))])).expect("json");
        message["serialNumber"] = json!("v2");
        vehicle.handle_order(message.to_string().as_bytes());
        assert_eq!(error_types(&vehicle), ["validationError"]);
    }

    #[test]
    fn a_trajectory_on_an_edge_is_an_order_error() {
        let mut vehicle = vehicle();
        let mut message: Value = serde_json::from_slice(&order(
            "o",
            0,
            0,
            &[("n0", 0.0, json!([])), ("n1", 2.0, json!([]))],
        ))
        .expect("json");
        message["edges"][0]["trajectory"] =
            json!({ "degree": 1, "knotVector": [0, 0, 1, 1], "controlPoints": [] });
        vehicle.handle_order(message.to_string().as_bytes());
        assert_eq!(error_types(&vehicle), ["orderError"]);
    }

    #[test]
    fn a_single_node_order_completes_when_its_actions_are_done() {
        let mut vehicle = vehicle();
        let charge = json!([act("startCharging", "c", "HARD")]);
        vehicle.handle_order(&order("o", 0, 0, &[("n0", 0.0, charge)]));
        assert!(!vehicle.order_complete());
        vehicle.advance(1000 * MS);
        assert!(vehicle.order_complete());
        assert!(vehicle.charging);
        assert!(vehicle.take_state_changed());
        assert_eq!(vehicle.orders_completed, 1);
    }

    #[test]
    fn errors_are_bounded_and_the_oldest_warning_goes_first() {
        let mut vehicle = vehicle();
        vehicle.fail("motorFault");
        for _ in 0..3 * ERRORS_MAX {
            vehicle.handle_order(b"{");
        }
        assert_eq!(vehicle.errors.len(), ERRORS_MAX);
        assert_eq!(vehicle.errors[0].error_type, "motorFault", "a FATAL error is kept");
    }

    #[test]
    fn a_pause_keeps_the_remaining_action_time() {
        let mut vehicle = vehicle();
        vehicle.handle_order(&order("o", 0, 0, &[("n0", 0.0, json!([act("pick", "p", "HARD")]))]));
        vehicle.advance(400 * MS);
        let pause = json!({
            "headerId": 1, "timestamp": "t", "version": "2.0.0", "manufacturer": "Sim",
            "serialNumber": "v1", "actions": [act("startPause", "s", "HARD")],
        });
        vehicle.handle_instant_actions(pause.to_string().as_bytes());
        assert_eq!(status_of(&vehicle, "p"), ActionStatus::Paused);
        vehicle.advance(50_000 * MS);
        assert_eq!(status_of(&vehicle, "p"), ActionStatus::Paused, "nothing runs while paused");

        let mut resume = pause.clone();
        resume["actions"] = json!([act("stopPause", "r", "HARD")]);
        vehicle.handle_instant_actions(resume.to_string().as_bytes());
        vehicle.advance(50_599 * MS);
        assert_eq!(status_of(&vehicle, "p"), ActionStatus::Running);
        vehicle.advance(50_600 * MS);
        assert_eq!(status_of(&vehicle, "p"), ActionStatus::Finished);
    }

    #[test]
    fn angles_are_wrapped_into_the_standard_range() {
        assert!(
            (wrap_angle(3.0 * PI) - PI).abs() < 1e-9 || (wrap_angle(3.0 * PI) + PI).abs() < 1e-9
        );
        assert!((wrap_angle(-PI / 2.0) + PI / 2.0).abs() < 1e-12);
    }
}
