//! A device driver that misbehaves as its configuration asks, for the
//! node's tests of the device bus: a driver that traps, hangs or floods
//! must cost only the devices it drives (they are quarantined), never the
//! host or the other devices.
//!
//! | `behaviour`      | `encode`                                        | `decode`                     |
//! |------------------|-------------------------------------------------|------------------------------|
//! | `trap`           | panics (a trap)                                 | panics (a trap)              |
//! | `loop`           | behaves as `echo`                               | spins forever                |
//! | `garbage`        | one frame outside the namespace, 2 MiB payload  | 10,000 events                |
//! | `echo` (default) | one frame `hostile/{serial}/command`: the command's name | payload `online`: connection online; payload `version`: operating mode, the build's version; anything else malformed |
//!
//! Every behaviour has the namespace `hostile/{serial}/` and subscribes to
//! `hostile/{serial}/state`, so the host routes frames to it. It keeps no
//! memory of its own: it hands back what it was given.
//!
//! Built as a component twice by `bazaar-artifacts` (feature
//! `test-guests`), as two versions of one plugin for the node's hot-swap
//! tests; the builds differ only in the version `echo` reports for a
//! `version` frame, so a device's telemetry shows which version decoded it:
//!
//! | build        | constant            | version | answer to `version`       |
//! |--------------|---------------------|---------|---------------------------|
//! | default      | `HOSTILE_DRIVER`    | 0.1.0   | operating mode `0.1.0`    |
//! | feature `v2` | `HOSTILE_DRIVER_V2` | 2.0.0   | operating mode `2.0.0`    |

use bazaar_sdk::{
    ConnectionState, Decoded, DeviceCommand, DeviceContext, DeviceEvent, DeviceInfo, DriverError,
    DriverPlugin, Encoded, Frame, PluginConfig, PluginError,
};
use serde::Deserialize;

/// The size of the `garbage` frame's payload: 2 MiB, beyond any sensible
/// host limit on an outbound frame.
const GARBAGE_PAYLOAD_BYTES: usize = 2 << 20;

/// How many events `garbage` decodes from one frame: far beyond any
/// sensible host limit on events per frame.
const GARBAGE_EVENTS: usize = 10_000;

/// The plugin version this build is, which `echo` reports as the device's
/// operating mode: the crate's own version.
#[cfg(not(feature = "v2"))]
const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The plugin version this build is: the artifacts build embeds the `v2`
/// build as version 2.0.0 of the plugin, and the two must agree.
#[cfg(feature = "v2")]
const BUILD_VERSION: &str = "2.0.0";

/// The payload `echo` answers with the build's version.
const VERSION_PAYLOAD: &[u8] = b"version";

/// The plugin.
pub struct Hostile;

bazaar_sdk::export_driver!(Hostile);

/// What to do.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Panic in `encode` and `decode`.
    Trap,
    /// Spin forever in `decode`.
    Loop,
    /// Answer far too much, and outside the namespace.
    Garbage,
    /// Behave.
    #[default]
    Echo,
}

/// The configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What to do.
    #[serde(default)]
    pub behaviour: Behaviour,
}

impl PluginConfig for Config {
    fn when_missing() -> Result<Self, PluginError> {
        Ok(Self::default())
    }
}

/// The command's name, as `echo` publishes it.
fn command_name(command: &DeviceCommand) -> &'static str {
    match command {
        DeviceCommand::StartJob(_) => "start-job",
        DeviceCommand::ExtendJob(_) => "extend-job",
        DeviceCommand::Pause => "pause",
        DeviceCommand::Resume => "resume",
        DeviceCommand::CancelJob => "cancel-job",
    }
}

impl DriverPlugin for Hostile {
    type Config = Config;

    fn namespace(device: &DeviceInfo, _config: &Config) -> String {
        format!("hostile/{}/", device.serial_number)
    }

    fn subscriptions(device: &DeviceInfo, _config: &Config) -> Vec<String> {
        vec![format!("hostile/{}/state", device.serial_number)]
    }

    fn encode(
        context: &DeviceContext,
        command: &DeviceCommand,
        config: &Config,
    ) -> Result<Encoded, DriverError> {
        let frame = match config.behaviour {
            Behaviour::Trap => panic!("hostile-driver traps in encode, as configured"),
            Behaviour::Garbage => Frame {
                topic: "elsewhere/entirely".to_owned(),
                payload: vec![b'x'; GARBAGE_PAYLOAD_BYTES],
                qos: 1,
                retain: true,
            },
            Behaviour::Loop | Behaviour::Echo => Frame {
                topic: format!("hostile/{}/command", context.device.serial_number),
                payload: command_name(command).as_bytes().to_vec(),
                qos: 0,
                retain: false,
            },
        };
        Ok(Encoded { frames: vec![frame], memory: context.memory.clone() })
    }

    fn decode(
        context: &DeviceContext,
        _topic: &str,
        payload: &[u8],
        config: &Config,
    ) -> Result<Decoded, DriverError> {
        let events = match config.behaviour {
            Behaviour::Trap => panic!("hostile-driver traps in decode, as configured"),
            Behaviour::Loop => loop {
                // black_box keeps the loop from being optimised away.
                std::hint::black_box(payload);
            },
            Behaviour::Garbage => vec![DeviceEvent::Driving(true); GARBAGE_EVENTS],
            Behaviour::Echo if payload == b"online" => {
                vec![DeviceEvent::Connection(ConnectionState::Online)]
            }
            Behaviour::Echo if payload == VERSION_PAYLOAD => {
                vec![DeviceEvent::OperatingMode(BUILD_VERSION.to_owned())]
            }
            Behaviour::Echo => {
                return Err(DriverError::malformed(
                    "hostile-driver understands only `online` and `version`",
                ));
            }
        };
        Ok(Decoded { events, memory: context.memory.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(payload: &[u8]) -> Result<Decoded, DriverError> {
        let device = DeviceInfo::new("hostile", "Hostile", "S", "any");
        Hostile::decode(
            &DeviceContext::new(device, 0),
            "hostile/S/state",
            payload,
            &Config::default(),
        )
    }

    #[test]
    fn echo_reports_the_version_of_this_build_as_the_operating_mode() {
        let decoded = decode(VERSION_PAYLOAD).unwrap();
        assert_eq!(decoded.events, [DeviceEvent::OperatingMode(BUILD_VERSION.to_owned())]);
    }

    #[test]
    fn echo_reads_online_as_the_link_coming_up_and_calls_anything_else_malformed() {
        let decoded = decode(b"online").unwrap();
        assert_eq!(decoded.events, [DeviceEvent::Connection(ConnectionState::Online)]);
        assert!(matches!(decode(b"offline"), Err(DriverError::Malformed(_))));
    }
}
