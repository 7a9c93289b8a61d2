//! The durable append-only log that the coordinator and every participant
//! write. Records are opaque byte payloads (callers put postcard or JSON in
//! them); this module only makes them durable and gives them back, in
//! order, at startup.
//!
//! - [`frame`]: the on-disk framing and the recovery scan. Pure, no I/O.
//! - [`file`](mod@file): [`file::LogFile`], one log in one locked data directory: open
//!   and recover, append, sync, checkpoint (rewrite).
//! - [`writer`]: [`writer::GroupCommitWriter`], a std thread that owns the
//!   `LogFile` and lets concurrent transactions share one fsync.
//! - [`checkpoint`]: [`checkpoint::CheckpointPolicy`], when a log is
//!   rewritten as one checkpoint record.
//!
//! # The format
//!
//! A log is a sequence of frames (no file header), then zero bytes: space
//! preallocated for the next frames (see [`file`](mod@file)):
//!
//! ```text
//! [len: u32 LE][crc32 of payload: u32 LE][payload: len bytes] [len][crc][payload] ... 00 00 ...
//! ```
//!
//! with `0 < len <= limits::LOG_RECORD_BYTES_MAX`. The length lets the reader
//! find the next frame; the CRC-32 (IEEE, as `crc32fast` computes it) tells a
//! record that was written completely from one that was torn by a crash or
//! damaged on disk. Since no frame has length 0, zeros are never mistaken for
//! one.
//!
//! # Durability: why `fdatasync`
//!
//! `write` only hands bytes to the kernel's page cache; a power cut loses
//! them. A record may be relied on (a `ready` vote sent, a commit announced)
//! only after `fdatasync` (`File::sync_data`) returned for it. `fdatasync`
//! rather than `fsync` because it skips metadata nobody needs to read the
//! data back (timestamps) while still flushing what is needed (the file size).
//! That call is the expensive part of a write, which is why [`writer`] batches
//! every record queued meanwhile behind a single one: group commit.
//!
//! Directory entries are durable only once the directory itself is fsynced,
//! so creating the log file and renaming a checkpoint into place both end
//! with an fsync of the data directory.
//!
//! Opening a log fsyncs the file and its directory before it returns a
//! record, every time: a killed process's last appends (or its last rename)
//! may be only in the page cache, where its successor reads them and acts on
//! them; a power cut after that must not take them back.
//!
//! # Recovery rules
//!
//! At startup [`frame::scan`] reads frames from offset 0 until the first bad
//! one (length field truncated, length 0 or too large, payload past the end of
//! the file, checksum mismatch) at offset X. Then:
//!
//! - **Only zero bytes from X on: free space.** Nothing to cut; appends
//!   continue at X, overwriting the zeros.
//! - **No valid frame starts anywhere after X: a torn tail.** A crash in the
//!   middle of an append leaves a partial last frame (or, after a power cut,
//!   garbage where it was). That record was never synced, so nobody relied on
//!   it. The file is cut back to X (truncate + fsync) and a warning names the
//!   file, the offset and the number of bytes cut. Appending continues at X
//!   (after zeros are preallocated again).
//! - **X is a write a power cut lost: also a torn tail.** Unsynced writes
//!   reach the disk in any order, so a sector that never did (still zeros)
//!   can lie before valid frames written after it. A sync of any of them
//!   would have made X durable too, so none was synced, and they are cut with
//!   X. [`frame`] says which zeros count as a lost write.
//! - **Otherwise, a valid frame starts at some Y > X: mid-log corruption.**
//!   Appends only ever add to the end, so neither a crash nor a power cut
//!   leaves such damage: the disk lost or altered bytes that were already
//!   there. The records after X may be durable decisions (a COMMIT the
//!   coordinator announced, a PREPARED vote a participant promised to
//!   honour). Dropping them would silently break atomicity, and skipping the
//!   bad frame would silently lose one, so the only safe answer is to refuse
//!   to start ([`file::LogError::Corrupt`]) and let an operator restore a
//!   backup or move the data directory away, knowingly losing it.
//!
//! # Checkpoints
//!
//! A checkpoint replaces the whole log with a caller-supplied list of
//! records (a snapshot of the state) plus whatever was appended after the
//! snapshot. [`file::CheckpointTarget::write`] writes `<name>.tmp` and syncs
//! it (in [`writer`], on a helper thread, while appends continue to the
//! current log); [`file::LogFile::install_checkpoint`] then appends the
//! records made meanwhile, syncs, renames it over `<name>` and fsyncs the
//! directory. `rename` is atomic, so after a crash the log is either entirely
//! the old one (which holds everything) or entirely the new one; a leftover
//! `<name>.tmp` is an unfinished checkpoint and is deleted at the next open.
//! [`file::LogFile::rewrite`] does both at once.
//!
//! # The data-directory lock
//!
//! Two processes appending to one log would interleave frames and each would
//! believe its own view. [`file::LogFile::open`] therefore takes an exclusive
//! lock on `<dir>/LOCK` (`File::try_lock`, `flock` on Linux) and holds it for
//! the life of the `LogFile`. The OS releases it when the process dies, even
//! by `kill -9`, so a stale LOCK file never blocks a restart.

pub mod checkpoint;
pub mod file;
pub mod frame;
pub mod writer;

pub use checkpoint::CheckpointPolicy;
pub use file::{LogError, LogFile};
pub use frame::{encode_frame, scan, CorruptLog, Scan, Tail};
pub use writer::{GroupCommitWriter, Records, WriteCmd, WriterClosed};

#[cfg(test)]
pub(crate) mod test_rng {
    /// splitmix64: a tiny deterministic PRNG, so a failing seed replays.
    pub(crate) struct Rng(u64);

    impl Rng {
        pub(crate) fn new(seed: u64) -> Rng {
            Rng(seed)
        }

        pub(crate) fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// A value in `lo..hi` (`hi` exclusive, `hi > lo`).
        pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
            assert!(hi > lo, "empty range {lo}..{hi}");
            lo + (self.next_u64() % (hi - lo) as u64) as usize
        }

        pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next_u64() as u8).collect()
        }
    }
}
