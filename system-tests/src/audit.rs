//! The money audit run after every fault test: what the API reported must
//! be exactly what the ledgers show.

use std::collections::{BTreeMap, BTreeSet};

use shared::api::ClusterView;

use crate::Cluster;

/// What clients were told.
#[derive(Debug, Default, Clone)]
pub struct Reported {
    pub committed: BTreeSet<String>,
    pub aborted: BTreeSet<String>,
    /// Answers that did not say (503, timeouts): either outcome is allowed,
    /// but it must be all-or-nothing.
    pub unknown: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub struct AuditReport {
    pub total_cents: i64,
    pub expected_total_cents: i64,
    pub violations: Vec<String>,
}

/// Checks, on a settled cluster: the total is conserved; no balance is
/// negative; every committed transfer is on every ledger it touches, exactly
/// once; no aborted transfer is on any ledger; every transaction on a ledger
/// is all-or-nothing (its entries sum to zero and it has both legs); no
/// ledger names a transaction nobody started; each ledger's running balance
/// is consistent.
pub async fn audit(cluster: &Cluster, view: &ClusterView, reported: &Reported) -> AuditReport {
    let mut violations = Vec::new();
    if view.total_cents != view.expected_total_cents {
        violations.push(format!(
            "total is {} cents, expected {}",
            view.total_cents, view.expected_total_cents
        ));
    }
    let mut per_tx: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for node in &view.nodes {
        for account in &node.accounts {
            if account.balance_cents < 0 {
                violations.push(format!(
                    "account {} is negative: {}",
                    account.id, account.balance_cents
                ));
            }
            let ledger = cluster.ledger(&account.id).await;
            let mut seen = BTreeSet::new();
            for (i, entry) in ledger.iter().enumerate() {
                if !seen.insert(entry.tx_id.clone()) {
                    violations.push(format!(
                        "{} is applied twice on {}",
                        entry.tx_id, account.id
                    ));
                }
                per_tx
                    .entry(entry.tx_id.clone())
                    .or_default()
                    .push((account.id.clone(), entry.delta_cents));
                if i > 0 && ledger[i - 1].balance_cents + entry.delta_cents != entry.balance_cents {
                    violations.push(format!(
                        "ledger of {} is not a running balance at entry {i}",
                        account.id
                    ));
                }
            }
            if let Some(last) = ledger.last() {
                if last.balance_cents != account.balance_cents {
                    violations.push(format!(
                        "ledger of {} ends at {} but the balance is {}",
                        account.id, last.balance_cents, account.balance_cents
                    ));
                }
            }
        }
    }
    for (tx_id, legs) in &per_tx {
        let sum: i64 = legs.iter().map(|(_, d)| d).sum();
        if sum != 0 || legs.len() < 2 {
            violations.push(format!("{tx_id} is partly applied: {legs:?}"));
        }
        if reported.aborted.contains(tx_id) {
            violations.push(format!(
                "{tx_id} was reported aborted but is on a ledger: {legs:?}"
            ));
        }
        let known = reported.committed.contains(tx_id) || reported.unknown.contains(tx_id);
        if !known {
            violations.push(format!("{tx_id} is on a ledger but no client started it"));
        }
    }
    for tx_id in &reported.committed {
        if !per_tx.contains_key(tx_id) {
            violations.push(format!(
                "{tx_id} was reported committed but is on no ledger"
            ));
        }
    }
    AuditReport {
        total_cents: view.total_cents,
        expected_total_cents: view.expected_total_cents,
        violations,
    }
}
