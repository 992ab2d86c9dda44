//! A Markdown summary sized for a CI job page (`$GITHUB_STEP_SUMMARY`):
//! totals per target, the findings grouped by cause, the failing ids with
//! their reasons, the known-failing list's changes, and what changed
//! between runs of one target. Reasons carry text from the target, so
//! every piece of report text is escaped before it reaches the page.

use std::fmt::Write as _;

use super::load::{BenchReport, RunReport};
use super::matrix::{Change, Column, Matrix, Moved};
use super::{Group, group_by_cause};
use crate::outcome::Outcome;

/// Failing ids listed per target before "... and N more" (the JSON and
/// the HTML report have them all; a job summary has a size limit).
const FAILING_LISTED: usize = 100;
/// Ids shown inline under one finding.
const IDS_PER_FINDING: usize = 8;
/// Changed ids listed per kind of change.
const CHANGES_LISTED: usize = 50;
/// Characters of a reason kept (reasons quote the target's bytes).
const REASON_CHARS: usize = 300;

/// Text from a report, safe in Markdown: one line, no markup, no HTML.
/// Text is always inline (never starts a line), so only what acts inside
/// a line is escaped: emphasis, code, links, tables, HTML, and what GitHub
/// turns into links (`http://`, `www.`, `@user`, `#123`).
pub fn text(s: &str) -> String {
    let chars: Vec<char> = s.chars().take(REASON_CHARS + 1).collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        if i == REASON_CHARS {
            out.push('…');
            break;
        }
        let next = chars.get(i + 1).copied();
        let link = match c {
            ':' => next == Some('/') && chars.get(i + 2) == Some(&'/'),
            '.' => {
                i >= 3
                    && chars[i - 3..i]
                        .iter()
                        .collect::<String>()
                        .eq_ignore_ascii_case("www")
            }
            '#' => next.is_some_and(|n| n.is_ascii_digit()),
            '@' => true,
            _ => false,
        };
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            _ if link => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A case id (or pattern) as inline code; ids come from case files, but a
/// report is only a file, so anything that could leave the span is text.
pub fn code(s: &str) -> String {
    if s.is_empty() || s.chars().any(|c| c == '`' || c.is_control()) || s.len() > 200 {
        text(s)
    } else {
        format!("`{s}`")
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A column's name in headings.
fn label(c: &Column) -> String {
    text(&c.key)
}

/// Outcomes in report order, those some column has.
fn outcomes_present(m: &Matrix) -> Vec<String> {
    let mut v: Vec<String> = Outcome::ALL
        .iter()
        .map(|o| o.as_str().to_string())
        .filter(|o| {
            m.columns
                .iter()
                .any(|c| c.run.counts().contains_key(o.as_str()))
        })
        .collect();
    for c in &m.columns {
        for k in c.run.counts().keys() {
            if !v.iter().any(|o| o == k) {
                v.push(k.to_string());
            }
        }
    }
    v
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// The totals table: a column per target, a row per fact.
fn totals(out: &mut String, m: &Matrix) {
    let _ = write!(out, "| |");
    for c in &m.columns {
        let _ = write!(out, " {} |", label(c));
    }
    let _ = write!(out, "\n|---|");
    for _ in &m.columns {
        let _ = write!(out, "---|");
    }
    out.push('\n');
    let mut row = |name: &str, f: &dyn Fn(&RunReport) -> String| {
        let _ = write!(out, "| {name} |");
        for c in &m.columns {
            let _ = write!(out, " {} |", f(c.run));
        }
        out.push('\n');
    };
    row("verdict", &|r| format!("**{}**", text(&r.verdict)));
    row("cases", &|r| r.cases.len().to_string());
    for o in outcomes_present(m) {
        row(&text(&o), &|r| {
            r.counts().get(o.as_str()).copied().unwrap_or(0).to_string()
        });
    }
    row("run time", &|r| seconds(r.duration_ms));
    row("transport", &|r| text(&r.transport()));
    row("profile", &|r| {
        r.config.profile.as_deref().map_or("none".into(), text)
    });
}

fn finding(out: &mut String, g: &Group) {
    let shown: Vec<String> = g
        .cases
        .iter()
        .take(IDS_PER_FINDING)
        .map(|id| code(id))
        .collect();
    let more = g.cases.len().saturating_sub(IDS_PER_FINDING);
    let _ = write!(
        out,
        "- **{}** ({}): {}<br>{}",
        g.outcome,
        plural(g.cases.len(), "case", "cases"),
        text(&g.reason),
        shown.join(", ")
    );
    if more > 0 {
        let _ = write!(out, " and {more} more");
    }
    out.push('\n');
}

fn failing_ids(out: &mut String, r: &RunReport) {
    let failing: Vec<_> = r
        .cases
        .iter()
        .filter(|c| c.outcome().is_some_and(|o| o.fails_run(r.strict)))
        .collect();
    if failing.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n<details><summary>{} failing the run</summary>\n",
        plural(failing.len(), "case", "cases")
    );
    for c in failing.iter().take(FAILING_LISTED) {
        let _ = writeln!(
            out,
            "- {} ({}): {}",
            code(&c.id),
            text(&c.outcome),
            text(&c.reason)
        );
    }
    if failing.len() > FAILING_LISTED {
        let _ = writeln!(
            out,
            "- … and {} more (see the JSON or HTML report)",
            failing.len() - FAILING_LISTED
        );
    }
    out.push_str("\n</details>\n");
}

/// The known-failing list's news: entries to remove (xpass, stale), and
/// how many known failures still fail.
fn known_failing(out: &mut String, r: &RunReport) {
    let xpass: Vec<&str> = r
        .cases
        .iter()
        .filter(|c| c.outcome == "xpass")
        .map(|c| c.id.as_str())
        .collect();
    let xfail = r.cases.iter().filter(|c| c.outcome == "xfail").count();
    if xpass.is_empty() && r.known_failing_stale.is_empty() && xfail == 0 {
        return;
    }
    let file = r.config.known_failing.as_deref().unwrap_or("known-failing");
    let _ = writeln!(out, "\n**Known-failing list** ({})\n", text(file));
    if !xpass.is_empty() {
        let ids: Vec<String> = xpass.iter().map(|id| code(id)).collect();
        let _ = writeln!(
            out,
            "- now passing, remove from the list: {}",
            ids.join(", ")
        );
    }
    for s in &r.known_failing_stale {
        let why = if s.matches_unselected {
            "matches only cases this run did not select"
        } else {
            "matches no case: fix or remove it"
        };
        let _ = writeln!(out, "- entry {} (line {}) {why}", code(&s.pattern), s.line);
    }
    if xfail > 0 {
        let _ = writeln!(
            out,
            "- {} still failing as listed",
            plural(xfail, "known failure", "known failures")
        );
    }
}

fn moved_list(out: &mut String, title: &str, list: &[Moved]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "- {title} ({}):", list.len());
    for m in list.iter().take(CHANGES_LISTED) {
        let _ = writeln!(
            out,
            "  - {} {} → {}: {}",
            code(m.id),
            text(m.before.unwrap_or("absent")),
            text(m.after.unwrap_or("absent")),
            text(m.reason)
        );
    }
    if list.len() > CHANGES_LISTED {
        let _ = writeln!(out, "  - … and {} more", list.len() - CHANGES_LISTED);
    }
}

fn change(out: &mut String, c: &Change) {
    let _ = writeln!(
        out,
        "\n#### {}: {} → {}\n",
        text(&c.key),
        text(&c.from.started_at),
        text(&c.to.started_at)
    );
    if c.is_empty() {
        out.push_str("No case changed its outcome.\n");
        return;
    }
    moved_list(out, "newly failing", &c.newly_failing);
    moved_list(out, "newly passing", &c.newly_passing);
    moved_list(out, "other changes", &c.other);
}

/// Bench runs, one table row each.
fn bench(out: &mut String, runs: &[&BenchReport]) {
    out.push_str("\n### Benchmarks\n\n| scenario | target | ops/s | p50 µs | p99 µs | p99.9 µs | max µs | errors |\n|---|---|---|---|---|---|---|---|\n");
    for b in runs {
        let r = &b.results;
        let l = &r.latency_us;
        let errors: u64 = r.errors.values().sum();
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {errors} |",
            text(&b.scenario),
            text(&b.target),
            r.per_sec,
            l.p50,
            l.p99,
            l.p999,
            l.max
        );
    }
}

/// The summary of every run in `m` and every bench run.
pub fn render(m: &Matrix, benches: &[&BenchReport]) -> String {
    let mut out = String::new();
    let heading = match m.columns.as_slice() {
        [one] => format!("pushspec: {}", text(&one.run.verdict)),
        [] => "pushspec benchmarks".to_string(),
        cols => format!("pushspec: {}", plural(cols.len(), "target", "targets")),
    };
    let _ = writeln!(out, "## {heading}\n");
    if !m.columns.is_empty() {
        totals(&mut out, m);
    }
    for c in &m.columns {
        let r = c.run;
        let groups = group_by_cause(
            r.cases
                .iter()
                .filter_map(|c| Some((c.id.as_str(), c.outcome()?, c.reason.as_str()))),
        );
        let _ = writeln!(out, "\n### {}\n", label(c));
        if r.interrupted || r.stopped_by.is_some() {
            let _ = writeln!(
                out,
                "Stopped early ({}): {} not run.\n",
                text(r.stopped_by.as_deref().unwrap_or("interrupted")),
                plural(r.not_run.len(), "case", "cases")
            );
        }
        if groups.is_empty() {
            out.push_str("No findings: every case passed or had no verdict to give.\n");
        } else {
            let _ = writeln!(out, "Findings, grouped by cause:\n");
            for g in &groups {
                finding(&mut out, g);
            }
        }
        if !r.flaky.is_empty() {
            let ids: Vec<String> = r.flaky.iter().map(|id| code(id)).collect();
            let _ = writeln!(
                out,
                "\nFlaky (failed, then passed alone): {}",
                ids.join(", ")
            );
        }
        failing_ids(&mut out, r);
        known_failing(&mut out, r);
    }
    if !m.changes.is_empty() {
        out.push_str("\n### What changed\n");
        for c in &m.changes {
            change(&mut out, c);
        }
    }
    if !benches.is_empty() {
        bench(&mut out, benches);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_text_cannot_become_markup() {
        let hostile = "<script>x</script> **b** [l](http://e) `c` | d\n# h @u #1 www.x";
        let t = text(hostile);
        assert!(!t.contains('<') && !t.contains('\n'), "{t}");
        assert!(t.contains("\\*\\*b\\*\\*") && t.contains("\\|"), "{t}");
        assert!(
            t.contains("http\\://e") && t.contains("\\@u \\#1 www\\.x"),
            "{t}"
        );
        assert_eq!(text("close 1002: 1.5 s"), "close 1002: 1.5 s");
        assert_eq!(code("ws.a.b"), "`ws.a.b`");
        assert!(!code("a`b").starts_with('`'));
    }
}
