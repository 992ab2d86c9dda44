//! The validator of the client-to-server frame stream: it finds the exact
//! byte at which the stream stops being valid (see [`crate::guard`] for why
//! tungstenite's own checks are not enough, and for how the guard uses it).

use crate::frame_header::HeaderReader;
use crate::vocab::{Event, Utf8Stream, close_code_is_valid};

/// Result of feeding bytes to the [`Validator`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feed {
    /// How many leading bytes of the input may be handed on to tungstenite.
    pub pass: usize,
    /// Set once the stream has ended (a violation or a complete close frame).
    pub event: Option<Event>,
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Header,
    Payload,
    Done(Event),
}

#[derive(Clone, Copy, Debug)]
struct OpenMessage {
    text: bool,
    /// RSV1 on the first frame (permessage-deflate): the payload is
    /// compressed, so its UTF-8 is checked after inflating, not here.
    compressed: bool,
    len: u64,
}

/// Incremental frame-stream validator (client to server direction).
#[derive(Debug)]
pub struct Validator {
    max_message_size: u64,
    /// permessage-deflate is in force: RSV1 marks compressed messages.
    deflate: bool,
    phase: Phase,
    reader: HeaderReader,
    /// Of the current frame, from its byte 0 on.
    opcode: u8,
    fin: bool,
    mask: [u8; 4],
    remaining: u64,
    mask_pos: usize,
    /// The data message currently being received (fragmented or not).
    message: Option<OpenMessage>,
    text_utf8: Utf8Stream,
    /// Unmasked close payload (at most 125 bytes).
    close_payload: Vec<u8>,
    close_utf8: Utf8Stream,
    /// Set from the first byte of a close frame on: nothing is passed on.
    withholding: bool,
    scratch: Vec<u8>,
}

impl Validator {
    #[cfg(test)]
    pub fn new(max_message_size: usize) -> Self {
        Self::with_deflate(max_message_size, false)
    }

    /// A validator for a connection with permessage-deflate (`deflate`).
    /// `max_message_size` then bounds the compressed size of a message; the
    /// inflated size is bounded by the inflater.
    pub fn with_deflate(max_message_size: usize, deflate: bool) -> Self {
        Validator {
            max_message_size: max_message_size as u64,
            deflate,
            phase: Phase::Header,
            reader: HeaderReader::default(),
            opcode: 0,
            fin: false,
            mask: [0; 4],
            remaining: 0,
            mask_pos: 0,
            message: None,
            text_utf8: Utf8Stream::default(),
            close_payload: Vec::new(),
            close_utf8: Utf8Stream::default(),
            withholding: false,
            scratch: Vec::new(),
        }
    }

    /// At a frame boundary, outside any message, nothing withheld.
    pub fn at_rest(&self) -> bool {
        matches!(self.phase, Phase::Header)
            && self.reader.is_empty()
            && self.message.is_none()
            && !self.withholding
    }

    /// Frees the scratch buffers (they grow with the largest text chunk).
    pub fn release(&mut self) {
        self.scratch = Vec::new();
        self.close_payload = Vec::new();
    }

    /// Feeds the next bytes of the stream.
    pub fn feed(&mut self, data: &[u8]) -> Feed {
        // Everything from this index on is withheld from tungstenite.
        let mut pass_end: Option<usize> = self.withholding.then_some(0);
        let mut i = 0;
        loop {
            if let Phase::Done(event) = self.phase {
                return Feed {
                    pass: pass_end.unwrap_or(i),
                    event: Some(event),
                };
            }
            if i >= data.len() {
                return Feed {
                    pass: pass_end.unwrap_or(i),
                    event: None,
                };
            }
            let step = match self.phase {
                Phase::Header => {
                    let r = self.header_byte(data[i]);
                    if self.withholding && pass_end.is_none() {
                        pass_end = Some(i);
                    }
                    i += 1;
                    r.map_err(|e| (i - 1, e))
                }
                Phase::Payload => {
                    let n = (self.remaining.min((data.len() - i) as u64)) as usize;
                    let r = self
                        .payload(&data[i..i + n])
                        .map_err(|(off, e)| (i + off, e));
                    i += n;
                    r
                }
                Phase::Done(_) => unreachable!(),
            };
            if let Err((at, event)) = step {
                self.phase = Phase::Done(event);
                return Feed {
                    pass: pass_end.unwrap_or(at),
                    event: Some(event),
                };
            }
        }
    }

    fn is_control(&self) -> bool {
        self.opcode & 0x08 != 0
    }

    fn fail(reason: &'static str) -> Event {
        Event::protocol_error(reason)
    }

    /// One header byte: each rule is checked on the byte that decides it, so
    /// a violation is found before the rest of the header arrives.
    fn header_byte(&mut self, b: u8) -> Result<(), Event> {
        let step = self.reader.push(b);
        match step.index {
            0 => self.check_first_byte(b)?,
            1 => self.check_second_byte(b)?,
            2 if self.reader.extended_len_bytes() == 8 && b & 0x80 != 0 => {
                return Err(Self::fail(
                    "64-bit payload length with the most significant bit set",
                ));
            }
            _ => {}
        }
        // A non-minimal length encoding (e.g. 5 in the 16-bit field) is
        // accepted: §5.2 "the minimal number of bytes MUST be used" binds the
        // sender; no receiver behaviour is specified.
        if let Some(len) = step.payload_len {
            self.set_len(len)?;
        }
        if let Some(header) = step.header {
            self.mask = header.mask().expect("the mask bit was checked at byte 1");
            self.remaining = header.payload_len();
            self.mask_pos = 0;
            self.phase = Phase::Payload;
            self.close_payload.clear();
            self.close_utf8 = Utf8Stream::default();
            if self.remaining == 0 {
                self.end_frame()?;
            }
        }
        Ok(())
    }

    /// FIN, RSV1-3 and the opcode, against the negotiated extension and the
    /// message state.
    fn check_first_byte(&mut self, b: u8) -> Result<(), Event> {
        self.fin = b & 0x80 != 0;
        self.opcode = b & 0x0F;
        let rsv1 = b & 0x40 != 0;
        if b & 0x30 != 0 || (rsv1 && !self.deflate) {
            // No negotiated extension gives these bits a meaning.
            return Err(Self::fail(
                "reserved bits set without a negotiated extension",
            ));
        }
        if rsv1 && self.opcode & 0x08 != 0 {
            return Err(Self::fail("RSV1 on a control frame"));
        }
        if rsv1 && self.opcode == 0x0 {
            return Err(Self::fail("RSV1 on a continuation frame"));
        }
        match self.opcode {
            0x0 => {
                if self.message.is_none() {
                    return Err(Self::fail("continuation frame with nothing to continue"));
                }
            }
            0x1 | 0x2 => {
                if self.message.is_some() {
                    return Err(Self::fail(
                        "new data frame while a fragmented message is open",
                    ));
                }
                self.message = Some(OpenMessage {
                    text: self.opcode == 0x1,
                    compressed: rsv1,
                    len: 0,
                });
                self.text_utf8 = Utf8Stream::default();
            }
            0x8..=0xA => {
                if !self.fin {
                    return Err(Self::fail("fragmented control frame"));
                }
                if self.opcode == 0x8 {
                    self.withholding = true;
                }
            }
            _ => return Err(Self::fail("reserved opcode")),
        }
        Ok(())
    }

    /// The mask bit and the 7-bit length.
    fn check_second_byte(&mut self, b: u8) -> Result<(), Event> {
        if b & 0x80 == 0 {
            return Err(Self::fail("unmasked client frame"));
        }
        let len7 = b & 0x7F;
        if self.is_control() && len7 > 125 {
            return Err(Self::fail("control frame payload longer than 125 bytes"));
        }
        if self.opcode == 0x8 && len7 == 1 {
            return Err(Self::fail("close frame with a 1-byte payload"));
        }
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> Result<(), Event> {
        if !self.is_control() {
            let msg = self
                .message
                .as_mut()
                .expect("data frame without message state");
            let total = msg.len.saturating_add(len);
            if total > self.max_message_size {
                return Err(Event::too_big("message too big"));
            }
            msg.len = total;
        }
        Ok(())
    }

    /// Handles a payload slice (never beyond the current frame). On error,
    /// returns the offset in `chunk` of the byte at which it was found.
    fn payload(&mut self, chunk: &[u8]) -> Result<(), (usize, Event)> {
        let text = !self.is_control() && self.message.is_some_and(|m| m.text && !m.compressed);
        if self.opcode == 0x8 {
            for (k, &b) in chunk.iter().enumerate() {
                let byte = b ^ self.mask[(self.mask_pos + k) % 4];
                self.close_payload.push(byte);
                let n = self.close_payload.len();
                if n == 2 {
                    let code = u16::from_be_bytes([self.close_payload[0], self.close_payload[1]]);
                    if !close_code_is_valid(code) {
                        return Err((k, Self::fail("invalid close code")));
                    }
                } else if n > 2 && self.close_utf8.feed(&[byte]).is_err() {
                    return Err((k, Event::invalid_utf8()));
                }
            }
        } else if text {
            self.scratch.clear();
            self.scratch.extend(
                chunk
                    .iter()
                    .enumerate()
                    .map(|(k, b)| b ^ self.mask[(self.mask_pos + k) % 4]),
            );
            if let Err(at) = self.text_utf8.feed(&self.scratch) {
                return Err((at, Event::invalid_utf8()));
            }
        }
        self.mask_pos = (self.mask_pos + chunk.len()) % 4;
        self.remaining -= chunk.len() as u64;
        if self.remaining == 0 {
            // The frame ends at the last byte of this chunk.
            self.end_frame()
                .map_err(|e| (chunk.len().saturating_sub(1), e))?;
        }
        Ok(())
    }

    fn end_frame(&mut self) -> Result<(), Event> {
        self.phase = Phase::Header;
        match self.opcode {
            0x8 => {
                if !self.close_utf8.is_complete() {
                    return Err(Event::invalid_utf8());
                }
                let code = (self.close_payload.len() >= 2)
                    .then(|| u16::from_be_bytes([self.close_payload[0], self.close_payload[1]]));
                Err(Event::PeerClose { code })
            }
            0x9 | 0xA => Ok(()),
            _ => {
                if self.fin {
                    let msg = self
                        .message
                        .take()
                        .expect("data frame without message state");
                    if msg.text && !msg.compressed && !self.text_utf8.is_complete() {
                        return Err(Event::invalid_utf8());
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_frames::masked_frame as frame;
    use crate::vocab::{INVALID_PAYLOAD, PROTOCOL_ERROR};
    fn feed_all(v: &mut Validator, data: &[u8]) -> Feed {
        v.feed(data)
    }

    fn bytewise(v: &mut Validator, data: &[u8]) -> (usize, Option<Event>) {
        let mut passed = 0;
        for b in data {
            let f = v.feed(std::slice::from_ref(b));
            passed += f.pass;
            if f.event.is_some() {
                return (passed, f.event);
            }
        }
        (passed, None)
    }

    fn fail_code(f: Option<Event>) -> Option<u16> {
        match f {
            Some(Event::Fail { code, .. }) => Some(code),
            _ => None,
        }
    }

    #[test]
    fn valid_frames_pass_whole() {
        let mut v = Validator::new(1 << 20);
        let mut data = frame(0x81, "héllo".as_bytes());
        data.extend(frame(0x82, &[0; 300]));
        data.extend(frame(0x89, b"ping"));
        data.extend(frame(0x8A, b""));
        data.extend(frame(0x82, &vec![7; 70_000]));
        let f = feed_all(&mut v, &data);
        assert_eq!(
            f,
            Feed {
                pass: data.len(),
                event: None
            }
        );
        let (passed, ev) = bytewise(&mut Validator::new(1 << 20), &data);
        assert_eq!((passed, ev), (data.len(), None));
    }

    #[test]
    fn violation_passes_prefix() {
        let mut v = Validator::new(1 << 20);
        let good = frame(0x81, b"ok");
        let mut data = good.clone();
        data.extend(frame(0xC1, b"rsv")); // RSV1
        let f = feed_all(&mut v, &data);
        assert_eq!(f.pass, good.len());
        assert_eq!(fail_code(f.event), Some(PROTOCOL_ERROR));
        // Sticky.
        assert_eq!(v.feed(b"more").pass, 0);
    }

    #[test]
    fn protocol_violations() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("rsv", frame(0x91, b"x")),
            ("reserved data opcode", frame(0x83, b"")),
            ("reserved control opcode", frame(0x8B, b"")),
            ("fragmented ping", frame(0x09, b"")),
            ("continuation", frame(0x80, b"x")),
            ("unmasked", vec![0x81, 0x01, b'x']),
            ("long ping", frame(0x89, &[0; 126])),
            ("close len 1", frame(0x88, &[3])),
            ("close code 999", frame(0x88, &999u16.to_be_bytes())),
            ("close code 1004", frame(0x88, &1004u16.to_be_bytes())),
            ("close code 1005", frame(0x88, &1005u16.to_be_bytes())),
            ("close code 1006", frame(0x88, &1006u16.to_be_bytes())),
            ("close code 1015", frame(0x88, &1015u16.to_be_bytes())),
            ("close code 2999", frame(0x88, &2999u16.to_be_bytes())),
            ("close code 5000", frame(0x88, &5000u16.to_be_bytes())),
            (
                "msb length",
                vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4],
            ),
        ];
        for (name, data) in cases {
            let f = Validator::new(1 << 20).feed(&data);
            assert_eq!(fail_code(f.event), Some(PROTOCOL_ERROR), "{name}");
            let (_, ev) = bytewise(&mut Validator::new(1 << 20), &data);
            assert_eq!(fail_code(ev), Some(PROTOCOL_ERROR), "{name} bytewise");
        }
        // New data frame while a fragmented message is open.
        let mut data = frame(0x01, b"a");
        data.extend(frame(0x81, b"b"));
        assert_eq!(
            fail_code(Validator::new(100).feed(&data).event),
            Some(PROTOCOL_ERROR)
        );
    }

    #[test]
    fn rsv1_rules_with_deflate() {
        let v = || Validator::with_deflate(1 << 20, true);
        // RSV1 on the first frame of a message; compressed text is not
        // UTF-8 checked here (it is checked after inflating).
        let mut data = frame(0xC1, &[0xFF, 0xFE]);
        data.extend(frame(0x42, b"a"));
        data.extend(frame(0x89, b"p"));
        data.extend(frame(0x80, b"b"));
        data.extend(frame(0x81, "plain".as_bytes()));
        assert_eq!(
            v().feed(&data),
            Feed {
                pass: data.len(),
                event: None
            }
        );
        for bad in [
            [frame(0x41, b"a"), frame(0xC0, b"b")].concat(),
            [frame(0x01, b"a"), frame(0xC0, b"b")].concat(),
            frame(0xC9, b"p"),
            frame(0xCA, b"p"),
            frame(0xC8, &1000u16.to_be_bytes()),
            frame(0xE1, b"x"),
            frame(0xA1, b"x"),
            frame(0x91, b"x"),
        ] {
            assert_eq!(
                fail_code(v().feed(&bad).event),
                Some(PROTOCOL_ERROR),
                "{bad:x?}"
            );
        }
        // Uncompressed text in a deflate session is still checked here.
        assert_eq!(
            fail_code(v().feed(&frame(0x81, &[0xC0, 0xAF])).event),
            Some(INVALID_PAYLOAD)
        );
        // Without deflate RSV1 is a violation.
        assert_eq!(
            fail_code(Validator::new(100).feed(&frame(0xC1, b"x")).event),
            Some(PROTOCOL_ERROR)
        );
    }

    #[test]
    fn non_minimal_lengths_are_accepted() {
        for data in [
            vec![0x82, 0xFE, 0, 5, 1, 2, 3, 4, 0, 0, 0, 0, 0],
            vec![
                0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 0, 0, 0, 0, 0,
            ],
        ] {
            assert_eq!(
                Validator::new(100).feed(&data),
                Feed {
                    pass: data.len(),
                    event: None
                }
            );
        }
    }

    #[test]
    fn size_limits() {
        assert_eq!(
            fail_code(Validator::new(10).feed(&frame(0x82, &[0; 11])).event),
            Some(1009)
        );
        assert_eq!(Validator::new(10).feed(&frame(0x82, &[0; 10])).event, None);
        let mut data = frame(0x02, &[0; 6]);
        data.extend(frame(0x80, &[0; 5]));
        assert_eq!(fail_code(Validator::new(10).feed(&data).event), Some(1009));
        // A huge declared length fails at the header, before any payload.
        let f = Validator::new(10).feed(&[0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(fail_code(f.event), Some(1009));
    }

    #[test]
    fn utf8_fails_fast_within_a_frame() {
        // "κόσμε" then an invalid byte, in a frame that would be longer.
        let mut payload = "κόσμε".as_bytes().to_vec();
        payload.extend([0xF4, 0x90, 0x80, 0x80]);
        payload.extend(b"edited");
        let data = frame(0x81, &payload);
        let header_len = 6;
        let cut = header_len + "κόσμε".len() + 2; // through F4 90
        let mut v = Validator::new(1 << 20);
        let f = v.feed(&data[..cut]);
        assert_eq!(fail_code(f.event), Some(INVALID_PAYLOAD));
        assert_eq!(f.pass, header_len + "κόσμε".len());
    }

    #[test]
    fn utf8_split_across_fragments_is_valid() {
        let s = "€𝄞".as_bytes();
        let mut data = Vec::new();
        for (i, b) in s.iter().enumerate() {
            let op = if i == 0 { 0x01 } else { 0x00 };
            let fin = if i == s.len() - 1 { 0x80 } else { 0 };
            data.extend(frame(op | fin, &[*b]));
            if i == 2 {
                data.extend(frame(0x89, b"p"));
            }
        }
        let f = Validator::new(100).feed(&data);
        assert_eq!(
            f,
            Feed {
                pass: data.len(),
                event: None
            }
        );
    }

    #[test]
    fn utf8_incomplete_at_message_end() {
        let data = frame(0x81, &[b'a', 0xE2, 0x82]);
        let f = Validator::new(100).feed(&data);
        assert_eq!(fail_code(f.event), Some(INVALID_PAYLOAD));
        assert!(f.pass < data.len());
        let mut data = frame(0x01, &[0xE2]);
        data.extend(frame(0x80, b""));
        assert_eq!(
            fail_code(Validator::new(100).feed(&data).event),
            Some(INVALID_PAYLOAD)
        );
    }

    #[test]
    fn close_frames_are_withheld() {
        let good = frame(0x81, b"hi");
        let mut data = good.clone();
        let mut close = 1000u16.to_be_bytes().to_vec();
        close.extend(b"bye");
        data.extend(frame(0x88, &close));
        data.extend(b"trailing garbage");
        let f = Validator::new(100).feed(&data);
        assert_eq!(
            f,
            Feed {
                pass: good.len(),
                event: Some(Event::PeerClose { code: Some(1000) })
            }
        );

        let (passed, ev) = bytewise(&mut Validator::new(100), &data);
        assert_eq!(passed, good.len());
        assert_eq!(ev, Some(Event::PeerClose { code: Some(1000) }));

        let f = Validator::new(100).feed(&frame(0x88, b""));
        assert_eq!(
            f,
            Feed {
                pass: 0,
                event: Some(Event::PeerClose { code: None })
            }
        );
        for code in [
            1000u16, 1001, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
        ] {
            let f = Validator::new(100).feed(&frame(0x88, &code.to_be_bytes()));
            assert_eq!(f.event, Some(Event::PeerClose { code: Some(code) }));
        }
        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.extend([
            0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80,
        ]);
        let f = Validator::new(100).feed(&frame(0x88, &bad_reason));
        assert_eq!(fail_code(f.event), Some(INVALID_PAYLOAD));
        // Close in the middle of a fragmented message is still a close.
        let mut data = frame(0x01, b"frag");
        data.extend(frame(0x88, &1000u16.to_be_bytes()));
        assert_eq!(
            Validator::new(100).feed(&data).event,
            Some(Event::PeerClose { code: Some(1000) })
        );
    }
}
