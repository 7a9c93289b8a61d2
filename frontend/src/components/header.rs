//! The top bar: the product name, the live-stream state and the invariant
//! "total = expected ✓", always visible; a loud banner under it when the
//! invariant is violated or the stream is reconnecting.

use leptos::prelude::*;
use shared::money::format_cents;

use crate::context::use_ctx;
use crate::model::Invariant;
use crate::ws::Connection;

#[component]
pub fn Header() -> impl IntoView {
    let ctx = use_ctx();
    let invariant = Memo::new(move |_| ctx.model.with(|m| m.invariant()));
    let connection = ctx.connection;

    let heuristic = ctx.heuristic_imbalance_cents;
    let badge = move || {
        let imbalance_cents = heuristic.get();
        let (class, text, hint) = match invariant.get() {
            // Nothing will settle it: an operator's heuristic decision
            // disagreed with the coordinator, and the total is off by it.
            Invariant::Settling {
                total_cents,
                expected_cents,
            }
            | Invariant::Violated {
                total_cents,
                expected_cents,
            } if imbalance_cents != 0 => (
                "invariant violated",
                format!(
                    "Total {} ≠ {} ✗ (heuristic)",
                    format_cents(total_cents),
                    format_cents(expected_cents)
                ),
                "a heuristic decision disagreed with the coordinator: the transfer is not atomic, money was created or lost".to_string(),
            ),
            Invariant::Unknown => (
                "invariant unknown",
                "Total —".to_string(),
                "waiting for the cluster".to_string(),
            ),
            Invariant::Holds { total_cents } => (
                "invariant holds",
                format!("Total {} ✓", format_cents(total_cents)),
                "the sum of all balances equals the initial total".to_string(),
            ),
            Invariant::Partial {
                total_cents,
                silent_nodes,
            } => {
                let who = if silent_nodes.is_empty() {
                    "a node is".to_string()
                } else {
                    format!("node {} not", silent_nodes.join(", "))
                };
                (
                    "invariant partial",
                    format!("Partial {} · {who} answering", format_cents(total_cents)),
                    "some balances are unknown while a node is down".to_string(),
                )
            }
            Invariant::Settling {
                total_cents,
                expected_cents,
            } => (
                "invariant settling",
                format!(
                    "Settling {} → {}",
                    format_cents(total_cents),
                    format_cents(expected_cents)
                ),
                "a commit is applied on some nodes but not yet all".to_string(),
            ),
            Invariant::Violated {
                total_cents,
                expected_cents,
            } => (
                "invariant violated",
                format!(
                    "Total {} ≠ {} ✗",
                    format_cents(total_cents),
                    format_cents(expected_cents)
                ),
                "money was lost or created".to_string(),
            ),
        };
        view! {
            <div class=class data-testid="invariant" title=hint>{text}</div>
        }
    };

    let pill = move || {
        let (class, text) = match connection.get() {
            _ if ctx.traveling() => ("pill pill-warn", "replaying".to_string()),
            Connection::Connecting => ("pill pill-warn", "connecting…".to_string()),
            Connection::Live => ("pill pill-live", "live".to_string()),
            Connection::Reconnecting { .. } => ("pill pill-bad", "offline".to_string()),
        };
        view! { <span class=class data-testid="connection"><span class="dot"></span>{text}</span> }
    };

    let violated = move || match invariant.get() {
        Invariant::Violated { .. } => true,
        Invariant::Settling { .. } => heuristic.get() != 0,
        _ => false,
    };
    // A recorded run needs no cluster: no reconnecting banner meanwhile.
    let reconnecting = move || match connection.get() {
        Connection::Reconnecting {
            attempt,
            retry_in_ms,
        } if !ctx.traveling() => Some((attempt, retry_in_ms)),
        _ => None,
    };

    view! {
        <header class="topbar">
            <div class="brand">
                <div class="logo" aria-hidden="true">"2PC"</div>
                <div>
                    <h1>"Two-Phase Commit Bank"</h1>
                    <p class="subtitle">"Atomic transfers across processes · break it on purpose, watch it recover"</p>
                </div>
            </div>
            <div class="topbar-right">
                {pill}
                {badge}
                <a class="pill" href="/api/docs/" target="_blank" rel="noopener" data-testid="api-docs-link"
                    title="The HTTP API's interactive reference, from its OpenAPI document">"API"</a>
            </div>
        </header>
        <Show when=violated>
            <div class="banner banner-violated" role="alert" data-testid="violation-banner">
                <strong>"INVARIANT VIOLATED"</strong>
                {move || if heuristic.get() != 0 {
                    " — a heuristic decision disagreed with the coordinator: one leg of a transfer was applied and the other was not. No protocol repairs this; see the in-doubt panel."
                } else {
                    " — the sum of all balances differs from the initial total while nothing is in flight."
                }}
            </div>
        </Show>
        {move || reconnecting().map(|(attempt, retry_in_ms)| view! {
            <div class="banner banner-reconnecting" role="status" data-testid="reconnecting-banner">
                <span class="spinner" aria-hidden="true"></span>
                <strong>"Reconnecting…"</strong>
                {format!(" live updates lost; attempt {attempt}, next try in {:.1} s. The page resyncs from a fresh snapshot.", retry_in_ms as f64 / 1000.0)}
            </div>
        })}
    }
}
