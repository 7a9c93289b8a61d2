//! Starts, watches, crashes (SIGKILL) and restarts the participant
//! processes. A participant that is already running on its data dir (left
//! over from a coordinator that was killed) is adopted, never started twice.
//!
//! Remote participants (`--participant`) are only known by address: they
//! run on their own, possibly on other hosts, so they are never started,
//! crashed or restarted from here (those answer `NotSupervised`).
//!
//! [`Supervisor::admin_request`] reaches any node over a connection of its
//! own, outside the engine and the fault layer: the operator's channel for
//! heuristic decisions, which must work when the coordinator's link to the
//! node is cut (as an operator at the node's console would).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use shared::auth::{self, Claim, ClusterSecret};
use shared::limits::{
    NODE_ADMIN_REQUEST_TIMEOUT_MS, NODE_ADOPT_POLL_MS, NODE_ADOPT_PROBE_TIMEOUT_MS,
    NODE_DIR_LOCKED_RETRY_MS, NODE_DIR_LOCK_RELEASE_WAIT_MS, NODE_PROCESS_POLL_MS,
    NODE_START_TIMEOUT_MS, NODE_STOP_TIMEOUT_MS,
};
use shared::wire::{decode_line, encode_line, NodeId, PeerRole, Reply, Request};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::watch;

use crate::config::{Config, NodeConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    /// Started by us (or adopted) and not known to have exited.
    Running { pid: u32, supervised: bool },
    /// Being started; recovering from its log.
    Starting,
    /// Killed or exited.
    Exited,
    /// A remote participant: runs on its own; not started or watched by us.
    Remote,
}

struct NodeProc {
    config: NodeConfig,
    addr: Option<SocketAddr>,
    state: watch::Sender<ProcState>,
    started_at: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("no node {0}")]
    UnknownNode(String),
    #[error("node {0} is already running (pid {1}); crash it first")]
    AlreadyRunning(String, u32),
    #[error("node {0} is being started already; wait for it")]
    AlreadyStarting(String),
    #[error(
        "node {0}'s data dir {1} is held by another process (most likely node {0} itself, still \
         running or recovering, but not known to this coordinator); stop that process first"
    )]
    DataDirHeld(String, String),
    #[error("node {0} is not running")]
    NotRunning(String),
    #[error(
        "node {0} is not supervised by this coordinator: it runs on its own at {1} (--participant), \
         so it can only be stopped or restarted where it runs"
    )]
    NotSupervised(String, String),
    #[error("{0:#}")]
    Start(anyhow::Error),
}

/// Cheap to clone: every clone sees the same processes.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    nodes: Mutex<BTreeMap<NodeId, NodeProc>>,
    participant_bin: PathBuf,
    lock_wait_ms: u64,
    log_checkpoint_bytes: u64,
    allow_faults: bool,
    /// Given to every supervised node (`--secret-file`), and proved on the
    /// admin connections.
    secret_file: PathBuf,
    secret: Arc<ClusterSecret>,
}

impl Supervisor {
    pub fn new(config: &Config, secret: Arc<ClusterSecret>) -> Supervisor {
        let nodes = config
            .nodes
            .iter()
            .map(|n| {
                let (state, _) = watch::channel(if n.is_remote() {
                    ProcState::Remote
                } else {
                    ProcState::Exited
                });
                let addr = n
                    .remote
                    .or_else(|| (n.port != 0).then(|| SocketAddr::from(([127, 0, 0, 1], n.port))));
                (
                    n.id.clone(),
                    NodeProc {
                        config: n.clone(),
                        addr,
                        state,
                        started_at: None,
                    },
                )
            })
            .collect();
        Supervisor {
            inner: Arc::new(Inner {
                nodes: Mutex::new(nodes),
                participant_bin: config.participant_bin.clone(),
                lock_wait_ms: config.args.lock_wait_ms,
                log_checkpoint_bytes: config.args.log_checkpoint_bytes,
                allow_faults: config.args.demo,
                secret_file: config.secret_file.clone(),
                secret,
            }),
        }
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.lock().keys().cloned().collect()
    }

    /// The address a node listens on, once known.
    pub fn addr(&self, node: &str) -> Option<SocketAddr> {
        self.lock().get(node).and_then(|n| n.addr)
    }

    pub fn state(&self, node: &str) -> Option<ProcState> {
        self.lock().get(node).map(|n| *n.state.borrow())
    }

    pub fn started_at(&self, node: &str) -> Option<Instant> {
        self.lock().get(node).and_then(|n| n.started_at)
    }

    pub fn subscribe(&self, node: &str) -> Option<watch::Receiver<ProcState>> {
        self.lock().get(node).map(|n| n.state.subscribe())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, NodeProc>> {
        // A panic while holding this lock would be a bug elsewhere; the map
        // itself stays consistent, so keep serving.
        self.inner.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this coordinator starts and watches the node's process.
    pub fn is_supervised(&self, node: &str) -> bool {
        self.lock().get(node).is_some_and(|n| !n.config.is_remote())
    }

    /// Refuses to start or kill a remote participant.
    fn require_supervised(&self, node: &str) -> Result<(), SupervisorError> {
        let cfg = self.node_config(node)?;
        match cfg.remote {
            Some(addr) => Err(SupervisorError::NotSupervised(
                node.to_string(),
                addr.to_string(),
            )),
            None => Ok(()),
        }
    }

    /// Adopts or starts every supervised node, in parallel. Remote nodes are
    /// left to the transport, which connects to them when they listen.
    pub async fn start_all(&self) -> anyhow::Result<()> {
        let mut tasks = Vec::new();
        for node in self
            .node_ids()
            .into_iter()
            .filter(|n| self.is_supervised(n))
        {
            let sup = self.clone();
            tasks.push(tokio::spawn(async move { sup.adopt_or_start(&node).await }));
        }
        for task in tasks {
            task.await.context("a node start task panicked")??;
        }
        Ok(())
    }

    async fn adopt_or_start(&self, node: &str) -> anyhow::Result<()> {
        let data_dir = self.node_config(node)?.data_dir;
        let deadline = Instant::now() + Duration::from_millis(NODE_START_TIMEOUT_MS);
        let mut said_waiting = false;
        loop {
            let candidates: Vec<SocketAddr> =
                [read_addr_file(&data_dir.join("addr")), self.addr(node)]
                    .into_iter()
                    .flatten()
                    .collect();
            for addr in candidates {
                if let Some(pid) = probe(addr, node).await {
                    tracing::info!(node, %addr, pid, "adopting participant that is already running");
                    self.set_running(node, addr, pid, false);
                    self.watch_adopted(node.to_string(), pid);
                    return Ok(());
                }
            }
            // Nobody answers, but a process holds the data dir: a node that
            // is still recovering (one a previous coordinator started just
            // before it died, say). Starting another would only fail on the
            // lock: wait for it to listen, and adopt it.
            if !shared::log::file::dir_is_locked(&data_dir) {
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "participant {node}'s data dir {} is held by a process that did not start listening within {NODE_START_TIMEOUT_MS} ms; stop that process",
                    data_dir.display()
                );
            }
            if !said_waiting {
                tracing::info!(
                    node,
                    "its data dir is held by a process that is not listening yet; waiting to adopt it"
                );
                said_waiting = true;
            }
            tokio::time::sleep(Duration::from_millis(NODE_DIR_LOCKED_RETRY_MS)).await;
        }
        self.start(node).await.map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn node_config(&self, node: &str) -> Result<NodeConfig, SupervisorError> {
        self.lock()
            .get(node)
            .map(|n| n.config.clone())
            .ok_or_else(|| SupervisorError::UnknownNode(node.to_string()))
    }

    fn set_running(&self, node: &str, addr: SocketAddr, pid: u32, supervised: bool) {
        if let Some(n) = self.lock().get_mut(node) {
            n.addr = Some(addr);
            n.started_at = Some(Instant::now());
            n.state.send_replace(ProcState::Running { pid, supervised });
        }
    }

    fn set_state(&self, node: &str, state: ProcState) {
        if let Some(n) = self.lock().get(node) {
            n.state.send_replace(state);
        }
    }

    /// Starts the participant process and waits until it listens.
    pub async fn start(&self, node: &str) -> Result<(), SupervisorError> {
        self.require_supervised(node)?;
        let cfg = self.node_config(node)?;
        // Checked and claimed under one lock: two restarts at once (an
        // operator's and a supervisor's, say) must not start two processes.
        // The second would fail on the data dir's lock, but only after
        // deleting the first one's address file, and a coordinator started
        // later could then not find (and adopt) the node that runs.
        {
            let mut nodes = self.lock();
            let n = nodes
                .get_mut(node)
                .ok_or_else(|| SupervisorError::UnknownNode(node.to_string()))?;
            match *n.state.borrow() {
                ProcState::Running { pid, .. } => {
                    return Err(SupervisorError::AlreadyRunning(node.to_string(), pid))
                }
                ProcState::Starting => {
                    return Err(SupervisorError::AlreadyStarting(node.to_string()))
                }
                _ => {}
            }
            n.state.send_replace(ProcState::Starting);
        }
        // A process killed a moment ago lets go of the lock as it exits;
        // one that keeps it is running, and must not get a twin.
        let held_until = Instant::now() + Duration::from_millis(NODE_DIR_LOCK_RELEASE_WAIT_MS);
        while shared::log::file::dir_is_locked(&cfg.data_dir) && Instant::now() < held_until {
            tokio::time::sleep(Duration::from_millis(NODE_PROCESS_POLL_MS)).await;
        }
        if shared::log::file::dir_is_locked(&cfg.data_dir) {
            self.set_state(node, ProcState::Exited);
            return Err(SupervisorError::DataDirHeld(
                node.to_string(),
                cfg.data_dir.display().to_string(),
            ));
        }
        let result = self.spawn(&cfg).await;
        if result.is_err() {
            self.set_state(node, ProcState::Exited);
        }
        result.map_err(SupervisorError::Start)
    }

    async fn spawn(&self, cfg: &NodeConfig) -> anyhow::Result<()> {
        std::fs::create_dir_all(&cfg.data_dir).with_context(|| {
            format!(
                "cannot create the data dir {} of node {}",
                cfg.data_dir.display(),
                cfg.id
            )
        })?;
        let ready_file = cfg.data_dir.join("addr");
        let _ = std::fs::remove_file(&ready_file);
        let port = self.addr(&cfg.id).map(|a| a.port()).unwrap_or(cfg.port);
        let mut cmd = Command::new(&self.inner.participant_bin);
        // A supervised node is configured by these flags alone: variables
        // meant for a stand-alone participant (its TPC_PARTICIPANT_*, e.g.
        // one that allows faults) must not reach it.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TPC_PARTICIPANT_") {
                cmd.env_remove(name);
            }
        }
        cmd.arg("--id")
            .arg(&cfg.id)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&cfg.data_dir)
            .arg("--ready-file")
            .arg(&ready_file)
            .arg("--lock-wait-ms")
            .arg(self.inner.lock_wait_ms.to_string())
            .arg("--log-checkpoint-bytes")
            .arg(self.inner.log_checkpoint_bytes.to_string())
            .arg("--secret-file")
            .arg(&self.inner.secret_file);
        for (account, balance) in &cfg.accounts {
            cmd.arg("--account").arg(format!("{account}={balance}"));
        }
        if self.inner.allow_faults {
            cmd.arg("--allow-faults");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "cannot start {} for node {} (build it with `cargo build -p participant`, or pass --participant-bin)",
                self.inner.participant_bin.display(),
                cfg.id
            )
        })?;
        let pid = child
            .id()
            .context("the participant exited before it could be watched")?;
        let deadline = Instant::now() + Duration::from_millis(NODE_START_TIMEOUT_MS);
        let addr = loop {
            if let Some(addr) = read_addr_file(&ready_file) {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                anyhow::bail!(
                    "participant {} exited while starting ({status}); its log above says why (a locked or corrupt data dir in {}?)",
                    cfg.id,
                    cfg.data_dir.display()
                );
            }
            if Instant::now() > deadline {
                let _ = child.start_kill();
                anyhow::bail!(
                    "participant {} did not start listening within {NODE_START_TIMEOUT_MS} ms",
                    cfg.id
                );
            }
            tokio::time::sleep(Duration::from_millis(NODE_PROCESS_POLL_MS)).await;
        };
        tracing::info!(node = %cfg.id, %addr, pid, "participant started");
        self.set_running(&cfg.id, addr, pid, true);
        let sup = self.clone();
        let node = cfg.id.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            match &status {
                Ok(s) if s.success() => tracing::info!(node, pid, "participant stopped"),
                _ => tracing::warn!(node, pid, ?status, "participant exited"),
            }
            let current = sup.state(&node);
            if current
                == Some(ProcState::Running {
                    pid,
                    supervised: true,
                })
            {
                sup.set_state(&node, ProcState::Exited);
            }
        });
        Ok(())
    }

    fn watch_adopted(&self, node: String, pid: u32) {
        let sup = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(NODE_ADOPT_POLL_MS)).await;
                if sup.state(&node)
                    != Some(ProcState::Running {
                        pid,
                        supervised: false,
                    })
                {
                    return;
                }
                if !pid_alive(pid) {
                    tracing::warn!(node, pid, "adopted participant exited");
                    sup.set_state(&node, ProcState::Exited);
                    return;
                }
            }
        });
    }

    /// SIGKILL, as `kill -9` would: no chance to flush anything.
    pub async fn crash(&self, node: &str) -> Result<u32, SupervisorError> {
        self.require_supervised(node)?;
        let pid = match self.state(node) {
            None => return Err(SupervisorError::UnknownNode(node.to_string())),
            Some(ProcState::Running { pid, .. }) => pid,
            Some(_) => return Err(SupervisorError::NotRunning(node.to_string())),
        };
        // SAFETY: kill(2) with a pid we started or adopted; no memory is involved.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
        let mut rx = self
            .subscribe(node)
            .ok_or_else(|| SupervisorError::UnknownNode(node.to_string()))?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(NODE_START_TIMEOUT_MS);
        while *rx.borrow_and_update()
            == (ProcState::Running {
                pid,
                supervised: true,
            })
            || *rx.borrow()
                == (ProcState::Running {
                    pid,
                    supervised: false,
                })
        {
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        Ok(pid)
    }

    /// SIGTERM every running participant we started, then SIGKILL stragglers.
    pub async fn shutdown(&self) {
        let running: Vec<(NodeId, u32)> = self
            .lock()
            .iter()
            .filter_map(|(id, n)| match *n.state.borrow() {
                ProcState::Running {
                    pid,
                    supervised: true,
                } => Some((id.clone(), pid)),
                _ => None,
            })
            .collect();
        for (_, pid) in &running {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_millis(NODE_STOP_TIMEOUT_MS);
        for (node, pid) in running {
            while pid_alive(pid)
                && self.state(&node)
                    == Some(ProcState::Running {
                        pid,
                        supervised: true,
                    })
            {
                if Instant::now() > deadline {
                    // SAFETY: as above.
                    unsafe {
                        libc::kill(pid as libc::pid_t, libc::SIGKILL);
                    }
                    break;
                }
                tokio::time::sleep(Duration::from_millis(NODE_PROCESS_POLL_MS)).await;
            }
        }
    }
}

impl Supervisor {
    /// Sends one request to a node over a connection of its own (not the
    /// engine's, and not subject to injected link faults) and returns its
    /// first answer after the hello.
    pub async fn admin_request(&self, node: &str, request: &Request) -> Result<Reply, String> {
        let addr = self
            .addr(node)
            .ok_or_else(|| format!("the address of node {node} is not known yet"))?;
        let attempt = async {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("cannot connect to node {node} at {addr}: {e}"))?;
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let mut next = async || match lines.next_line().await {
                Ok(Some(line)) => decode_line::<Reply>(line.as_bytes())
                    .map_err(|e| format!("node {node} answered badly: {e}")),
                Ok(None) => Err(format!("node {node} closed the connection")),
                Err(e) => Err(format!("cannot read from node {node}: {e}")),
            };
            let hello = next().await?;
            match &hello {
                Reply::Hello { node: n, .. } if n == node => {}
                other => return Err(format!("{addr} is not node {node} (it said {other:?})")),
            }
            let secret = &self.inner.secret;
            let claim = Claim {
                role: PeerRole::Admin,
                cluster: String::new(),
                epoch: 0,
                legacy_history: false,
            };
            let nonce = auth::nonce(rand::random());
            let (node_id, node_nonce, auth_line) =
                auth::answer_hello(secret, &hello, &claim, nonce.clone())?;
            write
                .write_all(&encode_line(&auth_line))
                .await
                .map_err(|e| format!("cannot send to node {node}: {e}"))?;
            let welcome = next().await?;
            auth::check_welcome(secret, &node_id, &node_nonce, &nonce, &welcome)
                .map_err(|e| format!("node {node} refused: {e}"))?;
            write
                .write_all(&encode_line(request))
                .await
                .map_err(|e| format!("cannot send to node {node}: {e}"))?;
            next().await
        };
        tokio::time::timeout(
            Duration::from_millis(NODE_ADMIN_REQUEST_TIMEOUT_MS),
            attempt,
        )
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "node {node} at {addr} did not answer within {NODE_ADMIN_REQUEST_TIMEOUT_MS} ms"
            ))
        })
    }
}

fn read_addr_file(path: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Connects and reads the hello line: returns the pid if it is `node`.
async fn probe(addr: SocketAddr, node: &str) -> Option<u32> {
    let attempt = async {
        let stream = TcpStream::connect(addr).await.ok()?;
        let mut lines = BufReader::new(stream).lines();
        let line = lines.next_line().await.ok()??;
        match decode_line::<Reply>(line.as_bytes()).ok()? {
            Reply::Hello { node: n, pid, .. } if n == node => Some(pid),
            _ => None,
        }
    };
    tokio::time::timeout(Duration::from_millis(NODE_ADOPT_PROBE_TIMEOUT_MS), attempt)
        .await
        .ok()
        .flatten()
}
