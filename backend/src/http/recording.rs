//! The recorded event stream, for the dashboard's timeline and for
//! export: `GET /api/recording/info` says what is recorded, `GET
//! /api/recording?from_seq=&to_seq=` gives the events as JSON lines (the
//! `shared::recording` format: a header line, then one event per line),
//! starting at the latest snapshot at or before `from_seq` so the answer
//! replays on its own.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query as UrlQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use shared::api::RecordingInfo;
use shared::recording::{self, Header};

use super::error::ApiError;
use crate::app::App;

/// The content type of JSON lines.
const JSON_LINES: &str = "application/x-ndjson";
/// Chunks of the answer waiting to be sent.
const CHUNKS_QUEUED_MAX: usize = 8;

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/api/recording", get(events))
        .route("/api/recording/info", get(info))
}

async fn info(State(app): State<Arc<App>>) -> Json<RecordingInfo> {
    Json(match app.hub.recorder() {
        Some(recorder) => recorder.info(),
        None => RecordingInfo {
            enabled: false,
            version: recording::VERSION,
            ..RecordingInfo::default()
        },
    })
}

fn seq_param(params: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|text| {
            text.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("{name} must be a whole number (got '{text}')"))
            })
        })
        .transpose()
}

async fn events(
    State(app): State<Arc<App>>,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if let Some(unknown) = params.keys().find(|k| *k != "from_seq" && *k != "to_seq") {
        return Err(ApiError::bad_request(format!(
            "unknown parameter '{unknown}'; the parameters are from_seq and to_seq"
        )));
    }
    let Some(recorder) = app.hub.recorder() else {
        return Err(ApiError::not_found(
            "this coordinator does not record its events; start it with --demo or --recording-bytes-max",
        ));
    };
    let from_seq = seq_param(&params, "from_seq")?.unwrap_or(0);
    let to_seq = seq_param(&params, "to_seq")?.unwrap_or(u64::MAX);
    if from_seq > to_seq {
        return Err(ApiError::bad_request(format!(
            "from_seq ({from_seq}) is after to_seq ({to_seq})"
        )));
    }
    let plan = recorder.plan(from_seq, to_seq);
    let note = match to_seq {
        u64::MAX => format!("events from {} on", plan.start),
        end => format!("events {} to {end}", plan.start),
    };
    let (chunks, mut receiver) = tokio::sync::mpsc::channel::<String>(CHUNKS_QUEUED_MAX);
    let header_line = Header::new("coordinator", Some(note)).line();
    let _ = chunks.try_send(header_line);
    tokio::task::spawn_blocking(move || plan.read(|chunk| chunks.blocking_send(chunk).is_ok()));
    let stream = futures_util::stream::poll_fn(move |cx| {
        receiver
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok::<_, std::io::Error>(Bytes::from(c))))
    });
    let file_name = format!(
        "attachment; filename=\"tpc-recording-{}.{}\"",
        crate::hub::unix_ms(),
        recording::EXTENSION
    );
    Ok((
        [
            (header::CONTENT_TYPE, JSON_LINES.to_string()),
            (header::CONTENT_DISPOSITION, file_name),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
