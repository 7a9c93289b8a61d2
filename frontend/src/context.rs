//! [`Ctx`], the state every panel shares: the [`Model`] fed by the live
//! stream, the pinned transaction, the toasts and a ticking clock, with the
//! polling and the debounced refreshes that keep it current.

use std::time::Duration;

use leptos::prelude::*;
use shared::api::TransactionDetail;
use shared::wire::TxId;

use crate::api::{self, ApiError};
use crate::format::Tone;
use crate::model::{Effects, Model, HISTORY_ROWS_MAX};
use crate::ws::Connection;

/// How often stats are polled (they carry the throughput history).
pub const STATS_POLL_MS: u64 = 1_000;
/// How often the cluster is polled besides the event-driven refreshes.
pub const CLUSTER_POLL_MS: u64 = 2_000;
/// Wait after an event before re-reading the cluster, so a burst of events
/// costs one request.
pub const CLUSTER_REFRESH_DEBOUNCE_MS: u64 = 150;
/// Tick of the clock that counts in-doubt waits up.
pub const CLOCK_TICK_MS: u64 = 250;
/// How long a toast stays: errors longer than confirmations.
pub const TOAST_ERROR_MS: u64 = 8_000;
pub const TOAST_OK_MS: u64 = 2_500;
/// Most toasts shown at once.
pub const TOASTS_MAX: usize = 4;

/// A transaction pinned from the history (or a result card): the diagram
/// shows it instead of following the latest one.
#[derive(Debug, Clone, PartialEq)]
pub struct Pinned {
    pub tx_id: TxId,
    pub detail: Option<TransactionDetail>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    pub id: u64,
    pub title: String,
    pub text: String,
    pub tone: Tone,
}

/// Everything the panels share; cheap to copy.
#[derive(Clone, Copy)]
pub struct Ctx {
    pub model: RwSignal<Model>,
    pub connection: RwSignal<Connection>,
    pub pinned: RwSignal<Option<Pinned>>,
    pub toasts: RwSignal<Vec<Toast>>,
    /// Browser clock (Unix ms), ticking every [`CLOCK_TICK_MS`] once the
    /// app runs.
    pub now_ms: RwSignal<u64>,
    /// Bumped after events that change the in-doubt view: the in-doubt
    /// panel re-reads it at once instead of at its next poll.
    pub in_doubt_nudge: RwSignal<u64>,
    next_toast_id: StoredValue<u64>,
    cluster_refresh_pending: StoredValue<bool>,
}

/// The browser's clock in Unix milliseconds.
pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

pub fn use_ctx() -> Ctx {
    expect_context::<Ctx>()
}

impl Ctx {
    /// Fresh state, not connected to anything: [`App`] starts the stream
    /// and the polling; tests mount single panels on it.
    pub fn new(model: Model) -> Self {
        Ctx {
            model: RwSignal::new(model),
            connection: RwSignal::new(Connection::Connecting),
            pinned: RwSignal::new(None),
            toasts: RwSignal::new(Vec::new()),
            now_ms: RwSignal::new(now_ms()),
            in_doubt_nudge: RwSignal::new(0),
            next_toast_id: StoredValue::new(0),
            cluster_refresh_pending: StoredValue::new(false),
        }
    }

    pub fn toast(&self, title: impl Into<String>, text: impl Into<String>, tone: Tone) {
        let id = self.next_toast_id.get_value() + 1;
        self.next_toast_id.set_value(id);
        let toast = Toast {
            id,
            title: title.into(),
            text: text.into(),
            tone,
        };
        self.toasts.update(|list| {
            list.push(toast);
            let excess = list.len().saturating_sub(TOASTS_MAX);
            list.drain(..excess);
        });
        let toasts = self.toasts;
        let stay_ms = if tone == Tone::Bad {
            TOAST_ERROR_MS
        } else {
            TOAST_OK_MS
        };
        set_timeout(
            move || toasts.update(|list| list.retain(|t| t.id != id)),
            Duration::from_millis(stay_ms),
        );
    }

    /// Shows a failed call; a 403 gets its own clear title.
    pub fn api_error(&self, action: &str, error: &ApiError) {
        let title = if error.is_forbidden() {
            "Fault injection is disabled".to_string()
        } else {
            format!("{action} failed")
        };
        self.toast(title, error.to_string(), Tone::Bad);
    }

    pub fn dismiss_toast(&self, id: u64) {
        self.toasts.update(|list| list.retain(|t| t.id != id));
    }

    /// Re-reads the cluster soon; calls within the debounce window share one request.
    pub fn refresh_cluster_soon(&self) {
        if self.cluster_refresh_pending.get_value() {
            return;
        }
        self.cluster_refresh_pending.set_value(true);
        let ctx = *self;
        set_timeout(
            move || {
                ctx.cluster_refresh_pending.set_value(false);
                ctx.refresh_cluster();
            },
            Duration::from_millis(CLUSTER_REFRESH_DEBOUNCE_MS),
        );
    }

    pub fn refresh_cluster(&self) {
        let model = self.model;
        leptos::task::spawn_local(async move {
            if let Ok(cluster) = api::cluster().await {
                model.update(|m| m.set_cluster(cluster, now_ms()));
            }
        });
    }

    pub fn refresh_faults(&self) {
        let model = self.model;
        leptos::task::spawn_local(async move {
            if let Ok(faults) = api::faults().await {
                model.update(|m| m.faults = faults);
            }
        });
    }

    pub fn refresh_accounts(&self) {
        let model = self.model;
        leptos::task::spawn_local(async move {
            if let Ok(accounts) = api::accounts().await {
                model.update(|m| m.accounts = accounts);
            }
        });
    }

    pub(crate) fn refresh_stats(&self) {
        let model = self.model;
        leptos::task::spawn_local(async move {
            if let Ok(stats) = api::stats().await {
                model.update(|m| {
                    if m.stats != stats {
                        m.stats = stats;
                    }
                });
            }
        });
    }

    pub(crate) fn refresh_history(&self) {
        let model = self.model;
        leptos::task::spawn_local(async move {
            if let Ok(list) = api::transactions(HISTORY_ROWS_MAX).await {
                model.update(|m| m.set_transactions(list));
            }
        });
    }

    pub(crate) fn run_effects(&self, effects: Effects) {
        if effects.refresh_cluster {
            self.refresh_cluster_soon();
        }
        if effects.refresh_faults {
            self.refresh_faults();
        }
        if effects.refresh_in_doubt {
            self.in_doubt_nudge.update(|n| *n += 1);
        }
    }

    /// Pins a transaction: the diagram and timeline show it.
    pub fn pin(&self, tx_id: TxId) {
        self.pinned.set(Some(Pinned {
            tx_id: tx_id.clone(),
            detail: None,
            error: None,
        }));
        let pinned = self.pinned;
        leptos::task::spawn_local(async move {
            let result = api::transaction(&tx_id).await;
            pinned.update(|p| {
                // Only if the person did not pick another one meanwhile.
                if let Some(p) = p.as_mut().filter(|p| p.tx_id == tx_id) {
                    match result {
                        Ok(detail) => p.detail = Some(detail),
                        Err(error) => p.error = Some(error.to_string()),
                    }
                }
            });
        });
    }

    pub fn follow_live(&self) {
        self.pinned.set(None);
    }
}
