//! The dashboard's state, and how one live event changes it.
//!
//! [`Model::fold`] is pure: the event and the browser's clock go in, the new
//! state and a few [`Effects`] (things to fetch over HTTP) come out. The
//! WebSocket hook calls it for every message; the unit tests call it with
//! hand-made events. A history row's state, reason, duration and pending
//! acks are its transaction's events folded by `shared::fold`, the fold the
//! coordinator's history uses too.
//!
//! Ordering rules of the stream (see `shared::events`): the first message
//! is a `snapshot`; then `seq` grows by one per event. A `lagged` message
//! means events were dropped for this client and a fresh snapshot follows.
//! A reconnect also starts with a snapshot, which replaces everything the
//! snapshot carries (the coordinator may have restarted and reset `seq`).

use std::collections::{BTreeMap, VecDeque};

use shared::api::{
    AccountView, ClusterView, ComponentStatus, Faults, HeldMessages, Outcome, Stats,
    TransactionSummary, TxState,
};
use shared::events::{Direction, Event, EventKind, MessageName};
use shared::fold::TxFold;
use shared::limits::HELD_MESSAGES_MAX;
use shared::wire::{AbortReason, Decision, NodeId, TxId};

use crate::format::{describe_event, Tone};

/// Lines kept in the live event log.
pub const EVENT_LOG_LINES_MAX: usize = 300;
/// A line equal to one of this many latest lines is counted on it instead
/// of added (two nodes reporting in turn still collapse).
pub const LOG_REPEAT_WINDOW_LINES: usize = 4;
/// Transactions kept in the history table.
pub const HISTORY_ROWS_MAX: usize = 50;
/// Transactions whose live timeline is kept (for the sequence diagram).
pub const TIMELINES_KEPT_MAX: usize = 100;
/// Events kept per live timeline (recovery can add a few past the backend's
/// own per-transaction limit).
pub const TIMELINE_EVENTS_MAX: usize = 96;

/// One line of the live event log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Local, strictly increasing: the key of the keyed list (a restarted
    /// coordinator starts its `seq` again).
    pub id: u64,
    pub seq: u64,
    pub ts_ms: u64,
    pub text: String,
    pub tone: Tone,
    pub tx_id: Option<TxId>,
    /// How many times this same line arrived in a row (see
    /// [`LOG_REPEAT_WINDOW_LINES`]); the time is the latest one's.
    pub repeats: u32,
}

/// A protocol message the coordinator holds (step mode), as its events
/// (or `GET /api/messages`) told.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldMessage {
    pub id: u64,
    pub tx_id: TxId,
    pub node: NodeId,
    pub direction: Direction,
    pub message: MessageName,
    pub detail: String,
    /// When it was held (Unix ms; the event's time, or the page's clock).
    pub since_ms: u64,
}

/// The protocol events of one transaction, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub tx_id: TxId,
    pub events: Vec<Event>,
}

/// What the app should fetch after a fold (debounced by the caller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effects {
    /// Locks, in-doubt lists, statuses or balances changed: `GET /api/cluster`.
    pub refresh_cluster: bool,
    /// A fault was injected or healed: `GET /api/faults`.
    pub refresh_faults: bool,
    /// A status changed, a decision was made or an in-doubt transaction
    /// resolved: `GET /api/in-doubt` (if the panel is showing).
    pub refresh_in_doubt: bool,
}

impl Effects {
    fn merge(&mut self, other: Effects) {
        self.refresh_cluster |= other.refresh_cluster;
        self.refresh_faults |= other.refresh_faults;
        self.refresh_in_doubt |= other.refresh_in_doubt;
    }
}

/// Events after which the in-doubt view is worth re-reading at once (the
/// panel polls anyway; this only makes it quick).
fn changes_in_doubt(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::NodeStatus { .. }
            | EventKind::CoordinatorStatus { .. }
            | EventKind::Decision { .. }
            | EventKind::Resolved { .. }
            | EventKind::Fault { .. }
    )
}

/// The verdict shown in the invariant banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invariant {
    /// Nothing known yet.
    Unknown,
    /// Sum of all balances equals the expected total.
    Holds { total_cents: i64 },
    /// Some node did not answer, so the sum is partial: not a violation.
    Partial {
        total_cents: i64,
        silent_nodes: Vec<NodeId>,
    },
    /// The sum differs while transactions are still in flight (a commit
    /// applied on one node but not yet on the other): not a violation yet.
    Settling {
        total_cents: i64,
        expected_cents: i64,
    },
    /// The sum differs and nothing is in flight: money was lost or created.
    Violated {
        total_cents: i64,
        expected_cents: i64,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub cluster: Option<ClusterView>,
    /// Browser clock when `cluster` was last replaced: in-doubt waits count
    /// up from there.
    pub cluster_at_ms: u64,
    pub accounts: Vec<AccountView>,
    /// Most recent first, at most [`HISTORY_ROWS_MAX`].
    pub transactions: Vec<TransactionSummary>,
    pub stats: Stats,
    pub faults: Faults,
    /// Oldest first, at most [`EVENT_LOG_LINES_MAX`].
    pub log: VecDeque<LogLine>,
    /// Oldest first, at most [`TIMELINES_KEPT_MAX`].
    pub timelines: VecDeque<Timeline>,
    /// The fold of each history row that live events reached since the
    /// rows were last replaced (a row without one is resumed from itself).
    folds: BTreeMap<TxId, TxFold>,
    /// Messages the coordinator holds now, by id (oldest first).
    pub held: BTreeMap<u64, HeldMessage>,
    /// The transaction started last: the diagram follows it.
    pub latest_tx: Option<TxId>,
    pub last_seq: Option<u64>,
    /// A snapshot arrived and no `lagged` since.
    pub synced: bool,
    /// Events missed in gaps of `seq` or reported by `lagged`.
    pub missed_events: u64,
    next_log_id: u64,
    /// The last recovery query per node: attached to the timelines of the
    /// transactions that node then reports in doubt.
    recovery_queries: BTreeMap<NodeId, Event>,
    /// The previous event was a snapshot: an event with the snapshot's own
    /// `seq` is still new.
    after_snapshot: bool,
}

impl Model {
    /// Folds one event of the `/ws` stream into the state. `now_ms` is the
    /// browser's clock (Unix milliseconds).
    pub fn fold(&mut self, event: Event, now_ms: u64) -> Effects {
        if let EventKind::Snapshot(snapshot) = event.kind {
            let snapshot = *snapshot;
            // The accounts as the snapshot knows them (a replay has no
            // `GET /api/accounts`).
            let accounts: Vec<AccountView> = snapshot
                .cluster
                .nodes
                .iter()
                .flat_map(|n| {
                    n.accounts.iter().map(|a| AccountView {
                        id: a.id.clone(),
                        node: n.id.clone(),
                        balance_cents: a.balance_cents,
                    })
                })
                .collect();
            if !accounts.is_empty() {
                self.accounts = accounts;
            }
            self.set_cluster(snapshot.cluster, now_ms);
            self.transactions = snapshot.transactions;
            self.transactions.truncate(HISTORY_ROWS_MAX);
            self.folds.clear();
            self.stats = snapshot.stats;
            self.faults = snapshot.faults;
            self.last_seq = Some(event.seq);
            self.synced = true;
            self.after_snapshot = true;
            if self.latest_tx.is_none() {
                self.latest_tx = self.transactions.first().map(|t| t.tx_id.clone());
            }
            return Effects::default();
        }
        let mut effects = Effects::default();
        if let Some(last) = self.last_seq {
            let stale = event.seq < last || (event.seq == last && !self.after_snapshot);
            if stale {
                return effects;
            }
            if event.seq > last + 1 {
                self.missed_events += event.seq - last - 1;
                effects.refresh_cluster = true;
            }
        }
        self.after_snapshot = false;
        self.last_seq = Some(event.seq);
        self.push_log(&event);
        effects.refresh_in_doubt = changes_in_doubt(&event.kind);
        effects.merge(self.apply(&event));
        self.fold_into_history(&event);
        self.record_in_timeline(event);
        effects
    }

    /// Replaces the cluster view (from `GET /api/cluster` or a snapshot).
    pub fn set_cluster(&mut self, cluster: ClusterView, now_ms: u64) {
        self.cluster = Some(cluster);
        self.cluster_at_ms = now_ms;
    }

    /// Replaces the history (from `GET /api/transactions`).
    pub fn set_transactions(&mut self, mut transactions: Vec<TransactionSummary>) {
        transactions.truncate(HISTORY_ROWS_MAX);
        self.transactions = transactions;
        self.folds.clear();
        if self.latest_tx.is_none() {
            self.latest_tx = self.transactions.first().map(|t| t.tx_id.clone());
        }
    }

    /// Adopts a timeline fetched over HTTP (`GET /api/transactions/{id}`)
    /// for a transaction that started before this page connected. Live
    /// events already seen for it are kept after the fetched ones.
    pub fn adopt_timeline(&mut self, tx_id: &str, fetched: Vec<Event>) {
        let merged = merge_timelines(&fetched, self.timeline(tx_id));
        self.timelines.retain(|t| t.tx_id != tx_id);
        let mut events = merged;
        events.truncate(TIMELINE_EVENTS_MAX);
        self.timelines.push_back(Timeline {
            tx_id: tx_id.to_string(),
            events,
        });
        while self.timelines.len() > TIMELINES_KEPT_MAX {
            self.timelines.pop_front();
        }
    }

    /// Replaces the held messages (from `GET /api/messages`).
    pub fn set_held(&mut self, held: HeldMessages, now_ms: u64) {
        self.faults.hold_messages = held.hold;
        self.held = held
            .messages
            .into_iter()
            .map(|m| {
                let since_ms = now_ms.saturating_sub(m.held_for_ms);
                let held = HeldMessage {
                    id: m.id,
                    tx_id: m.tx_id,
                    node: m.node,
                    direction: m.direction,
                    message: m.message,
                    detail: m.detail,
                    since_ms,
                };
                (held.id, held)
            })
            .collect();
    }

    /// The WebSocket closed: state is kept but no longer live.
    pub fn connection_lost(&mut self) {
        self.synced = false;
    }

    /// How long an in-doubt transaction has waited, counting on from the
    /// participant's own figure at the time the cluster view was fetched.
    pub fn waited_ms(&self, prepared_for_ms: u64, now_ms: u64) -> u64 {
        prepared_for_ms + now_ms.saturating_sub(self.cluster_at_ms)
    }

    /// The live timeline of one transaction, if it was seen.
    pub fn timeline(&self, tx_id: &str) -> Option<&Timeline> {
        self.timelines.iter().rev().find(|t| t.tx_id == tx_id)
    }

    /// The invariant banner's verdict.
    pub fn invariant(&self) -> Invariant {
        let Some(cluster) = &self.cluster else {
            return Invariant::Unknown;
        };
        if !cluster.total_complete {
            let silent_nodes = cluster
                .nodes
                .iter()
                .filter(|n| n.status != ComponentStatus::Up)
                .map(|n| n.id.clone())
                .collect();
            return Invariant::Partial {
                total_cents: cluster.total_cents,
                silent_nodes,
            };
        }
        if cluster.total_cents == cluster.expected_total_cents {
            return Invariant::Holds {
                total_cents: cluster.total_cents,
            };
        }
        let (total_cents, expected_cents) = (cluster.total_cents, cluster.expected_total_cents);
        if self.work_in_flight() && !self.commit_refused() {
            Invariant::Settling {
                total_cents,
                expected_cents,
            }
        } else {
            Invariant::Violated {
                total_cents,
                expected_cents,
            }
        }
    }

    /// Whether a node answered a transaction's commit with an abort (the
    /// original demo's bug: a prepared node that gave up on its own): that
    /// money will not settle, however long the transaction stays open.
    fn commit_refused(&self) -> bool {
        self.timelines.iter().any(|t| {
            let mut sent = Vec::new();
            t.events.iter().any(|e| match &e.kind {
                EventKind::CommitSent { node, .. } => {
                    sent.push(node.clone());
                    false
                }
                EventKind::Ack {
                    node,
                    decision: Decision::Abort,
                    ..
                } => sent.contains(node),
                _ => false,
            })
        })
    }

    /// Whether some transaction may have applied on one node and not yet on
    /// another: the only time the sum of balances may differ.
    fn work_in_flight(&self) -> bool {
        let nodes_busy = self
            .cluster
            .iter()
            .flat_map(|c| &c.nodes)
            .any(|n| !n.locked_accounts.is_empty() || !n.in_doubt.is_empty());
        let txs_open = self.transactions.iter().any(|t| {
            matches!(t.state, TxState::Active | TxState::Prepared) || !t.pending_acks.is_empty()
        });
        let coordinator_busy = self
            .cluster
            .as_ref()
            .is_some_and(|c| c.coordinator.status != ComponentStatus::Up);
        nodes_busy || txs_open || coordinator_busy || self.stats.in_flight > 0
    }

    fn push_log(&mut self, event: &Event) {
        let (text, tone) = describe_event(&event.kind);
        let tx_id = event.kind.tx_id().map(str::to_string);
        // Periodic reports (in-doubt sweeps) repeat: count them on the
        // recent line instead of flooding the log.
        let recent = self.log.iter_mut().rev().take(LOG_REPEAT_WINDOW_LINES);
        if let Some(line) = recent
            .into_iter()
            .find(|l| l.text == text && l.tx_id == tx_id)
        {
            line.repeats += 1;
            line.seq = event.seq;
            line.ts_ms = event.ts_ms;
            return;
        }
        self.next_log_id += 1;
        self.log.push_back(LogLine {
            id: self.next_log_id,
            seq: event.seq,
            ts_ms: event.ts_ms,
            text,
            tone,
            tx_id,
            repeats: 1,
        });
        while self.log.len() > EVENT_LOG_LINES_MAX {
            self.log.pop_front();
        }
    }

    /// Changes to the cluster, the history and the counters.
    fn apply(&mut self, event: &Event) -> Effects {
        let mut effects = Effects::default();
        match &event.kind {
            EventKind::Snapshot(_) => {}
            EventKind::Lagged { missed } => {
                self.missed_events += missed;
                self.synced = false;
            }
            EventKind::TxStarted { tx_id, .. } => {
                self.latest_tx = Some(tx_id.clone());
                // Counted here for a replay; live, the polled stats replace them.
                self.stats.attempted += 1;
            }
            EventKind::TxFinished {
                outcome, reason, ..
            } => {
                self.count_outcome(*outcome, *reason);
                effects.refresh_cluster = true;
            }
            EventKind::Ack { .. } | EventKind::Resolved { .. } => {
                effects.refresh_cluster = true;
            }
            EventKind::RecoveryQuery { node } => {
                self.recovery_queries.insert(node.clone(), event.clone());
            }
            EventKind::InDoubtReported { .. } => effects.refresh_cluster = true,
            EventKind::NodeStatus { node, status } => {
                if let Some(n) = self
                    .cluster
                    .as_mut()
                    .and_then(|c| c.nodes.iter_mut().find(|n| &n.id == node))
                {
                    n.status = *status;
                }
                effects.refresh_cluster = true;
            }
            EventKind::CoordinatorStatus { status } => {
                if let Some(cluster) = self.cluster.as_mut() {
                    cluster.coordinator.status = *status;
                }
                effects.refresh_cluster = true;
            }
            EventKind::Fault { .. } => {
                effects.refresh_faults = true;
                effects.refresh_cluster = true;
            }
            EventKind::Balances {
                accounts,
                total_cents,
            } => self.apply_balances(accounts, *total_cents),
            EventKind::NodeState {
                node,
                in_doubt,
                locked_accounts,
            } => {
                if let Some(n) = self
                    .cluster
                    .as_mut()
                    .and_then(|c| c.nodes.iter_mut().find(|n| &n.id == node))
                {
                    n.in_doubt_detail.retain(|d| in_doubt.contains(&d.tx_id));
                    n.in_doubt.clone_from(in_doubt);
                    n.locked_accounts.clone_from(locked_accounts);
                }
            }
            EventKind::MessageHeld {
                id,
                tx_id,
                node,
                direction,
                message,
                detail,
            } => {
                if self.held.len() < HELD_MESSAGES_MAX {
                    let held = HeldMessage {
                        id: *id,
                        tx_id: tx_id.clone(),
                        node: node.clone(),
                        direction: *direction,
                        message: *message,
                        detail: detail.clone(),
                        since_ms: event.ts_ms,
                    };
                    self.held.insert(*id, held);
                }
            }
            EventKind::MessageReleased { id, .. } | EventKind::MessageDropped { id, .. } => {
                self.held.remove(id);
            }
            EventKind::PrepareSent { .. }
            | EventKind::Vote { .. }
            | EventKind::LogForced { .. }
            | EventKind::Decision { .. }
            | EventKind::CommitSent { .. }
            | EventKind::RollbackSent { .. }
            | EventKind::TxEnded { .. } => {}
        }
        effects
    }

    fn count_outcome(&mut self, outcome: Outcome, reason: Option<AbortReason>) {
        match outcome {
            Outcome::Committed => self.stats.committed += 1,
            Outcome::Aborted => {
                self.stats.aborted += 1;
                let key = reason.map_or("unknown", |r| r.as_str()).to_string();
                *self.stats.aborts_by_reason.entry(key).or_insert(0) += 1;
            }
        }
    }

    fn apply_balances(&mut self, accounts: &[AccountView], total_cents: i64) {
        for update in accounts {
            match self.accounts.iter_mut().find(|a| a.id == update.id) {
                Some(known) => *known = update.clone(),
                None => self.accounts.push(update.clone()),
            }
        }
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let mut covers_every_account = true;
        for node in &mut cluster.nodes {
            for balance in &mut node.accounts {
                match accounts.iter().find(|a| a.id == balance.id) {
                    Some(update) => balance.balance_cents = update.balance_cents,
                    None => covers_every_account = false,
                }
            }
        }
        cluster.total_cents = total_cents;
        // A partial list of accounts gives a partial sum: never call that a
        // violation.
        cluster.total_complete = covers_every_account;
    }

    /// Folds an event of a transaction into its history row. A
    /// `tx_started` adds the row on top, or starts it over where it is for
    /// a new attempt of the id; a row that started before this page
    /// connected has its fold resumed from what the row says.
    fn fold_into_history(&mut self, event: &Event) {
        let Some(tx_id) = event.kind.tx_id() else {
            return;
        };
        if let EventKind::TxStarted {
            from,
            to,
            amount_cents,
            ..
        } = &event.kind
        {
            let row = TransactionSummary::started(tx_id, from, to, *amount_cents, event.ts_ms);
            match self.transactions.iter().position(|t| t.tx_id == tx_id) {
                Some(i) => self.transactions[i] = row,
                None => {
                    self.transactions.insert(0, row);
                    self.transactions.truncate(HISTORY_ROWS_MAX);
                    let rows = &self.transactions;
                    self.folds
                        .retain(|id, _| rows.iter().any(|t| &t.tx_id == id));
                }
            }
            self.folds.insert(tx_id.to_string(), TxFold::new());
        }
        let Some(row) = self.transactions.iter_mut().find(|t| t.tx_id == tx_id) else {
            return;
        };
        let fold = self
            .folds
            .entry(tx_id.to_string())
            .or_insert_with(|| TxFold::resume(row));
        fold.apply(event.ts_ms, &event.kind);
        fold.fill(row);
    }

    fn record_in_timeline(&mut self, event: Event) {
        if let EventKind::InDoubtReported { node, tx_ids } = &event.kind {
            let query = self.recovery_queries.get(node).cloned();
            for tx_id in tx_ids.clone() {
                if let Some(query) = &query {
                    self.append_to_timeline(&tx_id, query.clone());
                }
                self.append_to_timeline(&tx_id, event.clone());
            }
            return;
        }
        if matches!(event.kind, EventKind::CoordinatorStatus { .. }) {
            // A crash and the recovery that follows belong to the story of
            // every transaction still open then.
            let open: Vec<TxId> = self
                .transactions
                .iter()
                .filter(|t| {
                    matches!(t.state, TxState::Active | TxState::Prepared)
                        || !t.pending_acks.is_empty()
                })
                .map(|t| t.tx_id.clone())
                .collect();
            for tx_id in open {
                self.append_to_timeline(&tx_id, event.clone());
            }
            return;
        }
        if let Some(tx_id) = event.kind.tx_id().map(str::to_string) {
            self.append_to_timeline(&tx_id, event);
        }
    }

    fn append_to_timeline(&mut self, tx_id: &str, event: Event) {
        let position = self.timelines.iter().position(|t| t.tx_id == tx_id);
        let timeline = match position {
            Some(i) => &mut self.timelines[i],
            None => {
                self.timelines.push_back(Timeline {
                    tx_id: tx_id.to_string(),
                    events: Vec::new(),
                });
                while self.timelines.len() > TIMELINES_KEPT_MAX {
                    self.timelines.pop_front();
                }
                self.timelines.back_mut().expect("just pushed")
            }
        };
        let duplicate = timeline
            .events
            .iter()
            .any(|e| e.seq == event.seq && e.kind == event.kind);
        if !duplicate && timeline.events.len() < TIMELINE_EVENTS_MAX {
            timeline.events.push(event);
        }
    }
}

/// The events of a transaction to draw: the fetched timeline (from
/// `GET /api/transactions/{id}`) followed by live events that arrived
/// after it.
pub fn merge_timelines(fetched: &[Event], live: Option<&Timeline>) -> Vec<Event> {
    let mut events = fetched.to_vec();
    let last_seq = fetched.iter().map(|e| e.seq).max();
    if let Some(live) = live {
        let newer = live
            .events
            .iter()
            .filter(|e| last_seq.is_none_or(|last| e.seq > last));
        events.extend(newer.cloned());
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::{CoordinatorView, LinkFault, NodeView, VoteView};
    use shared::events::Snapshot;
    use shared::wire::{AbortReason, AccountBalance, Decision};

    fn node(id: &str, account: &str, balance_cents: i64) -> NodeView {
        NodeView {
            id: id.into(),
            addr: format!("127.0.0.1:{id}"),
            status: ComponentStatus::Up,
            accounts: vec![AccountBalance {
                id: account.into(),
                balance_cents,
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

    fn cluster() -> ClusterView {
        ClusterView {
            coordinator: CoordinatorView {
                status: ComponentStatus::Up,
                demo_mode: true,
                cluster: None,
                epoch: None,
            },
            nodes: vec![node("6001", "A", 100_000), node("6002", "B", 100_000)],
            total_cents: 200_000,
            expected_total_cents: 200_000,
            total_complete: true,
        }
    }

    fn snapshot(seq: u64) -> Event {
        Event {
            seq,
            ts_ms: 1_000,
            kind: EventKind::Snapshot(Box::new(Snapshot {
                cluster: cluster(),
                transactions: vec![],
                stats: Stats::default(),
                faults: Faults::default(),
            })),
        }
    }

    fn ev(seq: u64, kind: EventKind) -> Event {
        Event {
            seq,
            ts_ms: 1_000 + seq,
            kind,
        }
    }

    fn started(seq: u64, tx: &str) -> Event {
        ev(
            seq,
            EventKind::TxStarted {
                tx_id: tx.into(),
                from: "A".into(),
                to: "B".into(),
                amount_cents: 10_000,
                nodes: vec!["6001".into(), "6002".into()],
                one_phase: false,
            },
        )
    }

    fn vote(seq: u64, tx: &str, node: &str, vote: VoteView) -> Event {
        let reason = (vote != VoteView::Ready).then_some(AbortReason::NodeUnreachable);
        ev(
            seq,
            EventKind::Vote {
                tx_id: tx.into(),
                node: node.into(),
                vote,
                reason,
            },
        )
    }

    fn committed_transfer(model: &mut Model, first_seq: u64, tx: &str) -> u64 {
        let events = vec![
            started(first_seq, tx),
            ev(
                first_seq + 1,
                EventKind::PrepareSent {
                    tx_id: tx.into(),
                    node: "6001".into(),
                },
            ),
            ev(
                first_seq + 2,
                EventKind::PrepareSent {
                    tx_id: tx.into(),
                    node: "6002".into(),
                },
            ),
            vote(first_seq + 3, tx, "6001", VoteView::Ready),
            vote(first_seq + 4, tx, "6002", VoteView::Ready),
            ev(
                first_seq + 5,
                EventKind::Decision {
                    tx_id: tx.into(),
                    decision: Decision::Commit,
                    reason: None,
                },
            ),
            ev(
                first_seq + 6,
                EventKind::CommitSent {
                    tx_id: tx.into(),
                    node: "6001".into(),
                },
            ),
            ev(
                first_seq + 7,
                EventKind::CommitSent {
                    tx_id: tx.into(),
                    node: "6002".into(),
                },
            ),
            ev(
                first_seq + 8,
                EventKind::Ack {
                    tx_id: tx.into(),
                    node: "6001".into(),
                    decision: Decision::Commit,
                },
            ),
            ev(
                first_seq + 9,
                EventKind::Ack {
                    tx_id: tx.into(),
                    node: "6002".into(),
                    decision: Decision::Commit,
                },
            ),
            ev(
                first_seq + 10,
                EventKind::TxFinished {
                    tx_id: tx.into(),
                    outcome: Outcome::Committed,
                    reason: None,
                    duration_ms: 2.5,
                },
            ),
        ];
        for e in events {
            model.fold(e, 5_000);
        }
        first_seq + 11
    }

    #[test]
    fn snapshot_then_a_committed_transfer() {
        let mut model = Model::default();
        model.fold(snapshot(10), 5_000);
        assert!(model.synced);
        assert_eq!(
            model.invariant(),
            Invariant::Holds {
                total_cents: 200_000
            }
        );
        committed_transfer(&mut model, 11, "t1");
        let summary = &model.transactions[0];
        assert_eq!(summary.tx_id, "t1");
        assert_eq!(summary.state, TxState::Committed);
        assert_eq!(summary.duration_ms, Some(2.5));
        assert!(summary.pending_acks.is_empty());
        assert_eq!(model.latest_tx.as_deref(), Some("t1"));
        assert_eq!(model.timeline("t1").unwrap().events.len(), 11);
        assert_eq!(model.log.len(), 11);
        assert_eq!(model.missed_events, 0);
    }

    #[test]
    fn all_ready_votes_mark_the_transaction_prepared() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        model.fold(started(1, "t"), 0);
        model.fold(vote(2, "t", "6001", VoteView::Ready), 0);
        assert_eq!(model.transactions[0].state, TxState::Active);
        model.fold(vote(3, "t", "6002", VoteView::Ready), 0);
        assert_eq!(model.transactions[0].state, TxState::Prepared);
    }

    #[test]
    fn abort_decision_keeps_its_reason() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        model.fold(started(1, "t"), 0);
        model.fold(vote(2, "t", "6002", VoteView::NoAnswer), 0);
        model.fold(
            ev(
                3,
                EventKind::Decision {
                    tx_id: "t".into(),
                    decision: Decision::Abort,
                    reason: Some(AbortReason::Timeout),
                },
            ),
            0,
        );
        assert_eq!(model.transactions[0].state, TxState::Aborted);
        assert_eq!(model.transactions[0].reason, Some(AbortReason::Timeout));
    }

    #[test]
    fn stale_and_duplicate_events_are_ignored_and_gaps_counted() {
        let mut model = Model::default();
        model.fold(snapshot(5), 0);
        model.fold(started(5, "t"), 0); // same seq as the snapshot: still new
        assert_eq!(model.transactions.len(), 1);
        model.fold(started(5, "u"), 0); // duplicate seq
        assert_eq!(model.transactions.len(), 1);
        let effects = model.fold(ev(9, EventKind::TxEnded { tx_id: "t".into() }), 0);
        assert_eq!(model.missed_events, 3);
        assert!(effects.refresh_cluster);
        model.fold(ev(8, EventKind::TxEnded { tx_id: "t".into() }), 0);
        assert_eq!(model.last_seq, Some(9));
    }

    #[test]
    fn the_first_event_after_a_snapshot_may_follow_it_directly() {
        let mut model = Model::default();
        model.fold(snapshot(5), 0);
        model.fold(started(6, "t"), 0);
        assert_eq!(model.missed_events, 0);
        assert_eq!(model.transactions.len(), 1);
    }

    #[test]
    fn lagged_unsyncs_and_the_next_snapshot_resyncs_even_with_a_lower_seq() {
        let mut model = Model::default();
        model.fold(snapshot(100), 0);
        model.fold(ev(101, EventKind::Lagged { missed: 40 }), 0);
        assert!(!model.synced);
        assert_eq!(model.missed_events, 40);
        // The coordinator restarted: seq starts again.
        model.fold(snapshot(1), 0);
        assert!(model.synced);
        model.fold(started(2, "t"), 0);
        assert_eq!(model.transactions.len(), 1);
    }

    #[test]
    fn node_status_and_balances_update_the_cards() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        let effects = model.fold(
            ev(
                1,
                EventKind::NodeStatus {
                    node: "6002".into(),
                    status: ComponentStatus::Down,
                },
            ),
            0,
        );
        assert!(effects.refresh_cluster);
        assert_eq!(
            model.cluster.as_ref().unwrap().nodes[1].status,
            ComponentStatus::Down
        );
        let accounts = vec![
            AccountView {
                id: "A".into(),
                node: "6001".into(),
                balance_cents: 90_000,
            },
            AccountView {
                id: "B".into(),
                node: "6002".into(),
                balance_cents: 110_000,
            },
        ];
        model.fold(
            ev(
                2,
                EventKind::Balances {
                    accounts,
                    total_cents: 200_000,
                },
            ),
            0,
        );
        let cluster = model.cluster.as_ref().unwrap();
        assert_eq!(cluster.nodes[0].accounts[0].balance_cents, 90_000);
        assert_eq!(cluster.nodes[1].accounts[0].balance_cents, 110_000);
        assert_eq!(model.accounts.len(), 2);
        assert!(cluster.total_complete);
    }

    #[test]
    fn partial_balances_never_claim_a_violation() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        let accounts = vec![AccountView {
            id: "A".into(),
            node: "6001".into(),
            balance_cents: 90_000,
        }];
        model.fold(
            ev(
                1,
                EventKind::Balances {
                    accounts,
                    total_cents: 90_000,
                },
            ),
            0,
        );
        assert!(matches!(
            model.invariant(),
            Invariant::Partial {
                total_cents: 90_000,
                ..
            }
        ));
    }

    #[test]
    fn a_commit_answered_with_an_abort_is_a_violation_not_settling() {
        let mut model = Model::default();
        let mut view = cluster();
        view.total_cents = 190_000;
        // The coordinator keeps the transaction open (it re-sends the
        // commit): work in flight, which alone would read as settling.
        view.nodes[1].locked_accounts = vec!["B".into()];
        model.set_cluster(view, 0);
        let settling = Invariant::Settling {
            total_cents: 190_000,
            expected_cents: 200_000,
        };
        assert_eq!(model.invariant(), settling);
        let commit = |node: &str| EventKind::CommitSent {
            tx_id: "t1".into(),
            node: node.into(),
        };
        let ack = |node: &str, decision| EventKind::Ack {
            tx_id: "t1".into(),
            node: node.into(),
            decision,
        };
        // A rollback's ack from a node never sent the commit (another
        // attempt's) changes nothing.
        model.timelines.push_back(Timeline {
            tx_id: "t1".into(),
            events: vec![ev(1, ack("6002", Decision::Abort)), ev(2, commit("6001"))],
        });
        assert_eq!(model.invariant(), settling);
        // 6002 was sent the commit and answered abort: money lost for good.
        model.timelines[0].events.push(ev(3, commit("6002")));
        model.timelines[0]
            .events
            .push(ev(4, ack("6002", Decision::Abort)));
        assert_eq!(
            model.invariant(),
            Invariant::Violated {
                total_cents: 190_000,
                expected_cents: 200_000
            }
        );
    }

    #[test]
    fn invariant_verdicts() {
        let mut model = Model::default();
        assert_eq!(model.invariant(), Invariant::Unknown);
        let mut view = cluster();
        view.total_cents = 190_000;
        model.set_cluster(view.clone(), 0);
        assert_eq!(
            model.invariant(),
            Invariant::Violated {
                total_cents: 190_000,
                expected_cents: 200_000
            }
        );
        view.nodes[1].locked_accounts = vec!["B".into()];
        model.set_cluster(view.clone(), 0);
        assert_eq!(
            model.invariant(),
            Invariant::Settling {
                total_cents: 190_000,
                expected_cents: 200_000
            }
        );
        view.total_complete = false;
        view.nodes[1].status = ComponentStatus::Down;
        model.set_cluster(view, 0);
        assert_eq!(
            model.invariant(),
            Invariant::Partial {
                total_cents: 190_000,
                silent_nodes: vec!["6002".to_string()]
            }
        );
    }

    #[test]
    fn recovery_queries_join_the_timelines_of_reported_transactions() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        model.fold(started(1, "t"), 0);
        model.fold(
            ev(
                2,
                EventKind::RecoveryQuery {
                    node: "6002".into(),
                },
            ),
            0,
        );
        model.fold(
            ev(
                3,
                EventKind::InDoubtReported {
                    node: "6002".into(),
                    tx_ids: vec!["t".into()],
                },
            ),
            0,
        );
        model.fold(
            ev(
                4,
                EventKind::Resolved {
                    tx_id: "t".into(),
                    node: "6002".into(),
                    decision: Decision::Commit,
                },
            ),
            0,
        );
        let kinds: Vec<_> = model
            .timeline("t")
            .unwrap()
            .events
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(kinds, vec![1, 2, 3, 4]);
        assert_eq!(model.transactions[0].state, TxState::Committed);
    }

    #[test]
    fn log_history_and_timelines_are_bounded() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        let mut seq = 1;
        for i in 0..(TIMELINES_KEPT_MAX + 5) {
            seq = committed_transfer(&mut model, seq, &format!("t{i}"));
        }
        assert_eq!(model.log.len(), EVENT_LOG_LINES_MAX);
        assert_eq!(model.transactions.len(), HISTORY_ROWS_MAX);
        assert_eq!(model.timelines.len(), TIMELINES_KEPT_MAX);
        let ids: Vec<u64> = model.log.iter().map(|l| l.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn repeated_reports_are_counted_on_one_log_line() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        for round in 0..3u64 {
            for (i, node) in ["6001", "6002"].iter().enumerate() {
                let seq = 1 + round * 2 + i as u64;
                model.fold(
                    ev(
                        seq,
                        EventKind::InDoubtReported {
                            node: (*node).into(),
                            tx_ids: vec!["t".into()],
                        },
                    ),
                    0,
                );
            }
        }
        assert_eq!(model.log.len(), 2);
        assert_eq!(model.log[0].repeats, 3);
        assert_eq!(model.log[1].seq, 6);
    }

    #[test]
    fn in_doubt_waits_count_on_from_the_fetch() {
        let mut model = Model::default();
        model.set_cluster(cluster(), 10_000);
        assert_eq!(model.waited_ms(1_500, 12_000), 3_500);
        assert_eq!(model.waited_ms(1_500, 9_000), 1_500);
    }

    #[test]
    fn adopted_timelines_keep_live_events_that_came_later() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        model.fold(vote(3, "t", "6002", VoteView::Ready), 0);
        model.adopt_timeline(
            "t",
            vec![started(1, "t"), vote(2, "t", "6001", VoteView::Ready)],
        );
        let seqs: Vec<u64> = model
            .timeline("t")
            .unwrap()
            .events
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(model.timelines.len(), 1);
    }

    #[test]
    fn merged_timelines_append_only_newer_live_events() {
        let fetched = vec![started(1, "t"), vote(2, "t", "6001", VoteView::Ready)];
        let live = Timeline {
            tx_id: "t".into(),
            events: vec![
                vote(2, "t", "6001", VoteView::Ready),
                vote(3, "t", "6002", VoteView::Ready),
            ],
        };
        let merged = merge_timelines(&fetched, Some(&live));
        assert_eq!(
            merged.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn status_changes_and_decisions_nudge_the_in_doubt_panel() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        let down = ev(
            1,
            EventKind::NodeStatus {
                node: "6002".into(),
                status: ComponentStatus::Down,
            },
        );
        assert!(model.fold(down, 0).refresh_in_doubt);
        assert!(!model.fold(started(2, "t"), 0).refresh_in_doubt);
        let decided = ev(
            3,
            EventKind::Decision {
                tx_id: "t".into(),
                decision: Decision::Commit,
                reason: None,
            },
        );
        assert!(model.fold(decided, 0).refresh_in_doubt);
    }

    fn decided(seq: u64, tx: &str, decision: Decision) -> Event {
        ev(
            seq,
            EventKind::Decision {
                tx_id: tx.into(),
                decision,
                reason: None,
            },
        )
    }

    fn acked(seq: u64, tx: &str, node: &str) -> Event {
        ev(
            seq,
            EventKind::Ack {
                tx_id: tx.into(),
                node: node.into(),
                decision: Decision::Commit,
            },
        )
    }

    #[test]
    fn every_node_owes_its_ack_from_the_commit_decision_before_any_commit_is_sent() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        model.fold(started(1, "t"), 0);
        model.fold(vote(2, "t", "6001", VoteView::Ready), 0);
        model.fold(vote(3, "t", "6002", VoteView::Ready), 0);
        model.fold(decided(4, "t", Decision::Commit), 0);
        assert_eq!(model.transactions[0].pending_acks, ["6001", "6002"]);
        model.fold(acked(5, "t", "6001"), 0);
        assert_eq!(model.transactions[0].pending_acks, ["6002"]);
    }

    #[test]
    fn a_node_resolved_to_commit_owes_its_ack_until_it_acks() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        model.fold(started(1, "t"), 0);
        model.fold(
            ev(
                2,
                EventKind::Resolved {
                    tx_id: "t".into(),
                    node: "6002".into(),
                    decision: Decision::Commit,
                },
            ),
            0,
        );
        assert_eq!(model.transactions[0].state, TxState::Committed);
        assert!(model.transactions[0]
            .pending_acks
            .contains(&"6002".to_string()));
        model.fold(acked(3, "t", "6002"), 0);
        assert!(!model.transactions[0]
            .pending_acks
            .contains(&"6002".to_string()));
    }

    #[test]
    fn a_new_attempt_of_an_id_starts_its_row_over() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        model.fold(started(1, "t"), 0);
        model.fold(vote(2, "t", "6001", VoteView::Ready), 0);
        model.fold(vote(3, "t", "6002", VoteView::Ready), 0);
        assert_eq!(model.transactions[0].state, TxState::Prepared);
        // The coordinator forgot it in a crash; the client's retry runs it again.
        model.fold(started(4, "t"), 0);
        assert_eq!(model.transactions.len(), 1);
        assert_eq!(model.transactions[0].state, TxState::Active);
        assert_eq!(model.transactions[0].started_at_ms, 1_004);
    }

    #[test]
    fn a_row_from_the_snapshot_goes_on_with_the_live_events() {
        let mut model = Model::default();
        let mut row = TransactionSummary::started("t", "A", "B", 500, 900);
        row.state = TxState::Committed;
        row.pending_acks = vec!["6001".into(), "6002".into()];
        let mut first = snapshot(10);
        if let EventKind::Snapshot(s) = &mut first.kind {
            s.transactions = vec![row.clone()];
        }
        model.fold(first, 0);
        model.fold(acked(11, "t", "6002"), 0);
        assert_eq!(model.transactions[0].pending_acks, ["6001"]);
        assert_eq!(model.transactions[0].state, TxState::Committed);
        assert_eq!(model.transactions[0].amount_cents, 500);
        model.fold(ev(12, EventKind::TxEnded { tx_id: "t".into() }), 0);
        assert!(model.transactions[0].pending_acks.is_empty());
        // A fresh list from the coordinator replaces what the events built.
        model.set_transactions(vec![row]);
        model.fold(acked(13, "t", "6001"), 0);
        assert_eq!(model.transactions[0].pending_acks, ["6002"]);
    }

    #[test]
    fn held_messages_follow_their_events_and_the_api() {
        use shared::events::{Direction, MessageName};
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        let held = |seq, id| {
            ev(
                seq,
                EventKind::MessageHeld {
                    id,
                    tx_id: "t".into(),
                    node: "6002".into(),
                    direction: Direction::ToNode,
                    message: MessageName::Commit,
                    detail: String::new(),
                },
            )
        };
        model.fold(held(1, 7), 0);
        model.fold(held(2, 8), 0);
        assert_eq!(model.held.keys().copied().collect::<Vec<_>>(), [7, 8]);
        assert_eq!(model.held[&7].since_ms, 1_001);
        model.fold(
            ev(
                3,
                EventKind::MessageDropped {
                    id: 7,
                    tx_id: "t".into(),
                    node: "6002".into(),
                    direction: Direction::ToNode,
                    message: MessageName::Commit,
                },
            ),
            0,
        );
        assert_eq!(model.held.keys().copied().collect::<Vec<_>>(), [8]);
        model.set_held(
            HeldMessages {
                hold: true,
                messages: vec![],
            },
            0,
        );
        assert!(model.held.is_empty());
        assert!(model.faults.hold_messages);
    }

    #[test]
    fn node_state_events_set_a_nodes_in_doubt_list_and_locks() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        model.fold(
            ev(
                1,
                EventKind::NodeState {
                    node: "6002".into(),
                    in_doubt: vec!["t".into()],
                    locked_accounts: vec!["B".into()],
                },
            ),
            0,
        );
        let node = &model.cluster.as_ref().expect("a cluster").nodes[1];
        assert_eq!(node.in_doubt, ["t"]);
        assert_eq!(node.locked_accounts, ["B"]);
    }

    #[test]
    fn outcomes_are_counted_as_they_finish() {
        let mut model = Model::default();
        model.fold(snapshot(0), 0);
        committed_transfer(&mut model, 1, "t1");
        assert_eq!((model.stats.attempted, model.stats.committed), (1, 1));
        model.fold(started(20, "t2"), 0);
        model.fold(
            ev(
                21,
                EventKind::TxFinished {
                    tx_id: "t2".into(),
                    outcome: Outcome::Aborted,
                    reason: Some(AbortReason::Timeout),
                    duration_ms: 3_000.0,
                },
            ),
            0,
        );
        assert_eq!(model.stats.aborted, 1);
        assert_eq!(model.stats.aborts_by_reason.get("timeout"), Some(&1));
    }
}
