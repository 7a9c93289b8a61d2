//! The event hub: gives every event its `seq` and timestamp, keeps the
//! recent transactions with their timelines and the running statistics, and
//! broadcasts each event (serialised once) to the WebSocket clients.
//!
//! Publishing never waits: the broadcast channel is bounded and a client
//! that falls behind is told it lagged (see `http::ws`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use shared::api::{
    transfer_legs, Leg, NodeVote, Outcome, Stats, TransactionDetail, TransactionSummary, TxState, VoteView,
};
use shared::events::{Event, EventKind};
use shared::limits::{COORDINATOR_HISTORY_KEPT_MAX, TX_TIMELINE_EVENTS_MAX, WS_CLIENT_QUEUE_MAX};
use shared::wire::{AccountId, Decision, NodeId};
use tokio::sync::{broadcast, Notify};

/// Latencies kept for the percentiles (a sliding window of the newest).
const LATENCY_SAMPLES_MAX: usize = 100_000;
/// Seconds of throughput history kept.
const THROUGHPUT_HISTORY_S: usize = 60;
/// Events a two-node transfer usually has (its timeline's first allocation).
const TIMELINE_CAPACITY_HINT: usize = 16;

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct TxEntry {
    summary: TransactionSummary,
    detail: Option<String>,
    legs: Vec<Leg>,
    votes: Vec<NodeVote>,
    timeline: Vec<Event>,
}

#[derive(Default)]
struct StatsAcc {
    attempted: u64,
    committed: u64,
    aborted: u64,
    aborts_by_reason: BTreeMap<String, u64>,
    latencies_ms: VecDeque<f64>,
    /// (unix second, committed in that second)
    per_second: VecDeque<(u64, u64)>,
}

struct Inner {
    seq: u64,
    txs: HashMap<String, TxEntry>,
    order: VecDeque<String>,
    stats: StatsAcc,
}

pub struct Hub {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<str>>,
    /// Wakes the balance watcher after events that move money or nodes.
    pub balances_dirty: Notify,
    account_nodes: BTreeMap<AccountId, NodeId>,
    started: Instant,
}

impl Hub {
    pub fn new(account_nodes: BTreeMap<AccountId, NodeId>) -> Hub {
        let (tx, _) = broadcast::channel(WS_CLIENT_QUEUE_MAX);
        Hub {
            inner: Mutex::new(Inner {
                seq: 0,
                txs: HashMap::new(),
                order: VecDeque::new(),
                stats: StatsAcc::default(),
            }),
            tx,
            balances_dirty: Notify::new(),
            account_nodes,
            started: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }

    pub fn seq(&self) -> u64 {
        self.lock().seq
    }

    /// Adds an event: numbers it, records it, broadcasts it.
    pub fn publish(&self, kind: EventKind) {
        self.publish_all(std::iter::once(kind));
    }

    /// Adds events in order: numbers them, records them, broadcasts them.
    ///
    /// This runs for every protocol step of every transaction (about 17 per
    /// transfer), so the engine hands over a whole turn's events at once:
    /// one lock and one clock reading for all of them. Each event is
    /// serialised only when a WebSocket client listens, and then moved (not
    /// cloned) into its transaction's timeline.
    pub fn publish_all(&self, kinds: impl IntoIterator<Item = EventKind>) {
        let mut wakes_balances = false;
        {
            let mut inner = self.lock();
            let ts_ms = unix_ms();
            let listening = self.tx.receiver_count() > 0;
            for kind in kinds {
                wakes_balances |= matches!(
                    kind,
                    EventKind::TxFinished { .. }
                        | EventKind::Ack { .. }
                        | EventKind::NodeStatus { .. }
                        | EventKind::Resolved { .. }
                );
                inner.seq += 1;
                let event = Event { seq: inner.seq, ts_ms, kind };
                crate::metrics::observe(&event);
                if listening {
                    if let Ok(json) = serde_json::to_string(&event) {
                        // Sent under the lock so clients see seq in order.
                        let _ = self.tx.send(json.into());
                    }
                }
                self.observe(&mut inner, event);
            }
        }
        if wakes_balances {
            self.balances_dirty.notify_one();
        }
    }

    fn observe(&self, inner: &mut Inner, event: Event) {
        if let EventKind::TxStarted {
            tx_id,
            from,
            to,
            amount_cents,
            ..
        } = &event.kind
        {
            inner.stats.attempted += 1;
            let legs = self.legs_of(from, to, *amount_cents);
            let entry = TxEntry {
                summary: TransactionSummary::started(tx_id, from, to, *amount_cents, event.ts_ms),
                detail: None,
                votes: legs
                    .iter()
                    .map(|l| NodeVote {
                        node: l.node.clone(),
                        vote: VoteView::NoAnswer,
                        reason: None,
                    })
                    .collect(),
                legs,
                timeline: Vec::with_capacity(TIMELINE_CAPACITY_HINT),
            };
            if inner.txs.insert(tx_id.clone(), entry).is_none() {
                inner.order.push_back(tx_id.clone());
                while inner.order.len() > COORDINATOR_HISTORY_KEPT_MAX {
                    if let Some(old) = inner.order.pop_front() {
                        inner.txs.remove(&old);
                    }
                }
            }
        }
        if let EventKind::TxFinished {
            outcome,
            reason,
            duration_ms,
            ..
        } = &event.kind
        {
            let stats = &mut inner.stats;
            match outcome {
                Outcome::Committed => {
                    stats.committed += 1;
                    let second = event.ts_ms / 1000;
                    match stats.per_second.back_mut() {
                        Some((s, n)) if *s == second => *n += 1,
                        _ => stats.per_second.push_back((second, 1)),
                    }
                    while stats.per_second.len() > THROUGHPUT_HISTORY_S + 1 {
                        stats.per_second.pop_front();
                    }
                }
                Outcome::Aborted => {
                    stats.aborted += 1;
                    let key = reason.map(|r| r.as_str()).unwrap_or("unknown");
                    match stats.aborts_by_reason.get_mut(key) {
                        Some(n) => *n += 1,
                        None => {
                            stats.aborts_by_reason.insert(key.to_string(), 1);
                        }
                    }
                }
            }
            stats.latencies_ms.push_back(*duration_ms);
            if stats.latencies_ms.len() > LATENCY_SAMPLES_MAX {
                stats.latencies_ms.pop_front();
            }
        }
        let Some(tx_id) = event.kind.tx_id() else {
            return;
        };
        let Some(entry) = inner.txs.get_mut(tx_id) else {
            return;
        };
        match &event.kind {
            EventKind::Vote {
                node, vote, reason, ..
            } => {
                if let Some(v) = entry.votes.iter_mut().find(|v| &v.node == node) {
                    v.vote = *vote;
                    v.reason = *reason;
                }
            }
            EventKind::Decision {
                decision, reason, ..
            } => {
                entry.summary.state = match decision {
                    Decision::Commit => TxState::Committed,
                    Decision::Abort => TxState::Aborted,
                };
                entry.summary.reason = *reason;
                if *decision == Decision::Commit {
                    entry.summary.pending_acks =
                        entry.legs.iter().map(|l| l.node.clone()).collect();
                }
            }
            EventKind::LogForced { node, .. } if node == shared::events::COORDINATOR => {
                entry.summary.state = TxState::Committed;
            }
            EventKind::Ack {
                node,
                decision: Decision::Commit,
                ..
            } => {
                entry.summary.pending_acks.retain(|n| n != node);
            }
            EventKind::TxFinished {
                outcome,
                reason,
                duration_ms,
                ..
            } => {
                entry.summary.duration_ms = Some(*duration_ms);
                entry.summary.reason = *reason;
                entry.summary.state = match outcome {
                    Outcome::Committed => TxState::Committed,
                    Outcome::Aborted => TxState::Aborted,
                };
            }
            EventKind::TxEnded { .. } => entry.summary.pending_acks.clear(),
            _ => {}
        }
        if entry.timeline.len() < TX_TIMELINE_EVENTS_MAX {
            entry.timeline.push(event);
        }
    }

    fn legs_of(&self, from: &str, to: &str, amount_cents: i64) -> Vec<Leg> {
        let node_of = |account: &str| self.account_nodes.get(account).map(String::as_str).unwrap_or_default();
        transfer_legs(from, to, amount_cents, node_of(from), node_of(to))
    }

    /// Records the human detail of a finished transfer (from its response).
    pub fn set_detail(&self, tx_id: &str, detail: Option<String>) {
        if let Some(entry) = self.lock().txs.get_mut(tx_id) {
            if entry.detail.is_none() {
                entry.detail = detail;
            }
        }
    }

    /// Most recent first.
    pub fn recent(&self, limit: usize) -> Vec<TransactionSummary> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .rev()
            .take(limit)
            .filter_map(|id| inner.txs.get(id).map(|e| e.summary.clone()))
            .collect()
    }

    pub fn detail(&self, tx_id: &str) -> Option<TransactionDetail> {
        let inner = self.lock();
        let e = inner.txs.get(tx_id)?;
        Some(TransactionDetail {
            summary: e.summary.clone(),
            detail: e.detail.clone(),
            legs: e.legs.clone(),
            votes: e.votes.clone(),
            timeline: e.timeline.clone(),
        })
    }

    pub fn stats(&self, in_flight: u64, log_forces: u64) -> Stats {
        let inner = self.lock();
        let s = &inner.stats;
        let mut sorted: Vec<f64> = s.latencies_ms.iter().copied().collect();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        };
        let now_s = unix_ms() / 1000;
        let per_second: BTreeMap<u64, u64> = s.per_second.iter().copied().collect();
        let throughput_history: Vec<u64> = (0..THROUGHPUT_HISTORY_S as u64)
            .rev()
            .map(|ago| per_second.get(&(now_s - ago)).copied().unwrap_or(0))
            .collect();
        // The last 10 complete seconds.
        let last10: u64 = (1..=10u64)
            .map(|ago| per_second.get(&(now_s - ago)).copied().unwrap_or(0))
            .sum();
        Stats {
            attempted: s.attempted,
            committed: s.committed,
            aborted: s.aborted,
            aborts_by_reason: s.aborts_by_reason.clone(),
            latency_ms: shared::api::LatencyMs {
                p50: pct(50.0),
                p90: pct(90.0),
                p99: pct(99.0),
                p999: pct(99.9),
                max: sorted.last().copied().unwrap_or(0.0),
            },
            throughput_per_s: last10 as f64 / 10.0,
            throughput_history,
            in_flight,
            log_forces,
            uptime_s: self.started.elapsed().as_secs_f64(),
        }
    }
}
