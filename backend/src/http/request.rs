//! What several handlers check before they act: a JSON body parsed with an
//! error that says what is expected, path and query parameters read with
//! JSON errors, demo mode, a known node.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Number, Value};

use super::error::ApiError;
use crate::app::App;

/// Parses a JSON body, with errors that say what was wrong and what is
/// expected. Every request body is a JSON object: an array (which serde
/// would read field by field) is refused. A number with a zero fraction
/// (`14587.0`) is the integer it equals, as JSON Schema says.
pub fn parse_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    example: &str,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        ApiError::new(
            e.status(),
            format!("cannot read the request body: {}", e.body_text()),
        )
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!(
            "the request has no body: send JSON with Content-Type: application/json, e.g. {example}"
        )));
    }
    let invalid = |e: serde_json::Error| {
        ApiError::bad_request(format!("invalid JSON body: {e}; expected {example}"))
    };
    let mut value: Value = serde_json::from_slice(&bytes).map_err(invalid)?;
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body must be a JSON object (got {}); expected {example}",
            json_kind(&value)
        )));
    }
    // Straight from the bytes first: that also refuses duplicate fields.
    let direct = serde_json::from_slice(&bytes);
    if direct.is_ok() || !whole_numbers_as_integers(&mut value) {
        return direct.map_err(invalid);
    }
    serde_json::from_value(value).map_err(invalid)
}

/// Parses an optional JSON body: none at all, or `null`, is `T::default()`.
pub fn parse_optional_body<T: DeserializeOwned + Default>(
    body: Result<Bytes, BytesRejection>,
    example: &str,
) -> Result<T, ApiError> {
    let absent = body.as_ref().is_ok_and(|b| {
        let text = b.trim_ascii();
        text.is_empty() || text == b"null"
    });
    if absent {
        return Ok(T::default());
    }
    parse_body(body, example)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Rewrites every number with a zero fraction (`5.0`, `1e3`) that fits an
/// integer as that integer; says whether it changed anything.
fn whole_numbers_as_integers(value: &mut Value) -> bool {
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64().and_then(integer_of) {
            Some(integer) => {
                *n = integer;
                true
            }
            None => false,
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| whole_numbers_as_integers(v) | changed),
        Value::Object(fields) => fields
            .values_mut()
            .fold(false, |changed, v| whole_numbers_as_integers(v) | changed),
        _ => false,
    }
}

/// 2^64 and -2^63, exactly representable as f64.
const U64_END: f64 = 18_446_744_073_709_551_616.0;
const I64_MIN: f64 = -9_223_372_036_854_775_808.0;

fn integer_of(f: f64) -> Option<Number> {
    if !f.is_finite() || f.fract() != 0.0 {
        return None;
    }
    if (0.0..U64_END).contains(&f) {
        Some(Number::from(f as u64))
    } else if (I64_MIN..0.0).contains(&f) {
        Some(Number::from(f as i64))
    } else {
        None
    }
}

/// A non-negative whole number from a query parameter: `42`, and also
/// `42.0` or `4.2e1` (a number with a zero fraction is that integer).
pub fn whole_number(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    let f = text.parse::<f64>().ok()?;
    match integer_of(f)? {
        n if n.is_u64() => n.as_u64(),
        _ => None,
    }
}

/// The path's parameter; one that cannot be read (bad percent-encoding,
/// not the expected type) names nothing here: a JSON 404.
pub struct IdPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for IdPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| IdPath(value))
            .map_err(|e| ApiError::not_found(format!("no such resource: {}", e.body_text())))
    }
}

/// The URL's query parameters by name; a query that cannot be read is a
/// JSON 400.
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(params)| QueryParams(params))
            .map_err(|e| ApiError::bad_request(format!("cannot read the query: {}", e.body_text())))
    }
}

pub fn require_demo(app: &App) -> Result<(), ApiError> {
    if app.demo_mode() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "fault injection is only allowed in demo mode; start the coordinator with --demo",
        ))
    }
}

pub fn require_node(app: &App, id: &str) -> Result<(), ApiError> {
    if app.supervisor.node_ids().iter().any(|n| n == id) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no node '{id}'; the nodes are {}",
            app.supervisor.node_ids().join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Example {
        n: u64,
        #[serde(default)]
        p: Option<f64>,
    }

    fn parse(text: &str) -> Result<Example, ApiError> {
        parse_body(Ok(Bytes::from(text.to_string())), "{\"n\": 1}")
    }

    #[test]
    fn a_whole_number_written_with_a_fraction_is_that_integer() {
        assert_eq!(parse(r#"{"n": 14587.0}"#).unwrap().n, 14587);
        assert_eq!(parse(r#"{"n": 1e3}"#).unwrap().n, 1000);
        assert_eq!(parse(r#"{"n": 3, "p": 1.0}"#).unwrap().p, Some(1.0));
        assert_eq!(parse(r#"{"n": 3, "p": 0.25}"#).unwrap().p, Some(0.25));
    }

    #[test]
    fn fractions_negatives_arrays_and_duplicates_are_refused() {
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": 1e30}"#,
            r#"[1]"#,
            r#"[null, null]"#,
            r#""n""#,
            r#"{"n": 1, "n": 2}"#,
            r#"{"n": 1, "x": 1}"#,
            "",
        ] {
            let error = parse(bad).expect_err(bad);
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        let array = parse("[null, null]").unwrap_err();
        assert!(
            array.message.contains("must be a JSON object"),
            "{}",
            array.message
        );
    }

    #[test]
    fn an_optional_body_may_be_absent_or_null() {
        #[derive(Debug, Default, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Optional {
            #[serde(default)]
            phase: bool,
        }
        let parse =
            |text: &str| parse_optional_body::<Optional>(Ok(Bytes::from(text.to_string())), "{}");
        assert_eq!(parse("").unwrap(), Optional::default());
        assert_eq!(parse(" null ").unwrap(), Optional::default());
        assert!(parse(r#"{"phase": true}"#).unwrap().phase);
        for bad in ["[]", "[null]", "0", r#"{"x": 1}"#] {
            assert_eq!(
                parse(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }

    #[test]
    fn whole_numbers_from_a_query() {
        assert_eq!(whole_number("5"), Some(5));
        assert_eq!(whole_number("5.0"), Some(5));
        assert_eq!(whole_number("5e2"), Some(500));
        for bad in ["5.5", "-1", "-1.0", "x", "", "inf", "NaN", "1e30"] {
            assert_eq!(whole_number(bad), None, "{bad}");
        }
    }
}
