//! Nodes coming and going: the recovery query on every connection, each
//! node's in-doubt list answered from the log (stale attempts rolled back),
//! and what a lost connection ends.

use super::*;

impl Coordinator {
    pub(super) fn on_in_doubt(&mut self, node: NodeId, tx_ids: Vec<TxId>, out: &mut Vec<Action>) {
        // The answer to a reconnection's recovery query is always shown; a
        // periodic sweep's answer only when it resolves something (a
        // transaction paused in step mode is reported every second).
        let answers_recovery_query = self.recovery_pending.remove(&node);
        self.unreconciled.remove(&node);
        if tx_ids.is_empty() {
            return;
        }
        let mut resolutions = Vec::new();
        for tx_id in tx_ids.iter().cloned() {
            // This log never decided the id: every two-phase attempt any
            // incarnation ran under it is aborted (presumed abort), the one
            // a watcher last saw start included, which no other event would
            // decide. (A one-phase attempt is its node's to decide; the fold
            // leaves it alone.)
            let presumed = self.active.get(&tx_id).is_none() && self.finished.get(&tx_id).is_none();
            let Some(decision) = self.in_doubt_answer(&node, &tx_id, out) else {
                continue;
            };
            if presumed {
                resolutions.push(Action::Emit(EventKind::Decision {
                    tx_id: tx_id.clone(),
                    decision: Decision::Abort,
                    reason: Some(AbortReason::CoordinatorCrashed),
                }));
            }
            let msg = match decision {
                Decision::Commit => Request::Commit {
                    tx_id: tx_id.clone(),
                },
                Decision::Abort => Request::Rollback {
                    tx_id: tx_id.clone(),
                },
            };
            resolutions.push(Action::Send {
                node: node.clone(),
                msg,
            });
            resolutions.push(Action::Emit(EventKind::Resolved {
                tx_id,
                node: node.clone(),
                decision,
            }));
        }
        if answers_recovery_query || !resolutions.is_empty() {
            out.push(Action::Emit(EventKind::InDoubtReported {
                node: node.clone(),
                tx_ids,
            }));
        }
        out.extend(resolutions);
    }

    /// What `node`, holding `tx_id` prepared, must be told (`None`: the
    /// decision is still being taken; it comes with it).
    ///
    /// A node that is not a leg of the transaction this log knows under
    /// that id, or one that holds it prepared although every leg acked it
    /// (END) or it ran in one phase, holds a stale attempt (one a client
    /// re-used the id for, prepared by an earlier incarnation that never
    /// decided it): that attempt is rolled back. An id this log never
    /// decided is aborted (presumed abort), durably before any client can
    /// be told.
    pub(super) fn in_doubt_answer(
        &mut self,
        node: &NodeId,
        tx_id: &TxId,
        out: &mut Vec<Action>,
    ) -> Option<Decision> {
        if let Some(tx) = self.active.get(tx_id) {
            let leg = tx.legs.iter().any(|l| l.node == *node);
            return match tx.phase {
                _ if !leg || tx.one_phase => Some(Decision::Abort),
                Phase::Committing => Some(Decision::Commit),
                // Step mode's pause after the commit point: the commits go
                // out when it ends, not earlier because a node asked.
                Phase::PausedBeforeCommit
                | Phase::Preparing
                | Phase::PausedBeforeDecision
                | Phase::Deciding { .. }
                | Phase::AskingOnePhaseOutcome => None,
            };
        }
        if self.finished.get(tx_id).is_some() {
            // Committed and acked by every leg, or aborted: either way,
            // what this node holds prepared is not to be applied.
            return Some(Decision::Abort);
        }
        self.presume_aborted(tx_id.clone(), out);
        Some(Decision::Abort)
    }

    pub(super) fn on_node_up(&mut self, node: NodeId, out: &mut Vec<Action>) {
        self.connected.insert(node.clone());
        self.recovery_pending.insert(node.clone());
        out.push(Action::Send {
            node: node.clone(),
            msg: Request::Recover,
        });
        out.push(Action::Emit(EventKind::RecoveryQuery {
            node: node.clone(),
        }));
        let epoch = self.epoch();
        for (tx_id, tx) in self.active.sorted() {
            let msg = match tx.phase {
                Phase::Committing if tx.pending_acks.contains(&node) => Request::Commit {
                    tx_id: tx_id.clone(),
                },
                Phase::AskingOnePhaseOutcome if tx.legs[0].node == node => {
                    one_phase::one_phase_request(tx_id, tx, epoch)
                }
                _ => continue,
            };
            out.push(Action::Send {
                node: node.clone(),
                msg,
            });
        }
    }

    pub(super) fn on_node_down(&mut self, now_us: u64, node: NodeId, out: &mut Vec<Action>) {
        self.connected.remove(&node);
        let waiting_on_node: Vec<TxId> = self.active.sorted_keys_where(|tx| {
            tx.phase == Phase::Preparing
                && tx.legs.iter().any(|l| l.node == node)
                && !tx.votes.contains_key(&node)
        });
        for tx_id in waiting_on_node {
            let Some(tx) = self.active.get_mut(&tx_id) else {
                continue;
            };
            if tx.one_phase {
                // The node decides a one-phase transfer alone and may have
                // committed it before the connection broke: never guess. Ask
                // it again once it is back; its answer says what it did.
                tx.phase = Phase::AskingOnePhaseOutcome;
                self.arm_commit_timers(now_us, &tx_id);
                continue;
            }
            tx.votes.insert(
                node.clone(),
                (VoteView::NoAnswer, Some(AbortReason::NodeUnreachable)),
            );
            self.decide_abort(now_us, &tx_id, AbortReason::NodeUnreachable, out);
        }
    }
}
