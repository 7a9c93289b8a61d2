//! The page's address names what a person is looking at, so it can be
//! shared: `#t=<seq>` a moment of the recorded run (the dashboard opens the
//! timeline there), `tx=<id>` a transaction pinned in the diagram, e.g.
//! `http://127.0.0.1:8000/#t=1234&tx=tx-3-17`. Pure: parsing and writing
//! the fragment.

/// What the address names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moment {
    /// A moment of the recorded run (an event's `seq`); `None`: live.
    pub seq: Option<u64>,
    pub tx_id: Option<String>,
}

/// Characters a fragment value keeps as they are.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':')
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if plain(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Moment {
    /// Reads a fragment (`#t=12&tx=abc`, with or without the `#`); what it
    /// cannot read is ignored.
    pub fn parse(fragment: &str) -> Moment {
        let mut moment = Moment::default();
        let fragment = fragment.strip_prefix('#').unwrap_or(fragment);
        for pair in fragment.split('&') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            match key {
                "t" => moment.seq = value.parse().ok(),
                "tx" => moment.tx_id = decode(value).filter(|t| !t.is_empty()),
                _ => {}
            }
        }
        moment
    }

    /// The fragment, with its `#` (empty when it names nothing).
    pub fn fragment(&self) -> String {
        let mut parts = Vec::new();
        if let Some(seq) = self.seq {
            parts.push(format!("t={seq}"));
        }
        if let Some(tx_id) = &self.tx_id {
            parts.push(format!("tx={}", encode(tx_id)));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("#{}", parts.join("&"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_and_a_transaction_go_through_the_address_and_back() {
        let moment = Moment {
            seq: Some(1_234),
            tx_id: Some("tx-3-17".into()),
        };
        assert_eq!(moment.fragment(), "#t=1234&tx=tx-3-17");
        assert_eq!(Moment::parse(&moment.fragment()), moment);
        let odd = Moment {
            seq: None,
            tx_id: Some("rent #1 & co/é".into()),
        };
        assert_eq!(Moment::parse(&odd.fragment()), odd);
        assert!(!odd.fragment()[1..].contains(['#', '&', ' ']));
    }

    #[test]
    fn what_cannot_be_read_is_ignored() {
        assert_eq!(Moment::parse(""), Moment::default());
        assert_eq!(Moment::default().fragment(), "");
        assert_eq!(
            Moment::parse("#t=abc&tx=%ZZ&other=1&novalue"),
            Moment::default()
        );
        assert_eq!(Moment::parse("t=7").seq, Some(7));
    }
}
