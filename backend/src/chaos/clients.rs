//! The chaos clients: each sends transfers until told to stop, following
//! every answer as the [`ClientMix`] says (the same request again, another
//! transfer under the same tx_id, or a new pick), and records every request
//! with its answer for the audit.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::audit::{Answer, Sent, Transfer};
use super::{ClientMix, Counts, SendCounts, Target};

/// Why a request was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fresh,
    /// The same tx_id and body as a request sent before.
    Retry,
    /// A tx_id sent before, with a different body.
    Reuse,
    /// The same request again once the cluster has settled after the run.
    Settle,
}

/// A request to send: why, and after which answer to its tx_id (if it
/// follows one).
struct Next {
    kind: Kind,
    after: Option<Answer>,
    tx_id: String,
    transfer: Transfer,
}

#[derive(Default)]
pub(super) struct Tally {
    pub sent: Vec<Sent>,
    pub fresh: u64,
    pub retries: SendCounts,
    pub reuses: SendCounts,
    pub settle: SendCounts,
    pub aborts_by_reason: BTreeMap<String, u64>,
}

/// What every client may pick an old tx_id from.
#[derive(Default)]
pub(super) struct History {
    /// Every request sent with a new tx_id or as a re-use.
    all: Vec<(String, Transfer)>,
    /// The latest requests answered 503 or cut after they were sent.
    unknown: VecDeque<(String, Transfer)>,
}

/// Unanswered requests kept for storms.
const UNKNOWN_KEPT: usize = 512;
/// Follow-ups of one tx_id in a row, at most (a coordinator that stays down
/// must not keep a client on one id for the whole run).
const FOLLOW_UPS_MAX: u32 = 100;
/// Largest amount a chaos transfer moves.
const AMOUNT_CENTS_MAX: i64 = 20_000;

/// State the clients share.
pub(super) struct Clients {
    pub mix: ClientMix,
    pub accounts: Vec<String>,
    pub history: Mutex<History>,
    pub tally: Mutex<Tally>,
    pub started: Instant,
    /// When a client last saw a 503 or a cut, in ms since `started` (plus
    /// one; 0: never).
    pub outage_at_ms: AtomicU64,
    pub sequence: AtomicU64,
    /// What every fresh tx_id starts with.
    pub tx_id_prefix: String,
}

impl Clients {
    /// Requests sent so far, by answer.
    pub fn counts(&self) -> Counts {
        let t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let count = |answer: Answer| t.sent.iter().filter(|s| s.answer == answer).count() as u64;
        Counts {
            requests: t.sent.len() as u64,
            committed: count(Answer::Committed),
            aborted: count(Answer::Aborted),
            unknown: count(Answer::Unavailable) + count(Answer::Cut),
        }
    }

    fn in_storm(&self) -> bool {
        let at = self.outage_at_ms.load(Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64 + 1;
        at > 0 && now.saturating_sub(at) < self.mix.storm_ms
    }

    fn random_transfer(&self, rng: &mut StdRng) -> Transfer {
        let (from, to) = random_pair(rng, self.accounts.len());
        Transfer::new(
            &self.accounts[from],
            &self.accounts[to],
            rng.random_range(1..=AMOUNT_CENTS_MAX),
        )
    }

    /// A transfer that differs from `old`: in amount, accounts or both.
    fn other_transfer(&self, rng: &mut StdRng, old: &Transfer) -> Transfer {
        loop {
            let mut new = old.clone();
            let change = rng.random_range(0..3);
            if change != 1 {
                new.amount_cents = rng.random_range(1..=AMOUNT_CENTS_MAX);
            }
            if change != 0 {
                let (from, to) = random_pair(rng, self.accounts.len());
                new.from = self.accounts[from].clone();
                new.to = self.accounts[to].clone();
            }
            if &new != old {
                return new;
            }
        }
    }

    /// The next request when none follows from the last answer: usually a
    /// fresh tx_id; sometimes an old one, mostly unanswered ones in a storm.
    fn pick(&self, rng: &mut StdRng, client: usize) -> Next {
        let storm = self.in_storm();
        let percent = if storm {
            self.mix.storm_percent
        } else {
            self.mix.old_id_percent
        };
        if rng.random_range(0..100) < percent {
            let old = {
                let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
                if storm && !h.unknown.is_empty() {
                    h.unknown.get(rng.random_range(0..h.unknown.len())).cloned()
                } else if h.all.is_empty() {
                    None
                } else if rng.random_bool(0.5) {
                    // Recent ones: likelier still in flight somewhere.
                    let recent = h.all.len().saturating_sub(200);
                    h.all.get(rng.random_range(recent..h.all.len())).cloned()
                } else {
                    h.all.get(rng.random_range(0..h.all.len())).cloned()
                }
            };
            if let Some((tx_id, transfer)) = old {
                return if rng.random_bool(0.5) {
                    Next {
                        kind: Kind::Retry,
                        after: None,
                        tx_id,
                        transfer,
                    }
                } else {
                    let transfer = self.other_transfer(rng, &transfer);
                    Next {
                        kind: Kind::Reuse,
                        after: None,
                        tx_id,
                        transfer,
                    }
                };
            }
        }
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        Next {
            kind: Kind::Fresh,
            after: None,
            tx_id: format!("{}{client}-{n}", self.tx_id_prefix),
            transfer: self.random_transfer(rng),
        }
    }

    /// What follows `answer` to `sent`: the same request, the same tx_id
    /// with another transfer, or nothing (a new pick).
    fn follow_up(&self, rng: &mut StdRng, sent: &Next, answer: Answer) -> Option<Next> {
        let (retry, reuse) = if answer.is_unknown() {
            (
                self.mix.retry_unknown_percent,
                self.mix.reuse_unknown_percent,
            )
        } else {
            (self.mix.retry_percent, self.mix.reuse_percent)
        };
        let roll = rng.random_range(0..100);
        if roll < retry {
            Some(Next {
                kind: Kind::Retry,
                after: Some(answer),
                tx_id: sent.tx_id.clone(),
                transfer: sent.transfer.clone(),
            })
        } else if roll < retry + reuse {
            Some(Next {
                kind: Kind::Reuse,
                after: Some(answer),
                tx_id: sent.tx_id.clone(),
                transfer: self.other_transfer(rng, &sent.transfer),
            })
        } else {
            None
        }
    }

    fn record(&self, next: &Next, answer: Answer, reply: &Reply) {
        if answer.is_unknown() {
            let at = self.started.elapsed().as_millis() as u64 + 1;
            self.outage_at_ms.fetch_max(at, Ordering::Relaxed);
        }
        {
            let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
            if next.kind != Kind::Retry {
                h.all.push((next.tx_id.clone(), next.transfer.clone()));
            }
            // Storms re-send requests the coordinator may have started; one
            // refused at connect never reached it.
            if answer.is_unknown() && reply.reached {
                if h.unknown.len() >= UNKNOWN_KEPT {
                    h.unknown.pop_front();
                }
                h.unknown
                    .push_back((next.tx_id.clone(), next.transfer.clone()));
            }
        }
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let counts = match next.kind {
            Kind::Fresh => {
                t.fresh += 1;
                None
            }
            Kind::Retry => Some(&mut t.retries),
            Kind::Reuse => Some(&mut t.reuses),
            Kind::Settle => Some(&mut t.settle),
        };
        if let Some(counts) = counts {
            counts.sent += 1;
            let after = next
                .after
                .map_or("nothing (an old id)".to_string(), Answer::label);
            *counts.after.entry(after).or_default() += 1;
            *counts.answered.entry(answer.label()).or_default() += 1;
        }
        if answer == Answer::Aborted && matches!(next.kind, Kind::Fresh | Kind::Reuse) {
            let reason = reply.body["reason"].as_str().unwrap_or("none").to_string();
            *t.aborts_by_reason.entry(reason).or_default() += 1;
        }
        t.sent.push(Sent {
            tx_id: next.tx_id.clone(),
            transfer: next.transfer.clone(),
            answer,
        });
    }
}

/// Two different indexes below `n` (n >= 2).
fn random_pair(rng: &mut StdRng, n: usize) -> (usize, usize) {
    let from = rng.random_range(0..n);
    let mut to = rng.random_range(0..n - 1);
    if to >= from {
        to += 1;
    }
    (from, to)
}

/// An answer to a transfer request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// 0 if no answer came.
    pub status: u16,
    pub body: Value,
    /// False if the request never reached the coordinator (a refused
    /// connection).
    pub reached: bool,
}

/// One chaos client: sends until `stop`, following each answer as the mix says.
pub(super) async fn client_loop<T: Target>(
    clients: Arc<Clients>,
    target: Arc<T>,
    stop: Arc<AtomicBool>,
    client: usize,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next: Option<Next> = None;
    let mut follow_ups = 0;
    while !stop.load(Ordering::Relaxed) {
        let request = match next.take() {
            Some(n) => n,
            None => {
                follow_ups = 0;
                clients.pick(&mut rng, client)
            }
        };
        let reply = target.transfer(&request.tx_id, &request.transfer).await;
        let answer = Answer::classify(&request.tx_id, reply.status, &reply.body);
        clients.record(&request, answer, &reply);
        follow_ups += 1;
        if follow_ups < FOLLOW_UPS_MAX {
            next = clients.follow_up(&mut rng, &request, answer);
        }
        if answer.is_unknown() {
            // The coordinator is down or restarting: poll briefly, so that
            // a retry lands as soon as it is back.
            tokio::time::sleep(Duration::from_millis(rng.random_range(10..50))).await;
        } else if answer == Answer::Aborted && reply.body["reason"] == "node_unreachable" {
            // A node is down: its restart is on the way; don't spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Answered requests sent again after the run, at most.
const SETTLE_SAMPLE: usize = 500;

/// Once the cluster has settled after the run: every request never told an
/// outcome is sent again, as its client would to learn it, and so is a
/// sample of answered ones; the audit then checks the answers agree.
pub(super) async fn final_retries<T: Target>(target: &T, clients: &Clients, seed: u64) {
    let (unknown, answered) = {
        let t = clients.tally.lock().unwrap_or_else(|e| e.into_inner());
        let mut told: BTreeMap<(&str, &Transfer), Answer> = BTreeMap::new();
        for s in &t.sent {
            let kept = told.entry((&s.tx_id, &s.transfer)).or_insert(s.answer);
            if kept.is_unknown() {
                *kept = s.answer;
            }
        }
        let (unknown, answered): (Vec<_>, Vec<_>) = told
            .into_iter()
            .map(|((tx_id, transfer), answer)| (tx_id.to_string(), transfer.clone(), answer))
            .partition(|(_, _, answer)| answer.is_unknown());
        (unknown, answered)
    };
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(1));
    let sample =
        rand::seq::index::sample(&mut rng, answered.len(), SETTLE_SAMPLE.min(answered.len()));
    let again = unknown
        .into_iter()
        .chain(sample.into_iter().map(|i| answered[i].clone()));
    for (tx_id, transfer, answer) in again {
        let reply = target.transfer(&tx_id, &transfer).await;
        let request = Next {
            kind: Kind::Settle,
            after: Some(answer),
            tx_id,
            transfer,
        };
        let answer = Answer::classify(&request.tx_id, reply.status, &reply.body);
        clients.record(&request, answer, &reply);
    }
}

/// Distinct requests (tx_id and body) by what their clients were told.
#[derive(Default)]
pub(super) struct RequestCounts {
    pub committed: u64,
    pub aborted: u64,
    pub conflicts: u64,
    pub unknown: u64,
}

pub(super) fn requests_by_answer(sent: &[Sent]) -> RequestCounts {
    let mut told: BTreeMap<(&str, &Transfer), Vec<Answer>> = BTreeMap::new();
    for s in sent {
        told.entry((&s.tx_id, &s.transfer))
            .or_default()
            .push(s.answer);
    }
    let mut counts = RequestCounts::default();
    for answers in told.values() {
        if answers.contains(&Answer::Committed) {
            counts.committed += 1;
        } else if answers.contains(&Answer::Aborted) {
            counts.aborted += 1;
        } else if answers.contains(&Answer::Conflict) {
            counts.conflicts += 1;
        } else {
            counts.unknown += 1;
        }
    }
    counts
}
