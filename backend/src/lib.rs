//! The coordinator, as the library its two binaries share: `backend` (the
//! server, `src/main.rs`) and `tpc` (the command line, `src/bin/tpc.rs`).
//!
//! Module map:
//! - `server`: the process assembled, from flags to the HTTP server.
//! - `config`: flags, environment, file, and the cluster they describe.
//! - `app`: state shared by everything that outlives an engine crash.
//! - `demo`: demo-mode fault settings (random crash, step mode, armed crash).
//! - `engine`: the driver loop around the pure `Coordinator` machine.
//! - `transport`: persistent connections to the nodes, with the fault layer.
//! - `held`: step mode's hold: protocol messages parked by the engine until
//!   a person delivers, drops, duplicates or delays each one.
//! - `recording`: the event stream on disk (bounded segments) for replay.
//! - `supervisor`: the participant processes (start, SIGKILL, restart, adopt).
//! - `hub`: event numbering, history, stats, broadcast.
//! - `metrics`: the Prometheus registry.
//! - `monitor`: node-status, balance and node-state watchers, and the
//!   recording's snapshots.
//! - `http`: the guard, REST routes, the WebSocket stream, the dashboard files.
//! - `cli`: the HTTP client and the formatting of `tpc`.
//! - `chaos`: the chaos run (clients, fault loop, audit) that the `chaos`
//!   command and the dashboard's "Run chaos" share.

pub mod app;
pub mod chaos;
pub mod cli;
pub mod config;
pub mod demo;
pub mod engine;
pub mod held;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod monitor;
pub mod recording;
pub mod server;
pub mod supervisor;
pub mod transport;
