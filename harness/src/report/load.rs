//! Reading reports back: the JSON written by `run --json` (schema 1) and
//! by `bench --json`, so HTML and Markdown can be rendered later from CI
//! artifacts. Every field but the few that identify a report is optional:
//! version 1 only ever gains fields, and reports from older builds lack
//! the newer ones.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::outcome::Outcome;

/// The schema versions this build reads (the one it writes).
pub const READABLE: u32 = super::json::SCHEMA_VERSION;

/// Why an input file is not a report this build can render (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not JSON: {source}")]
    NotJson {
        file: String,
        source: serde_json::Error,
    },
    #[error(
        "{file}: not a pushspec report (no schema_version; expected the file written by `pushspec run --json` or `pushspec bench --json`)"
    )]
    NotAReport { file: String },
    #[error(
        "{file}: schema_version {found} is not supported (this pushspec reads version {READABLE}): render it with the pushspec that wrote it, or a newer one"
    )]
    UnknownSchema { file: String, found: String },
    #[error("{file}: malformed report at {path}: {message}")]
    Malformed {
        file: String,
        path: String,
        message: String,
    },
}

/// One input file, either kind.
#[derive(Clone, Debug)]
pub enum Loaded {
    Run(Box<RunReport>),
    Bench(Box<BenchReport>),
}

/// `targets.transport` of the JSON report: `tcp` or `tls` per target.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Transport {
    pub ws: Option<String>,
    pub sse: Option<String>,
    pub publish: Option<String>,
    #[serde(default)]
    pub insecure: bool,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RunReport {
    /// The file it came from (not in the JSON; set on load).
    #[serde(skip)]
    pub file: String,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub targets: Targets,
    /// The client tested (`pushspec clients` reports).
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub strict: bool,
    #[serde(default)]
    pub interrupted: bool,
    #[serde(default)]
    pub stopped_by: Option<String>,
    #[serde(default)]
    pub not_run: Vec<String>,
    #[serde(default)]
    pub config: RunConfig,
    #[serde(default)]
    pub verdict: String,
    #[serde(default)]
    pub flaky: Vec<String>,
    #[serde(default)]
    pub known_failing_stale: Vec<Stale>,
    pub cases: Vec<CaseReport>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Targets {
    pub ws: Option<String>,
    pub sse: Option<String>,
    pub publish: Option<String>,
    /// Absent before TLS existed: every target was plain TCP.
    pub transport: Option<Transport>,
    /// The run tested the embedded reference server (on a port of the day).
    #[serde(default)]
    pub embedded: bool,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Capability {
    pub name: String,
    #[serde(default)]
    pub source: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RunConfig {
    pub profile: Option<String>,
    pub known_failing: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Stale {
    pub pattern: String,
    #[serde(default)]
    pub line: usize,
    #[serde(default)]
    pub matches_unselected: bool,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CaseReport {
    pub id: String,
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub spec: String,
    #[serde(default)]
    pub level: String,
    /// Kept as written: an outcome this build does not know still shows.
    pub outcome: String,
    #[serde(default)]
    pub reason: String,
    /// Not written by every build: filled in from the case set on load
    /// when missing.
    pub requirement: Option<String>,
    pub expected: Option<String>,
    pub actual: Option<String>,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub transcript: Vec<Entry>,
    pub first_attempt: Option<Attempt>,
    #[serde(default)]
    pub flaky: bool,
}

impl CaseReport {
    /// The outcome, when it is one this build knows.
    pub fn outcome(&self) -> Option<Outcome> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == self.outcome)
    }

    /// The family, from the id when the report has none.
    pub fn family(&self) -> &str {
        if !self.family.is_empty() {
            return &self.family;
        }
        match self.id.rfind('.') {
            Some(i) => &self.id[..i],
            None => &self.id,
        }
    }
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct Entry {
    #[serde(default)]
    pub at_us: u64,
    #[serde(default)]
    pub dir: String,
    #[serde(default)]
    pub text: String,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct Attempt {
    pub outcome: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub duration_ms: u64,
}

impl RunReport {
    /// What identifies the server tested: runs of one target are compared,
    /// runs of different targets sit side by side. The embedded server
    /// listens on a new port every run, so it is one target whatever the
    /// port.
    pub fn target_key(&self) -> String {
        // A client suite's port changes from run to run; the agent names
        // the client.
        if let Some(agent) = &self.agent {
            return format!("client {agent}");
        }
        if self.targets.embedded {
            return "embedded reference server".to_string();
        }
        let t = &self.targets;
        let urls: Vec<&str> = [t.ws.as_deref(), t.sse.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if urls.is_empty() {
            "no target".to_string()
        } else {
            urls.join(" + ")
        }
    }

    /// The transports the cases ran over, e.g. `http/1.1 over tls (ws)`;
    /// plain `http/1.1` before reports said.
    pub fn transport(&self) -> String {
        let Some(t) = &self.targets.transport else {
            return "http/1.1".to_string();
        };
        let mut tls: Vec<&str> = [("ws", &t.ws), ("sse", &t.sse), ("publish", &t.publish)]
            .into_iter()
            .filter(|(_, w)| w.as_deref() == Some("tls"))
            .map(|(name, _)| name)
            .collect();
        if tls.is_empty() {
            return "http/1.1".to_string();
        }
        if t.insecure {
            tls.push("certificates not verified");
        }
        format!("http/1.1 over tls ({})", tls.join(", "))
    }

    /// Count of cases per outcome as written (unknown outcomes included).
    pub fn counts(&self) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for c in &self.cases {
            *m.entry(c.outcome.as_str()).or_default() += 1;
        }
        m
    }
}

/// A `pushspec bench --json` report: only the fields every bench report
/// has so far are read; the rest is ignored.
#[derive(Clone, Debug, Deserialize)]
pub struct BenchReport {
    #[serde(skip)]
    pub file: String,
    pub scenario: String,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub config: BenchConfig,
    #[serde(default)]
    pub calibration: Option<Calibration>,
    pub results: BenchResults,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct BenchConfig {
    #[serde(default)]
    pub connections: u64,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub pipeline: u64,
    pub rate: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Calibration {
    #[serde(default)]
    pub tcp_round_trips_per_sec: f64,
    #[serde(default)]
    pub tcp_bytes_per_sec: f64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct BenchResults {
    #[serde(default)]
    pub per_sec: f64,
    #[serde(default)]
    pub bytes_per_sec: f64,
    pub per_connection_to_tcp_round_trips: Option<f64>,
    pub latency_us: Latency,
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// sse-fanout's delivery counts, shown as they are named.
    #[serde(default)]
    pub delivery: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Latency {
    #[serde(default)]
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    #[serde(default)]
    pub mean: f64,
}

impl Latency {
    /// The percentiles plotted and tabled, in order.
    pub fn points(&self) -> [(&'static str, u64); 5] {
        [
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p99.9", self.p999),
            ("max", self.max),
        ]
    }
}

/// Reads and checks one report file.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&file, &text)
}

/// Checks `text` (from `file`) is a report this build reads, and reads it.
pub fn parse(file: &str, text: &str) -> Result<Loaded, LoadError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|source| LoadError::NotJson {
            file: file.to_string(),
            source,
        })?;
    let Some(version) = value.get("schema_version") else {
        return Err(LoadError::NotAReport {
            file: file.to_string(),
        });
    };
    if version.as_u64() != Some(u64::from(READABLE)) {
        return Err(LoadError::UnknownSchema {
            file: file.to_string(),
            found: version.to_string(),
        });
    }
    let is_bench = value.get("scenario").is_some() && value.get("cases").is_none();
    let malformed = |e: serde_path_to_error::Error<serde_json::Error>| LoadError::Malformed {
        file: file.to_string(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    };
    if is_bench {
        let mut b: BenchReport = serde_path_to_error::deserialize(value).map_err(malformed)?;
        b.file = file.to_string();
        Ok(Loaded::Bench(Box::new(b)))
    } else {
        let mut r: RunReport = serde_path_to_error::deserialize(value).map_err(malformed)?;
        r.file = file.to_string();
        Ok(Loaded::Run(Box::new(r)))
    }
}

/// Fills in each case's requirement from `lookup` (the case set) where
/// the report did not carry one.
pub fn fill_requirements(run: &mut RunReport, lookup: &dyn Fn(&str) -> Option<String>) {
    for c in run.cases.iter_mut().filter(|c| c.requirement.is_none()) {
        c.requirement = lookup(&c.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_kinds() {
        assert!(matches!(
            parse("a", r#"{"schema_version": 2, "cases": []}"#),
            Err(LoadError::UnknownSchema { .. })
        ));
        assert!(matches!(
            parse("a", r#"{"schema_version": "1", "cases": []}"#),
            Err(LoadError::UnknownSchema { .. })
        ));
        assert!(matches!(
            parse("a", r#"{"cases": []}"#),
            Err(LoadError::NotAReport { .. })
        ));
        assert!(matches!(parse("a", "{"), Err(LoadError::NotJson { .. })));
        let e = parse("a", r#"{"schema_version": 1, "cases": [{"id": 3}]}"#).unwrap_err();
        assert!(e.to_string().contains("cases[0].id"), "{e}");
        let Ok(Loaded::Run(r)) = parse(
            "a",
            r#"{"schema_version": 1, "cases": [{"id": "ws.x.y", "outcome": "weird", "new": 1}]}"#,
        ) else {
            panic!("a minimal run report loads")
        };
        assert_eq!(r.cases[0].family(), "ws.x");
        assert_eq!(r.cases[0].outcome(), None);
        assert_eq!(r.transport(), "http/1.1");
        let Ok(Loaded::Run(r)) = parse(
            "a",
            r#"{"schema_version": 1, "targets": {"transport": {"ws": "tls", "sse": "tcp", "insecure": true}}, "cases": []}"#,
        ) else {
            panic!("a report with transports loads")
        };
        assert_eq!(
            r.transport(),
            "http/1.1 over tls (ws, certificates not verified)"
        );
    }
}
