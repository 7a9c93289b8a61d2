//! Everything the HTTP handlers, the engine and the background tasks share.
//! Only what outlives a coordinator crash lives here: configuration, the
//! supervised processes, the network's fault settings, the event history.
//! The engine's volatile state lives in the engine and dies with it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use shared::api::{ComponentStatus, CoordinatorCrashRequest, Faults};
use shared::auth::ClusterSecret;
use shared::protocol::coordinator::DemoFaults;
use shared::protocol::record::Identity;
use shared::wire::{NodeId, NodeStatus, Query, QueryResult};
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::engine::Command;
use crate::hub::Hub;
use crate::supervisor::Supervisor;
use crate::transport::{LinkFaults, QueryError, Transport};

pub struct App {
    pub config: Config,
    pub supervisor: Supervisor,
    pub hub: Hub,
    pub links: Arc<LinkFaults>,
    pub engine: EngineHandle,
    demo: Mutex<DemoState>,
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
}

/// The latest refusal of each node that refuses this coordinator (another
/// cluster, an older epoch): shown in `/api/cluster` and logged.
#[derive(Default)]
pub struct Refusals {
    by_node: Mutex<BTreeMap<NodeId, String>>,
}

impl Refusals {
    /// Records `node`'s refusal; true if it is new (worth logging).
    pub fn set(&self, node: &str, message: &str) -> bool {
        let mut by_node = self.by_node.lock().unwrap_or_else(|e| e.into_inner());
        by_node
            .insert(node.to_string(), message.to_string())
            .as_deref()
            != Some(message)
    }

    pub fn clear(&self, node: &str) {
        self.by_node
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node);
    }

    pub fn get(&self, node: &str) -> Option<String> {
        self.by_node
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .cloned()
    }
}

#[derive(Debug, Clone, Default)]
struct DemoState {
    prepare_crash_probability: f64,
    phase_pause_ms: u64,
    coordinator_crash: Option<CoordinatorCrashRequest>,
}

impl App {
    pub fn new(config: Config, secret: ClusterSecret) -> Arc<App> {
        let secret = Arc::new(secret);
        let supervisor = Supervisor::new(&config, secret.clone());
        let hub = Hub::new();
        Arc::new(App {
            supervisor,
            hub,
            links: Arc::new(LinkFaults::default()),
            engine: EngineHandle::new(),
            demo: Mutex::new(DemoState::default()),
            last_known: Mutex::new(BTreeMap::new()),
            observer: std::sync::OnceLock::new(),
            secret,
            refusals: Arc::new(Refusals::default()),
            config,
        })
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

    fn demo(&self) -> std::sync::MutexGuard<'_, DemoState> {
        self.demo.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The faults the coordinator machine itself acts on.
    pub fn demo_faults(&self) -> DemoFaults {
        let d = self.demo();
        DemoFaults {
            crash_at: d.coordinator_crash.as_ref().map(|c| c.at),
            phase_pause_us: d.phase_pause_ms.saturating_mul(1000),
        }
    }

    pub fn prepare_crash_probability(&self) -> f64 {
        self.demo().prepare_crash_probability
    }

    pub fn faults(&self) -> Faults {
        let d = self.demo();
        Faults {
            prepare_crash_probability: d.prepare_crash_probability,
            phase_pause_ms: d.phase_pause_ms,
            coordinator_crash: d.coordinator_crash.clone(),
            links: self.links.all(),
        }
    }

    pub fn update_faults(&self, probability: Option<f64>, phase_pause_ms: Option<u64>) {
        {
            let mut d = self.demo();
            if let Some(p) = probability {
                d.prepare_crash_probability = p;
            }
            if let Some(ms) = phase_pause_ms {
                d.phase_pause_ms = ms;
            }
        }
        self.engine
            .try_command(Command::SetFaults(self.demo_faults()));
    }

    pub fn arm_coordinator_crash(&self, request: CoordinatorCrashRequest) {
        self.demo().coordinator_crash = Some(request);
        self.engine
            .try_command(Command::SetFaults(self.demo_faults()));
    }

    /// Disarms a crash that has not fired yet; false if none was armed.
    pub fn disarm_coordinator_crash(&self) -> bool {
        let was_armed = self.demo().coordinator_crash.take().is_some();
        self.engine
            .try_command(Command::SetFaults(self.demo_faults()));
        was_armed
    }

    /// The armed crash fired: disarm it and say how long to stay down.
    pub fn take_coordinator_crash(&self) -> Option<CoordinatorCrashRequest> {
        self.demo().coordinator_crash.take()
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

/// What the rest of the process sees of the engine: a command channel while
/// it is up, its status, and a few gauges.
pub struct EngineHandle {
    live: RwLock<Option<Live>>,
    /// The running incarnation's cluster and epoch.
    identity: RwLock<Option<Identity>>,
    status: watch::Sender<ComponentStatus>,
    pub in_flight: AtomicU64,
    pub log_forces: AtomicU64,
}

#[derive(Clone)]
pub struct Live {
    pub commands: mpsc::Sender<Command>,
    pub transport: Transport,
}

impl EngineHandle {
    fn new() -> EngineHandle {
        let (status, _) = watch::channel(ComponentStatus::Recovering);
        EngineHandle {
            live: RwLock::new(None),
            identity: RwLock::new(None),
            status,
            in_flight: AtomicU64::new(0),
            log_forces: AtomicU64::new(0),
        }
    }

    pub fn live(&self) -> Option<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn identity(&self) -> Option<Identity> {
        self.identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_identity(&self, identity: Option<Identity>) {
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = identity;
    }

    pub fn set_live(&self, live: Option<Live>) {
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = live;
    }

    pub fn status(&self) -> ComponentStatus {
        *self.status.borrow()
    }

    pub fn set_status(&self, status: ComponentStatus) {
        self.status.send_replace(status);
    }

    /// Sends a command without waiting; false if the engine is down or busy.
    pub fn try_command(&self, cmd: Command) -> bool {
        self.live()
            .is_some_and(|l| l.commands.try_send(cmd).is_ok())
    }

    pub fn gauge(&self, gauge: &AtomicU64) -> u64 {
        gauge.load(Ordering::Relaxed)
    }
}
