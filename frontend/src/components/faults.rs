//! Cluster-wide failure controls: crash the coordinator at a chosen step of
//! the protocol (it recovers from its log after a delay), the original
//! demo's random crash during prepare, and step mode: either a timed pause
//! after the votes and after the decision, or the hold, where the
//! coordinator keeps every protocol message until "Next" lets it go (or a
//! person drops, duplicates or delays it). Per-node buttons live on the
//! node cards.

use leptos::prelude::*;
use shared::api::{CoordinatorCrashRequest, CrashPoint, FaultsUpdate};

use crate::api;
use crate::components::cluster::run_command;
use crate::components::held::HeldMessagesPanel;
use crate::context::use_ctx;
use crate::format::percent;

/// Restart delays offered for an injected coordinator crash.
const RESTART_AFTER_MS_CHOICES: [u64; 3] = [3_000, 5_000, 10_000];
/// Pauses offered by step mode.
const PHASE_PAUSE_MS_CHOICES: [u64; 3] = [2_000, 4_000, 8_000];

fn crash_point_from(value: &str) -> CrashPoint {
    match value {
        "after_decision" => CrashPoint::AfterDecision,
        "mid_commit" => CrashPoint::MidCommit,
        _ => CrashPoint::BeforeDecision,
    }
}

#[component]
pub fn FaultsPanel() -> impl IntoView {
    let ctx = use_ctx();
    let faults = Memo::new(move |_| ctx.model.with(|m| m.faults.clone()));
    let demo_mode = Memo::new(move |_| {
        ctx.model
            .with(|m| m.cluster.as_ref().map(|c| c.coordinator.demo_mode))
    });

    let crash_point = RwSignal::new("after_decision".to_string());
    let restart_after_ms = RwSignal::new(RESTART_AFTER_MS_CHOICES[0]);
    let crash_busy = RwSignal::new(false);
    let arm = move |_| {
        let request = CoordinatorCrashRequest {
            at: crash_point_from(&crash_point.get_untracked()),
            restart_after_ms: restart_after_ms.get_untracked(),
        };
        run_command(
            ctx,
            crash_busy,
            "Arm coordinator crash".to_string(),
            async move { api::crash_coordinator(&request).await },
        );
    };

    // The slider shows the server's value until a person moves it.
    let probability_percent = RwSignal::new(0u32);
    Effect::new(move |_| {
        probability_percent.set((faults.get().prepare_crash_probability * 100.0).round() as u32)
    });
    let chaos_busy = RwSignal::new(false);
    let apply_probability = move |value: u32| {
        let update = FaultsUpdate {
            prepare_crash_probability: Some(value as f64 / 100.0),
            ..Default::default()
        };
        run_command(
            ctx,
            chaos_busy,
            format!("Prepare crash probability {value}%"),
            async move { api::update_faults(&update).await },
        );
    };

    let pause_choice = RwSignal::new(PHASE_PAUSE_MS_CHOICES[0]);
    let step_busy = RwSignal::new(false);
    let step_on = move || faults.get().phase_pause_ms > 0;
    let set_step = move |pause_ms: u64| {
        let update = FaultsUpdate {
            phase_pause_ms: Some(pause_ms),
            ..Default::default()
        };
        let label = if pause_ms > 0 {
            format!("Step mode: pause {} s", pause_ms / 1000)
        } else {
            "Step mode off".to_string()
        };
        run_command(ctx, step_busy, label, async move {
            api::update_faults(&update).await
        });
    };

    let hold_busy = RwSignal::new(false);
    let hold_on = move || faults.get().hold_messages;
    let set_hold = move |hold: bool| {
        let update = FaultsUpdate {
            hold_messages: Some(hold),
            ..Default::default()
        };
        let label = if hold {
            "Hold every message".to_string()
        } else {
            "Hold off: every held message goes on".to_string()
        };
        run_command(ctx, hold_busy, label, async move {
            api::update_faults(&update).await
        });
    };

    view! {
        <div class="panel" data-testid="faults-panel">
            <div class="panel-head">
                <h3>"Break things"</h3>
                <span class="muted small">"node buttons are on each card"</span>
            </div>
            {move || (demo_mode.get() == Some(false)).then(|| view! {
                <p class="notice notice-bad" data-testid="demo-mode-off">
                    "Fault injection is disabled: the coordinator is not in demo mode (restart it with "
                    <code>"--demo"</code>"). Buttons will be refused with 403."
                </p>
            })}

            <div class="control">
                <div class="control-title">"Crash the coordinator"</div>
                <p class="muted small">"The next transaction that reaches this step crashes the coordinator's engine; it recovers from its log."</p>
                <select data-testid="coord-crash-point" on:change=move |ev| crash_point.set(event_target_value(&ev))>
                        <option value="before_decision" selected=move || crash_point.get() == "before_decision">"before the decision (votes in, nothing logged)"</option>
                        <option value="after_decision" selected=move || crash_point.get() == "after_decision">"after the decision (COMMIT logged, nothing sent)"</option>
                        <option value="mid_commit" selected=move || crash_point.get() == "mid_commit">"mid-commit (commit sent to the first node only)"</option>
                </select>
                <div class="row-inline">
                    <select data-testid="coord-restart-after" title="restart after"
                        on:change=move |ev| restart_after_ms.set(event_target_value(&ev).parse().unwrap_or(RESTART_AFTER_MS_CHOICES[0]))>
                        {RESTART_AFTER_MS_CHOICES.iter().map(|ms| {
                            let ms = *ms;
                            view! { <option value=ms.to_string() selected=move || restart_after_ms.get() == ms>{format!("restart after {} s", ms / 1000)}</option> }
                        }).collect_view()}
                    </select>
                    <button class="btn btn-danger" data-testid="coord-crash-arm" disabled=move || crash_busy.get() on:click=arm>"Arm"</button>
                </div>
            </div>

            <div class="control">
                <div class="control-title">
                    "Random crash during prepare "
                    <span class="value" data-testid="prepare-crash-value">{move || percent(probability_percent.get() as f64 / 100.0)}</span>
                </div>
                <p class="muted small">"The original demo crashed a participant in 30% of prepares."</p>
                <input type="range" min="0" max="100" step="5" class="slider" data-testid="prepare-crash-prob"
                    disabled=move || chaos_busy.get()
                    prop:value=move || probability_percent.get().to_string()
                    on:input=move |ev| probability_percent.set(event_target_value(&ev).parse().unwrap_or(0))
                    on:change=move |ev| apply_probability(event_target_value(&ev).parse().unwrap_or(0))
                />
                <div class="quick">
                    <button class="chip chip-button" on:click=move |_| apply_probability(0)>"off"</button>
                    <button class="chip chip-button" on:click=move |_| apply_probability(30)>"30% like the original"</button>
                </div>
            </div>

            <div class="control">
                <div class="control-title">
                    "Step mode "
                    {move || if step_on() {
                        view! { <span class="chip chip-warn" data-testid="step-mode-state">"on"</span> }.into_any()
                    } else {
                        view! { <span class="chip chip-muted" data-testid="step-mode-state">"off"</span> }.into_any()
                    }}
                </div>
                <p class="muted small">"Pauses after the votes and after the decision: crash a node or the coordinator right then and watch the in-doubt state."</p>
                <div class="row-inline">
                    <select on:change=move |ev| pause_choice.set(event_target_value(&ev).parse().unwrap_or(PHASE_PAUSE_MS_CHOICES[0]))>
                        {PHASE_PAUSE_MS_CHOICES.iter().map(|ms| {
                            let ms = *ms;
                            view! { <option value=ms.to_string() selected=move || pause_choice.get() == ms>{format!("pause {} s", ms / 1000)}</option> }
                        }).collect_view()}
                    </select>
                    {move || if step_on() {
                        view! { <button class="btn" data-testid="step-mode" disabled=move || step_busy.get() on:click=move |_| set_step(0)>"Turn off"</button> }.into_any()
                    } else {
                        view! { <button class="btn btn-primary" data-testid="step-mode" disabled=move || step_busy.get() on:click=move |_| set_step(pause_choice.get_untracked())>"Turn on"</button> }.into_any()
                    }}
                </div>
                <div class="row-inline hold-row">
                    <span>"or hold every message "</span>
                    {move || if hold_on() {
                        view! { <span class="chip chip-warn" data-testid="hold-state">"holding"</span> }.into_any()
                    } else {
                        view! { <span class="chip chip-muted" data-testid="hold-state">"off"</span> }.into_any()
                    }}
                    {move || if hold_on() {
                        view! { <button class="btn" data-testid="hold-mode" disabled=move || hold_busy.get() on:click=move |_| set_hold(false)>"Stop holding"</button> }.into_any()
                    } else {
                        view! { <button class="btn btn-primary" data-testid="hold-mode" disabled=move || hold_busy.get() on:click=move |_| set_hold(true)>"Hold (Next ▶)"</button> }.into_any()
                    }}
                </div>
                <p class="muted small">"The hold: every prepare, vote, commit and ack waits at the coordinator; \"Next\" lets one go. A held prepare still counts against the vote timeout."</p>
                <HeldMessagesPanel/>
            </div>
        </div>
    }
}
