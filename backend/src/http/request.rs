//! What several handlers check before they act: a JSON body parsed with an
//! error that says what is expected, demo mode, a known node.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::App;

/// Parses a JSON body, with errors that say what was wrong and what is expected.
pub fn parse_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    example: &str,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        ApiError::new(
            e.status(),
            format!("cannot read the request body: {}", e.body_text()),
        )
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!(
            "the request has no body: send JSON with Content-Type: application/json, e.g. {example}"
        )));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}; expected {example}")))
}

pub fn require_demo(app: &App) -> Result<(), ApiError> {
    if app.demo_mode() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "fault injection is only allowed in demo mode; start the coordinator with --demo",
        ))
    }
}

pub fn require_node(app: &App, id: &str) -> Result<(), ApiError> {
    if app.supervisor.node_ids().iter().any(|n| n == id) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no node '{id}'; the nodes are {}",
            app.supervisor.node_ids().join(", ")
        )))
    }
}
