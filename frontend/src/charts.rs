//! Geometry of the small charts in the stats panel. Pure.

use std::collections::BTreeMap;

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
}
