//! The stats panel's charts in a real browser (headless Chromium via
//! chromedriver), drawn from a stats fixture: latency p50/p99 and aborts by
//! reason over the last minute, and the time per protocol phase.
//!
//!   CHROMEDRIVER=/usr/bin/chromedriver cargo test -p frontend --target wasm32-unknown-unknown --test charts
#![cfg(target_arch = "wasm32")]

use std::collections::BTreeMap;

use frontend::components::stats::StatsPanel;
use frontend::context::Ctx;
use frontend::model::Model;
use leptos::prelude::*;
use shared::api::{LatencyPoint, PhaseLatencyMs, Stats};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{Element, HtmlElement};

wasm_bindgen_test_configure!(run_in_browser);

fn mount(model: Model) -> HtmlElement {
    let container: HtmlElement = document().create_element("div").unwrap().unchecked_into();
    document().body().unwrap().append_child(&container).unwrap();
    let handle = leptos::mount::mount_to(container.clone(), move || {
        provide_context(Ctx::new(model));
        view! { <StatsPanel/> }
    });
    handle.forget();
    container
}

fn find(root: &HtmlElement, selector: &str) -> Element {
    root.query_selector(selector)
        .unwrap()
        .unwrap_or_else(|| panic!("no {selector}"))
}

async fn settle() {
    for _ in 0..3 {
        leptos::task::tick().await;
    }
}

fn fixture() -> Stats {
    let mut latency_history = vec![LatencyPoint::default(); 60];
    latency_history[58] = LatencyPoint {
        p50: 3.0,
        p99: 12.0,
    };
    latency_history[59] = LatencyPoint { p50: 4.0, p99: 6.0 };
    let mut abort_history = vec![BTreeMap::new(); 60];
    abort_history[59] = BTreeMap::from([
        ("insufficient_funds".to_string(), 2),
        ("timeout".to_string(), 1),
    ]);
    Stats {
        latency_history,
        abort_history,
        phases_ms: PhaseLatencyMs {
            prepare: LatencyPoint { p50: 2.0, p99: 8.0 },
            decision_force: LatencyPoint { p50: 1.0, p99: 4.0 },
            commit: LatencyPoint { p50: 1.0, p99: 2.0 },
        },
        ..Stats::default()
    }
}

#[wasm_bindgen_test]
async fn the_charts_render_from_the_stats() {
    let mut model = Model::default();
    model.stats = fixture();
    let root = mount(model);
    settle().await;
    let p99 = find(&root, "[data-testid=latency-p99]")
        .get_attribute("points")
        .unwrap();
    assert_eq!(p99.split(' ').count(), 60, "{p99}");
    // The highest p99 touches the top of the box.
    assert!(p99.contains(",0.0 "), "{p99}");
    assert!(find(&root, "[data-testid=latency-chart]")
        .text_content()
        .unwrap()
        .contains("top 12"));
    let rects = root
        .query_selector_all("[data-testid=abort-chart] rect")
        .unwrap();
    assert_eq!(rects.length(), 2);
    let chart = find(&root, "[data-testid=abort-chart]")
        .text_content()
        .unwrap();
    assert!(
        chart.contains("insufficient funds") && chart.contains("peak 3/s"),
        "{chart}"
    );
    let phases = find(&root, "[data-testid=phase-chart]")
        .text_content()
        .unwrap();
    assert!(
        phases.contains("phase 1") && phases.contains("phase 2") && phases.contains("COMMIT"),
        "{phases}"
    );
    let widest = find(&root, "[data-testid=phase-chart] .phase-p99")
        .get_attribute("style")
        .unwrap();
    assert_eq!(widest, "width: 100.0%");
}

#[wasm_bindgen_test]
async fn an_idle_minute_draws_flat_lines_and_no_aborts() {
    let root = mount(Model::default());
    settle().await;
    let rects = root
        .query_selector_all("[data-testid=abort-chart] rect")
        .unwrap();
    assert_eq!(rects.length(), 0);
    assert_eq!(
        find(&root, "[data-testid=latency-p50]")
            .get_attribute("points")
            .unwrap(),
        ""
    );
}
