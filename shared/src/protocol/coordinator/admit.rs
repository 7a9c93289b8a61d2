//! A transfer's admission: its request checked, its id generated or
//! matched against what this log remembers (the first outcome, a conflict,
//! or a wait for the nodes' in-doubt lists after a restart), its legs, and
//! the prepares that start it.

use super::*;

impl Coordinator {
    pub(super) fn on_transfer(
        &mut self,
        now_us: u64,
        client: ClientId,
        request: TransferRequest,
        out: &mut Vec<Action>,
    ) {
        if let Err(message) = self.validate(&request) {
            out.push(Action::Reply {
                client,
                result: Err(TransferError::Invalid(message)),
            });
            return;
        }
        let tx_id = match &request.tx_id {
            Some(id) => id.clone(),
            None => self.auto_tx_id(),
        };
        if self.answer_known(now_us, client, &tx_id, &request, out) {
            return;
        }
        match self.may_start(now_us, &tx_id, &request) {
            Ok(legs) => self.start(now_us, client, tx_id, request, legs, out),
            Err(message) => out.push(Action::Reply {
                client,
                result: Err(TransferError::Unavailable(message)),
            }),
        }
    }

    /// Answers a `tx_id` this log knows, finished or running: its first
    /// outcome (once that is durable), a wait for the running one, or a
    /// conflict for another transfer under the same id. False if it knows
    /// nothing of it.
    fn answer_known(
        &mut self,
        now_us: u64,
        client: ClientId,
        tx_id: &TxId,
        request: &TransferRequest,
        out: &mut Vec<Action>,
    ) -> bool {
        if let Some(f) = self.finished.get(tx_id) {
            let same = match &f.request {
                Some(first) => same_transfer(first, request),
                // A presumed abort is about an attempt a node held in doubt:
                // a two-phase one. A one-phase transfer is another (its node
                // may have committed it under that id, unknown to this log).
                None => self.config.node_of(&request.from) != self.config.node_of(&request.to),
            };
            if !same {
                let first = match &f.request {
                    Some(r) => format!(" ({} → {}, {} cents)", r.from, r.to, r.amount_cents),
                    None => " (a two-phase one, aborted)".to_string(),
                };
                let message =
                    format!("tx_id {tx_id} was already used for a different transfer{first}");
                out.push(Action::Reply {
                    client,
                    result: Err(TransferError::Conflict(message)),
                });
                return true;
            }
            if let Some(seq) = self.undurable_seq(tx_id) {
                // Its outcome is not on disk yet: this answer waits for it.
                self.held_replies.push_back((seq, client, tx_id.clone()));
                return true;
            }
            let result = Ok(repeated(f.response(tx_id, |r| self.legs_of(r))));
            out.push(Action::Reply { client, result });
            return true;
        }
        let Some(tx) = self.active.get_mut(tx_id) else {
            return false;
        };
        if !same_transfer(&tx.request, request) {
            let message =
                format!("tx_id {tx_id} is in use by a different transfer that is still running");
            out.push(Action::Reply {
                client,
                result: Err(TransferError::Conflict(message)),
            });
        } else if tx.replied {
            let response = response_of(tx_id, tx, now_us, Outcome::Committed, None, None);
            out.push(Action::Reply {
                client,
                result: Ok(response),
            });
        } else {
            tx.clients.push(client); // same transfer still running: wait for it
        }
        true
    }

    /// The legs of a new transaction under `tx_id`, or why it cannot start
    /// now (the client retries): a restarted coordinator that has not heard
    /// every reachable node's in-doubt list (one may hold an earlier attempt
    /// of this id), too many transactions running, or a one-phase retry whose
    /// node is away (only it knows whether the id ran before).
    fn may_start(
        &self,
        now_us: u64,
        tx_id: &TxId,
        request: &TransferRequest,
    ) -> Result<Vec<Leg>, String> {
        let client_id = request.tx_id.is_some();
        if client_id {
            if let Some(node) = self.unreconciled_blocker(now_us) {
                return Err(format!(
                    "the coordinator restarted moments ago and has not yet heard which transactions node \
                     {node} holds in doubt; one of them could be an earlier attempt of {tx_id}. Retry in a \
                     moment with the same tx_id"
                ));
            }
        }
        if self.active.len() >= COORDINATOR_TX_ACTIVE_MAX {
            return Err(format!(
                "{COORDINATOR_TX_ACTIVE_MAX} transactions are already running; retry shortly"
            ));
        }
        let legs = self.legs_of(request);
        if legs.len() == 1 && client_id && !self.connected.contains(&legs[0].node) {
            // This may be a retry of a one-phase transfer that the node
            // committed before this coordinator restarted (its FINISHED
            // record is not forced; the node's COMMITTED record is).
            return Err(format!(
                "node {} is unreachable, and only it knows whether {tx_id} ran before; retry with the same tx_id",
                legs[0].node
            ));
        }
        Ok(legs)
    }

    /// Starts a new transaction: the prepares to every reachable leg (an
    /// unreachable one aborts it at once), and the vote timer.
    fn start(
        &mut self,
        now_us: u64,
        client: ClientId,
        tx_id: TxId,
        request: TransferRequest,
        legs: Vec<Leg>,
        out: &mut Vec<Action>,
    ) {
        let ts = self.ts_max_us.saturating_add(1).max(now_us);
        self.ts_max_us = ts;
        let one_phase = legs.len() == 1;
        out.push(Action::Emit(EventKind::TxStarted {
            tx_id: tx_id.clone(),
            from: request.from.clone(),
            to: request.to.clone(),
            amount_cents: request.amount_cents,
            nodes: legs.iter().map(|l| l.node.clone()).collect(),
            one_phase,
        }));
        let mut tx = Tx {
            request,
            ts_us: ts,
            legs,
            started_us: now_us,
            one_phase,
            phase: Phase::Preparing,
            votes: BTreeMap::new(),
            pending_acks: BTreeSet::new(),
            pending_applied: BTreeSet::new(),
            clients: vec![client],
            replied: false,
            armed: Vec::new(),
        };
        let epoch = self.epoch();
        let mut unreachable = false;
        for leg in &tx.legs {
            if !self.connected.contains(&leg.node) {
                tx.votes.insert(
                    leg.node.clone(),
                    (VoteView::NoAnswer, Some(AbortReason::NodeUnreachable)),
                );
                unreachable = true;
                continue;
            }
            let (id, ops) = (tx_id.clone(), leg.ops.clone());
            let msg = if one_phase {
                Request::CommitOnePhase {
                    tx_id: id,
                    ts_us: ts,
                    epoch,
                    ops,
                }
            } else {
                Request::Prepare {
                    tx_id: id,
                    ts_us: ts,
                    epoch,
                    ops,
                }
            };
            out.push(Action::Send {
                node: leg.node.clone(),
                msg,
            });
            out.push(Action::Emit(EventKind::PrepareSent {
                tx_id: tx_id.clone(),
                node: leg.node.clone(),
            }));
        }
        self.active.insert(tx_id.clone(), tx);
        if unreachable {
            self.decide_abort(now_us, &tx_id, AbortReason::NodeUnreachable, out);
            return;
        }
        self.arm(
            now_us.saturating_add(self.config.prepare_timeout_us),
            TimerKind::VoteTimeout,
            &tx_id,
        );
    }

    /// A generated id: `tx-<epoch>-<n>`, unique across restarts (epochs
    /// only grow) and clock steps, and never one a client already used.
    pub(super) fn auto_tx_id(&mut self) -> TxId {
        loop {
            let id = format!("tx-{}-{}", self.epoch(), self.next_auto_id);
            self.next_auto_id += 1;
            if !self.active.contains_key(&id) && self.finished.get(&id).is_none() {
                return id;
            }
        }
    }

    /// A node whose in-doubt report a client's unknown `tx_id` must wait
    /// for: one that has not reported to this incarnation and is connected
    /// (its report is on its way), or any such node while the incarnation
    /// is younger than the prepare timeout (it may be connecting).
    pub(super) fn unreconciled_blocker(&self, now_us: u64) -> Option<&NodeId> {
        if !self.gates_unknown_ids() {
            return None;
        }
        let young = self
            .started_us
            .is_some_and(|at| now_us < at.saturating_add(self.config.prepare_timeout_us));
        self.unreconciled
            .iter()
            .find(|node| young || self.connected.contains(*node))
    }

    /// The seq of the record a remembered outcome waits for, if any.
    pub(super) fn undurable_seq(&self, tx_id: &str) -> Option<u64> {
        self.undurable
            .iter()
            .find(|(_, id, _)| id == tx_id)
            .map(|(seq, _, _)| *seq)
    }

    pub(super) fn validate(&self, request: &TransferRequest) -> Result<(), String> {
        if let Some(tx_id) = &request.tx_id {
            let ok_chars = tx_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
            if tx_id.is_empty() || tx_id.len() > TX_ID_BYTES_MAX || !ok_chars {
                return Err(format!(
                    "tx_id must be 1 to {TX_ID_BYTES_MAX} characters of letters, digits, '-', '_', '.' or ':'"
                ));
            }
        }
        for account in [&request.from, &request.to] {
            if account.len() > ACCOUNT_ID_BYTES_MAX || self.config.node_of(account).is_none() {
                let known: Vec<&str> = self.config.accounts.keys().map(String::as_str).collect();
                let shown: String = account.chars().take(ACCOUNT_ID_BYTES_MAX).collect();
                return Err(format!(
                    "unknown account '{shown}'; the accounts are {}",
                    known.join(", ")
                ));
            }
        }
        if request.from == request.to {
            return Err(format!(
                "from and to are the same account ({}): nothing to transfer",
                request.from
            ));
        }
        if request.amount_cents <= 0 {
            return Err(format!(
                "amount_cents must be more than 0 (got {})",
                request.amount_cents
            ));
        }
        if request.amount_cents > AMOUNT_CENTS_MAX {
            return Err(format!(
                "amount_cents must be at most {AMOUNT_CENTS_MAX} (got {})",
                request.amount_cents
            ));
        }
        Ok(())
    }

    pub(super) fn legs_of(&self, request: &TransferRequest) -> Vec<Leg> {
        // Only called for validated requests: both accounts exist.
        let node_of = |account: &str| self.config.node_of(account).map_or("", String::as_str);
        let (from_node, to_node) = (node_of(&request.from), node_of(&request.to));
        transfer_legs(
            &request.from,
            &request.to,
            request.amount_cents,
            from_node,
            to_node,
        )
    }
}

/// The remembered first outcome, as an answer to a repeated tx_id.
pub(super) fn repeated(first: TransferResponse) -> TransferResponse {
    let mut response = first;
    response.detail = Some(match response.detail.take() {
        Some(d) if d.contains("first outcome") => d,
        Some(d) => format!("{d} (first outcome of this tx_id)"),
        None => "first outcome of this tx_id".to_string(),
    });
    response
}

pub(super) fn same_transfer(a: &TransferRequest, b: &TransferRequest) -> bool {
    a.from == b.from && a.to == b.to && a.amount_cents == b.amount_cents
}
