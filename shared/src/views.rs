//! What the coordinator shows of itself: the views that HTTP answers and
//! live events both carry (the cluster, its accounts, statistics, fault
//! settings, a transaction's summary and the small enums inside them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::wire::{AbortReason, AccountBalance, AccountId, Decision, InDoubtTx, NodeId, TxId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Committed,
    Aborted,
}

impl From<Decision> for Outcome {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Commit => Outcome::Committed,
            Decision::Abort => Outcome::Aborted,
        }
    }
}

/// A vote as the API reports it: a node that never answered is `no_answer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VoteView {
    Ready,
    Abort,
    NoAnswer,
}

/// Protocol state of a transaction, as the coordinator knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TxState {
    /// Started; votes being collected.
    Active,
    /// Every vote was ready; the decision is being made durable.
    Prepared,
    Committed,
    Aborted,
}

/// An item of `GET /api/transactions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransactionSummary {
    pub tx_id: TxId,
    pub state: TxState,
    pub from: AccountId,
    pub to: AccountId,
    pub amount_cents: i64,
    pub reason: Option<AbortReason>,
    /// Unix time in milliseconds.
    pub started_at_ms: u64,
    pub duration_ms: Option<f64>,
    /// Nodes that have not yet acknowledged a commit.
    #[serde(default)]
    pub pending_acks: Vec<NodeId>,
}

impl TransactionSummary {
    /// A transaction that has just started (state `active`).
    pub fn started(
        tx_id: &str,
        from: &str,
        to: &str,
        amount_cents: i64,
        started_at_ms: u64,
    ) -> TransactionSummary {
        TransactionSummary {
            tx_id: tx_id.to_string(),
            state: TxState::Active,
            from: from.to_string(),
            to: to.to_string(),
            amount_cents,
            reason: None,
            started_at_ms,
            duration_ms: None,
            pending_acks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    Up,
    Down,
    Recovering,
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoordinatorView {
    pub status: ComponentStatus,
    /// Whether fault injection is allowed (demo mode).
    pub demo_mode: bool,
    /// The cluster this coordinator's log belongs to, and the epoch of its
    /// running incarnation (absent while it has not started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// A network fault on the link between the coordinator and one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LinkFault {
    /// Added one-way delay for every message, in both directions.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::api::schema::link_delay_ms))]
    pub delay_ms: u64,
    /// Drop every message in both directions (a partition).
    #[serde(default)]
    pub drop: bool,
    /// Send every message twice (tests idempotency).
    #[serde(default)]
    pub duplicate: bool,
}

impl LinkFault {
    pub fn is_healthy(&self) -> bool {
        self.delay_ms == 0 && !self.drop && !self.duplicate
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeView {
    pub id: NodeId,
    pub addr: String,
    pub status: ComponentStatus,
    pub accounts: Vec<AccountBalance>,
    pub in_doubt: Vec<TxId>,
    /// The in-doubt transactions with how long each has waited.
    #[serde(default)]
    pub in_doubt_detail: Vec<InDoubtTx>,
    pub locked_accounts: Vec<AccountId>,
    #[serde(default)]
    pub link: LinkFault,
    /// Started and supervised by this coordinator (can be crashed/restarted).
    #[serde(default)]
    pub supervised: bool,
    #[serde(default)]
    pub pid: Option<u32>,
    /// Why the node refuses this coordinator's connection, while it does
    /// (another cluster's node, or a newer coordinator epoch seen there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// `GET /api/cluster`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterView {
    pub coordinator: CoordinatorView,
    pub nodes: Vec<NodeView>,
    /// Sum of the balances of the nodes that answered.
    pub total_cents: i64,
    pub expected_total_cents: i64,
    /// False when some node did not answer, so `total_cents` is partial.
    #[serde(default)]
    pub total_complete: bool,
}

/// An item of `GET /api/accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountView {
    pub id: AccountId,
    pub node: NodeId,
    pub balance_cents: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// `GET /api/stats`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    pub attempted: u64,
    pub committed: u64,
    pub aborted: u64,
    pub aborts_by_reason: BTreeMap<String, u64>,
    /// End-to-end latency of finished transfers (since start).
    pub latency_ms: LatencyMs,
    /// Committed transfers per second over the last 10 seconds.
    pub throughput_per_s: f64,
    /// Committed per second, one value per second, oldest first (last 60 s).
    #[serde(default)]
    pub throughput_history: Vec<u64>,
    pub in_flight: u64,
    /// Of `in_flight`, transactions that cannot finish by themselves: the
    /// coordinator decided commit, a node's operator forced abort
    /// (a heuristic decision), and the node refuses every commit re-sent
    /// to it. They stay in flight until someone puts that node's books
    /// right (`GET /api/in-doubt` names them).
    #[serde(default)]
    pub in_flight_heuristic_mismatch: u64,
    /// Coordinator log forces (fdatasync) since the process started
    /// (engine restarts included, like `uptime_s`).
    pub log_forces: u64,
    pub uptime_s: f64,
    /// Transactions whose outcome came from recovery rather than from an
    /// answer to their client (a coordinator crash between its decision and
    /// the answer, or presumed abort): counted in `committed` or `aborted`
    /// too.
    #[serde(default)]
    pub recovered: u64,
    /// p50 and p99 of the transfers finished in each second, oldest first,
    /// aligned with `throughput_history` (zeros in a second with none).
    #[serde(default)]
    pub latency_history: Vec<LatencyPoint>,
    /// Aborts by reason in each second, oldest first, aligned with
    /// `throughput_history` (empty in a second with none).
    #[serde(default)]
    pub abort_history: Vec<BTreeMap<String, u64>>,
    /// Time per protocol phase (p50 and p99, milliseconds), from the
    /// coordinator's phase histograms (`/metrics`), estimated within their
    /// buckets.
    #[serde(default)]
    pub phases_ms: PhaseLatencyMs,
}

/// One second of `Stats::latency_history`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatencyPoint {
    pub p50: f64,
    pub p99: f64,
}

/// `Stats::phases_ms`: the three timed phases of a two-phase commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhaseLatencyMs {
    /// Phase 1: `tx_started` to the last vote.
    pub prepare: LatencyPoint,
    /// The commit point: the last `ready` vote to the COMMIT record durable.
    pub decision_force: LatencyPoint,
    /// Phase 2: the first commit sent to the last commit ack.
    pub commit: LatencyPoint,
}

/// Where the coordinator's engine can be crashed (demo mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CrashPoint {
    /// All votes are in; the decision is not yet logged.
    BeforeDecision,
    /// The COMMIT decision is durable; no commit has been sent.
    AfterDecision,
    /// The commit was sent to the first node only.
    MidCommit,
}

/// `POST /api/coordinator/crash`
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CoordinatorCrashRequest {
    pub at: CrashPoint,
    #[serde(default = "default_restart_after_ms")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::api::schema::restart_after_ms))]
    pub restart_after_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Faults {
    pub prepare_crash_probability: f64,
    pub phase_pause_ms: u64,
    /// A coordinator crash armed for the next transaction reaching that point.
    pub coordinator_crash: Option<CoordinatorCrashRequest>,
    pub links: BTreeMap<NodeId, LinkFault>,
    /// Step mode's hold: every protocol message waits at the coordinator
    /// until it is released (`POST /api/messages/next`).
    #[serde(default)]
    pub hold_messages: bool,
}

fn default_restart_after_ms() -> u64 {
    crate::limits::RESTART_AFTER_MS_DEFAULT
}
