//! The case-driven edits of a WebSocket upgrade request: the step language
//! says what to change, the wire's [`Request`] carries it.

use crate::case::ws_step::UpgradeSpec;
use crate::wire::http::Request;

impl Request {
    /// Applies a case's modifications to a valid upgrade.
    pub fn modified(mut self, spec: &UpgradeSpec) -> Self {
        if let Some(m) = &spec.method {
            self.method = m.clone();
        }
        if let Some(v) = &spec.version {
            self.version = v.clone();
        }
        for name in &spec.remove {
            self.remove(name);
        }
        for (name, value) in &spec.set {
            self.set(name, value.as_bytes());
        }
        for (name, value) in &spec.add {
            self.add(name, value.as_bytes());
        }
        if let Some(n) = spec.pad {
            self.add("X-Pushspec-Pad", "a".repeat(n));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
