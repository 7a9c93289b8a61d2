//! `participant-admin`: talk to one participant directly, over its own TCP
//! protocol, without the coordinator. It is how an operator reaches a node
//! when the coordinator is down or cut off from it:
//!
//! ```text
//! participant-admin --addr 10.0.0.3:6001 --secret-file cluster.secret status
//! participant-admin --addr 10.0.0.3:6001 --secret-file cluster.secret heuristic --tx-id rent-1 --decision abort
//! ```
//!
//! It authenticates with the cluster secret (as an admin peer: status and
//! heuristic decisions only), and checks the node's proof in return.
//!
//! `heuristic` forces the outcome of a transaction that is in doubt on that
//! node (a heuristic decision, as XA and Narayana call it). The node logs it
//! as HEURISTIC, applies it and reports it in its status; if the
//! coordinator decided otherwise, the transaction is no longer atomic, and
//! both the node and the coordinator say so. The node obeys only when it
//! was started with `--allow-faults`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use shared::auth::{self, Claim, ClusterSecret};
use shared::limits::ADMIN_ANSWER_TIMEOUT_MS;
use shared::wire::{
    decode_line, encode_line, Decision, NodeStatus, PeerRole, Query, QueryResult, Reply, Request,
};

/// Operator commands for one 2PC participant, sent straight to its port
/// (the coordinator is not involved).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The participant's address (its --listen), e.g. 127.0.0.1:6001.
    #[arg(long, value_name = "HOST:PORT", env = "TPC_PARTICIPANT_ADDR")]
    addr: String,

    /// The cluster secret the node was started with (its --secret-file).
    /// Required; may come before or after the command.
    #[arg(long, global = true, value_name = "PATH", env = "TPC_SECRET_FILE")]
    secret_file: Option<std::path::PathBuf>,

    /// Print the node's answer as JSON instead of text.
    #[arg(long, env = "TPC_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    json: bool,

    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Balances, in-doubt transactions, locks and heuristic decisions.
    Status,
    /// Force the outcome of a transaction in doubt on this node (a heuristic
    /// decision). Breaks atomicity if the coordinator decided otherwise.
    Heuristic {
        /// The in-doubt transaction.
        #[arg(long, value_name = "TX_ID")]
        tx_id: String,
        #[arg(long, value_enum)]
        decision: DecisionArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DecisionArg {
    Commit,
    Abort,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let secret_file = cli.secret_file.as_ref().ok_or(
        "--secret-file is required (or TPC_SECRET_FILE): the cluster secret the node was started with",
    )?;
    let secret = ClusterSecret::load(secret_file).map_err(|e| format!("--secret-file: {e}"))?;
    let (mut link, node) = Link::open(&cli.addr, &secret)?;
    match &cli.command {
        Cmd::Status => {
            link.send(&Request::Query {
                req_id: 1,
                query: Query::Status,
            })?;
            match link.receive()? {
                Reply::QueryResult {
                    result: QueryResult::Status(status),
                    ..
                } => print_status(cli.json, &status),
                Reply::QueryResult {
                    result: QueryResult::Error { message },
                    ..
                }
                | Reply::Error { message } => Err(message),
                other => Err(format!("unexpected answer from node {node}: {other:?}")),
            }
        }
        Cmd::Heuristic { tx_id, decision } => {
            let decision = match decision {
                DecisionArg::Commit => Decision::Commit,
                DecisionArg::Abort => Decision::Abort,
            };
            link.send(&Request::Heuristic {
                tx_id: tx_id.clone(),
                decision,
            })?;
            match link.receive()? {
                Reply::Ack { tx_id, decision } => {
                    if cli.json {
                        println!(
                            "{}",
                            serde_json::json!({"node": node, "tx_id": tx_id, "heuristic": decision})
                        );
                    } else {
                        println!("node {node}: {tx_id} heuristically {} (logged); the coordinator will report whether it agrees", word(decision));
                    }
                    Ok(())
                }
                Reply::Error { message } => Err(format!("node {node} refused: {message}")),
                other => Err(format!("unexpected answer from node {node}: {other:?}")),
            }
        }
    }
}

fn word(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "committed",
        Decision::Abort => "aborted",
    }
}

fn print_status(json: bool, s: &NodeStatus) -> Result<(), String> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(s).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!("node {}", s.node);
    for a in &s.accounts {
        println!("  account {:<12} {:>16} cents", a.id, a.balance_cents);
    }
    for t in &s.in_doubt {
        println!(
            "  in doubt {} (prepared {} ms ago)",
            t.tx_id, t.prepared_for_ms
        );
    }
    if !s.locked_accounts.is_empty() {
        println!("  locked: {}", s.locked_accounts.join(", "));
    }
    for h in &s.heuristics {
        let said = match h.coordinator_decision {
            None => "the coordinator has not said".to_string(),
            Some(d) if d == h.decision => "the coordinator agrees".to_string(),
            Some(d) => format!("MISMATCH: the coordinator decided {}", word(d)),
        };
        println!("  HEURISTIC {} {} ({said})", h.tx_id, word(h.decision));
    }
    Ok(())
}

/// One connection to the node: hello first, then one request and its answer.
struct Link {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Link {
    fn open(addr: &str, secret: &ClusterSecret) -> Result<(Link, String), String> {
        let target: SocketAddr = addr
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("{addr} resolves to nothing"))?;
        let timeout = Duration::from_millis(ADMIN_ANSWER_TIMEOUT_MS);
        let stream = TcpStream::connect_timeout(&target, timeout)
            .map_err(|e| format!("cannot connect to the participant at {target}: {e}"))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut link = Link {
            reader: BufReader::new(stream),
            writer,
        };
        let hello = link.receive()?;
        if !matches!(hello, Reply::Hello { .. }) {
            return Err(format!("{target} is not a participant (it said {hello:?})"));
        }
        let claim = Claim {
            role: PeerRole::Admin,
            cluster: String::new(),
            epoch: 0,
            legacy_history: false,
        };
        let nonce = auth::nonce(rand::random());
        let (node, node_nonce, request) =
            auth::answer_hello(secret, &hello, &claim, nonce.clone())?;
        link.send(&request)?;
        let answer = link.receive()?;
        auth::check_welcome(secret, &node, &node_nonce, &nonce, &answer)
            .map_err(|e| format!("node {node} at {target} refused: {e}"))?;
        Ok((link, node))
    }

    fn send(&mut self, request: &Request) -> Result<(), String> {
        self.writer
            .write_all(&encode_line(request))
            .map_err(|e| format!("cannot send: {e}"))
    }

    fn receive(&mut self) -> Result<Reply, String> {
        let mut line = Vec::new();
        let limit = shared::limits::LINE_BYTES_MAX as u64 + 1;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("no answer: {e}"))?;
        if n == 0 {
            return Err("the participant closed the connection".to_string());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        decode_line(&line).map_err(|e| format!("bad answer: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every option can come from a `TPC_*` variable (the commands' own arguments are per call).
    #[test]
    fn every_option_has_its_environment_variable() {
        let broken = shared::cli::options_breaking_the_env_rule(&Cli::command(), &[]);
        assert!(broken.is_empty(), "{broken:#?}");
    }
}
