//! The transaction fold (`shared::fold`) on the event orders the
//! coordinator produces: two-phase and one-phase commits, every kind of
//! abort, unreachable nodes, step mode, a coordinator crash and recovery in
//! the middle, in-doubt reports and their resolution, repeated events, new
//! attempts of an id, and folds resumed from a summary. (The simulation runs
//! the fold on every event of the real coordinator under faults, too.)
//!
//!   cargo test -p shared --test tx_fold

use shared::api::{ComponentStatus, Outcome, TransactionSummary, TxState, VoteView};
use shared::events::{Direction, EventKind, MessageName, COORDINATOR};
use shared::fold::{NodeKey, Phase, Span, TxFold};
use shared::limits::TX_NODES_MAX;
use shared::wire::{AbortReason, Decision};

const N1: &str = "6001";
const N2: &str = "6002";
const TX: &str = "t";

// ----- events, as the coordinator emits them -----

fn started(nodes: &[&str]) -> EventKind {
    EventKind::TxStarted {
        tx_id: TX.into(),
        from: "A".into(),
        to: "B".into(),
        amount_cents: 100,
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        one_phase: nodes.len() == 1,
    }
}

fn prepare(node: &str) -> EventKind {
    EventKind::PrepareSent {
        tx_id: TX.into(),
        node: node.into(),
    }
}

fn forced(node: &str, record: &str) -> EventKind {
    EventKind::LogForced {
        tx_id: TX.into(),
        node: node.into(),
        record: record.into(),
    }
}

/// A `ready` vote, after the PREPARED force the engine shows before it.
fn ready(node: &str) -> [EventKind; 2] {
    [
        forced(node, "prepared"),
        EventKind::Vote {
            tx_id: TX.into(),
            node: node.into(),
            vote: VoteView::Ready,
            reason: None,
        },
    ]
}

fn vote_abort(node: &str, reason: AbortReason) -> EventKind {
    EventKind::Vote {
        tx_id: TX.into(),
        node: node.into(),
        vote: VoteView::Abort,
        reason: Some(reason),
    }
}

fn decision(decision: Decision, reason: Option<AbortReason>) -> EventKind {
    EventKind::Decision {
        tx_id: TX.into(),
        decision,
        reason,
    }
}

/// The COMMIT record durable and the decision shown, as one turn emits them.
fn commit_durable() -> [EventKind; 2] {
    [
        forced(COORDINATOR, "commit"),
        decision(Decision::Commit, None),
    ]
}

fn commit_sent(node: &str) -> EventKind {
    EventKind::CommitSent {
        tx_id: TX.into(),
        node: node.into(),
    }
}

fn rollback_sent(node: &str) -> EventKind {
    EventKind::RollbackSent {
        tx_id: TX.into(),
        node: node.into(),
    }
}

fn ack(node: &str, decision: Decision) -> EventKind {
    EventKind::Ack {
        tx_id: TX.into(),
        node: node.into(),
        decision,
    }
}

fn finished(outcome: Outcome, reason: Option<AbortReason>) -> EventKind {
    EventKind::TxFinished {
        tx_id: TX.into(),
        outcome,
        reason,
        duration_ms: 2.5,
    }
}

fn ended() -> EventKind {
    EventKind::TxEnded { tx_id: TX.into() }
}

fn resolved(node: &str, decision: Decision) -> EventKind {
    EventKind::Resolved {
        tx_id: TX.into(),
        node: node.into(),
        decision,
    }
}

fn coordinator(status: ComponentStatus) -> EventKind {
    EventKind::CoordinatorStatus { status }
}

/// A node reconnecting to a recovered coordinator: its query, its report.
fn reports_in_doubt(node: &str) -> [EventKind; 2] {
    [
        EventKind::RecoveryQuery { node: node.into() },
        EventKind::InDoubtReported {
            node: node.into(),
            tx_ids: vec![TX.into()],
        },
    ]
}

/// The engine crashes and comes back from its log.
fn coordinator_restarts() -> Vec<EventKind> {
    vec![
        EventKind::Fault {
            target: COORDINATOR.into(),
            description: "coordinator crashed at mid_commit (injected)".into(),
        },
        coordinator(ComponentStatus::Down),
        coordinator(ComponentStatus::Recovering),
        coordinator(ComponentStatus::Up),
    ]
}

// ----- the scenarios: every event order the coordinator produces -----

fn scenario(parts: Vec<Vec<EventKind>>) -> Vec<EventKind> {
    parts.into_iter().flatten().collect()
}

fn two_phase_commit() -> Vec<EventKind> {
    scenario(vec![
        vec![started(&[N1, N2]), prepare(N1), prepare(N2)],
        ready(N1).into(),
        ready(N2).into(),
        commit_durable().into(),
        vec![commit_sent(N1), commit_sent(N2)],
        vec![ack(N1, Decision::Commit)],
        vec![
            ack(N2, Decision::Commit),
            finished(Outcome::Committed, None),
        ],
        vec![forced(N1, "committed")],
        vec![forced(N2, "committed"), ended()],
    ])
}

/// `--ack-wait-ms 0`: answered as the commits go out, acks later.
fn commit_answered_when_sent() -> Vec<EventKind> {
    scenario(vec![
        vec![started(&[N1, N2]), prepare(N1), prepare(N2)],
        ready(N2).into(),
        ready(N1).into(),
        commit_durable().into(),
        vec![
            commit_sent(N1),
            commit_sent(N2),
            finished(Outcome::Committed, None),
        ],
        vec![ack(N2, Decision::Commit), forced(N2, "committed")],
        vec![ack(N1, Decision::Commit), forced(N1, "committed"), ended()],
    ])
}

/// Step mode: a pause after the votes and another after the decision.
fn commit_in_step_mode() -> Vec<EventKind> {
    scenario(vec![
        vec![started(&[N1, N2]), prepare(N1), prepare(N2)],
        ready(N1).into(),
        ready(N2).into(),
        commit_durable().into(),
        vec![commit_sent(N1), commit_sent(N2)],
        vec![ack(N1, Decision::Commit), ack(N2, Decision::Commit)],
        vec![finished(Outcome::Committed, None)],
        vec![forced(N1, "committed"), forced(N2, "committed"), ended()],
    ])
}

/// Node 6002 is unreachable when the commits go out: it learns the commit
/// from its in-doubt report when it is back.
fn commit_with_a_node_away() -> Vec<EventKind> {
    scenario(vec![
        vec![started(&[N1, N2]), prepare(N1), prepare(N2)],
        ready(N1).into(),
        ready(N2).into(),
        commit_durable().into(),
        vec![commit_sent(N1)],
        vec![ack(N1, Decision::Commit), forced(N1, "committed")],
        vec![finished(Outcome::Committed, None)],
        reports_in_doubt(N2).into(),
        vec![resolved(N2, Decision::Commit)],
        vec![ack(N2, Decision::Commit)],
        vec![forced(N2, "committed"), ended()],
    ])
}

fn abort_vote() -> Vec<EventKind> {
    let why = Some(AbortReason::InsufficientFunds);
    scenario(vec![
        vec![started(&[N1, N2]), prepare(N1), prepare(N2)],
        vec![vote_abort(N1, AbortReason::InsufficientFunds)],
        vec![
            decision(Decision::Abort, why),
            rollback_sent(N2),
            finished(Outcome::Aborted, why),
        ],
        vec![ack(N2, Decision::Abort)],
    ])
}

fn vote_timeout() -> Vec<EventKind> {
    let why = Some(AbortReason::Timeout);
    scenario(vec![
        vec![started(&[N1, N2]), prepare(N1), prepare(N2)],
        ready(N1).into(),
        vec![
            decision(Decision::Abort, why),
            rollback_sent(N1),
            rollback_sent(N2),
            finished(Outcome::Aborted, why),
        ],
        vec![ack(N1, Decision::Abort), ack(N2, Decision::Abort)],
    ])
}

/// 6002 is not connected when the transfer starts: no prepare goes to it.
fn unreachable_at_the_start() -> Vec<EventKind> {
    let why = Some(AbortReason::NodeUnreachable);
    vec![
        started(&[N1, N2]),
        prepare(N1),
        decision(Decision::Abort, why),
        rollback_sent(N1),
        finished(Outcome::Aborted, why),
    ]
}

/// 6002's connection breaks while the votes are collected.
fn node_lost_while_preparing() -> Vec<EventKind> {
    let why = Some(AbortReason::NodeUnreachable);
    scenario(vec![
        vec![started(&[N1, N2]), prepare(N1), prepare(N2)],
        ready(N1).into(),
        vec![
            decision(Decision::Abort, why),
            rollback_sent(N1),
            finished(Outcome::Aborted, why),
        ],
    ])
}

fn one_phase_commit() -> Vec<EventKind> {
    scenario(vec![
        vec![started(&[N1]), prepare(N1)],
        ready(N1).into(),
        vec![
            decision(Decision::Commit, None),
            finished(Outcome::Committed, None),
            ended(),
        ],
    ])
}

fn one_phase_abort() -> Vec<EventKind> {
    let why = Some(AbortReason::InsufficientFunds);
    vec![
        started(&[N1]),
        prepare(N1),
        vote_abort(N1, AbortReason::InsufficientFunds),
        decision(Decision::Abort, why),
        finished(Outcome::Aborted, why),
    ]
}

/// The node went silent; asked (with rollback) once back, it says it
/// committed: its ack, then the outcome as its vote and decision.
fn one_phase_asked_after_silence() -> Vec<EventKind> {
    scenario(vec![
        vec![started(&[N1]), prepare(N1)],
        vec![forced(N1, "committed"), ack(N1, Decision::Commit)],
        ready(N1).into(),
        vec![
            decision(Decision::Commit, None),
            finished(Outcome::Committed, None),
            ended(),
        ],
    ])
}

/// The coordinator crashes with every vote in and no decision: it comes
/// back without the transaction, and each node holding it prepared is
/// told to roll back (presumed abort). The client is never answered.
fn crash_before_the_decision() -> Vec<EventKind> {
    scenario(vec![
        vec![started(&[N1, N2]), prepare(N1), prepare(N2)],
        ready(N1).into(),
        ready(N2).into(),
        coordinator_restarts(),
        reports_in_doubt(N1).into(),
        vec![resolved(N1, Decision::Abort)],
        reports_in_doubt(N2).into(),
        vec![resolved(N2, Decision::Abort)],
        vec![ack(N1, Decision::Abort), ack(N2, Decision::Abort)],
    ])
}

/// The coordinator crashes after sending the first commit: recovered from
/// its COMMIT record, it re-sends the commits (no event) and the in-doubt
/// node is resolved; the acks end it. No `tx_finished`: nobody waits.
fn crash_mid_commit() -> Vec<EventKind> {
    scenario(vec![
        vec![started(&[N1, N2]), prepare(N1), prepare(N2)],
        ready(N1).into(),
        ready(N2).into(),
        commit_durable().into(),
        vec![commit_sent(N1)],
        coordinator_restarts(),
        vec![EventKind::RecoveryQuery { node: N1.into() }],
        reports_in_doubt(N2).into(),
        vec![resolved(N2, Decision::Commit)],
        vec![ack(N1, Decision::Commit), forced(N1, "committed")],
        vec![ack(N2, Decision::Commit), forced(N2, "committed"), ended()],
    ])
}

/// Every scenario, by name.
fn scenarios() -> Vec<(&'static str, Vec<EventKind>)> {
    vec![
        ("two-phase commit", two_phase_commit()),
        ("commit answered when sent", commit_answered_when_sent()),
        ("commit in step mode", commit_in_step_mode()),
        ("commit with a node away", commit_with_a_node_away()),
        ("abort vote", abort_vote()),
        ("vote timeout", vote_timeout()),
        ("unreachable at the start", unreachable_at_the_start()),
        ("node lost while preparing", node_lost_while_preparing()),
        ("one-phase commit", one_phase_commit()),
        ("one-phase abort", one_phase_abort()),
        (
            "one-phase asked after silence",
            one_phase_asked_after_silence(),
        ),
        ("crash before the decision", crash_before_the_decision()),
        ("crash mid-commit", crash_mid_commit()),
    ]
}

// ----- folding -----

/// Event `i` happens at `10 * (i + 1)`.
fn time_of(i: usize) -> u64 {
    10 * (i as u64 + 1)
}

fn fold<K: NodeKey>(events: &[EventKind]) -> TxFold<u64, K> {
    let mut fold = TxFold::new();
    for (i, kind) in events.iter().enumerate() {
        fold.apply(time_of(i), kind);
    }
    fold
}

fn fold_by_name(events: &[EventKind]) -> TxFold {
    fold::<String>(events)
}

/// The state after each event.
fn states(events: &[EventKind]) -> Vec<TxState> {
    let mut fold = TxFold::<u64>::new();
    events
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            fold.apply(time_of(i), kind);
            fold.state()
        })
        .collect()
}

/// The pending acks after each event that changed them, with its index.
fn pending_changes(events: &[EventKind]) -> Vec<(usize, Vec<String>)> {
    let mut fold = TxFold::<u64>::new();
    let mut last: Vec<String> = Vec::new();
    let mut changes = Vec::new();
    for (i, kind) in events.iter().enumerate() {
        fold.apply(time_of(i), kind);
        let now: Vec<String> = fold.pending_acks().cloned().collect();
        if now != last {
            changes.push((i, now.clone()));
            last = now;
        }
    }
    changes
}

/// Which phase each event ended, with its index.
fn phase_ends(events: &[EventKind]) -> Vec<(usize, Phase)> {
    let mut fold = TxFold::<u64>::new();
    events
        .iter()
        .enumerate()
        .filter_map(|(i, kind)| fold.apply(time_of(i), kind).map(|p| (i, p)))
        .collect()
}

fn index_of(events: &[EventKind], wanted: &EventKind) -> usize {
    events
        .iter()
        .position(|e| e == wanted)
        .unwrap_or_else(|| panic!("{wanted:?} is not in the scenario"))
}

fn owed(fold: &TxFold) -> Vec<&str> {
    fold.pending_acks().map(String::as_str).collect()
}

// ----- state, outcome, reason -----

#[test]
fn a_two_phase_commit_is_active_then_prepared_then_committed() {
    let events = two_phase_commit();
    let states = states(&events);
    let last_vote = index_of(&events, &ready(N2)[1]);
    let commit_forced = index_of(&events, &forced(COORDINATOR, "commit"));
    assert!(states[..last_vote].iter().all(|s| *s == TxState::Active));
    assert!(states[last_vote..commit_forced]
        .iter()
        .all(|s| *s == TxState::Prepared));
    assert!(states[commit_forced..]
        .iter()
        .all(|s| *s == TxState::Committed));
    let fold = fold_by_name(&events);
    assert_eq!(fold.outcome(), Some(Outcome::Committed));
    assert_eq!(fold.duration_ms(), Some(2.5));
    assert_eq!(fold.reason(), None);
    assert!(fold.ended());
    assert!(!fold.one_phase());
    assert_eq!(fold.nodes(), [N1, N2]);
}

#[test]
fn every_abort_ends_aborted_with_the_reason_of_its_decision() {
    for (name, events, reason) in [
        ("abort vote", abort_vote(), AbortReason::InsufficientFunds),
        ("vote timeout", vote_timeout(), AbortReason::Timeout),
        (
            "unreachable at the start",
            unreachable_at_the_start(),
            AbortReason::NodeUnreachable,
        ),
        (
            "node lost while preparing",
            node_lost_while_preparing(),
            AbortReason::NodeUnreachable,
        ),
        (
            "one-phase abort",
            one_phase_abort(),
            AbortReason::InsufficientFunds,
        ),
    ] {
        let fold = fold_by_name(&events);
        assert_eq!(fold.state(), TxState::Aborted, "{name}");
        assert_eq!(fold.reason(), Some(reason), "{name}");
        assert_eq!(fold.outcome(), Some(Outcome::Aborted), "{name}");
        assert_eq!(fold.duration_ms(), Some(2.5), "{name}");
        assert!(owed(&fold).is_empty(), "{name}");
        assert!(!fold.ended(), "{name}: an abort logs no END");
    }
}

#[test]
fn a_ready_vote_before_an_abort_never_marks_the_transaction_prepared() {
    for events in [vote_timeout(), node_lost_while_preparing(), abort_vote()] {
        assert!(!states(&events).contains(&TxState::Prepared));
    }
}

#[test]
fn the_first_vote_of_a_node_counts() {
    let mut events = vec![started(&[N1, N2])];
    events.extend(ready(N1));
    events.push(vote_abort(N1, AbortReason::LockConflict));
    let fold = fold_by_name(&events);
    let votes = fold.node_votes();
    assert_eq!(votes[0].vote, VoteView::Ready);
    assert_eq!(votes[0].reason, None);
}

#[test]
fn node_votes_say_no_answer_for_a_node_that_never_voted() {
    let fold = fold_by_name(&vote_timeout());
    let votes: Vec<(String, VoteView, Option<AbortReason>)> = fold
        .node_votes()
        .into_iter()
        .map(|v| (v.node, v.vote, v.reason))
        .collect();
    assert_eq!(
        votes,
        [
            (N1.to_string(), VoteView::Ready, None),
            (N2.to_string(), VoteView::NoAnswer, None)
        ]
    );
}

#[test]
fn a_one_phase_transfer_takes_the_outcome_its_node_reports() {
    let fold = fold_by_name(&one_phase_commit());
    assert_eq!(fold.state(), TxState::Committed);
    assert!(fold.one_phase());
    assert!(fold.ended());
    let fold = fold_by_name(&one_phase_asked_after_silence());
    assert_eq!(fold.state(), TxState::Committed);
    assert_eq!(fold.outcome(), Some(Outcome::Committed));
}

// ----- pending acks -----

#[test]
fn nodes_owe_acks_from_the_durable_decision_until_their_own_ack() {
    let events = two_phase_commit();
    let durable = index_of(&events, &forced(COORDINATOR, "commit"));
    let first_ack = index_of(&events, &ack(N1, Decision::Commit));
    let last_ack = index_of(&events, &ack(N2, Decision::Commit));
    assert_eq!(
        pending_changes(&events),
        [
            (durable, vec![N1.to_string(), N2.to_string()]),
            (first_ack, vec![N2.to_string()]),
            (last_ack, vec![]),
        ]
    );
}

#[test]
fn a_paused_transaction_owes_every_ack_before_any_commit_is_sent() {
    let events = commit_in_step_mode();
    let durable = index_of(&events, &forced(COORDINATOR, "commit"));
    let first_sent = index_of(&events, &commit_sent(N1));
    let mut fold = TxFold::<u64>::new();
    for (i, kind) in events[..first_sent].iter().enumerate() {
        fold.apply(time_of(i), kind);
    }
    assert!(durable < first_sent);
    assert_eq!(owed(&fold), [N1, N2]);
}

#[test]
fn a_node_away_when_the_commits_go_out_owes_its_ack_until_it_acks() {
    let events = commit_with_a_node_away();
    let back = index_of(&events, &resolved(N2, Decision::Commit));
    let mut fold = TxFold::<u64>::new();
    for (i, kind) in events.iter().enumerate() {
        fold.apply(time_of(i), kind);
        if i >= index_of(&events, &ack(N1, Decision::Commit)) && i <= back {
            assert_eq!(owed(&fold), [N2], "after {kind:?}");
        }
    }
    assert!(owed(&fold).is_empty());
    assert!(fold.ended());
}

#[test]
fn the_end_record_clears_every_pending_ack() {
    let mut events = two_phase_commit();
    events.retain(|e| !matches!(e, EventKind::Ack { .. }));
    let before_end = &events[..events.len() - 1];
    assert_eq!(owed(&fold_by_name(before_end)), [N1, N2]);
    assert!(owed(&fold_by_name(&events)).is_empty());
}

#[test]
fn one_phase_transfers_and_aborts_never_owe_an_ack() {
    for (name, events) in scenarios() {
        let changes = pending_changes(&events);
        let fold = fold_by_name(&events);
        if fold.one_phase() || fold.state() == TxState::Aborted {
            assert!(changes.is_empty(), "{name}: {changes:?}");
        }
    }
}

#[test]
fn a_rollbacks_ack_decides_nothing_and_clears_nothing() {
    let mut events = two_phase_commit();
    events.truncate(index_of(&events, &commit_sent(N1)));
    let before = fold_by_name(&events);
    events.push(ack(N1, Decision::Abort));
    let after = fold_by_name(&events);
    assert_eq!(after.state(), TxState::Committed);
    assert_eq!(owed(&after), owed(&before));
}

// ----- phase times -----

#[test]
fn each_phase_is_timed_from_its_first_event_to_its_last() {
    let events = two_phase_commit();
    let at = |e: &EventKind| time_of(index_of(&events, e));
    let fold = fold_by_name(&events);
    let span = |phase| fold.span(phase).bounds();
    assert_eq!(
        span(Phase::PrepareRound),
        Some((at(&started(&[N1, N2])), at(&ready(N2)[1])))
    );
    assert_eq!(
        span(Phase::DecisionForce),
        Some((at(&ready(N2)[1]), at(&forced(COORDINATOR, "commit"))))
    );
    assert_eq!(
        span(Phase::CommitRound),
        Some((at(&commit_sent(N1)), at(&ack(N2, Decision::Commit))))
    );
    assert_eq!(fold.started_at(), Some(at(&started(&[N1, N2]))));
    assert_eq!(
        fold.finished_at(),
        Some(at(&finished(Outcome::Committed, None)))
    );
    assert_eq!(fold.ended_at(), Some(at(&ended())));
}

#[test]
fn each_phase_ends_once_at_the_event_that_completes_it() {
    let events = two_phase_commit();
    assert_eq!(
        phase_ends(&events),
        [
            (index_of(&events, &ready(N2)[1]), Phase::PrepareRound),
            (
                index_of(&events, &forced(COORDINATOR, "commit")),
                Phase::DecisionForce
            ),
            (
                index_of(&events, &ack(N2, Decision::Commit)),
                Phase::CommitRound
            ),
        ]
    );
}

#[test]
fn a_one_phase_transfer_has_only_its_prepare_round() {
    for events in [one_phase_commit(), one_phase_asked_after_silence()] {
        let ends: Vec<Phase> = phase_ends(&events).into_iter().map(|(_, p)| p).collect();
        assert_eq!(ends, [Phase::PrepareRound]);
        let fold = fold_by_name(&events);
        assert_eq!(fold.span(Phase::DecisionForce).started, None);
        assert_eq!(
            fold.span(Phase::CommitRound),
            Span {
                started: None,
                ended: None
            }
        );
    }
}

#[test]
fn an_abort_vote_leaves_the_prepare_round_untimed() {
    // The other node's vote never comes: the decision does not wait for it.
    for events in [abort_vote(), vote_timeout(), node_lost_while_preparing()] {
        assert!(phase_ends(&events).is_empty());
        assert_eq!(fold_by_name(&events).span(Phase::PrepareRound).ended, None);
    }
}

#[test]
fn a_commit_round_across_a_coordinator_crash_runs_from_the_first_commit_to_the_last_ack() {
    let events = crash_mid_commit();
    let fold = fold_by_name(&events);
    let at = |e: &EventKind| time_of(index_of(&events, e));
    assert_eq!(
        fold.span(Phase::CommitRound).bounds(),
        Some((at(&commit_sent(N1)), at(&ack(N2, Decision::Commit))))
    );
}

#[test]
fn a_commit_round_without_a_commit_sent_has_an_end_and_no_start() {
    // Node 6002 got its commit only through its in-doubt report.
    let mut events = commit_with_a_node_away();
    events.retain(|e| !matches!(e, EventKind::CommitSent { .. }));
    let span = fold_by_name(&events).span(Phase::CommitRound);
    assert_eq!(span.started, None);
    assert!(span.ended.is_some());
    assert_eq!(span.bounds(), None);
}

// ----- a coordinator crash, in-doubt reports, resolution -----

#[test]
fn a_transaction_forgotten_in_a_crash_is_aborted_once_a_node_in_doubt_is_resolved() {
    let events = crash_before_the_decision();
    let first_resolution = index_of(&events, &resolved(N1, Decision::Abort));
    let states = states(&events);
    assert!(states[..first_resolution]
        .iter()
        .skip(index_of(&events, &ready(N2)[1]))
        .all(|s| *s == TxState::Prepared));
    assert!(states[first_resolution..]
        .iter()
        .all(|s| *s == TxState::Aborted));
    let fold = fold_by_name(&events);
    assert_eq!(fold.outcome(), None, "its client was never answered");
    assert_eq!(fold.duration_ms(), None);
    assert_eq!(fold.reason(), None);
}

#[test]
fn a_commit_recovered_after_a_crash_ends_with_its_acks_and_no_answer() {
    let events = crash_mid_commit();
    let fold = fold_by_name(&events);
    assert_eq!(fold.state(), TxState::Committed);
    assert!(fold.ended());
    assert!(owed(&fold).is_empty());
    assert_eq!(fold.outcome(), None);
    let restart = index_of(&events, &coordinator(ComponentStatus::Down));
    let first_ack = index_of(&events, &ack(N1, Decision::Commit));
    let owed_through_the_crash: Vec<usize> = pending_changes(&events)
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert!(
        owed_through_the_crash
            .iter()
            .all(|i| *i < restart || *i >= first_ack),
        "the crash itself changes no pending ack: {owed_through_the_crash:?}"
    );
}

#[test]
fn events_of_no_single_transaction_change_nothing() {
    let mut events = two_phase_commit();
    events.truncate(index_of(&events, &commit_sent(N2)));
    let before = fold_by_name(&events);
    let mut with_others = events.clone();
    with_others.extend(coordinator_restarts());
    with_others.extend(reports_in_doubt(N1));
    with_others.push(EventKind::NodeStatus {
        node: N2.into(),
        status: ComponentStatus::Down,
    });
    with_others.push(EventKind::Lagged { missed: 3 });
    with_others.push(EventKind::Balances {
        accounts: vec![],
        total_cents: 0,
    });
    assert_eq!(fold_by_name(&with_others), before);
}

#[test]
fn a_resolution_for_another_attempt_changes_nothing() {
    // A node that is not one of the transaction's, or any node of a
    // one-phase transfer, holds an older attempt of the id prepared.
    let mut events = vec![started(&[N1, N2]), prepare(N1), prepare(N2)];
    let before = fold_by_name(&events);
    events.push(resolved("6009", Decision::Abort));
    assert_eq!(fold_by_name(&events), before);
    let mut events = vec![started(&[N1]), prepare(N1)];
    let before = fold_by_name(&events);
    events.push(resolved(N1, Decision::Abort));
    assert_eq!(fold_by_name(&events), before);
}

#[test]
fn a_resolution_never_changes_a_decision() {
    let mut events = two_phase_commit();
    events.push(resolved(N1, Decision::Abort));
    assert_eq!(fold_by_name(&events).state(), TxState::Committed);
    let mut events = abort_vote();
    events.push(resolved(N2, Decision::Commit));
    let fold = fold_by_name(&events);
    assert_eq!(fold.state(), TxState::Aborted);
    assert!(owed(&fold).is_empty());
}

#[test]
fn a_repeated_tx_started_begins_a_new_attempt() {
    // The coordinator forgot the first attempt in a crash; the client's
    // retry runs the id again and commits.
    let mut events = scenario(vec![
        vec![started(&[N1, N2]), prepare(N1), prepare(N2)],
        ready(N1).into(),
        coordinator_restarts(),
    ]);
    let retry_at = events.len();
    events.extend(two_phase_commit());
    let fold = fold_by_name(&events);
    assert_eq!(fold.state(), TxState::Committed);
    assert_eq!(fold.started_at(), Some(time_of(retry_at)));
    let fresh = fold_by_name(&events[retry_at..]);
    assert_eq!(fold.node_votes(), fresh.node_votes());
    assert_eq!(
        fold.span(Phase::PrepareRound).started,
        Some(time_of(retry_at))
    );
}

// ----- repeated events -----

#[test]
fn every_event_but_tx_started_may_come_twice_in_a_row() {
    for (name, events) in scenarios() {
        let mut once = TxFold::<u64>::new();
        let mut twice = TxFold::<u64>::new();
        for (i, kind) in events.iter().enumerate() {
            let ended = once.apply(time_of(i), kind);
            assert_eq!(twice.apply(time_of(i), kind), ended, "{name}: {kind:?}");
            if !matches!(kind, EventKind::TxStarted { .. }) {
                let again = twice.apply(time_of(i) + 1, kind);
                assert_eq!(again, None, "{name}: {kind:?} ended a phase twice");
            }
            assert_eq!(twice, once, "{name}: after {kind:?} twice");
        }
    }
}

#[test]
fn every_event_but_tx_started_may_come_again_late() {
    for (name, events) in scenarios() {
        let once = fold_by_name(&events);
        let mut again = once.clone();
        for (i, kind) in events.iter().enumerate() {
            if !matches!(kind, EventKind::TxStarted { .. }) {
                assert_eq!(again.apply(1_000 + time_of(i), kind), None, "{name}");
            }
        }
        assert_eq!(again, once, "{name}");
    }
}

// ----- folds that joined late, and their limits -----

fn summary(state: TxState, pending_acks: &[&str]) -> TransactionSummary {
    TransactionSummary {
        pending_acks: pending_acks.iter().map(|n| n.to_string()).collect(),
        state,
        ..TransactionSummary::started(TX, "A", "B", 100, 7)
    }
}

#[test]
fn a_fold_resumed_from_a_summary_gives_the_same_summary_back() {
    let mut finished = summary(TxState::Aborted, &[]);
    finished.reason = Some(AbortReason::Timeout);
    finished.duration_ms = Some(3.5);
    for original in [
        summary(TxState::Active, &[]),
        summary(TxState::Prepared, &[]),
        summary(TxState::Committed, &[N2]),
        summary(TxState::Committed, &[N1, N2]),
        finished,
    ] {
        let fold = TxFold::resume(&original);
        let mut back = TransactionSummary::started(TX, "A", "B", 100, 7);
        fold.fill(&mut back);
        assert_eq!(back, original);
        assert_eq!(fold.started_at(), Some(7));
    }
}

#[test]
fn a_resumed_fold_goes_on_from_its_summary() {
    let mut fold = TxFold::resume(&summary(TxState::Committed, &[N1, N2]));
    fold.apply(20, &ack(N2, Decision::Commit));
    assert_eq!(owed(&fold), [N1]);
    fold.apply(30, &ended());
    assert!(owed(&fold).is_empty());
    assert_eq!(fold.state(), TxState::Committed);
}

#[test]
fn a_fold_that_missed_tx_started_never_claims_every_vote_is_in() {
    let mut fold = TxFold::resume(&summary(TxState::Active, &[]));
    for (i, kind) in ready(N1).iter().chain(ready(N2).iter()).enumerate() {
        assert_eq!(fold.apply(time_of(i), kind), None);
    }
    assert_eq!(fold.state(), TxState::Active);
    assert_eq!(fold.nodes(), [N1, N2], "it learned the nodes");
    for kind in commit_durable() {
        fold.apply(100, &kind);
    }
    assert_eq!(fold.state(), TxState::Committed);
    assert_eq!(owed(&fold), [N1, N2]);
}

#[test]
fn a_fold_that_missed_the_decision_takes_it_from_what_follows() {
    for (kind, state) in [
        (commit_sent(N1), TxState::Committed),
        (ack(N1, Decision::Commit), TxState::Committed),
        (ended(), TxState::Committed),
        (rollback_sent(N1), TxState::Aborted),
        (resolved(N1, Decision::Abort), TxState::Aborted),
        (finished(Outcome::Aborted, None), TxState::Aborted),
    ] {
        let mut fold = TxFold::resume(&summary(TxState::Active, &[]));
        fold.apply(10, &kind);
        assert_eq!(fold.state(), state, "{kind:?}");
    }
}

#[test]
fn a_transaction_with_more_nodes_than_a_fold_follows_is_never_fully_voted() {
    let names: Vec<String> = (0..=TX_NODES_MAX).map(|i| format!("70{i:02}")).collect();
    let nodes: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut events = vec![started(&nodes)];
    for node in &nodes {
        events.extend(ready(node));
    }
    let fold = fold_by_name(&events);
    assert_eq!(fold.state(), TxState::Active);
    assert_eq!(fold.nodes().len(), TX_NODES_MAX);
    assert!(phase_ends(&events).is_empty());
}

/// A key made from the name, as the metrics keep nodes.
#[derive(Clone, Default, Debug, PartialEq)]
struct Hashed(u64);

impl NodeKey for Hashed {
    fn of(node: &str) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        node.hash(&mut h);
        Hashed(h.finish())
    }

    fn is(&self, node: &str) -> bool {
        *self == Hashed::of(node)
    }
}

#[test]
fn a_fold_keyed_by_hashed_names_agrees_with_one_keyed_by_names() {
    for (name, events) in scenarios() {
        let mut by_name = TxFold::<u64>::new();
        let mut by_hash = TxFold::<u64, Hashed>::new();
        for (i, kind) in events.iter().enumerate() {
            let ended = by_name.apply(time_of(i), kind);
            assert_eq!(by_hash.apply(time_of(i), kind), ended, "{name}: {kind:?}");
            assert_eq!(by_hash.state(), by_name.state(), "{name}");
            let owed_by_hash: Vec<Hashed> = by_hash.pending_acks().cloned().collect();
            let owed_by_name: Vec<Hashed> = by_name.pending_acks().map(|n| Hashed::of(n)).collect();
            assert_eq!(owed_by_hash, owed_by_name, "{name}: {kind:?}");
            let votes = |f: &TxFold<u64, Hashed>| f.votes().map(|(_, c)| c).collect::<Vec<_>>();
            assert_eq!(
                votes(&by_hash),
                by_name.votes().map(|(_, c)| c).collect::<Vec<_>>()
            );
        }
        for phase in [
            Phase::PrepareRound,
            Phase::DecisionForce,
            Phase::CommitRound,
        ] {
            assert_eq!(by_hash.span(phase), by_name.span(phase), "{name}");
        }
    }
}

// ----- messages held by the coordinator (step mode) -----

fn held(id: u64, node: &str, message: MessageName) -> EventKind {
    EventKind::MessageHeld {
        id,
        tx_id: TX.into(),
        node: node.into(),
        direction: message.direction(),
        message,
        detail: String::new(),
    }
}

#[test]
fn held_messages_are_counted_until_released_or_dropped_and_change_nothing_else() {
    let mut plain = vec![started(&[N1, N2]), prepare(N1), prepare(N2)];
    plain.extend(ready(N1));
    let mut with_holds = vec![
        started(&[N1, N2]),
        prepare(N1),
        held(1, N1, MessageName::Prepare),
    ];
    with_holds.push(prepare(N2));
    with_holds.push(held(2, N2, MessageName::Prepare));
    let mut fold = TxFold::<u64>::new();
    for (i, kind) in with_holds.iter().enumerate() {
        fold.apply(time_of(i), kind);
    }
    assert_eq!(fold.held_messages(), 2);
    with_holds.push(EventKind::MessageReleased {
        id: 1,
        tx_id: TX.into(),
        node: N1.into(),
        direction: Direction::ToNode,
        message: MessageName::Prepare,
        copies: 1,
        delay_ms: 0,
    });
    with_holds.push(EventKind::MessageDropped {
        id: 2,
        tx_id: TX.into(),
        node: N2.into(),
        direction: Direction::ToNode,
        message: MessageName::Prepare,
    });
    with_holds.extend(ready(N1));
    let mut fold = TxFold::<u64>::new();
    for (i, kind) in with_holds.iter().enumerate() {
        fold.apply(time_of(i), kind);
    }
    assert_eq!(fold.held_messages(), 0);
    assert_eq!(fold.state(), TxState::Active);
    assert_eq!(
        fold.node_votes().iter().map(|v| v.vote).collect::<Vec<_>>(),
        [VoteView::Ready, VoteView::NoAnswer]
    );
    // Nothing but the count: the same as the events without the holds.
    assert_eq!(fold_by_name(&with_holds), fold_by_name(&plain));
}

#[test]
fn a_presumed_abort_decides_a_two_phase_attempt_but_not_a_one_phase_one() {
    // The coordinator crashed while an attempt ran; its successor's log
    // never decided the id and presumes it aborted (a node reported an
    // earlier attempt in doubt).
    let presumed = decision(Decision::Abort, Some(AbortReason::CoordinatorCrashed));
    let two_phase = fold_by_name(&[
        started(&["6001", "6002"]),
        prepare("6001"),
        prepare("6002"),
        presumed.clone(),
    ]);
    assert_eq!(two_phase.state(), TxState::Aborted);
    assert_eq!(two_phase.reason(), Some(AbortReason::CoordinatorCrashed));
    // A one-phase attempt is its node's to decide: it may have committed.
    let one_phase = fold_by_name(&[started(&["6001"]), prepare("6001"), presumed]);
    assert_eq!(one_phase.state(), TxState::Active);
}
