//! The API token: read from a file (`--api-token-file` for the coordinator,
//! `--token-file` for the `tpc` CLI, which includes this file), checked, and
//! compared in constant time.
//!
//! The token travels as `Authorization: Bearer <token>`, so it must be
//! visible ASCII without spaces; whitespace around it in the file is
//! trimmed (a trailing newline is what `echo` and editors write).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use shared::limits::{API_TOKEN_CHARS_MIN, API_TOKEN_FILE_BYTES_MAX};

/// How to make a good token, for the error sentences.
const HOW_TO_MAKE_ONE: &str = "write one to the file, e.g. `openssl rand -hex 32 > FILE`";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the API token file {path}: {cause}; {HOW_TO_MAKE_ONE}")]
    Unreadable { path: PathBuf, cause: String },
    #[error("the API token file {path} is larger than {API_TOKEN_FILE_BYTES_MAX} bytes; it must hold the token alone")]
    TooLarge { path: PathBuf },
    #[error("the API token file {path} is empty; {HOW_TO_MAKE_ONE}")]
    Empty { path: PathBuf },
    #[error("the API token in {path} is {chars} characters long; it must be at least {API_TOKEN_CHARS_MIN}: {HOW_TO_MAKE_ONE}")]
    TooShort { path: PathBuf, chars: usize },
    #[error("the API token in {path} contains a space, a control or a non-ASCII character, which cannot travel in an HTTP header; use letters, digits and punctuation: {HOW_TO_MAKE_ONE}")]
    BadCharacter { path: PathBuf },
}

/// A shared secret. Its `Debug` never shows it, so it cannot leak into a
/// log line through a `{:?}` of the configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<hidden>)")
    }
}

impl ApiToken {
    /// Reads and checks the token file.
    pub fn read(path: &Path) -> Result<ApiToken, TokenError> {
        let unreadable = |e: std::io::Error| TokenError::Unreadable {
            path: path.to_path_buf(),
            cause: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        file.take(API_TOKEN_FILE_BYTES_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > API_TOKEN_FILE_BYTES_MAX {
            return Err(TokenError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| TokenError::BadCharacter {
            path: path.to_path_buf(),
        })?;
        ApiToken::parse(&text, path)
    }

    /// Checks the text of a token file (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<ApiToken, TokenError> {
        let token = text.trim();
        let path = path.to_path_buf();
        if token.is_empty() {
            return Err(TokenError::Empty { path });
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::BadCharacter { path });
        }
        if token.len() < API_TOKEN_CHARS_MIN {
            return Err(TokenError::TooShort {
                path,
                chars: token.len(),
            });
        }
        Ok(ApiToken(token.to_string()))
    }

    /// The `Authorization` header value that presents this token.
    #[allow(dead_code)] // the tpc CLI's; the server only compares
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `presented` is this token, in time that does not depend on
    /// where they differ (only on the presented length).
    #[allow(dead_code)] // the server's; the tpc CLI only presents
    pub fn matches(&self, presented: &str) -> bool {
        let (ours, theirs) = (self.0.as_bytes(), presented.as_bytes());
        let difference =
            theirs
                .iter()
                .enumerate()
                .fold(ours.len() ^ theirs.len(), |acc, (i, b)| {
                    let mine = ours.get(i).copied().unwrap_or(!b);
                    acc | usize::from(mine ^ b)
                });
        std::hint::black_box(difference) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ApiToken, TokenError> {
        ApiToken::parse(text, Path::new("token.txt"))
    }

    #[test]
    fn a_token_is_trimmed_and_compared_exactly() {
        let token = parse("  0123456789abcdef-XYZ\n").expect("a good token");
        assert!(token.matches("0123456789abcdef-XYZ"));
        assert!(!token.matches("0123456789abcdef-XY"));
        assert!(!token.matches("0123456789abcdef-XYZZ"));
        assert!(!token.matches("0123456789abcdef-XYz"));
        assert!(!token.matches(""));
        assert_eq!(token.bearer(), "Bearer 0123456789abcdef-XYZ");
        assert_eq!(format!("{token:?}"), "ApiToken(<hidden>)");
    }

    #[test]
    fn empty_short_and_unsendable_tokens_are_refused_with_the_fix() {
        let empty = parse(" \n\t").unwrap_err().to_string();
        assert!(
            empty.contains("token.txt is empty") && empty.contains("openssl rand"),
            "{empty}"
        );
        let short = parse("short-token\n").unwrap_err().to_string();
        assert!(
            short.contains("11 characters") && short.contains("at least 16"),
            "{short}"
        );
        for bad in [
            "0123456789 abcdef",
            "0123456789abcdéf",
            "0123456789\u{7}abcdef",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("cannot travel in an HTTP header"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn missing_and_oversized_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("tpc-token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let missing = ApiToken::read(&dir.join("nope")).unwrap_err().to_string();
        assert!(
            missing.contains("cannot read the API token file") && missing.contains("nope"),
            "{missing}"
        );
        let big = dir.join("big");
        std::fs::write(&big, "x".repeat(API_TOKEN_FILE_BYTES_MAX as usize + 1)).expect("written");
        let e = ApiToken::read(&big).unwrap_err().to_string();
        assert!(e.contains("larger than 4096 bytes"), "{e}");
        let good = dir.join("good");
        std::fs::write(&good, "abcdefghijklmnopqrstuvwxyz\n").expect("written");
        assert!(ApiToken::read(&good)
            .expect("a good file")
            .matches("abcdefghijklmnopqrstuvwxyz"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
