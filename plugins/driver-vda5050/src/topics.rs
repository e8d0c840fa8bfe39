//! The standard's topic layout,
//! `interfaceName/majorVersion/manufacturer/serialNumber/topic` (VDA 5050
//! 2.0 section 6.3), and which topics the driver publishes and reads.

use bazaar_sdk::device::{DeviceInfo, UNROUTABLE_NAMESPACE};

use crate::config::{Config, topic_level_problem};

/// The topics the vehicle publishes and the host subscribes to.
pub const SUBSCRIBED: [&str; 4] = ["state", "visualization", "connection", "factsheet"];

/// A topic the driver publishes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// `order`.
    Order,
    /// `instantActions`.
    InstantActions,
}

/// A topic the driver reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// `state`.
    State,
    /// `visualization`.
    Visualization,
    /// `connection`.
    Connection,
    /// `factsheet`.
    Factsheet,
}

/// Why `device` cannot be addressed over MQTT, if it cannot: its
/// manufacturer or serial number is not a valid topic level (empty, or
/// holding `/`, `+`, `#` or NUL, or too long).
pub fn addressing_problem(device: &DeviceInfo) -> Option<String> {
    if let Some(problem) = topic_level_problem(&device.manufacturer) {
        return Some(format!(
            "device {:?} cannot be addressed: its manufacturer {:?} {problem}",
            device.id, device.manufacturer
        ));
    }
    if let Some(problem) = topic_level_problem(&device.serial_number) {
        return Some(format!(
            "device {:?} cannot be addressed: its serial number {:?} {problem}",
            device.id, device.serial_number
        ));
    }
    None
}

/// `{interfaceName}/{majorVersion}/{manufacturer}/{serialNumber}/`, or the
/// SDK's unroutable namespace for a device that cannot be addressed: a
/// serial number such as `a/b` would otherwise claim another vehicle's
/// topics, and `#` would claim every topic.
pub fn namespace(device: &DeviceInfo, config: &Config) -> String {
    if addressing_problem(device).is_some() {
        return UNROUTABLE_NAMESPACE.to_owned();
    }
    format!(
        "{}/{}/{}/{}/",
        config.interface_name, config.major_version, device.manufacturer, device.serial_number
    )
}

/// The topics the host subscribes to for `device`; none for a device that
/// cannot be addressed.
pub fn subscriptions(device: &DeviceInfo, config: &Config) -> Vec<String> {
    if addressing_problem(device).is_some() {
        return Vec::new();
    }
    let namespace = namespace(device, config);
    SUBSCRIBED.iter().map(|topic| format!("{namespace}{topic}")).collect()
}

/// The topic of an outbound message (for an addressable device).
pub fn outbound(device: &DeviceInfo, config: &Config, topic: Outbound) -> String {
    let name = match topic {
        Outbound::Order => "order",
        Outbound::InstantActions => "instantActions",
    };
    format!("{}{name}", namespace(device, config))
}

/// Which subscribed topic `topic` is, if it is one of `device`'s. Compared
/// level by level without building the namespace: it runs for every
/// inbound frame.
pub fn inbound(topic: &str, device: &DeviceInfo, config: &Config) -> Option<Inbound> {
    if addressing_problem(device).is_some() {
        return None;
    }
    let rest = topic.strip_prefix(config.interface_name.as_str())?.strip_prefix('/')?;
    let rest = rest.strip_prefix(config.major_version.as_str())?.strip_prefix('/')?;
    let rest = rest.strip_prefix(device.manufacturer.as_str())?.strip_prefix('/')?;
    let rest = rest.strip_prefix(device.serial_number.as_str())?.strip_prefix('/')?;
    match rest {
        "state" => Some(Inbound::State),
        "visualization" => Some(Inbound::Visualization),
        "connection" => Some(Inbound::Connection),
        "factsheet" => Some(Inbound::Factsheet),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vehicle(manufacturer: &str, serial_number: &str) -> DeviceInfo {
        DeviceInfo::new("agv-1", manufacturer, serial_number, "x2")
    }

    #[test]
    fn the_namespace_and_subscriptions_follow_the_standard_layout() {
        let device = vehicle("KIT", "0001");
        let config = Config::default();
        assert_eq!(namespace(&device, &config), "uagv/v2/KIT/0001/");
        assert_eq!(
            subscriptions(&device, &config),
            [
                "uagv/v2/KIT/0001/state",
                "uagv/v2/KIT/0001/visualization",
                "uagv/v2/KIT/0001/connection",
                "uagv/v2/KIT/0001/factsheet",
            ]
        );
        assert_eq!(outbound(&device, &config, Outbound::Order), "uagv/v2/KIT/0001/order");
        let custom = Config {
            interface_name: "fleet".to_owned(),
            major_version: "v2".to_owned(),
            ..Config::default()
        };
        assert_eq!(
            outbound(&device, &custom, Outbound::InstantActions),
            "fleet/v2/KIT/0001/instantActions"
        );
    }

    #[test]
    fn a_device_whose_names_are_not_topic_levels_gets_the_unroutable_namespace() {
        let config = Config::default();
        for device in
            [vehicle("", "1"), vehicle("KIT", "a/b"), vehicle("K+", "1"), vehicle("KIT", "#")]
        {
            assert!(addressing_problem(&device).is_some(), "{device:?}");
            assert_eq!(namespace(&device, &config), UNROUTABLE_NAMESPACE);
            assert!(subscriptions(&device, &config).is_empty());
            assert_eq!(inbound("uagv/v2/KIT/a/b/state", &device, &config), None);
        }
    }

    #[test]
    fn inbound_topics_are_recognised_only_under_the_device_s_own_namespace() {
        let device = vehicle("KIT", "0001");
        let config = Config::default();
        assert_eq!(inbound("uagv/v2/KIT/0001/state", &device, &config), Some(Inbound::State));
        assert_eq!(
            inbound("uagv/v2/KIT/0001/connection", &device, &config),
            Some(Inbound::Connection)
        );
        for other in [
            "uagv/v2/KIT/0001/order",
            "uagv/v2/KIT/0001/state/extra",
            "uagv/v2/KIT/00011/state",
            "uagv/v1/KIT/0001/state",
            "uagv/v2/KIT/0001/",
            "",
        ] {
            assert_eq!(inbound(other, &device, &config), None, "{other}");
        }
    }
}
