//! SSE cases that the embedded reference run (`tests/reference.rs`) cannot
//! cover, each against its own reference server:
//!
//! - the keep-alive family without the 15 s wait: the server sends a
//!   keep-alive comment after 200 ms of silence and the profile asks for
//!   bytes at least every second; with keep-alives turned off the same case
//!   must report the silence;
//! - the `finish` case, which ends the server's streams for good (so it
//!   cannot share a server with other cases).

use std::time::{Duration, Instant};

use pushspec::case::file::load_embedded;
use pushspec::case::{Case, Dur, Level};
use pushspec::engine::{Targets, run_case};
use pushspec::outcome::{CaseResult, Outcome};
use pushspec::profile::{Capabilities, Profile};
use pushspec::settings::Settings;
use pushspec::sse::run::SseTarget;
use pushspec::target::parse_http;
use pushspec_reference_server::{Config, Server, ServerHandle, SseConfig};

async fn server(keepalive: Duration) -> (ServerHandle, Targets) {
    let server = Server::bind(
        ([127, 0, 0, 1], 0).into(),
        Config {
            sse: SseConfig {
                keepalive,
                ..SseConfig::default()
            },
            ..Config::default()
        },
    )
    .await
    .expect("bind")
    .spawn_isolated()
    .expect("server thread");
    let addr = server.local_addr();
    let targets = Targets {
        ws: None,
        sse: Some(SseTarget {
            stream: parse_http(&format!("http://{addr}/events")).unwrap(),
            publish: Some(parse_http(&format!("http://{addr}/publish")).unwrap()),
        }),
    };
    (server, targets)
}

fn caps() -> Capabilities {
    let mut profile = Profile::reference();
    profile.sse.keepalive = Some(Dur(Duration::from_secs(1)));
    profile.sse.finish = Some("/finish".into());
    Capabilities {
        profile,
        publish: true,
        skip_timing: false,
    }
}

fn settings() -> Settings {
    Settings {
        timeout: Duration::from_secs(2),
        max_message: 64 << 20,
    }
}

fn cases(pred: impl Fn(&Case) -> bool) -> Vec<Case> {
    let cases: Vec<Case> = load_embedded()
        .expect("cases load")
        .into_iter()
        .filter(pred)
        .collect();
    assert!(!cases.is_empty());
    cases
}

async fn run(keepalive: Duration, pred: impl Fn(&Case) -> bool) -> Vec<CaseResult> {
    let (_server, targets) = server(keepalive).await;
    let caps = caps();
    let mut out = Vec::new();
    for case in cases(pred) {
        out.push(run_case(&case, &targets, settings(), &caps).await);
    }
    out
}

fn show(r: &CaseResult) -> String {
    format!(
        "{}: {} {} (expected {:?}, actual {:?})",
        r.id, r.outcome, r.reason, r.expected, r.actual
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_family_passes_with_short_server_keepalive() {
    let start = Instant::now();
    for r in run(Duration::from_millis(200), |c| c.family == "sse.keepalive").await {
        assert_eq!(r.outcome, Outcome::Pass, "{}", show(&r));
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_family_reports_a_silent_stream() {
    for r in run(Duration::ZERO, |c| c.family == "sse.keepalive").await {
        let expected = if r.level == Level::Must {
            Outcome::Fail
        } else {
            Outcome::NonStrict
        };
        assert_eq!(r.outcome, expected, "{}", show(&r));
        assert!(r.reason.contains("sent nothing"), "{}", show(&r));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_case_passes() {
    let finish_cases = |c: &Case| c.requires.contains(&pushspec::case::Capability::Finish);
    for r in run(Duration::from_secs(15), finish_cases).await {
        assert_eq!(r.outcome, Outcome::Pass, "{}", show(&r));
    }
}
