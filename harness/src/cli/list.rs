//! `pushspec list` and `pushspec show`: the cases in the case files' words.

use std::io::Write;
use std::path::PathBuf;

use super::{ConfigError, ListArgs, exit, load_cases};
use crate::case::select::{Patterns, Selection};
use crate::case::{Case, Script};

pub(super) fn list(
    args: ListArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, ConfigError> {
    let cases = load_cases(&args.cases)?;
    let sel = Selection::new(Patterns::new(&args.patterns)?, Patterns::new::<&str>(&[])?);
    let chosen: Vec<&Case> = cases.iter().filter(|c| sel.selects(&c.id)).collect();
    let ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    for p in sel.unmatched_includes(&ids) {
        let _ = writeln!(
            err,
            "pushspec: no case matches {p:?} (patterns are globs over ids like ws.control.*, or family names like ws.control)"
        );
    }
    if args.json {
        let v: Vec<serde_json::Value> = chosen
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id, "family": c.family, "level": c.level, "spec": c.spec,
                    "title": c.title, "requires": c.requires,
                    "source": format!("{}:{}", c.source.file, c.source.line),
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).expect("serialises")
        );
    } else {
        let w = chosen.iter().map(|c| c.id.len()).max().unwrap_or(0);
        let ws = chosen.iter().map(|c| c.spec.len()).max().unwrap_or(0);
        for c in &chosen {
            let _ = writeln!(
                out,
                "{:<w$}  {:<6}  {:<ws$}  {}",
                c.id,
                c.level.to_string(),
                c.spec,
                c.title
            );
        }
    }
    Ok(if chosen.is_empty() {
        exit::NO_CASES
    } else {
        exit::OK
    })
}

pub(super) fn show(
    id: &str,
    dir: Option<PathBuf>,
    out: &mut dyn Write,
) -> Result<i32, ConfigError> {
    let cases = load_cases(&dir)?;
    let c = cases
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(|| ConfigError::NoSuchCase(id.to_string()))?;
    let _ = writeln!(out, "id:       {}", c.id);
    let _ = writeln!(out, "title:    {}", c.title);
    let _ = writeln!(out, "level:    {}", c.level);
    let _ = writeln!(out, "spec:     {}", c.spec);
    if let Some(r) = &c.requirement {
        let _ = writeln!(out, "rule:     {r}");
    }
    if !c.requires.is_empty() {
        let words: Vec<String> = c.requires.iter().map(|r| r.word()).collect();
        let _ = writeln!(out, "requires: {}", words.join(", "));
    }
    let _ = writeln!(out, "defined:  {}:{}", c.source.file, c.source.line);
    if let Script::Ws(s) = &c.script {
        let _ = writeln!(
            out,
            "wraps:    {}",
            match (s.handshake, s.closing) {
                (true, true) =>
                    "opening handshake before the steps; closing handshake after, if still open",
                (true, false) => "opening handshake before the steps",
                (false, true) => "closing handshake after the steps, if upgraded and still open",
                (false, false) => "nothing: the steps are the whole case",
            }
        );
    }
    // The case exactly as it runs: the file's entry with parameters filled in.
    let _ = writeln!(out);
    for (key, value) in &c.definition {
        match value {
            toml::Value::Array(items) if key == "steps" => {
                let _ = writeln!(out, "steps = [");
                for item in items {
                    let _ = writeln!(out, "  {item},");
                }
                let _ = writeln!(out, "]");
            }
            other => {
                let _ = writeln!(out, "{key} = {other}");
            }
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use crate::case::Capability;

    #[test]
    fn capabilities_in_case_file_words() {
        assert_eq!(Capability::MaxMessageSize.word(), "max-message-size");
        assert_eq!(Capability::Deflate.word(), "deflate");
    }
}
