//! The WebSocket case script: what a `ws.*` case file entry may say.
//!
//! A script is an ordered list of steps. Actions write to the socket;
//! expectations read what the target sent, in order, each with a deadline.
//! Anything the target sends that no expectation asks for fails the case.

use serde::Deserialize;

use crate::case::file::Validate;
use crate::case::header_check::{HeaderCheck, StatusSpec};
use crate::case::{Dur, Level, Payload};
use crate::wire::frame::{LengthEncoding, MessageType, Opcode};
use crate::wire::generator::GenKind;

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Perform the standard opening handshake before the steps (default);
    /// `false` for cases that write their own upgrade request.
    #[serde(default = "yes")]
    pub handshake: bool,
    /// Subprotocols offered in the standard handshake.
    #[serde(default)]
    pub protocols: Vec<String>,
    /// `Sec-WebSocket-Extensions` lines sent in the standard handshake (and
    /// on `reconnect`), one header line each, as written: offers may be
    /// invalid on purpose.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// After the steps, if the connection is still open, send close 1000 and
    /// require the target's close reply (default).
    #[serde(default = "yes")]
    pub closing: bool,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// One frame, with every bit under the case's control.
    Send(FrameSpec),
    /// A whole data message, optionally fragmented.
    Message(MessageSpec),
    /// Raw bytes.
    Raw(RawSpec),
    /// Several frames written as one buffer (or in chops across the whole
    /// buffer), e.g. a fragment, a ping and the next fragment in one write.
    Batch(BatchSpec),
    /// An HTTP upgrade request, derived from a valid one.
    Upgrade(UpgradeSpec),
    Pause(Dur),
    /// The inner steps, `times` times over. Only the first iteration is
    /// written to the transcript; a failure names its iteration.
    Repeat(RepeatSpec),
    /// Drop the connection and open a new one (by default with the standard
    /// handshake): proves the target still serves after what came before.
    Reconnect(ReconnectSpec),
    /// Stop reading and write messages until the target pushes back (a write
    /// makes no progress for `stall`), closes the connection, or `total`
    /// bytes have been written (a failure: it buffers without bound). The
    /// connection is abandoned afterwards.
    Flood(FloodSpec),
    ExpectMessage(ExpectMessage),
    ExpectPong(ExpectPong),
    /// The target fails the connection (RFC 6455 §7.1.7): a close frame with
    /// one of `codes`; a close without a code or a bare TCP close meets only
    /// the SHOULD to send a status code, and is reported as non-strict.
    ExpectFail(ExpectClose),
    /// The target sends a close frame with one of `codes` (clean close).
    ExpectClose(ExpectClose),
    /// Nothing arrives for this long.
    ExpectNothing(Dur),
    /// The target closes the TCP connection within this long.
    ExpectTcpClose(Dur),
    /// The HTTP response to the last `upgrade` step.
    ExpectResponse(ExpectResponse),
    /// The permessage-deflate agreement of the connection (accepted or
    /// declined, and the parameters in force).
    ExpectExtension(ExpectExtension),
    /// Idle: with `ws.idle_timeout` = T in the profile, the target keeps the
    /// connection open for most of T and closes it by T + `slack` (a close
    /// frame, or a bare TCP close, which is non-strict). Pings from the
    /// target are answered. Needs `requires = ["idle-timeout"]`.
    ExpectIdleClose(IdleClose),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpcodeSpec(pub Opcode);

impl<'de> Deserialize<'de> for OpcodeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u8),
            Name(String),
        }
        let op = match Raw::deserialize(d)? {
            Raw::Num(n) if n < 16 => Opcode::from_u4(n),
            Raw::Num(n) => {
                return Err(serde::de::Error::custom(format!(
                    "opcode {n} does not fit in 4 bits"
                )));
            }
            Raw::Name(s) => match s.as_str() {
                "continuation" => Opcode::Continuation,
                "text" => Opcode::Text,
                "binary" => Opcode::Binary,
                "close" => Opcode::Close,
                "ping" => Opcode::Ping,
                "pong" => Opcode::Pong,
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "unknown opcode {s:?}: use continuation, text, binary, close, ping, pong or a number 0-15"
                    )));
                }
            },
        };
        Ok(OpcodeSpec(op))
    }
}

/// Masking of a client frame: a fresh random key (default), none, or a fixed key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MaskSpec {
    #[default]
    Random,
    Unmasked,
    Key([u8; 4]),
}

impl<'de> Deserialize<'de> for MaskSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Hex(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(true) => Ok(MaskSpec::Random),
            Raw::Flag(false) => Ok(MaskSpec::Unmasked),
            Raw::Hex(h) => {
                let b = crate::case::payload::decode_hex(&h).map_err(serde::de::Error::custom)?;
                <[u8; 4]>::try_from(b.as_slice())
                    .map(MaskSpec::Key)
                    .map_err(|_| serde::de::Error::custom("a mask key is 4 bytes (8 hex digits)"))
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LengthSpec(pub LengthEncoding);

impl<'de> Deserialize<'de> for LengthSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(LengthSpec(match s.as_str() {
            "minimal" => LengthEncoding::Minimal,
            "7" => LengthEncoding::Bits7,
            "16" => LengthEncoding::Bits16,
            "64" => LengthEncoding::Bits64,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "length encoding {s:?}: use \"minimal\", \"7\", \"16\" or \"64\""
                )));
            }
        }))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameSpec {
    pub opcode: OpcodeSpec,
    #[serde(default)]
    pub payload: Payload,
    #[serde(default = "yes")]
    pub fin: bool,
    /// RSV bits as a 3-bit number: 4 = RSV1, 2 = RSV2, 1 = RSV3.
    #[serde(default)]
    pub rsv: u8,
    #[serde(default)]
    pub mask: MaskSpec,
    /// How the length is written; `"16"`/`"64"` for non-minimal encodings.
    #[serde(default)]
    pub length: LengthSpec,
    /// A length to declare in the header instead of the real one.
    #[serde(default)]
    pub declared_len: Option<u64>,
    /// Write the frame in TCP chops of this many bytes.
    #[serde(default)]
    pub chop: Option<usize>,
    /// A generated payload instead of `payload`.
    #[serde(default)]
    pub generate: Option<Generate>,
    /// The payload is compressed on its own (raw DEFLATE, sync flush, tail
    /// removed: a complete compressed message). RSV1 is still set by `rsv`.
    #[serde(default)]
    pub compress: bool,
}

/// A size in bytes, or one relative to the profile's `ws.max_message_size`:
/// `"limit"`, `"limit+1048576"`, `"limit-1"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeSpec {
    Bytes(usize),
    Limit(i64),
}

impl SizeSpec {
    /// The size, given the declared limit (if any).
    pub fn resolve(self, limit: Option<u64>) -> Option<usize> {
        match self {
            SizeSpec::Bytes(n) => Some(n),
            SizeSpec::Limit(d) => {
                let l = i64::try_from(limit?).ok()?;
                usize::try_from(l.checked_add(d)?).ok()
            }
        }
    }
}

impl<'de> Deserialize<'de> for SizeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(usize),
            Expr(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Ok(SizeSpec::Bytes(n)),
            Raw::Expr(s) => {
                let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
                let delta = match t.strip_prefix("limit") {
                    Some("") => Some(0),
                    Some(r) => r
                        .strip_prefix('+')
                        .and_then(|n| n.parse::<u32>().ok())
                        .map(i64::from)
                        .or_else(|| {
                            r.strip_prefix('-')
                                .and_then(|n| n.parse::<u32>().ok())
                                .map(|n| -i64::from(n))
                        }),
                    None => None,
                };
                delta.map(SizeSpec::Limit).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "size {s:?}: a number of bytes, or \"limit\", \"limit+N\", \"limit-N\" (ws.max_message_size)"
                    ))
                })
            }
        }
    }
}

/// A generated payload: `size` bytes of the `kind` stream, starting at
/// `offset` + k × `advance`, where k counts the generated payloads sent so
/// far in the case (for `message`, `send` and `batch`) or expected so far
/// (for `expect_message`), so a message and its echo expectation line up.
/// `advance` defaults to half the size: consecutive messages overlap by
/// half.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    pub kind: GenKind,
    pub size: SizeSpec,
    #[serde(default)]
    pub offset: usize,
    #[serde(default)]
    pub advance: Option<usize>,
}

impl Generate {
    /// Whether the size is relative to the declared message size limit.
    pub fn needs_limit(&self) -> bool {
        matches!(self.size, SizeSpec::Limit(_))
    }
}

/// Whether a received message must have been compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compressed {
    #[default]
    Any,
    Yes,
    No,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    #[serde(rename = "type")]
    pub kind: MessageType,
    #[serde(default)]
    pub payload: Payload,
    /// Split into fragments of this many payload bytes (of the compressed
    /// payload, with `compress`).
    #[serde(default)]
    pub fragment: Option<usize>,
    /// Write in TCP chops of this many bytes.
    #[serde(default)]
    pub chop: Option<usize>,
    /// A generated payload instead of `payload`.
    #[serde(default)]
    pub generate: Option<Generate>,
    /// Compress with the connection's permessage-deflate compressor (RSV1
    /// on the first frame). Without an agreement the message is sent
    /// uncompressed (noted in the transcript).
    #[serde(default)]
    pub compress: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    pub frames: Vec<FrameSpec>,
    /// Write the whole batch in TCP chops of this many bytes.
    #[serde(default)]
    pub chop: Option<usize>,
}

/// Largest `repeat.times`; nested repeats multiply.
pub const MAX_REPEAT: u32 = 100_000;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatSpec {
    pub times: u32,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectSpec {
    /// Perform the standard opening handshake on the new connection.
    #[serde(default = "yes")]
    pub handshake: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloodSpec {
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// Payload bytes per message.
    pub size: usize,
    /// Stop after writing this many bytes in all.
    pub total: u64,
    /// A write accepting no byte for this long counts as backpressure.
    pub stall: Dur,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleClose {
    /// How long after the declared timeout the close may come.
    pub slack: Dur,
}

/// Which `Origin` an upgrade sends, from the profile's `ws.allowed_origins`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginSpec {
    /// The first allowed origin.
    Allowed,
    /// An origin that is not in the list.
    Disallowed,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    pub bytes: Payload,
    #[serde(default)]
    pub chop: Option<usize>,
}

/// A request derived from a valid upgrade (GET, HTTP/1.1, Host, Upgrade,
/// Connection, a fresh Sec-WebSocket-Key, Sec-WebSocket-Version: 13).
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpgradeSpec {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    /// Replace a header (matched case-insensitively) or add it; the name is
    /// written as given.
    #[serde(default)]
    pub set: Vec<(String, String)>,
    /// Append a header even if one of that name exists.
    #[serde(default)]
    pub add: Vec<(String, String)>,
    #[serde(default)]
    pub remove: Vec<String>,
    /// Add a header `X-Pushspec-Pad` of this many bytes (oversized requests).
    #[serde(default)]
    pub pad: Option<usize>,
    /// Send an `Origin` header taken from the profile (`requires = ["origins"]`).
    #[serde(default)]
    pub origin: Option<OriginSpec>,
    /// Offer an unknown subprotocol followed by the profile's declared ones
    /// (`requires = ["subprotocols"]`).
    #[serde(default)]
    pub offer_declared_protocols: bool,
    #[serde(default)]
    pub chop: Option<usize>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectMessage {
    #[serde(rename = "type")]
    pub kind: MessageType,
    #[serde(default)]
    pub payload: Payload,
    /// A generated payload instead of `payload`.
    #[serde(default)]
    pub generate: Option<Generate>,
    /// Whether the message must have arrived compressed (RSV1).
    #[serde(default)]
    pub compressed: Compressed,
    /// `should`: a mismatch is non-strict and the event is left for the next step.
    #[serde(default)]
    pub level: Option<Level>,
}

/// Whether the target accepted a permessage-deflate offer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accepted {
    #[default]
    Yes,
    No,
    Any,
}

/// The permessage-deflate agreement of the connection. The answer itself
/// is always checked against the offers (RFC 7692 §5, §7.1) during the
/// handshake; this states what the case requires beyond validity.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectExtension {
    /// `yes` (default), `no`, or `any` (the parameters are checked if accepted).
    #[serde(default)]
    pub accepted: Accepted,
    /// If accepted, these parameters are (or are not) in force.
    #[serde(default)]
    pub server_no_context_takeover: Option<bool>,
    #[serde(default)]
    pub client_no_context_takeover: Option<bool>,
    #[serde(default)]
    pub server_max_window_bits: Option<u8>,
    #[serde(default)]
    pub client_max_window_bits: Option<u8>,
    /// A mismatch: the case's level (default), `should` (non-strict, the
    /// script goes on), or `info` (the case ends with outcome `info`: the
    /// target does not implement what the case needs).
    #[serde(default)]
    pub level: Option<Level>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectPong {
    #[serde(default)]
    pub payload: Payload,
    #[serde(default)]
    pub level: Option<Level>,
    /// The pong must arrive within this long (a timing bound; without it the
    /// run's timeout applies).
    #[serde(default)]
    pub within: Option<Dur>,
}

/// The close code `expect_fail` accepts when it lists none: 1002, protocol
/// error, the code for a failed connection (RFC 6455 §7.4.1).
const DEFAULT_FAIL_CODES: &[u16] = &[1002];

/// `expect_fail` and `expect_close` (they share their fields).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectClose {
    /// The acceptable close codes. Optional for `expect_fail` only (see
    /// [`DEFAULT_FAIL_CODES`]); `expect_close` must list them, since a
    /// normal closure has no one right code (validation checks).
    #[serde(default)]
    codes: Option<Vec<u16>>,
    /// Wait at most this long (instead of the run's timeout).
    #[serde(default)]
    pub within: Option<Dur>,
    /// `should` (with `within`): nothing arriving in time is non-strict and
    /// the script goes on with the connection still open. A later
    /// `expect_fail` is met at once if the connection was already failed.
    #[serde(default)]
    pub level: Option<Level>,
    /// `expect_close` only: `should` makes a close frame with a valid code
    /// not in `codes` non-strict instead of a failure.
    #[serde(default)]
    pub other_code: Option<Level>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectResponse {
    pub status: Vec<StatusSpec>,
    #[serde(default)]
    pub headers: Vec<HeaderCheck>,
    /// Also require a complete, valid upgrade (101 with Upgrade, Connection
    /// and a correct Accept) and go on speaking WebSocket afterwards.
    #[serde(default)]
    pub upgraded: bool,
    /// A 101 is acceptable too (list 101 in `status`), if it is a valid
    /// upgrade; the connection then speaks WebSocket.
    #[serde(default)]
    pub may_upgrade: bool,
    /// The target closing the TCP connection without a complete response is
    /// acceptable too (e.g. it refused a request before reading all of it).
    #[serde(default)]
    pub or_tcp_close: bool,
    /// The response selects one of the profile's declared subprotocols.
    #[serde(default)]
    pub selects_declared_protocol: bool,
}

impl ExpectClose {
    /// The acceptable close codes, with `expect_fail`'s default applied.
    pub fn codes(&self) -> &[u16] {
        self.codes.as_deref().unwrap_or(DEFAULT_FAIL_CODES)
    }
}

impl Validate for Script {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.steps.is_empty() {
            return Err(("steps".into(), "a case needs at least one step".into()));
        }
        validate_steps(&self.steps, "steps", 1)?;
        if !self.handshake && !self.extensions.is_empty() {
            return Err((
                "extensions".into(),
                "`extensions` are offered in the standard handshake: with `handshake = false` set the header in the `upgrade` step".into(),
            ));
        }
        if !self.handshake
            && !self
                .steps
                .iter()
                .any(|s| matches!(s, Step::Upgrade(_) | Step::Raw(_)))
        {
            return Err((
                "handshake".into(),
                "with `handshake = false` the steps must send an `upgrade` or `raw` request".into(),
            ));
        }
        Ok(())
    }
}

/// `generate` replaces `payload`; text messages need a text generator.
fn check_generate(
    g: &Option<Generate>,
    payload: &Payload,
    text: bool,
    at: &dyn Fn(&str) -> String,
) -> Result<(), (String, String)> {
    let Some(g) = g else {
        return Ok(());
    };
    if !payload.is_empty() {
        return Err((
            at("generate"),
            "give either `payload` or `generate`, not both".into(),
        ));
    }
    if text && !g.kind.is_text() {
        return Err((
            at("generate.kind"),
            format!(
                "{} is not valid UTF-8: a text message takes json, prose or zeros",
                g.kind.name()
            ),
        ));
    }
    Ok(())
}

fn validate_frame(f: &FrameSpec, at: &dyn Fn(&str) -> String) -> Result<(), (String, String)> {
    f.payload
        .validate()
        .map_err(|e| (at("payload"), e.to_string()))?;
    check_generate(&f.generate, &f.payload, false, at)?;
    check_chop(&f.chop, at("chop"))?;
    if f.rsv > 7 {
        return Err((at("rsv"), "RSV is 3 bits: 0-7".into()));
    }
    Ok(())
}

fn check_chop(c: &Option<usize>, path: String) -> Result<(), (String, String)> {
    match c {
        Some(0) => Err((path, "must be at least 1".to_string())),
        _ => Ok(()),
    }
}

/// `iterations`: how often these steps run (the product of enclosing repeats).
fn validate_steps(steps: &[Step], path: &str, iterations: u64) -> Result<(), (String, String)> {
    let payload = |p: &Payload, path: String| p.validate().map_err(|e| (path, e.to_string()));
    for (i, s) in steps.iter().enumerate() {
        let at = |f: &str| format!("{path}[{i}].{f}");
        match s {
            Step::Send(f) => validate_frame(f, &|x| at(&format!("send.{x}")))?,
            Step::Batch(b) => {
                if b.frames.is_empty() {
                    return Err((at("batch.frames"), "list at least one frame".into()));
                }
                for (j, f) in b.frames.iter().enumerate() {
                    validate_frame(f, &|x| at(&format!("batch.frames[{j}].{x}")))?;
                    if f.chop.is_some() {
                        return Err((
                            at(&format!("batch.frames[{j}].chop")),
                            "chop the whole batch with `batch.chop`".into(),
                        ));
                    }
                }
                check_chop(&b.chop, at("batch.chop"))?;
            }
            Step::Message(m) => {
                payload(&m.payload, at("message.payload"))?;
                check_generate(&m.generate, &m.payload, m.kind == MessageType::Text, &|x| {
                    at(&format!("message.{x}"))
                })?;

                check_chop(&m.chop, at("message.chop"))?;
                check_chop(&m.fragment, at("message.fragment"))?;
            }
            Step::Raw(r) => {
                payload(&r.bytes, at("raw.bytes"))?;
                check_chop(&r.chop, at("raw.chop"))?;
            }
            Step::Upgrade(u) => check_chop(&u.chop, at("upgrade.chop"))?,
            Step::Repeat(r) => {
                if r.times == 0 || r.times > MAX_REPEAT {
                    return Err((at("repeat.times"), format!("must be 1-{MAX_REPEAT}")));
                }
                if r.steps.is_empty() {
                    return Err((at("repeat.steps"), "list at least one step".into()));
                }
                let total = iterations * u64::from(r.times);
                if total > u64::from(MAX_REPEAT) {
                    return Err((
                        at("repeat.times"),
                        format!("nested repeats run {total} times, more than {MAX_REPEAT}"),
                    ));
                }
                validate_steps(&r.steps, &at("repeat.steps"), total)?;
            }
            Step::Flood(_) if path != "steps" || i + 1 != steps.len() => {
                return Err((
                    at("flood"),
                    "a flood abandons the connection: it must be the last step, outside `repeat`"
                        .into(),
                ));
            }
            Step::Flood(f) => {
                if f.size == 0 || f.size > 16 << 20 {
                    return Err((at("flood.size"), "must be 1 byte to 16 MiB".into()));
                }
                if f.total < f.size as u64 || f.total > 4 << 30 {
                    return Err((
                        at("flood.total"),
                        "must be at least `size` and at most 4 GiB".into(),
                    ));
                }
            }
            Step::ExpectMessage(m) => {
                payload(&m.payload, at("expect_message.payload"))?;
                check_generate(&m.generate, &m.payload, m.kind == MessageType::Text, &|x| {
                    at(&format!("expect_message.{x}"))
                })?;
            }
            Step::ExpectExtension(e) => {
                for (name, bits) in [
                    ("server_max_window_bits", e.server_max_window_bits),
                    ("client_max_window_bits", e.client_max_window_bits),
                ] {
                    if bits.is_some_and(|b| !(8..=15).contains(&b)) {
                        return Err((
                            at(&format!("expect_extension.{name}")),
                            "window bits are 8-15".into(),
                        ));
                    }
                }
                let params = e.server_no_context_takeover.is_some()
                    || e.client_no_context_takeover.is_some()
                    || e.server_max_window_bits.is_some()
                    || e.client_max_window_bits.is_some();
                if params && e.accepted == Accepted::No {
                    return Err((
                        at("expect_extension"),
                        "parameters only apply to an accepted offer".into(),
                    ));
                }
            }
            Step::ExpectPong(p) => payload(&p.payload, at("expect_pong.payload"))?,
            Step::ExpectFail(c) if c.other_code.is_some() => {
                return Err((
                    at("expect_fail.other_code"),
                    "only for `expect_close`".into(),
                ));
            }
            Step::ExpectClose(c) if c.codes.is_none() => {
                return Err((
                    at("expect_close.codes"),
                    "list the close codes the target may send (`expect_close` has no default; `expect_fail` defaults to [1002])".into(),
                ));
            }
            Step::ExpectFail(c) | Step::ExpectClose(c) => {
                let step = if matches!(s, Step::ExpectFail(_)) {
                    "expect_fail"
                } else {
                    "expect_close"
                };
                let at = |f: &str| at(&format!("{step}.{f}"));
                if c.other_code == Some(Level::Info) {
                    return Err((at("other_code"), "only `must` or `should`".into()));
                }
                if c.codes().is_empty() {
                    return Err((at("codes"), "list at least one close code".into()));
                }
                if c.level == Some(Level::Should) && c.within.is_none() {
                    return Err((at("level"), "`level = \"should\"` needs `within`".into()));
                }
                if c.level == Some(Level::Info) {
                    return Err((at("level"), "only `must` or `should`".into()));
                }
            }
            Step::ExpectResponse(r) if r.status.is_empty() => {
                return Err((
                    at("expect_response.status"),
                    "list at least one status".into(),
                ));
            }
            Step::ExpectResponse(r)
                if r.may_upgrade && !r.status.iter().any(|s| s.matches(101)) =>
            {
                return Err((
                    at("expect_response.status"),
                    "`may_upgrade` needs 101 in `status`".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Script as CaseScript;

    /// Every `ws.utf8.valid-*` message is valid UTF-8 and every
    /// `ws.utf8.invalid-*` message is not, by Rust's RFC 3629 validator: the
    /// hand-derived tables cannot drift from their names.
    #[test]
    fn utf8_tables_match_their_names() {
        let cases = crate::case::file::load_embedded().expect("cases load");
        let mut checked = 0;
        for c in cases.iter().filter(|c| c.family == "ws.utf8") {
            let slug = c.id.trim_start_matches("ws.utf8.");
            let want_valid = if slug.starts_with("valid-") {
                true
            } else if slug.starts_with("invalid-") {
                false
            } else {
                continue;
            };
            let CaseScript::Ws(s) = &c.script else {
                unreachable!()
            };
            let text: Vec<u8> = s
                .steps
                .iter()
                .filter_map(|st| match st {
                    Step::Message(m) => Some(m.payload.bytes()),
                    Step::Send(f) => Some(f.payload.bytes()),
                    _ => None,
                })
                .flatten()
                .collect();
            assert_eq!(
                std::str::from_utf8(&text).is_ok(),
                want_valid,
                "{}: {text:02x?}",
                c.id
            );
            checked += 1;
        }
        assert!(checked > 130, "only {checked} ws.utf8 cases checked");
    }

    fn load(steps: &str) -> Result<(), String> {
        let text = format!(
            "family = \"ws.t\"\n[[case]]\nslug = \"x\"\ntitle = \"t\"\nspec = \"s\"\nlevel = \"must\"\nsteps = [\n{steps}\n]\n"
        );
        crate::case::file::parse_file("t.toml", &text)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn new_steps_parse() {
        load(r#"
          { batch = { chop = 1, frames = [{ opcode = "text", payload = "a", fin = false }, { opcode = "continuation" }] } },
          { repeat = { times = 3, steps = [{ message = { type = "text", payload = "x" } }, { expect_message = { type = "text", payload = "x" } }] } },
          { expect_fail = { codes = [1007], within = "500ms", level = "should" } },
          { expect_close = { codes = [1000], other_code = "should" } },
          { expect_pong = { within = "1s" } },
          { reconnect = {} },
          { upgrade = { origin = "disallowed" } },
          { expect_response = { status = [101, "4xx"], may_upgrade = true, or_tcp_close = true } },
          { expect_idle_close = { slack = "1s" } },
          { flood = { type = "binary", size = 1024, total = 1048576, stall = "500ms" } },
        "#)
        .unwrap();
    }

    #[test]
    fn deflate_steps_parse() {
        let text = r#"family = "ws.t"
[[case]]
slug = "x"
title = "t"
spec = "s"
level = "must"
extensions = ["permessage-deflate; client_max_window_bits", "x-other"]
steps = [
  { expect_extension = { accepted = "any", server_no_context_takeover = true, client_max_window_bits = 9, level = "info" } },
  { message = { type = "text", compress = true, fragment = 3, generate = { kind = "json", size = 100 } } },
  { expect_message = { type = "text", compressed = "yes", generate = { kind = "prose", size = 10, offset = 3, advance = 0 } } },
  { send = { opcode = "binary", rsv = 4, fin = false, compress = true, generate = { kind = "zeros", size = "limit+1048576" } } },
  { batch = { frames = [{ opcode = "text", rsv = 4, compress = true, payload = "x" }] } },
]
"#;
        let cases = crate::case::file::parse_file("t.toml", text).unwrap();
        let CaseScript::Ws(s) = &cases[0].script else {
            unreachable!()
        };
        assert_eq!(s.extensions.len(), 2);
        let Step::Send(f) = &s.steps[3] else {
            unreachable!()
        };
        let g = f.generate.unwrap();
        assert_eq!(g.size, SizeSpec::Limit(1 << 20));
        assert_eq!(g.size.resolve(Some(10)), Some(10 + (1 << 20)));
        assert_eq!(g.size.resolve(None), None);
        assert_eq!(SizeSpec::Limit(-11).resolve(Some(10)), None);
    }

    #[test]
    fn deflate_steps_are_validated() {
        let err = |steps: &str| load(steps).unwrap_err();
        assert!(
            err(r#"{ message = { type = "text", payload = "x", generate = { kind = "json", size = 1 } } }"#)
                .contains("not both")
        );
        assert!(
            err(r#"{ message = { type = "text", generate = { kind = "random", size = 1 } } }"#)
                .contains("json, prose or zeros")
        );
        assert!(
            err(r#"{ expect_message = { type = "text", generate = { kind = "binary", size = 1 } } }"#)
                .contains("generate.kind")
        );
        assert!(
            err(r#"{ send = { opcode = "text", generate = { kind = "json", size = "lim" } } }"#)
                .contains("\"limit+N\"")
        );
        assert!(err(r#"{ expect_extension = { server_max_window_bits = 16 } }"#).contains("8-15"));
        let text = "family = \"ws.t\"\n[[case]]\nslug = \"x\"\ntitle = \"t\"\nspec = \"s\"\nlevel = \"must\"\nhandshake = false\nextensions = [\"permessage-deflate\"]\nsteps = [{ upgrade = {} }]\n";
        let e = crate::case::file::parse_file("t.toml", text).unwrap_err();
        assert!(e.to_string().contains("`upgrade` step"), "{e}");
        assert!(
            err(r#"{ expect_extension = { accepted = "no", client_no_context_takeover = true } }"#)
                .contains("accepted offer")
        );
    }

    #[test]
    fn new_steps_are_validated() {
        let err = |steps: &str| load(steps).unwrap_err();
        assert!(
            err(r#"{ repeat = { times = 0, steps = [{ pause = "1ms" }] } }"#)
                .contains("repeat.times")
        );
        assert!(
            err(r#"{ repeat = { times = 1000, steps = [{ repeat = { times = 1000, steps = [{ pause = "1ms" }] } }] } }"#)
                .contains("nested repeats")
        );
        assert!(err(r#"{ repeat = { times = 2, steps = [] } }"#).contains("at least one step"));
        assert!(
            err(r#"{ flood = { type = "binary", size = 10, total = 100, stall = "1s" } }, { pause = "1ms" }"#)
                .contains("last step")
        );
        assert!(
            err(r#"{ flood = { type = "binary", size = 10, total = 5, stall = "1s" } }"#)
                .contains("flood.total")
        );
        assert!(
            err(r#"{ expect_fail = { codes = [1002], level = "should" } }"#)
                .contains("needs `within`")
        );
        assert!(err(r#"{ expect_fail = { other_code = "should" } }"#).contains("expect_close"));
        assert!(
            err(r#"{ batch = { frames = [{ opcode = "text", chop = 1 }] } }"#)
                .contains("batch.chop")
        );
        assert!(
            err(r#"{ expect_response = { status = ["4xx"], may_upgrade = true } }"#)
                .contains("101")
        );
    }

    /// `expect_close` has no default close code (a normal closure and a
    /// failure want different ones): leaving `codes` out is a load error
    /// naming the step. `expect_fail` keeps its documented default, 1002.
    #[test]
    fn expect_close_needs_codes() {
        let e = load("{ expect_close = {} }").unwrap_err();
        assert!(e.contains("steps[0].expect_close.codes"), "{e}");
        let e = load(r#"{ expect_close = { within = "1s" } }"#).unwrap_err();
        assert!(e.contains("steps[0].expect_close.codes"), "{e}");
        load("{ expect_close = { codes = [1000] } }").expect("codes given");
        load("{ expect_fail = {} }").expect("expect_fail defaults to 1002");
        let c: ExpectClose = toml::from_str("").unwrap();
        assert_eq!(c.codes(), [1002]);
    }

    /// Every validation error names the full key: the step's own key
    /// included, down to the field (`steps[1].expect_fail.codes`, not
    /// `steps[1].codes`).
    #[test]
    fn validation_errors_carry_the_full_key() {
        let cases = [
            (
                r#"{ expect_fail = { codes = [] } }"#,
                "steps[1].expect_fail.codes",
            ),
            (
                r#"{ expect_close = { codes = [] } }"#,
                "steps[1].expect_close.codes",
            ),
            (
                r#"{ expect_fail = { level = "info" } }"#,
                "steps[1].expect_fail.level",
            ),
            (
                r#"{ expect_close = { codes = [1000], level = "should" } }"#,
                "steps[1].expect_close.level",
            ),
            (
                r#"{ expect_close = { codes = [1000], other_code = "info" } }"#,
                "steps[1].expect_close.other_code",
            ),
            (
                r#"{ expect_fail = { other_code = "should" } }"#,
                "steps[1].expect_fail.other_code",
            ),
            (
                r#"{ send = { opcode = "text", rsv = 9 } }"#,
                "steps[1].send.rsv",
            ),
            (
                r#"{ message = { type = "text", chop = 0 } }"#,
                "steps[1].message.chop",
            ),
            (
                r#"{ raw = { bytes = "x", chop = 0 } }"#,
                "steps[1].raw.chop",
            ),
            (r#"{ upgrade = { chop = 0 } }"#, "steps[1].upgrade.chop"),
            (r#"{ batch = { frames = [] } }"#, "steps[1].batch.frames"),
            (
                r#"{ repeat = { times = 0, steps = [{ pause = "1ms" }] } }"#,
                "steps[1].repeat.times",
            ),
            (
                r#"{ repeat = { times = 2, steps = [{ expect_fail = { codes = [] } }] } }"#,
                "steps[1].repeat.steps[0].expect_fail.codes",
            ),
            (
                r#"{ expect_extension = { accepted = "any", client_max_window_bits = 7 } }"#,
                "steps[1].expect_extension.client_max_window_bits",
            ),
            (
                r#"{ expect_response = { status = [] } }"#,
                "steps[1].expect_response.status",
            ),
        ];
        for (step, key) in cases {
            let e = load(&format!("{{ pause = \"1ms\" }},\n{step}")).unwrap_err();
            assert!(e.contains(&format!("field `{key}`:")), "{step}: {e}");
        }
    }
}
