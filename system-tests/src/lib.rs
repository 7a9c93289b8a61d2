//! A harness that runs the real coordinator (`backend`) and its participant
//! processes on free ports in a temporary directory, and helpers to drive
//! and audit them. Every process it starts is killed when the [`Cluster`]
//! is dropped, even when a test panics.
//!
//! The binaries must be built first (`cargo build -p backend -p participant`,
//! in the same profile as the tests); the harness finds them next to the
//! test executable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::api::{ClusterView, ComponentStatus, LedgerEntry, TransferResponse};

pub mod audit;
pub mod chaos;
/// Progress of long runs (the bench, chaos); it lives in `shared` so the
/// checkers' own long runs use it too.
pub use shared::progress;
pub mod tpc;

/// Generous: tests run on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The directory holding the built binaries (target/<profile>).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    let dir = exe.parent().expect("the executable is in a directory");
    if dir.ends_with("deps") {
        dir.parent().expect("deps has a parent").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first with `cargo build -p backend -p participant` (same profile as the tests)",
        path.display()
    );
    path
}

/// Options for a test cluster.
#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: u16,
    pub accounts_per_node: u32,
    pub balance_cents: i64,
    pub prepare_timeout_ms: u64,
    pub ack_wait_ms: u64,
    pub demo: bool,
    pub static_dir: Option<PathBuf>,
    /// The first `--listen` address (default 127.0.0.1:0); a restart keeps
    /// the bound one.
    pub listen: Option<String>,
    pub extra_args: Vec<String>,
    /// Environment variables for the coordinator (e.g. `TPC_ALLOWED_HOSTS`).
    pub extra_env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 2,
            accounts_per_node: 1,
            balance_cents: 100_000,
            // Generous: on a loaded machine a first fdatasync can take
            // seconds, and a test expecting a commit must not see a timeout.
            prepare_timeout_ms: 10_000,
            ack_wait_ms: 5_000,
            demo: true,
            static_dir: None,
            listen: None,
            extra_args: Vec::new(),
            extra_env: Vec::new(),
        }
    }
}

/// What a connection that only queries a node claims: an admin peer.
pub fn admin_claim() -> shared::auth::Claim {
    shared::auth::Claim {
        role: shared::wire::PeerRole::Admin,
        cluster: String::new(),
        epoch: 0,
        legacy_history: false,
    }
}

/// A running coordinator with its participants.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub options: Options,
    pub base_url: String,
    pub http: reqwest::Client,
    coordinator: Option<Child>,
    /// Process groups to kill at the end (each coordinator start makes one;
    /// the participants it starts live in it).
    groups: Vec<i32>,
}

impl Cluster {
    /// Starts a coordinator with its nodes and waits until all are up.
    pub async fn start(options: Options) -> Cluster {
        let mut cluster = Cluster::new(options);
        cluster.start_coordinator().await;
        cluster.wait_all_up().await;
        cluster
    }

    /// A cluster in a new temp dir, not started yet (put data in its
    /// `data_dir` first, then `start_coordinator`).
    pub fn new(options: Options) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("tpc-test-")
            .tempdir()
            .expect("a temp dir");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(512)
            .build()
            .expect("an HTTP client");
        Cluster {
            dir,
            options,
            base_url: String::new(),
            http,
            coordinator: None,
            groups: Vec::new(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn node_data_dir(&self, node: &str) -> PathBuf {
        self.data_dir().join(format!("node-{node}"))
    }

    /// The cluster secret the coordinator created in its data dir.
    pub fn secret_file(&self) -> PathBuf {
        self.data_dir().join("coordinator").join("cluster.secret")
    }

    /// The cluster secret (to talk to a node directly, as an operator).
    pub fn secret(&self) -> Result<shared::auth::ClusterSecret, String> {
        shared::auth::ClusterSecret::load(&self.secret_file())
    }

    fn ready_file(&self) -> PathBuf {
        self.dir.path().join("ready")
    }

    /// Starts (or restarts) the coordinator on the same data dir and port.
    pub async fn start_coordinator(&mut self) {
        let _ = std::fs::remove_file(self.ready_file());
        let mut cmd = self.coordinator_command();
        let child = cmd.spawn().expect("the backend starts");
        self.groups.push(child.id() as i32);
        self.coordinator = Some(child);
        let ready = self.ready_file();
        let addr = wait_for(
            &format!("the coordinator to write {}", ready.display()),
            DEADLINE,
            || {
                std::fs::read_to_string(&ready)
                    .ok()
                    .filter(|s| !s.is_empty())
            },
        )
        .await;
        self.base_url = format!("http://{}", addr.trim());
    }

    /// The command that starts this cluster's coordinator (in its own
    /// process group), for tests that need to watch it fail.
    pub fn coordinator_command(&self) -> Command {
        let o = &self.options;
        let listen = if self.base_url.is_empty() {
            o.listen
                .clone()
                .unwrap_or_else(|| "127.0.0.1:0".to_string())
        } else {
            self.base_url.trim_start_matches("http://").to_string()
        };
        let static_dir = o
            .static_dir
            .clone()
            .unwrap_or_else(|| self.dir.path().join("no-dashboard"));
        let mut cmd = Command::new(bin("backend"));
        // The test's own environment must not configure the cluster.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TPC_") {
                cmd.env_remove(name);
            }
        }
        cmd.arg("--listen")
            .arg(&listen)
            .arg("--node-port-base")
            .arg("0")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--ready-file")
            .arg(self.ready_file())
            .arg("--static-dir")
            .arg(static_dir)
            .arg("--nodes")
            .arg(o.nodes.to_string())
            .arg("--accounts-per-node")
            .arg(o.accounts_per_node.to_string())
            .arg("--balance-cents")
            .arg(o.balance_cents.to_string())
            .arg("--prepare-timeout-ms")
            .arg(o.prepare_timeout_ms.to_string())
            .arg("--ack-wait-ms")
            .arg(o.ack_wait_ms.to_string())
            .args(&o.extra_args)
            .envs(o.extra_env.iter().map(|(k, v)| (k, v)))
            .env(
                "RUST_LOG",
                std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "warn".to_string()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if o.demo {
            cmd.arg("--demo");
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd
    }

    /// SIGKILL of the coordinator process only (its participants keep running).
    pub fn kill_coordinator(&mut self) {
        if let Some(mut child) = self.coordinator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the coordinator to exit (and reap it).
    pub async fn stop_coordinator(&mut self) -> std::process::ExitStatus {
        let mut child = self.coordinator.take().expect("the coordinator is running");
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        wait_for("the coordinator to exit after SIGTERM", DEADLINE, || {
            child.try_wait().ok().flatten()
        })
        .await
    }

    pub fn coordinator_pid(&self) -> Option<u32> {
        self.coordinator.as_ref().map(|c| c.id())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("GET reaches the coordinator");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST reaches the coordinator");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .put(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("PUT reaches the coordinator");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE reaches the coordinator");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts a transfer: (HTTP status, body).
    pub async fn transfer(
        &self,
        from: &str,
        to: &str,
        amount_cents: i64,
        tx_id: Option<&str>,
    ) -> (u16, Value) {
        let mut body = serde_json::json!({"from": from, "to": to, "amount_cents": amount_cents});
        if let Some(id) = tx_id {
            body["tx_id"] = Value::String(id.to_string());
        }
        self.post("/api/transfers", body).await
    }

    /// A transfer that must get a 200 or 409 answer with a transfer body.
    pub async fn transfer_outcome(
        &self,
        from: &str,
        to: &str,
        amount_cents: i64,
        tx_id: Option<&str>,
    ) -> (u16, TransferResponse) {
        let (status, body) = self.transfer(from, to, amount_cents, tx_id).await;
        assert!(
            status == 200 || status == 409,
            "transfer answered {status}: {body}"
        );
        (
            status,
            serde_json::from_value(body.clone())
                .unwrap_or_else(|e| panic!("bad transfer body {body}: {e}")),
        )
    }

    pub async fn cluster(&self) -> ClusterView {
        let (status, body) = self.get("/api/cluster").await;
        assert_eq!(status, 200, "GET /api/cluster: {body}");
        serde_json::from_value(body.clone())
            .unwrap_or_else(|e| panic!("bad cluster body {body}: {e}"))
    }

    /// The cluster view, or None if the coordinator does not answer.
    pub async fn try_cluster(&self) -> Option<ClusterView> {
        let response = self.http.get(self.url("/api/cluster")).send().await.ok()?;
        response.json().await.ok()
    }

    pub async fn ledger(&self, account: &str) -> Vec<LedgerEntry> {
        let (status, body) = self.get(&format!("/api/accounts/{account}/ledger")).await;
        assert_eq!(status, 200, "ledger of {account}: {body}");
        serde_json::from_value(body).expect("a ledger")
    }

    pub async fn balances(&self) -> BTreeMap<String, i64> {
        self.cluster()
            .await
            .nodes
            .iter()
            .flat_map(|n| n.accounts.iter().map(|a| (a.id.clone(), a.balance_cents)))
            .collect()
    }

    pub async fn wait_all_up(&self) {
        wait_for_async(
            "every node and the coordinator to be up",
            DEADLINE,
            || async {
                let view = self.try_cluster().await?;
                let up = view.coordinator.status == ComponentStatus::Up
                    && view.nodes.iter().all(|n| n.status == ComponentStatus::Up);
                up.then_some(())
            },
        )
        .await;
    }

    /// Waits until `GET /api/ready` answers 200: the engine up, its log
    /// open, and every node connected and reconciled (a restarted
    /// coordinator answers a client's unknown tx_id with 503 until then).
    pub async fn wait_ready(&self) {
        wait_for_async(
            "the coordinator to be ready (/api/ready)",
            DEADLINE,
            || async {
                let (status, _) = self.get("/api/ready").await;
                (status == 200).then_some(())
            },
        )
        .await;
    }

    pub async fn wait_node_status(&self, node: &str, status: ComponentStatus) {
        wait_for_async(
            &format!("node {node} to be {status:?}"),
            DEADLINE,
            || async {
                let view = self.try_cluster().await?;
                view.nodes
                    .iter()
                    .any(|n| n.id == node && n.status == status)
                    .then_some(())
            },
        )
        .await;
    }

    /// Waits until no node has anything in doubt or locked, and every node answers.
    pub async fn wait_quiescent(&self) -> ClusterView {
        wait_for_async(
            "the cluster to settle (nothing in doubt, no locks)",
            DEADLINE,
            || async {
                let view = self.try_cluster().await?;
                let settled = view.total_complete
                    && view
                        .nodes
                        .iter()
                        .all(|n| n.in_doubt.is_empty() && n.locked_accounts.is_empty());
                settled.then_some(view)
            },
        )
        .await
    }

    pub fn accounts(&self) -> Vec<String> {
        let letters = (0..self.options.nodes).map(|i| char::from(b'A' + i as u8));
        if self.options.accounts_per_node == 1 {
            letters.map(|l| l.to_string()).collect()
        } else {
            letters
                .flat_map(|l| (1..=self.options.accounts_per_node).map(move |k| format!("{l}{k}")))
                .collect()
        }
    }

    pub fn expected_total(&self) -> i64 {
        self.accounts().len() as i64 * self.options.balance_cents
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for group in &self.groups {
            // SAFETY: killpg(2) on process groups this harness created.
            unsafe {
                libc::killpg(*group, libc::SIGKILL);
            }
        }
        if let Some(mut child) = self.coordinator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Participants adopted across coordinator restarts stay in the first
        // group, so the loop above reaches them too.
    }
}

/// A participant process started on its own (a "remote" participant, not
/// supervised by any coordinator), with its own data dir; killed on drop.
pub struct OwnParticipant {
    child: std::process::Child,
    pub addr: String,
    pub data_dir: PathBuf,
}

impl OwnParticipant {
    /// Starts participant `id` holding `account` ($500.00) in `dir`, with
    /// the cluster secret in `secret_file`, and waits until it listens.
    pub async fn start(dir: &Path, secret_file: &Path, id: &str, account: &str) -> OwnParticipant {
        OwnParticipant::start_with(dir, secret_file, id, &format!("{account}=50000"), &[]).await
    }

    /// Like `start`, with the `--account` value and more flags.
    pub async fn start_with(
        dir: &Path,
        secret_file: &Path,
        id: &str,
        account: &str,
        extra: &[&str],
    ) -> OwnParticipant {
        let data_dir = dir.join(format!("own-{id}"));
        let ready = dir.join(format!("own-{id}.addr"));
        let _ = std::fs::remove_file(&ready);
        let child = std::process::Command::new(bin("participant"))
            .args(["--id", id, "--listen", "127.0.0.1:0", "--allow-faults"])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--ready-file")
            .arg(&ready)
            .arg("--account")
            .arg(account)
            .arg("--secret-file")
            .arg(secret_file)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the participant starts");
        let addr = wait_for(&format!("participant {id} to listen"), DEADLINE, || {
            std::fs::read_to_string(&ready)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .await;
        OwnParticipant {
            child,
            addr,
            data_dir,
        }
    }
}

impl Drop for OwnParticipant {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new cluster secret file in `dir`, as an operator makes one.
pub fn write_secret_file(dir: &Path) -> PathBuf {
    let path = dir.join("cluster.secret");
    let secret = shared::auth::ClusterSecret::from_random(rand::random());
    std::fs::write(&path, secret.to_file_text()).expect("write the cluster secret");
    path
}

/// Polls `check` until it returns Some, or panics naming what it waited for.
pub async fn wait_for<T>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub async fn wait_for_async<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pid of a node's process, from the cluster view.
pub async fn node_pid(cluster: &Cluster, node: &str) -> Option<u32> {
    cluster
        .cluster()
        .await
        .nodes
        .into_iter()
        .find(|n| n.id == node)
        .and_then(|n| n.pid)
}

/// SIGKILL a process directly (as `kill -9` from a shell would).
pub fn kill9(pid: u32) {
    // SAFETY: kill(2) on a pid the test got from the system under test.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

pub fn file_exists(path: &Path) -> bool {
    path.exists()
}

/// Set of tx ids found on an account's ledger.
pub fn ledger_tx_ids(entries: &[LedgerEntry]) -> BTreeSet<String> {
    entries.iter().map(|e| e.tx_id.clone()).collect()
}
