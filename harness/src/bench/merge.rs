//! `pushspec bench merge`: shard reports back into one. Histograms are
//! added exactly (HdrHistogram addition), counts summed; the shards must
//! be one bench: same scenario and configuration, every K of N present
//! exactly once.

use std::collections::BTreeMap;

use super::report::{Latency, Report, Results, ShardSummary};
use super::ws::histogram;
use super::{BenchError, Calibration, Delivery, Hold};

/// A report and the file it came from (for error messages).
pub struct Loaded {
    pub file: String,
    pub report: Report,
}

fn check(shards: &[Loaded]) -> Result<u32, BenchError> {
    let bad = |m: String| Err(BenchError::Merge(m));
    let Some(first) = shards.first() else {
        return bad("no shard report given".into());
    };
    let Some(n) = first.report.config.shard.map(|s| s.n) else {
        return bad(format!(
            "{} is not a shard (run with --shard K/N)",
            first.file
        ));
    };
    let mut seen = vec![None::<&str>; n as usize];
    for s in shards {
        let r = &s.report;
        let Some(shard) = r.config.shard else {
            return bad(format!("{} is not a shard (run with --shard K/N)", s.file));
        };
        if r.shards.is_some() {
            return bad(format!("{} is already a merged report", s.file));
        }
        if shard.n != n {
            return bad(format!(
                "{} is shard {shard}, {} is of {n} shards",
                s.file, first.file
            ));
        }
        if r.scenario != first.report.scenario {
            return bad(format!(
                "{} ran {}, {} ran {}",
                s.file,
                r.scenario.name(),
                first.file,
                first.report.scenario.name()
            ));
        }
        let (mut a, mut b) = (r.config.clone(), first.report.config.clone());
        (a.shard, b.shard) = (None, None);
        if a != b {
            return bad(format!(
                "{} and {} ran different configurations ({a:?} vs {b:?})",
                s.file, first.file
            ));
        }
        let slot = &mut seen[shard.k as usize - 1];
        if let Some(other) = slot {
            return bad(format!("{} and {other} are both shard {shard}", s.file));
        }
        *slot = Some(&s.file);
    }
    let missing: Vec<String> = (1..=n)
        .filter(|k| seen[*k as usize - 1].is_none())
        .map(|k| format!("{k}/{n}"))
        .collect();
    if !missing.is_empty() {
        return bad(format!("shard {} missing", missing.join(", ")));
    }
    Ok(n)
}

/// One report from all the shards of a bench.
pub fn merge(shards: &[Loaded]) -> Result<Report, BenchError> {
    check(shards)?;
    let first = &shards[0].report;
    let mut latency = histogram();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let (mut operations, mut per_sec, mut bytes_per_sec) = (0u64, 0.0, 0.0);
    let mut delivery: Option<Delivery> = None;
    let mut hold: Option<Hold> = None;
    let (mut rtt, mut bulk) = (0.0, 0.0);
    let mut summaries = Vec::new();
    for s in shards {
        let r = &s.report.results;
        let h = r
            .latency_us
            .decode()
            .map_err(|reason| BenchError::Histogram {
                file: s.file.clone(),
                reason,
            })?;
        latency.add(&h).map_err(|e| BenchError::Histogram {
            file: s.file.clone(),
            reason: format!("histogram out of range: {e:?}"),
        })?;
        operations += r.operations;
        // The shards ran at the same time: their rates add.
        per_sec += r.per_sec;
        bytes_per_sec += r.bytes_per_sec;
        for (k, n) in &r.errors {
            *errors.entry(k.clone()).or_default() += n;
        }
        if let Some(d) = &r.delivery {
            let m = delivery.get_or_insert_with(Delivery::default);
            m.published += d.published;
            m.failed_publishes += d.failed_publishes;
            m.expected += d.expected;
            m.delivered += d.delivered;
            m.lost += d.lost;
            m.duplicated += d.duplicated;
            m.out_of_order += d.out_of_order;
            m.slowest_subscriber_lag_us =
                m.slowest_subscriber_lag_us.max(d.slowest_subscriber_lag_us);
        }
        if let Some(x) = &r.hold {
            let m = hold.get_or_insert_with(Hold::default);
            m.requested += x.requested;
            m.opened += x.opened;
            m.survived += x.survived;
            m.opening_ms = m.opening_ms.max(x.opening_ms);
            m.held_ms = m.held_ms.max(x.held_ms);
        }
        rtt += s.report.calibration.tcp_round_trips_per_sec;
        bulk += s.report.calibration.tcp_bytes_per_sec;
        summaries.push(ShardSummary {
            shard: s.report.config.shard.expect("checked"),
            started_at: s.report.started_at.clone(),
            target: s.report.target.clone(),
            calibration: s.report.calibration,
            operations: r.operations,
            per_sec: r.per_sec,
        });
    }
    summaries.sort_by_key(|s| s.shard.k);
    let count = shards.len() as f64;
    // Shards may run on different machines: the merged calibration is
    // their mean, and each shard's own stays in `shards`.
    let calibration = Calibration {
        tcp_round_trips_per_sec: rtt / count,
        tcp_bytes_per_sec: bulk / count,
    };
    let mut config = first.config.clone();
    config.shard = None;
    let started_at = shards
        .iter()
        .map(|s| s.report.started_at.clone())
        .min()
        .unwrap_or_default();
    Ok(Report {
        schema_version: first.schema_version,
        tool: first.tool.clone(),
        version: first.version.clone(),
        scenario: first.scenario,
        started_at,
        target: first.target.clone(),
        calibration,
        results: Results {
            operations,
            per_sec,
            bytes_per_sec,
            per_connection_to_tcp_round_trips: per_sec
                / config.connections.max(1) as f64
                / calibration.tcp_round_trips_per_sec.max(1e-9),
            latency_us: Latency::of(&latency),
            errors,
            delivery,
            hold,
            // Each shard sampled what it was given: per-shard figures do
            // not add up to one process's, so they stay in the shards.
            process: None,
        },
        config,
        shards: Some(summaries),
    })
}
