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
//!   asks again with the same one-phase commit, which says which transfer
//!   it is about: the node answers what it did (or does it now), and
//!   refuses it if it did something else under that id.
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
//!
//! Where things are: this file holds the machine, its inputs and actions,
//! the per-transaction state and `handle`; each step has its own room:
//! - `admit`: a transfer's admission (checks, ids, known answers, start);
//! - `vote`: phase 1's votes and their timeout;
//! - `commit`: the commit point, the commits, `applied` and acks, answers;
//! - `one_phase`: transfers within one node;
//! - `outcome`: aborts, remembered outcomes, presumed aborts, answers;
//! - `nodes`: connections, recovery queries, in-doubt answers;
//! - `timers`: armed deadlines and the tick;
//! - `recover`: replay, epochs, checkpoints;
//! - `views`: read-only views for the driver and the API.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::api::{
    transfer_legs, CrashPoint, Leg, NodeVote, Outcome, TransferRequest, TransferResponse, TxState,
    VoteView,
};
use crate::events::{EventKind, COORDINATOR};
use crate::fold::{ABORT_RECORD, COMMITTED_RECORD, COMMIT_RECORD, FINISHED_RECORD};
use crate::limits::{
    ACCOUNT_ID_BYTES_MAX, ACK_WAIT_MS, AMOUNT_CENTS_MAX, COMMIT_RETRY_MS,
    COORDINATOR_OUTCOMES_KEPT_MAX, COORDINATOR_TX_ACTIVE_MAX, IN_DOUBT_SWEEP_MS,
    PREPARE_TIMEOUT_MS, TX_ID_BYTES_MAX,
};
use crate::protocol::record::{CoordinatorCheckpoint, CoordinatorRecord, Identity};
use crate::store::codec::CoordinatorCheckpointRef;
use crate::store::hasher::HashSeed;
use crate::store::keyed::Keyed;
use crate::store::remembered::{Remembered, RememberedSnapshot};
use crate::wire::{
    AbortReason, AccountId, ClusterId, Decision, Epoch, NodeId, Reply, Request, TxId, Vote,
};

mod admit;
mod commit;
mod nodes;
mod one_phase;
mod outcome;
mod recover;
mod timers;
mod views;
mod vote;

pub use recover::CoordinatorSnapshot;

use outcome::{presumed_abort_response, recovered_response, reply_to_all, response_of, Finished};

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
    /// The keys of the machine's hash maps (random in the process).
    pub hash_seed: HashSeed,
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
            hash_seed: HashSeed::default(),
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

/// A hash index of [`CoordinatorConfig::accounts`] (their ids come from
/// the configuration, not from clients: a fixed seed). It is derived from
/// that map, so equality and hashing (for the model checker) leave it out.
#[derive(Debug, Clone, Default)]
struct AccountIndex(HashMap<AccountId, NodeId, HashSeed>);

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
    ts_us: u64,
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
    ts_max_us: u64,
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
    /// order: an answer from one of them waits for its record (named as
    /// its `log_forced` event will name it).
    undurable: VecDeque<(u64, TxId, &'static str)>,
    /// Fixes taken away, for the checkers' own tests (volatile).
    #[cfg(feature = "mutants")]
    mutants: crate::protocol::mutants::Mutants,
}

impl Coordinator {
    pub fn set_faults(&mut self, faults: DemoFaults) {
        self.faults = faults;
    }

    /// Takes fixes away (see [`crate::protocol::mutants`]); tests of the
    /// checkers only. Volatile: `recover` starts without any.
    #[cfg(feature = "mutants")]
    #[doc(hidden)]
    pub fn set_mutants(&mut self, mutants: crate::protocol::mutants::Mutants) {
        self.mutants = mutants;
    }

    /// Whether a restarted incarnation waits for the nodes' in-doubt lists
    /// before running a client's unknown tx_id: always, but for a mutant.
    fn gates_unknown_ids(&self) -> bool {
        #[cfg(feature = "mutants")]
        if self.mutants.no_restart_gate {
            return false;
        }
        true
    }

    /// Whether a presumed abort is forced before it is answered: always,
    /// but for a mutant.
    fn forces_presumed_aborts(&self) -> bool {
        #[cfg(feature = "mutants")]
        if self.mutants.presumed_abort_unforced {
            return false;
        }
        true
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
            let timers = &mut self.timers;
            self.active.for_each_mut_unordered(|tx_id, tx| {
                if tx.phase == Phase::Committing {
                    timers.insert((retry_at_us, TimerKind::CommitRetry, tx_id.clone()));
                    tx.armed.push((retry_at_us, TimerKind::CommitRetry));
                }
            });
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

    fn take_crash(&mut self, point: CrashPoint, out: &mut Vec<Action>) -> bool {
        if self.faults.crash_at != Some(point) {
            return false;
        }
        self.faults.crash_at = None;
        out.push(Action::Crash(point));
        true
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
}
