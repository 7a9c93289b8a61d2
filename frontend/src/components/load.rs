//! The concurrency demo: N random transfers (random directions and
//! amounts), C at a time, from this browser; a progress bar and a summary
//! (committed / aborted by reason / failed). Conflicting transfers on the
//! same accounts show lock conflicts; the invariant banner shows that no
//! money was created or lost.

use std::cell::Cell;
use std::rc::Rc;

use leptos::prelude::*;

use crate::api;
use crate::components::fields::{Count, NumberField};
use crate::context::{now_ms, use_ctx};
use crate::format::{duration_ms, percent};
use crate::load::{parse_plan, random_transfer, LoadResult, LoadSummary};

#[derive(Debug, Clone, PartialEq)]
struct Run {
    id: u64,
    summary: LoadSummary,
    started_at_ms: u64,
    finished_at_ms: Option<u64>,
    stopped: bool,
}

#[component]
pub fn LoadPanel() -> impl IntoView {
    let ctx = use_ctx();
    let transfers_text = RwSignal::new("100".to_string());
    let concurrency_text = RwSignal::new("8".to_string());
    let error = RwSignal::new(None::<String>);
    let run = RwSignal::new(None::<Run>);
    let run_counter = StoredValue::new(0u64);
    // Set to stop the current run's workers; each run gets a fresh flag.
    let stop_flag = StoredValue::new_local(Rc::new(Cell::new(false)));

    let running = move || run.with(|r| r.as_ref().is_some_and(|r| r.finished_at_ms.is_none()));

    let start = move |_| {
        let plan = match parse_plan(
            &transfers_text.get_untracked(),
            &concurrency_text.get_untracked(),
        ) {
            Ok(plan) => plan,
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        let accounts: Vec<String> = ctx
            .model
            .with_untracked(|m| m.accounts.iter().map(|a| a.id.clone()).collect());
        if accounts.len() < 2 {
            error.set(Some("the demo needs at least two accounts".to_string()));
            return;
        }
        error.set(None);
        let id = run_counter.get_value() + 1;
        run_counter.set_value(id);
        let stop = Rc::new(Cell::new(false));
        stop_flag.set_value(Rc::clone(&stop));
        run.set(Some(Run {
            id,
            summary: LoadSummary::new(plan.transfers),
            started_at_ms: now_ms(),
            finished_at_ms: None,
            stopped: false,
        }));

        let next_index = Rc::new(Cell::new(0u32));
        let workers_left = Rc::new(Cell::new(plan.concurrency));
        for _ in 0..plan.concurrency {
            let (next_index, workers_left, stop, accounts) = (
                Rc::clone(&next_index),
                Rc::clone(&workers_left),
                Rc::clone(&stop),
                accounts.clone(),
            );
            leptos::task::spawn_local(async move {
                loop {
                    if stop.get() || next_index.get() >= plan.transfers {
                        break;
                    }
                    next_index.set(next_index.get() + 1);
                    let Some(request) = random_transfer(&accounts, &mut js_sys::Math::random)
                    else {
                        break;
                    };
                    let result = match api::transfer(&request).await {
                        Ok(response) => LoadResult::Answered(response),
                        Err(e) if e.is_unavailable() => {
                            LoadResult::Failed("coordinator down (503)".to_string())
                        }
                        Err(e) => LoadResult::Failed(match e.status {
                            Some(status) => format!("HTTP {status}"),
                            None => "no answer".to_string(),
                        }),
                    };
                    run.update(|r| {
                        if let Some(r) = r.as_mut().filter(|r| r.id == id) {
                            r.summary.record(&result);
                        }
                    });
                }
                workers_left.set(workers_left.get() - 1);
                if workers_left.get() == 0 {
                    run.update(|r| {
                        if let Some(r) = r.as_mut().filter(|r| r.id == id) {
                            r.finished_at_ms = Some(now_ms());
                            r.stopped = stop.get();
                        }
                    });
                    ctx.refresh_cluster_soon();
                }
            });
        }
    };
    let stop = move |_| stop_flag.with_value(|flag| flag.set(true));

    let progress = move || {
        run.get().map(|r| {
            let s = &r.summary;
            let elapsed_ms = r.finished_at_ms.unwrap_or_else(now_ms).saturating_sub(r.started_at_ms);
            let rate = if elapsed_ms > 0 { s.done as f64 * 1000.0 / elapsed_ms as f64 } else { 0.0 };
            let state = match (r.finished_at_ms, r.stopped) {
                (None, _) => "running",
                (Some(_), true) => "stopped",
                (Some(_), false) => "done",
            };
            let reasons = s
                .aborted_by_reason
                .iter()
                .map(|(reason, n)| view! { <li><span>{reason.clone()}</span><strong>{*n}</strong></li> })
                .collect_view();
            let failures = s
                .failed_by_error
                .iter()
                .map(|(error, n)| view! { <li class="failed"><span>{error.clone()}</span><strong>{*n}</strong></li> })
                .collect_view();
            let commit_rate = if s.done > 0 { percent(s.committed as f64 / s.done as f64) } else { "–".to_string() };
            view! {
                <div class="load-run" data-testid="load-summary" data-state=state>
                    <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax=s.planned aria-valuenow=s.done data-testid="load-progress">
                        <div class="progress-bar" class:is-done=r.finished_at_ms.is_some() style=format!("width: {:.1}%", s.progress() * 100.0)></div>
                    </div>
                    <div class="load-line">
                        <span>{format!("{} / {} · {state}", s.done, s.planned)}</span>
                        <span class="muted">{format!("{rate:.0} tx/s · {}", duration_ms(elapsed_ms as f64))}</span>
                    </div>
                    <div class="load-counts">
                        <Count value=s.committed.to_string() label="committed" tone="good" test_id="load-committed"/>
                        <Count value=s.aborted().to_string() label="aborted" tone="bad" test_id="load-aborted"/>
                        <Count value=s.failed().to_string() label="failed" tone="warn"/>
                        <Count value=commit_rate label="commit rate"/>
                    </div>
                    <ul class="load-reasons">{reasons}{failures}</ul>
                </div>
            }
        })
    };

    view! {
        <div class="panel" data-testid="load-panel">
            <div class="panel-head">
                <h3>"Concurrency demo"</h3>
                <span class="muted small">"random transfers, many at once"</span>
            </div>
            <div class="row-inline">
                <NumberField label="Transfers" test_id="load-count" text=transfers_text/>
                <NumberField label="At once" test_id="load-concurrency" text=concurrency_text/>
                {move || if running() {
                    view! { <button class="btn btn-danger" data-testid="load-stop" on:click=stop>"Stop"</button> }.into_any()
                } else {
                    view! { <button class="btn btn-primary" data-testid="load-start" on:click=start>"Run"</button> }.into_any()
                }}
            </div>
            {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            {progress}
        </div>
    }
}
