//! What the state-based rules remember between orders: each customer's
//! recent order times (the order-rate rule) and the customers seen at each
//! shipping address (the customers-per-address rule).
//!
//! The host's state is a key-value map with a cap on the keys one plugin
//! holds in one store, and every value a call writes is journaled with the
//! order. A flash sale has more customers than that cap, so entries are not
//! kept one key per customer: they are spread by hash over
//! [`STATE_BUCKETS`] keys per rule, each a compact binary list no larger
//! than [`BUCKET_BYTES_MAX`]. Entries past a rule's memory are dropped
//! whenever their bucket is written, and a bucket that would grow past its
//! size drops the entries seen longest ago; under extreme load the rules
//! forget the oldest activity first instead of failing orders.
//!
//! Customers and addresses are kept as 64-bit hashes: no customer id or
//! address text sits in the plugin's state, and every entry has a fixed
//! size.
//!
//! # Bucket encoding
//!
//! One version byte ([`ENCODING_VERSION`]), then the entries in ascending
//! key order, each: key (u64, little-endian), last seen (u64 ms,
//! little-endian), value count (u8), and that many u64 values
//! (little-endian, ascending). A bucket that cannot be read is logged and
//! started afresh: failing every order of its customers would turn a
//! damaged value into an outage.

use std::collections::BTreeMap;

use bazaar_sdk::{Address, PluginError};

/// State keys per rule. The host lets one plugin hold 10,000 keys in a
/// store; two rules of 1,024 buckets use a fifth of that, and 1,024 buckets
/// of [`BUCKET_BYTES_MAX`] hold the last minute of about 300,000 customers.
pub const STATE_BUCKETS: u64 = 1024;

/// Largest encoded bucket: each approved order rewrites up to two buckets
/// and the host journals what it writes, so 8 KiB bounds that cost per
/// order while holding some 300 customers or addresses per bucket.
pub const BUCKET_BYTES_MAX: usize = 8 * 1024;

/// Values one entry may hold: the encoded count is one byte. The
/// configuration's limits keep entries far below it.
pub const VALUES_PER_ENTRY_MAX: usize = u8::MAX as usize;

/// The first byte of every bucket; a later encoding gets another number.
pub const ENCODING_VERSION: u8 = 1;

/// Bytes of an entry besides its values: key, last seen, count.
const ENTRY_HEADER_BYTES: usize = 8 + 8 + 1;

/// Bytes of one value.
const VALUE_BYTES: usize = 8;

/// One remembered customer (rate rule) or address (address rule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// When it was last seen, in milliseconds since the Unix epoch.
    pub last_seen_ms: u64,
    /// Order times (rate rule) or customer hashes (address rule),
    /// ascending, at most [`VALUES_PER_ENTRY_MAX`].
    pub values: Vec<u64>,
}

impl Entry {
    fn encoded_len(&self) -> usize {
        ENTRY_HEADER_BYTES + VALUE_BYTES * self.values.len()
    }
}

/// The entries kept under one state key.
#[derive(Debug)]
pub struct Bucket {
    /// The state key, `<rule>/<index>`.
    state_key: String,
    /// The entries by key hash.
    entries: BTreeMap<u64, Entry>,
}

impl Bucket {
    /// The bucket of the rule whose keys start with `rule` that holds the
    /// entry of `hash`, as the store's state has it.
    pub fn load(rule: &str, hash: u64) -> Self {
        let state_key = format!("{rule}/{}", hash % STATE_BUCKETS);
        let entries = match bazaar_sdk::state::get(&state_key) {
            None => BTreeMap::new(),
            Some(bytes) => decode(&bytes).unwrap_or_else(|problem| {
                bazaar_sdk::log::warn(&format!(
                    "state {state_key} cannot be read ({problem}); starting it afresh"
                ));
                BTreeMap::new()
            }),
        };
        Self { state_key, entries }
    }

    /// The state key the bucket is kept under.
    pub fn state_key(&self) -> &str {
        &self.state_key
    }

    /// The entry of `hash`, if remembered.
    pub fn entry(&self, hash: u64) -> Option<&Entry> {
        self.entries.get(&hash)
    }

    /// Remembers `entry` for `hash`, replacing what was there. Values past
    /// [`VALUES_PER_ENTRY_MAX`] are dropped from the front (the oldest).
    pub fn insert(&mut self, hash: u64, mut entry: Entry) {
        let excess = entry.values.len().saturating_sub(VALUES_PER_ENTRY_MAX);
        entry.values.drain(..excess);
        self.entries.insert(hash, entry);
    }

    /// Forgets every entry last seen at or before `cutoff_ms`.
    pub fn forget_last_seen_by(&mut self, cutoff_ms: u64) {
        self.entries.retain(|_, entry| entry.last_seen_ms > cutoff_ms);
    }

    /// Writes the bucket back to the store's state, first dropping the
    /// entries seen longest ago (never `keep`'s) until it fits in
    /// [`BUCKET_BYTES_MAX`]. An empty bucket deletes its key.
    pub fn save(mut self, keep: u64) -> Result<(), PluginError> {
        let mut encoded_len = 1 + self.entries.values().map(Entry::encoded_len).sum::<usize>();
        while encoded_len > BUCKET_BYTES_MAX {
            let oldest = self
                .entries
                .iter()
                .filter(|&(&hash, _)| hash != keep)
                .min_by_key(|&(&hash, entry)| (entry.last_seen_ms, hash))
                .map(|(&hash, _)| hash);
            let Some(evicted) = oldest.and_then(|hash| self.entries.remove(&hash)) else {
                break;
            };
            encoded_len -= evicted.encoded_len();
        }
        if self.entries.is_empty() {
            bazaar_sdk::state::delete(&self.state_key);
            return Ok(());
        }
        bazaar_sdk::state::set(&self.state_key, &encode(&self.entries, encoded_len))?;
        Ok(())
    }
}

fn encode(entries: &BTreeMap<u64, Entry>, encoded_len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(encoded_len);
    bytes.push(ENCODING_VERSION);
    for (hash, entry) in entries {
        bytes.extend_from_slice(&hash.to_le_bytes());
        bytes.extend_from_slice(&entry.last_seen_ms.to_le_bytes());
        // `insert` keeps every entry within one byte's count.
        let count = u8::try_from(entry.values.len()).unwrap_or(u8::MAX);
        bytes.push(count);
        for value in entry.values.iter().take(usize::from(count)) {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
    }
    bytes
}

fn decode(bytes: &[u8]) -> Result<BTreeMap<u64, Entry>, &'static str> {
    let Some((&version, mut rest)) = bytes.split_first() else {
        return Err("the value is empty");
    };
    if version != ENCODING_VERSION {
        return Err("the value has an unknown encoding version");
    }
    let mut entries = BTreeMap::new();
    while !rest.is_empty() {
        let hash = take_u64(&mut rest)?;
        let last_seen_ms = take_u64(&mut rest)?;
        let Some((&count, tail)) = rest.split_first() else {
            return Err("an entry is cut short");
        };
        rest = tail;
        let values = (0..count).map(|_| take_u64(&mut rest)).collect::<Result<Vec<_>, _>>()?;
        entries.insert(hash, Entry { last_seen_ms, values });
    }
    Ok(entries)
}

fn take_u64(rest: &mut &[u8]) -> Result<u64, &'static str> {
    let Some((head, tail)) = rest.split_first_chunk::<8>() else {
        return Err("an entry is cut short");
    };
    *rest = tail;
    Ok(u64::from_le_bytes(*head))
}

/// A stable 64-bit hash of `parts`: FNV-1a over their bytes, each part
/// closed by a unit separator so `["ab", "c"]` and `["a", "bc"]` differ,
/// then the SplitMix64 finaliser so the low bits (the bucket index) depend
/// on every byte. Stable across platforms and versions: state written by
/// one build is read by the next.
pub fn hash(parts: &[&str]) -> u64 {
    const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    const UNIT_SEPARATOR: u8 = 0x1f;
    let mut hash = FNV_OFFSET_BASIS;
    for part in parts {
        for &byte in part.as_bytes().iter().chain([UNIT_SEPARATOR].iter()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// The hash a customer is remembered by.
pub fn customer_hash(customer_id: &str) -> u64 {
    hash(&["customer", customer_id])
}

/// The hash an address is remembered by: of its country, city, street and
/// postal code, each reduced to its letters and digits in lower case, so
/// "Nanjing Rd. 1" and "nanjing rd 1" are one address. The region is left
/// out: it adds nothing once the city and postal code are known, and it is
/// the field most often written differently.
pub fn address_fingerprint(address: &Address) -> u64 {
    let normalised = [&address.country, &address.city, &address.street, &address.postal_code].map(
        |text| -> String {
            text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
        },
    );
    hash(&["address", &normalised[0], &normalised[1], &normalised[2], &normalised[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use bazaar_sdk::stand_in;
    use bazaar_sdk::testing::CartBuilder;

    #[test]
    fn a_bucket_round_trips_through_the_state() {
        stand_in::reset();
        let mut bucket = Bucket::load("rate", 7);
        assert_eq!(bucket.state_key(), "rate/7");
        bucket.insert(7, Entry { last_seen_ms: 10, values: vec![5, 10] });
        bucket.save(7).unwrap();

        let again = Bucket::load("rate", 7 + STATE_BUCKETS);
        assert_eq!(again.state_key(), "rate/7");
        assert_eq!(again.entry(7), Some(&Entry { last_seen_ms: 10, values: vec![5, 10] }));
        assert_eq!(again.entry(7 + STATE_BUCKETS), None);
    }

    #[test]
    fn a_full_bucket_forgets_the_entries_seen_longest_ago_but_never_the_one_kept() {
        stand_in::reset();
        let mut bucket = Bucket::load("address", 0);
        let entries = BUCKET_BYTES_MAX / ENTRY_HEADER_BYTES + 10;
        for index in 0..entries as u64 {
            bucket.insert(
                index * STATE_BUCKETS,
                Entry { last_seen_ms: 1_000 + index, values: vec![] },
            );
        }
        // The entry kept is the oldest of all, yet it survives.
        bucket.insert(u64::MAX - 1023, Entry { last_seen_ms: 1, values: vec![42] });
        bucket.save(u64::MAX - 1023).unwrap();

        let stored = bazaar_sdk::state::get("address/0").unwrap();
        assert!(stored.len() <= BUCKET_BYTES_MAX, "{} bytes", stored.len());
        let reloaded = Bucket::load("address", 0);
        assert!(reloaded.entry(u64::MAX - 1023).is_some());
        assert!(reloaded.entry(0).is_none(), "the oldest of the rest is forgotten first");
        let newest = (entries as u64 - 1) * STATE_BUCKETS;
        assert!(reloaded.entry(newest).is_some(), "the newest stays");
    }

    #[test]
    fn entries_past_their_memory_are_forgotten_and_an_empty_bucket_deletes_its_key() {
        stand_in::reset();
        let mut bucket = Bucket::load("rate", 3);
        bucket.insert(3, Entry { last_seen_ms: 100, values: vec![100] });
        bucket.save(3).unwrap();
        assert!(bazaar_sdk::state::get("rate/3").is_some());

        let mut bucket = Bucket::load("rate", 3);
        bucket.forget_last_seen_by(100);
        assert_eq!(bucket.entry(3), None);
        bucket.save(3).unwrap();
        assert_eq!(bazaar_sdk::state::get("rate/3"), None);
    }

    #[test]
    fn an_entry_keeps_at_most_a_bytes_count_of_values_the_newest() {
        stand_in::reset();
        let mut bucket = Bucket::load("rate", 1);
        bucket.insert(1, Entry { last_seen_ms: 1, values: (0..300).collect() });
        let values = &bucket.entry(1).unwrap().values;
        assert_eq!(values.len(), VALUES_PER_ENTRY_MAX);
        assert_eq!(values[0], 300 - VALUES_PER_ENTRY_MAX as u64);
    }

    #[test]
    fn an_unreadable_bucket_is_logged_and_started_afresh() {
        for damaged in [
            &b""[..],
            b"\x02",
            b"\x01\x00\x01",
            b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03",
        ] {
            stand_in::reset();
            bazaar_sdk::state::set("rate/0", damaged).unwrap();
            let bucket = Bucket::load("rate", 0);
            assert_eq!(bucket.entry(0), None, "{damaged:?}");
            let lines = stand_in::log_lines();
            assert_eq!(lines.len(), 1, "{damaged:?}");
            assert!(lines[0].message.contains("state rate/0 cannot be read"), "{lines:?}");
        }
    }

    #[test]
    fn hashes_are_stable_and_separate_their_parts() {
        assert_eq!(hash(&["customer", "c-1"]), hash(&["customer", "c-1"]));
        assert_ne!(hash(&["ab", "c"]), hash(&["a", "bc"]));
        assert_ne!(customer_hash("c-1"), customer_hash("c-2"));
        assert_ne!(hash(&[""]), hash(&[]));
        // Hashes are part of the stored format: a change would make every
        // store's remembered customers unreachable.
        assert_eq!(customer_hash("customer-1"), 0xc8cd_64f7_e204_3111);
    }

    #[test]
    fn address_fingerprints_ignore_case_spacing_punctuation_and_region() {
        let plain = CartBuilder::new("CNY").street("Nanjing Rd. 1").build().shipping_address;
        let mut variant = plain.clone();
        variant.street = "  nanjing rd 1 ".to_owned();
        variant.city = "SHANGHAI".to_owned();
        variant.region = "Shanghai Municipality".to_owned();
        assert_eq!(address_fingerprint(&plain), address_fingerprint(&variant));

        let mut elsewhere = plain.clone();
        elsewhere.street = "Nanjing Rd. 2".to_owned();
        assert_ne!(address_fingerprint(&plain), address_fingerprint(&elsewhere));
    }
}
