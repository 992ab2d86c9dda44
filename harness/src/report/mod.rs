//! Reporters: turn case results into console output, JSON and JUnit XML.

pub mod console;
pub mod json;
pub mod junit;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::outcome::{CaseResult, Outcome};

/// Counts per outcome, every outcome present (zero or not).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub total: usize,
    #[serde(flatten)]
    pub counts: BTreeMap<&'static str, usize>,
}

impl Summary {
    pub fn of(results: &[CaseResult]) -> Summary {
        let mut counts: BTreeMap<&'static str, usize> =
            Outcome::ALL.iter().map(|o| (o.as_str(), 0)).collect();
        for r in results {
            *counts.entry(r.outcome.as_str()).or_default() += 1;
        }
        Summary {
            total: results.len(),
            counts,
        }
    }

    pub fn count(&self, o: Outcome) -> usize {
        self.counts.get(o.as_str()).copied().unwrap_or(0)
    }
}

/// Everything a report file holds about one run.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub started: SystemTime,
    pub duration: Duration,
    pub ws_target: Option<String>,
    pub sse_target: Option<String>,
    pub publish: Option<String>,
    pub strict: bool,
    /// The run was cut short (interrupt): the report holds what finished.
    pub interrupted: bool,
    /// Selected cases that never ran because of the interrupt.
    pub not_run: Vec<String>,
}

/// Writes `contents` to `path` atomically enough that a reader never sees a
/// half-written report: write a sibling temp file, then rename.
pub fn write_file(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("pushspec-tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}
