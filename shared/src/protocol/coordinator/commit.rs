//! The commit: the COMMIT record forced (the commit point), the commits
//! sent once it is durable, the nodes' `applied` and acks, retries, and the
//! client's answer.

use super::*;

impl Coordinator {
    pub(super) fn decide_commit(&mut self, tx_id: &TxId, out: &mut Vec<Action>) {
        let Some(tx) = self.active.get(tx_id) else {
            return;
        };
        let record = CoordinatorRecord::Commit {
            tx_id: tx_id.clone(),
            ts_us: tx.ts_us,
            request: tx.request.clone(),
            legs: tx.legs.clone(),
        };
        let seq = self.take_seq();
        if let Some(tx) = self.active.get_mut(tx_id) {
            tx.phase = Phase::Deciding { seq };
        }
        out.push(Action::Persist {
            seq,
            record,
            sync: true,
        });
        self.deciding.push_back((seq, tx_id.clone()));
    }

    pub(super) fn on_durable(&mut self, now_us: u64, seq: u64, out: &mut Vec<Action>) {
        self.durable_seq = self.durable_seq.max(seq);
        while self
            .undurable
            .front()
            .is_some_and(|(undurable_seq, _, _)| *undurable_seq <= self.durable_seq)
        {
            let Some((_, tx_id, record)) = self.undurable.pop_front() else {
                break;
            };
            out.push(Action::Emit(EventKind::LogForced {
                tx_id,
                node: COORDINATOR.to_string(),
                record: record.to_string(),
            }));
        }
        while self
            .held_replies
            .front()
            .is_some_and(|(held_seq, _, _)| *held_seq <= self.durable_seq)
        {
            let Some((_, client, tx_id)) = self.held_replies.pop_front() else {
                break;
            };
            if let Some(response) = self.finished_response(&tx_id) {
                out.push(Action::Reply {
                    client,
                    result: Ok(response),
                });
            }
        }
        while let Some((decided_seq, _)) = self.deciding.front() {
            if *decided_seq > self.durable_seq {
                break;
            }
            let Some((decided_seq, tx_id)) = self.deciding.pop_front() else {
                break;
            };
            let still_deciding = matches!(self.active.get(&tx_id).map(|t| t.phase), Some(Phase::Deciding { seq }) if seq == decided_seq);
            if !still_deciding {
                continue;
            }
            out.push(Action::Emit(EventKind::LogForced {
                tx_id: tx_id.clone(),
                node: COORDINATOR.to_string(),
                record: COMMIT_RECORD.to_string(),
            }));
            out.push(Action::Emit(EventKind::Decision {
                tx_id: tx_id.clone(),
                decision: Decision::Commit,
                reason: None,
            }));
            if self.take_crash(CrashPoint::AfterDecision, out) {
                return;
            }
            if self.faults.phase_pause_us > 0 {
                if let Some(tx) = self.active.get_mut(&tx_id) {
                    tx.phase = Phase::PausedBeforeCommit;
                }
                self.arm(
                    now_us.saturating_add(self.faults.phase_pause_us),
                    TimerKind::PhasePause,
                    &tx_id,
                );
            } else if self.send_commits(now_us, &tx_id, out) {
                return;
            } else if self.config.ack_wait_us == 0 {
                self.reply_committed_once_sent(now_us, &tx_id, out);
            }
        }
    }

    /// Sends the (durable) commit to every node. Returns true if an armed
    /// mid-commit crash fired.
    pub(super) fn send_commits(
        &mut self,
        now_us: u64,
        tx_id: &TxId,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(tx) = self.active.get_mut(tx_id) else {
            return false;
        };
        tx.phase = Phase::Committing;
        tx.pending_acks = tx.legs.iter().map(|l| l.node.clone()).collect();
        tx.pending_applied = tx.pending_acks.clone();
        let nodes: Vec<NodeId> = tx.legs.iter().map(|l| l.node.clone()).collect();
        for (i, node) in nodes.iter().enumerate() {
            if self.connected.contains(node) {
                out.push(Action::Send {
                    node: node.clone(),
                    msg: Request::Commit {
                        tx_id: tx_id.clone(),
                    },
                });
                out.push(Action::Emit(EventKind::CommitSent {
                    tx_id: tx_id.clone(),
                    node: node.clone(),
                }));
            }
            if i == 0 && nodes.len() > 1 && self.take_crash(CrashPoint::MidCommit, out) {
                return true;
            }
        }
        self.arm_commit_timers(now_us, tx_id);
        false
    }

    /// A node applied a commit (its COMMITTED record is on its way to
    /// disk): shown as its `ack`; once every node has, the client is
    /// answered. The transaction is forgotten only after the real acks.
    pub(super) fn on_applied(
        &mut self,
        now_us: u64,
        node: NodeId,
        tx_id: TxId,
        out: &mut Vec<Action>,
    ) {
        let Some(tx) = self.active.get_mut(&tx_id) else {
            return;
        };
        if tx.phase != Phase::Committing || !tx.pending_applied.remove(&node) {
            return;
        }
        out.push(Action::Emit(EventKind::Ack {
            tx_id: tx_id.clone(),
            node,
            decision: Decision::Commit,
        }));
        self.reply_when_applied(now_us, &tx_id, out);
    }

    /// Answers the clients once every node has applied the commit.
    pub(super) fn reply_when_applied(&mut self, now_us: u64, tx_id: &TxId, out: &mut Vec<Action>) {
        if self
            .active
            .get(tx_id)
            .is_some_and(|tx| !tx.replied && tx.pending_applied.is_empty())
        {
            self.reply_committed(now_us, tx_id, None, out);
        }
    }

    pub(super) fn on_ack(
        &mut self,
        now_us: u64,
        node: NodeId,
        tx_id: TxId,
        decision: Decision,
        out: &mut Vec<Action>,
    ) {
        // A commit ack means the node forced its COMMITTED record; the live
        // view shows that as its own step. Its `ack` was shown already if
        // the node said `applied` first.
        let applied_before = self.active.get(&tx_id).is_some_and(|tx| {
            tx.phase == Phase::Committing
                && tx.pending_acks.contains(&node)
                && !tx.pending_applied.contains(&node)
        });
        if decision == Decision::Commit {
            out.push(Action::Emit(EventKind::LogForced {
                tx_id: tx_id.clone(),
                node: node.clone(),
                record: COMMITTED_RECORD.to_string(),
            }));
        }
        if !applied_before {
            out.push(Action::Emit(EventKind::Ack {
                tx_id: tx_id.clone(),
                node: node.clone(),
                decision,
            }));
        }
        let Some(tx) = self.active.get_mut(&tx_id) else {
            return;
        };
        match tx.phase {
            Phase::Committing if decision == Decision::Commit => {
                tx.pending_acks.remove(&node);
                tx.pending_applied.remove(&node);
                if tx.pending_acks.is_empty() {
                    self.finish(now_us, &tx_id, Outcome::Committed, None, None, out);
                } else {
                    self.reply_when_applied(now_us, &tx_id, out);
                }
            }
            // An ack never settles a one-phase transfer: it does not say
            // which transfer it is about (see `one_phase_request`).
            _ => {}
        }
    }

    pub(super) fn on_phase_pause(&mut self, now_us: u64, tx_id: &TxId, out: &mut Vec<Action>) {
        match self.active.get(tx_id).map(|t| t.phase) {
            Some(Phase::PausedBeforeDecision) => self.decide_commit(tx_id, out),
            Some(Phase::PausedBeforeCommit) => {
                let crashed = self.send_commits(now_us, tx_id, out);
                if !crashed && self.config.ack_wait_us == 0 {
                    self.reply_committed_once_sent(now_us, tx_id, out);
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_commit_retry(&mut self, now_us: u64, tx_id: &TxId, out: &mut Vec<Action>) {
        let Some(tx) = self.active.get(tx_id) else {
            return;
        };
        let msg = match tx.phase {
            Phase::Committing => Request::Commit {
                tx_id: tx_id.clone(),
            },
            Phase::AskingOnePhaseOutcome => one_phase::one_phase_request(tx_id, tx, self.epoch()),
            _ => return,
        };
        let targets: Vec<NodeId> = match tx.phase {
            Phase::Committing => tx.pending_acks.iter().cloned().collect(),
            _ => vec![tx.legs[0].node.clone()],
        };
        for node in targets {
            if self.connected.contains(&node) {
                out.push(Action::Send {
                    node,
                    msg: msg.clone(),
                });
            }
        }
        self.arm(
            now_us.saturating_add(self.config.commit_retry_us),
            TimerKind::CommitRetry,
            tx_id,
        );
    }

    pub(super) fn on_ack_wait(&mut self, now_us: u64, tx_id: &TxId, out: &mut Vec<Action>) {
        let Some(tx) = self.active.get_mut(tx_id) else {
            return;
        };
        if tx.replied {
            return;
        }
        match tx.phase {
            Phase::Committing => {
                let waiting: Vec<&str> = tx.pending_applied.iter().map(String::as_str).collect();
                let detail = format!(
                    "committed (the decision is durable); still waiting for node {} to apply it, which it will when reachable",
                    waiting.join(", ")
                );
                self.reply_committed(now_us, tx_id, Some(detail), out);
            }
            _ => {
                let clients = std::mem::take(&mut tx.clients);
                let message = format!(
                    "the outcome of {tx_id} is not known yet (node {} does not answer); retry with the same tx_id",
                    tx.legs[0].node
                );
                for client in clients {
                    out.push(Action::Reply {
                        client,
                        result: Err(TransferError::Unavailable(message.clone())),
                    });
                }
            }
        }
    }

    /// With `ack_wait_us == 0`: the answer as soon as the commits are on
    /// their way (the commit point is the durable decision; the acks only
    /// let the coordinator forget the transaction). A node that is not
    /// connected is named: it applies the commit when it is back.
    pub(super) fn reply_committed_once_sent(
        &mut self,
        now_us: u64,
        tx_id: &TxId,
        out: &mut Vec<Action>,
    ) {
        let Some(tx) = self.active.get(tx_id) else {
            return;
        };
        let unreachable: Vec<&str> = tx
            .legs
            .iter()
            .map(|l| l.node.as_str())
            .filter(|node| !self.connected.contains(*node))
            .collect();
        let detail = (!unreachable.is_empty()).then(|| {
            format!(
                "committed (the decision is durable); node {} is unreachable and will apply it when it is back",
                unreachable.join(", ")
            )
        });
        self.reply_committed(now_us, tx_id, detail, out);
    }

    /// Answers the clients of a transaction whose commit decision is
    /// durable and whose commits have been sent: it is committed, whatever
    /// happens to the acks (they only let the coordinator forget it).
    pub(super) fn reply_committed(
        &mut self,
        now_us: u64,
        tx_id: &TxId,
        detail: Option<String>,
        out: &mut Vec<Action>,
    ) {
        let Some(tx) = self.active.get_mut(tx_id) else {
            return;
        };
        if tx.replied {
            return;
        }
        tx.replied = true;
        let clients = std::mem::take(&mut tx.clients);
        let response = response_of(tx_id, tx, now_us, Outcome::Committed, None, detail);
        out.push(Action::Emit(EventKind::TxFinished {
            tx_id: tx_id.clone(),
            outcome: Outcome::Committed,
            reason: None,
            duration_ms: response.duration_ms,
        }));
        reply_to_all(clients, response, out);
    }
}
