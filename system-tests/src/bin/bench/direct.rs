//! `--direct`: the participants' protocol without HTTP and without the
//! coordinator process. The benchmark starts the participant processes
//! itself and plays a minimal coordinator over `shared::wire`:
//!
//! prepare to both nodes in parallel → all `ready` → force a COMMIT record
//! to its own decision log (group commit, fdatasync) → `commit` to both →
//! both acks → END (lazy). An `abort` vote or no vote within the timeout →
//! `rollback` to both (presumed abort: nothing forced).
//!
//! So the figures are the cost of the protocol itself: three processes,
//! three forced logs, two round trips, and nothing else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use shared::api::{Leg, TransferRequest};
use shared::log::{GroupCommitWriter, LogFile, WriteCmd};
use shared::protocol::record::CoordinatorRecord;
use shared::wire::{AbortReason, Decision, Op, Reply, Request, Vote};
use tokio::sync::{oneshot, watch};

use crate::load::{Client, Outcome, Transfer};
use crate::node_link::NodeLink;

/// Same as the coordinator's default.
const PREPARE_TIMEOUT_MS: u64 = 3_000;
const ACK_TIMEOUT_MS: u64 = 3_000;
const START_TIMEOUT_MS: u64 = 30_000;

/// The cluster and epoch the direct mode's coordinator claims.
pub const DIRECT_CLUSTER: &str = "bench-direct";
pub const DIRECT_EPOCH: u64 = 1;

/// Participant processes started by the benchmark; killed on drop.
pub struct Participants {
    children: Vec<Child>,
    pub addrs: Vec<SocketAddr>,
}

impl Drop for Participants {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Participants {
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Starts `nodes` participants 6001.. with the given accounts each.
    pub async fn start(
        dir: &Path,
        secret_file: &Path,
        by_node: &[Vec<String>],
        balance_cents: i64,
    ) -> anyhow::Result<Participants> {
        let mut started = Participants {
            children: Vec::new(),
            addrs: Vec::new(),
        };
        let mut ready_files = Vec::new();
        for (i, accounts) in by_node.iter().enumerate() {
            let id = 6001 + i;
            let ready = dir.join(format!("ready-{id}"));
            let mut cmd = Command::new(system_tests::bin("participant"));
            cmd.arg("--id")
                .arg(id.to_string())
                .arg("--listen")
                .arg("127.0.0.1:0")
                .arg("--data-dir")
                .arg(dir.join(format!("node-{id}")))
                .arg("--ready-file")
                .arg(&ready)
                .arg("--secret-file")
                .arg(secret_file)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            for account in accounts {
                cmd.arg("--account")
                    .arg(format!("{account}={balance_cents}"));
            }
            started
                .children
                .push(cmd.spawn().context("cannot start a participant")?);
            ready_files.push(ready);
        }
        for ready in ready_files {
            started.addrs.push(wait_ready(&ready).await?);
        }
        Ok(started)
    }
}

async fn wait_ready(path: &PathBuf) -> anyhow::Result<SocketAddr> {
    let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(addr) = text.trim().parse() {
                return Ok(addr);
            }
        }
        if Instant::now() > deadline {
            bail!("a participant did not write {} in time", path.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The minimal coordinator's decision log: group commit, as the real one.
pub struct DecisionLog {
    writer: Mutex<(u64, GroupCommitWriter)>,
    durable: watch::Receiver<u64>,
}

impl DecisionLog {
    pub fn open(dir: &Path) -> anyhow::Result<DecisionLog> {
        let (file, _) = LogFile::open(dir, "decisions.log")?;
        let (durable_tx, durable) = watch::channel(0u64);
        let writer = GroupCommitWriter::spawn(
            file,
            Box::new(move |seq| {
                durable_tx.send_replace(seq);
            }),
            Box::new(|e| eprintln!("bench: the decision log failed: {e}")),
        );
        Ok(DecisionLog {
            writer: Mutex::new((1, writer)),
            durable,
        })
    }

    fn append(&self, record: &CoordinatorRecord, sync: bool) -> anyhow::Result<u64> {
        let mut guard = self.writer.lock().expect("decision log lock");
        let seq = guard.0;
        guard.0 += 1;
        guard.1.submit(WriteCmd::Append {
            seq,
            payload: record.encode(),
            sync,
        })?;
        Ok(seq)
    }

    /// Appends and waits until the record is durable.
    async fn force(&self, record: &CoordinatorRecord) -> anyhow::Result<()> {
        let seq = self.append(record, true)?;
        let mut durable = self.durable.clone();
        durable.wait_for(|d| *d >= seq).await?;
        Ok(())
    }

    pub fn forces(&self) -> u64 {
        self.writer.lock().expect("decision log lock").1.forces()
    }
}

/// Transaction timestamps for wait-die: increasing, like the coordinator's.
pub struct Clock(AtomicU64);

impl Clock {
    pub fn new() -> Clock {
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Clock(AtomicU64::new(now_us))
    }

    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

pub struct DirectClient {
    pub id: usize,
    pub links: Rc<Vec<NodeLink>>,
    pub log: Arc<DecisionLog>,
    pub clock: Rc<Clock>,
    pub node_ids: Rc<Vec<String>>,
    pub next_tx: u64,
    /// Committed transactions waiting for their nodes' acks before END
    /// (an ack received leaves `None`).
    pub unended: Vec<(String, Vec<Option<oneshot::Receiver<Reply>>>)>,
}

impl Client for DirectClient {
    async fn transfer(&mut self, t: Transfer<'_>) -> Outcome {
        self.next_tx += 1;
        let tx_id = format!("d{}-{}", self.id, self.next_tx);
        if let Err(e) = self.end_acked() {
            return Outcome::Error(format!("{e:#}"));
        }
        match self.run(&tx_id, &t).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Error(format!("{e:#}")),
        }
    }
}

impl DirectClient {
    async fn run(&mut self, tx_id: &str, t: &Transfer<'_>) -> anyhow::Result<Outcome> {
        let ts = self.clock.next();
        let legs = [
            (
                t.from_node,
                Op {
                    account: t.from.to_string(),
                    delta_cents: -t.amount_cents,
                },
            ),
            (
                t.to_node,
                Op {
                    account: t.to.to_string(),
                    delta_cents: t.amount_cents,
                },
            ),
        ];
        // Phase 1, in parallel.
        let mut votes = Vec::new();
        for (node, op) in &legs {
            let link = &self.links[*node];
            let answer = link.expect(tx_id);
            link.send(&Request::Prepare {
                tx_id: tx_id.to_string(),
                ts,
                epoch: DIRECT_EPOCH,
                ops: vec![op.clone()],
            })?;
            votes.push(answer);
        }
        let timeout = Duration::from_millis(PREPARE_TIMEOUT_MS);
        let mut abort_reason = None;
        for ((node, _), answer) in legs.iter().zip(votes) {
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(Reply::Vote {
                    vote: Vote::Ready, ..
                })) => {}
                Ok(Ok(Reply::Vote {
                    vote: Vote::Abort,
                    reason,
                    ..
                })) => {
                    abort_reason.get_or_insert(reason.unwrap_or(AbortReason::LockConflict));
                }
                Ok(Ok(other)) => bail!("unexpected answer to prepare: {other:?}"),
                Ok(Err(_)) | Err(_) => {
                    self.links[*node].forget(tx_id);
                    abort_reason.get_or_insert(AbortReason::Timeout);
                }
            }
        }
        if let Some(reason) = abort_reason {
            // Presumed abort: no forced record; the acks are not awaited.
            for (node, _) in &legs {
                self.links[*node].send(&Request::Rollback {
                    tx_id: tx_id.to_string(),
                })?;
            }
            return Ok(Outcome::Aborted(reason.as_str().to_string()));
        }
        // The commit point.
        let record = CoordinatorRecord::Commit {
            tx_id: tx_id.to_string(),
            ts,
            request: TransferRequest {
                from: t.from.to_string(),
                to: t.to.to_string(),
                amount_cents: t.amount_cents,
                tx_id: None,
            },
            legs: legs
                .iter()
                .map(|(node, op)| Leg {
                    node: self.node_ids[*node].clone(),
                    ops: vec![op.clone()],
                })
                .collect(),
        };
        self.log.force(&record).await?;
        // Phase 2, in parallel: the client is answered once every node has
        // applied the commit; END waits for their acks (COMMITTED forced).
        let mut applied = Vec::new();
        let mut acks = Vec::new();
        for (node, _) in &legs {
            let link = &self.links[*node];
            let answer = link.expect(tx_id);
            acks.push(Some(link.expect_ack(tx_id)));
            link.send(&Request::Commit {
                tx_id: tx_id.to_string(),
            })?;
            applied.push(answer);
        }
        for ((node, _), answer) in legs.iter().zip(applied) {
            match tokio::time::timeout(Duration::from_millis(ACK_TIMEOUT_MS), answer).await {
                Ok(Ok(Reply::Applied { .. })) => {}
                Ok(Ok(other)) => bail!("unexpected answer to commit: {other:?}"),
                Ok(Err(_)) | Err(_) => {
                    self.links[*node].forget(tx_id);
                    bail!("no commit ack from node {} in time", self.node_ids[*node]);
                }
            }
        }
        self.unended.push((tx_id.to_string(), acks));
        Ok(Outcome::Committed)
    }

    /// Writes END (unforced) for the transactions whose commit every node
    /// has acked since; a failed ack is an error of the run.
    fn end_acked(&mut self) -> anyhow::Result<()> {
        let mut i = 0;
        while i < self.unended.len() {
            let acks = &mut self.unended[i].1;
            let mut all = true;
            for slot in acks.iter_mut() {
                let Some(ack) = slot else { continue };
                match ack.try_recv() {
                    Ok(Reply::Ack {
                        decision: Decision::Commit,
                        ..
                    }) => *slot = None,
                    Ok(other) => bail!("unexpected ack of a commit: {other:?}"),
                    Err(oneshot::error::TryRecvError::Empty) => all = false,
                    Err(oneshot::error::TryRecvError::Closed) => {
                        bail!("a node closed its link before acking a commit")
                    }
                }
            }
            if !all {
                i += 1;
                continue;
            }
            let (tx_id, _) = self.unended.swap_remove(i);
            self.log.append(&CoordinatorRecord::End { tx_id }, false)?;
        }
        Ok(())
    }
}
