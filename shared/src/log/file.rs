//! [`LogFile`]: one log in one locked data directory.
//!
//! This type alone touches the log's files: it takes the directory lock,
//! recovers the log (cutting a torn tail, refusing mid-log corruption),
//! buffers appends in user space, and makes them durable on [`LogFile::sync`].
//! It is single-threaded; [`super::writer`] puts it on its own thread.
//!
//! # Preallocation
//!
//! The file is kept longer than its records: zero bytes follow the last
//! frame, written and synced ahead of time: one chunk of
//! [`LOG_PREALLOCATE_CHUNK_BYTES`] at open, then one more with a batch
//! whenever less than [`LOG_PREALLOCATE_AHEAD_BYTES`] is left (small chunks,
//! so no one fdatasync has many zeros to flush). An append
//! then overwrites blocks that already belong to the file, so the file size
//! and its extent map do not change and `fdatasync` has only data to flush.
//! On ext4 an append that grows the file makes every `fdatasync` commit the
//! journal, which all writers on the disk share (`bench --fsync-probe`
//! measures the difference; BENCHMARKS.md). Recovery reads zeros after the
//! last frame as free space ([`frame::scan`]), and a crash that tore a write
//! into that space leaves a torn tail like any other; so does a power cut that
//! lost a sector of unsynced appends while later ones reached the disk.
//!
//! After any write or sync error the `LogFile` is poisoned: every later call
//! fails. After a failed `fdatasync` the kernel may have dropped the dirty
//! pages and a retry could "succeed" without writing them, so nothing written
//! by this handle can be trusted any more; the process should stop and recover
//! from what is on disk.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::frame::{self, Tail};
use crate::limits::{LOG_PREALLOCATE_AHEAD_BYTES, LOG_PREALLOCATE_CHUNK_BYTES};

/// One chunk of zeros, shared by every extension: a fresh buffer per chunk
/// would make the kernel clear new pages each time, for bytes that never
/// change.
static ZEROS: [u8; LOG_PREALLOCATE_CHUNK_BYTES as usize] =
    [0; LOG_PREALLOCATE_CHUNK_BYTES as usize];

/// Name of the lock file inside a data directory.
pub const LOCK_FILE_NAME: &str = "LOCK";
/// Suffix of the checkpoint file written before it is renamed over the log.
pub const TMP_SUFFIX: &str = ".tmp";

/// Why a log could not be opened, written or synced.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(
        "another process holds the data directory {} (its LOCK file is locked); \
         stop that process or use another --data-dir",
        .dir.display()
    )]
    Locked { dir: PathBuf },

    #[error(
        "log {} is corrupt at byte offset {offset}: {detail}. Records after the damage \
         may be committed decisions, so refusing to start. Fix: restore the data \
         directory from a backup, or move {} away to start fresh (losing its data)",
        .path.display(),
        .path.parent().unwrap_or(Path::new(".")).display()
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        detail: String,
    },

    #[error("log I/O error on {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An open, locked, recovered log, positioned for appending.
#[derive(Debug)]
pub struct LogFile {
    dir: PathBuf,
    path: PathBuf,
    tmp_path: PathBuf,
    file: File,
    /// Frames appended but not yet handed to the OS.
    buffer: Vec<u8>,
    /// Bytes of frames handed to the OS: where the next frame goes.
    written_bytes: u64,
    /// The file's length: `written_bytes` plus zeroed, preallocated space.
    file_bytes: u64,
    /// Bytes have been handed to the OS since the last fdatasync.
    unsynced: bool,
    forces: u64,
    poisoned: bool,
    /// Declared last so it is dropped last: the log is closed before the
    /// directory is unlocked. Closing it releases the lock.
    _lock: File,
}

impl LogFile {
    /// Locks `dir` (creating it if missing), reads `dir/<name>` (creating it
    /// if missing), cuts a torn tail and returns the log opened for appending
    /// with every recovered record, in order.
    ///
    /// What it returns is on the disk: before returning, it fsyncs the log
    /// file and then `dir` and `dir`'s parent, on every open. Records that a
    /// killed process wrote but never synced sit only in the page cache, and
    /// the caller acts on them (re-sends a COMMIT, acks); without these syncs
    /// a power cut could lose them afterwards. With nothing to flush they cost
    /// a few milliseconds, once per start.
    ///
    /// `name` is a plain file name chosen by the program (panics otherwise).
    /// Fails with [`LogError::Locked`] if another `LogFile` (in this or any
    /// process) holds `dir`, and with [`LogError::Corrupt`] on mid-log damage.
    pub fn open(dir: &Path, name: &str) -> Result<(LogFile, Vec<Vec<u8>>), LogError> {
        assert_plain_name(name);
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock = lock_dir(dir)?;

        let path = dir.join(name);
        let tmp_path = dir.join(format!("{name}{TMP_SUFFIX}"));
        remove_unfinished_checkpoint(&tmp_path)?;

        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error(&path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error(&path))?;
        let scan = frame::scan(&bytes).map_err(|corrupt| LogError::Corrupt {
            path: path.clone(),
            offset: corrupt.offset,
            detail: corrupt.detail,
        })?;
        if let Tail::Torn { offset, detail } = &scan.tail {
            let bytes_cut = bytes.len() as u64 - scan.valid_len;
            file.set_len(scan.valid_len).map_err(io_error(&path))?;
            tracing::warn!(
                path = %path.display(),
                offset,
                bytes_cut,
                detail = %detail,
                "cut a torn tail off the log"
            );
        }
        let file_bytes = match scan.tail {
            Tail::Clean => bytes.len() as u64,
            Tail::Torn { .. } => scan.valid_len,
        };

        let mut log = LogFile {
            dir: dir.to_path_buf(),
            path,
            tmp_path,
            file,
            buffer: Vec::new(),
            written_bytes: scan.valid_len,
            file_bytes,
            unsynced: false,
            forces: 0,
            poisoned: false,
            _lock: lock,
        };
        // Space for the first appends, ready before any transaction waits.
        if log.file_bytes - log.written_bytes < LOG_PREALLOCATE_CHUNK_BYTES {
            log.extend_zeros(log.written_bytes)?;
        }
        // One fsync for the records read back, the cut and the zeros (a new
        // length is metadata: fsync, not fdatasync); then the directories,
        // for the log's entry, a removed checkpoint file and `dir` itself.
        log.file.sync_all().map_err(io_error(&log.path))?;
        sync_dir(dir)?;
        sync_dir(parent_dir(dir))?;
        Ok((log, scan.records))
    }

    /// Writes one chunk of zeros from `from` (at or after the end of every
    /// frame). Not synced here: the next sync makes the new length durable.
    fn extend_zeros(&mut self, from: u64) -> Result<(), LogError> {
        let written = self.file.write_all_at(&ZEROS, from);
        written.map_err(|source| self.poison(source))?;
        self.file_bytes = self.file_bytes.max(from + LOG_PREALLOCATE_CHUNK_BYTES);
        Ok(())
    }

    /// Frames `payload` into the user-space buffer. Nothing reaches the OS
    /// until [`flush`](Self::flush) or [`sync`](Self::sync).
    ///
    /// Panics if `payload` is empty or longer than `LOG_RECORD_BYTES_MAX`.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), LogError> {
        self.check_poisoned()?;
        frame::encode_frame(payload, &mut self.buffer);
        Ok(())
    }

    /// Hands the buffer to the OS without waiting for the disk: survives a
    /// process crash, not a power cut.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.check_poisoned()?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all_at(&self.buffer, self.written_bytes);
        written.map_err(|source| self.poison(source))?;
        self.written_bytes += self.buffer.len() as u64;
        self.buffer.clear();
        self.unsynced = true;
        // Keep free space ahead, so the next batches
        // overwrite allocated blocks; this sync then flushes the new length
        // once (one journal commit per extension, not per batch).
        if self.file_bytes.saturating_sub(self.written_bytes) < LOG_PREALLOCATE_AHEAD_BYTES {
            self.extend_zeros(self.file_bytes.max(self.written_bytes))?;
        }
        Ok(())
    }

    /// Writes the buffer, then `fdatasync`s: every record appended so far is
    /// durable when this returns `Ok`. Counts one force, unless there was
    /// nothing to sync.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.flush()?;
        if !self.unsynced {
            return Ok(());
        }
        let synced = self.file.sync_data();
        synced.map_err(|source| self.poison(source))?;
        self.unsynced = false;
        self.forces += 1;
        Ok(())
    }

    /// Checkpoint: atomically replaces the whole log with `records`.
    ///
    /// Writes `<name>.tmp`, fdatasyncs it, renames it over `<name>` and fsyncs
    /// the directory; counts one force. Records appended but not yet synced
    /// are discarded with the old log: `records` must already reflect them.
    /// Later appends go to the new log.
    pub fn rewrite(&mut self, records: &[Vec<u8>]) -> Result<(), LogError> {
        self.check_poisoned()?;
        self.buffer.clear();
        match self.checkpoint_target().write(records) {
            Ok(written) => self.install_checkpoint(written, std::iter::empty()),
            Err(error) => {
                self.poisoned = true;
                Err(error)
            }
        }
    }

    /// Where a checkpoint file is written beside this log: hand it to another
    /// thread to [`write`](CheckpointTarget::write) the checkpoint while this
    /// log keeps taking appends, then [`install_checkpoint`](Self::install_checkpoint).
    pub fn checkpoint_target(&self) -> CheckpointTarget {
        CheckpointTarget {
            tmp_path: self.tmp_path.clone(),
        }
    }

    /// Makes a written checkpoint the log: appends `tail` (every record
    /// appended to this log since the checkpoint's snapshot, in order) to it,
    /// syncs it, renames it over `<name>` and fsyncs the directory. Until the
    /// rename the old log stays complete, so a crash at any point leaves one
    /// whole log. Counts the checkpoint's force, and one more for a tail.
    pub fn install_checkpoint<'a>(
        &mut self,
        written: WrittenCheckpoint,
        tail: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), LogError> {
        self.check_poisoned()?;
        // Whatever is buffered was appended after the snapshot, and so is in
        // `tail` too: it goes to the new log with it.
        self.buffer.clear();
        let WrittenCheckpoint {
            file,
            frames_len,
            file_len,
        } = written;
        let mut frames = Vec::new();
        for record in tail {
            frame::encode_frame(record, &mut frames);
        }
        let installed = (|| {
            let tmp = &self.tmp_path;
            if !frames.is_empty() {
                file.write_all_at(&frames, frames_len)
                    .map_err(io_error(tmp))?;
                // It may run past the preallocated space: sync the length too.
                file.sync_all().map_err(io_error(tmp))?;
            }
            fs::rename(tmp, &self.path).map_err(io_error(&self.path))?;
            sync_dir(&self.dir)
        })();
        if let Err(error) = installed {
            self.poisoned = true;
            return Err(error);
        }
        self.file = file;
        self.written_bytes = frames_len + frames.len() as u64;
        self.file_bytes = file_len.max(self.written_bytes);
        self.unsynced = false;
        self.forces += 1 + u64::from(!frames.is_empty());
        Ok(())
    }

    /// Bytes of frames in the log, including appends still in the user-space
    /// buffer (not the preallocated space after them).
    pub fn size_bytes(&self) -> u64 {
        self.written_bytes + self.buffer.len() as u64
    }

    /// The file's length on disk: the frames plus preallocated zeros.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes.max(self.written_bytes)
    }

    /// fdatasyncs done by [`sync`](Self::sync) and [`rewrite`](Self::rewrite).
    pub fn forces(&self) -> u64 {
        self.forces
    }

    /// The log's path (`<dir>/<name>`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_poisoned(&self) -> Result<(), LogError> {
        if !self.poisoned {
            return Ok(());
        }
        Err(LogError::Io {
            path: self.path.clone(),
            source: io::Error::other("an earlier write or sync of this log failed"),
        })
    }

    fn poison(&mut self, source: io::Error) -> LogError {
        self.poisoned = true;
        LogError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// Where to write a checkpoint file beside a log (see
/// [`LogFile::checkpoint_target`]); it may be used from another thread.
#[derive(Debug, Clone)]
pub struct CheckpointTarget {
    tmp_path: PathBuf,
}

/// A checkpoint file written and synced beside its log, not yet in place.
#[derive(Debug)]
pub struct WrittenCheckpoint {
    file: File,
    frames_len: u64,
    file_len: u64,
}

impl WrittenCheckpoint {
    /// Bytes of its records (as frames), without the preallocated space.
    pub fn frames_len(&self) -> u64 {
        self.frames_len
    }
}

impl CheckpointTarget {
    /// Writes `records` as `<name>.tmp`, with one chunk of preallocated
    /// space after them, and syncs it. The log itself is untouched.
    ///
    /// Each record is written straight from its buffer, behind its frame
    /// header: a checkpoint record is megabytes, and copying it into one
    /// framed buffer first cost as much again in copying and fresh pages.
    pub fn write(&self, records: &[Vec<u8>]) -> Result<WrittenCheckpoint, LogError> {
        let headers: Vec<_> = records.iter().map(|r| frame::frame_header(r)).collect();
        let tmp = &self.tmp_path;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(io_error(tmp))?;
        let mut frames_len = 0;
        for (header, record) in headers.iter().zip(records) {
            file.write_all(header).map_err(io_error(tmp))?;
            file.write_all(record).map_err(io_error(tmp))?;
            frames_len += frame::frame_len(record.len()) as u64;
        }
        let zeros = vec![0; LOG_PREALLOCATE_CHUNK_BYTES as usize];
        file.write_all(&zeros).map_err(io_error(tmp))?;
        file.sync_all().map_err(io_error(tmp))?;
        Ok(WrittenCheckpoint {
            file,
            frames_len,
            file_len: frames_len + LOG_PREALLOCATE_CHUNK_BYTES,
        })
    }
}

fn assert_plain_name(name: &str) {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && name != LOCK_FILE_NAME
        && !name.ends_with(TMP_SUFFIX);
    assert!(plain, "log name {name:?} must be a plain file name");
}

/// Whether a process (this one included) holds `dir`'s lock right now: a
/// process is using that data directory, perhaps still recovering from its
/// log before it listens. A missing or unreadable lock file counts as free.
pub fn dir_is_locked(dir: &Path) -> bool {
    let Ok(lock) = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(LOCK_FILE_NAME))
    else {
        return false;
    };
    // Taken for a moment only; dropping the file releases it.
    matches!(lock.try_lock(), Err(TryLockError::WouldBlock))
}

/// Takes the exclusive lock on `dir/LOCK`; the returned file holds it.
fn lock_dir(dir: &Path) -> Result<File, LogError> {
    let lock_path = dir.join(LOCK_FILE_NAME);
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(LogError::Locked {
                dir: dir.to_path_buf(),
            })
        }
        Err(TryLockError::Error(source)) => {
            return Err(LogError::Io {
                path: lock_path,
                source,
            })
        }
    }
    // For a human wondering who holds it; the lock itself is what counts.
    let pid = format!("{}\n", std::process::id());
    lock.set_len(0)
        .and_then(|()| lock.write_all(pid.as_bytes()))
        .map_err(io_error(&lock_path))?;
    Ok(lock)
}

fn remove_unfinished_checkpoint(tmp_path: &Path) -> Result<(), LogError> {
    match fs::remove_file(tmp_path) {
        Ok(()) => {
            tracing::warn!(
                path = %tmp_path.display(),
                "removed an unfinished checkpoint"
            );
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(LogError::Io {
            path: tmp_path.to_path_buf(),
            source: error,
        }),
    }
}

fn parent_dir(dir: &Path) -> &Path {
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// fsyncs a directory so entries created or renamed in it are durable.
fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::DISK_SECTOR_BYTES;
    use crate::log::frame::{encode_frame, frame_len};
    use crate::log::test_rng::Rng;

    const NAME: &str = "wal";

    fn record(i: usize) -> Vec<u8> {
        format!(
            "{{\"seq\":{i},\"tx\":\"tx-{i}\",\"pad\":\"{}\"}}",
            "x".repeat(i % 37)
        )
        .into_bytes()
    }

    fn open(dir: &Path) -> (LogFile, Vec<Vec<u8>>) {
        LogFile::open(dir, NAME).expect("log opens")
    }

    /// Writes `records` as a log in `dir` and returns each frame's offset.
    fn write_log(dir: &Path, records: &[Vec<u8>]) -> Vec<usize> {
        let (mut log, recovered) = open(dir);
        assert!(recovered.is_empty());
        let mut offsets = Vec::new();
        for r in records {
            offsets.push(log.size_bytes() as usize);
            log.append(r).expect("append");
        }
        log.sync().expect("sync");
        offsets
    }

    fn log_bytes(dir: &Path) -> Vec<u8> {
        fs::read(dir.join(NAME)).expect("read log")
    }

    /// The log's frames without the preallocated zeros after them (which
    /// this checks are there and are zeros).
    fn frame_bytes(dir: &Path) -> Vec<u8> {
        let mut bytes = log_bytes(dir);
        let valid_len = frame::scan(&bytes).expect("log scans").valid_len as usize;
        assert!(
            bytes.len() - valid_len >= (LOG_PREALLOCATE_CHUNK_BYTES / 2) as usize,
            "only {} bytes preallocated after the frames",
            bytes.len() - valid_len
        );
        assert!(
            bytes[valid_len..].iter().all(|&b| b == 0),
            "non-zero free space"
        );
        bytes.truncate(valid_len);
        bytes
    }

    #[test]
    fn round_trip_through_reopen() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let records: Vec<Vec<u8>> = (0..2_000).map(record).collect();
        {
            let (mut log, recovered) = open(tmp.path());
            assert!(recovered.is_empty());
            for (i, r) in records.iter().enumerate() {
                log.append(r).expect("append");
                if i % 100 == 99 {
                    log.sync().expect("sync");
                }
            }
            log.sync().expect("sync");
            assert_eq!(log.forces(), 20);
            let expected: usize = records.iter().map(|r| frame_len(r.len())).sum();
            assert_eq!(log.size_bytes(), expected as u64);
        }
        let (log, recovered) = open(tmp.path());
        assert_eq!(recovered, records);
        assert_eq!(log.size_bytes(), frame_bytes(tmp.path()).len() as u64);
        assert_eq!(log.file_bytes(), log_bytes(tmp.path()).len() as u64);
    }

    #[test]
    fn the_file_is_extended_ahead_of_its_records() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(tmp.path());
        // Opening a new log preallocates one chunk, durably.
        assert_eq!(log.file_bytes(), LOG_PREALLOCATE_CHUNK_BYTES);
        assert_eq!(
            log_bytes(tmp.path()).len() as u64,
            LOG_PREALLOCATE_CHUNK_BYTES
        );
        let payload = vec![b'x'; 64 * 1024];
        let mut flushes = 0u64;
        while log.size_bytes() < 3 * LOG_PREALLOCATE_AHEAD_BYTES {
            let before = log.file_bytes();
            log.append(&payload).expect("append");
            log.sync().expect("sync");
            flushes += 1;
            // At most one chunk per batch, and the file is what it says.
            assert!(log.file_bytes() - before <= LOG_PREALLOCATE_CHUNK_BYTES);
            assert_eq!(log.file_bytes(), log_bytes(tmp.path()).len() as u64);
            // Once the runway is built, it stays at least AHEAD - one batch.
            if flushes * LOG_PREALLOCATE_CHUNK_BYTES > 2 * LOG_PREALLOCATE_AHEAD_BYTES {
                assert!(
                    log.file_bytes() - log.size_bytes() >= LOG_PREALLOCATE_AHEAD_BYTES - 64 * 1024
                );
            }
        }
        let (frames, file_bytes) = (log.size_bytes(), log.file_bytes());
        drop(log);
        // Reopening keeps the free space and finds every record.
        let (log, recovered) = open(tmp.path());
        assert_eq!(
            recovered.len() as u64 * frame_len(payload.len()) as u64,
            frames
        );
        assert_eq!(log.size_bytes(), frames);
        assert_eq!(log.file_bytes(), file_bytes);
    }

    /// Pages of `path` the kernel holds that are not yet on the disk (dirty
    /// or being written back), from Linux's `cachestat` (6.5 and later);
    /// `None` where the kernel lacks it.
    fn pages_not_on_disk(path: &Path) -> Option<u64> {
        #[repr(C)]
        struct Range {
            offset: u64,
            len: u64,
        }
        #[repr(C)]
        #[derive(Default)]
        struct CacheStat {
            cached: u64,
            dirty: u64,
            writeback: u64,
            evicted: u64,
            recently_evicted: u64,
        }
        const SYS_CACHESTAT: libc::c_long = 451;
        use std::os::fd::AsRawFd;
        let file = File::open(path).expect("open the log for cachestat");
        // len 0: the whole file.
        let range = Range { offset: 0, len: 0 };
        let mut stat = CacheStat::default();
        // SAFETY: both pointers are to live repr(C) structs of the layout
        // the kernel expects, and the fd is open for the call's duration.
        let result = unsafe {
            libc::syscall(
                SYS_CACHESTAT,
                file.as_raw_fd(),
                &range as *const Range,
                &mut stat as *mut CacheStat,
                0 as libc::c_uint,
            )
        };
        (result == 0).then_some(stat.dirty + stat.writeback)
    }

    #[test]
    fn open_makes_records_only_in_the_page_cache_durable() {
        // What a kill -9 leaves: records written but never synced, so only
        // in the page cache. A restarted process acts on what open returns,
        // so open must put them on the disk first.
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join(NAME);
        let records: Vec<Vec<u8>> = (0..50).map(record).collect();
        let mut bytes = Vec::new();
        for r in &records {
            encode_frame(r, &mut bytes);
        }
        // A whole chunk of free space, so open has nothing to extend.
        bytes.resize(bytes.len() + LOG_PREALLOCATE_CHUNK_BYTES as usize, 0);
        // Written without a sync. The kernel may write it back on its own
        // before we look (say, while other builds fill the page cache): then
        // the check would prove nothing, so write it again.
        let mut waiting = None;
        for _ in 0..10 {
            fs::write(&path, &bytes).expect("write the log, unsynced");
            waiting = pages_not_on_disk(&path);
            if waiting != Some(0) {
                break;
            }
        }
        let Some(waiting) = waiting else {
            eprintln!("skipped: this kernel has no cachestat (Linux 6.5+)");
            return;
        };
        assert!(waiting > 0, "the kernel wrote the log back every time");

        let (_log, recovered) = open(tmp.path());
        assert_eq!(recovered, records);
        assert_eq!(
            pages_not_on_disk(&path),
            Some(0),
            "open returned records that were not yet on the disk"
        );
    }

    #[test]
    fn sync_with_nothing_new_is_not_a_force() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(tmp.path());
        log.sync().expect("sync");
        assert_eq!(log.forces(), 0);
        log.append(b"one").expect("append");
        log.flush().expect("flush");
        log.sync().expect("sync");
        log.sync().expect("sync");
        assert_eq!(log.forces(), 1);
    }

    #[test]
    fn torn_tail_at_every_offset_of_the_last_record() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let records: Vec<Vec<u8>> = (0..6).map(record).collect();
        let source = tmp.path().join("source");
        let offsets = write_log(&source, &records);
        let full = frame_bytes(&source);
        let last = offsets[5];
        for cut in last..full.len() {
            for free_space in [0, 4096] {
                // The torn write at the end of the file, or into the zeros
                // preallocated after the last record.
                let dir = tmp.path().join(format!("cut-{cut}-{free_space}"));
                fs::create_dir(&dir).expect("mkdir");
                let mut torn = full[..cut].to_vec();
                torn.resize(cut + free_space, 0);
                fs::write(dir.join(NAME), &torn).expect("write torn log");

                let (mut log, recovered) = open(&dir);
                assert_eq!(recovered, records[..5], "cut at {cut}");
                assert_eq!(
                    frame_bytes(&dir),
                    full[..last],
                    "cut at {cut}: torn frame gone"
                );
                assert_eq!(log.size_bytes(), last as u64);

                log.append(b"after the cut").expect("append");
                log.sync().expect("sync");
                drop(log);
                let (_log, recovered) = open(&dir);
                let mut expected = records[..5].to_vec();
                expected.push(b"after the cut".to_vec());
                assert_eq!(recovered, expected, "cut at {cut}: append after recovery");
            }
        }
    }

    #[test]
    fn flipped_byte_in_the_last_record_is_cut() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let records: Vec<Vec<u8>> = (0..6).map(record).collect();
        let offsets = write_log(tmp.path(), &records);
        let mut bytes = log_bytes(tmp.path());
        bytes[offsets[5] + 12] ^= 0x01;
        fs::write(tmp.path().join(NAME), &bytes).expect("damage");

        let (_log, recovered) = open(tmp.path());
        assert_eq!(recovered, records[..5]);
        assert_eq!(frame_bytes(tmp.path()).len(), offsets[5]);
    }

    #[test]
    fn flipped_byte_in_a_middle_record_refuses_to_open() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let records: Vec<Vec<u8>> = (0..6).map(record).collect();
        let offsets = write_log(tmp.path(), &records);
        let mut bytes = log_bytes(tmp.path());
        bytes[offsets[2] + 10] ^= 0x01;
        fs::write(tmp.path().join(NAME), &bytes).expect("damage");

        match LogFile::open(tmp.path(), NAME) {
            Err(LogError::Corrupt { path, offset, .. }) => {
                assert_eq!(path, tmp.path().join(NAME));
                assert_eq!(offset, offsets[2] as u64);
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // Nothing was cut: the operator decides.
        assert_eq!(log_bytes(tmp.path()), bytes);
        // The failed open released the lock.
        assert!(matches!(
            LogFile::open(tmp.path(), NAME),
            Err(LogError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_sector_lost_before_later_frames_is_cut_at_every_sector() {
        // A power cut lost one sector of unsynced appends (it reads as the
        // preallocated zeros) while later ones reached the disk: open cuts
        // from the frame it damaged, keeps every frame before, and appends.
        let tmp = tempfile::tempdir().expect("tempdir");
        let records: Vec<Vec<u8>> = (0..200).map(record).collect();
        let source = tmp.path().join("source");
        let offsets = write_log(&source, &records);
        let full = log_bytes(&source);
        let frames_end = frame_bytes(&source).len();
        for sector in (DISK_SECTOR_BYTES..frames_end - DISK_SECTOR_BYTES).step_by(DISK_SECTOR_BYTES)
        {
            let damaged = offsets.partition_point(|&at| at <= sector) - 1;
            let dir = tmp.path().join(format!("lost-{sector}"));
            fs::create_dir(&dir).expect("mkdir");
            let mut bytes = full.clone();
            bytes[sector..sector + DISK_SECTOR_BYTES].fill(0);
            fs::write(dir.join(NAME), &bytes).expect("write the log");

            let (mut log, recovered) =
                LogFile::open(&dir, NAME).unwrap_or_else(|e| panic!("sector at {sector}: {e}"));
            assert_eq!(recovered, records[..damaged], "sector at {sector}");
            assert_eq!(
                frame_bytes(&dir),
                full[..offsets[damaged]],
                "sector at {sector}"
            );
            log.append(b"after the cut").expect("append");
            log.sync().expect("sync");
            drop(log);
            let (_log, recovered) = open(&dir);
            assert_eq!(recovered.len(), damaged + 1, "sector at {sector}");
            assert_eq!(recovered[damaged], b"after the cut", "sector at {sector}");
        }
    }

    #[test]
    fn corrupt_message_names_file_offset_and_fix() {
        let error = LogError::Corrupt {
            path: PathBuf::from("/data/p1/wal"),
            offset: 1234,
            detail: "checksum mismatch".into(),
        };
        let message = error.to_string();
        for needle in ["/data/p1/wal", "1234", "backup", "move /data/p1 away"] {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
    }

    #[test]
    fn garbage_after_a_valid_log_is_cut() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let records: Vec<Vec<u8>> = (0..6).map(record).collect();
        write_log(tmp.path(), &records);
        let valid = frame_bytes(tmp.path());
        // Garbage right after the frames, and garbage after free space.
        for zeros in [0, 4096] {
            let mut bytes = valid.clone();
            bytes.resize(valid.len() + zeros, 0);
            bytes.extend_from_slice(b"\x00\x00garbage that is no frame {\"seq\":99}");
            bytes.extend(Rng::new(7).bytes(300));
            fs::write(tmp.path().join(NAME), &bytes).expect("append garbage");

            let (_log, recovered) = open(tmp.path());
            assert_eq!(recovered, records);
            assert_eq!(frame_bytes(tmp.path()), valid);
        }
    }

    #[test]
    fn second_open_of_a_dir_is_locked_until_drop() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (first, _) = open(tmp.path());
        match LogFile::open(tmp.path(), NAME) {
            Err(LogError::Locked { dir }) => assert_eq!(dir, tmp.path()),
            other => panic!("expected Locked, got {other:?}"),
        }
        // The lock is on the directory, not on one log name.
        assert!(matches!(
            LogFile::open(tmp.path(), "other"),
            Err(LogError::Locked { .. })
        ));
        let message = LogError::Locked {
            dir: tmp.path().to_path_buf(),
        }
        .to_string();
        assert!(message.contains("--data-dir"), "{message}");
        drop(first);
        let _second = open(tmp.path());
    }

    #[test]
    fn open_creates_a_missing_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a").join("b");
        let (mut log, recovered) = open(&dir);
        assert!(recovered.is_empty());
        log.append(b"x").expect("append");
        log.sync().expect("sync");
        assert!(dir.join(LOCK_FILE_NAME).exists());
    }

    #[test]
    fn rewrite_replaces_the_log() {
        let tmp = tempfile::tempdir().expect("tempdir");
        {
            let (mut log, _) = open(tmp.path());
            for i in 0..50 {
                log.append(&record(i)).expect("append");
            }
            log.sync().expect("sync");
            log.append(b"buffered, superseded by the checkpoint")
                .expect("append");
            let snapshot = vec![b"snap-1".to_vec(), b"snap-2".to_vec()];
            log.rewrite(&snapshot).expect("rewrite");
            assert_eq!(log.forces(), 2);
            let mut expected_len = frame_len(6) * 2;
            assert_eq!(log.size_bytes(), expected_len as u64);
            log.append(b"after").expect("append");
            log.sync().expect("sync");
            expected_len += frame_len(5);
            assert_eq!(log.size_bytes(), expected_len as u64);
        }
        assert!(!tmp.path().join(format!("{NAME}{TMP_SUFFIX}")).exists());
        let (_log, recovered) = open(tmp.path());
        assert_eq!(
            recovered,
            vec![b"snap-1".to_vec(), b"snap-2".to_vec(), b"after".to_vec()]
        );
    }

    #[test]
    fn unfinished_checkpoint_is_ignored_and_removed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let records: Vec<Vec<u8>> = (0..3).map(record).collect();
        write_log(tmp.path(), &records);
        let tmp_path = tmp.path().join(format!("{NAME}{TMP_SUFFIX}"));
        let mut half = Vec::new();
        encode_frame(b"never renamed", &mut half);
        fs::write(&tmp_path, &half[..5]).expect("write tmp");

        let (_log, recovered) = open(tmp.path());
        assert_eq!(recovered, records);
        assert!(!tmp_path.exists());
    }

    #[test]
    fn failed_rewrite_poisons_the_log() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(tmp.path());
        log.append(b"kept").expect("append");
        log.sync().expect("sync");
        // A directory where the checkpoint file should go makes it fail.
        fs::create_dir(tmp.path().join(format!("{NAME}{TMP_SUFFIX}"))).expect("mkdir");
        assert!(matches!(
            log.rewrite(&[b"new".to_vec()]),
            Err(LogError::Io { .. })
        ));
        assert!(matches!(log.append(b"more"), Err(LogError::Io { .. })));
        assert!(matches!(log.sync(), Err(LogError::Io { .. })));
        drop(log);
        fs::remove_dir(tmp.path().join(format!("{NAME}{TMP_SUFFIX}"))).expect("rmdir");
        let (_log, recovered) = open(tmp.path());
        assert_eq!(recovered, vec![b"kept".to_vec()]);
    }

    #[test]
    fn property_random_damage_through_open() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for seed in 0..200u64 {
            let mut rng = Rng::new(seed);
            let dir = tmp.path().join(format!("seed-{seed}"));
            let count = rng.range(2, 20);
            let records: Vec<Vec<u8>> = (0..count).map(|i| record(i + rng.range(0, 50))).collect();
            let offsets = write_log(&dir, &records);
            let original = frame_bytes(&dir);
            let mut bytes = original.clone();
            let end = |i: usize| offsets.get(i + 1).copied().unwrap_or(original.len());

            // Damage one of the last two records, or the last one by truncation.
            let victim = rng.range(count - 2, count);
            let truncate = victim == count - 1 && rng.range(0, 2) == 0;
            if truncate {
                bytes.truncate(rng.range(offsets[victim] + 1, original.len()));
            } else {
                let at = rng.range(offsets[victim], end(victim));
                bytes[at] ^= rng.range(1, 256) as u8;
            }
            // With or without preallocated zeros after the damage.
            bytes.resize(bytes.len() + rng.range(0, 2) * 8192, 0);
            fs::write(dir.join(NAME), &bytes).expect("damage");

            let result = LogFile::open(&dir, NAME);
            if victim == count - 1 {
                let (_log, recovered) = result.expect("a damaged last record is cut");
                assert_eq!(recovered, records[..victim], "seed {seed}");
                assert_eq!(
                    frame_bytes(&dir),
                    original[..offsets[victim]],
                    "seed {seed}"
                );
            } else {
                match result {
                    Err(LogError::Corrupt { offset, .. }) => {
                        assert_eq!(offset, offsets[victim] as u64, "seed {seed}")
                    }
                    other => panic!("seed {seed}: expected Corrupt, got {other:?}"),
                }
                assert_eq!(log_bytes(&dir), bytes, "seed {seed}: nothing cut");
            }
        }
    }
}
