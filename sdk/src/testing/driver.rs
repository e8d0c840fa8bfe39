//! [`DriverSession`]: a device driver called natively the way the host
//! calls it.

use std::marker::PhantomData;

use crate::DriverPlugin;
use crate::device::{
    DeviceCommand, DeviceContext, DeviceEvent, DeviceInfo, DevicePosition, DriverError, Frame,
};

/// One device driven by the plugin `P` natively, the way the host drives it:
/// the store's configuration comes from the [`crate::stand_in`], the memory
/// a call returns is handed to the next call, a failed call leaves the
/// memory as it was, and the device's position is the last one it reported
/// in a [`DeviceEvent::Position`].
///
/// ```
/// use bazaar_sdk::testing::DriverSession;
/// use bazaar_sdk::{
///     Decoded, DeviceCommand, DeviceContext, DeviceEvent, DeviceInfo, DriverError,
///     DriverPlugin, Encoded, Frame, PluginConfig, PluginError,
/// };
///
/// /// A driver that numbers its commands in its memory.
/// struct Counting;
///
/// #[derive(serde::Deserialize)]
/// struct NoConfig {}
///
/// impl PluginConfig for NoConfig {
///     fn when_missing() -> Result<Self, PluginError> {
///         Ok(NoConfig {})
///     }
/// }
///
/// impl DriverPlugin for Counting {
///     type Config = NoConfig;
///
///     fn namespace(device: &DeviceInfo, _: &NoConfig) -> String {
///         format!("counting/{}/", device.serial_number)
///     }
///
///     fn subscriptions(device: &DeviceInfo, config: &NoConfig) -> Vec<String> {
///         vec![format!("{}state", Self::namespace(device, config))]
///     }
///
///     fn encode(
///         context: &DeviceContext,
///         _: &DeviceCommand,
///         config: &NoConfig,
///     ) -> Result<Encoded, DriverError> {
///         let count = context.memory.first().copied().unwrap_or(0);
///         let frame = Frame {
///             topic: format!("{}command", Self::namespace(&context.device, config)),
///             payload: vec![count],
///             qos: 0,
///             retain: false,
///         };
///         Ok(Encoded { frames: vec![frame], memory: vec![count.wrapping_add(1)] })
///     }
///
///     fn decode(
///         context: &DeviceContext,
///         _: &str,
///         _: &[u8],
///         _: &NoConfig,
///     ) -> Result<Decoded, DriverError> {
///         Ok(Decoded { events: Vec::new(), memory: context.memory.clone() })
///     }
/// }
///
/// bazaar_sdk::stand_in::reset();
/// let mut session = DriverSession::<Counting>::new(DeviceInfo::new("agv-1", "acme", "0001", "x1"));
/// assert_eq!(session.encode(&DeviceCommand::Pause).unwrap()[0].payload, [0]);
/// assert_eq!(session.encode(&DeviceCommand::Resume).unwrap()[0].payload, [1]);
/// ```
pub struct DriverSession<P> {
    /// The device.
    device: DeviceInfo,
    /// What the last successful call returned as memory.
    memory: Vec<u8>,
    /// The wall-clock time the next call sees.
    now_ms: u64,
    /// The last position the device reported.
    position: Option<DevicePosition>,
    /// The plugin under test; a session holds no value of it.
    plugin: PhantomData<fn() -> P>,
}

impl<P> std::fmt::Debug for DriverSession<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverSession")
            .field("device", &self.device)
            .field("memory", &self.memory)
            .field("now_ms", &self.now_ms)
            .field("position", &self.position)
            .finish()
    }
}

impl<P: DriverPlugin> DriverSession<P> {
    /// A session for `device`, with no memory and no position yet, at
    /// 2025-11-11T00:00:00+08:00.
    pub fn new(device: DeviceInfo) -> Self {
        Self {
            device,
            memory: Vec::new(),
            now_ms: 1_762_790_400_000,
            position: None,
            plugin: PhantomData,
        }
    }

    /// Sets the wall-clock time the following calls see.
    pub fn at_ms(&mut self, now_ms: u64) -> &mut Self {
        self.now_ms = now_ms;
        self
    }

    /// Moves the wall clock on by `elapsed_ms`.
    pub fn after_ms(&mut self, elapsed_ms: u64) -> &mut Self {
        self.now_ms = self.now_ms.saturating_add(elapsed_ms);
        self
    }

    /// Sets the position the following calls see, as if the device had
    /// reported it (`None`: it has reported none).
    pub fn set_position(&mut self, position: Option<DevicePosition>) -> &mut Self {
        self.position = position;
        self
    }

    /// The last position the device reported.
    pub fn position(&self) -> Option<&DevicePosition> {
        self.position.as_ref()
    }

    /// The memory the next call gets.
    pub fn memory(&self) -> &[u8] {
        &self.memory
    }

    /// Replaces the memory the next call gets, as a host that lost it (or
    /// kept a damaged copy) would hand it over.
    pub fn set_memory(&mut self, memory: Vec<u8>) -> &mut Self {
        self.memory = memory;
        self
    }

    /// The context the next call gets.
    pub fn context(&self) -> DeviceContext {
        DeviceContext {
            device: self.device.clone(),
            memory: self.memory.clone(),
            now_ms: self.now_ms,
            position: self.position.clone(),
        }
    }

    /// The device's namespace with the stand-in's configuration.
    pub fn namespace(&self) -> String {
        P::namespace_with_store_config(&self.device)
    }

    /// The device's subscriptions with the stand-in's configuration.
    pub fn subscriptions(&self) -> Vec<String> {
        P::subscriptions_with_store_config(&self.device)
    }

    /// Encodes `command` and keeps the memory it returns; on an error the
    /// memory is unchanged.
    pub fn encode(&mut self, command: &DeviceCommand) -> Result<Vec<Frame>, DriverError> {
        let encoded = P::encode_with_store_config(&self.context(), command)?;
        self.memory = encoded.memory;
        Ok(encoded.frames)
    }

    /// Decodes a frame that arrived on `topic`, keeps the memory it returns
    /// and the last position among its events; on an error nothing changes.
    pub fn decode(&mut self, topic: &str, payload: &[u8]) -> Result<Vec<DeviceEvent>, DriverError> {
        let decoded = P::decode_with_store_config(&self.context(), topic, payload)?;
        self.memory = decoded.memory;
        for event in &decoded.events {
            if let DeviceEvent::Position(position) = event {
                self.position = Some(position.clone());
            }
        }
        Ok(decoded.events)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::device::{Decoded, Encoded};
    use crate::{PluginConfig, stand_in};

    /// A driver that counts its encodes in its memory, reports the payload
    /// `x,y` as a position and refuses anything else.
    struct Tally;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TallyConfig {
        prefix: String,
    }

    impl PluginConfig for TallyConfig {}

    impl DriverPlugin for Tally {
        type Config = TallyConfig;

        fn namespace(device: &DeviceInfo, config: &TallyConfig) -> String {
            format!("{}/{}/", config.prefix, device.serial_number)
        }

        fn subscriptions(device: &DeviceInfo, config: &TallyConfig) -> Vec<String> {
            vec![format!("{}state", Self::namespace(device, config))]
        }

        fn encode(
            context: &DeviceContext,
            _command: &DeviceCommand,
            config: &TallyConfig,
        ) -> Result<Encoded, DriverError> {
            let count = context.memory.first().copied().unwrap_or(0);
            Ok(Encoded {
                frames: vec![Frame {
                    topic: format!("{}command", Self::namespace(&context.device, config)),
                    payload: vec![count],
                    qos: 0,
                    retain: false,
                }],
                memory: vec![count + 1],
            })
        }

        fn decode(
            _context: &DeviceContext,
            _topic: &str,
            payload: &[u8],
            _config: &TallyConfig,
        ) -> Result<Decoded, DriverError> {
            let text = std::str::from_utf8(payload).map_err(|_| DriverError::malformed("text"))?;
            let (x, y) = text.split_once(',').ok_or_else(|| DriverError::malformed("x,y"))?;
            let parse = |value: &str| value.parse().map_err(|_| DriverError::malformed("number"));
            let position =
                DevicePosition { x_mm: parse(x)?, y_mm: parse(y)?, ..Default::default() };
            Ok(Decoded { events: vec![DeviceEvent::Position(position)], memory: vec![0] })
        }
    }

    fn session() -> DriverSession<Tally> {
        stand_in::reset();
        stand_in::set_config(Some(r#"{"prefix": "tally"}"#));
        DriverSession::new(DeviceInfo::new("d-1", "acme", "0001", "m"))
    }

    #[test]
    fn a_session_threads_the_memory_of_each_call_into_the_next() {
        let mut session = session();
        assert_eq!(session.encode(&DeviceCommand::Pause).unwrap()[0].payload, [0]);
        assert_eq!(session.encode(&DeviceCommand::Resume).unwrap()[0].payload, [1]);
        assert_eq!(session.memory(), [2]);
    }

    #[test]
    fn a_failed_call_leaves_memory_and_position_as_they_were() {
        let mut session = session();
        session.encode(&DeviceCommand::Pause).unwrap();
        assert!(session.decode("tally/0001/state", b"nonsense").is_err());
        assert_eq!(session.memory(), [1]);
        assert_eq!(session.position(), None);
    }

    #[test]
    fn a_reported_position_is_what_the_next_call_sees() {
        let mut session = session();
        session.decode("tally/0001/state", b"1500,-20").unwrap();
        let context = session.context();
        let position = context.position.expect("the reported position");
        assert_eq!((position.x_mm, position.y_mm), (1500, -20));
        assert_eq!(context.memory, [0]);
    }

    #[test]
    fn an_unusable_configuration_leaves_the_device_unroutable_and_is_reported_on_encode() {
        let mut session = session();
        assert_eq!(session.namespace(), "tally/0001/");
        assert_eq!(session.subscriptions(), ["tally/0001/state"]);
        stand_in::set_config(Some(r#"{"prefix": 7}"#));
        assert_eq!(session.namespace(), crate::device::UNROUTABLE_NAMESPACE);
        assert!(session.subscriptions().is_empty());
        let error = session.encode(&DeviceCommand::Pause).unwrap_err();
        assert!(
            matches!(&error, DriverError::Unsupported(reason) if reason.contains("prefix")),
            "{error:?}"
        );
    }
}
