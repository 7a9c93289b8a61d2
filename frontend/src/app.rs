//! Lays out the page: every panel, on the [`Ctx`] it provides, and the
//! live stream that feeds it. An address naming a moment (`#t=<seq>`)
//! opens the recorded run there; one naming a transaction pins it.

use std::time::Duration;

use leptos::prelude::*;

use crate::components::evidence::EvidencePanel;
use crate::components::{
    chaos::ChaosPanel, cluster::ClusterPanel, faults::FaultsPanel, header::Header,
    history::HistoryPanel, in_doubt::InDoubtPanel, load::LoadPanel, protocol::ProtocolPanel,
    scenarios::ScenariosPanel, spacetime::SpaceTimePanel, stats::StatsPanel,
    timeline::TimelinePanel, toasts::Toasts, token::TokenPrompt, transfer::TransferPanel,
};
use crate::context::{address_moment, now_ms, Ctx, CLOCK_TICK_MS, CLUSTER_POLL_MS, STATS_POLL_MS};
use crate::model::{Effects, Model};
use crate::ws::{use_live_events, Connection};

#[component]
pub fn App() -> impl IntoView {
    let ctx = Ctx::new(Model::default());
    provide_context(ctx);

    let connection = use_live_events(
        move |batch| {
            let now = now_ms();
            let mut effects = Effects::default();
            let mut resynced = false;
            // While the page travels, the live state goes on in the stash.
            ctx.update_live(|m| {
                for event in batch {
                    resynced |= matches!(event.kind, shared::events::EventKind::Snapshot(_));
                    let e = m.fold(event, now);
                    effects.refresh_cluster |= e.refresh_cluster;
                    effects.refresh_faults |= e.refresh_faults;
                    effects.refresh_in_doubt |= e.refresh_in_doubt;
                }
            });
            if ctx.travel.with_untracked(Option::is_some) {
                return;
            }
            ctx.run_effects(effects);
            if resynced {
                ctx.refresh_accounts();
                ctx.refresh_held();
            }
        },
        move || ctx.update_live(Model::connection_lost),
    );
    Effect::new(move |_| ctx.connection.set(connection.get()));

    // First paint from plain HTTP, so the page is useful even before the
    // stream's snapshot arrives.
    ctx.refresh_cluster();
    ctx.refresh_accounts();
    ctx.refresh_stats();
    ctx.refresh_faults();
    ctx.refresh_history();
    ctx.refresh_held();
    let moment = address_moment();
    if let Some(seq) = moment.seq {
        ctx.open_recording(Some(seq));
    }
    if let Some(tx_id) = moment.tx_id {
        ctx.pin(tx_id);
    }

    // Polls only while the stream is live: offline, they would only fail.
    let live = move || ctx.connection.get_untracked() == Connection::Live;
    let stats_timer = set_interval_with_handle(
        move || {
            if live() {
                ctx.refresh_stats();
            }
        },
        Duration::from_millis(STATS_POLL_MS),
    )
    .ok();
    let cluster_timer = set_interval_with_handle(
        move || {
            if live() {
                ctx.refresh_cluster();
            }
        },
        Duration::from_millis(CLUSTER_POLL_MS),
    )
    .ok();
    let clock_timer = set_interval_with_handle(
        move || ctx.now_ms.set(now_ms()),
        Duration::from_millis(CLOCK_TICK_MS),
    )
    .ok();
    on_cleanup(move || {
        for timer in [stats_timer, cluster_timer, clock_timer]
            .into_iter()
            .flatten()
        {
            timer.clear();
        }
    });

    view! {
        <div class="app">
            <Header/>
            <TokenPrompt/>
            <main class="layout" class:is-offline=move || !ctx.traveling() && ctx.connection.get() != Connection::Live>
                <section class="area-timeline">
                    <TimelinePanel/>
                </section>
                <section class="area-cluster">
                    <ClusterPanel/>
                </section>
                <section class="area-scenarios">
                    <ScenariosPanel/>
                </section>
                <section class="area-in-doubt">
                    <InDoubtPanel/>
                </section>
                <div class="columns">
                    <section class="column column-controls">
                        <TransferPanel/>
                        <FaultsPanel/>
                        <LoadPanel/>
                        <ChaosPanel/>
                    </section>
                    <section class="column column-live">
                        <ProtocolPanel/>
                        <EvidencePanel/>
                        <SpaceTimePanel/>
                        <StatsPanel/>
                        <HistoryPanel/>
                    </section>
                </div>
            </main>
            <Toasts/>
        </div>
    }
}
