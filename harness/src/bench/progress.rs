//! A run's shared record: every measured latency (in a few histograms
//! behind locks, so memory stays the same for 10 or 10,000 connections),
//! and the live progress line: operations so far, the current rate and
//! the p99 of the last interval, redrawn on one stderr line while a run
//! goes. The line is only drawn on a terminal (the CLI decides); its
//! window histogram is only kept when someone watches it.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// Shared by every worker of a run.
pub struct Meter {
    ops: AtomicU64,
    /// The run's latencies, spread over a few locks: a connection records
    /// into its slot's histogram (one histogram is ~190 KiB, too much to
    /// keep per connection).
    slots: Box<[Mutex<Histogram<u64>>]>,
    next_slot: AtomicUsize,
    /// Latencies since the line was last drawn (only when it is drawn).
    window: Option<Mutex<Histogram<u64>>>,
    done: AtomicBool,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("ops", &self.ops.load(Ordering::Relaxed))
            .field("live", &self.window.is_some())
            .finish()
    }
}

impl Meter {
    pub fn new(live: bool) -> Meter {
        // A few slots per core keep the locks uncontended.
        let n = std::thread::available_parallelism().map_or(4, |n| n.get() * 4);
        Meter {
            ops: AtomicU64::new(0),
            slots: (0..n.clamp(4, 32))
                .map(|_| Mutex::new(super::ws::histogram()))
                .collect(),
            next_slot: AtomicUsize::new(0),
            window: live.then(|| Mutex::new(super::ws::histogram())),
            done: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The slot a new connection records into.
    pub fn slot(&self) -> usize {
        self.next_slot.fetch_add(1, Ordering::Relaxed) % self.slots.len()
    }

    /// One measured operation, with its latency in microseconds.
    pub fn record(&self, slot: usize, us: u64) {
        self.ops.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut h) = self.slots[slot % self.slots.len()].lock() {
            let _ = h.record(us);
        }
        if let Some(w) = &self.window
            && let Ok(mut h) = w.lock()
        {
            let _ = h.record(us);
        }
    }

    /// Every latency recorded so far, in one histogram.
    pub fn latencies(&self) -> Histogram<u64> {
        let mut all = super::ws::histogram();
        for s in &self.slots {
            if let Ok(h) = s.lock() {
                let _ = all.add(&*h);
            }
        }
        all
    }

    pub fn finish(&self) {
        self.done.store(true, Ordering::Release);
        self.wake.notify_waiters();
    }

    /// Redraws the line every `every` until [`Meter::finish`], then
    /// erases it.
    pub async fn show(&self, what: &str, out: &mut (dyn Write + Send), every: Duration) {
        let start = Instant::now();
        let mut last = (start, 0u64);
        loop {
            let woken = self.wake.notified();
            if self.done.load(Ordering::Acquire) {
                break;
            }
            let _ = tokio::time::timeout(every, woken).await;
            if self.done.load(Ordering::Acquire) {
                break;
            }
            let now = Instant::now();
            let ops = self.ops.load(Ordering::Relaxed);
            let rate = (ops - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-9);
            last = (now, ops);
            let p99 = self.window.as_ref().and_then(|w| {
                let mut h = w.lock().ok()?;
                let p = (!h.is_empty()).then(|| h.value_at_quantile(0.99));
                h.reset();
                p
            });
            let _ = write!(out, "\r\x1b[K{}", line(what, now - start, ops, rate, p99));
            let _ = out.flush();
        }
        let _ = write!(out, "\r\x1b[K");
        let _ = out.flush();
    }
}

/// One progress line (without the terminal control codes).
pub fn line(what: &str, elapsed: Duration, ops: u64, rate: f64, p99_us: Option<u64>) -> String {
    let p99 = p99_us.map_or("-".to_string(), |p| format!("{p} us"));
    format!(
        "{:>5.1}s  {ops} {what}  {rate:.0}/s now  p99 {p99}",
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_rate_and_p99() {
        let l = line(
            "messages",
            Duration::from_millis(1500),
            300,
            200.4,
            Some(87),
        );
        assert_eq!(l, "  1.5s  300 messages  200/s now  p99 87 us");
        assert!(line("messages", Duration::ZERO, 0, 0.0, None).ends_with("p99 -"));
    }

    #[tokio::test]
    async fn draws_while_running_and_erases_at_the_end() {
        let m = std::sync::Arc::new(Meter::new(true));
        let mut out = Vec::new();
        let worker = {
            let m = m.clone();
            async move {
                for _ in 0..5 {
                    m.record(0, 10);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                m.finish();
            }
        };
        tokio::join!(
            worker,
            m.show("messages", &mut out, Duration::from_millis(30))
        );
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("p99 10 us"), "{s:?}");
        assert!(s.ends_with("\r\x1b[K"), "{s:?}");
    }

    #[test]
    fn unwatched_meter_only_counts() {
        let m = Meter::new(false);
        let (a, b) = (m.slot(), m.slot());
        assert_ne!(a, b);
        m.record(a, 5);
        m.record(b, 7);
        assert!(m.window.is_none());
        assert_eq!(m.ops.load(Ordering::Relaxed), 2);
        let all = m.latencies();
        assert_eq!((all.len(), all.min(), all.max()), (2, 5, 7));
    }
}
