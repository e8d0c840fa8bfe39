//! The calling store's configuration of the plugin: JSON text in, a typed,
//! validated value out.
//!
//! The host hands the configuration over on every call (a store may change
//! it at any time), but parsing JSON on every call would cost more than many
//! plugins' own logic. [`load`] therefore keeps the last text and what it
//! parsed into, and parses again only when the text changes.
//!
//! Rule for a store that gave no configuration: [`PluginConfig::when_missing`]
//! decides. Its default is an `invalid-config` error, for plugins that cannot
//! guess what a store wants; a plugin whose configuration has sensible
//! defaults overrides it to return them.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::rc::Rc;

use serde::de::DeserializeOwned;

use crate::PluginError;

/// The largest configuration text the SDK parses. A store's plugin settings
/// are a few kilobytes even with thousands of flash-sale SKUs; 1 MiB bounds
/// parse time and the cached copy while leaving ample room.
pub const CONFIG_TEXT_BYTES_MAX: usize = 1 << 20;

/// A plugin's configuration type.
pub trait PluginConfig: DeserializeOwned + 'static {
    /// The configuration of a store that gave none. By default that is an
    /// `invalid-config` error; return `Ok(Self::default())` (or any value)
    /// to run with defaults instead.
    fn when_missing() -> Result<Self, PluginError> {
        Err(PluginError::invalid_config(
            "the store has not configured this plugin, and it needs a configuration",
        ))
    }
}

/// The raw configuration JSON of the calling store, or `None` when it gave
/// none. On native targets this reads the [`crate::stand_in`].
pub fn get_raw() -> Option<String> {
    crate::backend::config_get()
}

/// Parses `json` into `C`. Errors are `invalid-config` and name the field
/// and position, for example ``at `coupons[1].percent`: "120" is not a
/// percentage from 0 to 100 ... at line 4 column 22``. Text after the
/// document and text longer than [`CONFIG_TEXT_BYTES_MAX`] are errors too.
pub fn parse<C: DeserializeOwned>(json: &str) -> Result<C, PluginError> {
    if json.len() > CONFIG_TEXT_BYTES_MAX {
        return Err(PluginError::invalid_config(format!(
            "the configuration is {} bytes long; at most {CONFIG_TEXT_BYTES_MAX} are accepted",
            json.len()
        )));
    }
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let config = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let cause = error.into_inner();
        if path == "." {
            PluginError::invalid_config(cause.to_string())
        } else {
            PluginError::invalid_config(format!("at `{path}`: {cause}"))
        }
    })?;
    deserializer.end().map_err(|error| PluginError::invalid_config(error.to_string()))?;
    Ok(config)
}

/// The calling store's configuration as `C`: parsed from [`get_raw`] (or
/// [`PluginConfig::when_missing`] when there is none), reused while the text
/// is unchanged. A configuration that fails to parse is remembered too, so a
/// broken configuration costs one parse, not one per call.
pub fn load<C: PluginConfig>() -> Result<Rc<C>, PluginError> {
    let text = get_raw();
    let cached = LAST_CONFIG.with_borrow(|last| match last {
        Some(last) if last.type_id == TypeId::of::<C>() && same_text(&last.text, &text) => {
            Some(last.parsed.clone())
        }
        _ => None,
    });
    let parsed = match cached {
        Some(parsed) => parsed,
        None => {
            let parsed: Result<Rc<dyn Any>, PluginError> = match &text {
                Some(json) => parse::<C>(json),
                None => C::when_missing(),
            }
            .map(|config| Rc::new(config) as Rc<dyn Any>);
            LAST_CONFIG.set(Some(ParsedConfig {
                type_id: TypeId::of::<C>(),
                text,
                parsed: parsed.clone(),
            }));
            parsed
        }
    };
    parsed?
        .downcast::<C>()
        .map_err(|_| PluginError::internal("the configuration cache held another type"))
}

/// Whether two configuration texts are the same, compared eight bytes at a
/// time. The text is compared on every call, and the `memcmp` a wasm guest
/// links goes byte by byte: for a few hundred bytes that was a visible part
/// of a plugin call.
fn same_text(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_bytes(a.as_bytes(), b.as_bytes()),
        (None, None) => true,
        _ => false,
    }
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_rest) = a.as_chunks::<8>();
    let (b_words, b_rest) = b.as_chunks::<8>();
    a_words.iter().zip(b_words).all(|(x, y)| u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y))
        && a_rest == b_rest
}

/// The last configuration [`load`] parsed.
struct ParsedConfig {
    /// The type it was parsed into: a native test may load several types on
    /// one thread, and the same text must not be reused across them.
    type_id: TypeId,
    /// The text it was parsed from, `None` for a missing configuration.
    text: Option<String>,
    /// The parsed value (a `C`), or why parsing failed.
    parsed: Result<Rc<dyn Any>, PluginError>,
}

thread_local! {
    /// A component instance runs one call at a time on one thread, so a
    /// thread-local is the whole cache; natively each test thread has its own.
    static LAST_CONFIG: RefCell<Option<ParsedConfig>> = const { RefCell::new(None) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stand_in;
    use serde::Deserialize;

    #[test]
    fn texts_compare_equal_only_when_every_byte_is() {
        let text = |s: &str| Some(s.to_owned());
        assert!(same_text(&None, &None));
        assert!(!same_text(&None, &text("")));
        assert!(same_text(&text(""), &text("")));
        // Lengths around the eight-byte words, and a difference in every
        // position: in a word, in the tail, in the last byte.
        for len in 0..40 {
            let base: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_text(&text(&base), &text(&base)), "length {len}");
            assert!(!same_text(&text(&base), &text(&format!("{base}x"))), "length {len}");
            for at in 0..len {
                let mut changed = base.clone().into_bytes();
                changed[at] = b'Z';
                let changed = String::from_utf8(changed).unwrap();
                assert!(!same_text(&text(&base), &text(&changed)), "length {len}, byte {at}");
            }
        }
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Limits {
        every: u32,
        #[serde(default)]
        names: Vec<String>,
    }

    impl PluginConfig for Limits {}

    #[derive(Debug, Default, Deserialize, PartialEq)]
    struct Defaults {
        #[serde(default)]
        every: u32,
    }

    impl PluginConfig for Defaults {
        fn when_missing() -> Result<Self, PluginError> {
            Ok(Self::default())
        }
    }

    #[test]
    fn parse_errors_name_the_field_and_the_position() {
        let error = parse::<Limits>("{\"every\": 3, \"names\": [\"a\", 7]}").unwrap_err();
        let PluginError::InvalidConfig(message) = error else {
            panic!("expected invalid-config, got {error:?}");
        };
        assert!(message.starts_with("at `names[1]`:"), "{message}");
        assert!(message.contains("line 1 column"), "{message}");
    }

    #[test]
    fn parse_refuses_trailing_text_unknown_fields_and_oversized_documents() {
        assert!(parse::<Limits>("{\"every\": 3} {}").is_err());
        let unknown = parse::<Limits>("{\"every\": 3, \"evry\": 4}").unwrap_err();
        assert!(unknown.message().contains("evry"), "{unknown}");
        let huge =
            format!("{{\"every\": 3, \"names\": [\"{}\"]}}", "x".repeat(CONFIG_TEXT_BYTES_MAX));
        assert!(matches!(parse::<Limits>(&huge), Err(PluginError::InvalidConfig(_))));
    }

    #[test]
    fn a_missing_configuration_is_an_error_unless_the_plugin_has_defaults() {
        stand_in::reset();
        assert!(matches!(load::<Limits>(), Err(PluginError::InvalidConfig(_))));
        assert_eq!(*load::<Defaults>().unwrap(), Defaults::default());
    }

    #[test]
    fn load_reuses_the_parsed_value_until_the_text_changes() {
        stand_in::reset();
        stand_in::set_config(Some("{\"every\": 3}"));
        let first = load::<Limits>().unwrap();
        let second = load::<Limits>().unwrap();
        assert!(Rc::ptr_eq(&first, &second), "the same text must not be parsed twice");

        stand_in::set_config(Some("{\"every\": 5}"));
        let changed = load::<Limits>().unwrap();
        assert_eq!(changed.every, 5);

        stand_in::set_config(Some("{\"every\": \"five\"}"));
        assert!(matches!(load::<Limits>(), Err(PluginError::InvalidConfig(_))));
        stand_in::set_config(Some("{\"every\": 6}"));
        assert_eq!(load::<Limits>().unwrap().every, 6);
    }

    #[test]
    fn load_does_not_hand_one_type_the_value_parsed_for_another() {
        stand_in::reset();
        stand_in::set_config(Some("{\"every\": 3}"));
        assert_eq!(load::<Limits>().unwrap().every, 3);
        assert_eq!(load::<Defaults>().unwrap().every, 3);
        assert_eq!(load::<Limits>().unwrap().every, 3);
    }
}
