//! Live counts of what the server holds, for [`crate::ServerHandle::stats`]:
//! tests and benchmarks use them to know when every connection has reached
//! the state they want to measure, instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A snapshot of the server's connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Open TCP connections (any protocol, any state).
    pub connections: usize,
    /// WebSocket sessions (upgraded connections not yet closed).
    pub websocket_sessions: usize,
    /// WebSocket sessions that are parked: idle at a message boundary, with
    /// no buffers and no compression context (see the crate docs).
    pub parked_websocket_sessions: usize,
    /// Open event streams (`GET /events`).
    pub event_streams: usize,
}

/// What a [`Held`] counts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Gauge {
    Connections,
    WebSocketSessions,
    ParkedWebSocketSessions,
    EventStreams,
}

#[derive(Debug, Default)]
pub(crate) struct Gauges {
    counters: [AtomicUsize; 4],
}

/// Counts one holder while it lives, so a task that is cancelled (server
/// dropped) is uncounted as surely as one that ends.
pub(crate) struct Held {
    gauges: Arc<Gauges>,
    gauge: Gauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauges
            .counter(self.gauge)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gauges {
    fn counter(&self, gauge: Gauge) -> &AtomicUsize {
        &self.counters[gauge as usize]
    }

    pub fn hold(self: &Arc<Self>, gauge: Gauge) -> Held {
        self.counter(gauge).fetch_add(1, Ordering::Relaxed);
        Held {
            gauges: self.clone(),
            gauge,
        }
    }

    pub fn snapshot(&self) -> Stats {
        let get = |g| self.counter(g).load(Ordering::Relaxed);
        Stats {
            connections: get(Gauge::Connections),
            websocket_sessions: get(Gauge::WebSocketSessions),
            parked_websocket_sessions: get(Gauge::ParkedWebSocketSessions),
            event_streams: get(Gauge::EventStreams),
        }
    }
}
