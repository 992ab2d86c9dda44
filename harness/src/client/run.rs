//! Runs one `client.ws.*` case on a connection the client under test
//! opened: judges its request, answers it as the case says, then plays the
//! steps. Returns an `outcome::Run` with the transcript filled in; the
//! levels and the known-failing list are applied by the caller.
//!
//! Must not import the CLI or `client::serve`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::conn::{Conn, Event};
use super::request::Request;
use crate::case::Level;
use crate::case::client_step::{ExpectClose, ExpectTcpClose, FrameSpec, MessageSpec, Script, Step};
use crate::case::ws_step::MaskSpec;
use crate::outcome::{Finding, Run};
use crate::transcript::Transcript;
use crate::wire::frame::{Frame, MessageType, Opcode};

/// What every case of one run shares.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// How long any wait may go without the client doing something.
    pub timeout: Duration,
    /// The `Sec-WebSocket-Key`s of every connection so far.
    pub seen_keys: Arc<Mutex<HashSet<String>>>,
}

impl Ctx {
    pub fn new(timeout: Duration) -> Ctx {
        Ctx {
            timeout,
            seen_keys: Arc::default(),
        }
    }
}

/// The bound on one case: generous against the steps' own deadlines, so a
/// client that trickles cannot hold the run.
pub fn budget(script: &Script, timeout: Duration) -> Duration {
    let pauses: Duration = script
        .steps
        .iter()
        .map(|s| match s {
            Step::Pause(d) | Step::ExpectNothing(d) => d.0,
            Step::ExpectTcpClose(e) => e.within.0,
            Step::ExpectFail(c) | Step::ExpectClose(c) => c.within.map_or(timeout, |d| d.0),
            _ => timeout,
        })
        .sum();
    pauses + timeout * 4
}

enum Verdict {
    Met,
    Failed(Finding),
    NonStrict(Finding),
}

/// Runs the case on `stream`, whose request head was `req`.
pub async fn run(
    script: &Script,
    stream: TcpStream,
    req: &Request,
    leftover: Vec<u8>,
    ctx: &Ctx,
    t: &Transcript,
) -> Run {
    let mut run = Run::default();
    t.inbound(req.raw.clone());
    let request_problem = req.problems(&ctx.seen_keys).into_iter().next();
    let mut conn = Conn::new(stream, leftover, t.clone(), ctx.timeout);
    let response = req.response(&script.response);
    t.out(String::from_utf8_lossy(&response).trim_end().to_string());
    conn.write(&response, None).await;

    for (i, step) in script.steps.iter().enumerate() {
        match play(step, &mut conn, ctx).await {
            Verdict::Met => {}
            Verdict::NonStrict(f) => run.non_strict.push(f),
            Verdict::Failed(mut f) => {
                f.reason = format!("step {}: {}", i + 1, f.reason);
                run.failure = Some(f);
                break;
            }
        }
    }
    let open = !conn.client_closed && !conn.server_closed && !conn.tcp_closed;
    if script.closing && run.failure.is_none() && open {
        conn.send(&Frame::close(Some(1000), b""), None).await;
        let reply = ExpectClose {
            codes: vec![1000],
            within: None,
            other_code: Some(Level::Should),
        };
        match expect_close(&reply, &mut conn, ctx, false).await {
            Verdict::Met => {}
            Verdict::NonStrict(f) => run.non_strict.push(f),
            Verdict::Failed(mut f) => {
                f.reason = format!("closing handshake: {}", f.reason);
                run.failure = Some(f);
            }
        }
    } else if run.failure.is_some() && !conn.server_closed && !conn.tcp_closed {
        // The harness fails the connection it judged.
        conn.send(&Frame::close(Some(1002), b""), None).await;
    }
    conn.close_tcp().await;
    if let Some(p) = request_problem {
        run.failure = Some(Finding::new(
            format!("the client's opening request: {p}"),
            "a valid RFC 6455 §4.1 upgrade request",
            req.raw.lines().next().unwrap_or("").to_string(),
        ));
    }
    run
}

async fn play(step: &Step, conn: &mut Conn, ctx: &Ctx) -> Verdict {
    match step {
        Step::Send(f) => {
            let frame = server_frame(f);
            conn.send(&frame, f.chop).await;
            Verdict::Met
        }
        Step::Message(m) => {
            send_message(m, conn).await;
            Verdict::Met
        }
        Step::Raw(r) => {
            let bytes = r.bytes.bytes();
            conn.note_out(format!(
                "raw {} bytes {}",
                bytes.len(),
                crate::transcript::preview(&bytes)
            ));
            conn.write(&bytes, r.chop).await;
            Verdict::Met
        }
        Step::Pause(d) => {
            tokio::time::sleep(d.0).await;
            Verdict::Met
        }
        Step::CloseTcp => {
            conn.close_tcp().await;
            conn.tcp_closed = true;
            Verdict::Met
        }
        Step::ExpectMessage(m) => {
            let want = m.payload.bytes();
            let text = m.kind == MessageType::Text;
            let kind = if text { "text" } else { "binary" };
            let expected = format!(
                "an echo: a {kind} message of {} bytes {}",
                want.len(),
                crate::transcript::preview(&want)
            );
            match next_event(conn, ctx.timeout).await {
                Some(Event::Message { text: t, payload }) if t == text && payload == want => {
                    Verdict::Met
                }
                Some(ev @ Event::Message { .. }) => Verdict::Failed(Finding::new(
                    "the echo differs from the message sent".to_string(),
                    expected,
                    ev.describe(),
                )),
                Some(ev) => Verdict::Failed(Finding::new(
                    format!("expected an echo, got {}", ev.describe()),
                    expected,
                    ev.describe(),
                )),
                None => Verdict::Failed(timeout_finding("no echo", expected, ctx.timeout)),
            }
        }
        Step::ExpectPong(p) => {
            let want = p.payload.bytes();
            let expected = format!("a pong {}", crate::transcript::preview(&want));
            match next_event(conn, ctx.timeout).await {
                Some(Event::Pong(got)) if got == want => Verdict::Met,
                Some(ev) => Verdict::Failed(Finding::new(
                    format!(
                        "expected a pong with the ping's payload, got {}",
                        ev.describe()
                    ),
                    expected,
                    ev.describe(),
                )),
                None => Verdict::Failed(timeout_finding("no pong", expected, ctx.timeout)),
            }
        }
        Step::ExpectFail(c) => expect_close(c, conn, ctx, true).await,
        Step::ExpectClose(c) => expect_close(c, conn, ctx, false).await,
        Step::ExpectNothing(d) => {
            let deadline = Instant::now() + d.0;
            match conn.next(deadline).await {
                None => Verdict::Met,
                Some(ev) => Verdict::Failed(Finding::new(
                    format!(
                        "expected nothing for {}, got {}",
                        crate::text::duration(d.0),
                        ev.describe()
                    ),
                    "nothing",
                    ev.describe(),
                )),
            }
        }
        Step::ExpectTcpClose(e) => expect_tcp_close(e, conn).await,
        Step::ExpectMasksVary => {
            let keys = &conn.masks;
            if keys.len() < 2 {
                Verdict::Failed(Finding::new(
                    format!(
                        "only {} masked frames seen: the case needs at least two",
                        keys.len()
                    ),
                    "two or more frames",
                    format!("{}", keys.len()),
                ))
            } else if keys.iter().all(|k| *k == keys[0]) {
                Verdict::Failed(Finding::new(
                    format!(
                        "all {} frames from the client used the same masking key {}: keys must be unpredictable (§5.3)",
                        keys.len(),
                        hex(&keys[0])
                    ),
                    "a fresh masking key per frame",
                    hex(&keys[0]),
                ))
            } else {
                Verdict::Met
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn timeout_finding(what: &str, expected: String, after: Duration) -> Finding {
    Finding::new(
        format!("{what} within {}", crate::text::duration(after)),
        expected,
        format!("nothing within {}", crate::text::duration(after)),
    )
}

/// The next event within `within`.
async fn next_event(conn: &mut Conn, within: Duration) -> Option<Event> {
    conn.next(Instant::now() + within).await
}

fn server_frame(f: &FrameSpec) -> Frame {
    let mut frame = Frame::new(f.opcode.0, f.payload.bytes())
        .with_fin(f.fin)
        .with_rsv(f.rsv);
    match f.mask {
        None | Some(MaskSpec::Unmasked) => {}
        Some(MaskSpec::Random) => frame = frame.masked(fastrand::u32(..).to_be_bytes()),
        Some(MaskSpec::Key(k)) => frame = frame.masked(k),
    }
    frame
}

async fn send_message(m: &MessageSpec, conn: &mut Conn) {
    let payload = m.payload.bytes();
    let op = match m.kind {
        MessageType::Text => Opcode::Text,
        MessageType::Binary => Opcode::Binary,
    };
    let size = m.fragment.unwrap_or(payload.len().max(1));
    let pieces: Vec<&[u8]> = if payload.is_empty() {
        vec![&payload[..]]
    } else {
        payload.chunks(size).collect()
    };
    let n = pieces.len();
    let mut bytes = Vec::with_capacity(payload.len() + 14 * n);
    for (i, p) in pieces.into_iter().enumerate() {
        let f = Frame::new(if i == 0 { op } else { Opcode::Continuation }, p).with_fin(i + 1 == n);
        // A long fragmented message would flood the transcript.
        if i < 3 || i + 1 == n {
            conn.note_out(f.summary());
        }
        bytes.extend_from_slice(&crate::wire::frame::encode(&f));
    }
    conn.write(&bytes, m.chop).await;
}

/// The client closes with one of the codes. `failing`: the client is to
/// fail the connection, so a bare TCP close or a close without a code meets
/// only the SHOULD of §7.1.7 (non-strict).
async fn expect_close(c: &ExpectClose, conn: &mut Conn, ctx: &Ctx, failing: bool) -> Verdict {
    if failing && (conn.client_closed || conn.tcp_closed) {
        return Verdict::Met;
    }
    let within = c.within.map_or(ctx.timeout, |d| d.0);
    let codes = if c.codes.is_empty() {
        "no code".to_string()
    } else {
        c.codes
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let expected = format!("close {codes}");
    let what = if failing {
        "the client fails the connection"
    } else {
        "the client's close frame"
    };
    let deadline = Instant::now() + within;
    loop {
        let ev = conn.next(deadline).await;
        return match ev {
            None => Verdict::Failed(Finding::new(
                format!(
                    "{} within {}: expected close {codes}",
                    if failing {
                        "the client did not fail the connection"
                    } else {
                        "no close frame from the client"
                    },
                    crate::text::duration(within)
                ),
                expected,
                format!("nothing within {}", crate::text::duration(within)),
            )),
            // No codes: any close frame answers.
            Some(Event::Close { code: Some(k), .. })
                if c.codes.is_empty() || c.codes.contains(&k) =>
            {
                Verdict::Met
            }
            Some(Event::Close { code: None, .. }) if c.codes.is_empty() => Verdict::Met,
            Some(Event::Close { code: None, .. }) if failing => Verdict::NonStrict(Finding::new(
                format!("{what}: a close frame without a status code (§7.1.7: SHOULD send one)"),
                expected,
                "close with no code",
            )),
            Some(Event::Close { code, .. }) => {
                let got = code.map_or("close with no code".to_string(), |k| format!("close {k}"));
                let finding =
                    Finding::new(format!("expected close {codes}, got {got}"), expected, got);
                if c.other_code == Some(Level::Should) {
                    Verdict::NonStrict(finding)
                } else {
                    Verdict::Failed(finding)
                }
            }
            Some(Event::TcpClosed) if failing => Verdict::NonStrict(Finding::new(
                "the client closed TCP without a close frame (§7.1.7: SHOULD send a close frame with a status code)",
                expected,
                "TCP close",
            )),
            // An unsolicited pong is allowed (§5.5.3) while waiting for a
            // clean close; when failing, any answer is a missed failure.
            Some(Event::Pong(_)) if !failing => continue,
            Some(ev) => Verdict::Failed(Finding::new(
                if failing {
                    format!(
                        "the client did not fail the connection: it sent {}",
                        ev.describe()
                    )
                } else {
                    format!("expected close {codes}, got {}", ev.describe())
                },
                expected,
                ev.describe(),
            )),
        };
    }
}

async fn expect_tcp_close(e: &ExpectTcpClose, conn: &mut Conn) -> Verdict {
    let deadline = Instant::now() + e.within.0;
    let expected = format!("a TCP close within {}", e.within);
    loop {
        match conn.next(deadline).await {
            Some(Event::TcpClosed) => return Verdict::Met,
            None => {
                return Verdict::Failed(Finding::new(
                    format!(
                        "the client kept the connection open for {}",
                        crate::text::duration(e.within.0)
                    ),
                    expected,
                    "still open",
                ));
            }
            Some(Event::Close { .. }) if !e.quiet => continue,
            // Bytes that are no frame at all: typically a client that
            // kept the refused connection for its next HTTP request.
            Some(Event::Violation(v)) if e.quiet => {
                return Verdict::Failed(Finding::new(
                    format!("the client did not close the refused connection: {v}"),
                    expected,
                    v,
                ));
            }
            Some(ev) => {
                return Verdict::Failed(Finding::new(
                    if e.quiet {
                        format!(
                            "the client took the handshake as valid: it sent {}",
                            ev.describe()
                        )
                    } else {
                        format!("expected a TCP close, got {}", ev.describe())
                    },
                    expected,
                    ev.describe(),
                ));
            }
        }
    }
}
