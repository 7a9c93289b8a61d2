//! Long chaos runs against real processes (see `system_tests::chaos`).
//!
//! ```sh
//! cargo build --release -p backend -p participant -p system-tests
//! target/release/chaos --seconds 300 --clients 16 --seed 7
//! ```
//! Exits non-zero if the audit finds any violation.

use clap::Parser;
use system_tests::chaos::{run, ChaosConfig};

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
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.nodes < 2 || args.clients == 0 {
        eprintln!("error: --nodes must be at least 2 and --clients at least 1");
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
    })
    .await;
    println!("{summary}");
    if summary.violations.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
