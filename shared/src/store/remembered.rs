//! Remembered outcomes: the newest `kept_max` values by `tx_id`, oldest
//! first, each found by id in one hash lookup.
//!
//! Both machines keep hundreds of thousands of outcomes (so that a late or
//! duplicate message gets the first answer) and look one up or add one on
//! every transaction: one hash and one comparison each. The age queue keeps
//! the order that eviction and checkpoints need, so nothing ever iterates
//! the index.
//!
//! The index holds positions, not ids: each id is stored once (in the age
//! queue), and each slot keeps its id's hash, so growing or cleaning the
//! table never reads an id again. The processes size it for `kept_max` at
//! start ([`Remembered::reserve_all`]), twice over, so it does not grow
//! while they run.
//!
//! Equality and hashing look at the ages and values only (the index is
//! derived from them), so a machine state stays `Eq + Hash` for the model
//! checker and two machines that remember the same outcomes in the same
//! order are equal however many older ones each of them evicted.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use hashbrown::HashTable;

use super::hasher::HashSeed;
use crate::wire::TxId;

/// Values per chunk of the age queue. A list of chunks, not one ring
/// buffer: a buffer that grows by doubling copies everything it holds at
/// once, on the protocol's thread; a new chunk costs the same small
/// allocation every time.
const CHUNK: u64 = crate::limits::REMEMBERED_CHUNK_VALUES as u64;

type Chunk<V> = Arc<VecDeque<(TxId, V)>>;

/// An index entry: a value's position and its id's hash.
#[derive(Debug, Clone, Copy)]
struct Slot {
    at: u64,
    hash: u64,
}

#[derive(Debug, Clone)]
pub struct Remembered<V> {
    /// The values oldest first; `chunks[0]` holds the positions from `base`
    /// to the end of its chunk (see [`CHUNK`]), every later one a whole
    /// chunk's worth (the last one up to the newest).
    ///
    /// Chunks are shared with [snapshots](Remembered::snapshot) (and
    /// clones), and copied on write: a snapshot of a million values costs a
    /// few hundred reference counts, and the first change after it copies
    /// at most the chunks it touches (the newest, the oldest, or the one a
    /// replaced value is in).
    chunks: VecDeque<Chunk<V>>,
    /// Where each value is, as an absolute position (see `base`), with the
    /// hash of its id.
    index: HashTable<Slot>,
    /// Seeded by the driver (ids come from clients: no crafted collisions).
    hasher: HashSeed,
    /// The absolute position of the oldest value; evicting it moves this
    /// up by one and leaves every other position as it was.
    base: u64,
    len: usize,
    kept_max: usize,
}

impl<V: Clone> Remembered<V> {
    /// Keeps at most `kept_max` values (at least one), hashing ids with
    /// `seed`.
    pub fn new(kept_max: usize, seed: HashSeed) -> Remembered<V> {
        Remembered {
            chunks: VecDeque::new(),
            index: HashTable::new(),
            hasher: seed,
            base: 0,
            len: 0,
            kept_max: kept_max.max(1),
        }
    }

    /// Makes room in the index for `kept_max` ids at once, so that it never
    /// grows while the machine runs (growing re-hashes everything in one go,
    /// a stall of every transaction in flight). The processes call this once
    /// at start; machines cloned by the thousand (the model checker's) do
    /// not.
    ///
    /// Room for twice `kept_max`: an index that evicts as it inserts leaves
    /// some slots marked deleted, and a table without free slots left must
    /// be rebuilt; at most half full it rarely leaves any, and a rebuild
    /// (should one come) re-hashes nothing (the slots keep their hashes).
    /// 16 bytes a slot: 64 MiB for the coordinator's million.
    pub fn reserve_all(&mut self) {
        let room = self.kept_max.saturating_mul(2);
        self.index
            .reserve(room.saturating_sub(self.index.len()), |slot| slot.hash);
    }

    /// How many ids the index holds before it has to grow.
    pub fn index_capacity(&self) -> usize {
        self.index.capacity()
    }

    /// The chunk and the offset in it of absolute position `at`.
    fn locate(&self, at: u64) -> Option<(usize, usize)> {
        if at < self.base || at >= self.base + self.len as u64 {
            return None;
        }
        let chunk = usize::try_from(at / CHUNK - self.base / CHUNK).ok()?;
        let first = if chunk == 0 { self.base % CHUNK } else { 0 };
        Some((chunk, usize::try_from(at % CHUNK - first).ok()?))
    }

    fn entry_at(&self, at: u64) -> Option<&(TxId, V)> {
        let (chunk, offset) = self.locate(at)?;
        self.chunks.get(chunk)?.get(offset)
    }

    /// The position of `tx_id`'s value.
    fn position(&self, tx_id: &str, hash: u64) -> Option<u64> {
        self.index
            .find(hash, |slot| {
                slot.hash == hash && self.entry_at(slot.at).is_some_and(|(id, _)| id == tx_id)
            })
            .map(|slot| slot.at)
    }

    pub fn get(&self, tx_id: &str) -> Option<&V> {
        let at = self.position(tx_id, self.hasher.hash_one(tx_id))?;
        self.entry_at(at).map(|(_, v)| v)
    }

    pub fn contains_key(&self, tx_id: &str) -> bool {
        self.position(tx_id, self.hasher.hash_one(tx_id)).is_some()
    }

    /// Remembers `value` for `tx_id`, evicting the oldest beyond the limit.
    /// An id remembered already keeps its age and gets the new value; the
    /// old one is returned.
    pub fn insert(&mut self, tx_id: TxId, value: V) -> Option<V> {
        let hash = self.hasher.hash_one(tx_id.as_str());
        if let Some(at) = self.position(&tx_id, hash) {
            if let Some((chunk, offset)) = self.locate(at) {
                if let Some(entry) = self
                    .chunks
                    .get_mut(chunk)
                    .and_then(|c| Arc::make_mut(c).get_mut(offset))
                {
                    return Some(std::mem::replace(&mut entry.1, value));
                }
            }
        }
        let at = self.base + self.len as u64;
        if at.is_multiple_of(CHUNK) || self.chunks.is_empty() {
            self.chunks
                .push_back(Arc::new(VecDeque::with_capacity(CHUNK as usize)));
        }
        self.index
            .insert_unique(hash, Slot { at, hash }, |slot| slot.hash);
        if let Some(last) = self.chunks.back_mut() {
            Arc::make_mut(last).push_back((tx_id, value));
        }
        self.len += 1;
        while self.len > self.kept_max {
            self.evict_oldest();
        }
        None
    }

    fn evict_oldest(&mut self) {
        let Some(first) = self.chunks.front_mut() else {
            return;
        };
        if let Some((old, _)) = Arc::make_mut(first).pop_front() {
            let (hash, at) = (self.hasher.hash_one(old.as_str()), self.base);
            if let Ok(slot) = self.index.find_entry(hash, |slot| slot.at == at) {
                slot.remove();
            }
            self.len -= 1;
            self.base += 1;
        }
        if first.is_empty() {
            self.chunks.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.index.clear();
        self.base = 0;
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn oldest_first(&self) -> impl Iterator<Item = (&TxId, &V)> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .map(|(id, v)| (id, v))
    }

    /// What is remembered now, kept as it is whatever changes after: cheap
    /// to take (see `chunks`), and `Send`, so a checkpoint can be encoded
    /// from it on another thread while this goes on changing.
    pub fn snapshot(&self) -> RememberedSnapshot<V> {
        RememberedSnapshot {
            chunks: self.chunks.iter().cloned().collect(),
        }
    }
}

/// See [`Remembered::snapshot`].
#[derive(Debug, Clone)]
pub struct RememberedSnapshot<V> {
    chunks: Vec<Chunk<V>>,
}

impl<V> RememberedSnapshot<V> {
    pub fn oldest_first(&self) -> impl Iterator<Item = (&TxId, &V)> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .map(|(id, v)| (id, v))
    }

    /// [`oldest_first`](Self::oldest_first) collected into a `Vec` sized
    /// once: the iterator cannot tell its length, and collecting hundreds
    /// of thousands of entries by doubling copied megabytes into fresh pages
    /// several times over.
    pub fn collect_oldest_first<'a, T>(&'a self, f: impl FnMut((&'a TxId, &'a V)) -> T) -> Vec<T> {
        let mut out = Vec::with_capacity(self.chunks.iter().map(|c| c.len()).sum());
        out.extend(self.oldest_first().map(f));
        out
    }
}

impl<V: PartialEq + Clone> PartialEq for Remembered<V> {
    fn eq(&self, other: &Self) -> bool {
        self.kept_max == other.kept_max
            && self.len == other.len
            && self.oldest_first().eq(other.oldest_first())
    }
}

impl<V: Eq + Clone> Eq for Remembered<V> {}

impl<V: Hash + Clone> Hash for Remembered<V> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kept_max.hash(state);
        self.len.hash(state);
        for entry in self.oldest_first() {
            entry.hash(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_in_age_order_and_finds_each_by_id() {
        // Within one chunk, across chunks, and ending mid-chunk.
        // Evicting a few, and evicting several whole chunks.
        for kept in [1_000, CHUNK as usize * 3, CHUNK as usize * 2 + 17] {
            for extra in [10, kept * 2 + 5] {
                keeps_the_newest(kept, extra);
            }
        }
    }

    fn keeps_the_newest(kept: usize, extra: usize) {
        let total = kept + extra;
        let mut r = Remembered::new(kept, HashSeed::default());
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
        assert!(
            r.chunks.len() <= kept / CHUNK as usize + 2,
            "evicted chunks are dropped"
        );

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

    /// A snapshot keeps what was remembered when it was taken, through
    /// inserts, replacements in place, evictions and a clear after it.
    #[test]
    fn a_reserved_index_never_grows() {
        let kept = CHUNK as usize * 3 + 7;
        let mut r = Remembered::new(kept, HashSeed::default());
        r.insert("before".to_string(), -1);
        r.reserve_all();
        // The table's capacity is its ids plus its never-used free slots:
        // an eviction that leaves a deleted mark uses one up for good, and
        // once none are left the table is rebuilt (grown, or cleaned in
        // place), which must not happen. A rebuild would also show as a
        // jump; one insert and one eviction move it by one at most.
        let mut capacity = r.index_capacity();
        assert!(capacity >= 2 * kept, "{capacity} < 2 x {kept}");
        let mut least_room = usize::MAX;
        for i in 0..kept as i64 * 20 {
            r.insert(format!("t{i}"), i);
            let now = r.index_capacity();
            assert!(
                now <= capacity + 1,
                "rebuilt at insert {i}: {capacity} -> {now}"
            );
            capacity = now;
            least_room = least_room.min(capacity - r.len());
        }
        // Twenty times over, and over half the room is still there.
        assert!(
            least_room > kept / 2,
            "free slots left: {least_room} of {kept}"
        );
        assert_eq!(r.len(), kept);
        let unreserved = Remembered::<i64>::new(kept, HashSeed::default());
        assert!(
            unreserved.index_capacity() < kept,
            "only reserve_all reserves"
        );
    }

    #[test]
    fn snapshots_do_not_change_with_what_is_remembered() {
        let kept = CHUNK as usize * 2 + 5;
        let mut r = Remembered::new(kept, HashSeed::default());
        for i in 0..kept as i64 + 3 {
            r.insert(format!("t{i}"), i);
        }
        let before: Vec<(String, i64)> = r.oldest_first().map(|(k, v)| (k.clone(), *v)).collect();
        let snapshot = r.snapshot();
        // Change every kind of chunk: the newest (inserts), the oldest
        // (evictions), one in the middle (a replacement in place).
        for i in 0..10 {
            r.insert(format!("new{i}"), -i);
        }
        let middle = before[CHUNK as usize].0.clone();
        assert!(r.insert(middle.clone(), 777).is_some());
        let seen: Vec<(String, i64)> = snapshot
            .oldest_first()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        assert_eq!(seen, before);
        assert_eq!(r.get(&middle), Some(&777));
        assert_eq!(r.get("new9"), Some(&-9));
        assert_eq!(r.len(), kept);
        let moved = std::thread::spawn(move || snapshot.oldest_first().count())
            .join()
            .expect("no panic");
        assert_eq!(moved, before.len());
        r.clear();
        assert!(r.is_empty());
    }

    #[test]
    fn equal_when_the_same_values_are_kept_in_the_same_order() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |r: &Remembered<u8>| {
            let mut h = DefaultHasher::new();
            r.hash(&mut h);
            h.finish()
        };
        let mut a = Remembered::new(2, HashSeed::default());
        let mut b = Remembered::new(2, HashSeed::default());
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
        let mut c = Remembered::new(2, HashSeed::default());
        for (id, v) in [("z", 3), ("y", 2)] {
            c.insert(id.into(), v);
        }
        assert_ne!(a, c, "the order of ages matters");
    }
}
