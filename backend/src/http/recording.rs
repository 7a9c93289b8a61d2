//! The recorded event stream, for the dashboard's timeline and for
//! export: `GET /api/recording/info` says what is recorded, `GET
//! /api/recording?from_seq=&to_seq=` gives the events as JSON lines (the
//! `shared::recording` format: a header line, then one event per line),
//! starting at the latest snapshot at or before `from_seq` so the answer
//! replays on its own.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use shared::api::{ErrorBody, RecordingInfo};
use shared::recording::{self, Header};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::request::{whole_number, QueryParams};
use crate::app::App;

/// The content type of JSON lines.
const JSON_LINES: &str = "application/x-ndjson";
/// Chunks of the answer waiting to be sent.
const CHUNKS_QUEUED_MAX: usize = 8;

pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(info))
}

#[utoipa::path(get, path = "/api/recording/info", tag = "operations",
    description = "What the coordinator's recording of its event stream holds (on in demo mode, or with \
                   --recording-bytes-max): its range of seqs and times, size, snapshots.",
    responses((status = 200, description = "The recording", body = RecordingInfo)))]
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
            whole_number(text).ok_or_else(|| {
                ApiError::bad_request(format!("{name} must be a whole number (got '{text}')"))
            })
        })
        .transpose()
}

/// The query of `GET /api/recording`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by hand from the query (errors that say what is expected)
struct RecordingQuery {
    /// First event wanted (default: the oldest)
    #[param(schema_with = seq)]
    from_seq: Option<u64>,
    /// Last event wanted (default: the newest); before `from_seq`, the answer is the header alone
    #[param(schema_with = seq)]
    to_seq: Option<u64>,
}

/// An event's `seq`: any u64.
fn seq() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Integer)
        .minimum(Some(0))
        .maximum(Some(u64::MAX))
        .build()
}

#[utoipa::path(get, path = "/api/recording", tag = "operations",
    description = "The recorded events as JSON lines: a header line (`{\"format\":\"tpc-recording\",\"version\":1,...}`), \
                   then one `Event` per line, oldest first, from the latest snapshot at or before `from_seq` \
                   (so the answer replays on its own) to `to_seq`. The dashboard imports such a file.",
    params(RecordingQuery),
    responses(
        (status = 200, description = "JSON lines", body = String, content_type = "application/x-ndjson"),
        (status = 400, description = "A bad or unknown parameter", body = ErrorBody),
        (status = 404, description = "The coordinator does not record its events", body = ErrorBody),
    ))]
async fn events(
    State(app): State<Arc<App>>,
    QueryParams(params): QueryParams,
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
    let (chunks, receiver) = tokio::sync::mpsc::channel::<String>(CHUNKS_QUEUED_MAX);
    if from_seq > to_seq {
        // An empty range: a recording of nothing, which replays as such.
        let note = format!("no events: from_seq ({from_seq}) is after to_seq ({to_seq})");
        let _ = chunks.try_send(Header::new("coordinator", Some(note)).line());
        drop(chunks);
        return Ok(lines_answer(receiver));
    }
    let plan = recorder.plan(from_seq, to_seq);
    let note = match to_seq {
        u64::MAX => format!("events from {} on", plan.start),
        end => format!("events {} to {end}", plan.start),
    };
    let header_line = Header::new("coordinator", Some(note)).line();
    let _ = chunks.try_send(header_line);
    tokio::task::spawn_blocking(move || plan.read(|chunk| chunks.blocking_send(chunk).is_ok()));
    Ok(lines_answer(receiver))
}

/// The answer streamed from `receiver`'s chunks, as a file to save.
fn lines_answer(mut receiver: tokio::sync::mpsc::Receiver<String>) -> Response {
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
    (
        [
            (header::CONTENT_TYPE, JSON_LINES.to_string()),
            (header::CONTENT_DISPOSITION, file_name),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
