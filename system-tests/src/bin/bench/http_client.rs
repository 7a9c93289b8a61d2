//! A minimal HTTP/1.1 client over one keep-alive connection: just enough to
//! POST a JSON body and read a `Content-Length` answer.
//!
//! Why not `reqwest`: the load generator shares two cores with the system
//! under test, so every microsecond it spends is one the coordinator does
//! not get. This client costs one `write` and usually one `read` per request.

use std::io;
use std::net::SocketAddr;

use shared::limits::BENCH_RESPONSE_BYTES_MAX;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct HttpConn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    request: Vec<u8>,
    buf: Vec<u8>,
}

/// One answer: status code and body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpConn {
    pub fn new(addr: SocketAddr) -> HttpConn {
        HttpConn {
            addr,
            stream: None,
            request: Vec::with_capacity(512),
            buf: Vec::with_capacity(4096),
        }
    }

    /// POSTs `body` as JSON. A broken connection is reopened on the next call.
    pub async fn post_json(&mut self, path: &str, body: &[u8]) -> io::Result<Answer> {
        let result = self.exchange(path, body).await;
        if result.is_err() {
            self.stream = None;
            self.buf.clear();
        }
        result
    }

    async fn exchange(&mut self, path: &str, body: &[u8]) -> io::Result<Answer> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        self.request.clear();
        use std::io::Write;
        write!(
            self.request,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )?;
        self.request.extend_from_slice(body);
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(&self.request).await?;
        read_answer(stream, &mut self.buf).await
    }
}

async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Answer> {
    loop {
        if let Some(head_end) = find(buf, b"\r\n\r\n") {
            let (status, length) = parse_head(&buf[..head_end])?;
            let total = head_end + 4 + length;
            if total > BENCH_RESPONSE_BYTES_MAX {
                return Err(invalid("response too large"));
            }
            while buf.len() < total {
                fill(stream, buf).await?;
            }
            let body = buf[head_end + 4..total].to_vec();
            buf.drain(..total);
            return Ok(Answer { status, body });
        }
        if buf.len() > BENCH_RESPONSE_BYTES_MAX {
            return Err(invalid("response head too large"));
        }
        fill(stream, buf).await?;
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.reserve(4096);
    if stream.read_buf(buf).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    Ok(())
}

/// (status, content length) of a response head.
fn parse_head(head: &[u8]) -> io::Result<(u16, usize)> {
    let text = std::str::from_utf8(head).map_err(|_| invalid("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid(
                "chunked responses are not supported by this client",
            ));
        }
    }
    Ok((
        status,
        length.ok_or_else(|| invalid("response without Content-Length"))?,
    ))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_length_and_refuses_chunked() {
        let head = b"HTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\ncontent-length: 42";
        assert_eq!(parse_head(head).unwrap(), (409, 42));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_head(b"garbage").is_err());
    }
}
