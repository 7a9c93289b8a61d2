//! Per-transaction evidence: what one transaction cost and what it did, read
//! from its events ([`evidence`]), and its own audit, each leg looked up in
//! its account's ledger ([`audit`]). Pure: the coordinator's
//! `GET /api/transactions/{tx_id}/evidence` and the dashboard's evidence
//! panel both run this code.
//!
//! What the events show, and so what this counts:
//! - **Messages** on each coordinator ⇄ node link, both ways. The
//!   coordinator sees what it sends (`prepare_sent`, `commit_sent`,
//!   `rollback_sent`, `resolved`) and what it receives (a `vote`; a node's
//!   `applied`, shown as its `ack`; its real ack, shown as the `log_forced`
//!   of its COMMITTED record). A node counts a message as received when its
//!   answer came back: the events cannot show a message that was lost.
//! - **Forced log writes**: every `log_forced` (a node's PREPARED before
//!   its `ready`, its COMMITTED before its ack; the coordinator's COMMIT),
//!   and the coordinator's ABORT record that an abort's answer to its client
//!   waits for (`tx_finished` aborted: there is no event of its own).
//! - **Round trips**: the protocol's sequential exchanges, the prepare
//!   round (a prepare and its vote) and the decision round (a commit or
//!   rollback and its answer).
//! - **Phases**: the [`TxFold`]'s spans, in milliseconds of `ts_ms`.
//! - **Lock waits**: a node's time from the prepare to its vote, and the
//!   transaction that held one of its accounts there meanwhile (from the
//!   other transactions' events, see [`TxEvents`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::{LedgerEntry, Leg};
use crate::events::{Event, EventKind, COORDINATOR};
use crate::fold::{Phase, TxFold, ABORT_RECORD, COMMITTED_RECORD, PREPARED_RECORD};
use crate::views::{Outcome, TxState, VoteView};
use crate::wire::{AbortReason, AccountId, NodeId, TxId};

/// `GET /api/transactions/{tx_id}/evidence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransactionEvidence {
    pub tx_id: TxId,
    pub state: TxState,
    pub cost: Evidence,
    pub audit: Audit,
}

/// What one transaction cost, as its events show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Evidence {
    /// The coordinator first, then each node in the order of its legs.
    pub processes: Vec<ProcessCost>,
    /// Every message between the coordinator and the nodes, both ways.
    pub messages: u32,
    /// Every forced log write (fdatasync) of every process.
    pub forced_writes: u32,
    /// Sequential request/answer exchanges: 2 for a committed two-phase
    /// transfer, 1 for a one-phase transfer or a prepare refused without a
    /// rollback.
    pub round_trips: u32,
    /// The protocol's phases with their times (a phase that did not run,
    /// or did not end, has no `duration_ms`).
    pub phases: Vec<PhaseTime>,
    /// The client's wait as the coordinator measured it (`tx_finished`).
    pub answer_ms: Option<f64>,
    /// From `tx_started` to `tx_ended` (every ack in, the END record).
    pub until_end_ms: Option<u64>,
    /// Each node's time from its prepare to its vote, and who held its
    /// accounts meanwhile.
    pub lock_waits: Vec<LockWait>,
}

/// One process's share of a transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessCost {
    /// `coordinator` or a node id.
    pub process: String,
    pub sent: u32,
    pub received: u32,
    pub forced_writes: u32,
    /// The records it forced, in order (`prepared`, `committed`, `commit`,
    /// `abort`).
    pub forced_records: Vec<String>,
}

/// The three timed phases of a two-phase commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PhaseName {
    /// `tx_started` to the last vote.
    Prepare,
    /// The last `ready` vote to the COMMIT record durable.
    DecisionForce,
    /// The first commit sent to the last commit ack.
    Commit,
}

impl PhaseName {
    pub const ALL: [PhaseName; 3] = [
        PhaseName::Prepare,
        PhaseName::DecisionForce,
        PhaseName::Commit,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PhaseName::Prepare => "phase 1 · prepare / vote",
            PhaseName::DecisionForce => "commit point · COMMIT forced",
            PhaseName::Commit => "phase 2 · commit / ack",
        }
    }

    fn phase(self) -> Phase {
        match self {
            PhaseName::Prepare => Phase::PrepareRound,
            PhaseName::DecisionForce => Phase::DecisionForce,
            PhaseName::Commit => Phase::CommitRound,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhaseTime {
    pub phase: PhaseName,
    /// Unix ms of its start and end, when the events showed them.
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub duration_ms: Option<u64>,
}

/// A node's prepare: how long it took to vote, and whether it waited for
/// (or was refused because of) another transaction holding one of its
/// accounts there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LockWait {
    pub node: NodeId,
    /// From `prepare_sent` to the node's vote (`None`: no vote came).
    pub prepare_to_vote_ms: Option<u64>,
    /// The transaction that held one of its accounts there, if one did.
    pub holder: Option<TxId>,
    /// How long it waited for `holder` to release its lock (0 if none did).
    pub waited_ms: u64,
    /// The node refused the lock (`lock_conflict`).
    pub refused: bool,
}

/// A transaction's own events and legs, for [`evidence`] and for the lock
/// waits of its neighbours.
#[derive(Debug, Clone, Copy)]
pub struct TxEvents<'a> {
    pub tx_id: &'a str,
    pub legs: &'a [Leg],
    /// Its events, oldest first.
    pub events: &'a [Event],
}

/// Per link counts, indexed like `processes[1..]`.
#[derive(Default, Clone, Copy)]
struct Link {
    to_node: u32,
    to_coordinator: u32,
    prepares: u32,
    votes: u32,
    decisions: u32,
    decision_answers: u32,
}

/// The evidence of `tx`; `others` are transactions of the same period,
/// read only for who held a lock `tx` waited for.
pub fn evidence(tx: TxEvents<'_>, others: &[TxEvents<'_>]) -> Evidence {
    let mut nodes: Vec<NodeId> = tx.legs.iter().map(|l| l.node.clone()).collect();
    let mut fold: TxFold = TxFold::new();
    for event in tx.events {
        fold.apply(event.ts_ms, &event.kind);
        if let Some(node) = node_named(&event.kind) {
            if node != COORDINATOR && !nodes.iter().any(|n| n == node) {
                nodes.push(node.to_string());
            }
        }
    }
    let mut links = vec![Link::default(); nodes.len()];
    let mut forced: Vec<Vec<String>> = vec![Vec::new(); nodes.len() + 1];
    let at = |node: &str| nodes.iter().position(|n| n == node);
    let mut previous: Option<&EventKind> = None;
    let mut aborted = false;
    for event in tx.events {
        match &event.kind {
            EventKind::PrepareSent { node, .. } => {
                if let Some(i) = at(node) {
                    links[i].to_node += 1;
                    links[i].prepares += 1;
                }
            }
            EventKind::Vote { node, vote, .. } if *vote != VoteView::NoAnswer => {
                if let Some(i) = at(node) {
                    links[i].to_coordinator += 1;
                    links[i].votes += 1;
                }
            }
            EventKind::CommitSent { node, .. }
            | EventKind::RollbackSent { node, .. }
            | EventKind::Resolved { node, .. } => {
                if let Some(i) = at(node) {
                    links[i].to_node += 1;
                    links[i].decisions += 1;
                }
            }
            EventKind::LogForced { node, record, .. } => {
                if node == COORDINATOR {
                    forced[0].push(record.clone());
                } else if let Some(i) = at(node) {
                    forced[i + 1].push(record.clone());
                    // A COMMITTED record forced is the node's real ack.
                    if record == COMMITTED_RECORD {
                        links[i].to_coordinator += 1;
                        links[i].decision_answers += 1;
                    }
                }
            }
            EventKind::Ack { node, .. } => {
                // Right after the node's COMMITTED record it is the same
                // ack; otherwise it is the node's `applied` (or the ack of
                // a rollback).
                let same_ack = matches!(previous,
                    Some(EventKind::LogForced { node: n, record, .. })
                        if n == node && record == COMMITTED_RECORD);
                if let (Some(i), false) = (at(node), same_ack) {
                    links[i].to_coordinator += 1;
                    links[i].decision_answers += 1;
                }
            }
            EventKind::TxFinished {
                outcome: Outcome::Aborted,
                ..
            } => aborted = true,
            _ => {}
        }
        previous = Some(&event.kind);
    }
    // The coordinator forces an abort before it answers; a run recorded
    // before it reported that write as its own event still counts it.
    if aborted && !forced[0].iter().any(|r| r == ABORT_RECORD) {
        forced[0].push(ABORT_RECORD.to_string());
    }
    let mut processes = Vec::with_capacity(nodes.len() + 1);
    processes.push(ProcessCost {
        process: COORDINATOR.to_string(),
        sent: links.iter().map(|l| l.to_node).sum(),
        received: links.iter().map(|l| l.to_coordinator).sum(),
        forced_writes: forced[0].len() as u32,
        forced_records: forced[0].clone(),
    });
    for (i, node) in nodes.iter().enumerate() {
        let l = links[i];
        processes.push(ProcessCost {
            process: node.clone(),
            sent: l.to_coordinator,
            received: l.prepares.min(l.votes) + l.decisions.min(l.decision_answers),
            forced_writes: forced[i + 1].len() as u32,
            forced_records: forced[i + 1].clone(),
        });
    }
    let prepare_round = links.iter().any(|l| l.prepares > 0 && l.votes > 0);
    let decision_round = links
        .iter()
        .any(|l| l.decisions > 0 && l.decision_answers > 0);
    let phases = PhaseName::ALL
        .iter()
        .map(|&phase| {
            let span = fold.span(phase.phase());
            PhaseTime {
                phase,
                started_ms: span.started,
                ended_ms: span.ended,
                duration_ms: span.bounds().map(|(s, e)| e.saturating_sub(s)),
            }
        })
        .collect();
    let until_end_ms = fold
        .started_at()
        .zip(fold.ended_at())
        .map(|(s, e)| e.saturating_sub(s));
    Evidence {
        messages: processes[0].sent + processes[0].received,
        forced_writes: processes.iter().map(|p| p.forced_writes).sum(),
        round_trips: u32::from(prepare_round) + u32::from(decision_round),
        processes,
        phases,
        answer_ms: fold.duration_ms(),
        until_end_ms,
        lock_waits: lock_waits(tx, others),
    }
}

fn node_named(kind: &EventKind) -> Option<&str> {
    match kind {
        EventKind::PrepareSent { node, .. }
        | EventKind::Vote { node, .. }
        | EventKind::LogForced { node, .. }
        | EventKind::CommitSent { node, .. }
        | EventKind::RollbackSent { node, .. }
        | EventKind::Ack { node, .. }
        | EventKind::Resolved { node, .. } => Some(node),
        _ => None,
    }
}

/// When `tx` held its accounts at `node`: from its `ready` vote to the
/// node's answer to the decision (`u64::MAX`: still holding).
fn hold_at(tx: &TxEvents<'_>, node: &str) -> Option<(u64, u64)> {
    let from = tx.events.iter().find_map(|e| match &e.kind {
        EventKind::Vote {
            node: n,
            vote: VoteView::Ready,
            ..
        } if n == node => Some(e.ts_ms),
        _ => None,
    })?;
    let until = tx
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Ack { node: n, .. } | EventKind::LogForced { node: n, .. }
                if n == node && e.ts_ms >= from && !is_prepared_force(&e.kind) =>
            {
                Some(e.ts_ms)
            }
            _ => None,
        })
        .unwrap_or(u64::MAX);
    Some((from, until))
}

fn is_prepared_force(kind: &EventKind) -> bool {
    matches!(kind, EventKind::LogForced { record, .. } if record == PREPARED_RECORD)
}

fn accounts_at<'a>(legs: &'a [Leg], node: &'a str) -> impl Iterator<Item = &'a AccountId> {
    legs.iter()
        .filter(move |l| l.node == node)
        .flat_map(|l| l.ops.iter().map(|op| &op.account))
}

fn lock_waits(tx: TxEvents<'_>, others: &[TxEvents<'_>]) -> Vec<LockWait> {
    let mut waits = Vec::new();
    for leg in tx.legs {
        let node = leg.node.as_str();
        let Some(asked) = tx.events.iter().find_map(|e| match &e.kind {
            EventKind::PrepareSent { node: n, .. } if n == node => Some(e.ts_ms),
            _ => None,
        }) else {
            continue;
        };
        let vote = tx.events.iter().find_map(|e| match &e.kind {
            EventKind::Vote {
                node: n,
                vote,
                reason,
                ..
            } if n == node && *vote != VoteView::NoAnswer => Some((e.ts_ms, *vote, *reason)),
            _ => None,
        });
        let answered = vote.map_or(u64::MAX, |(at, _, _)| at);
        // Another transaction holding one of these accounts at this node
        // when the prepare came, or taking it before the vote.
        let holder = others
            .iter()
            .filter(|o| o.tx_id != tx.tx_id)
            .filter(|o| {
                accounts_at(o.legs, node).any(|a| accounts_at(tx.legs, node).any(|b| a == b))
            })
            .filter_map(|o| hold_at(o, node).map(|hold| (o.tx_id, hold)))
            .filter(|(_, (from, until))| *from <= answered && *until >= asked)
            .min_by_key(|(_, (from, _))| *from);
        let refused = matches!(
            vote,
            Some((_, VoteView::Abort, Some(AbortReason::LockConflict)))
        );
        let waited_ms = match (holder, vote) {
            (Some((_, (_, until))), Some((_, VoteView::Ready, _))) if until <= answered => {
                until.saturating_sub(asked)
            }
            _ => 0,
        };
        waits.push(LockWait {
            node: node.to_string(),
            prepare_to_vote_ms: vote.map(|(at, _, _)| at.saturating_sub(asked)),
            holder: holder
                .filter(|_| waited_ms > 0 || refused)
                .map(|(id, _)| id.to_string()),
            waited_ms,
            refused,
        });
    }
    waits
}

/// A transaction's audit: each operation of each leg in its account's
/// ledger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Audit {
    /// Every operation is where it must be (`false` while one is unknown or
    /// pending, or on any discrepancy).
    pub ok: bool,
    pub checks: Vec<LegCheck>,
}

/// Where an operation must be in its account's ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    /// Committed: exactly once, with its amount.
    Once,
    /// Aborted: nowhere.
    Nowhere,
    /// Not decided yet: either is possible.
    Undecided,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Found as expected (✓).
    Ok,
    /// Found where it must not be, twice, with another amount, or missing.
    Discrepancy,
    /// Not checked: undecided, or the ledger could not be read.
    Unknown,
}

/// One operation of one leg checked against its account's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LegCheck {
    pub node: NodeId,
    pub account: AccountId,
    pub delta_cents: i64,
    pub expected: Expected,
    /// Entries of this transaction in the account's ledger.
    pub found: u32,
    pub verdict: Verdict,
    /// What was found, for people ("found once", "found twice", ...).
    pub detail: String,
}

/// Checks each operation of `legs` against its account's ledger. `ledgers`
/// maps an account to its entries, or to why they could not be read.
///
/// A ledger keeps only its newest entries (see the README): a committed
/// transfer older than a full ledger's oldest entry reads as missing.
pub fn audit(
    tx_id: &str,
    state: TxState,
    legs: &[Leg],
    ledgers: &BTreeMap<AccountId, Result<Vec<LedgerEntry>, String>>,
) -> Audit {
    let expected = match state {
        TxState::Committed => Expected::Once,
        TxState::Aborted => Expected::Nowhere,
        TxState::Active | TxState::Prepared => Expected::Undecided,
    };
    let mut checks = Vec::new();
    for leg in legs {
        for op in &leg.ops {
            let entries = ledgers.get(&op.account);
            let (found, verdict, detail) = match entries {
                None => (0, Verdict::Unknown, "its ledger was not read".to_string()),
                Some(Err(why)) => (
                    0,
                    Verdict::Unknown,
                    format!("its ledger could not be read: {why}"),
                ),
                Some(Ok(entries)) => check_op(tx_id, expected, op.delta_cents, entries),
            };
            checks.push(LegCheck {
                node: leg.node.clone(),
                account: op.account.clone(),
                delta_cents: op.delta_cents,
                expected,
                found,
                verdict,
                detail,
            });
        }
    }
    Audit {
        ok: !checks.is_empty() && checks.iter().all(|c| c.verdict == Verdict::Ok),
        checks,
    }
}

fn check_op(
    tx_id: &str,
    expected: Expected,
    delta_cents: i64,
    entries: &[LedgerEntry],
) -> (u32, Verdict, String) {
    let mine: Vec<&LedgerEntry> = entries.iter().filter(|e| e.tx_id == tx_id).collect();
    let found = mine.len() as u32;
    let wrong_amount = mine.iter().find(|e| e.delta_cents != delta_cents);
    let (verdict, detail) = match (expected, found, wrong_amount) {
        (Expected::Undecided, _, _) => (
            Verdict::Unknown,
            format!("not decided yet; found {}", times(found)),
        ),
        (Expected::Nowhere, 0, _) => (Verdict::Ok, "nowhere, as an abort must be".to_string()),
        (Expected::Nowhere, n, _) => (
            Verdict::Discrepancy,
            format!("aborted, yet found {}", times(n)),
        ),
        (Expected::Once, 1, None) => (Verdict::Ok, "found once, with its amount".to_string()),
        (Expected::Once, 0, _) => (
            Verdict::Discrepancy,
            "committed, yet missing from the ledger".to_string(),
        ),
        (Expected::Once, _, Some(e)) => (
            Verdict::Discrepancy,
            format!(
                "found with {} cents instead of {delta_cents}",
                e.delta_cents
            ),
        ),
        (Expected::Once, n, None) => (
            Verdict::Discrepancy,
            format!("committed once, yet found {}", times(n)),
        ),
    };
    (found, verdict, detail)
}

fn times(n: u32) -> String {
    match n {
        0 => "nowhere".to_string(),
        1 => "once".to_string(),
        2 => "twice".to_string(),
        n => format!("{n} times"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::transfer_legs;
    use crate::wire::Decision;

    fn ev(ts_ms: u64, kind: EventKind) -> Event {
        Event {
            seq: ts_ms,
            ts_ms,
            kind,
        }
    }

    fn legs() -> Vec<Leg> {
        transfer_legs("A", "B", 2_500, "6001", "6002")
    }

    /// A committed two-phase transfer as the coordinator publishes it:
    /// both nodes say `applied` before their ack.
    fn committed(tx: &str, t0: u64) -> Vec<Event> {
        let id = || tx.to_string();
        vec![
            ev(
                t0,
                EventKind::TxStarted {
                    tx_id: id(),
                    from: "A".into(),
                    to: "B".into(),
                    amount_cents: 2_500,
                    nodes: vec!["6001".into(), "6002".into()],
                    one_phase: false,
                },
            ),
            ev(
                t0,
                EventKind::PrepareSent {
                    tx_id: id(),
                    node: "6001".into(),
                },
            ),
            ev(
                t0,
                EventKind::PrepareSent {
                    tx_id: id(),
                    node: "6002".into(),
                },
            ),
            ev(
                t0 + 2,
                EventKind::LogForced {
                    tx_id: id(),
                    node: "6001".into(),
                    record: "prepared".into(),
                },
            ),
            ev(
                t0 + 2,
                EventKind::Vote {
                    tx_id: id(),
                    node: "6001".into(),
                    vote: VoteView::Ready,
                    reason: None,
                },
            ),
            ev(
                t0 + 3,
                EventKind::LogForced {
                    tx_id: id(),
                    node: "6002".into(),
                    record: "prepared".into(),
                },
            ),
            ev(
                t0 + 3,
                EventKind::Vote {
                    tx_id: id(),
                    node: "6002".into(),
                    vote: VoteView::Ready,
                    reason: None,
                },
            ),
            ev(
                t0 + 5,
                EventKind::LogForced {
                    tx_id: id(),
                    node: COORDINATOR.into(),
                    record: "commit".into(),
                },
            ),
            ev(
                t0 + 5,
                EventKind::Decision {
                    tx_id: id(),
                    decision: Decision::Commit,
                    reason: None,
                },
            ),
            ev(
                t0 + 5,
                EventKind::CommitSent {
                    tx_id: id(),
                    node: "6001".into(),
                },
            ),
            ev(
                t0 + 5,
                EventKind::CommitSent {
                    tx_id: id(),
                    node: "6002".into(),
                },
            ),
            ev(
                t0 + 6,
                EventKind::Ack {
                    tx_id: id(),
                    node: "6001".into(),
                    decision: Decision::Commit,
                },
            ),
            ev(
                t0 + 6,
                EventKind::Ack {
                    tx_id: id(),
                    node: "6002".into(),
                    decision: Decision::Commit,
                },
            ),
            ev(
                t0 + 6,
                EventKind::TxFinished {
                    tx_id: id(),
                    outcome: Outcome::Committed,
                    reason: None,
                    duration_ms: 6.2,
                },
            ),
            ev(
                t0 + 7,
                EventKind::LogForced {
                    tx_id: id(),
                    node: "6001".into(),
                    record: "committed".into(),
                },
            ),
            ev(
                t0 + 8,
                EventKind::LogForced {
                    tx_id: id(),
                    node: "6002".into(),
                    record: "committed".into(),
                },
            ),
            ev(t0 + 8, EventKind::TxEnded { tx_id: id() }),
        ]
    }

    fn one(tx: &str, events: &[Event], legs: &[Leg]) -> Evidence {
        let this = TxEvents {
            tx_id: tx,
            legs,
            events,
        };
        evidence(this, &[])
    }

    #[test]
    fn a_committed_transfer_costs_ten_messages_five_forces_and_two_round_trips() {
        let events = committed("t1", 1_000);
        let e = one("t1", &events, &legs());
        let names: Vec<&str> = e.processes.iter().map(|p| p.process.as_str()).collect();
        assert_eq!(names, ["coordinator", "6001", "6002"]);
        let c = &e.processes[0];
        assert_eq!((c.sent, c.received, c.forced_writes), (4, 6, 1));
        assert_eq!(c.forced_records, ["commit"]);
        for node in &e.processes[1..] {
            // prepare and commit in; vote, applied and ack out.
            assert_eq!(
                (node.received, node.sent, node.forced_writes),
                (2, 3, 2),
                "{node:?}"
            );
            assert_eq!(node.forced_records, ["prepared", "committed"]);
        }
        assert_eq!(e.messages, 10);
        assert_eq!(e.forced_writes, 5);
        assert_eq!(e.round_trips, 2);
        let times: Vec<Option<u64>> = e.phases.iter().map(|p| p.duration_ms).collect();
        // Phase 2 ends at the last node's first answer (its `applied`).
        assert_eq!(times, [Some(3), Some(2), Some(1)]);
        assert_eq!(e.answer_ms, Some(6.2));
        assert_eq!(e.until_end_ms, Some(8));
        assert_eq!(e.lock_waits.len(), 2);
        assert!(e
            .lock_waits
            .iter()
            .all(|w| w.holder.is_none() && w.waited_ms == 0 && !w.refused));
        assert_eq!(e.lock_waits[1].prepare_to_vote_ms, Some(3));
    }

    #[test]
    fn an_ack_without_applied_first_is_one_message_not_two() {
        let mut events = committed("t1", 0);
        // 6001's applied never came: its ack comes as the record and the ack.
        events.retain(|e| !matches!(&e.kind, EventKind::Ack { node, .. } if node == "6001"));
        let at = events
            .iter()
            .position(|e| matches!(&e.kind, EventKind::LogForced { node, record, .. } if node == "6001" && record == "committed"))
            .unwrap();
        events.insert(
            at + 1,
            ev(
                7,
                EventKind::Ack {
                    tx_id: "t1".into(),
                    node: "6001".into(),
                    decision: Decision::Commit,
                },
            ),
        );
        let e = one("t1", &events, &legs());
        assert_eq!(e.processes[1].sent, 2, "{:?}", e.processes[1]);
        assert_eq!(e.processes[2].sent, 3);
    }

    #[test]
    fn a_refused_prepare_is_one_round_trip_and_the_abort_record_is_counted() {
        let id = || "t2".to_string();
        let events = vec![
            ev(
                0,
                EventKind::TxStarted {
                    tx_id: id(),
                    from: "A".into(),
                    to: "B".into(),
                    amount_cents: 2_500,
                    nodes: vec!["6001".into(), "6002".into()],
                    one_phase: false,
                },
            ),
            ev(
                0,
                EventKind::PrepareSent {
                    tx_id: id(),
                    node: "6001".into(),
                },
            ),
            ev(
                0,
                EventKind::PrepareSent {
                    tx_id: id(),
                    node: "6002".into(),
                },
            ),
            ev(
                1,
                EventKind::Vote {
                    tx_id: id(),
                    node: "6001".into(),
                    vote: VoteView::Abort,
                    reason: Some(AbortReason::InsufficientFunds),
                },
            ),
            ev(
                1,
                EventKind::Decision {
                    tx_id: id(),
                    decision: Decision::Abort,
                    reason: Some(AbortReason::InsufficientFunds),
                },
            ),
            ev(
                1,
                EventKind::RollbackSent {
                    tx_id: id(),
                    node: "6002".into(),
                },
            ),
            ev(
                2,
                EventKind::TxFinished {
                    tx_id: id(),
                    outcome: Outcome::Aborted,
                    reason: Some(AbortReason::InsufficientFunds),
                    duration_ms: 2.0,
                },
            ),
        ];
        let e = one("t2", &events, &legs());
        assert_eq!(e.processes[0].forced_records, ["abort"]);
        assert_eq!((e.processes[0].sent, e.processes[0].received), (3, 1));
        // 6002 got a prepare and a rollback but answered neither yet.
        assert_eq!((e.processes[2].received, e.processes[2].sent), (0, 0));
        assert_eq!(e.round_trips, 1);
        assert_eq!(e.phases[1].duration_ms, None, "no commit point in an abort");
        assert_eq!(e.phases[2].duration_ms, None);
    }

    #[test]
    fn a_prepare_that_waited_names_the_holder_and_how_long() {
        let old = committed("old", 100);
        // The younger transfer asks at 101, while old holds A from its ready
        // vote (102) to its applied (106), when the node releases its locks.
        let mut young = committed("young", 101);
        for e in &mut young {
            if matches!(&e.kind, EventKind::Vote { node, .. } if node == "6001")
                || matches!(&e.kind, EventKind::LogForced { node, record, .. } if node == "6001" && record == "prepared")
            {
                e.ts_ms = 110;
            }
        }
        let legs = legs();
        let others = [TxEvents {
            tx_id: "old",
            legs: &legs,
            events: &old,
        }];
        let e = evidence(
            TxEvents {
                tx_id: "young",
                legs: &legs,
                events: &young,
            },
            &others,
        );
        let w = &e.lock_waits[0];
        assert_eq!(w.holder.as_deref(), Some("old"));
        assert_eq!(w.waited_ms, 106 - 101);
        assert_eq!(w.prepare_to_vote_ms, Some(110 - 101));
        assert!(!w.refused);
    }

    fn ledgers(
        a: Vec<LedgerEntry>,
        b: Vec<LedgerEntry>,
    ) -> BTreeMap<AccountId, Result<Vec<LedgerEntry>, String>> {
        BTreeMap::from([("A".to_string(), Ok(a)), ("B".to_string(), Ok(b))])
    }

    fn entry(tx: &str, delta_cents: i64) -> LedgerEntry {
        LedgerEntry {
            tx_id: tx.into(),
            delta_cents,
            balance_cents: 0,
        }
    }

    #[test]
    fn a_committed_transfer_found_once_in_each_ledger_passes() {
        let l = ledgers(
            vec![entry("x", -1), entry("t1", -2_500)],
            vec![entry("t1", 2_500)],
        );
        let a = audit("t1", TxState::Committed, &legs(), &l);
        assert!(a.ok, "{a:?}");
        assert_eq!(a.checks.len(), 2);
        assert!(a
            .checks
            .iter()
            .all(|c| c.found == 1 && c.expected == Expected::Once));
    }

    #[test]
    fn a_leg_found_twice_or_missing_or_with_another_amount_is_a_discrepancy() {
        let twice = ledgers(
            vec![entry("t1", -2_500), entry("t1", -2_500)],
            vec![entry("t1", 2_500)],
        );
        let a = audit("t1", TxState::Committed, &legs(), &twice);
        assert!(!a.ok);
        assert_eq!(a.checks[0].verdict, Verdict::Discrepancy);
        assert_eq!(a.checks[0].found, 2);
        assert_eq!(a.checks[0].detail, "committed once, yet found twice");
        assert_eq!(a.checks[1].verdict, Verdict::Ok);

        let missing = ledgers(vec![entry("t1", -2_500)], vec![]);
        let a = audit("t1", TxState::Committed, &legs(), &missing);
        assert!(!a.ok);
        assert_eq!(a.checks[1].verdict, Verdict::Discrepancy);
        assert_eq!(a.checks[1].detail, "committed, yet missing from the ledger");

        let amount = ledgers(vec![entry("t1", -2_400)], vec![entry("t1", 2_500)]);
        let a = audit("t1", TxState::Committed, &legs(), &amount);
        assert_eq!(a.checks[0].verdict, Verdict::Discrepancy);
        assert!(
            a.checks[0].detail.contains("-2400"),
            "{}",
            a.checks[0].detail
        );
    }

    #[test]
    fn an_aborted_transfer_must_be_nowhere() {
        let clean = ledgers(vec![entry("x", -1)], vec![]);
        let a = audit("t2", TxState::Aborted, &legs(), &clean);
        assert!(a.ok);
        assert!(a
            .checks
            .iter()
            .all(|c| c.expected == Expected::Nowhere && c.found == 0));
        let leaked = ledgers(vec![], vec![entry("t2", 2_500)]);
        let a = audit("t2", TxState::Aborted, &legs(), &leaked);
        assert!(!a.ok);
        assert_eq!(a.checks[1].verdict, Verdict::Discrepancy);
        assert_eq!(a.checks[1].detail, "aborted, yet found once");
    }

    #[test]
    fn an_unread_ledger_or_an_undecided_transaction_is_not_passed() {
        let mut l = ledgers(vec![entry("t1", -2_500)], vec![]);
        l.insert("B".into(), Err("node 6002 is down".into()));
        let a = audit("t1", TxState::Committed, &legs(), &l);
        assert!(!a.ok);
        assert_eq!(a.checks[1].verdict, Verdict::Unknown);
        assert!(a.checks[1].detail.contains("6002 is down"));
        let a = audit("t1", TxState::Prepared, &legs(), &ledgers(vec![], vec![]));
        assert!(!a.ok);
        assert!(a.checks.iter().all(|c| c.verdict == Verdict::Unknown));
    }

    #[test]
    fn a_one_phase_transfer_checks_both_accounts_of_its_one_leg() {
        let legs = transfer_legs("A1", "A2", 100, "6001", "6001");
        let l = BTreeMap::from([
            ("A1".to_string(), Ok(vec![entry("t3", -100)])),
            ("A2".to_string(), Ok(vec![entry("t3", 100)])),
        ]);
        let a = audit("t3", TxState::Committed, &legs, &l);
        assert!(a.ok, "{a:?}");
        assert_eq!(a.checks.len(), 2);
    }
}
