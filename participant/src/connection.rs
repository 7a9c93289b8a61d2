//! One TCP connection from a coordinator (or anyone else): this file alone
//! owns the socket.
//!
//! - **Reading**: newline-delimited JSON, with a hard bound of
//!   `LINE_BYTES_MAX` per line: a longer line is never buffered whole. It
//!   gets one `error` reply and the connection is closed, because there is no
//!   way to find the start of the next message reliably. A line that is not a
//!   known request (garbage, invalid UTF-8, unknown `type`) gets an `error`
//!   reply and the connection stays open. Good requests go to the driver,
//!   tagged with this connection's `PeerId`; many transactions may be in
//!   flight on one connection.
//! - **Writing**: replies arrive on a bounded queue (the [`Outbox`]); a
//!   writer task drains everything queued and writes it in one go, flushing
//!   only when the queue is empty, so a burst of votes costs one syscall.
//! - **Closing**: after a fatal read error the last replies are flushed and
//!   the peer's remaining input is read and discarded for a moment, so the
//!   peer sees our error line and a clean close rather than a reset.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use shared::limits::LINE_BYTES_MAX;
use shared::lines::{read_bounded_line, LineRead};
use shared::protocol::participant::PeerId;
use shared::wire::{decode_request, encode_line, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use crate::driver::DriverMsg;

/// Replies one connection may have queued before it counts as not reading
/// (and is closed).
pub use shared::limits::PARTICIPANT_REPLIES_QUEUED_MAX as REPLIES_QUEUED_MAX;
/// Longest time the last replies may take to be written when closing.
const CLOSE_FLUSH_MS: u64 = 2_000;
/// After a fatal read error: how long, and how many bytes, of the peer's
/// remaining input are read and thrown away before the socket is closed.
const LINGER_MS: u64 = 1_000;
const LINGER_BYTES_MAX: usize = 16 * LINE_BYTES_MAX;
/// Write buffer of the reply writer.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// The driver's handle on a connection: its reply queue, and a way to make
/// it close.
#[derive(Debug, Clone)]
pub struct Outbox {
    replies: mpsc::Sender<Reply>,
    close: Arc<Notify>,
}

/// What happened to a reply handed to [`Outbox::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    /// The connection is gone; the reply is dropped.
    Gone,
    /// The peer does not read its replies; the connection was told to close.
    Overflow,
}

impl Outbox {
    /// Queues a reply without waiting: the driver must never block on one
    /// slow peer.
    pub fn send(&self, reply: Reply) -> Delivery {
        match self.replies.try_send(reply) {
            Ok(()) => Delivery::Queued,
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Gone,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close.notify_one();
                Delivery::Overflow
            }
        }
    }
}

/// Why reading a line stopped.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("line longer than {LINE_BYTES_MAX} bytes; closing the connection (cannot find the next message)")]
    TooLong,
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

/// The reading side of one connection.
struct Connection {
    peer: PeerId,
    reader: BufReader<OwnedReadHalf>,
    /// Bytes of the line being read (always at most `LINE_BYTES_MAX`).
    partial: Vec<u8>,
}

impl Connection {
    /// Reads one line, without its newline. `Ok(None)` means the peer closed
    /// the connection. Cancel-safe: a half-read line stays in `partial`.
    async fn read_line(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        match read_bounded_line(&mut self.reader, &mut self.partial).await? {
            LineRead::Line => Ok(Some(std::mem::take(&mut self.partial))),
            LineRead::End => {
                if !self.partial.is_empty() {
                    tracing::debug!(
                        peer = self.peer,
                        bytes = self.partial.len(),
                        "closed in the middle of a line"
                    );
                }
                Ok(None)
            }
            LineRead::TooLong => Err(ReadError::TooLong),
        }
    }

    /// Reads and discards what the peer still sends, for a bounded time and
    /// number of bytes, so that closing does not reset the connection before
    /// the peer has read our last reply.
    async fn linger(&mut self) {
        let mut sink = vec![0u8; 8 * 1024];
        let mut discarded = 0usize;
        let drain = async {
            while discarded < LINGER_BYTES_MAX {
                match self.reader.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => discarded += n,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(LINGER_MS), drain).await;
    }
}

/// Serves one accepted connection until it closes: `hello` first, then
/// requests to the driver and replies back.
pub async fn serve(
    peer: PeerId,
    stream: TcpStream,
    hello: Arc<Reply>,
    inbox: mpsc::Sender<DriverMsg>,
) {
    let (read_half, write_half) = stream.into_split();
    let (replies, queue) = mpsc::channel(REPLIES_QUEUED_MAX);
    let outbox = Outbox {
        replies,
        close: Arc::new(Notify::new()),
    };
    let mut writer = tokio::spawn(write_replies(peer, queue, write_half));

    let mut connection = Connection {
        peer,
        reader: BufReader::new(read_half),
        partial: Vec::new(),
    };
    let mut linger = false;
    let hello_queued = outbox.send(Reply::clone(&hello)) == Delivery::Queued;
    let registered = inbox
        .send(DriverMsg::Connected {
            peer,
            outbox: outbox.clone(),
        })
        .await
        .is_ok();
    if hello_queued && registered {
        linger = read_requests(&mut connection, &outbox, &inbox).await;
        let _ = inbox.send(DriverMsg::Disconnected { peer }).await;
    }

    // The writer ends once every sender is gone: ours here, the driver's on
    // `Disconnected`.
    drop(outbox);
    if tokio::time::timeout(Duration::from_millis(CLOSE_FLUSH_MS), &mut writer)
        .await
        .is_err()
    {
        tracing::debug!(peer, "last replies not written in time; dropping them");
        writer.abort();
    }
    if linger {
        connection.linger().await;
    }
    tracing::debug!(peer, "connection closed");
}

/// The read loop. Returns whether the connection ended on a fatal input
/// error (and should linger before closing).
async fn read_requests(
    connection: &mut Connection,
    outbox: &Outbox,
    inbox: &mpsc::Sender<DriverMsg>,
) -> bool {
    let peer = connection.peer;
    loop {
        let line = tokio::select! {
            line = connection.read_line() => line,
            _ = outbox.close.notified() => {
                tracing::warn!(peer, "peer does not read its replies ({REPLIES_QUEUED_MAX} queued); closing the connection");
                return false;
            }
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => return false,
            Err(ReadError::TooLong) => {
                tracing::warn!(peer, "{}", ReadError::TooLong);
                let message = ReadError::TooLong.to_string();
                outbox.send(Reply::Error { message });
                return true;
            }
            Err(ReadError::Io(e)) => {
                tracing::debug!(peer, "read failed: {e}");
                return false;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match decode_request(&line) {
            Ok(request) => {
                if inbox
                    .send(DriverMsg::Request { peer, msg: request })
                    .await
                    .is_err()
                {
                    return false; // the driver stopped: shutting down
                }
            }
            Err(e) => {
                tracing::debug!(peer, "bad request: {e}");
                if outbox.send(Reply::Error {
                    message: e.to_string(),
                }) != Delivery::Queued
                {
                    return false;
                }
            }
        }
    }
}

/// Writes queued replies, many per syscall, until every sender is gone or
/// the peer stops accepting bytes.
async fn write_replies(peer: PeerId, mut queue: mpsc::Receiver<Reply>, write_half: OwnedWriteHalf) {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, write_half);
    while let Some(reply) = queue.recv().await {
        if let Err(e) = write_batch(&mut out, &mut queue, reply).await {
            tracing::debug!(peer, "write failed: {e}");
            return;
        }
    }
    let _ = out.shutdown().await;
}

async fn write_batch(
    out: &mut BufWriter<OwnedWriteHalf>,
    queue: &mut mpsc::Receiver<Reply>,
    first: Reply,
) -> io::Result<()> {
    out.write_all(&encode_line(&first)).await?;
    while let Ok(reply) = queue.try_recv() {
        out.write_all(&encode_line(&reply)).await?;
    }
    out.flush().await
}
