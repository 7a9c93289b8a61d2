//! The guided scenarios panel: pick one (or open `#scenario=<id>`), press
//! Play, and the page resets the cluster to a known state (no faults
//! armed, every link healed, every node up, the coordinator up), then runs
//! each step against the real cluster, narrating it and ticking it green
//! once the live events show that it happened (red, with what was awaited,
//! if they do not within the deadline). The definitions and checks are in
//! [`crate::scenarios`].
//!
//! A scenario that replays a recording (the original demo's bug) does not
//! reset the cluster: it changes nothing there, and it plays with no
//! cluster at all (a page served from `dist/` by any web server). It loads
//! the recording into the time-travel view and walks it forward, one event
//! at a time, ticking each step at the moment its check holds.

use std::time::Duration;

use leptos::prelude::*;
use shared::api::{
    ComponentStatus, CoordinatorCrashRequest, CrashPoint, FaultsUpdate, HeuristicRequest,
    TransferRequest,
};

use crate::api;
use crate::context::{address_fragment, now_ms, use_ctx, Ctx};
use crate::replay::{Replay, Source};
use crate::scenarios::{self, Action, Scenario, FROM, SCENARIOS, TO};

/// How long a step may take to show what it expects (a coordinator that
/// stays down 20 s included).
const STEP_DEADLINE_MS: u64 = 45_000;
/// How long the reset may take (a node restarting, a coordinator recovering).
const RESET_DEADLINE_MS: u64 = 30_000;
/// How often a running step re-reads the state.
const CHECK_EVERY_MS: u64 = 150;
/// A replayed scenario shows one recorded event this long.
const REPLAY_EVENT_MS: u64 = 300;
/// And holds a moment this long once a step is ticked, to read it.
const REPLAY_TICK_PAUSE_MS: u64 = 1_200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepState {
    Waiting,
    Running,
    Done,
    Failed,
}

impl StepState {
    fn name(self) -> &'static str {
        match self {
            StepState::Waiting => "waiting",
            StepState::Running => "running",
            StepState::Done => "done",
            StepState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Run {
    scenario: &'static str,
    /// `None` while resetting.
    step: Option<usize>,
    states: Vec<StepState>,
    /// "passed", "failed" once over.
    verdict: Option<&'static str>,
    note: Option<String>,
    tx_id: String,
}

/// The run shown in the panel, changed as it goes.
#[derive(Clone, Copy)]
struct Progress(RwSignal<Option<Run>>);

impl Progress {
    fn start(self, scenario: &Scenario, note: &str, tx_id: String) {
        self.0.set(Some(Run {
            scenario: scenario.id,
            step: None,
            states: vec![StepState::Waiting; scenario.steps.len()],
            verdict: None,
            note: Some(note.to_string()),
            tx_id,
        }));
    }

    fn edit(self, change: impl FnOnce(&mut Run)) {
        self.0.update(|r| {
            if let Some(r) = r.as_mut() {
                change(r);
            }
        });
    }

    fn say(self, note: String) {
        self.edit(|r| r.note = Some(note));
    }

    /// Step `i` is running.
    fn begin(self, i: usize) {
        self.edit(|r| {
            r.step = Some(i);
            r.states[i] = StepState::Running;
            r.note = None;
        });
    }

    fn done(self, i: usize) {
        self.edit(|r| r.states[i] = StepState::Done);
    }

    /// The run ends failed (at step `at`, if it got that far), saying why.
    fn fail(self, note: String, at: Option<usize>) {
        self.edit(|r| {
            if let Some(i) = at {
                r.states[i] = StepState::Failed;
            }
            r.verdict = Some("failed");
            r.note = Some(note);
        });
    }

    fn pass(self) {
        self.edit(|r| r.verdict = Some("passed"));
    }
}

async fn sleep_ms(ms: u64) {
    let (wake, woken) = futures::channel::oneshot::channel::<()>();
    set_timeout(
        move || {
            let _ = wake.send(());
        },
        Duration::from_millis(ms),
    );
    let _ = woken.await;
}

/// Waits until `ready` holds (true) or the deadline passes (false).
async fn wait_for(deadline_ms: u64, mut ready: impl FnMut() -> bool) -> bool {
    let until = now_ms() + deadline_ms;
    loop {
        if ready() {
            return true;
        }
        if now_ms() > until {
            return false;
        }
        sleep_ms(CHECK_EVERY_MS).await;
    }
}

/// Every fault off, every node up, the coordinator up, nothing in doubt,
/// and account A able to pay for the scenario's transfers (topped up from
/// B if earlier runs left it short).
async fn reset(ctx: Ctx, scenario: &Scenario, say: impl Fn(String)) -> Result<(), String> {
    let off = FaultsUpdate {
        prepare_crash_probability: Some(0.0),
        phase_pause_ms: Some(0),
        hold_messages: Some(false),
    };
    api::update_faults(&off).await.map_err(|e| e.to_string())?;
    let faults = api::faults().await.map_err(|e| e.to_string())?;
    if faults.coordinator_crash.is_some() {
        api::cancel_coordinator_crash()
            .await
            .map_err(|e| e.to_string())?;
    }
    let nodes: Vec<(String, ComponentStatus)> = ctx.model.with_untracked(|m| {
        m.cluster
            .as_ref()
            .map(|c| c.nodes.iter().map(|n| (n.id.clone(), n.status)).collect())
            .unwrap_or_default()
    });
    for (node, status) in nodes {
        if faults
            .links
            .get(&node)
            .is_some_and(|l| *l != Default::default())
        {
            api::heal_link(&node).await.map_err(|e| e.to_string())?;
        }
        if status == ComponentStatus::Down {
            let _ = api::restart_node(&node).await;
        }
    }
    let settled = wait_for(RESET_DEADLINE_MS, || {
        ctx.refresh_cluster_soon();
        ctx.model.with_untracked(|m| {
            m.cluster.as_ref().is_some_and(|c| {
                c.coordinator.status == ComponentStatus::Up
                    && c.nodes
                        .iter()
                        .all(|n| n.status == ComponentStatus::Up && n.in_doubt.is_empty())
            })
        })
    })
    .await;
    if !settled {
        return Err("the cluster did not settle (a node down or a transaction in doubt)".into());
    }
    let accounts = api::accounts().await.map_err(|e| e.to_string())?;
    let balance = |id: &str| {
        accounts
            .iter()
            .find(|a| a.id == id)
            .map_or(0, |a| a.balance_cents)
    };
    let Some(amount_cents) = scenarios::top_up(scenario, balance(FROM), balance(TO))? else {
        return Ok(());
    };
    say(format!(
        "Resetting the cluster: account {FROM} holds only {}; moving {} from {TO} back to {FROM} first (a transfer like any other)…",
        shared::money::format_cents(balance(FROM)),
        shared::money::format_cents(amount_cents),
    ));
    let request = TransferRequest {
        from: TO.into(),
        to: FROM.into(),
        amount_cents,
        tx_id: Some(format!("scenario-reset-{}", now_ms())),
    };
    let response = api::transfer(&request).await.map_err(|e| e.to_string())?;
    ctx.refresh_accounts();
    if response.outcome == shared::api::Outcome::Committed {
        Ok(())
    } else {
        Err(format!(
            "moving {} from {TO} to {FROM} was not committed: {}",
            shared::money::format_cents(amount_cents),
            response.detail.unwrap_or_else(|| "aborted".into())
        ))
    }
}

fn balance_of(ctx: Ctx, account: &str) -> i64 {
    ctx.model.with_untracked(|m| {
        m.accounts
            .iter()
            .find(|a| a.id == account)
            .map_or(0, |a| a.balance_cents)
    })
}

fn transfer(ctx: Ctx, tx_id: &str, amount_cents: i64) {
    let request = TransferRequest {
        from: FROM.into(),
        to: TO.into(),
        amount_cents,
        tx_id: Some(tx_id.to_string()),
    };
    // Not awaited: with the coordinator crashing, the answer is a 503
    // much later; the steps follow the events instead.
    leptos::task::spawn_local(async move {
        let _ = api::transfer(&request).await;
        ctx.refresh_cluster_soon();
    });
    // Pinned in the diagram once the coordinator has started it (pinning
    // asks the coordinator for it).
    let tx_id = tx_id.to_string();
    leptos::task::spawn_local(async move {
        let known = wait_for(STEP_DEADLINE_MS, || {
            ctx.model
                .with_untracked(|m| m.transactions.iter().any(|t| t.tx_id == tx_id))
        })
        .await;
        if known {
            ctx.pin(tx_id);
        }
    });
}

async fn act(ctx: Ctx, action: Action, tx_id: &str) -> Result<(), String> {
    let error = |e: api::ApiError| e.to_string();
    match action {
        Action::Watch => Ok(()),
        Action::Transfer { amount_cents } => {
            transfer(ctx, tx_id, amount_cents);
            Ok(())
        }
        Action::TransferMoreThanBalance { extra_cents } => {
            ctx.refresh_accounts();
            transfer(ctx, tx_id, balance_of(ctx, FROM) + extra_cents);
            Ok(())
        }
        Action::ArmNodeCrash { node, at } => api::crash_node_at(node, at).await.map_err(error),
        Action::RestartNode { node } => {
            // The node may already be back (its supervisor): wait for it
            // to be down first, then restart it if it still is.
            wait_for(STEP_DEADLINE_MS, || {
                ctx.refresh_cluster_soon();
                ctx.model.with_untracked(|m| {
                    m.cluster.as_ref().is_some_and(|c| {
                        c.nodes
                            .iter()
                            .any(|n| n.id == node && n.status != ComponentStatus::Up)
                    })
                })
            })
            .await;
            api::restart_node(node).await.map_err(error)
        }
        Action::CrashCoordinatorAfterCommitRecord { restart_after_ms } => {
            let request = CoordinatorCrashRequest {
                at: CrashPoint::AfterDecision,
                restart_after_ms,
            };
            api::crash_coordinator(&request).await.map_err(error)
        }
        Action::Heuristic { node, decision } => {
            let request = HeuristicRequest {
                tx_id: tx_id.to_string(),
                decision,
            };
            api::force_heuristic(node, &request)
                .await
                .map(|_| ())
                .map_err(error)
        }
    }
}

fn check(ctx: Ctx, scenario: &Scenario, step: usize, tx_id: &str) -> bool {
    ctx.model
        .with_untracked(|m| scenarios::holds(m, &scenario.steps[step], tx_id))
}

/// The recording at `address` (served with the page), ready to replay.
async fn load_recording(address: &str) -> Result<Replay, String> {
    let response = gloo_net::http::Request::get(address)
        .send()
        .await
        .map_err(|e| format!("{address}: {e}"))?;
    if !response.ok() {
        return Err(format!("{address}: HTTP {}", response.status()));
    }
    let text = response
        .text()
        .await
        .map_err(|e| format!("{address}: {e}"))?;
    let run = shared::recording::parse(&text, shared::limits::RECORDING_VIEW_EVENTS_MAX)
        .map_err(|e| format!("{address}: {e}"))?;
    let name = address.rsplit('/').next().unwrap_or(address).to_string();
    Ok(Replay::new(
        Source::File { name },
        run.header.note,
        run.events,
    ))
}

/// Plays a scenario that replays a recording: loads it into the time
/// travel view, then for each step walks forward one event at a time to
/// the first moment its check holds.
async fn play_recording(
    ctx: Ctx,
    scenario: &'static Scenario,
    address: &'static str,
    run: RwSignal<Option<Run>>,
) {
    let progress = Progress(run);
    progress.start(
        scenario,
        "Loading the model checker's counterexample…",
        String::new(),
    );
    let fail = |note: String, at: Option<usize>| progress.fail(note, at);
    let mut replay = match load_recording(address).await {
        Ok(replay) => replay,
        Err(e) => return fail(format!("The recording cannot be loaded: {e}"), None),
    };
    let Some(tx_id) = scenarios::recorded_tx_id(&replay) else {
        return fail("The recording holds no transaction".into(), None);
    };
    // The ticks are found on a copy; the page shows the same run.
    ctx.start_travel(replay.clone(), 0);
    ctx.pin(tx_id.clone());
    progress.edit(|r| r.tx_id = tx_id.clone());
    let mut at = 0;
    for (i, step) in scenario.steps.iter().enumerate() {
        progress.begin(i);
        let Some(tick) = scenarios::next_tick(&mut replay, at, step, &tx_id) else {
            return fail(
                format!("Step {} is not in the recording: {}", i + 1, step.expect),
                Some(i),
            );
        };
        while at < tick {
            sleep_ms(REPLAY_EVENT_MS).await;
            if !ctx.traveling() {
                return fail("The replay was closed (● Live)".into(), Some(i));
            }
            at += 1;
            ctx.show(at);
        }
        // What the page shows is what ticks the step.
        ctx.show(tick);
        if !check(ctx, scenario, i, &tx_id) {
            return fail(
                format!("Step {} did not show on the page: {}", i + 1, step.expect),
                Some(i),
            );
        }
        progress.done(i);
        sleep_ms(REPLAY_TICK_PAUSE_MS).await;
    }
    progress.pass();
}

async fn play(ctx: Ctx, scenario: &'static Scenario, run: RwSignal<Option<Run>>) {
    if let Some(address) = scenario.replays {
        return play_recording(ctx, scenario, address, run).await;
    }
    // A live scenario reads the live state: leave a recorded run first.
    if ctx.traveling() {
        ctx.go_live();
    }
    let tx_id = scenarios::run_tx_id(scenario.id, now_ms());
    let progress = Progress(run);
    progress.start(
        scenario,
        "Resetting the cluster: faults off, every node and the coordinator up…",
        tx_id.clone(),
    );
    let fail = |note: String, at: Option<usize>| progress.fail(note, at);
    if let Err(e) = reset(ctx, scenario, |note| progress.say(note)).await {
        fail(format!("Reset failed: {e}"), None);
        return;
    }
    for (i, step) in scenario.steps.iter().enumerate() {
        progress.begin(i);
        for action in step.actions {
            if let Err(e) = act(ctx, *action, &tx_id).await {
                fail(format!("Step {} could not run: {e}", i + 1), Some(i));
                return;
            }
        }
        let happened = wait_for(STEP_DEADLINE_MS, || {
            ctx.refresh_cluster_soon();
            check(ctx, scenario, i, &tx_id)
        })
        .await;
        if !happened {
            fail(
                format!("Step {} did not happen in time: {}", i + 1, step.expect),
                Some(i),
            );
            return;
        }
        progress.done(i);
    }
    progress.pass();
}

#[component]
pub fn ScenariosPanel() -> impl IntoView {
    let ctx = use_ctx();
    let linked = scenarios::from_fragment(&address_fragment());
    let chosen = RwSignal::new(linked.map(|s| s.id).unwrap_or(SCENARIOS[0].id));
    let run = RwSignal::new(None::<Run>);
    let scenario = move || scenarios::find(chosen.get()).unwrap_or(&SCENARIOS[0]);
    let busy = move || run.with(|r| r.as_ref().is_some_and(|r| r.verdict.is_none()));
    let this_run = move || run.get().filter(|r| r.scenario == chosen.get());

    let steps = move || {
        let s = scenario();
        let r = this_run();
        s.steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let state = r.as_ref().map_or(StepState::Waiting, |r| r.states[i]);
                let current = r.as_ref().is_some_and(|r| r.step == Some(i) && r.verdict.is_none());
                let mark = match state {
                    StepState::Done => "✓",
                    StepState::Failed => "✗",
                    StepState::Running => "…",
                    StepState::Waiting => "○",
                };
                view! {
                    <li class=format!("scenario-step step-{}", state.name()) data-testid=format!("scenario-step-{i}") data-state=state.name()>
                        <span class="step-mark" aria-hidden="true">{mark}</span>
                        <div>
                            <p class="step-says">{step.says}</p>
                            {current.then(|| view! { <p class="step-watch small">"Watch: "{step.watch}</p> })}
                            <p class="step-expect muted small">{format!("Checked: {}", step.expect)}</p>
                        </div>
                    </li>
                }
            })
            .collect_view()
    };

    view! {
        <div class="panel scenarios-panel" data-testid="scenarios-panel">
            <div class="panel-head">
                <h3>"Guided scenarios"</h3>
                <span class="muted small">"each one runs on the real cluster (the original demo's bug replays the model checker's run); a step turns green when the events show it"</span>
            </div>
            <div class="scenario-picker" role="tablist">
                {SCENARIOS.iter().map(|s| {
                    let id = s.id;
                    view! {
                        <button class="btn btn-small" class:btn-primary=move || chosen.get() == id
                            data-testid=format!("scenario-pick-{id}") disabled=busy
                            on:click=move |_| chosen.set(id)>{s.title}</button>
                    }
                }).collect_view()}
            </div>
            <p class="scenario-summary">{move || scenario().summary}</p>
            <div class="row-inline">
                <button class="btn btn-primary" data-testid="scenario-play" disabled=busy
                    on:click=move |_| {
                        let s = scenario();
                        leptos::task::spawn_local(play(ctx, s, run));
                    }>"▶ Play"</button>
                <span class="muted small mono">{move || format!("#scenario={}", chosen.get())}</span>
            </div>
            {move || this_run().and_then(|r| r.note).map(|note| view! { <p class="scenario-note" data-testid="scenario-note">{note}</p> })}
            <ol class="scenario-steps">{steps}</ol>
            {move || this_run().and_then(|r| r.verdict).map(|verdict| {
                let passed = verdict == "passed";
                view! {
                    <div class="scenario-end" data-testid="scenario-result" data-state=verdict>
                        {passed.then(|| view! { <p class="scenario-explanation" data-testid="scenario-explanation">{scenario().explanation}</p> })}
                        {(!passed).then(|| view! { <p class="notice notice-bad">"The scenario did not complete; see the step in red."</p> })}
                    </div>
                }
            })}
        </div>
    }
}
