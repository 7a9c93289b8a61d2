//! Guided scenarios: short narrated runs the page drives step by step
//! against the real cluster, each step checked from the live events (a
//! green tick when what it says happened did happen), each scenario ending
//! with a paragraph that says what it showed. Pure: the definitions and
//! the checks; `components/scenarios.rs` runs them.
//!
//! One scenario is not run on the cluster but replayed: the original
//! demo's bug, as the model checker's counterexample (a recording served
//! with the page, [`ORIGINAL_BUG_RECORDING`]). Its steps are ticked from
//! the recorded events, moment by moment ([`next_tick`]).
//!
//! A scenario's transfer carries its own `tx_id`, so its events are found
//! in that transaction's timeline even when the coordinator crashes before
//! answering. A check reads [`Seen`]: that timeline (which also holds the
//! coordinator's crash and restart, see `model.rs`), the transaction's row
//! in the history and the cluster view.

use shared::api::{ClusterView, ComponentStatus, TransactionSummary, TxState, VoteView};
use shared::events::{Event, EventKind, COORDINATOR};
use shared::fold::COMMIT_RECORD;
use shared::wire::{AbortReason, Decision, ParticipantCrashPoint, TxId};

use crate::model::Model;
use crate::replay::Replay;

/// The demo cluster's accounts (DESIGN.md): A on 6001, B on 6002.
pub const FROM: &str = "A";
pub const TO: &str = "B";
pub const FROM_NODE: &str = "6001";
pub const TO_NODE: &str = "6002";

/// Where the page finds the model checker's counterexample for the
/// original demo's bug (`frontend/recordings/`, copied into `dist/` by
/// trunk; written by `shared/tests/model_check.rs`).
pub const ORIGINAL_BUG_RECORDING: &str = "/recordings/original-bug.jsonl";

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
    /// A recording (its address) the scenario replays instead of running
    /// on the cluster: its steps only watch.
    pub replays: Option<&'static str>,
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

fn rolled_back(seen: &Seen, node: &str) -> bool {
    any(seen, |k| match k {
        EventKind::RollbackSent { node: n, .. } => n == node,
        EventKind::Resolved {
            node: n,
            decision: Decision::Abort,
            ..
        } => n == node,
        _ => false,
    })
}

/// A node that voted ready decided abort alone: it says so in its ack
/// though nobody told it to roll back, or its card holds the transaction
/// neither in doubt nor locked though no decision was ever sent to it.
fn aborted_alone(seen: &Seen) -> bool {
    let Some(tx) = seen.tx else {
        return false;
    };
    let voted_ready = |node: &str| {
        any(
            seen,
            |k| matches!(k, EventKind::Vote { node: n, vote: VoteView::Ready, .. } if n == node),
        )
    };
    let told = |node: &str| {
        rolled_back(seen, node)
            || any(
                seen,
                |k| matches!(k, EventKind::CommitSent { node: n, .. } if n == node),
            )
    };
    let said_abort = |node: &str| {
        any(
            seen,
            |k| matches!(k, EventKind::Ack { node: n, decision: Decision::Abort, .. } if n == node),
        )
    };
    let let_go = |node: &str| {
        seen.cluster.is_some_and(|c| {
            c.nodes.iter().any(|n| {
                n.id == node && !n.in_doubt.contains(&tx.tx_id) && n.locked_accounts.is_empty()
            })
        })
    };
    let nodes = seen.cluster.map_or(&[][..], |c| c.nodes.as_slice());
    nodes.iter().map(|n| n.id.as_str()).any(|node| {
        voted_ready(node)
            && !rolled_back(seen, node)
            && (said_abort(node) || (let_go(node) && !told(node)))
    })
}

/// One node applied the commit and another answered abort; no node holds
/// anything in doubt or locked, so nothing in flight will put the money
/// back; and the total of every balance is not what it was.
fn money_not_conserved(seen: &Seen) -> bool {
    let Some(cluster) = seen.cluster else {
        return false;
    };
    let acked = |decision: Decision| {
        any(
            seen,
            |k| matches!(k, EventKind::Ack { decision: d, .. } if *d == decision),
        )
    };
    let settled = cluster
        .nodes
        .iter()
        .all(|n| n.in_doubt.is_empty() && n.locked_accounts.is_empty());
    acked(Decision::Commit)
        && acked(Decision::Abort)
        && settled
        && cluster.total_complete
        && cluster.total_cents != cluster.expected_total_cents
}

/// The client was told "committed" though a leg aborted.
fn told_committed_anyway(seen: &Seen) -> bool {
    money_not_conserved(seen)
        && any(seen, |k| {
            matches!(
                k,
                EventKind::TxFinished {
                    outcome: shared::api::Outcome::Committed,
                    ..
                }
            )
        })
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

const ORIGINAL_BUG: &[Step] = &[
    Step {
        says: "The model checker's own counterexample, replayed: the real coordinator and participant machines in the checker's tiny world (accounts of $1.00, timeouts of a few dozen microseconds, each microsecond shown as a millisecond). A client moves $0.60 from A to B; the coordinator asks both nodes to prepare.",
        watch: "The top bar says \"replaying\"; the diagram: two prepare arrows.",
        actions: &[Action::Watch],
        expect: "both nodes were asked to prepare",
        check: prepares_sent,
    },
    Step {
        says: "Both nodes lock their accounts, force PREPARED and vote ready. Each has now promised to do whatever the coordinator decides.",
        watch: "The ready arrows; each node card lists the transaction in doubt.",
        actions: &[Action::Watch],
        expect: "both nodes voted ready",
        check: both_ready,
    },
    Step {
        says: "Here is the original demo's bug: the coordinator's decision is slow to come (its COMMIT record is still on its way to the disk), and a node that voted ready waits only so long. After its timeout it aborts on its own: it drops the transaction and unlocks its account, though nobody told it anything.",
        watch: "A node card no longer lists the transaction in doubt and holds no lock; no rollback arrow in the diagram.",
        actions: &[Action::Watch],
        expect: "a node that voted ready let the transaction go without being told",
        check: aborted_alone,
    },
    Step {
        says: "Every vote was ready, so the coordinator's COMMIT record becomes durable: the transfer is committed, whatever any node did meanwhile. It sends commit to both nodes.",
        watch: "The commit point band and the commit arrows.",
        actions: &[Action::Watch],
        expect: "the COMMIT record is durable",
        check: commit_record_forced,
    },
    Step {
        says: "One node applies the commit; the node that gave up answers abort. One leg applied, the other aborted: money has left the system (or entered it), and nothing in flight will put it back.",
        watch: "The acks, one commit and one abort; the balances and the total in the top bar, no longer the total the run started with.",
        actions: &[Action::Watch],
        expect: "one node applied, the other answered abort, nothing in doubt, and the total is off",
        check: money_not_conserved,
    },
    Step {
        says: "The coordinator keeps re-sending commit and the node keeps answering abort; meanwhile the client is told the transfer committed.",
        watch: "The transfer's row in History.",
        actions: &[Action::Watch],
        expect: "the client was told committed",
        check: told_committed_anyway,
    },
];

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "happy",
        title: "The happy path",
        summary: "A transfer runs both phases and commits.",
        steps: HAPPY,
        explanation: "Two-phase commit makes two processes agree on one outcome. In phase 1 every node promises (votes ready) only after it can keep the promise through a crash: its PREPARED record is on disk. The coordinator's COMMIT record is the single point where the outcome is decided; phase 2 only tells the nodes. Each forced write costs an fdatasync, which is why a transfer takes milliseconds, not microseconds.",
        replays: None,
    },
    Scenario {
        id: "insufficient",
        title: "Insufficient funds",
        summary: "A node votes abort; nothing moves.",
        steps: INSUFFICIENT,
        explanation: "A node that cannot do its part votes abort in phase 1, and a single abort vote aborts the whole transaction: neither leg is applied. The coordinator does not need to force an abort record first (presumed abort): a node that asks about a transaction the coordinator has no record of is told abort.",
        replays: None,
    },
    Scenario {
        id: "crashed",
        title: "A participant dies before voting",
        summary: "The vote never comes; the transfer aborts; the node recovers in doubt and is told abort.",
        steps: CRASHED,
        explanation: "Until it votes, a node may abort on its own, and a coordinator that hears nothing within its timeout aborts. The crashed node had already forced PREPARED, so after its restart it cannot tell what the coordinator decided: it asks, and since the coordinator never wrote COMMIT, the answer is abort. No money moved, and no lock stays behind.",
        replays: None,
    },
    Scenario {
        id: "blocked",
        title: "The coordinator dies after its COMMIT record",
        summary: "Both nodes are blocked in doubt until the coordinator recovers.",
        steps: BLOCKED,
        explanation: "This is 2PC's famous weakness: a node that voted ready must wait for the coordinator, however long, because the decision may already be made (here it was: the COMMIT record is the commit point, written before the crash). Aborting on a timeout would break atomicity. Recovery resolves it: the coordinator replays its log, re-sends commit, and the nodes, whose commit handling is idempotent, finish the transfer.",
        replays: None,
    },
    Scenario {
        id: "heuristic",
        title: "A heuristic decision that disagrees",
        summary: "An operator aborts a blocked node by hand while the coordinator decided commit.",
        steps: HEURISTIC,
        explanation: "A heuristic decision is an operator overriding the protocol to free a blocked node. If it guesses the opposite of the coordinator, the transaction is no longer atomic: one leg applied, the other not, and the total is off by the amount. The dashboard reports the damage; no protocol can repair it. (This leaves the demo cluster's total wrong: start it again with --fresh.)",
        replays: None,
    },
    Scenario {
        id: "original-bug",
        title: "The original demo's bug",
        summary: "Replayed from the model checker: a prepared node aborts on a timeout while the coordinator commits.",
        steps: ORIGINAL_BUG,
        explanation: "A node that voted ready has given away its right to decide: the coordinator may already have decided commit (here it had, and the other node applied it), so aborting on a timeout breaks atomicity and the books no longer balance. The real protocol never does that: a prepared node keeps its locks and waits in doubt, however long, asking the coordinator until it learns the decision (the blocked scenario); only an operator may override it, as a heuristic decision the dashboard reports. Nobody wrote this run by hand: the model checker found it on its own, exploring every order of messages, fsyncs and timers, when the fix was taken away (shared/tests/model_check.rs), and the same machines replayed its path into this recording.",
        replays: Some(ORIGINAL_BUG_RECORDING),
    },
];

/// The least account A holds when a live scenario starts: earlier runs,
/// chaos and load may have left it nearly empty, and a scenario that meant
/// to commit would see its transfer refused for insufficient funds.
pub const FROM_FLOAT_CENTS: i64 = 10_000;

/// What the reset moves from B back to A so that A can pay for every
/// transfer of `scenario` (and holds at least [`FROM_FLOAT_CENTS`]):
/// `Ok(None)` if it already can, `Err` if B cannot make up the difference.
pub fn top_up(scenario: &Scenario, from_cents: i64, to_cents: i64) -> Result<Option<i64>, String> {
    let spends: i64 = scenario
        .steps
        .iter()
        .flat_map(|s| s.actions)
        .map(|a| match a {
            Action::Transfer { amount_cents } => *amount_cents,
            _ => 0,
        })
        .sum();
    let needed = spends.max(FROM_FLOAT_CENTS);
    if from_cents >= needed {
        return Ok(None);
    }
    let missing = needed - from_cents;
    if to_cents < missing {
        return Err(format!(
            "account {FROM} holds {} and {TO} {}: together less than the {} this scenario needs in {FROM}",
            shared::money::format_cents(from_cents),
            shared::money::format_cents(to_cents),
            shared::money::format_cents(needed),
        ));
    }
    Ok(Some(missing))
}

pub fn find(id: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.id == id)
}

/// Whether a step's check holds in `model` for the transaction `tx_id`.
pub fn holds(model: &Model, step: &Step, tx_id: &str) -> bool {
    let events = model
        .timeline(tx_id)
        .map(|t| t.events.as_slice())
        .unwrap_or(&[]);
    let seen = Seen {
        events,
        tx: model.transactions.iter().find(|t| t.tx_id == tx_id),
        cluster: model.cluster.as_ref(),
    };
    (step.check)(&seen)
}

/// The transaction a recorded run is about: its first one started.
pub fn recorded_tx_id(replay: &Replay) -> Option<TxId> {
    replay.events().iter().find_map(|e| match &e.kind {
        EventKind::TxStarted { tx_id, .. } => Some(tx_id.clone()),
        _ => None,
    })
}

/// The first moment of a recorded run, from position `from` on, at which
/// `step` holds for `tx_id`; `None` if it never does before the end.
pub fn next_tick(replay: &mut Replay, from: usize, step: &Step, tx_id: &str) -> Option<usize> {
    (from..replay.len()).find(|&at| holds(&replay.model_at(at), step, tx_id))
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

    /// A nearly empty A (what a chaos run can leave) is topped up from B
    /// before a scenario whose transfer must commit.
    #[test]
    fn the_reset_tops_up_a_nearly_empty_sender() {
        let happy = find("happy").unwrap();
        assert_eq!(
            top_up(happy, 600, 199_400),
            Ok(Some(FROM_FLOAT_CENTS - 600))
        );
        assert_eq!(top_up(happy, FROM_FLOAT_CENTS, 0), Ok(None));
        assert_eq!(top_up(happy, 150_000, 50_000), Ok(None));
        let e = top_up(happy, 600, 1_000).unwrap_err();
        assert!(
            e.contains("$6.00") && e.contains("$10.00") && e.contains("$100.00"),
            "{e}"
        );
        // Every live scenario can pay for its own transfers after a top-up.
        for scenario in SCENARIOS.iter().filter(|s| s.replays.is_none()) {
            let more = top_up(scenario, 0, 200_000).unwrap().unwrap();
            assert!(more >= FROM_FLOAT_CENTS, "{}", scenario.id);
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

    fn recorded(text: &str) -> Replay {
        let run = shared::recording::parse(text, usize::MAX).expect("a recording");
        Replay::new(
            crate::replay::Source::File {
                name: "original-bug.jsonl".into(),
            },
            run.header.note,
            run.events,
        )
    }

    const ORIGINAL_BUG_TEXT: &str = include_str!("../recordings/original-bug.jsonl");

    /// Where each step of the original bug's scenario ticks in `replay`,
    /// walking it forward as the panel does.
    fn ticks(replay: &mut Replay) -> Vec<Option<usize>> {
        let scenario = find("original-bug").expect("the scenario");
        let tx_id = recorded_tx_id(replay).expect("a transaction");
        let mut at = 0;
        scenario
            .steps
            .iter()
            .map(|step| {
                let tick = next_tick(replay, at, step, &tx_id);
                at = tick.unwrap_or(at);
                tick
            })
            .collect()
    }

    /// The committed counterexample plays to the last tick, each step at a
    /// moment of its own or later than the one before, none at the start.
    #[test]
    fn the_original_bug_ticks_every_step_from_the_committed_recording() {
        let scenario = find("original-bug").expect("the scenario");
        assert_eq!(scenario.replays, Some(ORIGINAL_BUG_RECORDING));
        assert!(scenario
            .steps
            .iter()
            .all(|s| s.actions.iter().all(|a| *a == Action::Watch)));
        let mut replay = recorded(ORIGINAL_BUG_TEXT);
        assert_eq!(recorded_tx_id(&replay).as_deref(), Some("t1"));
        let at_start = replay.model_at(0);
        assert!(scenario.steps.iter().all(|s| !holds(&at_start, s, "t1")));
        let ticks = ticks(&mut replay);
        assert!(ticks.iter().all(Option::is_some), "{ticks:?}");
        let ticks: Vec<usize> = ticks.into_iter().flatten().collect();
        assert!(ticks.windows(2).all(|w| w[0] <= w[1]), "{ticks:?}");
        // At the end the money is off: one leg applied, the other aborted.
        let end = replay.model_at(replay.last());
        let cluster = end.cluster.expect("a cluster");
        assert_ne!(cluster.total_cents, cluster.expected_total_cents);
    }

    /// A run where the node that voted ready keeps waiting (its own abort
    /// and its abort answers taken out) never ticks the abort, nor the
    /// money lost.
    #[test]
    fn a_node_that_keeps_waiting_never_ticks_the_original_bug() {
        let run = shared::recording::parse(ORIGINAL_BUG_TEXT, usize::MAX).expect("a recording");
        let gave_up = |e: &Event| match &e.kind {
            EventKind::NodeState {
                in_doubt,
                locked_accounts,
                ..
            } => in_doubt.is_empty() && locked_accounts.is_empty(),
            EventKind::Ack {
                decision: Decision::Abort,
                ..
            } => true,
            _ => false,
        };
        let removed = run.events.iter().filter(|e| gave_up(e)).count();
        assert!(removed >= 2, "the recording shows the node giving up");
        let waiting: Vec<Event> = run.events.into_iter().filter(|e| !gave_up(e)).collect();
        let mut replay = Replay::new(
            crate::replay::Source::File { name: "w".into() },
            None,
            waiting,
        );
        let ticks = ticks(&mut replay);
        assert!(ticks[0].is_some() && ticks[1].is_some(), "{ticks:?}");
        assert_eq!(ticks[2], None, "no node gave up: {ticks:?}");
        let tx_id = recorded_tx_id(&replay).expect("a transaction");
        let end = replay.model_at(replay.last());
        let lost = find("original-bug").expect("the scenario").steps[4];
        assert!(!holds(&end, &lost, &tx_id));
    }
}
