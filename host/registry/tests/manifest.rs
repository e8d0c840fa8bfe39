//! `plugin.toml` parsing: a complete manifest round trips into typed
//! fields, defaults follow the plugin's kind, and every kind of mistake is
//! refused with the key, its line and column, and what is wrong. The
//! workspace's own manifests must parse too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bazaar_kernel::model::{Capability, PluginKind};
use bazaar_registry::{
    ConfigSchema, FailurePolicy, Location, MANIFEST_BYTES_MAX, Manifest, ManifestError,
    ManifestLimits, SchemaError,
};
use serde_json::json;

/// A complete manifest using every key.
const FULL: &str = r#"id = "pricing-promotions"
version = "1.2.3-beta.1+build.7"
kind = "pricing"
publisher = "bazaar"
name = "Promotions"
description = "Flash sales, spend thresholds and coupons."
capabilities = ["state", "log", "config"]
failure-policy = "fail-closed"

[limits]
deadline-ms = 20
memory-bytes-max = 67108864
fuel-per-call = 100000000
concurrency-max = 16

[config-schema]
type = "object"
additionalProperties = false
required = ["flash_sales"]
[config-schema.properties.flash_sales]
type = "array"
maxItems = 64
"#;

/// The smallest valid manifest of a pricing plugin.
const MINIMAL: &str = r#"id = "bulk-discount"
version = "1.0.0"
kind = "pricing"
publisher = "acme"
name = "Bulk discount"
description = ""
capabilities = []
"#;

/// `MINIMAL` with one line replaced (matched by its key) or appended.
fn minimal_with(key: &str, line: &str) -> String {
    let mut replaced = false;
    let mut text = String::new();
    for existing in MINIMAL.lines() {
        if existing.starts_with(&format!("{key} =")) {
            text.push_str(line);
            replaced = true;
        } else {
            text.push_str(existing);
        }
        text.push('\n');
    }
    if !replaced {
        text.push_str(line);
        text.push('\n');
    }
    text
}

fn refusal(text: &str) -> ManifestError {
    match Manifest::parse(text) {
        Ok(manifest) => panic!("expected a refusal, parsed {manifest:?}"),
        Err(error) => error,
    }
}

#[test]
fn a_complete_manifest_parses_into_typed_fields() {
    let manifest = Manifest::parse(FULL).expect("the full manifest parses");
    assert_eq!(manifest.id.as_str(), "pricing-promotions");
    assert_eq!(manifest.version, semver::Version::parse("1.2.3-beta.1+build.7").expect("semver"));
    assert_eq!(manifest.kind, PluginKind::Pricing);
    assert_eq!(manifest.publisher.as_str(), "bazaar");
    assert_eq!(manifest.name, "Promotions");
    assert_eq!(manifest.description, "Flash sales, spend thresholds and coupons.");
    assert_eq!(
        manifest.capabilities,
        BTreeSet::from([Capability::Log, Capability::Config, Capability::State])
    );
    assert_eq!(manifest.failure_policy, FailurePolicy::FailClosed);
    assert_eq!(
        manifest.limits,
        ManifestLimits {
            deadline_ms: Some(20),
            memory_bytes_max: Some(67_108_864),
            fuel_per_call: Some(100_000_000),
            concurrency_max: Some(16),
        }
    );
    assert_eq!(
        manifest.config_schema.to_json(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["flash_sales"],
            "properties": {"flash_sales": {"type": "array", "maxItems": 64}},
        })
    );
}

#[test]
fn a_manifest_parses_to_the_same_value_every_time_and_its_schema_round_trips() {
    let first = Manifest::parse(FULL).expect("parses");
    let second = Manifest::parse(FULL).expect("parses again");
    assert_eq!(first, second);
    let schema_again =
        ConfigSchema::parse(first.config_schema.to_json()).expect("the schema's JSON parses");
    assert_eq!(schema_again, first.config_schema);
    let shown = serde_json::to_value(&first).expect("a manifest serialises");
    assert_eq!(shown["failure-policy"], "fail-closed");
    assert_eq!(shown["version"], "1.2.3-beta.1+build.7");
    assert_eq!(shown["config-schema"]["properties"]["flash_sales"]["maxItems"], 64);
}

#[test]
fn omitted_optional_keys_take_the_defaults_of_the_kind() {
    let pricing = Manifest::parse(MINIMAL).expect("minimal pricing manifest");
    assert_eq!(pricing.failure_policy, FailurePolicy::FailOpen);
    assert_eq!(pricing.limits, ManifestLimits::default());
    assert!(pricing.capabilities.is_empty());
    assert_eq!(pricing.config_schema, ConfigSchema::default());
    assert!(pricing.config_schema.validate(&json!({"anything": [1, 2]})).is_ok());
    assert!(pricing.config_schema.validate(&json!([1, 2])).is_err());

    let logistics = Manifest::parse(&minimal_with("kind", r#"kind = "logistics""#))
        .expect("minimal logistics manifest");
    assert_eq!(logistics.failure_policy, FailurePolicy::Fallback);
    let risk = Manifest::parse(&minimal_with("kind", r#"kind = "risk""#)).expect("minimal risk");
    assert_eq!(risk.failure_policy, FailurePolicy::FailClosed);
}

#[test]
fn each_kind_accepts_exactly_its_allowed_failure_policies() {
    for kind in PluginKind::ALL {
        for policy in FailurePolicy::ALL {
            let text = format!(
                "{}failure-policy = \"{policy}\"\n",
                minimal_with("kind", &format!("kind = \"{kind}\""))
            );
            let allowed = FailurePolicy::allowed_for(kind).contains(&policy);
            match Manifest::parse(&text) {
                Ok(manifest) => {
                    assert!(allowed, "{policy} must be refused for {kind}");
                    assert_eq!(manifest.failure_policy, policy);
                }
                Err(error) => {
                    assert!(!allowed, "{policy} must be accepted for {kind}: {error}");
                    let message = error.to_string();
                    assert!(message.contains("failure-policy"), "{message}");
                    assert!(
                        message.contains(&format!("not allowed for a {kind} plugin")),
                        "{message}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_failure_policy_not_allowed_for_the_kind_names_the_allowed_ones_and_the_line() {
    let error = refusal(&minimal_with("failure-policy", r#"failure-policy = "fallback""#));
    let ManifestError::Field { field, location, problem } = &error else {
        panic!("expected a field error, got {error:?}");
    };
    assert_eq!(field, "failure-policy");
    assert_eq!(*location, Location { line: 8, column: 18 });
    assert!(problem.contains("fail-open (the default) or fail-closed"), "{problem}");
    assert!(error.to_string().starts_with("plugin.toml line 8, column 18: `failure-policy`"));
}

#[test]
fn an_unknown_top_level_key_is_refused_with_its_line_and_column() {
    let error = refusal(&minimal_with("failure_policy", r#"failure_policy = "fail-open""#));
    let ManifestError::Syntax { location, message } = &error else {
        panic!("expected a syntax error, got {error:?}");
    };
    assert_eq!(*location, Some(Location { line: 8, column: 1 }));
    assert!(message.contains("unknown field `failure_policy`"), "{message}");
    assert!(message.contains("failure-policy"), "the message lists the real keys: {message}");
}

#[test]
fn an_unknown_key_inside_limits_is_refused() {
    let text = format!("{MINIMAL}[limits]\ndeadline = 20\n");
    let message = refusal(&text).to_string();
    assert!(message.contains("unknown field `deadline`"), "{message}");
    assert!(message.contains("line 9"), "{message}");
}

#[test]
fn a_version_that_is_not_semver_is_refused_with_the_reason() {
    let error = refusal(&minimal_with("version", r#"version = "1.0""#));
    let ManifestError::Field { field, location, problem } = &error else {
        panic!("expected a field error, got {error:?}");
    };
    assert_eq!(field, "version");
    assert_eq!(location.line, 2);
    assert!(problem.contains("\"1.0\" is not a semantic version"), "{problem}");
}

#[test]
fn a_version_of_the_wrong_type_is_a_syntax_error_with_a_location() {
    let message = refusal(&minimal_with("version", "version = 1")).to_string();
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("string"), "{message}");
}

#[test]
fn an_unknown_capability_is_refused_naming_its_position_and_the_known_ones() {
    let error = refusal(&minimal_with("capabilities", r#"capabilities = ["log", "network"]"#));
    let ManifestError::Field { field, location, problem } = &error else {
        panic!("expected a field error, got {error:?}");
    };
    assert_eq!(field, "capabilities[1]");
    assert_eq!(*location, Location { line: 7, column: 24 });
    assert!(problem.contains("\"network\" is not a capability"), "{problem}");
    assert!(problem.contains("log, config, state"), "{problem}");
}

#[test]
fn a_capability_listed_twice_is_refused() {
    let message =
        refusal(&minimal_with("capabilities", r#"capabilities = ["log", "log"]"#)).to_string();
    assert!(message.contains("capabilities[1]") && message.contains("listed twice"), "{message}");
}

#[test]
fn an_unknown_kind_and_a_bad_id_or_publisher_are_refused_by_field() {
    let kind = refusal(&minimal_with("kind", r#"kind = "conveyor-belt""#));
    assert!(matches!(&kind, ManifestError::Field { field, .. } if field == "kind"), "{kind:?}");
    assert!(
        kind.to_string().contains("pricing, logistics, risk, analytics, device-driver"),
        "{kind}"
    );
    let id = refusal(&minimal_with("id", r#"id = "no spaces""#));
    assert!(matches!(&id, ManifestError::Field { field, .. } if field == "id"), "{id:?}");
    let publisher = refusal(&minimal_with("publisher", r#"publisher = "a/b""#));
    assert!(
        matches!(&publisher, ManifestError::Field { field, .. } if field == "publisher"),
        "{publisher:?}"
    );
    assert!(publisher.to_string().contains("publisher id"), "{publisher}");
}

#[test]
fn a_device_driver_may_ask_only_for_what_its_world_imports() {
    let driver = minimal_with("kind", r#"kind = "device-driver""#);
    let fine = driver.replace("capabilities = []", r#"capabilities = ["log", "config"]"#);
    let manifest = Manifest::parse(&fine).expect("log and config are the driver world's imports");
    assert_eq!(manifest.failure_policy.name(), "quarantine");
    let stateful = driver.replace("capabilities = []", r#"capabilities = ["config", "state"]"#);
    let refused = refusal(&stateful);
    assert!(
        matches!(&refused, ManifestError::Field { field, .. } if field == "capabilities[1]"),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("not imported by the device-driver world"), "{refused}");
}

#[test]
fn names_and_descriptions_over_their_limits_are_refused() {
    let long_name = format!("name = \"{}\"", "n".repeat(65));
    assert!(refusal(&minimal_with("name", &long_name)).to_string().contains("limit of 64"));
    assert!(refusal(&minimal_with("name", r#"name = "  ""#)).to_string().contains("empty"));
    let long_description = format!("description = \"{}\"", "d".repeat(1025));
    assert!(
        refusal(&minimal_with("description", &long_description))
            .to_string()
            .contains("limit of 1024")
    );
}

#[test]
fn a_zero_limit_is_refused_because_every_call_would_fail() {
    let text = format!("{MINIMAL}[limits]\nconcurrency-max = 0\n");
    let error = refusal(&text);
    assert!(
        matches!(&error, ManifestError::Field { field, .. } if field == "limits.concurrency-max"),
        "{error:?}"
    );
    let negative = format!("{MINIMAL}[limits]\ndeadline-ms = -5\n");
    assert!(matches!(refusal(&negative), ManifestError::Syntax { .. }));
}

#[test]
fn a_missing_required_key_is_refused_by_name() {
    let text: String = MINIMAL
        .lines()
        .filter(|line| !line.starts_with("publisher"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(refusal(&text).to_string().contains("missing field `publisher`"));
}

#[test]
fn an_unknown_schema_keyword_is_refused_with_its_json_pointer() {
    let text = format!(
        "{MINIMAL}[config-schema]\ntype = \"object\"\n\
         [config-schema.properties.code]\ntype = \"string\"\npattern = \"^[A-Z]+$\"\n"
    );
    let error = refusal(&text);
    let ManifestError::Schema { location, error: schema_error } = &error else {
        panic!("expected a schema error, got {error:?}");
    };
    assert_eq!(location.line, 8);
    let SchemaError::UnknownKeyword { keyword, pointer, .. } = schema_error else {
        panic!("expected an unknown keyword, got {schema_error:?}");
    };
    assert_eq!(keyword, "pattern");
    assert_eq!(pointer, "/properties/code/pattern");
    let message = error.to_string();
    assert!(message.contains("`config-schema`"), "{message}");
    assert!(message.contains("regular expressions are not supported"), "{message}");
}

#[test]
fn a_date_in_the_schema_is_refused_since_json_has_none() {
    let text = format!("{MINIMAL}[config-schema]\ntype = \"object\"\ndefault = 2024-11-11\n");
    let error = refusal(&text);
    assert!(
        matches!(
            &error,
            ManifestError::Schema { error: SchemaError::NotJson { pointer, .. }, .. }
                if pointer == "/default"
        ),
        "{error:?}"
    );
}

#[test]
fn a_manifest_over_the_size_limit_is_refused_before_parsing() {
    let text = format!("{MINIMAL}# {}\n", "x".repeat(MANIFEST_BYTES_MAX));
    assert!(matches!(refusal(&text), ManifestError::TooLarge { .. }));
}

#[test]
fn text_that_is_not_toml_is_refused_with_the_parser_location() {
    let error = refusal("id = \"a\"\nversion = \n");
    let ManifestError::Syntax { location, .. } = &error else {
        panic!("expected a syntax error, got {error:?}");
    };
    assert_eq!(location.map(|location| location.line), Some(2));
}

/// The workspace root, two levels above this crate.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The version of the package whose `Cargo.toml` is in `dir`, resolving
/// `version.workspace = true`.
fn crate_version(dir: &Path) -> Option<String> {
    let read = |path: PathBuf| -> toml::Table {
        let text = std::fs::read_to_string(&path).expect("Cargo.toml is readable");
        toml::from_str(&text).expect("Cargo.toml is TOML")
    };
    let cargo = dir.join("Cargo.toml");
    if !cargo.exists() {
        return None;
    }
    let package = read(cargo);
    match &package["package"]["version"] {
        toml::Value::String(version) => Some(version.clone()),
        _ => {
            let root = read(workspace_root().join("Cargo.toml"));
            root["workspace"]["package"]["version"].as_str().map(str::to_owned)
        }
    }
}

#[test]
fn every_plugin_manifest_in_the_workspace_parses() {
    for group in ["plugins", "examples"] {
        let Ok(entries) = std::fs::read_dir(workspace_root().join(group)) else { continue };
        for entry in entries {
            let dir = entry.expect("directory entry").path();
            let path = dir.join("plugin.toml");
            if !path.exists() {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("plugin.toml is readable");
            let manifest = Manifest::parse(&text)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            let directory_name = dir.file_name().and_then(|name| name.to_str());
            assert_eq!(
                Some(manifest.id.as_str()),
                directory_name,
                "{}: the id names the directory",
                path.display()
            );
            if group == "plugins"
                && let Some(version) = crate_version(&dir)
            {
                assert_eq!(
                    manifest.version.to_string(),
                    version,
                    "{}: a first-party plugin's version is its crate's",
                    path.display()
                );
            }
        }
    }
}
