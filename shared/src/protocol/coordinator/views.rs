//! Read-only views for the driver and the API.

use super::*;

impl Coordinator {
    pub fn active(&self) -> Vec<ActiveTx> {
        self.active
            .sorted()
            .into_iter()
            .map(|(id, tx)| ActiveTx {
                tx_id: id.clone(),
                state: match tx.phase {
                    Phase::Preparing | Phase::AskingOnePhaseOutcome => TxState::Active,
                    Phase::PausedBeforeDecision | Phase::Deciding { .. } => TxState::Prepared,
                    Phase::PausedBeforeCommit | Phase::Committing => TxState::Committed,
                },
                request: tx.request.clone(),
                legs: tx.legs.clone(),
                pending_acks: tx.pending_acks.iter().cloned().collect(),
                started_us: tx.started_us,
            })
            .collect()
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// The first outcome of a finished transaction, if still remembered.
    pub fn finished(&self, tx_id: &str) -> Option<TransferResponse> {
        self.finished_response(tx_id)
    }

    pub(super) fn finished_response(&self, tx_id: &str) -> Option<TransferResponse> {
        let f = self.finished.get(tx_id)?;
        Some(f.response(tx_id, |r| self.legs_of(r)))
    }

    /// A finished transaction with the transfer it was.
    /// A finished transaction with the transfer it was (`None` for a
    /// presumed abort: this log never knew the transfer).
    pub fn finished_with_request(
        &self,
        tx_id: &str,
    ) -> Option<(Option<&TransferRequest>, TransferResponse)> {
        let f = self.finished.get(tx_id)?;
        Some((f.request.as_ref(), f.response(tx_id, |r| self.legs_of(r))))
    }
}
