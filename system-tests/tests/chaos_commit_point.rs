//! The short chaos run of `chaos.rs`, with clients answered at the commit
//! point (`--ack-wait-ms 0`). Its own test binary, so that the two runs do
//! not share the machine's two cores at once.

use system_tests::chaos::{assert_clean, run, seed_from_env, ChaosConfig};

/// Chaos with clients answered at the commit point (`--ack-wait-ms 0`):
/// every transfer reported committed must still be on every ledger once the
/// faults stop, although no node had acked it when the client was told, and
/// a retry of it must be told the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_answered_at_the_commit_point_survive_random_crashes() {
    let seed = seed_from_env(2);
    let summary = run(ChaosConfig {
        seconds: 15,
        clients: 8,
        seed,
        verbose: true,
        ack_wait_ms: 0,
        ..ChaosConfig::default()
    })
    .await;
    assert_clean(&summary, seed, 8);
}
