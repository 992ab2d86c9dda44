//! `pushspec run`: resolve, start the embedded server if no target is
//! given, probe the targets, run the engine, report, and compute the exit
//! status. Reports are written whatever ended the run.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

use super::resolve::{Dest, RunConfig, resolve};
use super::{ColorChoice, ConfigError, RunArgs, exit};
use crate::case::{Capability, Case, Protocol, Script};
use crate::engine::{self, Plan, Stop, Targets};
use crate::outcome::{CaseResult, Outcome};
use crate::probe;
use crate::profile::{Capabilities, Profile};
use crate::report::console::{self, Progress, Style, Verbosity};
use crate::report::{self, CapabilityInfo, CapabilitySource, RunInfo};
use crate::settings::Settings;

/// Whether the process's console is a terminal; set by the binary's
/// `main`, unset (no colour, no live status line) when the library is
/// driven with in-memory writers, as the tests do.
static CONSOLE_IS_TERMINAL: OnceLock<bool> = OnceLock::new();

/// Records whether standard output and standard error are terminals.
pub(crate) fn detect_terminal() {
    let _ = CONSOLE_IS_TERMINAL.set(std::io::stdout().is_terminal());
    let _ = STDERR_IS_TERMINAL.set(std::io::stderr().is_terminal());
}
static STDERR_IS_TERMINAL: OnceLock<bool> = OnceLock::new();

/// Resolves when the process is asked to stop: SIGINT (Ctrl-C) or SIGTERM
/// (CI cancellation, `timeout`).
pub(super) async fn signal() -> Stop {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => Stop::Terminated,
                _ = int.recv() => Stop::Interrupted,
            },
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        Stop::Interrupted
    }
}

fn style(choice: ColorChoice, to_stderr: bool) -> (Style, bool) {
    let tty = if to_stderr {
        STDERR_IS_TERMINAL.get()
    } else {
        CONSOLE_IS_TERMINAL.get()
    }
    .copied()
    .unwrap_or(false);
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let color = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => tty && !no_color,
    };
    (Style { color }, tty)
}

/// Where the console goes and where a report written to `-` goes: when a
/// report takes standard output, the console moves to standard error.
struct Io<'a> {
    console: &'a mut (dyn Write + Send),
    /// Warnings and one-line errors; `None`: the console is standard error.
    diag: Option<&'a mut (dyn Write + Send)>,
    stdout_report: Option<&'a mut (dyn Write + Send)>,
}

impl Io<'_> {
    fn diag(&mut self) -> &mut dyn Write {
        match &mut self.diag {
            Some(d) => *d,
            None => self.console,
        }
    }
}

/// What the pre-run probes found.
#[derive(Default)]
struct Probed {
    /// The opening handshake failed: why.
    handshake_down: Option<String>,
    deflate_detected: bool,
}

/// One line and its own exit code when a target is not there, or is not
/// what the flag says; `Ok` with what the probes learnt otherwise.
async fn probe_targets(
    cfg: &RunConfig,
    targets: &Targets,
    chosen: &[Case],
    diag: &mut dyn Write,
) -> Result<Probed, i32> {
    let mut found = Probed::default();
    if let Some(ws) = &targets.ws
        && chosen.iter().any(|c| c.protocol() == Protocol::Ws)
    {
        if let Err(e) = ws.connect(probe::CONNECT_WITHIN).await {
            let _ = writeln!(diag, "pushspec: {e}");
            return Err(exit::UNREACHABLE);
        }
        // A target that accepts TCP but cannot complete a handshake would
        // make every case wait out its timeout for the same reason: those
        // cases are not run; the handshake cases still run.
        match probe::ws_handshake(ws, cfg.timeout).await {
            Err(why) => found.handshake_down = Some(why),
            Ok(()) => {
                let declared = cfg.profile.as_ref().is_some_and(|p| p.ws.deflate_declared);
                if !declared && chosen.iter().any(|c| c.family == "ws.deflate") {
                    found.deflate_detected = probe::ws_deflate(ws, cfg.timeout).await;
                }
            }
        }
    }
    if let Some(sse) = &targets.sse
        && chosen.iter().any(|c| c.protocol() == Protocol::Sse)
    {
        if let Err(e) = crate::sse::http::connect(&sse.stream, probe::CONNECT_WITHIN).await {
            let _ = writeln!(diag, "pushspec: {e}");
            return Err(exit::UNREACHABLE);
        }
        if let Err(e) = probe::sse_stream(&sse.stream, cfg.timeout).await {
            let _ = writeln!(diag, "pushspec: {}; {}", e.why, e.hint);
            return Err(exit::UNREACHABLE);
        }
    }
    Ok(found)
}

/// What the run offers cases, derived from [`Capabilities::missing`] (so
/// the report never disagrees with what ran), and where each came from.
fn capability_list(caps: &Capabilities, detected_deflate: bool) -> Vec<CapabilityInfo> {
    Capability::OF_TARGETS
        .into_iter()
        .filter(|c| caps.missing(*c).is_none())
        .map(|c| CapabilityInfo {
            name: c.word(),
            source: match c {
                Capability::Deflate if detected_deflate => CapabilitySource::Detected,
                Capability::Publish => CapabilitySource::Flag,
                Capability::Replay if caps.profile.sse.replay.is_none() => CapabilitySource::Flag,
                _ => CapabilitySource::Profile,
            },
        })
        .collect()
}

fn write_report(
    dest: &Dest,
    contents: &str,
    stdout: &mut Option<&mut (dyn Write + Send)>,
) -> Result<(), ConfigError> {
    match dest {
        Dest::Stdout => {
            if let Some(o) = stdout {
                o.write_all(contents.as_bytes())
                    .and_then(|_| o.flush())
                    .map_err(|source| ConfigError::Report {
                        file: "-".into(),
                        source,
                    })?;
            }
            Ok(())
        }
        Dest::File(p) => {
            report::write_file(p, contents.as_bytes()).map_err(|source| ConfigError::Report {
                file: p.display().to_string(),
                source,
            })
        }
    }
}

pub(super) async fn run(
    args: RunArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<i32, ConfigError> {
    let cfg = resolve(&args)?;
    let report_to_stdout = [&cfg.json, &cfg.junit, &cfg.html]
        .iter()
        .any(|d| **d == Some(Dest::Stdout));
    let mut io = if report_to_stdout {
        Io {
            console: err,
            diag: None,
            stdout_report: Some(out),
        }
    } else {
        Io {
            console: out,
            diag: Some(err),
            stdout_report: None,
        }
    };
    let (style, tty) = style(cfg.color, report_to_stdout);
    let level = cfg.verbosity;

    // With no target, test the embedded reference server.
    let mut profile = cfg.profile.clone();
    let (targets, _embedded) = match &cfg.targets {
        Some(t) => (t.clone(), None),
        None => {
            let (server, targets) = super::tls::embedded(cfg.embedded_tls).await?;
            profile.get_or_insert_with(Profile::reference);
            if level != Verbosity::Quiet {
                let over = if cfg.embedded_tls { " over TLS" } else { "" };
                let _ = writeln!(
                    io.console,
                    "testing the embedded reference server on {}{over}",
                    server.local_addr()
                );
            }
            (targets, Some(server))
        }
    };
    let transport = super::tls::transport_info(&targets);
    if transport.insecure {
        let _ = writeln!(
            io.diag(),
            "pushspec: warning: --insecure: TLS certificates are not verified; nothing shows who answered"
        );
    }

    let chosen: Vec<Case> = cfg
        .selected
        .iter()
        .filter(|c| targets.serves(c.protocol()))
        .cloned()
        .collect();
    for p in &cfg.unmatched_patterns {
        let _ = writeln!(
            io.diag(),
            "pushspec: warning: no case matches {p:?} (patterns are globs over ids like ws.control.*, or family names like ws.control)"
        );
    }
    if chosen.is_empty() {
        let _ = writeln!(
            io.diag(),
            "pushspec: no case selected (check the patterns and which targets are given)"
        );
        return Ok(exit::NO_CASES);
    }

    // Known-failing entries that match nothing are reported before the run.
    let mut stale = Vec::new();
    if let Some(kf) = &cfg.known_failing {
        let all: Vec<&str> = cfg.all_ids.iter().map(String::as_str).collect();
        let sel: Vec<&str> = chosen.iter().map(|c| c.id.as_str()).collect();
        stale = kf.stale(&all, &sel);
        for s in &stale {
            if s.matches_unselected {
                if level == Verbosity::Verbose {
                    let _ = writeln!(
                        io.diag(),
                        "pushspec: note: known-failing entry {:?} ({}:{}) matches no case selected for this run",
                        s.pattern,
                        kf.file,
                        s.line
                    );
                }
            } else {
                let _ = writeln!(
                    io.diag(),
                    "pushspec: known-failing entry {:?} ({}:{}) matches no case: fix or remove it, or write ?{} if it is meant to match nothing here",
                    s.pattern,
                    kf.file,
                    s.line,
                    s.pattern
                );
            }
        }
    }
    let stale_entries = stale.iter().filter(|s| !s.matches_unselected).count();

    let probed = match probe_targets(&cfg, &targets, &chosen, io.diag()).await {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let mut profile = profile.unwrap_or_default();
    if probed.deflate_detected {
        profile.ws.deflate = true;
    }
    let capabilities = Capabilities {
        profile,
        publish: targets.sse.as_ref().is_some_and(|s| s.publish.is_some()),
        skip_timing: cfg.skip_timing,
    };
    let caps_info = capability_list(&capabilities, probed.deflate_detected);

    // Cases that need the opening handshake cannot run when the probe
    // could not complete one: they are `not-run`, unless the selection
    // already rules them out (unsupported, skipped timing).
    let (to_run, not_run): (Vec<Case>, Vec<Case>) = chosen.iter().cloned().partition(|c| {
        probed.handshake_down.is_none()
            || !matches!(&c.script, Script::Ws(s) if s.handshake)
            || c.requires
                .iter()
                .any(|r| capabilities.missing(*r).is_some())
    });
    let mut prejudged: Vec<CaseResult> = Vec::new();
    if let Some(why) = &probed.handshake_down {
        let ws = targets.ws.as_ref().expect("probed");
        let _ = writeln!(
            io.diag(),
            "pushspec: warning: the opening handshake with {} failed ({why}); {} that need it are not run",
            ws.url(),
            crate::text::count(not_run.len(), "case", "cases")
        );
        prejudged = not_run
            .iter()
            .map(|c| {
                CaseResult::not_run(
                    c,
                    format!("not run: the pre-run handshake probe failed: {why}"),
                )
            })
            .collect();
    }

    let run_budget = cfg.run_budget(to_run.len());
    if level != Verbosity::Quiet {
        let detected = if probed.deflate_detected {
            "; detected: permessage-deflate"
        } else {
            ""
        };
        let _ = writeln!(
            io.console,
            "running {} ({} at once, timeout {}, run budget {}{detected})",
            crate::text::count(to_run.len(), "case", "cases"),
            cfg.jobs,
            crate::text::duration(cfg.timeout),
            crate::text::duration(run_budget),
        );
    }
    let settings = Settings {
        timeout: cfg.timeout,
        // The message size the harness compares in memory. A declared limit
        // above it is still exercised by the cases that stream.
        max_message: crate::wire::MAX_MESSAGE,
    };
    let plan = Plan {
        cases: to_run,
        targets: targets.clone(),
        settings,
        capabilities,
        known_failing: cfg.known_failing.clone(),
        strict: cfg.strict,
        jobs: cfg.jobs,
        confirm: true,
        run_budget: Some(run_budget),
    };

    let started = SystemTime::now();
    let t0 = Instant::now();
    let mut progress = Progress::new(level, style, cfg.strict, tty);
    let finished = {
        let console = &mut *io.console;
        engine::run(
            plan,
            |ev| {
                let _ = progress.event(console, &ev);
            },
            signal(),
        )
        .await
    };
    let _ = progress.finish(io.console);

    // Report in case order, the not-run cases in their places.
    let order: HashMap<&str, usize> = chosen
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let mut results = finished.results;
    results.extend(prejudged);
    results.sort_by_key(|r| order.get(r.id.as_str()).copied().unwrap_or(usize::MAX));

    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    let handshake_cases: Vec<&CaseResult> = results
        .iter()
        .filter(|r| {
            order
                .get(r.id.as_str())
                .is_some_and(|&i| matches!(&chosen[i].script, Script::Ws(s) if s.handshake))
                && !matches!(r.outcome, Outcome::Unsupported | Outcome::NotRun)
        })
        .collect();
    let handshakes_failed = handshake_cases
        .iter()
        .filter(|r| r.handshake_failed)
        .count();
    let unreachable = if let Some(why) = &probed.handshake_down {
        Some(format!("no WebSocket handshake succeeded: {why}"))
    } else if !handshake_cases.is_empty() && handshakes_failed == handshake_cases.len() {
        Some(format!(
            "no WebSocket handshake succeeded in {}",
            crate::text::count(handshakes_failed, "case", "cases")
        ))
    } else {
        None
    };
    let stats = exit::Stats {
        stop: finished.stop,
        fail: count(Outcome::Fail),
        error: count(Outcome::Error),
        xpass: count(Outcome::Xpass),
        non_strict: count(Outcome::NonStrict),
        strict: cfg.strict,
        not_run: count(Outcome::NotRun),
        unreachable: unreachable.clone(),
        stale_entries,
    };
    let code = exit::status(&stats);
    let info = RunInfo {
        started,
        duration: t0.elapsed(),
        ws_target: targets.ws.as_ref().map(|t| t.url()),
        sse_target: targets.sse.as_ref().map(|t| t.stream.url()),
        publish: targets
            .sse
            .as_ref()
            .and_then(|t| t.publish.as_ref())
            .map(|p| p.url()),
        embedded: cfg.targets.is_none(),
        transport,
        strict: cfg.strict,
        stop: finished.stop,
        not_run: finished.not_run,
        config: report::Config {
            patterns: cfg.patterns.clone(),
            skip: cfg.skip.clone(),
            profile: cfg.profile_path.as_ref().map(|p| p.display().to_string()),
            known_failing: cfg
                .known_failing_path
                .as_ref()
                .map(|p| p.display().to_string()),
            cases_dir: cfg.cases_dir.as_ref().map(|p| p.display().to_string()),
            jobs: cfg.jobs,
            timeout_ms: cfg.timeout.as_millis() as u64,
            run_timeout_ms: run_budget.as_millis() as u64,
            strict: cfg.strict,
            skip_timing: cfg.skip_timing,
        },
        capabilities: caps_info,
        stale_known_failing: stale,
        verdict: exit::verdict(&stats),
        exit_code: code,
        agent: None,
    };

    let _ = console::details(io.console, &results, level, cfg.strict, style);
    let _ = console::grouped(io.console, &results, level, cfg.strict, style);
    if let Some(why) = &unreachable {
        let _ = writeln!(
            io.diag(),
            "pushspec: {why}: is {} a WebSocket endpoint?",
            info.ws_target.as_deref().unwrap_or("the target")
        );
    }
    let _ = console::summary(io.console, &info, &results, style);
    let _ = io.console.flush();
    let json = report::json::render(&info, &results);
    if let Some(d) = &cfg.json {
        write_report(d, &json, &mut io.stdout_report)?;
    }
    if let Some(d) = &cfg.junit {
        write_report(
            d,
            &report::junit::render(&info, &results),
            &mut io.stdout_report,
        )?;
    }
    if let Some(d) = &cfg.html {
        // Rendered from the JSON, so it is the page `pushspec report` makes.
        let requirement = |id: &str| {
            cfg.selected
                .iter()
                .find(|c| c.id == id)
                .and_then(|c| c.requirement.clone())
        };
        let page = report::html::render_run(&json, "this run", &requirement)?;
        write_report(d, &page, &mut io.stdout_report)?;
    }
    Ok(code)
}
