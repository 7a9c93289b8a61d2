//! Chaos: clients running transfers for a set time while a fault loop
//! SIGKILLs random participants (and, where it can, the coordinator's
//! process), restarts them, crashes the coordinator's engine at protocol
//! points, and delays, cuts or duplicates links. Then everything is healed
//! and the books are audited ([`audit`]).
//!
//! The clients behave like real ones that lose answers: besides fresh
//! transfers they retry a tx_id with the same body after any answer, and
//! re-use a tx_id for a different transfer, most often right after a 503 or
//! a cut connection, while the coordinator is coming back (see
//! [`ClientMix`], [`clients`]). The audit then checks every request by its
//! content.
//!
//! One loop, two users, each with its [`Target`]: the `chaos` command and
//! the system tests (`system-tests/src/chaos.rs`: their own processes over
//! HTTP, coordinator kill -9 included), and the dashboard's "Run chaos"
//! (`page`: the demo cluster, from inside its coordinator).

pub mod audit;
pub mod clients;
pub mod page;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::api::{ClusterView, ComponentStatus, CrashPoint, LedgerEntry, LinkFault};

use self::audit::{check, AccountBook, Books, Reported, Transfer};
pub use self::clients::Reply;
use self::clients::{client_loop, final_retries, requests_by_answer, Clients, History, Tally};

/// What a chaos run acts on: the coordinator's API, as a client would use
/// it. Each fault answers whether it was injected (the API said 200).
pub trait Target: Send + Sync + 'static {
    /// Runs one transfer under `tx_id` (`POST /api/transfers`).
    fn transfer(&self, tx_id: &str, transfer: &Transfer) -> impl Future<Output = Reply> + Send;
    /// `GET /api/cluster`; `None` if the coordinator does not answer.
    fn cluster(&self) -> impl Future<Output = Option<ClusterView>> + Send;
    /// `GET /api/accounts/{id}/ledger`; `None` if it cannot be read.
    fn ledger(&self, account: &str) -> impl Future<Output = Option<Vec<LedgerEntry>>> + Send;
    /// `POST /api/nodes/{id}/crash` (SIGKILL now).
    fn crash_node(&self, node: &str) -> impl Future<Output = bool> + Send;
    /// `POST /api/nodes/{id}/restart`.
    fn restart_node(&self, node: &str) -> impl Future<Output = bool> + Send;
    /// `POST /api/coordinator/crash`: the engine crashes at `at` and
    /// restarts `restart_after_ms` later.
    fn crash_engine(
        &self,
        at: CrashPoint,
        restart_after_ms: u64,
    ) -> impl Future<Output = bool> + Send;
    /// `PUT /api/nodes/{id}/link`.
    fn set_link(&self, node: &str, fault: LinkFault) -> impl Future<Output = bool> + Send;
    /// `DELETE /api/nodes/{id}/link`.
    fn heal_link(&self, node: &str) -> impl Future<Output = bool> + Send;
    /// Kills the coordinator's process (kill -9), waits `pause` and starts
    /// it again; false if this target cannot (a coordinator cannot restart
    /// its own process: the run then crashes its engine instead).
    fn restart_coordinator(&self, pause: Duration) -> impl Future<Output = bool> + Send;
    /// After the run: disarms a coordinator crash that has not fired and
    /// stops holding messages, so that the cluster can settle.
    fn clear_coordinator_faults(&self) -> impl Future<Output = ()> + Send;
}

/// What the fault loop and its clients do; the cluster is the target's.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub seconds: u64,
    pub clients: usize,
    pub seed: u64,
    /// Mean pause between faults.
    pub fault_interval_ms: u64,
    /// How the clients retry and re-use tx_ids.
    pub mix: ClientMix,
    /// `None`: fresh tx_ids are `chaos-<client>-<n>` and the audit checks
    /// every id on the ledgers (a cluster of the run's own). `Some(prefix)`:
    /// they start with `prefix`, and the audit checks those one by one
    /// (a cluster with a past, e.g. the demo's).
    pub tx_id_prefix: Option<String>,
}

/// Fresh tx_ids of a run on a cluster of its own.
const TX_ID_PREFIX_DEFAULT: &str = "chaos-";

/// Requests sent so far, by answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub committed: u64,
    pub aborted: u64,
    /// Answered 503, or cut.
    pub unknown: u64,
}

/// What a run reports while it runs.
#[derive(Debug, Clone)]
pub enum Report<'a> {
    /// Before each fault: time so far, requests and faults so far.
    Tick {
        elapsed: Duration,
        counts: Counts,
        faults: &'a BTreeMap<String, u64>,
    },
    /// A fault was injected.
    Fault {
        elapsed: Duration,
        kind: &'static str,
        node: &'a str,
    },
    /// The faults have stopped; the run heals the cluster and audits it.
    Settling { counts: Counts },
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
    /// Sent after the run, on the settled cluster (see [`clients::final_retries`]).
    pub settle: SendCounts,
    pub faults: BTreeMap<String, u64>,
    pub total_cents: i64,
    pub expected_total_cents: i64,
    /// The audit's figures: requests answered committed, and of those the
    /// ones with both legs on the ledgers exactly once; the same for
    /// aborted ones with nothing on any ledger.
    pub audited_committed: u64,
    pub committed_on_both_ledgers: u64,
    pub audited_aborted: u64,
    pub aborted_on_no_ledger: u64,
    pub violations: Vec<String>,
}

impl ChaosSummary {
    /// The verdict: no violation, the total conserved.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.total_cents == self.expected_total_cents
    }
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
            "  audit: {} of {} committed requests on both ledgers, {} of {} aborted on none",
            self.committed_on_both_ledgers,
            self.audited_committed,
            self.aborted_on_no_ledger,
            self.audited_aborted
        )?;
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

/// How long the cluster may take to come back and settle after the run.
const SETTLE_TIMEOUT_MS: u64 = 60_000;
/// How often the settling run polls the cluster.
const SETTLE_POLL_MS: u64 = 100;

/// Runs clients and faults against `target` for `config.seconds` (or until
/// `stop` is set), then heals everything, waits for the cluster to settle,
/// sends unanswered requests again and audits the books. `nodes` are the
/// node ids to fault, `accounts` those to move money between (at least two).
pub async fn run<T: Target>(
    target: Arc<T>,
    config: RunConfig,
    nodes: Vec<String>,
    accounts: Vec<String>,
    stop: Arc<AtomicBool>,
    mut report: impl FnMut(Report<'_>),
) -> ChaosSummary {
    assert!(accounts.len() >= 2, "a chaos run needs two accounts");
    assert!(!nodes.is_empty(), "a chaos run needs a node");
    let clients_stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Clients {
        mix: config.mix.clone(),
        accounts,
        history: Mutex::new(History::default()),
        tally: Mutex::new(Tally::default()),
        started: Instant::now(),
        outage_at_ms: AtomicU64::new(0),
        sequence: AtomicU64::new(0),
        tx_id_prefix: config
            .tx_id_prefix
            .clone()
            .unwrap_or_else(|| TX_ID_PREFIX_DEFAULT.to_string()),
    });
    let mut clients = Vec::new();
    for client in 0..config.clients {
        let seed = config
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(client as u64);
        clients.push(tokio::spawn(client_loop(
            shared.clone(),
            target.clone(),
            clients_stop.clone(),
            client,
            seed,
        )));
    }

    let started = Instant::now();
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let run_for = Duration::from_secs(config.seconds);
    while started.elapsed() < run_for && !stop.load(Ordering::Relaxed) {
        report(Report::Tick {
            elapsed: started.elapsed(),
            counts: shared.counts(),
            faults: &faults,
        });
        let pause =
            rng.random_range(config.fault_interval_ms / 2..=config.fault_interval_ms * 3 / 2);
        let left = run_for.saturating_sub(started.elapsed());
        tokio::time::sleep(Duration::from_millis(pause).min(left)).await;
        if started.elapsed() >= run_for || stop.load(Ordering::Relaxed) {
            break;
        }
        let node = nodes[rng.random_range(0..nodes.len())].clone();
        if let Some(kind) = inject(&target, &mut rng, &nodes, &node).await {
            report(Report::Fault {
                elapsed: started.elapsed(),
                kind,
                node: &node,
            });
            *faults.entry(kind.to_string()).or_default() += 1;
        }
    }
    clients_stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    report(Report::Settling {
        counts: shared.counts(),
    });

    let mut violations = Vec::new();
    // What the clients saw during the run, before the final retries.
    let requests = {
        let t = shared.tally.lock().unwrap_or_else(|e| e.into_inner());
        requests_by_answer(&t.sent)
    };
    let settled = match settle(target.as_ref(), &nodes).await {
        Ok(()) => {
            final_retries(target.as_ref(), &shared, config.seed).await;
            wait_quiescent(target.as_ref()).await
        }
        Err(why) => Err(why),
    };
    // The clients have stopped: take the tally (no lock held across the audit).
    let t = std::mem::take(&mut *shared.tally.lock().unwrap_or_else(|e| e.into_inner()));
    let reported = Reported {
        sent: t.sent,
        tx_id_prefix: config.tx_id_prefix.clone(),
        ..Reported::default()
    };
    let audit = match settled {
        Ok(view) => match read_books(target.as_ref(), &view).await {
            Ok(books) => Some(check(&books, &reported)),
            Err(why) => {
                violations.push(why);
                None
            }
        },
        Err(why) => {
            violations.push(why);
            None
        }
    };
    let audit = audit.unwrap_or_default();
    violations.extend(audit.violations);
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
        total_cents: audit.total_cents,
        expected_total_cents: audit.expected_total_cents,
        audited_committed: audit.committed,
        committed_on_both_ledgers: audit.committed_on_both_ledgers,
        audited_aborted: audit.aborted,
        aborted_on_no_ledger: audit.aborted_on_no_ledger,
        violations,
    }
}

/// Injects one random fault; its name if it was injected.
async fn inject<T: Target>(
    target: &Arc<T>,
    rng: &mut StdRng,
    nodes: &[String],
    node: &str,
) -> Option<&'static str> {
    match rng.random_range(0..100) {
        0..=24 => {
            let killed = inject_node_kill(target.as_ref(), node).await;
            if killed.is_some() {
                // Like a process supervisor would: back after a moment.
                let delay = Duration::from_millis(rng.random_range(200..2_000));
                restart_later(target.clone(), node.to_string(), delay);
            }
            killed
        }
        25..=44 => inject_restart_dead(target.as_ref(), nodes).await,
        45..=54 => {
            let pause = Duration::from_millis(rng.random_range(0..500));
            if target.restart_coordinator(pause).await {
                Some("coordinator_kill9")
            } else {
                inject_engine_crash(target.as_ref(), rng).await
            }
        }
        55..=64 => inject_engine_crash(target.as_ref(), rng).await,
        65..=74 => {
            let fault = LinkFault {
                delay_ms: rng.random_range(50..400),
                ..LinkFault::default()
            };
            target.set_link(node, fault).await.then_some("link_delay")
        }
        75..=82 => {
            let fault = LinkFault {
                drop: true,
                ..LinkFault::default()
            };
            target.set_link(node, fault).await.then_some("link_cut")
        }
        83..=87 => {
            let fault = LinkFault {
                duplicate: true,
                ..LinkFault::default()
            };
            target
                .set_link(node, fault)
                .await
                .then_some("link_duplicate")
        }
        _ => target.heal_link(node).await.then_some("link_heal"),
    }
}

async fn inject_engine_crash<T: Target>(target: &T, rng: &mut StdRng) -> Option<&'static str> {
    let at = [
        CrashPoint::BeforeDecision,
        CrashPoint::AfterDecision,
        CrashPoint::MidCommit,
    ][rng.random_range(0..3)];
    let restart_after_ms: u64 = rng.random_range(100..1_000);
    target
        .crash_engine(at, restart_after_ms)
        .await
        .then_some("coordinator_engine_crash")
}

/// Kills a running node: half the time through the API, half with a direct
/// kill -9 of its pid (as an operator's shell would).
async fn inject_node_kill<T: Target>(target: &T, node: &str) -> Option<&'static str> {
    let view = target.cluster().await?;
    let pid = view.nodes.iter().find(|n| n.id == node)?.pid?;
    if pid % 2 == 0 {
        target.crash_node(node).await.then_some("node_kill9_api")
    } else {
        let pid = libc::pid_t::try_from(pid).ok()?;
        // SAFETY: kill(2) with a pid the coordinator reported for one of its
        // nodes; a stale pid is at worst an ESRCH.
        let killed = unsafe { libc::kill(pid, libc::SIGKILL) } == 0;
        killed.then_some("node_kill9_pid")
    }
}

fn restart_later<T: Target>(target: Arc<T>, node: String, delay: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        target.restart_node(&node).await;
    });
}

async fn inject_restart_dead<T: Target>(target: &T, nodes: &[String]) -> Option<&'static str> {
    let view = target.cluster().await?;
    let mut restarted = false;
    for node in nodes {
        let dead = view
            .nodes
            .iter()
            .any(|n| &n.id == node && n.status == ComponentStatus::Down);
        if dead {
            restarted |= target.restart_node(node).await;
        }
    }
    restarted.then_some("node_restart")
}

/// Heals every link, clears the coordinator's faults, restarts every node
/// and waits until all are up and nothing is in doubt.
async fn settle<T: Target>(target: &T, nodes: &[String]) -> Result<(), String> {
    for node in nodes {
        target.heal_link(node).await;
    }
    target.clear_coordinator_faults().await;
    wait_until(target, "the coordinator to answer after the run", |_| true).await?;
    for node in nodes {
        // 409 for a node that is running: nothing to do.
        target.restart_node(node).await;
    }
    wait_until(target, "every node and the coordinator to be up", |view| {
        view.coordinator.status == ComponentStatus::Up
            && view.nodes.iter().all(|n| n.status == ComponentStatus::Up)
    })
    .await?;
    wait_quiescent(target).await.map(|_| ())
}

/// Waits until nothing is in doubt and nothing is locked.
async fn wait_quiescent<T: Target>(target: &T) -> Result<ClusterView, String> {
    wait_until(
        target,
        "the cluster to settle (nothing in doubt, no locks)",
        |view| {
            view.total_complete
                && view
                    .nodes
                    .iter()
                    .all(|n| n.in_doubt.is_empty() && n.locked_accounts.is_empty())
        },
    )
    .await
}

/// Polls the cluster until `ready` holds, for at most [`SETTLE_TIMEOUT_MS`].
async fn wait_until<T: Target>(
    target: &T,
    what: &str,
    ready: impl Fn(&ClusterView) -> bool,
) -> Result<ClusterView, String> {
    let deadline = Instant::now() + Duration::from_millis(SETTLE_TIMEOUT_MS);
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(view) = target.cluster().await {
            if ready(&view) {
                return Ok(view);
            }
            last = Some(view);
        }
        tokio::time::sleep(Duration::from_millis(SETTLE_POLL_MS)).await;
    }
    Err(format!(
        "the cluster did not settle: still waiting for {what} after {SETTLE_TIMEOUT_MS} ms (last seen: {})",
        last.map_or("no answer".to_string(), |v| format!("{:?}", v.nodes.iter().map(|n| (&n.id, n.status, &n.in_doubt)).collect::<Vec<_>>()))
    ))
}

/// Every account's balance and ledger from a settled view.
async fn read_books<T: Target>(target: &T, view: &ClusterView) -> Result<Books, String> {
    let mut books = Books {
        total_cents: view.total_cents,
        expected_total_cents: view.expected_total_cents,
        accounts: Vec::new(),
    };
    for node in &view.nodes {
        for account in &node.accounts {
            let ledger = target.ledger(&account.id).await.ok_or_else(|| {
                format!(
                    "the ledger of {} could not be read after the run",
                    account.id
                )
            })?;
            books.accounts.push(AccountBook {
                id: account.id.clone(),
                balance_cents: account.balance_cents,
                ledger,
            });
        }
    }
    Ok(books)
}
