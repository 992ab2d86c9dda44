//! `pushspec bench compare BASE NEW`: each metric side by side with its
//! ratio, and a verdict against a regression threshold, so CI can gate
//! performance as it gates conformance.
//!
//! Figures are compared after normalising by each run's calibration
//! (its raw TCP round trips per second) where the machine's speed drives
//! them: latencies always, throughput in a closed loop. An open-loop
//! throughput (`--rate`, `sse-fanout`) is what was asked for and is
//! compared raw, as are exact counts (lost, duplicated, survived).

use std::io::Write;

use super::report::Report;
use super::{BenchError, Scenario};

/// Which way is better for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Better,
    Regressed,
    /// Shown, not gated (too noisy, or no samples to compare).
    Info,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub metric: String,
    pub base: f64,
    pub new: f64,
    /// new / base, raw.
    pub ratio: f64,
    /// new / base after normalising by the calibrations, when it applies.
    pub normalised: Option<f64>,
    pub verdict: Verdict,
}

pub struct Comparison {
    pub scenario: Scenario,
    /// new calibration / base calibration.
    pub calibration_ratio: f64,
    pub max_regression_percent: f64,
    pub rows: Vec<Row>,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regressed)
            .count()
    }
}

fn ratio(new: f64, base: f64) -> f64 {
    if base == 0.0 {
        if new == 0.0 { 1.0 } else { f64::INFINITY }
    } else {
        new / base
    }
}

struct Judge {
    limit: f64,
}

impl Judge {
    /// Verdict on a ratio (new/base) of a metric.
    fn verdict(&self, r: f64, better: Better) -> Verdict {
        match better {
            Better::Higher if r < 1.0 - self.limit => Verdict::Regressed,
            Better::Lower if r > 1.0 + self.limit => Verdict::Regressed,
            Better::Higher if r > 1.0 => Verdict::Better,
            Better::Lower if r < 1.0 => Verdict::Better,
            _ => Verdict::Ok,
        }
    }
}

/// Compares NEW against BASE; an error when they did not run the same
/// workload (nothing meaningful to compare).
pub fn compare(
    base: &Report,
    new: &Report,
    max_regression_percent: f64,
) -> Result<Comparison, BenchError> {
    if base.scenario != new.scenario {
        return Err(BenchError::Compare(format!(
            "the base ran {}, the new run {}",
            base.scenario.name(),
            new.scenario.name()
        )));
    }
    if !base.config.same_workload(&new.config) {
        return Err(BenchError::Compare(format!(
            "different workloads: base {:?}, new {:?} (connections, size, pipeline, rate and shard must match)",
            base.config, new.config
        )));
    }
    let judge = Judge {
        limit: max_regression_percent / 100.0,
    };
    let k = ratio(
        new.calibration.tcp_round_trips_per_sec,
        base.calibration.tcp_round_trips_per_sec,
    );
    let k = if k.is_finite() && k > 0.0 { k } else { 1.0 };
    let (b, n) = (&base.results, &new.results);
    let mut rows = Vec::new();

    let open_loop = new.scenario == Scenario::SseFanout || new.config.rate.is_some();
    let r = ratio(n.per_sec, b.per_sec);
    let normalised = (!open_loop).then_some(r / k);
    rows.push(Row {
        metric: new.scenario.unit().to_string(),
        base: b.per_sec,
        new: n.per_sec,
        ratio: r,
        normalised,
        verdict: judge.verdict(normalised.unwrap_or(r), Better::Higher),
    });

    let (bl, nl) = (&b.latency_us, &n.latency_us);
    let sampled = bl.count > 0 && nl.count > 0;
    for (name, bv, nv, gated) in [
        ("latency p50 us", bl.p50, nl.p50, true),
        ("latency p90 us", bl.p90, nl.p90, true),
        ("latency p99 us", bl.p99, nl.p99, true),
        ("latency p99.9 us", bl.p999, nl.p999, true),
        // One sample: too noisy to gate on.
        ("latency max us", bl.max, nl.max, false),
    ] {
        let r = ratio(nv as f64, bv as f64);
        let normalised = sampled.then_some(r * k);
        rows.push(Row {
            metric: name.into(),
            base: bv as f64,
            new: nv as f64,
            ratio: r,
            normalised,
            verdict: match normalised {
                Some(x) if gated => judge.verdict(x, Better::Lower),
                _ => Verdict::Info,
            },
        });
    }

    // Exact counts: any increase of what must be zero is a regression.
    if let (Some(bd), Some(nd)) = (&b.delivery, &n.delivery) {
        for (name, bv, nv) in [
            ("lost", bd.lost, nd.lost),
            ("duplicated", bd.duplicated, nd.duplicated),
            ("out of order", bd.out_of_order, nd.out_of_order),
        ] {
            rows.push(Row {
                metric: name.into(),
                base: bv as f64,
                new: nv as f64,
                ratio: ratio(nv as f64, bv as f64),
                normalised: None,
                verdict: if nv > bv {
                    Verdict::Regressed
                } else if nv < bv {
                    Verdict::Better
                } else {
                    Verdict::Ok
                },
            });
        }
    }
    if let (Some(bh), Some(nh)) = (&b.hold, &n.hold) {
        let share = |h: &super::Hold| h.survived as f64 / h.requested.max(1) as f64;
        let r = ratio(share(nh), share(bh));
        rows.push(Row {
            metric: "survived".into(),
            base: bh.survived as f64,
            new: nh.survived as f64,
            ratio: r,
            normalised: None,
            verdict: judge.verdict(r, Better::Higher),
        });
    }
    let errors = |r: &super::Results| r.errors.values().sum::<u64>() as f64;
    rows.push(Row {
        metric: "errors".into(),
        base: errors(b),
        new: errors(n),
        ratio: ratio(errors(n), errors(b)),
        normalised: None,
        verdict: Verdict::Info,
    });

    Ok(Comparison {
        scenario: new.scenario,
        calibration_ratio: k,
        max_regression_percent,
        rows,
    })
}

fn figure(x: f64) -> String {
    if x.fract() == 0.0 || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn times(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "inf".into()
    }
}

impl Comparison {
    pub fn print(&self, base: &str, new: &str, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{}: {new} against {base} (ratio: new/base; normalised: by the TCP round-trip calibration, new/base {:.3}; throughput divided by it in a closed loop, latency multiplied by it)",
            self.scenario.name(),
            self.calibration_ratio
        )?;
        writeln!(
            out,
            "{:<18} {:>14} {:>14} {:>9} {:>11}  verdict",
            "metric", "base", "new", "ratio", "normalised"
        )?;
        for r in &self.rows {
            let verdict = match r.verdict {
                Verdict::Ok => "ok",
                Verdict::Better => "better",
                Verdict::Regressed => "REGRESSED",
                Verdict::Info => "(not gated)",
            };
            writeln!(
                out,
                "{:<18} {:>14} {:>14} {:>9} {:>11}  {verdict}",
                r.metric,
                figure(r.base),
                figure(r.new),
                times(r.ratio),
                r.normalised.map_or("-".into(), times),
            )?;
        }
        match self.regressions() {
            0 => writeln!(out, "no regression beyond {}%", self.max_regression_percent),
            n => writeln!(
                out,
                "{n} regression{} beyond {}%",
                if n == 1 { "" } else { "s" },
                self.max_regression_percent
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(json: &str) -> Report {
        serde_json::from_str(json).unwrap()
    }

    /// A minimal report: throughput, p99 (other percentiles equal), and
    /// the calibration.
    fn sample(per_sec: f64, p99: u64, rtt: f64, rate: Option<f64>) -> Report {
        let rate = rate.map_or("null".to_string(), |r| r.to_string());
        report(&format!(
            r#"{{"schema_version":1,"tool":"pushspec","version":"0","scenario":"ws-echo",
            "started_at":"x","target":"t",
            "config":{{"connections":1,"size":64,"pipeline":1,"rate":{rate},"warmup_ms":0,"duration_ms":1000}},
            "calibration":{{"tcp_round_trips_per_sec":{rtt},"tcp_bytes_per_sec":1.0}},
            "results":{{"operations":10,"per_sec":{per_sec},"bytes_per_sec":0,
              "per_connection_to_tcp_round_trips":0,
              "latency_us":{{"count":10,"p50":10,"p90":10,"p99":{p99},"p999":{p99},"max":{p99},"mean":10,"histogram":""}},
              "errors":{{}}}}}}"#
        ))
    }

    #[test]
    fn a_slower_run_regresses_a_faster_passes() {
        let base = sample(1000.0, 100, 50_000.0, None);
        let slow = sample(500.0, 300, 50_000.0, None);
        let c = compare(&base, &slow, 10.0).unwrap();
        assert_eq!(c.rows[0].verdict, Verdict::Regressed);
        assert_eq!(c.regressions(), 3, "{:?}", c.rows);
        let fast = sample(1100.0, 90, 50_000.0, None);
        assert_eq!(compare(&base, &fast, 10.0).unwrap().regressions(), 0);
        // Within the threshold.
        let near = sample(950.0, 105, 50_000.0, None);
        assert_eq!(compare(&base, &near, 10.0).unwrap().regressions(), 0);
    }

    #[test]
    fn a_slower_machine_is_not_a_regression_after_normalising() {
        let base = sample(1000.0, 100, 50_000.0, None);
        // Half the throughput and double the latency on a machine whose
        // loopback round trips are half as fast: the same.
        let new = sample(500.0, 200, 25_000.0, None);
        let c = compare(&base, &new, 10.0).unwrap();
        assert_eq!(c.regressions(), 0, "{:?}", c.rows);
        assert!((c.rows[0].normalised.unwrap() - 1.0).abs() < 1e-9);
        // An open-loop throughput is compared raw.
        let base = sample(1000.0, 100, 50_000.0, Some(1000.0));
        let new = sample(1000.0, 200, 25_000.0, Some(1000.0));
        let c = compare(&base, &new, 10.0).unwrap();
        assert_eq!(c.rows[0].normalised, None);
        assert_eq!(c.regressions(), 0, "{:?}", c.rows);
    }

    #[test]
    fn different_workloads_do_not_compare() {
        let base = sample(1000.0, 100, 1.0, None);
        let other = sample(1000.0, 100, 1.0, Some(5.0));
        assert!(matches!(
            compare(&base, &other, 10.0),
            Err(BenchError::Compare(_))
        ));
    }
}
