//! Every fault knob against real processes, each followed by the
//! money audit: participant crash points, partitions, slow and duplicating
//! links, the original demo's random crash during prepare, and torn or
//! corrupt coordinator logs.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use serde_json::json;
use shared::api::{ComponentStatus, Outcome};
use shared::wire::AbortReason;
use system_tests::audit::{audit, Reported};
use system_tests::{Cluster, Options};

fn quick() -> Options {
    // Short enough that the tests which wait for a timeout stay quick, long
    // enough that a slow fdatasync on a loaded machine is not one.
    Options {
        prepare_timeout_ms: 5_000,
        ack_wait_ms: 2_000,
        ..Options::default()
    }
}

async fn assert_books_balance(c: &Cluster, reported: Reported) {
    let view = c.wait_quiescent().await;
    let report = audit(c, &view, &reported).await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

fn committed(ids: &[&str]) -> Reported {
    Reported {
        committed: ids.iter().map(|s| s.to_string()).collect(),
        ..Reported::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_crashing_after_logging_prepared_aborts_the_transfer() {
    let c = Cluster::start(quick()).await;
    let (status, body) = c
        .post(
            "/api/nodes/6002/crash",
            json!({"at": "after_prepare_logged"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, r) = c.transfer_outcome("A", "B", 500, Some("p-crash")).await;
    assert_eq!(status, 409);
    assert!(
        matches!(
            r.reason,
            Some(AbortReason::NodeUnreachable | AbortReason::Timeout)
        ),
        "{r:?}"
    );
    c.wait_node_status("6002", ComponentStatus::Down).await;
    // It restarts in doubt (PREPARED is in its log) and learns "abort".
    c.post("/api/nodes/6002/restart", json!({})).await;
    c.wait_all_up().await;
    assert_books_balance(
        &c,
        Reported {
            aborted: ["p-crash".to_string()].into(),
            ..Reported::default()
        },
    )
    .await;
    assert!(c.ledger("B").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_crashing_after_applying_a_commit_acks_it_after_restart() {
    let c = Cluster::start(quick()).await;
    let (status, body) = c
        .post(
            "/api/nodes/6002/crash",
            json!({"at": "after_commit_applied"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, r) = c.transfer_outcome("A", "B", 700, Some("c-crash")).await;
    assert_eq!(
        (status, r.outcome),
        (200, Outcome::Committed),
        "the decision was commit: {r:?}"
    );
    // 6002 said `applied` before it died (it dies once its COMMITTED record
    // is durable, before the ack): the answer does not wait for the ack.
    assert_eq!(
        r.detail, None,
        "answered as applied everywhere, not after the ack wait: {r:?}"
    );
    c.wait_node_status("6002", ComponentStatus::Down).await;
    c.post("/api/nodes/6002/restart", json!({})).await;
    c.wait_all_up().await;
    assert_books_balance(&c, committed(&["c-crash"])).await;
    assert_eq!(
        c.ledger("B").await.len(),
        1,
        "applied exactly once despite the re-sent commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_aborts_until_healed_and_a_slow_link_only_slows() {
    let c = Cluster::start(quick()).await;
    let (status, _) = c.put("/api/nodes/6002/link", json!({"drop": true})).await;
    assert_eq!(status, 200);
    let (status, r) = c.transfer_outcome("A", "B", 100, Some("cut-1")).await;
    assert_eq!(
        (status, r.reason),
        (409, Some(AbortReason::Timeout)),
        "{r:?}"
    );
    let view = c.cluster().await;
    let node = view.nodes.iter().find(|n| n.id == "6002").unwrap();
    assert_eq!(node.status, ComponentStatus::Unreachable);
    assert!(node.link.drop);
    let (status, _) = c.delete("/api/nodes/6002/link").await;
    assert_eq!(status, 200);
    c.wait_all_up().await;
    let (status, _) = c.transfer_outcome("A", "B", 100, Some("healed-1")).await;
    assert_eq!(status, 200);

    c.put("/api/nodes/6001/link", json!({"delay_ms": 150}))
        .await;
    let started = Instant::now();
    let (status, r) = c.transfer_outcome("A", "B", 100, Some("slow-1")).await;
    assert_eq!(status, 200, "{r:?}");
    // Prepare and commit each cross the slow link both ways.
    assert!(
        started.elapsed() >= Duration::from_millis(4 * 150),
        "took {:?}",
        started.elapsed()
    );
    assert!(r.duration_ms >= 4.0 * 150.0, "{r:?}");
    c.delete("/api/nodes/6001/link").await;
    assert_books_balance(&c, committed(&["healed-1", "slow-1"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_messages_change_nothing() {
    let c = Cluster::start(quick()).await;
    for node in ["6001", "6002"] {
        let (status, _) = c
            .put(
                &format!("/api/nodes/{node}/link"),
                json!({"duplicate": true}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let mut ids = Vec::new();
    for i in 0..20 {
        let id = format!("dup-link-{i}");
        let (from, to) = if i % 2 == 0 { ("A", "B") } else { ("B", "A") };
        let (status, r) = c.transfer_outcome(from, to, 100 + i, Some(&id)).await;
        assert_eq!(status, 200, "{r:?}");
        ids.push(id);
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_books_balance(&c, committed(&ids)).await;
    assert_eq!(c.ledger("A").await.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_demos_random_prepare_crash_never_breaks_atomicity() {
    let c = Cluster::start(quick()).await;
    let (status, faults) = c
        .put("/api/faults", json!({"prepare_crash_probability": 1.0}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(faults["prepare_crash_probability"], 1.0);
    let (status, r) = c.transfer_outcome("A", "B", 100, Some("rand-1")).await;
    assert_eq!(status, 409, "{r:?}");
    c.put("/api/faults", json!({"prepare_crash_probability": 0.0}))
        .await;
    // Both nodes were armed before their prepare; each dies once its
    // PREPARED record is durable, which may be after the answer above.
    for node in ["6001", "6002"] {
        c.wait_node_status(node, ComponentStatus::Down).await;
        let (status, body) = c
            .post(&format!("/api/nodes/{node}/restart"), json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    c.wait_all_up().await;
    let (status, _) = c.transfer_outcome("A", "B", 100, Some("rand-2")).await;
    assert_eq!(status, 200);
    let reported = Reported {
        committed: ["rand-2".to_string()].into(),
        aborted: ["rand-1".to_string()].into(),
        ..Reported::default()
    };
    assert_books_balance(&c, reported).await;
}

fn coordinator_log(c: &Cluster) -> std::path::PathBuf {
    c.data_dir().join("coordinator").join("coordinator.log")
}

/// Checkpoints are written beside the logs while transfers go on; with tiny
/// ones (`--log-checkpoint-bytes`, passed on to the nodes too) one is being
/// written almost all the time. A `kill -9` of the coordinator right after
/// each round must lose nothing: every transfer it answered is still known
/// by its tx_id (a retry gets the first outcome and moves nothing) and the
/// books balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_coordinator_while_checkpoints_are_written_loses_nothing() {
    let options = Options {
        extra_args: vec!["--log-checkpoint-bytes".into(), "1536".into()],
        ..quick()
    };
    let mut c = Cluster::start(options).await;
    let mut ids = Vec::new();
    for round in 0..4 {
        let transfers = (0..25).map(|i| {
            let id = format!("cp-{round}-{i}");
            let c = &c;
            async move {
                let (status, r) = c.transfer_outcome("A", "B", 100, Some(&id)).await;
                assert_eq!(
                    (status, r.outcome),
                    (200, Outcome::Committed),
                    "{id}: {r:?}"
                );
                id
            }
        });
        ids.extend(futures_util::future::join_all(transfers).await);
        c.kill_coordinator();
        c.start_coordinator().await;
        c.wait_all_up().await;
        c.wait_ready().await;
    }
    for id in &ids {
        let (status, r) = c.transfer_outcome("A", "B", 100, Some(id)).await;
        assert_eq!(
            (status, r.outcome),
            (200, Outcome::Committed),
            "retry of {id}: {r:?}"
        );
    }
    // Each moved exactly once, retries included.
    let moved = 100 * ids.len() as i64;
    let balances = c.balances().await;
    assert_eq!(
        (balances["A"], balances["B"]),
        (100_000 - moved, 100_000 + moved)
    );
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_books_balance(&c, committed(&ids)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_coordinator_log_tail_is_cut_and_everything_before_it_kept() {
    let mut c = Cluster::start(quick()).await;
    for i in 0..5 {
        let (status, _) = c
            .transfer_outcome("A", "B", 1_000, Some(&format!("torn-{i}")))
            .await;
        assert_eq!(status, 200);
    }
    // A clean stop writes everything (SIGTERM exits 0); then tear the last
    // record in half.
    assert!(c.stop_coordinator().await.success(), "a clean stop exits 0");
    let path = coordinator_log(&c);
    let mut log = std::fs::read(&path).unwrap();
    // The file is preallocated: zeros follow the last frame. Tear that
    // frame as a crash would: its last bytes stay zeros.
    let end = shared::log::scan(&log).unwrap().valid_len as usize;
    assert!(end > 20, "the log has records");
    assert!(
        log[end..].iter().all(|&b| b == 0) && log.len() > end,
        "preallocated"
    );
    log[end - 5..end].fill(0);
    std::fs::write(&path, &log).unwrap();
    c.start_coordinator().await;
    c.wait_all_up().await;
    // The commits before the tear are intact: their retries are answered
    // from the log, and nothing moves twice.
    for i in 0..4 {
        let (status, r) = c
            .transfer_outcome("A", "B", 1_000, Some(&format!("torn-{i}")))
            .await;
        assert_eq!((status, r.outcome), (200, Outcome::Committed));
    }
    assert_eq!(c.balances().await["A"], 95_000);
    let ids: Vec<String> = (0..5).map(|i| format!("torn-{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_books_balance(&c, committed(&ids)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_in_the_middle_refuses_to_start_with_a_clear_message() {
    let mut c = Cluster::start(quick()).await;
    for i in 0..5 {
        c.transfer_outcome("A", "B", 1_000, Some(&format!("mid-{i}")))
            .await;
    }
    assert!(c.stop_coordinator().await.success(), "a clean stop exits 0");
    let path = coordinator_log(&c);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(20)).unwrap();
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(20)).unwrap();
    file.write_all(&[byte[0] ^ 0x55]).unwrap();
    drop(file);
    let output = c
        .coordinator_command()
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("coordinator.log"),
        "names the file: {stderr}"
    );
    assert!(stderr.contains("offset"), "names where: {stderr}");
}

/// While the coordinator's engine is crashed, the dashboard still sees the
/// nodes, and the transaction they hold in doubt, through its query-only
/// connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_their_in_doubt_transactions_stay_visible_while_the_coordinator_is_down() {
    let c = Cluster::start(quick()).await;
    let (status, _) = c
        .post(
            "/api/coordinator/crash",
            json!({"at": "after_decision", "restart_after_ms": 8_000}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = c.transfer("A", "B", 300, Some("seen-in-doubt")).await;
    assert_eq!(status, 503);
    let view = system_tests::wait_for_async(
        "both nodes to show the in-doubt transaction",
        system_tests::DEADLINE,
        || async {
            let view = c.try_cluster().await?;
            let shown = view
                .nodes
                .iter()
                .all(|n| n.status == ComponentStatus::Up && n.in_doubt == ["seen-in-doubt"]);
            shown.then_some(view)
        },
    )
    .await;
    assert_eq!(view.coordinator.status, ComponentStatus::Down, "{view:?}");
    assert!(
        view.nodes.iter().all(|n| !n.locked_accounts.is_empty()),
        "in-doubt locks are held: {view:?}"
    );
    // Ledgers can be read meanwhile (nothing applied yet).
    assert!(c.ledger("A").await.is_empty());
    c.wait_all_up().await;
    assert_books_balance(&c, committed(&["seen-in-doubt"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_armed_coordinator_crash_can_be_disarmed() {
    let c = Cluster::start(quick()).await;
    assert_eq!(
        c.delete("/api/coordinator/crash").await.0,
        404,
        "nothing armed yet"
    );
    c.post("/api/coordinator/crash", json!({"at": "before_decision"}))
        .await;
    let (_, faults) = c.get("/api/faults").await;
    assert_eq!(faults["coordinator_crash"]["at"], "before_decision");
    let (status, _) = c.delete("/api/coordinator/crash").await;
    assert_eq!(status, 200);
    let (_, faults) = c.get("/api/faults").await;
    assert!(faults["coordinator_crash"].is_null(), "{faults}");
    let (status, _) = c.transfer_outcome("A", "B", 100, Some("not-crashed")).await;
    assert_eq!(status, 200);
    assert_eq!(c.cluster().await.coordinator.status, ComponentStatus::Up);
}

/// A node whose data dir is held by a process that does not listen yet (one
/// a previous coordinator started just before it was killed, still
/// recovering from its log) is waited for, not started a second time: the
/// second start died on the lock and took the whole coordinator start with
/// it (seen once in a 300 s chaos run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_coordinator_waits_for_a_node_that_still_holds_its_data_dir() {
    let mut c = Cluster::start(quick()).await;
    let (status, _) = c.transfer_outcome("A", "B", 100, Some("before")).await;
    assert_eq!(status, 200);
    let pid = system_tests::node_pid(&c, "6001")
        .await
        .expect("node 6001 runs");
    c.kill_coordinator();
    system_tests::kill9(pid);
    let dir = c.node_data_dir("6001");
    system_tests::wait_for(
        "node 6001 to be gone (its data dir free)",
        system_tests::DEADLINE,
        || (!shared::log::file::dir_is_locked(&dir)).then_some(()),
    )
    .await;
    // Hold the data dir as a node still recovering would, for a while.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("LOCK"))
        .expect("the LOCK file");
    lock.try_lock().expect("free");
    assert!(shared::log::file::dir_is_locked(&dir));
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        drop(lock);
    });
    c.start_coordinator().await;
    release.await.expect("released");
    c.wait_all_up().await;
    c.wait_ready().await;
    let (status, r) = c.transfer_outcome("A", "B", 100, Some("after")).await;
    assert_eq!((status, r.outcome), (200, Outcome::Committed), "{r:?}");
    let balances = c.balances().await;
    assert_eq!(
        (balances["A"], balances["B"]),
        (100_000 - 200, 100_000 + 200)
    );
}

/// Two restarts of a dead node at once (an operator's and a script's, say)
/// start one process: the other is told so (409). The second start used to
/// spawn a twin that died on the data dir's lock, after deleting the
/// running node's address file; a coordinator started later then could
/// not find the node that held the dir, and gave up after 30 s (a chaos
/// run, seed 4242, found it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_restarts_at_once_start_one_node_that_a_new_coordinator_adopts() {
    let mut c = Cluster::start(quick()).await;
    let (status, body) = c.post("/api/nodes/6001/crash", json!({})).await;
    assert_eq!(status, 200, "{body}");
    c.wait_node_status("6001", ComponentStatus::Down).await;

    let (first, second) = tokio::join!(
        c.post("/api/nodes/6001/restart", json!({})),
        c.post("/api/nodes/6001/restart", json!({})),
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{first:?} {second:?}");
    let refused = if first.0 == 409 { &first.1 } else { &second.1 };
    let why = refused["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("already") || why.contains("held by another process"),
        "{refused}"
    );
    c.wait_all_up().await;
    let addr_file = c.node_data_dir("6001").join("addr");
    assert!(
        addr_file.exists(),
        "the running node's address file is kept"
    );

    // A coordinator that did not start the node finds it and adopts it.
    c.kill_coordinator();
    let started = Instant::now();
    c.start_coordinator().await;
    c.wait_all_up().await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "adopted at once, not after the 30 s wait: {:?}",
        started.elapsed()
    );
    let (status, r) = c.transfer_outcome("A", "B", 100, Some("after")).await;
    assert_eq!((status, r.outcome), (200, Outcome::Committed), "{r:?}");
    // A restart of a node that runs, which this coordinator did not start
    // and so cannot stop, is refused without a second process.
    let (status, body) = c.post("/api/nodes/6001/restart", json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(addr_file.exists());
}
