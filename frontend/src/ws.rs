//! The one live-event hook: connects to `/ws` on the page's own host,
//! hands events to the app in batches, reconnects with backoff when the
//! socket closes (the next connection starts with a fresh snapshot, which
//! resynchronises everything), and closes the socket when the owning
//! component is cleaned up.
//!
//! Batching: events are buffered and handed over every [`FLUSH_MS`], so a
//! burst of hundreds of events costs one re-render, not hundreds. The buffer
//! is bounded: past [`PENDING_EVENTS_MAX`] the hook drops it and reconnects,
//! trading the backlog for a snapshot, exactly like a `lagged` message.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::future::{AbortHandle, Abortable};
use futures::StreamExt;
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::Message;
use leptos::prelude::*;
use shared::events::Event;

/// How often buffered events are handed to the app.
pub const FLUSH_MS: u64 = 50;
/// Most events buffered between two flushes before the hook resyncs.
pub const PENDING_EVENTS_MAX: usize = 10_000;
/// Reconnect backoff bounds.
pub const RECONNECT_BACKOFF_MIN_MS: u64 = 500;
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 8_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// First attempt, nothing received yet.
    Connecting,
    /// The snapshot arrived; events are flowing.
    Live,
    /// The socket closed; the next attempt starts in `retry_in_ms`.
    Reconnecting { attempt: u32, retry_in_ms: u64 },
}

/// Delay before reconnect attempt `attempt` (1-based): doubling, bounded.
pub fn backoff_ms(attempt: u32) -> u64 {
    let doublings = attempt.saturating_sub(1).min(16);
    (RECONNECT_BACKOFF_MIN_MS << doublings).min(RECONNECT_BACKOFF_MAX_MS)
}

/// `ws://host/ws` or `wss://host/ws` for the page's own origin.
fn ws_url() -> String {
    let location = window().location();
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss:",
        _ => "ws:",
    };
    let host = location
        .host()
        .unwrap_or_else(|_| "127.0.0.1:8000".to_string());
    format!("{scheme}//{host}/ws")
}

async fn sleep_ms(ms: u64) {
    let (wake, woken) = futures::channel::oneshot::channel::<()>();
    set_timeout(
        move || {
            let _ = wake.send(());
        },
        Duration::from_millis(ms),
    );
    let _ = woken.await;
}

/// Buffers events and hands them over in batches.
struct Batcher {
    pending: RefCell<Vec<Event>>,
    flush_scheduled: RefCell<bool>,
    on_events: Box<dyn Fn(Vec<Event>)>,
}

impl Batcher {
    /// Returns false when the buffer overflowed and was dropped.
    fn push(self: &Rc<Self>, event: Event) -> bool {
        let mut pending = self.pending.borrow_mut();
        if pending.len() >= PENDING_EVENTS_MAX {
            pending.clear();
            return false;
        }
        pending.push(event);
        drop(pending);
        if !self.flush_scheduled.replace(true) {
            let this = Rc::clone(self);
            set_timeout(move || this.flush(), Duration::from_millis(FLUSH_MS));
        }
        true
    }

    fn flush(&self) {
        self.flush_scheduled.replace(false);
        let batch = std::mem::take(&mut *self.pending.borrow_mut());
        if !batch.is_empty() {
            (self.on_events)(batch);
        }
    }
}

/// Starts the live stream. `on_events` gets every event in order, in
/// batches; `on_lost` is called when a connection ends. Returns the
/// connection state for the banner.
pub fn use_live_events(
    on_events: impl Fn(Vec<Event>) + 'static,
    on_lost: impl Fn() + 'static,
) -> ReadSignal<Connection> {
    let (connection, set_connection) = signal(Connection::Connecting);
    let batcher = Rc::new(Batcher {
        pending: RefCell::new(Vec::new()),
        flush_scheduled: RefCell::new(false),
        on_events: Box::new(on_events),
    });
    let (abort, registration) = AbortHandle::new_pair();
    on_cleanup(move || abort.abort());
    let run = async move {
        let mut attempt: u32 = 0;
        loop {
            let mut live = false;
            if let Ok(mut socket) = WebSocket::open(&ws_url()) {
                while let Some(message) = socket.next().await {
                    let Ok(Message::Text(text)) = message else {
                        break;
                    };
                    match serde_json::from_str::<Event>(&text) {
                        Ok(event) => {
                            if !batcher.push(event) {
                                break;
                            }
                            if !live {
                                live = true;
                                attempt = 0;
                                set_connection.set(Connection::Live);
                            }
                        }
                        Err(error) => leptos::logging::warn!(
                            "ignoring a live event this app does not know: {error}"
                        ),
                    }
                }
            }
            // Hand over what arrived before the close, then mark the state stale.
            batcher.flush();
            on_lost();
            attempt += 1;
            let retry_in_ms = backoff_ms(attempt);
            set_connection.set(Connection::Reconnecting {
                attempt,
                retry_in_ms,
            });
            sleep_ms(retry_in_ms).await;
        }
    };
    leptos::task::spawn_local(async move {
        let _ = Abortable::new(run, registration).await;
    });
    connection
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_bounded() {
        assert_eq!(backoff_ms(1), 500);
        assert_eq!(backoff_ms(2), 1_000);
        assert_eq!(backoff_ms(4), 4_000);
        assert_eq!(backoff_ms(5), RECONNECT_BACKOFF_MAX_MS);
        assert_eq!(backoff_ms(1_000), RECONNECT_BACKOFF_MAX_MS);
    }
}
