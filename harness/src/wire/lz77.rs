//! How far back the LZ77 references of a DEFLATE stream (RFC 1951) reach.
//!
//! permessage-deflate lets the client limit the server's LZ77 window with
//! `server_max_window_bits` (RFC 7692 §7.1.2.1), but an inflater does not
//! check it: zlib keeps a 32 KiB window whatever it is told, and a
//! reference within the bytes already inflated is simply resolved. So the
//! harness walks the compressed data itself and measures the longest
//! distance of every length/distance pair; the caller compares it with the
//! agreed window.
//!
//! The walk only decodes Huffman codes (it produces no output), never
//! panics on hostile input, and allocates nothing that depends on the
//! input's size. It is meant to run on data an inflater has already
//! accepted: on malformed or truncated data it stops and reports what it
//! saw up to there (the inflater judges the rest).

/// Base lengths of length codes 257..=285 (RFC 1951 §3.2.5).
const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Base distances of distance codes 0..=29.
const DIST_BASE: [u32; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order code length code lengths come in (RFC 1951 §3.2.7).
const CLEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];
const MAX_BITS: usize = 15;

/// What a walk over a DEFLATE stream found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    /// The longest back-reference distance seen (0: none).
    pub farthest: u32,
    /// Back-references seen.
    pub references: u64,
}

/// Walks the DEFLATE blocks in `data` and returns how far back their
/// references reach. Stops at the end of the data or at the first thing
/// that does not parse.
pub fn reach(data: &[u8]) -> Reach {
    let mut walk = Walk {
        bits: Bits::new(data),
        reach: Reach::default(),
    };
    // `None` only means the walk stopped (end of data or malformed).
    let _ = walk.blocks();
    walk.reach
}

/// An LSB-first bit reader (RFC 1951 §3.1.1).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u32,
    count: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            pos: 0,
            buf: 0,
            count: 0,
        }
    }

    fn get(&mut self, need: u32) -> Option<u32> {
        debug_assert!(need <= 24);
        while self.count < need {
            let b = *self.data.get(self.pos)?;
            self.pos += 1;
            self.buf |= u32::from(b) << self.count;
            self.count += 8;
        }
        let v = self.buf & ((1u32 << need) - 1);
        self.buf >>= need;
        self.count -= need;
        Some(v)
    }

    /// Drops the bits left in the current byte.
    fn align(&mut self) {
        self.buf = 0;
        self.count = 0;
    }

    fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Skips `n` whole bytes (after [`Self::align`]).
    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        if end > self.data.len() {
            return None;
        }
        self.pos = end;
        Some(())
    }
}

/// A canonical Huffman code as counts per length and symbols in code order.
struct Huffman {
    count: [u16; MAX_BITS + 1],
    symbol: [u16; 288],
}

impl Huffman {
    /// `None` if the lengths over-subscribe the code.
    fn new(lengths: &[u8]) -> Option<Huffman> {
        let mut h = Huffman {
            count: [0; MAX_BITS + 1],
            symbol: [0; 288],
        };
        for &l in lengths {
            h.count[usize::from(l)] += 1;
        }
        let mut left: i32 = 1;
        for len in 1..=MAX_BITS {
            left = (left << 1) - i32::from(h.count[len]);
            if left < 0 {
                return None;
            }
        }
        let mut offs = [0u16; MAX_BITS + 2];
        for len in 1..=MAX_BITS {
            offs[len + 1] = offs[len] + h.count[len];
        }
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                let slot = &mut offs[usize::from(l)];
                h.symbol[usize::from(*slot)] = sym as u16;
                *slot += 1;
            }
        }
        Some(h)
    }

    /// Decodes one symbol, a bit at a time (codes are read MSB first).
    fn decode(&self, bits: &mut Bits<'_>) -> Option<u16> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..=MAX_BITS {
            code |= bits.get(1)? as i32;
            let count = i32::from(self.count[len]);
            if code - count < first {
                return self.symbol.get((index + code - first) as usize).copied();
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        None
    }
}

struct Walk<'a> {
    bits: Bits<'a>,
    reach: Reach,
}

impl Walk<'_> {
    fn blocks(&mut self) -> Option<()> {
        // Blocks follow each other until the data ends; a block with BFINAL
        // set ends a stream, and a new one may start at the next byte.
        while !self.bits.at_end() {
            let last = self.bits.get(1)?;
            match self.bits.get(2)? {
                0 => self.stored()?,
                1 => self.fixed()?,
                2 => self.dynamic()?,
                _ => return None,
            }
            if last == 1 {
                self.bits.align();
            }
        }
        Some(())
    }

    fn stored(&mut self) -> Option<()> {
        self.bits.align();
        let len = self.bits.get(16)?;
        let nlen = self.bits.get(16)?;
        if len != !nlen & 0xFFFF {
            return None;
        }
        self.bits.skip(len as usize)
    }

    fn fixed(&mut self) -> Option<()> {
        let mut lengths = [0u8; 288 + 30];
        lengths[..144].fill(8);
        lengths[144..256].fill(9);
        lengths[256..280].fill(7);
        lengths[280..288].fill(8);
        lengths[288..].fill(5);
        let lit = Huffman::new(&lengths[..288])?;
        let dist = Huffman::new(&lengths[288..])?;
        self.codes(&lit, &dist)
    }

    fn dynamic(&mut self) -> Option<()> {
        let nlen = self.bits.get(5)? as usize + 257;
        let ndist = self.bits.get(5)? as usize + 1;
        let ncode = self.bits.get(4)? as usize + 4;
        if nlen > 286 || ndist > 30 {
            return None;
        }
        let mut clen = [0u8; 19];
        for &i in &CLEN_ORDER[..ncode] {
            clen[i] = self.bits.get(3)? as u8;
        }
        let clcode = Huffman::new(&clen)?;
        let mut lengths = [0u8; 286 + 30];
        let mut i = 0;
        while i < nlen + ndist {
            let sym = clcode.decode(&mut self.bits)?;
            let (value, times) = match sym {
                0..=15 => (sym as u8, 1),
                16 => (*lengths.get(i.checked_sub(1)?)?, 3 + self.bits.get(2)?),
                17 => (0, 3 + self.bits.get(3)?),
                18 => (0, 11 + self.bits.get(7)?),
                _ => return None,
            };
            let end = i + times as usize;
            if end > nlen + ndist {
                return None;
            }
            lengths[i..end].fill(value);
            i = end;
        }
        let lit = Huffman::new(&lengths[..nlen])?;
        let dist = Huffman::new(&lengths[nlen..nlen + ndist])?;
        self.codes(&lit, &dist)
    }

    /// The symbols of one Huffman block, up to its end-of-block code.
    fn codes(&mut self, lit: &Huffman, dist: &Huffman) -> Option<()> {
        loop {
            let sym = lit.decode(&mut self.bits)?;
            match sym {
                0..=255 => {}
                256 => return Some(()),
                _ => {
                    let i = usize::from(sym - 257);
                    self.bits.get(u32::from(*LENGTH_EXTRA.get(i)?))?;
                    let _ = LENGTH_BASE.get(i)?;
                    let d = usize::from(dist.decode(&mut self.bits)?);
                    let extra = self.bits.get(u32::from(*DIST_EXTRA.get(d)?))?;
                    let distance = DIST_BASE[d] + extra;
                    self.reach.farthest = self.reach.farthest.max(distance);
                    self.reach.references += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};
    use proptest::prelude::*;

    fn deflate(window: u8, level: u32, data: &[u8]) -> Vec<u8> {
        let mut c = Compress::new_with_window_bits(Compression::new(level), false, window);
        let mut out = Vec::with_capacity(data.len() + 1024);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        out
    }

    /// Incompressible bytes (xorshift).
    fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn a_repeat_is_found_at_its_distance() {
        // 3000 noise bytes twice: the second copy refers 3000 bytes back.
        let mut data = noise(3000, 7);
        data.extend_from_within(..);
        for level in [1, 6, 9] {
            let r = reach(&deflate(15, level, &data));
            assert!(r.farthest >= 3000, "level {level}: {r:?}");
        }
        // A window of 2^11 = 2048 bytes cannot reach it.
        let r = reach(&deflate(11, 6, &data));
        assert!(r.farthest <= 2048, "{r:?}");
    }

    #[test]
    fn zlib_keeps_within_every_window() {
        let mut data = noise(40_000, 3);
        let copy = data[..20_000].to_vec();
        data.extend_from_slice(&copy);
        data.extend(std::iter::repeat_n(b'a', 5000));
        for bits in 9..=15u8 {
            let r = reach(&deflate(bits, 6, &data));
            assert!(r.references > 0, "bits {bits}");
            assert!(r.farthest <= 1 << bits, "bits {bits}: {r:?}");
        }
    }

    #[test]
    fn stored_fixed_and_truncated_blocks() {
        // Only stored blocks: no references.
        let stored = deflate(15, 0, &noise(70_000, 5));
        assert_eq!(reach(&stored).references, 0);
        // Fixed codes: short data with a repeat.
        let r = reach(&deflate(15, 6, b"abcabcabcabcabc"));
        assert_eq!(r.farthest, 3);
        // Truncation and garbage stop the walk without a panic.
        let z = deflate(15, 6, &noise(5000, 9).repeat(2));
        for end in [0, 1, 2, 10, z.len() / 2, z.len() - 1] {
            let _ = reach(&z[..end]);
        }
        let _ = reach(&[0xff; 64]);
        let _ = reach(&[0x07]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prop_reach_matches_the_window(
            chunk in proptest::collection::vec(any::<u8>(), 1..3000),
            times in 1usize..5,
            bits in 9u8..=15,
        ) {
            let data = chunk.repeat(times);
            let r = reach(&deflate(bits, 6, &data));
            prop_assert!(r.farthest <= 1 << bits);
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = reach(&bytes);
        }
    }
}
