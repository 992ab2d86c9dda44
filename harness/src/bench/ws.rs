//! WebSocket scenarios: `ws-echo` (closed loop with a pipeline depth, or
//! open loop at a rate, latency from the intended send time) and
//! `ws-connect` (opening handshakes per second and their latency).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::progress::Meter;
use super::wsclient::{self, Failure, Message};
use crate::target::WsTarget;
use crate::wire::frame::Opcode;

/// What one scenario run measured.
#[derive(Debug)]
pub struct Measured {
    /// Operations counted after the warm-up (messages echoed, handshakes).
    pub operations: u64,
    pub bytes: u64,
    /// Microseconds.
    pub latency: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    /// The measured span (after the warm-up).
    pub span: Duration,
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 1 h, three significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// Records one measured operation's latency in the run's meter.
pub fn record(meter: &Meter, slot: usize, d: Duration) {
    meter.record(slot, d.as_micros().clamp(1, 3_600_000_000) as u64);
}

#[derive(Clone, Debug)]
pub struct EchoPlan {
    pub target: WsTarget,
    pub connections: usize,
    pub size: usize,
    pub pipeline: usize,
    /// Messages per second over all connections: open loop.
    pub rate: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    /// How long a connection may go without progress before it counts as
    /// stalled.
    pub stall: Duration,
    pub meter: Arc<Meter>,
}

/// One connection's (or worker's) counts; its latencies went to the meter.
#[derive(Default)]
pub struct ConnResult {
    pub operations: u64,
    pub bytes: u64,
    pub error: Option<Failure>,
}

async fn echo_connection(plan: EchoPlan, start: Instant) -> ConnResult {
    let mut out = ConnResult::default();
    let slot = plan.meter.slot();
    let (mut reader, mut writer) = match wsclient::connect(&plan.target, plan.stall).await {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let payload = vec![0x2au8; plan.size];
    let interval = plan
        .rate
        .map(|r| Duration::from_secs_f64(plan.connections as f64 / r.max(1e-9)));
    // Each message's intended send time, oldest first (echoes come in order).
    let mut in_flight: VecDeque<Instant> = VecDeque::new();
    let mut next_intended = start + interval.map_or(Duration::ZERO, |i| i.mul_f64(fastrand::f64()));
    loop {
        let now = Instant::now();
        if now >= end && in_flight.is_empty() {
            break;
        }
        let send_at = if now >= end {
            None
        } else if interval.is_some() {
            Some(next_intended)
        } else if in_flight.len() < plan.pipeline.max(1) {
            Some(now)
        } else {
            None
        };
        // A message already due is sent without going through the timer:
        // tokio rounds timer deadlines up to the next millisecond, which
        // would cap a closed loop at about 1,000 messages/s per connection.
        let due = async move {
            if let Some(t) = send_at
                && t > Instant::now()
            {
                tokio::time::sleep_until(t).await;
            }
        };
        tokio::select! {
            _ = due, if send_at.is_some() => {
                let intended = send_at.unwrap_or(now);
                match tokio::time::timeout(plan.stall, wsclient::send(&mut writer, Opcode::Binary, &payload)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => { out.error = Some(e); break; }
                    Err(_) => { out.error = Some(Failure::Stalled); break; }
                }
                in_flight.push_back(intended);
                if let Some(i) = interval {
                    next_intended += i;
                }
            }
            m = reader.message(plan.stall) => match m {
                Ok(Message::Data(len)) => {
                    let Some(sent) = in_flight.pop_front() else {
                        out.error = Some(Failure::Protocol("a message nobody sent".into()));
                        break;
                    };
                    if sent >= measure_from && sent < end {
                        record(&plan.meter, slot, sent.elapsed());
                        out.operations += 1;
                        out.bytes += len as u64;
                    }
                }
                Ok(Message::Pong(_)) => {}
                Ok(Message::Ping(p)) => {
                    if let Err(e) = wsclient::send(&mut writer, Opcode::Pong, &p).await {
                        out.error = Some(e);
                        break;
                    }
                }
                Err(e) => { out.error = Some(e); break; }
            }
        }
    }
    wsclient::close(&mut writer).await;
    out
}

/// N connections echoing messages; results merged.
pub async fn echo(plan: EchoPlan) -> Measured {
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.connections {
        tasks.spawn(echo_connection(plan.clone(), start));
    }
    merge(tasks, plan.duration, &plan.meter).await
}

pub async fn merge(
    mut tasks: tokio::task::JoinSet<ConnResult>,
    span: Duration,
    meter: &Meter,
) -> Measured {
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        results.push(r.ok());
    }
    tally(results, span, meter)
}

/// Adds up the connections' results; `None` is a task that failed (a
/// harness error, counted as such).
pub fn tally(
    results: impl IntoIterator<Item = Option<ConnResult>>,
    span: Duration,
    meter: &Meter,
) -> Measured {
    let mut m = Measured {
        operations: 0,
        bytes: 0,
        latency: meter.latencies(),
        errors: BTreeMap::new(),
        span,
    };
    for r in results {
        let Some(r) = r else {
            *m.errors.entry("harness".into()).or_default() += 1;
            continue;
        };
        m.operations += r.operations;
        m.bytes += r.bytes;
        if let Some(e) = r.error {
            *m.errors.entry(e.kind().into()).or_default() += 1;
        }
    }
    m
}

#[derive(Clone, Debug)]
pub struct ConnectPlan {
    pub target: WsTarget,
    /// Handshakes in flight at once.
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub stall: Duration,
    pub meter: Arc<Meter>,
}

async fn connect_worker(plan: ConnectPlan, start: Instant) -> ConnResult {
    let mut out = ConnResult::default();
    let slot = plan.meter.slot();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    tokio::time::sleep_until(start).await;
    while Instant::now() < end {
        let t0 = Instant::now();
        match wsclient::connect(&plan.target, plan.stall).await {
            Ok((_reader, mut writer)) => {
                if t0 >= measure_from {
                    record(&plan.meter, slot, t0.elapsed());
                    out.operations += 1;
                }
                wsclient::close(&mut writer).await;
            }
            Err(e) => {
                // Count the kind and go on: a refused handshake is data.
                out.error = Some(e);
                return out;
            }
        }
    }
    out
}

/// Opening handshakes per second, `connections` at a time.
pub async fn connect(plan: ConnectPlan) -> Measured {
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.connections {
        tasks.spawn(connect_worker(plan.clone(), start));
    }
    merge(tasks, plan.duration, &plan.meter).await
}
