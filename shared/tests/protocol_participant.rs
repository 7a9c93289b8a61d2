//! Unit tests of the participant state machine, without any I/O.

use shared::protocol::participant::{Action, Input, Participant, ParticipantConfig};
use shared::protocol::record::ParticipantRecord;
use shared::wire::{AbortReason, Decision, Op, Reply, Request, Vote};

const PEER: u64 = 1;
/// The coordinator incarnation the tests' peer speaks for.
const EPOCH: u64 = 1;
const CLUSTER: &str = "c1";

fn config() -> ParticipantConfig {
    ParticipantConfig {
        node: "6001".into(),
        accounts: vec![("A".into(), 1_000), ("B".into(), 1_000)],
        lock_wait_us: 3_000,
        faults_allowed: true,
        hash_seed: Default::default(),
    }
}

/// A participant plus its simulated log.
struct Node {
    p: Participant,
    now_us: u64,
    log: Vec<(u64, ParticipantRecord)>,
    /// Seqs of the records persisted without asking for a force.
    unforced: Vec<u64>,
    durable_seq: u64,
    /// Coordinator connections accepted, and closed (with why), in order.
    accepted: Vec<u64>,
    closed: Vec<(u64, String)>,
}

impl Node {
    fn new() -> Node {
        let init = Participant::init_record(&config());
        let mut n = Node {
            p: Participant::recover(config(), std::slice::from_ref(&init)).unwrap(),
            now_us: 0,
            log: vec![(0, init)],
            unforced: Vec::new(),
            durable_seq: 0,
            accepted: Vec::new(),
            closed: Vec::new(),
        };
        n.connect(PEER, EPOCH);
        n.fsync();
        assert_eq!(n.accepted, vec![PEER], "the test coordinator is accepted");
        n
    }

    /// A coordinator of `CLUSTER` at `epoch` connects as `peer`.
    fn connect(&mut self, peer: u64, epoch: u64) -> Vec<Reply> {
        self.run(Input::Connect {
            from: peer,
            cluster: CLUSTER.into(),
            epoch,
            legacy_history: false,
        })
    }

    /// Runs an input and checks the durability gates on what comes out.
    fn run(&mut self, input: Input) -> Vec<Reply> {
        let actions = self.p.handle(self.now_us, input);
        let mut sent = Vec::new();
        for a in actions {
            match a {
                Action::Persist { seq, record, sync } => {
                    if !sync {
                        self.unforced.push(seq);
                    }
                    self.log.push((seq, record))
                }
                Action::Send { msg, .. } => {
                    self.check_gate(&msg);
                    sent.push(msg);
                }
                Action::Crash(_) => {}
                Action::Accept { peer } => self.accepted.push(peer),
                Action::Close { peer, message } => self.closed.push((peer, message)),
            }
        }
        sent
    }

    fn check_gate(&self, msg: &Reply) {
        let durable = |want: &dyn Fn(&ParticipantRecord) -> bool| {
            self.log
                .iter()
                .any(|(seq, r)| *seq <= self.durable_seq && want(r))
        };
        match msg {
            Reply::Vote {
                tx_id,
                vote: Vote::Ready,
                ..
            } => assert!(
                durable(
                    &|r| matches!(r, ParticipantRecord::Prepared { tx_id: t, .. } | ParticipantRecord::Committed { tx_id: t, .. } if t == tx_id)
                ),
                "ready for {tx_id} before its PREPARED record was durable"
            ),
            Reply::Ack {
                tx_id,
                decision: Decision::Commit,
            }
            | Reply::Outcome {
                tx_id,
                decision: Decision::Commit,
                ..
            } => {
                assert!(
                    durable(
                        &|r| matches!(r, ParticipantRecord::Committed { tx_id: t, .. } if t == tx_id)
                    ),
                    "commit answer for {tx_id} before its COMMITTED record was durable"
                )
            }
            Reply::Applied { tx_id } => assert!(
                self.log.iter().any(
                    |(_, r)| matches!(r, ParticipantRecord::Committed { tx_id: t, .. } if t == tx_id)
                ),
                "applied {tx_id} before its COMMITTED record was even appended"
            ),
            _ => {}
        }
    }

    fn fsync(&mut self) -> Vec<Reply> {
        let seq = self.log.last().map(|(s, _)| *s).unwrap_or(0);
        self.durable_seq = seq;
        self.run(Input::Durable { seq })
    }

    fn msg(&mut self, msg: Request) -> Vec<Reply> {
        self.run(Input::Message { from: PEER, msg })
    }

    fn prepare(&mut self, tx: &str, ts: u64, account: &str, delta_cents: i64) -> Vec<Reply> {
        self.msg(Request::Prepare {
            tx_id: tx.into(),
            ts_us: ts,
            epoch: EPOCH,
            ops: vec![Op {
                account: account.into(),
                delta_cents,
            }],
        })
    }

    fn balance(&self, account: &str) -> i64 {
        self.p
            .balances()
            .into_iter()
            .find(|b| b.id == account)
            .unwrap()
            .balance_cents
    }

    fn durable_records(&self) -> Vec<ParticipantRecord> {
        self.log
            .iter()
            .filter(|(s, _)| *s <= self.durable_seq)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

fn ready(tx: &str) -> Reply {
    Reply::Vote {
        tx_id: tx.into(),
        vote: Vote::Ready,
        reason: None,
    }
}

fn ack(tx: &str, decision: Decision) -> Reply {
    Reply::Ack {
        tx_id: tx.into(),
        decision,
    }
}

#[test]
fn ready_vote_waits_for_the_prepared_record_to_be_durable() {
    let mut n = Node::new();
    assert!(
        n.prepare("t1", 1, "A", -100).is_empty(),
        "voted before the PREPARED record was durable"
    );
    assert_eq!(n.fsync(), vec![ready("t1")]);
    assert_eq!(n.p.in_doubt(0).len(), 1);
    assert_eq!(
        n.msg(Request::Commit { tx_id: "t1".into() }),
        vec![Reply::Applied { tx_id: "t1".into() }],
        "a commit is applied at once and acked only once COMMITTED is durable"
    );
    assert_eq!(n.balance("A"), 900, "applied before it is durable");
    assert_eq!(n.fsync(), vec![ack("t1", Decision::Commit)]);
    assert_eq!(n.balance("A"), 900);
}

#[test]
fn committed_is_not_forced_but_its_ack_waits_for_it() {
    let mut n = Node::new();
    n.prepare("t1", 1, "A", -100);
    n.fsync();
    n.msg(Request::Commit { tx_id: "t1".into() });
    let (seq, record) = n.log.last().cloned().expect("a COMMITTED record");
    assert!(matches!(record, ParticipantRecord::Committed { .. }));
    assert!(
        n.unforced.contains(&seq),
        "COMMITTED asked for a force: it should ride the next one"
    );
    // A duplicate commit before it is durable is answered only after it.
    assert!(
        n.msg(Request::Commit { tx_id: "t1".into() }).is_empty(),
        "re-acked before COMMITTED was durable"
    );
    // The next transaction's PREPARED is forced and carries it.
    assert!(n.prepare("t2", 2, "A", -100).is_empty());
    assert_eq!(
        n.fsync(),
        vec![
            ack("t1", Decision::Commit),
            ack("t1", Decision::Commit),
            ready("t2")
        ]
    );
}

#[test]
fn every_message_is_idempotent() {
    let mut n = Node::new();
    n.prepare("t1", 1, "A", -100);
    n.fsync();
    assert_eq!(
        n.prepare("t1", 1, "A", -100),
        vec![ready("t1")],
        "duplicate prepare"
    );
    n.msg(Request::Commit { tx_id: "t1".into() });
    n.fsync();
    for _ in 0..3 {
        assert_eq!(
            n.msg(Request::Commit { tx_id: "t1".into() }),
            vec![ack("t1", Decision::Commit)]
        );
        assert_eq!(
            n.msg(Request::Rollback { tx_id: "t1".into() }),
            vec![ack("t1", Decision::Commit)]
        );
        assert_eq!(n.prepare("t1", 1, "A", -100), vec![ready("t1")]);
    }
    assert_eq!(n.balance("A"), 900, "applied more than once");
    assert_eq!(n.p.ledger("A").unwrap().len(), 1);
}

#[test]
fn rollback_before_prepare_makes_the_late_prepare_vote_abort() {
    let mut n = Node::new();
    assert_eq!(
        n.msg(Request::Rollback { tx_id: "t1".into() }),
        vec![ack("t1", Decision::Abort)]
    );
    n.fsync();
    let votes = n.prepare("t1", 1, "A", -100);
    assert!(
        matches!(
            &votes[..],
            [Reply::Vote {
                vote: Vote::Abort,
                ..
            }]
        ),
        "{votes:?}"
    );
    assert!(n.p.locked_accounts().is_empty());
}

#[test]
fn insufficient_funds_and_unknown_accounts_vote_abort() {
    let mut n = Node::new();
    let v = n.prepare("t1", 1, "A", -5_000);
    assert_eq!(
        v,
        vec![Reply::Vote {
            tx_id: "t1".into(),
            vote: Vote::Abort,
            reason: Some(AbortReason::InsufficientFunds)
        }]
    );
    let v = n.prepare("t2", 2, "Z", 5);
    assert_eq!(
        v,
        vec![Reply::Vote {
            tx_id: "t2".into(),
            vote: Vote::Abort,
            reason: Some(AbortReason::UnknownAccount)
        }]
    );
    assert!(n.p.locked_accounts().is_empty());
}

#[test]
fn lock_waits_are_bounded_and_deadlock_free() {
    // The implemented rule (module doc): a younger transaction waits for an
    // older holder; an older one that finds a younger holder dies at once.
    // Waits only ever point at older transactions, so no cycle can form.
    let mut n = Node::new();
    n.prepare("old", 10, "A", -1);
    n.fsync();
    assert!(
        n.prepare("young", 20, "A", -1).is_empty(),
        "the younger one waits"
    );
    let v = n.prepare("older", 5, "A", -1);
    assert!(
        matches!(
            &v[..],
            [Reply::Vote {
                vote: Vote::Abort,
                reason: Some(AbortReason::LockConflict),
                ..
            }]
        ),
        "{v:?}"
    );
    // The wait is bounded: the younger one votes abort at its deadline.
    n.now_us += 3_000;
    let v = n.run(Input::Tick);
    assert!(
        matches!(
            &v[..],
            [Reply::Vote {
                vote: Vote::Abort,
                reason: Some(AbortReason::LockConflict),
                ..
            }]
        ),
        "{v:?}"
    );
    // The in-doubt holder keeps its lock however long it waits.
    n.now_us += 10_000_000;
    n.run(Input::Tick);
    assert_eq!(n.p.locked_accounts(), vec!["A".to_string()]);
    assert_eq!(
        n.p.in_doubt(n.now_us).len(),
        1,
        "a prepared transaction never aborts on its own"
    );
}

#[test]
fn waiting_transaction_is_granted_the_lock_when_the_holder_commits() {
    let mut n = Node::new();
    n.prepare("t1", 1, "A", -100);
    n.fsync();
    assert!(n.prepare("t2", 2, "A", -100).is_empty());
    n.msg(Request::Commit { tx_id: "t1".into() });
    let v = n.fsync();
    assert!(
        v.contains(&ack("t1", Decision::Commit)) && v.contains(&ready("t2")),
        "{v:?}"
    );
}

#[test]
fn one_phase_commit_answers_after_the_committed_record_is_durable() {
    let mut n = Node::new();
    let ops = vec![
        Op {
            account: "A".into(),
            delta_cents: -10,
        },
        Op {
            account: "B".into(),
            delta_cents: 10,
        },
    ];
    assert!(n
        .msg(Request::CommitOnePhase {
            tx_id: "t1".into(),
            ts_us: 1,
            epoch: EPOCH,
            ops: ops.clone()
        })
        .is_empty());
    let v = n.fsync();
    assert_eq!(
        v,
        vec![Reply::Outcome {
            tx_id: "t1".into(),
            decision: Decision::Commit,
            reason: None
        }]
    );
    // Lost outcome: the coordinator asks again with the same one-phase
    // commit; the node answers what it did, and does not do it twice.
    assert_eq!(
        n.msg(Request::CommitOnePhase {
            tx_id: "t1".into(),
            ts_us: 1,
            epoch: EPOCH,
            ops,
        }),
        vec![Reply::Outcome {
            tx_id: "t1".into(),
            decision: Decision::Commit,
            reason: None
        }]
    );
    assert_eq!((n.balance("A"), n.balance("B")), (990, 1_010));
}

#[test]
fn recovery_brings_back_in_doubt_transactions_with_their_locks() {
    let mut n = Node::new();
    n.prepare("t1", 1, "A", -100);
    n.fsync();
    n.prepare("t2", 2, "B", -50);
    n.fsync();
    n.msg(Request::Commit { tx_id: "t2".into() });
    n.fsync();
    n.prepare("t3", 3, "B", -1); // not durable: lost in the crash, never voted
    let r = Participant::recover(config(), &n.durable_records()).unwrap();
    let in_doubt: Vec<String> = r.in_doubt(0).into_iter().map(|t| t.tx_id).collect();
    assert_eq!(in_doubt, vec!["t1".to_string()]);
    assert_eq!(r.locked_accounts(), vec!["A".to_string()]);
    assert_eq!(r.balances(), n.p.balances());
    assert_eq!(r.outcome("t2"), Some(Decision::Commit));
}

/// `count` prepared transactions t0, t1, ...: committed, rolled back or
/// left in doubt, in turn.
fn node_with_mixed_outcomes(count: u64) -> Node {
    let mut n = Node::new();
    for k in 0..count {
        let tx = format!("t{k}");
        n.prepare(
            &tx,
            k + 1,
            if k % 2 == 0 { "A" } else { "B" },
            -(k as i64) - 1,
        );
        n.fsync();
        match k % 3 {
            0 => n.msg(Request::Commit { tx_id: tx }),
            1 => n.msg(Request::Rollback { tx_id: tx }),
            _ => Vec::new(), // left in doubt
        };
        n.fsync();
    }
    n
}

#[test]
fn checkpoint_then_recover_equals_full_replay() {
    let mut n = node_with_mixed_outcomes(20);
    let full = Participant::recover(config(), &n.durable_records()).unwrap();
    let (_, cp) = n.p.checkpoint();
    let compact = Participant::recover(config(), &[cp]).unwrap();
    assert_eq!(compact.balances(), full.balances());
    assert_eq!(compact.in_doubt(0), full.in_doubt(0));
    assert_eq!(compact.locked_accounts(), full.locked_accounts());
    assert_eq!(compact.ledger("A"), full.ledger("A"));
    assert_eq!(compact.ledger("B"), full.ledger("B"));
    for k in 0..20 {
        // The checkpoint also keeps volatile abort outcomes (a vote-abort is
        // never logged), so it knows at least what the replay knows.
        let replayed = full.outcome(&format!("t{k}"));
        if replayed.is_some() {
            assert_eq!(compact.outcome(&format!("t{k}")), replayed);
        }
    }
}

/// The checkpoint is encoded from borrowed parts (no copy of the ledgers
/// and outcomes); it must be byte for byte the record the owned form
/// encodes.
#[test]
fn the_encoded_checkpoint_is_the_checkpoint_record() {
    let mut n = node_with_mixed_outcomes(12);
    let (_, owned) = n.p.checkpoint();
    let (_, encoded) = n.p.checkpoint_encoded();
    assert_eq!(encoded.clone(), owned.encode());
    // A snapshot taken now and encoded after more has happened (on another
    // thread, as the driver does) gives the same bytes.
    let (_, snapshot) = n.p.checkpoint_snapshot();
    n.prepare("later", 100, "A", -1);
    n.fsync();
    n.msg(Request::Commit {
        tx_id: "later".into(),
    });
    n.fsync();
    n.msg(Request::Commit { tx_id: "t2".into() }); // t2 was in doubt
    n.fsync();
    let (_, changed) = n.p.checkpoint_encoded();
    assert_ne!(changed, encoded, "the node moved on");
    let later = std::thread::spawn(move || snapshot.encode())
        .join()
        .expect("no panic");
    assert_eq!(later, encoded.clone());
    let decoded = ParticipantRecord::decode(&encoded).expect("decodes as a record");
    assert_eq!(decoded, owned);
    let ParticipantRecord::Checkpoint(cp) = decoded else {
        panic!("not a checkpoint")
    };
    assert!(!cp.outcomes.is_empty() && !cp.prepared.is_empty(), "{cp:?}");
    assert!(
        cp.ledgers.iter().any(|(_, entries)| !entries.is_empty()),
        "{cp:?}"
    );
}

/// The durability gates as a property over many random action sequences:
/// `Node::run` asserts on every send that the record it depends on is
/// durable; here random inputs (prepares, commits, rollbacks, duplicates,
/// partial fsyncs, ticks) are thrown at it.
#[test]
fn durability_gates_hold_over_random_sequences() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for _ in 0..300 {
        let mut n = Node::new();
        for _ in 0..60 {
            let tx = format!("t{}", next(6));
            let account = if next(2) == 0 { "A" } else { "B" };
            match next(8) {
                0 | 1 => {
                    n.prepare(&tx, next(50) + 1, account, -(next(300) as i64) - 1);
                }
                2 => {
                    n.msg(Request::Commit { tx_id: tx });
                }
                3 => {
                    n.msg(Request::Rollback { tx_id: tx });
                }
                4 => {
                    let ops = vec![Op {
                        account: account.into(),
                        delta_cents: -(next(300) as i64) - 1,
                    }];
                    n.msg(Request::CommitOnePhase {
                        tx_id: tx,
                        ts_us: next(50) + 1,
                        epoch: EPOCH,
                        ops,
                    });
                }
                5 => {
                    // fsync part of the log only
                    let last = n.log.last().map(|(s, _)| *s).unwrap_or(0);
                    let seq = n.durable_seq + next(last.saturating_sub(n.durable_seq) + 1);
                    n.durable_seq = seq;
                    n.run(Input::Durable { seq });
                }
                6 => {
                    n.now_us += next(4_000);
                    n.run(Input::Tick);
                }
                _ => {
                    n.fsync();
                }
            }
            assert!(n.p.balances().iter().all(|b| b.balance_cents >= 0));
        }
    }
}

/// A node keeps at most `PARTICIPANT_LEDGER_ENTRIES_KEPT_MAX` ledger entries
/// over all its accounts: with many accounts each keeps only its newest few,
/// in the running node, after a replay, and after a checkpoint written when
/// the limit let it keep more.
#[test]
fn ledgers_are_bounded_per_node_however_many_accounts() {
    use shared::limits::{ledger_entries_kept_per_account, PARTICIPANT_LEDGER_ENTRIES_KEPT_MAX};
    let accounts = 50_000;
    let kept = ledger_entries_kept_per_account(accounts);
    assert_eq!(kept, PARTICIPANT_LEDGER_ENTRIES_KEPT_MAX / accounts);
    assert_eq!(
        ledger_entries_kept_per_account(1),
        PARTICIPANT_LEDGER_ENTRIES_KEPT_MAX
    );
    assert_eq!(
        ledger_entries_kept_per_account(0),
        PARTICIPANT_LEDGER_ENTRIES_KEPT_MAX
    );
    assert_eq!(
        ledger_entries_kept_per_account(PARTICIPANT_LEDGER_ENTRIES_KEPT_MAX * 3),
        1
    );

    let config = ParticipantConfig {
        node: "6001".into(),
        accounts: (0..accounts).map(|i| (format!("a{i}"), 1_000)).collect(),
        lock_wait_us: 3_000,
        faults_allowed: false,
        hash_seed: Default::default(),
    };
    let init = Participant::init_record(&config);
    let mut p = Participant::recover(config.clone(), std::slice::from_ref(&init)).unwrap();
    let mut log = vec![init];
    let transfers = kept + 3;
    let mut seq_max = 0;
    let connect = Input::Connect {
        from: PEER,
        cluster: CLUSTER.into(),
        epoch: EPOCH,
        legacy_history: false,
    };
    for action in p.handle(0, connect) {
        if let Action::Persist { seq, record, .. } = action {
            seq_max = seq_max.max(seq);
            log.push(record);
        }
    }
    for k in 0..transfers {
        let ops = vec![
            Op {
                account: "a0".into(),
                delta_cents: -1,
            },
            Op {
                account: "a1".into(),
                delta_cents: 1,
            },
        ];
        let msg = Request::CommitOnePhase {
            tx_id: format!("t{k}"),
            ts_us: k as u64 + 1,
            epoch: EPOCH,
            ops,
        };
        for action in p.handle(0, Input::Message { from: PEER, msg }) {
            if let Action::Persist { seq, record, .. } = action {
                seq_max = seq_max.max(seq);
                log.push(record);
            }
        }
        p.handle(0, Input::Durable { seq: seq_max });
    }
    let newest: Vec<String> = (transfers - kept..transfers)
        .map(|k| format!("t{k}"))
        .collect();
    let ids = |p: &Participant, account: &str| -> Vec<String> {
        p.ledger(account)
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.tx_id)
            .collect()
    };
    assert_eq!(ids(&p, "a0"), newest, "the newest {kept} kept");
    assert_eq!(ids(&p, "a1"), newest);
    let a0 = p.ledger("a0").unwrap_or_default();
    assert_eq!(
        a0.last().map(|e| e.balance_cents),
        Some(1_000 - transfers as i64)
    );

    let replayed = Participant::recover(config.clone(), &log).unwrap();
    assert_eq!(ids(&replayed, "a0"), newest, "replay keeps the same");

    // A checkpoint from a time the limit was larger: its newest are kept.
    let (_, cp) = p.checkpoint();
    let ParticipantRecord::Checkpoint(mut cp) = cp else {
        panic!("not a checkpoint")
    };
    for (account, entries) in cp.ledgers.iter_mut() {
        if account == "a0" {
            let mut older = entries.clone();
            for e in &mut older {
                e.tx_id = format!("old-{}", e.tx_id);
            }
            older.append(entries);
            *entries = older;
        }
    }
    let restored = Participant::recover(config, &[ParticipantRecord::Checkpoint(cp)]).unwrap();
    assert_eq!(ids(&restored, "a0"), newest);
}

// ----- identity: cluster, epoch, what a prepare is -----

fn protocol_error(tx: &str) -> Reply {
    Reply::Vote {
        tx_id: tx.into(),
        vote: Vote::Abort,
        reason: Some(AbortReason::ProtocolError),
    }
}

fn one_op(account: &str, delta_cents: i64) -> Vec<Op> {
    vec![Op {
        account: account.into(),
        delta_cents,
    }]
}

/// The audit's finding, on the state machine: a node holding `x` prepared
/// (A −100) got a second `prepare` for `x` with other operations (A −900),
/// voted `ready` on its old PREPARED, and committed the old operations.
#[test]
fn a_prepare_that_contradicts_the_prepared_state_is_refused_and_changes_nothing() {
    let mut n = Node::new();
    n.prepare("x", 1, "A", -100);
    assert_eq!(n.fsync(), vec![ready("x")]);
    assert_eq!(n.prepare("x", 2, "A", -900), vec![protocol_error("x")]);
    assert_eq!(n.fsync(), Vec::<Reply>::new(), "no late ready for either");
    // What it holds is untouched: the first attempt still commits as itself.
    n.msg(Request::Commit { tx_id: "x".into() });
    n.fsync();
    assert_eq!(n.balance("A"), 900);
    // And an exact duplicate of the first is still a duplicate.
    let mut m = Node::new();
    m.prepare("x", 1, "A", -100);
    m.fsync();
    assert_eq!(m.prepare("x", 1, "A", -100), vec![ready("x")]);
}

/// A retry of the same operations by a newer coordinator incarnation is
/// another attempt: the old PREPARED never answers for it.
#[test]
fn a_prepare_from_another_epoch_never_picks_up_a_stale_prepared_state() {
    let mut n = Node::new();
    n.prepare("x", 1, "A", -100);
    n.fsync();
    // The coordinator restarts (epoch 2) before deciding x.
    n.connect(7, 2);
    n.fsync();
    assert_eq!(n.accepted, vec![PEER, 7]);
    assert_eq!(n.closed.len(), 1, "the epoch-1 connection is closed");
    assert_eq!(n.closed[0].0, PEER);
    let votes = n.run(Input::Message {
        from: 7,
        msg: Request::Prepare {
            tx_id: "x".into(),
            ts_us: 5,
            epoch: 2,
            ops: one_op("A", -100),
        },
    });
    assert_eq!(votes, vec![protocol_error("x")]);
    // The epoch-1 connection may no longer speak at all.
    let refused = n.prepare("y", 6, "B", -1);
    assert!(
        matches!(&refused[..], [Reply::Error { message }] if message.contains("accepted coordinator")),
        "{refused:?}"
    );
}

/// A `tx_id` that committed here for some operations is taken: a prepare
/// or one-phase commit re-using it for others is refused, never answered
/// "committed"; the same operations get the remembered answer.
#[test]
fn a_committed_tx_id_reused_for_other_operations_is_refused() {
    let mut n = Node::new();
    n.prepare("x", 1, "A", -100);
    n.fsync();
    n.msg(Request::Commit { tx_id: "x".into() });
    n.fsync();
    assert_eq!(n.prepare("x", 2, "A", -900), vec![protocol_error("x")]);
    assert_eq!(n.prepare("x", 1, "A", -100), vec![ready("x")]);
    // One phase: committed once, retried with the same operations (a lost
    // answer) and with others (a re-used id).
    let both = vec![
        Op {
            account: "A".into(),
            delta_cents: -5,
        },
        Op {
            account: "B".into(),
            delta_cents: 5,
        },
    ];
    let one_phase = |ops: Vec<Op>| Request::CommitOnePhase {
        tx_id: "o".into(),
        ts_us: 9,
        epoch: EPOCH,
        ops,
    };
    n.msg(one_phase(both.clone()));
    n.fsync();
    let committed = Reply::Outcome {
        tx_id: "o".into(),
        decision: Decision::Commit,
        reason: None,
    };
    assert_eq!(n.msg(one_phase(both)), vec![committed]);
    let other = vec![
        Op {
            account: "A".into(),
            delta_cents: -500,
        },
        Op {
            account: "B".into(),
            delta_cents: 500,
        },
    ];
    assert_eq!(
        n.msg(one_phase(other.clone())),
        vec![Reply::Outcome {
            tx_id: "o".into(),
            decision: Decision::Abort,
            reason: Some(AbortReason::ProtocolError),
        }]
    );
    assert_eq!((n.balance("A"), n.balance("B")), (895, 1_005));
    // All of it survives a checkpoint and a restart.
    let (_, cp) = n.p.checkpoint();
    let mut r = Participant::recover(config(), &[cp]).unwrap();
    let connect = Input::Connect {
        from: 3,
        cluster: CLUSTER.into(),
        epoch: EPOCH,
        legacy_history: false,
    };
    assert!(r
        .handle(0, connect)
        .iter()
        .any(|a| matches!(a, Action::Accept { peer: 3 })));
    let msg = Request::Prepare {
        tx_id: "x".into(),
        ts_us: 2,
        epoch: EPOCH,
        ops: one_op("A", -900),
    };
    let sent: Vec<Action> = r.handle(0, Input::Message { from: 3, msg });
    assert!(
        sent.iter()
            .any(|a| matches!(a, Action::Send { msg, .. } if *msg == protocol_error("x"))),
        "{sent:?}"
    );
}

/// Nothing moves for a connection that is not an accepted coordinator:
/// the audit's one-connection mint (prepare + commit for $1,000,000).
#[test]
fn an_unaccepted_connection_cannot_prepare_or_commit() {
    let mut n = Node::new();
    let stranger = 99;
    let prepare = Request::Prepare {
        tx_id: "m".into(),
        ts_us: 1,
        epoch: EPOCH,
        ops: one_op("A", 100_000_000),
    };
    for msg in [
        prepare,
        Request::Commit { tx_id: "m".into() },
        Request::Recover,
    ] {
        let sent = n.run(Input::Message {
            from: stranger,
            msg,
        });
        assert!(
            matches!(&sent[..], [Reply::Error { .. }]),
            "a stranger was answered {sent:?}"
        );
    }
    n.fsync();
    assert_eq!(n.balance("A"), 1_000);
    assert!(n.p.outcome("m").is_none());
}

/// A node serves one cluster, and never an older epoch than it has seen;
/// the binding is durable before the coordinator is accepted.
#[test]
fn a_node_binds_to_its_first_cluster_and_refuses_others_and_older_epochs() {
    let mut n = Node::new();
    let bound = n
        .log
        .iter()
        .find(|(_, r)| matches!(r, ParticipantRecord::Coordinator { .. }))
        .map(|(_, r)| r.clone());
    assert_eq!(
        bound,
        Some(ParticipantRecord::Coordinator {
            cluster: Some(CLUSTER.into()),
            epoch: EPOCH,
        })
    );
    // Another cluster: closed, with a message that names both and the fix.
    n.run(Input::Connect {
        from: 5,
        cluster: "c2".into(),
        epoch: 9,
        legacy_history: false,
    });
    let (peer, message) = n.closed.last().expect("closed").clone();
    assert_eq!(peer, 5);
    assert!(
        message.contains("c1") && message.contains("c2"),
        "{message}"
    );
    assert!(message.contains("--forget-cluster"), "{message}");
    // A newer epoch of its cluster: accepted only once the record is durable.
    n.connect(6, 3);
    assert_eq!(n.accepted, vec![PEER], "not before the epoch is durable");
    n.fsync();
    assert_eq!(n.accepted, vec![PEER, 6]);
    assert_eq!(n.p.epoch(), 3);
    // The old epoch again (a stale coordinator, or a log restored from a
    // backup): refused.
    n.connect(8, 2);
    let (peer, message) = n.closed.last().expect("closed").clone();
    assert_eq!(peer, 8);
    assert!(message.contains("newer"), "{message}");
    // The binding and the epoch survive a restart.
    let r = Participant::recover(config(), &n.durable_records()).unwrap();
    assert_eq!(
        (r.cluster().map(String::as_str), r.epoch()),
        (Some(CLUSTER), 3)
    );
}

/// A newer epoch aborts what older epochs sent that has not voted (their
/// coordinator is gone); prepared ones stay in doubt for it to resolve.
#[test]
fn a_newer_epoch_aborts_unvoted_transactions_of_older_ones() {
    let mut n = Node::new();
    n.prepare("held", 2, "A", -1);
    n.fsync();
    n.prepare("waits", 3, "A", -1); // waits for A's lock
    n.connect(7, 2);
    n.fsync();
    assert_eq!(n.p.outcome("waits"), Some(Decision::Abort));
    let in_doubt: Vec<String> = n.p.in_doubt(0).into_iter().map(|t| t.tx_id).collect();
    assert_eq!(in_doubt, vec!["held".to_string()]);
}

/// A node with transactions in doubt from before cluster identities binds
/// only to a coordinator whose log holds that history; released from its
/// cluster only with nothing in doubt.
#[test]
fn legacy_in_doubt_transactions_bind_only_a_coordinator_with_legacy_history() {
    let init = Participant::init_record(&config());
    let legacy = ParticipantRecord::Prepared {
        tx_id: "old".into(),
        ts_us: 1,
        epoch: 0,
        ops: one_op("A", -10),
    };
    let mut p = Participant::recover(config(), &[init.clone(), legacy.clone()]).unwrap();
    let fresh = Input::Connect {
        from: 1,
        cluster: "new".into(),
        epoch: 1,
        legacy_history: false,
    };
    let actions = p.handle(0, fresh);
    assert!(
        matches!(&actions[..], [Action::Close { message, .. }] if message.contains("old") && message.contains("heuristic")),
        "{actions:?}"
    );
    let upgraded = Input::Connect {
        from: 2,
        cluster: "upgraded".into(),
        epoch: 1,
        legacy_history: true,
    };
    let actions = p.handle(0, upgraded);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Persist { sync: true, .. })),
        "{actions:?}"
    );
    let refusal = p.forget_cluster().unwrap_err();
    assert!(refusal.contains("old"), "{refusal}");
    // With nothing in doubt, it may be released, and then bound anew.
    let mut q = Participant::recover(config(), &[init]).unwrap();
    q.handle(
        0,
        Input::Connect {
            from: 1,
            cluster: "c1".into(),
            epoch: 4,
            legacy_history: false,
        },
    );
    assert_eq!(
        q.forget_cluster(),
        Ok(ParticipantRecord::Coordinator {
            cluster: None,
            epoch: 0,
        })
    );
    let actions = q.handle(
        0,
        Input::Connect {
            from: 2,
            cluster: "c2".into(),
            epoch: 1,
            legacy_history: false,
        },
    );
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Close { .. })),
        "{actions:?}"
    );
}
