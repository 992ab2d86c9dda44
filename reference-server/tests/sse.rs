//! Server-Sent Events over raw TCP on 127.0.0.1.

mod common;

use std::time::Duration;

use common::*;
use pushspec_reference_server::{Config, ServerHandle, SseConfig};

/// Sends a request with `Connection: close` and returns the head and body.
async fn request(
    h: &ServerHandle,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (Head, Vec<u8>) {
    let mut c = Conn::open(h).await;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    c.send(&req).await;
    let head = c.head().await;
    let len: usize = head.get("content-length").map_or(0, |v| v.parse().unwrap());
    let body = c.take(len).await;
    c.expect_eof().await;
    (head, body)
}

async fn publish(h: &ServerHandle, headers: &str, data: &[u8]) -> (u16, String) {
    let (head, body) = request(h, "POST", "/publish", headers, data).await;
    (head.status, String::from_utf8(body).unwrap())
}

/// Opens `GET /events` and checks the stream head.
async fn open_stream(h: &ServerHandle, headers: &str) -> Conn {
    let mut c = Conn::open(h).await;
    c.send(format!("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n").as_bytes())
        .await;
    let head = c.head().await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.get("content-type"), Some("text/event-stream"));
    assert_eq!(head.get("cache-control"), Some("no-cache"));
    assert!(!head.has("content-length"), "{head:?}");
    assert!(!head.has("content-encoding"), "{head:?}");
    assert_eq!(head.get("transfer-encoding"), Some("chunked"));
    c
}

async fn next_text(c: &mut Conn) -> String {
    String::from_utf8(c.chunk().await.expect("stream ended")).unwrap()
}

fn default_config() -> Config {
    Config::default()
}

#[tokio::test]
async fn headers_and_retry_arrive_before_any_publish() {
    let h = start(default_config()).await;
    let mut c = open_stream(
        &h,
        "Accept: text/event-stream\r\nAccept-Encoding: gzip, br\r\n",
    )
    .await;
    assert_eq!(next_text(&mut c).await, "retry: 3000\n\n");
}

#[tokio::test]
async fn any_accept_is_served() {
    let h = start(default_config()).await;
    for accept in ["", "Accept: */*\r\n", "Accept: text/event-stream\r\n"] {
        let mut c = open_stream(&h, accept).await;
        assert_eq!(next_text(&mut c).await, "retry: 3000\n\n");
    }
}

#[tokio::test]
async fn multi_line_event_is_split() {
    let h = start(default_config()).await;
    let mut c = open_stream(&h, "").await;
    assert_eq!(next_text(&mut c).await, "retry: 3000\n\n");
    assert_eq!(publish(&h, "", b"a\r\nb\rc\nd").await, (200, "1".into()));
    assert_eq!(
        next_text(&mut c).await,
        "id: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
    );
    assert_eq!(publish(&h, "", b"").await, (200, "2".into()));
    assert_eq!(next_text(&mut c).await, "id: 2\ndata: \n\n");
    assert_eq!(publish(&h, "", b"end\n").await, (200, "3".into()));
    assert_eq!(next_text(&mut c).await, "id: 3\ndata: end\ndata: \n\n");
}

#[tokio::test]
async fn replay_after_last_event_id_then_live() {
    let h = start(default_config()).await;
    for d in ["one", "two", "three"] {
        publish(&h, "", d.as_bytes()).await;
    }
    let mut c = open_stream(&h, "Last-Event-ID: 1\r\n").await;
    assert_eq!(next_text(&mut c).await, "retry: 3000\n\n");
    let mut replay = String::new();
    while !replay.ends_with("data: three\n\n") {
        replay += &next_text(&mut c).await;
    }
    assert_eq!(replay, "id: 2\ndata: two\n\nid: 3\ndata: three\n\n");
    publish(&h, "", b"four").await;
    assert_eq!(next_text(&mut c).await, "id: 4\ndata: four\n\n");
}

#[tokio::test]
async fn unknown_last_event_id_gives_200_and_comment() {
    let h = start(default_config()).await;
    publish(&h, "", b"x").await;
    let mut c = open_stream(&h, "Last-Event-ID: no-such-id\r\n").await;
    assert_eq!(next_text(&mut c).await, "retry: 3000\n\n");
    assert_eq!(
        next_text(&mut c).await,
        ": unknown Last-Event-ID, no replay\n\n"
    );
    publish(&h, "", b"live").await;
    assert_eq!(next_text(&mut c).await, "id: 2\ndata: live\n\n");
}

#[tokio::test]
async fn explicit_event_ids() {
    let h = start(default_config()).await;
    let mut c = open_stream(&h, "").await;
    next_text(&mut c).await;
    assert_eq!(
        publish(&h, "Event-Id: abc\r\n", b"x").await,
        (200, "abc".into())
    );
    assert_eq!(next_text(&mut c).await, "id: abc\ndata: x\n\n");
    assert_eq!(publish(&h, "Event-Id: abc\r\n", b"y").await.0, 400);
    assert_eq!(
        publish(&h, "Event-Id: 1\r\n", b"y").await,
        (200, "1".into())
    );
    assert_eq!(publish(&h, "", b"z").await, (200, "2".into()));
    assert_eq!(publish(&h, "", &[0xFF, 0xFE]).await.0, 400);
    // Nothing was published by the failures.
    assert_eq!(next_text(&mut c).await, "id: 1\ndata: y\n\n");
    assert_eq!(next_text(&mut c).await, "id: 2\ndata: z\n\n");
}

#[tokio::test]
async fn finish_ends_streams_and_later_gets_204() {
    let h = start(default_config()).await;
    let mut c = open_stream(&h, "").await;
    next_text(&mut c).await;
    publish(&h, "", b"last").await;
    let (head, body) = request(&h, "POST", "/finish", "", b"").await;
    assert_eq!(head.status, 204);
    assert!(body.is_empty());
    assert_eq!(next_text(&mut c).await, "id: 1\ndata: last\n\n");
    assert_eq!(c.chunk().await, None, "stream must end after finish");

    let mut c = Conn::open(&h).await;
    c.send(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await;
    let head = c.head().await;
    assert_eq!(head.status, 204);
    assert!(!head.has("transfer-encoding"));
    c.expect_eof().await;
}

#[tokio::test]
async fn keepalive_comment_when_idle() {
    let config = Config {
        sse: SseConfig {
            keepalive: Duration::from_millis(200),
            retry_ms: 1500,
            ..SseConfig::default()
        },
        ..Config::default()
    };
    let h = start(config).await;
    let mut c = open_stream(&h, "").await;
    assert_eq!(next_text(&mut c).await, "retry: 1500\n\n");
    assert_eq!(next_text(&mut c).await, ": keep-alive\n\n");
    assert_eq!(next_text(&mut c).await, ": keep-alive\n\n");
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let h = start(default_config()).await;
    assert_eq!(request(&h, "GET", "/nope", "", b"").await.0.status, 404);
    let (head, _) = request(&h, "POST", "/events", "", b"").await;
    assert_eq!((head.status, head.get("allow")), (405, Some("GET")));
    let (head, _) = request(&h, "GET", "/publish", "", b"").await;
    assert_eq!((head.status, head.get("allow")), (405, Some("POST")));
    assert_eq!(request(&h, "GET", "/finish", "", b"").await.0.status, 405);
}

/// One event as encoded by the server: `id: N\ndata: xxxxxxxxxx\n\n`.
const EVENT_10_BYTES: usize = 24;

fn small_buffer_config() -> Config {
    Config {
        sse: SseConfig {
            // Room for two of the events below, not three.
            replay_bytes: 2 * EVENT_10_BYTES + 10,
            ..SseConfig::default()
        },
        ..Config::default()
    }
}

#[tokio::test]
async fn publish_larger_than_replay_bytes_gets_413_and_is_not_broadcast() {
    let h = start(small_buffer_config()).await;
    let mut c = open_stream(&h, "").await;
    next_text(&mut c).await;
    let (status, _) = publish(&h, "", &[b'x'; 100]).await;
    assert_eq!(status, 413);
    // Few bytes, but many lines once encoded.
    let (status, _) = publish(&h, "", &[b'\n'; 20]).await;
    assert_eq!(status, 413);
    // The refused events used no id and reached no stream.
    assert_eq!(publish(&h, "", b"ok").await, (200, "1".into()));
    assert_eq!(next_text(&mut c).await, "id: 1\ndata: ok\n\n");
}

#[tokio::test]
async fn replay_buffer_evicts_by_bytes() {
    let h = start(small_buffer_config()).await;
    for i in 1..=3 {
        assert_eq!(publish(&h, "", b"xxxxxxxxxx").await, (200, i.to_string()));
    }
    // Ids 2 and 3 fit in the buffer; 1 was evicted to make room for 3.
    let mut c = open_stream(&h, "Last-Event-ID: 2\r\n").await;
    next_text(&mut c).await;
    let replayed = next_text(&mut c).await;
    assert_eq!(replayed.len(), EVENT_10_BYTES);
    assert_eq!(replayed, "id: 3\ndata: xxxxxxxxxx\n\n");
    // An evicted id is treated like an unknown one.
    let mut c = open_stream(&h, "Last-Event-ID: 1\r\n").await;
    next_text(&mut c).await;
    assert_eq!(
        next_text(&mut c).await,
        ": unknown Last-Event-ID, no replay\n\n"
    );
    // Evicted ids are still not reused.
    assert_eq!(publish(&h, "Event-Id: 1\r\n", b"y").await.0, 400);
}

#[tokio::test]
async fn over_long_event_id_gets_400() {
    let h = start(default_config()).await;
    let mut c = open_stream(&h, "").await;
    next_text(&mut c).await;
    let too_long = "a".repeat(257);
    let (status, _) = publish(&h, &format!("Event-Id: {too_long}\r\n"), b"x").await;
    assert_eq!(status, 400);
    let longest = "b".repeat(256);
    let (status, id) = publish(&h, &format!("Event-Id: {longest}\r\n"), b"x").await;
    assert_eq!((status, id.as_str()), (200, longest.as_str()));
    assert_eq!(
        next_text(&mut c).await,
        format!("id: {longest}\ndata: x\n\n")
    );
}

#[tokio::test]
async fn publish_body_that_never_arrives_gets_408() {
    let deadline = Duration::from_millis(300);
    let h = start(Config {
        sse: SseConfig {
            publish_timeout: deadline,
            ..SseConfig::default()
        },
        ..Config::default()
    })
    .await;
    let mut c = Conn::open(&h).await;
    let started = std::time::Instant::now();
    // Announces 16 MiB, sends 5 bytes, then nothing.
    c.send(b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 16777216\r\n\r\nhello")
        .await;
    let head = c.head().await;
    let elapsed = started.elapsed();
    assert_eq!(head.status, 408, "{head:?}");
    assert_eq!(head.get("connection"), Some("close"));
    assert!(elapsed >= deadline, "{elapsed:?}");
    assert!(elapsed < deadline + Duration::from_secs(3), "{elapsed:?}");
    let len: usize = head.get("content-length").map_or(0, |v| v.parse().unwrap());
    c.take(len).await;
    c.expect_eof().await;
    // Nothing was published.
    assert_eq!(publish(&h, "", b"x").await, (200, "1".into()));
}
