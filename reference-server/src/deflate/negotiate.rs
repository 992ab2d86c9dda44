//! Negotiation: the `Sec-WebSocket-Extensions` offers, parsed and accepted
//! (see the rules in [`super`]).

const EXTENSION_NAME: &str = "permessage-deflate";
const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// The parameters in force for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Agreed {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// Window the server compresses with, 8..=15.
    pub server_max_window_bits: u8,
    /// Window the client may compress with, 8..=15.
    pub client_max_window_bits: u8,
}

/// An accepted offer: the agreement and the `Sec-WebSocket-Extensions`
/// response value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Negotiated {
    pub agreed: Agreed,
    pub response: String,
}

/// Why an offer was declined (for tests and debugging).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decline {
    UnknownParam(String),
    DuplicateParam(&'static str),
    InvalidValue(&'static str),
}

/// One list element: extension token and parameters (values unquoted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub params: Vec<(String, Option<String>)>,
}

/// Picks the first acceptable `permessage-deflate` offer of the request's
/// `Sec-WebSocket-Extensions` lines; `None` when there is none or a line is
/// malformed.
pub(crate) fn negotiate<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Option<Negotiated> {
    let mut elements = Vec::new();
    for line in lines {
        parse_list(line, &mut elements).ok()?;
    }
    elements
        .iter()
        .filter(|e| e.name == EXTENSION_NAME)
        .find_map(|e| accept_offer(&e.params).ok())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses one field line as an extension list (RFC 6455 §9.1, RFC 9110 §5.6.1
/// list rules: empty elements are skipped).
pub(crate) fn parse_list(line: &[u8], out: &mut Vec<Element>) -> Result<(), &'static str> {
    let mut i = 0;
    let peek = |i: usize| line.get(i).copied();
    let skip_ows = |i: &mut usize| {
        while matches!(line.get(*i), Some(b' ' | b'\t')) {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while line.get(*i).copied().is_some_and(is_tchar) {
            *i += 1;
        }
        (*i > start).then(|| String::from_utf8_lossy(&line[start..*i]).into_owned())
    };
    loop {
        skip_ows(&mut i);
        match peek(i) {
            None => return Ok(()),
            Some(b',') => {
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = token(&mut i).ok_or("expected an extension token")?;
        let mut params = Vec::new();
        loop {
            skip_ows(&mut i);
            match peek(i) {
                None | Some(b',') => break,
                Some(b';') => i += 1,
                Some(_) => return Err("expected `;` or `,`"),
            }
            skip_ows(&mut i);
            let pname = token(&mut i).ok_or("expected a parameter name")?;
            skip_ows(&mut i);
            let mut value = None;
            if peek(i) == Some(b'=') {
                i += 1;
                skip_ows(&mut i);
                value = Some(if peek(i) == Some(b'"') {
                    i += 1;
                    let mut v = Vec::new();
                    loop {
                        match peek(i) {
                            None => return Err("unterminated quoted-string"),
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(b'\\') => {
                                let b = peek(i + 1).ok_or("unterminated quoted-pair")?;
                                v.push(b);
                                i += 2;
                            }
                            Some(b) => {
                                v.push(b);
                                i += 1;
                            }
                        }
                    }
                    // §9.1: once unquoted, the value must be a token.
                    if v.is_empty() || !v.iter().all(|b| is_tchar(*b)) {
                        return Err("a quoted value must be a token");
                    }
                    String::from_utf8_lossy(&v).into_owned()
                } else {
                    token(&mut i).ok_or("expected a parameter value")?
                });
            }
            params.push((pname, value));
        }
        out.push(Element { name, params });
    }
}

/// `8`..`15`, decimal without leading zeros (RFC 7692 §7.1.2).
fn window_bits(v: &str) -> Option<u8> {
    match v {
        "8" | "9" | "10" | "11" | "12" | "13" | "14" | "15" => v.parse().ok(),
        _ => None,
    }
}

/// Accepts one `permessage-deflate` offer, or says why not.
pub(crate) fn accept_offer(params: &[(String, Option<String>)]) -> Result<Negotiated, Decline> {
    let mut snct = false;
    let mut cnct = false;
    let mut smwb: Option<u8> = None;
    let mut cmwb: Option<Option<u8>> = None;
    let mut seen: Vec<&'static str> = Vec::new();
    for (name, value) in params {
        let name: &'static str = match name.as_str() {
            SERVER_NO_CONTEXT_TAKEOVER => SERVER_NO_CONTEXT_TAKEOVER,
            CLIENT_NO_CONTEXT_TAKEOVER => CLIENT_NO_CONTEXT_TAKEOVER,
            SERVER_MAX_WINDOW_BITS => SERVER_MAX_WINDOW_BITS,
            CLIENT_MAX_WINDOW_BITS => CLIENT_MAX_WINDOW_BITS,
            other => return Err(Decline::UnknownParam(other.into())),
        };
        if seen.contains(&name) {
            return Err(Decline::DuplicateParam(name));
        }
        seen.push(name);
        let value = value.as_deref();
        match name {
            SERVER_NO_CONTEXT_TAKEOVER | CLIENT_NO_CONTEXT_TAKEOVER => {
                if value.is_some() {
                    return Err(Decline::InvalidValue(name));
                }
                if name == SERVER_NO_CONTEXT_TAKEOVER {
                    snct = true;
                } else {
                    cnct = true;
                }
            }
            SERVER_MAX_WINDOW_BITS => {
                smwb = Some(
                    value
                        .and_then(window_bits)
                        .ok_or(Decline::InvalidValue(name))?,
                );
            }
            _ => {
                cmwb = Some(match value {
                    None => None,
                    Some(v) => Some(window_bits(v).ok_or(Decline::InvalidValue(name))?),
                });
            }
        }
    }
    let mut response = String::from(EXTENSION_NAME);
    if snct {
        response.push_str("; server_no_context_takeover");
    }
    if cnct {
        response.push_str("; client_no_context_takeover");
    }
    if let Some(bits) = smwb {
        response.push_str(&format!("; server_max_window_bits={bits}"));
    }
    if let Some(Some(bits)) = cmwb {
        response.push_str(&format!("; client_max_window_bits={bits}"));
    }
    Ok(Negotiated {
        agreed: Agreed {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: smwb.unwrap_or(15),
            client_max_window_bits: cmwb.flatten().unwrap_or(15),
        },
        response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(line: &str) -> Option<Negotiated> {
        negotiate([line.as_bytes()])
    }

    fn response(line: &str) -> Option<String> {
        neg(line).map(|n| n.response)
    }

    #[test]
    fn negotiation_answers() {
        let cases: &[(&str, Option<&str>)] = &[
            ("permessage-deflate", Some("permessage-deflate")),
            (
                "permessage-deflate; client_max_window_bits",
                Some("permessage-deflate"),
            ),
            (
                "permessage-deflate;client_max_window_bits=10",
                Some("permessage-deflate; client_max_window_bits=10"),
            ),
            (
                "permessage-deflate; server_max_window_bits=8",
                Some("permessage-deflate; server_max_window_bits=8"),
            ),
            (
                "permessage-deflate ; server_no_context_takeover ; client_no_context_takeover",
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            ),
            (
                "permessage-deflate; server_max_window_bits=\"12\"",
                Some("permessage-deflate; server_max_window_bits=12"),
            ),
            // The first acceptable offer of a list wins.
            (
                "x-foo, permessage-deflate; server_max_window_bits=16, \
                 permessage-deflate; client_no_context_takeover, permessage-deflate",
                Some("permessage-deflate; client_no_context_takeover"),
            ),
            // Declined.
            ("x-webkit-deflate-frame", None),
            ("Permessage-Deflate", None),
            ("permessage-deflate; foo", None),
            ("permessage-deflate; server_max_window_bits", None),
            ("permessage-deflate; server_max_window_bits=7", None),
            ("permessage-deflate; server_max_window_bits=16", None),
            ("permessage-deflate; server_max_window_bits=010", None),
            ("permessage-deflate; client_max_window_bits=0", None),
            ("permessage-deflate; client_max_window_bits=\"\"", None),
            ("permessage-deflate; server_no_context_takeover=1", None),
            (
                "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
                None,
            ),
            // Malformed: nothing is negotiated.
            ("permessage-deflate, permessage-deflate; x=\"a", None),
            ("permessage-deflate;", None),
            ("permessage-deflate x", None),
        ];
        for (offer, expected) in cases {
            assert_eq!(response(offer).as_deref(), *expected, "{offer}");
        }
        let n =
            neg("permessage-deflate; server_max_window_bits=9; client_max_window_bits=11").unwrap();
        assert_eq!(
            n.agreed,
            Agreed {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits: 9,
                client_max_window_bits: 11,
            }
        );
        // Several lines: offers in order; a malformed line spoils all.
        assert_eq!(
            negotiate([
                &b"x-foo"[..],
                b"permessage-deflate; client_no_context_takeover"
            ])
            .map(|n| n.response),
            Some("permessage-deflate; client_no_context_takeover".into())
        );
        assert_eq!(negotiate([&b"permessage-deflate"[..], b";"]), None);
    }

    #[test]
    fn decline_reasons() {
        let p = |s: &str| {
            let mut v = Vec::new();
            parse_list(s.as_bytes(), &mut v).unwrap();
            accept_offer(&v[0].params)
        };
        assert_eq!(
            p("permessage-deflate; a=b").unwrap_err(),
            Decline::UnknownParam("a".into())
        );
        assert_eq!(
            p("permessage-deflate; server_no_context_takeover; server_no_context_takeover")
                .unwrap_err(),
            Decline::DuplicateParam(SERVER_NO_CONTEXT_TAKEOVER)
        );
        assert_eq!(
            p("permessage-deflate; client_max_window_bits=16").unwrap_err(),
            Decline::InvalidValue(CLIENT_MAX_WINDOW_BITS)
        );
    }
}
