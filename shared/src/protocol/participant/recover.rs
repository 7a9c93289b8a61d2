//! Recovery is replay: the log's records rebuild balances, ledgers,
//! remembered outcomes and in-doubt transactions with their locks;
//! checkpoints write everything durable as one record.

use super::*;

/// What a checkpoint holds, taken at one moment, to be encoded later (see
/// [`Participant::checkpoint_snapshot`]).
#[derive(Debug, Clone)]
pub struct ParticipantSnapshot {
    accounts: Vec<(AccountId, i64)>,
    ledgers: Vec<(AccountId, Arc<VecDeque<LedgerEntry>>)>,
    prepared: Vec<(TxId, u64, Epoch, Vec<Op>)>,
    outcomes: RememberedSnapshot<Done>,
    heuristics: Vec<(TxId, Decision, Vec<Op>)>,
    cluster: Option<ClusterId>,
    epoch: Epoch,
}

impl ParticipantSnapshot {
    /// The checkpoint record's bytes, as they were when it was taken.
    pub fn encode(&self) -> Vec<u8> {
        self.parts().encode()
    }

    /// Everything durable, borrowed. Outcomes and heuristics go oldest first.
    fn parts(&self) -> ParticipantCheckpointRef<'_> {
        ParticipantCheckpointRef {
            accounts: self.accounts.iter().map(|(a, b)| (a, *b)).collect(),
            ledgers: self.ledgers.iter().map(|(a, e)| (a, &**e)).collect(),
            prepared: self
                .prepared
                .iter()
                .map(|(id, ts, epoch, ops)| (id, *ts, *epoch, ops.as_slice()))
                .collect(),
            outcomes: self
                .outcomes
                .collect_oldest_first(|(id, done)| (id, done.decision, done.digest)),
            heuristics: self
                .heuristics
                .iter()
                .map(|(id, d, ops)| (id, *d, ops.as_slice()))
                .collect(),
            cluster: self.cluster.as_ref(),
            epoch: self.epoch,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecoveryError {
    #[error("log record {index} of node {node} cannot be read: {detail}")]
    BadRecord {
        node: NodeId,
        index: usize,
        detail: String,
    },
    #[error("log of node {node} is inconsistent at record {index}: {detail}")]
    Inconsistent {
        node: NodeId,
        index: usize,
        detail: String,
    },
}

impl Participant {
    /// The record a fresh data dir starts with: the opening balances.
    pub fn init_record(config: &ParticipantConfig) -> ParticipantRecord {
        ParticipantRecord::Init {
            accounts: config.accounts.clone(),
        }
    }

    /// Rebuilds the durable state by replaying the log. An empty log means a
    /// fresh node with the configured opening balances (the driver must then
    /// persist [`Participant::init_record`] before serving). Prepared
    /// transactions come back in doubt, holding their locks.
    pub fn recover(
        config: ParticipantConfig,
        records: &[ParticipantRecord],
    ) -> Result<Participant, RecoveryError> {
        let seed = config.hash_seed;
        let mut p = Participant {
            balances: config
                .accounts
                .iter()
                .cloned()
                .collect::<Keyed<_, _>>()
                .reseeded(seed),
            ledgers: config
                .accounts
                .iter()
                .map(|(a, _)| (a.clone(), Arc::default()))
                .collect::<Keyed<_, _>>()
                .reseeded(seed),
            config,
            txs: Keyed::with_seed(seed),
            locks: Keyed::with_seed(seed),
            waiting: BTreeSet::new(),
            outcomes: Remembered::new(PARTICIPANT_OUTCOMES_KEPT_MAX, seed),
            heuristics: BTreeMap::new(),
            heuristic_order: Vec::new(),
            held: VecDeque::new(),
            next_seq: 1,
            durable_seq: 0,
            awaited_seq: 0,
            armed_crash: None,
            #[cfg(feature = "mutants")]
            mutants: Default::default(),
            cluster: None,
            epoch: 0,
            bound_seq: 0,
            coordinators: BTreeMap::new(),
        };
        for (index, record) in records.iter().enumerate() {
            p.replay(index, record)?;
        }
        Ok(p)
    }

    pub(super) fn replay(
        &mut self,
        index: usize,
        record: &ParticipantRecord,
    ) -> Result<(), RecoveryError> {
        let node = self.config.node.clone();
        let inconsistent = |detail: String| RecoveryError::Inconsistent {
            node: node.clone(),
            index,
            detail,
        };
        match record {
            ParticipantRecord::Init { accounts } => {
                let seed = self.config.hash_seed;
                self.balances = accounts
                    .iter()
                    .cloned()
                    .collect::<Keyed<_, _>>()
                    .reseeded(seed);
                self.ledgers = accounts
                    .iter()
                    .map(|(a, _)| (a.clone(), Arc::default()))
                    .collect::<Keyed<_, _>>()
                    .reseeded(seed);
            }
            ParticipantRecord::Prepared {
                tx_id,
                ts_us: ts,
                epoch,
                ops,
            } => {
                if self.outcomes.contains_key(tx_id) || self.txs.contains_key(tx_id) {
                    return Ok(()); // a duplicate prepare that was logged again: nothing new
                }
                for op in ops {
                    if !self.balances.contains_key(&op.account) {
                        return Err(inconsistent(format!(
                            "{tx_id} prepares unknown account {}",
                            op.account
                        )));
                    }
                    if let Some(holder) = self.locks.get(&op.account) {
                        return Err(inconsistent(format!(
                            "{tx_id} locks {} held by {holder}",
                            op.account
                        )));
                    }
                }
                for op in ops {
                    self.locks.insert(op.account.clone(), tx_id.clone());
                }
                let tx = Tx {
                    ts_us: *ts,
                    epoch: *epoch,
                    ops: ops.clone(),
                    peer: 0,
                    one_phase: false,
                    phase: Phase::Prepared {
                        seq: 0,
                        since_us: 0,
                    },
                };
                self.txs.insert(tx_id.clone(), tx);
            }
            ParticipantRecord::Committed { tx_id, ops } => {
                if self.outcomes.contains_key(tx_id) {
                    return Ok(());
                }
                if let Some(tx) = self.txs.remove(tx_id) {
                    self.unlock(tx_id, &tx.ops);
                }
                self.apply(tx_id, ops).map_err(inconsistent)?;
                self.remember(tx_id.clone(), Done::committed(ops));
            }
            ParticipantRecord::Aborted { tx_id } => {
                if let Some(tx) = self.txs.remove(tx_id) {
                    self.unlock(tx_id, &tx.ops);
                }
                self.remember(tx_id.clone(), Done::aborted());
            }
            ParticipantRecord::Coordinator { cluster, epoch } => {
                self.cluster = cluster.clone();
                self.epoch = *epoch;
            }
            ParticipantRecord::Heuristic {
                tx_id,
                decision,
                ops,
            } => {
                if self.heuristics.contains_key(tx_id) {
                    return Ok(());
                }
                if let Some(tx) = self.txs.remove(tx_id) {
                    self.unlock(tx_id, &tx.ops);
                }
                if *decision == Decision::Commit {
                    self.apply(tx_id, ops).map_err(inconsistent)?;
                }
                self.remember(tx_id.clone(), done_of(*decision, ops));
                self.keep_heuristic(tx_id.clone(), *decision, ops.clone());
            }
            ParticipantRecord::Checkpoint(cp) => {
                let seed = self.config.hash_seed;
                self.balances = cp
                    .accounts
                    .iter()
                    .cloned()
                    .collect::<Keyed<_, _>>()
                    .reseeded(seed);
                self.ledgers = cp
                    .ledgers
                    .iter()
                    .map(|(a, e)| (a.clone(), Arc::new(e.iter().cloned().collect())))
                    .collect::<Keyed<_, _>>()
                    .reseeded(seed);
                for (account, _) in &cp.accounts {
                    self.ledgers.entry(account.clone()).or_default();
                }
                // A checkpoint written under a larger limit keeps its newest.
                let kept = ledger_entries_kept_per_account(self.balances.len());
                self.ledgers.for_each_mut_unordered(|_, ledger| {
                    let extra = ledger.len().saturating_sub(kept);
                    if extra > 0 {
                        Arc::make_mut(ledger).drain(..extra);
                    }
                });
                self.txs.clear();
                self.locks.clear();
                self.outcomes.clear();
                self.heuristics.clear();
                self.heuristic_order.clear();
                self.cluster = cp.cluster.clone();
                self.epoch = cp.epoch;
                for (tx_id, decision, digest) in &cp.outcomes {
                    let done = Done {
                        decision: *decision,
                        digest: *digest,
                    };
                    self.remember(tx_id.clone(), done);
                }
                for (tx_id, decision, ops) in &cp.heuristics {
                    self.keep_heuristic(tx_id.clone(), *decision, ops.clone());
                }
                for (tx_id, ts, epoch, ops) in &cp.prepared {
                    let prepared = ParticipantRecord::Prepared {
                        tx_id: tx_id.clone(),
                        ts_us: *ts,
                        epoch: *epoch,
                        ops: ops.clone(),
                    };
                    self.replay(index, &prepared)?;
                }
            }
        }
        Ok(())
    }

    /// A record of everything durable, to start a rewritten (compacted) log.
    /// Returns the `Persist` seq the rewrite stands for: once the rewrite is
    /// durable, feed `Durable { seq }` as for any record.
    pub fn checkpoint(&mut self) -> (u64, ParticipantRecord) {
        let (seq, snapshot) = self.checkpoint_snapshot();
        let parts = snapshot.parts();
        let cp = ParticipantCheckpoint {
            accounts: parts
                .accounts
                .iter()
                .map(|&(a, b)| (a.clone(), b))
                .collect(),
            ledgers: parts
                .ledgers
                .iter()
                .map(|&(a, e)| (a.clone(), e.iter().cloned().collect()))
                .collect(),
            prepared: parts
                .prepared
                .iter()
                .map(|&(id, ts, epoch, ops)| (id.clone(), ts, epoch, ops.to_vec()))
                .collect(),
            outcomes: parts
                .outcomes
                .iter()
                .map(|&(id, d, digest)| (id.clone(), d, digest))
                .collect(),
            heuristics: parts
                .heuristics
                .iter()
                .map(|&(id, d, ops)| (id.clone(), d, ops.to_vec()))
                .collect(),
            cluster: parts.cluster.cloned(),
            epoch: parts.epoch,
        };
        (seq, ParticipantRecord::Checkpoint(Box::new(cp)))
    }

    /// [`checkpoint`](Self::checkpoint), encoded: the same bytes as
    /// `checkpoint().1.encode()`, from the snapshot (no owned copy).
    pub fn checkpoint_encoded(&mut self) -> (u64, Vec<u8>) {
        let (seq, snapshot) = self.checkpoint_snapshot();
        (seq, snapshot.encode())
    }

    /// Everything durable, taken now, to be encoded later (on another
    /// thread): the remembered outcomes are shared (see
    /// [`Remembered::snapshot`]), and so are the ledgers (each account's, as
    /// a whole); balances, prepared transactions and heuristics are copied.
    /// Outcomes and heuristics go oldest first. [`checkpoint`](Self::checkpoint)
    /// and [`checkpoint_encoded`](Self::checkpoint_encoded) are built from it.
    pub fn checkpoint_snapshot(&mut self) -> (u64, ParticipantSnapshot) {
        let snapshot = ParticipantSnapshot {
            accounts: self
                .balances
                .sorted()
                .into_iter()
                .map(|(a, b)| (a.clone(), *b))
                .collect(),
            ledgers: self
                .ledgers
                .sorted()
                .into_iter()
                .map(|(a, e)| (a.clone(), Arc::clone(e)))
                .collect(),
            prepared: self
                .txs
                .sorted()
                .into_iter()
                .filter(|(_, tx)| matches!(tx.phase, Phase::Prepared { .. }))
                .map(|(id, tx)| (id.clone(), tx.ts_us, tx.epoch, tx.ops.clone()))
                .collect(),
            outcomes: self.outcomes.snapshot(),
            heuristics: self
                .heuristic_order
                .iter()
                .filter_map(|id| {
                    self.heuristics
                        .get(id)
                        .map(|h| (id.clone(), h.decision, h.ops.clone()))
                })
                .collect(),
            cluster: self.cluster.clone(),
            epoch: self.epoch,
        };
        (self.take_seq(), snapshot)
    }

    /// Marks recovered in-doubt transactions as prepared since `now_us` (the
    /// log does not keep wall-clock times).
    pub fn set_recovered_since(&mut self, now_us: u64) {
        self.txs.for_each_mut_unordered(|_, tx| {
            if let Phase::Prepared { since_us, .. } = &mut tx.phase {
                *since_us = now_us;
            }
        });
    }

    /// Makes room for every outcome it may remember, once, so the index
    /// never grows (and stalls the process) while it runs; see
    /// [`Remembered::reserve_all`]. For the processes, not for the model
    /// checker's many copies.
    pub fn reserve_remembered_outcomes(&mut self) {
        self.outcomes.reserve_all();
    }
}
