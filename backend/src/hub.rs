//! The event hub: gives every event its `seq` and timestamp, keeps the
//! recent transactions with their timelines and the running statistics, and
//! broadcasts each event (serialised once) to the WebSocket clients.
//!
//! A transaction's state, votes and pending acks are its events folded by
//! `shared::fold`, the same fold the metrics and the dashboard use.
//! Publishing never waits: the broadcast channel is bounded and a client
//! that falls behind is told it lagged (see `http::ws`). When the
//! coordinator records, every event also goes to the recording's writer
//! thread (`crate::recording`), as JSON when it was serialised already.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use shared::api::{
    transfer_legs, Leg, Outcome, Stats, TransactionDetail, TransactionSummary, VoteView,
};
use shared::events::{Event, EventKind};
use shared::fold::TxFold;
use shared::limits::{COORDINATOR_HISTORY_KEPT_MAX, TX_TIMELINE_EVENTS_MAX, WS_CLIENT_QUEUE_MAX};
use shared::wire::{AbortReason, Decision, NodeId, TxId};
use tokio::sync::{broadcast, Notify};

use crate::recording::{Entry, Recorder};

use shared::limits::{LATENCY_SAMPLES_MAX, THROUGHPUT_HISTORY_S, TIMELINE_CAPACITY_HINT};

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct TxEntry {
    /// The summary as the transaction started: what its events decide
    /// later (state, reason, duration, pending acks) is the fold's.
    summary: TransactionSummary,
    detail: Option<String>,
    legs: Vec<Leg>,
    fold: TxFold,
    timeline: Vec<Step>,
}

/// A timeline event without what its transaction's entry already holds
/// (the tx id, the accounts, node names), rebuilt exactly when read.
///
/// Kept as published, each event's strings would be freed only when the
/// transfer leaves the history, long out of the cache. Anything that does
/// not fit the compact forms (a node that is not one of the legs, another
/// record name) is kept whole, so reading never guesses.
struct Step {
    seq: u64,
    ts_ms: u64,
    what: What,
}

/// A node of the transaction: its leg's index, or the coordinator.
#[derive(Clone, Copy)]
enum Who {
    Leg(u8),
    Coordinator,
}

#[derive(Clone, Copy)]
enum Record {
    Prepared,
    Committed,
    Commit,
}

impl Record {
    fn parse(name: &str) -> Option<Record> {
        match name {
            "prepared" => Some(Record::Prepared),
            "committed" => Some(Record::Committed),
            "commit" => Some(Record::Commit),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Record::Prepared => "prepared",
            Record::Committed => "committed",
            Record::Commit => "commit",
        }
    }
}

enum What {
    Whole(Box<EventKind>),
    /// `from`, `to`, `amount_cents` are the summary's; `nodes` the legs'.
    Started {
        one_phase: bool,
    },
    PrepareSent(Who),
    Vote(Who, VoteView, Option<AbortReason>),
    LogForced(Who, Record),
    Decision(Decision, Option<AbortReason>),
    CommitSent(Who),
    RollbackSent(Who),
    Ack(Who, Decision),
    Finished(Outcome, Option<AbortReason>, f64),
    Ended,
    Resolved(Who, Decision),
}

impl TxEntry {
    /// The summary as its events left it.
    fn summary(&self) -> TransactionSummary {
        let mut summary = self.summary.clone();
        self.fold.fill(&mut summary);
        summary
    }

    fn who(&self, node: &str) -> Option<Who> {
        if node == shared::events::COORDINATOR {
            return Some(Who::Coordinator);
        }
        let at = self.legs.iter().position(|l| l.node == node)?;
        u8::try_from(at).ok().map(Who::Leg)
    }

    fn node(&self, who: Who) -> NodeId {
        match who {
            Who::Leg(i) => self
                .legs
                .get(usize::from(i))
                .map(|l| l.node.clone())
                .unwrap_or_default(),
            Who::Coordinator => shared::events::COORDINATOR.to_string(),
        }
    }

    /// `kind` is an event of this entry's transaction.
    fn compact(&self, kind: EventKind) -> What {
        let s = &self.summary;
        let compacted = match &kind {
            EventKind::TxStarted {
                from,
                to,
                amount_cents,
                nodes,
                one_phase,
                ..
            } if *from == s.from
                && *to == s.to
                && *amount_cents == s.amount_cents
                && nodes.iter().eq(self.legs.iter().map(|l| &l.node)) =>
            {
                Some(What::Started {
                    one_phase: *one_phase,
                })
            }
            EventKind::PrepareSent { node, .. } => self.who(node).map(What::PrepareSent),
            EventKind::Vote {
                node, vote, reason, ..
            } => self.who(node).map(|w| What::Vote(w, *vote, *reason)),
            EventKind::LogForced { node, record, .. } => self
                .who(node)
                .zip(Record::parse(record))
                .map(|(w, r)| What::LogForced(w, r)),
            EventKind::Decision {
                decision, reason, ..
            } => Some(What::Decision(*decision, *reason)),
            EventKind::CommitSent { node, .. } => self.who(node).map(What::CommitSent),
            EventKind::RollbackSent { node, .. } => self.who(node).map(What::RollbackSent),
            EventKind::Ack { node, decision, .. } => {
                self.who(node).map(|w| What::Ack(w, *decision))
            }
            EventKind::TxFinished {
                outcome,
                reason,
                duration_ms,
                ..
            } => Some(What::Finished(*outcome, *reason, *duration_ms)),
            EventKind::TxEnded { .. } => Some(What::Ended),
            EventKind::Resolved { node, decision, .. } => {
                self.who(node).map(|w| What::Resolved(w, *decision))
            }
            _ => None,
        };
        compacted.unwrap_or_else(|| What::Whole(Box::new(kind)))
    }

    fn expand(&self, step: &Step) -> Event {
        let tx_id = || self.summary.tx_id.clone();
        let kind = match &step.what {
            What::Whole(kind) => (**kind).clone(),
            What::Started { one_phase } => EventKind::TxStarted {
                tx_id: tx_id(),
                from: self.summary.from.clone(),
                to: self.summary.to.clone(),
                amount_cents: self.summary.amount_cents,
                nodes: self.legs.iter().map(|l| l.node.clone()).collect(),
                one_phase: *one_phase,
            },
            What::PrepareSent(w) => EventKind::PrepareSent {
                tx_id: tx_id(),
                node: self.node(*w),
            },
            What::Vote(w, vote, reason) => EventKind::Vote {
                tx_id: tx_id(),
                node: self.node(*w),
                vote: *vote,
                reason: *reason,
            },
            What::LogForced(w, r) => EventKind::LogForced {
                tx_id: tx_id(),
                node: self.node(*w),
                record: r.name().to_string(),
            },
            What::Decision(decision, reason) => EventKind::Decision {
                tx_id: tx_id(),
                decision: *decision,
                reason: *reason,
            },
            What::CommitSent(w) => EventKind::CommitSent {
                tx_id: tx_id(),
                node: self.node(*w),
            },
            What::RollbackSent(w) => EventKind::RollbackSent {
                tx_id: tx_id(),
                node: self.node(*w),
            },
            What::Ack(w, decision) => EventKind::Ack {
                tx_id: tx_id(),
                node: self.node(*w),
                decision: *decision,
            },
            What::Finished(outcome, reason, duration_ms) => EventKind::TxFinished {
                tx_id: tx_id(),
                outcome: *outcome,
                reason: *reason,
                duration_ms: *duration_ms,
            },
            What::Ended => EventKind::TxEnded { tx_id: tx_id() },
            What::Resolved(w, decision) => EventKind::Resolved {
                tx_id: tx_id(),
                node: self.node(*w),
                decision: *decision,
            },
        };
        Event {
            seq: step.seq,
            ts_ms: step.ts_ms,
            kind,
        }
    }
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

/// The kept transactions, oldest first, each found by id.
///
/// Every event of a transfer (about 17) finds its entry here. Consecutive
/// events are mostly of one transaction (a reply's vote, decision and
/// commit messages), so the entry found last is tried first, without
/// hashing; the index maps an id to its position only, so its table stays
/// small enough for the cache, and the entries are in age order, so
/// evicting the oldest needs no separate queue.
#[derive(Default)]
struct History {
    /// Oldest first; `entries[0]` is at position `first`.
    entries: VecDeque<TxEntry>,
    first: u64,
    index: HashMap<TxId, u64>,
    /// Position of the entry found or added last.
    last: u64,
}

impl History {
    fn position(&self, tx_id: &str) -> Option<usize> {
        let last = self.last.checked_sub(self.first).map(|i| i as usize);
        if let Some(i) = last.filter(|&i| {
            self.entries
                .get(i)
                .is_some_and(|e| e.summary.tx_id == tx_id)
        }) {
            return Some(i);
        }
        let at = *self.index.get(tx_id)?;
        Some((at - self.first) as usize)
    }

    fn get(&self, tx_id: &str) -> Option<&TxEntry> {
        self.entries.get(self.position(tx_id)?)
    }

    fn get_mut(&mut self, tx_id: &str) -> Option<&mut TxEntry> {
        let i = self.position(tx_id)?;
        self.last = self.first + i as u64;
        self.entries.get_mut(i)
    }

    /// Adds `entry` as the newest (or replaces the entry of its id where it
    /// is) and forgets the oldest beyond `kept_max`.
    fn insert(&mut self, entry: TxEntry, kept_max: usize) {
        if let Some(i) = self.position(&entry.summary.tx_id) {
            self.last = self.first + i as u64;
            self.entries[i] = entry;
            return;
        }
        let at = self.first + self.entries.len() as u64;
        self.index.insert(entry.summary.tx_id.clone(), at);
        self.entries.push_back(entry);
        self.last = at;
        while self.entries.len() > kept_max {
            if let Some(old) = self.entries.pop_front() {
                self.index.remove(&old.summary.tx_id);
                self.first += 1;
            }
        }
    }

    fn newest_first(&self) -> impl Iterator<Item = &TxEntry> {
        self.entries.iter().rev()
    }
}

struct Inner {
    seq: u64,
    txs: History,
    stats: StatsAcc,
}

pub struct Hub {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<str>>,
    /// Where every event is also recorded, when the coordinator records.
    recorder: OnceLock<Recorder>,
    /// Wakes the balance watcher after events that move money or nodes.
    pub balances_dirty: Notify,
    started: Instant,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        let (tx, _) = broadcast::channel(WS_CLIENT_QUEUE_MAX);
        Hub {
            inner: Mutex::new(Inner {
                seq: 0,
                txs: History::default(),
                stats: StatsAcc::default(),
            }),
            tx,
            recorder: OnceLock::new(),
            balances_dirty: Notify::new(),
            started: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }

    /// Whether a WebSocket client is subscribed to the events.
    pub fn listening(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Records every event from now on, numbered after the recording's
    /// newest (so seqs keep growing across coordinator restarts). Once,
    /// before anything is published.
    pub fn attach_recorder(&self, recorder: Recorder) {
        let mut inner = self.lock();
        inner.seq = inner.seq.max(recorder.last_seq());
        let _ = self.recorder.set(recorder);
    }

    pub fn recorder(&self) -> Option<&Recorder> {
        self.recorder.get()
    }

    /// Whether the events are recorded.
    pub fn recording(&self) -> bool {
        self.recorder.get().is_some()
    }

    /// Records (without broadcasting) an event that belongs to the
    /// recording alone, e.g. a snapshot: numbered as the latest event, as a
    /// WebSocket client's snapshot is.
    pub fn record_only(&self, kind: EventKind) {
        let Some(recorder) = self.recorder.get() else {
            return;
        };
        let inner = self.lock();
        let event = Event {
            seq: inner.seq,
            ts_ms: unix_ms(),
            kind,
        };
        // Under the lock: the recording keeps the order of seq.
        recorder.submit(vec![Entry::Event(event)]);
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
    /// one lock and one reading of each clock for all of them (the metrics
    /// time phases on the monotonic one). Each event is
    /// serialised only when a WebSocket client listens, and then moved (not
    /// cloned) into its transaction's timeline.
    pub fn publish_all(&self, kinds: impl IntoIterator<Item = EventKind>) {
        let mut wakes_balances = false;
        {
            let mut inner = self.lock();
            let ts_ms = unix_ms();
            let now = Instant::now();
            let listening = self.listening();
            let recorder = self.recorder.get();
            let mut recorded = Vec::new();
            for kind in kinds {
                wakes_balances |= matches!(
                    kind,
                    EventKind::TxFinished { .. }
                        | EventKind::Ack { .. }
                        | EventKind::Vote { .. }
                        | EventKind::NodeStatus { .. }
                        | EventKind::Resolved { .. }
                        | EventKind::InDoubtReported { .. }
                        | EventKind::MessageReleased { .. }
                        | EventKind::MessageDropped { .. }
                );
                inner.seq += 1;
                let event = Event {
                    seq: inner.seq,
                    ts_ms,
                    kind,
                };
                crate::metrics::observe(&event, now);
                let mut json = None;
                if listening {
                    if let Ok(text) = serde_json::to_string(&event) {
                        let text: Arc<str> = text.into();
                        // Sent under the lock so clients see seq in order.
                        let _ = self.tx.send(text.clone());
                        json = Some(text);
                    }
                }
                if recorder.is_some() {
                    recorded.push(match json {
                        Some(json) => Entry::Json {
                            seq: event.seq,
                            ts_ms,
                            json,
                        },
                        None => Entry::Event(event.clone()),
                    });
                }
                self.observe(&mut inner, event);
            }
            if let Some(recorder) = recorder.filter(|_| !recorded.is_empty()) {
                recorder.submit(recorded);
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
            nodes,
            ..
        } = &event.kind
        {
            inner.stats.attempted += 1;
            // `nodes` are the legs' nodes, the debit's first.
            let from_node = nodes.first().map_or("", String::as_str);
            let to_node = nodes.last().map_or("", String::as_str);
            let legs = transfer_legs(from, to, *amount_cents, from_node, to_node);
            let entry = TxEntry {
                summary: TransactionSummary::started(tx_id, from, to, *amount_cents, event.ts_ms),
                detail: None,
                legs,
                fold: TxFold::new(),
                timeline: Vec::with_capacity(TIMELINE_CAPACITY_HINT),
            };
            inner.txs.insert(entry, COORDINATOR_HISTORY_KEPT_MAX);
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
        entry.fold.apply(event.ts_ms, &event.kind);
        if entry.timeline.len() < TX_TIMELINE_EVENTS_MAX {
            let what = entry.compact(event.kind);
            entry.timeline.push(Step {
                seq: event.seq,
                ts_ms: event.ts_ms,
                what,
            });
        }
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
            .txs
            .newest_first()
            .take(limit)
            .map(TxEntry::summary)
            .collect()
    }

    pub fn detail(&self, tx_id: &str) -> Option<TransactionDetail> {
        let inner = self.lock();
        let e = inner.txs.get(tx_id)?;
        Some(TransactionDetail {
            summary: e.summary(),
            detail: e.detail.clone(),
            legs: e.legs.clone(),
            votes: e.fold.node_votes(),
            timeline: e.timeline.iter().map(|step| e.expand(step)).collect(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::{ComponentStatus, TxState};

    fn hub() -> Hub {
        Hub::new()
    }

    fn started(tx: &str, from: &str, to: &str, nodes: &[&str]) -> EventKind {
        EventKind::TxStarted {
            tx_id: tx.into(),
            from: from.into(),
            to: to.into(),
            amount_cents: 250,
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            one_phase: nodes.len() == 1,
        }
    }

    /// Every event of a transaction, as published (and broadcast), comes
    /// back in its timeline exactly: compact or kept whole.
    #[test]
    fn timelines_give_back_exactly_the_published_events() {
        let hub = hub();
        let mut rx = hub.subscribe();
        let t = |s: &str| s.to_string();
        let n = |s: &str| s.to_string();
        let committed = vec![
            started("t1", "A", "B", &["6001", "6002"]),
            EventKind::PrepareSent {
                tx_id: t("t1"),
                node: n("6001"),
            },
            EventKind::PrepareSent {
                tx_id: t("t1"),
                node: n("6002"),
            },
            EventKind::LogForced {
                tx_id: t("t1"),
                node: n("6001"),
                record: t("prepared"),
            },
            EventKind::Vote {
                tx_id: t("t1"),
                node: n("6001"),
                vote: VoteView::Ready,
                reason: None,
            },
            EventKind::Vote {
                tx_id: t("t1"),
                node: n("6002"),
                vote: VoteView::Ready,
                reason: None,
            },
            EventKind::Decision {
                tx_id: t("t1"),
                decision: Decision::Commit,
                reason: None,
            },
            EventKind::LogForced {
                tx_id: t("t1"),
                node: n("coordinator"),
                record: t("commit"),
            },
            EventKind::CommitSent {
                tx_id: t("t1"),
                node: n("6002"),
            },
            EventKind::TxFinished {
                tx_id: t("t1"),
                outcome: Outcome::Committed,
                reason: None,
                duration_ms: 1.25,
            },
            EventKind::LogForced {
                tx_id: t("t1"),
                node: n("6002"),
                record: t("committed"),
            },
            EventKind::Ack {
                tx_id: t("t1"),
                node: n("6002"),
                decision: Decision::Commit,
            },
            EventKind::Resolved {
                tx_id: t("t1"),
                node: n("6001"),
                decision: Decision::Commit,
            },
            EventKind::TxEnded { tx_id: t("t1") },
        ];
        let odd = vec![
            // Nodes that are not the legs', a record name not known here:
            // kept whole.
            started("t2", "A", "C", &["6001", "6009"]),
            EventKind::PrepareSent {
                tx_id: t("t2"),
                node: n("6009"),
            },
            EventKind::Vote {
                tx_id: t("t2"),
                node: n("6001"),
                vote: VoteView::Abort,
                reason: Some(AbortReason::InsufficientFunds),
            },
            EventKind::LogForced {
                tx_id: t("t2"),
                node: n("6001"),
                record: t("heuristic"),
            },
            EventKind::RollbackSent {
                tx_id: t("t2"),
                node: n("6001"),
            },
            EventKind::Ack {
                tx_id: t("t2"),
                node: n("6001"),
                decision: Decision::Abort,
            },
            EventKind::TxFinished {
                tx_id: t("t2"),
                outcome: Outcome::Aborted,
                reason: Some(AbortReason::InsufficientFunds),
                duration_ms: 0.5,
            },
        ];
        // Interleaved with an event of no transaction, published one by one
        // and in batches.
        hub.publish_all(committed[..5].iter().cloned());
        hub.publish(EventKind::NodeStatus {
            node: n("6001"),
            status: ComponentStatus::Up,
        });
        hub.publish_all(odd.iter().cloned());
        for kind in &committed[5..] {
            hub.publish(kind.clone());
        }
        let mut sent: Vec<Event> = Vec::new();
        while let Ok(json) = rx.try_recv() {
            sent.push(serde_json::from_str(&json).expect("events are JSON"));
        }
        assert_eq!(sent.len(), committed.len() + odd.len() + 1);
        for (tx, kinds) in [("t1", &committed), ("t2", &odd)] {
            let expected: Vec<Event> = sent
                .iter()
                .filter(|e| e.kind.tx_id() == Some(tx))
                .cloned()
                .collect();
            assert_eq!(
                expected.iter().map(|e| e.kind.clone()).collect::<Vec<_>>(),
                *kinds
            );
            let detail = hub.detail(tx).expect("kept");
            assert_eq!(detail.timeline, expected, "{tx}");
        }
        let seqs: Vec<u64> = sent.iter().map(|e| e.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] + 1 == w[1]),
            "seq grows by one: {seqs:?}"
        );
        let t1 = hub.detail("t1").expect("kept");
        assert_eq!(t1.summary.state, TxState::Committed);
        assert!(t1.summary.pending_acks.is_empty());
        assert_eq!(
            hub.detail("t2").expect("kept").summary.state,
            TxState::Aborted
        );
    }

    fn entry(tx_id: &str, amount_cents: i64) -> TxEntry {
        TxEntry {
            summary: TransactionSummary::started(tx_id, "A", "B", amount_cents, 0),
            detail: None,
            legs: Vec::new(),
            fold: TxFold::new(),
            timeline: Vec::new(),
        }
    }

    /// The history keeps the newest `kept_max` by age, finds each by id
    /// (through the index or the last one found), replaces in place, and
    /// never finds what it evicted.
    #[test]
    fn the_history_keeps_the_newest_and_finds_each_by_id() {
        let mut h = History::default();
        let kept_max = 3;
        for i in 0..10 {
            h.insert(entry(&format!("t{i}"), i), kept_max);
            // The one added last is found first; an older one by the index.
            assert_eq!(
                h.get(&format!("t{i}")).map(|e| e.summary.amount_cents),
                Some(i)
            );
            if i >= 1 {
                assert!(h.get_mut(&format!("t{}", i - 1)).is_some());
            }
        }
        let newest: Vec<&str> = h.newest_first().map(|e| e.summary.tx_id.as_str()).collect();
        assert_eq!(newest, ["t9", "t8", "t7"]);
        assert_eq!(h.index.len(), kept_max, "evicted ids leave the index");
        for gone in ["t0", "t5", "t6"] {
            assert!(h.get(gone).is_none(), "{gone} was evicted");
        }
        // The last one found is evicted next: it must not be found after.
        assert!(h.get_mut("t7").is_some());
        h.insert(entry("t10", 10), kept_max);
        assert!(h.get("t7").is_none());
        assert!(h.get_mut("t7").is_none());
        // Replacing keeps the place in age order.
        h.insert(entry("t8", 80), kept_max);
        let newest: Vec<(&str, i64)> = h
            .newest_first()
            .map(|e| (e.summary.tx_id.as_str(), e.summary.amount_cents))
            .collect();
        assert_eq!(newest, [("t10", 10), ("t9", 9), ("t8", 80)]);
    }

    fn ready(tx: &str, node: &str) -> EventKind {
        EventKind::Vote {
            tx_id: tx.into(),
            node: node.into(),
            vote: VoteView::Ready,
            reason: None,
        }
    }

    fn ack(tx: &str, node: &str) -> EventKind {
        EventKind::Ack {
            tx_id: tx.into(),
            node: node.into(),
            decision: Decision::Commit,
        }
    }

    fn summary_of(hub: &Hub, tx: &str) -> TransactionSummary {
        hub.detail(tx).expect("kept").summary
    }

    /// State and pending acks come from the transaction fold: prepared once
    /// every vote is ready, committed with every node owing its ack from
    /// the durable decision, each one cleared by that node's ack.
    #[test]
    fn summaries_follow_a_commit_from_prepared_to_its_last_ack() {
        let hub = hub();
        hub.publish_all([
            started("t", "A", "B", &["6001", "6002"]),
            ready("t", "6001"),
        ]);
        assert_eq!(summary_of(&hub, "t").state, TxState::Active);
        hub.publish(ready("t", "6002"));
        assert_eq!(summary_of(&hub, "t").state, TxState::Prepared);
        hub.publish_all([
            EventKind::LogForced {
                tx_id: "t".into(),
                node: shared::events::COORDINATOR.into(),
                record: "commit".into(),
            },
            EventKind::Decision {
                tx_id: "t".into(),
                decision: Decision::Commit,
                reason: None,
            },
        ]);
        let s = summary_of(&hub, "t");
        assert_eq!(s.state, TxState::Committed);
        assert_eq!(s.pending_acks, ["6001", "6002"]);
        hub.publish(EventKind::CommitSent {
            tx_id: "t".into(),
            node: "6001".into(),
        });
        hub.publish(ack("t", "6001"));
        assert_eq!(hub.recent(1)[0].pending_acks, ["6002"]);
        hub.publish(ack("t", "6002"));
        assert!(hub.recent(1)[0].pending_acks.is_empty());
        let votes: Vec<VoteView> = hub
            .detail("t")
            .expect("kept")
            .votes
            .iter()
            .map(|v| v.vote)
            .collect();
        assert_eq!(votes, [VoteView::Ready, VoteView::Ready]);
    }

    /// The coordinator crashed with every vote in and came back without the
    /// transaction: the nodes' in-doubt reports are answered with rollback
    /// (presumed abort), and the history shows it aborted.
    #[test]
    fn a_transaction_forgotten_in_a_coordinator_crash_shows_aborted_once_resolved() {
        let hub = hub();
        hub.publish_all([
            started("t", "A", "B", &["6001", "6002"]),
            ready("t", "6001"),
            ready("t", "6002"),
        ]);
        hub.publish_all([
            EventKind::CoordinatorStatus {
                status: ComponentStatus::Down,
            },
            EventKind::CoordinatorStatus {
                status: ComponentStatus::Up,
            },
            EventKind::InDoubtReported {
                node: "6001".into(),
                tx_ids: vec!["t".into()],
            },
        ]);
        assert_eq!(summary_of(&hub, "t").state, TxState::Prepared);
        hub.publish(EventKind::Resolved {
            tx_id: "t".into(),
            node: "6001".into(),
            decision: Decision::Abort,
        });
        let s = summary_of(&hub, "t");
        assert_eq!(s.state, TxState::Aborted);
        assert_eq!(s.duration_ms, None, "its client was never answered");
    }
}
