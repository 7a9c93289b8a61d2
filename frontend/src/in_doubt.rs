//! The in-doubt panel's words and folding, pure so tested natively: what
//! the coordinator's state means, why a transaction is stuck, how old it is
//! now (the server's age plus the time since the answer), which heuristic
//! decisions broke atomicity, the audit line, and the confirm text of a
//! forced outcome.
//!
//! Vocabulary (see `STYLE.md`): a node holding a transaction *prepared*
//! (voted ready, locks held) without knowing the decision is *in doubt*; an
//! operator forcing the outcome there is a *heuristic decision* (XA's
//! word), outside the protocol.

use shared::api::{
    CoordinatorTxState, HeuristicView, InDoubtEntry, InDoubtView, MoneyAudit, StuckBecause,
    StuckReason,
};
use shared::money::format_cents;
use shared::wire::Decision;

use crate::format::{decision_label, Tone};

/// What the panel last heard from `GET /api/in-doubt`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Polled {
    /// The last good answer (kept while later polls fail).
    pub view: Option<InDoubtView>,
    /// Browser clock (Unix ms) when `view` arrived: ages count up from it.
    pub fetched_at_ms: u64,
    /// Why the latest poll failed, if it did.
    pub error: Option<String>,
}

impl Polled {
    pub fn loaded(view: InDoubtView, now_ms: u64) -> Self {
        Polled {
            view: Some(view),
            fetched_at_ms: now_ms,
            error: None,
        }
    }
}

/// The chip class of a tone.
pub fn chip_class(tone: Tone) -> &'static str {
    match tone {
        Tone::Good => "chip chip-good",
        Tone::Bad => "chip chip-bad",
        Tone::Warn => "chip chip-warn",
        Tone::Info | Tone::Log => "chip chip-info",
        Tone::Neutral => "chip chip-muted",
    }
}

/// The coordinator's state of one in-doubt transaction: a short label, a
/// sentence, and its tone.
pub fn coordinator_state_text(state: CoordinatorTxState) -> (&'static str, &'static str, Tone) {
    match state {
        CoordinatorTxState::Committing => (
            "committing",
            "COMMIT is durable in the coordinator's log; waiting for the nodes' acks",
            Tone::Good,
        ),
        CoordinatorTxState::InFlight => (
            "in flight",
            "the coordinator is still collecting votes or deciding",
            Tone::Info,
        ),
        CoordinatorTxState::Aborted => (
            "aborted",
            "the coordinator decided abort; the nodes still holding it get a rollback",
            Tone::Bad,
        ),
        CoordinatorTxState::Unknown => (
            "no record",
            "the coordinator has no record of it: presumed abort, the nodes asking get a rollback",
            Tone::Warn,
        ),
        CoordinatorTxState::CoordinatorDown => (
            "coordinator down",
            "the coordinator is down and cannot be asked; the nodes must wait for it",
            Tone::Bad,
        ),
    }
}

/// The headline of one "why stuck" reason; the server's `detail` says the rest.
pub fn stuck_label(reason: StuckReason) -> &'static str {
    match reason {
        StuckReason::CoordinatorDown => "coordinator down",
        StuckReason::LinkCut => "link cut",
        StuckReason::NodeDown => "node down",
        StuckReason::NodeUnreachable => "node not answering",
        StuckReason::WaitingForAck => "waiting for an ack",
        StuckReason::WaitingForDecision => "no decision yet",
        StuckReason::HeuristicMismatch => "heuristic mismatch",
        StuckReason::Resolving => "resolving",
    }
}

pub fn stuck_tone(reason: StuckReason) -> Tone {
    match reason {
        StuckReason::HeuristicMismatch | StuckReason::CoordinatorDown | StuckReason::NodeDown => {
            Tone::Bad
        }
        StuckReason::LinkCut | StuckReason::NodeUnreachable => Tone::Warn,
        StuckReason::WaitingForAck | StuckReason::WaitingForDecision => Tone::Info,
        StuckReason::Resolving => Tone::Good,
    }
}

/// One reason as people read it: "node down: node 6002 is down; …". The
/// detail already names the node; a reason without detail gets the label.
pub fn stuck_sentence(because: &StuckBecause) -> String {
    let label = stuck_label(because.reason);
    if because.detail.trim().is_empty() {
        match &because.node {
            Some(node) => format!("{label} (node {node})"),
            None => label.to_string(),
        }
    } else {
        format!("{label}: {}", because.detail)
    }
}

/// The age shown now: the server's `age_ms` when the answer arrived plus
/// the time since, so it counts up between polls.
pub fn live_age_ms(age_ms: u64, fetched_at_ms: u64, now_ms: u64) -> u64 {
    age_ms.saturating_add(now_ms.saturating_sub(fetched_at_ms))
}

/// "A → B · $10.00", when the coordinator still knows the transfer.
pub fn transfer_line(entry: &InDoubtEntry) -> Option<String> {
    let (from, to) = (entry.from.as_ref()?, entry.to.as_ref()?);
    Some(match entry.amount_cents {
        Some(cents) => format!("{from} → {to} · {}", format_cents(cents)),
        None => format!("{from} → {to}"),
    })
}

/// Heuristic decisions that contradict the coordinator's: each one means
/// the transaction is not atomic.
pub fn disagreeing(view: &InDoubtView) -> Vec<HeuristicView> {
    view.heuristics
        .iter()
        .filter(|h| h.agrees == Some(false))
        .cloned()
        .collect()
}

/// "+$10.00" / "-$10.00" / "$0.00": what a heuristic added to the total.
pub fn signed_cents(cents: i64) -> String {
    if cents > 0 {
        format!("+{}", format_cents(cents))
    } else {
        format_cents(cents)
    }
}

/// The audit line under the lists: a verdict, the server's detail, a tone.
pub fn audit_line(audit: &MoneyAudit) -> (String, Tone) {
    let verdict = if audit.balanced && audit.heuristic_imbalance_cents != 0 {
        // The difference is explained, not gone: money was created or lost.
        format!(
            "Money NOT conserved: {} counted, {} expected; the {} difference is the heuristic decision's (atomicity broken)",
            format_cents(audit.total_cents),
            format_cents(audit.expected_total_cents),
            signed_cents(audit.heuristic_imbalance_cents)
        )
    } else if audit.balanced {
        format!("Money balanced: {}", format_cents(audit.total_cents))
    } else if audit.settling {
        format!(
            "Settling: {} counted while transactions finish",
            format_cents(audit.total_cents)
        )
    } else {
        format!(
            "Money NOT balanced: {} counted, {} expected",
            format_cents(audit.total_cents),
            format_cents(audit.expected_total_cents)
        )
    };
    let tone = if audit.heuristic_imbalance_cents != 0 {
        Tone::Bad
    } else if audit.settling {
        // In flight, not broken: say so without crying wolf.
        Tone::Warn
    } else if !audit.balanced {
        Tone::Bad
    } else {
        Tone::Good
    };
    let text = if audit.detail.trim().is_empty() {
        verdict
    } else {
        format!("{verdict} — {}", audit.detail)
    };
    (text, tone)
}

/// The confirm step before forcing `decision` on `node`: says plainly that
/// this leaves the protocol, and what the coordinator thinks if known.
pub fn confirm_text(
    tx_id: &str,
    node: &str,
    decision: Decision,
    coordinator_decision: Option<Decision>,
) -> String {
    let chosen = match decision {
        Decision::Commit => "commit (apply its changes)",
        Decision::Abort => "abort (roll back its changes)",
    };
    let coordinator = match coordinator_decision {
        Some(d) if d == decision => format!(
            "The coordinator's decision is {} too, so this only saves the wait.",
            decision_label(d)
        ),
        Some(d) => format!(
            "The coordinator decided {}: deciding {} here makes the transaction NOT atomic and unbalances the money.",
            decision_label(d),
            decision_label(decision)
        ),
        None => "The coordinator's decision is not known: if it decides the other way, the transaction is not atomic.".to_string(),
    };
    format!(
        "Heuristic decision: {chosen} {tx_id} on node {node}?\n\nA heuristic decision (as XA calls it) is an operator's override: the node stops waiting for the coordinator and releases its locks. It breaks the automatic Two-Phase Commit protocol — the node will no longer follow the coordinator for this transaction.\n\n{coordinator}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::{ComponentStatus, PreparedOn};

    fn entry() -> InDoubtEntry {
        InDoubtEntry {
            tx_id: "tx-1".into(),
            prepared_on: vec![PreparedOn {
                node: "6001".into(),
                prepared_for_ms: 4_000,
            }],
            pending_acks: vec![],
            age_ms: 4_000,
            coordinator_state: CoordinatorTxState::InFlight,
            decision: None,
            stuck: vec![],
            from: Some("A".into()),
            to: Some("B".into()),
            amount_cents: Some(1_000),
        }
    }

    fn heuristic(agrees: Option<bool>) -> HeuristicView {
        HeuristicView {
            tx_id: "tx-1".into(),
            node: "6001".into(),
            decision: Decision::Commit,
            ops: vec![],
            coordinator_decision: Some(Decision::Abort),
            agrees,
            reached_node: None,
            imbalance_cents: -1_000,
            detail: "forced".into(),
        }
    }

    fn audit(balanced: bool, heuristic_imbalance_cents: i64) -> MoneyAudit {
        MoneyAudit {
            expected_total_cents: 200_000,
            total_cents: 199_000,
            heuristic_imbalance_cents,
            pending_commit_cents: 0,
            balanced,
            settling: false,
            detail: "1 heuristic".into(),
        }
    }

    #[test]
    fn an_unsettled_audit_is_amber_not_red() {
        let mut a = audit(false, 0);
        a.settling = true;
        let (text, tone) = audit_line(&a);
        assert!(text.starts_with("Settling: $1,990.00"), "{text}");
        assert_eq!(tone, Tone::Warn);
        a.settling = false;
        assert_eq!(audit_line(&a).1, Tone::Bad);
    }

    #[test]
    fn age_counts_up_from_the_answer_and_never_back() {
        assert_eq!(live_age_ms(4_000, 10_000, 12_500), 6_500);
        assert_eq!(live_age_ms(4_000, 10_000, 9_000), 4_000);
        assert_eq!(live_age_ms(u64::MAX, 0, 5), u64::MAX);
    }

    #[test]
    fn transfer_line_needs_both_accounts() {
        assert_eq!(transfer_line(&entry()).as_deref(), Some("A → B · $10.00"));
        let mut e = entry();
        e.amount_cents = None;
        assert_eq!(transfer_line(&e).as_deref(), Some("A → B"));
        e.from = None;
        assert_eq!(transfer_line(&e), None);
    }

    #[test]
    fn stuck_reasons_read_as_sentences() {
        let because = StuckBecause {
            reason: StuckReason::NodeDown,
            node: Some("6002".into()),
            detail: "node 6002 is down".into(),
        };
        assert_eq!(stuck_sentence(&because), "node down: node 6002 is down");
        let bare = StuckBecause {
            reason: StuckReason::LinkCut,
            node: Some("6001".into()),
            detail: " ".into(),
        };
        assert_eq!(stuck_sentence(&bare), "link cut (node 6001)");
        assert_eq!(stuck_tone(StuckReason::HeuristicMismatch), Tone::Bad);
        assert_eq!(stuck_tone(StuckReason::Resolving), Tone::Good);
    }

    #[test]
    fn only_disagreeing_heuristics_are_loud() {
        let view = InDoubtView {
            coordinator: ComponentStatus::Up,
            transactions: vec![],
            heuristics: vec![
                heuristic(Some(true)),
                heuristic(None),
                heuristic(Some(false)),
            ],
            audit: audit(true, 0),
            stale_nodes: vec![],
        };
        let loud = disagreeing(&view);
        assert_eq!(loud.len(), 1);
        assert_eq!(loud[0].agrees, Some(false));
    }

    #[test]
    fn audit_line_says_balanced_or_not_with_the_detail() {
        let (text, tone) = audit_line(&audit(false, 0));
        assert_eq!(
            text,
            "Money NOT balanced: $1,990.00 counted, $2,000.00 expected — 1 heuristic"
        );
        assert_eq!(tone, Tone::Bad);
        // Explained by a heuristic decision is still not conserved.
        let (text, tone) = audit_line(&audit(true, -1_000));
        assert!(
            text.starts_with("Money NOT conserved: $1,990.00 counted, $2,000.00 expected; the -$10.00 difference is the heuristic decision's"),
            "{text}"
        );
        assert_eq!(tone, Tone::Bad);
        assert_eq!(audit_line(&audit(true, 0)).1, Tone::Good);
    }

    #[test]
    fn signed_amounts() {
        assert_eq!(signed_cents(1_000), "+$10.00");
        assert_eq!(signed_cents(-1_000), "-$10.00");
        assert_eq!(signed_cents(0), "$0.00");
    }

    #[test]
    fn confirm_explains_the_broken_protocol() {
        let text = confirm_text("tx-1", "6002", Decision::Commit, Some(Decision::Abort));
        assert!(text.contains("heuristic decision"), "{text}");
        assert!(text.contains("breaks the automatic Two-Phase Commit protocol"));
        assert!(text.contains("NOT atomic"));
        assert!(text.contains("node 6002"));
        let agreeing = confirm_text("tx-1", "6002", Decision::Abort, Some(Decision::Abort));
        assert!(agreeing.contains("only saves the wait"));
        let unknown = confirm_text("tx-1", "6002", Decision::Abort, None);
        assert!(unknown.contains("not known"));
    }

    #[test]
    fn every_coordinator_state_has_words() {
        for state in [
            CoordinatorTxState::Committing,
            CoordinatorTxState::InFlight,
            CoordinatorTxState::Aborted,
            CoordinatorTxState::Unknown,
            CoordinatorTxState::CoordinatorDown,
        ] {
            let (label, sentence, _) = coordinator_state_text(state);
            assert!(!label.is_empty() && sentence.len() > label.len());
        }
    }
}
