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
use shared::fold::{
    TxFold, ABORT_RECORD, COMMITTED_RECORD, COMMIT_RECORD, FINISHED_RECORD, PREPARED_RECORD,
};
use shared::limits::{COORDINATOR_HISTORY_KEPT_MAX, TX_TIMELINE_EVENTS_MAX, WS_CLIENT_QUEUE_MAX};
use shared::wire::{AbortReason, Decision, NodeId, TxId};
use tokio::sync::{broadcast, Notify};

use crate::recording::{Entry, Recorder};

use hdrhistogram::Histogram;
use shared::api::{LatencyPoint, TxState};
use shared::limits::{EVIDENCE_NEIGHBOURS_MAX, THROUGHPUT_HISTORY_S, TIMELINE_CAPACITY_HINT};

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
    /// Its outcome is in the statistics.
    counted: bool,
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
    Abort,
    Finished,
}

impl Record {
    fn parse(name: &str) -> Option<Record> {
        match name {
            PREPARED_RECORD => Some(Record::Prepared),
            COMMITTED_RECORD => Some(Record::Committed),
            COMMIT_RECORD => Some(Record::Commit),
            ABORT_RECORD => Some(Record::Abort),
            FINISHED_RECORD => Some(Record::Finished),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Record::Prepared => PREPARED_RECORD,
            Record::Committed => COMMITTED_RECORD,
            Record::Commit => COMMIT_RECORD,
            Record::Abort => ABORT_RECORD,
            Record::Finished => FINISHED_RECORD,
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

/// The running statistics. Latencies go into histograms as they arrive,
/// so reading a percentile never copies or sorts samples.
struct StatsAcc {
    attempted: u64,
    committed: u64,
    aborted: u64,
    recovered: u64,
    aborts_by_reason: BTreeMap<String, u64>,
    /// Every finished transfer's latency since start, in microseconds.
    latency_us: Histogram<u64>,
    /// The newest seconds, oldest first (at most `THROUGHPUT_HISTORY_S + 1`).
    seconds: VecDeque<Second>,
}

/// What finished in one unix second.
struct Second {
    second: u64,
    committed: u64,
    aborts: BTreeMap<String, u64>,
    /// That second's latencies until it is over, then its percentiles.
    latency: SecondLatency,
}

enum SecondLatency {
    Open(Box<Histogram<u64>>),
    Closed(LatencyPoint),
}

impl SecondLatency {
    fn point(&self) -> LatencyPoint {
        match self {
            SecondLatency::Open(h) => latency_point(h),
            SecondLatency::Closed(point) => *point,
        }
    }
}

/// How many of the newest transactions a coordinator crash is added to
/// the timeline of (if still open): bounds the work of one status event.
const OPEN_TXS_SCANNED_MAX: usize = 256;

/// Latency histograms record whole microseconds from 1 µs to this bound
/// (larger values count as it), to 3 significant digits over the whole run
/// and 2 within one second (a second's histogram is smaller).
const LATENCY_RECORDED_US_MAX: u64 = 3_600_000_000;

fn latency_histogram(significant_digits: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_RECORDED_US_MAX, significant_digits)
        .expect("valid histogram bounds")
}

fn record_latency(h: &mut Histogram<u64>, duration_ms: f64) {
    let us = (duration_ms * 1000.0).round();
    // A NaN or negative duration is never produced; clamping keeps a
    // histogram from refusing one.
    let us = if us.is_finite() { us.max(1.0) } else { 1.0 } as u64;
    h.saturating_record(us.min(LATENCY_RECORDED_US_MAX));
}

/// The `q` quantile (0 to 1) of `h` in milliseconds (0 when empty).
fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

fn latency_point(h: &Histogram<u64>) -> LatencyPoint {
    LatencyPoint {
        p50: quantile_ms(h, 0.5),
        p99: quantile_ms(h, 0.99),
    }
}

impl Default for StatsAcc {
    fn default() -> StatsAcc {
        StatsAcc {
            attempted: 0,
            committed: 0,
            aborted: 0,
            recovered: 0,
            aborts_by_reason: BTreeMap::new(),
            latency_us: latency_histogram(3),
            seconds: VecDeque::new(),
        }
    }
}

impl StatsAcc {
    /// The entry of unix second `second` (the newest), closing the ones
    /// before it and forgetting the oldest.
    fn second(&mut self, second: u64) -> &mut Second {
        let is_newest = self.seconds.back().is_some_and(|s| s.second >= second);
        if !is_newest {
            if let Some(last) = self.seconds.back_mut() {
                last.latency = SecondLatency::Closed(last.latency.point());
            }
            self.seconds.push_back(Second {
                second,
                committed: 0,
                aborts: BTreeMap::new(),
                latency: SecondLatency::Open(Box::new(latency_histogram(2))),
            });
            while self.seconds.len() > THROUGHPUT_HISTORY_S + 1 {
                self.seconds.pop_front();
            }
        }
        // The clock may step back: such a late result joins the newest.
        self.seconds
            .back_mut()
            .expect("just made sure there is one")
    }

    /// Counts one outcome; `duration_ms` when its client was answered.
    fn finished(
        &mut self,
        ts_ms: u64,
        outcome: Outcome,
        reason: Option<AbortReason>,
        duration_ms: Option<f64>,
    ) {
        let reason = reason.map(|r| r.as_str()).unwrap_or("unknown");
        match outcome {
            Outcome::Committed => self.committed += 1,
            Outcome::Aborted => {
                self.aborted += 1;
                bump(&mut self.aborts_by_reason, reason);
            }
        }
        if let Some(duration_ms) = duration_ms {
            record_latency(&mut self.latency_us, duration_ms);
        } else {
            self.recovered += 1;
        }
        let second = self.second(ts_ms / 1000);
        match outcome {
            Outcome::Committed => second.committed += 1,
            Outcome::Aborted => bump(&mut second.aborts, reason),
        }
        if let (Some(duration_ms), SecondLatency::Open(h)) = (duration_ms, &mut second.latency) {
            record_latency(h, duration_ms);
        }
    }
}

fn bump(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_string(), 1);
        }
    }
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
                counted: false,
            };
            inner.txs.insert(entry, COORDINATOR_HISTORY_KEPT_MAX);
        }
        if let EventKind::CoordinatorStatus { .. } = &event.kind {
            // A crash and the recovery after it belong to the timeline of
            // every transaction still open then (the newest are the open
            // ones; a finished one has nothing to learn from it).
            for entry in inner
                .txs
                .entries
                .iter_mut()
                .rev()
                .take(OPEN_TXS_SCANNED_MAX)
            {
                let open = matches!(entry.fold.state(), TxState::Active | TxState::Prepared)
                    || entry.fold.pending_acks().next().is_some();
                if open && entry.timeline.len() < TX_TIMELINE_EVENTS_MAX {
                    entry.timeline.push(Step {
                        seq: event.seq,
                        ts_ms: event.ts_ms,
                        what: What::Whole(Box::new(event.kind.clone())),
                    });
                }
            }
            return;
        }
        let Some(tx_id) = event.kind.tx_id() else {
            return;
        };
        let Some(entry) = inner.txs.get_mut(tx_id) else {
            // A transaction no longer (or never) kept: its answer counts.
            if let EventKind::TxFinished {
                outcome,
                reason,
                duration_ms,
                ..
            } = &event.kind
            {
                inner
                    .stats
                    .finished(event.ts_ms, *outcome, *reason, Some(*duration_ms));
            }
            return;
        };
        entry.fold.apply(event.ts_ms, &event.kind);
        // Each transaction counts once: when its client is answered, or,
        // when recovery decided it (no answer ever came), when a node is
        // told the outcome from the log or the END record is written.
        if !entry.counted {
            let counted = match &event.kind {
                EventKind::TxFinished {
                    outcome,
                    reason,
                    duration_ms,
                    ..
                } => Some((*outcome, *reason, Some(*duration_ms))),
                EventKind::Resolved { .. } | EventKind::TxEnded { .. } => {
                    match entry.fold.state() {
                        TxState::Committed => Some((Outcome::Committed, None, None)),
                        TxState::Aborted => Some((Outcome::Aborted, entry.fold.reason(), None)),
                        TxState::Active | TxState::Prepared => None,
                    }
                }
                _ => None,
            };
            if let Some((outcome, reason, duration_ms)) = counted {
                entry.counted = true;
                inner
                    .stats
                    .finished(event.ts_ms, outcome, reason, duration_ms);
            }
        }
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

    /// The transactions kept around `tx_id` in age order (at most
    /// `EVIDENCE_NEIGHBOURS_MAX` on each side), with their legs and
    /// timelines: who could have held a lock it waited for.
    pub fn neighbours(&self, tx_id: &str) -> Vec<(TxId, Vec<Leg>, Vec<Event>)> {
        let inner = self.lock();
        let Some(at) = inner.txs.position(tx_id) else {
            return Vec::new();
        };
        let from = at.saturating_sub(EVIDENCE_NEIGHBOURS_MAX);
        let to = at
            .saturating_add(EVIDENCE_NEIGHBOURS_MAX + 1)
            .min(inner.txs.entries.len());
        (from..to)
            .filter(|&i| i != at)
            .filter_map(|i| inner.txs.entries.get(i))
            .map(|e| {
                let timeline = e.timeline.iter().map(|step| e.expand(step)).collect();
                (e.summary.tx_id.clone(), e.legs.clone(), timeline)
            })
            .collect()
    }

    pub fn stats(&self, in_flight: u64, log_forces: u64) -> Stats {
        let phases_ms = crate::metrics::global().phase_quantiles();
        let inner = self.lock();
        let s = &inner.stats;
        let now_s = unix_ms() / 1000;
        let by_second: BTreeMap<u64, &Second> = s.seconds.iter().map(|x| (x.second, x)).collect();
        // Oldest first, ending with the current second.
        let window = |len: u64| (0..len).rev().map(move |ago| now_s.saturating_sub(ago));
        let seconds: Vec<Option<&Second>> = window(THROUGHPUT_HISTORY_S as u64)
            .map(|second| by_second.get(&second).copied())
            .collect();
        let throughput_history = seconds
            .iter()
            .map(|x| x.map_or(0, |x| x.committed))
            .collect();
        let latency_history = seconds
            .iter()
            .map(|x| x.map(|x| x.latency.point()).unwrap_or_default())
            .collect();
        let abort_history = seconds
            .iter()
            .map(|x| x.map(|x| x.aborts.clone()).unwrap_or_default())
            .collect();
        // The last 10 complete seconds.
        let last10: u64 = (1..=10u64)
            .filter_map(|ago| by_second.get(&now_s.saturating_sub(ago)))
            .map(|x| x.committed)
            .sum();
        let h = &s.latency_us;
        Stats {
            attempted: s.attempted,
            committed: s.committed,
            aborted: s.aborted,
            aborts_by_reason: s.aborts_by_reason.clone(),
            latency_ms: shared::api::LatencyMs {
                p50: quantile_ms(h, 0.5),
                p90: quantile_ms(h, 0.9),
                p99: quantile_ms(h, 0.99),
                p999: quantile_ms(h, 0.999),
                max: if h.is_empty() {
                    0.0
                } else {
                    h.max() as f64 / 1000.0
                },
            },
            throughput_per_s: last10 as f64 / 10.0,
            throughput_history,
            in_flight,
            // Known to the in-doubt view, not to the hub (the HTTP handler fills it in).
            in_flight_heuristic_mismatch: 0,
            log_forces,
            uptime_s: self.started.elapsed().as_secs_f64(),
            recovered: s.recovered,
            latency_history,
            abort_history,
            phases_ms,
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
            counted: false,
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
        // The crash and the restart are in the open transaction's timeline.
        let statuses = hub
            .detail("t")
            .expect("kept")
            .timeline
            .iter()
            .filter(|e| matches!(e.kind, EventKind::CoordinatorStatus { .. }))
            .count();
        assert_eq!(statuses, 2);
        hub.publish(EventKind::Resolved {
            tx_id: "t".into(),
            node: "6001".into(),
            decision: Decision::Abort,
        });
        let s = summary_of(&hub, "t");
        assert_eq!(s.state, TxState::Aborted);
        assert_eq!(s.duration_ms, None, "its client was never answered");
    }

    fn finished(tx: &str, outcome: Outcome, duration_ms: f64) -> EventKind {
        EventKind::TxFinished {
            tx_id: tx.into(),
            outcome,
            reason: match outcome {
                Outcome::Committed => None,
                Outcome::Aborted => Some(AbortReason::InsufficientFunds),
            },
            duration_ms,
        }
    }

    /// Percentiles come from the histogram, to its 3 significant digits
    /// (the ranks of 1001 latencies of 1 to 1000 ms); the newest second's latencies and aborts are in the
    /// history's last slot, and a second with none is zeros.
    #[test]
    fn percentiles_come_from_the_latency_histogram() {
        let hub = hub();
        assert_eq!(
            hub.stats(0, 0).latency_ms,
            shared::api::LatencyMs::default()
        );
        for i in 1..=1000u32 {
            hub.publish(finished(&format!("t{i}"), Outcome::Committed, f64::from(i)));
        }
        hub.publish(finished("no", Outcome::Aborted, 1000.0));
        let stats = hub.stats(0, 0);
        // 1001 latencies: 1 to 1000 ms and the abort's 1000 ms.
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.001;
        let l = &stats.latency_ms;
        assert!(near(l.p50, 501.0), "{l:?}");
        assert!(near(l.p90, 901.0), "{l:?}");
        assert!(near(l.p99, 991.0), "{l:?}");
        assert!(near(l.max, 1000.0), "{l:?}");
        assert_eq!((stats.committed, stats.aborted), (1000, 1));
        assert_eq!(stats.recovered, 0);
        assert_eq!(stats.latency_history.len(), THROUGHPUT_HISTORY_S);
        assert_eq!(stats.abort_history.len(), THROUGHPUT_HISTORY_S);
        // Everything above finished within a second or two of now.
        let recent: u64 = stats.throughput_history.iter().rev().take(3).sum();
        assert_eq!(recent, 1000);
        let aborts: u64 = stats
            .abort_history
            .iter()
            .flat_map(|m| m.get("insufficient_funds"))
            .sum();
        assert_eq!(aborts, 1);
        let busiest = stats
            .latency_history
            .iter()
            .max_by(|a, b| a.p99.total_cmp(&b.p99))
            .expect("sixty seconds");
        assert!(busiest.p99 >= 900.0, "{busiest:?}");
        assert_eq!(stats.latency_history[0], LatencyPoint::default());
    }

    /// A second's latencies, once a newer second begins, are kept as their
    /// percentiles; the oldest beyond the window are forgotten.
    #[test]
    fn past_seconds_keep_their_percentiles_and_the_window_is_bounded() {
        let mut acc = StatsAcc::default();
        for second in 0..200u64 {
            acc.finished(second * 1000, Outcome::Committed, None, Some(10.0));
            acc.finished(second * 1000 + 1, Outcome::Committed, None, Some(30.0));
        }
        assert_eq!(acc.seconds.len(), THROUGHPUT_HISTORY_S + 1);
        let closed = &acc.seconds[0];
        assert!(matches!(closed.latency, SecondLatency::Closed(_)));
        let p = closed.latency.point();
        assert!(
            (p.p50 - 10.0).abs() < 0.1 && (p.p99 - 30.0).abs() < 0.3,
            "{p:?}"
        );
        assert_eq!(acc.committed, 400);
    }

    /// The coordinator crashed after its COMMIT record, before answering:
    /// the transfer is counted committed (and recovered) when recovery
    /// tells a node the outcome, once however many nodes are told.
    #[test]
    fn transfers_decided_by_recovery_are_counted_once() {
        let hub = hub();
        hub.publish_all([
            started("t", "A", "B", &["6001", "6002"]),
            ready("t", "6001"),
            ready("t", "6002"),
            EventKind::LogForced {
                tx_id: "t".into(),
                node: shared::events::COORDINATOR.into(),
                record: "commit".into(),
            },
            EventKind::CoordinatorStatus {
                status: ComponentStatus::Down,
            },
        ]);
        assert_eq!(hub.stats(0, 0).committed, 0, "no node was told yet");
        for node in ["6001", "6002"] {
            hub.publish(EventKind::Resolved {
                tx_id: "t".into(),
                node: node.into(),
                decision: Decision::Commit,
            });
        }
        hub.publish(EventKind::TxEnded { tx_id: "t".into() });
        let stats = hub.stats(0, 0);
        assert_eq!(
            (
                stats.attempted,
                stats.committed,
                stats.aborted,
                stats.recovered
            ),
            (1, 1, 0, 1)
        );
        assert_eq!(stats.latency_ms.max, 0.0, "no client was answered");
        // One forgotten before its decision is presumed aborted.
        hub.publish_all([
            started("u", "A", "B", &["6001", "6002"]),
            ready("u", "6001"),
            EventKind::Resolved {
                tx_id: "u".into(),
                node: "6001".into(),
                decision: Decision::Abort,
            },
        ]);
        let stats = hub.stats(0, 0);
        assert_eq!((stats.aborted, stats.recovered), (1, 2));
        // A transfer answered normally is not counted again by its END.
        hub.publish_all([
            started("v", "A", "B", &["6001", "6002"]),
            finished("v", Outcome::Committed, 2.0),
            EventKind::TxEnded { tx_id: "v".into() },
        ]);
        let stats = hub.stats(0, 0);
        assert_eq!((stats.committed, stats.recovered), (2, 2));
    }
}
