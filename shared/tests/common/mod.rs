//! Helpers shared by the test files of `shared` (each test file is its own
//! crate and includes this with `mod common;`).

pub mod folds;

/// splitmix64: a tiny, seedable PRNG, so every run is replayable from its
/// seed with no dependency.
#[allow(dead_code)] // each test crate uses a different subset
pub struct Rng(pub u64);

#[allow(dead_code)] // each test crate uses a different subset
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// True with a probability of `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// A copy of a random item, or None for an empty list.
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.below(items.len() as u64) as usize].clone())
        }
    }

    /// A random item of a list that is never empty.
    pub fn choose<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        assert!(!items.is_empty(), "choose from an empty list");
        &items[self.below(items.len() as u64) as usize]
    }
}

use shared::protocol::record::{CoordinatorRecord, ParticipantRecord};
use shared::wire::Decision;

/// Whether a coordinator's log holds `decision` for `tx_id`: a COMMIT, a
/// FINISHED, a PRESUMED ABORT, or a checkpoint that carries one of them.
/// An answer to a client must be backed by one of these on the disk.
#[allow(dead_code)] // each test crate uses a different subset
pub fn log_holds_decision(records: &[CoordinatorRecord], tx_id: &str, decision: Decision) -> bool {
    records.iter().any(|r| match r {
        CoordinatorRecord::Commit { tx_id: t, .. } => decision == Decision::Commit && t == tx_id,
        CoordinatorRecord::Finished {
            tx_id: t,
            decision: d,
            ..
        } => *d == decision && t == tx_id,
        CoordinatorRecord::PresumedAbort { tx_id: t } => decision == Decision::Abort && t == tx_id,
        CoordinatorRecord::Checkpoint(cp) => {
            let pending =
                decision == Decision::Commit && cp.pending_commits.iter().any(|(t, ..)| t == tx_id);
            let remembered = cp
                .outcomes
                .iter()
                .any(|(t, _, d, _)| t == tx_id && *d == decision);
            pending || remembered
        }
        CoordinatorRecord::End { .. } | CoordinatorRecord::Epoch(_) => false,
    })
}

/// What a participant's log says about one transaction, as of its last
/// record about it.
#[allow(dead_code)] // each test crate uses a different subset
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logged {
    Prepared,
    Committed,
    Aborted,
}

/// What `records` (a participant's durable log) say about `tx_id`. A
/// `ready` vote needs `Prepared` (or `Committed`); a commit `ack` or a
/// one-phase `commit` outcome needs `Committed`.
#[allow(dead_code)] // each test crate uses a different subset
pub fn participant_logged(records: &[ParticipantRecord], tx_id: &str) -> Option<Logged> {
    let mut state = None;
    for r in records {
        match r {
            ParticipantRecord::Prepared { tx_id: t, .. } if t == tx_id => {
                state = state.or(Some(Logged::Prepared))
            }
            ParticipantRecord::Committed { tx_id: t, .. } if t == tx_id => {
                state = Some(Logged::Committed)
            }
            ParticipantRecord::Aborted { tx_id: t } if t == tx_id => state = Some(Logged::Aborted),
            ParticipantRecord::Heuristic {
                tx_id: t, decision, ..
            } if t == tx_id => {
                state = Some(match decision {
                    Decision::Commit => Logged::Committed,
                    Decision::Abort => Logged::Aborted,
                })
            }
            ParticipantRecord::Checkpoint(cp) => {
                state = None;
                if cp.prepared.iter().any(|(t, ..)| t == tx_id) {
                    state = Some(Logged::Prepared);
                }
                match cp.outcomes.iter().find(|(t, ..)| t == tx_id) {
                    Some((_, Decision::Commit, _)) => state = Some(Logged::Committed),
                    Some((_, Decision::Abort, _)) => state = Some(Logged::Aborted),
                    None => {}
                }
            }
            _ => {}
        }
    }
    state
}

/// Whether a participant's message is backed by its durable log (`None`
/// for a message that promises nothing).
#[allow(dead_code)] // each test crate uses a different subset
pub fn reply_is_durable(records: &[ParticipantRecord], msg: &shared::wire::Reply) -> Option<bool> {
    use shared::wire::{Reply, Vote};
    let (tx_id, needs): (&str, &[Logged]) = match msg {
        Reply::Vote {
            tx_id,
            vote: Vote::Ready,
            ..
        } => (tx_id, &[Logged::Prepared, Logged::Committed]),
        Reply::Ack {
            tx_id,
            decision: Decision::Commit,
        }
        | Reply::Outcome {
            tx_id,
            decision: Decision::Commit,
            ..
        } => (tx_id, &[Logged::Committed]),
        _ => return None,
    };
    let state = participant_logged(records, tx_id);
    Some(state.is_some_and(|s| needs.contains(&s)))
}
