//! Connections from the coordinator to the participants: one persistent TCP
//! connection per node, reconnected with backoff, carrying newline-delimited
//! JSON in both directions. Many transactions share it; outgoing messages
//! queued together go out in one write.
//!
//! The fault layer lives here, because this is where the network is: a link
//! can delay every message (both directions), drop every message (a
//! partition that keeps the TCP connection up, like a silent router), or
//! duplicate every message.
//!
//! Queries (`status`, `ledger`) travel on the same connection with a
//! `req_id`; their answers go to the waiting caller, not to the engine.
//!
//! Every connection first passes the node's handshake (`shared::auth`): it
//! proves the cluster secret and says who it is (the engine's: coordinator
//! of this cluster at this epoch; the observer's: admin), and checks the
//! node's proof in return. A node that refuses says why; that is logged
//! once and shown in `/api/cluster`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use shared::api::LinkFault;
use shared::auth::{self, Claim, ClusterSecret};
use shared::limits::{
    COORDINATOR_OUTBOX_MAX, LINE_BYTES_MAX, LINK_DELAY_QUEUE_MAX, NODE_CONNECT_TIMEOUT_MS,
    NODE_HELLO_TIMEOUT_MS, NODE_LINK_BUFFER_BYTES, NODE_LINK_WRITE_BATCH_BYTES_MAX,
    NODE_QUERY_TIMEOUT_MS, RECONNECT_BACKOFF_MAX_MS, RECONNECT_BACKOFF_MIN_MS,
};
use shared::lines::{read_bounded_line, LineRead};
use shared::wire::{decode_line, decode_reply, NodeId, Query, QueryResult, Reply, Request};

use tokio::io::{AsyncBufRead, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::supervisor::Supervisor;

/// How this transport's connections authenticate, and where refusals go.
#[derive(Clone)]
pub struct LinkAuth {
    pub secret: Arc<ClusterSecret>,
    pub claim: Claim,
    /// Where refusals are recorded (the engine's connections only: the
    /// observer's admin connections are never refused by the protocol).
    pub refusals: Option<Arc<Refusals>>,
}

/// Link faults per node; shared by every engine incarnation (the network
/// outlives a coordinator crash).
#[derive(Default)]
pub struct LinkFaults {
    links: RwLock<BTreeMap<NodeId, LinkFault>>,
}

impl LinkFaults {
    pub fn get(&self, node: &str) -> LinkFault {
        self.links
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .cloned()
            .unwrap_or_default()
    }

    pub fn set(&self, node: &str, fault: LinkFault) {
        let mut links = self.links.write().unwrap_or_else(|e| e.into_inner());
        if fault.is_healthy() {
            links.remove(node);
        } else {
            links.insert(node.to_string(), fault);
        }
    }

    pub fn all(&self) -> BTreeMap<NodeId, LinkFault> {
        self.links.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The latest refusal of each node that refuses this coordinator (another
/// cluster, an older epoch): shown in `/api/cluster` and logged.
#[derive(Default)]
pub struct Refusals {
    by_node: Mutex<BTreeMap<NodeId, String>>,
}

impl Refusals {
    /// Records `node`'s refusal; true if it is new (worth logging).
    pub fn set(&self, node: &str, message: &str) -> bool {
        let mut by_node = self.by_node.lock().unwrap_or_else(|e| e.into_inner());
        by_node
            .insert(node.to_string(), message.to_string())
            .as_deref()
            != Some(message)
    }

    pub fn clear(&self, node: &str) {
        self.by_node
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node);
    }

    pub fn get(&self, node: &str) -> Option<String> {
        self.by_node
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .cloned()
    }
}

/// What the transport tells the engine.
#[derive(Debug)]
pub enum NodeEvent {
    Up { node: NodeId },
    Down { node: NodeId },
    Message { node: NodeId, msg: Reply },
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("node {0} is not connected")]
    NotConnected(NodeId),
    #[error("node {0} did not answer within {NODE_QUERY_TIMEOUT_MS} ms")]
    Timeout(NodeId),
    #[error("no node {0}")]
    UnknownNode(NodeId),
}

struct Link {
    outbox: mpsc::Sender<(Instant, Request)>,
    queries: Arc<Mutex<HashMap<u64, oneshot::Sender<QueryResult>>>>,
    connected: Arc<AtomicBool>,
}

/// Handle to every node's connection. Dropping the last clone's task set
/// (held by the engine) closes all connections.
#[derive(Clone)]
pub struct Transport {
    links: Arc<BTreeMap<NodeId, Link>>,
    next_req_id: Arc<AtomicU64>,
}

impl Transport {
    /// Starts one connection task per node. The tasks live in the returned
    /// `JoinSet`: dropping it closes every connection.
    pub fn start(
        supervisor: &Supervisor,
        faults: Arc<LinkFaults>,
        events: mpsc::Sender<NodeEvent>,
        auth: LinkAuth,
    ) -> (Transport, JoinSet<()>) {
        let mut tasks = JoinSet::new();
        let mut links = BTreeMap::new();
        for node in supervisor.node_ids() {
            let (outbox, outbox_rx) = mpsc::channel(COORDINATOR_OUTBOX_MAX);
            let link = Link {
                outbox,
                queries: Arc::new(Mutex::new(HashMap::new())),
                connected: Arc::new(AtomicBool::new(false)),
            };
            let conn = Connection {
                node: node.clone(),
                supervisor: supervisor.clone(),
                faults: faults.clone(),
                events: events.clone(),
                queries: link.queries.clone(),
                connected: link.connected.clone(),
                auth: auth.clone(),
            };
            tasks.spawn(conn.run(outbox_rx));
            links.insert(node, link);
        }
        (
            Transport {
                links: Arc::new(links),
                next_req_id: Arc::new(AtomicU64::new(1)),
            },
            tasks,
        )
    }

    /// Queues a message; it is dropped if the node is not connected or its
    /// outbox is full (the protocol survives lost messages).
    pub fn send(&self, node: &str, msg: Request) {
        let Some(link) = self.links.get(node) else {
            return;
        };
        if !link.connected.load(Ordering::Relaxed) {
            return;
        }
        if link.outbox.try_send((Instant::now(), msg)).is_err() {
            tracing::warn!(
                node,
                "outbox full: dropping a message (it will be retried by the protocol)"
            );
        }
    }

    pub fn is_connected(&self, node: &str) -> bool {
        self.links
            .get(node)
            .is_some_and(|l| l.connected.load(Ordering::Relaxed))
    }

    pub async fn query(&self, node: &str, query: Query) -> Result<QueryResult, QueryError> {
        let link = self
            .links
            .get(node)
            .ok_or_else(|| QueryError::UnknownNode(node.to_string()))?;
        if !link.connected.load(Ordering::Relaxed) {
            return Err(QueryError::NotConnected(node.to_string()));
        }
        let req_id = self.next_req_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        link.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(req_id, tx);
        if link
            .outbox
            .try_send((Instant::now(), Request::Query { req_id, query }))
            .is_err()
        {
            link.queries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&req_id);
            return Err(QueryError::NotConnected(node.to_string()));
        }
        let answer = tokio::time::timeout(Duration::from_millis(NODE_QUERY_TIMEOUT_MS), rx).await;
        link.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&req_id);
        match answer {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(QueryError::NotConnected(node.to_string())),
            Err(_) => Err(QueryError::Timeout(node.to_string())),
        }
    }
}

struct Connection {
    node: NodeId,
    supervisor: Supervisor,
    faults: Arc<LinkFaults>,
    events: mpsc::Sender<NodeEvent>,
    queries: Arc<Mutex<HashMap<u64, oneshot::Sender<QueryResult>>>>,
    connected: Arc<AtomicBool>,
    auth: LinkAuth,
}

impl Connection {
    async fn run(self, mut outbox: mpsc::Receiver<(Instant, Request)>) {
        let mut backoff_ms = RECONNECT_BACKOFF_MIN_MS;
        loop {
            // Whatever was queued for a dead connection is stale.
            while outbox.try_recv().is_ok() {}
            let connected = match self.supervisor.addr(&self.node) {
                Some(addr) => self.connect(addr).await,
                None => None,
            };
            let Some((reader, writer, hello)) = connected else {
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MAX_MS);
                continue;
            };
            backoff_ms = RECONNECT_BACKOFF_MIN_MS;
            let (pid, _faults_allowed) = hello;
            self.connected.store(true, Ordering::Relaxed);
            tracing::info!(node = %self.node, pid, "connected to participant");
            if self
                .events
                .send(NodeEvent::Up {
                    node: self.node.clone(),
                })
                .await
                .is_err()
            {
                return; // the engine is gone
            }
            let why = self.serve(reader, writer, &mut outbox).await;
            self.connected.store(false, Ordering::Relaxed);
            self.queries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            tracing::warn!(node = %self.node, "connection to participant lost: {why}");
            if self
                .events
                .send(NodeEvent::Down {
                    node: self.node.clone(),
                })
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        }
    }

    async fn connect(
        &self,
        addr: SocketAddr,
    ) -> Option<(BufReader<OwnedReadHalf>, OwnedWriteHalf, (u32, bool))> {
        let stream = tokio::time::timeout(
            Duration::from_millis(NODE_CONNECT_TIMEOUT_MS),
            TcpStream::connect(addr),
        )
        .await
        .ok()?
        .ok()?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let mut reader = BufReader::with_capacity(NODE_LINK_BUFFER_BYTES, read);
        let mut line = Vec::new();
        let hello = tokio::time::timeout(
            Duration::from_millis(NODE_HELLO_TIMEOUT_MS),
            read_line(&mut reader, &mut line),
        )
        .await
        .ok()?
        .ok()?;
        if !hello {
            return None;
        }
        let hello = match decode_line::<Reply>(&line) {
            Ok(hello @ Reply::Hello { .. }) => hello,
            other => {
                tracing::warn!(node = %self.node, ?other, "participant did not say hello");
                return None;
            }
        };
        let Reply::Hello {
            node,
            pid,
            faults_allowed,
            ..
        } = &hello
        else {
            return None;
        };
        if *node != self.node {
            tracing::error!(expected = %self.node, found = %node, %addr, "a different node answers at this address");
            return None;
        }
        let (pid, faults_allowed) = (*pid, *faults_allowed);
        let secret = &self.auth.secret;
        let nonce = auth::nonce(rand::random());
        let (node, node_nonce, request) =
            auth::answer_hello(secret, &hello, &self.auth.claim, nonce.clone()).ok()?;
        let mut write = write;
        write
            .write_all(&shared::wire::encode_line(&request))
            .await
            .ok()?;
        let answer = tokio::time::timeout(
            Duration::from_millis(NODE_HELLO_TIMEOUT_MS),
            read_line(&mut reader, &mut line),
        )
        .await
        .ok()?
        .ok()?;
        if !answer {
            return None;
        }
        let welcome = decode_line::<Reply>(&line).ok()?;
        match auth::check_welcome(secret, &node, &node_nonce, &nonce, &welcome) {
            Ok(()) => {
                if let Some(refusals) = &self.auth.refusals {
                    refusals.clear(&node);
                }
                Some((reader, write, (pid, faults_allowed)))
            }
            Err(why) => {
                let fresh = self
                    .auth
                    .refusals
                    .as_ref()
                    .is_none_or(|r| r.set(&node, &why));
                if fresh {
                    tracing::error!(node = %node, %addr, "the node refuses this coordinator: {why}");
                }
                None
            }
        }
    }

    /// Runs one connection until it fails; returns why.
    async fn serve(
        &self,
        mut reader: BufReader<OwnedReadHalf>,
        mut writer: OwnedWriteHalf,
        outbox: &mut mpsc::Receiver<(Instant, Request)>,
    ) -> String {
        let (inbound_tx, mut inbound_rx) = mpsc::channel::<(Instant, Reply)>(LINK_DELAY_QUEUE_MAX);
        // Replies queued for the fault layer and not yet delivered. While it
        // is zero and the link is healthy, a reply goes straight to the
        // engine (no queue hop); otherwise it queues behind the others, so
        // the order on the wire is kept.
        use std::sync::atomic::Ordering::Relaxed;
        let in_fault_layer = std::sync::atomic::AtomicUsize::new(0);
        let read_loop = async {
            let mut line = Vec::new();
            loop {
                match read_line(&mut reader, &mut line).await {
                    Ok(true) => {}
                    Ok(false) => return "closed by the participant".to_string(),
                    Err(e) => return format!("read failed: {e}"),
                }
                let msg = match decode_reply(&line) {
                    Ok(msg) => msg,
                    Err(e) => {
                        tracing::warn!(node = %self.node, "ignoring a bad line from the participant: {e}");
                        continue;
                    }
                };
                if in_fault_layer.load(Relaxed) == 0 && self.faults.get(&self.node).is_healthy() {
                    if !self.deliver(msg).await {
                        return "engine stopped".to_string();
                    }
                    continue;
                }
                in_fault_layer.fetch_add(1, Relaxed);
                if inbound_tx.send((Instant::now(), msg)).await.is_err() {
                    return "engine stopped".to_string();
                }
            }
        };
        let deliver_loop = async {
            while let Some((at, msg)) = inbound_rx.recv().await {
                let fault = self.faults.get(&self.node);
                if !fault.drop {
                    if fault.delay_ms > 0 {
                        tokio::time::sleep_until(at + Duration::from_millis(fault.delay_ms)).await;
                    }
                    if fault.duplicate && !self.deliver(msg.clone()).await {
                        return "engine stopped".to_string();
                    }
                    if !self.deliver(msg).await {
                        return "engine stopped".to_string();
                    }
                }
                // Done with (delivered or dropped): later replies may now
                // take the direct path without overtaking this one.
                in_fault_layer.fetch_sub(1, Relaxed);
            }
            "inbound queue closed".to_string()
        };
        let write_loop = async {
            let mut buf = Vec::with_capacity(NODE_LINK_BUFFER_BYTES);
            while let Some(first) = outbox.recv().await {
                buf.clear();
                // Read once per batch: a fault set meanwhile applies from the next one.
                let fault = self.faults.get(&self.node);
                let mut next = Some(first);
                while let Some((at, msg)) = next.take() {
                    if !fault.drop {
                        if fault.delay_ms > 0 {
                            if !buf.is_empty() {
                                if let Err(e) = writer.write_all(&buf).await {
                                    return format!("write failed: {e}");
                                }
                                buf.clear();
                            }
                            tokio::time::sleep_until(at + Duration::from_millis(fault.delay_ms))
                                .await;
                        }
                        let start = buf.len();
                        encode_line_into(&msg, &mut buf);
                        if fault.duplicate {
                            buf.extend_from_within(start..);
                        }
                    }
                    if buf.len() < NODE_LINK_WRITE_BATCH_BYTES_MAX {
                        next = outbox.try_recv().ok();
                    }
                }
                if !buf.is_empty() {
                    if let Err(e) = writer.write_all(&buf).await {
                        return format!("write failed: {e}");
                    }
                }
            }
            "engine stopped".to_string()
        };
        tokio::select! {
            why = read_loop => why,
            why = deliver_loop => why,
            why = write_loop => why,
        }
    }

    /// Hands a message to its waiting query, or to the engine. False if the
    /// engine is gone.
    async fn deliver(&self, msg: Reply) -> bool {
        if let Reply::QueryResult { req_id, result } = msg {
            if let Some(waiter) = self
                .queries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&req_id)
            {
                let _ = waiter.send(result);
            }
            return true;
        }
        self.events
            .send(NodeEvent::Message {
                node: self.node.clone(),
                msg,
            })
            .await
            .is_ok()
    }
}

/// Appends `msg` as one protocol line (like `shared::wire::encode_line`,
/// without a buffer of its own per message).
fn encode_line_into(msg: &Request, buf: &mut Vec<u8>) {
    // Serialising these plain data types cannot fail (see `encode_line`).
    serde_json::to_writer(&mut *buf, msg).expect("wire types always serialise");
    buf.push(b'\n');
}

/// Reads one line (without its newline) into `line`, never buffering more
/// than [`LINE_BYTES_MAX`]. Ok(false) at a clean end of stream.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    match read_bounded_line(reader, line).await? {
        LineRead::Line => Ok(true),
        LineRead::End if line.is_empty() => Ok(false),
        LineRead::End => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed mid-line",
        )),
        LineRead::TooLong => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("line longer than {LINE_BYTES_MAX} bytes"),
        )),
    }
}
