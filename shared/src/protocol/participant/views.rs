//! Read-only views for the driver's queries.

use super::*;

impl Participant {
    pub fn node(&self) -> &NodeId {
        &self.config.node
    }

    pub fn balances(&self) -> Vec<AccountBalance> {
        self.balances
            .sorted()
            .into_iter()
            .map(|(id, b)| AccountBalance {
                id: id.clone(),
                balance_cents: *b,
            })
            .collect()
    }

    pub fn ledger(&self, account: &str) -> Option<Vec<LedgerEntry>> {
        self.ledgers
            .get(account)
            .map(|l| l.iter().cloned().collect())
    }

    /// Transactions that voted (or will vote, once durable) `ready` and wait
    /// for the decision. Only durable ones are reported.
    pub fn in_doubt(&self, now_us: u64) -> Vec<InDoubtTx> {
        self.txs
            .sorted()
            .into_iter()
            .filter_map(|(id, tx)| match tx.phase {
                Phase::Prepared { seq, since_us } if seq <= self.durable_seq => Some(InDoubtTx {
                    tx_id: id.clone(),
                    prepared_for_ms: now_us.saturating_sub(since_us) / 1000,
                }),
                _ => None,
            })
            .collect()
    }

    pub fn locked_accounts(&self) -> Vec<AccountId> {
        self.locks.sorted_keys_where(|_| true)
    }

    /// Heuristic decisions taken here, oldest first.
    pub fn heuristics(&self) -> Vec<HeuristicOutcome> {
        self.heuristic_order
            .iter()
            .filter_map(|id| {
                let h = self.heuristics.get(id)?;
                Some(HeuristicOutcome {
                    tx_id: id.clone(),
                    decision: h.decision,
                    ops: h.ops.clone(),
                    coordinator_decision: h.coordinator_decision,
                })
            })
            .collect()
    }

    pub fn outcome(&self, tx_id: &str) -> Option<Decision> {
        self.outcomes.get(tx_id).map(|done| done.decision)
    }

    /// The cluster this node serves, once bound.
    pub fn cluster(&self) -> Option<&ClusterId> {
        self.cluster.as_ref()
    }

    /// The highest coordinator epoch this node has seen.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Whether `peer` is an accepted coordinator connection.
    pub fn is_coordinator(&self, peer: PeerId) -> bool {
        self.coordinators.contains_key(&peer)
    }

    /// Transactions holding or waiting for locks (for limits and display).
    pub fn active_count(&self) -> usize {
        self.txs.len()
    }
}
