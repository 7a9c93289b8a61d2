//! The hasher of every hash map in the machines, seeded by the driver: the
//! machines have no randomness of their own, and ids that clients choose
//! cannot be picked to collide unless the seed is known (SipHash-1-3, what
//! std's `HashMap` uses, with keys from the driver).

use std::hash::BuildHasher;

use siphasher::sip::SipHasher13;

/// The keys of the machines' hash maps: random in the processes (the
/// drivers draw them), fixed in the simulation and the model checker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct HashSeed {
    k0: u64,
    k1: u64,
}

impl HashSeed {
    pub const fn new(k0: u64, k1: u64) -> HashSeed {
        HashSeed { k0, k1 }
    }
}

impl BuildHasher for HashSeed {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_hashes_alike_and_another_does_not() {
        let a = HashSeed::new(1, 2);
        assert_eq!(a.hash_one("tx-1"), HashSeed::new(1, 2).hash_one("tx-1"));
        assert_ne!(a.hash_one("tx-1"), HashSeed::new(3, 4).hash_one("tx-1"));
        assert_ne!(a.hash_one("tx-1"), a.hash_one("tx-2"));
    }
}
