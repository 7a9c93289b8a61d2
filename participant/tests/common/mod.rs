//! Test harness: runs the real `participant` binary on port 0 in a temp dir
//! and talks to it over plain TCP with JSON lines.
//!
//! - [`Node`] owns the child process and kills it on drop, even when the
//!   test panics. It learns the port from `--ready-file`.
//! - [`Client`] is one connection: it checks the `hello` line,
//!   authenticates as the test coordinator (cluster [`CLUSTER`], epoch
//!   [`EPOCH`], with [`SECRET_HEX`], which every node started here holds),
//!   sends requests, and waits for matching replies (buffering the others).
//!
//! Waits poll a condition against a generous deadline; nothing sleeps for a
//! fixed time hoping something happened.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use shared::auth::{self, Claim, ClusterSecret};
use shared::wire::{
    decode_line, encode_line, AbortReason, Decision, NodeStatus, Op, PeerRole, Query, QueryResult,
    Reply, Request, TxId, Vote,
};

/// The cluster secret of every node the tests start (unless a test passes
/// its own `--secret-file`).
pub const SECRET_HEX: &str = "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2";
/// The cluster and epoch the tests' coordinator connections claim.
pub const CLUSTER: &str = "test-cluster";
pub const EPOCH: u64 = 1;

pub fn secret() -> ClusterSecret {
    ClusterSecret::parse(SECRET_HEX).expect("the test secret parses")
}

/// What the tests' coordinator connections claim.
pub fn coordinator_claim() -> Claim {
    Claim {
        role: PeerRole::Coordinator,
        cluster: CLUSTER.into(),
        epoch: EPOCH,
        legacy_history: false,
    }
}

/// Generous bound for anything to happen (a slow CI machine, a debug build).
pub const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(10);

pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_participant")
}

/// Polls `condition` until it returns `Some`, or panics after [`WAIT`].
pub fn wait_until<T>(what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// How to start a node. `Node::start` fills in `--listen`, `--data-dir` and
/// `--ready-file`.
#[derive(Debug, Clone)]
pub struct Spec {
    pub id: String,
    pub accounts: Vec<(String, i64)>,
    pub extra: Vec<String>,
}

impl Spec {
    pub fn new(id: &str, accounts: &[(&str, i64)]) -> Spec {
        Spec {
            id: id.to_string(),
            accounts: accounts.iter().map(|(a, b)| (a.to_string(), *b)).collect(),
            extra: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: &str) -> Spec {
        self.extra.push(arg.to_string());
        self
    }
}

/// A running participant process. Killed (SIGKILL) and reaped on drop.
pub struct Node {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub stderr_path: PathBuf,
    pub spec: Spec,
}

/// Where a start attempt ended.
pub enum Started {
    Ready(Node),
    Exited { status: ExitStatus, stderr: String },
}

impl Node {
    /// Starts a node on `data_dir` and waits until it is ready; panics with
    /// its stderr if it exits instead.
    pub fn start(spec: &Spec, data_dir: &Path) -> Node {
        match Node::try_start(spec, data_dir) {
            Started::Ready(node) => node,
            Started::Exited { status, stderr } => {
                panic!("participant exited ({status}) instead of starting:\n{stderr}")
            }
        }
    }

    /// Starts a node and waits until it is either ready or has exited.
    pub fn try_start(spec: &Spec, data_dir: &Path) -> Started {
        let run_dir = data_dir.with_extension("run");
        std::fs::create_dir_all(&run_dir).expect("create the run dir");
        let ready_file = run_dir.join("ready");
        let _ = std::fs::remove_file(&ready_file);
        let stderr_path = run_dir.join(format!("stderr-{}.log", unique()));
        let stderr = std::fs::File::create(&stderr_path).expect("create the stderr file");
        let secret_file = run_dir.join("cluster.secret");
        std::fs::write(&secret_file, SECRET_HEX).expect("write the test secret");
        let mut command = Command::new(exe());
        command
            .arg("--id")
            .arg(&spec.id)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--ready-file")
            .arg(&ready_file);
        if !spec.extra.iter().any(|a| a == "--secret-file") {
            command.arg("--secret-file").arg(&secret_file);
        }
        for (account, cents) in &spec.accounts {
            command.arg("--account").arg(format!("{account}={cents}"));
        }
        command
            .args(&spec.extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = command.spawn().expect("spawn the participant binary");
        let mut node = Node {
            child: Some(child),
            addr: "0.0.0.0:0".parse().expect("placeholder address"),
            data_dir: data_dir.to_path_buf(),
            stderr_path,
            spec: spec.clone(),
        };
        enum Seen {
            Ready(SocketAddr),
            Exited(ExitStatus),
        }
        let seen = wait_until("the participant to write its ready file or exit", || {
            if let Ok(text) = std::fs::read_to_string(&ready_file) {
                if let Ok(addr) = text.trim().parse() {
                    return Some(Seen::Ready(addr));
                }
            }
            let child = node.child.as_mut().expect("child present");
            child.try_wait().expect("try_wait").map(Seen::Exited)
        });
        match seen {
            Seen::Ready(addr) => {
                node.addr = addr;
                Started::Ready(node)
            }
            Seen::Exited(status) => {
                node.child = None;
                Started::Exited {
                    status,
                    stderr: node.stderr(),
                }
            }
        }
    }

    /// Starts again on the same data dir (after a kill or a stop).
    pub fn restart(&self) -> Node {
        Node::start(&self.spec, &self.data_dir)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("node is running").id()
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("node is running");
        let status = wait_until("the participant to exit", || {
            child.try_wait().expect("try_wait")
        });
        self.child = None;
        status
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("participant.log")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// One connection to a node.
pub struct Client {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
    /// Replies read while looking for another one.
    pending: VecDeque<Reply>,
    next_req_id: u64,
    pub hello: Reply,
}

impl Client {
    /// Connects, reads the `hello` line and authenticates as the tests'
    /// coordinator.
    pub fn connect(addr: SocketAddr) -> Client {
        let mut client = Client::connect_hello(addr);
        client.authenticate(&coordinator_claim());
        client
    }

    /// Connects and reads the `hello` line only.
    pub fn connect_hello(addr: SocketAddr) -> Client {
        let mut client = Client::connect_raw(addr);
        let hello = client.recv().expect("a hello line");
        assert!(
            matches!(hello, Reply::Hello { .. }),
            "first line must be hello, got {hello:?}"
        );
        client.hello = hello;
        client
    }

    /// Answers the hello with the tests' secret and `claim`; panics unless
    /// the node welcomes it with a valid proof.
    pub fn authenticate(&mut self, claim: &Claim) {
        if let Err(e) = self.try_authenticate(&secret(), claim) {
            panic!("the node did not accept the test connection: {e}");
        }
    }

    /// Answers the hello with `secret` and `claim`: the node's welcome, or
    /// its refusal.
    pub fn try_authenticate(
        &mut self,
        secret: &ClusterSecret,
        claim: &Claim,
    ) -> Result<(), String> {
        let nonce = auth::nonce([7; shared::limits::AUTH_NONCE_BYTES]);
        let (node, node_nonce, request) =
            auth::answer_hello(secret, &self.hello, claim, nonce.clone())?;
        self.send(&request);
        let answer = self.recv().ok_or("the node closed the connection")?;
        auth::check_welcome(secret, &node, &node_nonce, &nonce, &answer)
    }

    /// Connects without reading anything.
    pub fn connect_raw(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the participant");
        stream
            .set_read_timeout(Some(WAIT))
            .expect("set a read timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone the stream"));
        Client {
            stream,
            reader,
            pending: VecDeque::new(),
            next_req_id: 1,
            hello: Reply::Error {
                message: "no hello read".into(),
            },
        }
    }

    pub fn send(&mut self, request: &Request) {
        self.send_raw(&encode_line(request));
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .expect("write to the participant");
    }

    /// The next reply, or `None` once the node closed the connection (EOF
    /// or reset). Panics if nothing arrives within [`WAIT`].
    pub fn recv(&mut self) -> Option<Reply> {
        if let Some(reply) = self.pending.pop_front() {
            return Some(reply);
        }
        self.read_reply()
    }

    fn read_reply(&mut self) -> Option<Reply> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => None,
            Ok(_) => {
                let text = line
                    .strip_suffix(b"\n")
                    .expect("the node ends every line with a newline");
                Some(decode_line(text).unwrap_or_else(|e| {
                    panic!("bad reply {:?}: {e}", String::from_utf8_lossy(text))
                }))
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no reply within {WAIT:?}")
            }
            Err(_) => None, // reset: closed
        }
    }

    /// Waits for the first reply matching `wanted`, keeping the others.
    pub fn recv_where(&mut self, what: &str, wanted: impl Fn(&Reply) -> bool) -> Reply {
        if let Some(pos) = self.pending.iter().position(&wanted) {
            return self.pending.remove(pos).expect("position is valid");
        }
        loop {
            let reply = self
                .read_reply()
                .unwrap_or_else(|| panic!("connection closed while waiting for {what}"));
            if wanted(&reply) {
                return reply;
            }
            self.pending.push_back(reply);
        }
    }

    /// Waits until the node closes the connection, returning what it sent first.
    pub fn recv_until_closed(&mut self) -> Vec<Reply> {
        let mut replies: Vec<Reply> = self.pending.drain(..).collect();
        while let Some(reply) = self.read_reply() {
            replies.push(reply);
        }
        replies
    }

    pub fn prepare(
        &mut self,
        tx_id: &str,
        ts: u64,
        ops: &[(&str, i64)],
    ) -> (Vote, Option<AbortReason>) {
        self.send(&prepare(tx_id, ts, ops));
        self.vote(tx_id)
    }

    pub fn vote(&mut self, tx_id: &str) -> (Vote, Option<AbortReason>) {
        let reply = self.recv_where(
            "a vote",
            |r| matches!(r, Reply::Vote { tx_id: t, .. } if t == tx_id),
        );
        match reply {
            Reply::Vote { vote, reason, .. } => (vote, reason),
            other => unreachable!("{other:?}"),
        }
    }

    pub fn commit(&mut self, tx_id: &str) -> Decision {
        self.send(&Request::Commit {
            tx_id: tx_id.into(),
        });
        self.ack(tx_id)
    }

    pub fn rollback(&mut self, tx_id: &str) -> Decision {
        self.send(&Request::Rollback {
            tx_id: tx_id.into(),
        });
        self.ack(tx_id)
    }

    pub fn ack(&mut self, tx_id: &str) -> Decision {
        let reply = self.recv_where(
            "an ack",
            |r| matches!(r, Reply::Ack { tx_id: t, .. } if t == tx_id),
        );
        match reply {
            Reply::Ack { decision, .. } => decision,
            other => unreachable!("{other:?}"),
        }
    }

    /// Prepare + commit of one transaction that must succeed.
    pub fn transfer(&mut self, tx_id: &str, ts: u64, ops: &[(&str, i64)]) {
        assert_eq!(
            self.prepare(tx_id, ts, ops),
            (Vote::Ready, None),
            "prepare {tx_id}"
        );
        assert_eq!(self.commit(tx_id), Decision::Commit, "commit {tx_id}");
    }

    pub fn recover(&mut self) -> Vec<TxId> {
        self.send(&Request::Recover);
        match self.recv_where("in_doubt", |r| matches!(r, Reply::InDoubt { .. })) {
            Reply::InDoubt { tx_ids } => tx_ids,
            other => unreachable!("{other:?}"),
        }
    }

    pub fn query(&mut self, query: Query) -> QueryResult {
        let req_id = self.next_req_id;
        self.next_req_id += 1;
        self.send(&Request::Query { req_id, query });
        match self.recv_where(
            "a query result",
            |r| matches!(r, Reply::QueryResult { req_id: id, .. } if *id == req_id),
        ) {
            Reply::QueryResult { result, .. } => result,
            other => unreachable!("{other:?}"),
        }
    }

    pub fn status(&mut self) -> NodeStatus {
        match self.query(Query::Status) {
            QueryResult::Status(status) => status,
            other => panic!("expected a status, got {other:?}"),
        }
    }

    pub fn balance(&mut self, account: &str) -> i64 {
        let status = self.status();
        let found = status.accounts.iter().find(|a| a.id == account);
        found
            .unwrap_or_else(|| panic!("no account {account} in {status:?}"))
            .balance_cents
    }

    /// (tx_id, delta) of every ledger entry of `account`, oldest first.
    /// Reads every page (each reply holds what fits in one line).
    pub fn ledger(&mut self, account: &str) -> Vec<(String, i64)> {
        let mut all: Vec<(String, i64)> = Vec::new();
        loop {
            let query = Query::Ledger {
                account: account.into(),
                offset: all.len() as u64,
            };
            match self.query(query) {
                QueryResult::Ledger {
                    entries,
                    offset,
                    total,
                    ..
                } => {
                    assert_eq!(offset, all.len() as u64, "the page starts where asked");
                    let done = entries.is_empty() || all.len() + entries.len() >= total as usize;
                    all.extend(entries.into_iter().map(|e| (e.tx_id, e.delta_cents)));
                    if done {
                        return all;
                    }
                }
                other => panic!("expected a ledger, got {other:?}"),
            }
        }
    }

    /// Whether the node has closed the connection (reads EOF or a reset).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }
}

pub fn prepare(tx_id: &str, ts: u64, ops: &[(&str, i64)]) -> Request {
    Request::Prepare {
        tx_id: tx_id.into(),
        ts_us: ts,
        epoch: EPOCH,
        ops: ops_of(ops),
    }
}

pub fn ops_of(ops: &[(&str, i64)]) -> Vec<Op> {
    ops.iter()
        .map(|(account, delta_cents)| Op {
            account: account.to_string(),
            delta_cents: *delta_cents,
        })
        .collect()
}

/// A temp dir for one test, with a `data` path inside for the node.
pub fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create a temp dir");
    let data = dir.path().join("data");
    (dir, data)
}
