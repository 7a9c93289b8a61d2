//! Time travel: a recorded run (from the coordinator's recording or an
//! imported file) and the dashboard's state at any moment of it.
//!
//! The state at event `i` is [`Model::fold`] over the events up to `i`,
//! starting at the recording's first snapshot, exactly as the live page
//! folds the stream. Folding from the start at every scrub would cost the
//! whole run, so a copy of the state is kept every
//! [`CHECKPOINT_EVERY_EVENTS`] events, and playing forward goes on from the
//! last state shown. Pure: the timeline panel owns one and draws
//! [`Replay::model_at`].

use shared::events::{Event, EventKind};
use shared::recording::{self, Header};

use crate::model::Model;

/// Events between two kept copies of the state: a jump folds at most this many.
pub const CHECKPOINT_EVERY_EVENTS: usize = 1_000;
/// Playback speeds offered.
pub const SPEEDS: [f64; 6] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0];
/// A quiet stretch of the run plays as at most this long, at 1×.
pub const PLAY_GAP_MS_MAX: u64 = 1_000;

/// Where the run came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The coordinator's recording (`GET /api/recording`).
    Coordinator,
    /// A file imported into the page.
    File { name: String },
}

#[derive(Debug, Clone)]
pub struct Replay {
    pub source: Source,
    /// The header's note (e.g. a simulation's seed).
    pub note: Option<String>,
    events: Vec<Event>,
    /// The state after `events[..=i]`, for every `i` kept, ascending.
    checkpoints: Vec<(usize, Model)>,
    /// The state shown last and its position, to go on from when playing.
    cursor: Option<(usize, Model)>,
}

fn fold_one(model: &mut Model, event: &Event) {
    // The replay's clock is the event's own.
    model.fold(event.clone(), event.ts_ms);
}

impl Replay {
    /// A replay of `events` (oldest first). Events before the first
    /// snapshot are left out: a replay needs one to start from.
    pub fn new(source: Source, note: Option<String>, mut events: Vec<Event>) -> Replay {
        let first_snapshot = events
            .iter()
            .position(|e| matches!(e.kind, EventKind::Snapshot(_)));
        if let Some(first) = first_snapshot {
            events.drain(..first);
        }
        let mut checkpoints = Vec::new();
        let mut model = Model::default();
        for (i, event) in events.iter().enumerate() {
            fold_one(&mut model, event);
            if i % CHECKPOINT_EVERY_EVENTS == 0 {
                checkpoints.push((i, model.clone()));
            }
        }
        Replay {
            source,
            note,
            events,
            checkpoints,
            cursor: None,
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The last position (the newest event).
    pub fn last(&self) -> usize {
        self.events.len().saturating_sub(1)
    }

    pub fn event(&self, i: usize) -> Option<&Event> {
        self.events.get(i)
    }

    /// The position of the newest event with a `seq` at or before `seq`
    /// (the first position if there is none).
    pub fn position_of_seq(&self, seq: u64) -> usize {
        self.events
            .partition_point(|e| e.seq <= seq)
            .saturating_sub(1)
    }

    /// The state after the events up to position `i` (clamped).
    pub fn model_at(&mut self, i: usize) -> Model {
        if self.events.is_empty() {
            return Model::default();
        }
        let i = i.min(self.last());
        let from_cursor = self
            .cursor
            .take()
            .filter(|(at, _)| *at <= i && i - *at <= CHECKPOINT_EVERY_EVENTS);
        let (mut at, mut model) = match from_cursor {
            Some(cursor) => cursor,
            None => {
                let k = self.checkpoints.partition_point(|(at, _)| *at <= i);
                match k.checked_sub(1).and_then(|k| self.checkpoints.get(k)) {
                    Some((at, model)) => (*at, model.clone()),
                    None => (0, Model::default()),
                }
            }
        };
        while at < i {
            at += 1;
            fold_one(&mut model, &self.events[at]);
        }
        self.cursor = Some((i, model.clone()));
        model
    }

    /// Where playback is after `played_ms` more of wall time at `speed`
    /// from position `from`: the last event whose time has come, quiet
    /// stretches shortened to [`PLAY_GAP_MS_MAX`]. Also returns the played
    /// time left over towards the next event.
    pub fn advance(&self, from: usize, played_ms: f64, speed: f64) -> (usize, f64) {
        let mut budget = played_ms * speed;
        let mut at = from.min(self.last());
        while let Some(next) = self.events.get(at + 1) {
            let gap = next.ts_ms.saturating_sub(self.events[at].ts_ms);
            let gap = gap.min(PLAY_GAP_MS_MAX) as f64;
            if gap > budget {
                break;
            }
            budget -= gap;
            at += 1;
        }
        (at, budget / speed.max(f64::MIN_POSITIVE))
    }

    /// The events from position `from` to `to` (inclusive), led by the
    /// latest snapshot at or before `from` so that the export replays on
    /// its own.
    pub fn export(&self, from: usize, to: usize) -> Vec<Event> {
        let to = to.min(self.last());
        let from = from.min(to);
        let snapshot = self.events[..=from]
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::Snapshot(_)));
        let mut out = Vec::new();
        if let Some(s) = snapshot.filter(|&s| s < from) {
            out.push(self.events[s].clone());
        }
        out.extend(self.events[from..=to].iter().cloned());
        out
    }

    /// An export as the text of a recording file.
    pub fn export_text(&self, from: usize, to: usize) -> String {
        let range = match (self.events.get(from), self.events.get(to)) {
            (Some(a), Some(b)) => Some(format!("events {} to {}", a.seq, b.seq)),
            _ => None,
        };
        let header = Header::new("dashboard", range);
        recording::to_text(&header, &self.export(from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::{
        AccountView, ClusterView, ComponentStatus, CoordinatorView, Faults, LinkFault, NodeView,
        Stats,
    };
    use shared::events::Snapshot;
    use shared::wire::AccountBalance;

    fn node(id: &str, account: &str) -> NodeView {
        NodeView {
            id: id.into(),
            addr: String::new(),
            status: ComponentStatus::Up,
            accounts: vec![AccountBalance {
                id: account.into(),
                balance_cents: 100_000,
            }],
            in_doubt: vec![],
            in_doubt_detail: vec![],
            locked_accounts: vec![],
            link: LinkFault::default(),
            supervised: true,
            pid: None,
            refused: None,
        }
    }

    fn snapshot(seq: u64, ts_ms: u64) -> Event {
        Event {
            seq,
            ts_ms,
            kind: EventKind::Snapshot(Box::new(Snapshot {
                cluster: ClusterView {
                    coordinator: CoordinatorView {
                        status: ComponentStatus::Up,
                        demo_mode: true,
                        cluster: None,
                        epoch: None,
                    },
                    nodes: vec![node("6001", "A"), node("6002", "B")],
                    total_cents: 200_000,
                    expected_total_cents: 200_000,
                    total_complete: true,
                },
                transactions: vec![],
                stats: Stats::default(),
                faults: Faults::default(),
            })),
        }
    }

    fn balances(seq: u64, ts_ms: u64, a: i64) -> Event {
        Event {
            seq,
            ts_ms,
            kind: EventKind::Balances {
                accounts: vec![
                    AccountView {
                        id: "A".into(),
                        node: "6001".into(),
                        balance_cents: a,
                    },
                    AccountView {
                        id: "B".into(),
                        node: "6002".into(),
                        balance_cents: 200_000 - a,
                    },
                ],
                total_cents: 200_000,
            },
        }
    }

    fn balance_of(model: &Model, account: &str) -> Option<i64> {
        model
            .cluster
            .as_ref()?
            .nodes
            .iter()
            .flat_map(|n| &n.accounts)
            .find(|a| a.id == account)
            .map(|a| a.balance_cents)
    }

    /// A run in which A's balance goes down by $1.00 per event.
    fn run(len: u64) -> Vec<Event> {
        let mut events = vec![snapshot(1, 1_000)];
        for i in 1..len {
            events.push(balances(1 + i, 1_000 + 10 * i, 100_000 - 100 * i as i64));
        }
        events
    }

    #[test]
    fn the_state_at_a_moment_shows_a_balance_that_has_changed_since() {
        let mut replay = Replay::new(Source::Coordinator, None, run(5));
        assert_eq!(balance_of(&replay.model_at(0), "A"), Some(100_000));
        assert_eq!(balance_of(&replay.model_at(2), "A"), Some(99_800));
        assert_eq!(balance_of(&replay.model_at(4), "A"), Some(99_600));
        // Back in time again.
        assert_eq!(balance_of(&replay.model_at(1), "A"), Some(99_900));
        assert_eq!(replay.position_of_seq(3), 2);
        assert_eq!(replay.position_of_seq(0), 0);
        assert_eq!(replay.position_of_seq(1_000), 4);
    }

    #[test]
    fn any_moment_of_a_long_run_equals_folding_it_from_the_start() {
        let events = run(3 * CHECKPOINT_EVERY_EVENTS as u64 + 7);
        let mut replay = Replay::new(Source::Coordinator, None, events.clone());
        for i in [0, 999, 1_000, 1_001, 2_500, 3_006, 17, 2_999] {
            let mut from_start = Model::default();
            for event in &events[..=i] {
                fold_one(&mut from_start, event);
            }
            assert_eq!(replay.model_at(i), from_start, "at {i}");
        }
    }

    #[test]
    fn events_before_the_first_snapshot_are_left_out() {
        let mut events = vec![balances(1, 900, 1)];
        events.extend(run(3));
        let replay = Replay::new(Source::File { name: "x".into() }, None, events);
        assert_eq!(replay.len(), 3);
        assert!(matches!(replay.events()[0].kind, EventKind::Snapshot(_)));
    }

    #[test]
    fn playing_follows_the_recorded_times_at_the_chosen_speed() {
        let replay = Replay::new(Source::Coordinator, None, run(6));
        // 10 ms between events.
        assert_eq!(replay.advance(0, 25.0, 1.0), (2, 5.0));
        assert_eq!(replay.advance(0, 25.0, 2.0).0, 5);
        assert_eq!(replay.advance(0, 25.0, 0.25).0, 0);
        // A long quiet stretch plays as PLAY_GAP_MS_MAX.
        let mut events = run(2);
        events.push(balances(3, 1_000_000, 5));
        let replay = Replay::new(Source::Coordinator, None, events);
        assert_eq!(replay.advance(1, PLAY_GAP_MS_MAX as f64, 1.0).0, 2);
    }

    #[test]
    fn an_export_starts_at_a_snapshot_and_reads_back_the_same() {
        let mut events = run(4);
        events.push(snapshot(4, 1_040));
        events.extend((5..8).map(|s| balances(s, 1_000 + 10 * s, 1_000 * s as i64)));
        let replay = Replay::new(Source::Coordinator, None, events.clone());
        let part = replay.export(2, 3);
        assert_eq!(part.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3, 4]);
        let later = replay.export(6, 7);
        assert!(matches!(later[0].kind, EventKind::Snapshot(_)));
        let text = replay.export_text(0, replay.last());
        let back = recording::parse(&text, usize::MAX).expect("a recording");
        assert_eq!(back.events, events);
        let mut again = Replay::new(Source::File { name: "r".into() }, None, back.events);
        assert_eq!(
            again.model_at(5),
            Replay::new(Source::Coordinator, None, events).model_at(5)
        );
    }
}
