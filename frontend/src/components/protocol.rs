//! The protocol view: an SVG sequence diagram of one transaction (the
//! latest, or one pinned from the history) beside a scrolling event log;
//! in a recorded run, as far as the moment shown. A message the
//! coordinator holds (step mode) is an arrow stopped half way: a click on
//! it offers to deliver, drop, duplicate or delay it.
//! The geometry comes from [`crate::diagram::layout`]; this file only draws.

use leptos::prelude::*;
use shared::api::{ComponentStatus, TransactionSummary, TxState};
use shared::events::{Event, COORDINATOR};
use shared::money::format_cents;

use crate::components::held::MessageActions;
use crate::context::use_ctx;
use crate::diagram::{
    layout, Layout, MessageState, Row, Shape, GUTTER_W, MARGIN_RIGHT, PHASE_H, ROW_H, WIDTH,
};
use crate::format::{
    clock_ms, describe_event, duration_ms, message_way, reason_label, short_tx_id, state_label,
    Tone,
};
use crate::model::merge_timelines;

const TONES: [Tone; 6] = [
    Tone::Neutral,
    Tone::Info,
    Tone::Good,
    Tone::Bad,
    Tone::Warn,
    Tone::Log,
];

fn marker_id(tone: Tone) -> String {
    format!("arrowhead-{}", tone.class())
}

/// The browser's offset from UTC in minutes, for clock times in the log.
fn utc_offset_minutes() -> i64 {
    -(js_sys::Date::new_0().get_timezone_offset() as i64)
}

#[component]
pub fn ProtocolPanel() -> impl IntoView {
    let ctx = use_ctx();
    let pinned = ctx.pinned;
    let selected = RwSignal::new(None::<u64>);

    // The transaction shown and its events (in a recorded run, only what
    // the moment shown had seen).
    let shown = Memo::new(move |_| {
        let pin = pinned.get();
        let traveling = ctx.traveling();
        ctx.model.with(|m| match pin {
            Some(p) => {
                let fetched = p
                    .detail
                    .as_ref()
                    .filter(|_| !traveling)
                    .map(|d| d.timeline.clone())
                    .unwrap_or_default();
                let events = merge_timelines(&fetched, m.timeline(&p.tx_id));
                let summary = p
                    .detail
                    .as_ref()
                    .map(|d| d.summary.clone())
                    .or_else(|| m.transactions.iter().find(|t| t.tx_id == p.tx_id).cloned());
                (Some(p.tx_id.clone()), summary, events)
            }
            None => {
                let tx_id = m.latest_tx.clone();
                let events = tx_id
                    .as_deref()
                    .and_then(|id| m.timeline(id))
                    .map(|t| t.events.clone())
                    .unwrap_or_default();
                let summary = tx_id
                    .as_deref()
                    .and_then(|id| m.transactions.iter().find(|t| t.tx_id == id).cloned());
                (tx_id, summary, events)
            }
        })
    });
    let node_ids = Memo::new(move |_| {
        ctx.model.with(|m| {
            m.cluster
                .as_ref()
                .map(|c| c.nodes.iter().map(|n| n.id.clone()).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    let diagram = Memo::new(move |_| shown.with(|(_, _, events)| layout(&node_ids.get(), events)));
    let is_pinned = move || pinned.with(|p| p.is_some());

    // The latest transaction may have started before this page connected:
    // fetch its timeline once.
    let fetched_for = StoredValue::new(None::<String>);
    Effect::new(move |_| {
        let (tx_id, _, events) = shown.get();
        let wanted = events.is_empty() && !is_pinned() && !ctx.traveling();
        let Some(tx_id) = tx_id.filter(|_| wanted) else {
            return;
        };
        if fetched_for.get_value().as_deref() == Some(tx_id.as_str()) {
            return;
        }
        fetched_for.set_value(Some(tx_id.clone()));
        leptos::task::spawn_local(async move {
            if let Ok(detail) = crate::api::transaction(&tx_id).await {
                ctx.model
                    .update(|m| m.adopt_timeline(&tx_id, detail.timeline));
            }
        });
    });

    let title = move || {
        let (tx_id, summary, _) = shown.get();
        let Some(tx_id) = tx_id else {
            return view! { <span class="muted">"No transaction yet — make a transfer."</span> }
                .into_any();
        };
        let facts = summary.map(|s: TransactionSummary| {
            let state = state_label(s.state);
            let reason = s.reason.map(|r| format!(" · {}", reason_label(r))).unwrap_or_default();
            let took = s.duration_ms.map(|d| format!(" · {}", duration_ms(d))).unwrap_or_default();
            // Decided but not yet known to every node: say both.
            let untold = (s.state == TxState::Committed && !s.pending_acks.is_empty()).then(|| view! {
                <span class="muted small" data-testid="untold" title="the COMMIT record is the commit point; the nodes learn it from the coordinator, and a node that voted ready waits in doubt until then">
                    {format!(" · at the commit point; not yet acknowledged by node {}", s.pending_acks.join(", "))}
                </span>
            });
            view! {
                <span class="tx-facts">{format!("{} → {} {}", s.from, s.to, format_cents(s.amount_cents))}</span>
                <span class=format!("chip state-{state}")>{format!("{state}{reason}")}</span>
                <span class="muted small">{took}</span>
                {untold}
            }
        });
        view! { <span class="mono tx-id" title=tx_id.clone()>{short_tx_id(&tx_id)}</span>{facts} }
            .into_any()
    };

    let pin_error = move || {
        pinned
            .get()
            .and_then(|p| p.error)
            .map(|e| view! { <p class="notice notice-bad">{e}</p> })
    };

    // The message picked in the diagram, while it is still held.
    let picked = Memo::new(move |_| {
        let id = selected.get()?;
        ctx.model.with(|m| m.held.get(&id).cloned())
    });
    let heading = move || {
        if ctx.traveling() {
            "Protocol, replayed"
        } else {
            "Protocol, live"
        }
    };

    view! {
        <div class="panel protocol-panel" data-testid="protocol-panel">
            <div class="panel-head">
                <h3>{heading}</h3>
                <div class="protocol-title">{title}</div>
                <div class="head-actions">
                    {move || if is_pinned() {
                        view! { <button class="btn btn-small" data-testid="follow-live" on:click=move |_| ctx.follow_live()>"● Follow live"</button> }.into_any()
                    } else {
                        view! { <span class="chip chip-live">"following the latest"</span> }.into_any()
                    }}
                </div>
            </div>
            {pin_error}
            {move || picked.get().map(|m| view! {
                <div class="picked-message" data-testid="picked-message">
                    <span>{format!("Message #{} held: {} ", m.id, message_way(m.message, m.direction, &m.node))}</span>
                    <span class="muted">{m.detail.clone()}</span>
                    <MessageActions id=m.id/>
                    <button class="btn btn-small btn-quiet" on:click=move |_| selected.set(None)>"close"</button>
                </div>
            })}
            <div class="protocol-body">
                <div class="diagram-scroll">
                    <SequenceDiagram diagram=diagram selected=selected/>
                    <Legend/>
                </div>
                <div class="log-column">
                    {move || if is_pinned() {
                        view! { <Timeline events=Signal::derive(move || shown.get().2)/> }.into_any()
                    } else {
                        view! { <EventLog/> }.into_any()
                    }}
                </div>
            </div>
        </div>
    }
}

#[component]
fn SequenceDiagram(diagram: Memo<Layout>, selected: RwSignal<Option<u64>>) -> impl IntoView {
    let ctx = use_ctx();
    let statuses = Memo::new(move |_| {
        ctx.model.with(|m| {
            m.cluster
                .as_ref()
                .map(|c| {
                    let mut list: Vec<(String, ComponentStatus)> =
                        c.nodes.iter().map(|n| (n.id.clone(), n.status)).collect();
                    list.push((COORDINATOR.to_string(), c.coordinator.status));
                    list
                })
                .unwrap_or_default()
        })
    });
    let status_of =
        move |id: &str| statuses.with(|s| s.iter().find(|(n, _)| n == id).map(|(_, st)| *st));
    let row_key = move |row: &Row| format!("{row:?}");
    let view_box = move || diagram.with(|d| format!("0 0 {} {}", d.width, d.height));
    let empty = move || diagram.with(|d| d.rows.is_empty());

    view! {
        <svg class="seq" data-testid="sequence-diagram" role="img" aria-label="sequence diagram of the transaction"
            viewBox=view_box preserveAspectRatio="xMidYMin meet">
            <defs>
                {TONES.iter().map(|tone| view! {
                    <marker id=marker_id(*tone) viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">
                        <path d="M0,0 L10,5 L0,10 z" class=format!("arrowhead {}", tone.class())/>
                    </marker>
                }).collect_view()}
            </defs>
            {move || diagram.with(|d| d.lanes.iter().map(|lane| {
                let status = status_of(&lane.id);
                let down = status.is_some_and(|s| s != ComponentStatus::Up);
                let (top, bottom) = (d.lifeline_top, d.lifeline_bottom);
                view! {
                    <g class="lane" class:is-down=down>
                        <rect class="lane-head" x=lane.x - 66.0 y="8" width="132" height="34" rx="9"/>
                        <text class="lane-label" x=lane.x y="30" text-anchor="middle">{lane.label.clone()}</text>
                        <line class="lifeline" x1=lane.x y1=top x2=lane.x y2=bottom/>
                    </g>
                }
            }).collect_view())}
            <For each=move || diagram.get().rows key=row_key let:row>
                <DiagramRow row=row selected=selected/>
            </For>
            {move || empty().then(|| diagram.with(|d| view! {
                <text class="diagram-empty" x=d.width / 2.0 y=d.lifeline_top + 24.0 text-anchor="middle">
                    "Messages appear here as the protocol runs."
                </text>
            }))}
        </svg>
    }
}

#[component]
fn DiagramRow(row: Row, selected: RwSignal<Option<u64>>) -> impl IntoView {
    let tone = row.tone.class();
    let shape = match row.shape {
        Shape::Arrow { from_x, to_x, dashed, reach } => {
            // Stop short of the lifeline so the arrowhead touches it; a held
            // message stops half way.
            let direction = if to_x > from_x { 1.0 } else { -1.0 };
            let end_x = from_x + (to_x - from_x) * reach;
            let end_x = if reach < 1.0 { end_x } else { end_x - direction * 3.0 };
            let state = row.message.map(|m| m.state);
            let held = row.message.filter(|m| m.state == MessageState::Held);
            // Drawn, not a glyph: not every browser font has the symbols.
            let tip = match state {
                Some(MessageState::Held) => Some(view! {
                    <g class="held-tip">
                        <rect x=end_x - 5.0 y=row.y - 7.0 width="3.5" height="14" rx="1"/>
                        <rect x=end_x + 1.5 y=row.y - 7.0 width="3.5" height="14" rx="1"/>
                    </g>
                }.into_any()),
                Some(MessageState::Dropped) => Some(view! {
                    <g class="dropped-tip">
                        <line x1=end_x - 6.0 y1=row.y - 6.0 x2=end_x + 6.0 y2=row.y + 6.0/>
                        <line x1=end_x - 6.0 y1=row.y + 6.0 x2=end_x + 6.0 y2=row.y - 6.0/>
                    </g>
                }.into_any()),
                _ => None,
            };
            let ends_in_tip = tip.is_some();
            view! {
                <line class=format!("msg {tone}") class:dashed=dashed class:is-held=held.is_some()
                    x1=from_x + direction * 3.0 y1=row.y x2=end_x y2=row.y
                    marker-end=if ends_in_tip { String::new() } else { format!("url(#{})", marker_id(row.tone)) }/>
                {tip}
                {held.map(|m| {
                    // A band around the arrow, easy to hit.
                    let (left, right) = (from_x.min(end_x) - 10.0, from_x.max(end_x) + 10.0);
                    view! {
                        <rect class="held-hit" data-testid=format!("held-arrow-{}", m.id)
                            x=left y=row.y - 11.0 width=right - left height="22"
                            on:click=move |_| selected.set(Some(m.id))>
                            <title>{format!("message #{} is held: click to deliver, drop, duplicate or delay it", m.id)}</title>
                        </rect>
                    }
                })}
            }
            .into_any()
        }
        Shape::Mark { x } => view! {
            <rect class=format!("mark {tone}") x=x - 8.0 y=row.y - 8.0 width="16" height="16" rx="4"/>
        }
        .into_any(),
    };
    let band = row.phase.map(|phase| {
        let y = row.y - ROW_H * 0.75 - PHASE_H * 0.35;
        view! {
            <g class="phase-band" data-testid="phase-band">
                <line x1=GUTTER_W y1=y x2=WIDTH - MARGIN_RIGHT y2=y/>
                <text x=GUTTER_W + 4.0 y=y - 4.0>{phase}</text>
            </g>
        }
    });
    view! {
        <g class="seq-row">
            {band}
            <text class="row-time" x="6" y=row.y + 4.0>{row.time_label.clone()}</text>
            {shape}
            <text class=format!("row-label {tone}") x=row.label_x y=row.label_y text-anchor=row.anchor.svg()>{row.label.clone()}</text>
        </g>
    }
}

#[component]
fn Legend() -> impl IntoView {
    let items = [
        (Tone::Neutral, "prepare"),
        (Tone::Good, "ready / commit"),
        (Tone::Bad, "abort / rollback"),
        (Tone::Log, "forced log write"),
        (Tone::Info, "recovery"),
        (Tone::Warn, "in doubt"),
    ];
    view! {
        <ul class="legend">
            {items.into_iter().map(|(tone, text)| view! { <li><span class=format!("swatch {}", tone.class())></span>{text}</li> }).collect_view()}
        </ul>
        <p class="muted small gloss" data-testid="forced-write-gloss">
            "A forced write is a log record written and synced to disk (fdatasync) before the process sends anything that depends on it: a node votes ready only after its PREPARED record is forced, and the coordinator's COMMIT record, once forced, is the commit point."
        </p>
    }
}

#[component]
fn EventLog() -> impl IntoView {
    let ctx = use_ctx();
    let offset = utc_offset_minutes();
    let lines = Memo::new(move |_| {
        ctx.model
            .with(|m| m.log.iter().rev().cloned().collect::<Vec<_>>())
    });
    view! {
        <div class="log-head"><span>"Event log"</span><span class="muted small">"newest first · click to pin"</span></div>
        <ol class="event-log" data-testid="event-log">
            {move || lines.with(|l| l.is_empty()).then(|| view! { <li class="log-line muted">"Waiting for events…"</li> })}
            <For each=move || lines.get() key=|line| (line.id, line.repeats) let:line>
                {
                    let tx = line.tx_id.clone();
                    let clickable = tx.is_some();
                    view! {
                        <li class=format!("log-line {}", line.tone.class()) class:clickable=clickable
                            on:click=move |_| if let Some(tx) = tx.clone() { ctx.pin(tx) }>
                            <span class="log-time mono">{clock_ms(line.ts_ms, offset)}</span>
                            <span class="log-text">
                                {line.text.clone()}
                                {(line.repeats > 1).then(|| view! { <span class="repeats">{format!("×{}", line.repeats)}</span> })}
                            </span>
                            {line.tx_id.as_deref().map(|t| view! { <span class="log-tx mono">{short_tx_id(t)}</span> })}
                        </li>
                    }
                }
            </For>
        </ol>
    }
}

#[component]
fn Timeline(events: Signal<Vec<Event>>) -> impl IntoView {
    let offset = utc_offset_minutes();
    view! {
        <div class="log-head"><span>"Timeline of this transaction"</span><span class="muted small">"oldest first"</span></div>
        <ol class="event-log timeline" data-testid="tx-timeline">
            {move || events.get().into_iter().map(|event| {
                let (text, tone) = describe_event(&event.kind);
                view! {
                    <li class=format!("log-line {}", tone.class())>
                        <span class="log-time mono">{clock_ms(event.ts_ms, offset)}</span>
                        <span class="log-text">{text}</span>
                    </li>
                }
            }).collect_view()}
        </ol>
    }
}
