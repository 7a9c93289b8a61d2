//! Long chaos runs against real processes (see `system_tests::chaos`).
//!
//! ```sh
//! cargo build --release -p backend -p participant -p system-tests
//! target/release/chaos --seconds 300 --clients 16 --seed 7
//! ```
//! The clients retry and re-use tx_ids as [`ClientMix`] says (flags below;
//! `--no-retries` for fresh ids only). Exits non-zero if the audit finds
//! any violation.

use clap::Parser;
use system_tests::chaos::{run, ChaosConfig, ClientMix};

#[derive(Parser)]
#[command(
    about = "Transfers under random kill -9, coordinator crashes and link faults, then a money audit"
)]
struct Args {
    /// How long the faults and the clients run.
    #[arg(long, default_value_t = 300)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Participant nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Seed of the fault schedule and the clients' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mean pause between faults, in milliseconds.
    #[arg(long, default_value_t = 700)]
    fault_interval_ms: u64,
    /// Print every fault as it is injected.
    #[arg(long)]
    verbose: bool,
    /// The coordinator's `--ack-wait-ms`; 0 answers clients at the commit
    /// point, before the nodes ack.
    #[arg(long, default_value_t = ChaosConfig::default().ack_wait_ms)]
    ack_wait_ms: u64,
    /// Percent of answers (committed, aborted, 409) followed by the same
    /// request again: same tx_id, same body.
    #[arg(long, default_value_t = ClientMix::default().retry_percent)]
    retry_percent: u32,
    /// Percent of answers followed by a different transfer under the same tx_id.
    #[arg(long, default_value_t = ClientMix::default().reuse_percent)]
    reuse_percent: u32,
    /// Percent of 503s and cut connections followed by the same request at once.
    #[arg(long, default_value_t = ClientMix::default().retry_unknown_percent)]
    retry_unknown_percent: u32,
    /// Percent of 503s and cut connections followed by a different transfer
    /// under the same tx_id.
    #[arg(long, default_value_t = ClientMix::default().reuse_unknown_percent)]
    reuse_unknown_percent: u32,
    /// Percent of new requests that take a tx_id used before.
    #[arg(long, default_value_t = ClientMix::default().old_id_percent)]
    old_id_percent: u32,
    /// The same within --storm-ms of any 503 or cut, from unanswered requests.
    #[arg(long, default_value_t = ClientMix::default().storm_percent)]
    storm_percent: u32,
    /// How long after a 503 or cut --storm-percent applies, in milliseconds.
    #[arg(long, default_value_t = ClientMix::default().storm_ms)]
    storm_ms: u64,
    /// Fresh tx_ids only, never retried (overrides the percentages above).
    #[arg(long)]
    no_retries: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.nodes < 2 || args.clients == 0 {
        eprintln!("error: --nodes must be at least 2 and --clients at least 1");
        return std::process::ExitCode::from(2);
    }
    let mix = if args.no_retries {
        ClientMix::none()
    } else {
        ClientMix {
            retry_percent: args.retry_percent,
            reuse_percent: args.reuse_percent,
            retry_unknown_percent: args.retry_unknown_percent,
            reuse_unknown_percent: args.reuse_unknown_percent,
            old_id_percent: args.old_id_percent,
            storm_percent: args.storm_percent,
            storm_ms: args.storm_ms,
        }
    };
    if let Err(why) = mix.check() {
        eprintln!("error: {why}");
        return std::process::ExitCode::from(2);
    }
    let summary = run(ChaosConfig {
        seconds: args.seconds,
        clients: args.clients,
        nodes: args.nodes,
        seed: args.seed,
        fault_interval_ms: args.fault_interval_ms,
        verbose: args.verbose,
        ack_wait_ms: args.ack_wait_ms,
        mix,
    })
    .await;
    println!("{summary}");
    if summary.violations.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
