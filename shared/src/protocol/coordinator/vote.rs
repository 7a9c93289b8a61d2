//! Phase 1's votes: each node's, and the timeout that ends the wait for
//! them.

use super::*;

impl Coordinator {
    pub(super) fn on_vote(
        &mut self,
        now_us: u64,
        node: NodeId,
        tx_id: TxId,
        vote: Vote,
        reason: Option<AbortReason>,
        out: &mut Vec<Action>,
    ) {
        let Some(tx) = self.active.get_mut(&tx_id) else {
            return;
        };
        let is_leg = tx.legs.iter().any(|l| l.node == node);
        if tx.one_phase || !is_leg || tx.phase != Phase::Preparing || tx.votes.contains_key(&node) {
            return; // late or duplicate: the decision (if any) stands
        }
        let view = match vote {
            Vote::Ready => VoteView::Ready,
            Vote::Abort => VoteView::Abort,
        };
        tx.votes.insert(node.clone(), (view, reason));
        out.push(Action::Emit(EventKind::Vote {
            tx_id: tx_id.clone(),
            node,
            vote: view,
            reason,
        }));
        if vote == Vote::Abort {
            self.decide_abort(
                now_us,
                &tx_id,
                reason.unwrap_or(AbortReason::LockConflict),
                out,
            );
            return;
        }
        let all_ready = tx
            .legs
            .iter()
            .all(|l| matches!(tx.votes.get(&l.node), Some((VoteView::Ready, _))));
        if !all_ready {
            return;
        }
        if self.take_crash(CrashPoint::BeforeDecision, out) {
            return;
        }
        if self.faults.phase_pause_us > 0 {
            if let Some(tx) = self.active.get_mut(&tx_id) {
                tx.phase = Phase::PausedBeforeDecision;
            }
            self.arm(
                now_us.saturating_add(self.faults.phase_pause_us),
                TimerKind::PhasePause,
                &tx_id,
            );
        } else {
            self.decide_commit(&tx_id, out);
        }
    }

    pub(super) fn on_vote_timeout(&mut self, now_us: u64, tx_id: &TxId, out: &mut Vec<Action>) {
        let epoch = self.epoch();
        let Some(tx) = self.active.get_mut(tx_id) else {
            return;
        };
        if tx.phase != Phase::Preparing {
            return;
        }
        if tx.one_phase {
            // The node may have committed: never guess. Ask it, with the
            // transfer itself.
            tx.phase = Phase::AskingOnePhaseOutcome;
            let node = tx.legs[0].node.clone();
            if self.connected.contains(&node) {
                let msg = one_phase::one_phase_request(tx_id, tx, epoch);
                out.push(Action::Send { node, msg });
            }
            self.arm_commit_timers(now_us, tx_id);
            return;
        }
        let mut reason = AbortReason::Timeout;
        for leg in &tx.legs {
            if !tx.votes.contains_key(&leg.node) {
                let unreachable = !self.connected.contains(&leg.node);
                let why = if unreachable {
                    AbortReason::NodeUnreachable
                } else {
                    AbortReason::Timeout
                };
                tx.votes
                    .insert(leg.node.clone(), (VoteView::NoAnswer, Some(why)));
                if unreachable {
                    reason = AbortReason::NodeUnreachable;
                }
            }
        }
        self.decide_abort(now_us, tx_id, reason, out);
    }
}
