//! Executes one WebSocket case script against a target.

use std::time::{Duration, Instant};

use super::conn::{Conn, Event, FloodEnd, Limits, kind_name};
use crate::case::Level;
use crate::case::ws_step::{
    Accepted, BatchSpec, Compressed, ExpectClose, ExpectExtension, ExpectMessage, ExpectPong,
    ExpectResponse, FloodSpec, FrameSpec, Generate, IdleClose, MaskSpec, MessageSpec, OriginSpec,
    RepeatSpec, Script, Step, UpgradeSpec,
};
use crate::outcome::{Finding, Run};
use crate::profile::Capabilities;
use crate::settings::{Settings, case_budget};
use crate::target::WsTarget;
use crate::transcript::{Transcript, preview};
use crate::wire::deflate::{self, Agreed, Compressor, Offer};
use crate::wire::digest::{self, Digest, Digester};
use crate::wire::frame::{self, Frame, MessageType, Opcode};
use crate::wire::generator::{self, GenKind};
use crate::wire::handshake::random_key;
use crate::wire::http::{Request, Response};

/// Why the script stopped early.
enum Stop {
    /// An expectation at the case's level was not met.
    Failed(Finding),
    /// The target enforced a limit its profile declares: the case ends with
    /// outcome `info`.
    Limit(String),
    /// The target lacks something the case needs (e.g. it declined an
    /// optional offer): the case ends with outcome `info`.
    Info(String),
    /// The harness cannot run the case (e.g. the profile lacks a value).
    Error(String),
}

impl Stop {
    /// Names the iteration of a `repeat` the stop happened in.
    fn in_iteration(self, i: u32, n: u32) -> Stop {
        match self {
            Stop::Failed(mut f) => {
                f.reason = format!("iteration {i} of {n}: {}", f.reason);
                Stop::Failed(f)
            }
            Stop::Limit(s) => Stop::Limit(format!("iteration {i} of {n}: {s}")),
            Stop::Info(s) => Stop::Info(format!("iteration {i} of {n}: {s}")),
            e @ Stop::Error(_) => e,
        }
    }
}

/// Findings kept per case: a `should` miss inside a 1000-fold repeat must not
/// grow the result without bound (only the first is reported anyway).
const MAX_NON_STRICT: usize = 16;

/// The data message the harness is sending, for declared-limit judgement.
#[derive(Default)]
struct Sent {
    open_len: u64,
    open_frames: u64,
    /// The largest message (bytes, fragments) sent on this connection so far,
    /// including one still open.
    max_len: u64,
    max_frames: u64,
}

impl Sent {
    fn frame(&mut self, opcode: Opcode, len: usize, fin: bool) {
        match opcode {
            Opcode::Text | Opcode::Binary => {
                self.open_len = len as u64;
                self.open_frames = 1;
            }
            Opcode::Continuation => {
                self.open_len += len as u64;
                self.open_frames += 1;
            }
            _ => return,
        }
        self.max_len = self.max_len.max(self.open_len);
        self.max_frames = self.max_frames.max(self.open_frames);
        if fin {
            self.open_len = 0;
            self.open_frames = 0;
        }
    }

    fn message(&mut self, len: usize, frames: usize) {
        self.max_len = self.max_len.max(len as u64);
        self.max_frames = self.max_frames.max(frames as u64);
    }
}

struct Driver<'a> {
    conn: Conn,
    t: &'a Transcript,
    settings: Settings,
    caps: &'a Capabilities,
    target: &'a WsTarget,
    run: Run,
    /// The key and offered protocols of the last upgrade request.
    key: Option<String>,
    offered: Vec<String>,
    /// The script's standard handshake offer: its subprotocols and its
    /// `Sec-WebSocket-Extensions` lines, repeated by `reconnect`.
    protocols: Vec<String>,
    extensions: Vec<String>,
    /// The valid permessage-deflate offers of the last upgrade request.
    deflate_offers: Vec<Offer>,
    /// permessage-deflate in force on this connection.
    agreed: Option<Agreed>,
    /// The client's compressor (with `agreed`).
    compressor: Option<Compressor>,
    /// Generated payloads sent and expected so far (each `generate` slice
    /// starts at `offset + k * advance`). Counted per case, not per
    /// connection, so a `reconnect` keeps them.
    generated_sent: u64,
    generated_expected: u64,
    upgraded: bool,
    /// A close frame or TCP close was seen: no implicit closing handshake,
    /// and frames the script still sends are skipped.
    ended: bool,
    /// The TCP connection has ended (an expectation may already have
    /// consumed that event, e.g. a failure by bare TCP close).
    tcp_closed: bool,
    /// An `expect_fail` was met on this connection.
    failed: bool,
    sent: Sent,
    deadline: Instant,
}

/// Runs one WebSocket case script against `target`. The profile in `caps`
/// supplies origins, declared limits and the idle timeout.
pub async fn run(
    script: &Script,
    target: &WsTarget,
    settings: Settings,
    caps: &Capabilities,
    t: &Transcript,
) -> Run {
    let stream = match target.connect(settings.timeout).await {
        Ok(s) => s,
        Err(e) => {
            return Run {
                error: Some(e.to_string()),
                handshake_failed: true,
                ..Run::default()
            };
        }
    };
    let mut d = Driver {
        conn: Conn::start(stream, t.clone(), limits(settings, caps)),
        t,
        settings,
        caps,
        target,
        run: Run::default(),
        key: None,
        offered: Vec::new(),
        protocols: script.protocols.clone(),
        extensions: script.extensions.clone(),
        deflate_offers: Vec::new(),
        agreed: None,
        compressor: None,
        generated_sent: 0,
        generated_expected: 0,
        upgraded: false,
        ended: false,
        tcp_closed: false,
        failed: false,
        sent: Sent::default(),
        deadline: Instant::now() + budget(settings.timeout, caps),
    };
    let result = d.script(script).await;
    match result {
        Ok(()) => {}
        Err(Stop::Failed(f)) => d.run.failure = Some(f),
        Err(Stop::Limit(s) | Stop::Info(s)) => {
            t.note(s.clone());
            d.run.info = Some(s);
        }
        Err(Stop::Error(e)) => d.run.error = Some(e),
    }
    d.run
}

/// Messages up to `max_message` are held whole; larger ones are digested
/// as they stream, up to what the cases can make the target send: the
/// declared `ws.max_message_size` plus the 1 MiB the cases go above it,
/// with room to spare. Beyond that a message is hostile, not compared.
fn limits(settings: Settings, caps: &Capabilities) -> Limits {
    let declared = caps.profile.ws.max_message_size.unwrap_or(0);
    Limits {
        io_timeout: settings.timeout,
        max_message: settings.max_message,
        max_streamed: settings.max_message.max(declared.saturating_add(16 << 20)),
    }
}

/// [`case_budget`] plus the profile's idle timeout, which an idle case waits out.
pub fn budget(timeout: Duration, caps: &Capabilities) -> Duration {
    case_budget(timeout) + caps.profile.ws.idle_timeout.map_or(Duration::ZERO, |d| d.0)
}

fn mismatch(reason: impl Into<String>, expected: impl Into<String>, got: &Event) -> Stop {
    Stop::Failed(Finding::new(reason, expected, got.describe()))
}

fn describe_expected(kind: MessageType, payload: &[u8]) -> String {
    format!(
        "{} message of {}: {}",
        kind_name(kind),
        crate::text::bytes(payload.len()),
        preview(payload)
    )
}

/// The message an `expect_message` waits for.
enum Want {
    Whole(Vec<u8>),
    /// Above the buffer cap: its digest, and the generator kind.
    Streamed(Digest, &'static str),
}

impl Want {
    fn len(&self) -> u64 {
        match self {
            Want::Whole(w) => w.len() as u64,
            Want::Streamed(d, _) => d.len,
        }
    }

    fn describe(&self, kind: MessageType) -> String {
        match self {
            Want::Whole(w) => describe_expected(kind, w),
            Want::Streamed(d, gen_kind) => format!(
                "{} message of {} bytes: {gen_kind} (generated, compared as it streams)",
                kind_name(kind),
                d.len
            ),
        }
    }

    /// `None` if the received message (its payload, or digest if it was
    /// too large to hold) is this one; else where it first differs.
    fn difference(&self, payload: &[u8], digest: Option<&Digest>) -> Option<String> {
        let whole_digest = |bytes: &[u8]| {
            let mut d = Digester::default();
            d.update(bytes);
            d.finish()
        };
        let at = match (self, digest) {
            (Want::Whole(w), None) => {
                if payload == w.as_slice() {
                    return None;
                }
                let at = payload
                    .iter()
                    .zip(w)
                    .position(|(a, b)| a != b)
                    .unwrap_or(payload.len().min(w.len()));
                return Some(format!("first difference at byte {at}"));
            }
            (Want::Whole(w), Some(d)) => d.first_difference(&whole_digest(w)),
            (Want::Streamed(w, _), Some(d)) => d.first_difference(w),
            (Want::Streamed(w, _), None) => whole_digest(payload).first_difference(w),
        }?;
        Some(format!(
            "first difference in the {} bytes from byte {at}",
            digest::CHUNK
        ))
    }
}

fn mib(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else {
        format!("{n} bytes")
    }
}

/// Offered before the declared subprotocols: no server should know it.
const UNKNOWN_PROTOCOL: &str = "pushspec.unknown";

/// Shown for `origin = "disallowed"`: never in a sane allow list.
const DISALLOWED_ORIGIN: &str = "http://disallowed.pushspec.invalid";

impl Driver<'_> {
    async fn script(&mut self, script: &Script) -> Result<(), Stop> {
        if script.handshake {
            self.handshake(&script.protocols, true).await?;
        }
        self.steps(&script.steps).await?;
        if script.closing && self.upgraded && !self.ended {
            self.closing().await?;
        }
        Ok(())
    }

    async fn steps(&mut self, steps: &[Step]) -> Result<(), Stop> {
        for step in steps {
            self.step(step).await?;
        }
        Ok(())
    }

    /// A transcript line for something sent, unless the connection is quiet.
    fn out(&self, line: impl Into<String>) {
        if !self.conn.quiet() {
            self.t.out(line);
        }
    }

    fn soft(&mut self, f: Finding) {
        if self.run.non_strict.len() < MAX_NON_STRICT {
            self.run.non_strict.push(f);
        }
    }

    async fn handshake(&mut self, protocols: &[String], first: bool) -> Result<(), Stop> {
        let key = random_key();
        let mut req =
            Request::upgrade(&self.target.authority(), &self.target.path, &key, protocols);
        for line in &self.extensions {
            req.add("Sec-WebSocket-Extensions", line.as_bytes());
        }
        self.send_request(&req, None).await?;
        let ev = self.next_head().await;
        let problems = match &ev {
            Some(Event::Response(r)) => {
                let mut p = r.upgrade_problems_but_extensions(Some(&key), protocols);
                if p.is_empty()
                    && let Err(e) = self.negotiate(r)
                {
                    p.push(e);
                }
                p
            }
            Some(other) => vec![other.describe()],
            None => vec![format!(
                "no complete response head within {} (the head deadline)",
                crate::text::duration(self.settings.timeout)
            )],
        };
        if !problems.is_empty() {
            self.run.handshake_failed |= first;
            let what = if first {
                "opening handshake failed"
            } else {
                "opening handshake on the new connection failed"
            };
            return Err(Stop::Failed(Finding::new(
                format!("{what}: {}", problems.join("; ")),
                "101 Switching Protocols with a valid Sec-WebSocket-Accept",
                ev.map_or("nothing".to_string(), |e| match e {
                    Event::Response(r) => r.describe(),
                    e => e.describe(),
                }),
            )));
        }
        self.upgraded = true;
        Ok(())
    }

    async fn send_request(&mut self, req: &Request, chop: Option<usize>) -> Result<(), Stop> {
        self.key = req.key().map(str::to_string);
        self.offered = req
            .header("Sec-WebSocket-Protocol")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        let lines: Vec<&str> = req.header_values("Sec-WebSocket-Extensions").collect();
        self.deflate_offers = deflate::offers_in(&lines);
        self.conn.set_offers(self.deflate_offers.clone());
        let mut line = req.describe();
        if let Some(c) = chop {
            line = format!("(in chops of {c})\n{line}");
        }
        self.t.out(line);
        self.write(&req.to_bytes(), chop).await
    }

    /// Checks the extension answer of a 101 and puts the agreement in force.
    fn negotiate(&mut self, resp: &Response) -> Result<(), String> {
        let agreed = resp.extension_agreement(&self.deflate_offers)?;
        self.agreed = agreed;
        self.compressor = agreed.map(|a| {
            Compressor::with_params(
                a.client_max_window_bits,
                a.client_no_context_takeover,
                DEFLATE_LEVEL,
            )
        });
        match agreed {
            Some(a) => self.t.note(format!("permessage-deflate in force: {a}")),
            None if !self.deflate_offers.is_empty() => self
                .t
                .note("permessage-deflate declined: the connection runs uncompressed"),
            None => {}
        }
        Ok(())
    }

    /// The size and bytes of a generated payload; `sent`: for a message
    /// being sent (else one expected), which picks the counter k.
    fn generated(&mut self, g: &Generate, sent: bool) -> Result<(usize, Vec<u8>), Stop> {
        let (size, offset) = self.generated_at(g, sent)?;
        let cap = self.settings.max_message.saturating_add(16 << 20);
        if size as u64 > cap {
            return Err(Stop::Error(format!(
                "a generated payload of {size} bytes in one piece is above the harness cap of {} bytes (only whole messages stream)",
                self.settings.max_message
            )));
        }
        Ok((size, generator::generate(g.kind, offset, size)))
    }

    /// The size and stream offset of the next generated payload (sent or
    /// expected), without producing it.
    fn generated_at(&mut self, g: &Generate, sent: bool) -> Result<(usize, usize), Stop> {
        let counter = if sent {
            &mut self.generated_sent
        } else {
            &mut self.generated_expected
        };
        let k = *counter;
        *counter += 1;
        let size = generated_size(g, self.caps)?;
        let offset = (k as usize)
            .checked_mul(g.advance.unwrap_or(size / 2))
            .and_then(|o| o.checked_add(g.offset))
            .filter(|o| *o <= MAX_GENERATED_OFFSET)
            .ok_or_else(|| Stop::Error("generated payload offset beyond 16 MiB".into()))?;
        Ok((size, offset))
    }

    /// A generated payload too large to hold, as its digest (produced in
    /// chunks).
    fn streamed_digest(&self, g: &Generate, offset: usize, size: usize) -> Result<Digest, Stop> {
        let mut d = Digester::default();
        generator::for_each_chunk(g.kind, offset, size, digest::CHUNK, &mut |c| d.update(c))
            .map_err(Stop::Error)?;
        Ok(d.finish())
    }

    /// `bytes` compressed with the connection's compressor, if `compress`.
    fn deflate(&mut self, bytes: Vec<u8>, compress: bool) -> Vec<u8> {
        match self.compressor.as_mut() {
            Some(c) if compress => c.compress(&bytes),
            _ => bytes,
        }
    }

    /// The window a standalone compressed payload is made with.
    fn client_window(&self) -> u8 {
        self.agreed.map_or(15, |a| a.client_max_window_bits)
    }

    async fn write(&mut self, bytes: &[u8], chop: Option<usize>) -> Result<(), Stop> {
        self.conn.write(bytes, chop).await.map_err(|e| {
            Stop::Failed(Finding::new(
                e.to_string(),
                "the target reads what is sent",
                "writes stalled",
            ))
        })
    }

    fn mask(&self, m: MaskSpec) -> Option<[u8; 4]> {
        match m {
            MaskSpec::Random => Some(fastrand::u32(..).to_be_bytes()),
            MaskSpec::Unmasked => None,
            MaskSpec::Key(k) => Some(k),
        }
    }

    /// The next event, answering pings from the target on the way.
    async fn next(&mut self) -> Option<Event> {
        self.next_by(self.deadline).await
    }

    /// The response head: it must be complete within one timeout of its
    /// own, so a target that trickles a `101` a byte at a time gets a
    /// verdict instead of holding the case to its budget (each byte would
    /// otherwise restart the idle wait).
    async fn next_head(&mut self) -> Option<Event> {
        self.next_by(Instant::now() + self.settings.timeout).await
    }

    /// [`Self::next`], giving up at `until` (or the case deadline).
    async fn next_by(&mut self, until: Instant) -> Option<Event> {
        let until = until.min(self.deadline);
        loop {
            let ev = self.conn.next(until).await;
            match ev {
                Some(Event::Ping(p)) if self.upgraded => self.pong(p).await,
                Some(Event::Close { .. }) | Some(Event::Closed(_)) => {
                    self.ended = true;
                    self.tcp_closed |= matches!(ev, Some(Event::Closed(_)));
                    return ev;
                }
                other => return other,
            }
        }
    }

    /// The next event before `until`, however long the target stays silent
    /// (unlike [`Self::next_by`], which also gives up after the run's
    /// timeout without a byte).
    async fn next_until(&mut self, until: Instant) -> Option<Event> {
        loop {
            let ev = self.next_by(until).await;
            if ev.is_some() || Instant::now() >= until.min(self.deadline) {
                return ev;
            }
        }
    }

    async fn pong(&mut self, payload: Vec<u8>) {
        let f = Frame {
            fin: true,
            rsv: 0,
            opcode: Opcode::Pong,
            mask: self.mask(MaskSpec::Random),
            payload,
        };
        let _ = self
            .conn
            .send_frame(&f, frame::LengthEncoding::Minimal, None, None)
            .await;
    }

    fn timeout_failure(&self, expected: String) -> Stop {
        self.t.note(format!(
            "nothing arrived within {:?}",
            self.settings.timeout
        ));
        Stop::Failed(Finding::new(
            format!("timed out waiting for {expected}"),
            expected,
            format!("nothing within {:?}", self.settings.timeout),
        ))
    }

    /// A close from the target in place of what was expected: `info` if it
    /// enforces a limit the profile declares and the harness went past.
    fn declared_limit(&self, ev: &Event) -> Option<String> {
        let Event::Close {
            code: Some(code), ..
        } = ev
        else {
            return None;
        };
        let p = &self.caps.profile.ws;
        if *code == 1009
            && let Some(max) = p.max_message_size
            && self.sent.max_len > max
        {
            return Some(format!(
                "declared limit enforced: close 1009 after a message of {} bytes (ws.max_message_size = {max})",
                self.sent.max_len
            ));
        }
        if matches!(code, 1008 | 1009)
            && let Some(max) = p.max_fragments
            && self.sent.max_frames > max
        {
            return Some(format!(
                "declared limit enforced: close {code} after a message in {} fragments (ws.max_fragments = {max})",
                self.sent.max_frames
            ));
        }
        None
    }

    /// The event does not meet the expectation: a failure, or `info` for a
    /// declared limit.
    fn unexpected(&self, reason: String, expected: String, ev: &Event) -> Stop {
        match self.declared_limit(ev) {
            Some(info) => Stop::Limit(info),
            None => mismatch(reason, expected, ev),
        }
    }

    /// The frame a `send` or `batch` entry stands for, and the length of
    /// its payload before compression.
    fn frame(&mut self, f: &FrameSpec) -> Result<(Frame, usize), Stop> {
        let (plain_len, payload) = match (&f.generate, f.compress) {
            (Some(g), true) if g.kind == GenKind::Zeros => {
                self.generated_sent += 1;
                let n = generated_size(g, self.caps)?;
                (n, deflate::zeros_payload(self.client_window(), n))
            }
            (Some(g), compress) => {
                let (n, bytes) = self.generated(g, true)?;
                (n, self.standalone(bytes, compress))
            }
            (None, compress) => {
                let bytes = f.payload.bytes();
                (bytes.len(), self.standalone(bytes, compress))
            }
        };
        // The target's window now holds data the connection's compressor
        // never saw: its next message must not refer back past it.
        if (f.compress || f.rsv & 0b100 != 0)
            && let Some(c) = self.compressor.as_mut()
        {
            c.reset();
        }
        let frame = Frame {
            fin: f.fin,
            rsv: f.rsv,
            opcode: f.opcode.0,
            mask: self.mask(f.mask),
            payload,
        };
        Ok((frame, plain_len))
    }

    /// `bytes`, compressed on their own if `compress`.
    fn standalone(&self, bytes: Vec<u8>, compress: bool) -> Vec<u8> {
        if compress {
            Compressor::with_params(self.client_window(), true, DEFLATE_LEVEL).compress(&bytes)
        } else {
            bytes
        }
    }

    /// Frames are not sent once the connection is closed or failed.
    fn skip_send(&self, what: &str) -> bool {
        if self.ended {
            self.t
                .note(format!("{what} not sent: the connection is already closed"));
        }
        self.ended
    }

    async fn step(&mut self, step: &Step) -> Result<(), Stop> {
        match step {
            Step::Send(f) => {
                if self.skip_send("frame") {
                    return Ok(());
                }
                let (frame, plain_len) = self.frame(f)?;
                self.sent.frame(frame.opcode, plain_len, frame.fin);
                self.conn
                    .send_frame(&frame, f.length.0, f.declared_len, f.chop)
                    .await
                    .map_err(|e| {
                        Stop::Failed(Finding::new(
                            e.to_string(),
                            "the target reads",
                            "writes stalled",
                        ))
                    })
            }
            Step::Batch(b) => self.batch(b).await,
            Step::Message(m) => self.message(m).await,
            Step::Raw(r) => {
                if self.skip_send("raw bytes") {
                    return Ok(());
                }
                let bytes = r.bytes.bytes();
                self.out(format!(
                    "raw {}: {}",
                    crate::text::bytes(bytes.len()),
                    preview(&bytes)
                ));
                self.write(&bytes, r.chop).await
            }
            Step::Upgrade(u) => self.upgrade(u).await,
            Step::Pause(d) => {
                if !self.conn.quiet() {
                    self.t.note(format!("pause {d}"));
                }
                tokio::time::sleep(d.0).await;
                Ok(())
            }
            Step::Repeat(r) => self.repeat(r).await,
            Step::Reconnect(r) => {
                self.t
                    .note("reconnect: dropping the connection and opening a new one");
                let stream = self
                    .target
                    .connect(self.settings.timeout)
                    .await
                    .map_err(|e| {
                        Stop::Failed(Finding::new(
                            format!("the target no longer accepts connections: {e}"),
                            "a new connection is accepted",
                            e.to_string(),
                        ))
                    })?;
                self.fresh_connection(stream);
                if r.handshake {
                    let protocols = self.protocols.clone();
                    self.handshake(&protocols, false).await?;
                }
                Ok(())
            }
            Step::Flood(f) => self.flood(f).await,
            Step::ExpectMessage(m) => self.expect_message(m).await,
            Step::ExpectPong(p) => self.expect_pong(p).await,
            Step::ExpectFail(c) => self.expect_fail(c).await,
            Step::ExpectClose(c) => self.expect_close(c).await,
            Step::ExpectNothing(d) => match self.conn.next_within(d.0).await {
                None => Ok(()),
                Some(ev) => {
                    if matches!(ev, Event::Close { .. } | Event::Closed(_)) {
                        self.ended = true;
                    }
                    Err(mismatch(
                        format!("expected nothing for {d}, got {}", ev.describe()),
                        format!("nothing for {d}"),
                        &ev,
                    ))
                }
            },
            Step::ExpectTcpClose(_) if self.tcp_closed => Ok(()),
            Step::ExpectTcpClose(d) => match self.next_until(Instant::now() + d.0).await {
                Some(Event::Closed(_)) => Ok(()),
                Some(Event::Violation(v)) => Err(violation(v)),
                Some(ev) => Err(mismatch(
                    format!(
                        "expected the TCP connection to close, got {}",
                        ev.describe()
                    ),
                    "TCP close",
                    &ev,
                )),
                None => Err(Stop::Failed(Finding::new(
                    format!("the target did not close the TCP connection within {d}"),
                    format!("TCP close within {d}"),
                    "connection still open",
                ))),
            },
            Step::ExpectResponse(r) => self.expect_response(r).await,
            Step::ExpectExtension(e) => self.expect_extension(e),
            Step::ExpectIdleClose(i) => self.expect_idle_close(i).await,
        }
    }

    /// Replaces the connection with a new one on `stream`, with every
    /// per-connection field as `run` starts it: a `reconnect` must not see
    /// the old connection's close, agreement, key or counts. Dropping the
    /// old connection aborts its reader and closes it.
    fn fresh_connection(&mut self, stream: crate::wire::transport::Stream) {
        let quiet = self.conn.quiet();
        self.conn = Conn::start(stream, self.t.clone(), limits(self.settings, self.caps));
        self.conn.set_quiet(quiet);
        self.key = None;
        self.offered.clear();
        self.deflate_offers.clear();
        self.agreed = None;
        self.compressor = None;
        self.upgraded = false;
        self.ended = false;
        self.tcp_closed = false;
        self.failed = false;
        self.sent = Sent::default();
    }

    async fn upgrade(&mut self, u: &UpgradeSpec) -> Result<(), Stop> {
        let key = random_key();
        let mut req =
            Request::upgrade(&self.target.authority(), &self.target.path, &key, &[]).modified(u);
        if let Some(o) = u.origin {
            let allowed = self
                .caps
                .profile
                .ws
                .allowed_origins
                .as_deref()
                .unwrap_or_default();
            let origin = match o {
                OriginSpec::Allowed => allowed.first().cloned().ok_or_else(|| {
                    Stop::Error(
                        "the case needs an allowed origin: the profile lists none (ws.allowed_origins)"
                            .into(),
                    )
                })?,
                OriginSpec::Disallowed => {
                    let mut o = DISALLOWED_ORIGIN.to_string();
                    while allowed.iter().any(|a| a.eq_ignore_ascii_case(&o)) {
                        o.push('x');
                    }
                    o
                }
            };
            req.remove("Origin");
            req.add("Origin", origin);
        }
        if u.offer_declared_protocols {
            let declared = self.declared_protocols()?;
            // An unknown protocol first: the server must skip it, not echo it.
            let offer = std::iter::once(UNKNOWN_PROTOCOL)
                .chain(declared.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(", ");
            req.remove("Sec-WebSocket-Protocol");
            req.add("Sec-WebSocket-Protocol", offer);
        }
        self.send_request(&req, u.chop).await
    }

    fn declared_protocols(&self) -> Result<&[String], Stop> {
        match self.caps.profile.ws.subprotocols.as_deref() {
            Some(p) if !p.is_empty() => Ok(p),
            _ => Err(Stop::Error(
                "the case needs declared subprotocols: the profile lists none (ws.subprotocols)"
                    .into(),
            )),
        }
    }

    async fn repeat(&mut self, r: &RepeatSpec) -> Result<(), Stop> {
        let was_quiet = self.conn.quiet();
        let mut result = Ok(());
        for i in 0..r.times {
            if i == 1 {
                self.conn.set_quiet(true);
            }
            if let Err(e) = Box::pin(self.steps(&r.steps)).await {
                result = Err(e.in_iteration(i + 1, r.times));
                break;
            }
        }
        self.conn.set_quiet(was_quiet);
        if r.times > 1 && !was_quiet {
            self.t.note(format!(
                "repeat: {} iterations, only the first is shown",
                r.times
            ));
        }
        result
    }

    async fn batch(&mut self, b: &BatchSpec) -> Result<(), Stop> {
        if self.skip_send("batch") {
            return Ok(());
        }
        let mut out = Vec::new();
        let mut line = format!("batch of {} frames in one write", b.frames.len());
        if let Some(c) = b.chop {
            line = format!("batch of {} frames in chops of {c}", b.frames.len());
        }
        for f in &b.frames {
            let (frame, plain_len) = self.frame(f)?;
            self.sent.frame(frame.opcode, plain_len, frame.fin);
            frame::encode_into(&frame, f.length.0, f.declared_len, &mut out);
            line.push_str("\n  ");
            line.push_str(&frame.summary());
            if let Some(d) = f.declared_len {
                line.push_str(&format!(" (declared len {d})"));
            }
            if f.length.0 != frame::LengthEncoding::Minimal {
                line.push_str(&format!(" (length encoding {:?})", f.length.0));
            }
        }
        self.out(line);
        self.write(&out, b.chop).await
    }

    async fn message(&mut self, m: &MessageSpec) -> Result<(), Stop> {
        if self.skip_send("message") {
            return Ok(());
        }
        let deflating = m.compress && self.agreed.is_some();
        if m.compress && !deflating && !self.conn.quiet() {
            self.t.note(
                "compress: permessage-deflate is not in force, the message goes uncompressed",
            );
        }
        if let Some(g) = &m.generate
            && !(deflating && g.kind == GenKind::Zeros)
            && generated_size(g, self.caps)? as u64 > self.settings.max_message
        {
            if deflating {
                return Err(Stop::Error(format!(
                    "a compressed {} message above the harness cap of {} bytes: only zeros are compressed without being held",
                    g.kind.name(),
                    self.settings.max_message
                )));
            }
            return self.stream_message(m, g).await;
        }
        // What the message is (for the transcript) and what goes on the wire.
        let (plain_len, shown, payload) = match &m.generate {
            Some(g) if deflating && g.kind == GenKind::Zeros => {
                self.generated_sent += 1;
                let n = generated_size(g, self.caps)?;
                // Compressed on their own: the compressor starts afresh
                // after them too (it never saw them).
                let z = deflate::zeros_payload(self.client_window(), n);
                if let Some(c) = self.compressor.as_mut() {
                    c.reset();
                }
                (n, "zeros".to_string(), z)
            }
            Some(g) => {
                let (n, bytes) = self.generated(g, true)?;
                let shown = format!("{} {}", g.kind.name(), preview(&bytes));
                (n, shown, self.deflate(bytes, deflating))
            }
            None => {
                let bytes = m.payload.bytes();
                (bytes.len(), preview(&bytes), self.deflate(bytes, deflating))
            }
        };
        let size = m.fragment.unwrap_or(usize::MAX).max(1);
        let mut chunks: Vec<&[u8]> = payload.chunks(size).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let n = chunks.len();
        let mut out = Vec::with_capacity(payload.len() + 14 * n);
        for (i, c) in chunks.iter().enumerate() {
            let opcode = match (i, m.kind) {
                (0, MessageType::Text) => Opcode::Text,
                (0, MessageType::Binary) => Opcode::Binary,
                _ => Opcode::Continuation,
            };
            let f = Frame {
                fin: i + 1 == n,
                rsv: if i == 0 && deflating { 4 } else { 0 },
                opcode,
                mask: self.mask(MaskSpec::Random),
                payload: c.to_vec(),
            };
            frame::encode_into(&f, frame::LengthEncoding::Minimal, None, &mut out);
        }
        self.sent.message(plain_len, n);
        if !self.conn.quiet() {
            let mut line = format!(
                "{} message of {}: {shown}",
                kind_name(m.kind),
                crate::text::bytes(plain_len)
            );
            if deflating {
                line.push_str(&format!(
                    ", compressed to {} (rsv=4)",
                    crate::text::bytes(payload.len())
                ));
            }
            if n > 1 {
                line.push_str(&format!(" in {n} fragments of {size}"));
            }
            if let Some(c) = m.chop {
                line.push_str(&format!(" (in chops of {c})"));
            }
            self.t.out(line);
        }
        self.write(&out, m.chop).await
    }

    /// A generated message above the buffer cap, produced as it is sent:
    /// frame headers, then each payload in chunks masked at their offset.
    async fn stream_message(&mut self, m: &MessageSpec, g: &Generate) -> Result<(), Stop> {
        let (size, offset) = self.generated_at(g, true)?;
        let mut src = generator::ChunkStream::new(g.kind, offset, size).map_err(Stop::Error)?;
        let frag = m.fragment.unwrap_or(size).max(1);
        let n = size.div_ceil(frag).max(1);
        self.sent.message(size, n);
        if !self.conn.quiet() {
            let mut line = format!(
                "{} message of {size} bytes: {} (generated as it is sent)",
                kind_name(m.kind),
                g.kind.name()
            );
            if n > 1 {
                line.push_str(&format!(" in {n} fragments of {frag}"));
            }
            if let Some(c) = m.chop {
                line.push_str(&format!(" (in chops of {c})"));
            }
            self.t.out(line);
        }
        let mut out = Vec::with_capacity(digest::CHUNK + 64);
        for i in 0..n {
            let len = if i + 1 == n {
                size - frag * (n - 1)
            } else {
                frag
            };
            let key = fastrand::u32(..).to_be_bytes();
            let head = Frame {
                fin: i + 1 == n,
                rsv: 0,
                opcode: match (i, m.kind) {
                    (0, MessageType::Text) => Opcode::Text,
                    (0, MessageType::Binary) => Opcode::Binary,
                    _ => Opcode::Continuation,
                },
                mask: Some(key),
                payload: Vec::new(),
            };
            frame::encode_into(
                &head,
                frame::LengthEncoding::Minimal,
                Some(len as u64),
                &mut out,
            );
            let mut pos = 0;
            while pos < len {
                let Some(mut piece) = src.next_piece((len - pos).min(digest::CHUNK)) else {
                    return Err(Stop::Error("the generated stream ended early".into()));
                };
                frame::apply_mask(&mut piece, key, pos);
                pos += piece.len();
                out.extend_from_slice(&piece);
                if out.len() >= digest::CHUNK {
                    self.write(&out, m.chop).await?;
                    out.clear();
                }
            }
        }
        if !out.is_empty() {
            self.write(&out, m.chop).await?;
        }
        Ok(())
    }

    async fn flood(&mut self, f: &FloodSpec) -> Result<(), Stop> {
        if self.skip_send("flood") {
            return Ok(());
        }
        let (opcode, payload) = match f.kind {
            MessageType::Text => (Opcode::Text, vec![b'*'; f.size]),
            MessageType::Binary => (Opcode::Binary, crate::wire::generator::pattern(f.size)),
        };
        let frame = Frame {
            fin: true,
            rsv: 0,
            opcode,
            mask: self.mask(MaskSpec::Random),
            payload,
        };
        let bytes = frame::encode(&frame);
        self.sent.message(f.size, 1);
        self.t.out(format!(
            "flood: {} messages of {} bytes, up to {} in all, without reading",
            kind_name(f.kind),
            f.size,
            mib(f.total)
        ));
        self.conn.set_quiet(true);
        let end = self.conn.flood(&bytes, f.total, f.stall.0).await;
        // Whatever happens, the connection is abandoned: the script stops
        // sending and no closing handshake is attempted.
        self.ended = true;
        match end {
            FloodEnd::Stalled { written } => {
                let s = format!(
                    "backpressure: writes stalled for {} after {} written",
                    f.stall,
                    mib(written)
                );
                self.t.note(s.clone());
                self.run.summary = Some(s);
                Ok(())
            }
            FloodEnd::PeerGone { written, error } => {
                let s = format!(
                    "the target closed the connection after {} written ({error})",
                    mib(written)
                );
                self.t.note(s.clone());
                self.run.summary = Some(s);
                Ok(())
            }
            FloodEnd::Cap { written } => {
                // Did the target close meanwhile (and keep draining)? Look at
                // what it sent, for a bounded time.
                self.conn.set_reading(true);
                let until = Instant::now() + f.stall.0.max(Duration::from_secs(1));
                let mut messages = 0u64;
                while let Some(ev) = self.conn.next(until).await {
                    match ev {
                        Event::Message { .. } | Event::Ping(_) | Event::Pong(_) => messages += 1,
                        Event::Close { .. } | Event::Closed(_) => {
                            let s = format!(
                                "the target closed the connection ({}) after {messages} echoes, having accepted {}",
                                ev.describe(),
                                mib(written)
                            );
                            self.t.note(s.clone());
                            self.run.summary = Some(s);
                            return Ok(());
                        }
                        Event::Violation(v) => return Err(violation(v)),
                        Event::Response(_) => {}
                    }
                }
                Err(Stop::Failed(Finding::new(
                    format!(
                        "the target accepted {} while the client read nothing, without pushing back or closing: it buffers without bound",
                        mib(written)
                    ),
                    format!(
                        "writes stall (no byte accepted for {}) or the target closes the connection",
                        f.stall
                    ),
                    format!("{} written, the connection still open", mib(written)),
                )))
            }
        }
    }

    async fn expect_event(
        &mut self,
        level: Option<Level>,
        expected: String,
        within: Option<Duration>,
        ok: impl Fn(&Event) -> bool,
    ) -> Result<(), Stop> {
        let ev = match within {
            Some(w) => self.next_until(Instant::now() + w).await,
            None => self.next().await,
        };
        let Some(ev) = ev else {
            if let Some(w) = within {
                let w = w.as_millis();
                return Err(Stop::Failed(Finding::new(
                    format!("no {expected} within {w} ms"),
                    format!("{expected} within {w} ms"),
                    format!("nothing within {w} ms"),
                )));
            }
            return Err(self.timeout_failure(expected));
        };
        if let Event::Violation(v) = ev {
            return Err(violation(v));
        }
        if ok(&ev) {
            return Ok(());
        }
        let reason = format!("expected {expected}, got {}", ev.describe());
        if level == Some(Level::Should) && self.declared_limit(&ev).is_none() {
            self.soft(Finding::new(reason, expected, ev.describe()));
            if matches!(ev, Event::Close { .. } | Event::Closed(_)) {
                self.ended = true;
            }
            self.conn.unread(ev);
            return Ok(());
        }
        Err(self.unexpected(reason, expected, &ev))
    }

    async fn expect_pong(&mut self, p: &ExpectPong) -> Result<(), Stop> {
        let want = p.payload.bytes();
        let expected = format!(
            "pong of {}: {}",
            crate::text::bytes(want.len()),
            preview(&want)
        );
        let started = Instant::now();
        self.expect_event(
            p.level,
            expected,
            p.within.map(|w| w.0),
            |ev| matches!(ev, Event::Pong(x) if *x == want),
        )
        .await?;
        if let Some(w) = p.within {
            self.run.summary = Some(format!(
                "pong after {} ms (bound {w})",
                started.elapsed().as_millis()
            ));
        }
        Ok(())
    }

    async fn expect_message(&mut self, m: &ExpectMessage) -> Result<(), Stop> {
        let want = match &m.generate {
            Some(g) => {
                let (n, offset) = self.generated_at(g, false)?;
                if n as u64 <= self.settings.max_message {
                    Want::Whole(generator::generate(g.kind, offset, n))
                } else {
                    // Too large to hold: compared by digest, chunk by chunk.
                    let digest = self.streamed_digest(g, offset, n)?;
                    Want::Streamed(digest, g.kind.name())
                }
            }
            None => Want::Whole(m.payload.bytes()),
        };
        let mut expected = want.describe(m.kind);
        match m.compressed {
            Compressed::Any => {}
            Compressed::Yes => expected.push_str(", compressed"),
            Compressed::No => expected.push_str(", uncompressed"),
        }
        let kind = m.kind;
        let Some(ev) = self.next().await else {
            return Err(self.timeout_failure(expected));
        };
        match &ev {
            Event::Violation(v) => Err(violation(v.clone())),
            Event::Message {
                kind: k,
                payload,
                compressed,
                digest,
                ..
            } if *k == kind && want.difference(payload, digest.as_ref()).is_none() => {
                let form_ok = match m.compressed {
                    Compressed::Any => true,
                    Compressed::Yes => *compressed,
                    Compressed::No => !*compressed,
                };
                if form_ok {
                    return Ok(());
                }
                let reason = if *compressed {
                    "the message came compressed"
                } else {
                    "the message came uncompressed"
                };
                let f = Finding::new(reason, expected, ev.describe());
                if m.level == Some(Level::Should) {
                    self.soft(f);
                    return Ok(());
                }
                Err(Stop::Failed(f))
            }
            Event::Message {
                kind: k,
                payload,
                digest,
                ..
            } if *k == kind && m.level != Some(Level::Should) => {
                let (got, diff) = (
                    digest.as_ref().map_or(payload.len() as u64, |d| d.len),
                    want.difference(payload, digest.as_ref())
                        .unwrap_or_default(),
                );
                Err(mismatch(
                    format!(
                        "echo differs from what was sent: {got} bytes instead of {}, {diff}",
                        want.len()
                    ),
                    expected,
                    &ev,
                ))
            }
            _ => {
                self.conn.unread(ev);
                self.expect_event(m.level, expected, None, |_| false).await
            }
        }
    }

    async fn expect_fail(&mut self, c: &ExpectClose) -> Result<(), Stop> {
        if self.failed {
            self.t.note("the connection was already failed");
            return Ok(());
        }
        let expected = format!(
            "the target fails the connection with close {}",
            codes(c.codes())
        );
        let ev = match c.within {
            Some(w) => self.next_until(Instant::now() + w.0).await,
            None => self.next().await,
        };
        let Some(ev) = ev else {
            let Some(w) = c.within else {
                return Err(self.timeout_failure(expected));
            };
            let f = Finding::new(
                format!("the connection was not failed within {w}"),
                format!("{expected}, within {w}"),
                format!("nothing within {w}"),
            );
            if c.level == Some(Level::Should) {
                self.t.note(format!(
                    "not failed within {w}: non-strict, the script goes on"
                ));
                self.soft(f);
                return Ok(());
            }
            return Err(Stop::Failed(f));
        };
        match &ev {
            Event::Close {
                code: Some(code), ..
            } if c.codes().contains(code) => {
                self.failed = true;
                Ok(())
            }
            Event::Close {
                code: Some(code), ..
            } => Err(mismatch(
                format!(
                    "failed the connection with close {code} instead of {}",
                    codes(c.codes())
                ),
                expected,
                &ev,
            )),
            Event::Close { code: None, .. } => {
                self.failed = true;
                self.soft(Finding::new(
                    "closed without a status code; an endpoint failing the connection SHOULD send one (RFC 6455 §7.1.7)",
                    expected,
                    ev.describe(),
                ));
                Ok(())
            }
            Event::Closed(_) => {
                self.failed = true;
                self.soft(Finding::new(
                    "dropped TCP without sending a close frame; an endpoint failing the connection SHOULD send one (RFC 6455 §7.1.7)",
                    expected,
                    ev.describe(),
                ));
                Ok(())
            }
            Event::Violation(v) => Err(violation(v.clone())),
            _ => Err(mismatch(
                format!(
                    "expected the connection to be failed, got {}",
                    ev.describe()
                ),
                expected,
                &ev,
            )),
        }
    }

    async fn expect_close(&mut self, c: &ExpectClose) -> Result<(), Stop> {
        let expected = format!("a close frame with {}", codes(c.codes()));
        let ev = match c.within {
            Some(w) => self.next_until(Instant::now() + w.0).await,
            None => self.next().await,
        };
        let Some(ev) = ev else {
            if let Some(w) = c.within {
                let f = Finding::new(
                    format!("no close frame within {w}"),
                    format!("{expected}, within {w}"),
                    format!("nothing within {w}"),
                );
                if c.level == Some(Level::Should) {
                    self.soft(f);
                    return Ok(());
                }
                return Err(Stop::Failed(f));
            }
            return Err(self.timeout_failure(expected));
        };
        match &ev {
            Event::Close {
                code: Some(code), ..
            } if c.codes().contains(code) => Ok(()),
            Event::Close { code: None, .. } => Ok(()),
            Event::Close {
                code: Some(code), ..
            } if c.other_code == Some(Level::Should)
                // 1002 is no alternative reply: it says the code was rejected.
                && *code != 1002
                && self.declared_limit(&ev).is_none() =>
            {
                self.soft(Finding::new(
                    format!(
                        "closed with {code}; the reply to a close frame typically echoes its code (RFC 6455 §5.5.1), expected {}",
                        codes(c.codes())
                    ),
                    expected,
                    ev.describe(),
                ));
                Ok(())
            }
            Event::Violation(v) => Err(violation(v.clone())),
            _ => Err(self.unexpected(
                format!("expected {expected}, got {}", ev.describe()),
                expected,
                &ev,
            )),
        }
    }

    async fn expect_idle_close(&mut self, i: &IdleClose) -> Result<(), Stop> {
        let Some(timeout) = self.caps.profile.ws.idle_timeout else {
            return Err(Stop::Error(
                "the case needs ws.idle_timeout in the profile (requires = [\"idle-timeout\"])"
                    .into(),
            ));
        };
        let declared = timeout.0;
        // Timers are coarse: a close from 3/4 of the declared time on counts.
        let earliest = declared * 3 / 4;
        let start = Instant::now();
        let end = start + declared + i.slack.0;
        let expected = format!(
            "the idle connection closed between {} ms and {} ms (ws.idle_timeout = {timeout})",
            earliest.as_millis(),
            (declared + i.slack.0).as_millis()
        );
        self.t.note(format!(
            "idle: waiting up to {} ms for the target to close",
            (declared + i.slack.0).as_millis()
        ));
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let Some(ev) = self.conn.next_within(left).await else {
                return Err(Stop::Failed(Finding::new(
                    format!(
                        "the idle connection was still open {} ms after it went idle (ws.idle_timeout = {timeout})",
                        start.elapsed().as_millis()
                    ),
                    expected,
                    "connection still open",
                )));
            };
            let at = start.elapsed();
            match ev {
                Event::Ping(p) => {
                    self.pong(p).await;
                    continue;
                }
                Event::Close { .. } | Event::Closed(_) => {
                    self.ended = true;
                    if at < earliest {
                        return Err(mismatch(
                            format!(
                                "the target closed the idle connection after {} ms, well before the declared ws.idle_timeout = {timeout}",
                                at.as_millis()
                            ),
                            expected,
                            &ev,
                        ));
                    }
                    if let Event::Closed(_) = ev {
                        self.soft(Finding::new(
                            "closed the idle connection by dropping TCP, without a close frame (RFC 6455 §7.1.2: start the closing handshake)",
                            expected,
                            ev.describe(),
                        ));
                    }
                    self.run.summary = Some(format!(
                        "closed the idle connection after {} ms",
                        at.as_millis()
                    ));
                    return Ok(());
                }
                Event::Violation(v) => return Err(violation(v)),
                ev => {
                    return Err(mismatch(
                        format!("expected an idle connection, got {}", ev.describe()),
                        expected,
                        &ev,
                    ));
                }
            }
        }
    }

    /// Sends close 1000 and requires the target's close reply (RFC 6455 §5.5.1).
    async fn closing(&mut self) -> Result<(), Stop> {
        let f = Frame {
            fin: true,
            rsv: 0,
            opcode: Opcode::Close,
            mask: self.mask(MaskSpec::Random),
            payload: frame::close_payload(Some(1000), b""),
        };
        self.conn
            .send_frame(&f, frame::LengthEncoding::Minimal, None, None)
            .await
            .map_err(|e| {
                Stop::Failed(Finding::new(e.to_string(), "close reply", "writes stalled"))
            })?;
        let expected = "a close reply to close 1000".to_string();
        let Some(ev) = self.next().await else {
            return Err(self.timeout_failure(expected));
        };
        match &ev {
            Event::Close {
                code: Some(1000) | None,
                ..
            } => Ok(()),
            Event::Violation(v) => Err(violation(v.clone())),
            _ => Err(self.unexpected(
                format!(
                    "closing handshake: expected the close reply, got {}",
                    ev.describe()
                ),
                expected,
                &ev,
            )),
        }
    }

    /// Checks the permessage-deflate agreement of the connection.
    fn expect_extension(&mut self, e: &ExpectExtension) -> Result<(), Stop> {
        let actual = match self.agreed {
            Some(a) => format!("accepted: {a}"),
            None => "no permessage-deflate agreed".to_string(),
        };
        let mut want = Vec::new();
        if let Some(v) = e.server_no_context_takeover {
            want.push(format!("server_no_context_takeover {}", on_off(v)));
        }
        if let Some(v) = e.client_no_context_takeover {
            want.push(format!("client_no_context_takeover {}", on_off(v)));
        }
        if let Some(v) = e.server_max_window_bits {
            want.push(format!("server_max_window_bits={v}"));
        }
        if let Some(v) = e.client_max_window_bits {
            want.push(format!("client_max_window_bits={v}"));
        }
        let with = if want.is_empty() {
            String::new()
        } else {
            format!(" with {}", want.join(", "))
        };
        let expected = match e.accepted {
            Accepted::Yes => format!("permessage-deflate accepted{with}"),
            Accepted::No => "no permessage-deflate agreed (the offer declined)".to_string(),
            Accepted::Any => format!("permessage-deflate declined, or accepted{with}"),
        };
        let mut problems = Vec::new();
        match (e.accepted, self.agreed) {
            (Accepted::Yes, None) => {
                problems.push("the target declined the permessage-deflate offer".to_string());
            }
            (Accepted::No, Some(_)) => problems.push(
                "the target accepted a permessage-deflate offer it must decline (RFC 7692 §5)"
                    .to_string(),
            ),
            _ => {}
        }
        if let Some(a) = self.agreed {
            let flags = [
                (
                    "server_no_context_takeover",
                    e.server_no_context_takeover,
                    a.server_no_context_takeover,
                ),
                (
                    "client_no_context_takeover",
                    e.client_no_context_takeover,
                    a.client_no_context_takeover,
                ),
            ];
            for (name, want, got) in flags {
                if want.is_some_and(|w| w != got) {
                    problems.push(format!("{name} is {} in the agreement", on_off(got)));
                }
            }
            let bits = [
                (
                    "server_max_window_bits",
                    e.server_max_window_bits,
                    a.server_max_window_bits,
                ),
                (
                    "client_max_window_bits",
                    e.client_max_window_bits,
                    a.client_max_window_bits,
                ),
            ];
            for (name, want, got) in bits {
                if want.is_some_and(|w| w != got) {
                    problems.push(format!("{name} is {got} in the agreement"));
                }
            }
        }
        if problems.is_empty() {
            self.run.summary.get_or_insert(actual);
            return Ok(());
        }
        let f = Finding::new(problems.join("; "), expected, actual);
        match e.level {
            Some(Level::Should) => {
                self.t.note(format!("non-strict: {}", f.reason));
                self.soft(f);
                Ok(())
            }
            Some(Level::Info) => Err(Stop::Info(format!("not supported: {}", f.reason))),
            Some(Level::Must) | None => Err(Stop::Failed(f)),
        }
    }

    async fn expect_response(&mut self, r: &ExpectResponse) -> Result<(), Stop> {
        let expected = format!(
            "HTTP status {}",
            r.status
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        );
        let resp = match self.next_head().await {
            Some(Event::Response(resp)) => resp,
            Some(Event::Violation(v)) => return Err(violation(v)),
            Some(Event::Closed(how)) if r.or_tcp_close => {
                self.t.note(format!(
                    "the target closed the connection without a complete response ({how}): accepted"
                ));
                self.run.summary = Some("closed the connection without answering".into());
                return Ok(());
            }
            Some(ev) => {
                return Err(mismatch(
                    format!("expected {expected}, got {}", ev.describe()),
                    expected,
                    &ev,
                ));
            }
            None => {
                let within = crate::text::duration(self.settings.timeout);
                self.t
                    .note(format!("no complete response head within {within}"));
                return Err(Stop::Failed(Finding::new(
                    format!(
                        "timed out waiting for {expected}: no complete response head within {within} (the head deadline)"
                    ),
                    expected,
                    format!("no complete head within {within}"),
                )));
            }
        };
        let actual = resp.describe();
        let fail =
            |reason: String| Stop::Failed(Finding::new(reason, expected.clone(), actual.clone()));
        if !r.status.iter().any(|s| s.matches(resp.status)) {
            return Err(fail(format!(
                "status {} instead of {}",
                resp.status,
                expected.trim_start_matches("HTTP status ")
            )));
        }
        for h in &r.headers {
            if let Some(problem) = h.problem(&resp, self.key.as_deref()) {
                return Err(fail(problem));
            }
        }
        if r.selects_declared_protocol {
            let declared = self.declared_protocols()?;
            match resp.header("Sec-WebSocket-Protocol") {
                Some(p) if declared.iter().any(|d| d == p) => {}
                Some(p) => {
                    return Err(fail(format!(
                        "selected subprotocol {p:?}, not one of the declared {declared:?}"
                    )));
                }
                None => {
                    return Err(fail(format!(
                        "selected no subprotocol although it declares {declared:?} and they were offered"
                    )));
                }
            }
        }
        if r.upgraded || (r.may_upgrade && resp.status == 101) {
            let mut problems =
                resp.upgrade_problems_but_extensions(self.key.as_deref(), &self.offered);
            if problems.is_empty()
                && let Err(e) = self.negotiate(&resp)
            {
                problems.push(e);
            }
            if !problems.is_empty() {
                return Err(fail(format!("invalid upgrade: {}", problems.join("; "))));
            }
            self.upgraded = true;
        } else if resp.status == 101 {
            return Err(fail("the target upgraded a request it must refuse".into()));
        }
        Ok(())
    }
}

/// How far into a generated stream a payload may start.
const MAX_GENERATED_OFFSET: usize = 16 << 20;

/// The compression level of the harness's compressors.
const DEFLATE_LEVEL: u32 = 6;

fn on_off(v: bool) -> &'static str {
    if v { "on" } else { "off" }
}

/// The byte size of a generated payload, resolving `limit` against the
/// profile's `ws.max_message_size`.
fn generated_size(g: &Generate, caps: &Capabilities) -> Result<usize, Stop> {
    let limit = caps.profile.ws.max_message_size;
    if g.needs_limit() && limit.is_none() {
        return Err(Stop::Error(
            "the case needs ws.max_message_size in the profile (requires = [\"max-message-size\"])"
                .into(),
        ));
    }
    g.size
        .resolve(limit)
        .ok_or_else(|| Stop::Error("generated payload size out of range".into()))
}

fn violation(v: String) -> Stop {
    Stop::Failed(Finding::new(
        format!("protocol violation by the target: {v}"),
        "frames that follow RFC 6455",
        v,
    ))
}

fn codes(c: &[u16]) -> String {
    c.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Script as CaseScript;
    use crate::profile::Profile;
    use crate::transcript::Dir;
    use pushspec_reference_server::{Config, Server};

    /// Runs a `ws.t` case with `body` (the case's fields after `level`)
    /// against a fresh reference server.
    async fn run_case(body: &str) -> (Run, Transcript) {
        let text = format!(
            "family = \"ws.t\"\n[[case]]\nslug = \"x\"\ntitle = \"t\"\nspec = \"s\"\nlevel = \"must\"\n{body}\n"
        );
        let case = crate::case::file::parse_file("t.toml", &text)
            .expect("case loads")
            .remove(0);
        let CaseScript::Ws(script) = &case.script else {
            unreachable!()
        };
        let server = Server::bind(([127, 0, 0, 1], 0).into(), Config::conformance())
            .await
            .expect("bind")
            .spawn_isolated()
            .expect("server thread");
        let addr = server.local_addr();
        let target = WsTarget {
            host: addr.ip().to_string(),
            port: addr.port(),
            path: "/".to_string(),
            transport: crate::wire::transport::Transport::Tcp,
        };
        let settings = Settings {
            timeout: Duration::from_secs(2),
            max_message: 64 << 20,
        };
        let caps = Capabilities {
            profile: Profile::reference(),
            publish: true,
            skip_timing: true,
        };
        let t = Transcript::new();
        let run = run(script, &target, settings, &caps, &t).await;
        drop(server);
        (run, t)
    }

    /// The old connection's TCP close must not satisfy an
    /// `expect_tcp_close` on the new one: the reference server keeps the
    /// new connection open, so the step fails.
    #[tokio::test]
    async fn reconnect_forgets_the_old_tcp_close() {
        let (run, _) = run_case(
            "closing = false\nsteps = [\n  { send = { opcode = 3, payload = \"x\" } },\n  { expect_fail = {} },\n  { expect_tcp_close = \"2s\" },\n  { reconnect = {} },\n  { expect_tcp_close = \"300ms\" },\n]",
        )
        .await;
        let f = run.failure.expect("the new connection stays open");
        assert!(f.reason.contains("did not close"), "{f:?}");
    }

    /// `reconnect` repeats the script's handshake offer: its subprotocols
    /// as well as its extensions.
    #[tokio::test]
    async fn reconnect_offers_the_scripts_subprotocols() {
        let (run, t) = run_case(
            "protocols = [\"pushspec.echo\"]\nsteps = [\n  { reconnect = {} },\n  { message = { type = \"text\", payload = \"hi\" } },\n  { expect_message = { type = \"text\", payload = \"hi\" } },\n]",
        )
        .await;
        assert!(run.failure.is_none() && run.error.is_none(), "{run:?}");
        let offers = t
            .entries()
            .iter()
            .filter(|e| {
                e.dir == Dir::Out && e.text.contains("Sec-WebSocket-Protocol: pushspec.echo")
            })
            .count();
        assert_eq!(offers, 2, "both upgrade requests offer the subprotocol");
    }
}
