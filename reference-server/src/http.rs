//! One connection: the TLS handshake when the server serves TLS, HTTP/1.1
//! through hyper (the SSE routes and the WebSocket handshake), then, after
//! an upgrade, the WebSocket session.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::stats::Gauge;
use crate::{Shared, handshake, sse, ws};

/// A client that has not finished the TLS handshake by then is dropped.
const TLS_HANDSHAKE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Largest accepted `POST /publish` body.
const MAX_PUBLISH_BODY: usize = 16 << 20;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A WebSocket upgrade accepted by the service, run by the connection task
/// once hyper has sent the 101 and released the socket.
type PendingUpgrade = (OnUpgrade, handshake::Accepted);

pub(crate) async fn serve_connection(tcp: TcpStream, shared: Arc<Shared>) {
    let _connection = shared.gauges.hold(Gauge::Connections);
    // Echoes and pongs are small writes that must go out at once.
    let _ = tcp.set_nodelay(true);
    match shared.tls.clone() {
        None => serve(tcp, &shared).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_WITHIN, acceptor.accept(tcp));
            if let Ok(Ok(stream)) = handshake.await {
                serve(stream, &shared).await;
            }
        }
    }
}

async fn serve<Io>(io: Io, shared: &Arc<Shared>)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Each phase in its own allocation: a task's future is as large as its
    // largest state for its whole life, and a WebSocket session may live for
    // hours after the HTTP phase ended.
    let upgrade = Box::pin(http(io, shared)).await;
    if let Some((on_upgrade, accepted)) = upgrade {
        if let Ok(upgraded) = on_upgrade.await {
            Box::pin(ws::serve(upgraded, shared, accepted)).await;
        }
    }
}

/// Serves HTTP requests until the connection ends or is upgraded; returns
/// the accepted upgrade, if any.
async fn http<Io>(io: Io, shared: &Arc<Shared>) -> Option<PendingUpgrade>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let pending: Arc<Mutex<Option<PendingUpgrade>>> = Arc::default();
    let service = {
        let pending = pending.clone();
        let shared = shared.clone();
        service_fn(move |req| {
            let pending = pending.clone();
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(route(req, &shared, &pending).await) }
        })
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    conn.await.ok()?;
    pending.lock().unwrap_or_else(|p| p.into_inner()).take()
}

async fn route(
    mut req: Request<Incoming>,
    shared: &Shared,
    pending: &Mutex<Option<PendingUpgrade>>,
) -> Response<Body> {
    if req.headers().contains_key(header::UPGRADE) {
        return match handshake::validate(&req, &shared.ws) {
            Ok(accepted) => {
                let mut resp = Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header(header::UPGRADE, "websocket")
                    .header(header::CONNECTION, "Upgrade")
                    .header(handshake::SEC_WEBSOCKET_ACCEPT, &accepted.accept);
                if let Some(p) = &accepted.protocol {
                    resp = resp.header(handshake::SEC_WEBSOCKET_PROTOCOL, p.as_str());
                }
                if let Some(ext) = accepted.extensions.response() {
                    resp = resp.header(handshake::SEC_WEBSOCKET_EXTENSIONS, ext);
                }
                let resp = resp.body(empty()).expect("valid response");
                *pending.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((hyper::upgrade::on(&mut req), accepted));
                resp
            }
            Err(rejection) => {
                let mut resp = text(rejection.status, rejection.reason);
                let headers = resp.headers_mut();
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
                if let Some((name, value)) = rejection.header {
                    headers.insert(name, value);
                }
                resp
            }
        };
    }

    match (req.uri().path(), req.method()) {
        ("/events", &Method::GET) => events(&req, shared),
        ("/publish", &Method::POST) => publish(req, shared).await,
        ("/finish", &Method::POST) => {
            shared.hub.finish();
            status_only(StatusCode::NO_CONTENT)
        }
        ("/events", _) => method_not_allowed("GET"),
        ("/publish" | "/finish", _) => method_not_allowed("POST"),
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

fn events(req: &Request<Incoming>, shared: &Shared) -> Response<Body> {
    // `Accept` and `Accept-Encoding` are ignored on purpose: any Accept is
    // served, and the stream is never compressed.
    let last_event_id = req.headers().get("last-event-id").map(|v| v.as_bytes());
    match shared.hub.subscribe(last_event_id) {
        sse::Subscription::Finished => status_only(StatusCode::NO_CONTENT),
        sse::Subscription::Live(stream) => {
            let held = shared.gauges.hold(Gauge::EventStreams);
            let chunks = futures_util::stream::unfold((stream, held), |(mut s, held)| async move {
                let chunk = s.next_chunk().await?;
                Some((Ok::<_, Infallible>(Frame::data(chunk)), (s, held)))
            });
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(BodyExt::boxed_unsync(StreamBody::new(chunks)))
                .expect("valid response")
        }
    }
}

async fn publish(req: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let mut ids = req.headers().get_all("event-id").iter();
    let id = match (ids.next(), ids.next()) {
        (None, _) => None,
        (Some(v), None) => match std::str::from_utf8(v.as_bytes()) {
            Ok(s) => Some(s.to_owned()),
            Err(_) => return text(StatusCode::BAD_REQUEST, "Event-Id must be UTF-8"),
        },
        (Some(_), Some(_)) => return text(StatusCode::BAD_REQUEST, "more than one Event-Id"),
    };
    // A deadline for the whole body: without it a client announcing a large
    // Content-Length and then trickling (or sending nothing) would hold this
    // task and up to MAX_PUBLISH_BODY of buffer forever.
    let collect = Limited::new(req.into_body(), MAX_PUBLISH_BODY).collect();
    let Ok(collected) = tokio::time::timeout(shared.publish_timeout, collect).await else {
        // The rest of the body is never read, so the connection cannot be
        // reused; say so.
        let mut resp = text(StatusCode::REQUEST_TIMEOUT, "body not received in time");
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    };
    let body = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
        }
        Err(_) => return text(StatusCode::BAD_REQUEST, "could not read the body"),
    };
    let Ok(data) = std::str::from_utf8(&body) else {
        return text(StatusCode::BAD_REQUEST, "body must be UTF-8");
    };
    match shared.hub.publish(id, data) {
        Ok(id) => text(StatusCode::OK, id),
        Err(e @ sse::PublishError::TooLarge) => text(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        Err(e) => text(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

fn empty() -> Body {
    BodyExt::boxed_unsync(Empty::new())
}

fn status_only(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(empty())
        .expect("valid response")
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(BodyExt::boxed_unsync(Full::new(Bytes::from(body.into()))))
        .expect("valid response")
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}
