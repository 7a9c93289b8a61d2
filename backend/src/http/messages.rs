//! Step mode's held messages (demo mode; changes answer 403 otherwise):
//! `GET /api/messages` lists what the coordinator holds, `POST
//! /api/messages/next` lets the oldest go (or its whole protocol step), and
//! `POST /api/messages/{id}` delivers, drops, duplicates or delays one
//! message. Holding itself is turned on with `PUT /api/faults
//! {"hold_messages": true}`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use shared::api::{
    ErrorBody, HeldMessages, MessageAction, MessageActionRequest, NextMessageRequest,
    ReleasedMessages,
};
use shared::limits::{ENGINE_ANSWER_TIMEOUT_MS, HELD_MESSAGE_DELAY_MS_MAX};
use tokio::sync::oneshot;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::request::{parse_body, parse_optional_body, require_demo, IdPath};
use crate::app::App;
use crate::engine::{Command, Release};

pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(next))
        .routes(routes!(act))
}

fn engine_down() -> ApiError {
    ApiError::unavailable("the coordinator is down (recovering from a crash); it holds nothing now")
}

/// Sends `command` (made around a reply channel) and waits for the answer.
async fn ask<T>(
    app: &App,
    command: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, ApiError> {
    let live = app.engine.live().ok_or_else(engine_down)?;
    let (reply, answer) = oneshot::channel();
    live.commands
        .try_send(command(reply))
        .map_err(|_| ApiError::unavailable("the coordinator is busy; retry shortly"))?;
    match tokio::time::timeout(Duration::from_millis(ENGINE_ANSWER_TIMEOUT_MS), answer).await {
        Ok(Ok(value)) => Ok(value),
        _ => Err(engine_down()),
    }
}

#[utoipa::path(get, path = "/api/messages", tag = "faults",
    description = "The protocol messages the coordinator holds (step mode's hold, turned on with PUT /api/faults \
                   {\"hold_messages\": true}), oldest first. Empty while the coordinator is down.",
    responses(
        (status = 200, description = "Whether it holds, and what", body = HeldMessages),
        (status = 503, description = "The coordinator did not answer in time", body = ErrorBody),
    ))]
async fn list(State(app): State<Arc<App>>) -> Result<Json<HeldMessages>, ApiError> {
    if app.engine.live().is_none() {
        return Ok(Json(HeldMessages {
            hold: app.demo.hold_messages(),
            messages: Vec::new(),
        }));
    }
    Ok(Json(ask(&app, |reply| Command::Held { reply }).await?))
}

#[utoipa::path(post, path = "/api/messages/next", tag = "faults",
    description = "Lets the oldest held message go on. With `phase: true`, every held message of the oldest one's \
                   transaction and protocol step (both prepares, both votes, ...).",
    request_body(content = Option<NextMessageRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The messages let go", body = ReleasedMessages),
        (status = 400, description = "Bad JSON, not an object, or unknown fields", body = ErrorBody),
        (status = 403, description = "Not in demo mode", body = ErrorBody),
        (status = 404, description = "No message is held", body = ErrorBody),
        (status = 503, description = "The coordinator is down or busy", body = ErrorBody),
    ))]
async fn next(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReleasedMessages>, ApiError> {
    require_demo(&app)?;
    let request: NextMessageRequest = parse_optional_body(body, r#"{"phase": true}"#)?;
    let which = Release::Next {
        phase: request.phase,
    };
    let released = ask(&app, |reply| Command::Release {
        which,
        action: MessageAction::Deliver,
        delay_ms: 0,
        reply,
    })
    .await?;
    if released.is_empty() {
        return Err(ApiError::not_found(
            "no message is held; turn the hold on with PUT /api/faults {\"hold_messages\": true} and start a transfer",
        ));
    }
    Ok(Json(ReleasedMessages {
        released,
        action: Some(MessageAction::Deliver),
    }))
}

#[utoipa::path(post, path = "/api/messages/{id}", tag = "faults",
    description = "Acts on one held message: deliver it now, drop it (it never arrives), duplicate it (it \
                   arrives twice) or delay it by `delay_ms`.",
    params(("id" = u64, Path, description = "The held message's id (its events' `id`)")),
    request_body = MessageActionRequest,
    responses(
        (status = 200, description = "Done", body = ReleasedMessages),
        (status = 400, description = "Bad JSON, not an object, or unknown fields", body = ErrorBody),
        (status = 403, description = "Not in demo mode", body = ErrorBody),
        (status = 404, description = "No such message is held", body = ErrorBody),
        (status = 422, description = "delay_ms missing or out of range for delay, or given with another action",
            body = ErrorBody),
        (status = 503, description = "The coordinator is down or busy", body = ErrorBody),
    ))]
async fn act(
    State(app): State<Arc<App>>,
    IdPath(id): IdPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReleasedMessages>, ApiError> {
    require_demo(&app)?;
    let Ok(id) = id.parse::<u64>() else {
        return Err(ApiError::not_found(format!(
            "no held message '{id}': message ids are numbers (GET /api/messages lists them)"
        )));
    };
    let request: MessageActionRequest = parse_body(
        body,
        r#"{"action": "deliver" | "drop" | "duplicate" | "delay", "delay_ms": 500}"#,
    )?;
    let delay_ms = match (request.action, request.delay_ms) {
        (MessageAction::Delay, Some(ms)) if (1..=HELD_MESSAGE_DELAY_MS_MAX).contains(&ms) => ms,
        (MessageAction::Delay, _) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("delay needs delay_ms from 1 to {HELD_MESSAGE_DELAY_MS_MAX}"),
            ))
        }
        (_, None) => 0,
        (_, Some(_)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "delay_ms goes with the action delay only",
            ))
        }
    };
    let released = ask(&app, |reply| Command::Release {
        which: Release::One(id),
        action: request.action,
        delay_ms,
        reply,
    })
    .await?;
    if released.is_empty() {
        return Err(ApiError::not_found(format!(
            "message #{id} is not held (it went on already, or the coordinator restarted)"
        )));
    }
    Ok(Json(ReleasedMessages {
        released,
        action: Some(request.action),
    }))
}
