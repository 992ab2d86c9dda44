//! Target addresses given on the command line. The scheme chooses the
//! transport: `ws://` and `http://` are plain TCP, `wss://` and `https://`
//! TLS, verified against the platform's roots until the command line says
//! otherwise (`--ca-cert`, `--insecure`).

use std::time::Duration;

use crate::wire::transport::{self, ConnectError, Stream, Tls, Transport};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("{0:?}: expected a URL like ws://127.0.0.1:9001/")]
    NotWs(String),
    #[error("{0:?}: expected a URL like http://127.0.0.1:8080/events")]
    NotHttp(String),
    #[error("{0:?}: invalid host or port")]
    Authority(String),
    #[error(
        "{0:?}: credentials in the URL (user:password@) are not supported; give host and port only"
    )]
    Credentials(String),
}

/// `host[:port]` as it goes in a `Host` header: the port is left out when
/// it is the scheme's default (80, or 443 over TLS; RFC 9110 §7.2).
pub fn authority_for(host: &str, port: u16, transport: &Transport) -> String {
    // An IPv6 address is bracketed even without a port (RFC 3986 §3.2.2).
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == transport.default_port() {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// The rest of `url` after `scheme://`, matching the scheme in any letter
/// case (RFC 3986 §3.1: schemes are case-insensitive).
fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    let n = scheme.len();
    (url.len() >= n + 3
        && url.is_char_boundary(n)
        && url[..n].eq_ignore_ascii_case(scheme)
        && url[n..].starts_with("://"))
    .then(|| &url[n + 3..])
}

/// Where a WebSocket target lives: `ws://host:port/path` or
/// `wss://host:port/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsTarget {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub transport: Transport,
}

impl WsTarget {
    /// `host[:port]` as the `Host` header gives it.
    pub fn authority(&self) -> String {
        authority_for(&self.host, self.port, &self.transport)
    }

    /// The target as a URL (`ws://` or `wss://`).
    pub fn url(&self) -> String {
        let scheme = if self.transport.is_tls() { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.authority(), self.path)
    }

    /// A connection (TCP, then TLS for `wss://`) within `within`.
    pub async fn connect(&self, within: Duration) -> Result<Stream, ConnectError> {
        transport::connect(&self.host, self.port, &self.transport, within).await
    }
}

/// host, port and path of `scheme://host[:port][/path]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTarget {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub transport: Transport,
}

impl HttpTarget {
    pub fn authority(&self) -> String {
        authority_for(&self.host, self.port, &self.transport)
    }

    pub fn url(&self) -> String {
        let scheme = if self.transport.is_tls() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}{}", self.authority(), self.path)
    }

    /// A connection (TCP, then TLS for `https://`) within `within`.
    pub async fn connect(&self, within: Duration) -> Result<Stream, ConnectError> {
        transport::connect(&self.host, self.port, &self.transport, within).await
    }
}

/// The scheme's transport: TLS ones start with the platform's roots.
fn transport_of(tls: bool) -> Transport {
    if tls {
        Transport::Tls(Tls::platform())
    } else {
        Transport::Tcp
    }
}

fn split(url: &str, rest: &str, default_port: u16) -> Result<(String, u16, String), UrlError> {
    let (auth, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if auth.contains('@') {
        return Err(UrlError::Credentials(url.into()));
    }
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let (host, port) = if let Some(v6) = auth.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| UrlError::Authority(url.into()))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| UrlError::Authority(url.into()))?,
            None if after.is_empty() => default_port,
            None => return Err(UrlError::Authority(url.into())),
        };
        (h.to_string(), port)
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| UrlError::Authority(url.into()))?,
            ),
            None => (auth.to_string(), default_port),
        }
    };
    if host.is_empty() || port == 0 {
        return Err(UrlError::Authority(url.into()));
    }
    Ok((host, port, path))
}

/// The rest of `url` after the plain or the TLS scheme, and whether it
/// was the TLS one.
fn strip_either<'a>(url: &'a str, plain: &str, tls: &str) -> Option<(&'a str, bool)> {
    strip_scheme(url, tls)
        .map(|r| (r, true))
        .or_else(|| strip_scheme(url, plain).map(|r| (r, false)))
}

pub fn parse_ws(url: &str) -> Result<WsTarget, UrlError> {
    let (rest, tls) = strip_either(url, "ws", "wss").ok_or_else(|| UrlError::NotWs(url.into()))?;
    let transport = transport_of(tls);
    let (host, port, path) = split(url, rest, transport.default_port())?;
    Ok(WsTarget {
        host,
        port,
        path,
        transport,
    })
}

pub fn parse_http(url: &str) -> Result<HttpTarget, UrlError> {
    let (rest, tls) =
        strip_either(url, "http", "https").ok_or_else(|| UrlError::NotHttp(url.into()))?;
    let transport = transport_of(tls);
    let (host, port, path) = split(url, rest, transport.default_port())?;
    Ok(HttpTarget {
        host,
        port,
        path,
        transport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_ws("ws://127.0.0.1:9001/echo?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 9001, "/echo?x=1")
        );
        let t = parse_ws("ws://[::1]:9/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority()),
            ("::1", 9, "[::1]:9".to_string())
        );
        assert_eq!(parse_ws("ws://localhost").unwrap().path, "/");
        assert!(matches!(parse_ws("http://x/"), Err(UrlError::NotWs(_))));
        assert!(matches!(
            parse_ws("ws://x:99999/"),
            Err(UrlError::Authority(_))
        ));
        assert_eq!(
            parse_http("http://127.0.0.1:8080/events").unwrap().url(),
            "http://127.0.0.1:8080/events"
        );
    }

    #[test]
    fn tls_schemes_default_to_443_and_keep_other_ports() {
        let t = parse_ws("wss://example.test/chat").unwrap();
        assert_eq!((t.port, t.transport.word()), (443, "tls"));
        assert_eq!(t.authority(), "example.test");
        assert_eq!(t.url(), "wss://example.test/chat");
        let t = parse_ws("WSS://127.0.0.1:8443/").unwrap();
        assert_eq!(t.authority(), "127.0.0.1:8443");
        let h = parse_http("https://[::1]/events").unwrap();
        assert_eq!((h.port, h.url()), (443, "https://[::1]/events".to_string()));
        let h = parse_http("https://h:80/e").unwrap();
        assert_eq!(h.authority(), "h:80");
        assert_eq!(parse_ws("ws://x/").unwrap().transport.word(), "tcp");
    }

    #[test]
    fn schemes_are_case_insensitive_and_credentials_are_refused() {
        assert_eq!(parse_ws("WS://127.0.0.1:9/x").unwrap().path, "/x");
        assert_eq!(parse_http("HtTp://h:1/e").unwrap().host, "h");
        assert!(matches!(
            parse_ws("ws://user:pw@127.0.0.1:9001/"),
            Err(UrlError::Credentials(_))
        ));
        assert!(matches!(parse_ws("ws:/x"), Err(UrlError::NotWs(_))));
        assert!(matches!(parse_ws("wé://x"), Err(UrlError::NotWs(_))));
    }
}
