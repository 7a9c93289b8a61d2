//! Step mode's hold and the recording, against real processes: a prepare
//! dropped in the hold ends in the vote timeout's abort; a commit held
//! leaves its node in doubt until it goes on; "next" lets exactly one
//! message go; the recording replays a run from a snapshot and survives a
//! `kill -9` of the coordinator; outside demo mode the hold is refused.
//!
//!   cargo build -p backend -p participant && cargo test -p system-tests --test replay

use std::time::Duration;

use serde_json::{json, Value};
use shared::api::{HeldMessageView, HeldMessages, Outcome};
use shared::events::{EventKind, MessageName as Name};
use shared::recording::{self, Recording};
use shared::wire::AbortReason;
use system_tests::audit::{audit, Reported};
use system_tests::{wait_for_async, Cluster, Options, DEADLINE};

fn quick() -> Options {
    Options {
        prepare_timeout_ms: 3_000,
        ack_wait_ms: 2_000,
        ..Options::default()
    }
}

async fn held(c: &Cluster) -> HeldMessages {
    let (status, body) = c.get("/api/messages").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).expect("a list of held messages")
}

/// Waits until the hold has a message matching `wanted`, and returns it.
async fn wait_held(
    c: &Cluster,
    what: &str,
    wanted: impl Fn(&HeldMessageView) -> bool,
) -> HeldMessageView {
    wait_for_async(what, DEADLINE, || async {
        held(c).await.messages.into_iter().find(|m| wanted(m))
    })
    .await
}

async fn act(c: &Cluster, id: u64, action: Value) -> (u16, Value) {
    c.post(&format!("/api/messages/{id}"), action).await
}

async fn set_hold(c: &Cluster, hold: bool) {
    let (status, body) = c.put("/api/faults", json!({"hold_messages": hold})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hold_messages"], hold);
}

async fn recording_text(c: &Cluster, query: &str) -> (u16, String) {
    let response = c
        .http
        .get(c.url(&format!("/api/recording{query}")))
        .send()
        .await
        .expect("the coordinator answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn recording(c: &Cluster, query: &str) -> Recording {
    let (status, text) = recording_text(c, query).await;
    assert_eq!(status, 200, "{text}");
    recording::parse(&text, usize::MAX).expect("the answer is a recording")
}

fn finished(recording: &Recording, tx_id: &str) -> bool {
    recording
        .events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::TxFinished { tx_id: t, .. } if t == tx_id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_lets_exactly_one_message_go_and_a_dropped_prepare_ends_in_the_vote_timeout() {
    let c = Cluster::start(quick()).await;
    set_hold(&c, true).await;
    let driver = async {
        let first = wait_held(&c, "a prepare to be held", |m| m.message == Name::Prepare).await;
        let both = wait_for_async("both prepares to be held", DEADLINE, || async {
            let list = held(&c).await.messages;
            (list.iter().filter(|m| m.message == Name::Prepare).count() == 2).then_some(list)
        })
        .await;
        assert_eq!(both[0].id, first.id, "oldest first");
        let (status, body) = c.post("/api/messages/next", json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["released"],
            json!([first.id]),
            "exactly one message goes"
        );
        let left: Vec<u64> = held(&c).await.messages.iter().map(|m| m.id).collect();
        assert!(
            left.contains(&both[1].id) && !left.contains(&first.id),
            "{left:?}"
        );
        let (status, body) = act(&c, both[1].id, json!({"action": "drop"})).await;
        assert_eq!(status, 200, "{body}");
        // The vote of the node that got its prepare, and the rollbacks after
        // the timeout, go on as they come.
        loop {
            let list = held(&c).await.messages;
            for m in &list {
                act(&c, m.id, json!({"action": "deliver"})).await;
            }
            let decided = recording(&c, "").await.events.iter().any(|e| {
                matches!(&e.kind, EventKind::Decision { tx_id, .. } if tx_id == "dropped-prepare")
            });
            if decided && list.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let transfer = c.transfer_outcome("A", "B", 700, Some("dropped-prepare"));
    let ((status, response), ()) = tokio::join!(transfer, driver);
    assert_eq!(status, 409, "{response:?}");
    assert_eq!(response.outcome, Outcome::Aborted);
    assert_eq!(response.reason, Some(AbortReason::Timeout), "{response:?}");
    set_hold(&c, false).await;
    let view = c.wait_quiescent().await;
    let report = audit(&c, &view, &Reported::default()).await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    // The recording tells the story the dashboard draws.
    let events = recording(&c, "").await.events;
    let dropped = events.iter().any(|e| {
        matches!(&e.kind, EventKind::MessageDropped { tx_id, message: Name::Prepare, .. } if tx_id == "dropped-prepare")
    });
    assert!(dropped, "the drop is recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_commit_leaves_its_node_in_doubt_until_it_goes_on() {
    let c = Cluster::start(quick()).await;
    set_hold(&c, true).await;
    let tx = "held-commit";
    let driver = async {
        // Everything goes on at once but the commit to 6002.
        let commit = loop {
            let list = held(&c).await.messages;
            let commit = list
                .iter()
                .find(|m| m.message == Name::Commit && m.node == "6002")
                .cloned();
            for m in list
                .iter()
                .filter(|m| Some(m.id) != commit.as_ref().map(|c| c.id))
            {
                act(&c, m.id, json!({"action": "deliver"})).await;
            }
            if let Some(commit) = commit {
                break commit;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        assert_eq!(commit.tx_id, tx);
        wait_for_async(
            "node 6002 to show the transfer in doubt",
            DEADLINE,
            || async {
                let view = c.cluster().await;
                let node = view.nodes.iter().find(|n| n.id == "6002")?;
                node.in_doubt.iter().any(|t| t == tx).then_some(())
            },
        )
        .await;
        // The coordinator's in-doubt sweep re-sends the commit every
        // second: the copies wait with the held one.
        wait_for_async("an in-doubt sweep of 6002", DEADLINE, || async {
            recording(&c, "").await.events.iter().any(|e| {
                matches!(&e.kind, EventKind::InDoubtReported { node, tx_ids } if node == "6002" && tx_ids.iter().any(|t| t == tx))
            }).then_some(())
        })
        .await;
        let commits = held(&c)
            .await
            .messages
            .iter()
            .filter(|m| m.message == Name::Commit && m.node == "6002")
            .count();
        assert_eq!(commits, 1, "retries wait with the held commit");
        let view = c.cluster().await;
        assert!(view
            .nodes
            .iter()
            .any(|n| n.id == "6002" && n.in_doubt.iter().any(|t| t == tx)));
        let (status, body) = act(&c, commit.id, json!({"action": "deliver"})).await;
        assert_eq!(status, 200, "{body}");
        // The acks that follow go on too.
        set_hold(&c, false).await;
    };
    let transfer = c.transfer_outcome("A", "B", 900, Some(tx));
    let ((status, response), ()) = tokio::join!(transfer, driver);
    assert_eq!(status, 200, "{response:?}");
    let view = c.wait_quiescent().await;
    let report = audit(
        &c,
        &view,
        &Reported {
            committed: vec![tx.to_string()].into_iter().collect(),
            ..Reported::default()
        },
    )
    .await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    // The recording holds the node's in-doubt list as it changed.
    let events = recording(&c, "").await.events;
    let in_doubt_recorded = events.iter().any(|e| {
        matches!(&e.kind, EventKind::NodeState { node, in_doubt, .. } if node == "6002" && in_doubt.iter().any(|t| t == tx))
    });
    assert!(in_doubt_recorded, "a node_state event shows 6002 in doubt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_message_can_be_duplicated_or_delayed_and_bad_requests_are_refused() {
    let c = Cluster::start(quick()).await;
    let (status, body) = c.post("/api/messages/next", json!({})).await;
    assert_eq!(status, 404, "nothing is held: {body}");
    set_hold(&c, true).await;
    let driver = async {
        let first = wait_held(&c, "a prepare", |m| m.message == Name::Prepare).await;
        let (status, body) = act(&c, first.id, json!({"action": "delay"})).await;
        assert_eq!(status, 422, "delay without delay_ms: {body}");
        let (status, body) = act(&c, first.id, json!({"action": "drop", "delay_ms": 5})).await;
        assert_eq!(status, 422, "delay_ms with drop: {body}");
        let (status, body) = act(&c, first.id, json!({"action": "jump"})).await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = act(&c, first.id, json!({"action": "delay", "delay_ms": 200})).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = act(&c, first.id, json!({"action": "deliver"})).await;
        assert_eq!(status, 404, "it went on already: {body}");
        let (status, _) = c.post("/api/messages/abc", json!({"action": "drop"})).await;
        assert_eq!(status, 404);
        let mut duplicated = false;
        loop {
            let list = held(&c).await.messages;
            for m in &list {
                let action = if duplicated {
                    json!({"action": "deliver"})
                } else {
                    duplicated = true;
                    json!({"action": "duplicate"})
                };
                act(&c, m.id, action).await;
            }
            if recording(&c, "").await.events.iter().any(
                |e| matches!(&e.kind, EventKind::TxFinished { tx_id, .. } if tx_id == "dup-delay"),
            ) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    let transfer = c.transfer_outcome("A", "B", 300, Some("dup-delay"));
    let ((status, response), ()) = tokio::join!(transfer, driver);
    assert_eq!(status, 200, "{response:?}");
    set_hold(&c, false).await;
    let events = recording(&c, "").await.events;
    let copies: Vec<(u8, u64)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::MessageReleased {
                copies, delay_ms, ..
            } => Some((*copies, *delay_ms)),
            _ => None,
        })
        .collect();
    assert!(copies.contains(&(1, 200)), "{copies:?}");
    assert!(copies.contains(&(2, 0)), "{copies:?}");
    let view = c.wait_quiescent().await;
    let report = audit(
        &c,
        &view,
        &Reported {
            committed: vec!["dup-delay".to_string()].into_iter().collect(),
            ..Reported::default()
        },
    )
    .await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_replays_from_a_snapshot_and_survives_a_coordinator_kill() {
    let mut c = Cluster::start(quick()).await;
    wait_for_async("a first snapshot to be recorded", DEADLINE, || async {
        let info = c.get("/api/recording/info").await.1;
        info["snapshots"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
            .then_some(())
    })
    .await;
    for (i, amount) in [100, 200, 300].into_iter().enumerate() {
        let (status, _) = c
            .transfer_outcome("A", "B", amount, Some(&format!("rec-{i}")))
            .await;
        assert_eq!(status, 200);
    }
    let before = wait_for_async("the transfers to be recorded", DEADLINE, || async {
        let r = recording(&c, "").await;
        (0..3)
            .all(|i| finished(&r, &format!("rec-{i}")))
            .then_some(r)
    })
    .await;
    assert_eq!(before.header.version, recording::VERSION);
    let snapshot_at = before
        .events
        .iter()
        .position(|e| matches!(e.kind, EventKind::Snapshot(_)));
    let first_transfer_at = before
        .events
        .iter()
        .position(|e| matches!(&e.kind, EventKind::TxStarted { tx_id, .. } if tx_id == "rec-0"));
    assert!(
        snapshot_at.is_some() && snapshot_at < first_transfer_at,
        "a snapshot comes before the run"
    );
    assert!(before.events.windows(2).all(|w| w[0].seq <= w[1].seq));
    let balances = before
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Balances { .. }));
    assert!(balances, "balances are recorded while nobody watches");

    // A range starts at the snapshot before it, so it replays on its own.
    let started = |r: &Recording, tx: &str| {
        r.events
            .iter()
            .find(|e| matches!(&e.kind, EventKind::TxStarted { tx_id, .. } if tx_id == tx))
            .map(|e| e.seq)
    };
    let second = started(&before, "rec-1").expect("rec-1 started");
    let range = recording(&c, &format!("?from_seq={second}&to_seq={}", second + 3)).await;
    assert!(matches!(range.events[0].kind, EventKind::Snapshot(_)));
    assert!(range.events[0].seq <= second);
    assert!(range.events.iter().any(|e| e.seq == second));
    assert!(range.events.iter().all(|e| e.seq <= second + 3));

    let info = c.get("/api/recording/info").await.1;
    assert_eq!(info["enabled"], true, "{info}");
    assert!(
        info["snapshots"].as_array().is_some_and(|s| !s.is_empty()),
        "{info}"
    );

    for (query, status) in [
        ("?from_seq=abc", 400),
        ("?from_seq=-1", 400),
        ("?from_seq=1.5", 400),
        ("?seq=1", 400),
    ] {
        let (got, text) = recording_text(&c, query).await;
        assert_eq!(got, status, "{query}: {text}");
        let body: Value = serde_json::from_str(&text).expect("an error body");
        assert!(body["error"].is_string(), "{text}");
    }
    // from_seq after to_seq is an empty range: the header line alone.
    let (got, text) = recording_text(&c, "?from_seq=9&to_seq=3").await;
    assert_eq!(got, 200, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let header: Value = serde_json::from_str(lines[0]).expect("the header line");
    assert_eq!(header["format"], "tpc-recording", "{text}");
    // A whole number written with a fraction is that number.
    let whole = recording(&c, &format!("?from_seq={second}.0&to_seq={}", second + 3)).await;
    assert_eq!(
        whole.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        range.events.iter().map(|e| e.seq).collect::<Vec<_>>()
    );

    // kill -9 of the coordinator: the recording stays, seqs go on after it.
    let last_before = before.events.last().expect("events").seq;
    c.kill_coordinator();
    c.start_coordinator().await;
    c.wait_all_up().await;
    c.wait_ready().await;
    let (status, _) = c.transfer_outcome("A", "B", 400, Some("rec-after")).await;
    assert_eq!(status, 200);
    let after = wait_for_async(
        "the transfer after the restart to be recorded",
        DEADLINE,
        || async {
            let r = recording(&c, "").await;
            finished(&r, "rec-after").then_some(r)
        },
    )
    .await;
    assert!(finished(&after, "rec-0"), "the old run is still there");
    let restarted = started(&after, "rec-after").expect("rec-after started");
    assert!(restarted > last_before, "{restarted} after {last_before}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_demo_mode_the_hold_is_refused_and_nothing_is_recorded() {
    let c = Cluster::start(Options {
        demo: false,
        ..quick()
    })
    .await;
    for (path, body) in [
        ("/api/messages/next", json!({})),
        ("/api/messages/1", json!({"action": "drop"})),
    ] {
        let (status, body) = c.post(path, body).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body["error"].is_string());
    }
    let (status, _) = c.put("/api/faults", json!({"hold_messages": true})).await;
    assert_eq!(status, 403);
    assert!(!held(&c).await.hold);
    let (status, text) = recording_text(&c, "").await;
    assert_eq!(status, 404, "{text}");
    assert_eq!(c.get("/api/recording/info").await.1["enabled"], false);
}
