//! A short chaos run in the test command: random kill -9 of participants
//! and of the coordinator, injected engine crashes, delayed, cut and
//! duplicating links, under concurrent transfers; then heal and audit.
//! The long run is `target/release/chaos --seconds 300` (see the README).

use system_tests::chaos::{run, ChaosConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_survive_random_crashes_and_link_faults() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let seconds = std::env::var("CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let summary = run(ChaosConfig {
        seconds,
        clients: 8,
        seed,
        verbose: true,
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
        faults >= 10,
        "too few faults injected to mean anything: {summary}"
    );
}
