//! Loading case files: TOML parsing, parameter expansion and validation,
//! with errors that name the file, line and field.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::de::DeValue;
use toml::{Spanned, Table, Value};

use super::{Capability, Case, Level, Protocol, Script, Source};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_cases.rs"));
}

/// A case file that cannot be loaded. The message always starts with
/// `file:line:` so editors and CI logs can jump to it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
}

/// Something a script checks beyond what serde can: payload specs, value
/// ranges. Returns the dotted field path and the problem.
pub trait Validate {
    fn validate(&self) -> Result<(), (String, String)>;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    family: Spanned<String>,
    #[serde(default)]
    case: Vec<Spanned<Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    slug: String,
    title: String,
    spec: String,
    level: Level,
    #[serde(default)]
    requirement: Option<String>,
    #[serde(default)]
    requires: Vec<Capability>,
}

const COMMON_KEYS: &[&str] = &["slug", "title", "spec", "level", "requirement", "requires"];

/// The case files built into the binary.
pub fn load_embedded() -> Result<Vec<Case>, LoadError> {
    load_sources(
        embedded::EMBEDDED
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string())),
    )
}

/// Every `*.toml` below `dir`, in path order.
pub fn load_dir(dir: &Path) -> Result<Vec<Case>, LoadError> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut paths = Vec::new();
    walk(dir, &mut paths).map_err(|source| LoadError::Io {
        file: dir.display().to_string(),
        source,
    })?;
    paths.sort();
    let mut sources = Vec::new();
    for p in paths {
        let name = p.display().to_string();
        let text = std::fs::read_to_string(&p).map_err(|source| LoadError::Io {
            file: name.clone(),
            source,
        })?;
        sources.push((name, text));
    }
    load_sources(sources)
}

/// Loads files given as (name, text); ids must be unique across all of them.
pub fn load_sources(
    sources: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Case>, LoadError> {
    let mut cases = Vec::new();
    let mut seen: HashMap<String, Source> = HashMap::new();
    for (name, text) in sources {
        for case in parse_file(&name, &text)? {
            if let Some(prev) = seen.get(&case.id) {
                return Err(LoadError::Invalid {
                    file: case.source.file.clone(),
                    line: case.source.line,
                    message: format!(
                        "duplicate case id `{}` (first defined at {}:{})",
                        case.id, prev.file, prev.line
                    ),
                });
            }
            seen.insert(case.id.clone(), case.source.clone());
            cases.push(case);
        }
    }
    Ok(cases)
}

/// The 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses one family file into its concrete cases.
pub fn parse_file(name: &str, text: &str) -> Result<Vec<Case>, LoadError> {
    let invalid = |line: usize, message: String| LoadError::Invalid {
        file: name.to_string(),
        line,
        message,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        invalid(line, e.message().to_string())
    })?;
    let family = raw.family.get_ref().clone();
    let family_line = line_of(text, raw.family.span().start);
    let protocol = match family_protocol(&family) {
        Some(p) => p,
        None => {
            return Err(invalid(
                family_line,
                format!(
                    "field `family`: {family:?} is not `ws.<name>`, `sse.<name>` or `client.ws.<name>` (lowercase, digits, `-`)"
                ),
            ));
        }
    };
    // The same text with every key's and value's span, to put an error on
    // the line of the field it names (it parsed above, so it parses here).
    let spans = toml::de::DeTable::parse(text).ok();
    let entries: &[Spanned<DeValue>] = spans
        .as_ref()
        .and_then(|t| t.get_ref().get("case"))
        .and_then(|c| c.get_ref().as_array())
        .map_or(&[], |a| a.as_ref());
    let mut out = Vec::new();
    for (n, entry) in raw.case.into_iter().enumerate() {
        let line = line_of(text, entry.span().start);
        let written = entries.get(n);
        let mut table = entry.into_inner();
        let slug_hint = table
            .get("slug")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let field_error = |path: &str, msg: &str| {
            let at = written
                .and_then(|w| key_offset(w, path))
                .map_or(line, |o| line_of(text, o));
            invalid(at, format!("case `{slug_hint}`: field `{path}`: {msg}"))
        };
        let combos = expand_params(&mut table).map_err(|(p, m)| field_error(&p, &m))?;
        for (i, combo) in combos.iter().enumerate() {
            let mut t = Value::Table(table.clone());
            substitute(&mut t, combo, "").map_err(|(p, m)| field_error(&p, &m))?;
            let Value::Table(t) = t else { unreachable!() };
            let (common, rest): (Table, Table) = t
                .into_iter()
                .partition(|(k, _)| COMMON_KEYS.contains(&k.as_str()));
            let common: Common = deserialize(common).map_err(|(p, m)| field_error(&p, &m))?;
            if !is_slug(&common.slug) {
                return Err(field_error(
                    "slug",
                    &format!(
                        "{:?} must be lowercase letters, digits, `-` and `.`{}",
                        common.slug,
                        if combos.len() > 1 {
                            format!(" (parameter set #{})", i + 1)
                        } else {
                            String::new()
                        }
                    ),
                ));
            }
            let definition = rest.clone();
            let script = match protocol {
                Protocol::Ws => {
                    Script::Ws(parse_script(rest).map_err(|(p, m)| field_error(&p, &m))?)
                }
                Protocol::Sse => {
                    Script::Sse(parse_script(rest).map_err(|(p, m)| field_error(&p, &m))?)
                }
                Protocol::ClientWs => {
                    Script::ClientWs(parse_script(rest).map_err(|(p, m)| field_error(&p, &m))?)
                }
            };
            out.push(Case {
                id: format!("{family}.{}", common.slug),
                family: family.clone(),
                title: common.title,
                spec: common.spec,
                level: common.level,
                requirement: common.requirement,
                requires: common.requires,
                script,
                definition,
                source: Source {
                    file: name.to_string(),
                    line,
                },
            });
        }
    }
    Ok(out)
}

/// The protocol a family name announces: `ws.<name>`, `sse.<name>` or
/// `client.ws.<name>`.
fn family_protocol(family: &str) -> Option<Protocol> {
    let (protocol, name) = if let Some(name) = family.strip_prefix("client.ws.") {
        (Protocol::ClientWs, name)
    } else {
        match family.split_once('.')? {
            ("ws", name) => (Protocol::Ws, name),
            ("sse", name) => (Protocol::Sse, name),
            _ => return None,
        }
    };
    (is_slug(name) && !name.contains('.')).then_some(protocol)
}

fn parse_script<T: DeserializeOwned + Validate>(t: Table) -> Result<T, (String, String)> {
    let s: T = deserialize(t)?;
    s.validate()?;
    Ok(s)
}

fn deserialize<T: DeserializeOwned>(t: Table) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(Value::Table(t)).map_err(|e| {
        let path = e.path().to_string();
        (path, e.into_inner().message().to_string())
    })
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// The byte offset of the deepest part of `path` (`steps[3].send.rsv`)
/// that the case entry `written` holds as written: the key itself, or the
/// list element or table the rest of the path was made from (a parameter
/// can stand for a whole table). `None` if not even the first part is there.
fn key_offset(written: &Spanned<DeValue>, path: &str) -> Option<usize> {
    let mut at = None;
    let mut here = written;
    for part in path.split('.') {
        let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            let Some((k, v)) = here.get_ref().as_table().and_then(|t| t.get_key_value(key)) else {
                return at;
            };
            at = Some(k.span().start);
            here = v;
        }
        for index in indexes.split('[') {
            let Some(i) = index
                .strip_suffix(']')
                .and_then(|i| i.parse::<usize>().ok())
            else {
                continue;
            };
            let Some(item) = here.get_ref().as_array().and_then(|a| a.get(i)) else {
                return at;
            };
            at = Some(item.span().start);
            here = item;
        }
    }
    at
}

type Combo = BTreeMap<String, Value>;

/// Removes `params` (a list of tables, one per variant) and `matrix` (a table
/// of lists, crossed) and returns every parameter combination.
fn expand_params(table: &mut Table) -> Result<Vec<Combo>, (String, String)> {
    let mut combos: Vec<Combo> = vec![Combo::new()];
    if let Some(params) = table.remove("params") {
        let Value::Array(list) = params else {
            return Err(("params".into(), "must be a list of tables".into()));
        };
        if list.is_empty() {
            return Err(("params".into(), "must not be empty".into()));
        }
        let mut sets = Vec::new();
        for (i, v) in list.into_iter().enumerate() {
            let Value::Table(t) = v else {
                return Err((format!("params[{i}]"), "must be a table".into()));
            };
            sets.push(t.into_iter().collect::<Combo>());
        }
        combos = sets;
    }
    if let Some(matrix) = table.remove("matrix") {
        let Value::Table(m) = matrix else {
            return Err(("matrix".into(), "must be a table of lists".into()));
        };
        for (k, v) in m {
            let Value::Array(values) = v else {
                return Err((format!("matrix.{k}"), "must be a list".into()));
            };
            if values.is_empty() {
                return Err((format!("matrix.{k}"), "must not be empty".into()));
            }
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    let k = &k;
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.insert(k.clone(), v.clone());
                        c
                    })
                })
                .collect();
        }
    }
    Ok(combos)
}

/// Replaces `{name}` placeholders: a string that is exactly `{name}` takes
/// the parameter's value with its type; otherwise the value is spliced into
/// the string. A leftover `{name}` is a typo and an error.
fn substitute(v: &mut Value, combo: &Combo, path: &str) -> Result<(), (String, String)> {
    match v {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}'))
                && let Some(val) = combo.get(name)
            {
                *v = val.clone();
                return Ok(());
            }
            let mut out = s.clone();
            for (k, val) in combo {
                let pat = format!("{{{k}}}");
                if out.contains(&pat) {
                    let text = match val {
                        Value::String(x) => x.clone(),
                        Value::Integer(i) => i.to_string(),
                        Value::Boolean(b) => b.to_string(),
                        Value::Float(f) => f.to_string(),
                        _ => {
                            return Err((
                                path.to_string(),
                                format!(
                                    "parameter `{k}` is a table or list and cannot be spliced into a string"
                                ),
                            ));
                        }
                    };
                    out = out.replace(&pat, &text);
                }
            }
            if let Some(name) = leftover_placeholder(&out) {
                return Err((path.to_string(), format!("unknown parameter `{{{name}}}`")));
            }
            *s = out;
            Ok(())
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, combo, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        Value::Table(t) => {
            for (k, item) in t.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                substitute(item, combo, &p)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn leftover_placeholder(s: &str) -> Option<&str> {
    let mut rest = s;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        if let Some(end) = after.find('}') {
            let name = &after[..end];
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && name.as_bytes()[0].is_ascii_lowercase()
            {
                return Some(name);
            }
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_line(text: &str) -> (usize, String) {
        match parse_file("t.toml", text) {
            Err(LoadError::Invalid { line, message, .. }) => (line, message),
            other => panic!("expected a load error, got {other:?}"),
        }
    }

    /// The line comes from the TOML spans of the field the error names: a
    /// text search for `rsv` would stop at the valid one on line 8.
    #[test]
    fn error_line_is_the_named_fields_own() {
        let text = r#"family = "ws.t"
[[case]]
slug = "x"
title = "t"
spec = "s"
level = "must"
steps = [
  { send = { opcode = "text", rsv = 1 } },
  { pause = "1ms" },
  { send = { opcode = "text", rsv = 9 } },
]
"#;
        let (line, message) = error_line(text);
        assert!(message.contains("steps[2].send.rsv"), "{message}");
        assert_eq!(line, 10, "{message}");
    }

    /// The same key earlier in the case and in an earlier case: the line is
    /// the failing step's.
    #[test]
    fn error_line_in_a_later_case() {
        let text = r#"family = "ws.t"
[[case]]
slug = "a"
title = "t"
spec = "s"
level = "must"
steps = [{ expect_fail = { codes = [1002] } }]

[[case]]
slug = "b"
title = "t"
spec = "s"
level = "must"
steps = [
  { expect_fail = { codes = [1002] } },
  { expect_fail = { codes = [] } },
]
"#;
        let (line, message) = error_line(text);
        assert!(message.contains("steps[1].expect_fail.codes"), "{message}");
        assert_eq!(line, 16, "{message}");
    }
}
