//! Chaos with real processes: a coordinator and three participants of our
//! own, clients running transfers for a set time while the fault loop
//! SIGKILLs random participants and the coordinator's process, restarts
//! them, crashes the coordinator's engine at protocol points, and delays or
//! cuts links. Then everything is healed and the books are audited.
//!
//! The loop, the clients and the audit are the coordinator library's
//! (`backend::chaos`), which the dashboard's "Run chaos" runs too; this is
//! its [`Target`] over HTTP, with the kill -9 of the coordinator's process
//! that only a harness can do.
//!
//! Used by `tests/chaos.rs` and `tests/chaos_commit_point.rs` (short runs)
//! and `src/bin/chaos.rs` (long runs).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use backend::chaos::{ChaosSummary, ClientMix, Counts, Report, RunConfig, SendCounts};
use backend::chaos::{Reply, Target};
use serde_json::{json, Value};
use shared::api::{ClusterView, CrashPoint, LedgerEntry, LinkFault};

use crate::audit::Transfer;
use crate::progress::Progress;
use crate::{Cluster, Options};

#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub seconds: u64,
    pub clients: usize,
    pub nodes: u16,
    pub seed: u64,
    /// Mean pause between faults.
    pub fault_interval_ms: u64,
    /// Print each fault as it happens.
    pub verbose: bool,
    /// The coordinator's `--ack-wait-ms` (0: clients are answered at the
    /// commit point, before the nodes ack).
    pub ack_wait_ms: u64,
    /// How the clients retry and re-use tx_ids.
    pub mix: ClientMix,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            seconds: 20,
            clients: 8,
            nodes: 3,
            seed: 1,
            fault_interval_ms: 700,
            verbose: false,
            ack_wait_ms: 1_000,
            mix: ClientMix::default(),
        }
    }
}

/// Log size that triggers a checkpoint in chaos runs.
const CHAOS_CHECKPOINT_BYTES: u64 = 24 * 1024;

/// The seed of a chaos test: `CHAOS_SEED` if set (to replay a failure),
/// else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// What a chaos test requires of its run: no violation, the money all
/// there, something committed, at least `faults_min` faults injected
/// (fewer would prove little), and retries and re-uses sent if the mix
/// has them.
pub fn assert_clean(summary: &ChaosSummary, seed: u64, faults_min: u64) {
    println!("{summary}");
    assert!(
        summary.violations.is_empty(),
        "audit failed (replay with CHAOS_SEED={seed}):\n{summary}"
    );
    assert_eq!(summary.total_cents, summary.expected_total_cents);
    assert!(summary.committed > 0, "nothing committed: {summary}");
    assert_eq!(
        summary.committed_on_both_ledgers, summary.audited_committed,
        "{summary}"
    );
    assert_eq!(
        summary.aborted_on_no_ledger, summary.audited_aborted,
        "{summary}"
    );
    let faults: u64 = summary.faults.values().sum();
    assert!(
        faults >= faults_min,
        "too few faults injected to mean anything: {summary}"
    );
    if summary.mix.as_ref().is_some_and(|m| !m.is_none()) {
        assert!(
            summary.retries.sent > 0 && summary.reuses.sent > 0,
            "the clients neither retried nor re-used a tx_id: {summary}"
        );
    }
}

/// Our own cluster, over HTTP. Requests go to the coordinator's current
/// address (a restarted coordinator listens on a new port).
struct Processes {
    http: reqwest::Client,
    base_url: Mutex<String>,
    /// Locked only to restart the coordinator.
    cluster: tokio::sync::Mutex<Cluster>,
}

impl Processes {
    fn url(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.base_url.lock().unwrap_or_else(|e| e.into_inner())
        )
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        match request.timeout(Duration::from_secs(10)).send().await {
            Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }

    async fn ok(&self, request: reqwest::RequestBuilder) -> bool {
        self.send(request).await.0 == 200
    }
}

impl Target for Processes {
    async fn transfer(&self, tx_id: &str, transfer: &Transfer) -> Reply {
        let body = json!({
            "from": transfer.from,
            "to": transfer.to,
            "amount_cents": transfer.amount_cents,
            "tx_id": tx_id,
        });
        let answer = self
            .http
            .post(self.url("/api/transfers"))
            .json(&body)
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        match answer {
            Ok(r) => Reply {
                status: r.status().as_u16(),
                body: r.json::<Value>().await.unwrap_or(Value::Null),
                reached: true,
            },
            Err(e) => Reply {
                status: 0,
                body: Value::Null,
                reached: !e.is_connect(),
            },
        }
    }

    async fn cluster(&self) -> Option<ClusterView> {
        let (status, body) = self.send(self.http.get(self.url("/api/cluster"))).await;
        if status != 200 {
            return None;
        }
        serde_json::from_value(body).ok()
    }

    async fn ledger(&self, account: &str) -> Option<Vec<LedgerEntry>> {
        let path = format!("/api/accounts/{account}/ledger");
        let (status, body) = self.send(self.http.get(self.url(&path))).await;
        if status != 200 {
            return None;
        }
        serde_json::from_value(body).ok()
    }

    async fn crash_node(&self, node: &str) -> bool {
        let url = self.url(&format!("/api/nodes/{node}/crash"));
        self.ok(self.http.post(url).json(&json!({}))).await
    }

    async fn restart_node(&self, node: &str) -> bool {
        let url = self.url(&format!("/api/nodes/{node}/restart"));
        self.ok(self.http.post(url).json(&json!({}))).await
    }

    async fn crash_engine(&self, at: CrashPoint, restart_after_ms: u64) -> bool {
        let body = json!({"at": at, "restart_after_ms": restart_after_ms});
        let url = self.url("/api/coordinator/crash");
        self.ok(self.http.post(url).json(&body)).await
    }

    async fn set_link(&self, node: &str, fault: LinkFault) -> bool {
        let url = self.url(&format!("/api/nodes/{node}/link"));
        self.ok(self.http.put(url).json(&fault)).await
    }

    async fn heal_link(&self, node: &str) -> bool {
        let url = self.url(&format!("/api/nodes/{node}/link"));
        self.ok(self.http.delete(url)).await
    }

    async fn restart_coordinator(&self, pause: Duration) -> bool {
        let mut cluster = self.cluster.lock().await;
        cluster.kill_coordinator();
        tokio::time::sleep(pause).await;
        cluster.start_coordinator().await;
        *self.base_url.lock().unwrap_or_else(|e| e.into_inner()) = cluster.base_url.clone();
        true
    }

    async fn clear_coordinator_faults(&self) {
        // 404 when no crash is armed: nothing to clear.
        self.send(self.http.delete(self.url("/api/coordinator/crash")))
            .await;
        let body = json!({"hold_messages": false});
        self.send(self.http.put(self.url("/api/faults")).json(&body))
            .await;
    }
}

/// Starts a cluster of `config.nodes` nodes, runs the chaos loop against
/// it, heals it and audits it.
pub async fn run(config: ChaosConfig) -> ChaosSummary {
    let options = Options {
        nodes: config.nodes,
        prepare_timeout_ms: 1_000,
        ack_wait_ms: config.ack_wait_ms,
        // Small checkpoints, so that the coordinator and every node rewrite
        // their logs (beside the old ones, in the background) every second
        // or so, and the kills land on checkpoints in progress too.
        extra_args: vec![
            "--log-checkpoint-bytes".into(),
            CHAOS_CHECKPOINT_BYTES.to_string(),
        ],
        ..Options::default()
    };
    let cluster = Cluster::start(options).await;
    let accounts = cluster.accounts();
    let nodes: Vec<String> = (0..config.nodes)
        .map(|i| (6001 + u32::from(i)).to_string())
        .collect();
    let target = Arc::new(Processes {
        http: cluster.http.clone(),
        base_url: Mutex::new(cluster.base_url.clone()),
        cluster: tokio::sync::Mutex::new(cluster),
    });
    let progress = Progress::seconds("[chaos]", config.seconds);
    let verbose = config.verbose;
    let run_config = RunConfig {
        seconds: config.seconds,
        clients: config.clients,
        seed: config.seed,
        fault_interval_ms: config.fault_interval_ms,
        mix: config.mix,
        tx_id_prefix: None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let summary = backend::chaos::run(
        target.clone(),
        run_config,
        nodes,
        accounts,
        stop,
        |report| match report {
            Report::Tick {
                elapsed,
                counts,
                faults,
            } => {
                let line = format!(
                    "{} requests: {} committed, {} aborted, {} unavailable or cut; {} faults",
                    counts.requests,
                    counts.committed,
                    counts.aborted,
                    counts.unknown,
                    faults.values().sum::<u64>()
                );
                progress.set(elapsed.as_secs(), &line, false);
            }
            Report::Fault {
                elapsed,
                kind,
                node,
            } => {
                if verbose {
                    println!("[{:>6.1}s] fault: {kind} ({node})", elapsed.as_secs_f64());
                }
            }
            Report::Settling { .. } => progress.finish(),
        },
    )
    .await;
    // The processes die with the cluster (dropped with the last target).
    drop(target);
    summary
}
