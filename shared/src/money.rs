//! Money is integer cents (`i64`), never floating point.

use crate::limits::AMOUNT_CENTS_MAX;

/// Formats cents as dollars with thousands separators: `123456` → `$1,234.56`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let dollars = abs / 100;
    let rest = abs % 100;
    let digits = dollars.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{sign}${grouped}.{rest:02}")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("the amount is empty: enter dollars like 12.50")]
    Empty,
    #[error("'{0}' is not an amount: use dollars with at most two decimals, like 12.50")]
    NotANumber(String),
    #[error("the amount must be more than $0.00")]
    NotPositive,
    #[error("the amount must be at most {}", format_cents(AMOUNT_CENTS_MAX))]
    TooLarge,
}

/// Parses a dollar amount typed by a person (`"12"`, `"12.5"`, `"$1,012.50"`)
/// into cents, checking it is positive and at most [`AMOUNT_CENTS_MAX`].
pub fn parse_dollars(text: &str) -> Result<i64, AmountError> {
    let cleaned: String = text
        .trim()
        .trim_start_matches('$')
        .chars()
        .filter(|c| *c != ',' && *c != '_')
        .collect();
    if cleaned.is_empty() {
        return Err(AmountError::Empty);
    }
    let bad = || AmountError::NotANumber(text.trim().to_string());
    let (whole, frac) = match cleaned.split_once('.') {
        Some((w, f)) => (w, f),
        None => (cleaned.as_str(), ""),
    };
    if cleaned.starts_with('-') {
        return Err(AmountError::NotPositive);
    }
    let digits_only = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits_only(whole)
        || !digits_only(frac)
        || frac.len() > 2
        || (whole.is_empty() && frac.is_empty())
    {
        return Err(bad());
    }
    if whole.len() > 12 {
        return Err(AmountError::TooLarge);
    }
    let whole_cents: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse::<i64>().map_err(|_| bad())? * 100
    };
    let frac_cents: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().map_err(|_| bad())? * 10,
        _ => frac.parse::<i64>().map_err(|_| bad())?,
    };
    let cents = whole_cents + frac_cents;
    if cents <= 0 {
        return Err(AmountError::NotPositive);
    }
    if cents > AMOUNT_CENTS_MAX {
        return Err(AmountError::TooLarge);
    }
    Ok(cents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_separators_and_sign() {
        assert_eq!(format_cents(0), "$0.00");
        assert_eq!(format_cents(5), "$0.05");
        assert_eq!(format_cents(200_000), "$2,000.00");
        assert_eq!(format_cents(123_456_789), "$1,234,567.89");
        assert_eq!(format_cents(-1050), "-$10.50");
    }

    #[test]
    fn parses_what_people_type() {
        assert_eq!(parse_dollars("12"), Ok(1200));
        assert_eq!(parse_dollars("12.5"), Ok(1250));
        assert_eq!(parse_dollars(" $1,012.05 "), Ok(101_205));
        assert_eq!(parse_dollars(".5"), Ok(50));
        assert_eq!(parse_dollars(""), Err(AmountError::Empty));
        assert_eq!(parse_dollars("0"), Err(AmountError::NotPositive));
        assert_eq!(parse_dollars("-3"), Err(AmountError::NotPositive));
        assert!(matches!(
            parse_dollars("1.234"),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            parse_dollars("abc"),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            parse_dollars("1e5"),
            Err(AmountError::NotANumber(_))
        ));
        assert_eq!(parse_dollars("1000000.01"), Err(AmountError::TooLarge));
        assert_eq!(
            parse_dollars("99999999999999999999"),
            Err(AmountError::TooLarge)
        );
    }
}
