//! Messages too large to hold: checked as they stream.
//!
//! A message above the harness's buffer cap is neither kept nor compared
//! whole. Both sides reduce it to a [`Digest`] as the bytes go by: its
//! length and one hash per [`CHUNK`] bytes. The reader digests what the
//! target sends, the driver digests what it expects (generated chunk by
//! chunk), and a mismatch still says where: the first chunk that differs.
//! Memory is 8 bytes per MiB, whatever the size.
//!
//! [`Utf8Stream`] validates text the same way, piece by piece.

use std::hash::{DefaultHasher, Hasher};

/// Bytes per chunk hash.
pub const CHUNK: usize = 1 << 20;

/// The length of a message and a hash of each of its [`CHUNK`]-byte chunks
/// (the last one may be shorter).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Digest {
    pub len: u64,
    pub chunks: Vec<u64>,
}

impl Digest {
    /// The byte offset of the first chunk in which `self` and `other`
    /// differ (`None`: equal).
    pub fn first_difference(&self, other: &Digest) -> Option<u64> {
        if let Some(i) = self
            .chunks
            .iter()
            .zip(&other.chunks)
            .position(|(a, b)| a != b)
        {
            return Some(i as u64 * CHUNK as u64);
        }
        (self.len != other.len).then(|| self.len.min(other.len))
    }
}

/// Builds a [`Digest`] from pieces of any size.
pub struct Digester {
    len: u64,
    chunks: Vec<u64>,
    hasher: DefaultHasher,
    in_chunk: usize,
}

impl Default for Digester {
    fn default() -> Self {
        Digester {
            len: 0,
            chunks: Vec::new(),
            // Fixed keys: the same bytes give the same hash on both sides.
            hasher: DefaultHasher::new(),
            in_chunk: 0,
        }
    }
}

impl Digester {
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        while !data.is_empty() {
            let take = (CHUNK - self.in_chunk).min(data.len());
            // Whole chunks hashed in one call per piece: `write` is a plain
            // byte stream, so how a chunk is split does not matter.
            self.hasher.write(&data[..take]);
            self.in_chunk += take;
            data = &data[take..];
            if self.in_chunk == CHUNK {
                self.chunks.push(self.hasher.finish());
                self.hasher = DefaultHasher::new();
                self.in_chunk = 0;
            }
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn finish(mut self) -> Digest {
        if self.in_chunk > 0 {
            self.chunks.push(self.hasher.finish());
        }
        Digest {
            len: self.len,
            chunks: self.chunks,
        }
    }
}

/// The text is not valid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not valid UTF-8")]
pub struct NotUtf8;

/// Incremental UTF-8 validation: a sequence may be split between pieces.
#[derive(Default)]
pub struct Utf8Stream {
    /// The start of a sequence the last piece left open (at most 3 bytes).
    carry: Vec<u8>,
}

impl Utf8Stream {
    /// `Err` as soon as the bytes so far cannot be the start of valid UTF-8.
    pub fn update(&mut self, data: &[u8]) -> Result<(), NotUtf8> {
        let mut data = data;
        // Complete the carried sequence first (at most 3 more bytes).
        while !self.carry.is_empty() && !data.is_empty() {
            self.carry.push(data[0]);
            data = &data[1..];
            match std::str::from_utf8(&self.carry) {
                Ok(_) => self.carry.clear(),
                Err(e) if e.error_len().is_some() => return Err(NotUtf8),
                Err(_) => {}
            }
        }
        if data.is_empty() {
            return Ok(());
        }
        match std::str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(NotUtf8),
            Err(e) => {
                self.carry.extend_from_slice(&data[e.valid_up_to()..]);
                Ok(())
            }
        }
    }

    /// `Err` if the text ended inside a sequence.
    pub fn finish(&self) -> Result<(), NotUtf8> {
        if self.carry.is_empty() {
            Ok(())
        } else {
            Err(NotUtf8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn digest(pieces: &[&[u8]]) -> Digest {
        let mut d = Digester::default();
        for p in pieces {
            d.update(p);
        }
        d.finish()
    }

    #[test]
    fn splitting_does_not_change_the_digest() {
        let data: Vec<u8> = (0..3 * CHUNK + 12345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let whole = digest(&[&data]);
        assert_eq!(whole.len, data.len() as u64);
        assert_eq!(whole.chunks.len(), 4);
        let (a, rest) = data.split_at(7);
        let (b, c) = rest.split_at(CHUNK + 3);
        assert_eq!(digest(&[a, b, c]), whole);
        let mut other = data.clone();
        other[2 * CHUNK + 5] ^= 1;
        assert_eq!(
            digest(&[&other]).first_difference(&whole),
            Some(2 * CHUNK as u64)
        );
        assert_eq!(
            digest(&[&data[..100]]).first_difference(&whole),
            Some(0),
            "a shorter first chunk differs"
        );
        assert_eq!(digest(&[&data]).first_difference(&whole), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn prop_utf8_stream_matches_whole_validation(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            cuts in proptest::collection::vec(0usize..64, 0..6),
            text in ".{0,20}",
        ) {
            // Mostly valid text with some random bytes in it.
            let mut data = text.into_bytes();
            data.extend_from_slice(&bytes[..bytes.len() % 5]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut s = Utf8Stream::default();
            let mut ok = true;
            let mut at = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                ok &= s.update(&data[at..c]).is_ok();
                at = c;
            }
            ok &= s.finish().is_ok();
            prop_assert_eq!(ok, std::str::from_utf8(&data).is_ok());
        }
    }
}
