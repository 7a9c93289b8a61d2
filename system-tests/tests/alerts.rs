//! The alert rules in `ops/prometheus/alerts.yml` against a real
//! coordinator's `/metrics`: every series a rule reads exists, with the
//! labels the rule selects or groups by, so a renamed metric cannot leave
//! an alert that never fires. (`promtool` checks the rules' syntax and
//! unit-tests their logic in the test command.)

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use shared::api::ComponentStatus;
use system_tests::{wait_for_async, Cluster, Options, DEADLINE};

/// A series a rule reads: its name and the labels it names.
#[derive(Debug, Default)]
struct Reads {
    labels: BTreeSet<String>,
}

/// The metric names each `expr:` of the rule file reads, with the labels
/// it names in `{...}` selectors and `by (...)` clauses (those belong to
/// every metric of the expression).
fn series_read(rules: &str) -> BTreeMap<String, Reads> {
    let mut read: BTreeMap<String, Reads> = BTreeMap::new();
    for line in rules.lines() {
        let Some(expr) = line.trim().trim_start_matches("- ").strip_prefix("expr:") else {
            continue;
        };
        let mut names = Vec::new();
        let mut labels = BTreeSet::new();
        let chars: Vec<char> = expr.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if expr[char_offset(&chars, i)..].starts_with("by (") {
                let rest = &expr[char_offset(&chars, i) + 4..];
                let inner = rest.split(')').next().unwrap_or_default();
                labels.extend(
                    inner
                        .split(',')
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty()),
                );
                i += 4;
            } else if chars[i].is_ascii_alphabetic() || chars[i] == '_' {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word.starts_with("tpc_") || word.starts_with("process_") {
                    names.push(word);
                } else if chars.get(i) == Some(&'=') || chars.get(i) == Some(&'!') {
                    labels.insert(word);
                }
            } else {
                i += 1;
            }
        }
        assert!(!names.is_empty(), "an expression reads no metric: {expr}");
        for name in names {
            read.entry(name)
                .or_default()
                .labels
                .extend(labels.iter().cloned());
        }
    }
    read
}

fn char_offset(chars: &[char], i: usize) -> usize {
    chars[..i].iter().map(|c| c.len_utf8()).sum()
}

/// Sample names and each one's label names, from the text format.
fn exported(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..end].to_string()).or_default();
        if let Some(body) = line[end..]
            .strip_prefix('{')
            .and_then(|r| r.split('}').next())
        {
            for pair in body.split("\",") {
                if let Some((label, _)) = pair.split_once('=') {
                    labels.insert(label.trim().to_string());
                }
            }
        }
    }
    out
}

fn value(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(c: &Cluster) -> String {
    let response = c
        .http
        .get(c.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.expect("a text body")
}

#[test]
fn the_rule_reader_finds_names_and_labels() {
    let read = series_read(
        "  - expr: histogram_quantile(0.99, sum by (le) (rate(tpc_a_bucket{outcome=\"x\"}[5m]))) > 1\n\
         \x20   expr: max by (node, kind) (tpc_b) > 30 and on() (process_c == 1)\n",
    );
    assert_eq!(
        read.keys().cloned().collect::<Vec<_>>(),
        ["process_c", "tpc_a_bucket", "tpc_b"]
    );
    assert_eq!(
        read["tpc_a_bucket"].labels.iter().collect::<Vec<_>>(),
        ["le", "outcome"]
    );
    assert_eq!(
        read["tpc_b"].labels.iter().collect::<Vec<_>>(),
        ["kind", "node"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_an_alert_reads_is_exported_with_its_labels() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ops/prometheus/alerts.yml");
    let rules = std::fs::read_to_string(path).expect("ops/prometheus/alerts.yml");
    let read = series_read(&rules);
    assert!(read.len() >= 6, "{read:?}");

    let c = Cluster::start(Options::default()).await;
    let (status, body) = c.transfer_outcome("A", "B", 1_000, Some("alerts-1")).await;
    assert_eq!(status, 200, "{body:?}");
    c.wait_quiescent().await;
    let text = scrape(&c).await;
    let series = exported(&text);
    for (name, reads) in &read {
        let Some(labels) = series.get(name) else {
            panic!("the rules read {name}, which /metrics does not export:\n{text}");
        };
        for label in &reads.labels {
            assert!(
                labels.contains(label),
                "the rules read {name} by its label {label}, which it does not have ({labels:?})"
            );
        }
    }

    // What the money alert compares, on a healthy cluster: the whole total,
    // equal to the expected one.
    assert_eq!(value(&text, "tpc_total_complete"), Some(1.0), "{text}");
    assert_eq!(
        value(&text, "tpc_total_cents"),
        value(&text, "tpc_expected_total_cents"),
        "{text}"
    );

    // A node down: its alert's series says so, and the total is marked
    // partial, so the money alert does not take a missing node for lost money.
    let (status, body) = c.post("/api/nodes/6002/crash", json!({})).await;
    assert_eq!(status, 200, "{body}");
    c.wait_node_status("6002", ComponentStatus::Down).await;
    wait_for_async(
        "/metrics to show node 6002 down and the total partial",
        DEADLINE,
        || async {
            let text = scrape(&c).await;
            (value(&text, "tpc_node_up{node=\"6002\"}") == Some(0.0)
                && value(&text, "tpc_total_complete") == Some(0.0))
            .then_some(())
        },
    )
    .await;
}
