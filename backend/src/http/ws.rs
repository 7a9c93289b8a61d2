//! `GET /ws`: a snapshot first, then every event after it, as it happens
//! (`seq` always above the snapshot's). A client that cannot keep up never
//! slows the coordinator: the broadcast channel is bounded, and a lagging
//! client is told how many events it missed and gets a fresh snapshot.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use shared::events::{Event, EventKind, Snapshot};
use shared::limits::{WS_INCOMING_BYTES_MAX, WS_SEND_TIMEOUT_MS, WS_SNAPSHOT_TRANSACTIONS_MAX};
use tokio::sync::broadcast::error::RecvError;

use super::view::cluster_view;
use crate::app::App;
use crate::hub::unix_ms;

pub async fn handler(ws: WebSocketUpgrade, State(app): State<Arc<App>>) -> Response {
    ws.max_message_size(WS_INCOMING_BYTES_MAX)
        .on_upgrade(move |socket| serve(socket, app))
}

pub async fn snapshot_event(app: &App) -> Event {
    let cluster = cluster_view(app).await;
    let stats = app.hub.stats(
        app.engine.gauge(&app.engine.in_flight),
        app.engine.gauge(&app.engine.log_forces),
    );
    let snapshot = Snapshot {
        cluster,
        transactions: app.hub.recent(WS_SNAPSHOT_TRANSACTIONS_MAX),
        stats,
        faults: app.faults(),
    };
    Event {
        seq: app.hub.seq(),
        ts_ms: unix_ms(),
        kind: EventKind::Snapshot(Box::new(snapshot)),
    }
}

async fn send(socket: &mut WebSocket, text: String) -> bool {
    let sending = socket.send(Message::Text(text.into()));
    matches!(
        tokio::time::timeout(Duration::from_millis(WS_SEND_TIMEOUT_MS), sending).await,
        Ok(Ok(()))
    )
}

fn to_json(event: &Event) -> String {
    serde_json::to_string(event)
        .unwrap_or_else(|e| format!("{{\"kind\":\"error\",\"error\":\"{e}\"}}"))
}

/// Whether a queued event is one the snapshot numbered `snapshot_seq`
/// already holds: published between the subscription and the snapshot.
fn before_snapshot(json: &str, snapshot_seq: u64) -> bool {
    shared::recording::peek(json).is_some_and(|p| p.seq <= snapshot_seq)
}

async fn serve(mut socket: WebSocket, app: Arc<App>) {
    // Subscribe before the snapshot, so nothing falls between them; what
    // was queued while it was made is in it, and is not sent again.
    let mut events = app.hub.subscribe();
    let snapshot = snapshot_event(&app).await;
    let mut skip_through = Some(snapshot.seq);
    if !send(&mut socket, to_json(&snapshot)).await {
        return;
    }
    loop {
        tokio::select! {
            received = events.recv() => match received {
                Ok(json) => {
                    if let Some(seq) = skip_through {
                        if before_snapshot(&json, seq) {
                            continue;
                        }
                        skip_through = None;
                    }
                    if !send(&mut socket, json.to_string()).await {
                        return;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let lagged = Event { seq: app.hub.seq(), ts_ms: unix_ms(), kind: EventKind::Lagged { missed } };
                    if !send(&mut socket, to_json(&lagged)).await {
                        return;
                    }
                    events = events.resubscribe();
                    let snapshot = snapshot_event(&app).await;
                    skip_through = Some(snapshot.seq);
                    if !send(&mut socket, to_json(&snapshot)).await {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {} // pings are answered by axum; anything else is ignored
            },
        }
    }
}
