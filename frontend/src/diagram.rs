//! Layout of the sequence diagram: the events of one transaction become
//! lanes (a lifeline for the coordinator and each node) and rows (one per
//! event: an arrow between two lifelines or a mark on one), with
//! coordinates in a fixed-width SVG user space. Pure: the protocol panel
//! only draws what [`layout`] returns.
//!
//! A message the coordinator holds (step mode) is an arrow stopped half
//! way, marked with its id so the panel can offer to deliver, drop,
//! duplicate or delay it: a held `prepare`/`commit`/`rollback` is the
//! arrow of its `*_sent` event; a held vote or ack gets its own row until
//! it goes on (then the machine's own event draws it). A dropped message
//! stays half way, crossed out.

use shared::api::{ComponentStatus, VoteView};
use shared::events::{Direction, Event, EventKind, MessageName, COORDINATOR};
use shared::money::format_cents;
use shared::wire::{Decision, NodeId};

use crate::format::{
    decision_label, duration_ms, outcome_label, reason_label, tone_of, vote_label, Tone,
};

/// Width of the SVG user space; the SVG scales to its panel.
pub const WIDTH: f64 = 720.0;
/// Height of the lane heads above the first row.
pub const HEAD_H: f64 = 56.0;
/// Height of one row (one event).
pub const ROW_H: f64 = 36.0;
/// Left gutter holding the time of each row.
pub const GUTTER_W: f64 = 62.0;
pub const MARGIN_RIGHT: f64 = 20.0;
/// Space below the last row.
pub const FOOT_H: f64 = 18.0;
/// Extra space above a row that begins a protocol step, for its band.
pub const PHASE_H: f64 = 18.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    pub id: NodeId,
    pub label: String,
    pub x: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    pub fn svg(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// A message the coordinator held: its id (as the API names it) and what
/// became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageMark {
    pub id: u64,
    pub state: MessageState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Waiting at the coordinator: the arrow can be clicked.
    Held,
    /// Gone on (twice for a duplicate, after a delay).
    Released { copies: u8, delay_ms: u64 },
    /// Thrown away: it never arrives.
    Dropped,
}

/// How far an arrow goes when its message is held or dropped: short of
/// its receiver and never on another lifeline (lanes are evenly spaced).
pub const HELD_ARROW_REACH: f64 = 0.62;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// A message from one lifeline to another; `dashed` when it never
    /// arrived; `reach` is the part of the way it went (1 for all of it).
    Arrow {
        from_x: f64,
        to_x: f64,
        dashed: bool,
        reach: f64,
    },
    /// Something that happened at one participant (a log force, a decision).
    Mark { x: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Index in the drawn rows: the key of the keyed list.
    pub index: usize,
    pub y: f64,
    /// Time since the transaction's first event, e.g. `+12 ms`.
    pub time_label: String,
    pub label: String,
    pub label_x: f64,
    pub label_y: f64,
    pub anchor: Anchor,
    pub tone: Tone,
    pub shape: Shape,
    /// Set when the coordinator held this message.
    pub message: Option<MessageMark>,
    /// The protocol step this row begins, drawn as a band label above it
    /// ("phase 1 · prepare / vote", "commit point", ...).
    pub phase: Option<&'static str>,
}

/// The band label of phase 1.
pub const PHASE_PREPARE: &str = "phase 1 · prepare / vote";
/// The band label of the coordinator's COMMIT record forced.
pub const PHASE_COMMIT_POINT: &str = "commit point: COMMIT record durable, the outcome is decided";
/// The band label of phase 2 after a commit.
pub const PHASE_COMMIT: &str = "phase 2 · commit / ack";
/// The band label of phase 2 after an abort.
pub const PHASE_ROLLBACK: &str = "phase 2 · rollback / ack";
/// The band label of the coordinator's crash.
pub const PHASE_CRASH: &str = "coordinator crash: its memory is gone, its log is not";
/// The band label of recovery after a crash.
pub const PHASE_RECOVERY: &str = "recovery: the log is replayed, the nodes are asked";

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    pub lanes: Vec<Lane>,
    pub rows: Vec<Row>,
    /// Where lifelines start and end.
    pub lifeline_top: f64,
    pub lifeline_bottom: f64,
}

/// What an event draws, before coordinates.
pub(crate) enum Glyph {
    Arrow {
        from: NodeId,
        to: NodeId,
        dashed: bool,
    },
    Mark {
        at: NodeId,
    },
}

/// The message an event's arrow stands for, by node and protocol step
/// (what a `message_held` of the same message names).
fn sent_message(kind: &EventKind) -> Option<(&NodeId, u8)> {
    match kind {
        EventKind::PrepareSent { node, .. } => Some((node, MessageName::Prepare.phase())),
        EventKind::CommitSent { node, .. }
        | EventKind::RollbackSent { node, .. }
        | EventKind::Resolved { node, .. } => Some((node, MessageName::Commit.phase())),
        _ => None,
    }
}

pub(crate) fn glyph_of(kind: &EventKind) -> Option<(Glyph, String, Tone)> {
    let coordinator = || COORDINATOR.to_string();
    let to_node = |node: &NodeId| Glyph::Arrow {
        from: coordinator(),
        to: node.clone(),
        dashed: false,
    };
    let from_node = |node: &NodeId, dashed: bool| Glyph::Arrow {
        from: node.clone(),
        to: coordinator(),
        dashed,
    };
    let (glyph, label) = match kind {
        EventKind::TxStarted {
            from,
            to,
            amount_cents,
            one_phase,
            ..
        } => {
            let phases = if *one_phase { " · one-phase" } else { "" };
            let label = format!(
                "start {from} → {to} {}{phases}",
                format_cents(*amount_cents)
            );
            (Glyph::Mark { at: coordinator() }, label)
        }
        EventKind::PrepareSent { node, .. } => (to_node(node), "prepare".into()),
        EventKind::Vote {
            node, vote, reason, ..
        } => {
            let label = match reason {
                Some(reason) => format!("{} · {}", vote_label(*vote), reason_label(*reason)),
                None => vote_label(*vote).to_string(),
            };
            (from_node(node, *vote == VoteView::NoAnswer), label)
        }
        EventKind::LogForced { node, record, .. } => (
            Glyph::Mark { at: node.clone() },
            format!("{} written and synced (forced)", record.to_uppercase()),
        ),
        EventKind::Decision {
            decision, reason, ..
        } => {
            let mut label = format!("decide {}", decision_label(*decision).to_uppercase());
            if let Some(reason) = reason {
                label.push_str(&format!(" · {}", reason_label(*reason)));
            }
            (Glyph::Mark { at: coordinator() }, label)
        }
        EventKind::CommitSent { node, .. } => (to_node(node), "commit".into()),
        EventKind::RollbackSent { node, .. } => (to_node(node), "rollback".into()),
        EventKind::Ack { node, decision, .. } => (
            from_node(node, false),
            format!("ack {}", decision_label(*decision)),
        ),
        EventKind::TxFinished {
            outcome,
            reason,
            duration_ms: ms,
            ..
        } => {
            let mut label = format!("{} · {}", outcome_label(*outcome), duration_ms(*ms));
            if let Some(reason) = reason {
                label.push_str(&format!(" · {}", reason_label(*reason)));
            }
            (Glyph::Mark { at: coordinator() }, label)
        }
        EventKind::TxEnded { .. } => (Glyph::Mark { at: coordinator() }, "END: forgotten".into()),
        EventKind::RecoveryQuery { node } => (to_node(node), "in doubt?".into()),
        EventKind::InDoubtReported { node, tx_ids } => (
            from_node(node, false),
            format!("in doubt: {}", tx_ids.len()),
        ),
        EventKind::Resolved { node, decision, .. } => (
            to_node(node),
            format!("resolve: {}", decision_label(*decision)),
        ),
        EventKind::CoordinatorStatus { status } => {
            let label = match status {
                ComponentStatus::Down => "coordinator crashed: all it held in memory is lost",
                ComponentStatus::Recovering => "coordinator restarts: replays its log",
                ComponentStatus::Up => "coordinator back: finishes what its log says",
                ComponentStatus::Unreachable => "coordinator unreachable",
            };
            (Glyph::Mark { at: coordinator() }, label.to_string())
        }
        EventKind::Snapshot(_)
        | EventKind::Lagged { .. }
        | EventKind::NodeStatus { .. }
        | EventKind::Fault { .. }
        | EventKind::Balances { .. }
        | EventKind::NodeState { .. }
        | EventKind::MessageHeld { .. }
        | EventKind::MessageReleased { .. }
        | EventKind::MessageDropped { .. } => return None,
    };
    Some((glyph, label, tone_of(kind)))
}

fn mentioned_nodes(kind: &EventKind) -> Vec<NodeId> {
    match kind {
        EventKind::TxStarted { nodes, .. } => nodes.clone(),
        EventKind::PrepareSent { node, .. }
        | EventKind::Vote { node, .. }
        | EventKind::LogForced { node, .. }
        | EventKind::CommitSent { node, .. }
        | EventKind::RollbackSent { node, .. }
        | EventKind::Ack { node, .. }
        | EventKind::RecoveryQuery { node }
        | EventKind::InDoubtReported { node, .. }
        | EventKind::Resolved { node, .. } => vec![node.clone()],
        _ => Vec::new(),
    }
}

/// While a transaction waits in doubt, the coordinator's sweep asks each
/// node again every second and each node reports the same thing: draw one
/// query and one report per node until something else happens.
#[derive(Default)]
struct RepeatFilter {
    /// (is a report, node) drawn since the last other event.
    seen: Vec<(bool, NodeId)>,
}

impl RepeatFilter {
    fn is_repeat(&mut self, kind: &EventKind) -> bool {
        let key = match kind {
            EventKind::RecoveryQuery { node } => (false, node.clone()),
            EventKind::InDoubtReported { node, .. } => (true, node.clone()),
            _ => {
                self.seen.clear();
                return false;
            }
        };
        if self.seen.contains(&key) {
            return true;
        }
        self.seen.push(key);
        false
    }
}

/// Which protocol step the rows are in, so that each step's first row
/// gets its band label.
#[derive(Default)]
struct Phases {
    current: Option<&'static str>,
}

impl Phases {
    /// The band label `kind` begins, if it begins a new step.
    fn enters(&mut self, kind: &EventKind) -> Option<&'static str> {
        let next = match kind {
            EventKind::PrepareSent { .. } => PHASE_PREPARE,
            EventKind::LogForced { node, record, .. }
                if node == COORDINATOR && record == shared::fold::COMMIT_RECORD =>
            {
                PHASE_COMMIT_POINT
            }
            EventKind::CommitSent { .. } => PHASE_COMMIT,
            EventKind::RollbackSent { .. } => PHASE_ROLLBACK,
            EventKind::CoordinatorStatus {
                status: ComponentStatus::Down,
            } => PHASE_CRASH,
            EventKind::CoordinatorStatus { .. } | EventKind::RecoveryQuery { .. }
                if self.current == Some(PHASE_CRASH) =>
            {
                PHASE_RECOVERY
            }
            _ => return None,
        };
        // Phase 1 is entered once; a second prepare is part of it.
        if self.current == Some(next) || (next == PHASE_PREPARE && self.current.is_some()) {
            return None;
        }
        self.current = Some(next);
        Some(next)
    }
}

/// `+0 ms`, `+12 ms`, `+1.5 s`.
fn elapsed_label(ms: u64) -> String {
    if ms < 1_000 {
        format!("+{ms} ms")
    } else {
        format!("+{:.1} s", ms as f64 / 1_000.0)
    }
}

/// A row before coordinates.
struct Draft {
    glyph: Glyph,
    label: String,
    tone: Tone,
    ts_ms: u64,
    /// The message an outbound arrow stands for (see [`sent_message`]).
    sends: Option<(NodeId, u8)>,
    message: Option<MessageMark>,
    /// A held vote or ack's own row, once the message went on.
    hidden: bool,
    phase: Option<&'static str>,
}

impl Draft {
    /// The commit ack of `node`: an arrow from it with that label.
    fn acks_commit_of(&self, node: &str) -> bool {
        matches!(&self.glyph, Glyph::Arrow { from, .. } if from == node)
            && self.label.starts_with("ack commit")
    }

    fn mark_state(&mut self, state: MessageState, suffix: &str) {
        if let Some(mark) = self.message.as_mut() {
            mark.state = state;
        }
        if let Some(cut) = self.label.find(" · held") {
            self.label.truncate(cut);
        }
        self.label.push_str(suffix);
    }
}

/// The rows the events of one transaction draw, in order.
fn drafts_of(events: &[Event]) -> Vec<Draft> {
    let mut drafts: Vec<Draft> = Vec::new();
    let mut repeats = RepeatFilter::default();
    let mut phases = Phases::default();
    let mut acked = std::collections::BTreeSet::new();
    // Nodes whose COMMITTED record was forced, and those whose commit ack
    // was drawn before it.
    let mut committed_forced = std::collections::BTreeSet::new();
    let mut acked_before_force = std::collections::BTreeSet::new();
    for event in events {
        match &event.kind {
            EventKind::MessageHeld {
                id,
                node,
                direction,
                message,
                detail,
                ..
            } => {
                held(
                    &mut drafts,
                    event.ts_ms,
                    *id,
                    node,
                    *direction,
                    *message,
                    detail,
                );
                continue;
            }
            EventKind::MessageReleased {
                id,
                direction,
                copies,
                delay_ms,
                ..
            } => {
                if let Some(d) = drafts
                    .iter_mut()
                    .find(|d| d.message.is_some_and(|m| m.id == *id))
                {
                    d.hidden = *direction == Direction::ToCoordinator;
                    let mut suffix = String::new();
                    if *copies > 1 {
                        suffix.push_str(&format!(" · ×{copies}"));
                    }
                    if *delay_ms > 0 {
                        suffix.push_str(&format!(" · +{delay_ms} ms"));
                    }
                    let state = MessageState::Released {
                        copies: *copies,
                        delay_ms: *delay_ms,
                    };
                    d.mark_state(state, &suffix);
                }
                continue;
            }
            EventKind::MessageDropped { id, .. } => {
                if let Some(d) = drafts
                    .iter_mut()
                    .find(|d| d.message.is_some_and(|m| m.id == *id))
                {
                    d.mark_state(MessageState::Dropped, " · dropped");
                    d.tone = Tone::Bad;
                }
                continue;
            }
            _ => {}
        }
        if repeats.is_repeat(&event.kind) {
            continue;
        }
        let Some((glyph, mut label, tone)) = glyph_of(&event.kind) else {
            continue;
        };
        if let EventKind::Ack { node, decision, .. } = &event.kind {
            // After a coordinator restart the commit is sent again and the
            // node, which already applied it, simply acks again.
            if !acked.insert((node.clone(), *decision == Decision::Commit)) {
                label
                    .push_str(" again (the commit was re-sent; applying it twice changes nothing)");
            } else if *decision == Decision::Commit && !committed_forced.contains(node) {
                acked_before_force.insert(node.clone());
            }
        }
        if let EventKind::LogForced { node, record, .. } = &event.kind {
            // The node answered once it had applied the commit (`applied`),
            // before this record reached its disk.
            if record == shared::fold::COMMITTED_RECORD
                && committed_forced.insert(node.clone())
                && acked_before_force.remove(node)
            {
                if let Some(ack) = drafts.iter_mut().rev().find(|d| d.acks_commit_of(node)) {
                    ack.label
                        .push_str(" (applied; its COMMITTED record is forced next)");
                }
                label.push_str(
                    " · after its ack: the coordinator forgets the transfer only after this record",
                );
            }
        }
        drafts.push(Draft {
            glyph,
            label,
            tone,
            ts_ms: event.ts_ms,
            sends: sent_message(&event.kind).map(|(n, p)| (n.clone(), p)),
            message: None,
            hidden: false,
            phase: phases.enters(&event.kind),
        });
    }
    drafts.retain(|d| !d.hidden);
    drafts
}

/// A message held: its `*_sent` arrow stops half way, or (a vote, an ack,
/// a message whose arrow is not drawn) it gets a row of its own.
fn held(
    drafts: &mut Vec<Draft>,
    ts_ms: u64,
    id: u64,
    node: &NodeId,
    direction: Direction,
    message: MessageName,
    detail: &str,
) {
    let mark = Some(MessageMark {
        id,
        state: MessageState::Held,
    });
    let sent = drafts.iter_mut().rev().find(|d| {
        d.message.is_none()
            && d.sends
                .as_ref()
                .is_some_and(|(n, phase)| n == node && *phase == message.phase())
    });
    if let Some(d) = sent.filter(|_| direction == Direction::ToNode) {
        d.message = mark;
        d.label.push_str(&format!(" · held #{id}"));
        return;
    }
    let what = if detail.is_empty() || direction == Direction::ToNode {
        message.as_str().replace('_', " ")
    } else {
        format!("{} {detail}", message.as_str())
    };
    let coordinator = COORDINATOR.to_string();
    let glyph = match direction {
        Direction::ToNode => Glyph::Arrow {
            from: coordinator,
            to: node.clone(),
            dashed: false,
        },
        Direction::ToCoordinator => Glyph::Arrow {
            from: node.clone(),
            to: coordinator,
            dashed: false,
        },
    };
    drafts.push(Draft {
        glyph,
        label: format!("{what} · held #{id}"),
        tone: Tone::Warn,
        ts_ms,
        sends: None,
        message: mark,
        hidden: false,
        phase: None,
    });
}

/// Lays out the events of one transaction. `nodes` gives the lifelines to
/// show and their order (the cluster's nodes); nodes that only the events
/// mention are added after them.
pub fn layout(nodes: &[NodeId], events: &[Event]) -> Layout {
    let mut lane_ids: Vec<NodeId> = vec![COORDINATOR.to_string()];
    let from_events = events.iter().flat_map(|e| mentioned_nodes(&e.kind));
    for id in nodes.iter().cloned().chain(from_events) {
        if !lane_ids.contains(&id) {
            lane_ids.push(id);
        }
    }
    let lanes = lanes_of(&lane_ids, GUTTER_W, WIDTH - MARGIN_RIGHT);
    let x_of = |id: &NodeId| {
        lanes
            .iter()
            .find(|l| &l.id == id)
            .map(|l| l.x)
            .unwrap_or(lanes[0].x)
    };
    let rightmost_x = lanes.last().map(|l| l.x).unwrap_or(0.0);
    let drafts = drafts_of(events);
    // Times count from the first row drawn and never go back: an event
    // joined from elsewhere (a node's answer to an earlier in-doubt query)
    // may carry an older time than the rows before it.
    let first_ts_ms = drafts.first().map_or(0, |d| d.ts_ms);
    let mut shown_ms = 0;

    let mut rows = Vec::new();
    let mut bands_h = 0.0;
    for (index, draft) in drafts.into_iter().enumerate() {
        if draft.phase.is_some() {
            bands_h += PHASE_H;
        }
        let y = HEAD_H + bands_h + ROW_H * (index as f64 + 0.75);
        shown_ms = draft.ts_ms.saturating_sub(first_ts_ms).max(shown_ms);
        let time_label = elapsed_label(shown_ms);
        let (label, tone, message, phase) = (draft.label, draft.tone, draft.message, draft.phase);
        let row = match draft.glyph {
            Glyph::Arrow { from, to, dashed } => {
                let (from_x, to_x) = (x_of(&from), x_of(&to));
                let stopped = message
                    .is_some_and(|m| matches!(m.state, MessageState::Held | MessageState::Dropped));
                let reach = if stopped { HELD_ARROW_REACH } else { 1.0 };
                Row {
                    index,
                    y,
                    time_label,
                    label,
                    label_x: (from_x + to_x) / 2.0,
                    label_y: y - 7.0,
                    anchor: Anchor::Middle,
                    tone,
                    shape: Shape::Arrow {
                        from_x,
                        to_x,
                        dashed,
                        reach,
                    },
                    message,
                    phase,
                }
            }
            Glyph::Mark { at } => {
                let x = x_of(&at);
                // Labels point inwards so they never leave the picture.
                let (label_x, anchor) = if x >= rightmost_x && lanes.len() > 1 {
                    (x - 12.0, Anchor::End)
                } else {
                    (x + 12.0, Anchor::Start)
                };
                Row {
                    index,
                    y,
                    time_label,
                    label,
                    label_x,
                    label_y: y + 4.0,
                    anchor,
                    tone,
                    shape: Shape::Mark { x },
                    message,
                    phase,
                }
            }
        };
        rows.push(row);
    }
    let lifeline_bottom = HEAD_H + bands_h + ROW_H * (rows.len().max(1) as f64) + 4.0;
    Layout {
        width: WIDTH,
        height: lifeline_bottom + FOOT_H,
        lanes,
        rows,
        lifeline_top: HEAD_H - 8.0,
        lifeline_bottom,
    }
}

/// Lifelines for `ids` spread evenly between `left` and `right`.
pub(crate) fn lanes_of(ids: &[NodeId], left: f64, right: f64) -> Vec<Lane> {
    let lane_w = (right - left) / ids.len().max(1) as f64;
    ids.iter()
        .enumerate()
        .map(|(i, id)| Lane {
            id: id.clone(),
            label: if id == COORDINATOR {
                "coordinator".to_string()
            } else {
                format!("node {id}")
            },
            x: left + lane_w * (i as f64 + 0.5),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::wire::AbortReason;

    fn ev(seq: u64, ts_ms: u64, kind: EventKind) -> Event {
        Event { seq, ts_ms, kind }
    }

    fn nodes() -> Vec<NodeId> {
        vec!["6001".into(), "6002".into()]
    }

    fn aborted_transfer() -> Vec<Event> {
        vec![
            ev(
                1,
                100,
                EventKind::TxStarted {
                    tx_id: "t".into(),
                    from: "A".into(),
                    to: "B".into(),
                    amount_cents: 500,
                    nodes: nodes(),
                    one_phase: false,
                },
            ),
            ev(
                2,
                101,
                EventKind::PrepareSent {
                    tx_id: "t".into(),
                    node: "6001".into(),
                },
            ),
            ev(
                3,
                101,
                EventKind::PrepareSent {
                    tx_id: "t".into(),
                    node: "6002".into(),
                },
            ),
            ev(
                4,
                103,
                EventKind::LogForced {
                    tx_id: "t".into(),
                    node: "6001".into(),
                    record: "PREPARED".into(),
                },
            ),
            ev(
                5,
                104,
                EventKind::Vote {
                    tx_id: "t".into(),
                    node: "6001".into(),
                    vote: VoteView::Ready,
                    reason: None,
                },
            ),
            ev(
                6,
                3_101,
                EventKind::Vote {
                    tx_id: "t".into(),
                    node: "6002".into(),
                    vote: VoteView::NoAnswer,
                    reason: Some(AbortReason::Timeout),
                },
            ),
            ev(
                7,
                3_102,
                EventKind::Decision {
                    tx_id: "t".into(),
                    decision: Decision::Abort,
                    reason: Some(AbortReason::Timeout),
                },
            ),
            ev(
                8,
                3_102,
                EventKind::RollbackSent {
                    tx_id: "t".into(),
                    node: "6001".into(),
                },
            ),
            ev(
                9,
                3_103,
                EventKind::NodeStatus {
                    node: "6002".into(),
                    status: shared::api::ComponentStatus::Down,
                },
            ),
            ev(
                10,
                3_104,
                EventKind::Ack {
                    tx_id: "t".into(),
                    node: "6001".into(),
                    decision: Decision::Abort,
                },
            ),
        ]
    }

    /// A node answers a commit as soon as it has applied it (`applied`,
    /// drawn as its ack) and forces its COMMITTED record after: the rows
    /// say so, for that node only; and the coordinator's forced ABORT of
    /// another transfer is drawn as its own write.
    #[test]
    fn an_ack_ahead_of_its_committed_record_is_explained() {
        let t = || "t".to_string();
        let commit_ack = |seq, node: &str| {
            ev(
                seq,
                seq,
                EventKind::Ack {
                    tx_id: t(),
                    node: node.into(),
                    decision: Decision::Commit,
                },
            )
        };
        let forced = |seq, node: &str, record: &str| {
            ev(
                seq,
                seq,
                EventKind::LogForced {
                    tx_id: t(),
                    node: node.into(),
                    record: record.into(),
                },
            )
        };
        let events = vec![
            forced(1, COORDINATOR, "commit"),
            commit_ack(2, "6001"),
            forced(3, "6001", "committed"),
            // 6002 forced first, then acked: nothing to explain.
            forced(4, "6002", "committed"),
            commit_ack(5, "6002"),
        ];
        let layout = layout(&nodes(), &events);
        let labels: Vec<&str> = layout.rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels[1],
            "ack commit (applied; its COMMITTED record is forced next)"
        );
        assert!(
            labels[2].starts_with("COMMITTED written and synced (forced) · after its ack"),
            "{labels:?}"
        );
        assert_eq!(labels[3], "COMMITTED written and synced (forced)");
        assert_eq!(labels[4], "ack commit");

        let aborted = vec![forced(1, COORDINATOR, shared::fold::ABORT_RECORD)];
        let abort = super::layout(&nodes(), &aborted);
        assert_eq!(abort.rows[0].label, "ABORT written and synced (forced)");
    }

    #[test]
    fn lanes_are_the_coordinator_then_the_nodes_evenly_spaced() {
        let layout = layout(&nodes(), &[]);
        let ids: Vec<_> = layout.lanes.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, vec![COORDINATOR, "6001", "6002"]);
        let xs: Vec<f64> = layout.lanes.iter().map(|l| l.x).collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]));
        assert!((xs[1] - xs[0] - (xs[2] - xs[1])).abs() < 1e-9);
        assert!(xs[0] > GUTTER_W && xs[2] < WIDTH - MARGIN_RIGHT);
        assert!(layout.rows.is_empty());
        assert!(layout.height > HEAD_H);
    }

    #[test]
    fn every_protocol_event_is_one_row_in_order() {
        let layout = layout(&nodes(), &aborted_transfer());
        // The node_status event is not part of the picture.
        assert_eq!(layout.rows.len(), 9);
        assert!(layout.rows.windows(2).all(|w| w[0].y < w[1].y));
        assert!(layout
            .rows
            .iter()
            .all(|r| r.y < layout.lifeline_bottom && r.y > layout.lifeline_top));
        assert!(layout.height >= layout.lifeline_bottom);
    }

    #[test]
    fn arrows_go_between_the_right_lifelines_with_the_right_colour() {
        let layout = layout(&nodes(), &aborted_transfer());
        let x = |id: &str| layout.lanes.iter().find(|l| l.id == id).unwrap().x;
        let prepare = &layout.rows[2];
        assert_eq!(prepare.label, "prepare");
        assert_eq!(
            prepare.shape,
            Shape::Arrow {
                from_x: x(COORDINATOR),
                to_x: x("6002"),
                dashed: false,
                reach: 1.0
            }
        );
        let ready = &layout.rows[4];
        assert_eq!(ready.tone, Tone::Good);
        assert_eq!(
            ready.shape,
            Shape::Arrow {
                from_x: x("6001"),
                to_x: x(COORDINATOR),
                dashed: false,
                reach: 1.0
            }
        );
        let silent = &layout.rows[5];
        assert_eq!(silent.label, "no answer · timeout");
        assert_eq!(silent.tone, Tone::Bad);
        assert_eq!(
            silent.shape,
            Shape::Arrow {
                from_x: x("6002"),
                to_x: x(COORDINATOR),
                dashed: true,
                reach: 1.0
            }
        );
        let decision = &layout.rows[6];
        assert_eq!(decision.label, "decide ABORT · timeout");
        assert_eq!(decision.shape, Shape::Mark { x: x(COORDINATOR) });
        assert_eq!(layout.rows[7].tone, Tone::Bad);
    }

    #[test]
    fn marks_on_the_rightmost_lane_label_leftwards() {
        let events = vec![ev(
            1,
            5,
            EventKind::LogForced {
                tx_id: "t".into(),
                node: "6002".into(),
                record: "PREPARED".into(),
            },
        )];
        let layout = layout(&nodes(), &events);
        let row = &layout.rows[0];
        assert_eq!(row.anchor, Anchor::End);
        assert!(row.label_x < layout.lanes[2].x);
        assert_eq!(row.label, "PREPARED written and synced (forced)");
    }

    #[test]
    fn times_are_relative_to_the_first_event() {
        let layout = layout(&nodes(), &aborted_transfer());
        assert_eq!(layout.rows[0].time_label, "+0 ms");
        assert_eq!(layout.rows[3].time_label, "+3 ms");
        assert_eq!(layout.rows[5].time_label, "+3.0 s");
    }

    #[test]
    fn repeated_in_doubt_sweeps_draw_once_until_something_else_happens() {
        let report = |seq, node: &str| {
            ev(
                seq,
                seq,
                EventKind::InDoubtReported {
                    node: node.into(),
                    tx_ids: vec!["t".into()],
                },
            )
        };
        let query = |seq, node: &str| ev(seq, seq, EventKind::RecoveryQuery { node: node.into() });
        let events = vec![
            query(1, "6001"),
            report(2, "6001"),
            report(3, "6002"),
            report(4, "6001"),
            query(5, "6001"),
            report(6, "6002"),
            ev(
                7,
                7,
                EventKind::Resolved {
                    tx_id: "t".into(),
                    node: "6001".into(),
                    decision: Decision::Commit,
                },
            ),
            report(8, "6002"),
        ];
        let layout = layout(&nodes(), &events);
        let labels: Vec<&str> = layout.rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            vec![
                "in doubt?",
                "in doubt: 1",
                "in doubt: 1",
                "resolve: commit",
                "in doubt: 1"
            ]
        );
    }

    #[test]
    fn unknown_nodes_from_events_get_a_lane() {
        let events = vec![ev(
            1,
            0,
            EventKind::RecoveryQuery {
                node: "7001".into(),
            },
        )];
        let layout = layout(&nodes(), &events);
        assert_eq!(layout.lanes.len(), 4);
        assert_eq!(layout.lanes[3].label, "node 7001");
        assert_eq!(layout.rows[0].tone, Tone::Info);
    }

    fn held_event(seq: u64, id: u64, node: &str, message: MessageName, detail: &str) -> Event {
        ev(
            seq,
            seq,
            EventKind::MessageHeld {
                id,
                tx_id: "t".into(),
                node: node.into(),
                direction: message.direction(),
                message,
                detail: detail.into(),
            },
        )
    }

    fn released(seq: u64, id: u64, node: &str, message: MessageName, copies: u8) -> Event {
        ev(
            seq,
            seq,
            EventKind::MessageReleased {
                id,
                tx_id: "t".into(),
                node: node.into(),
                direction: message.direction(),
                message,
                copies,
                delay_ms: 0,
            },
        )
    }

    fn prepares_held() -> Vec<Event> {
        let mut events = aborted_transfer()[..3].to_vec();
        events.push(held_event(4, 1, "6001", MessageName::Prepare, "A -$5.00"));
        events.push(held_event(5, 2, "6002", MessageName::Prepare, "B +$5.00"));
        events
    }

    fn reach(row: &Row) -> f64 {
        match row.shape {
            Shape::Arrow { reach, .. } => reach,
            Shape::Mark { .. } => panic!("not an arrow: {row:?}"),
        }
    }

    #[test]
    fn a_held_prepare_is_its_arrow_stopped_half_way_with_the_message_id() {
        let layout = layout(&nodes(), &prepares_held());
        assert_eq!(layout.rows.len(), 3, "no extra rows: {:?}", layout.rows);
        let (to_6001, to_6002) = (&layout.rows[1], &layout.rows[2]);
        assert_eq!(
            to_6001.message,
            Some(MessageMark {
                id: 1,
                state: MessageState::Held
            })
        );
        assert_eq!(to_6002.message.map(|m| m.id), Some(2));
        assert_eq!(reach(to_6001), HELD_ARROW_REACH);
        assert_eq!(to_6001.label, "prepare · held #1");
    }

    #[test]
    fn a_released_message_arrives_and_a_dropped_one_stays_half_way() {
        let mut events = prepares_held();
        events.push(released(6, 1, "6001", MessageName::Prepare, 2));
        events.push(ev(
            7,
            7,
            EventKind::MessageDropped {
                id: 2,
                tx_id: "t".into(),
                node: "6002".into(),
                direction: Direction::ToNode,
                message: MessageName::Prepare,
            },
        ));
        let layout = layout(&nodes(), &events);
        let (to_6001, to_6002) = (&layout.rows[1], &layout.rows[2]);
        assert_eq!(reach(to_6001), 1.0);
        assert_eq!(to_6001.label, "prepare · ×2");
        assert!(matches!(
            to_6001.message.map(|m| m.state),
            Some(MessageState::Released { copies: 2, .. })
        ));
        assert_eq!(reach(to_6002), HELD_ARROW_REACH);
        assert_eq!(to_6002.label, "prepare · dropped");
        assert_eq!(to_6002.tone, Tone::Bad);
    }

    #[test]
    fn a_held_vote_has_its_own_row_until_the_coordinator_receives_it() {
        let mut events = prepares_held();
        events.push(released(6, 1, "6001", MessageName::Prepare, 1));
        events.push(held_event(7, 3, "6001", MessageName::Vote, "ready"));
        let held = layout(&nodes(), &events);
        let row = held.rows.last().expect("a row");
        assert_eq!(row.label, "vote ready · held #3");
        assert_eq!(row.message.map(|m| m.id), Some(3));
        let x = |id: &str| held.lanes.iter().find(|l| l.id == id).expect("a lane").x;
        assert!(
            matches!(row.shape, Shape::Arrow { from_x, to_x, .. } if from_x == x("6001") && to_x == x(COORDINATOR))
        );
        events.push(released(8, 3, "6001", MessageName::Vote, 1));
        events.push(ev(
            9,
            9,
            EventKind::Vote {
                tx_id: "t".into(),
                node: "6001".into(),
                vote: VoteView::Ready,
                reason: None,
            },
        ));
        let received = layout(&nodes(), &events);
        let labels: Vec<&str> = received.rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            ["start A → B $5.00", "prepare", "prepare · held #2", "ready"]
        );
    }

    /// A commit interrupted by a coordinator crash after its COMMIT record:
    /// each protocol step gets its band (phase 1, the commit point, the
    /// crash, recovery, phase 2), the crash and the restart are drawn on
    /// the coordinator's lifeline, a second ack says why it came, and the
    /// times count from the start and never go back, even for a node's
    /// answer to a query older than the transaction.
    #[test]
    fn a_crash_after_the_commit_point_is_drawn_with_its_recovery() {
        let t = || "t".to_string();
        let n = |s: &str| s.to_string();
        let events = vec![
            ev(
                1,
                10_000,
                EventKind::TxStarted {
                    tx_id: t(),
                    from: n("A"),
                    to: n("B"),
                    amount_cents: 100,
                    nodes: nodes(),
                    one_phase: false,
                },
            ),
            ev(
                2,
                10_001,
                EventKind::PrepareSent {
                    tx_id: t(),
                    node: n("6001"),
                },
            ),
            ev(
                3,
                10_001,
                EventKind::PrepareSent {
                    tx_id: t(),
                    node: n("6002"),
                },
            ),
            ev(
                4,
                10_003,
                EventKind::Vote {
                    tx_id: t(),
                    node: n("6001"),
                    vote: VoteView::Ready,
                    reason: None,
                },
            ),
            ev(
                5,
                10_003,
                EventKind::Vote {
                    tx_id: t(),
                    node: n("6002"),
                    vote: VoteView::Ready,
                    reason: None,
                },
            ),
            ev(
                6,
                10_005,
                EventKind::LogForced {
                    tx_id: t(),
                    node: n(COORDINATOR),
                    record: n("commit"),
                },
            ),
            ev(
                7,
                10_006,
                EventKind::CoordinatorStatus {
                    status: ComponentStatus::Down,
                },
            ),
            ev(
                8,
                13_000,
                EventKind::CoordinatorStatus {
                    status: ComponentStatus::Recovering,
                },
            ),
            // Joined from the node's sweep: an older query.
            ev(9, 2_000, EventKind::RecoveryQuery { node: n("6001") }),
            ev(
                10,
                13_010,
                EventKind::CommitSent {
                    tx_id: t(),
                    node: n("6001"),
                },
            ),
            ev(
                11,
                13_020,
                EventKind::Ack {
                    tx_id: t(),
                    node: n("6001"),
                    decision: Decision::Commit,
                },
            ),
            ev(
                12,
                13_030,
                EventKind::Ack {
                    tx_id: t(),
                    node: n("6001"),
                    decision: Decision::Commit,
                },
            ),
        ];
        let layout = layout(&nodes(), &events);
        let phases: Vec<&str> = layout.rows.iter().filter_map(|r| r.phase).collect();
        assert_eq!(
            phases,
            [
                PHASE_PREPARE,
                PHASE_COMMIT_POINT,
                PHASE_CRASH,
                PHASE_RECOVERY,
                PHASE_COMMIT
            ]
        );
        let labels: Vec<&str> = layout.rows.iter().map(|r| r.label.as_str()).collect();
        assert!(
            labels.contains(&"COMMIT written and synced (forced)"),
            "{labels:?}"
        );
        assert!(
            labels.iter().any(|l| l.starts_with("coordinator crashed")),
            "{labels:?}"
        );
        assert!(
            labels.iter().any(|l| l.starts_with("coordinator restarts")),
            "{labels:?}"
        );
        let acks: Vec<&str> = labels
            .iter()
            .copied()
            .filter(|l| l.starts_with("ack"))
            .collect();
        assert_eq!(acks[0], "ack commit");
        assert!(
            acks[1].starts_with("ack commit again (the commit was re-sent"),
            "{acks:?}"
        );
        let times: Vec<&str> = layout.rows.iter().map(|r| r.time_label.as_str()).collect();
        assert_eq!(times[0], "+0 ms");
        let query = labels
            .iter()
            .position(|l| *l == "in doubt?")
            .expect("drawn");
        assert_eq!(times[query], "+3.0 s", "never before the row above it");
        // Each band adds its height: rows never overlap.
        assert!(layout.rows.windows(2).all(|w| w[1].y - w[0].y >= ROW_H));
        assert!(layout.rows.iter().all(|r| r.y < layout.lifeline_bottom));
    }
}
