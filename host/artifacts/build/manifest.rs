//! The build's check of a component's manifest against its crate: the
//! top-level `id` and `version` lines of `plugin.toml` must be the crate's
//! name and version.
//!
//! A textual check of two lines, not a TOML parse: it keeps the build
//! script free of dependencies, and the host parses the whole manifest at
//! install anyway. What it catches is the mistake that matters here, a
//! version bumped in Cargo.toml and not in the manifest (or the reverse),
//! which would record results under a version the plugin is not.
//!
//! Used by `build.rs` and by the crate's tests (`tests/manifest_check.rs`).

/// `manifest` checked against the crate `package` at `crate_version`,
/// with `version` replaced for a variant `(features, version)` of the
/// crate. `shown` names the file in errors.
pub fn checked(
    manifest: &str,
    shown: &str,
    package: &str,
    crate_version: &str,
    variant: Option<(&str, &str)>,
) -> Result<String, String> {
    expect_top_level_string(manifest, shown, "id", package, "the crate's name")?;
    expect_top_level_string(manifest, shown, "version", crate_version, "the crate's version")?;
    let Some((features, variant_version)) = variant else {
        return Ok(manifest.to_owned());
    };
    let mut replaced = false;
    let mut top_level = true;
    let mut derived = String::with_capacity(manifest.len());
    for line in manifest.lines() {
        top_level &= !is_table_header(line);
        if top_level && !replaced && string_value_of(line, "version").is_some() {
            derived.push_str(&format!("version = {variant_version:?}"));
            replaced = true;
        } else {
            derived.push_str(line);
        }
        derived.push('\n');
    }
    let shown_variant = format!("{shown} (built with --features {features})");
    expect_top_level_string(&derived, &shown_variant, "version", variant_version, "its version")?;
    Ok(derived)
}

/// Fails unless the top-level line `key = "expected"` is in `manifest`.
fn expect_top_level_string(
    manifest: &str,
    shown: &str,
    key: &str,
    expected: &str,
    what: &str,
) -> Result<(), String> {
    let value = manifest
        .lines()
        .take_while(|line| !is_table_header(line))
        .find_map(|line| string_value_of(line, key));
    match value {
        Some(value) if value == expected => Ok(()),
        Some(value) => Err(format!(
            "{shown} says {key} = {value:?}, but {what} is {expected:?}: the two must agree"
        )),
        None => Err(format!(
            "{shown} has no top-level line {key} = \"...\"; it must say {key} = {expected:?} \
             ({what})"
        )),
    }
}

/// Whether `line` opens a TOML table (`[limits]`, `[config-schema]`).
fn is_table_header(line: &str) -> bool {
    line.trim_start().starts_with('[')
}

/// The value of `line` when it is `key = "value"`, spaces and a trailing
/// comment allowed.
fn string_value_of<'line>(line: &'line str, key: &str) -> Option<&'line str> {
    let (line_key, rest) = line.split_once('=')?;
    if line_key.trim() != key {
        return None;
    }
    let quoted = rest.trim_start().strip_prefix('"')?;
    quoted.split_once('"').map(|(value, _)| value)
}
