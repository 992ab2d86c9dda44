//! Checks on HTTP responses (status and headers), written in case files and
//! shared by the WebSocket handshake and the SSE response expectations.

use serde::Deserialize;

use crate::wire::handshake::accept_for;
use crate::wire::http::Response;

/// One check on a response header. With no check given, the header must be
/// present. Names, `equals`, `essence` and `token` compare
/// case-insensitively; `one_of` compares exactly (subprotocols and codings
/// are case-sensitive tokens).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderCheck {
    pub name: String,
    /// The value equals this.
    #[serde(default)]
    pub equals: Option<String>,
    /// The media type's essence (`type/subtype`, parameters ignored) equals this.
    #[serde(default)]
    pub essence: Option<String>,
    /// The comma-separated list holds this token.
    #[serde(default)]
    pub token: Option<String>,
    /// If present, the value is one of these (an optional header).
    #[serde(default)]
    pub one_of: Option<Vec<String>>,
    /// The header must not be present.
    #[serde(default)]
    pub absent: bool,
    /// If present, none of these directives (the part before `=`) is listed.
    #[serde(default)]
    pub directives_absent: Vec<String>,
    /// If present, `max-age` and `s-maxage` are at most this many seconds.
    #[serde(default)]
    pub max_age_at_most: Option<u64>,
    /// The value is the correct `Sec-WebSocket-Accept` for the key sent.
    #[serde(default)]
    pub accept: bool,
}

/// `type/subtype` of a media type, lowercased, without parameters.
pub fn essence(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

impl HeaderCheck {
    /// What the check expects, for reports.
    pub fn describe(&self) -> String {
        let n = &self.name;
        if self.absent {
            format!("no `{n}` header")
        } else if let Some(e) = &self.essence {
            format!("`{n}` with the media type {e} (parameters allowed)")
        } else if let Some(e) = &self.equals {
            format!("`{n}: {e}`")
        } else if let Some(t) = &self.token {
            format!("`{n}` listing {t}")
        } else if let Some(o) = &self.one_of {
            format!("`{n}` absent or one of {o:?}")
        } else if !self.directives_absent.is_empty() || self.max_age_at_most.is_some() {
            let mut parts = Vec::new();
            if !self.directives_absent.is_empty() {
                parts.push(format!("without {}", self.directives_absent.join(", ")));
            }
            if let Some(m) = self.max_age_at_most {
                parts.push(format!("max-age at most {m}"));
            }
            format!("`{n}` absent or {}", parts.join(" and "))
        } else if self.accept {
            format!("`{n}` derived from the key sent")
        } else {
            format!("a `{n}` header")
        }
    }

    /// The problem with `resp`, or `None` if the check holds. `key` is the
    /// `Sec-WebSocket-Key` sent, for `accept`.
    pub fn problem(&self, resp: &Response, key: Option<&str>) -> Option<String> {
        let n = &self.name;
        let values: Vec<&str> = resp.headers(n).collect();
        if self.absent {
            return (!values.is_empty())
                .then(|| format!("header `{n}` must be absent, got {values:?}"));
        }
        if let Some(allowed) = &self.one_of {
            return values
                .iter()
                .find(|v| !allowed.iter().any(|a| a == *v))
                .map(|v| format!("header `{n}` is {v:?}, not one of {allowed:?}"));
        }
        if !self.directives_absent.is_empty() || self.max_age_at_most.is_some() {
            return self.directive_problem(&values);
        }
        let Some(first) = values.first() else {
            return Some(format!("header `{n}` is missing"));
        };
        if let Some(e) = &self.essence
            && !values.iter().any(|v| essence(v) == e.to_ascii_lowercase())
        {
            return Some(format!(
                "header `{n}` is {first:?}, whose media type is {:?}, not {e}",
                essence(first)
            ));
        }
        if let Some(e) = &self.equals
            && !values.iter().any(|v| v.eq_ignore_ascii_case(e))
        {
            return Some(format!("header `{n}` is {first:?}, expected {e:?}"));
        }
        if let Some(tok) = &self.token
            && !resp.has_token(n, tok)
        {
            return Some(format!(
                "header `{n}` is {first:?}, which lacks the token {tok:?}"
            ));
        }
        if self.accept {
            let want = key.map(accept_for).unwrap_or_default();
            if want != *first {
                return Some(format!("header `{n}` is {first:?}, expected {want:?}"));
            }
        }
        None
    }

    /// Cache-Control style lists: no forbidden directive, no long max-age.
    fn directive_problem(&self, values: &[&str]) -> Option<String> {
        let n = &self.name;
        for d in values.iter().flat_map(|v| v.split(',')) {
            let (name, value) = match d.split_once('=') {
                Some((a, b)) => (a.trim(), Some(b.trim().trim_matches('"'))),
                None => (d.trim(), None),
            };
            if self
                .directives_absent
                .iter()
                .any(|x| x.eq_ignore_ascii_case(name))
            {
                return Some(format!(
                    "header `{n}` lists `{name}`, which makes the stream cacheable"
                ));
            }
            if let Some(max) = self.max_age_at_most
                && (name.eq_ignore_ascii_case("max-age") || name.eq_ignore_ascii_case("s-maxage"))
                && value
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|v| v > max)
            {
                return Some(format!(
                    "header `{n}` has `{}`: caches may store the stream and replay it",
                    d.trim()
                ));
            }
        }
        None
    }
}

/// A status written as a number or a class like `"4xx"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusSpec {
    Exact(u16),
    Class(u16),
}

impl StatusSpec {
    pub fn matches(&self, status: u16) -> bool {
        match self {
            StatusSpec::Exact(s) => *s == status,
            StatusSpec::Class(c) => status / 100 == *c,
        }
    }
}

impl std::fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusSpec::Exact(s) => write!(f, "{s}"),
            StatusSpec::Class(c) => write!(f, "{c}xx"),
        }
    }
}

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u16),
            Class(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) if (100..600).contains(&n) => Ok(StatusSpec::Exact(n)),
            Raw::Class(s)
                if s.len() == 3
                    && s.ends_with("xx")
                    && (b'1'..=b'5').contains(&s.as_bytes()[0]) =>
            {
                Ok(StatusSpec::Class((s.as_bytes()[0] - b'0') as u16))
            }
            _ => Err(serde::de::Error::custom(
                "a status is a number 100-599 or a class like \"4xx\"",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        let resp = Response::parse(
            b"HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream ; charset=utf-8\r\nCache-Control: no-cache, max-age=0\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
        )
        .unwrap()
        .unwrap()
        .0;
        let check = |h: HeaderCheck| h.problem(&resp, None);
        let ct = |f: fn(&mut HeaderCheck)| {
            let mut h = HeaderCheck {
                name: "content-type".into(),
                ..HeaderCheck::default()
            };
            f(&mut h);
            h
        };
        assert_eq!(
            check(ct(|h| h.essence = Some("text/event-stream".into()))),
            None
        );
        assert!(check(ct(|h| h.essence = Some("text/plain".into()))).is_some());
        let cc = |f: fn(&mut HeaderCheck)| {
            let mut h = HeaderCheck {
                name: "Cache-Control".into(),
                ..HeaderCheck::default()
            };
            f(&mut h);
            h
        };
        assert_eq!(
            check(cc(|h| {
                h.max_age_at_most = Some(0);
                h.directives_absent = vec!["public".into()];
            })),
            None
        );
        assert!(check(cc(|h| h.directives_absent = vec!["no-cache".into()])).is_some());
        assert!(
            check(ct(|h| h.name = "Content-Length".into()))
                .unwrap()
                .contains("missing")
        );
        assert_eq!(
            check(ct(|h| {
                h.name = "ETag".into();
                h.absent = true
            })),
            None
        );
        let proto = |one_of: &[&str]| HeaderCheck {
            name: "Sec-WebSocket-Protocol".into(),
            one_of: Some(one_of.iter().map(|s| s.to_string()).collect()),
            ..HeaderCheck::default()
        };
        assert_eq!(check(proto(&["chat", "superchat"])), None);
        assert!(
            check(proto(&["Chat"])).is_some(),
            "subprotocols are case-sensitive"
        );
        let accept = HeaderCheck {
            name: "Sec-WebSocket-Accept".into(),
            accept: true,
            ..HeaderCheck::default()
        };
        assert!(accept.problem(&resp, Some("k")).is_some());
    }
}
