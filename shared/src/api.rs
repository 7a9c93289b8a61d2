//! HTTP API types (see the API contract in the README). Requests reject
//! unknown fields; responses only ever gain fields.

use serde::{Deserialize, Serialize};

use crate::events::{Direction, Event, MessageName};
pub use crate::views::{
    AccountView, ClusterView, ComponentStatus, CoordinatorCrashRequest, CoordinatorView,
    CrashPoint, Faults, LatencyMs, LatencyPoint, LinkFault, NodeView, Outcome, PhaseLatencyMs,
    Stats, TransactionSummary, TxState, VoteView,
};
use crate::wire::{AbortReason, AccountId, Decision, NodeId, Op, TxId};
pub use crate::wire::{AccountBalance, InDoubtTx, LedgerEntry};

/// `POST /api/transfers`
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::account_id))]
    pub from: AccountId,
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::account_id))]
    pub to: AccountId,
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::amount_cents))]
    pub amount_cents: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::tx_id))]
    pub tx_id: Option<TxId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeVote {
    pub node: NodeId,
    pub vote: VoteView,
    pub reason: Option<AbortReason>,
}

/// Body of a 200 (committed) or 409 (aborted) answer to a transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransferResponse {
    pub tx_id: TxId,
    pub outcome: Outcome,
    pub reason: Option<AbortReason>,
    pub detail: Option<String>,
    pub votes: Vec<NodeVote>,
    pub duration_ms: f64,
}

/// The operations one node performs for a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Leg {
    pub node: NodeId,
    pub ops: Vec<Op>,
}

/// The operations each node performs for a transfer: a debit on the node of
/// `from` and a credit on the node of `to`, or one leg with both when they
/// live on the same node (one-phase commit).
pub fn transfer_legs(
    from: &str,
    to: &str,
    amount_cents: i64,
    from_node: &str,
    to_node: &str,
) -> Vec<Leg> {
    let debit = Op {
        account: from.to_string(),
        delta_cents: -amount_cents,
    };
    let credit = Op {
        account: to.to_string(),
        delta_cents: amount_cents,
    };
    if from_node == to_node {
        vec![Leg {
            node: from_node.to_string(),
            ops: vec![debit, credit],
        }]
    } else {
        vec![
            Leg {
                node: from_node.to_string(),
                ops: vec![debit],
            },
            Leg {
                node: to_node.to_string(),
                ops: vec![credit],
            },
        ]
    }
}

/// `GET /api/transactions/{tx_id}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransactionDetail {
    #[serde(flatten)]
    pub summary: TransactionSummary,
    pub detail: Option<String>,
    pub legs: Vec<Leg>,
    pub votes: Vec<NodeVote>,
    /// The protocol events of this transaction, oldest first.
    pub timeline: Vec<Event>,
}

/// Optional body of `POST /api/nodes/{id}/crash`: without `at` the node is
/// killed at once (SIGKILL); with it, the node kills itself when its next
/// transaction reaches that point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NodeCrashRequest {
    #[serde(default)]
    pub at: Option<crate::wire::ParticipantCrashPoint>,
}

/// `PUT /api/faults` (every field optional; absent fields keep their value)
/// and `GET /api/faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FaultsUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::probability))]
    pub prepare_crash_probability: Option<f64>,
    /// Step mode: pause this long after the votes are in and again after the
    /// decision, so a person can break something at exactly that moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::phase_pause_ms))]
    pub phase_pause_ms: Option<u64>,
    /// Step mode's hold: every protocol message (both ways) waits at the
    /// coordinator until it is released one by one; `false` lets every held
    /// message go, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_messages: Option<bool>,
}

/// A protocol message the coordinator holds (`GET /api/messages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeldMessageView {
    /// Names it in `POST /api/messages/{id}` and in its events.
    pub id: u64,
    pub tx_id: TxId,
    pub node: NodeId,
    pub direction: Direction,
    pub message: MessageName,
    /// What it says, for people.
    pub detail: String,
    pub held_for_ms: u64,
}

/// `GET /api/messages`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeldMessages {
    /// Whether new messages are held (step mode's hold).
    pub hold: bool,
    /// Oldest first.
    pub messages: Vec<HeldMessageView>,
}

/// What to do with a held message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageAction {
    /// Send it on now.
    Deliver,
    /// Throw it away: it never arrives.
    Drop,
    /// Send it on twice.
    Duplicate,
    /// Send it on after `delay_ms`.
    Delay,
}

/// `POST /api/messages/{id}`. Its schema is written by hand
/// ([`schema::message_action_request`]): `delay_ms` goes with `delay` only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageActionRequest {
    pub action: MessageAction,
    /// For `delay`: how long, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

/// Optional body of `POST /api/messages/next`: without it (or with
/// `phase: false`) the oldest held message goes on; with `phase: true`,
/// every held message of the oldest one's transaction and protocol step
/// (e.g. both prepares).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NextMessageRequest {
    #[serde(default)]
    pub phase: bool,
}

/// The answer of `POST /api/messages/next` and `POST /api/messages/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleasedMessages {
    /// The messages acted on, oldest first.
    pub released: Vec<u64>,
    pub action: Option<MessageAction>,
}

/// `GET /api/recording/info`: what the coordinator's recording holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordingInfo {
    /// Whether the coordinator records its events (on in demo mode, or with
    /// `--recording-bytes-max`).
    pub enabled: bool,
    pub version: u32,
    /// The oldest and newest recorded events (absent while empty).
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub first_ts_ms: Option<u64>,
    pub last_ts_ms: Option<u64>,
    /// Bytes on disk now, and the most it keeps.
    pub bytes: u64,
    pub bytes_max: u64,
    /// Recorded snapshots (a replay starts at one), oldest first.
    pub snapshots: Vec<u64>,
    /// Events left out because the writer fell behind.
    pub missed: u64,
}

/// Every error body: `{"error": "<human sentence>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
}

/// `GET /api/ready`: whether the coordinator can run transfers now, and
/// if not, every reason why (200 when ready, 503 otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    /// No reason below: the engine is up, its decision log open, every
    /// node connected.
    pub ready: bool,
    /// The coordinator's engine.
    pub coordinator: ComponentStatus,
    /// The decision log is open while the engine runs: it opens it at
    /// start and stops when it cannot write it.
    pub decision_log_open: bool,
    /// Every node, in order, and whether the engine's connection to it is
    /// up (and it has reported its in-doubt transactions).
    pub nodes: Vec<NodeReadiness>,
    /// Why it is not ready: empty when ready.
    pub reasons: Vec<NotReady>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeReadiness {
    pub id: NodeId,
    pub connected: bool,
}

/// One reason the coordinator is not ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotReady {
    pub reason: NotReadyReason,
    /// The node concerned, if it is about one node.
    pub node: Option<NodeId>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotReadyReason {
    /// The engine is not running (starting, or recovering from a crash).
    CoordinatorDown,
    /// The decision log is not open (the engine has not opened it).
    DecisionLogClosed,
    /// The node's process is not running.
    NodeDown,
    /// The node's process is starting.
    NodeStarting,
    /// The link to the node is cut (an injected fault).
    LinkCut,
    /// The node answers but refuses this coordinator (another cluster, an
    /// older epoch, a wrong secret).
    NodeRefuses,
    /// The node runs but the engine is not connected to it.
    NodeUnreachable,
    /// Connected, but it has not reported its in-doubt transactions yet.
    NodeReconciling,
}

/// `GET /api/in-doubt`: the operator's view of transactions that are
/// prepared somewhere and not yet resolved, why each one is stuck, and
/// every heuristic decision an operator forced on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InDoubtView {
    /// The coordinator's engine (`down` while it recovers from a crash).
    pub coordinator: ComponentStatus,
    /// Oldest first.
    pub transactions: Vec<InDoubtEntry>,
    /// Heuristic decisions reported by the nodes, oldest first per node.
    pub heuristics: Vec<HeuristicView>,
    pub audit: MoneyAudit,
    /// Nodes that did not answer just now: what is shown for them is what
    /// they reported last.
    pub stale_nodes: Vec<NodeId>,
}

/// One transaction prepared somewhere and not yet resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InDoubtEntry {
    pub tx_id: TxId,
    /// Nodes holding it prepared (locks held, waiting for the decision).
    pub prepared_on: Vec<PreparedOn>,
    /// Nodes that owe an ack of the coordinator's commit (they may not
    /// have reported it in doubt, e.g. when they do not answer).
    pub pending_acks: Vec<NodeId>,
    /// How long it has waited: the longest of its nodes' waits, or the time
    /// since the coordinator started it.
    pub age_ms: u64,
    pub coordinator_state: CoordinatorTxState,
    /// The coordinator's decision, when it has one (`abort` also when it
    /// has no record: presumed abort).
    pub decision: Option<Decision>,
    /// Why it is not resolved yet; resolution itself is automatic.
    pub stuck: Vec<StuckBecause>,
    /// The transfer, when the coordinator still knows it.
    pub from: Option<AccountId>,
    pub to: Option<AccountId>,
    pub amount_cents: Option<i64>,
}

/// A node holding an in-doubt transaction prepared, as it last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreparedOn {
    pub node: NodeId,
    /// How long it has been prepared there, by the node's clock.
    pub prepared_for_ms: u64,
}

/// What the coordinator knows of an in-doubt transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CoordinatorTxState {
    /// COMMIT is durable; waiting for acks (`pending_acks`).
    Committing,
    /// Votes are being collected or the decision is being made (e.g. a
    /// step-mode pause).
    InFlight,
    /// Decided abort (recorded); the nodes still holding it get `rollback`.
    Aborted,
    /// No record of it: presumed abort. Nodes asking get `rollback`.
    Unknown,
    /// The coordinator is down and cannot be asked.
    CoordinatorDown,
}

/// One reason an in-doubt transaction is not resolved yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StuckBecause {
    pub reason: StuckReason,
    /// The node concerned, if it is about one node.
    pub node: Option<NodeId>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StuckReason {
    /// The coordinator is down (recovering from a crash).
    CoordinatorDown,
    /// The link between the coordinator and the node is cut (injected).
    LinkCut,
    /// The node's process is down.
    NodeDown,
    /// The node runs but does not answer (a real network fault, or busy).
    NodeUnreachable,
    /// The commit was sent; the node's ack has not arrived yet.
    WaitingForAck,
    /// The coordinator has not decided yet.
    WaitingForDecision,
    /// An operator forced an outcome on the node that disagrees with the
    /// coordinator's decision: it will never resolve by itself.
    HeuristicMismatch,
    /// Nothing blocks it: the node learns the outcome at its next in-doubt
    /// query (every second).
    Resolving,
}

/// `POST /api/nodes/{id}/heuristic` (demo mode only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeuristicRequest {
    pub tx_id: TxId,
    pub decision: Decision,
}

/// A heuristic decision on one node, compared with the coordinator's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeuristicView {
    pub tx_id: TxId,
    pub node: NodeId,
    /// What the operator forced on that node.
    pub decision: Decision,
    /// That node's operations of the transaction.
    pub ops: Vec<Op>,
    /// The coordinator's decision (`abort` when it has no record: presumed
    /// abort); null while it has not decided or cannot be asked.
    pub coordinator_decision: Option<Decision>,
    /// Whether the two agree; null while the coordinator's is unknown.
    /// `false` means the transaction is not atomic.
    pub agrees: Option<bool>,
    /// The coordinator's decision as it reached that node (a `commit` or
    /// `rollback` since the node's process started): the node acked it if
    /// the two agree and refused it if not; null until one arrives.
    #[serde(default)]
    pub reached_node: Option<Decision>,
    /// What this heuristic adds to (+) or takes from (−) the total compared
    /// with what the coordinator's decision would have done (0 if it agrees).
    pub imbalance_cents: i64,
    pub detail: String,
}

/// The money audit, with heuristic decisions and unfinished commits
/// accounted for: a disagreeing heuristic breaks atomicity, and this shows
/// by how much instead of hiding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MoneyAudit {
    pub expected_total_cents: i64,
    /// Sum of the balances the nodes reported (last known for stale nodes).
    pub total_cents: i64,
    /// Sum of `imbalance_cents` of the disagreeing heuristic decisions.
    pub heuristic_imbalance_cents: i64,
    /// Net change still to come from commits that some node has not applied
    /// yet (their legs on `pending_acks` nodes).
    pub pending_commit_cents: i64,
    /// `total + pending == expected + heuristic imbalance`.
    pub balanced: bool,
    /// Transactions are in flight (locks held, commits not yet acknowledged):
    /// the balances and the coordinator's state are read at different
    /// moments, so a difference may be transient. Check again when settled.
    #[serde(default)]
    pub settling: bool,
    pub detail: String,
}

/// `POST /api/chaos` (demo mode): a chaos run against the demo cluster;
/// every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChaosRequest {
    /// How long the clients and the faults run.
    #[serde(default = "chaos_seconds_default")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::chaos_seconds))]
    pub seconds: u64,
    /// Concurrent clients running transfers.
    #[serde(default = "chaos_clients_default")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::chaos_clients))]
    pub clients: u32,
    /// Mean pause between faults (each pause is 0.5 to 1.5 times it).
    #[serde(default = "chaos_fault_interval_ms_default")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::chaos_fault_interval_ms))]
    pub fault_interval_ms: u64,
    /// Seed of the fault schedule and the clients' choices (random if absent).
    #[serde(default)]
    pub seed: Option<u64>,
}

impl Default for ChaosRequest {
    fn default() -> Self {
        ChaosRequest {
            seconds: chaos_seconds_default(),
            clients: chaos_clients_default(),
            fault_interval_ms: chaos_fault_interval_ms_default(),
            seed: None,
        }
    }
}

fn chaos_seconds_default() -> u64 {
    crate::limits::CHAOS_SECONDS_DEFAULT
}
fn chaos_clients_default() -> u32 {
    crate::limits::CHAOS_CLIENTS_DEFAULT
}
fn chaos_fault_interval_ms_default() -> u64 {
    crate::limits::CHAOS_FAULT_INTERVAL_MS_DEFAULT
}

/// Where a chaos run is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChaosState {
    /// No run since the coordinator started.
    #[default]
    Idle,
    /// Clients and faults are running.
    Running,
    /// The faults have stopped: healing, restarting, settling, auditing.
    Settling,
    /// Done: the verdict is in.
    Finished,
}

/// One fault a chaos run injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChaosFault {
    /// Since the run started.
    pub at_ms: u64,
    /// e.g. `node_kill9_api`, `link_cut`, `coordinator_engine_crash`.
    pub kind: String,
    /// The node it was aimed at (an engine crash hits the coordinator).
    pub node: String,
}

/// The audit after a chaos run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChaosVerdict {
    /// No violation and the total conserved.
    pub pass: bool,
    /// Requests (a tx_id with its body) answered committed...
    pub committed: u64,
    /// ...and of those, the ones with their two legs on the ledgers exactly once.
    pub committed_on_both_ledgers: u64,
    /// Requests answered aborted...
    pub aborted: u64,
    /// ...and of those, the ones with nothing on any ledger.
    pub aborted_on_no_ledger: u64,
    pub total_cents: i64,
    pub expected_total_cents: i64,
    pub violation_count: u64,
    /// The first violations, each naming its tx_id and what the ledgers hold.
    pub violations: Vec<String>,
}

/// `GET /api/chaos`: the current or last chaos run, its progress and,
/// once finished, its verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChaosRun {
    pub state: ChaosState,
    /// What was asked (the defaults while idle).
    pub seconds: u64,
    pub clients: u32,
    pub fault_interval_ms: u64,
    pub seed: u64,
    /// Since the run started (frozen once it has settled).
    pub elapsed_ms: u64,
    /// A stop was asked for (`DELETE /api/chaos`) before the time was up.
    pub stopped: bool,
    /// Requests sent, and how many were answered committed, aborted, or
    /// not at all (503 or cut).
    pub requests: u64,
    pub committed: u64,
    pub aborted: u64,
    pub unknown: u64,
    /// Faults injected by kind.
    pub faults: std::collections::BTreeMap<String, u64>,
    /// The latest faults, oldest first.
    pub recent_faults: Vec<ChaosFault>,
    /// Once finished.
    pub verdict: Option<ChaosVerdict>,
}
/// The OpenAPI schemas of request fields, with the bounds of
/// [`crate::limits`] and the character sets the coordinator checks, so the
/// document cannot drift from what the server accepts. A field's schema
/// here says exactly which values pass: anything it allows is accepted
/// (unless the cluster's state refuses it, e.g. an aborted transfer), and
/// anything it refuses gets a 400 or 422.
#[cfg(feature = "openapi")]
pub mod schema {
    use utoipa::openapi::schema::{
        AdditionalProperties, KnownFormat, Object, ObjectBuilder, OneOfBuilder, Schema,
        SchemaFormat, SchemaType, Type,
    };
    use utoipa::openapi::RefOr;

    use crate::limits::{
        ACCOUNT_ID_BYTES_MAX, AMOUNT_CENTS_MAX, HELD_MESSAGE_DELAY_MS_MAX, LINK_DELAY_MS_MAX,
        PHASE_PAUSE_MS_MAX, RESTART_AFTER_MS_DEFAULT, RESTART_AFTER_MS_MAX, TX_ID_BYTES_MAX,
    };

    /// The characters of an account id (the coordinator's configuration
    /// checks them), as a regular expression's class.
    pub const ACCOUNT_ID_CHARS: &str = "A-Za-z0-9._-";
    /// The characters of a client's `tx_id` (the coordinator checks them
    /// when it admits a transfer).
    pub const TX_ID_CHARS: &str = "A-Za-z0-9._:-";

    /// `^[chars]{1,max}$`: ASCII only, so its length in characters is its
    /// length in bytes.
    pub fn id_pattern(chars: &str, bytes_max: usize) -> String {
        format!("^[{chars}]{{1,{bytes_max}}}$")
    }

    fn whole(min: i64, max: u64) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(min))
            .maximum(Some(max))
    }

    fn nullable(schema: ObjectBuilder) -> Object {
        let built = schema.build();
        let mut types = match &built.schema_type {
            SchemaType::Type(t) => vec![t.clone()],
            SchemaType::Array(ts) => ts.clone(),
            SchemaType::AnyValue => vec![],
        };
        types.push(Type::Null);
        let mut object = built;
        object.schema_type = SchemaType::from_iter(types);
        object
    }

    pub fn account_id() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(id_pattern(ACCOUNT_ID_CHARS, ACCOUNT_ID_BYTES_MAX)))
            .min_length(Some(1))
            .max_length(Some(ACCOUNT_ID_BYTES_MAX))
            .description(Some(
                "An account of this cluster (GET /api/accounts lists them)",
            ))
            .build()
    }

    pub fn amount_cents() -> Object {
        whole(1, AMOUNT_CENTS_MAX as u64)
            .description(Some("Integer cents, more than 0"))
            .build()
    }

    pub fn tx_id() -> Object {
        nullable(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(id_pattern(TX_ID_CHARS, TX_ID_BYTES_MAX)))
                .min_length(Some(1))
                .max_length(Some(TX_ID_BYTES_MAX))
                .description(Some(
                    "The client's id for this transfer: sent again, it returns the first outcome",
                )),
        )
    }

    pub fn probability() -> Object {
        nullable(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
                .minimum(Some(0.0))
                .maximum(Some(1.0)),
        )
    }

    pub fn phase_pause_ms() -> Object {
        nullable(whole(0, PHASE_PAUSE_MS_MAX))
    }

    pub fn link_delay_ms() -> Object {
        whole(0, LINK_DELAY_MS_MAX).default(Some(0.into())).build()
    }

    pub fn chaos_seconds() -> Object {
        whole(1, crate::limits::CHAOS_SECONDS_MAX)
            .default(Some(crate::limits::CHAOS_SECONDS_DEFAULT.into()))
            .build()
    }

    pub fn chaos_clients() -> Object {
        whole(1, u64::from(crate::limits::CHAOS_CLIENTS_MAX))
            .default(Some(crate::limits::CHAOS_CLIENTS_DEFAULT.into()))
            .build()
    }

    pub fn chaos_fault_interval_ms() -> Object {
        whole(
            crate::limits::CHAOS_FAULT_INTERVAL_MS_MIN as i64,
            crate::limits::CHAOS_FAULT_INTERVAL_MS_MAX,
        )
        .default(Some(crate::limits::CHAOS_FAULT_INTERVAL_MS_DEFAULT.into()))
        .build()
    }

    pub fn restart_after_ms() -> Object {
        whole(0, RESTART_AFTER_MS_MAX)
            .default(Some(RESTART_AFTER_MS_DEFAULT.into()))
            .build()
    }

    /// `POST /api/messages/{id}`: `delay` needs `delay_ms`; the other
    /// actions take none (or null).
    pub fn message_action_request() -> Schema {
        let now = ObjectBuilder::new()
            .property(
                "action",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["deliver", "drop", "duplicate"])),
            )
            .required("action")
            .property("delay_ms", ObjectBuilder::new().schema_type(Type::Null))
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .description(Some("Deliver, drop or duplicate the held message now"));
        let delayed = ObjectBuilder::new()
            .property(
                "action",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["delay"])),
            )
            .required("action")
            .property(
                "delay_ms",
                whole(1, HELD_MESSAGE_DELAY_MS_MAX).description(Some("How long, in milliseconds")),
            )
            .required("delay_ms")
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .description(Some("Send the held message on after delay_ms"));
        Schema::OneOf(OneOfBuilder::new().item(now).item(delayed).build())
    }

    impl utoipa::PartialSchema for super::MessageActionRequest {
        fn schema() -> RefOr<Schema> {
            RefOr::T(message_action_request())
        }
    }

    impl utoipa::ToSchema for super::MessageActionRequest {
        fn name() -> std::borrow::Cow<'static, str> {
            "MessageActionRequest".into()
        }
    }
}
