//! The dashboard's chaos run (demo mode; starting and stopping answer 403
//! otherwise): `POST /api/chaos` starts one (one at a time: 409 while one
//! runs), `GET /api/chaos` reads its progress and verdict, `DELETE
//! /api/chaos` stops its faults early (it still heals and audits). The run
//! itself is `crate::chaos::page`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use shared::api::{ChaosRequest, ChaosRun, ErrorBody};
use shared::limits::{
    CHAOS_CLIENTS_MAX, CHAOS_FAULT_INTERVAL_MS_MAX, CHAOS_FAULT_INTERVAL_MS_MIN, CHAOS_SECONDS_MAX,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::request::{parse_optional_body, require_demo};
use crate::app::App;
use crate::chaos::page::{self, StartError};

pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new().routes(routes!(get_chaos, start_chaos, stop_chaos))
}

#[utoipa::path(get, path = "/api/chaos", tag = "faults",
    description = "The current or last chaos run: its progress (requests by answer, faults so far) and, once \
                   finished, the audit's verdict. `state` is `idle` until a run starts.",
    responses((status = 200, description = "The run", body = ChaosRun)))]
async fn get_chaos(State(app): State<Arc<App>>) -> Json<ChaosRun> {
    Json(app.chaos.snapshot())
}

#[utoipa::path(post, path = "/api/chaos", tag = "faults",
    description = "Starts a chaos run on the demo cluster: `clients` clients run transfers (retrying and re-using \
                   tx_ids) for `seconds` while a fault every ~`fault_interval_ms` kills or restarts a node, crashes \
                   the coordinator's engine or delays, cuts or duplicates a link. Then every link is healed, every \
                   node restarted, the cluster settles and the ledgers are audited. Follow it with GET /api/chaos.",
    request_body(content = Option<ChaosRequest>, description = "Optional; every field has a default"),
    responses(
        (status = 202, description = "Started", body = ChaosRun),
        (status = 400, description = "Bad JSON, not an object, or unknown fields", body = ErrorBody),
        (status = 403, description = "Not in demo mode", body = ErrorBody),
        (status = 409, description = "A chaos run is already in progress", body = ErrorBody),
        (status = 422, description = "A value out of range, or fewer than two accounts", body = ErrorBody),
    ))]
async fn start_chaos(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ChaosRun>), ApiError> {
    require_demo(&app)?;
    let request: ChaosRequest = parse_optional_body(
        body,
        r#"{"seconds": 10, "clients": 4, "fault_interval_ms": 700}"#,
    )?;
    check(&request)?;
    match page::start(&app, &request) {
        Ok(run) => Ok((StatusCode::ACCEPTED, Json(run))),
        Err(e @ StartError::Running) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(e @ StartError::TooFewAccounts(_)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        )),
    }
}

fn check(request: &ChaosRequest) -> Result<(), ApiError> {
    let out_of_range = |what: String| Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, what));
    if !(1..=CHAOS_SECONDS_MAX).contains(&request.seconds) {
        return out_of_range(format!(
            "seconds must be between 1 and {CHAOS_SECONDS_MAX} (got {})",
            request.seconds
        ));
    }
    if !(1..=CHAOS_CLIENTS_MAX).contains(&request.clients) {
        return out_of_range(format!(
            "clients must be between 1 and {CHAOS_CLIENTS_MAX} (got {})",
            request.clients
        ));
    }
    if !(CHAOS_FAULT_INTERVAL_MS_MIN..=CHAOS_FAULT_INTERVAL_MS_MAX)
        .contains(&request.fault_interval_ms)
    {
        return out_of_range(format!(
            "fault_interval_ms must be between {CHAOS_FAULT_INTERVAL_MS_MIN} and {CHAOS_FAULT_INTERVAL_MS_MAX} (got {})",
            request.fault_interval_ms
        ));
    }
    Ok(())
}

#[utoipa::path(delete, path = "/api/chaos", tag = "faults",
    description = "Stops the running chaos run's faults and clients now; it then heals, settles and audits as \
                   usual (follow it with GET /api/chaos).",
    responses(
        (status = 200, description = "Stopping", body = ChaosRun),
        (status = 403, description = "Not in demo mode", body = ErrorBody),
        (status = 409, description = "No chaos run is running (none started, or it is already settling or done)",
            body = ErrorBody),
    ))]
async fn stop_chaos(State(app): State<Arc<App>>) -> Result<Json<ChaosRun>, ApiError> {
    require_demo(&app)?;
    if !app.chaos.stop() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no chaos run is running (none started, or it is already settling or done)",
        ));
    }
    Ok(Json(app.chaos.snapshot()))
}
