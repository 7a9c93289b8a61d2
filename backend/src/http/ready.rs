//! `GET /api/ready`: readiness, as a load balancer or an orchestrator asks
//! it. Ready means a transfer can run now: the engine is up, its decision
//! log open, and it is connected to every node (which has reported its
//! in-doubt transactions). 200 when ready; otherwise 503 with every reason,
//! each naming its node. `/api/health` (liveness) stays "the server
//! answers".

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use shared::api::{ComponentStatus, NodeReadiness, NotReady, NotReadyReason, Readiness};
use shared::limits::RETRY_AFTER_S;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::supervisor::ProcState;

pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new().routes(routes!(ready))
}

#[utoipa::path(get, path = "/api/ready", tag = "state",
    description = "Readiness: the engine is up, its decision log open, and every node connected. Liveness is \
                   /api/health.",
    responses(
        (status = 200, description = "Ready: transfers can run", body = Readiness),
        (status = 503, description = "Not ready: `reasons` says why, naming each node concerned (also with \
                                      Retry-After)", body = Readiness),
    ))]
async fn ready(State(app): State<Arc<App>>) -> Response {
    let readiness = readiness(&app);
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (status, Json(readiness)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
    }
    response
}

/// What is ready and what is not, read from the engine, the supervisor
/// and the link faults (nothing is asked over the network: it answers at
/// once even when nodes do not).
pub fn readiness(app: &App) -> Readiness {
    let coordinator = app.engine.status();
    let live = app.engine.live();
    let mut reasons = Vec::new();
    let engine_up = coordinator == ComponentStatus::Up && live.is_some();
    if !engine_up {
        reasons.push(NotReady {
            reason: NotReadyReason::CoordinatorDown,
            node: None,
            detail: format!(
                "the coordinator's engine is {} (starting, or recovering from a crash)",
                status_name(coordinator)
            ),
        });
    }
    if live.is_none() {
        reasons.push(NotReady {
            reason: NotReadyReason::DecisionLogClosed,
            node: None,
            detail: "the decision log is not open: the engine opens it when it starts".to_string(),
        });
    }
    let mut nodes = Vec::new();
    for id in app.supervisor.node_ids() {
        let connected_now = live.as_ref().is_some_and(|l| l.transport.is_connected(&id));
        let connected = connected_now && app.engine.reconciled(&id);
        if live.is_some() && !connected {
            reasons.push(node_reason(app, &id, connected_now));
        }
        nodes.push(NodeReadiness { id, connected });
    }
    Readiness {
        ready: reasons.is_empty(),
        coordinator,
        decision_log_open: live.is_some(),
        nodes,
        reasons,
    }
}

/// Why the engine is not connected to `node` (or not reconciled with it).
fn node_reason(app: &App, node: &str, connected: bool) -> NotReady {
    let (reason, detail) = match app.supervisor.state(node) {
        None | Some(ProcState::Exited) => (
            NotReadyReason::NodeDown,
            format!("node {node}'s process is not running (crashed or killed)"),
        ),
        Some(ProcState::Starting) => (
            NotReadyReason::NodeStarting,
            format!("node {node}'s process is starting"),
        ),
        Some(ProcState::Running { .. } | ProcState::Remote) => {
            if app.links.get(node).drop {
                (
                    NotReadyReason::LinkCut,
                    format!("the link to node {node} is cut (an injected fault)"),
                )
            } else if let Some(refusal) = app.refusals.get(node) {
                (
                    NotReadyReason::NodeRefuses,
                    format!("node {node} refuses this coordinator: {refusal}"),
                )
            } else if connected {
                (
                    NotReadyReason::NodeReconciling,
                    format!("node {node} is connected but has not reported its in-doubt transactions yet"),
                )
            } else {
                (
                    NotReadyReason::NodeUnreachable,
                    format!("node {node} runs, but the coordinator is not connected to it"),
                )
            }
        }
    };
    NotReady {
        reason,
        node: Some(node.to_string()),
        detail,
    }
}

fn status_name(status: ComponentStatus) -> &'static str {
    match status {
        ComponentStatus::Up => "up",
        ComponentStatus::Down => "down",
        ComponentStatus::Recovering => "recovering",
        ComponentStatus::Unreachable => "unreachable",
    }
}
