//! When a log is rewritten as one checkpoint record: the one rule both
//! drivers (the coordinator's engine and the participant's driver) follow.

use super::writer::GroupCommitWriter;

/// Checkpoint once the log is at least `bytes_min` long and `growth` times
/// the last checkpoint (so a big state does not make every turn rewrite the
/// log again); never while one is being written beside the log (the
/// writer's size is then the old log's); and never again, until a restart,
/// once one was refused as larger than a log record may be.
#[derive(Debug, Clone)]
pub struct CheckpointPolicy {
    bytes_min: u64,
    growth: u64,
    refused: bool,
}

impl CheckpointPolicy {
    pub fn new(bytes_min: u64, growth: u64) -> CheckpointPolicy {
        CheckpointPolicy {
            bytes_min,
            growth,
            refused: false,
        }
    }

    /// The log size that triggers the next checkpoint, for a last
    /// checkpoint of `last_checkpoint_bytes` (0 before the first).
    pub fn threshold_bytes(&self, last_checkpoint_bytes: u64) -> u64 {
        self.bytes_min
            .max(last_checkpoint_bytes.saturating_mul(self.growth))
    }

    /// Whether to checkpoint now. Says once, in the log, when checkpoints
    /// stop because one was too large.
    pub fn due(&mut self, writer: &GroupCommitWriter) -> bool {
        if self.refused || writer.checkpointing() {
            return false;
        }
        if writer.checkpoints_refused() > 0 {
            self.refused = true;
            tracing::error!(
                "a checkpoint is larger than a log record may be (LOG_RECORD_BYTES_MAX); not checkpointing again until restarted (the log keeps growing)"
            );
            return false;
        }
        writer.size_bytes() >= self.threshold_bytes(writer.checkpoint_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_the_minimum_or_a_multiple_of_the_last_checkpoint() {
        let policy = CheckpointPolicy::new(1_000, 4);
        assert_eq!(policy.threshold_bytes(0), 1_000);
        assert_eq!(policy.threshold_bytes(100), 1_000);
        assert_eq!(policy.threshold_bytes(300), 1_200);
        assert_eq!(policy.threshold_bytes(u64::MAX), u64::MAX);
    }
}
