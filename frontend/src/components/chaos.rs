//! "Run chaos": the `chaos` command's fault loop and audit, run by the demo
//! coordinator on its own cluster (`POST /api/chaos`). Duration, clients and
//! the mean pause between faults; while it runs, the requests by answer and
//! the faults as they land (polled from `GET /api/chaos`; each fault also
//! shows in the event log); then PASS or FAIL with the audit's figures.

use std::time::Duration;

use leptos::prelude::*;
use shared::api::{ChaosRequest, ChaosRun, ChaosState};
use shared::limits::{
    CHAOS_CLIENTS_MAX, CHAOS_FAULT_INTERVAL_MS_MAX, CHAOS_FAULT_INTERVAL_MS_MIN, CHAOS_SECONDS_MAX,
};

use crate::api;
use crate::components::fields::{Count, NumberField};
use crate::context::use_ctx;
use shared::money::format_cents as cents;

/// How often the panel reads the run while it runs.
const CHAOS_POLL_MS: u64 = 500;
/// Faults listed under the run, newest last.
const FAULTS_SHOWN: usize = 8;

/// The form's three numbers, checked against the API's bounds.
pub fn parse_request(
    seconds: &str,
    clients: &str,
    fault_interval_ms: &str,
) -> Result<ChaosRequest, String> {
    let number = |text: &str, what: &str, min: u64, max: u64| -> Result<u64, String> {
        match text.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("{what} must be a whole number from {min} to {max}")),
        }
    };
    Ok(ChaosRequest {
        seconds: number(seconds, "Seconds", 1, CHAOS_SECONDS_MAX)?,
        clients: number(clients, "Clients", 1, u64::from(CHAOS_CLIENTS_MAX))? as u32,
        fault_interval_ms: number(
            fault_interval_ms,
            "Fault every (ms)",
            CHAOS_FAULT_INTERVAL_MS_MIN,
            CHAOS_FAULT_INTERVAL_MS_MAX,
        )?,
        seed: None,
    })
}

fn busy(run: &ChaosRun) -> bool {
    matches!(run.state, ChaosState::Running | ChaosState::Settling)
}

#[component]
pub fn ChaosPanel() -> impl IntoView {
    let ctx = use_ctx();
    let seconds_text = RwSignal::new("10".to_string());
    let clients_text = RwSignal::new("4".to_string());
    let interval_text = RwSignal::new("700".to_string());
    let error = RwSignal::new(None::<String>);
    let run = RwSignal::new(None::<ChaosRun>);

    let read = move || {
        leptos::task::spawn_local(async move {
            if let Ok(now) = api::chaos().await {
                let finished = run.with_untracked(|r| r.as_ref().is_some_and(busy))
                    && now.state == ChaosState::Finished;
                run.set(Some(now));
                if finished {
                    ctx.refresh_cluster_soon();
                }
            }
        });
    };
    // A reload shows a run in progress, or the last verdict.
    read();
    let timer = set_interval_with_handle(
        move || {
            if run.with_untracked(|r| r.as_ref().is_some_and(busy)) {
                read();
            }
        },
        Duration::from_millis(CHAOS_POLL_MS),
    )
    .ok();
    on_cleanup(move || {
        if let Some(timer) = timer {
            timer.clear();
        }
    });

    let start = move |_| {
        let request = match parse_request(
            &seconds_text.get_untracked(),
            &clients_text.get_untracked(),
            &interval_text.get_untracked(),
        ) {
            Ok(request) => request,
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::start_chaos(&request).await {
                Ok(started) => run.set(Some(started)),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    let stop = move |_| {
        leptos::task::spawn_local(async move {
            if let Err(e) = api::stop_chaos().await {
                error.set(Some(e.to_string()));
            }
            read();
        });
    };
    let running = move || run.with(|r| r.as_ref().is_some_and(|r| r.state == ChaosState::Running));
    let settling =
        move || run.with(|r| r.as_ref().is_some_and(|r| r.state == ChaosState::Settling));

    let progress = move || {
        run.get().filter(|r| r.state != ChaosState::Idle).map(|r| {
            let state = match r.state {
                ChaosState::Idle => "idle",
                ChaosState::Running => "running",
                ChaosState::Settling => "settling",
                ChaosState::Finished => "finished",
            };
            let total_faults: u64 = r.faults.values().sum();
            let fraction = (r.elapsed_ms as f64 / (r.seconds.max(1) * 1000) as f64).min(1.0);
            let faults = r
                .recent_faults
                .iter()
                .rev()
                .take(FAULTS_SHOWN)
                .map(|f| view! {
                    <li><span class="mono">{format!("{:>5.1}s", f.at_ms as f64 / 1000.0)}</span>" "<span>{f.kind.clone()}</span>" "<span class="muted">{f.node.clone()}</span></li>
                })
                .collect_view();
            let status_line = match r.state {
                ChaosState::Running => format!("{:.1} / {} s · running{}", r.elapsed_ms as f64 / 1000.0, r.seconds, if r.stopped { " (stopping)" } else { "" }),
                ChaosState::Settling => "faults stopped · healing links, restarting nodes, settling, auditing…".to_string(),
                _ => format!("{:.1} s{} · seed {}", r.elapsed_ms as f64 / 1000.0, if r.stopped { " (stopped early)" } else { "" }, r.seed),
            };
            let verdict = r.verdict.clone().map(|v| {
                let (class, label) = if v.pass { ("verdict pass", "PASS") } else { ("verdict fail", "FAIL") };
                let violations = v.violations.iter().map(|line| view! { <li>{line.clone()}</li> }).collect_view();
                view! {
                    <div class=class data-testid="chaos-verdict" data-pass=v.pass.to_string()>
                        <strong class="verdict-label">{label}</strong>
                        <ul class="verdict-figures">
                            <li data-testid="chaos-committed">{format!("{} of {} committed transfers on both ledgers", v.committed_on_both_ledgers, v.committed)}</li>
                            <li data-testid="chaos-aborted">{format!("{} of {} aborted transfers on no ledger", v.aborted_on_no_ledger, v.aborted)}</li>
                            <li data-testid="chaos-total">{format!("total {} (expected {}){}", cents(v.total_cents), cents(v.expected_total_cents), if v.total_cents == v.expected_total_cents { ", conserved" } else { "" })}</li>
                            <li>{format!("{} violations", v.violation_count)}</li>
                        </ul>
                        <ul class="verdict-violations">{violations}</ul>
                    </div>
                }
            });
            view! {
                <div class="load-run" data-testid="chaos-run" data-state=state>
                    <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow=format!("{:.0}", fraction * 100.0)>
                        <div class="progress-bar" class:is-done=r.state == ChaosState::Finished style=format!("width: {:.1}%", fraction * 100.0)></div>
                    </div>
                    <div class="load-line"><span>{status_line}</span></div>
                    <div class="load-counts chaos-counts">
                        <Count value=r.requests.to_string() label="requests" test_id="chaos-requests"/>
                        <Count value=r.committed.to_string() label="committed" tone="good"/>
                        <Count value=r.aborted.to_string() label="aborted" tone="bad"/>
                        <Count value=r.unknown.to_string() label="503 / cut" tone="warn"/>
                        <Count value=total_faults.to_string() label="faults" test_id="chaos-faults"/>
                    </div>
                    <ul class="load-reasons chaos-faults">{faults}</ul>
                    {verdict}
                </div>
            }
        })
    };

    view! {
        <div class="panel" data-testid="chaos-panel">
            <div class="panel-head">
                <h3>"Run chaos"</h3>
                <span class="muted small">"kill -9, engine crashes, cut and slow links under load; then an audit"</span>
            </div>
            <div class="row-inline">
                <NumberField label="Seconds" test_id="chaos-seconds" text=seconds_text/>
                <NumberField label="Clients" test_id="chaos-clients" text=clients_text/>
                <NumberField label="Fault every (ms)" test_id="chaos-interval" text=interval_text/>
                {move || if running() {
                    view! { <button class="btn btn-danger" data-testid="chaos-stop" on:click=stop>"Stop"</button> }.into_any()
                } else {
                    view! { <button class="btn btn-primary" data-testid="chaos-start" disabled=settling on:click=start>"Run chaos"</button> }.into_any()
                }}
            </div>
            {move || error.get().map(|e| view! { <p class="form-error" role="alert" data-testid="chaos-error">{e}</p> })}
            {progress}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_checked_against_the_api_bounds() {
        let ok = parse_request("10", " 4 ", "700").expect("valid");
        assert_eq!((ok.seconds, ok.clients, ok.fault_interval_ms), (10, 4, 700));
        assert!(parse_request("0", "4", "700")
            .unwrap_err()
            .starts_with("Seconds"));
        assert!(parse_request("10", "99", "700")
            .unwrap_err()
            .starts_with("Clients"));
        assert!(parse_request("10", "4", "5")
            .unwrap_err()
            .starts_with("Fault every"));
        assert!(parse_request("ten", "4", "700").is_err());
    }
}
