//! The CLI's human output: one function per answer, returning the text to
//! print. Money is always shown with `shared::money::format_cents`.

use std::fmt::Write as _;

use serde_json::Value;
use shared::api::{
    AccountView, ClusterView, ComponentStatus, Faults, HeuristicView, InDoubtView, LedgerEntry,
    LinkFault, NodeVote, Outcome, Stats, TransactionSummary, TransferResponse, TxState, VoteView,
};
use shared::money::format_cents;
use shared::wire::Decision;

pub fn status_word(status: ComponentStatus) -> &'static str {
    match status {
        ComponentStatus::Up => "up",
        ComponentStatus::Down => "down",
        ComponentStatus::Recovering => "recovering",
        ComponentStatus::Unreachable => "unreachable",
    }
}

fn votes(votes: &[NodeVote]) -> String {
    let words: Vec<String> = votes
        .iter()
        .map(|v| {
            let vote = match v.vote {
                VoteView::Ready => "ready",
                VoteView::Abort => "abort",
                VoteView::NoAnswer => "no answer",
            };
            match v.reason {
                Some(reason) => format!("{} {vote} ({reason})", v.node),
                None => format!("{} {vote}", v.node),
            }
        })
        .collect();
    words.join(", ")
}

pub fn transfer(r: &TransferResponse, from: &str, to: &str, amount_cents: i64) -> String {
    let mut out = String::new();
    let outcome = match r.outcome {
        Outcome::Committed => "committed",
        Outcome::Aborted => "aborted",
    };
    let _ = write!(
        out,
        "{outcome}: {from} → {to} {}  tx {}  ({:.1} ms)",
        format_cents(amount_cents),
        r.tx_id,
        r.duration_ms
    );
    if let Some(reason) = r.reason {
        let _ = write!(out, "\n  reason: {reason}");
    }
    if let Some(detail) = &r.detail {
        let _ = write!(out, "\n  {detail}");
    }
    if !r.votes.is_empty() {
        let _ = write!(out, "\n  votes: {}", votes(&r.votes));
    }
    out
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Right-aligns money so that the decimal points line up.
fn money_column(cents: &[i64]) -> Vec<String> {
    let texts: Vec<String> = cents.iter().map(|c| format_cents(*c)).collect();
    let width = texts.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    texts.into_iter().map(|t| format!("{t:>width$}")).collect()
}

pub fn cluster(view: &ClusterView) -> String {
    let mut out = String::new();
    let demo = if view.coordinator.demo_mode {
        " (demo mode: fault injection allowed)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "coordinator  {}{demo}",
        status_word(view.coordinator.status)
    );
    let mut rows = vec![vec![
        "NODE".to_string(),
        "STATUS".into(),
        "ADDRESS".into(),
        "PID".into(),
        "ACCOUNTS".into(),
    ]];
    for node in &view.nodes {
        let accounts: Vec<String> = node
            .accounts
            .iter()
            .map(|a| format!("{} {}", a.id, format_cents(a.balance_cents)))
            .collect();
        let mut status = status_word(node.status).to_string();
        if node.link.drop {
            status.push_str(" (link cut)");
        } else if node.link.delay_ms > 0 {
            status.push_str(&format!(" (link +{} ms)", node.link.delay_ms));
        }
        rows.push(vec![
            node.id.clone(),
            status,
            node.addr.clone(),
            node.pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            if accounts.is_empty() {
                "(unknown)".into()
            } else {
                accounts.join(", ")
            },
        ]);
    }
    out.push_str(&table(&rows));
    let in_doubt: Vec<String> = view
        .nodes
        .iter()
        .flat_map(|n| {
            n.in_doubt_detail.iter().map(move |t| {
                format!(
                    "  {} at node {} (prepared {:.1} s ago)",
                    t.tx_id,
                    n.id,
                    t.prepared_for_ms as f64 / 1000.0
                )
            })
        })
        .collect();
    if in_doubt.is_empty() {
        out.push_str("in doubt: none\n");
    } else {
        let _ = writeln!(out, "in doubt: {}", in_doubt.len());
        for line in in_doubt {
            out.push_str(&line);
            out.push('\n');
        }
    }
    let locked: Vec<String> = view
        .nodes
        .iter()
        .filter(|n| !n.locked_accounts.is_empty())
        .map(|n| format!("{} at node {}", n.locked_accounts.join(", "), n.id))
        .collect();
    if !locked.is_empty() {
        let _ = writeln!(out, "locked: {}", locked.join("; "));
    }
    let _ = write!(
        out,
        "total {} of {} ",
        format_cents(view.total_cents),
        format_cents(view.expected_total_cents)
    );
    if !view.total_complete {
        out.push_str("? (partial: some node did not answer)");
    } else if view.total_cents == view.expected_total_cents {
        out.push('✓');
    } else {
        out.push_str("✗ (MONEY WAS CREATED OR LOST)");
    }
    out
}

pub fn total_ok(view: &ClusterView) -> bool {
    !view.total_complete || view.total_cents == view.expected_total_cents
}

pub fn accounts(list: &[AccountView]) -> String {
    let money = money_column(&list.iter().map(|a| a.balance_cents).collect::<Vec<_>>());
    let mut rows = vec![vec!["ACCOUNT".to_string(), "NODE".into(), "BALANCE".into()]];
    for (a, m) in list.iter().zip(money) {
        rows.push(vec![a.id.clone(), a.node.clone(), m]);
    }
    let total: i64 = list.iter().map(|a| a.balance_cents).sum();
    let mut out = table(&rows);
    let _ = write!(out, "total {}", format_cents(total));
    out
}

pub fn ledger(account: &str, entries: &[LedgerEntry]) -> String {
    if entries.is_empty() {
        return format!("{account}: no applied entries yet");
    }
    let deltas: Vec<String> = entries
        .iter()
        .map(|e| {
            if e.delta_cents > 0 {
                format!("+{}", format_cents(e.delta_cents))
            } else {
                format_cents(e.delta_cents)
            }
        })
        .collect();
    let delta_width = deltas.iter().map(|d| d.chars().count()).max().unwrap_or(0);
    let balances = money_column(&entries.iter().map(|e| e.balance_cents).collect::<Vec<_>>());
    let mut rows = vec![vec!["TX".to_string(), "CHANGE".into(), "BALANCE".into()]];
    for ((e, d), b) in entries.iter().zip(deltas).zip(balances) {
        rows.push(vec![e.tx_id.clone(), format!("{d:>delta_width$}"), b]);
    }
    let plural = if entries.len() == 1 {
        "entry"
    } else {
        "entries"
    };
    let mut out = format!(
        "ledger of {account}, oldest first ({} {plural})\n",
        entries.len()
    );
    out.push_str(table(&rows).trim_end());
    out
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// `GET /api/transactions/{id}`: read loosely, since an old transaction is
/// known only by its outcome.
pub fn transaction(v: &Value) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{}  {}",
        text(v, "tx_id").unwrap_or("?"),
        text(v, "state").unwrap_or("?")
    );
    if let (Some(from), Some(to), Some(amount)) = (
        text(v, "from"),
        text(v, "to"),
        v.get("amount_cents").and_then(Value::as_i64),
    ) {
        let _ = write!(out, "  {from} → {to} {}", format_cents(amount));
    }
    if let Some(ms) = v.get("duration_ms").and_then(Value::as_f64) {
        let _ = write!(out, "  ({ms:.1} ms)");
    }
    if let Some(reason) = text(v, "reason") {
        let _ = write!(out, "\n  reason: {reason}");
    }
    if let Some(detail) = text(v, "detail") {
        let _ = write!(out, "\n  {detail}");
    }
    if let Some(pending) = v
        .get("pending_acks")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
    {
        let nodes: Vec<&str> = pending.iter().filter_map(Value::as_str).collect();
        let _ = write!(out, "\n  waiting for acks from: {}", nodes.join(", "));
    }
    if let Some(legs) = v
        .get("legs")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
    {
        let parts: Vec<String> = legs
            .iter()
            .map(|leg| {
                let ops: Vec<String> = leg
                    .get("ops")
                    .and_then(Value::as_array)
                    .map(|ops| {
                        ops.iter()
                            .map(|op| {
                                let delta =
                                    op.get("delta_cents").and_then(Value::as_i64).unwrap_or(0);
                                let sign = if delta > 0 { "+" } else { "" };
                                format!(
                                    "{} {sign}{}",
                                    text(op, "account").unwrap_or("?"),
                                    format_cents(delta)
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                format!("{}: {}", text(leg, "node").unwrap_or("?"), ops.join(", "))
            })
            .collect();
        let _ = write!(out, "\n  legs: {}", parts.join("; "));
    }
    if let Some(votes_json) = v.get("votes").cloned() {
        if let Ok(list) = serde_json::from_value::<Vec<NodeVote>>(votes_json) {
            if !list.is_empty() {
                let _ = write!(out, "\n  votes: {}", votes(&list));
            }
        }
    }
    if let Some(timeline) = v
        .get("timeline")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
    {
        out.push_str("\n  timeline:");
        let first_ms = timeline[0]
            .get("ts_ms")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        for event in timeline {
            let at_ms = event
                .get("ts_ms")
                .and_then(Value::as_u64)
                .unwrap_or(first_ms)
                .saturating_sub(first_ms);
            let mut line = format!(
                "\n    {:>9}  {}",
                format!("+{at_ms} ms"),
                text(event, "kind").unwrap_or("?")
            );
            for key in ["node", "vote", "decision", "record", "outcome", "reason"] {
                if let Some(value) = text(event, key) {
                    let _ = write!(line, "  {key}={value}");
                }
            }
            out.push_str(&line);
        }
    }
    out
}

fn state_word(state: TxState) -> &'static str {
    match state {
        TxState::Active => "active",
        TxState::Prepared => "prepared",
        TxState::Committed => "committed",
        TxState::Aborted => "aborted",
    }
}

fn decision_word(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "commit",
        Decision::Abort => "abort",
    }
}

/// `GET /api/transactions`: one row per transaction, newest first.
pub fn transactions(list: &[TransactionSummary]) -> String {
    if list.is_empty() {
        return "no transactions match".to_string();
    }
    let mut rows = vec![vec![
        "TX".to_string(),
        "STATE".into(),
        "TRANSFER".into(),
        "MS".into(),
        "REASON".into(),
    ]];
    for t in list {
        rows.push(vec![
            t.tx_id.clone(),
            state_word(t.state).to_string(),
            format!("{} → {} {}", t.from, t.to, format_cents(t.amount_cents)),
            t.duration_ms.map_or("-".into(), |ms| format!("{ms:.1}")),
            t.reason.map_or(String::new(), |r| r.to_string()),
        ]);
    }
    table(&rows).trim_end().to_string()
}

/// `GET /api/stats`.
pub fn stats(s: &Stats) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "transfers    {} attempted, {} committed, {} aborted, {} in flight",
        s.attempted, s.committed, s.aborted, s.in_flight
    );
    if s.in_flight_heuristic_mismatch > 0 {
        let _ = writeln!(
            out,
            "             {} of them never finish: a node's heuristic abort contradicts the commit (tpc in-doubt)",
            s.in_flight_heuristic_mismatch
        );
    }
    if !s.aborts_by_reason.is_empty() {
        let reasons: Vec<String> = s
            .aborts_by_reason
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        let _ = writeln!(out, "aborts       {}", reasons.join(", "));
    }
    let l = &s.latency_ms;
    let _ = writeln!(
        out,
        "latency ms   p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        l.p50, l.p90, l.p99, l.p999, l.max
    );
    let _ = writeln!(
        out,
        "throughput   {:.1} committed/s (last 10 s)",
        s.throughput_per_s
    );
    let _ = write!(
        out,
        "coordinator  {} log forces, up {:.0} s",
        s.log_forces, s.uptime_s
    );
    out
}

/// `GET /api/in-doubt`: what is prepared and unresolved, why, heuristic
/// decisions, and the money audit.
pub fn in_doubt(v: &InDoubtView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "coordinator  {}", status_word(v.coordinator));
    if v.transactions.is_empty() {
        let _ = writeln!(out, "nothing in doubt");
    }
    for t in &v.transactions {
        let transfer = match (&t.from, &t.to, t.amount_cents) {
            (Some(from), Some(to), Some(cents)) => {
                format!("  {from} → {to} {}", format_cents(cents))
            }
            _ => String::new(),
        };
        let prepared: Vec<String> = t
            .prepared_on
            .iter()
            .map(|p| format!("{} ({:.1} s)", p.node, p.prepared_for_ms as f64 / 1000.0))
            .collect();
        let _ = writeln!(
            out,
            "{}{transfer}  waiting {:.1} s; coordinator: {}{}",
            t.tx_id,
            t.age_ms as f64 / 1000.0,
            serde_json::to_value(t.coordinator_state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            t.decision
                .map_or(String::new(), |d| format!(", decided {}", decision_word(d)))
        );
        if !prepared.is_empty() {
            let _ = writeln!(out, "  prepared on {}", prepared.join(", "));
        }
        if !t.pending_acks.is_empty() {
            let _ = writeln!(out, "  acks owed by {}", t.pending_acks.join(", "));
        }
        for stuck in &t.stuck {
            let _ = writeln!(out, "  - {}", stuck.detail);
        }
    }
    for h in &v.heuristics {
        let _ = writeln!(out, "{}", heuristic(h));
    }
    if !v.stale_nodes.is_empty() {
        let _ = writeln!(
            out,
            "not answering now (last report shown): {}",
            v.stale_nodes.join(", ")
        );
    }
    let mark = if v.audit.balanced { "✓" } else { "✗" };
    let _ = write!(out, "audit {mark}  {}", v.audit.detail);
    out
}

/// `GET /api/faults` (and the answer of a change to them).
pub fn faults(f: &Faults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "prepare crash probability  {}",
        f.prepare_crash_probability
    );
    let _ = writeln!(out, "pause between phases       {} ms", f.phase_pause_ms);
    let crash = match &f.coordinator_crash {
        Some(c) => format!(
            "armed at {} (restart after {} ms)",
            serde_json::to_value(c.at)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            c.restart_after_ms
        ),
        None => "not armed".to_string(),
    };
    let _ = write!(out, "coordinator crash          {crash}");
    for (node, link) in &f.links {
        let _ = write!(out, "\nlink to {node}  {}", link_words(link));
    }
    out
}

/// A link's faults in words.
pub fn link_words(link: &LinkFault) -> String {
    let mut words = Vec::new();
    if link.drop {
        words.push("cut (every message dropped)".to_string());
    }
    if link.delay_ms > 0 {
        words.push(format!("+{} ms each way", link.delay_ms));
    }
    if link.duplicate {
        words.push("every message sent twice".to_string());
    }
    if words.is_empty() {
        "healthy".to_string()
    } else {
        words.join(", ")
    }
}

/// One heuristic decision, compared with the coordinator's.
pub fn heuristic(h: &HeuristicView) -> String {
    let agreement = match h.agrees {
        Some(true) => "agrees with the coordinator".to_string(),
        Some(false) => format!(
            "DISAGREES with the coordinator ({} against the total)",
            format_cents(h.imbalance_cents)
        ),
        None => "the coordinator's decision is not known yet".to_string(),
    };
    format!(
        "heuristic {} of {} on node {}: {agreement}\n  {}",
        decision_word(h.decision),
        h.tx_id,
        h.node,
        h.detail
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_lines_up_and_tables_trim() {
        let list = vec![
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
        let text = accounts(&list);
        assert_eq!(text, "ACCOUNT  NODE  BALANCE\nA        6001    $900.00\nB        6002  $1,100.00\ntotal $2,000.00");
    }

    #[test]
    fn ledger_shows_signed_changes() {
        let entries = vec![
            LedgerEntry {
                tx_id: "t1".into(),
                delta_cents: -10_000,
                balance_cents: 90_000,
            },
            LedgerEntry {
                tx_id: "t2".into(),
                delta_cents: 250,
                balance_cents: 90_250,
            },
        ];
        let text = ledger("A", &entries);
        assert!(text.contains("t1  -$100.00  $900.00"), "{text}");
        assert!(text.contains("t2    +$2.50  $902.50"), "{text}");
    }
}
