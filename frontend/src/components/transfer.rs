//! The transfer form (from, to, amount in dollars, validated here and by
//! the server) and the result card: outcome, reason, each node's vote and
//! the duration. A 503 (coordinator recovering) offers a retry with the same
//! transaction id, which can never transfer twice.

use leptos::prelude::*;
use shared::api::{Outcome, TransferRequest, TransferResponse, TxState, VoteView};
use shared::money::format_cents;

use crate::api::{self, ApiError};
use crate::context::{now_ms, use_ctx, Ctx};
use crate::format::{duration_ms, outcome_label, reason_label, short_tx_id, vote_label, Tone};
use crate::validate::{client_tx_id, transfer_request};

/// One-click amounts; the last one exceeds a starting balance on purpose.
const QUICK_AMOUNTS: [&str; 4] = ["10", "100", "250", "1500"];

#[derive(Debug, Clone, PartialEq)]
enum Sent {
    Pending(TransferRequest),
    Answered(TransferRequest, TransferResponse),
    Failed(TransferRequest, ApiError),
}

fn send(ctx: Ctx, request: TransferRequest, result: RwSignal<Option<Sent>>) {
    result.set(Some(Sent::Pending(request.clone())));
    leptos::task::spawn_local(async move {
        let sent = match api::transfer(&request).await {
            Ok(response) => Sent::Answered(request, response),
            Err(error) => Sent::Failed(request, error),
        };
        result.set(Some(sent));
        ctx.refresh_cluster_soon();
    });
}

#[component]
pub fn TransferPanel() -> impl IntoView {
    let ctx = use_ctx();
    let accounts = Memo::new(move |_| ctx.model.with(|m| m.accounts.clone()));
    let from = RwSignal::new(String::new());
    let to = RwSignal::new(String::new());
    let amount = RwSignal::new("100".to_string());
    let error = RwSignal::new(None::<String>);
    let result = RwSignal::new(None::<Sent>);

    // Sensible defaults once the accounts are known: the first two.
    Effect::new(move |_| {
        let list = accounts.get();
        let known = |id: &String| list.iter().any(|a| &a.id == id);
        if !known(&from.get_untracked()) {
            if let Some(first) = list.first() {
                from.set(first.id.clone());
            }
        }
        if !known(&to.get_untracked()) || to.get_untracked() == from.get_untracked() {
            if let Some(other) = list.iter().find(|a| a.id != from.get_untracked()) {
                to.set(other.id.clone());
            }
        }
    });

    let pending = move || matches!(result.get(), Some(Sent::Pending(_)));
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending() {
            return;
        }
        let tx_id = client_tx_id(now_ms(), &mut js_sys::Math::random);
        match transfer_request(
            &from.get_untracked(),
            &to.get_untracked(),
            &amount.get_untracked(),
            Some(tx_id),
        ) {
            Ok(request) => {
                error.set(None);
                send(ctx, request, result);
            }
            Err(e) => error.set(Some(e.to_string())),
        }
    };
    let swap = move |_| {
        let (a, b) = (from.get_untracked(), to.get_untracked());
        from.set(b);
        to.set(a);
    };

    let options = move |selected: RwSignal<String>| {
        accounts
            .get()
            .into_iter()
            .map(|a| {
                let id = a.id.clone();
                let label = format!("{} — {}", a.id, format_cents(a.balance_cents));
                view! { <option value=id.clone() selected=move || selected.get() == id>{label}</option> }
            })
            .collect_view()
    };

    view! {
        <div class="panel" data-testid="transfer-panel">
            <div class="panel-head">
                <h3>"Transfer"</h3>
                <span class="muted small">"atomic across nodes"</span>
            </div>
            <form class="transfer-form" on:submit=submit novalidate>
                <div class="row-2">
                    <label class="field">
                        <span>"From"</span>
                        <select data-testid="transfer-from" on:change=move |ev| from.set(event_target_value(&ev))>
                            {move || options(from)}
                        </select>
                    </label>
                    <button type="button" class="btn btn-icon swap" title="swap" aria-label="swap accounts" on:click=swap>"⇄"</button>
                    <label class="field">
                        <span>"To"</span>
                        <select data-testid="transfer-to" on:change=move |ev| to.set(event_target_value(&ev))>
                            {move || options(to)}
                        </select>
                    </label>
                </div>
                <label class="field">
                    <span>"Amount"</span>
                    <div class="money-input" class:invalid=move || error.get().is_some()>
                        <span class="prefix">"$"</span>
                        <input
                            data-testid="transfer-amount"
                            inputmode="decimal"
                            autocomplete="off"
                            placeholder="100.00"
                            prop:value=move || amount.get()
                            on:input=move |ev| {
                                amount.set(event_target_value(&ev));
                                error.set(None);
                            }
                        />
                    </div>
                </label>
                <div class="quick">
                    {QUICK_AMOUNTS.iter().map(|q| {
                        let q = q.to_string();
                        let label = format_cents(q.parse::<i64>().unwrap_or(0) * 100);
                        view! { <button type="button" class="chip chip-button" on:click=move |_| { amount.set(q.clone()); error.set(None); }>{label}</button> }
                    }).collect_view()}
                </div>
                {move || error.get().map(|e| view! { <p class="form-error" role="alert" data-testid="transfer-error">{e}</p> })}
                <button type="submit" class="btn btn-primary btn-wide" data-testid="transfer-submit" disabled=pending>
                    {move || if pending() { "Running Two-Phase Commit…" } else { "Transfer" }}
                </button>
            </form>
            {move || result.get().map(|sent| view! { <ResultCard sent=sent result=result/> })}
        </div>
    }
}

#[component]
fn ResultCard(sent: Sent, result: RwSignal<Option<Sent>>) -> impl IntoView {
    let ctx = use_ctx();
    match sent {
        Sent::Pending(request) => view! {
            <div class="result result-pending" data-testid="transfer-result" data-outcome="pending">
                <span class="spinner" aria-hidden="true"></span>
                {format!("{} → {} {} — running Two-Phase Commit…", request.from, request.to, format_cents(request.amount_cents))}
            </div>
        }
        .into_any(),
        Sent::Answered(request, response) => {
            let committed = response.outcome == Outcome::Committed;
            let tx_id = response.tx_id.clone();
            let votes = response
                .votes
                .iter()
                .map(|v| {
                    let class = match v.vote {
                        VoteView::Ready => "vote vote-ready",
                        VoteView::Abort => "vote vote-abort",
                        VoteView::NoAnswer => "vote vote-silent",
                    };
                    let text = match v.reason {
                        Some(reason) => format!("{} · {}", vote_label(v.vote), reason_label(reason)),
                        None => vote_label(v.vote).to_string(),
                    };
                    view! { <li class=class><span class="vote-node">{format!("node {}", v.node)}</span><span>{text}</span></li> }
                })
                .collect_view();
            view! {
                <div class="result" class:result-committed=committed class:result-aborted=!committed
                    data-testid="transfer-result" data-outcome=outcome_label(response.outcome)>
                    <div class="result-head">
                        <span class="outcome" data-testid="transfer-outcome">{outcome_label(response.outcome).to_uppercase()}</span>
                        <span class="result-amount">{format!("{} → {} {}", request.from, request.to, format_cents(request.amount_cents))}</span>
                    </div>
                    {response.reason.map(|r| view! {
                        <p class="result-reason" data-testid="transfer-reason">
                            <span class="chip chip-bad">{reason_label(r)}</span>
                            {response.detail.clone().map(|d| view! { <span class="result-detail">{d}</span> })}
                        </p>
                    })}
                    <ul class="votes" data-testid="transfer-votes">{votes}</ul>
                    <div class="result-foot">
                        <span>{format!("took {}", duration_ms(response.duration_ms))}</span>
                        <button class="link mono" title=tx_id.clone() on:click=move |_| ctx.pin(tx_id.clone())>
                            {format!("{} · show diagram", short_tx_id(&response.tx_id))}
                        </button>
                    </div>
                </div>
            }
            .into_any()
        }
        Sent::Failed(request, error) => {
            let retryable = error.is_unavailable() || error.status.is_none();
            let retry_request = request.clone();
            // The coordinator went down with this transfer in its hands:
            // follow it in the live history, which recovery will finish.
            let watched = request.tx_id.clone().filter(|_| error.is_unavailable());
            let fate = move || {
                let tx_id = watched.clone()?;
                let row = ctx
                    .model
                    .with(|m| m.transactions.iter().find(|t| t.tx_id == tx_id).cloned())?;
                let (text, tone) = fate_text(row.state, row.pending_acks.is_empty());
                Some(view! {
                    <p class=format!("result-fate {}", tone.class()) data-testid="transfer-fate"
                        data-state=crate::format::state_label(row.state)>{text}</p>
                })
            };
            view! {
                <div class="result result-failed" data-testid="transfer-result" data-outcome="error">
                    <div class="result-head">
                        <span class="outcome">{if error.is_unavailable() { "COORDINATOR DOWN" } else { "NOT SENT" }}</span>
                    </div>
                    <p class="result-reason" data-testid="transfer-reason">{error.to_string()}</p>
                    {fate}
                    {retryable.then(|| view! {
                        <div class="result-foot">
                            <span class="muted small">"A retry reuses the same transaction id, so it can never move money twice."</span>
                            <button class="btn" on:click=move |_| send(ctx, retry_request.clone(), result)>"Retry"</button>
                        </div>
                    })}
                </div>
            }
            .into_any()
        }
    }
}

/// What became of a transfer whose client got no answer because the
/// coordinator went down: its state in the history (`pending_acks_done`:
/// every node acknowledged), as a sentence and a tone.
pub fn fate_text(state: TxState, pending_acks_done: bool) -> (&'static str, Tone) {
    match state {
        TxState::Committed if pending_acks_done => (
            "Committed: recovery finished it. The coordinator's log held the COMMIT record, so after its restart it told every node to commit, and every node has acknowledged.",
            Tone::Good,
        ),
        TxState::Committed => (
            "Committed, though no one was told: the COMMIT record reached the coordinator's log before the crash, and that record is the commit point. The nodes cannot know it yet: they voted ready, so they wait in doubt with the accounts locked until the recovered coordinator tells them. This card updates itself when they are told.",
            Tone::Warn,
        ),
        TxState::Aborted => (
            "Aborted by recovery: there was no COMMIT record in the coordinator's log, so the restarted coordinator presumed abort and told the nodes to roll back. No money moved.",
            Tone::Bad,
        ),
        TxState::Active | TxState::Prepared => (
            "Not decided yet: no COMMIT record was written before the crash. The nodes that voted ready wait in doubt; the restarted coordinator will presume abort. This card updates itself.",
            Tone::Warn,
        ),
    }
}
