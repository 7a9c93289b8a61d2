//! Participants on other hosts, for real: the coordinator and two
//! participants each run in a network namespace of their own (three
//! "hosts"), joined by veth pairs to a bridge in a fourth namespace (the
//! "switch"), with addresses in 10.77.0.0/24 that exist only inside those
//! namespaces. The coordinator is pointed at the participants with
//! `--participant` and supervises neither.
//!
//! Checked: transfers work across the hosts; a real partition (`ip link set
//! eth0 down` inside a participant's namespace) behaves like the injected
//! one: transfers abort (`timeout` / `node_unreachable`), a transaction
//! caught by it stays in doubt and is listed as such, and after `up` it is
//! resolved, transfers commit again, and the books balance.
//!
//! Needs root and iproute2 (`ip netns`). Where network namespaces cannot be
//! made, the test prints why and passes without running. Everything it
//! makes (namespaces, processes) is removed by a guard, even on failure.
//! The test talks only to addresses inside its namespaces: its HTTP client
//! runs on a thread that entered the coordinator's namespace.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use system_tests::bin;

const SUBNET_PREFIX: &str = "10.77.0";
const COORDINATOR_IP: &str = "10.77.0.10";
const P1_IP: &str = "10.77.0.11";
const P2_IP: &str = "10.77.0.12";
const DEADLINE: Duration = Duration::from_secs(90);
/// How long one HTTP request to the coordinator may take.
const HTTP_TIMEOUT_MS: u64 = 20_000;

/// Prints past the test harness's capture, so a skip is always visible.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "netns test: {message}");
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why network namespaces cannot be used here, if they cannot.
fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (network namespaces need it)".to_string());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("`ip` (iproute2) is not installed: apt-get install -y iproute2".to_string());
    }
    let probe = format!("tpc-probe-{}", std::process::id());
    if let Err(e) = ip(&["netns", "add", &probe]) {
        return Some(format!("cannot create a network namespace: {e}"));
    }
    ip(&["netns", "del", &probe]).err()
}

/// The namespaces and the processes inside them; removed on drop.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// Three hosts on one switch: `eth0` in each host, `veth-<host>` on the
    /// switch's bridge.
    fn build() -> Result<Lab, String> {
        let mut lab = Lab {
            prefix: format!("tpc{}", std::process::id()),
            namespaces: Vec::new(),
            children: Vec::new(),
        };
        for host in ["sw", "c", "p1", "p2"] {
            let name = lab.ns(host);
            ip(&["netns", "add", &name])?;
            lab.namespaces.push(name);
        }
        let sw = lab.ns("sw");
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for (host, addr) in [("c", COORDINATOR_IP), ("p1", P1_IP), ("p2", P2_IP)] {
            let ns = lab.ns(host);
            let port = format!("veth-{host}");
            // Created inside the namespaces: nothing ever appears in the host's own.
            ip(&[
                "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &sw,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    /// Runs `program` inside `host`'s namespace.
    fn spawn(&mut self, host: &str, program: &Path, args: &[String]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .arg(program)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ip netns exec starts");
        self.children.push(child);
    }

    /// Cuts (`false`) or restores (`true`) a host's only link, from inside
    /// its namespace: a real partition.
    fn set_link(&self, host: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.ns(host), "link", "set", "eth0", state]).expect("the link changes state");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The coordinator (started last) first, so it does not log the
        // participants going away.
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for name in self.namespaces.iter().rev() {
            if let Err(e) = ip(&["netns", "del", name]) {
                say(&format!("cleanup: {e}"));
            }
        }
    }
}

/// A blocking HTTP/1.1 client whose sockets live in a given network
/// namespace: a thread enters it (setns affects only the calling thread)
/// and serves requests from the test.
struct NsHttp {
    requests: mpsc::Sender<HttpRequest>,
}

/// Method, path, JSON body, and where the (status, body) answer goes.
type HttpRequest = (String, String, Option<Value>, mpsc::Sender<(u16, Value)>);

impl NsHttp {
    fn new(netns: &str, addr: String) -> NsHttp {
        let path = ["/run/netns", "/var/run/netns"]
            .iter()
            .map(|dir| PathBuf::from(dir).join(netns))
            .find(|p| p.exists())
            .expect("the namespace has a file under /run/netns");
        let (requests, inbox) = mpsc::channel::<HttpRequest>();
        std::thread::spawn(move || {
            let file = File::open(&path).expect("the namespace file opens");
            // SAFETY: setns with a valid namespace fd; it changes this thread only.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns into {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
            for (method, path, body, reply) in inbox {
                let _ = reply.send(http_call(&addr, &method, &path, body.as_ref()));
            }
        });
        NsHttp { requests }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (reply, answer) = mpsc::channel();
        self.requests
            .send((method.to_string(), path.to_string(), body, reply))
            .expect("the client thread runs");
        answer.recv().expect("the client thread answers")
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }

    fn transfer(&self, from: &str, to: &str, amount_cents: i64, tx_id: &str) -> (u16, Value) {
        let body = json!({"from": from, "to": to, "amount_cents": amount_cents, "tx_id": tx_id});
        self.call("POST", "/api/transfers", Some(body))
    }
}

/// One request with `Connection: close`; (0, Null) if the server is not there.
fn http_call(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return (0, Value::Null);
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(HTTP_TIMEOUT_MS)));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, Value::Null);
    }
    let mut raw = Vec::new();
    if stream.read_to_end(&mut raw).is_err() {
        return (0, Value::Null);
    }
    let text = String::from_utf8_lossy(&raw);
    let Some((head, content)) = text.split_once("\r\n\r\n") else {
        return (0, Value::Null);
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, serde_json::from_str(content).unwrap_or(Value::Null))
}

fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn balances(http: &NsHttp) -> BTreeMap<String, i64> {
    let (status, body) = http.get("/api/accounts");
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .expect("a list of accounts")
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_string(),
                a["balance_cents"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn ledger_has(http: &NsHttp, account: &str, tx_id: &str) -> bool {
    let (status, body) = http.get(&format!("/api/accounts/{account}/ledger"));
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .expect("a ledger")
        .iter()
        .any(|e| e["tx_id"] == tx_id)
}

fn in_doubt_entry(http: &NsHttp, tx_id: &str) -> Option<Value> {
    let (status, body) = http.get("/api/in-doubt");
    if status != 200 {
        return None;
    }
    body["transactions"]
        .as_array()?
        .iter()
        .find(|t| t["tx_id"] == tx_id)
        .cloned()
}

#[test]
fn coordinator_and_participants_on_separate_hosts_survive_a_real_partition() {
    if let Some(reason) = unavailable() {
        say(&format!("SKIPPED: {reason}"));
        return;
    }
    let mut lab = Lab::build().unwrap_or_else(|e| panic!("building the namespaces: {e}"));
    let dir = tempfile::Builder::new()
        .prefix("tpc-netns-")
        .tempdir()
        .expect("a temp dir");

    // The cluster secret, made by the operator and copied to every host
    // (one file here: the hosts share this machine's disk).
    let secret_file = dir.path().join("cluster.secret");
    let secret = shared::auth::ClusterSecret::from_random(rand::random());
    std::fs::write(&secret_file, secret.to_file_text()).expect("write the cluster secret");
    let secret_file = secret_file.display().to_string();

    // Each participant on its own host, with its own data dir.
    for (host, id, addr, account) in [("p1", "6001", P1_IP, "A"), ("p2", "6002", P2_IP, "B")] {
        let args = [
            "--id".to_string(),
            id.to_string(),
            "--listen".to_string(),
            format!("{addr}:{id}"),
            "--data-dir".to_string(),
            dir.path()
                .join(format!("host-{host}"))
                .display()
                .to_string(),
            "--account".to_string(),
            format!("{account}=100000"),
            "--ready-file".to_string(),
            dir.path()
                .join(format!("{host}.ready"))
                .display()
                .to_string(),
            "--secret-file".to_string(),
            secret_file.clone(),
        ];
        lab.spawn(host, &bin("participant"), &args);
    }
    for host in ["p1", "p2"] {
        let ready = dir.path().join(format!("{host}.ready"));
        wait_until(&format!("participant on {host} to listen"), || {
            std::fs::read_to_string(&ready).ok()
        });
    }
    let ready = dir.path().join("coordinator.ready");
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--demo",
        "--prepare-timeout-ms",
        "1500",
        "--ack-wait-ms",
        "1500",
        "--participant",
        &format!("6001={P1_IP}:6001=A"),
        "--participant",
        &format!("6002={P2_IP}:6002=B"),
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--data-dir".to_string(),
        dir.path().join("host-c").display().to_string(),
        "--ready-file".to_string(),
        ready.display().to_string(),
        "--static-dir".to_string(),
        dir.path().join("no-dashboard").display().to_string(),
        "--secret-file".to_string(),
        secret_file.clone(),
    ])
    .collect();
    lab.spawn("c", &bin("backend"), &args);
    let addr = wait_until("the coordinator to listen", || {
        std::fs::read_to_string(&ready)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    });
    assert!(
        addr.starts_with("127.0.0.1:"),
        "the API listens inside the coordinator's namespace: {addr}"
    );
    let http = NsHttp::new(&lab.ns("c"), addr);
    let view = wait_until("both remote participants to be up", || {
        let (status, view) = http.get("/api/cluster");
        let nodes = view["nodes"].as_array()?;
        let up = status == 200 && nodes.len() == 2 && nodes.iter().all(|n| n["status"] == "up");
        up.then_some(view)
    });
    for node in view["nodes"].as_array().unwrap() {
        assert_eq!(node["supervised"], false, "{node}");
        assert!(
            node["addr"].as_str().unwrap().starts_with(SUBNET_PREFIX),
            "{node}"
        );
    }

    // Transfers across the three hosts (the engine's own connections may
    // come up just after the view's: the first one may need a retry).
    let mut committed = Vec::new();
    let mut attempt = 0;
    let warm = wait_until("a first transfer to commit", || {
        attempt += 1;
        let tx_id = format!("ns-warm-{attempt}");
        let (status, body) = http.transfer("A", "B", 1, &tx_id);
        assert!(
            status == 200 || body["reason"] == "node_unreachable",
            "{tx_id}: {body}"
        );
        (status == 200).then_some(tx_id)
    });
    committed.push(warm);
    for i in 0..5 {
        let tx_id = format!("ns-ok-{i}");
        let (status, body) = http.transfer("A", "B", 1_000, &tx_id);
        assert_eq!(status, 200, "{tx_id}: {body}");
        committed.push(tx_id);
    }

    // A real partition of p2: the transfer aborts as with the injected one.
    lab.set_link("p2", false);
    let (status, body) = http.transfer("A", "B", 1_000, "ns-cut");
    assert_eq!(status, 409, "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason == "timeout" || reason == "node_unreachable",
        "{body}"
    );
    lab.set_link("p2", true);

    // A transaction caught by the partition after both votes: step mode
    // holds it between the votes and the decision, the link goes down, and
    // the commit cannot reach p2, which stays in doubt.
    let (status, body) = http.call("PUT", "/api/faults", Some(json!({"phase_pause_ms": 2_000})));
    assert_eq!(status, 200, "{body}");
    let caught = {
        let client = NsHttp::new(&lab.ns("c"), http_addr(&ready));
        std::thread::spawn(move || client.transfer("A", "B", 2_500, "ns-doubt"))
    };
    wait_until("ns-doubt prepared on both hosts", || {
        let entry = in_doubt_entry(&http, "ns-doubt")?;
        (entry["prepared_on"].as_array()?.len() == 2).then_some(())
    });
    lab.set_link("p2", false);
    let entry = wait_until(
        "ns-doubt committing, its ack from the partitioned host pending",
        || {
            let entry = in_doubt_entry(&http, "ns-doubt")?;
            let committing = entry["coordinator_state"] == "committing"
                && entry["pending_acks"] == json!(["6002"]);
            committing.then_some(entry)
        },
    );
    let reasons: Vec<&str> = entry["stuck"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"node_unreachable") || reasons.contains(&"waiting_for_ack"),
        "{entry}"
    );
    let (status, body) = caught.join().expect("the transfer thread ends");
    assert_eq!(status, 200, "the decision is durable: committed ({body})");
    http.call("PUT", "/api/faults", Some(json!({"phase_pause_ms": 0})));

    // Healed: the commit gets through, nothing stays in doubt.
    lab.set_link("p2", true);
    wait_until("ns-doubt resolved after the link is back", || {
        let (status, body) = http.get("/api/in-doubt");
        let empty = status == 200
            && body["transactions"]
                .as_array()
                .is_some_and(|t| t.is_empty());
        empty.then_some(())
    });
    committed.push("ns-doubt".to_string());
    for i in 0..3 {
        let tx_id = format!("ns-after-{i}");
        let (status, body) = http.transfer("B", "A", 500, &tx_id);
        assert_eq!(status, 200, "{tx_id}: {body}");
        committed.push(tx_id);
    }

    // The audit: conserved, every committed transfer on both ledgers, the
    // aborted one on neither.
    let balances = wait_until("every balance to be known", || {
        let b = balances(&http);
        (b.len() == 2).then_some(b)
    });
    assert_eq!(balances.values().sum::<i64>(), 200_000, "{balances:?}");
    assert_eq!(
        balances["A"],
        100_000 - 1 - 5 * 1_000 - 2_500 + 3 * 500,
        "{balances:?}"
    );
    for tx_id in &committed {
        assert!(
            ledger_has(&http, "A", tx_id) && ledger_has(&http, "B", tx_id),
            "{tx_id} is on both ledgers"
        );
    }
    assert!(
        !ledger_has(&http, "A", "ns-cut") && !ledger_has(&http, "B", "ns-cut"),
        "the aborted transfer moved nothing"
    );
    let (_, view) = http.get("/api/in-doubt");
    assert_eq!(view["audit"]["balanced"], true, "{view}");
    drop(lab);
}

fn http_addr(ready: &Path) -> String {
    std::fs::read_to_string(ready)
        .expect("the ready file")
        .trim()
        .to_string()
}
