//! The dashboard's "Run chaos": the same loop and audit as the `chaos`
//! command, run by the demo coordinator against its own cluster. The
//! target ([`Local`]) calls the very handlers the API routes call, so every
//! fault is checked and published (a `fault` event) exactly as if a client
//! had sent it, and every transfer takes the path of `POST /api/transfers`.
//! A coordinator cannot kill -9 its own process: that fault becomes an
//! engine crash, the demo's coordinator crash.
//!
//! One run at a time ([`ChaosRuns`]); its progress and verdict are read
//! with `GET /api/chaos`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use shared::api::{
    ChaosFault, ChaosRequest, ChaosRun, ChaosState, ChaosVerdict, ClusterView, CrashPoint,
    LedgerEntry, LinkFault,
};
use shared::events::EventKind;
use shared::limits::{CHAOS_RECENT_FAULTS_KEPT, CHAOS_VIOLATIONS_SHOWN_MAX, HTTP_BODY_BYTES_MAX};

use super::audit::Transfer;
use super::{run, ChaosSummary, ClientMix, Reply, Report, RunConfig, Target};
use crate::app::App;
use crate::http::request::IdPath;
use crate::http::{routes, view, ApiError};

/// How long a transfer may take before its client counts it as cut.
const TRANSFER_TIMEOUT_MS: u64 = 20_000;

/// The demo cluster, from inside its coordinator.
pub struct Local {
    app: Arc<App>,
}

/// A handler's answer: its status and JSON body.
async fn answer(result: Result<Response, ApiError>) -> (u16, Value) {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let status = response.status().as_u16();
    let body = match to_bytes(response.into_body(), HTTP_BODY_BYTES_MAX * 64).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    (status, body)
}

fn body(value: Value) -> Result<Bytes, axum::extract::rejection::BytesRejection> {
    Ok(Bytes::from(value.to_string()))
}

impl Target for Local {
    async fn transfer(&self, tx_id: &str, transfer: &Transfer) -> Reply {
        let request = json!({
            "from": transfer.from,
            "to": transfer.to,
            "amount_cents": transfer.amount_cents,
            "tx_id": tx_id,
        });
        let call = routes::run_transfer(&self.app, body(request));
        match tokio::time::timeout(Duration::from_millis(TRANSFER_TIMEOUT_MS), call).await {
            Ok(result) => {
                let (status, body) = answer(result).await;
                Reply {
                    status,
                    body,
                    reached: true,
                }
            }
            Err(_) => Reply {
                status: 0,
                body: Value::Null,
                reached: true,
            },
        }
    }

    async fn cluster(&self) -> Option<ClusterView> {
        Some(view::cluster_view(&self.app).await)
    }

    async fn ledger(&self, account: &str) -> Option<Vec<LedgerEntry>> {
        let result = routes::ledger(State(self.app.clone()), IdPath(account.to_string())).await;
        let (status, body) = answer(result).await;
        (status == 200)
            .then(|| serde_json::from_value(body).ok())
            .flatten()
    }

    async fn crash_node(&self, node: &str) -> bool {
        let result = routes::crash_node(
            State(self.app.clone()),
            IdPath(node.to_string()),
            Ok(Bytes::new()),
        )
        .await;
        answer(result).await.0 == 200
    }

    async fn restart_node(&self, node: &str) -> bool {
        let result = routes::restart_node(State(self.app.clone()), IdPath(node.to_string())).await;
        answer(result).await.0 == 200
    }

    async fn crash_engine(&self, at: CrashPoint, restart_after_ms: u64) -> bool {
        let request = json!({"at": at, "restart_after_ms": restart_after_ms});
        let result = routes::crash_coordinator(State(self.app.clone()), body(request)).await;
        answer(result).await.0 == 200
    }

    async fn set_link(&self, node: &str, fault: LinkFault) -> bool {
        let request = serde_json::to_value(fault).unwrap_or(Value::Null);
        let result = routes::set_link(
            State(self.app.clone()),
            IdPath(node.to_string()),
            body(request),
        )
        .await;
        answer(result).await.0 == 200
    }

    async fn heal_link(&self, node: &str) -> bool {
        let result = routes::heal_link(State(self.app.clone()), IdPath(node.to_string())).await;
        answer(result).await.0 == 200
    }

    async fn restart_coordinator(&self, _pause: Duration) -> bool {
        false
    }

    async fn clear_coordinator_faults(&self) {
        // 404 when no crash is armed: nothing to clear.
        let _ = routes::disarm_coordinator_crash(State(self.app.clone())).await;
        if self.app.demo.hold_messages() {
            self.app.set_hold_messages(false);
            self.app.hub.publish(EventKind::Fault {
                target: "coordinator".to_string(),
                description: "chaos run: stopped holding messages so the cluster can settle"
                    .to_string(),
            });
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("a chaos run is already in progress; stop it with DELETE /api/chaos or wait for its verdict")]
    Running,
    #[error("a chaos run needs at least two accounts (this cluster has {0})")]
    TooFewAccounts(usize),
}

/// The current or last run, and the flag that stops it early.
#[derive(Default)]
pub struct ChaosRuns {
    state: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    run: ChaosRun,
    started: Option<Instant>,
    stop: Option<Arc<AtomicBool>>,
}

impl Slot {
    fn busy(&self) -> bool {
        matches!(self.run.state, ChaosState::Running | ChaosState::Settling)
    }
}

impl ChaosRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current or last run (the defaults while idle).
    pub fn snapshot(&self) -> ChaosRun {
        let slot = self.lock();
        let mut run = slot.run.clone();
        if run.state == ChaosState::Idle {
            let defaults = ChaosRequest::default();
            run.seconds = defaults.seconds;
            run.clients = defaults.clients;
            run.fault_interval_ms = defaults.fault_interval_ms;
        }
        if run.state == ChaosState::Running {
            if let Some(started) = slot.started {
                run.elapsed_ms = started.elapsed().as_millis() as u64;
            }
        }
        run
    }

    /// Asks the running run to stop its faults now (it then heals and
    /// audits as usual); false if none is running.
    pub fn stop(&self) -> bool {
        let mut slot = self.lock();
        if slot.run.state != ChaosState::Running {
            return false;
        }
        if let Some(stop) = &slot.stop {
            stop.store(true, Ordering::Relaxed);
        }
        slot.run.stopped = true;
        true
    }

    fn update(&self, f: impl FnOnce(&mut Slot)) {
        f(&mut self.lock());
    }
}

/// Starts a run on the demo cluster (the request's bounds already checked).
pub fn start(app: &Arc<App>, request: &ChaosRequest) -> Result<ChaosRun, StartError> {
    let accounts: Vec<String> = app.config.account_nodes.keys().cloned().collect();
    if accounts.len() < 2 {
        return Err(StartError::TooFewAccounts(accounts.len()));
    }
    let nodes = app.supervisor.node_ids();
    let seed = request.seed.unwrap_or_else(rand::random);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let mut slot = app.chaos.lock();
        if slot.busy() {
            return Err(StartError::Running);
        }
        *slot = Slot {
            run: ChaosRun {
                state: ChaosState::Running,
                seconds: request.seconds,
                clients: request.clients,
                fault_interval_ms: request.fault_interval_ms,
                seed,
                ..ChaosRun::default()
            },
            started: Some(Instant::now()),
            stop: Some(stop.clone()),
        };
    }
    let config = RunConfig {
        seconds: request.seconds,
        clients: request.clients as usize,
        seed,
        fault_interval_ms: request.fault_interval_ms,
        mix: ClientMix::default(),
        tx_id_prefix: Some(run_prefix()),
    };
    tracing::info!(
        seconds = config.seconds,
        clients = config.clients,
        fault_interval_ms = config.fault_interval_ms,
        seed,
        "chaos run started"
    );
    app.hub.publish(EventKind::Fault {
        target: "coordinator".to_string(),
        description: format!(
            "chaos run started: {} s, {} clients, a fault every ~{} ms (seed {seed})",
            config.seconds, config.clients, config.fault_interval_ms
        ),
    });
    let snapshot = app.chaos.snapshot();
    let target = Arc::new(Local { app: app.clone() });
    let app = app.clone();
    tokio::spawn(async move {
        let runs = &app.chaos;
        let summary = run(target, config, nodes, accounts, stop, |report| {
            runs.update(|slot| record(slot, report))
        })
        .await;
        let verdict = verdict(&summary);
        tracing::info!(
            pass = verdict.pass,
            violations = verdict.violation_count,
            "chaos run finished"
        );
        let description = if verdict.pass {
            format!(
                "chaos run PASS: {} committed, all on both ledgers; {} aborted, none on a ledger; total {} cents conserved",
                verdict.committed, verdict.aborted, verdict.total_cents
            )
        } else {
            format!(
                "chaos run FAIL: {} violations; total {} cents (expected {})",
                verdict.violation_count, verdict.total_cents, verdict.expected_total_cents
            )
        };
        runs.update(|slot| {
            slot.run.state = ChaosState::Finished;
            slot.run.elapsed_ms = (summary.seconds * 1000.0) as u64;
            slot.run.faults = summary.faults.clone();
            slot.run.verdict = Some(verdict);
            slot.stop = None;
        });
        app.hub.publish(EventKind::Fault {
            target: "coordinator".to_string(),
            description,
        });
    });
    Ok(snapshot)
}

/// The prefix of a run's tx_ids: unique across runs and coordinator
/// restarts (the demo's ledgers outlive both), so that no run re-uses an id
/// of another and the audit tells its own from the rest.
fn run_prefix() -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("chaos-{now_ms:x}-{:04x}-", rand::random::<u16>())
}

/// Folds one progress report into the run's state.
fn record(slot: &mut Slot, report: Report<'_>) {
    let run = &mut slot.run;
    match report {
        Report::Tick { counts, faults, .. } => {
            run.requests = counts.requests;
            run.committed = counts.committed;
            run.aborted = counts.aborted;
            run.unknown = counts.unknown;
            run.faults = faults.clone();
        }
        Report::Fault {
            elapsed,
            kind,
            node,
        } => {
            *run.faults.entry(kind.to_string()).or_default() += 1;
            if run.recent_faults.len() >= CHAOS_RECENT_FAULTS_KEPT {
                run.recent_faults.remove(0);
            }
            run.recent_faults.push(ChaosFault {
                at_ms: elapsed.as_millis() as u64,
                kind: kind.to_string(),
                node: node.to_string(),
            });
        }
        Report::Settling { counts } => {
            run.state = ChaosState::Settling;
            if let Some(started) = slot.started {
                run.elapsed_ms = started.elapsed().as_millis() as u64;
            }
            run.requests = counts.requests;
            run.committed = counts.committed;
            run.aborted = counts.aborted;
            run.unknown = counts.unknown;
        }
    }
}

/// The verdict the page shows, from the run's summary.
pub fn verdict(summary: &ChaosSummary) -> ChaosVerdict {
    ChaosVerdict {
        pass: summary.passed(),
        committed: summary.audited_committed,
        committed_on_both_ledgers: summary.committed_on_both_ledgers,
        aborted: summary.audited_aborted,
        aborted_on_no_ledger: summary.aborted_on_no_ledger,
        total_cents: summary.total_cents,
        expected_total_cents: summary.expected_total_cents,
        violation_count: summary.violations.len() as u64,
        violations: summary
            .violations
            .iter()
            .take(CHAOS_VIOLATIONS_SHOWN_MAX)
            .cloned()
            .collect(),
    }
}
