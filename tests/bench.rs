//! `pushspec bench`: ws-hold, sse-connect, --pid, --shard and compare,
//! each proven both ways (the reference server, and a target with one
//! fault), with short runs on loopback.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use pushspec::cli::{Cli, ConfigError, exit};
use support::command::{pushspec, temp_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use support::{broken_sse, broken_ws};

/// Runs a bench that writes its JSON to standard output; returns it.
async fn report(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", "-"]);
    let o = pushspec(&all).await;
    assert_eq!(o.code, exit::OK, "{}\n{}", o.stdout, o.stderr);
    // With the JSON on standard output there is never a progress line.
    assert!(o.stderr.is_empty(), "{:?}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap()
}

async fn reference() -> pushspec_reference_server::ServerHandle {
    pushspec_reference_server::Server::bind(
        ([127, 0, 0, 1], 0).into(),
        pushspec_reference_server::Config::conformance(),
    )
    .await
    .unwrap()
    .spawn_isolated()
    .unwrap()
}

/// Forwards to `upstream`, holding every chunk coming back for `delay`:
/// the same server, deliberately slow.
async fn delaying_proxy(upstream: SocketAddr, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_hold_counts_who_survived() {
    let r = report(&["ws-hold", "--connections", "20", "--duration", "300ms"]).await;
    let h = &r["results"]["hold"];
    assert_eq!(h["requested"], 20, "{r}");
    assert_eq!(h["opened"], 20, "{r}");
    assert_eq!(h["survived"], 20, "{r}");
    assert_eq!(h["held_ms"], 300, "{r}");
    assert_eq!(r["results"]["latency_us"]["count"], 20, "{r}");
    assert!(
        r["results"]["errors"].as_object().unwrap().is_empty(),
        "{r}"
    );

    // A target that closes idle connections: none survives the hold, and
    // the run says why.
    let addr = broken_ws::spawn(broken_ws::Fault::ClosesIdleConnections).await;
    let t = Instant::now();
    let r = report(&[
        "ws-hold",
        "--ws",
        &format!("ws://{addr}/"),
        "--connections",
        "5",
        "--duration",
        "800ms",
    ])
    .await;
    let h = &r["results"]["hold"];
    assert_eq!(h["opened"], 5, "{r}");
    assert_eq!(h["survived"], 0, "{r}");
    assert_eq!(r["results"]["errors"]["closed-by-target"], 5, "{r}");
    assert!(t.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_connect_counts_subscriptions() {
    let r = report(&[
        "sse-connect",
        "--connections",
        "2",
        "--duration",
        "300ms",
        "--warmup",
        "50ms",
    ])
    .await;
    let ops = r["results"]["operations"].as_u64().unwrap();
    assert!(ops > 0, "{r}");
    assert_eq!(r["results"]["latency_us"]["count"], ops, "{r}");
    assert!(
        r["results"]["errors"].as_object().unwrap().is_empty(),
        "{r}"
    );

    // A 200 that is not an event stream is not a subscription.
    let addr = broken_sse::spawn(broken_sse::Fault::WrongContentType).await;
    let r = report(&[
        "sse-connect",
        "--sse",
        &format!("http://{addr}/events"),
        "--connections",
        "2",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
    ])
    .await;
    assert_eq!(r["results"]["operations"], 0, "{r}");
    assert_eq!(r["results"]["errors"]["response"], 2, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pid_samples_an_external_target() {
    let server = reference().await;
    let ws = format!("ws://{}/", server.local_addr());
    // The reference server runs in this test's process: sample it.
    let pid = std::process::id().to_string();
    let r = report(&[
        "ws-echo",
        "--ws",
        &ws,
        "--pid",
        &pid,
        "--connections",
        "2",
        "--duration",
        "400ms",
        "--warmup",
        "100ms",
    ])
    .await;
    let p = &r["results"]["process"];
    assert_eq!(p["pid"].to_string(), pid, "{r}");
    assert!(p["samples"].as_u64().unwrap() >= 3, "{r}");
    let (start, peak) = (
        p["rss_start_kb"].as_u64().unwrap(),
        p["rss_peak_kb"].as_u64().unwrap(),
    );
    assert!(start > 0 && peak >= start, "{r}");
    assert!(p["cpu_seconds"].as_f64().unwrap() >= 0.0, "{r}");
    assert_eq!(p["exited"], false, "{r}");

    // No --pid: no process figures.
    let r = report(&[
        "ws-echo",
        "--ws",
        &ws,
        "--duration",
        "100ms",
        "--warmup",
        "0s",
    ])
    .await;
    assert!(r["results"].get("process").is_none(), "{r}");

    // The embedded server shares this process with the instrument.
    let o = pushspec(&["bench", "ws-echo", "--pid", &pid, "--duration", "100ms"]).await;
    assert_eq!(o.code, exit::USAGE, "{}", o.stderr);
    assert!(
        o.stderr.contains("--pid needs an external target"),
        "{}",
        o.stderr
    );
    // A process that is not there.
    let o = pushspec(&["bench", "ws-echo", "--ws", &ws, "--pid", "4294967295"]).await;
    assert_eq!(o.code, exit::USAGE, "{}", o.stderr);
    assert!(
        o.stderr.contains("cannot sample /proc/4294967295"),
        "{}",
        o.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_fails_a_deliberately_slow_target() {
    let server = reference().await;
    let slow = delaying_proxy(server.local_addr(), Duration::from_millis(5)).await;
    let dir = temp_dir("compare");
    let (fast_json, slow_json, other_json) = (
        dir.join("fast.json"),
        dir.join("slow.json"),
        dir.join("other.json"),
    );
    for (url, file, connections) in [
        (format!("ws://{}/", server.local_addr()), &fast_json, "1"),
        (format!("ws://{slow}/"), &slow_json, "1"),
        (format!("ws://{}/", server.local_addr()), &other_json, "2"),
    ] {
        let o = pushspec(&[
            "bench",
            "ws-echo",
            "--ws",
            &url,
            "--connections",
            connections,
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
            "--json",
            file.to_str().unwrap(),
        ])
        .await;
        assert_eq!(o.code, exit::OK, "{}\n{}", o.stdout, o.stderr);
    }
    let (fast, slow, other) = (
        fast_json.to_str().unwrap(),
        slow_json.to_str().unwrap(),
        other_json.to_str().unwrap(),
    );
    let o = pushspec(&["bench", "compare", fast, slow]).await;
    assert_eq!(o.code, exit::FAILED, "{}\n{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("REGRESSED"), "{}", o.stdout);
    assert!(o.stdout.contains("regressions beyond 10%"), "{}", o.stdout);
    // The slow run against the fast one as a baseline: better, exit 0.
    let o = pushspec(&["bench", "compare", slow, fast]).await;
    assert_eq!(o.code, exit::OK, "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("no regression beyond 10%"),
        "{}",
        o.stdout
    );
    // Different workloads do not compare.
    let o = pushspec(&["bench", "compare", fast, other]).await;
    assert_eq!(o.code, exit::USAGE, "{}", o.stderr);
    assert!(
        o.stderr.contains("cannot compare: different workloads"),
        "{}",
        o.stderr
    );
    // Not a report at all.
    let o = pushspec(&["bench", "compare", fast, dir.to_str().unwrap()]).await;
    assert_eq!(o.code, exit::USAGE, "{}", o.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_are_checked() {
    assert!(Cli::try_parse_from(["pushspec", "bench", "ws-echo", "--shard", "3/2"]).is_err());
    assert!(Cli::try_parse_from(["pushspec", "bench", "ws-echo", "--shard", "0/2"]).is_err());
    let o = pushspec(&[
        "bench",
        "ws-echo",
        "--connections",
        "1",
        "--shard",
        "2/2",
        "--duration",
        "100ms",
    ])
    .await;
    assert_eq!(o.code, exit::USAGE, "{}", o.stderr);
    assert!(o.stderr.contains("leave this shard none"), "{}", o.stderr);
}

#[test]
fn a_failed_calibration_says_so() {
    let e: ConfigError =
        pushspec::bench::BenchError::Calibration(std::io::Error::other("no loopback")).into();
    let m = e.to_string();
    assert!(
        m.contains("cannot calibrate") && m.contains("no loopback"),
        "{m}"
    );
    assert!(!m.contains("embedded"), "{m}");
}
