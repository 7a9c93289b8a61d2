//! The accept loop: one task per connection, at most
//! `PARTICIPANT_CONNECTIONS_MAX` at once. A connection over the limit gets
//! one `error` line and is closed; it never reaches the driver.
//!
//! The loop takes the listener and a shutdown future (mini-redis style), so
//! `main` can bind port 0 and stop accepting on SIGTERM.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use shared::limits::{
    PARTICIPANT_ACCEPT_RETRY_MS, PARTICIPANT_CONNECTIONS_MAX, PARTICIPANT_REFUSALS_MAX,
    PARTICIPANT_REFUSAL_WRITE_TIMEOUT_MS,
};
use shared::protocol::participant::PeerId;
use shared::wire::{encode_line, Reply};

use crate::connection::Handshake;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::connection;
use crate::peer::DriverMsg;

pub async fn run(
    listener: TcpListener,
    handshake: Arc<Handshake>,
    inbox: mpsc::Sender<DriverMsg>,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(PARTICIPANT_CONNECTIONS_MAX));
    let refusals = Arc::new(Semaphore::new(PARTICIPANT_REFUSALS_MAX));
    // Peer 0 is what recovered transactions point at: nobody.
    let mut next_peer: PeerId = 1;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accept failed: {e}; retrying in {PARTICIPANT_ACCEPT_RETRY_MS} ms");
                tokio::time::sleep(Duration::from_millis(PARTICIPANT_ACCEPT_RETRY_MS)).await;
                continue;
            }
        };
        // Replies are already batched per write; do not let Nagle delay votes.
        let _ = stream.set_nodelay(true);
        match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => {
                let peer = next_peer;
                next_peer += 1;
                tracing::debug!(peer, %addr, "connection accepted");
                let (handshake, inbox) = (Arc::clone(&handshake), inbox.clone());
                tokio::spawn(async move {
                    connection::serve(peer, stream, addr, handshake, inbox).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tracing::warn!(%addr, "refusing a connection: {PARTICIPANT_CONNECTIONS_MAX} already open");
                if let Ok(permit) = Arc::clone(&refusals).try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

async fn refuse(mut stream: TcpStream) {
    let message = format!(
        "too many connections (the limit is {PARTICIPANT_CONNECTIONS_MAX}); try again later"
    );
    let line = encode_line(&Reply::Error { message });
    let write = async {
        stream.write_all(&line).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(
        Duration::from_millis(PARTICIPANT_REFUSAL_WRITE_TIMEOUT_MS),
        write,
    )
    .await;
}
