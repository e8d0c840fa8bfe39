//! The build's check of a manifest against its crate, called directly: a
//! manifest whose `id` or `version` disagrees with the crate stops the
//! build with a message naming both values, and a variant's manifest gets
//! the variant's version and nothing else changed.

#[path = "../build/manifest.rs"]
mod manifest;

const SHOWN: &str = "plugins/example/plugin.toml";

const MANIFEST: &str = "\
# A comment with id = \"not-this\"
id = \"example\"   # the crate's name
version = \"1.2.3\"
kind = \"pricing\"

[config-schema.properties.version]
type = \"string\"
";

#[test]
fn a_manifest_that_agrees_with_its_crate_is_embedded_unchanged() {
    assert_eq!(manifest::checked(MANIFEST, SHOWN, "example", "1.2.3", None).unwrap(), MANIFEST);
}

#[test]
fn an_id_other_than_the_crate_name_stops_the_build_naming_both() {
    let error = manifest::checked(MANIFEST, SHOWN, "other", "1.2.3", None).unwrap_err();
    assert_eq!(
        error,
        "plugins/example/plugin.toml says id = \"example\", but the crate's name is \"other\": \
         the two must agree"
    );
}

#[test]
fn a_version_other_than_the_crate_version_stops_the_build_naming_both() {
    let error = manifest::checked(MANIFEST, SHOWN, "example", "1.2.4", None).unwrap_err();
    assert!(error.contains("version = \"1.2.3\""), "{error}");
    assert!(error.contains("\"1.2.4\""), "{error}");
}

#[test]
fn a_manifest_without_a_top_level_version_stops_the_build() {
    let without = MANIFEST.replace("version = \"1.2.3\"\n", "");
    let error = manifest::checked(&without, SHOWN, "example", "1.2.3", None).unwrap_err();
    assert!(error.contains("has no top-level line version"), "{error}");
}

#[test]
fn a_variant_gets_its_own_version_and_every_other_line_unchanged() {
    let derived =
        manifest::checked(MANIFEST, SHOWN, "example", "1.2.3", Some(("v2", "2.0.0"))).unwrap();
    assert_eq!(derived, MANIFEST.replace("version = \"1.2.3\"", "version = \"2.0.0\""));
}
