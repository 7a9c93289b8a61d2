//! Framing and scanning: pure functions over bytes, no I/O.
//!
//! A frame is `[len: u32 LE][crc32 of payload: u32 LE][payload]` with
//! `0 < len <= LOG_RECORD_BYTES_MAX`. [`scan`] reads frames from offset 0 and
//! decides, at the first bad frame, whether the damage is a torn tail (cut it)
//! or lies in the middle of the log (refuse to start). See the module docs of
//! [`crate::log`] for why.

use crate::limits::LOG_RECORD_BYTES_MAX;

/// Bytes in front of every payload: the length and the checksum.
pub const FRAME_HEADER_BYTES: usize = 8;

/// Most payload bytes [`scan`] checksums while looking for a valid frame
/// after a bad one (see the limit's own documentation).
pub use crate::limits::LOG_SCAN_CRC_BYTES_MAX as SCAN_SEARCH_CRC_BYTES_MAX;

// Every accepted length must fit the u32 length field.
const _: () = assert!(LOG_RECORD_BYTES_MAX <= u32::MAX as usize);

/// Bytes one frame occupies on disk for a payload of `payload_len` bytes.
pub fn frame_len(payload_len: usize) -> usize {
    FRAME_HEADER_BYTES + payload_len
}

/// Appends the frame for `payload` to `out`.
///
/// Panics if `payload` is empty or longer than `LOG_RECORD_BYTES_MAX`: callers
/// build their own records, so either is a programmer error, and writing it
/// would make the log unreadable.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(frame_len(payload.len()));
    out.extend_from_slice(&frame_header(payload));
    out.extend_from_slice(payload);
}

/// The header of `payload`'s frame (the payload follows it), for writing a
/// big payload without copying it into a frame first. Panics like
/// [`encode_frame`].
pub fn frame_header(payload: &[u8]) -> [u8; FRAME_HEADER_BYTES] {
    assert_payload_len(payload.len());
    let len = u32::try_from(payload.len()).expect("checked against LOG_RECORD_BYTES_MAX");
    let mut header = [0; FRAME_HEADER_BYTES];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    header
}

/// Panics unless `0 < payload_len <= LOG_RECORD_BYTES_MAX`.
pub fn assert_payload_len(payload_len: usize) {
    assert!(payload_len > 0, "a log record must not be empty");
    assert!(
        payload_len <= LOG_RECORD_BYTES_MAX,
        "a log record of {payload_len} bytes exceeds LOG_RECORD_BYTES_MAX ({LOG_RECORD_BYTES_MAX})"
    );
}

/// What [`scan`] recovered from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Payloads of every valid frame before the first bad one, in order.
    pub records: Vec<Vec<u8>>,
    /// Bytes from offset 0 that hold those frames; the file is cut back to this.
    pub valid_len: u64,
    /// Whether anything followed the valid frames.
    pub tail: Tail,
}

/// The end of a scanned log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// The last frame ends exactly at the end of the bytes, or only zero
    /// bytes follow it: space preallocated for later frames (a frame never
    /// starts with a zero length, so zeros cannot hide one).
    Clean,
    /// Bytes from `offset` to the end are not a valid frame and no valid frame
    /// starts after them: a write torn by a crash, or garbage. Safe to cut.
    Torn { offset: u64, detail: String },
}

/// A bad frame at `offset` with a valid frame somewhere after it: the damage is
/// in the middle of the log, so records after it may be committed decisions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt log frame at byte offset {offset}: {detail}")]
pub struct CorruptLog {
    pub offset: u64,
    pub detail: String,
}

/// Reads every frame of `bytes` from offset 0 and classifies the end.
///
/// At the first bad frame (length field truncated, length 0 or above
/// `LOG_RECORD_BYTES_MAX`, payload past the end, checksum mismatch) at offset X:
/// if every byte from X on is zero, that is preallocated free space
/// ([`Tail::Clean`], `valid_len = X`); else if a valid frame starts at any
/// Y > X, returns [`CorruptLog`] at X; otherwise returns the records before X
/// with [`Tail::Torn`] and `valid_len = X`.
pub fn scan(bytes: &[u8]) -> Result<Scan, CorruptLog> {
    scan_with_budget(bytes, SCAN_SEARCH_CRC_BYTES_MAX)
}

fn scan_with_budget(bytes: &[u8], search_crc_bytes_max: u64) -> Result<Scan, CorruptLog> {
    let mut records = Vec::new();
    let mut offset = 0usize;
    while offset < bytes.len() {
        let bad = match check_frame(bytes, offset) {
            Ok(payload) => {
                records.push(payload.to_vec());
                offset += frame_len(payload.len());
                continue;
            }
            Err(bad) => bad.to_string(),
        };
        let offset_u64 = offset as u64;
        if bytes[offset..].iter().all(|&byte| byte == 0) {
            // Preallocated space: the log file is extended with zeros ahead
            // of the records (see `file`), and no frame starts with a zero
            // length, so only zeros after the last frame mean "free space".
            return Ok(Scan {
                records,
                valid_len: offset_u64,
                tail: Tail::Clean,
            });
        }
        return match find_valid_frame(bytes, offset + 1, search_crc_bytes_max) {
            Search::NotFound => Ok(Scan {
                records,
                valid_len: offset_u64,
                tail: Tail::Torn {
                    offset: offset_u64,
                    detail: bad,
                },
            }),
            Search::Found(later) => Err(CorruptLog {
                offset: offset_u64,
                detail: format!("{bad}, yet a valid frame starts later at byte offset {later}"),
            }),
            Search::BudgetExhausted(at) => Err(CorruptLog {
                offset: offset_u64,
                detail: format!(
                    "{bad}; gave up at byte offset {at} after checksumming \
                     {search_crc_bytes_max} bytes of candidate frames, so valid frames \
                     after the damage cannot be ruled out"
                ),
            }),
        };
    }
    Ok(Scan {
        records,
        valid_len: offset as u64,
        tail: Tail::Clean,
    })
}

/// Why the frame at some offset is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadFrame {
    HeaderTruncated { have_bytes: usize },
    LengthZero,
    LengthTooLarge { len: u32 },
    PayloadPastEnd { len: u32, have_bytes: usize },
    ChecksumMismatch { stored: u32, computed: u32 },
}

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            BadFrame::HeaderTruncated { have_bytes } => write!(
                f,
                "frame header truncated ({have_bytes} of {FRAME_HEADER_BYTES} bytes)"
            ),
            BadFrame::LengthZero => write!(f, "length field is 0"),
            BadFrame::LengthTooLarge { len } => write!(
                f,
                "length field {len} exceeds LOG_RECORD_BYTES_MAX ({LOG_RECORD_BYTES_MAX})"
            ),
            BadFrame::PayloadPastEnd { len, have_bytes } => write!(
                f,
                "payload of {len} bytes runs past the end ({have_bytes} bytes present)"
            ),
            BadFrame::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

fn read_u32_le(bytes: &[u8], at: usize) -> Option<u32> {
    let field: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(field))
}

/// The payload of the frame at `offset`, if that frame is valid.
fn check_frame(bytes: &[u8], offset: usize) -> Result<&[u8], BadFrame> {
    let rest = bytes.get(offset..).unwrap_or_default();
    let (Some(len), Some(stored)) = (read_u32_le(rest, 0), read_u32_le(rest, 4)) else {
        return Err(BadFrame::HeaderTruncated {
            have_bytes: rest.len(),
        });
    };
    if len == 0 {
        return Err(BadFrame::LengthZero);
    }
    let len_usize = len as usize;
    if len_usize > LOG_RECORD_BYTES_MAX {
        return Err(BadFrame::LengthTooLarge { len });
    }
    let body = &rest[FRAME_HEADER_BYTES..];
    let Some(payload) = body.get(..len_usize) else {
        return Err(BadFrame::PayloadPastEnd {
            len,
            have_bytes: body.len(),
        });
    };
    let computed = crc32fast::hash(payload);
    if computed != stored {
        return Err(BadFrame::ChecksumMismatch { stored, computed });
    }
    Ok(payload)
}

enum Search {
    NotFound,
    Found(usize),
    BudgetExhausted(usize),
}

/// Looks for a valid frame starting at any offset >= `start`.
///
/// Every offset gets the cheap test first (a sane length that fits in what is
/// left); only survivors pay for a checksum. Inside a JSON payload (bytes
/// all >= 0x20) a length field read is at least 0x2020_2020 and fails the
/// cheap test; inside a binary one (postcard) a sane-looking length is
/// common and costs a checksum of that many bytes, within the budget. After
/// a torn write that is a few checksums: the search starts in the one torn
/// record, and zeros follow it (see `protocol::record`'s torn-tail test).
fn find_valid_frame(bytes: &[u8], start: usize, search_crc_bytes_max: u64) -> Search {
    let mut crc_bytes: u64 = 0;
    let mut offset = start;
    // A frame needs its header and at least one payload byte.
    while offset + FRAME_HEADER_BYTES < bytes.len() {
        let room = bytes.len() - offset - FRAME_HEADER_BYTES;
        let len = read_u32_le(bytes, offset).map_or(0, |len| len as usize);
        let plausible = len > 0 && len <= LOG_RECORD_BYTES_MAX && len <= room;
        if plausible {
            crc_bytes += len as u64;
            if crc_bytes > search_crc_bytes_max {
                return Search::BudgetExhausted(offset);
            }
            if check_frame(bytes, offset).is_ok() {
                return Search::Found(offset);
            }
        }
        offset += 1;
    }
    Search::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_rng::Rng;

    fn encode_all(records: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        for record in records {
            offsets.push(out.len());
            encode_frame(record, &mut out);
        }
        (out, offsets)
    }

    fn json_like(i: usize) -> Vec<u8> {
        format!("{{\"seq\":{i},\"kind\":\"prepared\",\"tx\":\"tx-{i}\"}}").into_bytes()
    }

    #[test]
    fn empty_log_is_clean() {
        let scan = scan(&[]).expect("empty log scans");
        assert_eq!(scan.records, Vec::<Vec<u8>>::new());
        assert_eq!(scan.valid_len, 0);
        assert_eq!(scan.tail, Tail::Clean);
    }

    #[test]
    fn frame_layout_is_len_crc_payload() {
        let mut out = Vec::new();
        encode_frame(b"abc", &mut out);
        assert_eq!(&out[0..4], &3u32.to_le_bytes());
        assert_eq!(&out[4..8], &crc32fast::hash(b"abc").to_le_bytes());
        assert_eq!(&out[8..], b"abc");
        assert_eq!(out.len(), frame_len(3));
    }

    #[test]
    #[should_panic(expected = "must not be empty")]
    fn empty_payload_is_a_programmer_error() {
        encode_frame(b"", &mut Vec::new());
    }

    #[test]
    fn round_trip() {
        let records: Vec<Vec<u8>> = (0..500).map(json_like).collect();
        let (bytes, _) = encode_all(&records);
        let scan = scan(&bytes).expect("clean log scans");
        assert_eq!(scan.records, records);
        assert_eq!(scan.valid_len, bytes.len() as u64);
        assert_eq!(scan.tail, Tail::Clean);
    }

    #[test]
    fn every_cut_inside_the_last_frame_is_torn() {
        let records: Vec<Vec<u8>> = (0..5).map(json_like).collect();
        let (bytes, offsets) = encode_all(&records);
        let last = offsets[4];
        for cut in last + 1..bytes.len() {
            let scan = scan(&bytes[..cut]).expect("torn tail is not corruption");
            assert_eq!(scan.records, records[..4], "cut at {cut}");
            assert_eq!(scan.valid_len, last as u64, "cut at {cut}");
            assert!(
                matches!(scan.tail, Tail::Torn { offset, .. } if offset == last as u64),
                "cut at {cut}: {:?}",
                scan.tail
            );
        }
    }

    #[test]
    fn each_kind_of_bad_frame_is_named() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![1, 0, 0], "header truncated"),
            ([&[0u8; 11][..], &[1]].concat(), "length field is 0"),
            (
                [u32::MAX.to_le_bytes(), [0; 4]].concat(),
                "exceeds LOG_RECORD_BYTES_MAX",
            ),
            ([10u32.to_le_bytes(), [0; 4]].concat(), "runs past the end"),
            (
                [&[1u8, 0, 0, 0][..], &[0; 4], b"x"].concat(),
                "checksum mismatch",
            ),
        ];
        for (garbage, expected) in cases {
            let mut bytes = Vec::new();
            encode_frame(b"first", &mut bytes);
            let valid_len = bytes.len() as u64;
            bytes.extend_from_slice(&garbage);
            let scan = scan(&bytes).expect("garbage at the end is a torn tail");
            assert_eq!(scan.records, vec![b"first".to_vec()]);
            assert_eq!(scan.valid_len, valid_len);
            match scan.tail {
                Tail::Torn { offset, detail } => {
                    assert_eq!(offset, valid_len);
                    assert!(detail.contains(expected), "{detail:?} lacks {expected:?}");
                }
                Tail::Clean => panic!("expected a torn tail for {expected}"),
            }
        }
    }

    #[test]
    fn zeros_after_the_last_frame_are_free_space() {
        let records: Vec<Vec<u8>> = (0..5).map(json_like).collect();
        let (mut bytes, _) = encode_all(&records);
        let valid_len = bytes.len() as u64;
        for zeros in [1, 7, 8, 9, 4096, 1 << 20] {
            let mut padded = bytes.clone();
            padded.resize(bytes.len() + zeros, 0);
            let scan = scan(&padded).expect("zeros are free space");
            assert_eq!(scan.records, records, "{zeros} zeros");
            assert_eq!(scan.valid_len, valid_len, "{zeros} zeros");
            assert_eq!(scan.tail, Tail::Clean, "{zeros} zeros");
        }
        // A log that is nothing but preallocated space.
        assert_eq!(scan(&[0; 4096]).expect("empty").valid_len, 0);

        // A write torn into the free space (the frame's head landed, its
        // end did not) is a torn tail, cut at the frame's start.
        let mut torn = Vec::new();
        encode_frame(&json_like(99), &mut torn);
        torn.truncate(torn.len() - 3);
        bytes.extend_from_slice(&torn);
        bytes.resize(bytes.len() + 4096, 0);
        let scan = scan(&bytes).expect("a torn frame in free space is torn");
        assert_eq!(scan.records, records);
        assert_eq!(scan.valid_len, valid_len);
        assert!(matches!(scan.tail, Tail::Torn { offset, .. } if offset == valid_len));
    }

    #[test]
    fn a_zeroed_frame_before_a_valid_one_is_corruption() {
        // Zeros hide nothing: a record wiped to zeros with a valid frame
        // after it is mid-log damage, not free space.
        let records: Vec<Vec<u8>> = (0..6).map(json_like).collect();
        let (mut bytes, offsets) = encode_all(&records);
        bytes[offsets[2]..offsets[3]].fill(0);
        bytes.resize(bytes.len() + 4096, 0);
        let err = scan(&bytes).expect_err("a wiped record must refuse");
        assert_eq!(err.offset, offsets[2] as u64);
    }

    #[test]
    fn damage_before_a_valid_frame_is_corruption() {
        let records: Vec<Vec<u8>> = (0..10).map(json_like).collect();
        let (mut bytes, offsets) = encode_all(&records);
        bytes[offsets[3] + FRAME_HEADER_BYTES + 2] ^= 0x40;
        let err = scan(&bytes).expect_err("mid-log damage must refuse");
        assert_eq!(err.offset, offsets[3] as u64);
        assert!(err.detail.contains("checksum mismatch"), "{}", err.detail);
        assert!(
            err.detail.contains(&format!("offset {}", offsets[4])),
            "{}",
            err.detail
        );
    }

    #[test]
    fn pathological_garbage_exhausts_the_budget_and_refuses() {
        let mut bytes = Vec::new();
        encode_frame(b"first", &mut bytes);
        // Every offset reads as length 0x0101_0101 (16 MiB), which would fit.
        bytes.extend(std::iter::repeat_n(0x01u8, (1 << 24) + (1 << 20)));
        let err = scan_with_budget(&bytes, 1 << 20).expect_err("budget exhausted refuses");
        assert_eq!(err.offset, frame_len(5) as u64);
        assert!(err.detail.contains("gave up"), "{}", err.detail);
    }

    #[test]
    fn search_is_one_cheap_pass_over_json_garbage() {
        // 32 MiB of JSON-looking garbage after a valid log: no offset has a
        // plausible length, so no checksum is computed and the tail is cut.
        let mut bytes = Vec::new();
        encode_frame(b"first", &mut bytes);
        let valid_len = bytes.len() as u64;
        let garbage = json_like(7);
        while bytes.len() < 32 << 20 {
            bytes.extend_from_slice(&garbage);
        }
        let scan = scan_with_budget(&bytes, 0).expect("JSON garbage is a torn tail");
        assert_eq!(scan.valid_len, valid_len);
    }

    /// Checks `result` against the rules, given that frame `first_damaged` is
    /// the first damaged one and whether any intact frame follows it.
    fn expect_scan(
        result: Result<Scan, CorruptLog>,
        records: &[Vec<u8>],
        offsets: &[usize],
        first_damaged: usize,
        intact_after: bool,
        seed: u64,
    ) {
        let damaged_offset = offsets[first_damaged] as u64;
        match (result, intact_after) {
            (Err(err), true) => assert_eq!(err.offset, damaged_offset, "seed {seed}"),
            (Ok(scan), false) => {
                assert_eq!(scan.records, records[..first_damaged], "seed {seed}");
                assert_eq!(scan.valid_len, damaged_offset, "seed {seed}");
                assert!(
                    matches!(scan.tail, Tail::Torn { offset, .. } if offset == damaged_offset),
                    "seed {seed}: {:?}",
                    scan.tail
                );
            }
            (other, _) => panic!(
                "seed {seed}: frame {first_damaged} at {damaged_offset} damaged, \
                 intact frames after it: {intact_after}, got {other:?}"
            ),
        }
    }

    #[test]
    fn property_random_damage_to_the_last_records() {
        for seed in 0..2_000u64 {
            let mut rng = Rng::new(seed);
            let count = rng.range(1, 12);
            let records: Vec<Vec<u8>> = (0..count)
                .map(|i| {
                    if rng.range(0, 2) == 0 {
                        json_like(i)
                    } else {
                        let len = rng.range(1, 300);
                        rng.bytes(len)
                    }
                })
                .collect();
            let (mut bytes, offsets) = encode_all(&records);
            let ends: Vec<usize> = (0..count)
                .map(|i| offsets.get(i + 1).copied().unwrap_or(bytes.len()))
                .collect();

            // Damage some of the last (up to) three frames: each chosen frame
            // gets 1..4 bytes XORed with a non-zero mask (two hits on one byte
            // may cancel, so "damaged" is decided by comparing afterwards).
            let original = bytes.clone();
            let window = count.min(3);
            let must = rng.range(count - window, count);
            for i in count - window..count {
                let chosen = i == must || rng.range(0, 2) == 0;
                if !chosen {
                    continue;
                }
                let (start, end) = (offsets[i], ends[i]);
                for _ in 0..rng.range(1, 4) {
                    let at = rng.range(start, end);
                    bytes[at] ^= rng.range(1, 256) as u8;
                }
            }
            let mut damaged: Vec<bool> = (0..count)
                .map(|i| bytes[offsets[i]..ends[i]] != original[offsets[i]..ends[i]])
                .collect();
            // Sometimes also tear the end inside the last frame.
            if rng.range(0, 3) == 0 {
                let last_start = offsets[count - 1];
                let cut = rng.range(last_start + 1, bytes.len());
                bytes.truncate(cut);
                damaged[count - 1] = true;
            }
            let Some(first_damaged) = damaged.iter().position(|&d| d) else {
                continue; // every hit cancelled out: nothing to check
            };
            let intact_after = damaged[first_damaged + 1..].iter().any(|&d| !d);
            expect_scan(
                scan(&bytes),
                &records,
                &offsets,
                first_damaged,
                intact_after,
                seed,
            );
        }
    }
}
