//! One raw connection (TCP or TLS) to a WebSocket target: a reader task that turns
//! the target's bytes into strictly checked events, and a writer the case
//! script drives. Splitting the two means a target that writes while the
//! harness is still writing (pipelined pings, big echoes) can never
//! deadlock the case, and every wait has a deadline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::transcript::{Transcript, preview};
use crate::wire::deflate::{self, Decompressor, InflateError, Offer};
use crate::wire::digest::{Digest, Digester, Utf8Stream};
use crate::wire::frame::{self, Frame, MessageType, Opcode};
use crate::wire::http::Response;
use crate::wire::lz77;
use crate::wire::transport::{ReadHalf, Stream, WriteHalf};

/// What the target sent, after strict checking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The HTTP response head to the upgrade request.
    Response(Response),
    Message {
        kind: MessageType,
        /// Inflated, if it came compressed. For a message above the
        /// harness's buffer cap (`digest` set): only its first bytes.
        payload: Vec<u8>,
        frames: usize,
        /// It came compressed (RSV1, permessage-deflate).
        compressed: bool,
        /// A message too large to hold, reduced to a digest as it streamed.
        digest: Option<Digest>,
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
                compressed,
                digest,
            } => {
                let mut frag = if *frames > 1 {
                    format!(" in {frames} fragments")
                } else {
                    String::new()
                };
                if *compressed {
                    frag.push_str(" (compressed)");
                }
                let len = digest.as_ref().map_or(payload.len() as u64, |d| d.len);
                format!(
                    "{} message of {}{frag}: {}",
                    kind_name(*kind),
                    crate::text::bytes(len as usize),
                    preview(payload)
                )
            }
            Event::Ping(p) => format!("ping of {}: {}", crate::text::bytes(p.len()), preview(p)),
            Event::Pong(p) => format!("pong of {}: {}", crate::text::bytes(p.len()), preview(p)),
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

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long a wait may go without any byte arriving.
    pub io_timeout: Duration,
    /// Largest frame or message the harness buffers whole; larger data
    /// messages are checked as they stream (see [`super::digest`]).
    pub max_message: u64,
    /// Largest message the harness takes at all: a guard on what the
    /// target sends (inflating included), not a limit on what is compared.
    pub max_streamed: u64,
}

/// Why a write did not go through.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the target stopped reading: {0} bytes still unsent after {1:?} without progress")]
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
    /// The reader has seen the target end the conversation: a close frame,
    /// the end of the TCP connection, or a protocol violation.
    ended: AtomicBool,
    ended_notify: Notify,
    /// The permessage-deflate offers of the upgrade request, set before it
    /// is written: the reader derives the agreement from the 101 response
    /// with them, as the driver does.
    offers: Mutex<Vec<Offer>>,
}

pub struct Conn {
    write: WriteHalf,
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
    pub fn start(stream: Stream, transcript: Transcript, limits: Limits) -> Conn {
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
                max_streamed: limits.max_message.max(limits.max_streamed),
                inflate: None,
                server_window: 15,
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

    /// The permessage-deflate offers of the request about to be written.
    pub fn set_offers(&self, offers: Vec<Offer>) {
        *self.shared.offers.lock().unwrap_or_else(|e| e.into_inner()) = offers;
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
                match tokio::time::timeout(stall, write_through(&mut self.write, rest)).await {
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
        let idle = self.limits.io_timeout;
        for piece in bytes.chunks(chunk.min(bytes.len().max(1))) {
            // The deadline is on progress, not on the whole piece: a slow
            // target that keeps reading (python websockets takes seconds
            // over 65,536 small frames) is not one that stopped reading.
            //
            // A write keeps an eye on what the reader sees: a target that
            // closes (a close frame or EOF) and stops reading while the
            // harness is still writing has decided the case, and the
            // expectations judge what it sent. Only a write that is blocked
            // gives way to that; one that goes through is finished, so
            // frames a case sends after the target's close still go out.
            let mut rest = piece;
            while !rest.is_empty() {
                let shared = Arc::clone(&self.shared);
                let ended = async move {
                    // Registered before the flag is read: no wakeup is lost.
                    let woken = shared.ended_notify.notified();
                    if !shared.ended.load(Ordering::SeqCst) {
                        woken.await;
                    }
                };
                tokio::select! {
                    biased;
                    r = tokio::time::timeout(idle, write_through(&mut self.write, rest)) => match r {
                        Ok(Ok(n)) if n > 0 => rest = &rest[n..],
                        Ok(Ok(_)) => return self.gone("the target accepts no more bytes"),
                        Ok(Err(e)) => return self.gone(&e.to_string()),
                        Err(_) if self.shared.ended.load(Ordering::SeqCst) => {
                            return self.ended_while_writing(rest.len());
                        }
                        Err(_) => return Err(WriteError::Stalled(rest.len(), idle)),
                    },
                    () = ended => return self.ended_while_writing(rest.len()),
                }
            }
        }
        Ok(())
    }

    /// A blocked write given up because the target has closed: the
    /// remaining bytes are abandoned, like every later write.
    fn ended_while_writing(&mut self, unsent: usize) -> Result<(), WriteError> {
        self.transcript.note(format!(
            "the target closed while a write was blocked ({unsent} bytes of it unsent): the rest is abandoned"
        ));
        self.peer_gone = true;
        Ok(())
    }

    fn gone(&mut self, why: &str) -> Result<(), WriteError> {
        self.transcript
            .note(format!("write failed, the target has closed: {why}"));
        self.peer_gone = true;
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

/// Writes some of `bytes` and pushes them onto the wire. Over TLS a write
/// may leave encrypted bytes buffered when the socket is full; flushing
/// makes "written" mean "handed to the socket", as it does over TCP, so no
/// tail waits for a later write that never comes.
async fn write_through(w: &mut WriteHalf, bytes: &[u8]) -> std::io::Result<usize> {
    let n = w.write(bytes).await?;
    w.flush().await?;
    Ok(n)
}

struct Reader {
    read: ReadHalf,
    buf: BytesMut,
    tx: mpsc::Sender<Event>,
    shared: Arc<Shared>,
    transcript: Transcript,
    max: u64,
    max_streamed: u64,
    /// permessage-deflate is in force: the server's messages may come
    /// compressed.
    inflate: Option<Decompressor>,
    /// The agreed `server_max_window_bits`: no reference in a compressed
    /// message may reach further back than 2^this bytes.
    server_window: u8,
}

/// The reassembly state of a data message the target is sending.
struct Partial {
    kind: MessageType,
    /// The compressed payload so far, if `compressed` (at most the cap).
    payload: Vec<u8>,
    /// The message so far, if not `compressed`.
    body: Body,
    frames: usize,
    compressed: bool,
}

/// First bytes kept of a message reduced to a digest (for the transcript).
const HEAD: usize = 64;

/// A message body being received: held whole up to `max`, then reduced to
/// a digest (UTF-8 validated as it streams, for text) up to `max_streamed`.
struct Body {
    whole: Vec<u8>,
    streamed: Option<(Digester, Utf8Stream)>,
    head: Vec<u8>,
    text: bool,
    max: u64,
    max_streamed: u64,
}

impl Body {
    fn new(text: bool, max: u64, max_streamed: u64) -> Body {
        Body {
            whole: Vec::new(),
            streamed: None,
            head: Vec::new(),
            text,
            max,
            max_streamed,
        }
    }

    fn len(&self) -> u64 {
        match &self.streamed {
            Some((d, _)) => d.len(),
            None => self.whole.len() as u64,
        }
    }

    /// [`Self::push`], taking the first frame's payload without a copy.
    fn push_vec(&mut self, data: Vec<u8>) -> Result<(), String> {
        if self.whole.is_empty() && self.streamed.is_none() && data.len() as u64 <= self.max {
            self.whole = data;
            return Ok(());
        }
        self.push(&data)
    }

    fn push(&mut self, data: &[u8]) -> Result<(), String> {
        let total = self.len() + data.len() as u64;
        if total > self.max_streamed {
            return Err(format!(
                "message grows past the harness cap of {} bytes",
                self.max_streamed
            ));
        }
        if self.streamed.is_none() && total > self.max {
            let mut d = Digester::default();
            let mut u = Utf8Stream::default();
            d.update(&self.whole);
            if self.text {
                u.update(&self.whole).map_err(|_| not_utf8(""))?;
            }
            self.head = self.whole[..self.whole.len().min(HEAD)].to_vec();
            self.whole = Vec::new();
            self.streamed = Some((d, u));
        }
        match &mut self.streamed {
            Some((d, u)) => {
                if self.head.len() < HEAD {
                    let n = (HEAD - self.head.len()).min(data.len());
                    self.head.extend_from_slice(&data[..n]);
                }
                d.update(data);
                if self.text {
                    u.update(data).map_err(|_| not_utf8(""))?;
                }
            }
            None => self.whole.extend_from_slice(data),
        }
        Ok(())
    }

    /// The payload (whole, or its head) and the digest of a streamed one;
    /// text is checked for UTF-8 (`after`: how it came, for the reason).
    fn finish(self, after: &str) -> Result<(Vec<u8>, Option<Digest>), String> {
        match self.streamed {
            None => {
                if self.text && std::str::from_utf8(&self.whole).is_err() {
                    return Err(not_utf8(after));
                }
                Ok((self.whole, None))
            }
            Some((d, u)) => {
                if self.text && u.finish().is_err() {
                    return Err(not_utf8(after));
                }
                Ok((self.head, Some(d.finish())))
            }
        }
    }
}

fn not_utf8(after: &str) -> String {
    format!("text message is not valid UTF-8{after} (RFC 6455 §8.1)")
}

/// A data frame above the buffer cap whose payload is being streamed into
/// the open message.
struct Streaming {
    remaining: u64,
    fin: bool,
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
        if matches!(
            ev,
            Event::Close { .. } | Event::Closed(_) | Event::Violation(_)
        ) {
            // Before the event is queued: a writer blocked on a target that
            // stopped reading learns of it even while nobody takes events.
            self.shared.ended.store(true, Ordering::SeqCst);
            self.shared.ended_notify.notify_waiters();
        }
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
                    if up {
                        self.negotiate(&resp);
                    }
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
        let mut streaming: Option<Streaming> = None;
        loop {
            // Decode every complete frame in the buffer.
            loop {
                if let Some(st) = streaming.as_mut() {
                    // The payload of a large data frame, as it arrives.
                    let take = (self.buf.len() as u64).min(st.remaining) as usize;
                    if take == 0 {
                        break;
                    }
                    let piece = self.buf.split_to(take);
                    st.remaining -= take as u64;
                    let Some(p) = partial.as_mut() else {
                        return self
                            .violation("streamed frame without a message".into())
                            .await;
                    };
                    if p.compressed {
                        // The compressed form is inflated whole: it must fit.
                        return self
                            .violation(format!(
                                "compressed message grows past the harness cap of {} bytes",
                                self.max
                            ))
                            .await;
                    }
                    if let Err(v) = p.body.push(&piece) {
                        return self.violation(v).await;
                    }
                    if st.remaining > 0 {
                        continue;
                    }
                    let fin = st.fin;
                    streaming = None;
                    if fin {
                        let p = partial.take().expect("checked above");
                        match self.finish(p) {
                            Ok(ev) => {
                                if !self.emit(ev).await {
                                    return;
                                }
                            }
                            Err(v) => return self.violation(v).await,
                        }
                    }
                    continue;
                }
                let header = match frame::decode_header(&self.buf) {
                    Ok(Some(h)) => h,
                    Ok(None) => break,
                    Err(e) => return self.violation(e.to_string()).await,
                };
                // Judged from the header alone, on every frame whatever
                // the case expects: a sender MUST use the minimal length
                // encoding (RFC 6455 §5.2).
                if !header.minimal_length {
                    return self.violation(non_minimal(&header)).await;
                }
                let data = matches!(
                    header.opcode,
                    Opcode::Text | Opcode::Binary | Opcode::Continuation
                );
                if header.payload_len > self.max
                    && data
                    && header.payload_len <= self.max_streamed
                    && !close_seen
                {
                    // Too large to hold: the header is checked like any
                    // frame's (with an empty payload), the payload goes
                    // into the message as it arrives.
                    let head = Frame {
                        fin: false,
                        rsv: header.rsv,
                        opcode: header.opcode,
                        mask: header.mask,
                        payload: Vec::new(),
                    };
                    if !self.shared.quiet.load(Ordering::SeqCst) {
                        self.transcript.inbound(format!(
                            "{} {} rsv={} len={} (streamed, not held)",
                            header.opcode,
                            if header.fin { "fin" } else { "nofin" },
                            header.rsv,
                            header.payload_len
                        ));
                    }
                    self.buf.advance(header.header_len);
                    if let Err(v) = self.check(head, &mut partial) {
                        return self.violation(v).await;
                    }
                    streaming = Some(Streaming {
                        remaining: header.payload_len,
                        fin: header.fin,
                    });
                    continue;
                }
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

    /// The agreement the driver derives too: a valid acceptance of one of
    /// the offers. An invalid answer leaves deflate off (the driver fails
    /// the handshake).
    fn negotiate(&mut self, resp: &Response) {
        let offers = self
            .shared
            .offers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let values: Vec<&str> = resp.headers("Sec-WebSocket-Extensions").collect();
        if let Ok(Some(agreed)) = deflate::check_response(&offers, &values) {
            // Inflating is bounded by the guard, not the buffer cap: an
            // inflated message above the cap is digested as it streams.
            let cap = usize::try_from(self.max_streamed).unwrap_or(usize::MAX);
            self.inflate = Some(Decompressor::new(&agreed, cap));
            self.server_window = agreed.server_max_window_bits;
        }
    }

    async fn violation(&self, v: String) {
        self.transcript.note(format!("protocol violation: {v}"));
        self.emit(Event::Violation(v)).await;
    }

    /// RFC 6455 rules for frames a server sends (§5.1-§5.6, §7.4), and
    /// RFC 7692's with permessage-deflate in force.
    fn check(&mut self, f: Frame, partial: &mut Option<Partial>) -> Result<Option<Event>, String> {
        if f.mask.is_some() {
            return Err("the target masked a frame (a server MUST NOT mask, RFC 6455 §5.1)".into());
        }
        let deflate = self.inflate.is_some();
        if f.rsv != 0 && !deflate {
            return Err(format!(
                "RSV bits {:03b} set with no extension negotiated (RFC 6455 §5.2)",
                f.rsv
            ));
        }
        if f.rsv & 0b011 != 0 {
            return Err(format!(
                "RSV bits {:03b} set: permessage-deflate defines only RSV1 (RFC 6455 §5.2)",
                f.rsv
            ));
        }
        if f.rsv != 0 && !matches!(f.opcode, Opcode::Text | Opcode::Binary) {
            return Err(format!(
                "RSV1 set on a {} frame: permessage-deflate allows it only on the first frame of a data message (RFC 7692 §6.1)",
                f.opcode
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
                        if !frame::is_valid_close_code(code) {
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
                let compressed = f.rsv != 0;
                let mut p = Partial {
                    kind,
                    payload: Vec::new(),
                    body: Body::new(kind == MessageType::Text, self.max, self.max_streamed),
                    frames: 1,
                    compressed,
                };
                if compressed {
                    p.payload = f.payload;
                } else {
                    p.body.push_vec(f.payload)?;
                }
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
                if p.compressed {
                    if (p.payload.len() + f.payload.len()) as u64 > self.max {
                        return Err(format!(
                            "compressed message grows past the harness cap of {} bytes",
                            self.max
                        ));
                    }
                    p.payload.extend_from_slice(&f.payload);
                } else {
                    p.body.push(&f.payload)?;
                }
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

    /// RFC 7692 §7.1.2.1: with `server_max_window_bits` agreed the server
    /// MUST NOT use a larger LZ77 window. The inflater does not notice (it
    /// keeps 32 KiB whatever it is told), so the references are measured
    /// in the compressed data. A 15-bit window is DEFLATE's own maximum.
    fn check_window(&self, compressed: &[u8]) -> Result<(), String> {
        if self.server_window >= 15 {
            return Ok(());
        }
        let window = 1u32 << self.server_window;
        let reach = lz77::reach(compressed);
        if reach.farthest > window {
            return Err(format!(
                "a compressed message refers {} bytes back, beyond the agreed window of {window} bytes (server_max_window_bits={}, RFC 7692 §7.1.2.1)",
                reach.farthest, self.server_window
            ));
        }
        Ok(())
    }

    fn finish(&mut self, p: Partial) -> Result<Event, String> {
        let body = if p.compressed {
            let inflate = self
                .inflate
                .as_mut()
                .ok_or("compressed message without deflate")?;
            let wire = p.payload.len();
            let mut body = Body::new(p.kind == MessageType::Text, self.max, self.max_streamed);
            let mut overflow = None;
            inflate
                .decompress_with(&p.payload, &mut |piece| {
                    if overflow.is_none()
                        && let Err(e) = body.push(piece)
                    {
                        overflow = Some(e);
                    }
                })
                .map_err(|e| match e {
                    InflateError::TooLarge { limit } => format!(
                        "a compressed message of {wire} bytes inflates past the harness cap of {limit} bytes"
                    ),
                    InflateError::Corrupt(e) => format!(
                        "a compressed message of {wire} bytes does not inflate (RFC 7692 §7.2.2): {e}"
                    ),
                })?;
            if let Some(e) = overflow {
                return Err(e);
            }
            self.check_window(&p.payload)?;
            if !self.shared.quiet.load(Ordering::SeqCst) {
                let shown = match &body.streamed {
                    Some(_) => preview(&body.head),
                    None => preview(&body.whole),
                };
                self.transcript.inbound(format!(
                    "  inflated {} to {}: {shown}",
                    crate::text::bytes(wire),
                    crate::text::bytes(body.len() as usize)
                ));
            }
            body
        } else {
            p.body
        };
        let after = if p.compressed { " after inflating" } else { "" };
        let (payload, digest) = body.finish(after)?;
        Ok(Event::Message {
            kind: p.kind,
            payload,
            frames: p.frames,
            compressed: p.compressed,
            digest,
        })
    }
}

/// The violation of a frame whose length is not minimally encoded.
fn non_minimal(h: &frame::Header) -> String {
    let field = match h.length_encoding {
        frame::LengthEncoding::Bits64 => "64-bit",
        _ => "16-bit",
    };
    format!(
        "{} frame of {} payload bytes with its length in a {field} field: the minimal number of bytes MUST be used (RFC 6455 §5.2)",
        h.opcode, h.payload_len
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::deflate::{Agreed, Compressor};
    use tokio::net::TcpListener;

    /// Reads a request head; `false` if the client went away first.
    async fn read_request_head(s: &mut tokio::net::TcpStream) -> bool {
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&b[..n]),
            }
        }
        true
    }

    /// A one-shot server: reads the request head, answers `response`, then
    /// writes `frames` and keeps the socket open for a moment.
    async fn serve(response: &'static str, frames: Vec<u8>) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            if !read_request_head(&mut s).await {
                return;
            }
            let _ = s.write_all(response.as_bytes()).await;
            let _ = s.write_all(&frames).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        });
        addr
    }

    const DEFLATE_101: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";

    fn frame(opcode: Opcode, rsv: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        frame::encode(&Frame {
            fin,
            rsv,
            opcode,
            mask: None,
            payload: payload.to_vec(),
        })
    }

    fn hello() -> Vec<u8> {
        Compressor::new(&Agreed::default()).compress(b"Hello")
    }

    /// The events after the response, with `offers` made and a harness cap
    /// of `max` bytes.
    async fn events_after(
        response: &'static str,
        frames: Vec<u8>,
        offers: &[&str],
        max: u64,
    ) -> Vec<Event> {
        let addr = serve(response, frames).await;
        let stream = Stream::Tcp(tokio::net::TcpStream::connect(addr).await.unwrap());
        let mut c = Conn::start(
            stream,
            Transcript::new(),
            Limits {
                io_timeout: Duration::from_millis(300),
                max_message: max,
                max_streamed: max,
            },
        );
        c.set_offers(deflate::offers_in(offers));
        c.write(b"GET / HTTP/1.1\r\n\r\n", None).await.unwrap();
        let until = Instant::now() + Duration::from_secs(2);
        assert!(matches!(c.next(until).await, Some(Event::Response(_))));
        let mut out = Vec::new();
        while let Some(ev) = c.next(until).await {
            let end = matches!(ev, Event::Violation(_) | Event::Closed(_));
            out.push(ev);
            if end {
                break;
            }
        }
        out
    }

    fn violation(events: &[Event]) -> &str {
        match events.last() {
            Some(Event::Violation(v)) => v,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn compressed_messages_are_inflated() {
        let z = hello();
        let mut frames = frame(Opcode::Text, 4, false, &z[..2]);
        frames.extend(frame(Opcode::Ping, 0, true, b"p"));
        frames.extend(frame(Opcode::Continuation, 0, true, &z[2..]));
        frames.extend(frame(Opcode::Binary, 0, true, b"plain"));
        let ev = events_after(DEFLATE_101, frames, &["permessage-deflate"], 1 << 20).await;
        assert_eq!(ev[0], Event::Ping(b"p".to_vec()));
        assert_eq!(
            ev[1],
            Event::Message {
                kind: MessageType::Text,
                payload: b"Hello".to_vec(),
                frames: 2,
                compressed: true,
                digest: None,
            }
        );
        assert!(
            matches!(&ev[2], Event::Message { compressed: false, payload, .. } if payload == b"plain")
        );
    }

    #[tokio::test]
    async fn rsv1_is_allowed_only_on_the_first_frame_of_a_data_message() {
        let z = hello();
        let mut frames = frame(Opcode::Text, 4, false, &z[..2]);
        frames.extend(frame(Opcode::Continuation, 4, true, &z[2..]));
        let ev = events_after(DEFLATE_101, frames, &["permessage-deflate"], 1 << 20).await;
        assert!(violation(&ev).contains("RSV1 set on a continuation frame"));

        let frames = frame(Opcode::Ping, 4, true, b"p");
        let ev = events_after(DEFLATE_101, frames, &["permessage-deflate"], 1 << 20).await;
        assert!(violation(&ev).contains("RSV1 set on a ping frame"));

        let frames = frame(Opcode::Text, 6, true, &z);
        let ev = events_after(DEFLATE_101, frames, &["permessage-deflate"], 1 << 20).await;
        assert!(violation(&ev).contains("defines only RSV1"));
    }

    #[tokio::test]
    async fn rsv1_without_an_agreement_is_a_violation() {
        // Not offered: the reader does not take the answer as an agreement
        // (the driver fails the handshake).
        let frames = frame(Opcode::Text, 4, true, &hello());
        let ev = events_after(DEFLATE_101, frames, &[], 1 << 20).await;
        assert!(violation(&ev).contains("no extension negotiated"));
    }

    #[tokio::test]
    async fn corrupt_oversized_and_invalid_utf8_messages_are_violations() {
        let frames = frame(Opcode::Binary, 4, true, &[0xff, 0xff]);
        let ev = events_after(DEFLATE_101, frames, &["permessage-deflate"], 1 << 20).await;
        assert!(violation(&ev).contains("does not inflate"));

        let bomb = deflate::zeros_payload(15, 3 << 20);
        let frames = frame(Opcode::Binary, 4, true, &bomb);
        let ev = events_after(DEFLATE_101, frames, &["permessage-deflate"], 1 << 20).await;
        assert!(violation(&ev).contains("inflates past the harness cap of 1048576 bytes"));

        let bad = Compressor::new(&Agreed::default()).compress(b"ok \xed\xa0\x80 not");
        let frames = frame(Opcode::Text, 4, true, &bad);
        let ev = events_after(DEFLATE_101, frames, &["permessage-deflate"], 1 << 20).await;
        assert!(violation(&ev).contains("not valid UTF-8 after inflating"));
    }

    const PLAIN_101: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n";

    #[tokio::test]
    async fn non_minimal_lengths_are_violations_in_every_frame() {
        use frame::LengthEncoding::{Bits16, Bits64};
        let cases = [
            (
                Frame::text(vec![b'a'; 5]),
                Bits16,
                "text frame of 5 payload bytes with its length in a 16-bit field",
            ),
            (
                Frame::binary(vec![0; 125]),
                Bits64,
                "binary frame of 125 payload bytes with its length in a 64-bit field",
            ),
            (
                Frame::binary(vec![0; 200]),
                Bits64,
                "binary frame of 200 payload bytes with its length in a 64-bit field",
            ),
            (Frame::pong(""), Bits16, "pong frame of 0 payload bytes"),
            (
                Frame::close(Some(1000), b""),
                Bits64,
                "close frame of 2 payload bytes",
            ),
        ];
        for (f, enc, want) in cases {
            let mut frames = Vec::new();
            frame::encode_into(&f, enc, None, &mut frames);
            let ev = events_after(PLAIN_101, frames, &[], 1 << 20).await;
            let v = violation(&ev);
            assert!(v.contains(want), "{v}");
            assert!(v.contains("RFC 6455 §5.2"), "{v}");
        }
        // Minimal encodings at the boundaries pass.
        let mut frames = Vec::new();
        for len in [0usize, 125, 126, 65535, 65536] {
            frames.extend(frame::encode(&Frame::binary(vec![1; len])));
        }
        let ev = events_after(PLAIN_101, frames, &[], 1 << 20).await;
        let messages = ev
            .iter()
            .filter(|e| matches!(e, Event::Message { .. }))
            .count();
        assert_eq!(messages, 5, "{ev:?}");
        assert!(!ev.iter().any(|e| matches!(e, Event::Violation(_))));
    }

    /// A target that sends close 1009 and stops reading: a write blocked on
    /// it ends as soon as the close is read (not after the stall timeout),
    /// and the close is there for the expectations.
    #[tokio::test]
    async fn a_close_while_a_write_is_blocked_ends_the_write() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            if !read_request_head(&mut s).await {
                return;
            }
            let _ = s.write_all(PLAIN_101.as_bytes()).await;
            let _ = s
                .write_all(&frame::encode(&Frame::close(Some(1009), b"")))
                .await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let stream = Stream::Tcp(tokio::net::TcpStream::connect(addr).await.unwrap());
        let limits = Limits {
            io_timeout: Duration::from_secs(3),
            max_message: 1 << 20,
            max_streamed: 1 << 20,
        };
        let mut c = Conn::start(stream, Transcript::new(), limits);
        c.write(b"GET / HTTP/1.1\r\n\r\n", None).await.unwrap();
        let started = Instant::now();
        // Far more than socket buffers hold: the write blocks.
        c.write(&vec![0u8; 64 << 20], None).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
        let until = Instant::now() + Duration::from_secs(2);
        assert!(matches!(c.next(until).await, Some(Event::Response(_))));
        assert!(matches!(
            c.next(until).await,
            Some(Event::Close {
                code: Some(1009),
                ..
            })
        ));
        // Later writes are skipped.
        c.write(b"more", None).await.unwrap();
    }

    #[tokio::test]
    async fn references_beyond_the_agreed_server_window_are_violations() {
        let response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9\r\n\r\n";
        // 600 incompressible bytes twice: the second copy is 600 bytes back.
        let noise: Vec<u8> = crate::wire::generator::pattern(600);
        let message = noise.repeat(2);
        let offer = ["permessage-deflate; server_max_window_bits=9"];
        let wide = Compressor::with_params(15, false, 6).compress(&message);
        let ev = events_after(
            response,
            frame(Opcode::Binary, 4, true, &wide),
            &offer,
            1 << 20,
        )
        .await;
        let v = violation(&ev);
        assert!(
            v.contains("refers 600 bytes back, beyond the agreed window of 512 bytes"),
            "{v}"
        );
        // Within the window (zlib with 9 bits) it inflates and passes.
        let narrow = Compressor::with_params(9, false, 6).compress(&message);
        let ev = events_after(
            response,
            frame(Opcode::Binary, 4, true, &narrow),
            &offer,
            1 << 20,
        )
        .await;
        assert!(
            matches!(&ev[0], Event::Message { payload, .. } if *payload == message),
            "{ev:?}"
        );
    }

    #[tokio::test]
    async fn server_no_context_takeover_means_a_fresh_inflater() {
        let response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n";
        // A server that keeps its context anyway refers back into the
        // previous message.
        let mut c = Compressor::new(&Agreed::default());
        let mut frames = frame(Opcode::Text, 4, true, &c.compress(b"Hello"));
        frames.extend(frame(Opcode::Text, 4, true, &c.compress(b"Hello")));
        let ev = events_after(
            response,
            frames,
            &["permessage-deflate; server_no_context_takeover"],
            1 << 20,
        )
        .await;
        assert!(matches!(&ev[0], Event::Message { payload, .. } if payload == b"Hello"));
        assert!(violation(&ev).contains("does not inflate"));
    }
}
