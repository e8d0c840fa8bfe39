//! Every artifact carries the manifest it is published with: its own id
//! and version, the right publisher, valid fields, and a configuration
//! schema written in the subset of JSON Schema the host accepts.

use bazaar_artifacts::{Artifact, FIRST_PARTY};
use toml::{Table, Value};

/// The JSON Schema keywords the host accepts in `config-schema`; any other
/// is refused at install.
const SCHEMA_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "enum",
    "const",
    "description",
    "title",
    "default",
    "examples",
    "$comment",
    "minProperties",
    "maxProperties",
    "oneOf",
    "anyOf",
];

/// The JSON types a schema's `type` may name.
const SCHEMA_TYPES: &[&str] =
    &["object", "array", "string", "integer", "number", "boolean", "null"];

/// The manifest's limits on display text, in bytes.
const NAME_BYTES_MAX: usize = 64;
const DESCRIPTION_BYTES_MAX: usize = 1024;

/// The longest plugin or publisher id, in bytes.
const ID_BYTES_MAX: usize = 64;

/// The test guests, when this build has them.
#[cfg(feature = "test-guests")]
const TEST_GUESTS: &[Artifact] = bazaar_artifacts::TEST_GUESTS;
#[cfg(not(feature = "test-guests"))]
const TEST_GUESTS: &[Artifact] = &[];

fn all_artifacts() -> Vec<Artifact> {
    [FIRST_PARTY, TEST_GUESTS].concat()
}

fn manifest_of(artifact: &Artifact) -> Table {
    toml::from_str(artifact.manifest)
        .unwrap_or_else(|error| panic!("the manifest of {} is not TOML: {error}", artifact.id))
}

fn string_field<'table>(manifest: &'table Table, artifact: &Artifact, key: &str) -> &'table str {
    manifest
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("the manifest of {} has no string `{key}`", artifact.id))
}

fn is_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= ID_BYTES_MAX
        && text
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

/// Every way `schema` (at `path`) leaves the supported subset.
fn schema_problems(path: &str, schema: &Value, problems: &mut Vec<String>) {
    let Some(schema) = schema.as_table() else {
        problems.push(format!("{path}: a schema must be a table"));
        return;
    };
    for (keyword, value) in schema {
        let at = format!("{path}.{keyword}");
        match keyword.as_str() {
            "type" => {
                let names: Vec<&Value> = match value {
                    Value::Array(names) => names.iter().collect(),
                    single => vec![single],
                };
                for name in names {
                    if !name.as_str().is_some_and(|name| SCHEMA_TYPES.contains(&name)) {
                        problems.push(format!("{at}: {name} is not a JSON type"));
                    }
                }
            }
            "properties" => match value.as_table() {
                Some(properties) => {
                    for (name, property) in properties {
                        schema_problems(&format!("{at}.{name}"), property, problems);
                    }
                }
                None => problems.push(format!("{at}: must be a table")),
            },
            "items" => schema_problems(&at, value, problems),
            "additionalProperties" if !value.is_bool() => schema_problems(&at, value, problems),
            "anyOf" | "oneOf" => match value.as_array() {
                Some(branches) if !branches.is_empty() => {
                    for (index, branch) in branches.iter().enumerate() {
                        schema_problems(&format!("{at}[{index}]"), branch, problems);
                    }
                }
                _ => problems.push(format!("{at}: must be a non-empty array of schemas")),
            },
            "required" => {
                let described = schema.get("properties").and_then(Value::as_table);
                for name in value.as_array().into_iter().flatten() {
                    match (name.as_str(), described) {
                        (None, _) => problems.push(format!("{at}: {name} is not a name")),
                        (Some(name), Some(described)) if !described.contains_key(name) => {
                            problems.push(format!("{at}: {name} is required but not described"));
                        }
                        _ => {}
                    }
                }
            }
            "minimum" | "maximum" | "minItems" | "maxItems" | "minLength" | "maxLength"
                if !value.is_integer() =>
            {
                problems.push(format!("{at}: must be an integer"));
            }
            other if !SCHEMA_KEYWORDS.contains(&other) => {
                problems.push(format!("{at}: `{other}` is not in the supported subset"));
            }
            _ => {}
        }
    }
}

#[test]
fn every_manifest_text_names_its_artifacts_id_and_version() {
    for artifact in all_artifacts() {
        assert!(
            artifact.manifest.contains(&format!("id = \"{}\"", artifact.id)),
            "{}",
            artifact.id
        );
        assert!(
            artifact.manifest.contains(&format!("version = \"{}\"", artifact.version)),
            "{} {}",
            artifact.id,
            artifact.version
        );
        let manifest = manifest_of(&artifact);
        assert_eq!(string_field(&manifest, &artifact, "id"), artifact.id);
        assert_eq!(string_field(&manifest, &artifact, "version"), artifact.version);
    }
}

#[test]
fn publishers_are_bazaar_for_first_party_acme_for_the_example_and_bazaar_tests_for_guests() {
    for artifact in FIRST_PARTY {
        assert_eq!(string_field(&manifest_of(artifact), artifact, "publisher"), "bazaar");
    }
    for artifact in TEST_GUESTS {
        let expected = if artifact.id == "bulk-discount" { "acme" } else { "bazaar-tests" };
        assert_eq!(
            string_field(&manifest_of(artifact), artifact, "publisher"),
            expected,
            "{}",
            artifact.id
        );
    }
}

#[test]
fn every_manifest_has_valid_ids_kind_texts_capabilities_and_failure_policy() {
    for artifact in all_artifacts() {
        let manifest = manifest_of(&artifact);
        let id = artifact.id;
        assert!(is_id(string_field(&manifest, &artifact, "id")), "{id}");
        assert!(is_id(string_field(&manifest, &artifact, "publisher")), "{id}");
        let kind = string_field(&manifest, &artifact, "kind");
        let policies: &[&str] = match kind {
            "pricing" => &["fail-open", "fail-closed"],
            "logistics" => &["fallback", "fail-closed"],
            "risk" => &["fail-closed", "fail-open"],
            "analytics" => &["fail-open"],
            "device-driver" => &["quarantine"],
            other => panic!("{id}: unknown kind {other:?}"),
        };
        if let Some(policy) = manifest.get("failure-policy") {
            let policy = policy.as_str().expect("a failure policy name");
            assert!(policies.contains(&policy), "{id}: {policy} is no policy of {kind}");
        }
        let name = string_field(&manifest, &artifact, "name");
        assert!(!name.is_empty() && name.len() <= NAME_BYTES_MAX, "{id}: {name:?}");
        let description = string_field(&manifest, &artifact, "description");
        assert!(!description.is_empty() && description.len() <= DESCRIPTION_BYTES_MAX, "{id}");
        let capabilities = manifest["capabilities"].as_array().expect("a capability list");
        let mut names: Vec<&str> =
            capabilities.iter().map(|name| name.as_str().expect("a name")).collect();
        assert!(names.iter().all(|name| ["log", "config", "state"].contains(name)), "{id}");
        let listed = names.len();
        names.dedup();
        assert_eq!(names.len(), listed, "{id} lists a capability twice");
        let known: &[&str] = &[
            "id",
            "version",
            "kind",
            "publisher",
            "name",
            "description",
            "capabilities",
            "failure-policy",
            "limits",
            "config-schema",
        ];
        for key in manifest.keys() {
            assert!(known.contains(&key.as_str()), "{id}: unknown manifest key {key}");
        }
    }
}

#[test]
fn every_configuration_schema_stays_within_the_supported_subset() {
    for artifact in all_artifacts() {
        let manifest = manifest_of(&artifact);
        let schema = manifest
            .get("config-schema")
            .unwrap_or_else(|| panic!("{} describes no configuration", artifact.id));
        assert_eq!(schema.get("type").and_then(Value::as_str), Some("object"), "{}", artifact.id);
        let mut problems = Vec::new();
        schema_problems("config-schema", schema, &mut problems);
        assert!(problems.is_empty(), "{}: {problems:#?}", artifact.id);
    }
}

#[test]
fn the_schema_check_catches_keywords_outside_the_subset() {
    let schema: Value = toml::from_str::<Table>(
        "type = \"object\"\n[properties.sku]\ntype = \"text\"\npattern = \"^[A-Z]+$\"\n",
    )
    .expect("TOML")
    .into();
    let mut problems = Vec::new();
    schema_problems("config-schema", &schema, &mut problems);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems.iter().any(|problem| problem.contains("`pattern`")), "{problems:#?}");
}
