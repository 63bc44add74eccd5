//! A minimal HTTP/1.1 server loop: enough for GET requests from real clients (keep-alive,
//! pipelining, request bodies with Content-Length), with full control over how a response is
//! written so faults (hang, cut-off body) can be injected.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::State;

/// A parsed request head.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    pub(super) headers: Vec<(String, String)>,
}

impl Request {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the response is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Head and complete body.
    Normal,
    /// Head announcing the full length, half the body, then the connection is closed.
    CutOff,
    /// Nothing is sent; the connection is closed after the duration.
    Hang(Duration),
}

/// A response to write.
#[derive(Debug)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) content_type: &'static str,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Vec<u8>,
    pub(super) delivery: Delivery,
}

impl Response {
    pub(super) fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
            delivery: Delivery::Normal,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn parse_head(head: &str) -> Option<(Request, bool)> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?;
    let version = first.next()?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let mut headers = Vec::new();
    for l in lines {
        if l.is_empty() {
            continue;
        }
        let (k, v) = l.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let req = Request {
        method,
        path,
        query,
        headers,
    };
    let close = match req.header("connection") {
        Some(c) if c.eq_ignore_ascii_case("close") => true,
        Some(c) if c.eq_ignore_ascii_case("keep-alive") => false,
        _ => version != "HTTP/1.1",
    };
    Some((req, close))
}

/// Serves one connection until the client closes it (or asks to).
pub(super) async fn serve_connection(state: Arc<State>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // A request starts when its first bytes arrive (not when its head is complete).
        let mut arrived = (!buf.is_empty()).then(std::time::Instant::now);
        let head_end = loop {
            if let Some(end) = find_head_end(&buf) {
                break end;
            }
            if buf.len() > MAX_HEAD {
                let _ = write(
                    &mut stream,
                    Response::new(431, "text/plain", "header too large"),
                )
                .await;
                return;
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    arrived.get_or_insert_with(std::time::Instant::now);
                }
            }
        };
        let arrived = arrived.unwrap_or_else(std::time::Instant::now);
        let Some((req, close)) = std::str::from_utf8(&buf[..head_end])
            .ok()
            .and_then(parse_head)
        else {
            let _ = write(&mut stream, Response::new(400, "text/plain", "bad request")).await;
            return;
        };
        if req
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            let _ = write(
                &mut stream,
                Response::new(
                    501,
                    "text/plain",
                    "chunked request bodies are not supported",
                ),
            )
            .await;
            return;
        }
        let body_len: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if body_len > MAX_BODY {
            let _ = write(
                &mut stream,
                Response::new(413, "text/plain", "body too large"),
            )
            .await;
            return;
        }
        while buf.len() < head_end + body_len {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        buf.drain(..head_end + body_len);

        let in_flight = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_concurrent.fetch_max(in_flight, Ordering::SeqCst);
        let _guard = InFlight(&state);
        let resp = state.handle(&req, arrived).await;
        match resp.delivery {
            Delivery::Hang(d) => {
                tokio::time::sleep(d).await;
                return;
            }
            Delivery::CutOff => {
                let _ = write(&mut stream, resp).await;
                let _ = stream.shutdown().await;
                return;
            }
            Delivery::Normal => {
                if write(&mut stream, resp).await.is_err() {
                    return;
                }
            }
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

struct InFlight<'a>(&'a State);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn write(stream: &mut TcpStream, resp: Response) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let mut head = String::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    let body: &[u8] = if resp.delivery == Delivery::CutOff {
        &resp.body[..resp.body.len() / 2]
    } else {
        &resp.body
    };
    stream.write_all(body).await?;
    stream.flush().await
}
