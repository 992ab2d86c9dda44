//! Inbound: the validated client frames -> plain frames for tungstenite
//! (see [`super`]).

use std::collections::VecDeque;

use super::codec::{InflateFail, Inflater};
use super::{Agreed, TAIL};
use crate::frame_header::{self, HeaderReader};
use crate::vocab::{Event, Utf8Stream};

/// Compressed input inflated per step: bounds the output of one step to
/// about 1032 times this (DEFLATE's maximum ratio).
const INPUT_STEP: usize = 512;
/// [`Inbound::pump`] stops producing once this much output is queued.
const PUMP_HIGH_WATER: usize = 64 * 1024;

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
    reader: HeaderReader,
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
    /// [`super::Outbound`] pops one per echoed message.
    pub echo_compressed: VecDeque<bool>,
}

impl Inbound {
    pub(crate) fn new(agreed: &Agreed, max_message_size: usize) -> Self {
        Inbound {
            queue: Vec::new(),
            pos: 0,
            reader: HeaderReader::default(),
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
        !self.has_input() && !self.in_payload && self.reader.is_empty() && self.message.is_none()
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
        // The guard has validated the header: it is masked, and its length
        // fits.
        let Some(h) = self.reader.push(b).header else {
            return Ok(());
        };
        self.fin = h.fin();
        self.opcode = h.opcode();
        let rsv1 = h.rsv1();
        self.remaining = h.payload_len();
        self.mask = h.mask().unwrap_or_default();
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
        self.inflating = !h.is_control() && self.message.is_some_and(|m| m.compressed);
        if let (true, Some(m)) = (self.inflating, self.message.as_mut()) {
            m.wire += self.remaining;
        } else {
            out.extend_from_slice(h.bytes());
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
                return Err(Event::invalid_utf8());
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
                return Err(Event::invalid_utf8());
            }
            emit_frame(out, m.text, m.emitted, false, chunk);
            m.emitted = true;
            m.inflated += chunk.len();
            Ok(())
        };
        match self.inflater.feed(data, allowed, &mut emit) {
            Ok(()) => Ok(()),
            Err(InflateFail::TooLarge) => Err(Event::too_big("inflated message too big")),
            Err(InflateFail::Corrupt) => Err(Event::protocol_error("invalid compressed data")),
            Err(InflateFail::Output(e)) => Err(e),
        }
    }
}

/// Appends a client-style (masked, all-zero key) frame of inflated data.
fn emit_frame(out: &mut Vec<u8>, text: bool, continuation: bool, fin: bool, data: &[u8]) {
    let opcode = match (continuation, text) {
        (true, _) => 0x0,
        (false, true) => 0x1,
        (false, false) => 0x2,
    };
    let fin = if fin { 0x80 } else { 0 };
    frame_header::encode(out, fin | opcode, Some([0; 4]), data.len());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::codec::{Deflater, STEP};
    use crate::deflate::test_util::*;
    use crate::test_frames::masked_frame as masked;
    use flate2::{Compress, Compression, FlushCompress};

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
}
