//! Package signatures: a signature made over a package verifies with the
//! publisher's key and nothing else, any change to either file breaks it,
//! and keys, signatures and hashes parse only in their one hex spelling.
//! Packages are read from and signed in real directories.

use std::fs;
use std::path::Path;

use bazaar_registry::{
    ContentHash, MANIFEST_FILE_NAME, Package, PackageError, PluginSignature, PublisherKey,
    PublisherSecret, SIGNATURE_FILE_NAME, SignatureError, content_hash, sign, signing_digest,
    verify,
};
use sha2::{Digest, Sha256};

const MANIFEST: &str = r#"id = "bulk-discount"
version = "1.0.0"
kind = "pricing"
publisher = "acme"
name = "Bulk discount"
description = "A percentage off large lines."
capabilities = ["config"]
"#;

/// Stand-in component bytes: the component model's preamble and a body.
const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0 component body";

#[test]
fn a_signature_verifies_with_the_signers_public_key() {
    let secret = PublisherSecret::generate();
    let signature = sign(&secret, MANIFEST.as_bytes(), COMPONENT);
    assert_eq!(verify(&secret.public_key(), MANIFEST.as_bytes(), COMPONENT, &signature), Ok(()));
}

#[test]
fn a_signature_does_not_verify_with_another_publishers_key() {
    let signature = sign(&PublisherSecret::generate(), MANIFEST.as_bytes(), COMPONENT);
    let other = PublisherSecret::generate().public_key();
    assert_eq!(
        verify(&other, MANIFEST.as_bytes(), COMPONENT, &signature),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn changing_one_byte_of_the_manifest_breaks_the_signature() {
    let secret = PublisherSecret::generate();
    let signature = sign(&secret, MANIFEST.as_bytes(), COMPONENT);
    let tampered = MANIFEST.replace("1.0.0", "1.0.1");
    assert_eq!(
        verify(&secret.public_key(), tampered.as_bytes(), COMPONENT, &signature),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn changing_one_byte_of_the_component_breaks_the_signature() {
    let secret = PublisherSecret::generate();
    let signature = sign(&secret, MANIFEST.as_bytes(), COMPONENT);
    let mut tampered = COMPONENT.to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        verify(&secret.public_key(), MANIFEST.as_bytes(), &tampered, &signature),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn bytes_moved_between_manifest_and_component_break_the_signature() {
    let secret = PublisherSecret::generate();
    let signature = sign(&secret, b"manifest", b"component");
    assert!(verify(&secret.public_key(), b"manifestc", b"omponent", &signature).is_err());
}

#[test]
fn the_signed_digest_is_the_documented_construction() {
    let mut expected = Sha256::new();
    expected.update(b"bazaar-plugin-signature-v1\0");
    expected.update(Sha256::digest(MANIFEST.as_bytes()));
    expected.update(Sha256::digest(COMPONENT));
    let expected: [u8; 32] = expected.finalize().into();
    assert_eq!(signing_digest(MANIFEST.as_bytes(), COMPONENT), expected);
}

#[test]
fn keys_and_signatures_round_trip_through_their_hex_text() {
    let secret = PublisherSecret::generate();
    let key_file = secret.to_key_file();
    assert_eq!(key_file.len(), 65);
    assert!(key_file.ends_with('\n'));
    let reparsed = PublisherSecret::parse(&key_file).expect("the key file parses");
    assert_eq!(reparsed.public_key(), secret.public_key());

    let public_text = secret.public_key().to_string();
    assert_eq!(public_text.len(), 64);
    assert_eq!(PublisherKey::parse(&public_text), Ok(secret.public_key()));

    let signature = sign(&secret, MANIFEST.as_bytes(), COMPONENT);
    let signature_text = signature.to_string();
    assert_eq!(signature_text.len(), 128);
    assert_eq!(PluginSignature::parse(&signature_text), Ok(signature));
    assert!(!format!("{secret:?}").contains(key_file.trim()), "Debug never shows the secret");
}

#[test]
fn malformed_hex_is_refused_with_what_and_where() {
    let key = PublisherSecret::generate().public_key().to_string();
    let upper = key.to_uppercase();
    let short = &key[..63];
    let mut not_hex = key.clone();
    not_hex.replace_range(10..11, "g");
    for text in [upper.as_str(), short, not_hex.as_str(), ""] {
        assert!(
            matches!(
                PublisherKey::parse(text),
                Err(SignatureError::MalformedHex { what: "publisher key", hex_chars: 64, .. })
            ),
            "{text:?}"
        );
    }
    let error = PublisherKey::parse(&not_hex).expect_err("g is not hex");
    assert!(error.to_string().contains("character 11 is 'g'"), "{error}");
    assert!(PluginSignature::parse(&"a".repeat(127)).is_err());
    assert!(PluginSignature::parse(&"z".repeat(128)).is_err());
    assert!(PublisherSecret::parse("not a key\n").is_err());
}

#[test]
fn a_small_order_public_key_is_refused() {
    // The identity point: it would verify signatures nobody made.
    let identity = format!("01{}", "0".repeat(62));
    assert!(matches!(PublisherKey::parse(&identity), Err(SignatureError::InvalidKey { .. })));
}

#[test]
fn content_hashes_are_lowercase_sha256_hex_and_parse_only_in_that_form() {
    let hash = content_hash(b"abc");
    assert_eq!(hash.as_str(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(ContentHash::parse(hash.as_str()), Ok(hash.clone()));
    assert!(ContentHash::parse(&hash.as_str().to_uppercase()).is_err());
    assert!(ContentHash::parse("../../etc/passwd").is_err());
}

fn write_package(dir: &Path) {
    fs::write(dir.join(MANIFEST_FILE_NAME), MANIFEST).expect("write manifest");
    fs::write(dir.join("plugin.wasm"), COMPONENT).expect("write component");
}

#[test]
fn a_package_signed_in_its_directory_reads_back_verified() {
    let dir = tempfile::tempdir().expect("temporary directory");
    write_package(dir.path());
    let unsigned = Package::read_dir(dir.path()).expect("an unsigned package reads");
    assert_eq!(unsigned.signature, None);
    let secret = PublisherSecret::generate();
    assert_eq!(unsigned.verify(&secret.public_key()), Err(SignatureError::Unsigned));

    let signature = Package::write_signature(dir.path(), &secret).expect("signs");
    let text = fs::read_to_string(dir.path().join(SIGNATURE_FILE_NAME)).expect("plugin.sig");
    assert_eq!(text, format!("{signature}\n"));

    let package = Package::read_dir(dir.path()).expect("the signed package reads");
    assert_eq!(package.manifest_text, MANIFEST);
    assert_eq!(package.component, COMPONENT);
    assert_eq!(package.signature, Some(signature));
    assert_eq!(package.verify(&secret.public_key()), Ok(()));
    assert_eq!(package.content_hash(), content_hash(COMPONENT));
    assert_eq!(package.manifest().expect("manifest parses").id.as_str(), "bulk-discount");
}

#[test]
fn a_package_edited_after_signing_fails_verification() {
    let dir = tempfile::tempdir().expect("temporary directory");
    write_package(dir.path());
    let secret = PublisherSecret::generate();
    Package::write_signature(dir.path(), &secret).expect("signs");
    fs::write(dir.path().join(MANIFEST_FILE_NAME), MANIFEST.replace("config", "state"))
        .expect("edit manifest");
    let package = Package::read_dir(dir.path()).expect("reads");
    assert_eq!(package.verify(&secret.public_key()), Err(SignatureError::Mismatch));
}

#[test]
fn a_package_with_an_invalid_manifest_is_never_signed() {
    let dir = tempfile::tempdir().expect("temporary directory");
    write_package(dir.path());
    fs::write(dir.path().join(MANIFEST_FILE_NAME), format!("{MANIFEST}colour = \"red\"\n"))
        .expect("write manifest");
    let error = Package::write_signature(dir.path(), &PublisherSecret::generate())
        .expect_err("the manifest has an unknown key");
    assert!(matches!(error, PackageError::Manifest(_)), "{error:?}");
    assert!(!dir.path().join(SIGNATURE_FILE_NAME).exists());
}

#[test]
fn missing_empty_or_malformed_package_files_are_named() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = Package::read_dir(dir.path()).expect_err("no files");
    assert!(
        matches!(&missing, PackageError::Missing { path, .. } if path.ends_with("plugin.toml"))
    );

    write_package(dir.path());
    fs::write(dir.path().join("plugin.wasm"), b"").expect("empty component");
    assert!(matches!(Package::read_dir(dir.path()), Err(PackageError::EmptyComponent { .. })));

    write_package(dir.path());
    fs::write(dir.path().join(SIGNATURE_FILE_NAME), "not a signature\n").expect("bad sig");
    let malformed = Package::read_dir(dir.path()).expect_err("bad signature file");
    assert!(matches!(malformed, PackageError::MalformedSignature { .. }), "{malformed:?}");

    fs::write(dir.path().join(SIGNATURE_FILE_NAME), "0".repeat(4096)).expect("huge sig");
    let huge = Package::read_dir(dir.path()).expect_err("oversized signature file");
    assert!(matches!(huge, PackageError::TooLarge { size_bytes: 4096, .. }), "{huge:?}");

    fs::write(dir.path().join(MANIFEST_FILE_NAME), [0xff, 0xfe]).expect("binary manifest");
    assert!(matches!(Package::read_dir(dir.path()), Err(PackageError::NotUtf8 { .. })));
}
