//! Hostile input against the running processes: random methods, paths and
//! bodies on the HTTP API, garbage on the WebSocket, random bytes on a
//! participant's port. Nothing crashes, nothing moves, and everything still
//! works afterwards.

use std::io::{Read, Write};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use system_tests::audit::{audit, Reported};
use system_tests::{Cluster, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_get_client_errors_and_change_nothing() {
    let c = Cluster::start(Options {
        demo: false,
        ..Options::default()
    })
    .await;
    let mut rng = StdRng::seed_from_u64(7);
    let paths = [
        "/api/transfers",
        "/api/transactions",
        "/api/transactions/x",
        "/api/cluster",
        "/api/accounts",
        "/api/accounts/A/ledger",
        "/api/stats",
        "/api/faults",
        "/api/nodes/6001/crash",
        "/api/nodes/6001/link",
        "/api/coordinator/crash",
        "/api/%00",
        "/api/transactions/..%2f..%2fetc",
        "/api/accounts/\u{202e}/ledger",
    ];
    let bodies: Vec<Vec<u8>> = vec![
        br#"{"from":"A","to":"B","amount_cents":5,"extra":1}"#.to_vec(),
        br#"{"from":"A","to":"B","amount_cents":1e30}"#.to_vec(),
        br#"{"from":"A","to":"B","amount_cents":-9223372036854775808}"#.to_vec(),
        br#"{"from":null,"to":"B","amount_cents":5}"#.to_vec(),
        br#"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["#
            .to_vec(),
        b"\xff\xfe\x00garbage".to_vec(),
        Vec::new(),
    ];
    for i in 0..300 {
        let path = paths[rng.random_range(0..paths.len())];
        let body = if rng.random_bool(0.3) {
            (0..rng.random_range(0..300))
                .map(|_| rng.random::<u8>())
                .collect()
        } else {
            bodies[rng.random_range(0..bodies.len())].clone()
        };
        let method = ["GET", "POST", "PUT", "DELETE", "PATCH"][rng.random_range(0..5)];
        let request = c
            .http
            .request(method.parse().unwrap(), c.url(path))
            .header(
                "content-type",
                if i % 3 == 0 {
                    "text/plain"
                } else {
                    "application/json"
                },
            )
            .body(body);
        let response = request
            .send()
            .await
            .expect("the coordinator keeps answering");
        let status = response.status().as_u16();
        assert!(status < 500, "{method} {path} got {status}");
    }
    let (status, _) = c.transfer_outcome("A", "B", 100, Some("after-fuzz")).await;
    assert_eq!(status, 200);
    let view = c.wait_quiescent().await;
    let report = audit(
        &c,
        &view,
        &Reported {
            committed: ["after-fuzz".to_string()].into(),
            ..Reported::default()
        },
    )
    .await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_websocket_closes_only_that_client() {
    let c = Cluster::start(Options::default()).await;
    let ws_url = c.url("/ws").replace("http://", "ws://");
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("connects");
    let _snapshot = ws.next().await;
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::Text("{\"kind\":\"please crash\"}".into()))
        .await
        .unwrap();
    ws.send(Message::Binary(vec![0xff; 1_000].into()))
        .await
        .unwrap();
    // A message over the limit gets the connection closed.
    let _ = ws.send(Message::Text("x".repeat(1 << 20).into())).await;
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an oversized message closes the socket");
    // Another client is served as usual.
    let (mut other, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("connects again");
    let first = other.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"snapshot\""));
    let (status, _) = c.transfer_outcome("A", "B", 100, None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_on_a_participant_port_leave_it_serving() {
    let c = Cluster::start(Options::default()).await;
    let addr = c.cluster().await.nodes[0].addr.clone();
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..20 {
        let mut stream = std::net::TcpStream::connect(&addr).expect("the node accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let junk: Vec<u8> = (0..rng.random_range(1..5_000))
            .map(|_| rng.random::<u8>())
            .collect();
        let _ = stream.write_all(&junk);
        let _ = stream.write_all(b"\n{\"type\":\"commit\",\"tx_id\":\"never-prepared\"}\n");
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
    }
    // The coordinator's own connection and the node are fine.
    let (status, _) = c.transfer_outcome("A", "B", 100, Some("after-junk")).await;
    assert_eq!(status, 200);
    let view = c.wait_quiescent().await;
    let report = audit(
        &c,
        &view,
        &Reported {
            committed: ["after-junk".to_string()].into(),
            ..Reported::default()
        },
    )
    .await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}
