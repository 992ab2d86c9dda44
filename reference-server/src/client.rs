//! A strict WebSocket client (RFC 6455) that speaks Autobahn's client URL
//! protocol: the oracle for `pushspec clients`. It reads the case count,
//! runs every case echoing text and binary messages, then asks for the
//! reports.
//!
//! Strict where a client must be: the response must be a 101 with
//! `Upgrade: websocket`, `Connection: Upgrade`, the right
//! `Sec-WebSocket-Accept` and no extension or subprotocol (it offers none);
//! every server frame is checked (unmasked, no RSV bits, known opcodes,
//! control frames final and at most 125 bytes, message sequencing, UTF-8
//! validated as it streams in, close payloads and codes). A violation fails
//! the connection with 1002 (1007 for UTF-8, 1009 for size); every frame it
//! sends is masked with a fresh key; after the closing handshake it waits
//! for the server to close TCP.
//!
//! Shares no code with the harness: only this crate's own `frame_header`
//! and `vocab`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::frame_header::{self, Header, HeaderReader};
use crate::vocab::{
    INVALID_PAYLOAD, MESSAGE_TOO_BIG, PROTOCOL_ERROR, Utf8Stream, close_code_is_valid,
};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Connecting and the server's response head.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(5);
/// A case connection with nothing arriving for this long is dropped.
const IDLE: Duration = Duration::from_secs(10);
/// How long the client waits for the server to close TCP after the closing
/// handshake before closing it itself (§7.1.1).
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// The largest message it takes (Autobahn's 9.x cases go to 16 MiB).
const MAX_MESSAGE: usize = 64 << 20;
const MAX_HEAD: usize = 16 * 1024;

/// Runs Autobahn's client protocol against `base` (`ws://host:port`):
/// returns the number of cases it ran.
pub async fn run_autobahn(base: &str, agent: &str) -> io::Result<usize> {
    let addr = base
        .strip_prefix("ws://")
        .ok_or_else(|| invalid(format!("{base:?} is not a ws:// URL")))?
        .trim_end_matches('/')
        .to_string();
    let count_text = fetch_text(&addr, "/getCaseCount").await?;
    let count: usize = count_text
        .trim()
        .parse()
        .map_err(|_| invalid(format!("case count {count_text:?} is not a number")))?;
    let agent_q = encode_query(agent);
    for n in 1..=count {
        let path = format!("/runCase?case={n}&agent={agent_q}");
        // A refused handshake or a failed connection is that case's
        // business: the server judges it; the run goes on.
        if let Ok(mut s) = Session::open(&addr, &path).await {
            s.echo().await;
        }
    }
    let mut s = Session::open(&addr, &format!("/updateReports?agent={agent_q}")).await?;
    s.echo().await;
    Ok(count)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The first text message of a protocol connection (`/getCaseCount`).
async fn fetch_text(addr: &str, path: &str) -> io::Result<String> {
    let mut s = Session::open(addr, path).await?;
    s.echo_with(|_| None)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| invalid(format!("no text message from {path}")))
}

/// Unpredictable bytes from the standard library's randomly keyed hasher
/// (seeded from the OS), so the oracle needs no RNG crate.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

fn random_mask() -> [u8; 4] {
    (random_u64() as u32).to_ne_bytes()
}

fn accept_for(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    STANDARD.encode(h.finalize())
}

/// Why the client fails a connection: the close code it sends.
struct Failure(u16);

struct Session {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Session {
    /// Connects and performs the opening handshake; any defect in the
    /// response fails the connection (TCP closed, no frame sent).
    async fn open(addr: &str, path: &str) -> io::Result<Session> {
        let mut stream = timeout(HANDSHAKE_WITHIN, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let _ = stream.set_nodelay(true);
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&random_u64().to_ne_bytes());
        nonce[8..].copy_from_slice(&random_u64().to_ne_bytes());
        let key = STANDARD.encode(nonce);
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let head_end = timeout(HANDSHAKE_WITHIN, async {
            loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    return Ok(i + 4);
                }
                if buf.len() > MAX_HEAD {
                    return Err(invalid("response head too large".into()));
                }
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(invalid("closed before the response".into()));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no response head"))??;
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        check_response(&head, &accept_for(&key)).map_err(invalid)?;
        buf.drain(..head_end);
        Ok(Session { stream, buf })
    }

    async fn echo(&mut self) {
        let _ = self.echo_with(|t| Some(t.to_vec())).await;
    }

    /// Echoes every message (text through `reply`: `None` keeps it instead
    /// of echoing), answers pings, and closes as RFC 6455 says. Returns the
    /// last text message kept.
    async fn echo_with(
        &mut self,
        mut reply: impl FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let mut kept = None;
        let mut partial: Option<(u8, Vec<u8>, Utf8Stream)> = None;
        loop {
            let frame = match timeout(IDLE, self.read_frame()).await {
                Ok(Ok(Some(f))) => f,
                // EOF, a read error or silence: nothing more to do.
                _ => return kept,
            };
            let (header, payload) = match frame {
                Ok(f) => f,
                Err(Failure(code)) => {
                    self.fail(code).await;
                    return kept;
                }
            };
            match self.handle(&header, payload, &mut partial) {
                Err(Failure(code)) => {
                    self.fail(code).await;
                    return kept;
                }
                Ok(Action::None) => {}
                Ok(Action::Pong(p)) => self.send(0x8A, &p).await,
                Ok(Action::Message(op, data)) => {
                    if op == 0x1 {
                        match reply(&data) {
                            Some(d) => self.send(0x81, &d).await,
                            None => kept = Some(data),
                        }
                    } else {
                        self.send(0x82, &data).await;
                    }
                }
                Ok(Action::Close(code)) => {
                    let body = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
                    self.send(0x88, &body).await;
                    self.wait_for_server_close().await;
                    return kept;
                }
            }
        }
    }

    /// Judges one server frame.
    fn handle(
        &mut self,
        h: &Header,
        payload: Vec<u8>,
        partial: &mut Option<(u8, Vec<u8>, Utf8Stream)>,
    ) -> Result<Action, Failure> {
        let op = h.opcode();
        if h.mask().is_some() || h.b0() & 0x70 != 0 {
            return Err(Failure(PROTOCOL_ERROR));
        }
        if h.is_control() && (!h.fin() || payload.len() > 125) {
            return Err(Failure(PROTOCOL_ERROR));
        }
        match op {
            0x0..=0x2 => {
                let (kind, mut data, mut utf8) = match (op, partial.take()) {
                    (0x0, Some(p)) => p,
                    (0x0, None) | (_, Some(_)) => return Err(Failure(PROTOCOL_ERROR)),
                    (k, None) => (k, Vec::new(), Utf8Stream::default()),
                };
                if data.len() + payload.len() > MAX_MESSAGE {
                    return Err(Failure(MESSAGE_TOO_BIG));
                }
                if kind == 0x1 && utf8.feed(&payload).is_err() {
                    return Err(Failure(INVALID_PAYLOAD));
                }
                data.extend_from_slice(&payload);
                if !h.fin() {
                    *partial = Some((kind, data, utf8));
                    return Ok(Action::None);
                }
                if kind == 0x1 && !utf8.is_complete() {
                    return Err(Failure(INVALID_PAYLOAD));
                }
                Ok(Action::Message(kind, data))
            }
            0x9 => Ok(Action::Pong(payload)),
            0xA => Ok(Action::None),
            0x8 => match payload.as_slice() {
                [] => Ok(Action::Close(None)),
                [_] => Err(Failure(PROTOCOL_ERROR)),
                [hi, lo, reason @ ..] => {
                    let code = u16::from_be_bytes([*hi, *lo]);
                    if !close_code_is_valid(code) {
                        return Err(Failure(PROTOCOL_ERROR));
                    }
                    if std::str::from_utf8(reason).is_err() {
                        return Err(Failure(INVALID_PAYLOAD));
                    }
                    Ok(Action::Close(Some(code)))
                }
            },
            _ => Err(Failure(PROTOCOL_ERROR)),
        }
    }

    /// One frame: `Ok(None)` at EOF; a header the client refuses before
    /// reading its payload (too large) is a failure.
    async fn read_frame(&mut self) -> io::Result<Option<Result<(Header, Vec<u8>), Failure>>> {
        let mut reader = HeaderReader::default();
        let mut used = 0;
        let header = loop {
            if used == self.buf.len() {
                if !self.fill().await? {
                    return Ok(None);
                }
                continue;
            }
            let step = reader.push(self.buf[used]);
            used += 1;
            if let Some(h) = step.header {
                break h;
            }
        };
        self.buf.drain(..used);
        let len = header.payload_len();
        if len > MAX_MESSAGE as u64 {
            return Ok(Some(Err(Failure(MESSAGE_TOO_BIG))));
        }
        let len = len as usize;
        while self.buf.len() < len {
            if !self.fill().await? {
                return Ok(None);
            }
        }
        let payload: Vec<u8> = self.buf.drain(..len).collect();
        Ok(Some(Ok((header, payload))))
    }

    /// Reads more bytes; false at EOF.
    async fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Sends one final frame, masked with a fresh key.
    async fn send(&mut self, b0: u8, payload: &[u8]) {
        let key = random_mask();
        let mut out = Vec::with_capacity(payload.len() + 14);
        frame_header::encode(&mut out, b0, Some(key), payload.len());
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        let _ = timeout(IDLE, self.stream.write_all(&out)).await;
    }

    /// Fails the connection: a close frame with the code, then the server's
    /// close (or the deadline).
    async fn fail(&mut self, code: u16) {
        self.send(0x88, &code.to_be_bytes()).await;
        self.wait_for_server_close().await;
    }

    /// §7.1.1: the server closes TCP first; the client gives up after
    /// [`CLOSE_WAIT`].
    async fn wait_for_server_close(&mut self) {
        let _ = timeout(CLOSE_WAIT, async {
            let mut sink = vec![0u8; 16 * 1024];
            while matches!(self.stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

enum Action {
    None,
    Pong(Vec<u8>),
    Message(u8, Vec<u8>),
    Close(Option<u16>),
}

/// The checks RFC 6455 §4.1 puts on the server's response.
fn check_response(head: &str, accept: &str) -> Result<(), String> {
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut parts = status.splitn(3, ' ');
    if parts.next() != Some("HTTP/1.1") || parts.next() != Some("101") {
        return Err(format!("not a 101 response: {status:?}"));
    }
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let values = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let has_token = |name: &str, token: &str| {
        values(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has_token("upgrade", "websocket") {
        return Err("no Upgrade: websocket".into());
    }
    if !has_token("connection", "upgrade") {
        return Err("no Connection: Upgrade".into());
    }
    if values("sec-websocket-accept") != [accept] {
        return Err("wrong or missing Sec-WebSocket-Accept".into());
    }
    if !values("sec-websocket-extensions").is_empty() {
        return Err("an extension that was not offered".into());
    }
    if !values("sec-websocket-protocol").is_empty() {
        return Err("a subprotocol that was not offered".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_checks() {
        let acc = accept_for("dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {acc}\r\n\r\n"
        );
        assert_eq!(check_response(&ok, &acc), Ok(()));
        assert!(check_response(&ok.replace("101", "200"), &acc).is_err());
        assert!(check_response(&ok, "other").is_err());
        let ext = ok.replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: x\r\n\r\n");
        assert!(check_response(&ext, &acc).is_err());
    }

    #[test]
    fn masks_differ() {
        assert_ne!(random_mask(), random_mask());
        assert_eq!(encode_query("a b/c"), "a%20b%2Fc");
    }
}
