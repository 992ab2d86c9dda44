//! A deliberately simple WebSocket echo server over raw TCP with exactly one
//! injected fault, used to prove that case families can fail.
//!
//! It is independent of the reference server and of any WebSocket library:
//! the upgrade is parsed with `httparse`, the accept key computed with
//! `sha1` + `base64`, and frames decoded with `pushspec::wire::frame` (which
//! enforces no protocol rules itself). With [`Fault::None`] it follows
//! RFC 6455 for everything the `ws.*` families check; every other variant
//! breaks exactly one rule.
//!
//! Besides RFC 6455 it has a fixed policy the tests declare in their
//! profile: only [`ALLOWED_ORIGIN`] (or no `Origin`) may connect, and it
//! keeps idle connections open.
//!
//! It supports permessage-deflate (RFC 7692, with `flate2`): the first
//! valid offer is accepted and answered as made (`server_max_window_bits=8`
//! is declined: zlib cannot deflate with a 256-byte window), compressed
//! messages are inflated frame by frame as they arrive (limit
//! [`MAX_MESSAGE`], 1009; invalid data 1002; UTF-8 checked on the inflated
//! bytes), and echoed compressed; uncompressed ones are echoed
//! uncompressed.
//!
//! Every read and write has a timeout and every buffer is bounded (except
//! the outbox of [`Fault::UnboundedBuffering`], which is the point). After
//! sending a close frame the server shuts down its write side and drains
//! reads until EOF (or [`DRAIN`]) before dropping the socket: closing with
//! unread bytes would make the kernel send a RST, and the client could lose
//! the close frame.

#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use pushspec::wire::frame::{self, Frame, FrameError, Header, Opcode};
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
    /// Answers `Sec-WebSocket-Protocol: superchat` on every upgrade, whatever was offered.
    SelectsUnofferedProtocol,
    /// Never selects a subprotocol, even the one it supports when offered.
    IgnoresSubprotocols,
    /// Echoes at most [`TRUNCATE_AT`] bytes of a message.
    TruncatesLongMessages,
    /// Echoes messages longer than [`CORRUPT_AT`] with that byte flipped
    /// (`*` becomes `+`).
    CorruptsLongMessages,
    /// Treats unmasked client frames like masked ones instead of failing.
    AcceptsUnmasked,
    /// Fails unmasked client frames only when they carry payload: an empty
    /// unmasked frame is taken as if it were masked (there is nothing to
    /// unmask).
    AcceptsUnmaskedEmpty,
    /// Writes the length of data and pong frames of 0-125 bytes in a 16-bit
    /// field (RFC 6455 §5.2: the minimal number of bytes MUST be used).
    Length16ForShortFrames,
    /// Writes the length of data frames of 126-65535 bytes in a 64-bit field.
    Length64ForMediumFrames,
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
    /// Fails connections by closing TCP, without a close frame.
    DropsTcpOnError,

    // ws.handshake
    /// Upgrades a request whatever its method, HTTP version, `Host` and
    /// `Upgrade` headers (only the WebSocket headers are checked).
    UpgradesAnyRequest,
    /// Upgrades whatever the `Origin` (instead of 403 for one not allowed).
    IgnoresOrigin,
    /// Answers an offered `Sec-WebSocket-Extensions` by echoing it back.
    EchoesUnknownExtension,
    /// Answers 400 to a permessage-deflate offer with an unknown parameter
    /// or a malformed value, instead of declining the offer (as Node ws
    /// does): one cause behind every `ws.deflate.decline-*` failure.
    RejectsUnusualOffers,
    /// Takes [`SLOW_INFLATE`] before inflating each compressed frame, as a
    /// single-threaded server does on a busy machine: slower than a 2 s
    /// timeout, well within a confirmation's.
    InflatesSlowly,
    /// Takes the first `Host` and `Sec-WebSocket-Version` line and ignores
    /// duplicates (a missing Host is still refused).
    IgnoresDuplicateHeaders,
    /// On a request head above [`MAX_HEAD`]: drops the connection without an
    /// answer and stops accepting connections, like a crashed process.
    CrashesOnOversizedHead,
    /// On a request head above [`MAX_HEAD`]: never answers, reads and
    /// discards until the client goes away.
    HangsOnOversizedHead,

    // ws.fragmentation
    /// Echoes each data frame as soon as it arrives, as a message of its own,
    /// instead of reassembling the message.
    EchoesFragmentsSeparately,
    /// Ignores a continuation frame that has nothing to continue.
    AcceptsOrphanContinuation,
    /// A new data frame while a message is open replaces the open message.
    RestartsOnNewDataFrame,
    /// Answers pings that arrive inside a fragmented message only once the
    /// message is complete.
    DefersPingsInFragments,

    // ws.utf8
    /// Never validates text: invalid UTF-8 is echoed.
    SkipsUtf8Validation,
    /// Fails invalid UTF-8 with 1002 instead of 1007.
    Utf8Fails1002,
    /// Refuses text with a Unicode noncharacter (U+FDD0..U+FDEF, and the
    /// last two code points of every plane) with 1007, as if they were
    /// invalid UTF-8: they are valid scalar values.
    Utf8RefusesNoncharacters,
    /// Validates each frame's payload on its own, so a code point split
    /// across fragments is refused.
    ValidatesEachFrameAlone,
    /// Validates text only when the message is complete (no fail-fast).
    ValidatesUtf8AtMessageEnd,
    /// Validates every fragment of a text message as it streams in except
    /// the final one, which ends the message unchecked.
    Utf8SkipsFinalFragment,
    /// Checks that a text message does not end inside a code point only
    /// when its final fragment carries bytes: an empty final fragment ends
    /// the message unchecked.
    Utf8IgnoresEmptyFinalFragment,
    /// Validates the continuation frames of binary messages as UTF-8 too
    /// (1007), as if binary were text: invalid sequences, and one left
    /// incomplete at the end of the message.
    ValidatesBinaryContinuations,

    // ws.close
    /// Answers every close code with the same code, valid or not.
    EchoesInvalidCloseCodes,
    /// Answers a valid close frame by closing TCP, without the close frame
    /// it is due (RFC 6455 §5.5.1: the endpoint MUST send one).
    NoCloseReply,
    /// Does not validate the UTF-8 of close reasons.
    IgnoresCloseReasonUtf8,
    /// Never closes TCP itself: after the closing handshake (or failing the
    /// connection) it waits for the client to close.
    KeepsTcpOpen,
    /// After answering a close frame, goes on handling frames for
    /// [`AFTER_CLOSE`]: echoes, pongs, further close replies.
    AnswersAfterClose,

    // ws.limits
    /// Refuses messages above [`MESSAGE_LIMIT`] with 1009 (an undeclared limit
    /// unless the profile declares it).
    MessageLimit1MiB,
    /// Refuses messages of more than [`FRAGMENT_LIMIT`] fragments with 1008.
    FragmentLimit1000,
    /// Refuses messages of more than [`FRAGMENT_LIMIT`] fragments with
    /// 1009, then stops reading (for [`STOP_READING`]) without closing TCP:
    /// a client writing a large message in small fragments blocks while the
    /// close frame is already on its way (python websockets with
    /// `max_size=None` behaves like this).
    Closes1009AfterFragmentsStopsReading,
    /// Does not refuse a frame from its declared length: waits for a payload
    /// of any size.
    WaitsForHugeFrame,

    // ws.timing
    /// Sends each pong [`PONG_DELAY`] late.
    SlowPong,
    /// Keeps reading while the client does not read, queueing echoes in memory
    /// without bound.
    UnboundedBuffering,
    /// Closes connections idle for [`IDLE_CLOSE`] with 1001.
    ClosesIdleConnections,

    // ws.deflate
    /// Answers `client_max_window_bits=15` when the accepted offer does not
    /// contain `client_max_window_bits` (RFC 7692 §7.1.2.2: MUST NOT).
    DeflateAnswersUnofferedParam,
    /// Accepts the first `permessage-deflate` offer whatever its
    /// parameters, echoing them as they came (§5: MUST decline).
    DeflateAcceptsInvalidOffers,
    /// Answers `server_no_context_takeover` but keeps its compressor's
    /// context across messages (§7.1.1.1).
    DeflateKeepsServerContext,
    /// Takes RSV1 on a continuation frame as if it were clear (§6.1).
    DeflateAcceptsRsv1Continuation,
    /// Inflates every message cold, as if `client_no_context_takeover` had
    /// been agreed: a message referring back into the previous one cannot
    /// be inflated (§7.1.1.2: the client may take its context over).
    DeflateDropsClientContext,
    /// Inflates without a size limit: a decompression bomb is inflated whole
    /// and echoed.
    DeflateNoInflateLimit,
    /// Not a fault: keeps a message limit of [`LARGE_LIMIT`] (100 MiB, Node
    /// ws's default) instead of [`MAX_MESSAGE`], for the harness's messages
    /// above its own 64 MiB buffer.
    LimitAbove64MiB,
    /// Compresses with a 15-bit (32 KiB) window whatever
    /// `server_max_window_bits` it answered (RFC 7692 §7.1.2.1: the server
    /// MUST NOT use a larger window).
    DeflateIgnoresServerWindow,
}

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest request head buffered before answering 431.
const MAX_HEAD: usize = 16 * 1024;
/// Largest frame payload and reassembled (or inflated) message (close 1009
/// above it).
pub const MAX_MESSAGE: usize = 32 << 20;
/// The limit of [`Fault::LimitAbove64MiB`].
pub const LARGE_LIMIT: usize = 100 << 20;
/// How long a read may wait for a single byte.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reads are drained after the server's close frame.
const DRAIN: Duration = Duration::from_secs(1);
/// Where [`Fault::TruncatesLongMessages`] cuts an echo.
pub const TRUNCATE_AT: usize = 65535;
/// The byte [`Fault::CorruptsLongMessages`] flips.
pub const CORRUPT_AT: usize = (3 << 20) + 5;
/// The key [`Fault::MasksServerFrames`] masks with.
const SERVER_MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
/// The one `Origin` the fixture accepts (besides none at all).
pub const ALLOWED_ORIGIN: &str = "http://allowed.pushspec.test";
/// [`Fault::MessageLimit1MiB`]'s limit.
pub const MESSAGE_LIMIT: usize = 1 << 20;
/// [`Fault::FragmentLimit1000`]'s limit.
pub const FRAGMENT_LIMIT: u64 = 1000;
/// How long [`Fault::Closes1009AfterFragmentsStopsReading`] stays
/// connected without reading after its close frame.
pub const STOP_READING: Duration = Duration::from_secs(4);
/// [`Fault::SlowPong`]'s delay.
pub const PONG_DELAY: Duration = Duration::from_millis(700);
/// [`Fault::ClosesIdleConnections`]'s idle time.
pub const IDLE_CLOSE: Duration = Duration::from_millis(300);
/// How long [`Fault::AnswersAfterClose`] keeps handling frames.
const AFTER_CLOSE: Duration = Duration::from_millis(200);

/// [`Fault::Utf8RefusesNoncharacters`]: U+FDD0..U+FDEF and U+xFFFE, U+xFFFF.
fn is_noncharacter(c: char) -> bool {
    let c = c as u32;
    (0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE
}

/// Binds `127.0.0.1:0` and serves in the background (one task per
/// connection) until the calling runtime shuts down.
pub async fn spawn(fault: Fault) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the broken WebSocket fixture on 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    let crashed = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                // Fault::CrashesOnOversizedHead: the "process" is gone; the
                // listener closes with this connection.
                Ok(_) if crashed.load(Ordering::SeqCst) => return,
                Ok((stream, _)) => {
                    tokio::spawn(Conn::new(stream, fault, crashed.clone()).serve());
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

/// An accepted permessage-deflate offer.
#[derive(Clone, Copy, Debug, Default)]
struct Agreed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: u8,
}

/// What to answer an upgrade request with.
enum Answer {
    Upgrade {
        accept: String,
        protocol: Option<&'static str>,
        extensions: Option<String>,
        deflate: Option<Agreed>,
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
            Answer::Upgrade {
                accept,
                protocol,
                extensions,
                ..
            } => {
                let mut s = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                );
                if let Some(p) = protocol {
                    s.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
                }
                if let Some(e) = extensions {
                    s.push_str(&format!("Sec-WebSocket-Extensions: {e}\r\n"));
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

/// `8`..`15`, decimal without leading zeros.
fn window_bits(v: &str) -> Option<u8> {
    match v {
        "8" | "9" | "10" | "11" | "12" | "13" | "14" | "15" => v.parse().ok(),
        _ => None,
    }
}

/// The elements of `Sec-WebSocket-Extensions` lines: name and parameters
/// (quoted values unquoted). `None` if a line does not parse. A simple
/// parser: no `,` or `;` inside quoted values.
/// An extension list element: the name and its parameters.
type Element = (String, Vec<(String, Option<String>)>);

fn extension_elements(lines: &[&[u8]]) -> Option<Vec<Element>> {
    let mut out = Vec::new();
    for line in lines {
        let line = std::str::from_utf8(line).ok()?;
        for element in line.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts = element.split(';').map(str::trim);
            let name = parts.next()?.to_string();
            let mut params = Vec::new();
            for p in parts {
                let (k, v) = match p.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim())),
                    None => (p, None),
                };
                if k.is_empty() {
                    return None;
                }
                let v = match v {
                    Some(v) if v.starts_with('"') => {
                        Some(v.strip_prefix('"')?.strip_suffix('"')?.to_string())
                    }
                    Some(v) => Some(v.to_string()),
                    None => None,
                };
                params.push((k.to_string(), v));
            }
            out.push((name, params));
        }
    }
    Some(out)
}

/// Picks the first acceptable permessage-deflate offer: the agreement and
/// the answer's value.
/// How long [`Fault::InflatesSlowly`] pauses before each compressed frame.
pub const SLOW_INFLATE: Duration = Duration::from_millis(3000);

/// A permessage-deflate offer with a parameter RFC 7692 does not define, a
/// value where none belongs, or a window size out of range.
fn unusual_offer(lines: &[&[u8]]) -> bool {
    let Some(elements) = extension_elements(lines) else {
        return !lines.is_empty();
    };
    elements
        .iter()
        .filter(|(name, _)| name == "permessage-deflate")
        .any(|(_, params)| {
            params.iter().any(|(k, v)| match k.as_str() {
                "server_no_context_takeover" | "client_no_context_takeover" => v.is_some(),
                "server_max_window_bits" => v.as_deref().and_then(window_bits).is_none(),
                "client_max_window_bits" => v.as_deref().is_some_and(|v| window_bits(v).is_none()),
                _ => true,
            })
        })
}

fn negotiate_deflate(lines: &[&[u8]], fault: Fault) -> Option<(Agreed, String)> {
    let elements = extension_elements(lines)?;
    for (name, params) in elements {
        if name != "permessage-deflate" {
            continue;
        }
        if fault == Fault::DeflateAcceptsInvalidOffers {
            let mut answer = name.clone();
            let mut a = Agreed {
                server_max_window_bits: 15,
                ..Agreed::default()
            };
            for (k, v) in &params {
                // A bare client_max_window_bits is not answered (as by a
                // correct server): valid offers get the correct answer.
                if k == "client_max_window_bits" && v.is_none() {
                    continue;
                }
                answer.push_str(&format!("; {k}"));
                if let Some(v) = v {
                    answer.push_str(&format!("={v}"));
                }
                match (k.as_str(), v.as_deref().and_then(window_bits)) {
                    ("server_no_context_takeover", _) => a.server_no_context_takeover = true,
                    ("client_no_context_takeover", _) => a.client_no_context_takeover = true,
                    ("server_max_window_bits", Some(b)) if b > 8 => a.server_max_window_bits = b,
                    _ => {}
                }
            }
            return Some((a, answer));
        }
        let mut a = Agreed {
            server_max_window_bits: 15,
            ..Agreed::default()
        };
        let mut answer = String::from("permessage-deflate");
        let mut seen: Vec<&str> = Vec::new();
        let mut client_window = false;
        let valid = params.iter().all(|(k, v)| {
            if seen.contains(&k.as_str()) {
                return false;
            }
            seen.push(k);
            match (k.as_str(), v.as_deref()) {
                ("server_no_context_takeover", None) => {
                    a.server_no_context_takeover = true;
                    true
                }
                ("client_no_context_takeover", None) => {
                    a.client_no_context_takeover = true;
                    true
                }
                // zlib cannot deflate with a 256-byte window: declined.
                ("server_max_window_bits", Some(v)) => window_bits(v).is_some_and(|b| {
                    a.server_max_window_bits = b;
                    b > 8
                }),
                ("client_max_window_bits", None) => {
                    client_window = true;
                    true
                }
                ("client_max_window_bits", Some(v)) => {
                    client_window = true;
                    window_bits(v).is_some()
                }
                _ => false,
            }
        });
        if !valid {
            continue;
        }
        // Answered as offered (a bare client_max_window_bits is not answered).
        for (k, v) in &params {
            if k == "client_max_window_bits" && v.is_none() {
                continue;
            }
            answer.push_str(&format!("; {k}"));
            if let Some(v) = v {
                answer.push_str(&format!("={v}"));
            }
        }
        if fault == Fault::DeflateAnswersUnofferedParam && !client_window {
            answer.push_str("; client_max_window_bits=15");
        }
        return Some((a, answer));
    }
    None
}

/// Decides the answer to a complete request head (RFC 6455 §4.2.1, §4.4).
fn answer(req: &httparse::Request<'_, '_>, fault: Fault) -> Answer {
    let h: &[httparse::Header<'_>] = req.headers;
    let http_checked = fault != Fault::UpgradesAnyRequest;
    if http_checked && req.method != Some("GET") {
        return Answer::Reject {
            status: 405,
            reason: "Method Not Allowed",
            extra: "Allow: GET\r\n",
        };
    }
    if http_checked && req.version != Some(1) {
        return Answer::reject(400, "Bad Request");
    }
    // RFC 9112 §3.2: exactly one Host.
    let hosts = values(h, "Host").len();
    if http_checked && (hosts == 0 || (hosts > 1 && fault != Fault::IgnoresDuplicateHeaders)) {
        return Answer::reject(400, "Bad Request");
    }
    if http_checked && !has_token(h, "Upgrade", "websocket") {
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
    let mut versions = values(h, "Sec-WebSocket-Version");
    if fault == Fault::IgnoresDuplicateHeaders {
        versions.truncate(1);
    }
    if fault != Fault::IgnoresVersion && versions.as_slice() != [b"13"] {
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
    if fault != Fault::IgnoresOrigin
        && values(h, "Origin")
            .iter()
            .any(|o| !o.eq_ignore_ascii_case(ALLOWED_ORIGIN.as_bytes()))
    {
        return Answer::reject(403, "Forbidden");
    }
    // permessage-deflate is the only extension the fixture supports.
    let offers = values(h, "Sec-WebSocket-Extensions");
    if fault == Fault::RejectsUnusualOffers && unusual_offer(&offers) {
        return Answer::reject(400, "Bad Request");
    }
    let (deflate, extensions) = match offers.first() {
        Some(offer) if fault == Fault::EchoesUnknownExtension => {
            (None, Some(String::from_utf8_lossy(offer).into_owned()))
        }
        _ => match negotiate_deflate(&offers, fault) {
            Some((agreed, answer)) => (Some(agreed), Some(answer)),
            None => (None, None),
        },
    };
    Answer::Upgrade {
        accept: accept_for(&key, fault),
        // The fixture supports one subprotocol, `chat`.
        protocol: match fault {
            Fault::SelectsUnofferedProtocol => Some("superchat"),
            Fault::IgnoresSubprotocols => None,
            _ => values(h, "Sec-WebSocket-Protocol")
                .iter()
                .flat_map(|v| v.split(|b| *b == b','))
                .any(|p| p.trim_ascii() == b"chat")
                .then_some("chat"),
        },
        extensions,
        deflate,
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
    /// Inflated, for a compressed message.
    payload: Vec<u8>,
    frames: u64,
    compressed: bool,
    /// How much of a text payload is known to be valid UTF-8 (up to a
    /// character boundary).
    checked: usize,
}

fn is_data(op: Opcode) -> bool {
    matches!(op, Opcode::Text | Opcode::Binary)
}

/// How a (partial) text payload stands: valid so far up to a character
/// boundary, or invalid.
fn utf8_prefix(bytes: &[u8]) -> Result<usize, ()> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(bytes.len()),
        Err(e) if e.error_len().is_none() => Ok(e.valid_up_to()),
        Err(_) => Err(()),
    }
}

struct Conn {
    stream: TcpStream,
    /// Received bytes; `buf[start..]` is not yet consumed.
    buf: Vec<u8>,
    start: usize,
    scratch: Vec<u8>,
    fault: Fault,
    crashed: Arc<AtomicBool>,
    /// Pongs held back by [`Fault::DefersPingsInFragments`].
    deferred: Vec<Vec<u8>>,
    /// [`Fault::UnboundedBuffering`]: encoded frames not yet written.
    outbox: Vec<u8>,
    /// [`Fault::AnswersAfterClose`]: handle frames until then, then finish.
    after_close: Option<Instant>,
    /// permessage-deflate in force.
    deflate: Option<Deflate>,
}

/// The compression state of a permessage-deflate connection.
struct Deflate {
    agreed: Agreed,
    inflate: Decompress,
    compress: Compress,
}

/// Removed from the end of a compressed message, appended before inflating.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

impl Deflate {
    fn new(mut agreed: Agreed, fault: Fault) -> Deflate {
        // The answer is written already: only the inflater forgets.
        if fault == Fault::DeflateDropsClientContext {
            agreed.client_no_context_takeover = true;
        }
        let window = if fault == Fault::DeflateIgnoresServerWindow {
            15
        } else {
            agreed.server_max_window_bits
        };
        Deflate {
            agreed,
            // A 15-bit window inflates whatever a smaller one does.
            inflate: Decompress::new_with_window_bits(false, 15),
            compress: Compress::new_with_window_bits(Compression::default(), false, window),
        }
    }

    /// Inflates `input` onto `out`: 1002 for invalid data, 1009 once `out`
    /// would pass `limit`.
    fn inflate(&mut self, mut input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), u16> {
        const STEP: usize = 64 * 1024;
        loop {
            if out.capacity() - out.len() < STEP {
                out.reserve(STEP);
            }
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| 1002u16)?;
            let consumed = (self.inflate.total_in() - in0) as usize;
            let produced = (self.inflate.total_out() - out0) as usize;
            input = &input[consumed..];
            if out.len() > limit {
                return Err(1009);
            }
            if status == Status::StreamEnd {
                // BFINAL: whatever follows starts a new stream.
                self.inflate.reset(false);
                if input.is_empty() {
                    return Ok(());
                }
                continue;
            }
            let room_left = out.len() < out.capacity();
            if input.is_empty() && room_left {
                return Ok(());
            }
            if consumed == 0 && produced == 0 && room_left {
                return Err(1002);
            }
        }
    }

    /// The end of a compressed message: the tail, then a reset without
    /// client context takeover.
    fn finish_inflate(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), u16> {
        let r = self.inflate(&TAIL, out, limit);
        if r.is_err() || self.agreed.client_no_context_takeover {
            self.inflate.reset(false);
        }
        r
    }

    /// The compressed payload of one message (sync flush, tail removed).
    fn compress(&mut self, message: &[u8], keep_context: bool) -> Vec<u8> {
        if message.is_empty() {
            return vec![0x00];
        }
        let mut out = Vec::with_capacity(message.len() / 2 + 64);
        let mut input = message;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let before = self.compress.total_in();
            self.compress
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("raw deflate with a sync flush");
            input = &input[(self.compress.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if self.agreed.server_no_context_takeover && !keep_context {
            self.compress.reset();
        }
        out
    }
}

impl Conn {
    fn new(stream: TcpStream, fault: Fault, crashed: Arc<AtomicBool>) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            buf: Vec::with_capacity(8 * 1024),
            start: 0,
            scratch: vec![0; 64 * 1024],
            fault,
            crashed,
            deferred: Vec::new(),
            outbox: Vec::new(),
            after_close: None,
            deflate: None,
        }
    }

    async fn serve(mut self) {
        if let Ok(true) = self.handshake().await {
            self.frames().await;
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Reads more bytes into `buf`; `Ok(0)` at EOF, an error on timeout.
    async fn read_more(&mut self) -> io::Result<usize> {
        self.read_more_within(READ_TIMEOUT).await
    }

    async fn read_more_within(&mut self, within: Duration) -> io::Result<usize> {
        if self.fault == Fault::UnboundedBuffering {
            return self.read_or_flush(within).await;
        }
        let n = tokio::time::timeout(within, self.stream.read(&mut self.scratch))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read timed out"))??;
        self.buf.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }

    /// [`Fault::UnboundedBuffering`]: reads whenever there is something to
    /// read, and writes queued echoes whenever the socket takes them.
    async fn read_or_flush(&mut self, within: Duration) -> io::Result<usize> {
        let until = Instant::now() + within;
        loop {
            tokio::select! {
                r = self.stream.readable() => {
                    r?;
                    match self.stream.try_read(&mut self.scratch) {
                        Ok(n) => {
                            self.buf.extend_from_slice(&self.scratch[..n]);
                            return Ok(n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                w = self.stream.writable(), if !self.outbox.is_empty() => {
                    w?;
                    self.flush_some()?;
                }
                _ = tokio::time::sleep_until(until) => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"));
                }
            }
        }
    }

    /// Writes as much of the outbox as the socket takes without waiting.
    fn flush_some(&mut self) -> io::Result<()> {
        while !self.outbox.is_empty() {
            match self.stream.try_write(&self.outbox) {
                Ok(n) => {
                    self.outbox.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        tokio::time::timeout(WRITE_TIMEOUT, self.stream.write_all(bytes))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))?
    }

    /// Graceful end: shut down the write side, drain reads until EOF or
    /// [`DRAIN`], then drop the socket.
    async fn finish(&mut self) {
        if !self.outbox.is_empty() {
            let out = std::mem::take(&mut self.outbox);
            let _ = self.write_all(&out).await;
        }
        if self.fault == Fault::KeepsTcpOpen {
            // Wait for the client to close first (bounded).
            let until = Instant::now() + READ_TIMEOUT;
            while let Ok(Ok(n)) =
                tokio::time::timeout_at(until, self.stream.read(&mut self.scratch)).await
            {
                if n == 0 {
                    break;
                }
            }
            return;
        }
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
                Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD => match self.fault {
                    Fault::CrashesOnOversizedHead => {
                        self.crashed.store(true, Ordering::SeqCst);
                        return Ok(false);
                    }
                    Fault::HangsOnOversizedHead => {
                        while self.read_more().await? > 0 {
                            self.buf.clear();
                        }
                        return Ok(false);
                    }
                    _ => break (Answer::reject(431, "Request Header Fields Too Large"), 0),
                },
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
            Answer::Upgrade { deflate, .. } => {
                self.deflate = deflate.map(|a| Deflate::new(a, self.fault));
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
            if let Some(until) = self.after_close
                && Instant::now() >= until
            {
                self.finish().await;
                return;
            }
            let flow = match self.next_frame(partial.as_ref()) {
                Ok(Some(f)) => self.on_frame(f, &mut partial).await,
                Ok(None) => match self.early_utf8_check(partial.as_ref()) {
                    Err(code) => Flow::Fail(code),
                    Ok(()) => self.wait_for_bytes().await,
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

    async fn wait_for_bytes(&mut self) -> Flow {
        let within = match self.after_close {
            Some(until) => until.saturating_duration_since(Instant::now()),
            None if self.fault == Fault::ClosesIdleConnections => IDLE_CLOSE,
            None => READ_TIMEOUT,
        };
        match self.read_more_within(within).await {
            Ok(0) => Flow::Done,
            Ok(_) => Flow::Continue,
            Err(e) if e.kind() == io::ErrorKind::TimedOut && self.after_close.is_some() => {
                Flow::Continue
            }
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut
                    && self.fault == Fault::ClosesIdleConnections =>
            {
                Flow::Fail(1001)
            }
            Err(_) => Flow::Done,
        }
    }

    /// The protocol rules that can be judged from a frame header alone, so a
    /// bad frame fails the connection before its payload arrives.
    fn check_header(&self, h: &Header, partial: Option<&Partial>) -> Result<(), u16> {
        let fault = self.fault;
        let unmasked_ok = fault == Fault::AcceptsUnmasked
            || (fault == Fault::AcceptsUnmaskedEmpty && h.payload_len == 0);
        if h.mask.is_none() && !unmasked_ok {
            return Err(1002);
        }
        // permessage-deflate: RSV1 on the first frame of a data message.
        let rsv1_ok = self.deflate.is_some()
            && (matches!(h.opcode, Opcode::Text | Opcode::Binary)
                || (fault == Fault::DeflateAcceptsRsv1Continuation
                    && h.opcode == Opcode::Continuation));
        let allowed = if rsv1_ok { 0b100 } else { 0 };
        if h.rsv & !allowed != 0 && fault != Fault::IgnoresRsv {
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
        if h.payload_len > self.max_message() as u64 && fault != Fault::WaitsForHugeFrame {
            return Err(1009);
        }
        if fault == Fault::MessageLimit1MiB && !h.opcode.is_control() {
            let open = match (h.opcode, partial) {
                (Opcode::Continuation, Some(p)) => p.payload.len() as u64,
                _ => 0,
            };
            if open + h.payload_len > MESSAGE_LIMIT as u64 {
                return Err(1009);
            }
        }
        Ok(())
    }

    /// The next whole frame in `buf`: `Ok(None)` if more bytes are needed,
    /// `Err(code)` if the connection must be failed.
    fn next_frame(&mut self, partial: Option<&Partial>) -> Result<Option<Frame>, u16> {
        match frame::decode_header(self.data()) {
            Ok(Some(h)) => {
                self.check_header(&h, partial)?;
                if h.payload_len > self.max_message() as u64 {
                    // Fault::WaitsForHugeFrame: wait for the payload (with a
                    // bounded buffer: give up past MAX_HEAD of it).
                    return if self.data().len() > MAX_HEAD {
                        Err(1009)
                    } else {
                        Ok(None)
                    };
                }
            }
            Ok(None) => {}
            Err(_) => return Err(1002),
        }
        match frame::decode(self.data(), self.max_message() as u64) {
            Ok(Some((f, n))) => {
                self.consume(n);
                Ok(Some(f))
            }
            Ok(None) => Ok(None),
            Err(FrameError::PayloadTooLarge { .. }) => Err(1009),
            Err(FrameError::LengthTopBitSet(_)) => Err(1002),
        }
    }

    /// The largest frame payload and (inflated) message taken.
    fn max_message(&self) -> usize {
        if self.fault == Fault::LimitAbove64MiB {
            LARGE_LIMIT
        } else {
            MAX_MESSAGE
        }
    }

    fn utf8_code(&self) -> u16 {
        if self.fault == Fault::Utf8Fails1002 {
            1002
        } else {
            1007
        }
    }

    /// Whether text is validated as it streams in (fail fast).
    fn streams_utf8(&self) -> bool {
        !matches!(
            self.fault,
            Fault::SkipsUtf8Validation | Fault::ValidatesUtf8AtMessageEnd
        )
    }

    /// Fail fast: validates the part of a text frame that has arrived.
    fn early_utf8_check(&self, partial: Option<&Partial>) -> Result<(), u16> {
        if !self.streams_utf8() {
            return Ok(());
        }
        let Ok(Some(h)) = frame::decode_header(self.data()) else {
            return Ok(());
        };
        // Compressed frames are validated once inflated.
        if partial.is_some_and(|p| p.compressed) || (h.rsv != 0 && self.deflate.is_some()) {
            return Ok(());
        }
        if self.fault == Fault::Utf8SkipsFinalFragment && h.fin && h.opcode == Opcode::Continuation
        {
            return Ok(());
        }
        let (carry, text): (&[u8], bool) = match (h.opcode, partial) {
            (Opcode::Text, _) => (&[], true),
            // The frame is judged on its own: nothing carries over.
            (Opcode::Continuation, Some(p)) if self.fault == Fault::ValidatesEachFrameAlone => {
                (&[], p.opcode == Opcode::Text)
            }
            (Opcode::Continuation, Some(p)) => (&p.payload[p.checked..], p.opcode == Opcode::Text),
            _ => return Ok(()),
        };
        if !text {
            return Ok(());
        }
        let avail = &self.data()[h.header_len.min(self.data().len())..];
        let avail = &avail[..avail.len().min(h.payload_len as usize)];
        let mut bytes = carry.to_vec();
        let at = bytes.len();
        bytes.extend_from_slice(avail);
        if let Some(key) = h.mask {
            frame::apply_mask(&mut bytes[at..], key, 0);
        }
        utf8_prefix(&bytes)
            .map(|_| ())
            .map_err(|()| self.utf8_code())
    }

    /// Validates a text payload growing by a frame; `fin`: it is complete.
    fn check_text(&self, p: &mut Partial, frame_start: usize, fin: bool) -> Result<(), u16> {
        let code = self.utf8_code();
        // The last frame of a message in several fragments.
        let final_fragment = fin && p.frames > 1;
        match self.fault {
            Fault::SkipsUtf8Validation => Ok(()),
            Fault::Utf8SkipsFinalFragment if final_fragment => Ok(()),
            Fault::Utf8IgnoresEmptyFinalFragment
                if final_fragment && frame_start == p.payload.len() =>
            {
                Ok(())
            }
            Fault::ValidatesEachFrameAlone => std::str::from_utf8(&p.payload[frame_start..])
                .map(|_| ())
                .map_err(|_| code),
            Fault::Utf8RefusesNoncharacters if fin => match std::str::from_utf8(&p.payload) {
                Ok(text) if !text.chars().any(is_noncharacter) => Ok(()),
                _ => Err(code),
            },
            Fault::ValidatesUtf8AtMessageEnd if !fin => Ok(()),
            Fault::ValidatesUtf8AtMessageEnd => std::str::from_utf8(&p.payload)
                .map(|_| ())
                .map_err(|_| code),
            _ => {
                let ok = utf8_prefix(&p.payload[p.checked..]).map_err(|()| code)?;
                p.checked += ok;
                if fin && p.checked != p.payload.len() {
                    return Err(code);
                }
                Ok(())
            }
        }
    }

    async fn on_frame(&mut self, f: Frame, partial: &mut Option<Partial>) -> Flow {
        match f.opcode {
            Opcode::Text | Opcode::Binary => {
                if partial.is_some() && self.fault != Fault::RestartsOnNewDataFrame {
                    return Flow::Fail(1002);
                }
                let compressed = f.rsv & 0b100 != 0 && self.deflate.is_some();
                let mut p = Partial {
                    opcode: f.opcode,
                    payload: Vec::new(),
                    frames: 1,
                    checked: 0,
                    compressed,
                };
                if compressed {
                    if self.fault == Fault::InflatesSlowly {
                        tokio::time::sleep(SLOW_INFLATE).await;
                    }
                    if let Err(code) = self.inflate_into(&f.payload, &mut p.payload, f.fin) {
                        return Flow::Fail(code);
                    }
                } else {
                    p.payload = f.payload;
                }
                if p.opcode == Opcode::Text
                    && let Err(code) = self.check_text(&mut p, 0, f.fin)
                {
                    return Flow::Fail(code);
                }
                if f.fin {
                    *partial = None;
                    return self.deliver(p.opcode, p.payload, p.compressed).await;
                }
                if self.fault == Fault::EchoesFragmentsSeparately {
                    let piece = p.payload.clone();
                    if let Flow::Done = self.send(Frame::new(p.opcode, piece)).await {
                        return Flow::Done;
                    }
                }
                *partial = Some(p);
                Flow::Continue
            }
            Opcode::Continuation => {
                let Some(p) = partial.as_mut() else {
                    if self.fault == Fault::AcceptsOrphanContinuation {
                        return Flow::Continue;
                    }
                    return Flow::Fail(1002);
                };
                let frame_start = p.payload.len();
                if p.compressed {
                    if let Err(code) = self.inflate_into(&f.payload, &mut p.payload, f.fin) {
                        return Flow::Fail(code);
                    }
                } else {
                    if p.payload.len() + f.payload.len() > self.max_message() {
                        return Flow::Fail(1009);
                    }
                    p.payload.extend_from_slice(&f.payload);
                }
                p.frames += 1;
                if self.fault == Fault::FragmentLimit1000 && p.frames > FRAGMENT_LIMIT {
                    return Flow::Fail(1008);
                }
                if self.fault == Fault::Closes1009AfterFragmentsStopsReading
                    && p.frames > FRAGMENT_LIMIT
                {
                    if let Flow::Continue = self.send(Frame::close(Some(1009), b"")).await {
                        tokio::time::sleep(STOP_READING).await;
                    }
                    return Flow::Done;
                }
                if self.fault == Fault::ValidatesBinaryContinuations && p.opcode == Opcode::Binary {
                    // The text validator, run over the continuation frames
                    // (the first frame went through the binary path).
                    if p.frames == 2 {
                        p.checked = frame_start;
                    }
                    match utf8_prefix(&p.payload[p.checked..]) {
                        Ok(n) => p.checked += n,
                        Err(()) => return Flow::Fail(1007),
                    }
                    if f.fin && p.checked != p.payload.len() {
                        return Flow::Fail(1007);
                    }
                }
                if p.opcode == Opcode::Text {
                    let mut q = partial.take().expect("checked above");
                    let checked = self.check_text(&mut q, frame_start, f.fin);
                    *partial = Some(q);
                    if let Err(code) = checked {
                        return Flow::Fail(code);
                    }
                }
                let p = partial.as_mut().expect("put back above");
                if self.fault == Fault::EchoesFragmentsSeparately && is_data(p.opcode) {
                    let piece = p.payload[frame_start..].to_vec();
                    let opcode = p.opcode;
                    if f.fin {
                        *partial = None;
                    }
                    return self.send(Frame::new(opcode, piece)).await;
                }
                if !f.fin {
                    return Flow::Continue;
                }
                let p = partial.take().expect("checked above");
                let flow = self.deliver(p.opcode, p.payload, p.compressed).await;
                if !matches!(flow, Flow::Continue) {
                    return flow;
                }
                for payload in std::mem::take(&mut self.deferred) {
                    if let Flow::Done = self.send(Frame::pong(payload)).await {
                        return Flow::Done;
                    }
                }
                Flow::Continue
            }
            // Only reached under Fault::AcceptsFragmentedControl.
            Opcode::Ping | Opcode::Pong | Opcode::Close if !f.fin => {
                if partial.is_some() {
                    return Flow::Fail(1002);
                }
                *partial = Some(Partial {
                    opcode: f.opcode,
                    payload: f.payload,
                    frames: 1,
                    checked: 0,
                    compressed: false,
                });
                Flow::Continue
            }
            Opcode::Ping
                if self.fault == Fault::DefersPingsInFragments
                    && partial.as_ref().is_some_and(|p| is_data(p.opcode)) =>
            {
                self.deferred.push(f.payload);
                Flow::Continue
            }
            Opcode::Ping | Opcode::Pong | Opcode::Close => {
                self.deliver(f.opcode, f.payload, false).await
            }
            // Only reached under Fault::IgnoresReservedOpcode.
            Opcode::Reserved(_) => Flow::Continue,
        }
    }

    /// Inflates a frame of a compressed message onto `out` (and the tail
    /// after the final frame): the close code if it fails.
    fn inflate_into(&mut self, input: &[u8], out: &mut Vec<u8>, fin: bool) -> Result<(), u16> {
        let limit = if self.fault == Fault::DeflateNoInflateLimit {
            usize::MAX
        } else {
            self.max_message()
        };
        let d = self
            .deflate
            .as_mut()
            .expect("a compressed message needs deflate");
        d.inflate(input, out, limit)?;
        if fin {
            d.finish_inflate(out, limit)?;
        }
        Ok(())
    }

    /// Handles a complete message (`compressed`: it came compressed, and
    /// the echo is compressed too) or control frame.
    async fn deliver(&mut self, opcode: Opcode, mut payload: Vec<u8>, compressed: bool) -> Flow {
        match opcode {
            Opcode::Text | Opcode::Binary => {
                if self.fault == Fault::TruncatesLongMessages {
                    payload.truncate(TRUNCATE_AT);
                }
                if self.fault == Fault::CorruptsLongMessages
                    && let Some(b) = payload.get_mut(CORRUPT_AT)
                {
                    *b ^= 1;
                }
                let keep = self.fault == Fault::DeflateKeepsServerContext;
                match self.deflate.as_mut() {
                    Some(d) if compressed => {
                        let z = d.compress(&payload, keep);
                        self.send(Frame::new(opcode, z).with_rsv(0b100)).await
                    }
                    _ => self.send(Frame::new(opcode, payload)).await,
                }
            }
            Opcode::Ping => {
                if self.fault == Fault::PongWrongPayload {
                    payload.clear();
                }
                if self.fault == Fault::SlowPong {
                    tokio::time::sleep(PONG_DELAY).await;
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
                if !frame::is_valid_close_code(code) && self.fault != Fault::EchoesInvalidCloseCodes
                {
                    return Flow::Fail(1002);
                }
                if std::str::from_utf8(reason).is_err()
                    && self.fault != Fault::IgnoresCloseReasonUtf8
                {
                    return Flow::Fail(1007);
                }
                Frame::close(Some(code), b"")
            }
        };
        if self.fault == Fault::NoCloseReply {
            // The peer's close is valid: end without the reply it is due.
            self.finish().await;
            return Flow::Done;
        }
        if let Flow::Done = self.send(reply).await {
            return Flow::Done;
        }
        if self.fault == Fault::AnswersAfterClose {
            // Keep going for a while: the fault under test.
            self.after_close.get_or_insert(Instant::now() + AFTER_CLOSE);
            return Flow::Continue;
        }
        self.finish().await;
        Flow::Done
    }

    /// Fails the connection: a close frame with `code`, then a graceful end.
    async fn fail(&mut self, code: u16) {
        let code = if self.fault == Fault::WrongCloseCode && code == 1002 {
            1000
        } else {
            code
        };
        if self.fault == Fault::DropsTcpOnError {
            return self.finish().await;
        }
        if let Flow::Continue = self.send(Frame::close(Some(code), b"")).await {
            self.finish().await;
        }
    }

    /// How the length of a frame about to be sent is written: minimal,
    /// except under the length faults.
    fn length_encoding(&self, f: &Frame) -> frame::LengthEncoding {
        let len = f.payload.len();
        let data_or_pong = is_data(f.opcode) || f.opcode == Opcode::Pong;
        match self.fault {
            Fault::Length16ForShortFrames if data_or_pong && len <= 125 => {
                frame::LengthEncoding::Bits16
            }
            Fault::Length64ForMediumFrames
                if is_data(f.opcode) && (126..=0xFFFF).contains(&len) =>
            {
                frame::LengthEncoding::Bits64
            }
            _ => frame::LengthEncoding::Minimal,
        }
    }

    /// Writes one frame; `Flow::Done` if the peer is gone or stalled.
    async fn send(&mut self, mut f: Frame) -> Flow {
        if self.fault == Fault::MasksServerFrames {
            f.mask = Some(SERVER_MASK);
        }
        let mut bytes = Vec::with_capacity(f.payload.len() + 14);
        frame::encode_into(&f, self.length_encoding(&f), None, &mut bytes);
        if self.fault == Fault::UnboundedBuffering {
            self.outbox.extend_from_slice(&bytes);
            return match self.flush_some() {
                Ok(()) => Flow::Continue,
                Err(_) => Flow::Done,
            };
        }
        match self.write_all(&bytes).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Done,
        }
    }
}
