//! The money audit run after every fault test. The checks live in the
//! coordinator's library (`backend::chaos::audit`), where the dashboard's
//! chaos run uses them too; this reads a cluster's books for them.

pub use backend::chaos::audit::*;
use shared::api::ClusterView;

use crate::Cluster;

/// Reads every account's ledger and [`check`]s the books against `reported`.
pub async fn audit(cluster: &Cluster, view: &ClusterView, reported: &Reported) -> AuditReport {
    let mut books = Books {
        total_cents: view.total_cents,
        expected_total_cents: view.expected_total_cents,
        accounts: Vec::new(),
    };
    for node in &view.nodes {
        for account in &node.accounts {
            books.accounts.push(AccountBook {
                id: account.id.clone(),
                balance_cents: account.balance_cents,
                ledger: cluster.ledger(&account.id).await,
            });
        }
    }
    check(&books, reported)
}
