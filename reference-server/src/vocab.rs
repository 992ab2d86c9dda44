//! The vocabulary both directions of the frame stream share: the close
//! codes the server sends, which codes a peer may send, what ends a frame
//! stream ([`Event`]) and streaming UTF-8 validation. It imports nothing
//! from the crate, so the validator and both permessage-deflate directions
//! can use it without importing each other.

/// Close code 1002: protocol error.
pub const PROTOCOL_ERROR: u16 = 1002;
/// Close code 1007: invalid frame payload data (invalid UTF-8).
pub const INVALID_PAYLOAD: u16 = 1007;
/// Close code 1009: message too big.
pub const MESSAGE_TOO_BIG: u16 = 1009;

/// Something found in the client's frame stream that ends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The connection must be failed with this close code.
    Fail { code: u16, reason: &'static str },
    /// The client sent a valid close frame. `code` is `None` when its payload
    /// was empty.
    PeerClose { code: Option<u16> },
}

impl Event {
    /// Fails with 1002.
    pub fn protocol_error(reason: &'static str) -> Event {
        Event::Fail {
            code: PROTOCOL_ERROR,
            reason,
        }
    }

    /// Fails with 1007.
    pub fn invalid_utf8() -> Event {
        Event::Fail {
            code: INVALID_PAYLOAD,
            reason: "invalid UTF-8",
        }
    }

    /// Fails with 1009.
    pub fn too_big(reason: &'static str) -> Event {
        Event::Fail {
            code: MESSAGE_TOO_BIG,
            reason,
        }
    }
}

/// Close codes a peer may send (RFC 6455 §7.4 and the IANA registry):
/// 1000-1003, 1007-1014 and 3000-4999. Invalid: 0-999, 1004 (reserved),
/// 1005 and 1006 (never on the wire), 1015 (never on the wire), 1016-2999
/// (reserved for future RFCs) and 5000 and above (undefined).
pub fn close_code_is_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Streaming UTF-8 validator that reports an invalid sequence as soon as the
/// byte that makes it invalid arrives.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Stream {
    carry: [u8; 4],
    len: usize,
}

impl Utf8Stream {
    /// Feeds bytes; on error returns the index in `input` from which the
    /// input is no longer valid UTF-8 (at or before the offending byte).
    pub fn feed(&mut self, input: &[u8]) -> Result<(), usize> {
        let mut consumed = 0;
        while self.len > 0 {
            let Some(&b) = input.get(consumed) else {
                return Ok(());
            };
            self.carry[self.len] = b;
            self.len += 1;
            consumed += 1;
            match std::str::from_utf8(&self.carry[..self.len]) {
                Ok(_) => self.len = 0,
                Err(e) if e.error_len().is_some() => return Err(consumed - 1),
                // Still a valid prefix of a code point; a prefix is at most
                // 3 bytes, so the carry never overflows.
                Err(_) => {}
            }
        }
        let rest = &input[consumed..];
        match std::str::from_utf8(rest) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(consumed + e.valid_up_to()),
            Err(e) => {
                let tail = &rest[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.len = tail.len();
                Ok(())
            }
        }
    }

    /// True when no code point is left incomplete.
    pub fn is_complete(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes() {
        for code in [1000, 1003, 1007, 1014, 3000, 4999] {
            assert!(close_code_is_valid(code), "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert!(!close_code_is_valid(code), "{code}");
        }
    }

    #[test]
    fn utf8_stream_matches_std() {
        let samples: &[&[u8]] = &[
            b"plain ascii",
            "κόσμε 𝄞 €".as_bytes(),
            &[0xED, 0x9F, 0xBF],
            &[0xED, 0xA0, 0x80],
            &[0xF4, 0x8F, 0xBF, 0xBF],
            &[0xF4, 0x90, 0x80, 0x80],
            &[0xC0, 0xAF],
            &[0xE0, 0x80, 0xAF],
            &[0xF8, 0x88, 0x80, 0x80, 0x80],
            &[0xFE],
            &[0x80],
            &[0xEF, 0xBF, 0xBF],
        ];
        for s in samples {
            let std_ok = std::str::from_utf8(s).is_ok();
            for split in 0..=s.len() {
                let mut u = Utf8Stream::default();
                let ok =
                    u.feed(&s[..split]).is_ok() && u.feed(&s[split..]).is_ok() && u.is_complete();
                assert_eq!(ok, std_ok, "{s:?} split at {split}");
            }
            let mut u = Utf8Stream::default();
            let ok = s.iter().all(|b| u.feed(std::slice::from_ref(b)).is_ok()) && u.is_complete();
            assert_eq!(ok, std_ok, "{s:?} bytewise");
        }
    }
}
