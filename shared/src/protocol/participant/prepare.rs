//! A `prepare` (or one-phase commit): checked against what the node holds
//! or decided under that id, validated, queued for its locks (wait-die),
//! then funds checked and PREPARED forced before the `ready` vote.

use super::*;

/// A `prepare` or `commit_one_phase` as it arrived.
pub(super) struct Attempt {
    pub(super) tx_id: TxId,
    pub(super) ts_us: u64,
    pub(super) epoch: Epoch,
    pub(super) ops: Vec<Op>,
    pub(super) one_phase: bool,
}

impl Participant {
    pub(super) fn on_prepare(
        &mut self,
        now_us: u64,
        from: PeerId,
        attempt: Attempt,
        out: &mut Vec<Action>,
    ) {
        let Attempt {
            tx_id,
            ts_us: ts,
            epoch,
            ops,
            one_phase,
        } = attempt;
        if self.coordinators.get(&from) != Some(&epoch) {
            // A prepare speaks for its own connection's coordinator only.
            let msg = refusal(&tx_id, one_phase, AbortReason::ProtocolError);
            out.push(Action::Send { to: from, msg });
            return;
        }
        if let Some(decision) = self.decided_for(&tx_id, &ops) {
            // Decided before, for these same operations: answer the same way.
            let msg = match (one_phase, decision) {
                (true, d) => Reply::Outcome {
                    tx_id,
                    decision: d,
                    reason: reason_for(d),
                },
                (false, Decision::Commit) => Reply::Vote {
                    tx_id,
                    vote: Vote::Ready,
                    reason: None,
                },
                (false, Decision::Abort) => Reply::Vote {
                    tx_id,
                    vote: Vote::Abort,
                    reason: Some(AbortReason::AlreadyAborted),
                },
            };
            self.send_after_latest(from, msg, out);
            return;
        }
        if self.outcomes.contains_key(&tx_id) || self.heuristics.contains_key(&tx_id) {
            // Committed here for other operations: this tx_id is taken.
            let msg = refusal(&tx_id, one_phase, AbortReason::ProtocolError);
            out.push(Action::Send { to: from, msg });
            return;
        }
        let checks_identity = self.checks_prepare_identity();
        if let Some(tx) = self.txs.get_mut(&tx_id) {
            let same = tx.ops == ops && tx.epoch == epoch && tx.one_phase == one_phase;
            if !same && checks_identity {
                // Held for another attempt (other operations, or an older
                // coordinator epoch): that state never stands in for this.
                let msg = refusal(&tx_id, one_phase, AbortReason::ProtocolError);
                out.push(Action::Send { to: from, msg });
                return;
            }
            tx.peer = from;
            if let Phase::Prepared { seq, .. } = tx.phase {
                self.vote_ready_when_durable(seq, from, tx_id, out);
            }
            return; // still waiting for locks: the vote comes when they are granted
        }
        if let Err(reason) = self.validate(&ops) {
            self.remember(tx_id.clone(), Done::aborted());
            out.push(Action::Send {
                to: from,
                msg: refusal(&tx_id, one_phase, reason),
            });
            return;
        }
        if self.txs.len() >= PARTICIPANT_TX_ACTIVE_MAX {
            // Not remembered: the same tx may succeed when retried later.
            out.push(Action::Send {
                to: from,
                msg: refusal(&tx_id, one_phase, AbortReason::Overloaded),
            });
            return;
        }
        let younger_holds =
            ops.iter().any(
                |op| match self.locks.get(&op.account).and_then(|h| self.txs.get(h)) {
                    Some(holder) => holder.ts_us > ts,
                    None => false,
                },
            );
        if younger_holds {
            // Wait-die: an older transaction never waits for a younger one.
            self.remember(tx_id.clone(), Done::aborted());
            out.push(Action::Send {
                to: from,
                msg: refusal(&tx_id, one_phase, AbortReason::LockConflict),
            });
            return;
        }
        let deadline_us = now_us.saturating_add(self.config.lock_wait_us);
        let tx = Tx {
            ts_us: ts,
            epoch,
            ops,
            peer: from,
            one_phase,
            phase: Phase::Waiting { deadline_us },
        };
        self.txs.insert(tx_id.clone(), tx);
        self.waiting.insert((ts, tx_id));
        self.grant_waiting(now_us, out);
    }

    /// The decision taken here for `tx_id`, if it was taken for these same
    /// `ops` (an abort, whatever it was for, stays an abort).
    pub(super) fn decided_for(&self, tx_id: &str, ops: &[Op]) -> Option<Decision> {
        if let Some(h) = self.heuristics.get(tx_id) {
            let same = h.decision == Decision::Abort || h.ops == ops;
            return same.then_some(h.decision);
        }
        let done = self.outcomes.get(tx_id)?;
        let same = done.decision == Decision::Abort
            || digest_matches(done.digest, ops)
            || !self.checks_prepare_identity();
        same.then_some(done.decision)
    }

    pub(super) fn validate(&self, ops: &[Op]) -> Result<(), AbortReason> {
        let bad_delta = |op: &Op| {
            op.delta_cents == 0 || op.delta_cents.unsigned_abs() > AMOUNT_CENTS_MAX as u64
        };
        if ops.is_empty() || ops.len() > OPS_PER_TX_MAX || ops.iter().any(bad_delta) {
            return Err(AbortReason::InvalidRequest);
        }
        if ops
            .iter()
            .any(|op| !self.balances.contains_key(&op.account))
        {
            return Err(AbortReason::UnknownAccount);
        }
        Ok(())
    }

    /// All locks of `tx_id` are held: check funds, then prepare (or, for
    /// one-phase, apply at once).
    pub(super) fn locked(&mut self, now_us: u64, tx_id: TxId, out: &mut Vec<Action>) {
        let Some(tx) = self.txs.get(&tx_id) else {
            return;
        };
        let (peer, one_phase, ops, ts, epoch) =
            (tx.peer, tx.one_phase, tx.ops.clone(), tx.ts_us, tx.epoch);
        if let Err(reason) = self.check_funds(&ops) {
            self.txs.remove(&tx_id);
            self.unlock(&tx_id, &ops);
            self.remember(tx_id.clone(), Done::aborted());
            out.push(Action::Send {
                to: peer,
                msg: refusal(&tx_id, one_phase, reason),
            });
            // The released locks may let others in; the caller's loop (or the
            // next release) grants them.
            return;
        }
        if one_phase {
            self.txs.remove(&tx_id);
            self.unlock(&tx_id, &ops);
            if let Err(e) = self.apply(&tx_id, &ops) {
                // check_funds just checked this: a failure is a bug.
                panic!("applying a checked one-phase transaction failed: {e}");
            }
            self.remember(tx_id.clone(), Done::committed(&ops));
            let seq = self.persist(
                ParticipantRecord::Committed {
                    tx_id: tx_id.clone(),
                    ops,
                },
                true,
                out,
            );
            let msg = Reply::Outcome {
                tx_id,
                decision: Decision::Commit,
                reason: None,
            };
            self.send_when_durable(seq, Action::Send { to: peer, msg }, out);
            return;
        }
        let record = ParticipantRecord::Prepared {
            tx_id: tx_id.clone(),
            ts_us: ts,
            epoch,
            ops,
        };
        let seq = self.persist(record, true, out);
        if let Some(tx) = self.txs.get_mut(&tx_id) {
            tx.phase = Phase::Prepared {
                seq,
                since_us: now_us,
            };
        }
        self.crash_when_durable_if_armed(ParticipantCrashPoint::AfterPrepareLogged, seq, out);
        self.vote_ready_when_durable(seq, peer, tx_id, out);
    }

    /// Checks the balance after every op, in order, exactly as `apply` will
    /// apply them: never negative, never overflowing. Once this passes with
    /// the locks held, applying cannot fail.
    pub(super) fn check_funds(&self, ops: &[Op]) -> Result<(), AbortReason> {
        let mut after: BTreeMap<&AccountId, i64> = BTreeMap::new();
        for op in ops {
            let balance = after
                .entry(&op.account)
                .or_insert_with(|| self.balances.get(&op.account).copied().unwrap_or(0));
            *balance = balance
                .checked_add(op.delta_cents)
                .ok_or(AbortReason::InvalidRequest)?;
            if *balance < 0 {
                return Err(AbortReason::InsufficientFunds);
            }
        }
        Ok(())
    }
}
