//! Human output, in three levels (quiet, normal, verbose): progress while
//! the run goes, the details of the cases that need attention, the
//! findings grouped by reason, and the verdict as the last line.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use super::{Group, RunInfo, Summary, findings};
use crate::engine::Event;
use crate::outcome::{CaseResult, Outcome};
use crate::transcript::render as render_transcript;

/// Transcript lines shown per failing case on the console (the JSON report
/// has them all).
const CONSOLE_TRANSCRIPT_LINES: usize = 40;

/// Ids listed under a group of findings that do not fail the run before
/// "... and N more".
const IDS_SHOWN_FOR_NON_FAILING: usize = 5;

/// How often a console that is not a terminal says how far the run is.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// How much the console says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Only the findings, grouped, and the verdict.
    Quiet,
    /// Progress, a line for each case that fails, details of failures.
    #[default]
    Normal,
    /// A line for every case and the details of every case that did not pass.
    Verbose,
}

/// ANSI colour, or none.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn outcome(self, o: Outcome, text: &str) -> String {
        let code = match o {
            Outcome::Pass => "32",
            Outcome::Fail | Outcome::Error | Outcome::Xpass => "1;31",
            Outcome::NonStrict => "33",
            Outcome::Xfail => "35",
            Outcome::Info | Outcome::Unsupported | Outcome::NotRun => "2",
        };
        self.paint(code, text)
    }

    fn verdict(self, text: &str) -> String {
        let code = if text.starts_with("PASSED") {
            "1;32"
        } else {
            "1;31"
        };
        self.paint(code, text)
    }
}

/// Whether an outcome gets its details printed at this level.
fn shows_details(o: Outcome, level: Verbosity, strict: bool) -> bool {
    match level {
        Verbosity::Quiet => false,
        Verbosity::Normal => {
            matches!(o, Outcome::Fail | Outcome::Error | Outcome::Xpass)
                || (strict && o == Outcome::NonStrict)
        }
        Verbosity::Verbose => matches!(
            o,
            Outcome::Fail | Outcome::Error | Outcome::Xpass | Outcome::NonStrict
        ),
    }
}

/// Whether a finished case gets its own progress line at this level.
fn shows_line(o: Outcome, level: Verbosity, strict: bool) -> bool {
    match level {
        Verbosity::Quiet => false,
        Verbosity::Normal => shows_details(o, level, strict),
        Verbosity::Verbose => true,
    }
}

/// The live part of the console: turns engine events into lines.
pub struct Progress {
    level: Verbosity,
    style: Style,
    strict: bool,
    /// A terminal: a status line is redrawn in place.
    tty: bool,
    status_shown: bool,
    last_progress: Instant,
    passed: usize,
    failing: usize,
}

impl Progress {
    pub fn new(level: Verbosity, style: Style, strict: bool, tty: bool) -> Progress {
        Progress {
            level,
            style,
            strict,
            tty,
            status_shown: false,
            last_progress: Instant::now(),
            passed: 0,
            failing: 0,
        }
    }

    fn clear_status(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.status_shown {
            write!(out, "\r\x1b[2K")?;
            self.status_shown = false;
        }
        Ok(())
    }

    pub fn event(&mut self, out: &mut dyn Write, ev: &Event<'_>) -> io::Result<()> {
        if self.level == Verbosity::Quiet {
            return Ok(());
        }
        self.clear_status(out)?;
        match ev {
            Event::CaseFinished {
                result,
                done,
                total,
            } => {
                if result.outcome.fails_run(self.strict) {
                    self.failing += 1;
                } else {
                    self.passed += 1;
                }
                if shows_line(result.outcome, self.level, self.strict) {
                    line(out, self.style, *done, *total, result)?;
                }
                if self.tty {
                    write!(
                        out,
                        "[{done}/{total}] {} ok, {} failing",
                        self.passed,
                        self.style.paint(
                            if self.failing > 0 { "1;31" } else { "2" },
                            &self.failing.to_string()
                        )
                    )?;
                    self.status_shown = true;
                } else if self.last_progress.elapsed() >= PROGRESS_EVERY && done < total {
                    writeln!(
                        out,
                        "... {done} of {total} cases done, {} failing",
                        self.failing
                    )?;
                    self.last_progress = Instant::now();
                }
            }
            Event::Slow { id, elapsed } => {
                writeln!(
                    out,
                    "... still running after {}: {id}",
                    crate::text::duration(Duration::from_secs(elapsed.as_secs()))
                )?;
            }
            Event::Confirming { count, timeout } => {
                writeln!(
                    out,
                    "... confirming {} alone, with a {} timeout",
                    crate::text::count(*count, "failing verdict", "failing verdicts"),
                    crate::text::duration(*timeout)
                )?;
            }
        }
        out.flush()
    }

    /// Ends the live part (removes the status line).
    pub fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.clear_status(out)?;
        out.flush()
    }
}

fn line(
    out: &mut dyn Write,
    style: Style,
    done: usize,
    total: usize,
    r: &CaseResult,
) -> io::Result<()> {
    let width = total.to_string().len();
    write!(
        out,
        "[{done:>width$}/{total}] {} {} ({} ms)",
        style.outcome(r.outcome, &format!("{:<11}", r.outcome.as_str())),
        r.id,
        r.duration_ms
    )?;
    if r.outcome != Outcome::Pass {
        write!(out, ": {}", r.reason)?;
    }
    if r.flaky {
        write!(out, " [flaky: failed once, passed when run again alone]")?;
    }
    writeln!(out)
}

/// The details of every case that needs attention at this level.
pub fn details(
    out: &mut dyn Write,
    results: &[CaseResult],
    level: Verbosity,
    strict: bool,
    style: Style,
) -> io::Result<()> {
    for r in results
        .iter()
        .filter(|r| shows_details(r.outcome, level, strict))
    {
        writeln!(out)?;
        let why = match (r.outcome, r.level) {
            // The case as a whole is a MUST; one of its steps checks a
            // SHOULD, and only that step was missed.
            (Outcome::NonStrict, crate::case::Level::Must) => {
                format!("must case, a should step was not met; {}", r.spec)
            }
            _ => format!("{}, {}", r.level, r.spec),
        };
        writeln!(
            out,
            "{} {}  [{why}]",
            style.outcome(r.outcome, &r.outcome.as_str().to_uppercase()),
            r.id,
        )?;
        writeln!(out, "  {}", r.title)?;
        writeln!(out, "  reason:   {}", r.reason)?;
        if let Some(a) = &r.first_attempt {
            writeln!(
                out,
                "  confirmed: run again alone after a first attempt gave {}: {}",
                a.outcome, a.reason
            )?;
        }
        if let Some(e) = &r.expected {
            writeln!(out, "  expected: {e}")?;
        }
        if let Some(a) = &r.actual {
            for (i, line) in a.lines().enumerate() {
                writeln!(
                    out,
                    "  {}{line}",
                    if i == 0 { "actual:   " } else { "            " }
                )?;
            }
        }
        if !r.transcript.is_empty() && r.outcome != Outcome::Xpass {
            writeln!(out, "  transcript:")?;
            let skip = r.transcript.len().saturating_sub(CONSOLE_TRANSCRIPT_LINES);
            if skip > 0 {
                writeln!(out, "    ... {skip} earlier entries (see the JSON report)")?;
            }
            for line in render_transcript(&r.transcript[skip..], true).lines() {
                writeln!(out, "    {line}")?;
            }
        }
    }
    Ok(())
}

/// The cases that did not pass, grouped by reason, most serious first;
/// then the flaky ones.
pub fn grouped(
    out: &mut dyn Write,
    results: &[CaseResult],
    level: Verbosity,
    strict: bool,
    style: Style,
) -> io::Result<()> {
    let groups: Vec<Group> = findings(results);
    if !groups.is_empty() {
        writeln!(out)?;
        writeln!(out, "findings, grouped by reason:")?;
    }
    for g in &groups {
        writeln!(
            out,
            "  {} ({}): {}",
            style.outcome(g.outcome, g.outcome.as_str()),
            crate::text::count(g.cases.len(), "case", "cases"),
            g.reason
        )?;
        let all = g.outcome.fails_run(strict) || level == Verbosity::Verbose;
        let shown = if all {
            g.cases.len()
        } else {
            IDS_SHOWN_FOR_NON_FAILING
        };
        for id in g.cases.iter().take(shown) {
            writeln!(out, "      {id}")?;
        }
        if g.cases.len() > shown {
            writeln!(
                out,
                "      ... and {} more (--verbose or the JSON report lists them)",
                g.cases.len() - shown
            )?;
        }
    }
    let flaky: Vec<&CaseResult> = results.iter().filter(|r| r.flaky).collect();
    if !flaky.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "flaky ({}: failed once, passed when run again alone; not failing the run):",
            crate::text::count(flaky.len(), "case", "cases")
        )?;
        for r in flaky {
            let first = r.first_attempt.as_ref().map_or("", |a| a.reason.as_str());
            writeln!(out, "      {}: first attempt: {first}", r.id)?;
        }
    }
    Ok(())
}

/// The counts line, with the verdict in front: the last line of a run.
pub fn summary(
    out: &mut dyn Write,
    info: &RunInfo,
    results: &[CaseResult],
    style: Style,
) -> io::Result<()> {
    let s = Summary::of(results);
    writeln!(out)?;
    if info.interrupted() {
        writeln!(
            out,
            "stopped early: {} of {} selected cases did not run",
            info.not_run.len(),
            info.not_run.len() + results.len()
        )?;
    }
    let parts: Vec<String> = Outcome::ALL
        .iter()
        .filter(|o| s.count(**o) > 0 || matches!(o, Outcome::Pass | Outcome::Fail))
        .map(|o| format!("{} {}", s.count(*o), o.as_str()))
        .collect();
    writeln!(
        out,
        "{}: {} in {:.2}s: {}",
        style.verdict(&info.verdict),
        crate::text::count(s.total, "case", "cases"),
        info.duration.as_secs_f64(),
        parts.join(", ")
    )?;
    Ok(())
}
