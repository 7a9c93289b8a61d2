//! Exhaustive model checking of the 2PC machines with `stateright`.
//!
//! The model runs the very `Coordinator` and `Participant` the processes
//! run; only the world around them is modelled:
//! - a network that is a set of messages (any of them can be delivered
//!   next, so every reordering is explored; a bounded number may be dropped
//!   or delivered twice), or, in the models about something else, one
//!   queue per connection as TCP keeps it;
//! - logs as the kernel keeps them: an appended record is in the page cache
//!   until an fsync puts it on the disk. A `kill -9` keeps the page cache
//!   (the restarted process reads those records, and its log open fsyncs
//!   them); a power cut, of one machine or of all, loses what was not
//!   fsynced;
//! - crashes and restarts (everything volatile lost), checkpoints (either
//!   machine rewrites its log as one record);
//! - clients that submit, retry a tx_id after any answer or after losing
//!   the coordinator (also while a restarted coordinator is reconciling),
//!   and re-use a tx_id for a different transfer;
//! - a clock that jumps to whichever machine's timer fires next (timers fire
//!   in every order). Fault budgets and a time horizon keep it finite.
//!
//! Properties, over the whole history and matched to each request's
//! content (its accounts and amounts), not just its tx_id: `always` no
//! transfer is applied on one leg and aborted on another; a node that voted
//! ready never aborts on its own; money is conserved and every ledger entry
//! is one operation of one request, applied once; a transfer reported
//! committed is never aborted on a leg and one reported aborted is applied
//! nowhere, ever; a client never sees two outcomes for one tx_id; an answer
//! is durable in the coordinator's log before the client hears it; a vote,
//! an ack or a commit is sent only once the record it promises is on the
//! disk (not merely in the page cache); from
//! every reachable state, healing everything and running fault-free
//! resolves every transaction and applies every reported commit on every
//! leg exactly once. `sometimes` a transfer is answered committed, and
//! `sometimes` one is answered aborted: every model must reach both, or its
//! test fails. Each model has its own faults, so that each runs in seconds;
//! the two-transfer models are bounded by depth.
//!
//! The last tests take fixes away (the `mutants` feature, which only this
//! crate's tests enable, and the log open's fsync, which the model's disk
//! stands for) and require the checker to find each bug.
//!
//! ```text
//! cargo test -p shared --test model_check -- --nocapture   # prints state counts
//! cargo test -p shared --test model_check <name> -- --nocapture   # one model
//! ```
//! `MC_*` variables widen a model (see each test); use `--release` for them.
//!
//! The original demo's bug is also a recording the dashboard replays (its
//! scenario `original-bug`): the counterexample's actions run again
//! through the machines, each step's events and node states written in the
//! recording format (`sim_trace`), committed as
//! `frontend/recordings/original-bug.jsonl`; a test fails if that file is
//! stale. `MC_TRACE=<path>` writes it; from the workspace root,
//! `MC_TRACE=$PWD/frontend/recordings/original-bug.jsonl cargo test -p shared
//! --test model_check the_original_demos_bug` regenerates it (the tests run
//! in `shared/`, so a relative path lands there).

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stateright::{Checker, HasDiscoveries, Model, Property};

use shared::api::{Outcome, TransferRequest};
use shared::events::EventKind;
use shared::progress::Progress;
use shared::protocol::coordinator::{self as co, Coordinator, CoordinatorConfig, TransferError};
use shared::protocol::mutants::Mutants;
use shared::protocol::participant::{self as pa, Participant, ParticipantConfig};
use shared::protocol::record::{CoordinatorRecord, ParticipantRecord};
use shared::wire::{Decision, LedgerEntry, Op, Reply, Request, TxId, Vote};

mod common;
mod sim_trace;
use common::{log_holds_decision, reply_is_durable};

const BALANCE_CENTS_INITIAL: i64 = 100;
const CLUSTER: &str = "mc";
/// How long the fault-free run of the liveness check may take.
const HEAL_RUN_US: u64 = 400;

// ----- the modelled world -----

/// Which connection, in which direction, a message travels on.
fn channel(env: &Envelope) -> u64 {
    match env {
        Envelope::ToNode { node, conn, .. } => (*conn << 8) | (*node as u64) << 1,
        Envelope::ToCoord { node, conn, .. } => (*conn << 8) | (*node as u64) << 1 | 1,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Envelope {
    ToNode {
        node: usize,
        conn: u64,
        msg: Request,
    },
    ToCoord {
        node: usize,
        conn: u64,
        msg: Reply,
    },
}

/// One log file: `durable` is on the disk; `cached` was written (it is in
/// the page cache) but not fsynced, with its seq (0: written by an earlier
/// incarnation of the process) and whether its writer asked for a sync.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Disk<R> {
    durable: Vec<R>,
    cached: Vec<(u64, R, bool)>,
}

impl<R: Clone> Disk<R> {
    fn new(first: R) -> Self {
        Disk {
            durable: vec![first],
            cached: Vec::new(),
        }
    }

    /// The coordinator's writer fsyncs when a record asks for it.
    fn wants_sync(&self) -> bool {
        self.cached.iter().any(|(_, _, sync)| *sync)
    }

    /// A participant's writer fsyncs whatever is written, sooner or later.
    fn wants_lazy_sync(&self) -> bool {
        !self.cached.is_empty()
    }

    /// fsync: everything written is on the disk. Returns the newest seq of
    /// this incarnation it covers, to feed back as `Durable`.
    fn sync(&mut self) -> Option<u64> {
        let seq = self.cached.iter().map(|(s, _, _)| *s).max();
        self.durable
            .extend(self.cached.drain(..).map(|(_, r, _)| r));
        seq.filter(|s| *s > 0)
    }

    /// Every record a reader of the file sees: the disk, then the page cache.
    fn visible(&self) -> Vec<R> {
        let cached = self.cached.iter().map(|(_, r, _)| r.clone());
        self.durable.iter().cloned().chain(cached).collect()
    }

    /// A restarted process opens its log: the log open fsyncs (unless
    /// `syncs_on_open` is false, the bug it fixed); it reads every record.
    fn open(&mut self, syncs_on_open: bool) -> Vec<R> {
        if syncs_on_open {
            self.sync();
        }
        for (seq, _, _) in &mut self.cached {
            *seq = 0;
        }
        self.visible()
    }

    fn power_cut(&mut self) {
        self.cached.clear();
    }

    /// A checkpoint rewrites the log as one record, atomically and durably.
    fn rewrite(&mut self, checkpoint: R) {
        self.cached.clear();
        self.durable = vec![checkpoint];
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Node {
    machine: Participant,
    up: bool,
    disk: Disk<ParticipantRecord>,
    voted_ready: BTreeSet<TxId>,
    rollback_received: BTreeSet<TxId>,
}

/// A client's view of its request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Client {
    submitted: bool,
    /// Waiting for an answer (lost when the coordinator dies).
    waiting: bool,
    /// The first outcome it was told.
    told: Option<Outcome>,
}

/// What may still go wrong, and how often clients may still retry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Budget {
    kills: u8,
    power_cuts: u8,
    drops: u8,
    dups: u8,
    retries: u8,
    checkpoints: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct World {
    now_us: u64,
    coord: Coordinator,
    coord_disk: Disk<CoordinatorRecord>,
    nodes: Vec<Node>,
    conns: Vec<u64>,
    /// The network: a set, kept sorted by each message's hash so that two
    /// states with the same messages are the same state; with `fifo`, kept
    /// in send order within each connection, connections sorted.
    net: Vec<(u64, Envelope)>,
    clients: Vec<Client>,
    /// History: an operation of request k was on a node's disk at some
    /// point. (An apply only in memory may be lost with the power before
    /// anyone relied on it: a one-phase commit applies before its record
    /// is durable, and then may abort.)
    durably_applied: Vec<bool>,
    /// History: one tx_id was answered with two different outcomes.
    two_outcomes: bool,
    /// History: an answer was given before the coordinator's log held it.
    told_before_durable: bool,
    /// History: a vote, ack or commit was sent before the record it
    /// promises was on the disk.
    sent_before_durable: bool,
    left: Budget,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Proc {
    Coordinator,
    Node(usize),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Act {
    /// A client submits request k, for the first time or again.
    Submit(usize),
    Deliver(usize),
    DeliverTwice(usize),
    Drop(usize),
    Fsync(Option<usize>),
    Tick(Option<usize>),
    /// `kill -9`; a killed coordinator restarts at once.
    Kill(Proc),
    /// One machine loses power (`None`: the one machine all run on).
    PowerCut(Option<Proc>),
    RestartNode(usize),
    Checkpoint(Proc),
}

/// The model: the cluster shape, the requests clients make, the fault
/// budget, the time horizon, and which fixes are taken away.
#[derive(Clone)]
struct TwoPc {
    nodes: usize,
    /// The node that holds each account (account `a` is named `account(a)`).
    homes: Vec<usize>,
    transfers: Vec<TransferRequest>,
    budget: Budget,
    horizon_us: u64,
    mutants: Mutants,
    /// A restarted process's log open fsyncs what the page cache holds.
    syncs_on_open: bool,
    /// Which processes a kill or a power cut may hit: the coordinator (a
    /// kill), each machine alone (a power cut), all at once (a power cut).
    kill_coordinator: bool,
    power_cut_each: bool,
    power_cut_all: bool,
    /// Each connection delivers in order, as TCP does (otherwise any
    /// message in flight may be delivered next).
    fifo: bool,
    /// Every write is fsynced in the step that made it (fewer
    /// interleavings, for models about something else).
    sync_at_once: bool,
    /// Check bounded liveness from every state (costly; off for the
    /// counterexample hunts).
    check_liveness: bool,
    /// Where the coordinator's events go, with the model time they were
    /// emitted at: only while a counterexample is replayed into a
    /// recording (the checker itself drops them).
    emitted: Option<Emitted>,
}

/// The coordinator's events, each with the model time it was emitted at.
type Emitted = Arc<Mutex<Vec<(u64, EventKind)>>>;

/// Some operation of a request is applied.
fn any(applied: [usize; 2]) -> bool {
    applied.iter().any(|n| *n > 0)
}

/// One operation of a request is applied and the other is not.
fn half(applied: [usize; 2]) -> bool {
    (applied[0] > 0) != (applied[1] > 0)
}

fn node_id(i: usize) -> String {
    format!("{}", 6001 + i)
}

fn account(a: usize) -> String {
    format!("{}", (b'A' + a as u8) as char)
}

impl TwoPc {
    fn participant_config(&self, i: usize) -> ParticipantConfig {
        ParticipantConfig {
            node: node_id(i),
            accounts: (0..self.homes.len())
                .filter(|a| self.homes[*a] == i)
                .map(|a| (account(a), BALANCE_CENTS_INITIAL))
                .collect(),
            lock_wait_us: 40,
            faults_allowed: false,
            hash_seed: Default::default(),
        }
    }

    fn coordinator_config(&self) -> CoordinatorConfig {
        let nodes = (0..self.nodes).map(node_id).collect();
        let accounts = (0..self.homes.len())
            .map(|a| (account(a), node_id(self.homes[a])))
            .collect();
        let mut c = CoordinatorConfig::new(nodes, accounts);
        c.prepare_timeout_us = 30;
        c.ack_wait_us = 30;
        c.commit_retry_us = 20;
        c.in_doubt_sweep_us = 80;
        c
    }

    fn recover_node(&self, i: usize, records: &[ParticipantRecord]) -> Participant {
        let mut p = Participant::recover(self.participant_config(i), records)
            .expect("the model's logs replay");
        p.set_mutants(self.mutants);
        p
    }

    fn recover_coordinator(&self, records: &[CoordinatorRecord]) -> Coordinator {
        let mut c = Coordinator::recover(self.coordinator_config(), records);
        c.set_mutants(self.mutants);
        c
    }

    fn initial(&self) -> World {
        let nodes = (0..self.nodes)
            .map(|i| {
                let init = Participant::init_record(&self.participant_config(i));
                Node {
                    machine: self.recover_node(i, std::slice::from_ref(&init)),
                    up: true,
                    disk: Disk::new(init),
                    voted_ready: BTreeSet::new(),
                    rollback_received: BTreeSet::new(),
                }
            })
            .collect();
        let mut coord = self.recover_coordinator(&[]);
        let epoch = coord.begin_epoch(CLUSTER.into());
        let mut w = World {
            now_us: 0,
            coord,
            coord_disk: Disk::new(epoch),
            nodes,
            conns: vec![0; self.nodes],
            net: Vec::new(),
            clients: vec![Client::default(); self.transfers.len()],
            durably_applied: vec![false; self.transfers.len()],
            two_outcomes: false,
            told_before_durable: false,
            sent_before_durable: false,
            left: self.budget,
        };
        for i in 0..self.nodes {
            self.connect(&mut w, i);
        }
        // The start is fault-free: every node is bound and accepted, and
        // the first recovery queries are answered.
        loop {
            while !w.net.is_empty() {
                let (_, env) = w.net.remove(0);
                self.deliver(&mut w, env);
            }
            if w.nodes.iter().all(|n| n.disk.cached.is_empty()) {
                break;
            }
            for i in 0..self.nodes {
                self.fsync(&mut w, Some(i));
            }
        }
        w
    }

    // ----- running the machines -----

    /// A new connection to node `i`: the coordinator authenticates (the
    /// node's `Connect`); it counts as up for the coordinator once the node
    /// accepts it (after its binding record is durable).
    fn connect(&self, w: &mut World, i: usize) {
        w.conns[i] += 1;
        let connect = pa::Input::Connect {
            from: w.conns[i],
            cluster: CLUSTER.into(),
            epoch: w.coord.epoch(),
            legacy_history: false,
        };
        let actions = w.nodes[i].machine.handle(w.now_us, connect);
        self.run_node(w, i, actions);
    }

    fn post(&self, w: &mut World, env: Envelope) {
        if self.fifo {
            // Kept in send order within a connection, connections sorted,
            // so that two states with the same queues are the same state.
            let key = channel(&env);
            let at = w.net.partition_point(|(k, _)| *k <= key);
            w.net.insert(at, (key, env));
            return;
        }
        let mut h = DefaultHasher::new();
        env.hash(&mut h);
        let key = h.finish();
        if w.net.iter().any(|(_, e)| *e == env) {
            return;
        }
        let at = w.net.partition_point(|(k, _)| *k <= key);
        w.net.insert(at, (key, env));
    }

    fn run_node(&self, w: &mut World, i: usize, actions: Vec<pa::Action>) {
        for action in actions {
            match action {
                pa::Action::Send { to, msg } => {
                    if reply_is_durable(&w.nodes[i].disk.durable, &msg) == Some(false) {
                        w.sent_before_durable = true;
                    }
                    if let Reply::Vote {
                        tx_id,
                        vote: Vote::Ready,
                        ..
                    } = &msg
                    {
                        w.nodes[i].voted_ready.insert(tx_id.clone());
                    }
                    // Replies the coordinator provably ignores are not modelled.
                    let ignored = matches!(&msg, Reply::Error { .. });
                    if w.nodes[i].up && to == w.conns[i] && !ignored {
                        self.post(
                            w,
                            Envelope::ToCoord {
                                node: i,
                                conn: to,
                                msg,
                            },
                        );
                    }
                }
                pa::Action::Persist { seq, record, sync } => {
                    w.nodes[i].disk.cached.push((seq, record, sync))
                }
                pa::Action::Crash(_) => unreachable!("no crash points are armed in the model"),
                pa::Action::Accept { peer } => {
                    if w.nodes[i].up && peer == w.conns[i] {
                        let up = co::Input::NodeUp { node: node_id(i) };
                        let actions = w.coord.handle(w.now_us, up);
                        self.run_coord(w, actions);
                    }
                }
                pa::Action::Close { peer, message } => {
                    assert_ne!(peer, w.conns[i], "the coordinator was refused: {message}");
                }
            }
        }
    }

    fn run_coord(&self, w: &mut World, actions: Vec<co::Action>) {
        for action in actions {
            match action {
                co::Action::Send { node, msg } => {
                    if let Request::Commit { tx_id } = &msg {
                        let durable = &w.coord_disk.durable;
                        if !log_holds_decision(durable, tx_id, Decision::Commit) {
                            w.sent_before_durable = true;
                        }
                    }
                    let i = (0..self.nodes)
                        .find(|i| node_id(*i) == node)
                        .expect("known node");
                    if w.nodes[i].up {
                        let conn = w.conns[i];
                        self.post(w, Envelope::ToNode { node: i, conn, msg });
                    }
                }
                co::Action::Persist { seq, record, sync } => {
                    w.coord_disk.cached.push((seq, record, sync))
                }
                co::Action::Reply { client, result } => self.on_reply(w, client as usize, result),
                co::Action::Emit(kind) => {
                    if let Some(sink) = &self.emitted {
                        let mut sink = sink.lock().expect("one replay at a time");
                        sink.push((w.now_us, kind));
                    }
                }
                co::Action::Crash(_) => unreachable!("no crash points are armed in the model"),
            }
        }
    }

    /// A client hears its answer: its outcome is recorded, and the promises
    /// an answer makes are checked against the history.
    fn on_reply(
        &self,
        w: &mut World,
        k: usize,
        result: Result<shared::api::TransferResponse, TransferError>,
    ) {
        w.clients[k].waiting = false;
        let outcome = match result {
            Ok(response) => {
                assert_eq!(Some(&response.tx_id), self.transfers[k].tx_id.as_ref());
                response.outcome
            }
            // A re-used tx_id, or "retry later": no outcome.
            Err(TransferError::Conflict(_) | TransferError::Unavailable(_)) => return,
            Err(e) => panic!("unexpected transfer error {e:?}"),
        };
        let tx_id = self.id(k);
        let decision = match outcome {
            Outcome::Committed => Decision::Commit,
            Outcome::Aborted => Decision::Abort,
        };
        if !log_holds_decision(&w.coord_disk.durable, tx_id, decision) {
            w.told_before_durable = true;
        }
        let contradicts = (0..self.transfers.len())
            .filter(|j| self.id(*j) == tx_id)
            .any(|j| w.clients[j].told.is_some_and(|o| o != outcome));
        w.two_outcomes |= contradicts;
        w.clients[k].told.get_or_insert(outcome);
    }

    fn deliver(&self, w: &mut World, env: Envelope) {
        match env {
            Envelope::ToNode { node, conn, msg } => {
                if let Request::Rollback { tx_id } = &msg {
                    w.nodes[node].rollback_received.insert(tx_id.clone());
                }
                let actions = w.nodes[node]
                    .machine
                    .handle(w.now_us, pa::Input::Message { from: conn, msg });
                self.run_node(w, node, actions);
            }
            Envelope::ToCoord { node, conn, msg } => {
                if conn == w.conns[node] {
                    let actions = w.coord.handle(
                        w.now_us,
                        co::Input::FromNode {
                            node: node_id(node),
                            msg,
                        },
                    );
                    self.run_coord(w, actions);
                }
            }
        }
    }

    fn fsync(&self, w: &mut World, k: Option<usize>) {
        match k {
            None => {
                if let Some(seq) = w.coord_disk.sync() {
                    let actions = w.coord.handle(w.now_us, co::Input::Durable { seq });
                    self.run_coord(w, actions);
                }
            }
            Some(i) => {
                if let Some(seq) = w.nodes[i].disk.sync() {
                    let actions = w.nodes[i]
                        .machine
                        .handle(w.now_us, pa::Input::Durable { seq });
                    self.run_node(w, i, actions);
                }
            }
        }
    }

    /// fsyncs every log of a process that is up until none has anything
    /// left to sync (a `Durable` may release messages that write more).
    fn sync_everything(&self, w: &mut World) {
        loop {
            let left = !w.coord_disk.cached.is_empty()
                || w.nodes.iter().any(|n| n.up && !n.disk.cached.is_empty());
            if !left {
                return;
            }
            self.fsync(w, None);
            for i in 0..self.nodes {
                if w.nodes[i].up {
                    self.fsync(w, Some(i));
                }
            }
        }
    }

    fn deadline(&self, w: &World, k: Option<usize>) -> Option<u64> {
        match k {
            None => w.coord.next_deadline_us(),
            Some(i) if w.nodes[i].up => w.nodes[i].machine.next_deadline_us(),
            Some(_) => None,
        }
    }

    fn tick(&self, w: &mut World, k: Option<usize>) {
        let Some(at) = self.deadline(w, k) else {
            return;
        };
        w.now_us = w.now_us.max(at);
        match k {
            None => {
                let actions = w.coord.handle(w.now_us, co::Input::Tick);
                self.run_coord(w, actions);
            }
            Some(i) => {
                let actions = w.nodes[i].machine.handle(w.now_us, pa::Input::Tick);
                self.run_node(w, i, actions);
            }
        }
    }

    /// Node `i` dies (its process, or with `power_cut` its machine): its
    /// connection and what is in flight on it are gone. While it is down,
    /// the properties look at what it would recover.
    fn crash_node(&self, w: &mut World, i: usize, power_cut: bool) {
        let was_up = w.nodes[i].up;
        let node = &mut w.nodes[i];
        if power_cut {
            node.disk.power_cut();
        }
        node.machine = self.recover_node(i, &node.disk.visible());
        node.up = false;
        if !was_up {
            return;
        }
        w.net.retain(
            |(_, e)| !matches!(e, Envelope::ToNode { node, .. } | Envelope::ToCoord { node, .. } if *node == i),
        );
        let actions = w
            .coord
            .handle(w.now_us, co::Input::NodeDown { node: node_id(i) });
        self.run_coord(w, actions);
    }

    fn restart_node(&self, w: &mut World, i: usize) {
        let records = w.nodes[i].disk.open(self.syncs_on_open);
        let mut machine = self.recover_node(i, &records);
        machine.set_recovered_since(w.now_us);
        w.nodes[i].machine = machine;
        w.nodes[i].up = true;
        self.connect(w, i);
    }

    /// The coordinator dies (with `power_cut`, losing what it had not
    /// fsynced) and restarts at once from its log: a new epoch, forced
    /// before it talks (that fsync makes every record written before it
    /// durable too); its clients lost their connections; every node that
    /// is up reconnects at once. (A node still reads what the dead
    /// coordinator sent before its new connection arrives; that is the
    /// same as reading it before the crash, which the model explores, and
    /// once the new epoch is accepted the old connection is refused.)
    fn crash_coordinator(&self, w: &mut World, power_cut: bool) {
        if power_cut {
            w.coord_disk.power_cut();
        }
        let records = w.coord_disk.open(self.syncs_on_open);
        w.coord = self.recover_coordinator(&records);
        let epoch = w.coord.begin_epoch(CLUSTER.into());
        w.coord_disk.sync();
        w.coord_disk.durable.push(epoch);
        for client in &mut w.clients {
            client.waiting = false;
        }
        w.net.clear();
        for i in 0..self.nodes {
            if w.nodes[i].up {
                self.connect(w, i);
            }
        }
    }

    fn checkpoint(&self, w: &mut World, who: Proc) {
        match who {
            Proc::Coordinator => {
                let (seq, record) = w.coord.checkpoint();
                w.coord_disk.rewrite(record);
                let actions = w.coord.handle(w.now_us, co::Input::Durable { seq });
                self.run_coord(w, actions);
            }
            Proc::Node(i) => {
                let (seq, record) = w.nodes[i].machine.checkpoint();
                w.nodes[i].disk.rewrite(record);
                let actions = w.nodes[i]
                    .machine
                    .handle(w.now_us, pa::Input::Durable { seq });
                self.run_node(w, i, actions);
            }
        }
    }

    fn submit(&self, w: &mut World, k: usize) {
        if w.clients[k].submitted {
            w.left.retries -= 1;
        }
        w.clients[k].submitted = true;
        w.clients[k].waiting = true;
        let request = self.transfers[k].clone();
        let actions = w.coord.handle(
            w.now_us,
            co::Input::Transfer {
                client: k as u64,
                request,
            },
        );
        self.run_coord(w, actions);
    }

    // ----- what the properties look at -----

    fn id(&self, k: usize) -> &str {
        self.transfers[k]
            .tx_id
            .as_deref()
            .expect("model transfers carry a tx_id")
    }

    fn account_index(&self, account_id: &str) -> usize {
        (0..self.homes.len())
            .find(|a| account(*a) == account_id)
            .expect("known account")
    }

    /// The operations of request k: (account, delta), debit first.
    fn ops(&self, k: usize) -> [(usize, i64); 2] {
        let t = &self.transfers[k];
        [
            (self.account_index(&t.from), -t.amount_cents),
            (self.account_index(&t.to), t.amount_cents),
        ]
    }

    fn ledger(&self, w: &World, a: usize) -> Vec<LedgerEntry> {
        let machine = &w.nodes[self.homes[a]].machine;
        machine.ledger(&account(a)).unwrap_or_default()
    }

    /// How often each operation (debit, credit) of each request is applied.
    fn tally(&self, w: &World) -> Vec<[usize; 2]> {
        let ledgers: Vec<Vec<LedgerEntry>> =
            (0..self.homes.len()).map(|a| self.ledger(w, a)).collect();
        (0..self.transfers.len())
            .map(|k| {
                let tx_id = self.id(k);
                self.ops(k).map(|(a, delta)| {
                    let entry = |e: &&LedgerEntry| e.tx_id == tx_id && e.delta_cents == delta;
                    ledgers[a].iter().filter(entry).count()
                })
            })
            .collect()
    }

    /// A leg of request k has aborted its tx_id.
    fn aborted_on_a_leg(&self, w: &World, k: usize) -> bool {
        self.ops(k).iter().any(|(a, _)| {
            let machine = &w.nodes[self.homes[*a]].machine;
            machine.outcome(self.id(k)) == Some(Decision::Abort)
        })
    }

    fn atomic(&self, w: &World) -> bool {
        let tally = self.tally(w);
        (0..self.transfers.len()).all(|k| !(any(tally[k]) && self.aborted_on_a_leg(w, k)))
    }

    fn ready_never_aborts_alone(&self, w: &World) -> bool {
        w.nodes.iter().all(|n| {
            n.voted_ready.iter().all(|t| {
                n.machine.outcome(t) != Some(Decision::Abort) || n.rollback_received.contains(t)
            })
        })
    }

    /// Every balance is its opening plus its ledger and not negative; every
    /// ledger entry is an operation of a request with its tx_id, applied at
    /// most once, and never half of one request with half of another under
    /// the same id; the total is the initial one whenever no request is
    /// half applied.
    fn conserved(&self, w: &World) -> bool {
        let mut total = 0;
        for a in 0..self.homes.len() {
            let ledger = self.ledger(w, a);
            let balance = w.nodes[self.homes[a]]
                .machine
                .balances()
                .into_iter()
                .find(|b| b.id == account(a))
                .map_or(-1, |b| b.balance_cents);
            let sum: i64 = ledger.iter().map(|e| e.delta_cents).sum();
            if balance < 0 || balance != BALANCE_CENTS_INITIAL + sum {
                return false;
            }
            let known = |e: &LedgerEntry| {
                (0..self.transfers.len())
                    .any(|k| self.id(k) == e.tx_id && self.ops(k).contains(&(a, e.delta_cents)))
            };
            if !ledger.iter().all(known) {
                return false;
            }
            total += balance;
        }
        let tally = self.tally(w);
        for k in 0..self.transfers.len() {
            if tally[k].iter().any(|n| *n > 1) {
                return false;
            }
            // Half of a transfer is applied while its commit travels; two
            // halves of different transfers under one id are one transfer
            // mixed from two.
            let mixed = (0..self.transfers.len())
                .any(|j| j != k && self.id(j) == self.id(k) && half(tally[j]) && half(tally[k]));
            if mixed {
                return false;
            }
        }
        let initial = BALANCE_CENTS_INITIAL * self.homes.len() as i64;
        tally.iter().any(|t| half(*t)) || total == initial
    }

    /// A transfer reported committed is never aborted on a leg (it is
    /// applied on every leg once healed: see `resolves_when_healed`); one
    /// reported aborted is applied nowhere, and never was on any disk.
    fn answers_hold(&self, w: &World) -> bool {
        let tally = self.tally(w);
        (0..self.transfers.len()).all(|k| match w.clients[k].told {
            Some(Outcome::Committed) => !self.aborted_on_a_leg(w, k),
            Some(Outcome::Aborted) => !any(tally[k]) && !w.durably_applied[k],
            None => true,
        })
    }

    /// Whether an operation of request k is in a node's durable log.
    fn on_disk(&self, w: &World, k: usize) -> bool {
        let tx_id = self.id(k);
        self.ops(k).iter().any(|&(a, delta_cents)| {
            let op = Op {
                account: account(a),
                delta_cents,
            };
            let entry = |e: &LedgerEntry| e.tx_id == tx_id && e.delta_cents == delta_cents;
            w.nodes[self.homes[a]].disk.durable.iter().any(|r| match r {
                ParticipantRecord::Committed { tx_id: t, ops }
                | ParticipantRecord::Heuristic {
                    tx_id: t,
                    ops,
                    decision: Decision::Commit,
                } => t == tx_id && ops.contains(&op),
                ParticipantRecord::Checkpoint(cp) => cp
                    .ledgers
                    .iter()
                    .any(|(id, entries)| *id == op.account && entries.iter().any(entry)),
                _ => false,
            })
        })
    }

    fn note_history(&self, w: &mut World) {
        for k in 0..self.transfers.len() {
            if !w.durably_applied[k] && self.on_disk(w, k) {
                w.durably_applied[k] = true;
            }
        }
    }

    /// Bounded liveness: heal everything, then run fault-free (deliver
    /// every message, fsync, fire due timers) for a bounded time; every
    /// transaction must end resolved on every node, and every transfer
    /// reported committed applied on every leg exactly once.
    fn resolves_when_healed(&self, w: &World) -> bool {
        let mut w = w.clone();
        for i in 0..self.nodes {
            if !w.nodes[i].up {
                self.restart_node(&mut w, i);
            }
        }
        let deadline_us = w.now_us + HEAL_RUN_US;
        while w.now_us <= deadline_us {
            while !w.net.is_empty() {
                let (_, env) = w.net.remove(0);
                self.deliver(&mut w, env);
            }
            self.fsync(&mut w, None);
            for i in 0..self.nodes {
                self.fsync(&mut w, Some(i));
            }
            if !w.net.is_empty() {
                continue;
            }
            if self.resolved(&w) {
                return true;
            }
            let next = std::iter::once(None)
                .chain((0..self.nodes).map(Some))
                .filter_map(|k| self.deadline(&w, k).map(|d| (d, k)))
                .min();
            match next {
                Some((_, k)) => self.tick(&mut w, k),
                None => return self.resolved(&w),
            }
        }
        false
    }

    fn resolved(&self, w: &World) -> bool {
        let idle = w.coord.active_count() == 0
            && w.nodes
                .iter()
                .all(|n| n.machine.active_count() == 0 && n.machine.locked_accounts().is_empty());
        let tally = self.tally(w);
        idle && (0..self.transfers.len()).all(|k| match w.clients[k].told {
            Some(Outcome::Committed) => tally[k] == [1, 1],
            Some(Outcome::Aborted) => tally[k] == [0, 0],
            None => !half(tally[k]),
        })
    }

    fn may_submit(&self, w: &World, k: usize) -> bool {
        let client = w.clients[k];
        !client.waiting && (!client.submitted || w.left.retries > 0)
    }

    /// A power cut is offered where it loses something a kill would keep,
    /// or, for a process that is up, where no kill is left to stand in.
    fn may_cut_power(&self, w: &World, who: Option<Proc>) -> bool {
        if w.left.power_cuts == 0 {
            return false;
        }
        let cached = |p: Proc| match p {
            Proc::Coordinator => !w.coord_disk.cached.is_empty() || w.left.kills == 0,
            Proc::Node(i) => {
                let up_and_no_kill = w.nodes[i].up && w.left.kills == 0;
                !w.nodes[i].disk.cached.is_empty() || up_and_no_kill
            }
        };
        let procs: Vec<Proc> = match who {
            Some(p) => vec![p],
            None => std::iter::once(Proc::Coordinator)
                .chain((0..self.nodes).map(Proc::Node))
                .collect(),
        };
        procs.into_iter().any(cached)
    }
}

impl Model for TwoPc {
    type State = World;
    type Action = Act;

    fn init_states(&self) -> Vec<World> {
        vec![self.initial()]
    }

    fn actions(&self, w: &World, actions: &mut Vec<Act>) {
        for k in 0..self.transfers.len() {
            if self.may_submit(w, k) {
                actions.push(Act::Submit(k));
            }
        }
        for m in 0..w.net.len() {
            let behind = self.fifo && m > 0 && w.net[m - 1].0 == w.net[m].0;
            if behind {
                continue; // not the next message of its connection
            }
            actions.push(Act::Deliver(m));
            if w.left.dups > 0 {
                actions.push(Act::DeliverTwice(m));
            }
            if w.left.drops > 0 {
                actions.push(Act::Drop(m));
            }
        }
        if w.coord_disk.wants_sync() {
            actions.push(Act::Fsync(None));
        }
        if self.deadline(w, None).is_some() {
            actions.push(Act::Tick(None));
        }
        for (i, n) in w.nodes.iter().enumerate() {
            if n.up && n.disk.wants_lazy_sync() {
                actions.push(Act::Fsync(Some(i)));
            }
            if self.deadline(w, Some(i)).is_some() {
                actions.push(Act::Tick(Some(i)));
            }
            if n.up && w.left.kills > 0 {
                actions.push(Act::Kill(Proc::Node(i)));
            }
            if self.power_cut_each && self.may_cut_power(w, Some(Proc::Node(i))) {
                actions.push(Act::PowerCut(Some(Proc::Node(i))));
            }
            if !n.up {
                actions.push(Act::RestartNode(i));
            }
            if n.up && w.left.checkpoints > 0 {
                actions.push(Act::Checkpoint(Proc::Node(i)));
            }
        }
        if self.kill_coordinator && w.left.kills > 0 {
            actions.push(Act::Kill(Proc::Coordinator));
        }
        if self.power_cut_each && self.may_cut_power(w, Some(Proc::Coordinator)) {
            actions.push(Act::PowerCut(Some(Proc::Coordinator)));
        }
        if self.power_cut_all && self.may_cut_power(w, None) {
            actions.push(Act::PowerCut(None));
        }
        if w.left.checkpoints > 0 {
            actions.push(Act::Checkpoint(Proc::Coordinator));
        }
    }

    fn next_state(&self, last: &World, action: Act) -> Option<World> {
        let mut w = last.clone();
        match action {
            Act::Submit(k) => self.submit(&mut w, k),
            Act::Deliver(m) => {
                let (_, env) = w.net.remove(m);
                self.deliver(&mut w, env);
            }
            Act::DeliverTwice(m) => {
                w.left.dups -= 1;
                let env = w.net[m].1.clone();
                self.deliver(&mut w, env);
            }
            Act::Drop(m) => {
                w.left.drops -= 1;
                w.net.remove(m);
            }
            Act::Fsync(k) => self.fsync(&mut w, k),
            Act::Tick(k) => self.tick(&mut w, k),
            Act::Kill(Proc::Node(i)) => {
                w.left.kills -= 1;
                self.crash_node(&mut w, i, false);
            }
            Act::Kill(Proc::Coordinator) => {
                w.left.kills -= 1;
                self.crash_coordinator(&mut w, false);
            }
            Act::PowerCut(Some(Proc::Node(i))) => {
                w.left.power_cuts -= 1;
                self.crash_node(&mut w, i, true);
            }
            Act::PowerCut(Some(Proc::Coordinator)) => {
                w.left.power_cuts -= 1;
                self.crash_coordinator(&mut w, true);
            }
            Act::PowerCut(None) => {
                w.left.power_cuts -= 1;
                for i in 0..self.nodes {
                    self.crash_node(&mut w, i, true);
                }
                self.crash_coordinator(&mut w, true);
            }
            Act::RestartNode(i) => self.restart_node(&mut w, i),
            Act::Checkpoint(who) => {
                w.left.checkpoints -= 1;
                self.checkpoint(&mut w, who);
            }
        }
        if self.sync_at_once {
            self.sync_everything(&mut w);
        }
        self.note_history(&mut w);
        Some(w)
    }

    fn within_boundary(&self, w: &World) -> bool {
        w.now_us <= self.horizon_us
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(
                "atomic: never applied on one leg and aborted on another",
                |m: &TwoPc, w: &World| m.atomic(w),
            ),
            Property::always(
                "a node that voted ready never aborts on its own",
                |m: &TwoPc, w: &World| m.ready_never_aborts_alone(w),
            ),
            Property::always(
                "money is conserved, every entry one operation of one request, once",
                |m: &TwoPc, w: &World| m.conserved(w),
            ),
            Property::always(
                "reported committed is never aborted, reported aborted is applied nowhere, ever",
                |m: &TwoPc, w: &World| m.answers_hold(w),
            ),
            Property::always(
                "a client never sees two outcomes for one tx_id",
                |_: &TwoPc, w: &World| !w.two_outcomes,
            ),
            Property::always(
                "an answer is durable before the client hears it",
                |_: &TwoPc, w: &World| !w.told_before_durable,
            ),
            Property::always(
                "a vote, ack or commit is sent only once its record is durable",
                |_: &TwoPc, w: &World| !w.sent_before_durable,
            ),
            Property::always(
                "once healed, every transaction resolves and every commit is applied on every leg once",
                |m: &TwoPc, w: &World| !m.check_liveness || m.resolves_when_healed(w),
            ),
            Property::sometimes("a transfer is answered committed", |_: &TwoPc, w: &World| {
                w.clients.iter().any(|c| c.told == Some(Outcome::Committed))
            }),
            Property::sometimes("a transfer is answered aborted", |_: &TwoPc, w: &World| {
                w.clients.iter().any(|c| c.told == Some(Outcome::Aborted))
            }),
        ]
    }
}

fn transfer(from: usize, to: usize, amount_cents: i64, tx: &str) -> TransferRequest {
    TransferRequest {
        from: account(from),
        to: account(to),
        amount_cents,
        tx_id: Some(tx.into()),
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn env_u8(name: &str, default: u8) -> u8 {
    env_u64(name).map_or(default, |v| v.min(u8::MAX as u64) as u8)
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A model of `nodes` participants and the given requests, with `budget`
/// and a time horizon; each count can be raised with its `MC_*` variable
/// (`MC_KILLS`, `MC_POWER_CUTS`, `MC_DROPS`, `MC_DUPS`, `MC_RETRIES`,
/// `MC_CHECKPOINTS`, `MC_HORIZON_US`).
fn model(nodes: usize, transfers: Vec<TransferRequest>, budget: Budget, horizon_us: u64) -> TwoPc {
    TwoPc {
        nodes,
        homes: (0..nodes).collect(),
        transfers,
        budget: Budget {
            kills: env_u8("MC_KILLS", budget.kills),
            power_cuts: env_u8("MC_POWER_CUTS", budget.power_cuts),
            drops: env_u8("MC_DROPS", budget.drops),
            dups: env_u8("MC_DUPS", budget.dups),
            retries: env_u8("MC_RETRIES", budget.retries),
            checkpoints: env_u8("MC_CHECKPOINTS", budget.checkpoints),
        },
        horizon_us: env_u64("MC_HORIZON_US").unwrap_or(horizon_us),
        mutants: Mutants::default(),
        syncs_on_open: true,
        kill_coordinator: true,
        power_cut_each: true,
        power_cut_all: true,
        fifo: false,
        sync_at_once: false,
        check_liveness: true,
        emitted: None,
    }
}

/// Checks every property exhaustively (within the bounds, or up to
/// `depth_max`, which `MC_DEPTH` overrides): no `always` may be violated
/// and every `sometimes` must be reached. Prints the state count and pins a
/// floor under it.
fn check(name: &str, model: TwoPc, depth_max: Option<usize>, states_min: usize) {
    let began = Instant::now();
    let mut builder = model.checker().threads(threads());
    let depth_max = depth_max.map(|d| env_u64("MC_DEPTH").map_or(d, |v| v as usize));
    if let Some(depth) = depth_max {
        builder = builder.target_max_depth(depth);
    }
    let checker = watch(name, builder.spawn_bfs());
    println!(
        "{name}: {} states ({} unique), max depth {}, in {:.1}s",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        began.elapsed().as_secs_f64()
    );
    for p in checker.model().properties() {
        let discovery = checker.discovery(p.name);
        match (p.expectation, discovery) {
            (stateright::Expectation::Sometimes, None) => {
                panic!(
                    "{name}: \"{}\" is never reached: the model is too small",
                    p.name
                )
            }
            (stateright::Expectation::Sometimes, Some(_)) => {}
            (_, Some(path)) => panic!("{name}: \"{}\" violated:\n{path}", p.name),
            (_, None) => {}
        }
    }
    let unique = checker.unique_state_count();
    assert!(
        unique >= states_min,
        "{name}: only {unique} states: the model is broken"
    );
}

/// Waits for a running check, showing the states found so far (a bar on a
/// terminal, a line at most every 30 s otherwise), and returns it done.
fn watch<C: Checker<TwoPc>>(name: &str, checker: C) -> C {
    let progress = Progress::count(&format!("model {name}:"), " unique states");
    while !checker.is_done() {
        progress.set(checker.unique_state_count() as u64, "", false);
        std::thread::sleep(Duration::from_millis(250));
    }
    progress.finish();
    checker.join()
}

/// Runs a model until the checker finds `property` violated (a mutant's
/// hunt), prints the path that shows it, and fails if there is none.
fn hunt(name: &str, model: TwoPc, property: &'static str) {
    let began = Instant::now();
    let checker = model
        .checker()
        .threads(threads())
        .finish_when(HasDiscoveries::AnyOf([property].into()))
        .spawn_bfs();
    let checker = watch(name, checker);
    println!(
        "{name}: {} unique states in {:.1}s",
        checker.unique_state_count(),
        began.elapsed().as_secs_f64()
    );
    let path = checker
        .discovery(property)
        .unwrap_or_else(|| panic!("{name}: the checker must find \"{property}\" violated"));
    println!(
        "{name}: \"{property}\" violated by {:?}",
        path.into_actions()
    );
}

// ----- a counterexample as a recording -----

/// How long, in model time, a counterexample's recording goes on after
/// the violation, fault-free: what the cluster does next (the commit
/// reaching the node that aborted, which answers abort; the coordinator
/// sending it again).
const AFTERMATH_US: u64 = 50;

/// A model time as the recording's clock: one modelled microsecond is
/// shown as one millisecond, so that the dashboard's timeline spreads the
/// steps out (the model's 30–35 µs timeouts stand for the real seconds).
fn shown_us(model_us: u64) -> u64 {
    model_us * 1_000
}

impl TwoPc {
    /// What the coordinator's watchers would see of each node.
    fn seen_nodes(&self, w: &World) -> Vec<sim_trace::NodeSeen> {
        let seen = |(i, n): (usize, &Node)| sim_trace::NodeSeen {
            id: node_id(i),
            up: n.up,
            balances: n.machine.balances(),
            in_doubt: n
                .machine
                .in_doubt(w.now_us)
                .into_iter()
                .map(|t| t.tx_id)
                .collect(),
            locked: n.machine.locked_accounts(),
        };
        w.nodes.iter().enumerate().map(seen).collect()
    }

    /// The next step of a fault-free run: deliver the oldest message in
    /// flight, else fsync a log that waits for it, else fire the nearest
    /// timer; `None` once nothing is left to do.
    fn next_fault_free(&self, w: &World) -> Option<Act> {
        if !w.net.is_empty() {
            return Some(Act::Deliver(0));
        }
        if w.coord_disk.wants_sync() {
            return Some(Act::Fsync(None));
        }
        let waiting =
            (0..self.nodes).find(|i| w.nodes[*i].up && w.nodes[*i].disk.wants_lazy_sync());
        if let Some(i) = waiting {
            return Some(Act::Fsync(Some(i)));
        }
        std::iter::once(None)
            .chain((0..self.nodes).map(Some))
            .filter_map(|k| self.deadline(w, k).map(|at| (at, k)))
            .min()
            .map(|(_, k)| Act::Tick(k))
    }
}

/// Runs a model's checker on one thread (so that the path it finds is the
/// same on every run) until `property` is violated, and returns that path.
fn counterexample(model: &TwoPc, property: &'static str) -> Vec<(World, Option<Act>)> {
    let checker = model
        .clone()
        .checker()
        .threads(1)
        .finish_when(HasDiscoveries::AnyOf([property].into()))
        .spawn_bfs()
        .join();
    checker
        .discovery(property)
        .unwrap_or_else(|| panic!("the checker must find \"{property}\" violated"))
        .into_vec()
}

/// A counterexample's path replayed through the machines, as the model
/// runs them, then [`AFTERMATH_US`] of fault-free running, written as a
/// recording: a snapshot of the start, every event the coordinator
/// emitted, and each node's state and the balances whenever they change.
/// Fails if a replayed step does not reach the state the checker saw.
fn recording_of(model: &TwoPc, path: &[(World, Option<Act>)], note: String) -> String {
    let sink = Arc::new(Mutex::new(Vec::new()));
    let replay = TwoPc {
        emitted: Some(sink.clone()),
        ..model.clone()
    };
    let start = replay.initial();
    assert_eq!(start, path[0].0, "the replay starts where the checker did");
    // What the start emitted is in the snapshot.
    sink.lock().expect("not poisoned").clear();
    let header = shared::recording::Header::new("model-checker", Some(note));
    let nodes = replay.seen_nodes(&start);
    let mut trace = sim_trace::Trace::labelled(header, shown_us(start.now_us), nodes);
    let mut run = |w: &World, act: Act| -> World {
        let next = replay
            .next_state(w, act)
            .expect("every action has a next state");
        for (at_us, kind) in sink.lock().expect("not poisoned").drain(..) {
            trace.event(shown_us(at_us), &kind);
        }
        trace.observe(shown_us(next.now_us), true, replay.seen_nodes(&next));
        next
    };
    let mut w = start;
    for (i, (_, act)) in path.iter().enumerate() {
        let Some(act) = act.clone() else {
            break;
        };
        w = run(&w, act);
        let seen = &path.get(i + 1).expect("an action leads to a state").0;
        assert_eq!(
            &w, seen,
            "step {i} of the replay reaches the checker's state"
        );
    }
    let until_us = w.now_us + AFTERMATH_US;
    while let Some(act) = replay.next_fault_free(&w) {
        let next = run(&w, act);
        w = next;
        if w.now_us > until_us {
            break;
        }
    }
    trace.text()
}

/// The recording of the original demo's bug that the dashboard serves
/// (its scenario `original-bug`).
fn original_bug_recording() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontend/recordings/original-bug.jsonl")
}

fn one_transfer() -> Vec<TransferRequest> {
    vec![transfer(0, 1, 60, "t1")]
}

/// Two clients use t1 for different transfers (other amounts, so every
/// ledger entry says which one it belongs to); the coordinator may be
/// killed at any point and a client may retry once, so the re-use or the
/// retry races a restarted coordinator that has not yet heard every node's
/// in-doubt list. Connections deliver in order and writes are fsynced at
/// once: the race is about identity, not about the disk.
fn re_used_id() -> TwoPc {
    let transfers = vec![transfer(0, 1, 60, "t1"), transfer(0, 1, 30, "t1")];
    let budget = Budget {
        kills: 1,
        retries: 1,
        ..Budget::default()
    };
    TwoPc {
        fifo: true,
        sync_at_once: true,
        ..model(2, transfers, budget, 40)
    }
}

/// One node holds both accounts, so each transfer runs in one phase (the
/// node decides alone). Two clients use t1 for different amounts; the
/// coordinator may lose power (a one-phase outcome is not forced in its
/// log, the node remembers it) and a client may retry once.
fn one_phase_re_used_id() -> TwoPc {
    let transfers = vec![transfer(0, 1, 60, "t1"), transfer(0, 1, 30, "t1")];
    let budget = Budget {
        power_cuts: 1,
        retries: 1,
        ..Budget::default()
    };
    TwoPc {
        homes: vec![0, 0],
        ..model(1, transfers, budget, 60)
    }
}

/// Node 0 holds A and B, node 1 holds C: one client sends t1 as a
/// one-phase transfer (A → B), another re-uses t1 for a two-phase one
/// (A → C). The coordinator may be killed twice and a client may retry
/// once, so one node may hold t1 in doubt for one transfer while the other
/// node committed the other under it.
fn one_and_two_phase_under_one_id() -> TwoPc {
    let transfers = vec![transfer(0, 1, 60, "t1"), transfer(0, 2, 30, "t1")];
    let budget = Budget {
        kills: 2,
        retries: 1,
        ..Budget::default()
    };
    TwoPc {
        homes: vec![0, 0, 1],
        fifo: true,
        sync_at_once: true,
        ..model(2, transfers, budget, 40)
    }
}

/// A node may be killed (its page cache survives, and its restart reads
/// it) and then the one machine everything runs on may lose power (what
/// was never fsynced is gone), at any points.
fn kill_then_power_cut() -> TwoPc {
    let budget = Budget {
        kills: 1,
        power_cuts: 1,
        ..Budget::default()
    };
    TwoPc {
        kill_coordinator: false,
        power_cut_each: false,
        fifo: true,
        ..model(2, one_transfer(), budget, 30)
    }
}

/// Any kill -9 (participant or coordinator) at any point, timers in any
/// order, every reordering of messages. For more:
/// `MC_KILLS=2 MC_RETRIES=1 cargo test --release -p shared --test model_check kill_and -- --nocapture`
#[test]
fn two_participants_kill_and_restart_anywhere() {
    let budget = Budget {
        kills: 1,
        ..Budget::default()
    };
    check(
        "2 participants, 1 transfer, 1 kill",
        model(2, one_transfer(), budget, 60),
        None,
        150_000,
    );
}

/// A power cut of one machine (the coordinator's or a node's) or of the
/// one they all run on, at any point: only fsynced records are left.
#[test]
fn two_participants_power_cut_anywhere() {
    let budget = Budget {
        power_cuts: 1,
        ..Budget::default()
    };
    check(
        "2 participants, 1 transfer, 1 power cut",
        model(2, one_transfer(), budget, 30),
        None,
        80_000,
    );
}

/// The page cache: what a killed node had written is read by its restart
/// (and fsynced by its log open); a power cut after that loses nothing it
/// acted on.
#[test]
fn a_kill_then_a_power_cut_loses_nothing_that_was_acted_on() {
    check(
        "2 participants, 1 transfer, kill a node then cut the power",
        kill_then_power_cut(),
        None,
        100_000,
    );
}

/// Either machine may rewrite its log as a checkpoint at any point, and
/// either may be killed before or after: recovery from a checkpoint and
/// the records after it.
#[test]
fn checkpoints_and_kills_anywhere() {
    let budget = Budget {
        kills: 1,
        checkpoints: 1,
        ..Budget::default()
    };
    let model = TwoPc {
        fifo: true,
        sync_at_once: true,
        ..model(2, one_transfer(), budget, 40)
    };
    check(
        "2 participants, 1 transfer, 1 checkpoint + 1 kill",
        model,
        None,
        100_000,
    );
}

#[test]
fn two_participants_message_loss_and_duplication() {
    let budget = Budget {
        drops: 1,
        dups: 1,
        retries: 1,
        ..Budget::default()
    };
    check(
        "2 participants, 1 transfer, 1 drop + 1 duplicate, 1 retry",
        model(2, one_transfer(), budget, 60),
        None,
        100_000,
    );
}

/// Opposite directions over the same accounts: lock waits, wait-die,
/// lock-wait timeouts, vote timeouts. Connections deliver in order and
/// writes are fsynced at once (the one-transfer models cover the disk and
/// every reordering); 20 steps reach a commit and an abort.
#[test]
fn two_participants_two_conflicting_transfers() {
    let transfers = vec![transfer(0, 1, 60, "t1"), transfer(1, 0, 70, "t2")];
    let model = TwoPc {
        fifo: true,
        sync_at_once: true,
        ..model(2, transfers, Budget::default(), 60)
    };
    check(
        "2 participants, 2 conflicting transfers (depth 20)",
        model,
        Some(20),
        80_000,
    );
}

/// Two transfers sharing the middle node, as the previous model.
#[test]
fn three_participants_two_transfers() {
    let transfers = vec![transfer(0, 1, 60, "t1"), transfer(1, 2, 30, "t2")];
    let model = TwoPc {
        fifo: true,
        sync_at_once: true,
        ..model(3, transfers, Budget::default(), 60)
    };
    check(
        "3 participants, 2 transfers (depth 18)",
        model,
        Some(18),
        80_000,
    );
}

#[test]
fn a_re_used_tx_id_races_a_coordinator_restart() {
    check(
        "2 participants, t1 re-used for another transfer, 1 kill, 1 retry",
        re_used_id(),
        None,
        70_000,
    );
}

#[test]
fn a_re_used_tx_id_in_one_phase_after_the_coordinator_lost_power() {
    check(
        "1 participant, t1 re-used in one phase, 1 power cut, 1 retry",
        one_phase_re_used_id(),
        None,
        5_000,
    );
}

/// As the previous model, across one and two phases; 16 steps reach both
/// outcomes, and the coordinator bug the simulation found first (a
/// presumed abort of the two-phase attempt told the one-phase transfer's
/// client "aborted" after its node had committed it) in 13.
#[test]
fn a_tx_id_re_used_across_a_one_phase_and_a_two_phase_transfer() {
    check(
        "2 participants, t1 re-used across one and two phases, 2 kills, 1 retry (depth 16)",
        one_and_two_phase_under_one_id(),
        Some(16),
        100_000,
    );
}

// ----- the checker finds the bugs this protocol once had -----

/// A prepared participant that aborts on its own after a timeout (as the
/// original demo did), with no other fault.
fn original_bug_model() -> TwoPc {
    TwoPc {
        mutants: Mutants {
            abort_in_doubt_after_us: Some(35),
            ..Mutants::default()
        },
        check_liveness: false,
        ..model(2, one_transfer(), Budget::default(), 60)
    }
}

const ATOMIC: &str = "atomic: never applied on one leg and aborted on another";

#[test]
fn the_checker_finds_the_original_demos_bug() {
    // The coordinator decides commit while a node that voted ready aborts
    // on its own: the checker must find the counterexample, with no other
    // fault needed.
    let model = original_bug_model();
    hunt(
        "a participant that aborts in doubt",
        model.clone(),
        "a node that voted ready never aborts on its own",
    );
    hunt("a participant that aborts in doubt", model, ATOMIC);
}

#[test]
fn the_original_demos_bug_replays_as_a_recording_of_atomicity_broken() {
    // The checker's counterexample, replayed through the machines, is the
    // recording the dashboard's scenario shows: prepares, two ready votes,
    // COMMIT forced, one node applies while the other, which voted ready,
    // aborts on its own (and answers the commit with abort), and the total
    // is off by the amount. The committed copy must be this very text.
    let model = original_bug_model();
    let path = counterexample(&model, ATOMIC);
    let note = format!(
        "the model checker's counterexample to \"{ATOMIC}\": the original demo's bug (a prepared node aborts after 35 µs in doubt); one model µs shown as 1 ms"
    );
    let text = recording_of(&model, &path, note);
    if let Some(out) = std::env::var_os("MC_TRACE").filter(|p| !p.is_empty()) {
        std::fs::write(&out, &text).expect("MC_TRACE is writable");
        println!(
            "the counterexample as a recording: {}",
            Path::new(&out).display()
        );
    }

    let run = shared::recording::parse(&text, usize::MAX).expect("a recording");
    assert_eq!(run.header.source, "model-checker");
    let kinds: Vec<&EventKind> = run.events.iter().map(|e| &e.kind).collect();
    assert!(matches!(kinds[0], EventKind::Snapshot(_)));
    assert!(run.events.windows(2).all(|w| w[0].seq < w[1].seq));
    let first = |test: &dyn Fn(&EventKind) -> bool| kinds.iter().position(|k| test(k));
    let prepares = kinds
        .iter()
        .filter(|k| matches!(k, EventKind::PrepareSent { .. }))
        .count();
    assert_eq!(prepares, 2, "both nodes are asked to prepare");
    let ready = |node: String| {
        first(
            &move |k: &EventKind| matches!(k, EventKind::Vote { node: n, vote: shared::api::VoteView::Ready, .. } if *n == node),
        )
    };
    let (ready_0, ready_1) = (ready(node_id(0)), ready(node_id(1)));
    let commit = first(&|k: &EventKind| {
        matches!(k, EventKind::LogForced { node, record, .. }
            if node == shared::events::COORDINATOR && record == shared::fold::COMMIT_RECORD)
    })
    .expect("the COMMIT record is forced");
    assert!(ready_0.is_some_and(|v| v < commit) && ready_1.is_some_and(|v| v < commit));
    assert!(
        !kinds.iter().any(|k| matches!(
            k,
            EventKind::RollbackSent { .. }
                | EventKind::Decision {
                    decision: Decision::Abort,
                    ..
                }
        )),
        "nobody was told to abort"
    );
    let acked = |decision: Decision| -> Vec<String> {
        kinds
            .iter()
            .filter_map(|k| match k {
                EventKind::Ack {
                    node, decision: d, ..
                } if *d == decision => Some(node.clone()),
                _ => None,
            })
            .collect()
    };
    let (applied, aborted) = (acked(Decision::Commit), acked(Decision::Abort));
    assert!(
        !applied.is_empty() && !aborted.is_empty(),
        "one node applied, the other aborted"
    );
    assert!(applied.iter().all(|n| !aborted.contains(n)));
    let last_balances = kinds.iter().rev().find_map(|k| match k {
        EventKind::Balances {
            accounts,
            total_cents,
        } => Some((accounts, *total_cents)),
        _ => None,
    });
    let (accounts, total_cents) = last_balances.expect("the balances changed");
    let amount_cents = one_transfer()[0].amount_cents;
    let initial_cents = BALANCE_CENTS_INITIAL * 2;
    assert!(
        total_cents == initial_cents - amount_cents || total_cents == initial_cents + amount_cents,
        "the total is off by the amount: {total_cents}"
    );
    let aborted_node = &aborted[0];
    let untouched = accounts
        .iter()
        .filter(|a| a.node == *aborted_node)
        .all(|a| a.balance_cents == BALANCE_CENTS_INITIAL);
    assert!(untouched, "the node that aborted never applied its leg");

    let committed = std::fs::read_to_string(original_bug_recording()).unwrap_or_default();
    assert!(
        committed == text,
        "frontend/recordings/original-bug.jsonl is not the counterexample the checker finds now: regenerate it with\n  MC_TRACE=$PWD/frontend/recordings/original-bug.jsonl cargo test -p shared --test model_check the_original_demos_bug\n(from the workspace root: the tests run in shared/)"
    );
}

#[test]
fn the_checker_finds_a_re_used_tx_id_that_picks_up_a_stale_prepared() {
    // A stale PREPARED picked up: a participant that answers a prepare from what it holds under
    // that tx_id, whatever its operations and epoch, behind a restarted
    // coordinator that runs a client's id before hearing the nodes'
    // in-doubt lists: the re-used t1 commits the old debit with the new
    // credit.
    let model = TwoPc {
        mutants: Mutants {
            prepare_identity_unchecked: true,
            no_restart_gate: true,
            ..Mutants::default()
        },
        check_liveness: false,
        ..re_used_id()
    };
    hunt(
        "a stale prepared picked up",
        model,
        "money is conserved, every entry one operation of one request, once",
    );
}

#[test]
fn the_checker_finds_a_presumed_abort_answered_before_it_is_durable() {
    // An unforced presumed abort: a restarted coordinator answers a retry "aborted" from a
    // node's in-doubt report without forcing the PRESUMED ABORT record, so
    // its next incarnation no longer knows the answer it gave.
    let model = TwoPc {
        mutants: Mutants {
            presumed_abort_unforced: true,
            ..Mutants::default()
        },
        check_liveness: false,
        ..re_used_id()
    };
    hunt(
        "a presumed abort not forced",
        model,
        "an answer is durable before the client hears it",
    );
}

#[test]
fn the_checker_finds_a_recovery_that_acts_on_the_page_cache() {
    // A log open without fsync: a restarted node whose log open does not fsync acts on a
    // COMMITTED record that is only in the page cache: it acks it (and
    // the coordinator may forget the transaction) while a power cut would
    // still lose it.
    let model = TwoPc {
        syncs_on_open: false,
        check_liveness: false,
        ..kill_then_power_cut()
    };
    hunt(
        "no fsync on log open",
        model,
        "a vote, ack or commit is sent only once its record is durable",
    );
}

#[test]
fn the_checker_finds_a_re_used_tx_id_answered_from_another_transfers_commit() {
    // A stale PREPARED, the participant's half alone: a node that answers a one-phase
    // commit from the outcome it remembers under that tx_id, whatever its
    // operations: the coordinator lost its (unforced) one-phase record, a
    // client re-uses t1 for another amount and is told "committed" though
    // nothing of its transfer is applied.
    let model = TwoPc {
        mutants: Mutants {
            prepare_identity_unchecked: true,
            ..Mutants::default()
        },
        ..one_phase_re_used_id()
    };
    hunt(
        "a remembered commit answers for another transfer",
        model,
        "once healed, every transaction resolves and every commit is applied on every leg once",
    );
}
