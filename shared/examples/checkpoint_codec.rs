//! Prints what encoding and decoding a full-size checkpoint costs, in the
//! binary form the processes write and in the JSON form of older versions
//! (which recovery still reads): a node's (200,000 outcomes and ledger
//! entries over 1,000 accounts) and the coordinator's (1,000,000 outcomes).
//!
//! ```text
//! cargo run --release -p shared --features native --example checkpoint_codec
//! ```

use std::time::{Duration, Instant};

use shared::api::TransferRequest;
use shared::limits::{
    COORDINATOR_OUTCOMES_KEPT_MAX, PARTICIPANT_LEDGER_ENTRIES_KEPT_MAX,
    PARTICIPANT_OUTCOMES_KEPT_MAX,
};
use shared::protocol::record::{
    CoordinatorCheckpoint, CoordinatorRecord, ParticipantCheckpoint, ParticipantRecord,
};
use shared::wire::{Decision, LedgerEntry};

const ROUNDS: usize = 5;
const ACCOUNTS: usize = 1_000;

fn main() {
    let entries_per_account = PARTICIPANT_LEDGER_ENTRIES_KEPT_MAX / ACCOUNTS;
    let node = ParticipantRecord::Checkpoint(Box::new(ParticipantCheckpoint {
        accounts: (0..ACCOUNTS)
            .map(|a| (format!("acct-{a}"), 1_000_000))
            .collect(),
        ledgers: (0..ACCOUNTS)
            .map(|a| {
                let entries = (0..entries_per_account)
                    .map(|e| LedgerEntry {
                        tx_id: format!("bench-{a}-{e:08}"),
                        delta_cents: -1_234,
                        balance_cents: 998_766,
                    })
                    .collect();
                (format!("acct-{a}"), entries)
            })
            .collect(),
        prepared: Vec::new(),
        outcomes: (0..PARTICIPANT_OUTCOMES_KEPT_MAX)
            .map(|i| {
                (
                    format!("bench-{i:012}"),
                    Decision::Commit,
                    0x1234_5678_9abc_def0 ^ i as u64,
                )
            })
            .collect(),
        heuristics: Vec::new(),
        cluster: Some("0123456789abcdef0123456789abcdef".into()),
        epoch: 7,
    }));
    let coordinator = CoordinatorRecord::Checkpoint(Box::new(CoordinatorCheckpoint {
        identity: None,
        pending_commits: Vec::new(),
        outcomes: (0..COORDINATOR_OUTCOMES_KEPT_MAX)
            .map(|i| {
                let id = format!("bench-{i:012}");
                let request = TransferRequest {
                    from: format!("acct-{}", i % ACCOUNTS),
                    to: format!("acct-{}", ACCOUNTS + i % ACCOUNTS),
                    amount_cents: 1_234,
                    tx_id: Some(id.clone()),
                };
                (id, Some(request), Decision::Commit, None)
            })
            .collect(),
        ts_max_us: 1,
    }));
    println!("checkpoint codec, best of {ROUNDS} rounds (ms):");
    println!("{:<34} {:>8} {:>8} {:>8}", "", "MB", "encode", "decode");
    report(
        "node, binary",
        || node.encode(),
        ParticipantRecord::decode,
        |r| r.as_ref() == Ok(&node),
    );
    let ParticipantRecord::Checkpoint(node_cp) = &node else {
        unreachable!("built as a checkpoint")
    };
    report(
        "node, JSON (as older versions)",
        || serde_json::to_vec(node_cp).expect("serialises"),
        |bytes| serde_json::from_slice::<ParticipantCheckpoint>(bytes).ok(),
        |r| r.as_ref() == Some(&**node_cp),
    );
    report(
        "coordinator, binary",
        || coordinator.encode(),
        CoordinatorRecord::decode,
        |r| r.as_ref() == Ok(&coordinator),
    );
    let CoordinatorRecord::Checkpoint(coordinator_cp) = &coordinator else {
        unreachable!("built as a checkpoint")
    };
    report(
        "coordinator, JSON (as older versions)",
        || serde_json::to_vec(coordinator_cp).expect("serialises"),
        |bytes| serde_json::from_slice::<CoordinatorCheckpoint>(bytes).ok(),
        |r| r.as_ref() == Some(&**coordinator_cp),
    );
}

/// Times `encode` and `decode`, and checks the round trip (untimed).
fn report<R>(
    name: &str,
    encode: impl Fn() -> Vec<u8>,
    decode: impl Fn(&[u8]) -> R,
    same: impl Fn(&R) -> bool,
) {
    let (mut enc, mut dec, mut bytes) = (Duration::MAX, Duration::MAX, 0);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let encoded = encode();
        enc = enc.min(t.elapsed());
        bytes = encoded.len();
        let t = Instant::now();
        let decoded = decode(&encoded);
        dec = dec.min(t.elapsed());
        assert!(same(&decoded), "{name}: decodes to something else");
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name:<34} {:>8.1} {:>8.1} {:>8.1}",
        bytes as f64 / 1e6,
        ms(enc),
        ms(dec)
    );
}
