//! The driver: the ONE task that owns the `Participant` state machine, the
//! log writer and the clock. It is a thin loop:
//!
//! ```text
//! wait for: a request from a connection | Durable{seq} from the log writer
//!           | the next lock-wait deadline | shutdown | a log failure
//! → drain every request already queued, feeding each to `handle`
//! → run the actions in order (Send → that connection's outbox,
//!   Persist → the log writer, Crash → SIGKILL ourselves)
//! → hand the batch's log records to the writer together (group commit)
//! → checkpoint if the log grew too big
//! ```
//!
//! Group commit: the writer thread syncs everything queued behind one
//! fdatasync. Persist actions are collected while a burst of requests is
//! drained and submitted together at the end, so the writer finds them all
//! queued at once. That only moves log submissions later relative to sends
//! that do **not** depend on them: the state machine holds back every send
//! that depends on a record (votes, acks, crash points) until `Durable`
//! says so, and the records themselves keep their order.
//!
//! Time is microseconds since an `Instant` taken at start (monotonic).
//! Queries are answered here from the read accessors (see [`crate::query`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::mpsc::TrySendError;
use std::time::{Duration, Instant};

use shared::limits::PARTICIPANT_DRAIN_PER_ROUND_MAX;
use shared::log::{CheckpointPolicy, GroupCommitWriter, LogError, Records, WriteCmd};
use shared::protocol::participant::{Action, Input, Participant, PeerId};
use shared::wire::{ParticipantCrashPoint, Reply, Request};
use tokio::sync::{mpsc, watch};

use crate::peer::{Delivery, DriverMsg, Outbox};
use crate::query::{self, LogStats};
use crate::recovery::Recovered;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(
        "the write-ahead log failed: {0}. Nothing that depended on unsynced records was sent; \
         restart the node to recover from what is on disk"
    )]
    Log(LogError),
    #[error(
        "the log writer stopped unexpectedly; restart the node to recover from what is on disk"
    )]
    WriterClosed,
}

pub struct Driver {
    participant: Participant,
    writer: Option<GroupCommitWriter>,
    durable: watch::Receiver<u64>,
    errors: mpsc::Receiver<LogError>,
    peers: HashMap<PeerId, Outbox>,
    /// Welcomes of coordinators waiting to be accepted by the protocol.
    welcomes: HashMap<PeerId, Reply>,
    start: Instant,
    /// Log records produced this round, submitted together.
    pending: Vec<WriteCmd>,
    /// Records in the log file once everything submitted is written.
    log_records: u64,
    checkpoint: CheckpointPolicy,
}

impl Driver {
    pub fn new(recovered: Recovered, checkpoint_bytes: u64) -> Driver {
        let Recovered {
            participant,
            writer,
            durable,
            errors,
            log_records,
        } = recovered;
        Driver {
            participant,
            writer: Some(writer),
            durable,
            errors,
            peers: HashMap::new(),
            welcomes: HashMap::new(),
            start: Instant::now(),
            pending: Vec::new(),
            log_records,
            checkpoint: CheckpointPolicy::new(
                checkpoint_bytes,
                shared::limits::PARTICIPANT_LOG_CHECKPOINT_GROWTH,
            ),
        }
    }

    /// Runs until `shutdown` resolves, every connection sender is gone, or
    /// the log fails. On the way out, everything submitted is made durable.
    pub async fn run(
        mut self,
        mut inbox: mpsc::Receiver<DriverMsg>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), DriverError> {
        let served = self.serve(&mut inbox, shutdown).await;
        let flushed = self.flush_writes();
        if let Some(writer) = self.writer.take() {
            // Blocks this (the only) runtime thread until the writer has
            // synced and exited: nothing else is left to run by now.
            writer.shutdown();
        }
        // A failure reported by the writer is the real cause of anything else.
        if let Ok(error) = self.errors.try_recv() {
            return Err(DriverError::Log(error));
        }
        served.and(flushed)
    }

    async fn serve(
        &mut self,
        inbox: &mut mpsc::Receiver<DriverMsg>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), DriverError> {
        tokio::pin!(shutdown);
        loop {
            let deadline_us = self.participant.next_deadline_us();
            let wake_at = deadline_us
                .and_then(|us| self.start.checked_add(Duration::from_micros(us)))
                .unwrap_or_else(|| {
                    Instant::now() + Duration::from_secs(shared::limits::PARTICIPANT_IDLE_WAKE_S)
                });
            tokio::select! {
                biased;
                Some(error) = self.errors.recv() => return Err(DriverError::Log(error)),
                _ = &mut shutdown => return Ok(()),
                changed = self.durable.changed() => {
                    // The sender lives in the writer thread: gone means it stopped.
                    changed.map_err(|_| DriverError::WriterClosed)?;
                    let seq = *self.durable.borrow_and_update();
                    self.feed(Input::Durable { seq });
                }
                msg = inbox.recv() => {
                    let Some(msg) = msg else { return Ok(()) };
                    self.on_msg(msg);
                    for _ in 0..PARTICIPANT_DRAIN_PER_ROUND_MAX {
                        let Ok(msg) = inbox.try_recv() else { break };
                        self.on_msg(msg);
                    }
                }
                () = tokio::time::sleep_until(wake_at.into()), if deadline_us.is_some() => {
                    self.feed(Input::Tick);
                }
            }
            self.flush_writes()?;
            self.maybe_checkpoint()?;
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn on_msg(&mut self, msg: DriverMsg) {
        match msg {
            DriverMsg::Connected { peer, outbox } => {
                self.peers.insert(peer, outbox);
            }
            DriverMsg::Authenticated {
                peer,
                claim,
                welcome,
            } => {
                self.welcomes.insert(peer, welcome);
                self.feed(Input::Connect {
                    from: peer,
                    cluster: claim.cluster,
                    epoch: claim.epoch,
                    legacy_history: claim.legacy_history,
                });
            }
            DriverMsg::Disconnected { peer } => {
                self.peers.remove(&peer);
                if self.welcomes.remove(&peer).is_some() || self.participant.is_coordinator(peer) {
                    self.feed(Input::Disconnect { from: peer });
                }
            }
            DriverMsg::Request {
                peer,
                msg: Request::Query { req_id, query },
            } => {
                let log = LogStats {
                    forces: self.writer.as_ref().map_or(0, |w| w.forces()),
                    records: self.log_records,
                };
                let result = query::answer(&self.participant, self.now_us(), log, query);
                self.send(peer, Reply::QueryResult { req_id, result });
            }
            DriverMsg::Request { peer, msg } => {
                tracing::debug!(peer, ?msg, "request");
                self.feed(Input::Message { from: peer, msg });
            }
        }
    }

    fn feed(&mut self, input: Input) {
        let now_us = self.now_us();
        for action in self.participant.handle(now_us, input) {
            self.run_action(action);
        }
    }

    fn run_action(&mut self, action: Action) {
        match action {
            Action::Send { to, msg } => {
                for reply in query::fit_line(msg) {
                    self.send(to, reply);
                }
            }
            Action::Persist { seq, record, sync } => {
                self.pending.push(WriteCmd::Append {
                    seq,
                    payload: record.encode(),
                    sync,
                });
                self.log_records += 1;
            }
            Action::Crash(point) => crash(point),
            Action::Accept { peer } => {
                if let Some(welcome) = self.welcomes.remove(&peer) {
                    tracing::info!(peer, "coordinator accepted");
                    self.send(peer, welcome);
                }
            }
            Action::Close { peer, message } => {
                self.welcomes.remove(&peer);
                tracing::warn!(peer, "refusing a coordinator: {message}");
                if let Some(outbox) = self.peers.remove(&peer) {
                    outbox.refuse(message);
                }
            }
        }
    }

    fn send(&mut self, to: PeerId, reply: Reply) {
        let Some(outbox) = self.peers.get(&to) else {
            tracing::debug!(peer = to, ?reply, "peer gone; reply dropped");
            return;
        };
        match outbox.send(reply) {
            Delivery::Queued => {}
            Delivery::Gone => {
                self.peers.remove(&to);
            }
            Delivery::Overflow => {
                tracing::warn!(
                    peer = to,
                    "peer is not reading its replies; dropping the connection"
                );
                self.peers.remove(&to);
            }
        }
    }

    /// Hands this round's records to the writer, in seq order, as one batch
    /// (one channel operation, at most one wake-up of the writer thread).
    fn flush_writes(&mut self) -> Result<(), DriverError> {
        let pending = std::mem::take(&mut self.pending);
        self.submit_batch(pending)
    }

    fn submit(&self, cmd: WriteCmd) -> Result<(), DriverError> {
        self.submit_batch(vec![cmd])
    }

    fn submit_batch(&self, cmds: Vec<WriteCmd>) -> Result<(), DriverError> {
        let writer = self.writer.as_ref().ok_or(DriverError::WriterClosed)?;
        match writer.try_submit_batch(cmds) {
            Ok(()) => Ok(()),
            // Backpressure: the writer is behind by a full queue; waiting
            // for it (bounded by disk speed) is the right thing to do, and
            // blocking the runtime's one thread is how: the writer thread
            // drains the queue without it, and nothing should be accepted
            // meanwhile.
            Err(TrySendError::Full(cmds)) => writer
                .submit_batch(cmds)
                .map_err(|_| DriverError::WriterClosed),
            Err(TrySendError::Disconnected(_)) => Err(DriverError::WriterClosed),
        }
    }

    fn maybe_checkpoint(&mut self) -> Result<(), DriverError> {
        let Some(writer) = self.writer.as_ref() else {
            return Ok(());
        };
        if !self.checkpoint.due(writer) {
            return Ok(());
        }
        let size_bytes = writer.size_bytes();
        // Encoded and written by the log writer's helper thread while this
        // one goes on; only the copy of the snapshot happens here.
        let started = std::time::Instant::now();
        let (seq, snapshot) = self.participant.checkpoint_snapshot();
        let snapshot_ms = started.elapsed().as_millis() as u64;
        let encode = move || {
            let started = std::time::Instant::now();
            let payload = snapshot.encode();
            tracing::info!(
                checkpoint_bytes = payload.len(),
                encode_ms = started.elapsed().as_millis() as u64,
                "checkpoint encoded (beside the driver)"
            );
            vec![payload]
        };
        self.submit(WriteCmd::Rewrite {
            seq,
            records: Records::Later(Box::new(encode)),
        })?;
        tracing::info!(
            log_bytes = size_bytes,
            snapshot_ms,
            "log rewritten as a checkpoint (encoded and written beside the log)"
        );
        self.log_records = 1;
        Ok(())
    }
}

/// An armed crash point was reached (demo mode): die like `kill -9` would.
fn crash(point: ParticipantCrashPoint) -> ! {
    tracing::error!(
        ?point,
        "armed crash point reached: killing this process with SIGKILL (fault injection)"
    );
    // SAFETY: getpid and kill have no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL cannot be caught; this is only reached if kill itself failed.
    std::process::abort()
}
