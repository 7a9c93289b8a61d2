//! Layout of the space-time view: many transactions at once on the same
//! lifelines (the coordinator and each node), time going down, in the
//! style of Lamport's diagrams. Each transaction has a colour; a message is
//! a slanted arrow from its sender at the time it was sent to its receiver
//! at the time it was received.
//!
//! The events are the coordinator's, so a node's own moment (when it got a
//! prepare and voted) is drawn half way between the coordinator's send and
//! its receipt of the answer. Time is by order of events, not by clock:
//! causality, not duration, is what the view shows.
//!
//! Lock waits between transactions are read from the same events: a node
//! holds a transaction's accounts from its `ready` vote to its ack. A
//! prepare sent while another transaction holds one of its accounts there
//! either waits (the wait-die rule lets the younger one wait for the older
//! one: a dotted bar until the holder's ack) or is refused with
//! `lock_conflict`: at once when it is the older one (an older
//! transaction never waits for a younger one), or after waiting longer
//! than the lock wait. Age is the order in which they started. Pure.

use std::collections::BTreeMap;

use shared::api::VoteView;
use shared::events::{Event, EventKind, COORDINATOR};
use shared::money::format_cents;
use shared::wire::{AbortReason, AccountId, NodeId, TxId};

use crate::diagram::{lanes_of, Lane};
use crate::format::short_tx_id;

/// Width of the SVG user space.
pub const WIDTH: f64 = 720.0;
/// Height of the lane heads.
pub const HEAD_H: f64 = 48.0;
/// Height of one step of time (one event).
pub const ROW_H: f64 = 20.0;
pub const MARGIN_X: f64 = 24.0;
pub const FOOT_H: f64 = 16.0;
/// Transactions drawn at once (the newest).
pub const TXS_SHOWN_MAX: usize = 8;
/// Colours of the transactions, reused in turn.
pub const PALETTE_LEN: usize = 8;

/// A transaction drawn, with its colour.
#[derive(Debug, Clone, PartialEq)]
pub struct TxKey {
    pub tx_id: TxId,
    pub color: usize,
    /// `…tx-1-7 A → B $25.00`
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrowState {
    Arrived,
    /// Sent, not (yet) answered: it stops short of its receiver.
    InFlight,
    /// Held by the coordinator (step mode).
    Held,
    Dropped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Arrow {
    pub tx_id: TxId,
    pub color: usize,
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
    pub label: String,
    pub state: ArrowState,
}

/// Something that happened on one lifeline (a start, a log force, a decision).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub tx_id: TxId,
    pub color: usize,
    pub x: f64,
    pub y: f64,
    pub label: String,
}

/// `tx_id` waited at a node for `holder` to release a lock.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub tx_id: TxId,
    pub holder: TxId,
    pub color: usize,
    pub x: f64,
    pub y1: f64,
    pub y2: f64,
    pub label: String,
}

/// `tx_id` was refused a lock (`lock_conflict`) at a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub tx_id: TxId,
    pub holder: Option<TxId>,
    pub x: f64,
    pub y: f64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpaceTime {
    pub width: f64,
    pub height: f64,
    pub lanes: Vec<Lane>,
    pub txs: Vec<TxKey>,
    pub arrows: Vec<Arrow>,
    pub marks: Vec<Mark>,
    pub waits: Vec<Wait>,
    pub refusals: Vec<Refusal>,
    pub lifeline_top: f64,
    pub lifeline_bottom: f64,
}

fn y_of(row: f64) -> f64 {
    HEAD_H + ROW_H * (row + 0.5)
}

/// A message sent and not answered yet.
struct Request {
    row: usize,
    label: String,
    state: ArrowState,
}

/// What is known of one transaction at one node.
#[derive(Default)]
struct AtNode {
    /// Its prepare was sent at this row.
    prepare_row: Option<usize>,
    /// Its vote: at which row (coordinator side), the node's moment, how.
    vote: Option<(usize, f64, VoteView, Option<AbortReason>)>,
    /// The row of its ack (it released its locks).
    ack_row: Option<usize>,
    accounts: Vec<AccountId>,
}

struct Builder<'a> {
    x_of: &'a dyn Fn(&str) -> f64,
    colors: BTreeMap<TxId, usize>,
    arrows: Vec<Arrow>,
    marks: Vec<Mark>,
    requests: BTreeMap<(TxId, NodeId), Request>,
    forced: BTreeMap<(TxId, NodeId), String>,
    nodes: BTreeMap<(TxId, NodeId), AtNode>,
}

impl Builder<'_> {
    fn color(&self, tx: &str) -> usize {
        self.colors.get(tx).copied().unwrap_or(0)
    }

    fn mark(&mut self, tx: &str, at: &str, row: f64, label: String) {
        self.marks.push(Mark {
            tx_id: tx.to_string(),
            color: self.color(tx),
            x: (self.x_of)(at),
            y: y_of(row),
            label,
        });
    }

    fn arrow(
        &mut self,
        tx: &str,
        from: (&str, f64),
        to: (&str, f64),
        label: String,
        state: ArrowState,
    ) {
        self.arrows.push(Arrow {
            tx_id: tx.to_string(),
            color: self.color(tx),
            x1: (self.x_of)(from.0),
            y1: y_of(from.1),
            x2: (self.x_of)(to.0),
            y2: y_of(to.1),
            label,
            state,
        });
    }

    fn request(&mut self, tx: &str, node: &str, row: usize, label: &str) {
        let key = (tx.to_string(), node.to_string());
        self.requests.insert(
            key,
            Request {
                row,
                label: label.to_string(),
                state: ArrowState::InFlight,
            },
        );
    }

    /// An answer from `node` received at `row`: the request it answers
    /// (if drawn) meets it at the node half way between. Returns the
    /// node's moment.
    fn reply(&mut self, tx: &str, node: &str, row: usize, label: String) -> f64 {
        let key = (tx.to_string(), node.to_string());
        let request = self.requests.remove(&key);
        let moment = match &request {
            Some(r) => (r.row as f64 + row as f64) / 2.0,
            None => row as f64 - 0.5,
        };
        if let Some(r) = request {
            self.arrow(
                tx,
                (COORDINATOR, r.row as f64),
                (node, moment),
                r.label,
                ArrowState::Arrived,
            );
        }
        if let Some(record) = self.forced.remove(&key) {
            self.mark(tx, node, moment, format!("force {record}"));
        }
        self.arrow(
            tx,
            (node, moment),
            (COORDINATOR, row as f64),
            label,
            ArrowState::Arrived,
        );
        moment
    }

    fn at_node(&mut self, tx: &str, node: &str) -> &mut AtNode {
        self.nodes
            .entry((tx.to_string(), node.to_string()))
            .or_default()
    }
}

/// The accounts each node holds for a transfer (`tx_started` names the
/// debit's node first, the credit's last).
fn accounts_by_node(from: &str, to: &str, nodes: &[NodeId]) -> Vec<(NodeId, AccountId)> {
    match nodes {
        [only] => vec![
            (only.clone(), from.to_string()),
            (only.clone(), to.to_string()),
        ],
        [first, .., last] => vec![
            (first.clone(), from.to_string()),
            (last.clone(), to.to_string()),
        ],
        [] => Vec::new(),
    }
}

/// Lays out `timelines` (each a transaction's events, oldest transaction
/// first) on the lifelines of `nodes`; the newest [`TXS_SHOWN_MAX`] are drawn.
pub fn layout(nodes: &[NodeId], timelines: &[(TxId, Vec<Event>)]) -> SpaceTime {
    let shown = &timelines[timelines.len().saturating_sub(TXS_SHOWN_MAX)..];
    let mut events: Vec<(usize, &Event)> = shown
        .iter()
        .enumerate()
        .flat_map(|(i, (tx, list))| {
            list.iter()
                .filter(move |e| e.kind.tx_id() == Some(tx.as_str()))
                .map(move |e| (i, e))
        })
        .collect();
    events.sort_by_key(|(_, e)| e.seq);

    let mut lane_ids: Vec<NodeId> = vec![COORDINATOR.to_string()];
    for id in nodes {
        if !lane_ids.contains(id) {
            lane_ids.push(id.clone());
        }
    }
    for (_, e) in &events {
        if let EventKind::TxStarted { nodes, .. } = &e.kind {
            for id in nodes {
                if !lane_ids.contains(id) {
                    lane_ids.push(id.clone());
                }
            }
        }
    }
    let lanes = lanes_of(&lane_ids, MARGIN_X, WIDTH - MARGIN_X);
    let x_of = |id: &str| {
        lanes
            .iter()
            .find(|l| l.id == id)
            .map_or(lanes[0].x, |l| l.x)
    };

    let mut txs = Vec::new();
    let mut colors = BTreeMap::new();
    for (i, (tx, list)) in shown.iter().enumerate() {
        let color = i % PALETTE_LEN;
        colors.insert(tx.clone(), color);
        let what = list.iter().find_map(|e| match &e.kind {
            EventKind::TxStarted {
                from,
                to,
                amount_cents,
                ..
            } => Some(format!(" {from} → {to} {}", format_cents(*amount_cents))),
            _ => None,
        });
        txs.push(TxKey {
            tx_id: tx.clone(),
            color,
            label: format!("{}{}", short_tx_id(tx), what.unwrap_or_default()),
        });
    }

    let mut b = Builder {
        x_of: &x_of,
        colors,
        arrows: Vec::new(),
        marks: Vec::new(),
        requests: BTreeMap::new(),
        forced: BTreeMap::new(),
        nodes: BTreeMap::new(),
    };
    let mut started_order: Vec<TxId> = Vec::new();
    let mut row = 0usize;
    for (_, event) in &events {
        let tx = event.kind.tx_id().unwrap_or_default().to_string();
        let drew = match &event.kind {
            EventKind::TxStarted {
                from, to, nodes, ..
            } => {
                started_order.push(tx.clone());
                for (node, account) in accounts_by_node(from, to, nodes) {
                    b.at_node(&tx, &node).accounts.push(account);
                }
                b.mark(
                    &tx,
                    COORDINATOR,
                    row as f64,
                    format!("start {}", short_tx_id(&tx)),
                );
                true
            }
            EventKind::PrepareSent { node, .. } => {
                b.at_node(&tx, node).prepare_row = Some(row);
                b.request(&tx, node, row, "prepare");
                true
            }
            EventKind::CommitSent { node, .. } => {
                b.request(&tx, node, row, "commit");
                true
            }
            EventKind::RollbackSent { node, .. } => {
                b.request(&tx, node, row, "rollback");
                true
            }
            EventKind::Resolved { node, decision, .. } => {
                let label = format!("resolve {}", crate::format::decision_label(*decision));
                b.request(&tx, node, row, &label);
                true
            }
            EventKind::LogForced { node, record, .. } if node == COORDINATOR => {
                b.mark(&tx, COORDINATOR, row as f64, format!("force {record}"));
                true
            }
            EventKind::LogForced { node, record, .. } => {
                b.forced.insert((tx.clone(), node.clone()), record.clone());
                false
            }
            EventKind::Vote {
                node, vote, reason, ..
            } if *vote == VoteView::NoAnswer => {
                let why = reason.map(|r| r.as_str()).unwrap_or("no answer");
                b.mark(
                    &tx,
                    COORDINATOR,
                    row as f64,
                    format!("no vote from {node}: {why}"),
                );
                b.at_node(&tx, node).vote = Some((row, row as f64, *vote, *reason));
                true
            }
            EventKind::Vote {
                node, vote, reason, ..
            } => {
                let label = crate::format::vote_label(*vote).to_string();
                let moment = b.reply(&tx, node, row, label);
                b.at_node(&tx, node).vote = Some((row, moment, *vote, *reason));
                true
            }
            EventKind::Ack { node, decision, .. } => {
                let label = format!("ack {}", crate::format::decision_label(*decision));
                b.reply(&tx, node, row, label);
                b.at_node(&tx, node).ack_row = Some(row);
                true
            }
            EventKind::Decision { decision, .. } => {
                let label = format!("decide {}", crate::format::decision_label(*decision));
                b.mark(&tx, COORDINATOR, row as f64, label);
                true
            }
            EventKind::MessageHeld { node, .. } | EventKind::MessageReleased { node, .. } => {
                let state = match event.kind {
                    EventKind::MessageHeld { .. } => ArrowState::Held,
                    _ => ArrowState::InFlight,
                };
                if let Some(r) = b.requests.get_mut(&(tx.clone(), node.clone())) {
                    r.state = state;
                }
                false
            }
            EventKind::MessageDropped { node, .. } => {
                if let Some(r) = b.requests.get_mut(&(tx.clone(), node.clone())) {
                    r.state = ArrowState::Dropped;
                }
                false
            }
            _ => false,
        };
        if drew {
            row += 1;
        }
    }
    let rows = row.max(1);
    // Messages not answered (yet): short of their receiver.
    let pending: Vec<((TxId, NodeId), Request)> =
        std::mem::take(&mut b.requests).into_iter().collect();
    for ((tx, node), r) in pending {
        let from = x_of(COORDINATOR);
        let to = x_of(&node);
        let color = b.color(&tx);
        let (x2, y2) = (from + (to - from) * 0.5, y_of(r.row as f64 + 0.5));
        b.arrows.push(Arrow {
            tx_id: tx,
            color,
            x1: from,
            y1: y_of(r.row as f64),
            x2,
            y2,
            label: r.label,
            state: r.state,
        });
    }
    let (waits, refusals) = lock_waits(&b.nodes, &started_order, &x_of, rows);
    let lifeline_bottom = HEAD_H + ROW_H * rows as f64 + 4.0;
    let arrows = b.arrows;
    let marks = b.marks;
    SpaceTime {
        width: WIDTH,
        height: lifeline_bottom + FOOT_H,
        lanes,
        txs,
        arrows,
        marks,
        waits,
        refusals,
        lifeline_top: HEAD_H - 8.0,
        lifeline_bottom,
    }
}

/// Who waited for whom, and who was refused, at each node.
fn lock_waits(
    nodes: &BTreeMap<(TxId, NodeId), AtNode>,
    started_order: &[TxId],
    x_of: &dyn Fn(&str) -> f64,
    rows: usize,
) -> (Vec<Wait>, Vec<Refusal>) {
    let age = |tx: &str| {
        started_order
            .iter()
            .position(|t| t == tx)
            .unwrap_or(usize::MAX)
    };
    let color_of = |tx: &str| age(tx) % PALETTE_LEN;
    // Each (tx, node) that held its accounts: from its ready vote to its ack.
    let holds: Vec<(&TxId, &NodeId, f64, usize, &[AccountId])> = nodes
        .iter()
        .filter_map(|((tx, node), at)| {
            let (_, moment, vote, _) = at.vote?;
            (vote == VoteView::Ready).then_some((
                tx,
                node,
                moment,
                at.ack_row.unwrap_or(rows),
                at.accounts.as_slice(),
            ))
        })
        .collect();
    let mut waits = Vec::new();
    let mut refusals = Vec::new();
    for ((tx, node), at) in nodes {
        let (Some(asked), Some((vote_row, moment, vote, reason))) = (at.prepare_row, at.vote)
        else {
            continue;
        };
        // The holder of one of its accounts there when it asked, or when
        // it was answered.
        let holder = holds.iter().find(|(other, n, from, until, accounts)| {
            *other != tx
                && *n == node
                && accounts.iter().any(|a| at.accounts.contains(a))
                && *from < vote_row as f64
                && *until as f64 >= asked as f64
        });
        let x = x_of(node);
        match (vote, reason) {
            (VoteView::Ready, _) => {
                if let Some((holder, _, _, until, _)) = holder.filter(|h| h.3 <= vote_row) {
                    waits.push(Wait {
                        tx_id: tx.clone(),
                        holder: (*holder).clone(),
                        color: color_of(tx),
                        x,
                        y1: y_of(asked as f64 + 0.5),
                        y2: y_of(*until as f64),
                        label: format!("{} waits for {}", short_tx_id(tx), short_tx_id(holder)),
                    });
                }
            }
            (VoteView::Abort, Some(AbortReason::LockConflict)) => {
                let label = match holder {
                    Some((holder, _, _, _, _)) if age(tx) < age(holder) => format!(
                        "{} refused: older than {}, which holds the lock (an older one never waits for a younger one)",
                        short_tx_id(tx),
                        short_tx_id(holder)
                    ),
                    Some((holder, _, _, _, _)) => format!(
                        "{} refused: waited for the older {} longer than the lock wait",
                        short_tx_id(tx),
                        short_tx_id(holder)
                    ),
                    None => format!("{} refused: lock conflict", short_tx_id(tx)),
                };
                refusals.push(Refusal {
                    tx_id: tx.clone(),
                    holder: holder.map(|h| h.0.clone()),
                    x,
                    y: y_of(moment),
                    label,
                });
            }
            _ => {}
        }
    }
    (waits, refusals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::wire::Decision;

    fn nodes() -> Vec<NodeId> {
        vec!["6001".into(), "6002".into()]
    }

    struct Run {
        seq: u64,
        timelines: BTreeMap<String, Vec<Event>>,
        order: Vec<String>,
    }

    impl Run {
        fn new() -> Run {
            Run {
                seq: 0,
                timelines: BTreeMap::new(),
                order: Vec::new(),
            }
        }

        fn push(&mut self, tx: &str, kind: EventKind) {
            self.seq += 1;
            if !self.order.iter().any(|t| t == tx) {
                self.order.push(tx.to_string());
            }
            self.timelines
                .entry(tx.to_string())
                .or_default()
                .push(Event {
                    seq: self.seq,
                    ts_ms: self.seq,
                    kind,
                });
        }

        fn start(&mut self, tx: &str, from: &str, to: &str) {
            let nodes = vec!["6001".to_string(), "6002".to_string()];
            self.push(
                tx,
                EventKind::TxStarted {
                    tx_id: tx.into(),
                    from: from.into(),
                    to: to.into(),
                    amount_cents: 100,
                    nodes,
                    one_phase: false,
                },
            );
        }

        fn prepare(&mut self, tx: &str, node: &str) {
            self.push(
                tx,
                EventKind::PrepareSent {
                    tx_id: tx.into(),
                    node: node.into(),
                },
            );
        }

        fn vote(&mut self, tx: &str, node: &str, vote: VoteView, reason: Option<AbortReason>) {
            self.push(
                tx,
                EventKind::Vote {
                    tx_id: tx.into(),
                    node: node.into(),
                    vote,
                    reason,
                },
            );
        }

        fn ack(&mut self, tx: &str, node: &str) {
            self.push(
                tx,
                EventKind::Ack {
                    tx_id: tx.into(),
                    node: node.into(),
                    decision: Decision::Commit,
                },
            );
        }

        fn layout(&self) -> SpaceTime {
            let timelines: Vec<(TxId, Vec<Event>)> = self
                .order
                .iter()
                .map(|t| (t.clone(), self.timelines[t].clone()))
                .collect();
            layout(&nodes(), &timelines)
        }
    }

    #[test]
    fn messages_slant_from_their_sender_down_to_their_receiver() {
        let mut run = Run::new();
        run.start("t1", "A", "B");
        run.prepare("t1", "6001");
        run.start("t2", "B", "A");
        run.vote("t1", "6001", VoteView::Ready, None);
        let st = run.layout();
        assert_eq!(st.txs.len(), 2);
        assert_ne!(st.txs[0].color, st.txs[1].color);
        let x = |id: &str| st.lanes.iter().find(|l| l.id == id).expect("a lane").x;
        let prepare = st
            .arrows
            .iter()
            .find(|a| a.label == "prepare")
            .expect("the prepare");
        let ready = st
            .arrows
            .iter()
            .find(|a| a.label == "ready")
            .expect("the vote");
        assert_eq!((prepare.x1, prepare.x2), (x(COORDINATOR), x("6001")));
        assert!(prepare.y2 > prepare.y1, "time goes down");
        assert_eq!(
            (ready.x1, ready.y1),
            (prepare.x2, prepare.y2),
            "the vote leaves when the prepare arrives"
        );
        assert!(ready.y2 > ready.y1);
        assert_eq!(prepare.state, ArrowState::Arrived);
    }

    #[test]
    fn a_younger_transaction_waits_for_the_older_holder_until_its_ack() {
        let mut run = Run::new();
        run.start("old", "A", "B");
        run.prepare("old", "6001");
        run.vote("old", "6001", VoteView::Ready, None);
        run.start("young", "A", "B");
        run.prepare("young", "6001");
        run.ack("old", "6001");
        run.vote("young", "6001", VoteView::Ready, None);
        let st = run.layout();
        assert_eq!(st.waits.len(), 1, "{:?}", st.waits);
        let wait = &st.waits[0];
        assert_eq!(
            (wait.tx_id.as_str(), wait.holder.as_str()),
            ("young", "old")
        );
        assert_eq!(wait.label, "young waits for old");
        assert!(wait.y2 > wait.y1);
        assert!(st.refusals.is_empty());
    }

    #[test]
    fn a_refusal_says_whether_the_refused_was_older_or_younger_than_the_holder() {
        // The older one asks while the younger one holds A: refused at once.
        let mut run = Run::new();
        run.start("old", "A", "B");
        run.start("young", "A", "B");
        run.prepare("young", "6001");
        run.vote("young", "6001", VoteView::Ready, None);
        run.prepare("old", "6001");
        run.vote(
            "old",
            "6001",
            VoteView::Abort,
            Some(AbortReason::LockConflict),
        );
        let st = run.layout();
        assert_eq!(st.refusals.len(), 1);
        assert_eq!(st.refusals[0].holder.as_deref(), Some("young"));
        assert!(
            st.refusals[0].label.contains("older than young"),
            "{}",
            st.refusals[0].label
        );
        // The younger one waits for the older one, past the lock wait.
        let mut run = Run::new();
        run.start("old", "A", "B");
        run.prepare("old", "6001");
        run.vote("old", "6001", VoteView::Ready, None);
        run.start("young", "A", "B");
        run.prepare("young", "6001");
        run.vote(
            "young",
            "6001",
            VoteView::Abort,
            Some(AbortReason::LockConflict),
        );
        let st = run.layout();
        assert!(
            st.refusals[0].label.contains("waited for the older old"),
            "{}",
            st.refusals[0].label
        );
    }

    #[test]
    fn a_held_or_unanswered_message_stops_short_of_its_receiver() {
        let mut run = Run::new();
        run.start("t", "A", "B");
        run.prepare("t", "6001");
        run.prepare("t", "6002");
        run.push(
            "t",
            EventKind::MessageHeld {
                id: 4,
                tx_id: "t".into(),
                node: "6002".into(),
                direction: shared::events::Direction::ToNode,
                message: shared::events::MessageName::Prepare,
                detail: String::new(),
            },
        );
        let st = run.layout();
        let x = |id: &str| st.lanes.iter().find(|l| l.id == id).expect("a lane").x;
        let to = |node: &str| {
            let half_way = (x(COORDINATOR) + x(node)) / 2.0;
            st.arrows
                .iter()
                .find(|a| a.label == "prepare" && (a.x2 - half_way).abs() < 1e-9)
                .cloned()
        };
        assert_eq!(to("6002").expect("stops short").state, ArrowState::Held);
        assert_eq!(to("6001").expect("stops short").state, ArrowState::InFlight);
    }

    #[test]
    fn only_the_newest_transactions_are_drawn() {
        let mut run = Run::new();
        for i in 0..TXS_SHOWN_MAX + 3 {
            run.start(&format!("t{i}"), "A", "B");
        }
        let st = run.layout();
        assert_eq!(st.txs.len(), TXS_SHOWN_MAX);
        assert_eq!(st.txs[0].tx_id, "t3");
        assert_eq!(st.marks.len(), TXS_SHOWN_MAX);
    }
}
