//! Verdicts depend on the target alone: the same target gives the same
//! verdicts run after run, even when it is slow and jittery on purpose,
//! the machine is busy, and far more cases run at once than there are
//! cores. A test of the harness, not of a server.
//!
//! Each target sits behind a single-threaded proxy that delays every chunk
//! it forwards by a random 0-25 ms (keeping each direction in order); two
//! threads spin the CPU meanwhile; the engine runs with 32 jobs, as
//! `pushspec run` does (confirmation included). The reference server must
//! never fail; each broken fixture must give identical verdicts each time.
//!
//! `PUSHSPEC_STABILITY_RUNS` (default 3) sets the number of runs, and
//! `PUSHSPEC_STABILITY_ALL=1` runs every family instead of the sample.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pushspec::case::file::load_embedded;
use pushspec::case::select::{Patterns, Selection};
use pushspec::case::{Case, Dur};
use pushspec::engine::{self, Plan, Targets};
use pushspec::outcome::Outcome;
use pushspec::profile::{Capabilities, Profile, SseProfile};
use pushspec::settings::Settings;
use pushspec::sse::run::SseTarget;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Families sampled by default: ordering-sensitive WebSocket families and
/// the SSE families that publish.
const SAMPLE: &[&str] = &[
    "ws.control.*",
    "ws.reserved.*",
    "ws.fragmentation.*",
    "ws.close.*",
    "ws.framing.*",
    "sse.data.*",
    "sse.replay.*",
    "sse.delivery.*",
];

/// Slow on purpose, and big: not what this test is about.
const SKIP: &[&str] = &[
    "sse.keepalive.*",
    "ws.timing.*",
    "ws.limits.*",
    "*-16777216",
];

fn runs() -> usize {
    std::env::var("PUSHSPEC_STABILITY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn cases(protocol_prefix: &str) -> Vec<Case> {
    let all = std::env::var("PUSHSPEC_STABILITY_ALL").is_ok_and(|v| v == "1");
    let include: Vec<&str> = if all { vec!["*"] } else { SAMPLE.to_vec() };
    let sel = Selection::new(
        Patterns::new(&include).unwrap(),
        Patterns::new(SKIP).unwrap(),
    );
    load_embedded()
        .unwrap()
        .into_iter()
        .filter(|c| c.id.starts_with(protocol_prefix) && sel.selects(&c.id))
        .collect()
}

/// Copies `from` to `to`, each chunk after a random delay, in order.
async fn jittery_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = tokio::time::Instant::now();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Never before the previous chunk: each direction stays in order.
        let at =
            (tokio::time::Instant::now() + Duration::from_millis(fastrand::u64(0..=25))).max(last);
        last = at;
        if tx.send((at, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// A slow, jittery proxy in front of `upstream`, on its own thread with a
/// single-threaded runtime (like a small server handling every
/// connection on one core).
fn jittery_proxy(upstream: SocketAddr) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(jittery_copy(cr, sw), jittery_copy(sr, cw));
                });
            }
        });
    });
    addr
}

/// Two threads spinning until the guard is dropped.
struct Busy(Arc<AtomicBool>);

impl Busy {
    fn start() -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        for _ in 0..2 {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            });
        }
        Busy(stop)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn verdicts(
    cases: &[Case],
    targets: &Targets,
    caps: &Capabilities,
) -> BTreeMap<String, Outcome> {
    let plan = Plan {
        cases: cases.to_vec(),
        targets: targets.clone(),
        settings: Settings {
            timeout: Duration::from_secs(2),
            max_message: 64 << 20,
        },
        capabilities: caps.clone(),
        known_failing: None,
        strict: false,
        jobs: 32,
        confirm: true,
        run_budget: None,
    };
    engine::run(plan, |_| {}, std::future::pending())
        .await
        .results
        .into_iter()
        .map(|r| (r.id, r.outcome))
        .collect()
}

/// Runs `cases` against `targets` [`runs`] times; every run must give the
/// verdicts of the first.
async fn same_every_time(
    what: &str,
    cases: &[Case],
    targets: &Targets,
    caps: &Capabilities,
) -> BTreeMap<String, Outcome> {
    let first = verdicts(cases, targets, caps).await;
    assert_eq!(first.len(), cases.len());
    for run in 1..runs() {
        let again = verdicts(cases, targets, caps).await;
        let changed: Vec<String> = first
            .iter()
            .filter(|(id, o)| again.get(*id) != Some(o))
            .map(|(id, o)| format!("{id}: {o} then {:?}", again.get(id)))
            .collect();
        assert!(
            changed.is_empty(),
            "{what}: run {} changed verdicts:\n{}",
            run + 1,
            changed.join("\n")
        );
    }
    first
}

fn sse_targets(addr: SocketAddr) -> Targets {
    Targets {
        ws: None,
        sse: Some(SseTarget {
            stream: pushspec::target::parse_http(&format!("http://{addr}/events")).unwrap(),
            publish: Some(pushspec::target::parse_http(&format!("http://{addr}/publish")).unwrap()),
        }),
    }
}

fn ws_targets(addr: SocketAddr) -> Targets {
    Targets {
        ws: Some(pushspec::target::parse_ws(&format!("ws://{addr}/")).unwrap()),
        sse: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_are_identical_on_a_slow_jittery_target_under_load() {
    let _busy = Busy::start();

    // The reference server: every run, no failure at all.
    let server = pushspec_reference_server::Server::bind(
        ([127, 0, 0, 1], 0).into(),
        pushspec_reference_server::Config::conformance(),
    )
    .await
    .unwrap()
    .spawn_isolated()
    .unwrap();
    let proxy = jittery_proxy(server.local_addr());
    let reference_caps = Capabilities {
        profile: Profile::reference(),
        publish: true,
        skip_timing: true,
    };
    let mut all = cases("ws.");
    all.extend(cases("sse."));
    let mut targets = ws_targets(proxy);
    targets.sse = sse_targets(proxy).sse;
    let on_reference = same_every_time("reference", &all, &targets, &reference_caps).await;
    let failing: Vec<_> = on_reference
        .iter()
        .filter(|(_, o)| o.fails_run(true))
        .collect();
    assert!(
        failing.is_empty(),
        "the reference server failed: {failing:?}"
    );

    // Broken fixtures: whatever they get, they get it every time.
    let ws_caps = Capabilities {
        profile: Profile::default(),
        publish: false,
        skip_timing: true,
    };
    let ws_cases = cases("ws.");
    for fault in [
        support::broken_ws::Fault::WrongCloseCode,
        support::broken_ws::Fault::DropsTcpOnError,
        support::broken_ws::Fault::EchoesFragmentsSeparately,
    ] {
        let proxy = jittery_proxy(support::broken_ws::spawn(fault).await);
        let v = same_every_time(
            &format!("{fault:?}"),
            &ws_cases,
            &ws_targets(proxy),
            &ws_caps,
        )
        .await;
        assert!(
            v.values().any(|o| o.fails_run(true)),
            "{fault:?} must fail some case"
        );
    }
    let sse_caps = Capabilities {
        profile: Profile {
            sse: SseProfile {
                replay: Some(true),
                id_header: Some("Event-Id".into()),
                keepalive: Some(Dur(Duration::from_secs(1))),
                ..SseProfile::default()
            },
            ..Profile::default()
        },
        publish: true,
        skip_timing: true,
    };
    let sse_cases = cases("sse.");
    for fault in [
        support::broken_sse::Fault::CrNotSplit,
        support::broken_sse::Fault::NoSpaceAfterColon,
    ] {
        let proxy = jittery_proxy(support::broken_sse::spawn(fault).await);
        let v = same_every_time(
            &format!("{fault:?}"),
            &sse_cases,
            &sse_targets(proxy),
            &sse_caps,
        )
        .await;
        assert!(
            v.values().any(|o| o.fails_run(true)),
            "{fault:?} must fail some case"
        );
    }
}
