//! Configuration of the coordinator and the cluster it runs: command-line
//! flags, their `TPC_*` environment variables, and a TOML file
//! (`--config cluster.toml`, see `cluster.example.toml` at the repository
//! root).
//!
//! Precedence, highest first: a flag on the command line, its environment
//! variable, the file, the built-in default. `--help` shows every default.
//! A bad file is refused with its line and the key at fault.
//!
//! Nodes come in two kinds:
//! - **supervised** (`--nodes N`): this coordinator starts them as local
//!   processes (6001, 6002, ... with accounts A, B, ...), and can crash and
//!   restart them in demo mode;
//! - **remote** (`--participant ID=HOST:PORT=ACCOUNTS`): started on their
//!   own, possibly on other hosts, with their own data dirs. The coordinator
//!   only connects to them; it must know their accounts to route transfers.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use serde::Deserialize;
use shared::limits::{
    ACCOUNTS_PER_NODE_MAX, ACCOUNT_ID_BYTES_MAX, ACK_WAIT_MS, API_TOKEN_CHARS_MIN,
    CONFIG_FILE_BYTES_MAX, LOCK_WAIT_MS, LOG_CHECKPOINT_BYTES, OPENING_BALANCE_CENTS_MAX,
    PREPARE_TIMEOUT_MS, RECORDING_BYTES_MAX, RECORDING_BYTES_MIN, REMOTE_PARTICIPANTS_MAX,
    SUPERVISED_NODES_MAX,
};
use shared::wire::{AccountId, NodeId};
use toml::Spanned;

use crate::http::guard::{Authority, Origin};
use crate::http::token::ApiToken;

/// The cluster secret's file name in the coordinator's data dir.
pub const SECRET_FILE_NAME: &str = "cluster.secret";

/// The 2PC coordinator: HTTP API and live events on --listen, the decision
/// log under --data-dir, and the participant nodes: the ones it starts and
/// supervises (--nodes) and the ones that run on their own, on this or other
/// hosts (--participant).
///
/// Every option can also come from a TOML file (--config); a flag or its
/// environment variable overrides the file.
#[derive(Debug, Clone, Parser)]
#[command(name = "backend", version, about, long_about)]
pub struct Args {
    /// A TOML file with any of the options below, keys spelled like the flags
    /// with `_` for `-` (e.g. `prepare_timeout_ms = 3000`) and remote
    /// participants as `[[participant]]` tables; see cluster.example.toml.
    /// Flags and environment variables override it. --fresh, --config and
    /// --ready-file are command-line only.
    #[arg(long, value_name = "FILE", env = "TPC_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address of the HTTP API, the WebSocket and the dashboard (port 0 picks
    /// a free port). Keep 127.0.0.1 unless a proxy with access control is in
    /// front: the API moves money. Any other address needs --api-token-file.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8000",
        env = "TPC_LISTEN"
    )]
    pub listen: SocketAddr,

    /// Where the coordinator's decision log (`coordinator/`) and each
    /// supervised node's log (`node-<id>/`) live.
    #[arg(long, value_name = "DIR", default_value = "data", env = "TPC_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Delete the coordinator's and the supervised nodes' data first: start
    /// from the opening balances. (Never touches remote participants.)
    /// Command line only, with no variable: left in an environment it would
    /// wipe the data at every start.
    #[arg(long)]
    pub fresh: bool,

    /// Demo mode: allow fault injection (crash, link faults, coordinator
    /// crash points, heuristic decisions). Refused with 403 otherwise.
    #[arg(long, env = "TPC_DEMO", value_parser = clap::builder::BoolishValueParser::new())]
    pub demo: bool,

    /// Number of supervised participant nodes, started by this coordinator
    /// as local processes (named 6001, 6002, ... with accounts A, B, ...).
    /// Defaults to 2, or to 0 when --participant is given.
    #[arg(long, value_name = "N", default_value_t = 2, env = "TPC_NODES",
          value_parser = clap::value_parser!(u16).range(0..=i64::from(SUPERVISED_NODES_MAX)))]
    pub nodes: u16,

    /// Accounts per supervised node. One account per node is named A, B,
    /// C...; more are A1, A2, ...
    #[arg(long, value_name = "N", default_value_t = 1, env = "TPC_ACCOUNTS_PER_NODE",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(ACCOUNTS_PER_NODE_MAX)))]
    pub accounts_per_node: u32,

    /// Opening balance of every account, in cents (100000 = $1,000.00). For
    /// remote participants it only sets the expected total, unless an
    /// account says its own (A:50000).
    #[arg(long, value_name = "CENTS", default_value_t = 100_000, env = "TPC_BALANCE_CENTS",
          value_parser = clap::value_parser!(i64).range(0..=OPENING_BALANCE_CENTS_MAX))]
    pub balance_cents: i64,

    /// Port of the first supervised node; node i listens on 127.0.0.1 at
    /// base + i. 0 picks free ports.
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = 6001,
        env = "TPC_NODE_PORT_BASE"
    )]
    pub node_port_base: u16,

    /// A participant this coordinator does not start or supervise (it runs
    /// on its own, e.g. on another host, with its own data dir):
    /// ID=HOST:PORT=ACCOUNT[,ACCOUNT...], e.g.
    /// `--participant 6001=10.0.0.2:6001=A`. An account may carry its
    /// opening balance for the expected total: A:50000. Repeatable; HOST may
    /// be a name, resolved once at start. On the command line it replaces
    /// the file's [[participant]] list. The environment variable takes
    /// several separated by `;`.
    #[arg(long = "participant", value_name = "ID=HOST:PORT=ACCOUNTS", env = "TPC_PARTICIPANTS",
          value_delimiter = ';', value_parser = RemoteParticipant::parse)]
    pub participants: Vec<RemoteParticipant>,

    /// Time to wait for all votes before aborting (ms).
    #[arg(long, value_name = "MS", default_value_t = PREPARE_TIMEOUT_MS, env = "TPC_PREPARE_TIMEOUT_MS")]
    pub prepare_timeout_ms: u64,

    /// Longest wait for an account lock at a supervised participant (ms).
    #[arg(long, value_name = "MS", default_value_t = LOCK_WAIT_MS, env = "TPC_LOCK_WAIT_MS")]
    pub lock_wait_ms: u64,

    /// Time a client waits for every node to apply the commit (its
    /// `applied` answer) before it is answered anyway (ms); the commit is
    /// durable and completes in the background. 0: answer as
    /// soon as the commit decision is durable and the commits are sent
    /// (lower latency; reads through the API still see the transfer, as they
    /// travel to each node behind its commit).
    #[arg(long, value_name = "MS", default_value_t = ACK_WAIT_MS, env = "TPC_ACK_WAIT_MS")]
    pub ack_wait_ms: u64,

    /// Bytes of the event recording kept beside the coordinator's log
    /// (`<data-dir>/coordinator/recording/`, the oldest events dropped
    /// first): what the dashboard's timeline replays and exports. Default:
    /// 64 MiB in demo mode, off otherwise; 0 turns it off.
    #[arg(long, value_name = "BYTES", env = "TPC_RECORDING_BYTES_MAX")]
    pub recording_bytes_max: Option<u64>,

    /// Log size after which the coordinator's log (and each supervised
    /// participant's) is rewritten as one checkpoint (a testing knob: tests
    /// make it tiny so checkpoints run all the time).
    #[arg(long, value_name = "BYTES", default_value_t = LOG_CHECKPOINT_BYTES, hide = true,
          env = "TPC_LOG_CHECKPOINT_BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub log_checkpoint_bytes: u64,

    /// The participant executable for supervised nodes (default:
    /// `participant` next to this executable).
    #[arg(long, value_name = "PATH", env = "TPC_PARTICIPANT_BIN")]
    pub participant_bin: Option<PathBuf>,

    /// The cluster secret (hex) that every connection to a participant
    /// proves, in both directions. Default: `<data-dir>/coordinator/cluster.secret`,
    /// created (readable by its owner only) at the first start. Supervised
    /// nodes are given it; copy it to each remote participant's host and
    /// pass it there as `participant --secret-file`.
    #[arg(long, value_name = "PATH", env = "TPC_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,

    /// The built dashboard (trunk's output).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "dist",
        env = "TPC_STATIC_DIR"
    )]
    pub static_dir: PathBuf,

    /// Write the bound HTTP address to this file once serving (for scripts and tests).
    #[arg(long, value_name = "PATH", env = "TPC_READY_FILE")]
    pub ready_file: Option<PathBuf>,

    /// A file holding the API token (at least 16 characters; surrounding
    /// whitespace is ignored). With it, every change (POST, PUT, DELETE,
    /// PATCH) needs `Authorization: Bearer <token>`, else 401; reads stay
    /// open. Required when --listen is not a loopback address. Make one with
    /// `openssl rand -hex 32 > FILE`.
    #[arg(long, value_name = "PATH", env = "TPC_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,

    /// A Host name the coordinator answers to besides its listen address
    /// (and, on a loopback listener, localhost, 127.0.0.1 and [::1] with the
    /// listen port): the name a proxy or a DNS record gives it. NAME matches
    /// any port, NAME:PORT that port only. Other Host headers get 421 (a
    /// guard against DNS rebinding). Repeatable; the environment variable
    /// takes a comma-separated list, the file a list (key allowed_hosts).
    #[arg(long = "allowed-host", value_name = "NAME", env = "TPC_ALLOWED_HOSTS",
          value_delimiter = ',', value_parser = parse_allowed_host)]
    pub allowed_hosts: Vec<Authority>,

    /// A web origin (scheme://host[:port]) whose pages may change things
    /// (POST, PUT, DELETE, PATCH) and open /ws, besides the coordinator's
    /// own pages, e.g. https://dash.example.com. A request from any other
    /// page gets 403; requests without an Origin header (curl, the CLI) are
    /// not affected. Repeatable; the environment variable takes a
    /// comma-separated list, the file a list (key allowed_origins).
    #[arg(long = "allowed-origin", value_name = "ORIGIN", env = "TPC_ALLOWED_ORIGINS",
          value_delimiter = ',', value_parser = parse_allowed_origin)]
    pub allowed_origins: Vec<Origin>,
}

fn parse_allowed_host(text: &str) -> Result<Authority, String> {
    Authority::parse(text.trim()).ok_or_else(|| {
        format!("'{text}' is not a host name: write NAME or NAME:PORT, e.g. tpc.example.com or tpc.example.com:8443")
    })
}

fn parse_allowed_origin(text: &str) -> Result<Origin, String> {
    Origin::parse(text.trim())
}

/// A participant the coordinator connects to but does not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteParticipant {
    pub id: NodeId,
    /// `HOST:PORT`, resolved when the configuration is built.
    pub addr: String,
    /// Accounts and, where given, their opening balances.
    pub accounts: Vec<(AccountId, Option<i64>)>,
}

impl RemoteParticipant {
    const USAGE: &'static str = "write ID=HOST:PORT=ACCOUNT[,ACCOUNT...], e.g. 6001=10.0.0.2:6001=A or 6003=db3:6001=C1:50000,C2";

    /// Parses `ID=HOST:PORT=ACCOUNT[:CENTS][,ACCOUNT[:CENTS]...]`.
    pub fn parse(text: &str) -> Result<RemoteParticipant, String> {
        let parts: Vec<&str> = text.split('=').collect();
        let [id, addr, accounts] = parts[..] else {
            return Err(format!("'{text}' needs exactly two '=': {}", Self::USAGE));
        };
        let accounts = accounts
            .split(',')
            .map(parse_account)
            .collect::<Result<Vec<_>, _>>()?;
        RemoteParticipant::new(id, addr, accounts)
    }

    fn new(
        id: &str,
        addr: &str,
        accounts: Vec<(AccountId, Option<i64>)>,
    ) -> Result<RemoteParticipant, String> {
        check_id("node id", id)?;
        let port_ok = addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!(
                "participant {id}: address '{addr}' is not HOST:PORT: {}",
                Self::USAGE
            ));
        }
        if accounts.is_empty() {
            return Err(format!("participant {id} has no accounts: {}", Self::USAGE));
        }
        Ok(RemoteParticipant {
            id: id.to_string(),
            addr: addr.to_string(),
            accounts,
        })
    }

    fn resolve(&self) -> anyhow::Result<SocketAddr> {
        let mut addrs = self.addr.to_socket_addrs().map_err(|e| {
            anyhow::anyhow!(
                "cannot resolve the address '{}' of participant {}: {e}",
                self.addr,
                self.id
            )
        })?;
        addrs.next().ok_or_else(|| {
            anyhow::anyhow!(
                "the address '{}' of participant {} resolves to nothing",
                self.addr,
                self.id
            )
        })
    }
}

fn check_id(what: &str, id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= ACCOUNT_ID_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} '{id}' must be 1 to {ACCOUNT_ID_BYTES_MAX} letters, digits, '-', '_' or '.'"
        ))
    }
}

/// `A` or `A:50000`.
fn parse_account(text: &str) -> Result<(AccountId, Option<i64>), String> {
    let (id, cents) = match text.split_once(':') {
        Some((id, cents)) => {
            let cents: i64 = cents
                .parse()
                .ok()
                .filter(|c| (0..=OPENING_BALANCE_CENTS_MAX).contains(c))
                .ok_or_else(|| format!("account {id}: opening balance '{cents}' is not a whole number of cents from 0 to {OPENING_BALANCE_CENTS_MAX}"))?;
            (id, Some(cents))
        }
        None => (text, None),
    };
    check_id("account", id)?;
    Ok((id.to_string(), cents))
}

/// The TOML file: every option optional. Values keep their place in the
/// file so that a bad one can be reported with its line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Spanned<SocketAddr>>,
    data_dir: Option<PathBuf>,
    demo: Option<bool>,
    nodes: Option<Spanned<u16>>,
    accounts_per_node: Option<Spanned<u32>>,
    balance_cents: Option<Spanned<i64>>,
    node_port_base: Option<u16>,
    prepare_timeout_ms: Option<u64>,
    lock_wait_ms: Option<u64>,
    ack_wait_ms: Option<u64>,
    recording_bytes_max: Option<u64>,
    participant_bin: Option<PathBuf>,
    secret_file: Option<PathBuf>,
    static_dir: Option<PathBuf>,
    api_token_file: Option<PathBuf>,
    allowed_hosts: Option<Vec<Spanned<String>>>,
    allowed_origins: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    participant: Vec<Spanned<FileParticipant>>,
}

/// `[[participant]]` in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileParticipant {
    id: String,
    /// HOST:PORT
    addr: String,
    /// `"A"` or `"A:50000"` (with its opening balance).
    accounts: Vec<String>,
}

/// Where the file came from, to name it in errors.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn error(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: &str,
        message: &str,
    ) -> anyhow::Error {
        let at = match span {
            Some(span) => format!("line {}", self.line_of(span.start)),
            None => "somewhere".to_string(),
        };
        let key = if key.is_empty() {
            String::new()
        } else {
            format!(", key `{key}`")
        };
        anyhow::anyhow!(
            "bad config file {} ({at}{key}): {message}",
            self.path.display()
        )
    }

    fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
        &self,
        key: &str,
        value: &Option<Spanned<T>>,
        range: RangeInclusive<T>,
    ) -> anyhow::Result<Option<T>> {
        let Some(value) = value else { return Ok(None) };
        let v = *value.get_ref();
        if range.contains(&v) {
            Ok(Some(v))
        } else {
            let message = format!(
                "{v} is out of range: it must be from {} to {}",
                range.start(),
                range.end()
            );
            Err(self.error(Some(value.span()), key, &message))
        }
    }
}

impl Source<'_> {
    /// Parses each string of a list key, naming the bad one's line.
    fn parse_list<T>(
        &self,
        key: &str,
        values: Option<Vec<Spanned<String>>>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<Option<Vec<T>>> {
        let Some(values) = values else {
            return Ok(None);
        };
        let mut parsed = Vec::with_capacity(values.len());
        for (i, value) in values.into_iter().enumerate() {
            let item = parse(value.get_ref()).map_err(|message| {
                self.error(Some(value.span()), &format!("{key}[{i}]"), &message)
            })?;
            parsed.push(item);
        }
        Ok(Some(parsed))
    }
}

fn parse_file(path: &Path, text: &str) -> anyhow::Result<FileConfig> {
    let source = Source { path, text };
    let parsed =
        toml::Deserializer::parse(text).map_err(|e| source.error(e.span(), "", e.message()))?;
    serde_path_to_error::deserialize::<_, FileConfig>(parsed).map_err(|e| {
        // Spanned values add a private segment to the path; hide it.
        let key = e
            .path()
            .to_string()
            .replace(".$__serde_spanned_private_value", "");
        let key = if key == "." { String::new() } else { key };
        let inner = e.into_inner();
        source.error(inner.span(), &key, inner.message())
    })
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    let size = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("cannot read the config file {}: {e}", path.display()))?
        .len();
    if size > CONFIG_FILE_BYTES_MAX {
        anyhow::bail!(
            "the config file {} is {size} bytes; the limit is {CONFIG_FILE_BYTES_MAX}",
            path.display()
        );
    }
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the config file {}: {e}", path.display()))
}

impl Args {
    /// Parses the command line (exiting with usage on a bad flag or
    /// `--help`), then takes every option not given there from `--config`.
    pub fn load() -> anyhow::Result<Args> {
        let matches = Args::command().get_matches();
        let text = Self::config_text(&matches)?;
        Args::from_matches(
            &matches,
            text.as_ref().map(|(p, t)| (p.as_path(), t.as_str())),
        )
    }

    fn config_text(matches: &ArgMatches) -> anyhow::Result<Option<(PathBuf, String)>> {
        match matches.get_one::<PathBuf>("config") {
            Some(path) => Ok(Some((path.clone(), read_file(path)?))),
            None => Ok(None),
        }
    }

    /// `file`: the config file's path and text, if any.
    fn from_matches(matches: &ArgMatches, file: Option<(&Path, &str)>) -> anyhow::Result<Args> {
        let mut args = Args::from_arg_matches(matches).map_err(|e| anyhow::anyhow!("{e}"))?;
        // Given by the person (flag or environment), so the file must not override it.
        let given = |id: &str| {
            matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        if let Some((path, text)) = file {
            let source = Source { path, text };
            let f = parse_file(path, text)?;
            macro_rules! take {
                ($field:ident, $value:expr) => {
                    if !given(stringify!($field)) {
                        if let Some(v) = $value {
                            args.$field = v;
                        }
                    }
                };
            }
            take!(listen, f.listen.map(Spanned::into_inner));
            take!(data_dir, f.data_dir);
            take!(demo, f.demo);
            take!(
                nodes,
                source.check_range("nodes", &f.nodes, 0..=SUPERVISED_NODES_MAX)?
            );
            take!(
                accounts_per_node,
                source.check_range(
                    "accounts_per_node",
                    &f.accounts_per_node,
                    1..=ACCOUNTS_PER_NODE_MAX
                )?
            );
            take!(
                balance_cents,
                source.check_range(
                    "balance_cents",
                    &f.balance_cents,
                    0..=OPENING_BALANCE_CENTS_MAX
                )?
            );
            take!(node_port_base, f.node_port_base);
            take!(prepare_timeout_ms, f.prepare_timeout_ms);
            take!(lock_wait_ms, f.lock_wait_ms);
            take!(ack_wait_ms, f.ack_wait_ms);
            take!(recording_bytes_max, f.recording_bytes_max.map(Some));
            take!(participant_bin, f.participant_bin.map(Some));
            take!(secret_file, f.secret_file.map(Some));
            take!(static_dir, f.static_dir);
            take!(api_token_file, f.api_token_file.map(Some));
            take!(
                allowed_hosts,
                source.parse_list("allowed_hosts", f.allowed_hosts, parse_allowed_host)?
            );
            take!(
                allowed_origins,
                source.parse_list("allowed_origins", f.allowed_origins, parse_allowed_origin)?
            );
            if !given("participants") {
                let mut remote = Vec::new();
                for (i, p) in f.participant.into_iter().enumerate() {
                    let span = p.span();
                    let p = p.into_inner();
                    let accounts = p
                        .accounts
                        .iter()
                        .map(|a| parse_account(a))
                        .collect::<Result<Vec<_>, _>>();
                    let parsed = accounts
                        .and_then(|accounts| RemoteParticipant::new(&p.id, &p.addr, accounts));
                    let parsed = parsed.map_err(|message| {
                        source.error(Some(span.clone()), &format!("participant[{i}]"), &message)
                    })?;
                    remote.push(parsed);
                }
                args.participants = remote;
            }
            if f.nodes.is_none() && !given("nodes") && !args.participants.is_empty() {
                args.nodes = 0;
            }
        } else if !given("nodes") && !args.participants.is_empty() {
            args.nodes = 0;
        }
        Ok(args)
    }
}

/// One participant node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Port to listen on (0 = pick a free one at first start). For a remote
    /// node, the port of `remote`.
    pub port: u16,
    /// Accounts with their opening balances.
    pub accounts: Vec<(AccountId, i64)>,
    /// The node's data dir (supervised nodes only; empty for remote ones).
    pub data_dir: PathBuf,
    /// Set for a participant this coordinator does not start or supervise:
    /// where it listens.
    pub remote: Option<SocketAddr>,
}

impl NodeConfig {
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub args: Args,
    pub nodes: Vec<NodeConfig>,
    pub account_nodes: BTreeMap<AccountId, NodeId>,
    pub expected_total_cents: i64,
    pub coordinator_dir: PathBuf,
    pub participant_bin: PathBuf,
    /// The cluster secret's file (see `--secret-file`).
    pub secret_file: PathBuf,
    /// From --api-token-file: every change must present it.
    pub api_token: Option<ApiToken>,
    /// The most bytes of recorded events kept; 0: no recording.
    pub recording_bytes_max: u64,
}

impl Config {
    pub fn from_args(args: Args) -> anyhow::Result<Config> {
        let api_token = api_token(&args)?;
        let mut nodes = Vec::new();
        for i in 0..args.nodes {
            nodes.push(supervised_node(&args, i)?);
        }
        if args.participants.len() > REMOTE_PARTICIPANTS_MAX {
            anyhow::bail!(
                "{} remote participants; the limit is {REMOTE_PARTICIPANTS_MAX}",
                args.participants.len()
            );
        }
        for p in &args.participants {
            let addr = p.resolve()?;
            let accounts = p
                .accounts
                .iter()
                .map(|(a, cents)| (a.clone(), cents.unwrap_or(args.balance_cents)))
                .collect();
            nodes.push(NodeConfig {
                id: p.id.clone(),
                port: addr.port(),
                accounts,
                data_dir: PathBuf::new(),
                remote: Some(addr),
            });
        }
        if nodes.is_empty() {
            anyhow::bail!("no participant nodes: give --nodes N (supervised) or --participant ID=HOST:PORT=ACCOUNTS (remote)");
        }
        let mut account_nodes = BTreeMap::new();
        let mut ids = std::collections::BTreeSet::new();
        for node in &nodes {
            if !ids.insert(node.id.as_str()) {
                anyhow::bail!("node id {} is used twice (supervised nodes are named 6001, 6002, ...; give remote ones other ids)", node.id);
            }
            for (account, _) in &node.accounts {
                if let Some(other) = account_nodes.insert(account.clone(), node.id.clone()) {
                    anyhow::bail!("account {account} is on two nodes ({other} and {}): every account lives on exactly one node", node.id);
                }
            }
        }
        let expected_total_cents = nodes
            .iter()
            .flat_map(|n| n.accounts.iter().map(|(_, b)| *b))
            .try_fold(0i64, |sum, b| sum.checked_add(b))
            .ok_or_else(|| {
                anyhow::anyhow!("the opening balances add up to more than an i64 of cents")
            })?;
        let participant_bin = match &args.participant_bin {
            Some(p) => p.clone(),
            None => {
                let exe = std::env::current_exe()?;
                exe.with_file_name("participant")
            }
        };
        let coordinator_dir = args.data_dir.join("coordinator");
        let secret_file = args
            .secret_file
            .clone()
            .unwrap_or_else(|| coordinator_dir.join(SECRET_FILE_NAME));
        let recording_bytes_max = match args.recording_bytes_max {
            None if args.demo => RECORDING_BYTES_MAX,
            None | Some(0) => 0,
            Some(bytes) if bytes < RECORDING_BYTES_MIN => anyhow::bail!(
                "--recording-bytes-max {bytes} is too small: give 0 (no recording) or at least {RECORDING_BYTES_MIN}"
            ),
            Some(bytes) => bytes,
        };
        Ok(Config {
            coordinator_dir,
            secret_file,
            recording_bytes_max,
            args,
            nodes,
            account_nodes,
            expected_total_cents,
            participant_bin,
            api_token,
        })
    }

    /// Whether any node is started by this coordinator (so the participant
    /// executable is needed).
    pub fn has_supervised_nodes(&self) -> bool {
        self.nodes.iter().any(|n| !n.is_remote())
    }
}

/// Reads --api-token-file, and refuses a listener that anyone else can
/// reach without one.
fn api_token(args: &Args) -> anyhow::Result<Option<ApiToken>> {
    let token = match &args.api_token_file {
        Some(path) => Some(ApiToken::read(path)?),
        None => None,
    };
    let ip = args.listen.ip().to_canonical();
    if token.is_none() && !ip.is_loopback() {
        anyhow::bail!(
            "--listen {} is not a loopback address, so anyone who can reach it could move money: give an API \
             token with --api-token-file PATH (env TPC_API_TOKEN_FILE, file key api_token_file; a file holding \
             at least {API_TOKEN_CHARS_MIN} characters, e.g. made with `openssl rand -hex 32 > PATH`), or listen \
             on 127.0.0.1",
            args.listen
        );
    }
    Ok(token)
}

fn supervised_node(args: &Args, i: u16) -> anyhow::Result<NodeConfig> {
    let id = (6001 + u32::from(i)).to_string();
    let letter = char::from(b'A' + i as u8);
    let accounts: Vec<(AccountId, i64)> = if args.accounts_per_node == 1 {
        vec![(letter.to_string(), args.balance_cents)]
    } else {
        (1..=args.accounts_per_node)
            .map(|k| (format!("{letter}{k}"), args.balance_cents))
            .collect()
    };
    let port = if args.node_port_base == 0 {
        0
    } else {
        args.node_port_base.checked_add(i).ok_or_else(|| {
            anyhow::anyhow!(
                "--node-port-base {} + {} nodes goes past port 65535",
                args.node_port_base,
                args.nodes
            )
        })?
    };
    Ok(NodeConfig {
        id: id.clone(),
        port,
        accounts,
        data_dir: args.data_dir.join(format!("node-{id}")),
        remote: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses flags and an optional file text as `load` would.
    fn load(argv: &[&str], file: Option<&str>) -> anyhow::Result<Args> {
        let mut full = vec!["backend"];
        full.extend_from_slice(argv);
        let matches = Args::command().try_get_matches_from(full)?;
        Args::from_matches(&matches, file.map(|text| (Path::new("cluster.toml"), text)))
    }

    fn error_of(file: &str) -> String {
        format!(
            "{:#}",
            load(&[], Some(file)).expect_err("the file is refused")
        )
    }

    #[test]
    fn defaults_without_a_file() {
        let args = load(&[], None).unwrap();
        assert_eq!(args.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(args.nodes, 2);
        assert_eq!(args.balance_cents, 100_000);
        assert_eq!(args.prepare_timeout_ms, PREPARE_TIMEOUT_MS);
        assert!(!args.demo);
        let config = Config::from_args(args).unwrap();
        assert_eq!(config.nodes.len(), 2);
        assert_eq!(config.expected_total_cents, 200_000);
        assert_eq!(config.account_nodes["B"], "6002");
    }

    #[test]
    fn the_file_sets_what_flags_do_not() {
        let file = r#"
            listen = "127.0.0.1:9000"
            demo = true
            nodes = 3
            prepare_timeout_ms = 1500
            [[participant]]
            id = "7001"
            addr = "127.0.0.1:7001"
            accounts = ["X", "Y:250"]
        "#;
        let args = load(&["--prepare-timeout-ms", "900"], Some(file)).unwrap();
        assert_eq!(args.listen.to_string(), "127.0.0.1:9000");
        assert!(args.demo);
        assert_eq!(args.nodes, 3);
        assert_eq!(args.prepare_timeout_ms, 900, "the flag wins over the file");
        let config = Config::from_args(args).unwrap();
        let remote = config.nodes.iter().find(|n| n.id == "7001").unwrap();
        assert_eq!(remote.remote, Some("127.0.0.1:7001".parse().unwrap()));
        assert_eq!(
            remote.accounts,
            vec![("X".to_string(), 100_000), ("Y".to_string(), 250)]
        );
        assert_eq!(config.expected_total_cents, 3 * 100_000 + 100_000 + 250);
        assert_eq!(config.account_nodes["Y"], "7001");
    }

    #[test]
    fn participants_on_the_command_line_replace_the_files_and_default_nodes_to_zero() {
        let file =
            "[[participant]]\nid = \"7001\"\naddr = \"127.0.0.1:7001\"\naccounts = [\"X\"]\n";
        let args = load(&["--participant", "8001=127.0.0.1:8001=P,Q:5"], Some(file)).unwrap();
        assert_eq!(args.nodes, 0);
        assert_eq!(args.participants.len(), 1);
        assert_eq!(args.participants[0].id, "8001");
        assert_eq!(
            args.participants[0].accounts,
            vec![("P".to_string(), None), ("Q".to_string(), Some(5))]
        );
        let args = load(
            &["--participant", "8001=127.0.0.1:8001=P", "--nodes", "1"],
            None,
        )
        .unwrap();
        assert_eq!(
            args.nodes, 1,
            "an explicit --nodes mixes supervised and remote nodes"
        );
        let config = Config::from_args(args).unwrap();
        assert!(config.nodes[0].remote.is_none() && config.nodes[1].is_remote());
    }

    #[test]
    fn bad_participant_flags_say_how_to_write_them() {
        for bad in [
            "6001=host=A=B",
            "6001",
            "6001=host=A",
            "6001=host:port=A",
            "6001=h:1=",
            "60 01=h:1=A",
            "6001=h:1=A:-5",
        ] {
            let e = load(&["--participant", bad], None)
                .expect_err(bad)
                .to_string();
            assert!(
                e.contains("participant") || e.contains("account") || e.contains("node id"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn duplicate_ids_and_accounts_are_refused() {
        let e = Config::from_args(
            load(
                &["--nodes", "1", "--participant", "6001=127.0.0.1:1=Z"],
                None,
            )
            .unwrap(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("node id 6001 is used twice"), "{e}");
        let e = Config::from_args(
            load(
                &["--nodes", "1", "--participant", "7001=127.0.0.1:1=A"],
                None,
            )
            .unwrap(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("account A is on two nodes"), "{e}");
        let e = Config::from_args(load(&["--nodes", "0"], None).unwrap()).unwrap_err();
        assert!(e.to_string().contains("no participant nodes"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_the_key_and_the_line() {
        let e = error_of("demo = true\n\nnodes = \"three\"\n");
        assert!(
            e.contains("line 3") && e.contains("key `nodes`") && e.contains("invalid type"),
            "{e}"
        );
        assert!(e.contains("cluster.toml"), "{e}");
    }

    #[test]
    fn an_unknown_key_names_itself_and_its_line() {
        let e = error_of("nodes = 2\nprepare_timout_ms = 5\n");
        assert!(
            e.contains("line 2")
                && e.contains("prepare_timout_ms")
                && e.contains("expected one of"),
            "{e}"
        );
    }

    #[test]
    fn out_of_range_values_name_the_key_and_the_line() {
        let e = error_of("\nnodes = 40\n");
        assert!(
            e.contains("line 2") && e.contains("key `nodes`") && e.contains("from 0 to 26"),
            "{e}"
        );
        let e = error_of("balance_cents = -1\n");
        assert!(
            e.contains("line 1") && e.contains("key `balance_cents`"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_address_or_participant_names_the_key_and_the_line() {
        let e = error_of("listen = \"localhost\"\n");
        assert!(
            e.contains("line 1") && e.contains("key `listen`") && e.contains("socket address"),
            "{e}"
        );
        let e = error_of(
            "nodes = 1\n[[participant]]\nid = \"7001\"\naddr = \"nohost\"\naccounts = [\"X\"]\n",
        );
        assert!(
            e.contains("line 2") && e.contains("participant[0]") && e.contains("HOST:PORT"),
            "{e}"
        );
        let e = error_of("[[participant]]\nid = \"7001\"\naddr = \"h:1\"\naccounts = [\"X\", 5]\n");
        assert!(
            e.contains("line 4") && e.contains("participant[0].accounts[1]"),
            "{e}"
        );
        let e = error_of("[[participant]]\nid = \"7001\"\naddr = \"h:1\"\n");
        assert!(
            e.contains("missing field `accounts`") && e.contains("participant[0]"),
            "{e}"
        );
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let e = error_of("nodes = 2\nlisten = = \"x\"\n");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn command_line_only_options_are_refused_in_the_file() {
        let e = error_of("fresh = true\n");
        assert!(e.contains("unknown field `fresh`"), "{e}");
    }

    #[test]
    fn the_example_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.example.toml");
        let text = std::fs::read_to_string(&path)
            .expect("cluster.example.toml exists at the repository root");
        let args = load(&[], Some(&text)).unwrap();
        assert_eq!(args.nodes, 2);
        Config::from_args(args).unwrap();
    }

    /// A temp dir with a token file holding `token`.
    fn token_file(name: &str, token: &str) -> (PathBuf, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("tpc-config-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let path = dir.join("token");
        std::fs::write(&path, token).expect("the token file is written");
        (dir, path)
    }

    #[test]
    fn a_non_loopback_listener_needs_a_good_api_token() {
        for listen in ["0.0.0.0:0", "10.0.0.1:8000", "[::]:8000"] {
            let e = Config::from_args(load(&["--listen", listen], None).unwrap()).unwrap_err();
            let e = format!("{e:#}");
            assert!(
                e.contains("is not a loopback address") && e.contains("--api-token-file PATH"),
                "{listen}: {e}"
            );
        }
        let (dir, path) = token_file("good", "  0123456789abcdef0123\n");
        let file = path.to_str().unwrap();
        let config = Config::from_args(
            load(&["--listen", "0.0.0.0:0", "--api-token-file", file], None).unwrap(),
        )
        .unwrap();
        assert!(config.api_token.unwrap().matches("0123456789abcdef0123"));
        let config = Config::from_args(load(&["--api-token-file", file], None).unwrap()).unwrap();
        assert!(
            config.api_token.is_some(),
            "a loopback listener may have a token too"
        );
        assert!(Config::from_args(load(&[], None).unwrap())
            .unwrap()
            .api_token
            .is_none());
        for bad in ["", "\n", "too-short"] {
            std::fs::write(&path, bad).unwrap();
            let e =
                Config::from_args(load(&["--api-token-file", file], None).unwrap()).unwrap_err();
            let e = format!("{e:#}");
            assert!(e.contains("API token") && e.contains(file), "{bad:?}: {e}");
        }
        let missing = dir.join("missing");
        let e = Config::from_args(
            load(
                &[
                    "--listen",
                    "0.0.0.0:0",
                    "--api-token-file",
                    missing.to_str().unwrap(),
                ],
                None,
            )
            .unwrap(),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot read the API token file"),
            "{e:#}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn allowed_hosts_and_origins_come_from_flags_or_the_file() {
        let file = r#"
            allowed_hosts = ["tpc.example.com", "tpc.example.com:8443"]
            allowed_origins = ["https://dash.example.com"]
            api_token_file = "/nonexistent/token"
        "#;
        let args = load(&[], Some(file)).unwrap();
        assert_eq!(args.allowed_hosts.len(), 2);
        assert_eq!(args.allowed_hosts[1].to_string(), "tpc.example.com:8443");
        assert_eq!(
            args.allowed_origins[0].to_string(),
            "https://dash.example.com:443"
        );
        assert_eq!(
            args.api_token_file,
            Some(PathBuf::from("/nonexistent/token"))
        );
        let args = load(
            &[
                "--allowed-host",
                "a.example",
                "--allowed-host",
                "b.example:1",
                "--allowed-origin",
                "http://x:1",
            ],
            Some(file),
        )
        .unwrap();
        let hosts: Vec<String> = args.allowed_hosts.iter().map(|h| h.to_string()).collect();
        assert_eq!(
            hosts,
            ["a.example", "b.example:1"],
            "the flags replace the file's list"
        );
        assert_eq!(args.allowed_origins.len(), 1);
        let e = load(&["--allowed-origin", "null"], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a web origin"), "{e}");
        let e = load(&["--allowed-host", "a b"], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a host name"), "{e}");
        let e = error_of("allowed_hosts = [\"ok.example\",\n  \"bad host\"]\n");
        assert!(
            e.contains("line 2") && e.contains("allowed_hosts[1]") && e.contains("NAME:PORT"),
            "{e}"
        );
        let e = error_of("allowed_origins = [\"tpc.example.com\"]\n");
        assert!(
            e.contains("line 1") && e.contains("allowed_origins[0]") && e.contains("scheme://"),
            "{e}"
        );
    }

    /// Every option can come from a `TPC_*` variable, but `--fresh`: left
    /// in an environment it would wipe the data at every start.
    #[test]
    fn every_option_has_its_environment_variable() {
        let broken = shared::cli::options_breaking_the_env_rule(&Args::command(), &["fresh"]);
        assert!(broken.is_empty(), "{broken:#?}");
    }

    /// `trunk serve` writes a development build (with its auto-reload
    /// script) into Trunk.toml's output folder; that folder must not be the
    /// one the coordinator serves by default, and the scripts that build the
    /// served dashboard must name that folder themselves.
    #[test]
    fn trunk_serve_cannot_overwrite_the_served_dashboard() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let trunk: toml::Table = std::fs::read_to_string(root.join("Trunk.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let trunk_dist = trunk["build"]["dist"].as_str().unwrap();
        let args = load(&[], None).unwrap();
        assert_ne!(Path::new(trunk_dist), args.static_dir, "Trunk.toml's dist");
        let release_build = format!("trunk build --release --dist {}", args.static_dir.display());
        for script in ["scripts/demo.sh", "scripts/test.sh"] {
            let text = std::fs::read_to_string(root.join(script)).unwrap();
            let builds: Vec<&str> = text
                .lines()
                .filter(|l| l.trim_start().starts_with("trunk build"))
                .collect();
            assert!(!builds.is_empty(), "{script} builds the dashboard");
            for line in builds {
                assert_eq!(line.trim(), release_build, "{script}");
            }
        }
    }

    #[test]
    fn help_explains_every_option() {
        let help = Args::command().render_long_help().to_string();
        for flag in [
            "--config",
            "--listen",
            "--data-dir",
            "--fresh",
            "--demo",
            "--nodes",
            "--accounts-per-node",
            "--balance-cents",
            "--node-port-base",
            "--participant",
            "--prepare-timeout-ms",
            "--lock-wait-ms",
            "--ack-wait-ms",
            "--participant-bin",
            "--static-dir",
            "--ready-file",
            "--api-token-file",
            "--allowed-host",
            "--allowed-origin",
        ] {
            assert!(help.contains(flag), "--help lacks {flag}");
        }
        assert!(
            help.contains("[default: 3000]") && help.contains("[default: 127.0.0.1:8000]"),
            "{help}"
        );
    }
}
