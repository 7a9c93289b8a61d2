//! Remembered outcomes: the newest `kept_max` values by `tx_id`, oldest
//! first, each found by id in one hash lookup.
//!
//! Both machines keep hundreds of thousands of outcomes (so that a late or
//! duplicate message gets the first answer) and look one up or add one on
//! every transaction. A `BTreeMap` keyed by `tx_id` made each of those a walk
//! of some 40 string comparisons, each a cache miss on the key's heap bytes
//! (5 % of the coordinator's CPU at full load); a hash index is one hash and
//! one comparison. The age queue keeps the order that eviction and
//! checkpoints need, so nothing ever iterates the index.
//!
//! Equality and hashing look at the ages and values only (the index is
//! derived from them), so a machine state stays `Eq + Hash` for the model
//! checker and two machines that remember the same outcomes in the same
//! order are equal however many older ones each of them evicted.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use crate::wire::TxId;

/// Past this many values, room for all `kept_max` is reserved at once. A
/// queue or index that grows by doubling copies (and re-hashes) everything
/// it holds each time: at hundreds of thousands of outcomes that is tens
/// of megabytes moved in one go on the protocol's thread, a stall of tens
/// of milliseconds. Reserved address space costs nothing until it is
/// written; below this size (model checking, tests) nothing is reserved.
const RESERVE_ALL_AT: usize = 4_096;

#[derive(Debug, Clone)]
pub struct Remembered<V> {
    by_age: VecDeque<(TxId, V)>,
    /// Where each value is, as an absolute position (see `base`).
    index: HashMap<TxId, u64>,
    /// The absolute position of `by_age[0]`; evicting the oldest moves it
    /// up by one and leaves every other position as it was.
    base: u64,
    kept_max: usize,
}

impl<V> Remembered<V> {
    /// Keeps at most `kept_max` values (at least one).
    pub fn new(kept_max: usize) -> Remembered<V> {
        Remembered { by_age: VecDeque::new(), index: HashMap::new(), base: 0, kept_max: kept_max.max(1) }
    }

    pub fn get(&self, tx_id: &str) -> Option<&V> {
        let at = self.index.get(tx_id)?.checked_sub(self.base)?;
        self.by_age.get(usize::try_from(at).ok()?).map(|(_, v)| v)
    }

    pub fn contains_key(&self, tx_id: &str) -> bool {
        self.index.contains_key(tx_id)
    }

    /// Remembers `value` for `tx_id`, evicting the oldest beyond the limit.
    /// An id remembered already keeps its age and gets the new value; the
    /// old one is returned.
    pub fn insert(&mut self, tx_id: TxId, value: V) -> Option<V> {
        if let Some(&at) = self.index.get(&tx_id) {
            let slot = at.checked_sub(self.base).and_then(|i| usize::try_from(i).ok());
            if let Some(entry) = slot.and_then(|i| self.by_age.get_mut(i)) {
                return Some(std::mem::replace(&mut entry.1, value));
            }
        }
        if self.by_age.len() == RESERVE_ALL_AT && self.kept_max > RESERVE_ALL_AT {
            self.by_age.reserve_exact(self.kept_max + 1 - self.by_age.len());
            self.index.reserve(self.kept_max + 1 - self.index.len());
        }
        let at = self.base + self.by_age.len() as u64;
        self.index.insert(tx_id.clone(), at);
        self.by_age.push_back((tx_id, value));
        while self.by_age.len() > self.kept_max {
            if let Some((old, _)) = self.by_age.pop_front() {
                self.index.remove(&old);
            }
            self.base += 1;
        }
        None
    }

    pub fn clear(&mut self) {
        self.by_age.clear();
        self.index.clear();
        self.base = 0;
    }

    pub fn len(&self) -> usize {
        self.by_age.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_age.is_empty()
    }

    pub fn oldest_first(&self) -> impl Iterator<Item = (&TxId, &V)> {
        self.by_age.iter().map(|(id, v)| (id, v))
    }
}

impl<V: PartialEq> PartialEq for Remembered<V> {
    fn eq(&self, other: &Self) -> bool {
        self.kept_max == other.kept_max && self.by_age == other.by_age
    }
}

impl<V: Eq> Eq for Remembered<V> {}

impl<V: Hash> Hash for Remembered<V> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kept_max.hash(state);
        self.by_age.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_in_age_order_and_finds_each_by_id() {
        // Below and above the size at which room for all is reserved.
        for kept in [1_000, RESERVE_ALL_AT * 3] {
            keeps_the_newest(kept);
        }
    }

    fn keeps_the_newest(kept: usize) {
        let extra = 10;
        let total = kept + extra;
        let mut r = Remembered::new(kept);
        for i in 0..total {
            assert_eq!(r.insert(format!("t{i}"), i as i64), None);
        }
        // The oldest `extra` are gone; every other one is found where it is.
        for i in 0..extra {
            assert!(r.get(&format!("t{i}")).is_none(), "t{i} evicted");
            assert!(!r.contains_key(&format!("t{i}")));
        }
        for i in extra..total {
            assert_eq!(r.get(&format!("t{i}")), Some(&(i as i64)));
        }
        let ages: Vec<i64> = r.oldest_first().map(|(_, v)| *v).collect();
        assert_eq!(ages.len(), kept);
        assert_eq!(r.len(), kept);
        assert!(ages.windows(2).all(|w| w[0] + 1 == w[1]), "oldest first");
        assert_eq!(r.index.len(), kept);

        // Remembering an id again replaces it in place (it does not get younger).
        let id = format!("t{}", extra + 1);
        assert_eq!(r.insert(id.clone(), -1), Some(extra as i64 + 1));
        assert_eq!(r.get(&id), Some(&-1));
        assert_eq!(r.oldest_first().nth(1).map(|(k, _)| k.clone()), Some(id));
        assert_eq!(r.oldest_first().count(), kept);

        r.clear();
        assert!(r.is_empty());
        assert!(r.get(&format!("t{}", total - 1)).is_none());
        assert_eq!(r.oldest_first().count(), 0);
        // Usable again after clear.
        r.insert("again".into(), 7);
        assert_eq!(r.get("again"), Some(&7));
    }

    #[test]
    fn equal_when_the_same_values_are_kept_in_the_same_order() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |r: &Remembered<u8>| {
            let mut h = DefaultHasher::new();
            r.hash(&mut h);
            h.finish()
        };
        let mut a = Remembered::new(2);
        let mut b = Remembered::new(2);
        // `a` evicts one more than `b`; what they keep is the same.
        for (id, v) in [("x", 1), ("y", 2), ("z", 3)] {
            a.insert(id.into(), v);
        }
        for (id, v) in [("y", 2), ("z", 3)] {
            b.insert(id.into(), v);
        }
        assert_eq!(a, b);
        assert_eq!(hash(&a), hash(&b));
        b.insert("z".into(), 4);
        assert_ne!(a, b);
        let mut c = Remembered::new(2);
        for (id, v) in [("z", 3), ("y", 2)] {
            c.insert(id.into(), v);
        }
        assert_ne!(a, c, "the order of ages matters");
    }
}
