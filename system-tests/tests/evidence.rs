//! A transaction's evidence against real processes
//! (`GET /api/transactions/{tx_id}/evidence`): what a committed and an
//! aborted transfer cost, read from their events, and their audit, read
//! from the nodes' real ledgers; a ledger that cannot be read is never
//! passed. Run alone: `cargo build -p backend -p participant && cargo test
//! -p system-tests --test evidence`.

use serde_json::Value;
use shared::api::{ComponentStatus, Outcome, TxState};
use shared::evidence::{Expected, PhaseName, TransactionEvidence, Verdict};
use shared::wire::AbortReason;
use system_tests::{wait_for_async, Cluster, Options, DEADLINE};

async fn evidence_of(c: &Cluster, tx_id: &str) -> (u16, Value) {
    c.get(&format!("/api/transactions/{tx_id}/evidence")).await
}

fn parse(body: Value) -> TransactionEvidence {
    serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Waits until the transaction's every ack is in (its END record), so its
/// evidence is complete.
async fn ended(c: &Cluster, tx_id: &str) -> TransactionEvidence {
    wait_for_async(&format!("{tx_id} to end"), DEADLINE, || async {
        let (status, body) = evidence_of(c, tx_id).await;
        assert_eq!(status, 200, "{body}");
        let e = parse(body);
        e.cost.until_end_ms.is_some().then_some(e)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_transfer_shows_its_cost_and_is_found_once_in_each_ledger() {
    let c = Cluster::start(Options::default()).await;
    let (status, r) = c.transfer_outcome("A", "B", 2_500, Some("ev-commit")).await;
    assert_eq!((status, r.outcome), (200, Outcome::Committed));
    let e = ended(&c, "ev-commit").await;
    assert_eq!(e.state, TxState::Committed);

    let names: Vec<&str> = e
        .cost
        .processes
        .iter()
        .map(|p| p.process.as_str())
        .collect();
    assert_eq!(names, ["coordinator", "6001", "6002"], "{e:?}");
    let coordinator = &e.cost.processes[0];
    // Two prepares and two commits out; two votes in, and each node's answers.
    assert_eq!(coordinator.sent, 4, "{coordinator:?}");
    assert_eq!(coordinator.forced_records, ["commit"], "{coordinator:?}");
    for node in &e.cost.processes[1..] {
        assert_eq!(node.received, 2, "a prepare and a commit: {node:?}");
        assert!(node.sent >= 2, "a vote and an ack at least: {node:?}");
        assert_eq!(node.forced_records, ["prepared", "committed"], "{node:?}");
    }
    assert_eq!(
        coordinator.received,
        e.cost.processes[1].sent + e.cost.processes[2].sent
    );
    assert_eq!(e.cost.forced_writes, 5);
    assert_eq!(e.cost.round_trips, 2);
    for phase in PhaseName::ALL {
        let time = e.cost.phases.iter().find(|p| p.phase == phase);
        assert!(
            time.is_some_and(|t| t.duration_ms.is_some()),
            "{phase:?} has no time: {:?}",
            e.cost.phases
        );
    }
    assert!(e.cost.answer_ms.is_some_and(|ms| ms > 0.0), "{e:?}");
    assert_eq!(e.cost.lock_waits.len(), 2);
    assert!(
        e.cost
            .lock_waits
            .iter()
            .all(|w| !w.refused && w.holder.is_none()),
        "{e:?}"
    );

    assert!(e.audit.ok, "{:?}", e.audit);
    let checks: Vec<(&str, i64, u32, Expected, Verdict)> = e
        .audit
        .checks
        .iter()
        .map(|c| {
            (
                c.account.as_str(),
                c.delta_cents,
                c.found,
                c.expected,
                c.verdict,
            )
        })
        .collect();
    assert_eq!(
        checks,
        [
            ("A", -2_500, 1, Expected::Once, Verdict::Ok),
            ("B", 2_500, 1, Expected::Once, Verdict::Ok),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_transfer_is_found_nowhere_and_costs_one_round_trip() {
    let c = Cluster::start(Options::default()).await;
    // A committed one first, so the ledgers are not empty.
    let (status, _) = c.transfer_outcome("A", "B", 100, Some("ev-before")).await;
    assert_eq!(status, 200);
    let (status, r) = c
        .transfer_outcome("A", "B", 900_000, Some("ev-abort"))
        .await;
    assert_eq!((status, r.outcome), (409, Outcome::Aborted));
    assert_eq!(r.reason, Some(AbortReason::InsufficientFunds));
    let (status, body) = evidence_of(&c, "ev-abort").await;
    assert_eq!(status, 200, "{body}");
    let e = parse(body);
    assert_eq!(e.state, TxState::Aborted);
    assert!(e.audit.ok, "{:?}", e.audit);
    assert_eq!(e.audit.checks.len(), 2);
    for check in &e.audit.checks {
        assert_eq!(
            (check.expected, check.found, check.verdict),
            (Expected::Nowhere, 0, Verdict::Ok),
            "{check:?}"
        );
    }
    let coordinator = &e.cost.processes[0];
    assert_eq!(coordinator.forced_records, ["abort"], "{coordinator:?}");
    // 6001 refused: it voted and forced nothing.
    let refusing = &e.cost.processes[1];
    assert_eq!(
        (refusing.process.as_str(), refusing.forced_writes),
        ("6001", 0)
    );
    assert!(e.cost.round_trips >= 1, "{e:?}");
    assert!(
        e.cost
            .phases
            .iter()
            .all(|p| p.phase == PhaseName::Prepare || p.duration_ms.is_none()),
        "an abort has no commit point and no phase 2: {:?}",
        e.cost.phases
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_that_cannot_be_read_is_never_passed() {
    let c = Cluster::start(Options::default()).await;
    let (status, _) = c.transfer_outcome("A", "B", 300, Some("ev-down")).await;
    assert_eq!(status, 200);
    ended(&c, "ev-down").await;
    let (status, body) = c.post("/api/nodes/6002/crash", Value::Null).await;
    assert!(status < 300, "{status} {body}");
    c.wait_node_status("6002", ComponentStatus::Down).await;
    let (status, body) = evidence_of(&c, "ev-down").await;
    assert_eq!(status, 200, "{body}");
    let e = parse(body);
    assert!(!e.audit.ok, "{:?}", e.audit);
    let b = e
        .audit
        .checks
        .iter()
        .find(|c| c.account == "B")
        .expect("B is checked");
    assert_eq!(b.verdict, Verdict::Unknown, "{b:?}");
    let a = e
        .audit
        .checks
        .iter()
        .find(|c| c.account == "A")
        .expect("A is checked");
    assert_eq!(a.verdict, Verdict::Ok, "{a:?}");

    let (status, body) = evidence_of(&c, "never-was").await;
    assert_eq!(status, 404, "{body}");
}
