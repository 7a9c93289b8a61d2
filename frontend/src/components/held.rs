//! Step mode's held messages: the list of protocol messages the
//! coordinator holds, "Next" (one message) and "Next phase" (the oldest
//! message's whole step, e.g. both prepares), and per message: deliver now,
//! drop, duplicate, or delay by N ms. [`MessageActions`] is also what a
//! click on a held arrow of the diagram opens.

use leptos::prelude::*;
use shared::api::{MessageAction, MessageActionRequest};
use shared::limits::HELD_MESSAGE_DELAY_MS_MAX;

use crate::api;
use crate::components::cluster::run_command;
use crate::context::use_ctx;
use crate::format::{duration_ms, message_way, short_tx_id};

/// The delay offered first for "delay".
pub const DELAY_MS_DEFAULT: u64 = 1_000;

/// Deliver / drop / duplicate / delay buttons for held message `id`.
#[component]
pub fn MessageActions(id: u64) -> impl IntoView {
    let ctx = use_ctx();
    let busy = RwSignal::new(false);
    let delay_ms = RwSignal::new(DELAY_MS_DEFAULT);
    let traveling = move || ctx.traveling();
    let act = move |action: MessageAction| {
        let delay = (action == MessageAction::Delay).then(|| delay_ms.get_untracked());
        let request = MessageActionRequest {
            action,
            delay_ms: delay,
        };
        let label = match action {
            MessageAction::Deliver => format!("Deliver #{id}"),
            MessageAction::Drop => format!("Drop #{id}"),
            MessageAction::Duplicate => format!("Duplicate #{id}"),
            MessageAction::Delay => format!("Delay #{id} by {} ms", delay.unwrap_or(0)),
        };
        run_command(ctx, busy, label, async move {
            api::act_on_message(id, &request).await
        });
    };
    let disabled = move || busy.get() || traveling();
    view! {
        <div class="message-actions" data-testid=format!("message-actions-{id}")>
            <button class="btn btn-small btn-primary" data-testid=format!("deliver-{id}") disabled=disabled
                title="send it on now" on:click=move |_| act(MessageAction::Deliver)>"Deliver"</button>
            <button class="btn btn-small btn-danger" data-testid=format!("drop-{id}") disabled=disabled
                title="throw it away: it never arrives" on:click=move |_| act(MessageAction::Drop)>"Drop"</button>
            <button class="btn btn-small" data-testid=format!("duplicate-{id}") disabled=disabled
                title="send it on twice" on:click=move |_| act(MessageAction::Duplicate)>"Duplicate"</button>
            <span class="delay-group">
                <button class="btn btn-small" data-testid=format!("delay-{id}") disabled=disabled
                    title="send it on after the delay" on:click=move |_| act(MessageAction::Delay)>"Delay"</button>
                <input type="number" class="delay-ms" min="1" max=HELD_MESSAGE_DELAY_MS_MAX.to_string() step="100"
                    data-testid=format!("delay-ms-{id}")
                    prop:value=move || delay_ms.get().to_string()
                    on:input=move |ev| {
                        let ms = event_target_value(&ev).parse().unwrap_or(DELAY_MS_DEFAULT);
                        delay_ms.set(ms.clamp(1, HELD_MESSAGE_DELAY_MS_MAX));
                    }/>
                <span class="muted small">"ms"</span>
            </span>
        </div>
    }
}

/// The held messages with "Next" and "Next phase" (shown in step mode).
#[component]
pub fn HeldMessagesPanel() -> impl IntoView {
    let ctx = use_ctx();
    let held = Memo::new(move |_| {
        ctx.model
            .with(|m| m.held.values().cloned().collect::<Vec<_>>())
    });
    let hold_on = Memo::new(move |_| ctx.model.with(|m| m.faults.hold_messages));
    let busy = RwSignal::new(false);
    let next = move |phase: bool| {
        let label = if phase { "Next phase" } else { "Next message" };
        run_command(ctx, busy, label.to_string(), async move {
            api::next_message(phase).await.map(|_| ())
        });
    };
    let nothing_held = move || held.with(Vec::is_empty);
    let disabled = move || busy.get() || nothing_held() || ctx.traveling();
    let shown = move || hold_on.get() || !nothing_held();
    view! {
        <Show when=shown>
            <div class="held-messages" data-testid="held-messages">
                <div class="held-head">
                    <span class="control-title">"Held messages "<span class="chip chip-warn" data-testid="held-count">{move || held.with(Vec::len)}</span></span>
                    <span class="btn-group">
                        <button class="btn btn-primary" data-testid="next-message" disabled=disabled
                            title="let the oldest held message go" on:click=move |_| next(false)>"Next ▶"</button>
                        <button class="btn" data-testid="next-phase" disabled=disabled
                            title="let the oldest message's whole step go (e.g. both prepares)" on:click=move |_| next(true)>"Next phase ▶▶"</button>
                    </span>
                </div>
                {move || nothing_held().then(|| view! {
                    <p class="muted small">"Nothing held yet: start a transfer; each protocol message stops here."</p>
                })}
                <ul class="held-list">
                    <For each=move || held.get() key=|m| m.id let:m>
                        <li class="held-item" data-testid=format!("held-{}", m.id) data-message=m.message.as_str() data-node=m.node.clone()>
                            <div class="held-what">
                                <span class="mono">{format!("#{}", m.id)}</span>
                                <strong>{message_way(m.message, m.direction, &m.node)}</strong>
                                <span class="muted">{m.detail.clone()}</span>
                                <span class="mono muted small" title=m.tx_id.clone()>{short_tx_id(&m.tx_id)}</span>
                                <span class="muted small">{move || {
                                    let waited = ctx.now_ms.get().saturating_sub(m.since_ms);
                                    format!("held {}", duration_ms(waited as f64))
                                }}</span>
                            </div>
                            <MessageActions id=m.id/>
                        </li>
                    </For>
                </ul>
            </div>
        </Show>
    }
}
