//! The core promises against real processes (transfers, recovery, idempotent
//! retries, concurrency, the event stream): a coordinator and its
//! participants on free ports, in a temp dir, killed at the end.

use std::time::Duration;

use serde_json::{json, Value};
use shared::api::{ComponentStatus, Outcome, VoteView};
use shared::wire::AbortReason;
use system_tests::audit::{audit, Reported};
use system_tests::{kill9, ledger_tx_ids, node_pid, wait_for_async, Cluster, Options, DEADLINE};

async fn two_nodes() -> Cluster {
    Cluster::start(Options::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_commits_on_both_ledgers() {
    let c = two_nodes().await;
    let (status, r) = c.transfer_outcome("A", "B", 10_000, Some("t-commit")).await;
    assert_eq!(status, 200);
    assert_eq!(r.outcome, Outcome::Committed);
    assert_eq!(r.tx_id, "t-commit");
    assert!(
        r.votes.iter().all(|v| v.vote == VoteView::Ready),
        "{:?}",
        r.votes
    );
    let balances = c.balances().await;
    assert_eq!(balances["A"], 90_000);
    assert_eq!(balances["B"], 110_000);
    let a = c.ledger("A").await;
    let b = c.ledger("B").await;
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 1);
    assert_eq!(
        (a[0].tx_id.as_str(), a[0].delta_cents, a[0].balance_cents),
        ("t-commit", -10_000, 90_000)
    );
    assert_eq!(
        (b[0].tx_id.as_str(), b[0].delta_cents, b[0].balance_cents),
        ("t-commit", 10_000, 110_000)
    );
    let view = c.cluster().await;
    assert_eq!(view.total_cents, 200_000);
    assert_eq!(view.expected_total_cents, 200_000);
    // The transaction's detail has its timeline.
    let (status, detail) = c.get("/api/transactions/t-commit").await;
    assert_eq!(status, 200);
    assert_eq!(detail["state"], "committed");
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "tx_started",
        "prepare_sent",
        "vote",
        "decision",
        "commit_sent",
        "ack",
    ] {
        assert!(kinds.contains(&kind), "timeline lacks {kind}: {kinds:?}");
    }
    let (status, list) = c.get("/api/transactions?limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["tx_id"], "t-commit");
}

/// `--ack-wait-ms 0`: a client is answered at the commit point (the COMMIT
/// record durable, the commits sent), before the nodes ack. What it reads
/// back through the API right after must still show its transfer: reads go
/// to each node on the engine's connection, behind the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_ack_wait_a_committed_transfer_reads_back_at_once() {
    let c = Cluster::start(Options {
        ack_wait_ms: 0,
        ..Options::default()
    })
    .await;
    let (mut a, mut b) = (100_000, 100_000);
    for i in 0..60 {
        let tx = format!("t-read-{i}");
        let (status, r) = c.transfer_outcome("A", "B", 100, Some(&tx)).await;
        assert_eq!((status, r.outcome), (200, Outcome::Committed), "{r:?}");
        (a, b) = (a - 100, b + 100);
        let (status, accounts) = c.get("/api/accounts").await;
        assert_eq!(status, 200, "{accounts}");
        let balance = |id: &str| {
            accounts
                .as_array()
                .and_then(|list| list.iter().find(|x| x["id"] == id))
                .and_then(|x| x["balance_cents"].as_i64())
        };
        assert_eq!(
            (balance("A"), balance("B")),
            (Some(a), Some(b)),
            "read right after {tx}: {accounts}"
        );
        let ledger = if i % 2 == 0 { "A" } else { "B" };
        assert!(
            ledger_tx_ids(&c.ledger(ledger).await).contains(&tx),
            "the ledger of {ledger} right after {tx}"
        );
    }
    let view = c.wait_quiescent().await;
    assert_eq!(view.total_cents, 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_funds_aborts_and_moves_nothing() {
    let c = two_nodes().await;
    let (status, r) = c.transfer_outcome("A", "B", 100_001, None).await;
    assert_eq!(status, 409);
    assert_eq!(r.outcome, Outcome::Aborted);
    assert_eq!(r.reason, Some(AbortReason::InsufficientFunds));
    assert!(
        r.detail
            .as_deref()
            .is_some_and(|d| d.contains("insufficient")),
        "{:?}",
        r.detail
    );
    let balances = c.balances().await;
    assert_eq!((balances["A"], balances["B"]), (100_000, 100_000));
    assert!(c.ledger("A").await.is_empty());
    assert!(c.ledger("B").await.is_empty());
    let view = c.wait_quiescent().await;
    assert!(view.nodes.iter().all(|n| n.locked_accounts.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_tx_id_twice_moves_money_once() {
    let c = two_nodes().await;
    let (s1, first) = c.transfer_outcome("A", "B", 2_500, Some("dup-1")).await;
    let (s2, second) = c.transfer_outcome("A", "B", 2_500, Some("dup-1")).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(first.tx_id, second.tx_id);
    assert_eq!(second.outcome, Outcome::Committed);
    assert_eq!(c.balances().await["A"], 97_500);
    assert_eq!(c.ledger("A").await.len(), 1);
    // A different transfer under a used id is a conflict, and moves nothing.
    let (status, body) = c.transfer("A", "B", 9_999, Some("dup-1")).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("dup-1")),
        "{body}"
    );
    assert_eq!(c.balances().await["A"], 97_500);
    // An aborted outcome is also returned again rather than retried.
    let (s3, r3) = c.transfer_outcome("A", "B", 1_000_000, Some("dup-2")).await;
    let (s4, r4) = c.transfer_outcome("A", "B", 1_000_000, Some("dup-2")).await;
    assert_eq!((s3, s4), (409, 409));
    assert_eq!(
        (r3.reason, r4.reason),
        (
            Some(AbortReason::InsufficientFunds),
            Some(AbortReason::InsufficientFunds)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let c = two_nodes().await;
    let cases: Vec<(Value, &[u16])> = vec![
        (
            json!({"from": "A", "to": "Z", "amount_cents": 5}),
            &[400, 422],
        ),
        (
            json!({"from": "A", "to": "A", "amount_cents": 5}),
            &[400, 422],
        ),
        (
            json!({"from": "A", "to": "B", "amount_cents": 0}),
            &[400, 422],
        ),
        (
            json!({"from": "A", "to": "B", "amount_cents": -5}),
            &[400, 422],
        ),
        (
            json!({"from": "A", "to": "B", "amount_cents": 100_000_001}),
            &[400, 422],
        ),
        (
            json!({"from": "A", "to": "B", "amount_cents": 1.5}),
            &[400, 422],
        ),
        (
            json!({"from": "A", "to": "B", "amount_cents": "5"}),
            &[400, 422],
        ),
        (json!({"from": "A", "to": "B"}), &[400, 422]),
        (
            json!({"from": "A", "to": "B", "amount_cents": 5, "evil": true}),
            &[400],
        ),
        (
            json!({"from": "A", "to": "B", "amount_cents": 5, "tx_id": "x".repeat(500)}),
            &[400, 422],
        ),
        (
            json!({"from": "A", "to": "B", "amount_cents": 5, "tx_id": "no spaces"}),
            &[400, 422],
        ),
        (json!([1, 2, 3]), &[400, 422]),
    ];
    for (body, allowed) in cases {
        let (status, answer) = c.post("/api/transfers", body.clone()).await;
        assert!(allowed.contains(&status), "{body} got {status}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.len() > 10, "{body} got no clear error: {answer}");
    }
    // Not JSON at all.
    let response = c
        .http
        .post(c.url("/api/transfers"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("JSON"),
        "{answer}"
    );
    // Too big a body.
    let huge = format!(
        "{{\"from\":\"A\",\"to\":\"B\",\"amount_cents\":1,\"tx_id\":\"{}\"}}",
        "x".repeat(100_000)
    );
    let response = c
        .http
        .post(c.url("/api/transfers"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    // Lookups of things that do not exist.
    assert_eq!(c.get("/api/transactions/nope").await.0, 404);
    assert_eq!(c.get("/api/accounts/Z/ledger").await.0, 404);
    assert_eq!(c.get("/api/transactions?limit=abc").await.0, 400);
    assert_eq!(c.get("/api/transactions?limit=0").await.0, 400);
    assert_eq!(c.get("/api/no-such-thing").await.0, 404);
    assert_eq!(c.post("/api/nodes/9999/crash", json!({})).await.0, 404);
    let (status, answer) = c
        .put("/api/faults", json!({"prepare_crash_probability": 2.0}))
        .await;
    assert_eq!(status, 422, "{answer}");
    let (status, answer) = c
        .put("/api/nodes/6001/link", json!({"delay_ms": "slow"}))
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = c
        .post("/api/coordinator/crash", json!({"at": "whenever"}))
        .await;
    assert_eq!(status, 400, "{answer}");
    // Nothing moved, everything still works.
    assert_eq!(c.balances().await["A"], 100_000);
    let (status, _) = c.transfer_outcome("A", "B", 1, None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_is_refused_outside_demo_mode() {
    let c = Cluster::start(Options {
        demo: false,
        ..Options::default()
    })
    .await;
    for (method, path, body) in [
        ("POST", "/api/nodes/6001/crash", json!({})),
        ("POST", "/api/nodes/6001/restart", json!({})),
        ("PUT", "/api/nodes/6001/link", json!({"delay_ms": 10})),
        (
            "POST",
            "/api/coordinator/crash",
            json!({"at": "before_decision"}),
        ),
        (
            "PUT",
            "/api/faults",
            json!({"prepare_crash_probability": 0.3}),
        ),
    ] {
        let (status, answer) = match method {
            "POST" => c.post(path, body).await,
            _ => c.put(path, body).await,
        };
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("--demo"),
            "{answer}"
        );
    }
    assert_eq!(c.delete("/api/nodes/6001/link").await.0, 403);
    assert_eq!(
        c.cluster()
            .await
            .nodes
            .iter()
            .filter(|n| n.status == ComponentStatus::Up)
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_participant_makes_transfers_abort_until_it_restarts() {
    let c = two_nodes().await;
    let (status, answer) = c.post("/api/nodes/6002/crash", json!({})).await;
    assert_eq!(status, 200, "{answer}");
    c.wait_node_status("6002", ComponentStatus::Down).await;
    let started = std::time::Instant::now();
    let (status, r) = c.transfer_outcome("A", "B", 100, Some("while-down")).await;
    assert_eq!(status, 409);
    assert!(
        matches!(
            r.reason,
            Some(AbortReason::NodeUnreachable | AbortReason::Timeout)
        ),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(c.options.prepare_timeout_ms + 2_000));
    assert_eq!(c.balances().await["A"], 100_000);
    let (status, answer) = c.post("/api/nodes/6002/restart", json!({})).await;
    assert_eq!(status, 200, "{answer}");
    c.wait_node_status("6002", ComponentStatus::Up).await;
    let (status, _) = c
        .transfer_outcome("A", "B", 100, Some("after-restart"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(c.balances().await["B"], 100_100);
    // Killing it from outside (kill -9 by pid) is noticed the same way.
    let pid = node_pid(&c, "6001").await.expect("6001 has a pid");
    kill9(pid);
    c.wait_node_status("6001", ComponentStatus::Down).await;
    let (status, _) = c.transfer_outcome("B", "A", 50, None).await;
    assert_eq!(status, 409);
}

/// Step mode holds the transaction after the votes: the node dies having
/// voted ready, so it is in doubt. The coordinator still commits; the node
/// learns the outcome when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_killed_after_voting_ready_ends_as_the_coordinator_decided() {
    let c = two_nodes().await;
    let (status, _) = c.put("/api/faults", json!({"phase_pause_ms": 1_500})).await;
    assert_eq!(status, 200);
    let client = {
        let http = c.http.clone();
        let url = c.url("/api/transfers");
        tokio::spawn(async move {
            let body =
                json!({"from": "A", "to": "B", "amount_cents": 7_000, "tx_id": "in-doubt-1"});
            let response = http.post(url).json(&body).send().await.expect("answer");
            (
                response.status().as_u16(),
                response.json::<Value>().await.expect("json"),
            )
        })
    };
    wait_for_async("both votes to be ready", DEADLINE, || async {
        let (_, d) = c.get("/api/transactions/in-doubt-1").await;
        let votes = d["votes"].as_array()?.clone();
        (votes.len() == 2 && votes.iter().all(|v| v["vote"] == "ready")).then_some(())
    })
    .await;
    c.post("/api/nodes/6002/crash", json!({})).await;
    let (status, body) = client.await.unwrap();
    assert_eq!(status, 200, "the decision was commit: {body}");
    assert_eq!(body["outcome"], "committed");
    // 6002 is down and still owes its part: the money is not yet on B.
    c.put("/api/faults", json!({"phase_pause_ms": 0})).await;
    let (status, _) = c.post("/api/nodes/6002/restart", json!({})).await;
    assert_eq!(status, 200);
    let view = c.wait_quiescent().await;
    assert_eq!(view.total_cents, 200_000);
    assert!(ledger_tx_ids(&c.ledger("A").await).contains("in-doubt-1"));
    assert!(ledger_tx_ids(&c.ledger("B").await).contains("in-doubt-1"));
    let balances = c.balances().await;
    assert_eq!((balances["A"], balances["B"]), (93_000, 107_000));
    // Its lock was released: B can be used again.
    let (status, _) = c.transfer_outcome("B", "A", 1, None).await;
    assert_eq!(status, 200);
}

/// A real kill -9 of the coordinator process after its COMMIT record is
/// durable and before any commit is sent. The participants are left in
/// doubt holding their locks; the restarted coordinator adopts them, reads
/// its log and completes the commit everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_after_its_commit_record_completes_after_restart() {
    let mut c = two_nodes().await;
    let pids_before: Vec<Option<u32>> =
        vec![node_pid(&c, "6001").await, node_pid(&c, "6002").await];
    let (status, _) = c.put("/api/faults", json!({"phase_pause_ms": 5_000})).await;
    assert_eq!(status, 200);
    let client = {
        let http = c.http.clone();
        let url = c.url("/api/transfers");
        tokio::spawn(async move {
            let body =
                json!({"from": "A", "to": "B", "amount_cents": 12_345, "tx_id": "crash-commit"});
            http.post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    wait_for_async("the commit decision to be durable", DEADLINE, || async {
        let (_, d) = c.get("/api/transactions/crash-commit").await;
        let timeline = d["timeline"].as_array()?.clone();
        timeline
            .iter()
            .any(|e| e["kind"] == "decision" && e["decision"] == "commit")
            .then_some(())
    })
    .await;
    c.kill_coordinator();
    assert!(
        client.await.unwrap().is_err(),
        "the client loses its connection with the coordinator"
    );
    c.start_coordinator().await;
    let view = c.wait_quiescent().await;
    assert_eq!(view.total_cents, 200_000);
    let pids_after: Vec<Option<u32>> = view.nodes.iter().map(|n| n.pid).collect();
    assert_eq!(
        pids_before, pids_after,
        "the participants were adopted, not restarted"
    );
    let balances = c.balances().await;
    assert_eq!(
        (balances["A"], balances["B"]),
        (100_000 - 12_345, 100_000 + 12_345)
    );
    assert!(ledger_tx_ids(&c.ledger("A").await).contains("crash-commit"));
    assert!(ledger_tx_ids(&c.ledger("B").await).contains("crash-commit"));
    // The client's retry learns the outcome and moves nothing again.
    let (status, r) = c
        .transfer_outcome("A", "B", 12_345, Some("crash-commit"))
        .await;
    assert_eq!((status, r.outcome), (200, Outcome::Committed));
    assert_eq!(c.balances().await["A"], 100_000 - 12_345);
}

/// The injected (in-process) coordinator crash at every named point: the
/// engine throws away everything volatile and recovers from its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_coordinator_crashes_at_every_point_keep_the_books_straight() {
    let c = two_nodes().await;
    let mut reported = Reported::default();
    for (i, at) in ["before_decision", "after_decision", "mid_commit"]
        .iter()
        .enumerate()
    {
        let (status, body) = c
            .post(
                "/api/coordinator/crash",
                json!({"at": at, "restart_after_ms": 300}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let tx_id = format!("inj-{i}");
        let (status, body) = c.transfer("A", "B", 1_000, Some(&tx_id)).await;
        assert_eq!(status, 503, "the crash answers 503: {body}");
        c.wait_all_up().await;
        // Retrying with the same id learns (or makes) the outcome.
        let (status, r) = c.transfer_outcome("A", "B", 1_000, Some(&tx_id)).await;
        match *at {
            // Before the decision nothing was logged: the retry runs it anew.
            "before_decision" => assert_eq!(status, 409, "{r:?}"),
            _ => assert_eq!((status, r.outcome), (200, Outcome::Committed)),
        }
        match r.outcome {
            Outcome::Committed => reported.committed.insert(tx_id),
            Outcome::Aborted => reported.aborted.insert(tx_id),
        };
    }
    let view = c.wait_quiescent().await;
    let report = audit(&c, &view, &reported).await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

async fn concurrent_transfers(nodes: u16, count: usize) {
    let c = Cluster::start(Options {
        nodes,
        ..Options::default()
    })
    .await;
    let accounts = c.accounts();
    let mut tasks = Vec::new();
    for i in 0..count {
        let from = accounts[i % accounts.len()].clone();
        let to = accounts[(i + 1 + (i / accounts.len()) % (accounts.len() - 1)) % accounts.len()]
            .clone();
        // Every other round goes the other way, so money flows both ways.
        let (from, to) = if (i / accounts.len()) % 2 == 0 {
            (from, to)
        } else {
            (to, from)
        };
        let amount = 1 + (i as i64 * 7919) % 5_000;
        let http = c.http.clone();
        let url = c.url("/api/transfers");
        let tx_id = format!("conc-{i}");
        tasks.push(tokio::spawn(async move {
            let body = json!({"from": from, "to": to, "amount_cents": amount, "tx_id": tx_id});
            let response = http.post(url).json(&body).send().await.expect("an answer");
            let status = response.status().as_u16();
            (tx_id, status, response.json::<Value>().await.expect("json"))
        }));
    }
    let mut reported = Reported::default();
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    for task in tasks {
        let (tx_id, status, body) = tokio::time::timeout_at(deadline, task)
            .await
            .expect("no hang")
            .unwrap();
        match status {
            200 => reported.committed.insert(tx_id),
            409 => {
                *reasons.entry(body["reason"].to_string()).or_default() += 1;
                reported.aborted.insert(tx_id)
            }
            other => panic!("{tx_id} answered {other}: {body}"),
        };
    }
    println!(
        "{nodes} nodes, {count} concurrent: {} committed, {} aborted {reasons:?}",
        reported.committed.len(),
        reported.aborted.len()
    );
    assert!(!reported.committed.is_empty());
    let view = c.wait_quiescent().await;
    let report = audit(&c, &view, &reported).await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_transfers_in_both_directions() {
    concurrent_transfers(2, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_transfers_over_three_nodes() {
    concurrent_transfers(3, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_within_one_node_uses_one_phase_commit() {
    let c = Cluster::start(Options {
        accounts_per_node: 2,
        ..Options::default()
    })
    .await;
    let (status, r) = c.transfer_outcome("A1", "A2", 300, Some("one-phase")).await;
    assert_eq!((status, r.outcome), (200, Outcome::Committed));
    assert_eq!(r.votes.len(), 1);
    let (_, detail) = c.get("/api/transactions/one-phase").await;
    let started = &detail["timeline"][0];
    assert_eq!(started["one_phase"], true, "{detail}");
    let balances = c.balances().await;
    assert_eq!((balances["A1"], balances["A2"]), (99_700, 100_300));
    let (status, r) = c.transfer_outcome("A1", "A2", 1_000_000, None).await;
    assert_eq!(
        (status, r.reason),
        (409, Some(AbortReason::InsufficientFunds))
    );
    let report = audit(
        &c,
        &c.wait_quiescent().await,
        &Reported {
            committed: ["one-phase".to_string()].into(),
            ..Reported::default()
        },
    )
    .await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balances_survive_a_full_restart() {
    let mut c = two_nodes().await;
    c.transfer_outcome("A", "B", 4_200, Some("durable-1")).await;
    // kill -9 everything: the coordinator and both participants.
    let pids: Vec<u32> = c
        .cluster()
        .await
        .nodes
        .iter()
        .filter_map(|n| n.pid)
        .collect();
    c.kill_coordinator();
    for pid in pids {
        kill9(pid);
    }
    c.start_coordinator().await;
    c.wait_all_up().await;
    let balances = c.balances().await;
    assert_eq!((balances["A"], balances["B"]), (95_800, 104_200));
    let (status, r) = c.transfer_outcome("A", "B", 4_200, Some("durable-1")).await;
    assert_eq!(
        (status, r.outcome),
        (200, Outcome::Committed),
        "the retry returns the first outcome"
    );
    assert_eq!(c.balances().await["A"], 95_800);
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to the coordinator's `/ws`.
async fn ws_connect(c: &Cluster) -> WsStream {
    let ws_url = c.url("/ws").replace("http://", "ws://");
    let (ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("websocket connects");
    ws
}

/// The next event from `/ws`, as JSON; fails the test after `DEADLINE`.
async fn ws_next_event(ws: &mut WsStream) -> Value {
    use futures_util::StreamExt;
    let msg = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .expect("events keep coming")
        .expect("the stream stays open")
        .expect("a websocket message");
    serde_json::from_str(msg.to_text().expect("a text message")).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_sends_a_snapshot_then_numbered_events() {
    let c = two_nodes().await;
    let mut ws = ws_connect(&c).await;
    let first = ws_next_event(&mut ws).await;
    assert_eq!(first["kind"], "snapshot");
    assert_eq!(first["cluster"]["expected_total_cents"], 200_000);
    c.transfer_outcome("A", "B", 100, Some("ws-1")).await;
    let mut kinds = Vec::new();
    let mut last_seq = first["seq"].as_u64().unwrap();
    while !kinds.contains(&"tx_finished".to_string()) {
        let event = ws_next_event(&mut ws).await;
        let seq = event["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "seq grows: {seq} after {last_seq}");
        last_seq = seq;
        assert!(event["ts_ms"].as_u64().is_some());
        kinds.push(event["kind"].as_str().unwrap().to_string());
    }
    for kind in [
        "tx_started",
        "prepare_sent",
        "vote",
        "decision",
        "commit_sent",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "missing {kind} in {kinds:?}"
        );
    }
}

/// The balance monitor asks the nodes only while a WebSocket client
/// listens; a client that connects after transfers that nobody watched
/// still sees the next transfer's balances as a `balances` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_gets_the_balances_after_a_transfer() {
    let c = two_nodes().await;
    // Moved while nobody listens: the snapshot carries it.
    c.transfer_outcome("A", "B", 300, Some("unwatched")).await;
    let mut ws = ws_connect(&c).await;
    let first = ws_next_event(&mut ws).await;
    assert_eq!(first["kind"], "snapshot");
    let snapshot_cents: Vec<i64> = first["cluster"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .flat_map(|n| n["accounts"].as_array().expect("accounts").clone())
        .map(|a| a["balance_cents"].as_i64().expect("cents"))
        .collect();
    assert_eq!(snapshot_cents, vec![99_700, 100_300], "{first}");
    c.transfer_outcome("B", "A", 1_000, Some("watched")).await;
    let balances = loop {
        let event = ws_next_event(&mut ws).await;
        if event["kind"] != "balances" {
            continue;
        }
        let accounts = event["accounts"].as_array().expect("accounts").clone();
        let cents = |id: &str| {
            accounts
                .iter()
                .find(|a| a["id"] == id)
                .and_then(|a| a["balance_cents"].as_i64())
        };
        // An earlier refresh may still show the old balances: wait for these.
        if cents("A") == Some(100_700) {
            break (cents("A"), cents("B"), event["total_cents"].as_i64());
        }
    };
    assert_eq!(balances, (Some(100_700), Some(99_300), Some(200_000)));
}
