//! Where a transfer's time goes, from the coordinator's own clock: the mean
//! of each protocol phase over a run, from two scrapes of its `/metrics`
//! (Prometheus histograms `_sum` and `_count`), set beside the latency the
//! clients saw. Between "in the coordinator" (the engine's clock, request
//! to answer) and "in the HTTP handler" lie the hop to the engine and
//! back; between the handler and the clients, the HTTP server, the
//! network and the clients' own turn for a core.

use std::fmt;

use system_tests::Cluster;

/// The histograms, in protocol order: (metric name, what it is).
pub const PHASES: [(&str, &str); 5] = [
    ("tpc_prepare_round_trip_seconds", "prepare round trip"),
    ("tpc_decision_log_force_seconds", "decision log force"),
    ("tpc_commit_round_trip_seconds", "commit round trip"),
    (
        "tpc_transaction_duration_seconds{outcome=\"committed\"}",
        "in the coordinator",
    ),
    ("tpc_http_transfer_seconds", "in the HTTP handler"),
];

/// One scrape: (sum in seconds, count) of each of [`PHASES`], in order.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scrape([(f64, f64); PHASES.len()]);

/// Reads the phase histograms out of a Prometheus text exposition. A
/// histogram that is missing is an error (the coordinator's metrics
/// changed, and this must follow).
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut scrape = Scrape::default();
    for (i, (name, _)) in PHASES.iter().enumerate() {
        let (base, labels) = match name.find('{') {
            Some(at) => name.split_at(at),
            None => (*name, ""),
        };
        let value = |suffix: &str| -> Result<f64, String> {
            let key = format!("{base}{suffix}{labels}");
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| {
                    let (k, v) = l.rsplit_once(' ')?;
                    (k == key).then(|| v.parse::<f64>().ok()).flatten()
                })
                .ok_or_else(|| format!("/metrics has no number for {key}"))
        };
        scrape.0[i] = (value("_sum")?, value("_count")?);
    }
    Ok(scrape)
}

/// Scrapes the coordinator's `/metrics`.
pub async fn scrape(cluster: &Cluster) -> anyhow::Result<Scrape> {
    let response = cluster.http.get(cluster.url("/metrics")).send().await?;
    anyhow::ensure!(
        response.status().as_u16() == 200,
        "GET /metrics answered {}",
        response.status()
    );
    parse(&response.text().await?).map_err(anyhow::Error::msg)
}

/// The mean of each phase (ms) between two scrapes; None for a phase that
/// saw nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Means(pub [Option<f64>; PHASES.len()]);

impl Means {
    pub fn between(before: &Scrape, after: &Scrape) -> Means {
        let mut means = [None; PHASES.len()];
        for (i, mean) in means.iter_mut().enumerate() {
            let sum = after.0[i].0 - before.0[i].0;
            let count = after.0[i].1 - before.0[i].1;
            if count > 0.0 {
                *mean = Some(1_000.0 * sum / count);
            }
        }
        Means(means)
    }
}

impl fmt::Display for Means {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = PHASES
            .iter()
            .zip(&self.0)
            .map(|((_, what), mean)| match mean {
                Some(ms) => format!("{what} {ms:.3}"),
                None => format!("{what} -"),
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP tpc_prepare_round_trip_seconds Prepare.\n\
        # TYPE tpc_prepare_round_trip_seconds histogram\n\
        tpc_prepare_round_trip_seconds_bucket{le=\"0.001\"} 3\n\
        tpc_prepare_round_trip_seconds_sum 0.5\n\
        tpc_prepare_round_trip_seconds_count 100\n\
        tpc_decision_log_force_seconds_sum 0.25\n\
        tpc_decision_log_force_seconds_count 100\n\
        tpc_commit_round_trip_seconds_sum 0.3\n\
        tpc_commit_round_trip_seconds_count 100\n\
        tpc_transaction_duration_seconds_sum{outcome=\"aborted\"} 9\n\
        tpc_transaction_duration_seconds_count{outcome=\"aborted\"} 1\n\
        tpc_transaction_duration_seconds_sum{outcome=\"committed\"} 1.5\n\
        tpc_transaction_duration_seconds_count{outcome=\"committed\"} 100\n\
        tpc_http_transfer_seconds_sum 1.7\n\
        tpc_http_transfer_seconds_count 100\n";

    #[test]
    fn the_phase_means_come_from_the_sums_and_counts() {
        let after = parse(TEXT).expect("parses");
        let means = Means::between(&Scrape::default(), &after);
        let ms: Vec<f64> = means.0.iter().map(|m| m.expect("a mean")).collect();
        assert_eq!(ms.len(), 5);
        for (got, want) in ms.iter().zip([5.0, 2.5, 3.0, 15.0, 17.0]) {
            assert!((got - want).abs() < 1e-9, "{ms:?}");
        }
        assert_eq!(
            means.to_string(),
            "prepare round trip 5.000, decision log force 2.500, commit round trip 3.000, in the coordinator 15.000, in the HTTP handler 17.000"
        );
        assert_eq!(Means::between(&after, &after).0, [None; 5]);
    }

    #[test]
    fn a_missing_histogram_is_an_error_that_names_it() {
        let text = TEXT.replace("tpc_commit_round_trip_seconds_count 100\n", "");
        let error = parse(&text).expect_err("incomplete");
        assert!(
            error.contains("tpc_commit_round_trip_seconds_count"),
            "{error}"
        );
    }
}
