//! Everything the HTTP handlers, the engine and the background tasks share.
//! Only what outlives a coordinator crash lives here: configuration, the
//! supervised processes, the network's fault settings, the event history.
//! The engine's volatile state lives in the engine and dies with it.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use shared::api::{CoordinatorCrashRequest, Faults};
use shared::auth::ClusterSecret;
use shared::protocol::coordinator::DemoFaults;
use shared::wire::{NodeId, NodeStatus, Query, QueryResult};

use crate::config::Config;
use crate::demo::DemoSettings;
use crate::engine::{Command, EngineContext, EngineHandle};
use crate::hub::Hub;
use crate::supervisor::Supervisor;
use crate::transport::{LinkFaults, QueryError, Refusals, Transport};

pub struct App {
    pub config: Arc<Config>,
    pub supervisor: Supervisor,
    pub hub: Arc<Hub>,
    pub links: Arc<LinkFaults>,
    pub engine: Arc<EngineHandle>,
    pub demo: Arc<DemoSettings>,
    /// Last status each node reported (shown while it does not answer).
    pub last_known: Mutex<BTreeMap<NodeId, NodeStatus>>,
    /// Read-only connections for status and ledger queries. They live
    /// outside the engine, so the dashboard still sees the nodes (and their
    /// in-doubt transactions) while the engine is crashed; link faults apply
    /// to them as to the engine's.
    pub observer: std::sync::OnceLock<Transport>,
    /// The cluster secret every connection to a node proves.
    pub secret: Arc<ClusterSecret>,
    /// Why each node refused this coordinator, while it does.
    pub refusals: Arc<Refusals>,
    /// The last id given to a held message (ids outlive an engine crash).
    pub held_ids: Arc<AtomicU64>,
    /// The dashboard's chaos run (demo mode), current or last.
    pub chaos: crate::chaos::page::ChaosRuns,
}

impl App {
    pub fn new(config: Config, secret: ClusterSecret) -> Arc<App> {
        let secret = Arc::new(secret);
        let supervisor = Supervisor::new(&config, secret.clone());
        Arc::new(App {
            supervisor,
            hub: Arc::new(Hub::new()),
            links: Arc::new(LinkFaults::default()),
            engine: Arc::new(EngineHandle::new()),
            demo: Arc::new(DemoSettings::default()),
            last_known: Mutex::new(BTreeMap::new()),
            observer: std::sync::OnceLock::new(),
            secret,
            refusals: Arc::new(Refusals::default()),
            held_ids: Arc::new(AtomicU64::new(0)),
            chaos: crate::chaos::page::ChaosRuns::default(),
            config: Arc::new(config),
        })
    }

    /// What the engine needs of this, and nothing else.
    pub fn engine_context(&self) -> EngineContext {
        EngineContext {
            config: self.config.clone(),
            hub: self.hub.clone(),
            handle: self.engine.clone(),
            demo: self.demo.clone(),
            supervisor: self.supervisor.clone(),
            links: self.links.clone(),
            secret: self.secret.clone(),
            refusals: self.refusals.clone(),
            held_ids: self.held_ids.clone(),
        }
    }

    /// Asks a node a read-only question (status, ledger), on the observer's
    /// connection. With `--ack-wait-ms 0` a client is told "committed" once
    /// the commits are sent, before the nodes ack them; then, while the
    /// engine runs and is connected to the node, the question travels on
    /// the engine's own connection instead: a node handles one connection's
    /// messages in order, so the answer reflects every commit sent before,
    /// and the client reads its transfer back. (Not by default: reads would
    /// then share the fate of the engine's connection, e.g. its TCP
    /// retransmissions backing off after a real partition heals, and by
    /// default a node has applied a commit before its client is answered.)
    pub async fn query_node(&self, node: &str, query: Query) -> Result<QueryResult, QueryError> {
        if self.config.args.ack_wait_ms == 0 {
            if let Some(live) = self.engine.live() {
                if live.transport.is_connected(node) {
                    return live.transport.query(node, query).await;
                }
            }
        }
        match self.observer.get() {
            Some(observer) => observer.query(node, query).await,
            None => Err(QueryError::NotConnected(node.to_string())),
        }
    }

    pub fn demo_mode(&self) -> bool {
        self.config.args.demo
    }

    /// The faults the coordinator machine itself acts on.
    pub fn demo_faults(&self) -> DemoFaults {
        self.demo.demo_faults()
    }

    pub fn faults(&self) -> Faults {
        Faults {
            prepare_crash_probability: self.demo.prepare_crash_probability(),
            phase_pause_ms: self.demo.phase_pause_ms(),
            coordinator_crash: self.demo.coordinator_crash(),
            links: self.links.all(),
            hold_messages: self.demo.hold_messages(),
        }
    }

    pub fn update_faults(&self, probability: Option<f64>, phase_pause_ms: Option<u64>) {
        self.demo.update(probability, phase_pause_ms);
        self.engine
            .try_command(Command::SetFaults(self.demo_faults()));
    }

    /// Starts or stops holding every protocol message; stopping lets every
    /// held message go, in order.
    pub fn set_hold_messages(&self, hold: bool) {
        self.demo.set_hold_messages(hold);
        self.engine.try_command(Command::SetHold(hold));
    }

    pub fn arm_coordinator_crash(&self, request: CoordinatorCrashRequest) {
        self.demo.arm_coordinator_crash(request);
        self.engine
            .try_command(Command::SetFaults(self.demo_faults()));
    }

    /// Disarms a crash that has not fired yet; false if none was armed.
    pub fn disarm_coordinator_crash(&self) -> bool {
        let was_armed = self.demo.take_coordinator_crash().is_some();
        self.engine
            .try_command(Command::SetFaults(self.demo_faults()));
        was_armed
    }

    pub fn remember_status(&self, status: NodeStatus) {
        self.last_known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(status.node.clone(), status);
    }

    pub fn last_status(&self, node: &str) -> Option<NodeStatus> {
        self.last_known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .cloned()
    }
}
