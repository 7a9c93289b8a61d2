//! Hostile input, property style: random and mutated bytes through every
//! parser that faces the outside, and random (often nonsensical) protocol
//! messages through the participant and coordinator machines. Nothing may
//! panic; the machines' money invariants must hold.
//!
//! `FUZZ_CASES=1000000 cargo test --release -p shared --test fuzz_inputs`
//! runs a long campaign; `FUZZ_SEED=<n>` replays one.

use shared::api::{CoordinatorCrashRequest, FaultsUpdate, LinkFault, TransferRequest};
use shared::protocol::coordinator::{self, Coordinator, CoordinatorConfig};
use shared::protocol::participant::{self, Participant, ParticipantConfig};
use shared::wire::{
    decode_line, encode_line, Op, ParticipantCrashPoint, PeerRole, Query, Reply, Request,
};

mod common;
use common::Rng;

fn cases(default: u64) -> u64 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => (0..cases(default)).collect(),
    }
}

fn valid_lines() -> Vec<Vec<u8>> {
    let op = Op {
        account: "A".into(),
        delta_cents: -100,
    };
    let requests = [
        Request::Prepare {
            tx_id: "t1".into(),
            ts_us: 1,
            epoch: 1,
            ops: vec![op.clone()],
        },
        Request::CommitOnePhase {
            tx_id: "t2".into(),
            ts_us: 2,
            epoch: 1,
            ops: vec![op],
        },
        Request::Auth {
            role: PeerRole::Coordinator,
            cluster: "c1".into(),
            epoch: 1,
            legacy_history: false,
            nonce: "00".into(),
            proof: "11".into(),
        },
        Request::Commit { tx_id: "t1".into() },
        Request::Rollback { tx_id: "t1".into() },
        Request::Recover,
        Request::Query {
            req_id: 1,
            query: Query::Status,
        },
        Request::Query {
            req_id: 2,
            query: Query::Ledger {
                account: "A".into(),
                offset: 3,
            },
        },
        Request::ArmCrash {
            point: ParticipantCrashPoint::AfterCommitApplied,
        },
    ];
    let mut lines: Vec<Vec<u8>> = requests.iter().map(encode_line).collect();
    lines.push(br#"{"from":"A","to":"B","amount_cents":100,"tx_id":"x"}"#.to_vec());
    lines.push(br#"{"delay_ms":5,"drop":true,"duplicate":false}"#.to_vec());
    lines.push(br#"{"at":"mid_commit","restart_after_ms":10}"#.to_vec());
    lines.push(br#"{"prepare_crash_probability":0.3,"phase_pause_ms":100}"#.to_vec());
    lines
}

fn mutate(rng: &mut Rng, line: &[u8]) -> Vec<u8> {
    let mut bytes = line.to_vec();
    let tokens: [&[u8]; 12] = [
        b"\"",
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b",",
        b"null",
        b"-9223372036854775808",
        b"1e999",
        b"\\u0000",
        b"\xff",
    ];
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() as u64 + 1) as usize;
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => bytes.truncate(at),
            2 => bytes
                .splice(at..at, rng.choose(&tokens).iter().copied())
                .for_each(drop),
            3 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes
                .splice(at..at, (0..rng.below(8)).map(|_| rng.next() as u8))
                .for_each(drop),
        }
    }
    bytes
}

#[test]
fn parsers_never_panic_on_random_or_mutated_input() {
    let valid = valid_lines();
    for seed in seeds(20_000) {
        let mut rng = Rng(seed);
        let input = if rng.below(4) == 0 {
            (0..rng.below(200)).map(|_| rng.next() as u8).collect()
        } else {
            let base = rng.choose(&valid).clone();
            mutate(&mut rng, &base)
        };
        let line = input.strip_suffix(b"\n").unwrap_or(&input);
        let _ = decode_line::<Request>(line);
        let _ = decode_line::<Reply>(line);
        let _ = serde_json::from_slice::<TransferRequest>(line);
        let _ = serde_json::from_slice::<LinkFault>(line);
        let _ = serde_json::from_slice::<CoordinatorCrashRequest>(line);
        let _ = serde_json::from_slice::<FaultsUpdate>(line);
        let _ = shared::money::parse_dollars(&String::from_utf8_lossy(line));
    }
}

fn random_request(rng: &mut Rng) -> Request {
    let tx_ids = ["t1", "t2", "t3", "", "t1 ", "\u{0}"];
    let accounts = ["A", "B", "Z", ""];
    let deltas = [
        -100,
        100,
        0,
        -1,
        1,
        i64::MIN,
        i64::MAX,
        -100_000_000,
        100_000_000,
        -99_999,
    ];
    let mut ops = Vec::new();
    let most = if rng.below(10) == 0 { 40 } else { 3 };
    for _ in 0..rng.below(most) {
        ops.push(Op {
            account: rng.choose(&accounts).to_string(),
            delta_cents: *rng.choose(&deltas),
        });
    }
    let tx_id = rng.choose(&tx_ids).to_string();
    let ts = *rng.choose(&[0, 1, 2, 5, u64::MAX]);
    let epoch = *rng.choose(&[0, 1, 2, u64::MAX]);
    match rng.below(7) {
        0 => Request::Prepare {
            tx_id,
            ts_us: ts,
            epoch,
            ops,
        },
        1 => Request::CommitOnePhase {
            tx_id,
            ts_us: ts,
            epoch,
            ops,
        },
        2 => Request::Commit { tx_id },
        3 => Request::Rollback { tx_id },
        4 => Request::Recover,
        5 => Request::Query {
            req_id: rng.next(),
            query: Query::Status,
        },
        _ => Request::ArmCrash {
            point: ParticipantCrashPoint::AfterCommitApplied,
        },
    }
}

#[test]
fn the_participant_survives_any_message_sequence_and_keeps_its_invariants() {
    for seed in seeds(2_000) {
        let mut rng = Rng(seed);
        let config = ParticipantConfig {
            node: "6001".into(),
            accounts: vec![("A".into(), 100_000), ("B".into(), 50_000)],
            lock_wait_us: 1_000,
            faults_allowed: false,
            hash_seed: Default::default(),
        };
        let mut p = Participant::recover(config, &[]).expect("a fresh node recovers");
        let mut now_us = 0;
        let mut seq_persisted = 0;
        for _ in 0..60 {
            now_us += rng.below(2_000);
            let input = match rng.below(6) {
                0 => participant::Input::Durable { seq: seq_persisted },
                1 => participant::Input::Tick,
                2 => participant::Input::Connect {
                    from: rng.below(3),
                    cluster: rng.choose(&["c1", "c2"]).to_string(),
                    epoch: *rng.choose(&[0, 1, 2, u64::MAX]),
                    legacy_history: rng.below(2) == 0,
                },
                3 if rng.below(4) == 0 => participant::Input::Disconnect { from: rng.below(3) },
                _ => participant::Input::Message {
                    from: rng.below(3),
                    msg: random_request(&mut rng),
                },
            };
            for action in p.handle(now_us, input) {
                if let participant::Action::Persist { seq, .. } = action {
                    seq_persisted = seq_persisted.max(seq);
                }
            }
            let balances = p.balances();
            for b in &balances {
                assert!(
                    b.balance_cents >= 0,
                    "seed {seed}: {} went negative: {balances:?}",
                    b.id
                );
            }
        }
    }
}

#[test]
fn the_coordinator_survives_any_reply_sequence() {
    let accounts: std::collections::BTreeMap<String, String> = [
        ("A".to_string(), "6001".to_string()),
        ("B".to_string(), "6002".to_string()),
    ]
    .into();
    for seed in seeds(2_000) {
        let mut rng = Rng(seed);
        let config = CoordinatorConfig::new(vec!["6001".into(), "6002".into()], accounts.clone());
        let mut c = Coordinator::recover(config, &[]);
        c.begin_epoch("c1".into());
        let mut now_us = 1;
        for _ in 0..60 {
            now_us += rng.below(500_000);
            let node = rng.choose(&["6001", "6002", "9999"]).to_string();
            let tx_id = rng.choose(&["tx-1", "tx-2", "t1", "nope"]).to_string();
            let decision = *rng.choose(&[
                shared::wire::Decision::Commit,
                shared::wire::Decision::Abort,
            ]);
            let input = match rng.below(9) {
                0 => coordinator::Input::Transfer {
                    client: rng.next(),
                    request: TransferRequest {
                        from: rng.choose(&["A", "B", "Z"]).to_string(),
                        to: rng.choose(&["A", "B"]).to_string(),
                        amount_cents: *rng.choose(&[1, 100, 0, -5, i64::MAX, i64::MIN]),
                        tx_id: if rng.below(2) == 0 {
                            None
                        } else {
                            Some(tx_id.clone())
                        },
                    },
                },
                1 => coordinator::Input::NodeUp { node },
                2 => coordinator::Input::NodeDown { node },
                3 => coordinator::Input::Durable { seq: rng.below(20) },
                4 => coordinator::Input::Tick,
                5 => coordinator::Input::FromNode {
                    node,
                    msg: Reply::Vote {
                        tx_id,
                        vote: *rng.choose(&[shared::wire::Vote::Ready, shared::wire::Vote::Abort]),
                        reason: None,
                    },
                },
                6 => coordinator::Input::FromNode {
                    node,
                    msg: Reply::Ack { tx_id, decision },
                },
                7 => coordinator::Input::FromNode {
                    node,
                    msg: Reply::Outcome {
                        tx_id,
                        decision,
                        reason: None,
                    },
                },
                _ => coordinator::Input::FromNode {
                    node,
                    msg: Reply::InDoubt {
                        tx_ids: vec![tx_id],
                    },
                },
            };
            let _ = c.handle(now_us, input);
        }
    }
}
