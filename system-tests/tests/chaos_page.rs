//! The dashboard's chaos run through its API (`POST/GET/DELETE /api/chaos`)
//! against real processes: refused outside demo mode; in demo mode a short
//! run ends PASS with audit figures that agree with the ledgers read
//! afterwards, a second start while one runs is refused, a stop ends the
//! faults early, and the cluster is left healed (every node up, no link
//! fault, no armed crash).
//!
//! Run alone: `cargo build -p backend -p participant && cargo test -p
//! system-tests --test chaos_page`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use shared::api::{ChaosRun, ChaosState, ComponentStatus, Faults};
use system_tests::{wait_for_async, Cluster, Options};

/// A run settles after its faults: nodes restart and recover, in-doubt
/// transactions resolve. Generous for a loaded 2-core machine.
const RUN_DEADLINE: Duration = Duration::from_secs(240);

async fn chaos(c: &Cluster) -> ChaosRun {
    let (status, body) = c.get("/api/chaos").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

async fn wait_finished(c: &Cluster) -> ChaosRun {
    wait_for_async("the chaos run's verdict", RUN_DEADLINE, || async {
        let run = chaos(c).await;
        (run.state == ChaosState::Finished).then_some(run)
    })
    .await
}

/// The cluster the run leaves: every node and the coordinator up, no link
/// fault, no coordinator crash armed, nothing held.
async fn assert_healed(c: &Cluster) {
    let view = c.wait_quiescent().await;
    assert_eq!(view.coordinator.status, ComponentStatus::Up);
    for node in &view.nodes {
        assert_eq!(
            node.status,
            ComponentStatus::Up,
            "node {} after the run",
            node.id
        );
    }
    let (status, body) = c.get("/api/faults").await;
    assert_eq!(status, 200, "{body}");
    let faults: Faults = serde_json::from_value(body.clone()).expect("faults");
    assert!(faults.coordinator_crash.is_none(), "{body}");
    assert!(!faults.hold_messages, "{body}");
    assert!(
        faults.links.values().all(|l| l.is_healthy()),
        "a link is still faulty after the run: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chaos_route_is_refused_outside_demo_mode() {
    let c = Cluster::start(Options {
        demo: false,
        ..Options::default()
    })
    .await;
    let (status, body) = c
        .post("/api/chaos", json!({"seconds": 2, "clients": 1}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("demo mode"),
        "{body}"
    );
    let (status, body) = c.delete("/api/chaos").await;
    assert_eq!(status, 403, "{body}");
    // Nothing started: the run is idle, the books untouched.
    assert_eq!(chaos(&c).await.state, ChaosState::Idle);
    assert_eq!(c.cluster().await.total_cents, c.expected_total());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_chaos_run_ends_pass_with_figures_the_ledgers_agree_with() {
    let c = Cluster::start(Options {
        nodes: 3,
        prepare_timeout_ms: 1_000,
        ack_wait_ms: 1_000,
        ..Options::default()
    })
    .await;
    assert_eq!(chaos(&c).await.state, ChaosState::Idle);

    // Out of range and unknown fields are refused before anything starts.
    let (status, body) = c.post("/api/chaos", json!({"seconds": 0})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = c.post("/api/chaos", json!({"clients": 1000})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = c.post("/api/chaos", json!({"fault_interval_ms": 1})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = c.post("/api/chaos", json!({"minutes": 1})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(chaos(&c).await.state, ChaosState::Idle);

    let (status, body) = c
        .post(
            "/api/chaos",
            json!({"seconds": 6, "clients": 4, "fault_interval_ms": 300, "seed": 7}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "running", "{body}");
    assert_eq!(body["seed"], 7, "{body}");

    // One run at a time: a second start is refused while it runs or settles.
    let (status, second) = c.post("/api/chaos", json!({"seconds": 1})).await;
    assert_eq!(status, 409, "{second}");
    assert!(
        second["error"].as_str().unwrap_or("").contains("already"),
        "{second}"
    );

    let run = wait_finished(&c).await;
    let verdict = run.verdict.clone().expect("a finished run has a verdict");
    assert!(verdict.pass, "the chaos run failed: {run:#?}");
    assert_eq!(verdict.violation_count, 0, "{run:#?}");
    assert!(verdict.violations.is_empty(), "{run:#?}");
    assert!(verdict.committed > 0, "nothing committed: {run:#?}");
    assert_eq!(
        verdict.committed_on_both_ledgers, verdict.committed,
        "{run:#?}"
    );
    assert_eq!(verdict.aborted_on_no_ledger, verdict.aborted, "{run:#?}");
    assert_eq!(
        verdict.total_cents, verdict.expected_total_cents,
        "{run:#?}"
    );
    assert_eq!(verdict.expected_total_cents, c.expected_total(), "{run:#?}");
    let faults: u64 = run.faults.values().sum();
    assert!(faults >= 3, "too few faults to mean anything: {run:#?}");
    assert_eq!(run.recent_faults.len() as u64, faults.min(50), "{run:#?}");
    assert!(run.requests >= verdict.committed, "{run:#?}");
    assert!(!run.stopped);

    // The figures agree with the books read now: the total, and at least as
    // many transfers on both ledgers as the run says committed.
    assert_healed(&c).await;
    let view = c.cluster().await;
    assert_eq!(view.total_cents, verdict.total_cents);
    let mut on_ledgers: BTreeSet<String> = BTreeSet::new();
    for account in c.accounts() {
        for entry in c.ledger(&account).await {
            on_ledgers.insert(entry.tx_id);
        }
    }
    assert!(
        on_ledgers.len() as u64 >= verdict.committed_on_both_ledgers,
        "{} tx_ids on the ledgers, the run says {} committed",
        on_ledgers.len(),
        verdict.committed_on_both_ledgers
    );
    // Nothing runs now: stopping is refused.
    let (status, body) = c.delete("/api/chaos").await;
    assert_eq!(status, 409, "{body}");

    // A long run stopped early: its faults end at once, it settles and
    // audits as usual.
    let (status, body) = c
        .post(
            "/api/chaos",
            json!({"seconds": 300, "clients": 2, "fault_interval_ms": 300}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    wait_for_async("the second run's first fault", RUN_DEADLINE, || async {
        (!chaos(&c).await.recent_faults.is_empty()).then_some(())
    })
    .await;
    let (status, body): (u16, Value) = c.delete("/api/chaos").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stopped"], true, "{body}");
    let run = wait_finished(&c).await;
    assert!(run.stopped, "{run:#?}");
    assert!(run.elapsed_ms < 300_000, "{run:#?}");
    let verdict = run.verdict.clone().expect("verdict");
    assert!(verdict.pass, "{run:#?}");
    assert_healed(&c).await;
}
