//! `--pid PID`: the target's CPU time and resident memory, sampled from
//! /proc while the run goes (Linux only), so a result can say what the
//! throughput cost: peak RSS, memory per connection, CPU seconds per
//! million operations.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Clock ticks per second in /proc/PID/stat: USER_HZ, which the kernel
/// fixes at 100 for user space on every architecture pushspec runs on
/// (x86, arm, riscv, powerpc, s390).
const TICKS_PER_SEC: f64 = 100.0;

/// What the samples showed.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ProcessStats {
    pub pid: u32,
    /// Time between samples.
    pub interval_ms: u64,
    pub samples: u64,
    /// RSS before the scenario opened any connection.
    pub rss_start_kb: u64,
    pub rss_peak_kb: u64,
    pub rss_end_kb: u64,
    /// (peak RSS - start RSS) / connections of this run.
    pub memory_per_connection_bytes: u64,
    /// User + system CPU time over the measured span (after the warm-up).
    pub cpu_seconds: f64,
    /// `cpu_seconds` per million operations counted in the measured span.
    pub cpu_seconds_per_million_operations: f64,
    /// The process was gone before the run ended: figures stop there.
    pub exited: bool,
}

/// One reading of /proc/PID.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sample {
    cpu_ticks: u64,
    rss_kb: u64,
}

fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces or
    // ')': the fields after the last ')' start with field 3, `state`, so
    // utime (14) and stime (15) are the 12th and 13th of them.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

fn rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn read(pid: u32) -> std::io::Result<Sample> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected format");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(Sample {
        cpu_ticks: cpu_ticks(&stat).ok_or_else(bad)?,
        // A zombie has no VmRSS line any more.
        rss_kb: rss_kb(&status).ok_or_else(bad)?,
    })
}

/// Whether the process can be sampled at all (before the run starts).
pub fn check(pid: u32) -> std::io::Result<()> {
    read(pid).map(|_| ())
}

/// The sampling interval for a run of this length: about 50 samples, at
/// least every 250 ms, never more often than every 10 ms.
pub fn interval(run: Duration) -> Duration {
    (run / 50).clamp(Duration::from_millis(10), Duration::from_millis(250))
}

/// Samples until `stop` resolves; CPU time counts from `measure_from`.
pub async fn sample(
    pid: u32,
    every: Duration,
    measure_from: Instant,
    stop: impl std::future::Future<Output = ()>,
) -> Samples {
    let mut s = Samples {
        pid,
        every,
        first: read(pid).ok(),
        ..Samples::default()
    };
    s.count = u64::from(s.first.is_some());
    s.peak_kb = s.first.map_or(0, |f| f.rss_kb);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        if !s.take(Instant::now() >= measure_from) {
            return s;
        }
    }
    s.take(true);
    s
}

/// Readings gathered by [`sample`].
#[derive(Debug, Default)]
pub struct Samples {
    pid: u32,
    every: Duration,
    first: Option<Sample>,
    /// The first reading at or after the start of the measured span.
    measured_from: Option<Sample>,
    last: Option<Sample>,
    peak_kb: u64,
    count: u64,
    exited: bool,
}

impl Samples {
    /// Takes one reading; false once the process is gone.
    fn take(&mut self, measuring: bool) -> bool {
        if self.exited {
            return false;
        }
        let Ok(r) = read(self.pid) else {
            self.exited = true;
            return false;
        };
        self.count += 1;
        self.peak_kb = self.peak_kb.max(r.rss_kb);
        if measuring && self.measured_from.is_none() {
            self.measured_from = Some(r);
        }
        self.last = Some(r);
        true
    }

    /// The figures, for a run of `connections` that counted `operations`.
    pub fn stats(&self, connections: usize, operations: u64) -> ProcessStats {
        let start_kb = self.first.map_or(0, |f| f.rss_kb);
        let cpu_ticks = match (self.measured_from, self.last) {
            (Some(a), Some(b)) => b.cpu_ticks.saturating_sub(a.cpu_ticks),
            _ => 0,
        };
        let cpu_seconds = cpu_ticks as f64 / TICKS_PER_SEC;
        ProcessStats {
            pid: self.pid,
            interval_ms: self.every.as_millis() as u64,
            samples: self.count,
            rss_start_kb: start_kb,
            rss_peak_kb: self.peak_kb,
            rss_end_kb: self.last.map_or(start_kb, |l| l.rss_kb),
            memory_per_connection_bytes: self.peak_kb.saturating_sub(start_kb) * 1024
                / connections.max(1) as u64,
            cpu_seconds,
            cpu_seconds_per_million_operations: if operations == 0 {
                0.0
            } else {
                cpu_seconds * 1e6 / operations as f64
            },
            exited: self.exited,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_hostile_command_name() {
        let stat = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 900 0 0 0 123 45 0 0 20 0 3 0 100 \
                    2000000 500 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(168));
        assert_eq!(cpu_ticks("garbage"), None);
        assert_eq!(
            rss_kb("Name:\tx\nVmHWM:\t  20 kB\nVmRSS:\t   1234 kB\n"),
            Some(1234)
        );
        assert_eq!(rss_kb("Name:\tzombie\n"), None);
    }

    #[tokio::test]
    async fn samples_this_process() {
        let pid = std::process::id();
        check(pid).unwrap();
        let start = Instant::now();
        let s = sample(
            pid,
            Duration::from_millis(10),
            start,
            tokio::time::sleep(Duration::from_millis(100)),
        )
        .await;
        let st = s.stats(10, 1000);
        assert!(st.samples >= 3, "{st:?}");
        assert!(
            st.rss_peak_kb >= st.rss_start_kb && st.rss_start_kb > 0,
            "{st:?}"
        );
        assert!(!st.exited);
    }

    #[test]
    fn a_missing_process_is_an_error() {
        // PIDs are below 2^22 on Linux.
        assert!(check(u32::MAX).is_err());
    }
}
