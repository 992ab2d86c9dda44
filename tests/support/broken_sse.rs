//! A deliberately simple Server-Sent Events server over raw TCP with exactly
//! one injected fault, used to prove that the `sse.*` case families can fail.
//!
//! It is independent of the reference server and of any HTTP library:
//! requests are parsed with `httparse`, responses written by hand. It
//! implements the pushspec target contract:
//!
//! - `GET /events`: `200 text/event-stream`, chunked, `retry:` first, then
//!   events as published (`id:` + one `data:` line per line of the data,
//!   split on CR, LF and CRLF), a `: keep-alive` comment after
//!   [`KEEPALIVE`] of silence; `Last-Event-ID` replays the events published
//!   after that id (an unknown id gets a comment and live events); after
//!   `finish`, 204. With `Accept-Encoding: gzip` the stream is gzipped
//!   (stored deflate blocks, flushed per write, so no compression library
//!   is needed).
//! - `POST /publish`: the body is the data of a new event, `Event-Id` may
//!   choose its id; answers 200 with the id.
//! - `POST /finish`: ends every stream; later `GET /events` get 204.
//!
//! With [`Fault::None`] it passes every `sse.*` family; every other variant
//! breaks exactly one rule. Every read has a timeout, every buffer a cap.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::time::Instant;

/// The one rule the server breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Behaves correctly: proves the fixture itself passes the families.
    None,
    /// `Content-Type: text/plain`.
    WrongContentType,
    /// Answers 406 to `Accept: */*`.
    NotAcceptableForAny,
    /// Holds the response head back until the first event (or 1.5 s).
    HeadersOnFirstEvent,
    /// Declares `Content-Length` on the stream.
    ContentLength,
    /// `Cache-Control: public, max-age=3600`.
    Cacheable,
    /// Writes the data in one `data:` line, raw newlines included.
    RawNewlineInData,
    /// Splits data on LF only: a lone CR stays inside the line.
    CrNotSplit,
    /// Splits data on every character Python's `str.splitlines()` treats
    /// as a line end (VT, FF, U+001C..U+001E, NEL, U+2028, U+2029), not
    /// only on CR, LF and CRLF.
    SplitsUnicodeLines,
    /// Writes `data:` + line, without the space: a leading space is lost.
    NoSpaceAfterColon,
    /// Drops the empty last line of data ending in a newline (like
    /// Python's `splitlines()`).
    DropsTrailingNewline,
    /// Encodes the stream as Latin-1 instead of UTF-8.
    Latin1,
    /// Begins a comment line before each event with U+FEFF (as when
    /// streams are concatenated).
    BomMidStream,
    /// Writes `Event: message` (wrong case) before each event's data.
    MiscasedField,
    /// Writes a `source: fixture` field in each event.
    UnknownField,
    /// Writes `id: bad<NUL>` before each event's real id.
    IdWithNul,
    /// `retry: 1.5` (seconds, as a fraction).
    RetryFraction,
    /// Ends lines with a lone CR.
    CrLineEndings,
    /// Not a fault: ends lines with CRLF and holds back the LF of every
    /// write's last CRLF for [`SPLIT_DELAY`] (or until the next write), so
    /// a CRLF is split across chunks that arrive 120 ms apart. A checker
    /// must never judge such a CR as a lone CR.
    SplitCrlf,
    /// Events carry no `id`.
    NoIds,
    /// Ignores `Last-Event-ID`: no replay.
    IgnoresLastEventId,
    /// Replays from the event with the given id itself (a duplicate).
    DuplicateOnResume,
    /// Answers 500 to an unknown `Last-Event-ID`.
    UnknownIdIs500,
    /// Replays the whole history to a request without `Last-Event-ID`.
    ReplaysToFreshStreams,
    /// Streams opened with `Last-Event-ID` begin with `retry: 1.5` (fresh
    /// streams are correct): framing broken only on resumed streams.
    RetryFractionOnResume,
    /// Keep-alives are sent as `data: keep-alive` events, not comments.
    KeepaliveAsData,
    /// Greets every stream with an `event: welcome` nobody published (a
    /// target that does this on purpose declares it in its profile).
    WelcomeEvent,
    /// After a replay, sends the oldest event of its history again.
    ReplaysOldEvent,
    /// Replays at most the last [`REPLAY_CAP`] events after the given id,
    /// silently (a short replay buffer that does not say it lost events).
    ReplayCapped,
    /// A resumed stream takes its replay snapshot, then subscribes to live
    /// events [`SUBSCRIBE_GAP`] later: events published in between are lost.
    SubscribeGap,
    /// Reads `Last-Event-ID` only in exactly that letter case.
    CaseSensitiveLastEventId,
    /// Answers 500 to a numeric `Last-Event-ID` beyond the newest id (an
    /// index past the end of its buffer).
    FutureIdIs500,
    /// Resumes by comparing numbers (`id > N`) instead of looking the id
    /// up: a numeric `Last-Event-ID` it never issued (0, -1) replays its
    /// whole history. Its history starts with two events of its own, so
    /// the replay is never a lone event that could pass for a marker.
    NumericResume,
    /// Events published while another publish is in flight reach every
    /// other stream in swapped pairs: subscribers see concurrent events in
    /// different orders (per-subscriber delivery not serialized).
    ReordersConcurrent,
    /// Replayed events carry new ids (`<id>.replayed`), not the ones they
    /// were first sent with.
    ReplayRenumbers,
    /// Holds each event back until the next one is published.
    OneBehind,
    /// Writes every live event twice, as a server subscribed twice to its
    /// own feed does.
    DuplicatesLiveEvents,
    /// Answers streams with `202 Accepted` instead of `200 OK` (an
    /// EventSource fails the connection on any status but 200).
    Status202,
    /// With gzip, flushes the compressed stream only every 4 events.
    GzipBuffered,
    /// Writes events in batches, [`BATCH_DELAY`] after the first of a batch.
    BatchesOutput,
    /// Sends no keep-alive comments.
    NoKeepalive,
    /// Sends keep-alive comments only until the stream's first event.
    NoKeepaliveAfterEvents,
    /// On finish, sends a last event without its blank line.
    IncompleteLastEvent,
    /// Hostile: never answers a stream request.
    NeverAnswers,
    /// Hostile: answers a stream request with garbage.
    GarbageHead,
    /// Hostile: a valid head, trickled one byte every 100 ms.
    TrickledHead,
    /// Hostile: an endless line without a line ending.
    EndlessLine,
    /// Hostile: a chunk size that does not fit in 64 bits.
    ChunkSizeOverflow,
    /// Hostile: a 1 MiB id, then floods of tiny events that all inherit it
    /// (a harness that copies the id into every event runs out of memory).
    HugeIdFlood,
    /// Hostile: comment lines without end, a few every millisecond: bytes
    /// never stop arriving, yet no event ever comes.
    CommentFlood,
}

/// Idle time before a keep-alive comment.
pub const KEEPALIVE: Duration = Duration::from_millis(200);
/// How long a request head may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one write may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 8 << 20;
/// [`Fault::HeadersOnFirstEvent`] sends the head after this long anyway.
const HEAD_DELAY: Duration = Duration::from_millis(1500);
/// How long [`Fault::SplitCrlf`] holds back the LF of a CRLF.
const SPLIT_DELAY: Duration = Duration::from_millis(120);
/// How long [`Fault::SubscribeGap`] leaves between replay and live.
const SUBSCRIBE_GAP: Duration = Duration::from_millis(200);
/// [`Fault::ReplayCapped`] replays at most this many events.
const REPLAY_CAP: usize = 100;
/// How long [`Fault::BatchesOutput`] holds the first event of a batch.
const BATCH_DELAY: Duration = Duration::from_millis(300);
/// [`Fault::GzipBuffered`] flushes after this many events.
const GZIP_BATCH: usize = 4;

#[derive(Clone, Debug)]
enum Msg {
    Event(Arc<(String, String)>),
    Finish,
}

struct State {
    events: Vec<Arc<(String, String)>>,
    next_id: u64,
    finished: bool,
    /// Publish requests being handled ([`Fault::ReordersConcurrent`]).
    inflight: usize,
    /// Ids of events published while another publish was in flight.
    concurrent: std::collections::HashSet<String>,
    /// Streams opened so far.
    streams: u64,
}

struct Hub {
    fault: Fault,
    state: Mutex<State>,
    tx: broadcast::Sender<Msg>,
}

/// Starts the fixture on a loopback port; it runs until the test's runtime ends.
pub async fn spawn(fault: Fault) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, _) = broadcast::channel(4096);
    let history: Vec<Arc<(String, String)>> = if fault == Fault::NumericResume {
        ["1", "2"]
            .iter()
            .map(|id| Arc::new((id.to_string(), format!("fixture history {id}"))))
            .collect()
    } else {
        Vec::new()
    };
    let hub = Arc::new(Hub {
        fault,
        state: Mutex::new(State {
            next_id: history.len() as u64 + 1,
            events: history,
            finished: false,
            inflight: 0,
            concurrent: Default::default(),
            streams: 0,
        }),
        tx,
    });
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let hub = hub.clone();
            tokio::spawn(async move {
                let _ = serve(sock, hub).await;
            });
        }
    });
    addr
}

struct Req {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

async fn read_request(sock: &mut TcpStream) -> Option<Req> {
    let mut buf = Vec::new();
    let deadline = Instant::now() + READ_TIMEOUT;
    let (head, n) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = r.parse(&buf) {
            let head = Req {
                method: r.method?.to_string(),
                path: r.path?.to_string(),
                headers: r
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), h.value.to_vec()))
                    .collect(),
                body: Vec::new(),
            };
            break (head, n);
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let got = tokio::time::timeout_at(deadline, sock.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if got == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..got]);
    };
    let mut req = head;
    let len: usize = req
        .header("content-length")
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
        .unwrap_or(0);
    if len > MAX_BODY {
        return None;
    }
    let mut body = buf[n..].to_vec();
    while body.len() < len {
        let mut chunk = vec![0u8; 64 * 1024];
        let got = tokio::time::timeout_at(deadline, sock.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if got == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..got]);
    }
    body.truncate(len);
    req.body = body;
    Some(req)
}

async fn write(sock: &mut (impl AsyncWriteExt + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, sock.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

async fn respond(sock: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    write(sock, text.as_bytes()).await?;
    let _ = sock.shutdown().await;
    Ok(())
}

async fn serve(mut sock: TcpStream, hub: Arc<Hub>) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let Some(req) = read_request(&mut sock).await else {
        return Ok(());
    };
    let path = req.path.split('?').next().unwrap_or("");
    match (req.method.as_str(), path) {
        ("GET", "/events") => stream(sock, &hub, &req).await,
        ("POST", "/publish") => {
            let Ok(data) = String::from_utf8(req.body.clone()) else {
                return respond(&mut sock, "400 Bad Request", "body must be UTF-8").await;
            };
            let explicit = req
                .header("event-id")
                .map(|v| String::from_utf8_lossy(v).into_owned());
            if hub.fault == Fault::ReordersConcurrent {
                // Stays in flight a while, so concurrent publishes overlap.
                hub.state.lock().unwrap().inflight += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let id = {
                let mut st = hub.state.lock().unwrap();
                if hub.fault == Fault::ReordersConcurrent {
                    st.inflight -= 1;
                }
                let id = match explicit {
                    Some(id) => id,
                    None => {
                        st.next_id += 1;
                        (st.next_id - 1).to_string()
                    }
                };
                if hub.fault == Fault::ReordersConcurrent && st.inflight > 0 {
                    st.concurrent.insert(id.clone());
                }
                let ev = Arc::new((id.clone(), data));
                st.events.push(ev.clone());
                let _ = hub.tx.send(Msg::Event(ev));
                id
            };
            respond(&mut sock, "200 OK", &id).await
        }
        ("POST", "/finish") => {
            {
                let mut st = hub.state.lock().unwrap();
                st.finished = true;
                let _ = hub.tx.send(Msg::Finish);
            }
            respond(&mut sock, "204 No Content", "").await
        }
        _ => respond(&mut sock, "404 Not Found", "not found").await,
    }
}

/// Publishes one event through `addr`'s publish endpoint, so that the
/// history is never empty when a case runs (a fault that replays history
/// must show in every case, including the first to run).
pub async fn seed(addr: SocketAddr) {
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    let body = "pushspec-test seed";
    let req = format!(
        "POST /publish HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    write(&mut sock, req.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(READ_TIMEOUT, sock.read_to_end(&mut reply)).await;
    assert!(reply.starts_with(b"HTTP/1.1 200"), "seed publish failed");
}

/// Splits on CRLF, CR and LF; a trailing terminator gives a last empty line.
fn split_lines(s: &str, fault: Fault) -> Vec<String> {
    match fault {
        Fault::RawNewlineInData => return vec![s.to_string()],
        Fault::CrNotSplit => {
            return s
                .split('\n')
                .map(|l| l.trim_end_matches('\r').to_string())
                .collect();
        }
        _ => {}
    }
    let mut lines = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut cur));
            }
            '\n' => lines.push(std::mem::take(&mut cur)),
            '\u{0B}' | '\u{0C}' | '\u{1C}' | '\u{1D}' | '\u{1E}' | '\u{85}' | '\u{2028}'
            | '\u{2029}'
                if fault == Fault::SplitsUnicodeLines =>
            {
                lines.push(std::mem::take(&mut cur))
            }
            c => cur.push(c),
        }
    }
    lines.push(cur);
    if fault == Fault::DropsTrailingNewline
        && lines.len() > 1
        && lines.last().is_some_and(String::is_empty)
    {
        lines.pop();
    }
    lines
}

fn eol(fault: Fault) -> &'static str {
    match fault {
        Fault::CrLineEndings => "\r",
        Fault::SplitCrlf => "\r\n",
        _ => "\n",
    }
}

fn encode_text(text: &str, fault: Fault) -> Vec<u8> {
    if fault == Fault::Latin1 {
        text.chars()
            .map(|c| if (c as u32) < 256 { c as u8 } else { b'?' })
            .collect()
    } else {
        text.as_bytes().to_vec()
    }
}

fn encode_event(id: &str, data: &str, fault: Fault) -> Vec<u8> {
    let nl = eol(fault);
    let mut s = String::new();
    if fault == Fault::BomMidStream {
        s.push_str(&format!("\u{FEFF}: next event{nl}"));
    }
    if fault == Fault::IdWithNul {
        s.push_str(&format!("id: bad\0{nl}"));
    }
    if fault != Fault::NoIds {
        s.push_str(&format!("id: {id}{nl}"));
    }
    if fault == Fault::MiscasedField {
        s.push_str(&format!("Event: message{nl}"));
    }
    if fault == Fault::UnknownField {
        s.push_str(&format!("source: fixture{nl}"));
    }
    let sep = if fault == Fault::NoSpaceAfterColon {
        "data:"
    } else {
        "data: "
    };
    for line in split_lines(data, fault) {
        s.push_str(&format!("{sep}{line}{nl}"));
    }
    s.push_str(nl);
    encode_text(&s, fault)
}

/// A gzip member made of stored (uncompressed) deflate blocks: valid gzip
/// that any decoder reads, written without a compression library.
struct Gzip {
    crc: u32,
    len: u32,
}

impl Gzip {
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

    fn block(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 8);
        for piece in data.chunks(65535) {
            let n = piece.len() as u16;
            out.push(0); // BFINAL = 0, BTYPE = 00 (stored), byte-aligned
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&(!n).to_le_bytes());
            out.extend_from_slice(piece);
        }
        self.crc = crc32(self.crc, data);
        self.len = self.len.wrapping_add(data.len() as u32);
        out
    }

    fn finish(&self) -> Vec<u8> {
        let mut out = vec![1, 0, 0, 0xff, 0xff]; // final empty stored block
        out.extend_from_slice(&self.crc.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out
    }
}

fn crc32(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// The stream's output: head (possibly held back), transfer framing,
/// optional gzip, and the fault's buffering.
struct Out {
    sock: OwnedWriteHalf,
    fault: Fault,
    head: Option<Vec<u8>>,
    chunked: bool,
    gzip: Option<Gzip>,
    /// Compressed bytes not written yet ([`Fault::GzipBuffered`]).
    gz_pending: Vec<u8>,
    gz_events: usize,
    /// The event held back ([`Fault::OneBehind`]).
    held: Option<Vec<u8>>,
    /// The LF of the last CRLF written is held back ([`Fault::SplitCrlf`]).
    held_lf: bool,
}

impl Out {
    async fn flush_head(&mut self) -> std::io::Result<()> {
        if let Some(h) = self.head.take() {
            write(&mut self.sock, &h).await?;
        }
        Ok(())
    }

    /// Writes body bytes through gzip and chunking.
    async fn body(&mut self, bytes: &[u8], event: bool) -> std::io::Result<()> {
        let mut split = Vec::new();
        let mut bytes = bytes;
        if self.fault == Fault::SplitCrlf {
            if std::mem::take(&mut self.held_lf) {
                split.push(b'\n');
            }
            split.extend_from_slice(bytes);
            if split.ends_with(b"\r\n") {
                split.pop();
                self.held_lf = true;
            }
            bytes = &split;
        }
        let mut wire = match &mut self.gzip {
            Some(gz) => {
                let b = gz.block(bytes);
                if self.fault == Fault::GzipBuffered {
                    self.gz_pending.extend_from_slice(&b);
                    if event {
                        self.gz_events += 1;
                    }
                    if self.gz_events < GZIP_BATCH {
                        return Ok(());
                    }
                    self.gz_events = 0;
                    std::mem::take(&mut self.gz_pending)
                } else {
                    b
                }
            }
            None => bytes.to_vec(),
        };
        if self.chunked {
            let mut c = format!("{:x}\r\n", wire.len()).into_bytes();
            c.append(&mut wire);
            c.extend_from_slice(b"\r\n");
            wire = c;
        }
        self.flush_head().await?;
        write(&mut self.sock, &wire).await
    }

    async fn event(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        if self.fault == Fault::OneBehind {
            match self.held.replace(bytes) {
                Some(prev) => self.body(&prev, true).await,
                None => Ok(()),
            }
        } else {
            self.body(&bytes, true).await
        }
    }

    /// Writes the LF held back by [`Fault::SplitCrlf`].
    async fn release_lf(&mut self) -> std::io::Result<()> {
        if self.held_lf {
            self.body(b"", false).await?;
        }
        Ok(())
    }

    async fn end(&mut self) -> std::io::Result<()> {
        self.release_lf().await?;
        if let Some(prev) = self.held.take() {
            self.body(&prev, true).await?;
        }
        if let Some(gz) = &self.gzip {
            let tail = gz.finish();
            let mut wire = std::mem::take(&mut self.gz_pending);
            wire.extend_from_slice(&tail);
            self.gzip = None;
            self.body(&wire, false).await?;
        }
        if self.chunked {
            self.flush_head().await?;
            write(&mut self.sock, b"0\r\n\r\n").await?;
        }
        Ok(())
    }
}

async fn stream(mut sock: TcpStream, hub: &Hub, req: &Req) -> std::io::Result<()> {
    let fault = hub.fault;
    match fault {
        Fault::NeverAnswers => {
            let mut sink = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(30), sock.read(&mut sink)).await;
            return Ok(());
        }
        Fault::GarbageHead => {
            write(&mut sock, b"HELLO THERE\r\n\xff\xfe\r\n\r\n").await?;
            return Ok(());
        }
        Fault::TrickledHead => {
            let head =
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
            for b in head {
                write(&mut sock, &[*b]).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            return Ok(());
        }
        _ => {}
    }
    if fault == Fault::NotAcceptableForAny && req.header("accept") == Some(b"*/*") {
        return respond(&mut sock, "406 Not Acceptable", "text/event-stream only").await;
    }
    let last_id = if fault == Fault::CaseSensitiveLastEventId {
        req.headers
            .iter()
            .find(|(n, _)| n == "Last-Event-ID")
            .map(|(_, v)| v.as_slice())
    } else {
        req.header("last-event-id")
    }
    .map(|v| String::from_utf8_lossy(v).into_owned());
    let gap = fault == Fault::SubscribeGap && last_id.is_some();
    let (mut replay, unknown, rx, finished, number) = {
        let mut st = hub.state.lock().unwrap();
        st.streams += 1;
        let number = st.streams;
        let mut replay = Vec::new();
        let mut unknown = false;
        match &last_id {
            Some(_) if fault == Fault::IgnoresLastEventId => {}
            Some(id) => match st.events.iter().position(|e| &e.0 == id) {
                Some(pos) => {
                    let from = if fault == Fault::DuplicateOnResume {
                        pos
                    } else {
                        pos + 1
                    };
                    let from = if fault == Fault::ReplayCapped {
                        from.max(st.events.len().saturating_sub(REPLAY_CAP))
                    } else {
                        from
                    };
                    replay.extend(st.events[from..].iter().cloned());
                }
                None => match id.parse::<i128>() {
                    Ok(n) if fault == Fault::NumericResume => replay.extend(
                        st.events
                            .iter()
                            .filter(|e| e.0.parse::<i128>().is_ok_and(|i| i > n))
                            .cloned(),
                    ),
                    _ => unknown = true,
                },
            },
            None if fault == Fault::ReplaysToFreshStreams => {
                replay.extend(st.events.iter().cloned())
            }
            None => {}
        }
        let rx = (!gap).then(|| hub.tx.subscribe());
        (replay, unknown, rx, st.finished, number)
    };
    // [`Fault::ReordersConcurrent`]: odd streams swap concurrent events in pairs.
    let swaps = fault == Fault::ReordersConcurrent && number % 2 == 1;
    let mut swap_held: Option<Vec<u8>> = None;
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut batch_since = Instant::now();
    let rx = match rx {
        Some(rx) => rx,
        None => {
            tokio::time::sleep(SUBSCRIBE_GAP).await;
            hub.tx.subscribe()
        }
    };
    if finished {
        return respond(&mut sock, "204 No Content", "").await;
    }
    let oldest = hub.state.lock().unwrap().events.first().cloned();
    if fault == Fault::ReplaysOldEvent
        && last_id.is_some()
        && !unknown
        && let Some(oldest) = oldest
    {
        replay.push(oldest);
    }
    let future = last_id
        .as_deref()
        .and_then(|id| id.parse::<u64>().ok())
        .is_some_and(|n| n >= hub.state.lock().unwrap().next_id);
    if unknown && (fault == Fault::UnknownIdIs500 || fault == Fault::FutureIdIs500 && future) {
        return respond(&mut sock, "500 Internal Server Error", "unknown id").await;
    }
    let gzip = req.header("accept-encoding").is_some_and(|v| {
        String::from_utf8_lossy(v)
            .to_ascii_lowercase()
            .contains("gzip")
    });
    let mut head = String::from(if fault == Fault::Status202 {
        "HTTP/1.1 202 Accepted\r\n"
    } else {
        "HTTP/1.1 200 OK\r\n"
    });
    head.push_str(if fault == Fault::WrongContentType {
        "Content-Type: text/plain\r\n"
    } else {
        "Content-Type: text/event-stream; charset=utf-8\r\n"
    });
    head.push_str(if fault == Fault::Cacheable {
        "Cache-Control: public, max-age=3600\r\n"
    } else {
        "Cache-Control: no-cache\r\n"
    });
    let chunked = !matches!(
        fault,
        Fault::ContentLength | Fault::EndlessLine | Fault::ChunkSizeOverflow
    );
    match fault {
        Fault::ContentLength => head.push_str("Content-Length: 100000000\r\n"),
        Fault::ChunkSizeOverflow => head.push_str("Transfer-Encoding: chunked\r\n"),
        _ if chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        _ => head.push_str("Connection: close\r\n"),
    }
    if gzip {
        head.push_str("Content-Encoding: gzip\r\n");
    }
    head.push_str("\r\n");
    let (mut rd, wr) = sock.into_split();
    let mut out = Out {
        sock: wr,
        fault,
        head: Some(head.into_bytes()),
        chunked,
        gzip: None,
        gz_pending: Vec::new(),
        gz_events: 0,
        held: None,
        held_lf: false,
    };
    match fault {
        Fault::EndlessLine => {
            out.flush_head().await?;
            write(&mut out.sock, b"data: ").await?;
            let junk = vec![b'x'; 64 * 1024];
            // At most 1 GiB, then give up: the harness must stop first.
            for _ in 0..16 * 1024 {
                write(&mut out.sock, &junk).await?;
            }
            return Ok(());
        }
        Fault::HugeIdFlood => {
            out.flush_head().await?;
            let mut id = b"id: ".to_vec();
            id.resize(4 + (1 << 20), b'a');
            id.extend_from_slice(b"\n\n");
            out.body(&id, false).await?;
            let burst = b"data:x\n\n".repeat(2048);
            // 64 MiB at most, then give up: the harness must stop first.
            for _ in 0..4096 {
                out.body(&burst, false).await?;
            }
            return Ok(());
        }
        Fault::CommentFlood => {
            out.flush_head().await?;
            // Two minutes at most, then give up: the harness must stop first.
            for _ in 0..120_000 {
                out.body(b": flood\n: flood\n", false).await?;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            return Ok(());
        }
        Fault::ChunkSizeOverflow => {
            out.flush_head().await?;
            write(&mut out.sock, b"10000000000000000\r\ndata: x\n\n").await?;
            let mut sink = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(10), rd.read(&mut sink)).await;
            return Ok(());
        }
        _ => {}
    }
    let hold_head = fault == Fault::HeadersOnFirstEvent;
    if !hold_head {
        out.flush_head().await?;
    }
    if gzip {
        out.body(&Gzip::HEADER, false).await?;
        out.gzip = Some(Gzip { crc: 0, len: 0 });
    }
    let retry = if fault == Fault::RetryFraction
        || fault == Fault::RetryFractionOnResume && last_id.is_some()
    {
        "1.5"
    } else {
        "1000"
    };
    let mut prelude = encode_text(&format!("retry: {retry}{nl}{nl}", nl = eol(fault)), fault);
    if fault == Fault::WelcomeEvent {
        prelude.extend_from_slice(b"event: welcome\ndata: hello\n\n");
    }
    if !hold_head {
        out.body(&prelude, false).await?;
    }
    if unknown {
        out.body(
            format!(": unknown Last-Event-ID{nl}{nl}", nl = eol(fault)).as_bytes(),
            false,
        )
        .await?;
    }
    for ev in replay {
        let id = if fault == Fault::ReplayRenumbers {
            format!("{}.replayed", ev.0)
        } else {
            ev.0.clone()
        };
        out.event(encode_event(&id, &ev.1, fault)).await?;
    }
    let mut rx = rx;
    let started = Instant::now();
    let mut head_sent = !hold_head;
    let mut carried_events = false;
    let mut sink = [0u8; 1024];
    loop {
        let idle = if !head_sent {
            (started + HEAD_DELAY).saturating_duration_since(Instant::now())
        } else if out.held_lf {
            SPLIT_DELAY
        } else if swap_held.is_some() {
            Duration::from_millis(100)
        } else if !batch.is_empty() {
            (batch_since + BATCH_DELAY).saturating_duration_since(Instant::now())
        } else if fault == Fault::NoKeepalive
            || fault == Fault::NoKeepaliveAfterEvents && carried_events
        {
            Duration::from_secs(3600)
        } else {
            KEEPALIVE
        };
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(Msg::Event(ev)) => {
                    if !head_sent {
                        out.body(&prelude, false).await?;
                        head_sent = true;
                    }
                    let bytes = encode_event(&ev.0, &ev.1, fault);
                    if fault == Fault::BatchesOutput {
                        if batch.is_empty() {
                            batch_since = Instant::now();
                        }
                        batch.push(bytes);
                        carried_events = true;
                        continue;
                    }
                    let concurrent = swaps && hub.state.lock().unwrap().concurrent.contains(&ev.0);
                    match swap_held.take() {
                        None if concurrent => swap_held = Some(bytes),
                        Some(held) if concurrent => {
                            out.event(bytes).await?;
                            out.event(held).await?;
                        }
                        held => {
                            if let Some(held) = held {
                                out.event(held).await?;
                            }
                            if fault == Fault::DuplicatesLiveEvents {
                                out.event(bytes.clone()).await?;
                            }
                            out.event(bytes).await?;
                        }
                    }
                    carried_events = true;
                }
                Ok(Msg::Finish) | Err(_) => {
                    if fault == Fault::IncompleteLastEvent {
                        out.body(b"id: farewell\ndata: the end\n", false).await?;
                    }
                    out.end().await?;
                    return Ok(());
                }
            },
            _ = tokio::time::sleep(idle) => {
                if !head_sent {
                    out.body(&prelude, false).await?;
                    head_sent = true;
                } else if out.held_lf {
                    out.release_lf().await?;
                } else if let Some(held) = swap_held.take() {
                    out.event(held).await?;
                } else if !batch.is_empty() {
                    for held in std::mem::take(&mut batch) {
                        out.event(held).await?;
                    }
                } else if fault == Fault::KeepaliveAsData {
                    out.body(b"data: keep-alive\n\n", false).await?;
                } else {
                    out.body(format!(": keep-alive{nl}{nl}", nl = eol(fault)).as_bytes(), false).await?;
                }
            }
            // The client went away (EOF or error): stop.
            r = rd.read(&mut sink) => {
                if matches!(r, Ok(0) | Err(_)) {
                    return Ok(());
                }
            }
        }
    }
}
