//! The bytes of log records and checkpoints, and the readers of what older
//! versions wrote.
//!
//! Records are binary (postcard behind a 2-byte tag) except the rare ones
//! (a node's INIT, HEURISTIC and COORDINATOR, the coordinator's EPOCH and
//! PRESUMED ABORT), which are JSON: checkpoints hold everything a process
//! remembers, and a transaction's records are written on the path every
//! transfer takes, so both are kept small and cheap to encode
//! (BENCHMARKS.md has the measurements).
//!
//! Logs that older versions wrote (JSON records, JSON checkpoints, version
//! 1 of the binary checkpoints, PREPARED without an epoch) are still read.
//!
//! The binary form has no field or variant names: fields go in declaration
//! order and enum variants by index. So the record types, and the types
//! inside them, may gain fields only at the end of a record that is not
//! binary, and enum variants (`Decision`, `AbortReason`) only at the end;
//! tests pin the bytes of checkpoints and records.

use serde::ser::SerializeTuple;
use serde::{Deserialize, Serialize, Serializer};

use crate::api::{Leg, TransferRequest};
use crate::protocol::digest::OpsDigest;
use crate::protocol::record::{
    CoordinatorCheckpoint, CoordinatorRecord, Identity, ParticipantCheckpoint, ParticipantRecord,
};
use crate::wire::{AbortReason, AccountId, ClusterId, Decision, Epoch, LedgerEntry, Op, TxId};

/// What a binary checkpoint payload starts with. A JSON record starts with
/// `{`; the second byte is the version of the binary form. Version 1
/// (written before cluster identities and epochs) is still read.
pub const BINARY_CHECKPOINT: [u8; 2] = [0x00, 0x02];
const BINARY_CHECKPOINT_V1: [u8; 2] = [0x00, 0x01];

/// What any other binary record starts with (the second byte is the
/// version of its binary form).
pub const BINARY_RECORD: [u8; 2] = [0x01, 0x01];

/// A node's per-transaction records in the binary form: borrowed to encode
/// (`&str`, `&[Op]`), owned when decoded (`TxId`, `Vec<Op>`), the same
/// bytes. The variants' order is the format: add new ones at the end only.
/// `Prepared` is what older versions wrote (no epoch); this one writes
/// `PreparedInEpoch`.
#[derive(Serialize, Deserialize)]
enum BinaryParticipantRecord<S, O> {
    Prepared {
        tx_id: S,
        ts_us: u64,
        ops: O,
    },
    Committed {
        tx_id: S,
        ops: O,
    },
    Aborted {
        tx_id: S,
    },
    PreparedInEpoch {
        tx_id: S,
        ts_us: u64,
        epoch: Epoch,
        ops: O,
    },
}

type BinaryParticipantRecordRef<'a> = BinaryParticipantRecord<&'a str, &'a [Op]>;
type OwnedBinaryParticipantRecord = BinaryParticipantRecord<TxId, Vec<Op>>;

impl From<OwnedBinaryParticipantRecord> for ParticipantRecord {
    fn from(record: OwnedBinaryParticipantRecord) -> ParticipantRecord {
        match record {
            BinaryParticipantRecord::Prepared {
                tx_id,
                ts_us: ts,
                ops,
            } => ParticipantRecord::Prepared {
                tx_id,
                ts_us: ts,
                epoch: 0,
                ops,
            },
            BinaryParticipantRecord::PreparedInEpoch {
                tx_id,
                ts_us: ts,
                epoch,
                ops,
            } => ParticipantRecord::Prepared {
                tx_id,
                ts_us: ts,
                epoch,
                ops,
            },
            BinaryParticipantRecord::Committed { tx_id, ops } => {
                ParticipantRecord::Committed { tx_id, ops }
            }
            BinaryParticipantRecord::Aborted { tx_id } => ParticipantRecord::Aborted { tx_id },
        }
    }
}

/// The coordinator's records in the binary form, borrowed to encode or
/// owned when decoded, like [`BinaryParticipantRecord`]. A request is kept
/// as in checkpoints ([`BinaryRequest`], decoded as [`OwnedBinaryRequest`]),
/// its `tx_id` mostly as "the record's own". The variants' order is the
/// format: add new ones at the end only.
#[derive(Serialize, Deserialize)]
enum BinaryCoordinatorRecord<S, R, L> {
    Commit {
        tx_id: S,
        ts_us: u64,
        request: R,
        legs: L,
    },
    End {
        tx_id: S,
    },
    Finished {
        tx_id: S,
        request: R,
        decision: Decision,
        reason: Option<AbortReason>,
    },
}

type BinaryCoordinatorRecordRef<'a> =
    BinaryCoordinatorRecord<&'a str, BinaryRequest<'a>, &'a [Leg]>;
type OwnedBinaryCoordinatorRecord = BinaryCoordinatorRecord<TxId, OwnedBinaryRequest, Vec<Leg>>;

impl From<OwnedBinaryCoordinatorRecord> for CoordinatorRecord {
    fn from(record: OwnedBinaryCoordinatorRecord) -> CoordinatorRecord {
        match record {
            BinaryCoordinatorRecord::Commit {
                tx_id,
                ts_us: ts,
                request,
                legs,
            } => CoordinatorRecord::Commit {
                request: request.request(&tx_id),
                tx_id,
                ts_us: ts,
                legs,
            },
            BinaryCoordinatorRecord::End { tx_id } => CoordinatorRecord::End { tx_id },
            BinaryCoordinatorRecord::Finished {
                tx_id,
                request,
                decision,
                reason,
            } => CoordinatorRecord::Finished {
                request: request.request(&tx_id),
                tx_id,
                decision,
                reason,
            },
        }
    }
}

/// `record` behind [`BINARY_RECORD`]. Small: one allocation, sized for it.
fn binary_record<T: Serialize>(record: &T) -> Vec<u8> {
    tagged_binary(BINARY_RECORD, record, 128)
}

/// Decodes a binary record's fields (after [`BINARY_RECORD`]).
fn decode_binary_record<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, String> {
    decode_tagged(bytes, "record")
}

/// `value` in postcard behind `tag`. `capacity`: about the bytes it will
/// take (growing a buffer of megabytes by doubling copies it and faults in
/// fresh pages each time).
fn tagged_binary<T: Serialize>(tag: [u8; 2], value: &T, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + tag.len());
    out.extend_from_slice(&tag);
    postcard::to_extend(value, out).expect("log records always serialise")
}

/// Decodes the fields of a binary `what` (after its tag); the whole
/// payload must be used.
fn decode_tagged<'de, T: Deserialize<'de>>(bytes: &'de [u8], what: &str) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes(bytes)
        .map_err(|e| format!("binary {what} does not decode: {e}"))?;
    if !rest.is_empty() {
        return Err(format!(
            "binary {what} has {} bytes after its end",
            rest.len()
        ));
    }
    Ok(value)
}

/// [`ParticipantRecord::Checkpoint`] built from borrowed parts: encodes to
/// the same bytes without copying the ledgers and outcomes first (they may
/// hold hundreds of thousands of entries, encoded while transactions wait).
#[derive(Serialize)]
pub struct ParticipantCheckpointRef<'a> {
    pub accounts: Vec<(&'a AccountId, i64)>,
    pub ledgers: Vec<(&'a AccountId, &'a std::collections::VecDeque<LedgerEntry>)>,
    pub prepared: Vec<(&'a TxId, u64, Epoch, &'a [Op])>,
    pub outcomes: Vec<(&'a TxId, Decision, OpsDigest)>,
    pub heuristics: Vec<(&'a TxId, Decision, &'a [Op])>,
    pub cluster: Option<&'a ClusterId>,
    pub epoch: Epoch,
}

impl ParticipantCheckpointRef<'_> {
    /// The binary checkpoint record (see [`BINARY_CHECKPOINT`]); it decodes
    /// as a [`ParticipantCheckpoint`] with the same fields.
    pub fn encode(&self) -> Vec<u8> {
        let entries: usize = self.ledgers.iter().map(|(_, e)| e.len()).sum();
        let capacity = entries * 40 + self.outcomes.len() * 40 + self.accounts.len() * 24 + 64;
        binary_checkpoint(self, capacity)
    }
}

/// A participant checkpoint as version 1 of the binary form (and the JSON
/// one before it) held it: no epochs, digests or cluster.
#[derive(Deserialize)]
struct ParticipantCheckpointV1 {
    accounts: Vec<(AccountId, i64)>,
    ledgers: Vec<(AccountId, Vec<LedgerEntry>)>,
    prepared: Vec<(TxId, u64, Vec<Op>)>,
    outcomes: Vec<(TxId, Decision)>,
    #[serde(default)]
    heuristics: Vec<(TxId, Decision, Vec<Op>)>,
}

impl From<ParticipantCheckpointV1> for ParticipantCheckpoint {
    fn from(v1: ParticipantCheckpointV1) -> ParticipantCheckpoint {
        ParticipantCheckpoint {
            accounts: v1.accounts,
            ledgers: v1.ledgers,
            prepared: v1
                .prepared
                .into_iter()
                .map(|(id, ts, ops)| (id, ts, 0, ops))
                .collect(),
            outcomes: v1
                .outcomes
                .into_iter()
                .map(|(id, decision)| (id, decision, 0))
                .collect(),
            heuristics: v1.heuristics,
            cluster: None,
            epoch: 0,
        }
    }
}

/// A participant record as JSON: the rare records this version writes as
/// JSON, and every record of a log older versions wrote as JSON.
#[derive(Deserialize)]
#[serde(tag = "rec", rename_all = "snake_case")]
enum JsonParticipantRecord {
    Init {
        accounts: Vec<(AccountId, i64)>,
    },
    Prepared {
        tx_id: TxId,
        #[serde(alias = "ts")]
        ts_us: u64,
        #[serde(default)]
        epoch: Epoch,
        ops: Vec<Op>,
    },
    Committed {
        tx_id: TxId,
        ops: Vec<Op>,
    },
    Aborted {
        tx_id: TxId,
    },
    Heuristic {
        tx_id: TxId,
        decision: Decision,
        ops: Vec<Op>,
    },
    Coordinator {
        cluster: Option<ClusterId>,
        epoch: Epoch,
    },
    Checkpoint(Box<ParticipantCheckpointV1>),
}

impl From<JsonParticipantRecord> for ParticipantRecord {
    fn from(record: JsonParticipantRecord) -> ParticipantRecord {
        match record {
            JsonParticipantRecord::Init { accounts } => ParticipantRecord::Init { accounts },
            JsonParticipantRecord::Prepared {
                tx_id,
                ts_us: ts,
                epoch,
                ops,
            } => ParticipantRecord::Prepared {
                tx_id,
                ts_us: ts,
                epoch,
                ops,
            },
            JsonParticipantRecord::Committed { tx_id, ops } => {
                ParticipantRecord::Committed { tx_id, ops }
            }
            JsonParticipantRecord::Aborted { tx_id } => ParticipantRecord::Aborted { tx_id },
            JsonParticipantRecord::Heuristic {
                tx_id,
                decision,
                ops,
            } => ParticipantRecord::Heuristic {
                tx_id,
                decision,
                ops,
            },
            JsonParticipantRecord::Coordinator { cluster, epoch } => {
                ParticipantRecord::Coordinator { cluster, epoch }
            }
            JsonParticipantRecord::Checkpoint(v1) => {
                ParticipantRecord::Checkpoint(Box::new((*v1).into()))
            }
        }
    }
}

/// A transfer request inside a binary checkpoint, beside the id it is kept
/// under: its four fields in order, the `tx_id` mostly as "the same as the
/// key" (a client's own id is both; written twice it was a third of a
/// coordinator's checkpoint). Its JSON form also leaves out a missing
/// `tx_id`, which a format without field names cannot do.
struct BinaryRequest<'a> {
    request: &'a TransferRequest,
    key: &'a TxId,
}

/// How a [`BinaryRequest`] holds its `tx_id`.
#[derive(Serialize, Deserialize)]
enum BinaryTxId<S> {
    None,
    SameAsKey,
    Other(S),
}

impl Serialize for BinaryRequest<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.request;
        let tx_id = match &r.tx_id {
            None => BinaryTxId::None,
            Some(id) if id == self.key => BinaryTxId::SameAsKey,
            Some(id) => BinaryTxId::Other(id.as_str()),
        };
        let mut t = serializer.serialize_tuple(4)?;
        t.serialize_element(&r.from)?;
        t.serialize_element(&r.to)?;
        t.serialize_element(&r.amount_cents)?;
        t.serialize_element(&tx_id)?;
        t.end()
    }
}

/// [`BinaryRequest`], decoded.
#[derive(Deserialize)]
struct OwnedBinaryRequest(AccountId, AccountId, i64, BinaryTxId<TxId>);

impl OwnedBinaryRequest {
    fn request(self, key: &TxId) -> TransferRequest {
        let OwnedBinaryRequest(from, to, amount_cents, tx_id) = self;
        TransferRequest {
            from,
            to,
            amount_cents,
            tx_id: match tx_id {
                BinaryTxId::None => None,
                BinaryTxId::SameAsKey => Some(key.clone()),
                BinaryTxId::Other(id) => Some(id),
            },
        }
    }
}

/// A coordinator checkpoint's fields in version 1 of the binary form.
#[derive(Deserialize)]
struct BinaryCoordinatorCheckpointV1 {
    pending_commits: Vec<(TxId, u64, OwnedBinaryRequest, Vec<Leg>)>,
    outcomes: Vec<(TxId, OwnedBinaryRequest, Decision, Option<AbortReason>)>,
    ts_max_us: u64,
}

/// A coordinator checkpoint's fields in the binary form.
#[derive(Deserialize)]
struct BinaryCoordinatorCheckpoint {
    identity: Option<Identity>,
    pending_commits: Vec<(TxId, u64, OwnedBinaryRequest, Vec<Leg>)>,
    outcomes: Vec<(
        TxId,
        Option<OwnedBinaryRequest>,
        Decision,
        Option<AbortReason>,
    )>,
    ts_max_us: u64,
}

/// A coordinator checkpoint as older versions wrote it in JSON.
#[derive(Deserialize)]
struct JsonCoordinatorCheckpointV1 {
    pending_commits: Vec<(TxId, u64, TransferRequest, Vec<Leg>)>,
    outcomes: Vec<(TxId, TransferRequest, Decision, Option<AbortReason>)>,
    #[serde(rename = "ts_max")]
    ts_max_us: u64,
}

/// A coordinator record as JSON: the rare records this version writes as
/// JSON, and every record of a log older versions wrote as JSON.
#[derive(Deserialize)]
#[serde(tag = "rec", rename_all = "snake_case")]
enum JsonCoordinatorRecord {
    Commit {
        tx_id: TxId,
        #[serde(alias = "ts")]
        ts_us: u64,
        request: TransferRequest,
        legs: Vec<Leg>,
    },
    End {
        tx_id: TxId,
    },
    Finished {
        tx_id: TxId,
        request: TransferRequest,
        decision: Decision,
        reason: Option<AbortReason>,
    },
    PresumedAbort {
        tx_id: TxId,
    },
    Epoch(Identity),
    Checkpoint(Box<JsonCoordinatorCheckpointV1>),
}

impl From<JsonCoordinatorRecord> for CoordinatorRecord {
    fn from(record: JsonCoordinatorRecord) -> CoordinatorRecord {
        match record {
            JsonCoordinatorRecord::Commit {
                tx_id,
                ts_us: ts,
                request,
                legs,
            } => CoordinatorRecord::Commit {
                tx_id,
                ts_us: ts,
                request,
                legs,
            },
            JsonCoordinatorRecord::End { tx_id } => CoordinatorRecord::End { tx_id },
            JsonCoordinatorRecord::Finished {
                tx_id,
                request,
                decision,
                reason,
            } => CoordinatorRecord::Finished {
                tx_id,
                request,
                decision,
                reason,
            },
            JsonCoordinatorRecord::PresumedAbort { tx_id } => {
                CoordinatorRecord::PresumedAbort { tx_id }
            }
            JsonCoordinatorRecord::Epoch(identity) => CoordinatorRecord::Epoch(identity),
            JsonCoordinatorRecord::Checkpoint(v1) => {
                CoordinatorRecord::Checkpoint(Box::new(CoordinatorCheckpoint {
                    identity: None,
                    pending_commits: v1.pending_commits,
                    outcomes: v1
                        .outcomes
                        .into_iter()
                        .map(|(id, request, decision, reason)| {
                            (id, Some(request), decision, reason)
                        })
                        .collect(),
                    ts_max_us: v1.ts_max_us,
                }))
            }
        }
    }
}

/// [`CoordinatorRecord::Checkpoint`] built from borrowed parts: encodes to
/// the same bytes without copying every remembered outcome first (a
/// checkpoint may hold a million of them, and it is encoded while
/// transactions wait).
pub struct CoordinatorCheckpointRef<'a> {
    pub identity: Option<&'a Identity>,
    pub pending_commits: Vec<(&'a TxId, u64, &'a TransferRequest, &'a [Leg])>,
    pub outcomes: Vec<(
        &'a TxId,
        Option<&'a TransferRequest>,
        Decision,
        Option<AbortReason>,
    )>,
    pub ts_max_us: u64,
}

impl Serialize for CoordinatorCheckpointRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let pending = self
            .pending_commits
            .iter()
            .map(|&(id, ts, request, legs)| (id, ts, BinaryRequest { request, key: id }, legs));
        let outcomes = self
            .outcomes
            .iter()
            .map(|&(id, request, decision, reason)| {
                let request = request.map(|request| BinaryRequest { request, key: id });
                (id, request, decision, reason)
            });
        let mut t = serializer.serialize_tuple(4)?;
        t.serialize_element(&self.identity)?;
        t.serialize_element(&Seq(std::cell::Cell::new(Some(pending))))?;
        t.serialize_element(&Seq(std::cell::Cell::new(Some(outcomes))))?;
        t.serialize_element(&self.ts_max_us)?;
        t.end()
    }
}

/// Serialises an iterator (once) as a sequence, without collecting it.
struct Seq<I>(std::cell::Cell<Option<I>>);

impl<I> Serialize for Seq<I>
where
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.take() {
            Some(items) => serializer.collect_seq(items),
            None => Err(serde::ser::Error::custom("a sequence is serialised once")),
        }
    }
}

impl CoordinatorCheckpointRef<'_> {
    /// The binary checkpoint record (see [`BINARY_CHECKPOINT`]).
    pub fn encode(&self) -> Vec<u8> {
        let capacity = self.outcomes.len() * 56 + self.pending_commits.len() * 128 + 64;
        binary_checkpoint(self, capacity)
    }
}

impl ParticipantCheckpoint {
    /// Encoded as its borrowed form is. (Owned checkpoints are encoded by
    /// tests and the simulation; the processes encode snapshots, whose
    /// ledgers are not copied.)
    fn encode(&self) -> Vec<u8> {
        let ledgers: Vec<std::collections::VecDeque<LedgerEntry>> = self
            .ledgers
            .iter()
            .map(|(_, entries)| entries.iter().cloned().collect())
            .collect();
        ParticipantCheckpointRef {
            accounts: self.accounts.iter().map(|(a, b)| (a, *b)).collect(),
            ledgers: self
                .ledgers
                .iter()
                .zip(&ledgers)
                .map(|((account, _), entries)| (account, entries))
                .collect(),
            prepared: self
                .prepared
                .iter()
                .map(|(id, ts, epoch, ops)| (id, *ts, *epoch, ops.as_slice()))
                .collect(),
            outcomes: self
                .outcomes
                .iter()
                .map(|(id, d, digest)| (id, *d, *digest))
                .collect(),
            heuristics: self
                .heuristics
                .iter()
                .map(|(id, d, ops)| (id, *d, ops.as_slice()))
                .collect(),
            cluster: self.cluster.as_ref(),
            epoch: self.epoch,
        }
        .encode()
    }
}

impl CoordinatorCheckpoint {
    fn parts(&self) -> CoordinatorCheckpointRef<'_> {
        CoordinatorCheckpointRef {
            identity: self.identity.as_ref(),
            pending_commits: self
                .pending_commits
                .iter()
                .map(|(id, ts, request, legs)| (id, *ts, request, legs.as_slice()))
                .collect(),
            outcomes: self
                .outcomes
                .iter()
                .map(|(id, request, decision, reason)| (id, request.as_ref(), *decision, *reason))
                .collect(),
            ts_max_us: self.ts_max_us,
        }
    }
}

/// `parts` behind [`BINARY_CHECKPOINT`]; `capacity` as for [`tagged_binary`].
fn binary_checkpoint<T: Serialize>(parts: &T, capacity: usize) -> Vec<u8> {
    tagged_binary(BINARY_CHECKPOINT, parts, capacity)
}

/// Decodes a binary checkpoint's fields (after its tag).
fn decode_binary<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, String> {
    decode_tagged(bytes, "checkpoint")
}

impl ParticipantRecord {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ParticipantRecord::Checkpoint(cp) => cp.encode(),
            ParticipantRecord::Prepared {
                tx_id,
                ts_us: ts,
                epoch,
                ops,
            } => binary_record(&BinaryParticipantRecordRef::PreparedInEpoch {
                tx_id,
                ts_us: *ts,
                epoch: *epoch,
                ops,
            }),
            ParticipantRecord::Committed { tx_id, ops } => {
                binary_record(&BinaryParticipantRecordRef::Committed { tx_id, ops })
            }
            ParticipantRecord::Aborted { tx_id } => {
                binary_record(&BinaryParticipantRecordRef::Aborted { tx_id })
            }
            record @ (ParticipantRecord::Init { .. }
            | ParticipantRecord::Heuristic { .. }
            | ParticipantRecord::Coordinator { .. }) => {
                serde_json::to_vec(record).expect("log records always serialise")
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if let Some(binary) = bytes.strip_prefix(&BINARY_RECORD[..]) {
            return decode_binary_record::<OwnedBinaryParticipantRecord>(binary).map(Into::into);
        }
        if let Some(binary) = bytes.strip_prefix(&BINARY_CHECKPOINT[..]) {
            return Ok(ParticipantRecord::Checkpoint(Box::new(decode_binary(
                binary,
            )?)));
        }
        if let Some(binary) = bytes.strip_prefix(&BINARY_CHECKPOINT_V1[..]) {
            let v1: ParticipantCheckpointV1 = decode_binary(binary)?;
            return Ok(ParticipantRecord::Checkpoint(Box::new(v1.into())));
        }
        serde_json::from_slice::<JsonParticipantRecord>(bytes)
            .map(Into::into)
            .map_err(|e| e.to_string())
    }
}

impl CoordinatorRecord {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            CoordinatorRecord::Checkpoint(cp) => cp.parts().encode(),
            CoordinatorRecord::Commit {
                tx_id,
                ts_us: ts,
                request,
                legs,
            } => binary_record(&BinaryCoordinatorRecordRef::Commit {
                tx_id,
                ts_us: *ts,
                request: BinaryRequest {
                    request,
                    key: tx_id,
                },
                legs,
            }),
            CoordinatorRecord::End { tx_id } => {
                binary_record(&BinaryCoordinatorRecordRef::End { tx_id })
            }
            CoordinatorRecord::Finished {
                tx_id,
                request,
                decision,
                reason,
            } => binary_record(&BinaryCoordinatorRecordRef::Finished {
                tx_id,
                request: BinaryRequest {
                    request,
                    key: tx_id,
                },
                decision: *decision,
                reason: *reason,
            }),
            record @ (CoordinatorRecord::PresumedAbort { .. } | CoordinatorRecord::Epoch(_)) => {
                serde_json::to_vec(record).expect("log records always serialise")
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if let Some(binary) = bytes.strip_prefix(&BINARY_RECORD[..]) {
            return decode_binary_record::<OwnedBinaryCoordinatorRecord>(binary).map(Into::into);
        }
        if let Some(binary) = bytes.strip_prefix(&BINARY_CHECKPOINT[..]) {
            let cp: BinaryCoordinatorCheckpoint = decode_binary(binary)?;
            return Ok(CoordinatorRecord::Checkpoint(Box::new(
                CoordinatorCheckpoint {
                    identity: cp.identity,
                    pending_commits: cp
                        .pending_commits
                        .into_iter()
                        .map(|(id, ts, request, legs)| {
                            let request = request.request(&id);
                            (id, ts, request, legs)
                        })
                        .collect(),
                    outcomes: cp
                        .outcomes
                        .into_iter()
                        .map(|(id, request, decision, reason)| {
                            let request = request.map(|r| r.request(&id));
                            (id, request, decision, reason)
                        })
                        .collect(),
                    ts_max_us: cp.ts_max_us,
                },
            )));
        }
        if let Some(binary) = bytes.strip_prefix(&BINARY_CHECKPOINT_V1[..]) {
            let cp: BinaryCoordinatorCheckpointV1 = decode_binary(binary)?;
            return Ok(CoordinatorRecord::Checkpoint(Box::new(
                CoordinatorCheckpoint {
                    identity: None,
                    pending_commits: cp
                        .pending_commits
                        .into_iter()
                        .map(|(id, ts, request, legs)| {
                            let request = request.request(&id);
                            (id, ts, request, legs)
                        })
                        .collect(),
                    outcomes: cp
                        .outcomes
                        .into_iter()
                        .map(|(id, request, decision, reason)| {
                            let request = request.request(&id);
                            (id, Some(request), decision, reason)
                        })
                        .collect(),
                    ts_max_us: cp.ts_max_us,
                },
            )));
        }
        serde_json::from_slice::<JsonCoordinatorRecord>(bytes)
            .map(Into::into)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(account: &str, delta_cents: i64) -> Op {
        Op {
            account: account.into(),
            delta_cents,
        }
    }

    fn request(tx_id: Option<&str>) -> TransferRequest {
        TransferRequest {
            from: "A".into(),
            to: "B".into(),
            amount_cents: 250,
            tx_id: tx_id.map(Into::into),
        }
    }

    fn participant_checkpoint() -> ParticipantRecord {
        ParticipantRecord::Checkpoint(Box::new(ParticipantCheckpoint {
            accounts: vec![("A".into(), 99_750), ("C".into(), 0)],
            ledgers: vec![(
                "A".into(),
                vec![LedgerEntry {
                    tx_id: "t1".into(),
                    delta_cents: -250,
                    balance_cents: 99_750,
                }],
            )],
            prepared: vec![("t2".into(), 7, 3, vec![op("A", -5)])],
            outcomes: vec![
                ("t1".into(), Decision::Commit, 0x0102),
                ("t0".into(), Decision::Abort, 0),
            ],
            heuristics: vec![("t3".into(), Decision::Abort, vec![op("C", 5)])],
            cluster: Some("c1".into()),
            epoch: 4,
        }))
    }

    /// [`participant_checkpoint`] as version 1 held it (no epochs, digests
    /// or cluster).
    fn participant_checkpoint_v1() -> ParticipantRecord {
        let mut cp = participant_checkpoint();
        if let ParticipantRecord::Checkpoint(cp) = &mut cp {
            cp.prepared[0].2 = 0;
            cp.outcomes[0].2 = 0;
            cp.cluster = None;
            cp.epoch = 0;
        }
        cp
    }

    fn coordinator_checkpoint() -> CoordinatorRecord {
        let legs = vec![
            Leg {
                node: "6001".into(),
                ops: vec![op("A", -250)],
            },
            Leg {
                node: "6002".into(),
                ops: vec![op("B", 250)],
            },
        ];
        CoordinatorRecord::Checkpoint(Box::new(CoordinatorCheckpoint {
            identity: Some(Identity {
                cluster: "c1".into(),
                epoch: 5,
                legacy_history: true,
            }),
            pending_commits: vec![("t2".into(), 9, request(Some("t2")), legs)],
            outcomes: vec![
                ("t1".into(), Some(request(None)), Decision::Commit, None),
                (
                    "t0".into(),
                    Some(request(Some("t0"))),
                    Decision::Abort,
                    Some(AbortReason::InsufficientFunds),
                ),
                (
                    "t4".into(),
                    None,
                    Decision::Abort,
                    Some(AbortReason::CoordinatorCrashed),
                ),
            ],
            ts_max_us: 1_000,
        }))
    }

    /// [`coordinator_checkpoint`] as version 1 held it (no identity, every
    /// outcome with its request).
    fn coordinator_checkpoint_v1() -> CoordinatorRecord {
        let mut cp = coordinator_checkpoint();
        if let CoordinatorRecord::Checkpoint(cp) = &mut cp {
            cp.identity = None;
            cp.outcomes.pop();
        }
        cp
    }

    /// Checkpoints are binary and come back equal; every other record stays
    /// JSON.
    #[test]
    fn checkpoints_round_trip_in_binary() {
        let p = participant_checkpoint();
        let bytes = p.encode();
        assert!(bytes.starts_with(&BINARY_CHECKPOINT), "{bytes:?}");
        assert_eq!(ParticipantRecord::decode(&bytes), Ok(p));
        let mut c = coordinator_checkpoint();
        let bytes = c.encode();
        assert!(bytes.starts_with(&BINARY_CHECKPOINT), "{bytes:?}");
        assert_eq!(CoordinatorRecord::decode(&bytes), Ok(c.clone()));
        // A request whose tx_id is not the id it is kept under (never
        // written today) still comes back as it was.
        if let CoordinatorRecord::Checkpoint(cp) = &mut c {
            cp.outcomes.push((
                "t9".into(),
                Some(request(Some("other"))),
                Decision::Abort,
                None,
            ));
        }
        assert_eq!(CoordinatorRecord::decode(&c.encode()), Ok(c));
    }

    fn legs() -> Vec<Leg> {
        vec![
            Leg {
                node: "6001".into(),
                ops: vec![op("A", -250)],
            },
            Leg {
                node: "6002".into(),
                ops: vec![op("B", 250)],
            },
        ]
    }

    /// Every record of a transaction, in the forms it can take.
    fn transaction_records() -> (Vec<ParticipantRecord>, Vec<CoordinatorRecord>) {
        let participant = vec![
            ParticipantRecord::Prepared {
                tx_id: "t1".into(),
                ts_us: 7,
                epoch: 2,
                ops: vec![op("A", -250), op("C", 250)],
            },
            ParticipantRecord::Committed {
                tx_id: "t1".into(),
                ops: vec![op("A", -250)],
            },
            ParticipantRecord::Aborted { tx_id: "t2".into() },
        ];
        let coordinator = vec![
            CoordinatorRecord::Commit {
                tx_id: "t1".into(),
                ts_us: 9,
                request: request(Some("t1")),
                legs: legs(),
            },
            CoordinatorRecord::Commit {
                tx_id: "tx-9".into(),
                ts_us: 9,
                request: request(None),
                legs: legs(),
            },
            CoordinatorRecord::End { tx_id: "t1".into() },
            CoordinatorRecord::Finished {
                tx_id: "t2".into(),
                request: request(Some("t2")),
                decision: Decision::Abort,
                reason: Some(AbortReason::InsufficientFunds),
            },
            // Never written today: a request whose tx_id is not the record's.
            CoordinatorRecord::Finished {
                tx_id: "t3".into(),
                request: request(Some("other")),
                decision: Decision::Commit,
                reason: None,
            },
        ];
        (participant, coordinator)
    }

    /// A transaction's records are binary and come back equal; the rare
    /// ones (a node's INIT and HEURISTIC) stay JSON.
    #[test]
    fn transaction_records_round_trip_in_binary() {
        let (participant, coordinator) = transaction_records();
        for record in participant {
            let bytes = record.encode();
            assert!(bytes.starts_with(&BINARY_RECORD), "{record:?}: {bytes:?}");
            assert_eq!(ParticipantRecord::decode(&bytes), Ok(record));
        }
        for record in coordinator {
            let bytes = record.encode();
            assert!(bytes.starts_with(&BINARY_RECORD), "{record:?}: {bytes:?}");
            assert_eq!(CoordinatorRecord::decode(&bytes), Ok(record));
        }
        let init = ParticipantRecord::Init {
            accounts: vec![("A".into(), 100)],
        };
        assert_eq!(init.encode(), br#"{"rec":"init","accounts":[["A",100]]}"#);
        assert_eq!(ParticipantRecord::decode(&init.encode()), Ok(init));
        let heuristic = ParticipantRecord::Heuristic {
            tx_id: "t1".into(),
            decision: Decision::Abort,
            ops: vec![op("A", 5)],
        };
        assert!(heuristic.encode().starts_with(br#"{"rec":"heuristic""#));
        assert_eq!(
            ParticipantRecord::decode(&heuristic.encode()),
            Ok(heuristic)
        );
        for coordinator in [
            ParticipantRecord::Coordinator {
                cluster: Some("c1".into()),
                epoch: 3,
            },
            ParticipantRecord::Coordinator {
                cluster: None,
                epoch: 0,
            },
        ] {
            assert!(coordinator.encode().starts_with(br#"{"rec":"coordinator""#));
            assert_eq!(
                ParticipantRecord::decode(&coordinator.encode()),
                Ok(coordinator)
            );
        }
        for record in [
            CoordinatorRecord::PresumedAbort { tx_id: "t5".into() },
            CoordinatorRecord::Epoch(Identity {
                cluster: "c1".into(),
                epoch: 2,
                legacy_history: false,
            }),
        ] {
            assert!(record.encode().starts_with(b"{"), "{record:?}");
            assert_eq!(CoordinatorRecord::decode(&record.encode()), Ok(record));
        }
    }

    /// A log written by an older version (every record JSON) still
    /// recovers; a PREPARED record from before epochs has epoch 0.
    #[test]
    fn json_records_of_older_versions_still_decode() {
        let (participant, coordinator) = transaction_records();
        for record in participant {
            let json = serde_json::to_vec(&record).expect("serialises");
            assert!(json.starts_with(b"{"), "{json:?}");
            assert_eq!(ParticipantRecord::decode(&json), Ok(record));
        }
        assert_eq!(
            ParticipantRecord::decode(
                br#"{"rec":"prepared","tx_id":"t1","ts":7,"ops":[{"account":"A","delta_cents":-250}]}"#
            ),
            Ok(ParticipantRecord::Prepared {
                tx_id: "t1".into(),
                ts_us: 7,
                epoch: 0,
                ops: vec![op("A", -250)],
            })
        );
        for record in coordinator {
            let json = serde_json::to_vec(&record).expect("serialises");
            assert!(json.starts_with(b"{"), "{json:?}");
            assert_eq!(CoordinatorRecord::decode(&json), Ok(record));
        }
        assert_eq!(
            CoordinatorRecord::decode(br#"{"rec":"end","tx_id":"t1"}"#),
            Ok(CoordinatorRecord::End { tx_id: "t1".into() })
        );
    }

    /// Like the checkpoint's: these bytes must only ever change together
    /// with the version byte of [`BINARY_RECORD`] (and a reader for the old
    /// one).
    #[test]
    fn the_binary_record_bytes_are_pinned() {
        let hex = |bytes: Vec<u8>| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        let (participant, coordinator) = transaction_records();
        let participant: Vec<String> = participant.into_iter().map(|r| hex(r.encode())).collect();
        assert_eq!(
            participant,
            [
                "0101 03 027431 07 02 02 0141 f303 0143 f403",
                "0101 01 027431 01 0141 f303",
                "0101 02 027432",
            ]
            .map(|h| h.replace(' ', ""))
        );
        let coordinator: Vec<String> = coordinator.into_iter().map(|r| hex(r.encode())).collect();
        assert_eq!(
            coordinator,
            [
                "0101 00 027431 09 0141 0142 f403 01 02 0436303031 01 0141 f303 0436303032 01 0142 f403",
                "0101 00 0474782d39 09 0141 0142 f403 00 02 0436303031 01 0141 f303 0436303032 01 0142 f403",
                "0101 01 027431",
                "0101 02 027432 0141 0142 f403 01 01 01 00",
                "0101 02 027433 0141 0142 f403 02 056f74686572 00 00",
            ]
            .map(|h| h.replace(' ', ""))
        );
    }

    /// What older versions wrote for PREPARED (no epoch) still reads, as
    /// epoch 0.
    #[test]
    fn a_binary_prepared_record_of_an_older_version_reads_as_epoch_0() {
        let bytes: Vec<u8> = [
            0x01, 0x01, 0x00, 0x02, b't', b'1', 0x07, 0x01, 0x01, b'A', 0xf3, 0x03,
        ]
        .to_vec();
        assert_eq!(
            ParticipantRecord::decode(&bytes),
            Ok(ParticipantRecord::Prepared {
                tx_id: "t1".into(),
                ts_us: 7,
                epoch: 0,
                ops: vec![op("A", -250)],
            })
        );
    }

    /// Binary records, unlike JSON, hold bytes below 0x20, so a length read
    /// from inside one can look sane, and the scan that tells a torn tail
    /// from damage in the middle must checksum it. A write torn anywhere in
    /// the last record, before the zeros preallocated after it, must still
    /// be cut as a torn tail (not refused for having spent its search
    /// budget), and the records before it kept.
    #[cfg(feature = "native")]
    #[test]
    fn a_torn_binary_record_before_the_preallocated_zeros_is_a_torn_tail() {
        use crate::limits::LOG_PREALLOCATE_AHEAD_BYTES;
        use crate::log::frame::{encode_frame, scan, Tail};
        let (participant, coordinator) = transaction_records();
        let mut records: Vec<Vec<u8>> = Vec::new();
        for i in 0..50 {
            records.extend(participant.iter().map(ParticipantRecord::encode));
            records.extend(coordinator.iter().map(CoordinatorRecord::encode));
            // Amounts and timestamps of every size, small ones full of zeros.
            records.push(
                ParticipantRecord::Prepared {
                    tx_id: format!("tx-{i}"),
                    ts_us: 1 << i,
                    epoch: i,
                    ops: vec![op("A", -(1 << i)), op("B", 0)],
                }
                .encode(),
            );
        }
        let mut log = Vec::new();
        for record in &records {
            encode_frame(record, &mut log);
        }
        let last_start = log.len();
        // Not one ending in a zero byte: cut there, the zeros after it
        // would give it back whole.
        let last = ParticipantRecord::Prepared {
            tx_id: "tx-last".into(),
            ts_us: 1 << 40,
            epoch: 7,
            ops: vec![op("A", -(1 << 40)), op("B", 1 << 40)],
        }
        .encode();
        assert_ne!(last.last(), Some(&0));
        encode_frame(&last, &mut log);
        let started = std::time::Instant::now();
        for cut in last_start..log.len() {
            let mut torn = log[..cut].to_vec();
            torn.resize(cut + LOG_PREALLOCATE_AHEAD_BYTES as usize, 0);
            let scanned = scan(&torn).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!(
                scanned.records.len(),
                records.len(),
                "cut at {cut}: {:?}",
                scanned.tail
            );
            assert!(scanned.records == records, "cut at {cut}");
            if cut > last_start {
                assert!(matches!(scanned.tail, Tail::Torn { .. }), "cut at {cut}");
            }
        }
        println!(
            "{} torn tails scanned in {:?}",
            log.len() - last_start,
            started.elapsed()
        );
    }

    #[test]
    fn a_damaged_binary_record_is_an_error_not_a_guess() {
        let (participant, coordinator) = transaction_records();
        for record in &participant {
            let bytes = record.encode();
            let cut = ParticipantRecord::decode(&bytes[..bytes.len() - 1]).expect_err("cut short");
            assert!(cut.contains("binary record does not decode"), "{cut}");
        }
        let mut longer = coordinator[0].encode();
        longer.push(0);
        let extra = CoordinatorRecord::decode(&longer).expect_err("a byte too many");
        assert!(extra.contains("1 bytes after its end"), "{extra}");
        // A variant this version does not know.
        let unknown = [&BINARY_RECORD[..], &[9, 2, b't', b'1']].concat();
        assert!(ParticipantRecord::decode(&unknown).is_err());
        assert!(CoordinatorRecord::decode(&unknown).is_err());
        assert!(CoordinatorRecord::decode(&BINARY_RECORD).is_err());
    }

    /// A data dir written by an older version (JSON checkpoints) still
    /// recovers, with no epochs, digests or identity.
    #[test]
    fn json_checkpoints_of_older_versions_still_decode() {
        let participant = br#"{"rec":"checkpoint","accounts":[["A",99750],["C",0]],
            "ledgers":[["A",[{"tx_id":"t1","delta_cents":-250,"balance_cents":99750}]]],
            "prepared":[["t2",7,[{"account":"A","delta_cents":-5}]]],
            "outcomes":[["t1","commit"],["t0","abort"]],
            "heuristics":[["t3","abort",[{"account":"C","delta_cents":5}]]]}"#;
        assert_eq!(
            ParticipantRecord::decode(participant),
            Ok(participant_checkpoint_v1())
        );
        let coordinator = br#"{"rec":"checkpoint",
            "pending_commits":[["t2",9,{"from":"A","to":"B","amount_cents":250,"tx_id":"t2"},
              [{"node":"6001","ops":[{"account":"A","delta_cents":-250}]},
               {"node":"6002","ops":[{"account":"B","delta_cents":250}]}]]],
            "outcomes":[["t1",{"from":"A","to":"B","amount_cents":250},"commit",null],
                        ["t0",{"from":"A","to":"B","amount_cents":250,"tx_id":"t0"},"abort","insufficient_funds"]],
            "ts_max":1000}"#;
        assert_eq!(
            CoordinatorRecord::decode(coordinator),
            Ok(coordinator_checkpoint_v1())
        );
    }

    /// Version 1 of the binary checkpoints (before cluster identities and
    /// epochs): these are the bytes it wrote; they still read.
    #[test]
    fn binary_checkpoints_of_version_1_still_decode() {
        let unhex = |h: &str| -> Vec<u8> {
            let h = h.replace(' ', "");
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
                .collect()
        };
        let participant = unhex(
            "0001\
             02 0141 cc960c 0143 00\
             01 0141 01 027431 f303 cc960c\
             01 027432 07 01 0141 09\
             02 027431 00 027430 01\
             01 027433 01 01 0143 0a",
        );
        assert_eq!(
            ParticipantRecord::decode(&participant),
            Ok(participant_checkpoint_v1())
        );
        let coordinator = unhex(
            "0001\
             01 027432 09 0141 0142 f403 01 02 0436303031 01 0141 f303 0436303032 01 0142 f403\
             02 027431 0141 0142 f403 00 00 00\
             027430 0141 0142 f403 01 01 01 00\
             e807",
        );
        assert_eq!(
            CoordinatorRecord::decode(&coordinator),
            Ok(coordinator_checkpoint_v1())
        );
    }

    /// The binary form names nothing: reordering a field or an enum variant
    /// (`Decision`, `AbortReason`) would silently change what old logs say.
    /// These bytes must only ever change together with the version byte of
    /// [`BINARY_CHECKPOINT`] (and a reader for the old one).
    #[test]
    fn the_binary_checkpoint_bytes_are_pinned() {
        let hex = |bytes: Vec<u8>| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        assert_eq!(
            hex(participant_checkpoint().encode()),
            "0002\
             02 0141 cc960c 0143 00\
             01 0141 01 027431 f303 cc960c\
             01 027432 07 03 01 0141 09\
             02 027431 00 8202 027430 01 00\
             01 027433 01 01 0143 0a\
             01 026331\
             04"
            .replace(' ', "")
        );
        assert_eq!(
            hex(coordinator_checkpoint().encode()),
            "0002\
             01 026331 05 01\
             01 027432 09 0141 0142 f403 01 02 0436303031 01 0141 f303 0436303032 01 0142 f403\
             03 027431 01 0141 0142 f403 00 00 00\
             027430 01 0141 0142 f403 01 01 01 00\
             027434 00 01 01 06\
             e807"
                .replace(' ', "")
        );
    }

    #[test]
    fn a_damaged_binary_checkpoint_is_an_error_not_a_guess() {
        let bytes = coordinator_checkpoint().encode();
        let cut = CoordinatorRecord::decode(&bytes[..bytes.len() - 1]).expect_err("cut short");
        assert!(cut.contains("binary checkpoint does not decode"), "{cut}");
        let mut longer = bytes.clone();
        longer.push(0);
        let extra = CoordinatorRecord::decode(&longer).expect_err("a byte too many");
        assert!(extra.contains("1 bytes after its end"), "{extra}");
        let bytes = participant_checkpoint().encode();
        assert!(ParticipantRecord::decode(&bytes[..bytes.len() - 3]).is_err());
        assert!(ParticipantRecord::decode(&BINARY_CHECKPOINT).is_err());
    }
}
