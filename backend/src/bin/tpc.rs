//! `tpc`: the command line for the coordinator's HTTP API.
//!
//! One blocking request per command (no async runtime). Human output by
//! default, the server's JSON with `--json`. Exit codes: 0 ok, 1 error
//! (including an unreachable coordinator), 2 usage, 3 transfer aborted.
//!
//! The library's `cli::client` talks HTTP and words the errors,
//! `cli::show` formats answers for people, `http::token` (the server's)
//! reads an API token file.

use backend::cli::{client, show};
use backend::http::token;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use shared::api::{AccountView, ClusterView, LedgerEntry, Outcome, TransferResponse};
use shared::limits::AMOUNT_CENTS_MAX;

use client::{segment, Answer, Client, ClientError};

const EXIT_ERROR: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_ABORTED: u8 = 3;

const EXAMPLES: &str = "\
Examples:
  tpc status                          coordinator, nodes, balances, in-doubt transactions, total
  tpc transfer A B 25.50              move $25.50 from A to B
  tpc transfer A B --cents 2550 --tx-id rent-1
                                      the same, with your own id (resubmitting it moves nothing twice)
  tpc tx rent-1                       state, legs, votes and the protocol timeline
  tpc ledger B                        applied entries of account B
  tpc accounts --json                 the server's JSON
  tpc crash 6002 && tpc restart 6002  kill -9 a node, then let it recover (demo mode)
  TPC_URL=http://127.0.0.1:9000 tpc status
  tpc --token-file ~/.tpc-token transfer A B 5
                                      a coordinator started with --api-token-file

Exit codes: 0 ok, 1 error, 2 usage, 3 transfer aborted.";

/// Command line for the 2PC coordinator's HTTP API.
#[derive(Debug, Parser)]
#[command(name = "tpc", version, after_help = EXAMPLES)]
struct Cli {
    /// The coordinator's base URL.
    #[arg(
        long,
        global = true,
        env = "TPC_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    url: String,
    /// Print the server's JSON instead of human output.
    #[arg(long, global = true)]
    json: bool,
    /// A file holding the coordinator's API token (its --api-token-file),
    /// sent as `Authorization: Bearer <token>`: needed for transfers, crash
    /// and restart when the coordinator has one.
    #[arg(long, global = true, value_name = "PATH", env = "TPC_API_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Move money from one account to another (Two-Phase Commit).
    Transfer {
        /// Account to debit.
        from: String,
        /// Account to credit.
        to: String,
        /// Amount in dollars: 12, 12.50, $1,000.00 (or use --cents).
        #[arg(value_parser = parse_amount, required_unless_present = "cents", conflicts_with = "cents", allow_negative_numbers = true)]
        amount: Option<i64>,
        /// Amount in integer cents instead of dollars.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=AMOUNT_CENTS_MAX))]
        cents: Option<i64>,
        /// Your own transaction id: submitting it again returns the first outcome.
        #[arg(long)]
        tx_id: Option<String>,
    },
    /// The cluster: coordinator, nodes, balances, in-doubt transactions, total.
    Status,
    /// Every account with its node and balance.
    Accounts,
    /// The applied entries of one account, oldest first.
    Ledger { account: String },
    /// One transaction: state, legs, votes and its event timeline.
    Tx { id: String },
    /// Kill a node's process (SIGKILL), or arm it to crash itself (demo mode).
    Crash {
        node: String,
        /// Instead of killing it now, make it crash at this point of its next transaction.
        #[arg(long, value_enum)]
        at: Option<NodeCrashPoint>,
    },
    /// Start a crashed node again; it recovers from its log (demo mode).
    Restart { node: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NodeCrashPoint {
    /// After its PREPARED record is durable, before it votes.
    AfterPrepareLogged,
    /// After it applied a commit, before it acks.
    AfterCommitApplied,
}

impl NodeCrashPoint {
    fn wire_name(self) -> &'static str {
        match self {
            NodeCrashPoint::AfterPrepareLogged => "after_prepare_logged",
            NodeCrashPoint::AfterCommitApplied => "after_commit_applied",
        }
    }
}

fn parse_amount(text: &str) -> Result<i64, String> {
    shared::money::parse_dollars(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(Failure::Client(e)) => {
            eprintln!("error: {e}");
            let code = if matches!(e, ClientError::Usage(_)) {
                EXIT_USAGE
            } else {
                EXIT_ERROR
            };
            ExitCode::from(code)
        }
        Err(Failure::Server(answer)) => {
            if cli.json {
                print_json(&answer.body);
            }
            eprintln!(
                "error: {} (HTTP {})",
                answer.error_sentence(),
                answer.status
            );
            ExitCode::from(EXIT_ERROR)
        }
    }
}

enum Failure {
    Client(ClientError),
    /// A 4xx/5xx answer.
    Server(Answer),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

fn print_json(body: &Value) {
    print_out(&serde_json::to_string_pretty(body).unwrap_or_else(|_| body.to_string()));
}

/// Prints a line to stdout; a closed pipe (`tpc ledger A | head`) is not an error.
fn print_out(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|_| stdout.flush());
}

/// The answer if it succeeded, else the failure to report.
fn success(answer: Answer) -> Result<Answer, Failure> {
    if answer.is_success() {
        Ok(answer)
    } else {
        Err(Failure::Server(answer))
    }
}

/// Parses a successful body into its `shared` type.
fn parse<T: DeserializeOwned>(answer: &Answer, what: &str) -> Result<T, Failure> {
    serde_json::from_value(answer.body.clone()).map_err(|e| {
        Failure::Client(ClientError::NotJson {
            status: answer.status,
            snippet: format!("not {what}: {e}"),
        })
    })
}

fn run(cli: &Cli) -> Result<ExitCode, Failure> {
    let authorization = match &cli.token_file {
        Some(path) => Some(
            token::ApiToken::read(path)
                .map_err(|e| ClientError::Usage(e.to_string()))?
                .bearer(),
        ),
        None => None,
    };
    let client = Client::new(&cli.url, authorization)?;
    // Prints the JSON, or the human text that `human` makes of the answer.
    let show = |answer: &Answer,
                human: &dyn Fn(&Answer) -> Result<String, Failure>|
     -> Result<(), Failure> {
        if cli.json {
            print_json(&answer.body);
        } else {
            print_out(&human(answer)?);
        }
        Ok(())
    };
    match &cli.command {
        Command::Transfer {
            from,
            to,
            amount,
            cents,
            tx_id,
        } => {
            let amount_cents = amount.or(*cents).ok_or_else(|| {
                Failure::Client(ClientError::Usage(
                    "give an amount in dollars or --cents".to_string(),
                ))
            })?;
            let mut body = json!({"from": from, "to": to, "amount_cents": amount_cents});
            if let Some(id) = tx_id {
                body["tx_id"] = Value::String(id.clone());
            }
            let answer = client.post("/api/transfers", Some(&body))?;
            // 200 committed; 409 either aborted (a transfer body) or a reused tx_id (an error body).
            let response: Option<TransferResponse> = match answer.status {
                200 | 409 => serde_json::from_value(answer.body.clone()).ok(),
                _ => None,
            };
            let Some(response) = response else {
                return Err(Failure::Server(answer));
            };
            show(&answer, &|_| {
                Ok(show::transfer(&response, from, to, amount_cents))
            })?;
            Ok(match response.outcome {
                Outcome::Committed => ExitCode::SUCCESS,
                Outcome::Aborted => ExitCode::from(EXIT_ABORTED),
            })
        }
        Command::Status => {
            let answer = success(client.get("/api/cluster")?)?;
            let view: ClusterView = parse(&answer, "a cluster view")?;
            show(&answer, &|_| Ok(show::cluster(&view)))?;
            if show::total_ok(&view) {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: the balances add up to a different total than expected");
                Ok(ExitCode::from(EXIT_ERROR))
            }
        }
        Command::Accounts => {
            let answer = success(client.get("/api/accounts")?)?;
            show(&answer, &|a| {
                Ok(show::accounts(&parse::<Vec<AccountView>>(
                    a,
                    "a list of accounts",
                )?))
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger { account } => {
            let answer =
                success(client.get(&format!("/api/accounts/{}/ledger", segment(account)))?)?;
            show(&answer, &|a| {
                Ok(show::ledger(
                    account,
                    &parse::<Vec<LedgerEntry>>(a, "a ledger")?,
                ))
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tx { id } => {
            let answer = success(client.get(&format!("/api/transactions/{}", segment(id)))?)?;
            show(&answer, &|a| Ok(show::transaction(&a.body)))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Crash { node, at } => {
            let body = at.map(|point| json!({"at": point.wire_name()}));
            let answer = success(client.post(
                &format!("/api/nodes/{}/crash", segment(node)),
                body.as_ref(),
            )?)?;
            show(&answer, &|a| {
                Ok(
                    match (
                        a.body.get("armed").and_then(Value::as_str),
                        a.body.get("pid"),
                    ) {
                        (Some(point), _) => {
                            format!("node {node} will crash at {point} of its next transaction")
                        }
                        (None, Some(pid)) => format!("node {node} killed (SIGKILL, pid {pid})"),
                        (None, None) => format!("node {node} killed"),
                    },
                )
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Restart { node } => {
            let answer =
                success(client.post(&format!("/api/nodes/{}/restart", segment(node)), None)?)?;
            show(&answer, &|_| {
                Ok(format!(
                    "node {node} restarted; it recovers from its log, then rejoins"
                ))
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
