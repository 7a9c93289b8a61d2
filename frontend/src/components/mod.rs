//! One panel per file. Each reads the shared [`crate::context::Ctx`].
//!
//! - [`header`]: title, connection state, the invariant banner, the
//!   "reconnecting…" banner.
//! - [`cluster`]: coordinator and node cards, with per-node failure buttons.
//! - [`in_doubt`]: the operator's view of in-doubt transactions, why each
//!   is stuck, forced (heuristic) outcomes and the money audit.
//! - [`transfer`]: the transfer form and its result card.
//! - [`faults`]: coordinator crash, random prepare crashes, step mode (the
//!   timed pause or the hold of every message).
//! - [`held`]: the held messages, "Next", and deliver / drop / duplicate /
//!   delay for one message.
//! - [`timeline`]: time travel: rewind, play, scrub, export and import runs.
//! - [`spacetime`]: many transactions on the same lifelines, with lock waits.
//! - [`load`]: the concurrency demo.
//! - [`chaos`]: "Run chaos": the chaos command's fault loop and audit, on
//!   the demo cluster, ending PASS or FAIL.
//! - [`protocol`]: the live sequence diagram and the event log.
//! - [`scenarios`]: guided scenarios, played on the real cluster and checked.
//! - [`evidence`]: what the transaction shown cost, and its audit.
//! - [`stats`]: totals, abort reasons, latency, throughput.
//! - [`history`]: recent transactions; a click pins one in the diagram.
//! - [`toasts`]: errors and notices.
//! - [`fields`]: a labelled numeric input and a run's count, shared by
//!   the concurrency demo and the chaos run.
//! - [`token`]: the API token field, shown after a change was refused
//!   for want of it (401).

pub mod chaos;
pub mod cluster;
pub mod evidence;
pub mod faults;
pub mod fields;
pub mod header;
pub mod held;
pub mod history;
pub mod in_doubt;
pub mod load;
pub mod protocol;
pub mod scenarios;
pub mod spacetime;
pub mod stats;
pub mod timeline;
pub mod toasts;
pub mod token;
pub mod transfer;
