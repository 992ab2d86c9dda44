//! Is the target there at all, and what is it? Quick looks before the cases
//! run, so an absent, mute or mistaken target gets a clear answer in seconds
//! instead of hundreds of identical timeouts, and so capabilities the wire
//! shows (permessage-deflate) need no profile.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sse::http::{self, Item, Limits, StreamConn};
use crate::target::HttpTarget;
use crate::target::WsTarget;
use crate::wire::deflate::Offer;
use crate::wire::handshake::random_key;
use crate::wire::http::{MAX_RESPONSE_HEAD, Request, Response};

/// How long the probes wait for a connection (TCP and, for TLS targets,
/// the TLS handshake).
pub const CONNECT_WITHIN: Duration = Duration::from_secs(3);

/// One standard opening handshake; `Err` says why it did not complete.
/// Tried twice, so one dropped connection does not condemn a target.
pub async fn ws_handshake(target: &WsTarget, within: Duration) -> Result<(), String> {
    match handshake_once(target, within, None).await {
        Ok(_) => Ok(()),
        Err(_) => handshake_once(target, within, None).await.map(|_| ()),
    }
}

/// Whether the target accepts the plainest permessage-deflate offer
/// (RFC 7692 §5) with a valid answer.
pub async fn ws_deflate(target: &WsTarget, within: Duration) -> bool {
    let offer = Offer {
        client_max_window_bits: Some(None),
        ..Offer::default()
    };
    matches!(handshake_once(target, within, Some(&offer)).await, Ok(true))
}

/// A valid handshake: `Ok(true)` when the offer (if any) was accepted.
async fn handshake_once(
    target: &WsTarget,
    within: Duration,
    offer: Option<&Offer>,
) -> Result<bool, String> {
    let mut stream = target
        .connect(CONNECT_WITHIN)
        .await
        .map_err(|e| e.to_string())?;
    let key = random_key();
    let mut req = Request::upgrade(&target.authority(), &target.path, &key, &[]);
    if let Some(o) = offer {
        req.add("Sec-WebSocket-Extensions", o.header_value());
    }
    let exchange = async {
        let sent = async {
            stream.write_all(&req.to_bytes()).await?;
            stream.flush().await
        };
        sent.await
            .map_err(|e| format!("cannot send the upgrade request: {e}"))?;
        let mut buf = Vec::with_capacity(1024);
        loop {
            if !target.transport.is_tls() && crate::wire::transport::looks_like_tls(&buf) {
                return Err(
                    "the target answered with TLS: it is a TLS listener (use wss://)".to_string(),
                );
            }
            if let Some((resp, _)) = Response::parse(&buf).map_err(|e| e.to_string())? {
                return Ok(resp);
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) => {
                    return Err("the target closed the connection without answering".to_string());
                }
                Ok(n) if buf.len() + n <= MAX_RESPONSE_HEAD + 4096 => {
                    buf.extend_from_slice(&chunk[..n])
                }
                Ok(_) => return Err(format!("response head exceeds {MAX_RESPONSE_HEAD} bytes")),
                Err(e) => return Err(format!("connection reset: {e}")),
            }
        }
    };
    let resp = match tokio::time::timeout(within, exchange).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(format!(
                "no complete response to the upgrade request within {}",
                crate::text::duration(within)
            ));
        }
    };
    let problems = resp.upgrade_problems_but_extensions(Some(&key), &[]);
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let offers: Vec<Offer> = offer.into_iter().cloned().collect();
    match resp.extension_agreement(&offers) {
        Ok(agreed) => Ok(agreed.is_some()),
        Err(e) => Err(e),
    }
}

/// Why the SSE target is not an event stream, with a hint for the user.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAStream {
    pub why: String,
    pub hint: &'static str,
}

/// One `GET` of the stream URL: it must answer `200` with
/// `Content-Type: text/event-stream`, and the whole head must arrive
/// within `within`.
pub async fn sse_stream(target: &HttpTarget, within: Duration) -> Result<(), NotAStream> {
    let mut req = http::request("GET", target);
    req.set("Accept", "text/event-stream");
    req.set("Cache-Control", "no-cache");
    let limits = Limits {
        io_timeout: within,
        max_body: 0,
    };
    let url = target.url();
    let not = |why: String, hint| NotAStream { why, hint };
    let mut conn = StreamConn::open(target, &req, limits)
        .await
        .map_err(|e| not(e, "is the server running and listening there?"))?;
    let first = tokio::time::timeout(within, conn.items.recv()).await;
    let response = match first {
        Err(_) => {
            return Err(not(
                format!(
                    "{url} sent no complete response head within {}",
                    crate::text::duration(within)
                ),
                "is --sse the URL of an SSE endpoint? (raise --timeout for a slow server)",
            ));
        }
        Ok(None) | Ok(Some(Item::End { .. })) => {
            return Err(not(
                format!("{url} closed the connection without answering"),
                "is --sse the URL of an SSE endpoint?",
            ));
        }
        Ok(Some(Item::Invalid(e))) | Ok(Some(Item::Unsupported(e))) => {
            return Err(not(
                format!("{url} did not answer with valid HTTP/1.1: {e}"),
                "is --sse an HTTP/1.1 SSE endpoint? (a TLS listener needs https://)",
            ));
        }
        Ok(Some(Item::Body { .. })) => {
            return Err(not(
                format!("{url} sent a body before a head"),
                "is --sse an HTTP/1.1 SSE endpoint?",
            ));
        }
        Ok(Some(Item::Head { response, .. })) => response,
    };
    let ct = response.header("Content-Type").unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    let looks_ws = response.has_token("Upgrade", "websocket")
        || response.header("Sec-WebSocket-Version").is_some()
        || matches!(response.status, 101 | 426);
    // A WebSocket endpoint may answer a plain GET with anything (404,
    // 400, 426): one upgrade attempt at the same URL tells.
    let is_ws = || async {
        let ws = WsTarget {
            host: target.host.clone(),
            port: target.port,
            path: target.path.clone(),
            transport: target.transport.clone(),
        };
        looks_ws || handshake_once(&ws, within, None).await.is_ok()
    };
    if response.status != 200 {
        let hint = if is_ws().await {
            "this looks like a WebSocket endpoint: give it as --ws"
        } else if response.status == 404 {
            "check the path of --sse (the URL that streams events)"
        } else {
            "--sse must be the URL that answers a GET with 200 and an event stream"
        };
        return Err(not(
            format!(
                "{url} answered {} {} instead of 200",
                response.status, response.reason
            ),
            hint,
        ));
    }
    if !media.eq_ignore_ascii_case("text/event-stream") {
        if is_ws().await {
            return Err(not(
                format!("{url} answered 200 with Content-Type {ct:?}, not an event stream"),
                "this looks like a WebSocket endpoint: give it as --ws",
            ));
        }
        return Err(not(
            format!(
                "{url} answered 200 with Content-Type {:?}, not text/event-stream",
                ct
            ),
            "is --sse the stream URL rather than a page or an API?",
        ));
    }
    Ok(())
}
