//! Two-Phase Commit as pure state machines.
