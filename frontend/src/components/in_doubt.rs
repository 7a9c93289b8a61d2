//! The operator's "In doubt" panel: every transaction prepared somewhere
//! and not yet resolved, how long it has waited, where it is prepared, what
//! the coordinator knows and why it is stuck; a forced (heuristic) commit
//! or abort per prepared node, behind a confirm step; a loud list of the
//! heuristic outcomes that contradict the coordinator; the money audit.
//!
//! [`InDoubtPanel`] polls `GET /api/in-doubt` every [`IN_DOUBT_POLL_MS`]
//! while the tab is visible and the stream is live, and at once after the
//! events that change the view ([`crate::context::Ctx::in_doubt_nudge`]).
//! [`InDoubtBody`] only draws a [`Polled`], so tests mount it on a fixed
//! view. The words come from [`crate::in_doubt`].

use std::time::Duration;

use leptos::prelude::*;
use shared::api::{ComponentStatus, HeuristicRequest, HeuristicView};
use shared::wire::{Decision, NodeId, TxId};

use crate::api;
use crate::context::{now_ms, use_ctx};
use crate::format::{decision_label, duration_ms, short_tx_id, status_label, Tone};
use crate::in_doubt::{
    audit_line, chip_class, confirm_text, coordinator_state_text, disagreeing, live_age_ms,
    signed_cents, stuck_sentence, stuck_tone, transfer_line, Polled,
};
use crate::model::Invariant;
use crate::ws::Connection;
use shared::money::format_cents;

/// How often the in-doubt view is re-read while the panel is visible.
pub const IN_DOUBT_POLL_MS: u64 = 1_000;

/// A forced outcome waiting for the operator's confirmation.
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    tx_id: TxId,
    node: NodeId,
    decision: Decision,
}

fn tab_visible() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_none_or(|d| !d.hidden())
}

/// Re-reads the view unless a read is already under way.
fn poll(polled: RwSignal<Polled>, in_flight: StoredValue<bool>, imbalance: RwSignal<i64>) {
    if in_flight.get_value() {
        return;
    }
    in_flight.set_value(true);
    leptos::task::spawn_local(async move {
        let result = api::in_doubt().await;
        in_flight.set_value(false);
        match result {
            Ok(view) => {
                let cents = view.audit.heuristic_imbalance_cents;
                if imbalance.get_untracked() != cents {
                    imbalance.set(cents);
                }
                polled.set(Polled::loaded(view, now_ms()));
            }
            Err(error) => polled.update(|p| p.error = Some(error.to_string())),
        }
    });
}

#[component]
pub fn InDoubtPanel() -> impl IntoView {
    let ctx = use_ctx();
    let polled = RwSignal::new(Polled::default());
    let in_flight = StoredValue::new(false);

    // Runs at mount (the first read) and after every nudge.
    Effect::new(move |_| {
        ctx.in_doubt_nudge.track();
        poll(polled, in_flight, ctx.heuristic_imbalance_cents);
    });
    let timer = set_interval_with_handle(
        move || {
            let live = ctx.connection.get_untracked() == Connection::Live;
            if tab_visible() && live && !ctx.travel.with_untracked(Option::is_some) {
                poll(polled, in_flight, ctx.heuristic_imbalance_cents);
            }
        },
        Duration::from_millis(IN_DOUBT_POLL_MS),
    )
    .ok();
    on_cleanup(move || {
        if let Some(timer) = timer {
            timer.clear();
        }
    });
    let refresh = Callback::new(move |()| poll(polled, in_flight, ctx.heuristic_imbalance_cents));

    view! {
        {move || if ctx.traveling() {
            view! { <InDoubtAtMoment/> }.into_any()
        } else {
            view! { <InDoubtBody polled=polled refresh=refresh/> }.into_any()
        }}
    }
}

/// The in-doubt view at a moment of a recorded run: each node's in-doubt
/// transactions and locks as it reported them then, and the money audit
/// of the balances then.
#[component]
fn InDoubtAtMoment() -> impl IntoView {
    let ctx = use_ctx();
    let rows = Memo::new(move |_| {
        ctx.model.with(|m| {
            m.cluster
                .as_ref()
                .map(|c| {
                    c.nodes
                        .iter()
                        .filter(|n| !n.in_doubt.is_empty())
                        .map(|n| (n.id.clone(), n.in_doubt.clone(), n.locked_accounts.clone()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    });
    let audit = move || {
        let (text, tone) = match ctx.model.with(|m| m.invariant()) {
            Invariant::Holds { total_cents } => (
                format!("Money balanced: {}", format_cents(total_cents)),
                Tone::Good,
            ),
            Invariant::Settling { total_cents, .. } => (
                format!(
                    "Settling: {} counted while transactions finish",
                    format_cents(total_cents)
                ),
                Tone::Warn,
            ),
            Invariant::Violated {
                total_cents,
                expected_cents,
            } => (
                format!(
                    "Money NOT balanced: {} counted, {} expected",
                    format_cents(total_cents),
                    format_cents(expected_cents)
                ),
                Tone::Bad,
            ),
            Invariant::Partial { total_cents, .. } => (
                format!(
                    "Partial: {} counted (a node was not answering)",
                    format_cents(total_cents)
                ),
                Tone::Warn,
            ),
            Invariant::Unknown => ("Not known at this moment".to_string(), Tone::Neutral),
        };
        view! { <p class=format!("audit {}", tone.class()) data-testid="in-doubt-audit">{text}</p> }
    };
    view! {
        <div class="panel in-doubt-panel" data-testid="in-doubt-panel">
            <div class="panel-head">
                <h3>"In doubt, at this moment"</h3>
                <span class="muted small">"as the nodes reported it then"</span>
            </div>
            {audit}
            {move || rows.with(|r| r.is_empty()).then(|| view! { <p class="muted">"Nothing in doubt at this moment."</p> })}
            <ul class="in-doubt-moment" data-testid="in-doubt-moment">
                {move || rows.get().into_iter().map(|(node, txs, locked)| {
                    let locks = if locked.is_empty() { String::new() } else { format!(" · locked: {}", locked.join(", ")) };
                    view! {
                        <li>
                            <strong>{format!("node {node}")}</strong>
                            {txs.into_iter().map(|tx| {
                                let pin = tx.clone();
                                view! { <button class="link mono" title=tx.clone() on:click=move |_| ctx.pin(pin.clone())>{short_tx_id(&tx)}</button> }
                            }).collect_view()}
                            <span class="muted small">{locks}</span>
                        </li>
                    }
                }).collect_view()}
            </ul>
        </div>
    }
}

/// Draws a [`Polled`] view; `refresh` is called after a forced outcome.
#[component]
pub fn InDoubtBody(
    polled: RwSignal<Polled>,
    #[prop(optional)] refresh: Option<Callback<()>>,
) -> impl IntoView {
    let ctx = use_ctx();
    let tx_ids = Memo::new(move |_| {
        polled.with(|p| {
            p.view.as_ref().map(|v| {
                v.transactions
                    .iter()
                    .map(|t| t.tx_id.clone())
                    .collect::<Vec<_>>()
            })
        })
    });
    let pending = RwSignal::new(None::<Pending>);
    let busy = RwSignal::new(false);
    let after_force = move || {
        if let Some(refresh) = refresh {
            refresh.run(());
        }
        ctx.refresh_cluster_soon();
    };
    let force = move |p: Pending| {
        busy.set(true);
        leptos::task::spawn_local(async move {
            let action = format!("Force {} on node {}", decision_label(p.decision), p.node);
            let request = HeuristicRequest {
                tx_id: p.tx_id.clone(),
                decision: p.decision,
            };
            let result = api::force_heuristic(&p.node, &request).await;
            busy.set(false);
            pending.set(None);
            match result {
                Ok(view) => {
                    let tone = if view.agrees == Some(false) {
                        Tone::Bad
                    } else {
                        Tone::Warn
                    };
                    ctx.toast(action, view.detail, tone);
                }
                Err(error) => ctx.api_error(&action, &error),
            }
            after_force();
        });
    };

    let head_chips = move || {
        polled.with(|p| {
            let coordinator = p.view.as_ref().map(|v| v.coordinator);
            let down = coordinator
                .filter(|s| *s != ComponentStatus::Up)
                .map(|s| view! { <span class="chip chip-bad">{format!("coordinator {}", status_label(s))}</span> });
            let count = p.view.as_ref().map(|v| v.transactions.len()).unwrap_or(0);
            let count = (count > 0).then(|| view! { <span class="chip chip-warn" data-testid="in-doubt-count">{format!("{count} in doubt")}</span> });
            (count, down)
        })
    };
    let stale = move || {
        polled.with(|p| {
            let stale = p.view.as_ref().map(|v| v.stale_nodes.clone()).unwrap_or_default();
            (!stale.is_empty()).then(|| view! {
                <p class="muted small" data-testid="in-doubt-stale">
                    {format!("Not answering just now: node {} — shown as last reported.", stale.join(", node "))}
                </p>
            })
        })
    };
    let error = move || {
        polled
            .with(|p| p.error.clone())
            .map(|e| view! { <p class="muted small">{format!("Could not refresh: {e}")}</p> })
    };
    let list = move || {
        match tx_ids.get() {
        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
        Some(ids) if ids.is_empty() => view! {
            <p class="in-doubt-empty" data-testid="in-doubt-empty">"Nothing in doubt"</p>
        }.into_any(),
        Some(_) => view! {
            <ul class="in-doubt-list">
                <For each=move || tx_ids.get().unwrap_or_default() key=|id| id.clone() let:id>
                    <InDoubtRow tx_id=id polled=polled pending=pending busy=busy force=Callback::new(force)/>
                </For>
            </ul>
        }.into_any(),
    }
    };

    view! {
        <div class="panel in-doubt-panel" data-testid="in-doubt-panel">
            <div class="panel-head">
                <h3>"In doubt"</h3>
                {head_chips}
                <span class="muted small">"prepared somewhere, outcome not yet known there"</span>
            </div>
            {error}
            {stale}
            {list}
            <HeuristicAlarm polled=polled/>
            <AuditLine polled=polled/>
        </div>
    }
}

#[component]
fn InDoubtRow(
    tx_id: TxId,
    polled: RwSignal<Polled>,
    pending: RwSignal<Option<Pending>>,
    busy: RwSignal<bool>,
    force: Callback<Pending>,
) -> impl IntoView {
    let ctx = use_ctx();
    let id = StoredValue::new(tx_id.clone());
    let entry = Memo::new(move |_| {
        polled.with(|p| {
            p.view.as_ref().and_then(|v| {
                v.transactions
                    .iter()
                    .find(|t| t.tx_id == id.get_value())
                    .cloned()
            })
        })
    });
    let fetched_at_ms = move || polled.with(|p| p.fetched_at_ms);
    let since_fetch_ms = move || ctx.now_ms.get().saturating_sub(fetched_at_ms());
    let age = move || {
        entry.get().map(|e| {
            let ms = live_age_ms(e.age_ms, fetched_at_ms(), ctx.now_ms.get());
            format!("waiting {}", duration_ms(ms as f64))
        })
    };
    let state = move || {
        entry.get().map(|e| {
            let (label, sentence, tone) = coordinator_state_text(e.coordinator_state);
            let decided = e.decision.map(|d| format!(" · decided {}", decision_label(d))).unwrap_or_default();
            view! { <span class=chip_class(tone) title=sentence data-testid="in-doubt-state">{format!("coordinator: {label}{decided}")}</span> }
        })
    };
    let transfer = move || entry.get().and_then(|e| transfer_line(&e));

    let prepared = move || {
        let Some(e) = entry.get() else {
            return ().into_any();
        };
        let since = since_fetch_ms();
        let stale_nodes = polled.with(|p| {
            p.view
                .as_ref()
                .map(|v| v.stale_nodes.clone())
                .unwrap_or_default()
        });
        e.prepared_on
            .into_iter()
            .map(|p| {
                let node = p.node.clone();
                // A node that does not answer reported its wait earlier: show
                // that figure as such rather than counting on from it.
                let waited = if stale_nodes.contains(&p.node) {
                    format!("{} when last heard from", duration_ms(p.prepared_for_ms as f64))
                } else {
                    duration_ms(p.prepared_for_ms.saturating_add(since) as f64)
                };
                let ask = move |decision: Decision| {
                    let node = node.clone();
                    move |_| pending.set(Some(Pending { tx_id: id.get_value(), node: node.clone(), decision }))
                };
                let testid = format!("in-doubt-prepared-{}", p.node);
                view! {
                    <li class="prepared-on" data-testid=testid>
                        <span><strong>{format!("node {}", p.node)}</strong><span class="muted small">{format!(" prepared for {waited}")}</span></span>
                        <span class="btn-group" role="group" aria-label="heuristic decision">
                            <button class="btn btn-small btn-quiet" disabled=move || busy.get()
                                data-testid=format!("force-commit-{}", p.node)
                                title="a heuristic decision: an operator commits this transaction on this node without the coordinator" on:click=ask(Decision::Commit)>"heuristic commit"</button>
                            <button class="btn btn-small btn-quiet" disabled=move || busy.get()
                                data-testid=format!("force-abort-{}", p.node)
                                title="a heuristic decision: an operator aborts this transaction on this node without the coordinator" on:click=ask(Decision::Abort)>"heuristic abort"</button>
                        </span>
                    </li>
                }
            })
            .collect_view()
            .into_any()
    };
    let acks = move || {
        entry.get().and_then(|e| {
            (!e.pending_acks.is_empty()).then(|| view! {
                <div class="small">"owes an ack: "{e.pending_acks.iter().map(|n| view! { <span class="chip chip-info">{format!("node {n}")}</span> }).collect_view()}</div>
            })
        })
    };
    let stuck = move || {
        entry.get().map(|e| {
            e.stuck
                .iter()
                .map(|s| view! { <li class="stuck"><span class=chip_class(stuck_tone(s.reason))>"why"</span>" "{stuck_sentence(s)}</li> })
                .collect_view()
        })
    };
    let confirm = move || {
        let p = pending.get().filter(|p| p.tx_id == id.get_value())?;
        let coordinator_decision = entry.get().and_then(|e| e.decision);
        let text = confirm_text(&p.tx_id, &p.node, p.decision, coordinator_decision);
        let label = format!(
            "Yes, decide {} on node {} (heuristic)",
            decision_label(p.decision),
            p.node
        );
        let go = p.clone();
        Some(view! {
            <div class="confirm" role="alertdialog" data-testid="heuristic-confirm">
                <p class="confirm-text">{text}</p>
                <div class="row-inline">
                    <button class="btn btn-danger" data-testid="heuristic-confirm-yes" disabled=move || busy.get()
                        on:click=move |_| force.run(go.clone())>{label}</button>
                    <button class="btn" data-testid="heuristic-confirm-cancel" on:click=move |_| pending.set(None)>"Cancel"</button>
                </div>
            </div>
        })
    };
    let pin_id = tx_id.clone();

    view! {
        <li class="in-doubt-tx" data-testid=format!("in-doubt-tx-{tx_id}")>
            <div class="in-doubt-tx-head">
                <button class="link" title=tx_id.clone() on:click=move |_| ctx.pin(pin_id.clone())>{short_tx_id(&tx_id)}</button>
                <span class="small">{transfer}</span>
                {state}
                <span class="waited" data-testid="in-doubt-age">{age}</span>
            </div>
            <ul class="prepared-list">{prepared}</ul>
            {acks}
            <ul class="stuck-list">{stuck}</ul>
            {confirm}
        </li>
    }
}

/// Heuristic outcomes that contradict the coordinator: the transaction is
/// not atomic any more, and no protocol will fix it.
#[component]
fn HeuristicAlarm(polled: RwSignal<Polled>) -> impl IntoView {
    let wrong =
        Memo::new(move |_| polled.with(|p| p.view.as_ref().map(disagreeing).unwrap_or_default()));
    move || {
        let wrong = wrong.get();
        (!wrong.is_empty()).then(|| view! {
            <div class="heuristic-alarm" role="alert" data-testid="heuristic-alarm">
                <div class="heuristic-alarm-title">
                    {format!("⚠ {} heuristic outcome{} disagree{} with the coordinator — the transfer is not atomic",
                        wrong.len(), if wrong.len() == 1 { "" } else { "s" }, if wrong.len() == 1 { "s" } else { "" })}
                </div>
                <ul>
                    {wrong.into_iter().map(|h: HeuristicView| {
                        let coordinator = h.coordinator_decision.map(decision_label).unwrap_or("unknown");
                        view! {
                            <li data-testid=format!("heuristic-{}-{}", h.tx_id, h.node)>
                                <span class="mono" title=h.tx_id.clone()>{short_tx_id(&h.tx_id)}</span>
                                {format!(" on node {}: heuristic {}, coordinator decided {} · {}",
                                    h.node, decision_label(h.decision), coordinator, signed_cents(h.imbalance_cents))}
                                <div class="small">{h.detail.clone()}</div>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </div>
        })
    }
}

#[component]
fn AuditLine(polled: RwSignal<Polled>) -> impl IntoView {
    move || {
        polled
            .with(|p| p.view.as_ref().map(|v| audit_line(&v.audit)))
            .map(|(text, tone)| {
                let class = format!(
                    "audit audit-{}",
                    if tone == Tone::Bad {
                        "bad"
                    } else if tone == Tone::Warn {
                        "warn"
                    } else {
                        "good"
                    }
                );
                view! { <p class=class data-testid="in-doubt-audit">{text}</p> }
            })
    }
}
