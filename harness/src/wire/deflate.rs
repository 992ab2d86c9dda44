//! permessage-deflate (RFC 7692) building blocks for the client side of the
//! WebSocket engine. Pure and synchronous: no I/O, no frames.
//!
//! * [`Offer`]: one `permessage-deflate` offer, rendered with
//!   [`Offer::header_value`].
//! * [`check_response`]: checks the server's `Sec-WebSocket-Extensions`
//!   answer against what was offered (RFC 7692 §5, §7.1) and yields the
//!   [`Agreed`] parameters, or `None` when the server declined.
//! * [`Compressor`] / [`Decompressor`]: per-message DEFLATE with the agreed
//!   window sizes and context takeover (§7.2). A compressed message payload is
//!   the DEFLATE output of a sync flush without its trailing `00 00 ff ff`
//!   (§7.2.1); the decompressor appends those 4 bytes again (§7.2.2) and stops
//!   as soon as the output would exceed its cap (decompression bombs).
//!
//! Window size 8: zlib (and so `flate2`) cannot produce a raw DEFLATE stream
//! with a 256-byte window. A [`Compressor`] limited to 8 bits therefore emits
//! stored (uncompressed) DEFLATE blocks, which contain no back-references and
//! are valid for every window size. A [`Decompressor`] for an 8-bit window
//! inflates with a 9-bit window, which accepts everything an 8-bit one does.

use std::fmt;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The extension token (RFC 7692 §7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// Removed from the end of every compressed message, appended again before
/// inflating (RFC 7692 §7.2.1, §7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// Inflating is done in steps of at most this many output bytes.
const STEP: usize = 16 * 1024;

// ---------------------------------------------------------------------------
// Negotiation
// ---------------------------------------------------------------------------

/// One `permessage-deflate` offer of a client (RFC 7692 §7.1).
///
/// Values are not range-checked: a test may offer out-of-range values on
/// purpose to see the server decline them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offer {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits=N`.
    pub server_max_window_bits: Option<u8>,
    /// `None`: absent; `Some(None)`: the parameter without a value (the
    /// client supports it, §7.1.2.2); `Some(Some(n))`: with value `n`.
    pub client_max_window_bits: Option<Option<u8>>,
}

impl Offer {
    /// The offer as one `Sec-WebSocket-Extensions` element, parameters in a
    /// fixed order, e.g. `permessage-deflate; client_max_window_bits`.
    pub fn header_value(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            s.push_str("; ");
            s.push_str(SERVER_NO_CONTEXT_TAKEOVER);
        }
        if self.client_no_context_takeover {
            s.push_str("; ");
            s.push_str(CLIENT_NO_CONTEXT_TAKEOVER);
        }
        if let Some(bits) = self.server_max_window_bits {
            s.push_str(&format!("; {SERVER_MAX_WINDOW_BITS}={bits}"));
        }
        match self.client_max_window_bits {
            None => {}
            Some(None) => {
                s.push_str("; ");
                s.push_str(CLIENT_MAX_WINDOW_BITS);
            }
            Some(Some(bits)) => s.push_str(&format!("; {CLIENT_MAX_WINDOW_BITS}={bits}")),
        }
        s
    }
}

impl Offer {
    /// The offer an element of a request's `Sec-WebSocket-Extensions`
    /// stands for, if it is a valid `permessage-deflate` offer (RFC 7692
    /// §7.1: known parameters, each at most once, valid values). A server
    /// must decline an invalid one (§5), so it is not an offer the answer
    /// may accept.
    pub fn from_element(e: &Element) -> Option<Offer> {
        if e.name != EXTENSION_NAME {
            return None;
        }
        let mut o = Offer::default();
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &e.params {
            if seen.contains(&name.as_str()) {
                return None;
            }
            match (name.as_str(), value.as_deref()) {
                (SERVER_NO_CONTEXT_TAKEOVER, None) => o.server_no_context_takeover = true,
                (CLIENT_NO_CONTEXT_TAKEOVER, None) => o.client_no_context_takeover = true,
                (SERVER_MAX_WINDOW_BITS, Some(v)) => {
                    o.server_max_window_bits = Some(window_bits(v)?)
                }
                (CLIENT_MAX_WINDOW_BITS, None) => o.client_max_window_bits = Some(None),
                (CLIENT_MAX_WINDOW_BITS, Some(v)) => {
                    o.client_max_window_bits = Some(Some(window_bits(v)?));
                }
                _ => return None,
            }
            seen.push(name);
        }
        Some(o)
    }
}

/// The valid `permessage-deflate` offers in a request's
/// `Sec-WebSocket-Extensions` lines, in order. A malformed line offers
/// nothing; other extensions and invalid offers are left out (see
/// [`Offer::from_element`]).
pub fn offers_in(lines: &[&str]) -> Vec<Offer> {
    lines
        .iter()
        .filter_map(|line| parse_extensions(&[line]).ok())
        .flatten()
        .filter_map(|e| Offer::from_element(&e))
        .collect()
}

/// Several offers in preference order, as one header value (`, `-joined).
#[cfg(test)]
pub fn offers_header_value(offers: &[Offer]) -> String {
    offers
        .iter()
        .map(Offer::header_value)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parameters in force once the server accepted an offer. Window sizes are
/// the base-2 logarithm of the LZ77 window, 8..=15; 15 when not limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client must reset its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server compresses with at most this window.
    pub server_max_window_bits: u8,
    /// The client must compress with at most this window.
    pub client_max_window_bits: u8,
}

impl Default for Agreed {
    /// The plain `permessage-deflate` agreement: context takeover both ways,
    /// 15-bit windows.
    fn default() -> Self {
        Agreed {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

impl fmt::Display for Agreed {
    /// The agreement in the response's terms, every parameter spelled out:
    /// `permessage-deflate; server_max_window_bits=15; client_max_window_bits=15`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXTENSION_NAME)?;
        if self.server_no_context_takeover {
            write!(f, "; {SERVER_NO_CONTEXT_TAKEOVER}")?;
        }
        if self.client_no_context_takeover {
            write!(f, "; {CLIENT_NO_CONTEXT_TAKEOVER}")?;
        }
        write!(
            f,
            "; {SERVER_MAX_WINDOW_BITS}={}; {CLIENT_MAX_WINDOW_BITS}={}",
            self.server_max_window_bits, self.client_max_window_bits
        )
    }
}

/// Why a server's `Sec-WebSocket-Extensions` answer is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("malformed Sec-WebSocket-Extensions value {value:?}: {reason}")]
    Malformed { value: String, reason: &'static str },
    #[error("the server answered with extension {name:?}, which was not offered")]
    NotOffered { name: String },
    #[error("the server accepted {count} permessage-deflate elements; at most one is allowed")]
    MoreThanOne { count: usize },
    #[error("parameter {name:?} is not defined for permessage-deflate")]
    UnknownParam { name: String },
    #[error("parameter {name} appears more than once")]
    DuplicateParam { name: String },
    #[error("parameter {name} has an invalid value ({})", describe_value(.value))]
    InvalidValue {
        name: &'static str,
        value: Option<String>,
    },
    #[error("the server answered with {name}, which the offer did not contain")]
    ParamNotOffered { name: &'static str },
    #[error("the offer contained {name}, which an accepting answer must carry")]
    OfferedParamMissing { name: &'static str },
    #[error("the server answered {name}={answered}, more than the offered {offered}")]
    AboveOffer {
        name: &'static str,
        offered: u8,
        answered: u8,
    },
    #[error("the answer matches none of the offers: {}", join_errors(.0))]
    NoMatchingOffer(Vec<NegotiationError>),
}

fn describe_value(v: &Option<String>) -> String {
    match v {
        None => "no value".into(),
        Some(v) => format!("{v:?}"),
    }
}

fn join_errors(errors: &[NegotiationError]) -> String {
    errors
        .iter()
        .enumerate()
        .map(|(i, e)| format!("offer {}: {e}", i + 1))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One element of a `Sec-WebSocket-Extensions` list: an extension token and
/// its parameters in order. Quoted values are unquoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub params: Vec<(String, Option<String>)>,
}

/// Parses `Sec-WebSocket-Extensions` field values (one per header line) into
/// their elements (RFC 6455 §9.1 with RFC 9110 list rules: empty elements
/// and optional whitespace around `,`, `;` and `=` are allowed; a quoted
/// value must be a token once unquoted).
pub fn parse_extensions(values: &[&str]) -> Result<Vec<Element>, NegotiationError> {
    let mut out = Vec::new();
    for value in values {
        parse_list(value, &mut out).map_err(|reason| NegotiationError::Malformed {
            value: (*value).to_owned(),
            reason,
        })?;
    }
    Ok(out)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A quoted-string, unescaped; the cursor is on the opening quote.
    fn quoted(&mut self) -> Result<String, &'static str> {
        self.i += 1;
        let mut v = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated quoted-string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&v).into_owned());
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b) if b == b'\t' || b >= 0x20 && b != 0x7f => {
                            v.push(b);
                            self.i += 1;
                        }
                        _ => return Err("bad quoted-pair"),
                    }
                }
                Some(b) if b == b'\t' || b >= 0x20 && b != 0x7f => {
                    v.push(b);
                    self.i += 1;
                }
                Some(_) => return Err("control character in quoted-string"),
            }
        }
    }
}

fn parse_list(value: &str, out: &mut Vec<Element>) -> Result<(), &'static str> {
    let mut c = Cursor {
        s: value.as_bytes(),
        i: 0,
    };
    loop {
        c.skip_ows();
        match c.peek() {
            None => return Ok(()),
            Some(b',') => {
                c.i += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = c.token().ok_or("expected an extension token")?;
        let mut params = Vec::new();
        loop {
            c.skip_ows();
            match c.peek() {
                None | Some(b',') => break,
                Some(b';') => c.i += 1,
                Some(_) => return Err("expected `;` or `,`"),
            }
            c.skip_ows();
            let pname = c.token().ok_or("expected a parameter name")?;
            c.skip_ows();
            let pvalue = if c.peek() == Some(b'=') {
                c.i += 1;
                c.skip_ows();
                let v = if c.peek() == Some(b'"') {
                    let v = c.quoted()?;
                    if v.is_empty() || !v.bytes().all(is_tchar) {
                        return Err("a quoted value must be a token once unquoted");
                    }
                    v
                } else {
                    c.token().ok_or("expected a parameter value")?
                };
                Some(v)
            } else {
                None
            };
            params.push((pname, pvalue));
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

/// The parameters of a response element, syntactically valid.
#[derive(Default)]
struct ResponseParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<u8>,
}

impl ResponseParams {
    fn parse(params: &[(String, Option<String>)]) -> Result<Self, NegotiationError> {
        let mut r = ResponseParams::default();
        let mut seen: Vec<&'static str> = Vec::new();
        for (name, value) in params {
            let name: &'static str = match name.as_str() {
                SERVER_NO_CONTEXT_TAKEOVER => SERVER_NO_CONTEXT_TAKEOVER,
                CLIENT_NO_CONTEXT_TAKEOVER => CLIENT_NO_CONTEXT_TAKEOVER,
                SERVER_MAX_WINDOW_BITS => SERVER_MAX_WINDOW_BITS,
                CLIENT_MAX_WINDOW_BITS => CLIENT_MAX_WINDOW_BITS,
                other => {
                    return Err(NegotiationError::UnknownParam { name: other.into() });
                }
            };
            if seen.contains(&name) {
                return Err(NegotiationError::DuplicateParam { name: name.into() });
            }
            seen.push(name);
            let invalid = || NegotiationError::InvalidValue {
                name,
                value: value.clone(),
            };
            match name {
                SERVER_NO_CONTEXT_TAKEOVER | CLIENT_NO_CONTEXT_TAKEOVER => {
                    if value.is_some() {
                        return Err(invalid());
                    }
                    if name == SERVER_NO_CONTEXT_TAKEOVER {
                        r.server_no_context_takeover = true;
                    } else {
                        r.client_no_context_takeover = true;
                    }
                }
                // In a response both window parameters need a value
                // (§7.1.2.1, §7.1.2.2).
                _ => {
                    let bits = value.as_deref().and_then(window_bits).ok_or_else(invalid)?;
                    if name == SERVER_MAX_WINDOW_BITS {
                        r.server_max_window_bits = Some(bits);
                    } else {
                        r.client_max_window_bits = Some(bits);
                    }
                }
            }
        }
        Ok(r)
    }

    /// Whether this response is a valid acceptance of `offer`.
    fn accepts(&self, offer: &Offer) -> Result<Agreed, NegotiationError> {
        // server_no_context_takeover and client_no_context_takeover may be
        // in a response even when not offered (§7.1.1.1, §7.1.1.2).
        // server_max_window_bits may be answered without being offered
        // (§7.1.2.1), but not above an offered value.
        if let (Some(offered), Some(answered)) =
            (offer.server_max_window_bits, self.server_max_window_bits)
            && answered > offered
        {
            return Err(NegotiationError::AboveOffer {
                name: SERVER_MAX_WINDOW_BITS,
                offered,
                answered,
            });
        }
        // client_max_window_bits only if offered, and not above an offered
        // value (§7.1.2.2).
        if let Some(answered) = self.client_max_window_bits {
            match offer.client_max_window_bits {
                None => {
                    return Err(NegotiationError::ParamNotOffered {
                        name: CLIENT_MAX_WINDOW_BITS,
                    });
                }
                Some(Some(offered)) if answered > offered => {
                    return Err(NegotiationError::AboveOffer {
                        name: CLIENT_MAX_WINDOW_BITS,
                        offered,
                        answered,
                    });
                }
                Some(_) => {}
            }
        }
        // An offer with server_no_context_takeover or server_max_window_bits
        // is accepted only by an answer carrying the parameter (§7.1.1.1,
        // §7.1.2.1).
        if offer.server_no_context_takeover && !self.server_no_context_takeover {
            return Err(NegotiationError::OfferedParamMissing {
                name: SERVER_NO_CONTEXT_TAKEOVER,
            });
        }
        if offer.server_max_window_bits.is_some() && self.server_max_window_bits.is_none() {
            return Err(NegotiationError::OfferedParamMissing {
                name: SERVER_MAX_WINDOW_BITS,
            });
        }
        Ok(Agreed {
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            server_max_window_bits: self.server_max_window_bits.unwrap_or(15),
            client_max_window_bits: self.client_max_window_bits.unwrap_or(15),
        })
    }
}

/// Checks the server's `Sec-WebSocket-Extensions` answer (one string per
/// header line; pass `&[]` when the header is absent) against the offers the
/// client sent (RFC 7692 §5, §7.1).
///
/// * `Ok(None)`: no extension accepted (the connection runs uncompressed).
/// * `Ok(Some(agreed))`: exactly one `permessage-deflate` element that is a
///   valid answer to at least one offer. Its parameters decide the agreement
///   (a client that offered `client_no_context_takeover` may still reset its
///   compressor when the answer omits it; set the field on [`Agreed`]).
/// * `Err`: the client must fail the connection: a malformed header, an
///   extension that was not offered (any, when `offers` is empty), more than
///   one element, an unknown or duplicate parameter, an invalid value, or
///   values the offers do not allow.
pub fn check_response(
    offers: &[Offer],
    response_values: &[&str],
) -> Result<Option<Agreed>, NegotiationError> {
    let elements = parse_extensions(response_values)?;
    if elements.is_empty() {
        return Ok(None);
    }
    if let Some(e) = elements
        .iter()
        .find(|e| e.name != EXTENSION_NAME || offers.is_empty())
    {
        return Err(NegotiationError::NotOffered {
            name: e.name.clone(),
        });
    }
    if elements.len() > 1 {
        return Err(NegotiationError::MoreThanOne {
            count: elements.len(),
        });
    }
    let response = ResponseParams::parse(&elements[0].params)?;
    let mut errors = Vec::new();
    for offer in offers {
        match response.accepts(offer) {
            Ok(agreed) => return Ok(Some(agreed)),
            Err(e) => errors.push(e),
        }
    }
    Err(if errors.len() == 1 {
        errors.pop().expect("one error")
    } else {
        NegotiationError::NoMatchingOffer(errors)
    })
}

// ---------------------------------------------------------------------------
// Compression
// ---------------------------------------------------------------------------

/// Compresses the messages one endpoint sends (§7.2.1).
pub struct Compressor {
    engine: Engine,
    no_context_takeover: bool,
}

enum Engine {
    Zlib(Box<Compress>),
    /// 8-bit windows: stored blocks only.
    Stored,
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor")
            .field("stored_only", &matches!(self.engine, Engine::Stored))
            .field("no_context_takeover", &self.no_context_takeover)
            .finish()
    }
}

impl Compressor {
    /// The client's compressor: `client_max_window_bits` and
    /// `client_no_context_takeover` of the agreement, default level (6).
    /// The driver picks its level with [`Self::with_params`]; tests use this.
    #[cfg(test)]
    pub fn new(agreed: &Agreed) -> Self {
        Self::with_params(
            agreed.client_max_window_bits,
            agreed.client_no_context_takeover,
            Compression::default().level(),
        )
    }

    /// A compressor for any role. `window_bits` 8..=15 (8 gives stored
    /// blocks), `level` 0..=9.
    ///
    /// # Panics
    /// If `window_bits` or `level` is out of range.
    pub fn with_params(window_bits: u8, no_context_takeover: bool, level: u32) -> Self {
        assert!((8..=15).contains(&window_bits), "window bits {window_bits}");
        assert!(level <= 9, "level {level}");
        let engine = if window_bits == 8 {
            Engine::Stored
        } else {
            Engine::Zlib(Box::new(Compress::new_with_window_bits(
                Compression::new(level),
                false,
                window_bits,
            )))
        };
        Compressor {
            engine,
            no_context_takeover,
        }
    }

    /// The payload of one compressed message (RSV1 goes on its first frame;
    /// the payload may be split across frames at any byte).
    pub fn compress(&mut self, message: &[u8]) -> Vec<u8> {
        match &mut self.engine {
            Engine::Stored => stored_blocks(message),
            // zlib emits nothing for a flush right after a flush; the stream
            // is at a block boundary either way, so the empty message is the
            // head of an empty stored block.
            Engine::Zlib(_) if message.is_empty() => vec![0x00],
            Engine::Zlib(c) => {
                let mut out = Vec::with_capacity(message.len() / 2 + 64);
                let mut input = message;
                loop {
                    if out.capacity() - out.len() < 64 {
                        out.reserve(out.capacity().max(1024));
                    }
                    let before = c.total_in();
                    c.compress_vec(input, &mut out, FlushCompress::Sync)
                        .expect("raw deflate with a sync flush cannot fail");
                    input = &input[(c.total_in() - before) as usize..];
                    // The flush is complete once zlib leaves output space
                    // unused with all input consumed.
                    if input.is_empty() && out.len() < out.capacity() {
                        break;
                    }
                }
                assert!(out.ends_with(&TAIL), "a sync flush ends with 00 00 ff ff");
                out.truncate(out.len() - TAIL.len());
                if self.no_context_takeover {
                    c.reset();
                }
                out
            }
        }
    }
}

impl Compressor {
    /// Forgets the context: the next message is compressed on its own.
    pub fn reset(&mut self) {
        if let Engine::Zlib(c) = &mut self.engine {
            c.reset();
        }
    }
}

/// The compressed payload of a message of `len` zero bytes (a decompression
/// bomb, about 1000:1), built without materialising the message: 1 MiB of
/// zeros is compressed once, then the compressed form of the next MiB,
/// which refers only back into zeros, is repeated. The segments are joined
/// by the sync-flush tail they end with. Self-contained: valid whatever
/// context the receiver holds. `window_bits` 8..=15 (8: stored blocks, no
/// compression).
pub fn zeros_payload(window_bits: u8, len: usize) -> Vec<u8> {
    const CHUNK: usize = 1 << 20;
    let mut c = Compressor::with_params(window_bits, false, 9);
    if len <= CHUNK || window_bits == 8 {
        return c.compress(&vec![0; len]);
    }
    let zeros = vec![0u8; CHUNK];
    let (full, rest) = (len / CHUNK, len % CHUNK);
    let first = c.compress(&zeros);
    let again = c.compress(&zeros);
    let last = c.compress(&zeros[..rest]);
    let mut out = Vec::with_capacity(first.len() + (again.len() + 4) * full + last.len());
    out.extend_from_slice(&first);
    for _ in 1..full {
        out.extend_from_slice(&TAIL);
        out.extend_from_slice(&again);
    }
    if rest > 0 {
        out.extend_from_slice(&TAIL);
        out.extend_from_slice(&last);
    }
    out
}

/// `message` as stored DEFLATE blocks, ending with the first byte of the
/// empty stored block whose other 4 bytes (`TAIL`) are stripped.
fn stored_blocks(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 65535 * 5 + 6);
    for chunk in message.chunks(65535) {
        let len = chunk.len() as u16;
        out.push(0x00); // BFINAL 0, BTYPE 00, padding
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.push(0x00);
    out
}

/// Why a message could not be decompressed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// The inflated message would be larger than the cap; inflating stopped
    /// at the cap.
    #[error("the inflated message exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// Not valid DEFLATE data (for this window / context).
    #[error("invalid compressed data: {0}")]
    Corrupt(String),
}

/// Decompresses the messages one endpoint receives (§7.2.2).
pub struct Decompressor {
    inflate: Decompress,
    window_bits: u8,
    no_context_takeover: bool,
    max_output: usize,
    /// The last inflated bytes (up to twice the window), kept with context
    /// takeover to prime a new stream after a block with BFINAL set.
    history: Vec<u8>,
    /// A DEFLATE stream ended (BFINAL) and the next one has not started.
    fresh_after_end: bool,
}

impl fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decompressor")
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .field("max_output", &self.max_output)
            .finish()
    }
}

impl Decompressor {
    /// The client's decompressor for the server's messages:
    /// `server_max_window_bits` and `server_no_context_takeover`; messages
    /// inflating to more than `max_output` bytes fail with
    /// [`InflateError::TooLarge`].
    pub fn new(agreed: &Agreed, max_output: usize) -> Self {
        Self::with_params(
            agreed.server_max_window_bits,
            agreed.server_no_context_takeover,
            max_output,
        )
    }

    /// A decompressor for any role; `window_bits` 8..=15.
    ///
    /// # Panics
    /// If `window_bits` is out of range.
    pub fn with_params(window_bits: u8, no_context_takeover: bool, max_output: usize) -> Self {
        assert!((8..=15).contains(&window_bits), "window bits {window_bits}");
        // zlib has no raw 8-bit window; a larger window decodes a superset.
        let window_bits = window_bits.max(9);
        Decompressor {
            inflate: Decompress::new_with_window_bits(false, window_bits),
            window_bits,
            no_context_takeover,
            max_output,
            history: Vec::new(),
            fresh_after_end: false,
        }
    }

    /// Inflates the whole payload of one compressed message (all its frames
    /// concatenated). Never holds more than `max_output` + 16 KiB of output.
    ///
    /// The window size is not enforced here: zlib-rs keeps a 32 KiB window
    /// whatever the window bits. The connection reader measures the
    /// references in the compressed data instead ([`super::lz77`]).
    ///
    /// An empty payload is taken as an empty message without touching the
    /// DEFLATE state (a conforming sender emits at least one byte, `00`).
    /// After an error the state is reset; the connection is to be failed.
    /// The connection reader streams with `decompress_with`; tests use this.
    #[cfg(test)]
    pub fn decompress(&mut self, payload: &[u8]) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        let max = self.max_output;
        self.decompress_with(payload, &mut |piece| {
            if out.capacity() - out.len() < piece.len() {
                // Grow geometrically, but never past the cap.
                let want = out.capacity().max(STEP).min(max - out.len());
                out.reserve_exact(want.max(piece.len()));
            }
            out.extend_from_slice(piece);
        })?;
        Ok(out)
    }

    /// [`Self::decompress`], handing the output to `sink` piece by piece
    /// (at most 16 KiB each) instead of collecting it: a message of any
    /// size up to `max_output` inflates in bounded memory.
    pub fn decompress_with(
        &mut self,
        payload: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), InflateError> {
        if payload.is_empty() {
            return Ok(());
        }
        let mut produced = 0usize;
        let result = self
            .run(payload, &mut produced, sink)
            .and_then(|()| self.run(&TAIL, &mut produced, sink));
        if result.is_err() || self.no_context_takeover {
            self.restart(false);
        }
        result
    }

    /// Starts a new DEFLATE stream, primed with the history when the window
    /// is taken over.
    fn restart(&mut self, keep_window: bool) {
        self.inflate.reset(false);
        self.fresh_after_end = false;
        if keep_window && !self.history.is_empty() {
            let w = 1usize << self.window_bits;
            let from = self.history.len().saturating_sub(w);
            self.inflate
                .set_dictionary(&self.history[from..])
                .expect("a raw inflater accepts a dictionary at a stream start");
        } else {
            self.history.clear();
        }
    }

    fn run(
        &mut self,
        mut input: &[u8],
        total: &mut usize,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), InflateError> {
        // The stripped tail after a final block is not part of any stream.
        if self.fresh_after_end && input == TAIL {
            return Ok(());
        }
        let mut buf = [0u8; STEP];
        while !input.is_empty() {
            self.fresh_after_end = false;
            let allowed = self.max_output - *total;
            // One byte more than allowed reveals an excess.
            let room = STEP.min(allowed.saturating_add(1));
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(input, &mut buf[..room], FlushDecompress::Sync)
                .map_err(|e| InflateError::Corrupt(e.to_string()))?;
            let consumed = (self.inflate.total_in() - in0) as usize;
            let produced = (self.inflate.total_out() - out0) as usize;
            if produced > allowed {
                return Err(InflateError::TooLarge {
                    limit: self.max_output,
                });
            }
            sink(&buf[..produced]);
            *total += produced;
            if !self.no_context_takeover {
                self.history.extend_from_slice(&buf[..produced]);
                let w = 1usize << self.window_bits;
                if self.history.len() > 2 * w {
                    self.history.drain(..self.history.len() - w);
                }
            }
            input = &input[consumed..];
            match status {
                Status::StreamEnd => {
                    // A block with BFINAL set (§7.2.3.4): whatever follows
                    // starts a new stream; the window carries over unless
                    // context takeover is off.
                    self.restart(!self.no_context_takeover);
                    self.fresh_after_end = true;
                    if input.is_empty() {
                        return Ok(());
                    }
                }
                Status::Ok | Status::BufError => {
                    if produced < room && input.is_empty() {
                        return Ok(());
                    }
                    if consumed == 0 && produced == 0 {
                        return Err(InflateError::Corrupt(
                            "the inflater made no progress".into(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Offer {
        Offer::default()
    }

    #[test]
    fn offer_header_values() {
        assert_eq!(offer().header_value(), "permessage-deflate");
        let o = Offer {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(None),
        };
        assert_eq!(
            o.header_value(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits"
        );
        let o2 = Offer {
            client_max_window_bits: Some(Some(9)),
            ..offer()
        };
        assert_eq!(
            offers_header_value(&[o2, offer()]),
            "permessage-deflate; client_max_window_bits=9, permessage-deflate"
        );
    }

    #[test]
    fn parses_lists_params_and_quotes() {
        let els = parse_extensions(&[
            " foo ; a=1 ;b, ,permessage-deflate;client_max_window_bits=\"1\\0\"",
            "bar",
        ])
        .unwrap();
        assert_eq!(els.len(), 3);
        assert_eq!(els[0].name, "foo");
        assert_eq!(
            els[0].params,
            vec![("a".into(), Some("1".into())), ("b".into(), None)]
        );
        assert_eq!(
            els[1].params,
            vec![("client_max_window_bits".into(), Some("10".into()))]
        );
        assert_eq!(els[2].name, "bar");
        for bad in [
            "permessage-deflate;",
            "permessage-deflate; x=",
            "permessage-deflate; x=\"a b\"",
            "permessage-deflate; x=\"10",
            "permessage-deflate x",
            "; x",
            "permessage-deflate; x=\"\"",
        ] {
            assert!(
                matches!(
                    parse_extensions(&[bad]),
                    Err(NegotiationError::Malformed { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(parse_extensions(&["", " , "]).unwrap(), vec![]);
    }

    fn agreed(snct: bool, cnct: bool, smwb: u8, cmwb: u8) -> Agreed {
        Agreed {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: smwb,
            client_max_window_bits: cmwb,
        }
    }

    /// The negotiation examples of RFC 7692 §7.1.3 (answers a server may
    /// give) and their mirror images.
    #[test]
    fn rfc_examples() {
        // "permessage-deflate" accepted as is.
        assert_eq!(
            check_response(&[offer()], &["permessage-deflate"]),
            Ok(Some(Agreed::default()))
        );
        // Offer with client_max_window_bits (no value): the server may
        // limit the client's window.
        let cmwb = Offer {
            client_max_window_bits: Some(None),
            ..offer()
        };
        assert_eq!(
            check_response(
                std::slice::from_ref(&cmwb),
                &["permessage-deflate; client_max_window_bits=10"]
            ),
            Ok(Some(agreed(false, false, 15, 10)))
        );
        // Two offers, the first with server_max_window_bits=10, the second
        // a fallback; the server accepts the second.
        let offers = [
            Offer {
                server_max_window_bits: Some(10),
                ..offer()
            },
            offer(),
        ];
        assert_eq!(
            check_response(&offers, &["permessage-deflate"]),
            Ok(Some(Agreed::default()))
        );
        assert_eq!(
            check_response(&offers, &["permessage-deflate; server_max_window_bits=10"]),
            Ok(Some(agreed(false, false, 10, 15)))
        );
        // §7.1.3: a small server window with a fallback offer; the server
        // takes the first.
        let fallback = [
            Offer {
                server_max_window_bits: Some(10),
                client_max_window_bits: Some(None),
                ..offer()
            },
            Offer {
                client_max_window_bits: Some(None),
                ..offer()
            },
        ];
        assert_eq!(
            offers_header_value(&fallback),
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits, \
             permessage-deflate; client_max_window_bits"
        );
        assert_eq!(
            check_response(
                &fallback,
                &["permessage-deflate; server_max_window_bits=10"]
            ),
            Ok(Some(agreed(false, false, 10, 15)))
        );
        // The server restricts its own window without an offer to do so and
        // declares no context takeover on its own.
        assert_eq!(
            check_response(
                &[offer()],
                &["permessage-deflate; server_no_context_takeover; server_max_window_bits=9"]
            ),
            Ok(Some(agreed(true, false, 9, 15)))
        );
        // The server asks the client for no context takeover.
        assert_eq!(
            check_response(
                &[offer()],
                &["permessage-deflate;client_no_context_takeover"]
            ),
            Ok(Some(agreed(false, true, 15, 15)))
        );
        // Quoted value.
        assert_eq!(
            check_response(
                &[cmwb],
                &["permessage-deflate; client_max_window_bits=\"8\""]
            ),
            Ok(Some(agreed(false, false, 15, 8)))
        );
        // Declined.
        assert_eq!(check_response(&offers, &[]), Ok(None));
        assert_eq!(check_response(&offers, &[" "]), Ok(None));
        assert_eq!(check_response(&[], &[]), Ok(None));
    }

    #[test]
    fn invalid_answers() {
        use NegotiationError as E;
        let o = [offer()];
        let err = |offers: &[Offer], v: &str| check_response(offers, &[v]).unwrap_err();
        assert_eq!(
            err(&[], "permessage-deflate"),
            E::NotOffered {
                name: "permessage-deflate".into()
            }
        );
        assert_eq!(
            err(&o, "x-webkit-deflate-frame"),
            E::NotOffered {
                name: "x-webkit-deflate-frame".into()
            }
        );
        assert_eq!(
            err(&o, "permessage-deflate, permessage-deflate"),
            E::MoreThanOne { count: 2 }
        );
        assert_eq!(
            check_response(&o, &["permessage-deflate", "permessage-deflate"]).unwrap_err(),
            E::MoreThanOne { count: 2 }
        );
        assert_eq!(
            err(&o, "permessage-deflate; foo"),
            E::UnknownParam { name: "foo".into() }
        );
        assert_eq!(
            err(
                &o,
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
            ),
            E::DuplicateParam {
                name: "server_no_context_takeover".into()
            }
        );
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover=1",
        ] {
            let offers = [Offer {
                client_max_window_bits: Some(None),
                ..offer()
            }];
            assert!(
                matches!(err(&offers, bad), E::InvalidValue { .. }),
                "{bad}: {:?}",
                err(&offers, bad)
            );
        }
        assert_eq!(
            err(&o, "permessage-deflate; client_max_window_bits=10"),
            E::ParamNotOffered {
                name: "client_max_window_bits"
            }
        );
        let limited = [Offer {
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(Some(10)),
            ..offer()
        }];
        assert_eq!(
            err(&limited, "permessage-deflate; server_max_window_bits=11"),
            E::AboveOffer {
                name: "server_max_window_bits",
                offered: 10,
                answered: 11
            }
        );
        assert_eq!(
            err(&limited, "permessage-deflate; client_max_window_bits=12"),
            E::AboveOffer {
                name: "client_max_window_bits",
                offered: 10,
                answered: 12
            }
        );
        // Matches none of two offers: both reasons are reported.
        let two = [limited[0].clone(), limited[0].clone()];
        let e = err(&two, "permessage-deflate; server_max_window_bits=12");
        assert!(matches!(&e, E::NoMatchingOffer(v) if v.len() == 2));
        assert!(e.to_string().contains("offer 2:"), "{e}");
        assert!(matches!(
            check_response(&o, &["permessage-deflate; x=\"a"]),
            Err(E::Malformed { .. })
        ));
    }

    #[test]
    fn offers_in_request_lines() {
        let offers = offers_in(&[
            "x-unknown, permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=\"10\"; server_no_context_takeover",
        ]);
        assert_eq!(
            offers,
            vec![
                Offer {
                    client_max_window_bits: Some(None),
                    ..offer()
                },
                Offer {
                    server_max_window_bits: Some(10),
                    server_no_context_takeover: true,
                    ..offer()
                },
            ]
        );
        // Invalid offers (a server must decline them) are left out; a
        // malformed line offers nothing at all.
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=010",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "Permessage-Deflate",
            "permessage-deflate; server_max_window_bits=\"10",
        ] {
            assert_eq!(offers_in(&[bad]), vec![], "{bad}");
        }
        assert_eq!(
            offers_in(&["permessage-deflate; foo, permessage-deflate"]),
            vec![offer()]
        );
        assert_eq!(
            offers_in(&["permessage-deflate; x=\"", "permessage-deflate"]),
            vec![offer()]
        );
    }

    #[test]
    fn an_accepting_answer_carries_the_offered_server_params() {
        use NegotiationError as E;
        let snct = Offer {
            server_no_context_takeover: true,
            ..offer()
        };
        assert_eq!(
            check_response(std::slice::from_ref(&snct), &["permessage-deflate"]),
            Err(E::OfferedParamMissing {
                name: "server_no_context_takeover"
            })
        );
        let smwb = Offer {
            server_max_window_bits: Some(9),
            ..offer()
        };
        assert_eq!(
            check_response(std::slice::from_ref(&smwb), &["permessage-deflate"]),
            Err(E::OfferedParamMissing {
                name: "server_max_window_bits"
            })
        );
        // The Autobahn 13.7 list: the plain answer accepts the last offer,
        // one with the parameters the first.
        let list = [
            Offer {
                server_no_context_takeover: true,
                server_max_window_bits: Some(9),
                ..offer()
            },
            snct,
            offer(),
        ];
        assert_eq!(
            check_response(&list, &["permessage-deflate"]),
            Ok(Some(Agreed::default()))
        );
        assert_eq!(
            check_response(
                &list,
                &["permessage-deflate; server_no_context_takeover; server_max_window_bits=9"]
            ),
            Ok(Some(agreed(true, false, 9, 15)))
        );
    }

    #[test]
    fn agreement_display_spells_out_every_parameter() {
        assert_eq!(
            agreed(true, false, 9, 15).to_string(),
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=15"
        );
    }

    #[test]
    fn zeros_payload_is_a_small_valid_bomb() {
        for (window, len) in [
            (15, 0),
            (15, 1000),
            (15, 1 << 20),
            (15, (3 << 20) + 12345),
            (9, (2 << 20) + 1),
            (8, 70_000),
        ] {
            let z = zeros_payload(window, len);
            if window > 8 && len >= 1 << 20 {
                assert!(z.len() < len / 500, "{window} {len}: {}", z.len());
            }
            // Valid after any context: prime the inflater with other data.
            let mut d = Decompressor::with_params(window, false, len.max(64));
            let mut c = Compressor::with_params(window, false, 6);
            d.decompress(&c.compress(b"some earlier message")).unwrap();
            let out = d.decompress(&z).unwrap();
            assert_eq!(out.len(), len, "{window} {len}");
            assert!(out.iter().all(|b| *b == 0));
            if len > 0 {
                let mut small = Decompressor::with_params(window, false, len - 1);
                assert!(matches!(
                    small.decompress(&z),
                    Err(InflateError::TooLarge { .. })
                ));
            }
        }
    }

    #[test]
    fn reset_forgets_the_context() {
        let mut c = Compressor::new(&Agreed::default());
        assert_eq!(c.compress(b"Hello"), hex("f2 48 cd c9 c9 07 00"));
        c.reset();
        assert_eq!(c.compress(b"Hello"), hex("f2 48 cd c9 c9 07 00"));
    }

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    /// The payload examples of RFC 7692 §7.2.3.
    #[test]
    fn rfc_payload_examples() {
        let mut d = Decompressor::new(&Agreed::default(), 1000);
        // §7.2.3.1 "Hello", then §7.2.3.2 the same again sharing the window.
        assert_eq!(
            d.decompress(&hex("f2 48 cd c9 c9 07 00")).unwrap(),
            b"Hello"
        );
        assert_eq!(d.decompress(&hex("f2 00 11 00 00")).unwrap(), b"Hello");
        // §7.2.3.3 a stored block.
        assert_eq!(
            d.decompress(&hex("00 05 00 fa ff 48 65 6c 6c 6f 00"))
                .unwrap(),
            b"Hello"
        );
        // §7.2.3.4 BFINAL set, then a message referring to the window.
        assert_eq!(
            d.decompress(&hex("f3 48 cd c9 c9 07 00 00")).unwrap(),
            b"Hello"
        );
        assert_eq!(d.decompress(&hex("f2 00 11 00 00")).unwrap(), b"Hello");
        // BFINAL without the extra empty-block byte.
        assert_eq!(
            d.decompress(&hex("f3 48 cd c9 c9 07 00")).unwrap(),
            b"Hello"
        );
        assert_eq!(d.decompress(&hex("f2 00 11 00 00")).unwrap(), b"Hello");
        // §7.2.3.5 two blocks in one message.
        assert_eq!(
            d.decompress(&hex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00"))
                .unwrap(),
            b"Hello"
        );
        // An empty message: `00`; an empty payload is tolerated.
        assert_eq!(d.decompress(&hex("00")).unwrap(), b"");
        assert_eq!(d.decompress(&[]).unwrap(), b"");
        assert_eq!(d.decompress(&hex("f2 00 11 00 00")).unwrap(), b"Hello");

        // Without context takeover the back-reference is invalid.
        let mut d = Decompressor::new(
            &Agreed {
                server_no_context_takeover: true,
                ..Agreed::default()
            },
            1000,
        );
        assert_eq!(
            d.decompress(&hex("f2 48 cd c9 c9 07 00")).unwrap(),
            b"Hello"
        );
        assert!(matches!(
            d.decompress(&hex("f2 00 11 00 00")),
            Err(InflateError::Corrupt(_))
        ));
    }

    #[test]
    fn compressor_output_matches_rfc() {
        let mut c = Compressor::new(&Agreed::default());
        assert_eq!(c.compress(b"Hello"), hex("f2 48 cd c9 c9 07 00"));
        assert_eq!(c.compress(b"Hello"), hex("f2 00 11 00 00"));
        // An empty message right after another one (no new flush output).
        assert_eq!(c.compress(b""), hex("00"));
        assert_eq!(c.compress(b""), hex("00"));
        let mut c = Compressor::new(&Agreed {
            client_no_context_takeover: true,
            ..Agreed::default()
        });
        assert_eq!(c.compress(b"Hello"), hex("f2 48 cd c9 c9 07 00"));
        assert_eq!(c.compress(b"Hello"), hex("f2 48 cd c9 c9 07 00"));
        assert_eq!(c.compress(b""), hex("00"));
        let mut stored = Compressor::with_params(8, false, 6);
        assert_eq!(
            stored.compress(b"Hello"),
            hex("00 05 00 fa ff 48 65 6c 6c 6f 00")
        );
        assert_eq!(stored.compress(b""), hex("00"));
    }

    #[test]
    fn corrupt_data_is_reported() {
        let mut d = Decompressor::new(&Agreed::default(), 1000);
        // BTYPE 11 is reserved.
        assert!(matches!(
            d.decompress(&[0xff, 0xff]),
            Err(InflateError::Corrupt(_))
        ));
        // Stored block with LEN != !NLEN.
        assert!(matches!(
            d.decompress(&hex("00 05 00 00 00 48")),
            Err(InflateError::Corrupt(_))
        ));
        // After an error the state is fresh again.
        assert_eq!(
            d.decompress(&hex("f2 48 cd c9 c9 07 00")).unwrap(),
            b"Hello"
        );
    }

    #[test]
    fn bomb_is_stopped_at_the_cap() {
        let mut c = Compressor::new(&Agreed::default());
        let big = vec![b'a'; 16 << 20];
        let bomb = c.compress(&big);
        assert!(bomb.len() < 40_000, "{}", bomb.len());
        let mut d = Decompressor::new(&Agreed::default(), 1 << 20);
        assert_eq!(
            d.decompress(&bomb),
            Err(InflateError::TooLarge { limit: 1 << 20 })
        );
        // Exactly at the cap is fine; one more byte is not.
        for (len, ok) in [(1000, true), (1001, false)] {
            let mut c = Compressor::new(&Agreed::default());
            let mut d = Decompressor::new(&Agreed::default(), 1000);
            let r = d.decompress(&c.compress(&vec![7; len]));
            assert_eq!(r.is_ok(), ok, "{len}");
        }
        // A tiny hand-made input: fixed-Huffman blocks of long matches.
        let mut c = Compressor::with_params(15, false, 9);
        let small = c.compress(&vec![0u8; 4 << 20]);
        let mut d = Decompressor::new(&Agreed::default(), 64 * 1024);
        assert!(matches!(
            d.decompress(&small),
            Err(InflateError::TooLarge { .. })
        ));
    }

    #[test]
    fn window_8_round_trip() {
        let a = Agreed {
            server_max_window_bits: 8,
            client_max_window_bits: 8,
            ..Agreed::default()
        };
        let mut c = Compressor::new(&a);
        let mut d = Decompressor::new(&a, 1 << 20);
        for msg in [&b""[..], b"x", &[9u8; 70_000], &[1u8; 65535]] {
            assert_eq!(d.decompress(&c.compress(msg)).unwrap(), msg);
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn message() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..2000),
                // Compressible: few distinct bytes, repeated phrases.
                (proptest::collection::vec(0u8..4, 1..64), 1usize..200,)
                    .prop_map(|(unit, n)| unit.repeat(n)),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            #[test]
            fn round_trip(
                msgs in proptest::collection::vec(message(), 1..8),
                window in 8u8..=15,
                no_takeover: bool,
                level in 0u32..=9,
            ) {
                let mut c = Compressor::with_params(window, no_takeover, level);
                let mut d = Decompressor::with_params(window, no_takeover, 1 << 20);
                for m in &msgs {
                    let z = c.compress(m);
                    prop_assert_eq!(&d.decompress(&z).unwrap(), m);
                }
            }

            /// Every message sequence survives the client/server pairing of
            /// an agreement, whatever the parameters.
            #[test]
            fn round_trip_agreed(
                msgs in proptest::collection::vec(message(), 1..6),
                snct: bool, cnct: bool,
                smwb in 8u8..=15, cmwb in 8u8..=15,
            ) {
                let a = Agreed {
                    server_no_context_takeover: snct,
                    client_no_context_takeover: cnct,
                    server_max_window_bits: smwb,
                    client_max_window_bits: cmwb,
                };
                // Client to server: the server inflates with the client's
                // parameters.
                let mut c = Compressor::new(&a);
                let mut server_in = Decompressor::with_params(cmwb, cnct, 1 << 20);
                // Server to client.
                let mut server_out = Compressor::with_params(smwb, snct, 6);
                let mut d = Decompressor::new(&a, 1 << 20);
                for m in &msgs {
                    prop_assert_eq!(&server_in.decompress(&c.compress(m)).unwrap(), m);
                    prop_assert_eq!(&d.decompress(&server_out.compress(m)).unwrap(), m);
                }
            }

            /// Garbage never panics and never exceeds the cap.
            #[test]
            fn garbage_is_an_error_or_bounded(
                data in proptest::collection::vec(any::<u8>(), 0..300),
            ) {
                let mut d = Decompressor::with_params(15, false, 4096);
                if let Ok(out) = d.decompress(&data) {
                    prop_assert!(out.len() <= 4096);
                }
            }
        }
    }
}
