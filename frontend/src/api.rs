//! One function per REST call of the coordinator (see the API contract),
//! with the `shared` types. The base is the page's own origin: the
//! coordinator serves this app, and `trunk serve` proxies `/api`.
//!
//! Every error becomes an [`ApiError`] carrying the HTTP status (if any) and
//! the server's own sentence from `{"error": "..."}`.
//!
//! Changes carry the API token when the person has given one: a coordinator
//! started with `--api-token-file` answers 401 to a change without it, which
//! raises [`token_wanted`] (the token field shows itself); the token is kept
//! in the tab's sessionStorage and sent as `Authorization: Bearer` from then
//! on. Bodies go out with gloo-net's `.json()`, which sets `Content-Type:
//! application/json` (the coordinator refuses other bodies with 415).

use std::fmt;

use gloo_net::http::{Request, RequestBuilder, Response};
use leptos::prelude::{ArcRwSignal, Set};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shared::api::{
    AccountView, ClusterView, CoordinatorCrashRequest, ErrorBody, Faults, FaultsUpdate,
    HeldMessages, HeuristicRequest, HeuristicView, InDoubtView, LinkFault, MessageActionRequest,
    NextMessageRequest, NodeCrashRequest, RecordingInfo, ReleasedMessages, Stats,
    TransactionDetail, TransactionSummary, TransferRequest, TransferResponse,
};
use shared::evidence::TransactionEvidence;
use shared::wire::ParticipantCrashPoint;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// `None` when no HTTP answer arrived at all.
    pub status: Option<u16>,
    pub message: String,
}

impl ApiError {
    fn network(error: impl fmt::Display) -> Self {
        ApiError {
            status: None,
            message: format!("the coordinator did not answer ({error})"),
        }
    }

    /// Fault injection is refused outside demo mode.
    pub fn is_forbidden(&self) -> bool {
        self.status == Some(403)
    }

    /// The coordinator is down or recovering: retry with the same `tx_id`.
    pub fn is_unavailable(&self) -> bool {
        self.status == Some(503)
    }

    /// The coordinator wants its API token for this change.
    pub fn is_unauthorized(&self) -> bool {
        self.status == Some(401)
    }
}

/// The sessionStorage key of the API token: this tab only, gone when it closes.
const TOKEN_STORAGE_KEY: &str = "tpc-api-token";
pub use shared::limits::API_TOKEN_CHARS_MIN;

thread_local! {
    /// Raised by a 401 answer; the token field shows while it is set.
    static TOKEN_WANTED: ArcRwSignal<bool> = ArcRwSignal::new(false);
}

/// Whether a change was refused for want of the API token (and no token
/// has been given since).
pub fn token_wanted() -> ArcRwSignal<bool> {
    TOKEN_WANTED.with(ArcRwSignal::clone)
}

/// A pasted token, trimmed; `None` if it cannot be one (too short, or with
/// characters an HTTP header cannot carry).
pub fn clean_token(input: &str) -> Option<String> {
    let token = input.trim();
    let sendable = token.bytes().all(|b| b.is_ascii_graphic());
    (sendable && token.len() >= API_TOKEN_CHARS_MIN).then(|| token.to_string())
}

/// The `Authorization` header value for `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn session_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

/// Keeps the token for this tab and lowers [`token_wanted`]; false if the
/// browser refuses to store it.
pub fn save_token(token: &str) -> bool {
    let saved = session_storage().is_some_and(|s| s.set_item(TOKEN_STORAGE_KEY, token).is_ok());
    if saved {
        token_wanted().set(false);
    }
    saved
}

/// A request that changes something: with the token, if one was given.
fn change(builder: RequestBuilder) -> RequestBuilder {
    let token = session_storage().and_then(|s| s.get_item(TOKEN_STORAGE_KEY).ok().flatten());
    match token {
        Some(token) => builder.header("Authorization", &bearer(&token)),
        None => builder,
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(403) => write!(
                f,
                "refused (403): {} — fault injection needs the coordinator in demo mode",
                self.message
            ),
            Some(401) => write!(
                f,
                "refused (401): {} — paste the API token in the field at the top",
                self.message
            ),
            Some(status) => write!(f, "{} (HTTP {status})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

async fn error_of(response: &Response) -> ApiError {
    let status = response.status();
    if status == 401 {
        token_wanted().set(true);
    }
    let text = response.text().await.unwrap_or_default();
    let message = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => body.error,
        Err(_) if !text.trim().is_empty() => text.trim().chars().take(200).collect(),
        Err(_) => response.status_text(),
    };
    ApiError {
        status: Some(status),
        message,
    }
}

async fn fetch(request: Result<Request, gloo_net::Error>) -> Result<Response, ApiError> {
    let request = request.map_err(ApiError::network)?;
    request.send().await.map_err(ApiError::network)
}

async fn decode<T: DeserializeOwned>(response: Response) -> Result<T, ApiError> {
    let status = response.status();
    response.json::<T>().await.map_err(|e| ApiError {
        status: Some(status),
        message: format!("unexpected answer: {e}"),
    })
}

async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, ApiError> {
    let response = fetch(Request::get(url).build()).await?;
    if !response.ok() {
        return Err(error_of(&response).await);
    }
    decode(response).await
}

/// A command whose answer body the dashboard does not need.
async fn command(request: Result<Request, gloo_net::Error>) -> Result<(), ApiError> {
    let response = fetch(request).await?;
    if response.ok() {
        Ok(())
    } else {
        Err(error_of(&response).await)
    }
}

/// The body as JSON; gloo-net sets `Content-Type: application/json`.
fn with_json(builder: RequestBuilder, body: &impl Serialize) -> Result<Request, gloo_net::Error> {
    builder.json(body)
}

fn node_url(node: &str, action: &str) -> String {
    format!("/api/nodes/{}/{action}", js_sys::encode_uri_component(node))
}

pub async fn cluster() -> Result<ClusterView, ApiError> {
    get_json("/api/cluster").await
}

pub async fn accounts() -> Result<Vec<AccountView>, ApiError> {
    get_json("/api/accounts").await
}

pub async fn stats() -> Result<Stats, ApiError> {
    get_json("/api/stats").await
}

pub async fn faults() -> Result<Faults, ApiError> {
    get_json("/api/faults").await
}

pub async fn transactions(limit: usize) -> Result<Vec<TransactionSummary>, ApiError> {
    get_json(&format!("/api/transactions?limit={limit}")).await
}

pub async fn transaction(tx_id: &str) -> Result<TransactionDetail, ApiError> {
    get_json(&format!(
        "/api/transactions/{}",
        js_sys::encode_uri_component(tx_id)
    ))
    .await
}

pub async fn evidence(tx_id: &str) -> Result<TransactionEvidence, ApiError> {
    get_json(&format!(
        "/api/transactions/{}/evidence",
        js_sys::encode_uri_component(tx_id)
    ))
    .await
}

/// `POST /api/transfers`: a 200 (committed) and a 409 (aborted) both carry
/// a [`TransferResponse`]; everything else is an error.
pub async fn transfer(request: &TransferRequest) -> Result<TransferResponse, ApiError> {
    let response = fetch(with_json(change(Request::post("/api/transfers")), request)).await?;
    match response.status() {
        200 => decode(response).await,
        409 => {
            // A 409 is also "this tx_id was used with another body": that
            // one carries an error body, not an outcome.
            let status = response.status();
            let text = response.text().await.map_err(ApiError::network)?;
            match serde_json::from_str::<TransferResponse>(&text) {
                Ok(outcome) => Ok(outcome),
                Err(_) => Err(match serde_json::from_str::<ErrorBody>(&text) {
                    Ok(body) => ApiError {
                        status: Some(status),
                        message: body.error,
                    },
                    Err(_) => ApiError {
                        status: Some(status),
                        message: text.chars().take(200).collect(),
                    },
                }),
            }
        }
        _ => Err(error_of(&response).await),
    }
}

pub async fn crash_node(node: &str) -> Result<(), ApiError> {
    command(change(Request::post(&node_url(node, "crash"))).build()).await
}

/// `POST /api/nodes/{id}/crash {"at": ...}`: the node kills itself at that
/// point of its next transaction.
pub async fn crash_node_at(node: &str, at: ParticipantCrashPoint) -> Result<(), ApiError> {
    let request = NodeCrashRequest { at: Some(at) };
    command(with_json(
        change(Request::post(&node_url(node, "crash"))),
        &request,
    ))
    .await
}

pub async fn restart_node(node: &str) -> Result<(), ApiError> {
    command(change(Request::post(&node_url(node, "restart"))).build()).await
}

pub async fn set_link(node: &str, fault: &LinkFault) -> Result<(), ApiError> {
    command(with_json(
        change(Request::put(&node_url(node, "link"))),
        fault,
    ))
    .await
}

pub async fn heal_link(node: &str) -> Result<(), ApiError> {
    command(change(Request::delete(&node_url(node, "link"))).build()).await
}

pub async fn crash_coordinator(request: &CoordinatorCrashRequest) -> Result<(), ApiError> {
    command(with_json(
        change(Request::post("/api/coordinator/crash")),
        request,
    ))
    .await
}

/// `DELETE /api/coordinator/crash`: disarms a crash not yet reached.
pub async fn cancel_coordinator_crash() -> Result<(), ApiError> {
    command(change(Request::delete("/api/coordinator/crash")).build()).await
}

pub async fn update_faults(update: &FaultsUpdate) -> Result<(), ApiError> {
    command(with_json(change(Request::put("/api/faults")), update)).await
}

/// `GET /api/messages`: what step mode's hold holds.
pub async fn held_messages() -> Result<HeldMessages, ApiError> {
    get_json("/api/messages").await
}

/// `POST /api/messages/next`: lets the oldest held message go (with
/// `phase`, its whole protocol step); the ids let go.
pub async fn next_message(phase: bool) -> Result<Vec<u64>, ApiError> {
    let request = NextMessageRequest { phase };
    let response = fetch(with_json(
        change(Request::post("/api/messages/next")),
        &request,
    ))
    .await?;
    if !response.ok() {
        return Err(error_of(&response).await);
    }
    Ok(decode::<ReleasedMessages>(response).await?.released)
}

/// `POST /api/messages/{id}`: deliver, drop, duplicate or delay one message.
pub async fn act_on_message(id: u64, request: &MessageActionRequest) -> Result<(), ApiError> {
    command(with_json(
        change(Request::post(&format!("/api/messages/{id}"))),
        request,
    ))
    .await
}

/// `GET /api/recording/info`
pub async fn recording_info() -> Result<RecordingInfo, ApiError> {
    get_json("/api/recording/info").await
}

/// `GET /api/recording?from_seq=&to_seq=`: the recorded events as text
/// (JSON lines), from the snapshot before `from_seq`.
pub async fn recording_text(from_seq: u64, to_seq: u64) -> Result<String, ApiError> {
    let url = recording_url(Some(from_seq), Some(to_seq));
    let response = fetch(Request::get(&url).build()).await?;
    if !response.ok() {
        return Err(error_of(&response).await);
    }
    response.text().await.map_err(ApiError::network)
}

/// The address of the recording from `from_seq` to `to_seq` (a download).
pub fn recording_url(from_seq: Option<u64>, to_seq: Option<u64>) -> String {
    let mut params = Vec::new();
    if let Some(seq) = from_seq {
        params.push(format!("from_seq={seq}"));
    }
    if let Some(seq) = to_seq {
        params.push(format!("to_seq={seq}"));
    }
    if params.is_empty() {
        "/api/recording".to_string()
    } else {
        format!("/api/recording?{}", params.join("&"))
    }
}

pub async fn in_doubt() -> Result<InDoubtView, ApiError> {
    get_json("/api/in-doubt").await
}

/// `POST /api/nodes/{id}/heuristic`: forces an outcome on one node (demo
/// mode only: 403 otherwise; 409 when the node refuses, e.g. it no longer
/// holds the transaction; 503 when it cannot be reached).
pub async fn force_heuristic(
    node: &str,
    request: &HeuristicRequest,
) -> Result<HeuristicView, ApiError> {
    let response = fetch(with_json(
        change(Request::post(&node_url(node, "heuristic"))),
        request,
    ))
    .await?;
    if !response.ok() {
        return Err(error_of(&response).await);
    }
    decode(response).await
}

/// `GET /api/chaos`: the current or last chaos run.
pub async fn chaos() -> Result<shared::api::ChaosRun, ApiError> {
    get_json("/api/chaos").await
}

/// `POST /api/chaos`: starts a chaos run on the demo cluster.
pub async fn start_chaos(
    request: &shared::api::ChaosRequest,
) -> Result<shared::api::ChaosRun, ApiError> {
    let response = fetch(with_json(change(Request::post("/api/chaos")), request)).await?;
    if !response.ok() {
        return Err(error_of(&response).await);
    }
    decode(response).await
}

/// `DELETE /api/chaos`: stops the running chaos run's faults now.
pub async fn stop_chaos() -> Result<(), ApiError> {
    command(change(Request::delete("/api/chaos")).build()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_token_is_trimmed_and_checked_like_the_coordinator_does() {
        assert_eq!(
            clean_token("  0123456789abcdef\n").as_deref(),
            Some("0123456789abcdef")
        );
        for bad in ["", "short", "0123456789 abcdef", "0123456789abcdé€"] {
            assert_eq!(clean_token(bad), None, "{bad:?}");
        }
        assert_eq!(bearer("t0k"), "Bearer t0k");
    }

    #[test]
    fn a_401_says_where_to_paste_the_token() {
        let error = ApiError {
            status: Some(401),
            message: "this coordinator requires an API token".to_string(),
        };
        assert!(error.is_unauthorized() && !error.is_forbidden());
        assert!(error.to_string().contains("paste the API token"), "{error}");
    }

    #[test]
    fn recording_addresses_name_the_range() {
        assert_eq!(recording_url(None, None), "/api/recording");
        assert_eq!(
            recording_url(Some(5), Some(9)),
            "/api/recording?from_seq=5&to_seq=9"
        );
        assert_eq!(recording_url(None, Some(9)), "/api/recording?to_seq=9");
    }
}
