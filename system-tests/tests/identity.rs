//! Who may speak for the cluster, with real processes: a coordinator with
//! another log is refused by the participants (it never presumes abort for
//! history it never had); a connection without the cluster secret is
//! refused before anything it sends is read; a data dir written before
//! cluster identities existed keeps working.
//!
//! Run alone: `cargo build -p backend -p participant && cargo test -p
//! system-tests --test identity`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use shared::api::ComponentStatus;
use shared::wire::{decode_line, encode_line, Op, Reply, Request};
use system_tests::{
    bin, wait_for_async, write_secret_file, Cluster, Options, OwnParticipant, DEADLINE,
};

/// The status of a node, asked straight at its port with the cluster secret
/// (as an operator would, with participant-admin).
fn node_status(addr: &str, secret_file: &Path) -> Value {
    let out = Command::new(bin("participant-admin"))
        .args(["--addr", addr, "--json", "status"])
        .arg("--secret-file")
        .arg(secret_file)
        .output()
        .expect("participant-admin runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON status")
}

/// Remote participants (A on 6401, B on 6402) and a demo coordinator: the
/// coordinator crashes mid-commit (6401 applied the transfer, 6402 holds it
/// in doubt) and is killed. A second coordinator with a new data dir (so a
/// new cluster) and the same participants must not resolve 6402's half:
/// both nodes refuse it, and say why. The original coordinator, restarted
/// on its log, finishes the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_with_another_log_is_refused_and_never_rolls_back_committed_history() {
    let dir = tempfile::Builder::new()
        .prefix("tpc-identity-")
        .tempdir()
        .expect("a temp dir");
    let secret_file = write_secret_file(dir.path());
    let a = OwnParticipant::start_with(dir.path(), &secret_file, "6401", "A=100000", &[]).await;
    let b = OwnParticipant::start_with(dir.path(), &secret_file, "6402", "B=100000", &[]).await;
    let options = Options {
        nodes: 0,
        extra_args: vec![
            "--participant".into(),
            format!("6401={}=A:100000", a.addr),
            "--participant".into(),
            format!("6402={}=B:100000", b.addr),
            "--secret-file".into(),
            secret_file.display().to_string(),
        ],
        ..Options::default()
    };
    let mut first = Cluster::start(options.clone()).await;
    let cluster_id = first
        .cluster()
        .await
        .coordinator
        .cluster
        .expect("a cluster id");

    let (status, body) = first
        .post(
            "/api/coordinator/crash",
            json!({"at": "mid_commit", "restart_after_ms": 600_000}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = first.transfer("A", "B", 10_000, Some("mid-1")).await;
    assert_eq!(status, 503, "the coordinator crashed mid-commit");
    // 6401 got the commit; 6402 holds mid-1 in doubt.
    wait_for_async("6402 to hold mid-1 in doubt", DEADLINE, || async {
        let status = node_status(&b.addr, &secret_file);
        (status["in_doubt"]
            .as_array()?
            .iter()
            .any(|t| t["tx_id"] == "mid-1"))
        .then_some(())
    })
    .await;
    first.kill_coordinator();

    // A second coordinator: a new data dir, the same nodes and secret.
    let mut second = Cluster::new(options.clone());
    second.start_coordinator().await;
    let view = wait_for_async(
        "both nodes to refuse the second coordinator",
        DEADLINE,
        || {
            let (second, cluster_id) = (&second, &cluster_id);
            async move {
                let view = second.try_cluster().await?;
                view.nodes
                    .iter()
                    .all(|n| n.refused.as_deref().is_some_and(|r| r.contains(cluster_id)))
                    .then_some(view)
            }
        },
    )
    .await;
    let other_cluster = view.coordinator.cluster.clone().expect("its own cluster");
    assert_ne!(other_cluster, cluster_id);
    for node in &view.nodes {
        assert_ne!(node.status, ComponentStatus::Up, "{node:?}");
        let why = node.refused.as_deref().unwrap_or_default();
        assert!(why.contains("belongs to cluster"), "{why}");
    }
    // It cannot move money through them, and 6402's half is still in doubt.
    let (status, body) = second.transfer("A", "B", 1, Some("second-1")).await;
    assert_ne!(status, 200, "{body}");
    let status_b = node_status(&b.addr, &secret_file);
    assert!(
        status_b["in_doubt"]
            .as_array()
            .is_some_and(|d| d.iter().any(|t| t["tx_id"] == "mid-1")),
        "{status_b}"
    );
    assert_eq!(status_b["accounts"][0]["balance_cents"], 100_000);
    second.kill_coordinator();

    // The coordinator that owns the log comes back and commits mid-1.
    first.start_coordinator().await;
    first.wait_all_up().await;
    let view = first.wait_quiescent().await;
    assert_eq!(
        view.coordinator.cluster.as_deref(),
        Some(cluster_id.as_str())
    );
    let balances = first.balances().await;
    assert_eq!((balances["A"], balances["B"]), (90_000, 110_000));
    assert_eq!(view.total_cents, 200_000);
}

/// Reads one line from a raw connection (None once it is closed).
fn read_reply(reader: &mut BufReader<TcpStream>) -> Option<Reply> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            Some(decode_line(text).expect("the node writes protocol lines"))
        }
    }
}

/// The audit's one-connection mint: `prepare` +$1,000,000 then `commit`,
/// straight to a node's port. Without the cluster secret nothing is read:
/// one error line, the connection closed, nothing moved. A wrong secret is
/// refused the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_the_cluster_secret_cannot_move_money() {
    let c = Cluster::start(Options::default()).await;
    let view = c.cluster().await;
    let addr = view
        .nodes
        .iter()
        .find(|n| n.id == "6001")
        .expect("6001")
        .addr
        .clone();
    let mint = |stream: &mut TcpStream| {
        let prepare = Request::Prepare {
            tx_id: "m".into(),
            ts_us: 1,
            epoch: 1,
            ops: vec![Op {
                account: "A".into(),
                delta_cents: 100_000_000,
            }],
        };
        stream.write_all(&encode_line(&prepare)).expect("write");
        stream
            .write_all(&encode_line(&Request::Commit { tx_id: "m".into() }))
            .expect("write");
    };

    // No auth at all.
    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    assert!(matches!(read_reply(&mut reader), Some(Reply::Hello { .. })));
    mint(&mut stream);
    let answer = read_reply(&mut reader);
    assert!(
        matches!(&answer, Some(Reply::Error { message }) if message.contains("authentication required")),
        "{answer:?}"
    );
    assert!(
        read_reply(&mut reader).is_none(),
        "the connection is closed"
    );

    // An auth with a proof made from the wrong secret.
    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let hello = read_reply(&mut reader).expect("hello");
    let wrong = shared::auth::ClusterSecret::from_random([9; 32]);
    let claim = shared::auth::Claim {
        role: shared::wire::PeerRole::Coordinator,
        cluster: "forged".into(),
        epoch: u64::MAX,
        legacy_history: true,
    };
    let (_, _, auth) =
        shared::auth::answer_hello(&wrong, &hello, &claim, "00".into()).expect("an auth line");
    stream.write_all(&encode_line(&auth)).expect("write");
    mint(&mut stream);
    let answer = read_reply(&mut reader);
    assert!(
        matches!(&answer, Some(Reply::Error { message }) if message.contains("authentication failed")),
        "{answer:?}"
    );
    assert!(
        read_reply(&mut reader).is_none(),
        "the connection is closed"
    );

    // An admin connection with the right secret may query, not prepare.
    let secret = c.secret().expect("the coordinator's secret");
    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let hello = read_reply(&mut reader).expect("hello");
    let (node, node_nonce, auth) =
        shared::auth::answer_hello(&secret, &hello, &system_tests::admin_claim(), "01".into())
            .expect("an auth line");
    stream.write_all(&encode_line(&auth)).expect("write");
    let welcome = read_reply(&mut reader).expect("welcome");
    shared::auth::check_welcome(&secret, &node, &node_nonce, "01", &welcome)
        .expect("the node proves the secret too");
    mint(&mut stream);
    for _ in 0..2 {
        let answer = read_reply(&mut reader);
        assert!(
            matches!(&answer, Some(Reply::Error { message }) if message.contains("admin")),
            "{answer:?}"
        );
    }

    let balances = c.balances().await;
    assert_eq!((balances["A"], balances["B"]), (100_000, 100_000));
    assert!(c.ledger("A").await.is_empty());
}

/// Copies `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a dir");
    for entry in std::fs::read_dir(from).expect("read a fixture dir") {
        let entry = entry.expect("a dir entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a fixture file");
        }
    }
}

/// A data dir written by the version before cluster identities and epochs
/// (binary checkpoints and records of that version; a transfer, legacy-pending,
/// committed by the coordinator and prepared on both nodes when everything
/// was killed): it starts, adopts its history, finishes legacy-pending, and
/// answers retries from what it remembers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_the_previous_version_keeps_working() {
    let options = Options {
        nodes: 2,
        accounts_per_node: 2,
        ..Options::default()
    };
    let mut c = Cluster::new(options);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-v1");
    copy_dir(&fixture, &c.data_dir());
    c.start_coordinator().await;
    c.wait_all_up().await;
    let view = c.wait_quiescent().await;
    assert_eq!(view.total_cents, 400_000);
    assert!(view.coordinator.cluster.is_some() && view.coordinator.epoch == Some(1));
    // legacy-pending (B1 -> A1, $7.77) was decided before the upgrade.
    let on = |entries: &[shared::api::LedgerEntry], tx: &str| {
        entries
            .iter()
            .filter(|e| e.tx_id == tx)
            .map(|e| e.delta_cents)
            .collect::<Vec<_>>()
    };
    let (a1, b1) = (c.ledger("A1").await, c.ledger("B1").await);
    assert_eq!(on(&a1, "legacy-pending"), vec![777]);
    assert_eq!(on(&b1, "legacy-pending"), vec![-777]);
    for i in 1..=12 {
        assert_eq!(on(&a1, &format!("legacy-{i}")).len(), 1, "legacy-{i}");
    }
    // Retries get the outcomes the old version gave.
    let (status, r) = c.transfer_outcome("A1", "B1", 103, Some("legacy-3")).await;
    assert_eq!(status, 200, "{r:?}");
    let (status, r) = c
        .transfer_outcome("A2", "B2", 99_999_999, Some("legacy-poor"))
        .await;
    assert_eq!(status, 409, "{r:?}");
    let (status, body) = c.transfer("A1", "B1", 5_000, Some("legacy-3")).await;
    assert_eq!(status, 409, "a different body under a used id: {body}");
    assert!(body["error"]
        .as_str()
        .is_some_and(|e| e.contains("different transfer")));
    // New transfers run, and nothing moved twice.
    let (status, r) = c
        .transfer_outcome("A1", "B2", 100, Some("after-upgrade"))
        .await;
    assert_eq!(status, 200, "{r:?}");
    assert_eq!(c.wait_quiescent().await.total_cents, 400_000);
    assert_eq!(on(&c.ledger("A1").await, "legacy-3").len(), 1);
}
