//! The HTML report: one self-contained file (inline CSS and script, no
//! network) with a card per target, what changed between runs of one
//! target, bench tables and a latency plot, and the matrix of case id x
//! target grouped by family. Each cell opens the case: its text travels in
//! a JSON block and is set with `textContent`, so a hostile transcript
//! stays text; a content security policy with a per-page nonce keeps any
//! markup that slipped through from running or loading anything.

use std::fmt::Write as _;

use serde::Serialize;

use super::escape::escape;
use super::load::{BenchReport, CaseReport, RunReport};
use super::matrix::{Change, Column, Matrix, Moved};
use super::plot;
use crate::outcome::Outcome;

const CSS: &str = include_str!("assets/report.css");
const SCRIPT: &str = include_str!("assets/report.js");

/// JSON that cannot end its `<script>` block or open a comment there:
/// `<`, `>` and `&` only occur inside JSON strings, where `\u` escapes
/// mean the same.
fn script_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .expect("report data serialises")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The CSS class of an outcome: known outcomes by name, anything else
/// (a newer build's outcome) one neutral class.
fn class(outcome: &str) -> String {
    match Outcome::ALL.into_iter().find(|o| o.as_str() == outcome) {
        Some(o) => format!("o o-{}", o.as_str()),
        None => "o".to_string(),
    }
}

#[derive(Serialize)]
struct Data<'a> {
    columns: Vec<&'a str>,
    rows: Vec<RowData<'a>>,
}

#[derive(Serialize)]
struct RowData<'a> {
    id: &'a str,
    cells: Vec<Option<CellData<'a>>>,
}

#[derive(Serialize)]
struct CellData<'a> {
    outcome: &'a str,
    title: &'a str,
    spec: &'a str,
    level: &'a str,
    requirement: Option<&'a str>,
    reason: &'a str,
    expected: Option<&'a str>,
    actual: Option<&'a str>,
    duration_ms: u64,
    /// `[at_us, dir, text]`: compact, a run has hundreds of these.
    transcript: Vec<(u64, &'a str, &'a str)>,
    first_attempt: Option<&'a super::load::Attempt>,
    flaky: bool,
}

impl<'a> CellData<'a> {
    fn of(c: &'a CaseReport) -> Self {
        CellData {
            outcome: &c.outcome,
            title: &c.title,
            spec: &c.spec,
            level: &c.level,
            requirement: c.requirement.as_deref(),
            reason: &c.reason,
            expected: c.expected.as_deref(),
            actual: c.actual.as_deref(),
            duration_ms: c.duration_ms,
            transcript: c
                .transcript
                .iter()
                .map(|e| (e.at_us, e.dir.as_str(), e.text.as_str()))
                .collect(),
            first_attempt: c.first_attempt.as_ref(),
            flaky: c.flaky,
        }
    }
}

/// A fresh nonce per page: markup smuggled into report text cannot know it.
fn nonce() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Outcomes in the standard order, then any unknown ones, with counts.
fn ordered_counts<'a>(
    counts: &std::collections::BTreeMap<&'a str, usize>,
) -> Vec<(&'a str, usize)> {
    let mut v: Vec<(&str, usize)> = Outcome::ALL
        .iter()
        .filter_map(|o| counts.get_key_value(o.as_str()).map(|(k, n)| (*k, *n)))
        .collect();
    for (k, n) in counts {
        if !v.iter().any(|(o, _)| o == k) {
            v.push((k, *n));
        }
    }
    v
}

fn card(out: &mut String, col: usize, c: &Column) {
    let r = c.run;
    let verdict_class = if r.verdict.starts_with("PASSED") {
        "o-pass"
    } else if r.verdict.is_empty() {
        ""
    } else {
        "o-fail"
    };
    let _ = write!(
        out,
        r#"<article class="card" data-col="{col}"><h3>{}</h3><p class="verdict {verdict_class}">{}</p><dl>"#,
        escape(&c.key),
        escape(if r.verdict.is_empty() {
            "(no verdict)"
        } else {
            &r.verdict
        })
    );
    let mut dd = |name: &str, value: &str| {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(name), escape(value));
    };
    if let Some(ws) = &r.targets.ws {
        dd("WebSocket", ws);
    }
    if let Some(sse) = &r.targets.sse {
        dd("SSE", sse);
    }
    if let Some(p) = &r.targets.publish {
        dd("publish", p);
    }
    dd("transport", &r.transport());
    dd("started", &r.started_at);
    dd("run time", &seconds(r.duration_ms));
    dd("profile", r.config.profile.as_deref().unwrap_or("none"));
    let caps: Vec<String> = r
        .targets
        .capabilities
        .iter()
        .map(|c| format!("{} ({})", c.name, c.source))
        .collect();
    dd(
        "capabilities",
        &if caps.is_empty() {
            "none".to_string()
        } else {
            caps.join(", ")
        },
    );
    if r.strict {
        dd("strict", "yes: non-strict outcomes fail the run");
    }
    if let Some(s) = &r.stopped_by {
        dd(
            "stopped by",
            &format!("{s} ({} cases not run)", r.not_run.len()),
        );
    }
    if let Some(k) = &r.config.known_failing {
        dd("known-failing", k);
    }
    if !r.flaky.is_empty() {
        dd("flaky", &r.flaky.join(", "));
    }
    for s in &r.known_failing_stale {
        dd(
            "stale entry",
            &format!(
                "{} (line {}){}",
                s.pattern,
                s.line,
                if s.matches_unselected {
                    ": matches only unselected cases"
                } else {
                    ": matches no case"
                }
            ),
        );
    }
    dd("report", &r.file);
    if !c.earlier.is_empty() {
        dd("earlier runs", &c.earlier.len().to_string());
    }
    let _ = write!(
        out,
        r#"</dl><ul class="counts"><li class="o"><span>total</span> <b>{}</b></li>"#,
        r.cases.len()
    );
    for (o, n) in ordered_counts(&r.counts()) {
        let _ = write!(
            out,
            r#"<li class="{}"><span>{}</span> <b>{n}</b></li>"#,
            class(o),
            escape(o)
        );
    }
    out.push_str("</ul></article>");
}

fn moved(out: &mut String, title: &str, list: &[Moved]) {
    if list.is_empty() {
        return;
    }
    let _ = write!(out, "<h4>{} ({})</h4><ul>", escape(title), list.len());
    for m in list {
        let (b, a) = (m.before.unwrap_or("absent"), m.after.unwrap_or("absent"));
        let _ = write!(
            out,
            r#"<li><code>{}</code> <span class="{}">{}</span> → <span class="{}">{}</span>: {}</li>"#,
            escape(m.id),
            class(b),
            escape(b),
            class(a),
            escape(a),
            escape(m.reason)
        );
    }
    out.push_str("</ul>");
}

fn change(out: &mut String, c: &Change) {
    let _ = write!(
        out,
        r#"<article class="change"><h3>{}: {} → {}</h3>"#,
        escape(&c.key),
        escape(&c.from.started_at),
        escape(&c.to.started_at)
    );
    if c.is_empty() {
        out.push_str("<p>No case changed its outcome.</p>");
    }
    moved(out, "newly failing", &c.newly_failing);
    moved(out, "newly passing", &c.newly_passing);
    moved(out, "other changes", &c.other);
    out.push_str("</article>");
}

fn bench(out: &mut String, runs: &[&BenchReport]) {
    out.push_str(r#"<section id="bench" class="bench"><h2>Benchmarks</h2><div class="scroll"><table><thead><tr>"#);
    for h in [
        "run",
        "scenario",
        "target",
        "started",
        "connections",
        "size (B)",
        "load",
        "ops/s",
        "MB/s",
        "per conn / TCP RTT",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "mean µs",
        "samples",
        "errors",
    ] {
        let _ = write!(out, r#"<th scope="col">{}</th>"#, escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    let names: Vec<String> = runs
        .iter()
        .enumerate()
        .map(|(i, b)| format!("#{} {} {}", i + 1, b.scenario, b.target))
        .collect();
    for (i, b) in runs.iter().enumerate() {
        let r = &b.results;
        let l = &r.latency_us;
        let load = match b.config.rate {
            Some(rate) => format!("open loop {rate}/s"),
            None => format!("pipeline {}", b.config.pipeline),
        };
        let errors = if r.errors.is_empty() {
            "none".to_string()
        } else {
            r.errors
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let cells = [
            format!("#{}", i + 1),
            b.scenario.clone(),
            b.target.clone(),
            b.started_at.clone(),
            b.config.connections.to_string(),
            b.config.size.to_string(),
            load,
            format!("{:.0}", r.per_sec),
            format!("{:.2}", r.bytes_per_sec / 1e6),
            r.per_connection_to_tcp_round_trips
                .map_or("-".into(), |x| format!("{x:.3}")),
            l.p50.to_string(),
            l.p90.to_string(),
            l.p99.to_string(),
            l.p999.to_string(),
            l.max.to_string(),
            format!("{:.1}", l.mean),
            l.count.to_string(),
            errors,
        ];
        out.push_str("<tr>");
        for c in cells {
            let _ = write!(out, "<td>{}</td>", escape(&c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    let with_delivery: Vec<(usize, &&BenchReport)> = runs
        .iter()
        .enumerate()
        .filter(|(_, b)| b.results.delivery.is_some())
        .collect();
    if !with_delivery.is_empty() {
        out.push_str("<h3>SSE delivery</h3><div class=\"scroll\"><table><tbody>");
        for (i, b) in with_delivery {
            let d = b.results.delivery.as_ref().expect("filtered");
            let facts: Vec<String> = d.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = write!(
                out,
                "<tr><th scope=\"row\">#{}</th><td>{}</td></tr>",
                i + 1,
                escape(&facts.join(", "))
            );
        }
        out.push_str("</tbody></table></div>");
    }
    if let Some(c) = runs.iter().find_map(|b| b.calibration.as_ref()) {
        let _ = write!(
            out,
            "<p class=\"sub\">Calibration of the first run: {:.0} TCP round trips/s, {:.1} MB/s on loopback; compare runs from different machines as ratios.</p>",
            c.tcp_round_trips_per_sec,
            c.tcp_bytes_per_sec / 1e6
        );
    }
    out.push_str("<h3>Latency percentiles</h3>");
    out.push_str(&plot::latency(runs, &names));
    out.push_str("</section>");
}

fn matrix<'a>(out: &mut String, m: &Matrix<'a>, data: &mut Data<'a>) {
    let mut present: Vec<&str> = Vec::new();
    for f in &m.families {
        for counts in &f.counts {
            for o in counts.keys() {
                if !present.contains(o) {
                    present.push(o);
                }
            }
        }
    }
    let order = |o: &str| {
        Outcome::ALL
            .iter()
            .position(|k| k.as_str() == o)
            .unwrap_or(usize::MAX)
    };
    present.sort_by_key(|o| order(o));
    let total: usize = m.families.iter().map(|f| f.rows.len()).sum();
    out.push_str(r#"<section id="cases"><h2>Cases</h2><form class="filters" id="filters" autocomplete="off"><fieldset><legend>outcome</legend>"#);
    for o in &present {
        let _ = write!(
            out,
            r#"<label class="{}"><input type="checkbox" name="outcome" value="{}" checked> {}</label>"#,
            class(o),
            escape(o),
            escape(o)
        );
    }
    out.push_str(r#"</fieldset><button type="button" id="only-problems">problems only</button><button type="button" id="all-outcomes">all outcomes</button><label>family <select id="family"><option value="">all families</option>"#);
    for f in &m.families {
        let _ = write!(
            out,
            r#"<option value="{}">{} ({})</option>"#,
            escape(f.name),
            escape(f.name),
            f.rows.len()
        );
    }
    let _ = write!(
        out,
        r#"</select></label><label>id <input type="search" id="search" placeholder="search case ids"></label><span id="shown" aria-live="polite">{total} of {total} cases shown</span></form><div class="scroll"><table id="matrix"><thead><tr><th scope="col">case</th>"#
    );
    for c in &m.columns {
        let _ = write!(out, r#"<th scope="col">{}</th>"#, escape(&c.key));
    }
    out.push_str("</tr></thead>");
    for f in &m.families {
        let _ = write!(
            out,
            r#"<tbody data-family="{}"><tr class="fam"><th scope="rowgroup">{} <span class="sub">({})</span></th>"#,
            escape(f.name),
            escape(f.name),
            f.rows.len()
        );
        for counts in &f.counts {
            let parts: Vec<String> = ordered_counts(counts)
                .into_iter()
                .map(|(o, n)| format!("{n} {}", escape(o)))
                .collect();
            let _ = write!(out, "<td>{}</td>", parts.join(" · "));
        }
        out.push_str("</tr>");
        for row in &f.rows {
            let r = data.rows.len();
            let mut outcomes: Vec<&str> = row
                .cells
                .iter()
                .flatten()
                .map(|c| c.outcome.as_str())
                .collect();
            outcomes.dedup();
            let _ = write!(
                out,
                r#"<tr data-id="{}" data-o="{}"><th scope="row"><code>{}</code></th>"#,
                escape(row.id),
                escape(&outcomes.join(" ")),
                escape(row.id)
            );
            for (c, cell) in row.cells.iter().enumerate() {
                match cell {
                    Some(case) => {
                        let _ = write!(
                            out,
                            r#"<td class="{}" data-o="{}"><button type="button" data-r="{r}" data-c="{c}" title="{}">{}</button></td>"#,
                            class(&case.outcome),
                            escape(&case.outcome),
                            escape(&case.reason),
                            escape(&case.outcome),
                        );
                    }
                    None => out.push_str(r#"<td class="o o-absent">not in this run</td>"#),
                }
            }
            out.push_str("</tr>");
            data.rows.push(RowData {
                id: row.id,
                cells: row.cells.iter().map(|c| c.map(CellData::of)).collect(),
            });
        }
        out.push_str("</tbody>");
    }
    out.push_str("</table></div></section>");
}

/// The page for the run reports in `m` and the bench reports in `benches`.
pub fn render(m: &Matrix<'_>, benches: &[&BenchReport]) -> String {
    let nonce = nonce();
    let version = env!("CARGO_PKG_VERSION");
    let title = match m.columns.as_slice() {
        [one] => format!("pushspec: {} on {}", one.run.verdict, one.key),
        [] => "pushspec report".to_string(),
        cols => format!("pushspec: {} targets", cols.len()),
    };
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; img-src data:; form-action 'none'; base-uri 'none'"><meta name="generator" content="pushspec {version}"><title>{}</title><style>{CSS}</style><script nonce="{nonce}">window.onerror=function(m,s,l){{var p=document.getElementById("script-errors");if(!p){{p=document.createElement("pre");p.id="script-errors";document.documentElement.appendChild(p);}}p.hidden=false;p.textContent+="script error: "+m+" (line "+l+")\n";}};</script></head><body><header><h1>pushspec report</h1><p class="sub">{}</p></header><main>"#,
        escape(&title),
        escape(&format!(
            "{} and {} · rendered by pushspec {version} from {}",
            plural(m.columns.len(), "target", "targets"),
            plural(benches.len(), "bench run", "bench runs"),
            files(m, benches)
        ))
    );
    if !m.columns.is_empty() {
        out.push_str(r#"<section id="targets"><h2>Targets</h2><div class="cards">"#);
        for (i, c) in m.columns.iter().enumerate() {
            card(&mut out, i, c);
        }
        out.push_str("</div></section>");
    }
    if !m.changes.is_empty() {
        out.push_str(r#"<section id="changes" class="changes"><h2>What changed</h2>"#);
        for c in &m.changes {
            change(&mut out, c);
        }
        out.push_str("</section>");
    }
    if !benches.is_empty() {
        bench(&mut out, benches);
    }
    let mut data = Data {
        columns: m.columns.iter().map(|c| c.key.as_str()).collect(),
        rows: Vec::new(),
    };
    if !m.columns.is_empty() {
        matrix(&mut out, m, &mut data);
    }
    out.push_str(r#"</main><div id="detail" class="detail" hidden role="dialog" aria-modal="true" aria-labelledby="d-title"><div class="panel"><button type="button" id="d-close">close</button><h2 id="d-title"></h2><dl id="d-fields"></dl><h3>Transcript</h3><pre id="d-transcript"></pre></div></div><pre id="script-errors" hidden></pre>"#);
    // Without a matrix there is nothing for the script to drive.
    if !m.columns.is_empty() {
        let _ = write!(
            out,
            r#"<script type="application/json" id="pushspec-data">{}</script><script nonce="{nonce}">{SCRIPT}</script>"#,
            script_json(&data)
        );
    }
    out.push_str("</body></html>\n");
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn files(m: &Matrix, benches: &[&BenchReport]) -> String {
    let mut v: Vec<&str> = Vec::new();
    for c in &m.columns {
        v.extend(c.earlier.iter().map(|r| r.file.as_str()));
        v.push(&c.run.file);
    }
    v.extend(benches.iter().map(|b| b.file.as_str()));
    v.join(", ")
}

/// The page for one run, straight from its JSON report (what `run
/// --html` writes: the same page `pushspec report` makes from the file).
pub fn render_run(
    json: &str,
    file: &str,
    requirement: &dyn Fn(&str) -> Option<String>,
) -> Result<String, super::load::LoadError> {
    let mut r = match super::load::parse(file, json)? {
        super::load::Loaded::Run(r) => r,
        super::load::Loaded::Bench(_) => {
            return Err(super::load::LoadError::NotAReport {
                file: file.to_string(),
            });
        }
    };
    super::load::fill_requirements(&mut r, requirement);
    let runs: Vec<&RunReport> = vec![&r];
    Ok(render(&super::matrix::build(&runs), &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_data_cannot_break_out() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let j = script_json(&vec!["</script><!--&"]);
        assert!(
            !j.contains('<') && !j.contains('>') && !j.contains('&'),
            "{j}"
        );
        let back: Vec<String> = serde_json::from_str(&j).unwrap();
        assert_eq!(back, ["</script><!--&"]);
    }
}
