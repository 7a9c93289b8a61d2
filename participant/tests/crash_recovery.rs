//! `kill -9` and restart on the same data dir: prepared transactions come
//! back in doubt with their locks, and only the coordinator's decision
//! resolves them. Also the demo crash points and the data-dir lock.

mod common;

use std::os::unix::process::ExitStatusExt;

use common::{temp, Node, Spec, Started};
use shared::wire::{AbortReason, Decision, ParticipantCrashPoint, Reply, Request, Vote};

fn spec() -> Spec {
    Spec::new("6001", &[("A", 100_000), ("B", 0)])
        .arg("--lock-wait-ms")
        .arg("200")
}

/// Prepares `t1` (A -> B, 10_000), kills the node, restarts it and checks
/// that `t1` is in doubt with both locks held.
fn in_doubt_after_kill9(data: &std::path::Path) -> Node {
    let mut node = Node::start(&spec(), data);
    let mut client = node.client();
    assert_eq!(
        client.prepare("t1", 10, &[("A", -10_000), ("B", 10_000)]),
        (Vote::Ready, None)
    );
    node.kill9();

    let node = node.restart();
    let mut client = node.client();
    assert_eq!(client.recover(), vec!["t1".to_string()]);
    let status = client.status();
    assert_eq!(
        status.locked_accounts,
        vec!["A".to_string(), "B".to_string()],
        "{status:?}"
    );
    assert_eq!(status.in_doubt.len(), 1, "{status:?}");
    assert_eq!(
        client.balance("A"),
        100_000,
        "nothing applied before the decision"
    );

    // Another transaction on a locked account cannot get in: the younger one
    // waits and gives up, the older one dies at once (wait-die).
    assert_eq!(
        client.prepare("young", 20, &[("A", -1)]),
        (Vote::Abort, Some(AbortReason::LockConflict))
    );
    assert_eq!(
        client.prepare("old", 5, &[("B", 1)]),
        (Vote::Abort, Some(AbortReason::LockConflict))
    );
    assert_eq!(
        client.recover(),
        vec!["t1".to_string()],
        "still in doubt: no unilateral abort"
    );
    node
}

#[test]
fn in_doubt_transaction_survives_kill9_and_commits_exactly_once() {
    let (_dir, data) = temp();
    let mut node = in_doubt_after_kill9(&data);
    let mut client = node.client();

    assert_eq!(client.commit("t1"), Decision::Commit);
    assert_eq!(client.commit("t1"), Decision::Commit, "a duplicate commit");
    assert_eq!((client.balance("A"), client.balance("B")), (90_000, 10_000));
    assert!(client.status().locked_accounts.is_empty());
    assert!(client.recover().is_empty());

    // The commit was acked, so it is durable: another kill -9 keeps it.
    node.kill9();
    let node = node.restart();
    let mut client = node.client();
    assert_eq!((client.balance("A"), client.balance("B")), (90_000, 10_000));
    assert_eq!(
        client.ledger("A"),
        vec![("t1".to_string(), -10_000)],
        "applied exactly once"
    );
    assert_eq!(client.ledger("B"), vec![("t1".to_string(), 10_000)]);
    assert!(client.recover().is_empty());
    assert!(client.status().locked_accounts.is_empty());
    assert_eq!(
        client.commit("t1"),
        Decision::Commit,
        "a late duplicate after restart"
    );
    assert_eq!(client.balance("A"), 90_000);
}

#[test]
fn in_doubt_transaction_survives_kill9_and_rolls_back() {
    let (_dir, data) = temp();
    let node = in_doubt_after_kill9(&data);
    let mut client = node.client();

    assert_eq!(client.rollback("t1"), Decision::Abort);
    assert_eq!(
        client.rollback("t1"),
        Decision::Abort,
        "a duplicate rollback"
    );
    assert_eq!((client.balance("A"), client.balance("B")), (100_000, 0));
    assert!(client.status().locked_accounts.is_empty());
    assert!(client.recover().is_empty());
    assert!(client.ledger("A").is_empty());
    assert_eq!(
        client.prepare("t2", 30, &[("A", -1)]),
        (Vote::Ready, None),
        "the locks are free again"
    );
}

#[test]
fn armed_crash_after_prepare_logged_kills_before_the_vote() {
    let (_dir, data) = temp();
    let mut node = Node::start(&spec().arg("--allow-faults"), &data);
    let mut client = node.client();
    assert!(
        matches!(
            client.hello,
            Reply::Hello {
                faults_allowed: true,
                ..
            }
        ),
        "{:?}",
        client.hello
    );

    client.send(&Request::ArmCrash {
        point: ParticipantCrashPoint::AfterPrepareLogged,
    });
    client.send(&common::prepare("t1", 1, &[("A", -500)]));
    let before_close = client.recv_until_closed();
    assert!(
        !before_close.iter().any(|r| matches!(r, Reply::Vote { .. })),
        "no vote may be sent before the crash: {before_close:?}"
    );
    let status = node.wait_exit();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "it kills itself like kill -9: {status:?}"
    );
    assert!(
        node.stderr().contains("crash point"),
        "the crash is logged:\n{}",
        node.stderr()
    );

    let node = node.restart();
    let mut client = node.client();
    assert_eq!(
        client.recover(),
        vec!["t1".to_string()],
        "the PREPARED record was durable"
    );
    assert_eq!(
        client.prepare("t1", 1, &[("A", -500)]),
        (Vote::Ready, None),
        "the coordinator's retry gets the vote"
    );
    assert_eq!(client.commit("t1"), Decision::Commit);
    assert_eq!(client.balance("A"), 99_500);
}

#[test]
fn armed_crash_after_commit_applied_keeps_the_commit() {
    let (_dir, data) = temp();
    let mut node = Node::start(&spec().arg("--allow-faults"), &data);
    let mut client = node.client();
    assert_eq!(client.prepare("t1", 1, &[("A", -500)]), (Vote::Ready, None));
    client.send(&Request::ArmCrash {
        point: ParticipantCrashPoint::AfterCommitApplied,
    });
    client.send(&Request::Commit { tx_id: "t1".into() });
    let before_close = client.recv_until_closed();
    assert!(
        !before_close.iter().any(|r| matches!(r, Reply::Ack { .. })),
        "{before_close:?}"
    );
    assert_eq!(node.wait_exit().signal(), Some(libc::SIGKILL));

    let node = node.restart();
    let mut client = node.client();
    assert!(client.recover().is_empty());
    assert_eq!(
        client.commit("t1"),
        Decision::Commit,
        "the retried commit is acked"
    );
    assert_eq!(client.balance("A"), 99_500);
}

#[test]
fn arm_crash_is_refused_without_allow_faults() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);
    let mut client = node.client();
    assert!(matches!(
        client.hello,
        Reply::Hello {
            faults_allowed: false,
            ..
        }
    ));

    client.send(&Request::ArmCrash {
        point: ParticipantCrashPoint::AfterPrepareLogged,
    });
    let reply = client.recv().expect("a reply");
    assert!(
        matches!(&reply, Reply::Error { message } if message.contains("--allow-faults")),
        "{reply:?}"
    );
    assert_eq!(
        client.prepare("t1", 1, &[("A", -500)]),
        (Vote::Ready, None),
        "no crash"
    );
    assert_eq!(client.commit("t1"), Decision::Commit);
}

#[test]
fn a_second_process_on_the_same_data_dir_refuses_to_start() {
    let (_dir, data) = temp();
    let node = Node::start(&spec(), &data);

    match Node::try_start(&spec(), &data) {
        Started::Ready(_) => panic!("two processes opened one data dir"),
        Started::Exited { status, stderr } => {
            assert_eq!(status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains("another process holds the data directory"),
                "{stderr}"
            );
            assert!(
                stderr.contains("--data-dir"),
                "the message names the fix: {stderr}"
            );
        }
    }
    // The first one is unharmed.
    let mut client = node.client();
    assert_eq!(client.prepare("t1", 1, &[("A", -1)]), (Vote::Ready, None));
}

#[test]
fn sigterm_stops_cleanly_and_releases_the_data_dir() {
    let (_dir, data) = temp();
    let mut node = Node::start(&spec(), &data);
    let mut client = node.client();
    client.transfer("t1", 1, &[("A", -700)]);

    // SAFETY: signalling our own child by pid.
    unsafe {
        libc::kill(node.pid() as libc::pid_t, libc::SIGTERM);
    }
    let status = node.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", node.stderr());

    let node = node.restart();
    assert_eq!(node.client().balance("A"), 99_300);
}
