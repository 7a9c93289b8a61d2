//! Recovery is replay: the log's records rebuild what is durable; a new
//! incarnation takes the next epoch; checkpoints write what is still
//! needed.

use super::*;

/// What a checkpoint holds, taken at one moment, to be encoded later (see
/// [`Coordinator::checkpoint_snapshot`]).
#[derive(Debug, Clone)]
pub struct CoordinatorSnapshot {
    identity: Option<Identity>,
    pending_commits: Vec<(TxId, u64, TransferRequest, Vec<Leg>)>,
    outcomes: RememberedSnapshot<Finished>,
    ts_max_us: u64,
}

impl CoordinatorSnapshot {
    /// The checkpoint record's bytes, as they were when it was taken.
    pub fn encode(&self) -> Vec<u8> {
        self.parts().encode()
    }

    fn parts(&self) -> CoordinatorCheckpointRef<'_> {
        let pending_commits = self
            .pending_commits
            .iter()
            .map(|(id, ts, request, legs)| (id, *ts, request, legs.as_slice()))
            .collect();
        CoordinatorCheckpointRef {
            identity: self.identity.as_ref(),
            pending_commits,
            outcomes: self.outcomes.collect_oldest_first(outcome_entry),
            ts_max_us: self.ts_max_us,
        }
    }
}

impl Coordinator {
    /// Rebuilds the coordinator from its log. Commit decisions without END
    /// come back as committing: they are re-sent to every node that has
    /// not acknowledged them. Nothing else survives (presumed abort).
    pub fn recover(config: CoordinatorConfig, records: &[CoordinatorRecord]) -> Coordinator {
        let seed = config.hash_seed;
        let mut c = Coordinator {
            config,
            faults: DemoFaults::default(),
            active: Keyed::with_seed(seed),
            finished: Remembered::new(COORDINATOR_OUTCOMES_KEPT_MAX, seed),
            connected: BTreeSet::new(),
            timers: BTreeSet::new(),
            deciding: VecDeque::new(),
            held_replies: VecDeque::new(),
            next_seq: 1,
            durable_seq: 0,
            ts_max_us: 0,
            sweep_at_us: None,
            recovery_pending: BTreeSet::new(),
            identity: None,
            replayed_any: false,
            unreconciled: BTreeSet::new(),
            started_us: None,
            next_auto_id: 1,
            undurable: VecDeque::new(),
            #[cfg(feature = "mutants")]
            mutants: Default::default(),
        };
        c.unreconciled = c.config.nodes.iter().cloned().collect();
        for record in records {
            c.replay(record);
        }
        c
    }

    /// Starts a new incarnation: the next epoch of this log's cluster, or
    /// `new_cluster` (fresh random bytes from the driver) for a log that
    /// has none yet. Returns the record the driver must make durable
    /// before feeding any input (before any node hears this epoch).
    pub fn begin_epoch(&mut self, new_cluster: ClusterId) -> CoordinatorRecord {
        let identity = match self.identity.take() {
            Some(old) => Identity {
                epoch: old.epoch + 1,
                ..old
            },
            None => Identity {
                cluster: new_cluster,
                epoch: 1,
                legacy_history: self.replayed_any,
            },
        };
        self.identity = Some(identity.clone());
        CoordinatorRecord::Epoch(identity)
    }

    /// Whose log this is (`None` before [`Coordinator::begin_epoch`] on a
    /// log without an identity).
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// Nodes that have not reported their in-doubt transactions to this
    /// incarnation yet (a client's unknown `tx_id` may wait for them).
    pub fn unreconciled(&self) -> &BTreeSet<NodeId> {
        &self.unreconciled
    }

    /// This incarnation's epoch (0 before [`Coordinator::begin_epoch`]).
    pub fn epoch(&self) -> Epoch {
        self.identity.as_ref().map_or(0, |i| i.epoch)
    }

    pub(super) fn replay(&mut self, record: &CoordinatorRecord) {
        if !matches!(record, CoordinatorRecord::Epoch(_)) && self.identity.is_none() {
            self.replayed_any = true;
        }
        match record {
            CoordinatorRecord::Commit {
                tx_id,
                ts_us: ts,
                request,
                legs,
            } => {
                self.ts_max_us = self.ts_max_us.max(*ts);
                if self.finished.get(tx_id).is_some() {
                    return;
                }
                let pending_acks: BTreeSet<NodeId> = legs.iter().map(|l| l.node.clone()).collect();
                let tx = Tx {
                    request: request.clone(),
                    ts_us: *ts,
                    legs: legs.clone(),
                    started_us: 0,
                    one_phase: false,
                    phase: Phase::Committing,
                    votes: legs
                        .iter()
                        .map(|l| (l.node.clone(), (VoteView::Ready, None)))
                        .collect(),
                    pending_applied: pending_acks.clone(),
                    pending_acks,
                    clients: Vec::new(),
                    replied: true,
                    armed: Vec::new(),
                };
                self.active.insert(tx_id.clone(), tx);
            }
            CoordinatorRecord::End { tx_id } => {
                if let Some(tx) = self.active.remove(tx_id) {
                    let response = recovered_response(tx_id, Decision::Commit, None);
                    self.remember(tx_id.clone(), Some(tx.request), &response, &[]);
                }
            }
            CoordinatorRecord::Finished {
                tx_id,
                request,
                decision,
                reason,
            } => {
                if self.active.contains_key(tx_id) {
                    return; // a committing tx: its END decides
                }
                let response = recovered_response(tx_id, *decision, *reason);
                self.remember(tx_id.clone(), Some(request.clone()), &response, &[]);
            }
            CoordinatorRecord::PresumedAbort { tx_id } => {
                if !self.active.contains_key(tx_id) {
                    self.remember(tx_id.clone(), None, &presumed_abort_response(tx_id), &[]);
                }
            }
            CoordinatorRecord::Epoch(identity) => self.identity = Some(identity.clone()),
            CoordinatorRecord::Checkpoint(cp) => {
                self.active.clear();
                self.finished.clear();
                self.ts_max_us = self.ts_max_us.max(cp.ts_max_us);
                if let Some(identity) = &cp.identity {
                    self.identity = Some(identity.clone());
                }
                for (tx_id, request, decision, reason) in &cp.outcomes {
                    match request {
                        Some(request) => {
                            let response = recovered_response(tx_id, *decision, *reason);
                            let request = Some(request.clone());
                            self.remember(tx_id.clone(), request, &response, &[]);
                        }
                        None => {
                            let response = presumed_abort_response(tx_id);
                            self.remember(tx_id.clone(), None, &response, &[]);
                        }
                    }
                }
                for (tx_id, ts, request, legs) in &cp.pending_commits {
                    let record = CoordinatorRecord::Commit {
                        tx_id: tx_id.clone(),
                        ts_us: *ts,
                        request: request.clone(),
                        legs: legs.clone(),
                    };
                    self.replay(&record);
                }
            }
        }
    }

    /// The transactions a checkpoint must keep committing after a restart.
    pub(super) fn pending_commits(
        &self,
    ) -> impl Iterator<Item = (&TxId, u64, &TransferRequest, &[Leg])> {
        self.active
            .sorted()
            .into_iter()
            .filter(|(_, tx)| {
                matches!(
                    tx.phase,
                    Phase::Deciding { .. } | Phase::PausedBeforeCommit | Phase::Committing
                )
            })
            .map(|(id, tx)| (id, tx.ts_us, &tx.request, tx.legs.as_slice()))
    }

    /// [`checkpoint`](Self::checkpoint), encoded: the same bytes as
    /// `checkpoint().1.encode()`, from the snapshot (no owned copy).
    pub fn checkpoint_encoded(&mut self) -> (u64, Vec<u8>) {
        let (seq, snapshot) = self.checkpoint_snapshot();
        (seq, snapshot.encode())
    }

    /// Everything a checkpoint holds, taken now, to be encoded later, on
    /// another thread: the remembered outcomes (up to a million, too many to
    /// encode on the engine's thread) are shared, not copied (see
    /// [`Remembered::snapshot`]); the transactions
    /// still committing are copied (a few). [`checkpoint`](Self::checkpoint)
    /// and [`checkpoint_encoded`](Self::checkpoint_encoded) are built from it.
    pub fn checkpoint_snapshot(&mut self) -> (u64, CoordinatorSnapshot) {
        let pending_commits = self
            .pending_commits()
            .map(|(id, ts, request, legs)| (id.clone(), ts, request.clone(), legs.to_vec()))
            .collect();
        let snapshot = CoordinatorSnapshot {
            identity: self.identity.clone(),
            pending_commits,
            outcomes: self.finished.snapshot(),
            ts_max_us: self.ts_max_us,
        };
        (self.take_seq(), snapshot)
    }

    /// A record of everything still needed, to start a rewritten log: the
    /// commits not yet acknowledged everywhere and the remembered outcomes,
    /// oldest first.
    pub fn checkpoint(&mut self) -> (u64, CoordinatorRecord) {
        let (seq, snapshot) = self.checkpoint_snapshot();
        let parts = snapshot.parts();
        let cp = CoordinatorCheckpoint {
            identity: parts.identity.cloned(),
            pending_commits: parts
                .pending_commits
                .iter()
                .map(|&(id, ts, request, legs)| (id.clone(), ts, request.clone(), legs.to_vec()))
                .collect(),
            outcomes: parts
                .outcomes
                .iter()
                .map(|&(id, request, decision, reason)| {
                    (id.clone(), request.cloned(), decision, reason)
                })
                .collect(),
            ts_max_us: parts.ts_max_us,
        };
        (seq, CoordinatorRecord::Checkpoint(Box::new(cp)))
    }
}

/// A remembered outcome as a checkpoint holds it.
pub(super) fn outcome_entry<'a>(
    (id, f): (&'a TxId, &'a Finished),
) -> (
    &'a TxId,
    Option<&'a TransferRequest>,
    Decision,
    Option<AbortReason>,
) {
    let decision = match f.outcome {
        Outcome::Committed => Decision::Commit,
        Outcome::Aborted => Decision::Abort,
    };
    (id, f.request.as_ref(), decision, f.reason)
}
