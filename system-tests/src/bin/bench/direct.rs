//! `--direct`: the coordinator without its HTTP server. The benchmark starts
//! the participant processes itself and runs the coordinator's own engine
//! (the `backend` library: the real `Coordinator` machine, its decision log,
//! its transport and event hub) in this process, handing it transfers as
//! the HTTP handlers do, through its command channel.
//!
//! So the figures are the cost of the product minus HTTP: the same
//! protocol, logs and connections, and nothing hand-written beside them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use backend::app::App;
use backend::config::{Args as CoordinatorArgs, Config};
use backend::engine::Command as EngineCommand;
use shared::api::{Outcome as ApiOutcome, TransferRequest};
use shared::auth::ClusterSecret;
use shared::limits::BENCH_START_TIMEOUT_MS;
use shared::protocol::coordinator::TransferError;
use tokio::sync::{oneshot, watch};

use crate::load::{Client, Outcome, Transfer};

/// Participant processes started by the benchmark; killed on drop.
pub struct Participants {
    children: Vec<Child>,
    pub addrs: Vec<SocketAddr>,
}

impl Drop for Participants {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Participants {
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Starts `nodes` participants 6001.. with the given accounts each.
    pub async fn start(
        dir: &Path,
        secret_file: &Path,
        by_node: &[Vec<String>],
        balance_cents: i64,
    ) -> anyhow::Result<Participants> {
        let mut started = Participants {
            children: Vec::new(),
            addrs: Vec::new(),
        };
        let mut ready_files = Vec::new();
        for (i, accounts) in by_node.iter().enumerate() {
            let id = 6001 + i;
            let ready = dir.join(format!("ready-{id}"));
            let mut cmd = Command::new(system_tests::bin("participant"));
            cmd.arg("--id")
                .arg(id.to_string())
                .arg("--listen")
                .arg("127.0.0.1:0")
                .arg("--data-dir")
                .arg(dir.join(format!("node-{id}")))
                .arg("--ready-file")
                .arg(&ready)
                .arg("--secret-file")
                .arg(secret_file)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            for account in accounts {
                cmd.arg("--account")
                    .arg(format!("{account}={balance_cents}"));
            }
            started
                .children
                .push(cmd.spawn().context("cannot start a participant")?);
            ready_files.push(ready);
        }
        for ready in ready_files {
            started.addrs.push(wait_ready(&ready).await?);
        }
        Ok(started)
    }
}

async fn wait_ready(path: &PathBuf) -> anyhow::Result<SocketAddr> {
    let deadline = Instant::now() + Duration::from_millis(BENCH_START_TIMEOUT_MS);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(addr) = text.trim().parse() {
                return Ok(addr);
            }
        }
        if Instant::now() > deadline {
            bail!("a participant did not write {} in time", path.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The coordinator's engine, running in this process on participants the
/// benchmark started; stopped on drop.
pub struct Engine {
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl Engine {
    /// Starts the engine (its log in `dir/coordinator`) for the nodes at
    /// `addrs` (ids 6001.., accounts as `by_node`), and waits until every
    /// node is connected and has reported what it holds in doubt.
    pub async fn start(
        dir: &Path,
        secret_file: &Path,
        secret: ClusterSecret,
        addrs: &[SocketAddr],
        by_node: &[Vec<String>],
        balance_cents: i64,
    ) -> anyhow::Result<Engine> {
        let mut argv = vec![
            "backend".to_string(),
            "--nodes".into(),
            "0".into(),
            "--data-dir".into(),
            dir.display().to_string(),
            "--secret-file".into(),
            secret_file.display().to_string(),
            "--balance-cents".into(),
            balance_cents.to_string(),
        ];
        for (i, (addr, accounts)) in addrs.iter().zip(by_node).enumerate() {
            argv.push("--participant".into());
            argv.push(format!("{}={addr}={}", 6001 + i, accounts.join(",")));
        }
        let args = <CoordinatorArgs as clap::Parser>::try_parse_from(argv)
            .map_err(|e| anyhow::anyhow!("coordinator flags: {e}"))?;
        let config = Config::from_args(args)?;
        let app = App::new(config, secret);
        let (shutdown, shutdown_rx) = watch::channel(false);
        tokio::spawn(backend::engine::supervise(
            app.engine_context(),
            shutdown_rx,
        ));
        let nodes: Vec<String> = (0..addrs.len()).map(|i| (6001 + i).to_string()).collect();
        let deadline = Instant::now() + Duration::from_millis(BENCH_START_TIMEOUT_MS);
        loop {
            let ready = app.engine.live().is_some_and(|live| {
                nodes
                    .iter()
                    .all(|n| live.transport.is_connected(n) && app.engine.reconciled(n))
            });
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!("the coordinator's engine did not reach every node in time");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Engine { app, shutdown })
    }

    /// Decision-log fdatasyncs so far.
    pub fn forces(&self) -> u64 {
        self.app.engine.gauge(&self.app.engine.log_forces)
    }
}

/// One client: hands transfers to the engine as an HTTP handler would.
pub struct DirectClient {
    pub app: Arc<App>,
}

impl Client for DirectClient {
    async fn transfer(&mut self, t: Transfer<'_>) -> Outcome {
        let request = TransferRequest {
            from: t.from.to_string(),
            to: t.to.to_string(),
            amount_cents: t.amount_cents,
            tx_id: None,
        };
        let Some(live) = self.app.engine.live() else {
            return Outcome::Error("the engine is down".to_string());
        };
        let (reply, answer) = oneshot::channel();
        if live
            .commands
            .send(EngineCommand::Transfer { request, reply })
            .await
            .is_err()
        {
            return Outcome::Error("the engine stopped".to_string());
        }
        match answer.await {
            Ok(Ok(response)) => match response.outcome {
                ApiOutcome::Committed => Outcome::Committed,
                ApiOutcome::Aborted => Outcome::Aborted(
                    response
                        .reason
                        .map_or_else(|| "unknown".to_string(), |r| r.as_str().to_string()),
                ),
            },
            Ok(Err(
                TransferError::Invalid(m)
                | TransferError::Conflict(m)
                | TransferError::Unavailable(m),
            )) => Outcome::Error(m),
            Err(_) => Outcome::Error("the engine dropped the transfer".to_string()),
        }
    }
}
