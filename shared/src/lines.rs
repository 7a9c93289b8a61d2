//! Reading newline-delimited protocol messages from a socket without ever
//! buffering more than [`LINE_BYTES_MAX`] of one line: the participant
//! reads requests and the coordinator reads replies with it.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::limits::LINE_BYTES_MAX;

/// What [`read_bounded_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRead {
    /// `line` holds one whole line, without its newline.
    Line,
    /// The peer closed the stream; `line` holds whatever came after the last
    /// newline (empty after a clean end).
    End,
    /// The line grew past `LINE_BYTES_MAX`: what was read of it is dropped
    /// (`line` is empty again), and the stream cannot be trusted to find the
    /// next message.
    TooLong,
}

/// Appends to `line` until a newline, the end of the stream, or the limit.
///
/// Cancel-safe: bytes are moved into `line` only as they are consumed, so a
/// cancelled call leaves a half-read line in `line` for the next call. The
/// caller empties `line` after each [`LineRead::Line`].
pub async fn read_bounded_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<LineRead> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(LineRead::End);
        }
        let (chunk, line_ends) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], true),
            None => (available, false),
        };
        let consumed = chunk.len() + usize::from(line_ends);
        if line.len() + chunk.len() > LINE_BYTES_MAX {
            reader.consume(consumed);
            line.clear();
            return Ok(LineRead::TooLong);
        }
        line.extend_from_slice(chunk);
        reader.consume(consumed);
        if line_ends {
            return Ok(LineRead::Line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], capacity: usize) -> Vec<(LineRead, Vec<u8>)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            // A small buffer makes lines arrive in several pieces.
            let mut reader = tokio::io::BufReader::with_capacity(capacity, input);
            let mut line = Vec::new();
            let mut out = Vec::new();
            loop {
                let read = read_bounded_line(&mut reader, &mut line)
                    .await
                    .expect("read");
                out.push((read, std::mem::take(&mut line)));
                if read == LineRead::End {
                    return out;
                }
            }
        })
    }

    #[test]
    fn lines_partial_ends_and_overlong_lines() {
        for capacity in [1, 3, 64, 8192] {
            let got = read_all(b"one\n\ntwo\nhalf", capacity);
            let expected = vec![
                (LineRead::Line, b"one".to_vec()),
                (LineRead::Line, b"".to_vec()),
                (LineRead::Line, b"two".to_vec()),
                (LineRead::End, b"half".to_vec()),
            ];
            assert_eq!(got, expected, "capacity {capacity}");
        }
        let mut long = vec![b'x'; LINE_BYTES_MAX + 1];
        long.extend_from_slice(b"\nnext\n");
        let got = read_all(&long, 4096);
        assert_eq!(got[0], (LineRead::TooLong, Vec::new()));
        // Exactly the limit is a line.
        let mut exact = vec![b'y'; LINE_BYTES_MAX];
        exact.push(b'\n');
        let got = read_all(&exact, 4096);
        assert_eq!(got[0].0, LineRead::Line);
        assert_eq!(got[0].1.len(), LINE_BYTES_MAX);
        assert_eq!(got[1], (LineRead::End, Vec::new()));
    }
}
