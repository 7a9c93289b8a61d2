//! The cluster: a card for the coordinator and one per participant node,
//! with status, balances, locks, in-doubt transactions (and how long they
//! have waited), the link's fault, and the node's failure buttons: crash
//! now, restart, crash at a protocol step of its next transaction (after
//! its PREPARED record, after it applied a commit), and the link's faults.

use std::future::Future;

use leptos::prelude::*;
use shared::api::{ComponentStatus, LinkFault, NodeView};
use shared::money::format_cents;
use shared::wire::ParticipantCrashPoint;

use crate::api::{self, ApiError};
use crate::context::{use_ctx, Ctx};
use crate::format::{duration_ms, percent, short_tx_id, status_label, Tone};

/// Delay the "Slow" button adds to a link.
pub const SLOW_LINK_DELAY_MS: u64 = 500;

/// Runs a fault-injection call: disables the button meanwhile, toasts the
/// result and refreshes the cluster.
pub fn run_command(
    ctx: Ctx,
    busy: RwSignal<bool>,
    action: String,
    call: impl Future<Output = Result<(), ApiError>> + 'static,
) {
    busy.set(true);
    leptos::task::spawn_local(async move {
        let result = call.await;
        busy.set(false);
        match result {
            Ok(()) => ctx.toast(action, "done", Tone::Good),
            Err(error) => ctx.api_error(&action, &error),
        }
        ctx.refresh_cluster_soon();
        ctx.refresh_faults();
    });
}

fn status_chip(status: ComponentStatus, testid: String) -> impl IntoView {
    let class = format!("chip status-{}", status_label(status));
    view! { <span class=class data-testid=testid><span class="dot"></span>{status_label(status)}</span> }
}

fn link_label(link: &LinkFault) -> Option<String> {
    if link.drop {
        Some("link cut".to_string())
    } else if link.delay_ms > 0 {
        Some(format!("link slow +{} ms", link.delay_ms))
    } else if link.duplicate {
        Some("link duplicating".to_string())
    } else {
        None
    }
}

#[component]
pub fn ClusterPanel() -> impl IntoView {
    let ctx = use_ctx();
    let node_ids = Memo::new(move |_| {
        ctx.model.with(|m| {
            m.cluster
                .as_ref()
                .map(|c| c.nodes.iter().map(|n| n.id.clone()).collect::<Vec<_>>())
        })
    });
    view! {
        <div class="cluster">
            <CoordinatorCard/>
            {move || match node_ids.get() {
                None => view! { <div class="card card-skeleton">"Loading the cluster…"</div> }.into_any(),
                Some(ids) if ids.is_empty() => view! { <div class="card card-skeleton">"No participant nodes configured."</div> }.into_any(),
                Some(_) => view! {
                    <For
                        each=move || node_ids.get().unwrap_or_default()
                        key=|id| id.clone()
                        let:id
                    >
                        <NodeCard id=id/>
                    </For>
                }.into_any(),
            }}
        </div>
    }
}

#[component]
fn CoordinatorCard() -> impl IntoView {
    let ctx = use_ctx();
    let coordinator = Memo::new(move |_| {
        ctx.model
            .with(|m| m.cluster.as_ref().map(|c| c.coordinator.clone()))
    });
    let faults = Memo::new(move |_| ctx.model.with(|m| m.faults.clone()));
    let stats = Memo::new(move |_| {
        ctx.model.with(|m| {
            (
                m.stats.in_flight,
                m.stats.log_forces,
                m.stats.uptime_s,
                m.stats.in_flight_heuristic_mismatch,
            )
        })
    });
    let status = move || {
        coordinator
            .get()
            .map(|c| c.status)
            .unwrap_or(ComponentStatus::Unreachable)
    };
    let demo_mode = move || coordinator.get().is_some_and(|c| c.demo_mode);

    let armed = move || {
        faults.get().coordinator_crash.map(|crash| {
            let at = match crash.at {
                shared::api::CrashPoint::BeforeDecision => "before decision",
                shared::api::CrashPoint::AfterDecision => "after decision",
                shared::api::CrashPoint::MidCommit => "mid-commit",
            };
            view! { <span class="chip chip-bad">{format!("crash armed: {at}")}</span> }
        })
    };
    let step = move || {
        let pause_ms = faults.get().phase_pause_ms;
        (pause_ms > 0).then(|| view! { <span class="chip chip-warn">{format!("step mode {}", duration_ms(pause_ms as f64))}</span> })
    };
    let chaos = move || {
        let p = faults.get().prepare_crash_probability;
        (p > 0.0).then(|| view! { <span class="chip chip-warn">{format!("prepare crash {}", percent(p))}</span> })
    };

    view! {
        <article
            class="card node-card coordinator-card"
            class:is-down=move || status() != ComponentStatus::Up
            data-testid="coordinator-card"
        >
            <header class="card-head">
                <div>
                    <div class="eyebrow">"Coordinator"</div>
                    <h2 class="card-title">"coordinator"</h2>
                </div>
                {move || status_chip(status(), "coordinator-status".to_string())}
            </header>
            <dl class="facts">
                <div><dt>"in flight"</dt><dd data-testid="in-flight">{move || stats.get().0}
                    {move || {
                        let stuck = stats.get().3;
                        (stuck > 0).then(|| view! {
                            <span class="small muted" data-testid="in-flight-stuck"
                                title="The coordinator decided commit; an operator forced abort on a node (a heuristic decision), and that node refuses the commit the coordinator keeps re-sending. The in-doubt panel names it.">
                                {format!(" ({stuck} never finishes: a heuristic abort contradicts its commit)")}
                            </span>
                        })
                    }}
                </dd></div>
                <div><dt>"log forces"</dt><dd>{move || stats.get().1}</dd></div>
                <div><dt>"uptime"</dt><dd>{move || duration_ms(stats.get().2 * 1000.0)}</dd></div>
            </dl>
            <div class="chips">
                {move || if demo_mode() {
                    view! { <span class="chip chip-info">"demo mode"</span> }.into_any()
                } else {
                    view! { <span class="chip chip-muted" title="start the coordinator with --demo to inject faults">"faults disabled"</span> }.into_any()
                }}
                {armed}
                {step}
                {chaos}
            </div>
        </article>
    }
}

#[component]
fn NodeCard(id: String) -> impl IntoView {
    let ctx = use_ctx();
    let node_id = StoredValue::new(id.clone());
    let node = Memo::new(move |_| {
        ctx.model.with(|m| {
            m.cluster.as_ref().and_then(|c| {
                c.nodes
                    .iter()
                    .find(|n| n.id == node_id.get_value())
                    .cloned()
            })
        })
    });
    let status = move || {
        node.get()
            .map(|n| n.status)
            .unwrap_or(ComponentStatus::Unreachable)
    };
    let is_down = move || status() != ComponentStatus::Up;
    let busy = RwSignal::new(false);

    let crash = move |_| {
        let id = node_id.get_value();
        run_command(ctx, busy, format!("Crash node {id}"), async move {
            api::crash_node(&id).await
        });
    };
    let crash_at = move |at: ParticipantCrashPoint| {
        let id = node_id.get_value();
        let step = match at {
            ParticipantCrashPoint::AfterPrepareLogged => "after logging PREPARED",
            ParticipantCrashPoint::AfterCommitApplied => "after applying a commit",
        };
        run_command(ctx, busy, format!("Node {id} crashes {step}"), async move {
            api::crash_node_at(&id, at).await
        });
    };
    let restart = move |_| {
        let id = node_id.get_value();
        run_command(ctx, busy, format!("Restart node {id}"), async move {
            api::restart_node(&id).await
        });
    };
    let slow = move |_| {
        let id = node_id.get_value();
        let fault = LinkFault {
            delay_ms: SLOW_LINK_DELAY_MS,
            ..Default::default()
        };
        run_command(ctx, busy, format!("Slow link to {id}"), async move {
            api::set_link(&id, &fault).await
        });
    };
    let cut = move |_| {
        let id = node_id.get_value();
        let fault = LinkFault {
            drop: true,
            ..Default::default()
        };
        run_command(ctx, busy, format!("Cut link to {id}"), async move {
            api::set_link(&id, &fault).await
        });
    };
    let heal = move |_| {
        let id = node_id.get_value();
        run_command(ctx, busy, format!("Heal link to {id}"), async move {
            api::heal_link(&id).await
        });
    };

    let accounts = move || {
        node.get().map(|n: NodeView| {
            let stale = n.status != ComponentStatus::Up;
            n.accounts
                .iter()
                .map(|account| {
                    let locked = n.locked_accounts.contains(&account.id);
                    let testid = format!("balance-{}", account.id);
                    view! {
                        <li class="account" class:is-locked=locked>
                            <span class="account-id">{account.id.clone()}</span>
                            {locked.then(|| view! { <span class="chip chip-warn lock" title="locked by a transaction in progress">"🔒 locked"</span> })}
                            <span class="balance flash" class:is-stale=stale data-testid=testid
                                title=if stale { "last known balance: the node is not answering" } else { "" }>
                                {format_cents(account.balance_cents)}
                            </span>
                        </li>
                    }
                })
                .collect_view()
        })
    };

    let in_doubt = move || {
        let Some(n) = node.get() else {
            return ().into_any();
        };
        let now = ctx.now_ms.get();
        if n.in_doubt.is_empty() && n.in_doubt_detail.is_empty() {
            return view! { <p class="muted small">"No in-doubt transactions"</p> }.into_any();
        }
        let rows = if n.in_doubt_detail.is_empty() {
            n.in_doubt
                .iter()
                .map(|tx| (tx.clone(), None))
                .collect::<Vec<_>>()
        } else {
            n.in_doubt_detail
                .iter()
                .map(|d| {
                    (
                        d.tx_id.clone(),
                        Some(
                            ctx.model
                                .with_untracked(|m| m.waited_ms(d.prepared_for_ms, now)),
                        ),
                    )
                })
                .collect()
        };
        view! {
            <div class="in-doubt" data-testid=format!("in-doubt-{}", n.id)>
                <div class="in-doubt-title">"In doubt — voted ready, waiting for the decision"</div>
                <ul>
                    {rows.into_iter().map(|(tx, waited)| {
                        let pin_id = tx.clone();
                        view! {
                            <li>
                                <button class="link" title=tx.clone() on:click=move |_| ctx.pin(pin_id.clone())>{short_tx_id(&tx)}</button>
                                <span class="waited">{waited.map(|ms| format!("waiting {}", duration_ms(ms as f64))).unwrap_or_default()}</span>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </div>
        }
        .into_any()
    };

    let link = move || {
        node.get()
            .and_then(|n| link_label(&n.link))
            .map(|text| view! { <span class="chip chip-warn">{text}</span> })
    };
    // A node that refuses this coordinator (another cluster's node, or a
    // newer epoch seen there) says why.
    let refused = move || {
        node.get().and_then(|n| n.refused).map(|why| {
            view! { <p class="refused small" data-testid="node-refused">{format!("refuses this coordinator: {why}")}</p> }
        })
    };
    let addr = move || {
        node.get().map(|n| match n.pid {
            Some(pid) => format!("{} · pid {pid}", n.addr),
            None => n.addr,
        })
    };
    // Buttons stay clickable outside demo mode: the coordinator's 403 then
    // explains why, and the card says so too.
    let disabled = move || busy.get();
    let is_crashed = move || status() == ComponentStatus::Down;
    let has_link_fault = move || node.get().is_some_and(|n| !n.link.is_healthy());

    view! {
        <article class="card node-card" class:is-down=is_down data-testid=format!("node-card-{id}")>
            <header class="card-head">
                <div>
                    <div class="eyebrow">"Participant"</div>
                    <h2 class="card-title">{format!("node {id}")}</h2>
                    <div class="muted small mono">{addr}</div>
                </div>
                {move || status_chip(status(), format!("node-status-{}", node_id.get_value()))}
            </header>
            <ul class="accounts">{accounts}</ul>
            <div class="chips">{link}</div>
            {refused}
            {in_doubt}
            <div class="card-actions">
                <div class="btn-group" role="group" aria-label="process">
                    <button class="btn btn-danger" data-testid=format!("crash-{id}") disabled=move || disabled() || is_crashed()
                        title="kill -9 the participant process" on:click=crash>"Crash"</button>
                    <button class="btn" data-testid=format!("restart-{id}") disabled=move || disabled() || !is_down()
                        title="start it again: it recovers from its log" on:click=restart>"Restart"</button>
                </div>
                <div class="btn-group" role="group" aria-label="crash at a protocol step">
                    <button class="btn btn-quiet btn-danger-quiet" data-testid=format!("crash-prepared-{id}") disabled=move || disabled() || is_down()
                        title="its next transaction: crash right after forcing PREPARED, before voting (it restarts in doubt)"
                        on:click=move |_| crash_at(ParticipantCrashPoint::AfterPrepareLogged)>"Crash after PREPARED"</button>
                    <button class="btn btn-quiet btn-danger-quiet" data-testid=format!("crash-applied-{id}") disabled=move || disabled() || is_down()
                        title="its next commit: crash after applying it and making it durable, before acking"
                        on:click=move |_| crash_at(ParticipantCrashPoint::AfterCommitApplied)>"Crash after commit applied"</button>
                </div>
                <div class="btn-group" role="group" aria-label="network link">
                    <button class="btn btn-quiet" data-testid=format!("link-slow-{id}") disabled=disabled
                        title=format!("add {SLOW_LINK_DELAY_MS} ms to every message") on:click=slow>"Slow"</button>
                    <button class="btn btn-quiet" data-testid=format!("link-cut-{id}") disabled=disabled
                        title="drop every message (a partition)" on:click=cut>"Cut"</button>
                    <button class="btn btn-quiet" data-testid=format!("link-heal-{id}") disabled=move || disabled() || !has_link_fault()
                        title="remove the network fault" on:click=heal>"Heal"</button>
                </div>
            </div>
        </article>
    }
}
