//! Live events on `GET /ws`. Every message is an [`Event`]: a `seq` that
//! grows by one per event, a Unix timestamp in milliseconds, a `kind` and
//! the fields of that kind. The first message a client gets is a
//! `snapshot`; a client too slow to keep up gets `lagged` with how many
//! events it missed, and should resynchronise from the next snapshot.

use serde::{Deserialize, Serialize};

use crate::views::{
    AccountView, ClusterView, ComponentStatus, Faults, Outcome, Stats, TransactionSummary, VoteView,
};
use crate::wire::{AbortReason, AccountId, Decision, NodeId, TxId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub seq: u64,
    pub ts_ms: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The name of the coordinator in `node`/`from`/`to` fields.
pub const COORDINATOR: &str = "coordinator";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The whole state, sent first on every connection.
    Snapshot(Box<Snapshot>),
    /// This client missed `missed` events; a snapshot follows.
    Lagged {
        missed: u64,
    },
    TxStarted {
        tx_id: TxId,
        from: String,
        to: String,
        amount_cents: i64,
        nodes: Vec<NodeId>,
        one_phase: bool,
    },
    PrepareSent {
        tx_id: TxId,
        node: NodeId,
    },
    Vote {
        tx_id: TxId,
        node: NodeId,
        vote: VoteView,
        reason: Option<AbortReason>,
    },
    /// A record was forced to a log (`node` is `coordinator` or a node id).
    LogForced {
        tx_id: TxId,
        node: NodeId,
        record: String,
    },
    Decision {
        tx_id: TxId,
        decision: Decision,
        reason: Option<AbortReason>,
    },
    CommitSent {
        tx_id: TxId,
        node: NodeId,
    },
    RollbackSent {
        tx_id: TxId,
        node: NodeId,
    },
    Ack {
        tx_id: TxId,
        node: NodeId,
        decision: Decision,
    },
    TxFinished {
        tx_id: TxId,
        outcome: Outcome,
        reason: Option<AbortReason>,
        duration_ms: f64,
    },
    /// All acks are in: the coordinator forgets the transaction (END logged).
    TxEnded {
        tx_id: TxId,
    },
    /// The coordinator asked a node for its in-doubt transactions.
    RecoveryQuery {
        node: NodeId,
    },
    InDoubtReported {
        node: NodeId,
        tx_ids: Vec<TxId>,
    },
    /// An in-doubt transaction was resolved from the coordinator's log.
    Resolved {
        tx_id: TxId,
        node: NodeId,
        decision: Decision,
    },
    NodeStatus {
        node: NodeId,
        status: ComponentStatus,
    },
    CoordinatorStatus {
        status: ComponentStatus,
    },
    /// A fault was injected or healed.
    Fault {
        target: String,
        description: String,
    },
    Balances {
        accounts: Vec<AccountView>,
        total_cents: i64,
    },
    /// What a node holds as it last reported: its in-doubt transactions and
    /// its locked accounts. Published when either changes, so that a
    /// recording can show the cluster at any moment.
    NodeState {
        node: NodeId,
        in_doubt: Vec<TxId>,
        locked_accounts: Vec<AccountId>,
    },
    /// A protocol message parked by the coordinator (demo mode: step mode's
    /// hold) instead of being sent, or handed to its machine. `id` names it
    /// in the API (`POST /api/messages/{id}`) and in the dashboard.
    MessageHeld {
        id: u64,
        tx_id: TxId,
        node: NodeId,
        direction: Direction,
        message: MessageName,
        /// What it says, for people: `ready`, `A -$25.00`...
        detail: String,
    },
    /// A held message let go: it goes on its way after `delay_ms`, once, or
    /// twice (`copies: 2`) for a duplicate.
    MessageReleased {
        id: u64,
        tx_id: TxId,
        node: NodeId,
        direction: Direction,
        message: MessageName,
        copies: u8,
        delay_ms: u64,
    },
    /// A held message thrown away: it never arrives (or the coordinator
    /// crashed while holding it).
    MessageDropped {
        id: u64,
        tx_id: TxId,
        node: NodeId,
        direction: Direction,
        message: MessageName,
    },
}

/// Which way a protocol message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the coordinator to `node`.
    ToNode,
    /// From `node` to the coordinator.
    ToCoordinator,
}

/// The protocol messages the coordinator can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageName {
    Prepare,
    CommitOnePhase,
    Commit,
    Rollback,
    Vote,
    Outcome,
    Applied,
    Ack,
}

impl MessageName {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageName::Prepare => "prepare",
            MessageName::CommitOnePhase => "commit_one_phase",
            MessageName::Commit => "commit",
            MessageName::Rollback => "rollback",
            MessageName::Vote => "vote",
            MessageName::Outcome => "outcome",
            MessageName::Applied => "applied",
            MessageName::Ack => "ack",
        }
    }

    /// The step of the protocol the message belongs to: step mode's
    /// "next phase" releases the held messages of one step together.
    pub fn phase(self) -> u8 {
        match self {
            MessageName::Prepare | MessageName::CommitOnePhase => 0,
            MessageName::Vote | MessageName::Outcome => 1,
            MessageName::Commit | MessageName::Rollback => 2,
            MessageName::Applied | MessageName::Ack => 3,
        }
    }

    pub fn direction(self) -> Direction {
        match self {
            MessageName::Prepare
            | MessageName::CommitOnePhase
            | MessageName::Commit
            | MessageName::Rollback => Direction::ToNode,
            MessageName::Vote | MessageName::Outcome | MessageName::Applied | MessageName::Ack => {
                Direction::ToCoordinator
            }
        }
    }
}

impl EventKind {
    /// The transaction this event belongs to, if any.
    pub fn tx_id(&self) -> Option<&str> {
        match self {
            EventKind::TxStarted { tx_id, .. }
            | EventKind::PrepareSent { tx_id, .. }
            | EventKind::Vote { tx_id, .. }
            | EventKind::LogForced { tx_id, .. }
            | EventKind::Decision { tx_id, .. }
            | EventKind::CommitSent { tx_id, .. }
            | EventKind::RollbackSent { tx_id, .. }
            | EventKind::Ack { tx_id, .. }
            | EventKind::TxFinished { tx_id, .. }
            | EventKind::TxEnded { tx_id }
            | EventKind::Resolved { tx_id, .. }
            | EventKind::MessageHeld { tx_id, .. }
            | EventKind::MessageReleased { tx_id, .. }
            | EventKind::MessageDropped { tx_id, .. } => Some(tx_id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    pub cluster: ClusterView,
    /// Most recent first.
    pub transactions: Vec<TransactionSummary>,
    pub stats: Stats,
    pub faults: Faults,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_flat_json_with_kind() {
        let ev = Event {
            seq: 4,
            ts_ms: 99,
            kind: EventKind::PrepareSent {
                tx_id: "t".into(),
                node: "6001".into(),
            },
        };
        let json = serde_json::to_string(&ev).unwrap();
        assert_eq!(
            json,
            r#"{"seq":4,"ts_ms":99,"kind":"prepare_sent","tx_id":"t","node":"6001"}"#
        );
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ev);
        let lagged = Event {
            seq: 5,
            ts_ms: 1,
            kind: EventKind::Lagged { missed: 3 },
        };
        let back: Event = serde_json::from_str(&serde_json::to_string(&lagged).unwrap()).unwrap();
        assert_eq!(back, lagged);
    }
}
