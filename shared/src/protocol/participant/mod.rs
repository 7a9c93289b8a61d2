//! The participant: accounts, per-account locks, votes, apply.
//!
//! Rules it keeps (the README's "The protocol" has the whole story):
//! - `prepare` locks the accounts, checks them, forces a PREPARED record and
//!   only then votes `ready` (the vote is held until `Durable`).
//! - Before it has voted, it may abort on its own (lock wait timed out, no
//!   funds). After a `ready` vote it is **in doubt**: it keeps its locks
//!   until the coordinator's decision arrives, however long that takes.
//! - Every message is idempotent: outcomes are remembered, so a duplicate or
//!   late `prepare`, `commit` or `rollback` changes nothing.
//! - Deadlocks cannot form: transactions carry a timestamp `ts` (smaller is
//!   older); a transaction only ever waits for an *older* one, and one that
//!   finds an account held by a *younger* transaction dies at once
//!   (`lock_conflict`). Waits are also bounded by `lock_wait_us`.
//!
//! - A **heuristic decision** (`heuristic`, an operator's command for a
//!   node that cannot learn the decision) ends an in-doubt transaction
//!   without the coordinator: it is forced to the log as HEURISTIC and kept
//!   (not cut like ordinary outcomes). A later `commit`/`rollback` that
//!   agrees is acked; one that disagrees gets an `error` naming the
//!   mismatch, because atomicity is then broken and must not be hidden.
//! - **Identity**: a node serves one cluster, and obeys only the newest
//!   coordinator epoch it has seen. A coordinator connection is accepted
//!   (`Connect`) only for its bound cluster (the first one, made durable)
//!   and an epoch at least the highest seen; a new epoch is made durable
//!   first, closes older coordinator connections and aborts transactions
//!   of older epochs that have not voted. A `prepare` says what it is (its
//!   ops and epoch): one that contradicts what the node holds or remembers
//!   under that `tx_id` is refused (`protocol_error`), never answered from
//!   the old state.
//!
//! Locks are released as soon as a commit or rollback is *appended* (before
//! it is durable): the log is a sequence, so any later transaction's PREPARED
//! record can only be durable if this outcome record is too. For the same
//! reason a commit is answered twice: `applied` at once (reads see it), and
//! `ack` once its COMMITTED record is durable.
//!
//! Where things are: this file holds the machine, its inputs and actions,
//! the per-transaction state and `handle`; each step has its own room:
//! - `identity`: the coordinator a node serves (cluster, epochs);
//! - `prepare`: a `prepare` checked against what the node holds, validated,
//!   locked and logged;
//! - `locks`: the wait-die rule, lock waits and their expiry;
//! - `decide`: `commit` and `rollback`, applied to the balances and ledgers;
//! - `heuristic`: an operator's forced outcome, and its mismatch;
//! - `durable`: records to persist, and the sends held until they are;
//! - `recover`: replay and checkpoints;
//! - `views`: read-only views for the driver's queries.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::limits::{
    ledger_entries_kept_per_account, AMOUNT_CENTS_MAX, OPS_PER_TX_MAX,
    PARTICIPANT_HEURISTICS_KEPT_MAX, PARTICIPANT_OUTCOMES_KEPT_MAX, PARTICIPANT_TX_ACTIVE_MAX,
};
use crate::protocol::digest::{digest_matches, ops_digest, OpsDigest};
use crate::protocol::record::{ParticipantCheckpoint, ParticipantRecord};
use crate::store::codec::ParticipantCheckpointRef;
use crate::store::hasher::HashSeed;
use crate::store::keyed::Keyed;
use crate::store::remembered::{Remembered, RememberedSnapshot};
use crate::wire::{
    AbortReason, AccountBalance, AccountId, ClusterId, Decision, Epoch, HeuristicOutcome,
    InDoubtTx, LedgerEntry, NodeId, Op, ParticipantCrashPoint, Reply, Request, TxId, Vote,
};

mod decide;
mod durable;
mod heuristic;
mod identity;
mod locks;
mod prepare;
mod recover;
mod views;

pub use recover::{ParticipantSnapshot, RecoveryError};

use heuristic::Heuristic;
use prepare::Attempt;

/// Identifies a connection (or a simulated peer) that a reply goes back to.
pub type PeerId = u64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParticipantConfig {
    pub node: NodeId,
    /// Opening balances, used only when the log is empty.
    pub accounts: Vec<(AccountId, i64)>,
    /// Longest wait for an account lock before voting abort.
    pub lock_wait_us: u64,
    /// Whether `arm_crash` is obeyed (demo mode).
    pub faults_allowed: bool,
    /// The keys of the machine's hash maps (random in the process).
    pub hash_seed: HashSeed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    Message {
        from: PeerId,
        msg: Request,
    },
    /// Every record with `seq` or lower is durable.
    Durable {
        seq: u64,
    },
    /// Time passed: expire lock waits whose deadline is due.
    Tick,
    /// A connection proved it is a coordinator of `cluster` at `epoch`
    /// (the driver checked its `auth`); answered with `Accept` or `Close`.
    /// `legacy_history`: its log also holds decisions taken before cluster
    /// identities existed.
    Connect {
        from: PeerId,
        cluster: ClusterId,
        epoch: Epoch,
        legacy_history: bool,
    },
    /// A connection closed.
    Disconnect {
        from: PeerId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    Send {
        to: PeerId,
        msg: Reply,
    },
    /// Append `record` to the log; `sync` asks for an fdatasync now because
    /// a vote waits for it. Unforced records must still become durable
    /// within a bounded time (the next force, or the driver's lazy sync):
    /// a commit's `ack` waits for its unforced COMMITTED record.
    Persist {
        seq: u64,
        record: ParticipantRecord,
        sync: bool,
    },
    /// An armed crash point was reached: the process must die now.
    Crash(ParticipantCrashPoint),
    /// A coordinator connection is accepted (its `welcome` may go out):
    /// everything it depends on is durable.
    Accept {
        peer: PeerId,
    },
    /// Tell `peer` why in an `error` line, and close its connection.
    Close {
        peer: PeerId,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase {
    /// Waiting for locks (no vote yet).
    Waiting { deadline_us: u64 },
    /// Locked and logged; `seq` is the PREPARED record (voted once durable).
    Prepared { seq: u64, since_us: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Tx {
    ts_us: u64,
    /// The coordinator epoch of its `prepare` (0: prepared before epochs).
    epoch: Epoch,
    ops: Vec<Op>,
    /// Who asked: the vote or outcome goes there.
    peer: PeerId,
    one_phase: bool,
    phase: Phase,
}

/// A remembered outcome: the decision, and for a commit the digest of what
/// it applied (0: not known).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Done {
    decision: Decision,
    digest: OpsDigest,
}

impl Done {
    fn aborted() -> Done {
        Done {
            decision: Decision::Abort,
            digest: 0,
        }
    }

    fn committed(ops: &[Op]) -> Done {
        Done {
            decision: Decision::Commit,
            digest: ops_digest(ops),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Participant {
    config: ParticipantConfig,
    /// Hash maps (see [`Keyed`]); whatever leaves in an order is sorted.
    balances: Keyed<AccountId, i64>,
    /// Shared with checkpoint snapshots, copied on write: taking a snapshot
    /// copies no entries, and the first change after it copies only the
    /// ledger of the account it touches.
    ledgers: Keyed<AccountId, Arc<VecDeque<LedgerEntry>>>,
    txs: Keyed<TxId, Tx>,
    /// Account → the transaction holding its lock.
    locks: Keyed<AccountId, TxId>,
    /// Transactions waiting for locks, oldest first.
    waiting: BTreeSet<(u64, TxId)>,
    /// Decided transactions, oldest first (a checkpoint writes them in that
    /// order, so eviction order survives a restart).
    outcomes: Remembered<Done>,
    /// Heuristic decisions, never cut (at most PARTICIPANT_HEURISTICS_KEPT_MAX).
    heuristics: BTreeMap<TxId, Heuristic>,
    heuristic_order: Vec<TxId>,
    /// Messages held until a record is durable: (seq, action).
    held: VecDeque<(u64, Action)>,
    next_seq: u64,
    durable_seq: u64,
    /// Highest seq of a record a reply may wait for: a forced (`sync`)
    /// one, or a COMMITTED (unforced, durable with the next force or the
    /// driver's lazy sync). Answers about an outcome wait for this, not for
    /// the latest record: an `Aborted` record is awaited by nobody, so
    /// waiting for it could hold a reply needlessly.
    awaited_seq: u64,
    armed_crash: Option<ParticipantCrashPoint>,
    /// Fixes taken away, for the checkers' own tests (volatile).
    #[cfg(feature = "mutants")]
    mutants: crate::protocol::mutants::Mutants,
    /// The cluster this node serves (durable), once a coordinator bound it.
    cluster: Option<ClusterId>,
    /// The highest coordinator epoch seen (durable).
    epoch: Epoch,
    /// The record that made `cluster` and `epoch` what they are: an
    /// `Accept` waits for it.
    bound_seq: u64,
    /// Accepted coordinator connections and their epochs (volatile).
    coordinators: BTreeMap<PeerId, Epoch>,
}

impl Participant {
    pub fn handle(&mut self, now_us: u64, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Message { from, msg } => self.on_message(now_us, from, msg, &mut out),
            Input::Durable { seq } => self.on_durable(seq, &mut out),
            Input::Tick => self.on_tick(now_us, &mut out),
            Input::Connect {
                from,
                cluster,
                epoch,
                legacy_history,
            } => self.on_connect(now_us, from, cluster, epoch, legacy_history, &mut out),
            Input::Disconnect { from } => {
                self.coordinators.remove(&from);
            }
        }
        out
    }

    /// When the driver must feed `Tick` next (the nearest lock-wait deadline).
    pub fn next_deadline_us(&self) -> Option<u64> {
        let lock_wait = self
            .waiting
            .iter()
            .filter_map(|(_, id)| match self.txs.get(id).map(|tx| &tx.phase) {
                Some(Phase::Waiting { deadline_us }) => Some(*deadline_us),
                _ => None,
            })
            .min();
        let unsafe_abort = self.abort_in_doubt_after_us().and_then(|after_us| {
            self.txs
                .iter_unordered()
                .filter_map(|(_, tx)| match tx.phase {
                    Phase::Prepared { since_us, .. } => Some(since_us.saturating_add(after_us)),
                    _ => None,
                })
                .min()
        });
        match (lock_wait, unsafe_abort) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_message(&mut self, now_us: u64, from: PeerId, msg: Request, out: &mut Vec<Action>) {
        let from_coordinator = self.coordinators.contains_key(&from);
        let needs_coordinator = !matches!(
            msg,
            Request::Heuristic { .. } | Request::Query { .. } | Request::Auth { .. }
        );
        if needs_coordinator && !from_coordinator {
            let message = "only an accepted coordinator connection may send protocol messages; authenticate first"
                .to_string();
            out.push(Action::Send {
                to: from,
                msg: Reply::Error { message },
            });
            return;
        }
        match msg {
            Request::Prepare {
                tx_id,
                ts_us: ts,
                epoch,
                ops,
            } => {
                let attempt = Attempt {
                    tx_id,
                    ts_us: ts,
                    epoch,
                    ops,
                    one_phase: false,
                };
                self.on_prepare(now_us, from, attempt, out)
            }
            Request::CommitOnePhase {
                tx_id,
                ts_us: ts,
                epoch,
                ops,
            } => {
                let attempt = Attempt {
                    tx_id,
                    ts_us: ts,
                    epoch,
                    ops,
                    one_phase: true,
                };
                self.on_prepare(now_us, from, attempt, out)
            }
            Request::Auth { .. } => {
                let message = "already authenticated: `auth` is the first line only".to_string();
                out.push(Action::Send {
                    to: from,
                    msg: Reply::Error { message },
                });
            }
            Request::Commit { tx_id } => self.on_commit(now_us, from, tx_id, out),
            Request::Rollback { tx_id } => self.on_rollback(now_us, from, tx_id, out),
            Request::Recover => {
                let tx_ids = self.in_doubt(now_us).into_iter().map(|t| t.tx_id).collect();
                out.push(Action::Send {
                    to: from,
                    msg: Reply::InDoubt { tx_ids },
                });
            }
            Request::ArmCrash { point } => {
                if self.config.faults_allowed {
                    self.armed_crash = Some(point);
                } else {
                    let message =
                        "fault injection is disabled on this node (start it with --allow-faults)"
                            .to_string();
                    out.push(Action::Send {
                        to: from,
                        msg: Reply::Error { message },
                    });
                }
            }
            Request::Heuristic { tx_id, decision } => {
                self.on_heuristic(now_us, from, tx_id, decision, out)
            }
            Request::Query { .. } => {
                // Queries are read-only and answered by the driver from the
                // accessors below; they never reach the protocol.
                let message = "queries are answered by the driver, not the protocol".to_string();
                out.push(Action::Send {
                    to: from,
                    msg: Reply::Error { message },
                });
            }
        }
    }

    fn remember(&mut self, tx_id: TxId, done: Done) {
        self.outcomes.insert(tx_id, done);
    }
}

/// What is remembered of a decision taken for `ops`.
fn done_of(decision: Decision, ops: &[Op]) -> Done {
    match decision {
        Decision::Commit => Done::committed(ops),
        Decision::Abort => Done::aborted(),
    }
}

fn reason_for(decision: Decision) -> Option<AbortReason> {
    match decision {
        Decision::Commit => None,
        Decision::Abort => Some(AbortReason::AlreadyAborted),
    }
}

fn refusal(tx_id: &TxId, one_phase: bool, reason: AbortReason) -> Reply {
    if one_phase {
        Reply::Outcome {
            tx_id: tx_id.clone(),
            decision: Decision::Abort,
            reason: Some(reason),
        }
    } else {
        Reply::Vote {
            tx_id: tx_id.clone(),
            vote: Vote::Abort,
            reason: Some(reason),
        }
    }
}
