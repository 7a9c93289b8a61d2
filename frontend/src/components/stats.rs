//! Stats: totals, commit rate, abort reasons as a bar chart, latency
//! percentiles and a throughput sparkline (committed per second, last 60 s);
//! latency (p50, p99) and aborts by reason per second over the same minute,
//! and the time per protocol phase.

use leptos::prelude::*;

use crate::charts::{abort_chart, bars, latency_chart, phase_bars, sparkline};
use crate::context::use_ctx;
use crate::format::{duration_ms, percent};

const SPARK_W: f64 = 320.0;
const SPARK_H: f64 = 64.0;
/// Colours of the abort reasons, in the chart's order of reasons.
const REASON_COLORS: [&str; 6] = [
    "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563",
];

#[component]
pub fn StatsPanel() -> impl IntoView {
    let ctx = use_ctx();
    let stats = Memo::new(move |_| ctx.model.with(|m| m.stats.clone()));

    let commit_rate = move || {
        let s = stats.get();
        let finished = s.committed + s.aborted;
        if finished == 0 {
            "–".to_string()
        } else {
            percent(s.committed as f64 / finished as f64)
        }
    };
    let reason_bars = move || {
        let list = bars(&stats.get().aborts_by_reason);
        if list.is_empty() {
            return view! { <p class="muted small">"No aborts yet."</p> }.into_any();
        }
        view! {
            <ul class="bars" data-testid="abort-reasons">
                {list.into_iter().map(|bar| view! {
                    <li>
                        <span class="bar-label">{bar.label}</span>
                        <span class="bar-track"><span class="bar-fill" style=format!("width: {:.1}%", bar.fraction * 100.0)></span></span>
                        <span class="bar-count">{bar.count}</span>
                    </li>
                }).collect_view()}
            </ul>
        }
        .into_any()
    };
    let spark = Memo::new(move |_| sparkline(&stats.get().throughput_history, SPARK_W, SPARK_H));
    let latency = move || {
        let l = stats.get().latency_ms;
        [("p50", l.p50), ("p90", l.p90), ("p99", l.p99), ("p99.9", l.p999), ("max", l.max)]
            .into_iter()
            .map(|(name, ms)| view! { <div class="lat"><span class="lat-name">{name}</span><span class="lat-value">{duration_ms(ms)}</span></div> })
            .collect_view()
    };

    let latency_lines =
        Memo::new(move |_| latency_chart(&stats.get().latency_history, SPARK_W, SPARK_H));
    let aborts = Memo::new(move |_| abort_chart(&stats.get().abort_history, SPARK_W, SPARK_H));
    let phases = move || {
        phase_bars(&stats.get().phases_ms)
            .into_iter()
            .map(|bar| view! {
                <li>
                    <span class="bar-label">{bar.label}</span>
                    <span class="bar-track" title=format!("p50 {} · p99 {}", duration_ms(bar.p50_ms), duration_ms(bar.p99_ms))>
                        <span class="bar-fill phase-p99" style=format!("width: {:.1}%", bar.p99_fraction * 100.0)></span>
                        <span class="bar-fill phase-p50" style=format!("width: {:.1}%", bar.p50_fraction * 100.0)></span>
                    </span>
                    <span class="bar-count">{format!("{} / {}", duration_ms(bar.p50_ms), duration_ms(bar.p99_ms))}</span>
                </li>
            })
            .collect_view()
    };
    let abort_key = move || {
        aborts
            .get()
            .reasons
            .into_iter()
            .enumerate()
            .map(|(i, reason)| view! {
                <span class="legend-item"><span class="swatch" style=format!("background: {}", REASON_COLORS[i % REASON_COLORS.len()])></span>{crate::format::reason_key_label(&reason)}</span>
            })
            .collect_view()
    };

    view! {
        <div class="panel" data-testid="stats-panel">
            <div class="panel-head">
                <h3>"Stats"</h3>
                <span class="muted small">{move || format!("since start · {} log forces", stats.get().log_forces)}</span>
            </div>
            <div class="kpis">
                <div class="kpi"><span class="kpi-value" data-testid="stats-attempted">{move || stats.get().attempted}</span><span class="kpi-label">"attempted"</span></div>
                <div class="kpi good"><span class="kpi-value" data-testid="stats-committed">{move || stats.get().committed}</span><span class="kpi-label">"committed"</span></div>
                <div class="kpi bad"><span class="kpi-value" data-testid="stats-aborted">{move || stats.get().aborted}</span><span class="kpi-label">"aborted"</span></div>
                <div class="kpi"><span class="kpi-value">{commit_rate}</span><span class="kpi-label">"commit rate"</span></div>
            </div>
            <div class="stats-grid">
                <div>
                    <div class="sub-head">"Abort reasons"</div>
                    {reason_bars}
                </div>
                <div>
                    <div class="sub-head">"Latency"</div>
                    <div class="latency">{latency}</div>
                </div>
                <div class="throughput">
                    <div class="sub-head">
                        "Throughput "
                        <span class="muted small">{move || format!("{:.1} committed/s now · peak {}/s", stats.get().throughput_per_s, spark.get().max)}</span>
                    </div>
                    <svg class="spark" viewBox=format!("0 0 {SPARK_W} {SPARK_H}") preserveAspectRatio="none" role="img" aria-label="committed per second, last minute">
                        <path class="spark-area" d=move || spark.get().area/>
                        <polyline class="spark-line" points=move || spark.get().points/>
                    </svg>
                    <div class="spark-axis muted small"><span>"−60 s"</span><span>"now"</span></div>
                </div>
                <div class="throughput" data-testid="latency-chart">
                    <div class="sub-head">
                        "Latency per second "
                        <span class="muted small">{move || format!("p50 and p99 · top {}", duration_ms(latency_lines.get().max_ms))}</span>
                    </div>
                    <svg class="spark" viewBox=format!("0 0 {SPARK_W} {SPARK_H}") preserveAspectRatio="none" role="img" aria-label="latency p50 and p99 per second, last minute">
                        <polyline class="lat-p99" data-testid="latency-p99" points=move || latency_lines.get().p99/>
                        <polyline class="lat-p50" data-testid="latency-p50" points=move || latency_lines.get().p50/>
                    </svg>
                    <div class="spark-axis muted small"><span>"−60 s"</span><span class="legend-item"><span class="swatch lat-p50-swatch"></span>"p50 "<span class="swatch lat-p99-swatch"></span>"p99"</span><span>"now"</span></div>
                </div>
                <div class="throughput" data-testid="abort-chart">
                    <div class="sub-head">
                        "Aborts per second "
                        <span class="muted small">{move || format!("by reason · peak {}/s", aborts.get().max)}</span>
                    </div>
                    <svg class="spark" viewBox=format!("0 0 {SPARK_W} {SPARK_H}") preserveAspectRatio="none" role="img" aria-label="aborts by reason per second, last minute">
                        {move || aborts.get().rects.into_iter().map(|r| view! {
                            <rect class="abort-rect" x=format!("{:.1}", r.x) y=format!("{:.1}", r.y) width=format!("{:.1}", r.width) height=format!("{:.1}", r.height) fill=REASON_COLORS[r.reason % REASON_COLORS.len()]>
                                <title>{r.title}</title>
                            </rect>
                        }).collect_view()}
                    </svg>
                    <div class="spark-axis muted small"><span>"−60 s"</span><span>{abort_key}</span><span>"now"</span></div>
                </div>
                <div data-testid="phase-chart">
                    <div class="sub-head">"Time per phase " <span class="muted small">"p50 / p99"</span></div>
                    <ul class="bars phase-bars">{phases}</ul>
                </div>
            </div>
        </div>
    }
}
