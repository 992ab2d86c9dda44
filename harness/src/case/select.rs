//! Choosing cases: glob patterns over case ids, and the known-failing list.

use globset::{Glob, GlobSet, GlobSetBuilder};

#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("invalid pattern {pattern:?}: {source}")]
    Glob {
        pattern: String,
        source: globset::Error,
    },
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: invalid pattern {pattern:?}: {source}")]
    KnownFailing {
        file: String,
        line: usize,
        pattern: String,
        source: globset::Error,
    },
}

/// A set of id globs (`*` matches across dots: `ws.*` is every WebSocket case).
#[derive(Clone, Debug)]
pub struct Patterns {
    set: GlobSet,
    raw: Vec<String>,
}

impl Patterns {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let mut b = GlobSetBuilder::new();
        let mut raw = Vec::new();
        for p in patterns {
            let p = p.as_ref();
            b.add(Glob::new(p).map_err(|source| PatternError::Glob {
                pattern: p.to_string(),
                source,
            })?);
            raw.push(p.to_string());
        }
        let set = b.build().map_err(|source| PatternError::Glob {
            pattern: raw.join(" "),
            source,
        })?;
        Ok(Patterns { set, raw })
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn matches(&self, id: &str) -> bool {
        self.set.is_match(id)
    }
}

/// Selects ids matching any of `include` (all when empty) and none of `skip`.
pub struct Selection {
    include: Patterns,
    skip: Patterns,
}

impl Selection {
    pub fn new(include: Patterns, skip: Patterns) -> Self {
        Selection { include, skip }
    }

    pub fn selects(&self, id: &str) -> bool {
        (self.include.is_empty() || self.include.matches(id)) && !self.skip.matches(id)
    }
}

/// Parses a known-failing file: one id or glob per line, `#` starts a comment.
pub fn parse_known_failing(file: &str, text: &str) -> Result<Patterns, PatternError> {
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        Glob::new(entry).map_err(|source| PatternError::KnownFailing {
            file: file.to_string(),
            line: i + 1,
            pattern: entry.to_string(),
            source,
        })?;
        lines.push(entry.to_string());
    }
    Patterns::new(&lines)
}

pub fn load_known_failing(path: &std::path::Path) -> Result<Patterns, PatternError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PatternError::Io {
        file: file.clone(),
        source,
    })?;
    parse_known_failing(&file, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_cross_dots_and_skip_wins() {
        let sel = Selection::new(
            Patterns::new(&["ws.control.*"]).unwrap(),
            Patterns::new(&["*.ping-126"]).unwrap(),
        );
        assert!(sel.selects("ws.control.ping-empty"));
        assert!(!sel.selects("ws.control.ping-126"));
        assert!(!sel.selects("ws.framing.text-0"));
        let all = Selection::new(
            Patterns::new::<&str>(&[]).unwrap(),
            Patterns::new::<&str>(&[]).unwrap(),
        );
        assert!(all.selects("sse.data.plain"));
    }

    #[test]
    fn known_failing_comments_and_errors() {
        let p = parse_known_failing("kf", "# header\nws.utf8.*  # later\n\n").unwrap();
        assert!(p.matches("ws.utf8.overlong-1"));
        assert!(!p.matches("ws.close.code-1000"));
        let e = parse_known_failing("kf", "ok\nws.[bad\n").unwrap_err();
        assert!(e.to_string().starts_with("kf:2:"), "{e}");
    }
}
