//! The coordinator's HTTP guard against real processes: what a web page
//! the user happens to visit can make the browser send to 127.0.0.1, and
//! what a coordinator on a non-loopback address demands.
//!
//! - a `text/plain` (or form, or untyped) body gets 415 and moves nothing;
//! - a change requested from a foreign `Origin` (or `Origin: null`) gets
//!   403: no money moves, no node dies; the coordinator's own origins and
//!   requests without an `Origin` pass;
//! - the `/ws` upgrade checks `Origin` the same way;
//! - a `Host` the coordinator does not answer to gets 421 on every route
//!   (DNS rebinding), names given with `--allowed-host` are served;
//! - with `--api-token-file`, every change needs `Authorization: Bearer`
//!   (401 otherwise, the CLI included), reads stay open;
//! - a non-loopback `--listen` without a token refuses to start.
//!
//! Run alone: `cargo build -p backend -p participant && cargo test -p
//! system-tests --test security_http`.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use shared::api::ComponentStatus;
use system_tests::{bin, node_pid, Cluster, Options, DEADLINE};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TRANSFER: &str = r#"{"from":"A","to":"B","amount_cents":100}"#;

/// Sends `method path` with `body` and the given headers: (status, body).
async fn send(
    c: &Cluster,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value, HeaderMap) {
    let mut request = c
        .http
        .request(method.parse().expect("a method"), c.url(path));
    for (name, value) in headers {
        request = request.header(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.expect("the coordinator answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

/// The coordinator's `host:port`.
fn authority(c: &Cluster) -> String {
    c.base_url.trim_start_matches("http://").to_string()
}

fn port(c: &Cluster) -> u16 {
    authority(c)
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .expect("the base URL has a port")
}

/// Nothing moved: the opening balances, and no ledger entries.
async fn assert_nothing_moved(c: &Cluster) {
    let balances = c.balances().await;
    assert_eq!(
        (balances["A"], balances["B"]),
        (100_000, 100_000),
        "money moved"
    );
    assert!(c.ledger("A").await.is_empty(), "A has ledger entries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_sent_as_json_get_415_and_move_nothing() {
    let c = Cluster::start(Options::default()).await;
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|t| ("content-type", t))
            .into_iter()
            .collect();
        let (status, body, _) = send(&c, "POST", "/api/transfers", &headers, Some(TRANSFER)).await;
        assert_eq!(status, 415, "{content_type:?}: {body}");
        assert!(
            error_of(&body).contains("Content-Type: application/json")
                && error_of(&body).contains("--json"),
            "the error names the fix: {body}"
        );
    }
    // The same for a body-reading fault route: the node stays up.
    let pid = node_pid(&c, "6002").await;
    let plain = [("content-type", "text/plain")];
    let crash = r#"{"at":"after_prepare_logged"}"#;
    let (status, body, _) = send(&c, "POST", "/api/nodes/6002/crash", &plain, Some(crash)).await;
    assert_eq!(status, 415, "{body}");
    let (status, body, _) = send(&c, "PUT", "/api/faults", &plain, Some("{}")).await;
    assert_eq!(status, 415, "{body}");
    assert_nothing_moved(&c).await;
    assert_eq!(node_pid(&c, "6002").await, pid, "the node was not touched");

    // JSON, with a charset parameter, is fine.
    let json = [("content-type", "application/json; charset=utf-8")];
    let (status, body, _) = send(&c, "POST", "/api/transfers", &json, Some(TRANSFER)).await;
    assert_eq!(status, 200, "{body}");
    // A route whose body is optional works without one, and a body-less
    // request needs no content type.
    let (status, body, _) = send(&c, "POST", "/api/nodes/6002/crash", &[], None).await;
    assert_eq!(status, 200, "{body}");
    c.wait_node_status("6002", ComponentStatus::Down).await;
    let (status, body, _) = send(&c, "POST", "/api/nodes/6002/restart", &[], None).await;
    assert_eq!(status, 200, "{body}");
    c.wait_all_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_cannot_move_money_or_crash_a_node_and_own_origins_can() {
    let c = Cluster::start(Options::default()).await;
    let json = ("content-type", "application/json");
    let pid = node_pid(&c, "6002").await.expect("node 6002 runs");
    for foreign in [
        "http://evil.example",
        "null",
        "https://127.0.0.1.evil.example",
        "http://localhost:1",
    ] {
        let origin = ("origin", foreign);
        let (status, body, _) = send(
            &c,
            "POST",
            "/api/transfers",
            &[origin, json],
            Some(TRANSFER),
        )
        .await;
        assert_eq!(status, 403, "{foreign}: {body}");
        assert!(
            error_of(&body).contains("--allowed-origin"),
            "the error names the fix: {body}"
        );
        let (status, body, _) = send(&c, "POST", "/api/nodes/6002/crash", &[origin], None).await;
        assert_eq!(status, 403, "{foreign}: {body}");
        let (status, _, _) = send(
            &c,
            "PUT",
            "/api/nodes/6002/link",
            &[origin, json],
            Some(r#"{"drop":true}"#),
        )
        .await;
        assert_eq!(status, 403, "{foreign}");
        let (status, _, _) = send(&c, "DELETE", "/api/nodes/6002/link", &[origin], None).await;
        assert_eq!(status, 403, "{foreign}");
        // Reads are not changes: a page cannot read them anyway (no CORS).
        let (status, _, _) = send(&c, "GET", "/api/cluster", &[origin], None).await;
        assert_eq!(status, 200, "{foreign}");
    }
    assert_nothing_moved(&c).await;
    let view = c.cluster().await;
    let node = view.nodes.iter().find(|n| n.id == "6002").expect("6002");
    assert_eq!(
        (node.status, node.pid),
        (ComponentStatus::Up, Some(pid)),
        "node 6002 is still up, the same process"
    );
    assert!(node.link.is_healthy(), "the link was not cut: {node:?}");

    // The coordinator's own pages, under each of its names, and clients
    // that send no Origin at all.
    let own = [
        format!("http://{}", authority(&c)),
        format!("http://localhost:{}", port(&c)),
        format!("http://[::1]:{}", port(&c)),
    ];
    for (i, origin) in own.iter().enumerate() {
        let body = format!(r#"{{"from":"A","to":"B","amount_cents":100,"tx_id":"own-{i}"}}"#);
        let (status, answer, _) = send(
            &c,
            "POST",
            "/api/transfers",
            &[("origin", origin), json],
            Some(&body),
        )
        .await;
        assert_eq!(status, 200, "{origin}: {answer}");
    }
    let (status, answer, _) = send(&c, "POST", "/api/transfers", &[json], Some(TRANSFER)).await;
    assert_eq!(status, 200, "no Origin: {answer}");
    let balances = c.balances().await;
    assert_eq!(balances["B"], 100_000 + 4 * 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_origins_come_from_the_flag() {
    let c = Cluster::start(Options {
        extra_args: vec!["--allowed-origin".into(), "https://dash.example".into()],
        ..Options::default()
    })
    .await;
    let json = ("content-type", "application/json");
    let (status, body, _) = send(
        &c,
        "POST",
        "/api/transfers",
        &[("origin", "https://dash.example"), json],
        Some(TRANSFER),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = send(
        &c,
        "POST",
        "/api/transfers",
        &[("origin", "http://dash.example"), json],
        Some(TRANSFER),
    )
    .await;
    assert_eq!(status, 403, "another scheme is another origin: {body}");
}

/// Opens `/ws` with `headers`: the handshake's status, and the first
/// message when it was accepted.
async fn open_ws(c: &Cluster, headers: &[(&str, &str)]) -> (u16, Option<String>) {
    let mut request = c
        .url("/ws")
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .expect("a WebSocket request");
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut socket, response)) => {
            let first = tokio::time::timeout(Duration::from_secs(30), socket.next())
                .await
                .expect("a first message in time")
                .expect("an open stream")
                .expect("a message");
            (
                response.status().as_u16(),
                Some(first.to_text().expect("text").to_string()),
            )
        }
        Err(tungstenite::Error::Http(response)) => (response.status().as_u16(), None),
        Err(other) => panic!("the WebSocket handshake failed: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_refuses_foreign_origins() {
    let c = Cluster::start(Options::default()).await;
    for foreign in ["http://evil.example", "null"] {
        let (status, first) = open_ws(&c, &[("origin", foreign)]).await;
        assert_eq!((status, first), (403, None), "{foreign}");
    }
    let own = format!("http://{}", authority(&c));
    for headers in [vec![("origin", own.as_str())], vec![]] {
        let (status, first) = open_ws(&c, &headers).await;
        assert_eq!(status, 101, "{headers:?}");
        assert!(
            first.is_some_and(|m| m.contains("\"snapshot\"")),
            "{headers:?}: the stream starts with a snapshot"
        );
    }
    // Another name of the coordinator is the same.
    let localhost = format!("http://localhost:{}", port(&c));
    assert_eq!(open_ws(&c, &[("origin", &localhost)]).await.0, 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_coordinators_own_host_names_are_served() {
    let dashboard = tempfile::tempdir().expect("a temp dir");
    std::fs::write(
        dashboard.path().join("index.html"),
        "<title>dashboard</title>",
    )
    .expect("index.html is written");
    let c = Cluster::start(Options {
        // The dashboard's files are behind the guard too.
        static_dir: Some(dashboard.path().to_path_buf()),
        // A name from the environment variable (comma-separated).
        extra_env: vec![("TPC_ALLOWED_HOSTS".into(), "tpc.test, other.test:7".into())],
        ..Options::default()
    })
    .await;
    let port = port(&c);
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
        "127.0.0.1".to_string(),
        format!("10.1.2.3:{port}"),
        "other.test".to_string(),
    ] {
        for path in ["/api/health", "/", "/ws"] {
            let (status, body, _) = send(&c, "GET", path, &[("host", &host)], None).await;
            assert_eq!(status, 421, "{host} {path}: {body}");
            assert!(
                error_of(&body).contains("--allowed-host"),
                "the error names the fix: {body}"
            );
        }
        let (status, _, _) = send(
            &c,
            "POST",
            "/api/transfers",
            &[("host", &host), ("content-type", "application/json")],
            Some(TRANSFER),
        )
        .await;
        assert_eq!(status, 421, "{host}");
    }
    assert_nothing_moved(&c).await;
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "tpc.test".to_string(),
        "tpc.test:8443".to_string(),
        "other.test:7".to_string(),
    ] {
        let (status, body, _) = send(&c, "GET", "/api/health", &[("host", &host)], None).await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    let page = c
        .http
        .get(c.url("/index.html"))
        .header("host", format!("localhost:{port}"))
        .send()
        .await
        .expect("the coordinator answers");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap_or_default().contains("dashboard"));
    // A proxy's X-Forwarded-Host is a name too (DNS rebinding through a
    // proxy such as trunk serve).
    let (status, _, _) = send(
        &c,
        "GET",
        "/api/cluster",
        &[("x-forwarded-host", "evil.example:8080")],
        None,
    )
    .await;
    assert_eq!(status, 421);
}

/// A token file in the cluster's temp dir.
fn write_token(dir: &std::path::Path, token: &str) -> String {
    let path = dir.join("api-token");
    std::fs::write(&path, format!("{token}\n")).expect("the token file is written");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_api_token_every_change_needs_the_bearer_header() {
    const TOKEN: &str = "3f9c1e7a5b2d4c6e8f0a1b2c3d4e5f60";
    let dir = tempfile::tempdir().expect("a temp dir");
    let token_file = write_token(dir.path(), TOKEN);
    let c = Cluster::start(Options {
        // Every interface: a listener others can reach, which needs the token.
        listen: Some("0.0.0.0:0".into()),
        extra_args: vec!["--api-token-file".into(), token_file.clone()],
        ..Options::default()
    })
    .await;
    let json = ("content-type", "application/json");
    let pid = node_pid(&c, "6002").await;
    for authorization in [
        None,
        Some("Bearer wrong-token-0123456789"),
        Some("Basic eDp5"),
    ] {
        let mut headers = vec![json];
        headers.extend(authorization.map(|a| ("authorization", a)));
        let (status, body, answer_headers) =
            send(&c, "POST", "/api/transfers", &headers, Some(TRANSFER)).await;
        assert_eq!(status, 401, "{authorization:?}: {body}");
        assert!(error_of(&body).contains("Authorization: Bearer"), "{body}");
        assert_eq!(
            answer_headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        headers.retain(|(name, _)| *name != "content-type");
        let (status, _, _) = send(&c, "POST", "/api/nodes/6002/crash", &headers, None).await;
        assert_eq!(status, 401, "{authorization:?}");
    }
    assert_nothing_moved(&c).await;
    assert_eq!(node_pid(&c, "6002").await, pid, "the node was not touched");

    // Reads and the live stream stay open.
    let (status, _, _) = send(&c, "GET", "/api/accounts", &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(open_ws(&c, &[]).await.0, 101);

    let bearer = format!("Bearer {TOKEN}");
    let with_token = [json, ("authorization", bearer.as_str())];
    let (status, body, _) = send(&c, "POST", "/api/transfers", &with_token, Some(TRANSFER)).await;
    assert_eq!(status, 200, "{body}");

    // The CLI: refused without the token, served with it.
    let url = c.base_url.clone();
    let tpc = |args: Vec<String>| {
        let url = url.clone();
        async move {
            let mut command = tokio::process::Command::new(bin("tpc"));
            command
                .args(&args)
                .env("TPC_URL", url)
                .env_remove("TPC_API_TOKEN_FILE")
                .kill_on_drop(true);
            let output = tokio::time::timeout(DEADLINE, command.output())
                .await
                .expect("tpc finishes")
                .expect("tpc runs");
            (
                output.status.code().expect("tpc exits by itself"),
                String::from_utf8_lossy(&output.stderr).to_string(),
            )
        }
    };
    let transfer = |extra: &[&str]| {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.extend(["transfer", "A", "B", "1"].map(String::from));
        args
    };
    let (code, stderr) = tpc(transfer(&[])).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("requires an API token"), "{stderr}");
    let (code, stderr) = tpc(transfer(&["--token-file", &token_file])).await;
    assert_eq!(code, 0, "{stderr}");
    let missing = dir.path().join("missing").display().to_string();
    let (code, stderr) = tpc(transfer(&["--token-file", &missing])).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot read the API token file"),
        "{stderr}"
    );
    let balances = c.balances().await;
    assert_eq!(balances["B"], 100_000 + 100 + 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_on_a_loopback_listener_guards_changes_too() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let token_file = write_token(dir.path(), "loopback-token-0123456789");
    let c = Cluster::start(Options {
        extra_env: vec![("TPC_API_TOKEN_FILE".into(), token_file)],
        ..Options::default()
    })
    .await;
    let json = ("content-type", "application/json");
    let (status, _, _) = send(&c, "POST", "/api/transfers", &[json], Some(TRANSFER)).await;
    assert_eq!(status, 401);
    let auth = ("authorization", "Bearer loopback-token-0123456789");
    let (status, body, _) = send(&c, "POST", "/api/transfers", &[json, auth], Some(TRANSFER)).await;
    assert_eq!(status, 200, "{body}");
}

/// Runs the backend with `args` in a fresh temp dir and waits for it to
/// exit: (exit code, stderr). If it does not, its process group (with any
/// participant it started) is killed and the test fails.
async fn backend_exits(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let child = tokio::process::Command::new(bin("backend"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--node-port-base")
        .arg("0")
        .env_remove("TPC_API_TOKEN_FILE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn()
        .expect("the backend starts");
    let group = child.id().expect("a pid") as i32;
    let Ok(output) = tokio::time::timeout(DEADLINE, child.wait_with_output()).await else {
        // SAFETY: killpg(2) on the process group this test created.
        unsafe {
            libc::killpg(group, libc::SIGKILL);
        }
        panic!("the backend did not exit by itself within {DEADLINE:?}");
    };
    let output = output.expect("its output");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_listener_without_a_good_token_refuses_to_start() {
    let (code, stderr) = backend_exits(&["--listen", "0.0.0.0:0"]).await;
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("--listen 0.0.0.0:0 is not a loopback address")
            && stderr.contains("--api-token-file PATH"),
        "{stderr}"
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let short = write_token(dir.path(), "too-short");
    let (code, stderr) =
        backend_exits(&["--listen", "0.0.0.0:0", "--api-token-file", &short]).await;
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("9 characters long") && stderr.contains("at least 16"),
        "{stderr}"
    );
}
