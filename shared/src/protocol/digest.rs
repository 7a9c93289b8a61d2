//! What a transaction does, in eight bytes: a node remembers the digest of
//! every commit it applied, so that a `prepare` or a one-phase commit that
//! re-uses the `tx_id` for other operations is refused instead of being
//! answered with the old outcome.

use sha2::{Digest, Sha256};

use crate::wire::Op;

/// The first eight bytes of SHA-256 over the operations; 0 means "not
/// known" (outcomes written before digests existed, and aborts, whose
/// content never matters: an abort is refused whatever was asked).
pub type OpsDigest = u64;

/// The digest of `ops`, in order. Never 0.
pub fn ops_digest(ops: &[Op]) -> OpsDigest {
    let mut hash = Sha256::new();
    hash.update(b"tpc-ops-v1");
    hash.update((ops.len() as u64).to_le_bytes());
    for op in ops {
        hash.update((op.account.len() as u64).to_le_bytes());
        hash.update(op.account.as_bytes());
        hash.update(op.delta_cents.to_le_bytes());
    }
    let bytes = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(first).max(1)
}

/// Whether a remembered digest allows an answer about `ops` (an unknown
/// one, 0, always does: it predates digests).
pub fn digest_matches(remembered: OpsDigest, ops: &[Op]) -> bool {
    remembered == 0 || remembered == ops_digest(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(account: &str, delta_cents: i64) -> Op {
        Op {
            account: account.into(),
            delta_cents,
        }
    }

    #[test]
    fn the_digest_tells_apart_accounts_amounts_order_and_boundaries() {
        let base = ops_digest(&[op("A", -100)]);
        assert_eq!(base, ops_digest(&[op("A", -100)]));
        for other in [
            vec![op("A", -900)],
            vec![op("B", -100)],
            vec![op("A", -100), op("B", 100)],
            vec![],
        ] {
            assert_ne!(base, ops_digest(&other), "{other:?}");
        }
        // Order matters, and the account/amount boundary cannot be shifted.
        assert_ne!(
            ops_digest(&[op("A", 1), op("B", 2)]),
            ops_digest(&[op("B", 2), op("A", 1)])
        );
        assert_ne!(ops_digest(&[op("AB", 1)]), ops_digest(&[op("A", 1)]));
        // Pinned: nodes keep these in their logs.
        assert_eq!(ops_digest(&[op("A", -100)]), 13_249_449_275_840_078_130);
    }

    #[test]
    fn an_unknown_digest_matches_anything_and_a_known_one_only_its_ops() {
        assert!(digest_matches(0, &[op("A", 1)]));
        let d = ops_digest(&[op("A", 1)]);
        assert!(digest_matches(d, &[op("A", 1)]));
        assert!(!digest_matches(d, &[op("A", 2)]));
    }
}
