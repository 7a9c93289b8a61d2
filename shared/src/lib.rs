//! Everything the coordinator, the participants and the browser app share.
//!
//! Module map:
//! - [`limits`]: every limit and default, unit last, in one place.
//! - [`money`]: integer cents, parsing what people type, formatting.
//! - [`wire`]: coordinator ⇄ participant messages (newline-delimited JSON).
//! - [`api`]: HTTP request and response bodies.
//! - [`events`]: live events streamed on `/ws`.
//! - [`evidence`]: what one transaction cost (messages, forced writes, round
//!   trips, phase times, lock waits) and its audit against the ledgers.
//! - [`fold`]: the one fold of a transaction's events (state, votes, pending
//!   acks, phase times) that the hub, the metrics and the dashboard share.
//! - [`recording`]: a run's events as JSON lines with a versioned header
//!   (the coordinator's recording, the simulation's trace, the dashboard's
//!   import and export).
//! - [`protocol`]: Two-Phase Commit as pure state machines (no I/O, no clock,
//!   no randomness): the processes, the simulation and the model checker all
//!   run this same code.
//! - [`store`]: what the machines keep their state in, for speed (a hash map
//!   with ordered views, the remembered-outcome index, the seeded hasher).
//! - `log` (feature `native`): the framed, checksummed, append-only log with
//!   group commit that both processes write.
//! - `auth` (feature `native`): the cluster secret and the handshake that
//!   every connection to a participant must pass.

pub mod api;
pub mod events;
pub mod evidence;
pub mod fold;
pub mod limits;
pub mod money;
pub mod protocol;
pub mod recording;
pub mod store;
pub mod views;
pub mod wire;

#[cfg(feature = "native")]
pub mod auth;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "native")]
pub mod lines;
#[cfg(feature = "native")]
pub mod log;
#[cfg(feature = "progress")]
pub mod progress;
