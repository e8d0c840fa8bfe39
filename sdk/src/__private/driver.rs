//! The glue between the generated `driver` export and a [`DriverPlugin`]:
//! WIT records in, plain types through the plugin, WIT records out.
//!
//! Every conversion moves strings and byte lists rather than copying them:
//! `decode` runs for every inbound frame of every device, and the host
//! aims at hundreds of thousands of them per second.

use super::device_driver::bazaar::commerce::device_types as wit;
use crate::DriverPlugin;
use crate::device::{
    ActionKind, ActionStatus, ActionUpdate, Battery, ConnectionState, Decoded, DeviceCommand,
    DeviceContext, DeviceError, DeviceEvent, DeviceInfo, DevicePosition, DriverError, Encoded,
    ErrorLevel, Frame, Job, MapNode, NodeReached, Stop, StopAction,
};

/// The body of the exported `namespace`.
pub fn driver_namespace<P: DriverPlugin>(device: wit::DeviceInfo) -> String {
    P::namespace_with_store_config(&device_info_from_wit(device))
}

/// The body of the exported `subscriptions`.
pub fn driver_subscriptions<P: DriverPlugin>(device: wit::DeviceInfo) -> Vec<String> {
    P::subscriptions_with_store_config(&device_info_from_wit(device))
}

/// The body of the exported `encode`: converts, encodes with the store's
/// configuration, converts back.
pub fn driver_encode<P: DriverPlugin>(
    context: wit::DeviceContext,
    command: wit::DeviceCommand,
) -> Result<wit::Encoded, wit::DriverError> {
    let context = context_from_wit(context);
    let command = command_from_wit(command);
    match P::encode_with_store_config(&context, &command) {
        Ok(encoded) => Ok(encoded_to_wit(encoded)),
        Err(error) => Err(error_to_wit(error)),
    }
}

/// The body of the exported `decode`: converts, decodes with the store's
/// configuration, converts back.
pub fn driver_decode<P: DriverPlugin>(
    context: wit::DeviceContext,
    topic: &str,
    payload: &[u8],
) -> Result<wit::Decoded, wit::DriverError> {
    let context = context_from_wit(context);
    match P::decode_with_store_config(&context, topic, payload) {
        Ok(decoded) => Ok(decoded_to_wit(decoded)),
        Err(error) => Err(error_to_wit(error)),
    }
}

fn device_info_from_wit(device: wit::DeviceInfo) -> DeviceInfo {
    DeviceInfo {
        id: device.id,
        manufacturer: device.manufacturer,
        serial_number: device.serial_number,
        model: device.model,
    }
}

fn position_from_wit(position: wit::DevicePosition) -> DevicePosition {
    DevicePosition {
        x_mm: position.x_mm,
        y_mm: position.y_mm,
        theta_mrad: position.theta_mrad,
        map_id: position.map_id,
        last_node_id: position.last_node_id,
    }
}

fn position_to_wit(position: DevicePosition) -> wit::DevicePosition {
    wit::DevicePosition {
        x_mm: position.x_mm,
        y_mm: position.y_mm,
        theta_mrad: position.theta_mrad,
        map_id: position.map_id,
        last_node_id: position.last_node_id,
    }
}

fn context_from_wit(context: wit::DeviceContext) -> DeviceContext {
    DeviceContext {
        device: device_info_from_wit(context.device),
        memory: context.memory,
        now_ms: context.now_ms,
        position: context.position.map(position_from_wit),
    }
}

fn job_from_wit(job: wit::Job) -> Job {
    Job {
        job_id: job.job_id,
        update: job.update,
        stops: job
            .stops
            .into_iter()
            .map(|stop| Stop {
                node: MapNode {
                    id: stop.node.id,
                    x_mm: stop.node.x_mm,
                    y_mm: stop.node.y_mm,
                    map_id: stop.node.map_id,
                },
                action: stop.action.map(|action| StopAction {
                    kind: match action.kind {
                        wit::ActionKind::Pick => ActionKind::Pick,
                        wit::ActionKind::Drop => ActionKind::Drop,
                        wit::ActionKind::Charge => ActionKind::Charge,
                    },
                    action_id: action.action_id,
                    load_id: action.load_id,
                    station: action.station,
                }),
            })
            .collect(),
    }
}

fn command_from_wit(command: wit::DeviceCommand) -> DeviceCommand {
    match command {
        wit::DeviceCommand::StartJob(job) => DeviceCommand::StartJob(job_from_wit(job)),
        wit::DeviceCommand::ExtendJob(job) => DeviceCommand::ExtendJob(job_from_wit(job)),
        wit::DeviceCommand::Pause => DeviceCommand::Pause,
        wit::DeviceCommand::Resume => DeviceCommand::Resume,
        wit::DeviceCommand::CancelJob => DeviceCommand::CancelJob,
    }
}

fn encoded_to_wit(encoded: Encoded) -> wit::Encoded {
    wit::Encoded {
        frames: encoded
            .frames
            .into_iter()
            .map(|frame: Frame| wit::Frame {
                topic: frame.topic,
                payload: frame.payload,
                qos: frame.qos,
                retain: frame.retain,
            })
            .collect(),
        memory: encoded.memory,
    }
}

fn decoded_to_wit(decoded: Decoded) -> wit::Decoded {
    wit::Decoded {
        events: decoded.events.into_iter().map(event_to_wit).collect(),
        memory: decoded.memory,
    }
}

fn event_to_wit(event: DeviceEvent) -> wit::DeviceEvent {
    match event {
        DeviceEvent::Connection(state) => wit::DeviceEvent::Connection(match state {
            ConnectionState::Online => wit::ConnectionState::Online,
            ConnectionState::Offline => wit::ConnectionState::Offline,
            ConnectionState::ConnectionBroken => wit::ConnectionState::ConnectionBroken,
        }),
        DeviceEvent::Position(position) => wit::DeviceEvent::Position(position_to_wit(position)),
        DeviceEvent::Battery(Battery { charge_permille, charging }) => {
            wit::DeviceEvent::Battery(wit::Battery { charge_permille, charging })
        }
        DeviceEvent::OperatingMode(mode) => wit::DeviceEvent::OperatingMode(mode),
        DeviceEvent::Paused(paused) => wit::DeviceEvent::Paused(paused),
        DeviceEvent::Driving(driving) => wit::DeviceEvent::Driving(driving),
        DeviceEvent::NodeReached(NodeReached { job_id, node_id }) => {
            wit::DeviceEvent::NodeReached(wit::NodeReached { job_id, node_id })
        }
        DeviceEvent::Action(ActionUpdate { job_id, action_id, status }) => {
            wit::DeviceEvent::Action(wit::ActionUpdate {
                job_id,
                action_id,
                status: match status {
                    ActionStatus::Waiting => wit::ActionStatus::Waiting,
                    ActionStatus::Running => wit::ActionStatus::Running,
                    ActionStatus::Finished => wit::ActionStatus::Finished,
                    ActionStatus::Failed => wit::ActionStatus::Failed,
                },
            })
        }
        DeviceEvent::JobFinished(job_id) => wit::DeviceEvent::JobFinished(job_id),
        DeviceEvent::Errors(errors) => wit::DeviceEvent::Errors(
            errors
                .into_iter()
                .map(|error: DeviceError| wit::DeviceError {
                    error_type: error.error_type,
                    level: match error.level {
                        ErrorLevel::Warning => wit::ErrorLevel::Warning,
                        ErrorLevel::Fatal => wit::ErrorLevel::Fatal,
                    },
                    description: error.description,
                })
                .collect(),
        ),
    }
}

fn error_to_wit(error: DriverError) -> wit::DriverError {
    match error {
        DriverError::Malformed(reason) => wit::DriverError::Malformed(reason),
        DriverError::Unsupported(reason) => wit::DriverError::Unsupported(reason),
    }
}
