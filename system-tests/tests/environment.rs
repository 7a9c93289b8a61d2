//! Configuration from `TPC_*` variables alone, with real processes: a
//! coordinator put in demo mode by `TPC_DEMO`, a participant started with
//! no flag at all, and `participant-admin` pointed at it by variables. A
//! supervised node does not pick up a stand-alone participant's variables.

use std::process::Stdio;

use serde_json::json;
use system_tests::{bin, wait_for, write_secret_file, Cluster, Options, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_reads_its_options_from_the_environment() {
    let c = Cluster::start(Options {
        demo: false,
        extra_env: vec![
            ("TPC_DEMO".into(), "true".into()),
            // Meant for stand-alone participants: must not reach the
            // supervised ones (which would then obey fault requests).
            ("TPC_PARTICIPANT_ALLOW_FAULTS".into(), "true".into()),
        ],
        ..Options::default()
    })
    .await;
    assert!(c.cluster().await.coordinator.demo_mode, "TPC_DEMO=true");
    let (status, body) = c.post("/api/nodes/6002/crash", json!({})).await;
    assert_eq!(status, 200, "demo mode allows a crash: {body}");

    let plain = Cluster::start(Options {
        demo: false,
        extra_env: vec![("TPC_PARTICIPANT_ALLOW_FAULTS".into(), "true".into())],
        ..Options::default()
    })
    .await;
    assert!(!plain.cluster().await.coordinator.demo_mode);
    // The supervised node was started without --allow-faults, whatever the
    // coordinator's environment says: it refuses a heuristic decision sent
    // to it directly.
    let view = plain.cluster().await;
    let addr = view
        .nodes
        .iter()
        .find(|n| n.id == "6001")
        .map(|n| n.addr.clone())
        .expect("node 6001");
    let output = std::process::Command::new(bin("participant-admin"))
        .args(["heuristic", "--tx-id", "none", "--decision", "abort"])
        .env("TPC_PARTICIPANT_ADDR", &addr)
        .env("TPC_SECRET_FILE", plain.secret_file())
        .output()
        .expect("participant-admin runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("allow-faults"),
        "refused because the node does not allow faults: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_and_its_admin_tool_configured_by_variables_only() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let secret = write_secret_file(dir.path());
    let ready = dir.path().join("ready");
    let mut child = std::process::Command::new(bin("participant"))
        .env("TPC_PARTICIPANT_ID", "7001")
        .env("TPC_PARTICIPANT_LISTEN", "127.0.0.1:0")
        .env("TPC_PARTICIPANT_DATA_DIR", dir.path().join("data"))
        .env("TPC_PARTICIPANT_ACCOUNTS", "X=1234,Y=99")
        .env("TPC_PARTICIPANT_READY_FILE", &ready)
        .env("TPC_SECRET_FILE", &secret)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the participant starts");
    let addr = wait_for("the participant to listen", DEADLINE, || {
        std::fs::read_to_string(&ready)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .await;
    let output = std::process::Command::new(bin("participant-admin"))
        .arg("status")
        .env("TPC_PARTICIPANT_ADDR", &addr)
        .env("TPC_SECRET_FILE", &secret)
        .env("TPC_JSON", "1")
        .output()
        .expect("participant-admin runs");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("TPC_JSON=1 gives JSON");
    let balances: Vec<(String, i64)> = status["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap_or_default().to_string(),
                a["balance_cents"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        balances,
        [("X".to_string(), 1234), ("Y".to_string(), 99)],
        "{status}"
    );
}
