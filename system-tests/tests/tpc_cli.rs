//! The operator's command line against real processes: every part of the
//! API it covers (transactions by state and reason, stats, in-doubt
//! transactions and a heuristic decision, link faults, coordinator crash
//! points, the fault settings), `tpc watch` on the live event stream
//! (colours, filters, surviving a coordinator restart), https through a
//! TLS proxy with a private CA, and the generated completions and manual.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use shared::api::InDoubtView;
use system_tests::tpc::{tpc, tpc_with_env, Run};
use system_tests::{wait_for_async, Cluster, Options, DEADLINE};

fn json_of(run: &Run) -> Value {
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_stats_and_faults_from_the_command_line() {
    let c = Cluster::start(Options::default()).await;
    let url = c.base_url.as_str();
    assert_eq!(
        tpc(Some(url), &["transfer", "A", "B", "5", "--tx-id", "cli-ok"])
            .await
            .code,
        0
    );
    let run = tpc(
        Some(url),
        &["transfer", "A", "B", "100000", "--tx-id", "cli-poor"],
    )
    .await;
    assert_eq!(run.code, 3, "aborted: {}", run.stdout);

    // Filters run on the server: only the aborted one, by state or reason.
    let run = tpc(Some(url), &["transactions", "--state", "aborted"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("cli-poor") && !run.stdout.contains("cli-ok"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("insufficient_funds"), "{}", run.stdout);
    let list = json_of(
        &tpc(
            Some(url),
            &["--json", "transactions", "--outcome", "committed"],
        )
        .await,
    );
    let ids: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|t| t["tx_id"].as_str())
        .collect();
    assert_eq!(ids, ["cli-ok"]);
    let list = json_of(
        &tpc(
            Some(url),
            &[
                "--json",
                "transactions",
                "--reason",
                "insufficient_funds",
                "--limit",
                "1",
            ],
        )
        .await,
    );
    assert_eq!(list[0]["tx_id"], "cli-poor");
    let run = tpc(Some(url), &["transactions", "--reason", "bored"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("reason must be one of") && run.stderr.contains("HTTP 400"),
        "{}",
        run.stderr
    );
    let run = tpc(Some(url), &["transactions", "--state", "pending"]).await;
    assert_eq!(run.code, 2, "clap refuses it: {}", run.stderr);
    let run = tpc(Some(url), &["transactions", "--state", "prepared"]).await;
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout.trim(), "no transactions match");

    let run = tpc(Some(url), &["stats"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("2 attempted, 1 committed, 1 aborted")
            && run.stdout.contains("insufficient_funds 1")
            && run.stdout.contains("latency ms   p50"),
        "{}",
        run.stdout
    );

    // Link faults: set, shown, healed.
    let run = tpc(
        Some(url),
        &["link", "6002", "--delay-ms", "40", "--duplicate"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "link to 6002: +40 ms each way, every message sent twice"
    );
    let run = tpc(Some(url), &["link", "6002"]).await;
    assert_eq!(
        run.stdout.trim(),
        "link to 6002: +40 ms each way, every message sent twice"
    );
    let (_, faults) = c.get("/api/faults").await;
    assert_eq!(faults["links"]["6002"]["delay_ms"], 40);
    let run = tpc(Some(url), &["link", "6002", "--heal"]).await;
    assert_eq!(run.stdout.trim(), "link to 6002: healthy");
    let run = tpc(Some(url), &["link", "6002", "--heal", "--drop"]).await;
    assert_eq!(run.code, 2, "--heal with a fault is a usage error");

    // Fault settings and a coordinator crash point, armed then disarmed.
    let run = tpc(Some(url), &["faults", "--phase-pause-ms", "250"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("pause between phases       250 ms"),
        "{}",
        run.stdout
    );
    let run = tpc(
        Some(url),
        &[
            "coordinator-crash",
            "--at",
            "mid-commit",
            "--restart-after-ms",
            "700",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("crash at mid_commit"), "{}", run.stdout);
    let run = tpc(Some(url), &["faults"]).await;
    assert!(
        run.stdout
            .contains("coordinator crash          armed at mid_commit (restart after 700 ms)"),
        "{}",
        run.stdout
    );
    let run = tpc(Some(url), &["coordinator-crash", "--disarm"]).await;
    assert_eq!(run.stdout.trim(), "coordinator crash disarmed");
    let (_, faults) = c.get("/api/faults").await;
    assert!(faults["coordinator_crash"].is_null(), "{faults}");
    assert_eq!(faults["phase_pause_ms"], 250);
    let run = tpc(Some(url), &["faults", "--prepare-crash-probability", "1.5"]).await;
    assert_eq!(run.code, 1, "the server refuses it: {}", run.stderr);
    assert!(
        run.stderr.contains("between 0 and 1") && run.stderr.contains("HTTP 422"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_doubt_and_a_heuristic_decision_from_the_command_line() {
    let c = Cluster::start(Options::default()).await;
    let url = c.base_url.clone();
    let run = tpc(Some(&url), &["in-doubt"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("nothing in doubt") && run.stdout.contains("audit ✓"),
        "{}",
        run.stdout
    );

    // Votes in, a pause before the decision, then the link to 6002 cut: the
    // commit reaches 6001 only and 6002 stays in doubt.
    assert_eq!(
        tpc(Some(&url), &["faults", "--phase-pause-ms", "2000"])
            .await
            .code,
        0
    );
    let transfer = {
        let url = url.clone();
        tokio::spawn(async move {
            tpc(
                Some(&url),
                &["transfer", "A", "B", "10", "--tx-id", "cli-h"],
            )
            .await
        })
    };
    let in_doubt = |run: &Run| -> InDoubtView {
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
    };
    wait_for_async("cli-h prepared on both nodes", DEADLINE, || async {
        let view = in_doubt(&tpc(Some(&url), &["--json", "in-doubt"]).await);
        view.transactions
            .iter()
            .any(|t| t.tx_id == "cli-h" && t.prepared_on.len() == 2)
            .then_some(())
    })
    .await;
    assert_eq!(tpc(Some(&url), &["link", "6002", "--drop"]).await.code, 0);
    wait_for_async("cli-h waiting for 6002's ack", DEADLINE, || async {
        let view = in_doubt(&tpc(Some(&url), &["--json", "in-doubt"]).await);
        view.transactions
            .iter()
            .any(|t| t.tx_id == "cli-h" && t.pending_acks == ["6002"])
            .then_some(())
    })
    .await;
    let answer = transfer.await.expect("the transfer task");
    assert_eq!(
        answer.code, 0,
        "the decision is durable: committed. {}",
        answer.stdout
    );
    let run = tpc(Some(&url), &["in-doubt"]).await;
    assert!(
        run.stdout.contains("cli-h  A → B $10.00")
            && run.stdout.contains("decided commit")
            && run.stdout.contains("acks owed by 6002"),
        "{}",
        run.stdout
    );

    let run = tpc(
        Some(&url),
        &["heuristic", "6002", "cli-h", "--decision", "abort"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "heuristic abort of cli-h on node 6002: DISAGREES with the coordinator (-$10.00"
        ),
        "{}",
        run.stdout
    );
    let run = tpc(
        Some(&url),
        &["heuristic", "6002", "nothing", "--decision", "commit"],
    )
    .await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not in doubt"), "{}", run.stderr);
    let run = tpc(Some(&url), &["in-doubt"]).await;
    assert!(
        run.stdout
            .contains("heuristic abort of cli-h on node 6002: DISAGREES"),
        "{}",
        run.stdout
    );
}

/// `tpc watch` as a child process, its stdout and stderr read line by line.
struct Watcher {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    notices: tokio::sync::mpsc::UnboundedReceiver<String>,
    stderr: Vec<String>,
}

fn forward(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    use tokio::io::AsyncBufReadExt;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Lines from `rx` until one contains `needle` (returned with those before it).
async fn lines_until(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    needle: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = rx.recv().await {
            let hit = line.contains(needle);
            seen.push(line);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "no line with {needle:?} in:\n{}",
        seen.join("\n")
    );
    seen
}

impl Watcher {
    fn start(url: &str, args: &[&str]) -> Watcher {
        let mut command = tokio::process::Command::new(system_tests::bin("tpc"));
        command
            .args(args)
            .env("TPC_URL", url)
            .env_remove("NO_COLOR")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("tpc watch starts");
        let lines = forward(child.stdout.take().expect("stdout"));
        let notices = forward(child.stderr.take().expect("stderr"));
        Watcher {
            child,
            lines,
            notices,
            stderr: Vec::new(),
        }
    }

    /// Events until one contains `needle`.
    async fn until(&mut self, needle: &str) -> Vec<String> {
        lines_until(&mut self.lines, needle).await
    }

    /// Notices (stderr) until one contains `needle`.
    async fn notice(&mut self, needle: &str) {
        let seen = lines_until(&mut self.notices, needle).await;
        self.stderr.extend(seen);
    }

    async fn exit(mut self) -> (i32, String) {
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("tpc watch ends")
            .expect("its status");
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_secs(5), self.notices.recv()).await
        {
            self.stderr.push(line);
        }
        (status.code().unwrap_or(-1), self.stderr.join("\n"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_each_event_as_a_coloured_line_and_survives_a_coordinator_restart() {
    let mut c = Cluster::start(Options::default()).await;
    let url = c.base_url.clone();

    let mut all = Watcher::start(&url, &["watch", "--color", "always"]);
    let first = all.until("snapshot").await;
    assert!(
        first
            .last()
            .expect("a line")
            .contains("coordinator up; nodes 6001 up, 6002 up"),
        "{first:?}"
    );
    assert_eq!(
        tpc(Some(&url), &["transfer", "A", "B", "1", "--tx-id", "w-1"])
            .await
            .code,
        0
    );
    let lines = all.until("tx_finished").await;
    let text = lines.join("\n");
    for kind in [
        "tx_started",
        "prepare_sent",
        "vote",
        "log_forced",
        "commit_sent",
    ] {
        assert!(text.contains(kind), "no {kind} in:\n{text}");
    }
    let finished = lines.last().expect("a line");
    assert!(
        finished.contains("\u{1b}[")
            && finished.contains("outcome=committed")
            && finished.contains("tx_id=w-1"),
        "a committed transfer's line is coloured: {finished:?}"
    );
    drop(all);

    // Only what was asked, as JSON; it outlives a kill -9 of the coordinator.
    let mut finished_only = Watcher::start(
        &url,
        &["--json", "watch", "--kind", "tx_finished", "--count", "2"],
    );
    // Connected once the hub counts a listener: until then, a transfer's
    // events could go unseen. A first transfer proves it: keep sending
    // until one shows.
    let mut n = 0;
    let first = loop {
        n += 1;
        let id = format!("w-2-{n}");
        assert_eq!(
            tpc(Some(&url), &["transfer", "A", "B", "1", "--tx-id", &id])
                .await
                .code,
            0
        );
        let got = tokio::time::timeout(Duration::from_secs(2), finished_only.lines.recv()).await;
        if let Ok(Some(line)) = got {
            break line;
        }
    };
    let event: Value = serde_json::from_str(&first).expect("one JSON event per line");
    assert_eq!(
        event["kind"], "tx_finished",
        "the snapshot is not a tx_finished"
    );
    c.kill_coordinator();
    finished_only.notice("lost the coordinator").await;
    c.start_coordinator().await;
    c.wait_all_up().await;
    assert_eq!(
        c.base_url, url,
        "the coordinator comes back on the same address"
    );
    finished_only.notice("connected again").await;
    wait_for_async("a transfer after the restart", DEADLINE, || async {
        let run = tpc(Some(&url), &["transfer", "A", "B", "1", "--tx-id", "w-3"]).await;
        (run.code == 0).then_some(())
    })
    .await;
    let line = finished_only.until("w-3").await.pop().expect("a line");
    assert!(line.contains("\"tx_finished\""), "{line}");
    let (code, stderr) = finished_only.exit().await;
    assert_eq!(code, 0, "--count 2 ends it: {stderr}");

    // --no-reconnect ends with an error when the coordinator goes.
    let mut once = Watcher::start(&url, &["watch", "--no-reconnect", "--color", "never"]);
    let snapshot = once.until("snapshot").await;
    assert!(
        !snapshot.join("").contains('\u{1b}'),
        "--color never: {snapshot:?}"
    );
    c.kill_coordinator();
    let (code, stderr) = once.exit().await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("the event stream ended"), "{stderr}");
}

/// A TLS proxy in front of the coordinator, as an operator would run one:
/// its certificate for `localhost`, signed by a private CA.
struct TlsProxy {
    port: u16,
    ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tls_proxy(backend: std::net::SocketAddr) -> TlsProxy {
    let ca_key = rcgen::KeyPair::generate().expect("a CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tpc test CA");
    let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("a server key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params
        .signed_by(&key, &issuer)
        .expect("the server certificate");
    // ring, as the coordinator's `tpc` uses.
    #[allow(deprecated)]
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("a server configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let port = listener.local_addr().expect("its address").port();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    TlsProxy {
        port,
        ca_pem: ca.pem(),
        task,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca() {
    // Behind a proxy the Host is the proxy's: the coordinator is told to
    // answer to it.
    let c = Cluster::start(Options {
        extra_args: vec!["--allowed-host".into(), "localhost".into()],
        ..Options::default()
    })
    .await;
    let backend: std::net::SocketAddr = c
        .base_url
        .trim_start_matches("http://")
        .parse()
        .expect("the coordinator's address");
    let proxy = tls_proxy(backend).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &proxy.ca_pem).expect("the CA file");
    let ca = ca_file.to_str().expect("a UTF-8 path");
    let https = format!("https://localhost:{}", proxy.port);

    let run = tpc(Some(&https), &["--ca-file", ca, "status"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("coordinator  up"), "{}", run.stdout);
    let run = tpc_with_env(
        Some(&https),
        &["transfer", "A", "B", "2"],
        &[("TPC_CA_FILE", ca)],
    )
    .await;
    assert_eq!(run.code, 0, "the env variable works too: {}", run.stderr);

    // The public roots do not know the private CA: refused, with the fix.
    let run = tpc(Some(&https), &["status"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("TLS") && run.stderr.contains("--ca-file"),
        "{}",
        run.stderr
    );
    let bad = dir.path().join("not-a-cert.pem");
    std::fs::write(&bad, "hello").expect("a file");
    let run = tpc(
        Some(&https),
        &["--ca-file", bad.to_str().expect("UTF-8"), "status"],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("holds no certificate"),
        "{}",
        run.stderr
    );

    // The live stream over wss, with the same trust.
    let mut watch = Watcher::start(&https, &["--ca-file", ca, "watch", "--count", "1"]);
    watch.until("snapshot").await;
    let (code, stderr) = watch.exit().await;
    assert_eq!(code, 0, "{stderr}");
    let run = tpc(Some(&https), &["watch", "--count", "1"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--ca-file"), "{}", run.stderr);
}

#[tokio::test]
async fn completions_and_a_manual_page() {
    for shell in ["bash", "zsh", "fish"] {
        let run = tpc(None, &["completions", shell]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        for word in [
            "transactions",
            "in-doubt",
            "coordinator-crash",
            "watch",
            "ca-file",
        ] {
            assert!(run.stdout.contains(word), "{shell} completions lack {word}");
        }
    }
    let run = tpc(None, &["completions", "tcsh"]).await;
    assert_eq!(run.code, 2);
    let run = tpc(None, &["man"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with(".ie") || run.stdout.contains(".TH tpc"),
        "{}",
        &run.stdout[..200.min(run.stdout.len())]
    );
    for word in ["in\\-doubt", "TPC_URL", "Exit codes"] {
        assert!(run.stdout.contains(word), "the manual lacks {word}");
    }
}
