//! Routes for operators: Prometheus metrics at `GET /metrics` and the API's
//! OpenAPI document at `GET /api/openapi.json`.
//!
//! The document is collected from the handlers themselves: each handler
//! carries its `#[utoipa::path]` and is routed with utoipa-axum's
//! `routes!`, so a route cannot be served without being described (the
//! router assembles both at once, `super::router`). Schemas come from the
//! `shared` types, bounds from `shared::limits`. [`Document::new`] then
//! adds what the guard in front of every route can answer (421, 403, 401,
//! 415, 413), the security the token really asks for, and this cluster's
//! accounts, so that the document is the exact truth of this coordinator.
//! `system-tests/tests/ops.rs` checks it against real answers, and
//! `scripts/schemathesis.sh` fuzzes the server with it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Map, Value};
use shared::limits::{ACCOUNTS_LISTED_MAX, HTTP_BODY_BYTES_MAX};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::view::cluster_view;
use crate::app::App;
use crate::metrics;

/// The content type of the Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The methods of an OpenAPI path item.
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];
/// The methods the guard treats as changes (Origin, token, content type).
const CHANGES: [&str; 4] = ["put", "post", "delete", "patch"];

/// The operator routes, merged into the main router (which adds the state).
pub fn router() -> OpenApiRouter<Arc<App>> {
    // Start the metrics clock with the server rather than at the first event.
    let _ = metrics::global();
    OpenApiRouter::new()
        .routes(routes!(serve_metrics))
        .routes(routes!(serve_openapi))
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    description = "Prometheus text format: transactions by outcome and abort reason, latency histograms (end to \
                   end and per phase), in-flight and in-doubt transactions, log forces, node connection state.",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String,
        content_type = "text/plain")))]
async fn serve_metrics(State(app): State<Arc<App>>) -> Response {
    let cluster = cluster_view(&app).await;
    let live = app.engine.live();
    let node_ids = app.supervisor.node_ids();
    let connected = node_ids
        .iter()
        .map(|id| {
            (
                id.clone(),
                live.as_ref().is_some_and(|l| l.transport.is_connected(id)),
            )
        })
        .collect();
    // `cluster_view` just refreshed each answering node's last status.
    let node_logs = node_ids
        .iter()
        .filter_map(|id| {
            app.last_status(id)
                .map(|s| (id.clone(), s.log_forces, s.log_records))
        })
        .collect();
    let state = metrics::State {
        cluster,
        connected,
        in_flight: app.engine.gauge(&app.engine.in_flight),
        coordinator_log_forces: app.engine.gauge(&app.engine.log_forces),
        node_logs,
    };
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        metrics::global().render(&state),
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json")))]
async fn serve_openapi(Extension(document): Extension<Arc<Document>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.json.clone(),
    )
        .into_response()
}

/// What the document says that depends on how this coordinator runs.
pub struct Facts {
    /// Whether it has an API token (--api-token-file): then every change
    /// needs it.
    pub token: bool,
    /// Its accounts, as configured.
    pub accounts: Vec<String>,
}

/// The finished OpenAPI document, as served.
pub struct Document {
    pub json: String,
}

impl Document {
    /// Finishes the document collected from the handlers with what the
    /// guard answers and what this coordinator's configuration decides.
    pub fn new(openapi: utoipa::openapi::OpenApi, facts: &Facts) -> Document {
        let mut doc = serde_json::to_value(&openapi).expect("the OpenAPI document serialises");
        let token_sentence = if facts.token {
            " This coordinator has an API token: every change needs it (401 without it)."
        } else {
            " This coordinator has no API token: changes need none."
        };
        if let Some(Value::String(description)) = doc.pointer_mut("/info/description") {
            description.push_str(token_sentence);
        }
        if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
            for item in paths.values_mut().filter_map(Value::as_object_mut) {
                for (method, operation) in item.iter_mut() {
                    if let (true, Some(operation)) = (
                        METHODS.contains(&method.as_str()),
                        operation.as_object_mut(),
                    ) {
                        add_guard_answers(method, operation, facts.token);
                    }
                }
            }
        }
        if let Some(schema) = doc.pointer_mut("/components/schemas/TransferRequest") {
            name_accounts(schema, &facts.accounts);
        }
        let json = serde_json::to_string_pretty(&doc).expect("JSON serialises");
        Document { json }
    }
}

fn error_answer(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

/// Adds `status` unless the handler documents it already (its sentence
/// is more precise); with `also`, a documented answer's description gains
/// the guard's reason.
fn add_answer(responses: &mut Map<String, Value>, status: u16, description: &str, also: bool) {
    match responses.get_mut(&status.to_string()) {
        None => {
            responses.insert(status.to_string(), error_answer(description));
        }
        Some(existing) if also => {
            if let Some(Value::String(text)) = existing.get_mut("description") {
                text.push_str(&format!("; or: {description}"));
            }
        }
        Some(_) => {}
    }
}

/// What the guard (`super::guard`) answers before any handler runs, and
/// the security it really requires.
fn add_guard_answers(method: &str, operation: &mut Map<String, Value>, token: bool) {
    let has_body = operation.contains_key("requestBody");
    let changes = CHANGES.contains(&method);
    if changes && token {
        operation.insert("security".into(), json!([{"api_token": []}]));
    } else {
        operation.remove("security");
    }
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    add_answer(
        responses,
        421,
        "The Host header names a host this coordinator does not answer to (a guard against DNS rebinding; \
         --allowed-host adds names)",
        false,
    );
    if changes {
        add_answer(
            responses,
            403,
            "Requested by a web page of a foreign Origin (--allowed-origin adds origins)",
            true,
        );
        add_answer(
            responses,
            415,
            "A body not sent as Content-Type: application/json",
            false,
        );
        if token {
            add_answer(
                responses,
                401,
                "Without the API token (Authorization: Bearer <token>), or with a wrong one",
                false,
            );
        }
    }
    if has_body {
        add_answer(
            responses,
            400,
            "Bad JSON, not an object, or unknown fields",
            false,
        );
        add_answer(
            responses,
            413,
            &format!("A body larger than {HTTP_BODY_BYTES_MAX} bytes"),
            false,
        );
    }
    // In order of status, as people read them.
    let mut sorted: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    responses.extend(sorted);
}

/// Names this cluster's accounts in the transfer schema: `from` and `to`
/// are each one of them, and not the same one (a transfer between other
/// names, or from an account to itself, is refused with 422). A cluster
/// with very many accounts keeps the pattern alone.
fn name_accounts(schema: &mut Value, accounts: &[String]) {
    if accounts.len() < 2 || accounts.len() > ACCOUNTS_LISTED_MAX {
        return;
    }
    for field in ["from", "to"] {
        if let Some(property) = schema.pointer_mut(&format!("/properties/{field}")) {
            property["enum"] = json!(accounts);
        }
    }
    let pairs: Vec<Value> = accounts
        .iter()
        .map(|from| {
            let others: Vec<&String> = accounts.iter().filter(|a| *a != from).collect();
            json!({"properties": {"from": {"enum": [from]}, "to": {"enum": others}}})
        })
        .collect();
    schema["anyOf"] = Value::Array(pairs);
}

/// The document's parts written once: the API's description, the schemas
/// no handler names, the tags and the token's security scheme. The paths
/// come from the handlers (`super::router`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "2PC coordinator API",
        description = "Money transfers made atomic with Two-Phase Commit. Money is integer cents; errors are \
                       `{\"error\": \"<human sentence>\"}`; request bodies are JSON objects, and unknown fields \
                       are rejected (400). A number with a zero fraction (`5.0`) is taken as the integer it equals. \
                       Fault injection answers 403 unless the coordinator runs with --demo. Every route answers \
                       421 to a Host the coordinator does not answer to (--allowed-host adds names). Every change \
                       (POST, PUT, DELETE) answers 403 to a web page of a foreign Origin (--allowed-origin adds \
                       origins), 401 without the API token when the coordinator has one (--api-token-file), and \
                       415 to a body not sent as application/json; reads stay open."
    ),
    modifiers(&BearerToken),
    components(schemas(
        shared::events::Event,
        shared::events::EventKind,
        shared::events::Snapshot,
        shared::recording::Header
    )),
    tags(
        (name = "transfers", description = "Move money and look at transactions"),
        (name = "state", description = "Cluster, balances, ledgers, statistics, liveness and readiness"),
        (name = "faults", description = "Failure injection (demo mode only; otherwise 403)"),
        (name = "operations", description = "Live events, the recorded event stream, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// The `api_token` security scheme; operations name it only when the
/// coordinator has a token ([`Document::new`]).
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The token in the coordinator's --api-token-file, as `Authorization: Bearer <token>`; needed \
                 for every change when the coordinator has one (always when it listens on a non-loopback address)",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("api_token", SecurityScheme::Http(scheme));
    }
}
