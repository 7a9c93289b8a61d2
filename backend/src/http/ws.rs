//! `GET /ws`: a snapshot first, then every event after it, as it happens
//! (`seq` always above the snapshot's). A client that cannot keep up never
//! slows the coordinator: the broadcast channel is bounded, and a lagging
//! client is told how many events it missed and gets a fresh snapshot.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use shared::api::ErrorBody;
use shared::events::{Event, EventKind, Snapshot};
use shared::limits::{WS_INCOMING_BYTES_MAX, WS_SEND_TIMEOUT_MS, WS_SNAPSHOT_TRANSACTIONS_MAX};
use tokio::sync::broadcast::error::RecvError;

use super::view::cluster_view;
use crate::app::App;
use crate::hub::unix_ms;

use super::error::ApiError;

/// The headers of a WebSocket upgrade (RFC 6455), which every client
/// library sends by itself.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read by axum's `WebSocketUpgrade`
struct UpgradeHeaders {
    #[param(rename = "Connection", schema_with = connection_upgrade, required = true)]
    connection: String,
    #[param(rename = "Upgrade", schema_with = upgrade_websocket, required = true)]
    upgrade: String,
    #[param(rename = "Sec-WebSocket-Version", schema_with = websocket_version, required = true)]
    version: String,
    /// 16 random bytes in base64
    #[param(rename = "Sec-WebSocket-Key", schema_with = websocket_key, required = true)]
    key: String,
}

fn one_of(value: &str) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some([value]))
        .build()
}

fn connection_upgrade() -> utoipa::openapi::Object {
    one_of("upgrade")
}

fn upgrade_websocket() -> utoipa::openapi::Object {
    one_of("websocket")
}

fn websocket_version() -> utoipa::openapi::Object {
    one_of("13")
}

fn websocket_key() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some("^[A-Za-z0-9+/]{21}[AQgw]==$"))
        .build()
}

#[utoipa::path(get, path = "/ws", tag = "operations",
    params(UpgradeHeaders),
    description = "WebSocket. The server sends a `snapshot` event first, then one JSON `Event` per protocol step \
                   (`seq` grows by one per event). A client too slow to keep up gets `lagged` and a new snapshot. \
                   A web page of a foreign Origin is refused (403).",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; messages are `Event`s"),
        (status = 400, description = "Not a WebSocket upgrade request (a Connection, Upgrade, \
                                      Sec-WebSocket-Version or Sec-WebSocket-Key header is missing or wrong)",
            body = ErrorBody),
        (status = 403, description = "Requested by a web page of a foreign Origin", body = ErrorBody),
        (status = 426, description = "The connection cannot be upgraded", body = ErrorBody),
    ))]
pub async fn handler(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(app): State<Arc<App>>,
) -> Response {
    match ws {
        Ok(ws) => ws
            .max_message_size(WS_INCOMING_BYTES_MAX)
            .on_upgrade(move |socket| serve(socket, app)),
        Err(e) => ApiError::new(
            e.status(),
            format!(
                "{}: connect with a WebSocket client to receive the live events",
                e.body_text()
            ),
        )
        .into_response(),
    }
}

pub async fn snapshot_event(app: &App) -> Event {
    let cluster = cluster_view(app).await;
    let stats = super::routes::stats_now(app).await;
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
