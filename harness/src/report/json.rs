//! The JSON report (schema_version 1).

use serde::Serialize;

use super::{RunInfo, Summary};
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
}

#[derive(Serialize)]
struct CaseOut<'a> {
    #[serde(flatten)]
    result: &'a CaseResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    transcript: Option<&'a [Entry]>,
}

#[derive(Serialize)]
struct Report<'a> {
    schema_version: u32,
    tool: Tool,
    started_at: String,
    duration_ms: u64,
    targets: Targets<'a>,
    strict: bool,
    interrupted: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    not_run: &'a [String],
    summary: Summary,
    cases: Vec<CaseOut<'a>>,
}

/// The report as JSON; transcripts are included for every case that did not pass.
pub fn render(info: &RunInfo, results: &[CaseResult]) -> String {
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
        },
        strict: info.strict,
        interrupted: info.interrupted,
        not_run: &info.not_run,
        summary: Summary::of(results),
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
