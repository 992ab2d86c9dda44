//! The bench report: what a run writes as JSON (a public contract: fields
//! are only ever added) and prints as a table. It reads back too, for
//! `compare` and `merge`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

use super::hold::Hold;
use super::procstat::ProcessStats;
use super::shard::Shard;
use super::sse::Delivery;
use super::{Calibration, Scenario};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Config {
    /// All connections of the bench (over every shard).
    pub connections: usize,
    pub size: usize,
    pub pipeline: usize,
    pub rate: Option<f64>,
    pub warmup_ms: u64,
    pub duration_ms: u64,
    /// This run is one shard of a bench spread over processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

impl Config {
    /// The same workload (what compare requires): everything but the
    /// measuring times.
    pub fn same_workload(&self, other: &Config) -> bool {
        self.connections == other.connections
            && self.size == other.size
            && self.pipeline == other.pipeline
            && self.rate == other.rate
            && self.shard == other.shard
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    /// The whole histogram (HdrHistogram V2, base64), so runs and shards
    /// merge exactly.
    pub histogram: String,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
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

    /// The histogram back from its serialized form.
    pub fn decode(&self) -> Result<Histogram<u64>, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.histogram)
            .map_err(|e| format!("histogram is not base64: {e}"))?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("histogram does not decode: {e:?}"))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub operations: u64,
    pub per_sec: f64,
    pub bytes_per_sec: f64,
    /// Operations per second per connection over raw TCP round trips per
    /// second measured in the same run (for `ws-echo` at pipeline 1, the
    /// share of the loopback ceiling the target reaches).
    pub per_connection_to_tcp_round_trips: f64,
    pub latency_us: Latency,
    pub errors: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// ws-hold: connections asked for, opened, still answering at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// --pid: the target process's CPU and memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessStats>,
}

/// One shard of a merged report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardSummary {
    pub shard: Shard,
    pub started_at: String,
    pub target: String,
    pub calibration: Calibration,
    pub operations: u64,
    pub per_sec: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: String,
    pub version: String,
    pub scenario: Scenario,
    pub started_at: String,
    pub target: String,
    pub config: Config,
    pub calibration: Calibration,
    pub results: Results,
    /// A merged report: the shards it was made of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<Vec<ShardSummary>>,
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
        let shard = c.shard.map_or(String::new(), |s| format!(", shard {s}"));
        let duration = crate::text::duration(Duration::from_millis(c.duration_ms));
        let warmup = crate::text::duration(Duration::from_millis(c.warmup_ms));
        let detail = match self.scenario {
            Scenario::WsEcho | Scenario::SseFanout => format!(
                "{} connections, {} B messages, pipeline {}{}, {duration} after {warmup} warm-up{shard}",
                c.connections,
                c.size,
                c.pipeline,
                c.rate
                    .map_or(String::new(), |r| format!(", open loop at {r}/s")),
            ),
            Scenario::WsConnect | Scenario::SseConnect => format!(
                "{} at a time, {duration} after {warmup} warm-up{shard}",
                c.connections
            ),
            Scenario::WsHold => format!("{} connections held {duration}{shard}", c.connections),
        };
        writeln!(
            out,
            "{} against {} ({detail})",
            self.scenario.name(),
            self.target
        )?;
        if let Some(shards) = &self.shards {
            writeln!(out, "merged from   {} shards", shards.len())?;
        }
        writeln!(
            out,
            "calibration   {:.0} TCP round trips/s, {:.1} MB/s on loopback (this machine, this run{})",
            self.calibration.tcp_round_trips_per_sec,
            self.calibration.tcp_bytes_per_sec / 1e6,
            if self.shards.is_some() {
                "; mean of the shards"
            } else {
                ""
            }
        )?;
        writeln!(
            out,
            "{:<13} {:.0} ({:.2} MB/s; {:.2} per connection of the TCP round-trip rate)",
            self.scenario.unit(),
            r.per_sec,
            r.bytes_per_sec / 1e6,
            r.per_connection_to_tcp_round_trips
        )?;
        let l = &r.latency_us;
        writeln!(
            out,
            "latency (us)  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples{})",
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            l.count,
            self.scenario.latency_note()
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
        if let Some(h) = &r.hold {
            writeln!(
                out,
                "held          {} of {} opened in {}, held {}; {} still answered a ping at the end",
                h.opened,
                h.requested,
                crate::text::duration(Duration::from_millis(h.opening_ms)),
                crate::text::duration(Duration::from_millis(h.held_ms)),
                h.survived
            )?;
        }
        if let Some(p) = &r.process {
            writeln!(
                out,
                "process {:<5} RSS {} -> peak {} -> {} kB ({} B per connection); {:.2} CPU s, {:.2} CPU s per million operations ({} samples every {} ms{})",
                p.pid,
                p.rss_start_kb,
                p.rss_peak_kb,
                p.rss_end_kb,
                p.memory_per_connection_bytes,
                p.cpu_seconds,
                p.cpu_seconds_per_million_operations,
                p.samples,
                p.interval_ms,
                if p.exited { "; the process exited" } else { "" }
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
