//! Routes for operators: Prometheus metrics at `GET /metrics` and the API's
//! OpenAPI document at `GET /api/openapi.json`.
//!
//! The document is written here, next to nothing else: each endpoint of the
//! API is one `#[utoipa::path]` item in [`paths`], and every schema comes
//! from the `shared` types (`#[derive(ToSchema)]` behind the `openapi`
//! feature). `system-tests/tests/ops.rs` keeps it honest: every route the
//! router registers must be described, every described route must exist,
//! and real answers must validate against the schemas. Adding a route means
//! adding its item below.

use std::sync::{Arc, LazyLock};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;

use super::view::cluster_view;
use crate::app::App;
use crate::metrics;

/// The content type of the Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The operator routes, merged into the main router (which adds the state).
pub fn router() -> Router<Arc<App>> {
    // Start the metrics clock with the server rather than at the first event.
    let _ = metrics::global();
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/api/openapi.json", get(serve_openapi))
}

async fn serve_metrics(State(app): State<Arc<App>>) -> Response {
    let cluster = cluster_view(&app).await;
    let live = app.engine.live();
    let node_ids = app.supervisor.node_ids();
    let connected = node_ids
        .iter()
        .map(|id| {
            (
                id.clone(),
                live.as_ref().is_some_and(|l| l.transport.is_connected(id)),
            )
        })
        .collect();
    // `cluster_view` just refreshed each answering node's last status.
    let node_logs = node_ids
        .iter()
        .filter_map(|id| {
            app.last_status(id)
                .map(|s| (id.clone(), s.log_forces, s.log_records))
        })
        .collect();
    let state = metrics::State {
        cluster,
        connected,
        in_flight: app.engine.gauge(&app.engine.in_flight),
        coordinator_log_forces: app.engine.gauge(&app.engine.log_forces),
        node_logs,
    };
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        metrics::global().render(&state),
    )
        .into_response()
}

async fn serve_openapi() -> Response {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
        let mut doc = ApiDoc::openapi();
        doc.merge(super::indoubt::InDoubtDoc::openapi());
        doc.to_pretty_json()
            .expect("the OpenAPI document serialises")
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// The OpenAPI document of the coordinator's HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "2PC coordinator API",
        description = "Money transfers made atomic with Two-Phase Commit. Money is integer cents; errors are \
                       `{\"error\": \"<human sentence>\"}`; requests with unknown fields are rejected (400). \
                       Fault injection answers 403 unless the coordinator runs with --demo. Every route answers \
                       421 to a Host the coordinator does not answer to (--allowed-host adds names). Every change \
                       (POST, PUT, DELETE) answers 403 to a web page of a foreign Origin (--allowed-origin adds \
                       origins), 401 without the API token when the coordinator has one (--api-token-file), and \
                       415 to a body not sent as application/json; reads stay open."
    ),
    modifiers(&BearerToken),
    paths(
        paths::health,
        paths::transfer,
        paths::list_transactions,
        paths::get_transaction,
        paths::cluster,
        paths::accounts,
        paths::ledger,
        paths::stats,
        paths::get_faults,
        paths::put_faults,
        paths::crash_node,
        paths::restart_node,
        paths::set_link,
        paths::heal_link,
        paths::crash_coordinator,
        paths::disarm_coordinator_crash,
        paths::list_messages,
        paths::next_message,
        paths::act_on_message,
        paths::recording_info,
        paths::recording,
        paths::websocket,
        paths::metrics,
        paths::openapi,
    ),
    components(schemas(
        shared::events::Event,
        shared::events::EventKind,
        shared::events::Snapshot,
        shared::recording::Header
    )),
    tags(
        (name = "transfers", description = "Move money and look at transactions"),
        (name = "state", description = "Cluster, balances, ledgers, statistics"),
        (name = "faults", description = "Failure injection (demo mode only; otherwise 403)"),
        (name = "operations", description = "Live events, the recorded event stream, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// The `api_token` security scheme that changes name: required only when
/// the coordinator runs with --api-token-file.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The token in the coordinator's --api-token-file, as `Authorization: Bearer <token>`; needed \
                 for every change when the coordinator has one (always when it listens on a non-loopback address)",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("api_token", SecurityScheme::Http(scheme));
    }
}

/// Bodies that the handlers build ad hoc (not `shared` types): described
/// here so that clients know their shape; the sync test checks them
/// against real answers. Never constructed: the handlers build them with
/// `json!`.
#[allow(dead_code)]
pub mod bodies {
    use serde::Serialize;
    use shared::api::{CrashPoint, ErrorBody, NodeVote, TransferResponse, TxState};
    use shared::wire::{AbortReason, TxId};
    use utoipa::ToSchema;

    /// A 409 answer to a transfer: either the transfer aborted (a transfer
    /// body with `outcome: aborted`) or its `tx_id` was used before for a
    /// different transfer (an error body).
    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    pub enum AbortedOrConflict {
        Aborted(TransferResponse),
        Conflict(ErrorBody),
    }

    /// A transaction no longer in the recent history, known only by its
    /// remembered outcome.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct TransactionOutcome {
        pub tx_id: TxId,
        pub state: TxState,
        pub reason: Option<AbortReason>,
        pub detail: Option<String>,
        pub votes: Vec<NodeVote>,
        /// Always empty here.
        pub legs: Vec<serde_json::Value>,
        /// Always empty here.
        pub timeline: Vec<serde_json::Value>,
    }

    /// `GET /api/transactions/{tx_id}`: the full detail while the transaction
    /// is in the recent history, its outcome after that.
    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    pub enum TransactionAnswer {
        Detail(shared::api::TransactionDetail),
        Outcome(TransactionOutcome),
    }

    /// The node was killed (SIGKILL).
    #[derive(Serialize, ToSchema)]
    pub struct NodeKilled {
        pub node: String,
        pub pid: u32,
        /// Always `down`.
        pub status: String,
    }

    /// The node will crash itself at `armed` of its next transaction.
    #[derive(Serialize, ToSchema)]
    pub struct NodeArmed {
        pub node: String,
        /// `after_prepare_logged` or `after_commit_applied`.
        pub armed: String,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    pub enum NodeCrashAnswer {
        Killed(NodeKilled),
        Armed(NodeArmed),
    }

    #[derive(Serialize, ToSchema)]
    pub struct NodeRestarted {
        pub node: String,
        /// Always `recovering`: it replays its log, then reconnects.
        pub status: String,
    }

    #[derive(Serialize, ToSchema)]
    pub struct CoordinatorCrashArmed {
        pub armed: CrashPoint,
        pub restart_after_ms: u64,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CoordinatorCrashDisarmed {
        /// Always null: nothing is armed any more.
        pub armed: Option<CrashPoint>,
    }
}

/// One item per endpoint; the functions exist only to carry the attributes.
#[allow(dead_code)]
mod paths {
    use shared::api::{
        AccountView, ClusterView, CoordinatorCrashRequest, ErrorBody, Faults, FaultsUpdate, Health,
        HeldMessages, LedgerEntry, LinkFault, MessageActionRequest, NextMessageRequest,
        NodeCrashRequest, RecordingInfo, ReleasedMessages, Stats, TransactionSummary,
        TransferRequest, TransferResponse, TxState,
    };
    use shared::wire::AbortReason;

    use super::bodies::{
        AbortedOrConflict, CoordinatorCrashArmed, CoordinatorCrashDisarmed, NodeCrashAnswer,
        NodeRestarted, TransactionAnswer,
    };

    #[utoipa::path(get, path = "/api/health", tag = "state",
        responses((status = 200, description = "The coordinator's HTTP server answers", body = Health)))]
    fn health() {}

    #[utoipa::path(post, path = "/api/transfers", tag = "transfers",
        description = "Runs one transfer through Two-Phase Commit. Submitting the same `tx_id` again returns the \
                       first outcome; nothing moves twice.",
        request_body = TransferRequest,
        security((), ("api_token" = [])),
        responses(
            (status = 200, description = "Committed", body = TransferResponse),
            (status = 409, description = "Aborted (the body says why), or the tx_id was used for a different transfer",
                body = AbortedOrConflict),
            (status = 400, description = "Bad JSON or unknown fields", body = ErrorBody),
            (status = 422, description = "Invalid transfer: unknown account, amount <= 0 or above the maximum, from == to",
                body = ErrorBody),
            (status = 503, description = "The coordinator is down or overloaded: retry with the same tx_id",
                body = ErrorBody),
            (status = 401, description = "The coordinator has an API token and the request does not present it",
                body = ErrorBody),
            (status = 403, description = "Requested by a web page of a foreign Origin", body = ErrorBody),
            (status = 415, description = "A body not sent as Content-Type: application/json", body = ErrorBody),
        ))]
    fn transfer() {}

    #[utoipa::path(get, path = "/api/transactions", tag = "transfers",
        params(
            ("limit" = Option<usize>, Query, description = "How many (1 to 2000; default 50)"),
            ("state" = Option<TxState>, Query, description = "Only transactions in this state"),
            ("reason" = Option<AbortReason>, Query, description = "Only transactions aborted for this reason"),
        ),
        responses(
            (status = 200, description = "Recent transactions, newest first (of those that match)", body = Vec<TransactionSummary>),
            (status = 400, description = "Bad limit, state or reason", body = ErrorBody),
        ))]
    fn list_transactions() {}

    #[utoipa::path(get, path = "/api/transactions/{tx_id}", tag = "transfers",
        params(("tx_id" = String, Path, description = "The transaction id")),
        responses(
            (status = 200, description = "State, legs, votes and the event timeline", body = TransactionAnswer),
            (status = 404, description = "Unknown transaction", body = ErrorBody),
        ))]
    fn get_transaction() {}

    #[utoipa::path(get, path = "/api/cluster", tag = "state",
        responses((status = 200, description = "Coordinator and node status, balances, in-doubt transactions, total",
            body = ClusterView)))]
    fn cluster() {}

    #[utoipa::path(get, path = "/api/accounts", tag = "state",
        responses(
            (status = 200, description = "Every account with its node and balance", body = Vec<AccountView>),
            (status = 503, description = "A node has not answered yet", body = ErrorBody),
        ))]
    fn accounts() {}

    #[utoipa::path(get, path = "/api/accounts/{id}/ledger", tag = "state",
        params(("id" = String, Path, description = "The account id")),
        responses(
            (status = 200, description = "Applied entries, oldest first", body = Vec<LedgerEntry>),
            (status = 404, description = "Unknown account", body = ErrorBody),
            (status = 503, description = "The coordinator or the node is down", body = ErrorBody),
        ))]
    fn ledger() {}

    #[utoipa::path(get, path = "/api/stats", tag = "state",
        responses((status = 200, description = "Counts, abort reasons, latency percentiles, throughput", body = Stats)))]
    fn stats() {}

    #[utoipa::path(get, path = "/api/faults", tag = "faults",
        responses((status = 200, description = "The current fault settings", body = Faults)))]
    fn get_faults() {}

    #[utoipa::path(put, path = "/api/faults", tag = "faults",
        description = "Random crash during prepare and step mode; absent fields keep their value.",
        request_body = FaultsUpdate,
        security((), ("api_token" = [])),
        responses(
            (status = 200, description = "The fault settings now", body = Faults),
            (status = 400, description = "Bad JSON or unknown fields", body = ErrorBody),
            (status = 403, description = "Not in demo mode, or requested by a web page of a foreign Origin", body = ErrorBody),
            (status = 422, description = "A value out of range", body = ErrorBody),
            (status = 401, description = "The coordinator has an API token and the request does not present it",
                body = ErrorBody),
            (status = 415, description = "A body not sent as Content-Type: application/json", body = ErrorBody),
        ))]
    fn put_faults() {}

    #[utoipa::path(post, path = "/api/nodes/{id}/crash", tag = "faults",
        description = "Without a body (or without `at`): SIGKILL the node's process now. With `at`: the node kills \
                       itself at that point of its next transaction.",
        params(("id" = String, Path, description = "The node id, e.g. 6001")),
        request_body(content = Option<NodeCrashRequest>, description = "Optional"),
        security((), ("api_token" = [])),
        responses(
            (status = 200, description = "Killed, or armed", body = NodeCrashAnswer),
            (status = 400, description = "Bad JSON", body = ErrorBody),
            (status = 403, description = "Not in demo mode, or requested by a web page of a foreign Origin", body = ErrorBody),
            (status = 404, description = "Unknown node", body = ErrorBody),
            (status = 409, description = "Not running, or not connected (cannot be armed)", body = ErrorBody),
            (status = 503, description = "The coordinator is down", body = ErrorBody),
            (status = 401, description = "The coordinator has an API token and the request does not present it",
                body = ErrorBody),
            (status = 415, description = "A body not sent as Content-Type: application/json", body = ErrorBody),
        ))]
    fn crash_node() {}

    #[utoipa::path(post, path = "/api/nodes/{id}/restart", tag = "faults",
        params(("id" = String, Path, description = "The node id")),
        security((), ("api_token" = [])),
        responses(
            (status = 200, description = "Started; it recovers from its log", body = NodeRestarted),
            (status = 403, description = "Not in demo mode, or requested by a web page of a foreign Origin", body = ErrorBody),
            (status = 404, description = "Unknown node", body = ErrorBody),
            (status = 409, description = "Already running", body = ErrorBody),
            (status = 500, description = "The process could not be started", body = ErrorBody),
            (status = 401, description = "The coordinator has an API token and the request does not present it",
                body = ErrorBody),
            (status = 415, description = "A body not sent as Content-Type: application/json", body = ErrorBody),
        ))]
    fn restart_node() {}

    #[utoipa::path(put, path = "/api/nodes/{id}/link", tag = "faults",
        description = "Delays, drops (a partition) or duplicates every message between the coordinator and the node.",
        params(("id" = String, Path, description = "The node id")),
        request_body = LinkFault,
        security((), ("api_token" = [])),
        responses(
            (status = 200, description = "The link's faults now", body = LinkFault),
            (status = 400, description = "Bad JSON or unknown fields", body = ErrorBody),
            (status = 403, description = "Not in demo mode, or requested by a web page of a foreign Origin", body = ErrorBody),
            (status = 404, description = "Unknown node", body = ErrorBody),
            (status = 422, description = "delay_ms out of range", body = ErrorBody),
            (status = 401, description = "The coordinator has an API token and the request does not present it",
                body = ErrorBody),
            (status = 415, description = "A body not sent as Content-Type: application/json", body = ErrorBody),
        ))]
    fn set_link() {}

    #[utoipa::path(delete, path = "/api/nodes/{id}/link", tag = "faults",
        params(("id" = String, Path, description = "The node id")),
        security((), ("api_token" = [])),
        responses(
            (status = 200, description = "Healed", body = LinkFault),
            (status = 403, description = "Not in demo mode, or requested by a web page of a foreign Origin", body = ErrorBody),
            (status = 404, description = "Unknown node", body = ErrorBody),
            (status = 401, description = "The coordinator has an API token and the request does not present it",
                body = ErrorBody),
            (status = 415, description = "A body not sent as Content-Type: application/json", body = ErrorBody),
        ))]
    fn heal_link() {}

    #[utoipa::path(post, path = "/api/coordinator/crash", tag = "faults",
        description = "The next transaction reaching `at` crashes the coordinator's engine: all volatile state is \
                       dropped and rebuilt from its log after `restart_after_ms` (transfers get 503 meanwhile).",
        request_body = CoordinatorCrashRequest,
        security((), ("api_token" = [])),
        responses(
            (status = 200, description = "Armed", body = CoordinatorCrashArmed),
            (status = 400, description = "Bad JSON or unknown fields", body = ErrorBody),
            (status = 403, description = "Not in demo mode, or requested by a web page of a foreign Origin", body = ErrorBody),
            (status = 422, description = "restart_after_ms out of range", body = ErrorBody),
            (status = 401, description = "The coordinator has an API token and the request does not present it",
                body = ErrorBody),
            (status = 415, description = "A body not sent as Content-Type: application/json", body = ErrorBody),
        ))]
    fn crash_coordinator() {}

    #[utoipa::path(delete, path = "/api/coordinator/crash", tag = "faults",
        description = "Disarms a coordinator crash that has not fired yet.",
        security((), ("api_token" = [])),
        responses(
            (status = 200, description = "Disarmed", body = CoordinatorCrashDisarmed),
            (status = 403, description = "Not in demo mode, or requested by a web page of a foreign Origin", body = ErrorBody),
            (status = 404, description = "No coordinator crash is armed", body = ErrorBody),
            (status = 401, description = "The coordinator has an API token and the request does not present it",
                body = ErrorBody),
            (status = 415, description = "A body not sent as Content-Type: application/json", body = ErrorBody),
        ))]
    fn disarm_coordinator_crash() {}

    #[utoipa::path(get, path = "/api/messages", tag = "faults",
        description = "The protocol messages the coordinator holds (step mode's hold, turned on with PUT /api/faults \
                       {\"hold_messages\": true}), oldest first. Empty while the coordinator is down.",
        responses(
            (status = 200, description = "Whether it holds, and what", body = HeldMessages),
            (status = 503, description = "The coordinator did not answer in time", body = ErrorBody),
        ))]
    fn list_messages() {}

    #[utoipa::path(post, path = "/api/messages/next", tag = "faults",
        description = "Lets the oldest held message go on. With `phase: true`, every held message of the oldest one's \
                       transaction and protocol step (both prepares, both votes, ...).",
        request_body(content = Option<NextMessageRequest>, description = "Optional"),
        security((), ("api_token" = [])),
        responses(
            (status = 200, description = "The messages let go", body = ReleasedMessages),
            (status = 400, description = "Bad JSON or unknown fields", body = ErrorBody),
            (status = 403, description = "Not in demo mode, or requested by a web page of a foreign Origin", body = ErrorBody),
            (status = 404, description = "No message is held", body = ErrorBody),
            (status = 503, description = "The coordinator is down", body = ErrorBody),
            (status = 401, description = "The coordinator has an API token and the request does not present it",
                body = ErrorBody),
            (status = 415, description = "A body not sent as Content-Type: application/json", body = ErrorBody),
        ))]
    fn next_message() {}

    #[utoipa::path(post, path = "/api/messages/{id}", tag = "faults",
        description = "Acts on one held message: deliver it now, drop it (it never arrives), duplicate it (it \
                       arrives twice) or delay it by `delay_ms`.",
        params(("id" = u64, Path, description = "The held message's id (its events' `id`)")),
        request_body = MessageActionRequest,
        security((), ("api_token" = [])),
        responses(
            (status = 200, description = "Done", body = ReleasedMessages),
            (status = 400, description = "Bad JSON or unknown fields", body = ErrorBody),
            (status = 403, description = "Not in demo mode, or requested by a web page of a foreign Origin", body = ErrorBody),
            (status = 404, description = "No such message is held", body = ErrorBody),
            (status = 422, description = "delay_ms missing or out of range for delay, or given with another action",
                body = ErrorBody),
            (status = 503, description = "The coordinator is down", body = ErrorBody),
            (status = 401, description = "The coordinator has an API token and the request does not present it",
                body = ErrorBody),
            (status = 415, description = "A body not sent as Content-Type: application/json", body = ErrorBody),
        ))]
    fn act_on_message() {}

    #[utoipa::path(get, path = "/api/recording/info", tag = "operations",
        description = "What the coordinator's recording of its event stream holds (on in demo mode, or with \
                       --recording-bytes-max): its range of seqs and times, size, snapshots.",
        responses((status = 200, description = "The recording", body = RecordingInfo)))]
    fn recording_info() {}

    #[utoipa::path(get, path = "/api/recording", tag = "operations",
        description = "The recorded events as JSON lines: a header line (`{\"format\":\"tpc-recording\",\"version\":1,...}`), \
                       then one `Event` per line, oldest first, from the latest snapshot at or before `from_seq` \
                       (so the answer replays on its own) to `to_seq`. The dashboard imports such a file.",
        params(
            ("from_seq" = Option<u64>, Query, description = "First event wanted (default: the oldest)"),
            ("to_seq" = Option<u64>, Query, description = "Last event wanted (default: the newest)"),
        ),
        responses(
            (status = 200, description = "JSON lines", body = String, content_type = "application/x-ndjson"),
            (status = 400, description = "A bad or unknown parameter, or from_seq after to_seq", body = ErrorBody),
            (status = 404, description = "The coordinator does not record its events", body = ErrorBody),
        ))]
    fn recording() {}

    #[utoipa::path(get, path = "/ws", tag = "operations",
        description = "WebSocket. The server sends a `snapshot` event first, then one JSON `Event` per protocol step \
                       (`seq` grows by one per event). A client too slow to keep up gets `lagged` and a new snapshot.",
        responses(
            (status = 101, description = "Switching to the WebSocket protocol; messages are `Event`s"),
            (status = 403, description = "Requested by a web page of a foreign Origin", body = ErrorBody),
        ))]
    fn websocket() {}

    #[utoipa::path(get, path = "/metrics", tag = "operations",
        description = "Prometheus text format: transactions by outcome and abort reason, latency histograms (end to \
                       end and per phase), in-flight and in-doubt transactions, log forces, node connection state.",
        responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String,
            content_type = "text/plain")))]
    fn metrics() {}

    #[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
        responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json")))]
    fn openapi() {}
}
