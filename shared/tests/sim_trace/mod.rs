//! The simulation's trace in the recording format (`shared::recording`),
//! so that a seed is watched in the dashboard like a live run:
//!
//!   SIM_SEED=<n> SIM_TRACE=out.jsonl cargo test -p shared --test simulation -- --nocapture
//!
//! It holds a snapshot of the cluster as it starts, every event the real
//! coordinator machine emits, and what the coordinator's watchers would
//! publish: a node going down or up, balances and each node's in-doubt
//! transactions and locks when they change. Times are the simulated clock
//! (`ts_ms` counts from the simulated epoch).
//!
//! The model checker writes its counterexamples with the same writer
//! ([`Trace::labelled`], `MC_TRACE`): the dashboard's scenario of the
//! original demo's bug replays one.

#![allow(dead_code)] // each test crate uses a different subset

use std::collections::BTreeMap;
use std::path::PathBuf;

use shared::api::{
    AccountView, ClusterView, ComponentStatus, CoordinatorView, Faults, NodeView, Stats,
};
use shared::events::{Event, EventKind, Snapshot};
use shared::recording::{self, Header};
use shared::wire::{AccountBalance, AccountId, NodeId, TxId};

/// What the trace sees of one node after a step.
pub struct NodeSeen {
    pub id: NodeId,
    pub up: bool,
    pub balances: Vec<AccountBalance>,
    pub in_doubt: Vec<TxId>,
    pub locked: Vec<AccountId>,
}

#[derive(PartialEq)]
struct Known {
    up: bool,
    balances: Vec<AccountBalance>,
    state: (Vec<TxId>, Vec<AccountId>),
}

pub struct Trace {
    /// Where `write` puts it (the simulation's `SIM_TRACE`).
    path: Option<PathBuf>,
    header: Header,
    events: Vec<Event>,
    seq: u64,
    nodes: BTreeMap<NodeId, Known>,
    coordinator_up: bool,
}

/// The file `SIM_TRACE` names, if any.
pub fn path_from_env() -> Option<PathBuf> {
    std::env::var_os("SIM_TRACE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

fn ms(now_us: u64) -> u64 {
    now_us / 1_000
}

fn status(up: bool) -> ComponentStatus {
    if up {
        ComponentStatus::Up
    } else {
        ComponentStatus::Down
    }
}

impl Trace {
    /// A seed's trace, written to `path`, that starts with a snapshot of
    /// `nodes` as they are now.
    pub fn new(path: PathBuf, seed: u64, now_us: u64, nodes: Vec<NodeSeen>) -> Trace {
        let header = Header::new("simulation", Some(format!("seed {seed}")));
        let mut trace = Trace::labelled(header, now_us, nodes);
        trace.path = Some(path);
        trace
    }

    /// A trace under `header` (who wrote it, and a note) that starts with a
    /// snapshot of `nodes` as they are now; read it with [`Trace::text`].
    pub fn labelled(header: Header, now_us: u64, nodes: Vec<NodeSeen>) -> Trace {
        let total_cents: i64 = nodes
            .iter()
            .flat_map(|n| n.balances.iter().map(|b| b.balance_cents))
            .sum();
        let cluster = ClusterView {
            coordinator: CoordinatorView {
                status: ComponentStatus::Up,
                demo_mode: true,
                cluster: None,
                epoch: None,
            },
            nodes: nodes
                .iter()
                .map(|n| NodeView {
                    id: n.id.clone(),
                    addr: "simulated".to_string(),
                    status: status(n.up),
                    accounts: n.balances.clone(),
                    in_doubt: n.in_doubt.clone(),
                    in_doubt_detail: Vec::new(),
                    locked_accounts: n.locked.clone(),
                    link: Default::default(),
                    supervised: true,
                    pid: None,
                    refused: None,
                })
                .collect(),
            total_cents,
            expected_total_cents: total_cents,
            total_complete: true,
        };
        let mut trace = Trace {
            path: None,
            header,
            events: Vec::new(),
            seq: 0,
            nodes: BTreeMap::new(),
            coordinator_up: true,
        };
        let snapshot = Snapshot {
            cluster,
            transactions: Vec::new(),
            stats: Stats::default(),
            faults: Faults::default(),
        };
        trace.events.push(Event {
            seq: 0,
            ts_ms: ms(now_us),
            kind: EventKind::Snapshot(Box::new(snapshot)),
        });
        for n in nodes {
            trace.nodes.insert(
                n.id,
                Known {
                    up: n.up,
                    balances: n.balances,
                    state: (n.in_doubt, n.locked),
                },
            );
        }
        trace
    }

    /// An event the coordinator machine emitted.
    pub fn event(&mut self, now_us: u64, kind: &EventKind) {
        self.push(now_us, kind.clone());
    }

    fn push(&mut self, now_us: u64, kind: EventKind) {
        self.seq += 1;
        self.events.push(Event {
            seq: self.seq,
            ts_ms: ms(now_us),
            kind,
        });
    }

    /// What changed since the last step, as the coordinator's watchers
    /// would publish it.
    pub fn observe(&mut self, now_us: u64, coordinator_up: bool, nodes: Vec<NodeSeen>) {
        if coordinator_up != self.coordinator_up {
            self.coordinator_up = coordinator_up;
            self.push(
                now_us,
                EventKind::CoordinatorStatus {
                    status: status(coordinator_up),
                },
            );
        }
        let mut moved = false;
        for n in nodes {
            let seen = Known {
                up: n.up,
                balances: n.balances,
                state: (n.in_doubt, n.locked),
            };
            let Some(known) = self.nodes.remove(&n.id) else {
                continue;
            };
            if known.up != seen.up {
                let kind = EventKind::NodeStatus {
                    node: n.id.clone(),
                    status: status(seen.up),
                };
                self.push(now_us, kind);
            }
            if known.state != seen.state {
                let kind = EventKind::NodeState {
                    node: n.id.clone(),
                    in_doubt: seen.state.0.clone(),
                    locked_accounts: seen.state.1.clone(),
                };
                self.push(now_us, kind);
            }
            moved |= known.balances != seen.balances;
            self.nodes.insert(n.id, seen);
        }
        if moved {
            let accounts: Vec<AccountView> = self
                .nodes
                .iter()
                .flat_map(|(node, known)| {
                    known.balances.iter().map(|b| AccountView {
                        id: b.id.clone(),
                        node: node.clone(),
                        balance_cents: b.balance_cents,
                    })
                })
                .collect();
            let total_cents = accounts.iter().map(|a| a.balance_cents).sum();
            self.push(
                now_us,
                EventKind::Balances {
                    accounts,
                    total_cents,
                },
            );
        }
    }

    /// The trace as the text of a recording file.
    pub fn text(&self) -> String {
        recording::to_text(&self.header, &self.events)
    }

    /// Writes the trace to the path it was made with; says where.
    pub fn write(&self) {
        let Some(path) = &self.path else {
            return;
        };
        let note = self.header.note.as_deref().unwrap_or("the run");
        match std::fs::write(path, self.text()) {
            Ok(()) => println!(
                "trace of {note}: {} events in {} (import it in the dashboard)",
                self.events.len(),
                path.display()
            ),
            Err(e) => println!("cannot write the trace to {}: {e}", path.display()),
        }
    }
}
