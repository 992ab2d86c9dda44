//! The command line as users' CI scripts see it: exit codes, report files,
//! and verdicts (never hangs) against absent, silent and broken targets.

mod support;

use std::time::{Duration, Instant};

use clap::Parser;
use pushspec::cli::{Cli, exit};
use support::command::{pushspec, temp_dir};

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
    // No handshake possible at all: its own exit code; the cases that need
    // one did not run, and say so (never `fail`).
    assert_eq!(o.code, exit::UNREACHABLE, "{}\n{}", o.stdout, o.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        assert_eq!(c["outcome"], "not-run", "{c}");
        assert!(
            c["reason"]
                .as_str()
                .unwrap()
                .contains("handshake probe failed"),
            "{c}"
        );
    }
    assert_eq!(report["summary"]["not-run"], cases.len());
    assert_eq!(report["summary"]["fail"], 0);
    // The warning counts exactly the cases reported as not run.
    assert!(
        o.stderr
            .contains(&format!("{} cases that need it are not run", cases.len())),
        "{}",
        o.stderr
    );
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
    // TLS targets are accepted (tests/tls.rs); one that is not there is
    // unreachable, like a plain one.
    let o = pushspec(&["run", "--ws", "wss://127.0.0.1:1/"]).await;
    assert_eq!(o.code, exit::UNREACHABLE, "{}", o.stderr);
    let o = pushspec(&["run", "--ws", "ftp://127.0.0.1:1/"]).await;
    assert_eq!(o.code, exit::USAGE);
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

// ---------------------------------------------------------------------------
// The first run, as a newcomer and a CI job meet it.

/// The `pushspec` binary cargo built beside this test.
fn bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join(format!("pushspec{}", std::env::consts::EXE_SUFFIX));
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// A listener that accepts TCP and never says a word.
async fn silent_listener() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    addr
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

#[test]
fn sigterm_writes_partial_reports_and_exits_143() {
    use std::io::{BufRead, BufReader};
    let dir = temp_dir("sigterm");
    let (json, junit) = (dir.join("r.json"), dir.join("r.xml"));
    // The keep-alive case waits on purpose: the run is still going when
    // the signal comes.
    let mut child = std::process::Command::new(bin())
        .args([
            "run",
            "sse.keepalive.*",
            "ws.control.*",
            "--json",
            json.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("output before the end").unwrap();
        if line.starts_with("running ") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(exit::TERMINATED), "{rest:?}");
    assert!(
        rest.last().unwrap().starts_with("TERMINATED (SIGTERM)"),
        "{rest:?}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["interrupted"], true);
    assert_eq!(report["stopped_by"], "terminated");
    assert_eq!(report["exit_code"], exit::TERMINATED);
    assert!(
        !report["not_run"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"type="interrupted""#), "{xml}");
    assert!(xml.contains("timestamp="), "{xml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sse_target_exits_3_at_once_with_a_hint() {
    let server = reference().await;
    let addr = server.local_addr();
    let silent = silent_listener().await;
    for (url, says) in [
        (format!("http://{addr}/evnts"), "404"),
        // The WebSocket endpoint, given as --sse.
        (format!("http://{addr}/"), "--ws"),
        (
            format!("http://{silent}/events"),
            "no complete response head",
        ),
    ] {
        let t = Instant::now();
        let o = pushspec(&["run", "--sse", &url, "--timeout", "500ms"]).await;
        assert_eq!(o.code, exit::UNREACHABLE, "{url}: {}{}", o.stdout, o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{url}: {}", o.stderr);
        assert!(o.stderr.contains(says), "{url}: {}", o.stderr);
        assert!(
            !o.stdout.contains("[1/"),
            "{url}: no case ran: {}",
            o.stdout
        );
        assert!(t.elapsed() < Duration::from_secs(10), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_that_could_not_run_are_not_failures_and_selection_comes_first() {
    let silent = silent_listener().await;
    let dir = temp_dir("notrun");
    let (json, junit) = (dir.join("r.json"), dir.join("r.xml"));
    let o = pushspec(&[
        "run",
        "--ws",
        &format!("ws://{silent}/"),
        "ws.timing.*",
        "ws.deflate.negotiate-*",
        "ws.close.*",
        "--skip-timing",
        "--timeout",
        "200ms",
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::UNREACHABLE, "{}\n{}", o.stdout, o.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for c in report["cases"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let want = if id.starts_with("ws.timing.") || id.starts_with("ws.deflate.") {
            "unsupported"
        } else {
            "not-run"
        };
        assert_eq!(c["outcome"], want, "{c}");
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(!xml.contains("<failure"), "{xml}");
    assert!(xml.contains("<skipped"), "{xml}");
    // The summary counts them apart.
    assert!(o.stdout.contains(" not-run"), "{}", o.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_failing_entries_that_match_nothing_fail_unless_broad() {
    let dir = temp_dir("stale");
    let kf = dir.join("kf.txt");
    std::fs::write(&kf, "ws.control.ping-empty-typo\nplain words\n").unwrap();
    let o = pushspec(&[
        "run",
        "ws.control.ping-empty",
        "--known-failing",
        kf.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::FAILED, "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("kf.txt:1"), "{}", o.stderr);
    assert!(o.stderr.contains("\"plain words\""), "{}", o.stderr);
    assert!(
        o.stdout
            .lines()
            .last()
            .unwrap()
            .contains("2 known-failing entries matching no case"),
        "{}",
        o.stdout
    );
    // Marked as broad, and entries for cases this run did not select: fine.
    std::fs::write(&kf, "?ws.h2.*\nws.utf8.*\n").unwrap();
    let o = pushspec(&[
        "run",
        "ws.control.ping-empty",
        "--known-failing",
        kf.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}\n{}", o.stdout, o.stderr);
}

/// A case that fails only a SHOULD on an echo server.
const SHOULD_FAILS: &str = r#"
family = "ws.selftest"

[[case]]
slug = "should-pong"
title = "Expects a pong where an echo server sends the message back"
spec = "none"
level = "should"
steps = [
  { message = { type = "text", payload = "x" } },
  { expect_pong = { payload = "x" } },
]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_levels_colour_and_the_verdict_line() {
    let dir = temp_dir("levels");
    std::fs::write(dir.join("selftest.toml"), IMPOSSIBLE).unwrap();
    let cases = dir.to_str().unwrap();

    let normal = pushspec(&["run", "--cases", cases]).await;
    assert_eq!(normal.code, exit::FAILED);
    // Only the failing case gets a line, details and a place in the list.
    assert!(normal.stdout.contains("] fail"), "{}", normal.stdout);
    assert!(!normal.stdout.contains("] pass"), "{}", normal.stdout);
    assert!(normal.stdout.contains("findings, grouped by reason:"));
    assert!(normal.stdout.contains("      ws.selftest.pong-for-text"));
    let last = normal.stdout.lines().last().unwrap();
    assert!(last.starts_with("FAILED (1 fail): 2 cases in "), "{last}");
    assert!(!normal.stdout.contains('\x1b'), "no colour into a pipe");

    let verbose = pushspec(&["run", "--cases", cases, "-v"]).await;
    assert!(verbose.stdout.contains("] pass"), "{}", verbose.stdout);

    let quiet = pushspec(&["run", "--cases", cases, "-q"]).await;
    assert_eq!(quiet.code, exit::FAILED);
    assert!(!quiet.stdout.contains("] fail"), "{}", quiet.stdout);
    assert!(!quiet.stdout.contains("transcript:"), "{}", quiet.stdout);
    assert!(quiet.stdout.contains("      ws.selftest.pong-for-text"));
    assert!(quiet.stdout.lines().last().unwrap().starts_with("FAILED"));

    let coloured = pushspec(&["run", "--cases", cases, "--color", "always"]).await;
    assert!(
        coloured.stdout.contains("\x1b[1;31m"),
        "{}",
        coloured.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_says_why_it_fails() {
    let dir = temp_dir("strict");
    std::fs::write(dir.join("selftest.toml"), SHOULD_FAILS).unwrap();
    let cases = dir.to_str().unwrap();
    let o = pushspec(&["run", "--cases", cases]).await;
    assert_eq!(o.code, exit::OK, "{}", o.stdout);
    assert!(o.stdout.lines().last().unwrap().starts_with("PASSED:"));
    let o = pushspec(&["run", "--cases", cases, "--strict"]).await;
    assert_eq!(o.code, exit::FAILED, "{}", o.stdout);
    let last = o.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("FAILED (1 non-strict under --strict):"),
        "{last}"
    );
    assert!(o.stdout.contains("NON-STRICT ws.selftest.should-pong"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_destinations_are_checked_before_the_run_and_record_the_config() {
    let o = pushspec(&["run", "ws.control.*", "--json", "/nonexistent/dir/r.json"]).await;
    assert_eq!(o.code, exit::USAGE);
    assert!(o.stderr.contains("/nonexistent/dir/r.json"), "{}", o.stderr);
    assert!(!o.stdout.contains("running"), "no case ran: {}", o.stdout);

    let dir = temp_dir("dest");
    let same = dir.join("r");
    let o = pushspec(&[
        "run",
        "--json",
        same.to_str().unwrap(),
        "--junit",
        same.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::USAGE, "{}", o.stderr);
    assert!(o.stderr.contains("--json and --junit"), "{}", o.stderr);

    let junit = dir.join("r.xml");
    let o = pushspec(&[
        "run",
        "ws.control.ping-empty",
        "--json",
        "-",
        "--junit",
        junit.to_str().unwrap(),
        "--jobs",
        "3",
        "--skip",
        "nothing.*",
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);
    assert!(!dir.join("-").exists());
    let report: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(report["config"]["jobs"], 3);
    assert_eq!(report["config"]["patterns"][0], "ws.control.ping-empty");
    assert_eq!(report["config"]["skip"][0], "nothing.*");
    assert_eq!(report["config"]["timeout_ms"], 2000);
    assert_eq!(report["config"]["strict"], false);
    assert_eq!(report["verdict"], "PASSED");
    let caps = report["targets"]["capabilities"].as_array().unwrap();
    assert!(caps.iter().any(|c| c["name"] == "deflate"), "{caps:?}");
    // The console went to standard error.
    assert!(o.stderr.contains("PASSED"), "{}", o.stderr);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("timestamp="), "{xml}");
    assert!(xml.contains(r#"<testsuite name="ws.control""#), "{xml}");
    assert!(xml.contains("time="), "{xml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_things_a_newcomer_trips_over() {
    // A pattern that matches nothing says so.
    let o = pushspec(&["list", "nope.*"]).await;
    assert_eq!(o.code, exit::NO_CASES);
    assert!(
        o.stderr.contains("no case matches \"nope.*\""),
        "{}",
        o.stderr
    );
    // A family name is a pattern.
    let o = pushspec(&["list", "ws.control"]).await;
    assert_eq!(o.code, exit::OK);
    assert!(o.stdout.contains("ws.control.ping-126-byte"));
    // `show` speaks the case files' words.
    let o = pushspec(&["show", "ws.deflate.bomb"]).await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);
    let requires = o
        .stdout
        .lines()
        .find(|l| l.starts_with("requires:"))
        .unwrap();
    assert!(requires.contains("deflate"), "{requires}");
    assert!(!requires.contains("Deflate"), "{requires}");
    // Schemes in any case; credentials are refused, not taken for a host.
    let server = reference().await;
    let addr = server.local_addr();
    let o = pushspec(&[
        "run",
        "--ws",
        &format!("WS://{addr}/"),
        "ws.control.ping-empty",
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}{}", o.stdout, o.stderr);
    let o = pushspec(&["run", "--ws", &format!("ws://user:pw@{addr}/")]).await;
    assert_eq!(o.code, exit::USAGE);
    assert!(o.stderr.contains("credentials"), "{}", o.stderr);
    // Plurals and rounded durations.
    let o = pushspec(&["run", "ws.control.ping-empty"]).await;
    let last = o.stdout.lines().last().unwrap();
    assert!(last.contains(": 1 case in "), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_host_names_and_names_an_address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let o = pushspec(&["serve", "--listen", &addr.to_string()]).await;
    assert_eq!(o.code, exit::USAGE);
    assert!(
        o.stderr.contains(&format!("cannot listen on {addr}")),
        "{}",
        o.stderr
    );
    let o = pushspec(&["serve", "--listen", "no-such-host.invalid:1"]).await;
    assert_eq!(o.code, exit::USAGE);
    assert!(o.stderr.contains("no-such-host.invalid"), "{}", o.stderr);

    // A host name works: the binary serves until it is told to stop.
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--listen", "localhost:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("pushspec reference server: ws://"),
        "{line}"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(child.wait().unwrap().code(), Some(exit::OK));
}

#[test]
fn an_unknown_flag_is_not_suggested_as_a_pattern() {
    let o = std::process::Command::new(bin())
        .args(["run", "--frobnicate"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(exit::USAGE));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--frobnicate"), "{err}");
    assert!(!err.contains("-- --frobnicate"), "{err}");
}

/// Forwards to `upstream`, except that the first connection on which the
/// client sends `marker` never gets another byte back: a verdict resting
/// on a deadline, that the target (through the proxy) would pass.
async fn stall_once_proxy(
    upstream: std::net::SocketAddr,
    marker: &'static [u8],
) -> std::net::SocketAddr {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stalled = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let stalled = stalled.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let mute = Arc::new(AtomicBool::new(false));
                let m = mute.clone();
                let up = tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut seen: Vec<u8> = Vec::new();
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        seen.extend_from_slice(&buf[..n]);
                        // Client frames are masked: look for the marker in
                        // the unmasked payload of small frames.
                        if !stalled.load(Ordering::SeqCst) && unmasked_contains(&seen, marker) {
                            stalled.store(true, Ordering::SeqCst);
                            m.store(true, Ordering::SeqCst);
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if mute.load(Ordering::SeqCst) {
                        continue;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    addr
}

/// Whether a masked client frame with a short payload equal to `marker`
/// appears in `bytes` after the HTTP head.
fn unmasked_contains(bytes: &[u8], marker: &[u8]) -> bool {
    let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let mut i = head_end + 4;
    while i + 6 <= bytes.len() {
        let len = (bytes[i + 1] & 0x7f) as usize;
        if len >= 126 || i + 6 + len > bytes.len() {
            return false;
        }
        let key = &bytes[i + 2..i + 6];
        let payload: Vec<u8> = bytes[i + 6..i + 6 + len]
            .iter()
            .enumerate()
            .map(|(j, b)| b ^ key[j % 4])
            .collect();
        if payload == marker {
            return true;
        }
        i += 6 + len;
    }
    false
}

/// Waits for a close an echo server never sends: fails on a deadline.
const NEVER_CLOSES: &str = r#"
family = "ws.selftest"

[[case]]
slug = "close-unasked"
title = "Expects a close nobody asked for"
spec = "none"
level = "must"
steps = [
  { message = { type = "text", payload = "x" } },
  { expect_message = { type = "text", payload = "x" } },
  { expect_close = { codes = [1000] } },
]
"#;

const STALL_CASE: &str = r#"
family = "ws.selftest"

[[case]]
slug = "echo-stall"
title = "Echo"
spec = "RFC 6455 §5.6"
level = "must"
steps = [
  { message = { type = "text", payload = "stall-me" } },
  { expect_message = { type = "text", payload = "stall-me" } },
]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_resting_on_a_deadline_is_confirmed_and_a_pass_there_is_flaky() {
    let server = reference().await;
    let proxy = stall_once_proxy(server.local_addr(), b"stall-me").await;
    let dir = temp_dir("flaky");
    std::fs::write(dir.join("selftest.toml"), STALL_CASE).unwrap();
    let json = dir.join("r.json");
    let o = pushspec(&[
        "run",
        "--ws",
        &format!("ws://{proxy}/"),
        "--cases",
        dir.to_str().unwrap(),
        "--timeout",
        "300ms",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    // It passed when run again alone: reported as flaky, not failing.
    assert_eq!(o.code, exit::OK, "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("confirming 1 failing verdict alone"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("flaky (1 case"), "{}", o.stdout);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let case = &report["cases"][0];
    assert_eq!(case["outcome"], "pass", "{case}");
    assert_eq!(case["flaky"], true, "{case}");
    assert_eq!(case["first_attempt"]["outcome"], "fail", "{case}");
    assert_eq!(report["flaky"][0], "ws.selftest.echo-stall");

    // A target that fails both times: confirmed, and it fails the run.
    let dir2 = temp_dir("confirmed");
    std::fs::write(dir2.join("selftest.toml"), NEVER_CLOSES).unwrap();
    let o = pushspec(&[
        "run",
        "--cases",
        dir2.to_str().unwrap(),
        "--timeout",
        "300ms",
        "-v",
    ])
    .await;
    assert_eq!(o.code, exit::FAILED);
    assert!(
        o.stdout.contains("confirmed: run again alone"),
        "{}",
        o.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_has_an_overall_bound() {
    let dir = temp_dir("budget");
    let json = dir.join("r.json");
    let o = pushspec(&[
        "run",
        "sse.keepalive.*",
        "ws.control.*",
        "--run-timeout",
        "1s",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::FAILED, "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout
            .lines()
            .last()
            .unwrap()
            .contains("the run budget ran out"),
        "{}",
        o.stdout
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["stopped_by"], "run-budget");
    let keepalive = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"].as_str().unwrap().starts_with("sse.keepalive."))
        .unwrap();
    assert!(
        keepalive["reason"].as_str().unwrap().contains("run budget"),
        "{keepalive}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permessage_deflate_is_detected_on_the_wire_unless_the_profile_says_no() {
    let server = reference().await;
    let addr = server.local_addr();
    let dir = temp_dir("detect");
    let json = dir.join("r.json");
    let o = pushspec(&[
        "run",
        "--ws",
        &format!("ws://{addr}/"),
        "ws.deflate.offer-*",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("detected: permessage-deflate"),
        "{}",
        o.stdout
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["summary"]["unsupported"], 0, "{report}");
    assert!(report["summary"]["pass"].as_u64().unwrap() > 0);
    let caps = report["targets"]["capabilities"].as_array().unwrap();
    assert!(
        caps.iter()
            .any(|c| c["name"] == "deflate" && c["source"] == "detected"),
        "{caps:?}"
    );

    let profile = dir.join("off.toml");
    std::fs::write(&profile, "[ws]\ndeflate = false\n").unwrap();
    let o = pushspec(&[
        "run",
        "--ws",
        &format!("ws://{addr}/"),
        "ws.deflate.offer-*",
        "--profile",
        profile.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}\n{}", o.stdout, o.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        report["summary"]["unsupported"], report["summary"]["total"],
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_with_one_cause_read_as_one_finding() {
    // Twenty cases, one cause: an echo server never answers a pong.
    let mut file = String::from("family = \"ws.selftest\"\n");
    for i in 0..20 {
        file.push_str(&format!(
            "\n[[case]]\nslug = \"pong-{i}\"\ntitle = \"t\"\nspec = \"none\"\nlevel = \"must\"\nsteps = [\n  {{ message = {{ type = \"text\", payload = {{ repeat = \"x\", len = {} }} }} }},\n  {{ expect_pong = {{ payload = \"x\" }} }},\n]\n",
            1000 + i * 977
        ));
    }
    let dir = temp_dir("grouped");
    std::fs::write(dir.join("selftest.toml"), file).unwrap();
    let json = dir.join("r.json");
    let o = pushspec(&[
        "run",
        "--cases",
        dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::FAILED);
    assert!(o.stdout.contains("fail (20 cases): "), "{}", o.stdout);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["cases"].as_array().unwrap().len(), 20);
}

/// Answers every request with a valid-looking `101` head, one byte every
/// 50 ms (the head never completes within a 300 ms timeout).
async fn trickling_listener() -> std::net::SocketAddr {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n";
                for b in head {
                    if s.write_all(&[*b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_response_head_meets_its_own_deadline() {
    let addr = trickling_listener().await;
    let dir = temp_dir("trickle");
    let json = dir.join("r.json");
    let t = Instant::now();
    let o = pushspec(&[
        "run",
        "--ws",
        &format!("ws://{addr}/"),
        "ws.handshake.*",
        "--timeout",
        "300ms",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::UNREACHABLE, "{}\n{}", o.stdout, o.stderr);
    // A head costs one timeout, not a case budget: the whole run, with its
    // confirmations, stays far below one case budget per case.
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ran: Vec<&serde_json::Value> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "fail")
        .collect();
    assert!(!ran.is_empty(), "{report}");
    let reasons: Vec<&str> = ran.iter().map(|c| c["reason"].as_str().unwrap()).collect();
    assert!(
        reasons.iter().all(|r| r.contains("head deadline")),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_running_long_is_named() {
    let dir = temp_dir("slow");
    std::fs::write(
        dir.join("selftest.toml"),
        r#"
family = "ws.selftest"

[[case]]
slug = "quiet-6s"
title = "Nothing arrives for 6 s"
spec = "none"
level = "must"
steps = [{ expect_nothing = "6s" }]
"#,
    )
    .unwrap();
    let o = pushspec(&["run", "--cases", dir.to_str().unwrap()]).await;
    assert_eq!(o.code, exit::OK, "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout
            .contains("... still running after 5s: ws.selftest.quiet-6s"),
        "{}",
        o.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_measures_and_counts_errors_by_kind() {
    let dir = temp_dir("bench");
    let json = dir.join("b.json");
    let o = pushspec(&[
        "bench",
        "ws-echo",
        "--connections",
        "2",
        "--pipeline",
        "2",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}\n{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("latency (us)  p50 "), "{}", o.stdout);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["scenario"], "ws-echo");
    assert!(r["results"]["operations"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(
        r["results"]["latency_us"]["count"],
        r["results"]["operations"]
    );
    assert!(
        r["calibration"]["tcp_round_trips_per_sec"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        r["results"]["errors"].as_object().unwrap().is_empty(),
        "{r}"
    );
    assert!(
        !r["results"]["latency_us"]["histogram"]
            .as_str()
            .unwrap()
            .is_empty()
    );

    // A target that never answers: the run ends on time, errors counted.
    let silent = silent_listener().await;
    let t = Instant::now();
    let o = pushspec(&[
        "bench",
        "ws-echo",
        "--ws",
        &format!("ws://{silent}/"),
        "--connections",
        "3",
        "--duration",
        "200ms",
        "--warmup",
        "0s",
        "--json",
        "-",
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);
    let r: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(r["results"]["errors"]["handshake"], 3, "{r}");
    assert!(t.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_sse_fanout_counts_every_delivery() {
    let o = pushspec(&[
        "bench",
        "sse-fanout",
        "--connections",
        "50",
        "--rate",
        "50",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
        "--json",
        "-",
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);
    let r: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let d = &r["results"]["delivery"];
    let published = d["published"].as_u64().unwrap();
    assert!(published > 0, "{r}");
    assert_eq!(d["expected"], published * 50, "{r}");
    assert_eq!(d["delivered"], d["expected"], "{r}");
    assert_eq!(d["lost"], 0, "{r}");
    assert_eq!(d["duplicated"], 0, "{r}");
    assert_eq!(d["out_of_order"], 0, "{r}");
}
