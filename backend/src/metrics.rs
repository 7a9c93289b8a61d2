//! Prometheus metrics of the coordinator, served as text at `GET /metrics`
//! (see `http::ops`).
//!
//! Two kinds, so that the hot path stays cheap:
//! - **Event metrics** are observed as the hub publishes each event
//!   ([`observe`], one call in `Hub::publish`): transactions by outcome and
//!   abort reason, end-to-end latency, and the latency of each protocol phase.
//!   Observing is a match on the event kind and a few atomic adds; an event
//!   of a transaction also goes into that transaction's fold, one slot of a
//!   fixed-size table under an uncontended lock (the hub already serialises
//!   publishing), timed by the hub's one clock reading per batch. Nothing
//!   allocates.
//! - **State metrics** are computed when scraped ([`Metrics::render_state`]):
//!   in-flight and in-doubt transactions, the oldest in-doubt age, log
//!   forces and records, per-node connection state, balances. They come from
//!   the same cluster view as `GET /api/cluster`, so scraping costs one
//!   status query per node and nothing between scrapes.
//!
//! Phase latencies (seconds), per transaction started by this engine, with
//! the bounds `shared::fold` gives each phase:
//! - prepare round trip: `tx_started` → the last vote;
//! - decision log force: the last `ready` vote → the COMMIT record durable
//!   (group-commit wait plus fdatasync; includes step mode's pause);
//! - commit round trip: the first `commit_sent` → the last commit ack.
//!
//! Transactions recovered from the log after a crash have no start here and
//! are only counted, not timed.
//!
//! One metric is not an event: `tpc_http_transfer_seconds` times each
//! `POST /api/transfers` inside its HTTP handler ([`observe_http_transfer`]),
//! so that the gap between the phases above and what a client sees splits
//! into the way to the engine and back (inside the handler) and the HTTP
//! server and the network (outside it).

use std::hash::Hasher;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use prometheus::core::Metric as _;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry,
};
use shared::api::{ClusterView, ComponentStatus, LatencyPoint, Outcome, PhaseLatencyMs, TxState};
use shared::events::{Event, EventKind, COORDINATOR};
use shared::fold::{NodeKey, Phase, TxFold, COMMIT_RECORD};
use shared::wire::{AbortReason, Decision};

use shared::limits::{METRICS_ACCOUNT_SERIES_MAX, PHASE_SLOTS_MAX};
/// Histogram buckets in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS_S: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// The abort reason label when an abort names none.
const REASON_UNKNOWN: &str = "unknown";

/// The coordinator's metrics (one per process: the hub reaches it through
/// [`observe`]).
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Records one published event, which happened at `now`. Called by the hub
/// for every event.
pub fn observe(event: &Event, now: Instant) {
    global().observe_at(event, now);
}

pub struct Metrics {
    registry: Registry,
    started: IntCounter,
    /// Indexed by [`outcome_index`].
    finished: [IntCounter; 2],
    /// Indexed by `AbortReason as usize`; the last one is `unknown`.
    aborts: Vec<IntCounter>,
    /// Indexed by [`outcome_index`].
    duration: [Histogram; 2],
    prepare: Histogram,
    log_force: Histogram,
    commit: Histogram,
    http_transfer: Histogram,
    commit_records: IntCounter,
    /// Indexed by [`decision_index`].
    resolved: [IntCounter; 2],
    phases: Mutex<PhaseClock>,
    created: Instant,
}

fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Committed => 0,
        Outcome::Aborted => 1,
    }
}

fn decision_index(decision: Decision) -> usize {
    match decision {
        Decision::Commit => 0,
        Decision::Abort => 1,
    }
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let h =
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS_S.to_vec()))
            .expect("a valid histogram definition");
    registry
        .register(Box::new(h.clone()))
        .expect("metric names are unique");
    h
}

fn counter_vec(registry: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let v =
        IntCounterVec::new(Opts::new(name, help), &[label]).expect("a valid counter definition");
    registry
        .register(Box::new(v.clone()))
        .expect("metric names are unique");
    v
}

impl Metrics {
    /// Registers every event metric; every label value is created up front,
    /// so each series is exported from the start (at zero) and observing
    /// never looks a label up.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let started = IntCounter::new(
            "tpc_transactions_started_total",
            "Transactions started by the coordinator.",
        )
        .expect("a valid counter definition");
        registry
            .register(Box::new(started.clone()))
            .expect("metric names are unique");
        let finished = counter_vec(
            &registry,
            "tpc_transactions_total",
            "Transactions finished (answered), by outcome.",
            "outcome",
        );
        let aborts = counter_vec(
            &registry,
            "tpc_transaction_aborts_total",
            "Aborted transactions, by reason.",
            "reason",
        );
        let mut abort_children: Vec<Option<IntCounter>> = vec![None; AbortReason::ALL.len() + 1];
        for reason in AbortReason::ALL {
            abort_children[reason as usize] = Some(aborts.with_label_values(&[reason.as_str()]));
        }
        abort_children[AbortReason::ALL.len()] = Some(aborts.with_label_values(&[REASON_UNKNOWN]));
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "tpc_transaction_duration_seconds",
                "End-to-end latency of finished transactions (request to answer), by outcome.",
            )
            .buckets(LATENCY_BUCKETS_S.to_vec()),
            &["outcome"],
        )
        .expect("a valid histogram definition");
        registry
            .register(Box::new(duration.clone()))
            .expect("metric names are unique");
        let resolved = counter_vec(
            &registry,
            "tpc_in_doubt_resolved_total",
            "In-doubt transactions resolved from the coordinator's log, by decision.",
            "decision",
        );
        let commit_records = IntCounter::new(
            "tpc_coordinator_commit_records_total",
            "COMMIT decision records made durable (divide by the coordinator's log forces for the group-commit batch size).",
        )
        .expect("a valid counter definition");
        registry
            .register(Box::new(commit_records.clone()))
            .expect("metric names are unique");
        // CPU seconds, resident memory, open file descriptors, threads and
        // start time of this process (`process_*`, read from /proc).
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("metric names are unique");
        let build = IntGaugeVec::new(
            Opts::new(
                "tpc_build_info",
                "Always 1; the labels say which build of the coordinator runs.",
            ),
            &["version", "profile"],
        )
        .expect("a valid gauge definition");
        build
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
            ])
            .set(1);
        registry
            .register(Box::new(build))
            .expect("metric names are unique");
        Metrics {
            prepare: histogram(
                &registry,
                "tpc_prepare_round_trip_seconds",
                "Phase 1: from tx_started to the last vote.",
            ),
            log_force: histogram(
                &registry,
                "tpc_decision_log_force_seconds",
                "From the last ready vote to the COMMIT decision being durable (group-commit wait and fdatasync).",
            ),
            commit: histogram(
                &registry,
                "tpc_commit_round_trip_seconds",
                "Phase 2: from the first commit sent to the last commit ack.",
            ),
            http_transfer: histogram(
                &registry,
                "tpc_http_transfer_seconds",
                "POST /api/transfers inside the HTTP handler: the request body read to the answer built (every answer, errors too).",
            ),
            started,
            finished: [finished.with_label_values(&["committed"]), finished.with_label_values(&["aborted"])],
            aborts: abort_children.into_iter().map(|c| c.expect("every reason has a counter")).collect(),
            duration: [duration.with_label_values(&["committed"]), duration.with_label_values(&["aborted"])],
            commit_records,
            resolved: [resolved.with_label_values(&["commit"]), resolved.with_label_values(&["abort"])],
            phases: Mutex::new(PhaseClock::new()),
            created: Instant::now(),
            registry,
        }
    }

    /// Records one event that happened at `now`: counters at once, phase
    /// timings through its transaction's fold in the [`PhaseClock`].
    pub fn observe_at(&self, event: &Event, now: Instant) {
        match &event.kind {
            EventKind::TxStarted { .. } => self.started.inc(),
            EventKind::LogForced { node, record, .. }
                if node == COORDINATOR && record == COMMIT_RECORD =>
            {
                self.commit_records.inc()
            }
            EventKind::TxFinished {
                outcome,
                reason,
                duration_ms,
                ..
            } => {
                let index = outcome_index(*outcome);
                self.finished[index].inc();
                self.duration[index].observe(duration_ms / 1000.0);
                if *outcome == Outcome::Aborted {
                    let reason_index = reason.map_or(AbortReason::ALL.len(), |r| r as usize);
                    self.aborts[reason_index].inc();
                }
            }
            EventKind::Resolved { decision, .. } => self.resolved[decision_index(*decision)].inc(),
            _ => {}
        }
        let Some(tx_id) = event.kind.tx_id() else {
            return;
        };
        let Some((phase, seconds)) = self.phases().fold(tx_id, &event.kind, now) else {
            return;
        };
        let histogram = match phase {
            Phase::PrepareRound => &self.prepare,
            Phase::DecisionForce => &self.log_force,
            Phase::CommitRound => &self.commit,
        };
        histogram.observe(seconds);
    }

    /// Times one `POST /api/transfers` in its handler.
    pub fn observe_http_transfer(&self, elapsed: std::time::Duration) {
        self.http_transfer.observe(elapsed.as_secs_f64());
    }

    /// p50 and p99 of each timed phase, in milliseconds, read from the
    /// phase histograms (no samples are kept: a quantile is placed within
    /// its bucket by linear interpolation, as PromQL's
    /// `histogram_quantile` does).
    pub fn phase_quantiles(&self) -> PhaseLatencyMs {
        let point = |h: &Histogram| {
            let buckets = cumulative_buckets(h);
            LatencyPoint {
                p50: bucket_quantile(&buckets, 0.5) * 1000.0,
                p99: bucket_quantile(&buckets, 0.99) * 1000.0,
            }
        };
        PhaseLatencyMs {
            prepare: point(&self.prepare),
            decision_force: point(&self.log_force),
            commit: point(&self.commit),
        }
    }

    fn phases(&self) -> std::sync::MutexGuard<'_, PhaseClock> {
        self.phases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The event metrics followed by the state metrics of `state`, in the
    /// Prometheus text format.
    pub fn render(&self, state: &State) -> String {
        let mut families = self.registry.gather();
        families.extend(state_registry(state, self.created.elapsed().as_secs_f64()).gather());
        let mut buf = Vec::new();
        // Encoding plain numbers and label values into memory cannot fail.
        prometheus::TextEncoder::new()
            .encode(&families, &mut buf)
            .expect("text encoding into memory");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// A histogram's buckets as (upper bound in seconds, observations at or
/// below it), in order; the last bucket's bound is infinite.
fn cumulative_buckets(h: &Histogram) -> Vec<(f64, u64)> {
    let metric = h.metric();
    let histogram = metric.get_histogram();
    let mut buckets: Vec<(f64, u64)> = histogram
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count()))
        .collect();
    buckets.push((f64::INFINITY, histogram.get_sample_count()));
    buckets
}

/// The `q` quantile (0 to 1) of cumulative `buckets`, interpolated within
/// the bucket it falls in (the first bucket starts at 0); beyond the last
/// finite bound it is that bound. 0 when there is no observation.
fn bucket_quantile(buckets: &[(f64, u64)], q: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return 0.0;
    };
    if total == 0 {
        return 0.0;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut lower = (0.0, 0u64);
    for &(upper, count) in buckets {
        if count as f64 >= rank && count > lower.1 {
            if upper.is_infinite() {
                return lower.0;
            }
            let within = (rank - lower.1 as f64) / (count - lower.1) as f64;
            return lower.0 + (upper - lower.0) * within;
        }
        lower = (upper, count);
    }
    lower.0
}

/// What the state metrics are computed from, gathered at scrape time.
pub struct State {
    pub cluster: ClusterView,
    /// Per node: whether the coordinator holds a connection to it.
    pub connected: Vec<(String, bool)>,
    pub in_flight: u64,
    pub coordinator_log_forces: u64,
    /// Per node: (log forces, log records) as its last status reported.
    pub node_logs: Vec<(String, u64, u64)>,
}

/// A fresh registry holding the state metrics (rebuilt per scrape, so a
/// node that disappears stops being exported).
fn state_registry(state: &State, uptime_s: f64) -> Registry {
    let registry = Registry::new();
    let gauge = |name: &str, help: &str, labels: &[&str]| {
        let v = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid gauge definition");
        registry
            .register(Box::new(v.clone()))
            .expect("metric names are unique");
        v
    };
    let fgauge = |name: &str, help: &str, labels: &[&str]| {
        let v = prometheus::GaugeVec::new(Opts::new(name, help), labels)
            .expect("a valid gauge definition");
        registry
            .register(Box::new(v.clone()))
            .expect("metric names are unique");
        v
    };
    let scalar = |name: &str, help: &str, value: f64| {
        let g = prometheus::Gauge::new(name, help).expect("a valid gauge definition");
        g.set(value);
        registry
            .register(Box::new(g))
            .expect("metric names are unique");
    };
    let counter = |name: &str, help: &str, labels: &[&str]| {
        let v =
            IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter definition");
        registry
            .register(Box::new(v.clone()))
            .expect("metric names are unique");
        v
    };
    let up = |s: ComponentStatus| i64::from(s == ComponentStatus::Up);

    let view = &state.cluster;
    scalar(
        "tpc_coordinator_up",
        "1 if the coordinator's engine is up (0: down or recovering).",
        up(view.coordinator.status) as f64,
    );
    scalar(
        "tpc_uptime_seconds",
        "Seconds since the coordinator started.",
        uptime_s,
    );
    scalar(
        "tpc_transactions_in_flight",
        "Transactions the coordinator is running now.",
        state.in_flight as f64,
    );

    let node_up = gauge(
        "tpc_node_up",
        "1 if the node is up and answering (0: down, recovering or unreachable).",
        &["node"],
    );
    let connected = gauge(
        "tpc_node_connected",
        "1 if the coordinator holds a connection to the node.",
        &["node"],
    );
    let in_doubt = gauge(
        "tpc_in_doubt_transactions",
        "Transactions prepared at the node whose outcome it does not know yet.",
        &["node"],
    );
    let oldest = fgauge(
        "tpc_in_doubt_oldest_age_seconds",
        "How long the node's oldest in-doubt transaction has been prepared (0 if none).",
        &["node"],
    );
    let locked = gauge(
        "tpc_locked_accounts",
        "Accounts locked at the node.",
        &["node"],
    );
    let balance = gauge(
        "tpc_account_balance_cents",
        "Balance of an account, as its node last reported: the first accounts by node and id only (see tpc_accounts_unexported).",
        &["account", "node"],
    );
    let node_balance = gauge(
        "tpc_node_balance_cents",
        "Sum of the balances of the node's accounts, as it last reported.",
        &["node"],
    );
    let node_accounts = gauge(
        "tpc_node_accounts",
        "Accounts the node holds, as it last reported.",
        &["node"],
    );
    let mut balance_series = 0;
    let mut unexported = 0;
    for node in &view.nodes {
        let id = node.id.as_str();
        node_up.with_label_values(&[id]).set(up(node.status));
        in_doubt
            .with_label_values(&[id])
            .set(node.in_doubt.len() as i64);
        let oldest_ms = node
            .in_doubt_detail
            .iter()
            .map(|t| t.prepared_for_ms)
            .max()
            .unwrap_or(0);
        oldest
            .with_label_values(&[id])
            .set(oldest_ms as f64 / 1000.0);
        locked
            .with_label_values(&[id])
            .set(node.locked_accounts.len() as i64);
        node_accounts
            .with_label_values(&[id])
            .set(node.accounts.len() as i64);
        node_balance
            .with_label_values(&[id])
            .set(node.accounts.iter().map(|a| a.balance_cents).sum());
        for account in &node.accounts {
            if balance_series == METRICS_ACCOUNT_SERIES_MAX {
                unexported += 1;
                continue;
            }
            balance_series += 1;
            balance
                .with_label_values(&[account.id.as_str(), id])
                .set(account.balance_cents);
        }
    }
    scalar(
        "tpc_accounts_unexported",
        "Accounts without a tpc_account_balance_cents series (one series per account is kept for the first ones only).",
        unexported as f64,
    );
    for (node, is_connected) in &state.connected {
        connected
            .with_label_values(&[node.as_str()])
            .set(i64::from(*is_connected));
    }
    scalar(
        "tpc_total_cents",
        "Sum of the balances of the nodes that answered.",
        view.total_cents as f64,
    );
    scalar(
        "tpc_total_complete",
        "1 if every node answered, so tpc_total_cents is the whole total (0: partial).",
        f64::from(u8::from(view.total_complete)),
    );
    scalar(
        "tpc_expected_total_cents",
        "The total every audit expects (money is never created or lost).",
        view.expected_total_cents as f64,
    );

    let forces = counter(
        "tpc_log_forces_total",
        "Log forces (fdatasync) since the process started, by process (`coordinator` or a node id).",
        &["process"],
    );
    let records = counter(
        "tpc_log_records_total",
        "Records written to a node's log since it started.",
        &["process"],
    );
    forces
        .with_label_values(&["coordinator"])
        .inc_by(state.coordinator_log_forces);
    for (node, node_forces, node_records) in &state.node_logs {
        forces
            .with_label_values(&[node.as_str()])
            .inc_by(*node_forces);
        records
            .with_label_values(&[node.as_str()])
            .inc_by(*node_records);
    }
    registry
}

/// The fold of each transaction being timed, in a fixed table indexed by a
/// hash of the tx id: bounded memory, no allocation per transaction. A
/// transaction's slot is taken at its `tx_started` and freed once nothing
/// is left to time (it ended, or aborted).
struct PhaseClock {
    slots: Box<[Option<Slot>]>,
}

#[derive(Clone)]
struct Slot {
    key: u64,
    fold: TxFold<Instant, NodeHash>,
}

/// A node of a transaction, known by a hash of its name so the table stays
/// fixed; two names of one transaction colliding is as unlikely as two tx
/// ids sharing a slot's key, which the table already accepts.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct NodeHash(u64);

impl NodeKey for NodeHash {
    fn of(node: &str) -> Self {
        NodeHash(key_of(node))
    }

    fn is(&self, node: &str) -> bool {
        self.0 == key_of(node)
    }
}

impl PhaseClock {
    fn new() -> PhaseClock {
        assert!(PHASE_SLOTS_MAX.is_power_of_two());
        PhaseClock {
            slots: vec![None; PHASE_SLOTS_MAX].into_boxed_slice(),
        }
    }

    /// Folds `kind`, an event of `tx_id` that happened at `now`; returns the
    /// phase it ended and that phase's seconds, if it ran from start to end.
    fn fold(&mut self, tx_id: &str, kind: &EventKind, now: Instant) -> Option<(Phase, f64)> {
        let key = key_of(tx_id);
        let slot = &mut self.slots[(key as usize) & (PHASE_SLOTS_MAX - 1)];
        if matches!(kind, EventKind::TxStarted { .. }) {
            *slot = Some(Slot {
                key,
                fold: TxFold::new(),
            });
        }
        let timed = slot.as_mut().filter(|s| s.key == key)?;
        let ended = timed.fold.apply(now, kind);
        let bounds = ended.and_then(|phase| timed.fold.span(phase).bounds());
        if timed.fold.ended() || timed.fold.state() == TxState::Aborted {
            *slot = None;
        }
        let (started, ended_at) = bounds?;
        Some((ended?, ended_at.duration_since(started).as_secs_f64()))
    }
}

/// FNV-1a: fast on short ids, good enough to spread them over the slots.
fn key_of(id: &str) -> u64 {
    let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
    hasher.write(id.as_bytes());
    hasher.finish()
}

struct Fnv1a(u64);

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::VoteView;

    impl Metrics {
        /// Records one event as of now.
        fn observe(&self, event: &Event) {
            self.observe_at(event, Instant::now());
        }
    }

    fn event(kind: EventKind) -> Event {
        Event {
            seq: 1,
            ts_ms: 0,
            kind,
        }
    }

    fn two_phase_commit(m: &Metrics, tx: &str) {
        let nodes = vec!["6001".to_string(), "6002".to_string()];
        m.observe(&event(EventKind::TxStarted {
            tx_id: tx.into(),
            from: "A".into(),
            to: "B".into(),
            amount_cents: 1,
            nodes: nodes.clone(),
            one_phase: false,
        }));
        for node in &nodes {
            m.observe(&event(EventKind::Vote {
                tx_id: tx.into(),
                node: node.clone(),
                vote: VoteView::Ready,
                reason: None,
            }));
        }
        m.observe(&event(EventKind::LogForced {
            tx_id: tx.into(),
            node: COORDINATOR.into(),
            record: "commit".into(),
        }));
        for node in &nodes {
            m.observe(&event(EventKind::CommitSent {
                tx_id: tx.into(),
                node: node.clone(),
            }));
        }
        for node in &nodes {
            m.observe(&event(EventKind::Ack {
                tx_id: tx.into(),
                node: node.clone(),
                decision: Decision::Commit,
            }));
        }
        m.observe(&event(EventKind::TxFinished {
            tx_id: tx.into(),
            outcome: Outcome::Committed,
            reason: None,
            duration_ms: 2.0,
        }));
        m.observe(&event(EventKind::TxEnded { tx_id: tx.into() }));
    }

    #[test]
    fn a_commit_is_counted_and_every_phase_timed_once() {
        let m = Metrics::new();
        two_phase_commit(&m, "t1");
        two_phase_commit(&m, "t2");
        assert_eq!(m.started.get(), 2);
        assert_eq!(m.finished[0].get(), 2);
        assert_eq!(m.duration[0].get_sample_count(), 2);
        assert_eq!(m.prepare.get_sample_count(), 2);
        assert_eq!(m.log_force.get_sample_count(), 2);
        assert_eq!(m.commit.get_sample_count(), 2);
        assert_eq!(m.commit_records.get(), 2);
        // Forgotten after the end: a late duplicate ack times nothing.
        m.observe(&event(EventKind::Ack {
            tx_id: "t1".into(),
            node: "6001".into(),
            decision: Decision::Commit,
        }));
        assert_eq!(m.commit.get_sample_count(), 2);
    }

    #[test]
    fn aborts_are_counted_by_reason_and_never_timed_as_commits() {
        let m = Metrics::new();
        m.observe(&event(EventKind::TxStarted {
            tx_id: "a".into(),
            from: "A".into(),
            to: "B".into(),
            amount_cents: 1,
            nodes: vec!["6001".into(), "6002".into()],
            one_phase: false,
        }));
        m.observe(&event(EventKind::Vote {
            tx_id: "a".into(),
            node: "6001".into(),
            vote: VoteView::Abort,
            reason: Some(AbortReason::InsufficientFunds),
        }));
        m.observe(&event(EventKind::TxFinished {
            tx_id: "a".into(),
            outcome: Outcome::Aborted,
            reason: Some(AbortReason::InsufficientFunds),
            duration_ms: 1.0,
        }));
        m.observe(&event(EventKind::TxFinished {
            tx_id: "b".into(),
            outcome: Outcome::Aborted,
            reason: None,
            duration_ms: 1.0,
        }));
        assert_eq!(m.finished[1].get(), 2);
        assert_eq!(m.aborts[AbortReason::InsufficientFunds as usize].get(), 1);
        assert_eq!(m.aborts[AbortReason::ALL.len()].get(), 1);
        assert_eq!(
            m.prepare.get_sample_count(),
            0,
            "one vote of two is no full round trip"
        );
        let text = m.render(&State {
            cluster: ClusterView {
                coordinator: shared::api::CoordinatorView {
                    status: ComponentStatus::Up,
                    demo_mode: false,
                    cluster: None,
                    epoch: None,
                },
                nodes: Vec::new(),
                total_cents: 0,
                expected_total_cents: 0,
                total_complete: true,
            },
            connected: Vec::new(),
            in_flight: 0,
            coordinator_log_forces: 3,
            node_logs: Vec::new(),
        });
        assert!(
            text.contains("tpc_transaction_aborts_total{reason=\"insufficient_funds\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("tpc_transaction_aborts_total{reason=\"unknown\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("tpc_transaction_aborts_total{reason=\"timeout\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("tpc_log_forces_total{process=\"coordinator\"} 3\n"),
            "{text}"
        );
    }

    fn node_with_accounts(id: &str, accounts: usize) -> shared::api::NodeView {
        shared::api::NodeView {
            id: id.into(),
            addr: String::new(),
            status: ComponentStatus::Up,
            accounts: (0..accounts)
                .map(|i| shared::api::AccountBalance {
                    id: format!("{id}-{i:06}"),
                    balance_cents: 100,
                })
                .collect(),
            in_doubt: Vec::new(),
            in_doubt_detail: Vec::new(),
            locked_accounts: Vec::new(),
            link: Default::default(),
            supervised: false,
            pid: None,
            refused: None,
        }
    }

    /// 100,000 accounts make a bounded number of series: one per account
    /// for the first ones, a total and a count per node for all of them.
    #[test]
    fn balances_of_many_accounts_are_capped_and_totalled_per_node() {
        let m = Metrics::new();
        let text = m.render(&State {
            cluster: ClusterView {
                coordinator: shared::api::CoordinatorView {
                    status: ComponentStatus::Up,
                    demo_mode: false,
                    cluster: None,
                    epoch: None,
                },
                nodes: vec![
                    node_with_accounts("A", 50_000),
                    node_with_accounts("B", 50_000),
                ],
                total_cents: 10_000_000,
                expected_total_cents: 10_000_000,
                total_complete: true,
            },
            connected: Vec::new(),
            in_flight: 0,
            coordinator_log_forces: 0,
            node_logs: Vec::new(),
        });
        let series = text
            .lines()
            .filter(|l| l.starts_with("tpc_account_balance_cents{"))
            .count();
        assert_eq!(series, METRICS_ACCOUNT_SERIES_MAX);
        assert!(
            text.contains("tpc_account_balance_cents{account=\"A-000000\",node=\"A\"} 100\n"),
            "{text}"
        );
        assert!(
            !text.contains("node=\"B\"} 100\n"),
            "B's accounts come after A's"
        );
        let unexported = 100_000 - METRICS_ACCOUNT_SERIES_MAX;
        assert!(
            text.contains(&format!("tpc_accounts_unexported {unexported}\n")),
            "{text}"
        );
        assert!(
            text.contains("tpc_node_balance_cents{node=\"B\"} 5000000\n"),
            "{text}"
        );
        assert!(
            text.contains("tpc_node_accounts{node=\"A\"} 50000\n"),
            "{text}"
        );
        assert!(text.len() < 64 * 1024, "{} bytes", text.len());
    }

    #[test]
    fn the_build_and_the_process_are_described() {
        let text = Metrics::new().render(&State {
            cluster: ClusterView {
                coordinator: shared::api::CoordinatorView {
                    status: ComponentStatus::Up,
                    demo_mode: false,
                    cluster: None,
                    epoch: None,
                },
                nodes: Vec::new(),
                total_cents: 0,
                expected_total_cents: 0,
                total_complete: true,
            },
            connected: Vec::new(),
            in_flight: 0,
            coordinator_log_forces: 0,
            node_logs: Vec::new(),
        });
        let build = format!(
            "tpc_build_info{{profile=\"{}\",version=\"{}\"}} 1\n",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{text}");
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_threads ",
            "process_start_time_seconds ",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{name}missing from\n{text}"
            );
        }
    }

    fn at(m: &Metrics, when: Instant, kind: EventKind) {
        m.observe_at(&event(kind), when);
    }

    fn started(tx: &str, nodes: &[&str]) -> EventKind {
        EventKind::TxStarted {
            tx_id: tx.into(),
            from: "A".into(),
            to: "B".into(),
            amount_cents: 1,
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            one_phase: nodes.len() == 1,
        }
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

    fn assert_seconds(h: &Histogram, seconds: f64) {
        assert_eq!(h.get_sample_count(), 1);
        assert!(
            (h.get_sample_sum() - seconds).abs() < 1e-9,
            "{}",
            h.get_sample_sum()
        );
    }

    /// A node's ack that comes twice (a duplicated message) is one ack: the
    /// commit round ends at the last node's, not at the repeat.
    #[test]
    fn each_phase_is_timed_between_the_events_that_bound_it() {
        let m = Metrics::new();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
        at(&m, ms(0), started("t", &["6001", "6002"]));
        at(&m, ms(2), ready("t", "6001"));
        at(&m, ms(5), ready("t", "6002"));
        at(
            &m,
            ms(8),
            EventKind::LogForced {
                tx_id: "t".into(),
                node: COORDINATOR.into(),
                record: "commit".into(),
            },
        );
        for node in ["6001", "6002"] {
            let sent = EventKind::CommitSent {
                tx_id: "t".into(),
                node: node.into(),
            };
            at(&m, ms(9), sent);
        }
        at(&m, ms(12), ack("t", "6001"));
        at(&m, ms(13), ack("t", "6001"));
        assert_eq!(m.commit.get_sample_count(), 0);
        at(&m, ms(20), ack("t", "6002"));
        assert_seconds(&m.prepare, 0.005);
        assert_seconds(&m.log_force, 0.003);
        assert_seconds(&m.commit, 0.011);
    }

    #[test]
    fn a_one_phase_transfer_times_only_its_prepare_round() {
        let m = Metrics::new();
        let t0 = Instant::now();
        at(&m, t0, started("p", &["6001"]));
        let then = t0 + std::time::Duration::from_millis(4);
        at(&m, then, ready("p", "6001"));
        for kind in [
            EventKind::Decision {
                tx_id: "p".into(),
                decision: Decision::Commit,
                reason: None,
            },
            EventKind::TxFinished {
                tx_id: "p".into(),
                outcome: Outcome::Committed,
                reason: None,
                duration_ms: 4.0,
            },
            EventKind::TxEnded { tx_id: "p".into() },
        ] {
            at(&m, then, kind);
        }
        assert_seconds(&m.prepare, 0.004);
        assert_eq!(m.log_force.get_sample_count(), 0);
        assert_eq!(m.commit.get_sample_count(), 0);
        assert_eq!(m.commit_records.get(), 0);
    }

    #[test]
    fn the_phase_table_is_bounded_and_overwrites_old_slots() {
        let mut clock = PhaseClock::new();
        let now = Instant::now();
        let started = |tx: &str| EventKind::TxStarted {
            tx_id: tx.into(),
            from: "A".into(),
            to: "B".into(),
            amount_cents: 1,
            nodes: vec!["6001".into(), "6002".into()],
            one_phase: false,
        };
        let ready = |tx: &str, node: &str| EventKind::Vote {
            tx_id: tx.into(),
            node: node.into(),
            vote: VoteView::Ready,
            reason: None,
        };
        for i in 0..(PHASE_SLOTS_MAX * 3) {
            let tx = format!("tx-{i}");
            clock.fold(&tx, &started(&tx), now);
        }
        assert_eq!(clock.slots.len(), PHASE_SLOTS_MAX);
        // The newest one is still timed.
        let newest = format!("tx-{}", PHASE_SLOTS_MAX * 3 - 1);
        assert!(clock.fold(&newest, &ready(&newest, "6001"), now).is_none());
        assert!(clock.fold(&newest, &ready(&newest, "6002"), now).is_some());
    }

    /// Quantiles from buckets: 0 with no observation; interpolated within
    /// the bucket a rank falls in; the last finite bound past it.
    #[test]
    fn bucket_quantiles_interpolate_within_the_bucket() {
        assert_eq!(bucket_quantile(&[(f64::INFINITY, 0)], 0.5), 0.0);
        // 10 observations at or below 1 s, 10 more at or below 2 s.
        let buckets = [(1.0, 10), (2.0, 20), (f64::INFINITY, 20)];
        assert_eq!(bucket_quantile(&buckets, 0.25), 0.5);
        assert_eq!(bucket_quantile(&buckets, 0.5), 1.0);
        assert_eq!(bucket_quantile(&buckets, 0.75), 1.5);
        assert_eq!(bucket_quantile(&buckets, 1.0), 2.0);
        // An empty bucket in between is skipped.
        let gap = [(1.0, 0), (2.0, 0), (4.0, 4), (f64::INFINITY, 4)];
        assert_eq!(bucket_quantile(&gap, 0.5), 3.0);
        // Observations beyond every bound: the last finite one.
        let over = [(1.0, 1), (f64::INFINITY, 10)];
        assert_eq!(bucket_quantile(&over, 0.99), 1.0);
    }

    /// The phases a committed transfer ran through come back as p50/p99 in
    /// milliseconds, within the bounds of the buckets they fell in.
    #[test]
    fn phase_quantiles_come_from_the_phase_histograms() {
        let m = Metrics::new();
        assert_eq!(m.phase_quantiles(), PhaseLatencyMs::default());
        for _ in 0..100 {
            m.prepare.observe(0.003);
            m.commit.observe(0.0002);
        }
        let q = m.phase_quantiles();
        // 3 ms lies in the (2.5 ms, 5 ms] bucket; 0.2 ms in (0.1, 0.25].
        assert!(q.prepare.p50 > 2.5 && q.prepare.p50 <= 5.0, "{q:?}");
        assert!(q.prepare.p99 > 2.5 && q.prepare.p99 <= 5.0, "{q:?}");
        assert!(q.commit.p50 > 0.1 && q.commit.p50 <= 0.25, "{q:?}");
        assert_eq!(q.decision_force, LatencyPoint::default());
    }
}
