//! Deterministic simulation of the whole protocol: the real `Coordinator`
//! and 2..4 real `Participant`s, wired by a simulated network, simulated
//! disks and a simulated clock, all driven by one seeded PRNG.
//!
//! Faults: crash and restart of any participant and of the coordinator
//! (recovery from the durable records only; a random prefix of the records
//! that were appended but not yet fsynced may survive, the rest is lost as a
//! torn tail would be), armed crash points of both machines, message drop,
//! duplication, reordering and delay, partitions of a link, checkpoints.
//! Clients submit many transfers per run and retry some with the same
//! `tx_id`. After **every step** the money invariants are checked; at the end
//! everything is healed and the run must become quiescent with every
//! transaction resolved, nothing in doubt, no lock held and the total kept.
//! Every event the coordinator emits goes through the transaction fold
//! (`shared::fold`), which must agree with the coordinator at every step
//! and with the nodes at the end (see `common::folds`).
//!
//! Commands:
//! ```text
//! cargo test -p shared --test simulation                         # SIM_SEEDS seeds (default 5000)
//! SIM_SEED=<n> cargo test -p shared --test simulation -- --nocapture
//!                                                                # replay one seed with its full trace
//! SIM_SEEDS=1000000 cargo test --release -p shared --test simulation -- --nocapture
//!                                                                # millions; SIM_SEED_START=<n> to shift
//! SIM_SEED=<n> SIM_TRACE=out.jsonl cargo test -p shared --test simulation -- --nocapture
//!                                                                # and write its events for the dashboard
//! ```
//! A failure prints the seed, the step, the last steps of the trace and the
//! command that replays it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use shared::api::{CrashPoint, Outcome, TransferRequest};
use shared::protocol::coordinator::{
    self as co, ClientId, Coordinator, CoordinatorConfig, DemoFaults, TransferError,
};
use shared::protocol::participant::{self as pa, Participant, ParticipantConfig};
use shared::protocol::record::{CoordinatorRecord, ParticipantRecord};
use shared::wire::{
    AccountId, Decision, NodeId, ParticipantCrashPoint, Reply, Request, TxId, Vote,
};

const SEEDS_DEFAULT: u64 = 5_000;
const BALANCE_CENTS_INITIAL: i64 = 10_000;
const TRANSFERS_PER_RUN_MAX: u64 = 40;
const STEPS_PER_RUN: u64 = 1_500;
const QUIESCE_ROUNDS_MAX: u64 = 2_000;
const TRACE_TAIL_LINES: usize = 80;
const CLUSTER: &str = "sim";

mod common;
mod sim_trace;
use common::folds::Folds;
use common::Rng;

// ----- simulated disk -----

/// Records appended are durable only after `fsync`. A crash keeps the
/// durable records plus a random prefix of the others (what the OS happened
/// to write; a torn record after it is cut by the log at recovery).
struct Disk<R> {
    durable: Vec<R>,
    pending: Vec<(u64, R)>,
}

impl<R: Clone> Disk<R> {
    fn new() -> Self {
        Disk {
            durable: Vec::new(),
            pending: Vec::new(),
        }
    }
    fn append(&mut self, seq: u64, record: R) {
        self.pending.push((seq, record));
    }
    /// Makes everything durable; returns the seq to feed back as `Durable`.
    fn fsync(&mut self) -> Option<u64> {
        let last = self.pending.last().map(|(seq, _)| *seq)?;
        self.durable.extend(self.pending.drain(..).map(|(_, r)| r));
        Some(last)
    }
    fn crash(&mut self, rng: &mut Rng) -> Vec<R> {
        let kept = if rng.chance(500) {
            0
        } else {
            rng.below(self.pending.len() as u64 + 1) as usize
        };
        self.durable
            .extend(self.pending.drain(..).take(kept).map(|(_, r)| r));
        self.pending.clear();
        self.durable.clone()
    }
    /// A checkpoint rewrites the log atomically and durably.
    fn rewrite(&mut self, checkpoint: R) {
        self.pending.clear();
        self.durable = vec![checkpoint];
    }
}

// ----- simulated network -----

struct InFlight<T> {
    at_us: u64,
    conn: u64,
    msg: T,
}

#[derive(Default, Clone, Copy)]
struct LinkFaults {
    drop_per_mille: u64,
    dup_per_mille: u64,
    delay_us_max: u64,
}

/// The persistent connection between the coordinator and one node. Messages
/// in flight die with the connection; a new connection gets a new id, so
/// replies held for an old one are dropped as a real driver would.
struct Link {
    partitioned: bool,
    connected: bool,
    /// The node accepted this connection's coordinator (its binding is
    /// durable): the coordinator counts the node as up.
    accepted: bool,
    conn: u64,
    faults: LinkFaults,
    to_node: Vec<InFlight<Request>>,
    to_coord: Vec<InFlight<Reply>>,
}

// ----- the world -----

struct Node {
    id: NodeId,
    config: ParticipantConfig,
    machine: Participant,
    up: bool,
    disk: Disk<ParticipantRecord>,
    /// Transactions this node has voted `ready` for (history, kept across crashes).
    voted_ready: BTreeSet<TxId>,
    /// Transactions this node received a `rollback` for.
    rollback_received: BTreeSet<TxId>,
    /// Applied transactions: tx → number of ledger entries (from the machine).
    applied: BTreeMap<TxId, usize>,
    dirty: bool,
}

struct Sim {
    seed: u64,
    rng: Rng,
    now_us: u64,
    step: u64,
    verbose: bool,
    /// Keep the last steps for the failure report. Off for speed: a failing
    /// seed is simply run again with it on (the run is deterministic).
    tracing: bool,
    trace: VecDeque<String>,
    coord_config: CoordinatorConfig,
    coord: Coordinator,
    coord_up: bool,
    coord_disk: Disk<CoordinatorRecord>,
    nodes: Vec<Node>,
    links: Vec<Link>,
    accounts: Vec<(AccountId, usize)>,
    next_conn: u64,
    next_client: ClientId,
    requests: BTreeMap<TxId, TransferRequest>,
    pending_clients: BTreeMap<ClientId, TxId>,
    told: BTreeMap<TxId, Outcome>,
    /// Transactions applied somewhere or reported committed: no leg may
    /// ever abort them.
    must_not_abort: BTreeSet<TxId>,
    /// 0 = calm, higher = more faults.
    storm: u64,
    stats: Stats,
    /// The fold of each transaction's events, kept across coordinator crashes.
    folds: Folds,
    /// The run in the recording format (`SIM_TRACE`), for the dashboard.
    recording: Option<sim_trace::Trace>,
}

#[derive(Default, Clone, Copy, Debug)]
struct Stats {
    steps: u64,
    transfers: u64,
    committed: u64,
    aborted: u64,
    unknown: u64,
    crashes: u64,
    coordinator_crashes: u64,
    dropped: u64,
    duplicated: u64,
    partitions: u64,
    checkpoints: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.transfers += o.transfers;
        self.committed += o.committed;
        self.aborted += o.aborted;
        self.unknown += o.unknown;
        self.crashes += o.crashes;
        self.coordinator_crashes += o.coordinator_crashes;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.partitions += o.partitions;
        self.checkpoints += o.checkpoints;
    }
}

type Check = Result<(), String>;

/// Formats a trace line only when tracing is on.
macro_rules! trace {
    ($sim:expr, $($arg:tt)*) => {
        if $sim.tracing {
            let line = format!($($arg)*);
            $sim.log(line);
        }
    };
}

impl Sim {
    fn new(seed: u64, verbose: bool, tracing: bool) -> Sim {
        let mut rng = Rng(seed);
        let node_count = 2 + rng.below(3) as usize;
        let mut accounts = Vec::new();
        let mut nodes = Vec::new();
        let mut links = Vec::new();
        let mut account_map = BTreeMap::new();
        for i in 0..node_count {
            let id = format!("{}", 6001 + i);
            let own: Vec<(AccountId, i64)> = ["a", "b"]
                .iter()
                .map(|s| {
                    (
                        format!("{}{}", (b'A' + i as u8) as char, s),
                        BALANCE_CENTS_INITIAL,
                    )
                })
                .collect();
            for (a, _) in &own {
                accounts.push((a.clone(), i));
                account_map.insert(a.clone(), id.clone());
            }
            let config = ParticipantConfig {
                node: id.clone(),
                accounts: own,
                lock_wait_us: 5_000 + rng.below(30_000),
                faults_allowed: true,
                hash_seed: Default::default(),
            };
            let mut disk = Disk::new();
            disk.durable.push(Participant::init_record(&config));
            let machine =
                Participant::recover(config.clone(), &disk.durable).expect("init replays");
            nodes.push(Node {
                id,
                config,
                machine,
                up: true,
                disk,
                voted_ready: BTreeSet::new(),
                rollback_received: BTreeSet::new(),
                applied: BTreeMap::new(),
                dirty: false,
            });
            links.push(Link {
                partitioned: false,
                connected: false,
                accepted: false,
                conn: 0,
                faults: LinkFaults::default(),
                to_node: Vec::new(),
                to_coord: Vec::new(),
            });
        }
        let mut coord_config =
            CoordinatorConfig::new(nodes.iter().map(|n| n.id.clone()).collect(), account_map);
        coord_config.prepare_timeout_us = 10_000 + rng.below(40_000);
        // One run in four answers clients at the commit point (no ack wait).
        coord_config.ack_wait_us = match rng.below(4) {
            0 => 0,
            _ => 10_000 + rng.below(40_000),
        };
        coord_config.commit_retry_us = 2_000 + rng.below(10_000);
        coord_config.in_doubt_sweep_us = 5_000 + rng.below(20_000);
        let mut coord = Coordinator::recover(coord_config.clone(), &[]);
        let mut coord_disk = Disk::new();
        coord_disk.durable.push(coord.begin_epoch(CLUSTER.into()));
        let storm = rng.below(4);
        let mut sim = Sim {
            seed,
            rng,
            now_us: 1_000,
            step: 0,
            verbose,
            tracing,
            trace: VecDeque::new(),
            coord_config,
            coord,
            coord_up: true,
            coord_disk,
            nodes,
            links,
            accounts,
            next_conn: 1,
            next_client: 1,
            requests: BTreeMap::new(),
            pending_clients: BTreeMap::new(),
            told: BTreeMap::new(),
            must_not_abort: BTreeSet::new(),
            storm,
            stats: Stats::default(),
            folds: Folds::default(),
            recording: None,
        };
        sim.refresh_links();
        sim
    }

    /// What the trace sees of each node now.
    fn seen_nodes(&self) -> Vec<sim_trace::NodeSeen> {
        let seen = |n: &Node| sim_trace::NodeSeen {
            id: n.id.clone(),
            up: n.up,
            balances: n.machine.balances(),
            in_doubt: n
                .machine
                .in_doubt(self.now_us)
                .into_iter()
                .map(|t| t.tx_id)
                .collect(),
            locked: n.machine.locked_accounts(),
        };
        self.nodes.iter().map(seen).collect()
    }

    fn log(&mut self, line: String) {
        if !self.tracing {
            return;
        }
        if self.verbose {
            println!("[{} t={}us] {line}", self.step, self.now_us);
        }
        self.trace
            .push_back(format!("[{} t={}us] {line}", self.step, self.now_us));
        if self.trace.len() > TRACE_TAIL_LINES {
            self.trace.pop_front();
        }
    }

    // ----- links -----

    /// Brings every link's connection state in line with who is up and
    /// which links are partitioned, telling the coordinator.
    fn refresh_links(&mut self) {
        for i in 0..self.links.len() {
            let should = self.coord_up && self.nodes[i].up && !self.links[i].partitioned;
            if should == self.links[i].connected {
                continue;
            }
            let link = &mut self.links[i];
            link.connected = should;
            let was_accepted = std::mem::take(&mut link.accepted);
            let old_conn = link.conn;
            link.to_node.clear();
            link.to_coord.clear();
            let node = self.nodes[i].id.clone();
            if should {
                link.conn = self.next_conn;
                self.next_conn += 1;
                let conn = self.links[i].conn;
                trace!(self, "link {node} connected (conn {conn})");
                // The handshake: the node hears who the coordinator is, and
                // accepts it once its binding is durable (`Accept`).
                let connect = pa::Input::Connect {
                    from: conn,
                    cluster: CLUSTER.into(),
                    epoch: self.coord.epoch(),
                    legacy_history: false,
                };
                let actions = self.nodes[i].machine.handle(self.now_us, connect);
                self.run_node_actions(i, actions);
            } else {
                trace!(self, "link {node} disconnected");
                if self.nodes[i].up {
                    let gone = pa::Input::Disconnect { from: old_conn };
                    let actions = self.nodes[i].machine.handle(self.now_us, gone);
                    self.run_node_actions(i, actions);
                }
                if self.coord_up && was_accepted {
                    let actions = self.coord.handle(self.now_us, co::Input::NodeDown { node });
                    self.run_coord_actions(actions);
                }
            }
            // Running actions may have crashed something: start over.
            return self.refresh_links();
        }
    }

    fn delay(&mut self, faults: LinkFaults) -> u64 {
        let base = self.rng.below(300);
        if faults.delay_us_max > 0 && self.rng.chance(300) {
            base + self.rng.below(faults.delay_us_max)
        } else {
            base
        }
    }

    fn send_to_node(&mut self, i: usize, msg: Request) {
        let link_faults = self.links[i].faults;
        if !self.links[i].connected {
            return;
        }
        if self.rng.chance(link_faults.drop_per_mille) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(link_faults.dup_per_mille) {
            2
        } else {
            1
        };
        self.stats.duplicated += copies - 1;
        for _ in 0..copies {
            let at_us = self.now_us + self.delay(link_faults);
            let conn = self.links[i].conn;
            self.links[i].to_node.push(InFlight {
                at_us,
                conn,
                msg: msg.clone(),
            });
        }
    }

    fn send_to_coord(&mut self, i: usize, conn: u64, msg: Reply) {
        let link_faults = self.links[i].faults;
        if !self.links[i].connected || self.links[i].conn != conn {
            return; // the connection this reply was meant for is gone
        }
        if self.rng.chance(link_faults.drop_per_mille) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(link_faults.dup_per_mille) {
            2
        } else {
            1
        };
        self.stats.duplicated += copies - 1;
        for _ in 0..copies {
            let at_us = self.now_us + self.delay(link_faults);
            self.links[i].to_coord.push(InFlight {
                at_us,
                conn,
                msg: msg.clone(),
            });
        }
    }

    /// Delivers one due message, FIFO or (sometimes) any due one.
    fn deliver_one(&mut self, reorder: bool) -> bool {
        let mut due: Vec<(usize, bool)> = Vec::new();
        for (i, link) in self.links.iter().enumerate() {
            if link.to_node.iter().any(|m| m.at_us <= self.now_us) {
                due.push((i, true));
            }
            if link.to_coord.iter().any(|m| m.at_us <= self.now_us) {
                due.push((i, false));
            }
        }
        let Some((i, to_node)) = self.rng.pick(&due) else {
            return false;
        };
        let now = self.now_us;
        if to_node {
            let idxs: Vec<usize> = self.links[i]
                .to_node
                .iter()
                .enumerate()
                .filter(|(_, m)| m.at_us <= now)
                .map(|(k, _)| k)
                .collect();
            let k = if reorder {
                self.rng.pick(&idxs).unwrap_or(idxs[0])
            } else {
                idxs[0]
            };
            let m = self.links[i].to_node.remove(k);
            self.deliver_to_node(i, m.conn, m.msg);
        } else {
            let idxs: Vec<usize> = self.links[i]
                .to_coord
                .iter()
                .enumerate()
                .filter(|(_, m)| m.at_us <= now)
                .map(|(k, _)| k)
                .collect();
            let k = if reorder {
                self.rng.pick(&idxs).unwrap_or(idxs[0])
            } else {
                idxs[0]
            };
            let m = self.links[i].to_coord.remove(k);
            let node = self.nodes[i].id.clone();
            trace!(self, "{node} -> coord: {:?}", m.msg);
            let actions = self
                .coord
                .handle(self.now_us, co::Input::FromNode { node, msg: m.msg });
            self.run_coord_actions(actions);
        }
        true
    }

    fn deliver_to_node(&mut self, i: usize, conn: u64, msg: Request) {
        let id = self.nodes[i].id.clone();
        trace!(self, "coord -> {id}: {msg:?}");
        if let Request::Rollback { tx_id } = &msg {
            self.nodes[i].rollback_received.insert(tx_id.clone());
        }
        let actions = self.nodes[i]
            .machine
            .handle(self.now_us, pa::Input::Message { from: conn, msg });
        self.run_node_actions(i, actions);
    }

    // ----- running the machines' actions -----

    fn run_node_actions(&mut self, i: usize, actions: Vec<pa::Action>) {
        self.nodes[i].dirty = true;
        for action in actions {
            match action {
                pa::Action::Send { to, msg } => {
                    self.check_node_send(i, &msg);
                    if let Reply::Vote {
                        tx_id,
                        vote: Vote::Ready,
                        ..
                    } = &msg
                    {
                        self.nodes[i].voted_ready.insert(tx_id.clone());
                    }
                    trace!(self, "{} sends {msg:?}", self.nodes[i].id);
                    self.send_to_coord(i, to, msg);
                }
                pa::Action::Persist { seq, record, .. } => self.nodes[i].disk.append(seq, record),
                pa::Action::Accept { peer } => {
                    let link = &self.links[i];
                    if link.connected && link.conn == peer && self.coord_up {
                        self.links[i].accepted = true;
                        let node = self.nodes[i].id.clone();
                        trace!(self, "{node} accepted conn {peer}");
                        let actions = self.coord.handle(self.now_us, co::Input::NodeUp { node });
                        self.run_coord_actions(actions);
                    }
                }
                pa::Action::Close { peer, message } => {
                    if self.links[i].connected && self.links[i].conn == peer {
                        self.violation(format!(
                            "{} refused the current coordinator: {message}",
                            self.nodes[i].id
                        ));
                    }
                }
                pa::Action::Crash(point) => {
                    trace!(
                        self,
                        "{} reached armed crash point {point:?}",
                        self.nodes[i].id
                    );
                    self.crash_node(i);
                    return;
                }
            }
        }
    }

    fn run_coord_actions(&mut self, actions: Vec<co::Action>) {
        let emits = actions.iter().any(|a| matches!(a, co::Action::Emit(_)));
        for action in actions {
            match action {
                co::Action::Send { node, msg } => {
                    self.check_coord_send(&msg);
                    let Some(i) = self.nodes.iter().position(|n| n.id == node) else {
                        self.violation(format!("coordinator sent to unknown node {node}"));
                        continue;
                    };
                    self.send_to_node(i, msg);
                }
                co::Action::Persist { seq, record, .. } => self.coord_disk.append(seq, record),
                co::Action::Reply { client, result } => self.on_client_reply(client, result),
                co::Action::Emit(kind) => {
                    if let Some(trace) = self.recording.as_mut() {
                        trace.event(self.now_us, &kind);
                    }
                    if let Err(e) = self.folds.apply(self.now_us, &kind) {
                        self.violation(e);
                    }
                }
                co::Action::Crash(point) => {
                    trace!(self, "coordinator reached armed crash point {point:?}");
                    self.crash_coordinator(true);
                    return;
                }
            }
        }
        if emits {
            if let Err(e) = self.folds.check_running(&self.coord.active()) {
                self.violation(e);
            }
        }
    }

    fn on_client_reply(
        &mut self,
        client: ClientId,
        result: Result<shared::api::TransferResponse, TransferError>,
    ) {
        let Some(tx_id) = self.pending_clients.remove(&client) else {
            self.violation(format!("reply to unknown client {client}"));
            return;
        };
        match result {
            Ok(response) => {
                trace!(
                    self,
                    "client {client} ({tx_id}) told {:?} {:?}",
                    response.outcome,
                    response.reason
                );
                if response.tx_id != tx_id {
                    self.violation(format!(
                        "client asked for {tx_id} and got an answer for {}",
                        response.tx_id
                    ));
                }
                if response.outcome == Outcome::Committed && !self.durably_committed(&tx_id) {
                    self.violation(format!(
                        "client told {tx_id} committed before the commit was durable anywhere"
                    ));
                }
                if let Some(first) = self.told.get(&tx_id) {
                    if *first != response.outcome {
                        self.violation(format!(
                            "{tx_id}: client was told {first:?} before and {:?} now",
                            response.outcome
                        ));
                    }
                } else {
                    match response.outcome {
                        Outcome::Committed => {
                            self.stats.committed += 1;
                            self.must_not_abort.insert(tx_id.clone());
                            // Re-check every leg against the new promise.
                            for i in self.legs_of(&tx_id) {
                                self.nodes[i].dirty = true;
                            }
                        }
                        Outcome::Aborted => {
                            self.stats.aborted += 1;
                            self.refresh_applied();
                            if self.nodes.iter().any(|n| n.applied.contains_key(&tx_id)) {
                                self.violation(format!(
                                    "client told {tx_id} aborted, but it is applied"
                                ));
                            }
                        }
                    }
                    self.told.insert(tx_id, response.outcome);
                }
            }
            Err(TransferError::Unavailable(m)) => {
                self.stats.unknown += 1;
                trace!(self, "client {client} ({tx_id}) told unavailable: {m}");
            }
            Err(e) => self.violation(format!(
                "client {client} ({tx_id}) got an unexpected error {e:?}"
            )),
        }
    }

    // ----- durability gates, checked on every send -----

    fn node_durable_state(&self, i: usize, tx_id: &str) -> Option<&'static str> {
        let mut state = None;
        for r in &self.nodes[i].disk.durable {
            match r {
                ParticipantRecord::Prepared { tx_id: t, .. } if t == tx_id => {
                    state = state.or(Some("prepared"))
                }
                ParticipantRecord::Committed { tx_id: t, .. } if t == tx_id => {
                    state = Some("committed")
                }
                ParticipantRecord::Aborted { tx_id: t } if t == tx_id => state = Some("aborted"),
                ParticipantRecord::Checkpoint(cp) => {
                    state = None;
                    if cp.prepared.iter().any(|(t, ..)| t == tx_id) {
                        state = Some("prepared");
                    }
                    match cp.outcomes.iter().find(|(t, ..)| t == tx_id) {
                        Some((_, Decision::Commit, _)) => state = Some("committed"),
                        Some((_, Decision::Abort, _)) => state = Some("aborted"),
                        None => {}
                    }
                }
                _ => {}
            }
        }
        state
    }

    fn coord_durably_committed(&self, tx_id: &str) -> bool {
        self.coord_disk.durable.iter().any(|r| match r {
            CoordinatorRecord::Commit { tx_id: t, .. } => t == tx_id,
            CoordinatorRecord::Finished {
                tx_id: t,
                decision: Decision::Commit,
                ..
            } => t == tx_id,
            CoordinatorRecord::Checkpoint(cp) => {
                cp.pending_commits.iter().any(|(t, ..)| t == tx_id)
                    || cp
                        .outcomes
                        .iter()
                        .any(|(t, _, d, _)| t == tx_id && *d == Decision::Commit)
            }
            _ => false,
        })
    }

    fn durably_committed(&self, tx_id: &str) -> bool {
        self.coord_durably_committed(tx_id)
            || (0..self.nodes.len()).any(|i| self.node_durable_state(i, tx_id) == Some("committed"))
    }

    fn check_node_send(&mut self, i: usize, msg: &Reply) {
        let (tx_id, needs): (&TxId, &[&str]) = match msg {
            Reply::Vote {
                tx_id,
                vote: Vote::Ready,
                ..
            } => (tx_id, &["prepared", "committed"]),
            Reply::Ack {
                tx_id,
                decision: Decision::Commit,
            } => (tx_id, &["committed"]),
            Reply::Outcome {
                tx_id,
                decision: Decision::Commit,
                ..
            } => (tx_id, &["committed"]),
            _ => return,
        };
        let state = self.node_durable_state(i, tx_id);
        if !state.is_some_and(|s| needs.contains(&s)) {
            self.violation(format!(
                "{} sent {msg:?} while its log durably says {state:?}",
                self.nodes[i].id
            ));
        }
    }

    fn check_coord_send(&mut self, msg: &Request) {
        if let Request::Commit { tx_id } = msg {
            if !self.coord_durably_committed(tx_id) {
                self.violation(format!(
                    "coordinator sent commit for {tx_id} before its COMMIT record was durable"
                ));
            }
        }
    }

    // ----- faults -----

    fn crash_node(&mut self, i: usize) {
        self.stats.crashes += 1;
        let records = {
            let Sim { nodes, rng, .. } = self;
            nodes[i].disk.crash(rng)
        };
        trace!(
            self,
            "CRASH {} ({} records survive)",
            self.nodes[i].id,
            records.len()
        );
        // The recovered state is what the node will have when it restarts;
        // while it is down, the invariants are checked against it.
        match Participant::recover(self.nodes[i].config.clone(), &records) {
            Ok(m) => self.nodes[i].machine = m,
            Err(e) => self.violation(format!("{} cannot recover: {e}", self.nodes[i].id)),
        }
        self.nodes[i].up = false;
        self.nodes[i].dirty = true;
        self.refresh_links();
        self.check_recovered_votes(i);
    }

    fn restart_node(&mut self, i: usize) {
        let now = self.now_us;
        let node = &mut self.nodes[i];
        node.machine.set_recovered_since(now);
        node.up = true;
        trace!(self, "RESTART {}", self.nodes[i].id);
        self.refresh_links();
    }

    fn crash_coordinator(&mut self, restart: bool) {
        self.stats.coordinator_crashes += 1;
        self.folds.coordinator_crashed();
        let records = {
            let Sim {
                coord_disk, rng, ..
            } = self;
            coord_disk.crash(rng)
        };
        trace!(
            self,
            "CRASH coordinator ({} records survive)",
            records.len()
        );
        self.coord = Coordinator::recover(self.coord_config.clone(), &records);
        // The restarted incarnation's epoch is durable before it talks.
        let epoch = self.coord.begin_epoch(CLUSTER.into());
        self.coord_disk.durable.push(epoch);
        self.coord_up = false;
        for (_, tx_id) in std::mem::take(&mut self.pending_clients) {
            self.stats.unknown += 1;
            trace!(self, "client of {tx_id} lost its connection");
        }
        self.refresh_links();
        if restart {
            self.restart_coordinator();
        }
    }

    fn restart_coordinator(&mut self) {
        self.log("RESTART coordinator".to_string());
        self.coord_up = true;
        self.refresh_links();
    }

    fn random_fault(&mut self) {
        let n = self.nodes.len() as u64;
        match self.rng.below(12) {
            0 | 1 => {
                let i = self.rng.below(n) as usize;
                if self.nodes[i].up {
                    self.crash_node(i);
                }
            }
            2 => {
                if self.coord_up {
                    let restart = self.rng.chance(600);
                    self.crash_coordinator(restart);
                }
            }
            3 => {
                let i = self.rng.below(n) as usize;
                if !self.links[i].partitioned {
                    self.stats.partitions += 1;
                    self.links[i].partitioned = true;
                    trace!(self, "PARTITION {}", self.nodes[i].id);
                    self.refresh_links();
                }
            }
            4 | 5 => {
                let i = self.rng.below(n) as usize;
                let f = LinkFaults {
                    drop_per_mille: self.rng.below(150),
                    dup_per_mille: self.rng.below(200),
                    delay_us_max: self.rng.below(40_000),
                };
                self.links[i].faults = f;
                trace!(
                    self,
                    "LINK {} drop {}‰ dup {}‰ delay<{}us",
                    self.nodes[i].id,
                    f.drop_per_mille,
                    f.dup_per_mille,
                    f.delay_us_max
                );
            }
            6 => {
                let points = [
                    CrashPoint::BeforeDecision,
                    CrashPoint::AfterDecision,
                    CrashPoint::MidCommit,
                ];
                let point = self.rng.pick(&points);
                let phase_pause_us = if self.rng.chance(300) {
                    self.rng.below(20_000)
                } else {
                    0
                };
                trace!(self, "ARM coordinator {point:?}, pause {phase_pause_us}us");
                self.coord.set_faults(DemoFaults {
                    crash_at: point,
                    phase_pause_us,
                });
            }
            7 => {
                let i = self.rng.below(n) as usize;
                if self.links[i].connected {
                    let point = if self.rng.chance(500) {
                        ParticipantCrashPoint::AfterPrepareLogged
                    } else {
                        ParticipantCrashPoint::AfterCommitApplied
                    };
                    let conn = self.links[i].conn;
                    self.deliver_to_node(i, conn, Request::ArmCrash { point });
                }
            }
            8 => self.checkpoint_random(),
            _ => self.heal_random(),
        }
    }

    fn heal_random(&mut self) {
        let n = self.nodes.len() as u64;
        if !self.coord_up {
            self.restart_coordinator();
            return;
        }
        let i = self.rng.below(n) as usize;
        if !self.nodes[i].up {
            self.restart_node(i);
        } else if self.links[i].partitioned {
            self.links[i].partitioned = false;
            trace!(self, "HEAL {}", self.nodes[i].id);
            self.refresh_links();
        } else {
            self.links[i].faults = LinkFaults::default();
        }
    }

    fn checkpoint_random(&mut self) {
        self.stats.checkpoints += 1;
        let n = self.nodes.len() as u64;
        let k = self.rng.below(n + 1) as usize;
        if k == self.nodes.len() {
            if !self.coord_up {
                return;
            }
            let (seq, record) = self.coord.checkpoint();
            self.log("CHECKPOINT coordinator".to_string());
            self.coord_disk.rewrite(record);
            let actions = self.coord.handle(self.now_us, co::Input::Durable { seq });
            self.run_coord_actions(actions);
        } else if self.nodes[k].up {
            let (seq, record) = self.nodes[k].machine.checkpoint();
            trace!(self, "CHECKPOINT {}", self.nodes[k].id);
            self.nodes[k].disk.rewrite(record);
            let actions = self.nodes[k]
                .machine
                .handle(self.now_us, pa::Input::Durable { seq });
            self.run_node_actions(k, actions);
        }
    }

    // ----- the ordinary steps -----

    fn fsync_random(&mut self) {
        let n = self.nodes.len() as u64;
        let k = self.rng.below(n + 1) as usize;
        self.fsync(k);
    }

    /// `k == nodes.len()` is the coordinator.
    fn fsync(&mut self, k: usize) {
        if k == self.nodes.len() {
            if !self.coord_up {
                return;
            }
            if let Some(seq) = self.coord_disk.fsync() {
                trace!(self, "fsync coordinator up to {seq}");
                let actions = self.coord.handle(self.now_us, co::Input::Durable { seq });
                self.run_coord_actions(actions);
            }
        } else if self.nodes[k].up {
            if let Some(seq) = self.nodes[k].disk.fsync() {
                trace!(self, "fsync {} up to {seq}", self.nodes[k].id);
                let actions = self.nodes[k]
                    .machine
                    .handle(self.now_us, pa::Input::Durable { seq });
                self.run_node_actions(k, actions);
            }
        }
    }

    fn tick_due(&mut self) {
        if self.coord_up
            && self
                .coord
                .next_deadline_us()
                .is_some_and(|d| d <= self.now_us)
        {
            let actions = self.coord.handle(self.now_us, co::Input::Tick);
            self.run_coord_actions(actions);
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].up
                && self.nodes[i]
                    .machine
                    .next_deadline_us()
                    .is_some_and(|d| d <= self.now_us)
            {
                let actions = self.nodes[i].machine.handle(self.now_us, pa::Input::Tick);
                self.run_node_actions(i, actions);
            }
        }
    }

    /// The next time something is due: a message or a timer.
    fn next_event_us(&self) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut consider = |t: u64| next = Some(next.map_or(t, |n: u64| n.min(t)));
        for link in &self.links {
            link.to_node.iter().for_each(|m| consider(m.at_us));
            link.to_coord.iter().for_each(|m| consider(m.at_us));
        }
        if self.coord_up {
            if let Some(d) = self.coord.next_deadline_us() {
                consider(d);
            }
        }
        for node in &self.nodes {
            if node.up {
                if let Some(d) = node.machine.next_deadline_us() {
                    consider(d);
                }
            }
        }
        next
    }

    fn advance_time(&mut self) {
        let jump = match self.next_event_us() {
            Some(t) if t > self.now_us && self.rng.chance(700) => t - self.now_us,
            _ => 1 + self.rng.below(3_000),
        };
        self.now_us += jump;
    }

    fn new_transfer(&mut self) {
        if !self.coord_up || self.stats.transfers >= TRANSFERS_PER_RUN_MAX {
            return;
        }
        let (from, _) = self.rng.pick(&self.accounts).expect("accounts");
        let (to, _) = self.rng.pick(&self.accounts).expect("accounts");
        if from == to {
            return;
        }
        self.stats.transfers += 1;
        let amount_cents = 1 + self.rng.below(4_000) as i64;
        let tx_id = format!("t{}", self.stats.transfers);
        let request = TransferRequest {
            from,
            to,
            amount_cents,
            tx_id: Some(tx_id.clone()),
        };
        self.requests.insert(tx_id.clone(), request.clone());
        self.submit(tx_id, request);
    }

    fn retry_transfer(&mut self) {
        if !self.coord_up {
            return;
        }
        // Clients retry what they got no answer for (a lost connection, a
        // 503) and, as a duplicate, what committed. A definite `aborted` is
        // not retried: presumed abort keeps no forced record of it, so a
        // retry after a coordinator crash may legitimately run it anew.
        let ids: Vec<TxId> = self
            .requests
            .keys()
            .filter(|t| self.told.get(*t) != Some(&Outcome::Aborted))
            .cloned()
            .collect();
        let Some(tx_id) = self.rng.pick(&ids) else {
            return;
        };
        let request = self.requests[&tx_id].clone();
        self.submit(tx_id, request);
    }

    fn submit(&mut self, tx_id: TxId, request: TransferRequest) {
        let client = self.next_client;
        self.next_client += 1;
        self.pending_clients.insert(client, tx_id.clone());
        trace!(
            self,
            "client {client} submits {tx_id}: {} -> {} {}c",
            request.from,
            request.to,
            request.amount_cents
        );
        let actions = self
            .coord
            .handle(self.now_us, co::Input::Transfer { client, request });
        self.run_coord_actions(actions);
    }

    fn random_step(&mut self) {
        let fault_weight = [0, 2, 5, 12][self.storm as usize];
        let roll = self.rng.below(100 + fault_weight);
        match roll {
            0..=39 => {
                let reorder = self.rng.chance(250);
                if !self.deliver_one(reorder) {
                    self.advance_time();
                }
            }
            40..=54 => self.fsync_random(),
            55..=66 => self.tick_due(),
            67..=82 => self.advance_time(),
            83..=92 => self.new_transfer(),
            93..=95 => self.retry_transfer(),
            96..=99 => self.heal_random(),
            _ => self.random_fault(),
        }
    }

    // ----- invariants -----

    fn violation(&mut self, what: String) {
        if let Some(trace) = &self.recording {
            trace.write();
        }
        let tail: Vec<String> = self.trace.iter().cloned().collect();
        panic!(
            "SIMULATION VIOLATION (seed {}, step {}): {what}\n--- last steps ---\n{}\n--- replay with ---\nSIM_SEED={} cargo test -p shared --test simulation -- --nocapture",
            self.seed,
            self.step,
            tail.join("\n"),
            self.seed
        );
    }

    /// Recomputes the applied transactions of the nodes touched since the
    /// last check; returns which nodes those were.
    fn refresh_applied(&mut self) -> Vec<usize> {
        let mut touched = Vec::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if !node.dirty {
                continue;
            }
            touched.push(i);
            node.dirty = false;
            node.applied.clear();
            for (account, _) in &node.config.accounts {
                for entry in node.machine.ledger(account).unwrap_or_default() {
                    *node.applied.entry(entry.tx_id).or_default() += 1;
                }
            }
            for tx_id in node.applied.keys() {
                self.must_not_abort.insert(tx_id.clone());
            }
        }
        touched
    }

    fn node_of(&self, account: &str) -> Option<usize> {
        self.accounts
            .iter()
            .find(|(x, _)| x == account)
            .map(|(_, i)| *i)
    }

    fn legs_of(&self, tx_id: &str) -> BTreeSet<usize> {
        let Some(r) = self.requests.get(tx_id) else {
            return BTreeSet::new();
        };
        [self.node_of(&r.from), self.node_of(&r.to)]
            .into_iter()
            .flatten()
            .collect()
    }

    fn ops_count(&self, tx_id: &str, i: usize) -> usize {
        let Some(r) = self.requests.get(tx_id) else {
            return 0;
        };
        usize::from(self.node_of(&r.from) == Some(i)) + usize::from(self.node_of(&r.to) == Some(i))
    }

    /// The invariants, checked after every step. Only what the step can have
    /// changed is looked at: the nodes it touched (`must_not_abort` holds
    /// every transaction applied somewhere or reported committed).
    fn check_step(&mut self) -> Check {
        if self.recording.is_some() {
            let (now_us, up, seen) = (self.now_us, self.coord_up, self.seen_nodes());
            if let Some(trace) = self.recording.as_mut() {
                trace.observe(now_us, up, seen);
            }
        }
        let touched = self.refresh_applied();
        for &i in &touched {
            let node = &self.nodes[i];
            for b in node.machine.balances() {
                if b.balance_cents < 0 {
                    return Err(format!(
                        "{} account {} is negative: {}",
                        node.id, b.id, b.balance_cents
                    ));
                }
            }
            for (tx_id, count) in &node.applied {
                if !self.requests.contains_key(tx_id) {
                    return Err(format!("{} applied unknown transaction {tx_id}", node.id));
                }
                if *count != self.ops_count(tx_id, i) {
                    return Err(format!(
                        "{} applied {tx_id} {count} times (ops on this node: {})",
                        node.id,
                        self.ops_count(tx_id, i)
                    ));
                }
                if self.told.get(tx_id) == Some(&Outcome::Aborted) {
                    return Err(format!(
                        "{} applied {tx_id}, which the client was told aborted",
                        node.id
                    ));
                }
            }
            for tx_id in &node.voted_ready {
                let aborted = node.machine.outcome(tx_id) == Some(Decision::Abort);
                if aborted && !node.rollback_received.contains(tx_id) {
                    return Err(format!(
                        "{} voted ready for {tx_id} and then aborted it on its own",
                        node.id
                    ));
                }
            }
            for tx_id in &self.must_not_abort {
                if node.machine.outcome(tx_id) == Some(Decision::Abort)
                    && self.legs_of(tx_id).contains(&i)
                {
                    // (A one-phase commit that was applied but not durable
                    // is lost in a crash; it may then abort. So: applied now.)
                    let applied_on: Vec<&str> = self
                        .nodes
                        .iter()
                        .filter(|n| n.applied.contains_key(tx_id))
                        .map(|n| n.id.as_str())
                        .collect();
                    if applied_on.is_empty() && self.told.get(tx_id) != Some(&Outcome::Committed) {
                        continue;
                    }
                    return Err(format!(
                        "{tx_id} is aborted on {} but applied on {applied_on:?} (client told {:?})",
                        node.id,
                        self.told.get(tx_id)
                    ));
                }
            }
        }
        Ok(())
    }

    /// A node that voted ready must come back from a crash knowing the
    /// transaction: in doubt, or with its outcome.
    fn check_recovered_votes(&mut self, i: usize) {
        let in_doubt: BTreeSet<TxId> = self.nodes[i]
            .machine
            .in_doubt(self.now_us)
            .into_iter()
            .map(|t| t.tx_id)
            .collect();
        let forgotten: Vec<TxId> = self.nodes[i]
            .voted_ready
            .iter()
            .filter(|t| !in_doubt.contains(*t) && self.nodes[i].machine.outcome(t).is_none())
            .cloned()
            .collect();
        if let Some(t) = forgotten.first() {
            self.violation(format!(
                "{} voted ready for {t} and forgot it in a crash",
                self.nodes[i].id
            ));
        }
    }

    // ----- the run -----

    fn quiescent(&self) -> bool {
        let idle_coord = self.coord.active_count() == 0;
        let idle_nodes = self
            .nodes
            .iter()
            .all(|n| n.machine.active_count() == 0 && n.machine.locked_accounts().is_empty());
        let quiet_net = self
            .links
            .iter()
            .all(|l| l.to_node.is_empty() && l.to_coord.is_empty());
        let synced = self.coord_disk.pending.is_empty()
            && self.nodes.iter().all(|n| n.disk.pending.is_empty());
        idle_coord && idle_nodes && quiet_net && synced && self.pending_clients.is_empty()
    }

    fn heal_all(&mut self) {
        self.log("HEAL ALL".to_string());
        self.coord.set_faults(DemoFaults::default());
        if !self.coord_up {
            self.restart_coordinator();
        }
        for i in 0..self.nodes.len() {
            self.links[i].faults = LinkFaults::default();
            self.links[i].partitioned = false;
            if !self.nodes[i].up {
                self.restart_node(i);
            }
        }
        self.refresh_links();
    }

    fn settle(&mut self) -> Check {
        for _ in 0..QUIESCE_ROUNDS_MAX {
            self.step += 1;
            // A crash point armed before the healing may still fire once.
            for i in 0..self.nodes.len() {
                if !self.nodes[i].up {
                    self.restart_node(i);
                }
            }
            if !self.coord_up {
                self.restart_coordinator();
            }
            while self.deliver_one(false) {
                self.check_step()?;
            }
            for k in 0..=self.nodes.len() {
                self.fsync(k);
            }
            self.tick_due();
            self.check_step()?;
            if self.quiescent() {
                return Ok(());
            }
            match self.next_event_us() {
                Some(t) if t > self.now_us => self.now_us = t,
                _ => self.now_us += 1_000,
            }
        }
        let active: Vec<_> = self
            .coord
            .active()
            .into_iter()
            .map(|t| (t.tx_id, t.state, t.pending_acks))
            .collect();
        let nodes: Vec<_> = self
            .nodes
            .iter()
            .map(|n| {
                (
                    n.id.clone(),
                    n.machine.in_doubt(self.now_us),
                    n.machine.locked_accounts(),
                )
            })
            .collect();
        Err(format!(
            "not quiescent after healing: coordinator active {active:?}; nodes {nodes:?}"
        ))
    }

    fn final_check(&mut self) -> Check {
        self.refresh_applied();
        let total_expected = BALANCE_CENTS_INITIAL * self.accounts.len() as i64;
        let total: i64 = self
            .nodes
            .iter()
            .flat_map(|n| n.machine.balances())
            .map(|b| b.balance_cents)
            .sum();
        if total != total_expected {
            return Err(format!("total is {total}, expected {total_expected}"));
        }
        for node in &self.nodes {
            for (account, opening) in &node.config.accounts {
                let ledger = node.machine.ledger(account).unwrap_or_default();
                let sum: i64 = ledger.iter().map(|e| e.delta_cents).sum();
                let balance = node
                    .machine
                    .balances()
                    .into_iter()
                    .find(|b| &b.id == account)
                    .map(|b| b.balance_cents);
                if Some(opening + sum) != balance {
                    return Err(format!(
                        "{} {account}: opening {opening} + ledger {sum} != balance {balance:?}",
                        node.id
                    ));
                }
            }
            if !node.machine.in_doubt(self.now_us).is_empty() {
                return Err(format!("{} still has in-doubt transactions", node.id));
            }
        }
        let applied_everywhere = |tx_id: &str| {
            let legs = self.legs_of(tx_id);
            !legs.is_empty()
                && legs
                    .iter()
                    .all(|i| self.nodes[*i].applied.contains_key(tx_id))
        };
        self.folds.check_settled(&self.told, applied_everywhere)?;
        for tx_id in self.requests.keys() {
            let legs = self.legs_of(tx_id);
            let applied: BTreeSet<usize> = legs
                .iter()
                .copied()
                .filter(|i| self.nodes[*i].applied.contains_key(tx_id))
                .collect();
            if !applied.is_empty() && applied != legs {
                return Err(format!(
                    "{tx_id} applied on nodes {applied:?} of legs {legs:?}"
                ));
            }
            match self.told.get(tx_id) {
                Some(Outcome::Committed) if applied != legs => {
                    return Err(format!(
                        "client was told {tx_id} committed but it is applied on {applied:?} of {legs:?}"
                    ))
                }
                Some(Outcome::Aborted) if !applied.is_empty() => {
                    return Err(format!(
                        "client was told {tx_id} aborted but it is applied on {applied:?}"
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn run(&mut self) -> Check {
        for _ in 0..STEPS_PER_RUN {
            self.step += 1;
            self.random_step();
            self.check_step()?;
        }
        self.heal_all();
        self.settle()?;
        self.final_check()?;
        self.stats.steps = self.step;
        Ok(())
    }
}

fn run_seed(seed: u64, verbose: bool) -> Result<Stats, String> {
    match run_seed_once(seed, verbose, verbose) {
        Ok(stats) => Ok(stats),
        Err(_) if !verbose => run_seed_once(seed, false, true),
        Err(e) => Err(e),
    }
}

fn run_seed_once(seed: u64, verbose: bool, tracing: bool) -> Result<Stats, String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut sim = Sim::new(seed, verbose, tracing);
        if let Some(path) = sim_trace::path_from_env().filter(|_| verbose) {
            sim.recording = Some(sim_trace::Trace::new(
                path,
                seed,
                sim.now_us,
                sim.seen_nodes(),
            ));
        }
        let result = sim.run();
        if let Some(trace) = &sim.recording {
            trace.write();
        }
        match result {
            Ok(()) => Ok(sim.stats),
            Err(e) => {
                let tail: Vec<String> = sim.trace.iter().cloned().collect();
                Err(format!(
                    "SIMULATION VIOLATION (seed {seed}, step {}): {e}\n--- last steps ---\n{}\n--- replay with ---\nSIM_SEED={seed} cargo test -p shared --test simulation -- --nocapture",
                    sim.step,
                    tail.join("\n")
                ))
            }
        }
    }));
    match outcome {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            if msg.starts_with("SIMULATION VIOLATION") {
                Err(msg)
            } else {
                Err(format!(
                    "a machine panicked (seed {seed}): {msg}\n--- replay with ---\nSIM_SEED={seed} cargo test -p shared --test simulation -- --nocapture"
                ))
            }
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn simulation_keeps_money_safe_under_faults() {
    if let Some(seed) = env_u64("SIM_SEED") {
        match run_seed(seed, true) {
            Ok(stats) => println!("seed {seed} passed: {stats:?}"),
            Err(e) => panic!("{e}"),
        }
        return;
    }
    let seeds = env_u64("SIM_SEEDS").unwrap_or(SEEDS_DEFAULT);
    let start = env_u64("SIM_SEED_START").unwrap_or(0);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as u64;
    let began = Instant::now();
    let results: Vec<Result<Stats, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut total = Stats::default();
                    let mut seed = start + t;
                    while seed < start + seeds {
                        match run_seed(seed, false) {
                            Ok(s) => total.add(&s),
                            Err(e) => return Err(e),
                        }
                        seed += threads;
                    }
                    Ok(total)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("simulation thread"))
            .collect()
    });
    let elapsed = began.elapsed().as_secs_f64();
    let mut total = Stats::default();
    for r in &results {
        match r {
            Ok(s) => total.add(s),
            Err(e) => panic!("{e}"),
        }
    }
    println!(
        "{seeds} seeds in {elapsed:.1}s ({:.0} seeds/s, {threads} threads): {total:?}",
        seeds as f64 / elapsed
    );
    assert!(
        total.committed > seeds,
        "too few commits: the simulation is not exercising the protocol"
    );
    assert!(total.aborted > 0 && total.crashes > 0 && total.coordinator_crashes > 0);
}

#[test]
fn a_seeds_trace_is_a_recording_the_dashboard_reads() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("trace.jsonl");
    let mut sim = Sim::new(7, false, false);
    sim.recording = Some(sim_trace::Trace::new(
        path.clone(),
        7,
        sim.now_us,
        sim.seen_nodes(),
    ));
    sim.run().expect("seed 7 passes");
    sim.recording.as_ref().expect("recording").write();
    let text = std::fs::read_to_string(&path).expect("the trace is written");
    let trace = shared::recording::parse(&text, usize::MAX).expect("a recording");
    assert_eq!(trace.header.source, "simulation");
    assert!(matches!(
        trace.events[0].kind,
        shared::events::EventKind::Snapshot(_)
    ));
    assert!(trace.events.windows(2).all(|w| w[0].seq < w[1].seq));
    let finished = trace
        .events
        .iter()
        .filter(|e| matches!(e.kind, shared::events::EventKind::TxFinished { .. }))
        .count();
    assert!(finished > 0, "the run's transfers are in it");
}
