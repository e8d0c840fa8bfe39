//! The first-party device driver for automated guided vehicles that speak
//! VDA 5050 2.0 (the VDA/VDMA interface between master control and
//! vehicles) over MQTT.
//!
//! The host owns the MQTT connection, retries, timeouts and the device
//! registry; this driver only translates. It is pure: the same context,
//! command or frame always gives the same answer.
//!
//! # Topics
//!
//! Each vehicle lives under
//! `{interfaceName}/{majorVersion}/{manufacturer}/{serialNumber}/` (the
//! standard's suggested layout; `uagv/v2/` unless configured). The driver
//! publishes `order` and `instantActions` there, QoS 0 and not retained,
//! as the standard asks, and subscribes to `state`, `visualization`,
//! `connection` and `factsheet`. A vehicle whose manufacturer or serial
//! number cannot be a topic level (empty, or holding `/`, `+`, `#`) gets
//! the SDK's unroutable namespace and no subscriptions, and every command
//! for it is `unsupported`.
//!
//! # Commands
//!
//! - `start-job`: an `order` (`orderId` = job id, `orderUpdateId` 0) from
//!   where the vehicle is, through the job's stops (see [`encode`] for the
//!   graph); `extend-job`: an order update from the previous message's last
//!   node. Stop actions are the standard's `pick`, `drop` and
//!   `startCharging`, blocking `HARD`, with the configured parameters plus
//!   `stationName` and (when known) `loadId`.
//! - `pause`: the instant action `startPause`; `resume`: `stopPause`;
//!   `cancel-job`: `cancelOrder` (section 6.8's predefined actions: a
//!   vehicle pauses on `startPause` and carries on on `stopPause`). The
//!   action list is sent under both `actions` (2.0) and `instantActions`
//!   (1.1, which some vehicles sold as 2.0 still read).
//!
//! Every message carries the header: `headerId` counting up by one per
//! topic per vehicle, `timestamp` in ISO 8601 UTC with milliseconds,
//! `version` `2.0.0`, `manufacturer`, `serialNumber`.
//!
//! # Events
//!
//! From `state`, in this order: `position` (when `agvPosition` is present
//! and initialised, with `lastNodeId` as last node), `battery`,
//! `operating-mode`, `paused` (when reported), `driving`, `node-reached`
//! (when `orderId` and `lastNodeId` are set), one `action` per
//! `actionStates` entry, `errors` (always: it replaces the previous list),
//! and `job-finished` when the order is complete (no node or edge states
//! left, every action finished or failed, not driving). From
//! `visualization`: `position`. From `connection`: `connection`. A
//! factsheet is checked and gives nothing. See [`decode`] for the limits.
//!
//! # Units
//!
//! The wire has metres and radians as floats; the host has millimetres and
//! milliradians as integers. Inbound values are rounded to the nearest
//! unit, and NaN, infinite or out-of-range ones make the message
//! malformed; outbound millimetres are exact in metres.
//!
//! # Configuration
//!
//! See [`config`]: the topic prefix and per-model action parameters.
//!
//! # Memory
//!
//! See [`memory`]: the next header id of each topic and the current job,
//! a few dozen bytes threaded through the host.

pub mod config;
pub mod decode;
pub mod encode;
pub mod memory;
pub mod timestamp;
pub mod topics;

#[cfg(test)]
mod tests;

use bazaar_sdk::DriverPlugin;
use bazaar_sdk::device::{Decoded, DeviceCommand, DeviceContext, DeviceInfo, DriverError, Encoded};

pub use config::Config;

/// The protocol version every message declares.
pub const PROTOCOL_VERSION: &str = "2.0.0";

/// The longest identifier the driver sends or reports (job, node, map,
/// action, load and station ids, and the vehicle's order, node, action and
/// error identifiers), in bytes. Identifiers on a warehouse floor are
/// short codes or UUIDs; 256 bytes leaves ample room and bounds every
/// message and the memory.
pub const ID_BYTES_MAX: usize = 256;

/// The largest coordinate, either way from a map's origin, in millimetres:
/// 100,000 km. Beyond any warehouse, or any projected coordinate on Earth,
/// yet far below 2^53 mm, so every millimetre is exact as a float of
/// metres on the wire.
pub const POSITION_MM_ABS_MAX: u64 = 100_000_000_000;

/// The plugin.
pub struct Vda5050;

bazaar_sdk::export_driver!(Vda5050);

impl DriverPlugin for Vda5050 {
    type Config = Config;

    fn namespace(device: &DeviceInfo, config: &Config) -> String {
        topics::namespace(device, config)
    }

    fn subscriptions(device: &DeviceInfo, config: &Config) -> Vec<String> {
        topics::subscriptions(device, config)
    }

    fn encode(
        context: &DeviceContext,
        command: &DeviceCommand,
        config: &Config,
    ) -> Result<Encoded, DriverError> {
        encode::encode(context, command, config)
    }

    fn decode(
        context: &DeviceContext,
        topic: &str,
        payload: &[u8],
        config: &Config,
    ) -> Result<Decoded, DriverError> {
        decode::decode(context, topic, payload, config)
    }
}
