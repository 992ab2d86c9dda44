//! Raw `run` flags become one resolved configuration, before any side
//! effect: every file read, every URL and report destination checked. A
//! problem here is exit code 2 and no case has run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ColorChoice, ConfigError, RunArgs, load_cases};
use crate::case::Case;
use crate::case::select::{self, KnownFailing, Patterns, Selection};
use crate::engine::Targets;
use crate::profile::Profile;
use crate::report::console::Verbosity;
use crate::sse::run::SseTarget;
use crate::target;

/// Where a report goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Dest {
    Stdout,
    File(PathBuf),
}

pub(super) struct RunConfig {
    /// Every case loaded (for telling a typo from an unselected case).
    pub all_ids: Vec<String>,
    /// The cases selected by the patterns, before the targets are known.
    pub selected: Vec<Case>,
    pub patterns: Vec<String>,
    pub skip: Vec<String>,
    pub unmatched_patterns: Vec<String>,
    pub known_failing: Option<KnownFailing>,
    pub known_failing_path: Option<PathBuf>,
    pub profile: Option<Profile>,
    pub profile_path: Option<PathBuf>,
    pub cases_dir: Option<PathBuf>,
    /// `None`: the embedded reference server.
    pub targets: Option<Targets>,
    /// The embedded server serves TLS (`--tls`).
    pub embedded_tls: bool,
    pub json: Option<Dest>,
    pub junit: Option<Dest>,
    pub html: Option<Dest>,
    pub timeout: Duration,
    pub run_timeout: Option<Duration>,
    pub jobs: usize,
    pub strict: bool,
    pub skip_timing: bool,
    pub verbosity: Verbosity,
    pub color: ColorChoice,
}

impl RunConfig {
    /// The run budget: as given, or 60 s plus each case's share of ten
    /// timeouts spread over the jobs: far above what a live target needs
    /// (most cases take milliseconds), low enough that a flooding or
    /// trickling target cannot hold a CI job for hours.
    pub(super) fn run_budget(&self, cases: usize) -> Duration {
        self.run_timeout.unwrap_or_else(|| {
            let per_case = self.timeout * 10;
            Duration::from_secs(60) + per_case * (cases as u32) / (self.jobs.max(1) as u32)
        })
    }
}

fn dest(p: &Option<PathBuf>) -> Option<Dest> {
    p.as_ref().map(|p| {
        if p.as_os_str() == "-" {
            Dest::Stdout
        } else {
            Dest::File(p.clone())
        }
    })
}

/// The report can be written there: its folder exists and takes a file.
pub(super) fn check_writable(path: &Path) -> Result<(), ConfigError> {
    let err = |source| ConfigError::Report {
        file: path.display().to_string(),
        source,
    };
    if path.is_dir() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        )));
    }
    let probe = crate::report::temp_path(path);
    std::fs::write(&probe, b"").map_err(err)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Report destinations (flag, where) can all be written, and no two
/// share a file or standard output: checked before anything runs.
pub(super) fn check_destinations(
    reports: &[(&'static str, &Option<Dest>)],
) -> Result<(), ConfigError> {
    for (i, (a, da)) in reports.iter().enumerate() {
        for (b, db) in &reports[i + 1..] {
            match (da, db) {
                (Some(Dest::Stdout), Some(Dest::Stdout)) => {
                    return Err(if (*a, *b) == ("--json", "--junit") {
                        ConfigError::BothReportsToStdout
                    } else {
                        ConfigError::ReportsShareStdout(a, b)
                    });
                }
                (Some(Dest::File(x)), Some(Dest::File(y)))
                    if std::path::absolute(x).ok() == std::path::absolute(y).ok() =>
                {
                    let file = x.display().to_string();
                    return Err(if (*a, *b) == ("--json", "--junit") {
                        ConfigError::SameReportFile(file)
                    } else {
                        ConfigError::ReportsShareFile(a, b, file)
                    });
                }
                _ => {}
            }
        }
    }
    for (_, d) in reports {
        if let Some(Dest::File(p)) = d {
            check_writable(p)?;
        }
    }
    Ok(())
}

pub(super) fn resolve(args: &RunArgs) -> Result<RunConfig, ConfigError> {
    if args.jobs == 0 {
        return Err(ConfigError::Jobs);
    }
    let cases = load_cases(&args.cases)?;
    let selection = Selection::new(Patterns::new(&args.patterns)?, Patterns::new(&args.skip)?);
    let all_ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
    let id_refs: Vec<&str> = all_ids.iter().map(String::as_str).collect();
    let unmatched_patterns = selection
        .unmatched_includes(&id_refs)
        .into_iter()
        .map(str::to_string)
        .collect();
    let known_failing = args
        .known_failing
        .as_deref()
        .map(select::load_known_failing)
        .transpose()?;
    let profile = args.profile.as_deref().map(Profile::load).transpose()?;
    let targets = if args.ws.is_none() && args.sse.is_none() {
        if args.publish.is_some() {
            return Err(ConfigError::PublishWithoutSse);
        }
        None
    } else {
        let mut t = Targets {
            ws: args.ws.as_deref().map(target::parse_ws).transpose()?,
            sse: None,
        };
        if let Some(sse) = &args.sse {
            t.sse = Some(SseTarget {
                stream: target::parse_http(sse)?,
                publish: args
                    .publish
                    .as_deref()
                    .map(target::parse_http)
                    .transpose()?,
            });
        } else if args.publish.is_some() {
            return Err(ConfigError::PublishWithoutSse);
        }
        Some(t)
    };
    let mut targets = targets;
    args.tls.apply(targets.as_mut())?;

    let (json, junit, html) = (dest(&args.json), dest(&args.junit), dest(&args.html));
    check_destinations(&[("--json", &json), ("--junit", &junit), ("--html", &html)])?;

    let selected = cases
        .into_iter()
        .filter(|c| selection.selects(&c.id))
        .collect();
    Ok(RunConfig {
        all_ids,
        selected,
        patterns: args.patterns.clone(),
        skip: args.skip.clone(),
        unmatched_patterns,
        known_failing,
        known_failing_path: args.known_failing.clone(),
        profile,
        profile_path: args.profile.clone(),
        cases_dir: args.cases.clone(),
        targets,
        embedded_tls: args.tls.tls,
        json,
        junit,
        html,
        timeout: args.timeout,
        run_timeout: args.run_timeout,
        jobs: args.jobs,
        strict: args.strict,
        skip_timing: args.skip_timing,
        verbosity: args.verbosity(),
        color: args.color,
    })
}
