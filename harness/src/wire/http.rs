//! HTTP/1.1 heads as the harness writes and reads them, for both protocols:
//! a request head kept as ordered pairs (so cases can reorder, duplicate and
//! mis-case headers) and a response head read with a size cap. Imports
//! nothing from the rest of the crate.

/// Largest response head the harness will buffer.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// `host:port` as it goes in a `Host` header: the port is left out when it
/// is 80, and an IPv6 address is bracketed.
pub fn authority(host: &str, port: u16) -> String {
    if port == 80 {
        host.to_string()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
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
    /// A valid WebSocket upgrade for `host`/`path` with `key`.
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
}
