//! Deterministic message generators for the permessage-deflate cases, so
//! that no corpus is shipped: each kind is an endless byte stream, and a
//! message is the slice `[offset, offset + size)` of it (a case makes
//! consecutive messages overlap, so that context takeover pays off).
//!
//! * `json`: ASCII JSON-like records (about 4:1 with DEFLATE).
//! * `prose`: sentences mixing ASCII and multi-byte UTF-8 words. A slice is
//!   moved to character boundaries and padded with spaces, so it is always
//!   valid UTF-8 of exactly `size` bytes.
//! * `binary`: image-like rows of gradients with noise (about 2:1).
//! * `random`: incompressible bytes ([`pattern`]).
//! * `zeros`: zero bytes (decompression bombs).

use std::sync::OnceLock;

use serde::Deserialize;

/// What a generated message contains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GenKind {
    Json,
    Prose,
    Binary,
    Random,
    Zeros,
}

impl GenKind {
    /// Whether every slice is valid UTF-8 (usable for text messages).
    pub fn is_text(self) -> bool {
        matches!(self, GenKind::Json | GenKind::Prose | GenKind::Zeros)
    }

    pub fn name(self) -> &'static str {
        match self {
            GenKind::Json => "json",
            GenKind::Prose => "prose",
            GenKind::Binary => "binary",
            GenKind::Random => "random",
            GenKind::Zeros => "zeros",
        }
    }
}

/// Deterministic, non-repeating-looking bytes covering every byte value, so
/// that an echo which reorders or drops a chunk cannot match by accident.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// The cached head of each stream: slices within it are copied, longer
/// ones generated afresh.
const CACHED: usize = 2 << 20;

/// `size` bytes of the `kind` stream from `offset`.
pub fn generate(kind: GenKind, offset: usize, size: usize) -> Vec<u8> {
    let end = offset.saturating_add(size);
    match kind {
        GenKind::Zeros => vec![0; size],
        GenKind::Binary => (offset..end).map(binary_byte).collect(),
        GenKind::Random | GenKind::Json | GenKind::Prose => {
            static STREAMS: [OnceLock<Vec<u8>>; 3] =
                [OnceLock::new(), OnceLock::new(), OnceLock::new()];
            let (i, make): (usize, fn(usize) -> Vec<u8>) = match kind {
                GenKind::Random => (0, pattern),
                GenKind::Json => (1, json),
                _ => (2, prose),
            };
            // A little extra for moving a prose slice to character boundaries.
            let need = end.saturating_add(8);
            let owned;
            let stream: &[u8] = if need <= CACHED {
                STREAMS[i].get_or_init(|| make(CACHED))
            } else {
                owned = make(need);
                &owned
            };
            if kind == GenKind::Prose {
                utf8_slice(stream, offset, size)
            } else {
                stream[offset..end].to_vec()
            }
        }
    }
}

/// The bytes of [`generate`], produced piece by piece without holding the
/// whole slice: for messages above the harness's buffer cap. `zeros`,
/// `binary` and `random` stream at any size; `json` and `prose` only within
/// their cached head (their text is not addressable by offset).
pub struct ChunkStream {
    kind: GenKind,
    at: usize,
    end: usize,
    /// `random`: the state of [`pattern`]'s xorshift.
    x: u32,
    /// `json` and `prose`: the whole (small) slice.
    held: Vec<u8>,
}

impl ChunkStream {
    pub fn new(kind: GenKind, offset: usize, size: usize) -> Result<ChunkStream, String> {
        let end = offset.saturating_add(size);
        let mut s = ChunkStream {
            kind,
            at: offset,
            end,
            x: 0x9e37_79b9,
            held: Vec::new(),
        };
        match kind {
            GenKind::Json | GenKind::Prose => {
                if end.saturating_add(8) > CACHED {
                    return Err(format!(
                        "a {} payload of {size} bytes cannot be streamed (only zeros, binary and random stream beyond {CACHED} bytes)",
                        kind.name()
                    ));
                }
                s.held = generate(kind, offset, size);
                s.at = 0;
                s.end = size;
            }
            GenKind::Random => {
                for _ in 0..offset {
                    s.random_byte();
                }
            }
            GenKind::Zeros | GenKind::Binary => {}
        }
        Ok(s)
    }

    fn random_byte(&mut self) -> u8 {
        // `pattern`, continued byte by byte.
        self.x ^= self.x << 13;
        self.x ^= self.x >> 17;
        self.x ^= self.x << 5;
        (self.x >> 24) as u8
    }

    /// The next piece of at most `max` bytes (`None` at the end).
    pub fn next_piece(&mut self, max: usize) -> Option<Vec<u8>> {
        let n = (self.end - self.at).min(max.max(1));
        if n == 0 {
            return None;
        }
        let from = self.at;
        self.at += n;
        Some(match self.kind {
            GenKind::Zeros => vec![0; n],
            GenKind::Binary => (from..from + n).map(binary_byte).collect(),
            GenKind::Random => (0..n).map(|_| self.random_byte()).collect(),
            GenKind::Json | GenKind::Prose => self.held[from..from + n].to_vec(),
        })
    }
}

/// [`ChunkStream`] handed to `f` in pieces of at most `chunk` bytes.
pub fn for_each_chunk(
    kind: GenKind,
    offset: usize,
    size: usize,
    chunk: usize,
    f: &mut dyn FnMut(&[u8]),
) -> Result<(), String> {
    let mut s = ChunkStream::new(kind, offset, size)?;
    while let Some(piece) = s.next_piece(chunk) {
        f(&piece);
    }
    Ok(())
}

/// `size` bytes of valid UTF-8 from `stream` (valid UTF-8 with at least 4
/// bytes after `offset + size`): starts at the first character boundary at
/// or after `offset`, ends at a boundary, padded with spaces.
fn utf8_slice(stream: &[u8], offset: usize, size: usize) -> Vec<u8> {
    let is_boundary = |i: usize| i >= stream.len() || (stream[i] as i8) >= -0x40;
    let mut start = offset;
    while !is_boundary(start) {
        start += 1;
    }
    let mut end = (start + size).min(stream.len());
    while !is_boundary(end) {
        end -= 1;
    }
    let mut out = stream[start..end].to_vec();
    out.resize(size, b' ');
    out
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() >> 33) as usize % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
];

/// JSON-like records, one per line, at least `len` bytes (ASCII).
fn json(len: usize) -> Vec<u8> {
    const EVENTS: &[&str] = &["created", "updated", "deleted", "viewed", "shared"];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut out = String::with_capacity(len + 256);
    let mut id = 100_000u64;
    while out.len() < len {
        id += 1 + rng.below(7) as u64;
        let tags: Vec<String> = (0..1 + rng.below(3))
            .map(|_| format!("\"{}\"", rng.pick(WORDS)))
            .collect();
        out.push_str(&format!(
            "{{\"id\":{id},\"user\":\"{}-{}\",\"event\":\"{}\",\"score\":{}.{:03},\"active\":{},\"tags\":[{}],\"note\":\"{} {} {}\"}}\n",
            rng.pick(WORDS),
            rng.below(100),
            rng.pick(EVENTS),
            rng.below(100),
            rng.below(1000),
            rng.below(2) == 0,
            tags.join(","),
            rng.pick(WORDS),
            rng.pick(WORDS),
            rng.pick(WORDS),
        ));
    }
    out.into_bytes()
}

/// Sentences of ASCII and multi-byte words (2-, 3- and 4-byte UTF-8), at
/// least `len` bytes.
fn prose(len: usize) -> Vec<u8> {
    const MIXED: &[&str] = &[
        "Größe",
        "naïve",
        "façade",
        "smörgåsbord",
        "Ελληνικά",
        "κόσμε",
        "кириллица",
        "мир",
        "日本語",
        "文字",
        "한국어",
        "中文",
        "emoji🎉",
        "𝄞music",
        "café",
        "déjà-vu",
        "the",
        "and",
        "of",
        "a",
        "message",
        "window",
        "deflate",
        "frame",
        "server",
        "client",
    ];
    let mut rng = Rng(0x0ddb_a11c_0ffe_e123);
    let mut out = String::with_capacity(len + 256);
    while out.len() < len {
        let words = 4 + rng.below(10);
        for w in 0..words {
            let word = rng.pick(MIXED);
            if w == 0 {
                let mut cs = word.chars();
                if let Some(c) = cs.next() {
                    out.extend(c.to_uppercase());
                    out.push_str(cs.as_str());
                }
            } else {
                out.push(' ');
                out.push_str(word);
            }
        }
        out.push_str(if rng.below(5) == 0 { ".\n" } else { ". " });
    }
    out.into_bytes()
}

/// Byte `i` of the binary stream: 1024-byte rows of a gradient with 3 bits
/// of noise.
fn binary_byte(i: usize) -> u8 {
    let (x, y) = (i % 1024, i / 1024);
    let mut h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 29;
    ((x / 4 + y * 3) as u8).wrapping_add((h & 7) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_equal_the_whole_slice() {
        for kind in [
            GenKind::Zeros,
            GenKind::Binary,
            GenKind::Random,
            GenKind::Json,
            GenKind::Prose,
        ] {
            for (offset, size, chunk) in [
                (0, 0, 7),
                (0, 1000, 7),
                (123, 5000, 1024),
                (4096, 3 << 20, 1 << 20),
            ] {
                if !matches!(kind, GenKind::Zeros | GenKind::Binary | GenKind::Random)
                    && size > 5000
                {
                    continue;
                }
                let mut got = Vec::new();
                for_each_chunk(kind, offset, size, chunk, &mut |c| {
                    assert!(c.len() <= chunk);
                    got.extend_from_slice(c);
                })
                .unwrap();
                assert!(
                    got == generate(kind, offset, size),
                    "{kind:?} {offset} {size}"
                );
            }
        }
        assert!(for_each_chunk(GenKind::Json, 0, 64 << 20, 1 << 20, &mut |_| {}).is_err());
    }

    #[test]
    fn slices_are_deterministic_and_overlap() {
        for kind in [
            GenKind::Json,
            GenKind::Prose,
            GenKind::Binary,
            GenKind::Random,
        ] {
            let a = generate(kind, 0, 1000);
            assert_eq!(a.len(), 1000);
            assert_eq!(a, generate(kind, 0, 1000));
            if kind != GenKind::Prose {
                assert_eq!(&generate(kind, 500, 1000)[..500], &a[500..]);
            }
        }
        assert_eq!(generate(GenKind::Zeros, 7, 3), vec![0, 0, 0]);
    }

    #[test]
    fn text_kinds_are_utf8_at_any_offset_and_size() {
        for kind in [GenKind::Json, GenKind::Prose] {
            for offset in (0..200).chain([CACHED - 100, CACHED + 3]) {
                for size in [0, 1, 2, 3, 5, 16, 64, 333] {
                    let s = generate(kind, offset, size);
                    assert_eq!(s.len(), size);
                    assert!(std::str::from_utf8(&s).is_ok(), "{kind:?} {offset} {size}");
                }
            }
        }
        // Prose is mostly multi-byte words, not padding.
        let p = generate(GenKind::Prose, 1, 4096);
        assert!(p.iter().filter(|b| **b >= 0x80).count() > 1000);
    }

    #[test]
    fn compressibility_is_as_documented() {
        use crate::wire::deflate::{Agreed, Compressor};
        let ratio = |kind| {
            let m = generate(kind, 0, 64 * 1024);
            m.len() as f64 / Compressor::new(&Agreed::default()).compress(&m).len() as f64
        };
        assert!(ratio(GenKind::Json) > 3.0, "{}", ratio(GenKind::Json));
        assert!(ratio(GenKind::Prose) > 2.0, "{}", ratio(GenKind::Prose));
        assert!(ratio(GenKind::Binary) > 1.5, "{}", ratio(GenKind::Binary));
        assert!(ratio(GenKind::Random) < 1.01, "{}", ratio(GenKind::Random));
    }
}
