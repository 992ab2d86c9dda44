//! Every SSE case family is proven both ways: it passes on a correct server
//! and fails on a deliberately broken one.
//!
//! The fixture in `support/broken_sse.rs` is a small raw-TCP SSE server that
//! follows the pushspec target contract except for one injected [`Fault`].
//! For each fault the families it concerns are run in-process through the
//! library, and the outcome of every case is checked: the cases that check
//! the broken rule must fail (`fail` for `must` cases, `non-strict` for
//! `should` ones), every other case must still pass, so the failure comes
//! from the fault and not from a fixture bug. With [`Fault::None`] every
//! case of every family passes, keep-alive included (the fixture sends a
//! keep-alive every 200 ms; the profile asks for one per second).
//!
//! The `finish` case ends the fixture's streams for good, so it runs last,
//! after the others.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pushspec::case::{Capability, Case, Dur, Level};
use pushspec::engine::{Targets, run_case};
use pushspec::outcome::{CaseResult, Outcome};
use pushspec::profile::{Capabilities, Profile, SseProfile};
use pushspec::settings::Settings;
use pushspec::sse::run::SseTarget;
use support::broken_sse::{Fault, seed, spawn};
use tokio::sync::Semaphore;

const RESPONSE: &str = "sse.response";
const FRAMING: &str = "sse.framing";
const DATA: &str = "sse.data";
const DELIVERY: &str = "sse.delivery";
const REPLAY: &str = "sse.replay";
const KEEPALIVE: &str = "sse.keepalive";
const ALL: [&str; 6] = [RESPONSE, FRAMING, DATA, DELIVERY, REPLAY, KEEPALIVE];

const FINISH_CASE: &str = "sse.framing.finish";

fn settings() -> Settings {
    Settings {
        timeout: Duration::from_secs(2),
        max_message: 64 << 20,
    }
}

/// For hostile fixtures: nothing to wait for, so fail fast.
fn hostile_settings() -> Settings {
    Settings {
        timeout: Duration::from_millis(500),
        ..settings()
    }
}

fn caps() -> Capabilities {
    Capabilities {
        profile: Profile {
            sse: SseProfile {
                replay: Some(true),
                finish: Some("/finish".into()),
                id_header: Some("Event-Id".into()),
                keepalive: Some(Dur(Duration::from_secs(1))),
                ..SseProfile::default()
            },
            ..Profile::default()
        },
        publish: true,
        skip_timing: false,
    }
}

fn in_family(case: &Case, family: &str) -> bool {
    case.id
        .strip_prefix(family)
        .is_some_and(|rest| rest.starts_with('.'))
}

fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        pushspec::case::file::load_embedded()
            .expect("embedded cases load")
            .into_iter()
            .filter(|c| c.id.starts_with("sse."))
            .collect()
    })
}

/// Starts the fixture with `fault` and runs the cases of `families` (or
/// only those listed in `only`) against it: all at once, then the finish
/// case. Results by case id.
async fn run_cases(
    fault: Fault,
    families: &[&str],
    only: Option<&[&str]>,
    settings: Settings,
) -> BTreeMap<String, CaseResult> {
    run_cases_caps(fault, families, only, settings, caps()).await
}

/// [`run_cases`] with a profile of the test's own.
async fn run_cases_with(
    fault: Fault,
    families: &[&str],
    settings: Settings,
    caps: Capabilities,
) -> BTreeMap<String, CaseResult> {
    run_cases_caps(fault, families, None, settings, caps).await
}

async fn run_cases_caps(
    fault: Fault,
    families: &[&str],
    only: Option<&[&str]>,
    settings: Settings,
    caps: Capabilities,
) -> BTreeMap<String, CaseResult> {
    let addr = spawn(fault).await;
    if !matches!(fault, Fault::NeverAnswers | Fault::GarbageHead) {
        seed(addr).await;
    }
    let targets = Arc::new(Targets {
        ws: None,
        sse: Some(SseTarget {
            stream: pushspec::target::parse_http(&format!("http://{addr}/events")).unwrap(),
            publish: Some(pushspec::target::parse_http(&format!("http://{addr}/publish")).unwrap()),
        }),
    });
    let caps = Arc::new(caps);
    let chosen: Vec<&'static Case> = cases()
        .iter()
        .filter(|c| families.iter().any(|f| in_family(c, f)))
        .filter(|c| only.is_none_or(|o| o.contains(&c.id.as_str())))
        .collect();
    let sem = Arc::new(Semaphore::new(8));
    let mut tasks = Vec::new();
    let mut finish = None;
    for case in chosen {
        if case.id == FINISH_CASE {
            finish = Some(case);
            continue;
        }
        let (targets, caps, sem) = (targets.clone(), caps.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            run_case(case, &targets, settings, &caps).await
        }));
    }
    let mut results = BTreeMap::new();
    for t in tasks {
        let r = t.await.expect("case task panicked");
        results.insert(r.id.clone(), r);
    }
    if let Some(case) = finish {
        let r = run_case(case, &targets, settings, &caps).await;
        results.insert(r.id.clone(), r);
    }
    for f in families.iter().filter(|_| only.is_none()) {
        assert!(
            results.keys().any(|id| id.starts_with(&format!("{f}."))),
            "no case of family {f} was run"
        );
    }
    results
}

fn passing(level: Level) -> Outcome {
    match level {
        Level::Info => Outcome::Info,
        Level::Must | Level::Should => Outcome::Pass,
    }
}

fn failing(level: Level) -> Outcome {
    match level {
        Level::Must => Outcome::Fail,
        Level::Should => Outcome::NonStrict,
        Level::Info => Outcome::Info,
    }
}

fn describe(r: &CaseResult) -> String {
    format!(
        "{} -> {}: {} (expected: {}; actual: {})",
        r.id,
        r.outcome,
        r.reason,
        r.expected.as_deref().unwrap_or("-"),
        r.actual.as_deref().unwrap_or("-").replace('\n', " | "),
    )
}

/// Runs `families` against the fixture with `fault` and requires exactly
/// the cases in `must_fail` to fail, every other one to pass.
async fn prove(fault: Fault, families: &[&str], must_fail: &[&str]) {
    assert!(
        matches!(fault, Fault::None | Fault::SplitCrlf) || !must_fail.is_empty(),
        "a fault test must expect at least one failure"
    );
    let start = Instant::now();
    let results = run_cases(fault, families, None, settings()).await;
    let mut problems = Vec::new();
    for id in must_fail {
        match results.get(*id) {
            None => problems.push(format!("{id}: no such case in {families:?}")),
            Some(r) if r.outcome != failing(r.level) => {
                problems.push(format!("should fail but did not: {}", describe(r)));
            }
            Some(_) => {}
        }
    }
    for (id, r) in &results {
        if !must_fail.contains(&id.as_str()) && r.outcome != passing(r.level) {
            problems.push(format!("should pass but did not: {}", describe(r)));
        }
    }
    assert!(
        problems.is_empty(),
        "Fault::{fault:?} on {families:?}: {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
    eprintln!(
        "Fault::{fault:?}: {} cases in {:?}",
        results.len(),
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------
// The fixture itself is correct: every family passes, keep-alive and the
// gzip-compressed stream included.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fixture_passes_every_sse_family() {
    prove(Fault::None, &ALL, &[]).await;
}

// ---------------------------------------------------------------------------
// sse.response

const ACCEPT_CASES: [&str; 3] = [
    "sse.response.accept-none",
    "sse.response.accept-any",
    "sse.response.accept-event-stream",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_type_fails_sse_response() {
    let mut fail = vec![
        "sse.response.content-type",
        "sse.response.compressed-events-arrive-promptly",
    ];
    fail.extend(ACCEPT_CASES);
    prove(Fault::WrongContentType, &[RESPONSE], &fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_accept_any_fails_sse_response() {
    prove(
        Fault::NotAcceptableForAny,
        &[RESPONSE],
        &["sse.response.accept-any"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_back_headers_fail_sse_response() {
    prove(
        Fault::HeadersOnFirstEvent,
        &[RESPONSE],
        &["sse.response.headers-before-first-event"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_fails_sse_response() {
    prove(
        Fault::ContentLength,
        &[RESPONSE],
        &["sse.response.no-content-length"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cacheable_stream_fails_sse_response() {
    prove(
        Fault::Cacheable,
        &[RESPONSE],
        &["sse.response.not-cacheable"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_without_flush_fails_sse_response() {
    prove(
        Fault::GzipBuffered,
        &[RESPONSE],
        &["sse.response.compressed-events-arrive-promptly"],
    )
    .await;
}

// ---------------------------------------------------------------------------
// sse.framing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latin1_fails_sse_framing_and_data() {
    prove(
        Fault::Latin1,
        &[FRAMING, DATA],
        &[
            "sse.framing.utf8",
            "sse.data.non-ascii",
            // Characters beyond Latin-1 become `?`; NEL is invalid UTF-8.
            "sse.data.line-like-ls",
            "sse.data.line-like-ps",
            "sse.data.line-like-nel",
            "sse.data.line-like-all",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bom_mid_stream_fails_sse_framing() {
    prove(Fault::BomMidStream, &[FRAMING], &["sse.framing.bom"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miscased_field_fails_sse_framing() {
    prove(
        Fault::MiscasedField,
        &[FRAMING],
        &["sse.framing.field-case"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_field_fails_sse_framing() {
    prove(
        Fault::UnknownField,
        &[FRAMING],
        &["sse.framing.unknown-fields"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_with_nul_fails_sse_framing() {
    prove(Fault::IdWithNul, &[FRAMING], &["sse.framing.id-nul"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fractional_retry_fails_sse_framing() {
    prove(Fault::RetryFraction, &[FRAMING], &["sse.framing.retry"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cr_line_endings_fail_sse_framing() {
    prove(
        Fault::CrLineEndings,
        &[FRAMING],
        &["sse.framing.line-endings"],
    )
    .await;
}

/// A CRLF split across chunks 120 ms apart is legal CRLF: the framing
/// check judges only what a complete parse has seen, so every case passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crlf_split_across_delayed_chunks_passes_every_sse_family() {
    prove(Fault::SplitCrlf, &ALL, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_last_event_fails_sse_framing() {
    prove(Fault::IncompleteLastEvent, &[FRAMING], &[FINISH_CASE]).await;
}

// ---------------------------------------------------------------------------
// sse.data

/// Every data case whose payload has a line ending inside or at the end.
const MULTILINE_DATA: [&str; 17] = [
    "sse.data.line-like-all",
    "sse.data.lf",
    "sse.data.cr",
    "sse.data.crlf",
    "sse.data.mixed-endings",
    "sse.data.trailing-lf",
    "sse.data.trailing-cr",
    "sse.data.only-lf",
    "sse.data.blank-lines",
    "sse.data.line-leading-space",
    "sse.data.line-leading-colon",
    "sse.data.injection-event-lf",
    "sse.data.injection-event-cr",
    "sse.data.injection-id-cr",
    "sse.data.injection-retry-lf",
    "sse.data.injection-new-event-crlf",
    "sse.data.injection-new-event-lf",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_newline_in_data_fails_sse_data_and_framing() {
    let mut fail: Vec<&str> = MULTILINE_DATA.to_vec();
    // A raw CR inside a data line is also a lone-CR line ending on the wire.
    fail.extend(["sse.framing.colonless-lines", "sse.framing.line-endings"]);
    prove(Fault::RawNewlineInData, &[DATA, FRAMING], &fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsplit_cr_fails_sse_data() {
    prove(
        Fault::CrNotSplit,
        &[DATA, FRAMING],
        &[
            "sse.data.cr",
            "sse.data.mixed-endings",
            "sse.data.trailing-cr",
            "sse.data.injection-event-cr",
            "sse.data.injection-id-cr",
            "sse.data.line-like-all",
            "sse.framing.colonless-lines",
            // The unsplit CR is a lone-CR line ending on the wire.
            "sse.framing.line-endings",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splitting_on_unicode_line_ends_fails_sse_data() {
    let fail: Vec<&str> = cases()
        .iter()
        .filter(|c| c.id.starts_with("sse.data.line-like-"))
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(fail.len(), 9);
    prove(Fault::SplitsUnicodeLines, &[DATA], &fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_space_after_colon_fails_sse_data() {
    prove(
        Fault::NoSpaceAfterColon,
        &[DATA],
        &[
            "sse.data.leading-space",
            "sse.data.leading-spaces",
            "sse.data.line-leading-space",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_trailing_newline_fails_sse_data() {
    prove(
        Fault::DropsTrailingNewline,
        &[DATA],
        &[
            "sse.data.trailing-lf",
            "sse.data.trailing-cr",
            "sse.data.only-lf",
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------
// sse.delivery

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_behind_buffering_fails_sse_delivery() {
    prove_slow(
        Fault::OneBehind,
        &[DELIVERY, RESPONSE],
        &[
            "sse.delivery.prompt",
            "sse.response.compressed-events-arrive-promptly",
        ],
    )
    .await;
}

/// Events written in batches 300 ms apart: every case that publishes
/// reports the latency (`non-strict`, confirmed by probes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_output_is_reported_as_slow_delivery() {
    prove_slow(Fault::BatchesOutput, &[DATA, DELIVERY], &[]).await;
}

/// A fault that holds events back: each case in `timing` fails its own
/// time bound; every other case that publishes is `non-strict` with the
/// delivery-latency finding (confirmed by probes); the rest pass.
async fn prove_slow(fault: Fault, families: &[&str], timing: &[&str]) {
    let results = run_cases(fault, families, None, settings()).await;
    let mut problems = Vec::new();
    for (id, r) in &results {
        // Concurrent (bulk) publishes are not timed: that case passes.
        let publishes = cases()
            .iter()
            .any(|c| &c.id == id && c.requires.contains(&Capability::Publish))
            && id != "sse.delivery.concurrent-publishers";
        let ok = if timing.contains(&id.as_str()) {
            r.outcome == failing(r.level)
        } else if publishes {
            r.outcome == Outcome::NonStrict && r.reason.contains("probe event was slow")
        } else {
            r.outcome == passing(r.level)
        };
        if !ok {
            problems.push(describe(r));
        }
    }
    assert!(
        problems.is_empty(),
        "Fault::{fault:?}:\n  {}",
        problems.join("\n  ")
    );
}

/// Concurrent events reach the streams in different orders; sequential
/// publishes (every other delivery case) are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_events_in_different_orders_fail_sse_delivery() {
    prove(
        Fault::ReordersConcurrent,
        &[DELIVERY],
        &["sse.delivery.concurrent-publishers"],
    )
    .await;
}

// ---------------------------------------------------------------------------
// sse.replay

/// The cases that replay events onto a resumed stream.
const RESUMING: [&str; 9] = [
    "sse.replay.resume-after-last",
    "sse.replay.resume-from-earlier",
    "sse.replay.non-ascii-id",
    "sse.replay.long-id",
    "sse.replay.punctuation-id",
    "sse.replay.long-history",
    "sse.replay.header-name-lowercase",
    "sse.replay.header-name-uppercase",
    "sse.replay.publish-while-reconnecting",
];

/// The cases that resume with an id the target never issued.
fn unknown_id_cases() -> Vec<&'static str> {
    cases()
        .iter()
        .filter(|c| c.id.starts_with("sse.replay.unknown-id"))
        .map(|c| c.id.as_str())
        .collect()
}

/// Every case that reads one of its events on a resumed stream.
fn resumed_with_events() -> Vec<&'static str> {
    let mut v = RESUMING.to_vec();
    v.push("sse.replay.nothing-missed");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_last_event_id_fails_sse_replay() {
    prove(Fault::IgnoresLastEventId, &[REPLAY], &RESUMING).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_on_resume_fails_sse_replay() {
    let mut fail = RESUMING.to_vec();
    fail.push("sse.replay.nothing-missed");
    prove(Fault::DuplicateOnResume, &[REPLAY], &fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_without_ids_fail_sse_replay() {
    let mut fail = RESUMING.to_vec();
    fail.extend(["sse.replay.ids-present", "sse.replay.nothing-missed"]);
    prove(Fault::NoIds, &[REPLAY], &fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_on_unknown_id_fails_sse_replay() {
    prove(Fault::UnknownIdIs500, &[REPLAY], &unknown_id_cases()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_on_a_future_id_fails_sse_replay() {
    prove(
        Fault::FutureIdIs500,
        &[REPLAY],
        &["sse.replay.unknown-id-future"],
    )
    .await;
}

/// A stream opened with an id never issued may begin with one marker event;
/// replaying history for it (`0` and `-1` compared as numbers) is a finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_replayed_for_a_never_issued_id_fails_sse_replay() {
    prove(
        Fault::NumericResume,
        &[REPLAY],
        &[
            "sse.replay.unknown-id-zero",
            "sse.replay.unknown-id-negative",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_sensitive_header_name_fails_sse_replay() {
    prove(
        Fault::CaseSensitiveLastEventId,
        &[REPLAY],
        &[
            "sse.replay.header-name-lowercase",
            "sse.replay.header-name-uppercase",
        ],
    )
    .await;
}

/// Events published between the replay snapshot and the live subscription
/// are lost: only a publish while the client reconnects shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_between_replay_and_live_fails_sse_replay() {
    prove(
        Fault::SubscribeGap,
        &[REPLAY],
        &["sse.replay.publish-while-reconnecting"],
    )
    .await;
}

/// The history (seeded before the run) reaches every fresh stream: an
/// event nobody published in the case is a finding wherever it shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_to_fresh_streams_fails_sse_replay() {
    let fail: Vec<&str> = cases()
        .iter()
        .filter(|c| in_family(c, REPLAY) && !c.id.starts_with("sse.replay.unknown-id"))
        .map(|c| c.id.as_str())
        .collect();
    prove(Fault::ReplaysToFreshStreams, &[REPLAY], &fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_broken_only_on_resumed_streams_fails_the_resuming_cases() {
    let mut fail = resumed_with_events();
    // Their streams read a fence, so they are checked too.
    fail.extend(unknown_id_cases());
    prove(Fault::RetryFractionOnResume, &[REPLAY, FRAMING], &fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_event_sent_again_fails_the_resuming_cases() {
    prove(Fault::ReplaysOldEvent, &[REPLAY], &resumed_with_events()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_replay_fails_the_long_history() {
    prove(Fault::ReplayCapped, &[REPLAY], &["sse.replay.long-history"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renumbered_replays_fail_sse_replay() {
    prove(
        Fault::ReplayRenumbers,
        &[REPLAY],
        &["sse.replay.resume-from-earlier", "sse.replay.long-history"],
    )
    .await;
}

// ---------------------------------------------------------------------------
// sse.keepalive

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_keepalive_fails_sse_keepalive() {
    prove(
        Fault::NoKeepalive,
        &[KEEPALIVE],
        &["sse.keepalive.idle-stream", "sse.keepalive.after-events"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_keepalive_after_events_fails_sse_keepalive() {
    prove(
        Fault::NoKeepaliveAfterEvents,
        &[KEEPALIVE],
        &["sse.keepalive.after-events"],
    )
    .await;
}

/// Bytes that never stop but never make an event (issue 8, point 9): the
/// wait is not ended by the idle timeout (bytes keep coming) but by the
/// case budget, and the reason says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_without_events_ends_on_the_case_budget_and_says_so() {
    let results = run_cases(
        Fault::CommentFlood,
        &[DATA],
        Some(&["sse.data.plain"]),
        hostile_settings(),
    )
    .await;
    let r = &results["sse.data.plain"];
    assert_eq!(r.outcome, Outcome::Fail, "{}", describe(r));
    assert!(r.reason.contains("case budget"), "{}", describe(r));
    assert!(!r.reason.contains("nothing"), "{}", describe(r));
}

/// An event nobody published is a finding on every stream that reads it,
/// unless the profile declares its type (`sse.extra_event_types`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_welcome_event_fails_and_a_declared_one_does_not() {
    let undeclared = run_cases(Fault::WelcomeEvent, &[DATA], None, settings()).await;
    let failed: Vec<&CaseResult> = undeclared
        .values()
        .filter(|r| r.outcome == Outcome::Fail)
        .collect();
    assert!(!failed.is_empty(), "no case saw the welcome event");
    assert!(
        failed.iter().all(|r| r.reason.contains("never published")),
        "{:?}",
        failed.iter().map(|r| describe(r)).collect::<Vec<_>>()
    );
    let declared = run_cases_with(
        Fault::WelcomeEvent,
        &[DATA],
        settings(),
        Capabilities {
            profile: Profile {
                sse: SseProfile {
                    extra_event_types: Some(vec!["welcome".into()]),
                    ..caps().profile.sse
                },
                ..Profile::default()
            },
            ..caps()
        },
    )
    .await;
    for r in declared.values() {
        assert_eq!(r.outcome, passing(r.level), "{}", describe(r));
    }
}

/// A keep-alive sent as an event reaches the application as a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_sent_as_data_fails_sse_keepalive() {
    prove(
        Fault::KeepaliveAsData,
        &[KEEPALIVE],
        &["sse.keepalive.idle-stream", "sse.keepalive.after-events"],
    )
    .await;
}

// ---------------------------------------------------------------------------
// Hostile servers: every case touching the stream fails or errors, quickly,
// without a panic or a hang.

const HOSTILE_SAMPLE: [&str; 5] = [
    "sse.response.status-200",
    "sse.framing.utf8",
    "sse.data.plain",
    "sse.data.large-1mib",
    "sse.replay.resume-after-last",
];

/// Runs a sample of cases against a hostile fixture: each case in
/// `must_not_pass` fails (or errors); none panics or hangs.
async fn hostile(fault: Fault, must_not_pass: &[&str]) -> BTreeMap<String, CaseResult> {
    let start = Instant::now();
    let results = run_cases(fault, &ALL, Some(&HOSTILE_SAMPLE), hostile_settings()).await;
    assert_eq!(results.len(), HOSTILE_SAMPLE.len());
    for id in must_not_pass {
        let r = &results[*id];
        assert!(
            matches!(
                r.outcome,
                Outcome::Fail | Outcome::NonStrict | Outcome::Error
            ),
            "Fault::{fault:?}: {}",
            describe(r)
        );
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "Fault::{fault:?} took {took:?}"
    );
    eprintln!("Fault::{fault:?}: {took:?}");
    for r in results.values() {
        eprintln!("  {}", describe(r));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_without_hanging() {
    hostile(Fault::NeverAnswers, &HOSTILE_SAMPLE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_response_fails() {
    hostile(Fault::GarbageHead, &HOSTILE_SAMPLE).await;
}

/// A head trickled byte by byte ends at the head deadline, with that
/// reason, instead of costing every step a full wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_head_fails_at_the_head_deadline() {
    let results = hostile(Fault::TrickledHead, &HOSTILE_SAMPLE).await;
    for r in results.values() {
        assert!(r.reason.contains("head deadline"), "{}", describe(r));
        assert!(r.duration < Duration::from_secs(3), "{}", describe(r));
    }
}

/// A 200 response that is no event stream: every case that reads the
/// stream fails on that prerequisite, none passes on what it sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_the_wrong_content_type_passes_no_case_that_reads_it() {
    let fail: Vec<&str> = cases()
        .iter()
        .filter(|c| in_family(c, FRAMING) || in_family(c, REPLAY) || in_family(c, DATA))
        .map(|c| c.id.as_str())
        .collect();
    let results = run_cases(
        Fault::WrongContentType,
        &[FRAMING, REPLAY, DATA],
        None,
        settings(),
    )
    .await;
    for id in fail {
        let r = &results[id];
        assert_eq!(r.outcome, failing(r.level), "{}", describe(r));
        assert!(r.reason.contains("prerequisite"), "{}", describe(r));
    }
}

/// The head is valid, so only the cases reading the body fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_line_fails_without_exhausting_memory() {
    hostile(Fault::EndlessLine, &HOSTILE_SAMPLE[1..]).await;
}

/// Every event inherits the 1 MiB id: the harness must keep memory bounded
/// (it copies only events it keeps) and still judge the cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_id_inherited_by_a_flood_of_events_fails_without_exhausting_memory() {
    hostile(Fault::HugeIdFlood, &HOSTILE_SAMPLE[2..]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_chunk_size_fails() {
    hostile(Fault::ChunkSizeOverflow, &HOSTILE_SAMPLE[1..]).await;
}
