//! `bench`: starts a fresh cluster on free ports in a temp dir, drives
//! transfers at it with C concurrent closed-loop clients for D seconds, and
//! prints throughput, aborts by reason, latency percentiles and log forces
//! per committed transfer on each process; then checks the money invariants.
//!
//! Modules:
//! - `load`: the workload, the client loop, the tally.
//! - `http_client`: a minimal keep-alive HTTP/1.1 client (one per client).
//! - `node_link`: a `shared::wire` connection to a participant.
//! - `cpu`: CPU time of each process and of the whole machine, from `/proc`.
//! - `probe`: `--fsync-probe`, the cost of one fdatasync here.
//! - `phases`: the mean of each protocol phase, from the coordinator's
//!   `/metrics`.
//! - `direct`: `--direct`, the coordinator's own engine run in the bench's
//!   process (no HTTP), on participants the bench starts.
//!
//! Build first: `cargo build --profile perf -p backend -p participant -p system-tests`
//! (or `--release`: the bench uses the `backend` and `participant` next to itself).

mod cpu;
mod direct;
mod http_client;
mod load;
mod node_link;
mod phases;
mod probe;
mod sched;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;
use shared::limits::{
    BENCH_CLIENTS_MAX, BENCH_COLD_ACCOUNTS_PER_NODE, BENCH_HOT_ACCOUNTS_PER_NODE,
    BENCH_REPEATS_MAX, BENCH_RUN_S_MAX, BENCH_SLOW_TRANSFER_US,
};
use system_tests::progress::Progress;
use system_tests::{Cluster, Options};

use crate::direct::{DirectClient, Engine, Participants};
use crate::http_client::HttpConn;
use crate::load::{Client, Outcome, Run, Transfer, Workload};
use crate::node_link::NodeLink;

/// Benchmark of the 2PC money-transfer system: starts a fresh cluster
/// (coordinator + participants, fsync on, on 127.0.0.1 free ports), drives
/// cross-node transfers with C concurrent clients over keep-alive
/// connections for D seconds, prints committed/s, aborted/s by reason,
/// latency p50/p99/p99.9/max and log forces per committed transfer on each
/// process, then checks that money was conserved.
///
/// Needs `cargo build --profile perf -p backend -p participant` (or `--release`) first.
#[derive(Debug, Clone, Parser)]
#[command(about, long_about)]
struct Args {
    /// Participant processes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(2..=26))]
    nodes: u16,
    /// Accounts on each node [default: 1000, or 2 with --hot].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    accounts_per_node: Option<u32>,
    /// Contention: a few hot accounts (2 per node unless --accounts-per-node).
    #[arg(long)]
    hot: bool,
    /// Concurrent clients (transfers in flight).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1)]
    warmup_seconds: u64,
    /// Run the coordinator's engine in this process (the real protocol,
    /// decision log and connections) and hand it transfers directly: no
    /// HTTP, no coordinator process.
    #[arg(long)]
    direct: bool,
    /// Run C = --sweep-clients, without and with contention, and print a table.
    #[arg(long)]
    sweep: bool,
    /// Client counts for --sweep.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64,256")]
    sweep_clients: Vec<usize>,
    /// Run the same point N times, each on a fresh cluster, then print a
    /// table of the runs and the median (min to max) of each figure: on a
    /// shared host one run says little.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=BENCH_REPEATS_MAX as i64))]
    repeat: u32,
    /// Only measure what one fdatasync costs on this disk (no cluster).
    #[arg(long)]
    fsync_probe: bool,
    /// Opening balance of every account (large, so that no transfer fails for funds).
    #[arg(long, default_value_t = 1_000_000_000)]
    balance_cents: i64,
    /// Each transfer moves 1 to this many cents.
    #[arg(long, default_value_t = 100)]
    amount_cents_max: i64,
    /// The coordinator's `--ack-wait-ms` (HTTP mode). 0: a client is
    /// answered at the commit point (decision durable, commits sent),
    /// without waiting for the nodes to apply it.
    #[arg(long, default_value_t = Options::default().ack_wait_ms)]
    ack_wait_ms: u64,
    /// Also print each second of the run: transfers, slow ones, the worst
    /// latency, with the wall-clock time to match the cluster's logs
    /// (`TEST_RUST_LOG=info`).
    #[arg(long)]
    timeline: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = validate(&args) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    // One thread: the load generator shares the machine with the system
    // under test and should take as little of it as it can.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, run_all(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn validate(args: &Args) -> Result<(), String> {
    if args.seconds == 0 || args.seconds > BENCH_RUN_S_MAX || args.warmup_seconds > BENCH_RUN_S_MAX
    {
        return Err(format!(
            "--seconds must be 1 to {BENCH_RUN_S_MAX} and --warmup-seconds at most {BENCH_RUN_S_MAX}"
        ));
    }
    let all_clients = std::iter::once(args.clients).chain(args.sweep_clients.iter().copied());
    if all_clients
        .into_iter()
        .any(|c| c == 0 || c > BENCH_CLIENTS_MAX)
    {
        return Err(format!("client counts must be 1 to {BENCH_CLIENTS_MAX}"));
    }
    if args.repeat > 1 && (args.sweep || args.fsync_probe) {
        return Err(
            "--repeat runs one point several times: use it without --sweep and --fsync-probe"
                .to_string(),
        );
    }
    if args.amount_cents_max < 1 || args.balance_cents < 1 {
        return Err("--amount-cents-max and --balance-cents must be positive".to_string());
    }
    Ok(())
}

/// Runs what was asked; Ok(false) if an invariant check failed.
async fn run_all(args: Args) -> anyhow::Result<bool> {
    if args.fsync_probe {
        let dir = tempfile::Builder::new()
            .prefix("tpc-fsync-probe-")
            .tempdir()?;
        probe::run(dir.path())?;
        return Ok(true);
    }
    if args.repeat > 1 {
        let reports = run_repeated(&args).await?;
        println!();
        print!("{}", table(&reports));
        println!("{}", summary(&reports));
        return Ok(reports.iter().all(|r| r.invariants.is_ok()));
    }
    if !args.sweep {
        let report = run_one(&args).await?;
        print!("{}", report.text());
        return Ok(report.invariants.is_ok());
    }
    let mut reports = Vec::new();
    let points = 2 * args.sweep_clients.len() as u64;
    let progress = Progress::steps("[bench] sweep", points);
    for hot in [false, true] {
        for &clients in &args.sweep_clients {
            let point = Args {
                hot,
                clients,
                ..args.clone()
            };
            let what = format!(
                "{clients} clients{}",
                if hot { ", hot accounts" } else { "" }
            );
            progress.set(reports.len() as u64, &what, true);
            let report = run_one(&point).await?;
            progress.suspend(|| print!("{}", report.text()));
            reports.push(report);
        }
    }
    progress.finish();
    println!();
    print!("{}", table(&reports));
    Ok(reports.iter().all(|r| r.invariants.is_ok()))
}

/// `--repeat`: the same point `args.repeat` times, each on a fresh cluster,
/// printing each run as it ends.
async fn run_repeated(args: &Args) -> anyhow::Result<Vec<Report>> {
    let mut reports = Vec::new();
    let progress = Progress::steps("[bench] runs", u64::from(args.repeat));
    for i in 1..=args.repeat {
        progress.set(
            u64::from(i - 1),
            &format!("run {i} of {}", args.repeat),
            true,
        );
        let report = run_one(args).await?;
        progress.suspend(|| print!("{}", report.text()));
        reports.push(report);
    }
    progress.finish();
    Ok(reports)
}

/// What one run measured.
struct Report {
    mode: &'static str,
    hot: bool,
    nodes: u16,
    accounts_per_node: u32,
    clients: usize,
    /// Print the per-second timeline too.
    timeline: bool,
    run: Run,
    /// (process, forces per committed transfer)
    forces: Vec<(String, f64)>,
    /// (process, CPU microseconds per committed transfer)
    cpu_us: Vec<(String, f64)>,
    /// How busy the machine's cores were during the run, and how much of
    /// that was other work (None if `/proc/stat` cannot be read).
    host: Option<cpu::Host>,
    /// How long each process's threads waited for a core (None without
    /// schedstats).
    waiting: Option<Vec<sched::Waiting>>,
    /// The mean of each protocol phase (HTTP mode only: the coordinator
    /// measures them).
    phases: Option<phases::Means>,
    invariants: Result<String, String>,
}

impl Report {
    fn committed_per_s(&self) -> f64 {
        self.run.measured.committed as f64 / self.run.elapsed.as_secs_f64()
    }

    fn aborted_per_s(&self) -> f64 {
        self.run.measured.aborted_total() as f64 / self.run.elapsed.as_secs_f64()
    }

    /// Latency p50, p99, p99.9 and max in ms.
    fn percentiles_ms(&self) -> [f64; 4] {
        let mut tally = load::Tally {
            latencies_us: self.run.measured.latencies_us.clone(),
            ..Default::default()
        };
        tally.percentiles_ms()
    }

    /// CPU µs per committed transfer, all processes together.
    fn cpu_us_total(&self) -> f64 {
        self.cpu_us.iter().map(|(_, us)| us).sum()
    }

    fn text(&self) -> String {
        let [p50, p99, p999, max] = self.percentiles_ms();
        let secs = self.run.elapsed.as_secs_f64();
        let m = &self.run.measured;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n== {} | {} nodes x {} accounts ({}) | {} clients | {:.1} s measured",
            self.mode,
            self.nodes,
            self.accounts_per_node,
            if self.hot {
                "contention"
            } else {
                "no contention"
            },
            self.clients,
            secs
        );
        let _ = writeln!(
            out,
            "committed   {:>9}  {:>10.1}/s",
            m.committed,
            self.committed_per_s()
        );
        let reasons: Vec<String> = m
            .aborted
            .iter()
            .map(|(r, n)| format!("{r} {:.1}/s", *n as f64 / secs))
            .collect();
        let _ = writeln!(
            out,
            "aborted     {:>9}  {:>10.1}/s  {}",
            m.aborted_total(),
            self.aborted_per_s(),
            if reasons.is_empty() {
                String::new()
            } else {
                format!("({})", reasons.join(", "))
            }
        );
        if m.errors_total() > 0 {
            let errors: Vec<String> = m.errors.iter().map(|(r, n)| format!("{n} x {r}")).collect();
            let _ = writeln!(
                out,
                "errors      {:>9}  ({})",
                m.errors_total(),
                errors.join("; ")
            );
        }
        let _ = writeln!(
            out,
            "latency ms  p50 {p50:.3}  p99 {p99:.3}  p99.9 {p999:.3}  max {max:.3}"
        );
        let forces: Vec<String> = self
            .forces
            .iter()
            .map(|(p, f)| format!("{p} {f:.3}"))
            .collect();
        let _ = writeln!(
            out,
            "log forces per committed transfer: {}",
            forces.join(", ")
        );
        let cpu: Vec<String> = self
            .cpu_us
            .iter()
            .map(|(p, us)| format!("{p} {us:.0}"))
            .collect();
        let total = self.cpu_us_total();
        let _ = writeln!(
            out,
            "CPU us per committed transfer: {} (total {total:.0})",
            cpu.join(", ")
        );
        if let Some(host) = &self.host {
            let _ = writeln!(out, "host during the run: {host}");
        }
        if let Some(waiting) = &self.waiting {
            let _ = writeln!(
                out,
                "waiting for a core (run queue): {}",
                sched::describe(waiting)
            );
        }
        if let Some(means) = &self.phases {
            let latencies = &self.run.measured.latencies_us;
            let client_ms = latencies.iter().map(|&us| f64::from(us)).sum::<f64>()
                / latencies.len().max(1) as f64
                / 1_000.0;
            let _ = writeln!(
                out,
                "mean ms by phase (coordinator's clock): {means}; at the clients {client_ms:.3}"
            );
        }
        if self.timeline {
            out.push_str(&timeline(&self.run));
        }
        match &self.invariants {
            Ok(what) => {
                let _ = writeln!(out, "invariants: OK ({what})");
            }
            Err(what) => {
                let _ = writeln!(out, "invariants: VIOLATED: {what}");
            }
        }
        out
    }
}

/// One line per second of the measured window, by the second each transfer
/// started in: a stall shows as a second with few transfers and a large
/// worst latency, and its UTC time finds it in the cluster's logs.
fn timeline(run: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "timeline (UTC, by start second): transfers, failed, >= {} ms, worst ms",
        BENCH_SLOW_TRANSFER_US / 1000
    );
    let start_s = run
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for (i, s) in run.measured.seconds.iter().enumerate() {
        let t = (start_s + i as u64) % 86_400;
        let _ = writeln!(
            out,
            "  {:02}:{:02}:{:02}  {:>7}  {:>5}  {:>5}  {:>8.1}",
            t / 3600,
            t / 60 % 60,
            t % 60,
            s.committed + s.failed,
            s.failed,
            s.slow,
            f64::from(s.max_us) / 1000.0
        );
    }
    out
}

fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    let procs: Vec<String> = reports
        .first()
        .map(|r| r.forces.iter().map(|(p, _)| p.clone()).collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "| mode | contention | clients | committed/s | aborted/s | p50 ms | p99 ms | p99.9 ms | max ms | forces/commit ({}) | CPU us/commit | other load % | invariants |",
        procs.join(" / ")
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"
    );
    for r in reports {
        let [p50, p99, p999, max] = r.percentiles_ms();
        let forces: Vec<String> = r.forces.iter().map(|(_, f)| format!("{f:.2}")).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {:.0} | {} | {} |",
            r.mode,
            if r.hot { "hot" } else { "none" },
            r.clients,
            r.committed_per_s(),
            r.aborted_per_s(),
            p50,
            p99,
            p999,
            max,
            forces.join(" / "),
            r.cpu_us_total(),
            r.host
                .map_or_else(|| "-".to_string(), |h| format!("{:.0}", h.others_pct)),
            if r.invariants.is_ok() {
                "ok"
            } else {
                "VIOLATED"
            }
        );
    }
    out
}

/// The middle value and the range of some runs' figure.
#[derive(Debug, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    /// None for no values. The median of an even count is the mean of the
    /// two middle values.
    fn of(mut values: Vec<f64>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: values[0],
            max: values[n - 1],
        })
    }

    fn describe(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$} to {:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }
}

/// `--repeat`'s last line: the median and range of the runs' main figures.
fn summary(reports: &[Report]) -> String {
    let figure = |values: Vec<f64>, decimals: usize| {
        Spread::of(values).map_or_else(|| "-".to_string(), |s| s.describe(decimals))
    };
    // Each run's latencies are sorted once, for both percentiles.
    let percentiles: Vec<[f64; 4]> = reports.iter().map(Report::percentiles_ms).collect();
    format!(
        "over {} runs, median (min to max): committed/s {}; p50 ms {}; p99 ms {}; CPU us/commit {}",
        reports.len(),
        figure(reports.iter().map(Report::committed_per_s).collect(), 0),
        figure(percentiles.iter().map(|p| p[0]).collect(), 3),
        figure(percentiles.iter().map(|p| p[1]).collect(), 2),
        figure(reports.iter().map(Report::cpu_us_total).collect(), 0),
    )
}

fn accounts_per_node(args: &Args) -> u32 {
    args.accounts_per_node.unwrap_or(if args.hot {
        BENCH_HOT_ACCOUNTS_PER_NODE
    } else {
        BENCH_COLD_ACCOUNTS_PER_NODE
    })
}

/// Account names as the coordinator makes them: A, B, ... or A1, A2, ...
fn account_names(nodes: u16, per_node: u32) -> Vec<Vec<String>> {
    (0..nodes)
        .map(|i| {
            let letter = char::from(b'A' + i as u8);
            if per_node == 1 {
                vec![letter.to_string()]
            } else {
                (1..=per_node).map(|k| format!("{letter}{k}")).collect()
            }
        })
        .collect()
}

async fn run_one(args: &Args) -> anyhow::Result<Report> {
    if args.direct {
        run_direct(args).await
    } else {
        run_http(args).await
    }
}

// ----- through the HTTP API -----

struct HttpClient {
    conn: HttpConn,
    body: Vec<u8>,
}

#[derive(Deserialize)]
struct AnswerBody {
    reason: Option<String>,
    error: Option<String>,
}

impl Client for HttpClient {
    async fn transfer(&mut self, t: Transfer<'_>) -> Outcome {
        self.body.clear();
        use std::io::Write;
        let _ = write!(
            self.body,
            r#"{{"from":"{}","to":"{}","amount_cents":{}}}"#,
            t.from, t.to, t.amount_cents
        );
        match self.conn.post_json("/api/transfers", &self.body).await {
            Ok(answer) if answer.status == 200 => Outcome::Committed,
            Ok(answer) => {
                let body: Option<AnswerBody> = serde_json::from_slice(&answer.body).ok();
                match (answer.status, body) {
                    (
                        409,
                        Some(AnswerBody {
                            reason: Some(reason),
                            ..
                        }),
                    ) => Outcome::Aborted(reason),
                    (
                        status,
                        Some(AnswerBody {
                            error: Some(error), ..
                        }),
                    ) => Outcome::Error(format!("HTTP {status}: {error}")),
                    (status, _) => Outcome::Error(format!("HTTP {status}")),
                }
            }
            Err(e) => Outcome::Error(format!("connection: {e}")),
        }
    }
}

#[derive(Deserialize)]
struct StatsBody {
    committed: u64,
    log_forces: u64,
}

async fn coordinator_stats(cluster: &Cluster) -> anyhow::Result<StatsBody> {
    let (status, body) = cluster.get("/api/stats").await;
    anyhow::ensure!(status == 200, "GET /api/stats answered {status}: {body}");
    Ok(serde_json::from_value(body)?)
}

async fn node_forces(links: &[NodeLink]) -> anyhow::Result<Vec<u64>> {
    let mut forces = Vec::new();
    for link in links {
        forces.push(link.status().await?.log_forces);
    }
    Ok(forces)
}

async fn run_http(args: &Args) -> anyhow::Result<Report> {
    let per_node = accounts_per_node(args);
    let options = Options {
        nodes: args.nodes,
        accounts_per_node: per_node,
        balance_cents: args.balance_cents,
        ack_wait_ms: args.ack_wait_ms,
        demo: false,
        ..Options::default()
    };
    let cluster = Cluster::start(options).await;
    let view = cluster.cluster().await;
    let by_node: Vec<Vec<String>> = view
        .nodes
        .iter()
        .map(|n| n.accounts.iter().map(|a| a.id.clone()).collect())
        .collect();
    let sorted = |lists: &[Vec<String>]| {
        lists
            .iter()
            .map(|l| l.iter().cloned().collect::<std::collections::BTreeSet<_>>())
            .collect::<Vec<_>>()
    };
    anyhow::ensure!(
        sorted(&by_node) == sorted(&account_names(args.nodes, per_node)),
        "the cluster's accounts are not the expected ones"
    );
    let mut links = Vec::new();
    let secret = cluster.secret().map_err(|e| anyhow::anyhow!("{e}"))?;
    for node in &view.nodes {
        let addr: SocketAddr = node
            .addr
            .parse()
            .with_context(|| format!("node {} has no address", node.id))?;
        links.push(NodeLink::connect(addr, &secret, &system_tests::admin_claim()).await?);
    }
    let addr: SocketAddr = cluster.base_url.trim_start_matches("http://").parse()?;
    let mut procs = vec![(
        "coordinator".to_string(),
        cluster.coordinator_pid().context("no coordinator pid")?,
    )];
    for node in &view.nodes {
        procs.push((
            node.id.clone(),
            node.pid
                .with_context(|| format!("node {} has no pid", node.id))?,
        ));
    }
    procs.push(("bench".to_string(), std::process::id()));
    let coordinator_before = coordinator_stats(&cluster).await?;
    let nodes_before = node_forces(&links).await?;
    let cpu_before = cpu::snapshot(&procs);
    let phases_before = phases::scrape(&cluster).await?;

    let workload = Rc::new(Workload {
        by_node,
        amount_cents_max: args.amount_cents_max,
    });
    let clients = (0..args.clients)
        .map(|_| HttpClient {
            conn: HttpConn::new(addr),
            body: Vec::with_capacity(128),
        })
        .collect();
    let run = load::drive(
        clients,
        workload,
        Duration::from_secs(args.warmup_seconds),
        Duration::from_secs(args.seconds),
        !args.sweep && args.repeat == 1,
    )
    .await;
    let usage = cpu::since(&procs, &cpu_before, run.committed_all);
    let phases_after = phases::scrape(&cluster).await?;

    let view = cluster.wait_quiescent().await;
    let coordinator_after = coordinator_stats(&cluster).await?;
    let nodes_after = node_forces(&links).await?;
    let per_commit =
        |before: u64, after: u64| (after - before) as f64 / run.committed_all.max(1) as f64;
    let mut forces = vec![(
        "coordinator".to_string(),
        per_commit(coordinator_before.log_forces, coordinator_after.log_forces),
    )];
    for ((link, before), after) in links.iter().zip(&nodes_before).zip(&nodes_after) {
        forces.push((link.node.clone(), per_commit(*before, *after)));
    }
    let balances: Vec<(String, i64)> = view
        .nodes
        .iter()
        .flat_map(|n| n.accounts.iter().map(|a| (a.id.clone(), a.balance_cents)))
        .collect();
    let mut invariants = check_money(&balances, view.expected_total_cents);
    if view.total_complete && invariants.is_ok() {
        let counted = coordinator_after.committed - coordinator_before.committed;
        if counted != run.committed_all && run.errors_all == 0 {
            invariants = Err(format!(
                "the coordinator counted {counted} commits but clients were told {}",
                run.committed_all
            ));
        } else if let Ok(what) = &mut invariants {
            let _ = write!(what, "; nothing in doubt or locked; coordinator counted {counted} commits, clients saw {}", run.committed_all);
        }
    } else if !view.total_complete {
        invariants = Err("a node did not answer, so the total is partial".to_string());
    }
    Ok(Report {
        mode: if args.ack_wait_ms == 0 {
            "http, answered at the commit point (--ack-wait-ms 0)"
        } else {
            "http"
        },
        hot: args.hot,
        nodes: args.nodes,
        accounts_per_node: per_node,
        clients: args.clients,
        timeline: args.timeline,
        run,
        forces,
        cpu_us: usage.per_commit_us,
        host: usage.host,
        waiting: usage.waiting,
        phases: Some(phases::Means::between(&phases_before, &phases_after)),
        invariants,
    })
}

/// Total conserved, nothing negative.
fn check_money(balances: &[(String, i64)], expected_total_cents: i64) -> Result<String, String> {
    let total: i64 = balances.iter().map(|(_, b)| b).sum();
    let negative: Vec<&String> = balances
        .iter()
        .filter(|(_, b)| *b < 0)
        .map(|(a, _)| a)
        .collect();
    if !negative.is_empty() {
        return Err(format!("negative balances on {negative:?}"));
    }
    if total != expected_total_cents {
        return Err(format!(
            "total is {total} cents, expected {expected_total_cents}"
        ));
    }
    Ok(format!(
        "total {total} cents = expected, no negative balance"
    ))
}

// ----- the coordinator's engine, without HTTP -----

async fn run_direct(args: &Args) -> anyhow::Result<Report> {
    let per_node = accounts_per_node(args);
    let by_node = account_names(args.nodes, per_node);
    let dir = tempfile::Builder::new().prefix("tpc-bench-").tempdir()?;
    let secret_file = dir.path().join("cluster.secret");
    let (secret, _) = shared::auth::ClusterSecret::load_or_create(&secret_file, rand::random)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let participants =
        Participants::start(dir.path(), &secret_file, &by_node, args.balance_cents).await?;
    let engine = Engine::start(
        dir.path(),
        &secret_file,
        secret.clone(),
        &participants.addrs,
        &by_node,
        args.balance_cents,
    )
    .await?;
    // The nodes' own figures (log forces, balances) through admin links.
    let mut links = Vec::new();
    for addr in &participants.addrs {
        links.push(NodeLink::connect(*addr, &secret, &system_tests::admin_claim()).await?);
    }
    let node_ids: Vec<String> = links.iter().map(|l| l.node.clone()).collect();
    let links = Rc::new(links);
    let nodes_before = node_forces(&links).await?;
    let log_before = engine.forces();
    let mut procs: Vec<(String, u32)> = node_ids.iter().cloned().zip(participants.pids()).collect();
    procs.push(("bench (coordinator engine)".to_string(), std::process::id()));
    let cpu_before = cpu::snapshot(&procs);

    let workload = Rc::new(Workload {
        by_node: by_node.clone(),
        amount_cents_max: args.amount_cents_max,
    });
    let clients = (0..args.clients)
        .map(|_| DirectClient {
            app: engine.app.clone(),
        })
        .collect();
    let run = load::drive(
        clients,
        workload,
        Duration::from_secs(args.warmup_seconds),
        Duration::from_secs(args.seconds),
        !args.sweep && args.repeat == 1,
    )
    .await;
    let usage = cpu::since(&procs, &cpu_before, run.committed_all);

    // Settle: the last rollbacks and commits are applied asynchronously.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let statuses = loop {
        let mut statuses = Vec::new();
        for link in links.iter() {
            statuses.push(link.status().await?);
        }
        let settled = statuses
            .iter()
            .all(|s| s.in_doubt.is_empty() && s.locked_accounts.is_empty());
        if settled || tokio::time::Instant::now() > deadline {
            break statuses;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let per_commit =
        |before: u64, after: u64| (after - before) as f64 / run.committed_all.max(1) as f64;
    let mut forces = vec![(
        "coordinator".to_string(),
        per_commit(log_before, engine.forces()),
    )];
    for (status, before) in statuses.iter().zip(&nodes_before) {
        forces.push((status.node.clone(), per_commit(*before, status.log_forces)));
    }
    let balances: Vec<(String, i64)> = statuses
        .iter()
        .flat_map(|s| s.accounts.iter().map(|a| (a.id.clone(), a.balance_cents)))
        .collect();
    let expected = args.balance_cents * i64::from(args.nodes) * i64::from(per_node);
    let unsettled: Vec<&String> = statuses
        .iter()
        .filter(|s| !s.in_doubt.is_empty() || !s.locked_accounts.is_empty())
        .map(|s| &s.node)
        .collect();
    let invariants = if unsettled.is_empty() {
        check_money(&balances, expected).map(|what| format!("{what}; nothing in doubt or locked"))
    } else {
        Err(format!(
            "nodes {unsettled:?} still hold locks or in-doubt transactions"
        ))
    };
    drop(engine);
    drop(participants);
    Ok(Report {
        mode: "direct",
        hot: args.hot,
        nodes: args.nodes,
        accounts_per_node: per_node,
        clients: args.clients,
        timeline: args.timeline,
        run,
        forces,
        cpu_us: usage.per_commit_us,
        host: usage.host,
        waiting: usage.waiting,
        phases: None,
        invariants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short_args(extra: &[&str]) -> Args {
        let mut argv = vec![
            "bench",
            "--clients",
            "4",
            "--seconds",
            "1",
            "--warmup-seconds",
            "0",
            "--accounts-per-node",
            "10",
        ];
        argv.extend_from_slice(extra);
        let args = Args::parse_from(argv);
        validate(&args).expect("valid flags");
        args
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        tokio::task::LocalSet::new().block_on(&runtime, f)
    }

    fn short_run(extra: &[&str]) -> Report {
        block_on(run_one(&short_args(extra))).expect("the run completes")
    }

    /// Needs `cargo build -p backend -p participant` (as every system test).
    #[test]
    fn a_short_run_through_http_commits_and_keeps_the_money() {
        let report = short_run(&[]);
        assert!(report.run.committed_all > 0, "{}", report.text());
        assert_eq!(report.run.errors_all, 0, "{}", report.text());
        assert!(report.invariants.is_ok(), "{}", report.text());
        assert_eq!(report.forces.len(), 3, "coordinator and two nodes");
        let means = report.phases.as_ref().expect("HTTP runs measure phases");
        assert!(
            means.0.iter().all(|m| m.is_some_and(|ms| ms > 0.0)),
            "every phase was seen and took time: {}",
            report.text()
        );
        assert!(report.text().contains("mean ms by phase"));
        let waiting = report.waiting.as_ref().expect("schedstat is readable here");
        assert_eq!(waiting.len(), 4, "coordinator, two nodes, bench");
        assert!(
            waiting[0].switches_per_commit > 0.0,
            "the coordinator's threads woke up: {}",
            report.text()
        );
        assert!(report.text().contains("waiting for a core"));
        let host = report.host.expect("/proc/stat is readable here");
        assert!(
            host.ours_pct > 0.0 && host.busy_pct <= 100.0 + 1e-9,
            "{host:?}"
        );
    }

    #[test]
    fn a_short_direct_run_commits_and_keeps_the_money() {
        let report = short_run(&["--direct", "--hot"]);
        assert!(report.run.committed_all > 0, "{}", report.text());
        assert_eq!(
            report.run.errors_all,
            0,
            "every transfer has an outcome: {}",
            report.text()
        );
        assert!(report.invariants.is_ok(), "{}", report.text());
    }

    #[test]
    fn repeated_runs_summarise_as_median_and_range() {
        let args = short_args(&["--repeat", "2"]);
        let reports = block_on(run_repeated(&args)).expect("the runs complete");
        assert_eq!(reports.len(), 2, "one report per run");
        assert!(reports.iter().all(|r| r.invariants.is_ok()));
        let line = summary(&reports);
        let rates: Vec<f64> = reports.iter().map(Report::committed_per_s).collect();
        let (lo, hi) = (rates[0].min(rates[1]), rates[0].max(rates[1]));
        assert!(line.starts_with("over 2 runs, median (min to max): committed/s "));
        assert!(
            line.contains(&format!("({lo:.0} to {hi:.0})")),
            "{line} names the range {lo:.0} to {hi:.0}"
        );
        assert!(line.contains("; p50 ms ") && line.contains("; CPU us/commit "));
    }

    #[test]
    fn the_spread_is_the_median_and_the_range() {
        assert_eq!(Spread::of(vec![]), None);
        let odd = Spread::of(vec![3.0, 1.0, 2.0]).expect("values");
        assert_eq!(
            odd,
            Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        let even = Spread::of(vec![4.0, 1.0, 10.0, 2.0]).expect("values");
        assert_eq!(
            even,
            Spread {
                median: 3.0,
                min: 1.0,
                max: 10.0
            }
        );
        assert_eq!(even.describe(1), "3.0 (1.0 to 10.0)");
    }

    #[test]
    fn repeat_goes_with_one_point_only() {
        let sweep = Args::parse_from(["bench", "--repeat", "3", "--sweep"]);
        let err = validate(&sweep).expect_err("refused");
        assert!(err.contains("--repeat") && err.contains("--sweep"), "{err}");
        assert!(Args::try_parse_from(["bench", "--repeat", "0"]).is_err());
        assert!(Args::try_parse_from(["bench", "--repeat", "101"]).is_err());
        let fine = Args::parse_from(["bench", "--repeat", "5"]);
        assert_eq!(validate(&fine), Ok(()));
    }

    #[test]
    fn accounts_are_named_as_the_coordinator_names_them() {
        assert_eq!(
            account_names(2, 1),
            vec![vec!["A".to_string()], vec!["B".to_string()]]
        );
        assert_eq!(
            account_names(2, 2)[1],
            vec!["B1".to_string(), "B2".to_string()]
        );
    }
}
