//! Bad input never crashes the node or corrupts its state: garbage gets an
//! error reply and the connection stays usable; a line over the limit gets an
//! error and a clean close; a connection flood over the limit is refused.
//! After each, the node still serves a normal transfer.

mod common;

use std::io::Write;

use common::{temp, wait_until, Client, Node, Spec};
use shared::limits::PARTICIPANT_CONNECTIONS_MAX;
use shared::wire::{Reply, Vote};

fn spec() -> Spec {
    Spec::new("6001", &[("A", 100_000), ("B", 0)])
}

fn expect_error(client: &mut Client, what: &str) -> String {
    match client.recv() {
        Some(Reply::Error { message }) => message,
        other => panic!("{what}: expected an error reply, got {other:?}"),
    }
}

#[test]
fn garbage_gets_error_replies_and_the_connection_stays_open() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let mut client = node.client();

    let bad_lines: [(&str, &[u8]); 7] = [
        ("plain text", b"hello there\n"),
        ("invalid UTF-8", b"\xff\xfe\xfd\x80\n"),
        ("binary with a NUL", b"\x00\x01\x02{\n"),
        (
            "unknown message type",
            br#"{"type":"launch_missiles"}"# as &[u8],
        ),
        (
            "unknown field",
            br#"{"type":"commit","tx_id":"t","extra":1}"#,
        ),
        (
            "wrong field type",
            br#"{"type":"prepare","tx_id":5,"ts":"x","ops":{}}"#,
        ),
        ("truncated JSON", br#"{"type":"prepare","tx_id":"t","#),
    ];
    for (what, line) in bad_lines {
        client.send_raw(line);
        if !line.ends_with(b"\n") {
            client.send_raw(b"\n");
        }
        let message = expect_error(&mut client, what);
        assert!(!message.is_empty(), "{what}");
    }
    client.send_raw(b"\n\r\n   \n"); // blank lines are ignored, not errors

    client.transfer("t1", 1, &[("A", -100), ("B", 100)]);
    assert_eq!((client.balance("A"), client.balance("B")), (99_900, 100));
}

#[test]
fn a_one_megabyte_line_gets_an_error_and_a_clean_close() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let mut client = node.client();

    // Written from another thread: the node stops reading after the limit,
    // so this write may block or fail once it has closed.
    let mut writer = client.stream.try_clone().expect("clone the stream");
    let flood = std::thread::spawn(move || {
        let mut line = vec![b'x'; 1024 * 1024];
        line.push(b'\n');
        let _ = writer.write_all(&line);
    });
    let replies = client.recv_until_closed();
    let _ = flood.join();
    assert!(
        replies
            .iter()
            .all(|r| matches!(r, Reply::Error { message } if message.contains("longer than"))),
        "only an error may come back: {replies:?}"
    );
    println!("replies before the close: {replies:?}");

    let mut client = node.client();
    client.transfer("t1", 1, &[("A", -100)]);
    assert_eq!(client.balance("A"), 99_900);
}

#[test]
fn a_long_line_without_a_newline_is_not_buffered_forever() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let mut client = node.client();
    let chunk = vec![b'{'; shared::limits::LINE_BYTES_MAX + 1];
    let mut writer = client.stream.try_clone().expect("clone the stream");
    let flood = std::thread::spawn(move || {
        let _ = writer.write_all(&chunk);
    });
    let replies = client.recv_until_closed();
    let _ = flood.join();
    assert!(
        replies.iter().all(|r| matches!(r, Reply::Error { .. })),
        "{replies:?}"
    );
    assert_eq!(
        node.client().prepare("t1", 1, &[("A", -1)]),
        (Vote::Ready, None)
    );
}

#[test]
fn a_connection_flood_over_the_limit_is_refused_and_the_node_recovers() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);

    let extra = 16;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for _ in 0..PARTICIPANT_CONNECTIONS_MAX + extra {
        let mut client = Client::connect_raw(node.addr);
        match client.recv() {
            Some(hello @ Reply::Hello { .. }) => {
                client.hello = hello;
                accepted.push(client);
            }
            Some(Reply::Error { message }) => {
                assert!(message.contains("too many connections"), "{message}");
                assert!(client.is_closed(), "a refused connection is closed");
                refused += 1;
            }
            other => panic!("expected hello or an error, got {other:?}"),
        }
    }
    println!("accepted {}, refused {refused}", accepted.len());
    assert_eq!(accepted.len(), PARTICIPANT_CONNECTIONS_MAX);
    assert_eq!(refused, extra);

    // An accepted connection still works while the others are held.
    accepted[0].authenticate(&common::coordinator_claim());
    accepted[0].transfer("t1", 1, &[("A", -100)]);
    drop(accepted);

    // Once they are gone, new connections are served again.
    let mut client = wait_until("a connection slot to free up", || {
        let mut client = Client::connect_raw(node.addr);
        match client.recv() {
            Some(hello @ Reply::Hello { .. }) => {
                client.hello = hello;
                Some(client)
            }
            _ => None,
        }
    });
    client.authenticate(&common::coordinator_claim());
    client.transfer("t2", 2, &[("A", -100)]);
    assert_eq!(client.balance("A"), 99_800);
}
