//! The evidence panel in a real browser (headless Chromium via
//! chromedriver): a transaction's cost and its audit, run by the shared
//! code on ledger fixtures, one of them tampered with.
//!
//!   CHROMEDRIVER=/usr/bin/chromedriver cargo test -p frontend --target wasm32-unknown-unknown --test evidence
#![cfg(target_arch = "wasm32")]

use frontend::components::evidence::{EvidenceBody, Shown};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{Element, HtmlElement};

wasm_bindgen_test_configure!(run_in_browser);

fn mount(shown: RwSignal<Shown>) -> HtmlElement {
    let container: HtmlElement = document().create_element("div").unwrap().unchecked_into();
    document().body().unwrap().append_child(&container).unwrap();
    let handle = leptos::mount::mount_to(container.clone(), move || {
        view! { <EvidenceBody shown=shown.into()/> }
    });
    handle.forget();
    container
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

/// A committed transfer's evidence with its audit run by the shared code
/// on the ledgers given: the page shows what the audit found.
fn evidence_fixture(
    a: Vec<shared::api::LedgerEntry>,
    b: Vec<shared::api::LedgerEntry>,
) -> shared::evidence::TransactionEvidence {
    use shared::evidence::{audit, Evidence, ProcessCost, TransactionEvidence};
    let legs = shared::api::transfer_legs("A", "B", 2_500, "6001", "6002");
    let ledgers =
        std::collections::BTreeMap::from([("A".to_string(), Ok(a)), ("B".to_string(), Ok(b))]);
    TransactionEvidence {
        tx_id: "tx-ev".into(),
        state: shared::api::TxState::Committed,
        cost: Evidence {
            processes: vec![ProcessCost {
                process: "coordinator".into(),
                sent: 4,
                received: 6,
                forced_writes: 1,
                forced_records: vec!["commit".into()],
            }],
            messages: 10,
            forced_writes: 5,
            round_trips: 2,
            ..Evidence::default()
        },
        audit: audit("tx-ev", shared::api::TxState::Committed, &legs, &ledgers),
    }
}

fn entry(tx_id: &str, delta_cents: i64) -> shared::api::LedgerEntry {
    shared::api::LedgerEntry {
        tx_id: tx_id.into(),
        delta_cents,
        balance_cents: 0,
    }
}

#[wasm_bindgen_test]
async fn evidence_shows_the_cost_and_a_tick_when_each_leg_is_found_once() {
    let shown = RwSignal::new(Shown::Evidence(Box::new(evidence_fixture(
        vec![entry("tx-ev", -2_500)],
        vec![entry("tx-ev", 2_500)],
    ))));
    let root = mount(shown);
    settle().await;
    assert_eq!(text_of(&root, "[data-testid=evidence-messages]"), "10");
    assert_eq!(text_of(&root, "[data-testid=evidence-forced]"), "5");
    assert_eq!(text_of(&root, "[data-testid=evidence-round-trips]"), "2");
    assert!(text_of(&root, "[data-testid=evidence-process-coordinator]").contains("commit"));
    assert_eq!(text_of(&root, "[data-testid=audit-verdict]"), "audit ✓");
    assert_eq!(count(&root, ".audit-ok"), 2);
    assert!(text_of(&root, "[data-testid=audit-A]").contains("found once"));
}

#[wasm_bindgen_test]
async fn evidence_shows_the_discrepancy_of_a_tampered_ledger() {
    // Broken fixtures: A's ledger holds the leg twice, B's lacks it.
    let shown = RwSignal::new(Shown::Evidence(Box::new(evidence_fixture(
        vec![entry("tx-ev", -2_500), entry("tx-ev", -2_500)],
        vec![entry("other", 2_500)],
    ))));
    let root = mount(shown);
    settle().await;
    assert_eq!(
        text_of(&root, "[data-testid=audit-verdict]"),
        "audit ✗ discrepancy"
    );
    assert_eq!(count(&root, ".audit-bad"), 2);
    assert!(text_of(&root, "[data-testid=audit-A]").contains("found twice"));
    assert!(text_of(&root, "[data-testid=audit-B]").contains("missing"));
    shown.set(Shown::Failed(
        "tx-ev".into(),
        "no transaction 'tx-ev' is known".into(),
    ));
    settle().await;
    assert!(text_of(&root, "[data-testid=evidence-error]").contains("is known"));
}
