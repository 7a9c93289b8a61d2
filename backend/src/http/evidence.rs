//! `GET /api/transactions/{tx_id}/evidence`: what one transaction cost and
//! what it did (from its events), and its own audit, each leg looked up in
//! its account's ledger on its node. The computation is `shared::evidence`,
//! which the dashboard runs too.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use shared::api::ErrorBody;
use shared::evidence::{audit, evidence, TransactionEvidence, TxEvents};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::request::IdPath;
use super::routes::{find_transaction, read_ledger};
use crate::app::App;

pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new().routes(routes!(get_evidence))
}

#[utoipa::path(get, path = "/api/transactions/{tx_id}/evidence", tag = "transfers",
    description = "What the transaction cost (messages sent and received per process, forced log writes, round \
                   trips, the time of each phase, lock waits), from its event timeline; and its audit: each \
                   operation of each leg looked up in its account's ledger, found exactly once if committed, \
                   nowhere if aborted. A ledger that cannot be read makes its checks `unknown`, never `ok`.",
    params(("tx_id" = String, Path, description = "The transaction id")),
    responses(
        (status = 200, description = "Its cost and its audit (the cost is empty once its timeline left the \
                                      recent history)", body = TransactionEvidence),
        (status = 404, description = "Unknown transaction", body = ErrorBody),
    ))]
async fn get_evidence(
    State(app): State<Arc<App>>,
    IdPath(tx_id): IdPath<String>,
) -> Result<Json<TransactionEvidence>, ApiError> {
    let detail = find_transaction(&app, &tx_id)
        .await
        .ok_or_else(|| ApiError::not_found(format!("no transaction '{tx_id}' is known")))?;
    let neighbours = app.hub.neighbours(&tx_id);
    let others: Vec<TxEvents<'_>> = neighbours
        .iter()
        .map(|(id, legs, events)| TxEvents {
            tx_id: id,
            legs,
            events,
        })
        .collect();
    let this = TxEvents {
        tx_id: &tx_id,
        legs: &detail.legs,
        events: &detail.timeline,
    };
    let cost = evidence(this, &others);
    let mut ledgers = BTreeMap::new();
    for leg in &detail.legs {
        for op in &leg.ops {
            if ledgers.contains_key(&op.account) {
                continue;
            }
            let entries = read_ledger(&app, &leg.node, &op.account)
                .await
                .map_err(|e| e.message);
            ledgers.insert(op.account.clone(), entries);
        }
    }
    let state = detail.summary.state;
    let audit = audit(&tx_id, state, &detail.legs, &ledgers);
    if audit
        .checks
        .iter()
        .any(|c| c.verdict == shared::evidence::Verdict::Discrepancy)
    {
        tracing::warn!(%tx_id, ?audit, "a transaction's audit found a discrepancy in the ledgers");
    }
    Ok(Json(TransactionEvidence {
        tx_id,
        state,
        cost,
        audit,
    }))
}
