//! WebSocket frame codec (RFC 6455 §5) for a conformance harness.
//!
//! Unlike a normal client library this codec is deliberately permissive in
//! both directions:
//!
//! * **Encoding** can produce anything: unmasked client frames, RSV bits,
//!   reserved opcodes, fragmented or oversized control frames, non-minimal
//!   length encodings, a declared length that differs from the real payload
//!   length, and 64-bit lengths with the most significant bit set.
//! * **Decoding** never panics on hostile input and never allocates based on
//!   a declared length: the payload is only copied once all of its bytes are
//!   in the buffer, and a declared length above the caller's cap is rejected
//!   as soon as the length field has been read. Protocol rules (RSV bits,
//!   opcodes, masking direction, control-frame limits) are *not* enforced
//!   here; the decoded [`Header`]/[`Frame`] exposes everything so callers can
//!   judge those themselves.

use std::fmt;

/// Frame opcode (4 bits on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
    /// A reserved opcode: 0x3-0x7 (non-control) or 0xB-0xF (control).
    Reserved(u8),
}

impl Opcode {
    /// Decodes an opcode from the low 4 bits of `n` (the high bits are ignored).
    pub fn from_u4(n: u8) -> Opcode {
        match n & 0x0F {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            other => Opcode::Reserved(other),
        }
    }

    /// The 4-bit wire value. For `Reserved(n)` this is `n & 0x0F`.
    pub fn as_u4(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
            Opcode::Reserved(n) => n & 0x0F,
        }
    }

    /// Control opcodes are those with the high bit of the nibble set (>= 0x8),
    /// including the reserved control opcodes 0xB-0xF.
    pub fn is_control(self) -> bool {
        self.as_u4() >= 0x8
    }

    /// True for the opcodes RFC 6455 leaves reserved (0x3-0x7, 0xB-0xF).
    pub fn is_reserved(self) -> bool {
        matches!(self.as_u4(), 0x3..=0x7 | 0xB..=0xF)
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Opcode::Continuation => f.write_str("continuation"),
            Opcode::Text => f.write_str("text"),
            Opcode::Binary => f.write_str("binary"),
            Opcode::Close => f.write_str("close"),
            Opcode::Ping => f.write_str("ping"),
            Opcode::Pong => f.write_str("pong"),
            Opcode::Reserved(_) => write!(f, "reserved-{:#x}", self.as_u4()),
        }
    }
}

/// The kind of a data message (RFC 6455 §5.6): what its first frame's
/// opcode says the reassembled payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Text,
    Binary,
}

/// How the payload length is written on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LengthEncoding {
    /// The shortest encoding that holds the length (encoding only; a decoded
    /// [`Header`] always reports the concrete encoding seen).
    #[default]
    Minimal,
    /// Length in the 7-bit field (0..=125).
    Bits7,
    /// 7-bit field = 126, then a 16-bit big-endian length.
    Bits16,
    /// 7-bit field = 127, then a 64-bit big-endian length.
    Bits64,
}

impl LengthEncoding {
    /// The smallest encoding that can hold `len`.
    pub fn smallest_for(len: u64) -> LengthEncoding {
        if len <= 125 {
            LengthEncoding::Bits7
        } else if len <= 0xFFFF {
            LengthEncoding::Bits16
        } else {
            LengthEncoding::Bits64
        }
    }

    /// Resolves this (requested) encoding for `len`: `Minimal` becomes the
    /// smallest fitting encoding, and an encoding too small for `len` falls
    /// back to the smallest one that fits. Never returns `Minimal`.
    pub fn resolve(self, len: u64) -> LengthEncoding {
        let smallest = Self::smallest_for(len);
        match self {
            LengthEncoding::Minimal => smallest,
            LengthEncoding::Bits7 => smallest,
            LengthEncoding::Bits16 if len <= 0xFFFF => LengthEncoding::Bits16,
            LengthEncoding::Bits16 => LengthEncoding::Bits64,
            LengthEncoding::Bits64 => LengthEncoding::Bits64,
        }
    }

    /// Number of bytes of extended length after the 2-byte base header.
    fn extra_bytes(self) -> usize {
        match self {
            LengthEncoding::Minimal | LengthEncoding::Bits7 => 0,
            LengthEncoding::Bits16 => 2,
            LengthEncoding::Bits64 => 8,
        }
    }
}

impl fmt::Display for LengthEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LengthEncoding::Minimal => "minimal",
            LengthEncoding::Bits7 => "7-bit",
            LengthEncoding::Bits16 => "16-bit",
            LengthEncoding::Bits64 => "64-bit",
        })
    }
}

/// A whole frame. `payload` always holds the *unmasked* bytes; `mask` is the
/// masking key written on (or read from) the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    /// 3 bits: 0b100 = RSV1, 0b010 = RSV2, 0b001 = RSV3 (higher bits are
    /// ignored when encoding).
    pub rsv: u8,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A final, unmasked frame with no RSV bits.
    pub fn new(opcode: Opcode, payload: impl Into<Vec<u8>>) -> Frame {
        Frame {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload: payload.into(),
        }
    }

    pub fn text(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(Opcode::Text, payload)
    }

    pub fn binary(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(Opcode::Binary, payload)
    }

    pub fn ping(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(Opcode::Ping, payload)
    }

    pub fn pong(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(Opcode::Pong, payload)
    }

    /// A close frame whose payload is built by [`close_payload`].
    pub fn close(code: Option<u16>, reason: &[u8]) -> Frame {
        Frame::new(Opcode::Close, close_payload(code, reason))
    }

    /// Sets the masking key.
    pub fn masked(mut self, key: [u8; 4]) -> Frame {
        self.mask = Some(key);
        self
    }

    pub fn with_fin(mut self, fin: bool) -> Frame {
        self.fin = fin;
        self
    }

    pub fn with_rsv(mut self, rsv: u8) -> Frame {
        self.rsv = rsv;
        self
    }

    /// One-line description, e.g. `text fin rsv=0 masked len=5 "Hello"`.
    ///
    /// The preview is the payload quoted if it is printable UTF-8 (at most 32
    /// characters, then `…`), otherwise `0x` + hex of the first 16 bytes
    /// (followed by `…` if there are more).
    pub fn summary(&self) -> String {
        format!(
            "{} {} rsv={} {} len={} {}",
            self.opcode,
            if self.fin { "fin" } else { "nofin" },
            self.rsv,
            if self.mask.is_some() {
                "masked"
            } else {
                "unmasked"
            },
            self.payload.len(),
            self.payload_preview()
        )
    }

    /// Close frames read as `code=1002 "reason"`; other payloads as text or hex.
    fn payload_preview(&self) -> String {
        if self.opcode == Opcode::Close && self.payload.len() >= 2 {
            let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
            let reason = &self.payload[2..];
            if reason.is_empty() {
                return format!("code={code}");
            }
            return format!("code={code} {}", preview(reason));
        }
        preview(&self.payload)
    }
}

fn preview(payload: &[u8]) -> String {
    const MAX_CHARS: usize = 32;
    const MAX_HEX: usize = 16;
    if let Ok(s) = std::str::from_utf8(payload)
        && !s.chars().any(char::is_control)
    {
        let shown: String = s.chars().take(MAX_CHARS).collect();
        let ellipsis = if shown.len() < s.len() { "…" } else { "" };
        return format!("{shown:?}{ellipsis}");
    }
    let mut out = String::with_capacity(2 + 2 * MAX_HEX + 3);
    out.push_str("0x");
    for b in payload.iter().take(MAX_HEX) {
        out.push_str(&format!("{b:02x}"));
    }
    if payload.len() > MAX_HEX {
        out.push('…');
    }
    out
}

/// A decoded frame header, exactly as seen on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    /// The declared payload length.
    pub payload_len: u64,
    /// Bytes taken by the header (2..=14).
    pub header_len: usize,
    /// The encoding seen on the wire (never `Minimal`).
    pub length_encoding: LengthEncoding,
    /// False if a shorter encoding could have held `payload_len`
    /// (RFC 6455 §5.2 requires the minimal number of bytes).
    pub minimal_length: bool,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("64-bit payload length has its most significant bit set ({0:#x})")]
    LengthTopBitSet(u64),
    #[error("declared payload length {declared} exceeds the cap of {max} bytes")]
    PayloadTooLarge { declared: u64, max: u64 },
}

/// Encodes `frame` onto the end of `out`.
///
/// `encoding` selects how the length is written; an encoding too small for
/// the length falls back to the smallest one that fits. `declared_len`, if
/// set, is written in the header instead of the real payload length (the
/// real payload bytes are still appended, masked with `frame.mask` if set).
/// Only the low 3 bits of `frame.rsv` are used.
pub fn encode_into(
    frame: &Frame,
    encoding: LengthEncoding,
    declared_len: Option<u64>,
    out: &mut Vec<u8>,
) {
    let len = declared_len.unwrap_or(frame.payload.len() as u64);
    let encoding = encoding.resolve(len);
    out.reserve(14 + frame.payload.len());

    let b0 = (u8::from(frame.fin) << 7) | ((frame.rsv & 0b111) << 4) | frame.opcode.as_u4();
    let mask_bit = if frame.mask.is_some() { 0x80 } else { 0 };
    out.push(b0);
    match encoding {
        LengthEncoding::Minimal | LengthEncoding::Bits7 => out.push(mask_bit | len as u8),
        LengthEncoding::Bits16 => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        LengthEncoding::Bits64 => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if let Some(key) = frame.mask {
        out.extend_from_slice(&key);
    }
    let start = out.len();
    out.extend_from_slice(&frame.payload);
    if let Some(key) = frame.mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// Encodes `frame` with the minimal length encoding and its real length.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + frame.payload.len());
    encode_into(frame, LengthEncoding::Minimal, None, &mut out);
    out
}

/// The first header byte plus the length field, parsed before the masking key.
#[derive(Clone, Copy)]
struct LengthField {
    b0: u8,
    masked: bool,
    payload_len: u64,
    encoding: LengthEncoding,
    /// Bytes consumed so far (base header + extended length).
    end: usize,
}

/// Parses the first two bytes plus the extended length.
fn parse_length(buf: &[u8]) -> Result<Option<LengthField>, FrameError> {
    let (b0, b1) = match buf {
        [b0, b1, ..] => (*b0, *b1),
        _ => return Ok(None),
    };
    let (payload_len, encoding) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (
                u64::from(u16::from_be_bytes([b[0], b[1]])),
                LengthEncoding::Bits16,
            ),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                let len = u64::from_be_bytes(a);
                if len >> 63 != 0 {
                    return Err(FrameError::LengthTopBitSet(len));
                }
                (len, LengthEncoding::Bits64)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), LengthEncoding::Bits7),
    };
    Ok(Some(LengthField {
        b0,
        masked: b1 & 0x80 != 0,
        payload_len,
        encoding,
        end: 2 + encoding.extra_bytes(),
    }))
}

/// Completes the header with the masking key; `None` if it has not arrived.
fn finish_header(buf: &[u8], f: LengthField) -> Option<Header> {
    let (mask, header_len) = if f.masked {
        let k = buf.get(f.end..f.end + 4)?;
        (Some([k[0], k[1], k[2], k[3]]), f.end + 4)
    } else {
        (None, f.end)
    };
    Some(Header {
        fin: f.b0 & 0x80 != 0,
        rsv: (f.b0 >> 4) & 0b111,
        opcode: Opcode::from_u4(f.b0),
        mask,
        payload_len: f.payload_len,
        header_len,
        length_encoding: f.encoding,
        minimal_length: LengthEncoding::smallest_for(f.payload_len) == f.encoding,
    })
}

/// Decodes a frame header from the front of `buf`. `Ok(None)` means more
/// bytes are needed. Does not check protocol rules (RSV, opcode, masking).
pub fn decode_header(buf: &[u8]) -> Result<Option<Header>, FrameError> {
    Ok(parse_length(buf)?.and_then(|p| finish_header(buf, p)))
}

/// Decodes one whole frame from the front of `buf`, returning the frame
/// (payload unmasked) and the number of bytes consumed. `Ok(None)` means the
/// frame is incomplete.
///
/// Fails with [`FrameError::PayloadTooLarge`] as soon as the length field
/// declares more than `max_payload` bytes (even before the masking key has
/// arrived), so a hostile peer cannot make the caller wait for or buffer a
/// huge payload. Nothing is allocated until the whole payload is in `buf`.
pub fn decode(buf: &[u8], max_payload: u64) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(parsed) = parse_length(buf)? else {
        return Ok(None);
    };
    let declared = parsed.payload_len;
    // On targets where usize is narrower than u64 a length beyond usize::MAX
    // can never be buffered: treat it as over the cap.
    if declared > max_payload || usize::try_from(declared).is_err() {
        return Err(FrameError::PayloadTooLarge {
            declared,
            max: max_payload,
        });
    }
    let Some(header) = finish_header(buf, parsed) else {
        return Ok(None);
    };
    let available = (buf.len() - header.header_len) as u64;
    if available < declared {
        return Ok(None);
    }
    let end = header.header_len + declared as usize;
    let mut payload = buf[header.header_len..end].to_vec();
    if let Some(key) = header.mask {
        apply_mask(&mut payload, key, 0);
    }
    let frame = Frame {
        fin: header.fin,
        rsv: header.rsv,
        opcode: header.opcode,
        mask: header.mask,
        payload,
    };
    Ok(Some((frame, end)))
}

/// XOR-masks `buf` in place with `key` (RFC 6455 §5.3). `offset` is the
/// position of `buf[0]` within the payload, so a payload can be masked in
/// chunks. Masking is its own inverse.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let r = offset & 3;
    let k = [key[r], key[(r + 1) & 3], key[(r + 2) & 3], key[(r + 3) & 3]];
    let k32 = u64::from(u32::from_ne_bytes(k));
    // Both halves are equal, so this is correct for either endianness.
    let k64 = k32 | (k32 << 32);

    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(word) ^ k64;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the key phase is unchanged.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= k[i & 3];
    }
}

/// Builds a close frame payload (RFC 6455 §5.5.1): the 2-byte big-endian
/// status code followed by `reason`. `None` gives an empty payload (and the
/// reason is ignored). No validation: any code and any reason bytes
/// (invalid UTF-8, over 123 bytes) are written as given.
pub fn close_payload(code: Option<u16>, reason: &[u8]) -> Vec<u8> {
    match code {
        None => Vec::new(),
        Some(code) => {
            let mut out = Vec::with_capacity(2 + reason.len());
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(reason);
            out
        }
    }
}

/// A parsed close frame payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseBody<'a> {
    /// Empty payload: no status code.
    Empty,
    /// A status code and the (unvalidated) reason bytes.
    Status { code: u16, reason: &'a [u8] },
    /// A 1-byte payload, which RFC 6455 §5.5.1 does not allow.
    Truncated(u8),
}

/// Splits a close frame payload into status code and reason. Does not
/// validate the code or the reason's UTF-8; see [`is_valid_close_code`].
pub fn parse_close_payload(payload: &[u8]) -> CloseBody<'_> {
    match payload {
        [] => CloseBody::Empty,
        [b] => CloseBody::Truncated(*b),
        [hi, lo, reason @ ..] => CloseBody::Status {
            code: u16::from_be_bytes([*hi, *lo]),
            reason,
        },
    }
}

/// Whether `code` may appear in a close frame on the wire (RFC 6455 §7.4):
/// 1000-1003, 1007-1011, the IANA-registered 1012-1014, and 3000-4999.
/// 1004-1006, 1015, 0-999, other 1xxx and 5000+ are not allowed.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn roundtrip(frame: &Frame, encoding: LengthEncoding) -> (Header, Vec<u8>) {
        let mut buf = Vec::new();
        encode_into(frame, encoding, None, &mut buf);
        let header = decode_header(&buf).unwrap().unwrap();
        let (decoded, used) = decode(&buf, u64::MAX).unwrap().unwrap();
        assert_eq!(&decoded, frame);
        assert_eq!(used, buf.len());
        assert_eq!(header.header_len + frame.payload.len(), buf.len());
        (header, buf)
    }

    #[test]
    fn rfc_examples() {
        // RFC 6455 §5.7
        assert_eq!(encode(&Frame::text("Hello")), b"\x81\x05Hello");
        let masked = Frame::text("Hello").masked([0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(
            encode(&masked),
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
        let first = Frame::text("Hel").with_fin(false);
        assert_eq!(encode(&first), [0x01, 0x03, 0x48, 0x65, 0x6c]);
        let cont = Frame::new(Opcode::Continuation, "lo");
        assert_eq!(encode(&cont), [0x80, 0x02, 0x6c, 0x6f]);
        let (f, n) = decode(&encode(&masked), 125).unwrap().unwrap();
        assert_eq!((f.payload.as_slice(), n), (&b"Hello"[..], 11));
        assert_eq!(f.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        let big = encode(&Frame::binary(vec![0; 65536]));
        assert_eq!(big[..10], [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn length_boundaries() {
        for (len, enc, header_len, b1) in [
            (0usize, LengthEncoding::Bits7, 2usize, 0u8),
            (125, LengthEncoding::Bits7, 2, 125),
            (126, LengthEncoding::Bits16, 4, 126),
            (65535, LengthEncoding::Bits16, 4, 126),
            (65536, LengthEncoding::Bits64, 10, 127),
        ] {
            for mask in [None, Some(KEY)] {
                let frame = Frame {
                    mask,
                    ..Frame::binary((0..len).map(|i| i as u8).collect::<Vec<_>>())
                };
                let (h, buf) = roundtrip(&frame, LengthEncoding::Minimal);
                let extra = if mask.is_some() { 4 } else { 0 };
                assert_eq!(h.header_len, header_len + extra, "len {len}");
                assert_eq!(h.length_encoding, enc, "len {len}");
                assert!(h.minimal_length, "len {len}");
                assert_eq!(h.payload_len, len as u64);
                assert_eq!(buf[1], b1 | if mask.is_some() { 0x80 } else { 0 });
                match enc {
                    LengthEncoding::Bits16 => assert_eq!(buf[2..4], (len as u16).to_be_bytes()),
                    LengthEncoding::Bits64 => assert_eq!(buf[2..10], (len as u64).to_be_bytes()),
                    _ => {}
                }
                if let Some(k) = mask {
                    assert_eq!(buf[header_len..header_len + 4], k);
                }
                // One byte short of complete, and an empty buffer.
                assert_eq!(decode(&buf[..buf.len() - 1], u64::MAX), Ok(None));
                assert_eq!(decode(&[], u64::MAX), Ok(None));
                // The cap is inclusive.
                assert!(decode(&buf, len as u64).unwrap().is_some());
                if len > 0 {
                    assert_eq!(
                        decode(&buf, len as u64 - 1),
                        Err(FrameError::PayloadTooLarge {
                            declared: len as u64,
                            max: len as u64 - 1
                        })
                    );
                }
            }
        }
    }

    #[test]
    fn non_minimal_encodings() {
        let cases = [
            (0usize, LengthEncoding::Bits16, false),
            (5, LengthEncoding::Bits16, false),
            (125, LengthEncoding::Bits16, false),
            (126, LengthEncoding::Bits16, true),
            (0, LengthEncoding::Bits64, false),
            (125, LengthEncoding::Bits64, false),
            (65535, LengthEncoding::Bits64, false),
            (65536, LengthEncoding::Bits64, true),
        ];
        for (len, enc, minimal) in cases {
            let frame = Frame::binary(vec![7u8; len]).masked(KEY);
            let (h, _) = roundtrip(&frame, enc);
            assert_eq!(h.length_encoding, enc, "len {len}");
            assert_eq!(h.minimal_length, minimal, "len {len} {enc}");
        }
    }

    #[test]
    fn too_small_encoding_falls_back() {
        let (h, _) = roundtrip(&Frame::binary(vec![1u8; 200]), LengthEncoding::Bits7);
        assert_eq!(h.length_encoding, LengthEncoding::Bits16);
        assert!(h.minimal_length);
        let (h, _) = roundtrip(&Frame::binary(vec![1u8; 70_000]), LengthEncoding::Bits7);
        assert_eq!(h.length_encoding, LengthEncoding::Bits64);
        let (h, _) = roundtrip(&Frame::binary(vec![1u8; 70_000]), LengthEncoding::Bits16);
        assert_eq!(h.length_encoding, LengthEncoding::Bits64);
        let mut buf = Vec::new();
        encode_into(
            &Frame::ping(""),
            LengthEncoding::Bits7,
            Some(u64::MAX),
            &mut buf,
        );
        assert_eq!(
            buf,
            [0x89, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn top_bit_error() {
        let mut buf = Vec::new();
        let declared = (1u64 << 63) | 5;
        encode_into(
            &Frame::binary("hello"),
            LengthEncoding::Bits64,
            Some(declared),
            &mut buf,
        );
        assert_eq!(buf[1], 127);
        assert_eq!(
            decode_header(&buf),
            Err(FrameError::LengthTopBitSet(declared))
        );
        assert_eq!(
            decode(&buf, u64::MAX),
            Err(FrameError::LengthTopBitSet(declared))
        );
        // Not reported until the whole length field has arrived.
        assert_eq!(decode_header(&buf[..9]), Ok(None));
        assert_eq!(
            decode_header(&buf[..10]),
            Err(FrameError::LengthTopBitSet(declared))
        );
        assert!(
            FrameError::LengthTopBitSet(declared)
                .to_string()
                .contains("0x8000000000000005")
        );
    }

    #[test]
    fn cap_error_from_header_alone() {
        let declared = 1u64 << 40;
        for mask in [None, Some(KEY)] {
            let mut buf = Vec::new();
            let frame = Frame {
                mask,
                ..Frame::binary("abc")
            };
            encode_into(&frame, LengthEncoding::Minimal, Some(declared), &mut buf);
            let err = FrameError::PayloadTooLarge {
                declared,
                max: 1 << 20,
            };
            // Only the 10 bytes of base header + 64-bit length are present
            // (for the masked frame the key has not arrived yet either).
            assert_eq!(decode(&buf[..10], 1 << 20), Err(err.clone()));
            assert_eq!(decode(&buf, 1 << 20), Err(err));
            assert_eq!(decode(&buf[..9], 1 << 20), Ok(None));
            // Under a large enough cap, it is simply incomplete.
            assert_eq!(decode(&buf, u64::MAX), Ok(None));
            let h = decode_header(&buf).unwrap().unwrap();
            assert_eq!(h.payload_len, declared);
            assert_eq!(h.mask, mask);
        }
    }

    #[test]
    fn lying_lengths() {
        let frame = Frame::text("hello").masked(KEY);
        let mut buf = Vec::new();
        encode_into(&frame, LengthEncoding::Minimal, Some(3), &mut buf);
        assert_eq!(buf.len(), 2 + 4 + 5);
        let (f, n) = decode(&buf, u64::MAX).unwrap().unwrap();
        assert_eq!(f.payload, b"hel");
        assert_eq!(n, 2 + 4 + 3);

        buf.clear();
        encode_into(&frame, LengthEncoding::Minimal, Some(10), &mut buf);
        assert_eq!(buf.len(), 2 + 4 + 5);
        assert_eq!(decode(&buf, u64::MAX), Ok(None));
        assert_eq!(decode_header(&buf).unwrap().unwrap().payload_len, 10);
    }

    #[test]
    fn everything_encodable() {
        // Reserved opcode, all RSV bits, no FIN, unmasked, oversized control.
        let frame = Frame {
            fin: false,
            rsv: 0b111,
            opcode: Opcode::Reserved(0xB),
            mask: None,
            payload: vec![0xAB; 300],
        };
        let buf = encode(&frame);
        assert_eq!(buf[0], 0x7B);
        let (h, _) = roundtrip(&frame, LengthEncoding::Minimal);
        assert!(h.opcode.is_control() && h.opcode.is_reserved());
        assert_eq!(h.rsv, 0b111);
        assert!(!h.fin);
        // High rsv bits are ignored rather than corrupting fin/opcode.
        assert_eq!(encode(&Frame::text("").with_rsv(0xFC))[0], 0xC1);
    }

    #[test]
    fn masking_at_odd_offsets() {
        let key = [0x01, 0x82, 0x43, 0xF4];
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for offset in [0usize, 1, 2, 3, 5, 7, 13, 1001] {
            for len in [0usize, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 999] {
                let mut fast = data[..len].to_vec();
                apply_mask(&mut fast, key, offset);
                let slow: Vec<u8> = data[..len]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ key[(offset + i) % 4])
                    .collect();
                assert_eq!(fast, slow, "offset {offset} len {len}");
            }
        }
        // Masking in uneven chunks equals masking in one go.
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut chunked = data.clone();
        let mut pos = 0;
        for size in [1usize, 2, 5, 11, 3, 100, 17] {
            apply_mask(&mut chunked[pos..pos + size], key, pos);
            pos += size;
        }
        apply_mask(&mut chunked[pos..], key, pos);
        assert_eq!(whole, chunked);
    }

    #[test]
    fn opcodes() {
        for n in 0u8..16 {
            let op = Opcode::from_u4(n);
            assert_eq!(op.as_u4(), n);
            assert_eq!(op.is_control(), n >= 8);
            assert_eq!(op.is_reserved(), matches!(n, 3..=7 | 11..=15));
            assert_eq!(Opcode::from_u4(n | 0xF0), op);
        }
        let names: Vec<String> = [0u8, 1, 2, 8, 9, 10, 3, 0xB, 0xF]
            .iter()
            .map(|&n| Opcode::from_u4(n).to_string())
            .collect();
        assert_eq!(
            names,
            [
                "continuation",
                "text",
                "binary",
                "close",
                "ping",
                "pong",
                "reserved-0x3",
                "reserved-0xb",
                "reserved-0xf"
            ]
        );
    }

    #[test]
    fn close_payloads() {
        assert_eq!(close_payload(None, b"ignored"), b"");
        assert_eq!(close_payload(Some(1000), b""), [0x03, 0xE8]);
        assert_eq!(close_payload(Some(1001), b"bye"), b"\x03\xE9bye");
        assert_eq!(parse_close_payload(b""), CloseBody::Empty);
        assert_eq!(parse_close_payload(b"\x03"), CloseBody::Truncated(3));
        assert_eq!(
            parse_close_payload(b"\x03\xE9bye"),
            CloseBody::Status {
                code: 1001,
                reason: b"bye"
            }
        );
        assert!(is_valid_close_code(1000) && is_valid_close_code(4999));
        assert!(!is_valid_close_code(1005) && !is_valid_close_code(999));
        assert!(!is_valid_close_code(1016) && !is_valid_close_code(5000));
    }

    #[test]
    fn summaries() {
        assert_eq!(
            Frame::text("Hello").masked(KEY).summary(),
            r#"text fin rsv=0 masked len=5 "Hello""#
        );
        assert_eq!(
            Frame::close(Some(1000), b"").summary(),
            "close fin rsv=0 unmasked len=2 code=1000"
        );
        assert_eq!(
            Frame::binary(vec![0u8; 20])
                .with_fin(false)
                .with_rsv(4)
                .summary(),
            "binary nofin rsv=4 unmasked len=20 0x00000000000000000000000000000000…"
        );
        let long = "a".repeat(40);
        assert_eq!(
            Frame::text(long).summary(),
            format!("text fin rsv=0 unmasked len=40 \"{}\"…", "a".repeat(32))
        );
        assert_eq!(
            Frame::new(Opcode::Reserved(3), "").summary(),
            r#"reserved-0x3 fin rsv=0 unmasked len=0 """#
        );
    }

    fn arb_encoding() -> impl Strategy<Value = LengthEncoding> {
        prop_oneof![
            Just(LengthEncoding::Minimal),
            Just(LengthEncoding::Bits7),
            Just(LengthEncoding::Bits16),
            Just(LengthEncoding::Bits64),
        ]
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        // Bias payload sizes towards the encoding boundaries.
        let len = prop_oneof![
            0usize..=130,
            120usize..=130,
            65_530usize..=65_540,
            0usize..70_000,
        ];
        (
            any::<bool>(),
            0u8..8,
            0u8..16,
            any::<Option<[u8; 4]>>(),
            len.prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n)),
        )
            .prop_map(|(fin, rsv, op, mask, payload)| Frame {
                fin,
                rsv,
                opcode: Opcode::from_u4(op),
                mask,
                payload,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn prop_roundtrip(frame in arb_frame(), encoding in arb_encoding()) {
            let len = frame.payload.len() as u64;
            // Only encodings that fit; `Minimal` resolves to the smallest.
            let fits = match encoding {
                LengthEncoding::Bits7 => len <= 125,
                LengthEncoding::Bits16 => len <= 0xFFFF,
                _ => true,
            };
            prop_assume!(fits);
            let mut buf = Vec::new();
            encode_into(&frame, encoding, None, &mut buf);
            let header = decode_header(&buf).unwrap().unwrap();
            let expected_enc = encoding.resolve(len);
            prop_assert_eq!(header.length_encoding, expected_enc);
            prop_assert_eq!(
                header.minimal_length,
                expected_enc == LengthEncoding::smallest_for(len)
            );
            prop_assert_eq!(header.payload_len, len);
            let (decoded, used) = decode(&buf, len).unwrap().unwrap();
            prop_assert_eq!(used, buf.len());
            prop_assert_eq!(&decoded, &frame);
            // Trailing bytes are left alone.
            buf.extend_from_slice(b"\x81\x00");
            let (decoded, used2) = decode(&buf, u64::MAX).unwrap().unwrap();
            prop_assert_eq!(used2, used);
            prop_assert_eq!(&decoded, &frame);
        }

        #[test]
        fn prop_prefix_incomplete(frame in arb_frame(), encoding in arb_encoding()) {
            let mut buf = Vec::new();
            encode_into(&frame, encoding, None, &mut buf);
            for end in 0..buf.len() {
                prop_assert_eq!(decode(&buf[..end], u64::MAX), Ok(None), "prefix {}", end);
                let h = decode_header(&buf[..end]).unwrap();
                if let Some(h) = h {
                    prop_assert!(h.header_len <= end);
                }
            }
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            max in prop_oneof![0u64..400, any::<u64>()],
        ) {
            if let Ok(Some(h)) = decode_header(&bytes) {
                prop_assert!(h.header_len <= bytes.len());
                prop_assert!([2, 4, 6, 8, 10, 14].contains(&h.header_len));
                prop_assert!(h.payload_len >> 63 == 0);
            }
            match decode(&bytes, max) {
                Ok(Some((frame, used))) => {
                    prop_assert!(used <= bytes.len());
                    prop_assert!(frame.payload.len() as u64 <= max);
                    // Re-encoding with the encoding seen reproduces the bytes.
                    let h = decode_header(&bytes).unwrap().unwrap();
                    let mut again = Vec::new();
                    encode_into(&frame, h.length_encoding, None, &mut again);
                    prop_assert_eq!(&again[..], &bytes[..used]);
                }
                Ok(None) => {}
                Err(FrameError::PayloadTooLarge { declared, max: m }) => {
                    prop_assert_eq!(m, max);
                    prop_assert!(declared > max);
                }
                Err(FrameError::LengthTopBitSet(n)) => prop_assert!(n >> 63 == 1),
            }
            let _ = Frame::text(bytes.clone()).summary();
        }

        #[test]
        fn prop_mask_matches_bytewise(
            data in proptest::collection::vec(any::<u8>(), 0..100),
            key in any::<[u8; 4]>(),
            offset in 0usize..1000,
        ) {
            let mut fast = data.clone();
            apply_mask(&mut fast, key, offset);
            let slow: Vec<u8> =
                data.iter().enumerate().map(|(i, b)| b ^ key[(offset + i) % 4]).collect();
            prop_assert_eq!(fast, slow);
        }
    }
}
