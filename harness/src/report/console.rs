//! Human output: a line per case as it finishes, then the details of every
//! case that needs attention, then the summary last.

use std::io::{self, Write};

use super::{RunInfo, Summary};
use crate::outcome::{CaseResult, Outcome};
use crate::transcript::render as render_transcript;

/// Transcript lines shown per failing case on the console (the JSON report
/// has them all).
const CONSOLE_TRANSCRIPT_LINES: usize = 40;

pub fn progress(out: &mut dyn Write, done: usize, total: usize, r: &CaseResult) -> io::Result<()> {
    let width = total.to_string().len();
    write!(
        out,
        "[{done:>width$}/{total}] {:<11} {} ({} ms)",
        r.outcome.as_str(),
        r.id,
        r.duration_ms
    )?;
    if r.outcome != Outcome::Pass {
        write!(out, ": {}", r.reason)?;
    }
    writeln!(out)
}

fn needs_attention(o: Outcome) -> bool {
    matches!(
        o,
        Outcome::Fail | Outcome::Error | Outcome::Xpass | Outcome::NonStrict
    )
}

pub fn details(out: &mut dyn Write, results: &[CaseResult]) -> io::Result<()> {
    for r in results.iter().filter(|r| needs_attention(r.outcome)) {
        writeln!(out)?;
        writeln!(
            out,
            "{} {}  [{}, {}]",
            r.outcome.as_str().to_uppercase(),
            r.id,
            r.level,
            r.spec
        )?;
        writeln!(out, "  {}", r.title)?;
        writeln!(out, "  reason:   {}", r.reason)?;
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

pub fn summary(out: &mut dyn Write, info: &RunInfo, results: &[CaseResult]) -> io::Result<()> {
    let s = Summary::of(results);
    writeln!(out)?;
    if info.interrupted {
        writeln!(
            out,
            "interrupted: {} of {} selected cases did not run",
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
        "{} cases in {:.2}s: {}",
        s.total,
        info.duration.as_secs_f64(),
        parts.join(", ")
    )?;
    Ok(())
}
