//! The space-time view: the newest transactions together on the same
//! lifelines, one colour each, messages as slanted arrows (Lamport-style),
//! with the lock waits between them (a dotted bar: who waited for whom)
//! and the refusals (`lock_conflict`, and whether the refused one was older
//! or younger than the holder). The geometry comes from
//! [`crate::spacetime::layout`]; this file only draws. A click on a
//! transaction in the key pins it in the sequence diagram.

use leptos::prelude::*;
use shared::events::Event;
use shared::wire::TxId;

use crate::context::use_ctx;
use crate::spacetime::{layout, ArrowState, SpaceTime, TXS_SHOWN_MAX};

fn state_class(state: ArrowState) -> &'static str {
    match state {
        ArrowState::Arrived => "",
        ArrowState::InFlight => "in-flight",
        ArrowState::Held => "held",
        ArrowState::Dropped => "dropped",
    }
}

#[component]
pub fn SpaceTimePanel() -> impl IntoView {
    let ctx = use_ctx();
    let node_ids = Memo::new(move |_| {
        ctx.model.with(|m| {
            m.cluster
                .as_ref()
                .map(|c| c.nodes.iter().map(|n| n.id.clone()).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    let picture = Memo::new(move |_| {
        let timelines: Vec<(TxId, Vec<Event>)> = ctx.model.with(|m| {
            let skip = m.timelines.len().saturating_sub(TXS_SHOWN_MAX);
            m.timelines
                .iter()
                .skip(skip)
                .map(|t| (t.tx_id.clone(), t.events.clone()))
                .collect()
        });
        layout(&node_ids.get(), &timelines)
    });
    let view_box = move || picture.with(|p| format!("0 0 {} {}", p.width, p.height));
    // The newest moment is at the bottom: keep it in sight as the view grows.
    let scroller = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        picture.track();
        request_animation_frame(move || {
            if let Some(div) = scroller.get_untracked() {
                div.set_scroll_top(div.scroll_height());
            }
        });
    });
    let empty = move || picture.with(|p| p.txs.is_empty());

    view! {
        <div class="panel spacetime-panel" data-testid="spacetime-panel">
            <div class="panel-head">
                <h3>"Space-time: transactions together"</h3>
                <span class="muted small">{format!("the newest {TXS_SHOWN_MAX}, time going down; dotted: a lock wait; ✕: refused")}</span>
            </div>
            <ul class="st-key" data-testid="spacetime-key">
                {move || picture.with(|p| p.txs.iter().map(|key| {
                    let tx_id = key.tx_id.clone();
                    view! {
                        <li class=format!("st-key-item tx-color-{}", key.color) on:click=move |_| ctx.pin(tx_id.clone())>
                            <span class="swatch"></span>{key.label.clone()}
                        </li>
                    }
                }).collect_view())}
            </ul>
            <div class="st-scroll" node_ref=scroller>
                <svg class="spacetime" data-testid="spacetime" role="img" aria-label="space-time diagram of concurrent transactions"
                    viewBox=view_box preserveAspectRatio="xMidYMin meet">
                    {move || picture.with(draw)}
                    {move || empty().then(|| view! {
                        <text class="diagram-empty" x="360" y="70" text-anchor="middle">"Transactions appear here as they run."</text>
                    })}
                </svg>
            </div>
        </div>
    }
}

fn draw(p: &SpaceTime) -> impl IntoView {
    let lanes = p
        .lanes
        .iter()
        .map(|lane| {
            view! {
                <g class="lane">
                    <text class="lane-label" x=lane.x y="26" text-anchor="middle">{lane.label.clone()}</text>
                    <line class="lifeline" x1=lane.x y1=p.lifeline_top x2=lane.x y2=p.lifeline_bottom/>
                </g>
            }
        })
        .collect_view();
    let arrows = p
        .arrows
        .iter()
        .map(|a| {
            let class = format!("st-arrow tx-color-{} {}", a.color, state_class(a.state));
            let title = format!("{} · {}", a.tx_id, a.label);
            view! {
                <line class=class x1=a.x1 y1=a.y1 x2=a.x2 y2=a.y2 marker-end="url(#st-head)"><title>{title}</title></line>
            }
        })
        .collect_view();
    let marks = p
        .marks
        .iter()
        .map(|m| {
            let title = format!("{} · {}", m.tx_id, m.label);
            view! {
                <circle class=format!("st-mark tx-color-{}", m.color) cx=m.x cy=m.y r="4"><title>{title}</title></circle>
            }
        })
        .collect_view();
    let waits = p
        .waits
        .iter()
        .map(|w| {
            view! {
                <g class="st-wait" data-testid="lock-wait">
                    <line class=format!("st-wait-bar tx-color-{}", w.color) x1=w.x + 6.0 y1=w.y1 x2=w.x + 6.0 y2=w.y2/>
                    <text class="st-note" x=w.x + 10.0 y=(w.y1 + w.y2) / 2.0>{w.label.clone()}</text>
                </g>
            }
        })
        .collect_view();
    let refusals = p
        .refusals
        .iter()
        .map(|r| {
            view! {
                <g class="st-refusal" data-testid="lock-refusal">
                    <line class="st-cross" x1=r.x - 6.0 y1=r.y - 6.0 x2=r.x + 6.0 y2=r.y + 6.0/>
                    <line class="st-cross" x1=r.x - 6.0 y1=r.y + 6.0 x2=r.x + 6.0 y2=r.y - 6.0/>
                    <text class="st-note bad" x=r.x + 10.0 y=r.y + 4.0>{r.label.clone()}</text>
                </g>
            }
        })
        .collect_view();
    view! {
        <defs>
            <marker id="st-head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">
                <path d="M0,0 L10,5 L0,10 z" class="st-head"/>
            </marker>
        </defs>
        {lanes}
        {waits}
        {arrows}
        {marks}
        {refusals}
    }
}
