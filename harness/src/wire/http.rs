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

/// An HTTP/1.1 request, for both protocols: the head kept as ordered
/// (name, value) pairs so that cases can reorder, duplicate and mis-case
/// headers, values as raw bytes (a `Last-Event-ID` or event id may be
/// non-ASCII UTF-8), and a body (empty for an upgrade or a `GET`).
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub version: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    /// `method path HTTP/1.1` with a `Host` header and nothing else.
    pub fn new(method: &str, host: &str, path: &str) -> Self {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            version: "HTTP/1.1".into(),
            headers: vec![("Host".into(), host.as_bytes().to_vec())],
            body: Vec::new(),
        }
    }

    /// A valid WebSocket upgrade for `host`/`path` with `key`.
    pub fn upgrade(host: &str, path: &str, key: &str, protocols: &[String]) -> Self {
        let mut r = Request::new("GET", host, path);
        r.add("Upgrade", "websocket");
        r.add("Connection", "Upgrade");
        r.add("Sec-WebSocket-Key", key);
        r.add("Sec-WebSocket-Version", "13");
        if !protocols.is_empty() {
            r.add("Sec-WebSocket-Protocol", protocols.join(", "));
        }
        r
    }

    /// Appends a header, even if one of that name is already there.
    pub fn add(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.headers.push((name.to_string(), value.into()));
    }

    /// Replaces the first header of that name (case-insensitively) or adds it.
    pub fn set(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        let value = value.into();
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(h) => *h = (name.to_string(), value),
            None => self.headers.push((name.to_string(), value)),
        }
    }

    /// Removes every header of that name (case-insensitively).
    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// The raw value of the first `name` header, if any.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every value of the `name` header that is text, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The first `name` header's value, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The WebSocket key this request carries (the first one), if any.
    pub fn key(&self) -> Option<&str> {
        self.header("Sec-WebSocket-Key")
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(
            format!("{} {} {}\r\n", self.method, self.path, self.version).as_bytes(),
        );
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// The request line and headers as shown in transcripts, each value as
    /// `shown` gives it (`None`: the value as text).
    pub fn describe_with(&self, shown: impl Fn(&str, &[u8]) -> Option<String>) -> String {
        let mut s = format!("{} {} {}", self.method, self.path, self.version);
        for (n, v) in &self.headers {
            let v = shown(n, v).unwrap_or_else(|| String::from_utf8_lossy(v).into_owned());
            s.push_str(&format!("\n{n}: {v}"));
        }
        s
    }

    /// The upgrade request as shown in transcripts: long values shortened
    /// (extension offers only when very long: they are what a deflate case
    /// is about).
    pub fn describe(&self) -> String {
        self.describe_with(|n, v| {
            let max = if n.eq_ignore_ascii_case("Sec-WebSocket-Extensions") {
                512
            } else {
                80
            };
            (v.len() > max).then(|| {
                let v = String::from_utf8_lossy(v);
                let cut = (0..=40).rev().find(|i| v.is_char_boundary(*i)).unwrap_or(0);
                format!("{}... ({} bytes)", &v[..cut], v.len())
            })
        })
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
