//! WebSocket frame headers (RFC 6455 §5.2): one incremental reader, fed a
//! byte at a time, for every place that follows a frame stream (the
//! validator on the client's bytes, the inflater on the validated ones, the
//! compressor on tungstenite's output), and the one encoder of lengths.
//!
//! The reader only parses: what is allowed is the caller's business (the
//! validator checks byte 0 and byte 1 as soon as each arrives, the others
//! trust bytes that were validated or that tungstenite wrote). So it reports
//! every byte ([`Step`]) and says when the payload length and the whole
//! header are known.

/// The longest header: 2 bytes, a 64-bit length, a masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// A complete frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; MAX_HEADER_LEN],
    len: usize,
    payload_len: u64,
}

impl Header {
    /// Byte 0: FIN, RSV1-3, opcode.
    pub fn b0(&self) -> u8 {
        self.bytes[0]
    }

    pub fn fin(&self) -> bool {
        self.b0() & 0x80 != 0
    }

    pub fn rsv1(&self) -> bool {
        self.b0() & 0x40 != 0
    }

    pub fn opcode(&self) -> u8 {
        self.b0() & 0x0F
    }

    pub fn is_control(&self) -> bool {
        self.opcode() & 0x08 != 0
    }

    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// The masking key, when the mask bit is set.
    pub fn mask(&self) -> Option<[u8; 4]> {
        (self.bytes[1] & 0x80 != 0).then(|| {
            let k = &self.bytes[self.len - 4..self.len];
            [k[0], k[1], k[2], k[3]]
        })
    }

    /// The header as it was on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What one more header byte completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The position of this byte in the header (0 for FIN/RSV/opcode, 1 for
    /// the mask bit and 7-bit length, ...).
    pub index: usize,
    /// The payload length, on the byte that completes it.
    pub payload_len: Option<u64>,
    /// The whole header, on its last byte; the reader is then ready for the
    /// next frame.
    pub header: Option<Header>,
}

/// Reads one frame header after another, a byte at a time.
#[derive(Clone, Copy, Debug)]
pub struct HeaderReader {
    bytes: [u8; MAX_HEADER_LEN],
    have: usize,
    /// The header length, known once byte 1 is in (2 until then).
    need: usize,
}

impl Default for HeaderReader {
    fn default() -> Self {
        HeaderReader {
            bytes: [0; MAX_HEADER_LEN],
            have: 0,
            need: 2,
        }
    }
}

impl HeaderReader {
    /// True between frames: no byte of a header has been read.
    pub fn is_empty(&self) -> bool {
        self.have == 0
    }

    /// How many bytes the extended length takes: 0, 2 or 8 (known once
    /// byte 1 is in).
    pub fn extended_len_bytes(&self) -> usize {
        match self.bytes[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        }
    }

    pub fn push(&mut self, b: u8) -> Step {
        let index = self.have;
        self.bytes[index] = b;
        self.have += 1;
        if index == 1 {
            let mask = if b & 0x80 != 0 { 4 } else { 0 };
            self.need = 2 + self.extended_len_bytes() + mask;
        }
        let ext = if index >= 1 {
            self.extended_len_bytes()
        } else {
            0
        };
        let payload_len = (index >= 1 && index == 1 + ext).then(|| self.decode_len(ext));
        let mut header = None;
        if index >= 1 && self.have == self.need {
            header = Some(Header {
                bytes: self.bytes,
                len: self.need,
                payload_len: self.decode_len(ext),
            });
            *self = HeaderReader::default();
        }
        Step {
            index,
            payload_len,
            header,
        }
    }

    fn decode_len(&self, ext: usize) -> u64 {
        match ext {
            0 => u64::from(self.bytes[1] & 0x7F),
            2 => u64::from(u16::from_be_bytes([self.bytes[2], self.bytes[3]])),
            _ => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&self.bytes[2..10]);
                u64::from_be_bytes(be)
            }
        }
    }
}

/// Appends a frame header with the shortest length encoding; `mask` sets the
/// mask bit and appends the key.
pub fn encode(out: &mut Vec<u8>, b0: u8, mask: Option<[u8; 4]>, payload_len: usize) {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.push(b0);
    if payload_len < 126 {
        out.push(mask_bit | payload_len as u8);
    } else if payload_len <= 0xFFFF {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(payload_len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(payload_len as u64).to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` as one header; returns every step.
    fn steps(bytes: &[u8]) -> Vec<Step> {
        let mut r = HeaderReader::default();
        bytes.iter().map(|&b| r.push(b)).collect()
    }

    #[test]
    fn lengths_masks_and_boundaries() {
        for (len, mask) in [
            (0usize, None),
            (125, Some([1, 2, 3, 4])),
            (126, None),
            (65535, Some([9, 9, 9, 9])),
            (65536, None),
            (1 << 40, Some([0, 0, 0, 1])),
        ] {
            let mut bytes = Vec::new();
            encode(&mut bytes, 0x82, mask, len);
            let s = steps(&bytes);
            assert_eq!(s.len(), bytes.len());
            assert!(s[..s.len() - 1].iter().all(|s| s.header.is_none()));
            let h = s.last().unwrap().header.expect("complete");
            assert_eq!(h.bytes(), &bytes[..]);
            assert_eq!((h.payload_len(), h.mask()), (len as u64, mask));
            assert_eq!((h.opcode(), h.fin(), h.rsv1()), (2, true, false));
            // The length is announced exactly once, on its last byte.
            let known: Vec<usize> = s
                .iter()
                .filter(|s| s.payload_len.is_some())
                .map(|s| s.index)
                .collect();
            let last_len_byte = match len {
                0..=125 => 1,
                126..=65535 => 3,
                _ => 9,
            };
            assert_eq!(known, [last_len_byte], "{len}");
        }
    }

    #[test]
    fn headers_follow_each_other() {
        let mut r = HeaderReader::default();
        assert!(r.is_empty());
        let mut bytes = Vec::new();
        encode(&mut bytes, 0x89, Some([1, 2, 3, 4]), 3);
        encode(&mut bytes, 0x01, None, 300);
        let done: Vec<Header> = bytes.iter().filter_map(|&b| r.push(b).header).collect();
        assert_eq!(done.len(), 2);
        assert_eq!((done[0].opcode(), done[0].is_control()), (9, true));
        assert_eq!((done[1].fin(), done[1].payload_len()), (false, 300));
        assert!(r.is_empty());
        r.push(0x81);
        assert!(!r.is_empty());
        assert_eq!(r.push(0xFF).index, 1);
        assert_eq!(r.extended_len_bytes(), 8);
    }
}
