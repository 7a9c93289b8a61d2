//! Account locks are protocol data: the wait-die rule (an older
//! transaction never waits for a younger one), grants in age order, and the
//! expiry of lock waits (a unilateral abort: nothing was voted yet).

use super::*;

impl Participant {
    /// Grants locks to waiting transactions, oldest first. An account wanted
    /// by an older waiter is reserved for it, so younger ones never overtake
    /// (which would make an older transaction wait for a younger one).
    pub(super) fn grant_waiting(&mut self, now_us: u64, out: &mut Vec<Action>) {
        let mut reserved: BTreeSet<AccountId> = BTreeSet::new();
        let queue: Vec<(u64, TxId)> = self.waiting.iter().cloned().collect();
        for (ts, tx_id) in queue {
            let Some(tx) = self.txs.get(&tx_id) else {
                continue;
            };
            let free = tx.ops.iter().all(|op| {
                let holder = self.locks.get(&op.account);
                (holder.is_none() || holder == Some(&tx_id)) && !reserved.contains(&op.account)
            });
            if !free {
                reserved.extend(tx.ops.iter().map(|op| op.account.clone()));
                continue;
            }
            self.waiting.remove(&(ts, tx_id.clone()));
            let ops = tx.ops.clone();
            for op in &ops {
                self.locks.insert(op.account.clone(), tx_id.clone());
            }
            self.locked(now_us, tx_id, out);
        }
    }

    pub(super) fn unlock(&mut self, tx_id: &TxId, ops: &[Op]) {
        for op in ops {
            if self.locks.get(&op.account) == Some(tx_id) {
                self.locks.remove(&op.account);
            }
        }
    }

    pub(super) fn on_tick(&mut self, now_us: u64, out: &mut Vec<Action>) {
        if let Some(after_us) = self.abort_in_doubt_after_us() {
            self.unsafe_abort_in_doubt(now_us, after_us, out);
        }
        let expired: Vec<(u64, TxId)> = self
            .waiting
            .iter()
            .filter(|(_, id)| matches!(self.txs.get(id).map(|t| &t.phase), Some(Phase::Waiting { deadline_us }) if *deadline_us <= now_us))
            .cloned()
            .collect();
        if expired.is_empty() {
            return;
        }
        for (ts, tx_id) in expired {
            self.waiting.remove(&(ts, tx_id.clone()));
            if let Some(tx) = self.txs.remove(&tx_id) {
                // Not voted yet: a unilateral abort is allowed.
                self.remember(tx_id.clone(), Done::aborted());
                out.push(Action::Send {
                    to: tx.peer,
                    msg: refusal(&tx_id, tx.one_phase, AbortReason::LockConflict),
                });
            }
        }
        self.grant_waiting(now_us, out);
    }

    /// The original demo's bug (a mutant, for the checkers' tests only):
    /// roll back an in-doubt transaction on a timeout, as if a rollback had
    /// arrived.
    pub(super) fn unsafe_abort_in_doubt(
        &mut self,
        now_us: u64,
        after_us: u64,
        out: &mut Vec<Action>,
    ) {
        let due: Vec<TxId> = self.txs.sorted_keys_where(|tx| {
            matches!(tx.phase, Phase::Prepared { since_us, .. } if since_us.saturating_add(after_us) <= now_us)
        });
        for tx_id in due {
            if let Some(tx) = self.txs.remove(&tx_id) {
                self.unlock(&tx_id, &tx.ops);
                self.drop_held_votes(&tx_id);
                self.persist(
                    ParticipantRecord::Aborted {
                        tx_id: tx_id.clone(),
                    },
                    false,
                    out,
                );
                self.remember(tx_id, Done::aborted());
            }
        }
    }

    /// Takes fixes away (see [`crate::protocol::mutants`]); tests of the
    /// checkers only. Volatile: `recover` starts without any.
    #[cfg(feature = "mutants")]
    #[doc(hidden)]
    pub fn set_mutants(&mut self, mutants: crate::protocol::mutants::Mutants) {
        self.mutants = mutants;
    }

    /// The original demo's bug, when a mutant puts it back: how long a
    /// prepared transaction waits before it aborts on its own. Never
    /// otherwise.
    pub(super) fn abort_in_doubt_after_us(&self) -> Option<u64> {
        #[cfg(feature = "mutants")]
        if let Some(after_us) = self.mutants.abort_in_doubt_after_us {
            return Some(after_us);
        }
        None
    }

    /// Whether a prepare's identity (ops, epoch) is checked against what
    /// this node holds or decided under its tx_id: always, but for a mutant.
    pub(super) fn checks_prepare_identity(&self) -> bool {
        #[cfg(feature = "mutants")]
        if self.mutants.prepare_identity_unchecked {
            return false;
        }
        true
    }
}
