//! The `pushspec` command line. Names, flags and exit codes here are a
//! public contract: CI scripts depend on them.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, Parser, Subcommand};

use crate::case::select::{self, Patterns, Selection};
use crate::case::{Case, Protocol, Script, file};
use crate::engine::{self, Plan, Targets};
use crate::outcome::{self, CaseResult, Outcome};
use crate::profile::{Capabilities, Profile};
use crate::report::{self, RunInfo};
use crate::sse::run::SseTarget;
use crate::ws::run::Settings;
use crate::{probe, target};

/// Exit codes (documented in the README).
pub mod exit {
    /// Every selected case passed (non-strict allowed unless --strict).
    pub const OK: i32 = 0;
    /// At least one failure, or a known-failing case that now passes.
    pub const FAILED: i32 = 1;
    /// Usage or configuration error.
    pub const USAGE: i32 = 2;
    /// Target unreachable, or no WebSocket handshake possible at all.
    pub const UNREACHABLE: i32 = 3;
    /// No case selected.
    pub const NO_CASES: i32 = 4;
    /// Interrupted (SIGINT); partial reports were written.
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, Parser)]
#[command(
    name = "pushspec",
    version,
    about = "Conformance test suite for WebSocket (RFC 6455) and Server-Sent Events servers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run cases against a target (the embedded reference server if none is given).
    Run(Box<RunArgs>),
    /// List cases: id, level, spec section, title.
    List(ListArgs),
    /// Print one case in full.
    Show {
        id: String,
        #[arg(long, value_name = "DIR")]
        cases: Option<PathBuf>,
    },
    /// Run the reference server (WebSocket echo on any path, SSE on /events and /publish).
    Serve {
        #[arg(long, default_value = "127.0.0.1:9001", value_name = "ADDR")]
        listen: SocketAddr,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Glob patterns over case ids (`ws.control.*`); all cases when none.
    pub patterns: Vec<String>,
    /// WebSocket echo target, e.g. ws://127.0.0.1:9001/
    #[arg(long, value_name = "URL")]
    pub ws: Option<String>,
    /// SSE stream target, e.g. http://127.0.0.1:8080/events
    #[arg(long, value_name = "URL")]
    pub sse: Option<String>,
    /// SSE publish endpoint: a POST whose body becomes a new event.
    #[arg(long, value_name = "URL")]
    pub publish: Option<String>,
    /// Skip cases matching this pattern (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub skip: Vec<String>,
    /// Fail the run on `should` rules too (non-strict outcomes).
    #[arg(long)]
    pub strict: bool,
    /// How long any wait may go without the target sending a byte.
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Cases run at once (one connection each).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub jobs: usize,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Case ids or patterns expected to fail, one per line, `#` comments.
    #[arg(long, value_name = "FILE")]
    pub known_failing: Option<PathBuf>,
    /// Target profile (TOML): capabilities and limits.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Skip timing and keep-alive cases, which wait on purpose.
    #[arg(long)]
    pub skip_timing: bool,
    /// Load case files from this directory instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub cases: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    pub patterns: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_name = "DIR")]
    pub cases: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 500ms, 2s)"))?;
    // Case budgets are multiples of the timeout; keep them far from overflow.
    if d > Duration::from_secs(600) || d.is_zero() {
        return Err("the timeout must be between 1ms and 10min".to_string());
    }
    Ok(d)
}

/// A configuration problem: reported in one line, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Load(#[from] file::LoadError),
    #[error(transparent)]
    Pattern(#[from] select::PatternError),
    #[error(transparent)]
    Url(#[from] target::UrlError),
    #[error("--publish needs --sse")]
    PublishWithoutSse,
    #[error("--jobs must be at least 1")]
    Jobs,
    #[error("cannot start the embedded reference server: {0}")]
    Embedded(std::io::Error),
    #[error("{file}: cannot write report: {source}")]
    Report {
        file: String,
        source: std::io::Error,
    },
    #[error("no case with id {0:?} (try `pushspec list`)")]
    NoSuchCase(String),
}

/// Entry point of the binary.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pushspec: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(exit::USAGE as u8);
        }
    };
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let code = rt.block_on(execute(cli, &mut stdout, &mut stderr));
    std::process::ExitCode::from(code as u8)
}

/// Runs a parsed command line, writing to `out`/`err`; returns the exit code.
pub async fn execute(cli: Cli, out: &mut (dyn Write + Send), err: &mut (dyn Write + Send)) -> i32 {
    let result = match cli.command {
        Command::Run(args) => run(*args, out, err).await,
        Command::List(args) => list(args, out),
        Command::Show { id, cases } => show(&id, cases, out),
        Command::Serve { listen } => serve(listen, out).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "pushspec: {e}");
            exit::USAGE
        }
    }
}

fn load_cases(dir: &Option<PathBuf>) -> Result<Vec<Case>, ConfigError> {
    Ok(match dir {
        Some(d) => file::load_dir(d)?,
        None => file::load_embedded()?,
    })
}

fn list(args: ListArgs, out: &mut dyn Write) -> Result<i32, ConfigError> {
    let cases = load_cases(&args.cases)?;
    let sel = Selection::new(Patterns::new(&args.patterns)?, Patterns::new::<&str>(&[])?);
    let chosen: Vec<&Case> = cases.iter().filter(|c| sel.selects(&c.id)).collect();
    if args.json {
        let v: Vec<serde_json::Value> = chosen
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id, "family": c.family, "level": c.level, "spec": c.spec,
                    "title": c.title, "requires": c.requires,
                    "source": format!("{}:{}", c.source.file, c.source.line),
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).expect("serialises")
        );
    } else {
        let w = chosen.iter().map(|c| c.id.len()).max().unwrap_or(0);
        let ws = chosen.iter().map(|c| c.spec.len()).max().unwrap_or(0);
        for c in &chosen {
            let _ = writeln!(
                out,
                "{:<w$}  {:<6}  {:<ws$}  {}",
                c.id,
                c.level.to_string(),
                c.spec,
                c.title
            );
        }
    }
    Ok(if chosen.is_empty() {
        exit::NO_CASES
    } else {
        exit::OK
    })
}

fn show(id: &str, dir: Option<PathBuf>, out: &mut dyn Write) -> Result<i32, ConfigError> {
    let cases = load_cases(&dir)?;
    let c = cases
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(|| ConfigError::NoSuchCase(id.to_string()))?;
    let _ = writeln!(out, "id:       {}", c.id);
    let _ = writeln!(out, "title:    {}", c.title);
    let _ = writeln!(out, "level:    {}", c.level);
    let _ = writeln!(out, "spec:     {}", c.spec);
    if let Some(r) = &c.requirement {
        let _ = writeln!(out, "rule:     {r}");
    }
    if !c.requires.is_empty() {
        let _ = writeln!(out, "requires: {:?}", c.requires);
    }
    let _ = writeln!(out, "defined:  {}:{}", c.source.file, c.source.line);
    if let Script::Ws(s) = &c.script {
        let _ = writeln!(
            out,
            "wraps:    {}",
            match (s.handshake, s.closing) {
                (true, true) =>
                    "opening handshake before the steps; closing handshake after, if still open",
                (true, false) => "opening handshake before the steps",
                (false, true) => "closing handshake after the steps, if upgraded and still open",
                (false, false) => "nothing: the steps are the whole case",
            }
        );
    }
    // The case exactly as it runs: the file's entry with parameters filled in.
    let _ = writeln!(out);
    for (key, value) in &c.definition {
        match value {
            toml::Value::Array(items) if key == "steps" => {
                let _ = writeln!(out, "steps = [");
                for item in items {
                    let _ = writeln!(out, "  {item},");
                }
                let _ = writeln!(out, "]");
            }
            other => {
                let _ = writeln!(out, "{key} = {other}");
            }
        }
    }
    Ok(exit::OK)
}

async fn serve(listen: SocketAddr, out: &mut (dyn Write + Send)) -> Result<i32, ConfigError> {
    let server = pushspec_reference_server::Server::bind(listen, Default::default())
        .await
        .map_err(ConfigError::Embedded)?;
    let addr = server.local_addr();
    let _ = writeln!(
        out,
        "pushspec reference server: ws://{addr}/ (echo), http://{addr}/events (SSE), http://{addr}/publish (POST)"
    );
    let _ = out.flush();
    tokio::select! {
        _ = server.run() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(exit::OK)
}

async fn run(
    args: RunArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<i32, ConfigError> {
    if args.jobs == 0 {
        return Err(ConfigError::Jobs);
    }
    let cases = load_cases(&args.cases)?;
    let selection = Selection::new(Patterns::new(&args.patterns)?, Patterns::new(&args.skip)?);
    let known_failing = args
        .known_failing
        .as_deref()
        .map(select::load_known_failing)
        .transpose()?;
    let mut profile = args.profile.as_deref().map(Profile::load).transpose()?;
    let mut targets = Targets {
        ws: args.ws.as_deref().map(target::parse_ws).transpose()?,
        sse: None,
    };
    if let Some(sse) = &args.sse {
        targets.sse = Some(SseTarget {
            stream: target::parse_http(sse)?,
            publish: args
                .publish
                .as_deref()
                .map(target::parse_http)
                .transpose()?,
        });
    } else if args.publish.is_some() {
        return Err(ConfigError::PublishWithoutSse);
    }

    // With no target, test the embedded reference server.
    let _embedded = if targets.ws.is_none() && targets.sse.is_none() {
        let server = pushspec_reference_server::Server::bind(
            ([127, 0, 0, 1], 0).into(),
            pushspec_reference_server::Config::conformance(),
        )
        .await
        .map_err(ConfigError::Embedded)?;
        let addr = server.local_addr();
        targets = Targets::reference(addr);
        profile.get_or_insert_with(Profile::reference);
        let _ = writeln!(out, "testing the embedded reference server on {addr}");
        // Its own thread and runtime, like a separate process: the harness's
        // deadlines then measure the server, not contention with the harness.
        Some(server.spawn_isolated().map_err(ConfigError::Embedded)?)
    } else {
        None
    };

    let publish = targets.sse.as_ref().is_some_and(|s| s.publish.is_some());
    let chosen: Vec<Case> = cases
        .into_iter()
        .filter(|c| selection.selects(&c.id) && targets.serves(c.protocol()))
        .collect();
    if chosen.is_empty() {
        let _ = writeln!(
            err,
            "pushspec: no case selected (check the patterns and which targets are given)"
        );
        return Ok(exit::NO_CASES);
    }

    // One line and its own exit code when the target is not there at all.
    let mut handshake_down = None;
    if let Some(ws) = &targets.ws
        && chosen.iter().any(|c| c.protocol() == Protocol::Ws)
    {
        if let Err(e) = ws.connect(probe::CONNECT_WITHIN).await {
            let _ = writeln!(err, "pushspec: {e}");
            return Ok(exit::UNREACHABLE);
        }
        // A target that accepts TCP but cannot complete a handshake would
        // make every case wait out its timeout for the same reason: those
        // cases fail at once with that reason; the handshake cases still run.
        if let Err(why) = probe::ws_handshake(ws, args.timeout).await {
            let _ = writeln!(
                err,
                "pushspec: warning: the opening handshake with ws://{}{} failed ({why}); cases that need it fail without running",
                ws.authority(),
                ws.path
            );
            handshake_down = Some(why);
        }
    }
    if let Some(sse) = &targets.sse
        && chosen.iter().any(|c| c.protocol() == Protocol::Sse)
    {
        let t = &sse.stream;
        let probe = crate::ws::run::WsTarget {
            host: t.host.clone(),
            port: t.port,
            path: t.path.clone(),
        };
        if let Err(e) = probe.connect(Duration::from_secs(3)).await {
            let _ = writeln!(err, "pushspec: {e}");
            return Ok(exit::UNREACHABLE);
        }
    }

    let strict = args.strict;
    let ws_handshake_cases = chosen
        .iter()
        .filter(|c| matches!(&c.script, Script::Ws(s) if s.handshake))
        .map(|c| c.id.clone())
        .collect::<std::collections::HashSet<_>>();
    let ids: Vec<String> = chosen.iter().map(|c| c.id.clone()).collect();
    let total = chosen.len();
    let (chosen, prejudged): (Vec<Case>, Vec<Case>) = chosen
        .into_iter()
        .partition(|c| handshake_down.is_none() || !ws_handshake_cases.contains(&c.id));
    let mut prejudged: Vec<CaseResult> = prejudged
        .iter()
        .map(|c| {
            let why = handshake_down.as_deref().unwrap_or_default();
            outcome::judge(
                c,
                outcome::Run {
                    failure: Some(outcome::Finding::new(
                        format!("opening handshake failed: {why} (not run: the pre-run handshake probe failed)"),
                        "101 Switching Protocols with a valid Sec-WebSocket-Accept",
                        why,
                    )),
                    handshake_failed: true,
                    ..outcome::Run::default()
                },
                &crate::transcript::Transcript::new(),
                Duration::ZERO,
            )
        })
        .collect::<Vec<_>>();
    if let Some(kf) = &known_failing {
        for r in &mut prejudged {
            let listed = kf.matches(&r.id);
            outcome::apply_known_failing(r, listed, strict);
        }
    }
    let plan = Plan {
        cases: chosen,
        targets: targets.clone(),
        settings: Settings {
            timeout: args.timeout,
            max_message: 64 * 1024 * 1024,
        },
        capabilities: Capabilities {
            profile: profile.unwrap_or_default(),
            publish,
            skip_timing: args.skip_timing,
        },
        known_failing,
        strict,
        jobs: args.jobs,
    };

    let started = SystemTime::now();
    let t0 = Instant::now();
    let progress_out = Arc::new(Mutex::new(Vec::<u8>::new()));
    {
        let mut b = progress_out.lock().unwrap_or_else(|e| e.into_inner());
        for (i, r) in prejudged.iter().enumerate() {
            let _ = report::console::progress(&mut *b, i + 1, total, r);
        }
    }
    let done: Arc<Mutex<Vec<CaseResult>>> = Arc::new(Mutex::new(prejudged));
    let interrupted = {
        let done = done.clone();
        let buf = progress_out.clone();
        let engine = engine::run(plan, move |r| {
            let mut d = done.lock().unwrap_or_else(|e| e.into_inner());
            d.push(r.clone());
            let mut b = buf.lock().unwrap_or_else(|e| e.into_inner());
            let _ = report::console::progress(&mut *b, d.len(), total, r);
        });
        tokio::pin!(engine);
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = &mut engine => break false,
                _ = tokio::signal::ctrl_c() => break true,
                _ = ticker.tick() => {
                    let mut b = progress_out.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = out.write_all(&b);
                    let _ = out.flush();
                    b.clear();
                }
            }
        }
    };
    {
        let mut b = progress_out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(&b);
        b.clear();
    }
    let mut results = std::mem::take(&mut *done.lock().unwrap_or_else(|e| e.into_inner()));
    // Report in case order, whatever order they finished in.
    let order: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    results.sort_by_key(|r| order.get(r.id.as_str()).copied().unwrap_or(usize::MAX));
    let finished: std::collections::HashSet<&str> = results.iter().map(|r| r.id.as_str()).collect();
    let not_run: Vec<String> = ids
        .iter()
        .filter(|id| !finished.contains(id.as_str()))
        .cloned()
        .collect();

    let info = RunInfo {
        started,
        duration: t0.elapsed(),
        ws_target: targets
            .ws
            .as_ref()
            .map(|t| format!("ws://{}{}", t.authority(), t.path)),
        sse_target: targets.sse.as_ref().map(|t| t.stream.url()),
        publish: targets
            .sse
            .as_ref()
            .and_then(|t| t.publish.as_ref())
            .map(|p| p.url()),
        strict,
        interrupted,
        not_run,
    };
    let _ = report::console::details(out, &results);
    let _ = report::console::summary(out, &info, &results);
    if let Some(p) = &args.json {
        report::write_file(p, report::json::render(&info, &results).as_bytes()).map_err(
            |source| ConfigError::Report {
                file: p.display().to_string(),
                source,
            },
        )?;
    }
    if let Some(p) = &args.junit {
        report::write_file(p, report::junit::render(&info, &results).as_bytes()).map_err(
            |source| ConfigError::Report {
                file: p.display().to_string(),
                source,
            },
        )?;
    }
    if interrupted {
        return Ok(exit::INTERRUPTED);
    }
    let handshakes_tried = results
        .iter()
        .filter(|r| ws_handshake_cases.contains(&r.id) && r.outcome != Outcome::Unsupported)
        .count();
    let handshakes_failed = results.iter().filter(|r| r.handshake_failed).count();
    if handshakes_tried > 0 && handshakes_failed == handshakes_tried {
        let _ = writeln!(
            err,
            "pushspec: no WebSocket handshake succeeded ({handshakes_failed} of {handshakes_tried} cases): is {} a WebSocket endpoint?",
            info.ws_target.as_deref().unwrap_or("the target")
        );
        return Ok(exit::UNREACHABLE);
    }
    if !info.not_run.is_empty() {
        let _ = writeln!(
            err,
            "pushspec: internal error: {} cases produced no result",
            info.not_run.len()
        );
        return Ok(exit::FAILED);
    }
    Ok(if results.iter().any(|r| r.outcome.fails_run(strict)) {
        exit::FAILED
    } else {
        exit::OK
    })
}
