//! Cases are data: loaded from the TOML files under `cases/`, one file per
//! family, each entry expanding over its parameters into concrete cases.

pub mod client_step;
pub mod file;
pub mod header_check;
pub mod payload;
pub mod select;
pub mod sse_step;
pub mod ws_step;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use payload::Payload;

/// How much a rule matters: `must` failures fail the run, `should` failures
/// are reported as `non-strict` (fatal only with `--strict`), `info` cases
/// only report what the target does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Must,
    Should,
    Info,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Must => "must",
            Level::Should => "should",
            Level::Info => "info",
        })
    }
}

/// Which protocol a family drives, from the first segment of its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Ws,
    Sse,
    /// `client.ws.*`: the harness plays the server for a client under test.
    #[serde(rename = "client-ws")]
    ClientWs,
}

/// What a target must declare in its profile for a case to apply; cases
/// needing an undeclared capability are `unsupported`, not failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// permessage-deflate (RFC 7692).
    Deflate,
    /// The profile lists the subprotocols the target selects from.
    Subprotocols,
    /// The profile lists allowed origins.
    Origins,
    /// The profile declares a maximum message size.
    MaxMessageSize,
    /// The profile declares a maximum number of fragments per message.
    MaxFragments,
    /// The profile declares an idle timeout.
    IdleTimeout,
    /// The profile declares no idle timeout (the target keeps idle
    /// connections open).
    NoIdleTimeout,
    /// Timing cases: skipped with `--skip-timing`.
    Timing,
    /// An SSE publish endpoint (`--publish`).
    Publish,
    /// SSE Last-Event-ID replay.
    Replay,
    /// The SSE target can be told its stream is finished (answers 204 after).
    Finish,
    /// The SSE publish endpoint takes an explicit event id.
    EventIds,
    /// Keep-alive waits: skipped with `--skip-timing`.
    Keepalive,
}

impl Capability {
    /// What a target can offer (the rest are run options: timing waits,
    /// the absence of an idle timeout).
    pub const OF_TARGETS: [Capability; 10] = [
        Capability::Deflate,
        Capability::Subprotocols,
        Capability::Origins,
        Capability::MaxMessageSize,
        Capability::MaxFragments,
        Capability::IdleTimeout,
        Capability::Publish,
        Capability::Replay,
        Capability::Finish,
        Capability::EventIds,
    ];

    /// The word case files and profiles use (`max-message-size`).
    pub fn word(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{self:?}"))
    }
}

/// The longest duration a case, profile or flag may give.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// A span of time written as `"500ms"`, `"2s"` in case files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let d = humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))?;
        // Deadlines are computed as now + duration: absurd values would
        // overflow them, and nothing in a test run waits a day.
        if d > MAX_DURATION {
            return Err(serde::de::Error::custom(format!(
                "duration {s:?} is longer than {}",
                humantime::format_duration(MAX_DURATION)
            )));
        }
        Ok(Dur(d))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Where a case came from, for error messages and `pushspec show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Source {
    pub file: String,
    pub line: usize,
}

/// The protocol-specific script of a case.
#[derive(Clone, Debug)]
pub enum Script {
    Ws(ws_step::Script),
    Sse(sse_step::Script),
    ClientWs(client_step::Script),
}

/// One concrete, runnable case.
#[derive(Clone, Debug)]
pub struct Case {
    /// `<protocol>.<family>.<slug>`, stable across releases.
    pub id: String,
    pub family: String,
    pub title: String,
    /// The section it checks, e.g. `RFC 6455 §5.5.2`.
    pub spec: String,
    pub level: Level,
    /// The normative sentence, when the case file gives one.
    pub requirement: Option<String>,
    pub requires: Vec<Capability>,
    pub script: Script,
    /// The script as the case file gives it, parameters filled in: what
    /// `pushspec show` prints.
    pub definition: toml::Table,
    pub source: Source,
}

impl Case {
    pub fn protocol(&self) -> Protocol {
        match self.script {
            Script::Ws(_) => Protocol::Ws,
            Script::Sse(_) => Protocol::Sse,
            Script::ClientWs(_) => Protocol::ClientWs,
        }
    }
}
