//! Every limit and default of the system, in one place, unit last.
//!
//! Each constant says in one line what it bounds; the measurements behind
//! the tuned ones are in BENCHMARKS.md.

// ----- money and ids -----

/// Largest amount one transfer may move ($1,000,000.00).
pub const AMOUNT_CENTS_MAX: i64 = 100_000_000;
/// Longest client-chosen transaction id.
pub const TX_ID_BYTES_MAX: usize = 128;
/// Longest account id.
pub const ACCOUNT_ID_BYTES_MAX: usize = 64;
/// Most operations one transaction may carry to one node.
pub const OPS_PER_TX_MAX: usize = 16;

// ----- the protocol's timers (defaults) -----

/// Default time the coordinator waits for all votes.
pub const PREPARE_TIMEOUT_MS: u64 = 3_000;
/// Default longest wait for an account lock at a participant.
pub const LOCK_WAIT_MS: u64 = 3_000;
/// Default wait for every node to apply a commit before the client is answered anyway.
pub const ACK_WAIT_MS: u64 = 3_000;
/// Resend interval for unacknowledged commits.
pub const COMMIT_RETRY_MS: u64 = 500;
/// How often the coordinator asks every node for its in-doubt transactions.
pub const IN_DOUBT_SWEEP_MS: u64 = 1_000;

// ----- the coordinator ⇄ node connections -----

/// Longest protocol line a participant or coordinator accepts (bytes, without the newline).
pub const LINE_BYTES_MAX: usize = 64 * 1024;
/// Longest id the canonical-form decoder reads (longer ones are left to serde_json).
pub const WIRE_CANONICAL_ID_BYTES_MAX: usize = 256;
/// First pause before reconnecting to a node; it doubles after each failure.
pub const RECONNECT_BACKOFF_MIN_MS: u64 = 50;
/// Longest pause between reconnection attempts to a node.
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 1_000;
/// How long the coordinator waits for a TCP connection to a node.
pub const NODE_CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Longest wait for a node's hello, and then for its welcome.
pub const NODE_HELLO_TIMEOUT_MS: u64 = 2_000;
/// How long the coordinator waits for a node to answer a query.
pub const NODE_QUERY_TIMEOUT_MS: u64 = 1_500;
/// Messages waiting to go out from the coordinator to one node.
pub const COORDINATOR_OUTBOX_MAX: usize = 65_536;
/// Messages waiting in a delayed link (an injected fault), per direction.
pub const LINK_DELAY_QUEUE_MAX: usize = 65_536;
/// Events from the observer's (query-only) node connections that may wait.
pub const OBSERVER_EVENTS_QUEUED_MAX: usize = 1_024;
/// Read and write buffer of one coordinator ⇄ node connection.
pub const NODE_LINK_BUFFER_BYTES: usize = 64 * 1024;
/// Most bytes of queued messages the coordinator writes to a node in one go.
pub const NODE_LINK_WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;
/// Pause between checks while waiting for a node process to start, stop
/// or release its data dir.
pub const NODE_PROCESS_POLL_MS: u64 = 20;
/// Pause between checks for a node that still holds its data dir while the
/// coordinator waits to adopt it.
pub const NODE_ADOPT_POLL_MS: u64 = 200;
/// How long a participant's driver sleeps when no timer is due (it wakes
/// for every message anyway).
pub const PARTICIPANT_IDLE_WAKE_S: u64 = 3_600;
/// Bytes of each side's fresh nonce in the connection handshake.
pub const AUTH_NONCE_BYTES: usize = 16;
/// Longest time a connection may take to authenticate before it is closed.
pub const AUTH_TIMEOUT_MS: u64 = 5_000;
/// Bytes of a cluster secret created by the coordinator (hex in its file).
pub const CLUSTER_SECRET_BYTES: usize = 32;
/// Fewest bytes a cluster secret may have (a file with less is refused).
pub const CLUSTER_SECRET_BYTES_MIN: usize = 16;
/// Largest cluster secret file read.
pub const CLUSTER_SECRET_FILE_BYTES_MAX: u64 = 4 * 1024;

// ----- the coordinator's engine -----

/// Transactions the coordinator runs at once; beyond it a transfer is refused (503).
pub const COORDINATOR_TX_ACTIVE_MAX: usize = 50_000;
/// Finished outcomes the coordinator keeps to answer a repeated client `tx_id`.
pub const COORDINATOR_OUTCOMES_KEPT_MAX: usize = 1_000_000;
/// Finished transactions the coordinator keeps with their full timeline.
pub const COORDINATOR_HISTORY_KEPT_MAX: usize = 2_000;
/// Transactions on each side of one, in the history's age order, whose
/// timelines its evidence reads for who held a lock it waited for.
pub const EVIDENCE_NEIGHBOURS_MAX: usize = 64;
/// Events kept per transaction timeline.
pub const TX_TIMELINE_EVENTS_MAX: usize = 64;
/// Nodes of one transaction that its fold follows (a transfer has one or
/// two); a transaction with more is never taken for fully voted or acked.
pub const TX_NODES_MAX: usize = 8;
/// Seconds of throughput history the coordinator keeps.
pub const THROUGHPUT_HISTORY_S: usize = 60;
/// Events a two-node transfer usually has (its timeline's first allocation).
pub const TIMELINE_CAPACITY_HINT: usize = 16;
/// Transactions whose phases the metrics time at once; a newer one takes
/// the slot of an older one, whose phases then go untimed (a power of two).
pub const PHASE_SLOTS_MAX: usize = 16_384;
/// Accounts whose balance `/metrics` exports one series each (the first by
/// node, then account id); every node's total and account count are
/// exported whatever its size.
pub const METRICS_ACCOUNT_SERIES_MAX: usize = 100;
/// Remembered outcomes per chunk of their age queue (a chunk is allocated
/// whole, and shared with checkpoint snapshots until changed).
pub const REMEMBERED_CHUNK_VALUES: usize = 4_096;
/// Commands waiting for the coordinator's engine (HTTP requests beyond it get 503).
pub const COORDINATOR_COMMANDS_QUEUED_MAX: usize = 65_536;
/// Node messages waiting for the coordinator's engine.
pub const COORDINATOR_NODE_EVENTS_QUEUED_MAX: usize = 65_536;
/// Inputs the engine handles per turn before it looks at its other sources.
pub const COORDINATOR_DRAIN_PER_TURN_MAX: usize = 4_096;
/// Pause before retrying an engine that failed to start.
pub const COORDINATOR_ENGINE_START_RETRY_MS: u64 = 2_000;

// ----- the coordinator's HTTP API -----

/// Largest HTTP request body the coordinator reads.
pub const HTTP_BODY_BYTES_MAX: usize = 16 * 1024;
/// Seconds a client is told to wait (`Retry-After`) before retrying a 503.
pub const RETRY_AFTER_S: u64 = 1;
/// Longest piece of a request header quoted back in an error.
pub const QUOTED_HEADER_CHARS_MAX: usize = 100;
/// Shortest API token accepted.
pub const API_TOKEN_CHARS_MIN: usize = 16;
/// Largest API token file read: it holds one token, nothing else.
pub const API_TOKEN_FILE_BYTES_MAX: u64 = 4 * 1024;
/// Transactions `GET /api/transactions` lists when no `limit` is given.
pub const TRANSACTIONS_LIMIT_DEFAULT: usize = 50;
/// Most accounts the OpenAPI document names in the transfer schema (the
/// `from` ≠ `to` rule grows with their square); more keep the pattern alone.
pub const ACCOUNTS_LISTED_MAX: usize = 64;
/// Most transactions `GET /api/in-doubt` lists (oldest kept).
pub const IN_DOUBT_LISTED_MAX: usize = 1_000;
/// How long a handler waits for the engine to answer a question.
pub const ENGINE_ANSWER_TIMEOUT_MS: u64 = 2_000;
/// A node started this recently and not connected yet is `recovering`, not `unreachable`.
pub const NODE_RECOVERING_GRACE_MS: u64 = 10_000;
/// Longest delay an injected link fault may add (`delay_ms`).
pub const LINK_DELAY_MS_MAX: u64 = 60_000;
/// Longest injected pause between the coordinator's phases (`phase_pause_ms`).
pub const PHASE_PAUSE_MS_MAX: u64 = 60_000;
/// Longest a crashed coordinator may wait before it restarts (`restart_after_ms`).
pub const RESTART_AFTER_MS_MAX: u64 = 600_000;
/// How long an injected coordinator crash keeps the engine down, unless
/// the request says.
pub const RESTART_AFTER_MS_DEFAULT: u64 = 3_000;

// ----- the coordinator's live events (WebSocket) -----

/// Events one WebSocket client may have queued before it is told it lagged.
pub const WS_CLIENT_QUEUE_MAX: usize = 4_096;
/// Largest message a browser may send (it has nothing to say but pings).
pub const WS_INCOMING_BYTES_MAX: usize = 4 * 1024;
/// A client that does not take a message for this long is dropped.
pub const WS_SEND_TIMEOUT_MS: u64 = 10_000;
/// Recent transactions in the snapshot a client gets on connecting.
pub const WS_SNAPSHOT_TRANSACTIONS_MAX: usize = 50;
/// How often node statuses are compared, to publish each change.
pub const NODE_STATUS_POLL_MS: u64 = 100;
/// Finished transfers this close together get one balance refresh.
pub const BALANCES_DEBOUNCE_MS: u64 = 150;
/// Balances are refreshed at least this often (in-doubt ages, locks).
pub const BALANCES_REFRESH_MS: u64 = 2_000;
/// How often heuristic decisions are compared with the coordinator's.
pub const HEURISTIC_WATCH_INTERVAL_MS: u64 = 1_000;

// ----- the recording of the event stream (time travel) -----

/// Bytes of recorded events kept on disk beside the coordinator's log in
/// demo mode (the oldest segments go first); `--recording-bytes-max`.
pub const RECORDING_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Bytes of one recording segment file before the next one is started.
pub const RECORDING_SEGMENT_BYTES: u64 = 4 * 1024 * 1024;
/// Fewest bytes `--recording-bytes-max` may ask for (0 turns recording off).
pub const RECORDING_BYTES_MIN: u64 = 2 * RECORDING_SEGMENT_BYTES;
/// Batches of events waiting for the recording's writer thread; beyond it
/// events are left out of the recording (and a `lagged` line says how many).
pub const RECORDING_QUEUE_BATCHES_MAX: usize = 4_096;
/// Events recorded between two snapshots of the cluster: replaying any
/// moment folds at most this many events after a snapshot.
pub const RECORDING_SNAPSHOT_EVENTS: u64 = 5_000;
/// How often the coordinator looks whether the recording wants a snapshot.
pub const RECORDING_SNAPSHOT_POLL_MS: u64 = 250;
/// Longest line of a recording (a snapshot of a big cluster); longer
/// events are left out of it, longer lines of a file are refused.
pub const RECORDING_LINE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Largest recording file the dashboard imports.
pub const RECORDING_IMPORT_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most events the dashboard's timeline holds (fetched or imported); an
/// older part of a longer run is left out, from a snapshot on.
pub const RECORDING_VIEW_EVENTS_MAX: usize = 50_000;

// ----- messages held by the coordinator (step mode) -----

/// Protocol messages the coordinator holds at once; beyond it a message
/// goes on unheld.
pub const HELD_MESSAGES_MAX: usize = 1_000;
/// Longest delay a held message may be given before it goes on.
pub const HELD_MESSAGE_DELAY_MS_MAX: u64 = 60_000;

// ----- the coordinator's participant processes -----

/// How long a starting participant may take to recover and listen.
pub const NODE_START_TIMEOUT_MS: u64 = 30_000;
/// How long to wait for a participant to exit after SIGTERM at shutdown.
pub const NODE_STOP_TIMEOUT_MS: u64 = 3_000;
/// How long an adoption probe waits for the participant's hello.
pub const NODE_ADOPT_PROBE_TIMEOUT_MS: u64 = 1_000;
/// Pause between looks at a data dir held by a process that does not answer yet.
pub const NODE_DIR_LOCKED_RETRY_MS: u64 = 100;
/// How long a start waits for an exiting process to release a data dir before it refuses.
pub const NODE_DIR_LOCK_RELEASE_WAIT_MS: u64 = 2_000;
/// How long an operator's request to a node may take (connect, hello, answer).
pub const NODE_ADMIN_REQUEST_TIMEOUT_MS: u64 = 5_000;

// ----- the coordinator's configuration -----

/// Supervised nodes, named A to Z.
pub const SUPERVISED_NODES_MAX: u16 = 26;
/// Accounts of one supervised node.
pub const ACCOUNTS_PER_NODE_MAX: u32 = 100_000;
/// Largest opening balance of one account ($10,000,000,000.00).
pub const OPENING_BALANCE_CENTS_MAX: i64 = 1_000_000_000_000;
/// Largest config file read.
pub const CONFIG_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Most remote participants one coordinator is pointed at.
pub const REMOTE_PARTICIPANTS_MAX: usize = 1_000;

// ----- participant processes -----

/// Concurrent TCP connections one participant accepts.
pub const PARTICIPANT_CONNECTIONS_MAX: usize = 64;
/// Refused connections told why at once; beyond it they are just closed.
pub const PARTICIPANT_REFUSALS_MAX: usize = PARTICIPANT_CONNECTIONS_MAX;
/// Longest time spent telling a refused connection why.
pub const PARTICIPANT_REFUSAL_WRITE_TIMEOUT_MS: u64 = 1_000;
/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
pub const PARTICIPANT_ACCEPT_RETRY_MS: u64 = 100;
/// Messages from a participant's connections that may wait for its driver.
pub const PARTICIPANT_INBOX_MAX: usize = 4_096;
/// Inputs the driver handles in one round before it submits the log batch.
pub const PARTICIPANT_DRAIN_PER_ROUND_MAX: usize = PARTICIPANT_INBOX_MAX;
/// Replies one connection may have queued before it counts as not reading (and is closed).
pub const PARTICIPANT_REPLIES_QUEUED_MAX: usize = 16_384;
/// Write buffer of a connection's reply writer.
pub const PARTICIPANT_WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Longest time a closing connection's last replies may take to be written.
pub const PARTICIPANT_CLOSE_FLUSH_TIMEOUT_MS: u64 = 2_000;
/// After a fatal read error, how long the peer's input is read and dropped before closing.
pub const PARTICIPANT_LINGER_MS: u64 = 1_000;
/// The most bytes read and dropped while lingering.
pub const PARTICIPANT_LINGER_BYTES_MAX: usize = 16 * LINE_BYTES_MAX;
/// Transactions a participant holds at once (waiting, prepared, in doubt).
pub const PARTICIPANT_TX_ACTIVE_MAX: usize = 100_000;
/// Finished transaction outcomes a participant remembers to answer duplicates.
pub const PARTICIPANT_OUTCOMES_KEPT_MAX: usize = 200_000;
/// Heuristic decisions a participant keeps as evidence; beyond it, new ones are refused.
pub const PARTICIPANT_HEURISTICS_KEPT_MAX: usize = 10_000;
/// Ledger entries a node keeps over all its accounts (see [`ledger_entries_kept_per_account`]).
pub const PARTICIPANT_LEDGER_ENTRIES_KEPT_MAX: usize = 200_000;

/// Ledger entries each account of a node with `accounts` accounts keeps (at
/// least one), so a node's memory and checkpoint stay bounded however many
/// accounts it has.
pub fn ledger_entries_kept_per_account(accounts: usize) -> usize {
    (PARTICIPANT_LEDGER_ENTRIES_KEPT_MAX / accounts.max(1)).max(1)
}

/// Room a query reply keeps for the envelope around a list (type tags, ids, counters).
pub const QUERY_REPLY_ENVELOPE_BYTES: usize = 1_024;
/// Accounts named in full in the "recovered" log line; more get a count and a total.
pub const RECOVERED_ACCOUNTS_LOGGED_MAX: usize = 8;
/// Longest lock wait the `--lock-wait-ms` flag may ask for.
pub const LOCK_WAIT_MS_MAX: u64 = 600_000;

// ----- logs -----

/// Largest single log record (anything bigger is a corrupt length field).
pub const LOG_RECORD_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Submissions (a record or a turn's batch) waiting for the log writer; also its largest batch.
pub const LOG_WRITER_QUEUE_MAX: usize = 65_536;
/// How often the writer looks for a finished checkpoint while no commands arrive.
pub const LOG_CHECKPOINT_POLL_MS: u64 = 1;
/// Longest a participant's unforced record (a COMMITTED) waits for a force to carry its sync.
pub const PARTICIPANT_UNFORCED_SYNC_US: u64 = 300;
/// Payload bytes a log scan checksums looking for a valid frame after a bad one.
pub const LOG_SCAN_CRC_BYTES_MAX: u64 = 1 << 30;
/// Log size after which a checkpoint rewrites it.
pub const LOG_CHECKPOINT_BYTES: u64 = 32 * 1024 * 1024;
/// A node's log is checkpointed once it is this many times its last checkpoint.
pub const PARTICIPANT_LOG_CHECKPOINT_GROWTH: u64 = 4;
/// The same for the coordinator's log, kept lower: its recovery refuses every transfer.
pub const COORDINATOR_LOG_CHECKPOINT_GROWTH: u64 = 2;
/// Zeros a log file is extended by at a time, so appends overwrite allocated blocks.
pub const LOG_PREALLOCATE_CHUNK_BYTES: u64 = 1024 * 1024;
/// Free (zeroed) space a log keeps ahead of its records, one chunk at a time.
pub const LOG_PREALLOCATE_AHEAD_BYTES: u64 = 4 * 1024 * 1024;
/// The unit a disk writes whole: a lost write leaves each sector all old or all new.
pub const DISK_SECTOR_BYTES: usize = 512;

// ----- the command line -----

/// How long `tpc` waits for a TCP connection to the coordinator.
pub const CLI_CONNECT_TIMEOUT_MS: u64 = 3_000;
/// Longest `tpc` waits for an answer (a transfer may take the prepare timeout plus the ack wait).
pub const CLI_REQUEST_TIMEOUT_MS: u64 = 60_000;
/// Largest answer `tpc` reads (a long ledger).
pub const CLI_RESPONSE_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Largest event message `tpc watch` reads (a snapshot of a large cluster).
pub const CLI_WATCH_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Pause before `tpc watch` connects again after losing the coordinator.
pub const CLI_WATCH_RECONNECT_MS: u64 = 1_000;
/// Largest CA certificate file `tpc --ca-file` reads.
pub const CLI_CA_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// How long `participant-admin` waits for the node to connect and answer.
pub const ADMIN_ANSWER_TIMEOUT_MS: u64 = 10_000;

// ----- the benchmark -----

/// Longest `--seconds` (and `--warmup-seconds`) of a run.
pub const BENCH_RUN_S_MAX: u64 = 600;
/// Most concurrent clients of a run.
pub const BENCH_CLIENTS_MAX: usize = 4_096;
/// Most runs of one point (`--repeat`).
pub const BENCH_REPEATS_MAX: u32 = 100;
/// Accounts per node in `--hot` mode unless `--accounts-per-node` says otherwise.
pub const BENCH_HOT_ACCOUNTS_PER_NODE: u32 = 2;
/// Accounts per node outside `--hot` mode unless `--accounts-per-node` says otherwise.
pub const BENCH_COLD_ACCOUNTS_PER_NODE: u32 = 1_000;
/// A transfer that takes at least this long counts as slow in the timeline.
pub const BENCH_SLOW_TRANSFER_US: u32 = 30_000;
/// Largest response head or body the load generator's HTTP client accepts.
pub const BENCH_RESPONSE_BYTES_MAX: usize = 1024 * 1024;
/// Lines waiting to be written on an admin link to a node.
pub const BENCH_NODE_OUTBOX_MAX: usize = 65_536;
/// How long a node may take to answer a query on an admin link.
pub const BENCH_NODE_QUERY_TIMEOUT_MS: u64 = 5_000;
/// How long `--direct` waits for its participants, and then its engine, to be ready.
pub const BENCH_START_TIMEOUT_MS: u64 = 30_000;
/// Bytes of each record `--fsync-probe` appends.
pub const FSYNC_PROBE_RECORD_BYTES: usize = 200;
/// Forced writes of each `--fsync-probe` writer.
pub const FSYNC_PROBE_SYNCS_PER_WRITER: usize = 1_000;

// ----- chaos from the dashboard (POST /api/chaos, demo mode) -----

/// Longest run.
pub const CHAOS_SECONDS_MAX: u64 = 300;
/// Run length unless the request says.
pub const CHAOS_SECONDS_DEFAULT: u64 = 10;
/// Most concurrent clients.
pub const CHAOS_CLIENTS_MAX: u32 = 32;
/// Clients unless the request says.
pub const CHAOS_CLIENTS_DEFAULT: u32 = 4;
/// Shortest mean pause between faults.
pub const CHAOS_FAULT_INTERVAL_MS_MIN: u64 = 100;
/// Longest mean pause between faults.
pub const CHAOS_FAULT_INTERVAL_MS_MAX: u64 = 60_000;
/// Mean pause between faults unless the request says (the command's default).
pub const CHAOS_FAULT_INTERVAL_MS_DEFAULT: u64 = 700;
/// Latest faults a run's progress lists.
pub const CHAOS_RECENT_FAULTS_KEPT: usize = 50;
/// Violations a verdict lists (their count is always whole).
pub const CHAOS_VIOLATIONS_SHOWN_MAX: usize = 20;
