//! Exit codes (a public contract, documented in the README) and the pure
//! function from a run's final statistics to its code and verdict line.

use crate::engine::Stop;

/// Every selected case passed (non-strict allowed unless --strict).
pub const OK: i32 = 0;
/// At least one failure, a known-failing case that now passes, a stale
/// known-failing entry, or the run budget ran out.
pub const FAILED: i32 = 1;
/// Usage or configuration error.
pub const USAGE: i32 = 2;
/// Target unreachable, not the kind of endpoint given, or no WebSocket
/// handshake possible at all.
pub const UNREACHABLE: i32 = 3;
/// No case selected.
pub const NO_CASES: i32 = 4;
/// Interrupted (SIGINT); partial reports were written.
pub const INTERRUPTED: i32 = 130;
/// Terminated (SIGTERM); partial reports were written.
pub const TERMINATED: i32 = 143;

/// What the exit status depends on, counted once the run is over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub stop: Option<Stop>,
    pub fail: usize,
    pub error: usize,
    pub xpass: usize,
    pub non_strict: usize,
    pub strict: bool,
    /// Cases that did not run because a prerequisite failed.
    pub not_run: usize,
    /// Why the target could not be tested at all (probe, or no handshake
    /// succeeded in any case).
    pub unreachable: Option<String>,
    /// Known-failing entries that match no case at all.
    pub stale_entries: usize,
}

/// The exit code of a finished run.
pub fn status(s: &Stats) -> i32 {
    match s.stop {
        Some(Stop::Interrupted) => return INTERRUPTED,
        Some(Stop::Terminated) => return TERMINATED,
        Some(Stop::RunBudget(_)) | None => {}
    }
    if s.unreachable.is_some() {
        return UNREACHABLE;
    }
    let failed = s.fail + s.error + s.xpass > 0
        || (s.strict && s.non_strict > 0)
        || s.stale_entries > 0
        || matches!(s.stop, Some(Stop::RunBudget(_)));
    if failed { FAILED } else { OK }
}

/// The last line's first words: the verdict and, when it is not a pass,
/// every reason for it (so `--strict` failing on non-strict outcomes says so).
pub fn verdict(s: &Stats) -> String {
    match s.stop {
        Some(Stop::Interrupted) => return "INTERRUPTED (SIGINT)".into(),
        Some(Stop::Terminated) => return "TERMINATED (SIGTERM)".into(),
        _ => {}
    }
    if let Some(why) = &s.unreachable {
        return format!("NOT TESTED ({why})");
    }
    let mut why = Vec::new();
    if s.fail > 0 {
        why.push(format!("{} fail", s.fail));
    }
    if s.error > 0 {
        why.push(format!("{} error", s.error));
    }
    if s.xpass > 0 {
        why.push(format!(
            "{} xpass: known-failing {} now passing",
            s.xpass,
            if s.xpass == 1 { "case" } else { "cases" }
        ));
    }
    if s.strict && s.non_strict > 0 {
        why.push(format!("{} non-strict under --strict", s.non_strict));
    }
    if s.stale_entries > 0 {
        why.push(format!(
            "{} known-failing {} matching no case",
            s.stale_entries,
            if s.stale_entries == 1 {
                "entry"
            } else {
                "entries"
            }
        ));
    }
    if let Some(Stop::RunBudget(_)) = s.stop {
        why.push("the run budget ran out".into());
    }
    if why.is_empty() {
        "PASSED".into()
    } else {
        format!("FAILED ({})", why.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_code() {
        let ok = Stats::default();
        assert_eq!(status(&ok), OK);
        assert_eq!(verdict(&ok), "PASSED");

        let non_strict = Stats {
            non_strict: 2,
            ..Stats::default()
        };
        assert_eq!(status(&non_strict), OK);
        let strict = Stats {
            strict: true,
            ..non_strict.clone()
        };
        assert_eq!(status(&strict), FAILED);
        assert_eq!(verdict(&strict), "FAILED (2 non-strict under --strict)");

        for s in [
            Stats {
                fail: 1,
                ..Stats::default()
            },
            Stats {
                error: 1,
                ..Stats::default()
            },
            Stats {
                xpass: 1,
                ..Stats::default()
            },
            Stats {
                stale_entries: 1,
                ..Stats::default()
            },
            Stats {
                stop: Some(Stop::RunBudget(Duration::from_secs(1))),
                ..Stats::default()
            },
        ] {
            assert_eq!(status(&s), FAILED, "{s:?}");
            assert!(verdict(&s).starts_with("FAILED ("), "{s:?}");
        }

        let down = Stats {
            fail: 3,
            not_run: 500,
            unreachable: Some("no WebSocket handshake succeeded".into()),
            ..Stats::default()
        };
        assert_eq!(status(&down), UNREACHABLE);
        assert!(verdict(&down).starts_with("NOT TESTED"));

        let int = Stats {
            stop: Some(Stop::Interrupted),
            fail: 1,
            ..Stats::default()
        };
        assert_eq!(status(&int), INTERRUPTED);
        let term = Stats {
            stop: Some(Stop::Terminated),
            unreachable: Some("x".into()),
            ..Stats::default()
        };
        assert_eq!(status(&term), TERMINATED);
        assert_eq!(verdict(&term), "TERMINATED (SIGTERM)");
        assert_eq!(
            verdict(&Stats {
                fail: 2,
                error: 1,
                xpass: 1,
                ..Stats::default()
            }),
            "FAILED (2 fail, 1 error, 1 xpass: known-failing case now passing)"
        );
    }
}
