//! [`Keyed`]: the hash map the machines keep their accounts, locks and
//! running transactions in.
//!
//! These maps are looked up several times per message (a prepare finds its
//! accounts' balances and locks and its transaction; a commit finds them
//! again to apply and unlock). As `BTreeMap`s keyed by `String`, each lookup
//! was a walk of a dozen or so string comparisons: `memcmp` was 8 % of a
//! node's CPU and 4 % of the coordinator's at full load. A hash lookup is
//! one hash of a short id and, mostly, one comparison.
//!
//! What a `BTreeMap` gave for free and this keeps:
//! - **Order where it shows.** Iteration order of a hash map is arbitrary
//!   (and differs between runs: the hasher is seeded, so ids that clients
//!   choose cannot be picked to collide). Whatever leaves the machine in an
//!   order (actions, views, checkpoints) goes through [`Keyed::sorted`], so
//!   a machine stays deterministic and its outputs stay sorted by id.
//! - **`Eq + Hash`** for the model checker: equality is the map's (order
//!   does not matter), and hashing goes over the entries sorted by key (only
//!   the model checker hashes states, so the sort costs nothing at run time).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};

#[derive(Clone)]
pub struct Keyed<K, V>(HashMap<K, V>);

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
    pub fn new() -> Self {
        Keyed(HashMap::new())
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

impl<K, V> Deref for Keyed<K, V> {
    type Target = HashMap<K, V>;

    fn deref(&self) -> &HashMap<K, V> {
        &self.0
    }
}

impl<K, V> DerefMut for Keyed<K, V> {
    fn deref_mut(&mut self) -> &mut HashMap<K, V> {
        &mut self.0
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
        let mut backward: Keyed<String, usize> = Keyed::new();
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
