//! The channel between the connections and the driver: what a connection
//! tells the driver ([`DriverMsg`]), and the driver's handle on a
//! connection ([`Outbox`]) to answer it or make it close.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use shared::protocol::participant::PeerId;
use shared::wire::{Reply, Request};
use tokio::sync::{mpsc, Notify};

/// What connections tell the driver.
#[derive(Debug)]
pub enum DriverMsg {
    Connected {
        peer: PeerId,
        outbox: Outbox,
    },
    /// The peer proved the cluster secret as a coordinator, claiming this
    /// cluster and epoch; `welcome` is what it gets once accepted.
    Authenticated {
        peer: PeerId,
        claim: shared::auth::Claim,
        welcome: Reply,
    },
    Request {
        peer: PeerId,
        msg: Request,
    },
    Disconnected {
        peer: PeerId,
    },
}

/// The driver's handle on a connection: its reply queue, and a way to make
/// it close.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub(crate) replies: mpsc::Sender<Reply>,
    pub(crate) close: Arc<Notify>,
    /// The protocol refused this peer (its last reply says why).
    pub(crate) refused: Arc<AtomicBool>,
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
    /// Sends `message` as an `error` line, then closes the connection.
    pub fn refuse(&self, message: String) {
        self.refused.store(true, Ordering::Relaxed);
        let _ = self.replies.try_send(Reply::Error { message });
        self.close.notify_one();
    }

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
