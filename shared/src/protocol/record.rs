//! What the participant and the coordinator write to their logs: the
//! records (one per step that must survive a crash) and the checkpoints
//! that replace a log's history with what is still needed. How they become
//! bytes, and how older versions' bytes are still read, is
//! `crate::store::codec` (`ParticipantRecord::encode`, `::decode`, ...).

use serde::{Deserialize, Serialize};

use crate::api::{Leg, TransferRequest};
use crate::protocol::digest::OpsDigest;
use crate::wire::{AbortReason, AccountId, ClusterId, Decision, Epoch, LedgerEntry, Op, TxId};

/// A participant's log record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "rec", rename_all = "snake_case")]
pub enum ParticipantRecord {
    /// First record of a fresh data dir: the opening balances.
    Init { accounts: Vec<(AccountId, i64)> },
    /// Locks held and funds checked; forced before the `ready` vote.
    /// `epoch`: the coordinator incarnation that sent the `prepare` (0 for
    /// records written before coordinators had epochs).
    Prepared {
        tx_id: TxId,
        ts_us: u64,
        epoch: Epoch,
        ops: Vec<Op>,
    },
    /// The operations were applied (commit of a prepared tx, or 1PC).
    Committed { tx_id: TxId, ops: Vec<Op> },
    /// A prepared transaction was rolled back (not forced: presumed abort).
    Aborted { tx_id: TxId },
    /// An operator forced the outcome of a prepared (in-doubt) transaction:
    /// a heuristic decision. Forced; `ops` were applied if `commit`.
    Heuristic {
        tx_id: TxId,
        decision: Decision,
        ops: Vec<Op>,
    },
    /// The coordinator this node serves: its cluster, and the highest
    /// coordinator epoch seen. Forced before a coordinator of a new epoch
    /// is accepted. `cluster: None`: an operator released the node from
    /// its cluster (`participant --forget-cluster`).
    Coordinator {
        cluster: Option<ClusterId>,
        epoch: Epoch,
    },
    /// Everything durable, written as the first record of a rewritten log.
    Checkpoint(Box<ParticipantCheckpoint>),
}

/// A prepared (in-doubt) transaction as a checkpoint keeps it.
pub type PreparedEntry = (TxId, u64, Epoch, Vec<Op>);

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParticipantCheckpoint {
    pub accounts: Vec<(AccountId, i64)>,
    pub ledgers: Vec<(AccountId, Vec<LedgerEntry>)>,
    /// Prepared (in-doubt) transactions, with their locks.
    pub prepared: Vec<PreparedEntry>,
    /// Recent outcomes, oldest first, to answer duplicates; a commit with
    /// the digest of what it applied (0: not known).
    pub outcomes: Vec<(TxId, Decision, OpsDigest)>,
    /// Heuristic decisions, oldest first (kept until the limit, never cut).
    pub heuristics: Vec<(TxId, Decision, Vec<Op>)>,
    /// The cluster this node serves, and the highest coordinator epoch seen.
    pub cluster: Option<ClusterId>,
    pub epoch: Epoch,
}

/// Who a coordinator's log belongs to: the cluster it created, the epoch
/// of its latest incarnation, and whether it also holds decisions taken
/// before cluster identities existed (a log older versions wrote).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    pub cluster: ClusterId,
    pub epoch: Epoch,
    pub legacy_history: bool,
}

/// A coordinator's log record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "rec", rename_all = "snake_case")]
pub enum CoordinatorRecord {
    /// The commit decision. Forced before any `commit` is sent: this record
    /// *is* the commit point of the transaction.
    Commit {
        tx_id: TxId,
        ts_us: u64,
        request: TransferRequest,
        legs: Vec<Leg>,
    },
    /// Every node acknowledged the commit; the transaction can be forgotten.
    /// Written lazily (not forced).
    End { tx_id: TxId },
    /// Outcome of an aborted or one-phase transaction, for history and for
    /// answering a repeated client `tx_id`. Forced before its client is
    /// answered (a one-phase commit too: its node would refuse a re-use of
    /// the id for other operations, which must not read as "aborted").
    Finished {
        tx_id: TxId,
        request: TransferRequest,
        decision: Decision,
        reason: Option<AbortReason>,
    },
    /// A node reported `tx_id` in doubt and this log holds no decision for
    /// it: it is aborted (presumed abort). Forced before a client is ever
    /// told so, so that the answer never changes.
    PresumedAbort { tx_id: TxId },
    /// A coordinator incarnation began (see [`Identity`]). Forced before it
    /// talks to any node.
    Epoch(Identity),
    /// Everything still needed, written as the first record of a rewritten log.
    Checkpoint(Box<CoordinatorCheckpoint>),
}

/// A remembered outcome in a coordinator checkpoint: the request is `None`
/// for a presumed abort (the log never knew the transfer).
pub type OutcomeEntry = (TxId, Option<TransferRequest>, Decision, Option<AbortReason>);

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CoordinatorCheckpoint {
    /// Whose log this is (`None`: a log older versions wrote).
    pub identity: Option<Identity>,
    /// Commit decisions not yet acknowledged by every node.
    pub pending_commits: Vec<(TxId, u64, TransferRequest, Vec<Leg>)>,
    /// Recent finished outcomes, oldest first.
    pub outcomes: Vec<OutcomeEntry>,
    /// Highest transaction timestamp issued so far (the coordinator's
    /// clock, microseconds).
    #[serde(alias = "ts_max")]
    pub ts_max_us: u64,
}
