//! The browser dashboard of the Two-Phase Commit demo: a Leptos (CSR) app
//! compiled to WebAssembly by trunk and served by the coordinator at `/`.
//!
//! Module map. The pure modules know nothing of the browser, so their unit
//! tests run natively with `cargo test -p frontend`:
//! - [`model`]: the dashboard's state and [`model::Model::fold`], which folds
//!   one live event into it; the invariant banner's verdict.
//! - [`diagram`]: the sequence diagram's layout (events → lanes, arrows and
//!   marks with coordinates).
//! - [`replay`]: time travel: a recorded run and the state at any moment of
//!   it (checkpoints, playback, export).
//! - [`spacetime`]: the space-time view's layout (many transactions on the
//!   same lifelines, lock waits and refusals between them).
//! - [`moment`]: the address's `#t=<seq>&tx=<id>`.
//! - [`charts`]: sparkline and bar-chart geometry.
//! - [`load`]: the concurrency demo: random transfers and the summary.
//! - [`validate`]: the transfer form's validation.
//! - [`in_doubt`]: the in-doubt panel's words: why stuck, live ages, the
//!   audit line, the confirm text of a heuristic decision.
//! - [`format`]: words and numbers people read (reasons, durations, ids).
//!
//! The browser side:
//! - [`api`]: one function per REST call, with `shared` types.
//! - [`ws`]: the one live-event hook (reconnects with backoff, resyncs from
//!   the snapshot, cleans up).
//! - [`context`]: the state every panel shares ([`context::Ctx`]), with its
//!   polling and refreshes.
//! - [`app`]: lays out the page on that context.
//! - [`components`]: one panel per file.

pub mod api;
pub mod app;
pub mod charts;
pub mod components;
pub mod context;
pub mod diagram;
pub mod format;
pub mod in_doubt;
pub mod load;
pub mod model;
pub mod moment;
pub mod replay;
pub mod scenarios;
pub mod spacetime;
pub mod validate;
pub mod ws;
