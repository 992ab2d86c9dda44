//! Outbound: tungstenite's server frames -> compressed frames (see
//! [`super`]).

use std::collections::VecDeque;

use super::Agreed;
use super::codec::Deflater;
use crate::frame_header::{self, Header, HeaderReader};

/// Rewrites the server frame stream written by tungstenite (see the module
/// docs).
pub(crate) struct Outbound {
    deflater: Deflater,
    reader: HeaderReader,
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
            reader: HeaderReader::default(),
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
        !self.in_payload && self.reader.is_empty() && self.compressing.is_none()
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
                if let Some(header) = self.reader.push(b).header {
                    self.start_frame(header, echo_compressed, out);
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

    fn start_frame(&mut self, h: Header, echo_compressed: &mut VecDeque<bool>, out: &mut Vec<u8>) {
        self.b0 = h.b0();
        self.remaining = h.payload_len();
        let opcode = h.opcode();
        if opcode == 0x1 || opcode == 0x2 {
            self.compressing = Some(echo_compressed.pop_front().unwrap_or(true));
            self.first = true;
        }
        self.in_payload = true;
        if self.buffering() {
            self.payload.clear();
        } else {
            out.extend_from_slice(h.bytes());
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
            frame_header::encode(out, self.b0 | rsv1, None, z.len());
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
    use crate::deflate::TAIL;
    use crate::deflate::codec::Inflater;
    use crate::deflate::test_util::*;

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
