//! The recording format: a run's events as JSON lines. The first line is a
//! [`Header`] naming the format and its version; every other line is one
//! [`Event`] exactly as `/ws` streams it, oldest first. A `snapshot` line
//! holds the whole cluster; replaying from one and folding the events after
//! it gives the cluster at any later moment.
//!
//! The coordinator writes it beside its log and serves it
//! (`GET /api/recording`), the deterministic simulation writes it for any
//! seed (`SIM_TRACE=out.jsonl`), and the dashboard imports it.

use serde::{Deserialize, Serialize};

use crate::events::{Event, EventKind};
use crate::limits::RECORDING_LINE_BYTES_MAX;

/// The `format` of every header.
pub const FORMAT: &str = "tpc-recording";
/// The version written; readers take this one and older ones.
pub const VERSION: u32 = 1;
/// Suggested file name extension (JSON lines).
pub const EXTENSION: &str = "jsonl";

/// The first line of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Header {
    /// Always `tpc-recording`.
    pub format: String,
    pub version: u32,
    /// Who wrote it: `coordinator` or `simulation`.
    pub source: String,
    /// Free text, e.g. the simulation's seed or the range exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Header {
    pub fn new(source: &str, note: Option<String>) -> Header {
        Header {
            format: FORMAT.to_string(),
            version: VERSION,
            source: source.to_string(),
            note,
        }
    }

    /// The header as a line, with its newline.
    pub fn line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// One event as a line, with its newline.
pub fn event_line(event: &Event) -> String {
    let mut line = serde_json::to_string(event).unwrap_or_default();
    line.push('\n');
    line
}

/// What a reader needs of a line without decoding the whole event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Peek<'a> {
    pub seq: u64,
    pub ts_ms: u64,
    #[serde(borrow)]
    pub kind: &'a str,
}

impl Peek<'_> {
    pub fn is_snapshot(&self) -> bool {
        self.kind == "snapshot"
    }
}

/// The `seq`, time and kind of an event line (`None` for a header or a
/// line that is not an event).
pub fn peek(line: &str) -> Option<Peek<'_>> {
    serde_json::from_str(line).ok()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingError {
    #[error("the file is empty")]
    Empty,
    #[error("line 1 is not the header of a recording ({0}); a recording starts with {{\"format\":\"tpc-recording\",\"version\":1,...}}")]
    NoHeader(String),
    #[error("this recording is version {found}; this version reads version {VERSION} and older")]
    TooNew { found: u32 },
    #[error("line {line} is longer than {RECORDING_LINE_BYTES_MAX} bytes")]
    LineTooLong { line: usize },
    #[error("line {line} is not an event: {error}")]
    BadLine { line: usize, error: String },
}

/// A recording read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub header: Header,
    /// Oldest first.
    pub events: Vec<Event>,
    /// Lines of an event kind this version does not know (written by a newer
    /// one), left out.
    pub skipped: usize,
    /// Older events were left out to keep at most the number asked for.
    pub truncated: bool,
}

/// Reads a recording, keeping at most `events_max` of its newest events
/// (see [`newest`]). Malformed JSON is an error with its line number; an
/// event line this version cannot read (a kind a newer version added) is
/// skipped and counted.
pub fn parse(text: &str, events_max: usize) -> Result<Recording, RecordingError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, first) = lines.next().ok_or(RecordingError::Empty)?;
    if first.len() > RECORDING_LINE_BYTES_MAX {
        return Err(RecordingError::LineTooLong { line: 1 });
    }
    let header: Header =
        serde_json::from_str(first).map_err(|e| RecordingError::NoHeader(e.to_string()))?;
    if header.format != FORMAT {
        return Err(RecordingError::NoHeader(format!(
            "its format is '{}'",
            header.format
        )));
    }
    if header.version > VERSION {
        return Err(RecordingError::TooNew {
            found: header.version,
        });
    }
    let mut events = Vec::new();
    let mut skipped = 0;
    for (index, line) in lines {
        let number = index + 1;
        if line.len() > RECORDING_LINE_BYTES_MAX {
            return Err(RecordingError::LineTooLong { line: number });
        }
        match serde_json::from_str::<Event>(line) {
            Ok(event) => events.push(event),
            // An event of a kind a newer version added: seq and kind parse.
            Err(_) if peek(line).is_some() => skipped += 1,
            Err(error) => {
                return Err(RecordingError::BadLine {
                    line: number,
                    error: error.to_string(),
                })
            }
        }
    }
    let (events, truncated) = newest(events, events_max);
    Ok(Recording {
        header,
        events,
        skipped,
        truncated,
    })
}

/// At most `max` of the newest events, starting at a snapshot when one is
/// among them (a replay needs one to start from); true if some were left out.
pub fn newest(mut events: Vec<Event>, max: usize) -> (Vec<Event>, bool) {
    if events.len() <= max {
        return (events, false);
    }
    let earliest = events.len() - max;
    let start = events[earliest..]
        .iter()
        .position(|e| matches!(e.kind, EventKind::Snapshot(_)))
        .map_or(earliest, |at| earliest + at);
    events.drain(..start);
    (events, true)
}

/// A whole recording as text: the header, then every event.
pub fn to_text(header: &Header, events: &[Event]) -> String {
    let mut text = header.line();
    for event in events {
        text.push_str(&event_line(event));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Snapshot;
    use crate::views::{ClusterView, ComponentStatus, CoordinatorView, Faults, Stats};

    fn event(seq: u64, kind: EventKind) -> Event {
        Event {
            seq,
            ts_ms: 1_000 + seq,
            kind,
        }
    }

    fn snapshot(seq: u64) -> Event {
        event(
            seq,
            EventKind::Snapshot(Box::new(Snapshot {
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
        )
    }

    fn ended(seq: u64) -> Event {
        event(
            seq,
            EventKind::TxEnded {
                tx_id: format!("t{seq}"),
            },
        )
    }

    #[test]
    fn a_recording_reads_back_exactly_what_was_written() {
        let events = vec![snapshot(3), ended(4), ended(5)];
        let header = Header::new("simulation", Some("seed 7".into()));
        let text = to_text(&header, &events);
        assert!(text.starts_with(
            r#"{"format":"tpc-recording","version":1,"source":"simulation","note":"seed 7"}"#
        ));
        let back = parse(&text, 100).expect("reads");
        assert_eq!(back.header, header);
        assert_eq!(back.events, events);
        assert_eq!((back.skipped, back.truncated), (0, false));
        let peeked = peek(text.lines().nth(1).expect("a line")).expect("an event");
        assert_eq!(
            (peeked.seq, peeked.ts_ms, peeked.is_snapshot()),
            (3, 1_003, true)
        );
        assert!(peek(text.lines().next().expect("the header")).is_none());
    }

    #[test]
    fn bad_files_are_refused_with_the_reason_and_the_line() {
        assert_eq!(parse("", 10), Err(RecordingError::Empty));
        assert!(matches!(
            parse("{\"seq\":1}\n", 10),
            Err(RecordingError::NoHeader(_))
        ));
        assert!(matches!(
            parse(r#"{"format":"other","version":1,"source":"x"}"#, 10),
            Err(RecordingError::NoHeader(_))
        ));
        assert_eq!(
            parse(
                r#"{"format":"tpc-recording","version":99,"source":"x"}"#,
                10
            ),
            Err(RecordingError::TooNew { found: 99 })
        );
        let header = Header::new("coordinator", None).line();
        let text = format!("{header}{}not json\n", event_line(&ended(1)));
        assert!(matches!(
            parse(&text, 10),
            Err(RecordingError::BadLine { line: 3, .. })
        ));
    }

    #[test]
    fn unknown_event_kinds_are_skipped_and_counted() {
        let header = Header::new("coordinator", None).line();
        let text = format!(
            "{header}{}{{\"seq\":2,\"ts_ms\":5,\"kind\":\"from_the_future\",\"x\":1}}\n\n{}",
            event_line(&ended(1)),
            event_line(&ended(3))
        );
        let back = parse(&text, 10).expect("reads");
        assert_eq!(back.skipped, 1);
        assert_eq!(
            back.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 3]
        );
    }

    #[test]
    fn the_newest_events_are_kept_from_a_snapshot_on() {
        let events = vec![
            snapshot(1),
            ended(2),
            ended(3),
            snapshot(4),
            ended(5),
            ended(6),
        ];
        let (kept, truncated) = newest(events.clone(), 5);
        assert!(truncated);
        assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5, 6]);
        let (kept, truncated) = newest(events.clone(), 6);
        assert!(!truncated);
        assert_eq!(kept.len(), 6);
        // No snapshot among the newest: the newest alone.
        let (kept, _) = newest(events, 2);
        assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 6]);
    }
}
