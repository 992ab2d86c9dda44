//! The WebSocket opening handshake on the wire (RFC 6455 §4): the accept
//! key and the checks on a 101 answer. The HTTP heads themselves are in
//! [`super::http`].

use base64::Engine;
use sha1::{Digest, Sha1};

use super::deflate::{self, Agreed, Offer};
use super::http::Response;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

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

impl Response {
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
