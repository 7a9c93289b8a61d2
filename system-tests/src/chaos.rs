//! Chaos with real processes: a coordinator and three participants, clients
//! running transfers for a set time while a fault loop SIGKILLs random
//! participants and the coordinator, restarts them, crashes the
//! coordinator's engine at protocol points, and delays or cuts links. Then
//! everything is healed and the books are audited.
//!
//! The clients behave like real ones that lose answers: besides fresh
//! transfers they retry a tx_id with the same body after any answer, and
//! re-use a tx_id for a different transfer, most often right after a 503 or
//! a cut connection, while the coordinator is coming back (see
//! [`ClientMix`]). The audit then checks every request by its content.
//!
//! Used by `tests/chaos.rs` and `tests/chaos_commit_point.rs` (short runs)
//! and `src/bin/chaos.rs` (long runs).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::audit::{audit, Answer, Reported, Sent, Transfer};
use crate::progress::Progress;
use crate::{kill9, Cluster, Options};

#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub seconds: u64,
    pub clients: usize,
    pub nodes: u16,
    pub seed: u64,
    /// Mean pause between faults.
    pub fault_interval_ms: u64,
    /// Print each fault as it happens.
    pub verbose: bool,
    /// The coordinator's `--ack-wait-ms` (0: clients are answered at the
    /// commit point, before the nodes ack).
    pub ack_wait_ms: u64,
    /// How the clients retry and re-use tx_ids.
    pub mix: ClientMix,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            seconds: 20,
            clients: 8,
            nodes: 3,
            seed: 1,
            fault_interval_ms: 700,
            verbose: false,
            ack_wait_ms: 1_000,
            mix: ClientMix::default(),
        }
    }
}

/// How chaos clients mix retries and re-used tx_ids into their transfers.
/// Percentages; each pair of retry and re-use percentages is at most 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMix {
    /// After an answer that says (committed, aborted, 409 conflict): how
    /// often the client sends the same request again (same tx_id and body).
    pub retry_percent: u32,
    /// After such an answer: how often it sends a different transfer (other
    /// accounts and/or amount) under the same tx_id.
    pub reuse_percent: u32,
    /// After a 503 or a cut connection or timeout: how often it retries the
    /// same request at once, racing the coordinator's restart.
    pub retry_unknown_percent: u32,
    /// After a 503 or a cut: how often it re-uses the tx_id for a different
    /// transfer (what turned a $1.00 attempt into a $500.00 commit).
    pub reuse_unknown_percent: u32,
    /// How often a new request takes a tx_id any client used before (half
    /// retried, half re-used) instead of a fresh one.
    pub old_id_percent: u32,
    /// The same in the `storm_ms` after any client saw a 503 or a cut (a
    /// coordinator kill or engine crash), taken from unanswered requests.
    pub storm_percent: u32,
    pub storm_ms: u64,
}

impl Default for ClientMix {
    fn default() -> Self {
        ClientMix {
            retry_percent: 15,
            reuse_percent: 8,
            retry_unknown_percent: 60,
            reuse_unknown_percent: 25,
            old_id_percent: 5,
            storm_percent: 40,
            storm_ms: 3_000,
        }
    }
}

impl ClientMix {
    /// Clients that never retry nor re-use a tx_id (the original chaos).
    pub fn none() -> ClientMix {
        ClientMix {
            retry_percent: 0,
            reuse_percent: 0,
            retry_unknown_percent: 0,
            reuse_unknown_percent: 0,
            old_id_percent: 0,
            storm_percent: 0,
            storm_ms: 0,
        }
    }

    pub fn is_none(&self) -> bool {
        self.retry_percent
            + self.reuse_percent
            + self.retry_unknown_percent
            + self.reuse_unknown_percent
            + self.old_id_percent
            + self.storm_percent
            == 0
    }

    /// Why the mix is impossible, if it is.
    pub fn check(&self) -> Result<(), String> {
        if self.retry_percent + self.reuse_percent > 100 {
            return Err("retry and re-use percentages add up to more than 100".to_string());
        }
        if self.retry_unknown_percent + self.reuse_unknown_percent > 100 {
            return Err(
                "retry and re-use percentages after a 503 or cut add up to more than 100"
                    .to_string(),
            );
        }
        if self.old_id_percent > 100 || self.storm_percent > 100 {
            return Err("a percentage is above 100".to_string());
        }
        Ok(())
    }
}

impl std::fmt::Display for ClientMix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_none() {
            return write!(f, "fresh tx_ids only, never retried");
        }
        write!(
            f,
            "retry {}% / re-use {}% after an answer, {}% / {}% after a 503 or cut; \
             old ids {}% ({}% within {} ms of a 503 or cut)",
            self.retry_percent,
            self.reuse_percent,
            self.retry_unknown_percent,
            self.reuse_unknown_percent,
            self.old_id_percent,
            self.storm_percent,
            self.storm_ms
        )
    }
}

/// Sends of one kind (retries or re-uses): how many, after which answer to
/// the request they follow, and what they were answered.
#[derive(Debug, Default, Clone)]
pub struct SendCounts {
    pub sent: u64,
    pub after: BTreeMap<String, u64>,
    pub answered: BTreeMap<String, u64>,
}

impl std::fmt::Display for SendCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sent, after {:?}, answered {:?}",
            self.sent, self.after, self.answered
        )
    }
}

#[derive(Debug, Default)]
pub struct ChaosSummary {
    pub seed: u64,
    pub seconds: f64,
    pub mix: Option<ClientMix>,
    /// Every request sent (fresh, retried and re-used).
    pub attempted: u64,
    /// Requests sent under a tx_id never used before.
    pub fresh: u64,
    /// The rest count distinct requests (a tx_id with its body) by what
    /// their clients were told.
    pub committed: u64,
    pub aborted: u64,
    /// Refused with 409 because the tx_id belongs to another transfer.
    pub conflicts: u64,
    /// Answers that could not say (coordinator down): all-or-nothing is still checked.
    pub unknown: u64,
    pub aborts_by_reason: BTreeMap<String, u64>,
    pub retries: SendCounts,
    pub reuses: SendCounts,
    /// Sent after the run, on the settled cluster (see [`final_retries`]).
    pub settle: SendCounts,
    pub faults: BTreeMap<String, u64>,
    pub total_cents: i64,
    pub expected_total_cents: i64,
    pub violations: Vec<String>,
}

impl std::fmt::Display for ChaosSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "chaos run: seed {}, {:.0} s", self.seed, self.seconds)?;
        if let Some(mix) = &self.mix {
            writeln!(f, "  clients: {mix}")?;
        }
        writeln!(
            f,
            "  transfers: {} attempted ({} with a fresh tx_id); requests (tx_id and body): {} committed, {} aborted, \
             {} refused as conflicts (tx_id in use), {} unknown to the client (coordinator down)",
            self.attempted, self.fresh, self.committed, self.aborted, self.conflicts, self.unknown
        )?;
        writeln!(f, "  aborts by reason: {:?}", self.aborts_by_reason)?;
        writeln!(f, "  retries (same tx_id, same body): {}", self.retries)?;
        writeln!(f, "  re-uses (same tx_id, other transfer): {}", self.reuses)?;
        writeln!(
            f,
            "  after the run, settled (every request left unknown, and a sample of answered ones, sent again): {}",
            self.settle
        )?;
        let total_faults: u64 = self.faults.values().sum();
        writeln!(f, "  faults injected: {total_faults} {:?}", self.faults)?;
        writeln!(
            f,
            "  total: {} cents (expected {})",
            self.total_cents, self.expected_total_cents
        )?;
        write!(f, "  violations: {}", self.violations.len())?;
        for v in &self.violations {
            write!(f, "\n    - {v}")?;
        }
        Ok(())
    }
}

/// Why a request was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fresh,
    /// The same tx_id and body as a request sent before.
    Retry,
    /// A tx_id sent before, with a different body.
    Reuse,
    /// The same request again once the cluster has settled after the run.
    Settle,
}

/// A request to send: why, and after which answer to its tx_id (if it
/// follows one).
struct Next {
    kind: Kind,
    after: Option<Answer>,
    tx_id: String,
    transfer: Transfer,
}

#[derive(Default)]
struct Tally {
    sent: Vec<Sent>,
    fresh: u64,
    retries: SendCounts,
    reuses: SendCounts,
    settle: SendCounts,
    aborts_by_reason: BTreeMap<String, u64>,
}

/// What every client may pick an old tx_id from.
#[derive(Default)]
struct History {
    /// Every request sent with a new tx_id or as a re-use.
    all: Vec<(String, Transfer)>,
    /// The latest requests answered 503 or cut after they were sent.
    unknown: VecDeque<(String, Transfer)>,
}

/// Unanswered requests kept for storms.
const UNKNOWN_KEPT: usize = 512;
/// Follow-ups of one tx_id in a row, at most (a coordinator that stays down
/// must not keep a client on one id for the whole run).
const FOLLOW_UPS_MAX: u32 = 100;
/// Largest amount a chaos transfer moves.
const AMOUNT_CENTS_MAX: i64 = 20_000;

/// State the clients share.
struct Clients {
    mix: ClientMix,
    accounts: Vec<String>,
    history: Mutex<History>,
    tally: Mutex<Tally>,
    started: Instant,
    /// When a client last saw a 503 or a cut, in ms since `started` (plus
    /// one; 0: never).
    outage_at_ms: AtomicU64,
    sequence: AtomicU64,
}

impl Clients {
    /// Answers so far by kind, and the faults injected, for the progress bar.
    fn progress_line(&self, faults: u64) -> String {
        let t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let count = |answer: Answer| t.sent.iter().filter(|s| s.answer == answer).count();
        format!(
            "{} requests: {} committed, {} aborted, {} unavailable or cut; {faults} faults",
            t.sent.len(),
            count(Answer::Committed),
            count(Answer::Aborted),
            count(Answer::Unavailable) + count(Answer::Cut),
        )
    }

    fn in_storm(&self) -> bool {
        let at = self.outage_at_ms.load(Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64 + 1;
        at > 0 && now.saturating_sub(at) < self.mix.storm_ms
    }

    fn random_transfer(&self, rng: &mut StdRng) -> Transfer {
        let (from, to) = random_pair(rng, self.accounts.len());
        Transfer::new(
            &self.accounts[from],
            &self.accounts[to],
            rng.random_range(1..=AMOUNT_CENTS_MAX),
        )
    }

    /// A transfer that differs from `old`: in amount, accounts or both.
    fn other_transfer(&self, rng: &mut StdRng, old: &Transfer) -> Transfer {
        loop {
            let mut new = old.clone();
            let change = rng.random_range(0..3);
            if change != 1 {
                new.amount_cents = rng.random_range(1..=AMOUNT_CENTS_MAX);
            }
            if change != 0 {
                let (from, to) = random_pair(rng, self.accounts.len());
                new.from = self.accounts[from].clone();
                new.to = self.accounts[to].clone();
            }
            if &new != old {
                return new;
            }
        }
    }

    /// The next request when none follows from the last answer: usually a
    /// fresh tx_id; sometimes an old one, mostly unanswered ones in a storm.
    fn pick(&self, rng: &mut StdRng, client: usize) -> Next {
        let storm = self.in_storm();
        let percent = if storm {
            self.mix.storm_percent
        } else {
            self.mix.old_id_percent
        };
        if rng.random_range(0..100) < percent {
            let old = {
                let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
                if storm && !h.unknown.is_empty() {
                    h.unknown.get(rng.random_range(0..h.unknown.len())).cloned()
                } else if h.all.is_empty() {
                    None
                } else if rng.random_bool(0.5) {
                    // Recent ones: likelier still in flight somewhere.
                    let recent = h.all.len().saturating_sub(200);
                    h.all.get(rng.random_range(recent..h.all.len())).cloned()
                } else {
                    h.all.get(rng.random_range(0..h.all.len())).cloned()
                }
            };
            if let Some((tx_id, transfer)) = old {
                return if rng.random_bool(0.5) {
                    Next {
                        kind: Kind::Retry,
                        after: None,
                        tx_id,
                        transfer,
                    }
                } else {
                    let transfer = self.other_transfer(rng, &transfer);
                    Next {
                        kind: Kind::Reuse,
                        after: None,
                        tx_id,
                        transfer,
                    }
                };
            }
        }
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        Next {
            kind: Kind::Fresh,
            after: None,
            tx_id: format!("chaos-{client}-{n}"),
            transfer: self.random_transfer(rng),
        }
    }

    /// What follows `answer` to `sent`: the same request, the same tx_id
    /// with another transfer, or nothing (a new pick).
    fn follow_up(&self, rng: &mut StdRng, sent: &Next, answer: Answer) -> Option<Next> {
        let (retry, reuse) = if answer.is_unknown() {
            (
                self.mix.retry_unknown_percent,
                self.mix.reuse_unknown_percent,
            )
        } else {
            (self.mix.retry_percent, self.mix.reuse_percent)
        };
        let roll = rng.random_range(0..100);
        if roll < retry {
            Some(Next {
                kind: Kind::Retry,
                after: Some(answer),
                tx_id: sent.tx_id.clone(),
                transfer: sent.transfer.clone(),
            })
        } else if roll < retry + reuse {
            Some(Next {
                kind: Kind::Reuse,
                after: Some(answer),
                tx_id: sent.tx_id.clone(),
                transfer: self.other_transfer(rng, &sent.transfer),
            })
        } else {
            None
        }
    }

    fn record(&self, next: &Next, answer: Answer, reply: &Reply) {
        if answer.is_unknown() {
            let at = self.started.elapsed().as_millis() as u64 + 1;
            self.outage_at_ms.fetch_max(at, Ordering::Relaxed);
        }
        {
            let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
            if next.kind != Kind::Retry {
                h.all.push((next.tx_id.clone(), next.transfer.clone()));
            }
            // Storms re-send requests the coordinator may have started; one
            // refused at connect never reached it.
            if answer.is_unknown() && reply.reached {
                if h.unknown.len() >= UNKNOWN_KEPT {
                    h.unknown.pop_front();
                }
                h.unknown
                    .push_back((next.tx_id.clone(), next.transfer.clone()));
            }
        }
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let counts = match next.kind {
            Kind::Fresh => {
                t.fresh += 1;
                None
            }
            Kind::Retry => Some(&mut t.retries),
            Kind::Reuse => Some(&mut t.reuses),
            Kind::Settle => Some(&mut t.settle),
        };
        if let Some(counts) = counts {
            counts.sent += 1;
            let after = next
                .after
                .map_or("nothing (an old id)".to_string(), Answer::label);
            *counts.after.entry(after).or_default() += 1;
            *counts.answered.entry(answer.label()).or_default() += 1;
        }
        if answer == Answer::Aborted && matches!(next.kind, Kind::Fresh | Kind::Reuse) {
            let reason = reply.body["reason"].as_str().unwrap_or("none").to_string();
            *t.aborts_by_reason.entry(reason).or_default() += 1;
        }
        t.sent.push(Sent {
            tx_id: next.tx_id.clone(),
            transfer: next.transfer.clone(),
            answer,
        });
    }
}

/// Two different indexes below `n` (n >= 2).
fn random_pair(rng: &mut StdRng, n: usize) -> (usize, usize) {
    let from = rng.random_range(0..n);
    let mut to = rng.random_range(0..n - 1);
    if to >= from {
        to += 1;
    }
    (from, to)
}

/// An answer to a posted transfer.
struct Reply {
    /// 0 if no answer came.
    status: u16,
    body: Value,
    /// False if the connection was refused: the coordinator never saw it.
    reached: bool,
}

/// Posts one transfer.
async fn send_transfer(
    http: &reqwest::Client,
    url: String,
    tx_id: &str,
    transfer: &Transfer,
) -> Reply {
    let body = json!({
        "from": transfer.from,
        "to": transfer.to,
        "amount_cents": transfer.amount_cents,
        "tx_id": tx_id,
    });
    let answer = http
        .post(url)
        .json(&body)
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    match answer {
        Ok(r) => Reply {
            status: r.status().as_u16(),
            body: r.json::<Value>().await.unwrap_or(Value::Null),
            reached: true,
        },
        Err(e) => Reply {
            status: 0,
            body: Value::Null,
            reached: !e.is_connect(),
        },
    }
}

/// One chaos client: sends until `stop`, following each answer as the mix says.
async fn client_loop(
    clients: Arc<Clients>,
    http: reqwest::Client,
    base_url: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    client: usize,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next: Option<Next> = None;
    let mut follow_ups = 0;
    while !stop.load(Ordering::Relaxed) {
        let request = match next.take() {
            Some(n) => n,
            None => {
                follow_ups = 0;
                clients.pick(&mut rng, client)
            }
        };
        let url = format!(
            "{}/api/transfers",
            base_url.lock().unwrap_or_else(|e| e.into_inner())
        );
        let reply = send_transfer(&http, url, &request.tx_id, &request.transfer).await;
        let answer = Answer::classify(&request.tx_id, reply.status, &reply.body);
        clients.record(&request, answer, &reply);
        follow_ups += 1;
        if follow_ups < FOLLOW_UPS_MAX {
            next = clients.follow_up(&mut rng, &request, answer);
        }
        if answer.is_unknown() {
            // The coordinator is down or restarting: poll briefly, so that
            // a retry lands as soon as it is back.
            tokio::time::sleep(Duration::from_millis(rng.random_range(10..50))).await;
        } else if answer == Answer::Aborted && reply.body["reason"] == "node_unreachable" {
            // A node is down: its restart is on the way; don't spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Log size that triggers a checkpoint in chaos runs.
const CHAOS_CHECKPOINT_BYTES: u64 = 24 * 1024;

/// The seed of a chaos test: `CHAOS_SEED` if set (to replay a failure),
/// else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// What a chaos test requires of its run: no violation, the money all
/// there, something committed, at least `faults_min` faults injected
/// (fewer would prove little), and retries and re-uses sent if the mix
/// has them.
pub fn assert_clean(summary: &ChaosSummary, seed: u64, faults_min: u64) {
    println!("{summary}");
    assert!(
        summary.violations.is_empty(),
        "audit failed (replay with CHAOS_SEED={seed}):\n{summary}"
    );
    assert_eq!(summary.total_cents, summary.expected_total_cents);
    assert!(summary.committed > 0, "nothing committed: {summary}");
    let faults: u64 = summary.faults.values().sum();
    assert!(
        faults >= faults_min,
        "too few faults injected to mean anything: {summary}"
    );
    if summary.mix.as_ref().is_some_and(|m| !m.is_none()) {
        assert!(
            summary.retries.sent > 0 && summary.reuses.sent > 0,
            "the clients neither retried nor re-used a tx_id: {summary}"
        );
    }
}

pub async fn run(config: ChaosConfig) -> ChaosSummary {
    let options = Options {
        nodes: config.nodes,
        prepare_timeout_ms: 1_000,
        ack_wait_ms: config.ack_wait_ms,
        // Small checkpoints, so that the coordinator and every node rewrite
        // their logs (beside the old ones, in the background) every second
        // or so, and the kills land on checkpoints in progress too.
        extra_args: vec![
            "--log-checkpoint-bytes".into(),
            CHAOS_CHECKPOINT_BYTES.to_string(),
        ],
        ..Options::default()
    };
    let mut cluster = Cluster::start(options).await;
    let stop = Arc::new(AtomicBool::new(false));
    let base_url = Arc::new(Mutex::new(cluster.base_url.clone()));
    let shared = Arc::new(Clients {
        mix: config.mix.clone(),
        accounts: cluster.accounts(),
        history: Mutex::new(History::default()),
        tally: Mutex::new(Tally::default()),
        started: Instant::now(),
        outage_at_ms: AtomicU64::new(0),
        sequence: AtomicU64::new(0),
    });

    let mut clients = Vec::new();
    for client in 0..config.clients {
        let seed = config
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(client as u64);
        clients.push(tokio::spawn(client_loop(
            shared.clone(),
            cluster.http.clone(),
            base_url.clone(),
            stop.clone(),
            client,
            seed,
        )));
    }

    let started = Instant::now();
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let nodes: Vec<String> = (0..config.nodes)
        .map(|i| (6001 + u32::from(i)).to_string())
        .collect();
    let progress = Progress::seconds("[chaos]", config.seconds);
    while started.elapsed() < Duration::from_secs(config.seconds) {
        progress.set(
            started.elapsed().as_secs(),
            &shared.progress_line(faults.values().sum()),
            false,
        );
        let pause =
            rng.random_range(config.fault_interval_ms / 2..=config.fault_interval_ms * 3 / 2);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let node = nodes[rng.random_range(0..nodes.len())].clone();
        let kind = match rng.random_range(0..100) {
            0..=24 => {
                let killed = inject_node_kill(&cluster, &node).await;
                if killed.is_some() {
                    // Like a process supervisor would: back after a moment.
                    let delay = Duration::from_millis(rng.random_range(200..2_000));
                    restart_later(cluster.http.clone(), base_url.clone(), node.clone(), delay);
                }
                killed
            }
            25..=44 => inject_restart_dead(&cluster, &nodes).await,
            45..=54 => {
                cluster.kill_coordinator();
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
                cluster.start_coordinator().await;
                *base_url.lock().unwrap_or_else(|e| e.into_inner()) = cluster.base_url.clone();
                Some("coordinator_kill9")
            }
            55..=64 => {
                let at =
                    ["before_decision", "after_decision", "mid_commit"][rng.random_range(0..3)];
                let restart_after_ms: u64 = rng.random_range(100..1_000);
                let (status, _) = try_post(
                    &cluster,
                    "/api/coordinator/crash",
                    json!({"at": at, "restart_after_ms": restart_after_ms}),
                )
                .await;
                (status == 200).then_some("coordinator_engine_crash")
            }
            65..=74 => {
                let delay_ms: u64 = rng.random_range(50..400);
                let (status, _) = try_put(
                    &cluster,
                    &format!("/api/nodes/{node}/link"),
                    json!({"delay_ms": delay_ms}),
                )
                .await;
                (status == 200).then_some("link_delay")
            }
            75..=82 => {
                let (status, _) = try_put(
                    &cluster,
                    &format!("/api/nodes/{node}/link"),
                    json!({"drop": true}),
                )
                .await;
                (status == 200).then_some("link_cut")
            }
            83..=87 => {
                let (status, _) = try_put(
                    &cluster,
                    &format!("/api/nodes/{node}/link"),
                    json!({"duplicate": true}),
                )
                .await;
                (status == 200).then_some("link_duplicate")
            }
            _ => {
                let (status, _) = try_delete(&cluster, &format!("/api/nodes/{node}/link")).await;
                (status == 200).then_some("link_heal")
            }
        };
        if let Some(kind) = kind {
            if config.verbose {
                println!(
                    "[{:>6.1}s] fault: {kind} ({node})",
                    started.elapsed().as_secs_f64()
                );
            }
            *faults.entry(kind.to_string()).or_default() += 1;
        }
    }
    progress.finish();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.await;
    }
    let seconds = started.elapsed().as_secs_f64();

    // Heal: every link, every node, then wait until nothing is in doubt.
    for node in &nodes {
        let _ = try_delete(&cluster, &format!("/api/nodes/{node}/link")).await;
    }
    crate::wait_for_async(
        "the coordinator to answer after the run",
        crate::DEADLINE,
        || async { cluster.try_cluster().await.map(|_| ()) },
    )
    .await;
    for node in &nodes {
        let _ = try_post(&cluster, &format!("/api/nodes/{node}/restart"), json!({})).await;
    }
    cluster.wait_all_up().await;
    cluster.wait_quiescent().await;
    // What the clients saw during the run, before the final retries.
    let requests = {
        let t = shared.tally.lock().unwrap_or_else(|e| e.into_inner());
        requests_by_answer(&t.sent)
    };
    final_retries(&cluster, &shared, config.seed).await;
    let view = cluster.wait_quiescent().await;
    // The clients have stopped: take the tally (no lock held across the audit).
    let t = std::mem::take(&mut *shared.tally.lock().unwrap_or_else(|e| e.into_inner()));
    let reported = Reported {
        sent: t.sent,
        ..Reported::default()
    };
    let report = audit(&cluster, &view, &reported).await;
    ChaosSummary {
        seed: config.seed,
        seconds,
        mix: Some(config.mix),
        attempted: reported.sent.len() as u64,
        fresh: t.fresh,
        committed: requests.committed,
        aborted: requests.aborted,
        conflicts: requests.conflicts,
        unknown: requests.unknown,
        aborts_by_reason: t.aborts_by_reason,
        retries: t.retries,
        reuses: t.reuses,
        settle: t.settle,
        faults,
        total_cents: report.total_cents,
        expected_total_cents: report.expected_total_cents,
        violations: report.violations,
    }
}

/// Answered requests sent again after the run, at most.
const SETTLE_SAMPLE: usize = 500;

/// Once the cluster has settled after the run: every request never told an
/// outcome is sent again, as its client would to learn it, and so is a
/// sample of answered ones; the audit then checks the answers agree.
async fn final_retries(cluster: &Cluster, clients: &Clients, seed: u64) {
    let (unknown, answered) = {
        let t = clients.tally.lock().unwrap_or_else(|e| e.into_inner());
        let mut told: BTreeMap<(&str, &Transfer), Answer> = BTreeMap::new();
        for s in &t.sent {
            let kept = told.entry((&s.tx_id, &s.transfer)).or_insert(s.answer);
            if kept.is_unknown() {
                *kept = s.answer;
            }
        }
        let (unknown, answered): (Vec<_>, Vec<_>) = told
            .into_iter()
            .map(|((tx_id, transfer), answer)| (tx_id.to_string(), transfer.clone(), answer))
            .partition(|(_, _, answer)| answer.is_unknown());
        (unknown, answered)
    };
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(1));
    let sample =
        rand::seq::index::sample(&mut rng, answered.len(), SETTLE_SAMPLE.min(answered.len()));
    let again = unknown
        .into_iter()
        .chain(sample.into_iter().map(|i| answered[i].clone()));
    for (tx_id, transfer, answer) in again {
        let url = cluster.url("/api/transfers");
        let reply = send_transfer(&cluster.http, url, &tx_id, &transfer).await;
        let request = Next {
            kind: Kind::Settle,
            after: Some(answer),
            tx_id,
            transfer,
        };
        let answer = Answer::classify(&request.tx_id, reply.status, &reply.body);
        clients.record(&request, answer, &reply);
    }
}

/// Distinct requests (tx_id and body) by what their clients were told.
#[derive(Default)]
struct RequestCounts {
    committed: u64,
    aborted: u64,
    conflicts: u64,
    unknown: u64,
}

fn requests_by_answer(sent: &[Sent]) -> RequestCounts {
    let mut told: BTreeMap<(&str, &Transfer), Vec<Answer>> = BTreeMap::new();
    for s in sent {
        told.entry((&s.tx_id, &s.transfer))
            .or_default()
            .push(s.answer);
    }
    let mut counts = RequestCounts::default();
    for answers in told.values() {
        if answers.contains(&Answer::Committed) {
            counts.committed += 1;
        } else if answers.contains(&Answer::Aborted) {
            counts.aborted += 1;
        } else if answers.contains(&Answer::Conflict) {
            counts.conflicts += 1;
        } else {
            counts.unknown += 1;
        }
    }
    counts
}

/// Kills a running node: half the time through the API, half with a direct
/// kill -9 of its pid (as an operator's shell would).
async fn inject_node_kill(cluster: &Cluster, node: &str) -> Option<&'static str> {
    let view = cluster.try_cluster().await?;
    let pid = view.nodes.iter().find(|n| n.id == node)?.pid?;
    if pid % 2 == 0 {
        let (status, _) = try_post(cluster, &format!("/api/nodes/{node}/crash"), json!({})).await;
        (status == 200).then_some("node_kill9_api")
    } else {
        kill9(pid);
        Some("node_kill9_pid")
    }
}

fn restart_later(
    http: reqwest::Client,
    base_url: Arc<Mutex<String>>,
    node: String,
    delay: Duration,
) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let url = format!(
            "{}/api/nodes/{node}/restart",
            base_url.lock().unwrap_or_else(|e| e.into_inner())
        );
        let _ = try_send(http.post(url).json(&json!({}))).await;
    });
}

async fn inject_restart_dead(cluster: &Cluster, nodes: &[String]) -> Option<&'static str> {
    let view = cluster.try_cluster().await?;
    let mut restarted = false;
    for node in nodes {
        let dead = view
            .nodes
            .iter()
            .any(|n| &n.id == node && n.status == shared::api::ComponentStatus::Down);
        if dead {
            let (status, _) =
                try_post(cluster, &format!("/api/nodes/{node}/restart"), json!({})).await;
            restarted |= status == 200;
        }
    }
    restarted.then_some("node_restart")
}

async fn try_send(request: reqwest::RequestBuilder) -> (u16, Value) {
    match request.timeout(Duration::from_secs(10)).send().await {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

async fn try_post(cluster: &Cluster, path: &str, body: Value) -> (u16, Value) {
    try_send(cluster.http.post(cluster.url(path)).json(&body)).await
}

async fn try_put(cluster: &Cluster, path: &str, body: Value) -> (u16, Value) {
    try_send(cluster.http.put(cluster.url(path)).json(&body)).await
}

async fn try_delete(cluster: &Cluster, path: &str) -> (u16, Value) {
    try_send(cluster.http.delete(cluster.url(path))).await
}
