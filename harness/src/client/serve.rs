//! Autobahn|Testsuite's client URL protocol, served so that the client
//! scripts WebSocket libraries already ship work unchanged:
//!
//! | path | answer |
//! |---|---|
//! | `/getCaseCount` | a text message: the number of selected cases |
//! | `/runCase?case=N&agent=A` | runs case N (1-based, list order) on this connection |
//! | `/runCase?id=ID&agent=A` | the same, by pushspec case id |
//! | `/getCaseInfo?case=N` | `{"id": ..., "description": ...}` |
//! | `/getCaseStatus?case=N&agent=A` | `{"behavior": "OK"}` (Autobahn's words) |
//! | `/updateReports?agent=A` | nothing; tells the caller the agent is done |
//!
//! Every connection is handled in its own task, bounded in time. Results
//! and milestones go to the caller as [`Notice`]s; the caller decides when
//! the run ends and writes the reports.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedSender;

use super::conn::{Conn, Event};
use super::request::{Request, error_response};
use super::run::{self, Ctx};
use crate::case::client_step::ResponseSpec;
use crate::case::select::KnownFailing;
use crate::case::{Case, Script};
use crate::outcome::{self, CaseResult, Outcome, Run};
use crate::transcript::Transcript;
use crate::wire::frame::Frame;

/// The agent name used when a `runCase` request names none.
pub const DEFAULT_AGENT: &str = "client";

/// What the server tells its caller.
#[derive(Debug)]
pub enum Notice {
    /// A case ran for an agent (the result is final: known-failing applied).
    Finished {
        agent: String,
        index: usize,
        result: Box<CaseResult>,
    },
    /// The agent asked for its reports.
    Reported { agent: String },
    /// A request the server could not serve (unknown path or case).
    Refused(String),
    /// Some connection arrived (resets an idle deadline).
    Activity,
}

/// The cases and policy of one `pushspec clients` run.
pub struct Suite {
    /// The selected `client.ws.*` cases, in list order (case N is `cases[N-1]`).
    pub cases: Vec<Case>,
    pub ctx: Ctx,
    pub known_failing: Option<KnownFailing>,
    pub strict: bool,
    /// Outcomes so far, for `/getCaseStatus`.
    status: Mutex<HashMap<(String, usize), Outcome>>,
}

impl Suite {
    pub fn new(
        cases: Vec<Case>,
        ctx: Ctx,
        known_failing: Option<KnownFailing>,
        strict: bool,
    ) -> Suite {
        Suite {
            cases,
            ctx,
            known_failing,
            strict,
            status: Mutex::default(),
        }
    }

    fn index(&self, req: &Request) -> Option<usize> {
        if let Some(id) = req.query("id") {
            return self.cases.iter().position(|c| c.id == id);
        }
        let n: usize = req.query("case")?.trim().parse().ok()?;
        (1..=self.cases.len()).contains(&n).then_some(n - 1)
    }
}

/// Autobahn's word for an outcome, as `/getCaseStatus` answers.
pub fn behavior(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass | Outcome::Xpass => "OK",
        Outcome::Fail | Outcome::Error | Outcome::Xfail => "FAILED",
        Outcome::NonStrict => "NON-STRICT",
        Outcome::Info => "INFORMATIONAL",
        Outcome::Unsupported => "UNIMPLEMENTED",
        Outcome::NotRun => "NOT-RUN",
    }
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, suite: Arc<Suite>, tx: UnboundedSender<Notice>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors and the like: let the peer retry.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let _ = tx.send(Notice::Activity);
        tokio::spawn(handle(stream, suite.clone(), tx.clone()));
    }
}

async fn handle(mut stream: TcpStream, suite: Arc<Suite>, tx: UnboundedSender<Notice>) {
    let Ok((req, leftover)) = Request::read(&mut stream, suite.ctx.timeout).await else {
        return;
    };
    let agent = req
        .query("agent")
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_AGENT.to_string());
    match req.path() {
        "/runCase" => match suite.index(&req) {
            Some(i) => {
                let result = run_one(&suite, i, stream, &req, leftover).await;
                suite
                    .status
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((agent.clone(), i), result.outcome);
                let _ = tx.send(Notice::Finished {
                    agent,
                    index: i,
                    result: Box::new(result),
                });
            }
            None => refuse(stream, &req, &suite, &tx).await,
        },
        "/getCaseCount" => {
            let n = suite.cases.len().to_string();
            meta(stream, &req, leftover, &suite, Some(n)).await;
        }
        "/getCaseInfo" => match suite.index(&req) {
            Some(i) => {
                let c = &suite.cases[i];
                let info = serde_json::json!({ "id": c.id, "description": c.title });
                meta(stream, &req, leftover, &suite, Some(info.to_string())).await;
            }
            None => refuse(stream, &req, &suite, &tx).await,
        },
        "/getCaseStatus" => match suite.index(&req) {
            Some(i) => {
                let o = suite
                    .status
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&(agent, i))
                    .copied()
                    .unwrap_or(Outcome::NotRun);
                let body = serde_json::json!({ "behavior": behavior(o) });
                meta(stream, &req, leftover, &suite, Some(body.to_string())).await;
            }
            None => refuse(stream, &req, &suite, &tx).await,
        },
        "/updateReports" => {
            meta(stream, &req, leftover, &suite, None).await;
            let _ = tx.send(Notice::Reported { agent });
        }
        _ => refuse(stream, &req, &suite, &tx).await,
    }
}

async fn refuse(mut stream: TcpStream, req: &Request, suite: &Suite, tx: &UnboundedSender<Notice>) {
    use tokio::io::AsyncWriteExt;
    let why = format!(
        "no such case or path: {} (cases 1-{}, or id=client.ws...)",
        req.target,
        suite.cases.len()
    );
    let _ = tx.send(Notice::Refused(why.clone()));
    let _ = tokio::time::timeout(
        suite.ctx.timeout,
        stream.write_all(&error_response(404, "Not Found", &why)),
    )
    .await;
}

/// A protocol connection: a valid handshake, an optional text message,
/// then a clean close (bounded: a client that never answers the close is
/// simply dropped after the timeout).
async fn meta(
    stream: TcpStream,
    req: &Request,
    leftover: Vec<u8>,
    suite: &Suite,
    text: Option<String>,
) {
    // The key still counts as used, so a later case sees a reuse.
    let _ = req.problems(&suite.ctx.seen_keys);
    let t = Transcript::new();
    let mut conn = Conn::new(stream, leftover, t, suite.ctx.timeout);
    conn.write(&req.response(&ResponseSpec::default()), None)
        .await;
    if let Some(text) = text {
        conn.send(&Frame::text(text.into_bytes()), None).await;
    }
    conn.send(&Frame::close(Some(1000), b""), None).await;
    let deadline = tokio::time::Instant::now() + suite.ctx.timeout;
    while let Some(ev) = conn.next(deadline).await {
        if matches!(
            ev,
            Event::Close { .. } | Event::TcpClosed | Event::Violation(_)
        ) {
            break;
        }
    }
    conn.close_tcp().await;
}

async fn run_one(
    suite: &Suite,
    i: usize,
    stream: TcpStream,
    req: &Request,
    leftover: Vec<u8>,
) -> CaseResult {
    let case = &suite.cases[i];
    let t = Transcript::new();
    let start = Instant::now();
    let run = match &case.script {
        Script::ClientWs(s) => {
            let budget = run::budget(s, suite.ctx.timeout);
            outcome::within(budget, run::run(s, stream, req, leftover, &suite.ctx, &t)).await
        }
        _ => Run {
            error: Some("not a client case".into()),
            ..Run::default()
        },
    };
    let mut r = outcome::judge(case, run, &t, start.elapsed());
    if let Some(kf) = &suite.known_failing {
        let listed = kf.matches(&r.id);
        outcome::apply_known_failing(&mut r, listed, suite.strict);
    }
    r
}
