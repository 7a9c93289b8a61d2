//! The participant: accounts, per-account locks, votes, apply.
//!
//! Rules it keeps (DESIGN.md, "The protocol"):
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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::limits::{
    ledger_entries_kept_per_account, AMOUNT_CENTS_MAX, OPS_PER_TX_MAX,
    PARTICIPANT_HEURISTICS_KEPT_MAX, PARTICIPANT_OUTCOMES_KEPT_MAX, PARTICIPANT_TX_ACTIVE_MAX,
};
use crate::protocol::digest::{digest_matches, ops_digest, OpsDigest};
use crate::protocol::keyed::Keyed;
use crate::protocol::record::{ParticipantCheckpoint, ParticipantCheckpointRef, ParticipantRecord};
use crate::protocol::remembered::{Remembered, RememberedSnapshot};
use crate::wire::{
    AbortReason, AccountBalance, AccountId, ClusterId, Decision, Epoch, HeuristicOutcome,
    InDoubtTx, LedgerEntry, NodeId, Op, ParticipantCrashPoint, Reply, Request, TxId, Vote,
};

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
    ts: u64,
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

/// A heuristic decision: what was forced, and what the coordinator said
/// about it since (volatile).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Heuristic {
    decision: Decision,
    ops: Vec<Op>,
    coordinator_decision: Option<Decision>,
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
    /// Tests only: see [`Participant::set_unsafe_abort_in_doubt_after_us`].
    unsafe_abort_in_doubt_after_us: Option<u64>,
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

/// What a checkpoint holds, taken at one moment, to be encoded later (see
/// [`Participant::checkpoint_snapshot`]).
#[derive(Debug, Clone)]
pub struct ParticipantSnapshot {
    accounts: Vec<(AccountId, i64)>,
    ledgers: Vec<(AccountId, Arc<VecDeque<LedgerEntry>>)>,
    prepared: Vec<(TxId, u64, Epoch, Vec<Op>)>,
    outcomes: RememberedSnapshot<Done>,
    heuristics: Vec<(TxId, Decision, Vec<Op>)>,
    cluster: Option<ClusterId>,
    epoch: Epoch,
}

impl ParticipantSnapshot {
    /// The checkpoint record's bytes, as they were when it was taken.
    pub fn encode(&self) -> Vec<u8> {
        self.parts().encode()
    }

    /// Everything durable, borrowed. Outcomes and heuristics go oldest first.
    fn parts(&self) -> ParticipantCheckpointRef<'_> {
        ParticipantCheckpointRef {
            accounts: self.accounts.iter().map(|(a, b)| (a, *b)).collect(),
            ledgers: self.ledgers.iter().map(|(a, e)| (a, &**e)).collect(),
            prepared: self
                .prepared
                .iter()
                .map(|(id, ts, epoch, ops)| (id, *ts, *epoch, ops.as_slice()))
                .collect(),
            outcomes: self
                .outcomes
                .collect_oldest_first(|(id, done)| (id, done.decision, done.digest)),
            heuristics: self
                .heuristics
                .iter()
                .map(|(id, d, ops)| (id, *d, ops.as_slice()))
                .collect(),
            cluster: self.cluster.as_ref(),
            epoch: self.epoch,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecoveryError {
    #[error("log record {index} of node {node} cannot be read: {detail}")]
    BadRecord {
        node: NodeId,
        index: usize,
        detail: String,
    },
    #[error("log of node {node} is inconsistent at record {index}: {detail}")]
    Inconsistent {
        node: NodeId,
        index: usize,
        detail: String,
    },
}

impl Participant {
    /// The record a fresh data dir starts with: the opening balances.
    pub fn init_record(config: &ParticipantConfig) -> ParticipantRecord {
        ParticipantRecord::Init {
            accounts: config.accounts.clone(),
        }
    }

    /// Rebuilds the durable state by replaying the log. An empty log means a
    /// fresh node with the configured opening balances (the driver must then
    /// persist [`Participant::init_record`] before serving). Prepared
    /// transactions come back in doubt, holding their locks.
    pub fn recover(
        config: ParticipantConfig,
        records: &[ParticipantRecord],
    ) -> Result<Participant, RecoveryError> {
        let mut p = Participant {
            balances: config.accounts.iter().cloned().collect(),
            ledgers: config
                .accounts
                .iter()
                .map(|(a, _)| (a.clone(), Arc::default()))
                .collect(),
            config,
            txs: Keyed::new(),
            locks: Keyed::new(),
            waiting: BTreeSet::new(),
            outcomes: Remembered::new(PARTICIPANT_OUTCOMES_KEPT_MAX),
            heuristics: BTreeMap::new(),
            heuristic_order: Vec::new(),
            held: VecDeque::new(),
            next_seq: 1,
            durable_seq: 0,
            awaited_seq: 0,
            armed_crash: None,
            unsafe_abort_in_doubt_after_us: None,
            cluster: None,
            epoch: 0,
            bound_seq: 0,
            coordinators: BTreeMap::new(),
        };
        for (index, record) in records.iter().enumerate() {
            p.replay(index, record)?;
        }
        Ok(p)
    }

    fn replay(&mut self, index: usize, record: &ParticipantRecord) -> Result<(), RecoveryError> {
        let node = self.config.node.clone();
        let inconsistent = |detail: String| RecoveryError::Inconsistent {
            node: node.clone(),
            index,
            detail,
        };
        match record {
            ParticipantRecord::Init { accounts } => {
                self.balances = accounts.iter().cloned().collect();
                self.ledgers = accounts
                    .iter()
                    .map(|(a, _)| (a.clone(), Arc::default()))
                    .collect();
            }
            ParticipantRecord::Prepared {
                tx_id,
                ts,
                epoch,
                ops,
            } => {
                if self.outcomes.contains_key(tx_id) || self.txs.contains_key(tx_id) {
                    return Ok(()); // a duplicate prepare that was logged again: nothing new
                }
                for op in ops {
                    if !self.balances.contains_key(&op.account) {
                        return Err(inconsistent(format!(
                            "{tx_id} prepares unknown account {}",
                            op.account
                        )));
                    }
                    if let Some(holder) = self.locks.get(&op.account) {
                        return Err(inconsistent(format!(
                            "{tx_id} locks {} held by {holder}",
                            op.account
                        )));
                    }
                }
                for op in ops {
                    self.locks.insert(op.account.clone(), tx_id.clone());
                }
                let tx = Tx {
                    ts: *ts,
                    epoch: *epoch,
                    ops: ops.clone(),
                    peer: 0,
                    one_phase: false,
                    phase: Phase::Prepared {
                        seq: 0,
                        since_us: 0,
                    },
                };
                self.txs.insert(tx_id.clone(), tx);
            }
            ParticipantRecord::Committed { tx_id, ops } => {
                if self.outcomes.contains_key(tx_id) {
                    return Ok(());
                }
                if let Some(tx) = self.txs.remove(tx_id) {
                    self.unlock(tx_id, &tx.ops);
                }
                self.apply(tx_id, ops).map_err(inconsistent)?;
                self.remember(tx_id.clone(), Done::committed(ops));
            }
            ParticipantRecord::Aborted { tx_id } => {
                if let Some(tx) = self.txs.remove(tx_id) {
                    self.unlock(tx_id, &tx.ops);
                }
                self.remember(tx_id.clone(), Done::aborted());
            }
            ParticipantRecord::Coordinator { cluster, epoch } => {
                self.cluster = cluster.clone();
                self.epoch = *epoch;
            }
            ParticipantRecord::Heuristic {
                tx_id,
                decision,
                ops,
            } => {
                if self.heuristics.contains_key(tx_id) {
                    return Ok(());
                }
                if let Some(tx) = self.txs.remove(tx_id) {
                    self.unlock(tx_id, &tx.ops);
                }
                if *decision == Decision::Commit {
                    self.apply(tx_id, ops).map_err(inconsistent)?;
                }
                self.remember(tx_id.clone(), done_of(*decision, ops));
                self.keep_heuristic(tx_id.clone(), *decision, ops.clone());
            }
            ParticipantRecord::Checkpoint(cp) => {
                self.balances = cp.accounts.iter().cloned().collect();
                self.ledgers = cp
                    .ledgers
                    .iter()
                    .map(|(a, e)| (a.clone(), Arc::new(e.iter().cloned().collect())))
                    .collect();
                for (account, _) in &cp.accounts {
                    self.ledgers.entry(account.clone()).or_default();
                }
                // A checkpoint written under a larger limit keeps its newest.
                let kept = ledger_entries_kept_per_account(self.balances.len());
                for ledger in self.ledgers.values_mut() {
                    let extra = ledger.len().saturating_sub(kept);
                    if extra > 0 {
                        Arc::make_mut(ledger).drain(..extra);
                    }
                }
                self.txs.clear();
                self.locks.clear();
                self.outcomes.clear();
                self.heuristics.clear();
                self.heuristic_order.clear();
                self.cluster = cp.cluster.clone();
                self.epoch = cp.epoch;
                for (tx_id, decision, digest) in &cp.outcomes {
                    let done = Done {
                        decision: *decision,
                        digest: *digest,
                    };
                    self.remember(tx_id.clone(), done);
                }
                for (tx_id, decision, ops) in &cp.heuristics {
                    self.keep_heuristic(tx_id.clone(), *decision, ops.clone());
                }
                for (tx_id, ts, epoch, ops) in &cp.prepared {
                    let prepared = ParticipantRecord::Prepared {
                        tx_id: tx_id.clone(),
                        ts: *ts,
                        epoch: *epoch,
                        ops: ops.clone(),
                    };
                    self.replay(index, &prepared)?;
                }
            }
        }
        Ok(())
    }

    /// A record of everything durable, to start a rewritten (compacted) log.
    /// Returns the `Persist` seq the rewrite stands for: once the rewrite is
    /// durable, feed `Durable { seq }` as for any record.
    pub fn checkpoint(&mut self) -> (u64, ParticipantRecord) {
        let (seq, snapshot) = self.checkpoint_snapshot();
        let parts = snapshot.parts();
        let cp = ParticipantCheckpoint {
            accounts: parts
                .accounts
                .iter()
                .map(|&(a, b)| (a.clone(), b))
                .collect(),
            ledgers: parts
                .ledgers
                .iter()
                .map(|&(a, e)| (a.clone(), e.iter().cloned().collect()))
                .collect(),
            prepared: parts
                .prepared
                .iter()
                .map(|&(id, ts, epoch, ops)| (id.clone(), ts, epoch, ops.to_vec()))
                .collect(),
            outcomes: parts
                .outcomes
                .iter()
                .map(|&(id, d, digest)| (id.clone(), d, digest))
                .collect(),
            heuristics: parts
                .heuristics
                .iter()
                .map(|&(id, d, ops)| (id.clone(), d, ops.to_vec()))
                .collect(),
            cluster: parts.cluster.cloned(),
            epoch: parts.epoch,
        };
        (seq, ParticipantRecord::Checkpoint(Box::new(cp)))
    }

    /// [`checkpoint`](Self::checkpoint), encoded: the same bytes as
    /// `checkpoint().1.encode()`, from the snapshot (no owned copy).
    pub fn checkpoint_encoded(&mut self) -> (u64, Vec<u8>) {
        let (seq, snapshot) = self.checkpoint_snapshot();
        (seq, snapshot.encode())
    }

    /// Everything durable, taken now, to be encoded later (on another
    /// thread): the remembered outcomes are shared (see
    /// [`Remembered::snapshot`]), and so are the ledgers (each account's, as
    /// a whole); balances, prepared transactions and heuristics are copied.
    /// Outcomes and heuristics go oldest first. [`checkpoint`](Self::checkpoint)
    /// and [`checkpoint_encoded`](Self::checkpoint_encoded) are built from it.
    pub fn checkpoint_snapshot(&mut self) -> (u64, ParticipantSnapshot) {
        let snapshot = ParticipantSnapshot {
            accounts: self
                .balances
                .sorted()
                .into_iter()
                .map(|(a, b)| (a.clone(), *b))
                .collect(),
            ledgers: self
                .ledgers
                .sorted()
                .into_iter()
                .map(|(a, e)| (a.clone(), Arc::clone(e)))
                .collect(),
            prepared: self
                .txs
                .sorted()
                .into_iter()
                .filter(|(_, tx)| matches!(tx.phase, Phase::Prepared { .. }))
                .map(|(id, tx)| (id.clone(), tx.ts, tx.epoch, tx.ops.clone()))
                .collect(),
            outcomes: self.outcomes.snapshot(),
            heuristics: self
                .heuristic_order
                .iter()
                .filter_map(|id| {
                    self.heuristics
                        .get(id)
                        .map(|h| (id.clone(), h.decision, h.ops.clone()))
                })
                .collect(),
            cluster: self.cluster.clone(),
            epoch: self.epoch,
        };
        (self.take_seq(), snapshot)
    }

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
        let unsafe_abort = self.unsafe_abort_in_doubt_after_us.and_then(|after_us| {
            self.txs
                .values()
                .filter_map(|tx| match tx.phase {
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

    /// **Reproduces the original demo's bug, for tests only**: a prepared
    /// (in-doubt) transaction aborts on its own once it has waited this long
    /// for the decision. It exists so the model checker can prove it catches
    /// that bug; never set it outside tests. Volatile: `recover` starts
    /// without it.
    #[doc(hidden)]
    pub fn set_unsafe_abort_in_doubt_after_us(&mut self, after_us: Option<u64>) {
        self.unsafe_abort_in_doubt_after_us = after_us;
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
                ts,
                epoch,
                ops,
            } => {
                let attempt = Attempt {
                    tx_id,
                    ts,
                    epoch,
                    ops,
                    one_phase: false,
                };
                self.on_prepare(now_us, from, attempt, out)
            }
            Request::CommitOnePhase {
                tx_id,
                ts,
                epoch,
                ops,
            } => {
                let attempt = Attempt {
                    tx_id,
                    ts,
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

    fn on_prepare(&mut self, now_us: u64, from: PeerId, attempt: Attempt, out: &mut Vec<Action>) {
        let Attempt {
            tx_id,
            ts,
            epoch,
            ops,
            one_phase,
        } = attempt;
        if self.coordinators.get(&from) != Some(&epoch) {
            // A prepare speaks for its own connection's coordinator only.
            let msg = refusal(&tx_id, one_phase, AbortReason::ProtocolError);
            out.push(Action::Send { to: from, msg });
            return;
        }
        if let Some(decision) = self.decided_for(&tx_id, &ops) {
            // Decided before, for these same operations: answer the same way.
            let msg = match (one_phase, decision) {
                (true, d) => Reply::Outcome {
                    tx_id,
                    decision: d,
                    reason: reason_for(d),
                },
                (false, Decision::Commit) => Reply::Vote {
                    tx_id,
                    vote: Vote::Ready,
                    reason: None,
                },
                (false, Decision::Abort) => Reply::Vote {
                    tx_id,
                    vote: Vote::Abort,
                    reason: Some(AbortReason::AlreadyAborted),
                },
            };
            self.send_after_latest(from, msg, out);
            return;
        }
        if self.outcomes.contains_key(&tx_id) || self.heuristics.contains_key(&tx_id) {
            // Committed here for other operations: this tx_id is taken.
            let msg = refusal(&tx_id, one_phase, AbortReason::ProtocolError);
            out.push(Action::Send { to: from, msg });
            return;
        }
        if let Some(tx) = self.txs.get_mut(&tx_id) {
            let same = tx.ops == ops && tx.epoch == epoch && tx.one_phase == one_phase;
            if !same {
                // Held for another attempt (other operations, or an older
                // coordinator epoch): that state never stands in for this.
                let msg = refusal(&tx_id, one_phase, AbortReason::ProtocolError);
                out.push(Action::Send { to: from, msg });
                return;
            }
            tx.peer = from;
            if let Phase::Prepared { seq, .. } = tx.phase {
                self.vote_ready_when_durable(seq, from, tx_id, out);
            }
            return; // still waiting for locks: the vote comes when they are granted
        }
        if let Err(reason) = self.validate(&ops) {
            self.remember(tx_id.clone(), Done::aborted());
            out.push(Action::Send {
                to: from,
                msg: refusal(&tx_id, one_phase, reason),
            });
            return;
        }
        if self.txs.len() >= PARTICIPANT_TX_ACTIVE_MAX {
            // Not remembered: the same tx may succeed when retried later.
            out.push(Action::Send {
                to: from,
                msg: refusal(&tx_id, one_phase, AbortReason::Overloaded),
            });
            return;
        }
        let younger_holds =
            ops.iter().any(
                |op| match self.locks.get(&op.account).and_then(|h| self.txs.get(h)) {
                    Some(holder) => holder.ts > ts,
                    None => false,
                },
            );
        if younger_holds {
            // Wait-die: an older transaction never waits for a younger one.
            self.remember(tx_id.clone(), Done::aborted());
            out.push(Action::Send {
                to: from,
                msg: refusal(&tx_id, one_phase, AbortReason::LockConflict),
            });
            return;
        }
        let deadline_us = now_us.saturating_add(self.config.lock_wait_us);
        let tx = Tx {
            ts,
            epoch,
            ops,
            peer: from,
            one_phase,
            phase: Phase::Waiting { deadline_us },
        };
        self.txs.insert(tx_id.clone(), tx);
        self.waiting.insert((ts, tx_id));
        self.grant_waiting(now_us, out);
    }

    /// The decision taken here for `tx_id`, if it was taken for these same
    /// `ops` (an abort, whatever it was for, stays an abort).
    fn decided_for(&self, tx_id: &str, ops: &[Op]) -> Option<Decision> {
        if let Some(h) = self.heuristics.get(tx_id) {
            let same = h.decision == Decision::Abort || h.ops == ops;
            return same.then_some(h.decision);
        }
        let done = self.outcomes.get(tx_id)?;
        let same = done.decision == Decision::Abort || digest_matches(done.digest, ops);
        same.then_some(done.decision)
    }

    /// A coordinator proved who it is; accept it if it is of this node's
    /// cluster and not older than the newest epoch seen.
    fn on_connect(
        &mut self,
        now_us: u64,
        from: PeerId,
        cluster: ClusterId,
        epoch: Epoch,
        legacy_history: bool,
        out: &mut Vec<Action>,
    ) {
        if let Err(message) = self.check_coordinator(&cluster, epoch, legacy_history) {
            out.push(Action::Close {
                peer: from,
                message,
            });
            return;
        }
        if self.cluster.as_ref() != Some(&cluster) || epoch > self.epoch {
            self.cluster = Some(cluster.clone());
            self.epoch = epoch;
            let record = ParticipantRecord::Coordinator {
                cluster: Some(cluster),
                epoch,
            };
            self.bound_seq = self.persist(record, true, out);
            self.retire_older_epochs(now_us, epoch, out);
        }
        self.coordinators.insert(from, epoch);
        let bound_seq = self.bound_seq;
        self.send_when_durable(bound_seq, Action::Accept { peer: from }, out);
    }

    /// Why a coordinator of `cluster` at `epoch` must be refused, if it must.
    fn check_coordinator(
        &self,
        cluster: &ClusterId,
        epoch: Epoch,
        legacy_history: bool,
    ) -> Result<(), String> {
        let node = &self.config.node;
        match &self.cluster {
            Some(bound) if bound != cluster => {
                return Err(format!(
                    "node {node} belongs to cluster {bound}, not to this coordinator's cluster {cluster}: \
                     a coordinator with another log (a new data dir, or a second coordinator) must never \
                     decide for this node's transactions. Start the coordinator that owns its log; or, if \
                     that log is lost for good, resolve what is in doubt with heuristic decisions and \
                     restart the node with --forget-cluster"
                ));
            }
            Some(_) => {}
            None => {
                let legacy: Vec<&TxId> = self
                    .txs
                    .sorted()
                    .into_iter()
                    .filter(|(_, tx)| tx.epoch == 0 && matches!(tx.phase, Phase::Prepared { .. }))
                    .map(|(id, _)| id)
                    .collect();
                if !legacy.is_empty() && !legacy_history {
                    let shown: Vec<&str> = legacy.iter().take(10).map(|id| id.as_str()).collect();
                    return Err(format!(
                        "node {node} holds {} transaction(s) in doubt from before cluster identities ({}), \
                         and this coordinator's log is new: it never decided them, so it must not presume \
                         them aborted. Start the coordinator whose log decided them, or resolve them with \
                         heuristic decisions (participant-admin heuristic)",
                        legacy.len(),
                        shown.join(", ")
                    ));
                }
            }
        }
        if epoch < self.epoch {
            return Err(format!(
                "node {node} has seen coordinator epoch {}, newer than this coordinator's {epoch}: a newer \
                 coordinator has taken over (or this one's log was restored from an older copy); refusing it",
                self.epoch
            ));
        }
        Ok(())
    }

    /// A newer coordinator epoch is accepted: connections of older ones are
    /// closed, and their transactions that have not voted abort (they can
    /// only have come from a coordinator that is gone).
    fn retire_older_epochs(&mut self, now_us: u64, epoch: Epoch, out: &mut Vec<Action>) {
        let older: Vec<PeerId> = self
            .coordinators
            .iter()
            .filter(|(_, e)| **e < epoch)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in older {
            self.coordinators.remove(&peer);
            out.push(Action::Close {
                peer,
                message: format!("a coordinator of a newer epoch ({epoch}) took over"),
            });
        }
        let stale: Vec<(u64, TxId)> = self
            .waiting
            .iter()
            .filter(|(_, id)| self.txs.get(id).is_some_and(|tx| tx.epoch < epoch))
            .cloned()
            .collect();
        if stale.is_empty() {
            return;
        }
        for (ts, tx_id) in stale {
            self.waiting.remove(&(ts, tx_id.clone()));
            if let Some(tx) = self.txs.remove(&tx_id) {
                self.unlock(&tx_id, &tx.ops);
                self.remember(tx_id, Done::aborted());
            }
        }
        self.grant_waiting(now_us, out);
    }

    /// An operator releases this node from its cluster (so that another
    /// coordinator may bind it), which is only allowed with nothing in
    /// doubt: returns the record to force, or why not.
    pub fn forget_cluster(&mut self) -> Result<ParticipantRecord, String> {
        let prepared: Vec<TxId> = self
            .txs
            .sorted_keys_where(|tx| matches!(tx.phase, Phase::Prepared { .. }));
        if !prepared.is_empty() {
            return Err(format!(
                "node {} holds {} transaction(s) in doubt ({}): resolve them first (the coordinator that \
                 prepared them, or heuristic decisions with participant-admin), then forget the cluster",
                self.config.node,
                prepared.len(),
                prepared.join(", ")
            ));
        }
        self.cluster = None;
        self.epoch = 0;
        Ok(ParticipantRecord::Coordinator {
            cluster: None,
            epoch: 0,
        })
    }

    fn validate(&self, ops: &[Op]) -> Result<(), AbortReason> {
        let bad_delta = |op: &Op| {
            op.delta_cents == 0 || op.delta_cents.unsigned_abs() > AMOUNT_CENTS_MAX as u64
        };
        if ops.is_empty() || ops.len() > OPS_PER_TX_MAX || ops.iter().any(bad_delta) {
            return Err(AbortReason::InvalidRequest);
        }
        if ops
            .iter()
            .any(|op| !self.balances.contains_key(&op.account))
        {
            return Err(AbortReason::UnknownAccount);
        }
        Ok(())
    }

    /// Grants locks to waiting transactions, oldest first. An account wanted
    /// by an older waiter is reserved for it, so younger ones never overtake
    /// (which would make an older transaction wait for a younger one).
    fn grant_waiting(&mut self, now_us: u64, out: &mut Vec<Action>) {
        let mut reserved: BTreeSet<AccountId> = BTreeSet::new();
        let queue: Vec<(u64, TxId)> = self.waiting.iter().cloned().collect();
        for (ts, tx_id) in queue {
            let Some(tx) = self.txs.get(&tx_id) else {
                continue;
            };
            let free = tx.ops.iter().all(|op| {
                let holder = self.locks.get(&op.account);
                (holder.is_none() || holder == Some(&tx_id)) && !reserved.contains(&op.account)
            });
            if !free {
                reserved.extend(tx.ops.iter().map(|op| op.account.clone()));
                continue;
            }
            self.waiting.remove(&(ts, tx_id.clone()));
            let ops = tx.ops.clone();
            for op in &ops {
                self.locks.insert(op.account.clone(), tx_id.clone());
            }
            self.locked(now_us, tx_id, out);
        }
    }

    /// All locks of `tx_id` are held: check funds, then prepare (or, for
    /// one-phase, apply at once).
    fn locked(&mut self, now_us: u64, tx_id: TxId, out: &mut Vec<Action>) {
        let Some(tx) = self.txs.get(&tx_id) else {
            return;
        };
        let (peer, one_phase, ops, ts, epoch) =
            (tx.peer, tx.one_phase, tx.ops.clone(), tx.ts, tx.epoch);
        if let Err(reason) = self.check_funds(&ops) {
            self.txs.remove(&tx_id);
            self.unlock(&tx_id, &ops);
            self.remember(tx_id.clone(), Done::aborted());
            out.push(Action::Send {
                to: peer,
                msg: refusal(&tx_id, one_phase, reason),
            });
            // The released locks may let others in; the caller's loop (or the
            // next release) grants them.
            return;
        }
        if one_phase {
            self.txs.remove(&tx_id);
            self.unlock(&tx_id, &ops);
            if let Err(e) = self.apply(&tx_id, &ops) {
                // check_funds just checked this: a failure is a bug.
                panic!("applying a checked one-phase transaction failed: {e}");
            }
            self.remember(tx_id.clone(), Done::committed(&ops));
            let seq = self.persist(
                ParticipantRecord::Committed {
                    tx_id: tx_id.clone(),
                    ops,
                },
                true,
                out,
            );
            let msg = Reply::Outcome {
                tx_id,
                decision: Decision::Commit,
                reason: None,
            };
            self.send_when_durable(seq, Action::Send { to: peer, msg }, out);
            return;
        }
        let record = ParticipantRecord::Prepared {
            tx_id: tx_id.clone(),
            ts,
            epoch,
            ops,
        };
        let seq = self.persist(record, true, out);
        if let Some(tx) = self.txs.get_mut(&tx_id) {
            tx.phase = Phase::Prepared {
                seq,
                since_us: now_us,
            };
        }
        self.crash_when_durable_if_armed(ParticipantCrashPoint::AfterPrepareLogged, seq, out);
        self.vote_ready_when_durable(seq, peer, tx_id, out);
    }

    /// Checks the balance after every op, in order, exactly as `apply` will
    /// apply them: never negative, never overflowing. Once this passes with
    /// the locks held, applying cannot fail.
    fn check_funds(&self, ops: &[Op]) -> Result<(), AbortReason> {
        let mut after: BTreeMap<&AccountId, i64> = BTreeMap::new();
        for op in ops {
            let balance = after
                .entry(&op.account)
                .or_insert_with(|| self.balances.get(&op.account).copied().unwrap_or(0));
            *balance = balance
                .checked_add(op.delta_cents)
                .ok_or(AbortReason::InvalidRequest)?;
            if *balance < 0 {
                return Err(AbortReason::InsufficientFunds);
            }
        }
        Ok(())
    }

    fn on_commit(&mut self, now_us: u64, from: PeerId, tx_id: TxId, out: &mut Vec<Action>) {
        if self.answer_heuristic(from, &tx_id, Decision::Commit, out) {
            return;
        }
        if let Some(done) = self.outcomes.get(&tx_id).copied() {
            // Duplicate, or a commit for a transaction this node aborted:
            // the ack carries what actually happened here.
            let decision = done.decision;
            self.send_after_latest(from, Reply::Ack { tx_id, decision }, out);
            return;
        }
        let prepared = matches!(
            self.txs.get(&tx_id).map(|t| &t.phase),
            Some(Phase::Prepared { .. })
        );
        if !prepared {
            let message = if self.txs.contains_key(&tx_id) {
                format!("commit for {tx_id} before it was prepared here")
            } else {
                format!("commit for {tx_id}, which this node never prepared")
            };
            out.push(Action::Send {
                to: from,
                msg: Reply::Error { message },
            });
            return;
        }
        let Some(tx) = self.txs.remove(&tx_id) else {
            return;
        };
        self.unlock(&tx_id, &tx.ops);
        if let Err(e) = self.apply(&tx_id, &tx.ops) {
            // A prepared transaction holds its locks and was checked: only a
            // bug gets here.
            panic!("applying prepared transaction {tx_id} failed: {e}");
        }
        self.remember(tx_id.clone(), Done::committed(&tx.ops));
        self.drop_held_votes(&tx_id);
        let seq = self.persist_awaited(
            ParticipantRecord::Committed {
                tx_id: tx_id.clone(),
                ops: tx.ops,
            },
            out,
        );
        self.crash_when_durable_if_armed(ParticipantCrashPoint::AfterCommitApplied, seq, out);
        // Applied now (reads see it, its locks are free): say so at once,
        // so the client's answer does not wait for this node's log force;
        // the ack (which lets the coordinator forget it) waits for it.
        out.push(Action::Send {
            to: from,
            msg: Reply::Applied {
                tx_id: tx_id.clone(),
            },
        });
        let ack = Reply::Ack {
            tx_id,
            decision: Decision::Commit,
        };
        self.send_when_durable(seq, Action::Send { to: from, msg: ack }, out);
        self.grant_waiting(now_us, out);
    }

    fn on_rollback(&mut self, now_us: u64, from: PeerId, tx_id: TxId, out: &mut Vec<Action>) {
        if self.answer_heuristic(from, &tx_id, Decision::Abort, out) {
            return;
        }
        if let Some(done) = self.outcomes.get(&tx_id).copied() {
            let decision = done.decision;
            self.send_after_latest(from, Reply::Ack { tx_id, decision }, out);
            return;
        }
        // Never seen: it is still remembered below, so a late prepare votes abort.
        if let Some(tx) = self.txs.remove(&tx_id) {
            self.waiting.remove(&(tx.ts, tx_id.clone()));
            self.unlock(&tx_id, &tx.ops);
            self.drop_held_votes(&tx_id);
            if matches!(tx.phase, Phase::Prepared { .. }) {
                // Presumed abort: not forced. If it is lost in a crash,
                // the transaction comes back in doubt and the coordinator
                // (having no commit record) says abort again.
                self.persist(
                    ParticipantRecord::Aborted {
                        tx_id: tx_id.clone(),
                    },
                    false,
                    out,
                );
            }
        }
        self.remember(tx_id.clone(), Done::aborted());
        out.push(Action::Send {
            to: from,
            msg: Reply::Ack {
                tx_id,
                decision: Decision::Abort,
            },
        });
        self.grant_waiting(now_us, out);
    }

    /// A `commit` (`Commit`) or `rollback` (`Abort`) for a transaction
    /// decided heuristically here: ack if it agrees, name the mismatch if
    /// not. Returns false if `tx_id` has no heuristic decision.
    fn answer_heuristic(
        &mut self,
        from: PeerId,
        tx_id: &TxId,
        coordinator: Decision,
        out: &mut Vec<Action>,
    ) -> bool {
        let node = self.config.node.clone();
        let Some(h) = self.heuristics.get_mut(tx_id) else {
            return false;
        };
        h.coordinator_decision = Some(coordinator);
        let forced = h.decision;
        if forced == coordinator {
            self.send_after_latest(
                from,
                Reply::Ack {
                    tx_id: tx_id.clone(),
                    decision: forced,
                },
                out,
            );
        } else {
            let effect = match forced {
                Decision::Commit => "its operations were applied here",
                Decision::Abort => "its operations were not applied here",
            };
            let message = format!(
                "heuristic mismatch: {tx_id} was heuristically {} on node {node} by an operator, but the coordinator decided {}; \
                 {effect}, so the transaction is not atomic",
                decision_word(forced),
                decision_name(coordinator),
            );
            out.push(Action::Send {
                to: from,
                msg: Reply::Error { message },
            });
        }
        true
    }

    /// An operator forces the outcome of an in-doubt transaction.
    fn on_heuristic(
        &mut self,
        now_us: u64,
        from: PeerId,
        tx_id: TxId,
        decision: Decision,
        out: &mut Vec<Action>,
    ) {
        match self.check_heuristic(&tx_id, decision) {
            Err(message) => out.push(Action::Send {
                to: from,
                msg: Reply::Error { message },
            }),
            Ok(true) => self.send_after_latest(from, Reply::Ack { tx_id, decision }, out),
            Ok(false) => {
                let Some(tx) = self.txs.remove(&tx_id) else {
                    return;
                };
                self.unlock(&tx_id, &tx.ops);
                if decision == Decision::Commit {
                    if let Err(e) = self.apply(&tx_id, &tx.ops) {
                        // Prepared: locked and checked. Only a bug gets here.
                        panic!("applying prepared transaction {tx_id} heuristically failed: {e}");
                    }
                }
                self.remember(tx_id.clone(), done_of(decision, &tx.ops));
                self.drop_held_votes(&tx_id);
                self.keep_heuristic(tx_id.clone(), decision, tx.ops.clone());
                let record = ParticipantRecord::Heuristic {
                    tx_id: tx_id.clone(),
                    decision,
                    ops: tx.ops,
                };
                let seq = self.persist(record, true, out);
                self.send_when_durable(
                    seq,
                    Action::Send {
                        to: from,
                        msg: Reply::Ack { tx_id, decision },
                    },
                    out,
                );
                self.grant_waiting(now_us, out);
            }
        }
    }

    /// Ok(true): already forced the same way (answer again); Ok(false):
    /// in doubt here, may be forced now; Err: refused, with why.
    fn check_heuristic(&self, tx_id: &TxId, decision: Decision) -> Result<bool, String> {
        let node = &self.config.node;
        if !self.config.faults_allowed {
            return Err(format!(
                "heuristic decisions are disabled on node {node} (start it with --allow-faults): they can break atomicity"
            ));
        }
        if let Some(h) = self.heuristics.get(tx_id) {
            if h.decision == decision {
                return Ok(true);
            }
            return Err(format!(
                "{tx_id} was already heuristically {} on node {node}",
                decision_word(h.decision)
            ));
        }
        if let Some(done) = self.outcomes.get(tx_id) {
            return Err(format!(
                "{tx_id} is not in doubt on node {node}: it was already {} by the protocol; nothing to force",
                decision_word(done.decision)
            ));
        }
        match self.txs.get(tx_id).map(|tx| &tx.phase) {
            Some(Phase::Prepared { .. }) => {}
            Some(Phase::Waiting { .. }) => {
                return Err(format!(
                    "{tx_id} is not prepared on node {node} yet (it waits for locks and may still abort on its own)"
                ))
            }
            None => {
                return Err(format!(
                    "{tx_id} is not in doubt on node {node}: only a prepared transaction waiting for its decision can be forced"
                ))
            }
        }
        if self.heuristics.len() >= PARTICIPANT_HEURISTICS_KEPT_MAX {
            return Err(format!("node {node} already keeps {PARTICIPANT_HEURISTICS_KEPT_MAX} heuristic decisions; refusing more"));
        }
        Ok(false)
    }

    fn keep_heuristic(&mut self, tx_id: TxId, decision: Decision, ops: Vec<Op>) {
        let heuristic = Heuristic {
            decision,
            ops,
            coordinator_decision: None,
        };
        if self.heuristics.insert(tx_id.clone(), heuristic).is_none() {
            self.heuristic_order.push(tx_id);
        }
    }

    fn on_durable(&mut self, seq: u64, out: &mut Vec<Action>) {
        self.durable_seq = self.durable_seq.max(seq);
        while let Some((held_seq, _)) = self.held.front() {
            if *held_seq > self.durable_seq {
                break;
            }
            if let Some((_, action)) = self.held.pop_front() {
                out.push(action);
            }
        }
    }

    fn on_tick(&mut self, now_us: u64, out: &mut Vec<Action>) {
        if let Some(after_us) = self.unsafe_abort_in_doubt_after_us {
            self.unsafe_abort_in_doubt(now_us, after_us, out);
        }
        let expired: Vec<(u64, TxId)> = self
            .waiting
            .iter()
            .filter(|(_, id)| matches!(self.txs.get(id).map(|t| &t.phase), Some(Phase::Waiting { deadline_us }) if *deadline_us <= now_us))
            .cloned()
            .collect();
        if expired.is_empty() {
            return;
        }
        for (ts, tx_id) in expired {
            self.waiting.remove(&(ts, tx_id.clone()));
            if let Some(tx) = self.txs.remove(&tx_id) {
                // Not voted yet: a unilateral abort is allowed.
                self.remember(tx_id.clone(), Done::aborted());
                out.push(Action::Send {
                    to: tx.peer,
                    msg: refusal(&tx_id, tx.one_phase, AbortReason::LockConflict),
                });
            }
        }
        self.grant_waiting(now_us, out);
    }

    /// The original demo's bug (tests only): roll back an in-doubt
    /// transaction on a timeout, as if a rollback had arrived.
    fn unsafe_abort_in_doubt(&mut self, now_us: u64, after_us: u64, out: &mut Vec<Action>) {
        let due: Vec<TxId> = self.txs.sorted_keys_where(|tx| {
            matches!(tx.phase, Phase::Prepared { since_us, .. } if since_us.saturating_add(after_us) <= now_us)
        });
        for tx_id in due {
            if let Some(tx) = self.txs.remove(&tx_id) {
                self.unlock(&tx_id, &tx.ops);
                self.drop_held_votes(&tx_id);
                self.persist(
                    ParticipantRecord::Aborted {
                        tx_id: tx_id.clone(),
                    },
                    false,
                    out,
                );
                self.remember(tx_id, Done::aborted());
            }
        }
    }

    fn apply(&mut self, tx_id: &TxId, ops: &[Op]) -> Result<(), String> {
        for op in ops {
            let kept = ledger_entries_kept_per_account(self.balances.len());
            let balance = self
                .balances
                .get_mut(&op.account)
                .ok_or_else(|| format!("unknown account {}", op.account))?;
            let after = balance
                .checked_add(op.delta_cents)
                .ok_or("balance overflow")?;
            if after < 0 {
                return Err(format!(
                    "account {} would go negative ({after} cents)",
                    op.account
                ));
            }
            *balance = after;
            // Every account has a ledger from the start; no key is copied.
            let ledger = match self.ledgers.get_mut(&op.account) {
                Some(ledger) => ledger,
                None => self.ledgers.entry(op.account.clone()).or_default(),
            };
            let ledger = Arc::make_mut(ledger);
            ledger.push_back(LedgerEntry {
                tx_id: tx_id.clone(),
                delta_cents: op.delta_cents,
                balance_cents: after,
            });
            while ledger.len() > kept {
                ledger.pop_front();
            }
        }
        Ok(())
    }

    fn unlock(&mut self, tx_id: &TxId, ops: &[Op]) {
        for op in ops {
            if self.locks.get(&op.account) == Some(tx_id) {
                self.locks.remove(&op.account);
            }
        }
    }

    fn remember(&mut self, tx_id: TxId, done: Done) {
        self.outcomes.insert(tx_id, done);
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn persist(&mut self, record: ParticipantRecord, sync: bool, out: &mut Vec<Action>) -> u64 {
        let seq = self.take_seq();
        if sync {
            self.awaited_seq = seq;
        }
        out.push(Action::Persist { seq, record, sync });
        seq
    }

    /// Persists a record that a reply will wait for without forcing it: it
    /// rides the next force, or the driver syncs it within its lazy-sync
    /// delay (`PARTICIPANT_UNFORCED_SYNC_US`).
    fn persist_awaited(&mut self, record: ParticipantRecord, out: &mut Vec<Action>) -> u64 {
        let seq = self.persist(record, false, out);
        self.awaited_seq = seq;
        seq
    }

    /// If a crash at `point` is armed: disarms it, and crashes once record
    /// `seq` is durable (before anything sent after it).
    fn crash_when_durable_if_armed(
        &mut self,
        point: ParticipantCrashPoint,
        seq: u64,
        out: &mut Vec<Action>,
    ) {
        if self.armed_crash == Some(point) {
            self.armed_crash = None;
            self.send_when_durable(seq, Action::Crash(point), out);
        }
    }

    /// Votes `ready` once the PREPARED record `seq` is durable.
    fn vote_ready_when_durable(
        &mut self,
        seq: u64,
        to: PeerId,
        tx_id: TxId,
        out: &mut Vec<Action>,
    ) {
        let msg = Reply::Vote {
            tx_id,
            vote: Vote::Ready,
            reason: None,
        };
        self.send_when_durable(seq, Action::Send { to, msg }, out);
    }

    fn send_when_durable(&mut self, seq: u64, action: Action, out: &mut Vec<Action>) {
        if seq <= self.durable_seq {
            out.push(action);
        } else {
            self.held.push_back((seq, action));
        }
    }

    /// Sends once every awaited record appended so far is durable (for
    /// answers about an outcome whose record may still be in flight: a
    /// `Committed` record is awaited; an `Aborted` one needs no durability).
    fn send_after_latest(&mut self, to: PeerId, msg: Reply, out: &mut Vec<Action>) {
        let latest_awaited = self.awaited_seq;
        self.send_when_durable(latest_awaited, Action::Send { to, msg }, out);
    }

    fn drop_held_votes(&mut self, tx_id: &TxId) {
        self.held.retain(|(_, action)| !matches!(action, Action::Send { msg: Reply::Vote { tx_id: t, .. }, .. } if t == tx_id));
    }

    // ----- read-only views for the driver's queries -----

    pub fn node(&self) -> &NodeId {
        &self.config.node
    }

    pub fn balances(&self) -> Vec<AccountBalance> {
        self.balances
            .sorted()
            .into_iter()
            .map(|(id, b)| AccountBalance {
                id: id.clone(),
                balance_cents: *b,
            })
            .collect()
    }

    pub fn ledger(&self, account: &str) -> Option<Vec<LedgerEntry>> {
        self.ledgers
            .get(account)
            .map(|l| l.iter().cloned().collect())
    }

    /// Transactions that voted (or will vote, once durable) `ready` and wait
    /// for the decision. Only durable ones are reported.
    pub fn in_doubt(&self, now_us: u64) -> Vec<InDoubtTx> {
        self.txs
            .sorted()
            .into_iter()
            .filter_map(|(id, tx)| match tx.phase {
                Phase::Prepared { seq, since_us } if seq <= self.durable_seq => Some(InDoubtTx {
                    tx_id: id.clone(),
                    prepared_for_ms: now_us.saturating_sub(since_us) / 1000,
                }),
                _ => None,
            })
            .collect()
    }

    /// Makes room for every outcome it may remember, once, so the index
    /// never grows (and stalls the process) while it runs; see
    /// [`Remembered::reserve_all`]. For the processes, not for the model
    /// checker's many copies.
    pub fn reserve_remembered_outcomes(&mut self) {
        self.outcomes.reserve_all();
    }

    pub fn locked_accounts(&self) -> Vec<AccountId> {
        self.locks.sorted_keys_where(|_| true)
    }

    /// Heuristic decisions taken here, oldest first.
    pub fn heuristics(&self) -> Vec<HeuristicOutcome> {
        self.heuristic_order
            .iter()
            .filter_map(|id| {
                let h = self.heuristics.get(id)?;
                Some(HeuristicOutcome {
                    tx_id: id.clone(),
                    decision: h.decision,
                    ops: h.ops.clone(),
                    coordinator_decision: h.coordinator_decision,
                })
            })
            .collect()
    }

    pub fn outcome(&self, tx_id: &str) -> Option<Decision> {
        self.outcomes.get(tx_id).map(|done| done.decision)
    }

    /// The cluster this node serves, once bound.
    pub fn cluster(&self) -> Option<&ClusterId> {
        self.cluster.as_ref()
    }

    /// The highest coordinator epoch this node has seen.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Whether `peer` is an accepted coordinator connection.
    pub fn is_coordinator(&self, peer: PeerId) -> bool {
        self.coordinators.contains_key(&peer)
    }

    /// Transactions holding or waiting for locks (for limits and display).
    pub fn active_count(&self) -> usize {
        self.txs.len()
    }

    /// Marks recovered in-doubt transactions as prepared since `now_us` (the
    /// log does not keep wall-clock times).
    pub fn set_recovered_since(&mut self, now_us: u64) {
        for tx in self.txs.values_mut() {
            if let Phase::Prepared { since_us, .. } = &mut tx.phase {
                *since_us = now_us;
            }
        }
    }
}

/// "committed" / "aborted".
fn decision_word(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "committed",
        Decision::Abort => "aborted",
    }
}

/// "commit" / "abort".
fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "commit",
        Decision::Abort => "abort",
    }
}

/// A `prepare` or `commit_one_phase` as it arrived.
struct Attempt {
    tx_id: TxId,
    ts: u64,
    epoch: Epoch,
    ops: Vec<Op>,
    one_phase: bool,
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
