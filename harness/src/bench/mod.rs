//! `pushspec bench`: the measuring instrument. Each run first calibrates
//! the machine's loopback ceiling, then runs one scenario against the
//! target, and reports throughput and HdrHistogram latency percentiles
//! with their ratio to the calibration.
//!
//! Scenarios: `ws-echo` (closed loop with `--pipeline`, open loop with
//! `--rate`, latency from the intended send time), `ws-connect`,
//! `ws-hold`, `sse-fanout` and `sse-connect`. Reports compare
//! ([`compare`]) and merge across shards ([`merge`]).

mod calibrate;
pub mod compare;
mod hold;
pub mod merge;
mod procstat;
mod progress;
mod report;
mod shard;
mod sse;
mod sse_connect;
mod ws;
mod wsclient;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::sse::run::SseTarget;
use crate::target::WsTarget;
pub use calibrate::Calibration;
pub use hold::Hold;
pub use procstat::ProcessStats;
pub use report::{Config, Latency, Report, Results, ShardSummary};
pub use shard::Shard;
pub use sse::Delivery;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Connections echoing messages of `--size` bytes.
    WsEcho,
    /// Opening handshakes per second and their latency.
    WsConnect,
    /// Open `--connections`, hold them for `--duration`, check each still
    /// answers a ping.
    WsHold,
    /// `--connections` subscribers, events published at `--rate` (default
    /// 100/s): latency from publish to each receipt, and exact delivery.
    SseFanout,
    /// Subscriber connections per second and their latency to the
    /// response head.
    SseConnect,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::WsEcho => "ws-echo",
            Scenario::WsConnect => "ws-connect",
            Scenario::WsHold => "ws-hold",
            Scenario::SseFanout => "sse-fanout",
            Scenario::SseConnect => "sse-connect",
        }
    }

    /// What `per_sec` counts.
    pub fn unit(self) -> &'static str {
        match self {
            Scenario::WsEcho => "messages/s",
            Scenario::WsConnect => "handshakes/s",
            Scenario::WsHold => "opened/s",
            Scenario::SseFanout => "deliveries/s",
            Scenario::SseConnect => "subscribes/s",
        }
    }

    /// What the latency histogram measures, when the table needs saying.
    fn latency_note(self) -> &'static str {
        match self {
            Scenario::WsHold => "; time to open each connection",
            Scenario::SseConnect => "; time to the response head",
            _ => "",
        }
    }

    /// Whether the scenario needs an SSE target (else a WebSocket one).
    pub fn is_sse(self) -> bool {
        matches!(self, Scenario::SseFanout | Scenario::SseConnect)
    }
}

/// Why a bench, compare or merge could not be done (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(
        "cannot calibrate: the loopback TCP measurement before the run failed: {0} (is 127.0.0.1 usable here?)"
    )]
    Calibration(std::io::Error),
    #[error("{0} needs a target of its protocol")]
    TargetProtocol(&'static str),
    #[error("--pid {pid}: cannot sample /proc/{pid}: {source}")]
    Pid { pid: u32, source: std::io::Error },
    #[error(
        "--pid needs an external target (--ws, or --sse): the embedded server runs inside this process, so its CPU and memory cannot be told apart from the instrument's"
    )]
    PidWithoutTarget,
    #[error("--shard {shard}: {connections} connections leave this shard none")]
    EmptyShard { shard: Shard, connections: usize },
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not a pushspec bench report: {source}")]
    Parse {
        file: String,
        source: serde_json::Error,
    },
    #[error("{file}: {reason}")]
    Histogram { file: String, reason: String },
    #[error("cannot compare: {0}")]
    Compare(String),
    #[error("cannot merge: {0}")]
    Merge(String),
}

/// One bench run: the scenario picks which target it uses.
pub enum Target {
    Ws(WsTarget),
    Sse(SseTarget),
}

pub struct Plan {
    pub scenario: Scenario,
    pub target: Target,
    pub config: Config,
    /// Sample this process's CPU and memory while running.
    pub pid: Option<u32>,
}

/// Reads a report written by `pushspec bench --json`.
pub fn load(path: &std::path::Path) -> Result<Report, BenchError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Read {
        file: file.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| BenchError::Parse { file, source })
}

/// Calibrates, runs the scenario, and returns its report. With `live`, a
/// progress line is drawn there while the scenario runs.
pub async fn run(plan: Plan, live: Option<&mut (dyn Write + Send)>) -> Result<Report, BenchError> {
    let started = SystemTime::now();
    let calibration = calibrate::measure()
        .await
        .map_err(BenchError::Calibration)?;
    if let Some(pid) = plan.pid {
        procstat::check(pid).map_err(|source| BenchError::Pid { pid, source })?;
    }
    let c = &plan.config;
    // A shard runs its share of the connections; an open-loop rate is over
    // all connections, so the shard drives its share of it too.
    let connections = c.shard.map_or(c.connections, |s| s.share(c.connections));
    if connections == 0 {
        return Err(BenchError::EmptyShard {
            shard: c.shard.expect("only a shard can have none"),
            connections: c.connections,
        });
    }
    let rate = c
        .rate
        .map(|r| r * connections as f64 / c.connections.max(1) as f64);
    let warmup = Duration::from_millis(c.warmup_ms);
    let duration = Duration::from_millis(c.duration_ms);
    let stall = Duration::from_secs(5);
    let meter = Arc::new(progress::Meter::new(live.is_some()));
    let described = match &plan.target {
        Target::Ws(t) => t.url(),
        Target::Sse(t) => t.stream.url(),
    };

    let scenario = async {
        let measure_from = tokio::time::Instant::now() + warmup;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sampler = plan.pid.map(|pid| {
            tokio::spawn(procstat::sample(
                pid,
                procstat::interval(warmup + duration),
                measure_from,
                async {
                    let _ = stop_rx.await;
                },
            ))
        });
        let outcome = drive(&plan, connections, rate, warmup, duration, stall, &meter).await;
        meter.finish();
        let _ = stop_tx.send(());
        let samples = match sampler {
            Some(s) => s.await.ok(),
            None => None,
        };
        (outcome, samples)
    };
    let ((outcome, samples), ()) = match live {
        Some(out) => {
            tokio::join!(
                scenario,
                meter.show(plan.scenario.unit(), out, Duration::from_millis(500))
            )
        }
        None => (scenario.await, ()),
    };
    let Outcome { m, delivery, hold } = outcome?;
    let secs = m.span.as_secs_f64().max(1e-9);
    let per_sec = m.operations as f64 / secs;
    Ok(Report {
        schema_version: 1,
        tool: "pushspec".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        scenario: plan.scenario,
        started_at: humantime::format_rfc3339_millis(started).to_string(),
        target: described,
        config: plan.config.clone(),
        calibration,
        results: Results {
            operations: m.operations,
            per_sec,
            bytes_per_sec: m.bytes as f64 / secs,
            per_connection_to_tcp_round_trips: per_sec
                / connections as f64
                / calibration.tcp_round_trips_per_sec.max(1e-9),
            latency_us: Latency::of(&m.latency),
            errors: m.errors,
            delivery,
            hold,
            process: samples.map(|s| s.stats(connections, m.operations)),
        },
        shards: None,
    })
}

struct Outcome {
    m: ws::Measured,
    delivery: Option<Delivery>,
    hold: Option<Hold>,
}

async fn drive(
    plan: &Plan,
    connections: usize,
    rate: Option<f64>,
    warmup: Duration,
    duration: Duration,
    stall: Duration,
    meter: &Arc<progress::Meter>,
) -> Result<Outcome, BenchError> {
    let c = &plan.config;
    let plain = |m| Outcome {
        m,
        delivery: None,
        hold: None,
    };
    Ok(match (plan.scenario, &plan.target) {
        (Scenario::WsEcho, Target::Ws(t)) => plain(
            ws::echo(ws::EchoPlan {
                target: t.clone(),
                connections,
                size: c.size,
                pipeline: c.pipeline,
                rate,
                warmup,
                duration,
                stall,
                meter: meter.clone(),
            })
            .await,
        ),
        (Scenario::WsConnect, Target::Ws(t)) => plain(
            ws::connect(ws::ConnectPlan {
                target: t.clone(),
                connections,
                warmup,
                duration,
                stall,
                meter: meter.clone(),
            })
            .await,
        ),
        (Scenario::WsHold, Target::Ws(t)) => {
            let (m, h) = hold::hold(hold::HoldPlan {
                target: t.clone(),
                connections,
                duration,
                stall,
                meter: meter.clone(),
            })
            .await;
            Outcome {
                m,
                delivery: None,
                hold: Some(h),
            }
        }
        (Scenario::SseFanout, Target::Sse(t)) => {
            let (m, d) = sse::fanout(sse::FanoutPlan {
                target: t.clone(),
                subscribers: connections,
                rate: rate.unwrap_or(100.0 * connections as f64 / c.connections.max(1) as f64),
                size: c.size,
                warmup,
                duration,
                stall,
                meter: meter.clone(),
            })
            .await;
            Outcome {
                m,
                delivery: Some(d),
                hold: None,
            }
        }
        (Scenario::SseConnect, Target::Sse(t)) => plain(
            sse_connect::connect(sse_connect::ConnectPlan {
                target: t.clone(),
                connections,
                warmup,
                duration,
                stall,
                meter: meter.clone(),
            })
            .await,
        ),
        _ => return Err(BenchError::TargetProtocol(plan.scenario.name())),
    })
}
