//! The short chaos run of `chaos.rs`, with clients answered at the commit
//! point (`--ack-wait-ms 0`). Its own test binary, so that the two runs do
//! not share the machine's two cores at once.

use system_tests::chaos::{run, ChaosConfig};

/// Chaos with clients answered at the commit point (`--ack-wait-ms 0`):
/// every transfer reported committed must still be on every ledger once the
/// faults stop, although no node had acked it when the client was told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_answered_at_the_commit_point_survive_random_crashes() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let summary = run(ChaosConfig {
        seconds: 15,
        clients: 8,
        seed,
        verbose: true,
        ack_wait_ms: 0,
        ..ChaosConfig::default()
    })
    .await;
    println!("{summary}");
    assert!(
        summary.violations.is_empty(),
        "audit failed (replay with CHAOS_SEED={seed}):\n{summary}"
    );
    assert_eq!(summary.total_cents, summary.expected_total_cents);
    assert!(summary.committed > 0, "nothing committed: {summary}");
    let faults: u64 = summary.faults.values().sum();
    assert!(
        faults >= 8,
        "too few faults injected to mean anything: {summary}"
    );
}
