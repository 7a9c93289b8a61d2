//! Durability is an action: records to persist, and the sends (votes,
//! acks, crash points, accepted connections) held until the record they
//! depend on is durable.

use super::*;

impl Participant {
    pub(super) fn on_durable(&mut self, seq: u64, out: &mut Vec<Action>) {
        self.durable_seq = self.durable_seq.max(seq);
        while let Some((held_seq, _)) = self.held.front() {
            if *held_seq > self.durable_seq {
                break;
            }
            if let Some((_, action)) = self.held.pop_front() {
                out.push(action);
            }
        }
    }

    pub(super) fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub(super) fn persist(
        &mut self,
        record: ParticipantRecord,
        sync: bool,
        out: &mut Vec<Action>,
    ) -> u64 {
        let seq = self.take_seq();
        if sync {
            self.awaited_seq = seq;
        }
        out.push(Action::Persist { seq, record, sync });
        seq
    }

    /// Persists a record that a reply will wait for without forcing it: it
    /// rides the next force, or the driver syncs it within its lazy-sync
    /// delay (`PARTICIPANT_UNFORCED_SYNC_US`).
    pub(super) fn persist_awaited(
        &mut self,
        record: ParticipantRecord,
        out: &mut Vec<Action>,
    ) -> u64 {
        let seq = self.persist(record, false, out);
        self.awaited_seq = seq;
        seq
    }

    /// If a crash at `point` is armed: disarms it, and crashes once record
    /// `seq` is durable (before anything sent after it).
    pub(super) fn crash_when_durable_if_armed(
        &mut self,
        point: ParticipantCrashPoint,
        seq: u64,
        out: &mut Vec<Action>,
    ) {
        if self.armed_crash == Some(point) {
            self.armed_crash = None;
            self.send_when_durable(seq, Action::Crash(point), out);
        }
    }

    /// Votes `ready` once the PREPARED record `seq` is durable.
    pub(super) fn vote_ready_when_durable(
        &mut self,
        seq: u64,
        to: PeerId,
        tx_id: TxId,
        out: &mut Vec<Action>,
    ) {
        let msg = Reply::Vote {
            tx_id,
            vote: Vote::Ready,
            reason: None,
        };
        self.send_when_durable(seq, Action::Send { to, msg }, out);
    }

    pub(super) fn send_when_durable(&mut self, seq: u64, action: Action, out: &mut Vec<Action>) {
        if seq <= self.durable_seq {
            out.push(action);
        } else {
            self.held.push_back((seq, action));
        }
    }

    /// Sends once every awaited record appended so far is durable (for
    /// answers about an outcome whose record may still be in flight: a
    /// `Committed` record is awaited; an `Aborted` one needs no durability).
    pub(super) fn send_after_latest(&mut self, to: PeerId, msg: Reply, out: &mut Vec<Action>) {
        let latest_awaited = self.awaited_seq;
        self.send_when_durable(latest_awaited, Action::Send { to, msg }, out);
    }

    pub(super) fn drop_held_votes(&mut self, tx_id: &TxId) {
        self.held.retain(|(_, action)| !matches!(action, Action::Send { msg: Reply::Vote { tx_id: t, .. }, .. } if t == tx_id));
    }
}
