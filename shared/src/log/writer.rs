//! [`GroupCommitWriter`]: a std thread that owns the [`LogFile`] and shares
//! one fdatasync among every record queued while the previous one ran.
//!
//! The loop: block for one command, drain every command already queued into
//! the batch, apply them in order, then
//! - if any append asked for `sync` (or the batch held a `Rewrite`): one
//!   fdatasync, then `on_durable(highest seq in the batch)`;
//! - otherwise: write to the OS only (no fsync, no callback); such records
//!   are durable with the next fdatasync, or, for a writer started with
//!   [`GroupCommitWriter::spawn_syncing_unforced`], at most that long after
//!   the first of them was written (one fdatasync, then `on_durable`).
//!
//! Under load each fdatasync thus covers many transactions; when idle a lone
//! forced record is synced at once.
//!
//! # Contract for callers
//! - Seqs are assigned by the caller and strictly increase in the order the
//!   commands are submitted (from several threads: assign and submit under one
//!   lock). The writer thread asserts this.
//! - `on_durable(seq)` means every command with a seq `<= seq` is durable. It
//!   runs on the writer thread: keep it short, and never `submit` from it (the
//!   queue may be full and the writer is the one that drains it).
//! - A `Rewrite` replaces the log with its records: they must already reflect
//!   every command submitted before it (records given as [`Records::Later`]
//!   are encoded on the checkpoint's helper thread, from a snapshot the
//!   caller took when it submitted them). It does not hold up later appends:
//!   the checkpoint file is written and synced by a helper thread while the
//!   writer keeps appending to (and syncing) the current log; then the
//!   appends made meanwhile are added to the new file, which is synced and
//!   renamed into place. The rewrite counts as durable with its batch (the
//!   current log holds everything it stands for). While one is in progress
//!   ([`GroupCommitWriter::checkpointing`]) a caller should not start another;
//!   if it does, the newer one waits and supersedes.
//! - `on_error` is called at most once, with the first I/O error. The writer
//!   then stops, drops whatever is queued, and later `submit`s fail with
//!   [`WriterClosed`]. Records not yet reported durable may be lost: the
//!   process should stop and recover from disk.
//! - `submit` blocks while the queue is full (`LOG_WRITER_QUEUE_MAX` submissions,
//!   each one command or one batch of them): that is the backpressure.
//!   A driver that produces several records per turn hands them over with
//!   one [`GroupCommitWriter::submit_batch`]: one channel operation and at
//!   most one wake-up of the writer thread, instead of one per record. From async code, call it where blocking is
//!   acceptable (e.g. `spawn_blocking`) or keep the queue from filling.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::file::{LogError, LogFile, WrittenCheckpoint};
use super::frame;
use crate::limits::{LOG_CHECKPOINT_POLL_MS, LOG_RECORD_BYTES_MAX, LOG_WRITER_QUEUE_MAX};

/// One command for the writer thread.
#[derive(Debug)]
pub enum WriteCmd {
    /// Append one record; `sync: true` asks for it to be made durable (and
    /// reported through `on_durable`) as soon as possible.
    Append {
        seq: u64,
        payload: Vec<u8>,
        sync: bool,
    },
    /// Checkpoint: replace the whole log with `records`; always durable.
    Rewrite { seq: u64, records: Records },
}

/// The records of a [`WriteCmd::Rewrite`].
pub enum Records {
    Ready(Vec<Vec<u8>>),
    /// Produced on the helper thread that writes the checkpoint file, so
    /// that encoding a big snapshot does not hold up the caller's thread.
    Later(Box<dyn FnOnce() -> Vec<Vec<u8>> + Send>),
}

impl Records {
    fn produce(self) -> Vec<Vec<u8>> {
        match self {
            Records::Ready(records) => records,
            Records::Later(encode) => encode(),
        }
    }
}

impl From<Vec<Vec<u8>>> for Records {
    fn from(records: Vec<Vec<u8>>) -> Records {
        Records::Ready(records)
    }
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Records::Ready(records) => write!(f, "Ready({} records)", records.len()),
            Records::Later(_) => f.write_str("Later"),
        }
    }
}

impl WriteCmd {
    fn seq(&self) -> u64 {
        match self {
            WriteCmd::Append { seq, .. } | WriteCmd::Rewrite { seq, .. } => *seq,
        }
    }
}

/// The writer thread has stopped (after an I/O error, or a panic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the log writer has stopped; records can no longer be made durable")]
pub struct WriterClosed;

/// Counters shared between the writer thread and its handle.
#[derive(Debug, Default)]
struct Stats {
    forces: AtomicU64,
    size_bytes: AtomicU64,
    batches: AtomicU64,
    appends: AtomicU64,
    /// A rewrite was submitted and is not installed yet.
    checkpointing: AtomicBool,
    /// Rewrites given as `Records::Later` whose records came out larger
    /// than `LOG_RECORD_BYTES_MAX`, and were dropped (the log stays whole).
    refused: AtomicU64,
    /// Bytes of the last checkpoint installed (frames only).
    checkpoint_bytes: AtomicU64,
}

/// Handle to the writer thread. Dropping it is the same as [`shutdown`](Self::shutdown).
#[derive(Debug)]
pub struct GroupCommitWriter {
    sender: Option<SyncSender<Vec<WriteCmd>>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<Stats>,
}

type OnDurable = Box<dyn Fn(u64) + Send>;
type OnError = Box<dyn Fn(LogError) + Send>;

impl GroupCommitWriter {
    /// Starts the writer thread, which owns `file` until shutdown.
    ///
    /// Panics if the OS cannot start a thread.
    pub fn spawn(file: LogFile, on_durable: OnDurable, on_error: OnError) -> GroupCommitWriter {
        Self::start(file, None, on_durable, on_error)
    }

    /// Like [`spawn`](Self::spawn), and unforced appends do not wait for a
    /// forced one forever: they are synced (and reported through
    /// `on_durable`) at most `after` after the first of them was written.
    /// Under load a forced append comes sooner and carries them for free.
    pub fn spawn_syncing_unforced(
        file: LogFile,
        after: Duration,
        on_durable: OnDurable,
        on_error: OnError,
    ) -> GroupCommitWriter {
        Self::start(file, Some(after), on_durable, on_error)
    }

    fn start(
        file: LogFile,
        sync_unforced_after: Option<Duration>,
        on_durable: OnDurable,
        on_error: OnError,
    ) -> GroupCommitWriter {
        let (sender, receiver) = sync_channel(LOG_WRITER_QUEUE_MAX);
        let stats = Arc::new(Stats::default());
        stats.size_bytes.store(file.size_bytes(), Ordering::Relaxed);
        stats.forces.store(file.forces(), Ordering::Relaxed);
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                let mut thread = WriterThread {
                    file,
                    stats: thread_stats,
                    on_durable,
                    last_seq: None,
                    written_not_durable: None,
                    sync_unforced_after,
                    checkpoint: None,
                    queued_rewrite: None,
                };
                thread.run(receiver, on_error);
            })
            .expect("the OS starts the log writer thread");
        GroupCommitWriter {
            sender: Some(sender),
            thread: Some(thread),
            stats,
        }
    }

    /// Queues `cmd`, blocking while the queue is full.
    ///
    /// Panics if an appended payload (or a rewritten record) is empty or
    /// longer than `LOG_RECORD_BYTES_MAX`.
    pub fn submit(&self, cmd: WriteCmd) -> Result<(), WriterClosed> {
        self.submit_batch(vec![cmd])
    }

    /// Queues `cmds` (in seq order) as one submission, blocking while the
    /// queue is full. Nothing is sent for an empty batch.
    ///
    /// Panics like [`submit`](Self::submit).
    pub fn submit_batch(&self, cmds: Vec<WriteCmd>) -> Result<(), WriterClosed> {
        if cmds.is_empty() {
            return Ok(());
        }
        cmds.iter().for_each(assert_payloads);
        self.note_rewrites(&cmds);
        let sender = self.sender.as_ref().ok_or(WriterClosed)?;
        sender.send(cmds).map_err(|_| WriterClosed)
    }

    /// Like [`submit_batch`](Self::submit_batch) but never blocks: gives the
    /// batch back if the queue is full.
    pub fn try_submit_batch(&self, cmds: Vec<WriteCmd>) -> Result<(), TrySendError<Vec<WriteCmd>>> {
        if cmds.is_empty() {
            return Ok(());
        }
        cmds.iter().for_each(assert_payloads);
        self.note_rewrites(&cmds);
        match self.sender.as_ref() {
            Some(sender) => sender.try_send(cmds),
            None => Err(TrySendError::Disconnected(cmds)),
        }
    }

    /// Whether a rewrite (checkpoint) was submitted and is not yet installed:
    /// set when it is submitted, so a caller checking before its next
    /// checkpoint never races the writer thread.
    pub fn checkpointing(&self) -> bool {
        self.stats.checkpointing.load(Ordering::Acquire)
    }

    fn note_rewrites(&self, cmds: &[WriteCmd]) {
        if cmds
            .iter()
            .any(|cmd| matches!(cmd, WriteCmd::Rewrite { .. }))
        {
            self.stats.checkpointing.store(true, Ordering::Release);
        }
    }

    /// Rewrites refused because their records came out too large.
    pub fn checkpoints_refused(&self) -> u64 {
        self.stats.refused.load(Ordering::Relaxed)
    }

    /// Bytes of the last checkpoint installed.
    pub fn checkpoint_bytes(&self) -> u64 {
        self.stats.checkpoint_bytes.load(Ordering::Relaxed)
    }

    /// fdatasyncs done so far (including one per rewrite).
    pub fn forces(&self) -> u64 {
        self.stats.forces.load(Ordering::Relaxed)
    }

    /// Size of the log after the last batch, in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.stats.size_bytes.load(Ordering::Relaxed)
    }

    /// Batches processed so far (each ends in at most one fdatasync).
    pub fn batches(&self) -> u64 {
        self.stats.batches.load(Ordering::Relaxed)
    }

    /// Records appended so far (not counting rewritten records).
    pub fn appends(&self) -> u64 {
        self.stats.appends.load(Ordering::Relaxed)
    }

    /// Lets the thread apply everything already queued, sync whatever is not
    /// yet durable (reporting it through `on_durable`), and waits for it to
    /// exit, which closes the log and releases the data-directory lock.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // Dropping the only sender ends the thread's `recv` loop once the
        // queue is empty.
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the log writer thread panicked");
            }
        }
    }
}

impl Drop for GroupCommitWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn assert_payloads(cmd: &WriteCmd) {
    match cmd {
        WriteCmd::Append { payload, .. } => frame::assert_payload_len(payload.len()),
        WriteCmd::Rewrite {
            records: Records::Ready(records),
            ..
        } => {
            for record in records {
                frame::assert_payload_len(record.len());
            }
        }
        // Checked on the helper thread, once they exist.
        WriteCmd::Rewrite {
            records: Records::Later(_),
            ..
        } => {}
    }
}

/// State owned by the writer thread.
struct WriterThread {
    file: LogFile,
    stats: Arc<Stats>,
    on_durable: OnDurable,
    last_seq: Option<u64>,
    /// Highest seq handed to the OS but not yet reported durable, and when
    /// the oldest of those appends was written.
    written_not_durable: Option<(u64, Instant)>,
    /// Longest an unforced append waits for a sync (None: until the next
    /// forced one, or shutdown).
    sync_unforced_after: Option<Duration>,
    /// The checkpoint being written beside the log, if any.
    checkpoint: Option<Checkpoint>,
    /// A rewrite submitted while another was in progress: it starts when
    /// that one is installed (and supersedes it).
    queued_rewrite: Option<(u64, Records)>,
}

/// A checkpoint file being written by a helper thread.
struct Checkpoint {
    /// Every record appended since the checkpoint's rewrite, with its seq:
    /// they go into the new file before it replaces the log.
    tail: Vec<(u64, Vec<u8>)>,
    /// `Ok(None)`: refused, its records are too large (see `Stats::refused`).
    done: Receiver<Result<Option<WrittenCheckpoint>, LogError>>,
}

impl WriterThread {
    fn run(&mut self, receiver: Receiver<Vec<WriteCmd>>, on_error: OnError) {
        let mut batch = Vec::new();
        loop {
            // Wake for whichever comes first: a checkpoint to poll, unforced
            // appends due for their sync; neither: wait for commands only.
            let wait = [
                self.checkpoint
                    .is_some()
                    .then_some(Duration::from_millis(LOG_CHECKPOINT_POLL_MS)),
                self.unforced_due()
                    .map(|due| due.saturating_duration_since(Instant::now())),
            ]
            .into_iter()
            .flatten()
            .min();
            let first = match wait {
                Some(wait) => match receiver.recv_timeout(wait) {
                    Ok(cmds) => Some(cmds),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match receiver.recv() {
                    Ok(cmds) => Some(cmds),
                    Err(_) => break,
                },
            };
            if let Some(first) = first {
                batch.extend(first);
                for _ in 1..LOG_WRITER_QUEUE_MAX {
                    match receiver.try_recv() {
                        Ok(cmds) => batch.extend(cmds),
                        Err(_) => break,
                    }
                }
                // Counted before it is applied, so `forces <= batches` holds
                // whenever anyone looks.
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                let applied = self.apply_batch(batch.drain(..));
                self.publish_stats();
                if let Err(error) = applied {
                    on_error(error);
                    return;
                }
            }
            if let Err(error) = self.install_if_written(false) {
                on_error(error);
                return;
            }
            if let Err(error) = self.sync_unforced_if_due() {
                on_error(error);
                return;
            }
        }
        // Shutdown: everything queued has been applied; finish a checkpoint
        // in progress (and one queued behind it), then make it all durable.
        while self.checkpoint.is_some() {
            if let Err(error) = self.install_if_written(true) {
                on_error(error);
                return;
            }
        }
        if let Err(error) = self.sync_written() {
            self.publish_stats();
            on_error(error);
        }
    }

    /// When unforced appends must be synced (if this writer syncs them).
    fn unforced_due(&self) -> Option<Instant> {
        let after = self.sync_unforced_after?;
        let (_, since) = self.written_not_durable?;
        Some(since + after)
    }

    fn sync_unforced_if_due(&mut self) -> Result<(), LogError> {
        match self.unforced_due() {
            Some(due) if Instant::now() >= due => self.sync_written(),
            _ => Ok(()),
        }
    }

    /// Syncs the appends written but not yet durable, if any, and reports
    /// them durable.
    fn sync_written(&mut self) -> Result<(), LogError> {
        if let Some((seq, _)) = self.written_not_durable.take() {
            self.file.sync()?;
            self.publish_stats();
            (self.on_durable)(seq);
        }
        Ok(())
    }

    /// Starts writing a checkpoint of `records` beside the log.
    fn start_checkpoint(
        &mut self,
        records: Records,
        tail: Vec<(u64, Vec<u8>)>,
    ) -> Result<(), LogError> {
        let target = self.file.checkpoint_target();
        let (done_tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("log-checkpoint".into())
            .spawn(move || {
                let records = records.produce();
                let too_large = records.iter().map(Vec::len).find(|&len| len > LOG_RECORD_BYTES_MAX);
                let written = match too_large {
                    Some(len) => {
                        tracing::error!(
                            record_bytes = len,
                            max = LOG_RECORD_BYTES_MAX,
                            "a checkpoint record is larger than LOG_RECORD_BYTES_MAX; not checkpointing (the log stays as it is and keeps growing)"
                        );
                        Ok(None)
                    }
                    None => target.write(&records).map(Some),
                };
                let _ = done_tx.send(written);
            })
            .map_err(|source| LogError::Io {
                path: self.file.path().to_path_buf(),
                source,
            })?;
        self.checkpoint = Some(Checkpoint { tail, done });
        Ok(())
    }

    /// Installs the checkpoint being written if it is done (or, with
    /// `wait`, once it is), then starts a queued one.
    fn install_if_written(&mut self, wait: bool) -> Result<(), LogError> {
        let Some(checkpoint) = &self.checkpoint else {
            return Ok(());
        };
        let written = if wait {
            checkpoint.done.recv().ok()
        } else {
            match checkpoint.done.try_recv() {
                Ok(written) => Some(written),
                Err(mpsc::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::TryRecvError::Disconnected) => None,
            }
        };
        let Some(checkpoint) = self.checkpoint.take() else {
            return Ok(());
        };
        let written = written.unwrap_or_else(|| {
            Err(LogError::Io {
                path: self.file.path().to_path_buf(),
                source: std::io::Error::other("the checkpoint thread stopped without an answer"),
            })
        })?;
        match written {
            Some(written) => {
                self.stats
                    .checkpoint_bytes
                    .store(written.frames_len(), Ordering::Relaxed);
                // Appends still in the buffer were made after the snapshot:
                // they are in the tail, and go to the new file with it.
                let tail = checkpoint
                    .tail
                    .iter()
                    .map(|(_, payload)| payload.as_slice());
                self.file.install_checkpoint(written, tail)?;
                self.publish_stats();
            }
            // Nothing to install: the log as it is holds everything.
            None => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        match self.queued_rewrite.take() {
            Some((seq, records)) => {
                let newer: Vec<(u64, Vec<u8>)> = checkpoint
                    .tail
                    .into_iter()
                    .filter(|(s, _)| *s > seq)
                    .collect();
                self.start_checkpoint(records, newer)
            }
            None => {
                self.stats.checkpointing.store(false, Ordering::Release);
                Ok(())
            }
        }
    }

    fn apply_batch(&mut self, batch: impl Iterator<Item = WriteCmd>) -> Result<(), LogError> {
        // Whether an append after the batch's last rewrite asked for sync.
        let mut sync_wanted = false;
        let mut highest_seq = None;
        for cmd in batch {
            let seq = cmd.seq();
            if let Some(last) = self.last_seq {
                assert!(
                    seq > last,
                    "log seqs must strictly increase: {seq} after {last}"
                );
            }
            self.last_seq = Some(seq);
            highest_seq = Some(seq);
            match cmd {
                WriteCmd::Append { payload, sync, .. } => {
                    self.file.append(&payload)?;
                    self.stats.appends.fetch_add(1, Ordering::Relaxed);
                    sync_wanted |= sync;
                    if let Some(checkpoint) = &mut self.checkpoint {
                        checkpoint.tail.push((seq, payload));
                    }
                }
                WriteCmd::Rewrite { records, .. } => {
                    // Written beside the log while appends go on; durable
                    // with this batch, since the current log holds all it
                    // stands for.
                    if self.checkpoint.is_some() {
                        self.queued_rewrite = Some((seq, records));
                    } else {
                        self.start_checkpoint(records, Vec::new())?;
                    }
                    sync_wanted = true;
                }
            }
        }
        let Some(highest_seq) = highest_seq else {
            return Ok(());
        };
        if sync_wanted {
            self.file.sync()?;
            self.written_not_durable = None;
            // Counters first: whoever learns of durability sees the force.
            self.publish_stats();
            (self.on_durable)(highest_seq);
            return Ok(());
        }
        self.file.flush()?;
        // Unforced appends: durable with a later sync (or at shutdown, or
        // when `sync_unforced_after` has passed).
        let since = self
            .written_not_durable
            .map_or_else(Instant::now, |(_, since)| since);
        self.written_not_durable = Some((highest_seq, since));
        Ok(())
    }

    fn publish_stats(&self) {
        self.stats
            .forces
            .store(self.file.forces(), Ordering::Relaxed);
        self.stats
            .size_bytes
            .store(self.file.size_bytes(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::{Condvar, Mutex};
    use std::time::{Duration, Instant};

    const NAME: &str = "wal";
    const WAIT_MS_MAX: u64 = 10_000;

    /// Every `on_durable` value, in call order, plus a condvar to wait on.
    #[derive(Default)]
    struct Durable {
        seqs: Mutex<Vec<u64>>,
        changed: Condvar,
    }

    impl Durable {
        fn highest(&self) -> Option<u64> {
            self.seqs.lock().expect("lock").last().copied()
        }

        fn wait_for(&self, seq: u64) {
            let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
            let mut seqs = self.seqs.lock().expect("lock");
            while seqs.last().is_none_or(|&s| s < seq) {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "seq {seq} never became durable");
                seqs = self.changed.wait_timeout(seqs, left).expect("lock").0;
            }
        }
    }

    fn spawn_with(
        dir: &Path,
        durable: &Arc<Durable>,
        slow_ms: u64,
    ) -> (GroupCommitWriter, Arc<Mutex<Vec<String>>>) {
        spawn_lazy(dir, durable, slow_ms, None)
    }

    fn spawn_lazy(
        dir: &Path,
        durable: &Arc<Durable>,
        slow_ms: u64,
        sync_unforced_after: Option<Duration>,
    ) -> (GroupCommitWriter, Arc<Mutex<Vec<String>>>) {
        let (file, _) = LogFile::open(dir, NAME).expect("log opens");
        let errors = Arc::new(Mutex::new(Vec::new()));
        let on_durable = {
            let durable = Arc::clone(durable);
            Box::new(move |seq: u64| {
                durable.seqs.lock().expect("lock").push(seq);
                durable.changed.notify_all();
                // A slow disk: submitters pile up behind the writer.
                std::thread::sleep(Duration::from_millis(slow_ms));
            })
        };
        let on_error = {
            let errors = Arc::clone(&errors);
            Box::new(move |error: LogError| errors.lock().expect("lock").push(error.to_string()))
        };
        let writer = match sync_unforced_after {
            None => GroupCommitWriter::spawn(file, on_durable, on_error),
            Some(after) => {
                GroupCommitWriter::spawn_syncing_unforced(file, after, on_durable, on_error)
            }
        };
        (writer, errors)
    }

    fn append(seq: u64, payload: &[u8], sync: bool) -> WriteCmd {
        WriteCmd::Append {
            seq,
            payload: payload.to_vec(),
            sync,
        }
    }

    fn reopen(dir: &Path) -> Vec<Vec<u8>> {
        LogFile::open(dir, NAME).expect("log reopens").1
    }

    fn assert_strictly_increasing(seqs: &[u64]) {
        for pair in seqs.windows(2) {
            assert!(
                pair[0] < pair[1],
                "on_durable went {} then {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn concurrent_sync_appends_share_forces() {
        const THREADS: u64 = 8;
        const PER_THREAD: u64 = 100;
        let tmp = tempfile::tempdir().expect("tempdir");
        let durable = Arc::new(Durable::default());
        let (writer, errors) = spawn_with(tmp.path(), &durable, 1);
        let writer = Arc::new(writer);
        let next_seq = Arc::new(Mutex::new(0u64));

        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (writer, durable, next_seq) = (
                    Arc::clone(&writer),
                    Arc::clone(&durable),
                    Arc::clone(&next_seq),
                );
                std::thread::spawn(move || {
                    for _ in 0..PER_THREAD {
                        // Like a transaction: persist, then wait until durable.
                        let seq = {
                            let mut next = next_seq.lock().expect("lock");
                            *next += 1;
                            let payload = format!("{{\"seq\":{},\"thread\":{t}}}", *next);
                            writer
                                .submit(append(*next, payload.as_bytes(), true))
                                .expect("writer alive");
                            *next
                        };
                        durable.wait_for(seq);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker");
        }

        let records = THREADS * PER_THREAD;
        let writer = Arc::into_inner(writer).expect("workers are done");
        let forces = writer.forces();
        assert_eq!(writer.appends(), records);
        assert!(
            forces * 3 < records,
            "{forces} forces for {records} records: no group commit"
        );
        assert!(forces <= writer.batches());
        writer.shutdown();

        let seqs = durable.seqs.lock().expect("lock").clone();
        assert_strictly_increasing(&seqs);
        assert_eq!(seqs.last().copied(), Some(records));
        assert!(errors.lock().expect("lock").is_empty());

        let recovered = reopen(tmp.path());
        assert_eq!(recovered.len() as u64, records);
        for (i, payload) in recovered.iter().enumerate() {
            let prefix = format!("{{\"seq\":{},", i + 1);
            assert!(
                payload.starts_with(prefix.as_bytes()),
                "record {i} out of seq order"
            );
        }
    }

    #[test]
    fn a_batch_is_one_submission_applied_in_order_with_one_force() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let durable = Arc::new(Durable::default());
        let (writer, errors) = spawn_with(tmp.path(), &durable, 0);
        writer
            .submit_batch(Vec::new())
            .expect("an empty batch is nothing");
        let batch: Vec<WriteCmd> = (1..=100)
            .map(|seq| append(seq, format!("record {seq}").as_bytes(), seq % 10 == 0))
            .collect();
        writer.submit_batch(batch).expect("writer alive");
        durable.wait_for(100);
        assert_eq!(writer.forces(), 1, "one batch, one fdatasync");
        assert_eq!(writer.appends(), 100);
        assert_eq!(durable.seqs.lock().expect("lock").as_slice(), &[100]);
        writer.shutdown();
        assert!(errors.lock().expect("lock").is_empty());
        let expected: Vec<Vec<u8>> = (1..=100)
            .map(|seq| format!("record {seq}").into_bytes())
            .collect();
        assert_eq!(reopen(tmp.path()), expected);
    }

    #[test]
    fn a_writer_syncing_unforced_appends_syncs_them_after_its_delay() {
        const AFTER: Duration = Duration::from_millis(50);
        let tmp = tempfile::tempdir().expect("tempdir");
        let durable = Arc::new(Durable::default());
        let (writer, errors) = spawn_lazy(tmp.path(), &durable, 0, Some(AFTER));
        let started = Instant::now();
        for seq in 1..=3 {
            writer
                .submit(append(seq, b"lazy", false))
                .expect("writer alive");
        }
        durable.wait_for(3);
        assert!(
            started.elapsed() >= AFTER,
            "synced before its delay: {:?}",
            started.elapsed()
        );
        assert_eq!(writer.forces(), 1, "one fdatasync for all three");
        assert_eq!(durable.highest(), Some(3));

        // A forced append comes first: it carries the unforced ones at once.
        writer
            .submit(append(4, b"lazy", false))
            .expect("writer alive");
        writer
            .submit(append(5, b"eager", true))
            .expect("writer alive");
        durable.wait_for(5);
        assert_eq!(writer.forces(), 2);

        // A steady stream of unforced appends, each sooner than the delay,
        // is still synced (the delay runs from the oldest one).
        let mut seq = 5;
        let stream_started = Instant::now();
        while stream_started.elapsed() < AFTER * 8 {
            seq += 1;
            writer
                .submit(append(seq, b"lazy", false))
                .expect("writer alive");
            std::thread::sleep(AFTER / 5);
        }
        assert!(
            durable.highest() > Some(5),
            "a stream of unforced appends was never synced"
        );
        writer.shutdown();
        assert_eq!(reopen(tmp.path()).len() as u64, seq);
        assert!(errors.lock().expect("lock").is_empty());
    }

    #[test]
    fn unforced_appends_neither_force_nor_call_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let durable = Arc::new(Durable::default());
        let (writer, _) = spawn_with(tmp.path(), &durable, 0);
        for seq in 1..=10 {
            writer
                .submit(append(seq, b"lazy", false))
                .expect("writer alive");
        }
        let expected = (frame::frame_len(4) * 10) as u64;
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        while writer.size_bytes() < expected {
            assert!(Instant::now() < deadline, "appends never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(writer.forces(), 0);
        assert_eq!(durable.highest(), None);

        // A later sync append covers the earlier unforced ones.
        writer
            .submit(append(11, b"eager", true))
            .expect("writer alive");
        durable.wait_for(11);
        assert_eq!(writer.forces(), 1);

        // Shutdown syncs trailing unforced appends and reports them.
        writer
            .submit(append(12, b"lazy", false))
            .expect("writer alive");
        writer.shutdown();
        assert_eq!(*durable.seqs.lock().expect("lock"), vec![11, 12]);
        assert_eq!(reopen(tmp.path()).len(), 12);
    }

    #[test]
    fn rewrite_applies_in_order_with_appends() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let durable = Arc::new(Durable::default());
        let (writer, _) = spawn_with(tmp.path(), &durable, 0);
        writer.submit(append(1, b"old-1", true)).expect("alive");
        writer.submit(append(2, b"old-2", false)).expect("alive");
        writer
            .submit(WriteCmd::Rewrite {
                seq: 3,
                // Encoded on the helper thread (as the engines do).
                records: Records::Later(Box::new(|| vec![b"snapshot".to_vec()])),
            })
            .expect("alive");
        writer.submit(append(4, b"new-1", false)).expect("alive");
        durable.wait_for(3);
        writer.submit(append(5, b"new-2", true)).expect("alive");
        durable.wait_for(5);
        writer.shutdown();

        let seqs = durable.seqs.lock().expect("lock").clone();
        assert_strictly_increasing(&seqs);
        assert_eq!(seqs.last().copied(), Some(5));
        assert_eq!(
            reopen(tmp.path()),
            vec![b"snapshot".to_vec(), b"new-1".to_vec(), b"new-2".to_vec()]
        );
    }

    /// Records given as `Later` are produced on the helper thread: appends
    /// become durable while the encoding has not even started.
    #[test]
    fn records_given_later_are_encoded_while_appends_go_on() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let durable = Arc::new(Durable::default());
        let (writer, _) = spawn_with(tmp.path(), &durable, 0);
        writer.submit(append(1, b"old", true)).expect("alive");
        let (go, wait) = mpsc::channel::<()>();
        let encode = move || {
            let _ = wait.recv();
            vec![b"snapshot".to_vec()]
        };
        writer
            .submit(WriteCmd::Rewrite {
                seq: 2,
                records: Records::Later(Box::new(encode)),
            })
            .expect("alive");
        writer.submit(append(3, b"during", true)).expect("alive");
        durable.wait_for(3);
        assert!(
            writer.checkpointing(),
            "the checkpoint waits for its records"
        );
        go.send(()).expect("the encoder waits");
        writer.submit(append(4, b"after", true)).expect("alive");
        durable.wait_for(4);
        writer.shutdown();
        assert_eq!(
            reopen(tmp.path()),
            vec![b"snapshot".to_vec(), b"during".to_vec(), b"after".to_vec()]
        );
    }

    /// Records that come out too large for one frame are not written: the
    /// checkpoint is dropped, the log stays whole, and the writer goes on.
    #[test]
    fn a_checkpoint_too_large_is_refused_and_the_log_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let durable = Arc::new(Durable::default());
        let (writer, _) = spawn_with(tmp.path(), &durable, 0);
        writer.submit(append(1, b"one", true)).expect("alive");
        let huge = || vec![vec![b'x'; LOG_RECORD_BYTES_MAX + 1]];
        writer
            .submit(WriteCmd::Rewrite {
                seq: 2,
                records: Records::Later(Box::new(huge)),
            })
            .expect("alive");
        writer.submit(append(3, b"three", true)).expect("alive");
        durable.wait_for(3);
        writer.submit(append(4, b"four", true)).expect("alive");
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        while writer.checkpoints_refused() == 0 || writer.checkpointing() {
            assert!(
                Instant::now() < deadline,
                "the checkpoint was never refused"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(writer.checkpoints_refused(), 1);
        writer.submit(append(5, b"five", true)).expect("alive");
        durable.wait_for(5);
        writer.shutdown();
        assert_eq!(
            reopen(tmp.path()),
            vec![
                b"one".to_vec(),
                b"three".to_vec(),
                b"four".to_vec(),
                b"five".to_vec()
            ]
        );
    }

    #[test]
    fn io_error_is_reported_once_and_stops_the_writer() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let durable = Arc::new(Durable::default());
        let (writer, errors) = spawn_with(tmp.path(), &durable, 0);
        writer.submit(append(1, b"kept", true)).expect("alive");
        durable.wait_for(1);
        // A directory in the checkpoint file's place makes the rewrite fail.
        std::fs::create_dir(tmp.path().join(format!("{NAME}.tmp"))).expect("mkdir");
        writer
            .submit(WriteCmd::Rewrite {
                seq: 2,
                records: vec![b"lost".to_vec()].into(),
            })
            .expect("alive");
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        let mut seq = 3;
        while writer.submit(append(seq, b"late", true)).is_ok() {
            assert!(Instant::now() < deadline, "writer never stopped");
            std::thread::sleep(Duration::from_millis(1));
            seq += 1;
        }
        writer.shutdown();
        let errors = errors.lock().expect("lock").clone();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("wal.tmp"), "{}", errors[0]);
        // The checkpoint is written in the background, so appends made
        // before it failed may have been reported durable (in the current
        // log): every one that was is still there, and nothing else is.
        let highest = durable
            .seqs
            .lock()
            .expect("lock")
            .last()
            .copied()
            .unwrap_or(0);
        std::fs::remove_dir(tmp.path().join(format!("{NAME}.tmp"))).expect("rmdir");
        let recovered = reopen(tmp.path());
        assert_eq!(recovered[0], b"kept".to_vec());
        assert!(recovered[1..].iter().all(|r| r == b"late"), "{recovered:?}");
        let late_reported = highest.saturating_sub(2) as usize;
        assert!(
            recovered.len() > late_reported,
            "{} records, {late_reported} late ones reported durable",
            recovered.len()
        );
    }

    #[test]
    fn appends_go_on_while_a_checkpoint_is_written_and_end_up_in_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let durable = Arc::new(Durable::default());
        let (writer, errors) = spawn_with(tmp.path(), &durable, 0);
        for seq in 1..=50 {
            writer
                .submit(append(seq, format!("old-{seq}").as_bytes(), true))
                .expect("alive");
        }
        // A big snapshot takes a while to write; appends keep being made
        // durable meanwhile (in the current log).
        let snapshot: Vec<Vec<u8>> = (0..2_000)
            .map(|i| format!("snapshot-{i}-{}", "x".repeat(500)).into_bytes())
            .collect();
        writer
            .submit(WriteCmd::Rewrite {
                seq: 51,
                records: snapshot.clone().into(),
            })
            .expect("alive");
        assert!(writer.checkpointing(), "set when submitted");
        for seq in 52..=300 {
            writer
                .submit(append(seq, format!("new-{seq}").as_bytes(), seq % 7 == 0))
                .expect("alive");
        }
        writer.submit(append(301, b"new-301", true)).expect("alive");
        durable.wait_for(301);
        // The checkpoint is installed in the background.
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        while writer.checkpointing() {
            assert!(Instant::now() < deadline, "checkpoint never installed");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!tmp.path().join(format!("{NAME}.tmp")).exists());
        writer.submit(append(302, b"after", true)).expect("alive");
        durable.wait_for(302);
        writer.shutdown();
        assert!(errors.lock().expect("lock").is_empty());
        assert_strictly_increasing(&durable.seqs.lock().expect("lock"));
        let mut expected = snapshot;
        expected.extend((52..=301).map(|seq| format!("new-{seq}").into_bytes()));
        expected.push(b"after".to_vec());
        assert_eq!(reopen(tmp.path()), expected);
    }

    #[test]
    fn a_rewrite_during_a_checkpoint_waits_and_supersedes_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let durable = Arc::new(Durable::default());
        let (writer, errors) = spawn_with(tmp.path(), &durable, 0);
        writer.submit(append(1, b"a", true)).expect("alive");
        writer
            .submit(WriteCmd::Rewrite {
                seq: 2,
                records: vec![b"first".to_vec()].into(),
            })
            .expect("alive");
        writer.submit(append(3, b"b", false)).expect("alive");
        writer
            .submit(WriteCmd::Rewrite {
                seq: 4,
                records: vec![b"second".to_vec()].into(),
            })
            .expect("alive");
        writer.submit(append(5, b"c", true)).expect("alive");
        durable.wait_for(5);
        writer.shutdown();
        assert!(errors.lock().expect("lock").is_empty());
        // Whichever way the two raced, the newest checkpoint wins.
        assert_eq!(reopen(tmp.path()), vec![b"second".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn dropping_the_writer_releases_the_lock() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let durable = Arc::new(Durable::default());
        let (writer, _) = spawn_with(tmp.path(), &durable, 0);
        assert!(matches!(
            LogFile::open(tmp.path(), NAME),
            Err(LogError::Locked { .. })
        ));
        drop(writer);
        assert!(reopen(tmp.path()).is_empty());
    }
}
