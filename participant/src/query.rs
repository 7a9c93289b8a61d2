//! Read-only answers: `query` requests are answered here from the state
//! machine's accessors, never through its `handle` (a query changes nothing
//! and needs no log record).
//!
//! Every reply must fit in one protocol line (`LINE_BYTES_MAX`), because the
//! coordinator reads lines with the same bound. The lists that can grow
//! without a fixed limit are therefore cut to what fits:
//! - a ledger answers a page: the entries from `offset` that fit (the
//!   coordinator asks for the next page until it has them all);
//! - a status cuts its `in_doubt` and `locked_accounts` lists (oldest kept)
//!   and its `heuristics` list (newest kept);
//! - an `in_doubt` reply (XA recover) is split over several lines.

use serde::Serialize;
use shared::limits::{LINE_BYTES_MAX, QUERY_REPLY_ENVELOPE_BYTES};
use shared::protocol::participant::Participant;
use shared::wire::{NodeStatus, Query, QueryResult, Reply, TxId};

/// What the driver knows about its log, for `status`.
#[derive(Debug, Clone, Copy)]
pub struct LogStats {
    pub forces: u64,
    pub records: u64,
}

pub fn answer(participant: &Participant, now_us: u64, log: LogStats, query: Query) -> QueryResult {
    match query {
        Query::Status => status(participant, now_us, log),
        Query::Ledger { account, offset } => match participant.ledger(&account) {
            Some(entries) => {
                let budget = LINE_BYTES_MAX - QUERY_REPLY_ENVELOPE_BYTES - account.len();
                let total = entries.len();
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(total);
                let page = &entries[start..];
                let take = fitting_head(page, budget);
                QueryResult::Ledger {
                    account,
                    entries: page[..take].to_vec(),
                    offset: start as u64,
                    total: total as u64,
                }
            }
            None => QueryResult::Error {
                message: format!("unknown account {account} on node {}", participant.node()),
            },
        },
    }
}

fn status(participant: &Participant, now_us: u64, log: LogStats) -> QueryResult {
    let mut in_doubt = participant.in_doubt(now_us);
    in_doubt.truncate(fitting_head(&in_doubt, LINE_BYTES_MAX / 4));
    let mut locked_accounts = participant.locked_accounts();
    locked_accounts.truncate(fitting_head(&locked_accounts, LINE_BYTES_MAX / 4));
    // Heuristic decisions are rare and must be seen: keep the newest that fit.
    let mut heuristics = participant.heuristics();
    heuristics.reverse();
    heuristics.truncate(fitting_head(&heuristics, LINE_BYTES_MAX / 4));
    heuristics.reverse();
    let status = NodeStatus {
        node: participant.node().clone(),
        accounts: participant.balances(),
        in_doubt,
        locked_accounts,
        log_forces: log.forces,
        log_records: log.records,
        heuristics,
    };
    let line_bytes = serde_json::to_vec(&status)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if line_bytes > LINE_BYTES_MAX - QUERY_REPLY_ENVELOPE_BYTES {
        let message = format!(
            "status of {} accounts does not fit in one {LINE_BYTES_MAX}-byte line; query ledgers instead",
            status.accounts.len()
        );
        return QueryResult::Error { message };
    }
    QueryResult::Status(status)
}

/// Splits an `in_doubt` reply that would not fit in one line into several.
/// Every other reply is small by construction and passes through.
pub fn fit_line(reply: Reply) -> Vec<Reply> {
    let Reply::InDoubt { tx_ids } = reply else {
        return vec![reply];
    };
    let budget = LINE_BYTES_MAX - QUERY_REPLY_ENVELOPE_BYTES;
    let mut replies = Vec::new();
    let mut rest: &[TxId] = &tx_ids;
    loop {
        let take = fitting_head(rest, budget).max(1).min(rest.len());
        replies.push(Reply::InDoubt {
            tx_ids: rest[..take].to_vec(),
        });
        rest = &rest[take..];
        if rest.is_empty() {
            return replies;
        }
    }
}

/// How many items from the front fit in `budget` bytes of JSON.
fn fitting_head<T: Serialize>(items: &[T], budget: usize) -> usize {
    count_fitting(items.iter(), budget)
}

fn count_fitting<'a, T: Serialize + 'a>(
    items: impl Iterator<Item = &'a T>,
    budget: usize,
) -> usize {
    let mut used = 0usize;
    let mut count = 0usize;
    for item in items {
        // +1 for the separating comma.
        let bytes = serde_json::to_vec(item)
            .map(|v| v.len())
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        used = used.saturating_add(bytes);
        if used > budget {
            break;
        }
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::wire::encode_line;

    #[test]
    fn a_huge_in_doubt_list_is_split_into_lines_that_fit() {
        let tx_ids: Vec<TxId> = (0..20_000).map(|i| format!("transaction-{i:08}")).collect();
        let replies = fit_line(Reply::InDoubt {
            tx_ids: tx_ids.clone(),
        });
        assert!(replies.len() > 1);
        let mut back = Vec::new();
        for reply in replies {
            assert!(encode_line(&reply).len() <= LINE_BYTES_MAX);
            let Reply::InDoubt { tx_ids } = reply else {
                panic!("not in_doubt")
            };
            back.extend(tx_ids);
        }
        assert_eq!(back, tx_ids);
    }

    #[test]
    fn small_replies_pass_through() {
        let reply = Reply::InDoubt {
            tx_ids: vec!["t1".into()],
        };
        assert_eq!(fit_line(reply.clone()), vec![reply]);
    }
}
