//! What the plugin platform's tests share: signed packages from a test
//! publisher the platform trusts.

use bazaar_artifacts::Artifact;
use bazaar_node::platform::Platform;
use bazaar_registry::{Package, PublisherSecret, sign};

/// A package of `manifest` and `wasm` signed with `secret`.
pub fn package(manifest: &str, wasm: &[u8], secret: &PublisherSecret) -> Package {
    let signature = sign(secret, manifest.as_bytes(), wasm);
    Package {
        manifest_text: manifest.to_string(),
        component: wasm.to_vec(),
        signature: Some(signature),
    }
}

/// A built test guest's package signed with `secret`.
pub fn signed(artifact: &Artifact, secret: &PublisherSecret) -> Package {
    package(artifact.manifest, artifact.wasm, secret)
}

/// Trusts a fresh key for the test guests' publisher and returns it.
pub fn tests_publisher(platform: &Platform) -> PublisherSecret {
    let secret = PublisherSecret::generate();
    platform.trust_publisher("bazaar-tests", &secret.public_key().to_string()).unwrap();
    secret
}

/// The ids of every installed plugin.
pub fn installed_ids(platform: &Platform) -> Vec<String> {
    platform.listings().unwrap().into_iter().map(|listing| listing.id).collect()
}
