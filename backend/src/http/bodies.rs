//! Answers that are not `shared` types: each one built by its handler and
//! described by the same type in the OpenAPI document.

use serde::Serialize;
use shared::api::{ComponentStatus, CrashPoint, ErrorBody, TransferResponse};
use shared::wire::{NodeId, ParticipantCrashPoint};
use utoipa::ToSchema;

/// A 409 answer to a transfer: either the transfer aborted (a transfer
/// body with `outcome: aborted`) or its `tx_id` was used before for a
/// different transfer (an error body).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum TransferConflict {
    Aborted(TransferResponse),
    Conflict(ErrorBody),
}

/// The node was killed (SIGKILL).
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeKilled {
    pub node: NodeId,
    pub pid: u32,
    /// Always `down`.
    pub status: ComponentStatus,
}

/// The node will crash itself at `armed` of its next transaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeArmed {
    pub node: NodeId,
    pub armed: ParticipantCrashPoint,
}

/// `POST /api/nodes/{id}/crash`: killed now, or armed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum NodeCrashAnswer {
    Killed(NodeKilled),
    Armed(NodeArmed),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeRestarted {
    pub node: NodeId,
    /// Always `recovering`: it replays its log, then reconnects.
    pub status: ComponentStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CoordinatorCrashArmed {
    pub armed: CrashPoint,
    pub restart_after_ms: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CoordinatorCrashDisarmed {
    /// Always null: nothing is armed any more.
    pub armed: Option<CrashPoint>,
}
