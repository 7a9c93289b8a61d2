//! Geometry of the small charts in the stats panel: throughput, latency
//! (p50 and p99) and aborts by reason over the last minute, and the time
//! per protocol phase. Pure: SVG coordinates from `Stats`.

use std::collections::BTreeMap;

use shared::api::{LatencyPoint, PhaseLatencyMs};

use crate::format::reason_key_label;

/// A sparkline as SVG data: the polyline's `points` and the filled area's
/// path, in a `width` × `height` box (y grows downwards).
#[derive(Debug, Clone, PartialEq)]
pub struct Sparkline {
    pub points: String,
    pub area: String,
    pub max: u64,
}

/// Values oldest first; the highest value touches the top (with a floor of
/// 1 so an idle system draws a flat line at the bottom).
pub fn sparkline(values: &[u64], width: f64, height: f64) -> Sparkline {
    let max = values.iter().copied().max().unwrap_or(0);
    if values.is_empty() {
        return Sparkline {
            points: String::new(),
            area: String::new(),
            max,
        };
    }
    let scale_max = max.max(1) as f64;
    let step = if values.len() > 1 {
        width / (values.len() - 1) as f64
    } else {
        0.0
    };
    let coords: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = if values.len() > 1 {
                step * i as f64
            } else {
                width
            };
            (x, height - (*v as f64 / scale_max) * height)
        })
        .collect();
    let points = coords
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ");
    let first_x = coords[0].0;
    let last_x = coords[coords.len() - 1].0;
    let line = coords
        .iter()
        .map(|(x, y)| format!("L{x:.1},{y:.1}"))
        .collect::<String>();
    let area = format!("M{first_x:.1},{height:.1} {line} L{last_x:.1},{height:.1} Z");
    Sparkline { points, area, max }
}

/// One bar of the abort-reasons chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub key: String,
    pub label: String,
    pub count: u64,
    /// Share of the longest bar, 0..=1.
    pub fraction: f64,
}

/// Non-zero counts, largest first (ties by name), scaled to the largest.
pub fn bars(counts: &BTreeMap<String, u64>) -> Vec<Bar> {
    let max = counts.values().copied().max().unwrap_or(0).max(1) as f64;
    let mut bars: Vec<Bar> = counts
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(key, count)| Bar {
            key: key.clone(),
            label: reason_key_label(key),
            count: *count,
            fraction: *count as f64 / max,
        })
        .collect();
    bars.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    bars
}

/// The latency chart: p50 and p99 per second as two polylines on one
/// scale (a second with no transfer is drawn at zero).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyChart {
    pub p50: String,
    pub p99: String,
    /// The top of the scale, in milliseconds.
    pub max_ms: f64,
}

pub fn latency_chart(history: &[LatencyPoint], width: f64, height: f64) -> LatencyChart {
    let max_ms = history
        .iter()
        .map(|p| p.p99.max(p.p50))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let scale = if max_ms > 0.0 { max_ms } else { 1.0 };
    let line = |pick: fn(&LatencyPoint) -> f64| {
        let step = if history.len() > 1 {
            width / (history.len() - 1) as f64
        } else {
            0.0
        };
        history
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let v = pick(p);
                let v = if v.is_finite() {
                    v.clamp(0.0, scale)
                } else {
                    0.0
                };
                format!("{:.1},{:.1}", step * i as f64, height - v / scale * height)
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    LatencyChart {
        p50: line(|p| p.p50),
        p99: line(|p| p.p99),
        max_ms,
    }
}

/// One rectangle of the stacked abort chart: a reason's aborts in one second.
#[derive(Debug, Clone, PartialEq)]
pub struct StackRect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// Index in [`AbortChart::reasons`] (its colour).
    pub reason: usize,
    pub title: String,
}

/// Aborts by reason per second, stacked; `reasons` in a fixed order.
#[derive(Debug, Clone, PartialEq)]
pub struct AbortChart {
    pub rects: Vec<StackRect>,
    pub reasons: Vec<String>,
    /// The most aborts in one second.
    pub max: u64,
}

pub fn abort_chart(history: &[BTreeMap<String, u64>], width: f64, height: f64) -> AbortChart {
    let mut reasons: Vec<String> = history
        .iter()
        .flat_map(|second| {
            second
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, _)| k.clone())
        })
        .collect();
    reasons.sort();
    reasons.dedup();
    let max = history
        .iter()
        .map(|second| second.values().sum::<u64>())
        .max()
        .unwrap_or(0);
    let scale = max.max(1) as f64;
    let slot = if history.is_empty() {
        0.0
    } else {
        width / history.len() as f64
    };
    let mut rects = Vec::new();
    for (i, second) in history.iter().enumerate() {
        let mut top = height;
        for (r, reason) in reasons.iter().enumerate() {
            let n = second.get(reason).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let h = n as f64 / scale * height;
            top -= h;
            let ago = history.len() - 1 - i;
            rects.push(StackRect {
                x: slot * i as f64,
                y: top,
                width: (slot - 1.0).max(1.0),
                height: h,
                reason: r,
                title: format!("{n} × {} ({ago} s ago)", reason_key_label(reason)),
            });
        }
    }
    AbortChart {
        rects,
        reasons,
        max,
    }
}

/// One protocol phase's bar: p50 and p99, each a share of the longest p99.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseBar {
    pub label: &'static str,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p50_fraction: f64,
    pub p99_fraction: f64,
}

pub fn phase_bars(phases: &PhaseLatencyMs) -> Vec<PhaseBar> {
    let all = [
        ("phase 1 · prepare / vote", phases.prepare),
        ("commit point · COMMIT forced", phases.decision_force),
        ("phase 2 · commit / ack", phases.commit),
    ];
    let finite = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
    let max = all
        .iter()
        .map(|(_, p)| finite(p.p99).max(finite(p.p50)))
        .fold(0.0, f64::max);
    let share = |v: f64| if max > 0.0 { finite(v) / max } else { 0.0 };
    all.into_iter()
        .map(|(label, p)| PhaseBar {
            label,
            p50_ms: finite(p.p50),
            p99_ms: finite(p.p99),
            p50_fraction: share(p.p50),
            p99_fraction: share(p.p99),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_spans_the_box_and_peaks_at_the_top() {
        let line = sparkline(&[0, 5, 10], 100.0, 20.0);
        assert_eq!(line.points, "0.0,20.0 50.0,10.0 100.0,0.0");
        assert_eq!(
            line.area,
            "M0.0,20.0 L0.0,20.0L50.0,10.0L100.0,0.0 L100.0,20.0 Z"
        );
        assert_eq!(line.max, 10);
    }

    #[test]
    fn idle_and_empty_sparklines() {
        assert_eq!(sparkline(&[0, 0], 10.0, 4.0).points, "0.0,4.0 10.0,4.0");
        assert_eq!(sparkline(&[], 10.0, 4.0).points, "");
        assert_eq!(sparkline(&[3], 10.0, 4.0).points, "10.0,0.0");
    }

    #[test]
    fn bars_sorted_and_scaled() {
        let counts: BTreeMap<String, u64> = [
            ("timeout".to_string(), 2),
            ("insufficient_funds".to_string(), 4),
            ("lock_conflict".to_string(), 0),
        ]
        .into_iter()
        .collect();
        let bars = bars(&counts);
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].label, "insufficient funds");
        assert_eq!(bars[0].fraction, 1.0);
        assert_eq!(bars[1].fraction, 0.5);
    }

    #[test]
    fn latency_lines_share_one_scale_topped_by_the_highest_p99() {
        let history = [
            LatencyPoint { p50: 1.0, p99: 4.0 },
            LatencyPoint { p50: 2.0, p99: 8.0 },
            LatencyPoint::default(),
        ];
        let chart = latency_chart(&history, 100.0, 40.0);
        assert_eq!(chart.max_ms, 8.0);
        assert_eq!(chart.p99, "0.0,20.0 50.0,0.0 100.0,40.0");
        assert_eq!(chart.p50, "0.0,35.0 50.0,30.0 100.0,40.0");
        let idle = latency_chart(&[LatencyPoint::default(); 2], 10.0, 4.0);
        assert_eq!((idle.p50.as_str(), idle.max_ms), ("0.0,4.0 10.0,4.0", 0.0));
    }

    #[test]
    fn aborts_stack_by_reason_per_second() {
        let second = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        let history = [
            second(&[]),
            second(&[("timeout", 1), ("insufficient_funds", 3)]),
            second(&[("timeout", 2)]),
        ];
        let chart = abort_chart(&history, 30.0, 40.0);
        assert_eq!(chart.reasons, ["insufficient_funds", "timeout"]);
        assert_eq!(chart.max, 4);
        assert_eq!(chart.rects.len(), 3);
        let first = &chart.rects[0];
        assert_eq!(
            (first.x, first.y, first.height, first.reason),
            (10.0, 10.0, 30.0, 0)
        );
        assert_eq!((chart.rects[1].y, chart.rects[1].height), (0.0, 10.0));
        assert!(
            chart.rects[1].title.contains("1 s ago"),
            "{}",
            chart.rects[1].title
        );
        assert!(abort_chart(&[], 30.0, 40.0).rects.is_empty());
    }

    #[test]
    fn phase_bars_scale_to_the_longest_p99() {
        let phases = PhaseLatencyMs {
            prepare: LatencyPoint {
                p50: 2.0,
                p99: 10.0,
            },
            decision_force: LatencyPoint { p50: 1.0, p99: 5.0 },
            commit: LatencyPoint {
                p50: f64::NAN,
                p99: 2.5,
            },
        };
        let bars = phase_bars(&phases);
        assert_eq!(bars.len(), 3);
        assert_eq!((bars[0].p99_fraction, bars[0].p50_fraction), (1.0, 0.2));
        assert_eq!(bars[1].p99_fraction, 0.5);
        assert_eq!((bars[2].p50_ms, bars[2].p99_fraction), (0.0, 0.25));
        let none = phase_bars(&PhaseLatencyMs::default());
        assert!(none.iter().all(|b| b.p99_fraction == 0.0));
    }
}
