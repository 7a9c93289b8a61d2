//! `tpc`: the command line for the coordinator's HTTP API.
//!
//! One blocking request per command (no async runtime); `watch` holds the
//! event stream open. Human output by default, the server's JSON with
//! `--json`. Exit codes: 0 ok, 1 error (including an unreachable
//! coordinator), 2 usage, 3 transfer aborted.
//!
//! The library's `cli::client` talks HTTP(S) and words the errors,
//! `cli::tls` picks the certificates it trusts, `cli::watch` streams
//! events, `cli::show` formats answers for people, `http::token` (the
//! server's) reads an API token file.

use backend::cli::{client, show, tls, watch};
use backend::http::token;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use shared::api::{
    AccountView, ClusterView, Faults, HeuristicView, InDoubtView, LedgerEntry, LinkFault, Outcome,
    Stats, TransactionSummary, TransferResponse,
};
use shared::limits::{
    AMOUNT_CENTS_MAX, COORDINATOR_HISTORY_KEPT_MAX, LINK_DELAY_MS_MAX, PHASE_PAUSE_MS_MAX,
    RESTART_AFTER_MS_MAX,
};

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
  tpc transactions --state aborted --reason timeout
                                      recent transactions that timed out
  tpc watch                           every protocol event as it happens (Ctrl-C to stop)
  tpc in-doubt                        what is prepared and unresolved, and why
  tpc stats                           counts, latency percentiles, throughput
  tpc ledger B                        applied entries of account B
  tpc accounts --json                 the server's JSON
  tpc crash 6002 && tpc restart 6002  kill -9 a node, then let it recover (demo mode)
  tpc link 6002 --drop                cut the link to a node; tpc link 6002 --heal mends it (demo mode)
  tpc coordinator-crash --at after-decision
                                      crash the coordinator after its next COMMIT record (demo mode)
  tpc heuristic 6002 rent-1 --decision abort
                                      force an outcome on an in-doubt node (demo mode)
  TPC_URL=https://tpc.example:8443 tpc --ca-file ca.pem status
  tpc --token-file ~/.tpc-token transfer A B 5
                                      a coordinator started with --api-token-file
  tpc completions bash > /etc/bash_completion.d/tpc; tpc man > tpc.1

Exit codes: 0 ok, 1 error, 2 usage, 3 transfer aborted.";

/// Command line for the 2PC coordinator's HTTP API.
#[derive(Debug, Parser)]
#[command(name = "tpc", version, after_help = EXAMPLES)]
struct Cli {
    /// The coordinator's base URL (http:// or https://).
    #[arg(
        long,
        global = true,
        env = "TPC_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    url: String,
    /// Print the server's JSON instead of human output.
    #[arg(long, global = true, env = "TPC_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    json: bool,
    /// A file holding the coordinator's API token (its --api-token-file),
    /// sent as `Authorization: Bearer <token>`: needed for changes (transfers,
    /// faults, crashes) when the coordinator has one.
    #[arg(long, global = true, value_name = "PATH", env = "TPC_API_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    /// Over https, trust only the certificates in this PEM file (a private
    /// CA, or the coordinator's own self-signed certificate) instead of the
    /// public web roots.
    #[arg(long, global = true, value_name = "PATH", env = "TPC_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// Colours in `watch`: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, env = "TPC_COLOR")]
    color: ColorWhen,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
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
    /// Recent transactions, newest first, optionally only some.
    Transactions {
        /// How many at most.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=COORDINATOR_HISTORY_KEPT_MAX as u64))]
        limit: u64,
        /// Only transactions in this state.
        #[arg(long, visible_alias = "outcome", value_enum)]
        state: Option<StateFilter>,
        /// Only transactions aborted for this reason (insufficient_funds, timeout, node_unreachable, ...).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Counts, abort reasons, latency percentiles and throughput.
    Stats,
    /// Transactions prepared somewhere and not resolved yet, why each one
    /// waits, heuristic decisions, and the money audit.
    InDoubt,
    /// The live event stream: one line per protocol event, coloured by
    /// kind, until Ctrl-C. Connects again if the coordinator restarts.
    Watch {
        /// Only these kinds (repeat or separate with commas), e.g. tx_started,vote,tx_finished.
        #[arg(long = "kind", value_delimiter = ',')]
        kinds: Vec<String>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// End when the coordinator goes away instead of connecting again.
        #[arg(long)]
        no_reconnect: bool,
    },
    /// Kill a node's process (SIGKILL), or arm it to crash itself (demo mode).
    Crash {
        node: String,
        /// Instead of killing it now, make it crash at this point of its next transaction.
        #[arg(long, value_enum)]
        at: Option<NodeCrashPoint>,
    },
    /// Start a crashed node again; it recovers from its log (demo mode).
    Restart { node: String },
    /// Network faults between the coordinator and a node (demo mode). With
    /// no option, shows the link.
    Link {
        node: String,
        /// Add this delay to every message, each way.
        #[arg(long, value_parser = clap::value_parser!(u64).range(0..=LINK_DELAY_MS_MAX))]
        delay_ms: Option<u64>,
        /// Drop every message (a partition).
        #[arg(long)]
        drop: bool,
        /// Send every message twice.
        #[arg(long)]
        duplicate: bool,
        /// Remove every fault from the link.
        #[arg(long, conflicts_with_all = ["delay_ms", "drop", "duplicate"])]
        heal: bool,
    },
    /// Crash the coordinator's engine when its next transaction reaches a
    /// point of the protocol; it recovers from its log (demo mode).
    CoordinatorCrash {
        /// Where.
        #[arg(long, value_enum, required_unless_present = "disarm")]
        at: Option<CoordinatorCrashPoint>,
        /// How long it stays down before it recovers.
        #[arg(long, default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(0..=RESTART_AFTER_MS_MAX))]
        restart_after_ms: u64,
        /// Take back a crash armed and not yet reached.
        #[arg(long, conflicts_with = "at")]
        disarm: bool,
    },
    /// The injected faults; with options, changes them (demo mode).
    Faults {
        /// The original demo's random crash of a node during prepare, 0 to 1.
        #[arg(long)]
        prepare_crash_probability: Option<f64>,
        /// A pause between the protocol's phases, to watch them one by one.
        #[arg(long, value_parser = clap::value_parser!(u64).range(0..=PHASE_PAUSE_MS_MAX))]
        phase_pause_ms: Option<u64>,
    },
    /// Force an outcome on a node that holds a transaction in doubt: a
    /// heuristic decision, which breaks atomicity if it disagrees with the
    /// coordinator (demo mode).
    Heuristic {
        node: String,
        tx_id: String,
        #[arg(long, value_enum)]
        decision: HeuristicDecision,
    },
    /// Shell completions for bash, zsh, fish, elvish or powershell, on stdout.
    Completions { shell: clap_complete::Shell },
    /// This command's manual page (roff), on stdout: `tpc man > tpc.1; man ./tpc.1`.
    Man,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StateFilter {
    Active,
    Prepared,
    Committed,
    Aborted,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CoordinatorCrashPoint {
    /// All votes are in; the decision is not yet logged.
    BeforeDecision,
    /// The COMMIT decision is durable; no commit has been sent.
    AfterDecision,
    /// The commit was sent to the first node only.
    MidCommit,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum HeuristicDecision {
    Commit,
    Abort,
}

/// The API's name of a value (its `snake_case` form).
fn wire_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().replace('-', "_"))
        .unwrap_or_default()
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
    anstream::ColorChoice::write_global(match cli.color {
        ColorWhen::Auto => anstream::ColorChoice::Auto,
        ColorWhen::Always => anstream::ColorChoice::Always,
        ColorWhen::Never => anstream::ColorChoice::Never,
    });
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
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "tpc", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| ClientError::Usage(format!("cannot write the manual page: {e}")))?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let trust = tls::Trust::from_ca_file(cli.ca_file.as_deref())?;
    let client = Client::new(&cli.url, authorization, trust)?;
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
        Command::Transactions {
            limit,
            state,
            reason,
        } => {
            let mut path = format!("/api/transactions?limit={limit}");
            if let Some(state) = state {
                path.push_str(&format!("&state={}", wire_name(*state)));
            }
            if let Some(reason) = reason {
                path.push_str(&format!("&reason={}", segment(reason)));
            }
            let answer = success(client.get(&path)?)?;
            show(&answer, &|a| {
                Ok(show::transactions(&parse::<Vec<TransactionSummary>>(
                    a,
                    "a list of transactions",
                )?))
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats => {
            let answer = success(client.get("/api/stats")?)?;
            show(&answer, &|a| {
                Ok(show::stats(&parse::<Stats>(a, "statistics")?))
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::InDoubt => {
            let answer = success(client.get("/api/in-doubt")?)?;
            let view: InDoubtView = parse(&answer, "the in-doubt view")?;
            show(&answer, &|_| Ok(show::in_doubt(&view)))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch {
            kinds,
            count,
            no_reconnect,
        } => {
            let options = watch::WatchOptions {
                kinds: kinds.clone(),
                count: *count,
                json: cli.json,
                reconnect: !no_reconnect,
            };
            watch::watch(
                &client,
                &options,
                &mut anstream::stdout(),
                &mut anstream::stderr(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Link {
            node,
            delay_ms,
            drop,
            duplicate,
            heal,
        } => {
            let path = format!("/api/nodes/{}/link", segment(node));
            let changes = *heal || delay_ms.is_some() || *drop || *duplicate;
            let answer = if *heal {
                success(client.delete(&path)?)?
            } else if changes {
                let body = json!({"delay_ms": delay_ms.unwrap_or(0), "drop": drop, "duplicate": duplicate});
                success(client.put(&path, &body)?)?
            } else {
                let faults = success(client.get("/api/faults")?)?;
                let link = parse::<Faults>(&faults, "the faults")?
                    .links
                    .get(node.as_str())
                    .cloned()
                    .unwrap_or_default();
                Answer {
                    status: faults.status,
                    body: serde_json::to_value(link).unwrap_or_default(),
                }
            };
            show(&answer, &|a| {
                Ok(format!(
                    "link to {node}: {}",
                    show::link_words(&parse::<LinkFault>(a, "a link's faults")?)
                ))
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CoordinatorCrash {
            at,
            restart_after_ms,
            disarm,
        } => {
            let answer = if *disarm {
                success(client.delete("/api/coordinator/crash")?)?
            } else {
                let at = at.map(wire_name).unwrap_or_default();
                let body = json!({"at": at, "restart_after_ms": restart_after_ms});
                success(client.post("/api/coordinator/crash", Some(&body))?)?
            };
            show(&answer, &|_| {
                Ok(match at {
                    _ if *disarm => "coordinator crash disarmed".to_string(),
                    Some(point) => format!(
                        "the coordinator will crash at {} of its next transaction, then recover after {restart_after_ms} ms",
                        wire_name(*point)
                    ),
                    None => String::new(),
                })
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Faults {
            prepare_crash_probability,
            phase_pause_ms,
        } => {
            let answer = if prepare_crash_probability.is_some() || phase_pause_ms.is_some() {
                let mut body = json!({});
                if let Some(p) = prepare_crash_probability {
                    body["prepare_crash_probability"] = json!(p);
                }
                if let Some(ms) = phase_pause_ms {
                    body["phase_pause_ms"] = json!(ms);
                }
                success(client.put("/api/faults", &body)?)?
            } else {
                success(client.get("/api/faults")?)?
            };
            show(&answer, &|a| {
                Ok(show::faults(&parse::<Faults>(a, "the faults")?))
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Heuristic {
            node,
            tx_id,
            decision,
        } => {
            let body = json!({"tx_id": tx_id, "decision": wire_name(*decision)});
            let answer = success(client.post(
                &format!("/api/nodes/{}/heuristic", segment(node)),
                Some(&body),
            )?)?;
            show(&answer, &|a| {
                Ok(show::heuristic(&parse::<HeuristicView>(
                    a,
                    "a heuristic decision",
                )?))
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { .. } | Command::Man => Ok(ExitCode::SUCCESS),
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
