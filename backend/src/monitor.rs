//! Background watchers: publish `node_status` when a node's status changes,
//! `balances` after anything that may have moved money, `node_state` when
//! a node's in-doubt transactions or locks change, and the recording's
//! snapshots of the cluster.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use shared::api::ComponentStatus;
use shared::events::EventKind;
use shared::limits::{
    BALANCES_DEBOUNCE_MS, BALANCES_REFRESH_MS, NODE_STATUS_POLL_MS, RECORDING_SNAPSHOT_POLL_MS,
};
use tokio::sync::watch;

use crate::app::App;
use crate::http::view::{accounts_of, cluster_view, node_status};
use crate::http::ws::snapshot_event;

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

/// Publishes `balances` (and `node_state`) while a WebSocket client listens
/// or the coordinator records: those are the only readers of the events
/// (each client gets the balances in its snapshot on connect, and
/// `/api/cluster` and `/metrics` ask the nodes themselves). Otherwise it
/// asks the nodes nothing: under load, reading every account of every
/// node after each burst of transfers was a third of the coordinator's
/// allocations.
pub async fn balances(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut last = None;
    let mut last_states: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let wanted = |app: &App| app.hub.listening() || app.hub.recording();
    loop {
        tokio::select! {
            _ = app.hub.balances_dirty.notified() => {
                if wanted(&app) {
                    tokio::time::sleep(Duration::from_millis(BALANCES_DEBOUNCE_MS)).await;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(BALANCES_REFRESH_MS)) => {}
            _ = shutdown.changed() => return,
        }
        if !wanted(&app) {
            continue;
        }
        let view = cluster_view(&app).await;
        let accounts = accounts_of(&view);
        let mut events = Vec::new();
        let current = (accounts.clone(), view.total_cents);
        if last.as_ref() != Some(&current) {
            last = Some(current);
            events.push(EventKind::Balances {
                accounts,
                total_cents: view.total_cents,
            });
        }
        for node in view.nodes {
            let state = (node.in_doubt, node.locked_accounts);
            if last_states.get(&node.id) != Some(&state) {
                last_states.insert(node.id.clone(), state.clone());
                events.push(EventKind::NodeState {
                    node: node.id,
                    in_doubt: state.0,
                    locked_accounts: state.1,
                });
            }
        }
        if !events.is_empty() {
            app.hub.publish_all(events);
        }
    }
}

/// Records a snapshot of the cluster whenever the recording asks for one
/// (at its start, at each new segment, every few thousand events): a
/// replay starts from the latest snapshot before the moment it shows.
pub async fn recording_snapshots(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(RECORDING_SNAPSHOT_POLL_MS)) => {}
            _ = shutdown.changed() => return,
        }
        let wanted = app.hub.recorder().is_some_and(|r| r.take_snapshot_wanted());
        if wanted {
            let snapshot = snapshot_event(&app).await;
            app.hub.record_only(snapshot.kind);
        }
    }
}
