//! Timers are data: each transaction's armed deadlines, and the tick that
//! fires the due ones (a stale one is a harmless no-op).

use super::*;

impl Coordinator {
    pub(super) fn on_tick(&mut self, now_us: u64, out: &mut Vec<Action>) {
        if self.sweep_at_us.is_some_and(|at| at <= now_us) {
            self.sweep_at_us = Some(now_us.saturating_add(self.config.in_doubt_sweep_us));
            for node in &self.connected {
                out.push(Action::Send {
                    node: node.clone(),
                    msg: Request::Recover,
                });
            }
        }
        while let Some(&(at, kind, ref tx_id)) = self.timers.iter().next() {
            if at > now_us {
                break;
            }
            let tx_id = tx_id.clone();
            self.timers.remove(&(at, kind, tx_id.clone()));
            if let Some(tx) = self.active.get_mut(&tx_id) {
                tx.armed.retain(|&armed| armed != (at, kind));
            }
            match kind {
                TimerKind::VoteTimeout => self.on_vote_timeout(now_us, &tx_id, out),
                TimerKind::PhasePause => self.on_phase_pause(now_us, &tx_id, out),
                TimerKind::CommitRetry => self.on_commit_retry(now_us, &tx_id, out),
                TimerKind::AckWait => self.on_ack_wait(now_us, &tx_id, out),
            }
            if out.iter().any(|a| matches!(a, Action::Crash(_))) {
                return;
            }
        }
    }

    /// Arms the timers of a transaction waiting for its commit acks: resend
    /// the decision, and answer the client anyway.
    pub(super) fn arm_commit_timers(&mut self, now_us: u64, tx_id: &TxId) {
        self.arm(
            now_us.saturating_add(self.config.commit_retry_us),
            TimerKind::CommitRetry,
            tx_id,
        );
        // With no ack wait, a commit is answered as it is sent (see
        // `reply_committed_once_sent`); an asked one-phase outcome still
        // needs the timer to answer.
        let answered_when_sent = self.config.ack_wait_us == 0
            && self
                .active
                .get(tx_id)
                .is_some_and(|tx| tx.phase == Phase::Committing);
        if !answered_when_sent {
            self.arm(
                now_us.saturating_add(self.config.ack_wait_us),
                TimerKind::AckWait,
                tx_id,
            );
        }
    }

    /// Arms a timer for an active transaction.
    pub(super) fn arm(&mut self, at: u64, kind: TimerKind, tx_id: &TxId) {
        if let Some(tx) = self.active.get_mut(tx_id) {
            tx.armed.push((at, kind));
            self.timers.insert((at, kind, tx_id.clone()));
        }
    }

    /// Removes every timer of a transaction that is leaving `active`.
    pub(super) fn disarm(&mut self, tx_id: &TxId, tx: &mut Tx) {
        if tx.armed.is_empty() {
            return;
        }
        // One key, reused: no copy of the id per timer.
        let mut key = (0, TimerKind::VoteTimeout, tx_id.clone());
        for (at, kind) in tx.armed.drain(..) {
            (key.0, key.1) = (at, kind);
            self.timers.remove(&key);
        }
    }
}
