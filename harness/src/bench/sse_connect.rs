//! `sse-connect`: subscriber connections per second, `connections` at a
//! time, and each one's latency from connecting to the response head (the
//! first bytes a subscriber gets: an SSE server may send no event for a
//! long time, but it answers the request at once).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::progress::Meter;
use super::ws::{ConnResult, Measured, merge, record};
use super::wsclient::Failure;
use crate::sse::http::{self, Item, Limits, StreamConn};
use crate::sse::run::SseTarget;

#[derive(Clone, Debug)]
pub struct ConnectPlan {
    pub target: SseTarget,
    /// Subscriptions in flight at once.
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub stall: Duration,
    pub meter: Arc<Meter>,
}

/// Opens one subscription and waits for its `200` event-stream head.
async fn subscribe(plan: &ConnectPlan) -> Result<(), Failure> {
    let mut req = http::request("GET", &plan.target.stream);
    req.set("Accept", "text/event-stream");
    let limits = Limits {
        io_timeout: plan.stall,
        max_body: u64::MAX,
    };
    let mut conn = StreamConn::open(&plan.target.stream, &req, limits)
        .await
        .map_err(Failure::Connect)?;
    match tokio::time::timeout(plan.stall, conn.items.recv()).await {
        Err(_) => Err(Failure::Stalled),
        Ok(Some(Item::Head { response, .. })) if response.status != 200 => {
            Err(Failure::Response(format!("status {}", response.status)))
        }
        // A 200 that is not an event stream is no subscription.
        Ok(Some(Item::Head { response, .. })) => {
            let ct = response.headers("content-type").next().unwrap_or("");
            if ct
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
            {
                Ok(())
            } else {
                Err(Failure::Response(format!("Content-Type {ct:?}")))
            }
        }
        Ok(Some(Item::Invalid(e))) | Ok(Some(Item::Unsupported(e))) => Err(Failure::Protocol(e)),
        Ok(_) => Err(Failure::ClosedByTarget),
    }
    // Dropping the stream closes the connection.
}

async fn worker(plan: ConnectPlan, start: Instant) -> ConnResult {
    let mut out = ConnResult::default();
    let slot = plan.meter.slot();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    tokio::time::sleep_until(start).await;
    while Instant::now() < end {
        let t0 = Instant::now();
        match subscribe(&plan).await {
            Ok(()) => {
                if t0 >= measure_from {
                    record(&plan.meter, slot, t0.elapsed());
                    out.operations += 1;
                }
            }
            Err(e) => {
                // Counted by kind; this worker stops (as in ws-connect).
                out.error = Some(e);
                return out;
            }
        }
    }
    out
}

/// Subscriptions per second, `connections` at a time.
pub async fn connect(plan: ConnectPlan) -> Measured {
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.connections {
        tasks.spawn(worker(plan.clone(), start));
    }
    merge(tasks, plan.duration, &plan.meter).await
}
