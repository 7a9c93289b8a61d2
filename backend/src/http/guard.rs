//! The guard in front of every route (one middleware over the whole router,
//! the dashboard's files and `/ws` included). A loopback listener is no
//! wall: any page the user visits can make the browser send requests to
//! 127.0.0.1. So, in this order:
//!
//! 1. **Host** (every request): the `Host` header must name this server —
//!    its listen address (IP and port), or for a loopback listener
//!    `localhost`, `127.0.0.1` or `[::1]` with the listen port, or a name
//!    from `--allowed-host` — else 421 Misdirected Request. A page on
//!    `evil.example` whose name an attacker re-points at 127.0.0.1 (DNS
//!    rebinding) is refused. An `X-Forwarded-Host` (set by proxies such as
//!    `trunk serve`) must name this server too, on any port.
//! 2. **Origin** (POST, PUT, DELETE, PATCH and the `/ws` upgrade): a
//!    request with an `Origin` header must come from one of this server's
//!    own origins (`http(s)://` + a Host it answers to), from the page
//!    origin `http(s)://<X-Forwarded-Host>` of a proxy in front of it, or
//!    from an `--allowed-origin`; else 403. `Origin: null` is foreign.
//!    Without `Origin` (curl, the CLI, tests) the request is not from a
//!    page, and passes.
//! 3. **Token** (state-changing methods, when `--api-token-file` is set):
//!    `Authorization: Bearer <token>`, compared in constant time; else 401.
//! 4. **Content type** (state-changing methods): a non-empty body must be
//!    sent as `application/json` (parameters allowed); else 415. An empty
//!    body passes, so routes with an optional body work without one.
//!
//! Trusting `X-Forwarded-Host` for the origin check is sound because a page
//! cannot set it: it is not a CORS-safelisted header, so the browser would
//! first ask with a preflight, and this server answers no preflight.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN, UPGRADE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::limits::QUOTED_HEADER_CHARS_MAX;

use super::error::ApiError;
use super::token::ApiToken;

/// The WebSocket route, whose upgrade is checked like a state change.
const WS_PATH: &str = "/ws";
const HTTP_PORT_DEFAULT: u16 = 80;
const HTTPS_PORT_DEFAULT: u16 = 443;
/// The `X-Forwarded-Host` header of proxies (trunk serve sets it).
const X_FORWARDED_HOST: &str = "x-forwarded-host";
const LOCALHOST: &str = "localhost";

/// The host part of a `Host`, an `Origin` or an `--allowed-host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostName {
    Ip(IpAddr),
    /// A DNS name, lowercased.
    Name(String),
}

/// `host[:port]`, as in a `Host` header: `localhost:8000`, `10.0.0.1`,
/// `[::1]:8000`, `tpc.example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub host: HostName,
    pub port: Option<u16>,
}

impl Authority {
    /// Parses `host[:port]`; `None` if it is anything else (a path, user
    /// info, a bad port, characters no host name has).
    pub fn parse(text: &str) -> Option<Authority> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']')?;
            let ip: Ipv6Addr = inside.parse().ok()?;
            let port = match after {
                "" => None,
                _ => Some(parse_port(after.strip_prefix(':')?)?),
            };
            (HostName::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = match text.split_once(':') {
                Some((host, port)) => (host, Some(parse_port(port)?)),
                None => (text, None),
            };
            (parse_host(host)?, port)
        };
        Some(Authority { host, port })
    }

    /// The port, or `default` when none is written.
    fn port_or(&self, default: u16) -> u16 {
        self.port.unwrap_or(default)
    }
}

fn parse_port(text: &str) -> Option<u16> {
    let all_digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    all_digits.then(|| text.parse().ok()).flatten()
}

fn parse_host(text: &str) -> Option<HostName> {
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return Some(HostName::Ip(IpAddr::V4(ip)));
    }
    let name_ok = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    name_ok.then(|| HostName::Name(text.to_ascii_lowercase()))
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostName::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            HostName::Ip(ip) => write!(f, "{ip}")?,
            HostName::Name(name) => f.write_str(name)?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// A web origin, `http(s)://host[:port]`, with its port resolved (80 for
/// http, 443 for https when none is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub secure: bool,
    pub host: HostName,
    pub port: u16,
}

impl Origin {
    /// Parses an `Origin` header or an `--allowed-origin`; a trailing `/`
    /// is tolerated, any other path is not.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let usage = || {
            format!(
                "'{}' is not a web origin: write scheme://host[:port], e.g. http://127.0.0.1:8080 or https://tpc.example.com",
                quoted(text)
            )
        };
        let (secure, rest) = if let Some(rest) = strip_prefix_ignore_case(text, "http://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(text, "https://") {
            (true, rest)
        } else {
            return Err(usage());
        };
        let authority =
            Authority::parse(rest.strip_suffix('/').unwrap_or(rest)).ok_or_else(usage)?;
        let default = if secure {
            HTTPS_PORT_DEFAULT
        } else {
            HTTP_PORT_DEFAULT
        };
        Ok(Origin {
            secure,
            port: authority.port_or(default),
            host: authority.host,
        })
    }

    fn authority(&self) -> Authority {
        Authority {
            host: self.host.clone(),
            port: Some(self.port),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority())
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// A header value quoted back in an error: printable, and short.
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(QUOTED_HEADER_CHARS_MAX)
        .collect()
}

/// 127.0.0.1 and ::1 (also written as ::ffff:127.0.0.1).
fn is_loopback_literal(ip: IpAddr) -> bool {
    matches!(ip.to_canonical(), IpAddr::V4(v4) if v4 == Ipv4Addr::LOCALHOST)
        || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
}

/// What the guard lets through; built once the listener is bound, so that
/// port 0 is the real port.
#[derive(Debug)]
pub struct Guard {
    bound: SocketAddr,
    allowed_hosts: Vec<Authority>,
    allowed_origins: Vec<Origin>,
    token: Option<ApiToken>,
}

impl Guard {
    pub fn new(
        bound: SocketAddr,
        allowed_hosts: Vec<Authority>,
        allowed_origins: Vec<Origin>,
        token: Option<ApiToken>,
    ) -> Guard {
        Guard {
            bound,
            allowed_hosts,
            allowed_origins,
            token,
        }
    }

    /// Listening on 127.0.0.1, ::1, or every address (which includes them).
    fn reachable_on_loopback(&self) -> bool {
        let ip = self.bound.ip().to_canonical();
        ip.is_loopback() || ip.is_unspecified()
    }

    /// Whether `host` names this server, whatever the port (for an
    /// `X-Forwarded-Host`, whose port is the proxy's).
    fn name_known(&self, host: &HostName) -> bool {
        self.allowed_hosts.iter().any(|a| &a.host == host) || self.listener_named(host)
    }

    /// Whether `host` is the listen address, or a loopback name when the
    /// listener is reachable on loopback.
    fn listener_named(&self, host: &HostName) -> bool {
        let bound_ip = self.bound.ip().to_canonical();
        match host {
            HostName::Ip(ip) => {
                let ip = ip.to_canonical();
                ip == bound_ip
                    || bound_ip.is_unspecified()
                    || (self.reachable_on_loopback() && is_loopback_literal(ip))
            }
            HostName::Name(name) => name == LOCALHOST && self.reachable_on_loopback(),
        }
    }

    /// Whether a `Host` (or an origin's host and port) names this server.
    /// A name from `--allowed-host` without a port matches any port.
    pub fn host_known(&self, authority: &Authority) -> bool {
        let allowed = self.allowed_hosts.iter().any(|a| {
            a.host == authority.host && a.port.is_none_or(|port| authority.port == Some(port))
        });
        if allowed {
            return true;
        }
        authority.port_or(HTTP_PORT_DEFAULT) == self.bound.port()
            && self.listener_named(&authority.host)
    }

    /// Whether a page of `origin` may change things: one of this server's
    /// own origins, the page origin of a proxy in front of it
    /// (`forwarded_host`, already checked to be a known name), or allowed.
    pub fn origin_allowed(&self, origin: &Origin, forwarded_host: Option<&Authority>) -> bool {
        if self.allowed_origins.contains(origin) {
            return true;
        }
        if self.host_known(&origin.authority()) {
            return true;
        }
        forwarded_host.is_some_and(|proxy| {
            let default = if origin.secure {
                HTTPS_PORT_DEFAULT
            } else {
                HTTP_PORT_DEFAULT
            };
            proxy.host == origin.host && proxy.port_or(default) == origin.port
        })
    }

    /// Every check of the module doc, on the request's head. `body_empty`:
    /// the request has no body bytes at all.
    pub fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body_empty: bool,
    ) -> Result<(), ApiError> {
        let forwarded_host = self.check_host(uri, headers)?;
        let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let upgrade = uri.path() == WS_PATH || headers.contains_key(UPGRADE);
        if changes_state || upgrade {
            self.check_origin(headers, forwarded_host.as_ref(), changes_state)?;
        }
        if changes_state {
            self.check_token(headers)?;
            check_content_type(headers, body_empty)?;
        }
        Ok(())
    }

    /// The request's host and any `X-Forwarded-Host` must name this server;
    /// returns the latter.
    fn check_host(&self, uri: &Uri, headers: &HeaderMap) -> Result<Option<Authority>, ApiError> {
        let host = match headers.get(HOST) {
            Some(value) => value.to_str().ok().map(str::to_string),
            // HTTP/2 carries it in the URI instead.
            None => uri.authority().map(|a| a.as_str().to_string()),
        };
        let Some(host) = host else {
            return Err(misdirected(
                "the request names no host (no Host header); send the one you connect to, e.g. Host: 127.0.0.1:8000",
            ));
        };
        if !Authority::parse(&host).is_some_and(|a| self.host_known(&a)) {
            return Err(misdirected(&format!(
                "this coordinator does not answer to the host '{}' (a guard against DNS rebinding): it answers to \
                 its listen address {}{}; if that name is yours, start the coordinator with --allowed-host NAME \
                 (env TPC_ALLOWED_HOSTS, file key allowed_hosts)",
                quoted(&host),
                self.bound,
                if self.reachable_on_loopback() {
                    " and, on that port, to localhost, 127.0.0.1 and [::1]"
                } else {
                    ""
                },
            )));
        }
        let mut forwarded = headers.get_all(X_FORWARDED_HOST).iter();
        let Some(value) = forwarded.next() else {
            return Ok(None);
        };
        let text = value.to_str().unwrap_or_default();
        let parsed = Authority::parse(text.trim()).filter(|_| forwarded.next().is_none());
        match parsed {
            Some(proxy) if self.name_known(&proxy.host) => Ok(Some(proxy)),
            _ => Err(misdirected(&format!(
                "the proxy in front of this coordinator serves it as '{}' (X-Forwarded-Host), a name it does not \
                 answer to (a guard against DNS rebinding); if that name is yours, start the coordinator with \
                 --allowed-host NAME (env TPC_ALLOWED_HOSTS, file key allowed_hosts)",
                quoted(text)
            ))),
        }
    }

    fn check_origin(
        &self,
        headers: &HeaderMap,
        forwarded_host: Option<&Authority>,
        changes_state: bool,
    ) -> Result<(), ApiError> {
        let Some(value) = headers.get(ORIGIN) else {
            return Ok(()); // not sent by a web page
        };
        let text = value.to_str().unwrap_or("(not text)");
        let allowed = Origin::parse(text).is_ok_and(|o| self.origin_allowed(&o, forwarded_host));
        if allowed {
            return Ok(());
        }
        let what = if changes_state {
            "a change requested by"
        } else {
            "the live event stream for"
        };
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{what} the web page at '{}' is refused: only pages served by this coordinator, or from an origin \
                 given with --allowed-origin ORIGIN (env TPC_ALLOWED_ORIGINS, file key allowed_origins), may do \
                 that; scripts and the tpc CLI send no Origin header and are not affected",
                quoted(text)
            ),
        ))
    }

    fn check_token(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        match presented {
            Some(presented) if token.matches(presented) => Ok(()),
            Some(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the API token is wrong: send the one in the coordinator's --api-token-file, as \
                 Authorization: Bearer <token>",
            )),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this coordinator requires an API token for every change: send Authorization: Bearer <token> \
                 with the token in its --api-token-file (tpc: --token-file PATH or TPC_API_TOKEN_FILE; the \
                 dashboard asks for it)",
            )),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().eq_ignore_ascii_case("application/json")
}

fn check_content_type(headers: &HeaderMap, body_empty: bool) -> Result<(), ApiError> {
    if body_empty {
        return Ok(());
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    if content_type.is_some_and(is_json) {
        return Ok(());
    }
    let got = match content_type {
        Some(text) => format!("got Content-Type '{}'", quoted(text)),
        None => "got none".to_string(),
    };
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "a request body must be JSON sent with Content-Type: application/json ({got}); with curl, use \
             --json '{{...}}' or -H 'Content-Type: application/json'"
        ),
    ))
}

fn misdirected(message: &str) -> ApiError {
    ApiError::new(StatusCode::MISDIRECTED_REQUEST, message)
}

/// The middleware: runs [`Guard::check`] before the router sees the request.
pub async fn enforce(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let body = request.body();
    let body_empty = body.is_end_stream() || body.size_hint().exact() == Some(0);
    match guard.check(
        request.method(),
        request.uri(),
        request.headers(),
        body_empty,
    ) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            let unauthorized = error.status == StatusCode::UNAUTHORIZED;
            let mut response = error.into_response();
            if unauthorized {
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback_guard() -> Guard {
        Guard::new(
            "127.0.0.1:8000".parse().unwrap(),
            Vec::new(),
            Vec::new(),
            None,
        )
    }

    fn authority(text: &str) -> Authority {
        Authority::parse(text).unwrap_or_else(|| panic!("'{text}' parses"))
    }

    fn origin(text: &str) -> Origin {
        Origin::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn head(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn status(
        guard: &Guard,
        method: Method,
        path: &str,
        pairs: &[(&str, &str)],
        body_empty: bool,
    ) -> u16 {
        let uri: Uri = path.parse().unwrap();
        match guard.check(&method, &uri, &head(pairs), body_empty) {
            Ok(()) => 200,
            Err(e) => e.status.as_u16(),
        }
    }

    #[test]
    fn authorities_parse_names_ips_and_ports() {
        assert_eq!(
            authority("LocalHost:8000"),
            Authority {
                host: HostName::Name("localhost".into()),
                port: Some(8000)
            }
        );
        assert_eq!(
            authority("[::1]:80").host,
            HostName::Ip("::1".parse().unwrap())
        );
        assert_eq!(authority("[::1]").port, None);
        assert_eq!(authority("10.0.0.1").to_string(), "10.0.0.1");
        assert_eq!(authority("[::1]:8000").to_string(), "[::1]:8000");
        for bad in [
            "",
            ":80",
            "a:",
            "a:b",
            "a:99999",
            "a:+1",
            "user@host",
            "a/b",
            "[::1",
            "[::1]x",
            "[nope]:1",
            "a b",
            "::1",
        ] {
            assert_eq!(Authority::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn origins_resolve_their_default_port_and_refuse_other_shapes() {
        assert_eq!(origin("http://localhost").port, 80);
        assert_eq!(
            origin("HTTPS://Tpc.Example.com").to_string(),
            "https://tpc.example.com:443"
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/"),
            origin("http://127.0.0.1:8080")
        );
        for bad in [
            "null",
            "127.0.0.1:8000",
            "ftp://x",
            "http://",
            "http://a/b",
            "http://a:b",
            "file:///etc",
        ] {
            let e = Origin::parse(bad).expect_err(bad);
            assert!(e.contains("is not a web origin"), "{e}");
        }
    }

    #[test]
    fn a_loopback_listener_answers_to_its_address_and_the_loopback_names_on_its_port() {
        let guard = loopback_guard();
        for ok in [
            "127.0.0.1:8000",
            "localhost:8000",
            "LOCALHOST:8000",
            "[::1]:8000",
        ] {
            assert!(guard.host_known(&authority(ok)), "{ok}");
        }
        for refused in [
            "evil.example:8000",
            "evil.example",
            "localhost:8001",
            "127.0.0.1",
            "127.0.0.2:8000",
            "10.0.0.1:8000",
            "localhost.:8000",
        ] {
            assert!(!guard.host_known(&authority(refused)), "{refused}");
        }
    }

    #[test]
    fn other_listeners_answer_to_their_own_address_and_allowed_names() {
        let guard = Guard::new(
            "10.0.0.5:8000".parse().unwrap(),
            vec![
                authority("tpc.example.com"),
                authority("other.example:9000"),
            ],
            Vec::new(),
            None,
        );
        for ok in [
            "10.0.0.5:8000",
            "tpc.example.com",
            "tpc.example.com:443",
            "other.example:9000",
        ] {
            assert!(guard.host_known(&authority(ok)), "{ok}");
        }
        for refused in [
            "localhost:8000",
            "127.0.0.1:8000",
            "10.0.0.6:8000",
            "other.example",
            "other.example:8000",
        ] {
            assert!(!guard.host_known(&authority(refused)), "{refused}");
        }
        let any = Guard::new(
            "0.0.0.0:8000".parse().unwrap(),
            Vec::new(),
            Vec::new(),
            None,
        );
        for ok in ["192.168.1.9:8000", "localhost:8000", "[::1]:8000"] {
            assert!(any.host_known(&authority(ok)), "{ok}");
        }
        assert!(!any.host_known(&authority("evil.example:8000")));
        assert!(!any.host_known(&authority("192.168.1.9:8001")));
    }

    #[test]
    fn own_forwarded_and_allowed_origins_pass_and_everything_else_is_foreign() {
        let guard = Guard::new(
            "127.0.0.1:8000".parse().unwrap(),
            Vec::new(),
            vec![origin("https://dash.example")],
            None,
        );
        for own in [
            "http://127.0.0.1:8000",
            "http://localhost:8000",
            "https://localhost:8000",
            "http://[::1]:8000",
            "https://dash.example",
        ] {
            assert!(guard.origin_allowed(&origin(own), None), "{own}");
        }
        for foreign in [
            "http://evil.example",
            "http://localhost:8080",
            "http://127.0.0.1",
            "http://dash.example",
            "https://dash.example:8443",
        ] {
            assert!(!guard.origin_allowed(&origin(foreign), None), "{foreign}");
        }
        // Behind trunk serve: its page is http://127.0.0.1:8080.
        let proxy = authority("127.0.0.1:8080");
        assert!(guard.origin_allowed(&origin("http://127.0.0.1:8080"), Some(&proxy)));
        assert!(!guard.origin_allowed(&origin("http://127.0.0.1:9999"), Some(&proxy)));
        assert!(!guard.origin_allowed(&origin("http://evil.example:8080"), Some(&proxy)));
    }

    #[test]
    fn the_checks_run_in_order_with_their_status_codes() {
        let mut guard = loopback_guard();
        let host = ("host", "127.0.0.1:8000");
        let json = ("content-type", "application/json; charset=utf-8");
        let post = Method::POST;
        // Host first, on every route and method.
        assert_eq!(
            status(&guard, Method::GET, "/", &[("host", "evil.example")], true),
            421
        );
        assert_eq!(status(&guard, Method::GET, "/api/cluster", &[], true), 421);
        assert_eq!(
            status(&guard, Method::GET, "/api/cluster", &[host], true),
            200
        );
        // Reads need no Origin check; changes and the WebSocket do.
        let evil = ("origin", "http://evil.example");
        assert_eq!(
            status(&guard, Method::GET, "/api/cluster", &[host, evil], true),
            200
        );
        assert_eq!(
            status(
                &guard,
                post.clone(),
                "/api/transfers",
                &[host, evil, json],
                false
            ),
            403
        );
        assert_eq!(
            status(&guard, Method::GET, WS_PATH, &[host, evil], true),
            403
        );
        assert_eq!(
            status(
                &guard,
                Method::GET,
                WS_PATH,
                &[host, ("origin", "null")],
                true
            ),
            403
        );
        assert_eq!(
            status(
                &guard,
                Method::GET,
                WS_PATH,
                &[host, ("origin", "http://localhost:8000")],
                true
            ),
            200
        );
        assert_eq!(
            status(
                &guard,
                Method::DELETE,
                "/api/nodes/1/link",
                &[host, ("origin", "null")],
                true
            ),
            403
        );
        // No Origin: not a page.
        assert_eq!(
            status(&guard, post.clone(), "/api/transfers", &[host, json], false),
            200
        );
        // Content type: a body needs JSON; no body passes.
        let text = ("content-type", "text/plain");
        assert_eq!(
            status(&guard, post.clone(), "/api/transfers", &[host, text], false),
            415
        );
        assert_eq!(
            status(&guard, post.clone(), "/api/transfers", &[host], false),
            415
        );
        assert_eq!(
            status(
                &guard,
                Method::PATCH,
                "/x",
                &[host, ("content-type", "application/jsonx")],
                false
            ),
            415
        );
        assert_eq!(
            status(&guard, post.clone(), "/api/nodes/6002/crash", &[host], true),
            200
        );
        assert_eq!(
            status(
                &guard,
                post.clone(),
                "/api/nodes/6002/crash",
                &[host, text],
                true
            ),
            200
        );
        // A forged X-Forwarded-Host is a Host of its own.
        let rebound = ("x-forwarded-host", "evil.example:8080");
        assert_eq!(
            status(&guard, Method::GET, "/api/cluster", &[host, rebound], true),
            421
        );
        let trunk = [
            host,
            ("x-forwarded-host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            json,
        ];
        assert_eq!(
            status(&guard, post.clone(), "/api/transfers", &trunk, false),
            200
        );
        let twice = [
            host,
            ("x-forwarded-host", "127.0.0.1:8080"),
            ("x-forwarded-host", "localhost:8080"),
        ];
        assert_eq!(status(&guard, Method::GET, "/", &twice, true), 421);
        // Token: changes only.
        guard.token = Some(ApiToken::parse("0123456789abcdef", std::path::Path::new("t")).unwrap());
        assert_eq!(
            status(&guard, post.clone(), "/api/transfers", &[host, json], false),
            401
        );
        let wrong = ("authorization", "Bearer 0123456789abcdeF");
        assert_eq!(
            status(
                &guard,
                post.clone(),
                "/api/transfers",
                &[host, json, wrong],
                false
            ),
            401
        );
        let right = ("authorization", "bearer  0123456789abcdef");
        assert_eq!(
            status(
                &guard,
                post.clone(),
                "/api/transfers",
                &[host, json, right],
                false
            ),
            200
        );
        assert_eq!(
            status(&guard, Method::GET, "/api/cluster", &[host], true),
            200
        );
        assert_eq!(status(&guard, Method::GET, WS_PATH, &[host], true), 200);
        // A foreign page is refused before its token is looked at.
        assert_eq!(
            status(
                &guard,
                post,
                "/api/transfers",
                &[host, evil, json, right],
                false
            ),
            403
        );
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " application/json ;x=y",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "application/jsonp",
            "",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
