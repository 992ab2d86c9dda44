//! `pushspec report` and `run --html`: pages and summaries rendered from
//! JSON reports (of the reference server, a broken fixture, and small
//! hand-made reports in tests/fixtures/report/), checked for structure,
//! escaping and exit codes, then loaded in a real headless Chromium that
//! drives the filters, the search and the case panel (`#selftest`).
//!
//! The browser test needs Chromium (`apt-get install chromium`; `.ci/run`
//! installs it where missing). Without one it fails, unless
//! `PUSHSPEC_SKIP_BROWSER=1` says to skip it; `PUSHSPEC_CHROMIUM` names a
//! binary elsewhere. `PUSHSPEC_WRITE_EXAMPLE=1` rewrites
//! docs/report-example.{html,md} from the reference server and a broken
//! fixture.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pushspec::cli::exit;
use support::broken_ws::{Fault, spawn};
use support::command::{pushspec, temp_dir};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/report")
        .join(name)
        .display()
        .to_string()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The case data the page carries for its script.
fn page_data(html: &str) -> serde_json::Value {
    let start = html
        .find(r#"<script type="application/json" id="pushspec-data">"#)
        .expect("the page carries its data");
    let rest = &html[start..];
    let body = &rest[rest.find('>').unwrap() + 1..rest.find("</script>").unwrap()];
    serde_json::from_str(body).expect("the data block is JSON")
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

const EXAMPLE_PATTERNS: [&str; 2] = ["ws.control", "ws.reserved"];

/// Runs the embedded reference server and a fixture whose pongs carry the
/// wrong payload over two families, writing JSON (and, for the fixture,
/// the run's own HTML) into `dir`.
async fn reference_and_broken(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (good, bad, bad_html) = (
        dir.join("reference.json"),
        dir.join("broken.json"),
        dir.join("broken-run.html"),
    );
    let mut args = vec!["run", "-q", "--json", good.to_str().unwrap()];
    args.extend(EXAMPLE_PATTERNS);
    let o = pushspec(&args).await;
    assert_eq!(o.code, exit::OK, "{}{}", o.stdout, o.stderr);

    let addr = spawn(Fault::PongWrongPayload).await;
    let url = format!("ws://{addr}/");
    let mut args = vec![
        "run",
        "-q",
        "--ws",
        &url,
        "--json",
        bad.to_str().unwrap(),
        "--html",
        bad_html.to_str().unwrap(),
    ];
    args.extend(EXAMPLE_PATTERNS);
    let o = pushspec(&args).await;
    assert_eq!(o.code, exit::FAILED, "{}{}", o.stdout, o.stderr);
    (good, bad, bad_html)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_and_broken_fixture_make_one_matrix() {
    let dir = temp_dir("matrix");
    let (good, bad, bad_html) = reference_and_broken(&dir).await;
    let (html, md) = (dir.join("r.html"), dir.join("r.md"));
    let o = pushspec(&[
        "report",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);
    let page = read(&html);
    let report: serde_json::Value = serde_json::from_str(&read(&bad)).unwrap();
    let cases = report["cases"].as_array().unwrap();
    let failing: Vec<&str> = cases
        .iter()
        .filter(|c| c["outcome"] == "fail")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(!failing.is_empty(), "the fixture fails some cases");

    // A card and a column per target, the embedded server named as such.
    assert_eq!(count(&page, r#"<article class="card""#), 2);
    assert!(page.contains("<h3>embedded reference server</h3>"));
    assert!(page.contains(&format!(
        "<th scope=\"col\">{}</th>",
        report["targets"]["ws"].as_str().unwrap()
    )));
    assert!(page.contains("<dt>transport</dt><dd>http/1.1</dd>"));
    // A group per family with its counts, a row per case, a cell per target.
    for f in EXAMPLE_PATTERNS {
        assert!(
            page.contains(&format!(r#"<tbody data-family="{f}">"#)),
            "{f}"
        );
    }
    assert_eq!(count(&page, "<tr data-id="), cases.len());
    assert_eq!(
        count(&page, "<button type=\"button\" data-r="),
        2 * cases.len()
    );
    assert_eq!(
        count(&page, r#"<td class="o o-fail" data-o="fail">"#),
        failing.len()
    );
    // Every cell's detail travels in the data block, with transcripts of
    // the failures and the requirement from the case file.
    let data = page_data(&page);
    assert_eq!(data["rows"].as_array().unwrap().len(), cases.len());
    let row = data["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == failing[0])
        .unwrap();
    let cell = &row["cells"][1];
    assert_eq!(cell["outcome"], "fail");
    assert!(!cell["transcript"].as_array().unwrap().is_empty());
    assert!(cell["requirement"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(row["cells"][0]["outcome"], "pass");

    // The run's own page is the same page for that one report.
    let run_page = read(&bad_html);
    assert_eq!(count(&run_page, "<tr data-id="), cases.len());
    assert_eq!(count(&run_page, r#"<article class="card""#), 1);

    // The Markdown summary: totals per target, findings, failing ids.
    let md = read(&md);
    assert!(md.starts_with("## pushspec: 2 targets\n"), "{md}");
    assert!(md.contains("| verdict | **PASSED** | **FAILED ("), "{md}");
    assert!(md.contains("- **fail** ("), "{md}");
    for id in &failing {
        assert!(md.contains(&format!("- `{id}` (fail): ")), "{id}\n{md}");
    }

    if std::env::var_os("PUSHSPEC_WRITE_EXAMPLE").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        // File names as a reader would have typed them.
        let local = |s: &str| s.replace(&format!("{}/", dir.display()), "");
        std::fs::write(docs.join("report-example.html"), local(&page)).unwrap();
        std::fs::write(docs.join("report-example.md"), local(&md)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_report_text_stays_text() {
    let dir = temp_dir("hostile");
    let (html, md) = (dir.join("h.html"), dir.join("h.md"));
    let o = pushspec(&[
        "report",
        &fixture("hostile.json"),
        "--html",
        html.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);
    let page = read(&html);
    // The page's own three scripts and nothing else; no tag from the report.
    assert_eq!(count(&page, "<script"), 3, "{page}");
    assert_eq!(count(&page, "</script>"), 3);
    for tag in ["<img", "<iframe", "<b>chat", "<i>gets", "<!--"] {
        assert!(!page.contains(tag), "{tag} leaked into the page");
    }
    assert!(page.contains("ws://127.0.0.1:9555/&lt;b&gt;chat&lt;/b&gt;"));
    assert!(
        page.contains("script-src 'nonce-"),
        "a CSP keeps anything else from running"
    );
    let data = page_data(&page);
    let text = data["rows"][0]["cells"][0]["transcript"][1][2]
        .as_str()
        .unwrap();
    assert!(
        text.starts_with("pong \"</script><script>"),
        "the data keeps the bytes: {text}"
    );

    // Every outcome is labelled in text, unknown ones too.
    for o in [
        "fail",
        "pass",
        "non-strict",
        "error",
        "xfail",
        "xpass",
        "info",
        "unsupported",
    ] {
        assert!(page.contains(&format!(r#"data-o="{o}">"#)), "{o}");
    }
    assert!(page.contains(r#"<td class="o" data-o="brand-new-outcome">"#));
    // Flaky, stale known-failing entries, capabilities.
    assert!(page.contains("<dt>flaky</dt><dd>ws.close.flaky-one</dd>"));
    assert!(page.contains("ws.gone.* (line 3): matches no case"));
    assert!(page.contains("deflate (detected)"));

    let md = read(&md);
    assert!(!md.contains('<') || !md.contains("<img"), "{md}");
    assert!(!md.contains("<script") && !md.contains("<b>"), "{md}");
    assert!(
        md.contains("\\*\\*bold\\*\\*") && md.contains("\\| pipe"),
        "{md}"
    );
    assert!(
        md.contains("now passing, remove from the list: `ws.close.fixed`"),
        "{md}"
    );
    assert!(
        md.contains("entry `ws.gone.*` (line 3) matches no case"),
        "{md}"
    );
    assert!(
        md.contains("1 known failure still failing as listed"),
        "{md}"
    );
    assert!(
        md.contains("Flaky (failed, then passed alone): `ws.close.flaky-one`"),
        "{md}"
    );
    assert!(
        md.contains("| brand\\-new\\-outcome |") || md.contains("| brand-new-outcome |"),
        "{md}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_one_target_show_what_changed() {
    // Given newest first: the order comes from started_at.
    let o = pushspec(&["report", &fixture("after.json"), &fixture("before.json")]).await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);
    let md = o.stdout;
    assert!(md.starts_with("## pushspec: FAILED (1 fail)\n"), "{md}");
    assert!(md.contains("### What changed"), "{md}");
    let newly_failing = md.find("- newly failing (1):").expect("newly failing");
    let newly_passing = md.find("- newly passing (1):").expect("newly passing");
    let other = md.find("- other changes (1):").expect("other");
    assert!(
        newly_failing < newly_passing && newly_passing < other,
        "{md}"
    );
    assert!(
        md.contains("  - `ws.framing.text-126` pass → fail: length written in 64 bits"),
        "{md}"
    );
    assert!(
        md.contains("  - `ws.framing.text-125` fail → pass: "),
        "{md}"
    );
    assert!(
        md.contains("  - `ws.framing.removed-later` pass → absent: "),
        "{md}"
    );

    let dir = temp_dir("changed");
    let html = dir.join("c.html");
    let o = pushspec(&[
        "report",
        &fixture("after.json"),
        &fixture("before.json"),
        "--html",
        html.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::OK);
    assert!(o.stdout.is_empty(), "--html alone writes no Markdown");
    let page = read(&html);
    // One column (the latest run), and the change list.
    assert_eq!(count(&page, r#"<article class="card""#), 1);
    assert!(page.contains("<dt>earlier runs</dt><dd>1</dd>"));
    assert!(page.contains(r#"<section id="changes""#));
    assert!(page.contains("<h4>newly failing (1)</h4>"));
    assert!(page.contains("<h4>newly passing (1)</h4>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_become_tables_and_a_plot() {
    let dir = temp_dir("bench");
    let html = dir.join("b.html");
    let o = pushspec(&[
        "report",
        &fixture("bench.json"),
        &fixture("bench-sse.json"),
        &fixture("before.json"),
        "--html",
        html.to_str().unwrap(),
        "--markdown",
        "-",
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);
    let page = read(&html);
    assert!(page.contains(r#"<section id="bench""#));
    assert_eq!(count(&page, "<polyline "), 2, "a line per bench run");
    assert_eq!(count(&page, "<circle "), 10, "five percentiles each");
    assert!(page.contains("<td>50000</td>") && page.contains("<td>12000</td>"));
    assert!(page.contains("delivered 49990"));
    assert!(page.contains("events?&lt;x&gt;"));
    assert!(!page.contains("events?<x>"));
    assert!(o.stdout.contains("### Benchmarks"), "{}", o.stdout);
    assert!(
        o.stdout.contains("| ws\\-echo |") || o.stdout.contains("| ws-echo |"),
        "{}",
        o.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_and_destinations_are_exit_2() {
    let dir = temp_dir("bad");
    let html = dir.join("never.html");
    let not_json = dir.join("not.json");
    std::fs::write(&not_json, "<html>").unwrap();
    let cases: [(Vec<String>, &str); 6] = [
        (
            vec![fixture("schema-v99.json")],
            "schema_version 99 is not supported",
        ),
        (
            vec![dir.join("missing.json").display().to_string()],
            "cannot read",
        ),
        (vec![not_json.display().to_string()], "not JSON"),
        (
            vec![
                fixture("after.json"),
                fixture("bench.json"),
                fixture("schema-v99.json"),
            ],
            "schema-v99.json",
        ),
        (
            vec![
                fixture("after.json"),
                "--html".into(),
                "-".into(),
                "--markdown".into(),
                "-".into(),
            ],
            "--html and --markdown cannot both write to standard output",
        ),
        (
            vec![
                fixture("after.json"),
                "--html".into(),
                dir.join("x").display().to_string(),
                "--markdown".into(),
                dir.join("x").display().to_string(),
            ],
            "both name",
        ),
    ];
    for (args, says) in cases {
        let mut a = vec!["report", "--html", html.to_str().unwrap()];
        if args.iter().any(|x| x == "--html") {
            a.truncate(1);
        }
        a.extend(args.iter().map(String::as_str));
        let o = pushspec(&a).await;
        assert_eq!(o.code, exit::USAGE, "{a:?}: {}", o.stderr);
        assert!(o.stderr.contains(says), "{a:?}: {}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
        assert!(!html.exists(), "nothing is written after a bad input");
    }

    // `run --html` destinations are checked before any case runs.
    let t = Instant::now();
    for args in [
        vec!["run", "--html", "/nonexistent-dir/r.html"],
        vec!["run", "--html", "-", "--json", "-"],
        vec!["run", "--html", "same.html", "--junit", "same.html"],
    ] {
        let o = pushspec(&args).await;
        assert_eq!(o.code, exit::USAGE, "{args:?}: {}", o.stderr);
        assert!(o.stdout.is_empty(), "{args:?}: nothing ran");
    }
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_run_still_writes_the_page() {
    // Accepts TCP and never answers: no handshake, the cases that need
    // one are not run, and the reports are still written.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let dir = temp_dir("partial");
    let html = dir.join("p.html");
    let o = pushspec(&[
        "run",
        "--ws",
        &format!("ws://{addr}/"),
        "ws.control",
        "--timeout",
        "200ms",
        "--html",
        html.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::UNREACHABLE, "{}", o.stderr);
    let page = read(&html);
    assert!(page.contains(r#"<td class="o o-not-run" data-o="not-run">"#));
    assert!(page.contains("NOT TESTED"));
}

/// Chromium from the OS, or `PUSHSPEC_CHROMIUM`.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PUSHSPEC_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
    .find(|p| p.is_file())
}

/// What Chromium made of `page#selftest`: the DOM once the page's script ran.
fn browse(browser: &Path, page: &Path, scratch: &Path) -> String {
    let profile = scratch.join(format!("profile-{}", fastrand::u64(..)));
    let dom = scratch.join(format!("dom-{}.html", fastrand::u64(..)));
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}#selftest", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match child.try_wait().expect("chromium can be waited for") {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within 90 s");
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let _ = std::fs::remove_dir_all(&profile);
    read(&dom)
}

/// The self-test's verdict in a dumped DOM, or why there is none.
fn selftest_verdict(dom: &str) -> Result<String, String> {
    let errors = dom
        .find(r#"<pre id="script-errors""#)
        .map(|i| &dom[i..])
        .and_then(|s| Some(&s[s.find('>')? + 1..s.find("</pre>")?]))
        .unwrap_or("");
    if !errors.is_empty() {
        return Err(format!("script errors: {errors}"));
    }
    let Some(i) = dom.find(r#"<output id="selftest" data-status=""#) else {
        return Err("no selftest verdict in the page (did the script run?)".into());
    };
    let s = &dom[i..];
    let verdict = &s[s.find('>').unwrap() + 1..s.find("</output>").unwrap()];
    if s.starts_with(r#"<output id="selftest" data-status="pass">"#) {
        Ok(verdict.to_string())
    } else {
        Err(verdict.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_work_in_a_headless_browser() {
    let Some(browser) = chromium() else {
        if std::env::var_os("PUSHSPEC_SKIP_BROWSER").is_some_and(|v| v == "1") {
            eprintln!("skipped: no chromium and PUSHSPEC_SKIP_BROWSER=1");
            return;
        }
        panic!(
            "no chromium found: install it (apt-get install chromium), name it in PUSHSPEC_CHROMIUM, or set PUSHSPEC_SKIP_BROWSER=1 to skip this test"
        );
    };
    let dir = temp_dir("browser");
    let (good, bad, bad_html) = reference_and_broken(&dir).await;
    let all = dir.join("all.html");
    let o = pushspec(&[
        "report",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
        &fixture("hostile.json"),
        &fixture("before.json"),
        &fixture("after.json"),
        &fixture("bench.json"),
        &fixture("bench-sse.json"),
        "--html",
        all.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.code, exit::OK, "{}", o.stderr);

    for page in [&all, &bad_html] {
        let dom = browse(&browser, page, &dir);
        match selftest_verdict(&dom) {
            Ok(v) => eprintln!("{}: {v}", page.display()),
            Err(why) => panic!("{}: {why}", page.display()),
        }
        // The hostile transcript was opened and stayed text.
        assert!(
            dom.contains("<title>pushspec"),
            "the title is the page's own"
        );
        assert!(
            !dom.contains("<img src=\"x\""),
            "no element from report text"
        );
    }

    // The check can fail: a page whose script throws, and one whose
    // filter is broken, do not pass.
    let page = read(&all);
    let throwing = dir.join("throwing.html");
    std::fs::write(
        &throwing,
        page.replacen("\"use strict\";", "\"use strict\"; undefinedThing();", 1),
    )
    .unwrap();
    let dom = browse(&browser, &throwing, &dir);
    let why = selftest_verdict(&dom).expect_err("a throwing page fails");
    assert!(why.contains("undefinedThing"), "{why}");
    let broken = dir.join("broken-filter.html");
    std::fs::write(
        &broken,
        page.replacen("tr.hidden = !ok;", "tr.hidden = false;", 1),
    )
    .unwrap();
    let dom = browse(&browser, &broken, &dir);
    let why = selftest_verdict(&dom).expect_err("a page whose filter does nothing fails");
    assert!(why.contains("outcome filter"), "{why}");
}
