//! Builds the cluster view by asking every node for its status, falling back
//! to the last status it reported when it does not answer.

use std::time::Duration;

use futures_util::future::join_all;
use shared::api::{AccountView, ClusterView, ComponentStatus, CoordinatorView, NodeView};
use shared::limits::NODE_RECOVERING_GRACE_MS;
use shared::wire::{NodeStatus, Query, QueryResult};

use crate::app::App;
use crate::supervisor::ProcState;

/// Asks a node for its status (None if it does not answer).
pub async fn query_status(app: &App, node: &str) -> Option<NodeStatus> {
    match app.query_node(node, Query::Status).await {
        Ok(QueryResult::Status(status)) => {
            app.remember_status(status.clone());
            Some(status)
        }
        _ => None,
    }
}

/// The status of a node as the dashboard shows it. `answered` is whether it
/// just answered a query (None: not asked).
pub fn node_status(app: &App, node: &str, answered: Option<bool>) -> ComponentStatus {
    let connected = app.observer.get().is_some_and(|t| t.is_connected(node));
    match app.supervisor.state(node) {
        None | Some(ProcState::Exited) => ComponentStatus::Down,
        Some(ProcState::Starting) => ComponentStatus::Recovering,
        Some(ProcState::Running { .. } | ProcState::Remote) => {
            let reachable = answered.unwrap_or(connected) && !app.links.get(node).drop;
            // "Up" means transfers can use it: while the engine runs, its own
            // connection to the node must be up too (the observer's alone
            // would say "up" a moment before the first transfer could run).
            // And it has told this incarnation what it holds in doubt (a
            // restarted coordinator waits for that before a client's id).
            let engine_reaches = app
                .engine
                .live()
                .is_none_or(|l| l.transport.is_connected(node) && app.engine.reconciled(node));
            if reachable && engine_reaches {
                return ComponentStatus::Up;
            }
            if app.refusals.get(node).is_some() {
                // It answers, but refuses this coordinator: not coming up.
                return ComponentStatus::Unreachable;
            }
            if reachable {
                return ComponentStatus::Recovering; // the coordinator is (re)connecting
            }
            let young = app
                .supervisor
                .started_at(node)
                .is_some_and(|t| t.elapsed() < Duration::from_millis(NODE_RECOVERING_GRACE_MS));
            if !connected && young {
                ComponentStatus::Recovering
            } else {
                ComponentStatus::Unreachable
            }
        }
    }
}

pub async fn cluster_view(app: &App) -> ClusterView {
    let ids = app.supervisor.node_ids();
    let statuses = join_all(ids.iter().map(|id| query_status(app, id))).await;
    let mut nodes = Vec::new();
    let mut total_cents: i64 = 0;
    let mut complete = true;
    for (id, fresh) in ids.iter().zip(statuses) {
        let answered = fresh.is_some();
        complete &= answered;
        let known = fresh.or_else(|| app.last_status(id));
        let (accounts, in_doubt_detail, locked_accounts) = match known {
            Some(s) => (s.accounts, s.in_doubt, s.locked_accounts),
            None => (Vec::new(), Vec::new(), Vec::new()),
        };
        total_cents = accounts
            .iter()
            .fold(total_cents, |sum, a| sum.saturating_add(a.balance_cents));
        let (pid, supervised) = match app.supervisor.state(id) {
            Some(ProcState::Running { pid, supervised }) => (Some(pid), supervised),
            Some(ProcState::Remote) => (None, false),
            _ => (None, true),
        };
        nodes.push(NodeView {
            id: id.clone(),
            addr: app
                .supervisor
                .addr(id)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            status: node_status(app, id, Some(answered)),
            accounts,
            in_doubt: in_doubt_detail.iter().map(|t| t.tx_id.clone()).collect(),
            in_doubt_detail,
            locked_accounts,
            link: app.links.get(id),
            supervised,
            pid,
            refused: app.refusals.get(id),
        });
    }
    let identity = app.engine.identity();
    ClusterView {
        coordinator: CoordinatorView {
            status: app.engine.status(),
            demo_mode: app.demo_mode(),
            cluster: identity.as_ref().map(|i| i.cluster.clone()),
            epoch: identity.as_ref().map(|i| i.epoch),
        },
        nodes,
        total_cents,
        expected_total_cents: app.config.expected_total_cents,
        total_complete: complete,
    }
}

pub fn accounts_of(view: &ClusterView) -> Vec<AccountView> {
    view.nodes
        .iter()
        .flat_map(|n| {
            n.accounts.iter().map(|a| AccountView {
                id: a.id.clone(),
                node: n.id.clone(),
                balance_cents: a.balance_cents,
            })
        })
        .collect()
}
