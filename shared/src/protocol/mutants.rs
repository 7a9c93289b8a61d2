//! Test-only: bugs this protocol once had, put back on demand, so that the
//! model checker and the simulation can prove they find each one.
//!
//! Compiled only with the `mutants` feature, which only this crate's own
//! tests enable; the processes are never built with it. Every switch is off
//! by default, and a machine recovered from its log starts with none on.

/// Which fixes to take away from one machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Mutants {
    /// Participant: the original demo's bug. A prepared (in-doubt)
    /// transaction aborts on its own once it has waited this long, in
    /// microseconds, for the decision.
    pub abort_in_doubt_after_us: Option<u64>,
    /// Participant: a `prepare` for a tx_id it holds or decided is answered
    /// from that state, whatever its operations and epoch (a re-used id
    /// picks up a stale PREPARED).
    pub prepare_identity_unchecked: bool,
    /// Coordinator: after a restart, a client's unknown tx_id runs at once,
    /// without waiting for the nodes' in-doubt lists.
    pub no_restart_gate: bool,
    /// Coordinator: a presumed abort is answered at once, with no forced
    /// PRESUMED ABORT record (the next incarnation has forgotten it).
    pub presumed_abort_unforced: bool,
}
