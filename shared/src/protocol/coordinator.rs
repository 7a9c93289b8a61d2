//! The coordinator: runs transfers through Two-Phase Commit, decides, logs
//! the decision, and drives every transaction to its end across crashes.
//!
//! - Phase 1 sends `prepare` to every involved node at once and waits for
//!   all votes, at most `prepare_timeout_us`. Any `abort` vote, a missing
//!   vote at the timeout, or an unreachable node aborts.
//! - Presumed abort: a COMMIT record is forced before any `commit` is sent;
//!   aborts are not forced. After a crash, a transaction without a COMMIT
//!   record is aborted, so the answer to "what happened to T?" is always
//!   "commit if my log says so, else abort".
//! - Commits are re-sent until every node acks; then END is logged lazily
//!   and the transaction is forgotten.
//! - On every (re)connection, and periodically, each node is asked for its
//!   in-doubt transactions and each gets its answer from the log.
//! - A transfer between two accounts of the same node runs as one-phase
//!   commit: the node decides alone. If its answer is lost, the coordinator
//!   asks again with `rollback`, whose ack carries what the node did.
//! - A repeated client `tx_id` gets the first outcome; nothing moves twice.
//!   Every answer that ends a transaction is durable before it is given,
//!   presumed aborts included, so a client never sees two outcomes.
//! - Identity: each incarnation has an epoch (`begin_epoch`, durable before
//!   it talks to any node) that every `prepare` carries with its ops. A
//!   restarted coordinator does not start a client's `tx_id` it cannot
//!   rule out until every reachable node has reported what it holds in
//!   doubt (503 meanwhile); an in-doubt report of a node that is not a leg
//!   of the transaction this log decided under that id is a stale attempt,
//!   and is rolled back.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::api::{
    transfer_legs, CrashPoint, Leg, NodeVote, Outcome, TransferRequest, TransferResponse, TxState,
    VoteView,
};
use crate::events::{EventKind, COORDINATOR};
use crate::limits::{
    ACCOUNT_ID_BYTES_MAX, ACK_WAIT_MS, AMOUNT_CENTS_MAX, COMMIT_RETRY_MS,
    COORDINATOR_OUTCOMES_KEPT_MAX, COORDINATOR_TX_ACTIVE_MAX, IN_DOUBT_SWEEP_MS,
    PREPARE_TIMEOUT_MS, TX_ID_BYTES_MAX,
};
use crate::protocol::keyed::Keyed;
use crate::protocol::record::{
    CoordinatorCheckpoint, CoordinatorCheckpointRef, CoordinatorRecord, Identity,
};
use crate::protocol::remembered::{Remembered, RememberedSnapshot};
use crate::wire::{
    AbortReason, AccountId, ClusterId, Decision, Epoch, NodeId, Reply, Request, TxId, Vote,
};

/// Identifies a waiting client (an HTTP request) that gets a `Reply`.
pub type ClientId = u64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CoordinatorConfig {
    pub nodes: Vec<NodeId>,
    /// Which node holds each account (set by [`CoordinatorConfig::new`]).
    accounts: BTreeMap<AccountId, NodeId>,
    /// The same, hashed: every transfer looks both of its accounts up, and a
    /// walk of a `BTreeMap` of thousands of string keys is a dozen string
    /// comparisons each.
    account_index: AccountIndex,
    pub prepare_timeout_us: u64,
    /// How long a client waits for commit acks before it is answered anyway
    /// (the commit is durable and completes in the background). 0: the
    /// client is answered as soon as the decision is durable and the commits
    /// are sent, without waiting for any ack.
    pub ack_wait_us: u64,
    pub commit_retry_us: u64,
    pub in_doubt_sweep_us: u64,
}

impl CoordinatorConfig {
    pub fn new(nodes: Vec<NodeId>, accounts: BTreeMap<AccountId, NodeId>) -> Self {
        CoordinatorConfig {
            nodes,
            account_index: AccountIndex::of(&accounts),
            accounts,
            prepare_timeout_us: PREPARE_TIMEOUT_MS * 1000,
            ack_wait_us: ACK_WAIT_MS * 1000,
            commit_retry_us: COMMIT_RETRY_MS * 1000,
            in_doubt_sweep_us: IN_DOUBT_SWEEP_MS * 1000,
        }
    }
}

impl CoordinatorConfig {
    /// Which node holds each account.
    pub fn accounts(&self) -> &BTreeMap<AccountId, NodeId> {
        &self.accounts
    }

    /// The node holding `account`, if it is one of ours.
    pub fn node_of(&self, account: &str) -> Option<&NodeId> {
        self.account_index.0.get(account)
    }
}

/// A hash index of [`CoordinatorConfig::accounts`]. It is derived from
/// that map, so equality and hashing (for the model checker) leave it out.
#[derive(Debug, Clone, Default)]
struct AccountIndex(HashMap<AccountId, NodeId>);

impl AccountIndex {
    fn of(accounts: &BTreeMap<AccountId, NodeId>) -> AccountIndex {
        AccountIndex(
            accounts
                .iter()
                .map(|(a, n)| (a.clone(), n.clone()))
                .collect(),
        )
    }
}

impl PartialEq for AccountIndex {
    fn eq(&self, _: &AccountIndex) -> bool {
        true
    }
}

impl Eq for AccountIndex {}

impl std::hash::Hash for AccountIndex {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// Demo-mode faults the machine itself acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DemoFaults {
    /// One-shot: the next transaction reaching this point crashes the engine.
    pub crash_at: Option<CrashPoint>,
    /// Step mode: pause after the votes are in and after the decision.
    pub phase_pause_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    Transfer {
        client: ClientId,
        request: TransferRequest,
    },
    FromNode {
        node: NodeId,
        msg: Reply,
    },
    NodeUp {
        node: NodeId,
    },
    NodeDown {
        node: NodeId,
    },
    /// Every record with `seq` or lower is durable.
    Durable {
        seq: u64,
    },
    /// Time passed: fire due timers.
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransferError {
    /// The request cannot run (unknown account, bad amount): HTTP 422.
    Invalid(String),
    /// The `tx_id` was used for a different transfer: HTTP 409.
    Conflict(String),
    /// Try again later with the same `tx_id`: HTTP 503.
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send {
        node: NodeId,
        msg: Request,
    },
    Persist {
        seq: u64,
        record: CoordinatorRecord,
        sync: bool,
    },
    Reply {
        client: ClientId,
        result: Result<TransferResponse, TransferError>,
    },
    Emit(EventKind),
    /// An armed crash point was reached: drop all volatile state now and
    /// recover from the log, as a restarted process would.
    Crash(CrashPoint),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TimerKind {
    VoteTimeout,
    PhasePause,
    CommitRetry,
    AckWait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    /// Waiting for votes (or for the one-phase outcome).
    Preparing,
    /// All voted ready; step mode pauses before deciding.
    PausedBeforeDecision,
    /// The COMMIT record is appended but not yet durable.
    Deciding { seq: u64 },
    /// COMMIT is durable; step mode pauses before sending it.
    PausedBeforeCommit,
    /// COMMIT is durable and sent; waiting for acks.
    Committing,
    /// One-phase answer lost: asking the node what it did.
    AskingOnePhaseOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Tx {
    request: TransferRequest,
    ts: u64,
    legs: Vec<Leg>,
    started_us: u64,
    one_phase: bool,
    phase: Phase,
    votes: BTreeMap<NodeId, (VoteView, Option<AbortReason>)>,
    /// Nodes that have not acked the commit (durable there).
    pending_acks: BTreeSet<NodeId>,
    /// Nodes that have neither said `applied` nor acked: the client is
    /// answered when this is empty (reads on every node then see it).
    pending_applied: BTreeSet<NodeId>,
    clients: Vec<ClientId>,
    replied: bool,
    /// Its timers still in `Coordinator::timers`, removed with it when it
    /// finishes (so a finished transfer leaves no timers to fire as no-ops).
    armed: Vec<(u64, TimerKind)>,
}

/// What is remembered of a finished transaction to answer a repeated
/// `tx_id` with its first outcome. Up to `COORDINATOR_OUTCOMES_KEPT_MAX` of
/// these are kept, so it is kept small: the response is rebuilt when asked
/// ([`Finished::response`]) instead of stored whole, and the usual votes
/// (every leg voted ready) are not stored at all.
#[derive(Debug, Clone, PartialEq)]
struct Finished {
    /// `None` for a presumed abort: this log never knew the transfer.
    request: Option<TransferRequest>,
    outcome: Outcome,
    reason: Option<AbortReason>,
    detail: Option<String>,
    duration_ms: f64,
    /// `None`: one `ready` vote per leg of `request`, in leg order.
    votes: Option<Vec<NodeVote>>,
}

impl Finished {
    fn of(request: Option<TransferRequest>, response: &TransferResponse, legs: &[Leg]) -> Finished {
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
    fn response(
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

// `duration_ms` is an f64, which is never NaN here (it is computed from
// integer microseconds), so equality is reflexive and the coordinator can be
// a state of a model checker.
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

/// A remembered outcome as a checkpoint holds it.
fn outcome_entry<'a>(
    (id, f): (&'a TxId, &'a Finished),
) -> (
    &'a TxId,
    Option<&'a TransferRequest>,
    Decision,
    Option<AbortReason>,
) {
    let decision = match f.outcome {
        Outcome::Committed => Decision::Commit,
        Outcome::Aborted => Decision::Abort,
    };
    (id, f.request.as_ref(), decision, f.reason)
}

/// What a checkpoint holds, taken at one moment, to be encoded later (see
/// [`Coordinator::checkpoint_snapshot`]).
#[derive(Debug, Clone)]
pub struct CoordinatorSnapshot {
    identity: Option<Identity>,
    pending_commits: Vec<(TxId, u64, TransferRequest, Vec<Leg>)>,
    outcomes: RememberedSnapshot<Finished>,
    ts_max: u64,
}

impl CoordinatorSnapshot {
    /// The checkpoint record's bytes, as they were when it was taken.
    pub fn encode(&self) -> Vec<u8> {
        self.parts().encode()
    }

    fn parts(&self) -> CoordinatorCheckpointRef<'_> {
        let pending_commits = self
            .pending_commits
            .iter()
            .map(|(id, ts, request, legs)| (id, *ts, request, legs.as_slice()))
            .collect();
        CoordinatorCheckpointRef {
            identity: self.identity.as_ref(),
            pending_commits,
            outcomes: self.outcomes.collect_oldest_first(outcome_entry),
            ts_max: self.ts_max,
        }
    }
}

/// A transaction the coordinator is still working on (for the API).
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveTx {
    pub tx_id: TxId,
    pub state: TxState,
    pub request: TransferRequest,
    pub legs: Vec<Leg>,
    pub pending_acks: Vec<NodeId>,
    pub started_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Coordinator {
    config: CoordinatorConfig,
    faults: DemoFaults,
    /// A hash map (see [`Keyed`]); whatever leaves in an order is sorted.
    active: Keyed<TxId, Tx>,
    /// The remembered first outcomes, oldest first (a checkpoint writes
    /// them in that order, so eviction order survives a restart).
    finished: Remembered<Finished>,
    connected: BTreeSet<NodeId>,
    timers: BTreeSet<(u64, TimerKind, TxId)>,
    /// COMMIT records waiting to become durable, in seq order.
    deciding: VecDeque<(u64, TxId)>,
    /// Clients whose (abort) answer waits for its record to be durable, in
    /// seq order; the answer itself is the remembered outcome of the tx.
    held_replies: VecDeque<(u64, ClientId, TxId)>,
    next_seq: u64,
    durable_seq: u64,
    ts_max: u64,
    sweep_at_us: Option<u64>,
    /// Nodes whose reconnection recovery query is not answered yet.
    recovery_pending: BTreeSet<NodeId>,
    /// Whose log this is, as of its latest incarnation (`None`: a log older
    /// versions wrote, or a fresh one, until [`Coordinator::begin_epoch`]).
    identity: Option<Identity>,
    /// The log held records before any identity (an older version's).
    replayed_any: bool,
    /// Nodes that have not reported their in-doubt transactions to this
    /// incarnation yet: a client's `tx_id` this log does not know may be
    /// prepared there by an earlier incarnation.
    unreconciled: BTreeSet<NodeId>,
    /// When this incarnation handled its first input.
    started_us: Option<u64>,
    /// Auto-generated ids issued in this epoch.
    next_auto_id: u64,
    /// Remembered outcomes whose forced record is not durable yet, in seq
    /// order: an answer from one of them waits for its record.
    undurable: VecDeque<(u64, TxId)>,
}

impl Coordinator {
    /// Rebuilds the coordinator from its log. Commit decisions without END
    /// come back as committing: they are re-sent to every node that has
    /// not acknowledged them. Nothing else survives (presumed abort).
    pub fn recover(config: CoordinatorConfig, records: &[CoordinatorRecord]) -> Coordinator {
        let mut c = Coordinator {
            config,
            faults: DemoFaults::default(),
            active: Keyed::new(),
            finished: Remembered::new(COORDINATOR_OUTCOMES_KEPT_MAX),
            connected: BTreeSet::new(),
            timers: BTreeSet::new(),
            deciding: VecDeque::new(),
            held_replies: VecDeque::new(),
            next_seq: 1,
            durable_seq: 0,
            ts_max: 0,
            sweep_at_us: None,
            recovery_pending: BTreeSet::new(),
            identity: None,
            replayed_any: false,
            unreconciled: BTreeSet::new(),
            started_us: None,
            next_auto_id: 1,
            undurable: VecDeque::new(),
        };
        c.unreconciled = c.config.nodes.iter().cloned().collect();
        for record in records {
            c.replay(record);
        }
        c
    }

    /// Starts a new incarnation: the next epoch of this log's cluster, or
    /// `new_cluster` (fresh random bytes from the driver) for a log that
    /// has none yet. Returns the record the driver must make durable
    /// before feeding any input (before any node hears this epoch).
    pub fn begin_epoch(&mut self, new_cluster: ClusterId) -> CoordinatorRecord {
        let identity = match self.identity.take() {
            Some(old) => Identity {
                epoch: old.epoch + 1,
                ..old
            },
            None => Identity {
                cluster: new_cluster,
                epoch: 1,
                legacy_history: self.replayed_any,
            },
        };
        self.identity = Some(identity.clone());
        CoordinatorRecord::Epoch(identity)
    }

    /// Whose log this is (`None` before [`Coordinator::begin_epoch`] on a
    /// log without an identity).
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// Nodes that have not reported their in-doubt transactions to this
    /// incarnation yet (a client's unknown `tx_id` may wait for them).
    pub fn unreconciled(&self) -> &BTreeSet<NodeId> {
        &self.unreconciled
    }

    /// This incarnation's epoch (0 before [`Coordinator::begin_epoch`]).
    pub fn epoch(&self) -> Epoch {
        self.identity.as_ref().map_or(0, |i| i.epoch)
    }

    fn replay(&mut self, record: &CoordinatorRecord) {
        if !matches!(record, CoordinatorRecord::Epoch(_)) && self.identity.is_none() {
            self.replayed_any = true;
        }
        match record {
            CoordinatorRecord::Commit {
                tx_id,
                ts,
                request,
                legs,
            } => {
                self.ts_max = self.ts_max.max(*ts);
                if self.finished.get(tx_id).is_some() {
                    return;
                }
                let pending_acks: BTreeSet<NodeId> = legs.iter().map(|l| l.node.clone()).collect();
                let tx = Tx {
                    request: request.clone(),
                    ts: *ts,
                    legs: legs.clone(),
                    started_us: 0,
                    one_phase: false,
                    phase: Phase::Committing,
                    votes: legs
                        .iter()
                        .map(|l| (l.node.clone(), (VoteView::Ready, None)))
                        .collect(),
                    pending_applied: pending_acks.clone(),
                    pending_acks,
                    clients: Vec::new(),
                    replied: true,
                    armed: Vec::new(),
                };
                self.active.insert(tx_id.clone(), tx);
            }
            CoordinatorRecord::End { tx_id } => {
                if let Some(tx) = self.active.remove(tx_id) {
                    let response = recovered_response(tx_id, Decision::Commit, None);
                    self.remember(tx_id.clone(), Some(tx.request), &response, &[]);
                }
            }
            CoordinatorRecord::Finished {
                tx_id,
                request,
                decision,
                reason,
            } => {
                if self.active.contains_key(tx_id) {
                    return; // a committing tx: its END decides
                }
                let response = recovered_response(tx_id, *decision, *reason);
                self.remember(tx_id.clone(), Some(request.clone()), &response, &[]);
            }
            CoordinatorRecord::PresumedAbort { tx_id } => {
                if !self.active.contains_key(tx_id) {
                    self.remember(tx_id.clone(), None, &presumed_abort_response(tx_id), &[]);
                }
            }
            CoordinatorRecord::Epoch(identity) => self.identity = Some(identity.clone()),
            CoordinatorRecord::Checkpoint(cp) => {
                self.active.clear();
                self.finished.clear();
                self.ts_max = self.ts_max.max(cp.ts_max);
                if let Some(identity) = &cp.identity {
                    self.identity = Some(identity.clone());
                }
                for (tx_id, request, decision, reason) in &cp.outcomes {
                    match request {
                        Some(request) => {
                            let response = recovered_response(tx_id, *decision, *reason);
                            let request = Some(request.clone());
                            self.remember(tx_id.clone(), request, &response, &[]);
                        }
                        None => {
                            let response = presumed_abort_response(tx_id);
                            self.remember(tx_id.clone(), None, &response, &[]);
                        }
                    }
                }
                for (tx_id, ts, request, legs) in &cp.pending_commits {
                    let record = CoordinatorRecord::Commit {
                        tx_id: tx_id.clone(),
                        ts: *ts,
                        request: request.clone(),
                        legs: legs.clone(),
                    };
                    self.replay(&record);
                }
            }
        }
    }

    /// The transactions a checkpoint must keep committing after a restart.
    fn pending_commits(&self) -> impl Iterator<Item = (&TxId, u64, &TransferRequest, &[Leg])> {
        self.active
            .sorted()
            .into_iter()
            .filter(|(_, tx)| {
                matches!(
                    tx.phase,
                    Phase::Deciding { .. } | Phase::PausedBeforeCommit | Phase::Committing
                )
            })
            .map(|(id, tx)| (id, tx.ts, &tx.request, tx.legs.as_slice()))
    }

    /// [`checkpoint`](Self::checkpoint), encoded: the same bytes as
    /// `checkpoint().1.encode()`, from the snapshot (no owned copy).
    pub fn checkpoint_encoded(&mut self) -> (u64, Vec<u8>) {
        let (seq, snapshot) = self.checkpoint_snapshot();
        (seq, snapshot.encode())
    }

    /// Everything a checkpoint holds, taken now, to be encoded later, on
    /// another thread: the remembered outcomes (up to a million,
    /// 80 MB of JSON, half a second to encode on the engine's thread) are
    /// shared, not copied (see [`Remembered::snapshot`]); the transactions
    /// still committing are copied (a few). [`checkpoint`](Self::checkpoint)
    /// and [`checkpoint_encoded`](Self::checkpoint_encoded) are built from it.
    pub fn checkpoint_snapshot(&mut self) -> (u64, CoordinatorSnapshot) {
        let pending_commits = self
            .pending_commits()
            .map(|(id, ts, request, legs)| (id.clone(), ts, request.clone(), legs.to_vec()))
            .collect();
        let snapshot = CoordinatorSnapshot {
            identity: self.identity.clone(),
            pending_commits,
            outcomes: self.finished.snapshot(),
            ts_max: self.ts_max,
        };
        (self.take_seq(), snapshot)
    }

    /// A record of everything still needed, to start a rewritten log: the
    /// commits not yet acknowledged everywhere and the remembered outcomes,
    /// oldest first.
    pub fn checkpoint(&mut self) -> (u64, CoordinatorRecord) {
        let (seq, snapshot) = self.checkpoint_snapshot();
        let parts = snapshot.parts();
        let cp = CoordinatorCheckpoint {
            identity: parts.identity.cloned(),
            pending_commits: parts
                .pending_commits
                .iter()
                .map(|&(id, ts, request, legs)| (id.clone(), ts, request.clone(), legs.to_vec()))
                .collect(),
            outcomes: parts
                .outcomes
                .iter()
                .map(|&(id, request, decision, reason)| {
                    (id.clone(), request.cloned(), decision, reason)
                })
                .collect(),
            ts_max: parts.ts_max,
        };
        (seq, CoordinatorRecord::Checkpoint(Box::new(cp)))
    }

    pub fn set_faults(&mut self, faults: DemoFaults) {
        self.faults = faults;
    }

    pub fn faults(&self) -> &DemoFaults {
        &self.faults
    }

    pub fn handle(&mut self, now_us: u64, input: Input) -> Vec<Action> {
        // A new transfer yields about eight actions: one allocation for them.
        let mut out = Vec::with_capacity(8);
        if self.sweep_at_us.is_none() {
            self.started_us = Some(now_us);
            // First input since recovery: the clock is known now. Recovered
            // commits are re-sent on connect, and also on a timer, in case
            // that message or its ack is lost.
            self.sweep_at_us = Some(now_us.saturating_add(self.config.in_doubt_sweep_us));
            let retry_at_us = now_us.saturating_add(self.config.commit_retry_us);
            for (tx_id, tx) in self.active.iter_mut() {
                if tx.phase == Phase::Committing {
                    self.timers
                        .insert((retry_at_us, TimerKind::CommitRetry, tx_id.clone()));
                    tx.armed.push((retry_at_us, TimerKind::CommitRetry));
                }
            }
        }
        match input {
            Input::Transfer { client, request } => {
                self.on_transfer(now_us, client, request, &mut out)
            }
            Input::FromNode { node, msg } => self.on_node_message(now_us, node, msg, &mut out),
            Input::NodeUp { node } => self.on_node_up(node, &mut out),
            Input::NodeDown { node } => self.on_node_down(now_us, node, &mut out),
            Input::Durable { seq } => self.on_durable(now_us, seq, &mut out),
            Input::Tick => self.on_tick(now_us, &mut out),
        }
        out
    }

    /// When the driver must feed `Tick` next.
    pub fn next_deadline_us(&self) -> Option<u64> {
        let timer = self.timers.iter().next().map(|(at, _, _)| *at);
        match (timer, self.sweep_at_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- transfers -----

    fn on_transfer(
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
        let ts = self.ts_max.saturating_add(1).max(now_us);
        let tx_id = match &request.tx_id {
            Some(id) => id.clone(),
            None => self.auto_tx_id(),
        };
        if let Some(f) = self.finished.get(&tx_id) {
            let same = f
                .request
                .as_ref()
                .is_none_or(|r| same_transfer(r, &request));
            if !same {
                let first = f.request.as_ref().map_or(String::new(), |r| {
                    format!(" ({} → {}, {} cents)", r.from, r.to, r.amount_cents)
                });
                let message =
                    format!("tx_id {tx_id} was already used for a different transfer{first}");
                out.push(Action::Reply {
                    client,
                    result: Err(TransferError::Conflict(message)),
                });
                return;
            }
            if let Some(seq) = self.undurable_seq(&tx_id) {
                // Its outcome is not on disk yet: this answer waits for it.
                self.held_replies.push_back((seq, client, tx_id));
                return;
            }
            let result = Ok(repeated(f.response(&tx_id, |r| self.legs_of(r))));
            out.push(Action::Reply { client, result });
            return;
        }
        if request.tx_id.is_some() && !self.active.contains_key(&tx_id) {
            if let Some(node) = self.unreconciled_blocker(now_us) {
                let message = format!(
                    "the coordinator restarted moments ago and has not yet heard which transactions node \
                     {node} holds in doubt; one of them could be an earlier attempt of {tx_id}. Retry in a \
                     moment with the same tx_id"
                );
                out.push(Action::Reply {
                    client,
                    result: Err(TransferError::Unavailable(message)),
                });
                return;
            }
        }
        if let Some(tx) = self.active.get_mut(&tx_id) {
            if same_transfer(&tx.request, &request) {
                if tx.replied {
                    let response = response_of(&tx_id, tx, now_us, Outcome::Committed, None, None);
                    out.push(Action::Reply {
                        client,
                        result: Ok(response),
                    });
                } else {
                    tx.clients.push(client); // same transfer still running: wait for it
                }
            } else {
                let message = format!(
                    "tx_id {tx_id} is in use by a different transfer that is still running"
                );
                out.push(Action::Reply {
                    client,
                    result: Err(TransferError::Conflict(message)),
                });
            }
            return;
        }
        if self.active.len() >= COORDINATOR_TX_ACTIVE_MAX {
            let message = format!(
                "{COORDINATOR_TX_ACTIVE_MAX} transactions are already running; retry shortly"
            );
            out.push(Action::Reply {
                client,
                result: Err(TransferError::Unavailable(message)),
            });
            return;
        }
        self.ts_max = ts;
        let legs = self.legs_of(&request);
        let one_phase = legs.len() == 1;
        if one_phase && request.tx_id.is_some() && !self.connected.contains(&legs[0].node) {
            // This may be a retry of a one-phase transfer that the node
            // committed before this coordinator restarted (its FINISHED
            // record is not forced; the node's COMMITTED record is). Only the
            // node knows, so never answer "aborted" without asking it.
            let message = format!(
                "node {} is unreachable, and only it knows whether {tx_id} ran before; retry with the same tx_id",
                legs[0].node
            );
            out.push(Action::Reply {
                client,
                result: Err(TransferError::Unavailable(message)),
            });
            return;
        }
        let nodes: Vec<NodeId> = legs.iter().map(|l| l.node.clone()).collect();
        out.push(Action::Emit(EventKind::TxStarted {
            tx_id: tx_id.clone(),
            from: request.from.clone(),
            to: request.to.clone(),
            amount_cents: request.amount_cents,
            nodes,
            one_phase,
        }));
        let mut tx = Tx {
            request,
            ts,
            legs: legs.clone(),
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
        let mut unreachable = false;
        for leg in &legs {
            if !self.connected.contains(&leg.node) {
                tx.votes.insert(
                    leg.node.clone(),
                    (VoteView::NoAnswer, Some(AbortReason::NodeUnreachable)),
                );
                unreachable = true;
                continue;
            }
            let epoch = self.epoch();
            let msg = if one_phase {
                Request::CommitOnePhase {
                    tx_id: tx_id.clone(),
                    ts,
                    epoch,
                    ops: leg.ops.clone(),
                }
            } else {
                Request::Prepare {
                    tx_id: tx_id.clone(),
                    ts,
                    epoch,
                    ops: leg.ops.clone(),
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
    fn auto_tx_id(&mut self) -> TxId {
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
    fn unreconciled_blocker(&self, now_us: u64) -> Option<&NodeId> {
        let young = self
            .started_us
            .is_some_and(|at| now_us < at.saturating_add(self.config.prepare_timeout_us));
        self.unreconciled
            .iter()
            .find(|node| young || self.connected.contains(*node))
    }

    /// The seq of the record a remembered outcome waits for, if any.
    fn undurable_seq(&self, tx_id: &str) -> Option<u64> {
        self.undurable
            .iter()
            .find(|(_, id)| id == tx_id)
            .map(|(seq, _)| *seq)
    }

    fn validate(&self, request: &TransferRequest) -> Result<(), String> {
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

    fn legs_of(&self, request: &TransferRequest) -> Vec<Leg> {
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

    // ----- messages from nodes -----

    fn on_node_message(&mut self, now_us: u64, node: NodeId, msg: Reply, out: &mut Vec<Action>) {
        match msg {
            Reply::Vote {
                tx_id,
                vote,
                reason,
            } => self.on_vote(now_us, node, tx_id, vote, reason, out),
            Reply::Outcome {
                tx_id,
                decision,
                reason,
            } => self.on_one_phase_outcome(now_us, node, tx_id, decision, reason, out),
            Reply::Applied { tx_id } => self.on_applied(now_us, node, tx_id, out),
            Reply::Ack { tx_id, decision } => self.on_ack(now_us, node, tx_id, decision, out),
            Reply::InDoubt { tx_ids } => self.on_in_doubt(node, tx_ids, out),
            // Hello, query results and errors are the driver's business.
            Reply::Hello { .. }
            | Reply::Welcome { .. }
            | Reply::QueryResult { .. }
            | Reply::Error { .. } => {}
        }
    }

    fn on_vote(
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

    fn decide_commit(&mut self, tx_id: &TxId, out: &mut Vec<Action>) {
        let Some(tx) = self.active.get(tx_id) else {
            return;
        };
        let record = CoordinatorRecord::Commit {
            tx_id: tx_id.clone(),
            ts: tx.ts,
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

    fn on_durable(&mut self, now_us: u64, seq: u64, out: &mut Vec<Action>) {
        self.durable_seq = self.durable_seq.max(seq);
        while self
            .undurable
            .front()
            .is_some_and(|(undurable_seq, _)| *undurable_seq <= self.durable_seq)
        {
            self.undurable.pop_front();
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
                record: "commit".to_string(),
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
    fn send_commits(&mut self, now_us: u64, tx_id: &TxId, out: &mut Vec<Action>) -> bool {
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
    fn on_applied(&mut self, now_us: u64, node: NodeId, tx_id: TxId, out: &mut Vec<Action>) {
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
    fn reply_when_applied(&mut self, now_us: u64, tx_id: &TxId, out: &mut Vec<Action>) {
        if self
            .active
            .get(tx_id)
            .is_some_and(|tx| !tx.replied && tx.pending_applied.is_empty())
        {
            self.reply_committed(now_us, tx_id, None, out);
        }
    }

    fn on_ack(
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
                record: "committed".to_string(),
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
            Phase::AskingOnePhaseOutcome => {
                let reason = match decision {
                    Decision::Commit => None,
                    Decision::Abort => Some(AbortReason::Timeout),
                };
                self.settle_one_phase(now_us, node, tx_id, decision, reason, out);
            }
            _ => {}
        }
    }

    fn on_one_phase_outcome(
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

    fn settle_one_phase(
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

    fn on_in_doubt(&mut self, node: NodeId, tx_ids: Vec<TxId>, out: &mut Vec<Action>) {
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
            let Some(decision) = self.in_doubt_answer(&node, &tx_id, out) else {
                continue;
            };
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
    fn in_doubt_answer(
        &mut self,
        node: &NodeId,
        tx_id: &TxId,
        out: &mut Vec<Action>,
    ) -> Option<Decision> {
        if let Some(tx) = self.active.get(tx_id) {
            let leg = tx.legs.iter().any(|l| l.node == *node);
            return match tx.phase {
                _ if !leg || tx.one_phase => Some(Decision::Abort),
                Phase::PausedBeforeCommit | Phase::Committing => Some(Decision::Commit),
                Phase::Preparing
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

    // ----- nodes coming and going -----

    fn on_node_up(&mut self, node: NodeId, out: &mut Vec<Action>) {
        self.connected.insert(node.clone());
        self.recovery_pending.insert(node.clone());
        out.push(Action::Send {
            node: node.clone(),
            msg: Request::Recover,
        });
        out.push(Action::Emit(EventKind::RecoveryQuery {
            node: node.clone(),
        }));
        for (tx_id, tx) in self.active.sorted() {
            let msg = match tx.phase {
                Phase::Committing if tx.pending_acks.contains(&node) => Request::Commit {
                    tx_id: tx_id.clone(),
                },
                Phase::AskingOnePhaseOutcome if tx.legs[0].node == node => Request::Rollback {
                    tx_id: tx_id.clone(),
                },
                _ => continue,
            };
            out.push(Action::Send {
                node: node.clone(),
                msg,
            });
        }
    }

    fn on_node_down(&mut self, now_us: u64, node: NodeId, out: &mut Vec<Action>) {
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
                // with rollback once it is back; its ack says what it did.
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

    // ----- timers -----

    fn on_tick(&mut self, now_us: u64, out: &mut Vec<Action>) {
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

    fn on_vote_timeout(&mut self, now_us: u64, tx_id: &TxId, out: &mut Vec<Action>) {
        let Some(tx) = self.active.get_mut(tx_id) else {
            return;
        };
        if tx.phase != Phase::Preparing {
            return;
        }
        if tx.one_phase {
            // The node may have committed: never guess. Ask with rollback,
            // whose ack says what it did.
            tx.phase = Phase::AskingOnePhaseOutcome;
            let node = tx.legs[0].node.clone();
            if self.connected.contains(&node) {
                out.push(Action::Send {
                    node,
                    msg: Request::Rollback {
                        tx_id: tx_id.clone(),
                    },
                });
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

    fn on_phase_pause(&mut self, now_us: u64, tx_id: &TxId, out: &mut Vec<Action>) {
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

    fn on_commit_retry(&mut self, now_us: u64, tx_id: &TxId, out: &mut Vec<Action>) {
        let Some(tx) = self.active.get(tx_id) else {
            return;
        };
        let msg = match tx.phase {
            Phase::Committing => Request::Commit {
                tx_id: tx_id.clone(),
            },
            Phase::AskingOnePhaseOutcome => Request::Rollback {
                tx_id: tx_id.clone(),
            },
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

    fn on_ack_wait(&mut self, now_us: u64, tx_id: &TxId, out: &mut Vec<Action>) {
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
    fn reply_committed_once_sent(&mut self, now_us: u64, tx_id: &TxId, out: &mut Vec<Action>) {
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
    fn reply_committed(
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

    // ----- endings -----

    fn decide_abort(
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

    fn finish(
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
        // client's promise does: an `aborted` answer is only given once it is
        // on disk, so a retry of this tx_id after a coordinator crash gets
        // the same answer instead of running the transfer again. (A one-phase
        // outcome needs no force: its node remembers it and answers a rerun
        // the same way.)
        let forced = decision == Decision::Abort;
        let seq = self.take_seq();
        out.push(Action::Persist {
            seq,
            record,
            sync: forced,
        });
        let legs = std::mem::take(&mut tx.legs);
        self.remember(tx_id.clone(), Some(tx.request), &response, &legs);
        if forced {
            self.undurable.push_back((seq, tx_id.clone()));
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

    fn remember(
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
    fn presume_aborted(&mut self, tx_id: TxId, out: &mut Vec<Action>) {
        let seq = self.take_seq();
        out.push(Action::Persist {
            seq,
            record: CoordinatorRecord::PresumedAbort {
                tx_id: tx_id.clone(),
            },
            sync: true,
        });
        self.undurable.push_back((seq, tx_id.clone()));
        self.remember(tx_id.clone(), None, &presumed_abort_response(&tx_id), &[]);
    }

    fn take_crash(&mut self, point: CrashPoint, out: &mut Vec<Action>) -> bool {
        if self.faults.crash_at != Some(point) {
            return false;
        }
        self.faults.crash_at = None;
        out.push(Action::Crash(point));
        true
    }

    /// Arms the timers of a transaction waiting for its commit acks: resend
    /// the decision, and answer the client anyway.
    fn arm_commit_timers(&mut self, now_us: u64, tx_id: &TxId) {
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
    fn arm(&mut self, at: u64, kind: TimerKind, tx_id: &TxId) {
        if let Some(tx) = self.active.get_mut(tx_id) {
            tx.armed.push((at, kind));
            self.timers.insert((at, kind, tx_id.clone()));
        }
    }

    /// Removes every timer of a transaction that is leaving `active`.
    fn disarm(&mut self, tx_id: &TxId, tx: &mut Tx) {
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

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Makes room for every outcome it may remember, once, so the index
    /// never grows (and stalls the process) while it runs; see
    /// [`Remembered::reserve_all`]. For the processes, not for the model
    /// checker's many copies.
    pub fn reserve_remembered_outcomes(&mut self) {
        self.finished.reserve_all();
    }

    // ----- read-only views -----

    pub fn active(&self) -> Vec<ActiveTx> {
        self.active
            .sorted()
            .into_iter()
            .map(|(id, tx)| ActiveTx {
                tx_id: id.clone(),
                state: match tx.phase {
                    Phase::Preparing | Phase::AskingOnePhaseOutcome => TxState::Active,
                    Phase::PausedBeforeDecision | Phase::Deciding { .. } => TxState::Prepared,
                    Phase::PausedBeforeCommit | Phase::Committing => TxState::Committed,
                },
                request: tx.request.clone(),
                legs: tx.legs.clone(),
                pending_acks: tx.pending_acks.iter().cloned().collect(),
                started_us: tx.started_us,
            })
            .collect()
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// The first outcome of a finished transaction, if still remembered.
    pub fn finished(&self, tx_id: &str) -> Option<TransferResponse> {
        self.finished_response(tx_id)
    }

    fn finished_response(&self, tx_id: &str) -> Option<TransferResponse> {
        let f = self.finished.get(tx_id)?;
        Some(f.response(tx_id, |r| self.legs_of(r)))
    }

    /// A finished transaction with the transfer it was.
    /// A finished transaction with the transfer it was (`None` for a
    /// presumed abort: this log never knew the transfer).
    pub fn finished_with_request(
        &self,
        tx_id: &str,
    ) -> Option<(Option<&TransferRequest>, TransferResponse)> {
        let f = self.finished.get(tx_id)?;
        Some((f.request.as_ref(), f.response(tx_id, |r| self.legs_of(r))))
    }

    pub fn is_connected(&self, node: &str) -> bool {
        self.connected.contains(node)
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }
}

/// The remembered first outcome, as an answer to a repeated tx_id.
fn repeated(first: TransferResponse) -> TransferResponse {
    let mut response = first;
    response.detail = Some(match response.detail.take() {
        Some(d) if d.contains("first outcome") => d,
        Some(d) => format!("{d} (first outcome of this tx_id)"),
        None => "first outcome of this tx_id".to_string(),
    });
    response
}

fn same_transfer(a: &TransferRequest, b: &TransferRequest) -> bool {
    a.from == b.from && a.to == b.to && a.amount_cents == b.amount_cents
}

/// Answers every client waiting for a transaction with the same response;
/// usually there is one, and it gets the response itself, not a copy.
fn reply_to_all(clients: Vec<ClientId>, response: TransferResponse, out: &mut Vec<Action>) {
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

fn response_of(
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

fn recovered_response(
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
fn presumed_abort_response(tx_id: &TxId) -> TransferResponse {
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
