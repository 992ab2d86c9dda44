//! One client connection seen from the server side: writes frames and raw
//! bytes, and turns what the client sends into events, checking every
//! frame against the rules a client's frames must follow (masked, no RSV
//! without an extension, known opcodes, control frame limits, minimal
//! length, message sequencing, UTF-8 of text and close reasons, valid
//! close codes). Pings from the client are answered on the way; a close
//! frame from the client is answered with a close frame.
//!
//! Uses the harness's permissive frame codec (`wire::frame`), which judges
//! nothing itself. Must not import `client::run` or the CLI.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::transcript::Transcript;
use crate::wire::frame::{self, CloseBody, Frame, Opcode};

/// Frames and messages the harness buffers from a client.
pub const MAX_MESSAGE: u64 = 64 * 1024 * 1024;

/// Bytes written per write call, so a stalled client is noticed per chunk.
const WRITE_CHUNK: usize = 64 * 1024;

/// What the client did next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Message {
        text: bool,
        payload: Vec<u8>,
    },
    Pong(Vec<u8>),
    Close {
        code: Option<u16>,
        reason: Vec<u8>,
    },
    TcpClosed,
    /// A frame that breaks a rule for client frames.
    Violation(String),
}

impl Event {
    pub fn describe(&self) -> String {
        match self {
            Event::Message { text, payload } => format!(
                "a {} message of {} bytes {}",
                if *text { "text" } else { "binary" },
                payload.len(),
                crate::transcript::preview(payload)
            ),
            Event::Pong(p) => format!("a pong {}", crate::transcript::preview(p)),
            Event::Close { code: Some(c), .. } => format!("close {c}"),
            Event::Close { code: None, .. } => "a close frame without a code".into(),
            Event::TcpClosed => "a TCP close".into(),
            Event::Violation(v) => v.clone(),
        }
    }
}

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    t: Transcript,
    timeout: Duration,
    /// A fragmented message being received: text?, bytes so far.
    partial: Option<(bool, Vec<u8>)>,
    /// The masking key of every frame the client sent.
    pub masks: Vec<[u8; 4]>,
    /// The client sent a close frame.
    pub client_closed: bool,
    /// The harness sent a close frame.
    pub server_closed: bool,
    /// The client closed (or reset) TCP.
    pub tcp_closed: bool,
}

impl Conn {
    pub fn new(stream: TcpStream, leftover: Vec<u8>, t: Transcript, timeout: Duration) -> Conn {
        Conn {
            stream,
            buf: leftover,
            t,
            timeout,
            partial: None,
            masks: Vec::new(),
            client_closed: false,
            server_closed: false,
            tcp_closed: false,
        }
    }

    /// Writes bytes in chops (or whole), each chunk within the timeout. A
    /// client that has gone is noted, not an error of the case: the
    /// expectations judge what it did.
    pub async fn write(&mut self, bytes: &[u8], chop: Option<usize>) {
        if self.tcp_closed {
            self.t.note("not sent: the client closed the connection");
            return;
        }
        let step = chop.unwrap_or(WRITE_CHUNK).max(1);
        for piece in bytes.chunks(step) {
            let w = tokio::time::timeout(self.timeout, async {
                self.stream.write_all(piece).await?;
                self.stream.flush().await
            })
            .await;
            match w {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.t.note(format!("write failed: {e}"));
                    return;
                }
                Err(_) => {
                    self.t.note(format!(
                        "write stalled for {}: the client is not reading",
                        crate::text::duration(self.timeout)
                    ));
                    return;
                }
            }
        }
    }

    /// Records something the harness sent.
    pub fn note_out(&self, text: String) {
        self.t.out(text);
    }

    pub async fn send(&mut self, f: &Frame, chop: Option<usize>) {
        self.t.out(f.summary());
        if f.opcode == Opcode::Close {
            self.server_closed = true;
        }
        let bytes = frame::encode(f);
        self.write(&bytes, chop).await;
    }

    /// The harness's side of the closing: closes TCP (the server closes
    /// first, §7.1.1).
    pub async fn close_tcp(&mut self) {
        let _ = self.stream.shutdown().await;
        self.t.note("the harness closed TCP");
    }

    /// The next event, or `None` at the deadline.
    pub async fn next(&mut self, deadline: Instant) -> Option<Event> {
        loop {
            if let Some(ev) = self.decode_one().await {
                return Some(ev);
            }
            if self.tcp_closed {
                return Some(Event::TcpClosed);
            }
            let mut chunk = vec![0u8; 64 * 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0)) => {
                    self.tcp_closed = true;
                    self.t.note(if self.buf.is_empty() {
                        "the client closed TCP".to_string()
                    } else {
                        format!(
                            "the client closed TCP with {} bytes of an unfinished frame",
                            self.buf.len()
                        )
                    });
                    return Some(Event::TcpClosed);
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => {
                    self.tcp_closed = true;
                    self.t.note(format!("the connection was reset: {e}"));
                    return Some(Event::TcpClosed);
                }
            }
        }
    }

    /// Decodes and judges one frame from the buffer; `None` if none is
    /// complete or it needs no attention (a continuation, a ping answered).
    async fn decode_one(&mut self) -> Option<Event> {
        loop {
            let header = match frame::decode_header(&self.buf) {
                Ok(Some(h)) => h,
                Ok(None) => return None,
                Err(e) => return Some(self.violation(format!("{e}"))),
            };
            let (f, used) = match frame::decode(&self.buf, MAX_MESSAGE) {
                Ok(Some(x)) => x,
                Ok(None) => return None,
                Err(e) => return Some(self.violation(format!("{e}"))),
            };
            self.buf.drain(..used);
            self.t.inbound(f.summary());
            if let Some(v) = self.frame_problem(&f, header.minimal_length) {
                return Some(self.violation(v));
            }
            if let Some(ev) = self.deliver(f).await {
                return Some(ev);
            }
        }
    }

    fn violation(&mut self, why: String) -> Event {
        // Whatever follows cannot be framed reliably.
        self.buf.clear();
        Event::Violation(why)
    }

    fn frame_problem(&mut self, f: &Frame, minimal: bool) -> Option<String> {
        let Some(key) = f.mask else {
            return Some(
                "the client sent an unmasked frame (RFC 6455 §5.1: a client MUST mask every frame)"
                    .into(),
            );
        };
        self.masks.push(key);
        if self.client_closed {
            return Some(format!(
                "the client sent a {} frame after its close frame (§5.5.1)",
                f.opcode
            ));
        }
        if f.rsv != 0 {
            return Some(format!(
                "the client set RSV bits {:03b} with no extension agreed (§5.2)",
                f.rsv
            ));
        }
        if let Opcode::Reserved(n) = f.opcode {
            return Some(format!("the client sent reserved opcode {n} (§5.2)"));
        }
        if f.opcode.is_control() && (!f.fin || f.payload.len() > 125) {
            return Some(format!(
                "the client sent a {} control frame (fin={}, {} bytes): control frames are final and at most 125 bytes (§5.5)",
                f.opcode,
                f.fin,
                f.payload.len()
            ));
        }
        if !minimal {
            return Some(format!(
                "the client encoded a length of {} bytes non-minimally (§5.2)",
                f.payload.len()
            ));
        }
        match (f.opcode, &self.partial) {
            (Opcode::Continuation, None) => Some(
                "the client sent a continuation frame with no message to continue (§5.4)".into(),
            ),
            (Opcode::Text | Opcode::Binary, Some(_)) => Some(
                "the client started a new message before finishing the previous one (§5.4)".into(),
            ),
            _ => None,
        }
    }

    /// Data frames assemble into messages; pings are answered; a close is
    /// answered with a close frame.
    async fn deliver(&mut self, f: Frame) -> Option<Event> {
        match f.opcode {
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                let (text, mut bytes) = match f.opcode {
                    Opcode::Continuation => self.partial.take().unwrap_or((false, Vec::new())),
                    op => (op == Opcode::Text, Vec::new()),
                };
                if bytes.len() as u64 + f.payload.len() as u64 > MAX_MESSAGE {
                    return Some(self.violation(format!(
                        "the client sent a message over {MAX_MESSAGE} bytes"
                    )));
                }
                bytes.extend_from_slice(&f.payload);
                if !f.fin {
                    self.partial = Some((text, bytes));
                    return None;
                }
                if text && std::str::from_utf8(&bytes).is_err() {
                    return Some(self.violation(
                        "the client sent a text message that is not valid UTF-8 (§8.1)".into(),
                    ));
                }
                Some(Event::Message {
                    text,
                    payload: bytes,
                })
            }
            Opcode::Ping => {
                if !self.server_closed {
                    let pong = Frame::pong(f.payload);
                    self.send(&pong, None).await;
                }
                None
            }
            Opcode::Pong => Some(Event::Pong(f.payload)),
            Opcode::Close => {
                self.client_closed = true;
                let (code, reason) = match frame::parse_close_payload(&f.payload) {
                    CloseBody::Empty => (None, Vec::new()),
                    CloseBody::Truncated(_) => {
                        return Some(
                            self.violation(
                                "the client sent a 1-byte close payload (§5.5.1)".into(),
                            ),
                        );
                    }
                    CloseBody::Status { code, reason } => {
                        if !frame::is_valid_close_code(code) {
                            return Some(self.violation(format!(
                                "the client sent close code {code}, which is not allowed on the wire (§7.4)"
                            )));
                        }
                        if std::str::from_utf8(reason).is_err() {
                            return Some(self.violation(
                                "the client's close reason is not valid UTF-8 (§5.5.1)".into(),
                            ));
                        }
                        (Some(code), reason.to_vec())
                    }
                };
                if !self.server_closed {
                    let reply = Frame::close(code, b"");
                    self.send(&reply, None).await;
                }
                Some(Event::Close { code, reason })
            }
            Opcode::Reserved(_) => None,
        }
    }
}
