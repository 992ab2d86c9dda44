//! `pushspec clients` as CI scripts see it: the strict reference client
//! passes every client case through `--exec`; the Autobahn URL protocol
//! answers as Autobahn does; a client that never connects, exits early or
//! hangs gets verdicts and an exit code, never a hung run.

mod support;

use std::time::{Duration, Instant};

use pushspec::cli::exit;
use support::command::{pushspec, temp_dir};

const REFERENCE_CLIENT: &str = env!("CARGO_BIN_EXE_pushspec-reference-client");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_client_passes_every_client_case_via_exec() {
    let dir = temp_dir("reference");
    let json = dir.join("report.json");
    let junit = dir.join("report.xml");
    let t = Instant::now();
    let o = pushspec(&[
        "clients",
        "--listen",
        "127.0.0.1:0",
        "--exec",
        REFERENCE_CLIENT,
        "--strict",
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}\n{}", o.stdout, o.stderr);
    assert!(t.elapsed() < Duration::from_secs(60));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["agent"], "pushspec-reference-client");
    assert_eq!(r["exit_code"], 0);
    let total = r["summary"]["total"].as_u64().unwrap();
    let listed = pushspec(&["list", "client.ws.*"]).await;
    assert_eq!(total as usize, listed.stdout.lines().count());
    // Every case passes; `info` cases report without a verdict.
    let info = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["level"] == "info")
        .count() as u64;
    assert_eq!(r["summary"]["pass"], total - info, "{}", o.stdout);
    assert_eq!(r["summary"]["info"], info);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("pushspec clients: pushspec-reference-client"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_connects_is_not_tested() {
    let t = Instant::now();
    let o = pushspec(&[
        "clients",
        "--listen",
        "127.0.0.1:0",
        "--exec",
        "exit 1",
        "client.ws.handshake",
    ])
    .await;
    assert_eq!(o.code, exit::UNREACHABLE, "{}", o.stdout);
    assert!(o.stdout.contains("without connecting"), "{}", o.stdout);
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_is_stopped_by_the_run_budget() {
    let t = Instant::now();
    let o = pushspec(&[
        "clients",
        "--listen",
        "127.0.0.1:0",
        "--exec",
        "sleep 60",
        "--run-timeout",
        "1s",
        "client.ws.framing.text-0",
    ])
    .await;
    assert_eq!(o.code, exit::UNREACHABLE, "{}", o.stdout);
    assert!(o.stdout.contains("run budget"), "{}", o.stdout);
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autobahn_endpoints_answer_as_autobahn_does() {
    use pushspec::client::run::Ctx;
    use pushspec::client::serve::{Suite, serve};
    use support::broken_client::{Fault, fetch_text, run_autobahn};

    let cases: Vec<_> = pushspec::case::file::load_embedded()
        .unwrap()
        .into_iter()
        .filter(|c| c.id.starts_with("client.ws.framing.text-"))
        .collect();
    let first = cases[0].id.clone();
    let n = cases.len();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let suite = std::sync::Arc::new(Suite::new(
        cases,
        Ctx::new(Duration::from_secs(1)),
        None,
        false,
    ));
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(serve(listener, suite, tx));

    assert_eq!(
        fetch_text(addr, "/getCaseCount").await.unwrap(),
        n.to_string()
    );
    let info: serde_json::Value =
        serde_json::from_str(&fetch_text(addr, "/getCaseInfo?case=1").await.unwrap()).unwrap();
    assert_eq!(info["id"], first.as_str());
    let status = |agent: &'static str| async move {
        let s = fetch_text(addr, &format!("/getCaseStatus?case=1&agent={agent}"))
            .await
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&s).unwrap()["behavior"].clone()
    };
    assert_eq!(status("a").await, "NOT-RUN");
    run_autobahn(addr, "a", Fault::None).await.unwrap();
    assert_eq!(status("a").await, "OK");
    run_autobahn(addr, "b", Fault::Unmasked).await.unwrap();
    assert_eq!(status("b").await, "FAILED");
    // A case that does not exist is a 404, not a hang.
    assert!(
        fetch_text(addr, &format!("/runCase?case={}&agent=a", n + 1))
            .await
            .is_err()
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_failing_and_exit_codes_work_as_for_run() {
    let dir = temp_dir("kf");
    let kf = dir.join("known-failing.txt");
    // The reference client passes: listing a case makes it an xpass.
    std::fs::write(&kf, "client.ws.framing.text-0\n").unwrap();
    let o = pushspec(&[
        "clients",
        "--listen",
        "127.0.0.1:0",
        "--exec",
        REFERENCE_CLIENT,
        "--known-failing",
        kf.to_str().unwrap(),
        "client.ws.framing.text-0",
        "client.ws.framing.text-125",
    ])
    .await;
    assert_eq!(o.code, exit::FAILED, "{}", o.stdout);
    assert!(o.stdout.contains("xpass"), "{}", o.stdout);
    let none = pushspec(&["clients", "--listen", "127.0.0.1:0", "no.such.*"]).await;
    assert_eq!(none.code, exit::NO_CASES, "{}", none.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_still_selects_only_server_cases() {
    let o = pushspec(&["run", "client.ws.*"]).await;
    assert_eq!(o.code, exit::NO_CASES, "{}\n{}", o.stdout, o.stderr);
}
