//! Heuristic decisions: an operator forces the outcome of an in-doubt
//! transaction (forced to the log, kept, reported), and a later decision of
//! the coordinator that disagrees is named as the mismatch it is.

use super::*;

/// A heuristic decision: what was forced, and what the coordinator said
/// about it since (volatile).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Heuristic {
    pub(super) decision: Decision,
    pub(super) ops: Vec<Op>,
    pub(super) coordinator_decision: Option<Decision>,
}

impl Participant {
    /// A `commit` (`Commit`) or `rollback` (`Abort`) for a transaction
    /// decided heuristically here: ack if it agrees, name the mismatch if
    /// not. Returns false if `tx_id` has no heuristic decision.
    pub(super) fn answer_heuristic(
        &mut self,
        from: PeerId,
        tx_id: &TxId,
        coordinator: Decision,
        out: &mut Vec<Action>,
    ) -> bool {
        let node = self.config.node.clone();
        let Some(h) = self.heuristics.get_mut(tx_id) else {
            return false;
        };
        h.coordinator_decision = Some(coordinator);
        let forced = h.decision;
        if forced == coordinator {
            self.send_after_latest(
                from,
                Reply::Ack {
                    tx_id: tx_id.clone(),
                    decision: forced,
                },
                out,
            );
        } else {
            let effect = match forced {
                Decision::Commit => "its operations were applied here",
                Decision::Abort => "its operations were not applied here",
            };
            let message = format!(
                "heuristic mismatch: {tx_id} was heuristically {} on node {node} by an operator, but the coordinator decided {}; \
                 {effect}, so the transaction is not atomic",
                decision_word(forced),
                decision_name(coordinator),
            );
            out.push(Action::Send {
                to: from,
                msg: Reply::Error { message },
            });
        }
        true
    }

    /// An operator forces the outcome of an in-doubt transaction.
    pub(super) fn on_heuristic(
        &mut self,
        now_us: u64,
        from: PeerId,
        tx_id: TxId,
        decision: Decision,
        out: &mut Vec<Action>,
    ) {
        match self.check_heuristic(&tx_id, decision) {
            Err(message) => out.push(Action::Send {
                to: from,
                msg: Reply::Error { message },
            }),
            Ok(true) => self.send_after_latest(from, Reply::Ack { tx_id, decision }, out),
            Ok(false) => {
                let Some(tx) = self.txs.remove(&tx_id) else {
                    return;
                };
                self.unlock(&tx_id, &tx.ops);
                if decision == Decision::Commit {
                    if let Err(e) = self.apply(&tx_id, &tx.ops) {
                        // Prepared: locked and checked. Only a bug gets here.
                        panic!("applying prepared transaction {tx_id} heuristically failed: {e}");
                    }
                }
                self.remember(tx_id.clone(), done_of(decision, &tx.ops));
                self.drop_held_votes(&tx_id);
                self.keep_heuristic(tx_id.clone(), decision, tx.ops.clone());
                let record = ParticipantRecord::Heuristic {
                    tx_id: tx_id.clone(),
                    decision,
                    ops: tx.ops,
                };
                let seq = self.persist(record, true, out);
                self.send_when_durable(
                    seq,
                    Action::Send {
                        to: from,
                        msg: Reply::Ack { tx_id, decision },
                    },
                    out,
                );
                self.grant_waiting(now_us, out);
            }
        }
    }

    /// Ok(true): already forced the same way (answer again); Ok(false):
    /// in doubt here, may be forced now; Err: refused, with why.
    pub(super) fn check_heuristic(&self, tx_id: &TxId, decision: Decision) -> Result<bool, String> {
        let node = &self.config.node;
        if !self.config.faults_allowed {
            return Err(format!(
                "heuristic decisions are disabled on node {node} (start it with --allow-faults): they can break atomicity"
            ));
        }
        if let Some(h) = self.heuristics.get(tx_id) {
            if h.decision == decision {
                return Ok(true);
            }
            return Err(format!(
                "{tx_id} was already heuristically {} on node {node}",
                decision_word(h.decision)
            ));
        }
        if let Some(done) = self.outcomes.get(tx_id) {
            return Err(format!(
                "{tx_id} is not in doubt on node {node}: it was already {} by the protocol; nothing to force",
                decision_word(done.decision)
            ));
        }
        match self.txs.get(tx_id).map(|tx| &tx.phase) {
            Some(Phase::Prepared { .. }) => {}
            Some(Phase::Waiting { .. }) => {
                return Err(format!(
                    "{tx_id} is not prepared on node {node} yet (it waits for locks and may still abort on its own)"
                ))
            }
            None => {
                return Err(format!(
                    "{tx_id} is not in doubt on node {node}: only a prepared transaction waiting for its decision can be forced"
                ))
            }
        }
        if self.heuristics.len() >= PARTICIPANT_HEURISTICS_KEPT_MAX {
            return Err(format!("node {node} already keeps {PARTICIPANT_HEURISTICS_KEPT_MAX} heuristic decisions; refusing more"));
        }
        Ok(false)
    }

    pub(super) fn keep_heuristic(&mut self, tx_id: TxId, decision: Decision, ops: Vec<Op>) {
        let heuristic = Heuristic {
            decision,
            ops,
            coordinator_decision: None,
        };
        if self.heuristics.insert(tx_id.clone(), heuristic).is_none() {
            self.heuristic_order.push(tx_id);
        }
    }
}

/// "committed" / "aborted".
fn decision_word(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "committed",
        Decision::Abort => "aborted",
    }
}

/// "commit" / "abort".
fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "commit",
        Decision::Abort => "abort",
    }
}
