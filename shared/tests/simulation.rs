//! Deterministic simulation of the whole protocol: the real `Coordinator`
//! and 2..4 real `Participant`s, wired by a simulated network, simulated
//! disks and simulated clocks, all driven by one seeded PRNG.
//!
//! Faults: `kill -9` of any participant or of the coordinator (what the
//! process had written survives in the page cache, and its restart's log
//! open fsyncs it); power loss of one machine or of the one all processes
//! run on (only what was fsynced survives, plus whatever the kernel
//! happened to write back); armed crash points of both machines; message
//! drop, duplication, reordering and delay; partitions of a link;
//! checkpoints; a coordinator whose wall clock steps back between
//! incarnations (it never goes back within one).
//!
//! Clients submit many transfers per run, some without a tx_id (the
//! coordinator generates one), retry with the same tx_id after every kind
//! of answer (committed, aborted, 503, a lost connection), and re-use a
//! tx_id for a different transfer. After **every step** the invariants are
//! checked, per request content (its accounts and amounts), not per tx_id:
//! every ledger entry is an operation of one request under its tx_id,
//! applied at most once, and one tx_id's entries belong to one request; a
//! request reported aborted is applied nowhere; one reported committed
//! never aborts on a leg; one tx_id never gets two outcomes; every answer
//! and every vote, ack and commit is durable before it is sent; generated
//! ids are never used twice. At the end everything is healed and the run
//! must become quiescent with every transaction resolved, nothing in
//! doubt, no lock held, the total kept, and every request reported
//! committed applied on every leg exactly once.
//!
//! Every event the coordinator emits goes through the transaction fold
//! (`shared::fold`), which must agree with the coordinator at every step
//! and with the nodes at the end (see `common::folds`).
//!
//! The last tests take fixes away (the `mutants` feature, which only this
//! crate's tests enable, and the log open's fsync, which the simulated
//! disk stands for) and require the simulation to find each bug.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use shared::api::{CrashPoint, Outcome, TransferRequest, TransferResponse};
use shared::events::EventKind;
use shared::progress::Progress;
use shared::protocol::coordinator::{
    self as co, ClientId, Coordinator, CoordinatorConfig, DemoFaults, TransferError,
};
use shared::protocol::mutants::Mutants;
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
/// How far back a restarted coordinator's wall clock may have stepped.
const CLOCK_STEP_BACK_US_MAX: u64 = 200_000;
const CLUSTER: &str = "sim";

mod common;
mod sim_trace;
use common::folds::Folds;
use common::{log_holds_decision, reply_is_durable, Rng};

// ----- simulated disk -----

/// One log file. `durable` is on the disk; `cached` was appended but not
/// fsynced (seq 0: by an earlier incarnation of the process).
struct Disk<R> {
    durable: Vec<R>,
    cached: Vec<(u64, R)>,
}

impl<R: Clone> Disk<R> {
    fn new(first: R) -> Self {
        Disk {
            durable: vec![first],
            cached: Vec::new(),
        }
    }

    fn append(&mut self, seq: u64, record: R) {
        self.cached.push((seq, record));
    }

    /// Makes everything durable; returns the seq of this incarnation to
    /// feed back as `Durable`.
    fn fsync(&mut self) -> Option<u64> {
        let last = self.cached.iter().map(|(seq, _)| *seq).max();
        self.durable.extend(self.cached.drain(..).map(|(_, r)| r));
        last.filter(|seq| *seq > 0)
    }

    /// `kill -9`: what the process's writer had written (a prefix of what
    /// was appended) stays in the page cache; the rest dies with it.
    fn kill(&mut self, rng: &mut Rng) {
        let written = if rng.chance(500) {
            self.cached.len()
        } else {
            rng.below(self.cached.len() as u64 + 1) as usize
        };
        self.cached.truncate(written);
        for (seq, _) in &mut self.cached {
            *seq = 0;
        }
    }

    /// Power loss: the page cache is gone, but for a prefix of it that the
    /// kernel happened to write back (a torn record after it is cut by the
    /// log at recovery).
    fn power_loss(&mut self, rng: &mut Rng) {
        let written_back = if rng.chance(500) {
            0
        } else {
            rng.below(self.cached.len() as u64 + 1) as usize
        };
        self.durable
            .extend(self.cached.drain(..).take(written_back).map(|(_, r)| r));
        self.cached.clear();
    }

    /// What a restarted process reads. The log open fsyncs first, unless
    /// `syncs_on_open` is false (the bug it fixed): then what it reads from
    /// the page cache can still be lost to a power cut.
    fn open(&mut self, syncs_on_open: bool) -> Vec<R> {
        if syncs_on_open {
            self.fsync();
        }
        self.visible()
    }

    /// Every record a reader of the file sees: the disk, then the page cache.
    fn visible(&self) -> Vec<R> {
        let cached = self.cached.iter().map(|(_, r)| r.clone());
        self.durable.iter().cloned().chain(cached).collect()
    }

    /// A checkpoint rewrites the log atomically and durably.
    fn rewrite(&mut self, checkpoint: R) {
        self.cached.clear();
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
    /// Its ledgers, by tx_id: each entry's (account, delta).
    applied: BTreeMap<TxId, Vec<(AccountId, i64)>>,
    dirty: bool,
}

/// Which fixes a run takes away (none, but in the tests that prove the
/// simulation finds each bug).
#[derive(Clone, Copy)]
struct Broken {
    mutants: Mutants,
    /// A restarted process's log open fsyncs what the page cache holds.
    syncs_on_open: bool,
    /// Whether sends and answers are checked against the disk as they go
    /// out; off, only a consequence a client or a ledger sees counts.
    gates_checked: bool,
}

impl Broken {
    fn nothing() -> Broken {
        Broken {
            mutants: Mutants::default(),
            syncs_on_open: true,
            gates_checked: true,
        }
    }
}

/// A client waiting for its answer: the request's tx_id (`None` for one
/// without an id that never started) and which of its contents it is.
type Waiting = (Option<TxId>, usize);

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
    broken: Broken,
    coord_config: CoordinatorConfig,
    coord: Coordinator,
    coord_up: bool,
    coord_disk: Disk<CoordinatorRecord>,
    /// The coordinator's wall clock minus the simulation's: each
    /// incarnation has its own, and it may have stepped back.
    coord_clock_offset_us: i64,
    nodes: Vec<Node>,
    links: Vec<Link>,
    accounts: Vec<(AccountId, usize)>,
    next_conn: u64,
    next_client: ClientId,
    next_tx: u64,
    /// Every transfer a client asked for under each tx_id: a re-used id
    /// has several, each with an amount of its own.
    requests: BTreeMap<TxId, Vec<TransferRequest>>,
    pending_clients: BTreeMap<ClientId, Waiting>,
    /// The first outcome told for each tx_id, and for each request.
    told: BTreeMap<TxId, Outcome>,
    told_request: BTreeMap<(TxId, usize), Outcome>,
    /// Requests applied somewhere or reported committed: no leg may ever
    /// abort them.
    must_not_abort: BTreeSet<(TxId, usize)>,
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
    conflicts: u64,
    retries: u64,
    reused_ids: u64,
    generated_ids: u64,
    kills: u64,
    coordinator_kills: u64,
    power_losses: u64,
    clock_steps_back: u64,
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
        self.conflicts += o.conflicts;
        self.retries += o.retries;
        self.reused_ids += o.reused_ids;
        self.generated_ids += o.generated_ids;
        self.kills += o.kills;
        self.coordinator_kills += o.coordinator_kills;
        self.power_losses += o.power_losses;
        self.clock_steps_back += o.clock_steps_back;
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
    fn new(seed: u64, verbose: bool, tracing: bool, broken: Broken) -> Sim {
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
            let disk = Disk::new(Participant::init_record(&config));
            let mut machine =
                Participant::recover(config.clone(), &disk.durable).expect("init replays");
            machine.set_mutants(broken.mutants);
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
        coord.set_mutants(broken.mutants);
        let coord_disk = Disk::new(coord.begin_epoch(CLUSTER.into()));
        let storm = rng.below(4);
        let mut sim = Sim {
            seed,
            rng,
            now_us: 1_000,
            step: 0,
            verbose,
            tracing,
            trace: VecDeque::new(),
            broken,
            coord_config,
            coord,
            coord_up: true,
            coord_disk,
            coord_clock_offset_us: 0,
            nodes,
            links,
            accounts,
            next_conn: 1,
            next_client: 1,
            next_tx: 1,
            requests: BTreeMap::new(),
            pending_clients: BTreeMap::new(),
            told: BTreeMap::new(),
            told_request: BTreeMap::new(),
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

    /// The time on the coordinator's wall clock: never backwards within
    /// one incarnation (the machine's contract), maybe behind the last one.
    fn coord_now(&self) -> u64 {
        (self.now_us as i64 + self.coord_clock_offset_us).max(0) as u64
    }

    /// When the coordinator's next timer is due, in simulation time.
    fn coord_deadline_us(&self) -> Option<u64> {
        let at = self.coord.next_deadline_us()?;
        Some((at as i64 - self.coord_clock_offset_us).max(0) as u64)
    }

    fn coord_handle(&mut self, input: co::Input) {
        let now = self.coord_now();
        let actions = self.coord.handle(now, input);
        self.run_coord_actions(actions);
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
                    self.coord_handle(co::Input::NodeDown { node });
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
            self.coord_handle(co::Input::FromNode { node, msg: m.msg });
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
                    let durable = reply_is_durable(&self.nodes[i].disk.durable, &msg);
                    if self.broken.gates_checked && durable == Some(false) {
                        self.violation(format!(
                            "{} sent {msg:?} before the record it promises was on the disk",
                            self.nodes[i].id
                        ));
                    }
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
                        self.coord_handle(co::Input::NodeUp { node });
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
                    self.kill_node(i);
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
                    // The demo's injected crash: the engine restarts from its
                    // log in the same process, as after a kill.
                    trace!(self, "coordinator reached armed crash point {point:?}");
                    self.crash_coordinator(Crash::Kill, true);
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
        result: Result<TransferResponse, TransferError>,
    ) {
        let Some((tx_id, k)) = self.pending_clients.remove(&client) else {
            self.violation(format!("reply to unknown client {client}"));
            return;
        };
        match result {
            Ok(response) => {
                let Some(tx_id) = tx_id else {
                    self.violation(format!(
                        "client {client} got {response:?} for a transfer that never started"
                    ));
                    return;
                };
                trace!(
                    self,
                    "client {client} ({tx_id} #{k}) told {:?} {:?}",
                    response.outcome,
                    response.reason
                );
                if response.tx_id != tx_id {
                    self.violation(format!(
                        "client asked for {tx_id} and got an answer for {}",
                        response.tx_id
                    ));
                }
                self.on_outcome(tx_id, k, response.outcome);
            }
            Err(TransferError::Unavailable(m)) => {
                self.stats.unknown += 1;
                trace!(self, "client {client} ({tx_id:?}) told unavailable: {m}");
            }
            Err(TransferError::Conflict(m)) => {
                self.stats.conflicts += 1;
                trace!(self, "client {client} ({tx_id:?}) told conflict: {m}");
                let reused = tx_id
                    .as_ref()
                    .is_some_and(|t| self.requests.get(t).is_some_and(|r| r.len() > 1));
                if !reused {
                    self.violation(format!(
                        "client {client} ({tx_id:?}) told conflict for an id no one re-used: {m}"
                    ));
                }
            }
            Err(e) => self.violation(format!(
                "client {client} ({tx_id:?}) got an unexpected error {e:?}"
            )),
        }
    }

    /// Request k of `tx_id` was answered `outcome`: the answer must be on
    /// the coordinator's disk, agree with every answer given for that tx_id
    /// before, and (if aborted) nothing of the request may be applied.
    fn on_outcome(&mut self, tx_id: TxId, k: usize, outcome: Outcome) {
        let decision = match outcome {
            Outcome::Committed => Decision::Commit,
            Outcome::Aborted => Decision::Abort,
        };
        let durable = log_holds_decision(&self.coord_disk.durable, &tx_id, decision);
        if self.broken.gates_checked && !durable {
            self.violation(format!(
                "client told {tx_id} {outcome:?} before the coordinator's log held it"
            ));
        }
        if let Some(first) = self.told.get(&tx_id) {
            if *first != outcome {
                self.violation(format!(
                    "{tx_id}: a client was told {first:?} before and {outcome:?} now"
                ));
            }
        }
        self.told.entry(tx_id.clone()).or_insert(outcome);
        if self.told_request.contains_key(&(tx_id.clone(), k)) {
            return;
        }
        match outcome {
            Outcome::Committed => {
                self.stats.committed += 1;
                self.must_not_abort.insert((tx_id.clone(), k));
                // Re-check every leg against the new promise.
                for (i, _, _) in self.ops(&tx_id, k) {
                    self.nodes[i].dirty = true;
                }
            }
            Outcome::Aborted => {
                self.stats.aborted += 1;
                self.refresh_applied();
                let applied = self.nodes_applying(&tx_id, k);
                if !applied.is_empty() {
                    self.violation(format!(
                        "client told {tx_id} #{k} aborted, but it is applied on {applied:?}"
                    ));
                }
            }
        }
        self.told_request.insert((tx_id, k), outcome);
    }

    // ----- durability gates, checked on every send -----

    fn check_coord_send(&mut self, msg: &Request) {
        if !self.broken.gates_checked {
            return;
        }
        if let Request::Commit { tx_id } = msg {
            if !log_holds_decision(&self.coord_disk.durable, tx_id, Decision::Commit) {
                self.violation(format!(
                    "coordinator sent commit for {tx_id} before its COMMIT record was durable"
                ));
            }
        }
    }

    // ----- faults -----

    /// Node `i` dies: killed (its page cache survives), or its machine
    /// loses power. While it is down, the invariants look at what it
    /// would recover.
    fn crash_node(&mut self, i: usize, crash: Crash) {
        let was_up = self.nodes[i].up;
        {
            let Sim { nodes, rng, .. } = self;
            match crash {
                Crash::Kill => nodes[i].disk.kill(rng),
                Crash::PowerLoss => nodes[i].disk.power_loss(rng),
            }
        }
        trace!(self, "{crash:?} {}", self.nodes[i].id);
        let records = self.nodes[i].disk.visible();
        self.nodes[i].machine = self.recover_node(i, &records);
        self.nodes[i].up = false;
        self.nodes[i].dirty = true;
        if was_up {
            self.refresh_links();
        }
        self.check_recovered_votes(i);
    }

    fn kill_node(&mut self, i: usize) {
        self.stats.kills += 1;
        self.crash_node(i, Crash::Kill);
    }

    fn recover_node(&mut self, i: usize, records: &[ParticipantRecord]) -> Participant {
        match Participant::recover(self.nodes[i].config.clone(), records) {
            Ok(mut m) => {
                m.set_mutants(self.broken.mutants);
                m
            }
            Err(e) => {
                self.violation(format!("{} cannot recover: {e}", self.nodes[i].id));
                unreachable!("a violation panics")
            }
        }
    }

    fn restart_node(&mut self, i: usize) {
        let records = self.nodes[i].disk.open(self.broken.syncs_on_open);
        let mut machine = self.recover_node(i, &records);
        machine.set_recovered_since(self.now_us);
        let node = &mut self.nodes[i];
        node.machine = machine;
        node.up = true;
        node.dirty = true;
        trace!(self, "RESTART {}", self.nodes[i].id);
        self.refresh_links();
    }

    /// The coordinator dies; it recovers from its log when it restarts.
    /// Its clients lose their connections (and may retry).
    fn crash_coordinator(&mut self, crash: Crash, restart: bool) {
        self.folds.coordinator_crashed();
        {
            let Sim {
                coord_disk, rng, ..
            } = self;
            match crash {
                Crash::Kill => coord_disk.kill(rng),
                Crash::PowerLoss => coord_disk.power_loss(rng),
            }
        }
        trace!(self, "{crash:?} coordinator");
        if self.coord_up {
            self.stats.coordinator_kills += u64::from(crash == Crash::Kill);
            self.coord_up = false;
            for (_, (tx_id, _)) in std::mem::take(&mut self.pending_clients) {
                self.stats.unknown += 1;
                trace!(self, "client of {tx_id:?} lost its connection");
            }
            self.refresh_links();
        }
        if restart {
            self.restart_coordinator();
        }
    }

    /// A new incarnation: recovered from what its log open reads, its
    /// epoch forced before it talks (that fsync makes everything written
    /// before it durable too), and a wall clock that may have stepped back.
    fn restart_coordinator(&mut self) {
        let records = self.coord_disk.open(self.broken.syncs_on_open);
        self.coord = Coordinator::recover(self.coord_config.clone(), &records);
        self.coord.set_mutants(self.broken.mutants);
        let epoch = self.coord.begin_epoch(CLUSTER.into());
        self.coord_disk.fsync();
        self.coord_disk.durable.push(epoch);
        if self.rng.chance(300) {
            let back = 1 + self.rng.below(CLOCK_STEP_BACK_US_MAX);
            self.coord_clock_offset_us -= back as i64;
            self.stats.clock_steps_back += 1;
            trace!(self, "the coordinator's clock stepped back {back}us");
        } else if self.rng.chance(300) {
            self.coord_clock_offset_us += self.rng.below(CLOCK_STEP_BACK_US_MAX) as i64;
        }
        self.log(format!(
            "RESTART coordinator, epoch {}, clock {}us",
            self.coord.epoch(),
            self.coord_now()
        ));
        self.coord_up = true;
        self.refresh_links();
    }

    /// The one machine every process runs on loses power.
    fn power_loss_everywhere(&mut self) {
        self.stats.power_losses += 1;
        trace!(self, "POWER LOSS everywhere");
        for i in 0..self.nodes.len() {
            self.crash_node(i, Crash::PowerLoss);
        }
        let restart = self.rng.chance(500);
        self.crash_coordinator(Crash::PowerLoss, restart);
    }

    fn random_fault(&mut self) {
        let n = self.nodes.len() as u64;
        match self.rng.below(14) {
            0 | 1 => {
                let i = self.rng.below(n) as usize;
                if self.nodes[i].up {
                    self.kill_node(i);
                }
            }
            2 => {
                if self.coord_up {
                    let restart = self.rng.chance(600);
                    self.crash_coordinator(Crash::Kill, restart);
                }
            }
            3 => {
                let i = self.rng.below(n + 2) as usize;
                if i < self.nodes.len() {
                    self.stats.power_losses += 1;
                    self.crash_node(i, Crash::PowerLoss);
                } else if i == self.nodes.len() {
                    self.stats.power_losses += 1;
                    let restart = self.rng.chance(600);
                    self.crash_coordinator(Crash::PowerLoss, restart);
                } else {
                    self.power_loss_everywhere();
                }
            }
            4 => {
                let i = self.rng.below(n) as usize;
                if !self.links[i].partitioned {
                    self.stats.partitions += 1;
                    self.links[i].partitioned = true;
                    trace!(self, "PARTITION {}", self.nodes[i].id);
                    self.refresh_links();
                }
            }
            5 | 6 => {
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
            7 => {
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
            8 => {
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
            9 => self.checkpoint_random(),
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
            self.coord_handle(co::Input::Durable { seq });
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
                self.coord_handle(co::Input::Durable { seq });
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
        let coord_due = self.coord_deadline_us().is_some_and(|d| d <= self.now_us);
        if self.coord_up && coord_due {
            self.coord_handle(co::Input::Tick);
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
            if let Some(d) = self.coord_deadline_us() {
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

    /// A random transfer between two different accounts.
    fn random_request(&mut self, tx_id: Option<TxId>) -> Option<TransferRequest> {
        let (from, _) = self.rng.pick(&self.accounts).expect("accounts");
        let (to, _) = self.rng.pick(&self.accounts).expect("accounts");
        let amount_cents = 1 + self.rng.below(4_000) as i64;
        (from != to).then_some(TransferRequest {
            from,
            to,
            amount_cents,
            tx_id,
        })
    }

    /// A client's new transfer; one in five comes without a tx_id, for the
    /// coordinator to generate one.
    fn new_transfer(&mut self) {
        if !self.coord_up || self.stats.transfers >= TRANSFERS_PER_RUN_MAX {
            return;
        }
        let tx_id = if self.rng.chance(200) {
            None
        } else {
            self.next_tx += 1;
            Some(format!("t{}", self.next_tx - 1))
        };
        let Some(request) = self.random_request(tx_id) else {
            return;
        };
        self.stats.transfers += 1;
        self.submit(request);
    }

    /// A client submits one of the transfers again, with its tx_id,
    /// whatever it was told before (committed, aborted, 503, nothing).
    fn retry_transfer(&mut self) {
        if !self.coord_up {
            return;
        }
        let known: Vec<(TxId, usize)> = self
            .requests
            .iter()
            .flat_map(|(t, rs)| (0..rs.len()).map(move |k| (t.clone(), k)))
            .collect();
        let Some((tx_id, k)) = self.rng.pick(&known) else {
            return;
        };
        self.stats.retries += 1;
        let request = self.requests[&tx_id][k].clone();
        self.submit(request);
    }

    /// A client uses a tx_id someone already used, for a different
    /// transfer (another amount than every transfer under that id, so that
    /// each ledger entry says which one it belongs to).
    fn reuse_tx_id(&mut self) {
        if !self.coord_up || self.stats.transfers >= TRANSFERS_PER_RUN_MAX {
            return;
        }
        let ids: Vec<TxId> = self.requests.keys().cloned().collect();
        let Some(tx_id) = self.rng.pick(&ids) else {
            return;
        };
        let Some(request) = self.random_request(Some(tx_id.clone())) else {
            return;
        };
        let taken = self.requests[&tx_id]
            .iter()
            .any(|r| r.amount_cents == request.amount_cents);
        if taken {
            return;
        }
        self.stats.transfers += 1;
        self.stats.reused_ids += 1;
        self.submit(request);
    }

    /// Which of the transfers under `tx_id` `request` is (a new one is added).
    fn content_index(&mut self, tx_id: &TxId, request: &TransferRequest) -> usize {
        let same = |r: &TransferRequest| {
            r.from == request.from && r.to == request.to && r.amount_cents == request.amount_cents
        };
        let contents = self.requests.entry(tx_id.clone()).or_default();
        match contents.iter().position(same) {
            Some(k) => k,
            None => {
                let mut request = request.clone();
                request.tx_id = Some(tx_id.clone());
                contents.push(request);
                contents.len() - 1
            }
        }
    }

    fn submit(&mut self, request: TransferRequest) {
        let client = self.next_client;
        self.next_client += 1;
        trace!(
            self,
            "client {client} submits {:?}: {} -> {} {}c",
            request.tx_id,
            request.from,
            request.to,
            request.amount_cents
        );
        let now = self.coord_now();
        let actions = self.coord.handle(
            now,
            co::Input::Transfer {
                client,
                request: request.clone(),
            },
        );
        let tx_id = match &request.tx_id {
            Some(tx_id) => Some(tx_id.clone()),
            None => self.generated_id(&actions),
        };
        let k = match &tx_id {
            Some(tx_id) => self.content_index(tx_id, &request),
            None => 0,
        };
        self.pending_clients.insert(client, (tx_id, k));
        self.run_coord_actions(actions);
    }

    /// The id the coordinator generated for a transfer submitted without
    /// one, if it started it: it must be new.
    fn generated_id(&mut self, actions: &[co::Action]) -> Option<TxId> {
        let tx_id = actions.iter().find_map(|a| match a {
            co::Action::Emit(EventKind::TxStarted { tx_id, .. }) => Some(tx_id.clone()),
            _ => None,
        })?;
        self.stats.generated_ids += 1;
        if self.requests.contains_key(&tx_id) {
            self.violation(format!("the coordinator generated {tx_id} a second time"));
        }
        Some(tx_id)
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
            67..=81 => self.advance_time(),
            82..=90 => self.new_transfer(),
            91..=94 => self.retry_transfer(),
            95 => self.reuse_tx_id(),
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

    /// Recomputes the ledgers of the nodes touched since the last check;
    /// returns which nodes those were.
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
                    let entries = node.applied.entry(entry.tx_id).or_default();
                    entries.push((account.clone(), entry.delta_cents));
                }
            }
        }
        touched
    }

    fn node_of(&self, account: &str) -> usize {
        self.accounts
            .iter()
            .find(|(x, _)| x == account)
            .map(|(_, i)| *i)
            .expect("known account")
    }

    /// The operations of request k under `tx_id`: (node, account, delta).
    fn ops(&self, tx_id: &str, k: usize) -> [(usize, AccountId, i64); 2] {
        let r = &self.requests[tx_id][k];
        [
            (self.node_of(&r.from), r.from.clone(), -r.amount_cents),
            (self.node_of(&r.to), r.to.clone(), r.amount_cents),
        ]
    }

    /// Which request under `tx_id` an entry (account, delta) of node `i`
    /// belongs to (amounts differ between requests under one id).
    fn owner(&self, tx_id: &str, i: usize, account: &str, delta_cents: i64) -> Option<usize> {
        let contents = self.requests.get(tx_id)?;
        (0..contents.len()).find(|k| {
            self.ops(tx_id, *k)
                .iter()
                .any(|(n, a, d)| *n == i && a == account && *d == delta_cents)
        })
    }

    /// How often each operation of request k is applied.
    fn applied_count(&self, tx_id: &str, k: usize) -> [usize; 2] {
        self.ops(tx_id, k).map(|(i, account, delta)| {
            self.nodes[i].applied.get(tx_id).map_or(0, |entries| {
                entries
                    .iter()
                    .filter(|(a, d)| *a == account && *d == delta)
                    .count()
            })
        })
    }

    /// The nodes where an operation of request k is applied.
    fn nodes_applying(&self, tx_id: &str, k: usize) -> Vec<&str> {
        let counts = self.applied_count(tx_id, k);
        let ops = self.ops(tx_id, k);
        (0..2)
            .filter(|j| counts[*j] > 0)
            .map(|j| self.nodes[ops[j].0].id.as_str())
            .collect()
    }

    /// The invariants, checked after every step. What only a node can
    /// break is looked at on the nodes the step touched.
    fn check_step(&mut self) -> Check {
        if self.recording.is_some() {
            let (now_us, up, seen) = (self.now_us, self.coord_up, self.seen_nodes());
            if let Some(trace) = self.recording.as_mut() {
                trace.observe(now_us, up, seen);
            }
        }
        let touched = self.refresh_applied();
        if touched.is_empty() {
            return Ok(());
        }
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
            for (tx_id, entries) in &node.applied {
                for (account, delta) in entries {
                    if self.owner(tx_id, i, account, *delta).is_none() {
                        return Err(format!(
                            "{} applied {tx_id} {account} {delta:+}, which no request under {tx_id} asked for",
                            node.id
                        ));
                    }
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
        }
        let touched_ids: BTreeSet<&TxId> = touched
            .iter()
            .flat_map(|i| self.nodes[*i].applied.keys())
            .collect();
        let mut applied_now = Vec::new();
        for tx_id in touched_ids {
            let mut halves = Vec::new();
            for k in 0..self.requests[tx_id].len() {
                let counts = self.applied_count(tx_id, k);
                if counts.iter().any(|c| *c > 1) {
                    return Err(format!("{tx_id} #{k} is applied {counts:?} times"));
                }
                if counts == [0, 0] {
                    continue;
                }
                applied_now.push((tx_id.clone(), k));
                if counts != [1, 1] {
                    halves.push(k);
                }
                if let Some(Outcome::Aborted) = self.told_request.get(&(tx_id.clone(), k)) {
                    return Err(format!(
                        "{tx_id} #{k} is applied on {:?}, but its client was told aborted",
                        self.nodes_applying(tx_id, k)
                    ));
                }
            }
            // Half of a transfer is applied while its commit travels; two
            // halves of different transfers under one id are one transfer
            // mixed from two.
            if halves.len() > 1 {
                return Err(format!(
                    "{tx_id} mixes halves of different transfers {halves:?} of {:?}",
                    self.requests[tx_id]
                ));
            }
        }
        self.must_not_abort.extend(applied_now);
        for (tx_id, k) in &self.must_not_abort {
            let legs: Vec<usize> = self.ops(tx_id, *k).iter().map(|(i, _, _)| *i).collect();
            for &i in &touched {
                if !legs.contains(&i)
                    || self.nodes[i].machine.outcome(tx_id) != Some(Decision::Abort)
                {
                    continue;
                }
                // An apply that was never durable (a one-phase commit) may
                // be lost in a crash, and then abort: so, applied now.
                let applied_on = self.nodes_applying(tx_id, *k);
                let committed =
                    self.told_request.get(&(tx_id.clone(), *k)) == Some(&Outcome::Committed);
                if applied_on.is_empty() && !committed {
                    continue;
                }
                return Err(format!(
                    "{tx_id} #{k} is aborted on {} but applied on {applied_on:?} (client told {:?})",
                    self.nodes[i].id,
                    self.told_request.get(&(tx_id.clone(), *k))
                ));
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
        let synced = self.coord_disk.cached.is_empty()
            && self.nodes.iter().all(|n| n.disk.cached.is_empty());
        idle_coord && idle_nodes && quiet_net && synced && self.pending_clients.is_empty()
    }

    fn heal_all(&mut self) {
        self.log("HEAL ALL".to_string());
        if !self.coord_up {
            self.restart_coordinator();
        }
        self.coord.set_faults(DemoFaults::default());
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
        for node in &mut self.nodes {
            node.dirty = true;
        }
        self.check_step()?;
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
        // The transfer a tx_id's fold follows (or, with none started in
        // view, any request under that id) is applied on every leg.
        let applied_everywhere = |tx_id: &str, started: Option<&common::folds::Transfer>| {
            let Some(requests) = self.requests.get(tx_id) else {
                return false;
            };
            requests.iter().enumerate().any(|(k, r)| {
                let same = started.is_none_or(|(from, to, cents)| {
                    r.from == *from && r.to == *to && r.amount_cents == *cents
                });
                same && self.applied_count(tx_id, k) == [1, 1]
            })
        };
        // What the clients of that same transfer were told (a re-used id's
        // other transfers have answers of their own).
        let told = |tx_id: &str, started: Option<&common::folds::Transfer>| match started {
            None => self.told.get(tx_id).copied(),
            Some((from, to, cents)) => {
                let requests = self.requests.get(tx_id)?;
                let k = requests
                    .iter()
                    .position(|r| r.from == *from && r.to == *to && r.amount_cents == *cents)?;
                self.told_request.get(&(tx_id.to_string(), k)).copied()
            }
        };
        self.folds.check_settled(told, applied_everywhere)?;
        for (tx_id, contents) in &self.requests {
            for k in 0..contents.len() {
                let counts = self.applied_count(tx_id, k);
                let told = self.told_request.get(&(tx_id.clone(), k));
                let everywhere = counts == [1, 1];
                let nowhere = counts == [0, 0];
                match told {
                    Some(Outcome::Committed) if !everywhere => {
                        return Err(format!(
                            "client was told {tx_id} #{k} committed but its operations are applied {counts:?} times"
                        ))
                    }
                    Some(Outcome::Aborted) if !nowhere => {
                        return Err(format!(
                            "client was told {tx_id} #{k} aborted but its operations are applied {counts:?} times"
                        ))
                    }
                    _ if !everywhere && !nowhere => {
                        return Err(format!(
                            "{tx_id} #{k} is applied {counts:?} times: half a transfer"
                        ))
                    }
                    _ => {}
                }
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Crash {
    Kill,
    PowerLoss,
}

fn run_seed(seed: u64, verbose: bool, broken: Broken) -> Result<Stats, String> {
    match run_seed_once(seed, verbose, verbose, broken) {
        Ok(stats) => Ok(stats),
        Err(_) if !verbose => run_seed_once(seed, false, true, broken),
        Err(e) => Err(e),
    }
}

fn run_seed_once(seed: u64, verbose: bool, tracing: bool, broken: Broken) -> Result<Stats, String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut sim = Sim::new(seed, verbose, tracing, broken);
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

fn threads() -> u64 {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as u64
}

#[test]
fn simulation_keeps_money_safe_under_faults() {
    if let Some(seed) = env_u64("SIM_SEED") {
        match run_seed(seed, true, Broken::nothing()) {
            Ok(stats) => println!("seed {seed} passed: {stats:?}"),
            Err(e) => panic!("{e}"),
        }
        return;
    }
    let seeds = env_u64("SIM_SEEDS").unwrap_or(SEEDS_DEFAULT);
    let start = env_u64("SIM_SEED_START").unwrap_or(0);
    let threads = threads();
    let began = Instant::now();
    let progress = Progress::steps("simulation: seeds", seeds);
    let done = AtomicU64::new(0);
    let results: Vec<Result<Stats, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (progress, done) = (&progress, &done);
                scope.spawn(move || {
                    let mut total = Stats::default();
                    let mut seed = start + t;
                    while seed < start + seeds {
                        match run_seed(seed, false, Broken::nothing()) {
                            Ok(s) => total.add(&s),
                            Err(e) => return Err(e),
                        }
                        seed += threads;
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        progress.set(n, "0 violations", false);
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
    progress.finish();
    let elapsed = began.elapsed().as_secs_f64();
    let mut total = Stats::default();
    for r in &results {
        match r {
            Ok(s) => total.add(s),
            Err(e) => panic!("{e}"),
        }
    }
    println!(
        "{seeds} seeds in {elapsed:.1}s ({:.0} seeds/s, {threads} threads), 0 violations: {total:?}",
        seeds as f64 / elapsed
    );
    assert!(
        total.committed > seeds,
        "too few commits: the simulation is not exercising the protocol"
    );
    let exercised = [
        total.aborted,
        total.kills,
        total.coordinator_kills,
        total.power_losses,
        total.retries,
        total.reused_ids,
        total.conflicts,
        total.generated_ids,
        total.clock_steps_back,
    ];
    assert!(
        exercised.iter().all(|n| *n > 0),
        "a fault or a kind of client never happened: {total:?}"
    );
}

// ----- the simulation finds the bugs this protocol once had -----

/// Runs seeds with `broken` until one fails, up to `seeds_max`, and prints
/// the failure; fails if there is none.
fn hunt(name: &str, broken: Broken, seeds_max: u64) {
    let began = Instant::now();
    let stop = AtomicBool::new(false);
    let found = std::thread::scope(|scope| {
        let threads = threads();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut seed = t;
                    while seed < seeds_max && !stop.load(Ordering::Relaxed) {
                        if let Err(e) = run_seed_once(seed, false, true, broken) {
                            stop.store(true, Ordering::Relaxed);
                            return Some((seed, e));
                        }
                        seed += threads;
                    }
                    None
                })
            })
            .collect();
        let mut found: Vec<(u64, String)> = handles
            .into_iter()
            .filter_map(|h| h.join().expect("simulation thread"))
            .collect();
        found.sort();
        found.into_iter().next()
    });
    let Some((seed, failure)) = found else {
        panic!("{name}: the simulation must find the bug within {seeds_max} seeds");
    };
    let first_line = failure.lines().next().unwrap_or_default();
    println!(
        "{name}: found by seed {seed} in {:.1}s: {first_line}",
        began.elapsed().as_secs_f64()
    );
}

#[test]
fn the_simulation_finds_a_re_used_tx_id_that_picks_up_a_stale_prepared() {
    // A stale PREPARED picked up: a participant that answers a prepare from what it holds under
    // that tx_id whatever its operations and epoch, behind a restarted
    // coordinator that runs a client's id before hearing the in-doubt lists.
    let broken = Broken {
        mutants: Mutants {
            prepare_identity_unchecked: true,
            no_restart_gate: true,
            ..Mutants::default()
        },
        ..Broken::nothing()
    };
    hunt("a stale prepared picked up", broken, 5_000);
}

#[test]
fn the_simulation_finds_a_participant_that_answers_for_another_transfer() {
    // A stale PREPARED, the participant's half alone: a remembered outcome or a held
    // PREPARED answers for another transfer under a re-used tx_id.
    let broken = Broken {
        mutants: Mutants {
            prepare_identity_unchecked: true,
            ..Mutants::default()
        },
        ..Broken::nothing()
    };
    hunt(
        "a participant that ignores a prepare's identity",
        broken,
        5_000,
    );
}

#[test]
fn the_simulation_finds_a_presumed_abort_answered_before_it_is_durable() {
    // An unforced presumed abort: a presumed abort answered without its forced record.
    let broken = Broken {
        mutants: Mutants {
            presumed_abort_unforced: true,
            ..Mutants::default()
        },
        ..Broken::nothing()
    };
    hunt("a presumed abort not forced", broken, 5_000);
}

#[test]
fn the_simulation_finds_a_recovery_that_acts_on_the_page_cache() {
    // A log open without fsync: a log open that does not fsync what a killed process left in
    // the page cache.
    let broken = Broken {
        syncs_on_open: false,
        ..Broken::nothing()
    };
    hunt("no fsync on log open", broken, 5_000);
}

#[test]
fn the_simulation_finds_what_a_presumed_abort_not_forced_does_to_clients() {
    // The unforced presumed abort end to end, with no check of answers against the disk: after
    // another crash the same tx_id gets a second outcome.
    let broken = Broken {
        mutants: Mutants {
            presumed_abort_unforced: true,
            ..Mutants::default()
        },
        gates_checked: false,
        ..Broken::nothing()
    };
    hunt("a presumed abort not forced, end to end", broken, 20_000);
}

#[test]
fn the_simulation_finds_what_a_recovery_from_the_page_cache_does_to_money() {
    // The log open without fsync end to end, with no check of sends against the disk: a power
    // cut takes back a record that was already acted on.
    let broken = Broken {
        syncs_on_open: false,
        gates_checked: false,
        ..Broken::nothing()
    };
    hunt("no fsync on log open, end to end", broken, 20_000);
}

#[test]
fn a_seeds_trace_is_a_recording_the_dashboard_reads() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("trace.jsonl");
    let mut sim = Sim::new(7, false, false, Broken::nothing());
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
