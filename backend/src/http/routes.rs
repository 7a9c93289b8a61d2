//! The REST routes of the API contract. Handlers parse and check input, send
//! a command to the engine and await its reply: no protocol decision lives
//! here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Json;
use serde_json::json;
use shared::api::{
    transfer_legs, AccountView, ClusterView, ComponentStatus, CoordinatorCrashRequest, ErrorBody,
    Faults, FaultsUpdate, Health, LedgerEntry, LinkFault, NodeCrashRequest, Outcome, Stats,
    TransactionDetail, TransactionSummary, TransferRequest, TransferResponse, TxState,
};
use shared::events::EventKind;
use shared::limits::{
    COORDINATOR_HISTORY_KEPT_MAX, LINK_DELAY_MS_MAX, PHASE_PAUSE_MS_MAX, RESTART_AFTER_MS_MAX,
    TRANSACTIONS_LIMIT_DEFAULT,
};
use shared::protocol::coordinator::TransferError;
use shared::wire::{AbortReason, ParticipantCrashPoint, Query, QueryResult, Request};
use tokio::sync::oneshot;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::bodies::{
    CoordinatorCrashArmed, CoordinatorCrashDisarmed, NodeArmed, NodeCrashAnswer, NodeKilled,
    NodeRestarted, TransferConflict,
};
use super::error::ApiError;
use super::request::{
    parse_body, parse_optional_body, require_demo, require_node, whole_number, IdPath, QueryParams,
};
use super::view::{accounts_of, cluster_view};
use crate::app::App;
use crate::engine::{crash_point_name, Command};
use crate::supervisor::SupervisorError;

type ApiResult = Result<Response, ApiError>;

/// The core REST routes (transfers, reads, fault injection), each with its
/// OpenAPI description; the router merges them with the others.
pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(transfer))
        .routes(routes!(list_transactions))
        .routes(routes!(get_transaction))
        .routes(routes!(cluster))
        .routes(routes!(accounts))
        .routes(routes!(ledger))
        .routes(routes!(stats))
        .routes(routes!(get_faults, put_faults))
        .routes(routes!(crash_node))
        .routes(routes!(restart_node))
        .routes(routes!(set_link, heal_link))
        .routes(routes!(crash_coordinator, disarm_coordinator_crash))
        // Not an endpoint: unknown `/api/` paths get a JSON 404, not the dashboard.
        .route("/api/{*rest}", any(api_not_found))
}

#[utoipa::path(get, path = "/api/health", tag = "state",
    description = "Liveness: the coordinator's HTTP server answers. Whether it can run transfers is /api/ready.",
    responses((status = 200, description = "The coordinator's HTTP server answers", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".to_string(),
    })
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("no such API endpoint; see the API section of the README")
}

#[utoipa::path(post, path = "/api/transfers", tag = "transfers",
    description = "Runs one transfer through Two-Phase Commit. Submitting the same `tx_id` again returns the \
                   first outcome; nothing moves twice.",
    request_body = TransferRequest,
    responses(
        (status = 200, description = "Committed", body = TransferResponse),
        (status = 409, description = "Aborted (the body says why), or the tx_id was used for a different transfer",
            body = TransferConflict),
        (status = 400, description = "Bad JSON, not an object, or unknown fields", body = ErrorBody),
        (status = 422, description = "Invalid transfer: unknown account, amount <= 0 or above the maximum, \
                                      from == to, a malformed tx_id", body = ErrorBody),
        (status = 503, description = "The coordinator is down or overloaded: retry with the same tx_id",
            body = ErrorBody),
    ))]
async fn transfer(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let started = std::time::Instant::now();
    let answer = run_transfer(&app, body).await;
    crate::metrics::global().observe_http_transfer(started.elapsed());
    answer
}

pub(crate) async fn run_transfer(app: &App, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let request: TransferRequest = parse_body(
        body,
        r#"{"from": "A", "to": "B", "amount_cents": 10000, "tx_id": "optional"}"#,
    )?;
    let down = || {
        ApiError::unavailable(
            "the coordinator is down (recovering from a crash); retry with the same tx_id",
        )
    };
    let live = app.engine.live().ok_or_else(down)?;
    let (reply, answer) = oneshot::channel();
    live.commands
        .try_send(Command::Transfer { request, reply })
        .map_err(|_| {
            ApiError::unavailable(
                "the coordinator is overloaded; retry shortly with the same tx_id",
            )
        })?;
    match answer.await {
        Ok(Ok(response)) => Ok(match response.outcome {
            Outcome::Committed => Json(response).into_response(),
            Outcome::Aborted => conflict(TransferConflict::Aborted(response)),
        }),
        Ok(Err(TransferError::Invalid(message))) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)),
        Ok(Err(TransferError::Conflict(message))) => {
            Ok(conflict(TransferConflict::Conflict(ErrorBody { error: message })))
        }
        Ok(Err(TransferError::Unavailable(message))) => Err(ApiError::unavailable(message)),
        Err(_) => Err(ApiError::unavailable(
            "the coordinator crashed while running this transfer; retry with the same tx_id to learn its outcome",
        )),
    }
}

fn conflict(body: TransferConflict) -> Response {
    (StatusCode::CONFLICT, Json(body)).into_response()
}

/// The query of `GET /api/transactions`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by hand from the query (errors that say what is expected)
struct TransactionsQuery {
    /// How many, newest first (default 50)
    #[param(schema_with = transactions_limit)]
    limit: Option<usize>,
    /// Only transactions in this state
    state: Option<TxState>,
    /// Only transactions aborted for this reason
    reason: Option<AbortReason>,
}

fn transactions_limit() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Integer)
        .minimum(Some(1))
        .maximum(Some(COORDINATOR_HISTORY_KEPT_MAX as u64))
        .default(Some(TRANSACTIONS_LIMIT_DEFAULT.into()))
        .build()
}

#[utoipa::path(get, path = "/api/transactions", tag = "transfers",
    params(TransactionsQuery),
    responses(
        (status = 200, description = "Recent transactions, newest first (of those that match)",
            body = Vec<TransactionSummary>),
        (status = 400, description = "Bad limit, state or reason", body = ErrorBody),
    ))]
async fn list_transactions(
    State(app): State<Arc<App>>,
    QueryParams(params): QueryParams,
) -> Result<Json<Vec<TransactionSummary>>, ApiError> {
    let limit = match params.get("limit") {
        None => TRANSACTIONS_LIMIT_DEFAULT,
        Some(text) => match whole_number(text).and_then(|n| usize::try_from(n).ok()) {
            Some(n) if (1..=COORDINATOR_HISTORY_KEPT_MAX).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to {COORDINATOR_HISTORY_KEPT_MAX} (got '{text}')"
                )))
            }
        },
    };
    let state = match params.get("state") {
        None => None,
        Some(text) => Some(serde_json::from_value::<TxState>(json!(text)).map_err(|_| {
            ApiError::bad_request(format!(
                "state must be active, prepared, committed or aborted (got '{text}')"
            ))
        })?),
    };
    let reason = match params.get("reason") {
        None => None,
        Some(text) => Some(
            AbortReason::ALL
                .into_iter()
                .find(|r| r.as_str() == text)
                .ok_or_else(|| {
                    let names: Vec<&str> = AbortReason::ALL.iter().map(|r| r.as_str()).collect();
                    ApiError::bad_request(format!(
                        "reason must be one of {} (got '{text}')",
                        names.join(", ")
                    ))
                })?,
        ),
    };
    if state.is_none() && reason.is_none() {
        return Ok(Json(app.hub.recent(limit)));
    }
    let matching = app
        .hub
        .recent(COORDINATOR_HISTORY_KEPT_MAX)
        .into_iter()
        .filter(|t| {
            state.is_none_or(|s| t.state == s) && reason.is_none_or(|r| t.reason == Some(r))
        })
        .take(limit)
        .collect();
    Ok(Json(matching))
}

#[utoipa::path(get, path = "/api/transactions/{tx_id}", tag = "transfers",
    params(("tx_id" = String, Path, description = "The transaction id")),
    responses(
        (status = 200, description = "State, legs, votes and the event timeline (empty once it left the recent \
                                      history: then the remembered outcome)", body = TransactionDetail),
        (status = 404, description = "Unknown transaction", body = ErrorBody),
    ))]
async fn get_transaction(State(app): State<Arc<App>>, IdPath(tx_id): IdPath<String>) -> ApiResult {
    match find_transaction(&app, &tx_id).await {
        Some(detail) => Ok(Json(detail).into_response()),
        None => Err(ApiError::not_found(format!(
            "no transaction '{tx_id}' is known"
        ))),
    }
}

/// A transaction's detail: from the recent history, or what the engine
/// still knows of it (a commit recovered from the log, an old outcome).
pub(super) async fn find_transaction(app: &App, tx_id: &str) -> Option<TransactionDetail> {
    if let Some(detail) = app.hub.detail(tx_id) {
        return Some(detail);
    }
    // Not in the recent history: maybe the engine still knows it (a commit
    // recovered from the log, or an old outcome).
    if let Some(live) = app.engine.live() {
        let (reply, answer) = oneshot::channel();
        if live.commands.send(Command::Active { reply }).await.is_ok() {
            if let Ok(active) = answer.await {
                if let Some(tx) = active.into_iter().find(|t| t.tx_id == tx_id) {
                    let detail = TransactionDetail {
                        summary: TransactionSummary {
                            tx_id: tx.tx_id,
                            state: tx.state,
                            from: tx.request.from,
                            to: tx.request.to,
                            amount_cents: tx.request.amount_cents,
                            reason: None,
                            started_at_ms: tx.started_us / 1000,
                            duration_ms: None,
                            pending_acks: tx.pending_acks,
                        },
                        detail: Some(
                            "recovered from the coordinator's log; waiting for acks".to_string(),
                        ),
                        legs: tx.legs,
                        votes: Vec::new(),
                        timeline: Vec::new(),
                    };
                    return Some(detail);
                }
            }
        }
        let (reply, answer) = oneshot::channel();
        if live
            .commands
            .send(Command::Finished {
                tx_id: tx_id.to_string(),
                reply,
            })
            .await
            .is_ok()
        {
            if let Ok(Some((request, response))) = answer.await {
                return Some(finished_detail(app, request, response));
            }
        }
    }
    None
}

/// The detail of a transaction that left the recent history but whose
/// outcome the coordinator still remembers (its timeline is gone).
fn finished_detail(
    app: &App,
    request: Option<TransferRequest>,
    response: TransferResponse,
) -> TransactionDetail {
    // A presumed abort: this log never knew the transfer, only its id.
    let request = request.unwrap_or(TransferRequest {
        from: String::new(),
        to: String::new(),
        amount_cents: 0,
        tx_id: Some(response.tx_id.clone()),
    });
    let state = match response.outcome {
        Outcome::Committed => TxState::Committed,
        Outcome::Aborted => TxState::Aborted,
    };
    let node_of = |account: &str| {
        app.config
            .account_nodes
            .get(account)
            .map(String::as_str)
            .unwrap_or_default()
    };
    let legs = transfer_legs(
        &request.from,
        &request.to,
        request.amount_cents,
        node_of(&request.from),
        node_of(&request.to),
    );
    let mut summary = TransactionSummary::started(
        &response.tx_id,
        &request.from,
        &request.to,
        request.amount_cents,
        0,
    );
    summary.state = state;
    summary.reason = response.reason;
    summary.duration_ms = Some(response.duration_ms);
    TransactionDetail {
        summary,
        detail: response.detail,
        legs,
        votes: response.votes,
        timeline: Vec::new(),
    }
}

#[utoipa::path(get, path = "/api/cluster", tag = "state",
    responses((status = 200, description = "Coordinator and node status, balances, in-doubt transactions, total",
        body = ClusterView)))]
async fn cluster(State(app): State<Arc<App>>) -> Response {
    Json(cluster_view(&app).await).into_response()
}

#[utoipa::path(get, path = "/api/accounts", tag = "state",
    responses(
        (status = 200, description = "Every account with its node and balance", body = Vec<AccountView>),
        (status = 503, description = "A node has not answered (it is down or unreachable): its balances are \
                                      unknown", body = ErrorBody),
    ))]
async fn accounts(State(app): State<Arc<App>>) -> ApiResult {
    let view = cluster_view(&app).await;
    let accounts = accounts_of(&view);
    let missing: Vec<&str> = view
        .nodes
        .iter()
        .filter(|n| n.accounts.is_empty())
        .map(|n| n.id.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::unavailable(format!(
            "node {} has not answered yet, so its balances are unknown; retry shortly",
            missing.join(", ")
        )));
    }
    Ok(Json(accounts).into_response())
}

#[utoipa::path(get, path = "/api/accounts/{id}/ledger", tag = "state",
    params(("id" = String, Path, description = "The account id")),
    responses(
        (status = 200, description = "Applied entries, oldest first", body = Vec<LedgerEntry>),
        (status = 404, description = "Unknown account", body = ErrorBody),
        (status = 502, description = "The node answered something else than its ledger", body = ErrorBody),
        (status = 503, description = "The account's node is down or unreachable", body = ErrorBody),
    ))]
pub(crate) async fn ledger(
    State(app): State<Arc<App>>,
    IdPath(account): IdPath<String>,
) -> ApiResult {
    let Some(node) = app.config.account_nodes.get(&account) else {
        return Err(ApiError::not_found(format!("no account '{account}'")));
    };
    Ok(Json(read_ledger(&app, node, &account).await?).into_response())
}

/// Every entry of `account`'s ledger on `node`, oldest first.
pub(super) async fn read_ledger(
    app: &App,
    node: &str,
    account: &str,
) -> Result<Vec<LedgerEntry>, ApiError> {
    // The node answers a page per line; read them all, oldest first.
    let mut all = Vec::new();
    loop {
        let query = Query::Ledger {
            account: account.to_string(),
            offset: all.len() as u64,
        };
        match app.query_node(node, query).await {
            Ok(QueryResult::Ledger { entries, total, .. }) => {
                let done = entries.is_empty() || all.len() + entries.len() >= total as usize;
                all.extend(entries);
                if done {
                    return Ok(all);
                }
            }
            Ok(QueryResult::Error { message }) => return Err(ApiError::not_found(message)),
            Ok(QueryResult::Status(_)) => {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "node answered a different query",
                ))
            }
            Err(e) => {
                return Err(ApiError::unavailable(format!(
                    "cannot read the ledger of {account}: {e}"
                )))
            }
        }
    }
}

#[utoipa::path(get, path = "/api/stats", tag = "state",
    responses((status = 200, description = "Counts, abort reasons, latency percentiles, throughput", body = Stats)))]
async fn stats(State(app): State<Arc<App>>) -> Response {
    Json(stats_now(&app).await).into_response()
}

/// The stats as `GET /api/stats` and the WebSocket snapshot give them.
pub(crate) async fn stats_now(app: &App) -> Stats {
    let in_flight = app.engine.gauge(&app.engine.in_flight);
    let forces = app.engine.gauge(&app.engine.log_forces);
    let mut stats = app.hub.stats(in_flight, forces);
    stats.in_flight_heuristic_mismatch = super::indoubt::heuristic_mismatches_in_flight(app).await;
    stats
}

#[utoipa::path(get, path = "/api/faults", tag = "faults",
    responses((status = 200, description = "The current fault settings", body = Faults)))]
async fn get_faults(State(app): State<Arc<App>>) -> Response {
    Json(app.faults()).into_response()
}

#[utoipa::path(put, path = "/api/faults", tag = "faults",
    description = "Random crash during prepare and step mode; absent fields keep their value.",
    request_body = FaultsUpdate,
    responses(
        (status = 200, description = "The fault settings now", body = Faults),
        (status = 400, description = "Bad JSON, not an object, or unknown fields", body = ErrorBody),
        (status = 403, description = "Not in demo mode", body = ErrorBody),
        (status = 422, description = "A value out of range", body = ErrorBody),
    ))]
async fn put_faults(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    require_demo(&app)?;
    let update: FaultsUpdate = parse_body(
        body,
        r#"{"prepare_crash_probability": 0.3, "phase_pause_ms": 0, "hold_messages": false}"#,
    )?;
    if let Some(p) = update.prepare_crash_probability {
        if !(0.0..=1.0).contains(&p) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("prepare_crash_probability must be between 0 and 1 (got {p})"),
            ));
        }
    }
    if update
        .phase_pause_ms
        .is_some_and(|ms| ms > PHASE_PAUSE_MS_MAX)
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("phase_pause_ms must be at most {PHASE_PAUSE_MS_MAX}"),
        ));
    }
    app.update_faults(update.prepare_crash_probability, update.phase_pause_ms);
    if let Some(hold) = update.hold_messages {
        app.set_hold_messages(hold);
    }
    let faults = app.faults();
    let hold = if faults.hold_messages {
        ", holding every protocol message"
    } else {
        ""
    };
    let description = format!(
        "prepare crash probability {:.2}, phase pause {} ms{hold}",
        faults.prepare_crash_probability, faults.phase_pause_ms
    );
    app.hub.publish(EventKind::Fault {
        target: "coordinator".to_string(),
        description,
    });
    Ok(Json(faults).into_response())
}

#[utoipa::path(post, path = "/api/nodes/{id}/crash", tag = "faults",
    description = "Without a body (or without `at`): SIGKILL the node's process now. With `at`: the node kills \
                   itself at that point of its next transaction.",
    params(("id" = String, Path, description = "The node id, e.g. 6001")),
    request_body(content = Option<NodeCrashRequest>, description = "Optional"),
    responses(
        (status = 200, description = "Killed, or armed", body = NodeCrashAnswer),
        (status = 400, description = "Bad JSON, not an object, or unknown fields", body = ErrorBody),
        (status = 403, description = "Not in demo mode", body = ErrorBody),
        (status = 404, description = "Unknown node", body = ErrorBody),
        (status = 409, description = "Not running, not supervised, or not connected (cannot be armed)",
            body = ErrorBody),
        (status = 503, description = "The coordinator is down (arming needs it)", body = ErrorBody),
    ))]
pub(crate) async fn crash_node(
    State(app): State<Arc<App>>,
    IdPath(id): IdPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    require_demo(&app)?;
    require_node(&app, &id)?;
    let request: NodeCrashRequest = parse_optional_body(body, r#"{"at": "after_prepare_logged"}"#)?;
    if let Some(point) = request.at {
        return arm_node_crash(&app, &id, point);
    }
    let pid = app.supervisor.crash(&id).await.map_err(supervisor_error)?;
    app.hub.publish(EventKind::Fault {
        target: id.clone(),
        description: format!("node {id} killed (SIGKILL, pid {pid})"),
    });
    let killed = NodeKilled {
        node: id,
        pid,
        status: ComponentStatus::Down,
    };
    Ok(Json(NodeCrashAnswer::Killed(killed)).into_response())
}

/// Tells the node to kill itself at `point` of its next transaction.
fn arm_node_crash(app: &App, id: &str, point: ParticipantCrashPoint) -> ApiResult {
    let live = app
        .engine
        .live()
        .ok_or_else(|| ApiError::unavailable("the coordinator is down; retry shortly"))?;
    if !live.transport.is_connected(id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("node {id} is not connected, so it cannot be armed"),
        ));
    }
    live.transport.send(id, Request::ArmCrash { point });
    let name = match point {
        ParticipantCrashPoint::AfterPrepareLogged => "after_prepare_logged",
        ParticipantCrashPoint::AfterCommitApplied => "after_commit_applied",
    };
    let description = format!("node {id} will crash at {name} of its next transaction");
    app.hub.publish(EventKind::Fault {
        target: id.to_string(),
        description,
    });
    let armed = NodeArmed {
        node: id.to_string(),
        armed: point,
    };
    Ok(Json(NodeCrashAnswer::Armed(armed)).into_response())
}

#[utoipa::path(post, path = "/api/nodes/{id}/restart", tag = "faults",
    params(("id" = String, Path, description = "The node id")),
    responses(
        (status = 200, description = "Started; it recovers from its log", body = NodeRestarted),
        (status = 403, description = "Not in demo mode", body = ErrorBody),
        (status = 404, description = "Unknown node", body = ErrorBody),
        (status = 409, description = "Already running or starting, or its data directory is held", body = ErrorBody),
        (status = 500, description = "The process could not be started", body = ErrorBody),
    ))]
pub(crate) async fn restart_node(
    State(app): State<Arc<App>>,
    IdPath(id): IdPath<String>,
) -> ApiResult {
    require_demo(&app)?;
    require_node(&app, &id)?;
    app.supervisor.start(&id).await.map_err(supervisor_error)?;
    app.hub.publish(EventKind::Fault {
        target: id.clone(),
        description: format!("node {id} restarted; it recovers from its log"),
    });
    let restarted = NodeRestarted {
        node: id,
        status: ComponentStatus::Recovering,
    };
    Ok(Json(restarted).into_response())
}

fn supervisor_error(e: SupervisorError) -> ApiError {
    let status = match &e {
        SupervisorError::UnknownNode(_) => StatusCode::NOT_FOUND,
        SupervisorError::AlreadyRunning(..)
        | SupervisorError::AlreadyStarting(_)
        | SupervisorError::DataDirHeld(..)
        | SupervisorError::NotRunning(_)
        | SupervisorError::NotSupervised(..) => StatusCode::CONFLICT,
        SupervisorError::Start(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

#[utoipa::path(put, path = "/api/nodes/{id}/link", tag = "faults",
    description = "Delays, drops (a partition) or duplicates every message between the coordinator and the node.",
    params(("id" = String, Path, description = "The node id")),
    request_body = LinkFault,
    responses(
        (status = 200, description = "The link's faults now", body = LinkFault),
        (status = 400, description = "Bad JSON, not an object, or unknown fields", body = ErrorBody),
        (status = 403, description = "Not in demo mode", body = ErrorBody),
        (status = 404, description = "Unknown node", body = ErrorBody),
        (status = 422, description = "delay_ms out of range", body = ErrorBody),
    ))]
pub(crate) async fn set_link(
    State(app): State<Arc<App>>,
    IdPath(id): IdPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    require_demo(&app)?;
    require_node(&app, &id)?;
    let fault: LinkFault = parse_body(
        body,
        r#"{"delay_ms": 500, "drop": false, "duplicate": false}"#,
    )?;
    if fault.delay_ms > LINK_DELAY_MS_MAX {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("delay_ms must be at most {LINK_DELAY_MS_MAX}"),
        ));
    }
    app.links.set(&id, fault.clone());
    let description = if fault.is_healthy() {
        format!("link to node {id} healed")
    } else {
        format!(
            "link to node {id}: delay {} ms{}{}",
            fault.delay_ms,
            if fault.drop {
                ", dropping every message"
            } else {
                ""
            },
            if fault.duplicate {
                ", duplicating every message"
            } else {
                ""
            }
        )
    };
    app.hub.publish(EventKind::Fault {
        target: id.clone(),
        description,
    });
    Ok(Json(fault).into_response())
}

#[utoipa::path(delete, path = "/api/nodes/{id}/link", tag = "faults",
    params(("id" = String, Path, description = "The node id")),
    responses(
        (status = 200, description = "Healed", body = LinkFault),
        (status = 403, description = "Not in demo mode", body = ErrorBody),
        (status = 404, description = "Unknown node", body = ErrorBody),
    ))]
pub(crate) async fn heal_link(
    State(app): State<Arc<App>>,
    IdPath(id): IdPath<String>,
) -> ApiResult {
    require_demo(&app)?;
    require_node(&app, &id)?;
    app.links.set(&id, LinkFault::default());
    app.hub.publish(EventKind::Fault {
        target: id.clone(),
        description: format!("link to node {id} healed"),
    });
    Ok(Json(LinkFault::default()).into_response())
}

#[utoipa::path(delete, path = "/api/coordinator/crash", tag = "faults",
    description = "Disarms a coordinator crash that has not fired yet.",
    responses(
        (status = 200, description = "Disarmed", body = CoordinatorCrashDisarmed),
        (status = 403, description = "Not in demo mode", body = ErrorBody),
        (status = 404, description = "No coordinator crash is armed", body = ErrorBody),
    ))]
pub(crate) async fn disarm_coordinator_crash(State(app): State<Arc<App>>) -> ApiResult {
    require_demo(&app)?;
    if !app.disarm_coordinator_crash() {
        return Err(ApiError::not_found("no coordinator crash is armed"));
    }
    app.hub.publish(EventKind::Fault {
        target: "coordinator".to_string(),
        description: "coordinator crash disarmed".to_string(),
    });
    Ok(Json(CoordinatorCrashDisarmed { armed: None }).into_response())
}

#[utoipa::path(post, path = "/api/coordinator/crash", tag = "faults",
    description = "The next transaction reaching `at` crashes the coordinator's engine: all volatile state is \
                   dropped and rebuilt from its log after `restart_after_ms` (transfers get 503 meanwhile).",
    request_body = CoordinatorCrashRequest,
    responses(
        (status = 200, description = "Armed", body = CoordinatorCrashArmed),
        (status = 400, description = "Bad JSON, not an object, or unknown fields", body = ErrorBody),
        (status = 403, description = "Not in demo mode", body = ErrorBody),
        (status = 422, description = "restart_after_ms out of range", body = ErrorBody),
    ))]
pub(crate) async fn crash_coordinator(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    require_demo(&app)?;
    let request: CoordinatorCrashRequest = parse_body(
        body,
        r#"{"at": "after_decision", "restart_after_ms": 3000}"#,
    )?;
    if request.restart_after_ms > RESTART_AFTER_MS_MAX {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("restart_after_ms must be at most {RESTART_AFTER_MS_MAX}"),
        ));
    }
    let description = format!(
        "coordinator crash armed at {}; it restarts {} ms later",
        crash_point_name(request.at),
        request.restart_after_ms
    );
    app.arm_coordinator_crash(request.clone());
    app.hub.publish(EventKind::Fault {
        target: "coordinator".to_string(),
        description,
    });
    let armed = CoordinatorCrashArmed {
        armed: request.at,
        restart_after_ms: request.restart_after_ms,
    };
    Ok(Json(armed).into_response())
}
