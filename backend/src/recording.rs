//! The recording: every event the hub publishes, appended as JSON lines
//! (the `shared::recording` format) to segment files in
//! `<data-dir>/coordinator/recording/`, beside the decision log. It is what
//! the dashboard's timeline replays and exports.
//!
//! - **Off the engine's thread.** The hub hands each turn's events over a
//!   bounded queue to a writer thread, which serialises and appends them;
//!   when the queue is full the events are left out (the recording's `seq`
//!   then has a gap, and the next snapshot resynchronises a replay).
//! - **Bounded.** A segment (`events-<first seq>.jsonl`, a header line
//!   first) is closed at [`RECORDING_SEGMENT_BYTES`]; the oldest segments
//!   are deleted while the total exceeds the configured maximum.
//! - **Replayable.** The writer asks for a snapshot of the cluster at the
//!   start of every segment and every [`RECORDING_SNAPSHOT_EVENTS`] events;
//!   a reader starts at the latest snapshot at or before the moment it wants.
//! - **Kept across restarts.** A new coordinator reads the index of the
//!   segments left on disk and goes on numbering events after the last one.
//!   Nothing is fsynced: a `kill -9` loses at most the last turn's events.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use shared::api::RecordingInfo;
use shared::events::Event;
use shared::limits::{
    RECORDING_LINE_BYTES_MAX, RECORDING_QUEUE_BATCHES_MAX, RECORDING_SEGMENT_BYTES,
    RECORDING_SNAPSHOT_EVENTS,
};
use shared::recording::{self, Header};

/// The recording's folder inside the coordinator's data dir.
pub const DIR_NAME: &str = "recording";
const SEGMENT_PREFIX: &str = "events-";
/// Snapshot seqs kept per segment in the index (a segment rarely has more
/// than a few); the oldest of a segment are forgotten beyond it.
const SNAPSHOTS_PER_SEGMENT_MAX: usize = 64;

/// One event on its way to the writer: as JSON already when the hub
/// serialised it for a WebSocket client, else as the event.
pub enum Entry {
    Json {
        seq: u64,
        ts_ms: u64,
        json: Arc<str>,
    },
    Event(Event),
}

/// What the index knows of one segment file.
#[derive(Debug, Clone)]
struct Segment {
    path: PathBuf,
    first_seq: u64,
    last_seq: u64,
    first_ts_ms: u64,
    last_ts_ms: u64,
    bytes: u64,
    snapshots: Vec<u64>,
}

#[derive(Debug, Default)]
struct Index {
    /// Oldest first.
    segments: VecDeque<Segment>,
}

impl Index {
    fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// The latest snapshot at or before `seq` (the earliest one if none is).
    fn snapshot_for(&self, seq: u64) -> Option<u64> {
        let all = self
            .segments
            .iter()
            .flat_map(|s| s.snapshots.iter().copied());
        let mut earliest = None;
        let mut best = None;
        for snapshot in all {
            earliest = earliest.or(Some(snapshot));
            if snapshot <= seq {
                best = Some(snapshot);
            }
        }
        best.or(earliest)
    }
}

struct Shared {
    dir: PathBuf,
    bytes_max: u64,
    index: Mutex<Index>,
    snapshot_wanted: AtomicBool,
    missed: AtomicU64,
}

impl Shared {
    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The hub's handle on the recording (the writer thread runs until every
/// handle is gone).
pub struct Recorder {
    queue: SyncSender<Vec<Entry>>,
    shared: Arc<Shared>,
}

impl Recorder {
    /// Opens the recording in `dir` (creating it), reads the index of what
    /// is there and starts the writer thread.
    pub fn open(dir: &Path, bytes_max: u64) -> std::io::Result<Recorder> {
        fs::create_dir_all(dir)?;
        let mut index = Index::default();
        for path in segment_paths(dir)? {
            match scan_segment(&path) {
                Ok(Some(segment)) => index.segments.push_back(segment),
                Ok(None) => {
                    let _ = fs::remove_file(&path); // nothing in it but a header
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "skipping a recording segment that cannot be read: {e}")
                }
            }
        }
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            bytes_max,
            index: Mutex::new(index),
            snapshot_wanted: AtomicBool::new(true),
            missed: AtomicU64::new(0),
        });
        let (queue, batches) = sync_channel(RECORDING_QUEUE_BATCHES_MAX);
        let writer = Writer {
            shared: shared.clone(),
            file: None,
            since_snapshot: 0,
        };
        std::thread::Builder::new()
            .name("recording".to_string())
            .spawn(move || writer.run(batches))?;
        Ok(Recorder { queue, shared })
    }

    /// The seq of the newest recorded event (0 if none): the hub goes on
    /// from there, so seqs grow across coordinator restarts.
    pub fn last_seq(&self) -> u64 {
        self.shared
            .index()
            .segments
            .back()
            .map_or(0, |s| s.last_seq)
    }

    /// Hands a turn's events to the writer without waiting; if it is too
    /// far behind they are left out, and a snapshot is asked for.
    pub fn submit(&self, batch: Vec<Entry>) {
        let count = batch.len() as u64;
        match self.queue.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.missed.fetch_add(count, Ordering::Relaxed);
                self.shared.snapshot_wanted.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Whether a snapshot of the cluster is wanted; asking clears it.
    pub fn take_snapshot_wanted(&self) -> bool {
        self.shared.snapshot_wanted.swap(false, Ordering::Relaxed)
    }

    pub fn info(&self) -> RecordingInfo {
        let index = self.shared.index();
        let first = index.segments.front();
        let last = index.segments.back();
        RecordingInfo {
            enabled: true,
            version: recording::VERSION,
            first_seq: first.map(|s| s.first_seq),
            last_seq: last.map(|s| s.last_seq),
            first_ts_ms: first.map(|s| s.first_ts_ms),
            last_ts_ms: last.map(|s| s.last_ts_ms),
            bytes: index.bytes(),
            bytes_max: self.shared.bytes_max,
            snapshots: index
                .segments
                .iter()
                .flat_map(|s| s.snapshots.iter().copied())
                .collect(),
            missed: self.shared.missed.load(Ordering::Relaxed),
        }
    }

    /// Where a read of `[from_seq, to_seq]` starts and which files it reads:
    /// from the latest snapshot at or before `from_seq`, so the answer can
    /// be replayed on its own.
    pub fn plan(&self, from_seq: u64, to_seq: u64) -> ReadPlan {
        let index = self.shared.index();
        let snapshot = index.snapshot_for(from_seq).filter(|&s| s <= from_seq);
        let start = snapshot.unwrap_or(from_seq);
        let paths = index
            .segments
            .iter()
            .filter(|s| s.last_seq >= start && s.first_seq <= to_seq)
            .map(|s| s.path.clone())
            .collect();
        ReadPlan {
            start,
            end: to_seq,
            from_snapshot: snapshot.is_some(),
            paths,
        }
    }
}

/// Which events a read gives and where they are.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub start: u64,
    pub end: u64,
    /// `start` is a snapshot's: the answer begins with that snapshot (not
    /// with the event it shares its seq with).
    from_snapshot: bool,
    paths: Vec<PathBuf>,
}

impl ReadPlan {
    /// Reads the planned events, handing their lines (each with its newline)
    /// to `out` in chunks; stops early when `out` says so. Blocking.
    pub fn read(&self, mut out: impl FnMut(String) -> bool) {
        const CHUNK_BYTES: usize = 64 * 1024;
        let mut chunk = String::new();
        let mut last_seq = None;
        let mut waiting_for_snapshot = self.from_snapshot;
        for path in &self.paths {
            // A segment deleted meanwhile (the oldest) is simply not read.
            let Ok(file) = File::open(path) else {
                continue;
            };
            for line in complete_lines(BufReader::new(file)) {
                let Some(peek) = recording::peek(&line) else {
                    continue; // the header
                };
                if waiting_for_snapshot {
                    if !(peek.is_snapshot() && peek.seq == self.start) {
                        continue;
                    }
                    waiting_for_snapshot = false;
                }
                let in_range = peek.seq >= self.start && peek.seq <= self.end;
                // Never the same event twice (a snapshot shares its seq
                // with the event before it, so equal seqs are allowed once each).
                let fresh = last_seq.is_none_or(|last| peek.seq >= last);
                if !in_range || !fresh {
                    continue;
                }
                last_seq = Some(peek.seq);
                chunk.push_str(&line);
                chunk.push('\n');
                if chunk.len() >= CHUNK_BYTES && !out(std::mem::take(&mut chunk)) {
                    return;
                }
            }
        }
        if !chunk.is_empty() {
            out(chunk);
        }
    }
}

/// The lines of a file that end with a newline (the writer may be in the
/// middle of the last one), without it; a line longer than any the writer
/// writes ends the file.
fn complete_lines(mut reader: impl BufRead) -> impl Iterator<Item = String> {
    std::iter::from_fn(move || {
        let mut line = String::new();
        let mut bounded = std::io::Read::take(&mut reader, RECORDING_LINE_BYTES_MAX as u64 + 1);
        let read = bounded.read_line(&mut line).ok()?;
        if read == 0 || !line.ends_with('\n') {
            return None;
        }
        line.pop();
        Some(line)
    })
}

/// The segment files in `dir`, oldest first.
fn segment_paths(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<(u64, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let first_seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(SEGMENT_PREFIX))
            .and_then(|n| n.strip_suffix(&format!(".{}", recording::EXTENSION)))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first_seq) = first_seq {
            paths.push((first_seq, path));
        }
    }
    paths.sort();
    Ok(paths.into_iter().map(|(_, p)| p).collect())
}

/// What a segment on disk holds (`None`: no event).
fn scan_segment(path: &Path) -> std::io::Result<Option<Segment>> {
    let bytes = fs::metadata(path)?.len();
    let mut segment: Option<Segment> = None;
    for line in complete_lines(BufReader::new(File::open(path)?)) {
        let Some(peek) = recording::peek(&line) else {
            continue;
        };
        let s = segment.get_or_insert_with(|| Segment {
            path: path.to_path_buf(),
            first_seq: peek.seq,
            last_seq: peek.seq,
            first_ts_ms: peek.ts_ms,
            last_ts_ms: peek.ts_ms,
            bytes,
            snapshots: Vec::new(),
        });
        s.last_seq = s.last_seq.max(peek.seq);
        s.last_ts_ms = s.last_ts_ms.max(peek.ts_ms);
        if peek.is_snapshot() {
            push_snapshot(&mut s.snapshots, peek.seq);
        }
    }
    Ok(segment)
}

fn push_snapshot(snapshots: &mut Vec<u64>, seq: u64) {
    snapshots.push(seq);
    if snapshots.len() > SNAPSHOTS_PER_SEGMENT_MAX {
        snapshots.remove(0);
    }
}

struct Writer {
    shared: Arc<Shared>,
    file: Option<BufWriter<File>>,
    since_snapshot: u64,
}

impl Writer {
    fn run(mut self, batches: Receiver<Vec<Entry>>) {
        while let Ok(batch) = batches.recv() {
            self.write_batch(batch);
            // Whatever queued meanwhile shares this write.
            while let Ok(batch) = batches.try_recv() {
                self.write_batch(batch);
            }
            if let Some(file) = self.file.as_mut() {
                if let Err(e) = file.flush() {
                    tracing::warn!("the recording cannot be written: {e}");
                    self.file = None;
                }
            }
        }
    }

    fn write_batch(&mut self, batch: Vec<Entry>) {
        for entry in batch {
            let (seq, ts_ms, snapshot, line) = match entry {
                Entry::Json { seq, ts_ms, json } => (seq, ts_ms, false, json.to_string()),
                Entry::Event(event) => {
                    let snapshot = matches!(event.kind, shared::events::EventKind::Snapshot(_));
                    let line = serde_json::to_string(&event).unwrap_or_default();
                    (event.seq, event.ts_ms, snapshot, line)
                }
            };
            if line.is_empty() || line.len() > RECORDING_LINE_BYTES_MAX {
                self.shared.missed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if let Err(e) = self.append(seq, ts_ms, snapshot, &line) {
                tracing::warn!("the recording cannot be written: {e}");
                self.file = None;
                self.shared.missed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn append(&mut self, seq: u64, ts_ms: u64, snapshot: bool, line: &str) -> std::io::Result<()> {
        let full = {
            let index = self.shared.index();
            index
                .segments
                .back()
                .is_none_or(|s| s.bytes >= RECORDING_SEGMENT_BYTES)
        };
        if self.file.is_none() || full {
            self.start_segment(seq, ts_ms)?;
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.write_all(line.as_bytes())?;
        file.write_all(b"\n")?;
        let mut index = self.shared.index();
        if let Some(s) = index.segments.back_mut() {
            s.last_seq = s.last_seq.max(seq);
            s.last_ts_ms = s.last_ts_ms.max(ts_ms);
            s.bytes += line.len() as u64 + 1;
            if snapshot {
                push_snapshot(&mut s.snapshots, seq);
            }
        }
        drop(index);
        if snapshot {
            self.since_snapshot = 0;
        } else {
            self.since_snapshot += 1;
            if self.since_snapshot == RECORDING_SNAPSHOT_EVENTS {
                self.shared.snapshot_wanted.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Closes the current segment, starts one at `seq`, asks for a snapshot
    /// (a replay from here needs one) and drops the oldest segments while
    /// the recording is too large.
    fn start_segment(&mut self, seq: u64, ts_ms: u64) -> std::io::Result<()> {
        if let Some(mut old) = self.file.take() {
            old.flush()?;
        }
        let name = format!("{SEGMENT_PREFIX}{seq:020}.{}", recording::EXTENSION);
        let path = self.shared.dir.join(name);
        let mut file = BufWriter::new(
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?,
        );
        let header = Header::new("coordinator", None).line();
        file.write_all(header.as_bytes())?;
        self.file = Some(file);
        self.shared.snapshot_wanted.store(true, Ordering::Relaxed);
        let mut index = self.shared.index();
        index.segments.push_back(Segment {
            path,
            first_seq: seq,
            last_seq: seq,
            first_ts_ms: ts_ms,
            last_ts_ms: ts_ms,
            bytes: header.len() as u64,
            snapshots: Vec::new(),
        });
        while index.bytes() > self.shared.bytes_max && index.segments.len() > 1 {
            if let Some(oldest) = index.segments.pop_front() {
                if let Err(e) = fs::remove_file(&oldest.path) {
                    tracing::warn!(path = %oldest.path.display(), "cannot delete an old recording segment: {e}");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::events::EventKind;
    use std::time::{Duration, Instant};

    fn ended(seq: u64) -> Entry {
        Entry::Event(Event {
            seq,
            ts_ms: 10 * seq,
            kind: EventKind::TxEnded {
                tx_id: format!("tx-with-a-long-enough-id-to-fill-segments-{seq:08}"),
            },
        })
    }

    fn snapshot(seq: u64) -> Entry {
        use shared::api::{ClusterView, ComponentStatus, CoordinatorView, Faults, Stats};
        Entry::Event(Event {
            seq,
            ts_ms: 10 * seq,
            kind: EventKind::Snapshot(Box::new(shared::events::Snapshot {
                cluster: ClusterView {
                    coordinator: CoordinatorView {
                        status: ComponentStatus::Up,
                        demo_mode: true,
                        cluster: None,
                        epoch: None,
                    },
                    nodes: vec![],
                    total_cents: 0,
                    expected_total_cents: 0,
                    total_complete: true,
                },
                transactions: vec![],
                stats: Stats::default(),
                faults: Faults::default(),
            })),
        })
    }

    fn wait_until(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn read_all(recorder: &Recorder, from: u64, to: u64) -> Vec<u64> {
        let mut text = String::new();
        recorder.plan(from, to).read(|chunk| {
            text.push_str(&chunk);
            true
        });
        text.lines()
            .filter_map(|l| recording::peek(l).map(|p| p.seq))
            .collect()
    }

    #[test]
    fn events_are_recorded_read_back_from_a_snapshot_and_kept_across_a_restart() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let recorder = Recorder::open(dir.path(), 1 << 30).expect("opens");
        assert!(
            recorder.take_snapshot_wanted(),
            "a new recording wants a snapshot"
        );
        recorder.submit(vec![ended(1), ended(2)]);
        recorder.submit(vec![snapshot(2), ended(3), ended(4), ended(5)]);
        wait_until("5 is recorded", || recorder.last_seq() == 5);
        assert_eq!(read_all(&recorder, 1, 100), [1, 2, 2, 3, 4, 5]);
        // From a later moment: from the snapshot before it (not from the
        // event it shares its seq with).
        assert_eq!(read_all(&recorder, 4, 4), [2, 3, 4]);
        assert_eq!(read_all(&recorder, 2, 2), [2]);
        let info = recorder.info();
        assert_eq!((info.first_seq, info.last_seq), (Some(1), Some(5)));
        assert_eq!(info.snapshots, [2]);
        drop(recorder);
        // A restarted coordinator finds it all and goes on after it.
        let again = Recorder::open(dir.path(), 1 << 30).expect("opens again");
        assert_eq!(again.last_seq(), 5);
        again.submit(vec![ended(6)]);
        wait_until("6 is recorded", || again.last_seq() == 6);
        assert_eq!(read_all(&again, 1, 100), [1, 2, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn the_oldest_segments_go_first_and_the_total_stays_bounded() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let bytes_max = 2 * RECORDING_SEGMENT_BYTES;
        let recorder = Recorder::open(dir.path(), bytes_max).expect("opens");
        // About 100 bytes per event: enough for several segments.
        let events = 5 * RECORDING_SEGMENT_BYTES / 100;
        let mut seq = 0;
        while seq < events {
            let batch: Vec<Entry> = (seq + 1..=seq + 1_000).map(ended).collect();
            seq += 1_000;
            recorder.submit(batch);
        }
        let on_disk = || -> u64 {
            segment_paths(dir.path())
                .expect("lists")
                .iter()
                .filter_map(|p| fs::metadata(p).ok())
                .map(|m| m.len())
                .sum()
        };
        wait_until("everything is written", || {
            recorder.last_seq() == seq && on_disk() == recorder.info().bytes
        });
        let info = recorder.info();
        assert!(info.bytes <= bytes_max, "{} bytes", info.bytes);
        assert!(info.first_seq > Some(1), "the oldest events are gone");
        let read = read_all(&recorder, 0, u64::MAX);
        assert_eq!(read.first().copied(), info.first_seq);
        assert_eq!(read.last().copied(), Some(seq));
        assert!(read.windows(2).all(|w| w[0] + 1 == w[1]));
    }
}
