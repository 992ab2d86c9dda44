//! The script of a `client.ws.*` case: what the harness, playing the
//! server, answers to the client's upgrade and then sends, and what it
//! expects the client to do. A client is only observable from the server
//! side, so every expectation judges what arrives (echoes, pongs, close
//! frames, the TCP close) and when.
//!
//! Owns the data language only (it imports only `wire/`); the driver is
//! `client::run`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::file::Validate;
use super::ws_step::{MaskSpec, OpcodeSpec};
use super::{Dur, Level, Payload};
use crate::wire::frame::MessageType;

fn yes() -> bool {
    true
}

fn fail_codes() -> Vec<u16> {
    vec![1002]
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// How the harness answers the client's opening handshake.
    #[serde(default)]
    pub response: ResponseSpec,
    /// After the steps, if the connection is still open, send close 1000,
    /// require the client's close reply, then close TCP (default).
    #[serde(default = "yes")]
    pub closing: bool,
    pub steps: Vec<Step>,
}

/// The answer to the client's upgrade request: a valid 101 by default, or
/// one with exactly the defects a case names.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// The status code (101 by default).
    #[serde(default)]
    pub status: Option<u16>,
    /// The `Sec-WebSocket-Accept` value.
    #[serde(default)]
    pub accept: AcceptSpec,
    /// Header names left out of the valid response (`upgrade`, `connection`).
    #[serde(default)]
    pub remove: Vec<String>,
    /// Headers added to the response, e.g. an extension or subprotocol the
    /// client did not offer.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
}

impl ResponseSpec {
    /// Whether a conforming client completes this handshake.
    pub fn is_valid(&self) -> bool {
        self.status.is_none_or(|s| s == 101)
            && self.accept == AcceptSpec::Correct
            && self.remove.is_empty()
            && self.add.is_empty()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AcceptSpec {
    /// base64(SHA-1(key + GUID)), as RFC 6455 §4.2.2 says.
    #[default]
    Correct,
    /// The accept value of another key.
    Wrong,
    /// No `Sec-WebSocket-Accept` header.
    Missing,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// One frame, every bit under the case's control (unmasked unless `mask`).
    Send(FrameSpec),
    /// A whole data message, optionally fragmented.
    Message(MessageSpec),
    /// Raw bytes (a frame cut short, garbage).
    Raw(RawSpec),
    Pause(Dur),
    /// The harness closes the TCP connection.
    CloseTcp,
    /// The next message from the client is this one.
    ExpectMessage(ExpectMessage),
    /// The next event is a pong with this payload.
    ExpectPong(ExpectPong),
    /// The client fails the connection: a close frame with one of `codes`.
    /// A close without a code or a bare TCP close is non-strict (§7.1.7).
    ExpectFail(ExpectClose),
    /// The client sends a close frame with one of `codes` (or none).
    ExpectClose(ExpectClose),
    /// Nothing arrives (no frame, no TCP close) for this long.
    ExpectNothing(Dur),
    /// The client closes TCP within the bound; with `quiet`, without
    /// sending any frame first (a handshake it must refuse).
    ExpectTcpClose(ExpectTcpClose),
    /// The masking keys of the client's frames so far are not all the same
    /// (RFC 6455 §5.3: unpredictable keys).
    ExpectMasksVary,
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
    /// A server frame is unmasked; `true` or a key masks it (a violation
    /// the client must fail on, §5.1).
    #[serde(default)]
    pub mask: Option<MaskSpec>,
    /// Write the frame in TCP chops of this many bytes.
    #[serde(default)]
    pub chop: Option<usize>,
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

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectMessage {
    #[serde(rename = "type")]
    pub kind: MessageType,
    #[serde(default)]
    pub payload: Payload,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectPong {
    #[serde(default)]
    pub payload: Payload,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectClose {
    #[serde(default = "fail_codes")]
    pub codes: Vec<u16>,
    #[serde(default)]
    pub within: Option<Dur>,
    /// `should`: another valid code is non-strict (a close reply that does
    /// not echo the code, §5.5.1 "typically").
    #[serde(default)]
    pub other_code: Option<Level>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectTcpClose {
    pub within: Dur,
    #[serde(default)]
    pub quiet: bool,
}

impl Validate for Script {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.steps.is_empty() {
            return Err(("steps".into(), "a case needs at least one step".into()));
        }
        for (i, s) in self.steps.iter().enumerate() {
            let at = |f: &str| format!("steps[{i}].{f}");
            let payload = |p: &Payload, f: &str| p.validate().map_err(|e| (at(f), e.to_string()));
            match s {
                Step::Send(f) => {
                    payload(&f.payload, "send.payload")?;
                    if f.rsv > 7 {
                        return Err((at("send.rsv"), "RSV is 3 bits: 0-7".into()));
                    }
                    if f.chop == Some(0) {
                        return Err((at("send.chop"), "must be at least 1".into()));
                    }
                }
                Step::Message(m) => {
                    payload(&m.payload, "message.payload")?;
                    if m.fragment == Some(0) || m.chop == Some(0) {
                        return Err((at("message"), "fragment and chop must be at least 1".into()));
                    }
                }
                Step::Raw(r) => payload(&r.bytes, "raw.bytes")?,
                Step::ExpectMessage(m) => payload(&m.payload, "expect_message.payload")?,
                Step::ExpectPong(p) => payload(&p.payload, "expect_pong.payload")?,
                Step::ExpectFail(c) | Step::ExpectClose(c) if c.other_code == Some(Level::Must) => {
                    return Err((
                        at("other_code"),
                        "`should` or `info`: a must is what `codes` says".into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Script as CaseScript;

    /// Every `client.ws.utf8.valid-*` message is valid UTF-8 and every
    /// `invalid-*` one is not, by Rust's validator: the hex rows cannot
    /// drift from their names.
    #[test]
    fn utf8_rows_match_their_names() {
        let cases = crate::case::file::load_embedded().expect("cases load");
        let mut checked = 0;
        for c in cases.iter().filter(|c| c.family == "client.ws.utf8") {
            let slug = c.id.trim_start_matches("client.ws.utf8.");
            let want_valid = match slug.split('-').next() {
                Some("valid") => true,
                Some("invalid") => false,
                _ => continue,
            };
            let CaseScript::ClientWs(s) = &c.script else {
                unreachable!()
            };
            let text: Vec<u8> = s
                .steps
                .iter()
                .flat_map(|st| match st {
                    Step::Message(m) => m.payload.bytes(),
                    Step::Send(f) if f.opcode.0 != crate::wire::frame::Opcode::Ping => {
                        f.payload.bytes()
                    }
                    _ => Vec::new(),
                })
                .collect();
            assert_eq!(
                std::str::from_utf8(&text).is_ok(),
                want_valid,
                "{}: {:02x?}",
                c.id,
                text
            );
            checked += 1;
        }
        assert!(checked > 15, "only {checked} rows checked");
    }
}
