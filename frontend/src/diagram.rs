//! Layout of the sequence diagram: the events of one transaction become
//! lanes (a lifeline for the coordinator and each node) and rows (one per
//! event: an arrow between two lifelines or a mark on one), with
//! coordinates in a fixed-width SVG user space. Pure: the protocol panel
//! only draws what [`layout`] returns.

use shared::api::VoteView;
use shared::events::{Event, EventKind, COORDINATOR};
use shared::money::format_cents;
use shared::wire::NodeId;

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

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// A message from one lifeline to another; `dashed` when it never arrived.
    Arrow {
        from_x: f64,
        to_x: f64,
        dashed: bool,
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
}

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
enum Glyph {
    Arrow {
        from: NodeId,
        to: NodeId,
        dashed: bool,
    },
    Mark {
        at: NodeId,
    },
}

fn glyph_of(kind: &EventKind) -> Option<(Glyph, String, Tone)> {
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
        EventKind::LogForced { node, record, .. } => {
            (Glyph::Mark { at: node.clone() }, format!("force {record}"))
        }
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
        EventKind::Snapshot(_)
        | EventKind::Lagged { .. }
        | EventKind::NodeStatus { .. }
        | EventKind::CoordinatorStatus { .. }
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

/// `+0 ms`, `+12 ms`, `+1.5 s`.
fn elapsed_label(ms: u64) -> String {
    if ms < 1_000 {
        format!("+{ms} ms")
    } else {
        format!("+{:.1} s", ms as f64 / 1_000.0)
    }
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
    let lane_w = (WIDTH - GUTTER_W - MARGIN_RIGHT) / lane_ids.len() as f64;
    let lanes: Vec<Lane> = lane_ids
        .iter()
        .enumerate()
        .map(|(i, id)| Lane {
            id: id.clone(),
            label: if id == COORDINATOR {
                "coordinator".to_string()
            } else {
                format!("node {id}")
            },
            x: GUTTER_W + lane_w * (i as f64 + 0.5),
        })
        .collect();
    let x_of = |id: &NodeId| {
        lanes
            .iter()
            .find(|l| &l.id == id)
            .map(|l| l.x)
            .unwrap_or(lanes[0].x)
    };
    let rightmost_x = lanes.last().map(|l| l.x).unwrap_or(0.0);
    let first_ts_ms = events.iter().map(|e| e.ts_ms).min().unwrap_or(0);

    let mut rows = Vec::new();
    let mut repeats = RepeatFilter::default();
    for event in events {
        if repeats.is_repeat(&event.kind) {
            continue;
        }
        let Some((glyph, label, tone)) = glyph_of(&event.kind) else {
            continue;
        };
        let index = rows.len();
        let y = HEAD_H + ROW_H * (index as f64 + 0.75);
        let time_label = elapsed_label(event.ts_ms.saturating_sub(first_ts_ms));
        let row = match glyph {
            Glyph::Arrow { from, to, dashed } => {
                let (from_x, to_x) = (x_of(&from), x_of(&to));
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
                    },
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
                }
            }
        };
        rows.push(row);
    }
    let lifeline_bottom = HEAD_H + ROW_H * (rows.len().max(1) as f64) + 4.0;
    Layout {
        width: WIDTH,
        height: lifeline_bottom + FOOT_H,
        lanes,
        rows,
        lifeline_top: HEAD_H - 8.0,
        lifeline_bottom,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::wire::{AbortReason, Decision};

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
                dashed: false
            }
        );
        let ready = &layout.rows[4];
        assert_eq!(ready.tone, Tone::Good);
        assert_eq!(
            ready.shape,
            Shape::Arrow {
                from_x: x("6001"),
                to_x: x(COORDINATOR),
                dashed: false
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
                dashed: true
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
        assert_eq!(row.label, "force PREPARED");
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
}
