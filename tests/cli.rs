//! The command line as users' CI scripts see it: exit codes, report files,
//! and verdicts (never hangs) against absent, silent and broken targets.

use std::time::{Duration, Instant};

use clap::Parser;
use pushspec::cli::{Cli, execute, exit};

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn pushspec(args: &[&str]) -> Output {
    let cli = Cli::try_parse_from(std::iter::once("pushspec").chain(args.iter().copied()))
        .expect("arguments parse");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = execute(cli, &mut out, &mut err).await;
    Output {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pushspec-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A port on loopback where nothing listens.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_target_exits_3_in_one_line() {
    let t = Instant::now();
    let o = pushspec(&["run", "--ws", &format!("ws://127.0.0.1:{}/", closed_port())]).await;
    assert_eq!(o.code, exit::UNREACHABLE, "{}", o.stderr);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains("cannot connect"), "{}", o.stderr);
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_gives_per_case_failures_and_partial_reports() {
    // Accepts TCP and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let dir = temp_dir("silent");
    let json = dir.join("r.json");
    let o = pushspec(&[
        "run",
        "--ws",
        &format!("ws://{addr}/"),
        "ws.control.*",
        "--timeout",
        "200ms",
        "--jobs",
        "16",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    // No handshake possible at all: its own exit code, with every case judged.
    assert_eq!(o.code, exit::UNREACHABLE, "{}\n{}", o.stdout, o.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        assert_eq!(c["outcome"], "fail", "{c}");
        assert!(
            c["reason"]
                .as_str()
                .unwrap()
                .contains("opening handshake failed"),
            "{c}"
        );
    }
    assert_eq!(report["summary"]["fail"], cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_reference_server_passes_with_valid_reports() {
    let dir = temp_dir("embedded");
    let (json, junit) = (dir.join("r.json"), dir.join("r.xml"));
    let o = pushspec(&[
        "run",
        "ws.control.*",
        "ws.handshake.*",
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}\n{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("testing the embedded reference server"));
    let last = o.stdout.lines().last().unwrap();
    assert!(last.contains(" pass") && last.contains("0 fail"), "{last}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["schema_version"], 1);
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(report["summary"]["total"], cases.len());
    assert_eq!(report["summary"]["pass"], cases.len());
    for c in cases {
        for field in [
            "id",
            "outcome",
            "level",
            "spec",
            "title",
            "duration_ms",
            "reason",
        ] {
            assert!(!c[field].is_null(), "{field} missing in {c}");
        }
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.starts_with("<?xml"));
    assert!(xml.contains(r#"<testsuite name="ws.control""#), "{xml}");
    assert!(xml.contains(r#"<testsuite name="ws.handshake""#));
    assert_eq!(xml.matches("<testcase ").count(), cases.len());
    assert!(!xml.contains("<failure"));
}

/// A case that cannot pass on an echo server, for known-failing tests.
const IMPOSSIBLE: &str = r#"
family = "ws.selftest"

[[case]]
slug = "pong-for-text"
title = "Expects a pong where an echo server sends the message back"
spec = "none"
level = "must"
steps = [
  { message = { type = "text", payload = "x" } },
  { expect_pong = { payload = "x" } },
]

[[case]]
slug = "echo"
title = "Echo"
spec = "RFC 6455 §5.6"
level = "must"
steps = [
  { message = { type = "text", payload = "x" } },
  { expect_message = { type = "text", payload = "x" } },
]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_failing_file_turns_failures_into_xfail_and_stale_entries_fail() {
    let dir = temp_dir("known");
    std::fs::write(dir.join("selftest.toml"), IMPOSSIBLE).unwrap();
    let cases = dir.to_str().unwrap();

    let o = pushspec(&["run", "--cases", cases]).await;
    assert_eq!(o.code, exit::FAILED, "{}", o.stdout);
    assert!(
        o.stdout.contains("FAIL ws.selftest.pong-for-text"),
        "{}",
        o.stdout
    );

    let kf = dir.join("known-failing.txt");
    std::fs::write(&kf, "# expected\nws.selftest.pong-for-text\n").unwrap();
    let o = pushspec(&[
        "run",
        "--cases",
        cases,
        "--known-failing",
        kf.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}", o.stdout);
    assert!(o.stdout.contains("xfail"), "{}", o.stdout);

    std::fs::write(&kf, "ws.selftest.*  # stale for echo\n").unwrap();
    let o = pushspec(&[
        "run",
        "--cases",
        cases,
        "--known-failing",
        kf.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::FAILED, "{}", o.stdout);
    assert!(o.stdout.contains("XPASS ws.selftest.echo"), "{}", o.stdout);
}

#[tokio::test]
async fn usage_and_selection_errors_have_their_own_codes() {
    let o = pushspec(&["run", "no.such.case.*"]).await;
    assert_eq!(o.code, exit::NO_CASES);
    let o = pushspec(&["list", "no.such.*"]).await;
    assert_eq!(o.code, exit::NO_CASES);
    let o = pushspec(&["run", "--ws", "wss://127.0.0.1:1/"]).await;
    assert_eq!(o.code, exit::USAGE);
    assert!(o.stderr.contains("TLS"), "{}", o.stderr);
    let o = pushspec(&["run", "--publish", "http://127.0.0.1:1/publish"]).await;
    assert_eq!(o.code, exit::USAGE);
    let o = pushspec(&["run", "--known-failing", "/nonexistent/kf.txt"]).await;
    assert_eq!(o.code, exit::USAGE);
    assert!(o.stderr.contains("/nonexistent/kf.txt"), "{}", o.stderr);
    assert!(Cli::try_parse_from(["pushspec", "run", "--timeout", "soon"]).is_err());
}

#[tokio::test]
async fn malformed_case_file_names_file_line_and_field() {
    let dir = temp_dir("malformed");
    std::fs::write(
        dir.join("bad.toml"),
        "family = \"ws.bad\"\n\n[[case]]\nslug = \"x\"\ntitle = \"t\"\nspec = \"s\"\nlevel = \"must\"\nsteps = [\n  { send = { opcode = \"pingg\" } },\n]\n",
    )
    .unwrap();
    let o = pushspec(&["list", "--cases", dir.to_str().unwrap()]).await;
    assert_eq!(o.code, exit::USAGE);
    let file = dir.join("bad.toml");
    let expected = format!("{}:9:", file.display());
    assert!(o.stderr.contains(&expected), "{}", o.stderr);
    assert!(o.stderr.contains("steps[0].send.opcode"), "{}", o.stderr);
    assert!(o.stderr.contains("pingg"), "{}", o.stderr);
}

#[tokio::test]
async fn malformed_profile_names_file_and_line() {
    let dir = temp_dir("profile");
    let profile = dir.join("target.toml");
    std::fs::write(&profile, "[ws]\ndeflate = true\nmax_mesage_size = 1024\n").unwrap();
    let o = pushspec(&["run", "--profile", profile.to_str().unwrap()]).await;
    assert_eq!(o.code, exit::USAGE);
    assert!(
        o.stderr.contains(&format!("{}:3:", profile.display())),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("max_mesage_size"), "{}", o.stderr);
}

#[tokio::test]
async fn list_and_show_describe_cases() {
    let o = pushspec(&["list", "ws.control.*", "--json"]).await;
    assert_eq!(o.code, exit::OK);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"ws.control.ping-126-byte"), "{ids:?}");
    assert!(ids.iter().all(|i| i.starts_with("ws.control.")));
    let o = pushspec(&["show", "ws.control.ping-126-byte"]).await;
    assert_eq!(o.code, exit::OK);
    assert!(o.stdout.contains("RFC 6455 §5.5"), "{}", o.stdout);
    assert!(o.stdout.contains("cases/ws/control.toml:"), "{}", o.stdout);
    assert!(
        o.stdout
            .contains(r#"{ expect_fail = { codes = [1002] } },"#),
        "{}",
        o.stdout
    );
    let o = pushspec(&["show", "ws.nope"]).await;
    assert_eq!(o.code, exit::USAGE);
}
