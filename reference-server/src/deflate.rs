//! permessage-deflate (RFC 7692), added around tungstenite (which has no
//! extension support).
//!
//! # Negotiation ([`negotiate`])
//!
//! Every `Sec-WebSocket-Extensions` line is parsed as a list of offers
//! (RFC 6455 §9.1: `,`-separated elements, `;`-separated parameters, values
//! as token or quoted-string; optional whitespace around the separators). If
//! any line is malformed, no extension is negotiated. Otherwise the first
//! `permessage-deflate` offer that is acceptable wins; an offer is declined
//! when it has an unknown parameter, a duplicate parameter, a value on
//! `*_no_context_takeover`, `server_max_window_bits` without a value, or a
//! window value that is not a decimal 8..15 without leading zeros. When no
//! offer is acceptable the connection upgrades without an extension.
//!
//! The answer accepts the offer as made:
//! * `server_no_context_takeover` is echoed and honoured: the compressor is
//!   reset after every message.
//! * `client_no_context_takeover` is echoed; the inflater is reset after
//!   every message (a client that keeps its context anyway fails with 1002
//!   when it refers back to an earlier message).
//! * `server_max_window_bits=N` is echoed with the same N and the server
//!   compresses with that window. N = 8 is supported: zlib cannot deflate
//!   with a 256-byte window, so with 8 the server sends stored DEFLATE
//!   blocks, which contain no back-references and so honour any window.
//! * `client_max_window_bits=N` is echoed with the same N;
//!   `client_max_window_bits` without a value is accepted and not answered
//!   (the client may then use up to 15). The client's window is not
//!   enforced: zlib-rs inflates with a 32 KiB window whatever the window
//!   bits, so back-references beyond N are accepted.
//!
//! Extension and parameter names are compared case-sensitively
//! (`Permessage-Deflate` is an unknown extension and is ignored).
//!
//! # Data path
//!
//! Inbound ([`Inbound`]), between the guard's validator and tungstenite: the
//! frames of a compressed message (RSV1 on its first frame) are unmasked and
//! inflated, and the inflated bytes are handed to tungstenite as plain,
//! masked (all-zero key) frames of the same message; every other frame
//! passes through unchanged. Inflated size above `max_message_size` fails
//! with 1009 while inflating (output is produced in 16 KiB steps and never
//! beyond the limit); invalid UTF-8 in an inflated text message fails with
//! 1007 as soon as it is inflated; invalid DEFLATE data fails with 1002 (RFC
//! 7692 §8 says only "Fail the WebSocket Connection"; the data violates the
//! extension's framing, a protocol error, not the message type, so not 1007).
//!
//! Outbound ([`Outbound`]), between tungstenite and the socket: the data
//! frames tungstenite writes are parsed back and, for messages whose
//! inbound original was compressed, compressed (sync flush, trailing
//! `00 00 ff ff` removed on the final frame, §7.2.1) and rewritten with
//! RSV1 on the first frame. The echo mirrors the client: an uncompressed
//! message (RSV1 clear, always allowed) is echoed uncompressed. Control
//! frames pass through.

use std::collections::VecDeque;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::guard::{Event, INVALID_PAYLOAD, MESSAGE_TOO_BIG, PROTOCOL_ERROR, Utf8Stream};

pub(crate) const EXTENSION_NAME: &str = "permessage-deflate";
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// Largest inflated chunk handed on as one frame.
const STEP: usize = 16 * 1024;
/// Compressed input inflated per step: bounds the output of one step to
/// about 1032 times this (DEFLATE's maximum ratio).
const INPUT_STEP: usize = 512;
/// [`Inbound::pump`] stops producing once this much output is queued.
const PUMP_HIGH_WATER: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// Negotiation
// ---------------------------------------------------------------------------

/// The parameters in force for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Agreed {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// Window the server compresses with, 8..=15.
    pub server_max_window_bits: u8,
    /// Window the client may compress with, 8..=15.
    pub client_max_window_bits: u8,
}

/// An accepted offer: the agreement and the `Sec-WebSocket-Extensions`
/// response value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Negotiated {
    pub agreed: Agreed,
    pub response: String,
}

/// Why an offer was declined (for tests and debugging).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decline {
    UnknownParam(String),
    DuplicateParam(&'static str),
    InvalidValue(&'static str),
}

/// One list element: extension token and parameters (values unquoted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub params: Vec<(String, Option<String>)>,
}

/// Picks the first acceptable `permessage-deflate` offer of the request's
/// `Sec-WebSocket-Extensions` lines; `None` when there is none or a line is
/// malformed.
pub(crate) fn negotiate<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Option<Negotiated> {
    let mut elements = Vec::new();
    for line in lines {
        parse_list(line, &mut elements).ok()?;
    }
    elements
        .iter()
        .filter(|e| e.name == EXTENSION_NAME)
        .find_map(|e| accept_offer(&e.params).ok())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses one field line as an extension list (RFC 6455 §9.1, RFC 9110 §5.6.1
/// list rules: empty elements are skipped).
pub(crate) fn parse_list(line: &[u8], out: &mut Vec<Element>) -> Result<(), &'static str> {
    let mut i = 0;
    let peek = |i: usize| line.get(i).copied();
    let skip_ows = |i: &mut usize| {
        while matches!(line.get(*i), Some(b' ' | b'\t')) {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while line.get(*i).copied().is_some_and(is_tchar) {
            *i += 1;
        }
        (*i > start).then(|| String::from_utf8_lossy(&line[start..*i]).into_owned())
    };
    loop {
        skip_ows(&mut i);
        match peek(i) {
            None => return Ok(()),
            Some(b',') => {
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = token(&mut i).ok_or("expected an extension token")?;
        let mut params = Vec::new();
        loop {
            skip_ows(&mut i);
            match peek(i) {
                None | Some(b',') => break,
                Some(b';') => i += 1,
                Some(_) => return Err("expected `;` or `,`"),
            }
            skip_ows(&mut i);
            let pname = token(&mut i).ok_or("expected a parameter name")?;
            skip_ows(&mut i);
            let mut value = None;
            if peek(i) == Some(b'=') {
                i += 1;
                skip_ows(&mut i);
                value = Some(if peek(i) == Some(b'"') {
                    i += 1;
                    let mut v = Vec::new();
                    loop {
                        match peek(i) {
                            None => return Err("unterminated quoted-string"),
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(b'\\') => {
                                let b = peek(i + 1).ok_or("unterminated quoted-pair")?;
                                v.push(b);
                                i += 2;
                            }
                            Some(b) => {
                                v.push(b);
                                i += 1;
                            }
                        }
                    }
                    // §9.1: once unquoted, the value must be a token.
                    if v.is_empty() || !v.iter().all(|b| is_tchar(*b)) {
                        return Err("a quoted value must be a token");
                    }
                    String::from_utf8_lossy(&v).into_owned()
                } else {
                    token(&mut i).ok_or("expected a parameter value")?
                });
            }
            params.push((pname, value));
        }
        out.push(Element { name, params });
    }
}

/// `8`..`15`, decimal without leading zeros (RFC 7692 §7.1.2).
fn window_bits(v: &str) -> Option<u8> {
    match v {
        "8" | "9" | "10" | "11" | "12" | "13" | "14" | "15" => v.parse().ok(),
        _ => None,
    }
}

/// Accepts one `permessage-deflate` offer, or says why not.
pub(crate) fn accept_offer(params: &[(String, Option<String>)]) -> Result<Negotiated, Decline> {
    let mut snct = false;
    let mut cnct = false;
    let mut smwb: Option<u8> = None;
    let mut cmwb: Option<Option<u8>> = None;
    let mut seen: Vec<&'static str> = Vec::new();
    for (name, value) in params {
        let name: &'static str = match name.as_str() {
            SERVER_NO_CONTEXT_TAKEOVER => SERVER_NO_CONTEXT_TAKEOVER,
            CLIENT_NO_CONTEXT_TAKEOVER => CLIENT_NO_CONTEXT_TAKEOVER,
            SERVER_MAX_WINDOW_BITS => SERVER_MAX_WINDOW_BITS,
            CLIENT_MAX_WINDOW_BITS => CLIENT_MAX_WINDOW_BITS,
            other => return Err(Decline::UnknownParam(other.into())),
        };
        if seen.contains(&name) {
            return Err(Decline::DuplicateParam(name));
        }
        seen.push(name);
        let value = value.as_deref();
        match name {
            SERVER_NO_CONTEXT_TAKEOVER | CLIENT_NO_CONTEXT_TAKEOVER => {
                if value.is_some() {
                    return Err(Decline::InvalidValue(name));
                }
                if name == SERVER_NO_CONTEXT_TAKEOVER {
                    snct = true;
                } else {
                    cnct = true;
                }
            }
            SERVER_MAX_WINDOW_BITS => {
                smwb = Some(
                    value
                        .and_then(window_bits)
                        .ok_or(Decline::InvalidValue(name))?,
                );
            }
            _ => {
                cmwb = Some(match value {
                    None => None,
                    Some(v) => Some(window_bits(v).ok_or(Decline::InvalidValue(name))?),
                });
            }
        }
    }
    let mut response = String::from(EXTENSION_NAME);
    if snct {
        response.push_str("; server_no_context_takeover");
    }
    if cnct {
        response.push_str("; client_no_context_takeover");
    }
    if let Some(bits) = smwb {
        response.push_str(&format!("; server_max_window_bits={bits}"));
    }
    if let Some(Some(bits)) = cmwb {
        response.push_str(&format!("; client_max_window_bits={bits}"));
    }
    Ok(Negotiated {
        agreed: Agreed {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: smwb.unwrap_or(15),
            client_max_window_bits: cmwb.flatten().unwrap_or(15),
        },
        response,
    })
}

// ---------------------------------------------------------------------------
// Codec
// ---------------------------------------------------------------------------

/// Compresses the server's messages frame by frame.
struct Deflater {
    window_bits: u8,
    /// Created by the first message that needs it and dropped by
    /// [`Deflater::release`]: a zlib compressor holds about 300 KB, far more
    /// than an idle connection should. Starting a new compressor between
    /// messages is always allowed: context takeover lets the server refer
    /// back to earlier messages, it never obliges it to (RFC 7692 §7.1.1.1).
    zlib: Option<Box<Compress>>,
    no_context_takeover: bool,
}

impl Deflater {
    fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        Deflater {
            window_bits,
            zlib: None,
            no_context_takeover,
        }
    }

    /// Drops the compression context (between messages only).
    fn release(&mut self) {
        self.zlib = None;
    }

    /// The compressed payload of one frame of a message; `fin` for the last.
    fn compress_frame(&mut self, data: &[u8], fin: bool) -> Vec<u8> {
        // An 8-bit window: stored blocks only, no compressor at all.
        if self.window_bits <= 8 {
            let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 6);
            for chunk in data.chunks(65535) {
                let len = chunk.len() as u16;
                out.push(0x00); // BFINAL 0, BTYPE 00 (stored), padding
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&(!len).to_le_bytes());
                out.extend_from_slice(chunk);
            }
            if fin {
                // The first byte of an empty stored block; the stripped tail
                // is the rest of it.
                out.push(0x00);
            }
            return out;
        }
        if data.is_empty() {
            // zlib emits nothing for a flush right after a flush; the
            // stream is at a block boundary either way, so an empty message
            // is the head of an empty stored block (§7.2.3.6) and an empty
            // non-final frame is empty.
            return if fin { vec![0x00] } else { Vec::new() };
        }
        let bits = self.window_bits;
        let c = self.zlib.get_or_insert_with(|| {
            Box::new(Compress::new_with_window_bits(
                Compression::default(),
                false,
                bits,
            ))
        });
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut input = data;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let before = c.total_in();
            c.compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("raw deflate with a sync flush cannot fail");
            input = &input[(c.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if fin {
            debug_assert!(out.ends_with(&TAIL));
            out.truncate(out.len().saturating_sub(TAIL.len()));
            if self.no_context_takeover {
                c.reset();
            }
        }
        out
    }
}

/// Inflates the client's messages, streaming.
struct Inflater {
    /// Created when a compressed message arrives and dropped by
    /// [`Inflater::release`] (zlib's state and window are about 40 KB).
    zlib: Option<Decompress>,
    window_bits: u8,
    no_context_takeover: bool,
    /// Recent output (with context takeover), to prime a new stream after
    /// a block with BFINAL set (RFC 7692 §7.2.3.4) or after a release.
    history: Vec<u8>,
    /// A stream ended with BFINAL and no byte of the next one was fed.
    fresh_after_end: bool,
}

enum InflateFail {
    TooLarge,
    Corrupt,
    /// Raised by the output callback.
    Output(Event),
}

impl Inflater {
    fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        // zlib has no raw 8-bit window; a 9-bit one decodes a superset.
        let window_bits = window_bits.max(9);
        Inflater {
            zlib: None,
            window_bits,
            no_context_takeover,
            history: Vec::new(),
            fresh_after_end: false,
        }
    }

    /// Gives a fresh stream the window the client may refer back to.
    fn prime(zlib: &mut Decompress, history: &[u8], window_bits: u8) {
        if !history.is_empty() {
            let from = history.len().saturating_sub(1 << window_bits);
            let _ = zlib.set_dictionary(&history[from..]);
        }
    }

    /// After a message (and after a BFINAL block): a new stream, primed with
    /// the window when context is taken over.
    fn restart(&mut self, keep_window: bool) {
        self.fresh_after_end = false;
        if !keep_window {
            self.history.clear();
        }
        if let Some(zlib) = &mut self.zlib {
            zlib.reset(false);
            Self::prime(zlib, &self.history, self.window_bits);
        }
    }

    fn end_message(&mut self) {
        if self.no_context_takeover {
            self.restart(false);
        }
    }

    /// Drops the zlib state between messages. With context takeover only
    /// the window itself is kept (the client may refer back into it); the
    /// next message starts a stream primed with it, as after BFINAL.
    fn release(&mut self) {
        self.zlib = None;
        let w = 1usize << self.window_bits;
        if self.history.len() > w {
            self.history.drain(..self.history.len() - w);
        }
        self.history.shrink_to_fit();
    }

    /// Inflates `input`, handing the output to `emit` in chunks of at most
    /// [`STEP`] bytes; fails with `TooLarge` before producing more than
    /// `allowed` bytes in total.
    fn feed(
        &mut self,
        mut input: &[u8],
        mut allowed: usize,
        emit: &mut dyn FnMut(&[u8]) -> Result<(), Event>,
    ) -> Result<(), InflateFail> {
        if self.fresh_after_end && input == TAIL {
            return Ok(());
        }
        let mut buf = [0u8; STEP];
        while !input.is_empty() {
            self.fresh_after_end = false;
            let room = STEP.min(allowed.saturating_add(1));
            let zlib = match &mut self.zlib {
                Some(zlib) => zlib,
                None => {
                    let mut zlib = Decompress::new_with_window_bits(false, self.window_bits);
                    Self::prime(&mut zlib, &self.history, self.window_bits);
                    self.zlib.insert(zlib)
                }
            };
            let (in0, out0) = (zlib.total_in(), zlib.total_out());
            let status = zlib
                .decompress(input, &mut buf[..room], FlushDecompress::Sync)
                .map_err(|_| InflateFail::Corrupt)?;
            let consumed = (zlib.total_in() - in0) as usize;
            let produced = (zlib.total_out() - out0) as usize;
            if produced > allowed {
                return Err(InflateFail::TooLarge);
            }
            allowed -= produced;
            input = &input[consumed..];
            if produced > 0 {
                emit(&buf[..produced]).map_err(InflateFail::Output)?;
                if !self.no_context_takeover {
                    self.history.extend_from_slice(&buf[..produced]);
                    let w = 1usize << self.window_bits;
                    if self.history.len() > 2 * w {
                        self.history.drain(..self.history.len() - w);
                    }
                }
            }
            match status {
                Status::StreamEnd => {
                    self.restart(!self.no_context_takeover);
                    self.fresh_after_end = true;
                }
                Status::Ok | Status::BufError => {
                    if produced < room && input.is_empty() {
                        break;
                    }
                    if consumed == 0 && produced == 0 {
                        return Err(InflateFail::Corrupt);
                    }
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Inbound: validated client frames -> plain frames for tungstenite
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct InMessage {
    compressed: bool,
    text: bool,
    /// A frame of this message was already handed on (next: continuation).
    emitted: bool,
    /// Inflated bytes so far.
    inflated: usize,
    /// Compressed payload bytes so far (0 at the end: an empty message).
    wire: u64,
}

/// Rewrites the validated client frame stream (see the module docs). Input
/// is queued with [`Inbound::push`] and transformed by [`Inbound::pump`].
pub(crate) struct Inbound {
    queue: Vec<u8>,
    pos: usize,
    header: [u8; 14],
    have: usize,
    need: usize,
    in_payload: bool,
    remaining: u64,
    mask: [u8; 4],
    mask_pos: usize,
    opcode: u8,
    fin: bool,
    /// The current frame is part of a compressed message.
    inflating: bool,
    message: Option<InMessage>,
    utf8: Utf8Stream,
    inflater: Inflater,
    max_message_size: usize,
    scratch: Vec<u8>,
    /// Per data message received, in order: whether it was compressed.
    /// [`Outbound`] pops one per echoed message.
    pub echo_compressed: VecDeque<bool>,
}

impl Inbound {
    pub(crate) fn new(agreed: &Agreed, max_message_size: usize) -> Self {
        Inbound {
            queue: Vec::new(),
            pos: 0,
            header: [0; 14],
            have: 0,
            need: 2,
            in_payload: false,
            remaining: 0,
            mask: [0; 4],
            mask_pos: 0,
            opcode: 0,
            fin: false,
            inflating: false,
            message: None,
            utf8: Utf8Stream::default(),
            inflater: Inflater::new(
                agreed.client_max_window_bits,
                agreed.client_no_context_takeover,
            ),
            max_message_size,
            scratch: Vec::new(),
            echo_compressed: VecDeque::new(),
        }
    }

    /// Queues validated wire bytes.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.pos == self.queue.len() {
            self.queue.clear();
            self.pos = 0;
        }
        self.queue.extend_from_slice(bytes);
    }

    pub(crate) fn has_input(&self) -> bool {
        self.pos < self.queue.len()
    }

    /// Between messages with nothing queued: [`Inbound::release`] loses
    /// nothing.
    pub(crate) fn at_rest(&self) -> bool {
        !self.has_input() && !self.in_payload && self.have == 0 && self.message.is_none()
    }

    /// Frees the buffers and the zlib state; they are made again on demand.
    pub(crate) fn release(&mut self) {
        self.queue = Vec::new();
        self.pos = 0;
        self.scratch = Vec::new();
        self.echo_compressed.shrink_to_fit();
        self.inflater.release();
    }

    /// Transforms queued input into `out` until the input is used up or
    /// about 64 KiB of output is waiting. An error ends the stream: every
    /// byte written to `out` before it is still valid.
    pub(crate) fn pump(&mut self, out: &mut Vec<u8>) -> Result<(), Event> {
        while self.pos < self.queue.len() && out.len() < PUMP_HIGH_WATER {
            if !self.in_payload {
                let b = self.queue[self.pos];
                self.pos += 1;
                self.header_byte(b, out)?;
                continue;
            }
            let avail = (self.queue.len() - self.pos) as u64;
            let mut n = self.remaining.min(avail) as usize;
            if self.inflating {
                n = n.min(INPUT_STEP);
            }
            let start = self.pos;
            self.pos += n;
            self.remaining -= n as u64;
            if self.inflating {
                self.scratch.clear();
                let mask = self.mask;
                let mp = self.mask_pos;
                self.scratch.extend(
                    self.queue[start..start + n]
                        .iter()
                        .enumerate()
                        .map(|(k, b)| b ^ mask[(mp + k) % 4]),
                );
                self.mask_pos = (self.mask_pos + n) % 4;
                let data = std::mem::take(&mut self.scratch);
                let r = self.inflate(&data, out);
                self.scratch = data;
                r?;
            } else {
                out.extend_from_slice(&self.queue[start..start + n]);
            }
            if self.remaining == 0 {
                self.end_frame(out)?;
            }
        }
        if self.pos == self.queue.len() {
            self.queue.clear();
            self.pos = 0;
        }
        Ok(())
    }

    fn header_byte(&mut self, b: u8, out: &mut Vec<u8>) -> Result<(), Event> {
        self.header[self.have] = b;
        self.have += 1;
        if self.have == 2 {
            self.need =
                2 + match b & 0x7F {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                } + 4;
        }
        if self.have < self.need {
            return Ok(());
        }
        // A complete header (the guard has validated it).
        let h = self.header;
        self.have = 0;
        let need = std::mem::replace(&mut self.need, 2);
        self.fin = h[0] & 0x80 != 0;
        self.opcode = h[0] & 0x0F;
        let rsv1 = h[0] & 0x40 != 0;
        self.remaining = match need - 6 {
            0 => u64::from(h[1] & 0x7F),
            2 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            _ => u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
        };
        self.mask.copy_from_slice(&h[need - 4..need]);
        self.mask_pos = 0;
        self.in_payload = true;
        if self.opcode == 0x1 || self.opcode == 0x2 {
            self.message = Some(InMessage {
                compressed: rsv1,
                text: self.opcode == 0x1,
                emitted: false,
                inflated: 0,
                wire: 0,
            });
            self.utf8 = Utf8Stream::default();
            self.echo_compressed.push_back(rsv1);
        }
        self.inflating = self.opcode & 0x08 == 0 && self.message.is_some_and(|m| m.compressed);
        if let (true, Some(m)) = (self.inflating, self.message.as_mut()) {
            m.wire += self.remaining;
        } else {
            out.extend_from_slice(&h[..need]);
        }
        if self.remaining == 0 {
            self.end_frame(out)?;
        }
        Ok(())
    }

    fn end_frame(&mut self, out: &mut Vec<u8>) -> Result<(), Event> {
        self.in_payload = false;
        if self.opcode & 0x08 != 0 || !self.fin {
            return Ok(());
        }
        let Some(m) = self.message else {
            return Ok(());
        };
        if m.compressed {
            // An empty payload is taken as an empty message without touching
            // the DEFLATE state (conforming senders emit at least `00`).
            if m.wire > 0 {
                self.inflate(&TAIL, out)?;
            }
            let m = self.message.expect("message");
            if m.text && !self.utf8.is_complete() {
                return Err(invalid_utf8());
            }
            emit_frame(out, m.text, m.emitted, true, &[]);
            self.inflater.end_message();
        }
        self.message = None;
        Ok(())
    }

    /// Inflates message data, emitting non-final frames.
    fn inflate(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Event> {
        let m = self.message.as_mut().expect("compressed message");
        let allowed = self.max_message_size.saturating_sub(m.inflated);
        let utf8 = &mut self.utf8;
        let mut emit = |chunk: &[u8]| -> Result<(), Event> {
            if m.text && utf8.feed(chunk).is_err() {
                return Err(invalid_utf8());
            }
            emit_frame(out, m.text, m.emitted, false, chunk);
            m.emitted = true;
            m.inflated += chunk.len();
            Ok(())
        };
        match self.inflater.feed(data, allowed, &mut emit) {
            Ok(()) => Ok(()),
            Err(InflateFail::TooLarge) => Err(Event::Fail {
                code: MESSAGE_TOO_BIG,
                reason: "inflated message too big",
            }),
            Err(InflateFail::Corrupt) => Err(Event::Fail {
                code: PROTOCOL_ERROR,
                reason: "invalid compressed data",
            }),
            Err(InflateFail::Output(e)) => Err(e),
        }
    }
}

fn invalid_utf8() -> Event {
    Event::Fail {
        code: INVALID_PAYLOAD,
        reason: "invalid UTF-8",
    }
}

/// Appends a client-style (masked, all-zero key) frame of inflated data.
fn emit_frame(out: &mut Vec<u8>, text: bool, continuation: bool, fin: bool, data: &[u8]) {
    let opcode = match (continuation, text) {
        (true, _) => 0x0,
        (false, true) => 0x1,
        (false, false) => 0x2,
    };
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let len = data.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(data);
}

// ---------------------------------------------------------------------------
// Outbound: tungstenite's server frames -> compressed frames
// ---------------------------------------------------------------------------

/// Rewrites the server frame stream written by tungstenite (see the module
/// docs).
pub(crate) struct Outbound {
    deflater: Deflater,
    header: [u8; 10],
    have: usize,
    need: usize,
    in_payload: bool,
    remaining: u64,
    b0: u8,
    /// Whether the data message being written is compressed (`None`
    /// between messages).
    compressing: Option<bool>,
    /// The compressed message's first frame is yet to be written.
    first: bool,
    payload: Vec<u8>,
}

impl Outbound {
    pub(crate) fn new(agreed: &Agreed) -> Self {
        Outbound {
            deflater: Deflater::new(
                agreed.server_max_window_bits,
                agreed.server_no_context_takeover,
            ),
            header: [0; 10],
            have: 0,
            need: 2,
            in_payload: false,
            remaining: 0,
            b0: 0,
            compressing: None,
            first: false,
            payload: Vec::new(),
        }
    }

    /// Between messages: [`Outbound::release`] loses nothing.
    pub(crate) fn at_rest(&self) -> bool {
        !self.in_payload && self.have == 0 && self.compressing.is_none()
    }

    /// Frees the frame buffer and the compressor.
    pub(crate) fn release(&mut self) {
        self.payload = Vec::new();
        self.deflater.release();
    }

    /// Consumes all of `data`, appending the bytes to send to `out`.
    /// `echo_compressed` says, per message, whether to compress it
    /// (default: compress).
    pub(crate) fn write(
        &mut self,
        mut data: &[u8],
        echo_compressed: &mut VecDeque<bool>,
        out: &mut Vec<u8>,
    ) {
        while !data.is_empty() {
            if !self.in_payload {
                let b = data[0];
                data = &data[1..];
                self.header[self.have] = b;
                self.have += 1;
                if self.have == 2 {
                    self.need = 2 + match b & 0x7F {
                        126 => 2,
                        127 => 8,
                        _ => 0,
                    };
                }
                if self.have == self.need {
                    self.start_frame(echo_compressed, out);
                }
                continue;
            }
            let n = self.remaining.min(data.len() as u64) as usize;
            if self.buffering() {
                self.payload.extend_from_slice(&data[..n]);
            } else {
                out.extend_from_slice(&data[..n]);
            }
            data = &data[n..];
            self.remaining -= n as u64;
            if self.remaining == 0 {
                self.end_frame(out);
            }
        }
    }

    fn buffering(&self) -> bool {
        self.b0 & 0x08 == 0 && self.compressing == Some(true)
    }

    fn start_frame(&mut self, echo_compressed: &mut VecDeque<bool>, out: &mut Vec<u8>) {
        let h = self.header;
        let need = self.need;
        self.have = 0;
        self.need = 2;
        self.b0 = h[0];
        self.remaining = match need - 2 {
            0 => u64::from(h[1] & 0x7F),
            2 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            _ => u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
        };
        let opcode = h[0] & 0x0F;
        if opcode == 0x1 || opcode == 0x2 {
            self.compressing = Some(echo_compressed.pop_front().unwrap_or(true));
            self.first = true;
        }
        self.in_payload = true;
        if self.buffering() {
            self.payload.clear();
        } else {
            out.extend_from_slice(&h[..need]);
        }
        if self.remaining == 0 {
            self.end_frame(out);
        }
    }

    fn end_frame(&mut self, out: &mut Vec<u8>) {
        self.in_payload = false;
        let fin = self.b0 & 0x80 != 0;
        if self.buffering() {
            let z = self.deflater.compress_frame(&self.payload, fin);
            let rsv1 = if self.first { 0x40 } else { 0 };
            self.first = false;
            out.push(self.b0 | rsv1);
            let len = z.len();
            if len < 126 {
                out.push(len as u8);
            } else if len <= 0xFFFF {
                out.push(126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
            out.extend_from_slice(&z);
            self.payload.clear();
            if self.payload.capacity() > 1 << 20 {
                self.payload.shrink_to(64 * 1024);
            }
        }
        if self.b0 & 0x08 == 0 && fin {
            self.compressing = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_frames::masked_frame as masked;

    fn neg(line: &str) -> Option<Negotiated> {
        negotiate([line.as_bytes()])
    }

    fn response(line: &str) -> Option<String> {
        neg(line).map(|n| n.response)
    }

    #[test]
    fn negotiation_answers() {
        let cases: &[(&str, Option<&str>)] = &[
            ("permessage-deflate", Some("permessage-deflate")),
            (
                "permessage-deflate; client_max_window_bits",
                Some("permessage-deflate"),
            ),
            (
                "permessage-deflate;client_max_window_bits=10",
                Some("permessage-deflate; client_max_window_bits=10"),
            ),
            (
                "permessage-deflate; server_max_window_bits=8",
                Some("permessage-deflate; server_max_window_bits=8"),
            ),
            (
                "permessage-deflate ; server_no_context_takeover ; client_no_context_takeover",
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            ),
            (
                "permessage-deflate; server_max_window_bits=\"12\"",
                Some("permessage-deflate; server_max_window_bits=12"),
            ),
            // The first acceptable offer of a list wins.
            (
                "x-foo, permessage-deflate; server_max_window_bits=16, \
                 permessage-deflate; client_no_context_takeover, permessage-deflate",
                Some("permessage-deflate; client_no_context_takeover"),
            ),
            // Declined.
            ("x-webkit-deflate-frame", None),
            ("Permessage-Deflate", None),
            ("permessage-deflate; foo", None),
            ("permessage-deflate; server_max_window_bits", None),
            ("permessage-deflate; server_max_window_bits=7", None),
            ("permessage-deflate; server_max_window_bits=16", None),
            ("permessage-deflate; server_max_window_bits=010", None),
            ("permessage-deflate; client_max_window_bits=0", None),
            ("permessage-deflate; client_max_window_bits=\"\"", None),
            ("permessage-deflate; server_no_context_takeover=1", None),
            (
                "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
                None,
            ),
            // Malformed: nothing is negotiated.
            ("permessage-deflate, permessage-deflate; x=\"a", None),
            ("permessage-deflate;", None),
            ("permessage-deflate x", None),
        ];
        for (offer, expected) in cases {
            assert_eq!(response(offer).as_deref(), *expected, "{offer}");
        }
        let n =
            neg("permessage-deflate; server_max_window_bits=9; client_max_window_bits=11").unwrap();
        assert_eq!(
            n.agreed,
            Agreed {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits: 9,
                client_max_window_bits: 11,
            }
        );
        // Several lines: offers in order; a malformed line spoils all.
        assert_eq!(
            negotiate([
                &b"x-foo"[..],
                b"permessage-deflate; client_no_context_takeover"
            ])
            .map(|n| n.response),
            Some("permessage-deflate; client_no_context_takeover".into())
        );
        assert_eq!(negotiate([&b"permessage-deflate"[..], b";"]), None);
    }

    #[test]
    fn decline_reasons() {
        let p = |s: &str| {
            let mut v = Vec::new();
            parse_list(s.as_bytes(), &mut v).unwrap();
            accept_offer(&v[0].params)
        };
        assert_eq!(
            p("permessage-deflate; a=b").unwrap_err(),
            Decline::UnknownParam("a".into())
        );
        assert_eq!(
            p("permessage-deflate; server_no_context_takeover; server_no_context_takeover")
                .unwrap_err(),
            Decline::DuplicateParam(SERVER_NO_CONTEXT_TAKEOVER)
        );
        assert_eq!(
            p("permessage-deflate; client_max_window_bits=16").unwrap_err(),
            Decline::InvalidValue(CLIENT_MAX_WINDOW_BITS)
        );
    }

    fn agreed(snct: bool, cnct: bool, smwb: u8, cmwb: u8) -> Agreed {
        Agreed {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: smwb,
            client_max_window_bits: cmwb,
        }
    }
    /// Parses frames back: (b0, unmasked payload).
    fn frames(mut s: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut v = Vec::new();
        while !s.is_empty() {
            let (len, hl) = match s[1] & 0x7F {
                126 => (u16::from_be_bytes([s[2], s[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(s[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            let masked = s[1] & 0x80 != 0;
            let key = if masked {
                s[hl..hl + 4].to_vec()
            } else {
                vec![0; 4]
            };
            let start = hl + if masked { 4 } else { 0 };
            let payload = s[start..start + len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            v.push((s[0], payload));
            s = &s[start + len..];
        }
        v
    }

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn run(inb: &mut Inbound, bytes: &[u8]) -> (Vec<u8>, Result<(), Event>) {
        let mut out = Vec::new();
        inb.push(bytes);
        let mut r = Ok(());
        while inb.has_input() && r.is_ok() {
            r = inb.pump(&mut out);
            if r.is_err() {
                break;
            }
        }
        (out, r)
    }

    /// Joins the data frames of each message.
    fn messages(fs: &[(u8, Vec<u8>)]) -> Vec<(u8, Vec<u8>)> {
        let mut msgs = Vec::new();
        let mut cur: Option<(u8, Vec<u8>)> = None;
        for (b0, p) in fs {
            if b0 & 0x08 != 0 {
                msgs.push((*b0, p.clone()));
                continue;
            }
            let c = cur.get_or_insert((b0 & 0x0F, Vec::new()));
            c.1.extend(p);
            if b0 & 0x80 != 0 {
                msgs.push(cur.take().unwrap());
            }
        }
        msgs
    }

    #[test]
    fn inbound_inflates_rfc_examples() {
        let mut bytes = masked(0xC1, &hex("f2 48 cd c9 c9 07 00"));
        bytes.extend(masked(0xC1, &hex("f2 00 11 00 00")));
        // Fragmented with a ping in between; RSV1 only on the first frame.
        bytes.extend(masked(0x41, &hex("f2 48")));
        bytes.extend(masked(0x89, b"p"));
        bytes.extend(masked(0x00, &hex("05 00 00 00 ff ff")));
        bytes.extend(masked(0x80, &hex("ca c9 c9 07 00")));
        // Uncompressed passes through.
        bytes.extend(masked(0x82, b"raw"));
        // Empty message, BFINAL message, empty payload.
        bytes.extend(masked(0xC2, &hex("00")));
        bytes.extend(masked(0xC1, &hex("f3 48 cd c9 c9 07 00 00")));
        bytes.extend(masked(0xC1, &hex("f2 00 11 00 00")));
        bytes.extend(masked(0xC1, &[]));
        for split in [bytes.len(), 1] {
            let mut inb2 = Inbound::new(&agreed(false, false, 15, 15), 1000);
            let mut out = Vec::new();
            for chunk in bytes.chunks(split) {
                let (o, r) = run(&mut inb2, chunk);
                r.unwrap();
                out.extend(o);
            }
            let msgs = messages(&frames(&out));
            let expect: Vec<(u8, Vec<u8>)> = vec![
                (1, b"Hello".to_vec()),
                (1, b"Hello".to_vec()),
                (0x89, b"p".to_vec()),
                (1, b"Hello".to_vec()),
                (2, b"raw".to_vec()),
                (2, vec![]),
                (1, b"Hello".to_vec()),
                (1, b"Hello".to_vec()),
                (1, vec![]),
            ];
            assert_eq!(msgs, expect, "split {split}");
            assert_eq!(
                inb2.echo_compressed.iter().copied().collect::<Vec<_>>(),
                vec![true, true, true, false, true, true, true, true]
            );
        }
    }

    #[test]
    fn inbound_failures() {
        let fail = |a: Agreed, max: usize, bytes: Vec<u8>| {
            let mut inb = Inbound::new(&a, max);
            match run(&mut inb, &bytes).1 {
                Err(Event::Fail { code, .. }) => code,
                other => panic!("{other:?}"),
            }
        };
        let plain = agreed(false, false, 15, 15);
        assert_eq!(fail(plain, 1000, masked(0xC1, &[0xff, 0xff])), 1002);
        // Context is reset per message with client_no_context_takeover.
        let mut bytes = masked(0xC1, &hex("f2 48 cd c9 c9 07 00"));
        bytes.extend(masked(0xC1, &hex("f2 00 11 00 00")));
        assert_eq!(fail(agreed(false, true, 15, 15), 1000, bytes), 1002);
        // Bomb: 8 MiB of zeros compress to a few KiB.
        let mut c = Compress::new(Compression::best(), false);
        let mut z = Vec::with_capacity(1 << 20);
        c.compress_vec(&vec![0u8; 8 << 20], &mut z, FlushCompress::Sync)
            .unwrap();
        assert!(z.len() < 20_000);
        let mut inb = Inbound::new(&plain, 1 << 20);
        let mut out = Vec::new();
        inb.push(&masked(0xC2, &z[..z.len() - 4]));
        let r = loop {
            let r = inb.pump(&mut out);
            assert!(out.len() < (1 << 20) + 4 * STEP);
            out.clear();
            if r.is_err() || !inb.has_input() {
                break r;
            }
        };
        assert!(matches!(r, Err(Event::Fail { code: 1009, .. })), "{r:?}");
        // Invalid UTF-8 after inflating.
        let mut c = Deflater::new(15, false);
        let z = c.compress_frame(&[b'a', 0xC0, 0xAF], true);
        assert_eq!(fail(plain, 1000, masked(0xC1, &z)), 1007);
        let z = c.compress_frame(&[b'a', 0xE2, 0x82], true);
        assert_eq!(fail(plain, 1000, masked(0xC1, &z)), 1007);
    }

    #[test]
    fn outbound_compresses_per_flags() {
        for a in [
            agreed(false, false, 15, 15),
            agreed(true, false, 9, 15),
            agreed(false, false, 8, 15),
        ] {
            let mut ob = Outbound::new(&a);
            let mut flags: VecDeque<bool> = [true, false, true].into();
            let mut wire = Vec::new();
            wire.extend([0x81, 5]);
            wire.extend(b"Hello");
            wire.extend([0x89, 1, b'p']);
            wire.extend([0x82, 3, 1, 2, 3]);
            let big = vec![b'z'; 70_000];
            wire.extend([0x82, 127]);
            wire.extend((big.len() as u64).to_be_bytes());
            wire.extend(&big);
            wire.extend([0x82, 0]);
            let mut out = Vec::new();
            for chunk in wire.chunks(7) {
                ob.write(chunk, &mut flags, &mut out);
            }
            let fs = frames(&out);
            assert_eq!(fs.len(), 5);
            assert_eq!(fs[0].0, 0xC1);
            assert_eq!(fs[1], (0x89, b"p".to_vec()));
            assert_eq!(fs[2], (0x82, vec![1, 2, 3]));
            assert_eq!(fs[3].0, 0xC2);
            assert_eq!(fs[4].0, 0xC2, "no flag left: compress");
            let mut d = Inflater::new(15, a.server_no_context_takeover);
            for (i, expect) in [(0, &b"Hello"[..]), (3, &big), (4, &[])] {
                let mut got = Vec::new();
                let mut emit = |c: &[u8]| {
                    got.extend_from_slice(c);
                    Ok(())
                };
                let mut input = fs[i].1.clone();
                input.extend(TAIL);
                assert!(d.feed(&input, 1 << 20, &mut emit).is_ok());
                assert_eq!(got, expect, "{a:?} frame {i}");
            }
        }
    }
}
