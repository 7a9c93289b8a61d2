//! Startup: lock the data dir, read the log back, rebuild the participant,
//! and start the group-commit writer that owns the log from then on.
//!
//! Recovery is replay: every record is decoded and handed to
//! `Participant::recover`, which brings back balances, ledgers, remembered
//! outcomes and the prepared (in-doubt) transactions with their locks. A
//! record that does not decode is corruption, not a torn tail (the log layer
//! already cut any torn tail by checksum), so the node refuses to start
//! rather than guess.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shared::limits::{PARTICIPANT_UNFORCED_SYNC_US, RECOVERED_ACCOUNTS_LOGGED_MAX};
use shared::log::{GroupCommitWriter, LogError, LogFile};
use shared::protocol::participant::Participant;
use shared::protocol::record::ParticipantRecord;
use tokio::sync::{mpsc, watch};

use crate::Config;

/// File name of the write-ahead log inside the data dir.
pub const LOG_NAME: &str = "participant.log";

/// What startup hands to the driver.
pub struct Recovered {
    pub participant: Participant,
    pub writer: GroupCommitWriter,
    /// Highest seq the writer reported durable.
    pub durable: watch::Receiver<u64>,
    /// The writer's first (and only) I/O error.
    pub errors: mpsc::Receiver<LogError>,
    /// Records in the log file right now.
    pub log_records: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("{0}")]
    Log(#[from] LogError),

    #[error(
        "log {} record {index} (0-based) does not decode: {detail}. The log is corrupt, so refusing \
         to start. Fix: restore the data directory from a backup, or move it away to start fresh \
         (losing its data)",
        .path.display()
    )]
    BadRecord {
        path: PathBuf,
        index: usize,
        detail: String,
    },

    #[error("log {} cannot be replayed: {source}. Refusing to start", .path.display())]
    Replay {
        path: PathBuf,
        #[source]
        source: shared::protocol::participant::RecoveryError,
    },

    #[error(
        "the data dir {} is new and no accounts were given: add at least one --account ID=CENTS, \
         e.g. --account A=100000",
        .dir.display()
    )]
    NoAccounts { dir: PathBuf },

    #[error("--forget-cluster refused: {reason}")]
    ForgetRefused { reason: String },
}

pub fn recover(config: &Config) -> Result<Recovered, RecoveryError> {
    let (mut file, payloads) = LogFile::open(&config.data_dir, LOG_NAME)?;
    let path = config.data_dir.join(LOG_NAME);
    let records = decode_all(&path, &payloads)?;
    let mut participant =
        Participant::recover(config.participant.clone(), &records).map_err(|source| {
            RecoveryError::Replay {
                path: path.clone(),
                source,
            }
        })?;

    let mut log_records = records.len() as u64;
    if records.is_empty() {
        if config.participant.accounts.is_empty() {
            return Err(RecoveryError::NoAccounts {
                dir: config.data_dir.clone(),
            });
        }
        // The opening balances must be durable before anyone can see them:
        // otherwise a crash could restart the node with other balances.
        let init = Participant::init_record(&config.participant).encode();
        file.append(&init)?;
        file.sync()?;
        log_records = 1;
        tracing::info!(log = %path.display(), "new data dir: opening balances written");
    } else {
        warn_if_accounts_differ(config, &participant);
    }
    if config.forget_cluster {
        let cluster = participant.cluster().cloned();
        let record = participant
            .forget_cluster()
            .map_err(|reason| RecoveryError::ForgetRefused { reason })?;
        file.append(&record.encode())?;
        file.sync()?;
        log_records += 1;
        tracing::warn!(
            ?cluster,
            "released from its cluster (--forget-cluster): the next coordinator to connect binds this node"
        );
    }
    // The log keeps no wall-clock times: in-doubt ages count from now.
    participant.set_recovered_since(0);
    participant.reserve_remembered_outcomes();
    log_recovered(&path, &participant, log_records);

    let (durable_tx, durable) = watch::channel(0u64);
    let (errors_tx, errors) = mpsc::channel(1);
    // A commit's COMMITTED record is not forced (the node says `applied`
    // at once and acks when it is durable): the next PREPARED force carries
    // it, or the writer syncs it after PARTICIPANT_UNFORCED_SYNC_US.
    let writer = GroupCommitWriter::spawn_syncing_unforced(
        file,
        Duration::from_micros(PARTICIPANT_UNFORCED_SYNC_US),
        Box::new(move |seq| durable_tx.send_modify(|durable| *durable = (*durable).max(seq))),
        Box::new(move |error| {
            // Called at most once; the driver stops the process on it.
            let _ = errors_tx.try_send(error);
        }),
    );
    Ok(Recovered {
        participant,
        writer,
        durable,
        errors,
        log_records,
    })
}

fn decode_all(path: &Path, payloads: &[Vec<u8>]) -> Result<Vec<ParticipantRecord>, RecoveryError> {
    payloads
        .iter()
        .enumerate()
        .map(|(index, payload)| {
            ParticipantRecord::decode(payload).map_err(|detail| RecoveryError::BadRecord {
                path: path.to_path_buf(),
                index,
                detail,
            })
        })
        .collect()
}

fn warn_if_accounts_differ(config: &Config, participant: &Participant) {
    if config.participant.accounts.is_empty() {
        return;
    }
    let in_log: Vec<String> = participant.balances().into_iter().map(|b| b.id).collect();
    let mut from_flags: Vec<String> = config
        .participant
        .accounts
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    from_flags.sort();
    if in_log != from_flags {
        tracing::warn!(
            "the data dir {} already holds accounts {in_log:?}; the --account flags {from_flags:?} are \
             IGNORED (they only seed a new data dir). To start with other accounts, use a new --data-dir",
            config.data_dir.display()
        );
    }
}

/// The first `RECOVERED_ACCOUNTS_LOGGED_MAX` items, then how many more there are.
fn first_few(items: impl ExactSizeIterator<Item = String>) -> String {
    let more = items.len().saturating_sub(RECOVERED_ACCOUNTS_LOGGED_MAX);
    let mut shown: Vec<String> = items.take(RECOVERED_ACCOUNTS_LOGGED_MAX).collect();
    if more > 0 {
        shown.push(format!("and {more} more"));
    }
    shown.join(" ")
}

fn log_recovered(path: &Path, participant: &Participant, log_records: u64) {
    let balances = participant.balances();
    let total_cents: i64 = balances.iter().map(|b| b.balance_cents).sum();
    let shown = first_few(
        balances
            .iter()
            .map(|b| format!("{}={}", b.id, b.balance_cents)),
    );
    let locked_shown = first_few(participant.locked_accounts().into_iter());
    let in_doubt = participant.in_doubt(0);
    tracing::info!(
        log = %path.display(),
        records = log_records,
        accounts = balances.len(),
        total_cents,
        balances_cents = %shown,
        in_doubt = in_doubt.len(),
        locked = %locked_shown,
        "recovered"
    );
    for tx in in_doubt {
        tracing::warn!(tx_id = %tx.tx_id, "in doubt: holding its locks until the coordinator decides");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_list_is_cut_with_a_count() {
        let few = |n: usize| first_few((0..n).map(|i| format!("A{i}")));
        assert_eq!(few(0), "");
        assert_eq!(few(2), "A0 A1");
        assert_eq!(
            few(RECOVERED_ACCOUNTS_LOGGED_MAX),
            (0..RECOVERED_ACCOUNTS_LOGGED_MAX)
                .map(|i| format!("A{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let long = few(1_000);
        assert!(long.starts_with("A0 A1 "), "{long}");
        assert!(
            long.ends_with(&format!(
                "and {} more",
                1_000 - RECOVERED_ACCOUNTS_LOGGED_MAX
            )),
            "{long}"
        );
        assert!(!long.contains("A999"), "{long}");
    }
}
