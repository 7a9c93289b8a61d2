//! Command-line configuration of the coordinator and the cluster it runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use shared::limits::{ACK_WAIT_MS, LOCK_WAIT_MS, PREPARE_TIMEOUT_MS};
use shared::wire::{AccountId, NodeId};

/// The 2PC coordinator: HTTP API and live events on --listen, the decision
/// log under --data-dir, and (by default) the participant processes it
/// starts and supervises.
#[derive(Debug, Clone, Parser)]
#[command(name = "backend", version, about, long_about = None)]
pub struct Args {
    /// Address of the HTTP API, the WebSocket and the dashboard (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8000", env = "TPC_LISTEN")]
    pub listen: SocketAddr,

    /// Where the coordinator's log and each participant's data live.
    #[arg(long, default_value = "data", env = "TPC_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Delete the data dir first: start from the opening balances.
    #[arg(long)]
    pub fresh: bool,

    /// Demo mode: allow fault injection (crash, link faults). Refused with 403 otherwise.
    #[arg(long)]
    pub demo: bool,

    /// Number of supervised participant nodes (named 6001, 6002, ...).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=26))]
    pub nodes: u16,

    /// Accounts per node. One account per node is named A, B, C...; more are A1, A2, ...
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub accounts_per_node: u32,

    /// Opening balance of every account, in cents.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(i64).range(0..=1_000_000_000_000))]
    pub balance_cents: i64,

    /// Port of the first node; node i listens on base + i. 0 picks free ports.
    #[arg(long, default_value_t = 6001)]
    pub node_port_base: u16,

    /// Time to wait for all votes before aborting.
    #[arg(long, default_value_t = PREPARE_TIMEOUT_MS)]
    pub prepare_timeout_ms: u64,

    /// Longest wait for an account lock at a participant.
    #[arg(long, default_value_t = LOCK_WAIT_MS)]
    pub lock_wait_ms: u64,

    /// Time a client waits for commit acks before it is answered anyway.
    #[arg(long, default_value_t = ACK_WAIT_MS)]
    pub ack_wait_ms: u64,

    /// The participant executable (default: `participant` next to this executable).
    #[arg(long)]
    pub participant_bin: Option<PathBuf>,

    /// The built dashboard (trunk's output).
    #[arg(long, default_value = "dist", env = "TPC_STATIC_DIR")]
    pub static_dir: PathBuf,

    /// Write the bound HTTP address to this file once serving (for scripts and tests).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// One participant node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Port to listen on (0 = pick a free one at first start).
    pub port: u16,
    pub accounts: Vec<(AccountId, i64)>,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub args: Args,
    pub nodes: Vec<NodeConfig>,
    pub account_nodes: BTreeMap<AccountId, NodeId>,
    pub expected_total_cents: i64,
    pub coordinator_dir: PathBuf,
    pub participant_bin: PathBuf,
}

impl Config {
    pub fn from_args(args: Args) -> anyhow::Result<Config> {
        let mut nodes = Vec::new();
        let mut account_nodes = BTreeMap::new();
        for i in 0..args.nodes {
            let id = (6001 + u32::from(i)).to_string();
            let letter = char::from(b'A' + i as u8);
            let accounts: Vec<(AccountId, i64)> = if args.accounts_per_node == 1 {
                vec![(letter.to_string(), args.balance_cents)]
            } else {
                (1..=args.accounts_per_node).map(|k| (format!("{letter}{k}"), args.balance_cents)).collect()
            };
            for (account, _) in &accounts {
                account_nodes.insert(account.clone(), id.clone());
            }
            let port = if args.node_port_base == 0 {
                0
            } else {
                args.node_port_base.checked_add(i).ok_or_else(|| {
                    anyhow::anyhow!("--node-port-base {} + {} nodes goes past port 65535", args.node_port_base, args.nodes)
                })?
            };
            nodes.push(NodeConfig { id: id.clone(), port, accounts, data_dir: args.data_dir.join(format!("node-{id}")) });
        }
        let expected_total_cents = nodes
            .iter()
            .flat_map(|n| n.accounts.iter().map(|(_, b)| *b))
            .try_fold(0i64, |sum, b| sum.checked_add(b))
            .ok_or_else(|| anyhow::anyhow!("the opening balances add up to more than an i64 of cents"))?;
        let participant_bin = match &args.participant_bin {
            Some(p) => p.clone(),
            None => {
                let exe = std::env::current_exe()?;
                exe.with_file_name("participant")
            }
        };
        Ok(Config {
            coordinator_dir: args.data_dir.join("coordinator"),
            args,
            nodes,
            account_nodes,
            expected_total_cents,
            participant_bin,
        })
    }
}
