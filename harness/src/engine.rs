//! Runs selected cases against the targets, in parallel, one connection per
//! case; confirms failing verdicts that may rest on a deadline by running
//! them again alone; applies the known-failing list; and reports progress to
//! the caller as [`Event`]s. Returns the results in plan order.
//!
//! Policy lives here once: admission (`--jobs`), the case budget, the run
//! budget, panic capture, confirmation and known-failing. Drivers only
//! interpret steps.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::case::select::KnownFailing;
use crate::case::{Case, Protocol, Script};
use crate::outcome::{self, CaseResult, Outcome, Run};
use crate::profile::Capabilities;
use crate::settings::Settings;
use crate::sse::run::SseTarget;
use crate::target::WsTarget;
use crate::transcript::Transcript;

#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub ws: Option<WsTarget>,
    pub sse: Option<SseTarget>,
}

impl Targets {
    /// The endpoints the reference server serves at `addr`: WebSocket echo
    /// on `/`, SSE on `/events`, publishing on `/publish`.
    pub fn reference(addr: std::net::SocketAddr) -> Targets {
        Self::reference_over(addr, crate::wire::transport::Transport::Tcp)
    }

    /// [`Targets::reference`] over a transport (TLS when the embedded
    /// server serves it).
    pub fn reference_over(
        addr: std::net::SocketAddr,
        transport: crate::wire::transport::Transport,
    ) -> Targets {
        let http = |path: &str| crate::target::HttpTarget {
            host: addr.ip().to_string(),
            port: addr.port(),
            path: path.to_string(),
            transport: transport.clone(),
        };
        Targets {
            ws: Some(WsTarget {
                host: addr.ip().to_string(),
                port: addr.port(),
                path: "/".to_string(),
                transport: transport.clone(),
            }),
            sse: Some(SseTarget {
                stream: http("/events"),
                publish: Some(http("/publish")),
            }),
        }
    }

    pub fn serves(&self, p: Protocol) -> bool {
        match p {
            Protocol::Ws => self.ws.is_some(),
            Protocol::Sse => self.sse.is_some(),
            // Client cases are served by `pushspec clients`, never run here.
            Protocol::ClientWs => false,
        }
    }
}

pub struct Plan {
    pub cases: Vec<Case>,
    pub targets: Targets,
    pub settings: Settings,
    pub capabilities: Capabilities,
    pub known_failing: Option<KnownFailing>,
    pub strict: bool,
    pub jobs: usize,
    /// Run failing verdicts that may rest on a deadline again, alone, with
    /// a longer timeout, before reporting them (see [`CONFIRM_FACTOR`]).
    pub confirm: bool,
    /// The whole run, confirmations included, ends after this long.
    pub run_budget: Option<Duration>,
}

/// What stopped a run before every case finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C).
    Interrupted,
    /// SIGTERM (CI cancellation, `timeout`).
    Terminated,
    /// The run budget ran out.
    RunBudget(Duration),
}

/// What the engine tells reporters while it runs.
#[derive(Debug)]
pub enum Event<'a> {
    /// A case has its final result (after confirmation and known-failing).
    CaseFinished {
        result: &'a CaseResult,
        done: usize,
        total: usize,
    },
    /// A case has been running for `elapsed` (said at growing intervals).
    Slow { id: &'a str, elapsed: Duration },
    /// `count` failing verdicts are being run again alone.
    Confirming { count: usize, timeout: Duration },
}

/// The results of a run, in plan order.
#[derive(Debug)]
pub struct Finished {
    pub results: Vec<CaseResult>,
    /// Cases that never got a result because the run was interrupted.
    pub not_run: Vec<String>,
    pub stop: Option<Stop>,
}

/// Slack on top of a driver's own deadlines before the engine cuts a case off.
const GRACE: Duration = Duration::from_secs(5);

/// A confirmation run waits this many times longer for the target than
/// the first attempt did.
pub const CONFIRM_FACTOR: u32 = 4;

/// After this many confirmations in a row that reproduce their first
/// attempt, the remaining first attempts are reported unconfirmed.
const CONFIRM_STREAK: usize = 5;

/// When a running case is named as slow: after 5 s, then 15 s, 45 s, ...
const FIRST_SLOW_NOTICE: Duration = Duration::from_secs(5);

/// Runs one case and judges it.
pub async fn run_case(
    case: &Case,
    targets: &Targets,
    settings: Settings,
    caps: &Capabilities,
) -> CaseResult {
    let t = Transcript::new();
    let start = Instant::now();
    let missing = case.requires.iter().find_map(|c| caps.missing(*c));
    let run = if let Some(why) = missing {
        Run {
            unsupported: Some(why.to_string()),
            ..Run::default()
        }
    } else {
        match (&case.script, &targets.ws, &targets.sse) {
            (Script::Ws(s), Some(target), _) => {
                let budget = crate::ws::run::budget(settings.timeout, caps) + GRACE;
                outcome::within(budget, crate::ws::run::run(s, target, settings, caps, &t)).await
            }
            // Bounds itself, from when it holds the target (SSE cases that
            // publish take turns), so queueing cannot eat into its budget.
            (Script::Sse(s), _, Some(target)) => {
                crate::sse::run::run(s, target, settings, caps, &t).await
            }
            _ => Run {
                unsupported: Some("no target given for this protocol".into()),
                ..Run::default()
            },
        }
    };
    outcome::judge(case, run, &t, start.elapsed())
}

/// [`run_case`], with a panic in the harness turned into an `error` for
/// that case instead of a silent gap in the report.
async fn run_guarded(
    case: &Case,
    targets: &Targets,
    settings: Settings,
    caps: &Capabilities,
) -> CaseResult {
    match AssertUnwindSafe(run_case(case, targets, settings, caps))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(p) => {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            outcome::judge(
                case,
                Run {
                    error: Some(format!("harness error: {why}")),
                    ..Run::default()
                },
                &Transcript::new(),
                Duration::ZERO,
            )
        }
    }
}

/// Whether a first attempt's verdict is run again alone before it is
/// reported. A verdict that fails the run and took at least the idle
/// timeout may have been decided by a deadline (no reply, no close, no
/// progress) rather than by what the target sent, and so by machine load:
/// those are confirmed. Quick failures were decided by the target's bytes.
fn needs_confirmation(r: &CaseResult, settings: Settings) -> bool {
    matches!(
        r.outcome,
        Outcome::Fail | Outcome::Error | Outcome::NonStrict
    ) && r.duration >= settings.timeout.mul_f64(0.9)
}

/// Counts a final result and tells the reporters.
fn finished(on_event: &mut impl FnMut(Event<'_>), done: &mut usize, total: usize, r: &CaseResult) {
    *done += 1;
    on_event(Event::CaseFinished {
        result: r,
        done: *done,
        total,
    });
}

enum Msg {
    Started(usize),
    Done(usize, Box<CaseResult>),
}

/// Runs every case of the plan, reporting [`Event`]s as they happen, until
/// all are done, `stop` resolves (an interrupt: the results so far are
/// returned) or the run budget runs out.
pub async fn run(
    plan: Plan,
    mut on_event: impl FnMut(Event<'_>),
    stop: impl Future<Output = Stop>,
) -> Finished {
    let Plan {
        cases,
        targets,
        settings,
        capabilities,
        known_failing,
        strict,
        jobs,
        confirm,
        run_budget,
    } = plan;
    let n = cases.len();
    let deadline = run_budget.map(|b| tokio::time::Instant::now() + b);
    let sem = Arc::new(Semaphore::new(jobs.max(1)));
    let shared = Arc::new((cases, targets, capabilities));
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Dropping the set aborts whatever still runs (interrupt, run budget).
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let sem = sem.clone();
        let shared = shared.clone();
        let tx = tx.clone();
        tasks.spawn(async move {
            let Ok(_permit) = sem.acquire_owned().await else {
                return;
            };
            let _ = tx.send(Msg::Started(i));
            let (cases, targets, caps) = &*shared;
            let r = run_guarded(&cases[i], targets, settings, caps).await;
            let _ = tx.send(Msg::Done(i, Box::new(r)));
        });
    }
    drop(tx);

    let finalize = |mut r: CaseResult| {
        if let Some(kf) = &known_failing {
            let listed = kf.matches(&r.id);
            outcome::apply_known_failing(&mut r, listed, strict);
        }
        r
    };
    let mut results: Vec<Option<CaseResult>> = vec![None; n];
    let mut done = 0usize;
    let mut running: HashMap<usize, (Instant, Duration)> = HashMap::new();
    let mut to_confirm: Vec<usize> = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    let budget_over = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop, budget_over);
    let mut stopped = None;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                None => break,
                Some(Msg::Started(i)) => {
                    running.insert(i, (Instant::now(), FIRST_SLOW_NOTICE));
                }
                Some(Msg::Done(i, r)) => {
                    let r = *r;
                    running.remove(&i);
                    if confirm && needs_confirmation(&r, settings) {
                        to_confirm.push(i);
                        results[i] = Some(r);
                    } else {
                        let r = finalize(r);
                        finished(&mut on_event, &mut done, n, &r);
                        results[i] = Some(r);
                    }
                }
            },
            _ = ticker.tick() => {
                for (i, (since, next)) in running.iter_mut() {
                    let elapsed = since.elapsed();
                    if elapsed >= *next {
                        on_event(Event::Slow { id: &shared.0[*i].id, elapsed });
                        *next *= 3;
                    }
                }
            }
            s = &mut stop => { stopped = Some(s); break; }
            _ = &mut budget_over => {
                stopped = Some(Stop::RunBudget(run_budget.unwrap_or_default()));
                break;
            }
        }
    }
    drop(tasks);

    // Confirmation: one case at a time, nothing else in flight, a longer
    // deadline. The second run decides; a pass there marks the case flaky.
    if stopped.is_none() && !to_confirm.is_empty() {
        let longer = Settings {
            timeout: settings.timeout * CONFIRM_FACTOR,
            ..settings
        };
        on_event(Event::Confirming {
            count: to_confirm.len(),
            timeout: longer.timeout,
        });
        let mut reproduced_in_a_row = 0usize;
        for &i in &to_confirm {
            // A target that keeps failing the same way is failing for real:
            // past a few confirmations in a row, the rest stand as they are
            // (a mute target would otherwise cost four timeouts per case).
            if reproduced_in_a_row >= CONFIRM_STREAK {
                break;
            }
            let (cases, targets, caps) = &*shared;
            let second = tokio::select! {
                r = run_guarded(&cases[i], targets, longer, caps) => r,
                s = &mut stop => { stopped = Some(s); break; }
                _ = &mut budget_over => {
                    stopped = Some(Stop::RunBudget(run_budget.unwrap_or_default()));
                    break;
                }
            };
            let first = results[i].take().expect("first attempt kept");
            if second.outcome == first.outcome {
                reproduced_in_a_row += 1;
            } else {
                reproduced_in_a_row = 0;
            }
            let r = finalize(first.confirmed_by(second));
            finished(&mut on_event, &mut done, n, &r);
            results[i] = Some(r);
        }
    }
    // First attempts whose confirmation never ran stand as they are.
    for &i in &to_confirm {
        if let Some(r) = results[i].take() {
            let r = if r.first_attempt.is_some() {
                r
            } else {
                let r = finalize(r);
                finished(&mut on_event, &mut done, n, &r);
                r
            };
            results[i] = Some(r);
        }
    }

    let mut not_run = Vec::new();
    let mut out = Vec::with_capacity(n);
    for (i, r) in results.into_iter().enumerate() {
        let case = &shared.0[i];
        match (r, stopped) {
            (Some(r), _) => out.push(r),
            // Out of run budget: the case is reported (it is part of the
            // verdict: the target did not let the run finish in time).
            (None, Some(Stop::RunBudget(b))) => {
                let r = if running.contains_key(&i) {
                    let mut r = CaseResult::not_run(case, "");
                    r.outcome = Outcome::Error;
                    r.reason = format!(
                        "the run budget ran out while this case was running ({} for the whole run; --run-timeout)",
                        crate::text::duration(b)
                    );
                    r
                } else {
                    CaseResult::not_run(
                        case,
                        format!(
                            "not run: the run budget ran out before its turn ({} for the whole run; --run-timeout)",
                            crate::text::duration(b)
                        ),
                    )
                };
                finished(&mut on_event, &mut done, n, &r);
                out.push(r);
            }
            (None, _) => not_run.push(case.id.clone()),
        }
    }
    Finished {
        results: out,
        not_run,
        stop: stopped,
    }
}
