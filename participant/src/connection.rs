//! One TCP connection from a coordinator (or anyone else): this file alone
//! owns the socket.
//!
//! - **Authentication** (`shared::auth`): the node says `hello` with a fresh
//!   nonce; the first line must be an `auth` whose proof shows the peer
//!   holds the cluster secret, within `AUTH_TIMEOUT_MS`. Anything else gets
//!   one `error` line and the connection is closed; nothing reaches the
//!   driver. A coordinator is then accepted or refused by the protocol
//!   (its cluster and epoch); an admin peer is welcomed at once and may
//!   only query and send heuristic decisions.
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
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shared::auth::{self, ClusterSecret};
use shared::limits::{
    AUTH_TIMEOUT_MS, LINE_BYTES_MAX, PARTICIPANT_CLOSE_FLUSH_TIMEOUT_MS,
    PARTICIPANT_LINGER_BYTES_MAX, PARTICIPANT_LINGER_MS, PARTICIPANT_REPLIES_QUEUED_MAX,
    PARTICIPANT_WRITE_BUFFER_BYTES,
};
use shared::lines::{read_bounded_line, LineRead};
use shared::protocol::participant::PeerId;
use shared::wire::{decode_request, encode_line, NodeId, PeerRole, Reply, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use crate::peer::{Delivery, DriverMsg, Outbox};

/// What this node says in its `hello`, and the secret an `auth` must prove.
#[derive(Debug)]
pub struct Handshake {
    pub secret: ClusterSecret,
    pub node: NodeId,
    pub pid: u32,
    pub faults_allowed: bool,
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
            while discarded < PARTICIPANT_LINGER_BYTES_MAX {
                match self.reader.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => discarded += n,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(PARTICIPANT_LINGER_MS), drain).await;
    }
}

/// Serves one accepted connection until it closes: `hello` first, then
/// the peer's `auth`, then requests to the driver and replies back.
pub async fn serve(
    peer: PeerId,
    stream: TcpStream,
    addr: SocketAddr,
    handshake: Arc<Handshake>,
    inbox: mpsc::Sender<DriverMsg>,
) {
    let (read_half, write_half) = stream.into_split();
    let (replies, queue) = mpsc::channel(PARTICIPANT_REPLIES_QUEUED_MAX);
    let outbox = Outbox {
        replies,
        close: Arc::new(Notify::new()),
        refused: Arc::new(AtomicBool::new(false)),
    };
    let mut writer = tokio::spawn(write_replies(peer, queue, write_half));

    let mut connection = Connection {
        peer,
        reader: BufReader::new(read_half),
        partial: Vec::new(),
    };
    let nonce = auth::nonce(rand::random());
    let hello = Reply::Hello {
        node: handshake.node.clone(),
        pid: handshake.pid,
        faults_allowed: handshake.faults_allowed,
        nonce: nonce.clone(),
    };
    let mut linger = false;
    if outbox.send(hello) == Delivery::Queued {
        match authenticate(&mut connection, &handshake, &nonce).await {
            Ok(peer_auth) => {
                linger = serve_authenticated(&mut connection, &outbox, &inbox, peer_auth).await;
            }
            Err(Refusal { message, linger: l }) if l => {
                tracing::warn!(peer, %addr, "refused an unauthenticated connection: {message}");
                outbox.send(Reply::Error { message });
                linger = true;
            }
            Err(Refusal { message, .. }) => {
                // A probe that only read the hello, or a peer that gave up.
                tracing::debug!(peer, %addr, "connection ended before authenticating: {message}");
                outbox.send(Reply::Error { message });
            }
        }
    }

    // The writer ends once every sender is gone: ours here, the driver's on
    // `Disconnected`.
    drop(outbox);
    if tokio::time::timeout(
        Duration::from_millis(PARTICIPANT_CLOSE_FLUSH_TIMEOUT_MS),
        &mut writer,
    )
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

/// An authenticated peer: its role and, for a coordinator, what it claims.
struct PeerAuth {
    claim: auth::Claim,
    welcome: Reply,
}

/// Why a connection is closed before it authenticated.
struct Refusal {
    message: String,
    /// Whether to read what the peer still sends before closing (a line
    /// cut off mid-way cannot be resynchronised).
    linger: bool,
}

/// Reads the peer's first line, which must be an `auth` proving the
/// cluster secret, within `AUTH_TIMEOUT_MS`.
async fn authenticate(
    connection: &mut Connection,
    handshake: &Handshake,
    nonce: &str,
) -> Result<PeerAuth, Refusal> {
    let refuse = |message: String| Refusal {
        message,
        linger: true,
    };
    let first = tokio::time::timeout(
        Duration::from_millis(AUTH_TIMEOUT_MS),
        connection.read_line(),
    )
    .await;
    let line = match first {
        Err(_) => {
            return Err(Refusal {
                message: format!("no `auth` within {AUTH_TIMEOUT_MS} ms of the hello; closing"),
                linger: false,
            })
        }
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) => {
            return Err(Refusal {
                message: "closed before authenticating".to_string(),
                linger: false,
            })
        }
        Ok(Err(e)) => return Err(refuse(e.to_string())),
    };
    let fix = "every connection must first prove the cluster secret (participant --secret-file, the coordinator's \
               <data-dir>/coordinator/cluster.secret); see the README, \"Security\"";
    let (role, cluster, epoch, legacy_history, peer_nonce, proof) = match decode_request(&line) {
        Ok(Request::Auth {
            role,
            cluster,
            epoch,
            legacy_history,
            nonce,
            proof,
        }) => (role, cluster, epoch, legacy_history, nonce, proof),
        Ok(_) => return Err(refuse(format!("authentication required: {fix}"))),
        Err(e) => return Err(refuse(format!("authentication required ({e}): {fix}"))),
    };
    let claim = auth::Claim {
        role,
        cluster,
        epoch,
        legacy_history,
    };
    let secret = &handshake.secret;
    if !auth::verify_peer(secret, &handshake.node, nonce, &peer_nonce, &claim, &proof) {
        return Err(refuse(format!(
            "authentication failed: the proof does not match this node's cluster secret; {fix}"
        )));
    }
    let welcome = Reply::Welcome {
        proof: auth::node_proof(secret, &handshake.node, nonce, &peer_nonce),
    };
    Ok(PeerAuth { claim, welcome })
}

/// After authentication: hands the connection to the driver and serves
/// its requests. Returns whether to linger before closing.
async fn serve_authenticated(
    connection: &mut Connection,
    outbox: &Outbox,
    inbox: &mpsc::Sender<DriverMsg>,
    peer_auth: PeerAuth,
) -> bool {
    let peer = connection.peer;
    let PeerAuth { claim, welcome } = peer_auth;
    let role = claim.role;
    let registered = inbox
        .send(DriverMsg::Connected {
            peer,
            outbox: outbox.clone(),
        })
        .await
        .is_ok();
    if !registered {
        return false;
    }
    let handed = match role {
        PeerRole::Admin => {
            outbox.send(welcome);
            true
        }
        PeerRole::Coordinator => inbox
            .send(DriverMsg::Authenticated {
                peer,
                claim,
                welcome,
            })
            .await
            .is_ok(),
    };
    let linger = handed && read_requests(connection, outbox, inbox, role).await;
    let _ = inbox.send(DriverMsg::Disconnected { peer }).await;
    linger
}

/// The read loop. Returns whether the connection ended on a fatal input
/// error (and should linger before closing).
async fn read_requests(
    connection: &mut Connection,
    outbox: &Outbox,
    inbox: &mpsc::Sender<DriverMsg>,
    role: PeerRole,
) -> bool {
    let peer = connection.peer;
    loop {
        let line = tokio::select! {
            line = connection.read_line() => line,
            _ = outbox.close.notified() => {
                if outbox.refused.load(Ordering::Relaxed) {
                    tracing::warn!(peer, "closing a refused coordinator connection");
                } else {
                    tracing::warn!(peer, "peer does not read its replies ({PARTICIPANT_REPLIES_QUEUED_MAX} queued); closing the connection");
                }
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
        let request = match decode_request(&line) {
            Ok(request) => request,
            Err(e) => {
                tracing::debug!(peer, "bad request: {e}");
                if outbox.send(Reply::Error {
                    message: e.to_string(),
                }) != Delivery::Queued
                {
                    return false;
                }
                continue;
            }
        };
        let admin_may = matches!(request, Request::Query { .. } | Request::Heuristic { .. });
        if role == PeerRole::Admin && !admin_may {
            let message = "an admin connection may only send `query` and `heuristic`".to_string();
            if outbox.send(Reply::Error { message }) != Delivery::Queued {
                return false;
            }
            continue;
        }
        if inbox
            .send(DriverMsg::Request { peer, msg: request })
            .await
            .is_err()
        {
            return false; // the driver stopped: shutting down
        }
    }
}

/// Writes queued replies, many per syscall, until every sender is gone or
/// the peer stops accepting bytes.
async fn write_replies(peer: PeerId, mut queue: mpsc::Receiver<Reply>, write_half: OwnedWriteHalf) {
    let mut out = BufWriter::with_capacity(PARTICIPANT_WRITE_BUFFER_BYTES, write_half);
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
