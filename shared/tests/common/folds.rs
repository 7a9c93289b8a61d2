//! The fold of every transaction's events (`shared::fold`), checked against
//! the real coordinator as the simulation emits them: after every event,
//! against the coordinator's own view after every step, and against what the
//! nodes applied once the run settles.
#![allow(dead_code)] // only the simulation uses it

use std::collections::{BTreeMap, BTreeSet};

use shared::api::{Outcome, TxState, VoteView};
use shared::events::EventKind;
use shared::fold::{Phase, TxFold};
use shared::protocol::coordinator::ActiveTx;
use shared::wire::TxId;

/// One fold per `tx_id`, as the hub keeps them: across coordinator crashes.
#[derive(Default)]
pub struct Folds {
    folds: BTreeMap<TxId, TxFold>,
    /// Undecided when a coordinator crashed: a COMMIT record written but
    /// never reported durable may have survived, and the recovered
    /// coordinator commits with no event saying so until the acks come.
    behind: BTreeSet<TxId>,
    /// What the latest attempt under each tx_id moves (from, to, cents): a
    /// client may re-use an id for another transfer, and the fold follows
    /// the latest.
    started: BTreeMap<TxId, Transfer>,
}

/// A transfer as its `tx_started` event names it: from, to, cents.
pub type Transfer = (String, String, i64);

fn decided(state: TxState) -> bool {
    matches!(state, TxState::Committed | TxState::Aborted)
}

fn pending(fold: &TxFold) -> Vec<String> {
    fold.pending_acks().cloned().collect()
}

impl Folds {
    /// Folds one emitted event (at the simulated `now_us`) and checks what
    /// holds after any event.
    pub fn apply(&mut self, now_us: u64, kind: &EventKind) -> Result<(), String> {
        let Some(tx_id) = kind.tx_id() else {
            return Ok(());
        };
        if !self.folds.contains_key(tx_id) {
            self.folds.insert(tx_id.to_string(), TxFold::new());
        }
        let Some(fold) = self.folds.get_mut(tx_id) else {
            return Ok(());
        };
        if let EventKind::TxStarted {
            from,
            to,
            amount_cents,
            ..
        } = kind
        {
            let transfer = (from.clone(), to.clone(), *amount_cents);
            self.started.insert(tx_id.to_string(), transfer);
        }
        let before = fold.state();
        let ended = fold.apply(now_us, kind);
        let after = fold.state();
        let new_attempt = matches!(kind, EventKind::TxStarted { .. });
        if !new_attempt && decided(before) && after != before {
            return Err(format!("{tx_id}: {before:?} became {after:?} at {kind:?}"));
        }
        if !new_attempt && before == TxState::Prepared && after == TxState::Active {
            return Err(format!("{tx_id}: prepared went back to active at {kind:?}"));
        }
        let all_ready = fold
            .votes()
            .all(|(_, cast)| matches!(cast, Some((VoteView::Ready, _))));
        if after == TxState::Prepared && !all_ready {
            return Err(format!("{tx_id}: prepared without every vote ready"));
        }
        let may_owe = after == TxState::Committed && !fold.one_phase() && !fold.ended();
        if !may_owe && fold.pending_acks().next().is_some() {
            return Err(format!(
                "{tx_id}: {after:?} (one-phase {}, ended {}) owes acks {:?}",
                fold.one_phase(),
                fold.ended(),
                pending(fold)
            ));
        }
        if let Some(phase) = ended {
            let span = fold.span(phase);
            if span.ended != Some(now_us) {
                return Err(format!("{tx_id}: {phase:?} ended at {kind:?} but not now"));
            }
            if span.started.is_some_and(|started| started > now_us) {
                return Err(format!("{tx_id}: {phase:?} ended before it started"));
            }
            let complete = match phase {
                Phase::PrepareRound => fold.votes().all(|(_, cast)| cast.is_some()),
                Phase::DecisionForce => after == TxState::Committed,
                Phase::CommitRound => after == TxState::Committed,
            };
            if !complete {
                return Err(format!("{tx_id}: {phase:?} ended at {kind:?} too early"));
            }
        }
        Ok(())
    }

    /// The coordinator crashed: its successor may know decisions that no
    /// event told.
    pub fn coordinator_crashed(&mut self) {
        let undecided = self.folds.iter().filter(|(_, f)| !decided(f.state()));
        self.behind = undecided.map(|(id, _)| id.clone()).collect();
    }

    /// Every transaction the coordinator runs has the state it gives it (or
    /// is a commit recovered from a record no event reported), and owes
    /// acks only from nodes the coordinator still waits for.
    pub fn check_running(&self, active: &[ActiveTx]) -> Result<(), String> {
        for tx in active {
            let Some(fold) = self.folds.get(&tx.tx_id) else {
                return Err(format!("{} runs but was never started", tx.tx_id));
            };
            let recovered_unseen = self.behind.contains(&tx.tx_id)
                && !decided(fold.state())
                && tx.state == TxState::Committed;
            if fold.state() != tx.state && !recovered_unseen {
                return Err(format!(
                    "{}: the fold says {:?}, the coordinator {:?}",
                    tx.tx_id,
                    fold.state(),
                    tx.state
                ));
            }
            let waiting = !tx.pending_acks.is_empty();
            let owed = pending(fold);
            if waiting && owed.iter().any(|n| !tx.pending_acks.contains(n)) {
                return Err(format!(
                    "{}: the fold owes acks {owed:?}, the coordinator waits for {:?}",
                    tx.tx_id, tx.pending_acks
                ));
            }
        }
        Ok(())
    }

    /// Once everything is healed and quiet: no transaction is left
    /// prepared, every decided one agrees with its clients (`told`: those of
    /// the same transfer) and with what the
    /// nodes applied (`applied`: the latest attempt under that id, or any
    /// when no attempt started in view, on every leg), a two-phase one is decided
    /// as its client was told and committed if the nodes applied it, and
    /// every two-phase commit has ended with no ack owed.
    pub fn check_settled(
        &self,
        told: impl Fn(&str, Option<&Transfer>) -> Option<Outcome>,
        applied: impl Fn(&str, Option<&Transfer>) -> bool,
    ) -> Result<(), String> {
        for (tx_id, fold) in &self.folds {
            let state = fold.state();
            if state == TxState::Prepared {
                return Err(format!("{tx_id} is still prepared once settled"));
            }
            let is_applied = applied(tx_id, self.started.get(tx_id));
            if decided(state) && (state == TxState::Committed) != is_applied {
                return Err(format!("{tx_id} is {state:?}; applied: {is_applied}"));
            }
            if !fold.one_phase() && is_applied && state != TxState::Committed {
                return Err(format!("{tx_id} is applied but {state:?}"));
            }
            let expected = match told(tx_id, self.started.get(tx_id)) {
                Some(Outcome::Committed) => Some(TxState::Committed),
                Some(Outcome::Aborted) => Some(TxState::Aborted),
                None => None,
            };
            // A one-phase transfer forgotten in a crash runs again when
            // retried: that attempt may be left unanswered.
            let may_be_undecided = fold.one_phase() && !decided(state);
            if expected.is_some_and(|s| s != state) && !may_be_undecided {
                return Err(format!(
                    "{tx_id} is {state:?}; its client was told {expected:?}"
                ));
            }
            let open = fold.pending_acks().next().is_some() || !fold.ended();
            if state == TxState::Committed && !fold.one_phase() && open {
                return Err(format!(
                    "{tx_id}: committed, ended {}, still owes {:?}",
                    fold.ended(),
                    pending(fold)
                ));
            }
        }
        Ok(())
    }
}
