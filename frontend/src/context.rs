//! [`Ctx`], the state every panel shares: the [`Model`] the panels draw,
//! the pinned transaction, the toasts and a ticking clock, with the
//! polling and the debounced refreshes that keep it current.
//!
//! Time travel: while the page shows a moment of a recorded run,
//! [`Ctx::model`] holds the state at that moment ([`Replay::model_at`])
//! and the live stream goes on into a stashed copy ([`Ctx::update_live`]),
//! which "Live" puts back. The address names the moment and the pinned
//! transaction ([`crate::moment`]).

use std::time::Duration;

use leptos::prelude::*;
use shared::api::TransactionDetail;
use shared::limits::RECORDING_VIEW_EVENTS_MAX;
use shared::recording;
use shared::wire::TxId;

use crate::api::{self, ApiError};
use crate::format::Tone;
use crate::model::{Effects, Model, HISTORY_ROWS_MAX};
use crate::moment::Moment;
use crate::replay::{Replay, Source};
use crate::ws::Connection;

/// Replaces the address's fragment without a new history entry (and
/// without a `hashchange`).
fn set_fragment(fragment: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let location = window.location();
    let path = location.pathname().unwrap_or_default() + &location.search().unwrap_or_default();
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(
            &wasm_bindgen::JsValue::NULL,
            "",
            Some(&format!("{path}{fragment}")),
        );
    }
}

/// The address's fragment as the page was opened.
pub fn address_moment() -> Moment {
    Moment::parse(&address_fragment())
}

/// The page address's fragment (`#...`), empty if none.
pub fn address_fragment() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

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

/// Where the page is in a recorded run.
#[derive(Debug, Clone, PartialEq)]
pub struct Travel {
    pub source: Source,
    /// The recording's note (e.g. a simulation's seed).
    pub note: Option<String>,
    /// The position shown, and how many events the run has.
    pub position: usize,
    pub len: usize,
    /// The `seq` and time of the event at `position`.
    pub seq: u64,
    pub ts_ms: u64,
    /// The times of the first and the last event.
    pub first_ts_ms: u64,
    pub last_ts_ms: u64,
    pub playing: bool,
    pub speed: f64,
    /// A range marked for export (positions).
    pub mark_from: Option<usize>,
    pub mark_to: Option<usize>,
}

/// Everything the panels share; cheap to copy.
#[derive(Clone, Copy)]
pub struct Ctx {
    /// What the panels draw: the live state, or a moment of a recorded run.
    pub model: RwSignal<Model>,
    /// Set while the page shows a recorded run instead of the live one.
    pub travel: RwSignal<Option<Travel>>,
    replay: StoredValue<Option<Replay>>,
    /// The live state while the page travels (the stream goes on into it).
    live: StoredValue<Option<Model>>,
    pub connection: RwSignal<Connection>,
    pub pinned: RwSignal<Option<Pinned>>,
    pub toasts: RwSignal<Vec<Toast>>,
    /// Browser clock (Unix ms), ticking every [`CLOCK_TICK_MS`] once the
    /// app runs.
    pub now_ms: RwSignal<u64>,
    /// Bumped after events that change the in-doubt view: the in-doubt
    /// panel re-reads it at once instead of at its next poll.
    pub in_doubt_nudge: RwSignal<u64>,
    /// What heuristic decisions that disagree with the coordinator added
    /// to the total, as the in-doubt view last said (0: none).
    pub heuristic_imbalance_cents: RwSignal<i64>,
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
            travel: RwSignal::new(None),
            replay: StoredValue::new(None),
            live: StoredValue::new(None),
            connection: RwSignal::new(Connection::Connecting),
            pinned: RwSignal::new(None),
            toasts: RwSignal::new(Vec::new()),
            now_ms: RwSignal::new(now_ms()),
            in_doubt_nudge: RwSignal::new(0),
            heuristic_imbalance_cents: RwSignal::new(0),
            next_toast_id: StoredValue::new(0),
            cluster_refresh_pending: StoredValue::new(false),
        }
    }

    /// Whether the page shows a recorded run (tracked).
    pub fn traveling(&self) -> bool {
        self.travel.with(Option::is_some)
    }

    /// Changes the live state: the model shown, or the stash while the page
    /// travels.
    pub fn update_live(&self, change: impl FnOnce(&mut Model)) {
        if self.live.with_value(Option::is_some) {
            self.live.update_value(|live| {
                if let Some(model) = live.as_mut() {
                    change(model);
                }
            });
        } else {
            self.model.update(change);
        }
    }

    /// Shows `replay` at `position`, stashing the live state.
    pub fn start_travel(&self, replay: Replay, position: usize) {
        if replay.is_empty() {
            self.toast(
                "Nothing to replay",
                "the recording holds no events yet",
                Tone::Warn,
            );
            return;
        }
        if self.live.with_value(Option::is_none) {
            let live = self.model.get_untracked();
            self.live.set_value(Some(live));
        }
        let first = replay.event(0).map_or(0, |e| e.ts_ms);
        let last = replay.event(replay.last()).map_or(0, |e| e.ts_ms);
        self.travel.set(Some(Travel {
            source: replay.source.clone(),
            note: replay.note.clone(),
            position: 0,
            len: replay.len(),
            seq: 0,
            ts_ms: first,
            first_ts_ms: first,
            last_ts_ms: last,
            playing: false,
            speed: 1.0,
            mark_from: None,
            mark_to: None,
        }));
        self.replay.set_value(Some(replay));
        self.show(position);
    }

    /// Shows the recorded run at `position`.
    pub fn show(&self, position: usize) {
        let mut shown = None;
        self.replay.update_value(|replay| {
            if let Some(replay) = replay.as_mut() {
                let at = position.min(replay.last());
                let event = replay.event(at).map(|e| (e.seq, e.ts_ms));
                shown = Some((at, replay.model_at(at), event));
            }
        });
        let Some((at, model, event)) = shown else {
            return;
        };
        self.model.set(model);
        self.travel.update(|t| {
            if let Some(t) = t.as_mut() {
                t.position = at;
                if let Some((seq, ts_ms)) = event {
                    t.seq = seq;
                    t.ts_ms = ts_ms;
                }
            }
        });
        if !self
            .travel
            .with_untracked(|t| t.as_ref().is_some_and(|t| t.playing))
        {
            self.write_address();
        }
    }

    /// Runs `read` on the recorded run shown, if any.
    pub fn with_replay<T>(&self, read: impl FnOnce(&Replay) -> T) -> Option<T> {
        self.replay.with_value(|r| r.as_ref().map(read))
    }

    /// Back to the live state.
    pub fn go_live(&self) {
        if let Some(live) = self.live.try_update_value(Option::take).flatten() {
            self.model.set(live);
        }
        self.travel.set(None);
        self.replay.set_value(None);
        // A transaction pinned in the past: its whole timeline, live.
        match self.pinned.get_untracked() {
            Some(p) => self.pin(p.tx_id),
            None => self.write_address(),
        }
        self.refresh_cluster();
        self.refresh_accounts();
        self.refresh_stats();
        self.refresh_faults();
        self.refresh_history();
        self.refresh_held();
    }

    /// Opens the coordinator's recording at `seq` (its newest moment when
    /// `None`): its newest [`RECORDING_VIEW_EVENTS_MAX`] events, from a snapshot.
    pub fn open_recording(&self, seq: Option<u64>) {
        let ctx = *self;
        leptos::task::spawn_local(async move {
            let info = match api::recording_info().await {
                Ok(info) => info,
                Err(error) => return ctx.api_error("Open the recording", &error),
            };
            let Some(last) = info.last_seq.filter(|_| info.enabled) else {
                ctx.toast(
                    "No recording",
                    "this coordinator does not record its events (start it with --demo or --recording-bytes-max)",
                    Tone::Warn,
                );
                return;
            };
            let window = RECORDING_VIEW_EVENTS_MAX as u64;
            let first = info.first_seq.unwrap_or(0);
            let wanted = seq.unwrap_or(last);
            // A window around the moment wanted (the newest moments for "now").
            let from_seq = wanted.min(last).saturating_sub(window / 2).max(first);
            let to_seq = from_seq.saturating_add(window);
            let text = match api::recording_text(from_seq, to_seq).await {
                Ok(text) => text,
                Err(error) => return ctx.api_error("Read the recording", &error),
            };
            match recording::parse(&text, RECORDING_VIEW_EVENTS_MAX) {
                Ok(run) => {
                    let replay = Replay::new(Source::Coordinator, run.header.note, run.events);
                    let position = replay.position_of_seq(wanted);
                    ctx.start_travel(replay, position);
                }
                Err(error) => {
                    ctx.toast("The recording cannot be read", error.to_string(), Tone::Bad)
                }
            }
        });
    }

    /// Opens a recording file a person picked: replayed with no server.
    pub fn import_recording(&self, name: String, text: &str) {
        match recording::parse(text, RECORDING_VIEW_EVENTS_MAX) {
            Ok(run) => {
                let mut notes = Vec::new();
                if run.truncated {
                    notes.push(format!(
                        "only its newest {RECORDING_VIEW_EVENTS_MAX} events"
                    ));
                }
                if run.skipped > 0 {
                    notes.push(format!(
                        "{} events of kinds this version does not know left out",
                        run.skipped
                    ));
                }
                let source = Source::File { name: name.clone() };
                let replay = Replay::new(source, run.header.note, run.events);
                let last = replay.last();
                self.start_travel(replay, last);
                let text = if notes.is_empty() {
                    "replaying it: press play, or drag the timeline".to_string()
                } else {
                    notes.join("; ")
                };
                self.toast(format!("Opened {name}"), text, Tone::Good);
            }
            Err(error) => self.toast(format!("Cannot open {name}"), error.to_string(), Tone::Bad),
        }
    }

    /// Writes the moment and the pinned transaction into the address.
    pub fn write_address(&self) {
        let moment = Moment {
            seq: self.travel.with_untracked(|t| t.as_ref().map(|t| t.seq)),
            tx_id: self
                .pinned
                .with_untracked(|p| p.as_ref().map(|p| p.tx_id.clone())),
        };
        set_fragment(&moment.fragment());
    }

    pub fn refresh_held(&self) {
        let ctx = *self;
        leptos::task::spawn_local(async move {
            if let Ok(held) = api::held_messages().await {
                ctx.update_live(|m| m.set_held(held, now_ms()));
            }
        });
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
        let ctx = *self;
        leptos::task::spawn_local(async move {
            if let Ok(cluster) = api::cluster().await {
                ctx.update_live(|m| m.set_cluster(cluster, now_ms()));
            }
        });
    }

    pub fn refresh_faults(&self) {
        let ctx = *self;
        leptos::task::spawn_local(async move {
            if let Ok(faults) = api::faults().await {
                ctx.update_live(|m| m.faults = faults);
            }
        });
    }

    pub fn refresh_accounts(&self) {
        let ctx = *self;
        leptos::task::spawn_local(async move {
            if let Ok(accounts) = api::accounts().await {
                ctx.update_live(|m| m.accounts = accounts);
            }
        });
    }

    pub(crate) fn refresh_stats(&self) {
        let ctx = *self;
        leptos::task::spawn_local(async move {
            if let Ok(stats) = api::stats().await {
                ctx.update_live(|m| {
                    if m.stats != stats {
                        m.stats = stats;
                    }
                });
            }
        });
    }

    pub(crate) fn refresh_history(&self) {
        let ctx = *self;
        leptos::task::spawn_local(async move {
            if let Ok(list) = api::transactions(HISTORY_ROWS_MAX).await {
                ctx.update_live(|m| m.set_transactions(list));
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

    /// Pins a transaction: the diagram and timeline show it (in a recorded
    /// run, as far as the moment shown).
    pub fn pin(&self, tx_id: TxId) {
        self.pinned.set(Some(Pinned {
            tx_id: tx_id.clone(),
            detail: None,
            error: None,
        }));
        self.write_address();
        if self.travel.with_untracked(Option::is_some) {
            return;
        }
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
        self.write_address();
    }
}
