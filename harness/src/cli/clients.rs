//! `pushspec clients`: serve Autobahn's client URL protocol with the
//! `client.ws.*` cases, optionally start the client under test (`--exec`),
//! and report per agent with `run`'s outcomes, reports and exit codes.
//!
//! The run ends when the `--exec` client exits, when every agent that ran a
//! case has asked for its reports (`/updateReports`), on Ctrl-C, when no
//! connection arrives for `--idle-timeout`, or when the run budget runs
//! out. Cases an agent never ran get a verdict saying why.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use tokio::sync::mpsc;

use super::resolve::check_writable;
use super::run::signal;
use super::{
    ColorChoice, ConfigError, exit, listen_addr, load_cases, parse_duration, parse_run_timeout,
};
use crate::case::select::{self, Patterns, Selection};
use crate::case::{Case, Protocol};
use crate::client::run::Ctx;
use crate::client::serve::{self, Notice, Suite};
use crate::engine::{Event, Stop};
use crate::outcome::{CaseResult, Outcome};
use crate::report::console::{self, Progress, Style, Verbosity};
use crate::report::{self, RunInfo};

#[derive(Debug, Args)]
pub struct ClientsArgs {
    /// Glob patterns over case ids (`client.ws.close.*`) or family names;
    /// every `client.ws.*` case when none.
    pub patterns: Vec<String>,
    /// Address to serve on (the client connects to ws://ADDR).
    #[arg(long, default_value = "127.0.0.1:9001", value_name = "ADDR")]
    pub listen: String,
    /// Start the client under test with PUSHSPEC_URL=ws://ADDR in its
    /// environment (`{url}` in CMD is replaced too), run through `sh -c`;
    /// the run ends when it exits.
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// Skip cases matching this pattern (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub skip: Vec<String>,
    /// Fail the run on `should` rules too (non-strict outcomes).
    #[arg(long)]
    pub strict: bool,
    /// How long any wait may go without the client doing something.
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Bound on the whole run (default: 60s plus one timeout per case).
    #[arg(long, value_name = "DURATION", value_parser = parse_run_timeout)]
    pub run_timeout: Option<Duration>,
    /// Without --exec: end the run when no connection arrives for this long.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_run_timeout)]
    pub idle_timeout: Duration,
    /// Write the JSON report here (`-`: standard output); with several
    /// agents, one file each: NAME.AGENT.json.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a JUnit XML report here (`-`: standard output); one per agent
    /// as for --json.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Case ids or patterns expected to fail, as for `run`.
    #[arg(long, value_name = "FILE")]
    pub known_failing: Option<PathBuf>,
    /// Load case files from this directory instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub cases: Option<PathBuf>,
    /// Say less: only the grouped findings and the verdict.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more: a line for every case.
    #[arg(short, long)]
    pub verbose: bool,
    /// Colour the console output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Never, value_name = "WHEN")]
    pub color: ColorChoice,
}

/// How long the server keeps listening after the `--exec` client exited,
/// for cases still finishing on connections it left.
const AFTER_EXIT: Duration = Duration::from_millis(300);

/// Why the wait for clients ended.
#[derive(Clone, Debug)]
enum End {
    /// The `--exec` client exited with this status.
    Exited(String),
    /// The `--exec` client could not be started.
    SpawnFailed(String),
    /// Every agent asked for its reports.
    Reported,
    /// No connection for the idle timeout.
    Idle(Duration),
    Stopped(Stop),
}

pub(super) async fn clients(
    args: ClientsArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<i32, ConfigError> {
    let cases = load_cases(&args.cases)?;
    let selection = Selection::new(Patterns::new(&args.patterns)?, Patterns::new(&args.skip)?);
    let client_ids: Vec<&str> = cases
        .iter()
        .filter(|c| c.protocol() == Protocol::ClientWs)
        .map(|c| c.id.as_str())
        .collect();
    for p in selection.unmatched_includes(&client_ids) {
        let _ = writeln!(
            err,
            "pushspec: warning: no client case matches {p:?} (patterns are globs over ids like client.ws.close.*, or family names like client.ws.close)"
        );
    }
    let chosen: Vec<Case> = cases
        .iter()
        .filter(|c| c.protocol() == Protocol::ClientWs && selection.selects(&c.id))
        .cloned()
        .collect();
    if chosen.is_empty() {
        let _ = writeln!(err, "pushspec: no client case selected");
        return Ok(exit::NO_CASES);
    }
    let known_failing = args
        .known_failing
        .as_deref()
        .map(select::load_known_failing)
        .transpose()?;
    if args.json.is_some() && args.json == args.junit {
        return Err(match &args.json {
            Some(p) if p.as_os_str() == "-" => ConfigError::BothReportsToStdout,
            Some(p) => ConfigError::SameReportFile(p.display().to_string()),
            None => unreachable!(),
        });
    }
    for p in [&args.json, &args.junit].into_iter().flatten() {
        if p.as_os_str() != "-" {
            check_writable(p)?;
        }
    }
    let mut stale = Vec::new();
    if let Some(kf) = &known_failing {
        let all: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
        let sel: Vec<&str> = chosen.iter().map(|c| c.id.as_str()).collect();
        stale = kf.stale(&all, &sel);
        for s in stale.iter().filter(|s| !s.matches_unselected) {
            let _ = writeln!(
                err,
                "pushspec: known-failing entry {:?} ({}:{}) matches no case: fix or remove it",
                s.pattern, kf.file, s.line
            );
        }
    }
    let stale_entries = stale.iter().filter(|s| !s.matches_unselected).count();

    let addr = listen_addr(&args.listen).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ConfigError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ConfigError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let url = format!("ws://{addr}");
    let level = match (args.quiet, args.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    let report_to_stdout = [&args.json, &args.junit]
        .into_iter()
        .flatten()
        .any(|p| p.as_os_str() == "-");
    // A report on standard output moves the console to standard error.
    let (console, mut stdout_report): (&mut (dyn Write + Send), Option<&mut (dyn Write + Send)>) =
        if report_to_stdout {
            (err, Some(out))
        } else {
            (out, None)
        };
    let style = Style {
        color: args.color == ColorChoice::Always,
    };
    let run_budget = args
        .run_timeout
        .unwrap_or(Duration::from_secs(60) + args.timeout * chosen.len() as u32);
    if level != Verbosity::Quiet {
        let _ = writeln!(
            console,
            "serving {} on {url} (Autobahn client protocol: /getCaseCount, /runCase?case=N&agent=A, /updateReports?agent=A; timeout {}, run budget {})",
            crate::text::count(chosen.len(), "client case", "client cases"),
            crate::text::duration(args.timeout),
            crate::text::duration(run_budget),
        );
        let _ = console.flush();
    }

    let suite = Arc::new(Suite::new(
        chosen.clone(),
        Ctx::new(args.timeout),
        known_failing.clone(),
        args.strict,
    ));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve::serve(listener, suite.clone(), tx));

    let started = SystemTime::now();
    let t0 = Instant::now();
    let mut results: BTreeMap<String, Vec<Option<CaseResult>>> = BTreeMap::new();
    let mut reported: Vec<String> = Vec::new();
    let mut progress = Progress::new(level, style, args.strict, false);
    let mut done = 0usize;
    let mut any_connection = false;

    let mut child = match &args.exec {
        Some(cmd) => {
            let cmd = cmd.replace("{url}", &url);
            let spawned = shell(&cmd)
                .env("PUSHSPEC_URL", &url)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn();
            match spawned {
                Ok(c) => Ok(Some(c)),
                Err(e) => Err(format!("cannot start {cmd:?}: {e}")),
            }
        }
        None => Ok(None),
    };
    let spawn_failed = child.as_ref().err().cloned();
    let budget_over = tokio::time::sleep(run_budget);
    let stop = signal();
    tokio::pin!(budget_over, stop);
    let mut idle_until = tokio::time::Instant::now() + args.idle_timeout;
    let end = loop {
        if let Some(why) = &spawn_failed {
            break End::SpawnFailed(why.clone());
        }
        let mut record = |n: Notice,
                          results: &mut BTreeMap<String, Vec<Option<CaseResult>>>,
                          reported: &mut Vec<String>,
                          console: &mut dyn Write| {
            match n {
                Notice::Finished {
                    agent,
                    index,
                    result,
                } => {
                    done += 1;
                    let _ = progress.event(
                        console,
                        &Event::CaseFinished {
                            result: &result,
                            done,
                            total: chosen.len(),
                        },
                    );
                    results
                        .entry(agent)
                        .or_insert_with(|| vec![None; chosen.len()])[index] = Some(*result);
                }
                Notice::Reported { agent } => {
                    results
                        .entry(agent.clone())
                        .or_insert_with(|| vec![None; chosen.len()]);
                    if !reported.contains(&agent) {
                        reported.push(agent);
                    }
                }
                Notice::Refused(why) => {
                    let _ = writeln!(console, "pushspec: refused a request: {why}");
                }
                Notice::Activity => {}
            }
        };
        let child_exit = async {
            match &mut child {
                Ok(Some(c)) => Some(c.wait().await),
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            n = rx.recv() => {
                let Some(n) = n else { break End::Idle(args.idle_timeout) };
                if matches!(n, Notice::Activity) {
                    any_connection = true;
                    idle_until = tokio::time::Instant::now() + args.idle_timeout;
                }
                record(n, &mut results, &mut reported, console);
                if args.exec.is_none()
                    && !reported.is_empty()
                    && results.keys().all(|a| reported.contains(a))
                {
                    break End::Reported;
                }
            }
            status = child_exit => {
                // Cases on connections the client left finish at once
                // (they see the TCP close); collect them.
                let quiet_until = tokio::time::Instant::now() + args.timeout;
                loop {
                    match tokio::time::timeout(AFTER_EXIT, rx.recv()).await {
                        Ok(Some(n)) => record(n, &mut results, &mut reported, console),
                        _ => break,
                    }
                    if tokio::time::Instant::now() > quiet_until {
                        break;
                    }
                }
                let status = match status {
                    Some(Ok(s)) => s.to_string(),
                    Some(Err(e)) => format!("unknown status: {e}"),
                    None => "gone".into(),
                };
                break End::Exited(status);
            }
            _ = tokio::time::sleep_until(idle_until), if args.exec.is_none() => {
                break End::Idle(args.idle_timeout);
            }
            s = &mut stop => break End::Stopped(s),
            _ = &mut budget_over => break End::Stopped(Stop::RunBudget(run_budget)),
        }
    };
    server.abort();
    if let Ok(Some(c)) = &mut child {
        // A client still running at the end (budget, Ctrl-C) is stopped.
        let _ = c.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(2), c.wait()).await;
    }
    let _ = progress.finish(console);

    let stop = match &end {
        End::Stopped(s) => Some(*s),
        _ => None,
    };
    let missing_reason = |agent_reported: bool| -> String {
        match &end {
            End::Exited(status) => {
                format!("the client exited ({status}) without running this case")
            }
            End::SpawnFailed(why) => why.clone(),
            End::Reported | End::Idle(_) if agent_reported => {
                "the client asked for its reports without running this case".to_string()
            }
            End::Reported => "the client never ran this case".to_string(),
            End::Idle(d) => format!(
                "the client did not run this case (no connection for {}; --idle-timeout)",
                crate::text::duration(*d)
            ),
            End::Stopped(Stop::RunBudget(b)) => format!(
                "the run budget ran out before the client ran this case ({}; --run-timeout)",
                crate::text::duration(*b)
            ),
            End::Stopped(_) => "the run was stopped before the client ran this case".into(),
        }
    };

    // One report per agent; with no agent at all, one report saying so.
    let nobody = results.is_empty();
    if nobody {
        results.insert(String::new(), vec![None; chosen.len()]);
    }
    let mut all: Vec<CaseResult> = Vec::new();
    let mut per_agent: Vec<(String, Vec<CaseResult>, Vec<String>)> = Vec::new();
    for (agent, slots) in results {
        let agent_reported = reported.contains(&agent);
        let mut rs = Vec::new();
        let mut not_run = Vec::new();
        for (i, slot) in slots.into_iter().enumerate() {
            match slot {
                Some(r) => rs.push(r),
                None if nobody => {
                    rs.push(CaseResult::not_run(&chosen[i], missing_reason(false)));
                }
                None if matches!(end, End::Stopped(Stop::Interrupted | Stop::Terminated)) => {
                    not_run.push(chosen[i].id.clone())
                }
                None => {
                    let mut r = CaseResult::not_run(&chosen[i], "");
                    r.outcome = Outcome::Error;
                    r.reason = missing_reason(agent_reported);
                    rs.push(r);
                }
            }
        }
        all.extend(rs.iter().cloned());
        per_agent.push((agent, rs, not_run));
    }
    let count = |rs: &[CaseResult], o: Outcome| rs.iter().filter(|r| r.outcome == o).count();
    let unreachable = if nobody {
        Some(match &end {
            End::SpawnFailed(why) => why.clone(),
            End::Exited(status) if !any_connection => {
                format!("the client exited ({status}) without connecting to {url}")
            }
            _ if !any_connection => format!("no client connected to {url}"),
            _ => "no client ran any case".to_string(),
        })
    } else {
        None
    };
    let stats_of = |rs: &[CaseResult]| exit::Stats {
        stop,
        fail: count(rs, Outcome::Fail),
        error: count(rs, Outcome::Error),
        xpass: count(rs, Outcome::Xpass),
        non_strict: count(rs, Outcome::NonStrict),
        strict: args.strict,
        not_run: count(rs, Outcome::NotRun),
        unreachable: unreachable.clone(),
        stale_entries,
    };
    let code = exit::status(&stats_of(&all));
    let several = per_agent.len() > 1;
    for (agent, rs, not_run) in &per_agent {
        let stats = stats_of(rs);
        let info = RunInfo {
            started,
            duration: t0.elapsed(),
            ws_target: Some(url.clone()),
            sse_target: None,
            publish: None,
            embedded: false,
            // pushspec listens on plain TCP; the client under test connects.
            transport: report::TransportInfo {
                ws: Some("tcp"),
                sse: None,
                publish: None,
                tls_verification: None,
                insecure: false,
            },
            strict: args.strict,
            stop,
            not_run: not_run.clone(),
            config: report::Config {
                patterns: args.patterns.clone(),
                skip: args.skip.clone(),
                profile: None,
                known_failing: args.known_failing.as_ref().map(|p| p.display().to_string()),
                cases_dir: args.cases.as_ref().map(|p| p.display().to_string()),
                jobs: 1,
                timeout_ms: args.timeout.as_millis() as u64,
                run_timeout_ms: run_budget.as_millis() as u64,
                strict: args.strict,
                skip_timing: false,
            },
            capabilities: Vec::new(),
            stale_known_failing: stale.clone(),
            verdict: exit::verdict(&stats),
            exit_code: exit::status(&stats),
            agent: (!agent.is_empty()).then(|| agent.clone()),
        };
        if several && level != Verbosity::Quiet {
            let _ = writeln!(console, "\nagent {agent}:");
        }
        let _ = console::details(console, rs, level, args.strict, style);
        let _ = console::grouped(console, rs, level, args.strict, style);
        let _ = console::summary(console, &info, rs, style);
        let suffix = several.then_some(agent.as_str());
        if let Some(p) = &args.json {
            write_report(
                p,
                suffix,
                &report::json::render(&info, rs),
                &mut stdout_report,
            )?;
        }
        if let Some(p) = &args.junit {
            write_report(
                p,
                suffix,
                &report::junit::render(&info, rs),
                &mut stdout_report,
            )?;
        }
    }
    let _ = console.flush();
    Ok(code)
}

/// `sh -c CMD` (`cmd /C` on Windows).
fn shell(cmd: &str) -> tokio::process::Command {
    if cfg!(windows) {
        let mut c = tokio::process::Command::new("cmd");
        c.arg("/C").arg(cmd);
        c
    } else {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(cmd);
        c
    }
}

/// The report file of one agent: `NAME.AGENT.EXT` when there are several.
fn agent_path(path: &Path, agent: Option<&str>) -> PathBuf {
    let Some(agent) = agent else {
        return path.to_path_buf();
    };
    let safe: String = agent
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{safe}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{safe}"),
    };
    path.with_file_name(name)
}

fn write_report(
    path: &Path,
    agent: Option<&str>,
    contents: &str,
    stdout: &mut Option<&mut (dyn Write + Send)>,
) -> Result<(), ConfigError> {
    if path.as_os_str() == "-" {
        if let Some(o) = stdout {
            o.write_all(contents.as_bytes())
                .and_then(|_| o.flush())
                .map_err(|source| ConfigError::Report {
                    file: "-".into(),
                    source,
                })?;
        }
        return Ok(());
    }
    let p = agent_path(path, agent);
    report::write_file(&p, contents.as_bytes()).map_err(|source| ConfigError::Report {
        file: p.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_file_per_agent() {
        let p = Path::new("out/report.json");
        assert_eq!(agent_path(p, None), PathBuf::from("out/report.json"));
        assert_eq!(
            agent_path(p, Some("ws 8.1/node")),
            PathBuf::from("out/report.ws_8_1_node.json")
        );
    }
}
