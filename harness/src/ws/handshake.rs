//! The opening handshake (RFC 6455 §4): building upgrade requests, some of
//! them deliberately wrong, and reading the HTTP response with a size cap.

use base64::Engine;
use sha1::{Digest, Sha1};

use super::deflate::{self, Agreed, Offer};
use super::step::UpgradeSpec;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest response head the harness will buffer.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2 step 5.4).
pub fn accept_for(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

pub fn random_key() -> String {
    let mut k = [0u8; 16];
    fastrand::fill(&mut k);
    base64::engine::general_purpose::STANDARD.encode(k)
}

/// An HTTP/1.1 request head, kept as ordered (name, value) pairs so that
/// cases can reorder, duplicate and mis-case headers.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// A valid upgrade for `host`/`path` with `key`.
    pub fn upgrade(host: &str, path: &str, key: &str, protocols: &[String]) -> Self {
        let mut headers = vec![
            ("Host".to_string(), host.to_string()),
            ("Upgrade".to_string(), "websocket".to_string()),
            ("Connection".to_string(), "Upgrade".to_string()),
            ("Sec-WebSocket-Key".to_string(), key.to_string()),
            ("Sec-WebSocket-Version".to_string(), "13".to_string()),
        ];
        if !protocols.is_empty() {
            headers.push(("Sec-WebSocket-Protocol".to_string(), protocols.join(", ")));
        }
        Request {
            method: "GET".into(),
            path: path.into(),
            version: "HTTP/1.1".into(),
            headers,
        }
    }

    /// Applies a case's modifications to a valid upgrade.
    pub fn modified(mut self, spec: &UpgradeSpec) -> Self {
        if let Some(m) = &spec.method {
            self.method = m.clone();
        }
        if let Some(v) = &spec.version {
            self.version = v.clone();
        }
        for name in &spec.remove {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
        for (name, value) in &spec.set {
            match self
                .headers
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                Some(h) => *h = (name.clone(), value.clone()),
                None => self.headers.push((name.clone(), value.clone())),
            }
        }
        for (name, value) in &spec.add {
            self.headers.push((name.clone(), value.clone()));
        }
        if let Some(n) = spec.pad {
            self.headers
                .push(("X-Pushspec-Pad".to_string(), "a".repeat(n)));
        }
        self
    }

    /// Every value of the `name` header, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The key this request carries (the first one), if any.
    pub fn key(&self) -> Option<&str> {
        self.header("Sec-WebSocket-Key")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{} {} {}\r\n", self.method, self.path, self.version);
        for (n, v) in &self.headers {
            s.push_str(n);
            s.push_str(": ");
            s.push_str(v);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    /// The request as shown in transcripts: long values shortened (extension
    /// offers only when very long: they are what a deflate case is about).
    pub fn describe(&self) -> String {
        let mut s = format!("{} {} {}", self.method, self.path, self.version);
        for (n, v) in &self.headers {
            let max = if n.eq_ignore_ascii_case("Sec-WebSocket-Extensions") {
                512
            } else {
                80
            };
            let v = if v.len() > max {
                let cut = (0..=40).rev().find(|i| v.is_char_boundary(*i)).unwrap_or(0);
                format!("{}... ({} bytes)", &v[..cut], v.len())
            } else {
                v.clone()
            };
            s.push_str(&format!("\n{n}: {v}"));
        }
        s
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub version: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResponseError {
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    #[error("response head exceeds {MAX_RESPONSE_HEAD} bytes")]
    TooLarge,
}

impl Response {
    /// Parses a response head from the front of `buf`: `Ok(None)` when
    /// incomplete, else the response and the head's length.
    pub fn parse(buf: &[u8]) -> Result<Option<(Response, usize)>, ResponseError> {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut r = httparse::Response::new(&mut headers);
        match r.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let headers = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).trim().to_string(),
                        )
                    })
                    .collect();
                Ok(Some((
                    Response {
                        version: r.version.unwrap_or(1),
                        status: r.code.unwrap_or(0),
                        reason: r.reason.unwrap_or("").to_string(),
                        headers,
                    },
                    n,
                )))
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
                Err(ResponseError::TooLarge)
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(e) => Err(ResponseError::Malformed(e.to_string())),
        }
    }

    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.headers(name).next()
    }

    /// Whether any `name` header's comma-separated list holds `token`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn describe(&self) -> String {
        let mut s = format!("HTTP/1.{} {} {}", self.version, self.status, self.reason);
        for (n, v) in &self.headers {
            s.push_str(&format!("\n{n}: {v}"));
        }
        s
    }

    /// Checks a 101 answer to a request with `key` that offered no
    /// extension (RFC 6455 §4.2.2, §9.1): the problems found, empty when
    /// the upgrade is valid.
    pub fn upgrade_problems(&self, key: Option<&str>, offered: &[String]) -> Vec<String> {
        let mut p = self.upgrade_problems_but_extensions(key, offered);
        if self.status == 101
            && let Err(e) = self.extension_agreement(&[])
        {
            p.push(e);
        }
        p
    }

    /// [`Response::upgrade_problems`] without the extension answer, which
    /// [`Response::extension_agreement`] checks against the offers made.
    pub fn upgrade_problems_but_extensions(
        &self,
        key: Option<&str>,
        offered: &[String],
    ) -> Vec<String> {
        let mut p = Vec::new();
        if self.status != 101 {
            p.push(format!("status {} instead of 101", self.status));
            return p;
        }
        if !self.has_token("Upgrade", "websocket") {
            p.push("`Upgrade` does not hold the token `websocket`".into());
        }
        if !self.has_token("Connection", "upgrade") {
            p.push("`Connection` does not hold the token `Upgrade`".into());
        }
        match (key, self.header("Sec-WebSocket-Accept")) {
            (Some(k), Some(a)) if a == accept_for(k) => {}
            (Some(k), Some(a)) => p.push(format!(
                "`Sec-WebSocket-Accept` is {a:?}, expected {:?}",
                accept_for(k)
            )),
            (_, None) => p.push("`Sec-WebSocket-Accept` is missing".into()),
            (None, Some(_)) => {}
        }
        if let Some(proto) = self.header("Sec-WebSocket-Protocol")
            && !offered.iter().any(|o| o == proto)
        {
            p.push(format!(
                "selected subprotocol {proto:?} that was not offered"
            ));
        }
        p
    }

    /// Checks the `Sec-WebSocket-Extensions` answer against the
    /// permessage-deflate offers of the request (none: no extension may be
    /// answered): the agreement, or why the answer is invalid (RFC 6455
    /// §9.1, RFC 7692 §5, §7.1).
    pub fn extension_agreement(&self, offers: &[Offer]) -> Result<Option<Agreed>, String> {
        let values: Vec<&str> = self.headers("Sec-WebSocket-Extensions").collect();
        deflate::check_response(offers, &values).map_err(|e| {
            format!(
                "invalid `Sec-WebSocket-Extensions` answer {:?}: {e}",
                values.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_accept() {
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn modifications_apply_in_order() {
        let r = Request::upgrade("h", "/", "k", &[]).modified(&UpgradeSpec {
            method: Some("POST".into()),
            set: vec![("connection".into(), "keep-alive, Upgrade".into())],
            add: vec![("Sec-WebSocket-Key".into(), "k2".into())],
            remove: vec!["host".into()],
            ..Default::default()
        });
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert!(text.starts_with("POST / HTTP/1.1\r\n"));
        assert!(text.contains("connection: keep-alive, Upgrade\r\n"));
        assert!(!text.contains("Host"));
        assert_eq!(text.matches("Sec-WebSocket-Key").count(), 2);
    }

    #[test]
    fn response_parse_and_checks() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: keep-alive, upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x00";
        let (r, n) = Response::parse(raw).unwrap().unwrap();
        assert_eq!(n, raw.len() - 2);
        assert!(
            r.upgrade_problems(Some("dGhlIHNhbXBsZSBub25jZQ=="), &[])
                .is_empty()
        );
        assert_eq!(r.upgrade_problems(Some("other"), &[]).len(), 1);
        assert_eq!(Response::parse(b"HTTP/1.1 101 OK\r\n").unwrap(), None);
        // No extension may be answered without an offer; one answered to an
        // offer is checked against it.
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
        let (r, _) = Response::parse(raw).unwrap().unwrap();
        let key = Some("dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(r.upgrade_problems(key, &[]).len(), 1);
        assert!(r.upgrade_problems_but_extensions(key, &[]).is_empty());
        assert!(
            r.extension_agreement(&[])
                .unwrap_err()
                .contains("not offered")
        );
        assert_eq!(
            r.extension_agreement(&[Offer::default()]),
            Ok(Some(Agreed::default()))
        );
        assert!(Response::parse(b"garbage\r\n\r\n").is_err());
    }
}
