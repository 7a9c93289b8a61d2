//! Exhaustive model checking of the 2PC machines with `stateright`.
//!
//! The model runs the very `Coordinator` and `Participant` the processes
//! run; only the world around them is modelled: a network that is a set of
//! messages (any of them can be delivered next, so every reordering is
//! explored; a bounded number may be dropped or delivered twice), disks
//! whose appended records are lost in a crash unless fsynced, crashes and
//! restarts (durable log kept, everything volatile lost), and a clock that
//! jumps to whichever machine's timer fires next (timers fire in every
//! order). Fault budgets and a time horizon keep the state space finite.
//!
//! Properties: `always` no transaction is applied on one node and aborted on
//! another (or reported aborted); `always` a node that voted ready never
//! aborts on its own; `always` money is conserved (every balance is its
//! opening plus its ledger, none negative, and the total is the initial one
//! whenever no transfer is half applied); `sometimes` a commit, `sometimes`
//! an abort; and bounded liveness: from every reachable state, healing
//! everything and running fault-free resolves every transaction.
//!
//! ```text
//! cargo test -p shared --test model_check -- --nocapture   # prints state counts
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

use stateright::{Checker, Model, Property};

use shared::api::{Outcome, TransferRequest};
use shared::protocol::coordinator::{self as co, Coordinator, CoordinatorConfig, TransferError};
use shared::protocol::participant::{self as pa, Participant, ParticipantConfig};
use shared::protocol::record::{CoordinatorRecord, ParticipantRecord};
use shared::wire::{Decision, Reply, Request, TxId, Vote};

const BALANCE_CENTS_INITIAL: i64 = 100;
const CLUSTER: &str = "mc";

// ----- the modelled world -----

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

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Disk<R> {
    durable: Vec<R>,
    /// (seq, record, sync): the coordinator's driver fsyncs only when a
    /// record asks for it (unforced records become durable with the next
    /// forced one); a participant's also syncs unforced records after a
    /// short delay (a commit's ack waits for its unforced COMMITTED).
    pending: Vec<(u64, R, bool)>,
}

impl<R> Disk<R> {
    fn wants_sync(&self) -> bool {
        self.pending.iter().any(|(_, _, sync)| *sync)
    }

    /// A participant's writer syncs whatever is pending, sooner or later.
    fn wants_lazy_sync(&self) -> bool {
        !self.pending.is_empty()
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

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct World {
    now_us: u64,
    coord: Coordinator,
    coord_disk: Disk<CoordinatorRecord>,
    nodes: Vec<Node>,
    conns: Vec<u64>,
    /// The network: a set, kept sorted by each message's hash so that two
    /// states with the same messages are the same state.
    net: Vec<(u64, Envelope)>,
    submitted: Vec<bool>,
    told: BTreeMap<TxId, Outcome>,
    crashes_left: u8,
    drops_left: u8,
    dups_left: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Act {
    Submit(usize),
    Deliver(usize),
    DeliverTwice(usize),
    Drop(usize),
    Fsync(Option<usize>),
    Tick(Option<usize>),
    CrashNode(usize),
    RestartNode(usize),
    CrashCoordinator,
}

/// The model: the cluster shape, the transfers the clients submit, the
/// fault budgets, the time horizon, and whether the participants carry the
/// original demo's bug.
#[derive(Clone)]
struct TwoPc {
    nodes: usize,
    transfers: Vec<TransferRequest>,
    crashes: u8,
    drops: u8,
    dups: u8,
    horizon_us: u64,
    broken_abort_in_doubt_after_us: Option<u64>,
    /// Check bounded liveness from every state (costly; off for the
    /// counterexample hunt).
    check_liveness: bool,
}

fn node_id(i: usize) -> String {
    format!("{}", 6001 + i)
}

fn account(i: usize) -> String {
    format!("{}", (b'A' + i as u8) as char)
}

impl TwoPc {
    fn participant_config(&self, i: usize) -> ParticipantConfig {
        ParticipantConfig {
            node: node_id(i),
            accounts: vec![(account(i), BALANCE_CENTS_INITIAL)],
            lock_wait_us: 40,
            faults_allowed: false,
            hash_seed: Default::default(),
        }
    }

    fn coordinator_config(&self) -> CoordinatorConfig {
        let nodes = (0..self.nodes).map(node_id).collect();
        let accounts = (0..self.nodes).map(|i| (account(i), node_id(i))).collect();
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
        p.set_unsafe_abort_in_doubt_after_us(self.broken_abort_in_doubt_after_us);
        p
    }

    fn initial(&self) -> World {
        let nodes = (0..self.nodes)
            .map(|i| {
                let init = Participant::init_record(&self.participant_config(i));
                Node {
                    machine: self.recover_node(i, std::slice::from_ref(&init)),
                    up: true,
                    disk: Disk {
                        durable: vec![init],
                        pending: Vec::new(),
                    },
                    voted_ready: BTreeSet::new(),
                    rollback_received: BTreeSet::new(),
                }
            })
            .collect();
        let mut coord = Coordinator::recover(self.coordinator_config(), &[]);
        let epoch = coord.begin_epoch(CLUSTER.into());
        let mut w = World {
            now_us: 0,
            coord,
            coord_disk: Disk {
                durable: vec![epoch],
                pending: Vec::new(),
            },
            nodes,
            conns: vec![0; self.nodes],
            net: Vec::new(),
            submitted: vec![false; self.transfers.len()],
            told: BTreeMap::new(),
            crashes_left: self.crashes,
            drops_left: self.drops,
            dups_left: self.dups,
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
            let pending = w.nodes.iter().any(|n| !n.disk.pending.is_empty());
            if !pending {
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

    fn post(w: &mut World, env: Envelope) {
        let mut h = DefaultHasher::new();
        env.hash(&mut h);
        let key = h.finish();
        if let Err(at) = w.net.binary_search_by(|(k, e)| {
            k.cmp(&key).then_with(|| {
                if *e == env {
                    std::cmp::Ordering::Equal
                } else {
                    std::cmp::Ordering::Less
                }
            })
        }) {
            if !w.net.iter().any(|(_, e)| *e == env) {
                w.net.insert(at, (key, env));
            }
        }
    }

    fn run_node(&self, w: &mut World, i: usize, actions: Vec<pa::Action>) {
        for action in actions {
            match action {
                pa::Action::Send { to, msg } => {
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
                        Self::post(
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
                    w.nodes[i].disk.pending.push((seq, record, sync))
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
                    let i = (0..self.nodes)
                        .find(|i| node_id(*i) == node)
                        .expect("known node");
                    if w.nodes[i].up {
                        let conn = w.conns[i];
                        Self::post(w, Envelope::ToNode { node: i, conn, msg });
                    }
                }
                co::Action::Persist { seq, record, sync } => {
                    w.coord_disk.pending.push((seq, record, sync))
                }
                co::Action::Reply {
                    result: Ok(response),
                    ..
                } => {
                    w.told
                        .entry(response.tx_id.clone())
                        .or_insert(response.outcome);
                }
                co::Action::Reply {
                    result: Err(TransferError::Unavailable(_)),
                    ..
                } => {}
                co::Action::Reply { result: Err(e), .. } => {
                    panic!("unexpected transfer error {e:?}")
                }
                co::Action::Emit(_) => {}
                co::Action::Crash(_) => unreachable!("no crash points are armed in the model"),
            }
        }
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
                let Some(seq) = w.coord_disk.pending.last().map(|(s, _, _)| *s) else {
                    return;
                };
                let moved: Vec<_> = w.coord_disk.pending.drain(..).map(|(_, r, _)| r).collect();
                w.coord_disk.durable.extend(moved);
                let actions = w.coord.handle(w.now_us, co::Input::Durable { seq });
                self.run_coord(w, actions);
            }
            Some(i) => {
                let Some(seq) = w.nodes[i].disk.pending.last().map(|(s, _, _)| *s) else {
                    return;
                };
                let moved: Vec<_> = w.nodes[i]
                    .disk
                    .pending
                    .drain(..)
                    .map(|(_, r, _)| r)
                    .collect();
                w.nodes[i].disk.durable.extend(moved);
                let actions = w.nodes[i]
                    .machine
                    .handle(w.now_us, pa::Input::Durable { seq });
                self.run_node(w, i, actions);
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

    fn crash_node(&self, w: &mut World, i: usize) {
        let node = &mut w.nodes[i];
        node.disk.pending.clear();
        node.machine = self.recover_node(i, &node.disk.durable);
        node.up = false;
        w.net.retain(
            |(_, e)| !matches!(e, Envelope::ToNode { node, .. } | Envelope::ToCoord { node, .. } if *node == i),
        );
        let actions = w
            .coord
            .handle(w.now_us, co::Input::NodeDown { node: node_id(i) });
        self.run_coord(w, actions);
    }

    fn restart_node(&self, w: &mut World, i: usize) {
        let now = w.now_us;
        w.nodes[i].machine.set_recovered_since(now);
        w.nodes[i].up = true;
        self.connect(w, i);
    }

    /// A coordinator crash and restart: the log's durable part survives,
    /// connections and clients are lost, every node reconnects.
    fn crash_coordinator(&self, w: &mut World) {
        w.coord_disk.pending.clear();
        w.coord = Coordinator::recover(self.coordinator_config(), &w.coord_disk.durable);
        let epoch = w.coord.begin_epoch(CLUSTER.into());
        w.coord_disk.durable.push(epoch);
        w.net.clear();
        for i in 0..self.nodes {
            if w.nodes[i].up {
                self.connect(w, i);
            }
        }
    }

    fn submit(&self, w: &mut World, k: usize) {
        w.submitted[k] = true;
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

    fn tx_id(&self, k: usize) -> TxId {
        self.transfers[k]
            .tx_id
            .clone()
            .expect("model transfers carry a tx_id")
    }

    fn legs(&self, k: usize) -> [usize; 2] {
        let node_of = |a: &str| {
            (0..self.nodes)
                .find(|i| account(*i) == a)
                .expect("known account")
        };
        [
            node_of(&self.transfers[k].from),
            node_of(&self.transfers[k].to),
        ]
    }

    fn applied_on(&self, w: &World, k: usize, i: usize) -> bool {
        let tx_id = self.tx_id(k);
        w.nodes[i]
            .machine
            .ledger(&account(i))
            .unwrap_or_default()
            .iter()
            .any(|e| e.tx_id == tx_id)
    }

    fn atomic(&self, w: &World) -> bool {
        (0..self.transfers.len()).all(|k| {
            let tx_id = self.tx_id(k);
            let applied = self.legs(k).iter().any(|&i| self.applied_on(w, k, i));
            let aborted = self
                .legs(k)
                .iter()
                .any(|&i| w.nodes[i].machine.outcome(&tx_id) == Some(Decision::Abort));
            let told_aborted = w.told.get(&tx_id) == Some(&Outcome::Aborted);
            let told_committed = w.told.get(&tx_id) == Some(&Outcome::Committed);
            !(applied && (aborted || told_aborted)) && !(told_committed && aborted)
        })
    }

    fn ready_never_aborts_alone(&self, w: &World) -> bool {
        w.nodes.iter().all(|n| {
            n.voted_ready.iter().all(|t| {
                n.machine.outcome(t) != Some(Decision::Abort) || n.rollback_received.contains(t)
            })
        })
    }

    fn conserved(&self, w: &World) -> bool {
        let mut total = 0;
        for (i, n) in w.nodes.iter().enumerate() {
            let ledger = n.machine.ledger(&account(i)).unwrap_or_default();
            let balance = n
                .machine
                .balances()
                .first()
                .map(|b| b.balance_cents)
                .unwrap_or(-1);
            if balance < 0
                || balance
                    != BALANCE_CENTS_INITIAL + ledger.iter().map(|e| e.delta_cents).sum::<i64>()
            {
                return false;
            }
            total += balance;
        }
        let half_applied = (0..self.transfers.len()).any(|k| {
            let [a, b] = self.legs(k);
            self.applied_on(w, k, a) != self.applied_on(w, k, b)
        });
        half_applied || total == BALANCE_CENTS_INITIAL * self.nodes as i64
    }

    /// Bounded liveness: heal everything, then run fault-free (deliver
    /// every message, fsync, fire due timers) for a bounded time; every
    /// submitted transaction must end resolved on every node.
    fn resolves_when_healed(&self, w: &World) -> bool {
        let mut w = w.clone();
        for i in 0..self.nodes {
            if !w.nodes[i].up {
                self.restart_node(&mut w, i);
            }
        }
        let deadline_us = w.now_us + 400;
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
        w.coord.active_count() == 0
            && w.nodes
                .iter()
                .all(|n| n.machine.active_count() == 0 && n.machine.locked_accounts().is_empty())
            && (0..self.transfers.len()).all(|k| {
                let [a, b] = self.legs(k);
                self.applied_on(w, k, a) == self.applied_on(w, k, b)
            })
    }
}

impl Model for TwoPc {
    type State = World;
    type Action = Act;

    fn init_states(&self) -> Vec<World> {
        vec![self.initial()]
    }

    fn actions(&self, w: &World, actions: &mut Vec<Act>) {
        for (k, done) in w.submitted.iter().enumerate() {
            if !done {
                actions.push(Act::Submit(k));
            }
        }
        for m in 0..w.net.len() {
            actions.push(Act::Deliver(m));
            if w.dups_left > 0 {
                actions.push(Act::DeliverTwice(m));
            }
            if w.drops_left > 0 {
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
            if n.up && w.crashes_left > 0 {
                actions.push(Act::CrashNode(i));
            }
            if !n.up {
                actions.push(Act::RestartNode(i));
            }
        }
        if w.crashes_left > 0 {
            actions.push(Act::CrashCoordinator);
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
                w.dups_left -= 1;
                let env = w.net[m].1.clone();
                self.deliver(&mut w, env);
            }
            Act::Drop(m) => {
                w.drops_left -= 1;
                w.net.remove(m);
            }
            Act::Fsync(k) => self.fsync(&mut w, k),
            Act::Tick(k) => self.tick(&mut w, k),
            Act::CrashNode(i) => {
                w.crashes_left -= 1;
                self.crash_node(&mut w, i);
            }
            Act::RestartNode(i) => self.restart_node(&mut w, i),
            Act::CrashCoordinator => {
                w.crashes_left -= 1;
                self.crash_coordinator(&mut w);
            }
        }
        Some(w)
    }

    fn within_boundary(&self, w: &World) -> bool {
        w.now_us <= self.horizon_us
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(
                "atomic: never applied on one node and aborted on another",
                |m: &TwoPc, w: &World| m.atomic(w),
            ),
            Property::always(
                "a node that voted ready never aborts on its own",
                |m: &TwoPc, w: &World| m.ready_never_aborts_alone(w),
            ),
            Property::always("money is conserved", |m: &TwoPc, w: &World| m.conserved(w)),
            Property::always(
                "once healed, every transaction resolves",
                |m: &TwoPc, w: &World| !m.check_liveness || m.resolves_when_healed(w),
            ),
            Property::sometimes("a transfer commits", |m: &TwoPc, w: &World| {
                (0..m.transfers.len()).any(|k| w.told.get(&m.tx_id(k)) == Some(&Outcome::Committed))
            }),
            Property::sometimes("a transfer aborts", |m: &TwoPc, w: &World| {
                (0..m.transfers.len()).any(|k| w.told.get(&m.tx_id(k)) == Some(&Outcome::Aborted))
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

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Checks every property exhaustively (within the bounds, or up to
/// `depth_max`), prints the state count and pins a floor under it.
fn check(name: &str, model: TwoPc, depth_max: Option<usize>, states_min: usize) {
    let began = Instant::now();
    let mut builder = model.checker().threads(threads());
    if let Some(depth) = depth_max {
        builder = builder.target_max_depth(depth);
    }
    let checker = builder.spawn_bfs().join();
    println!(
        "{name}: {} states ({} unique), max depth {}, in {:.1}s",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        began.elapsed().as_secs_f64()
    );
    if depth_max.is_none() {
        checker.assert_properties();
    } else {
        // A depth-bounded run is incomplete by design: no counterexample
        // may exist within the bound.
        for p in checker.model().properties() {
            match p.expectation {
                stateright::Expectation::Sometimes => {
                    // A commit needs more steps than some bounds allow.
                    println!(
                        "{name}: \"{}\" reached: {}",
                        p.name,
                        checker.discovery(p.name).is_some()
                    );
                }
                _ => {
                    if let Some(path) = checker.discovery(p.name) {
                        panic!("{name}: \"{}\" violated:\n{path}", p.name);
                    }
                }
            }
        }
    }
    let unique = checker.unique_state_count();
    assert!(
        unique >= states_min,
        "{name}: only {unique} states: the model is broken"
    );
}

fn two_nodes(crashes: u8, drops: u8, dups: u8) -> TwoPc {
    TwoPc {
        nodes: 2,
        transfers: vec![transfer(0, 1, 60, "t1")],
        crashes: env_u64("MC_CRASHES").map_or(crashes, |v| v as u8),
        drops: env_u64("MC_DROPS").map_or(drops, |v| v as u8),
        dups: env_u64("MC_DUPS").map_or(dups, |v| v as u8),
        horizon_us: env_u64("MC_HORIZON_US").unwrap_or(60),
        broken_abort_in_doubt_after_us: None,
        check_liveness: true,
    }
}

/// Any crash (participant or coordinator) at any point, timers in any order.
/// For everything at once (1.26 M states, ~4 min):
/// `MC_CRASHES=1 MC_DROPS=1 MC_DUPS=1 cargo test -p shared --test model_check two_participants_crash -- --nocapture`
#[test]
fn two_participants_crash_and_restart_anywhere() {
    check(
        "2 participants, 1 transfer, 1 crash",
        two_nodes(1, 0, 0),
        None,
        50_000,
    );
}

#[test]
fn two_participants_message_loss_and_duplication() {
    check(
        "2 participants, 1 transfer, 1 drop + 1 duplicate",
        two_nodes(0, 1, 1),
        None,
        10_000,
    );
}

#[test]
fn two_participants_two_conflicting_transfers() {
    // Opposite directions over the same accounts: lock waits, wait-die,
    // lock-wait timeouts, vote timeouts, with a crash; bounded depth.
    let model = TwoPc {
        transfers: vec![transfer(0, 1, 60, "t1"), transfer(1, 0, 70, "t2")],
        ..two_nodes(1, 0, 0)
    };
    check(
        "2 participants, 2 transfers, 1 crash (depth 10)",
        model,
        Some(10),
        2_000,
    );
}

#[test]
fn three_participants_two_transfers() {
    let model = TwoPc {
        nodes: 3,
        transfers: vec![transfer(0, 1, 60, "t1"), transfer(1, 2, 30, "t2")],
        ..two_nodes(1, 0, 0)
    };
    check(
        "3 participants, 2 transfers, 1 crash (depth 9)",
        model,
        Some(9),
        2_000,
    );
}

#[test]
fn the_checker_finds_the_original_demos_bug() {
    // A prepared participant that aborts on its own after a timeout (as the
    // original demo did) while the coordinator decides commit: the checker
    // must find the counterexample, with no other fault needed.
    let model = TwoPc {
        broken_abort_in_doubt_after_us: Some(35),
        check_liveness: false,
        ..two_nodes(0, 0, 0)
    };
    let began = Instant::now();
    let checker = model.checker().threads(threads()).spawn_bfs().join();
    println!(
        "broken protocol: {} unique states in {:.1}s",
        checker.unique_state_count(),
        began.elapsed().as_secs_f64()
    );
    let path = checker
        .discovery("a node that voted ready never aborts on its own")
        .expect("the checker must catch a participant that aborts in doubt");
    println!("counterexample: {:?}", path.into_actions());
    let atomicity = checker
        .discovery("atomic: never applied on one node and aborted on another")
        .expect("and the atomicity violation it causes");
    println!("atomicity counterexample: {:?}", atomicity.into_actions());
}
