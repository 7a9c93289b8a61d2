//! The one fold of a transaction's live events: its state, votes, outcome,
//! the acks it still waits for, and when each protocol phase started and
//! ended. The hub's history, the coordinator's phase metrics and the
//! dashboard all read a transaction through [`TxFold`].
//!
//! The fold is pure and knows no clock: each event comes with a time of the
//! caller's choosing (`at`), usually the event's `ts_ms`; the coordinator's
//! metrics pass a monotonic clock reading to time phases below a
//! millisecond. It knows no transaction id either: the caller routes each
//! event by [`EventKind::tx_id`].

use crate::api::NodeVote;
use crate::events::{EventKind, COORDINATOR};
use crate::limits::TX_NODES_MAX;
use crate::views::{Outcome, TransactionSummary, TxState, VoteView};
use crate::wire::{AbortReason, Decision, NodeId};

/// The record whose force makes the coordinator's COMMIT decision durable
/// (`log_forced` with `node: coordinator`).
pub const COMMIT_RECORD: &str = "commit";
/// The coordinator's forced record of an abort (an aborted transfer's
/// outcome, or a presumed abort's), made durable before the client is
/// answered.
pub const ABORT_RECORD: &str = "abort";
/// The coordinator's forced record of a one-phase commit's outcome.
pub const FINISHED_RECORD: &str = "finished";
/// A node's forced PREPARED record (before it votes ready).
pub const PREPARED_RECORD: &str = "prepared";
/// A node's forced COMMITTED record (before its ack of a commit).
pub const COMMITTED_RECORD: &str = "committed";

const _: () = assert!(TX_NODES_MAX <= 32, "a NodeSet is a u32");

/// The timed phases of a two-phase commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `tx_started` → the last vote.
    PrepareRound,
    /// The last `ready` vote → the COMMIT decision durable (group commit,
    /// fdatasync and step mode's pause).
    DecisionForce,
    /// The first `commit_sent` → the last node's commit `ack`.
    CommitRound,
}

/// When a phase started and ended, as far as the events showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span<T> {
    pub started: Option<T>,
    pub ended: Option<T>,
}

impl<T: Copy> Span<T> {
    /// Both ends, once the phase has run from start to end.
    pub fn bounds(&self) -> Option<(T, T)> {
        self.started.zip(self.ended)
    }
}

/// How a fold tells one node of its transaction from another. A node's
/// name ([`NodeId`]) is exact; a key computed from it keeps a fold free of
/// allocations where memory is fixed in advance (the metrics' table).
pub trait NodeKey: Clone + Default {
    fn of(node: &str) -> Self;
    fn is(&self, node: &str) -> bool;
}

impl NodeKey for NodeId {
    fn of(node: &str) -> Self {
        node.to_string()
    }

    fn is(&self, node: &str) -> bool {
        self == node
    }
}

/// A node's vote: what it said and why.
pub type Cast = (VoteView, Option<AbortReason>);

/// Nodes of one transaction, by their index in its `tx_started`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct NodeSet(u32);

impl NodeSet {
    /// The first `len` nodes.
    fn first(len: usize) -> NodeSet {
        NodeSet(u32::MAX.checked_shr(32 - len as u32).unwrap_or(0))
    }

    fn contains(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }

    fn insert(&mut self, i: usize) {
        self.0 |= 1 << i;
    }

    fn remove(&mut self, i: usize) {
        self.0 &= !(1 << i);
    }

    fn minus(self, other: NodeSet) -> NodeSet {
        NodeSet(self.0 & !other.0)
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// One transaction (one attempt of a `tx_id`) as its events tell it.
///
/// Rules, each applied once however often its event repeats:
/// - **State.** `active` from `tx_started`; `prepared` once every node
///   voted `ready`; then the decision, which never changes: `committed` from
///   the coordinator's COMMIT record durable (`log_forced`), `decision`,
///   `tx_finished` or `tx_ended`, or a commit sent or acknowledged (only a
///   durable commit is ever sent); `aborted` from `decision`, `tx_finished`
///   or a rollback sent. A `resolved` decides a transaction still undecided
///   (one the coordinator forgot in a crash: presumed abort), unless it is
///   about another attempt (a node that is not one of its nodes, or a
///   one-phase transfer, which no node holds in doubt).
/// - **Votes.** A node's first vote counts, as at the coordinator.
/// - **Pending acks.** A node owes an ack from the moment the COMMIT
///   decision is durable (or a commit is sent to it, or resolved to it)
///   until its commit `ack`, or until `tx_ended` (the END record: every ack
///   is in). The durable decision, not the message, is what binds a node:
///   a node that is unreachable then gets no `commit_sent` (the commit goes
///   out when it is back, without an event) and still owes its ack, and so
///   do the nodes of a transaction paused before its commits. A one-phase
///   transfer owes none: its node's answer is its outcome.
/// - **Held messages.** A `message_held` counts a message of this
///   transaction parked by the coordinator (demo mode) until its
///   `message_released` or `message_dropped`; nothing else changes (what a
///   dropped prepare means arrives as the vote timeout that follows).
/// - **A new attempt.** A `tx_started` starts over: the coordinator forgot
///   the earlier attempt (a crash before its decision) and runs the id
///   again.
///
/// A fold that did not see `tx_started` (see [`TxFold::resume`]) learns the
/// nodes from the events that name them, and never claims that every node
/// voted or acked. Events of no single transaction (a coordinator's or a
/// node's status, `in_doubt_reported`) change nothing: what a crash means
/// for a transaction reaches it as `resolved` or as the acks that follow.
#[derive(Debug, Clone, PartialEq)]
pub struct TxFold<T = u64, K = NodeId> {
    /// The nodes, in the order of `tx_started`; `nodes[..nodes_len]` are set.
    nodes: [K; TX_NODES_MAX],
    nodes_len: usize,
    /// `tx_started` named every node (and no more than it can follow).
    nodes_complete: bool,
    one_phase: bool,
    state: TxState,
    reason: Option<AbortReason>,
    votes: [Option<Cast>; TX_NODES_MAX],
    owes_ack: NodeSet,
    acked_commit: NodeSet,
    /// Messages of it the coordinator holds now.
    held: u16,
    /// The outcome the client was given and how long it took.
    finished: Option<(Outcome, f64)>,
    started_at: Option<T>,
    votes_in_at: Option<T>,
    durable_at: Option<T>,
    commit_sent_at: Option<T>,
    acks_in_at: Option<T>,
    finished_at: Option<T>,
    ended_at: Option<T>,
}

impl<T, K: NodeKey> Default for TxFold<T, K> {
    fn default() -> Self {
        TxFold {
            nodes: std::array::from_fn(|_| K::default()),
            nodes_len: 0,
            nodes_complete: false,
            one_phase: false,
            state: TxState::Active,
            reason: None,
            votes: [None; TX_NODES_MAX],
            owes_ack: NodeSet::default(),
            acked_commit: NodeSet::default(),
            held: 0,
            finished: None,
            started_at: None,
            votes_in_at: None,
            durable_at: None,
            commit_sent_at: None,
            acks_in_at: None,
            finished_at: None,
            ended_at: None,
        }
    }
}

fn state_of(decision: Decision) -> TxState {
    match decision {
        Decision::Commit => TxState::Committed,
        Decision::Abort => TxState::Aborted,
    }
}

fn decision_of(outcome: Outcome) -> Decision {
    match outcome {
        Outcome::Committed => Decision::Commit,
        Outcome::Aborted => Decision::Abort,
    }
}

impl<T: Copy, K: NodeKey> TxFold<T, K> {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one event of this transaction, which happened at `at`. Returns
    /// the phase this event ended, if it ended one (see [`TxFold::span`] for
    /// its bounds).
    pub fn apply(&mut self, at: T, kind: &EventKind) -> Option<Phase> {
        match kind {
            EventKind::TxStarted {
                nodes, one_phase, ..
            } => {
                self.start(at, nodes, *one_phase);
                None
            }
            EventKind::PrepareSent { node, .. } => {
                self.index_of(node);
                None
            }
            EventKind::Vote {
                node, vote, reason, ..
            } => self.vote(at, node, *vote, *reason),
            EventKind::LogForced { node, record, .. }
                if node == COORDINATOR && record == COMMIT_RECORD =>
            {
                self.commit_durable(at)
            }
            EventKind::LogForced { node, .. } => {
                self.index_of(node);
                None
            }
            EventKind::Decision {
                decision: Decision::Commit,
                ..
            } => self.commit_durable(at),
            // A presumed abort (the coordinator's log never decided the id)
            // aborts a two-phase attempt, but not a one-phase one: only its
            // node decides that.
            EventKind::Decision {
                decision: Decision::Abort,
                reason: Some(AbortReason::CoordinatorCrashed),
                ..
            } if self.one_phase => None,
            EventKind::Decision {
                decision: Decision::Abort,
                reason,
                ..
            } => {
                self.decide(Decision::Abort, *reason);
                None
            }
            EventKind::CommitSent { node, .. } => {
                self.decide(Decision::Commit, None);
                self.commit_sent_at.get_or_insert(at);
                if let Some(i) = self.index_of(node) {
                    self.owe_ack(i);
                }
                None
            }
            EventKind::RollbackSent { node, .. } => {
                self.index_of(node);
                self.decide(Decision::Abort, None);
                None
            }
            EventKind::Ack { node, decision, .. } => self.ack(at, node, *decision),
            EventKind::TxFinished {
                outcome,
                reason,
                duration_ms,
                ..
            } => {
                self.decide(decision_of(*outcome), *reason);
                if self.finished.is_none() && self.state == state_of(decision_of(*outcome)) {
                    self.finished = Some((*outcome, *duration_ms));
                    self.finished_at = Some(at);
                }
                None
            }
            EventKind::TxEnded { .. } => {
                self.decide(Decision::Commit, None);
                self.ended_at.get_or_insert(at);
                self.owes_ack = NodeSet::default();
                None
            }
            EventKind::Resolved { node, decision, .. } => {
                self.resolved(node, *decision);
                None
            }
            EventKind::MessageHeld { .. } => {
                self.held = self.held.saturating_add(1);
                None
            }
            EventKind::MessageReleased { .. } | EventKind::MessageDropped { .. } => {
                self.held = self.held.saturating_sub(1);
                None
            }
            EventKind::Snapshot(_)
            | EventKind::Lagged { .. }
            | EventKind::NodeState { .. }
            | EventKind::RecoveryQuery { .. }
            | EventKind::InDoubtReported { .. }
            | EventKind::NodeStatus { .. }
            | EventKind::CoordinatorStatus { .. }
            | EventKind::Fault { .. }
            | EventKind::Balances { .. } => None,
        }
    }

    fn start(&mut self, at: T, nodes: &[NodeId], one_phase: bool) {
        *self = Self::default();
        self.one_phase = one_phase;
        self.started_at = Some(at);
        for node in nodes.iter().take(TX_NODES_MAX) {
            self.index_of(node);
        }
        self.nodes_complete = nodes.len() == self.nodes_len;
    }

    /// The index of `node`, learning it if this fold did not see every node
    /// named (`None` for a node it cannot follow).
    fn index_of(&mut self, node: &str) -> Option<usize> {
        if let Some(i) = self.position(node) {
            return Some(i);
        }
        if self.nodes_complete || self.nodes_len == TX_NODES_MAX || node == COORDINATOR {
            return None;
        }
        self.nodes[self.nodes_len] = K::of(node);
        self.nodes_len += 1;
        Some(self.nodes_len - 1)
    }

    fn position(&self, node: &str) -> Option<usize> {
        self.nodes[..self.nodes_len].iter().position(|k| k.is(node))
    }

    fn all(&self) -> NodeSet {
        NodeSet::first(self.nodes_len)
    }

    fn vote(
        &mut self,
        at: T,
        node: &str,
        vote: VoteView,
        reason: Option<AbortReason>,
    ) -> Option<Phase> {
        let i = self.index_of(node)?;
        if self.votes[i].is_some() {
            return None;
        }
        self.votes[i] = Some((vote, reason));
        let votes = &self.votes[..self.nodes_len];
        if !self.nodes_complete || votes.iter().any(Option::is_none) {
            return None;
        }
        self.votes_in_at = Some(at);
        if self.all_ready() && self.state == TxState::Active {
            self.state = TxState::Prepared;
        }
        Some(Phase::PrepareRound)
    }

    fn all_ready(&self) -> bool {
        self.nodes_complete
            && self.votes[..self.nodes_len]
                .iter()
                .all(|v| matches!(v, Some((VoteView::Ready, _))))
    }

    /// Sets the decision of a transaction still undecided; the reason of
    /// the decision taken is kept, the first one given. Whatever showed a
    /// commit showed that its decision is durable: every node owes an ack.
    fn decide(&mut self, decision: Decision, reason: Option<AbortReason>) {
        if matches!(self.state, TxState::Active | TxState::Prepared) {
            self.state = state_of(decision);
            self.owe_every_ack();
        }
        if self.state == state_of(decision) {
            self.reason = self.reason.or(reason);
        }
    }

    /// The COMMIT decision is durable: its record forced, or the decision
    /// that follows it.
    fn commit_durable(&mut self, at: T) -> Option<Phase> {
        self.decide(Decision::Commit, None);
        if self.state != TxState::Committed || self.one_phase || self.durable_at.is_some() {
            return None;
        }
        self.durable_at = Some(at);
        Some(Phase::DecisionForce)
    }

    fn owe_every_ack(&mut self) {
        for i in 0..self.nodes_len {
            self.owe_ack(i);
        }
    }

    fn owe_ack(&mut self, i: usize) {
        let bound = self.state == TxState::Committed && !self.one_phase;
        if bound && self.ended_at.is_none() && !self.acked_commit.contains(i) {
            self.owes_ack.insert(i);
        }
    }

    fn ack(&mut self, at: T, node: &str, decision: Decision) -> Option<Phase> {
        let i = self.index_of(node);
        if decision == Decision::Abort {
            return None; // a rollback's ack: it may be another attempt's
        }
        self.decide(Decision::Commit, None);
        let i = i?;
        self.owes_ack.remove(i);
        self.acked_commit.insert(i);
        let all_acked = self.all().minus(self.acked_commit).is_empty();
        let round_over = self.nodes_complete && all_acked && !self.one_phase;
        if !round_over || self.acks_in_at.is_some() {
            return None;
        }
        self.acks_in_at = Some(at);
        Some(Phase::CommitRound)
    }

    fn resolved(&mut self, node: &str, decision: Decision) {
        let other_attempt =
            self.nodes_complete && (self.one_phase || self.position(node).is_none());
        if other_attempt {
            return;
        }
        let i = self.index_of(node);
        self.decide(decision, None);
        if let Some(i) = i.filter(|_| decision == Decision::Commit) {
            self.owe_ack(i);
        }
    }

    pub fn state(&self) -> TxState {
        self.state
    }

    /// Why it aborted (the decision's reason).
    pub fn reason(&self) -> Option<AbortReason> {
        self.reason
    }

    /// The outcome the client was given (`tx_finished`), if it was.
    pub fn outcome(&self) -> Option<Outcome> {
        self.finished.map(|(outcome, _)| outcome)
    }

    /// The client's wait, as the coordinator measured it (`tx_finished`).
    pub fn duration_ms(&self) -> Option<f64> {
        self.finished.map(|(_, duration_ms)| duration_ms)
    }

    pub fn one_phase(&self) -> bool {
        self.one_phase
    }

    /// How many of its messages the coordinator holds now (step mode).
    pub fn held_messages(&self) -> u16 {
        self.held
    }

    /// Whether the END record is logged: the coordinator forgot it.
    pub fn ended(&self) -> bool {
        self.ended_at.is_some()
    }

    /// The nodes it knows, in the order of `tx_started`.
    pub fn nodes(&self) -> &[K] {
        &self.nodes[..self.nodes_len]
    }

    /// Each node with its vote (`None`: no vote seen).
    pub fn votes(&self) -> impl Iterator<Item = (&K, Option<Cast>)> {
        self.nodes().iter().zip(self.votes.iter().copied())
    }

    /// The nodes that owe an ack of the commit (see the rules above).
    pub fn pending_acks(&self) -> impl Iterator<Item = &K> {
        let owes = self.owes_ack;
        self.nodes()
            .iter()
            .enumerate()
            .filter(move |(i, _)| owes.contains(*i))
            .map(|(_, k)| k)
    }

    /// When `phase` started and ended. The decision force starts at the
    /// last vote only when every vote was `ready`; a one-phase transfer has
    /// only its prepare round (its node's answer ends it).
    pub fn span(&self, phase: Phase) -> Span<T> {
        match phase {
            Phase::PrepareRound => Span {
                started: self.started_at,
                ended: self.votes_in_at,
            },
            Phase::DecisionForce => Span {
                started: self
                    .votes_in_at
                    .filter(|_| self.all_ready() && !self.one_phase),
                ended: self.durable_at,
            },
            Phase::CommitRound => Span {
                started: self.commit_sent_at,
                ended: self.acks_in_at,
            },
        }
    }

    /// When `tx_started` came.
    pub fn started_at(&self) -> Option<T> {
        self.started_at
    }

    /// When the client was answered (`tx_finished`).
    pub fn finished_at(&self) -> Option<T> {
        self.finished_at
    }

    /// When the coordinator forgot it (`tx_ended`).
    pub fn ended_at(&self) -> Option<T> {
        self.ended_at
    }
}

impl TxFold<u64, NodeId> {
    /// Continues from a summary (of `GET /api/transactions` or a snapshot)
    /// for a transaction whose earlier events this fold never saw.
    pub fn resume(summary: &TransactionSummary) -> TxFold {
        let mut fold = TxFold {
            state: summary.state,
            reason: summary.reason,
            started_at: Some(summary.started_at_ms),
            ..TxFold::default()
        };
        let outcome = match summary.state {
            TxState::Committed => Some(Outcome::Committed),
            TxState::Aborted => Some(Outcome::Aborted),
            TxState::Active | TxState::Prepared => None,
        };
        fold.finished = outcome.zip(summary.duration_ms);
        for node in &summary.pending_acks {
            if let Some(i) = fold.index_of(node) {
                fold.owes_ack.insert(i);
            }
        }
        fold
    }

    /// Writes what the events decided into `summary`: state, reason,
    /// duration and pending acks (the transfer itself is the caller's).
    pub fn fill(&self, summary: &mut TransactionSummary) {
        summary.state = self.state;
        summary.reason = self.reason;
        summary.duration_ms = self.duration_ms();
        summary.pending_acks = self.pending_acks().cloned().collect();
    }

    /// Each node's vote as the API reports it (`no_answer` when none came).
    pub fn node_votes(&self) -> Vec<NodeVote> {
        self.votes()
            .map(|(node, cast)| NodeVote {
                node: node.clone(),
                vote: cast.map_or(VoteView::NoAnswer, |(vote, _)| vote),
                reason: cast.and_then(|(_, reason)| reason),
            })
            .collect()
    }
}
