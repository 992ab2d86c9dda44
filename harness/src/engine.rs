//! Runs selected cases against the targets, in parallel, one connection per
//! case, and streams results back as they finish.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use crate::case::select::Patterns;
use crate::case::{Case, Protocol, Script};
use crate::outcome::{self, CaseResult, Finding, Run};
use crate::profile::Capabilities;
use crate::sse::run::SseTarget;
use crate::transcript::Transcript;
use crate::ws::run::{Settings, WsTarget};

#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub ws: Option<WsTarget>,
    pub sse: Option<SseTarget>,
}

impl Targets {
    /// The endpoints the reference server serves at `addr`: WebSocket echo
    /// on `/`, SSE on `/events`, publishing on `/publish`.
    pub fn reference(addr: std::net::SocketAddr) -> Targets {
        let http = |path: &str| crate::target::HttpTarget {
            host: addr.ip().to_string(),
            port: addr.port(),
            path: path.to_string(),
        };
        Targets {
            ws: Some(WsTarget {
                host: addr.ip().to_string(),
                port: addr.port(),
                path: "/".to_string(),
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
        }
    }
}

pub struct Plan {
    pub cases: Vec<Case>,
    pub targets: Targets,
    pub settings: Settings,
    pub capabilities: Capabilities,
    pub known_failing: Option<Patterns>,
    pub strict: bool,
    pub jobs: usize,
}

/// Slack on top of a driver's own deadlines before the engine cuts a case off.
const GRACE: Duration = Duration::from_secs(5);

/// Runs a driver with a hard bound: past `budget` the case fails (the
/// target never let it finish) instead of hanging the run.
pub async fn within(budget: Duration, driver: impl Future<Output = Run>) -> Run {
    match tokio::time::timeout(budget, driver).await {
        Ok(run) => run,
        Err(_) => Run {
            failure: Some(Finding::new(
                format!("the case did not finish within {budget:?}"),
                "the target answers within the case budget",
                "still waiting",
            )),
            ..Run::default()
        },
    }
}

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
                within(budget, crate::ws::run::run(s, target, settings, caps, &t)).await
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

/// Runs every case of the plan; `on_result` sees each result as it finishes
/// (for progress and incremental reports). Returns results in plan order.
pub async fn run(plan: Plan, mut on_result: impl FnMut(&CaseResult)) -> Vec<CaseResult> {
    let Plan {
        cases,
        targets,
        settings,
        capabilities,
        known_failing,
        strict,
        jobs,
    } = plan;
    let n = cases.len();
    let sem = Arc::new(Semaphore::new(jobs.max(1)));
    let shared = Arc::new((cases, targets, capabilities));
    let (tx, mut rx) = mpsc::unbounded_channel();
    for i in 0..n {
        let sem = sem.clone();
        let shared = shared.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let Ok(_permit) = sem.acquire_owned().await else {
                return;
            };
            // The case runs in its own task so that a bug in the harness
            // (a panic) costs that case an `error`, not a silent gap in the
            // report of an otherwise green run.
            let inner = shared.clone();
            let r = match tokio::spawn(async move {
                let (cases, targets, caps) = &*inner;
                run_case(&cases[i], targets, settings, caps).await
            })
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    let why = match e.try_into_panic() {
                        Ok(p) => p
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".to_string()),
                        Err(e) => e.to_string(),
                    };
                    outcome::judge(
                        &shared.0[i],
                        Run {
                            error: Some(format!("harness error: {why}")),
                            ..Run::default()
                        },
                        &Transcript::new(),
                        Duration::ZERO,
                    )
                }
            };
            let _ = tx.send((i, r));
        });
    }
    drop(tx);
    let mut results: Vec<Option<CaseResult>> = vec![None; n];
    while let Some((i, mut r)) = rx.recv().await {
        if let Some(kf) = &known_failing {
            let listed = kf.matches(&r.id);
            outcome::apply_known_failing(&mut r, listed, strict);
        }
        on_result(&r);
        results[i] = Some(r);
    }
    results.into_iter().flatten().collect()
}
