//! Payloads as written in case files, materialised only when a case runs so
//! that loading hundreds of cases never allocates their multi-megabyte bodies.

use serde::Deserialize;

use crate::wire::generator::pattern;

/// A payload spec: a plain string (UTF-8 text) or a table naming exactly one
/// form: `hex`, `repeat` + `len`, `pattern` (a deterministic byte sequence of
/// that length), or a close body `code` (+ optional `reason`, itself a payload).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Payload {
    Text(String),
    Table(PayloadTable),
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PayloadTable {
    pub text: Option<String>,
    pub hex: Option<String>,
    pub repeat: Option<String>,
    pub len: Option<usize>,
    pub pattern: Option<usize>,
    pub code: Option<u16>,
    pub reason: Option<Box<Payload>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error(
        "payload table must use exactly one of `text`, `hex`, `repeat`+`len`, `pattern`, `code`"
    )]
    Ambiguous,
    #[error("`repeat` needs `len` (and a non-empty string)")]
    RepeatWithoutLen,
    #[error("`len` and `reason` only go with `repeat` and `code`")]
    Stray,
    #[error("invalid hex: {0}")]
    Hex(String),
}

impl Default for Payload {
    fn default() -> Self {
        Payload::Text(String::new())
    }
}

impl Payload {
    /// Checks the spec without materialising it.
    pub fn validate(&self) -> Result<(), PayloadError> {
        match self {
            Payload::Text(_) => Ok(()),
            Payload::Table(t) => {
                let forms = [
                    t.text.is_some(),
                    t.hex.is_some(),
                    t.repeat.is_some(),
                    t.pattern.is_some(),
                    t.code.is_some(),
                ];
                if forms.iter().filter(|f| **f).count() != 1 {
                    return Err(PayloadError::Ambiguous);
                }
                if t.repeat.is_some() && (t.len.is_none() || t.repeat.as_deref() == Some("")) {
                    return Err(PayloadError::RepeatWithoutLen);
                }
                if (t.len.is_some() && t.repeat.is_none())
                    || (t.reason.is_some() && t.code.is_none())
                {
                    return Err(PayloadError::Stray);
                }
                if let Some(h) = &t.hex {
                    decode_hex(h)?;
                }
                if let Some(r) = &t.reason {
                    r.validate()?;
                }
                Ok(())
            }
        }
    }

    /// The payload's byte length, without materialising it.
    pub fn len(&self) -> usize {
        match self {
            Payload::Text(s) => s.len(),
            Payload::Table(t) => {
                if let Some(s) = &t.text {
                    s.len()
                } else if let Some(h) = &t.hex {
                    decode_hex(h).map(|b| b.len()).unwrap_or(0)
                } else if t.repeat.is_some() {
                    t.len.unwrap_or(0)
                } else if let Some(n) = t.pattern {
                    n
                } else {
                    2 + t.reason.as_ref().map_or(0, |r| r.len())
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Materialises the bytes. Specs are validated at load time, so an
    /// invalid one here is a bug in the loader; it yields what it can.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Payload::Text(s) => s.as_bytes().to_vec(),
            Payload::Table(t) => {
                if let Some(s) = &t.text {
                    s.as_bytes().to_vec()
                } else if let Some(h) = &t.hex {
                    decode_hex(h).unwrap_or_default()
                } else if let Some(r) = &t.repeat {
                    r.bytes().cycle().take(t.len.unwrap_or(0)).collect()
                } else if let Some(n) = t.pattern {
                    pattern(n)
                } else {
                    let mut out = t.code.unwrap_or(0).to_be_bytes().to_vec();
                    if let Some(r) = &t.reason {
                        out.extend(r.bytes());
                    }
                    out
                }
            }
        }
    }
}

pub fn decode_hex(s: &str) -> Result<Vec<u8>, PayloadError> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(PayloadError::Hex(format!("odd number of digits in {s:?}")));
    }
    digits
        .chunks(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16);
            let lo = (p[1] as char).to_digit(16);
            match (hi, lo) {
                (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
                _ => Err(PayloadError::Hex(format!(
                    "not a hex digit in {:?}",
                    String::from_utf8_lossy(p)
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(f: impl FnOnce(&mut PayloadTable)) -> Payload {
        let mut t = PayloadTable::default();
        f(&mut t);
        Payload::Table(t)
    }

    #[test]
    fn forms_materialise() {
        assert_eq!(Payload::Text("hé".into()).bytes(), "hé".as_bytes());
        assert_eq!(
            table(|t| t.hex = Some("ce ba".into())).bytes(),
            [0xce, 0xba]
        );
        let r = table(|t| {
            t.repeat = Some("ab".into());
            t.len = Some(5)
        });
        assert_eq!(r.bytes(), b"ababa");
        assert_eq!(r.len(), 5);
        let c = table(|t| {
            t.code = Some(1000);
            t.reason = Some(Box::new(Payload::Text("ok".into())))
        });
        assert_eq!(c.bytes(), [0x03, 0xe8, b'o', b'k']);
        assert_eq!(c.len(), 4);
        assert_eq!(pattern(1000).len(), 1000);
    }

    #[test]
    fn invalid_specs_are_rejected() {
        assert_eq!(table(|_| {}).validate(), Err(PayloadError::Ambiguous));
        assert_eq!(
            table(|t| t.repeat = Some("a".into())).validate(),
            Err(PayloadError::RepeatWithoutLen)
        );
        assert!(matches!(
            table(|t| t.hex = Some("zz".into())).validate(),
            Err(PayloadError::Hex(_))
        ));
        assert_eq!(
            table(|t| {
                t.text = Some("a".into());
                t.len = Some(1)
            })
            .validate(),
            Err(PayloadError::Stray)
        );
    }
}
