//! The coordinator a node serves: bound to its first cluster (durably),
//! never obeying an epoch older than the newest it has seen; a newer epoch
//! closes older connections and aborts their unvoted transactions.

use super::*;

impl Participant {
    /// A coordinator proved who it is; accept it if it is of this node's
    /// cluster and not older than the newest epoch seen.
    pub(super) fn on_connect(
        &mut self,
        now_us: u64,
        from: PeerId,
        cluster: ClusterId,
        epoch: Epoch,
        legacy_history: bool,
        out: &mut Vec<Action>,
    ) {
        if let Err(message) = self.check_coordinator(&cluster, epoch, legacy_history) {
            out.push(Action::Close {
                peer: from,
                message,
            });
            return;
        }
        if self.cluster.as_ref() != Some(&cluster) || epoch > self.epoch {
            self.cluster = Some(cluster.clone());
            self.epoch = epoch;
            let record = ParticipantRecord::Coordinator {
                cluster: Some(cluster),
                epoch,
            };
            self.bound_seq = self.persist(record, true, out);
            self.retire_older_epochs(now_us, epoch, out);
        }
        self.coordinators.insert(from, epoch);
        let bound_seq = self.bound_seq;
        self.send_when_durable(bound_seq, Action::Accept { peer: from }, out);
    }

    /// Why a coordinator of `cluster` at `epoch` must be refused, if it must.
    pub(super) fn check_coordinator(
        &self,
        cluster: &ClusterId,
        epoch: Epoch,
        legacy_history: bool,
    ) -> Result<(), String> {
        let node = &self.config.node;
        match &self.cluster {
            Some(bound) if bound != cluster => {
                return Err(format!(
                    "node {node} belongs to cluster {bound}, not to this coordinator's cluster {cluster}: \
                     a coordinator with another log (a new data dir, or a second coordinator) must never \
                     decide for this node's transactions. Start the coordinator that owns its log; or, if \
                     that log is lost for good, resolve what is in doubt with heuristic decisions and \
                     restart the node with --forget-cluster"
                ));
            }
            Some(_) => {}
            None => {
                let legacy: Vec<&TxId> = self
                    .txs
                    .sorted()
                    .into_iter()
                    .filter(|(_, tx)| tx.epoch == 0 && matches!(tx.phase, Phase::Prepared { .. }))
                    .map(|(id, _)| id)
                    .collect();
                if !legacy.is_empty() && !legacy_history {
                    let shown: Vec<&str> = legacy.iter().take(10).map(|id| id.as_str()).collect();
                    return Err(format!(
                        "node {node} holds {} transaction(s) in doubt from before cluster identities ({}), \
                         and this coordinator's log is new: it never decided them, so it must not presume \
                         them aborted. Start the coordinator whose log decided them, or resolve them with \
                         heuristic decisions (participant-admin heuristic)",
                        legacy.len(),
                        shown.join(", ")
                    ));
                }
            }
        }
        if epoch < self.epoch {
            return Err(format!(
                "node {node} has seen coordinator epoch {}, newer than this coordinator's {epoch}: a newer \
                 coordinator has taken over (or this one's log was restored from an older copy); refusing it",
                self.epoch
            ));
        }
        Ok(())
    }

    /// A newer coordinator epoch is accepted: connections of older ones are
    /// closed, and their transactions that have not voted abort (they can
    /// only have come from a coordinator that is gone).
    pub(super) fn retire_older_epochs(&mut self, now_us: u64, epoch: Epoch, out: &mut Vec<Action>) {
        let older: Vec<PeerId> = self
            .coordinators
            .iter()
            .filter(|(_, e)| **e < epoch)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in older {
            self.coordinators.remove(&peer);
            out.push(Action::Close {
                peer,
                message: format!("a coordinator of a newer epoch ({epoch}) took over"),
            });
        }
        let stale: Vec<(u64, TxId)> = self
            .waiting
            .iter()
            .filter(|(_, id)| self.txs.get(id).is_some_and(|tx| tx.epoch < epoch))
            .cloned()
            .collect();
        if stale.is_empty() {
            return;
        }
        for (ts, tx_id) in stale {
            self.waiting.remove(&(ts, tx_id.clone()));
            if let Some(tx) = self.txs.remove(&tx_id) {
                self.unlock(&tx_id, &tx.ops);
                self.remember(tx_id, Done::aborted());
            }
        }
        self.grant_waiting(now_us, out);
    }

    /// An operator releases this node from its cluster (so that another
    /// coordinator may bind it), which is only allowed with nothing in
    /// doubt: returns the record to force, or why not.
    pub fn forget_cluster(&mut self) -> Result<ParticipantRecord, String> {
        let prepared: Vec<TxId> = self
            .txs
            .sorted_keys_where(|tx| matches!(tx.phase, Phase::Prepared { .. }));
        if !prepared.is_empty() {
            return Err(format!(
                "node {} holds {} transaction(s) in doubt ({}): resolve them first (the coordinator that \
                 prepared them, or heuristic decisions with participant-admin), then forget the cluster",
                self.config.node,
                prepared.len(),
                prepared.join(", ")
            ));
        }
        self.cluster = None;
        self.epoch = 0;
        Ok(ParticipantRecord::Coordinator {
            cluster: None,
            epoch: 0,
        })
    }
}
