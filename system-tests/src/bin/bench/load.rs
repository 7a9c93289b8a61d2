//! The load: which transfers to make, C closed-loop clients making them
//! until a deadline, and the tally of what happened and how long it took.
//!
//! Each client runs one transfer at a time (closed loop), so C is exactly
//! the number of transfers in flight. Transfers that start during the
//! warm-up are not measured; the measured window ends when the last transfer
//! started before the deadline finishes.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::limits::BENCH_SLOW_TRANSFER_US;
use system_tests::progress::Progress;

/// The accounts of each node, and the size of the transfers.
pub struct Workload {
    pub by_node: Vec<Vec<String>>,
    pub amount_cents_max: i64,
}

/// One transfer to make: always between two different nodes (2PC).
pub struct Transfer<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub amount_cents: i64,
}

impl Workload {
    pub fn pick(&self, rng: &mut StdRng) -> Transfer<'_> {
        let nodes = self.by_node.len();
        assert!(
            nodes >= 2,
            "transfers between nodes need at least two nodes"
        );
        let from_node = rng.random_range(0..nodes);
        let to_node = (from_node + rng.random_range(1..nodes)) % nodes;
        let from = &self.by_node[from_node][rng.random_range(0..self.by_node[from_node].len())];
        let to = &self.by_node[to_node][rng.random_range(0..self.by_node[to_node].len())];
        Transfer {
            from,
            to,
            amount_cents: rng.random_range(1..=self.amount_cents_max),
        }
    }
}

/// What one transfer came to.
pub enum Outcome {
    Committed,
    /// Aborted by the protocol, with the API's reason.
    Aborted(String),
    /// No transfer outcome (HTTP error status, broken connection, ...).
    Error(String),
}

/// Something that can make transfers (one per client).
pub trait Client {
    async fn transfer(&mut self, transfer: Transfer<'_>) -> Outcome;
}

#[derive(Default)]
pub struct Tally {
    pub committed: u64,
    pub aborted: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub latencies_us: Vec<u32>,
    /// By the second of the measured window in which each transfer started.
    pub seconds: Vec<Second>,
}

/// The transfers that started in one second of the measured window.
#[derive(Default, Clone, Copy)]
pub struct Second {
    pub committed: u64,
    /// Aborted or without an outcome.
    pub failed: u64,
    pub max_us: u32,
    /// How many took at least [`BENCH_SLOW_TRANSFER_US`].
    pub slow: u64,
}

impl Tally {
    fn record(&mut self, outcome: &Outcome, latency: Duration, second: usize) {
        match outcome {
            Outcome::Committed => self.committed += 1,
            Outcome::Aborted(reason) => *self.aborted.entry(reason.clone()).or_default() += 1,
            Outcome::Error(what) => *self.errors.entry(what.clone()).or_default() += 1,
        }
        let latency_us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us.push(latency_us);
        if self.seconds.len() <= second {
            self.seconds.resize(second + 1, Second::default());
        }
        let s = &mut self.seconds[second];
        match outcome {
            Outcome::Committed => s.committed += 1,
            Outcome::Aborted(_) | Outcome::Error(_) => s.failed += 1,
        }
        s.max_us = s.max_us.max(latency_us);
        s.slow += u64::from(latency_us >= BENCH_SLOW_TRANSFER_US);
    }

    fn merge(&mut self, other: Tally) {
        self.committed += other.committed;
        for (k, v) in other.aborted {
            *self.aborted.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.latencies_us.extend(other.latencies_us);
        if self.seconds.len() < other.seconds.len() {
            self.seconds.resize(other.seconds.len(), Second::default());
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(other.seconds) {
            mine.committed += theirs.committed;
            mine.failed += theirs.failed;
            mine.max_us = mine.max_us.max(theirs.max_us);
            mine.slow += theirs.slow;
        }
    }

    pub fn aborted_total(&self) -> u64 {
        self.aborted.values().sum()
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Latency percentiles in ms: p50, p99, p99.9, max.
    pub fn percentiles_ms(&mut self) -> [f64; 4] {
        if self.latencies_us.is_empty() {
            return [0.0; 4];
        }
        self.latencies_us.sort_unstable();
        let sorted = &self.latencies_us;
        let at = |p: f64| {
            let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
        };
        [
            at(50.0),
            at(99.0),
            at(99.9),
            f64::from(sorted[sorted.len() - 1]) / 1000.0,
        ]
    }
}

pub struct Run {
    /// Transfers started in the measured window.
    pub measured: Tally,
    /// Wall-clock time at the start of the measured window.
    pub started_at: std::time::SystemTime,
    /// From the end of the warm-up to the last measured completion.
    pub elapsed: Duration,
    /// Every committed transfer, warm-up included (for the audit).
    pub committed_all: u64,
    /// Every transfer without an outcome, warm-up included.
    pub errors_all: u64,
}

/// Runs `clients` closed-loop clients (on the current thread's `LocalSet`)
/// for `warmup` then `measure`, with a bar of the seconds on a terminal if
/// `show_progress`.
pub async fn drive<C: Client + 'static>(
    clients: Vec<C>,
    workload: Rc<Workload>,
    warmup: Duration,
    measure: Duration,
    show_progress: bool,
) -> Run {
    let start = Instant::now() + warmup;
    let started_at = std::time::SystemTime::now() + warmup;
    let end = start + measure;
    let ticker = show_progress.then(|| {
        let began = Instant::now();
        let progress = Progress::seconds("[bench]", (end - began).as_secs());
        tokio::task::spawn_local(async move {
            while progress.is_bar() && Instant::now() < end {
                let now = Instant::now();
                let what = if now < start {
                    "warming up"
                } else {
                    "measuring"
                };
                progress.set((now - began).as_secs(), what, false);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    });
    let mut tasks = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let workload = workload.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let mut rng = StdRng::seed_from_u64(0x2bc_0000 + i as u64);
            let mut tally = Tally::default();
            let (mut committed_all, mut errors_all, mut last_done) = (0u64, 0u64, start);
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let transfer = workload.pick(&mut rng);
                let outcome = client.transfer(transfer).await;
                let done = Instant::now();
                match outcome {
                    Outcome::Committed => committed_all += 1,
                    Outcome::Error(_) => errors_all += 1,
                    Outcome::Aborted(_) => {}
                }
                if began >= start {
                    let second = (began - start).as_secs() as usize;
                    tally.record(&outcome, done - began, second);
                    last_done = last_done.max(done);
                }
            }
            (tally, committed_all, errors_all, last_done)
        }));
    }
    let mut run = Run {
        measured: Tally::default(),
        started_at,
        elapsed: Duration::ZERO,
        committed_all: 0,
        errors_all: 0,
    };
    let mut last_done = start;
    for task in tasks {
        let (tally, committed_all, errors_all, done) = task.await.expect("a client task panicked");
        run.measured.merge(tally);
        run.committed_all += committed_all;
        run.errors_all += errors_all;
        last_done = last_done.max(done);
    }
    if let Some(ticker) = ticker {
        let _ = ticker.await;
    }
    run.elapsed = last_done
        .saturating_duration_since(start)
        .max(Duration::from_millis(1));
    run
}
