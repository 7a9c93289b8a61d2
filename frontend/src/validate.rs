//! The transfer form's validation: the same rules the server applies, so a
//! person sees the problem before anything is sent. The server checks again.

use std::fmt;

use shared::api::TransferRequest;
use shared::money::{parse_dollars, AmountError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    MissingFrom,
    MissingTo,
    SameAccount,
    Amount(AmountError),
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormError::MissingFrom => f.write_str("choose the account to take the money from"),
            FormError::MissingTo => f.write_str("choose the account to send the money to"),
            FormError::SameAccount => f.write_str("pick two different accounts"),
            FormError::Amount(e) => write!(f, "{e}"),
        }
    }
}

/// Builds the request from what the form holds. `tx_id` is the client's
/// own id, so that a retry after a 503 can never transfer twice.
pub fn transfer_request(
    from: &str,
    to: &str,
    amount: &str,
    tx_id: Option<String>,
) -> Result<TransferRequest, FormError> {
    let (from, to) = (from.trim(), to.trim());
    if from.is_empty() {
        return Err(FormError::MissingFrom);
    }
    if to.is_empty() {
        return Err(FormError::MissingTo);
    }
    if from == to {
        return Err(FormError::SameAccount);
    }
    let amount_cents = parse_dollars(amount).map_err(FormError::Amount)?;
    Ok(TransferRequest {
        from: from.to_string(),
        to: to.to_string(),
        amount_cents,
        tx_id,
    })
}

/// A client transaction id (`web-` + time + randomness, only `[a-z0-9-]`).
/// `random` returns values in `[0, 1)`.
pub fn client_tx_id(now_ms: u64, random: &mut impl FnMut() -> f64) -> String {
    const RANDOM_DIGITS: usize = 8;
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let suffix: String = (0..RANDOM_DIGITS)
        .map(|_| {
            alphabet[((random() * alphabet.len() as f64) as usize).min(alphabet.len() - 1)] as char
        })
        .collect();
    format!("web-{}-{suffix}", to_base36(now_ms))
}

fn to_base36(mut n: u64) -> String {
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut digits = Vec::new();
    loop {
        digits.push(alphabet[(n % 36) as usize] as char);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_form_becomes_a_request() {
        let req = transfer_request("A", "B", "$12.50", Some("web-1".into())).unwrap();
        assert_eq!(
            req,
            TransferRequest {
                from: "A".into(),
                to: "B".into(),
                amount_cents: 1_250,
                tx_id: Some("web-1".into())
            }
        );
    }

    #[test]
    fn each_mistake_gets_its_own_message() {
        assert_eq!(
            transfer_request("", "B", "1", None),
            Err(FormError::MissingFrom)
        );
        assert_eq!(
            transfer_request("A", " ", "1", None),
            Err(FormError::MissingTo)
        );
        assert_eq!(
            transfer_request("A", "A", "1", None),
            Err(FormError::SameAccount)
        );
        assert_eq!(
            transfer_request("A", "B", "0", None),
            Err(FormError::Amount(AmountError::NotPositive))
        );
        assert_eq!(
            transfer_request("A", "B", "", None),
            Err(FormError::Amount(AmountError::Empty))
        );
        let err = transfer_request("A", "B", "1.234", None).unwrap_err();
        assert!(err.to_string().contains("at most two decimals"), "{err}");
        assert_eq!(
            FormError::SameAccount.to_string(),
            "pick two different accounts"
        );
    }

    #[test]
    fn client_ids_are_url_safe_and_distinct() {
        let mut n = 0.0;
        let mut random = || {
            n = (n + 0.137) % 1.0;
            n
        };
        let a = client_tx_id(1_700_000_000_000, &mut random);
        let b = client_tx_id(1_700_000_000_000, &mut random);
        assert_ne!(a, b);
        assert!(a.starts_with("web-"));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{a}"
        );
        assert_eq!(to_base36(0), "0");
        assert_eq!(to_base36(36), "10");
    }
}
