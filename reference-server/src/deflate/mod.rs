//! permessage-deflate (RFC 7692), added around tungstenite (which has no
//! extension support).
//!
//! The module is split by job: [`negotiate`](negotiate()) (the handshake),
//! `codec` (zlib streams), `inbound` and `outbound` (the two data paths).
//! It uses the crate's close/UTF-8 vocabulary and frame-header reader and
//! nothing of the guard that drives it.
//!
//! # Negotiation ([`negotiate`](negotiate()))
//!
//! Every `Sec-WebSocket-Extensions` line is parsed as a list of offers
//! (RFC 6455 §9.1: `,`-separated elements, `;`-separated parameters, values
//! as token or quoted-string; optional whitespace around the separators). If
//! any line is malformed, no extension is negotiated. Otherwise the first
//! `permessage-deflate` offer that is acceptable wins; an offer is declined
//! when it has an unknown parameter, a duplicate parameter, a value on
//! `*_no_context_takeover`, `server_max_window_bits` without a value, or a
//! window value that is not a decimal 8..15 without leading zeros. When no
//! offer is acceptable the connection upgrades without an extension.
//!
//! The answer accepts the offer as made:
//! * `server_no_context_takeover` is echoed and honoured: the compressor is
//!   reset after every message.
//! * `client_no_context_takeover` is echoed; the inflater is reset after
//!   every message (a client that keeps its context anyway fails with 1002
//!   when it refers back to an earlier message).
//! * `server_max_window_bits=N` is echoed with the same N and the server
//!   compresses with that window. N = 8 is supported: zlib cannot deflate
//!   with a 256-byte window, so with 8 the server sends stored DEFLATE
//!   blocks, which contain no back-references and so honour any window.
//! * `client_max_window_bits=N` is echoed with the same N;
//!   `client_max_window_bits` without a value is accepted and not answered
//!   (the client may then use up to 15). The client's window is not
//!   enforced: zlib-rs inflates with a 32 KiB window whatever the window
//!   bits, so back-references beyond N are accepted.
//!
//! Extension and parameter names are compared case-sensitively
//! (`Permessage-Deflate` is an unknown extension and is ignored).
//!
//! # Data path
//!
//! Inbound ([`Inbound`]), between the guard's validator and tungstenite: the
//! frames of a compressed message (RSV1 on its first frame) are unmasked and
//! inflated, and the inflated bytes are handed to tungstenite as plain,
//! masked (all-zero key) frames of the same message; every other frame
//! passes through unchanged. Inflated size above `max_message_size` fails
//! with 1009 while inflating (output is produced in 16 KiB steps and never
//! beyond the limit); invalid UTF-8 in an inflated text message fails with
//! 1007 as soon as it is inflated; invalid DEFLATE data fails with 1002 (RFC
//! 7692 §8 says only "Fail the WebSocket Connection"; the data violates the
//! extension's framing, a protocol error, not the message type, so not 1007).
//!
//! Outbound ([`Outbound`]), between tungstenite and the socket: the data
//! frames tungstenite writes are parsed back and, for messages whose
//! inbound original was compressed, compressed (sync flush, trailing
//! `00 00 ff ff` removed on the final frame, §7.2.1) and rewritten with
//! RSV1 on the first frame. The echo mirrors the client: an uncompressed
//! message (RSV1 clear, always allowed) is echoed uncompressed. Control
//! frames pass through.

mod codec;
mod inbound;
mod negotiate;
mod outbound;

pub(crate) use inbound::Inbound;
pub(crate) use negotiate::{Agreed, Negotiated, negotiate};
pub(crate) use outbound::Outbound;

/// The bytes a sync flush ends with, removed from the end of every
/// compressed message (RFC 7692 §7.2.1) and put back before inflating.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

#[cfg(test)]
mod test_util {
    use super::Agreed;

    pub fn agreed(snct: bool, cnct: bool, smwb: u8, cmwb: u8) -> Agreed {
        Agreed {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: smwb,
            client_max_window_bits: cmwb,
        }
    }
    /// Parses frames back: (b0, unmasked payload).
    pub fn frames(mut s: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut v = Vec::new();
        while !s.is_empty() {
            let (len, hl) = match s[1] & 0x7F {
                126 => (u16::from_be_bytes([s[2], s[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(s[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            let masked = s[1] & 0x80 != 0;
            let key = if masked {
                s[hl..hl + 4].to_vec()
            } else {
                vec![0; 4]
            };
            let start = hl + if masked { 4 } else { 0 };
            let payload = s[start..start + len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            v.push((s[0], payload));
            s = &s[start + len..];
        }
        v
    }

    pub fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    /// Joins the data frames of each message.
    pub fn messages(fs: &[(u8, Vec<u8>)]) -> Vec<(u8, Vec<u8>)> {
        let mut msgs = Vec::new();
        let mut cur: Option<(u8, Vec<u8>)> = None;
        for (b0, p) in fs {
            if b0 & 0x08 != 0 {
                msgs.push((*b0, p.clone()));
                continue;
            }
            let c = cur.get_or_insert((b0 & 0x0F, Vec::new()));
            c.1.extend(p);
            if b0 & 0x80 != 0 {
                msgs.push(cur.take().unwrap());
            }
        }
        msgs
    }
}
