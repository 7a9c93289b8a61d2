//! A short chaos run in the test command: random kill -9 of participants
//! and of the coordinator, injected engine crashes, delayed, cut and
//! duplicating links, under concurrent transfers whose clients retry and
//! re-use tx_ids (the default mix); then heal and audit every request.
//! The long run is `target/release/chaos --seconds 300` (see the README).

use system_tests::chaos::{assert_clean, run, seed_from_env, ChaosConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_survive_random_crashes_and_link_faults() {
    let seed = seed_from_env(1);
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
    assert_clean(&summary, seed, 10);
}
