//! Guided scenarios: short narrated runs the page drives step by step
//! against the real cluster, each step checked from the live events (a
//! green tick when what it says happened did happen), each scenario ending
//! with a paragraph that says what it showed. Pure: the definitions and
//! the checks; `components/scenarios.rs` runs them.
//!
//! A scenario's transfer carries its own `tx_id`, so its events are found
//! in that transaction's timeline even when the coordinator crashes before
//! answering. A check reads [`Seen`]: that timeline (which also holds the
//! coordinator's crash and restart, see `model.rs`), the transaction's row
//! in the history and the cluster view.

use shared::api::{ClusterView, ComponentStatus, TransactionSummary, TxState, VoteView};
use shared::events::{Event, EventKind, COORDINATOR};
use shared::fold::COMMIT_RECORD;
use shared::wire::{AbortReason, Decision, ParticipantCrashPoint};

/// The demo cluster's accounts (DESIGN.md): A on 6001, B on 6002.
pub const FROM: &str = "A";
pub const TO: &str = "B";
pub const FROM_NODE: &str = "6001";
pub const TO_NODE: &str = "6002";

/// What a step does to the cluster before its check is awaited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Nothing: the step waits for what the previous one set going.
    Watch,
    /// A transfer from A to B of this many cents, with the scenario's tx id.
    Transfer {
        amount_cents: i64,
    },
    /// A transfer from A to B of A's balance plus this many cents.
    TransferMoreThanBalance {
        extra_cents: i64,
    },
    /// The node kills itself at this point of its next transaction.
    ArmNodeCrash {
        node: &'static str,
        at: ParticipantCrashPoint,
    },
    RestartNode {
        node: &'static str,
    },
    /// The coordinator's engine crashes right after its next COMMIT record
    /// is durable, and recovers after `restart_after_ms`.
    CrashCoordinatorAfterCommitRecord {
        restart_after_ms: u64,
    },
    /// An operator decides the scenario's transaction on `node` (a
    /// heuristic decision).
    Heuristic {
        node: &'static str,
        decision: Decision,
    },
}

/// What a check reads.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The scenario transaction's events, oldest first.
    pub events: &'a [Event],
    pub tx: Option<&'a TransactionSummary>,
    pub cluster: Option<&'a ClusterView>,
}

pub type Check = fn(&Seen) -> bool;

#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// What happens, said to a newcomer.
    pub says: &'static str,
    /// What to look at on the page meanwhile.
    pub watch: &'static str,
    /// Run before the check is awaited (then a step may be several).
    pub actions: &'static [Action],
    /// What the tick stands for.
    pub expect: &'static str,
    pub check: Check,
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Its name in the address: `#scenario=<id>`.
    pub id: &'static str,
    pub title: &'static str,
    pub summary: &'static str,
    pub steps: &'static [Step],
    /// The paragraph shown once every step is ticked.
    pub explanation: &'static str,
}

fn any(seen: &Seen, test: impl Fn(&EventKind) -> bool) -> bool {
    seen.events.iter().any(|e| test(&e.kind))
}

fn count(seen: &Seen, test: impl Fn(&EventKind) -> bool) -> usize {
    seen.events.iter().filter(|e| test(&e.kind)).count()
}

fn prepares_sent(seen: &Seen) -> bool {
    count(seen, |k| matches!(k, EventKind::PrepareSent { .. })) >= 2
}

fn both_ready(seen: &Seen) -> bool {
    count(seen, |k| {
        matches!(
            k,
            EventKind::Vote {
                vote: VoteView::Ready,
                ..
            }
        )
    }) >= 2
}

fn commit_record_forced(seen: &Seen) -> bool {
    any(seen, |k| {
        matches!(k, EventKind::LogForced { node, record, .. }
            if node == COORDINATOR && record == COMMIT_RECORD)
    })
}

fn acked_commit_by(seen: &Seen, node: &str) -> bool {
    any(
        seen,
        |k| matches!(k, EventKind::Ack { node: n, decision: Decision::Commit, .. } if n == node),
    )
}

fn committed_everywhere(seen: &Seen) -> bool {
    let finished = any(seen, |k| {
        matches!(
            k,
            EventKind::TxFinished {
                outcome: shared::api::Outcome::Committed,
                ..
            }
        )
    });
    finished && acked_commit_by(seen, FROM_NODE) && acked_commit_by(seen, TO_NODE)
}

fn refused_for_funds(seen: &Seen) -> bool {
    any(seen, |k| {
        matches!(
            k,
            EventKind::Vote {
                vote: VoteView::Abort,
                reason: Some(AbortReason::InsufficientFunds),
                ..
            }
        )
    })
}

fn decided_abort(seen: &Seen) -> bool {
    any(seen, |k| {
        matches!(
            k,
            EventKind::Decision {
                decision: Decision::Abort,
                ..
            }
        )
    })
}

fn aborted_for_funds(seen: &Seen) -> bool {
    any(seen, |k| {
        matches!(
            k,
            EventKind::TxFinished {
                outcome: shared::api::Outcome::Aborted,
                reason: Some(AbortReason::InsufficientFunds),
                ..
            }
        )
    })
}

fn receiver_silent(seen: &Seen) -> bool {
    let voted = any(
        seen,
        |k| matches!(k, EventKind::Vote { node, .. } if node == TO_NODE),
    );
    !voted && decided_abort(seen)
}

fn node_up(seen: &Seen, node: &str) -> bool {
    seen.cluster.is_some_and(|c| {
        c.nodes
            .iter()
            .any(|n| n.id == node && n.status == ComponentStatus::Up)
    })
}

fn in_doubt_on(seen: &Seen, node: &str) -> bool {
    let Some(tx) = seen.tx else {
        return false;
    };
    seen.cluster.is_some_and(|c| {
        c.nodes
            .iter()
            .any(|n| n.id == node && n.in_doubt.contains(&tx.tx_id))
    })
}

fn restarted_node_told_abort(seen: &Seen) -> bool {
    let told = any(
        seen,
        |k| matches!(k, EventKind::Resolved { node, decision: Decision::Abort, .. } if node == TO_NODE),
    );
    told && node_up(seen, TO_NODE) && !in_doubt_on(seen, TO_NODE)
}

fn coordinator_down_after_commit_record(seen: &Seen) -> bool {
    commit_record_forced(seen)
        && any(seen, |k| {
            matches!(
                k,
                EventKind::CoordinatorStatus {
                    status: ComponentStatus::Down
                }
            )
        })
        && seen.tx.is_some_and(|t| t.state == TxState::Committed)
}

fn recovered_and_committed(seen: &Seen) -> bool {
    let back = seen.events.iter().rev().any(|e| {
        matches!(
            e.kind,
            EventKind::CoordinatorStatus {
                status: ComponentStatus::Up
            }
        )
    });
    back && acked_commit_by(seen, FROM_NODE)
        && acked_commit_by(seen, TO_NODE)
        && seen.tx.is_some_and(|t| t.pending_acks.is_empty())
}

/// The coordinator is down (its last status event) and the transaction is
/// committed with every ack outstanding: no node has been told.
fn nobody_told_while_down(seen: &Seen) -> bool {
    let down = seen
        .events
        .iter()
        .rev()
        .find_map(|e| match e.kind {
            EventKind::CoordinatorStatus { status } => Some(status == ComponentStatus::Down),
            _ => None,
        })
        .unwrap_or(false);
    down && seen
        .tx
        .is_some_and(|t| t.state == TxState::Committed && t.pending_acks.len() >= 2)
}

fn receiver_in_doubt(seen: &Seen) -> bool {
    in_doubt_on(seen, TO_NODE) || nobody_told_while_down(seen)
}

fn receiver_listed_in_doubt(seen: &Seen) -> bool {
    in_doubt_on(seen, TO_NODE)
}

fn receiver_decided_alone(seen: &Seen) -> bool {
    node_up(seen, TO_NODE) && !in_doubt_on(seen, TO_NODE) && seen.tx.is_some()
}

fn sender_committed_after_recovery(seen: &Seen) -> bool {
    acked_commit_by(seen, FROM_NODE)
}

const HAPPY: &[Step] = &[
    Step {
        says: "A client asks to move $10.00 from account A (node 6001) to account B (node 6002). Phase 1 begins: the coordinator asks both nodes to prepare.",
        watch: "The sequence diagram: two prepare arrows leave the coordinator.",
        actions: &[Action::Transfer { amount_cents: 1_000 }],
        expect: "both nodes were asked to prepare",
        check: prepares_sent,
    },
    Step {
        says: "Each node locks its account, checks it can do its part, forces a PREPARED record to its log and only then votes ready. From this moment a node has promised: it may no longer abort on its own.",
        watch: "The PREPARED marks on each node's lifeline, then the green ready arrows.",
        actions: &[Action::Watch],
        expect: "both nodes voted ready",
        check: both_ready,
    },
    Step {
        says: "With every vote ready, the coordinator forces its COMMIT record. That record is the commit point: from now on the transfer is committed, whatever crashes.",
        watch: "The band \"commit point\" and the COMMIT mark on the coordinator's lifeline.",
        actions: &[Action::Watch],
        expect: "the COMMIT record is durable",
        check: commit_record_forced,
    },
    Step {
        says: "Phase 2: the coordinator tells both nodes to commit; each applies its leg, forces a COMMITTED record, releases its lock and acknowledges.",
        watch: "The commit arrows and the acks; the balances on the node cards.",
        actions: &[Action::Watch],
        expect: "committed, acknowledged by both nodes",
        check: committed_everywhere,
    },
];

const INSUFFICIENT: &[Step] = &[
    Step {
        says: "A client asks to move more than account A holds.",
        watch: "Node 6001's vote in the diagram.",
        actions: &[Action::TransferMoreThanBalance { extra_cents: 10_000 }],
        expect: "node 6001 voted abort: insufficient funds",
        check: refused_for_funds,
    },
    Step {
        says: "One abort vote is enough: the coordinator decides abort. Presumed abort: an abort needs no forced decision record before the nodes are told.",
        watch: "The red decision and the rollback arrows.",
        actions: &[Action::Watch],
        expect: "the coordinator decided abort",
        check: decided_abort,
    },
    Step {
        says: "The client hears \"aborted: insufficient funds\"; no balance changed anywhere.",
        watch: "The transfer's row in History; the total in the top bar.",
        actions: &[Action::Watch],
        expect: "the transfer ended aborted for insufficient funds",
        check: aborted_for_funds,
    },
];

const CRASHED: &[Step] = &[
    Step {
        says: "Node 6002 is set to die during its next transaction, right after forcing PREPARED and before its vote leaves. Then a client moves $5.00 from A to B.",
        watch: "Node 6002's card turns down; the coordinator waits for its vote.",
        actions: &[
            Action::ArmNodeCrash {
                node: TO_NODE,
                at: ParticipantCrashPoint::AfterPrepareLogged,
            },
            Action::Transfer { amount_cents: 500 },
        ],
        expect: "no vote from node 6002: the coordinator decided abort",
        check: receiver_silent,
    },
    Step {
        says: "Node 6002 restarts and replays its log: it finds a PREPARED record and no outcome, so it is in doubt. It may not guess; it asks the coordinator, which has no COMMIT record for it and answers abort (presumed abort).",
        watch: "The in-doubt query and the rollback to node 6002 in the diagram.",
        actions: &[Action::RestartNode { node: TO_NODE }],
        expect: "the restarted node was told abort and holds nothing in doubt",
        check: restarted_node_told_abort,
    },
];

const BLOCKED: &[Step] = &[
    Step {
        says: "The coordinator is set to crash right after its next COMMIT record is durable, before it tells anyone. A client moves $7.00 from A to B.",
        watch: "The diagram: the commit point, then the coordinator's crash. The transfer card says the coordinator is down.",
        actions: &[
            Action::CrashCoordinatorAfterCommitRecord {
                restart_after_ms: 8_000,
            },
            Action::Transfer { amount_cents: 700 },
        ],
        expect: "COMMIT is durable and the coordinator is down",
        check: coordinator_down_after_commit_record,
    },
    Step {
        says: "The transfer is committed (the record says so) but no node knows. Both voted ready, so both are blocked in doubt: they must keep their locks and wait, because aborting could contradict the coordinator's decision.",
        watch: "The node cards and the in-doubt panel list the transaction; the locks stay held.",
        actions: &[Action::Watch],
        expect: "no node was told: node 6002 holds the transaction in doubt, both acks outstanding",
        check: receiver_in_doubt,
    },
    Step {
        says: "The coordinator restarts, replays its log, finds the COMMIT record without an END and sends commit again. Each node commits (or, if it already had, acknowledges again).",
        watch: "The recovery band in the diagram; the transfer card turns to committed by itself.",
        actions: &[Action::Watch],
        expect: "recovered: both nodes acknowledged the commit",
        check: recovered_and_committed,
    },
];

const HEURISTIC: &[Step] = &[
    Step {
        says: "As in the blocked scenario, the coordinator crashes right after its COMMIT record, this time staying down for 20 s. A client moves $3.00 from A to B.",
        watch: "The commit point and the crash in the diagram.",
        actions: &[
            Action::CrashCoordinatorAfterCommitRecord {
                restart_after_ms: 20_000,
            },
            Action::Transfer { amount_cents: 300 },
        ],
        expect: "COMMIT is durable and the coordinator is down",
        check: coordinator_down_after_commit_record,
    },
    Step {
        says: "Node 6002 is blocked in doubt with B locked.",
        watch: "The in-doubt panel.",
        actions: &[Action::Watch],
        expect: "node 6002 holds the transaction in doubt",
        check: receiver_listed_in_doubt,
    },
    Step {
        says: "An impatient operator takes a heuristic decision: abort on node 6002, without the coordinator. The lock is released, but the coordinator had decided commit.",
        watch: "The in-doubt panel's alarm: a heuristic outcome that disagrees with the coordinator.",
        actions: &[Action::Heuristic {
            node: TO_NODE,
            decision: Decision::Abort,
        }],
        expect: "node 6002 no longer waits",
        check: receiver_decided_alone,
    },
    Step {
        says: "The coordinator comes back and commits as its log says: node 6001 debits A. Node 6002 never credits B. Money has left the system.",
        watch: "The top bar: the total is off and the banner says a heuristic decision broke atomicity.",
        actions: &[Action::Watch],
        expect: "node 6001 committed after recovery",
        check: sender_committed_after_recovery,
    },
];

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "happy",
        title: "The happy path",
        summary: "A transfer runs both phases and commits.",
        steps: HAPPY,
        explanation: "Two-phase commit makes two processes agree on one outcome. In phase 1 every node promises (votes ready) only after it can keep the promise through a crash: its PREPARED record is on disk. The coordinator's COMMIT record is the single point where the outcome is decided; phase 2 only tells the nodes. Each forced write costs an fdatasync, which is why a transfer takes milliseconds, not microseconds.",
    },
    Scenario {
        id: "insufficient",
        title: "Insufficient funds",
        summary: "A node votes abort; nothing moves.",
        steps: INSUFFICIENT,
        explanation: "A node that cannot do its part votes abort in phase 1, and a single abort vote aborts the whole transaction: neither leg is applied. The coordinator does not need to force an abort record first (presumed abort): a node that asks about a transaction the coordinator has no record of is told abort.",
    },
    Scenario {
        id: "crashed",
        title: "A participant dies before voting",
        summary: "The vote never comes; the transfer aborts; the node recovers in doubt and is told abort.",
        steps: CRASHED,
        explanation: "Until it votes, a node may abort on its own, and a coordinator that hears nothing within its timeout aborts. The crashed node had already forced PREPARED, so after its restart it cannot tell what the coordinator decided: it asks, and since the coordinator never wrote COMMIT, the answer is abort. No money moved, and no lock stays behind.",
    },
    Scenario {
        id: "blocked",
        title: "The coordinator dies after its COMMIT record",
        summary: "Both nodes are blocked in doubt until the coordinator recovers.",
        steps: BLOCKED,
        explanation: "This is 2PC's famous weakness: a node that voted ready must wait for the coordinator, however long, because the decision may already be made (here it was: the COMMIT record is the commit point, written before the crash). Aborting on a timeout would break atomicity. Recovery resolves it: the coordinator replays its log, re-sends commit, and the nodes, whose commit handling is idempotent, finish the transfer.",
    },
    Scenario {
        id: "heuristic",
        title: "A heuristic decision that disagrees",
        summary: "An operator aborts a blocked node by hand while the coordinator decided commit.",
        steps: HEURISTIC,
        explanation: "A heuristic decision is an operator overriding the protocol to free a blocked node. If it guesses the opposite of the coordinator, the transaction is no longer atomic: one leg applied, the other not, and the total is off by the amount. The dashboard reports the damage; no protocol can repair it. (This leaves the demo cluster's total wrong: start it again with --fresh.)",
    },
];

pub fn find(id: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.id == id)
}

/// The transaction id of one run of a scenario.
pub fn run_tx_id(scenario: &str, now_ms: u64) -> String {
    format!("scenario-{scenario}-{now_ms}")
}

/// The `scenario=` of an address fragment (`#scenario=blocked`).
pub fn from_fragment(fragment: &str) -> Option<&'static Scenario> {
    let fragment = fragment.strip_prefix('#').unwrap_or(fragment);
    fragment
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "scenario")
        .and_then(|(_, id)| find(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, kind: EventKind) -> Event {
        Event {
            seq,
            ts_ms: seq,
            kind,
        }
    }

    #[test]
    fn every_scenario_is_found_by_its_address_and_has_steps() {
        assert!(SCENARIOS.len() >= 5);
        for s in SCENARIOS {
            assert_eq!(
                from_fragment(&format!("#scenario={}", s.id)).map(|f| f.id),
                Some(s.id)
            );
            assert!(!s.steps.is_empty() && !s.explanation.is_empty());
        }
        assert!(from_fragment("#scenario=nope").is_none());
        assert_eq!(
            from_fragment("t=3&scenario=blocked").map(|s| s.id),
            Some("blocked")
        );
    }

    /// Each check of the happy path ticks only once its events are in.
    #[test]
    fn the_happy_paths_checks_follow_the_events() {
        let t = || "t".to_string();
        let n = |s: &str| s.to_string();
        let all = [
            ev(
                1,
                EventKind::PrepareSent {
                    tx_id: t(),
                    node: n("6001"),
                },
            ),
            ev(
                2,
                EventKind::PrepareSent {
                    tx_id: t(),
                    node: n("6002"),
                },
            ),
            ev(
                3,
                EventKind::Vote {
                    tx_id: t(),
                    node: n("6001"),
                    vote: VoteView::Ready,
                    reason: None,
                },
            ),
            ev(
                4,
                EventKind::Vote {
                    tx_id: t(),
                    node: n("6002"),
                    vote: VoteView::Ready,
                    reason: None,
                },
            ),
            ev(
                5,
                EventKind::LogForced {
                    tx_id: t(),
                    node: n(COORDINATOR),
                    record: n("commit"),
                },
            ),
            ev(
                6,
                EventKind::Ack {
                    tx_id: t(),
                    node: n("6001"),
                    decision: Decision::Commit,
                },
            ),
            ev(
                7,
                EventKind::TxFinished {
                    tx_id: t(),
                    outcome: shared::api::Outcome::Committed,
                    reason: None,
                    duration_ms: 1.0,
                },
            ),
            ev(
                8,
                EventKind::Ack {
                    tx_id: t(),
                    node: n("6002"),
                    decision: Decision::Commit,
                },
            ),
        ];
        let ticks = |upto: usize| -> Vec<bool> {
            let seen = Seen {
                events: &all[..upto],
                tx: None,
                cluster: None,
            };
            HAPPY.iter().map(|s| (s.check)(&seen)).collect()
        };
        assert_eq!(ticks(1), [false, false, false, false]);
        assert_eq!(ticks(2), [true, false, false, false]);
        assert_eq!(ticks(4), [true, true, false, false]);
        assert_eq!(ticks(7), [true, true, true, false]);
        assert_eq!(ticks(8), [true, true, true, true]);
    }
}
