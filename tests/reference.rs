//! Every case passes against the reference server, and the transcript of
//! each is an insta snapshot so a change in engine or server shows up as a
//! reviewable diff.

use std::collections::BTreeMap;
use std::time::Duration;

use pushspec::case::file::load_embedded;
use pushspec::case::{Level, Protocol};
use pushspec::engine::{self, Plan, Targets};
use pushspec::outcome::{CaseResult, Outcome};
use pushspec::profile::{Capabilities, Profile};
use pushspec::report::console;
use pushspec::settings::Settings;
use pushspec::transcript::Dir;
use pushspec_reference_server::{Config, Server};

async fn run_all() -> Vec<CaseResult> {
    let server = Server::bind(([127, 0, 0, 1], 0).into(), Config::conformance())
        .await
        .expect("bind")
        .spawn_isolated()
        .expect("server thread");
    let addr = server.local_addr();
    let plan = Plan {
        // Client cases are served by `pushspec clients` (tests/clients.rs).
        cases: load_embedded()
            .expect("case files load")
            .into_iter()
            .filter(|c| c.protocol() != Protocol::ClientWs)
            .collect(),
        targets: Targets::reference(addr),
        settings: Settings {
            timeout: Duration::from_secs(5),
            max_message: 64 << 20,
        },
        capabilities: Capabilities {
            profile: Profile::reference(),
            publish: true,
            skip_timing: true,
        },
        known_failing: None,
        strict: true,
        jobs: 4,
        confirm: false,
        run_budget: None,
    };
    let results = engine::run(plan, |_| {}, std::future::pending())
        .await
        .results;
    drop(server);
    results
}

/// The transcript with what varies from run to run left out: timings, keys,
/// ports, dates, and the interleaving of the two directions (each direction
/// is listed in order on its own).
fn stable_transcript(r: &CaseResult) -> String {
    let mut out = String::new();
    for dir in [Dir::Out, Dir::In] {
        for e in r.transcript.iter().filter(|e| e.dir == dir) {
            for (i, line) in e.text.lines().enumerate() {
                if line.to_ascii_lowercase().starts_with("date:") {
                    continue;
                }
                out.push_str(if i == 0 { dir.arrow() } else { "  " });
                out.push(' ');
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_on_the_reference_server() {
    let results = run_all().await;
    assert!(!results.is_empty());
    let bad: Vec<&CaseResult> = results
        .iter()
        .filter(|r| match r.level {
            // `info` cases report what the server does, without a verdict.
            Level::Info => r.outcome != Outcome::Info && r.outcome != Outcome::Unsupported,
            _ => r.outcome != Outcome::Pass && r.outcome != Outcome::Unsupported,
        })
        .collect();
    if !bad.is_empty() {
        let owned: Vec<CaseResult> = bad.iter().map(|r| (*r).clone()).collect();
        let mut text = Vec::new();
        console::details(
            &mut text,
            &owned,
            console::Verbosity::Verbose,
            true,
            console::Style::default(),
        )
        .unwrap();
        let list: Vec<String> = bad
            .iter()
            .map(|r| format!("  {} -> {}: {}", r.id, r.outcome, r.reason))
            .collect();
        panic!(
            "{} cases did not pass on the reference server:\n{}\n{}",
            bad.len(),
            list.join("\n"),
            String::from_utf8_lossy(&text)
        );
    }

    let mut families: BTreeMap<&str, String> = BTreeMap::new();
    for r in &results {
        let text = families.entry(r.family.as_str()).or_default();
        text.push_str(&format!("=== {} [{}]\n", r.id, r.outcome));
        text.push_str(&stable_transcript(r));
        text.push('\n');
    }
    insta::with_settings!({
        filters => vec![
            (r"(?i)(sec-websocket-key: )[A-Za-z0-9+/=]+", "${1}[key]"),
            (r"(?i)(sec-websocket-accept: )[A-Za-z0-9+/=]+", "${1}[accept]"),
            (r"(?i)(host: )127\.0\.0\.1:\d+", "${1}127.0.0.1:[port]"),
            (r"masked\((?:[0-9a-f]{8})\)", "masked"),
        ],
        snapshot_path => "snapshots",
        prepend_module_to_snapshot => false,
    }, {
        for (family, text) in &families {
            insta::assert_snapshot!(family.replace('.', "_"), text);
        }
    });
}
