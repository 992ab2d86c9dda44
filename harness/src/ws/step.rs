//! The WebSocket case script: what a `ws.*` case file entry may say.
//!
//! A script is an ordered list of steps. Actions write to the socket;
//! expectations read what the target sent, in order, each with a deadline.
//! Anything the target sends that no expectation asks for fails the case.

use serde::Deserialize;

use crate::case::file::Validate;
use crate::case::{Dur, Level, Payload};
use crate::ws::frame::{LengthEncoding, Opcode};

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
    /// An HTTP upgrade request, derived from a valid one.
    Upgrade(UpgradeSpec),
    Pause(Dur),
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Text,
    Binary,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    #[serde(rename = "type")]
    pub kind: MessageType,
    #[serde(default)]
    pub payload: Payload,
    /// Split into fragments of this many payload bytes.
    #[serde(default)]
    pub fragment: Option<usize>,
    /// Write in TCP chops of this many bytes.
    #[serde(default)]
    pub chop: Option<usize>,
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
    /// `should`: a mismatch is non-strict and the event is left for the next step.
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
}

fn default_fail_codes() -> Vec<u16> {
    vec![1002]
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectClose {
    #[serde(default = "default_fail_codes")]
    pub codes: Vec<u16>,
}

/// A status written as a number or a class like `"4xx"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusSpec {
    Exact(u16),
    Class(u16),
}

impl StatusSpec {
    pub fn matches(&self, status: u16) -> bool {
        match self {
            StatusSpec::Exact(s) => *s == status,
            StatusSpec::Class(c) => status / 100 == *c,
        }
    }
}

impl std::fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusSpec::Exact(s) => write!(f, "{s}"),
            StatusSpec::Class(c) => write!(f, "{c}xx"),
        }
    }
}

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u16),
            Class(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) if (100..600).contains(&n) => Ok(StatusSpec::Exact(n)),
            Raw::Class(s)
                if s.len() == 3 && s.ends_with("xx") && (b'1'..=b'5').contains(&s.as_bytes()[0]) =>
            {
                Ok(StatusSpec::Class((s.as_bytes()[0] - b'0') as u16))
            }
            _ => Err(serde::de::Error::custom(
                "a status is a number 100-599 or a class like \"4xx\"",
            )),
        }
    }
}

/// One check on a response header. With no check given, the header must be present.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderCheck {
    pub name: String,
    /// The value equals this (case-insensitively).
    #[serde(default)]
    pub equals: Option<String>,
    /// The comma-separated token list contains this token (case-insensitively).
    #[serde(default)]
    pub token: Option<String>,
    /// If present, the value is one of these.
    #[serde(default)]
    pub one_of: Option<Vec<String>>,
    /// The header must not be present.
    #[serde(default)]
    pub absent: bool,
    /// The value is the correct Sec-WebSocket-Accept for the key sent.
    #[serde(default)]
    pub accept: bool,
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
}

impl Validate for Script {
    fn validate(&self) -> Result<(), (String, String)> {
        let payload = |p: &Payload, path: String| p.validate().map_err(|e| (path, e.to_string()));
        let chop = |c: &Option<usize>, path: String| match c {
            Some(0) => Err((path, "must be at least 1".to_string())),
            _ => Ok(()),
        };
        if self.steps.is_empty() {
            return Err(("steps".into(), "a case needs at least one step".into()));
        }
        for (i, s) in self.steps.iter().enumerate() {
            let at = |f: &str| format!("steps[{i}].{f}");
            match s {
                Step::Send(f) => {
                    payload(&f.payload, at("send.payload"))?;
                    chop(&f.chop, at("send.chop"))?;
                    if f.rsv > 7 {
                        return Err((at("send.rsv"), "RSV is 3 bits: 0-7".into()));
                    }
                }
                Step::Message(m) => {
                    payload(&m.payload, at("message.payload"))?;
                    chop(&m.chop, at("message.chop"))?;
                    chop(&m.fragment, at("message.fragment"))?;
                }
                Step::Raw(r) => {
                    payload(&r.bytes, at("raw.bytes"))?;
                    chop(&r.chop, at("raw.chop"))?;
                }
                Step::Upgrade(u) => chop(&u.chop, at("upgrade.chop"))?,
                Step::ExpectMessage(m) => payload(&m.payload, at("expect_message.payload"))?,
                Step::ExpectPong(p) => payload(&p.payload, at("expect_pong.payload"))?,
                Step::ExpectFail(c) | Step::ExpectClose(c) if c.codes.is_empty() => {
                    return Err((at("codes"), "list at least one close code".into()));
                }
                Step::ExpectResponse(r) if r.status.is_empty() => {
                    return Err((at("expect_response.status"), "list at least one status".into()));
                }
                _ => {}
            }
        }
        if !self.handshake
            && !self.steps.iter().any(|s| matches!(s, Step::Upgrade(_) | Step::Raw(_)))
        {
            return Err((
                "handshake".into(),
                "with `handshake = false` the steps must send an `upgrade` or `raw` request".into(),
            ));
        }
        Ok(())
    }
}
