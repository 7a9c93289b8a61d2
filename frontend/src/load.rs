//! The concurrency demo: N random transfers, C at a time, run from the
//! browser. This module plans the transfers and keeps the tally; the panel
//! runs the workers. Randomness comes in as an argument so tests are exact.

use std::collections::BTreeMap;

use shared::api::{Outcome, TransferRequest, TransferResponse};
use shared::wire::AccountId;

use crate::format::reason_label;

/// Most transfers one run may plan.
pub const LOAD_TRANSFERS_MAX: u32 = 5_000;
/// Most transfers in flight at once from this browser.
pub const LOAD_CONCURRENCY_MAX: u32 = 64;
/// Random amounts lie between these (inclusive): $1.00 to $50.00.
pub const LOAD_AMOUNT_CENTS_MIN: i64 = 100;
pub const LOAD_AMOUNT_CENTS_MAX: i64 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadPlan {
    pub transfers: u32,
    pub concurrency: u32,
}

/// Reads the two number fields of the panel.
pub fn parse_plan(transfers: &str, concurrency: &str) -> Result<LoadPlan, String> {
    let transfers: u32 = transfers.trim().parse().map_err(|_| {
        format!("the number of transfers must be a whole number from 1 to {LOAD_TRANSFERS_MAX}")
    })?;
    let concurrency: u32 = concurrency.trim().parse().map_err(|_| {
        format!("concurrency must be a whole number from 1 to {LOAD_CONCURRENCY_MAX}")
    })?;
    if transfers == 0 || transfers > LOAD_TRANSFERS_MAX {
        return Err(format!(
            "the number of transfers must be from 1 to {LOAD_TRANSFERS_MAX}"
        ));
    }
    if concurrency == 0 || concurrency > LOAD_CONCURRENCY_MAX {
        return Err(format!(
            "concurrency must be from 1 to {LOAD_CONCURRENCY_MAX}"
        ));
    }
    Ok(LoadPlan {
        transfers,
        concurrency: concurrency.min(transfers),
    })
}

/// A transfer between two different random accounts, of a random amount.
/// `random` returns values in `[0, 1)` like `Math.random()`. `None` when
/// there are fewer than two accounts.
pub fn random_transfer(
    accounts: &[AccountId],
    random: &mut impl FnMut() -> f64,
) -> Option<TransferRequest> {
    if accounts.len() < 2 {
        return None;
    }
    let mut pick = |n: usize| ((random() * n as f64) as usize).min(n - 1);
    let from = pick(accounts.len());
    // Pick among the others so `to` never equals `from`.
    let mut to = pick(accounts.len() - 1);
    if to >= from {
        to += 1;
    }
    let span = (LOAD_AMOUNT_CENTS_MAX - LOAD_AMOUNT_CENTS_MIN + 1) as usize;
    let amount_cents = LOAD_AMOUNT_CENTS_MIN + pick(span) as i64;
    Some(TransferRequest {
        from: accounts[from].clone(),
        to: accounts[to].clone(),
        amount_cents,
        tx_id: None,
    })
}

/// How one transfer of the run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadResult {
    /// A 200 or 409 answer.
    Answered(TransferResponse),
    /// Anything else (503 while the coordinator recovers, network errors),
    /// by a short description.
    Failed(String),
}

/// The running tally of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadSummary {
    pub planned: u32,
    pub done: u32,
    pub committed: u32,
    /// By readable reason.
    pub aborted_by_reason: BTreeMap<String, u32>,
    /// By readable error.
    pub failed_by_error: BTreeMap<String, u32>,
    /// Sum of the reported durations of answered transfers.
    pub answered_duration_ms: f64,
    pub answered: u32,
}

impl LoadSummary {
    pub fn new(planned: u32) -> Self {
        LoadSummary {
            planned,
            ..Default::default()
        }
    }

    pub fn record(&mut self, result: &LoadResult) {
        self.done += 1;
        match result {
            LoadResult::Answered(response) => {
                self.answered += 1;
                self.answered_duration_ms += response.duration_ms;
                match response.outcome {
                    Outcome::Committed => self.committed += 1,
                    Outcome::Aborted => {
                        let reason = response
                            .reason
                            .map(reason_label)
                            .unwrap_or("no reason given");
                        *self
                            .aborted_by_reason
                            .entry(reason.to_string())
                            .or_default() += 1;
                    }
                }
            }
            LoadResult::Failed(error) => {
                *self.failed_by_error.entry(error.clone()).or_default() += 1
            }
        }
    }

    pub fn aborted(&self) -> u32 {
        self.aborted_by_reason.values().sum()
    }

    pub fn failed(&self) -> u32 {
        self.failed_by_error.values().sum()
    }

    /// 0..=1
    pub fn progress(&self) -> f64 {
        if self.planned == 0 {
            return 0.0;
        }
        (self.done as f64 / self.planned as f64).min(1.0)
    }

    pub fn mean_duration_ms(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.answered_duration_ms / self.answered as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::wire::AbortReason;

    fn accounts() -> Vec<AccountId> {
        vec!["A".into(), "B".into(), "C".into()]
    }

    #[test]
    fn plans_are_bounded() {
        assert_eq!(
            parse_plan("100", "8"),
            Ok(LoadPlan {
                transfers: 100,
                concurrency: 8
            })
        );
        assert_eq!(
            parse_plan(" 3 ", "10"),
            Ok(LoadPlan {
                transfers: 3,
                concurrency: 3
            })
        );
        assert!(parse_plan("0", "1").is_err());
        assert!(parse_plan("10", "0").is_err());
        assert!(parse_plan("x", "1").is_err());
        assert!(parse_plan(&(LOAD_TRANSFERS_MAX + 1).to_string(), "1").is_err());
        assert!(parse_plan("10", &(LOAD_CONCURRENCY_MAX + 1).to_string()).is_err());
    }

    #[test]
    fn random_transfers_never_go_to_themselves_and_stay_in_range() {
        // A cheap deterministic generator covering [0, 1).
        let mut state = 12_345u64;
        let mut random = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut directions = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let t = random_transfer(&accounts(), &mut random).unwrap();
            assert_ne!(t.from, t.to);
            assert!((LOAD_AMOUNT_CENTS_MIN..=LOAD_AMOUNT_CENTS_MAX).contains(&t.amount_cents));
            directions.insert((t.from, t.to));
        }
        assert_eq!(directions.len(), 6, "every direction is used");
    }

    #[test]
    fn extremes_of_the_random_source_stay_valid() {
        let t = random_transfer(&accounts(), &mut || 0.999_999_999).unwrap();
        assert_eq!(
            (t.from.as_str(), t.to.as_str(), t.amount_cents),
            ("C", "B", LOAD_AMOUNT_CENTS_MAX)
        );
        let t = random_transfer(&accounts(), &mut || 0.0).unwrap();
        assert_eq!(
            (t.from.as_str(), t.to.as_str(), t.amount_cents),
            ("A", "B", LOAD_AMOUNT_CENTS_MIN)
        );
        assert!(random_transfer(&accounts()[..1], &mut || 0.5).is_none());
    }

    #[test]
    fn summary_tallies_outcomes_reasons_and_errors() {
        let answer = |outcome, reason| {
            LoadResult::Answered(TransferResponse {
                tx_id: "t".into(),
                outcome,
                reason,
                detail: None,
                votes: vec![],
                duration_ms: 2.0,
            })
        };
        let mut summary = LoadSummary::new(4);
        summary.record(&answer(Outcome::Committed, None));
        summary.record(&answer(Outcome::Aborted, Some(AbortReason::LockConflict)));
        summary.record(&answer(Outcome::Aborted, Some(AbortReason::LockConflict)));
        assert_eq!(summary.progress(), 0.75);
        summary.record(&LoadResult::Failed("coordinator down (503)".into()));
        assert_eq!(summary.committed, 1);
        assert_eq!(summary.aborted(), 2);
        assert_eq!(summary.aborted_by_reason.get("lock conflict"), Some(&2));
        assert_eq!(summary.failed(), 1);
        assert_eq!(summary.progress(), 1.0);
        assert_eq!(summary.mean_duration_ms(), Some(2.0));
    }
}
