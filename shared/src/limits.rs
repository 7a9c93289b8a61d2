//! Every limit and default of the system, in one place, unit last.

/// Largest amount one transfer may move ($1,000,000.00).
pub const AMOUNT_CENTS_MAX: i64 = 100_000_000;
/// Longest protocol line a participant or coordinator accepts (bytes, without the newline).
pub const LINE_BYTES_MAX: usize = 64 * 1024;
/// Largest HTTP request body the coordinator reads.
pub const HTTP_BODY_BYTES_MAX: usize = 16 * 1024;
/// Longest client-chosen transaction id.
pub const TX_ID_BYTES_MAX: usize = 128;
/// Longest account id.
pub const ACCOUNT_ID_BYTES_MAX: usize = 64;
/// Most operations one transaction may carry to one node.
pub const OPS_PER_TX_MAX: usize = 16;
/// Concurrent TCP connections one participant accepts.
pub const PARTICIPANT_CONNECTIONS_MAX: usize = 64;
/// Transactions a participant holds at once (waiting, prepared, in doubt).
pub const PARTICIPANT_TX_ACTIVE_MAX: usize = 100_000;
/// Transactions the coordinator runs at once; beyond it a transfer is refused (503).
pub const COORDINATOR_TX_ACTIVE_MAX: usize = 50_000;
/// Finished transaction outcomes a participant remembers to answer duplicates.
pub const PARTICIPANT_OUTCOMES_KEPT_MAX: usize = 200_000;
/// Heuristic decisions a participant keeps (each is kept until then: it is
/// evidence of a possibly broken transaction). Beyond it, new ones are refused.
pub const PARTICIPANT_HEURISTICS_KEPT_MAX: usize = 10_000;
/// Finished transactions the coordinator keeps with their full timeline.
pub const COORDINATOR_HISTORY_KEPT_MAX: usize = 2_000;
/// Finished outcomes the coordinator keeps to answer a repeated client `tx_id`.
pub const COORDINATOR_OUTCOMES_KEPT_MAX: usize = 1_000_000;
/// Ledger entries a node keeps over all its accounts: each account keeps its
/// newest `PARTICIPANT_LEDGER_ENTRIES_KEPT_MAX / accounts` (at least one), so
/// a node's memory and checkpoint stay bounded however many accounts it has.
pub const PARTICIPANT_LEDGER_ENTRIES_KEPT_MAX: usize = 200_000;

/// Ledger entries each account of a node with `accounts` accounts keeps.
pub fn ledger_entries_kept_per_account(accounts: usize) -> usize {
    (PARTICIPANT_LEDGER_ENTRIES_KEPT_MAX / accounts.max(1)).max(1)
}
/// Log records (single commands or a turn's batch) that may wait for the log
/// writer's thread; also the most it drains into one batch.
pub const LOG_WRITER_QUEUE_MAX: usize = 65_536;
/// Most payload bytes a log scan checksums while looking for a valid frame
/// after a bad one. Honest logs need a tiny fraction of this; only
/// pathological garbage (say megabytes of `0x01`, where every offset reads as
/// a plausible 16 MiB length) could exceed it. Running out counts as "a valid
/// frame may follow", so the answer stays on the safe side: refuse to start.
pub const LOG_SCAN_CRC_BYTES_MAX: u64 = 1 << 30;
/// Messages from a participant's connections that may wait for its driver.
pub const PARTICIPANT_INBOX_MAX: usize = 4_096;
/// Replies one participant connection may have queued before it counts as
/// not reading (and is closed).
pub const PARTICIPANT_REPLIES_QUEUED_MAX: usize = 16_384;
/// Commands waiting for the coordinator's engine (HTTP requests beyond it get 503).
pub const COORDINATOR_COMMANDS_QUEUED_MAX: usize = 65_536;
/// Node messages waiting for the coordinator's engine.
pub const COORDINATOR_NODE_EVENTS_QUEUED_MAX: usize = 65_536;
/// Messages waiting to go out from the coordinator to one node.
pub const COORDINATOR_OUTBOX_MAX: usize = 65_536;
/// Messages waiting in a delayed link (an injected fault), per direction.
pub const LINK_DELAY_QUEUE_MAX: usize = 65_536;
/// Events one WebSocket client may have queued before it is told it lagged.
pub const WS_CLIENT_QUEUE_MAX: usize = 4_096;
/// Events kept per transaction timeline.
pub const TX_TIMELINE_EVENTS_MAX: usize = 64;
/// Nodes of one transaction that its fold follows (a transfer has one or
/// two); a transaction with more is never taken for fully voted or acked.
pub const TX_NODES_MAX: usize = 8;
/// Log size after which a checkpoint rewrites it.
pub const LOG_CHECKPOINT_BYTES: u64 = 32 * 1024 * 1024;
/// A node's log is rewritten as a checkpoint only once it is at least this
/// many times the size of its last checkpoint. Encoding a checkpoint takes
/// one core for a while (a node's 22 MB about 0.1 to 0.4 s here), so the
/// factor sets how much of the machine checkpoints take: with 2 a node at
/// full load checkpointed every 6 s and the protocol stalled each time;
/// with 4 the log grows three checkpoints' worth between them (a third as
/// many), for a log up to four times the checkpoint (recovery reads it all;
/// a node's 22 MB checkpoint loads in 0.5 s).
pub const PARTICIPANT_LOG_CHECKPOINT_GROWTH: u64 = 4;
/// The same for the coordinator's log, which stays at 2: its checkpoint
/// (up to 84 MB with a million outcomes) comes about once a minute at full
/// load, while recovery, during which every transfer is refused, reads the
/// whole log (96 MB took 1.6 s).
pub const COORDINATOR_LOG_CHECKPOINT_GROWTH: u64 = 2;
/// Zero bytes a log file is extended by at a time, ahead of its records, so
/// that appends overwrite already-allocated blocks and an fdatasync need not
/// commit the filesystem journal (see `log::file`). One chunk per batch at
/// most, so no single fdatasync carries more than this many extra bytes.
pub const LOG_PREALLOCATE_CHUNK_BYTES: u64 = 1024 * 1024;
/// Free (zeroed) space a log keeps ahead of its records, one chunk at a time.
pub const LOG_PREALLOCATE_AHEAD_BYTES: u64 = 4 * 1024 * 1024;
/// Largest single log record (anything bigger is a corrupt length field).
pub const LOG_RECORD_BYTES_MAX: usize = 256 * 1024 * 1024;
/// The smallest unit a disk writes whole: after a power cut, each aligned
/// sector of a write that was never synced holds either all its new bytes or
/// all its old ones. The log scan reads a zeroed sector where a frame should
/// be as such a lost write (see `log::frame`).
pub const DISK_SECTOR_BYTES: usize = 512;

/// Default time the coordinator waits for all votes.
pub const PREPARE_TIMEOUT_MS: u64 = 3_000;
/// Default longest wait for an account lock at a participant.
pub const LOCK_WAIT_MS: u64 = 3_000;
/// Default time the coordinator waits for every node to apply a commit
/// before answering the client anyway (the commit is durable; it completes
/// in the background).
pub const ACK_WAIT_MS: u64 = 3_000;
/// Longest a participant's unforced record (a COMMITTED, whose `ack` waits
/// for it) waits for a sync when no forced record comes to carry it. Under
/// load a PREPARED force carries it sooner; idle, it costs one fdatasync.
pub const PARTICIPANT_UNFORCED_SYNC_US: u64 = 300;
/// Resend interval for unacknowledged commits.
pub const COMMIT_RETRY_MS: u64 = 500;
/// How often the coordinator asks every node for its in-doubt transactions.
pub const IN_DOUBT_SWEEP_MS: u64 = 1_000;
/// Reconnect backoff bounds.
pub const RECONNECT_BACKOFF_MIN_MS: u64 = 50;
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 1_000;

/// Bytes of a cluster secret created by the coordinator (hex in its file).
pub const CLUSTER_SECRET_BYTES: usize = 32;
/// Fewest bytes a cluster secret may have (a file with less is refused).
pub const CLUSTER_SECRET_BYTES_MIN: usize = 16;
/// Largest cluster secret file read.
pub const CLUSTER_SECRET_FILE_BYTES_MAX: u64 = 4 * 1024;
/// Bytes of each side's fresh nonce in the connection handshake.
pub const AUTH_NONCE_BYTES: usize = 16;
/// Longest time a connection may take to authenticate before it is closed.
pub const AUTH_TIMEOUT_MS: u64 = 5_000;
