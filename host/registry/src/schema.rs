//! The JSON Schema subset a plugin uses to describe its per-store
//! configuration, and the validator that checks a merchant's configuration
//! against it before the plugin ever sees it.
//!
//! Only a small, predictable subset is supported (types, properties, items,
//! bounds, `enum`/`const`, `oneOf`/`anyOf`; no `pattern`, no `$ref`). A schema
//! using anything else is refused when the plugin is installed, naming the
//! keyword and where it is: a keyword silently ignored would let a merchant
//! store a configuration the publisher believed impossible.
//!
//! Numbers are compared exactly. An integer bound such as
//! `maximum = 9223372036854775807` is never rounded through `f64`, and an
//! `integer` is a JSON number written without fraction or exponent (`3`, not
//! `3.0`), because that is what a plugin decoding its configuration into an
//! integer type accepts.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Number, Value};

/// Deepest nesting of schemas inside a schema (the root is depth 1).
///
/// Real configuration schemas nest a handful of levels (a list of rules,
/// each with a few fields); 32 leaves ample room while keeping the recursive
/// parser and validator far from any stack limit.
pub const SCHEMA_DEPTH_MAX: usize = 32;

/// Most schemas (the root and every nested schema) in one configuration
/// schema.
///
/// Validation visits each schema node at most once per configuration value,
/// so this bounds the validator's work; a manifest of at most 64 KiB cannot
/// sensibly describe more.
pub const SCHEMA_NODES_MAX: usize = 4096;

/// Most violations reported for one configuration.
///
/// Enough to fix a configuration in one pass, few enough that a hostile
/// configuration cannot make the error itself large.
pub const CONFIG_VIOLATIONS_MAX: usize = 16;

/// Longest rendering of a configuration value quoted inside a violation
/// message; longer values are cut, so messages stay one readable line.
const QUOTED_VALUE_CHARS_MAX: usize = 64;

/// The keywords of the supported subset, listed in errors.
const KEYWORDS: [&str; 25] = [
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
    "minProperties",
    "maxProperties",
    "enum",
    "const",
    "oneOf",
    "anyOf",
    "description",
    "title",
    "default",
    "examples",
    "$comment",
];

/// Why a configuration schema was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A keyword outside the supported subset.
    #[error("unknown schema keyword {keyword:?} at {}: {reason}", describe_pointer(pointer))]
    UnknownKeyword {
        /// The keyword as written.
        keyword: String,
        /// JSON pointer to the keyword inside the schema.
        pointer: String,
        /// Why it is refused and what is supported instead.
        reason: String,
    },
    /// A supported keyword with a value of the wrong form.
    #[error("schema keyword {keyword:?} at {}: {problem}", describe_pointer(pointer))]
    InvalidKeyword {
        /// The keyword.
        keyword: String,
        /// JSON pointer to the keyword inside the schema.
        pointer: String,
        /// What is wrong with its value.
        problem: String,
    },
    /// A place that must hold a schema holds something else.
    #[error("expected a schema (a table/object) at {}, found {found}", describe_pointer(pointer))]
    NotASchema {
        /// JSON pointer to the value.
        pointer: String,
        /// What was found instead, e.g. "a string".
        found: String,
    },
    /// A value with no JSON form (a TOML date, an infinite float).
    #[error("value at {} is {found}", describe_pointer(pointer))]
    NotJson {
        /// JSON pointer to the value.
        pointer: String,
        /// What the value is and why it has no JSON form.
        found: String,
    },
    /// Schemas nested deeper than [`SCHEMA_DEPTH_MAX`].
    #[error(
        "schema at {} is nested more than {SCHEMA_DEPTH_MAX} levels deep",
        describe_pointer(pointer)
    )]
    TooDeep {
        /// JSON pointer to the first schema beyond the limit.
        pointer: String,
    },
    /// More than [`SCHEMA_NODES_MAX`] schemas in total.
    #[error(
        "schema has more than {SCHEMA_NODES_MAX} nested schemas (first one over at {})",
        describe_pointer(pointer)
    )]
    TooManyNodes {
        /// JSON pointer to the first schema over the limit.
        pointer: String,
    },
}

/// A JSON pointer as people read it: the root has the empty pointer.
fn describe_pointer(pointer: &str) -> String {
    if pointer.is_empty() { "the schema root".to_owned() } else { pointer.to_owned() }
}

/// One reason a configuration does not satisfy its schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigViolation {
    /// JSON pointer to the offending value, like `/flash_sales/0/price`;
    /// empty for the configuration as a whole.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for ConfigViolation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(formatter, "(whole configuration): {}", self.message)
        } else {
            write!(formatter, "{}: {}", self.path, self.message)
        }
    }
}

/// Every violation found in a configuration, up to
/// [`CONFIG_VIOLATIONS_MAX`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigErrors {
    /// The violations, in the order the validator met them.
    pub violations: Vec<ConfigViolation>,
    /// Whether validation stopped at the limit, so the configuration may
    /// have further problems.
    pub truncated: bool,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("the configuration does not match the plugin's schema: ")?;
        for (index, violation) in self.violations.iter().enumerate() {
            if index > 0 {
                formatter.write_str("; ")?;
            }
            write!(formatter, "{violation}")?;
        }
        if self.truncated {
            write!(
                formatter,
                "; (stopped after {CONFIG_VIOLATIONS_MAX} problems; there may be more)"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The JSON types a schema can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JsonType {
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
    /// A JSON string.
    String,
    /// A number written without fraction or exponent.
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// `null`.
    Null,
}

impl JsonType {
    /// Every type, in the order errors list them.
    const ALL: [JsonType; 7] = [
        JsonType::Object,
        JsonType::Array,
        JsonType::String,
        JsonType::Integer,
        JsonType::Number,
        JsonType::Boolean,
        JsonType::Null,
    ];

    /// The type's name in schemas.
    fn name(self) -> &'static str {
        match self {
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::String => "string",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::Boolean => "boolean",
            JsonType::Null => "null",
        }
    }

    /// The type named `name`.
    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Whether `value` is of this type.
    fn admits(self, value: &Value) -> bool {
        match (self, value) {
            (JsonType::Object, Value::Object(_))
            | (JsonType::Array, Value::Array(_))
            | (JsonType::String, Value::String(_))
            | (JsonType::Number, Value::Number(_))
            | (JsonType::Boolean, Value::Bool(_))
            | (JsonType::Null, Value::Null) => true,
            (JsonType::Integer, Value::Number(number)) => number.is_i64() || number.is_u64(),
            _ => false,
        }
    }
}

/// What a value is, for messages: "an object", "an integer", ...
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "an integer",
        Value::Number(_) => "a number with a fraction",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON number in a form that compares exactly: every integer JSON can
/// carry fits `i128`, so only numbers with a fraction or an exponent are
/// floating point.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Exact {
    /// A number written as an integer.
    Integer(i128),
    /// Any other number.
    Float(f64),
}

impl Exact {
    /// The exact form of `number`.
    fn of(number: &Number) -> Self {
        if let Some(integer) = number.as_i64() {
            Exact::Integer(i128::from(integer))
        } else if let Some(integer) = number.as_u64() {
            Exact::Integer(i128::from(integer))
        } else {
            // Without serde_json's arbitrary precision every other number is
            // an f64; NaN and infinities are not JSON.
            Exact::Float(number.as_f64().unwrap_or(0.0))
        }
    }

    /// Exact ordering; JSON has no NaN, so every pair is ordered.
    fn compare(self, other: Exact) -> Ordering {
        match (self, other) {
            (Exact::Integer(a), Exact::Integer(b)) => a.cmp(&b),
            (Exact::Integer(a), Exact::Float(b)) => compare_integer_float(a, b),
            (Exact::Float(a), Exact::Integer(b)) => compare_integer_float(b, a).reverse(),
            (Exact::Float(a), Exact::Float(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        }
    }
}

/// Compares an integer with a float without rounding the integer.
fn compare_integer_float(integer: i128, float: f64) -> Ordering {
    // 2^127: every i128 is below it, and every float at or above it is
    // larger than any i128 (and symmetrically below -2^127).
    const I128_BOUND: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if float >= I128_BOUND {
        return Ordering::Less;
    }
    if float < -I128_BOUND {
        return Ordering::Greater;
    }
    let floor = float.floor();
    // Exact: `floor` is integral and inside the i128 range.
    let floor_integer = floor as i128;
    match integer.cmp(&floor_integer) {
        Ordering::Equal if float > floor => Ordering::Less,
        ordering => ordering,
    }
}

/// A text form in which two JSON values are equal exactly when JSON Schema
/// calls them equal: object keys sorted, and numbers by value (`1` and `1.0`
/// are the same number).
fn canonical(value: &Value) -> String {
    let mut text = String::new();
    write_canonical(value, &mut text);
    text
}

/// Appends the canonical form of `value` to `text`.
fn write_canonical(value: &Value, text: &mut String) {
    match value {
        Value::Null => text.push_str("null"),
        Value::Bool(flag) => text.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => match Exact::of(number) {
            Exact::Integer(integer) => text.push_str(&integer.to_string()),
            Exact::Float(float) => {
                if float.fract() == 0.0
                    && compare_integer_float(i128::MAX, float) == Ordering::Greater
                    && compare_integer_float(i128::MIN, float) == Ordering::Less
                {
                    // Exact: integral and inside the i128 range.
                    let integer = float as i128;
                    text.push_str(&integer.to_string());
                } else {
                    text.push_str(&format!("{float:e}"));
                }
            }
        },
        Value::String(string) => text.push_str(&Value::String(string.clone()).to_string()),
        Value::Array(items) => {
            text.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    text.push(',');
                }
                write_canonical(item, text);
            }
            text.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            text.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    text.push(',');
                }
                text.push_str(&Value::String(key.clone()).to_string());
                text.push(':');
                write_canonical(&map[key], text);
            }
            text.push('}');
        }
    }
}

/// A short rendering of `value` for messages.
fn quote(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= QUOTED_VALUE_CHARS_MAX {
        return text;
    }
    let mut cut: String = text.chars().take(QUOTED_VALUE_CHARS_MAX).collect();
    cut.push('…');
    cut
}

/// Appends one JSON pointer token to `pointer`, escaped per RFC 6901.
pub(crate) fn pointer_token(pointer: &str, token: &str) -> String {
    let mut extended = String::with_capacity(pointer.len() + token.len() + 1);
    extended.push_str(pointer);
    extended.push('/');
    for character in token.chars() {
        match character {
            '~' => extended.push_str("~0"),
            '/' => extended.push_str("~1"),
            other => extended.push(other),
        }
    }
    extended
}

/// What an object schema says about properties it does not list.
#[derive(Clone, Debug)]
enum Additional {
    /// Any further property is allowed (the default).
    Allowed,
    /// No further property is allowed.
    Forbidden,
    /// Every further property must satisfy this schema.
    Schema(Box<Node>),
}

/// A bound on a number, kept with its text for messages.
#[derive(Clone, Debug)]
struct Bound {
    /// The bound as written.
    number: Number,
    /// The bound in exactly comparable form.
    exact: Exact,
}

/// One parsed schema: every constraint of the subset, absent when unset.
#[derive(Clone, Debug, Default)]
struct Node {
    /// `type`: the value must be one of these.
    types: Option<Vec<JsonType>>,
    /// `properties`: schemas of named properties.
    properties: BTreeMap<String, Node>,
    /// `required`: properties that must be present.
    required: Vec<String>,
    /// `additionalProperties`.
    additional: Option<Additional>,
    /// `items`: the schema of every array item.
    items: Option<Box<Node>>,
    /// `minItems`.
    items_min: Option<u64>,
    /// `maxItems`.
    items_max: Option<u64>,
    /// `uniqueItems`.
    unique_items: bool,
    /// `minimum`.
    minimum: Option<Bound>,
    /// `maximum`.
    maximum: Option<Bound>,
    /// `exclusiveMinimum`.
    exclusive_minimum: Option<Bound>,
    /// `exclusiveMaximum`.
    exclusive_maximum: Option<Bound>,
    /// `minLength`, in Unicode scalar values.
    length_min: Option<u64>,
    /// `maxLength`, in Unicode scalar values.
    length_max: Option<u64>,
    /// `minProperties`.
    properties_min: Option<u64>,
    /// `maxProperties`.
    properties_max: Option<u64>,
    /// `enum`: the allowed values with their canonical forms.
    allowed: Option<Vec<(Value, String)>>,
    /// `const`: the only allowed value with its canonical form.
    constant: Option<(Value, String)>,
    /// `oneOf`: exactly one must match.
    one_of: Vec<Node>,
    /// `anyOf`: at least one must match.
    any_of: Vec<Node>,
}

/// A parsed, validated configuration schema.
#[derive(Clone, Debug)]
pub struct ConfigSchema {
    /// The parsed constraints.
    root: Node,
    /// The schema exactly as given, for [`ConfigSchema::to_json`].
    json: Value,
}

impl PartialEq for ConfigSchema {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl Default for ConfigSchema {
    /// The schema of a plugin that declares none: any JSON object.
    fn default() -> Self {
        let mut json = Map::new();
        json.insert("type".to_owned(), Value::String("object".to_owned()));
        Self {
            root: Node { types: Some(vec![JsonType::Object]), ..Node::default() },
            json: Value::Object(json),
        }
    }
}

impl Serialize for ConfigSchema {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

impl ConfigSchema {
    /// Parses a schema of the supported subset; refuses any other keyword,
    /// malformed keyword values, nesting beyond [`SCHEMA_DEPTH_MAX`] and more
    /// than [`SCHEMA_NODES_MAX`] schemas.
    pub fn parse(json: Value) -> Result<ConfigSchema, SchemaError> {
        let mut nodes = 0;
        let root = Parser { nodes: &mut nodes }.node(&json, "", 1)?;
        Ok(ConfigSchema { root, json })
    }

    /// The schema as JSON, exactly as it was given.
    pub fn to_json(&self) -> Value {
        self.json.clone()
    }

    /// Checks `config`; on failure returns up to [`CONFIG_VIOLATIONS_MAX`]
    /// violations, each with the JSON pointer of the offending value.
    pub fn validate(&self, config: &Value) -> Result<(), ConfigErrors> {
        let mut found = Violations::new(CONFIG_VIOLATIONS_MAX);
        self.root.check(config, "", &mut found);
        if found.violations.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors { violations: found.violations, truncated: found.truncated })
        }
    }
}

/// Walks a schema document, counting nodes against [`SCHEMA_NODES_MAX`].
struct Parser<'count> {
    /// Schemas parsed so far.
    nodes: &'count mut usize,
}

impl Parser<'_> {
    /// Parses the schema at `pointer`, `depth` levels deep.
    fn node(&mut self, value: &Value, pointer: &str, depth: usize) -> Result<Node, SchemaError> {
        if depth > SCHEMA_DEPTH_MAX {
            return Err(SchemaError::TooDeep { pointer: pointer.to_owned() });
        }
        *self.nodes += 1;
        if *self.nodes > SCHEMA_NODES_MAX {
            return Err(SchemaError::TooManyNodes { pointer: pointer.to_owned() });
        }
        let Value::Object(map) = value else {
            return Err(SchemaError::NotASchema {
                pointer: pointer.to_owned(),
                found: kind_of(value).to_owned(),
            });
        };
        let mut node = Node::default();
        for (keyword, value) in map {
            let at = pointer_token(pointer, keyword);
            let invalid = |problem: &str| SchemaError::InvalidKeyword {
                keyword: keyword.clone(),
                pointer: at.clone(),
                problem: problem.to_owned(),
            };
            match keyword.as_str() {
                "type" => {
                    node.types = Some(parse_types(value).map_err(|problem| invalid(&problem))?)
                }
                "properties" => {
                    let Value::Object(properties) = value else {
                        return Err(invalid("must be a table of property names to schemas"));
                    };
                    for (name, schema) in properties {
                        let child = self.node(schema, &pointer_token(&at, name), depth + 1)?;
                        node.properties.insert(name.clone(), child);
                    }
                }
                "required" => {
                    node.required = unique_strings(value)
                        .ok_or_else(|| invalid("must be an array of distinct property names"))?;
                }
                "additionalProperties" => {
                    node.additional = Some(match value {
                        Value::Bool(true) => Additional::Allowed,
                        Value::Bool(false) => Additional::Forbidden,
                        schema => {
                            Additional::Schema(Box::new(self.node(schema, &at, depth + 1)?))
                        }
                    });
                }
                "items" => {
                    if value.is_array() {
                        return Err(invalid(
                            "the tuple form (an array of schemas) is not supported; \
                             give one schema that every item must satisfy",
                        ));
                    }
                    node.items = Some(Box::new(self.node(value, &at, depth + 1)?));
                }
                "minItems" => node.items_min = Some(count(value).ok_or_else(|| invalid(COUNT))?),
                "maxItems" => node.items_max = Some(count(value).ok_or_else(|| invalid(COUNT))?),
                "minLength" => node.length_min = Some(count(value).ok_or_else(|| invalid(COUNT))?),
                "maxLength" => node.length_max = Some(count(value).ok_or_else(|| invalid(COUNT))?),
                "minProperties" => {
                    node.properties_min = Some(count(value).ok_or_else(|| invalid(COUNT))?);
                }
                "maxProperties" => {
                    node.properties_max = Some(count(value).ok_or_else(|| invalid(COUNT))?);
                }
                "uniqueItems" => {
                    node.unique_items =
                        value.as_bool().ok_or_else(|| invalid("must be true or false"))?;
                }
                "minimum" => node.minimum = Some(bound(value).ok_or_else(|| invalid(NUMBER))?),
                "maximum" => node.maximum = Some(bound(value).ok_or_else(|| invalid(NUMBER))?),
                "exclusiveMinimum" => {
                    node.exclusive_minimum =
                        Some(bound(value).ok_or_else(|| invalid(EXCLUSIVE_NUMBER))?);
                }
                "exclusiveMaximum" => {
                    node.exclusive_maximum =
                        Some(bound(value).ok_or_else(|| invalid(EXCLUSIVE_NUMBER))?);
                }
                "enum" => {
                    let Some(values) = value.as_array().filter(|values| !values.is_empty()) else {
                        return Err(invalid("must be a non-empty array of the allowed values"));
                    };
                    node.allowed = Some(
                        values.iter().map(|value| (value.clone(), canonical(value))).collect(),
                    );
                }
                "const" => node.constant = Some((value.clone(), canonical(value))),
                "oneOf" | "anyOf" => {
                    let Some(schemas) = value.as_array().filter(|schemas| !schemas.is_empty())
                    else {
                        return Err(invalid("must be a non-empty array of schemas"));
                    };
                    let mut alternatives = Vec::with_capacity(schemas.len());
                    for (index, schema) in schemas.iter().enumerate() {
                        let child_pointer = pointer_token(&at, &index.to_string());
                        alternatives.push(self.node(schema, &child_pointer, depth + 1)?);
                    }
                    if keyword == "oneOf" {
                        node.one_of = alternatives;
                    } else {
                        node.any_of = alternatives;
                    }
                }
                "description" | "title" | "$comment" => {
                    if !value.is_string() {
                        return Err(invalid("must be a string"));
                    }
                }
                "examples" => {
                    if !value.is_array() {
                        return Err(invalid("must be an array of example values"));
                    }
                }
                "default" => {}
                other => {
                    return Err(SchemaError::UnknownKeyword {
                        keyword: other.to_owned(),
                        pointer: at.clone(),
                        reason: unknown_keyword_reason(other),
                    });
                }
            }
        }
        Ok(node)
    }
}

/// Problem text of a count keyword.
const COUNT: &str = "must be a non-negative integer";
/// Problem text of a numeric bound.
const NUMBER: &str = "must be a number";
/// Problem text of an exclusive bound, whose draft-4 boolean form is common.
const EXCLUSIVE_NUMBER: &str =
    "must be a number (the older boolean form is not supported: write the bound itself here)";

/// Why `keyword` is refused, and what the subset offers instead.
fn unknown_keyword_reason(keyword: &str) -> String {
    let specific = match keyword {
        "pattern" | "patternProperties" => {
            "regular expressions are not supported (their cost is hard to bound); use enum, \
             const or length bounds"
        }
        "$ref" | "$defs" | "definitions" => "references are not supported; write the schema inline",
        "format" => "formats are not checked, and an unchecked format would be a silent promise",
        "$schema" | "$id" => "the schema dialect is fixed; remove it",
        "allOf" | "not" | "if" | "then" | "else" => {
            "only oneOf and anyOf combine schemas; merge the constraints into one schema"
        }
        _ => "it is not part of the supported subset",
    };
    format!("{specific}. Supported keywords: {}", KEYWORDS.join(", "))
}

/// Parses `type`: one type name or a non-empty array of distinct names.
fn parse_types(value: &Value) -> Result<Vec<JsonType>, String> {
    let known = || JsonType::ALL.map(JsonType::name).join(", ");
    let one = |name: &Value| match name.as_str() {
        Some(name) => JsonType::parse(name)
            .ok_or_else(|| format!("unknown type {name:?}; expected one of {}", known())),
        None => Err(format!("must be a type name or an array of type names ({})", known())),
    };
    match value {
        Value::Array(names) if !names.is_empty() => {
            let mut types = Vec::with_capacity(names.len());
            for name in names {
                let kind = one(name)?;
                if types.contains(&kind) {
                    return Err(format!("type {:?} is listed twice", kind.name()));
                }
                types.push(kind);
            }
            Ok(types)
        }
        Value::Array(_) => Err("must not be an empty array".to_owned()),
        name => Ok(vec![one(name)?]),
    }
}

/// An array of distinct strings.
fn unique_strings(value: &Value) -> Option<Vec<String>> {
    let mut strings: Vec<String> = Vec::new();
    for item in value.as_array()? {
        let string = item.as_str()?;
        if strings.iter().any(|seen| seen == string) {
            return None;
        }
        strings.push(string.to_owned());
    }
    Some(strings)
}

/// A non-negative integer.
fn count(value: &Value) -> Option<u64> {
    value.as_u64()
}

/// A numeric bound.
fn bound(value: &Value) -> Option<Bound> {
    let Value::Number(number) = value else { return None };
    Some(Bound { number: number.clone(), exact: Exact::of(number) })
}

/// Collects violations up to a limit.
struct Violations {
    /// The violations kept.
    violations: Vec<ConfigViolation>,
    /// How many to keep.
    limit: usize,
    /// Whether any were dropped.
    truncated: bool,
}

impl Violations {
    /// An empty collection keeping at most `limit`.
    fn new(limit: usize) -> Self {
        Self { violations: Vec::new(), limit, truncated: false }
    }

    /// Records a violation at `path`.
    fn push(&mut self, path: &str, message: String) {
        if self.violations.len() < self.limit {
            self.violations.push(ConfigViolation { path: path.to_owned(), message });
        } else {
            self.truncated = true;
        }
    }

    /// Whether further checks can no longer change the report.
    fn full(&self) -> bool {
        self.violations.len() >= self.limit
    }
}

impl Node {
    /// Checks `value` at `path`, recording violations in `found`.
    fn check(&self, value: &Value, path: &str, found: &mut Violations) {
        if found.full() {
            found.truncated = true;
            return;
        }
        if let Some(types) = &self.types
            && !types.iter().any(|kind| kind.admits(value))
        {
            let names: Vec<&str> = types.iter().map(|kind| kind.name()).collect();
            let expected = match names.as_slice() {
                [one] => article(one),
                many => format!("one of {}", many.join(", ")),
            };
            found.push(path, format!("must be {expected}, got {}", kind_of(value)));
            // Every other keyword would only restate the type mismatch.
            return;
        }
        if let Some((constant, canonical_constant)) = &self.constant
            && canonical(value) != *canonical_constant
        {
            found.push(path, format!("must be exactly {}, got {}", quote(constant), quote(value)));
        }
        if let Some(allowed) = &self.allowed {
            let canonical_value = canonical(value);
            if !allowed.iter().any(|(_, canonical_allowed)| *canonical_allowed == canonical_value) {
                let listed: Vec<String> = allowed.iter().map(|(value, _)| quote(value)).collect();
                found.push(
                    path,
                    format!("must be one of {}, got {}", listed.join(", "), quote(value)),
                );
            }
        }
        match value {
            Value::Number(number) => self.check_number(number, path, found),
            Value::String(string) => self.check_string(string, path, found),
            Value::Array(items) => self.check_array(items, path, found),
            Value::Object(map) => self.check_object(map, path, found),
            Value::Null | Value::Bool(_) => {}
        }
        self.check_alternatives(value, path, found);
    }

    /// Numeric bounds, compared exactly.
    fn check_number(&self, number: &Number, path: &str, found: &mut Violations) {
        let exact = Exact::of(number);
        let checks = [
            (&self.minimum, "at least", &[Ordering::Greater, Ordering::Equal][..]),
            (&self.maximum, "at most", &[Ordering::Less, Ordering::Equal][..]),
            (&self.exclusive_minimum, "greater than", &[Ordering::Greater][..]),
            (&self.exclusive_maximum, "less than", &[Ordering::Less][..]),
        ];
        for (bound, words, accepted) in checks {
            if let Some(bound) = bound
                && !accepted.contains(&exact.compare(bound.exact))
            {
                found.push(path, format!("must be {words} {}, got {number}", bound.number));
            }
        }
    }

    /// String length bounds, counted in Unicode scalar values as JSON Schema
    /// does.
    fn check_string(&self, string: &str, path: &str, found: &mut Violations) {
        if self.length_min.is_none() && self.length_max.is_none() {
            return;
        }
        let length = string.chars().count() as u64;
        if let Some(length_min) = self.length_min
            && length < length_min
        {
            found.push(
                path,
                format!("must be at least {} long, got {length}", counted(length_min, "character")),
            );
        }
        if let Some(length_max) = self.length_max
            && length > length_max
        {
            found.push(
                path,
                format!("must be at most {} long, got {length}", counted(length_max, "character")),
            );
        }
    }

    /// Item count, uniqueness and the item schema.
    fn check_array(&self, items: &[Value], path: &str, found: &mut Violations) {
        let length = items.len() as u64;
        if let Some(items_min) = self.items_min
            && length < items_min
        {
            found.push(
                path,
                format!("must have at least {}, got {length}", counted(items_min, "item")),
            );
        }
        if let Some(items_max) = self.items_max
            && length > items_max
        {
            found.push(
                path,
                format!("must have at most {}, got {length}", counted(items_max, "item")),
            );
        }
        if self.unique_items {
            // Canonical forms in a hash set: linear in the array's size,
            // where comparing every pair would be quadratic.
            let mut seen: HashSet<String> = HashSet::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                if !seen.insert(canonical(item)) {
                    found.push(
                        &pointer_token(path, &index.to_string()),
                        format!("repeats an earlier item ({}); items must be unique", quote(item)),
                    );
                }
            }
        }
        if let Some(schema) = &self.items {
            for (index, item) in items.iter().enumerate() {
                schema.check(item, &pointer_token(path, &index.to_string()), found);
            }
        }
    }

    /// Property count, required and listed properties, and the rest.
    fn check_object(&self, map: &Map<String, Value>, path: &str, found: &mut Violations) {
        let length = map.len() as u64;
        if let Some(properties_min) = self.properties_min
            && length < properties_min
        {
            found.push(
                path,
                format!("must have at least {}, got {length}", counted(properties_min, "property")),
            );
        }
        if let Some(properties_max) = self.properties_max
            && length > properties_max
        {
            found.push(
                path,
                format!("must have at most {}, got {length}", counted(properties_max, "property")),
            );
        }
        for name in &self.required {
            if !map.contains_key(name) {
                found.push(&pointer_token(path, name), "is required but missing".to_owned());
            }
        }
        for (name, value) in map {
            let child_path = pointer_token(path, name);
            if let Some(schema) = self.properties.get(name) {
                schema.check(value, &child_path, found);
                continue;
            }
            match &self.additional {
                None | Some(Additional::Allowed) => {}
                Some(Additional::Forbidden) => {
                    let known: Vec<&str> = self.properties.keys().map(String::as_str).collect();
                    let message = if known.is_empty() {
                        "is not allowed: this object takes no properties".to_owned()
                    } else {
                        format!("is not an allowed property (allowed: {})", known.join(", "))
                    };
                    found.push(&child_path, message);
                }
                Some(Additional::Schema(schema)) => schema.check(value, &child_path, found),
            }
        }
    }

    /// `anyOf` and `oneOf`: each alternative is tried on its own; only
    /// whether it matched is kept, so the report names the combination.
    fn check_alternatives(&self, value: &Value, path: &str, found: &mut Violations) {
        let matching = |alternatives: &[Node]| -> Vec<usize> {
            alternatives
                .iter()
                .enumerate()
                .filter(|(_, alternative)| {
                    let mut trial = Violations::new(1);
                    alternative.check(value, path, &mut trial);
                    trial.violations.is_empty()
                })
                .map(|(index, _)| index)
                .collect()
        };
        if !self.any_of.is_empty() && matching(&self.any_of).is_empty() {
            found.push(
                path,
                format!("matches none of the {} alternatives of anyOf", self.any_of.len()),
            );
        }
        if !self.one_of.is_empty() {
            let matched = matching(&self.one_of);
            match matched.as_slice() {
                [_] => {}
                [] => found.push(
                    path,
                    format!("matches none of the {} alternatives of oneOf", self.one_of.len()),
                ),
                several => {
                    let numbers: Vec<String> =
                        several.iter().map(|index| format!("#{index}")).collect();
                    found.push(
                        path,
                        format!(
                            "matches alternatives {} of oneOf; exactly one must match",
                            numbers.join(" and ")
                        ),
                    );
                }
            }
        }
    }
}

/// "1 item", "2 items", "3 properties": a count with its noun.
fn counted(count: u64, noun: &str) -> String {
    match (count, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{count} {stem}ies"),
        (_, None) => format!("{count} {noun}s"),
    }
}

/// "an object", "an integer", "null": the type name with its article.
fn article(name: &str) -> String {
    match name {
        "null" => "null".to_owned(),
        name if name.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {name}"),
        name => format!("a {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_compare_exactly_with_floats_near_the_limits_of_f64() {
        let two_pow_63 = 9_223_372_036_854_775_808.0_f64;
        assert_eq!(compare_integer_float(i128::from(i64::MAX), two_pow_63), Ordering::Less);
        assert_eq!(compare_integer_float(1 << 63, two_pow_63), Ordering::Equal);
        assert_eq!(compare_integer_float(2, 1.5), Ordering::Greater);
        assert_eq!(compare_integer_float(1, 1.5), Ordering::Less);
        assert_eq!(compare_integer_float(-2, -1.5), Ordering::Less);
        assert_eq!(compare_integer_float(i128::MAX, f64::MAX), Ordering::Less);
        assert_eq!(compare_integer_float(i128::MIN, f64::MIN), Ordering::Greater);
    }

    #[test]
    fn canonical_forms_equate_numbers_by_value_and_objects_by_content() {
        let one: Value = serde_json::from_str("1").expect("valid JSON");
        let one_point_zero: Value = serde_json::from_str("1.0").expect("valid JSON");
        assert_eq!(canonical(&one), canonical(&one_point_zero));
        let left: Value = serde_json::from_str(r#"{"b":1,"a":[2.5]}"#).expect("valid JSON");
        let right: Value = serde_json::from_str(r#"{"a":[2.5],"b":1.0}"#).expect("valid JSON");
        assert_eq!(canonical(&left), canonical(&right));
        let big_float: Value = serde_json::from_str("9223372036854775808.0").expect("valid JSON");
        let nearby_integer: Value =
            serde_json::from_str("9223372036854776000").expect("valid JSON");
        assert_ne!(canonical(&big_float), canonical(&nearby_integer));
    }
}
