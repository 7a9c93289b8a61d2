//! The whole HTTP surface, assembled: the REST routes, the operator
//! routes (in-doubt, OpenAPI, metrics), the WebSocket, the dashboard's
//! files, and the guard in front of all of them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use shared::limits::HTTP_BODY_BYTES_MAX;
use tower_http::services::{ServeDir, ServeFile};

use super::guard::{self, Guard};
use super::{indoubt, messages, ops, recording, routes, ws};
use crate::app::App;

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
    let api = Router::new()
        .merge(routes::routes())
        .merge(ops::router())
        .merge(indoubt::router())
        .merge(messages::router())
        .merge(recording::router())
        .route("/ws", get(ws::handler))
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
<p>The dashboard has not been built. Build it with <code>trunk build --release</code> at the repository root \
(or run <code>scripts/demo.sh</code>, which does everything), then reload.</p>\
<p>The API works already: try <a href='/api/cluster'>/api/cluster</a>.</p></body>";
