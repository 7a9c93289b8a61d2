//! One admin connection to a participant (it proves the cluster secret),
//! for status queries: both modes read each node's `log_forces` and, in
//! `--direct` mode, its balances through it. Answers are routed to whoever
//! waits for them by `req_id`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use shared::auth::{self, Claim, ClusterSecret};
use shared::limits::{BENCH_NODE_OUTBOX_MAX, BENCH_NODE_QUERY_TIMEOUT_MS, LINE_BYTES_MAX};
use shared::wire::{decode_reply, encode_line, NodeStatus, Query, QueryResult, Reply, Request};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>;

pub struct NodeLink {
    pub node: String,
    outbox: mpsc::Sender<Vec<u8>>,
    waiters: Waiters,
    next_req_id: AtomicU64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for NodeLink {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl NodeLink {
    /// Connects and authenticates with `secret`, as `claim` says (the
    /// direct mode's coordinator, or an admin that only queries).
    pub async fn connect(
        addr: SocketAddr,
        secret: &ClusterSecret,
        claim: &Claim,
    ) -> anyhow::Result<NodeLink> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to the participant at {addr}"))?;
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::with_capacity(64 * 1024, read);
        let mut line = Vec::new();
        let hello = match read_reply(&mut reader, &mut line).await? {
            Some(hello @ Reply::Hello { .. }) => hello,
            other => bail!("the participant at {addr} did not say hello: {other:?}"),
        };
        let nonce = auth::nonce(rand::random());
        let (node, node_nonce, request) =
            auth::answer_hello(secret, &hello, claim, nonce.clone()).map_err(|e| anyhow!("{e}"))?;
        write.write_all(&encode_line(&request)).await?;
        let welcome = read_reply(&mut reader, &mut line)
            .await?
            .with_context(|| format!("node {node} closed the connection while authenticating"))?;
        auth::check_welcome(secret, &node, &node_nonce, &nonce, &welcome)
            .map_err(|e| anyhow!("node {node} refused the bench: {e}"))?;
        let waiters: Waiters = Arc::new(Mutex::new(HashMap::new()));
        let (outbox, mut queue) = mpsc::channel::<Vec<u8>>(BENCH_NODE_OUTBOX_MAX);
        let writer = tokio::spawn(async move {
            let mut buf = Vec::with_capacity(64 * 1024);
            while let Some(first) = queue.recv().await {
                buf.clear();
                buf.extend_from_slice(&first);
                while buf.len() < 256 * 1024 {
                    match queue.try_recv() {
                        Ok(line) => buf.extend_from_slice(&line),
                        Err(_) => break,
                    }
                }
                if write.write_all(&buf).await.is_err() {
                    return;
                }
            }
        });
        let reader_waiters = waiters.clone();
        let reader_node = node.clone();
        let reader = tokio::spawn(async move {
            loop {
                let reply = match read_reply(&mut reader, &mut line).await {
                    Ok(Some(reply)) => reply,
                    Ok(None) => return,
                    Err(e) => {
                        eprintln!("bench: connection to node {reader_node} failed: {e:#}");
                        return;
                    }
                };
                let key = match &reply {
                    Reply::QueryResult { req_id, .. } => *req_id,
                    Reply::Error { message } => {
                        eprintln!("bench: node {reader_node} says: {message}");
                        continue;
                    }
                    _ => continue,
                };
                let waiter = reader_waiters.lock().expect("waiters lock").remove(&key);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(reply);
                }
            }
        });
        Ok(NodeLink {
            node,
            outbox,
            waiters,
            next_req_id: AtomicU64::new(1),
            tasks: vec![writer, reader],
        })
    }

    fn send(&self, msg: &Request) -> anyhow::Result<()> {
        self.outbox
            .try_send(encode_line(msg))
            .map_err(|_| anyhow!("the link to node {} is closed or full", self.node))
    }

    pub async fn status(&self) -> anyhow::Result<NodeStatus> {
        let req_id = self.next_req_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .expect("waiters lock")
            .insert(req_id, tx);
        self.send(&Request::Query {
            req_id,
            query: Query::Status,
        })?;
        let reply = tokio::time::timeout(Duration::from_millis(BENCH_NODE_QUERY_TIMEOUT_MS), rx)
            .await
            .map_err(|_| anyhow!("node {} did not answer a status query", self.node))?
            .map_err(|_| anyhow!("the connection to node {} closed", self.node))?;
        match reply {
            Reply::QueryResult {
                result: QueryResult::Status(status),
                ..
            } => Ok(status),
            other => bail!("node {} answered a status query with {other:?}", self.node),
        }
    }
}

async fn read_reply(
    reader: &mut BufReader<OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> anyhow::Result<Option<Reply>> {
    line.clear();
    let n = (&mut *reader)
        .take(LINE_BYTES_MAX as u64 + 1)
        .read_until(b'\n', line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        bail!("a line longer than {LINE_BYTES_MAX} bytes, or a connection closed mid-line");
    }
    line.pop();
    Ok(Some(decode_reply(line)?))
}
