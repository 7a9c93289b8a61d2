//! The REST routes of the API contract. Handlers parse and check input, send
//! a command to the engine and await its reply: no protocol decision lives
//! here.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::{Json, Router};
use serde_json::json;
use shared::api::{
    transfer_legs, CoordinatorCrashRequest, FaultsUpdate, Health, LinkFault, NodeCrashRequest,
    Outcome, TransactionDetail, TransactionSummary, TransferRequest, TransferResponse, TxState,
};
use shared::events::EventKind;
use shared::limits::{
    COORDINATOR_HISTORY_KEPT_MAX, LINK_DELAY_MS_MAX, PHASE_PAUSE_MS_MAX, RESTART_AFTER_MS_MAX,
    TRANSACTIONS_LIMIT_DEFAULT,
};
use shared::protocol::coordinator::TransferError;
use shared::wire::{AbortReason, ParticipantCrashPoint, Query, QueryResult, Request};
use tokio::sync::oneshot;

use super::error::ApiError;
use super::request::{parse_body, require_demo, require_node};
use super::view::{accounts_of, cluster_view};
use crate::app::App;
use crate::engine::{crash_point_name, Command};
use crate::supervisor::SupervisorError;

type ApiResult = Result<Response, ApiError>;

/// The core REST routes (transfers, reads, fault injection); the router
/// merges them with the others.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/transfers", post(transfer))
        .route("/api/transactions", get(list_transactions))
        .route("/api/transactions/{tx_id}", get(get_transaction))
        .route("/api/cluster", get(cluster))
        .route("/api/accounts", get(accounts))
        .route("/api/accounts/{id}/ledger", get(ledger))
        .route("/api/stats", get(stats))
        .route("/api/faults", get(get_faults).put(put_faults))
        .route("/api/nodes/{id}/crash", post(crash_node))
        .route("/api/nodes/{id}/restart", post(restart_node))
        .route("/api/nodes/{id}/link", put(set_link).delete(heal_link))
        .route(
            "/api/coordinator/crash",
            post(crash_coordinator).delete(disarm_coordinator_crash),
        )
        .route("/api/{*rest}", any(api_not_found))
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".to_string(),
    })
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("no such API endpoint; see the API section of the README")
}

async fn transfer(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let started = std::time::Instant::now();
    let answer = run_transfer(&app, body).await;
    crate::metrics::global().observe_http_transfer(started.elapsed());
    answer
}

async fn run_transfer(app: &App, body: Result<Bytes, BytesRejection>) -> ApiResult {
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
        Ok(Ok(response)) => {
            let status = match response.outcome {
                Outcome::Committed => StatusCode::OK,
                Outcome::Aborted => StatusCode::CONFLICT,
            };
            Ok((status, Json(response)).into_response())
        }
        Ok(Err(TransferError::Invalid(message))) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)),
        Ok(Err(TransferError::Conflict(message))) => Err(ApiError::new(StatusCode::CONFLICT, message)),
        Ok(Err(TransferError::Unavailable(message))) => Err(ApiError::unavailable(message)),
        Err(_) => Err(ApiError::unavailable(
            "the coordinator crashed while running this transfer; retry with the same tx_id to learn its outcome",
        )),
    }
}

async fn list_transactions(
    State(app): State<Arc<App>>,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Result<Json<Vec<TransactionSummary>>, ApiError> {
    let limit = match params.get("limit") {
        None => TRANSACTIONS_LIMIT_DEFAULT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=COORDINATOR_HISTORY_KEPT_MAX).contains(&n) => n,
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

async fn get_transaction(State(app): State<Arc<App>>, Path(tx_id): Path<String>) -> ApiResult {
    if let Some(detail) = app.hub.detail(&tx_id) {
        return Ok(Json(detail).into_response());
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
                    return Ok(Json(detail).into_response());
                }
            }
        }
        let (reply, answer) = oneshot::channel();
        if live
            .commands
            .send(Command::Finished {
                tx_id: tx_id.clone(),
                reply,
            })
            .await
            .is_ok()
        {
            if let Ok(Some((request, response))) = answer.await {
                return Ok(Json(finished_detail(&app, request, response)).into_response());
            }
        }
    }
    Err(ApiError::not_found(format!(
        "no transaction '{tx_id}' is known"
    )))
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

async fn cluster(State(app): State<Arc<App>>) -> Response {
    Json(cluster_view(&app).await).into_response()
}

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

async fn ledger(State(app): State<Arc<App>>, Path(account): Path<String>) -> ApiResult {
    let Some(node) = app.config.account_nodes.get(&account) else {
        return Err(ApiError::not_found(format!("no account '{account}'")));
    };
    // The node answers a page per line; read them all, oldest first.
    let mut all = Vec::new();
    loop {
        let query = Query::Ledger {
            account: account.clone(),
            offset: all.len() as u64,
        };
        match app.query_node(node, query).await {
            Ok(QueryResult::Ledger { entries, total, .. }) => {
                let done = entries.is_empty() || all.len() + entries.len() >= total as usize;
                all.extend(entries);
                if done {
                    return Ok(Json(all).into_response());
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

async fn stats(State(app): State<Arc<App>>) -> Response {
    let in_flight = app.engine.gauge(&app.engine.in_flight);
    let forces = app.engine.gauge(&app.engine.log_forces);
    Json(app.hub.stats(in_flight, forces)).into_response()
}

async fn get_faults(State(app): State<Arc<App>>) -> Response {
    Json(app.faults()).into_response()
}

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

async fn crash_node(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    require_demo(&app)?;
    require_node(&app, &id)?;
    let empty = body
        .as_ref()
        .is_ok_and(|b| b.iter().all(u8::is_ascii_whitespace));
    let request: NodeCrashRequest = if empty {
        NodeCrashRequest::default()
    } else {
        parse_body(body, r#"{"at": "after_prepare_logged"}"#)?
    };
    if let Some(point) = request.at {
        return arm_node_crash(&app, &id, point);
    }
    let pid = app.supervisor.crash(&id).await.map_err(supervisor_error)?;
    app.hub.publish(EventKind::Fault {
        target: id.clone(),
        description: format!("node {id} killed (SIGKILL, pid {pid})"),
    });
    Ok(Json(json!({"node": id, "pid": pid, "status": "down"})).into_response())
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
    Ok(Json(json!({"node": id, "armed": name})).into_response())
}

async fn restart_node(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult {
    require_demo(&app)?;
    require_node(&app, &id)?;
    app.supervisor.start(&id).await.map_err(supervisor_error)?;
    app.hub.publish(EventKind::Fault {
        target: id.clone(),
        description: format!("node {id} restarted; it recovers from its log"),
    });
    Ok(Json(json!({"node": id, "status": "recovering"})).into_response())
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

async fn set_link(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
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

async fn heal_link(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult {
    require_demo(&app)?;
    require_node(&app, &id)?;
    app.links.set(&id, LinkFault::default());
    app.hub.publish(EventKind::Fault {
        target: id.clone(),
        description: format!("link to node {id} healed"),
    });
    Ok(Json(LinkFault::default()).into_response())
}

async fn disarm_coordinator_crash(State(app): State<Arc<App>>) -> ApiResult {
    require_demo(&app)?;
    if !app.disarm_coordinator_crash() {
        return Err(ApiError::not_found("no coordinator crash is armed"));
    }
    app.hub.publish(EventKind::Fault {
        target: "coordinator".to_string(),
        description: "coordinator crash disarmed".to_string(),
    });
    Ok(Json(json!({"armed": null})).into_response())
}

async fn crash_coordinator(
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
    Ok(
        Json(json!({"armed": request.at, "restart_after_ms": request.restart_after_ms}))
            .into_response(),
    )
}
