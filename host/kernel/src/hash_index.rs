//! A map for the look-ups a store keeps over its orders (idempotency keys,
//! customers), which grow by about one entry per order.
//!
//! A `BTreeMap<String, _>` of a million keys compares the probe with a
//! stored key at every step of its descent, and every stored key is its
//! own heap allocation somewhere in gigabytes of orders: each comparison is
//! a cache miss, dozens of them per look-up, on the shard writer. Here a
//! hash table finds a key's bucket in a cache miss or two, by a 64-bit hash
//! of the key, and a stored key is compared once, at the end.
//!
//! One hash table would rehash all its entries at once when it grows: a
//! pause of a hundred milliseconds and more at a million keys, which every
//! order queued behind the writer would wait out. Past
//! [`SINGLE_TABLE_ENTRIES_MAX`] entries the index is split into
//! [`TABLES`] tables by the top bits of the hash, and each grows on its
//! own, so a growth moves at most a few thousand entries.
//!
//! Keys whose hashes collide share a bucket that is an ordered map, so
//! keys chosen to collide cost their sender no more than the plain tree
//! would. The hash is fixed (FNV-1a and a mixing step, no per-process key)
//! and iteration is in the order of hashes, then keys, so the encoding is
//! the same in every process whatever the history of the tables: the
//! kernel stays deterministic to the byte.

use std::borrow::Borrow;
use std::collections::hash_map::{self, HashMap};
use std::collections::{BTreeMap, btree_map};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{CustomerId, IdempotencyKey};

/// A key with a fixed 64-bit hash; equal keys must hash equally, whichever
/// of their borrowed forms is hashed.
pub(crate) trait IndexKey {
    /// The key's hash.
    fn index_hash(&self) -> u64;
}

impl IndexKey for str {
    fn index_hash(&self) -> u64 {
        hash_bytes(self.as_bytes())
    }
}

impl IndexKey for String {
    fn index_hash(&self) -> u64 {
        self.as_str().index_hash()
    }
}

impl IndexKey for IdempotencyKey {
    fn index_hash(&self) -> u64 {
        self.as_str().index_hash()
    }
}

impl IndexKey for CustomerId {
    fn index_hash(&self) -> u64 {
        self.as_str().index_hash()
    }
}

/// FNV-1a over the bytes, then splitmix64's finaliser, so keys that differ
/// only in their last characters (`order-1`, `order-2`) still spread over
/// the whole range.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// The keys of one hash: almost always one. A bucket holds two or more
/// keys only as `Many`, so equal contents are always equal structures.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Bucket<K, V> {
    One(K, V),
    Many(BTreeMap<K, V>),
}

impl<K: Ord, V> Bucket<K, V> {
    /// Turns a single key into a map of one, so a second key with the same
    /// hash can join it.
    fn make_many(&mut self) {
        if let Bucket::One(..) = self {
            let Bucket::One(key, value) = std::mem::replace(self, Bucket::Many(BTreeMap::new()))
            else {
                unreachable!("matched as a single key")
            };
            *self = Bucket::Many(BTreeMap::from([(key, value)]));
        }
    }
}

impl<K, V> Bucket<K, V> {
    /// The bucket's entries, in key order.
    fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let (one, many) = match self {
            Bucket::One(key, value) => (Some((key, value)), None),
            Bucket::Many(keys) => (None, Some(keys.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// Entries one table holds before the index splits into [`TABLES`].
pub(crate) const SINGLE_TABLE_ENTRIES_MAX: usize = 32_768;
/// Tables of a split index (a power of two), chosen by the hash's top bits.
const TABLES: usize = 256;

/// One table: buckets by the keys' hash, which is already a hash.
type Table<K, V> = HashMap<u64, Bucket<K, V>, BuildHasherDefault<PremixedHash>>;

/// Hashes a key's hash for a table with one multiplication. The table
/// takes its slot from the low bits and its tag from the top bits; in a
/// split index every key of a table shares its top bits, and the product
/// spreads the others over them.
#[derive(Default)]
struct PremixedHash(u64);

impl Hasher for PremixedHash {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed here; any other input still hashes well.
        self.0 = hash_bytes(bytes);
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map of keys with fixed hashes, iterated in the order of the hashes,
/// then of the keys.
#[derive(Clone, Debug)]
pub(crate) struct HashIndex<K, V> {
    /// No table before the first entry, one up to
    /// [`SINGLE_TABLE_ENTRIES_MAX`] entries, then [`TABLES`].
    tables: Vec<Table<K, V>>,
    /// Entries over all buckets.
    len: usize,
}

impl<K, V> Default for HashIndex<K, V> {
    fn default() -> Self {
        Self { tables: Vec::new(), len: 0 }
    }
}

impl<K, V> HashIndex<K, V> {
    /// The table that holds `hash`, if there is any table.
    fn table(&self, hash: u64) -> Option<&Table<K, V>> {
        self.tables.get(table_of(hash, self.tables.len()))
    }

    /// The table of `tables` (holding `len` entries) that holds `hash`, to
    /// change it; made and split as the index grows. A function of the
    /// fields, so the caller can still count entries while it holds it.
    fn table_mut(tables: &mut Vec<Table<K, V>>, len: usize, hash: u64) -> &mut Table<K, V> {
        if tables.is_empty() {
            tables.push(Table::default());
        } else if tables.len() == 1 && len >= SINGLE_TABLE_ENTRIES_MAX {
            let single = tables.pop().expect("one table");
            *tables = (0..TABLES).map(|_| Table::default()).collect();
            for (bucket_hash, bucket) in single {
                tables[table_of(bucket_hash, TABLES)].insert(bucket_hash, bucket);
            }
        }
        let index = table_of(hash, tables.len());
        &mut tables[index]
    }
}

/// Which of `tables` tables holds `hash`: its top bits.
fn table_of(hash: u64, tables: usize) -> usize {
    if tables <= 1 { 0 } else { (hash >> (64 - tables.trailing_zeros())) as usize }
}

impl<K: Ord + IndexKey, V> HashIndex<K, V> {
    /// The value of `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: IndexKey + Ord + ?Sized,
    {
        let hash = key.index_hash();
        match self.table(hash)?.get(&hash)? {
            Bucket::One(stored, value) => (stored.borrow() == key).then_some(value),
            Bucket::Many(keys) => keys.get(key),
        }
    }

    /// The value of `key`, to change it.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: IndexKey + Ord + ?Sized,
    {
        let hash = key.index_hash();
        let index = table_of(hash, self.tables.len());
        match self.tables.get_mut(index)?.get_mut(&hash)? {
            Bucket::One(stored, value) => ((*stored).borrow() == key).then_some(value),
            Bucket::Many(keys) => keys.get_mut(key),
        }
    }

    /// The value of `key`, inserted by `make` if there was none; the key is
    /// copied only then.
    pub(crate) fn get_or_insert_with<Q>(&mut self, key: &Q, make: impl FnOnce() -> V) -> &mut V
    where
        K: Borrow<Q>,
        Q: IndexKey + Ord + ToOwned<Owned = K> + ?Sized,
    {
        let hash = key.index_hash();
        let bucket = match Self::table_mut(&mut self.tables, self.len, hash).entry(hash) {
            hash_map::Entry::Vacant(slot) => {
                self.len += 1;
                let Bucket::One(_, value) = slot.insert(Bucket::One(key.to_owned(), make())) else {
                    unreachable!("inserted as a single key")
                };
                return value;
            }
            hash_map::Entry::Occupied(slot) => slot.into_mut(),
        };
        if matches!(bucket, Bucket::One(stored, _) if (*stored).borrow() != key) {
            bucket.make_many();
        }
        match bucket {
            Bucket::One(_, value) => value,
            Bucket::Many(keys) => match keys.entry(key.to_owned()) {
                btree_map::Entry::Occupied(slot) => slot.into_mut(),
                btree_map::Entry::Vacant(slot) => {
                    self.len += 1;
                    slot.insert(make())
                }
            },
        }
    }

    /// Sets `key` to `value`.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        let hash = key.index_hash();
        let bucket = match Self::table_mut(&mut self.tables, self.len, hash).entry(hash) {
            hash_map::Entry::Vacant(slot) => {
                slot.insert(Bucket::One(key, value));
                self.len += 1;
                return;
            }
            hash_map::Entry::Occupied(slot) => slot.into_mut(),
        };
        if matches!(bucket, Bucket::One(stored, _) if *stored != key) {
            bucket.make_many();
        }
        match bucket {
            Bucket::One(_, stored_value) => *stored_value = value,
            Bucket::Many(keys) => {
                if keys.insert(key, value).is_none() {
                    self.len += 1;
                }
            }
        }
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: IndexKey + Ord + ?Sized,
    {
        let hash = key.index_hash();
        let index = table_of(hash, self.tables.len());
        let hash_map::Entry::Occupied(mut slot) = self.tables.get_mut(index)?.entry(hash) else {
            return None;
        };
        match slot.get_mut() {
            Bucket::One(stored, _) => {
                if (*stored).borrow() != key {
                    return None;
                }
                let Bucket::One(_, value) = slot.remove() else {
                    unreachable!("checked to be a single key")
                };
                self.len -= 1;
                Some(value)
            }
            Bucket::Many(keys) => {
                let value = keys.remove(key)?;
                self.len -= 1;
                if keys.len() == 1 {
                    let (stored, kept) = keys.pop_first().expect("one key is left");
                    *slot.get_mut() = Bucket::One(stored, kept);
                }
                Some(value)
            }
        }
    }

    /// Every entry, in the order of the keys' hashes, then of the keys
    /// (sorted here: for encoding, never on the order path).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let mut buckets: Vec<(u64, &Bucket<K, V>)> =
            self.tables.iter().flatten().map(|(hash, bucket)| (*hash, bucket)).collect();
        buckets.sort_unstable_by_key(|(hash, _)| *hash);
        buckets.into_iter().flat_map(|(_, bucket)| bucket.iter())
    }
}

/// Equal entries, however the tables grew.
impl<K: PartialEq, V: PartialEq> PartialEq for HashIndex<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self.tables.iter().flatten().all(|(hash, bucket)| {
                other.table(*hash).and_then(|table| table.get(hash)) == Some(bucket)
            })
    }
}

impl<K: Eq, V: Eq> Eq for HashIndex<K, V> {}

/// Encoded as a plain map, so the encoding is the one a `BTreeMap` of the
/// same entries has, in the index's own order.
impl<K: Ord + IndexKey + Serialize, V: Serialize> Serialize for HashIndex<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (key, value) in self.iter() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de, K, V> Deserialize<'de> for HashIndex<K, V>
where
    K: Ord + IndexKey + Deserialize<'de>,
    V: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(PhantomData<(K, V)>);

        impl<'de, K, V> Visitor<'de> for Entries<K, V>
        where
            K: Ord + IndexKey + Deserialize<'de>,
            V: Deserialize<'de>,
        {
            type Value = HashIndex<K, V>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
                let mut index = HashIndex::default();
                while let Some((key, value)) = entries.next_entry()? {
                    index.insert(key, value);
                }
                Ok(index)
            }
        }

        deserializer.deserialize_map(Entries(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A key whose hash is its first byte modulo 4, so that a handful of
    /// keys already collide and every bucket shape is exercised.
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    struct Crowded(String);

    impl IndexKey for Crowded {
        fn index_hash(&self) -> u64 {
            u64::from(self.0.as_bytes().first().copied().unwrap_or(0) % 4)
        }
    }

    #[derive(Clone, Debug)]
    enum Operation {
        Insert(String, u32),
        AddOne(String),
        Remove(String),
    }

    fn operation() -> impl Strategy<Value = Operation> {
        let key = "[a-h]{1,2}";
        prop_oneof![
            (key, any::<u32>()).prop_map(|(key, value)| Operation::Insert(key, value)),
            key.prop_map(Operation::AddOne),
            key.prop_map(Operation::Remove),
        ]
    }

    /// Applies `operations` to an index and to a plain map.
    fn run(operations: &[Operation]) -> (HashIndex<Crowded, u32>, BTreeMap<String, u32>) {
        let mut index = HashIndex::default();
        let mut model = BTreeMap::new();
        for operation in operations {
            match operation {
                Operation::Insert(key, value) => {
                    index.insert(Crowded(key.clone()), *value);
                    model.insert(key.clone(), *value);
                }
                Operation::AddOne(key) => {
                    let value = index.get_or_insert_with(&Crowded(key.clone()), || 0);
                    *value = value.wrapping_add(1);
                    let value = model.entry(key.clone()).or_insert(0);
                    *value = value.wrapping_add(1);
                }
                Operation::Remove(key) => {
                    assert_eq!(index.remove(&Crowded(key.clone())), model.remove(key));
                }
            }
        }
        (index, model)
    }

    proptest! {
        #[test]
        fn it_holds_what_a_plain_map_holds(operations in prop::collection::vec(operation(), 0..64)) {
            let (index, model) = run(&operations);
            for key in ["a", "b", "e", "ab", "hh", "zz"] {
                prop_assert_eq!(index.get(&Crowded(key.into())), model.get(key));
            }
            let mut entries: Vec<_> =
                index.iter().map(|(key, value)| (key.0.clone(), *value)).collect();
            entries.sort();
            let expected: Vec<_> = model.iter().map(|(key, value)| (key.clone(), *value)).collect();
            prop_assert_eq!(entries, expected);
            prop_assert_eq!(index.len, model.len());
        }

        #[test]
        fn equal_contents_are_equal_and_encode_the_same(
            operations in prop::collection::vec(operation(), 0..64)
        ) {
            let (index, model) = run(&operations);
            // The same entries inserted afresh, in another order.
            let mut rebuilt = HashIndex::default();
            for (key, value) in model.iter().rev() {
                rebuilt.insert(Crowded(key.clone()), *value);
            }
            prop_assert_eq!(&index, &rebuilt);
            let encoded = postcard::to_allocvec(&index).expect("encodes");
            prop_assert_eq!(&encoded, &postcard::to_allocvec(&rebuilt).expect("encodes"));
            let decoded: HashIndex<Crowded, u32> = postcard::from_bytes(&encoded).expect("decodes");
            prop_assert_eq!(decoded, index);
        }
    }

    #[test]
    fn a_split_index_holds_and_encodes_what_a_single_table_does() {
        let keys: Vec<String> =
            (0..SINGLE_TABLE_ENTRIES_MAX + 5_000).map(|n| format!("key-{n}")).collect();
        let mut split = HashIndex::default();
        for (value, key) in keys.iter().enumerate() {
            split.insert(key.clone(), value);
        }
        assert_eq!(split.tables.len(), TABLES);
        for (value, key) in keys.iter().enumerate() {
            assert_eq!(split.get(key.as_str()), Some(&value));
        }
        // Down to fewer entries than one table holds: the same contents
        // built afresh sit in one table, and compare and encode the same.
        for key in &keys[..10_000] {
            assert!(split.remove(key.as_str()).is_some());
        }
        assert_eq!(split.get("key-0"), None);
        let mut single = HashIndex::default();
        for (value, key) in keys.iter().enumerate().skip(10_000).rev() {
            single.insert(key.clone(), value);
        }
        assert_eq!(single.tables.len(), 1);
        assert_eq!(split, single);
        assert_eq!(postcard::to_allocvec(&split).unwrap(), postcard::to_allocvec(&single).unwrap());
    }

    #[test]
    fn it_decodes_what_a_plain_map_encoded() {
        let plain = BTreeMap::from([("key-1".to_string(), 7_u64), ("key-2".to_string(), 9)]);
        let bytes = postcard::to_allocvec(&plain).expect("encodes");
        let index: HashIndex<String, u64> = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(index.get("key-1"), Some(&7));
        assert_eq!(index.get("key-2"), Some(&9));
        assert_eq!(index.get("key-3"), None);
    }

    #[test]
    fn the_hash_is_fixed() {
        // Snapshots encode entries in hash order; a change of hash would
        // change every snapshot's bytes (they would still decode).
        assert_eq!(hash_bytes(b""), 0xf52a_15e9_a9b5_e89b);
        assert_ne!(hash_bytes(b"order-1"), hash_bytes(b"order-2"));
    }
}
