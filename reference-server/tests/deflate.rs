//! permessage-deflate (RFC 7692) over raw TCP on 127.0.0.1: negotiation,
//! compressed echoes with and without context takeover, fragmentation, and
//! the failures (RSV1 misuse, bad data, bombs). Every read has a timeout.

mod common;

use std::time::{Duration, Instant};

use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use pushspec_reference_server::{Config, ServerHandle, WsConfig};

const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The client's compressor: sync flush, tail stripped.
struct Deflater {
    c: Compress,
    reset: bool,
}

impl Deflater {
    fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        Deflater {
            c: Compress::new_with_window_bits(Compression::default(), false, window_bits),
            reset: no_context_takeover,
        }
    }

    fn compress(&mut self, msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(msg.len() + 1024);
        let mut input = msg;
        loop {
            let before = self.c.total_in();
            self.c
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .unwrap();
            input = &input[(self.c.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity());
        }
        assert!(out.ends_with(&TAIL));
        out.truncate(out.len() - 4);
        if self.reset {
            self.c.reset();
        }
        out
    }
}

/// The client's decompressor (trusting: the server is the reference).
struct Inflater {
    d: Decompress,
    reset: bool,
}

impl Inflater {
    fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        Inflater {
            d: Decompress::new_with_window_bits(false, window_bits.max(9)),
            reset: no_context_takeover,
        }
    }

    fn decompress(&mut self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let mut input = payload.to_vec();
        input.extend(TAIL);
        let mut out = Vec::with_capacity(payload.len() * 4 + 1024);
        let mut rest = &input[..];
        loop {
            let before = self.d.total_in();
            let st = self
                .d
                .decompress_vec(rest, &mut out, FlushDecompress::Sync)
                .map_err(|e| e.to_string())?;
            rest = &rest[(self.d.total_in() - before) as usize..];
            if rest.is_empty() && out.len() < out.capacity() || st == Status::StreamEnd {
                break;
            }
            out.reserve(out.capacity());
        }
        if self.reset {
            self.d.reset(false);
        }
        Ok(out)
    }
}

fn config(deflate: bool, max_message_size: usize) -> Config {
    Config {
        ws: WsConfig {
            deflate,
            max_message_size,
            ..WsConfig::default()
        },
        ..Config::default()
    }
}

/// Handshake with these `Sec-WebSocket-Extensions` lines; returns the
/// answered extension (if any) and the connection.
async fn offer(h: &ServerHandle, lines: &[&str]) -> (Option<String>, Conn) {
    let extra: String = lines
        .iter()
        .map(|l| format!("Sec-WebSocket-Extensions: {l}\r\n"))
        .collect();
    let mut c = Conn::open(h).await;
    c.send(upgrade_request(&extra).as_bytes()).await;
    let head = c.head().await;
    assert_eq!(head.status, 101, "{head:?}");
    (head.get("sec-websocket-extensions").map(String::from), c)
}

/// Builds the frames of one message from `payload` split at `cuts`; RSV1 on
/// the first frame when `compressed`.
fn message_frames(opcode: u8, compressed: bool, payload: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied().filter(|c| *c < payload.len()));
    bounds.push(payload.len());
    let n = bounds.len() - 1;
    (0..n)
        .map(|i| {
            let op = if i == 0 { opcode } else { 0 };
            let rsv1 = if i == 0 && compressed { 0x40 } else { 0 };
            let fin = if i == n - 1 { 0x80 } else { 0 };
            masked(fin | rsv1 | op, &payload[bounds[i]..bounds[i + 1]])
        })
        .collect()
}

/// Reads one whole message (possibly fragmented): (first byte, payload).
async fn read_message(c: &mut Conn) -> (u8, Vec<u8>) {
    let (b0, mut payload) = c.frame().await;
    let mut fin = b0 & 0x80 != 0;
    while !fin {
        let (b, p) = c.frame().await;
        assert_eq!(b & 0x7F, 0, "continuation expected, got {b:#x}");
        payload.extend(p);
        fin = b & 0x80 != 0;
    }
    (b0, payload)
}

/// Text that compresses about 3:1: random lowercase words.
fn noisy_text(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 33) % 27;
            if r == 26 { b' ' } else { b'a' + r as u8 }
        })
        .collect()
}

/// Asserts equal payloads without printing megabytes.
#[track_caller]
fn same(got: &[u8], want: &[u8], ctx: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{ctx}: payload differs: {} vs {} bytes, first difference at {at:?}",
            got.len(),
            want.len()
        );
    }
}

fn text_of(len: usize, seed: usize) -> Vec<u8> {
    // Compressible, varied JSON-ish text.
    let mut s = String::new();
    let mut i = seed;
    while s.len() < len {
        s.push_str(&format!(
            "{{\"id\":{i},\"name\":\"item-{}\",\"ok\":true}},",
            i % 97
        ));
        i += 1;
    }
    s.truncate(len);
    s.into_bytes()
}

#[tokio::test]
async fn negotiation_answers_each_parameter() {
    let h = start(Config::default()).await;
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["permessage-deflate"], Some("permessage-deflate")),
        (
            &["permessage-deflate; server_no_context_takeover"],
            Some("permessage-deflate; server_no_context_takeover"),
        ),
        (
            &["permessage-deflate; client_no_context_takeover"],
            Some("permessage-deflate; client_no_context_takeover"),
        ),
        (
            &["permessage-deflate; server_max_window_bits=10"],
            Some("permessage-deflate; server_max_window_bits=10"),
        ),
        (
            &["permessage-deflate; server_max_window_bits=8"],
            Some("permessage-deflate; server_max_window_bits=8"),
        ),
        (
            &["permessage-deflate; client_max_window_bits"],
            Some("permessage-deflate"),
        ),
        (
            &["permessage-deflate; client_max_window_bits=\"9\""],
            Some("permessage-deflate; client_max_window_bits=9"),
        ),
        // Autobahn's 13.7 list: the first offer is taken.
        (
            &[
                "permessage-deflate; client_no_context_takeover; client_max_window_bits=9, \
               permessage-deflate; client_no_context_takeover, permessage-deflate",
            ],
            Some("permessage-deflate; client_no_context_takeover; client_max_window_bits=9"),
        ),
        // Declined offers are skipped, other extensions ignored, on any line.
        (
            &[
                "x-webkit-deflate-frame, permessage-deflate; mystery",
                "permessage-deflate; server_max_window_bits=7, \
                 permessage-deflate; server_no_context_takeover",
            ],
            Some("permessage-deflate; server_no_context_takeover"),
        ),
        // No acceptable offer: upgrade without an extension.
        (&["permessage-deflate; foo=bar"], None),
        (
            &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
            None,
        ),
        (&["permessage-deflate; server_max_window_bits"], None),
        (&["permessage-deflate; server_max_window_bits=16"], None),
        (&["permessage-deflate; server_max_window_bits=09"], None),
        (&["permessage-deflate; client_max_window_bits=7"], None),
        (
            &["permessage-deflate; client_no_context_takeover=yes"],
            None,
        ),
        (&["x-webkit-deflate-frame"], None),
        // Malformed header: nothing is negotiated.
        (&["permessage-deflate; server_max_window_bits=\"10"], None),
    ];
    for (lines, expected) in cases {
        let (ext, mut c) = offer(&h, lines).await;
        assert_eq!(ext.as_deref(), *expected, "{lines:?}");
        // Either way the connection works (uncompressed here).
        c.send(&masked(0x81, b"plain")).await;
        assert_eq!(c.frame().await, (0x81, b"plain".to_vec()), "{lines:?}");
    }
}

#[tokio::test]
async fn no_offer_or_disabled_means_plain_websocket() {
    let h = start(Config::default()).await;
    let (ext, mut c) = offer(&h, &[]).await;
    assert_eq!(ext, None);
    c.send(&masked(0x81, b"hello")).await;
    assert_eq!(c.frame().await, (0x81, b"hello".to_vec()));
    c.send(&masked(0xC1, &Deflater::new(15, false).compress(b"x")))
        .await;
    c.expect_close(Some(1002)).await;
    c.expect_eof().await;

    let h = start(config(false, 1 << 20)).await;
    let (ext, mut c) = offer(&h, &["permessage-deflate"]).await;
    assert_eq!(ext, None);
    c.send(&masked(0xC1, &Deflater::new(15, false).compress(b"x")))
        .await;
    c.expect_close(Some(1002)).await;
}

/// Echo of many sizes, text and binary, with the given offer; each echo is
/// compressed (RSV1) and inflates with the agreed server parameters.
async fn echo_sizes(offer_line: &str, cw: u8, cnct: bool, sw: u8, snct: bool) {
    let h = start(Config::default()).await;
    let (ext, mut c) = offer(&h, &[offer_line]).await;
    assert!(ext.is_some(), "{offer_line}");
    let mut z = Deflater::new(cw.max(9), cnct);
    let mut unz = Inflater::new(sw, snct);
    let sizes = [
        0usize, 16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072,
    ];
    for (i, &len) in sizes.iter().enumerate() {
        let binary = i % 2 == 1;
        let msg = if binary {
            (0..len)
                .map(|k| ((k * 31) % 251) as u8 ^ (k / 700) as u8)
                .collect()
        } else {
            text_of(len, i)
        };
        let opcode = if binary { 2 } else { 1 };
        c.send(&masked(0xC0 | 0x80 | opcode, &z.compress(&msg)))
            .await;
        let (b0, payload) = read_message(&mut c).await;
        assert_eq!(b0, 0xC0 | opcode, "{offer_line} len {len}");
        same(
            &unz.decompress(&payload).unwrap(),
            &msg,
            &format!("{offer_line} len {len}"),
        );
        if sw == 8 {
            // Stored blocks only: the echo is no smaller than the message.
            assert!(payload.len() > len, "{offer_line} len {len}");
        }
    }
    c.send(&masked(0x88, &close_payload(1000, b""))).await;
    c.expect_close(Some(1000)).await;
    c.expect_eof().await;
}

/// Parking drops both compression contexts; the client's context (which
/// it keeps) must still be honoured after, and the server's fresh one must
/// still inflate with the client's kept window.
#[tokio::test]
async fn contexts_survive_parking() {
    let h = start(Config::default()).await;
    let (ext, mut c) = offer(&h, &["permessage-deflate"]).await;
    assert_eq!(ext.as_deref(), Some("permessage-deflate"));
    let mut z = Deflater::new(15, false);
    let mut unz = Inflater::new(15, false);
    let msg = text_of(3000, 7);
    for round in 0..3 {
        let compressed = z.compress(&msg);
        if round > 0 {
            // Mostly back-references into the previous message: the server
            // can only inflate this with the window it kept while parked.
            assert!(compressed.len() < 100, "{}", compressed.len());
        }
        c.send(&masked(0xC1, &compressed)).await;
        let (b0, payload) = read_message(&mut c).await;
        assert_eq!(b0, 0xC1, "round {round}");
        same(
            &unz.decompress(&payload).unwrap(),
            &msg,
            &format!("round {round}"),
        );
        wait_parked(&h, 1).await;
    }
    c.send(&masked(0x88, &close_payload(1000, b""))).await;
    c.expect_close(Some(1000)).await;
    c.expect_eof().await;
}

#[tokio::test]
async fn compressed_echo_with_context_takeover() {
    echo_sizes("permessage-deflate", 15, false, 15, false).await;
}

#[tokio::test]
async fn compressed_echo_without_context_takeover() {
    // The client's inflater is reset after every message, so the server
    // must not refer back; the server resets its inflater too, which is
    // what the client's fresh compressor per message needs.
    echo_sizes(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        15,
        true,
        15,
        true,
    )
    .await;
}

#[tokio::test]
async fn compressed_echo_with_small_windows() {
    echo_sizes(
        "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
        9,
        false,
        9,
        false,
    )
    .await;
    echo_sizes(
        "permessage-deflate; server_max_window_bits=8; client_max_window_bits",
        15,
        false,
        8,
        false,
    )
    .await;
}

#[tokio::test]
async fn context_takeover_shrinks_repeated_messages() {
    let h = start(Config::default()).await;
    let (_, mut c) = offer(&h, &["permessage-deflate"]).await;
    let mut z = Deflater::new(15, false);
    let mut unz = Inflater::new(15, false);
    let msg = text_of(2000, 7);
    let mut sizes = Vec::new();
    for _ in 0..3 {
        c.send(&masked(0xC1, &z.compress(&msg))).await;
        let (b0, p) = c.frame().await;
        assert_eq!(b0, 0xC1);
        sizes.push(p.len());
        assert_eq!(unz.decompress(&p).unwrap(), msg);
    }
    // The repeats refer back to the first message.
    assert!(sizes[1] < sizes[0] / 4, "{sizes:?}");
}

#[tokio::test]
async fn uncompressed_messages_are_echoed_uncompressed() {
    let h = start(Config::default()).await;
    let (_, mut c) = offer(&h, &["permessage-deflate"]).await;
    let mut z = Deflater::new(15, false);
    let mut unz = Inflater::new(15, false);
    c.send(&masked(0x81, b"plain one")).await;
    assert_eq!(c.frame().await, (0x81, b"plain one".to_vec()));
    c.send(&masked(0xC1, &z.compress(b"squeezed"))).await;
    let (b0, p) = c.frame().await;
    assert_eq!(b0, 0xC1);
    assert_eq!(unz.decompress(&p).unwrap(), b"squeezed");
    // A fragmented uncompressed message.
    for f in message_frames(2, false, &[5; 300], &[100, 200]) {
        c.send(&f).await;
    }
    assert_eq!(read_message(&mut c).await, (0x82, vec![5; 300]));
}

#[tokio::test]
async fn fragmented_compressed_messages() {
    for offer_line in [
        "permessage-deflate",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    ] {
        let nct = offer_line.contains("no_context");
        let h = start(Config::default()).await;
        let (_, mut c) = offer(&h, &[offer_line]).await;
        let mut z = Deflater::new(15, nct);
        let mut unz = Inflater::new(15, nct);
        for (len, frag) in [
            (8192usize, 256usize),
            (131072, 1024),
            (131072, 32768),
            (300, 1),
        ] {
            let msg = noisy_text(len, len as u64);
            let payload = z.compress(&msg);
            let cuts: Vec<usize> = (1..)
                .map(|k| k * frag)
                .take_while(|c| *c < payload.len())
                .collect();
            let frames = message_frames(1, true, &payload, &cuts);
            let n = frames.len();
            assert!(n >= 2, "{len}/{frag}: {n} frames");
            for (i, f) in frames.into_iter().enumerate() {
                c.send(&f).await;
                if i == n / 2 - 1 {
                    // A ping in the middle is answered at once.
                    c.send(&masked(0x89, b"mid")).await;
                    assert_eq!(c.frame().await, (0x8A, b"mid".to_vec()));
                }
            }
            let (b0, p) = read_message(&mut c).await;
            assert_eq!(b0 & 0x7F, 0x41, "{offer_line} {len}/{frag}");
            same(
                &unz.decompress(&p).unwrap(),
                &msg,
                &format!("{offer_line} {len}/{frag}"),
            );
        }
        // Empty fragments, an empty final fragment.
        let payload = z.compress(b"abc");
        for f in [masked(0x41, &[]), masked(0x00, &payload), masked(0x80, &[])] {
            c.send(&f).await;
        }
        let (b0, p) = read_message(&mut c).await;
        assert_eq!(b0, 0xC1);
        assert_eq!(unz.decompress(&p).unwrap(), b"abc");
    }
}

#[tokio::test]
async fn rfc_7692_payload_examples() {
    let h = start(Config::default()).await;
    let (_, mut c) = offer(&h, &["permessage-deflate"]).await;
    let mut unz = Inflater::new(15, false);
    for payload in [
        // §7.2.3.1, §7.2.3.2 (refers to the previous message), §7.2.3.3
        // (stored block), §7.2.3.4 (BFINAL), §7.2.3.5 (two blocks).
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00][..],
        &[0xf2, 0x00, 0x11, 0x00, 0x00],
        &[
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ],
        &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
        &[
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ],
    ] {
        c.send(&masked(0xC1, payload)).await;
        let (b0, p) = c.frame().await;
        assert_eq!(b0, 0xC1);
        assert_eq!(unz.decompress(&p).unwrap(), b"Hello", "{payload:x?}");
    }
}

async fn expect_failure(offer_line: &str, max: usize, bytes: &[u8], code: u16) {
    let h = start(config(true, max)).await;
    let (ext, mut c) = offer(&h, &[offer_line]).await;
    assert!(ext.is_some());
    c.send(bytes).await;
    c.expect_close(Some(code)).await;
    c.expect_eof().await;
}

#[tokio::test]
async fn rsv1_on_continuation_or_control_frames_fails_with_1002() {
    let z = Deflater::new(15, false).compress(b"fragmented");
    let (a, b) = z.split_at(3);
    let cases: Vec<Vec<u8>> = vec![
        // RSV1 on the continuation of a compressed / uncompressed message.
        [masked(0x41, a), masked(0xC0, b)].concat(),
        [masked(0x01, b"abc"), masked(0xC0, b"def")].concat(),
        // RSV1 on ping, pong and close.
        masked(0xC9, b"ping"),
        masked(0xCA, b"pong"),
        masked(0xC8, &close_payload(1000, b"")),
        // A ping with RSV1 in the middle of a compressed message.
        [masked(0x41, a), masked(0xC9, b"p")].concat(),
        // RSV2 and RSV3 still have no meaning.
        masked(0xA1, b"x"),
        masked(0x91, b"x"),
        masked(0xE1, &z),
    ];
    for bytes in cases {
        expect_failure("permessage-deflate", 1 << 20, &bytes, 1002).await;
    }
}

#[tokio::test]
async fn invalid_compressed_data_fails_with_1002() {
    // BTYPE 11 (reserved), a stored block with a bad NLEN, a distance
    // before the start of the stream.
    for payload in [
        &[0xff, 0xff][..],
        &[0x00, 0x05, 0x00, 0x00, 0x00, b'h'],
        &[0xf2, 0x00, 0x11, 0x00, 0x00],
    ] {
        expect_failure("permessage-deflate", 1 << 20, &masked(0xC2, payload), 1002).await;
    }
    // With client_no_context_takeover, referring to the previous message is
    // invalid.
    let mut z = Deflater::new(15, false);
    let bytes = [
        masked(0xC1, &z.compress(b"Hello")),
        masked(0xC1, &z.compress(b"Hello")),
    ]
    .concat();
    let h = start(Config::default()).await;
    let (_, mut c) = offer(&h, &["permessage-deflate; client_no_context_takeover"]).await;
    c.send(&bytes).await;
    assert_eq!(c.frame().await.0, 0xC1, "the first message is echoed");
    c.expect_close(Some(1002)).await;
    c.expect_eof().await;
}

#[tokio::test]
async fn invalid_utf8_after_inflating_fails_with_1007() {
    let mut z = Deflater::new(15, false);
    let mut bad = text_of(5000, 1);
    bad.extend([0xED, 0xA0, 0x80]); // a surrogate
    bad.extend(text_of(5000, 2));
    expect_failure(
        "permessage-deflate",
        1 << 20,
        &masked(0xC1, &z.compress(&bad)),
        1007,
    )
    .await;
    // Incomplete code point at the end of the message.
    let mut z = Deflater::new(15, false);
    expect_failure(
        "permessage-deflate",
        1 << 20,
        &masked(0xC1, &z.compress(&[b'a', 0xE2, 0x82])),
        1007,
    )
    .await;
    // Invalid UTF-8 in a compressed *binary* message is fine.
    let h = start(Config::default()).await;
    let (_, mut c) = offer(&h, &["permessage-deflate"]).await;
    let mut z = Deflater::new(15, false);
    c.send(&masked(0xC2, &z.compress(&[0xFF, 0xFE]))).await;
    let (b0, p) = c.frame().await;
    assert_eq!(b0, 0xC2);
    assert_eq!(
        Inflater::new(15, false).decompress(&p).unwrap(),
        [0xFF, 0xFE]
    );
}

#[tokio::test]
async fn decompression_bomb_fails_with_1009_while_inflating() {
    // 64 MiB of zeros compress to about 64 KiB; the limit is 1 MiB.
    let mut z = Deflater::new(15, false);
    let bomb = z.compress(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    let started = Instant::now();
    expect_failure("permessage-deflate", 1 << 20, &masked(0xC2, &bomb), 1009).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Only the first compressed fragment is sent: the server fails while
    // inflating, without waiting for the end of the message.
    let h = start(config(true, 1 << 20)).await;
    let (_, mut c) = offer(&h, &["permessage-deflate"]).await;
    c.send(&masked(0x42, &bomb[..bomb.len() / 2])).await;
    c.expect_close(Some(1009)).await;

    // At the limit is fine, one byte more is not.
    let h = start(config(true, 100_000)).await;
    let (_, mut c) = offer(&h, &["permessage-deflate"]).await;
    let mut z = Deflater::new(15, false);
    c.send(&masked(0xC2, &z.compress(&vec![1u8; 100_000])))
        .await;
    let (b0, p) = c.frame().await;
    assert_eq!(b0, 0xC2);
    assert_eq!(
        Inflater::new(15, false).decompress(&p).unwrap().len(),
        100_000
    );
    c.send(&masked(0xC2, &z.compress(&vec![1u8; 100_001])))
        .await;
    c.expect_close(Some(1009)).await;
    c.expect_eof().await;
}

#[tokio::test]
async fn messages_before_a_failure_are_echoed_and_close_works() {
    let h = start(Config::default()).await;
    let (_, mut c) = offer(&h, &["permessage-deflate"]).await;
    let mut z = Deflater::new(15, false);
    let mut bytes = masked(0xC1, &z.compress(b"first"));
    bytes.extend(masked(0x89, b"ping"));
    bytes.extend(masked(0x81, b"second"));
    bytes.extend(masked(0xC0, b"bad"));
    c.send(&bytes).await;
    let mut unz = Inflater::new(15, false);
    let (b0, p) = c.frame().await;
    assert_eq!((b0, unz.decompress(&p).unwrap()), (0xC1, b"first".to_vec()));
    assert_eq!(c.frame().await, (0x8A, b"ping".to_vec()));
    assert_eq!(c.frame().await, (0x81, b"second".to_vec()));
    c.expect_close(Some(1002)).await;
    c.expect_eof().await;
}
