//! One-phase commit (both accounts on one node): the node decides alone;
//! if its answer is lost, it is asked again with the same one-phase commit,
//! which names the transfer (an ack of a bare `rollback` would not).

use super::*;

impl Coordinator {
    pub(super) fn on_one_phase_outcome(
        &mut self,
        now_us: u64,
        node: NodeId,
        tx_id: TxId,
        decision: Decision,
        reason: Option<AbortReason>,
        out: &mut Vec<Action>,
    ) {
        let Some(tx) = self.active.get(&tx_id) else {
            return;
        };
        if !tx.one_phase || tx.legs[0].node != node {
            return;
        }
        self.settle_one_phase(now_us, node, tx_id, decision, reason, out);
    }

    pub(super) fn settle_one_phase(
        &mut self,
        now_us: u64,
        node: NodeId,
        tx_id: TxId,
        decision: Decision,
        reason: Option<AbortReason>,
        out: &mut Vec<Action>,
    ) {
        let Some(tx) = self.active.get_mut(&tx_id) else {
            return;
        };
        let view = match decision {
            Decision::Commit => VoteView::Ready,
            Decision::Abort => VoteView::Abort,
        };
        tx.votes.insert(node.clone(), (view, reason));
        out.push(Action::Emit(EventKind::Vote {
            tx_id: tx_id.clone(),
            node,
            vote: view,
            reason,
        }));
        out.push(Action::Emit(EventKind::Decision {
            tx_id: tx_id.clone(),
            decision,
            reason,
        }));
        let detail = reason.map(|r| {
            format!(
                "node {} aborted the one-phase transfer ({r})",
                tx.legs[0].node
            )
        });
        self.finish(now_us, &tx_id, decision.into(), reason, detail, out);
    }
}

/// The one-phase commit of `tx`, as first sent, to ask its node what it
/// did: it carries the operations (so a node that did something else under
/// that id refuses it, and one that never saw it does it now), which a
/// `rollback`, whose ack says only "committed" or "aborted", does not. A
/// one-phase transfer never outlives its incarnation, so `epoch` is the
/// one it was first sent with.
pub(super) fn one_phase_request(tx_id: &TxId, tx: &Tx, epoch: Epoch) -> Request {
    Request::CommitOnePhase {
        tx_id: tx_id.clone(),
        ts_us: tx.ts_us,
        epoch,
        ops: tx.legs[0].ops.clone(),
    }
}
