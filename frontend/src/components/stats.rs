//! Stats: totals, commit rate, abort reasons as a bar chart, latency
//! percentiles and a throughput sparkline (committed per second, last 60 s).

use leptos::prelude::*;

use crate::charts::{bars, sparkline};
use crate::context::use_ctx;
use crate::format::{duration_ms, percent};

const SPARK_W: f64 = 320.0;
const SPARK_H: f64 = 64.0;

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
            </div>
        </div>
    }
}
