//! Unit tests of the coordinator state machine, without any I/O: inputs go
//! in, actions come out, and the tests look at them.

use std::collections::BTreeMap;

use shared::api::{Outcome, TransferRequest, TransferResponse};
use shared::events::{EventKind, COORDINATOR};
use shared::protocol::coordinator::{
    Action, ClientId, Coordinator, CoordinatorConfig, DemoFaults, Input, TransferError,
};
use shared::protocol::record::CoordinatorRecord;
use shared::wire::{AbortReason, Decision, Reply, Request, Vote};

const N1: &str = "6001";
const N2: &str = "6002";

fn config() -> CoordinatorConfig {
    let accounts: BTreeMap<String, String> = [("A", N1), ("A2", N1), ("B", N2)]
        .iter()
        .map(|(a, n)| (a.to_string(), n.to_string()))
        .collect();
    let mut c = CoordinatorConfig::new(vec![N1.into(), N2.into()], accounts);
    c.prepare_timeout_us = 3_000;
    c.ack_wait_us = 3_000;
    c.commit_retry_us = 500;
    c.in_doubt_sweep_us = 1_000_000;
    c
}

/// A coordinator plus its simulated log, with every node connected.
struct Harness {
    c: Coordinator,
    now_us: u64,
    /// Every record appended, with its seq.
    log: Vec<(u64, CoordinatorRecord)>,
    durable_seq: u64,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(config())
    }

    fn with_config(config: CoordinatorConfig) -> Harness {
        let mut h = Harness::restarted(config, &[], 1_000);
        for node in [N1, N2] {
            h.run(Input::NodeUp { node: node.into() });
            h.reconcile(node);
        }
        h
    }

    /// A coordinator (re)started from `records`: a new epoch, durable
    /// before anything else; no node connected yet.
    fn restarted(config: CoordinatorConfig, records: &[CoordinatorRecord], now_us: u64) -> Harness {
        let mut c = Coordinator::recover(config, records);
        let epoch = c.begin_epoch("c1".into());
        let mut log: Vec<(u64, CoordinatorRecord)> =
            records.iter().map(|r| (0, r.clone())).collect();
        log.push((0, epoch));
        Harness {
            c,
            now_us,
            log,
            durable_seq: 0,
        }
    }

    /// `node` answers the recovery query of its connection: nothing in doubt.
    fn reconcile(&mut self, node: &str) -> Vec<Action> {
        self.run(Input::FromNode {
            node: node.into(),
            msg: Reply::InDoubt { tx_ids: vec![] },
        })
    }

    fn run(&mut self, input: Input) -> Vec<Action> {
        let actions = self.c.handle(self.now_us, input);
        for a in &actions {
            if let Action::Persist { seq, record, .. } = a {
                self.log.push((*seq, record.clone()));
            }
            if let Action::Send {
                msg: Request::Commit { tx_id },
                ..
            } = a
            {
                assert!(
                    self.commit_durable(tx_id),
                    "commit for {tx_id} sent before its COMMIT record was durable"
                );
            }
        }
        actions
    }

    fn commit_durable(&self, tx_id: &str) -> bool {
        self.log.iter().any(|(seq, r)| {
            *seq <= self.durable_seq
                && matches!(r, CoordinatorRecord::Commit { tx_id: t, .. } if t == tx_id)
        })
    }

    /// Makes every appended record durable.
    fn fsync(&mut self) -> Vec<Action> {
        let Some(seq) = self.log.last().map(|(s, _)| *s) else {
            return Vec::new();
        };
        self.durable_seq = seq;
        self.run(Input::Durable { seq })
    }

    fn transfer(
        &mut self,
        client: ClientId,
        from: &str,
        to: &str,
        amount_cents: i64,
        tx_id: &str,
    ) -> Vec<Action> {
        let request = TransferRequest {
            from: from.into(),
            to: to.into(),
            amount_cents,
            tx_id: Some(tx_id.into()),
        };
        self.run(Input::Transfer { client, request })
    }

    fn vote(
        &mut self,
        node: &str,
        tx_id: &str,
        vote: Vote,
        reason: Option<AbortReason>,
    ) -> Vec<Action> {
        self.run(Input::FromNode {
            node: node.into(),
            msg: Reply::Vote {
                tx_id: tx_id.into(),
                vote,
                reason,
            },
        })
    }

    fn ack(&mut self, node: &str, tx_id: &str, decision: Decision) -> Vec<Action> {
        self.run(Input::FromNode {
            node: node.into(),
            msg: Reply::Ack {
                tx_id: tx_id.into(),
                decision,
            },
        })
    }

    fn one_phase_outcome(
        &mut self,
        node: &str,
        tx_id: &str,
        decision: Decision,
        reason: Option<AbortReason>,
    ) -> Vec<Action> {
        self.run(Input::FromNode {
            node: node.into(),
            msg: Reply::Outcome {
                tx_id: tx_id.into(),
                decision,
                reason,
            },
        })
    }

    fn applied(&mut self, node: &str, tx_id: &str) -> Vec<Action> {
        self.run(Input::FromNode {
            node: node.into(),
            msg: Reply::Applied {
                tx_id: tx_id.into(),
            },
        })
    }

    fn advance(&mut self, us: u64) -> Vec<Action> {
        self.now_us += us;
        self.run(Input::Tick)
    }

    fn durable_records(&self) -> Vec<CoordinatorRecord> {
        self.log
            .iter()
            .filter(|(s, _)| *s <= self.durable_seq)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

fn sends(actions: &[Action]) -> Vec<(String, Request)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { node, msg } => Some((node.clone(), msg.clone())),
            _ => None,
        })
        .collect()
}

fn replies(actions: &[Action]) -> Vec<(ClientId, Result<TransferResponse, TransferError>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Reply { client, result } => Some((*client, result.clone())),
            _ => None,
        })
        .collect()
}

fn outcome_of(actions: &[Action], client: ClientId) -> Option<(Outcome, Option<AbortReason>)> {
    replies(actions)
        .into_iter()
        .find(|(c, _)| *c == client)
        .and_then(|(_, r)| r.ok())
        .map(|r| (r.outcome, r.reason))
}

fn commit(tx: &str) -> Request {
    Request::Commit { tx_id: tx.into() }
}
fn rollback(tx: &str) -> Request {
    Request::Rollback { tx_id: tx.into() }
}

/// The one-phase commit of `amount_cents` from A to A2 (both on N1) that
/// the first incarnation sends as its first transfer.
fn one_phase(tx: &str, amount_cents: i64) -> Request {
    let op = |account: &str, delta_cents| shared::wire::Op {
        account: account.into(),
        delta_cents,
    };
    Request::CommitOnePhase {
        tx_id: tx.into(),
        ts_us: 1_000,
        epoch: 1,
        ops: vec![op("A", -amount_cents), op("A2", amount_cents)],
    }
}

// ----- one-phase commit -----

#[test]
fn one_phase_node_down_after_send_is_resolved_not_presumed_aborted() {
    // The node decides a one-phase transfer alone and may have committed it
    // before its connection broke: the coordinator must ask, never guess.
    let mut h = Harness::new();
    let a = h.transfer(1, "A", "A2", 100, "t1");
    assert!(matches!(&sends(&a)[..], [(n, Request::CommitOnePhase { .. })] if n == N1));
    let a = h.run(Input::NodeDown { node: N1.into() });
    assert!(
        outcome_of(&a, 1).is_none(),
        "client told {:?} while the node may have committed",
        replies(&a)
    );
    // The node comes back: the coordinator asks again with the same
    // one-phase commit (its identity); the node's outcome says commit.
    let a = h.run(Input::NodeUp { node: N1.into() });
    assert!(
        sends(&a).contains(&(N1.into(), one_phase("t1", 100))),
        "{:?}",
        sends(&a)
    );
    h.one_phase_outcome(N1, "t1", Decision::Commit, None);
    let a = h.fsync();
    assert_eq!(outcome_of(&a, 1), Some((Outcome::Committed, None)));
}

/// What a node that committed another transfer under "t1" (a client
/// re-used the id after the coordinator lost its record) answers a
/// `rollback` for t1: an ack of its commit. The coordinator asks what
/// became of a one-phase transfer with the transfer itself, never with a
/// bare `rollback` whose ack cannot say which transfer it is about.
#[test]
fn a_one_phase_transfer_is_never_settled_by_an_ack_about_another_transfer() {
    let mut h = Harness::new();
    h.transfer(1, "A", "A2", 100, "t1");
    // No answer within the prepare timeout: the coordinator asks.
    let a = h.advance(config().prepare_timeout_us);
    assert!(
        sends(&a).contains(&(N1.into(), one_phase("t1", 100))),
        "{a:?}"
    );
    assert!(!sends(&a).contains(&(N1.into(), rollback("t1"))), "{a:?}");
    let a = h.ack(N1, "t1", Decision::Commit);
    assert!(replies(&a).is_empty(), "settled by a bare ack: {a:?}");
    // N2 holds a stale attempt of t1 in doubt: it is rolled back, and its
    // ack says nothing about the one-phase transfer on N1 either.
    let a = h.run(Input::FromNode {
        node: N2.into(),
        msg: Reply::InDoubt {
            tx_ids: vec!["t1".into()],
        },
    });
    assert!(sends(&a).contains(&(N2.into(), rollback("t1"))), "{a:?}");
    let a = h.ack(N2, "t1", Decision::Abort);
    assert!(
        replies(&a).is_empty(),
        "settled by another node's ack: {a:?}"
    );
    // N1's own answer about this transfer settles it.
    let a = h.one_phase_outcome(N1, "t1", Decision::Abort, Some(AbortReason::ProtocolError));
    assert!(replies(&a).is_empty(), "answered before durable: {a:?}");
    let a = h.fsync();
    assert_eq!(
        outcome_of(&a, 1),
        Some((Outcome::Aborted, Some(AbortReason::ProtocolError)))
    );
}

#[test]
fn retried_one_phase_after_coordinator_crash_is_never_reported_aborted_unasked() {
    // t1 runs one-phase; the node commits it, but the coordinator crashes
    // before hearing so (its FINISHED record for a one-phase transfer is
    // not forced). The client retries t1 while the node is unreachable: the
    // coordinator must not answer "aborted" (the money moved); it does not
    // know, so it says "unavailable, retry".
    let mut h = Harness::new();
    h.transfer(1, "A", "A2", 100, "t1");
    let mut h2 = Harness::restarted(config(), &h.durable_records(), h.now_us);
    h2.run(Input::NodeUp { node: N2.into() });
    h2.reconcile(N2);
    let a = h2.transfer(2, "A", "A2", 100, "t1");
    assert!(
        outcome_of(&a, 2).is_none(),
        "told {:?} without asking the node",
        replies(&a)
    );
    assert!(
        matches!(&replies(&a)[..], [(2, Err(TransferError::Unavailable(_)))]),
        "{:?}",
        replies(&a)
    );
    // Once the node is back, the retry asks it, and its memory answers.
    h2.run(Input::NodeUp { node: N1.into() });
    h2.reconcile(N1);
    let a = h2.transfer(3, "A", "A2", 100, "t1");
    assert!(matches!(&sends(&a)[..], [(n, Request::CommitOnePhase { .. })] if n == N1));
    h2.run(Input::FromNode {
        node: N1.into(),
        msg: Reply::Outcome {
            tx_id: "t1".into(),
            decision: Decision::Commit,
            reason: None,
        },
    });
    let a = h2.fsync();
    assert_eq!(outcome_of(&a, 3), Some((Outcome::Committed, None)));
}

fn commit_record(tx: &str) -> CoordinatorRecord {
    CoordinatorRecord::Commit {
        tx_id: tx.into(),
        ts_us: 7,
        request: TransferRequest {
            from: "A".into(),
            to: "B".into(),
            amount_cents: 100,
            tx_id: Some(tx.into()),
        },
        legs: vec![
            shared::api::Leg {
                node: N1.into(),
                ops: vec![shared::wire::Op {
                    account: "A".into(),
                    delta_cents: -100,
                }],
            },
            shared::api::Leg {
                node: N2.into(),
                ops: vec![shared::wire::Op {
                    account: "B".into(),
                    delta_cents: 100,
                }],
            },
        ],
    }
}

#[test]
fn recovered_commit_is_resent_until_acknowledged_even_if_messages_are_lost() {
    // After a restart the coordinator re-sends logged commits on connect;
    // if those are lost it must keep retrying, not wait for a reconnect.
    let mut h = Harness::restarted(config(), &[commit_record("t1")], 1_000);
    let a = h.run(Input::NodeUp { node: N1.into() });
    assert!(sends(&a).contains(&(N1.into(), commit("t1"))));
    let a = h.run(Input::NodeUp { node: N2.into() });
    assert!(sends(&a).contains(&(N2.into(), commit("t1"))));
    h.ack(N1, "t1", Decision::Commit);
    // The commit to N2 (or its ack) is lost. Time passes: it is re-sent.
    let mut resent = false;
    for _ in 0..10 {
        let a = h.advance(config().commit_retry_us);
        resent |= sends(&a).contains(&(N2.into(), commit("t1")));
    }
    assert!(
        resent,
        "a recovered commit was never re-sent after its message was lost"
    );
    let a = h.ack(N2, "t1", Decision::Commit);
    assert!(a.iter().any(|x| matches!(
        x,
        Action::Persist {
            record: CoordinatorRecord::End { .. },
            ..
        }
    )));
    assert_eq!(h.c.active_count(), 0);
}

#[test]
fn a_tx_id_answered_by_presumed_abort_is_not_run_again() {
    // t1 was prepared everywhere when the coordinator crashed. The restarted
    // coordinator has no record, so it answers a node's in-doubt report with
    // rollback (presumed abort). If the client's retry of t1 then started a
    // new attempt, that rollback, arriving late, would abort the node's
    // prepared state *after* it voted ready for the new attempt, while the
    // other node commits. The retry must get the presumed answer: aborted.
    let mut h = Harness::new();
    let a = h.run(Input::FromNode {
        node: N2.into(),
        msg: Reply::InDoubt {
            tx_ids: vec!["t1".into()],
        },
    });
    assert!(sends(&a).contains(&(N2.into(), rollback("t1"))));
    let a = h.transfer(1, "A", "B", 100, "t1");
    assert!(
        sends(&a)
            .iter()
            .all(|(_, m)| !matches!(m, Request::Prepare { .. })),
        "ran t1 again: {:?}",
        sends(&a)
    );
    // The answer waits for its forced PRESUMED ABORT record.
    assert!(replies(&a).is_empty(), "answered before durable: {a:?}");
    let a = h.fsync();
    assert_eq!(outcome_of(&a, 1).map(|o| o.0), Some(Outcome::Aborted));
    // And the same answer again, also from a body that differs (the log
    // never knew t1's transfer, so any retry of t1 gets its outcome).
    let a = h.transfer(2, "B", "A", 7, "t1");
    assert_eq!(outcome_of(&a, 2).map(|o| o.0), Some(Outcome::Aborted));
}

/// A presumed abort is about an attempt a node held in doubt, which is
/// always a two-phase one. A one-phase transfer under that id is another
/// transfer (its node may even have committed it, unknown to this log, if
/// a client re-used the id): it is a conflict, never told "aborted".
#[test]
fn a_presumed_abort_never_answers_for_a_one_phase_transfer_under_the_same_id() {
    let mut h = Harness::new();
    h.run(Input::FromNode {
        node: N2.into(),
        msg: Reply::InDoubt {
            tx_ids: vec!["t1".into()],
        },
    });
    h.fsync();
    let a = h.transfer(1, "A", "A2", 100, "t1");
    assert!(sends(&a).is_empty(), "ran t1 again: {a:?}");
    assert!(
        matches!(&replies(&a)[..], [(1, Err(TransferError::Conflict(_)))]),
        "{a:?}"
    );
    // A two-phase transfer under it gets the presumed outcome.
    let a = h.transfer(2, "A", "B", 100, "t1");
    assert_eq!(outcome_of(&a, 2).map(|o| o.0), Some(Outcome::Aborted));
}

/// A client must never see two outcomes for one tx_id: an "aborted
/// (presumed abort)" answer is durable before it is given, so a coordinator
/// that crashes again still says "aborted", and never runs the id again.
#[test]
fn a_presumed_abort_answer_survives_another_crash() {
    let mut h = Harness::new();
    h.run(Input::FromNode {
        node: N2.into(),
        msg: Reply::InDoubt {
            tx_ids: vec!["t1".into()],
        },
    });
    let forced = h
        .log
        .iter()
        .any(|(_, r)| matches!(r, CoordinatorRecord::PresumedAbort { tx_id } if tx_id == "t1"));
    assert!(forced, "no PRESUMED ABORT record: {:?}", h.log);
    h.transfer(1, "A", "B", 100, "t1");
    let a = h.fsync();
    assert_eq!(outcome_of(&a, 1).map(|o| o.0), Some(Outcome::Aborted));
    // Crash; the next incarnation hears nothing in doubt (N2 rolled back).
    let mut h2 = Harness::restarted(config(), &h.durable_records(), h.now_us);
    for node in [N1, N2] {
        h2.run(Input::NodeUp { node: node.into() });
        h2.reconcile(node);
    }
    let a = h2.transfer(2, "A", "B", 100, "t1");
    assert!(sends(&a).is_empty(), "t1 ran again: {a:?}");
    assert_eq!(outcome_of(&a, 2).map(|o| o.0), Some(Outcome::Aborted));
    // Through a checkpoint too.
    let (_, cp) = h2.c.checkpoint();
    let mut h3 = Harness::restarted(config(), &[cp], h.now_us);
    for node in [N1, N2] {
        h3.run(Input::NodeUp { node: node.into() });
        h3.reconcile(node);
    }
    let a = h3.transfer(3, "A", "B", 100, "t1");
    assert_eq!(outcome_of(&a, 3).map(|o| o.0), Some(Outcome::Aborted));
}

/// A restarted coordinator does not start a client's tx_id it does not
/// know while a node that may hold an earlier attempt of it has not
/// reported its in-doubt transactions (503, retry); generated ids are
/// unique across restarts however the clock moves.
#[test]
fn a_restarted_coordinator_waits_for_every_reachable_node_before_running_a_clients_id() {
    let h = Harness::new();
    let mut h2 = Harness::restarted(config(), &h.durable_records(), 5);
    h2.run(Input::NodeUp { node: N1.into() });
    h2.run(Input::NodeUp { node: N2.into() });
    h2.reconcile(N2);
    let a = h2.transfer(1, "A", "B", 100, "dup-1");
    assert!(
        matches!(&replies(&a)[..], [(1, Err(TransferError::Unavailable(m)))] if m.contains(N1)),
        "{a:?}"
    );
    assert!(sends(&a).is_empty());
    // An id of its own needs no wait: nobody else can have used it.
    let request = TransferRequest {
        from: "A".into(),
        to: "B".into(),
        amount_cents: 1,
        tx_id: None,
    };
    let a = h2.run(Input::Transfer { client: 2, request });
    let prepared: Vec<&Request> = a
        .iter()
        .filter_map(|x| match x {
            Action::Send { msg, .. } => Some(msg),
            _ => None,
        })
        .collect();
    assert_eq!(prepared.len(), 2, "{a:?}");
    for msg in prepared {
        assert!(
            matches!(msg, Request::Prepare { tx_id, epoch: 2, .. } if tx_id == "tx-2-1"),
            "{msg:?}"
        );
    }
    // Once N1 has reported, the client's id runs, under this epoch.
    h2.reconcile(N1);
    let a = h2.transfer(3, "A", "B", 100, "dup-1");
    assert!(
        sends(&a)
            .iter()
            .all(|(_, m)| matches!(m, Request::Prepare { epoch: 2, .. })),
        "{a:?}"
    );
    assert_eq!(sends(&a).len(), 2);
}

/// A node that reports in doubt a tx_id this log decided, though it is not
/// a leg of that transaction (or every leg acked it), holds a stale
/// attempt: it is rolled back, never committed.
#[test]
fn a_stale_attempt_reported_in_doubt_is_rolled_back_not_committed() {
    // "dup" ran A2 -> A (one phase on N1) and committed; N2 reports dup in
    // doubt: an earlier attempt of another transfer under the same id.
    let mut h = Harness::new();
    h.transfer(1, "A2", "A", 5, "dup");
    h.run(Input::FromNode {
        node: N1.into(),
        msg: Reply::Outcome {
            tx_id: "dup".into(),
            decision: Decision::Commit,
            reason: None,
        },
    });
    let a = h.run(Input::FromNode {
        node: N2.into(),
        msg: Reply::InDoubt {
            tx_ids: vec!["dup".into()],
        },
    });
    assert!(sends(&a).contains(&(N2.into(), rollback("dup"))), "{a:?}");
    // A two-phase transaction committing on N1 and N2: a leg in doubt is
    // told commit.
    let mut h = committing("c");
    let a = h.run(Input::FromNode {
        node: N2.into(),
        msg: Reply::InDoubt {
            tx_ids: vec!["c".into()],
        },
    });
    assert!(sends(&a).contains(&(N2.into(), commit("c"))), "{a:?}");
}

fn in_doubt_reports(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Emit(shared::events::EventKind::InDoubtReported { .. })
            )
        })
        .count()
}

#[test]
fn in_doubt_reports_are_shown_for_recovery_queries_and_resolutions_only() {
    let mut h = Harness::new();
    // The nodes answer the recovery query of their connection: nothing.
    for node in [N1, N2] {
        let a = h.run(Input::FromNode {
            node: node.into(),
            msg: Reply::InDoubt { tx_ids: vec![] },
        });
        assert_eq!(in_doubt_reports(&a), 0, "an empty answer shows nothing");
    }
    // A transaction paused in step mode after its votes: its nodes report
    // it in doubt at every sweep, and the coordinator rightly waits.
    h.c.set_faults(DemoFaults {
        crash_at: None,
        phase_pause_us: 10_000_000,
    });
    h.transfer(1, "A", "B", 100, "paused");
    h.vote(N1, "paused", Vote::Ready, None);
    h.vote(N2, "paused", Vote::Ready, None);
    let sweep = Input::FromNode {
        node: N1.into(),
        msg: Reply::InDoubt {
            tx_ids: vec!["paused".into()],
        },
    };
    let a = h.run(sweep.clone());
    assert_eq!(
        in_doubt_reports(&a),
        0,
        "a sweep that resolves nothing stays quiet: {a:?}"
    );
    assert!(
        sends(&a).is_empty(),
        "nothing is answered while the decision is pending: {a:?}"
    );
    // After a reconnection the answer to the recovery query is shown.
    h.run(Input::NodeDown { node: N1.into() });
    h.run(Input::NodeUp { node: N1.into() });
    let a = h.run(sweep.clone());
    assert_eq!(in_doubt_reports(&a), 1, "{a:?}");
    // An unknown transaction is resolved (presumed abort), and shown.
    let a = h.run(Input::FromNode {
        node: N2.into(),
        msg: Reply::InDoubt {
            tx_ids: vec!["ghost".into()],
        },
    });
    assert_eq!(in_doubt_reports(&a), 1, "{a:?}");
    assert!(sends(&a).contains(&(N2.into(), rollback("ghost"))));
}

#[test]
fn step_modes_pause_after_the_commit_point_is_not_cut_short_by_a_sweep() {
    let mut h = Harness::new();
    for node in [N1, N2] {
        h.reconcile(node);
    }
    h.c.set_faults(DemoFaults {
        crash_at: None,
        phase_pause_us: 10_000_000,
    });
    h.transfer(1, "A", "B", 100, "p");
    h.vote(N1, "p", Vote::Ready, None);
    h.vote(N2, "p", Vote::Ready, None);
    // The pause before the decision ends; COMMIT is written and synced.
    h.advance(10_000_001);
    h.fsync();
    assert!(h.commit_durable("p"), "the commit point is reached");
    // Paused after the commit point: a node's in-doubt report (the
    // once-a-second sweep) gets no answer yet.
    let sweep = Input::FromNode {
        node: N1.into(),
        msg: Reply::InDoubt {
            tx_ids: vec!["p".into()],
        },
    };
    let a = h.run(sweep);
    assert!(
        !sends(&a).contains(&(N1.into(), commit("p"))),
        "the pause is cut short by the sweep: {a:?}"
    );
    // When the pause ends, the commits go out to both.
    let a = h.advance(10_000_001);
    for node in [N1, N2] {
        assert!(sends(&a).contains(&(node.into(), commit("p"))), "{a:?}");
    }
}

// ----- the vote / decision matrix, duplicates, timeouts -----

/// Runs one two-node transfer with the given votes (None = no answer) and
/// returns everything the coordinator did, after making its log durable.
fn run_votes(v1: Option<Vote>, v2: Option<Vote>) -> (Harness, Vec<Action>) {
    let mut h = Harness::new();
    let mut all = h.transfer(1, "A", "B", 100, "m");
    for (node, vote) in [(N1, v1), (N2, v2)] {
        if let Some(vote) = vote {
            let reason = (vote == Vote::Abort).then_some(AbortReason::InsufficientFunds);
            all.extend(h.vote(node, "m", vote, reason));
        }
    }
    all.extend(h.advance(10_000)); // past the vote timeout
    all.extend(h.fsync());
    (h, all)
}

#[test]
fn every_vote_combination_decides_as_two_phase_commit_requires() {
    use Vote::{Abort as A, Ready as R};
    let cases = [
        (Some(R), Some(R), Outcome::Committed, None),
        (
            Some(R),
            Some(A),
            Outcome::Aborted,
            Some(AbortReason::InsufficientFunds),
        ),
        (
            Some(A),
            Some(R),
            Outcome::Aborted,
            Some(AbortReason::InsufficientFunds),
        ),
        (
            Some(A),
            Some(A),
            Outcome::Aborted,
            Some(AbortReason::InsufficientFunds),
        ),
        (Some(R), None, Outcome::Aborted, Some(AbortReason::Timeout)),
        (None, Some(R), Outcome::Aborted, Some(AbortReason::Timeout)),
        (None, None, Outcome::Aborted, Some(AbortReason::Timeout)),
    ];
    for (v1, v2, outcome, reason) in cases {
        let (mut h, mut all) = run_votes(v1, v2);
        let committed = sends(&all)
            .iter()
            .filter(|(_, m)| matches!(m, Request::Commit { .. }))
            .count();
        let rolled_back: Vec<String> = sends(&all)
            .into_iter()
            .filter(|(_, m)| matches!(m, Request::Rollback { .. }))
            .map(|(n, _)| n)
            .collect();
        match outcome {
            Outcome::Committed => {
                assert_eq!(committed, 2, "{v1:?}/{v2:?}: commit goes to both nodes");
                assert!(rolled_back.is_empty());
                assert!(
                    outcome_of(&all, 1).is_none(),
                    "committed is answered after the acks"
                );
                all.extend(h.ack(N1, "m", Decision::Commit));
                all.extend(h.ack(N2, "m", Decision::Commit));
                assert!(h
                    .durable_records()
                    .iter()
                    .any(|r| matches!(r, CoordinatorRecord::Commit { .. })));
            }
            Outcome::Aborted => {
                assert_eq!(committed, 0, "{v1:?}/{v2:?}: no commit anywhere");
                // The first abort vote decides (6001 votes first); every
                // other node is told to roll back, whatever it voted later.
                let decisive = if v1 == Some(A) {
                    Some(N1)
                } else if v2 == Some(A) {
                    Some(N2)
                } else {
                    None
                };
                for node in [N1, N2] {
                    let told = rolled_back.iter().any(|n| n == node);
                    assert_eq!(
                        told,
                        Some(node) != decisive,
                        "{v1:?}/{v2:?}: rollback to {node}"
                    );
                }
                assert!(!h
                    .durable_records()
                    .iter()
                    .any(|r| matches!(r, CoordinatorRecord::Commit { .. })));
            }
        }
        assert_eq!(
            outcome_of(&all, 1),
            Some((outcome, reason)),
            "{v1:?}/{v2:?}"
        );
    }
}

#[test]
fn an_abort_is_answered_only_once_it_is_durable_and_survives_a_crash() {
    let mut h = Harness::new();
    h.transfer(1, "A", "B", 100, "ab");
    let a = h.vote(N1, "ab", Vote::Abort, Some(AbortReason::InsufficientFunds));
    assert!(
        outcome_of(&a, 1).is_none(),
        "not answered before its record is durable: {a:?}"
    );
    let forced_abort = ("log_forced abort".to_string(), COORDINATOR.to_string());
    assert!(!events(&a).contains(&forced_abort), "{a:?}");
    // A duplicate arriving meanwhile waits too.
    let a = h.transfer(2, "A", "B", 100, "ab");
    assert!(replies(&a).is_empty(), "{a:?}");
    let a = h.fsync();
    assert_eq!(outcome_of(&a, 1).map(|o| o.0), Some(Outcome::Aborted));
    assert_eq!(outcome_of(&a, 2).map(|o| o.0), Some(Outcome::Aborted));
    // The forced ABORT record is its own event, once it is durable.
    assert_eq!(events(&a), vec![forced_abort]);
    // The coordinator crashes; the restarted one answers the retry the same way.
    let mut h2 = Harness::restarted(config(), &h.durable_records(), h.now_us);
    for node in [N1, N2] {
        h2.run(Input::NodeUp { node: node.into() });
        h2.reconcile(node);
    }
    let a = h2.transfer(3, "A", "B", 100, "ab");
    assert!(sends(&a).is_empty(), "not run again: {a:?}");
    assert_eq!(
        outcome_of(&a, 3),
        Some((Outcome::Aborted, Some(AbortReason::InsufficientFunds)))
    );
}

/// A one-phase commit is answered only once the coordinator's own record
/// of it is durable: its node refuses a re-use of the tx_id for other
/// operations (it votes abort), so a coordinator that had forgotten the
/// commit would tell a client that re-used the id "aborted", after another
/// was told "committed". With the record durable, the re-use is a conflict.
#[test]
fn a_one_phase_commit_is_answered_only_once_durable_so_a_re_used_id_conflicts() {
    let mut h = Harness::new();
    h.transfer(1, "A", "A2", 100, "one");
    let a = h.run(Input::FromNode {
        node: N1.into(),
        msg: Reply::Outcome {
            tx_id: "one".into(),
            decision: Decision::Commit,
            reason: None,
        },
    });
    assert!(
        outcome_of(&a, 1).is_none(),
        "answered before its record is durable: {a:?}"
    );
    let a = h.fsync();
    assert_eq!(outcome_of(&a, 1), Some((Outcome::Committed, None)));
    assert_eq!(
        events(&a),
        vec![("log_forced finished".to_string(), COORDINATOR.to_string())]
    );
    // The coordinator crashes; a client re-uses the id for another amount.
    let mut h2 = Harness::restarted(config(), &h.durable_records(), h.now_us);
    for node in [N1, N2] {
        h2.run(Input::NodeUp { node: node.into() });
        h2.reconcile(node);
    }
    let a = h2.transfer(2, "A", "A2", 7, "one");
    assert!(sends(&a).is_empty(), "ran the re-used id: {a:?}");
    assert!(
        matches!(&replies(&a)[..], [(2, Err(TransferError::Conflict(_)))]),
        "{a:?}"
    );
    // The same transfer again gets its first outcome.
    let a = h2.transfer(3, "A", "A2", 100, "one");
    assert_eq!(outcome_of(&a, 3).map(|o| o.0), Some(Outcome::Committed));
}

/// Client 1's transfer `tx_id` (A → B), voted ready by both nodes and
/// decided: its commits are sent.
fn committing(tx_id: &str) -> Harness {
    let mut h = Harness::new();
    h.transfer(1, "A", "B", 100, tx_id);
    h.vote(N1, tx_id, Vote::Ready, None);
    h.vote(N2, tx_id, Vote::Ready, None);
    h.fsync();
    h
}

/// The kinds of the events among `actions`, with their node.
fn events(actions: &[Action]) -> Vec<(String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(EventKind::Ack { node, .. }) => Some(("ack".into(), node.clone())),
            Action::Emit(EventKind::LogForced { node, record, .. }) => {
                Some((format!("log_forced {record}"), node.clone()))
            }
            Action::Emit(EventKind::TxFinished { .. }) => {
                Some(("tx_finished".into(), String::new()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_commit_is_answered_once_every_node_applied_it_and_forgotten_once_every_node_acked() {
    let mut h = committing("t");
    let a = h.applied(N1, "t");
    assert!(
        replies(&a).is_empty(),
        "answered before 6002 applied: {a:?}"
    );
    assert_eq!(events(&a), vec![("ack".to_string(), N1.to_string())]);
    // A duplicate `applied` changes nothing.
    let a = h.applied(N1, "t");
    assert!(replies(&a).is_empty() && events(&a).is_empty(), "{a:?}");
    let a = h.applied(N2, "t");
    assert_eq!(outcome_of(&a, 1), Some((Outcome::Committed, None)));
    assert_eq!(
        events(&a),
        vec![
            ("ack".to_string(), N2.to_string()),
            ("tx_finished".to_string(), String::new())
        ]
    );
    let ends = |h: &Harness| {
        h.log
            .iter()
            .filter(|(_, r)| matches!(r, CoordinatorRecord::End { .. }))
            .count()
    };
    assert_eq!(
        ends(&h),
        0,
        "forgotten before any node's COMMITTED was durable"
    );
    // The real acks: each shows as its node's forced COMMITTED record.
    let a = h.ack(N1, "t", Decision::Commit);
    assert_eq!(
        events(&a),
        vec![("log_forced committed".to_string(), N1.to_string())]
    );
    assert!(replies(&a).is_empty(), "answered twice: {a:?}");
    assert_eq!(ends(&h), 0, "forgotten before 6002 acked");
    // Commits are still resent to the node that has not acked.
    let a = h.advance(600);
    assert_eq!(sends(&a), vec![(N2.to_string(), commit("t"))]);
    h.ack(N2, "t", Decision::Commit);
    assert_eq!(ends(&h), 1, "END once every node acked");
}

#[test]
fn an_ack_without_applied_before_it_answers_too() {
    // A node that already had the commit (a duplicate after a restart of
    // the coordinator, or a heuristic decision that agrees) only acks.
    let mut h = committing("t");
    let a = h.ack(N1, "t", Decision::Commit);
    assert_eq!(
        events(&a),
        vec![
            ("log_forced committed".to_string(), N1.to_string()),
            ("ack".to_string(), N1.to_string())
        ]
    );
    assert!(replies(&a).is_empty());
    let a = h.applied(N2, "t");
    assert_eq!(outcome_of(&a, 1), Some((Outcome::Committed, None)));
}

#[test]
fn the_answer_names_the_nodes_that_have_not_applied_the_commit_when_the_wait_ends() {
    let mut h = committing("t");
    h.applied(N1, "t");
    let a = h.advance(3_100);
    let answered = replies(&a);
    let [(1, Ok(response))] = &answered[..] else {
        panic!("not answered after the ack wait: {a:?}")
    };
    assert_eq!(response.outcome, Outcome::Committed);
    let detail = response.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains(N2) && !detail.contains(N1),
        "the detail should name 6002 only: {detail}"
    );
}

#[test]
fn duplicate_and_stray_votes_and_acks_change_nothing() {
    let mut h = Harness::new();
    h.transfer(1, "A", "B", 100, "d");
    h.vote(N1, "d", Vote::Ready, None);
    let a = h.vote(N1, "d", Vote::Ready, None);
    assert!(
        sends(&a).is_empty() && replies(&a).is_empty(),
        "a duplicate vote does nothing: {a:?}"
    );
    // A late abort from a node that already voted ready cannot flip it.
    let a = h.vote(N1, "d", Vote::Abort, Some(AbortReason::LockConflict));
    assert!(sends(&a).is_empty(), "{a:?}");
    h.vote(N2, "d", Vote::Ready, None);
    h.fsync();
    let a = h.ack(N1, "d", Decision::Commit);
    assert!(replies(&a).is_empty());
    let a = h.ack(N1, "d", Decision::Commit);
    assert!(
        replies(&a).is_empty(),
        "a duplicate ack does not finish the transaction"
    );
    let a = h.ack(N2, "d", Decision::Commit);
    assert_eq!(outcome_of(&a, 1), Some((Outcome::Committed, None)));
    // After the end: stray messages about it, or about unknown ones, do nothing.
    for msg in [
        Reply::Ack {
            tx_id: "d".into(),
            decision: Decision::Commit,
        },
        Reply::Vote {
            tx_id: "d".into(),
            vote: Vote::Abort,
            reason: None,
        },
        Reply::Vote {
            tx_id: "zzz".into(),
            vote: Vote::Ready,
            reason: None,
        },
        Reply::Ack {
            tx_id: "zzz".into(),
            decision: Decision::Abort,
        },
    ] {
        let a = h.run(Input::FromNode {
            node: N2.into(),
            msg,
        });
        assert!(sends(&a).is_empty() && replies(&a).is_empty(), "{a:?}");
    }
}

#[test]
fn a_repeated_tx_id_attaches_or_gets_the_first_outcome_and_a_different_body_conflicts() {
    let mut h = Harness::new();
    h.transfer(1, "A", "B", 100, "same");
    let a = h.transfer(2, "A", "B", 100, "same");
    assert!(
        sends(&a).is_empty(),
        "the running transfer is not started twice: {a:?}"
    );
    let a = h.transfer(3, "A", "B", 999, "same");
    assert!(
        matches!(replies(&a)[..], [(3, Err(TransferError::Conflict(_)))]),
        "{a:?}"
    );
    h.vote(N1, "same", Vote::Ready, None);
    h.vote(N2, "same", Vote::Ready, None);
    h.fsync();
    h.ack(N1, "same", Decision::Commit);
    let a = h.ack(N2, "same", Decision::Commit);
    assert_eq!(outcome_of(&a, 1), Some((Outcome::Committed, None)));
    assert_eq!(
        outcome_of(&a, 2),
        Some((Outcome::Committed, None)),
        "the attached client gets it too"
    );
    let a = h.transfer(4, "A", "B", 100, "same");
    assert_eq!(outcome_of(&a, 4), Some((Outcome::Committed, None)));
    assert!(sends(&a).is_empty());
    let a = h.transfer(5, "B", "A", 100, "same");
    assert!(
        matches!(replies(&a)[..], [(5, Err(TransferError::Conflict(_)))]),
        "{a:?}"
    );
}

/// The remembered outcome is stored compactly (votes that are all `ready`
/// are not stored) and rebuilt when asked: a repeat must get exactly the
/// first response, apart from the detail saying it is the first outcome.
#[test]
fn a_repeated_tx_id_gets_the_first_response_field_for_field() {
    let mut h = Harness::new();
    let first_reply = |a: &[Action], client| {
        replies(a)
            .into_iter()
            .find(|(c, _)| *c == client)
            .expect("answered")
            .1
            .expect("a response")
    };
    // A commit (every vote ready).
    h.transfer(1, "A", "B", 100, "c");
    h.vote(N1, "c", Vote::Ready, None);
    h.vote(N2, "c", Vote::Ready, None);
    h.fsync();
    h.ack(N1, "c", Decision::Commit);
    let first = first_reply(&h.ack(N2, "c", Decision::Commit), 1);
    assert_eq!(
        first
            .votes
            .iter()
            .map(|v| v.node.as_str())
            .collect::<Vec<_>>(),
        [N1, N2]
    );
    // An abort with one vote of each kind.
    h.transfer(2, "A", "B", 100, "x");
    h.vote(N1, "x", Vote::Ready, None);
    let a = [
        h.vote(N2, "x", Vote::Abort, Some(AbortReason::InsufficientFunds)),
        h.fsync(),
    ]
    .concat();
    let first_abort = first_reply(&a, 2);
    assert_eq!(first_abort.votes.len(), 2);

    for (client, tx_id, first) in [(3, "c", first), (4, "x", first_abort)] {
        let again = first_reply(&h.transfer(client, "A", "B", 100, tx_id), client);
        assert!(
            again
                .detail
                .as_deref()
                .unwrap_or_default()
                .contains("first outcome"),
            "{again:?}"
        );
        let mut again_but_detail = again.clone();
        again_but_detail.detail = first.detail.clone();
        assert_eq!(again_but_detail, first, "{tx_id}");
    }
}

/// The checkpoint is encoded from borrowed parts (no copy of a million
/// outcomes); it must be byte for byte the record the owned form encodes,
/// and recover the same machine.
#[test]
fn the_encoded_checkpoint_is_the_checkpoint_record() {
    let mut h = Harness::new();
    h.transfer(1, "A", "B", 100, "committed");
    h.vote(N1, "committed", Vote::Ready, None);
    h.vote(N2, "committed", Vote::Ready, None);
    h.fsync();
    h.ack(N1, "committed", Decision::Commit);
    h.ack(N2, "committed", Decision::Commit);
    h.transfer(2, "A", "B", 100, "aborted");
    h.vote(N1, "aborted", Vote::Abort, Some(AbortReason::LockConflict));
    h.transfer(3, "A", "B", 100, "pending");
    h.vote(N1, "pending", Vote::Ready, None);
    h.vote(N2, "pending", Vote::Ready, None);
    h.fsync(); // committing: waits for its acks
    let (_, owned) = h.c.checkpoint();
    let (_, encoded) = h.c.checkpoint_encoded();
    assert_eq!(encoded.clone(), owned.encode());
    // A snapshot taken now and encoded after more has happened (on another
    // thread, as the engine does) gives the same bytes.
    let (_, snapshot) = h.c.checkpoint_snapshot();
    h.ack(N1, "pending", Decision::Commit);
    h.ack(N2, "pending", Decision::Commit);
    h.transfer(4, "A", "B", 100, "later");
    h.vote(
        N1,
        "later",
        Vote::Abort,
        Some(AbortReason::InsufficientFunds),
    );
    let (_, changed) = h.c.checkpoint_encoded();
    assert_ne!(changed, encoded, "the machine moved on");
    let later = std::thread::spawn(move || snapshot.encode())
        .join()
        .expect("no panic");
    assert_eq!(later, encoded.clone());
    let decoded = CoordinatorRecord::decode(&encoded).expect("decodes as a record");
    assert_eq!(decoded, owned);
    let CoordinatorRecord::Checkpoint(cp) = decoded else {
        panic!("not a checkpoint")
    };
    assert_eq!(cp.outcomes.len(), 2, "{cp:?}");
    assert_eq!(cp.pending_commits.len(), 1, "{cp:?}");
}

/// A finished transfer takes its timers with it: the next deadline is the
/// periodic in-doubt sweep again, not a vote timeout or an ack wait left to
/// fire as a no-op.
#[test]
fn a_finished_transfer_leaves_no_timers_behind() {
    let mut h = Harness::new();
    let idle = h.c.next_deadline_us();
    h.transfer(1, "A", "B", 100, "c");
    assert!(h.c.next_deadline_us() < idle, "the vote timeout is armed");
    h.vote(N1, "c", Vote::Ready, None);
    h.vote(N2, "c", Vote::Ready, None);
    h.fsync();
    h.ack(N1, "c", Decision::Commit);
    h.ack(N2, "c", Decision::Commit);
    assert_eq!(h.c.next_deadline_us(), idle, "committed: no timers left");
    h.transfer(2, "A", "B", 100, "x");
    h.vote(N1, "x", Vote::Abort, Some(AbortReason::LockConflict));
    assert_eq!(h.c.next_deadline_us(), idle, "aborted: no timers left");
}

#[test]
fn a_node_going_down_aborts_what_waits_for_its_vote_but_not_a_commit() {
    let mut h = Harness::new();
    h.transfer(1, "A", "B", 100, "w");
    let a = h.run(Input::NodeDown { node: N2.into() });
    let a = [a, h.fsync()].concat();
    assert_eq!(
        outcome_of(&a, 1),
        Some((Outcome::Aborted, Some(AbortReason::NodeUnreachable)))
    );
    // A committed transaction is never aborted by a node going away: the
    // commit is re-sent when the node is back, and the client is answered
    // after the ack wait with a detail naming the missing node.
    h.run(Input::NodeUp { node: N2.into() });
    h.transfer(2, "A", "B", 100, "c");
    h.vote(N1, "c", Vote::Ready, None);
    h.vote(N2, "c", Vote::Ready, None);
    h.fsync();
    h.ack(N1, "c", Decision::Commit);
    h.run(Input::NodeDown { node: N2.into() });
    let a = h.advance(10_000);
    let reply = replies(&a)
        .into_iter()
        .find(|(c, _)| *c == 2)
        .expect("answered after the ack wait")
        .1
        .unwrap();
    assert_eq!(reply.outcome, Outcome::Committed);
    assert!(reply.detail.unwrap_or_default().contains(N2));
    let a = h.run(Input::NodeUp { node: N2.into() });
    assert!(
        sends(&a).contains(&(N2.into(), commit("c"))),
        "re-sent on reconnect: {a:?}"
    );
    h.ack(N2, "c", Decision::Commit);
    assert!(h
        .durable_records()
        .iter()
        .any(|r| matches!(r, CoordinatorRecord::Commit { tx_id, .. } if tx_id == "c")));
}

fn finished_events(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Emit(shared::events::EventKind::TxFinished { .. })
            )
        })
        .count()
}

/// With no ack wait (`--ack-wait-ms 0`) the client is answered at the commit
/// point: once the COMMIT record is durable and the commits are sent, before
/// any ack. The acks then end the transaction (an END record) without a
/// second answer, and a retry meanwhile gets the same answer at once.
#[test]
fn with_no_ack_wait_committed_is_answered_as_the_commits_are_sent() {
    let mut c = config();
    c.ack_wait_us = 0;
    let mut h = Harness::with_config(c);
    let mut all = h.transfer(1, "A", "B", 100, "t");
    all.extend(h.vote(N1, "t", Vote::Ready, None));
    let a = h.vote(N2, "t", Vote::Ready, None);
    assert!(replies(&a).is_empty(), "not before the decision is durable");
    all.extend(a);
    // The harness checks that no commit leaves before the COMMIT record is durable.
    let a = h.fsync();
    let commits = sends(&a)
        .iter()
        .filter(|(_, m)| matches!(m, Request::Commit { .. }))
        .count();
    assert_eq!(commits, 2, "{a:?}");
    let answer = replies(&a)
        .into_iter()
        .find(|(c, _)| *c == 1)
        .expect("answered with the commits")
        .1
        .expect("a response");
    assert_eq!((answer.outcome, answer.reason), (Outcome::Committed, None));
    assert_eq!(answer.detail, None, "every node was sent its commit");
    all.extend(a);
    let a = h.transfer(2, "A", "B", 100, "t");
    assert_eq!(outcome_of(&a, 2), Some((Outcome::Committed, None)));
    assert!(sends(&a).is_empty(), "a retry does not run it again: {a:?}");
    all.extend(a);
    let a = h.advance(10_000);
    assert!(replies(&a).is_empty(), "no second answer: {a:?}");
    assert_eq!(
        sends(&a),
        vec![(N1.to_string(), commit("t")), (N2.to_string(), commit("t"))],
        "commits are re-sent until acked"
    );
    all.extend(a);
    all.extend(h.ack(N1, "t", Decision::Commit));
    let a = h.ack(N2, "t", Decision::Commit);
    assert!(replies(&a).is_empty(), "answered once: {a:?}");
    all.extend(a);
    assert!(
        h.log
            .iter()
            .any(|(_, r)| matches!(r, CoordinatorRecord::End { tx_id } if tx_id == "t")),
        "the acks end it"
    );
    assert_eq!(finished_events(&all), 1, "one tx_finished event");
}

/// With no ack wait, a node that is not connected when the decision becomes
/// durable is named in the answer: it applies the commit when it is back.
#[test]
fn with_no_ack_wait_an_unreachable_node_is_named_in_the_answer() {
    let mut c = config();
    c.ack_wait_us = 0;
    let mut h = Harness::with_config(c);
    h.transfer(1, "A", "B", 100, "u");
    h.vote(N1, "u", Vote::Ready, None);
    h.vote(N2, "u", Vote::Ready, None);
    h.run(Input::NodeDown { node: N2.into() });
    let a = h.fsync();
    assert_eq!(sends(&a), vec![(N1.to_string(), commit("u"))]);
    let answer = replies(&a)
        .into_iter()
        .find(|(c, _)| *c == 1)
        .expect("answered")
        .1
        .expect("a response");
    assert_eq!(answer.outcome, Outcome::Committed);
    let detail = answer.detail.unwrap_or_default();
    assert!(
        detail.contains(N2) && detail.contains("unreachable"),
        "{detail}"
    );
}
