//! `sse-fanout`: N subscribers on the stream, events published at a rate
//! through the publish endpoint; latency from each event's intended
//! publish time to each receipt, and delivery counted exactly: delivered,
//! lost, duplicated, out of order, the slowest subscriber's lag.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::progress::Meter;
use super::ws::Measured;
use crate::sse::http::{self, Item, Limits, StreamConn};
use crate::sse::run::SseTarget;
use crate::wire::event_stream::Parser;

#[derive(Clone, Debug)]
pub struct FanoutPlan {
    pub target: SseTarget,
    pub subscribers: usize,
    /// Events per second.
    pub rate: f64,
    pub size: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub stall: Duration,
    pub meter: Arc<Meter>,
}

/// Exact delivery counts over every subscriber.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub published: u64,
    pub failed_publishes: u64,
    /// published x subscribers that were open.
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// The largest latency any subscriber saw, in microseconds.
    pub slowest_subscriber_lag_us: u64,
}

/// Intended publish times, as microseconds after `base` (0: not yet).
struct Schedule {
    base: Instant,
    at_us: Vec<AtomicU64>,
}

struct Sub {
    seen: Vec<bool>,
    delivered: u64,
    duplicated: u64,
    out_of_order: u64,
    /// Receipts measured (after the warm-up), and the largest lag.
    measured: u64,
    max_lag_us: u64,
    error: Option<&'static str>,
}

fn seq_of(data: &str, tag: &str) -> Option<usize> {
    data.strip_prefix(tag)?.split(':').next()?.parse().ok()
}

async fn subscriber(
    plan: FanoutPlan,
    schedule: Arc<Schedule>,
    tag: String,
    ready: tokio::sync::mpsc::Sender<bool>,
    measure_from_seq: Arc<AtomicU64>,
    stop: Arc<tokio::sync::Notify>,
    delivered: Arc<AtomicU64>,
) -> Sub {
    let n = schedule.at_us.len();
    let mut s = Sub {
        seen: vec![false; n],
        delivered: 0,
        duplicated: 0,
        out_of_order: 0,
        measured: 0,
        max_lag_us: 0,
        error: None,
    };
    let mut req = http::request("GET", &plan.target.stream);
    req.set("Accept", "text/event-stream");
    let limits = Limits {
        io_timeout: plan.stall,
        max_body: u64::MAX,
    };
    let mut conn = match StreamConn::open(&plan.target.stream, &req, limits).await {
        Ok(c) => c,
        Err(_) => {
            s.error = Some("connect");
            let _ = ready.send(false).await;
            return s;
        }
    };
    match tokio::time::timeout(plan.stall, conn.items.recv()).await {
        Ok(Some(Item::Head { response, .. })) if response.status == 200 => {
            let _ = ready.send(true).await;
        }
        _ => {
            s.error = Some("response");
            let _ = ready.send(false).await;
            return s;
        }
    }
    let mut parser = Parser::new();
    let slot = plan.meter.slot();
    let mut highest: Option<usize> = None;
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        let item = tokio::select! {
            i = conn.items.recv() => i,
            _ = &mut stopped => break,
        };
        match item {
            Some(Item::Body { bytes, at }) => {
                let from = measure_from_seq.load(Ordering::Relaxed) as usize;
                parser.feed_with(&bytes, |ev| {
                    let Some(seq) = seq_of(ev.data, &tag) else {
                        return;
                    };
                    if seq >= n {
                        return;
                    }
                    if s.seen[seq] {
                        s.duplicated += 1;
                        return;
                    }
                    s.seen[seq] = true;
                    s.delivered += 1;
                    delivered.fetch_add(1, Ordering::Relaxed);
                    if highest.is_some_and(|h| seq < h) {
                        s.out_of_order += 1;
                    }
                    highest = Some(highest.map_or(seq, |h| h.max(seq)));
                    let sent = schedule.at_us[seq].load(Ordering::Relaxed);
                    if seq >= from && sent > 0 {
                        let sent_at = schedule.base + Duration::from_micros(sent);
                        let lag = at.saturating_duration_since(sent_at.into_std());
                        let us = lag.as_micros().clamp(1, 3_600_000_000) as u64;
                        s.measured += 1;
                        s.max_lag_us = s.max_lag_us.max(us);
                        plan.meter.record(slot, us);
                    }
                });
            }
            Some(Item::End { .. }) | None => {
                s.error = Some("closed-by-target");
                break;
            }
            Some(Item::Invalid(_)) | Some(Item::Unsupported(_)) => {
                s.error = Some("protocol");
                break;
            }
            Some(Item::Head { .. }) => {}
        }
    }
    s
}

pub async fn fanout(plan: FanoutPlan) -> (Measured, Delivery) {
    let total = ((plan.warmup + plan.duration).as_secs_f64() * plan.rate).ceil() as usize;
    let warm = (plan.warmup.as_secs_f64() * plan.rate).ceil() as u64;
    let schedule = Arc::new(Schedule {
        base: Instant::now(),
        at_us: (0..total).map(|_| AtomicU64::new(0)).collect(),
    });
    let tag = format!("pushspec-bench-{:08x}-", fastrand::u32(..));
    let measure_from = Arc::new(AtomicU64::new(warm));
    let stop = Arc::new(tokio::sync::Notify::new());
    let delivered = Arc::new(AtomicU64::new(0));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(plan.subscribers.max(1));
    let mut subs = tokio::task::JoinSet::new();
    for _ in 0..plan.subscribers {
        subs.spawn(subscriber(
            plan.clone(),
            schedule.clone(),
            tag.clone(),
            ready_tx.clone(),
            measure_from.clone(),
            stop.clone(),
            delivered.clone(),
        ));
    }
    drop(ready_tx);
    // Each subscriber says once whether its stream opened (and keeps its
    // sender while it reads, so count the answers rather than wait for the
    // channel to close).
    let mut open = 0u64;
    for _ in 0..plan.subscribers {
        match ready_rx.recv().await {
            Some(ok) => open += ok as u64,
            None => break,
        }
    }

    // Publish on schedule; each publish is its own POST.
    let mut d = Delivery::default();
    let interval = Duration::from_secs_f64(1.0 / plan.rate.max(1e-9));
    let start = Instant::now();
    let padding = "x".repeat(plan.size.saturating_sub(tag.len() + 12));
    let publish = plan.target.publish.clone();
    // One publish at a time, each on the schedule (or as soon as the one
    // before it finished): the publish order is then the order every
    // subscriber must see, and a slow publish endpoint shows as latency
    // (measured from the intended time) instead of being hidden.
    for seq in 0..total {
        let intended = start + interval * seq as u32;
        tokio::time::sleep_until(intended).await;
        schedule.at_us[seq].store(
            (intended - schedule.base).as_micros().max(1) as u64,
            Ordering::Relaxed,
        );
        let Some(endpoint) = publish.clone() else {
            break;
        };
        let mut req = http::request("POST", &endpoint);
        req.set("Content-Type", "text/plain; charset=utf-8");
        req.body = format!("{tag}{seq}:{padding}").into_bytes();
        req.set("Content-Length", req.body.len().to_string());
        match http::post(&endpoint, &req, plan.stall).await {
            Ok(r) if (200..300).contains(&r.response.status) => d.published += 1,
            _ => d.failed_publishes += 1,
        }
    }
    // Wait until every open subscriber has every published event, or no
    // delivery progress for the stall time.
    let want = d.published * open;
    let mut last = (delivered.load(Ordering::Relaxed), Instant::now());
    loop {
        let now = delivered.load(Ordering::Relaxed);
        if now >= want {
            break;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= plan.stall {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.notify_waiters();

    let mut m = Measured {
        operations: 0,
        bytes: 0,
        latency: super::ws::histogram(),
        errors: BTreeMap::new(),
        span: plan.duration,
    };
    d.expected = d.published * open;
    while let Some(r) = subs.join_next().await {
        let Ok(s) = r else {
            *m.errors.entry("harness".into()).or_default() += 1;
            continue;
        };
        if let Some(e) = s.error {
            *m.errors.entry(e.into()).or_default() += 1;
        }
        d.delivered += s.delivered;
        d.duplicated += s.duplicated;
        d.out_of_order += s.out_of_order;
        d.slowest_subscriber_lag_us = d.slowest_subscriber_lag_us.max(s.max_lag_us);
        m.operations += s.measured;
    }
    // Every subscriber has stopped recording.
    m.latency = plan.meter.latencies();
    d.lost = d.expected.saturating_sub(d.delivered);
    m.bytes = m.operations * plan.size as u64;
    if d.failed_publishes > 0 {
        m.errors.insert("publish".into(), d.failed_publishes);
    }
    (m, d)
}
