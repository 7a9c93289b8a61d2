//! Operations against real processes: Prometheus
//! `/metrics`, the OpenAPI document kept in sync with the router and with
//! real answers, and the `tpc` CLI run as a process.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use shared::api::{
    ComponentStatus, CoordinatorCrashRequest, CrashPoint, FaultsUpdate, LinkFault,
    NodeCrashRequest, TransferRequest,
};
use shared::limits::{AMOUNT_CENTS_MAX, LINK_DELAY_MS_MAX, RESTART_AFTER_MS_MAX, TX_ID_BYTES_MAX};
use shared::wire::ParticipantCrashPoint;
use system_tests::tpc::tpc;
use system_tests::{kill9, node_pid, wait_for_async, Cluster, Options, DEADLINE};

// ---------------------------------------------------------------- metrics

/// One sample line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format strictly: every line is blank, a comment, or
/// `name{label="value",...} number`. Returns the samples and the `# TYPE`s.
fn parse_prometheus(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let context = || format!("line {}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            if words.first() == Some(&"TYPE") {
                assert_eq!(words.len(), 3, "{}", context());
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&words[2]),
                    "{}",
                    context()
                );
                types.insert(words[1].to_string(), words[2].to_string());
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {}", context()));
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .enumerate()
                    .all(|(i, c)| c.is_ascii_alphabetic()
                        || c == '_'
                        || c == ':'
                        || (i > 0 && c.is_ascii_digit())),
            "bad metric name: {}",
            context()
        );
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let close;
            loop {
                // label name
                let start = chars
                    .peek()
                    .map(|(i, _)| *i)
                    .unwrap_or_else(|| panic!("unterminated labels: {}", context()));
                if inner[start..].starts_with('}') {
                    close = start;
                    break;
                }
                let eq = inner[start..]
                    .find('=')
                    .unwrap_or_else(|| panic!("label without '=': {}", context()))
                    + start;
                let label = &inner[start..eq];
                assert!(
                    !label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad label name {label:?}: {}",
                    context()
                );
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                assert_eq!(
                    chars.next().map(|(_, c)| c),
                    Some('"'),
                    "label value not quoted: {}",
                    context()
                );
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => value.push(c),
                            other => panic!("bad escape {other:?}: {}", context()),
                        },
                        Some((_, '"')) => break,
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value: {}", context()),
                    }
                }
                labels.insert(label.to_string(), value);
                match chars.next() {
                    Some((_, ',')) => continue,
                    Some((i, '}')) => {
                        close = i;
                        break;
                    }
                    other => panic!(
                        "expected ',' or '}}' after a label, got {other:?}: {}",
                        context()
                    ),
                }
            }
            rest = &inner[close + 1..];
        }
        let value_text = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value: {}", context()));
        let value_text = value_text.split(' ').next().unwrap_or_default(); // an optional timestamp may follow
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value {v:?}: {}", context())),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    (samples, types)
}

fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == wanted)
        .unwrap_or_else(|| panic!("no sample {name}{wanted:?}"))
        .value
}

async fn scrape(c: &Cluster) -> (Vec<Sample>, BTreeMap<String, String>) {
    let response = c
        .http
        .get(c.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse_prometheus(&response.text().await.expect("a text body"))
}

#[test]
fn the_prometheus_parser_rejects_what_it_should() {
    let (samples, types) = parse_prometheus(
        "# HELP a_total An a.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 3\nb 1.5e3\nc{} +Inf\n",
    );
    assert_eq!(types["a_total"], "counter");
    assert_eq!(samples.len(), 3);
    assert_eq!(samples[0].labels["y"], "q\"");
    assert_eq!(samples[1].value, 1500.0);
    for bad in ["a_total", "1abc 3", "a{x=1} 3", "a{x=\"1\" 3", "a three"] {
        assert!(
            std::panic::catch_unwind(|| parse_prometheus(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_transfers_and_show_the_cluster() {
    let c = Cluster::start(Options::default()).await;
    for i in 0..3 {
        let (status, _) = c
            .transfer_outcome("A", "B", 1_000, Some(&format!("m-commit-{i}")))
            .await;
        assert_eq!(status, 200);
    }
    for _ in 0..2 {
        let (status, _) = c.transfer_outcome("A", "B", 10_000_000, None).await;
        assert_eq!(status, 409);
    }
    let (status, body) = c.transfer("A", "A", 1, None).await;
    assert_eq!(status, 422, "{body}");

    let (samples, types) = scrape(&c).await;
    assert_eq!(
        value_of(&samples, "tpc_transactions_started_total", &[]),
        5.0
    );
    assert_eq!(
        value_of(
            &samples,
            "tpc_transactions_total",
            &[("outcome", "committed")]
        ),
        3.0
    );
    assert_eq!(
        value_of(
            &samples,
            "tpc_transactions_total",
            &[("outcome", "aborted")]
        ),
        2.0
    );
    assert_eq!(
        value_of(
            &samples,
            "tpc_transaction_aborts_total",
            &[("reason", "insufficient_funds")]
        ),
        2.0
    );
    assert_eq!(
        value_of(
            &samples,
            "tpc_transaction_aborts_total",
            &[("reason", "timeout")]
        ),
        0.0
    );
    assert_eq!(
        value_of(
            &samples,
            "tpc_transaction_duration_seconds_count",
            &[("outcome", "committed")]
        ),
        3.0
    );
    assert_eq!(
        value_of(
            &samples,
            "tpc_transaction_duration_seconds_count",
            &[("outcome", "aborted")]
        ),
        2.0
    );
    let inf_bucket = value_of(
        &samples,
        "tpc_transaction_duration_seconds_bucket",
        &[("outcome", "committed"), ("le", "+Inf")],
    );
    assert_eq!(inf_bucket, 3.0);
    // Every commit is timed in every phase; an abort may or may not have
    // heard both votes before it decided.
    assert_eq!(
        value_of(&samples, "tpc_decision_log_force_seconds_count", &[]),
        3.0
    );
    assert_eq!(
        value_of(&samples, "tpc_commit_round_trip_seconds_count", &[]),
        3.0
    );
    let prepared = value_of(&samples, "tpc_prepare_round_trip_seconds_count", &[]);
    assert!((3.0..=5.0).contains(&prepared), "{prepared}");
    assert!(value_of(&samples, "tpc_commit_round_trip_seconds_sum", &[]) > 0.0);
    // Every POST /api/transfers is timed in its handler, the 422 too.
    assert_eq!(
        value_of(&samples, "tpc_http_transfer_seconds_count", &[]),
        6.0
    );
    assert_eq!(
        value_of(&samples, "tpc_coordinator_commit_records_total", &[]),
        3.0
    );
    for name in [
        "tpc_transaction_duration_seconds",
        "tpc_prepare_round_trip_seconds",
        "tpc_decision_log_force_seconds",
        "tpc_commit_round_trip_seconds",
        "tpc_http_transfer_seconds",
    ] {
        assert_eq!(
            types.get(name).map(String::as_str),
            Some("histogram"),
            "{name}"
        );
    }
    assert_eq!(types["tpc_transactions_total"], "counter");
    assert_eq!(types["tpc_node_up"], "gauge");

    assert_eq!(value_of(&samples, "tpc_coordinator_up", &[]), 1.0);
    assert_eq!(value_of(&samples, "tpc_transactions_in_flight", &[]), 0.0);
    assert!(
        value_of(
            &samples,
            "tpc_log_forces_total",
            &[("process", "coordinator")]
        ) >= 1.0
    );
    for node in ["6001", "6002"] {
        assert_eq!(value_of(&samples, "tpc_node_up", &[("node", node)]), 1.0);
        assert_eq!(
            value_of(&samples, "tpc_node_connected", &[("node", node)]),
            1.0
        );
        assert_eq!(
            value_of(&samples, "tpc_in_doubt_transactions", &[("node", node)]),
            0.0
        );
        assert_eq!(
            value_of(
                &samples,
                "tpc_in_doubt_oldest_age_seconds",
                &[("node", node)]
            ),
            0.0
        );
        // Each node forced a PREPARED and a COMMITTED record per commit.
        assert!(value_of(&samples, "tpc_log_forces_total", &[("process", node)]) >= 2.0);
        assert!(value_of(&samples, "tpc_log_records_total", &[("process", node)]) >= 6.0);
    }
    assert_eq!(
        value_of(
            &samples,
            "tpc_account_balance_cents",
            &[("account", "A"), ("node", "6001")]
        ),
        97_000.0
    );
    assert_eq!(
        value_of(
            &samples,
            "tpc_account_balance_cents",
            &[("account", "B"), ("node", "6002")]
        ),
        103_000.0
    );
    assert_eq!(value_of(&samples, "tpc_total_cents", &[]), 200_000.0);
    assert_eq!(
        value_of(&samples, "tpc_expected_total_cents", &[]),
        200_000.0
    );

    // Step mode holds a transfer after its votes: both nodes are in doubt,
    // and the gauges say so while it waits.
    let (status, body) = c.put("/api/faults", json!({"phase_pause_ms": 1_500})).await;
    assert_eq!(status, 200, "{body}");
    let transfer = {
        let http = c.http.clone();
        let url = c.url("/api/transfers");
        tokio::spawn(async move {
            http.post(url)
                .json(&json!({"from": "A", "to": "B", "amount_cents": 100}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let samples = wait_for_async(
        "both nodes to report the paused transfer in doubt",
        DEADLINE,
        || async {
            let (samples, _) = scrape(&c).await;
            let both = ["6001", "6002"]
                .iter()
                .all(|n| value_of(&samples, "tpc_in_doubt_transactions", &[("node", n)]) == 1.0);
            both.then_some(samples)
        },
    )
    .await;
    assert_eq!(value_of(&samples, "tpc_transactions_in_flight", &[]), 1.0);
    assert_eq!(
        value_of(&samples, "tpc_locked_accounts", &[("node", "6001")]),
        1.0
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (later, _) = scrape(&c).await;
    if value_of(&later, "tpc_in_doubt_transactions", &[("node", "6001")]) == 1.0 {
        assert!(
            value_of(
                &later,
                "tpc_in_doubt_oldest_age_seconds",
                &[("node", "6001")]
            ) > 0.0
        );
    }
    assert_eq!(transfer.await.expect("the task").expect("an answer"), 200);
    let (status, _) = c.put("/api/faults", json!({"phase_pause_ms": 0})).await;
    assert_eq!(status, 200);
    c.wait_quiescent().await;

    // A killed node is down, and not connected.
    let (status, body) = c.post("/api/nodes/6002/crash", json!({})).await;
    assert_eq!(status, 200, "{body}");
    c.wait_node_status("6002", ComponentStatus::Down).await;
    let (samples, _) = scrape(&c).await;
    assert_eq!(value_of(&samples, "tpc_node_up", &[("node", "6002")]), 0.0);
    assert_eq!(value_of(&samples, "tpc_node_up", &[("node", "6001")]), 1.0);
    wait_for_async(
        "the coordinator to notice the lost connection",
        DEADLINE,
        || async {
            let (samples, _) = scrape(&c).await;
            (value_of(&samples, "tpc_node_connected", &[("node", "6002")]) == 0.0).then_some(())
        },
    )
    .await;
}

// ---------------------------------------------------------------- OpenAPI

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// The plain `.route(...)` calls in `backend/src/http/`: routes added
/// without a description. The catch-all that answers unknown `/api/` paths
/// is not an endpoint; any other such route must still be in the document.
fn plain_routes_in_source() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, source) in http_sources() {
        let mut rest = source.as_str();
        // `.route("/path", ...)`, however rustfmt wraps it.
        while let Some(at) = rest.find(".route(") {
            rest = rest[at + ".route(".len()..].trim_start();
            let Some(after_quote) = rest.strip_prefix('"') else {
                continue;
            };
            rest = after_quote;
            let end = rest.find('"').expect("a closed string");
            let route = rest[..end].to_string();
            // The handler expression: up to the `)` that closes `.route(`.
            let mut depth = 1;
            let mut handler_end = end;
            for (i, ch) in rest[end..].char_indices() {
                match ch {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            handler_end = end + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let handler = &rest[end..handler_end];
            if handler.contains("any(") {
                continue;
            }
            let mut found = false;
            for method in METHODS {
                let bare = handler.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0
                        || !handler.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && handler.as_bytes()[i - 1] != b'_'
                });
                if bare {
                    routes.insert((method.to_string(), route.clone()));
                    found = true;
                }
            }
            assert!(
                found,
                "cannot tell the methods of route {route} in {}: {handler}",
                path.display()
            );
        }
    }
    routes
}

/// How many handlers the router registers with utoipa-axum's `routes!(...)`
/// (each one an operation of the document).
fn described_handlers_in_source() -> usize {
    let mut handlers = 0;
    for (_, source) in http_sources() {
        for (at, _) in source.match_indices("routes!(") {
            let inside = &source[at + "routes!(".len()..];
            let inside = &inside[..inside.find(')').expect("a closed routes!(")];
            handlers += inside.split(',').filter(|h| !h.trim().is_empty()).count();
        }
    }
    handlers
}

fn http_sources() -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../backend/src/http");
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("backend/src/http exists") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("a readable source file");
        sources.push((path, source));
    }
    sources
}

fn routes_in_spec(spec: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                routes.insert((method.to_string(), path.clone()));
            }
        }
    }
    routes
}

/// A small JSON Schema checker for what utoipa emits: `$ref`, `allOf`,
/// `oneOf`, `anyOf`, `type` (one or several), `enum`, `required`,
/// `properties`, `additionalProperties`, `items`, `minimum`.
struct Schemas<'a> {
    doc: &'a Value,
}

impl Schemas<'_> {
    fn check(&self, schema: &Value, value: &Value) -> Result<(), String> {
        let mut errors = Vec::new();
        self.walk(schema, value, "$", &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    fn resolve<'s>(&'s self, reference: &str) -> &'s Value {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
        let schema = &self.doc["components"]["schemas"][name];
        assert!(!schema.is_null(), "dangling $ref {reference}");
        schema
    }

    fn walk(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            self.walk(self.resolve(reference), value, at, errors);
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.walk(s, value, at, errors);
            }
        }
        for (key, exactly_one) in [("oneOf", true), ("anyOf", false)] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                let mut branch_errors = Vec::new();
                let matching = branches
                    .iter()
                    .filter(|s| {
                        let mut e = Vec::new();
                        self.walk(s, value, at, &mut e);
                        branch_errors.extend(e.iter().cloned());
                        e.is_empty()
                    })
                    .count();
                let ok = if exactly_one {
                    matching == 1
                } else {
                    matching >= 1
                };
                if !ok {
                    errors.push(format!(
                        "{at}: {matching} branches of {key} match ({})",
                        branch_errors.join(" | ")
                    ));
                }
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                errors.push(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let fits = |t: &str| match t {
                "null" => value.is_null(),
                "boolean" => value.is_boolean(),
                // JSON Schema: a number with a zero fraction is an integer.
                "integer" => value.as_f64().is_some_and(|n| n.fract() == 0.0),
                "number" => value.is_number(),
                "string" => value.is_string(),
                "array" => value.is_array(),
                "object" => value.is_object(),
                other => panic!("unknown type {other}"),
            };
            if !types.iter().any(|t| fits(t)) {
                errors.push(format!("{at}: {value} is not of type {types:?}"));
                return;
            }
        }
        if let (Some(min), Some(n)) = (
            schema.get("minimum").and_then(Value::as_f64),
            value.as_f64(),
        ) {
            if n < min {
                errors.push(format!("{at}: {n} is below the minimum {min}"));
            }
        }
        if let Some(object) = value.as_object() {
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = required.as_str().unwrap_or_default();
                if !object.contains_key(name) {
                    errors.push(format!("{at}: the required field '{name}' is missing"));
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, field) in object {
                let at = format!("{at}.{key}");
                match (
                    properties.and_then(|p| p.get(key)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(s), _) => self.walk(s, field, &at, errors),
                    (None, Some(Value::Bool(false))) => errors.push(format!("{at}: unknown field")),
                    (None, Some(extra)) if extra.is_object() => {
                        self.walk(extra, field, &at, errors)
                    }
                    _ => {}
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                self.walk(items, item, &format!("{at}[{i}]"), errors);
            }
        }
    }

    fn component(&self, name: &str) -> &Value {
        self.resolve(&format!("#/components/schemas/{name}"))
    }

    /// The JSON schema of the answer `status` to `method path` (the path as
    /// the spec writes it); panics if that answer is not documented.
    fn response(&self, method: &str, path: &str, status: u16) -> &Value {
        let operation = &self.doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not in the spec");
        let response = &operation["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {path} answered {status}, which the spec does not document"
        );
        &response["content"]["application/json"]["schema"]
    }

    fn request(&self, method: &str, path: &str) -> &Value {
        &self.doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    }
}

/// Sends a request and checks that the answer validates against the spec.
async fn call_and_check(
    c: &Cluster,
    schemas: &Schemas<'_>,
    method: &str,
    template: &str,
    path: &str,
    body: Option<Value>,
    expected_status: u16,
) -> Value {
    let url = c.url(path);
    let request = match method {
        "get" => c.http.get(url),
        "post" => c.http.post(url),
        "put" => c.http.put(url),
        "delete" => c.http.delete(url),
        other => panic!("unexpected method {other}"),
    };
    let request = match &body {
        Some(json) => {
            // A request meant to succeed must fit its schema (bad ones are sent on purpose).
            let schema = Some(schemas.request(method, template))
                .filter(|s| !s.is_null() && expected_status < 400);
            if let Some(schema) = schema {
                schemas
                    .check(schema, json)
                    .unwrap_or_else(|e| panic!("the request body {json} of {method} {path}: {e}"));
            }
            request.json(json)
        }
        None => request,
    };
    let response = request.send().await.expect("the coordinator answers");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, expected_status, "{method} {path}: {answer}");
    let schema = schemas.response(method, template, status);
    schemas
        .check(schema, &answer)
        .unwrap_or_else(|e| panic!("{method} {path} answered {status} {answer}: {e}"));
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_matches_the_router_and_real_answers() {
    let c = Cluster::start(Options::default()).await;
    let (status, spec) = c.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{}",
        spec["openapi"]
    );

    // 1. The document is the router's: one operation per handler routed
    //    with `routes!`, and no route added without a description.
    let in_spec = routes_in_spec(&spec);
    let described = described_handlers_in_source();
    assert!(
        described >= 20,
        "the routes! scan found too little: {described}"
    );
    assert_eq!(
        in_spec.len(),
        described,
        "the document's operations are not the handlers routed with routes!(...): {in_spec:?}"
    );
    let plain = plain_routes_in_source();
    let undocumented: Vec<_> = plain.difference(&in_spec).collect();
    assert!(
        undocumented.is_empty(),
        "routes added with .route(...) and missing from the OpenAPI document (route them with \
         utoipa-axum's routes! and a #[utoipa::path]): {undocumented:?}"
    );
    for endpoint in [
        "/api/transfers",
        "/api/transactions",
        "/api/transactions/{tx_id}",
        "/api/transactions/{tx_id}/evidence",
        "/api/health",
        "/api/ready",
        "/api/cluster",
        "/api/accounts",
        "/api/accounts/{id}/ledger",
        "/api/stats",
        "/api/faults",
        "/api/nodes/{id}/crash",
        "/api/nodes/{id}/restart",
        "/api/nodes/{id}/link",
        "/api/coordinator/crash",
        "/api/messages",
        "/api/messages/next",
        "/api/messages/{id}",
        "/api/recording",
        "/api/recording/info",
        "/ws",
        "/metrics",
        "/api/openapi.json",
    ] {
        assert!(
            spec["paths"].get(endpoint).is_some(),
            "API.md's {endpoint} is not documented"
        );
    }

    // 2. ... and the running server has each one (not the catch-all 404, not 405).
    for (method, template) in &in_spec {
        let path = template
            .replace("{tx_id}", "no-such-tx")
            .replace("{id}", "no-such-id");
        let request = c.http.request(
            method.to_uppercase().parse().expect("a method"),
            c.url(&path),
        );
        let request = if method == "get" || method == "delete" {
            request
        } else {
            request.json(&json!({}))
        };
        let response = request.send().await.expect("the coordinator answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}: {text}");
        assert!(
            !text.contains("no such API endpoint"),
            "{method} {path} is not routed: {text}"
        );
    }

    // 3. Every schema reference resolves.
    let text = spec.to_string();
    for (at, _) in text.match_indices("\"$ref\":\"") {
        let reference = &text[at + 8..];
        let reference = &reference[..reference.find('"').expect("a closed string")];
        let schemas = Schemas { doc: &spec };
        schemas.resolve(reference);
    }

    let schemas = Schemas { doc: &spec };

    // 3b. Bounds come from shared::limits; the guard's answers and the
    //     (absent) token are declared; the cluster's accounts are named.
    let transfer = schemas.component("TransferRequest");
    assert_eq!(
        transfer["properties"]["amount_cents"]["maximum"],
        json!(AMOUNT_CENTS_MAX),
        "{transfer}"
    );
    assert_eq!(transfer["properties"]["amount_cents"]["minimum"], json!(1));
    assert_eq!(
        transfer["properties"]["tx_id"]["maxLength"],
        json!(TX_ID_BYTES_MAX)
    );
    assert_eq!(transfer["properties"]["from"]["enum"], json!(["A", "B"]));
    assert_eq!(transfer["additionalProperties"], json!(false));
    let link = schemas.component("LinkFault");
    assert_eq!(
        link["properties"]["delay_ms"]["maximum"],
        json!(LINK_DELAY_MS_MAX)
    );
    let crash = schemas.component("CoordinatorCrashRequest");
    assert_eq!(
        crash["properties"]["restart_after_ms"]["maximum"],
        json!(RESTART_AFTER_MS_MAX)
    );
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let responses = &operation["responses"];
            assert!(
                responses.get("421").is_some(),
                "{method} {path} lacks the Host guard's 421"
            );
            if method != "get" {
                for status in ["403", "415"] {
                    assert!(
                        responses.get(status).is_some(),
                        "{method} {path} lacks {status}"
                    );
                }
                // This coordinator has no token: no 401, no security.
                assert!(
                    responses.get("401").is_none(),
                    "{method} {path} declares a 401"
                );
                assert!(operation.get("security").is_none(), "{method} {path}");
            }
        }
    }

    // 4. Example requests serialised from the real types fit their schemas,
    //    and the checker is not blind: bad bodies fail.
    let transfer_schema = schemas.request("post", "/api/transfers");
    let examples = [
        (
            transfer_schema,
            serde_json::to_value(TransferRequest {
                from: "A".into(),
                to: "B".into(),
                amount_cents: 100,
                tx_id: None,
            }),
        ),
        (
            transfer_schema,
            serde_json::to_value(TransferRequest {
                from: "A".into(),
                to: "B".into(),
                amount_cents: 100,
                tx_id: Some("t".into()),
            }),
        ),
        (
            schemas.request("put", "/api/faults"),
            serde_json::to_value(FaultsUpdate::default()),
        ),
        (
            schemas.request("put", "/api/faults"),
            serde_json::to_value(FaultsUpdate {
                prepare_crash_probability: Some(0.3),
                phase_pause_ms: Some(10),
                hold_messages: Some(false),
            }),
        ),
        (
            schemas.request("put", "/api/nodes/{id}/link"),
            serde_json::to_value(LinkFault {
                delay_ms: 5,
                drop: true,
                duplicate: false,
            }),
        ),
        (
            schemas.request("post", "/api/coordinator/crash"),
            serde_json::to_value(CoordinatorCrashRequest {
                at: CrashPoint::MidCommit,
                restart_after_ms: 10,
            }),
        ),
        (
            schemas.request("post", "/api/nodes/{id}/crash"),
            serde_json::to_value(NodeCrashRequest {
                at: Some(ParticipantCrashPoint::AfterCommitApplied),
            }),
        ),
    ];
    for (schema, example) in examples {
        let example = example.expect("the example serialises");
        assert!(!schema.is_null(), "no request schema for {example}");
        schemas
            .check(schema, &example)
            .unwrap_or_else(|e| panic!("{example}: {e}"));
    }
    assert!(
        schemas
            .check(transfer_schema, &json!({"from": "A", "to": "B"}))
            .is_err(),
        "a missing amount passed"
    );
    assert!(
        schemas
            .check(
                transfer_schema,
                &json!({"from": "A", "to": "B", "amount_cents": 1, "x": 1})
            )
            .is_err(),
        "an unknown field passed"
    );
    assert!(
        schemas
            .check(
                transfer_schema,
                &json!({"from": "A", "to": "B", "amount_cents": "1"})
            )
            .is_err(),
        "a string amount passed"
    );
    let response_schema = schemas.component("TransferResponse");
    assert!(schemas
        .check(
            response_schema,
            &json!({"tx_id": "t", "votes": [], "duration_ms": 1.0})
        )
        .is_err());

    // 5. Real answers, success and error, fit the documented schemas.
    let check = |method: &'static str,
                 template: &'static str,
                 path: &'static str,
                 body: Option<Value>,
                 status: u16| {
        call_and_check(&c, &schemas, method, template, path, body, status)
    };
    let transfers = "/api/transfers";
    check(
        "post",
        transfers,
        transfers,
        Some(json!({"from": "A", "to": "B", "amount_cents": 1_000, "tx_id": "oa-1"})),
        200,
    )
    .await;
    let aborted = check(
        "post",
        transfers,
        transfers,
        Some(json!({"from": "A", "to": "B", "amount_cents": 10_000_000})),
        409,
    )
    .await;
    assert_eq!(aborted["outcome"], "aborted");
    let conflict = check(
        "post",
        transfers,
        transfers,
        Some(json!({"from": "A", "to": "B", "amount_cents": 5, "tx_id": "oa-1"})),
        409,
    )
    .await;
    assert!(conflict["error"].is_string(), "{conflict}");
    check(
        "post",
        transfers,
        transfers,
        Some(json!({"from": "A", "to": "A", "amount_cents": 1})),
        422,
    )
    .await;
    check(
        "post",
        transfers,
        transfers,
        Some(json!({"from": "A", "to": "B", "amount_cents": 1, "surprise": true})),
        400,
    )
    .await;

    // A whole number written as a float is the integer it equals; an array
    // is not an object; a limit of 0 is out of the documented range.
    check(
        "post",
        transfers,
        transfers,
        Some(json!({"from": "A", "to": "B", "amount_cents": 14587.0})),
        200,
    )
    .await;
    check(
        "post",
        transfers,
        transfers,
        Some(json!({"from": "A", "to": "B", "amount_cents": 1.5})),
        400,
    )
    .await;
    check(
        "put",
        "/api/faults",
        "/api/faults",
        Some(json!([null, null])),
        400,
    )
    .await;
    check(
        "get",
        "/api/transactions",
        "/api/transactions?limit=5.0",
        None,
        200,
    )
    .await;
    check("get", "/api/ready", "/api/ready", None, 200).await;
    check("get", "/api/health", "/api/health", None, 200).await;
    check(
        "get",
        "/api/transactions",
        "/api/transactions?limit=5",
        None,
        200,
    )
    .await;
    check(
        "get",
        "/api/transactions",
        "/api/transactions?limit=0",
        None,
        400,
    )
    .await;
    let detail = check(
        "get",
        "/api/transactions/{tx_id}",
        "/api/transactions/oa-1",
        None,
        200,
    )
    .await;
    assert!(
        detail["timeline"].as_array().is_some_and(|t| t.len() > 5),
        "{detail}"
    );
    check(
        "get",
        "/api/transactions/{tx_id}",
        "/api/transactions/never-was",
        None,
        404,
    )
    .await;
    let evidence = check(
        "get",
        "/api/transactions/{tx_id}/evidence",
        "/api/transactions/oa-1/evidence",
        None,
        200,
    )
    .await;
    assert_eq!(evidence["audit"]["ok"], true, "{evidence}");
    check(
        "get",
        "/api/transactions/{tx_id}/evidence",
        "/api/transactions/never-was/evidence",
        None,
        404,
    )
    .await;
    check("get", "/api/cluster", "/api/cluster", None, 200).await;
    check("get", "/api/accounts", "/api/accounts", None, 200).await;
    check(
        "get",
        "/api/accounts/{id}/ledger",
        "/api/accounts/A/ledger",
        None,
        200,
    )
    .await;
    check(
        "get",
        "/api/accounts/{id}/ledger",
        "/api/accounts/Z/ledger",
        None,
        404,
    )
    .await;
    check("get", "/api/stats", "/api/stats", None, 200).await;
    check("get", "/api/faults", "/api/faults", None, 200).await;

    check(
        "put",
        "/api/faults",
        "/api/faults",
        Some(json!({"phase_pause_ms": 0})),
        200,
    )
    .await;
    check(
        "put",
        "/api/faults",
        "/api/faults",
        Some(json!({"prepare_crash_probability": 2.0})),
        422,
    )
    .await;
    let link = "/api/nodes/{id}/link";
    check(
        "put",
        link,
        "/api/nodes/6002/link",
        Some(json!({"delay_ms": 1})),
        200,
    )
    .await;
    check("delete", link, "/api/nodes/6002/link", None, 200).await;
    check("put", link, "/api/nodes/9/link", Some(json!({})), 404).await;
    let (crash, restart) = ("/api/nodes/{id}/crash", "/api/nodes/{id}/restart");
    check("post", crash, "/api/nodes/6002/crash", None, 200).await;
    c.wait_node_status("6002", ComponentStatus::Down).await;
    check("post", crash, "/api/nodes/6002/crash", None, 409).await;
    check("post", restart, "/api/nodes/6002/restart", None, 200).await;
    check("post", restart, "/api/nodes/6002/restart", None, 409).await;
    c.wait_all_up().await;
    check(
        "post",
        crash,
        "/api/nodes/6002/crash",
        Some(json!({"at": "after_commit_applied"})),
        200,
    )
    .await;
    let coordinator = "/api/coordinator/crash";
    check(
        "post",
        coordinator,
        coordinator,
        Some(json!({"at": "teatime"})),
        400,
    )
    .await;
    check(
        "post",
        coordinator,
        coordinator,
        Some(json!({"at": "mid_commit", "restart_after_ms": 100})),
        200,
    )
    .await;
    check("delete", coordinator, coordinator, None, 200).await;
    check("delete", coordinator, coordinator, None, 404).await;

    // Step mode's held messages and the recording.
    let held = check("get", "/api/messages", "/api/messages", None, 200).await;
    assert_eq!(held["hold"], false, "{held}");
    let (next, one) = ("/api/messages/next", "/api/messages/{id}");
    check("post", next, next, None, 404).await;
    check("post", next, next, Some(json!({"phase": true})), 404).await;
    check(
        "post",
        one,
        "/api/messages/7",
        Some(json!({"action": "drop"})),
        404,
    )
    .await;
    check(
        "post",
        one,
        "/api/messages/7",
        Some(json!({"action": "delay"})),
        422,
    )
    .await;
    let info = check(
        "get",
        "/api/recording/info",
        "/api/recording/info",
        None,
        200,
    )
    .await;
    assert_eq!(info["enabled"], true, "{info}");
    check(
        "get",
        "/api/recording",
        "/api/recording?from_seq=x",
        None,
        400,
    )
    .await;

    // 6. The WebSocket's first message, a snapshot, is an `Event`.
    let ws_url = c.url("/ws").replacen("http://", "ws://", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("a WebSocket");
    let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a message in time")
        .expect("an open stream")
        .expect("a message");
    let event: Value = serde_json::from_str(message.to_text().expect("text")).expect("JSON");
    assert_eq!(event["kind"], "snapshot");
    schemas
        .check(schemas.component("Event"), &event)
        .unwrap_or_else(|e| panic!("the snapshot: {e}"));
}

// ---------------------------------------------------------------- readiness

/// `/api/ready` with its reasons, and `/api/health` beside it.
async fn readiness(c: &Cluster) -> (u16, Value) {
    let (status, body) = c.get("/api/ready").await;
    let (health, alive) = c.get("/api/health").await;
    assert_eq!((health, alive), (200, json!({"status": "ok"})), "liveness");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_names_a_killed_node_until_it_is_back() {
    let c = Cluster::start(Options::default()).await;
    let (status, body) = wait_for_async("the cluster to be ready", DEADLINE, || async {
        let (status, body) = readiness(&c).await;
        (status == 200).then_some((status, body))
    })
    .await;
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["decision_log_open"], true, "{body}");
    assert_eq!(body["reasons"], json!([]), "{body}");
    assert_eq!(status, 200);

    // kill -9 from outside, as an operator or the OOM killer would.
    let pid = node_pid(&c, "6002").await.expect("node 6002 runs");
    kill9(pid);
    let body = wait_for_async(
        "/api/ready to say 503 about node 6002",
        DEADLINE,
        || async {
            let (status, body) = readiness(&c).await;
            (status == 503).then_some(body)
        },
    )
    .await;
    assert_eq!(body["ready"], false, "{body}");
    let reasons = body["reasons"].as_array().expect("reasons");
    assert!(
        reasons
            .iter()
            .any(|r| r["node"] == "6002" && r["reason"] == "node_down" && r["detail"].is_string()),
        "no reason names node 6002 down: {body}"
    );
    assert!(
        reasons.iter().all(|r| r["node"] == "6002"),
        "only node 6002 is at fault: {body}"
    );
    let nodes = body["nodes"].as_array().expect("nodes");
    assert!(
        nodes.contains(&json!({"id": "6001", "connected": true})),
        "{body}"
    );
    assert!(
        nodes.contains(&json!({"id": "6002", "connected": false})),
        "{body}"
    );
    let response = c
        .http
        .get(c.url("/api/ready"))
        .send()
        .await
        .expect("an answer");
    if response.status() == 503 {
        assert!(
            response.headers().contains_key("retry-after"),
            "a 503 says when to retry"
        );
    }

    // It comes back: ready again.
    let (status, restarted) = c.post("/api/nodes/6002/restart", json!({})).await;
    assert_eq!(status, 200, "{restarted}");
    let body = wait_for_async("/api/ready to say 200 again", DEADLINE, || async {
        let (status, body) = readiness(&c).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["reasons"], json!([]), "{body}");
}

// ---------------------------------------------------------------- API page

/// Every `src="..."` and `href="..."` of an HTML page.
fn links_of(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attribute) {
            let rest = &html[at + attribute.len()..];
            if let Some(end) = rest.find('"') {
                links.push(rest[..end].to_string());
            }
        }
    }
    links
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_page_and_its_assets_are_served_with_no_network() {
    let c = Cluster::start(Options::default()).await;
    let page = c
        .http
        .get(c.url("/api/docs/"))
        .send()
        .await
        .expect("the page");
    assert_eq!(page.status(), 200);
    let content_type = page.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = page.text().await.expect("text");
    let links = links_of(&html);
    assert!(
        links.len() >= 3,
        "the page names its scripts and styles: {links:?}\n{html}"
    );
    // Nothing from elsewhere: the page works with no internet.
    for link in &links {
        assert!(
            !link.contains("://") && !link.starts_with("//"),
            "the page loads {link} from another site"
        );
    }
    let mut scripts = String::new();
    for link in &links {
        let url = c.url(&format!("/api/docs/{}", link.trim_start_matches("./")));
        let asset = c.http.get(&url).send().await.expect("an asset");
        assert_eq!(asset.status(), 200, "{url}");
        let body = asset.text().await.expect("text");
        assert!(body.len() > 100, "{url} is nearly empty: {body}");
        if link.ends_with(".js") {
            scripts.push_str(&body);
        }
    }
    // The page shows this coordinator's own document.
    assert!(
        scripts.contains("/api/openapi.json"),
        "no script of the page points at /api/openapi.json"
    );
    let (status, spec) = c.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(spec["paths"]["/api/transfers"].is_object());
    // Also without the trailing slash.
    let bare = c
        .http
        .get(c.url("/api/docs"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(bare.status(), 200, "/api/docs leads to the page");
}

// ---------------------------------------------------------------- CLI

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_a_real_cluster() {
    let c = Cluster::start(Options::default()).await;
    let url = c.base_url.clone();
    let u = Some(url.as_str());

    let run = tpc(u, &["transfer", "A", "B", "12.50", "--tx-id", "cli-1"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("committed")
            && run.stdout.contains("$12.50")
            && run.stdout.contains("cli-1"),
        "{}",
        run.stdout
    );

    let run = tpc(u, &["transfer", "A", "B", "5000"]).await;
    assert_eq!(run.code, 3, "an aborted transfer exits 3");
    assert!(
        run.stdout.contains("aborted") && run.stdout.contains("insufficient_funds"),
        "{}",
        run.stdout
    );

    // --url on the command line wins over TPC_URL; --json prints the server's body.
    let run = tpc(
        Some("http://127.0.0.1:1"),
        &[
            "--url", &url, "transfer", "A", "B", "--cents", "250", "--json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let body: Value = serde_json::from_str(&run.stdout).expect("--json prints JSON");
    assert_eq!(body["outcome"], "committed");

    let balances = c.balances().await;
    assert_eq!(
        (balances["A"], balances["B"]),
        (100_000 - 1_250 - 250, 100_000 + 1_250 + 250)
    );

    let run = tpc(u, &["status"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("coordinator  up"), "{}", run.stdout);
    assert!(
        run.stdout.contains("6001") && run.stdout.contains("6002"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("A $985.00") && run.stdout.contains("B $1,015.00"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("in doubt: none"), "{}", run.stdout);
    assert!(
        run.stdout.contains("total $2,000.00 of $2,000.00 ✓"),
        "{}",
        run.stdout
    );

    let run = tpc(u, &["status", "--json"]).await;
    let view: shared::api::ClusterView = serde_json::from_str(&run.stdout).expect("a cluster view");
    assert_eq!(view.total_cents, 200_000);

    let run = tpc(u, &["accounts"]).await;
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("$985.00") && run.stdout.contains("total $2,000.00"),
        "{}",
        run.stdout
    );

    let run = tpc(u, &["ledger", "B"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("cli-1")
            && run.stdout.contains("+$12.50")
            && run.stdout.contains("$1,012.50"),
        "{}",
        run.stdout
    );
    let run = tpc(u, &["ledger", "B", "--json"]).await;
    let entries: Vec<shared::api::LedgerEntry> =
        serde_json::from_str(&run.stdout).expect("a ledger");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].tx_id, "cli-1");

    let run = tpc(u, &["tx", "cli-1"]).await;
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("committed")
            && run.stdout.contains("timeline")
            && run.stdout.contains("tx_started"),
        "{}",
        run.stdout
    );

    // Errors: the server's sentence, exit 1.
    let run = tpc(u, &["tx", "never-was"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no transaction 'never-was' is known"),
        "{}",
        run.stderr
    );
    let run = tpc(u, &["transfer", "A", "B", "1", "--tx-id", "cli-1"]).await;
    assert_eq!(run.code, 1, "a reused tx_id is an error, not an abort");
    assert!(run.stderr.contains("cli-1"), "{}", run.stderr);
    let run = tpc(u, &["ledger", "nobody"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no account 'nobody'"), "{}", run.stderr);

    // Usage: exit 2, nothing sent.
    for args in [
        &["transfer", "A", "B", "1.234"][..],
        &["transfer", "A", "B", "-3"],
        &["transfer", "A", "B"],
        &["fly"],
    ] {
        let run = tpc(u, args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    }
    assert_eq!(c.ledger("A").await.len(), 2);
    let run = tpc(None, &["--help"]).await;
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("transfer") && run.stdout.contains("Examples"),
        "{}",
        run.stdout
    );

    // Crash and restart a node.
    let run = tpc(u, &["crash", "6002"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("node 6002 killed"), "{}", run.stdout);
    c.wait_node_status("6002", ComponentStatus::Down).await;
    let run = tpc(u, &["status"]).await;
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("6002") && l.contains("down")),
        "{}",
        run.stdout
    );
    let run = tpc(u, &["restart", "6002"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    c.wait_all_up().await;
    let run = tpc(u, &["crash", "nine"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no node 'nine'"), "{}", run.stderr);

    // An unreachable coordinator: a clear sentence and exit 1.
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port();
    let nowhere = format!("http://127.0.0.1:{free_port}");
    let run = tpc(Some(&nowhere), &["status"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(&format!("cannot reach the coordinator at {nowhere}: is it running? start it with scripts/demo.sh")),
        "{}",
        run.stderr
    );
    let run = tpc(None, &["--url", "ftp://x", "status"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
}
