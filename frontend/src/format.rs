//! Words and numbers people read: abort reasons in plain English, statuses,
//! durations, short transaction ids. Pure, so tested natively.

use shared::api::{ComponentStatus, Outcome, TxState, VoteView};
use shared::events::{Direction, EventKind, MessageName};
use shared::money::format_cents;
use shared::wire::{AbortReason, Decision};

/// `insufficient_funds` → "insufficient funds".
pub fn reason_label(reason: AbortReason) -> &'static str {
    match reason {
        AbortReason::InsufficientFunds => "insufficient funds",
        AbortReason::UnknownAccount => "unknown account",
        AbortReason::NodeUnreachable => "node unreachable",
        AbortReason::Timeout => "timeout",
        AbortReason::LockConflict => "lock conflict",
        AbortReason::Overloaded => "overloaded",
        AbortReason::CoordinatorCrashed => "coordinator crashed",
        AbortReason::ParticipantCrashed => "participant crashed",
        AbortReason::AlreadyAborted => "already aborted",
        AbortReason::InvalidRequest => "invalid request",
        AbortReason::ProtocolError => "protocol error",
    }
}

/// The same for the string keys of `Stats::aborts_by_reason`.
pub fn reason_key_label(key: &str) -> String {
    AbortReason::ALL
        .iter()
        .find(|r| r.as_str() == key)
        .map(|r| reason_label(*r).to_string())
        .unwrap_or_else(|| key.replace('_', " "))
}

pub fn status_label(status: ComponentStatus) -> &'static str {
    match status {
        ComponentStatus::Up => "up",
        ComponentStatus::Down => "down",
        ComponentStatus::Recovering => "recovering",
        ComponentStatus::Unreachable => "unreachable",
    }
}

pub fn vote_label(vote: VoteView) -> &'static str {
    match vote {
        VoteView::Ready => "ready",
        VoteView::Abort => "abort",
        VoteView::NoAnswer => "no answer",
    }
}

pub fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Committed => "committed",
        Outcome::Aborted => "aborted",
    }
}

pub fn decision_label(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "commit",
        Decision::Abort => "abort",
    }
}

pub fn state_label(state: TxState) -> &'static str {
    match state {
        TxState::Active => "active",
        TxState::Prepared => "prepared",
        TxState::Committed => "committed",
        TxState::Aborted => "aborted",
    }
}

/// A duration for people: `0.42 ms`, `3.1 ms`, `250 ms`, `1.5 s`, `2 min 5 s`.
pub fn duration_ms(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "–".to_string();
    }
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1_000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1_000.0)
    } else {
        let whole_s = (ms / 1_000.0).floor() as u64;
        format!("{} min {} s", whole_s / 60, whole_s % 60)
    }
}

/// Long generated ids are shortened for cards and tables; the full id stays
/// in a tooltip.
pub fn short_tx_id(tx_id: &str) -> String {
    const KEEP_CHARS: usize = 14;
    if tx_id.chars().count() <= KEEP_CHARS {
        tx_id.to_string()
    } else {
        let tail: String = tx_id
            .chars()
            .rev()
            .take(KEEP_CHARS - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

/// Wall-clock time of day (UTC offset applied by the caller) as `HH:MM:SS.mmm`.
pub fn clock_ms(unix_ms: u64, utc_offset_minutes: i64) -> String {
    const DAY_MS: i64 = 86_400_000;
    let local_ms = (unix_ms as i64 + utc_offset_minutes * 60_000).rem_euclid(DAY_MS);
    let h = local_ms / 3_600_000;
    let m = local_ms / 60_000 % 60;
    let s = local_ms / 1_000 % 60;
    let milli = local_ms % 1_000;
    format!("{h:02}:{m:02}:{s:02}.{milli:03}")
}

/// `0.973` → `97.3%`.
pub fn percent(fraction: f64) -> String {
    if !fraction.is_finite() {
        return "–".to_string();
    }
    format!("{:.1}%", fraction * 100.0)
}

/// The colour family of a message, log line or badge. The CSS defines one
/// class per tone (`tone-good`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tone {
    /// Phase-1 traffic and plain facts.
    Neutral,
    /// Recovery traffic (queries, in-doubt reports).
    Info,
    /// Ready votes, commit decisions, commit messages and their acks.
    Good,
    /// Abort votes, abort decisions, rollbacks, crashes.
    Bad,
    /// Things that need attention but are not failures (in doubt, faults).
    Warn,
    /// Records forced to a log.
    Log,
}

impl Tone {
    pub fn class(self) -> &'static str {
        match self {
            Tone::Neutral => "tone-neutral",
            Tone::Info => "tone-info",
            Tone::Good => "tone-good",
            Tone::Bad => "tone-bad",
            Tone::Warn => "tone-warn",
            Tone::Log => "tone-log",
        }
    }

    pub fn of_decision(decision: Decision) -> Tone {
        match decision {
            Decision::Commit => Tone::Good,
            Decision::Abort => Tone::Bad,
        }
    }

    pub fn of_status(status: ComponentStatus) -> Tone {
        match status {
            ComponentStatus::Up => Tone::Good,
            ComponentStatus::Recovering => Tone::Warn,
            ComponentStatus::Down | ComponentStatus::Unreachable => Tone::Bad,
        }
    }
}

fn with_reason(text: String, reason: Option<AbortReason>) -> String {
    match reason {
        Some(reason) => format!("{text} ({})", reason_label(reason)),
        None => text,
    }
}

/// The colour of an event, the same in the live log and in the diagram:
/// good for ready/commit, bad for abort/rollback, log for forced records.
pub fn tone_of(kind: &EventKind) -> Tone {
    match kind {
        EventKind::Snapshot(_) | EventKind::RecoveryQuery { .. } => Tone::Info,
        EventKind::Lagged { .. } | EventKind::Fault { .. } => Tone::Warn,
        EventKind::TxStarted { .. }
        | EventKind::PrepareSent { .. }
        | EventKind::Balances { .. } => Tone::Neutral,
        EventKind::Vote { vote, .. } => {
            if *vote == VoteView::Ready {
                Tone::Good
            } else {
                Tone::Bad
            }
        }
        EventKind::LogForced { .. } | EventKind::TxEnded { .. } => Tone::Log,
        EventKind::Decision { decision, .. }
        | EventKind::Ack { decision, .. }
        | EventKind::Resolved { decision, .. } => Tone::of_decision(*decision),
        EventKind::CommitSent { .. } => Tone::Good,
        EventKind::RollbackSent { .. } => Tone::Bad,
        EventKind::TxFinished { outcome, .. } => {
            if *outcome == Outcome::Committed {
                Tone::Good
            } else {
                Tone::Bad
            }
        }
        EventKind::InDoubtReported { tx_ids, .. } => {
            if tx_ids.is_empty() {
                Tone::Info
            } else {
                Tone::Warn
            }
        }
        EventKind::NodeStatus { status, .. } | EventKind::CoordinatorStatus { status } => {
            Tone::of_status(*status)
        }
        EventKind::NodeState { in_doubt, .. } => {
            if in_doubt.is_empty() {
                Tone::Info
            } else {
                Tone::Warn
            }
        }
        EventKind::MessageHeld { .. } => Tone::Warn,
        EventKind::MessageReleased { .. } => Tone::Neutral,
        EventKind::MessageDropped { .. } => Tone::Bad,
    }
}

/// `prepare → 6002` or `vote 6002 → coordinator`: a message and its way.
pub fn message_way(message: MessageName, direction: Direction, node: &str) -> String {
    match direction {
        Direction::ToNode => format!("{} → {node}", message.as_str()),
        Direction::ToCoordinator => format!("{} {node} → coordinator", message.as_str()),
    }
}

/// One line of the live event log, and its tone.
pub fn describe_event(kind: &EventKind) -> (String, Tone) {
    let text = match kind {
        EventKind::Snapshot(_) => "snapshot received: state resynchronised".into(),
        EventKind::Lagged { missed } => {
            format!("this browser fell behind and missed {missed} events: resynchronising")
        }
        EventKind::TxStarted {
            from,
            to,
            amount_cents,
            one_phase,
            ..
        } => {
            let phases = if *one_phase { " (one-phase)" } else { "" };
            format!(
                "start: {from} → {to} {}{phases}",
                format_cents(*amount_cents)
            )
        }
        EventKind::PrepareSent { node, .. } => format!("prepare → {node}"),
        EventKind::Vote {
            node, vote, reason, ..
        } => with_reason(format!("{node} votes {}", vote_label(*vote)), *reason),
        EventKind::LogForced { node, record, .. } => format!("{node} forces {record} to its log"),
        EventKind::Decision {
            decision, reason, ..
        } => with_reason(
            format!("decision: {}", decision_label(*decision).to_uppercase()),
            *reason,
        ),
        EventKind::CommitSent { node, .. } => format!("commit → {node}"),
        EventKind::RollbackSent { node, .. } => format!("rollback → {node}"),
        EventKind::Ack { node, decision, .. } => {
            format!("{node} acks {}", decision_label(*decision))
        }
        EventKind::TxFinished {
            outcome,
            reason,
            duration_ms: ms,
            ..
        } => with_reason(
            format!("{} in {}", outcome_label(*outcome), duration_ms(*ms)),
            *reason,
        ),
        EventKind::TxEnded { .. } => "all acks in: transaction forgotten (END)".into(),
        EventKind::RecoveryQuery { node } => {
            format!("recovery: asks {node} for in-doubt transactions")
        }
        EventKind::InDoubtReported { node, tx_ids } => {
            format!("{node} reports {} in-doubt transaction(s)", tx_ids.len())
        }
        EventKind::Resolved { node, decision, .. } => format!(
            "resolved at {node} from the log: {}",
            decision_label(*decision)
        ),
        EventKind::NodeStatus { node, status } => {
            format!("node {node} is {}", status_label(*status))
        }
        EventKind::CoordinatorStatus { status } => {
            format!("coordinator is {}", status_label(*status))
        }
        EventKind::Fault {
            target,
            description,
        } => format!("fault on {target}: {description}"),
        EventKind::Balances { total_cents, .. } => {
            format!("balances updated: total {}", format_cents(*total_cents))
        }
        EventKind::NodeState {
            node,
            in_doubt,
            locked_accounts,
        } => format!(
            "{node} holds {} in doubt, {} account(s) locked",
            in_doubt.len(),
            locked_accounts.len()
        ),
        EventKind::MessageHeld {
            id,
            node,
            direction,
            message,
            detail,
            ..
        } => {
            let way = message_way(*message, *direction, node);
            if detail.is_empty() {
                format!("held #{id}: {way}")
            } else {
                format!("held #{id}: {way} ({detail})")
            }
        }
        EventKind::MessageReleased {
            id,
            node,
            direction,
            message,
            copies,
            delay_ms,
            ..
        } => {
            let mut text = format!(
                "released #{id}: {}",
                message_way(*message, *direction, node)
            );
            if *copies > 1 {
                text.push_str(&format!(" ×{copies}"));
            }
            if *delay_ms > 0 {
                text.push_str(&format!(" after {delay_ms} ms"));
            }
            text
        }
        EventKind::MessageDropped {
            id,
            node,
            direction,
            message,
            ..
        } => format!("dropped #{id}: {}", message_way(*message, *direction, node)),
    };
    (text, tone_of(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration_ms(0.424), "0.42 ms");
        assert_eq!(duration_ms(3.12), "3.1 ms");
        assert_eq!(duration_ms(250.4), "250 ms");
        assert_eq!(duration_ms(1_500.0), "1.5 s");
        assert_eq!(duration_ms(125_000.0), "2 min 5 s");
        assert_eq!(duration_ms(f64::NAN), "–");
    }

    #[test]
    fn reasons_read_as_words() {
        assert_eq!(
            reason_label(AbortReason::NodeUnreachable),
            "node unreachable"
        );
        assert_eq!(reason_key_label("lock_conflict"), "lock conflict");
        assert_eq!(reason_key_label("something_new"), "something new");
    }

    #[test]
    fn short_ids_keep_the_distinctive_tail() {
        assert_eq!(short_tx_id("tx-1"), "tx-1");
        assert_eq!(short_tx_id("tx-0123456789abcdef"), "…3456789abcdef");
    }

    #[test]
    fn events_read_as_sentences_with_tones() {
        let vote = EventKind::Vote {
            tx_id: "t".into(),
            node: "6002".into(),
            vote: VoteView::Abort,
            reason: Some(AbortReason::InsufficientFunds),
        };
        assert_eq!(
            describe_event(&vote),
            (
                "6002 votes abort (insufficient funds)".to_string(),
                Tone::Bad
            )
        );
        let started = EventKind::TxStarted {
            tx_id: "t".into(),
            from: "A".into(),
            to: "B".into(),
            amount_cents: 1_050,
            nodes: vec!["6001".into(), "6002".into()],
            one_phase: false,
        };
        assert_eq!(describe_event(&started).0, "start: A → B $10.50");
    }

    #[test]
    fn clock_wraps_days_and_applies_offset() {
        assert_eq!(clock_ms(86_400_000 + 3_723_045, 0), "01:02:03.045");
        assert_eq!(clock_ms(0, 60), "01:00:00.000");
        assert_eq!(clock_ms(0, -60), "23:00:00.000");
        assert_eq!(percent(0.9734), "97.3%");
    }
}
