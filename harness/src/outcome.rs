//! What running a case produced, and how that becomes an outcome.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::case::{Case, Level};
use crate::transcript::{Entry, Transcript};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    Fail,
    /// A `should` rule was not met.
    NonStrict,
    /// An `info` case: what the target did, without a verdict.
    Info,
    /// The target's profile does not declare what the case needs.
    Unsupported,
    /// The harness could not run the case.
    Error,
    /// Listed as known-failing, and failed.
    Xfail,
    /// Listed as known-failing, but passed: a stale entry, which fails the run.
    Xpass,
    /// Not run because a prerequisite failed (the target's handshake or
    /// stream probe, or the run budget ran out before its turn).
    NotRun,
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::Pass,
        Outcome::Fail,
        Outcome::NonStrict,
        Outcome::Info,
        Outcome::Unsupported,
        Outcome::Error,
        Outcome::Xfail,
        Outcome::Xpass,
        Outcome::NotRun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::NonStrict => "non-strict",
            Outcome::Info => "info",
            Outcome::Unsupported => "unsupported",
            Outcome::Error => "error",
            Outcome::Xfail => "xfail",
            Outcome::Xpass => "xpass",
            Outcome::NotRun => "not-run",
        }
    }

    /// Whether this outcome fails the run.
    pub fn fails_run(self, strict: bool) -> bool {
        matches!(self, Outcome::Fail | Outcome::Error | Outcome::Xpass)
            || (strict && self == Outcome::NonStrict)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule the target did not meet: what was expected, what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub reason: String,
    pub expected: String,
    pub actual: String,
}

impl Finding {
    pub fn new(
        reason: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Self {
        Finding {
            reason: reason.into(),
            expected: expected.into(),
            actual: actual.into(),
        }
    }
}

/// How a protocol driver's run of one case ended, before levels and the
/// known-failing list are applied.
#[derive(Debug, Default)]
pub struct Run {
    /// The first unmet expectation at the case's own level; the run stops there.
    pub failure: Option<Finding>,
    /// Unmet `should` expectations inside a case; the run went on.
    pub non_strict: Vec<Finding>,
    /// The harness itself could not run the case.
    pub error: Option<String>,
    pub unsupported: Option<String>,
    /// The opening handshake never completed (for exit code 3).
    pub handshake_failed: bool,
    /// A one-line description of what passed, for `info` cases.
    pub summary: Option<String>,
    /// The run ended at a limit the target's profile declares (e.g. close
    /// 1009 above `ws.max_message_size`): the outcome is `info`, whatever
    /// the case's level, because the case could not run to its end.
    pub info: Option<String>,
}

/// The reported result of one case.
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub id: String,
    pub family: String,
    pub title: String,
    pub spec: String,
    pub level: Level,
    pub outcome: Outcome,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    pub duration_ms: u64,
    #[serde(skip)]
    pub duration: Duration,
    #[serde(skip)]
    pub handshake_failed: bool,
    /// Always kept; reporters decide where to show it.
    #[serde(skip)]
    pub transcript: Vec<Entry>,
    /// Set when a failing verdict was run again alone to confirm it: what
    /// the first attempt gave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_attempt: Option<Attempt>,
    /// The first attempt failed and the confirmation run passed: the
    /// verdict depended on something other than the target (reported, not
    /// failing the run).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub flaky: bool,
}

/// One earlier attempt at a case, kept when the case was run again.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    pub outcome: Outcome,
    pub reason: String,
    pub duration_ms: u64,
}

impl CaseResult {
    /// A case that did not run because `why`.
    pub fn not_run(case: &Case, why: impl Into<String>) -> CaseResult {
        CaseResult {
            id: case.id.clone(),
            family: case.family.clone(),
            title: case.title.clone(),
            spec: case.spec.clone(),
            level: case.level,
            outcome: Outcome::NotRun,
            reason: why.into(),
            expected: None,
            actual: None,
            duration_ms: 0,
            duration: Duration::ZERO,
            handshake_failed: false,
            transcript: Vec::new(),
            first_attempt: None,
            flaky: false,
        }
    }

    /// Folds a confirmation run into this first attempt: the confirmation
    /// decides, the first attempt is kept for the report.
    pub fn confirmed_by(self, second: CaseResult) -> CaseResult {
        let first = Attempt {
            outcome: self.outcome,
            reason: self.reason,
            duration_ms: self.duration_ms,
        };
        let flaky = second.outcome != first.outcome
            && matches!(second.outcome, Outcome::Pass | Outcome::Info);
        CaseResult {
            first_attempt: Some(first),
            flaky,
            ..second
        }
    }
}

/// Applies the case's level to a run.
pub fn judge(case: &Case, run: Run, transcript: &Transcript, duration: Duration) -> CaseResult {
    let (outcome, reason, finding) = if let Some(u) = run.unsupported {
        (Outcome::Unsupported, u, None)
    } else if let Some(e) = run.error {
        (Outcome::Error, e, None)
    } else if let Some(f) = run.failure {
        match case.level {
            Level::Must => (Outcome::Fail, f.reason.clone(), Some(f)),
            Level::Should => (Outcome::NonStrict, f.reason.clone(), Some(f)),
            Level::Info => (Outcome::Info, format!("observed: {}", f.reason), Some(f)),
        }
    } else if let Some(i) = run.info {
        (Outcome::Info, i, None)
    } else if let Some(f) = run.non_strict.into_iter().next() {
        match case.level {
            Level::Info => (Outcome::Info, format!("observed: {}", f.reason), Some(f)),
            _ => (Outcome::NonStrict, f.reason.clone(), Some(f)),
        }
    } else {
        let s = run.summary.unwrap_or_else(|| "as expected".to_string());
        match case.level {
            Level::Info => (Outcome::Info, format!("observed: {s}"), None),
            _ => (Outcome::Pass, s, None),
        }
    };
    CaseResult {
        id: case.id.clone(),
        family: case.family.clone(),
        title: case.title.clone(),
        spec: case.spec.clone(),
        level: case.level,
        outcome,
        reason,
        expected: finding.as_ref().map(|f| f.expected.clone()),
        actual: finding.map(|f| f.actual),
        duration_ms: duration.as_millis() as u64,
        duration,
        handshake_failed: run.handshake_failed,
        transcript: transcript.entries(),
        first_attempt: None,
        flaky: false,
    }
}

/// Applies the known-failing list: failures become `xfail`, passes `xpass`.
pub fn apply_known_failing(result: &mut CaseResult, listed: bool, strict: bool) {
    if !listed {
        return;
    }
    if result.outcome.fails_run(strict) || result.outcome == Outcome::NonStrict && strict {
        result.outcome = Outcome::Xfail;
        result.reason = format!("known failure: {}", result.reason);
    } else if result.outcome == Outcome::Pass {
        result.outcome = Outcome::Xpass;
        result.reason =
            "listed as known-failing but passed: remove the stale entry from the known-failing file"
                .to_string();
    }
}

/// Runs a driver with a hard bound: past `budget` the case fails (the
/// target never let it finish) instead of hanging the run. Here, beside
/// [`Run`], so drivers that bound themselves need not import the engine.
pub async fn within(budget: Duration, driver: impl Future<Output = Run>) -> Run {
    match tokio::time::timeout(budget, driver).await {
        Ok(run) => run,
        Err(_) => Run {
            failure: Some(Finding::new(
                format!(
                    "the case budget ran out: the case did not finish within {}",
                    crate::text::duration(budget)
                ),
                "the target answers within the case budget",
                "still waiting",
            )),
            ..Run::default()
        },
    }
}
