//! Small pieces the panels share: a numeric input with its label, and one
//! figure of a run's counts (the concurrency demo, the chaos run).

use leptos::prelude::*;

/// A labelled numeric input bound to `text` (parsed by the panel on use).
#[component]
pub fn NumberField(
    label: &'static str,
    test_id: &'static str,
    text: RwSignal<String>,
) -> impl IntoView {
    view! {
        <label class="field compact">
            <span>{label}</span>
            <input data-testid=test_id inputmode="numeric" prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))/>
        </label>
    }
}

/// One figure of a run: `value` above its `label`, coloured by `tone`
/// (`good`, `bad`, `warn`, or none).
#[component]
pub fn Count(
    #[prop(into)] value: String,
    label: &'static str,
    #[prop(optional)] tone: &'static str,
    #[prop(optional)] test_id: Option<&'static str>,
) -> impl IntoView {
    let class = if tone.is_empty() {
        "count".to_string()
    } else {
        format!("count {tone}")
    };
    view! {
        <div class=class><strong data-testid=test_id>{value}</strong><span>{label}</span></div>
    }
}
