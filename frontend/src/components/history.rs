//! Recent transactions (the snapshot, then live `tx_started`/`tx_finished`
//! events); clicking one pins it in the protocol view with its timeline.

use leptos::prelude::*;
use shared::api::TransactionSummary;
use shared::money::format_cents;

use crate::context::use_ctx;
use crate::format::{clock_ms, duration_ms, reason_label, short_tx_id, state_label};

#[component]
pub fn HistoryPanel() -> impl IntoView {
    let ctx = use_ctx();
    let rows = Memo::new(move |_| ctx.model.with(|m| m.transactions.clone()));
    let pinned_id = Memo::new(move |_| ctx.pinned.with(|p| p.as_ref().map(|p| p.tx_id.clone())));
    let offset = -(js_sys::Date::new_0().get_timezone_offset() as i64);
    // Each row shows live state, so the key includes what can change.
    let key = |t: &TransactionSummary| {
        format!(
            "{}|{:?}|{:?}|{:?}|{}",
            t.tx_id,
            t.state,
            t.reason,
            t.duration_ms,
            t.pending_acks.len()
        )
    };

    view! {
        <div class="panel" data-testid="history-panel">
            <div class="panel-head">
                <h3>"History"</h3>
                <span class="muted small">"click a transaction to see its diagram and timeline"</span>
            </div>
            <div class="table-scroll">
                <table class="history" data-testid="history-table">
                    <thead>
                        <tr><th>"time"</th><th>"transaction"</th><th>"transfer"</th><th class="num">"amount"</th><th>"outcome"</th><th class="num">"took"</th></tr>
                    </thead>
                    <tbody>
                        <For each=move || rows.get() key=key let:t>
                            {
                                let tx_id = t.tx_id.clone();
                                let is_pinned = {
                                    let tx_id = tx_id.clone();
                                    move || pinned_id.get().as_deref() == Some(tx_id.as_str())
                                };
                                let state = state_label(t.state);
                                let reason = t.reason.map(|r| format!(" · {}", reason_label(r))).unwrap_or_default();
                                let pending = (!t.pending_acks.is_empty()).then(|| format!(" · awaiting ack from {}", t.pending_acks.join(", ")));
                                let testid = format!("history-row-{}", t.tx_id);
                                view! {
                                    <tr class="clickable" class:is-pinned=is_pinned data-testid=testid on:click=move |_| ctx.pin(tx_id.clone())>
                                        <td class="mono muted">{clock_ms(t.started_at_ms, offset)}</td>
                                        <td class="mono" title=t.tx_id.clone()>{short_tx_id(&t.tx_id)}</td>
                                        <td>{format!("{} → {}", t.from, t.to)}</td>
                                        <td class="num">{format_cents(t.amount_cents)}</td>
                                        <td><span class=format!("chip state-{state}")>{format!("{state}{reason}")}</span><span class="muted small">{pending}</span></td>
                                        <td class="num muted">{t.duration_ms.map(duration_ms).unwrap_or_else(|| "…".to_string())}</td>
                                    </tr>
                                }
                            }
                        </For>
                    </tbody>
                </table>
                {move || rows.with(|r| r.is_empty()).then(|| view! { <p class="muted empty">"No transactions yet."</p> })}
            </div>
        </div>
    }
}
