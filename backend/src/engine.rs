//! The engine: a thin driver loop around the pure `Coordinator` machine.
//!
//! It owns everything volatile: the machine, the decision log's writer, the
//! connections to the nodes, the waiting HTTP clients and the clock. Each
//! turn reads inputs (commands, node messages, durability notices, timers),
//! feeds them to the machine and runs the resulting actions in order.
//!
//! In step mode's hold (demo mode), protocol messages both ways stop here,
//! between the machine and the network (`crate::held`): a person lets each
//! one go, drops, duplicates or delays it. The machine never knows; to it a
//! held message is one that is slow to arrive.
//!
//! An injected coordinator crash ends the loop: all of it is dropped (the
//! connections close, waiting clients get 503), and [`supervise`] starts a
//! new engine from the log after the requested pause, exactly as a restarted
//! process would. A real `kill -9` of the process takes the same recovery
//! path at the next start.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use shared::api::{
    ComponentStatus, CrashPoint, HeldMessages, MessageAction, TransferRequest, TransferResponse,
};
use shared::auth::{Claim, ClusterSecret};
use shared::events::EventKind;
use shared::fold::PREPARED_RECORD;
use shared::limits::{
    COORDINATOR_COMMANDS_QUEUED_MAX, COORDINATOR_DRAIN_PER_TURN_MAX,
    COORDINATOR_ENGINE_START_RETRY_MS, COORDINATOR_NODE_EVENTS_QUEUED_MAX,
};
use shared::log::file::LogFile;
use shared::log::writer::{GroupCommitWriter, Records, WriteCmd};
use shared::log::CheckpointPolicy;
use shared::protocol::coordinator::{
    Action, ActiveTx, ClientId, Coordinator, CoordinatorConfig, DemoFaults, Input, TransferError,
};
use shared::protocol::record::{CoordinatorRecord, Identity};
use shared::wire::{NodeId, ParticipantCrashPoint, PeerRole, Request};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::demo::DemoSettings;
use crate::held::{dropped_event, released_event, Held, HeldMessage, Hold, Payload};
use crate::hub::Hub;
use crate::supervisor::Supervisor;
use crate::transport::{LinkAuth, LinkFaults, NodeEvent, Refusals, Transport};

const LOG_NAME: &str = "coordinator.log";

pub type TransferReply = Result<TransferResponse, TransferError>;

pub enum Command {
    Transfer {
        request: TransferRequest,
        reply: oneshot::Sender<TransferReply>,
    },
    SetFaults(DemoFaults),
    Active {
        reply: oneshot::Sender<Vec<ActiveTx>>,
    },
    Lookup {
        tx_id: String,
        reply: oneshot::Sender<Option<TransferResponse>>,
    },
    /// A finished transaction with the transfer it was (`None` for a
    /// presumed abort: the log never knew the transfer).
    Finished {
        tx_id: String,
        reply: oneshot::Sender<Option<(Option<TransferRequest>, TransferResponse)>>,
    },
    /// Step mode's hold on or off (off lets every held message go).
    SetHold(bool),
    /// The held messages.
    Held {
        reply: oneshot::Sender<HeldMessages>,
    },
    /// Lets held messages go (or drops them); replies with their ids.
    Release {
        which: Release,
        action: MessageAction,
        delay_ms: u64,
        reply: oneshot::Sender<Vec<u64>>,
    },
}

/// Which held messages a [`Command::Release`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    One(u64),
    /// The oldest; with `phase`, its whole step of its transaction.
    Next {
        phase: bool,
    },
}

/// What the rest of the process sees of the engine: a command channel while
/// it is up, its status, and a few gauges.
pub struct EngineHandle {
    live: RwLock<Option<Live>>,
    /// The running incarnation's cluster and epoch.
    identity: RwLock<Option<Identity>>,
    /// Nodes that have not yet reported their in-doubt transactions to the
    /// running incarnation (transfers with a client's id wait for them).
    unreconciled: RwLock<std::collections::BTreeSet<String>>,
    status: watch::Sender<ComponentStatus>,
    pub in_flight: AtomicU64,
    pub log_forces: AtomicU64,
}

#[derive(Clone)]
pub struct Live {
    pub commands: mpsc::Sender<Command>,
    pub transport: Transport,
}

impl Default for EngineHandle {
    fn default() -> EngineHandle {
        EngineHandle::new()
    }
}

impl EngineHandle {
    pub fn new() -> EngineHandle {
        let (status, _) = watch::channel(ComponentStatus::Recovering);
        EngineHandle {
            live: RwLock::new(None),
            identity: RwLock::new(None),
            unreconciled: RwLock::new(std::collections::BTreeSet::new()),
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

    /// Whether the running incarnation has heard `node`'s in-doubt list.
    pub fn reconciled(&self, node: &str) -> bool {
        !self
            .unreconciled
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(node)
    }

    fn set_unreconciled(&self, nodes: &std::collections::BTreeSet<String>) {
        let mut current = self.unreconciled.write().unwrap_or_else(|e| e.into_inner());
        if *current != *nodes {
            current.clone_from(nodes);
        }
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

/// What the engine needs of the process around it: what outlives an
/// engine crash (configuration, event hub, demo settings, supervised
/// processes, link faults, the cluster secret) and its handle.
#[derive(Clone)]
pub struct EngineContext {
    pub config: Arc<Config>,
    pub hub: Arc<Hub>,
    pub handle: Arc<EngineHandle>,
    pub demo: Arc<DemoSettings>,
    pub supervisor: Supervisor,
    pub links: Arc<LinkFaults>,
    pub secret: Arc<ClusterSecret>,
    pub refusals: Arc<Refusals>,
    pub held_ids: Arc<AtomicU64>,
}

enum Exit {
    Crashed(CrashPoint),
    Shutdown,
    Failed(anyhow::Error),
}

/// Runs engines until shutdown: start from the log, run, and after an
/// injected crash, start again.
pub async fn supervise(app: EngineContext, mut shutdown: watch::Receiver<bool>) {
    loop {
        set_status(&app, ComponentStatus::Recovering);
        let exit = match Engine::start(app.clone()).await {
            Ok(engine) => {
                set_status(&app, ComponentStatus::Up);
                engine.run(&mut shutdown).await
            }
            Err(e) => Exit::Failed(e),
        };
        app.handle.set_live(None);
        app.handle
            .in_flight
            .store(0, std::sync::atomic::Ordering::Relaxed);
        set_status(&app, ComponentStatus::Down);
        let pause_ms = match exit {
            Exit::Shutdown => return,
            Exit::Crashed(point) => {
                let pause = app
                    .demo
                    .take_coordinator_crash()
                    .map(|c| c.restart_after_ms)
                    .unwrap_or(shared::limits::RESTART_AFTER_MS_DEFAULT);
                tracing::warn!(
                    ?point,
                    pause_ms = pause,
                    "coordinator engine crashed (injected); restarting from its log"
                );
                pause
            }
            Exit::Failed(e) => {
                tracing::error!("coordinator engine failed: {e:#}");
                COORDINATOR_ENGINE_START_RETRY_MS
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(pause_ms)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn set_status(app: &EngineContext, status: ComponentStatus) {
    if app.handle.status() != status {
        app.handle.set_status(status);
        app.hub.publish(EventKind::CoordinatorStatus { status });
    }
}

/// Microseconds since the Unix epoch, never going backwards.
struct Clock {
    last_us: u64,
}

impl Clock {
    fn now_us(&mut self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        self.last_us = self.last_us.max(wall);
        self.last_us
    }

    fn instant_at(&mut self, at_us: u64) -> tokio::time::Instant {
        let now_us = self.now_us();
        tokio::time::Instant::now() + Duration::from_micros(at_us.saturating_sub(now_us))
    }
}

struct Engine {
    app: EngineContext,
    machine: Coordinator,
    writer: GroupCommitWriter,
    transport: Transport,
    _connections: JoinSet<()>,
    commands: mpsc::Receiver<Command>,
    node_events: mpsc::Receiver<NodeEvent>,
    durable: watch::Receiver<u64>,
    write_error: watch::Receiver<Option<String>>,
    clients: HashMap<ClientId, oneshot::Sender<TransferReply>>,
    next_client: ClientId,
    clock: Clock,
    crashed: Option<CrashPoint>,
    failed: Option<anyhow::Error>,
    /// Log records produced this turn, handed to the writer together at its
    /// end (in seq order) so that they share one batch and one fdatasync.
    /// Nothing waits on them before that: sends that depend on a record are
    /// released by the machine only after `Durable`.
    log_batch: Vec<WriteCmd>,
    /// When to checkpoint the decision log.
    checkpoint: CheckpointPolicy,
    /// Events produced this turn, published together at its end (one hub
    /// lock and one timestamp for all), before any HTTP task runs again.
    events: Vec<EventKind>,
    /// How many nodes were unreconciled when the handle last heard.
    unreconciled_seen: usize,
    /// Log forces of the incarnations before this one (the handle's count
    /// runs for the whole process, as its uptime does).
    log_forces_before: u64,
    /// Step mode's hold: whether protocol messages stop here, and those that did.
    hold: bool,
    held: Held,
    /// `message_held` events of this feed: told after the machine's own
    /// events of the same turn (its `prepare_sent` before the prepare held).
    held_events: Vec<EventKind>,
    /// Held messages let go with a delay, by when they go.
    delayed: BTreeMap<(tokio::time::Instant, u64), (NodeId, Payload)>,
}

impl Engine {
    async fn start(app: EngineContext) -> anyhow::Result<Engine> {
        let dir = app.config.coordinator_dir.clone();
        let (mut file, raw) = tokio::task::spawn_blocking(move || LogFile::open(&dir, LOG_NAME))
            .await
            .context("the log-opening task panicked")??;
        let mut records = Vec::with_capacity(raw.len());
        for (index, bytes) in raw.iter().enumerate() {
            let record = CoordinatorRecord::decode(bytes).map_err(|e| {
                anyhow::anyhow!(
                    "record {index} of {} is not a coordinator record ({e}); restore the data dir from a backup, or move it away to start fresh",
                    app.config.coordinator_dir.join(LOG_NAME).display()
                )
            })?;
            records.push(record);
        }
        let mut machine = Coordinator::recover(coordinator_config(&app), &records);
        machine.set_faults(app.demo.demo_faults());
        machine.reserve_remembered_outcomes();
        // This incarnation's epoch (and, for a new log, the cluster's
        // identity) is durable before any node hears of it.
        let epoch_record = machine.begin_epoch(new_cluster_id());
        let log_path = app.config.coordinator_dir.join(LOG_NAME);
        let (file, identity) = tokio::task::spawn_blocking(move || {
            file.append(&epoch_record.encode())?;
            file.sync()?;
            Ok::<_, shared::log::file::LogError>((file, epoch_record))
        })
        .await
        .context("the log-writing task panicked")?
        .with_context(|| format!("cannot write the new epoch to {}", log_path.display()))?;
        let CoordinatorRecord::Epoch(identity) = identity else {
            unreachable!("begin_epoch returns an epoch record")
        };
        let pending = machine.active().len();
        tracing::info!(
            records = records.len(),
            pending_commits = pending,
            cluster = %identity.cluster,
            epoch = identity.epoch,
            legacy_history = identity.legacy_history,
            "coordinator recovered from its log"
        );
        app.handle.set_identity(Some(identity.clone()));

        let (durable_tx, durable) = watch::channel(0u64);
        let (error_tx, write_error) = watch::channel(None::<String>);
        let writer = GroupCommitWriter::spawn(
            file,
            Box::new(move |seq| {
                durable_tx.send_replace(seq);
            }),
            Box::new(move |e| {
                error_tx.send_replace(Some(e.to_string()));
            }),
        );
        let (node_tx, node_events) = mpsc::channel(COORDINATOR_NODE_EVENTS_QUEUED_MAX);
        let auth = LinkAuth {
            secret: app.secret.clone(),
            claim: Claim {
                role: PeerRole::Coordinator,
                cluster: identity.cluster,
                epoch: identity.epoch,
                legacy_history: identity.legacy_history,
            },
            refusals: Some(app.refusals.clone()),
        };
        let (transport, connections) =
            Transport::start(&app.supervisor, app.links.clone(), node_tx, auth);
        let (command_tx, commands) = mpsc::channel(COORDINATOR_COMMANDS_QUEUED_MAX);
        app.handle.set_live(Some(Live {
            commands: command_tx,
            transport: transport.clone(),
        }));
        let checkpoint = CheckpointPolicy::new(
            app.config.args.log_checkpoint_bytes,
            shared::limits::COORDINATOR_LOG_CHECKPOINT_GROWTH,
        );
        Ok(Engine {
            machine,
            writer,
            transport,
            _connections: connections,
            commands,
            node_events,
            durable,
            write_error,
            clients: HashMap::new(),
            next_client: 1,
            clock: Clock { last_us: 0 },
            crashed: None,
            failed: None,
            log_batch: Vec::new(),
            checkpoint,
            events: Vec::new(),
            unreconciled_seen: usize::MAX,
            log_forces_before: app.handle.gauge(&app.handle.log_forces),
            hold: app.demo.hold_messages(),
            held: Held::new(app.held_ids.clone()),
            held_events: Vec::new(),
            delayed: BTreeMap::new(),
            app,
        })
    }

    async fn run(mut self, shutdown: &mut watch::Receiver<bool>) -> Exit {
        let exit = loop {
            let machine_at = self
                .machine
                .next_deadline_us()
                .map(|us| self.clock.instant_at(us));
            let delayed_at = self.delayed.keys().next().map(|(at, _)| *at);
            let deadline = match (machine_at, delayed_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.changed() => break Exit::Shutdown,
                Ok(()) = self.write_error.changed() => {
                    let e = self.write_error.borrow().clone().unwrap_or_default();
                    break Exit::Failed(anyhow::anyhow!("the decision log cannot be written: {e}"));
                }
                Ok(()) = self.durable.changed() => {
                    let seq = *self.durable.borrow_and_update();
                    self.feed(Input::Durable { seq });
                }
                Some(event) = self.node_events.recv() => {
                    self.on_node_event(event);
                    for _ in 0..COORDINATOR_DRAIN_PER_TURN_MAX {
                        match self.node_events.try_recv() {
                            Ok(event) => self.on_node_event(event),
                            Err(_) => break,
                        }
                    }
                }
                Some(command) = self.commands.recv() => {
                    self.on_command(command);
                    for _ in 0..COORDINATOR_DRAIN_PER_TURN_MAX {
                        match self.commands.try_recv() {
                            Ok(command) => self.on_command(command),
                            Err(_) => break,
                        }
                    }
                }
                _ = sleep => {
                    self.feed(Input::Tick);
                    self.send_delayed();
                }
            }
            self.flush_log();
            self.flush_events();
            if let Some(point) = self.crashed {
                break Exit::Crashed(point);
            }
            if let Some(e) = self.failed.take() {
                break Exit::Failed(e);
            }
            self.maybe_checkpoint();
            if self.machine.unreconciled().len() != self.unreconciled_seen {
                self.unreconciled_seen = self.machine.unreconciled().len();
                self.app
                    .handle
                    .set_unreconciled(self.machine.unreconciled());
            }
            self.app.handle.in_flight.store(
                self.machine.active_count() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            self.app.handle.log_forces.store(
                self.log_forces_before + self.writer.forces(),
                std::sync::atomic::Ordering::Relaxed,
            );
        };
        // Held messages die with the engine, as messages in flight do.
        let lost: Vec<EventKind> = self.held.drain().iter().map(dropped_event).collect();
        if !lost.is_empty() {
            self.app.hub.publish_all(lost);
        }
        // Down before anything is dropped: whoever sees a reply channel
        // close (a waiting client, the in-doubt view) then reads Down, not
        // an Up left over from before the crash.
        set_status(&self.app, ComponentStatus::Down);
        // Everything volatile goes now: connections close as the task set
        // drops, waiting clients see their reply channel close (503).
        self.app.handle.set_live(None);
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.shutdown()).await;
        exit
    }

    fn on_node_event(&mut self, event: NodeEvent) {
        let input = match event {
            NodeEvent::Up { node } => Input::NodeUp { node },
            NodeEvent::Down { node } => Input::NodeDown { node },
            NodeEvent::Message { node, msg } if self.hold => {
                match self
                    .held
                    .hold(&node, Payload::ToCoordinator(msg), Instant::now())
                {
                    Hold::Held(event) => self.events.push(event),
                    Hold::Coalesced => {}
                    Hold::Pass(payload) => self.send_on(&node, payload),
                }
                return;
            }
            NodeEvent::Message { node, msg } => Input::FromNode { node, msg },
        };
        self.feed(input);
    }

    /// Sends a message that was held (or passed the hold) on its way: to the
    /// node, or into the machine.
    fn send_on(&mut self, node: &str, payload: Payload) {
        match payload {
            Payload::ToNode(msg) => self.transport.send(node, msg),
            Payload::ToCoordinator(msg) => self.feed(Input::FromNode {
                node: node.to_string(),
                msg,
            }),
        }
    }

    /// Lets `m` go as `action` says (or drops it), and tells.
    fn release(&mut self, m: HeldMessage, action: MessageAction, delay_ms: u64) {
        let (copies, delay_ms) = match action {
            MessageAction::Drop => {
                self.events.push(dropped_event(&m));
                return;
            }
            MessageAction::Deliver => (1, 0),
            MessageAction::Duplicate => (2, 0),
            MessageAction::Delay => (1, delay_ms),
        };
        self.events.push(released_event(&m, copies, delay_ms));
        if delay_ms > 0 {
            let at = tokio::time::Instant::now() + Duration::from_millis(delay_ms);
            self.delayed.insert((at, m.id), (m.node, m.payload));
            return;
        }
        for _ in 1..copies {
            self.send_on(&m.node, m.payload.clone());
        }
        self.send_on(&m.node, m.payload);
    }

    /// Sends the delayed messages whose time has come.
    fn send_delayed(&mut self) {
        let now = tokio::time::Instant::now();
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (node, payload) = entry.remove();
            self.send_on(&node, payload);
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Transfer { request, reply } => {
                let client = self.next_client;
                self.next_client += 1;
                self.clients.insert(client, reply);
                self.feed(Input::Transfer { client, request });
            }
            Command::SetFaults(faults) => self.machine.set_faults(faults),
            Command::Active { reply } => {
                let _ = reply.send(self.machine.active());
            }
            Command::Lookup { tx_id, reply } => {
                let _ = reply.send(self.machine.finished(&tx_id));
            }
            Command::Finished { tx_id, reply } => {
                let found = self.machine.finished_with_request(&tx_id);
                let _ = reply.send(found.map(|(request, response)| (request.cloned(), response)));
            }
            Command::SetHold(hold) => {
                self.hold = hold;
                if !hold {
                    for m in self.held.drain() {
                        self.release(m, MessageAction::Deliver, 0);
                    }
                }
            }
            Command::Held { reply } => {
                let _ = reply.send(HeldMessages {
                    hold: self.hold,
                    messages: self.held.views(Instant::now()),
                });
            }
            Command::Release {
                which,
                action,
                delay_ms,
                reply,
            } => {
                let messages = match which {
                    Release::One(id) => self.held.take(id).into_iter().collect(),
                    Release::Next { phase } => self.held.next(phase),
                };
                let ids = messages.iter().map(|m| m.id).collect();
                for m in messages {
                    self.release(m, action, delay_ms);
                }
                let _ = reply.send(ids);
            }
        }
    }

    fn feed(&mut self, input: Input) {
        if self.crashed.is_some() {
            return;
        }
        let now_us = self.clock.now_us();
        for action in self.machine.handle(now_us, input) {
            if self.crashed.is_some() {
                break; // a crash loses whatever came after it
            }
            self.execute(action);
        }
        self.events.append(&mut self.held_events);
    }

    fn execute(&mut self, action: Action) {
        match action {
            Action::Send { node, msg } => {
                if matches!(msg, Request::Prepare { .. }) {
                    self.maybe_random_crash(&node);
                }
                if !self.hold {
                    return self.transport.send(&node, msg);
                }
                match self.held.hold(&node, Payload::ToNode(msg), Instant::now()) {
                    Hold::Held(event) => self.held_events.push(event),
                    Hold::Coalesced => {}
                    Hold::Pass(payload) => self.send_on(&node, payload),
                }
            }
            Action::Persist { seq, record, sync } => {
                self.log_batch.push(WriteCmd::Append {
                    seq,
                    payload: record.encode(),
                    sync,
                });
            }
            Action::Reply { client, result } => {
                if let Ok(TransferResponse {
                    tx_id,
                    detail: Some(detail),
                    ..
                }) = &result
                {
                    // The transfer's entry may be in this turn's events.
                    self.flush_events();
                    self.app.hub.set_detail(tx_id, Some(detail.clone()));
                }
                if let Some(reply) = self.clients.remove(&client) {
                    let _ = reply.send(result);
                }
            }
            Action::Emit(kind) => self.emit(kind),
            Action::Crash(point) => {
                self.crashed = Some(point);
                self.flush_events();
                let description = format!(
                    "coordinator crashed at {} (injected)",
                    crash_point_name(point)
                );
                self.app.hub.publish(EventKind::Fault {
                    target: "coordinator".to_string(),
                    description,
                });
            }
        }
    }

    /// Publishes an event; a `ready` vote implies the node forced its
    /// PREPARED record first, which the live view shows as its own step.
    /// (The machine reports a node's forced COMMITTED record itself: it
    /// comes with the ack, after the node said `applied`.)
    fn emit(&mut self, kind: EventKind) {
        let forced = match &kind {
            EventKind::Vote {
                tx_id,
                node,
                vote: shared::api::VoteView::Ready,
                ..
            } => Some((tx_id.clone(), node.clone(), PREPARED_RECORD)),
            _ => None,
        };
        if let Some((tx_id, node, record)) = forced {
            self.events.push(EventKind::LogForced {
                tx_id,
                node,
                record: record.to_string(),
            });
        }
        self.events.push(kind);
    }

    /// Publishes this turn's events (see `events`).
    fn flush_events(&mut self) {
        if !self.events.is_empty() {
            self.app.hub.publish_all(self.events.drain(..));
        }
    }

    /// The original demo's random crash during prepare: with the configured
    /// probability, the node is told to crash right after logging PREPARED.
    fn maybe_random_crash(&mut self, node: &str) {
        let p = self.app.demo.prepare_crash_probability();
        if p <= 0.0 || rand::random::<f64>() >= p {
            return;
        }
        self.transport.send(
            node,
            Request::ArmCrash {
                point: ParticipantCrashPoint::AfterPrepareLogged,
            },
        );
        self.events.push(EventKind::Fault {
            target: node.to_string(),
            description: format!("random crash during prepare (p = {p:.2}): node {node} will crash after logging PREPARED"),
        });
    }

    /// Hands this turn's records to the writer, in seq order, as one batch.
    fn flush_log(&mut self) {
        if self.log_batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.log_batch);
        if let Err(e) = self.writer.submit_batch(batch) {
            self.failed = Some(anyhow::anyhow!("the decision log writer stopped: {e}"));
        }
    }

    /// Rewrites the log as one checkpoint record when the policy says so
    /// (see `CheckpointPolicy`).
    fn maybe_checkpoint(&mut self) {
        if !self.checkpoint.due(&self.writer) {
            return;
        }
        // The snapshot shares the remembered outcomes instead of encoding
        // them here: the writer's helper thread encodes and writes it while
        // this thread goes on.
        let started = std::time::Instant::now();
        let (seq, snapshot) = self.machine.checkpoint_snapshot();
        tracing::info!(
            seq,
            snapshot_ms = started.elapsed().as_millis() as u64,
            "checkpointing the coordinator log"
        );
        let encode = move || {
            let started = std::time::Instant::now();
            let payload = snapshot.encode();
            tracing::info!(
                seq,
                payload_bytes = payload.len(),
                encode_ms = started.elapsed().as_millis() as u64,
                "coordinator checkpoint encoded (beside the engine)"
            );
            vec![payload]
        };
        if let Err(e) = self.writer.submit(WriteCmd::Rewrite {
            seq,
            records: Records::Later(Box::new(encode)),
        }) {
            self.failed = Some(anyhow::anyhow!("the decision log writer stopped: {e}"));
        }
    }
}

/// A new cluster's identity: 16 random bytes, in hex.
fn new_cluster_id() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn coordinator_config(app: &EngineContext) -> CoordinatorConfig {
    let args = &app.config.args;
    let mut config = CoordinatorConfig::new(
        app.config.nodes.iter().map(|n| n.id.clone()).collect(),
        app.config.account_nodes.clone(),
    );
    config.prepare_timeout_us = args.prepare_timeout_ms.saturating_mul(1000);
    config.hash_seed = shared::store::hasher::HashSeed::new(rand::random(), rand::random());
    config.ack_wait_us = args.ack_wait_ms.saturating_mul(1000);
    config
}

pub fn crash_point_name(point: CrashPoint) -> &'static str {
    match point {
        CrashPoint::BeforeDecision => "before_decision",
        CrashPoint::AfterDecision => "after_decision",
        CrashPoint::MidCommit => "mid_commit",
    }
}
