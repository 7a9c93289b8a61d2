//! The messages every transfer sends, read straight from the exact bytes
//! [`encode_line`](super::encode_line) writes for them.
//!
//! A transfer brings each node a `prepare` and a `commit`, and the
//! coordinator a `vote`, an `applied` and an `ack` from each node, so these
//! are decoded on every transfer's path (BENCHMARKS.md has what serde_json
//! cost there). These read the one form our own
//! encoder produces (fields in order, no spaces, ids of plain characters)
//! and nothing else: any other line, valid JSON or not, gets `None`, and
//! the caller decodes it with serde_json as before. So a line read here
//! means exactly what serde_json would have read from it (a test checks
//! that on every form, and on near misses), and bad input gets serde_json's
//! own error.

use super::{Decision, Op, Reply, Request, TxId, Vote};
use crate::limits::WIRE_CANONICAL_ID_BYTES_MAX;

/// A reply in its canonical form: a `ready` vote, `applied`, or `ack`.
pub(super) fn reply(line: &[u8]) -> Option<Reply> {
    let mut c = Cursor(line);
    if c.eat(br#"{"type":"vote","tx_id":""#) {
        let tx_id = c.id()?;
        c.lit(br#","vote":"ready","reason":null}"#)?;
        c.end()?;
        return Some(Reply::Vote {
            tx_id,
            vote: Vote::Ready,
            reason: None,
        });
    }
    if c.eat(br#"{"type":"applied","tx_id":""#) {
        let tx_id = c.id()?;
        c.lit(b"}")?;
        c.end()?;
        return Some(Reply::Applied { tx_id });
    }
    c.lit(br#"{"type":"ack","tx_id":""#)?;
    let tx_id = c.id()?;
    let decision = if c.eat(br#","decision":"commit"}"#) {
        Decision::Commit
    } else {
        c.lit(br#","decision":"abort"}"#)?;
        Decision::Abort
    };
    c.end()?;
    Some(Reply::Ack { tx_id, decision })
}

/// A request in its canonical form: `prepare`, `commit` or `rollback`.
pub(super) fn request(line: &[u8]) -> Option<Request> {
    let mut c = Cursor(line);
    if c.eat(br#"{"type":"prepare","tx_id":""#) {
        let tx_id = c.id()?;
        c.lit(br#","ts_us":"#)?;
        let ts = c.uint()?;
        c.lit(br#","epoch":"#)?;
        let epoch = c.uint()?;
        c.lit(br#","ops":["#)?;
        let mut ops = Vec::new();
        if !c.eat(b"]") {
            loop {
                c.lit(br#"{"account":""#)?;
                let account = c.id()?;
                c.lit(br#","delta_cents":"#)?;
                let delta_cents = c.int()?;
                c.lit(b"}")?;
                ops.push(Op {
                    account,
                    delta_cents,
                });
                if c.eat(b"]") {
                    break;
                }
                c.lit(b",")?;
            }
        }
        c.lit(b"}")?;
        c.end()?;
        return Some(Request::Prepare {
            tx_id,
            ts_us: ts,
            epoch,
            ops,
        });
    }
    let commit = c.eat(br#"{"type":"commit","tx_id":""#);
    if !commit {
        c.lit(br#"{"type":"rollback","tx_id":""#)?;
    }
    let tx_id = c.id()?;
    c.lit(b"}")?;
    c.end()?;
    Some(match commit {
        true => Request::Commit { tx_id },
        false => Request::Rollback { tx_id },
    })
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    /// Skips `s` if the rest starts with it.
    fn eat(&mut self, s: &[u8]) -> bool {
        match self.0.strip_prefix(s) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    fn lit(&mut self, s: &[u8]) -> Option<()> {
        self.eat(s).then_some(())
    }

    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }

    /// A string's characters and its closing quote: letters, digits and
    /// `-_.:` only (what a JSON string holds as it is, no escapes), not
    /// empty.
    fn id(&mut self) -> Option<TxId> {
        let len = self.0.iter().position(|&b| b == b'"')?;
        let (id, rest) = self.0.split_at(len);
        let plain = |b: &u8| b.is_ascii_alphanumeric() || b"-_.:".contains(b);
        if id.is_empty() || id.len() > WIRE_CANONICAL_ID_BYTES_MAX || !id.iter().all(plain) {
            return None;
        }
        self.0 = &rest[1..];
        // Plain ASCII, so always UTF-8.
        std::str::from_utf8(id).ok().map(str::to_string)
    }

    /// Digits as serde_json writes a number: no sign, no leading zero.
    fn digits(&mut self) -> Option<&[u8]> {
        let len = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = self.0.split_at(len);
        if digits.is_empty() || (digits[0] == b'0' && len > 1) {
            return None;
        }
        self.0 = rest;
        Some(digits)
    }

    fn uint(&mut self) -> Option<u64> {
        std::str::from_utf8(self.digits()?).ok()?.parse().ok()
    }

    /// An integer as serde_json writes it (`-0` is left to serde_json).
    fn int(&mut self) -> Option<i64> {
        let negative = self.eat(b"-");
        let magnitude: u64 = std::str::from_utf8(self.digits()?).ok()?.parse().ok()?;
        match negative {
            true if magnitude == 0 => None,
            true => 0i64.checked_sub_unsigned(magnitude),
            false => i64::try_from(magnitude).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode_line, encode_line, AbortReason};
    use super::*;

    fn op(account: &str, delta_cents: i64) -> Op {
        Op {
            account: account.into(),
            delta_cents,
        }
    }

    fn line_of<T: serde::Serialize>(msg: &T) -> Vec<u8> {
        let mut line = encode_line(msg);
        line.pop(); // the newline
        line
    }

    fn hot_requests() -> Vec<Request> {
        let mut requests = Vec::new();
        for tx_id in ["t1", "tx-1764880000123456", "Client_id.7:x", "9"] {
            for ops in [
                vec![],
                vec![op("A", -250)],
                vec![op("acct-0001", 1), op("B.2", 0), op("c:3", i64::MIN)],
                vec![op("Z", i64::MAX)],
            ] {
                for (ts, epoch) in [(0, 1), (7, 0), (u64::MAX, u64::MAX)] {
                    requests.push(Request::Prepare {
                        tx_id: tx_id.into(),
                        ts_us: ts,
                        epoch,
                        ops: ops.clone(),
                    });
                }
            }
            requests.push(Request::Commit {
                tx_id: tx_id.into(),
            });
            requests.push(Request::Rollback {
                tx_id: tx_id.into(),
            });
        }
        requests
    }

    fn hot_replies() -> Vec<Reply> {
        let mut replies = Vec::new();
        for tx_id in ["t1", "tx-1764880000123456", "Client_id.7:x"] {
            let tx_id = || TxId::from(tx_id);
            replies.push(Reply::Vote {
                tx_id: tx_id(),
                vote: Vote::Ready,
                reason: None,
            });
            replies.push(Reply::Applied { tx_id: tx_id() });
            replies.push(Reply::Ack {
                tx_id: tx_id(),
                decision: Decision::Commit,
            });
            replies.push(Reply::Ack {
                tx_id: tx_id(),
                decision: Decision::Abort,
            });
        }
        replies
    }

    #[test]
    fn every_hot_message_is_read_from_its_own_encoding() {
        for msg in hot_requests() {
            assert_eq!(request(&line_of(&msg)).as_ref(), Some(&msg));
        }
        for msg in hot_replies() {
            assert_eq!(reply(&line_of(&msg)).as_ref(), Some(&msg));
        }
    }

    /// Lines near the canonical forms: whatever is read here must be what
    /// serde_json reads; everything else is left to it.
    #[test]
    fn what_is_read_here_is_what_serde_json_reads_and_the_rest_is_left_to_it() {
        let mut requests: Vec<Vec<u8>> = hot_requests().iter().map(line_of).collect();
        let mut replies: Vec<Vec<u8>> = hot_replies().iter().map(line_of).collect();
        replies.push(line_of(&Reply::Vote {
            tx_id: "t1".into(),
            vote: Vote::Abort,
            reason: Some(AbortReason::LockConflict),
        }));
        requests.push(line_of(&Request::CommitOnePhase {
            tx_id: "t1".into(),
            ts_us: 1,
            epoch: 1,
            ops: vec![op("A", 1)],
        }));
        for extra in [
            br#"{"type":"commit","tx_id":"t\u0031"}"#.to_vec(),
            br#"{"type":"commit","tx_id":"a b"}"#.to_vec(),
            br#"{"type":"commit","tx_id":""}"#.to_vec(),
            br#"{"type":"commit", "tx_id":"t1"}"#.to_vec(),
            br#"{"tx_id":"t1","type":"commit"}"#.to_vec(),
            br#"{"type":"commit","tx_id":"t1","tx_id":"t2"}"#.to_vec(),
            br#"{"type":"commit","tx_id":"t1","extra":1}"#.to_vec(),
            br#"{"type":"commit","tx_id":"t1"}x"#.to_vec(),
            br#"{"type":"commit","tx_id":"t1""#.to_vec(),
            br#"{"type":"prepare","tx_id":"t1","ts_us":07,"epoch":1,"ops":[]}"#.to_vec(),
            br#"{"type":"prepare","tx_id":"t1","ts_us":-1,"epoch":1,"ops":[]}"#.to_vec(),
            br#"{"type":"prepare","tx_id":"t1","ts_us":1,"epoch":01,"ops":[]}"#.to_vec(),
            br#"{"type":"prepare","tx_id":"t1","ts_us":1,"ops":[]}"#.to_vec(),
            br#"{"type":"prepare","tx_id":"t1","ts_us":18446744073709551616,"epoch":1,"ops":[]}"#.to_vec(),
            br#"{"type":"prepare","tx_id":"t1","ts_us":1,"epoch":1,"ops":[{"account":"A","delta_cents":-0}]}"#
                .to_vec(),
            br#"{"type":"prepare","tx_id":"t1","ts_us":1,"epoch":1,"ops":[{"account":"A","delta_cents":1.5}]}"#
                .to_vec(),
            br#"{"type":"prepare","tx_id":"t1","ts_us":1,"epoch":1,"ops":[{"account":"A","delta_cents":-9223372036854775809}]}"#
                .to_vec(),
            br#"{"type":"prepare","tx_id":"t1","ts_us":1,"epoch":1,"ops":[{"account":"A","delta_cents":1},]}"#
                .to_vec(),
            br#"{"type":"prepare","tx_id":"t1","ts_us":1,"epoch":1,"ops":[{"delta_cents":1,"account":"A"}]}"#
                .to_vec(),
        ] {
            requests.push(extra.clone());
            replies.push(extra);
        }
        for extra in [
            br#"{"type":"applied","tx_id":"t1","decision":"commit"}"#.to_vec(),
            br#"{"type":"ack","tx_id":"t1","decision":"maybe"}"#.to_vec(),
            br#"{"type":"ack","tx_id":"t1"}"#.to_vec(),
            br#"{"type":"vote","tx_id":"t1","vote":"ready"}"#.to_vec(),
            br#"{"type":"vote","tx_id":"t1","vote":"ready","reason":null} "#.to_vec(),
        ] {
            replies.push(extra);
        }
        // Every line also cut short at each byte.
        let cut = |lines: &[Vec<u8>]| -> Vec<Vec<u8>> {
            lines
                .iter()
                .flat_map(|l| (0..l.len()).map(move |n| l[..n].to_vec()))
                .collect()
        };
        requests.extend(cut(&requests));
        replies.extend(cut(&replies));
        let mut read_here = 0;
        for line in &requests {
            if let Some(msg) = request(line) {
                read_here += 1;
                let full = decode_line::<Request>(line)
                    .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(line)));
                assert_eq!(msg, full, "{}", String::from_utf8_lossy(line));
            }
        }
        for line in &replies {
            if let Some(msg) = reply(line) {
                read_here += 1;
                let full = decode_line::<Reply>(line)
                    .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(line)));
                assert_eq!(msg, full, "{}", String::from_utf8_lossy(line));
            }
        }
        // The canonical lines, and the one a cut makes canonical again (the
        // `}x` lines without their `x`).
        assert_eq!(read_here, hot_requests().len() + hot_replies().len() + 2);
    }
}
