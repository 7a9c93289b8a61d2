//! Chaos with real processes: a coordinator and three participants, clients
//! running transfers for a set time while a fault loop SIGKILLs random
//! participants and the coordinator, restarts them, crashes the
//! coordinator's engine at protocol points, and delays or cuts links. Then
//! everything is healed and the books are audited.
//!
//! Used by `tests/chaos.rs` and `tests/chaos_commit_point.rs` (short runs)
//! and `src/bin/chaos.rs` (long runs).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::audit::{audit, Reported};
use crate::{kill9, Cluster, Options};

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
        }
    }
}

#[derive(Debug, Default)]
pub struct ChaosSummary {
    pub seed: u64,
    pub seconds: f64,
    pub attempted: u64,
    pub committed: u64,
    pub aborted: u64,
    /// Answers that could not say (coordinator down): all-or-nothing is still checked.
    pub unknown: u64,
    pub aborts_by_reason: BTreeMap<String, u64>,
    pub faults: BTreeMap<String, u64>,
    pub total_cents: i64,
    pub expected_total_cents: i64,
    pub violations: Vec<String>,
}

impl std::fmt::Display for ChaosSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "chaos run: seed {}, {:.0} s", self.seed, self.seconds)?;
        writeln!(
            f,
            "  transfers: {} attempted, {} committed, {} aborted, {} unknown to the client (coordinator down)",
            self.attempted, self.committed, self.aborted, self.unknown
        )?;
        writeln!(f, "  aborts by reason: {:?}", self.aborts_by_reason)?;
        let total_faults: u64 = self.faults.values().sum();
        writeln!(f, "  faults injected: {total_faults} {:?}", self.faults)?;
        writeln!(
            f,
            "  total: {} cents (expected {})",
            self.total_cents, self.expected_total_cents
        )?;
        write!(f, "  violations: {}", self.violations.len())?;
        for v in &self.violations {
            write!(f, "\n    - {v}")?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Tally {
    reported: Reported,
    attempted: u64,
    aborts_by_reason: BTreeMap<String, u64>,
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
/// there, something committed, and at least `faults_min` faults injected
/// (fewer would prove little).
pub fn assert_clean(summary: &ChaosSummary, seed: u64, faults_min: u64) {
    println!("{summary}");
    assert!(
        summary.violations.is_empty(),
        "audit failed (replay with CHAOS_SEED={seed}):\n{summary}"
    );
    assert_eq!(summary.total_cents, summary.expected_total_cents);
    assert!(summary.committed > 0, "nothing committed: {summary}");
    let faults: u64 = summary.faults.values().sum();
    assert!(
        faults >= faults_min,
        "too few faults injected to mean anything: {summary}"
    );
}

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
    let mut cluster = Cluster::start(options).await;
    let accounts = cluster.accounts();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let base_url = Arc::new(Mutex::new(cluster.base_url.clone()));
    let sequence = Arc::new(AtomicU64::new(0));

    let mut clients = Vec::new();
    for client in 0..config.clients {
        let http = cluster.http.clone();
        let accounts = accounts.clone();
        let tally = tally.clone();
        let stop = stop.clone();
        let base_url = base_url.clone();
        let sequence = sequence.clone();
        let seed = config
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(client as u64);
        clients.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            while !stop.load(Ordering::Relaxed) {
                let from = rng.random_range(0..accounts.len());
                let mut to = rng.random_range(0..accounts.len() - 1);
                if to >= from {
                    to += 1;
                }
                let amount: i64 = rng.random_range(1..=20_000);
                let tx_id = format!("chaos-{}-{}", client, sequence.fetch_add(1, Ordering::Relaxed));
                let body = json!({"from": accounts[from], "to": accounts[to], "amount_cents": amount, "tx_id": tx_id});
                let url = format!("{}/api/transfers", base_url.lock().unwrap_or_else(|e| e.into_inner()));
                let answer = http.post(url).json(&body).timeout(Duration::from_secs(20)).send().await;
                let (status, body) = match answer {
                    Ok(r) => (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null)),
                    Err(_) => (0, Value::Null),
                };
                let known = {
                    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                    t.attempted += 1;
                    match (status, body["outcome"].as_str()) {
                        (200, Some("committed")) => t.reported.committed.insert(tx_id),
                        (409, Some("aborted")) => {
                            let reason = body["reason"].as_str().unwrap_or("none").to_string();
                            *t.aborts_by_reason.entry(reason).or_default() += 1;
                            t.reported.aborted.insert(tx_id)
                        }
                        _ => !t.reported.unknown.insert(tx_id),
                    }
                };
                if !known {
                    // The coordinator is down or restarting: back off a little.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                } else if status == 409 && body["reason"] == "node_unreachable" {
                    // A node is down: its restart is on the way; don't spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }

    let started = Instant::now();
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let nodes: Vec<String> = (0..config.nodes)
        .map(|i| (6001 + u32::from(i)).to_string())
        .collect();
    while started.elapsed() < Duration::from_secs(config.seconds) {
        let pause =
            rng.random_range(config.fault_interval_ms / 2..=config.fault_interval_ms * 3 / 2);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let node = nodes[rng.random_range(0..nodes.len())].clone();
        let kind = match rng.random_range(0..100) {
            0..=24 => {
                let killed = inject_node_kill(&cluster, &node).await;
                if killed.is_some() {
                    // Like a process supervisor would: back after a moment.
                    let delay = Duration::from_millis(rng.random_range(200..2_000));
                    restart_later(cluster.http.clone(), base_url.clone(), node.clone(), delay);
                }
                killed
            }
            25..=44 => inject_restart_dead(&cluster, &nodes).await,
            45..=54 => {
                cluster.kill_coordinator();
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
                cluster.start_coordinator().await;
                *base_url.lock().unwrap_or_else(|e| e.into_inner()) = cluster.base_url.clone();
                Some("coordinator_kill9")
            }
            55..=64 => {
                let at =
                    ["before_decision", "after_decision", "mid_commit"][rng.random_range(0..3)];
                let restart_after_ms: u64 = rng.random_range(100..1_000);
                let (status, _) = try_post(
                    &cluster,
                    "/api/coordinator/crash",
                    json!({"at": at, "restart_after_ms": restart_after_ms}),
                )
                .await;
                (status == 200).then_some("coordinator_engine_crash")
            }
            65..=74 => {
                let delay_ms: u64 = rng.random_range(50..400);
                let (status, _) = try_put(
                    &cluster,
                    &format!("/api/nodes/{node}/link"),
                    json!({"delay_ms": delay_ms}),
                )
                .await;
                (status == 200).then_some("link_delay")
            }
            75..=82 => {
                let (status, _) = try_put(
                    &cluster,
                    &format!("/api/nodes/{node}/link"),
                    json!({"drop": true}),
                )
                .await;
                (status == 200).then_some("link_cut")
            }
            83..=87 => {
                let (status, _) = try_put(
                    &cluster,
                    &format!("/api/nodes/{node}/link"),
                    json!({"duplicate": true}),
                )
                .await;
                (status == 200).then_some("link_duplicate")
            }
            _ => {
                let (status, _) = try_delete(&cluster, &format!("/api/nodes/{node}/link")).await;
                (status == 200).then_some("link_heal")
            }
        };
        if let Some(kind) = kind {
            if config.verbose {
                println!(
                    "[{:>6.1}s] fault: {kind} ({node})",
                    started.elapsed().as_secs_f64()
                );
            }
            *faults.entry(kind.to_string()).or_default() += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.await;
    }
    let seconds = started.elapsed().as_secs_f64();

    // Heal: every link, every node, then wait until nothing is in doubt.
    for node in &nodes {
        let _ = try_delete(&cluster, &format!("/api/nodes/{node}/link")).await;
    }
    crate::wait_for_async(
        "the coordinator to answer after the run",
        crate::DEADLINE,
        || async { cluster.try_cluster().await.map(|_| ()) },
    )
    .await;
    for node in &nodes {
        let _ = try_post(&cluster, &format!("/api/nodes/{node}/restart"), json!({})).await;
    }
    cluster.wait_all_up().await;
    let view = cluster.wait_quiescent().await;
    // The clients have stopped: take the tally (no lock held across the audit).
    let t = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
    let report = audit(&cluster, &view, &t.reported).await;
    ChaosSummary {
        seed: config.seed,
        seconds,
        attempted: t.attempted,
        committed: t.reported.committed.len() as u64,
        aborted: t.reported.aborted.len() as u64,
        unknown: t.reported.unknown.len() as u64,
        aborts_by_reason: t.aborts_by_reason.clone(),
        faults,
        total_cents: report.total_cents,
        expected_total_cents: report.expected_total_cents,
        violations: report.violations,
    }
}

/// Kills a running node: half the time through the API, half with a direct
/// kill -9 of its pid (as an operator's shell would).
async fn inject_node_kill(cluster: &Cluster, node: &str) -> Option<&'static str> {
    let view = cluster.try_cluster().await?;
    let pid = view.nodes.iter().find(|n| n.id == node)?.pid?;
    if pid % 2 == 0 {
        let (status, _) = try_post(cluster, &format!("/api/nodes/{node}/crash"), json!({})).await;
        (status == 200).then_some("node_kill9_api")
    } else {
        kill9(pid);
        Some("node_kill9_pid")
    }
}

fn restart_later(
    http: reqwest::Client,
    base_url: Arc<Mutex<String>>,
    node: String,
    delay: Duration,
) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let url = format!(
            "{}/api/nodes/{node}/restart",
            base_url.lock().unwrap_or_else(|e| e.into_inner())
        );
        let _ = try_send(http.post(url).json(&json!({}))).await;
    });
}

async fn inject_restart_dead(cluster: &Cluster, nodes: &[String]) -> Option<&'static str> {
    let view = cluster.try_cluster().await?;
    let mut restarted = false;
    for node in nodes {
        let dead = view
            .nodes
            .iter()
            .any(|n| &n.id == node && n.status == shared::api::ComponentStatus::Down);
        if dead {
            let (status, _) =
                try_post(cluster, &format!("/api/nodes/{node}/restart"), json!({})).await;
            restarted |= status == 200;
        }
    }
    restarted.then_some("node_restart")
}

async fn try_send(request: reqwest::RequestBuilder) -> (u16, Value) {
    match request.timeout(Duration::from_secs(10)).send().await {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

async fn try_post(cluster: &Cluster, path: &str, body: Value) -> (u16, Value) {
    try_send(cluster.http.post(cluster.url(path)).json(&body)).await
}

async fn try_put(cluster: &Cluster, path: &str, body: Value) -> (u16, Value) {
    try_send(cluster.http.put(cluster.url(path)).json(&body)).await
}

async fn try_delete(cluster: &Cluster, path: &str) -> (u16, Value) {
    try_send(cluster.http.delete(cluster.url(path))).await
}
