//! The store's configuration of the driver: the first two topic levels and
//! the action parameters each vehicle model needs.
//!
//! ```json
//! {
//!   "interface_name": "uagv",
//!   "major_version": "v2",
//!   "default_parameters": {
//!     "pick": [{ "key": "stationType", "value": "floor" }],
//!     "drop": [{ "key": "stationType", "value": "floor" }]
//!   },
//!   "models": {
//!     "forklift-x2": {
//!       "pick": [
//!         { "key": "loadType", "value": "EPAL" },
//!         { "key": "stationType", "value": "rack" },
//!         { "key": "height", "value": 1.2 }
//!       ]
//!     }
//!   }
//! }
//! ```
//!
//! Every field is optional: `interface_name` defaults to `uagv` and
//! `major_version` to `v2`, the standard's suggestions. An action of kind
//! `pick`, `drop` or `charge` (sent as `startCharging`) on a vehicle of
//! model M gets the parameters `models[M]` lists for that kind when it
//! lists the kind at all (an empty list means none), otherwise those of
//! `default_parameters`. A value is a string, a number or a boolean, as the
//! standard's predefined parameters are. The driver adds `stationName` and
//! `loadId` itself from each stop, so neither may be configured.

use std::collections::BTreeMap;

use bazaar_sdk::device::ActionKind;
use bazaar_sdk::{PluginConfig, PluginError};
use serde::{Deserialize, Serialize};

/// The longest topic level (interface name, major version, manufacturer,
/// serial number), in bytes. A VDA 5050 topic is five levels; 128 bytes
/// each keeps a topic within the few hundred bytes brokers and vehicle
/// firmware handle, with room for long serial numbers.
pub const TOPIC_LEVEL_BYTES_MAX: usize = 128;

/// The most vehicle models with parameters of their own. A fleet mixes a
/// handful of models; 64 leaves ample room while bounding the lookup and
/// the configuration held in memory.
pub const MODELS_MAX: usize = 64;

/// The longest model name, in bytes: model names are short catalogue
/// designations.
pub const MODEL_BYTES_MAX: usize = 64;

/// The most parameters configured for one action kind. The standard's
/// `pick` and `drop` define eight (lhd, stationType, stationName,
/// loadType, loadId, height, depth, side); 16 leaves room for a vendor's
/// own while bounding every order message.
pub const PARAMETERS_PER_ACTION_MAX: usize = 16;

/// The longest parameter key, in bytes: keys are names like `stationType`.
pub const PARAMETER_KEY_BYTES_MAX: usize = 64;

/// The longest text value of a parameter, in bytes: values are load types,
/// station types and the like.
pub const PARAMETER_TEXT_BYTES_MAX: usize = 256;

/// The parameter keys the driver fills in itself from each stop.
pub const RESERVED_PARAMETER_KEYS: [&str; 2] = ["stationName", "loadId"];

/// The configuration, checked.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct Config {
    /// The first topic level (`uagv` unless configured).
    pub interface_name: String,
    /// The second topic level (`v2` unless configured).
    pub major_version: String,
    /// The parameters of every model that does not list its own.
    pub default_parameters: ActionParameters,
    /// Parameters per vehicle model, by model name.
    pub models: BTreeMap<String, ActionParameters>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interface_name: "uagv".to_owned(),
            major_version: "v2".to_owned(),
            default_parameters: ActionParameters::default(),
            models: BTreeMap::new(),
        }
    }
}

impl PluginConfig for Config {
    // Without a configuration the driver speaks the standard's suggested
    // topic layout and sends no parameters but the stop's own.
    fn when_missing() -> Result<Self, PluginError> {
        Ok(Self::default())
    }
}

impl Config {
    /// The configured parameters of an action of `kind` on a vehicle of
    /// `model`.
    pub fn parameters(&self, model: &str, kind: ActionKind) -> &[Parameter] {
        self.models
            .get(model)
            .and_then(|parameters| parameters.of(kind))
            .or_else(|| self.default_parameters.of(kind))
            .unwrap_or(&[])
    }
}

/// The parameters of each action kind; an absent kind falls back to the
/// defaults, an empty list does not.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionParameters {
    /// Of `pick`.
    #[serde(default)]
    pub pick: Option<Vec<Parameter>>,
    /// Of `drop`.
    #[serde(default)]
    pub drop: Option<Vec<Parameter>>,
    /// Of `startCharging`.
    #[serde(default)]
    pub charge: Option<Vec<Parameter>>,
}

impl ActionParameters {
    /// The list for `kind`, if this set lists the kind.
    fn of(&self, kind: ActionKind) -> Option<&[Parameter]> {
        match kind {
            ActionKind::Pick => self.pick.as_deref(),
            ActionKind::Drop => self.drop.as_deref(),
            ActionKind::Charge => self.charge.as_deref(),
        }
    }

    /// Every list with its kind's name, for checking.
    fn lists(&self) -> [(&'static str, Option<&[Parameter]>); 3] {
        [
            ("pick", self.pick.as_deref()),
            ("drop", self.drop.as_deref()),
            ("charge", self.charge.as_deref()),
        ]
    }
}

/// One VDA 5050 `actionParameter`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// The parameter's key, such as `loadType`.
    pub key: String,
    /// Its value.
    pub value: ParameterValue,
}

/// A parameter's value, written to the wire as the JSON value it was
/// configured as.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ParameterValue {
    /// `true` or `false`.
    Flag(bool),
    /// A whole number, such as a count.
    Integer(i64),
    /// A measurement, such as `height` in metres.
    Number(f64),
    /// Text, such as a load type.
    Text(String),
}

/// The configuration as written, before it is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// See [`Config::interface_name`].
    #[serde(default)]
    interface_name: Option<String>,
    /// See [`Config::major_version`].
    #[serde(default)]
    major_version: Option<String>,
    /// See [`Config::default_parameters`].
    #[serde(default)]
    default_parameters: ActionParameters,
    /// See [`Config::models`].
    #[serde(default)]
    models: BTreeMap<String, ActionParameters>,
}

impl TryFrom<RawConfig> for Config {
    type Error = String;

    fn try_from(raw: RawConfig) -> Result<Self, String> {
        let defaults = Config::default();
        let interface_name = raw.interface_name.unwrap_or(defaults.interface_name);
        check_topic_level("interface_name", &interface_name)?;
        if interface_name.starts_with('$') {
            return Err(format!(
                "interface_name {interface_name:?} starts with `$`, which brokers keep for their \
                 own topics"
            ));
        }
        let major_version = raw.major_version.unwrap_or(defaults.major_version);
        check_topic_level("major_version", &major_version)?;
        check_parameters("default_parameters", &raw.default_parameters)?;
        if raw.models.len() > MODELS_MAX {
            return Err(format!(
                "models lists {} models; at most {MODELS_MAX} are allowed",
                raw.models.len()
            ));
        }
        for (model, parameters) in &raw.models {
            if model.is_empty() || model.len() > MODEL_BYTES_MAX {
                return Err(format!(
                    "model name {model:?} must be 1 to {MODEL_BYTES_MAX} bytes long"
                ));
            }
            check_parameters(&format!("models.{model}"), parameters)?;
        }
        Ok(Config {
            interface_name,
            major_version,
            default_parameters: raw.default_parameters,
            models: raw.models,
        })
    }
}

/// Why `level` cannot be an MQTT topic level, if it cannot: empty, too
/// long, or holding `/` (the level separator), `+` or `#` (wildcards) or
/// NUL (forbidden in MQTT strings).
pub fn topic_level_problem(level: &str) -> Option<String> {
    if level.is_empty() {
        return Some("is empty".to_owned());
    }
    if level.len() > TOPIC_LEVEL_BYTES_MAX {
        return Some(format!(
            "is {} bytes long; at most {TOPIC_LEVEL_BYTES_MAX} are allowed",
            level.len()
        ));
    }
    if let Some(special) = level.chars().find(|c| matches!(c, '/' | '+' | '#' | '\0')) {
        return Some(format!("contains {special:?}, which MQTT reserves"));
    }
    None
}

fn check_topic_level(field: &str, level: &str) -> Result<(), String> {
    match topic_level_problem(level) {
        Some(problem) => Err(format!("{field} {level:?} {problem}")),
        None => Ok(()),
    }
}

fn check_parameters(at: &str, parameters: &ActionParameters) -> Result<(), String> {
    for (kind, list) in parameters.lists() {
        let Some(list) = list else {
            continue;
        };
        if list.len() > PARAMETERS_PER_ACTION_MAX {
            return Err(format!(
                "{at}.{kind} lists {} parameters; at most {PARAMETERS_PER_ACTION_MAX} are allowed",
                list.len()
            ));
        }
        for (index, parameter) in list.iter().enumerate() {
            let key = &parameter.key;
            if key.is_empty() || key.len() > PARAMETER_KEY_BYTES_MAX {
                return Err(format!(
                    "{at}.{kind}[{index}].key must be 1 to {PARAMETER_KEY_BYTES_MAX} bytes long"
                ));
            }
            if RESERVED_PARAMETER_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "{at}.{kind}[{index}].key {key:?} is filled in by the driver from each stop \
                     and cannot be configured"
                ));
            }
            if list[..index].iter().any(|earlier| earlier.key == *key) {
                return Err(format!("{at}.{kind} lists the key {key:?} twice"));
            }
            if let ParameterValue::Text(text) = &parameter.value
                && text.len() > PARAMETER_TEXT_BYTES_MAX
            {
                return Err(format!(
                    "{at}.{kind}[{index}].value is {} bytes long; at most \
                     {PARAMETER_TEXT_BYTES_MAX} are allowed",
                    text.len()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bazaar_sdk::config;

    use super::*;

    #[test]
    fn an_empty_configuration_is_the_standard_topic_layout_without_parameters() {
        let config: Config = config::parse("{}").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!((config.interface_name.as_str(), config.major_version.as_str()), ("uagv", "v2"));
        assert!(config.parameters("any", ActionKind::Pick).is_empty());
    }

    #[test]
    fn a_model_s_own_list_replaces_the_defaults_and_an_absent_kind_falls_back_to_them() {
        let config: Config = config::parse(
            r#"{
                "default_parameters": {
                    "pick": [{"key": "stationType", "value": "floor"}],
                    "drop": [{"key": "stationType", "value": "floor"}]
                },
                "models": {
                    "x2": {"pick": [{"key": "loadType", "value": "EPAL"}, {"key": "height", "value": 1.25}], "drop": []}
                }
            }"#,
        )
        .unwrap();
        let pick = config.parameters("x2", ActionKind::Pick);
        assert_eq!(pick.len(), 2);
        assert_eq!(pick[1].value, ParameterValue::Number(1.25));
        assert!(config.parameters("x2", ActionKind::Drop).is_empty());
        assert_eq!(config.parameters("other", ActionKind::Drop)[0].key, "stationType");
        assert!(config.parameters("x2", ActionKind::Charge).is_empty());
    }

    #[test]
    fn parameter_values_keep_their_json_type() {
        let config: Config = config::parse(
            r#"{"default_parameters": {"charge": [
                {"key": "a", "value": true}, {"key": "b", "value": 3},
                {"key": "c", "value": 0.5}, {"key": "d", "value": "text"}
            ]}}"#,
        )
        .unwrap();
        let values: Vec<&ParameterValue> = config
            .parameters("m", ActionKind::Charge)
            .iter()
            .map(|parameter| &parameter.value)
            .collect();
        assert_eq!(
            values,
            [
                &ParameterValue::Flag(true),
                &ParameterValue::Integer(3),
                &ParameterValue::Number(0.5),
                &ParameterValue::Text("text".to_owned()),
            ]
        );
    }

    #[test]
    fn topic_levels_that_mqtt_reserves_are_refused() {
        for bad in [
            r#"{"interface_name": ""}"#,
            r#"{"interface_name": "a/b"}"#,
            r#"{"interface_name": "$SYS"}"#,
            r#"{"major_version": "v+"}"#,
            r##"{"major_version": "#"}"##,
        ] {
            let error = config::parse::<Config>(bad).unwrap_err();
            assert!(matches!(error, PluginError::InvalidConfig(_)), "{bad}: {error:?}");
        }
    }

    #[test]
    fn reserved_duplicate_oversized_and_unknown_parameters_are_refused_with_the_place() {
        let reserved = config::parse::<Config>(
            r#"{"models": {"x": {"pick": [{"key": "stationName", "value": "s"}]}}}"#,
        )
        .unwrap_err();
        assert!(reserved.message().contains("models.x.pick[0].key"), "{reserved}");
        let twice = config::parse::<Config>(
            r#"{"default_parameters": {"drop": [{"key": "a", "value": 1}, {"key": "a", "value": 2}]}}"#,
        )
        .unwrap_err();
        assert!(twice.message().contains("twice"), "{twice}");
        let many = format!(
            r#"{{"default_parameters": {{"pick": [{}]}}}}"#,
            (0..=PARAMETERS_PER_ACTION_MAX)
                .map(|index| format!(r#"{{"key": "k{index}", "value": 1}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(config::parse::<Config>(&many).is_err());
        let long = format!(
            r#"{{"default_parameters": {{"pick": [{{"key": "k", "value": "{}"}}]}}}}"#,
            "x".repeat(PARAMETER_TEXT_BYTES_MAX + 1)
        );
        assert!(config::parse::<Config>(&long).is_err());
        assert!(config::parse::<Config>(r#"{"model": {}}"#).is_err());
        assert!(config::parse::<Config>(r#"{"default_parameters": {"lift": []}}"#).is_err());
        assert!(
            config::parse::<Config>(
                r#"{"default_parameters": {"pick": [{"key": "k", "value": null}]}}"#
            )
            .is_err()
        );
    }
}
