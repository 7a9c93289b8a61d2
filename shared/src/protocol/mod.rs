//! Two-Phase Commit as pure state machines, in the sans-IO style.
//!
//! - [`participant::Participant`]: accounts, locks, votes, apply.
//! - [`coordinator::Coordinator`]: drives transactions, decides, recovers.
//! - [`record`]: what each of them writes to its log.
//!
//! The contract of both machines:
//! - Inputs go in through `handle(now_us, input)`; outputs come out as a
//!   `Vec<Action>` that the driver must run **in order**.
//! - `now_us` is microseconds on any clock that never goes backwards.
//! - Durability is an action: `Persist { seq, .. }` asks the driver to append
//!   a record; once every record up to `seq` is on disk (fdatasync), the
//!   driver feeds back `Durable { seq }`. A message that depends on durable
//!   state (a `ready` vote, a `commit`, a commit ack) is held inside the
//!   machine until then, so no driver can release it early.
//! - Timers are data: `next_deadline_us()` tells the driver when to feed
//!   `Tick`; a stale timer firing is a harmless no-op.
//! - Recovery is replay: `recover(config, records)` rebuilds the durable
//!   state; everything volatile (connections, waiting transactions, timers)
//!   starts empty, exactly as after `kill -9`.

pub mod coordinator;
pub mod digest;
#[cfg(feature = "mutants")]
pub mod mutants;
pub mod participant;
pub mod record;
