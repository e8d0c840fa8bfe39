//! `plugin.toml`: what a plugin is, who published it, what it asks for and
//! how the host treats its failures, parsed into typed values.
//!
//! Parsing is strict. An unknown key anywhere is refused, because a
//! misspelt `failure-policy` or `[limit]` silently ignored would install a
//! plugin with behaviour its publisher did not ask for. Every error names the
//! key and its line and column, so a publisher can fix the file without
//! guessing.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

use bazaar_kernel::KernelError;
use bazaar_kernel::model::{Capability, PluginId, PluginKind};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::schema::{ConfigSchema, SchemaError};

/// Largest manifest file.
///
/// A manifest is a few hundred bytes of metadata plus the configuration
/// schema; 64 KiB holds a schema of hundreds of properties while keeping the
/// text a version record stores (and every API response that shows it)
/// small.
pub const MANIFEST_BYTES_MAX: usize = 64 * 1024;

/// Longest display name: it is shown in lists and on buttons.
pub const NAME_BYTES_MAX: usize = 64;

/// Longest description: a paragraph a merchant reads before enabling the
/// plugin, not documentation.
pub const DESCRIPTION_BYTES_MAX: usize = 1024;

/// Longest version text.
///
/// `MAJOR.MINOR.PATCH` with a pre-release tag and build metadata fits
/// easily; the bound keeps registry keys and activation histories, which
/// repeat versions, small.
pub const VERSION_BYTES_MAX: usize = 64;

/// The identifier of a plugin publisher, with the same rules as a
/// [`PluginId`]: it names keys in the trust store and appears in manifests.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublisherId(String);

impl PublisherId {
    /// Checks the text with the rules of a [`PluginId`].
    pub fn new(text: impl Into<String>) -> Result<Self, KernelError> {
        let text = text.into();
        match PluginId::new(text.as_str()) {
            Ok(_) => Ok(Self(text)),
            Err(KernelError::InvalidIdentifier { detail, .. }) => {
                Err(KernelError::InvalidIdentifier { what: "publisher id", detail })
            }
            Err(other) => Err(other),
        }
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PublisherId {
    type Error = KernelError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::new(text)
    }
}

impl From<PublisherId> for String {
    fn from(publisher: PublisherId) -> Self {
        publisher.0
    }
}

impl fmt::Debug for PublisherId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, formatter)
    }
}

impl fmt::Display for PublisherId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// What the host does when a plugin call fails (trap, deadline, bad output,
/// open circuit breaker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Carry on without the plugin's output (no price adjustment, no risk
    /// verdict), and flag the order.
    FailOpen,
    /// Refuse the operation the plugin was consulted for.
    FailClosed,
    /// Use the host's built-in behaviour instead (the built-in router).
    Fallback,
    /// Take the device the driver failed on out of service until an
    /// operator releases it; the bus and every other device carry on.
    Quarantine,
}

impl FailurePolicy {
    /// Every policy.
    pub const ALL: [FailurePolicy; 4] = [
        FailurePolicy::FailOpen,
        FailurePolicy::FailClosed,
        FailurePolicy::Fallback,
        FailurePolicy::Quarantine,
    ];

    /// The policy's name in manifests and the API.
    pub fn name(self) -> &'static str {
        match self {
            FailurePolicy::FailOpen => "fail-open",
            FailurePolicy::FailClosed => "fail-closed",
            FailurePolicy::Fallback => "fallback",
            FailurePolicy::Quarantine => "quarantine",
        }
    }

    /// The policy named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|policy| policy.name() == name)
    }

    /// The policies a plugin of `kind` may declare, its default first.
    ///
    /// Pricing fails open by default (a sale at the catalogue price beats no
    /// sale); risk fails closed (an unchecked order is the risk); logistics
    /// falls back to the built-in router, which always exists. Analytics
    /// only fails open: it is never on the order path, a failed batch is
    /// offered again later, and checkout never waits for it. A device
    /// driver's failure quarantines the device it failed on: a driver that
    /// cannot be trusted must not move a robot.
    pub fn allowed_for(kind: PluginKind) -> &'static [FailurePolicy] {
        match kind {
            PluginKind::Pricing => &[FailurePolicy::FailOpen, FailurePolicy::FailClosed],
            PluginKind::Logistics => &[FailurePolicy::Fallback, FailurePolicy::FailClosed],
            PluginKind::Risk => &[FailurePolicy::FailClosed, FailurePolicy::FailOpen],
            PluginKind::Analytics => &[FailurePolicy::FailOpen],
            PluginKind::DeviceDriver => &[FailurePolicy::Quarantine],
        }
    }

    /// The policy of a plugin of `kind` whose manifest declares none.
    pub fn default_for(kind: PluginKind) -> FailurePolicy {
        Self::allowed_for(kind)[0]
    }
}

impl fmt::Display for FailurePolicy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// The limits a plugin asks for; each absent one takes the node's default,
/// and each present one is checked against the node's own limit at install.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ManifestLimits {
    /// Longest a single call may run.
    pub deadline_ms: Option<u64>,
    /// Most linear memory an instance may grow to.
    pub memory_bytes_max: Option<u64>,
    /// Fuel (roughly, Wasm instructions) one call may burn.
    pub fuel_per_call: Option<u64>,
    /// Calls in flight at once over the whole node.
    pub concurrency_max: Option<u32>,
}

/// A parsed and checked `plugin.toml`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Manifest {
    /// The plugin's identifier.
    pub id: PluginId,
    /// The release's semantic version.
    pub version: semver::Version,
    /// The extension point it implements.
    pub kind: PluginKind,
    /// Who published it; their key must verify the package's signature.
    pub publisher: PublisherId,
    /// Display name, at most [`NAME_BYTES_MAX`] bytes.
    pub name: String,
    /// What it does, at most [`DESCRIPTION_BYTES_MAX`] bytes.
    pub description: String,
    /// The host interfaces it asks to be granted.
    pub capabilities: BTreeSet<Capability>,
    /// What the host does when a call fails; allowed for the kind.
    pub failure_policy: FailurePolicy,
    /// Resource limits it asks for.
    pub limits: ManifestLimits,
    /// The schema of its per-store configuration.
    pub config_schema: ConfigSchema,
}

/// Where in the manifest text something is: 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl Location {
    /// The location of byte offset `offset` of `text`.
    fn of(text: &str, offset: usize) -> Self {
        let before = text.get(..offset).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// The location where `span` of `text` starts.
    fn of_span(text: &str, span: Range<usize>) -> Self {
        Self::of(text, span.start)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "line {}, column {}", self.line, self.column)
    }
}

/// Why a manifest was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The text is larger than [`MANIFEST_BYTES_MAX`].
    #[error("plugin.toml is {size_bytes} bytes, more than the limit of {MANIFEST_BYTES_MAX}")]
    TooLarge {
        /// The text's size.
        size_bytes: usize,
    },
    /// The text is not valid TOML, has an unknown key, lacks a key or has a
    /// value of the wrong type; the message is the TOML parser's.
    #[error("plugin.toml{}: {message}", at(location))]
    Syntax {
        /// Where the parser stopped, when it knows.
        location: Option<Location>,
        /// The parser's message.
        message: String,
    },
    /// A key has a well-typed value that is not acceptable.
    #[error("plugin.toml {location}: `{field}` {problem}")]
    Field {
        /// The key, e.g. `failure-policy` or `limits.deadline-ms`.
        field: String,
        /// Where its value is.
        location: Location,
        /// What is wrong with it.
        problem: String,
    },
    /// The `[config-schema]` table is not a schema of the supported subset.
    #[error("plugin.toml {location}: `config-schema`: {error}")]
    Schema {
        /// Where the table is.
        location: Location,
        /// What is wrong with the schema.
        error: SchemaError,
    },
}

/// ", line L, column C" when a location is known.
fn at(location: &Option<Location>) -> String {
    location.map(|location| format!(" {location}")).unwrap_or_default()
}

/// The manifest as TOML types, before its values are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawManifest {
    /// `id`.
    id: Spanned<String>,
    /// `version`.
    version: Spanned<String>,
    /// `kind`.
    kind: Spanned<String>,
    /// `publisher`.
    publisher: Spanned<String>,
    /// `name`.
    name: Spanned<String>,
    /// `description`.
    description: Spanned<String>,
    /// `capabilities`.
    capabilities: Vec<Spanned<String>>,
    /// `failure-policy`.
    failure_policy: Option<Spanned<String>>,
    /// `[limits]`.
    limits: Option<RawLimits>,
    /// `[config-schema]`.
    config_schema: Option<Spanned<toml::Table>>,
}

/// `[limits]` as TOML types.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    /// `deadline-ms`.
    deadline_ms: Option<Spanned<u64>>,
    /// `memory-bytes-max`.
    memory_bytes_max: Option<Spanned<u64>>,
    /// `fuel-per-call`.
    fuel_per_call: Option<Spanned<u64>>,
    /// `concurrency-max`.
    concurrency_max: Option<Spanned<u32>>,
}

impl Manifest {
    /// Parses and checks the text of a `plugin.toml`.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        if text.len() > MANIFEST_BYTES_MAX {
            return Err(ManifestError::TooLarge { size_bytes: text.len() });
        }
        let raw: RawManifest = toml::from_str(text).map_err(|error| ManifestError::Syntax {
            location: error.span().map(|span| Location::of_span(text, span)),
            message: error.message().trim_end().to_owned(),
        })?;
        let field = |name: &str, span: Range<usize>, problem: String| ManifestError::Field {
            field: name.to_owned(),
            location: Location::of_span(text, span),
            problem,
        };

        let id = PluginId::new(raw.id.get_ref().as_str())
            .map_err(|error| field("id", raw.id.span(), format!("is not valid: {error}")))?;
        let version = parse_version(raw.version.get_ref())
            .map_err(|problem| field("version", raw.version.span(), problem))?;
        let kind = PluginKind::parse(raw.kind.get_ref()).ok_or_else(|| {
            let known: Vec<&str> = PluginKind::ALL.iter().map(|kind| kind.world()).collect();
            field(
                "kind",
                raw.kind.span(),
                format!(
                    "{:?} is not a plugin kind; expected one of {}",
                    raw.kind.get_ref(),
                    known.join(", ")
                ),
            )
        })?;
        let publisher = PublisherId::new(raw.publisher.get_ref().as_str()).map_err(|error| {
            field("publisher", raw.publisher.span(), format!("is not valid: {error}"))
        })?;
        let name = raw.name.get_ref();
        check_name(name).map_err(|problem| field("name", raw.name.span(), problem))?;
        let description = raw.description.get_ref();
        check_description(description)
            .map_err(|problem| field("description", raw.description.span(), problem))?;

        let mut capabilities = BTreeSet::new();
        for (index, requested) in raw.capabilities.iter().enumerate() {
            let name = format!("capabilities[{index}]");
            let capability = Capability::parse(requested.get_ref()).ok_or_else(|| {
                let known: Vec<&str> = Capability::ALL.iter().map(|cap| cap.name()).collect();
                field(
                    &name,
                    requested.span(),
                    format!(
                        "{:?} is not a capability; expected one of {}",
                        requested.get_ref(),
                        known.join(", ")
                    ),
                )
            })?;
            if !kind.capabilities().contains(&capability) {
                let allowed: Vec<&str> = kind.capabilities().iter().map(|cap| cap.name()).collect();
                return Err(field(
                    &name,
                    requested.span(),
                    format!(
                        "{:?} is not imported by the {kind} world; a {kind} plugin may ask for {}",
                        capability.name(),
                        allowed.join(", ")
                    ),
                ));
            }
            if !capabilities.insert(capability) {
                return Err(field(
                    &name,
                    requested.span(),
                    format!("{:?} is listed twice", capability.name()),
                ));
            }
        }

        let failure_policy = match &raw.failure_policy {
            None => FailurePolicy::default_for(kind),
            Some(policy) => parse_policy(kind, policy.get_ref())
                .map_err(|problem| field("failure-policy", policy.span(), problem))?,
        };

        let limits = match raw.limits {
            None => ManifestLimits::default(),
            Some(raw_limits) => ManifestLimits {
                deadline_ms: positive(raw_limits.deadline_ms, "limits.deadline-ms", &field)?,
                memory_bytes_max: positive(
                    raw_limits.memory_bytes_max,
                    "limits.memory-bytes-max",
                    &field,
                )?,
                fuel_per_call: positive(raw_limits.fuel_per_call, "limits.fuel-per-call", &field)?,
                concurrency_max: positive(
                    raw_limits.concurrency_max,
                    "limits.concurrency-max",
                    &field,
                )?,
            },
        };

        let config_schema = match raw.config_schema {
            None => ConfigSchema::default(),
            Some(table) => {
                let location = Location::of_span(text, table.span());
                let json = table_to_json(table.into_inner(), "")
                    .map_err(|error| ManifestError::Schema { location, error })?;
                ConfigSchema::parse(json)
                    .map_err(|error| ManifestError::Schema { location, error })?
            }
        };

        Ok(Manifest {
            id,
            version,
            kind,
            publisher,
            name: name.clone(),
            description: description.clone(),
            capabilities,
            failure_policy,
            limits,
            config_schema,
        })
    }
}

/// Parses a semantic version of at most [`VERSION_BYTES_MAX`] bytes.
fn parse_version(text: &str) -> Result<semver::Version, String> {
    if text.len() > VERSION_BYTES_MAX {
        return Err(format!("is {} bytes, more than the limit of {VERSION_BYTES_MAX}", text.len()));
    }
    semver::Version::parse(text).map_err(|error| {
        format!("{text:?} is not a semantic version like \"1.2.3\" or \"1.2.3-beta.1\": {error}")
    })
}

/// A display name: present, short, one line.
fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(format!("is {} bytes, more than the limit of {NAME_BYTES_MAX}", name.len()));
    }
    if name.chars().any(char::is_control) {
        return Err("must be one line without control characters".to_owned());
    }
    Ok(())
}

/// A description: bounded, no control characters but line breaks and tabs.
fn check_description(description: &str) -> Result<(), String> {
    if description.len() > DESCRIPTION_BYTES_MAX {
        return Err(format!(
            "is {} bytes, more than the limit of {DESCRIPTION_BYTES_MAX}",
            description.len()
        ));
    }
    if description
        .chars()
        .any(|character| character.is_control() && !matches!(character, '\n' | '\t'))
    {
        return Err(
            "must not contain control characters other than line breaks and tabs".to_owned()
        );
    }
    Ok(())
}

/// A failure policy that `kind` allows.
fn parse_policy(kind: PluginKind, name: &str) -> Result<FailurePolicy, String> {
    let allowed = FailurePolicy::allowed_for(kind);
    let listed: Vec<String> = allowed
        .iter()
        .enumerate()
        .map(
            |(index, policy)| {
                if index == 0 { format!("{policy} (the default)") } else { policy.to_string() }
            },
        )
        .collect();
    let policy = FailurePolicy::parse(name).ok_or_else(|| {
        format!("{name:?} is not a failure policy; a {kind} plugin may use {}", listed.join(" or "))
    })?;
    if !allowed.contains(&policy) {
        return Err(format!(
            "{name:?} is not allowed for a {kind} plugin; it may use {}",
            listed.join(" or ")
        ));
    }
    Ok(policy)
}

/// A limit that, when present, is above zero: a zero deadline, memory or
/// concurrency would make every call fail.
fn positive<T: Copy + Default + PartialEq>(
    value: Option<Spanned<T>>,
    name: &str,
    field: &impl Fn(&str, Range<usize>, String) -> ManifestError,
) -> Result<Option<T>, ManifestError> {
    match value {
        None => Ok(None),
        Some(value) if *value.get_ref() == T::default() => Err(field(
            name,
            value.span(),
            "must be greater than zero (leave it out to use the node's default)".to_owned(),
        )),
        Some(value) => Ok(Some(*value.get_ref())),
    }
}

/// Converts the `[config-schema]` table to JSON; `pointer` is the JSON
/// pointer of `table` inside the schema.
fn table_to_json(table: toml::Table, pointer: &str) -> Result<serde_json::Value, SchemaError> {
    let mut map = serde_json::Map::with_capacity(table.len());
    for (key, value) in table {
        let child = crate::schema::pointer_token(pointer, &key);
        map.insert(key, toml_to_json(value, &child)?);
    }
    Ok(serde_json::Value::Object(map))
}

/// Converts one TOML value to JSON; dates have no JSON form and are refused.
fn toml_to_json(value: toml::Value, pointer: &str) -> Result<serde_json::Value, SchemaError> {
    use serde_json::Value as Json;
    Ok(match value {
        toml::Value::String(string) => Json::String(string),
        toml::Value::Integer(integer) => Json::from(integer),
        toml::Value::Float(float) => match serde_json::Number::from_f64(float) {
            Some(number) => Json::Number(number),
            None => {
                return Err(SchemaError::NotJson {
                    pointer: pointer.to_owned(),
                    found: format!("the float {float}, which JSON cannot represent"),
                });
            }
        },
        toml::Value::Boolean(flag) => Json::Bool(flag),
        toml::Value::Datetime(datetime) => {
            return Err(SchemaError::NotJson {
                pointer: pointer.to_owned(),
                found: format!("the date-time {datetime}, which JSON cannot represent; quote it"),
            });
        }
        toml::Value::Array(items) => Json::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(index, item)| {
                    toml_to_json(item, &crate::schema::pointer_token(pointer, &index.to_string()))
                })
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => table_to_json(table, pointer)?,
    })
}
