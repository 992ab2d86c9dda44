//! Executes one WebSocket case script against a target.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::conn::{Conn, Event, Limits, kind_name};
use super::frame::{self, Frame, Opcode};
use super::handshake::{Request, accept_for, random_key};
use super::step::{
    ExpectClose, ExpectMessage, ExpectResponse, HeaderCheck, MaskSpec, MessageSpec, MessageType,
    Script, Step,
};
use crate::case::Level;
use crate::outcome::{Finding, Run};
use crate::transcript::{Transcript, preview};

/// Where a WebSocket target lives: `ws://host:port/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsTarget {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl WsTarget {
    pub fn authority(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub async fn connect(&self, within: Duration) -> Result<TcpStream, String> {
        match tokio::time::timeout(within, TcpStream::connect((self.host.as_str(), self.port))).await
        {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(format!("cannot connect to {}: {e}", self.authority())),
            Err(_) => Err(format!(
                "cannot connect to {}: no answer within {within:?}",
                self.authority()
            )),
        }
    }
}

/// Per-run knobs the CLI sets.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub timeout: Duration,
    pub max_message: u64,
}

/// Why the script stopped early.
enum Stop {
    /// An expectation at the case's level was not met.
    Failed(Finding),
}

struct Driver<'a> {
    conn: Conn,
    t: &'a Transcript,
    settings: Settings,
    run: Run,
    /// The key and offered protocols of the last upgrade request.
    key: Option<String>,
    offered: Vec<String>,
    upgraded: bool,
    /// A close frame or TCP close was seen: no implicit closing handshake.
    ended: bool,
    deadline: Instant,
}

pub async fn run(script: &Script, target: &WsTarget, settings: Settings, t: &Transcript) -> Run {
    let stream = match target.connect(settings.timeout).await {
        Ok(s) => s,
        Err(e) => {
            return Run {
                error: Some(e),
                handshake_failed: true,
                ..Run::default()
            };
        }
    };
    let limits = Limits {
        io_timeout: settings.timeout,
        max_message: settings.max_message,
    };
    let mut d = Driver {
        conn: Conn::start(stream, t.clone(), limits),
        t,
        settings,
        run: Run::default(),
        key: None,
        offered: Vec::new(),
        upgraded: false,
        ended: false,
        deadline: Instant::now() + case_budget(settings.timeout),
    };
    let result = d.script(script, target).await;
    match result {
        Ok(()) => {}
        Err(Stop::Failed(f)) => d.run.failure = Some(f),
    }
    d.run
}

/// The most one case may take, however slowly the target trickles bytes.
pub fn case_budget(timeout: Duration) -> Duration {
    (timeout * 15).max(Duration::from_secs(30))
}

fn mismatch(reason: impl Into<String>, expected: impl Into<String>, got: &Event) -> Stop {
    Stop::Failed(Finding::new(reason, expected, got.describe()))
}

fn describe_expected(kind: MessageType, payload: &[u8]) -> String {
    format!(
        "{} message of {} bytes: {}",
        kind_name(kind),
        payload.len(),
        preview(payload)
    )
}

impl Driver<'_> {
    async fn script(&mut self, script: &Script, target: &WsTarget) -> Result<(), Stop> {
        if script.handshake {
            self.handshake(script, target).await?;
        }
        for step in &script.steps {
            self.step(step, target).await?;
        }
        if script.closing && self.upgraded && !self.ended {
            self.closing().await?;
        }
        Ok(())
    }

    async fn handshake(&mut self, script: &Script, target: &WsTarget) -> Result<(), Stop> {
        let key = random_key();
        let req = Request::upgrade(&target.authority(), &target.path, &key, &script.protocols);
        self.send_request(&req, None).await?;
        let ev = self.next().await;
        let problems = match &ev {
            Some(Event::Response(r)) => r.upgrade_problems(Some(&key), &script.protocols),
            Some(other) => vec![other.describe()],
            None => vec![format!("no response within {:?}", self.settings.timeout)],
        };
        if !problems.is_empty() {
            self.run.handshake_failed = true;
            return Err(Stop::Failed(Finding::new(
                format!("opening handshake failed: {}", problems.join("; ")),
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
        let mut line = req.describe();
        if let Some(c) = chop {
            line = format!("(in chops of {c})\n{line}");
        }
        self.t.out(line);
        self.write(&req.to_bytes(), chop).await
    }

    async fn write(&mut self, bytes: &[u8], chop: Option<usize>) -> Result<(), Stop> {
        self.conn
            .write(bytes, chop)
            .await
            .map_err(|e| Stop::Failed(Finding::new(e.to_string(), "the target reads what is sent", "writes stalled")))
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
        loop {
            let ev = self.conn.next(self.deadline).await;
            match ev {
                Some(Event::Ping(p)) if self.upgraded => {
                    let f = Frame {
                        fin: true,
                        rsv: 0,
                        opcode: Opcode::Pong,
                        mask: self.mask(MaskSpec::Random),
                        payload: p,
                    };
                    let _ = self
                        .conn
                        .send_frame(&f, frame::LengthEncoding::Minimal, None, None)
                        .await;
                }
                Some(Event::Close { .. }) | Some(Event::Closed(_)) => {
                    self.ended = true;
                    return ev;
                }
                other => return other,
            }
        }
    }

    fn timeout_failure(&self, expected: String) -> Stop {
        self.t.note(format!("nothing arrived within {:?}", self.settings.timeout));
        Stop::Failed(Finding::new(
            format!("timed out waiting for {expected}"),
            expected,
            format!("nothing within {:?}", self.settings.timeout),
        ))
    }

    async fn step(&mut self, step: &Step, target: &WsTarget) -> Result<(), Stop> {
        match step {
            Step::Send(f) => {
                let frame = Frame {
                    fin: f.fin,
                    rsv: f.rsv,
                    opcode: f.opcode.0,
                    mask: self.mask(f.mask),
                    payload: f.payload.bytes(),
                };
                self.conn
                    .send_frame(&frame, f.length.0, f.declared_len, f.chop)
                    .await
                    .map_err(|e| Stop::Failed(Finding::new(e.to_string(), "the target reads", "writes stalled")))
            }
            Step::Message(m) => self.message(m).await,
            Step::Raw(r) => {
                let bytes = r.bytes.bytes();
                self.t.out(format!("raw {} bytes: {}", bytes.len(), preview(&bytes)));
                self.write(&bytes, r.chop).await
            }
            Step::Upgrade(u) => {
                let key = random_key();
                let req = Request::upgrade(&target.authority(), &target.path, &key, &[]).modified(u);
                self.send_request(&req, u.chop).await
            }
            Step::Pause(d) => {
                self.t.note(format!("pause {d}"));
                tokio::time::sleep(d.0).await;
                Ok(())
            }
            Step::ExpectMessage(m) => self.expect_message(m).await,
            Step::ExpectPong(p) => {
                let want = p.payload.bytes();
                let expected = format!("pong of {} bytes: {}", want.len(), preview(&want));
                self.expect_event(p.level, expected, |ev| matches!(ev, Event::Pong(x) if *x == want))
                    .await
            }
            Step::ExpectFail(c) => self.expect_fail(c).await,
            Step::ExpectClose(c) => self.expect_close(c).await,
            Step::ExpectNothing(d) => {
                match self.conn.next_within(d.0).await {
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
                }
            }
            Step::ExpectTcpClose(d) => {
                let until = Instant::now() + d.0;
                loop {
                    match tokio::time::timeout_at(until.into(), self.next()).await {
                        Ok(Some(Event::Closed(_))) => return Ok(()),
                        Ok(Some(Event::Violation(v))) => return Err(violation(v)),
                        Ok(Some(ev)) => {
                            return Err(mismatch(
                                format!("expected the TCP connection to close, got {}", ev.describe()),
                                "TCP close",
                                &ev,
                            ));
                        }
                        Ok(None) | Err(_) => {
                            return Err(Stop::Failed(Finding::new(
                                format!("the target did not close the TCP connection within {d}"),
                                format!("TCP close within {d}"),
                                "connection still open",
                            )));
                        }
                    }
                }
            }
            Step::ExpectResponse(r) => self.expect_response(r).await,
        }
    }

    async fn message(&mut self, m: &MessageSpec) -> Result<(), Stop> {
        let payload = m.payload.bytes();
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
                rsv: 0,
                opcode,
                mask: self.mask(MaskSpec::Random),
                payload: c.to_vec(),
            };
            frame::encode_into(&f, frame::LengthEncoding::Minimal, None, &mut out);
        }
        let mut line = describe_expected(m.kind, &payload);
        if n > 1 {
            line.push_str(&format!(" in {n} fragments of {size}"));
        }
        if let Some(c) = m.chop {
            line.push_str(&format!(" (in chops of {c})"));
        }
        self.t.out(line);
        self.write(&out, m.chop).await
    }

    async fn expect_event(
        &mut self,
        level: Option<Level>,
        expected: String,
        ok: impl Fn(&Event) -> bool,
    ) -> Result<(), Stop> {
        let Some(ev) = self.next().await else {
            return Err(self.timeout_failure(expected));
        };
        if let Event::Violation(v) = ev {
            return Err(violation(v));
        }
        if ok(&ev) {
            return Ok(());
        }
        let reason = format!("expected {expected}, got {}", ev.describe());
        if level == Some(Level::Should) {
            self.run.non_strict.push(Finding::new(reason, expected, ev.describe()));
            if matches!(ev, Event::Close { .. } | Event::Closed(_)) {
                self.ended = true;
            }
            self.conn.unread(ev);
            return Ok(());
        }
        Err(mismatch(reason, expected, &ev))
    }

    async fn expect_message(&mut self, m: &ExpectMessage) -> Result<(), Stop> {
        let want = m.payload.bytes();
        let expected = describe_expected(m.kind, &want);
        let kind = m.kind;
        let Some(ev) = self.next().await else {
            return Err(self.timeout_failure(expected));
        };
        match &ev {
            Event::Violation(v) => Err(violation(v.clone())),
            Event::Message { kind: k, payload, .. } if *k == kind && *payload == want => Ok(()),
            Event::Message { kind: k, payload, .. } if *k == kind && m.level != Some(Level::Should) => {
                let at = payload
                    .iter()
                    .zip(&want)
                    .position(|(a, b)| a != b)
                    .unwrap_or(payload.len().min(want.len()));
                Err(mismatch(
                    format!(
                        "echo differs from what was sent: {} bytes instead of {}, first difference at byte {at}",
                        payload.len(),
                        want.len()
                    ),
                    expected,
                    &ev,
                ))
            }
            _ => {
                self.conn.unread(ev);
                self.expect_event(m.level, expected, |_| false).await
            }
        }
    }

    async fn expect_fail(&mut self, c: &ExpectClose) -> Result<(), Stop> {
        let expected = format!("the target fails the connection with close {}", codes(&c.codes));
        let Some(ev) = self.next().await else {
            return Err(self.timeout_failure(expected));
        };
        match &ev {
            Event::Close { code: Some(code), .. } if c.codes.contains(code) => Ok(()),
            Event::Close { code: Some(code), .. } => Err(mismatch(
                format!("failed the connection with close {code} instead of {}", codes(&c.codes)),
                expected,
                &ev,
            )),
            Event::Close { code: None, .. } => {
                self.run.non_strict.push(Finding::new(
                    "closed without a status code; an endpoint failing the connection SHOULD send one (RFC 6455 §7.1.7)",
                    expected,
                    ev.describe(),
                ));
                Ok(())
            }
            Event::Closed(_) => {
                self.run.non_strict.push(Finding::new(
                    "dropped TCP without sending a close frame; an endpoint failing the connection SHOULD send one (RFC 6455 §7.1.7)",
                    expected,
                    ev.describe(),
                ));
                Ok(())
            }
            Event::Violation(v) => Err(violation(v.clone())),
            _ => Err(mismatch(
                format!("expected the connection to be failed, got {}", ev.describe()),
                expected,
                &ev,
            )),
        }
    }

    async fn expect_close(&mut self, c: &ExpectClose) -> Result<(), Stop> {
        let expected = format!("a close frame with {}", codes(&c.codes));
        let Some(ev) = self.next().await else {
            return Err(self.timeout_failure(expected));
        };
        match &ev {
            Event::Close { code: Some(code), .. } if c.codes.contains(code) => Ok(()),
            Event::Close { code: None, .. } => Ok(()),
            Event::Violation(v) => Err(violation(v.clone())),
            _ => Err(mismatch(
                format!("expected {expected}, got {}", ev.describe()),
                expected,
                &ev,
            )),
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
            .map_err(|e| Stop::Failed(Finding::new(e.to_string(), "close reply", "writes stalled")))?;
        let expected = "a close reply to close 1000".to_string();
        let Some(ev) = self.next().await else {
            return Err(self.timeout_failure(expected));
        };
        match &ev {
            Event::Close { code: Some(1000) | None, .. } => Ok(()),
            Event::Violation(v) => Err(violation(v.clone())),
            _ => Err(mismatch(
                format!("closing handshake: expected the close reply, got {}", ev.describe()),
                expected,
                &ev,
            )),
        }
    }

    async fn expect_response(&mut self, r: &ExpectResponse) -> Result<(), Stop> {
        let expected = format!(
            "HTTP status {}",
            r.status.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" or ")
        );
        let resp = match self.next().await {
            Some(Event::Response(resp)) => resp,
            Some(Event::Violation(v)) => return Err(violation(v)),
            Some(ev) => return Err(mismatch(format!("expected {expected}, got {}", ev.describe()), expected, &ev)),
            None => return Err(self.timeout_failure(expected)),
        };
        let actual = resp.describe();
        let fail = |reason: String| Stop::Failed(Finding::new(reason, expected.clone(), actual.clone()));
        if !r.status.iter().any(|s| s.matches(resp.status)) {
            return Err(fail(format!("status {} instead of {}", resp.status, expected.trim_start_matches("HTTP status "))));
        }
        for h in &r.headers {
            if let Some(problem) = header_problem(h, &resp, self.key.as_deref()) {
                return Err(fail(problem));
            }
        }
        if r.upgraded {
            let problems = resp.upgrade_problems(self.key.as_deref(), &self.offered);
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

fn header_problem(h: &HeaderCheck, resp: &super::handshake::Response, key: Option<&str>) -> Option<String> {
    let values: Vec<&str> = resp.headers(&h.name).collect();
    if h.absent {
        return (!values.is_empty()).then(|| format!("header `{}` must be absent, got {:?}", h.name, values));
    }
    if let Some(allowed) = &h.one_of {
        // Optional header: when present, it must be one of the allowed values.
        return values
            .iter()
            .find(|v| !allowed.iter().any(|a| a == *v))
            .map(|v| format!("header `{}` is {v:?}, not one of {allowed:?}", h.name));
    }
    let Some(first) = values.first() else {
        return Some(format!("header `{}` is missing", h.name));
    };
    if let Some(e) = &h.equals
        && !values.iter().any(|v| v.eq_ignore_ascii_case(e))
    {
        return Some(format!("header `{}` is {first:?}, expected {e:?}", h.name));
    }
    if let Some(tok) = &h.token
        && !resp.has_token(&h.name, tok)
    {
        return Some(format!("header `{}` is {first:?}, which lacks the token {tok:?}", h.name));
    }
    if h.accept {
        let want = key.map(accept_for);
        if want.as_deref() != Some(*first) {
            return Some(format!(
                "header `{}` is {first:?}, expected {:?}",
                h.name,
                want.unwrap_or_default()
            ));
        }
    }
    None
}

fn violation(v: String) -> Stop {
    Stop::Failed(Finding::new(
        format!("protocol violation by the target: {v}"),
        "frames that follow RFC 6455",
        v,
    ))
}

fn codes(c: &[u16]) -> String {
    c.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" or ")
}
