//! The wire transcript of one case: what was sent and received, in order,
//! with timestamps relative to the start of the case.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// Entries kept per case; a hostile server streaming frames must not grow
/// the report without bound.
const MAX_ENTRIES: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    /// Harness to target.
    Out,
    /// Target to harness.
    In,
    /// What the harness observed or decided (timeouts, closes, errors).
    Note,
}

impl Dir {
    pub fn arrow(self) -> &'static str {
        match self {
            Dir::Out => "->",
            Dir::In => "<-",
            Dir::Note => "--",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub at_us: u64,
    pub dir: Dir,
    pub text: String,
}

#[derive(Debug)]
struct Inner {
    start: Instant,
    entries: Vec<Entry>,
    dropped: usize,
}

/// A transcript shared by a connection's reader and writer.
#[derive(Clone, Debug)]
pub struct Transcript(Arc<Mutex<Inner>>);

impl Default for Transcript {
    fn default() -> Self {
        Self::new()
    }
}

impl Transcript {
    pub fn new() -> Self {
        Transcript(Arc::new(Mutex::new(Inner {
            start: Instant::now(),
            entries: Vec::new(),
            dropped: 0,
        })))
    }

    pub fn push(&self, dir: Dir, text: impl Into<String>) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.entries.len() >= MAX_ENTRIES {
            g.dropped += 1;
            return;
        }
        let at_us = g.start.elapsed().as_micros() as u64;
        g.entries.push(Entry {
            at_us,
            dir,
            text: text.into(),
        });
    }

    pub fn out(&self, text: impl Into<String>) {
        self.push(Dir::Out, text)
    }
    pub fn inbound(&self, text: impl Into<String>) {
        self.push(Dir::In, text)
    }
    pub fn note(&self, text: impl Into<String>) {
        self.push(Dir::Note, text)
    }

    /// The entries so far, with a final note if some were dropped.
    pub fn entries(&self) -> Vec<Entry> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = g.entries.clone();
        if g.dropped > 0 {
            v.push(Entry {
                at_us: g.start.elapsed().as_micros() as u64,
                dir: Dir::Note,
                text: format!("... {} more entries not recorded", g.dropped),
            });
        }
        v
    }
}

/// Renders entries as text lines; `with_time` off gives a deterministic form
/// for snapshots.
pub fn render(entries: &[Entry], with_time: bool) -> String {
    let mut out = String::new();
    for e in entries {
        if with_time {
            out.push_str(&format!("{:>9.3}ms ", e.at_us as f64 / 1000.0));
        }
        let mut lines = e.text.lines();
        out.push_str(e.dir.arrow());
        out.push(' ');
        out.push_str(lines.next().unwrap_or(""));
        out.push('\n');
        for l in lines {
            if with_time {
                out.push_str("            ");
            }
            out.push_str("   ");
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// A short, printable preview of bytes: quoted text when printable UTF-8,
/// hex otherwise.
pub fn preview(bytes: &[u8]) -> String {
    const MAX_CHARS: usize = 40;
    match std::str::from_utf8(bytes) {
        Ok(s)
            if s.chars()
                .all(|c| !c.is_control() || c == '\n' || c == '\r' || c == '\t') =>
        {
            let shown: String = s.chars().take(MAX_CHARS).collect();
            let more = if s.chars().count() > MAX_CHARS {
                "..."
            } else {
                ""
            };
            format!("{:?}{more}", shown)
        }
        _ => {
            let n = bytes.len().min(24);
            let hex: Vec<String> = bytes[..n].iter().map(|b| format!("{b:02x}")).collect();
            let more = if bytes.len() > n { "..." } else { "" };
            format!("0x{}{more}", hex.join(""))
        }
    }
}
