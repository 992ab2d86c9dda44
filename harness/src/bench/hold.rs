//! `ws-hold`: open N connections, hold them for the duration (answering
//! the target's pings), then prove each is still alive with a ping of our
//! own. Reports how long opening took (and each open's latency), how many
//! opened and how many survived, and failures by kind.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use super::progress::Meter;
use super::ws::{ConnResult, Measured, record, tally};
use super::wsclient::{self, Failure, Message};
use crate::target::WsTarget;
use crate::wire::frame::Opcode;

/// Handshakes in flight at once while opening: enough to open thousands
/// of connections in seconds, few enough not to overflow a listen backlog
/// (a SYN dropped there waits a second before it is sent again).
const OPENING_AT_ONCE: usize = 256;

/// A connection still waiting for its turn to open this long after the
/// start gives up (counted as `connect`): opening ends in bounded time
/// even when every handshake stalls.
const OPENING_BUDGET: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct HoldPlan {
    pub target: WsTarget,
    pub connections: usize,
    /// How long to hold once every connection has opened (or failed to).
    pub duration: Duration,
    pub stall: Duration,
    pub meter: Arc<Meter>,
}

/// What holding showed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub requested: u64,
    pub opened: u64,
    /// Connections that answered the final ping.
    pub survived: u64,
    /// From the first connect to the last connection opened or failed.
    pub opening_ms: u64,
    pub held_ms: u64,
}

/// What each connection says when its opening is over.
struct Opened {
    at: Instant,
}

async fn one(
    plan: HoldPlan,
    gate: Arc<Semaphore>,
    opened: tokio::sync::mpsc::Sender<Opened>,
    mut hold_until: watch::Receiver<Option<Instant>>,
    id: usize,
    give_up: Instant,
) -> (ConnResult, bool) {
    let mut out = ConnResult::default();
    let permit = tokio::time::timeout_at(give_up, gate.acquire_owned()).await;
    let t0 = Instant::now();
    let conn = match permit {
        Ok(_) => wsclient::connect(&plan.target, plan.stall).await,
        Err(_) => Err(Failure::Connect(
            "not started within the opening budget".into(),
        )),
    };
    drop(permit);
    let _ = opened.send(Opened { at: Instant::now() }).await;
    drop(opened);
    let (mut reader, mut writer) = match conn {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(e);
            return (out, false);
        }
    };
    record(&plan.meter, plan.meter.slot(), t0.elapsed());
    out.operations = 1;

    // Hold: answer the target's pings, notice a close, until the end.
    let until = loop {
        if let Some(u) = *hold_until.borrow_and_update() {
            break Some(u);
        }
        tokio::select! {
            changed = hold_until.changed() => if changed.is_err() { break None },
            m = reader.message(Duration::from_secs(3600)) => match m {
                Ok(Message::Ping(p)) => {
                    if let Err(e) = wsclient::send(&mut writer, Opcode::Pong, &p).await {
                        out.error = Some(e);
                        return (out, false);
                    }
                }
                Ok(_) | Err(Failure::Stalled) => {}
                Err(e) => { out.error = Some(e); return (out, false); }
            }
        }
    };
    let Some(until) = until else {
        return (out, false);
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => break,
            m = reader.message(Duration::from_secs(3600)) => match m {
                Ok(Message::Ping(p)) => {
                    if let Err(e) = wsclient::send(&mut writer, Opcode::Pong, &p).await {
                        out.error = Some(e);
                        return (out, false);
                    }
                }
                Ok(_) | Err(Failure::Stalled) => {}
                Err(e) => { out.error = Some(e); return (out, false); }
            }
        }
    }

    // Still alive? A ping of our own must come back as its pong.
    let token = format!("pushspec-hold-{id}").into_bytes();
    if let Err(e) = wsclient::send(&mut writer, Opcode::Ping, &token).await {
        out.error = Some(e);
        return (out, false);
    }
    let deadline = Instant::now() + plan.stall;
    let alive = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match reader.message(left).await {
            Ok(Message::Pong(p)) if p == token => break true,
            Ok(Message::Ping(p)) => {
                if let Err(e) = wsclient::send(&mut writer, Opcode::Pong, &p).await {
                    out.error = Some(e);
                    break false;
                }
            }
            Ok(_) if Instant::now() < deadline => {}
            Ok(_) | Err(Failure::Stalled) => {
                out.error = Some(Failure::NoPong);
                break false;
            }
            Err(e) => {
                out.error = Some(e);
                break false;
            }
        }
    };
    wsclient::close(&mut writer).await;
    (out, alive)
}

pub async fn hold(plan: HoldPlan) -> (Measured, Hold) {
    let start = Instant::now();
    let gate = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel(plan.connections.max(1));
    let (until_tx, until_rx) = watch::channel(None);
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..plan.connections {
        tasks.spawn(one(
            plan.clone(),
            gate.clone(),
            opened_tx.clone(),
            until_rx.clone(),
            id,
            start + OPENING_BUDGET,
        ));
    }
    drop(opened_tx);
    // Each connection reports once, within the budget plus a stall time.
    let mut last = start;
    for _ in 0..plan.connections {
        match opened_rx.recv().await {
            Some(o) => last = last.max(o.at),
            None => break,
        }
    }
    let opening = last - start;
    let _ = until_tx.send(Some(Instant::now() + plan.duration));

    let mut survived = 0u64;
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        results.push(r.ok().map(|(c, alive)| {
            survived += u64::from(alive);
            c
        }));
    }
    let m = tally(results, opening.max(Duration::from_millis(1)), &plan.meter);
    let h = Hold {
        requested: plan.connections as u64,
        opened: m.operations,
        survived,
        opening_ms: opening.as_millis() as u64,
        held_ms: plan.duration.as_millis() as u64,
    };
    (m, h)
}
