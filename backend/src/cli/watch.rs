//! `tpc watch`: the coordinator's live event stream (`GET /ws`) in the
//! terminal, one line per event, coloured by kind. Blocking, like the rest
//! of `tpc`: a plain TCP or TLS stream under `tungstenite`. When the
//! coordinator goes away after the first connection, it connects again
//! every second and says so, so a watch survives a coordinator restart.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use serde_json::Value;
use shared::limits::{
    CLI_CONNECT_TIMEOUT_MS, CLI_REQUEST_TIMEOUT_MS, CLI_WATCH_MESSAGE_BYTES_MAX,
    CLI_WATCH_RECONNECT_MS,
};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::client::{Client, ClientError};

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// Only these kinds (empty: every kind). `lagged` is always shown.
    pub kinds: Vec<String>,
    /// Stop after this many events shown.
    pub count: Option<u64>,
    /// Each event's JSON as the server sent it, one per line.
    pub json: bool,
    /// Connect again when the coordinator goes away (after the first connection).
    pub reconnect: bool,
}

/// A TCP connection, in the clear or under TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Streams events to `out` until `count` is reached, or forever. Notices
/// (reconnecting) go to `notices`.
pub fn watch(
    client: &Client,
    options: &WatchOptions,
    out: &mut dyn Write,
    notices: &mut dyn Write,
) -> Result<(), ClientError> {
    let mut shown = 0u64;
    let mut socket = connect(client)?;
    loop {
        let ended = loop {
            let message = match socket.read() {
                Ok(message) => message,
                Err(e) => break e.to_string(),
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => {
                    break frame.map_or("the coordinator closed the stream".to_string(), |f| {
                        format!("the coordinator closed the stream ({})", f.reason)
                    })
                }
                _ => continue,
            };
            let Ok(event) = serde_json::from_str::<Value>(&text) else {
                let _ = writeln!(notices, "-- not a JSON event: {}", snippet(&text));
                continue;
            };
            let kind = event.get("kind").and_then(Value::as_str).unwrap_or("?");
            if !options.kinds.is_empty()
                && kind != "lagged"
                && !options.kinds.iter().any(|k| k == kind)
            {
                continue;
            }
            let written = if options.json {
                writeln!(out, "{}", text.as_str())
            } else {
                let (style, line) = render(&event);
                writeln!(out, "{style}{line}{style:#}")
            };
            // A closed pipe (`tpc watch | head`) ends the watch quietly.
            if written.and_then(|_| out.flush()).is_err() {
                return Ok(());
            }
            shown += 1;
            if options.count.is_some_and(|n| shown >= n) {
                let _ = socket.close(None);
                return Ok(());
            }
        };
        if !options.reconnect {
            return Err(ClientError::Unreachable {
                url: client.base().to_string(),
                cause: format!("the event stream ended: {ended}"),
            });
        }
        let _ = writeln!(
            notices,
            "-- lost the coordinator ({ended}); connecting again every {} s (Ctrl-C to stop)",
            CLI_WATCH_RECONNECT_MS / 1000
        );
        socket = loop {
            std::thread::sleep(Duration::from_millis(CLI_WATCH_RECONNECT_MS));
            if let Ok(socket) = connect(client) {
                let _ = writeln!(notices, "-- connected again");
                break socket;
            }
        };
    }
}

fn snippet(text: &str) -> String {
    text.chars().take(120).collect()
}

/// Opens `GET /ws` on the coordinator.
fn connect(client: &Client) -> Result<WebSocket<Stream>, ClientError> {
    let unreachable = |cause: String| ClientError::Unreachable {
        url: client.base().to_string(),
        cause,
    };
    let (tls, rest) = if let Some(rest) = client.base().strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = client.base().strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(ClientError::Usage(format!(
            "--url must start with http:// or https:// (got '{}')",
            client.base()
        )));
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let url = format!("{}://{rest}/ws", if tls { "wss" } else { "ws" });
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ClientError::Usage(format!("--url {}: {e}", client.base())))?;
    if let Some(value) = client.authorization() {
        let value = value
            .parse()
            .map_err(|_| ClientError::Usage("the API token is not a valid header value".into()))?;
        request.headers_mut().insert("Authorization", value);
    }
    let host = request.uri().host().unwrap_or_default().to_string();
    let port = request
        .uri()
        .port_u16()
        .unwrap_or(if tls { 443 } else { 80 });
    let addrs = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve {authority}: {e}")))?;
    let mut last = format!("{authority} has no address");
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(CLI_CONNECT_TIMEOUT_MS)) {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                last = "connection refused".into()
            }
            Err(e) => last = e.to_string(),
        }
    }
    let tcp = tcp.ok_or_else(|| unreachable(last))?;
    // The handshake must not hang; events may then be minutes apart.
    let handshake_timeout = Some(Duration::from_millis(CLI_REQUEST_TIMEOUT_MS));
    let _ = tcp.set_read_timeout(handshake_timeout);
    let _ = tcp.set_write_timeout(handshake_timeout);
    let _ = tcp.set_nodelay(true);
    let stream = if tls {
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| ClientError::Usage(format!("--url {}: {e}", client.base())))?;
        let config: Arc<rustls::ClientConfig> = client.trust().rustls_config()?;
        let connection = rustls::ClientConnection::new(config, name)
            .map_err(|e| unreachable(format!("TLS: {e}")))?;
        Stream::Tls(Box::new(rustls::StreamOwned::new(connection, tcp)))
    } else {
        Stream::Plain(tcp)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(CLI_WATCH_MESSAGE_BYTES_MAX))
        .max_frame_size(Some(CLI_WATCH_MESSAGE_BYTES_MAX));
    let (socket, _) = tungstenite::client::client_with_config(request, stream, Some(config))
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let sentence = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| snippet(&body));
                unreachable(format!(
                    "the coordinator refused the event stream: HTTP {} {sentence}",
                    response.status().as_u16()
                ))
            }
            tungstenite::HandshakeError::Failure(tungstenite::Error::Io(io))
                if io
                    .get_ref()
                    .is_some_and(|inner| inner.is::<rustls::Error>()) =>
            {
                unreachable(format!("TLS: {io}; {}", client.trust().hint()))
            }
            other => unreachable(other.to_string()),
        })?;
    let tcp = match socket.get_ref() {
        Stream::Plain(s) => s,
        Stream::Tls(s) => &s.sock,
    };
    let _ = tcp.set_read_timeout(None);
    Ok(socket)
}

/// One event as a line, and its colour.
pub fn render(event: &Value) -> (Style, String) {
    let kind = event.get("kind").and_then(Value::as_str).unwrap_or("?");
    let ts = event.get("ts_ms").and_then(Value::as_u64).unwrap_or(0);
    let seq = event.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let body = match kind {
        "snapshot" => snapshot_line(event),
        _ => fields(event),
    };
    let line = format!("{} #{seq:<6} {kind:<16} {body}", clock(ts));
    (style(kind, event), line.trim_end().to_string())
}

/// `HH:MM:SS.mmm` (UTC) of a Unix time in milliseconds.
fn clock(ts_ms: u64) -> String {
    let ms_of_day = ts_ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1_000 % 60,
        ms_of_day % 1_000
    )
}

/// The event's own fields as `key=value`, strings bare unless they hold a
/// space, everything else as compact JSON.
fn fields(event: &Value) -> String {
    let Some(map) = event.as_object() else {
        return event.to_string();
    };
    map.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "kind" | "seq" | "ts_ms"))
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::String(s) if !s.contains(' ') && !s.is_empty() => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn snapshot_line(event: &Value) -> String {
    let cluster = &event["cluster"];
    let coordinator = cluster["coordinator"]["status"].as_str().unwrap_or("?");
    let nodes: Vec<String> = cluster["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| {
                    format!(
                        "{} {}",
                        n["id"].as_str().unwrap_or("?"),
                        n["status"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let dollars = |v: &Value| {
        v.as_i64()
            .map_or("?".to_string(), shared::money::format_cents)
    };
    format!(
        "coordinator {coordinator}; nodes {}; total {} of {}; {} recent transactions",
        if nodes.is_empty() {
            "none".to_string()
        } else {
            nodes.join(", ")
        },
        dollars(&cluster["total_cents"]),
        dollars(&cluster["expected_total_cents"]),
        event["transactions"].as_array().map_or(0, Vec::len)
    )
}

/// Green for what commits, red for what aborts, yellow for faults and
/// trouble, blue for messages sent, cyan for answers, magenta for forced
/// log writes, bold for a transaction's start.
fn style(kind: &str, event: &Value) -> Style {
    let field = |name: &str| event.get(name).and_then(Value::as_str).unwrap_or("");
    let colour = |c: AnsiColor| Style::new().fg_color(Some(c.into()));
    match kind {
        "tx_started" => Style::new().bold(),
        "tx_finished" if field("outcome") == "committed" => colour(AnsiColor::Green).bold(),
        "tx_finished" => colour(AnsiColor::Red).bold(),
        "decision" if field("decision") == "commit" => colour(AnsiColor::Green),
        "decision" => colour(AnsiColor::Red),
        "vote" if field("vote") == "ready" => colour(AnsiColor::Green),
        "vote" if field("vote") == "abort" => colour(AnsiColor::Red),
        "vote" => colour(AnsiColor::Yellow),
        "prepare_sent" | "commit_sent" | "rollback_sent" => colour(AnsiColor::Blue),
        "ack" => colour(AnsiColor::Cyan),
        "log_forced" => colour(AnsiColor::Magenta),
        "fault" | "lagged" | "node_status" | "coordinator_status" | "error" => {
            colour(AnsiColor::Yellow)
        }
        _ => Style::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_is_one_line_with_its_fields() {
        let (style, line) = render(&json!({
            "seq": 42, "ts_ms": 1_765_000_000_123u64, "kind": "vote",
            "tx_id": "tx-1-7", "node": "6001", "vote": "ready", "reason": null
        }));
        assert_eq!(style, Style::new().fg_color(Some(AnsiColor::Green.into())));
        assert!(
            line.ends_with("#42     vote             node=6001 tx_id=tx-1-7 vote=ready"),
            "{line}"
        );
        assert!(line.starts_with("05:46:40.123 "), "{line}");
    }

    #[test]
    fn outcomes_have_their_colours() {
        let finished = |outcome: &str| {
            render(&json!({"seq": 1, "ts_ms": 0, "kind": "tx_finished", "outcome": outcome})).0
        };
        assert_ne!(finished("committed"), finished("aborted"));
        assert_eq!(
            finished("aborted").get_fg_color(),
            Some(AnsiColor::Red.into())
        );
    }

    #[test]
    fn a_snapshot_is_summarised() {
        let (_, line) = render(&json!({
            "seq": 0, "ts_ms": 0, "kind": "snapshot",
            "cluster": {"coordinator": {"status": "up"},
                        "nodes": [{"id": "6001", "status": "up"}, {"id": "6002", "status": "down"}],
                        "total_cents": 150000, "expected_total_cents": 200000},
            "transactions": [{}, {}], "stats": {}, "faults": {}
        }));
        assert!(
            line.ends_with("coordinator up; nodes 6001 up, 6002 down; total $1,500.00 of $2,000.00; 2 recent transactions"),
            "{line}"
        );
    }

    #[test]
    fn strings_with_spaces_are_quoted_and_unknown_kinds_still_print() {
        let (style, line) = render(&json!({
            "seq": 3, "ts_ms": 0, "kind": "something_new", "detail": "two words", "n": 5
        }));
        assert_eq!(style, Style::new());
        assert!(line.ends_with("detail=\"two words\" n=5"), "{line}");
    }
}
