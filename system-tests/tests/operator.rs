//! The operator's view with real processes: in-doubt transactions listed
//! with why they are stuck (a coordinator crash timed with step mode, a cut
//! link), a heuristic decision forced on a cut-off node (recorded, shown,
//! and its mismatch with the coordinator surfaced as a fault and in the
//! money audit), and participants started on their own that the
//! coordinator only connects to (`supervised: false`, 409 on crash/restart).

use std::process::Command;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde_json::{json, Value};
use shared::api::{ComponentStatus, CoordinatorTxState, InDoubtView, StuckReason};
use shared::wire::{AbortReason, Decision};
use system_tests::{
    bin, wait_for, wait_for_async, write_secret_file, Cluster, Options, OwnParticipant, DEADLINE,
};

async fn in_doubt(c: &Cluster) -> InDoubtView {
    let (status, body) = c.get("/api/in-doubt").await;
    assert_eq!(status, 200, "GET /api/in-doubt: {body}");
    serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("bad in-doubt body {body}: {e}"))
}

/// Waits until `check` holds for the in-doubt view, and returns that view.
async fn wait_in_doubt(
    c: &Cluster,
    what: &str,
    check: impl Fn(&InDoubtView) -> bool,
) -> InDoubtView {
    wait_for_async(what, DEADLINE, || async {
        let (status, body) = c.get("/api/in-doubt").await;
        if status != 200 {
            return None;
        }
        let view: InDoubtView = serde_json::from_value(body).ok()?;
        check(&view).then_some(view)
    })
    .await
}

fn has_reason(view: &InDoubtView, tx_id: &str, reason: StuckReason) -> bool {
    view.transactions
        .iter()
        .any(|t| t.tx_id == tx_id && t.stuck.iter().any(|s| s.reason == reason))
}

/// Every event the coordinator publishes, collected in the background.
struct Events {
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Events {
    async fn listen(c: &Cluster) -> Events {
        let url = c.url("/ws").replacen("http://", "ws://", 1);
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the websocket connects");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                if let Ok(text) = message.to_text() {
                    if let Ok(event) = serde_json::from_str::<Value>(text) {
                        sink.lock().unwrap().push(event);
                    }
                }
            }
        });
        Events { seen }
    }

    async fn wait_fault(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        wait_for(what, DEADLINE, || {
            self.seen.lock().unwrap().iter().find_map(|e| {
                let description = e["description"].as_str()?;
                (e["kind"] == "fault" && matches(description)).then(|| description.to_string())
            })
        })
        .await
    }
}

/// Starts a transfer in the background (its answer comes after the pauses).
fn transfer_in_background(
    c: &Cluster,
    tx_id: &str,
    amount_cents: i64,
) -> tokio::task::JoinHandle<u16> {
    let http = c.http.clone();
    let url = c.url("/api/transfers");
    let body = json!({"from": "A", "to": "B", "amount_cents": amount_cents, "tx_id": tx_id});
    tokio::spawn(async move {
        http.post(url)
            .json(&body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_crash_in_step_mode_leaves_in_doubt_transactions_listed_with_why() {
    let c = Cluster::start(Options::default()).await;
    let quiet = in_doubt(&c).await;
    assert!(
        quiet.transactions.is_empty() && quiet.heuristics.is_empty(),
        "{quiet:?}"
    );
    assert!(
        quiet.audit.balanced && quiet.audit.total_cents == 200_000,
        "{:?}",
        quiet.audit
    );

    // Step mode: the transaction pauses with its votes in, before deciding.
    let (status, body) = c.put("/api/faults", json!({"phase_pause_ms": 2_500})).await;
    assert_eq!(status, 200, "{body}");
    let answer = transfer_in_background(&c, "op-step", 1_500);
    let view = wait_in_doubt(&c, "op-step prepared on both nodes, undecided", |v| {
        v.transactions
            .iter()
            .any(|t| t.tx_id == "op-step" && t.prepared_on.len() == 2)
    })
    .await;
    let entry = view
        .transactions
        .iter()
        .find(|t| t.tx_id == "op-step")
        .unwrap();
    assert_eq!(
        entry.coordinator_state,
        CoordinatorTxState::InFlight,
        "{entry:?}"
    );
    assert!(
        has_reason(&view, "op-step", StuckReason::WaitingForDecision),
        "{entry:?}"
    );
    assert_eq!(
        (entry.from.as_deref(), entry.amount_cents),
        (Some("A"), Some(1_500))
    );

    // The engine crashes as soon as its COMMIT record is durable, and stays
    // down a while: both nodes are in doubt, and the view says why.
    let (status, body) = c
        .post(
            "/api/coordinator/crash",
            json!({"at": "after_decision", "restart_after_ms": 4_000}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let view = wait_in_doubt(&c, "op-step stuck because the coordinator is down", |v| {
        has_reason(v, "op-step", StuckReason::CoordinatorDown)
    })
    .await;
    let entry = view
        .transactions
        .iter()
        .find(|t| t.tx_id == "op-step")
        .unwrap();
    assert_eq!(
        entry.coordinator_state,
        CoordinatorTxState::CoordinatorDown,
        "{entry:?}"
    );
    assert_eq!(view.coordinator, ComponentStatus::Down);
    let mut nodes: Vec<&str> = entry.prepared_on.iter().map(|p| p.node.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, ["6001", "6002"], "{entry:?}");
    assert!(
        entry.age_ms >= 1_000,
        "it has waited through the pause: {entry:?}"
    );
    assert_eq!(
        answer.await.unwrap(),
        503,
        "the client learns the coordinator crashed"
    );

    // Back from its log, the coordinator re-sends the commit: resolved.
    c.put("/api/faults", json!({"phase_pause_ms": 0})).await;
    let view = wait_in_doubt(&c, "nothing in doubt after the restart", |v| {
        v.coordinator == ComponentStatus::Up && v.transactions.is_empty()
    })
    .await;
    assert!(
        view.audit.balanced && view.audit.pending_commit_cents == 0,
        "{:?}",
        view.audit
    );
    let balances = c.balances().await;
    assert_eq!(
        (balances["A"], balances["B"]),
        (98_500, 101_500),
        "committed once, everywhere"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heuristic_decision_on_a_cut_off_node_is_recorded_shown_and_its_mismatch_surfaced() {
    let c = Cluster::start(Options::default()).await;
    let events = Events::listen(&c).await;

    // Refused outside demo mode is covered below; here: the node must be
    // in doubt for a heuristic to make sense.
    let (status, body) = c
        .post(
            "/api/nodes/6002/heuristic",
            json!({"tx_id": "nothing", "decision": "abort"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not in doubt"),
        "{body}"
    );
    let (status, body) = c
        .post(
            "/api/nodes/6002/heuristic",
            json!({"tx_id": "x", "decision": "maybe"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = c
        .post(
            "/api/nodes/6099/heuristic",
            json!({"tx_id": "x", "decision": "abort"}),
        )
        .await;
    assert_eq!(status, 404);

    // Votes in, paused before the decision; then node 6002's link is cut,
    // so the commit reaches 6001 only.
    c.put("/api/faults", json!({"phase_pause_ms": 2_000})).await;
    let answer = transfer_in_background(&c, "op-h", 1_000);
    wait_in_doubt(&c, "op-h prepared on both nodes", |v| {
        v.transactions
            .iter()
            .any(|t| t.tx_id == "op-h" && t.prepared_on.len() == 2)
    })
    .await;
    let (status, body) = c.put("/api/nodes/6002/link", json!({"drop": true})).await;
    assert_eq!(status, 200, "{body}");
    // The view reads the balances and the coordinator's state one after
    // the other: the moment 6001 acks, a view may still hold its balance
    // from just before it applied (the audit says "settling"); wait past it.
    let view = wait_in_doubt(&c, "op-h committing, stuck on the cut link to 6002", |v| {
        v.transactions.iter().any(|t| {
            t.tx_id == "op-h"
                && t.coordinator_state == CoordinatorTxState::Committing
                && t.pending_acks == ["6002"]
        }) && has_reason(v, "op-h", StuckReason::LinkCut)
            && !v.audit.settling
    })
    .await;
    let entry = view
        .transactions
        .iter()
        .find(|t| t.tx_id == "op-h")
        .unwrap();
    assert_eq!(entry.decision, Some(Decision::Commit));
    assert!(
        view.audit.balanced && view.audit.pending_commit_cents == 1_000,
        "B's credit is still to come: {:?}",
        view.audit
    );
    assert_eq!(
        answer.await.unwrap(),
        200,
        "the decision is durable: committed"
    );

    // The operator cannot wait for the link and aborts op-h on 6002.
    let (status, body) = c
        .post(
            "/api/nodes/6002/heuristic",
            json!({"tx_id": "op-h", "decision": "abort"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "abort");
    assert_eq!(body["coordinator_decision"], "commit");
    assert_eq!(body["agrees"], false, "{body}");
    assert_eq!(body["imbalance_cents"], -1_000, "{body}");
    events
        .wait_fault("the heuristic itself as a fault event", |d| {
            d.contains("heuristic abort of op-h on node 6002")
        })
        .await;
    let mismatch = events
        .wait_fault("a fault event naming the mismatch", |d| {
            d.contains("HEURISTIC MISMATCH")
        })
        .await;
    assert!(
        mismatch.contains("op-h") && mismatch.contains("6002") && mismatch.contains("not atomic"),
        "{mismatch}"
    );

    // Forcing it again the same way is idempotent; the other way is refused.
    let (status, _) = c
        .post(
            "/api/nodes/6002/heuristic",
            json!({"tx_id": "op-h", "decision": "abort"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = c
        .post(
            "/api/nodes/6002/heuristic",
            json!({"tx_id": "op-h", "decision": "commit"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    // The view shows it, and the audit explains the missing $10.00.
    let view = in_doubt(&c).await;
    let h = view
        .heuristics
        .iter()
        .find(|h| h.tx_id == "op-h")
        .expect("the heuristic is listed");
    assert_eq!(
        (h.node.as_str(), h.decision, h.agrees),
        ("6002", Decision::Abort, Some(false))
    );
    assert_eq!(h.ops.len(), 1);
    assert!(
        has_reason(&view, "op-h", StuckReason::HeuristicMismatch),
        "{view:?}"
    );
    assert_eq!(
        view.audit.heuristic_imbalance_cents, -1_000,
        "{:?}",
        view.audit
    );
    assert!(
        view.audit.balanced,
        "everything else adds up: {:?}",
        view.audit
    );
    assert!(
        view.audit.detail.contains("NOT conserved"),
        "{:?}",
        view.audit
    );

    // Not yet: the link is cut, so no commit reached 6002.
    assert_eq!(h.reached_node, None, "{h:?}");

    // Healed: the coordinator's commit reaches 6002, which refuses it with
    // the mismatch; the transaction stays visible, the money stays explained.
    c.delete("/api/nodes/6002/link").await;
    c.put("/api/faults", json!({"phase_pause_ms": 0})).await;
    c.wait_node_status("6002", ComponentStatus::Up).await;
    let view = wait_in_doubt(&c, "the re-sent commit of op-h reached 6002", |v| {
        v.heuristics
            .iter()
            .any(|h| h.tx_id == "op-h" && h.reached_node == Some(Decision::Commit))
    })
    .await;
    assert!(
        has_reason(&view, "op-h", StuckReason::HeuristicMismatch),
        "never hidden: {view:?}"
    );
    let h = view.heuristics.iter().find(|h| h.tx_id == "op-h").unwrap();
    assert!(
        h.detail
            .contains("the coordinator's commit reached node 6002, which refused it"),
        "{}",
        h.detail
    );
    let cluster = c.cluster().await;
    assert_eq!(
        cluster.total_cents, 199_000,
        "A was debited, B never credited"
    );
    assert_eq!(view.audit.total_cents, 199_000);
    assert!(view.audit.balanced, "{:?}", view.audit);
    let b_ledger = c.ledger("B").await;
    assert!(
        b_ledger.iter().all(|e| e.tx_id != "op-h"),
        "B never applied op-h: {b_ledger:?}"
    );
    let a_ledger = c.ledger("A").await;
    assert!(
        a_ledger.iter().any(|e| e.tx_id == "op-h"),
        "A applied op-h: {a_ledger:?}"
    );

    // Other transfers are not affected.
    let (status, r) = c.transfer_outcome("A", "B", 100, Some("after-h")).await;
    assert_eq!(status, 200, "{r:?}");

    // The stats say why op-h stays in flight.
    let (status, stats) = c.get("/api/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["in_flight"], 1, "op-h never finishes: {stats}");
    assert_eq!(stats["in_flight_heuristic_mismatch"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heuristic_decisions_are_refused_outside_demo_mode() {
    let c = Cluster::start(Options {
        demo: false,
        ..Options::default()
    })
    .await;
    let (status, body) = c
        .post(
            "/api/nodes/6001/heuristic",
            json!({"tx_id": "t", "decision": "commit"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let view = in_doubt(&c).await;
    assert!(
        view.transactions.is_empty() && view.audit.balanced,
        "{view:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_started_on_their_own_are_used_but_never_supervised() {
    let dir = tempfile::Builder::new()
        .prefix("tpc-own-")
        .tempdir()
        .unwrap();
    // The operator makes the cluster secret and gives it to every process.
    let secret_file = write_secret_file(dir.path());
    let x = OwnParticipant::start(dir.path(), &secret_file, "7001", "X").await;
    let y = OwnParticipant::start(dir.path(), &secret_file, "7002", "Y").await;
    let options = Options {
        nodes: 0,
        extra_args: vec![
            "--secret-file".into(),
            secret_file.display().to_string(),
            "--participant".into(),
            format!("7001={}=X:50000", x.addr),
            "--participant".into(),
            format!("7002={}=Y:50000", y.addr),
        ],
        ..Options::default()
    };
    let mut c = Cluster::start(options).await;
    let view = c.cluster().await;
    assert_eq!(view.nodes.len(), 2);
    for node in &view.nodes {
        assert!(!node.supervised && node.pid.is_none(), "{node:?}");
        assert_eq!(node.status, ComponentStatus::Up);
    }
    assert_eq!(view.nodes[0].addr, x.addr);
    assert_eq!(
        (view.total_cents, view.expected_total_cents),
        (100_000, 100_000)
    );

    let (status, r) = c.transfer_outcome("X", "Y", 700, Some("own-1")).await;
    assert_eq!(status, 200, "{r:?}");
    let balances = c.balances().await;
    assert_eq!((balances["X"], balances["Y"]), (49_300, 50_700));

    // The coordinator did not start them, so it will not kill or start them.
    for action in ["crash", "restart"] {
        let (status, body) = c
            .post(&format!("/api/nodes/7001/{action}"), json!({}))
            .await;
        assert_eq!(status, 409, "{action}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains("not supervised") && message.contains(&x.addr),
            "{message}"
        );
    }
    // Link faults are the coordinator's own: they still apply.
    let (status, _) = c.put("/api/nodes/7002/link", json!({"drop": true})).await;
    assert_eq!(status, 200);
    let (status, r) = c.transfer_outcome("X", "Y", 100, Some("own-cut")).await;
    assert_eq!(status, 409, "{r:?}");
    c.delete("/api/nodes/7002/link").await;

    // A killed coordinator leaves them running; a new one uses them again.
    c.kill_coordinator();
    c.start_coordinator().await;
    c.wait_all_up().await;
    // The engine's own connections may come up just after the view's.
    let mut attempt = 0;
    let committed_id = wait_for_async(
        "a transfer to commit through the new coordinator",
        DEADLINE,
        || {
            attempt += 1;
            let tx_id = format!("own-2-{attempt}");
            let c = &c;
            async move {
                let (status, r) = c.transfer_outcome("Y", "X", 200, Some(&tx_id)).await;
                assert!(
                    status == 200 || r.reason == Some(AbortReason::NodeUnreachable),
                    "{r:?}"
                );
                (status == 200).then_some(tx_id)
            }
        },
    )
    .await;

    // The operator reaches a node directly, without the coordinator.
    let out = Command::new(bin("participant-admin"))
        .args(["--addr", &y.addr, "--json", "status"])
        .arg("--secret-file")
        .arg(&secret_file)
        .output()
        .expect("participant-admin runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).expect("a JSON status");
    assert_eq!(status["node"], "7002");
    assert_eq!(status["accounts"][0]["balance_cents"], 50_500);
    let out = Command::new(bin("participant-admin"))
        .args([
            "--addr",
            &y.addr,
            "heuristic",
            "--tx-id",
            &committed_id,
            "--decision",
            "abort",
        ])
        .arg("--secret-file")
        .arg(&secret_file)
        .output()
        .expect("participant-admin runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not in doubt"), "{stderr}");
    let view = c.wait_quiescent().await;
    assert_eq!(view.total_cents, 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_coordinator_killed_the_operator_forces_an_outcome_with_participant_admin() {
    let mut c = Cluster::start(Options::default()).await;
    let addr_of_6002 = c
        .cluster()
        .await
        .nodes
        .iter()
        .find(|n| n.id == "6002")
        .unwrap()
        .addr
        .clone();
    c.put("/api/faults", json!({"phase_pause_ms": 3_000})).await;
    let answer = transfer_in_background(&c, "op-down", 800);
    wait_in_doubt(&c, "op-down prepared on both nodes", |v| {
        v.transactions
            .iter()
            .any(|t| t.tx_id == "op-down" && t.prepared_on.len() == 2)
    })
    .await;
    // kill -9 before the decision: nothing is logged at the coordinator.
    c.kill_coordinator();
    let _ = answer.await;

    let out = Command::new(bin("participant-admin"))
        .args([
            "--addr",
            &addr_of_6002,
            "heuristic",
            "--tx-id",
            "op-down",
            "--decision",
            "abort",
        ])
        .arg("--secret-file")
        .arg(c.secret_file())
        .output()
        .expect("participant-admin runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("heuristically aborted"));
    let out = Command::new(bin("participant-admin"))
        .args(["--addr", &addr_of_6002, "status"])
        .arg("--secret-file")
        .arg(c.secret_file())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("HEURISTIC op-down aborted") && !text.contains("in doubt op-down"),
        "{text}"
    );

    // A new coordinator adopts the nodes; with no record of op-down it
    // presumes abort, which agrees with the heuristic: nothing is broken.
    c.start_coordinator().await;
    c.wait_all_up().await;
    let view = wait_in_doubt(
        &c,
        "op-down resolved everywhere, its heuristic compared",
        |v| {
            v.transactions.is_empty()
                && v.heuristics
                    .iter()
                    .any(|h| h.tx_id == "op-down" && h.agrees.is_some())
        },
    )
    .await;
    let h = view
        .heuristics
        .iter()
        .find(|h| h.tx_id == "op-down")
        .unwrap();
    assert_eq!(
        (h.decision, h.coordinator_decision, h.agrees),
        (Decision::Abort, Some(Decision::Abort), Some(true)),
        "{h:?}"
    );
    assert_eq!(h.imbalance_cents, 0);
    assert!(
        view.audit.balanced && view.audit.total_cents == 200_000,
        "{:?}",
        view.audit
    );
    let balances = c.balances().await;
    assert_eq!((balances["A"], balances["B"]), (100_000, 100_000));
}
