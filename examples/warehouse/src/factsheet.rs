//! The vehicle's factsheet (VDA 5050 2.0.0 §6.16, `factsheet.schema`): what
//! master control learns about the simulated vehicle type on connection.
//! Every required object is present; the limits and the supported actions
//! are the constants the simulation enforces, so the factsheet cannot drift
//! from the behaviour.

use serde_json::{Value, json};

use crate::MESSAGE_SIZE_BYTES_MAX;
use crate::protocol::Header;
use crate::vehicle::{
    ACTION_PARAMETERS_MAX, ActionKind, ERRORS_MAX, ID_LENGTH_BYTES_MAX, INSTANT_ACTION_STATES_MAX,
    INSTANT_ACTIONS_MAX, LOAD_POSITIONS, Motion, NODE_ACTIONS_MAX, NODE_STATES_MAX,
    ORDER_ACTION_STATES_MAX, ORDER_NODES_MAX,
};

/// Longest serial number and topic element the vehicle handles (the
/// `topicSerialLen`/`topicElemLen` limits): identifiers, not prose.
pub(crate) const TOPIC_ELEMENT_LENGTH_BYTES_MAX: usize = 64;

/// The factsheet of a vehicle of `model` moving with `motion`.
pub(crate) fn factsheet(
    header: Header,
    model: &str,
    motion: Motion,
    state_interval_ms: u64,
    visualization_interval_ms: u64,
) -> Value {
    let speed_max_m_per_s = f64::from(motion.speed_mm_per_s) / 1000.0;
    let mut timing = json!({
        // No lower bound on how often orders may come or states go out.
        "minOrderInterval": 0.0,
        "minStateInterval": 0.0,
        "defaultStateInterval": state_interval_ms as f64 / 1000.0,
    });
    if visualization_interval_ms > 0 {
        timing["visualizationInterval"] = json!(visualization_interval_ms as f64 / 1000.0);
    }
    json!({
        "headerId": header.header_id,
        "timestamp": header.timestamp,
        "version": header.version,
        "manufacturer": header.manufacturer,
        "serialNumber": header.serial_number,
        "typeSpecification": {
            "seriesName": model,
            "seriesDescription": "Simulated tote carrier of the Bazaar warehouse example",
            "agvKinematic": "DIFF",
            "agvClass": "CARRIER",
            "maxLoadMass": 100.0,
            "localizationTypes": ["NATURAL"],
            "navigationTypes": ["VIRTUAL_LINE_GUIDED"],
        },
        "physicalParameters": {
            "speedMin": 0.01,
            "speedMax": speed_max_m_per_s,
            "accelerationMax": 1.0,
            "decelerationMax": 1.0,
            "heightMin": 0.3,
            "heightMax": 1.6,
            "width": 0.6,
            "length": 0.9,
        },
        "protocolLimits": {
            "maxStringLens": {
                "msgLen": MESSAGE_SIZE_BYTES_MAX,
                "topicSerialLen": TOPIC_ELEMENT_LENGTH_BYTES_MAX,
                "topicElemLen": TOPIC_ELEMENT_LENGTH_BYTES_MAX,
                "idLen": ID_LENGTH_BYTES_MAX,
                "idNumericalOnly": false,
                "loadIdLen": ID_LENGTH_BYTES_MAX,
            },
            "maxArrayLens": {
                "order.nodes": ORDER_NODES_MAX,
                "order.edges": ORDER_NODES_MAX - 1,
                "node.actions": NODE_ACTIONS_MAX,
                "actions.actionsParameters": ACTION_PARAMETERS_MAX,
                "instantActions": INSTANT_ACTIONS_MAX,
                "state.nodeStates": NODE_STATES_MAX,
                "state.edgeStates": NODE_STATES_MAX,
                "state.loads": LOAD_POSITIONS.len(),
                "state.actionStates": ORDER_ACTION_STATES_MAX + INSTANT_ACTION_STATES_MAX,
                "state.errors": ERRORS_MAX,
            },
            "timing": timing,
        },
        "protocolFeatures": {
            "optionalParameters": [
                {
                    "parameter": "order.nodes.nodePosition",
                    "support": "REQUIRED",
                    "description": "the vehicle drives straight lines between node positions",
                },
                { "parameter": "order.nodes.nodePosition.theta", "support": "SUPPORTED" },
                { "parameter": "order.nodes.nodePosition.allowedDeviationXY", "support": "SUPPORTED" },
                { "parameter": "order.edges.maxSpeed", "support": "SUPPORTED" },
            ],
            "agvActions": ActionKind::ALL.into_iter().map(agv_action).collect::<Vec<_>>(),
        },
        "agvGeometry": {
            "wheelDefinitions": [
                wheel("DRIVE", true, 0.0, 0.25),
                wheel("DRIVE", true, 0.0, -0.25),
                wheel("CASTER", false, 0.35, 0.0),
                wheel("CASTER", false, -0.35, 0.0),
            ],
        },
        "loadSpecification": {
            "loadPositions": LOAD_POSITIONS,
            "loadSets": [{
                "setName": "DEFAULT",
                "loadType": "TOTE",
                "loadPositions": LOAD_POSITIONS,
                "loadDimensions": { "length": 0.6, "width": 0.4, "height": 0.3 },
            }],
        },
    })
}

/// The factsheet entry of a supported action.
fn agv_action(kind: ActionKind) -> Value {
    let mut scopes = Vec::new();
    if kind.instant() {
        scopes.push("INSTANT");
    }
    if kind.on_nodes() {
        scopes.push("NODE");
    }
    let mut entry = json!({
        "actionType": kind.name(),
        "actionScopes": scopes,
        "actionDescription": match kind {
            ActionKind::Pick => "takes a load onto a free shelf (or the shelf named by lhd)",
            ActionKind::Drop => "puts down the load named by loadId (or on lhd, or picked last)",
            ActionKind::StartCharging => "starts charging; the vehicle must stand still",
            ActionKind::StopCharging => "stops charging",
            ActionKind::StartPause => "stops moving at once and pauses running actions",
            ActionKind::StopPause => "resumes driving and paused actions",
            ActionKind::CancelOrder => "stops at once and abandons the order",
            ActionKind::StateRequest => "publishes a state",
            ActionKind::FactsheetRequest => "publishes the factsheet",
        },
    });
    if matches!(kind, ActionKind::Pick | ActionKind::Drop) {
        entry["actionParameters"] = json!([
            parameter("lhd", "the shelf to use"),
            parameter("loadId", "the load's identifier"),
            parameter("loadType", "the load's type"),
            parameter("stationType", "the station's type"),
            parameter("stationName", "the station's name"),
        ]);
    }
    entry
}

/// An optional string action parameter.
fn parameter(key: &str, description: &str) -> Value {
    json!({ "key": key, "valueDataType": "STRING", "description": description, "isOptional": true })
}

/// A wheel at (`x_m`, `y_m`) in vehicle coordinates.
fn wheel(kind: &str, driven: bool, x_m: f64, y_m: f64) -> Value {
    json!({
        "type": kind,
        "isActiveDriven": driven,
        "isActiveSteered": false,
        "position": { "x": x_m, "y": y_m },
        "diameter": 0.15,
        "width": 0.05,
    })
}
