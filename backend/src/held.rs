//! Step mode's hold: protocol messages parked by the coordinator's engine,
//! both ways (coordinator → node and node → coordinator), each under an id
//! that the API and the dashboard share, until a person delivers, drops,
//! duplicates or delays it.
//!
//! The engine owns the store, so it dies with an engine crash like any
//! message in flight; the id counter outlives the engine, so an id is never
//! given twice. Only the 2PC messages are held (prepare, commit, rollback,
//! one-phase commit; votes, outcomes, `applied`, acks): handshakes,
//! queries and in-doubt sweeps go on, so the dashboard keeps seeing the
//! nodes while their protocol messages wait.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use shared::api::HeldMessageView;
use shared::events::{EventKind, MessageName};
use shared::limits::HELD_MESSAGES_MAX;
use shared::money::format_cents;
use shared::wire::{Decision, NodeId, Op, Reply, Request, TxId, Vote};

/// A held message, as it will go on.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    ToNode(Request),
    ToCoordinator(Reply),
}

#[derive(Debug, Clone)]
pub struct HeldMessage {
    pub id: u64,
    pub node: NodeId,
    pub tx_id: TxId,
    pub message: MessageName,
    pub detail: String,
    pub held_at: Instant,
    pub payload: Payload,
}

/// What [`Held::hold`] did with a message.
#[derive(Debug)]
pub enum Hold {
    /// Parked; this event says so.
    Held(EventKind),
    /// The same message to the same node is held already (a retry): this
    /// copy waits with it and goes when it goes.
    Coalesced,
    /// Not a protocol message, or the hold is full: it goes on now.
    Pass(Payload),
}

/// The held messages, oldest first.
#[derive(Debug)]
pub struct Held {
    ids: Arc<AtomicU64>,
    messages: BTreeMap<u64, HeldMessage>,
}

fn ops_detail(ops: &[Op]) -> String {
    ops.iter()
        .map(|op| {
            let sign = if op.delta_cents >= 0 { "+" } else { "" };
            format!("{} {sign}{}", op.account, format_cents(op.delta_cents))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn decision_word(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "commit",
        Decision::Abort => "abort",
    }
}

/// A coordinator → node message that can be held: its name, transaction
/// and what it says.
pub fn classify_request(msg: &Request) -> Option<(MessageName, &TxId, String)> {
    match msg {
        Request::Prepare { tx_id, ops, .. } => Some((MessageName::Prepare, tx_id, ops_detail(ops))),
        Request::CommitOnePhase { tx_id, ops, .. } => {
            Some((MessageName::CommitOnePhase, tx_id, ops_detail(ops)))
        }
        Request::Commit { tx_id } => Some((MessageName::Commit, tx_id, String::new())),
        Request::Rollback { tx_id } => Some((MessageName::Rollback, tx_id, String::new())),
        Request::Auth { .. }
        | Request::Recover
        | Request::Query { .. }
        | Request::ArmCrash { .. }
        | Request::Heuristic { .. } => None,
    }
}

/// A node → coordinator message that can be held.
pub fn classify_reply(msg: &Reply) -> Option<(MessageName, &TxId, String)> {
    match msg {
        Reply::Vote {
            tx_id,
            vote,
            reason,
        } => {
            let word = match vote {
                Vote::Ready => "ready".to_string(),
                Vote::Abort => match reason {
                    Some(reason) => format!("abort: {}", reason.as_str()),
                    None => "abort".to_string(),
                },
            };
            Some((MessageName::Vote, tx_id, word))
        }
        Reply::Outcome {
            tx_id, decision, ..
        } => Some((
            MessageName::Outcome,
            tx_id,
            decision_word(*decision).to_string(),
        )),
        Reply::Applied { tx_id } => Some((MessageName::Applied, tx_id, String::new())),
        Reply::Ack { tx_id, decision } => Some((
            MessageName::Ack,
            tx_id,
            decision_word(*decision).to_string(),
        )),
        Reply::Hello { .. }
        | Reply::Welcome { .. }
        | Reply::InDoubt { .. }
        | Reply::QueryResult { .. }
        | Reply::Error { .. } => None,
    }
}

impl Held {
    /// An empty hold drawing ids from `ids` (shared by every engine).
    pub fn new(ids: Arc<AtomicU64>) -> Held {
        Held {
            ids,
            messages: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Parks `payload` on its way to or from `node`, if it is a protocol
    /// message and there is room.
    pub fn hold(&mut self, node: &str, payload: Payload, now: Instant) -> Hold {
        let classified = match &payload {
            Payload::ToNode(msg) => classify_request(msg),
            Payload::ToCoordinator(msg) => classify_reply(msg),
        };
        let Some((message, tx_id, detail)) = classified else {
            return Hold::Pass(payload);
        };
        let (tx_id, detail) = (tx_id.clone(), detail);
        let repeat = self
            .messages
            .values()
            .any(|m| m.node == node && m.payload == payload);
        if repeat {
            return Hold::Coalesced;
        }
        if self.messages.len() >= HELD_MESSAGES_MAX {
            return Hold::Pass(payload);
        }
        let id = self.ids.fetch_add(1, Ordering::Relaxed) + 1;
        let held = HeldMessage {
            id,
            node: node.to_string(),
            tx_id: tx_id.clone(),
            message,
            detail: detail.clone(),
            held_at: now,
            payload,
        };
        self.messages.insert(id, held);
        Hold::Held(EventKind::MessageHeld {
            id,
            tx_id,
            node: node.to_string(),
            direction: message.direction(),
            message,
            detail,
        })
    }

    /// Takes the message `id` out of the hold.
    pub fn take(&mut self, id: u64) -> Option<HeldMessage> {
        self.messages.remove(&id)
    }

    /// Takes the oldest message out; with `phase`, every message of the
    /// oldest one's transaction and protocol step too (e.g. both prepares).
    pub fn next(&mut self, phase: bool) -> Vec<HeldMessage> {
        let Some((&first_id, first)) = self.messages.iter().next() else {
            return Vec::new();
        };
        if !phase {
            return self.take(first_id).into_iter().collect();
        }
        let (tx_id, step) = (first.tx_id.clone(), first.message.phase());
        let ids: Vec<u64> = self
            .messages
            .values()
            .filter(|m| m.tx_id == tx_id && m.message.phase() == step)
            .map(|m| m.id)
            .collect();
        ids.into_iter().filter_map(|id| self.take(id)).collect()
    }

    /// Takes every message out, oldest first.
    pub fn drain(&mut self) -> Vec<HeldMessage> {
        std::mem::take(&mut self.messages).into_values().collect()
    }

    /// What `GET /api/messages` lists, oldest first.
    pub fn views(&self, now: Instant) -> Vec<HeldMessageView> {
        self.messages
            .values()
            .map(|m| HeldMessageView {
                id: m.id,
                tx_id: m.tx_id.clone(),
                node: m.node.clone(),
                direction: m.message.direction(),
                message: m.message,
                detail: m.detail.clone(),
                held_for_ms: now.saturating_duration_since(m.held_at).as_millis() as u64,
            })
            .collect()
    }
}

/// The event of `m` going on: `copies` times after `delay_ms`.
pub fn released_event(m: &HeldMessage, copies: u8, delay_ms: u64) -> EventKind {
    EventKind::MessageReleased {
        id: m.id,
        tx_id: m.tx_id.clone(),
        node: m.node.clone(),
        direction: m.message.direction(),
        message: m.message,
        copies,
        delay_ms,
    }
}

/// The event of `m` thrown away.
pub fn dropped_event(m: &HeldMessage) -> EventKind {
    EventKind::MessageDropped {
        id: m.id,
        tx_id: m.tx_id.clone(),
        node: m.node.clone(),
        direction: m.message.direction(),
        message: m.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::events::Direction;
    use shared::wire::AbortReason;

    fn prepare(tx: &str, account: &str, delta_cents: i64) -> Payload {
        Payload::ToNode(Request::Prepare {
            tx_id: tx.into(),
            ts_us: 1,
            epoch: 1,
            ops: vec![Op {
                account: account.into(),
                delta_cents,
            }],
        })
    }

    fn vote(tx: &str) -> Payload {
        Payload::ToCoordinator(Reply::Vote {
            tx_id: tx.into(),
            vote: Vote::Abort,
            reason: Some(AbortReason::LockConflict),
        })
    }

    fn held_id(hold: Hold) -> u64 {
        match hold {
            Hold::Held(EventKind::MessageHeld { id, .. }) => id,
            other => panic!("not held: {other:?}"),
        }
    }

    #[test]
    fn protocol_messages_are_held_with_fresh_ids_and_others_pass() {
        let ids = Arc::new(AtomicU64::new(0));
        let mut held = Held::new(ids.clone());
        let now = Instant::now();
        let first = held.hold("6001", prepare("t", "A", -2_500), now);
        match &first {
            Hold::Held(EventKind::MessageHeld {
                id,
                message,
                direction,
                detail,
                ..
            }) => {
                assert_eq!(*id, 1);
                assert_eq!(*message, MessageName::Prepare);
                assert_eq!(*direction, Direction::ToNode);
                assert_eq!(detail, "A -$25.00");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(held_id(held.hold("6002", vote("t"), now)), 2);
        let query = Payload::ToNode(Request::Recover);
        assert!(matches!(held.hold("6001", query, now), Hold::Pass(_)));
        // A retry of a held message waits with it.
        assert!(matches!(
            held.hold("6001", prepare("t", "A", -2_500), now),
            Hold::Coalesced
        ));
        // A new engine keeps counting: ids are never given twice.
        let mut after_crash = Held::new(ids);
        assert_eq!(held_id(after_crash.hold("6001", vote("u"), now)), 3);
        let views = held.views(now);
        assert_eq!(views.iter().map(|v| v.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(views[1].detail, "abort: lock_conflict");
    }

    #[test]
    fn next_takes_the_oldest_or_its_whole_step() {
        let mut held = Held::new(Arc::new(AtomicU64::new(0)));
        let now = Instant::now();
        for (node, account) in [("6001", "A"), ("6002", "B")] {
            held.hold(node, prepare("t", account, 100), now);
        }
        held.hold("6001", prepare("u", "A", 5), now);
        held.hold("6001", vote("t"), now);
        let one: Vec<u64> = held.next(false).iter().map(|m| m.id).collect();
        assert_eq!(one, [1]);
        held.hold("6001", prepare("t", "A", 100), now);
        // t's prepares (the re-held one too), not u's, nor t's vote.
        let step: Vec<u64> = held.next(true).iter().map(|m| m.id).collect();
        assert_eq!(step, [2, 5]);
        assert_eq!(
            held.drain().iter().map(|m| m.id).collect::<Vec<_>>(),
            [3, 4]
        );
        assert!(held.next(true).is_empty());
    }

    #[test]
    fn the_hold_is_bounded() {
        let mut held = Held::new(Arc::new(AtomicU64::new(0)));
        let now = Instant::now();
        for i in 0..HELD_MESSAGES_MAX {
            held_id(held.hold("6001", prepare(&format!("t{i}"), "A", 1), now));
        }
        assert!(matches!(
            held.hold("6001", prepare("one-more", "A", 1), now),
            Hold::Pass(_)
        ));
    }
}
