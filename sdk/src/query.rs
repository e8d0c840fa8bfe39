//! Named queries of an analytics plugin: their JSON arguments in, their
//! JSON answers out.
//!
//! The host passes a query's arguments as the text of a JSON object
//! (`"{}"` when there are none) and shows the answer, a JSON document, to
//! dashboards and API clients. [`arguments`] parses the text into the
//! query's own type, with errors that name the field; [`answer`] writes
//! the answer; [`unknown`] is the error for a name the plugin does not
//! answer.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::PluginError;

/// The arguments of a query as `T`. An empty text counts as `{}`. Errors
/// are `unsupported` (the caller asked for something the plugin does not
/// answer) and name the field and position, for example ``at `limit`:
/// invalid type: string "ten", expected u32 at line 1 column 15``.
pub fn arguments<T: DeserializeOwned>(arguments_json: &str) -> Result<T, PluginError> {
    let text = if arguments_json.trim().is_empty() { "{}" } else { arguments_json };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let cause = error.into_inner();
        if path == "." {
            PluginError::unsupported(format!("query arguments: {cause}"))
        } else {
            PluginError::unsupported(format!("query arguments at `{path}`: {cause}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|error| PluginError::unsupported(format!("query arguments: {error}")))?;
    Ok(parsed)
}

/// `value` as the JSON text of a query's answer.
pub fn answer<T: Serialize + ?Sized>(value: &T) -> Result<String, PluginError> {
    serde_json::to_string(value)
        .map_err(|error| PluginError::internal(format!("the answer could not be written: {error}")))
}

/// The error for a query `name` the plugin does not answer, listing the
/// names it does.
pub fn unknown(name: &str, known: &[&str]) -> PluginError {
    let mut shown = name.chars().take(QUOTED_NAME_CHARS_MAX).collect::<String>();
    if shown.len() < name.len() {
        shown.push('…');
    }
    PluginError::unsupported(format!(
        "no query named {shown:?}; this plugin answers {}",
        known.join(", ")
    ))
}

/// How much of an unknown query name the error quotes: names are short
/// identifiers, and the error text must stay short whatever was asked.
const QUOTED_NAME_CHARS_MAX: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Top {
        #[serde(default)]
        limit: Option<u32>,
    }

    #[test]
    fn empty_arguments_read_as_an_empty_object() {
        assert_eq!(arguments::<Top>(""), Ok(Top { limit: None }));
        assert_eq!(arguments::<Top>("{\"limit\": 3}"), Ok(Top { limit: Some(3) }));
    }

    #[test]
    fn argument_errors_are_unsupported_and_name_the_field() {
        let error = arguments::<Top>("{\"limit\": \"ten\"}").unwrap_err();
        let PluginError::Unsupported(message) = &error else {
            panic!("expected unsupported, got {error:?}");
        };
        assert!(message.contains("at `limit`"), "{message}");
        assert!(arguments::<Top>("{\"limit\": 3} trailing").is_err());
        assert!(arguments::<Top>("{\"limt\": 3}").is_err());
    }

    #[test]
    fn an_unknown_query_lists_the_known_ones_and_quotes_little_of_the_name() {
        let error = unknown(&"x".repeat(1000), &["headline", "top-skus"]);
        assert!(error.message().contains("headline, top-skus"), "{error}");
        assert!(error.message().len() < 200, "{error}");
    }

    #[test]
    fn answers_are_json_text() {
        assert_eq!(answer(&[1, 2]).unwrap(), "[1,2]");
    }
}
