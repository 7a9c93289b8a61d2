//! The audit's scenario end to end, with the demo API: a tx_id prepared on
//! one node only when the coordinator crashes, then re-sent for another
//! amount the moment the coordinator is back. It once committed $500.00
//! that A1 was never debited (a total of $6,499.00 of $6,000.00).

use serde_json::{json, Value};
use system_tests::audit::{audit, Answer, Reported, Sent, Transfer};
use system_tests::{wait_for_async, Cluster, Options, DEADLINE};

/// The fields of a 200 or 409 transfer body (see the API contract).
const OUTCOME_FIELDS: [&str; 6] = [
    "tx_id",
    "outcome",
    "reason",
    "detail",
    "votes",
    "duration_ms",
];

/// What must not change between two answers to the same tx_id: the status
/// and, for an outcome, its id, outcome and reason (not its duration, nor
/// the detail that says it is a repeated answer).
fn answer_key(status: u16, body: &Value) -> (u16, Value) {
    let key = if body["outcome"].is_string() {
        json!([body["tx_id"], body["outcome"], body["reason"]])
    } else {
        body["error"].clone()
    };
    (status, key)
}

/// A 200 or 409 answer has the contract's shape: an outcome body with
/// every field typed as documented, or an error sentence.
fn assert_shape(status: u16, body: &Value) {
    assert!(status == 200 || status == 409, "{status}: {body}");
    if status == 409 && body["outcome"].is_null() {
        assert!(
            body["error"].is_string(),
            "a 409 without an outcome: {body}"
        );
        return;
    }
    for field in OUTCOME_FIELDS {
        assert!(body.get(field).is_some(), "no '{field}' in {body}");
    }
    assert_eq!(body["tx_id"], "dup-1", "{body}");
    let outcome = if status == 200 {
        "committed"
    } else {
        "aborted"
    };
    assert_eq!(body["outcome"], outcome, "{body}");
    assert!(
        body["reason"].is_null() || body["reason"].is_string(),
        "{body}"
    );
    assert!(
        body["detail"].is_null() || body["detail"].is_string(),
        "{body}"
    );
    assert!(body["duration_ms"].is_number(), "{body}");
    let votes = body["votes"].as_array().expect("votes is a list");
    for vote in votes {
        assert!(vote["node"].is_string(), "{body}");
        assert!(
            ["ready", "abort", "no_answer"].contains(&vote["vote"].as_str().unwrap_or("")),
            "{body}"
        );
    }
}

/// 3 nodes × 2 accounts ($6,000.00). `dup-1` A1→B1 $1.00 is prepared on
/// 6001 while 6002's link drops everything; an armed crash before the
/// decision, tripped by another transfer, takes the coordinator's engine
/// down with `dup-1` undecided. 6002 is healed and 6001's link delayed by
/// 800 ms (its in-doubt report comes late); from the moment of the crash,
/// `dup-1` is sent again as A1→B1 $500.00 until the answer is not 503. It
/// must never be committed, nothing may move for it, and once everything
/// settles every retry gets the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tx_id_reused_for_another_amount_as_the_coordinator_comes_back_never_commits() {
    let c = Cluster::start(Options {
        nodes: 3,
        accounts_per_node: 2,
        ..Options::default()
    })
    .await;
    assert_eq!(c.cluster().await.total_cents, 600_000);
    let one_dollar = Transfer::new("A1", "B1", 100);
    let five_hundred = Transfer::new("A1", "B1", 50_000);
    let mut sent: Vec<Sent> = Vec::new();
    let mut record = |tx_id: &str, transfer: &Transfer, status: u16, body: &Value| {
        let answer = Answer::classify(tx_id, status, body);
        sent.push(Sent {
            tx_id: tx_id.to_string(),
            transfer: transfer.clone(),
            answer,
        });
        answer
    };

    // dup-1 $1.00: 6001 prepares (it votes ready), 6002 never hears of it.
    let (status, body) = c.put("/api/nodes/6002/link", json!({"drop": true})).await;
    assert_eq!(status, 200, "{body}");
    let first = {
        let request = c
            .http
            .post(c.url("/api/transfers"))
            .json(&json!({"from": "A1", "to": "B1", "amount_cents": 100, "tx_id": "dup-1"}));
        tokio::spawn(async move {
            let response = request.send().await.expect("the coordinator answers");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    wait_for_async("6001 to hold dup-1 prepared", DEADLINE, || async {
        let view = c.try_cluster().await?;
        let node = view.nodes.iter().find(|n| n.id == "6001")?;
        node.in_doubt.iter().any(|t| t == "dup-1").then_some(())
    })
    .await;

    // The next transfer to reach its decision crashes the engine, which
    // comes back 2 s later from its log (where dup-1 is not).
    let (status, body) = c
        .post(
            "/api/coordinator/crash",
            json!({"at": "before_decision", "restart_after_ms": 2_000}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let trip = Transfer::new("A2", "C1", 200);
    let (status, body) = c.transfer("A2", "C1", 200, Some("trip-1")).await;
    assert_eq!(status, 503, "the crash answers 503: {body}");
    record("trip-1", &trip, status, &body);
    let (status, body) = c.delete("/api/nodes/6002/link").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = c
        .put("/api/nodes/6001/link", json!({"delay_ms": 800}))
        .await;
    assert_eq!(status, 200, "{body}");

    // dup-1 again, as $500.00, from now until it is answered other than 503.
    let mut unavailable = Vec::new();
    let started = tokio::time::Instant::now();
    let (status, body) = loop {
        let (status, body) = c.transfer("A1", "B1", 50_000, Some("dup-1")).await;
        let answer = record("dup-1", &five_hundred, status, &body);
        assert_ne!(
            answer,
            Answer::Committed,
            "dup-1 as $500.00 was committed while A1 holds it prepared as $1.00: {body}"
        );
        if status != 503 {
            break (status, body);
        }
        unavailable.push(body["error"].as_str().unwrap_or_default().to_string());
        assert!(
            started.elapsed() < DEADLINE,
            "dup-1 still answered 503 after {DEADLINE:?}: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    println!(
        "dup-1 as $500.00: {} × 503, then {status}: {body}",
        unavailable.len()
    );
    assert_shape(status, &body);
    // The restarted coordinator held the re-sent id back (503) until 6001
    // had reported dup-1 in doubt: the retry did race its restart.
    assert!(
        unavailable.iter().any(|e| e.contains("in doubt")),
        "no 503 from the restarted coordinator waiting for in-doubt reports: {unavailable:#?}"
    );
    let settled = answer_key(status, &body);

    let (status, body) = first.await.expect("the first dup-1 task");
    assert_ne!(status, 200, "dup-1 as $1.00 committed: {body}");
    record("dup-1", &one_dollar, status, &body);

    // Heal everything and let the rollbacks reach the nodes.
    let (status, body) = c.delete("/api/nodes/6001/link").await;
    assert_eq!(status, 200, "{body}");
    let view = c.wait_quiescent().await;
    assert_eq!(view.total_cents, 600_000, "{view:#?}");
    let a1 = c.ledger("A1").await;
    let b1 = c.ledger("B1").await;
    let debited_one = a1
        .iter()
        .any(|e| e.tx_id == "dup-1" && e.delta_cents == -100);
    let credited_500 = b1
        .iter()
        .any(|e| e.tx_id == "dup-1" && e.delta_cents == 50_000);
    assert!(
        !(debited_one && credited_500),
        "A1 paid $1.00 and B1 got $500.00 under dup-1: A1 {a1:?}, B1 {b1:?}"
    );

    // Settled: every further retry of dup-1 gets the same answer.
    for _ in 0..3 {
        let (status, body) = c.transfer("A1", "B1", 50_000, Some("dup-1")).await;
        record("dup-1", &five_hundred, status, &body);
        assert_shape(status, &body);
        assert_eq!(answer_key(status, &body), settled, "{body}");
    }
    let (status, body) = c.transfer("A1", "B1", 100, Some("dup-1")).await;
    record("dup-1", &one_dollar, status, &body);
    assert_shape(status, &body);
    assert_ne!(status, 200, "dup-1 as $1.00 committed after all: {body}");

    let report = audit(
        &c,
        &c.wait_quiescent().await,
        &Reported {
            sent,
            ..Reported::default()
        },
    )
    .await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}
