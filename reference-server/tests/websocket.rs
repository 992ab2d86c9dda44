//! WebSocket handshake and framing over raw TCP on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pushspec_reference_server::{Config, WsConfig};
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

async fn handshake(extra_request: &str) -> (Head, Conn, pushspec_reference_server::ServerHandle) {
    handshake_raw(Config::default(), upgrade_request(extra_request)).await
}

async fn handshake_raw(
    config: Config,
    request: String,
) -> (Head, Conn, pushspec_reference_server::ServerHandle) {
    let h = start(config).await;
    let mut c = Conn::open(&h).await;
    c.send(request.as_bytes()).await;
    let head = c.head().await;
    (head, c, h)
}

/// A rejected handshake: no upgrade headers, `Connection: close`, and the
/// server then closes the connection.
async fn assert_rejected(head: &Head, c: &mut Conn, status: u16) {
    assert_eq!(head.status, status, "{head:?}");
    assert!(!head.has("upgrade"), "{head:?}");
    assert!(!head.has("sec-websocket-accept"), "{head:?}");
    assert_eq!(head.get("connection"), Some("close"), "{head:?}");
    let len: usize = head.get("content-length").unwrap().parse().unwrap();
    c.take(len).await;
    c.expect_eof().await;
}

#[tokio::test]
async fn valid_upgrade_gets_101_with_rfc_accept() {
    let (head, _c, _h) = handshake("Sec-WebSocket-Extensions: permessage-deflate\r\n").await;
    assert_eq!(head.status, 101);
    assert_eq!(head.version, "HTTP/1.1");
    assert!(
        head.get("upgrade")
            .unwrap()
            .eq_ignore_ascii_case("websocket")
    );
    assert!(
        head.get("connection")
            .unwrap()
            .eq_ignore_ascii_case("upgrade")
    );
    assert_eq!(head.get("sec-websocket-accept"), Some(ACCEPT));
    assert!(!head.has("sec-websocket-protocol"));
    assert_eq!(
        head.get("sec-websocket-extensions"),
        Some("permessage-deflate")
    );
    assert!(!head.has("content-length") && !head.has("transfer-encoding"));

    // With deflate disabled the offer is ignored.
    let config = Config {
        ws: WsConfig {
            deflate: false,
            ..WsConfig::default()
        },
        ..Config::default()
    };
    let req = upgrade_request("Sec-WebSocket-Extensions: permessage-deflate\r\n");
    let (head, _c, _h) = handshake_raw(config, req).await;
    assert_eq!(head.status, 101);
    assert!(!head.has("sec-websocket-extensions"));
}

#[tokio::test]
async fn wrong_version_gets_426_with_version_header() {
    let req = upgrade_request("").replace("Version: 13", "Version: 8");
    let (head, mut c, _h) = handshake_raw(Config::default(), req).await;
    assert_eq!(head.get("sec-websocket-version"), Some("13"));
    assert_rejected(&head, &mut c, 426).await;

    let req = upgrade_request("").replace("Sec-WebSocket-Version: 13\r\n", "");
    let (head, mut c, _h) = handshake_raw(Config::default(), req).await;
    assert_eq!(head.get("sec-websocket-version"), Some("13"));
    assert_rejected(&head, &mut c, 426).await;

    let (head, mut c, _h) = handshake("Sec-WebSocket-Version: 13\r\n").await;
    assert_rejected(&head, &mut c, 400).await;
}

#[tokio::test]
async fn bad_key_gets_400() {
    for key in [
        "abc",
        "dGhlIHNhbXBsZSBub25jZQ",
        "AAAAAAAAAAAAAAAAAAAAAAA=",
        "dGhlIHNhbXBsZSBub25jZQ==x",
    ] {
        let req = upgrade_request("").replace(KEY, key);
        let (head, mut c, _h) = handshake_raw(Config::default(), req).await;
        assert_rejected(&head, &mut c, 400).await;
    }
    let req = upgrade_request("").replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "");
    let (head, mut c, _h) = handshake_raw(Config::default(), req).await;
    assert_rejected(&head, &mut c, 400).await;
}

#[tokio::test]
async fn other_handshake_failures() {
    let cases: Vec<(String, u16)> = vec![
        (upgrade_request("").replacen("GET", "POST", 1), 405),
        (upgrade_request("").replace("HTTP/1.1", "HTTP/1.0"), 400),
        (upgrade_request("").replace("Host: 127.0.0.1\r\n", ""), 400),
        (
            upgrade_request("").replace("Upgrade: websocket", "Upgrade: h2c"),
            400,
        ),
        (
            upgrade_request("").replace("Connection: Upgrade", "Connection: keep-alive"),
            400,
        ),
        (upgrade_request("Content-Length: 3\r\n") + "abc", 400),
    ];
    for (req, status) in cases {
        let (head, mut c, _h) = handshake_raw(Config::default(), req.clone()).await;
        assert_rejected(&head, &mut c, status).await;
    }
}

#[tokio::test]
async fn header_names_and_tokens_are_case_insensitive() {
    let req = format!(
        "GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, Upgrade\r\n\
         sec-websocket-key: {KEY}\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n"
    );
    let (head, _c, _h) = handshake_raw(Config::default(), req).await;
    assert_eq!(head.status, 101);
    assert_eq!(head.get("sec-websocket-accept"), Some(ACCEPT));
}

#[tokio::test]
async fn origin_and_subprotocol() {
    let config = Config {
        ws: WsConfig {
            allowed_origins: Some(vec!["http://ok.test".into()]),
            subprotocols: vec!["b".into(), "a".into()],
            ..WsConfig::default()
        },
        ..Config::default()
    };
    let (head, mut c, _h) = handshake_raw(
        config.clone(),
        upgrade_request("Origin: http://evil.test\r\n"),
    )
    .await;
    assert_rejected(&head, &mut c, 403).await;

    let req = upgrade_request(
        "Origin: http://ok.test\r\nSec-WebSocket-Protocol: x, a\r\nSec-WebSocket-Protocol: b\r\n",
    );
    let (head, _c, _h) = handshake_raw(config.clone(), req).await;
    assert_eq!(head.status, 101);
    assert_eq!(head.get("sec-websocket-protocol"), Some("a"));

    let req = upgrade_request("Sec-WebSocket-Protocol: x, y\r\n");
    let (head, _c, _h) = handshake_raw(config, req).await;
    assert_eq!(head.status, 101);
    assert!(!head.has("sec-websocket-protocol"));
}

#[tokio::test]
async fn masked_text_is_echoed() {
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    c.send(&masked(0x81, "Hello, κόσμε".as_bytes())).await;
    assert_eq!(c.frame().await, (0x81, "Hello, κόσμε".as_bytes().to_vec()));
    // 16-bit and 64-bit lengths, binary.
    for len in [0usize, 125, 126, 65535, 65536, 100_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        c.send(&masked(0x82, &payload)).await;
        assert_eq!(c.frame().await, (0x82, payload));
    }
}

#[tokio::test]
async fn frames_pipelined_with_the_handshake_are_echoed() {
    let h = start(Config::default()).await;
    let mut c = Conn::open(&h).await;
    let mut bytes = upgrade_request("").into_bytes();
    bytes.extend(masked(0x81, b"early"));
    c.send(&bytes).await;
    assert_eq!(c.head().await.status, 101);
    assert_eq!(c.frame().await, (0x81, b"early".to_vec()));
}

#[tokio::test]
async fn non_minimal_length_encodings_are_echoed() {
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    // 5 bytes in the 16-bit field, then in the 64-bit field, zero mask key.
    c.send(&[[0x81, 0xFE, 0, 5, 0, 0, 0, 0].as_slice(), b"nnnnn"].concat())
        .await;
    assert_eq!(c.frame().await, (0x81, b"nnnnn".to_vec()));
    c.send(
        &[
            [0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0].as_slice(),
            b"mmmmm",
        ]
        .concat(),
    )
    .await;
    assert_eq!(c.frame().await, (0x81, b"mmmmm".to_vec()));
}

#[tokio::test]
async fn ping_is_ponged() {
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    c.send(&masked(0x89, b"hello ping")).await;
    assert_eq!(c.frame().await, (0x8A, b"hello ping".to_vec()));
    c.send(&masked(0x89, &[0xFE; 125])).await;
    assert_eq!(c.frame().await, (0x8A, vec![0xFE; 125]));
}

#[tokio::test]
async fn many_pings_bytewise_are_all_ponged() {
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    let mut bytes = Vec::new();
    for i in 0..10u8 {
        bytes.extend(masked(0x89, &[i; 20]));
    }
    for b in &bytes {
        c.send(std::slice::from_ref(b)).await;
    }
    for i in 0..10u8 {
        assert_eq!(c.frame().await, (0x8A, vec![i; 20]));
    }
    // Back to back in one write too.
    c.send(&bytes).await;
    for i in 0..10u8 {
        assert_eq!(c.frame().await, (0x8A, vec![i; 20]));
    }
}

#[tokio::test]
async fn unsolicited_pong_is_ignored() {
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    let mut bytes = masked(0x8A, b"unsolicited");
    bytes.extend(masked(0x89, b"p"));
    c.send(&bytes).await;
    assert_eq!(c.frame().await, (0x8A, b"p".to_vec()));
}

#[tokio::test]
async fn fragmented_message_with_ping_in_between() {
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    // "€" split inside the code point across fragments, a ping in between.
    let euro = "€".as_bytes();
    c.send(&masked(0x01, &[b'a', euro[0]])).await;
    c.send(&masked(0x89, b"mid")).await;
    assert_eq!(c.frame().await, (0x8A, b"mid".to_vec()));
    c.send(&masked(0x00, &euro[1..])).await;
    c.send(&masked(0x80, b"z")).await;
    assert_eq!(c.frame().await, (0x81, "a€z".as_bytes().to_vec()));
}

/// A session parks when idle at a message boundary (dropping its buffers)
/// and wakes up on the next bytes; never in the middle of a message.
#[tokio::test]
async fn sessions_park_between_messages_only() {
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    // Parked from the start: nothing was sent yet.
    wait_parked(&h, 1).await;
    c.send(&masked(0x81, b"one")).await;
    assert_eq!(c.frame().await, (0x81, b"one".to_vec()));
    wait_parked(&h, 1).await;
    // Woken by a ping, split so the wake-up read gets only part of it.
    let ping = masked(0x89, b"after parking");
    c.send(&ping[..3]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send(&ping[3..]).await;
    assert_eq!(c.frame().await, (0x8A, b"after parking".to_vec()));
    // A fragmented message open for longer than the idle delay keeps the
    // session active, and so does half a frame.
    c.send(&masked(0x01, &[b'a', 0xE2])).await;
    let tail = masked(0x80, &[0x82, 0xAC]);
    c.send(&tail[..4]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(h.stats().parked_websocket_sessions, 0, "{:?}", h.stats());
    c.send(&tail[4..]).await;
    assert_eq!(c.frame().await, (0x81, "a€".as_bytes().to_vec()));
    // A close frame is the first thing a parked session reads.
    wait_parked(&h, 1).await;
    c.send(&masked(0x88, &close_payload(1000, b"bye"))).await;
    c.expect_close(Some(1000)).await;
    c.expect_eof().await;
    // So is a violation.
    let mut c = ws(&h).await;
    wait_parked(&h, 1).await;
    c.send(&masked(0x81, &[0xFF])).await;
    c.expect_close(Some(1007)).await;
    c.expect_eof().await;
}

async fn expect_failure(bytes: &[u8], code: u16) {
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    c.send(bytes).await;
    c.expect_close(Some(code)).await;
    c.expect_eof().await;
}

#[tokio::test]
async fn unmasked_frame_gets_1002() {
    expect_failure(&[0x81, 0x02, b'h', b'i'], 1002).await;
}

#[tokio::test]
async fn protocol_violations_get_1002() {
    let cases: Vec<Vec<u8>> = vec![
        masked(0xC1, b"rsv1"),
        masked(0x91, b"rsv3"),
        masked(0x83, b""),
        masked(0x8F, b""),
        masked(0x09, b"fragmented ping"),
        masked(0x80, b"nothing to continue"),
        masked(0x89, &[0; 126]),
        masked(0x88, &[0x03]),
        [masked(0x01, b"a"), masked(0x81, b"b")].concat(),
        // 64-bit length with the most significant bit set: only the header.
        vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4],
    ];
    for bytes in cases {
        expect_failure(&bytes, 1002).await;
    }
}

#[tokio::test]
async fn valid_message_before_a_bad_frame_is_echoed_first() {
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    let mut bytes = masked(0x81, b"first");
    bytes.extend(masked(0x85, b""));
    bytes.extend(masked(0x89, b"never ponged"));
    c.send(&bytes).await;
    assert_eq!(c.frame().await, (0x81, b"first".to_vec()));
    c.expect_close(Some(1002)).await;
    c.expect_eof().await;
}

#[tokio::test]
async fn invalid_utf8_gets_1007_fast() {
    // Only part of the frame is sent: the server must fail on the invalid
    // bytes without waiting for the rest of the frame.
    let mut payload = "κόσμε".as_bytes().to_vec();
    payload.extend([0xED, 0xA0, 0x80]); // a surrogate
    payload.extend([b'x'; 50]);
    let frame = masked(0x81, &payload);
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    c.send(&frame[..6 + "κόσμε".len() + 2]).await;
    c.expect_close(Some(1007)).await;
    c.expect_eof().await;

    expect_failure(&masked(0x81, &[0xC0, 0xAF]), 1007).await;
    expect_failure(&masked(0x88, &close_payload(1000, &[0xFF])), 1007).await;
}

#[tokio::test]
async fn close_is_echoed_then_tcp_closed() {
    let cases: Vec<(Vec<u8>, Option<u16>)> = vec![
        (vec![], None),
        (close_payload(1000, b""), Some(1000)),
        (close_payload(1000, b"bye bye"), Some(1000)),
        (close_payload(1001, &[b'r'; 123]), Some(1001)),
        (close_payload(1014, b""), Some(1014)),
        (close_payload(3000, b""), Some(3000)),
        (close_payload(4999, b"x"), Some(4999)),
    ];
    for (payload, echoed) in cases {
        let h = start(Config::default()).await;
        let mut c = ws(&h).await;
        c.send(&masked(0x88, &payload)).await;
        let (b0, reply) = c.frame().await;
        assert_eq!(b0, 0x88);
        match echoed {
            None => assert!(reply.is_empty()),
            Some(code) => assert_eq!(reply, code.to_be_bytes()),
        }
        c.expect_eof().await;
    }
}

#[tokio::test]
async fn invalid_close_codes_get_1002() {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        expect_failure(&masked(0x88, &close_payload(code, b"")), 1002).await;
    }
}

#[tokio::test]
async fn nothing_after_close_is_processed() {
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    let mut bytes = masked(0x81, b"before");
    bytes.extend(masked(0x88, &close_payload(1000, b"")));
    bytes.extend(masked(0x81, b"after"));
    bytes.extend(masked(0x89, b"ping after"));
    c.send(&bytes).await;
    assert_eq!(c.frame().await, (0x81, b"before".to_vec()));
    c.expect_close(Some(1000)).await;
    c.expect_eof().await;
}

#[tokio::test]
async fn oversized_messages_get_1009() {
    let config = Config {
        ws: WsConfig {
            max_message_size: 1000,
            ..WsConfig::default()
        },
        ..Config::default()
    };
    for bytes in [
        masked(0x82, &[0; 1001]),
        [masked(0x01, &[b'a'; 600]), masked(0x80, &[b'a'; 401])].concat(),
        // Declared 4 GiB: fails at the header, no payload needed.
        vec![0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4],
    ] {
        let h = start(config.clone()).await;
        let mut c = ws(&h).await;
        c.send(&masked(0x82, &[1; 1000])).await;
        assert_eq!(c.frame().await, (0x82, vec![1; 1000]));
        c.send(&bytes).await;
        c.expect_close(Some(1009)).await;
        c.expect_eof().await;
    }
}

#[tokio::test]
async fn garbage_after_failure_does_not_keep_the_connection_alive() {
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    c.send(&[0x81, 0x01, b'x']).await; // unmasked
    c.expect_close(Some(1002)).await;
    // Keep sending; the server stops reading after its linger bound.
    let started = Instant::now();
    let mut tcp = c.tcp;
    let ended = timeout(Duration::from_secs(5), async {
        loop {
            if tcp.write_all(&[0xAB; 1024]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(ended.is_ok(), "server kept the connection open");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn works_with_tungstenite_client() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let h = start(Config::default()).await;
    let url = format!("ws://{}/", h.local_addr());
    let (mut client, resp) = timeout(T, tokio_tungstenite::connect_async(url))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 101);
    for msg in [
        Message::text("hi"),
        Message::binary(vec![1, 2, 3]),
        Message::text("x".repeat(200_000)),
    ] {
        client.send(msg.clone()).await.unwrap();
        assert_eq!(
            timeout(T, client.next()).await.unwrap().unwrap().unwrap(),
            msg
        );
    }
    client
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "done".into(),
        })))
        .await
        .unwrap();
    match timeout(T, client.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close, got {other:?}"),
    }
    assert!(timeout(T, client.next()).await.unwrap().is_none());
}

#[tokio::test]
async fn dropping_the_handle_ends_connections() {
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    drop(h);
    let mut tmp = [0u8; 16];
    let r = timeout(T, tokio::io::AsyncReadExt::read(&mut c.tcp, &mut tmp))
        .await
        .expect("still open");
    assert!(matches!(r, Ok(0) | Err(_)));
}

/// A server from `spawn_isolated` keeps answering while every worker of the
/// caller's runtime is blocked.
#[test]
fn isolated_server_is_not_starved_by_the_callers_runtime() {
    use std::io::{Read, Write};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.block_on(async {
        let server = pushspec_reference_server::Server::bind(
            "127.0.0.1:0".parse().unwrap(),
            Config::default(),
        )
        .await
        .unwrap();
        let handle = server.spawn_isolated().unwrap();
        // Block both workers for 1.5 s without yielding.
        for _ in 0..2 {
            tokio::spawn(async { std::thread::sleep(Duration::from_millis(1500)) });
        }
        handle
    });
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(handle.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(upgrade_request("").as_bytes()).unwrap();
    s.write_all(&masked(0x81, b"still here")).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"still here") {
        let n = s.read(&mut buf).expect("isolated server did not answer");
        assert!(n > 0, "closed");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(handle);
    // After the handle is dropped the connection ends.
    let n = loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break 0,
            Ok(_) => continue,
        }
    };
    assert_eq!(n, 0);
    drop(rt);
}
