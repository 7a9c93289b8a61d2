//! Group commit: concurrent prepares share fdatasyncs. 200 prepares arrive
//! at once over a few connections; every one gets its vote, and the node
//! reports far fewer log forces than records written.

mod common;

use std::thread;

use common::{prepare, temp, Node, Spec};
use shared::wire::{encode_line, Decision, Request, Vote};

const TRANSACTIONS: usize = 200;
const CONNECTIONS: usize = 4;

#[test]
fn concurrent_prepares_share_log_forces() {
    let (_dir, data) = temp();
    // One account per transaction, so none waits for another's lock.
    let accounts: Vec<(String, i64)> = (0..TRANSACTIONS)
        .map(|i| (format!("acct{i}"), 1_000))
        .collect();
    let account_refs: Vec<(&str, i64)> = accounts.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    let node = Node::start(&Spec::new("6001", &account_refs), &data);
    let forces_before = node.client().status().log_forces;

    let per_connection = TRANSACTIONS / CONNECTIONS;
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let mut client = node.client();
            thread::spawn(move || {
                let ids: Vec<usize> = (c * per_connection..(c + 1) * per_connection).collect();
                // All prepares of this connection in one write: pipelined.
                let batch: Vec<u8> = ids
                    .iter()
                    .flat_map(|i| {
                        encode_line(&prepare(
                            &format!("t{i}"),
                            *i as u64,
                            &[(&format!("acct{i}"), -100)],
                        ))
                    })
                    .collect();
                client.send_raw(&batch);
                for i in &ids {
                    assert_eq!(client.vote(&format!("t{i}")), (Vote::Ready, None), "t{i}");
                }
                let commits: Vec<u8> = ids
                    .iter()
                    .flat_map(|i| {
                        encode_line(&Request::Commit {
                            tx_id: format!("t{i}"),
                        })
                    })
                    .collect();
                client.send_raw(&commits);
                for i in &ids {
                    assert_eq!(client.ack(&format!("t{i}")), Decision::Commit, "t{i}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a worker failed");
    }

    let status = node.client().status();
    let forces = status.log_forces - forces_before;
    let records = 2 * TRANSACTIONS as u64; // one PREPARED and one COMMITTED each
    println!(
        "{records} records (log holds {}) written with {forces} log forces",
        status.log_records
    );
    assert!(
        forces * 2 < records,
        "no batching: {forces} forces for {records} records"
    );
    assert!(
        status.accounts.iter().all(|a| a.balance_cents == 900),
        "{:?}",
        status.accounts
    );
    assert!(status.locked_accounts.is_empty());
}
