//! Configuration schemas: the supported subset parses, anything else is
//! refused with its JSON pointer, and validation reports each violation at
//! the path of the offending value, comparing numbers exactly.

use bazaar_registry::{
    CONFIG_VIOLATIONS_MAX, ConfigErrors, ConfigSchema, SCHEMA_DEPTH_MAX, SCHEMA_NODES_MAX,
    SchemaError,
};
use serde_json::{Value, json};

fn schema(json: Value) -> ConfigSchema {
    ConfigSchema::parse(json).expect("the schema parses")
}

fn violations(schema: &ConfigSchema, config: Value) -> ConfigErrors {
    match schema.validate(&config) {
        Ok(()) => panic!("expected {config} to be refused"),
        Err(errors) => errors,
    }
}

/// The (path, message) pairs of a refusal.
fn paths(errors: &ConfigErrors) -> Vec<&str> {
    errors.violations.iter().map(|violation| violation.path.as_str()).collect()
}

fn promotions() -> ConfigSchema {
    schema(json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["flash_sales"],
        "properties": {
            "flash_sales": {
                "type": "array",
                "maxItems": 2,
                "items": {
                    "type": "object",
                    "required": ["sku", "price"],
                    "additionalProperties": false,
                    "properties": {
                        "sku": {"type": "string", "minLength": 1, "maxLength": 8},
                        "price": {"type": "integer", "minimum": 0}
                    }
                }
            },
            "mode": {"enum": ["stack", "best"]}
        }
    }))
}

#[test]
fn a_valid_configuration_passes() {
    let config = json!({"flash_sales": [{"sku": "A1", "price": 100}], "mode": "best"});
    assert_eq!(promotions().validate(&config), Ok(()));
}

#[test]
fn violations_deep_inside_arrays_and_objects_carry_json_pointer_paths() {
    let errors = violations(
        &promotions(),
        json!({"flash_sales": [{"sku": "A1", "price": 1}, {"sku": "", "price": -5}]}),
    );
    assert_eq!(paths(&errors), ["/flash_sales/1/price", "/flash_sales/1/sku"]);
    assert_eq!(errors.violations[0].message, "must be at least 0, got -5");
    assert_eq!(errors.violations[1].message, "must be at least 1 character long, got 0");
    let shown = errors.to_string();
    assert!(shown.contains("/flash_sales/1/price: must be at least 0, got -5"), "{shown}");
}

#[test]
fn a_missing_required_property_is_reported_at_its_own_path() {
    let errors = violations(&promotions(), json!({"flash_sales": [{"sku": "A1"}]}));
    assert_eq!(paths(&errors), ["/flash_sales/0/price"]);
    assert_eq!(errors.violations[0].message, "is required but missing");
    let errors = violations(&promotions(), json!({}));
    assert_eq!(paths(&errors), ["/flash_sales"]);
}

#[test]
fn additional_properties_false_refuses_unknown_properties_naming_the_allowed_ones() {
    let errors = violations(&promotions(), json!({"flash_sales": [], "flash_sale": []}));
    assert_eq!(paths(&errors), ["/flash_sale"]);
    assert!(
        errors.violations[0].message.contains("allowed: flash_sales, mode"),
        "{}",
        errors.violations[0].message
    );
}

#[test]
fn additional_properties_may_be_a_schema_for_every_unlisted_property() {
    let prices = schema(json!({"type": "object", "additionalProperties": {"type": "integer"}}));
    assert_eq!(prices.validate(&json!({"a": 1, "b": 2})), Ok(()));
    assert_eq!(paths(&violations(&prices, json!({"a": 1, "b": "2"}))), ["/b"]);
}

#[test]
fn json_pointer_paths_escape_slashes_and_tildes_in_property_names() {
    let numbers = schema(json!({"type": "object", "additionalProperties": {"type": "integer"}}));
    let errors = violations(&numbers, json!({"a/b~c": "x"}));
    assert_eq!(paths(&errors), ["/a~1b~0c"]);
}

#[test]
fn enum_refuses_other_values_and_lists_the_allowed_ones() {
    let errors = violations(&promotions(), json!({"flash_sales": [], "mode": "stacked"}));
    assert_eq!(paths(&errors), ["/mode"]);
    assert_eq!(errors.violations[0].message, r#"must be one of "stack", "best", got "stacked""#);
}

#[test]
fn enum_and_const_compare_numbers_by_value_and_objects_regardless_of_key_order() {
    let levels = schema(json!({"enum": [1, {"a": 1, "b": [true]}]}));
    assert_eq!(levels.validate(&serde_json::from_str("1.0").expect("json")), Ok(()));
    assert_eq!(levels.validate(&json!({"b": [true], "a": 1})), Ok(()));
    assert!(levels.validate(&json!(2)).is_err());
    let fixed = schema(json!({"const": "v1"}));
    assert_eq!(fixed.validate(&json!("v1")), Ok(()));
    assert_eq!(
        violations(&fixed, json!("v2")).violations[0].message,
        r#"must be exactly "v1", got "v2""#
    );
}

#[test]
fn integer_bounds_are_exact_at_the_i64_extremes() {
    let widest = schema(json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX}));
    assert_eq!(widest.validate(&json!(i64::MAX)), Ok(()));
    assert_eq!(widest.validate(&json!(i64::MIN)), Ok(()));
    let above: Value = serde_json::from_str("9223372036854775808").expect("json");
    assert_eq!(
        violations(&widest, above).violations[0].message,
        format!("must be at most {}, got 9223372036854775808", i64::MAX)
    );
    // One below the maximum rounds to the same f64 as the maximum and one
    // above it; an exact comparison still tells them apart.
    let below_max = schema(json!({"type": "integer", "maximum": i64::MAX - 1}));
    assert!(below_max.validate(&json!(i64::MAX)).is_err());
    assert_eq!(below_max.validate(&json!(i64::MAX - 1)), Ok(()));
    let above_min = schema(json!({"type": "integer", "exclusiveMinimum": i64::MIN}));
    assert!(above_min.validate(&json!(i64::MIN)).is_err());
    assert_eq!(above_min.validate(&json!(i64::MIN + 1)), Ok(()));
    let unsigned = schema(json!({"type": "integer", "maximum": u64::MAX}));
    assert_eq!(unsigned.validate(&json!(u64::MAX)), Ok(()));
}

#[test]
fn integer_and_fractional_bounds_compare_exactly_across_kinds() {
    let half = schema(json!({"type": "number", "exclusiveMaximum": 2.5, "minimum": -0.5}));
    assert_eq!(half.validate(&json!(2)), Ok(()));
    assert_eq!(half.validate(&json!(0)), Ok(()));
    assert!(half.validate(&json!(3)).is_err());
    assert!(half.validate(&json!(-1)).is_err());
    assert!(half.validate(&json!(2.5)).is_err());
    // 2^63 as a float against the integer bound i64::MAX.
    let capped = schema(json!({"maximum": i64::MAX}));
    let float_above: Value = serde_json::from_str("9223372036854775808.0").expect("json");
    assert!(capped.validate(&float_above).is_err());
}

#[test]
fn an_integer_must_be_written_without_a_fraction() {
    let count = schema(json!({"type": "integer"}));
    let with_fraction: Value = serde_json::from_str("3.0").expect("json");
    let errors = violations(&count, with_fraction);
    assert_eq!(errors.violations[0].message, "must be an integer, got a number with a fraction");
    assert_eq!(count.validate(&json!(3)), Ok(()));
    let any_number = schema(json!({"type": "number"}));
    assert_eq!(any_number.validate(&json!(3.25)), Ok(()));
}

#[test]
fn one_of_requires_exactly_one_matching_alternative() {
    let price = schema(json!({
        "oneOf": [
            {"type": "integer", "minimum": 0},
            {"type": "integer", "maximum": 10},
            {"type": "string"}
        ]
    }));
    assert_eq!(price.validate(&json!(50)), Ok(()));
    assert_eq!(price.validate(&json!("1.50")), Ok(()));
    assert_eq!(
        violations(&price, json!(5)).violations[0].message,
        "matches alternatives #0 and #1 of oneOf; exactly one must match"
    );
    assert_eq!(
        violations(&price, json!(true)).violations[0].message,
        "matches none of the 3 alternatives of oneOf"
    );
}

#[test]
fn any_of_requires_at_least_one_matching_alternative() {
    let amount = schema(json!({"anyOf": [{"type": "string", "maxLength": 4}, {"type": "null"}]}));
    assert_eq!(amount.validate(&json!(null)), Ok(()));
    assert_eq!(amount.validate(&json!("1.50")), Ok(()));
    let errors = violations(&amount, json!("100.50"));
    assert_eq!(errors.violations[0].message, "matches none of the 2 alternatives of anyOf");
}

#[test]
fn type_lists_accept_any_listed_type() {
    let optional = schema(json!({"type": ["string", "null"]}));
    assert_eq!(optional.validate(&json!(null)), Ok(()));
    assert_eq!(
        violations(&optional, json!(1)).violations[0].message,
        "must be one of string, null, got an integer"
    );
}

#[test]
fn unique_items_refuses_repeats_by_value() {
    let codes = schema(json!({"type": "array", "uniqueItems": true}));
    assert_eq!(codes.validate(&json!([1, "1", [1]])), Ok(()));
    let errors = violations(&codes, serde_json::from_str(r#"[{"a":1},{"a":1.0}]"#).expect("json"));
    assert_eq!(paths(&errors), ["/1"]);
}

#[test]
fn counts_of_items_properties_and_characters_are_bounded() {
    let bounded = schema(json!({
        "type": "object",
        "minProperties": 1,
        "maxProperties": 2,
        "properties": {"tags": {"type": "array", "minItems": 1, "maxItems": 2}, "code": {"maxLength": 2}}
    }));
    assert_eq!(paths(&violations(&bounded, json!({}))), [""]);
    assert_eq!(paths(&violations(&bounded, json!({"a": 1, "b": 2, "c": 3}))), [""]);
    assert_eq!(paths(&violations(&bounded, json!({"tags": []}))), ["/tags"]);
    assert_eq!(paths(&violations(&bounded, json!({"tags": [1, 2, 3]}))), ["/tags"]);
    // Length counts characters, not bytes.
    assert_eq!(bounded.validate(&json!({"code": "双十"})), Ok(()));
    assert_eq!(paths(&violations(&bounded, json!({"code": "双十一"}))), ["/code"]);
}

#[test]
fn at_most_sixteen_violations_are_reported_and_the_cut_is_said() {
    let numbers = schema(json!({"type": "array", "items": {"type": "integer"}}));
    let errors = violations(&numbers, json!(vec!["x"; 40]));
    assert_eq!(errors.violations.len(), CONFIG_VIOLATIONS_MAX);
    assert!(errors.truncated);
    assert!(errors.to_string().contains("there may be more"));
}

#[test]
fn an_unknown_keyword_is_refused_with_its_json_pointer() {
    let error = ConfigSchema::parse(json!({
        "type": "object",
        "properties": {"rules": {"type": "array", "items": {"$ref": "#/defs/rule"}}}
    }))
    .expect_err("$ref is not supported");
    let SchemaError::UnknownKeyword { keyword, pointer, .. } = &error else {
        panic!("expected an unknown keyword, got {error:?}");
    };
    assert_eq!(keyword, "$ref");
    assert_eq!(pointer, "/properties/rules/items/$ref");
    assert!(error.to_string().contains("references are not supported"), "{error}");
}

#[test]
fn malformed_keyword_values_are_refused_by_keyword() {
    let cases = [
        (json!({"type": "text"}), "type"),
        (json!({"required": ["a", "a"]}), "required"),
        (json!({"minLength": -1}), "minLength"),
        (json!({"maximum": "10"}), "maximum"),
        (json!({"exclusiveMinimum": true}), "exclusiveMinimum"),
        (json!({"enum": []}), "enum"),
        (json!({"items": [{"type": "string"}]}), "items"),
        (json!({"oneOf": {}}), "oneOf"),
    ];
    for (json, expected) in cases {
        match ConfigSchema::parse(json.clone()) {
            Err(SchemaError::InvalidKeyword { keyword, pointer, .. }) => {
                assert_eq!(keyword, expected, "{json}");
                assert_eq!(pointer, format!("/{expected}"), "{json}");
            }
            other => panic!("{json}: expected an invalid {expected}, got {other:?}"),
        }
    }
    assert!(matches!(
        ConfigSchema::parse(json!({"properties": {"a": 5}})),
        Err(SchemaError::NotASchema { pointer, .. }) if pointer == "/properties/a"
    ));
}

#[test]
fn nesting_beyond_the_depth_limit_is_refused() {
    let mut nested = json!({"type": "integer"});
    for _ in 0..SCHEMA_DEPTH_MAX {
        nested = json!({"items": nested});
    }
    assert!(matches!(ConfigSchema::parse(nested), Err(SchemaError::TooDeep { .. })));
    let mut allowed = json!({"type": "integer"});
    for _ in 1..SCHEMA_DEPTH_MAX {
        allowed = json!({"items": allowed});
    }
    assert!(ConfigSchema::parse(allowed).is_ok());
}

#[test]
fn more_schema_nodes_than_the_limit_are_refused() {
    let properties: serde_json::Map<String, Value> =
        (0..SCHEMA_NODES_MAX).map(|index| (format!("p{index}"), json!({}))).collect();
    let error = ConfigSchema::parse(json!({"properties": properties}));
    assert!(matches!(error, Err(SchemaError::TooManyNodes { .. })), "{error:?}");
}

#[test]
fn a_schema_serialises_back_to_the_json_it_came_from() {
    let json = json!({
        "type": "object",
        "title": "Rules",
        "$comment": "kept verbatim",
        "properties": {"x": {"type": "number", "default": 1.5, "examples": [2]}}
    });
    let parsed = schema(json.clone());
    assert_eq!(parsed.to_json(), json);
    assert_eq!(serde_json::to_value(&parsed).expect("serialises"), json);
}
