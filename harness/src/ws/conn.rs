//! One raw TCP connection to a WebSocket target: a reader task that turns
//! the target's bytes into strictly checked events, and a writer the case
//! script drives. Splitting the two means a target that writes while the
//! harness is still writing (pipelined pings, big echoes) can never
//! deadlock the case, and every wait has a deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::frame::{self, Frame, Opcode};
use super::handshake::Response;
use super::step::MessageType;
use crate::transcript::{Transcript, preview};

/// What the target sent, after strict checking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The HTTP response head to the upgrade request.
    Response(Response),
    Message {
        kind: MessageType,
        payload: Vec<u8>,
        frames: usize,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close {
        code: Option<u16>,
        reason: Vec<u8>,
    },
    /// The TCP connection ended (EOF or reset).
    Closed(String),
    /// The target broke RFC 6455; the reader stops here.
    Violation(String),
}

impl Event {
    pub fn describe(&self) -> String {
        match self {
            Event::Response(r) => format!("HTTP response {} {}", r.status, r.reason),
            Event::Message {
                kind,
                payload,
                frames,
            } => {
                let frag = if *frames > 1 {
                    format!(" in {frames} fragments")
                } else {
                    String::new()
                };
                format!(
                    "{} message of {} bytes{frag}: {}",
                    kind_name(*kind),
                    payload.len(),
                    preview(payload)
                )
            }
            Event::Ping(p) => format!("ping of {} bytes: {}", p.len(), preview(p)),
            Event::Pong(p) => format!("pong of {} bytes: {}", p.len(), preview(p)),
            Event::Close { code, reason } => match code {
                Some(c) if reason.is_empty() => format!("close {c}"),
                Some(c) => format!("close {c} {}", preview(reason)),
                None => "close without status code".to_string(),
            },
            Event::Closed(how) => format!("TCP connection closed ({how})"),
            Event::Violation(v) => format!("protocol violation: {v}"),
        }
    }
}

pub fn kind_name(k: MessageType) -> &'static str {
    match k {
        MessageType::Text => "text",
        MessageType::Binary => "binary",
    }
}

/// Whether a close code may appear on the wire (RFC 6455 §7.4, IANA registry).
pub fn close_code_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long a wait may go without any byte arriving.
    pub io_timeout: Duration,
    /// Largest frame or message the harness buffers.
    pub max_message: u64,
}

/// Why a write did not go through.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the target stopped reading: writing {0} bytes did not finish within {1:?}")]
    Stalled(usize, Duration),
}

/// How a flood ([`Conn::flood`]) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FloodEnd {
    /// A write accepted no byte for the stall time: backpressure.
    Stalled { written: u64 },
    /// The target closed the connection (a write failed).
    PeerGone { written: u64, error: String },
    /// Everything was written without the target pushing back.
    Cap { written: u64 },
}

/// State shared by the writer side and the reader task.
#[derive(Default)]
struct Shared {
    /// Bytes read from the socket so far.
    progress: AtomicU64,
    /// Data frames are not written to the transcript (repeats after the first).
    quiet: AtomicBool,
    /// The reader stops reading from the socket (a client that stops reading).
    paused: AtomicBool,
    resume: Notify,
}

pub struct Conn {
    write: OwnedWriteHalf,
    events: mpsc::Receiver<Event>,
    /// An event taken but not consumed by an optional expectation.
    pending: Option<Event>,
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
    transcript: Transcript,
    limits: Limits,
    /// The peer refused a write: it has gone, so further writes are skipped.
    peer_gone: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Conn {
    /// Starts reading: first an HTTP response head, then frames if it is 101.
    pub fn start(stream: TcpStream, transcript: Transcript, limits: Limits) -> Conn {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (tx, events) = mpsc::channel(32);
        let shared = Arc::new(Shared::default());
        let reader = tokio::spawn(
            Reader {
                read,
                buf: BytesMut::with_capacity(64 * 1024),
                tx,
                shared: shared.clone(),
                transcript: transcript.clone(),
                max: limits.max_message,
            }
            .run(),
        );
        Conn {
            write,
            events,
            pending: None,
            shared,
            reader,
            transcript,
            limits,
            peer_gone: false,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Quiet: data frames, pings and pongs in either direction are not
    /// written to the transcript (close frames and notes still are).
    pub fn set_quiet(&self, quiet: bool) {
        self.shared.quiet.store(quiet, Ordering::SeqCst);
    }

    pub fn quiet(&self) -> bool {
        self.shared.quiet.load(Ordering::SeqCst)
    }

    /// Stops or resumes reading from the socket. A paused reader finishes
    /// the read in progress, then reads nothing until resumed.
    pub fn set_reading(&self, on: bool) {
        self.shared.paused.store(!on, Ordering::SeqCst);
        if on {
            self.shared.resume.notify_waiters();
        }
    }

    /// Writes `frame` (an encoded frame) over and over without the reader
    /// running, until `total` bytes are written, a write accepts no byte for
    /// `stall`, or a write fails. Reading stays paused afterwards.
    pub async fn flood(&mut self, frame: &[u8], total: u64, stall: Duration) -> FloodEnd {
        self.set_reading(false);
        let mut written: u64 = 0;
        while written < total {
            let mut rest = frame;
            while !rest.is_empty() {
                match tokio::time::timeout(stall, self.write.write(rest)).await {
                    Err(_) => return FloodEnd::Stalled { written },
                    Ok(Ok(0)) => {
                        return FloodEnd::PeerGone {
                            written,
                            error: "write returned 0".into(),
                        };
                    }
                    Ok(Ok(n)) => {
                        written += n as u64;
                        rest = &rest[n..];
                    }
                    Ok(Err(e)) => {
                        self.peer_gone = true;
                        return FloodEnd::PeerGone {
                            written,
                            error: e.to_string(),
                        };
                    }
                }
            }
        }
        FloodEnd::Cap { written }
    }

    /// Writes `bytes`, in chops of `chop` bytes if given. A peer that has
    /// closed is not an error here: the expectations judge that.
    pub async fn write(&mut self, bytes: &[u8], chop: Option<usize>) -> Result<(), WriteError> {
        if self.peer_gone {
            return Ok(());
        }
        let chunk = chop.unwrap_or(usize::MAX).max(1);
        for piece in bytes.chunks(chunk.min(bytes.len().max(1))) {
            let deadline = self.limits.io_timeout.max(Duration::from_millis(
                (piece.len() as u64 / (8 * 1024 * 1024)) * 1000,
            ));
            match tokio::time::timeout(deadline, self.write.write_all(piece)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.transcript
                        .note(format!("write failed, the target has closed: {e}"));
                    self.peer_gone = true;
                    return Ok(());
                }
                Err(_) => return Err(WriteError::Stalled(piece.len(), deadline)),
            }
        }
        Ok(())
    }

    /// Encodes and writes one frame, recording it in the transcript.
    pub async fn send_frame(
        &mut self,
        f: &Frame,
        encoding: frame::LengthEncoding,
        declared: Option<u64>,
        chop: Option<usize>,
    ) -> Result<(), WriteError> {
        let mut out = Vec::with_capacity(f.payload.len() + 14);
        frame::encode_into(f, encoding, declared, &mut out);
        if self.quiet() && f.opcode != Opcode::Close {
            return self.write(&out, chop).await;
        }
        let mut line = f.summary();
        if let Some(d) = declared {
            line.push_str(&format!(" (declared len {d})"));
        }
        if encoding != frame::LengthEncoding::Minimal {
            line.push_str(&format!(" (length encoding {encoding:?})"));
        }
        if let Some(c) = chop {
            line.push_str(&format!(" (in chops of {c})"));
        }
        self.transcript.out(line);
        self.write(&out, chop).await
    }

    /// Puts back an event an optional expectation did not consume.
    pub fn unread(&mut self, ev: Event) {
        self.pending = Some(ev);
    }

    /// The next event, or `None` if nothing arrived: the wait ends after
    /// `io_timeout` without a single byte, or at `until` at the latest.
    pub async fn next(&mut self, until: Instant) -> Option<Event> {
        if let Some(ev) = self.pending.take() {
            return Some(ev);
        }
        let mut seen = self.shared.progress.load(Ordering::Relaxed);
        loop {
            let now = Instant::now();
            if now >= until {
                return None;
            }
            let wait = self.limits.io_timeout.min(until - now);
            match tokio::time::timeout(wait, self.events.recv()).await {
                Ok(ev) => return ev,
                Err(_) => {
                    let p = self.shared.progress.load(Ordering::Relaxed);
                    if p == seen || Instant::now() >= until {
                        return None;
                    }
                    seen = p;
                }
            }
        }
    }

    /// Waits exactly `d` for an event (used by `expect_nothing`).
    pub async fn next_within(&mut self, d: Duration) -> Option<Event> {
        if let Some(ev) = self.pending.take() {
            return Some(ev);
        }
        tokio::time::timeout(d, self.events.recv())
            .await
            .ok()
            .flatten()
    }
}

struct Reader {
    read: OwnedReadHalf,
    buf: BytesMut,
    tx: mpsc::Sender<Event>,
    shared: Arc<Shared>,
    transcript: Transcript,
    max: u64,
}

/// The reassembly state of a data message the target is sending.
struct Partial {
    kind: MessageType,
    payload: Vec<u8>,
    frames: usize,
}

impl Reader {
    async fn fill(&mut self) -> Result<usize, String> {
        // A paused reader waits here (the writer side is flooding).
        while self.shared.paused.load(Ordering::SeqCst) {
            let resumed = self.shared.resume.notified();
            if !self.shared.paused.load(Ordering::SeqCst) {
                break;
            }
            resumed.await;
        }
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        match self.read.read_buf(&mut self.buf).await {
            Ok(n) => {
                self.shared.progress.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => Err(format!("reset: {e}")),
        }
    }

    async fn emit(&self, ev: Event) -> bool {
        self.tx.send(ev).await.is_ok()
    }

    async fn closed(&self, how: String) {
        self.transcript
            .note(format!("TCP connection closed by target ({how})"));
        self.emit(Event::Closed(how)).await;
    }

    async fn run(mut self) {
        // HTTP response head.
        let upgraded = loop {
            match Response::parse(&self.buf) {
                Ok(Some((resp, n))) => {
                    self.buf.advance(n);
                    self.transcript.inbound(resp.describe());
                    let up = resp.status == 101;
                    if !self.emit(Event::Response(resp)).await {
                        return;
                    }
                    break up;
                }
                Ok(None) => {}
                Err(e) => {
                    self.transcript.note(e.to_string());
                    self.emit(Event::Violation(e.to_string())).await;
                    return;
                }
            }
            match self.fill().await {
                Ok(0) => {
                    return self
                        .closed("EOF before a complete HTTP response".into())
                        .await;
                }
                Ok(_) => {}
                Err(e) => return self.closed(e).await,
            }
        };
        if !upgraded {
            // Not a WebSocket connection: discard any body until the target closes.
            loop {
                self.buf.clear();
                match self.fill().await {
                    Ok(0) => return self.closed("EOF".into()).await,
                    Ok(_) => {}
                    Err(e) => return self.closed(e).await,
                }
            }
        }
        self.frames().await;
    }

    async fn frames(&mut self) {
        let mut partial: Option<Partial> = None;
        let mut close_seen = false;
        loop {
            // Decode every complete frame in the buffer.
            loop {
                let header = match frame::decode_header(&self.buf) {
                    Ok(Some(h)) => h,
                    Ok(None) => break,
                    Err(e) => return self.violation(e.to_string()).await,
                };
                if header.payload_len > self.max {
                    return self
                        .violation(format!(
                            "frame declares {} payload bytes, above the harness cap of {}",
                            header.payload_len, self.max
                        ))
                        .await;
                }
                let total = header.header_len as u64 + header.payload_len;
                if (self.buf.len() as u64) < total {
                    self.buf.reserve(total as usize - self.buf.len());
                    break;
                }
                let (f, n) = match frame::decode(&self.buf, self.max) {
                    Ok(Some(x)) => x,
                    Ok(None) => break,
                    Err(e) => return self.violation(e.to_string()).await,
                };
                self.buf.advance(n);
                if f.opcode == Opcode::Close
                    || !self.shared.quiet.load(Ordering::SeqCst)
                    || close_seen
                {
                    self.transcript.inbound(f.summary());
                }
                if close_seen {
                    return self
                        .violation("frame sent after a close frame".into())
                        .await;
                }
                match self.check(f, &mut partial) {
                    Ok(Some(ev)) => {
                        close_seen = matches!(ev, Event::Close { .. });
                        if !self.emit(ev).await {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(v) => return self.violation(v).await,
                }
            }
            match self.fill().await {
                Ok(0) if self.buf.is_empty() => return self.closed("EOF".into()).await,
                Ok(0) => {
                    let n = self.buf.len();
                    return self
                        .closed(format!("EOF in the middle of a frame, {n} bytes pending"))
                        .await;
                }
                Ok(_) => {}
                Err(e) => return self.closed(e).await,
            }
        }
    }

    async fn violation(&self, v: String) {
        self.transcript.note(format!("protocol violation: {v}"));
        self.emit(Event::Violation(v)).await;
    }

    /// RFC 6455 rules for frames a server sends (§5.1-§5.6, §7.4).
    fn check(&self, f: Frame, partial: &mut Option<Partial>) -> Result<Option<Event>, String> {
        if f.mask.is_some() {
            return Err("the target masked a frame (a server MUST NOT mask, RFC 6455 §5.1)".into());
        }
        if f.rsv != 0 {
            return Err(format!(
                "RSV bits {:03b} set with no extension negotiated (RFC 6455 §5.2)",
                f.rsv
            ));
        }
        if f.opcode.is_reserved() {
            return Err(format!(
                "reserved opcode {} (RFC 6455 §5.2)",
                f.opcode.as_u4()
            ));
        }
        if f.opcode.is_control() {
            if !f.fin {
                return Err("fragmented control frame (RFC 6455 §5.5)".into());
            }
            if f.payload.len() > 125 {
                return Err(format!(
                    "control frame with {} payload bytes, above 125 (RFC 6455 §5.5)",
                    f.payload.len()
                ));
            }
        }
        Ok(match f.opcode {
            Opcode::Ping => Some(Event::Ping(f.payload)),
            Opcode::Pong => Some(Event::Pong(f.payload)),
            Opcode::Close => {
                let p = f.payload;
                match p.len() {
                    0 => Some(Event::Close {
                        code: None,
                        reason: Vec::new(),
                    }),
                    1 => return Err("close frame with a 1-byte payload (RFC 6455 §5.5.1)".into()),
                    _ => {
                        let code = u16::from_be_bytes([p[0], p[1]]);
                        if !close_code_valid(code) {
                            return Err(format!(
                                "close frame with code {code}, which may not be sent (RFC 6455 §7.4)"
                            ));
                        }
                        if std::str::from_utf8(&p[2..]).is_err() {
                            return Err("close reason is not valid UTF-8 (RFC 6455 §5.5.1)".into());
                        }
                        Some(Event::Close {
                            code: Some(code),
                            reason: p[2..].to_vec(),
                        })
                    }
                }
            }
            Opcode::Text | Opcode::Binary => {
                if partial.is_some() {
                    return Err(
                        "new data frame while a fragmented message is open (RFC 6455 §5.4)".into(),
                    );
                }
                let kind = if f.opcode == Opcode::Text {
                    MessageType::Text
                } else {
                    MessageType::Binary
                };
                let p = Partial {
                    kind,
                    payload: f.payload,
                    frames: 1,
                };
                if f.fin {
                    Some(self.finish(p)?)
                } else {
                    *partial = Some(p);
                    None
                }
            }
            Opcode::Continuation => {
                let Some(p) = partial.as_mut() else {
                    return Err(
                        "continuation frame with no message to continue (RFC 6455 §5.4)".into(),
                    );
                };
                if (p.payload.len() + f.payload.len()) as u64 > self.max {
                    return Err(format!(
                        "message grows past the harness cap of {} bytes",
                        self.max
                    ));
                }
                p.payload.extend_from_slice(&f.payload);
                p.frames += 1;
                if f.fin {
                    let p = partial.take().expect("checked above");
                    Some(self.finish(p)?)
                } else {
                    None
                }
            }
            Opcode::Reserved(_) => unreachable!("rejected above"),
        })
    }

    fn finish(&self, p: Partial) -> Result<Event, String> {
        if p.kind == MessageType::Text && std::str::from_utf8(&p.payload).is_err() {
            return Err("text message is not valid UTF-8 (RFC 6455 §8.1)".into());
        }
        Ok(Event::Message {
            kind: p.kind,
            payload: p.payload,
            frames: p.frames,
        })
    }
}

pub async fn shutdown(mut conn: Conn) {
    let _ = conn.write.shutdown().await;
}
