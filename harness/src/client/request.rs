//! The client's opening request, read and judged from the server side
//! (RFC 6455 §4.1), and the response the harness writes back, valid or
//! with the defects a case asks for.
//!
//! Owns no routing: `client::serve` decides what a path means.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::case::client_step::{AcceptSpec, ResponseSpec};
use crate::wire::handshake::accept_for;

/// Largest request head the harness buffers.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Headers a request head may have.
const MAX_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// The head as it arrived, for the transcript.
    pub raw: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no request head within {0:?}")]
    Timeout(Duration),
    #[error("the connection closed before a request head")]
    Closed,
    #[error("request head larger than {MAX_REQUEST_HEAD} bytes")]
    TooLarge,
    #[error("malformed request head: {0}")]
    Malformed(String),
    #[error("reading the request: {0}")]
    Io(#[from] std::io::Error),
}

impl Request {
    /// Reads one request head; returns it and the bytes that followed it.
    pub async fn read(
        stream: &mut TcpStream,
        within: Duration,
    ) -> Result<(Request, Vec<u8>), ReadError> {
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = Vec::with_capacity(1024);
        loop {
            if let Some((req, used)) = Request::parse(&buf)? {
                return Ok((req, buf[used..].to_vec()));
            }
            if buf.len() > MAX_REQUEST_HEAD {
                return Err(ReadError::TooLarge);
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
                .await
                .map_err(|_| ReadError::Timeout(within))??;
            if n == 0 {
                return Err(ReadError::Closed);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, ReadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => Ok(Some((
                Request {
                    method: req.method.unwrap_or_default().to_string(),
                    version: req.version.unwrap_or(0),
                    target: req.path.unwrap_or_default().to_string(),
                    headers: req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                    raw: String::from_utf8_lossy(&buf[..n]).trim_end().to_string(),
                },
                n,
            ))),
            Ok(httparse::Status::Partial) => Ok(None),
            Err(e) => Err(ReadError::Malformed(e.to_string())),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// A query parameter, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let q = self.target.split_once('?')?.1;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// What is wrong with this request as a client's opening handshake
    /// (RFC 6455 §4.1), in the order the section lists the rules. `seen`
    /// holds the keys of earlier connections in the run: a key must be
    /// "randomly selected" for each connection.
    pub fn problems(&self, seen: &Mutex<HashSet<String>>) -> Vec<String> {
        let mut out = Vec::new();
        if self.method != "GET" {
            out.push(format!("method {} instead of GET (§4.1)", self.method));
        }
        if self.version != 1 {
            out.push("HTTP/1.0 instead of HTTP/1.1 (§4.1)".to_string());
        }
        if self.header("host").is_none_or(|h| h.trim().is_empty()) {
            out.push("no Host header (§4.1 item 4)".to_string());
        }
        if !self.has_token("upgrade", "websocket") {
            out.push(format!(
                "Upgrade is {:?}, not websocket (§4.1 item 5)",
                self.header("upgrade").unwrap_or("(absent)")
            ));
        }
        if !self.has_token("connection", "upgrade") {
            out.push(format!(
                "Connection is {:?}, without the Upgrade token (§4.1 item 6)",
                self.header("connection").unwrap_or("(absent)")
            ));
        }
        match self.header("sec-websocket-version") {
            Some(v) if v.trim() == "13" => {}
            v => out.push(format!(
                "Sec-WebSocket-Version is {:?}, not 13 (§4.1 item 9)",
                v.unwrap_or("(absent)")
            )),
        }
        match self.key_problem() {
            Some(p) => out.push(p),
            None => {
                let key = self.header("sec-websocket-key").unwrap_or("").trim();
                let fresh = seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.to_string());
                if !fresh {
                    out.push(format!(
                        "Sec-WebSocket-Key {key} was already used by an earlier connection: the nonce must be random for each connection (§4.1 item 7)"
                    ));
                }
            }
        }
        out
    }

    fn key_problem(&self) -> Option<String> {
        let keys: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"))
            .map(|(_, v)| v.as_str())
            .collect();
        let [key] = keys.as_slice() else {
            return Some(format!(
                "{} Sec-WebSocket-Key headers instead of one (§4.1 item 7)",
                keys.len()
            ));
        };
        match base64::engine::general_purpose::STANDARD.decode(key.trim()) {
            Ok(b) if b.len() == 16 => None,
            Ok(b) => Some(format!(
                "Sec-WebSocket-Key {key:?} decodes to {} bytes, not 16 (§4.1 item 7)",
                b.len()
            )),
            Err(_) => Some(format!(
                "Sec-WebSocket-Key {key:?} is not base64 (§4.1 item 7)"
            )),
        }
    }

    /// The response head the case asks for.
    pub fn response(&self, spec: &ResponseSpec) -> Vec<u8> {
        let status = spec.status.unwrap_or(101);
        let reason = match status {
            101 => "Switching Protocols",
            200 => "OK",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            _ => "Status",
        };
        let key = self.header("sec-websocket-key").unwrap_or("").trim();
        let mut headers: Vec<(String, String)> = vec![
            ("Upgrade".into(), "websocket".into()),
            ("Connection".into(), "Upgrade".into()),
        ];
        match spec.accept {
            AcceptSpec::Correct => headers.push(("Sec-WebSocket-Accept".into(), accept_for(key))),
            // The accept value of a key the client did not send.
            AcceptSpec::Wrong => headers.push((
                "Sec-WebSocket-Accept".into(),
                accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            )),
            AcceptSpec::Missing => {}
        }
        headers.retain(|(n, _)| !spec.remove.iter().any(|r| r.eq_ignore_ascii_case(n)));
        headers.extend(spec.add.iter().map(|(n, v)| (n.clone(), v.clone())));
        if status != 101 {
            headers.push(("Content-Length".into(), "0".into()));
        }
        let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
        for (n, v) in headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// A plain HTTP error response, for paths and cases that do not exist.
pub fn error_response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Request {
        Request::parse(text.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn query_and_path() {
        let r = req("GET /runCase?case=12&agent=my%20client HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.path(), "/runCase");
        assert_eq!(r.query("case").as_deref(), Some("12"));
        assert_eq!(r.query("agent").as_deref(), Some("my client"));
        assert_eq!(r.query("none"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[test]
    fn request_problems() {
        let seen = Mutex::new(HashSet::new());
        let good = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        assert!(req(good).problems(&seen).is_empty());
        let again = req(good).problems(&seen);
        assert!(again[0].contains("already used"), "{again:?}");
        let bad = "POST / HTTP/1.0\r\nUpgrade: h2c\r\nSec-WebSocket-Key: abc\r\n\r\n";
        let p = req(bad).problems(&seen);
        assert_eq!(p.len(), 7, "{p:?}");
    }
}
