//! Errors and notices in the corner; each disappears by itself or on click.

use leptos::prelude::*;

use crate::context::use_ctx;

#[component]
pub fn Toasts() -> impl IntoView {
    let ctx = use_ctx();
    view! {
        <div class="toasts" aria-live="polite">
            <For each=move || ctx.toasts.get() key=|t| t.id let:toast>
                {
                    let id = toast.id;
                    view! {
                        <div class=format!("toast {}", toast.tone.class()) data-testid="toast" role="status"
                            on:click=move |_| ctx.dismiss_toast(id)>
                            <strong>{toast.title.clone()}</strong>
                            <span>{toast.text.clone()}</span>
                        </div>
                    }
                }
            </For>
        </div>
    }
}
