//! Framing and scanning: pure functions over bytes, no I/O.
//!
//! A frame is `[len: u32 LE][crc32 of payload: u32 LE][payload]` with
//! `0 < len <= LOG_RECORD_BYTES_MAX`. [`scan`] reads frames from offset 0 and
//! decides, at the first bad frame, whether the damage is a torn tail (cut it)
//! or lies in the middle of the log (refuse to start). See the module docs of
//! [`crate::log`] for why.
//!
//! # Zeros before valid frames: writes a power cut lost
//!
//! Frames are written into preallocated zeros. After a power cut, what was
//! written since the last fdatasync may be on the disk or not, in whole
//! aligned sectors ([`DISK_SECTOR_BYTES`]); a lost sector reads as zeros. A
//! bad frame at X before valid frames is such a lost write, cut as a torn
//! tail, if its whole header and the rest of its sector are zeros, or if
//! only its checksum fails and a whole aligned sector inside it is zeros,
//! with no valid frame starting before that sector. A sync of anything after
//! X would have made X durable, so nothing from X on was ever synced: the
//! valid frames after X are lost with it, and nobody relied on them.
//!
//! Anything else is refused: a flipped byte zeroes no sector, and zeros that
//! end inside a sector mean that sector was written. The whole header must be
//! zero so that one zeroed length byte at a sector's end is refused (so is a
//! header split between a lost sector and a written one: the safe side). A
//! synced sector that the disk later returns as zeros, or a payload holding a
//! zero sector of its own and damaged elsewhere, would be cut: the scan trusts
//! synced sectors to keep their bytes, and records here (ids in every entry)
//! never hold 512 zero bytes in a row.

use crate::limits::{DISK_SECTOR_BYTES, LOG_RECORD_BYTES_MAX, LOG_SCAN_CRC_BYTES_MAX};

/// Bytes in front of every payload: the length and the checksum.
pub const FRAME_HEADER_BYTES: usize = 8;

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
    /// Bytes from `offset` to the end were never synced: no valid frame
    /// starts after a bad one (a write torn by a crash, or garbage), or the
    /// bad frame is a write a power cut lost (see the module docs), and the
    /// valid frames after it were written later. Safe to cut.
    Torn { offset: u64, detail: String },
}

/// A bad frame at `offset` with a valid frame somewhere after it, and not the
/// shape of a lost write: the damage is in the middle of the log, so records
/// after it may be committed decisions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt log frame at byte offset {offset}: {detail}")]
pub struct CorruptLog {
    pub offset: u64,
    pub detail: String,
}

/// Reads every frame of `bytes` (a whole file, from its offset 0: sectors
/// are aligned to file offsets) and classifies the end.
///
/// At the first bad frame (length field truncated, length 0 or above
/// `LOG_RECORD_BYTES_MAX`, payload past the end, checksum mismatch) at offset X:
/// if every byte from X on is zero, that is preallocated free space
/// ([`Tail::Clean`], `valid_len = X`); else if X is a write a power cut lost
/// (module docs), or no valid frame starts at any Y > X, returns the records
/// before X with [`Tail::Torn`] and `valid_len = X`; otherwise returns
/// [`CorruptLog`] at X. A search that checksums more than
/// [`LOG_SCAN_CRC_BYTES_MAX`] (only pathological garbage does) counts as
/// finding a valid frame (the safe side: the log is refused as corrupt).
pub fn scan(bytes: &[u8]) -> Result<Scan, CorruptLog> {
    scan_with_budget(bytes, LOG_SCAN_CRC_BYTES_MAX)
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
            Err(bad) => bad,
        };
        let valid_len = offset as u64;
        let tail = match classify_end(bytes, offset, bad, search_crc_bytes_max) {
            End::FreeSpace => Tail::Clean,
            End::Torn(detail) => Tail::Torn {
                offset: valid_len,
                detail,
            },
            End::Corrupt(detail) => {
                return Err(CorruptLog {
                    offset: valid_len,
                    detail,
                })
            }
        };
        return Ok(Scan {
            records,
            valid_len,
            tail,
        });
    }
    Ok(Scan {
        records,
        valid_len: offset as u64,
        tail: Tail::Clean,
    })
}

/// What the bytes from the first bad frame on are.
enum End {
    FreeSpace,
    Torn(String),
    Corrupt(String),
}

/// Classifies the bytes from `offset`, where the frame is `bad` (see [`scan`]).
fn classify_end(bytes: &[u8], offset: usize, bad: BadFrame, search_crc_bytes_max: u64) -> End {
    if bytes[offset..].iter().all(|&byte| byte == 0) {
        // Preallocated space: the log file is extended with zeros ahead
        // of the records (see `file`), and no frame starts with a zero
        // length, so only zeros after the last frame mean "free space".
        return End::FreeSpace;
    }
    if let Some(zeros_end) = lost_first_sector(bytes, offset) {
        return End::Torn(format!(
            "{bad}: the header and every byte up to byte offset {zeros_end} are zero, \
             a write that never reached the disk, so nothing from here on was synced"
        ));
    }
    // A zeroed sector inside the frame is a lost write only if no valid
    // frame starts before it: look that far, not further.
    let lost_sector = lost_inner_sector(bytes, offset, bad);
    let search_end = lost_sector.unwrap_or(bytes.len());
    match find_valid_frame(bytes, offset + 1, search_end, search_crc_bytes_max) {
        Search::NotFound => match lost_sector {
            Some(sector) => End::Torn(format!(
                "{bad}: the sector at byte offset {sector} inside it is all zeros, \
                 a write that never reached the disk, so nothing from here on was synced"
            )),
            None => End::Torn(bad.to_string()),
        },
        Search::Found(later) => End::Corrupt(format!(
            "{bad}, yet a valid frame starts later at byte offset {later}"
        )),
        Search::BudgetExhausted(at) => End::Corrupt(format!(
            "{bad}; gave up at byte offset {at} after checksumming \
             {search_crc_bytes_max} bytes of candidate frames, so valid frames \
             after the damage cannot be ruled out"
        )),
    }
}

/// The first sector boundary after `offset`.
fn next_sector_start(offset: usize) -> usize {
    (offset / DISK_SECTOR_BYTES + 1) * DISK_SECTOR_BYTES
}

/// If the frame at `offset` reads as a lost sector (its whole header and
/// the rest of its sector are zeros), where those zeros end.
fn lost_first_sector(bytes: &[u8], offset: usize) -> Option<usize> {
    let zeros_end = next_sector_start(offset).max(offset + FRAME_HEADER_BYTES);
    let zeros = bytes.get(offset..zeros_end)?;
    zeros.iter().all(|&byte| byte == 0).then_some(zeros_end)
}

/// If the frame at `offset` has a sane header but fails its checksum, the
/// first aligned sector that starts inside it and is all zeros (it may run
/// past the frame's end, as a lost sector does).
fn lost_inner_sector(bytes: &[u8], offset: usize, bad: BadFrame) -> Option<usize> {
    let BadFrame::ChecksumMismatch { .. } = bad else {
        return None;
    };
    let len = read_u32_le(bytes, offset)? as usize;
    let frame_end = offset + frame_len(len);
    (next_sector_start(offset)..frame_end)
        .step_by(DISK_SECTOR_BYTES)
        .find(|&sector| {
            let zeros = bytes.get(sector..sector + DISK_SECTOR_BYTES);
            zeros.is_some_and(|zeros| zeros.iter().all(|&byte| byte == 0))
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

/// Looks for a valid frame starting at any offset in `start..starts_before`.
///
/// Every offset gets the cheap test first (a sane length that fits in what is
/// left); only survivors pay for a checksum. Inside a JSON payload (bytes
/// all >= 0x20) a length field read is at least 0x2020_2020 and fails the
/// cheap test; inside a binary one (postcard) a sane-looking length is
/// common and costs a checksum of that many bytes, within the budget. After
/// a torn write that is a few checksums: the search starts in the one torn
/// record, and zeros follow it (see `protocol::record`'s torn-tail test).
fn find_valid_frame(
    bytes: &[u8],
    start: usize,
    starts_before: usize,
    search_crc_bytes_max: u64,
) -> Search {
    let mut crc_bytes: u64 = 0;
    let mut offset = start;
    // A frame needs its header and at least one payload byte.
    while offset < starts_before && offset + FRAME_HEADER_BYTES < bytes.len() {
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
        // A record wiped to zeros with a valid frame after it in the same
        // sector is mid-log damage: a lost write zeroes the sector's rest too.
        let records: Vec<Vec<u8>> = (0..6).map(json_like).collect();
        let (mut bytes, offsets) = encode_all(&records);
        bytes[offsets[2]..offsets[3]].fill(0);
        bytes.resize(bytes.len() + 4096, 0);
        let err = scan(&bytes).expect_err("a wiped record must refuse");
        assert_eq!(err.offset, offsets[2] as u64);
    }

    /// A payload with no zero byte in it (so only damage makes zeros).
    fn nonzero(i: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|j| ((i * 31 + j * 7) % 255 + 1) as u8)
            .collect()
    }

    /// A log whose frame 1 starts at byte offset `at` (> 8), followed by
    /// `count` more frames of `len`-byte payloads and a sector of free space.
    fn log_with_frame_1_at(
        at: usize,
        count: usize,
        len: usize,
    ) -> (Vec<u8>, Vec<usize>, Vec<Vec<u8>>) {
        let mut records = vec![nonzero(0, at - FRAME_HEADER_BYTES)];
        records.extend((1..=count).map(|i| nonzero(i, len)));
        let (mut bytes, offsets) = encode_all(&records);
        assert_eq!(offsets[1], at);
        bytes.resize(bytes.len() + 4 * DISK_SECTOR_BYTES, 0);
        (bytes, offsets, records)
    }

    /// Whether an intact frame starts at or after `from`.
    fn intact_frame_from(bytes: &[u8], offsets: &[usize], from: usize) -> bool {
        offsets
            .iter()
            .any(|&at| at >= from && check_frame(bytes, at).is_ok())
    }

    fn expect_torn_at(
        result: Result<Scan, CorruptLog>,
        records: &[Vec<u8>],
        k: usize,
        at: usize,
        case: &str,
    ) {
        let scan = result.unwrap_or_else(|err| panic!("{case}: refused: {err}"));
        assert_eq!(scan.records, records[..k], "{case}");
        assert_eq!(scan.valid_len, at as u64, "{case}");
        match scan.tail {
            Tail::Torn { offset, detail } => {
                assert_eq!(offset, at as u64, "{case}");
                assert!(
                    detail.contains("never reached the disk"),
                    "{case}: {detail}"
                );
            }
            Tail::Clean => panic!("{case}: expected a torn tail"),
        }
    }

    #[test]
    fn a_lost_sector_where_a_frame_starts_is_a_torn_tail_even_before_valid_frames() {
        // The first write after the last sync starts at X; a power cut lost
        // the sector(s) holding its header (zeros), while later sectors of
        // later, also unsynced, writes reached the disk. At every position of
        // X in its sector.
        for at in DISK_SECTOR_BYTES..2 * DISK_SECTOR_BYTES {
            let (mut bytes, offsets, records) = log_with_frame_1_at(at, 30, 100);
            let lost_end =
                (at + FRAME_HEADER_BYTES).div_ceil(DISK_SECTOR_BYTES) * DISK_SECTOR_BYTES;
            bytes[at..lost_end].fill(0);
            assert!(intact_frame_from(&bytes, &offsets, lost_end), "at {at}");
            expect_torn_at(scan(&bytes), &records, 1, at, &format!("frame at {at}"));
        }
    }

    #[test]
    fn a_lost_sector_inside_a_frame_whose_header_was_written_is_a_torn_tail() {
        // Frame 1 spans sectors 1 to 5; each lost sector in turn, from the one
        // that holds the end of its header to the one that also holds the
        // header of frame 2. Valid frames follow every time.
        for at in [
            DISK_SECTOR_BYTES + 3,
            2 * DISK_SECTOR_BYTES - 6,
            2 * DISK_SECTOR_BYTES - 1,
        ] {
            let (bytes, offsets, records) = log_with_frame_1_at(at, 30, 4 * DISK_SECTOR_BYTES);
            let frame_end = offsets[2];
            for sector in (at.div_ceil(DISK_SECTOR_BYTES) * DISK_SECTOR_BYTES..frame_end)
                .step_by(DISK_SECTOR_BYTES)
            {
                let mut lost = bytes.clone();
                lost[sector..sector + DISK_SECTOR_BYTES].fill(0);
                assert!(intact_frame_from(
                    &lost,
                    &offsets,
                    sector + DISK_SECTOR_BYTES
                ));
                let case = format!("frame at {at}, sector at {sector} lost");
                expect_torn_at(scan(&lost), &records, 1, at, &case);
            }
        }
    }

    #[test]
    fn zeros_that_are_not_a_whole_lost_sector_before_a_valid_frame_are_corruption() {
        // A sector that reached the disk holds all its bytes, so zeros that
        // stop short of a sector's end, or do not start at its start, were
        // not a lost write: something damaged bytes that were there.
        let at = DISK_SECTOR_BYTES + 100;
        let (bytes, offsets, _) = log_with_frame_1_at(at, 30, 4 * DISK_SECTOR_BYTES);
        let cases = [
            (
                "frame start to 1 byte before the sector end",
                at..2 * DISK_SECTOR_BYTES - 1,
            ),
            (
                "a sector's worth, not aligned",
                2 * DISK_SECTOR_BYTES + 100..3 * DISK_SECTOR_BYTES + 100,
            ),
            (
                "an aligned sector but its last byte",
                2 * DISK_SECTOR_BYTES..3 * DISK_SECTOR_BYTES - 1,
            ),
        ];
        for (case, zeroed) in cases {
            let mut damaged = bytes.clone();
            damaged[zeroed].fill(0);
            let err = scan(&damaged).expect_err(case);
            assert_eq!(err.offset, at as u64, "{case}");
            assert!(
                err.detail.contains("valid frame starts later"),
                "{case}: {}",
                err.detail
            );
        }
        // And a flipped byte, as before.
        let mut flipped = bytes.clone();
        flipped[offsets[1] + FRAME_HEADER_BYTES + 700] ^= 0x10;
        assert_eq!(scan(&flipped).expect_err("flipped").offset, at as u64);
    }

    #[test]
    fn a_length_field_zeroed_at_a_sector_end_is_corruption() {
        // A frame of a short record whose length field fills the last four
        // bytes of a sector: one bad byte zeroes the whole field and makes
        // the zeros reach the sector's end. The checksum after it survived,
        // so this is no lost sector (that would have zeroed the checksum).
        let at = 2 * DISK_SECTOR_BYTES - 4;
        let (mut bytes, _, _) = log_with_frame_1_at(at, 30, 100);
        assert_eq!(bytes[at..at + 4], 100u32.to_le_bytes());
        bytes[at] = 0;
        let err = scan(&bytes).expect_err("a zeroed length byte must refuse");
        assert_eq!(err.offset, at as u64);
        assert!(err.detail.contains("length field is 0"), "{}", err.detail);
    }

    #[test]
    fn a_header_split_between_a_lost_sector_and_a_written_one_is_corruption() {
        // The safe side of the rule: frame 1 starts 2 bytes before a sector
        // boundary, the sector before it was lost (those 2 bytes are zeros,
        // frame 0 was synced) and the next one was written. Its length reads
        // 0 but its checksum survived: the shape of a damaged length field.
        let at = 2 * DISK_SECTOR_BYTES - 2;
        let (mut bytes, _, _) = log_with_frame_1_at(at, 30, 100);
        bytes[at..2 * DISK_SECTOR_BYTES].fill(0);
        let err = scan(&bytes).expect_err("a half-lost header must refuse");
        assert_eq!(err.offset, at as u64);
        assert!(err.detail.contains("length field is 0"), "{}", err.detail);
    }

    #[test]
    fn a_length_that_reaches_into_free_space_is_corruption() {
        // A zeroed sector inside a frame counts as a lost write only if no
        // valid frame starts before it: here a damaged length claims a
        // payload that runs over the next frames into the free space.
        let at = DISK_SECTOR_BYTES + 20;
        let (mut bytes, offsets, _) = log_with_frame_1_at(at, 10, 100);
        let frames_end = offsets[10] + frame_len(100);
        let claimed = frames_end + 2 * DISK_SECTOR_BYTES - at - FRAME_HEADER_BYTES;
        bytes[at..at + 4].copy_from_slice(&(claimed as u32).to_le_bytes());
        let err = scan(&bytes).expect_err("valid frames after the damage");
        assert_eq!(err.offset, at as u64);
        assert!(
            err.detail.contains(&format!("offset {}", offsets[2])),
            "{}",
            err.detail
        );
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

    #[test]
    fn property_a_power_cut_loses_only_unsynced_frames() {
        // Frames 0..synced were fdatasynced; a power cut then lost some of
        // the sectors (or 4 KiB pages) written after them, which read back as
        // the zeros they held. The scan must keep every synced frame, return
        // no damaged one, and refuse only where a lost sector and a written
        // one split the first damaged frame's header (the rule's safe side).
        let (mut cut_before_valid, mut refused) = (0, 0);
        let seeds = 3_000u64;
        for seed in 0..seeds {
            let mut rng = Rng::new(seed);
            let count = rng.range(2, 40);
            let records: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let len = match rng.range(0, 4) {
                        0 => rng.range(600, 2_500),
                        _ => rng.range(1, 200),
                    };
                    rng.bytes(len)
                })
                .collect();
            let (mut bytes, offsets) = encode_all(&records);
            let frames_end = bytes.len();
            let ends: Vec<usize> = (0..count)
                .map(|i| offsets.get(i + 1).copied().unwrap_or(frames_end))
                .collect();
            bytes.resize(
                frames_end.next_multiple_of(DISK_SECTOR_BYTES)
                    + rng.range(0, 3) * DISK_SECTOR_BYTES,
                0,
            );
            let original = bytes.clone();

            let synced = rng.range(0, count);
            let synced_end = offsets[synced];
            let unit = [DISK_SECTOR_BYTES, 8 * DISK_SECTOR_BYTES][rng.range(0, 2)];
            let lost_percent = rng.range(10, 80);
            for start in (synced_end / unit * unit..frames_end).step_by(unit) {
                if rng.range(0, 100) < lost_percent {
                    let end = (start + unit).min(bytes.len());
                    bytes[start.max(synced_end)..end].fill(0);
                }
            }

            let damaged = |i: usize| bytes[offsets[i]..ends[i]] != original[offsets[i]..ends[i]];
            let Some(first) = (0..count).find(|&i| damaged(i)) else {
                let scan = scan(&bytes).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                assert_eq!(scan.records, records, "seed {seed}");
                continue;
            };
            assert!(
                first >= synced,
                "seed {seed}: the model damaged a synced frame"
            );
            let at = offsets[first];
            match scan(&bytes) {
                Ok(scan) => {
                    assert_eq!(scan.records, records[..first], "seed {seed}");
                    assert_eq!(scan.valid_len, at as u64, "seed {seed}");
                    if (first + 1..count).any(|i| !damaged(i)) {
                        cut_before_valid += 1;
                    }
                }
                Err(err) => {
                    let header_split =
                        at % DISK_SECTOR_BYTES > DISK_SECTOR_BYTES - FRAME_HEADER_BYTES;
                    assert!(header_split, "seed {seed}: refused a power cut: {err}");
                    refused += 1;
                }
            }
        }
        println!("{cut_before_valid} cut before valid frames, {refused} refused, of {seeds}");
        assert!(
            cut_before_valid > seeds / 4,
            "{cut_before_valid} cases cut before valid frames"
        );
        assert!(refused < seeds / 50, "{refused} refused");
    }
}
