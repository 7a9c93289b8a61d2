//! A transaction's end: the abort decided, the outcome remembered for
//! repeated ids (forced first when it is an abort, presumed aborts too), the
//! clients answered.

use super::*;

/// What is remembered of a finished transaction to answer a repeated
/// `tx_id` with its first outcome. Up to `COORDINATOR_OUTCOMES_KEPT_MAX` of
/// these are kept, so it is kept small: the response is rebuilt when asked
/// ([`Finished::response`]) instead of stored whole, and the usual votes
/// (every leg voted ready) are not stored at all.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Finished {
    /// `None` for a presumed abort: this log never knew the transfer.
    pub(super) request: Option<TransferRequest>,
    pub(super) outcome: Outcome,
    pub(super) reason: Option<AbortReason>,
    pub(super) detail: Option<String>,
    pub(super) duration_ms: f64,
    /// `None`: one `ready` vote per leg of `request`, in leg order.
    pub(super) votes: Option<Vec<NodeVote>>,
}

impl Finished {
    pub(super) fn of(
        request: Option<TransferRequest>,
        response: &TransferResponse,
        legs: &[Leg],
    ) -> Finished {
        let all_ready =
            response.votes.len() == legs.len()
                && !legs.is_empty()
                && response.votes.iter().zip(legs).all(|(v, l)| {
                    v.node == l.node && v.vote == VoteView::Ready && v.reason.is_none()
                });
        Finished {
            request,
            outcome: response.outcome,
            reason: response.reason,
            detail: response.detail.clone(),
            duration_ms: response.duration_ms,
            votes: if all_ready {
                None
            } else {
                Some(response.votes.clone())
            },
        }
    }

    /// The response as first given; `legs` are the request's legs (needed
    /// only when the votes were not stored).
    pub(super) fn response(
        &self,
        tx_id: &str,
        legs: impl FnOnce(&TransferRequest) -> Vec<Leg>,
    ) -> TransferResponse {
        let votes = match (&self.votes, &self.request) {
            (Some(votes), _) => votes.clone(),
            (None, None) => Vec::new(),
            (None, Some(request)) => legs(request)
                .into_iter()
                .map(|l| NodeVote {
                    node: l.node,
                    vote: VoteView::Ready,
                    reason: None,
                })
                .collect(),
        };
        TransferResponse {
            tx_id: tx_id.to_string(),
            outcome: self.outcome,
            reason: self.reason,
            detail: self.detail.clone(),
            votes,
            duration_ms: self.duration_ms,
        }
    }
}

impl Eq for Finished {}

impl std::hash::Hash for Finished {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.request.hash(state);
        (
            self.outcome,
            self.reason,
            &self.detail,
            self.duration_ms.to_bits(),
        )
            .hash(state);
        if let Some(votes) = &self.votes {
            for v in votes {
                (&v.node, v.vote, v.reason).hash(state);
            }
        }
    }
}

impl Coordinator {
    pub(super) fn decide_abort(
        &mut self,
        now_us: u64,
        tx_id: &TxId,
        reason: AbortReason,
        out: &mut Vec<Action>,
    ) {
        let Some(tx) = self.active.get(tx_id) else {
            return;
        };
        out.push(Action::Emit(EventKind::Decision {
            tx_id: tx_id.clone(),
            decision: Decision::Abort,
            reason: Some(reason),
        }));
        for leg in &tx.legs {
            let voted_abort = matches!(tx.votes.get(&leg.node), Some((VoteView::Abort, _)));
            if voted_abort || !self.connected.contains(&leg.node) {
                continue; // it aborted already, or it learns by the in-doubt query
            }
            out.push(Action::Send {
                node: leg.node.clone(),
                msg: Request::Rollback {
                    tx_id: tx_id.clone(),
                },
            });
            out.push(Action::Emit(EventKind::RollbackSent {
                tx_id: tx_id.clone(),
                node: leg.node.clone(),
            }));
        }
        let detail = abort_detail(tx, reason, self.config.prepare_timeout_us);
        self.finish(
            now_us,
            tx_id,
            Outcome::Aborted,
            Some(reason),
            Some(detail),
            out,
        );
    }

    pub(super) fn finish(
        &mut self,
        now_us: u64,
        tx_id: &TxId,
        outcome: Outcome,
        reason: Option<AbortReason>,
        detail: Option<String>,
        out: &mut Vec<Action>,
    ) {
        let Some(mut tx) = self.active.remove(tx_id) else {
            return;
        };
        self.disarm(tx_id, &mut tx);
        let response = response_of(tx_id, &tx, now_us, outcome, reason, detail);
        if !tx.replied {
            out.push(Action::Emit(EventKind::TxFinished {
                tx_id: tx_id.clone(),
                outcome,
                reason,
                duration_ms: response.duration_ms,
            }));
        }
        let decision = match outcome {
            Outcome::Committed => Decision::Commit,
            Outcome::Aborted => Decision::Abort,
        };
        let record = if tx.one_phase || decision == Decision::Abort {
            CoordinatorRecord::Finished {
                tx_id: tx_id.clone(),
                request: tx.request.clone(),
                decision,
                reason,
            }
        } else {
            CoordinatorRecord::End {
                tx_id: tx_id.clone(),
            }
        };
        // Presumed abort needs no forced record for the protocol, but the
        // client's promise does: an outcome is only given once it is on
        // disk, so a retry of this tx_id after a coordinator crash gets the
        // same answer instead of running the transfer again. A one-phase
        // commit too: its node remembers it, but refuses a re-use of the id
        // for other operations, which a coordinator that forgot the commit
        // would answer "aborted". (END needs no force: COMMIT was.)
        let forced = tx.one_phase || decision == Decision::Abort;
        let seq = self.take_seq();
        out.push(Action::Persist {
            seq,
            record,
            sync: forced,
        });
        let legs = std::mem::take(&mut tx.legs);
        self.remember(tx_id.clone(), Some(tx.request), &response, &legs);
        if forced {
            let name = match decision {
                Decision::Abort => ABORT_RECORD,
                Decision::Commit => FINISHED_RECORD,
            };
            self.undurable.push_back((seq, tx_id.clone(), name));
        }
        let clients = std::mem::take(&mut tx.clients);
        if forced && seq > self.durable_seq {
            for client in clients {
                self.held_replies.push_back((seq, client, tx_id.clone()));
            }
        } else {
            reply_to_all(clients, response, out);
        }
        if decision == Decision::Commit {
            out.push(Action::Emit(EventKind::TxEnded {
                tx_id: tx_id.clone(),
            }));
        }
    }

    pub(super) fn remember(
        &mut self,
        tx_id: TxId,
        request: Option<TransferRequest>,
        response: &TransferResponse,
        legs: &[Leg],
    ) {
        let finished = Finished::of(request, response, legs);
        self.finished.insert(tx_id, finished);
    }

    /// A node holds `tx_id` prepared and this log never decided it: it is
    /// aborted, and that is forced (with the rollback on its way), so that
    /// a client who asks later is told "aborted" by every incarnation.
    pub(super) fn presume_aborted(&mut self, tx_id: TxId, out: &mut Vec<Action>) {
        if !self.forces_presumed_aborts() {
            self.remember(tx_id.clone(), None, &presumed_abort_response(&tx_id), &[]);
            return;
        }
        let seq = self.take_seq();
        out.push(Action::Persist {
            seq,
            record: CoordinatorRecord::PresumedAbort {
                tx_id: tx_id.clone(),
            },
            sync: true,
        });
        self.undurable.push_back((seq, tx_id.clone(), ABORT_RECORD));
        self.remember(tx_id.clone(), None, &presumed_abort_response(&tx_id), &[]);
    }
}

/// Answers every client waiting for a transaction with the same response;
/// usually there is one, and it gets the response itself, not a copy.
pub(super) fn reply_to_all(
    clients: Vec<ClientId>,
    response: TransferResponse,
    out: &mut Vec<Action>,
) {
    let mut response = Some(response);
    let last = clients.len().saturating_sub(1);
    for (i, client) in clients.into_iter().enumerate() {
        let answer = if i == last {
            response.take()
        } else {
            response.clone()
        };
        if let Some(answer) = answer {
            out.push(Action::Reply {
                client,
                result: Ok(answer),
            });
        }
    }
}

pub(super) fn response_of(
    tx_id: &TxId,
    tx: &Tx,
    now_us: u64,
    outcome: Outcome,
    reason: Option<AbortReason>,
    detail: Option<String>,
) -> TransferResponse {
    let votes = tx
        .legs
        .iter()
        .map(|l| match tx.votes.get(&l.node) {
            Some((vote, reason)) => NodeVote {
                node: l.node.clone(),
                vote: *vote,
                reason: *reason,
            },
            None => NodeVote {
                node: l.node.clone(),
                vote: VoteView::NoAnswer,
                reason: None,
            },
        })
        .collect();
    TransferResponse {
        tx_id: tx_id.clone(),
        outcome,
        reason,
        detail,
        votes,
        // A transaction recovered from the log has no start time (0).
        duration_ms: if tx.started_us == 0 {
            0.0
        } else {
            now_us.saturating_sub(tx.started_us) as f64 / 1000.0
        },
    }
}

pub(super) fn recovered_response(
    tx_id: &TxId,
    decision: Decision,
    reason: Option<AbortReason>,
) -> TransferResponse {
    TransferResponse {
        tx_id: tx_id.clone(),
        outcome: decision.into(),
        reason,
        detail: Some(
            "first outcome of this tx_id (recovered from the coordinator's log)".to_string(),
        ),
        votes: Vec::new(),
        duration_ms: 0.0,
    }
}

/// The answer for a transaction this log never decided, that a node held
/// in doubt: aborted (presumed abort).
pub(super) fn presumed_abort_response(tx_id: &TxId) -> TransferResponse {
    TransferResponse {
        tx_id: tx_id.clone(),
        outcome: Outcome::Aborted,
        reason: Some(AbortReason::CoordinatorCrashed),
        detail: Some(
            "the coordinator restarted before deciding this transaction, so it was aborted (presumed abort)"
                .to_string(),
        ),
        votes: Vec::new(),
        duration_ms: 0.0,
    }
}

fn abort_detail(tx: &Tx, reason: AbortReason, prepare_timeout_us: u64) -> String {
    let abort_vote = tx.votes.iter().find(|(_, (v, _))| *v == VoteView::Abort);
    match (reason, abort_vote) {
        (AbortReason::InsufficientFunds, _) => {
            let amount = crate::money::format_cents(tx.request.amount_cents);
            format!(
                "insufficient funds: {} has less than {amount}",
                tx.request.from
            )
        }
        (AbortReason::NodeUnreachable, _) => {
            let down: Vec<&str> = tx
                .votes
                .iter()
                .filter(|(_, (_, r))| *r == Some(AbortReason::NodeUnreachable))
                .map(|(n, _)| n.as_str())
                .collect();
            format!(
                "node {} is unreachable, so nothing was transferred",
                down.join(", ")
            )
        }
        (AbortReason::Timeout, _) => {
            let silent: Vec<&str> = tx
                .votes
                .iter()
                .filter(|(_, (v, _))| *v == VoteView::NoAnswer)
                .map(|(n, _)| n.as_str())
                .collect();
            format!(
                "no vote from node {} within {} ms",
                silent.join(", "),
                prepare_timeout_us / 1000
            )
        }
        (reason, Some((node, _))) => format!("node {node} voted abort ({reason})"),
        (reason, None) => format!("aborted ({reason})"),
    }
}
