//! The API token field. Hidden until a change is refused with 401 (the
//! coordinator runs with `--api-token-file`); then it asks for the token,
//! which this tab keeps (sessionStorage) and sends with every change.

use leptos::prelude::*;

use crate::api::{self, API_TOKEN_CHARS_MIN};

#[component]
pub fn TokenPrompt() -> impl IntoView {
    let wanted = api::token_wanted();
    let input = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(token) = api::clean_token(&input.get_untracked()) else {
            problem.set(Some(format!(
                "a token has at least {API_TOKEN_CHARS_MIN} characters and no spaces"
            )));
            return;
        };
        if api::save_token(&token) {
            input.set(String::new());
            problem.set(None);
        } else {
            problem.set(Some(
                "the browser refused to keep it (sessionStorage)".to_string(),
            ));
        }
    };
    view! {
        <Show when=move || wanted.get()>
            <form class="banner banner-token" role="alert" data-testid="token-prompt" on:submit=submit>
                <strong>"API token needed"</strong>
                <span>"This coordinator refuses changes without its token (--api-token-file). This tab keeps it until closed; then retry."</span>
                <input type="password" autocomplete="off" placeholder="paste the token" aria-label="API token"
                    data-testid="token-input"
                    prop:value=move || input.get()
                    on:input=move |ev| input.set(event_target_value(&ev))/>
                <button type="submit" class="btn" data-testid="token-save">"Use it"</button>
                {move || problem.get().map(|p| view! { <span class="small">{p}</span> })}
            </form>
        </Show>
    }
}
