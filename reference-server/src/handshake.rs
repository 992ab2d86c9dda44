//! The server side of the RFC 6455 §4.2 opening handshake, validated strictly
//! and in a fixed order. Pure functions over the request head, so they can be
//! unit-tested without sockets.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Version};
use sha1::{Digest, Sha1};

use crate::WsConfig;
use crate::deflate;

/// The GUID of RFC 6455 §1.3.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub(crate) const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
pub(crate) const SEC_WEBSOCKET_VERSION: HeaderName =
    HeaderName::from_static("sec-websocket-version");
pub(crate) const SEC_WEBSOCKET_PROTOCOL: HeaderName =
    HeaderName::from_static("sec-websocket-protocol");
pub(crate) const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");
pub(crate) const SEC_WEBSOCKET_EXTENSIONS: HeaderName =
    HeaderName::from_static("sec-websocket-extensions");

/// A handshake that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// The `Sec-WebSocket-Accept` value.
    pub accept: String,
    /// The selected subprotocol, if any.
    pub protocol: Option<String>,
    /// Negotiated extensions.
    pub extensions: Extensions,
}

/// Extensions negotiated for a connection: only permessage-deflate (RFC
/// 7692) is supported, see [`crate::deflate`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Extensions {
    pub deflate: Option<deflate::Negotiated>,
}

impl Extensions {
    /// The `Sec-WebSocket-Extensions` response value, if any.
    pub fn response(&self) -> Option<&str> {
        self.deflate.as_ref().map(|d| d.response.as_str())
    }
}

/// A handshake that failed: the status and optional extra header to answer
/// with (the caller adds `Connection: close` and a short text body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub status: StatusCode,
    pub reason: &'static str,
    pub header: Option<(HeaderName, HeaderValue)>,
}

impl Rejection {
    fn new(status: StatusCode, reason: &'static str) -> Self {
        Rejection {
            status,
            reason,
            header: None,
        }
    }
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2 step 5.4).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// OWS per RFC 9110: spaces and horizontal tabs.
fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// The elements of every field line of `name`, split as a comma-separated
/// list, trimmed of OWS, empty elements dropped.
fn list_elements<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    list_elements(headers, name).any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
}

/// Validates an upgrade request, in the documented order; the first failure
/// decides the answer.
pub(crate) fn validate<B>(req: &Request<B>, cfg: &WsConfig) -> Result<Accepted, Rejection> {
    use StatusCode as S;
    let h = req.headers();

    if req.method() != Method::GET {
        return Err(Rejection::new(
            S::METHOD_NOT_ALLOWED,
            "a WebSocket handshake must use GET",
        ));
    }
    if req.version() < Version::HTTP_11 {
        return Err(Rejection::new(
            S::BAD_REQUEST,
            "a WebSocket handshake needs HTTP/1.1",
        ));
    }
    if h.get_all(header::HOST).iter().count() != 1 {
        return Err(Rejection::new(
            S::BAD_REQUEST,
            "exactly one Host header is required",
        ));
    }
    if !has_token(h, &header::UPGRADE, "websocket") {
        return Err(Rejection::new(
            S::BAD_REQUEST,
            "Upgrade must contain the token websocket",
        ));
    }
    if !has_token(h, &header::CONNECTION, "upgrade") {
        return Err(Rejection::new(
            S::BAD_REQUEST,
            "Connection must contain the token upgrade",
        ));
    }

    let mut versions = h.get_all(&SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (Some(_), Some(_)) => {
            return Err(Rejection::new(
                S::BAD_REQUEST,
                "Sec-WebSocket-Version sent more than once",
            ));
        }
        (Some(v), None) if trim_ows(v.as_bytes()) == b"13" => {}
        _ => {
            return Err(Rejection {
                status: S::UPGRADE_REQUIRED,
                reason: "only Sec-WebSocket-Version 13 is supported",
                header: Some((SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"))),
            });
        }
    }

    let mut keys = h.get_all(&SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => trim_ows(k.as_bytes()),
        _ => {
            return Err(Rejection::new(
                S::BAD_REQUEST,
                "exactly one Sec-WebSocket-Key is required",
            ));
        }
    };
    // STANDARD is the RFC 4648 alphabet with required canonical padding and
    // no stray trailing bits.
    match STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => {
            return Err(Rejection::new(
                S::BAD_REQUEST,
                "Sec-WebSocket-Key must be base64 of 16 bytes",
            ));
        }
    }
    // Valid base64 is ASCII.
    let key = std::str::from_utf8(key).expect("base64 is ASCII");

    // A handshake is a GET without content: with a body, where the frames
    // start would be ambiguous.
    let has_body = h.contains_key(header::TRANSFER_ENCODING)
        || h.get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| trim_ows(v.as_bytes()) != b"0");
    if has_body {
        return Err(Rejection::new(
            S::BAD_REQUEST,
            "a WebSocket handshake must not carry a body",
        ));
    }

    if let Some(allowed) = &cfg.allowed_origins {
        for origin in h.get_all(header::ORIGIN) {
            let origin = trim_ows(origin.as_bytes());
            if !allowed
                .iter()
                .any(|a| a.as_bytes().eq_ignore_ascii_case(origin))
            {
                return Err(Rejection::new(S::FORBIDDEN, "Origin not allowed"));
            }
        }
    }

    // First protocol in the client's order that we support; never one that
    // was not offered.
    let protocol = list_elements(h, &SEC_WEBSOCKET_PROTOCOL)
        .find(|offered| cfg.subprotocols.iter().any(|p| p.as_bytes() == *offered))
        .map(|p| String::from_utf8_lossy(p).into_owned());

    // The first acceptable permessage-deflate offer, if enabled; offers
    // that cannot be accepted are declined without failing the handshake.
    let extensions = Extensions {
        deflate: if cfg.deflate {
            deflate::negotiate(
                h.get_all(&SEC_WEBSOCKET_EXTENSIONS)
                    .iter()
                    .map(|v| v.as_bytes()),
            )
        } else {
            None
        },
    };

    Ok(Accepted {
        accept: accept_key(key),
        protocol,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> WsConfig {
        WsConfig::default()
    }

    fn base() -> hyper::http::request::Builder {
        Request::get("/")
            .header("Host", "127.0.0.1")
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    fn status(r: Result<Accepted, Rejection>) -> u16 {
        match r {
            Ok(_) => 101,
            Err(e) => e.status.as_u16(),
        }
    }

    #[test]
    fn rfc_example_accept() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let ok = validate(&base().body(()).unwrap(), &cfg()).unwrap();
        assert_eq!(ok.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(ok.protocol, None);
    }

    #[test]
    fn token_lists() {
        let req = Request::get("/")
            .header("host", "x")
            .header("upgrade", "foo, WebSocket")
            .header("connection", "keep-alive, UPGRADE")
            .header("sec-websocket-version", " 13 ")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .unwrap();
        assert_eq!(status(validate(&req, &cfg())), 101);
        let req = base().header("Connection", "keep-alive").body(()).unwrap();
        assert_eq!(
            status(validate(&req, &cfg())),
            101,
            "second Connection line holds upgrade"
        );
        let mut req = base().body(()).unwrap();
        req.headers_mut().insert(
            "connection",
            HeaderValue::from_static("keep-alive, upgrades"),
        );
        assert_eq!(status(validate(&req, &cfg())), 400);
        let mut req = base().body(()).unwrap();
        req.headers_mut()
            .insert("upgrade", HeaderValue::from_static("websocket2"));
        assert_eq!(status(validate(&req, &cfg())), 400);
    }

    #[test]
    fn order_and_codes() {
        let mut req = base().method("POST").body(()).unwrap();
        req.headers_mut().remove("sec-websocket-version");
        assert_eq!(status(validate(&req, &cfg())), 405);
        let req = base().version(Version::HTTP_10).body(()).unwrap();
        assert_eq!(status(validate(&req, &cfg())), 400);
        let mut req = base().body(()).unwrap();
        req.headers_mut().remove("host");
        assert_eq!(status(validate(&req, &cfg())), 400);
        let mut req = base().body(()).unwrap();
        req.headers_mut().remove("sec-websocket-version");
        let rej = validate(&req, &cfg()).unwrap_err();
        assert_eq!(rej.status, 426);
        assert_eq!(rej.header.unwrap().1, "13");
        let mut req = base().body(()).unwrap();
        req.headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("8"));
        assert_eq!(status(validate(&req, &cfg())), 426);
        let req = base()
            .header("Sec-WebSocket-Version", "13")
            .body(())
            .unwrap();
        assert_eq!(status(validate(&req, &cfg())), 400);
        for bad in [
            "",
            "abc",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZR==",
            "AAAAAAAAAAAAAAAAAAAAAAAAAA==",
        ] {
            let mut req = base().body(()).unwrap();
            req.headers_mut()
                .insert("sec-websocket-key", HeaderValue::from_str(bad).unwrap());
            assert_eq!(status(validate(&req, &cfg())), 400, "key {bad:?}");
        }
        let req = base()
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .unwrap();
        assert_eq!(status(validate(&req, &cfg())), 400, "duplicate key");
    }

    #[test]
    fn origin_and_subprotocols() {
        let c = WsConfig {
            allowed_origins: Some(vec!["http://good.test".into()]),
            subprotocols: vec!["chat".into(), "superchat".into()],
            ..WsConfig::default()
        };
        let req = base()
            .header("Origin", "http://evil.test")
            .body(())
            .unwrap();
        assert_eq!(status(validate(&req, &c)), 403);
        let req = base()
            .header("Origin", "http://good.test")
            .body(())
            .unwrap();
        assert_eq!(status(validate(&req, &c)), 101);
        let req = base()
            .header("Sec-WebSocket-Protocol", "x, superchat")
            .header("Sec-WebSocket-Protocol", "chat")
            .body(())
            .unwrap();
        assert_eq!(
            validate(&req, &c).unwrap().protocol.as_deref(),
            Some("superchat")
        );
        let req = base()
            .header("Sec-WebSocket-Protocol", "other")
            .body(())
            .unwrap();
        assert_eq!(validate(&req, &c).unwrap().protocol, None);
        let req = base()
            .header("Sec-WebSocket-Protocol", "chat")
            .body(())
            .unwrap();
        assert_eq!(validate(&req, &cfg()).unwrap().protocol, None);
    }
}
