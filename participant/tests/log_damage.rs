//! What the node does with a damaged log: a torn tail (a crash in the middle
//! of an append) is cut and the node starts with everything before it, as is
//! a sector that a power cut lost before later records that reached the disk;
//! damage in the middle, or a record that does not decode, refuses to start.
//! Also: checkpoints keep the log bounded and recover like the full log.
//!
//! Run alone: `cargo build -p participant && cargo test -p participant --test log_damage`.

mod common;

use common::{temp, Node, Spec, Started};
use shared::wire::{Decision, Vote};

fn spec() -> Spec {
    Spec::new("6001", &[("A", 100_000), ("B", 0)])
}

/// (offset, payload length) of every frame: `[len u32 LE][crc u32 LE][payload]`.
/// The log file is preallocated: zeros (a zero length) follow the last frame.
fn frames(log: &[u8]) -> Vec<(usize, usize)> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 8 <= log.len() {
        let len = u32::from_le_bytes(log[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len == 0 || at + 8 + len > log.len() {
            break;
        }
        frames.push((at, len));
        at += 8 + len;
    }
    frames
}

/// Where the last frame ends (the preallocated zeros start there).
fn frames_end(log: &[u8]) -> usize {
    frames(log).last().map_or(0, |&(at, len)| at + 8 + len)
}

/// CRC-32 (IEEE), as the log's framing uses.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Two committed transfers, then a third prepared (its PREPARED record is
/// the last one in the log), then kill -9.
fn two_commits_and_a_prepare(data: &std::path::Path) -> Node {
    let mut node = Node::start(&spec(), data);
    let mut client = node.client();
    client.transfer("t1", 1, &[("A", -100), ("B", 100)]);
    client.transfer("t2", 2, &[("A", -200), ("B", 200)]);
    assert_eq!(
        client.prepare("t3", 3, &[("A", -300), ("B", 300)]),
        (Vote::Ready, None)
    );
    node.kill9();
    node
}

#[test]
fn a_torn_tail_is_cut_and_earlier_commits_survive() {
    let (_dir, data) = temp();
    let node = two_commits_and_a_prepare(&data);
    let log = std::fs::read(node.log_path()).expect("read the log");
    assert_eq!(
        frames(&log).len(),
        7,
        "init, the coordinator's binding, 2 x (prepared, committed), prepared"
    );
    // A write torn by the crash: the last record's final bytes never
    // reached the disk, so the preallocated zeros are still there.
    let mut torn = log.clone();
    let end = frames_end(&log);
    torn[end - 5..end].fill(0);
    assert!(
        torn[end..].iter().all(|&b| b == 0),
        "zeros after the frames"
    );
    std::fs::write(node.log_path(), &torn).expect("write the torn log");

    let node = node.restart();
    let mut client = node.client();
    assert_eq!((client.balance("A"), client.balance("B")), (99_700, 300));
    assert_eq!(
        client.ledger("A"),
        vec![("t1".to_string(), -100), ("t2".to_string(), -200)]
    );
    assert!(
        client.recover().is_empty(),
        "the torn PREPARED record is gone"
    );
    assert!(client.status().locked_accounts.is_empty());
    client.transfer("t4", 4, &[("A", -1)]);
    assert_eq!(client.balance("A"), 99_699);
}

#[test]
fn a_sector_lost_by_a_power_cut_before_later_records_is_cut() {
    // Forty transfers, then kill -9. Then what a power cut can make of
    // records not yet synced: the sector holding one PREPARED record's header
    // never reached the disk (still the preallocated zeros) while later
    // records did. None of them was synced, so the node cuts from the hole,
    // keeps everything before it, says so, and starts.
    let (_dir, data) = temp();
    let mut node = Node::start(&spec(), &data);
    let mut client = node.client();
    let transfers = 40;
    for i in 0..transfers {
        client.transfer(&format!("t{i}"), i + 1, &[("A", -10), ("B", 10)]);
    }
    node.kill9();
    let mut log = std::fs::read(node.log_path()).expect("read the log");
    let frames = frames(&log);
    assert_eq!(
        frames.len(),
        2 + 2 * transfers as usize,
        "init, the coordinator's binding, then prepared and committed"
    );

    // Frame 2j+2 is t{j}'s PREPARED: the first one in the third sector.
    let sector = 512;
    let hole = (2..frames.len())
        .step_by(2)
        .find(|&k| frames[k].0 >= 2 * sector)
        .expect("the log spans three sectors");
    let kept_transfers = (hole - 2) / 2;
    let at = frames[hole].0;
    let hole_end = (at + 8).div_ceil(sector) * sector;
    log[at..hole_end].fill(0);
    assert!(
        frames.iter().any(|&(start, _)| start >= hole_end),
        "records after the hole reached the disk"
    );
    std::fs::write(node.log_path(), &log).expect("write the log");

    let node = node.restart();
    let mut client = node.client();
    let kept: Vec<(String, i64)> = (0..kept_transfers).map(|i| (format!("t{i}"), 10)).collect();
    assert_eq!(client.ledger("B"), kept);
    let moved = 10 * kept_transfers as i64;
    assert_eq!(
        (client.balance("A"), client.balance("B")),
        (100_000 - moved, moved)
    );
    assert!(client.recover().is_empty(), "nothing in doubt");
    assert!(client.status().locked_accounts.is_empty());
    let stderr = node.stderr();
    for needle in [
        "cut a torn tail".to_string(),
        format!("offset={at}"),
        format!("bytes_cut={}", log.len() - at),
        "never reached the disk".to_string(),
    ] {
        assert!(
            stderr.contains(&needle),
            "stderr lacks {needle:?}:\n{stderr}"
        );
    }
    client.transfer("after", 1_000, &[("A", -1)]);
    assert_eq!(client.balance("A"), 100_000 - moved - 1);
}

#[test]
fn a_flipped_byte_in_the_middle_refuses_to_start() {
    let (_dir, data) = temp();
    let node = two_commits_and_a_prepare(&data);
    let mut log = std::fs::read(node.log_path()).expect("read the log");
    let (offset, len) = frames(&log)[3]; // t1's COMMITTED record
    log[offset + 8 + len / 2] ^= 0x20;
    std::fs::write(node.log_path(), &log).expect("write the log");

    match Node::try_start(&spec(), &data) {
        Started::Ready(_) => panic!("started on a log with a corrupt record in the middle"),
        Started::Exited { status, stderr } => {
            assert_eq!(status.code(), Some(1), "{stderr}");
            assert!(stderr.contains("corrupt"), "{stderr}");
            assert!(
                stderr.contains("participant.log"),
                "names the file: {stderr}"
            );
        }
    }
}

#[test]
fn a_record_that_does_not_decode_refuses_to_start() {
    let (_dir, data) = temp();
    let node = two_commits_and_a_prepare(&data);
    // A correctly framed record whose payload is not a participant record.
    let payload = br#"{"rec":"launch_missiles"}"#;
    let mut frame = Vec::new();
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    let mut log = std::fs::read(node.log_path()).expect("read the log");
    let end = frames_end(&log);
    log.splice(end..end + frame.len(), frame);
    std::fs::write(node.log_path(), &log).expect("write the log");

    match Node::try_start(&spec(), &data) {
        Started::Ready(_) => panic!("started on a log with an unreadable record"),
        Started::Exited { status, stderr } => {
            assert_eq!(status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains("participant.log record 7"),
                "names the file and the record: {stderr}"
            );
        }
    }
}

#[test]
fn checkpoints_keep_the_log_small_and_recover_everything() {
    let (_dir, data) = temp();
    let checkpoint_bytes = 4_096u64;
    let spec = spec()
        .arg("--log-checkpoint-bytes")
        .arg(&checkpoint_bytes.to_string());
    let mut node = Node::start(&spec, &data);
    let mut client = node.client();
    let transfers = 100;
    for i in 0..transfers {
        client.transfer(&format!("t{i}"), i, &[("A", -10), ("B", 10)]);
    }
    assert_eq!(
        client.prepare("open", 1_000, &[("A", -1)]),
        (Vote::Ready, None)
    );
    let status = client.status();
    let log_bytes = frames_end(&std::fs::read(node.log_path()).expect("read the log"));
    println!(
        "log after {transfers} transfers: {log_bytes} bytes, {} records",
        status.log_records
    );
    // Without checkpoints: ~200 records of 30 to 40 bytes.
    assert!(status.log_records < 2 * transfers, "{status:?}");
    assert!(
        log_bytes < 16 * checkpoint_bytes as usize,
        "the log stays bounded: {log_bytes} bytes"
    );
    assert!(node.stderr().contains("checkpoint"), "{}", node.stderr());

    node.kill9();
    let node = node.restart();
    let mut client = node.client();
    assert_eq!(
        (client.balance("A"), client.balance("B")),
        (100_000 - 10 * transfers as i64, 10 * transfers as i64)
    );
    assert_eq!(client.ledger("B").len(), transfers as usize);
    assert_eq!(
        client.recover(),
        vec!["open".to_string()],
        "prepared transactions survive a checkpoint"
    );
    assert_eq!(client.status().locked_accounts, vec!["A".to_string()]);
    assert_eq!(
        client.commit("t0"),
        Decision::Commit,
        "old outcomes are remembered across checkpoints"
    );
    assert_eq!(client.commit("open"), Decision::Commit);
    assert_eq!(client.balance("A"), 100_000 - 10 * transfers as i64 - 1);
}

/// Checkpoints are written beside the log while transactions go on, and
/// installed when done: a `kill -9` at any moment (here: right after the
/// last ack, while one is often still being written) must leave one whole
/// log. Tiny checkpoints make one start every few transfers.
#[test]
fn kill_9_while_checkpoints_are_written_loses_nothing() {
    let (_dir, data) = temp();
    let spec = spec().arg("--log-checkpoint-bytes").arg("768");
    let mut node = Node::start(&spec, &data);
    let mut committed = 0i64;
    for round in 0..6 {
        let mut client = node.client();
        for i in 0..30 {
            let tx = format!("r{round}-t{i}");
            client.transfer(&tx, (round * 100 + i + 1) as u64, &[("A", -10), ("B", 10)]);
            committed += 1;
        }
        assert!(
            node.stderr().contains("log rewritten as a checkpoint"),
            "round {round}: checkpoints happened: {}",
            node.stderr()
        );
        node.kill9();
        node = node.restart();
        let mut client = node.client();
        assert_eq!(
            (client.balance("A"), client.balance("B")),
            (100_000 - 10 * committed, 10 * committed),
            "round {round}"
        );
        assert_eq!(client.ledger("B").len() as i64, committed, "round {round}");
        assert!(
            client.recover().is_empty(),
            "round {round}: nothing in doubt"
        );
    }
}
