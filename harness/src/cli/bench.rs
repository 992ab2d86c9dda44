//! `pushspec bench`: flags, target resolution, and the `compare` and
//! `merge` tools over bench reports.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{ConfigError, exit, parse_run_timeout, resolve};
use crate::bench::{self, Scenario, Shard};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub tool: Option<BenchTool>,
    /// What to measure.
    #[arg(value_enum, required = true)]
    pub scenario: Option<Scenario>,
    /// WebSocket echo target, e.g. ws://127.0.0.1:9001/
    #[arg(long, value_name = "URL")]
    pub ws: Option<String>,
    /// SSE stream target (sse-fanout, sse-connect), e.g. http://127.0.0.1:8080/events
    #[arg(long, value_name = "URL")]
    pub sse: Option<String>,
    /// SSE publish endpoint (sse-fanout).
    #[arg(long, value_name = "URL", requires = "sse")]
    pub publish: Option<String>,
    /// Connections (ws-echo, ws-hold), handshakes in flight (ws-connect,
    /// sse-connect) or subscribers (sse-fanout); over all shards.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub connections: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    pub size: usize,
    /// Messages per second over all connections (open loop; closed loop
    /// when not given); events published per second for sse-fanout.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,
    /// Messages in flight per connection in a closed loop.
    #[arg(long, default_value_t = 1, value_name = "DEPTH")]
    pub pipeline: usize,
    /// How long to measure (ws-hold: how long to hold).
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_run_timeout)]
    pub duration: Duration,
    /// How long to run before measuring.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_warmup)]
    pub warmup: Duration,
    /// Sample this local process's CPU time and RSS from /proc during the
    /// run (the target's server process; needs --ws or --sse).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Run the K-th of N slices of the connections (1-based); merge the
    /// shard reports with `pushspec bench merge`.
    #[arg(long, value_name = "K/N", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// Write the JSON report here (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub tls: super::tls::TlsArgs,
}

#[derive(Debug, Subcommand)]
pub enum BenchTool {
    /// Compare two bench reports metric by metric; exit 1 on a regression
    /// beyond the threshold.
    Compare {
        /// The baseline report (`pushspec bench --json`).
        base: PathBuf,
        /// The report to judge against it.
        new: PathBuf,
        /// Largest tolerated regression of any gated metric, in percent.
        #[arg(long, default_value_t = 10.0, value_name = "PERCENT", value_parser = parse_percent)]
        max_regression: f64,
    },
    /// Merge the shard reports of one bench (`--shard K/N`) into one.
    Merge {
        /// Every shard's report, each exactly once.
        #[arg(required = true, value_name = "SHARD.json")]
        shards: Vec<PathBuf>,
        /// Write the merged JSON report here (`-`: standard output).
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

fn parse_warmup(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 1s)"))?;
    if d > crate::case::MAX_DURATION {
        return Err("the warm-up must be at most 24h".to_string());
    }
    Ok(d)
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(p) if p >= 0.0 && p.is_finite() => Ok(p),
        _ => Err("write a percentage, e.g. 10".to_string()),
    }
}

/// Whether to draw the live progress line: only for a person watching a
/// terminal, and never into a JSON report on standard output.
pub fn show_progress(stderr_is_terminal: bool, json_to_stdout: bool) -> bool {
    stderr_is_terminal && !json_to_stdout
}

fn is_stdout(p: &Option<PathBuf>) -> bool {
    p.as_ref().is_some_and(|p| p.as_os_str() == "-")
}

/// Writes a report as the table (unless the JSON goes to standard output)
/// and to its --json file.
fn emit(
    report: &bench::Report,
    json: &Option<PathBuf>,
    out: &mut (dyn Write + Send),
) -> Result<(), ConfigError> {
    if is_stdout(json) {
        let _ = out.write_all(report.to_json().as_bytes());
        return Ok(());
    }
    let _ = report.print(out);
    if let Some(p) = json {
        crate::report::write_file(p, report.to_json().as_bytes()).map_err(|source| {
            ConfigError::Report {
                file: p.display().to_string(),
                source,
            }
        })?;
    }
    Ok(())
}

fn check_json(json: &Option<PathBuf>) -> Result<(), ConfigError> {
    if let Some(p) = json
        && !is_stdout(json)
    {
        resolve::check_writable(p)?;
    }
    Ok(())
}

pub(super) async fn bench(
    args: BenchArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<i32, ConfigError> {
    match args.tool {
        Some(BenchTool::Compare {
            base,
            new,
            max_regression,
        }) => {
            let (b, n) = (bench::load(&base)?, bench::load(&new)?);
            let c = bench::compare::compare(&b, &n, max_regression)?;
            let _ = c.print(&base.display().to_string(), &new.display().to_string(), out);
            return Ok(if c.regressions() > 0 {
                exit::FAILED
            } else {
                exit::OK
            });
        }
        Some(BenchTool::Merge { shards, json }) => {
            check_json(&json)?;
            let loaded = shards
                .iter()
                .map(|p| {
                    Ok(bench::merge::Loaded {
                        file: p.display().to_string(),
                        report: bench::load(p)?,
                    })
                })
                .collect::<Result<Vec<_>, bench::BenchError>>()?;
            let merged = bench::merge::merge(&loaded)?;
            emit(&merged, &json, out)?;
            return Ok(exit::OK);
        }
        None => {}
    }
    let scenario = args.scenario.expect("clap requires a scenario");
    if args.connections == 0 || args.pipeline == 0 {
        return Err(ConfigError::Jobs);
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(ConfigError::Rate);
    }
    check_json(&args.json)?;
    let external = args.ws.is_some() || args.sse.is_some();
    if args.pid.is_some() && !external {
        return Err(bench::BenchError::PidWithoutTarget.into());
    }
    let embedded = if external {
        None
    } else {
        args.tls.apply(None)?;
        Some(super::tls::embedded(args.tls.tls).await?)
    };
    let reference = embedded.as_ref().map(|(_, targets)| targets.clone());
    let mut targets = if scenario.is_sse() {
        match (&args.sse, &args.publish, &reference) {
            (Some(s), p, _) if p.is_some() || scenario == Scenario::SseConnect => {
                crate::engine::Targets {
                    ws: None,
                    sse: Some(crate::sse::run::SseTarget {
                        stream: crate::target::parse_http(s)?,
                        publish: p.as_deref().map(crate::target::parse_http).transpose()?,
                    }),
                }
            }
            (None, _, Some(r)) => r.clone(),
            _ => return Err(ConfigError::BenchTarget(scenario)),
        }
    } else {
        match (&args.ws, &reference) {
            (Some(u), _) => crate::engine::Targets {
                ws: Some(crate::target::parse_ws(u)?),
                sse: None,
            },
            (None, Some(r)) => r.clone(),
            (None, None) => return Err(ConfigError::BenchTarget(scenario)),
        }
    };
    if embedded.is_none() {
        args.tls.apply(Some(&mut targets))?;
    }
    if super::tls::transport_info(&targets).insecure {
        let _ = writeln!(
            err,
            "pushspec: warning: --insecure: TLS certificates are not verified; nothing shows who answered"
        );
    }
    let target = if scenario.is_sse() {
        bench::Target::Sse(targets.sse.expect("an SSE target"))
    } else {
        bench::Target::Ws(targets.ws.expect("a WebSocket target"))
    };
    let plan = bench::Plan {
        scenario,
        target,
        config: bench::Config {
            connections: args.connections,
            size: args.size,
            pipeline: args.pipeline,
            rate: args.rate,
            warmup_ms: args.warmup.as_millis() as u64,
            duration_ms: args.duration.as_millis() as u64,
            shard: args.shard,
        },
        pid: args.pid,
    };
    let live = show_progress(std::io::stderr().is_terminal(), is_stdout(&args.json));
    let report = bench::run(plan, live.then_some(err)).await?;
    emit(&report, &args.json, out)?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_only_on_a_terminal_and_never_with_json_on_stdout() {
        assert!(show_progress(true, false));
        assert!(!show_progress(false, false));
        assert!(!show_progress(true, true));
    }

    #[test]
    fn percent_parses() {
        assert_eq!(parse_percent("10"), Ok(10.0));
        assert_eq!(parse_percent("2.5%"), Ok(2.5));
        assert!(parse_percent("-1").is_err());
        assert!(parse_percent("x").is_err());
    }
}
