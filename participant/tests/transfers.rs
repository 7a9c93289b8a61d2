//! The protocol over a real socket: votes, acks, balances, ledgers, and
//! idempotency of every message.

mod common;

use common::{temp, Node, Spec};
use shared::wire::{AbortReason, Decision, Reply, Request, Vote};

fn spec() -> Spec {
    Spec::new("6001", &[("A", 100_000), ("B", 50_000)])
}

#[test]
fn hello_names_the_node_and_its_pid() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let client = node.client();
    let node_pid = node.pid();
    assert!(
        matches!(
            &client.hello,
            Reply::Hello { node, pid, faults_allowed: false, nonce }
                if node == "6001" && *pid == node_pid && nonce.len() == 32
        ),
        "{:?}",
        client.hello
    );
    // Each connection gets a fresh nonce to prove the secret against.
    let other = node.client();
    assert_ne!(other.hello, client.hello);
}

#[test]
fn prepare_then_commit_moves_money_and_writes_the_ledger() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let mut client = node.client();

    assert_eq!(
        client.prepare("t1", 1, &[("A", -10_000), ("B", 10_000)]),
        (Vote::Ready, None)
    );
    assert_eq!(
        client.status().locked_accounts,
        vec!["A".to_string(), "B".to_string()]
    );
    assert_eq!(client.commit("t1"), Decision::Commit);

    let status = client.status();
    assert_eq!(client.balance("A"), 90_000);
    assert_eq!(client.balance("B"), 60_000);
    assert!(status.locked_accounts.is_empty(), "{status:?}");
    assert!(status.in_doubt.is_empty(), "{status:?}");
    assert_eq!(client.ledger("A"), vec![("t1".to_string(), -10_000)]);
    assert_eq!(client.ledger("B"), vec![("t1".to_string(), 10_000)]);
}

#[test]
fn insufficient_funds_votes_abort_and_moves_nothing() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let mut client = node.client();

    let vote = client.prepare("t1", 1, &[("A", -100_001)]);
    assert_eq!(vote, (Vote::Abort, Some(AbortReason::InsufficientFunds)));
    let status = client.status();
    assert_eq!(client.balance("A"), 100_000);
    assert!(status.locked_accounts.is_empty(), "{status:?}");
    assert!(client.ledger("A").is_empty());
    // The rollback the coordinator then sends is acknowledged.
    assert_eq!(client.rollback("t1"), Decision::Abort);
}

#[test]
fn unknown_account_votes_abort() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let mut client = node.client();

    let vote = client.prepare("t1", 1, &[("A", -100), ("NOPE", 100)]);
    assert_eq!(vote, (Vote::Abort, Some(AbortReason::UnknownAccount)));
    assert_eq!(client.balance("A"), 100_000);
    assert!(client.status().locked_accounts.is_empty());
    match client.query(shared::wire::Query::Ledger {
        account: "NOPE".into(),
        offset: 0,
    }) {
        shared::wire::QueryResult::Error { message } => {
            assert!(message.contains("NOPE"), "{message}")
        }
        other => panic!("expected an error for an unknown ledger, got {other:?}"),
    }
}

#[test]
fn duplicate_prepare_commit_and_rollback_give_the_same_answers() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let mut client = node.client();

    assert_eq!(client.prepare("t1", 1, &[("A", -100)]), (Vote::Ready, None));
    assert_eq!(client.prepare("t1", 1, &[("A", -100)]), (Vote::Ready, None));
    assert_eq!(client.commit("t1"), Decision::Commit);
    assert_eq!(client.commit("t1"), Decision::Commit);
    assert_eq!(
        client.prepare("t1", 1, &[("A", -100)]),
        (Vote::Ready, None),
        "a late duplicate prepare"
    );
    assert_eq!(client.balance("A"), 99_900, "applied exactly once");
    assert_eq!(client.ledger("A").len(), 1);

    assert_eq!(client.prepare("t2", 2, &[("A", -100)]), (Vote::Ready, None));
    assert_eq!(client.rollback("t2"), Decision::Abort);
    assert_eq!(client.rollback("t2"), Decision::Abort);
    assert_eq!(
        client.prepare("t2", 2, &[("A", -100)]),
        (Vote::Abort, Some(AbortReason::AlreadyAborted))
    );
    // A commit for a transaction this node aborted acks what really happened.
    assert_eq!(client.commit("t2"), Decision::Abort);
    assert_eq!(client.balance("A"), 99_900);
    assert!(client.status().locked_accounts.is_empty());
}

#[test]
fn rollback_of_an_unknown_transaction_makes_a_late_prepare_vote_abort() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let mut client = node.client();

    assert_eq!(client.rollback("t9"), Decision::Abort);
    let vote = client.prepare("t9", 9, &[("A", -100)]);
    assert_eq!(vote.0, Vote::Abort, "{vote:?}");
    assert_eq!(client.balance("A"), 100_000);
    assert!(client.status().locked_accounts.is_empty());
}

#[test]
fn commit_of_a_transaction_never_prepared_is_an_error() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let mut client = node.client();

    client.send(&Request::Commit {
        tx_id: "ghost".into(),
    });
    let reply = client.recv().expect("a reply");
    assert!(
        matches!(&reply, Reply::Error { message } if message.contains("ghost")),
        "{reply:?}"
    );
    assert_eq!(client.balance("A"), 100_000);
}

#[test]
fn one_phase_commit_applies_at_once() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let mut client = node.client();

    let request = Request::CommitOnePhase {
        tx_id: "t1".into(),
        ts_us: 1,
        epoch: common::EPOCH,
        ops: common::ops_of(&[("A", -300), ("B", 300)]),
    };
    client.send(&request);
    let outcome = client.recv_where("an outcome", |r| matches!(r, Reply::Outcome { .. }));
    assert_eq!(
        outcome,
        Reply::Outcome {
            tx_id: "t1".into(),
            decision: Decision::Commit,
            reason: None
        }
    );
    client.send(&request);
    let again = client.recv_where("an outcome", |r| matches!(r, Reply::Outcome { .. }));
    assert_eq!(
        again, outcome,
        "a duplicate one-phase commit changes nothing"
    );
    assert_eq!((client.balance("A"), client.balance("B")), (99_700, 50_300));
}

#[test]
fn many_transactions_in_flight_on_one_connection() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let mut client = node.client();

    // Two transactions on different accounts, interleaved on one connection.
    client.send(&common::prepare("ta", 1, &[("A", -1)]));
    client.send(&common::prepare("tb", 2, &[("B", -2)]));
    assert_eq!(client.vote("tb"), (Vote::Ready, None));
    assert_eq!(client.vote("ta"), (Vote::Ready, None));
    client.send(&Request::Commit { tx_id: "tb".into() });
    client.send(&Request::Rollback { tx_id: "ta".into() });
    assert_eq!(client.ack("ta"), Decision::Abort);
    assert_eq!(client.ack("tb"), Decision::Commit);
    assert_eq!(
        (client.balance("A"), client.balance("B")),
        (100_000, 49_998)
    );
}

#[test]
fn a_lock_wait_is_bounded_and_ends_in_an_abort() {
    let (_dir, data) = temp();
    let node = Node::start(&spec().arg("--lock-wait-ms").arg("200"), &data);
    let mut client = node.client();

    assert_eq!(client.prepare("old", 1, &[("A", -1)]), (Vote::Ready, None));
    // Younger: waits for the lock, then gives up.
    assert_eq!(
        client.prepare("young", 2, &[("A", -1)]),
        (Vote::Abort, Some(AbortReason::LockConflict))
    );
    assert_eq!(client.commit("old"), Decision::Commit);
    assert_eq!(
        client.prepare("next", 3, &[("A", -1)]),
        (Vote::Ready, None),
        "the lock is free again"
    );
}

/// A ledger longer than one protocol line comes back in pages, complete
/// and in order.
#[test]
fn a_long_ledger_is_read_page_by_page() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let mut client = node.client();
    let count = 1_500; // about 90 KB of entries: more than one 64 KiB line
    for i in 0..count {
        client.transfer(&format!("page-{i}"), i + 1, &[("A", -1), ("B", 1)]);
    }
    let ledger = client.ledger("A");
    assert_eq!(ledger.len(), count as usize);
    for (i, (tx_id, delta)) in ledger.iter().enumerate() {
        assert_eq!((tx_id.as_str(), *delta), (format!("page-{i}").as_str(), -1));
    }
    match client.query(shared::wire::Query::Ledger {
        account: "A".into(),
        offset: 0,
    }) {
        shared::wire::QueryResult::Ledger { entries, total, .. } => {
            assert_eq!(total, count);
            assert!(
                entries.len() < count as usize,
                "the first page holds only what fits"
            );
        }
        other => panic!("expected a ledger, got {other:?}"),
    }
}
