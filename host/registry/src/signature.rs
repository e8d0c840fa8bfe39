//! Publisher keys, plugin signatures and content hashes.
//!
//! A publisher signs a package with ed25519 over one 32-byte digest that
//! binds the manifest and the component together (see [`signing_digest`]):
//! changing either file, or swapping the manifest of one release onto the
//! component of another, breaks the signature. The host verifies with
//! `verify_strict`, which also refuses small-order keys and non-canonical
//! signatures, so one signed package has exactly one valid signature
//! encoding per key.
//!
//! Every value here travels as lowercase hexadecimal text (keys in
//! configuration and the API, signatures in `plugin.sig`, content hashes as
//! blob file names); parsing accepts exactly that form, so each value has one
//! spelling and compares equal as text.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Domain separation prefix of the signed message: a signature made for
/// anything else with the same key can never verify as a plugin signature.
const SIGNATURE_DOMAIN: &[u8] = b"bazaar-plugin-signature-v1\0";

/// Length of an ed25519 public key or secret seed.
const KEY_BYTES: usize = 32;
/// Length of an ed25519 signature.
const SIGNATURE_BYTES: usize = 64;
/// Length of a SHA-256 digest.
const DIGEST_BYTES: usize = 32;

/// Why a key, signature or hash was refused, or a signature did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The text is not the expected number of lowercase hex characters.
    #[error("{what} must be {hex_chars} lowercase hex characters: {problem}")]
    MalformedHex {
        /// What was being parsed, e.g. "publisher key".
        what: &'static str,
        /// The number of hex characters expected.
        hex_chars: usize,
        /// What is wrong with the text.
        problem: String,
    },
    /// The bytes are not a usable ed25519 public key.
    #[error("publisher key is not a usable ed25519 public key: {reason}")]
    InvalidKey {
        /// Why the key is refused.
        reason: String,
    },
    /// The package carries no signature.
    #[error("the package is not signed: it has no plugin.sig")]
    Unsigned,
    /// The signature does not match the package and key.
    #[error(
        "signature does not verify: the manifest or component changed after signing, \
         or the package was signed with another publisher's key"
    )]
    Mismatch,
}

/// Decodes exactly `N` bytes from `2 * N` lowercase hex characters.
fn decode_hex<const N: usize>(what: &'static str, text: &str) -> Result<[u8; N], SignatureError> {
    let malformed =
        |problem: String| SignatureError::MalformedHex { what, hex_chars: 2 * N, problem };
    if text.len() != 2 * N {
        return Err(malformed(format!("got {} characters", text.chars().count())));
    }
    let mut bytes = [0_u8; N];
    for (index, pair) in text.as_bytes().chunks_exact(2).enumerate() {
        let high = hex_digit(pair[0]);
        let low = hex_digit(pair[1]);
        match (high, low) {
            (Some(high), Some(low)) => bytes[index] = high << 4 | low,
            _ => {
                let position = if high.is_none() { 2 * index } else { 2 * index + 1 };
                return Err(malformed(format!(
                    "character {} is {:?}, not one of 0-9 a-f",
                    position + 1,
                    char::from(text.as_bytes()[position])
                )));
            }
        }
    }
    Ok(bytes)
}

/// The value of one lowercase hex digit.
fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

/// Writes `bytes` as lowercase hex.
fn write_hex(formatter: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for byte in bytes {
        write!(formatter, "{byte:02x}")?;
    }
    Ok(())
}

/// Lowercase hex of `bytes`.
fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A publisher's ed25519 public key: 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublisherKey(VerifyingKey);

impl PublisherKey {
    /// Parses 64 lowercase hex characters; refuses bytes that are not a
    /// point on the curve and weak (small-order) keys, which would verify
    /// signatures nobody made.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let bytes = decode_hex::<KEY_BYTES>("publisher key", text)?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|error| SignatureError::InvalidKey { reason: error.to_string() })?;
        if key.is_weak() {
            return Err(SignatureError::InvalidKey {
                reason: "it is a small-order point, which would accept forged signatures"
                    .to_owned(),
            });
        }
        Ok(Self(key))
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; KEY_BYTES] {
        self.0.to_bytes()
    }
}

impl fmt::Display for PublisherKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(formatter, self.0.as_bytes())
    }
}

impl fmt::Debug for PublisherKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "PublisherKey({self})")
    }
}

impl Serialize for PublisherKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublisherKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A publisher's ed25519 secret key, wiped from memory when dropped.
///
/// Its key file holds the 32-byte seed as 64 lowercase hex characters and a
/// newline. `Debug` shows only the public half.
#[derive(Clone)]
pub struct PublisherSecret(SigningKey);

impl PublisherSecret {
    /// A new secret from 32 bytes of the operating system's randomness.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0_u8; KEY_BYTES]);
        rand::fill(&mut *seed);
        Self(SigningKey::from_bytes(&seed))
    }

    /// Parses the text of a key file: 64 lowercase hex characters, with
    /// surrounding whitespace (the trailing newline) ignored.
    pub fn parse(key_file_text: &str) -> Result<Self, SignatureError> {
        let seed = Zeroizing::new(decode_hex::<KEY_BYTES>("secret key", key_file_text.trim())?);
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The text of the key file: the seed in hex and a newline. Wiped from
    /// memory when dropped, like the key.
    pub fn to_key_file(&self) -> Zeroizing<String> {
        let seed = Zeroizing::new(self.0.to_bytes());
        let mut text = Zeroizing::new(String::with_capacity(2 * KEY_BYTES + 1));
        for byte in seed.iter() {
            text.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            text.push(char::from(b"0123456789abcdef"[usize::from(byte & 0x0f)]));
        }
        text.push('\n');
        text
    }

    /// The public key that verifies this secret's signatures.
    pub fn public_key(&self) -> PublisherKey {
        PublisherKey(self.0.verifying_key())
    }
}

impl fmt::Debug for PublisherSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "PublisherSecret(public key {})", self.public_key())
    }
}

/// An ed25519 signature over a package: 128 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PluginSignature(Signature);

impl PluginSignature {
    /// Parses 128 lowercase hex characters.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let bytes = decode_hex::<SIGNATURE_BYTES>("plugin signature", text)?;
        Ok(Self(Signature::from_bytes(&bytes)))
    }

    /// The signature's 64 bytes.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_BYTES] {
        self.0.to_bytes()
    }
}

impl fmt::Display for PluginSignature {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(formatter, &self.0.to_bytes())
    }
}

impl fmt::Debug for PluginSignature {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "PluginSignature({self})")
    }
}

impl Serialize for PluginSignature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PluginSignature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The message a publisher signs:
/// `SHA-256(domain || SHA-256(manifest) || SHA-256(component))`.
///
/// Hashing each file first keeps the boundary between them unambiguous (no
/// bytes can move from the manifest to the component and still verify) and
/// lets a signer hash a large component as a stream.
pub fn signing_digest(manifest: &[u8], component: &[u8]) -> [u8; DIGEST_BYTES] {
    let mut hasher = Sha256::new();
    hasher.update(SIGNATURE_DOMAIN);
    hasher.update(Sha256::digest(manifest));
    hasher.update(Sha256::digest(component));
    hasher.finalize().into()
}

/// Signs a package's manifest and component bytes.
pub fn sign(secret: &PublisherSecret, manifest: &[u8], component: &[u8]) -> PluginSignature {
    PluginSignature(secret.0.sign(&signing_digest(manifest, component)))
}

/// Checks that `signature` was made by `key` over exactly these manifest and
/// component bytes.
pub fn verify(
    key: &PublisherKey,
    manifest: &[u8],
    component: &[u8],
    signature: &PluginSignature,
) -> Result<(), SignatureError> {
    key.0
        .verify_strict(&signing_digest(manifest, component), &signature.0)
        .map_err(|_| SignatureError::Mismatch)
}

/// The identity of a component's bytes: the lowercase hex SHA-256, 64
/// characters. Blobs are stored under this name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentHash(String);

impl ContentHash {
    /// Parses 64 lowercase hex characters.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        decode_hex::<DIGEST_BYTES>("content hash", text)?;
        Ok(Self(text.to_owned()))
    }

    /// The hash as 64 lowercase hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContentHash {
    type Error = SignatureError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        decode_hex::<DIGEST_BYTES>("content hash", &text)?;
        Ok(Self(text))
    }
}

impl From<ContentHash> for String {
    fn from(hash: ContentHash) -> Self {
        hash.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "ContentHash({})", self.0)
    }
}

/// The content hash of `bytes`.
pub fn content_hash(bytes: &[u8]) -> ContentHash {
    ContentHash(to_hex(&Sha256::digest(bytes)))
}
