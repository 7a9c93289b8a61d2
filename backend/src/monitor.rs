//! Background watchers: publish `node_status` when a node's status changes,
//! and `balances` after anything that may have moved money.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use shared::api::ComponentStatus;
use shared::events::EventKind;
use shared::limits::{BALANCES_DEBOUNCE_MS, BALANCES_REFRESH_MS, NODE_STATUS_POLL_MS};
use tokio::sync::watch;

use crate::app::App;
use crate::http::view::{accounts_of, cluster_view, node_status};

pub async fn node_statuses(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut last: BTreeMap<String, ComponentStatus> = BTreeMap::new();
    loop {
        for node in app.supervisor.node_ids() {
            let status = node_status(&app, &node, None);
            if last.get(&node) != Some(&status) {
                last.insert(node.clone(), status);
                app.hub.publish(EventKind::NodeStatus { node, status });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(NODE_STATUS_POLL_MS)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Publishes `balances` while a WebSocket client listens: those clients are
/// the only readers of the event (each gets the balances in its snapshot on
/// connect, and `/api/cluster` and `/metrics` ask the nodes themselves).
/// With nobody listening it asks the nodes nothing: under load, reading
/// every account of every node after each burst of transfers was a third of
/// the coordinator's allocations.
pub async fn balances(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut last = None;
    loop {
        tokio::select! {
            _ = app.hub.balances_dirty.notified() => {
                if app.hub.listening() {
                    tokio::time::sleep(Duration::from_millis(BALANCES_DEBOUNCE_MS)).await;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(BALANCES_REFRESH_MS)) => {}
            _ = shutdown.changed() => return,
        }
        if !app.hub.listening() {
            continue;
        }
        let view = cluster_view(&app).await;
        let accounts = accounts_of(&view);
        let current = (accounts.clone(), view.total_cents);
        if last.as_ref() != Some(&current) {
            last = Some(current);
            app.hub.publish(EventKind::Balances {
                accounts,
                total_cents: view.total_cents,
            });
        }
    }
}
