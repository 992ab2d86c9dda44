//! Reporters: turn case results into console output, JSON and JUnit XML.
//! They consume what the engine produced and the run's configuration; they
//! decide nothing about verdicts.

pub mod console;
mod escape;
pub(crate) mod html;
pub(crate) mod json;
pub(crate) mod junit;
pub(crate) mod load;
pub(crate) mod markdown;
pub(crate) mod matrix;
mod plot;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::case::select::Stale;
use crate::engine::Stop;
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

/// The flags and files that produced a run, recorded in its reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Config {
    pub patterns: Vec<String>,
    pub skip: Vec<String>,
    pub profile: Option<String>,
    pub known_failing: Option<String>,
    pub cases_dir: Option<String>,
    pub jobs: usize,
    pub timeout_ms: u64,
    pub run_timeout_ms: u64,
    pub strict: bool,
    pub skip_timing: bool,
}

/// Where a capability the run used came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapabilitySource {
    /// Seen on the wire by the pre-run probe.
    Detected,
    /// Declared in the profile (or the embedded server's own profile).
    Profile,
    /// Implied by a flag (`--publish`).
    Flag,
}

#[derive(Clone, Debug, Serialize)]
pub struct CapabilityInfo {
    pub name: String,
    pub source: CapabilitySource,
}

/// The transports of a run, as the JSON report names them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TransportInfo {
    /// `tcp` or `tls`, per target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<&'static str>,
    /// How TLS certificates were verified (`platform-roots`, `ca-file`,
    /// `embedded-certificate`, `none`); absent without a TLS target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_verification: Option<&'static str>,
    /// Certificates were not verified (`--insecure`).
    pub insecure: bool,
}

/// Everything a report file holds about one run.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub started: SystemTime,
    pub duration: Duration,
    pub ws_target: Option<String>,
    pub sse_target: Option<String>,
    pub publish: Option<String>,
    /// The target is the embedded reference server (its port changes
    /// from run to run; reports of it still compare as one target).
    pub embedded: bool,
    /// How the targets were reached.
    pub transport: TransportInfo,
    pub strict: bool,
    /// What cut the run short, if anything.
    pub stop: Option<Stop>,
    /// Selected cases that never ran because of an interrupt.
    pub not_run: Vec<String>,
    pub config: Config,
    pub capabilities: Vec<CapabilityInfo>,
    /// Known-failing entries that matched no selected case.
    pub stale_known_failing: Vec<Stale>,
    /// The verdict line's first words (`PASSED`, `FAILED (2 fail)`, ...).
    pub verdict: String,
    pub exit_code: i32,
    /// The client under test (`pushspec clients`: the Autobahn `agent`).
    pub agent: Option<String>,
}

impl RunInfo {
    /// Cut short by a signal: the reports hold what finished.
    pub fn interrupted(&self) -> bool {
        matches!(self.stop, Some(Stop::Interrupted | Stop::Terminated))
    }
}

/// Cases that did not pass and share a cause: the same outcome and the
/// same reason once the numbers that vary from case to case (sizes,
/// offsets, counts) are left out.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    pub outcome: Outcome,
    /// The reason of the first case in the group.
    pub reason: String,
    pub cases: Vec<String>,
}

/// The shape of a reason: numbers become `#` (sizes, offsets, counts and
/// times vary from case to case), except status and close codes, which
/// name the cause.
fn shape(reason: &str) -> String {
    const KEEP_AFTER: [&str; 6] = ["close", "status", "code", "codes", "http/1.1", "http/1.0"];
    let mut out = String::with_capacity(reason.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.is_empty() {
            return;
        }
        let before = out
            .trim_end_matches([' ', '[', '=', ':', ','])
            .rsplit(' ')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if KEEP_AFTER.contains(&before.as_str()) {
            out.push_str(digits);
        } else {
            out.push('#');
        }
        digits.clear();
    };
    for c in reason.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// Every case that did not pass, grouped by cause, most serious first and
/// then by size.
pub fn findings(results: &[CaseResult]) -> Vec<Group> {
    group_by_cause(
        results
            .iter()
            .map(|r| (r.id.as_str(), r.outcome, r.reason.as_str())),
    )
}

/// [`findings`] over `(id, outcome, reason)`: what a report read back
/// from JSON has.
pub fn group_by_cause<'a>(cases: impl Iterator<Item = (&'a str, Outcome, &'a str)>) -> Vec<Group> {
    let rank = |o: Outcome| match o {
        Outcome::Fail => 0,
        Outcome::Error => 1,
        Outcome::Xpass => 2,
        Outcome::NonStrict => 3,
        Outcome::NotRun => 4,
        _ => 9,
    };
    let mut keys: Vec<(Outcome, String)> = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    for (id, outcome, reason) in cases.filter(|c| rank(c.1) < 9) {
        let key = (outcome, shape(reason));
        match keys.iter().position(|k| *k == key) {
            Some(i) => groups[i].cases.push(id.to_string()),
            None => {
                keys.push(key);
                groups.push(Group {
                    outcome,
                    reason: reason.to_string(),
                    cases: vec![id.to_string()],
                });
            }
        }
    }
    groups.sort_by_key(|g| (rank(g.outcome), std::cmp::Reverse(g.cases.len())));
    groups
}

/// The sibling file a report is first written to.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".pushspec-tmp");
    path.with_file_name(name)
}

/// Writes `contents` to `path` atomically enough that a reader never sees a
/// half-written report: write a sibling temp file, then rename.
pub fn write_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_group_by_shape() {
        assert_eq!(
            shape("381952 bytes still unsent after 2s"),
            "# bytes still unsent after #s"
        );
        assert_eq!(
            shape("status 400 instead of 101"),
            "status 400 instead of #"
        );
        assert_eq!(shape("close 1009 at 45 ms"), "close 1009 at # ms");
        assert_eq!(
            shape("expected close codes [1002, 1007], got 1000 bytes"),
            "expected close codes [1002, #], got # bytes"
        );
        assert_ne!(
            shape("expected close 1002, got close 1000"),
            shape("expected close 1007, got close 1000")
        );
    }
}
