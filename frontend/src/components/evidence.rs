//! Evidence: what the transaction shown in the diagram (pinned, or the
//! latest) cost and what it did: messages sent and received per process,
//! forced log writes, round trips, the time of each phase, lock waits; and
//! its own audit, each leg looked up in its account's ledger (✓, or the
//! discrepancy). It is `GET /api/transactions/{tx_id}/evidence`, computed
//! by `shared::evidence`; the page asks again when the transaction's state
//! or pending acks change, one request at a time.

use leptos::prelude::*;
use shared::api::TxState;
use shared::evidence::{Expected, TransactionEvidence, Verdict};

use crate::context::use_ctx;
use crate::format::{duration_ms, short_tx_id, state_label};
use shared::money::format_cents;

/// What the panel shows: nothing chosen yet, an answer, or why not.
#[derive(Debug, Clone, PartialEq)]
pub enum Shown {
    Nothing,
    Loading(String),
    Evidence(Box<TransactionEvidence>),
    Failed(String, String),
}

#[component]
pub fn EvidencePanel() -> impl IntoView {
    let ctx = use_ctx();
    let shown = RwSignal::new(Shown::Nothing);
    // The transaction and what of it changes its evidence.
    let key = Memo::new(move |_| {
        // A recorded moment's transactions may not exist on the live
        // cluster: evidence is read from the live one only.
        if ctx.traveling() {
            return None;
        }
        let pinned = ctx.pinned.with(|p| p.as_ref().map(|p| p.tx_id.clone()));
        ctx.model.with(|m| {
            let tx_id = pinned.or_else(|| m.latest_tx.clone())?;
            let summary = m.transactions.iter().find(|t| t.tx_id == tx_id);
            let state = summary.map(|s| s.state);
            let pending = summary.map_or(0, |s| s.pending_acks.len());
            let events = m.timeline(&tx_id).map_or(0, |t| t.events.len());
            let settled = matches!(state, Some(TxState::Committed | TxState::Aborted));
            // Until it is settled, only its first answer is asked for.
            Some((tx_id, state, pending, if settled { events } else { 0 }))
        })
    });
    let busy = StoredValue::new(false);
    let done = RwSignal::new(0u32);
    let asked = StoredValue::new(None::<(String, Option<TxState>, usize, usize)>);
    let fetch = move || {
        let Some(wanted) = key.get_untracked() else {
            return;
        };
        if busy.get_value() || asked.get_value().as_ref() == Some(&wanted) {
            return;
        }
        busy.set_value(true);
        asked.set_value(Some(wanted.clone()));
        let tx_id = wanted.0.clone();
        if !matches!(shown.get_untracked(), Shown::Evidence(ref e) if e.tx_id == tx_id) {
            shown.set(Shown::Loading(tx_id.clone()));
        }
        leptos::task::spawn_local(async move {
            let answer = crate::api::evidence(&tx_id).await;
            shown.set(match answer {
                Ok(e) => Shown::Evidence(Box::new(e)),
                Err(e) => Shown::Failed(tx_id, e.message),
            });
            busy.set_value(false);
            // The transaction may have moved on meanwhile: look again.
            done.update(|n| *n = n.wrapping_add(1));
        });
    };
    Effect::new(move |_| {
        key.track();
        done.track();
        fetch();
    });
    let refresh = move |_| {
        asked.set_value(None);
        fetch();
    };

    view! {
        <div class="panel evidence-panel" data-testid="evidence-panel">
            <div class="panel-head">
                <h3>"Evidence"</h3>
                <span class="muted small">{move || key.get().map(|(id, ..)| short_tx_id(&id)).unwrap_or_default()}</span>
                <div class="head-actions">
                    <button class="btn btn-small btn-quiet" data-testid="evidence-refresh" on:click=refresh>"Check again"</button>
                </div>
            </div>
            {move || if ctx.traveling() {
                view! { <p class="muted small" data-testid="evidence-live-only">"Evidence is read from the live cluster: press ● Live to see it."</p> }.into_any()
            } else {
                view! { <EvidenceBody shown=shown.into()/> }.into_any()
            }}
        </div>
    }
}

/// The evidence itself, from `shown` (mounted alone by the browser tests).
#[component]
pub fn EvidenceBody(shown: Signal<Shown>) -> impl IntoView {
    move || {
        match shown.get() {
        Shown::Nothing => view! { <p class="muted small">"No transaction yet — make a transfer."</p> }.into_any(),
        Shown::Loading(tx_id) => view! { <p class="muted small">{format!("Reading the evidence of {}…", short_tx_id(&tx_id))}</p> }.into_any(),
        Shown::Failed(tx_id, why) => view! {
            <p class="notice notice-bad" data-testid="evidence-error">{format!("No evidence for {}: {why}", short_tx_id(&tx_id))}</p>
        }.into_any(),
        Shown::Evidence(e) => evidence_view(*e).into_any(),
    }
    }
}

fn evidence_view(e: TransactionEvidence) -> impl IntoView {
    let cost = e.cost;
    let state = state_label(e.state);
    let audit_verdict = if e.audit.ok {
        view! { <span class="chip state-committed" data-testid="audit-verdict">"audit ✓"</span> }
            .into_any()
    } else if e
        .audit
        .checks
        .iter()
        .any(|c| c.verdict == Verdict::Discrepancy)
    {
        view! { <span class="chip state-aborted" data-testid="audit-verdict">"audit ✗ discrepancy"</span> }.into_any()
    } else {
        view! { <span class="chip" data-testid="audit-verdict">"audit not conclusive"</span> }
            .into_any()
    };
    let phases = cost
        .phases
        .iter()
        .map(|p| {
            let took = p
                .duration_ms
                .map(|ms| duration_ms(ms as f64))
                .unwrap_or_else(|| "–".to_string());
            view! { <li><span class="muted">{p.phase.label()}</span>" "<b>{took}</b></li> }
        })
        .collect_view();
    let processes = cost
        .processes
        .iter()
        .map(|p| {
            let records = if p.forced_records.is_empty() {
                "–".to_string()
            } else {
                p.forced_records.join(", ")
            };
            view! {
                <tr data-testid=format!("evidence-process-{}", p.process)>
                    <td class="mono">{p.process.clone()}</td>
                    <td>{p.sent}</td>
                    <td>{p.received}</td>
                    <td>{p.forced_writes}</td>
                    <td class="muted small">{records}</td>
                </tr>
            }
        })
        .collect_view();
    let waits = cost
        .lock_waits
        .iter()
        .map(|w| {
            let took = w
                .prepare_to_vote_ms
                .map(|ms| format!("prepare → vote {}", duration_ms(ms as f64)))
                .unwrap_or_else(|| "no vote".to_string());
            let holder = match (&w.holder, w.refused) {
                (Some(h), true) => format!(" · refused: {} held the lock", short_tx_id(h)),
                (None, true) => " · refused: lock conflict".to_string(),
                (Some(h), false) => format!(
                    " · waited {} for {}",
                    duration_ms(w.waited_ms as f64),
                    short_tx_id(h)
                ),
                (None, false) => " · no lock wait".to_string(),
            };
            view! { <li><span class="mono">{w.node.clone()}</span>" "{took}{holder}</li> }
        })
        .collect_view();
    let checks = e
        .audit
        .checks
        .iter()
        .map(|c| {
            let (mark, class) = match c.verdict {
                Verdict::Ok => ("✓", "audit-ok"),
                Verdict::Discrepancy => ("✗", "audit-bad"),
                Verdict::Unknown => ("?", "audit-unknown"),
            };
            let expected = match c.expected {
                Expected::Once => "once",
                Expected::Nowhere => "nowhere",
                Expected::Undecided => "undecided",
            };
            view! {
                <li class=class data-testid=format!("audit-{}", c.account)>
                    <span class="audit-mark">{mark}</span>" "
                    <span class="mono">{format!("{} {}", c.account, format_cents(c.delta_cents))}</span>
                    <span class="muted small">{format!(" on {} · expected {expected} · ", c.node)}</span>
                    <span class="audit-detail">{c.detail.clone()}</span>
                </li>
            }
        })
        .collect_view();
    let answer = cost
        .answer_ms
        .map(duration_ms)
        .unwrap_or_else(|| "–".to_string());
    view! {
        <div class="evidence" data-testid="evidence">
            <div class="evidence-head">
                <span class="mono">{short_tx_id(&e.tx_id)}</span>
                <span class=format!("chip state-{state}")>{state}</span>
                {audit_verdict}
            </div>
            <div class="kpis">
                <div class="kpi"><span class="kpi-value" data-testid="evidence-messages">{cost.messages}</span><span class="kpi-label">"messages"</span></div>
                <div class="kpi"><span class="kpi-value" data-testid="evidence-forced">{cost.forced_writes}</span><span class="kpi-label">"forced writes"</span></div>
                <div class="kpi"><span class="kpi-value" data-testid="evidence-round-trips">{cost.round_trips}</span><span class="kpi-label">"round trips"</span></div>
                <div class="kpi"><span class="kpi-value">{answer}</span><span class="kpi-label">"client's wait"</span></div>
            </div>
            <div class="evidence-grid">
                <table class="evidence-table">
                    <thead><tr><th>"process"</th><th>"sent"</th><th>"received"</th><th>"forced"</th><th>"records"</th></tr></thead>
                    <tbody>{processes}</tbody>
                </table>
                <div>
                    <div class="sub-head">"Phases"</div>
                    <ul class="evidence-list" data-testid="evidence-phases">{phases}</ul>
                    <div class="sub-head">"Locks"</div>
                    <ul class="evidence-list" data-testid="evidence-locks">{waits}</ul>
                </div>
            </div>
            <div class="sub-head">"Audit: each leg in its ledger"</div>
            <ul class="evidence-list audit-list" data-testid="evidence-audit">{checks}</ul>
        </div>
    }
}
