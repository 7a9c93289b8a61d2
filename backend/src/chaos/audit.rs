//! The money audit run after every fault test and chaos run: what the API
//! reported must be exactly what the ledgers show. Pure: it checks books
//! already read ([`Books`]); the chaos run and the system tests read them.
//!
//! Tests that know only which tx_ids were answered what fill the id sets of
//! [`Reported`]. Clients that retry and re-use tx_ids record every request
//! with its content ([`Reported::sent`]); each of those tx_ids is then
//! checked request by request: the ledgers must hold exactly the legs of
//! the one request that owns the id, or nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;
use shared::api::LedgerEntry;

/// What clients were told.
#[derive(Debug, Default, Clone)]
pub struct Reported {
    pub committed: BTreeSet<String>,
    pub aborted: BTreeSet<String>,
    /// Answers that did not say (503, timeouts): either outcome is allowed,
    /// but it must be all-or-nothing.
    pub unknown: BTreeSet<String>,
    /// Every request sent with its content and its answer. A tx_id found
    /// here is audited by content; the id sets above are then only checked
    /// for agreement with these answers.
    pub sent: Vec<Sent>,
    /// Only tx_ids starting with this are checked one by one (a chaos run on
    /// a cluster with a past: other runs' and people's transfers are only in
    /// the total and the running balances). `None`: every id on the ledgers.
    pub tx_id_prefix: Option<String>,
}

/// The content of a transfer request, its tx_id aside.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Transfer {
    pub from: String,
    pub to: String,
    pub amount_cents: i64,
}

impl Transfer {
    pub fn new(from: &str, to: &str, amount_cents: i64) -> Transfer {
        Transfer {
            from: from.to_string(),
            to: to.to_string(),
            amount_cents,
        }
    }

    /// The ledger entries its commit makes: the debit, then the credit.
    fn legs(&self) -> [(&str, i64); 2] {
        [
            (self.from.as_str(), -self.amount_cents),
            (self.to.as_str(), self.amount_cents),
        ]
    }

    /// Whether `entries` are exactly its two legs, each once.
    fn is_exactly(&self, entries: &[(&str, i64)]) -> bool {
        let mut mine = self.legs().to_vec();
        let mut held = entries.to_vec();
        mine.sort_unstable();
        held.sort_unstable();
        mine == held
    }
}

impl fmt::Display for Transfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}→{} {} cents", self.from, self.to, self.amount_cents)
    }
}

/// What one request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Answer {
    /// 200 with outcome `committed`.
    Committed,
    /// 409 with outcome `aborted`.
    Aborted,
    /// 409 without an outcome: the tx_id is used by a different transfer.
    Conflict,
    /// 503: the coordinator is down or cannot tell yet.
    Unavailable,
    /// No answer: the connection was cut or the request timed out.
    Cut,
    /// Anything else (a status, or a body naming another tx_id): never
    /// right for a valid request.
    Unexpected(u16),
}

impl Answer {
    /// Classifies an HTTP answer to a transfer sent under `tx_id`; status 0
    /// means no answer came.
    pub fn classify(tx_id: &str, status: u16, body: &Value) -> Answer {
        let ours = body["tx_id"].as_str() == Some(tx_id);
        match (status, body["outcome"].as_str()) {
            (0, _) => Answer::Cut,
            (200, Some("committed")) if ours => Answer::Committed,
            (409, Some("aborted")) if ours => Answer::Aborted,
            (409, None) if body["error"].is_string() => Answer::Conflict,
            (503, _) => Answer::Unavailable,
            (status, _) => Answer::Unexpected(status),
        }
    }

    /// The answer did not say what happened to the request.
    pub fn is_unknown(self) -> bool {
        matches!(self, Answer::Unavailable | Answer::Cut)
    }

    /// The answer ended the transaction: committed or aborted.
    pub fn is_outcome(self) -> bool {
        matches!(self, Answer::Committed | Answer::Aborted)
    }

    pub fn label(self) -> String {
        match self {
            Answer::Committed => "committed".to_string(),
            Answer::Aborted => "aborted".to_string(),
            Answer::Conflict => "409 conflict".to_string(),
            Answer::Unavailable => "503".to_string(),
            Answer::Cut => "cut".to_string(),
            Answer::Unexpected(status) => format!("unexpected {status}"),
        }
    }
}

/// One request a client sent, and what it was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub tx_id: String,
    pub transfer: Transfer,
    pub answer: Answer,
}

#[derive(Debug, Default)]
pub struct AuditReport {
    pub total_cents: i64,
    pub expected_total_cents: i64,
    /// Requests (a tx_id with its body) answered committed.
    pub committed: u64,
    /// Of those, the ones whose two legs are on the ledgers exactly once.
    pub committed_on_both_ledgers: u64,
    /// Requests answered aborted.
    pub aborted: u64,
    /// Of those, the ones under whose tx_id no ledger holds anything.
    pub aborted_on_no_ledger: u64,
    pub violations: Vec<String>,
}

/// One account's balance and ledger, as read from a settled cluster.
#[derive(Debug, Clone)]
pub struct AccountBook {
    pub id: String,
    pub balance_cents: i64,
    pub ledger: Vec<LedgerEntry>,
}

/// Every account's books, with the totals the coordinator reported.
#[derive(Debug, Clone, Default)]
pub struct Books {
    pub total_cents: i64,
    pub expected_total_cents: i64,
    pub accounts: Vec<AccountBook>,
}

/// Per request content: the answers each request under one tx_id got.
type Seen<'a> = BTreeMap<&'a Transfer, BTreeMap<Answer, u64>>;

/// Checks settled books: the total is conserved; no balance is negative;
/// each ledger is a running balance ending at its account's balance; no
/// tx_id is applied twice on one account. Then per tx_id:
/// - recorded requests ([`Reported::sent`]): the answers never disagree
///   (never committed and aborted, never committed for two requests, a
///   request given an outcome is never refused as a conflict); a request
///   answered committed has exactly its two legs on the ledgers; otherwise
///   the ledgers hold nothing under the id, or exactly both legs of one
///   request no client was told the outcome of (a 503 or a cut), and only
///   if no request under the id was answered aborted;
/// - ids known only from the id sets: a committed one is on the ledgers,
///   all-or-nothing; an aborted one is on none; an unknown one is either;
///   an id nobody sent is on none.
pub fn check(books: &Books, reported: &Reported) -> AuditReport {
    let mut violations = Vec::new();
    if books.total_cents != books.expected_total_cents {
        violations.push(format!(
            "total is {} cents, expected {}",
            books.total_cents, books.expected_total_cents
        ));
    }
    let mut held: BTreeMap<&str, Vec<(&str, i64)>> = BTreeMap::new();
    for account in &books.accounts {
        if account.balance_cents < 0 {
            violations.push(format!(
                "account {} is negative: {}",
                account.id, account.balance_cents
            ));
        }
        let ledger = &account.ledger;
        let mut seen = BTreeSet::new();
        for (i, entry) in ledger.iter().enumerate() {
            if !seen.insert(entry.tx_id.as_str()) {
                violations.push(format!(
                    "{} is applied twice on {}",
                    entry.tx_id, account.id
                ));
            }
            held.entry(entry.tx_id.as_str())
                .or_default()
                .push((account.id.as_str(), entry.delta_cents));
            if i > 0 && ledger[i - 1].balance_cents + entry.delta_cents != entry.balance_cents {
                violations.push(format!(
                    "ledger of {} is not a running balance at entry {i}",
                    account.id
                ));
            }
        }
        if let Some(last) = ledger.last() {
            if last.balance_cents != account.balance_cents {
                violations.push(format!(
                    "ledger of {} ends at {} but the balance is {}",
                    account.id, last.balance_cents, account.balance_cents
                ));
            }
        }
    }
    let mut seen: BTreeMap<&str, Seen> = BTreeMap::new();
    for sent in &reported.sent {
        *seen
            .entry(sent.tx_id.as_str())
            .or_default()
            .entry(&sent.transfer)
            .or_default()
            .entry(sent.answer)
            .or_default() += 1;
    }
    let ids: BTreeSet<&str> = held
        .keys()
        .copied()
        .chain(seen.keys().copied())
        .chain(reported.committed.iter().map(String::as_str))
        .chain(reported.aborted.iter().map(String::as_str))
        .chain(reported.unknown.iter().map(String::as_str))
        .filter(|id| {
            reported
                .tx_id_prefix
                .as_ref()
                .is_none_or(|prefix| id.starts_with(prefix.as_str()))
        })
        .collect();
    let mut report = AuditReport {
        total_cents: books.total_cents,
        expected_total_cents: books.expected_total_cents,
        ..AuditReport::default()
    };
    for tx_id in ids {
        let entries = held.get(tx_id).map_or(&[][..], Vec::as_slice);
        match seen.get(tx_id) {
            Some(requests) => {
                count_outcomes(requests, entries, &mut report);
                check_by_content(tx_id, requests, entries, reported, &mut violations)
            }
            None => check_by_id(tx_id, entries, reported, &mut violations),
        }
    }
    report.violations = violations;
    report
}

/// Counts the requests under one tx_id answered committed and aborted, and
/// those whose ledgers agree: a committed one's two legs there exactly
/// once, nothing at all under an aborted one's id.
fn count_outcomes(requests: &Seen, entries: &[(&str, i64)], report: &mut AuditReport) {
    for (transfer, answers) in requests {
        if answers.contains_key(&Answer::Committed) {
            report.committed += 1;
            if transfer.is_exactly(entries) {
                report.committed_on_both_ledgers += 1;
            }
        }
        if answers.contains_key(&Answer::Aborted) {
            report.aborted += 1;
            if entries.is_empty() {
                report.aborted_on_no_ledger += 1;
            }
        }
    }
}

/// The checks of a tx_id whose requests were recorded with their content.
fn check_by_content(
    tx_id: &str,
    requests: &Seen,
    entries: &[(&str, i64)],
    reported: &Reported,
    violations: &mut Vec<String>,
) {
    let context = format!(
        "clients saw {}; ledgers hold {}",
        describe_seen(requests),
        describe_held(entries)
    );
    let mut report = |problem: String| violations.push(format!("{tx_id}: {problem}; {context}"));
    let answered = |answer: Answer| -> Vec<&Transfer> {
        requests
            .iter()
            .filter(|(_, answers)| answers.contains_key(&answer))
            .map(|(t, _)| *t)
            .collect()
    };
    let committed = answered(Answer::Committed);
    let aborted = answered(Answer::Aborted);
    let id_committed = reported.committed.contains(tx_id);
    let id_aborted = reported.aborted.contains(tx_id);

    // The answers must agree.
    if (!committed.is_empty() || id_committed) && (!aborted.is_empty() || id_aborted) {
        report("answered both committed and aborted".to_string());
    }
    if committed.len() > 1 {
        report(format!(
            "answered committed for {} different transfers",
            committed.len()
        ));
    }
    for (transfer, answers) in requests {
        let outcome = answers.keys().find(|a| a.is_outcome());
        if let (Some(outcome), true) = (outcome, answers.contains_key(&Answer::Conflict)) {
            report(format!(
                "{transfer} was answered {} and also refused as a 409 conflict",
                outcome.label()
            ));
        }
        for answer in answers.keys() {
            if let Answer::Unexpected(status) = answer {
                report(format!(
                    "{transfer} got an unexpected answer (HTTP {status}, or a body for another tx_id)"
                ));
            }
        }
    }

    // The ledgers must hold exactly the owner's legs, or nothing.
    if let [owner] = committed[..] {
        if !owner.is_exactly(entries) {
            report(format!(
                "answered committed for {owner}, but the ledgers do not hold its two legs exactly once ({})",
                leg_problems(owner, entries, requests)
            ));
        }
        return;
    }
    if !committed.is_empty() || entries.is_empty() {
        return;
    }
    match requests.keys().find(|t| t.is_exactly(entries)) {
        Some(owner) => {
            let answers = &requests[owner];
            if answers.contains_key(&Answer::Aborted) {
                report(format!(
                    "answered aborted for {owner}, but its legs are on the ledgers"
                ));
            } else if answers.contains_key(&Answer::Conflict) {
                report(format!(
                    "{owner} was refused as a 409 conflict (its tx_id is another transfer's), but its legs are on the ledgers"
                ));
            } else if !aborted.is_empty() {
                report(format!(
                    "the tx_id was answered aborted (for {}), but {owner} is on the ledgers under it",
                    aborted[0]
                ));
            }
        }
        None => report(
            "the ledger entries are not both legs of any one request sent under this tx_id \
             (partly applied, of a wrong amount or account, or from two requests)"
                .to_string(),
        ),
    }
}

/// What is wrong with `entries` as the legs of `owner`.
fn leg_problems(owner: &Transfer, entries: &[(&str, i64)], requests: &Seen) -> String {
    let mut problems = Vec::new();
    let legs = owner.legs();
    for (side, (account, delta)) in ["debit", "credit"].iter().zip(legs) {
        match entries.iter().filter(|e| **e == (account, delta)).count() {
            1 => {}
            0 => problems.push(format!("its {side} of {delta:+} on {account} is missing")),
            n => problems.push(format!(
                "its {side} of {delta:+} on {account} is there {n} times"
            )),
        }
    }
    for entry in entries.iter().filter(|e| !legs.contains(e)) {
        let other = requests
            .keys()
            .find(|t| t.legs().contains(entry))
            .map_or_else(
                || "no request sent under this tx_id".to_string(),
                |t| format!("the request {t}"),
            );
        problems.push(format!(
            "{} {:+} is not its leg (it matches {other})",
            entry.0, entry.1
        ));
    }
    problems.join("; ")
}

/// The checks of a tx_id known only from the id sets of [`Reported`].
fn check_by_id(
    tx_id: &str,
    entries: &[(&str, i64)],
    reported: &Reported,
    violations: &mut Vec<String>,
) {
    let committed = reported.committed.contains(tx_id);
    let aborted = reported.aborted.contains(tx_id);
    let unknown = reported.unknown.contains(tx_id);
    let legs = describe_held(entries);
    if committed && aborted {
        violations.push(format!(
            "{tx_id}: answered both committed and aborted; ledgers hold {legs}"
        ));
    }
    if !entries.is_empty() {
        let sum: i64 = entries.iter().map(|(_, d)| d).sum();
        let accounts: BTreeSet<&str> = entries.iter().map(|(a, _)| *a).collect();
        if sum != 0 || entries.len() < 2 || accounts.len() != entries.len() {
            violations.push(format!("{tx_id} is partly applied: {legs}"));
        }
    }
    if aborted && !entries.is_empty() {
        violations.push(format!(
            "{tx_id} was reported aborted but is on a ledger: {legs}"
        ));
    }
    if committed && entries.is_empty() {
        violations.push(format!(
            "{tx_id} was reported committed but is on no ledger"
        ));
    }
    if !committed && !aborted && !unknown && !entries.is_empty() {
        violations.push(format!(
            "{tx_id} is on a ledger but no client started it: {legs}"
        ));
    }
}

fn describe_seen(requests: &Seen) -> String {
    let parts: Vec<String> = requests
        .iter()
        .map(|(transfer, answers)| {
            let answers: Vec<String> = answers
                .iter()
                .map(|(answer, n)| format!("{} ×{n}", answer.label()))
                .collect();
            format!("{transfer} [{}]", answers.join(", "))
        })
        .collect();
    parts.join(", ")
}

fn describe_held(entries: &[(&str, i64)]) -> String {
    if entries.is_empty() {
        return "nothing under it".to_string();
    }
    let parts: Vec<String> = entries
        .iter()
        .map(|(account, delta)| format!("{account} {delta:+}"))
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 100_000;

    /// Books of accounts that all started at `START`, with the given
    /// ledger entries (tx_id, delta) in order; the total is computed.
    fn books(accounts: &[(&str, &[(&str, i64)])]) -> Books {
        let mut books = Books {
            expected_total_cents: START * accounts.len() as i64,
            ..Books::default()
        };
        for (id, entries) in accounts {
            let mut balance = START;
            let ledger = entries
                .iter()
                .map(|(tx_id, delta)| {
                    balance += delta;
                    LedgerEntry {
                        tx_id: tx_id.to_string(),
                        delta_cents: *delta,
                        balance_cents: balance,
                    }
                })
                .collect();
            books.total_cents += balance;
            books.accounts.push(AccountBook {
                id: id.to_string(),
                balance_cents: balance,
                ledger,
            });
        }
        books
    }

    fn sent(tx_id: &str, from: &str, to: &str, amount_cents: i64, answer: Answer) -> Sent {
        Sent {
            tx_id: tx_id.to_string(),
            transfer: Transfer::new(from, to, amount_cents),
            answer,
        }
    }

    fn violations(books: &Books, sent: Vec<Sent>) -> Vec<String> {
        check(
            books,
            &Reported {
                sent,
                ..Reported::default()
            },
        )
        .violations
    }

    /// A re-used id whose first request got no answer and whose second was
    /// committed, with the second's legs on both ledgers: clean. So is a
    /// third request refused as a conflict, and a retry answered the same.
    #[test]
    fn a_reused_id_committed_once_with_its_own_legs_is_clean() {
        let books = books(&[
            ("A1", &[("dup-1", -50_000)]),
            ("B1", &[("dup-1", 50_000)]),
            ("C1", &[]),
        ]);
        let sent = vec![
            sent("dup-1", "A1", "B1", 100, Answer::Unavailable),
            sent("dup-1", "A1", "B1", 50_000, Answer::Unavailable),
            sent("dup-1", "A1", "B1", 50_000, Answer::Committed),
            sent("dup-1", "A1", "B1", 50_000, Answer::Committed),
            sent("dup-1", "C1", "A1", 7, Answer::Conflict),
            sent("dup-1", "A1", "B1", 100, Answer::Conflict),
        ];
        assert_eq!(violations(&books, sent), Vec::<String>::new());
    }

    /// An id answered only 503 and cut is all-or-nothing: both legs of one
    /// of its requests, or nothing.
    #[test]
    fn an_unknown_id_may_hold_both_legs_of_one_request_or_nothing() {
        let sent = || {
            vec![
                sent("u-1", "A1", "B1", 100, Answer::Cut),
                sent("u-1", "B1", "C1", 300, Answer::Unavailable),
            ]
        };
        let none = books(&[("A1", &[]), ("B1", &[]), ("C1", &[])]);
        assert_eq!(violations(&none, sent()), Vec::<String>::new());
        let second = books(&[
            ("A1", &[]),
            ("B1", &[("u-1", -300)]),
            ("C1", &[("u-1", 300)]),
        ]);
        assert_eq!(violations(&second, sent()), Vec::<String>::new());
    }

    /// The broken fixture: a re-used id whose second request is answered
    /// committed while only one ledger has its entry (the credit is
    /// missing, money vanished).
    #[test]
    fn a_committed_reuse_with_one_leg_missing_is_reported() {
        let books = books(&[("A1", &[("dup-1", -50_000)]), ("B1", &[])]);
        let sent = vec![
            sent("dup-1", "A1", "B1", 100, Answer::Unavailable),
            sent("dup-1", "A1", "B1", 50_000, Answer::Committed),
        ];
        let found = violations(&books, sent);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(found[0], "total is 150000 cents, expected 200000");
        assert_eq!(
            found[1],
            "dup-1: answered committed for A1→B1 50000 cents, but the ledgers do not hold its two \
             legs exactly once (its credit of +50000 on B1 is missing); clients saw A1→B1 100 \
             cents [503 ×1], A1→B1 50000 cents [committed ×1]; ledgers hold A1 -50000"
        );
    }

    /// The audit's original bug: `dup-1` committed as $500.00 while A1 was
    /// debited the $1.00 of the first attempt (an entry of the wrong amount).
    #[test]
    fn a_leg_of_the_wrong_amount_is_reported_with_the_request_it_matches() {
        let books = books(&[
            ("A1", &[("dup-1", -100)]),
            ("B1", &[("dup-1", 50_000)]),
            ("C1", &[]),
        ]);
        let sent = vec![
            sent("dup-1", "A1", "B1", 100, Answer::Unavailable),
            sent("dup-1", "A1", "B1", 50_000, Answer::Committed),
        ];
        let found = violations(&books, sent);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(found[0], "total is 349900 cents, expected 300000");
        assert!(
            found[1].starts_with(
                "dup-1: answered committed for A1→B1 50000 cents, but the ledgers do not hold \
                 its two legs exactly once (its debit of -50000 on A1 is missing; A1 -100 is not \
                 its leg (it matches the request A1→B1 100 cents))"
            ),
            "{}",
            found[1]
        );
        assert!(
            found[1].ends_with("ledgers hold A1 -100, B1 +50000"),
            "{}",
            found[1]
        );
    }

    /// The same mixed legs with nobody told committed: they are not both
    /// legs of one request, so they are reported even though every answer
    /// was "unknown".
    #[test]
    fn legs_from_two_requests_under_one_id_are_reported() {
        let books = books(&[("A1", &[("dup-1", -100)]), ("B1", &[("dup-1", 100)])]);
        let sent = vec![
            sent("dup-1", "A1", "B1", 500, Answer::Cut),
            sent("dup-1", "A1", "B1", 50_000, Answer::Unavailable),
        ];
        let found = violations(&books, sent);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("dup-1: the ledger entries are not both legs of any one request"),
            "{}",
            found[0]
        );
    }

    /// Disagreeing answers, and money moved for requests answered aborted
    /// or refused as a conflict, are each reported.
    #[test]
    fn disagreeing_answers_and_moved_money_for_refused_requests_are_reported() {
        let none = books(&[("A1", &[]), ("B1", &[])]);
        let found = violations(
            &none,
            vec![
                sent("d-1", "A1", "B1", 100, Answer::Aborted),
                sent("d-1", "A1", "B1", 100, Answer::Committed),
            ],
        );
        assert!(
            found[0].starts_with("d-1: answered both committed and aborted"),
            "{found:#?}"
        );
        let moved = books(&[("A1", &[("a-1", -100)]), ("B1", &[("a-1", 100)])]);
        let found = violations(&moved, vec![sent("a-1", "A1", "B1", 100, Answer::Aborted)]);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("a-1: answered aborted for A1→B1 100 cents, but its legs"),
            "{found:#?}"
        );
        let found = violations(
            &moved,
            vec![
                sent("a-1", "A1", "B1", 100, Answer::Conflict),
                sent("a-1", "B1", "A1", 5, Answer::Cut),
            ],
        );
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("refused as a 409 conflict"), "{found:#?}");
        let found = violations(&moved, vec![sent("a-1", "A1", "B1", 100, Answer::Conflict)]);
        assert_eq!(found.len(), 1, "{found:#?}");
        let found = violations(&moved, Vec::new());
        assert_eq!(
            found,
            vec!["a-1 is on a ledger but no client started it: A1 -100, B1 +100".to_string()]
        );
    }

    /// A run on a cluster with a past audits its own ids: another run's
    /// transfer on the ledgers is not "started by no client", and the
    /// figures count the run's requests.
    #[test]
    fn a_prefix_limits_the_audit_to_the_runs_own_ids_and_counts_its_outcomes() {
        let books = books(&[
            ("A1", &[("old-1", -700), ("run-1", -100)]),
            ("B1", &[("old-1", 700), ("run-1", 100)]),
        ]);
        let mut reported = Reported {
            sent: vec![
                sent("run-1", "A1", "B1", 100, Answer::Committed),
                sent("run-2", "B1", "A1", 5, Answer::Aborted),
            ],
            ..Reported::default()
        };
        let everything = check(&books, &reported);
        assert_eq!(
            everything.violations,
            vec!["old-1 is on a ledger but no client started it: A1 -700, B1 +700".to_string()]
        );
        reported.tx_id_prefix = Some("run-".to_string());
        let report = check(&books, &reported);
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!((report.committed, report.committed_on_both_ledgers), (1, 1));
        assert_eq!((report.aborted, report.aborted_on_no_ledger), (1, 1));
        // An aborted request whose legs are there anyway is not counted clean.
        let moved = books_with_run_2_moved();
        let report = check(&moved, &reported);
        assert_eq!((report.aborted, report.aborted_on_no_ledger), (1, 0));
        assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
    }

    fn books_with_run_2_moved() -> Books {
        books(&[
            ("A1", &[("run-1", -100), ("run-2", 5)]),
            ("B1", &[("run-1", 100), ("run-2", -5)]),
        ])
    }

    #[test]
    fn answers_are_classified_from_status_and_body() {
        let outcome = |o: &str, id: &str| serde_json::json!({"tx_id": id, "outcome": o});
        let error = serde_json::json!({"error": "tx_id t was already used"});
        assert_eq!(
            Answer::classify("t", 200, &outcome("committed", "t")),
            Answer::Committed
        );
        assert_eq!(
            Answer::classify("t", 409, &outcome("aborted", "t")),
            Answer::Aborted
        );
        assert_eq!(Answer::classify("t", 409, &error), Answer::Conflict);
        assert_eq!(Answer::classify("t", 503, &error), Answer::Unavailable);
        assert_eq!(Answer::classify("t", 0, &Value::Null), Answer::Cut);
        assert_eq!(
            Answer::classify("t", 200, &outcome("committed", "other")),
            Answer::Unexpected(200)
        );
        assert_eq!(Answer::classify("t", 422, &error), Answer::Unexpected(422));
    }
}
