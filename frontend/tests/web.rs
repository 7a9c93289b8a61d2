//! The panels in a real browser (headless Chromium via chromedriver):
//! each test mounts one panel on a hand-made state and reads the DOM
//! (time travel, held messages and the space-time view included).
//!
//!   CHROMEDRIVER=/usr/bin/chromedriver cargo test -p frontend --target wasm32-unknown-unknown
#![cfg(target_arch = "wasm32")]

use std::cell::Cell;
use std::rc::Rc;

use frontend::components::{
    cluster::ClusterPanel, header::Header, held::HeldMessagesPanel, in_doubt::InDoubtBody,
    protocol::ProtocolPanel, spacetime::SpaceTimePanel, timeline::TimelinePanel,
    transfer::TransferPanel,
};
use frontend::context::Ctx;
use frontend::in_doubt::Polled;
use frontend::model::Model;
use frontend::replay::{Replay, Source};
use frontend::ws::Connection;
use leptos::prelude::*;
use shared::api::{
    AccountView, ClusterView, ComponentStatus, CoordinatorTxState, CoordinatorView, Faults,
    HeuristicView, InDoubtEntry, InDoubtView, LinkFault, MoneyAudit, NodeView, PreparedOn, Stats,
    StuckBecause, StuckReason, VoteView,
};
use shared::events::{Direction, Event, EventKind, MessageName, Snapshot};
use shared::wire::{AccountBalance, Decision, InDoubtTx};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{Element, HtmlElement, HtmlInputElement};

wasm_bindgen_test_configure!(run_in_browser);

fn node(id: &str, account: &str, balance_cents: i64) -> NodeView {
    NodeView {
        id: id.into(),
        addr: format!("127.0.0.1:{id}"),
        status: ComponentStatus::Up,
        accounts: vec![AccountBalance {
            id: account.into(),
            balance_cents,
        }],
        in_doubt: vec![],
        in_doubt_detail: vec![],
        locked_accounts: vec![],
        link: LinkFault::default(),
        supervised: true,
        pid: Some(42),
        refused: None,
    }
}

fn cluster(total_cents: i64) -> ClusterView {
    ClusterView {
        coordinator: CoordinatorView {
            status: ComponentStatus::Up,
            demo_mode: true,
            cluster: None,
            epoch: None,
        },
        nodes: vec![
            node("6001", "A", 100_000),
            node("6002", "B", total_cents - 100_000),
        ],
        total_cents,
        expected_total_cents: 200_000,
        total_complete: true,
    }
}

fn model_with(cluster: ClusterView) -> Model {
    let mut model = Model::default();
    model.set_cluster(cluster, 0);
    model.accounts = vec![
        AccountView {
            id: "A".into(),
            node: "6001".into(),
            balance_cents: 100_000,
        },
        AccountView {
            id: "B".into(),
            node: "6002".into(),
            balance_cents: 100_000,
        },
    ];
    model
}

/// Mounts `panel` in a fresh container with `model` as the shared state;
/// returns the container and the context to change the state later.
fn mount<V: IntoView + 'static>(model: Model, panel: fn() -> V) -> (HtmlElement, Ctx) {
    let document = document();
    let container: HtmlElement = document.create_element("div").unwrap().unchecked_into();
    document.body().unwrap().append_child(&container).unwrap();
    let slot = Rc::new(Cell::new(None));
    let out = Rc::clone(&slot);
    let handle = leptos::mount::mount_to(container.clone(), move || {
        let ctx = Ctx::new(model);
        provide_context(ctx);
        out.set(Some(ctx));
        panel()
    });
    handle.forget();
    (container, slot.get().expect("mounted"))
}

fn find(root: &HtmlElement, selector: &str) -> Option<Element> {
    root.query_selector(selector).unwrap()
}

fn text_of(root: &HtmlElement, selector: &str) -> String {
    find(root, selector)
        .unwrap_or_else(|| panic!("no {selector}"))
        .text_content()
        .unwrap_or_default()
}

fn count(root: &HtmlElement, selector: &str) -> u32 {
    root.query_selector_all(selector).unwrap().length()
}

async fn settle() {
    for _ in 0..3 {
        leptos::task::tick().await;
    }
}

#[wasm_bindgen_test]
async fn header_shows_the_invariant_and_turns_loud_when_violated() {
    let (root, ctx) = mount(model_with(cluster(200_000)), || view! { <Header/> });
    settle().await;
    assert_eq!(
        text_of(&root, "[data-testid=invariant]"),
        "Total $2,000.00 ✓"
    );
    assert!(find(&root, "[data-testid=violation-banner]").is_none());

    ctx.model.update(|m| m.set_cluster(cluster(190_000), 0));
    settle().await;
    assert!(text_of(&root, "[data-testid=invariant]").contains("≠"));
    assert!(find(&root, ".invariant.violated").is_some());
    assert!(find(&root, "[data-testid=violation-banner]").is_some());

    ctx.connection.set(Connection::Reconnecting {
        attempt: 2,
        retry_in_ms: 1_000,
    });
    settle().await;
    assert!(text_of(&root, "[data-testid=reconnecting-banner]").contains("Reconnecting"));
    assert_eq!(text_of(&root, "[data-testid=connection]"), "offline");
}

#[wasm_bindgen_test]
async fn cluster_cards_show_status_balances_and_in_doubt_waits() {
    let mut view = cluster(200_000);
    view.nodes[1].status = ComponentStatus::Down;
    view.nodes[0].locked_accounts = vec!["A".into()];
    view.nodes[0].in_doubt = vec!["tx-doubt".into()];
    view.nodes[0].in_doubt_detail = vec![InDoubtTx {
        tx_id: "tx-doubt".into(),
        prepared_for_ms: 4_000,
    }];
    let (root, _ctx) = mount(model_with(view), || view! { <ClusterPanel/> });
    settle().await;
    assert_eq!(text_of(&root, "[data-testid=balance-A]"), "$1,000.00");
    assert_eq!(text_of(&root, "[data-testid=node-status-6002]"), "down");
    assert!(find(&root, "[data-testid=node-card-6002].is-down").is_some());
    assert!(text_of(&root, "[data-testid=in-doubt-6001]").contains("waiting"));
    assert!(find(&root, ".account.is-locked").is_some());
    let restart: HtmlElement = find(&root, "[data-testid=restart-6002]")
        .unwrap()
        .unchecked_into();
    assert!(
        !restart.has_attribute("disabled"),
        "a down node can be restarted"
    );
    assert!(find(&root, "[data-testid=crash-6002]")
        .unwrap()
        .has_attribute("disabled"));
}

fn ev(seq: u64, kind: EventKind) -> Event {
    Event {
        seq,
        ts_ms: 1_000 + seq,
        kind,
    }
}

#[wasm_bindgen_test]
async fn protocol_view_draws_the_latest_transaction_as_it_happens() {
    let (root, ctx) = mount(Model::default(), || view! { <ProtocolPanel/> });
    let snapshot = Snapshot {
        cluster: cluster(200_000),
        transactions: vec![],
        stats: Stats::default(),
        faults: Faults::default(),
    };
    let events = vec![
        ev(1, EventKind::Snapshot(Box::new(snapshot))),
        ev(
            2,
            EventKind::TxStarted {
                tx_id: "t1".into(),
                from: "A".into(),
                to: "B".into(),
                amount_cents: 100,
                nodes: vec!["6001".into(), "6002".into()],
                one_phase: false,
            },
        ),
        ev(
            3,
            EventKind::PrepareSent {
                tx_id: "t1".into(),
                node: "6001".into(),
            },
        ),
        ev(
            4,
            EventKind::PrepareSent {
                tx_id: "t1".into(),
                node: "6002".into(),
            },
        ),
        ev(
            5,
            EventKind::Vote {
                tx_id: "t1".into(),
                node: "6001".into(),
                vote: VoteView::Ready,
                reason: None,
            },
        ),
    ];
    ctx.model.update(|m| {
        for e in events {
            m.fold(e, 0);
        }
    });
    settle().await;
    assert_eq!(count(&root, "[data-testid=sequence-diagram] .seq-row"), 4);
    assert_eq!(count(&root, "[data-testid=sequence-diagram] .lane"), 3);
    assert_eq!(count(&root, "[data-testid=event-log] li"), 4);

    ctx.model.update(|m| {
        m.fold(
            ev(
                6,
                EventKind::Decision {
                    tx_id: "t1".into(),
                    decision: Decision::Commit,
                    reason: None,
                },
            ),
            0,
        );
    });
    settle().await;
    assert_eq!(count(&root, "[data-testid=sequence-diagram] .seq-row"), 5);
    assert!(text_of(&root, "[data-testid=sequence-diagram]").contains("decide COMMIT"));
    assert!(
        find(&root, "[data-testid=sequence-diagram] .msg.tone-good").is_some(),
        "the ready vote is green"
    );
}

#[wasm_bindgen_test]
async fn transfer_form_refuses_bad_input_before_sending() {
    let (root, _ctx) = mount(model_with(cluster(200_000)), || view! { <TransferPanel/> });
    settle().await;
    assert_eq!(count(&root, "[data-testid=transfer-from] option"), 2);

    let amount: HtmlInputElement = find(&root, "[data-testid=transfer-amount]")
        .unwrap()
        .unchecked_into();
    amount.set_value("12.345");
    let input = web_sys::Event::new_with_event_init_dict("input", &{
        let init = web_sys::EventInit::new();
        init.set_bubbles(true);
        init
    })
    .unwrap();
    amount.dispatch_event(&input).unwrap();
    let submit: HtmlElement = find(&root, "[data-testid=transfer-submit]")
        .unwrap()
        .unchecked_into();
    submit.click();
    settle().await;
    assert!(text_of(&root, "[data-testid=transfer-error]").contains("at most two decimals"));
    assert!(
        find(&root, "[data-testid=transfer-result]").is_none(),
        "nothing was sent"
    );
}

fn in_doubt_fixture() -> InDoubtView {
    InDoubtView {
        coordinator: ComponentStatus::Up,
        transactions: vec![InDoubtEntry {
            tx_id: "tx-stuck".into(),
            prepared_on: vec![PreparedOn {
                node: "6001".into(),
                prepared_for_ms: 5_000,
            }],
            pending_acks: vec!["6002".into()],
            age_ms: 5_000,
            coordinator_state: CoordinatorTxState::Committing,
            decision: Some(Decision::Commit),
            stuck: vec![StuckBecause {
                reason: StuckReason::NodeDown,
                node: Some("6002".into()),
                detail: "node 6002 is down; it comes back in doubt from its log".into(),
            }],
            from: Some("A".into()),
            to: Some("B".into()),
            amount_cents: Some(1_000),
        }],
        heuristics: vec![HeuristicView {
            tx_id: "tx-old".into(),
            node: "6002".into(),
            decision: Decision::Abort,
            ops: vec![],
            coordinator_decision: Some(Decision::Commit),
            agrees: Some(false),
            reached_node: Some(Decision::Commit),
            imbalance_cents: -1_000,
            detail: "tx-old was heuristically aborted on node 6002, the coordinator decided commit"
                .into(),
        }],
        audit: MoneyAudit {
            expected_total_cents: 200_000,
            total_cents: 199_000,
            heuristic_imbalance_cents: -1_000,
            pending_commit_cents: 0,
            balanced: true,
            settling: false,
            detail: "balanced once the heuristic's -$10.00 is counted".into(),
        },
        stale_nodes: vec!["6002".into()],
    }
}

#[wasm_bindgen_test]
async fn in_doubt_panel_lists_why_stuck_heuristic_alarm_and_audit() {
    let (root, _ctx) = mount(Model::default(), || {
        let polled = RwSignal::new(Polled::loaded(
            in_doubt_fixture(),
            frontend::context::now_ms(),
        ));
        view! { <InDoubtBody polled=polled/> }
    });
    settle().await;
    assert!(find(&root, "[data-testid=in-doubt-empty]").is_none());
    let row = text_of(&root, "[data-testid=in-doubt-tx-tx-stuck]");
    assert!(row.contains("A → B · $10.00"), "{row}");
    assert!(
        row.contains("coordinator: committing · decided commit"),
        "{row}"
    );
    assert!(row.contains("node down: node 6002 is down"), "{row}");
    assert!(text_of(&root, "[data-testid=in-doubt-age]").starts_with("waiting 5"));
    assert!(text_of(&root, "[data-testid=in-doubt-prepared-6001]").contains("node 6001"));
    assert!(text_of(&root, "[data-testid=heuristic-alarm]")
        .contains("heuristic abort, coordinator decided commit · -$10.00"));
    assert!(text_of(&root, "[data-testid=in-doubt-audit]")
        .starts_with("Money NOT conserved: $1,990.00 counted, $2,000.00 expected"));
    assert!(
        find(&root, ".audit-bad").is_some(),
        "explained by the heuristic, the total is still wrong"
    );
    assert!(text_of(&root, "[data-testid=in-doubt-stale]").contains("node 6002"));

    // Forcing asks first, and the question says what it breaks.
    assert!(find(&root, "[data-testid=heuristic-confirm]").is_none());
    let force: HtmlElement = find(&root, "[data-testid=force-abort-6001]")
        .unwrap()
        .unchecked_into();
    force.click();
    settle().await;
    let confirm = text_of(&root, "[data-testid=heuristic-confirm]");
    assert!(confirm.contains("heuristic decision"), "{confirm}");
    assert!(confirm.contains("NOT atomic"), "{confirm}");
    let cancel: HtmlElement = find(&root, "[data-testid=heuristic-confirm-cancel]")
        .unwrap()
        .unchecked_into();
    cancel.click();
    settle().await;
    assert!(find(&root, "[data-testid=heuristic-confirm]").is_none());
}

#[wasm_bindgen_test]
async fn in_doubt_panel_says_nothing_in_doubt() {
    let (root, _ctx) = mount(Model::default(), || {
        let mut view = in_doubt_fixture();
        view.transactions.clear();
        view.heuristics.clear();
        view.stale_nodes.clear();
        view.audit.balanced = true;
        view.audit.heuristic_imbalance_cents = 0;
        let polled = RwSignal::new(Polled::loaded(view, frontend::context::now_ms()));
        view! { <InDoubtBody polled=polled/> }
    });
    settle().await;
    assert_eq!(
        text_of(&root, "[data-testid=in-doubt-empty]"),
        "Nothing in doubt"
    );
    assert!(find(&root, "[data-testid=heuristic-alarm]").is_none());
    assert!(find(&root, ".audit-good").is_some());
}

/// A recorded run: a snapshot, then A's balance going down by $1.00 an event.
fn recorded_run() -> Vec<Event> {
    let snapshot = Snapshot {
        cluster: cluster(200_000),
        transactions: vec![],
        stats: Stats::default(),
        faults: Faults::default(),
    };
    let mut events = vec![ev(1, EventKind::Snapshot(Box::new(snapshot)))];
    for i in 1..5i64 {
        let a = 100_000 - 100 * i;
        events.push(ev(
            1 + i as u64,
            EventKind::Balances {
                accounts: vec![
                    AccountView {
                        id: "A".into(),
                        node: "6001".into(),
                        balance_cents: a,
                    },
                    AccountView {
                        id: "B".into(),
                        node: "6002".into(),
                        balance_cents: 200_000 - a,
                    },
                ],
                total_cents: 200_000,
            },
        ));
    }
    events
}

#[wasm_bindgen_test]
async fn the_timeline_shows_every_panel_at_the_moment_and_live_comes_back() {
    let (root, ctx) = mount(model_with(cluster(200_000)), || {
        view! { <TimelinePanel/><ClusterPanel/> }
    });
    settle().await;
    assert!(find(&root, "[data-testid=rewind]").is_some());
    let replay = Replay::new(
        Source::File {
            name: "run.jsonl".into(),
        },
        None,
        recorded_run(),
    );
    ctx.start_travel(replay, 4);
    settle().await;
    assert!(text_of(&root, "[data-testid=travel-banner]").contains("run.jsonl"));
    assert_eq!(text_of(&root, "[data-testid=balance-A]"), "$996.00");
    // Back in time: the balance as it was.
    ctx.show(1);
    settle().await;
    assert_eq!(text_of(&root, "[data-testid=balance-A]"), "$999.00");
    let moment = find(&root, "[data-testid=travel-moment]").expect("the moment");
    assert_eq!(moment.get_attribute("data-seq").as_deref(), Some("2"));
    // A live event meanwhile goes to the live state, not to the moment shown.
    ctx.update_live(|m| m.set_cluster(cluster(200_000), 0));
    settle().await;
    assert_eq!(text_of(&root, "[data-testid=balance-A]"), "$999.00");
    ctx.go_live();
    settle().await;
    assert!(find(&root, "[data-testid=travel-banner]").is_none());
    assert_eq!(text_of(&root, "[data-testid=balance-A]"), "$1,000.00");
}

#[wasm_bindgen_test]
async fn a_held_message_is_an_arrow_to_click_and_the_hold_lists_it_with_next() {
    let (root, ctx) = mount(Model::default(), || {
        view! { <HeldMessagesPanel/><ProtocolPanel/> }
    });
    let snapshot = Snapshot {
        cluster: cluster(200_000),
        transactions: vec![],
        stats: Stats::default(),
        faults: Faults::default(),
    };
    let events = vec![
        ev(1, EventKind::Snapshot(Box::new(snapshot))),
        ev(
            2,
            EventKind::TxStarted {
                tx_id: "t".into(),
                from: "A".into(),
                to: "B".into(),
                amount_cents: 500,
                nodes: vec!["6001".into(), "6002".into()],
                one_phase: false,
            },
        ),
        ev(
            3,
            EventKind::PrepareSent {
                tx_id: "t".into(),
                node: "6002".into(),
            },
        ),
        ev(
            4,
            EventKind::MessageHeld {
                id: 9,
                tx_id: "t".into(),
                node: "6002".into(),
                direction: Direction::ToNode,
                message: MessageName::Prepare,
                detail: "B +$5.00".into(),
            },
        ),
    ];
    ctx.model.update(|m| {
        for event in events {
            m.fold(event, 0);
        }
    });
    settle().await;
    assert_eq!(text_of(&root, "[data-testid=held-count]"), "1");
    assert!(text_of(&root, "[data-testid=held-9]").contains("prepare → 6002"));
    assert!(find(&root, "[data-testid=next-message]").is_some());
    let arrow: HtmlElement = find(&root, "[data-testid=held-arrow-9]")
        .expect("a held arrow")
        .unchecked_into();
    arrow
        .dispatch_event(&web_sys::Event::new("click").unwrap())
        .unwrap();
    settle().await;
    assert!(text_of(&root, "[data-testid=picked-message]").contains("Message #9 held"));
    assert!(find(&root, "[data-testid=drop-9]").is_some());
    ctx.model.update(|m| {
        m.fold(
            ev(
                5,
                EventKind::MessageDropped {
                    id: 9,
                    tx_id: "t".into(),
                    node: "6002".into(),
                    direction: Direction::ToNode,
                    message: MessageName::Prepare,
                },
            ),
            0,
        );
    });
    settle().await;
    assert!(find(&root, "[data-testid=picked-message]").is_none());
    assert!(find(&root, "[data-testid=held-arrow-9]").is_none());
    assert!(text_of(&root, "[data-testid=sequence-diagram]").contains("prepare · dropped"));
}

#[wasm_bindgen_test]
async fn the_node_cards_offer_a_crash_at_each_protocol_step() {
    let (root, _ctx) = mount(model_with(cluster(200_000)), || view! { <ClusterPanel/> });
    settle().await;
    for id in ["crash-prepared-6001", "crash-applied-6002"] {
        let button = find(&root, &format!("[data-testid={id}]")).expect(id);
        assert!(!button.has_attribute("disabled"), "{id}");
    }
}

#[wasm_bindgen_test]
async fn the_space_time_view_draws_each_transaction_in_its_colour() {
    let (root, ctx) = mount(Model::default(), || view! { <SpaceTimePanel/> });
    let snapshot = Snapshot {
        cluster: cluster(200_000),
        transactions: vec![],
        stats: Stats::default(),
        faults: Faults::default(),
    };
    ctx.model.update(|m| {
        m.fold(ev(1, EventKind::Snapshot(Box::new(snapshot))), 0);
        for (i, tx) in ["t1", "t2"].iter().enumerate() {
            let seq = 2 + 3 * i as u64;
            let started = EventKind::TxStarted {
                tx_id: (*tx).into(),
                from: "A".into(),
                to: "B".into(),
                amount_cents: 100,
                nodes: vec!["6001".into(), "6002".into()],
                one_phase: false,
            };
            m.fold(ev(seq, started), 0);
            let prepare = EventKind::PrepareSent {
                tx_id: (*tx).into(),
                node: "6001".into(),
            };
            m.fold(ev(seq + 1, prepare), 0);
            let vote = EventKind::Vote {
                tx_id: (*tx).into(),
                node: "6001".into(),
                vote: VoteView::Ready,
                reason: None,
            };
            m.fold(ev(seq + 2, vote), 0);
        }
    });
    settle().await;
    assert_eq!(count(&root, ".st-key-item"), 2);
    assert!(count(&root, ".st-arrow.tx-color-0") >= 2);
    assert!(count(&root, ".st-arrow.tx-color-1") >= 2);
}
