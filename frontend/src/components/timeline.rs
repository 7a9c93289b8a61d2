//! Time travel: the timeline of the recorded run. Live, it offers to
//! rewind (the coordinator's recording, its newest moment first), to export
//! the run as a file and to import one (watched with no cluster at all).
//! In a recorded run: play and pause, speed 0.25× to 8×, step, a scrubber
//! over every event, a range marked for export, and "Live" back to now.
//! Every panel shows the cluster as it was at the moment shown.

use std::time::Duration;

use leptos::prelude::*;
use shared::limits::RECORDING_IMPORT_BYTES_MAX;
use shared::recording;
use wasm_bindgen::JsCast;

use crate::api;
use crate::context::{use_ctx, Ctx, Travel};
use crate::format::{clock_ms, duration_ms, Tone};
use crate::replay::{Source, SPEEDS};

/// How often playback moves on.
pub const PLAY_TICK_MS: u64 = 50;

/// Saves `text` as a file named `name` (a download the browser offers).
fn download(name: &str, text: &str) -> Result<(), String> {
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/x-ndjson");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)
        .map_err(|e| format!("{e:?}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let anchor: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(|e| format!("{e:?}"))?
        .dyn_into()
        .map_err(|_| "not an anchor")?;
    anchor.set_href(&url);
    anchor.set_download(name);
    anchor.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// Reads the file picked in `input` and opens it as a recorded run.
fn import(ctx: Ctx, input: web_sys::HtmlInputElement) {
    let Some(file) = input.files().and_then(|files| files.get(0)) else {
        return;
    };
    input.set_value("");
    let name = file.name();
    if file.size() > RECORDING_IMPORT_BYTES_MAX as f64 {
        const MIB: f64 = 1024.0 * 1024.0;
        let text = format!(
            "the file is {:.0} MiB; the dashboard opens recordings up to {:.0} MiB",
            file.size() / MIB,
            RECORDING_IMPORT_BYTES_MAX as f64 / MIB
        );
        ctx.toast(format!("Cannot open {name}"), text, Tone::Bad);
        return;
    }
    leptos::task::spawn_local(async move {
        match wasm_bindgen_futures::JsFuture::from(file.text()).await {
            Ok(text) => match text.as_string() {
                Some(text) => ctx.import_recording(name, &text),
                None => ctx.toast(format!("Cannot open {name}"), "it is not text", Tone::Bad),
            },
            Err(e) => ctx.toast(format!("Cannot read {name}"), format!("{e:?}"), Tone::Bad),
        }
    });
}

fn source_label(t: &Travel) -> String {
    let source = match &t.source {
        Source::Coordinator => "the coordinator's recording".to_string(),
        Source::File { name } => format!("the file {name} (no cluster needed)"),
    };
    match &t.note {
        Some(note) => format!("{source} · {note}"),
        None => source,
    }
}

#[component]
pub fn TimelinePanel() -> impl IntoView {
    let ctx = use_ctx();
    let offset = -(js_sys::Date::new_0().get_timezone_offset() as i64);
    let travel = ctx.travel;
    let file_input = NodeRef::<leptos::html::Input>::new();

    // Playback: move on by the wall time since the last tick, at the speed.
    let carried = StoredValue::new(0.0f64);
    let last_tick = StoredValue::new(js_sys::Date::now());
    let timer = set_interval_with_handle(
        move || {
            let now = js_sys::Date::now();
            let elapsed = now - last_tick.get_value();
            last_tick.set_value(now);
            let Some(t) = travel.get_untracked().filter(|t| t.playing) else {
                carried.set_value(0.0);
                return;
            };
            let played = elapsed + carried.get_value();
            let Some((next, left)) = ctx.with_replay(|r| r.advance(t.position, played, t.speed))
            else {
                return;
            };
            carried.set_value(left);
            if next != t.position {
                ctx.show(next);
            }
            if next + 1 >= t.len {
                travel.update(|t| {
                    if let Some(t) = t.as_mut() {
                        t.playing = false;
                    }
                });
                ctx.write_address();
            }
        },
        Duration::from_millis(PLAY_TICK_MS),
    )
    .ok();
    on_cleanup(move || {
        if let Some(timer) = timer {
            timer.clear();
        }
    });

    let set_playing = move |playing: bool| {
        let at_end = travel.with_untracked(|t| t.as_ref().is_some_and(|t| t.position + 1 >= t.len));
        if playing && at_end {
            ctx.show(0);
        }
        travel.update(|t| {
            if let Some(t) = t.as_mut() {
                t.playing = playing;
            }
        });
        if !playing {
            ctx.write_address();
        }
    };
    let step = move |delta: i64| {
        if let Some(t) = travel.get_untracked() {
            let next = (t.position as i64 + delta).clamp(0, t.len as i64 - 1);
            ctx.show(next as usize);
        }
    };
    let mark = move |end: bool| {
        travel.update(|t| {
            if let Some(t) = t.as_mut() {
                if end {
                    t.mark_to = Some(t.position);
                } else {
                    t.mark_from = Some(t.position);
                }
            }
        });
    };
    let export_range = move |_| {
        let Some(t) = travel.get_untracked() else {
            return;
        };
        let (from, to) = (t.mark_from.unwrap_or(0), t.mark_to.unwrap_or(t.len - 1));
        let (from, to) = (from.min(to), from.max(to));
        let Some(text) = ctx.with_replay(|r| r.export_text(from, to)) else {
            return;
        };
        let name = format!("tpc-recording-{}.{}", t.seq, recording::EXTENSION);
        match download(&name, &text) {
            Ok(()) => ctx.toast(
                "Exported",
                format!("events {from} to {to} as {name}"),
                Tone::Good,
            ),
            Err(e) => ctx.toast("Export failed", e, Tone::Bad),
        }
    };
    let pick_file = move |_| {
        if let Some(input) = file_input.get() {
            input.click();
        }
    };
    let import_input = view! {
        <input type="file" class="hidden-file" accept=".jsonl,.json,.txt,application/x-ndjson" data-testid="import-file"
            node_ref=file_input
            on:change=move |ev| {
                if let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) {
                    import(ctx, input);
                }
            }/>
    };

    let live_view = move || {
        view! {
            <div class="timeline-live">
                <button class="btn btn-primary" data-testid="rewind" on:click=move |_| ctx.open_recording(None)
                    title="open the coordinator's recording of this run and go back in time">"⏪ Rewind"</button>
                <a class="btn" data-testid="export-run" href=api::recording_url(None, None) download="tpc-recording.jsonl"
                    title="the whole recorded run as a file (JSON lines)">"Export run"</a>
                <button class="btn btn-quiet" data-testid="import-run" on:click=pick_file
                    title="watch a recorded run (an export, or a simulation's SIM_TRACE)">"Import run…"</button>
                <span class="muted small">"The coordinator records every event: rewind to any moment, step through it, share its address."</span>
            </div>
        }
    };

    // Built once per recorded run; each part follows the moment shown.
    let travel_view = move || {
        let get = move |read: fn(&Travel) -> String| {
            travel.with(|t| t.as_ref().map(read).unwrap_or_default())
        };
        let playing = move || travel.with(|t| t.as_ref().is_some_and(|t| t.playing));
        let moment = move || {
            travel.with(|t| {
                let t = t.as_ref()?;
                let ahead_ms = t.last_ts_ms.saturating_sub(t.ts_ms);
                let when = if ahead_ms == 0 {
                    "the end of the run".to_string()
                } else {
                    format!("{} before the end", duration_ms(ahead_ms as f64))
                };
                Some(format!(
                    " · event {} of {} (seq {}) · {when}",
                    t.position + 1,
                    t.len,
                    t.seq
                ))
            })
        };
        let marked = move || {
            travel.with(
                |t| match t.as_ref().map(|t| (t.mark_from, t.mark_to, t.len)) {
                    Some((None, None, _)) | None => "Export the whole run".to_string(),
                    Some((from, to, len)) => format!(
                        "Export events {} to {}",
                        from.unwrap_or(0) + 1,
                        to.unwrap_or(len.saturating_sub(1)) + 1
                    ),
                },
            )
        };
        view! {
            <div class="timeline-travel">
                <div class="travel-banner" data-testid="travel-banner">
                    <strong>"Replaying "</strong>{move || get(source_label)}
                </div>
                <div class="travel-controls">
                    <button class="btn btn-small" data-testid="to-start" title="the first moment" on:click=move |_| ctx.show(0)>"«"</button>
                    <button class="btn btn-small" data-testid="step-back" title="one event back" on:click=move |_| step(-1)>"◀"</button>
                    <button class="btn btn-small btn-primary play" data-testid="play" data-playing=move || playing().to_string()
                        on:click=move |_| set_playing(!playing())>
                        {move || if playing() { "❚❚ Pause" } else { "▶ Play" }}
                    </button>
                    <button class="btn btn-small" data-testid="step-forward" title="one event on" on:click=move |_| step(1)>"▶"</button>
                    <button class="btn btn-small" data-testid="to-end" title="the last moment" on:click=move |_| ctx.show(usize::MAX)>"»"</button>
                    <select data-testid="speed" title="playback speed"
                        on:change=move |ev| {
                            let speed = event_target_value(&ev).parse().unwrap_or(1.0);
                            travel.update(|t| if let Some(t) = t.as_mut() { t.speed = speed });
                        }>
                        {SPEEDS.iter().map(|s| {
                            let s = *s;
                            view! { <option value=s.to_string() selected=move || travel.with(|t| t.as_ref().is_some_and(|t| t.speed == s))>{format!("{s}×")}</option> }
                        }).collect_view()}
                    </select>
                    <input type="range" class="scrubber" data-testid="scrubber" min="0" step="1"
                        max=move || get(|t| t.len.saturating_sub(1).to_string())
                        prop:value=move || get(|t| t.position.to_string())
                        on:input=move |ev| {
                            if let Ok(position) = event_target_value(&ev).parse::<usize>() {
                                ctx.show(position);
                            }
                        }/>
                    <button class="btn btn-small btn-primary" data-testid="go-live" title="back to the live cluster" on:click=move |_| ctx.go_live()>"● Live"</button>
                </div>
                <div class="travel-moment" data-testid="travel-moment"
                    data-seq=move || get(|t| t.seq.to_string())
                    data-position=move || get(|t| t.position.to_string())>
                    <span class="mono">{move || travel.with(|t| t.as_ref().map(|t| clock_ms(t.ts_ms, offset)))}</span>
                    <span class="muted">{moment}</span>
                </div>
                <div class="travel-export">
                    <button class="btn btn-small btn-quiet" data-testid="mark-start" on:click=move |_| mark(false)>"Mark start"</button>
                    <button class="btn btn-small btn-quiet" data-testid="mark-end" on:click=move |_| mark(true)>"Mark end"</button>
                    <button class="btn btn-small" data-testid="export-range" on:click=export_range>{marked}</button>
                    <button class="btn btn-small btn-quiet" data-testid="import-run" on:click=pick_file>"Import run…"</button>
                </div>
            </div>
        }
    };
    let is_traveling = Memo::new(move |_| travel.with(Option::is_some));

    view! {
        <div class="panel timeline-panel" class:is-traveling=move || ctx.traveling() data-testid="timeline-panel">
            <div class="panel-head">
                <h3>"Time travel"</h3>
                <span class="muted small">{move || if ctx.traveling() { "every panel shows the cluster as it was at this moment" } else { "live" }}</span>
            </div>
            {import_input}
            {move || if is_traveling.get() { travel_view().into_any() } else { live_view().into_any() }}
        </div>
    }
}
