//! `pushspec bench`: the measuring instrument. Each run first calibrates
//! the machine's loopback ceiling, then runs one scenario against the
//! target, and reports throughput and HdrHistogram latency percentiles
//! with their ratio to the calibration.
//!
//! Scenarios so far: `ws-echo` (closed loop with `--pipeline`, open loop
//! with `--rate`, latency from the intended send time), `ws-connect` and
//! `sse-fanout`.

mod calibrate;
mod sse;
mod ws;
mod wsclient;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2Serializer};
use serde::Serialize;

use crate::sse::run::SseTarget;
use crate::target::WsTarget;
pub use calibrate::Calibration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Connections echoing messages of `--size` bytes.
    WsEcho,
    /// Opening handshakes per second and their latency.
    WsConnect,
    /// `--connections` subscribers, events published at `--rate` (default
    /// 100/s): latency from publish to each receipt, and exact delivery.
    SseFanout,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::WsEcho => "ws-echo",
            Scenario::WsConnect => "ws-connect",
            Scenario::SseFanout => "sse-fanout",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub connections: usize,
    pub size: usize,
    pub pipeline: usize,
    pub rate: Option<f64>,
    pub warmup_ms: u64,
    pub duration_ms: u64,
}

#[derive(Serialize)]
struct Latency {
    count: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
    /// The whole histogram (HdrHistogram V2, base64), so runs and shards
    /// merge exactly.
    histogram: String,
}

#[derive(Serialize)]
struct Results {
    operations: u64,
    per_sec: f64,
    bytes_per_sec: f64,
    /// Operations per second per connection over raw TCP round trips per
    /// second measured in the same run (for `ws-echo` at pipeline 1, the
    /// share of the loopback ceiling the target reaches).
    per_connection_to_tcp_round_trips: f64,
    latency_us: Latency,
    errors: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<sse::Delivery>,
}

#[derive(Serialize)]
pub struct Report {
    schema_version: u32,
    tool: &'static str,
    version: &'static str,
    scenario: Scenario,
    started_at: String,
    target: String,
    config: Config,
    calibration: Calibration,
    results: Results,
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
}

fn latency(h: &Histogram<u64>) -> Latency {
    let mut bytes = Vec::new();
    let _ = V2Serializer::new().serialize(h, &mut bytes);
    Latency {
        count: h.len(),
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
        histogram: base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// Calibrates, runs the scenario, and returns its report.
pub async fn run(plan: Plan) -> std::io::Result<Report> {
    let started = SystemTime::now();
    let calibration = calibrate::measure().await?;
    let warmup = Duration::from_millis(plan.config.warmup_ms);
    let duration = Duration::from_millis(plan.config.duration_ms);
    let stall = Duration::from_secs(5);
    let mut delivery = None;
    let described = match &plan.target {
        Target::Ws(t) => format!("ws://{}{}", t.authority(), t.path),
        Target::Sse(t) => t.stream.url(),
    };
    let m = match (plan.scenario, &plan.target) {
        (Scenario::WsEcho, Target::Ws(t)) => {
            ws::echo(ws::EchoPlan {
                target: t.clone(),
                connections: plan.config.connections,
                size: plan.config.size,
                pipeline: plan.config.pipeline,
                rate: plan.config.rate,
                warmup,
                duration,
                stall,
            })
            .await
        }
        (Scenario::WsConnect, Target::Ws(t)) => {
            ws::connect(ws::ConnectPlan {
                target: t.clone(),
                connections: plan.config.connections,
                warmup,
                duration,
                stall,
            })
            .await
        }
        (Scenario::SseFanout, Target::Sse(t)) => {
            let (m, d) = sse::fanout(sse::FanoutPlan {
                target: t.clone(),
                subscribers: plan.config.connections,
                rate: plan.config.rate.unwrap_or(100.0),
                size: plan.config.size,
                warmup,
                duration,
                stall,
            })
            .await;
            delivery = Some(d);
            m
        }
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} needs a target of its protocol", plan.scenario.name()),
            ));
        }
    };
    let secs = m.span.as_secs_f64().max(1e-9);
    let per_sec = m.operations as f64 / secs;
    Ok(Report {
        schema_version: 1,
        tool: "pushspec",
        version: env!("CARGO_PKG_VERSION"),
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
                / plan.config.connections.max(1) as f64
                / calibration.tcp_round_trips_per_sec.max(1e-9),
            latency_us: latency(&m.latency),
            errors: m.errors,
            delivery,
        },
    })
}

impl Report {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("bench report serialises");
        s.push('\n');
        s
    }

    /// The table printed at the end of a run.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let r = &self.results;
        let c = &self.config;
        writeln!(
            out,
            "{} against {} ({} connections, {} B messages, pipeline {}{}, {} after {} warm-up)",
            self.scenario.name(),
            self.target,
            c.connections,
            c.size,
            c.pipeline,
            c.rate
                .map_or(String::new(), |r| format!(", open loop at {r}/s")),
            crate::text::duration(Duration::from_millis(c.duration_ms)),
            crate::text::duration(Duration::from_millis(c.warmup_ms)),
        )?;
        writeln!(
            out,
            "calibration   {:.0} TCP round trips/s, {:.1} MB/s on loopback (this machine, this run)",
            self.calibration.tcp_round_trips_per_sec,
            self.calibration.tcp_bytes_per_sec / 1e6
        )?;
        let what = match self.scenario {
            Scenario::WsEcho => "messages/s",
            Scenario::WsConnect => "handshakes/s",
            Scenario::SseFanout => "deliveries/s",
        };
        writeln!(
            out,
            "{what:<13} {:.0} ({:.2} MB/s; {:.2} per connection of the TCP round-trip rate)",
            r.per_sec,
            r.bytes_per_sec / 1e6,
            r.per_connection_to_tcp_round_trips
        )?;
        let l = &r.latency_us;
        writeln!(
            out,
            "latency (us)  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
            l.p50, l.p90, l.p99, l.p999, l.max, l.count
        )?;
        if let Some(d) = &r.delivery {
            writeln!(
                out,
                "delivery      {} published ({} failed), {} of {} delivered, {} lost, {} duplicated, {} out of order; slowest subscriber lag {} us",
                d.published,
                d.failed_publishes,
                d.delivered,
                d.expected,
                d.lost,
                d.duplicated,
                d.out_of_order,
                d.slowest_subscriber_lag_us
            )?;
        }
        if r.errors.is_empty() {
            writeln!(out, "errors        none")?;
        } else {
            let e: Vec<String> = r.errors.iter().map(|(k, n)| format!("{n} {k}")).collect();
            writeln!(out, "errors        {}", e.join(", "))?;
        }
        Ok(())
    }
}
