//! [`Keyed`]: the hash map the machines keep their accounts, locks and
//! running transactions in: looked up several times per message, so a hash
//! lookup rather than a walk of string comparisons (BENCHMARKS.md has the
//! measurements).
//!
//! What an ordered map gives and this keeps:
//! - **Order where it shows.** A hash map's order is arbitrary, so this one
//!   does not hand out its map: whatever leaves a machine in an order goes
//!   through [`Keyed::sorted`] or [`Keyed::sorted_keys_where`], and the only
//!   unordered walks are named so ([`Keyed::iter_unordered`],
//!   [`Keyed::for_each_mut_unordered`]), for uses where order cannot show (a
//!   minimum, an update of every entry).
//! - **`Eq + Hash`** for the model checker: equality is the map's (order
//!   does not matter), and hashing goes over the entries sorted by key.

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use super::hasher::HashSeed;

#[derive(Clone)]
pub struct Keyed<K, V>(HashMap<K, V, HashSeed>);

impl<K: Eq + Hash, V: PartialEq> PartialEq for Keyed<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<K: Eq + Hash, V: Eq> Eq for Keyed<K, V> {}

impl<K, V> Default for Keyed<K, V> {
    fn default() -> Self {
        Keyed(HashMap::default())
    }
}

impl<K: Ord + Hash, V> Keyed<K, V> {
    /// An empty map hashing with `seed`.
    pub fn with_seed(seed: HashSeed) -> Self {
        Keyed(HashMap::with_hasher(seed))
    }

    /// The same entries hashing with `seed` (a map built before the seed was
    /// known).
    pub fn reseeded(self, seed: HashSeed) -> Self {
        let mut map = HashMap::with_capacity_and_hasher(self.0.len(), seed);
        map.extend(self.0);
        Keyed(map)
    }

    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.0.get(key)
    }

    pub fn get_mut<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.0.get_mut(key)
    }

    pub fn contains_key<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.0.contains_key(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.0.insert(key, value)
    }

    pub fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.0.remove(key)
    }

    pub fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        self.0.entry(key)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The entries in no particular order: only for uses where order cannot
    /// show (a minimum, a count, a test that looks at every entry).
    pub fn iter_unordered(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter()
    }

    /// Updates every entry, in no particular order: only for updates that
    /// do not depend on each other.
    pub fn for_each_mut_unordered(&mut self, mut f: impl FnMut(&K, &mut V)) {
        for (k, v) in self.0.iter_mut() {
            f(k, v);
        }
    }

    /// The entries in key order.
    pub fn sorted(&self) -> Vec<(&K, &V)> {
        let mut entries: Vec<(&K, &V)> = self.0.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries
    }

    /// The keys in order, owned (for walking the map while changing it).
    pub fn sorted_keys_where(&self, keep: impl Fn(&V) -> bool) -> Vec<K>
    where
        K: Clone,
    {
        let mut keys: Vec<K> = self
            .0
            .iter()
            .filter(|(_, v)| keep(v))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort_unstable();
        keys
    }
}

impl<K: Ord + Hash, V: Hash> Hash for Keyed<K, V> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let entries = self.sorted();
        entries.len().hash(state);
        for (k, v) in entries {
            k.hash(state);
            v.hash(state);
        }
    }
}

impl<K: Ord + Hash + std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for Keyed<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.sorted()).finish()
    }
}

/// Built with the default seed (zeros); a machine reseeds what it builds
/// this way ([`Keyed::reseeded`]).
impl<K: Eq + Hash, V> FromIterator<(K, V)> for Keyed<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Keyed(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn hash_of<T: Hash>(value: &T) -> u64 {
        let mut h = DefaultHasher::new();
        value.hash(&mut h);
        h.finish()
    }

    #[test]
    fn equal_maps_hash_alike_whatever_the_insertion_order() {
        let ids: Vec<String> = (0..200).map(|i| format!("tx-{i}")).collect();
        let forward: Keyed<String, usize> = ids
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, id)| (id, i))
            .collect();
        let mut backward: Keyed<String, usize> = Keyed::with_seed(HashSeed::new(7, 9));
        for (i, id) in ids.iter().enumerate().rev() {
            backward.insert(id.clone(), i);
        }
        assert_eq!(forward, backward);
        assert_eq!(hash_of(&forward), hash_of(&backward));
        backward.insert("tx-7".to_string(), 0);
        assert_ne!(forward, backward);
        assert_ne!(hash_of(&forward), hash_of(&backward));
    }

    #[test]
    fn sorted_views_are_in_key_order() {
        let map: Keyed<String, u8> = ["c", "a", "d", "b"]
            .iter()
            .map(|k| (k.to_string(), k.as_bytes()[0]))
            .collect();
        let keys: Vec<&str> = map.sorted().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c", "d"]);
        assert_eq!(map.sorted_keys_where(|v| *v != b'c'), ["a", "b", "d"]);
        assert_eq!(
            format!("{map:?}"),
            r#"{"a": 97, "b": 98, "c": 99, "d": 100}"#
        );
    }
}
