//! Heuristic decisions in the pure participant machine: an operator forces
//! the outcome of an in-doubt transaction. It must be logged (forced) before
//! it is acknowledged, applied, survive recovery and checkpoints, be
//! refused where it makes no sense, and make a later disagreeing `commit` or
//! `rollback` answer with an error that names the heuristic mismatch.

use shared::protocol::participant::{Action, Input, Participant, ParticipantConfig, PeerId};
use shared::protocol::record::ParticipantRecord;
use shared::wire::{Decision, Op, Reply, Request, Vote};

const COORDINATOR: PeerId = 1;
const OPERATOR: PeerId = 2;

fn config(faults_allowed: bool) -> ParticipantConfig {
    ParticipantConfig {
        node: "6002".into(),
        accounts: vec![("B".into(), 100_000)],
        lock_wait_us: 3_000_000,
        faults_allowed,
        hash_seed: Default::default(),
    }
}

/// A participant machine with its log, fed like the driver would, with
/// every record made durable at once unless told otherwise.
struct Node {
    machine: Participant,
    log: Vec<ParticipantRecord>,
    now_us: u64,
    auto_durable: bool,
}

impl Node {
    fn new(faults_allowed: bool) -> Node {
        let config = config(faults_allowed);
        let log = vec![Participant::init_record(&config)];
        let machine = Participant::recover(config, &log).unwrap();
        let mut node = Node {
            machine,
            log,
            now_us: 1_000,
            auto_durable: true,
        };
        node.connect();
        node
    }

    /// The test coordinator (peer `COORDINATOR`) connects and is accepted.
    fn connect(&mut self) {
        let out = self.feed(Input::Connect {
            from: COORDINATOR,
            cluster: "c1".into(),
            epoch: 1,
            legacy_history: false,
        });
        assert!(
            out.iter().any(|a| matches!(a, Action::Accept { .. })),
            "{out:?}"
        );
    }

    fn feed(&mut self, input: Input) -> Vec<Action> {
        self.now_us += 1_000;
        let actions = self.machine.handle(self.now_us, input);
        let mut out = Vec::new();
        for action in actions {
            if let Action::Persist { seq, record, .. } = &action {
                self.log.push(record.clone());
                if self.auto_durable {
                    let seq = *seq;
                    out.push(action);
                    out.extend(self.feed(Input::Durable { seq }));
                    continue;
                }
            }
            out.push(action);
        }
        out
    }

    fn send(&mut self, from: PeerId, msg: Request) -> Vec<Action> {
        self.feed(Input::Message { from, msg })
    }

    fn prepare(&mut self, tx_id: &str, delta_cents: i64) {
        let ops = vec![Op {
            account: "B".into(),
            delta_cents,
        }];
        let out = self.send(
            COORDINATOR,
            Request::Prepare {
                tx_id: tx_id.into(),
                ts_us: self.now_us,
                epoch: 1,
                ops,
            },
        );
        assert!(
            replies(&out, COORDINATOR).iter().any(|r| matches!(
                r,
                Reply::Vote {
                    vote: Vote::Ready,
                    ..
                }
            )),
            "{out:?}"
        );
    }

    fn balance(&self) -> i64 {
        self.machine.balances()[0].balance_cents
    }

    fn restart(&mut self) {
        self.machine = Participant::recover(config(true), &self.log).unwrap();
        self.connect();
    }
}

fn replies(actions: &[Action], to: PeerId) -> Vec<Reply> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to: t, msg } if *t == to => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

fn heuristic(tx_id: &str, decision: Decision) -> Request {
    Request::Heuristic {
        tx_id: tx_id.into(),
        decision,
    }
}

fn error_of(actions: &[Action], to: PeerId) -> String {
    match &replies(actions, to)[..] {
        [Reply::Error { message }] => message.clone(),
        other => panic!("expected one error, got {other:?}"),
    }
}

#[test]
fn heuristic_commit_applies_releases_locks_and_is_reported() {
    let mut node = Node::new(true);
    node.prepare("t1", 2_500);
    assert_eq!(node.machine.in_doubt(node.now_us).len(), 1);
    let out = node.send(OPERATOR, heuristic("t1", Decision::Commit));
    assert_eq!(
        replies(&out, OPERATOR),
        vec![Reply::Ack {
            tx_id: "t1".into(),
            decision: Decision::Commit
        }]
    );
    assert_eq!(node.balance(), 102_500);
    assert!(
        node.machine.in_doubt(node.now_us).is_empty(),
        "no longer in doubt"
    );
    assert!(node.machine.locked_accounts().is_empty(), "locks released");
    let reported = node.machine.heuristics();
    assert_eq!(reported.len(), 1);
    assert_eq!(
        (reported[0].tx_id.as_str(), reported[0].decision),
        ("t1", Decision::Commit)
    );
    assert_eq!(
        reported[0].ops,
        vec![Op {
            account: "B".into(),
            delta_cents: 2_500
        }]
    );
    assert_eq!(
        node.machine.ledger("B").unwrap().last().unwrap().tx_id,
        "t1"
    );
    assert!(matches!(
        node.log.last(),
        Some(ParticipantRecord::Heuristic {
            decision: Decision::Commit,
            ..
        })
    ));
}

#[test]
fn the_ack_waits_until_the_heuristic_record_is_durable() {
    let mut node = Node::new(true);
    node.prepare("t1", 100);
    node.auto_durable = false;
    let out = node.send(OPERATOR, heuristic("t1", Decision::Abort));
    let seq = out
        .iter()
        .find_map(|a| match a {
            Action::Persist {
                seq,
                record: ParticipantRecord::Heuristic { .. },
                sync: true,
            } => Some(*seq),
            _ => None,
        })
        .expect("a forced HEURISTIC record");
    assert!(
        replies(&out, OPERATOR).is_empty(),
        "no ack before the record is durable: {out:?}"
    );
    let out = node.feed(Input::Durable { seq });
    assert_eq!(
        replies(&out, OPERATOR),
        vec![Reply::Ack {
            tx_id: "t1".into(),
            decision: Decision::Abort
        }]
    );
}

#[test]
fn a_disagreeing_commit_or_rollback_names_the_heuristic_mismatch() {
    let mut node = Node::new(true);
    node.prepare("t1", 700);
    node.send(OPERATOR, heuristic("t1", Decision::Abort));
    assert_eq!(node.balance(), 100_000, "aborted: nothing applied");
    let out = node.send(COORDINATOR, Request::Commit { tx_id: "t1".into() });
    let message = error_of(&out, COORDINATOR);
    assert!(
        message.contains("heuristic mismatch")
            && message.contains("t1")
            && message.contains("6002"),
        "{message}"
    );
    assert!(
        message.contains("heuristically aborted") && message.contains("decided commit"),
        "{message}"
    );
    assert_eq!(node.balance(), 100_000, "the commit changes nothing");
    assert_eq!(
        node.machine.heuristics()[0].coordinator_decision,
        Some(Decision::Commit)
    );

    node.prepare("t2", -300);
    node.send(OPERATOR, heuristic("t2", Decision::Commit));
    let out = node.send(COORDINATOR, Request::Rollback { tx_id: "t2".into() });
    let message = error_of(&out, COORDINATOR);
    assert!(
        message.contains("heuristic mismatch") && message.contains("heuristically committed"),
        "{message}"
    );
    assert_eq!(node.balance(), 99_700, "the rollback undoes nothing");
}

#[test]
fn an_agreeing_commit_or_rollback_is_acked_as_usual() {
    let mut node = Node::new(true);
    node.prepare("t1", 700);
    node.send(OPERATOR, heuristic("t1", Decision::Commit));
    let out = node.send(COORDINATOR, Request::Commit { tx_id: "t1".into() });
    assert_eq!(
        replies(&out, COORDINATOR),
        vec![Reply::Ack {
            tx_id: "t1".into(),
            decision: Decision::Commit
        }]
    );
    assert_eq!(node.balance(), 100_700, "applied once");
    node.prepare("t2", 50);
    node.send(OPERATOR, heuristic("t2", Decision::Abort));
    let out = node.send(COORDINATOR, Request::Rollback { tx_id: "t2".into() });
    assert_eq!(
        replies(&out, COORDINATOR),
        vec![Reply::Ack {
            tx_id: "t2".into(),
            decision: Decision::Abort
        }]
    );
    // A late duplicate prepare votes as the forced outcome says.
    let ops = vec![Op {
        account: "B".into(),
        delta_cents: 50,
    }];
    let out = node.send(
        COORDINATOR,
        Request::Prepare {
            tx_id: "t2".into(),
            ts_us: 1,
            epoch: 1,
            ops,
        },
    );
    assert!(
        matches!(
            &replies(&out, COORDINATOR)[..],
            [Reply::Vote {
                vote: Vote::Abort,
                ..
            }]
        ),
        "{out:?}"
    );
}

#[test]
fn heuristics_are_refused_where_they_make_no_sense() {
    let mut node = Node::new(false);
    node.prepare("t1", 100);
    let message = error_of(
        &node.send(OPERATOR, heuristic("t1", Decision::Abort)),
        OPERATOR,
    );
    assert!(message.contains("--allow-faults"), "{message}");
    assert_eq!(
        node.machine.in_doubt(node.now_us).len(),
        1,
        "still in doubt"
    );

    let mut node = Node::new(true);
    let message = error_of(
        &node.send(OPERATOR, heuristic("nope", Decision::Abort)),
        OPERATOR,
    );
    assert!(message.contains("not in doubt"), "{message}");
    node.prepare("t1", 100);
    node.send(COORDINATOR, Request::Commit { tx_id: "t1".into() });
    let message = error_of(
        &node.send(OPERATOR, heuristic("t1", Decision::Abort)),
        OPERATOR,
    );
    assert!(
        message.contains("already committed by the protocol"),
        "{message}"
    );
    node.prepare("t2", 100);
    node.send(OPERATOR, heuristic("t2", Decision::Abort));
    let again = node.send(OPERATOR, heuristic("t2", Decision::Abort));
    assert_eq!(
        replies(&again, OPERATOR),
        vec![Reply::Ack {
            tx_id: "t2".into(),
            decision: Decision::Abort
        }],
        "idempotent"
    );
    let message = error_of(
        &node.send(OPERATOR, heuristic("t2", Decision::Commit)),
        OPERATOR,
    );
    assert!(
        message.contains("already heuristically aborted"),
        "{message}"
    );
    assert_eq!(node.machine.heuristics().len(), 1);
}

#[test]
fn heuristics_survive_recovery_and_checkpoints() {
    let mut node = Node::new(true);
    node.prepare("t1", 400);
    node.send(OPERATOR, heuristic("t1", Decision::Commit));
    node.prepare("t2", -100);
    node.send(OPERATOR, heuristic("t2", Decision::Abort));
    let before = (
        node.balance(),
        node.machine.heuristics(),
        node.machine.ledger("B"),
    );
    node.restart();
    assert_eq!(
        (
            node.balance(),
            node.machine.heuristics(),
            node.machine.ledger("B")
        ),
        before
    );
    assert!(
        node.machine.in_doubt(node.now_us).is_empty() && node.machine.locked_accounts().is_empty()
    );
    let message = error_of(
        &node.send(COORDINATOR, Request::Commit { tx_id: "t2".into() }),
        COORDINATOR,
    );
    assert!(message.contains("heuristic mismatch"), "{message}");

    let (_, checkpoint) = node.machine.checkpoint();
    node.log = vec![checkpoint];
    node.restart();
    let after: Vec<_> = node
        .machine
        .heuristics()
        .into_iter()
        .map(|h| (h.tx_id, h.decision, h.ops))
        .collect();
    let expected: Vec<_> = before
        .1
        .into_iter()
        .map(|h| (h.tx_id, h.decision, h.ops))
        .collect();
    assert_eq!(after, expected);
    assert_eq!(node.balance(), 100_400);
    let message = error_of(
        &node.send(COORDINATOR, Request::Rollback { tx_id: "t1".into() }),
        COORDINATOR,
    );
    assert!(message.contains("heuristically committed"), "{message}");
}

#[test]
fn a_heuristic_before_the_vote_is_durable_drops_the_held_vote() {
    let mut node = Node::new(true);
    node.auto_durable = false;
    let ops = vec![Op {
        account: "B".into(),
        delta_cents: 10,
    }];
    let out = node.send(
        COORDINATOR,
        Request::Prepare {
            tx_id: "t1".into(),
            ts_us: 5,
            epoch: 1,
            ops,
        },
    );
    assert!(
        replies(&out, COORDINATOR).is_empty(),
        "vote held until PREPARED is durable"
    );
    let out = node.send(OPERATOR, heuristic("t1", Decision::Abort));
    let last_seq = out
        .iter()
        .filter_map(|a| match a {
            Action::Persist { seq, .. } => Some(*seq),
            _ => None,
        })
        .max()
        .unwrap();
    let out = node.feed(Input::Durable { seq: last_seq });
    assert!(
        replies(&out, COORDINATOR).is_empty(),
        "the ready vote is never sent after a heuristic abort: {out:?}"
    );
    assert_eq!(
        replies(&out, OPERATOR),
        vec![Reply::Ack {
            tx_id: "t1".into(),
            decision: Decision::Abort
        }]
    );
}
