//! The coordinator's decision arrives: `commit` applies the operations
//! (answered `applied` at once and `ack` once COMMITTED is durable),
//! `rollback` releases them; duplicates are answered from what happened.

use super::*;

impl Participant {
    pub(super) fn on_commit(
        &mut self,
        now_us: u64,
        from: PeerId,
        tx_id: TxId,
        out: &mut Vec<Action>,
    ) {
        if self.answer_heuristic(from, &tx_id, Decision::Commit, out) {
            return;
        }
        if let Some(done) = self.outcomes.get(&tx_id).copied() {
            // Duplicate, or a commit for a transaction this node aborted:
            // the ack carries what actually happened here.
            let decision = done.decision;
            self.send_after_latest(from, Reply::Ack { tx_id, decision }, out);
            return;
        }
        let prepared = matches!(
            self.txs.get(&tx_id).map(|t| &t.phase),
            Some(Phase::Prepared { .. })
        );
        if !prepared {
            let message = if self.txs.contains_key(&tx_id) {
                format!("commit for {tx_id} before it was prepared here")
            } else {
                format!("commit for {tx_id}, which this node never prepared")
            };
            out.push(Action::Send {
                to: from,
                msg: Reply::Error { message },
            });
            return;
        }
        let Some(tx) = self.txs.remove(&tx_id) else {
            return;
        };
        self.unlock(&tx_id, &tx.ops);
        if let Err(e) = self.apply(&tx_id, &tx.ops) {
            // A prepared transaction holds its locks and was checked: only a
            // bug gets here.
            panic!("applying prepared transaction {tx_id} failed: {e}");
        }
        self.remember(tx_id.clone(), Done::committed(&tx.ops));
        self.drop_held_votes(&tx_id);
        let seq = self.persist_awaited(
            ParticipantRecord::Committed {
                tx_id: tx_id.clone(),
                ops: tx.ops,
            },
            out,
        );
        self.crash_when_durable_if_armed(ParticipantCrashPoint::AfterCommitApplied, seq, out);
        // Applied now (reads see it, its locks are free): say so at once,
        // so the client's answer does not wait for this node's log force;
        // the ack (which lets the coordinator forget it) waits for it.
        out.push(Action::Send {
            to: from,
            msg: Reply::Applied {
                tx_id: tx_id.clone(),
            },
        });
        let ack = Reply::Ack {
            tx_id,
            decision: Decision::Commit,
        };
        self.send_when_durable(seq, Action::Send { to: from, msg: ack }, out);
        self.grant_waiting(now_us, out);
    }

    pub(super) fn on_rollback(
        &mut self,
        now_us: u64,
        from: PeerId,
        tx_id: TxId,
        out: &mut Vec<Action>,
    ) {
        if self.answer_heuristic(from, &tx_id, Decision::Abort, out) {
            return;
        }
        if let Some(done) = self.outcomes.get(&tx_id).copied() {
            let decision = done.decision;
            self.send_after_latest(from, Reply::Ack { tx_id, decision }, out);
            return;
        }
        // Never seen: it is still remembered below, so a late prepare votes abort.
        if let Some(tx) = self.txs.remove(&tx_id) {
            self.waiting.remove(&(tx.ts_us, tx_id.clone()));
            self.unlock(&tx_id, &tx.ops);
            self.drop_held_votes(&tx_id);
            if matches!(tx.phase, Phase::Prepared { .. }) {
                // Presumed abort: not forced. If it is lost in a crash,
                // the transaction comes back in doubt and the coordinator
                // (having no commit record) says abort again.
                self.persist(
                    ParticipantRecord::Aborted {
                        tx_id: tx_id.clone(),
                    },
                    false,
                    out,
                );
            }
        }
        self.remember(tx_id.clone(), Done::aborted());
        out.push(Action::Send {
            to: from,
            msg: Reply::Ack {
                tx_id,
                decision: Decision::Abort,
            },
        });
        self.grant_waiting(now_us, out);
    }

    pub(super) fn apply(&mut self, tx_id: &TxId, ops: &[Op]) -> Result<(), String> {
        for op in ops {
            let kept = ledger_entries_kept_per_account(self.balances.len());
            let balance = self
                .balances
                .get_mut(&op.account)
                .ok_or_else(|| format!("unknown account {}", op.account))?;
            let after = balance
                .checked_add(op.delta_cents)
                .ok_or("balance overflow")?;
            if after < 0 {
                return Err(format!(
                    "account {} would go negative ({after} cents)",
                    op.account
                ));
            }
            *balance = after;
            // Every account has a ledger from the start; no key is copied.
            let ledger = match self.ledgers.get_mut(&op.account) {
                Some(ledger) => ledger,
                None => self.ledgers.entry(op.account.clone()).or_default(),
            };
            let ledger = Arc::make_mut(ledger);
            ledger.push_back(LedgerEntry {
                tx_id: tx_id.clone(),
                delta_cents: op.delta_cents,
                balance_cents: after,
            });
            while ledger.len() > kept {
                ledger.pop_front();
            }
        }
        Ok(())
    }
}
