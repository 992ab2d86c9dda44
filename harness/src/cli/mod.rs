//! The `pushspec` command line. Names, flags and exit codes here are a
//! public contract: CI scripts depend on them.
//!
//! Arguments are parsed by clap, resolved into a [`resolve::RunConfig`]
//! (every file read and every check that can fail before a case runs),
//! then run; the exit code is a pure function of the run's statistics
//! ([`exit::status`]).

mod bench;
mod clients;
pub mod exit;
mod list;
mod report;
mod resolve;
mod run;
mod tls;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::case::select;
use crate::case::{Case, file};
use crate::report::console::Verbosity;
pub use bench::{BenchArgs, BenchTool};

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
    /// Measure a target's throughput and latency (the embedded reference
    /// server if none is given).
    Bench(Box<BenchArgs>),
    /// Render JSON reports as an HTML page and/or a Markdown summary:
    /// several targets side by side, several runs of one target compared.
    Report(report::ReportArgs),
    /// Test a WebSocket client: serve Autobahn's client URL protocol
    /// (/getCaseCount, /runCase, /updateReports) with the client.ws.* cases.
    Clients(Box<clients::ClientsArgs>),
    /// Run the reference server (WebSocket echo on any path, SSE on /events and /publish).
    Serve {
        /// Address to listen on: IP:PORT or HOST:PORT (e.g. localhost:9001).
        #[arg(long, default_value = "127.0.0.1:9001", value_name = "ADDR")]
        listen: String,
        #[command(flatten)]
        tls: tls::ServeTls,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorChoice {
    /// Colour when standard output is a terminal and NO_COLOR is not set.
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Glob patterns over case ids (`ws.control.*`), or family names
    /// (`ws.control`); all cases when none.
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
    /// Bound on the whole run (default: 60s plus each selected case's share
    /// of ten timeouts over the jobs; see the README).
    #[arg(long, value_name = "DURATION", value_parser = parse_run_timeout)]
    pub run_timeout: Option<Duration>,
    /// Cases run at once (one connection each).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub jobs: usize,
    /// Write the JSON report here (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a JUnit XML report here (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report here (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Case ids or patterns expected to fail, one per line, `#` comments,
    /// `?PATTERN` for an entry that may match nothing.
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
    /// Say less: only the grouped findings and the verdict.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more: a line for every case, details of every case that did not pass.
    #[arg(short, long)]
    pub verbose: bool,
    /// Colour the console output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    #[command(flatten)]
    pub tls: tls::TlsArgs,
}

impl RunArgs {
    fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (_, true) => Verbosity::Verbose,
            _ => Verbosity::Normal,
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Glob patterns over case ids, or family names; all cases when none.
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

fn parse_run_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 90s, 10m)"))?;
    if d > crate::case::MAX_DURATION || d.is_zero() {
        return Err("the run timeout must be between 1ms and 24h".to_string());
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
    Url(#[from] crate::target::UrlError),
    #[error("--publish needs --sse")]
    PublishWithoutSse,
    #[error("--jobs, --connections and --pipeline must be at least 1")]
    Jobs,
    #[error("--rate must be a positive number of messages per second")]
    Rate,
    #[error("{} needs its target: --ws for the ws-* scenarios, --sse and --publish for sse-fanout, --sse for sse-connect (or none: the embedded server)", .0.name())]
    BenchTarget(crate::bench::Scenario),
    #[error(transparent)]
    Bench(#[from] crate::bench::BenchError),
    #[error("cannot start the embedded reference server: {0}")]
    Embedded(std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{file}: cannot write report: {source}")]
    Report {
        file: String,
        source: std::io::Error,
    },
    #[error("--json and --junit both name {0}: give each report its own file")]
    SameReportFile(String),
    #[error("--json and --junit cannot both write to standard output (-)")]
    BothReportsToStdout,
    #[error("{0} and {1} both name {2}: give each report its own file")]
    ReportsShareFile(&'static str, &'static str, String),
    #[error("{0} and {1} cannot both write to standard output (-)")]
    ReportsShareStdout(&'static str, &'static str),
    #[error(transparent)]
    Input(#[from] crate::report::load::LoadError),
    #[error("no case with id {0:?} (try `pushspec list`)")]
    NoSuchCase(String),
    #[error(transparent)]
    Tls(Box<tls::TlsFlagError>),
}

/// Entry point of the binary.
pub fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    run::detect_terminal();
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

/// clap's message, without its hint to put an unknown flag after `--`:
/// here that would make it a case pattern, which is never what was meant.
fn usage_error(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return std::process::ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !(l.contains("tip:") && l.contains("'--")))
        .collect();
    eprintln!("{}", kept.join("\n"));
    std::process::ExitCode::from(exit::USAGE as u8)
}

/// Runs a parsed command line, writing to `out`/`err`; returns the exit code.
pub async fn execute(cli: Cli, out: &mut (dyn Write + Send), err: &mut (dyn Write + Send)) -> i32 {
    let result = match cli.command {
        Command::Run(args) => run::run(*args, out, err).await,
        Command::Bench(args) => bench::bench(*args, out, err).await,
        Command::List(args) => list::list(args, out, err),
        Command::Show { id, cases } => list::show(&id, cases, out),
        Command::Report(args) => report::report(args, out),
        Command::Serve { listen, tls } => serve(&listen, &tls, out).await,
        Command::Clients(args) => clients::clients(*args, out, err).await,
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

/// Resolves `HOST:PORT` (a name or an address) to the first address it
/// names.
async fn listen_addr(listen: &str) -> Result<std::net::SocketAddr, ConfigError> {
    let err = |source| ConfigError::Listen {
        addr: listen.to_string(),
        source,
    };
    let mut addrs = tokio::net::lookup_host(listen).await.map_err(err)?;
    addrs.next().ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the name resolves to no address",
        ))
    })
}

async fn serve(
    listen: &str,
    tls: &tls::ServeTls,
    out: &mut (dyn Write + Send),
) -> Result<i32, ConfigError> {
    let addr = listen_addr(listen).await?;
    let host = listen
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']));
    let tls = tls.load(host)?;
    let server = pushspec_reference_server::Server::bind(addr, Default::default())
        .await
        .map_err(|source| ConfigError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let addr = server.local_addr();
    // Signal handlers are installed (by a first poll) before the URLs are
    // printed: a supervisor that stops the server as soon as it reads them
    // must get a clean exit, not death by SIGTERM.
    let stop = run::signal();
    tokio::pin!(stop);
    tokio::select! {
        biased;
        _ = &mut stop => return Ok(exit::OK),
        _ = std::future::ready(()) => {}
    }
    let (server, ws, http) = match tls {
        Some(t) => (server.with_tls(t), "wss", "https"),
        None => (server, "ws", "http"),
    };
    let _ = writeln!(
        out,
        "pushspec reference server: {ws}://{addr}/ (echo), {http}://{addr}/events (SSE), {http}://{addr}/publish (POST)"
    );
    let _ = out.flush();
    tokio::select! {
        _ = server.run() => {}
        _ = stop => {}
    }
    Ok(exit::OK)
}
