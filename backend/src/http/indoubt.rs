//! The in-doubt operator view and heuristic decisions.
//!
//! - `GET /api/in-doubt` lists every transaction that is prepared somewhere
//!   and not yet resolved: where, for how long, what the coordinator knows
//!   of it, and why it is stuck. Resolution stays automatic; this only
//!   explains.
//! - `POST /api/nodes/{id}/heuristic` (demo mode) forces the outcome of an
//!   in-doubt transaction on one node, the way an operator would when the
//!   node cannot learn the decision. It goes over a connection of its own
//!   ([`Supervisor::admin_request`](crate::supervisor::Supervisor::admin_request)),
//!   not through the (possibly cut) protocol link. Without the coordinator,
//!   `participant-admin` does the same.
//! - [`watch_heuristics`] compares every heuristic decision the nodes report
//!   with the coordinator's decision and publishes a `fault` event for each
//!   one that disagrees: such a transaction is not atomic, and the money
//!   audit says by how much.
//!
//! The coordinator's decision for a transaction is what its engine says:
//! committing (COMMIT is durable), a remembered outcome, or — with no record
//! at all — abort (presumed abort).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use shared::api::{
    ComponentStatus, CoordinatorTxState, ErrorBody, HeuristicRequest, HeuristicView, InDoubtEntry,
    InDoubtView, MoneyAudit, NodeView, PreparedOn, StuckBecause, StuckReason, TxState,
};
use shared::events::EventKind;
use shared::limits::{ENGINE_ANSWER_TIMEOUT_MS, HEURISTIC_WATCH_INTERVAL_MS, IN_DOUBT_LISTED_MAX};
use shared::protocol::coordinator::ActiveTx;
use shared::wire::{Decision, HeuristicOutcome, NodeId, Query, QueryResult, Reply, Request, TxId};
use tokio::sync::{oneshot, watch};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::request::{parse_body, require_demo, require_node, IdPath};
use super::view::cluster_view;
use crate::app::App;
use crate::engine::Command;
use crate::supervisor::ProcState;

pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(in_doubt))
        .routes(routes!(force_heuristic))
}

#[utoipa::path(get, path = "/api/in-doubt", tag = "state",
    description = "Transactions prepared somewhere and not yet resolved: where, for how long, the coordinator's \
                   state for each, and why it is stuck; every heuristic decision the nodes report, compared with \
                   the coordinator's decision; and a money audit that accounts for them.",
    responses((status = 200, description = "The in-doubt view", body = InDoubtView)))]
async fn in_doubt(State(app): State<Arc<App>>) -> Response {
    Json(in_doubt_view(&app).await).into_response()
}

/// What the coordinator's engine knows, asked once per view.
struct CoordinatorKnowledge {
    up: bool,
    active: BTreeMap<TxId, ActiveTx>,
}

impl CoordinatorKnowledge {
    async fn ask(app: &App) -> CoordinatorKnowledge {
        let mut knowledge = CoordinatorKnowledge {
            up: false,
            active: BTreeMap::new(),
        };
        if app.engine.status() != ComponentStatus::Up {
            return knowledge;
        }
        let Some(live) = app.engine.live() else {
            return knowledge;
        };
        let (reply, answer) = oneshot::channel();
        if live.commands.send(Command::Active { reply }).await.is_err() {
            return knowledge;
        }
        if let Ok(Ok(active)) =
            tokio::time::timeout(Duration::from_millis(ENGINE_ANSWER_TIMEOUT_MS), answer).await
        {
            knowledge.up = true;
            knowledge.active = active.into_iter().map(|t| (t.tx_id.clone(), t)).collect();
        }
        knowledge
    }

    /// The coordinator's state and decision for `tx_id`.
    async fn of(&self, app: &App, tx_id: &str) -> (CoordinatorTxState, Option<Decision>) {
        if !self.up {
            return (CoordinatorTxState::CoordinatorDown, None);
        }
        if let Some(tx) = self.active.get(tx_id) {
            return match tx.state {
                TxState::Committed => (CoordinatorTxState::Committing, Some(Decision::Commit)),
                TxState::Active | TxState::Prepared => (CoordinatorTxState::InFlight, None),
                TxState::Aborted => (CoordinatorTxState::Aborted, Some(Decision::Abort)),
            };
        }
        match lookup(app, tx_id).await {
            Lookup::Down => (CoordinatorTxState::CoordinatorDown, None),
            Lookup::Outcome(Decision::Commit) => {
                (CoordinatorTxState::Committing, Some(Decision::Commit))
            }
            Lookup::Outcome(Decision::Abort) => {
                (CoordinatorTxState::Aborted, Some(Decision::Abort))
            }
            Lookup::NoRecord => (CoordinatorTxState::Unknown, Some(Decision::Abort)),
        }
    }
}

enum Lookup {
    Down,
    Outcome(Decision),
    NoRecord,
}

async fn lookup(app: &App, tx_id: &str) -> Lookup {
    let Some(live) = app.engine.live() else {
        return Lookup::Down;
    };
    let (reply, answer) = oneshot::channel();
    if live
        .commands
        .send(Command::Lookup {
            tx_id: tx_id.to_string(),
            reply,
        })
        .await
        .is_err()
    {
        return Lookup::Down;
    }
    match tokio::time::timeout(Duration::from_millis(ENGINE_ANSWER_TIMEOUT_MS), answer).await {
        Ok(Ok(Some(response))) => Lookup::Outcome(match response.outcome {
            shared::api::Outcome::Committed => Decision::Commit,
            shared::api::Outcome::Aborted => Decision::Abort,
        }),
        Ok(Ok(None)) => Lookup::NoRecord,
        _ => Lookup::Down,
    }
}

pub async fn in_doubt_view(app: &App) -> InDoubtView {
    let cluster = cluster_view(app).await;
    let coordinator = CoordinatorKnowledge::ask(app).await;
    let stale_nodes: Vec<NodeId> = cluster
        .nodes
        .iter()
        .filter(|n| n.status != ComponentStatus::Up)
        .map(|n| n.id.clone())
        .collect();
    let heuristics = heuristics_of(app, &cluster.nodes, &coordinator).await;

    // Every transaction prepared somewhere, by node reports and by the
    // coordinator's own unfinished commits and decisions.
    let mut prepared: BTreeMap<TxId, Vec<PreparedOn>> = BTreeMap::new();
    for node in &cluster.nodes {
        for t in &node.in_doubt_detail {
            prepared
                .entry(t.tx_id.clone())
                .or_default()
                .push(PreparedOn {
                    node: node.id.clone(),
                    prepared_for_ms: t.prepared_for_ms,
                });
        }
    }
    for (tx_id, tx) in &coordinator.active {
        let committing = tx.state == TxState::Committed && !tx.pending_acks.is_empty();
        if committing || tx.state == TxState::Prepared {
            prepared.entry(tx_id.clone()).or_default();
        }
    }

    let now_ms = unix_ms();
    let mut transactions = Vec::new();
    for (tx_id, prepared_on) in prepared.into_iter().take(IN_DOUBT_LISTED_MAX) {
        let (state, decision) = coordinator.of(app, &tx_id).await;
        let active = coordinator.active.get(&tx_id);
        let pending_acks = active.map(|t| t.pending_acks.clone()).unwrap_or_default();
        let started_ms = active.map(|t| t.started_us / 1000).filter(|ms| *ms > 0);
        let age_ms = prepared_on
            .iter()
            .map(|p| p.prepared_for_ms)
            .chain(started_ms.map(|s| now_ms.saturating_sub(s)))
            .max()
            .unwrap_or(0);
        let nodes: BTreeSet<NodeId> = prepared_on
            .iter()
            .map(|p| p.node.clone())
            .chain(pending_acks.iter().cloned())
            .collect();
        let mismatched: BTreeSet<&str> = heuristics
            .iter()
            .filter(|h| h.tx_id == tx_id && h.agrees == Some(false))
            .map(|h| h.node.as_str())
            .collect();
        let stuck = stuck_reasons(
            app,
            &cluster.nodes,
            state,
            &nodes,
            &pending_acks,
            &mismatched,
        );
        let (from, to, amount_cents) = match active {
            Some(t) => (
                Some(t.request.from.clone()),
                Some(t.request.to.clone()),
                Some(t.request.amount_cents),
            ),
            None => match app.hub.detail(&tx_id) {
                Some(d) => (
                    Some(d.summary.from),
                    Some(d.summary.to),
                    Some(d.summary.amount_cents),
                ),
                None => (None, None, None),
            },
        };
        transactions.push(InDoubtEntry {
            tx_id,
            prepared_on,
            pending_acks,
            age_ms,
            coordinator_state: state,
            decision,
            stuck,
            from,
            to,
            amount_cents,
        });
    }
    transactions.sort_by(|a, b| b.age_ms.cmp(&a.age_ms).then_with(|| a.tx_id.cmp(&b.tx_id)));

    let audit = audit(
        app,
        &cluster.nodes,
        &coordinator,
        &heuristics,
        cluster.total_cents,
    );
    InDoubtView {
        // Consistent with the entries: an engine that is up but did not
        // answer in time is not reported Up next to `coordinator_down`.
        coordinator: match (coordinator.up, app.engine.status()) {
            (true, _) => ComponentStatus::Up,
            (false, ComponentStatus::Up) => ComponentStatus::Unreachable,
            (false, status) => status,
        },
        transactions,
        heuristics,
        audit,
        stale_nodes,
    }
}

fn stuck_reasons(
    app: &App,
    views: &[NodeView],
    state: CoordinatorTxState,
    nodes: &BTreeSet<NodeId>,
    pending_acks: &[NodeId],
    mismatched: &BTreeSet<&str>,
) -> Vec<StuckBecause> {
    let mut stuck = Vec::new();
    let mut because = |reason, node: Option<&str>, detail: String| {
        stuck.push(StuckBecause {
            reason,
            node: node.map(str::to_string),
            detail,
        });
    };
    if state == CoordinatorTxState::CoordinatorDown {
        because(
            StuckReason::CoordinatorDown,
            None,
            "the coordinator is down (recovering from a crash); prepared nodes hold their locks until it is back".to_string(),
        );
    }
    let mut blocked = BTreeSet::new();
    for node in nodes {
        let view = views.iter().find(|v| &v.id == node);
        if mismatched.contains(node.as_str()) {
            because(
                StuckReason::HeuristicMismatch,
                Some(node),
                format!("an operator forced an outcome on node {node} that disagrees with the coordinator's decision; it will not resolve by itself"),
            );
            blocked.insert(node.clone());
            continue;
        }
        if app.links.get(node).drop {
            because(
                StuckReason::LinkCut,
                Some(node),
                format!("the link between the coordinator and node {node} is cut; it resolves once the link heals"),
            );
        } else if matches!(app.supervisor.state(node), None | Some(ProcState::Exited)) {
            because(
                StuckReason::NodeDown,
                Some(node),
                format!("node {node} is down; it comes back in doubt from its log and is resolved when it reconnects"),
            );
        } else if view.is_none_or(|v| v.status != ComponentStatus::Up) {
            because(
                StuckReason::NodeUnreachable,
                Some(node),
                format!("node {node} does not answer (a network fault?); it is resolved when it reconnects"),
            );
        } else {
            continue;
        }
        blocked.insert(node.clone());
    }
    if state == CoordinatorTxState::CoordinatorDown {
        return stuck;
    }
    let waiting: Vec<&NodeId> = pending_acks
        .iter()
        .filter(|n| !blocked.contains(*n))
        .collect();
    match state {
        CoordinatorTxState::Committing if !waiting.is_empty() => {
            for node in waiting {
                let detail = format!("the commit is durable and sent; waiting for node {node}'s ack (resent until it comes)");
                stuck.push(StuckBecause { reason: StuckReason::WaitingForAck, node: Some(node.clone()), detail });
            }
        }
        CoordinatorTxState::InFlight => stuck.push(StuckBecause {
            reason: StuckReason::WaitingForDecision,
            node: None,
            detail: "the coordinator has not decided yet (collecting votes, or paused in step mode)".to_string(),
        }),
        _ if stuck.is_empty() => stuck.push(StuckBecause {
            reason: StuckReason::Resolving,
            node: None,
            detail: "nothing blocks it: each node learns the outcome at its next in-doubt query (every second)".to_string(),
        }),
        _ => {}
    }
    stuck
}

/// How many transactions the coordinator holds open that a node's
/// heuristic decision contradicts (`Stats::in_flight_heuristic_mismatch`):
/// they never finish by themselves. Asks the engine only when a node
/// reports a heuristic decision.
pub async fn heuristic_mismatches_in_flight(app: &App) -> u64 {
    let nodes = app.supervisor.node_ids();
    let statuses: Vec<_> = nodes.iter().filter_map(|n| app.last_status(n)).collect();
    if statuses.iter().all(|s| s.heuristics.is_empty()) {
        return 0;
    }
    let coordinator = CoordinatorKnowledge::ask(app).await;
    let mut mismatched: BTreeSet<&TxId> = BTreeSet::new();
    for h in statuses.iter().flat_map(|s| &s.heuristics) {
        // Only what the coordinator still holds open: `of` answers from its
        // active transactions without asking further.
        if coordinator.active.contains_key(&h.tx_id) {
            let (_, decided) = coordinator.of(app, &h.tx_id).await;
            if decided.is_some_and(|d| d != h.decision) {
                mismatched.insert(&h.tx_id);
            }
        }
    }
    mismatched.len() as u64
}

/// Every heuristic decision the nodes report, compared with the coordinator's.
async fn heuristics_of(
    app: &App,
    nodes: &[NodeView],
    coordinator: &CoordinatorKnowledge,
) -> Vec<HeuristicView> {
    let mut out = Vec::new();
    for node in nodes {
        let Some(status) = app.last_status(&node.id) else {
            continue;
        };
        for h in status.heuristics {
            let (_, coordinator_decision) = coordinator.of(app, &h.tx_id).await;
            out.push(heuristic_view(&node.id, h, coordinator_decision));
        }
    }
    out
}

fn heuristic_view(
    node: &str,
    heuristic: HeuristicOutcome,
    coordinator: Option<Decision>,
) -> HeuristicView {
    let HeuristicOutcome {
        tx_id,
        decision: forced,
        ops,
        coordinator_decision: reached_node,
    } = heuristic;
    let agrees = coordinator.map(|c| c == forced);
    let net_cents: i64 = ops.iter().map(|o| o.delta_cents).sum();
    let applied = |d: Decision| i64::from(d == Decision::Commit);
    let imbalance_cents = match coordinator {
        Some(c) => (applied(forced) - applied(c)) * net_cents,
        None => 0,
    };
    let forced_word = word(forced);
    let mut detail = match (coordinator, agrees) {
        (Some(_), Some(true)) => format!("{tx_id} was heuristically {forced_word} on node {node}, as the coordinator decided"),
        (Some(c), _) => format!(
            "HEURISTIC MISMATCH: {tx_id} was heuristically {forced_word} on node {node}, but the coordinator decided {}; \
             the transaction is not atomic ({} cents {} by this node)",
            name(c),
            net_cents.abs(),
            if forced == Decision::Commit { "moved" } else { "not moved" }
        ),
        (None, _) => format!(
            "{tx_id} was heuristically {forced_word} on node {node}; the coordinator has not decided yet (or is down)"
        ),
    };
    if let Some(reached) = reached_node.filter(|d| *d != forced) {
        detail.push_str(&format!(
            "; the coordinator's {} reached node {node}, which refused it",
            name(reached)
        ));
    }
    HeuristicView {
        tx_id,
        node: node.to_string(),
        decision: forced,
        ops,
        coordinator_decision: coordinator,
        agrees,
        reached_node,
        imbalance_cents,
        detail,
    }
}

fn audit(
    app: &App,
    nodes: &[NodeView],
    coordinator: &CoordinatorKnowledge,
    heuristics: &[HeuristicView],
    total_cents: i64,
) -> MoneyAudit {
    let expected_total_cents = app.config.expected_total_cents;
    let heuristic_imbalance_cents: i64 = heuristics.iter().map(|h| h.imbalance_cents).sum();
    let forced: BTreeSet<(&str, &str)> = heuristics
        .iter()
        .map(|h| (h.tx_id.as_str(), h.node.as_str()))
        .collect();
    // Commit legs still to be applied (a node forced heuristically never
    // applies the coordinator's commit: that is in the imbalance instead).
    let pending_commit_cents: i64 = coordinator
        .active
        .values()
        .filter(|t| t.state == TxState::Committed)
        .flat_map(|t| t.legs.iter().map(move |l| (t, l)))
        .filter(|(t, l)| {
            t.pending_acks.contains(&l.node)
                && !forced.contains(&(t.tx_id.as_str(), l.node.as_str()))
        })
        .map(|(_, l)| l.ops.iter().map(|o| o.delta_cents).sum::<i64>())
        .sum();
    let complete = nodes.iter().all(|n| !n.accounts.is_empty());
    let balanced = complete
        && total_cents + pending_commit_cents == expected_total_cents + heuristic_imbalance_cents;
    let in_flight = coordinator.active.len()
        + nodes
            .iter()
            .filter(|n| !n.locked_accounts.is_empty())
            .count();
    let settling = !balanced && in_flight > 0;
    let detail = if !complete {
        "some node has never reported its balances; the total is partial".to_string()
    } else if settling {
        format!(
            "settling: transactions are in flight, and the balances ({total_cents} cents) and the coordinator's state \
             are read at different moments; the audit holds once they finish"
        )
    } else if !balanced {
        format!(
            "the balances add up to {total_cents} cents; expected {expected_total_cents}, plus {heuristic_imbalance_cents} from heuristic \
             decisions, minus {pending_commit_cents} still to be applied: something is wrong beyond the heuristics"
        )
    } else if heuristic_imbalance_cents != 0 {
        format!(
            "money is NOT conserved: heuristic decisions that disagree with the coordinator changed the total by \
             {heuristic_imbalance_cents} cents; everything else adds up"
        )
    } else {
        "every cent is accounted for".to_string()
    };
    MoneyAudit {
        expected_total_cents,
        total_cents,
        heuristic_imbalance_cents,
        pending_commit_cents,
        balanced,
        settling,
        detail,
    }
}

#[utoipa::path(post, path = "/api/nodes/{id}/heuristic", tag = "faults",
    description = "Forces the outcome of a transaction in doubt on one node (a heuristic decision), over a \
                   connection of its own (not the possibly cut protocol link). The node logs it as HEURISTIC and \
                   applies it; if the coordinator decided otherwise, the transaction is not atomic and that is \
                   reported as a fault. The node must run with --allow-faults.",
    params(("id" = String, Path, description = "The node id")),
    request_body = HeuristicRequest,
    responses(
        (status = 200, description = "Forced and logged; compared with the coordinator's decision", body = HeuristicView),
        (status = 400, description = "Bad JSON, not an object, or unknown fields", body = ErrorBody),
        (status = 403, description = "Not in demo mode", body = ErrorBody),
        (status = 404, description = "Unknown node", body = ErrorBody),
        (status = 409, description = "The node refused (not in doubt there, already decided, faults not allowed)", body = ErrorBody),
        (status = 502, description = "The node answered something unexpected", body = ErrorBody),
        (status = 503, description = "The node cannot be reached", body = ErrorBody),
    ))]
async fn force_heuristic(
    State(app): State<Arc<App>>,
    IdPath(id): IdPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match force(&app, &id, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn force(
    app: &App,
    id: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_demo(app)?;
    require_node(app, id)?;
    let request: HeuristicRequest =
        parse_body(body, r#"{"tx_id": "tx-1", "decision": "commit" | "abort"}"#)?;
    let message = Request::Heuristic {
        tx_id: request.tx_id.clone(),
        decision: request.decision,
    };
    match app.supervisor.admin_request(id, &message).await {
        Ok(Reply::Ack { tx_id, decision }) => {
            let description = format!(
                "an operator forced a heuristic {} of {tx_id} on node {id} (logged as HEURISTIC there)",
                name(decision)
            );
            tracing::warn!("{description}");
            app.hub.publish(EventKind::Fault {
                target: id.to_string(),
                description,
            });
            let coordinator = CoordinatorKnowledge::ask(app).await;
            let (_, coordinator_decision) = coordinator.of(app, &tx_id).await;
            // Learn the node's new state over the same channel: its link may
            // be cut, and the view and the audit should show the heuristic now.
            let query = Request::Query {
                req_id: 1,
                query: Query::Status,
            };
            if let Ok(Reply::QueryResult {
                result: QueryResult::Status(status),
                ..
            }) = app.supervisor.admin_request(id, &query).await
            {
                app.remember_status(status);
            }
            let heuristic = app
                .last_status(id)
                .and_then(|s| s.heuristics.into_iter().find(|h| h.tx_id == tx_id))
                .unwrap_or(HeuristicOutcome {
                    tx_id,
                    decision,
                    ops: Vec::new(),
                    coordinator_decision: None,
                });
            let view = heuristic_view(id, heuristic, coordinator_decision);
            Ok(Json(view).into_response())
        }
        Ok(Reply::Error { message }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("node {id} refused: {message}"),
        )),
        Ok(other) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("node {id} answered unexpectedly: {other:?}"),
        )),
        Err(message) => Err(ApiError::unavailable(format!(
            "cannot reach node {id}: {message}"
        ))),
    }
}

/// Publishes a `fault` event (and an error log line) for every heuristic
/// decision found to disagree with the coordinator's, once per node and
/// transaction. Reads the statuses the other watchers refresh.
pub async fn watch_heuristics(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut reported: BTreeSet<(TxId, NodeId)> = BTreeSet::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(HEURISTIC_WATCH_INTERVAL_MS)) => {}
            _ = shutdown.changed() => return,
        }
        let any = app
            .supervisor
            .node_ids()
            .iter()
            .any(|n| app.last_status(n).is_some_and(|s| !s.heuristics.is_empty()));
        if !any {
            continue;
        }
        let coordinator = CoordinatorKnowledge::ask(&app).await;
        if !coordinator.up {
            continue;
        }
        for node in app.supervisor.node_ids() {
            let Some(status) = app.last_status(&node) else {
                continue;
            };
            for h in status.heuristics {
                if reported.contains(&(h.tx_id.clone(), node.clone())) {
                    continue;
                }
                let (_, decision) = coordinator.of(&app, &h.tx_id).await;
                let tx_id = h.tx_id.clone();
                let view = heuristic_view(&node, h, decision);
                if view.agrees == Some(false) {
                    tracing::error!("{}", view.detail);
                    app.hub.publish(EventKind::Fault {
                        target: node.clone(),
                        description: view.detail,
                    });
                    reported.insert((tx_id, node.clone()));
                } else if view.agrees == Some(true) {
                    reported.insert((tx_id, node.clone()));
                }
            }
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn word(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "committed",
        Decision::Abort => "aborted",
    }
}

fn name(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "commit",
        Decision::Abort => "abort",
    }
}
