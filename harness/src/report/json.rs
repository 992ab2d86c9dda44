//! The JSON report (schema_version 1). Fields are only ever added: readers
//! of earlier version-1 reports keep working.

use serde::Serialize;

use super::{CapabilityInfo, Config, Group, RunInfo, Summary, findings};
use crate::case::select::Stale;
use crate::engine::Stop;
use crate::outcome::{CaseResult, Outcome};
use crate::transcript::Entry;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Targets<'a> {
    ws: Option<&'a str>,
    sse: Option<&'a str>,
    publish: Option<&'a str>,
    /// Written only when true: the embedded reference server was tested.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    embedded: bool,
    /// How each target was reached (`tcp`, `tls`) and how TLS
    /// certificates were verified.
    transport: &'a super::TransportInfo,
    /// What the run offered cases, and whether the wire showed it or the
    /// profile (or a flag) declared it.
    capabilities: &'a [CapabilityInfo],
}

#[derive(Serialize)]
struct CaseOut<'a> {
    #[serde(flatten)]
    result: &'a CaseResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    transcript: Option<&'a [Entry]>,
}

#[derive(Serialize)]
struct StaleOut<'a> {
    pattern: &'a str,
    line: usize,
    /// It matches cases this run did not select (a note, not a failure).
    matches_unselected: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    schema_version: u32,
    tool: Tool,
    started_at: String,
    duration_ms: u64,
    targets: Targets<'a>,
    /// The client under test, for `pushspec clients` reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a str>,
    strict: bool,
    interrupted: bool,
    /// `interrupted` (SIGINT), `terminated` (SIGTERM), `run-budget`.
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_by: Option<&'static str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    not_run: &'a [String],
    config: &'a Config,
    verdict: &'a str,
    exit_code: i32,
    summary: Summary,
    /// Cases that did not pass, grouped by cause.
    findings: Vec<Group>,
    /// Cases that failed once and passed when run again alone.
    flaky: Vec<&'a str>,
    known_failing_stale: Vec<StaleOut<'a>>,
    cases: Vec<CaseOut<'a>>,
}

fn stop_word(s: Stop) -> &'static str {
    match s {
        Stop::Interrupted => "interrupted",
        Stop::Terminated => "terminated",
        Stop::RunBudget(_) => "run-budget",
    }
}

/// The report as JSON; transcripts are included for every case that did not pass.
pub fn render(info: &RunInfo, results: &[CaseResult]) -> String {
    let stale: &[Stale] = &info.stale_known_failing;
    let r = Report {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "pushspec",
            version: env!("CARGO_PKG_VERSION"),
        },
        started_at: humantime::format_rfc3339_millis(info.started).to_string(),
        duration_ms: info.duration.as_millis() as u64,
        targets: Targets {
            ws: info.ws_target.as_deref(),
            sse: info.sse_target.as_deref(),
            publish: info.publish.as_deref(),
            embedded: info.embedded,
            transport: &info.transport,
            capabilities: &info.capabilities,
        },
        agent: info.agent.as_deref(),
        strict: info.strict,
        interrupted: info.interrupted(),
        stopped_by: info.stop.map(stop_word),
        not_run: &info.not_run,
        config: &info.config,
        verdict: &info.verdict,
        exit_code: info.exit_code,
        summary: Summary::of(results),
        findings: findings(results),
        flaky: results
            .iter()
            .filter(|r| r.flaky)
            .map(|r| r.id.as_str())
            .collect(),
        known_failing_stale: stale
            .iter()
            .map(|s| StaleOut {
                pattern: &s.pattern,
                line: s.line,
                matches_unselected: s.matches_unselected,
            })
            .collect(),
        cases: results
            .iter()
            .map(|r| CaseOut {
                result: r,
                transcript: (r.outcome != Outcome::Pass).then_some(r.transcript.as_slice()),
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&r).expect("report serialises");
    s.push('\n');
    s
}
