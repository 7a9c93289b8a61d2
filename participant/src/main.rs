//! `participant`: one node of the Two-Phase Commit system. It holds some
//! accounts, votes on `prepare`, applies `commit`, and survives `kill -9` by
//! replaying its write-ahead log.
//!
//! The protocol itself lives in `shared::protocol::participant` as a pure
//! state machine; this binary is the thin I/O shell around it:
//!
//! - `main.rs` (this file): flags, logging, wiring, signals, exit codes.
//! - [`recovery`]: open and lock the data dir, replay the log, start the
//!   group-commit writer.
//! - [`server`]: the accept loop and the connection limit.
//! - [`connection`]: one TCP connection: bounded line reads, batched writes.
//! - [`query`]: read-only answers from the state machine, bounded to one line.
//! - [`driver`]: the one task that owns the state machine, the log writer and
//!   the clock.
//! - [`peer`]: what connections and the driver say to each other.

/// mimalloc instead of glibc malloc: every transfer allocates and frees
/// many small buffers (messages, records, events), and glibc's `free` was
/// the largest single item in the profile (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod connection;
mod driver;
mod peer;
mod query;
mod recovery;
mod server;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use shared::auth::ClusterSecret;
use shared::limits::{
    ACCOUNT_ID_BYTES_MAX, LOCK_WAIT_MS, LOCK_WAIT_MS_MAX, LOG_CHECKPOINT_BYTES,
    PARTICIPANT_INBOX_MAX,
};
use shared::protocol::participant::ParticipantConfig;
use shared::store::hasher::HashSeed;
use shared::wire::AccountId;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

/// Exit code for bad flags (the same one clap uses).
const EXIT_USAGE: u8 = 2;

/// A 2PC participant: accounts, per-account locks, write-ahead log, recovery.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Node id reported to the coordinator, e.g. 6001.
    #[arg(long, value_name = "NODE_ID", env = "TPC_PARTICIPANT_ID", value_parser = parse_node_id)]
    id: String,

    /// Address to listen on (port 0 picks a free port; see --ready-file).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:6001",
        env = "TPC_PARTICIPANT_LISTEN"
    )]
    listen: SocketAddr,

    /// Directory for the write-ahead log (created if missing, locked while running).
    #[arg(long, value_name = "DIR", env = "TPC_PARTICIPANT_DATA_DIR")]
    data_dir: PathBuf,

    /// An account and its opening balance in cents, e.g. A=100000 ($1000.00).
    /// Repeatable (the environment variable: comma-separated). Used only
    /// when the data dir is new.
    #[arg(long = "account", value_name = "ID=CENTS", env = "TPC_PARTICIPANT_ACCOUNTS",
          value_delimiter = ',', value_parser = parse_account)]
    accounts: Vec<(AccountId, i64)>,

    /// Longest wait for an account lock before voting abort.
    #[arg(long, value_name = "MS", default_value_t = LOCK_WAIT_MS, env = "TPC_PARTICIPANT_LOCK_WAIT_MS",
          value_parser = clap::value_parser!(u64).range(1..=LOCK_WAIT_MS_MAX))]
    lock_wait_ms: u64,

    /// Obey `arm_crash` requests (demo mode: the coordinator may make this
    /// process kill itself at a protocol point) and `heuristic` decisions
    /// (an operator forces the outcome of an in-doubt transaction, which can
    /// break atomicity; see `participant-admin --help`).
    #[arg(long, env = "TPC_PARTICIPANT_ALLOW_FAULTS", value_parser = clap::builder::BoolishValueParser::new())]
    allow_faults: bool,

    /// Once listening and recovered, write the bound address (one line,
    /// `IP:PORT`) to this file, atomically.
    #[arg(long, value_name = "PATH", env = "TPC_PARTICIPANT_READY_FILE")]
    ready_file: Option<PathBuf>,

    /// The cluster secret (hex, as the coordinator writes it in
    /// <data-dir>/coordinator/cluster.secret): every connection must prove
    /// it knows it before anything else is read. Copy it from the
    /// coordinator's host; keep it readable by this user only.
    #[arg(long, value_name = "PATH", env = "TPC_SECRET_FILE")]
    secret_file: PathBuf,

    /// Release this node from the cluster it serves, so that a coordinator
    /// with another log may bind it (after the original coordinator's log
    /// was lost for good). Refused while any transaction is in doubt here:
    /// resolve those first (heuristic decisions). Written once, at start.
    /// Command line only, with no variable: a one-off act.
    #[arg(long)]
    forget_cluster: bool,

    /// Log size after which it is rewritten as one checkpoint record.
    #[arg(long, value_name = "BYTES", default_value_t = LOG_CHECKPOINT_BYTES, hide = true,
          env = "TPC_PARTICIPANT_LOG_CHECKPOINT_BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    log_checkpoint_bytes: u64,
}

fn parse_node_id(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= ACCOUNT_ID_BYTES_MAX
        && text.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!("a node id is 1 to {ACCOUNT_ID_BYTES_MAX} printable ASCII characters without spaces, e.g. 6001"))
    }
}

fn parse_account(text: &str) -> Result<(AccountId, i64), String> {
    let usage = "write ID=CENTS, e.g. --account A=100000 for $1000.00";
    let (id, cents) = text
        .split_once('=')
        .ok_or_else(|| format!("missing '=': {usage}"))?;
    let id_ok = !id.is_empty()
        && id.len() <= ACCOUNT_ID_BYTES_MAX
        && id.bytes().all(|b| b.is_ascii_graphic());
    if !id_ok {
        return Err(format!(
            "account id {id:?} must be 1 to {ACCOUNT_ID_BYTES_MAX} printable ASCII characters without spaces: {usage}"
        ));
    }
    let cents: i64 = cents.parse().map_err(|_| {
        format!("opening balance {cents:?} is not a whole number of cents: {usage}")
    })?;
    if cents < 0 {
        return Err(format!("opening balance {cents} is negative: {usage}"));
    }
    Ok((id.to_string(), cents))
}

/// Everything the process needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub participant: ParticipantConfig,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub ready_file: Option<PathBuf>,
    pub log_checkpoint_bytes: u64,
    pub secret: ClusterSecret,
    pub forget_cluster: bool,
}

fn config_from(cli: Cli) -> Result<Config, String> {
    let mut seen = std::collections::BTreeSet::new();
    for (id, _) in &cli.accounts {
        if !seen.insert(id.as_str()) {
            return Err(format!(
                "--account {id} is given twice: give each account once"
            ));
        }
    }
    let secret =
        ClusterSecret::load(&cli.secret_file).map_err(|e| format!("--secret-file: {e}"))?;
    let participant = ParticipantConfig {
        node: cli.id,
        accounts: cli.accounts,
        lock_wait_us: cli.lock_wait_ms * 1_000,
        faults_allowed: cli.allow_faults,
        hash_seed: HashSeed::new(rand::random(), rand::random()),
    };
    Ok(Config {
        participant,
        listen: cli.listen,
        data_dir: cli.data_dir,
        ready_file: cli.ready_file,
        log_checkpoint_bytes: cli.log_checkpoint_bytes,
        secret,
        forget_cluster: cli.forget_cluster,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config_from(cli) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_tracing();
    // One runtime thread runs the connections and the driver (the log
    // writer has its own thread); a second worker only adds wake-ups across
    // threads (BENCHMARKS.md).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(config));
    // Connection tasks may still be parked on sockets; they hold nothing
    // that needs a clean shutdown (the log is closed by now).
    runtime.shutdown_background();
    code
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(config: Config) -> ExitCode {
    let recovered = match recovery::recover(&config) {
        Ok(recovered) => recovered,
        Err(e) => {
            eprintln!("error: {e:#}");
            return match e {
                recovery::RecoveryError::NoAccounts { .. }
                | recovery::RecoveryError::ForgetRefused { .. } => ExitCode::from(EXIT_USAGE),
                _ => ExitCode::FAILURE,
            };
        }
    };
    let listener = match TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {} (--listen): {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let local_addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("error: cannot read the bound address: {e}");
            return ExitCode::FAILURE;
        }
    };

    let handshake = Arc::new(connection::Handshake {
        secret: config.secret.clone(),
        node: config.participant.node.clone(),
        pid: std::process::id(),
        faults_allowed: config.participant.faults_allowed,
    });
    let mut signals = match ShutdownSignals::register() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("error: cannot install the SIGTERM/SIGINT handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (inbox_tx, inbox_rx) = tokio::sync::mpsc::channel(PARTICIPANT_INBOX_MAX);
    let driver = driver::Driver::new(recovered, config.log_checkpoint_bytes);
    let driver_task = tokio::spawn(driver.run(inbox_rx, wait_for(shutdown_rx.clone())));

    if let Some(path) = &config.ready_file {
        if let Err(e) = write_ready_file(path, local_addr) {
            eprintln!("error: cannot write --ready-file {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    // Not println!: it panics if stdout is a closed pipe.
    let _ = writeln!(std::io::stdout(), "listening on {local_addr}");
    tracing::info!(node = %config.participant.node, addr = %local_addr, "listening");

    let server_task = tokio::spawn(server::run(
        listener,
        handshake,
        inbox_tx,
        wait_for(shutdown_rx),
    ));
    let mut driver_task = driver_task;
    // The driver only stops on its own after a log failure.
    let driver_stopped = tokio::select! {
        _ = signals.recv() => {
            tracing::info!("shutting down: no new connections; draining the log");
            None
        }
        result = &mut driver_task => Some(result),
    };
    let _ = shutdown_tx.send(true);
    let _ = server_task.await;
    let driver_result = match driver_stopped {
        Some(result) => result,
        None => driver_task.await,
    };
    match driver_result {
        Ok(Ok(())) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            tracing::error!("stopping: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!("the driver task failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means "stop".
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// SIGTERM and SIGINT (Ctrl-C), registered before the ready file is written
/// so that a supervisor's signal can never hit the default action (death
/// without draining the log).
struct ShutdownSignals {
    term: Signal,
    interrupt: Signal,
}

impl ShutdownSignals {
    fn register() -> std::io::Result<ShutdownSignals> {
        Ok(ShutdownSignals {
            term: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

/// Writes `addr` to `path` through a temporary file and a rename, so a
/// reader never sees a half-written address.
fn write_ready_file(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, format!("{addr}\n"))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every option can come from a `TPC_*` variable but `--forget-cluster`, a one-off act.
    #[test]
    fn every_option_has_its_environment_variable() {
        let broken =
            shared::cli::options_breaking_the_env_rule(&Cli::command(), &["forget_cluster"]);
        assert!(broken.is_empty(), "{broken:#?}");
    }
}
