//! A deliberately simple WebSocket echo server over raw TCP with exactly one
//! injected fault, used to prove that case families can fail.
//!
//! It is independent of the reference server and of any WebSocket library:
//! the upgrade is parsed with `httparse`, the accept key computed with
//! `sha1` + `base64`, and frames decoded with `pushspec::ws::frame` (which
//! enforces no protocol rules itself). With [`Fault::None`] it follows
//! RFC 6455 for everything the `ws.*` families check; every other variant
//! breaks exactly one rule.
//!
//! Every read and write has a timeout and every buffer is bounded. After
//! sending a close frame the server shuts down its write side and drains
//! reads until EOF (or [`DRAIN`]) before dropping the socket: closing with
//! unread bytes would make the kernel send a RST, and the client could lose
//! the close frame.

#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pushspec::ws::frame::{self, Frame, FrameError, Header, Opcode};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// The one rule the server breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Behaves correctly: proves the fixture itself passes the families it targets.
    None,
    /// `Sec-WebSocket-Accept` is computed without the RFC 6455 GUID.
    WrongAccept,
    /// Upgrades whatever `Sec-WebSocket-Version` says (or without one) instead of 426.
    IgnoresVersion,
    /// Upgrades with a missing, duplicated or malformed `Sec-WebSocket-Key`.
    AcceptsBadKey,
    /// Only accepts `Connection: Upgrade` exactly (case-insensitively),
    /// refusing a token list such as `keep-alive, Upgrade`.
    NoUpgradeTokenList,
    /// Answers `Sec-WebSocket-Protocol: chat` on every upgrade, whatever was offered.
    SelectsUnofferedProtocol,
    /// Echoes at most [`TRUNCATE_AT`] bytes of a message.
    TruncatesLongMessages,
    /// Treats unmasked client frames like masked ones instead of failing.
    AcceptsUnmasked,
    /// Masks the frames it sends.
    MasksServerFrames,
    /// Answers a ping with an empty pong.
    PongWrongPayload,
    /// Answers a ping of more than 125 bytes instead of failing.
    AcceptsLongPing,
    /// Reassembles fragmented control frames (continuations included) instead of failing.
    AcceptsFragmentedControl,
    /// Sends a pong back for every pong it receives.
    AnswersUnsolicitedPong,
    /// Ignores RSV bits: the frame is handled as if they were 0.
    IgnoresRsv,
    /// Silently skips frames with reserved opcodes.
    IgnoresReservedOpcode,
    /// Fails connections with close 1000 where 1002 is due.
    WrongCloseCode,
}

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest request head buffered before answering 431.
const MAX_HEAD: usize = 16 * 1024;
/// Largest frame payload and reassembled message (close 1009 above it).
const MAX_MESSAGE: usize = 32 << 20;
/// How long a read may wait for a single byte.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reads are drained after the server's close frame.
const DRAIN: Duration = Duration::from_secs(1);
/// Where [`Fault::TruncatesLongMessages`] cuts an echo.
pub const TRUNCATE_AT: usize = 65535;
/// The key [`Fault::MasksServerFrames`] masks with.
const SERVER_MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// Binds `127.0.0.1:0` and serves in the background (one task per
/// connection) until the calling runtime shuts down.
pub async fn spawn(fault: Fault) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the broken WebSocket fixture on 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(Conn::new(stream, fault).serve());
                }
                // E.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
    addr
}

/// `Sec-WebSocket-Accept` for `key`, wrong on purpose under [`Fault::WrongAccept`].
fn accept_for(key: &str, fault: Fault) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    if fault != Fault::WrongAccept {
        sha.update(GUID.as_bytes());
    }
    STANDARD.encode(sha.finalize())
}

/// What to answer an upgrade request with.
enum Answer {
    Upgrade {
        accept: String,
        protocol: Option<&'static str>,
    },
    Reject {
        status: u16,
        reason: &'static str,
        extra: &'static str,
    },
}

impl Answer {
    fn reject(status: u16, reason: &'static str) -> Answer {
        Answer::Reject {
            status,
            reason,
            extra: "",
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Answer::Upgrade { accept, protocol } => {
                let mut s = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                );
                if let Some(p) = protocol {
                    s.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
                }
                s.push_str("\r\n");
                s.into_bytes()
            }
            Answer::Reject { status, reason, extra } => format!(
                "HTTP/1.1 {status} {reason}\r\n{extra}Connection: close\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes(),
        }
    }
}

/// The comma-separated elements of every `name` header, trimmed.
fn elements<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .flat_map(|h| h.value.split(|b| *b == b','))
        .map(|e| e.trim_ascii())
        .filter(|e| !e.is_empty())
}

fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    elements(headers, name).any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
}

fn values<'a>(headers: &'a [httparse::Header<'a>], name: &'a str) -> Vec<&'a [u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.trim_ascii())
        .collect()
}

/// Decides the answer to a complete request head (RFC 6455 §4.2.1, §4.4).
fn answer(req: &httparse::Request<'_, '_>, fault: Fault) -> Answer {
    let h: &[httparse::Header<'_>] = req.headers;
    if req.method != Some("GET") {
        return Answer::Reject {
            status: 405,
            reason: "Method Not Allowed",
            extra: "Allow: GET\r\n",
        };
    }
    if req.version != Some(1) {
        return Answer::reject(400, "Bad Request");
    }
    if !has_token(h, "Upgrade", "websocket") {
        return Answer::reject(400, "Bad Request");
    }
    let connection_ok = if fault == Fault::NoUpgradeTokenList {
        matches!(values(h, "Connection").as_slice(), [v] if v.eq_ignore_ascii_case(b"Upgrade"))
    } else {
        has_token(h, "Connection", "upgrade")
    };
    if !connection_ok {
        return Answer::reject(400, "Bad Request");
    }
    if fault != Fault::IgnoresVersion && values(h, "Sec-WebSocket-Version").as_slice() != [b"13"] {
        return Answer::Reject {
            status: 426,
            reason: "Upgrade Required",
            extra: "Sec-WebSocket-Version: 13\r\n",
        };
    }
    let keys = values(h, "Sec-WebSocket-Key");
    let key = match keys.as_slice() {
        [k] if STANDARD.decode(k).is_ok_and(|raw| raw.len() == 16) => *k,
        _ if fault == Fault::AcceptsBadKey => keys.first().copied().unwrap_or(b""),
        _ => return Answer::reject(400, "Bad Request"),
    };
    let key = String::from_utf8_lossy(key);
    Answer::Upgrade {
        accept: accept_for(&key, fault),
        // The fixture supports no subprotocol, so it never selects one.
        protocol: (fault == Fault::SelectsUnofferedProtocol).then_some("chat"),
    }
}

/// What handling one frame leads to.
enum Flow {
    Continue,
    /// Fail the connection with this close code.
    Fail(u16),
    /// The connection is over (closing handshake done, or the peer is gone).
    Done,
}

/// A data message (or, under [`Fault::AcceptsFragmentedControl`], a control
/// frame) being reassembled.
struct Partial {
    opcode: Opcode,
    payload: Vec<u8>,
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    fault: Fault,
}

impl Conn {
    fn new(stream: TcpStream, fault: Fault) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            buf: Vec::with_capacity(8 * 1024),
            scratch: vec![0; 64 * 1024],
            fault,
        }
    }

    async fn serve(mut self) {
        if let Ok(true) = self.handshake().await {
            self.frames().await;
        }
    }

    /// Reads more bytes into `buf`; `Ok(0)` at EOF, an error on timeout.
    async fn read_more(&mut self) -> io::Result<usize> {
        let n = tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut self.scratch))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read timed out"))??;
        self.buf.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        tokio::time::timeout(WRITE_TIMEOUT, self.stream.write_all(bytes))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))?
    }

    /// Graceful end: shut down the write side, drain reads until EOF or
    /// [`DRAIN`], then drop the socket.
    async fn finish(&mut self) {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, self.stream.shutdown()).await;
        let until = Instant::now() + DRAIN;
        loop {
            match tokio::time::timeout_at(until, self.stream.read(&mut self.scratch)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => break,
            }
        }
    }

    /// Reads and answers the upgrade request: `Ok(true)` when upgraded.
    async fn handshake(&mut self) -> io::Result<bool> {
        let (answer, used) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => break (answer(&req, self.fault), n),
                Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD => {
                    break (Answer::reject(431, "Request Header Fields Too Large"), 0);
                }
                Ok(httparse::Status::Partial) => {
                    if self.read_more().await? == 0 {
                        return Ok(false);
                    }
                }
                Err(httparse::Error::TooManyHeaders) => {
                    break (Answer::reject(431, "Request Header Fields Too Large"), 0);
                }
                Err(_) => break (Answer::reject(400, "Bad Request"), 0),
            }
        };
        self.write_all(&answer.to_bytes()).await?;
        match answer {
            Answer::Upgrade { .. } => {
                // Keep any bytes that followed the head: they are frames.
                self.buf.drain(..used);
                Ok(true)
            }
            Answer::Reject { .. } => {
                self.finish().await;
                Ok(false)
            }
        }
    }

    async fn frames(&mut self) {
        let mut partial: Option<Partial> = None;
        loop {
            let flow = match self.next_frame() {
                Ok(Some(f)) => self.on_frame(f, &mut partial).await,
                Ok(None) => match self.read_more().await {
                    Ok(0) | Err(_) => Flow::Done,
                    Ok(_) => Flow::Continue,
                },
                Err(code) => Flow::Fail(code),
            };
            match flow {
                Flow::Continue => {}
                Flow::Done => return,
                Flow::Fail(code) => return self.fail(code).await,
            }
        }
    }

    /// The protocol rules that can be judged from a frame header alone, so a
    /// bad frame fails the connection before its payload arrives.
    fn check_header(&self, h: &Header) -> Result<(), u16> {
        let fault = self.fault;
        if h.mask.is_none() && fault != Fault::AcceptsUnmasked {
            return Err(1002);
        }
        if h.rsv != 0 && fault != Fault::IgnoresRsv {
            return Err(1002);
        }
        if h.opcode.is_reserved() && fault != Fault::IgnoresReservedOpcode {
            return Err(1002);
        }
        if h.opcode.is_control() {
            if !h.fin && fault != Fault::AcceptsFragmentedControl {
                return Err(1002);
            }
            let long_ping_ok = fault == Fault::AcceptsLongPing && h.opcode == Opcode::Ping;
            if h.payload_len > 125 && !long_ping_ok {
                return Err(1002);
            }
        }
        if h.payload_len > MAX_MESSAGE as u64 {
            return Err(1009);
        }
        Ok(())
    }

    /// The next whole frame in `buf`: `Ok(None)` if more bytes are needed,
    /// `Err(code)` if the connection must be failed.
    fn next_frame(&mut self) -> Result<Option<Frame>, u16> {
        match frame::decode_header(&self.buf) {
            Ok(Some(h)) => self.check_header(&h)?,
            Ok(None) => {}
            Err(_) => return Err(1002),
        }
        match frame::decode(&self.buf, MAX_MESSAGE as u64) {
            Ok(Some((f, n))) => {
                self.buf.drain(..n);
                Ok(Some(f))
            }
            Ok(None) => Ok(None),
            Err(FrameError::PayloadTooLarge { .. }) => Err(1009),
            Err(FrameError::LengthTopBitSet(_)) => Err(1002),
        }
    }

    async fn on_frame(&mut self, f: Frame, partial: &mut Option<Partial>) -> Flow {
        match f.opcode {
            Opcode::Text | Opcode::Binary => {
                if partial.is_some() {
                    return Flow::Fail(1002);
                }
                if f.fin {
                    self.deliver(f.opcode, f.payload).await
                } else {
                    *partial = Some(Partial {
                        opcode: f.opcode,
                        payload: f.payload,
                    });
                    Flow::Continue
                }
            }
            Opcode::Continuation => {
                let Some(p) = partial.as_mut() else {
                    return Flow::Fail(1002);
                };
                if p.payload.len() + f.payload.len() > MAX_MESSAGE {
                    return Flow::Fail(1009);
                }
                p.payload.extend_from_slice(&f.payload);
                if !f.fin {
                    return Flow::Continue;
                }
                let p = partial.take().expect("checked above");
                self.deliver(p.opcode, p.payload).await
            }
            // Only reached under Fault::AcceptsFragmentedControl.
            Opcode::Ping | Opcode::Pong | Opcode::Close if !f.fin => {
                if partial.is_some() {
                    return Flow::Fail(1002);
                }
                *partial = Some(Partial {
                    opcode: f.opcode,
                    payload: f.payload,
                });
                Flow::Continue
            }
            Opcode::Ping | Opcode::Pong | Opcode::Close => self.deliver(f.opcode, f.payload).await,
            // Only reached under Fault::IgnoresReservedOpcode.
            Opcode::Reserved(_) => Flow::Continue,
        }
    }

    /// Handles a complete message or control frame.
    async fn deliver(&mut self, opcode: Opcode, mut payload: Vec<u8>) -> Flow {
        match opcode {
            Opcode::Text | Opcode::Binary => {
                if opcode == Opcode::Text && std::str::from_utf8(&payload).is_err() {
                    return Flow::Fail(1007);
                }
                if self.fault == Fault::TruncatesLongMessages {
                    payload.truncate(TRUNCATE_AT);
                }
                self.send(Frame::new(opcode, payload)).await
            }
            Opcode::Ping => {
                if self.fault == Fault::PongWrongPayload {
                    payload.clear();
                }
                self.send(Frame::pong(payload)).await
            }
            Opcode::Pong if self.fault == Fault::AnswersUnsolicitedPong => {
                self.send(Frame::pong(payload)).await
            }
            Opcode::Pong => Flow::Continue,
            Opcode::Close => self.on_close(&payload).await,
            Opcode::Continuation | Opcode::Reserved(_) => unreachable!("never delivered"),
        }
    }

    /// Answers the peer's close frame and ends the connection (RFC 6455 §5.5.1).
    async fn on_close(&mut self, payload: &[u8]) -> Flow {
        let reply = match frame::parse_close_payload(payload) {
            frame::CloseBody::Empty => Frame::close(None, b""),
            frame::CloseBody::Truncated(_) => return Flow::Fail(1002),
            frame::CloseBody::Status { code, reason } => {
                if !frame::is_valid_close_code(code) {
                    return Flow::Fail(1002);
                }
                if std::str::from_utf8(reason).is_err() {
                    return Flow::Fail(1007);
                }
                Frame::close(Some(code), b"")
            }
        };
        if let Flow::Continue = self.send(reply).await {
            self.finish().await;
        }
        Flow::Done
    }

    /// Fails the connection: a close frame with `code`, then a graceful end.
    async fn fail(&mut self, code: u16) {
        let code = if self.fault == Fault::WrongCloseCode && code == 1002 {
            1000
        } else {
            code
        };
        if let Flow::Continue = self.send(Frame::close(Some(code), b"")).await {
            self.finish().await;
        }
    }

    /// Writes one frame; `Flow::Done` if the peer is gone or stalled.
    async fn send(&mut self, mut f: Frame) -> Flow {
        if self.fault == Fault::MasksServerFrames {
            f.mask = Some(SERVER_MASK);
        }
        match self.write_all(&frame::encode(&f)).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Done,
        }
    }
}
