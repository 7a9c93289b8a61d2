//! The CLI's HTTP client: one blocking request per command, with errors
//! that say what to do (the coordinator is not running, the server's own
//! `error` sentence for a 4xx/5xx).

use std::time::Duration;

use serde_json::Value;
use shared::limits::{CLI_CONNECT_TIMEOUT_MS, CLI_REQUEST_TIMEOUT_MS, CLI_RESPONSE_BYTES_MAX};

use super::tls::Trust;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the coordinator at {url}: is it running? start it with scripts/demo.sh ({cause})")]
    Unreachable { url: String, cause: String },
    #[error("{0}")]
    Usage(String),
    #[error("the coordinator answered {status} with a body that is not JSON: {snippet}")]
    NotJson { status: u16, snippet: String },
}

/// An HTTP answer: its status and JSON body.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The server's `{"error": "..."}` sentence, or a description of the status.
    pub fn error_sentence(&self) -> String {
        match self.body.get("error").and_then(Value::as_str) {
            Some(sentence) => sentence.to_string(),
            None => format!("the coordinator answered HTTP {}", self.status),
        }
    }
}

pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// `Bearer <token>`, sent with every request when a token file is given.
    authorization: Option<String>,
    trust: Trust,
}

impl Client {
    /// `authorization`: the `Authorization` header value to send, if any;
    /// `trust`: the certificates a https coordinator may present.
    pub fn new(
        url: &str,
        authorization: Option<String>,
        trust: Trust,
    ) -> Result<Client, ClientError> {
        let base = url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(ClientError::Usage(format!(
                "--url must start with http:// or https:// (got '{url}'), e.g. http://127.0.0.1:8000"
            )));
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(trust.ureq_roots())
            .build();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .https_only(base.starts_with("https://"))
            .tls_config(tls)
            .timeout_connect(Some(Duration::from_millis(CLI_CONNECT_TIMEOUT_MS)))
            .timeout_global(Some(Duration::from_millis(CLI_REQUEST_TIMEOUT_MS)))
            .build();
        Ok(Client {
            base,
            agent: ureq::Agent::new_with_config(config),
            authorization,
            trust,
        })
    }

    /// The base URL (without a trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The `Authorization` header value sent, if any.
    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    pub fn get(&self, path: &str) -> Result<Answer, ClientError> {
        let mut request = self.agent.get(self.url(path));
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        self.finish(request.call())
    }

    /// POSTs `body` as JSON (`Content-Type: application/json`), or nothing.
    pub fn post(&self, path: &str, body: Option<&Value>) -> Result<Answer, ClientError> {
        let mut request = self.agent.post(self.url(path));
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        let result = match body {
            Some(json) => request
                .content_type("application/json")
                .send(json.to_string()),
            None => request.send_empty(),
        };
        self.finish(result)
    }

    /// PUTs `body` as JSON.
    pub fn put(&self, path: &str, body: &Value) -> Result<Answer, ClientError> {
        let mut request = self.agent.put(self.url(path));
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        self.finish(
            request
                .content_type("application/json")
                .send(body.to_string()),
        )
    }

    pub fn delete(&self, path: &str) -> Result<Answer, ClientError> {
        let mut request = self.agent.delete(self.url(path));
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        self.finish(request.call())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn finish(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, ClientError> {
        let mut response = result.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(CLI_RESPONSE_BYTES_MAX)
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        if text.trim().is_empty() {
            return Ok(Answer {
                status,
                body: Value::Null,
            });
        }
        let body = serde_json::from_str(&text).map_err(|_| ClientError::NotJson {
            status,
            snippet: text.chars().take(200).collect(),
        })?;
        Ok(Answer { status, body })
    }

    fn transport_error(&self, e: ureq::Error) -> ClientError {
        let cause = match &e {
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                "connection refused".to_string()
            }
            ureq::Error::Io(io)
                if io
                    .get_ref()
                    .is_some_and(|inner| inner.is::<rustls::Error>()) =>
            {
                format!("TLS: {io}; {}", self.trust.hint())
            }
            ureq::Error::Timeout(_) => "no answer in time".to_string(),
            ureq::Error::HostNotFound => "unknown host".to_string(),
            ureq::Error::Rustls(e) => format!("TLS: {e}; {}", self.trust.hint()),
            ureq::Error::Tls(e) => format!("TLS: {e}; {}", self.trust.hint()),
            other => other.to_string(),
        };
        ClientError::Unreachable {
            url: self.base.clone(),
            cause,
        }
    }
}

/// Escapes one path segment (an account, node or transaction id).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("tx-1_a.b~"), "tx-1_a.b~");
        assert_eq!(segment("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
