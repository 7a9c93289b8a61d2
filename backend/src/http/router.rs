//! The whole HTTP surface, assembled: the REST routes, the operator
//! routes (in-doubt, OpenAPI, metrics), the WebSocket, the API page, the
//! dashboard's files, and the guard in front of all of them. The routes
//! are collected with their OpenAPI descriptions (utoipa-axum), so the
//! document served is the router's own.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::Html;
use axum::{middleware, Extension, Router};
use shared::limits::HTTP_BODY_BYTES_MAX;
use tower_http::services::{ServeDir, ServeFile};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::guard::{self, Guard};
use super::{chaos, evidence, indoubt, messages, ops, ready, recording, routes, ws};
use crate::app::App;

/// Where the interactive API page is served (Swagger UI, bundled at build
/// time: it needs no network).
pub const API_PAGE_PATH: &str = "/api/docs";
/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// Every route, the dashboard's files and the guard in front of them all.
/// `bound`: the address the listener is bound to (its real port when
/// `--listen` asked for port 0), the Host the guard answers to.
pub fn router(app: Arc<App>, bound: SocketAddr) -> Router {
    let guard = Arc::new(Guard::new(
        bound,
        app.config.args.allowed_hosts.clone(),
        app.config.args.allowed_origins.clone(),
        app.config.api_token.clone(),
    ));
    let static_dir = app.config.args.static_dir.clone();
    let (api, openapi) = OpenApiRouter::with_openapi(ops::ApiDoc::openapi())
        .merge(routes::routes())
        .merge(ready::router())
        .merge(ops::router())
        .merge(indoubt::router())
        .merge(messages::router())
        .merge(recording::router())
        .merge(chaos::router())
        .merge(evidence::router())
        .routes(routes!(ws::handler))
        .split_for_parts();
    let mut accounts: Vec<String> = app.config.account_nodes.keys().cloned().collect();
    accounts.sort();
    let facts = ops::Facts {
        token: app.config.api_token.is_some(),
        accounts,
    };
    let document = Arc::new(ops::Document::new(openapi, &facts));
    let api_page = SwaggerUi::new(API_PAGE_PATH).config(Config::from(OPENAPI_PATH));
    let api = api
        .merge(api_page)
        .layer(Extension(document))
        .layer(DefaultBodyLimit::max(HTTP_BODY_BYTES_MAX))
        .with_state(app);
    let all = if static_dir.join("index.html").is_file() {
        let index = ServeFile::new(static_dir.join("index.html"));
        api.fallback_service(ServeDir::new(&static_dir).fallback(index))
    } else {
        tracing::info!(dir = %static_dir.display(), "the dashboard is not built; serving a notice at /");
        api.fallback(|| async move { Html(NOT_BUILT_PAGE) })
    };
    // Last, so that it covers the fallback (the dashboard's files) too.
    all.layer(middleware::from_fn_with_state(guard, guard::enforce))
}

const NOT_BUILT_PAGE: &str = "<!doctype html><meta charset=utf-8><title>2PC coordinator</title>\
<body style='font-family:sans-serif;max-width:40em;margin:3em auto'><h1>The coordinator is running</h1>\
<p>The dashboard has not been built. Build it with <code>trunk build --release --dist dist</code> at the repository root \
(or run <code>scripts/demo.sh</code>, which does everything), then reload.</p>\
<p>The API works already: try <a href='/api/cluster'>/api/cluster</a>.</p></body>";
