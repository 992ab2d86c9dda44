//! Target addresses given on the command line.

use std::time::Duration;

use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("{0:?}: expected a URL like ws://127.0.0.1:9001/")]
    NotWs(String),
    #[error("{0:?}: expected a URL like http://127.0.0.1:8080/events")]
    NotHttp(String),
    #[error("{0:?}: TLS targets (wss://, https://) are not supported yet; test the plain listener")]
    Tls(String),
    #[error("{0:?}: invalid host or port")]
    Authority(String),
    #[error(
        "{0:?}: credentials in the URL (user:password@) are not supported; give host and port only"
    )]
    Credentials(String),
}

use crate::wire::http::authority;

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

/// Where a WebSocket target lives: `ws://host:port/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsTarget {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl WsTarget {
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }

    pub async fn connect(&self, within: Duration) -> Result<TcpStream, String> {
        crate::wire::connect::connect(&self.host, self.port, within).await
    }
}

/// host, port and path of `scheme://host[:port][/path]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTarget {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl HttpTarget {
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority(), self.path)
    }
}

fn split(url: &str, rest: &str) -> Result<(String, u16, String), UrlError> {
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
            None if after.is_empty() => 80,
            None => return Err(UrlError::Authority(url.into())),
        };
        (h.to_string(), port)
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| UrlError::Authority(url.into()))?,
            ),
            None => (auth.to_string(), 80),
        }
    };
    if host.is_empty() || port == 0 {
        return Err(UrlError::Authority(url.into()));
    }
    Ok((host, port, path))
}

pub fn parse_ws(url: &str) -> Result<WsTarget, UrlError> {
    if strip_scheme(url, "wss").is_some() {
        return Err(UrlError::Tls(url.into()));
    }
    let rest = strip_scheme(url, "ws").ok_or_else(|| UrlError::NotWs(url.into()))?;
    let (host, port, path) = split(url, rest)?;
    Ok(WsTarget { host, port, path })
}

pub fn parse_http(url: &str) -> Result<HttpTarget, UrlError> {
    if strip_scheme(url, "https").is_some() {
        return Err(UrlError::Tls(url.into()));
    }
    let rest = strip_scheme(url, "http").ok_or_else(|| UrlError::NotHttp(url.into()))?;
    let (host, port, path) = split(url, rest)?;
    Ok(HttpTarget { host, port, path })
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
        assert!(matches!(parse_ws("wss://x/"), Err(UrlError::Tls(_))));
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
    fn schemes_are_case_insensitive_and_credentials_are_refused() {
        assert_eq!(parse_ws("WS://127.0.0.1:9/x").unwrap().path, "/x");
        assert_eq!(parse_http("HtTp://h:1/e").unwrap().host, "h");
        assert!(matches!(parse_ws("WSS://x/"), Err(UrlError::Tls(_))));
        assert!(matches!(
            parse_ws("ws://user:pw@127.0.0.1:9001/"),
            Err(UrlError::Credentials(_))
        ));
        assert!(matches!(parse_ws("ws:/x"), Err(UrlError::NotWs(_))));
        assert!(matches!(parse_ws("wé://x"), Err(UrlError::NotWs(_))));
    }
}
