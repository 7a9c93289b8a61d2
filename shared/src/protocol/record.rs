//! Log records of the participant and of the coordinator. They are stored as
//! JSON payloads inside checksummed frames (see `crate::log`).

use serde::{Deserialize, Serialize};

use crate::api::{Leg, TransferRequest};
use crate::wire::{AbortReason, AccountId, Decision, LedgerEntry, Op, TxId};

/// A participant's log record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "rec", rename_all = "snake_case")]
pub enum ParticipantRecord {
    /// First record of a fresh data dir: the opening balances.
    Init { accounts: Vec<(AccountId, i64)> },
    /// Locks held and funds checked; forced before the `ready` vote.
    Prepared { tx_id: TxId, ts: u64, ops: Vec<Op> },
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
    /// Everything durable, written as the first record of a rewritten log.
    Checkpoint(Box<ParticipantCheckpoint>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParticipantCheckpoint {
    pub accounts: Vec<(AccountId, i64)>,
    pub ledgers: Vec<(AccountId, Vec<LedgerEntry>)>,
    /// Prepared (in-doubt) transactions, with their locks.
    pub prepared: Vec<(TxId, u64, Vec<Op>)>,
    /// Recent outcomes, oldest first, to answer duplicates.
    pub outcomes: Vec<(TxId, Decision)>,
    /// Heuristic decisions, oldest first (kept until the limit, never cut).
    #[serde(default)]
    pub heuristics: Vec<(TxId, Decision, Vec<Op>)>,
}

/// [`ParticipantRecord::Checkpoint`] built from borrowed parts: encodes to
/// the same bytes without copying the ledgers and outcomes first (they may
/// hold hundreds of thousands of entries, encoded while transactions wait).
#[derive(Serialize)]
pub struct ParticipantCheckpointRef<'a> {
    /// The enum's tag, so the bytes decode as a `ParticipantRecord`.
    rec: &'static str,
    pub accounts: Vec<(&'a AccountId, i64)>,
    pub ledgers: Vec<(&'a AccountId, &'a std::collections::VecDeque<LedgerEntry>)>,
    pub prepared: Vec<(&'a TxId, u64, &'a [Op])>,
    pub outcomes: Vec<(&'a TxId, Decision)>,
    pub heuristics: Vec<(&'a TxId, Decision, &'a [Op])>,
}

impl<'a> ParticipantCheckpointRef<'a> {
    pub fn new(
        accounts: Vec<(&'a AccountId, i64)>,
        ledgers: Vec<(&'a AccountId, &'a std::collections::VecDeque<LedgerEntry>)>,
        prepared: Vec<(&'a TxId, u64, &'a [Op])>,
        outcomes: Vec<(&'a TxId, Decision)>,
        heuristics: Vec<(&'a TxId, Decision, &'a [Op])>,
    ) -> Self {
        ParticipantCheckpointRef {
            rec: "checkpoint",
            accounts,
            ledgers,
            prepared,
            outcomes,
            heuristics,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Sized up front, as for the coordinator's checkpoint.
        let entries: usize = self.ledgers.iter().map(|(_, e)| e.len()).sum();
        let mut out = Vec::with_capacity(
            entries * 64 + self.outcomes.len() * 40 + self.accounts.len() * 32 + 64,
        );
        serde_json::to_writer(&mut out, self).expect("log records always serialise");
        out
    }
}

/// A coordinator's log record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "rec", rename_all = "snake_case")]
pub enum CoordinatorRecord {
    /// The commit decision. Forced before any `commit` is sent: this record
    /// *is* the commit point of the transaction.
    Commit {
        tx_id: TxId,
        ts: u64,
        request: TransferRequest,
        legs: Vec<Leg>,
    },
    /// Every node acknowledged the commit; the transaction can be forgotten.
    /// Written lazily (not forced).
    End { tx_id: TxId },
    /// Outcome of an aborted or one-phase transaction, for history and for
    /// answering a repeated client `tx_id`. Not forced: after a crash, a
    /// transaction without a `Commit` record is aborted anyway (presumed abort).
    Finished {
        tx_id: TxId,
        request: TransferRequest,
        decision: Decision,
        reason: Option<AbortReason>,
    },
    /// Everything still needed, written as the first record of a rewritten log.
    Checkpoint(Box<CoordinatorCheckpoint>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CoordinatorCheckpoint {
    /// Commit decisions not yet acknowledged by every node.
    pub pending_commits: Vec<(TxId, u64, TransferRequest, Vec<Leg>)>,
    /// Recent finished outcomes, oldest first.
    pub outcomes: Vec<(TxId, TransferRequest, Decision, Option<AbortReason>)>,
    /// Highest transaction timestamp issued so far.
    pub ts_max: u64,
}

/// [`CoordinatorRecord::Checkpoint`] built from borrowed parts: encodes to
/// the same bytes without copying every remembered outcome first (a
/// checkpoint may hold a million of them, and it is encoded while
/// transactions wait).
#[derive(Serialize)]
pub struct CoordinatorCheckpointRef<'a> {
    /// The enum's tag, so the bytes decode as a `CoordinatorRecord`.
    rec: &'static str,
    pub pending_commits: Vec<(&'a TxId, u64, &'a TransferRequest, &'a [Leg])>,
    pub outcomes: Vec<(&'a TxId, &'a TransferRequest, Decision, Option<AbortReason>)>,
    pub ts_max: u64,
}

impl<'a> CoordinatorCheckpointRef<'a> {
    pub fn new(
        pending_commits: Vec<(&'a TxId, u64, &'a TransferRequest, &'a [Leg])>,
        outcomes: Vec<(&'a TxId, &'a TransferRequest, Decision, Option<AbortReason>)>,
        ts_max: u64,
    ) -> Self {
        CoordinatorCheckpointRef {
            rec: "checkpoint",
            pending_commits,
            outcomes,
            ts_max,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Sized up front (about 80 bytes per outcome): growing a buffer of
        // megabytes by doubling copies it and faults in fresh pages each time.
        let mut out =
            Vec::with_capacity(self.outcomes.len() * 96 + self.pending_commits.len() * 320 + 64);
        serde_json::to_writer(&mut out, self).expect("log records always serialise");
        out
    }
}

macro_rules! json_codec {
    ($t:ty) => {
        impl $t {
            pub fn encode(&self) -> Vec<u8> {
                serde_json::to_vec(self).expect("log records always serialise")
            }
            pub fn decode(bytes: &[u8]) -> Result<Self, String> {
                serde_json::from_slice(bytes).map_err(|e| e.to_string())
            }
        }
    };
}
json_codec!(ParticipantRecord);
json_codec!(CoordinatorRecord);
