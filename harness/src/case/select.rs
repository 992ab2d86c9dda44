//! Choosing cases: glob patterns over case ids, and the known-failing list.

use globset::{Glob, GlobMatcher, GlobSet, GlobSetBuilder};

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

/// Whether `p` is a plain id or family name rather than a glob.
fn is_plain(p: &str) -> bool {
    !p.contains(['*', '?', '[', '{'])
}

/// The globs a pattern stands for: a glob as written; a plain name also as
/// a dotted prefix, so `ws.control` selects the whole family the way
/// `ws.control.*` does (and an exact id still selects just that case).
fn globs(p: &str) -> Result<Vec<Glob>, globset::Error> {
    let mut g = vec![Glob::new(p)?];
    if is_plain(p) {
        g.push(Glob::new(&format!("{p}.*"))?);
    }
    Ok(g)
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
            for g in globs(p).map_err(|source| PatternError::Glob {
                pattern: p.to_string(),
                source,
            })? {
                b.add(g);
            }
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

    /// The patterns as given.
    pub fn raw(&self) -> &[String] {
        &self.raw
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

    /// Include patterns that match none of `ids` (a typo, or a family
    /// name that does not exist).
    pub fn unmatched_includes<'a>(&'a self, ids: &[&str]) -> Vec<&'a str> {
        self.include
            .raw
            .iter()
            .filter(|p| {
                let one = Patterns::new(&[p.as_str()]).expect("already parsed");
                !ids.iter().any(|id| one.matches(id))
            })
            .map(String::as_str)
            .collect()
    }
}

/// One line of a known-failing file.
#[derive(Clone, Debug)]
pub struct Entry {
    pub pattern: String,
    pub line: usize,
    /// Written `?PATTERN`: meant to be broad (a list shared by targets), so
    /// matching no case is fine.
    pub broad: bool,
    matchers: Vec<GlobMatcher>,
}

impl Entry {
    pub fn matches(&self, id: &str) -> bool {
        self.matchers.iter().any(|m| m.is_match(id))
    }
}

/// The known-failing list: failures of listed cases are `xfail`, passes
/// `xpass`; entries that match nothing are reported so the list never
/// goes stale silently.
#[derive(Clone, Debug)]
pub struct KnownFailing {
    pub file: String,
    pub entries: Vec<Entry>,
}

/// A known-failing entry that matched no case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    pub pattern: String,
    pub line: usize,
    /// It matches known cases, only none of those selected for this run.
    pub matches_unselected: bool,
}

impl KnownFailing {
    pub fn matches(&self, id: &str) -> bool {
        self.entries.iter().any(|e| e.matches(id))
    }

    /// Entries (not marked broad) matching none of `selected`; `all` is
    /// every case id known, to tell a typo from an entry for cases this run
    /// did not select.
    pub fn stale(&self, all: &[&str], selected: &[&str]) -> Vec<Stale> {
        self.entries
            .iter()
            .filter(|e| !e.broad && !selected.iter().any(|id| e.matches(id)))
            .map(|e| Stale {
                pattern: e.pattern.clone(),
                line: e.line,
                matches_unselected: all.iter().any(|id| e.matches(id)),
            })
            .collect()
    }
}

/// Parses a known-failing file: one id or glob per line, `#` starts a
/// comment, `?` before a pattern marks it as intentionally broad.
pub fn parse_known_failing(file: &str, text: &str) -> Result<KnownFailing, PatternError> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let (broad, pattern) = match entry.strip_prefix('?') {
            Some(p) => (true, p.trim()),
            None => (false, entry),
        };
        let matchers = globs(pattern)
            .map_err(|source| PatternError::KnownFailing {
                file: file.to_string(),
                line: i + 1,
                pattern: pattern.to_string(),
                source,
            })?
            .iter()
            .map(Glob::compile_matcher)
            .collect();
        entries.push(Entry {
            pattern: pattern.to_string(),
            line: i + 1,
            broad,
            matchers,
        });
    }
    Ok(KnownFailing {
        file: file.to_string(),
        entries,
    })
}

pub fn load_known_failing(path: &std::path::Path) -> Result<KnownFailing, PatternError> {
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
    fn a_plain_name_selects_its_family_or_its_case() {
        let p = Patterns::new(&["ws.control"]).unwrap();
        assert!(p.matches("ws.control.ping-empty"));
        assert!(!p.matches("ws.controlled.x"));
        let p = Patterns::new(&["ws.control.ping-empty"]).unwrap();
        assert!(p.matches("ws.control.ping-empty"));
        assert!(!p.matches("ws.control.ping-empty-2"));
        let sel = Selection::new(
            Patterns::new(&["ws.control", "nope.*"]).unwrap(),
            Patterns::new::<&str>(&[]).unwrap(),
        );
        assert_eq!(sel.unmatched_includes(&["ws.control.a"]), vec!["nope.*"]);
    }

    #[test]
    fn known_failing_comments_and_errors() {
        let p = parse_known_failing("kf", "# header\nws.utf8.*  # later\n\n").unwrap();
        assert!(p.matches("ws.utf8.overlong-1"));
        assert!(!p.matches("ws.close.code-1000"));
        let e = parse_known_failing("kf", "ok\nws.[bad\n").unwrap_err();
        assert!(e.to_string().starts_with("kf:2:"), "{e}");
    }

    #[test]
    fn stale_entries_are_found_unless_broad() {
        let kf = parse_known_failing(
            "kf",
            "ws.utf8.*\nmade-up words\n?ws.deflate.*\nws.close.x\n",
        )
        .unwrap();
        let all = ["ws.utf8.a", "ws.close.x", "ws.control.y"];
        let stale = kf.stale(&all, &["ws.utf8.a", "ws.control.y"]);
        assert_eq!(
            stale,
            vec![
                Stale {
                    pattern: "made-up words".into(),
                    line: 2,
                    matches_unselected: false
                },
                Stale {
                    pattern: "ws.close.x".into(),
                    line: 4,
                    matches_unselected: true
                },
            ]
        );
    }
}
