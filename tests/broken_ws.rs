//! Every WebSocket case family is proven both ways: it passes on a correct
//! server and fails on a deliberately broken one.
//!
//! The fixture in `support/broken_ws.rs` is a small raw-TCP echo server
//! that follows RFC 6455 except for one injected [`Fault`]. For each fault
//! the families it concerns are run in-process through the library, and
//! the outcome of every case is checked: the cases that check the broken
//! rule must fail, every other case must still pass (so the failure comes
//! from the fault, not from a fixture bug). With [`Fault::None`] every case
//! of every family passes (`info` cases report `info`, and a case needing
//! something the test's profile does not declare is `unsupported`).
//!
//! Some faults are judged against a profile: a limit the profile declares
//! turns the cases that hit it into `info`, and a `should` case that misses
//! its rule is `non-strict`; those tests list the ids for each outcome.
//!
//! The 8 and 16 MiB echo cases (`*-16777216`, `*-8mib`, `*-16mib`) are
//! skipped to keep this fast.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pushspec::case::{Case, Dur, Level};
use pushspec::engine::{Targets, run_case};
use pushspec::outcome::{CaseResult, Outcome};
use pushspec::profile::{Capabilities, Profile};
use pushspec::settings::Settings;
use support::broken_ws::{ALLOWED_ORIGIN, Fault, IDLE_CLOSE, spawn};
use tokio::sync::Semaphore;

const HANDSHAKE: &str = "ws.handshake";
const FRAMING: &str = "ws.framing";
const CONTROL: &str = "ws.control";
const RESERVED: &str = "ws.reserved";
const FRAGMENTATION: &str = "ws.fragmentation";
const UTF8: &str = "ws.utf8";
const CLOSE: &str = "ws.close";
const LIMITS: &str = "ws.limits";
const TIMING: &str = "ws.timing";
const ORIGIN: &str = "ws.origin";
const DEFLATE: &str = "ws.deflate";
const FAMILIES: [&str; 11] = [
    HANDSHAKE,
    ORIGIN,
    FRAMING,
    CONTROL,
    RESERVED,
    FRAGMENTATION,
    UTF8,
    CLOSE,
    LIMITS,
    TIMING,
    DEFLATE,
];

/// Cases run at once against one fixture: enough to finish in seconds,
/// few enough that a 500 ms timeout never fires on a loaded 2-core machine.
const CONCURRENCY: usize = 16;

fn settings() -> Settings {
    Settings {
        timeout: Duration::from_millis(500),
        max_message: 64 << 20,
    }
}

/// ws.limits and ws.deflate move tens of MiB per run (ws.deflate inflates
/// 32 MiB bombs): on a loaded 2-core machine an echo can take longer than
/// 500 ms to start.
fn settings_for(families: &[&str]) -> Settings {
    if families.contains(&LIMITS) || families.contains(&DEFLATE) {
        Settings {
            timeout: Duration::from_secs(2),
            ..settings()
        }
    } else {
        settings()
    }
}

fn in_family(case: &Case, family: &str) -> bool {
    case.id
        .strip_prefix(family)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// The embedded cases of the families, without the 16 MiB ones.
fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        pushspec::case::file::load_embedded()
            .expect("embedded cases load")
            .into_iter()
            .filter(|c| FAMILIES.iter().any(|f| in_family(c, f)))
            .filter(|c| {
                !c.id.contains("-16777216") && !c.id.ends_with("-16mib") && !c.id.ends_with("-8mib")
            })
            .collect()
    })
}

/// The profile every test declares unless it says otherwise: the fixture's
/// origin policy, timing cases on, no limits, no idle timeout.
fn caps() -> Capabilities {
    let mut profile = Profile::default();
    profile.ws.allowed_origins = Some(vec![ALLOWED_ORIGIN.to_string()]);
    profile.ws.subprotocols = Some(vec!["chat".to_string()]);
    Capabilities {
        profile,
        publish: false,
        skip_timing: false,
    }
}

/// Starts the fixture with `fault` and runs every case of `families`
/// against it, concurrently. Results by case id.
async fn run_families(
    fault: Fault,
    caps: &Capabilities,
    families: &[&str],
) -> BTreeMap<String, CaseResult> {
    run_some(fault, caps, families, &[]).await
}

/// [`run_families`] without the cases whose slug starts with one of `skip`.
async fn run_some(
    fault: Fault,
    caps: &Capabilities,
    families: &[&str],
    skip: &[&str],
) -> BTreeMap<String, CaseResult> {
    let addr = spawn(fault).await;
    let targets = Arc::new(Targets {
        ws: Some(pushspec::target::parse_ws(&format!("ws://{addr}/")).unwrap()),
        sse: None,
    });
    let caps = Arc::new(caps.clone());
    let settings = settings_for(families);
    let sem = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = Vec::new();
    for case in cases() {
        if !families.iter().any(|f| in_family(case, f)) {
            continue;
        }
        let slug = case.id.split_once('.').map_or("", |(_, r)| r);
        let slug = slug.split_once('.').map_or("", |(_, r)| r);
        if skip.iter().any(|p| slug.starts_with(p)) {
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
    for f in families {
        assert!(
            results.keys().any(|id| id.starts_with(&format!("{f}."))),
            "no case of family {f} was run"
        );
    }
    results
}

/// What a case that does not check the broken rule must report: pass
/// (`info` for info cases), or `unsupported` when it needs something the
/// profile does not declare.
fn passing(r: &CaseResult, caps: &Capabilities) -> bool {
    let case = cases()
        .iter()
        .find(|c| c.id == r.id)
        .expect("result of a known case");
    let wanted = match r.level {
        Level::Info => Outcome::Info,
        Level::Must | Level::Should => Outcome::Pass,
    };
    r.outcome == wanted
        || (r.outcome == Outcome::Unsupported
            && case.requires.iter().any(|c| caps.missing(*c).is_some()))
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

/// The outcomes a fault test expects besides "everything else passes".
#[derive(Default)]
struct Expect<'a> {
    fail: &'a [&'a str],
    non_strict: &'a [&'a str],
    info: &'a [&'a str],
    /// Slug prefixes of cases not run: slow ones the fault cannot affect.
    skip: &'a [&'a str],
}

/// Runs `families` against the fixture with `fault` and requires exactly
/// the cases in `must_fail` to fail, every other one to pass.
async fn prove(fault: Fault, families: &[&str], must_fail: &[&str]) {
    assert!(
        fault == Fault::None || !must_fail.is_empty(),
        "a fault test must expect at least one failure"
    );
    prove_with(
        fault,
        &caps(),
        families,
        Expect {
            fail: must_fail,
            ..Expect::default()
        },
    )
    .await;
}

/// [`prove`] with a profile and the ids expected to be `non-strict` or
/// `info` too.
async fn prove_with(fault: Fault, caps: &Capabilities, families: &[&str], expect: Expect<'_>) {
    let results = run_some(fault, caps, families, expect.skip).await;
    check(fault, families, &results, caps, &expect);
}

fn check(
    fault: Fault,
    families: &[&str],
    results: &BTreeMap<String, CaseResult>,
    caps: &Capabilities,
    expect: &Expect<'_>,
) {
    let mut problems = Vec::new();
    let lists = [
        (expect.fail, Outcome::Fail),
        (expect.non_strict, Outcome::NonStrict),
        (expect.info, Outcome::Info),
    ];
    for (ids, outcome) in lists {
        for id in ids {
            match results.get(*id) {
                None => problems.push(format!("{id}: no such case in {families:?}")),
                Some(r) if r.outcome != outcome => {
                    problems.push(format!("should be {outcome} but is not: {}", describe(r)));
                }
                Some(_) => {}
            }
        }
    }
    for (id, r) in results {
        let listed = lists.iter().any(|(ids, _)| ids.contains(&id.as_str()));
        if !listed && !passing(r, caps) {
            problems.push(format!("should pass but did not: {}", describe(r)));
        }
    }
    assert!(
        problems.is_empty(),
        "Fault::{fault:?} on {families:?}: {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// Ids of the cases of `family` whose slug starts with `prefix`.
fn ids(family: &str, prefix: &str) -> Vec<&'static str> {
    cases()
        .iter()
        .filter(|c| in_family(c, family))
        .filter(|c| c.id[family.len() + 1..].starts_with(prefix))
        .map(|c| c.id.as_str())
        .collect()
}

// ---------------------------------------------------------------------------
// The fixture itself is correct.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fixture_passes_ws_handshake() {
    prove(Fault::None, &[HANDSHAKE], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fixture_passes_ws_framing() {
    prove(Fault::None, &[FRAMING], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fixture_passes_ws_control() {
    prove(Fault::None, &[CONTROL], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fixture_passes_ws_reserved() {
    prove(Fault::None, &[RESERVED], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fixture_passes_ws_origin() {
    prove(Fault::None, &[ORIGIN], &[]).await;
}

/// Without `ws.allowed_origins` in the profile the origin cases do not apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_origin_is_unsupported_without_declared_origins() {
    let results = run_families(Fault::None, &Capabilities::default(), &[ORIGIN]).await;
    assert_eq!(results.len(), 3);
    for r in results.values() {
        assert_eq!(r.outcome, Outcome::Unsupported, "{}", describe(r));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fixture_passes_ws_fragmentation() {
    prove(Fault::None, &[FRAGMENTATION], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fixture_passes_ws_utf8() {
    prove(Fault::None, &[UTF8], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fixture_passes_ws_close() {
    prove(Fault::None, &[CLOSE], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fixture_passes_ws_limits() {
    prove(Fault::None, &[LIMITS], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fixture_passes_ws_timing() {
    prove(Fault::None, &[TIMING], &[]).await;
}

// ---------------------------------------------------------------------------
// ws.handshake

/// Every handshake case that expects a 101: each checks the whole upgrade
/// response (Accept, and no unoffered subprotocol).
const UPGRADING_HANDSHAKES: &[&str] = &[
    "ws.handshake.valid-upgrade",
    "ws.handshake.subprotocol-declared-selected",
    "ws.handshake.header-case-lowercase",
    "ws.handshake.header-case-uppercase",
    "ws.handshake.header-case-mixed-token",
    "ws.handshake.connection-token-list",
    "ws.handshake.split-1-byte-writes",
    "ws.handshake.split-7-byte-writes",
    "ws.handshake.split-64-byte-writes",
    "ws.handshake.subprotocol-not-offered",
    "ws.handshake.subprotocol-none-offered",
    "ws.handshake.extension-unknown-alone",
    "ws.handshake.extension-unknown-with-params",
    "ws.handshake.connection-split-lines",
    // These reconnect with the standard handshake after the oversized request.
    "ws.handshake.oversized-header-64kib-then-new-connection",
    "ws.handshake.oversized-header-1mib-then-new-connection",
];

/// The `should` handshake case expecting a 101: non-strict when it is invalid.
const UPGRADING_SHOULD: &[&str] = &["ws.handshake.upgrade-duplicate"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_accept_fails_ws_handshake() {
    prove_with(
        Fault::WrongAccept,
        &caps(),
        &[HANDSHAKE],
        Expect {
            fail: UPGRADING_HANDSHAKES,
            non_strict: UPGRADING_SHOULD,
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_subprotocols_fails_ws_handshake() {
    prove_with(
        Fault::IgnoresSubprotocols,
        &caps(),
        &[HANDSHAKE],
        Expect {
            fail: &["ws.handshake.subprotocol-declared-selected"],
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_the_version_fails_ws_handshake() {
    prove_with(
        Fault::IgnoresVersion,
        &caps(),
        &[HANDSHAKE],
        Expect {
            fail: &[
                "ws.handshake.version-12",
                "ws.handshake.version-14",
                "ws.handshake.version-99",
                "ws.handshake.version-missing",
                "ws.handshake.version-duplicate",
                "ws.handshake.version-conflicting",
            ],
            // Upgrading instead of answering 426 also misses the SHOULD.
            non_strict: &["ws.handshake.version-mismatch-426"],
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_a_bad_key_fails_ws_handshake() {
    prove(
        Fault::AcceptsBadKey,
        &[HANDSHAKE],
        &[
            "ws.handshake.key-missing",
            "ws.handshake.key-empty",
            "ws.handshake.key-not-base64",
            "ws.handshake.key-15-bytes",
            "ws.handshake.key-17-bytes",
            "ws.handshake.key-duplicate",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_a_connection_token_list_fails_ws_handshake() {
    prove(
        Fault::NoUpgradeTokenList,
        &[HANDSHAKE],
        &[
            "ws.handshake.connection-token-list",
            "ws.handshake.connection-split-lines",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selecting_an_unoffered_protocol_fails_ws_handshake() {
    // The fault answers `superchat` on every upgrade, so every case expecting a
    // 101 catches it, not only the two subprotocol cases.
    prove_with(
        Fault::SelectsUnofferedProtocol,
        &caps(),
        &[HANDSHAKE],
        Expect {
            fail: UPGRADING_HANDSHAKES,
            non_strict: UPGRADING_SHOULD,
            ..Expect::default()
        },
    )
    .await;
}

// ---------------------------------------------------------------------------
// ws.framing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncating_long_messages_fails_ws_framing() {
    prove(
        Fault::TruncatesLongMessages,
        &[FRAMING],
        &[
            "ws.framing.text-65536",
            "ws.framing.binary-65536",
            "ws.framing.text-65536-chops-of-997",
            "ws.framing.binary-65536-chops-of-997",
            "ws.framing.text-65536-chops-of-64",
            "ws.framing.binary-65536-chops-of-64",
            "ws.framing.server-length-text-65536",
            "ws.framing.server-length-binary-65536",
            "ws.framing.server-length-text-65537",
            "ws.framing.server-length-binary-65537",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_unmasked_frames_fails_ws_framing() {
    prove_with(
        Fault::AcceptsUnmasked,
        &caps(),
        &[FRAMING],
        Expect {
            fail: &[
                "ws.framing.unmasked-text",
                "ws.framing.unmasked-binary",
                "ws.framing.unmasked-ping",
                "ws.framing.unmasked-after-valid",
                "ws.framing.unmasked-empty-text",
                "ws.framing.unmasked-empty-binary",
                "ws.framing.unmasked-empty-ping",
                "ws.framing.unmasked-empty-pong",
                "ws.framing.unmasked-empty-continuation",
            ],
            non_strict: &["ws.framing.unmasked-empty-close"],
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masking_server_frames_fails_ws_framing() {
    // Every frame the server sends is masked, so every `must` case fails;
    // the `info` cases still only report.
    let mut fail = ids(FRAMING, "server-length-");
    fail.extend(ids(FRAMING, "unmasked-empty-"));
    assert_eq!(fail.len(), 16 + 3 + 6, "{fail:?}");
    fail.extend([
        "ws.framing.text-0",
        "ws.framing.binary-0",
        "ws.framing.text-125",
        "ws.framing.binary-125",
        "ws.framing.text-126",
        "ws.framing.binary-126",
        "ws.framing.text-127",
        "ws.framing.binary-127",
        "ws.framing.text-128",
        "ws.framing.binary-128",
        "ws.framing.text-65535",
        "ws.framing.binary-65535",
        "ws.framing.text-65536",
        "ws.framing.binary-65536",
        "ws.framing.text-125-chops-of-1",
        "ws.framing.binary-125-chops-of-1",
        "ws.framing.text-126-chops-of-1",
        "ws.framing.binary-126-chops-of-1",
        "ws.framing.text-65536-chops-of-997",
        "ws.framing.binary-65536-chops-of-997",
        "ws.framing.text-65536-chops-of-64",
        "ws.framing.binary-65536-chops-of-64",
        "ws.framing.binary-all-byte-values",
        "ws.framing.unmasked-text",
        "ws.framing.unmasked-binary",
        "ws.framing.unmasked-ping",
        "ws.framing.unmasked-after-valid",
        "ws.framing.length-top-bit-set",
    ]);
    prove(Fault::MasksServerFrames, &[FRAMING], &fail).await;
}

// ---------------------------------------------------------------------------
// ws.control

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pong_with_the_wrong_payload_fails_ws_control() {
    // ping-empty still passes: its pong is empty anyway.
    prove(
        Fault::PongWrongPayload,
        &[CONTROL],
        &[
            "ws.control.ping-text",
            "ws.control.ping-binary",
            "ws.control.ping-125-byte",
            "ws.control.ping-125-byte-chops-of-1",
            "ws.control.unsolicited-pong-then-ping",
            "ws.control.ten-pings",
            "ws.control.ten-pings-chops-of-1",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_a_long_ping_fails_ws_control() {
    prove(
        Fault::AcceptsLongPing,
        &[CONTROL],
        &["ws.control.ping-126-byte"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_fragmented_control_frames_fails_ws_control() {
    prove(
        Fault::AcceptsFragmentedControl,
        &[CONTROL],
        &["ws.control.fragmented-ping", "ws.control.fragmented-pong"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_unsolicited_pongs_fails_ws_control() {
    prove(
        Fault::AnswersUnsolicitedPong,
        &[CONTROL],
        &[
            "ws.control.unsolicited-pong-empty",
            "ws.control.unsolicited-pong-with-payload",
            "ws.control.unsolicited-pong-then-ping",
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------
// ws.reserved

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_rsv_bits_fails_ws_reserved() {
    prove(
        Fault::IgnoresRsv,
        &[RESERVED],
        &[
            "ws.reserved.rsv-1-text",
            "ws.reserved.rsv-2-text",
            "ws.reserved.rsv-3-text",
            "ws.reserved.rsv-4-text",
            "ws.reserved.rsv-5-text",
            "ws.reserved.rsv-6-text",
            "ws.reserved.rsv-7-text",
            "ws.reserved.rsv-1-binary",
            "ws.reserved.rsv-2-binary",
            "ws.reserved.rsv-3-binary",
            "ws.reserved.rsv-4-binary",
            "ws.reserved.rsv-5-binary",
            "ws.reserved.rsv-6-binary",
            "ws.reserved.rsv-7-binary",
            "ws.reserved.rsv-1-ping",
            "ws.reserved.rsv-2-ping",
            "ws.reserved.rsv-3-ping",
            "ws.reserved.rsv-4-ping",
            "ws.reserved.rsv-5-ping",
            "ws.reserved.rsv-6-ping",
            "ws.reserved.rsv-7-ping",
            "ws.reserved.rsv-1-close",
            "ws.reserved.rsv-4-close",
            "ws.reserved.rsv-7-close",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_reserved_opcodes_fails_ws_reserved() {
    prove(
        Fault::IgnoresReservedOpcode,
        &[RESERVED],
        &[
            "ws.reserved.opcode-3",
            "ws.reserved.opcode-4",
            "ws.reserved.opcode-5",
            "ws.reserved.opcode-6",
            "ws.reserved.opcode-7",
            "ws.reserved.opcode-11",
            "ws.reserved.opcode-12",
            "ws.reserved.opcode-13",
            "ws.reserved.opcode-14",
            "ws.reserved.opcode-15",
            "ws.reserved.opcode-3-alone",
            "ws.reserved.opcode-11-alone",
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------
// Across families: every case that expects the connection to be failed.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_close_code_fails_every_expect_fail() {
    let mut must_fail = vec![
        "ws.framing.unmasked-text",
        "ws.framing.unmasked-binary",
        "ws.framing.unmasked-ping",
        "ws.framing.unmasked-after-valid",
        "ws.framing.unmasked-empty-text",
        "ws.framing.unmasked-empty-binary",
        "ws.framing.unmasked-empty-ping",
        "ws.framing.unmasked-empty-pong",
        "ws.framing.unmasked-empty-close",
        "ws.framing.unmasked-empty-continuation",
        "ws.framing.length-top-bit-set",
        "ws.control.ping-126-byte",
        "ws.control.fragmented-ping",
        "ws.control.fragmented-pong",
    ];
    // Every ws.reserved case ends in `expect_fail = { codes = [1002] }`.
    let reserved: Vec<&str> = cases()
        .iter()
        .filter(|c| in_family(c, RESERVED))
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(reserved.len(), 36, "ws.reserved changed: {reserved:?}");
    must_fail.extend(reserved);
    prove(
        Fault::WrongCloseCode,
        &[FRAMING, CONTROL, RESERVED],
        &must_fail,
    )
    .await;
}

// ---------------------------------------------------------------------------
// ws.origin, and ws.handshake: extensions, duplicate headers, oversized heads

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_the_origin_fails_ws_origin() {
    prove(Fault::IgnoresOrigin, &[ORIGIN], &["ws.origin.disallowed"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_accept_fails_ws_origin() {
    prove(Fault::WrongAccept, &[ORIGIN], &["ws.origin.allowed"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoing_an_unknown_extension_fails_ws_handshake() {
    prove(
        Fault::EchoesUnknownExtension,
        &[HANDSHAKE],
        &[
            "ws.handshake.extension-unknown-alone",
            "ws.handshake.extension-unknown-with-params",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_duplicate_headers_fails_ws_handshake() {
    prove(
        Fault::IgnoresDuplicateHeaders,
        &[HANDSHAKE],
        &[
            "ws.handshake.version-duplicate",
            "ws.handshake.version-conflicting",
            "ws.handshake.host-duplicate",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_on_an_oversized_head_fails_ws_handshake() {
    prove(
        Fault::HangsOnOversizedHead,
        &[HANDSHAKE],
        &[
            "ws.handshake.oversized-header-64kib",
            "ws.handshake.oversized-header-1mib",
            "ws.handshake.oversized-header-64kib-then-new-connection",
            "ws.handshake.oversized-header-1mib-then-new-connection",
        ],
    )
    .await;
}

/// A crash takes the whole fixture down, so each oversized-head case gets a
/// fixture of its own: the request itself is "answered" (the connection
/// closes), but the follow-up connection is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_on_an_oversized_head_fails_the_follow_up_case() {
    let caps = caps();
    let mut results = BTreeMap::new();
    for id in ids(HANDSHAKE, "oversized-header-") {
        let case = cases().iter().find(|c| c.id == id).unwrap();
        let addr = spawn(Fault::CrashesOnOversizedHead).await;
        let targets = Targets {
            ws: Some(pushspec::target::parse_ws(&format!("ws://{addr}/")).unwrap()),
            sse: None,
        };
        let r = run_case(case, &targets, settings(), &caps).await;
        results.insert(r.id.clone(), r);
    }
    assert_eq!(results.len(), 4, "{:?}", results.keys());
    check(
        Fault::CrashesOnOversizedHead,
        &[HANDSHAKE],
        &results,
        &caps,
        &Expect {
            fail: &[
                "ws.handshake.oversized-header-64kib-then-new-connection",
                "ws.handshake.oversized-header-1mib-then-new-connection",
            ],
            ..Expect::default()
        },
    );
}

// ---------------------------------------------------------------------------
// ws.fragmentation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoing_fragments_separately_fails_ws_fragmentation() {
    prove(
        Fault::EchoesFragmentsSeparately,
        &[FRAGMENTATION],
        &[
            "ws.fragmentation.text-2-fragments-one-write",
            "ws.fragmentation.binary-2-fragments-one-write",
            "ws.fragmentation.text-2-fragments-octets",
            "ws.fragmentation.binary-2-fragments-octets",
            "ws.fragmentation.text-2-fragments-per-frame",
            "ws.fragmentation.binary-2-fragments-per-frame",
            "ws.fragmentation.ping-between-fragments-one-write",
            "ws.fragmentation.ping-between-fragments-octets",
            "ws.fragmentation.ping-between-fragments-per-frame",
            "ws.fragmentation.pings-between-5-fragments-with-pauses",
            "ws.fragmentation.unsolicited-pong-between-fragments",
            "ws.fragmentation.zero-length-all-empty",
            "ws.fragmentation.zero-length-first-empty",
            "ws.fragmentation.zero-length-middle-empty",
            "ws.fragmentation.zero-length-last-empty",
            "ws.fragmentation.text-100-fragments-of-1",
            "ws.fragmentation.binary-100-fragments-of-1",
            "ws.fragmentation.text-1000-fragments-of-16",
            "ws.fragmentation.binary-1000-fragments-of-16",
            // The first fragment comes back as a message before the failure.
            "ws.fragmentation.text-then-text-while-open",
            "ws.fragmentation.text-then-binary-while-open",
            "ws.fragmentation.binary-then-binary-while-open",
            "ws.fragmentation.binary-then-text-while-open",
            "ws.fragmentation.new-message-interleaved-unfinished",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_orphan_continuations_fails_ws_fragmentation() {
    prove(
        Fault::AcceptsOrphanContinuation,
        &[FRAGMENTATION],
        &[
            "ws.fragmentation.orphan-continuation-fin",
            "ws.fragmentation.orphan-continuation-no-fin",
            "ws.fragmentation.orphan-continuation-fin-octets",
            "ws.fragmentation.orphan-continuation-no-fin-octets",
            "ws.fragmentation.orphan-continuation-after-message",
            "ws.fragmentation.orphan-continuations-repeated",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_on_a_new_data_frame_fails_ws_fragmentation() {
    prove(
        Fault::RestartsOnNewDataFrame,
        &[FRAGMENTATION],
        &[
            "ws.fragmentation.text-then-text-while-open",
            "ws.fragmentation.text-then-binary-while-open",
            "ws.fragmentation.binary-then-binary-while-open",
            "ws.fragmentation.binary-then-text-while-open",
            "ws.fragmentation.new-message-interleaved-unfinished",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferring_pings_in_fragments_fails_ws_fragmentation() {
    prove(
        Fault::DefersPingsInFragments,
        &[FRAGMENTATION],
        &[
            "ws.fragmentation.ping-between-fragments-one-write",
            "ws.fragmentation.ping-between-fragments-octets",
            "ws.fragmentation.ping-between-fragments-per-frame",
            "ws.fragmentation.pings-between-5-fragments-with-pauses",
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------
// ws.utf8

/// Every ws.utf8 case in which the target must fail the connection.
fn utf8_must_fail() -> Vec<&'static str> {
    let mut v = ids(UTF8, "invalid-");
    v.extend(ids(UTF8, "incomplete-"));
    v.extend(ids(UTF8, "fail-fast-"));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_utf8_validation_fails_ws_utf8() {
    let must_fail = utf8_must_fail();
    assert_eq!(
        must_fail.len(),
        69 + 4 + 1 + 2 + 2 + 2 + 8 + 5 + 7,
        "ws.utf8 changed: {must_fail:?}"
    );
    prove(Fault::SkipsUtf8Validation, &[UTF8], &must_fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_invalid_utf8_with_1002_fails_ws_utf8() {
    prove(Fault::Utf8Fails1002, &[UTF8], &utf8_must_fail()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validating_each_frame_alone_fails_ws_utf8() {
    prove(
        Fault::ValidatesEachFrameAlone,
        &[UTF8],
        &[
            "ws.utf8.valid-greek-one-byte-per-frame",
            "ws.utf8.valid-one-to-four-bytes-one-byte-per-frame",
            "ws.utf8.valid-u10ffff-one-byte-per-frame",
            "ws.utf8.valid-fragmented-inside-code-points",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validating_utf8_only_at_message_end_is_non_strict_in_ws_utf8() {
    prove_with(
        Fault::ValidatesUtf8AtMessageEnd,
        &caps(),
        &[UTF8],
        Expect {
            non_strict: &[
                "ws.utf8.fail-fast-fragment-with-invalid-code-point",
                "ws.utf8.fail-fast-fragment-completing-invalid-sequence",
                "ws.utf8.fail-fast-in-one-frame-invalid-code-point",
                "ws.utf8.fail-fast-in-one-frame-completing-invalid-sequence",
            ],
            ..Expect::default()
        },
    )
    .await;
}

// ---------------------------------------------------------------------------
// ws.close

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoing_invalid_close_codes_fails_ws_close() {
    let must_fail: Vec<&str> = ids(CLOSE, "invalid-code-")
        .into_iter()
        .filter(|id| !id.ends_with("-5000") && !id.ends_with("-65535"))
        .collect();
    assert_eq!(must_fail.len(), 10, "{must_fail:?}");
    prove_with(
        Fault::EchoesInvalidCloseCodes,
        &caps(),
        &[CLOSE],
        Expect {
            fail: &must_fail,
            non_strict: &["ws.close.invalid-code-5000", "ws.close.invalid-code-65535"],
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_close_reason_utf8_fails_ws_close() {
    prove(
        Fault::IgnoresCloseReasonUtf8,
        &[CLOSE],
        &ids(CLOSE, "reason-invalid-utf8-"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_tcp_open_fails_ws_close() {
    prove(
        Fault::KeepsTcpOpen,
        &[CLOSE],
        &[
            "ws.close.text-after-close",
            "ws.close.ping-after-close",
            "ws.close.second-close-after-close",
            "ws.close.fragment-after-close",
            "ws.close.close-in-fragmented-message",
            "ws.close.tcp-closed-after-close-handshake",
            "ws.close.tcp-closed-after-failing",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_after_close_fails_ws_close() {
    prove(
        Fault::AnswersAfterClose,
        &[CLOSE],
        &[
            "ws.close.text-after-close",
            "ws.close.ping-after-close",
            "ws.close.second-close-after-close",
            "ws.close.close-in-fragmented-message",
        ],
    )
    .await;
}

/// Failing by a bare TCP close meets the MUST but not the SHOULD to send a
/// close frame: non-strict, and the TCP close itself is what a later
/// `expect_tcp_close` asks for (it was once waited for a second time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_tcp_on_errors_is_non_strict_not_a_failure() {
    let results = run_families(Fault::DropsTcpOnError, &caps(), &[CLOSE]).await;
    for id in [
        "ws.close.tcp-closed-after-failing",
        "ws.close.payload-1-byte",
        "ws.close.invalid-code-1005",
    ] {
        let r = &results[id];
        assert_eq!(r.outcome, Outcome::NonStrict, "{}", describe(r));
    }
    let r = &results["ws.close.tcp-closed-after-close-handshake"];
    assert_eq!(r.outcome, Outcome::Pass, "{}", describe(r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_close_code_fails_ws_fragmentation_and_ws_close() {
    let mut must_fail = ids(FRAGMENTATION, "orphan-");
    must_fail.extend(ids(FRAGMENTATION, "text-then-"));
    must_fail.extend(ids(FRAGMENTATION, "binary-then-"));
    must_fail.push("ws.fragmentation.new-message-interleaved-unfinished");
    assert_eq!(must_fail.len(), 11, "{must_fail:?}");
    let invalid_codes: Vec<&str> = ids(CLOSE, "invalid-code-")
        .into_iter()
        .filter(|id| !id.ends_with("-5000") && !id.ends_with("-65535"))
        .collect();
    must_fail.extend(invalid_codes);
    must_fail.extend([
        "ws.close.payload-1-byte",
        "ws.close.payload-124-byte-reason",
        "ws.close.tcp-closed-after-failing",
    ]);
    prove_with(
        Fault::WrongCloseCode,
        &caps(),
        &[FRAGMENTATION, CLOSE],
        Expect {
            fail: &must_fail,
            non_strict: &["ws.close.invalid-code-5000", "ws.close.invalid-code-65535"],
            ..Expect::default()
        },
    )
    .await;
}

// ---------------------------------------------------------------------------
// ws.limits

/// The ws.limits cases (without 16 MiB ones) above 1 MiB.
const ABOVE_1MIB: &[&str] = &["ws.limits.text-4mib", "ws.limits.binary-4mib"];

/// The 4 MiB messages in more than 1000 fragments.
const OVER_1000_FRAGMENTS: &[&str] = &[
    "ws.limits.text-4mib-in-fragments-of-64b",
    "ws.limits.binary-4mib-in-fragments-of-64b",
    "ws.limits.text-4mib-in-fragments-of-256b",
    "ws.limits.binary-4mib-in-fragments-of-256b",
    "ws.limits.text-4mib-in-fragments-of-1kib",
    "ws.limits.binary-4mib-in-fragments-of-1kib",
    "ws.limits.text-4mib-in-fragments-of-4kib",
    "ws.limits.binary-4mib-in-fragments-of-4kib",
];

/// ws.limits cases that only move many small writes or messages: slow in a
/// debug build, and no size or fragment limit affects them.
const NOT_ABOUT_LIMITS: &[&str] = &[
    "text-1mib-in-chops-",
    "binary-1mib-in-chops-",
    "text-1000-round-trips-",
    "binary-1000-round-trips-",
];

fn above_1mib() -> Vec<&'static str> {
    let mut v = ABOVE_1MIB.to_vec();
    v.extend(ids(LIMITS, "text-4mib-in-fragments-of-"));
    v.extend(ids(LIMITS, "binary-4mib-in-fragments-of-"));
    assert_eq!(v.len(), 2 + 18);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_message_limit_fails_ws_limits() {
    prove_with(
        Fault::MessageLimit1MiB,
        &caps(),
        &[LIMITS],
        Expect {
            fail: &above_1mib(),
            skip: NOT_ABOUT_LIMITS,
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_message_limit_is_info_in_ws_limits() {
    let mut caps = caps();
    caps.profile.ws.max_message_size = Some(support::broken_ws::MESSAGE_LIMIT as u64);
    prove_with(
        Fault::MessageLimit1MiB,
        &caps,
        &[LIMITS],
        Expect {
            info: &above_1mib(),
            skip: NOT_ABOUT_LIMITS,
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_fragment_limit_fails_ws_limits() {
    prove_with(
        Fault::FragmentLimit1000,
        &caps(),
        &[LIMITS],
        Expect {
            fail: OVER_1000_FRAGMENTS,
            skip: NOT_ABOUT_LIMITS,
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_fragment_limit_is_info_in_ws_limits() {
    let mut caps = caps();
    caps.profile.ws.max_fragments = Some(support::broken_ws::FRAGMENT_LIMIT);
    prove_with(
        Fault::FragmentLimit1000,
        &caps,
        &[LIMITS],
        Expect {
            info: OVER_1000_FRAGMENTS,
            skip: NOT_ABOUT_LIMITS,
            ..Expect::default()
        },
    )
    .await;
}

/// A limit enforced below the declared one is still a failure: the fixture
/// refuses above 1 MiB, the profile claims 8 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_below_the_declared_one_fails_ws_limits() {
    let mut caps = caps();
    caps.profile.ws.max_message_size = Some(8 << 20);
    prove_with(
        Fault::MessageLimit1MiB,
        &caps,
        &[LIMITS],
        Expect {
            fail: &above_1mib(),
            skip: NOT_ABOUT_LIMITS,
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_huge_frame_is_non_strict_in_ws_limits() {
    prove_with(
        Fault::WaitsForHugeFrame,
        &caps(),
        &[LIMITS],
        Expect {
            non_strict: &["ws.limits.huge-declared-length"],
            skip: NOT_ABOUT_LIMITS,
            ..Expect::default()
        },
    )
    .await;
}

// ---------------------------------------------------------------------------
// ws.timing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_pong_is_non_strict_in_ws_timing() {
    prove_with(
        Fault::SlowPong,
        &caps(),
        &[TIMING],
        Expect {
            non_strict: &[
                "ws.timing.ping-answered-within-500ms",
                "ws.timing.ping-answered-within-500ms-after-large-message",
                // Its ping is answered later than the test's 500 ms timeout.
                "ws.timing.idle-kept-open",
            ],
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_buffering_is_non_strict_in_ws_timing() {
    prove_with(
        Fault::UnboundedBuffering,
        &caps(),
        &[TIMING],
        Expect {
            non_strict: &["ws.timing.slow-reader-backpressure"],
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_idle_connections_undeclared_is_non_strict_in_ws_timing() {
    prove_with(
        Fault::ClosesIdleConnections,
        &caps(),
        &[TIMING],
        Expect {
            non_strict: &["ws.timing.idle-kept-open"],
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_idle_connections_as_declared_passes_ws_timing() {
    let mut caps = caps();
    caps.profile.ws.idle_timeout = Some(Dur(IDLE_CLOSE));
    prove_with(
        Fault::ClosesIdleConnections,
        &caps,
        &[TIMING],
        Expect::default(),
    )
    .await;
}

/// The correct fixture keeps idle connections open: a profile declaring an
/// idle timeout for it is wrong, and the idle case says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_idle_timeout_not_kept_is_non_strict_in_ws_timing() {
    let mut caps = caps();
    caps.profile.ws.idle_timeout = Some(Dur(IDLE_CLOSE));
    prove_with(
        Fault::None,
        &caps,
        &[TIMING],
        Expect {
            non_strict: &["ws.timing.idle-timeout-closes"],
            ..Expect::default()
        },
    )
    .await;
}

// ---------------------------------------------------------------------------
// ws.deflate

/// The profile of the deflate tests: the fixture's permessage-deflate and
/// its message limit (which arms the decompression bomb cases).
fn deflate_caps() -> Capabilities {
    let mut caps = caps();
    caps.profile.ws.deflate = true;
    caps.profile.ws.max_message_size = Some(support::broken_ws::MAX_MESSAGE as u64);
    caps
}

/// The compressed echo matrix: many MiB of DEFLATE each way, and only
/// compression itself can break it.
const ECHO_MATRIX: &[&str] = &["echo-", "params-"];

/// ws.deflate ids by slug.
fn deflate_ids(slugs: &[&str]) -> Vec<&'static str> {
    slugs
        .iter()
        .map(|s| {
            let id = format!("{DEFLATE}.{s}");
            cases()
                .iter()
                .find(|c| c.id == id)
                .unwrap_or_else(|| panic!("no case {id}"))
                .id
                .as_str()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fixture_passes_ws_deflate() {
    prove_with(Fault::None, &deflate_caps(), &[DEFLATE], Expect::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_deflate_is_unsupported_without_the_declaration() {
    let results = run_families(Fault::None, &caps(), &[DEFLATE]).await;
    assert!(results.len() > 150, "{}", results.len());
    for r in results.values() {
        assert_eq!(r.outcome, Outcome::Unsupported, "{}", describe(r));
    }
    // The bomb cases need the declared limit too.
    let mut caps = deflate_caps();
    caps.profile.ws.max_message_size = None;
    let results = run_some(Fault::None, &caps, &[DEFLATE], ECHO_MATRIX).await;
    for id in deflate_ids(&["bomb", "bomb-fail-fast", "bomb-at-limit"]) {
        assert_eq!(results[id].outcome, Outcome::Unsupported, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_an_unoffered_param_fails_ws_deflate() {
    // Every accepted offer without client_max_window_bits gets an answer
    // with it.
    let mut fail = deflate_ids(&[
        "offer-plain",
        "offer-server-no-context-takeover",
        "offer-client-no-context-takeover",
        "offer-other-extension-first",
        "offer-list-autobahn",
        "offer-two-lines",
        "decline-then-accept",
        "rfc-example-hello",
        "rfc-example-stored-block",
        "rfc-example-bfinal",
        "rfc-example-two-blocks",
        "rfc-example-shared-window",
        "empty-message-text",
        "empty-message-binary",
        "empty-fragments",
        "uncompressed-text",
        "uncompressed-binary",
        "interleaved-compressed-uncompressed",
        "ping-inside-compressed-message",
        "server-no-context-takeover-honoured",
        "rsv1-continuation",
        "rsv1-continuation-uncompressed",
        "rsv1-ping",
        "rsv1-pong",
        "rsv1-close",
        "rsv1-ping-inside-compressed-message",
        "rsv1-rsv2-with-deflate",
        "rsv1-rsv3-with-deflate",
        "rsv2-with-deflate",
        "rsv3-with-deflate",
        "corrupt-reserved-btype",
        "corrupt-stored-len",
        "corrupt-distance-before-start",
        "invalid-utf8-after-inflate-surrogate",
        "invalid-utf8-after-inflate-truncated",
        "bomb",
        "bomb-at-limit",
    ]);
    fail.extend(
        ids(DEFLATE, "offer-server-max-window-bits-")
            .into_iter()
            .filter(|id| !id.ends_with("-8")),
    );
    fail.extend(ids(DEFLATE, "server-window-"));
    fail.extend(
        ids(DEFLATE, "server-no-context-takeover-")
            .into_iter()
            .filter(|id| !id.ends_with("-honoured")),
    );
    // The parameter sets without client_max_window_bits in the offer the
    // fixture takes: ctx, noctx (the list's first offer has it).
    fail.extend(
        ids(DEFLATE, "params-ctx-")
            .into_iter()
            .filter(|id| !id.contains("-w")),
    );
    fail.extend(
        ids(DEFLATE, "params-noctx-")
            .into_iter()
            .filter(|id| !id.contains("-w")),
    );
    prove_with(
        Fault::DeflateAnswersUnofferedParam,
        &deflate_caps(),
        &[DEFLATE],
        Expect {
            fail: &fail,
            non_strict: &deflate_ids(&[
                "offer-quoted-value",
                "invalid-utf8-fail-fast",
                "bomb-fail-fast",
            ]),
            // Info cases report info whatever happens; the echo cases all
            // offer client_max_window_bits.
            skip: &["echo-"],
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_invalid_offers_fails_ws_deflate() {
    let mut fail = ids(DEFLATE, "decline-");
    assert_eq!(fail.len(), 20, "{fail:?}");
    assert!(fail.contains(&"ws.deflate.decline-then-accept"));
    fail.sort();
    prove_with(
        Fault::DeflateAcceptsInvalidOffers,
        &deflate_caps(),
        &[DEFLATE],
        Expect {
            fail: &fail,
            skip: ECHO_MATRIX,
            ..Expect::default()
        },
    )
    .await;
}

/// A verdict decided by machine load (issue 8, point 2): a bomb the target
/// refuses correctly, but more slowly than the idle timeout. The first
/// attempt fails on the deadline; run again alone with a longer one, it
/// passes, so the case is flaky, not failing. Without confirmation it
/// would fail the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_inflate_is_confirmed_and_reported_flaky_not_failed() {
    let addr = spawn(Fault::InflatesSlowly).await;
    let bomb: Vec<Case> = cases()
        .iter()
        .filter(|c| c.id == "ws.deflate.bomb")
        .cloned()
        .collect();
    assert_eq!(bomb.len(), 1);
    let plan = |confirm| pushspec::engine::Plan {
        cases: bomb.clone(),
        targets: Targets {
            ws: Some(pushspec::target::parse_ws(&format!("ws://{addr}/")).unwrap()),
            sse: None,
        },
        settings: Settings {
            timeout: Duration::from_secs(2),
            max_message: 64 << 20,
        },
        capabilities: deflate_caps(),
        known_failing: None,
        strict: false,
        jobs: 1,
        confirm,
        run_budget: None,
    };
    let unconfirmed = pushspec::engine::run(plan(false), |_| {}, std::future::pending())
        .await
        .results;
    assert_eq!(
        unconfirmed[0].outcome,
        Outcome::Fail,
        "{:?}",
        unconfirmed[0].reason
    );
    let confirmed = pushspec::engine::run(plan(true), |_| {}, std::future::pending())
        .await
        .results;
    let r = &confirmed[0];
    assert_eq!(r.outcome, Outcome::Pass, "{}", r.reason);
    assert!(r.flaky);
    assert_eq!(
        r.first_attempt.as_ref().map(|a| a.outcome),
        Some(Outcome::Fail)
    );
}

/// Node ws answers 400 to an unusual offer: every decline case it fails,
/// it fails for that one reason, and the report groups them as one finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_unusual_offers_is_one_finding() {
    let results = run_some(
        Fault::RejectsUnusualOffers,
        &deflate_caps(),
        &[DEFLATE],
        ECHO_MATRIX,
    )
    .await;
    let failed: Vec<CaseResult> = results
        .values()
        .filter(|r| r.outcome == Outcome::Fail)
        .cloned()
        .collect();
    assert!(failed.len() >= 5, "{failed:#?}");
    for r in &failed {
        assert!(
            r.id.starts_with("ws.deflate.decline-"),
            "{}: {}",
            r.id,
            r.reason
        );
    }
    let groups = pushspec::report::findings(&failed);
    assert_eq!(groups.len(), 1, "{groups:#?}");
    assert_eq!(groups[0].cases.len(), failed.len());
    for r in results.values().filter(|r| r.outcome != Outcome::Fail) {
        assert!(
            matches!(
                r.outcome,
                Outcome::Pass | Outcome::Info | Outcome::Unsupported
            ),
            "{}: {} {}",
            r.id,
            r.outcome,
            r.reason
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_the_server_context_fails_ws_deflate() {
    // Every case with server_no_context_takeover agreed and more than one
    // compressed echo: the second refers back into the first.
    let mut fail = deflate_ids(&[
        "offer-server-no-context-takeover",
        "offer-all-params",
        "offer-list-autobahn",
        "server-no-context-takeover-honoured",
    ]);
    for set in ["noctx", "noctx-w9", "noctx-w15", "list"] {
        fail.extend(cases().iter().map(|c| c.id.as_str()).filter(|id| {
            id.strip_prefix(&format!("{DEFLATE}.params-{set}-"))
                .is_some_and(|size| size.bytes().all(|b| b.is_ascii_digit()))
        }));
    }
    let mut sizes: Vec<&str> = ids(DEFLATE, "server-no-context-takeover-")
        .into_iter()
        .filter(|id| !fail.contains(id))
        .collect();
    assert_eq!(sizes.len(), 8, "{sizes:?}");
    fail.append(&mut sizes);
    assert_eq!(fail.len(), 4 + 4 * 10 + 8);
    prove_with(
        Fault::DeflateKeepsServerContext,
        &deflate_caps(),
        &[DEFLATE],
        Expect {
            fail: &fail,
            skip: &["echo-"],
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_rsv1_on_continuations_fails_ws_deflate() {
    prove_with(
        Fault::DeflateAcceptsRsv1Continuation,
        &deflate_caps(),
        &[DEFLATE],
        Expect {
            fail: &deflate_ids(&["rsv1-continuation", "rsv1-continuation-uncompressed"]),
            skip: ECHO_MATRIX,
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflating_without_a_limit_fails_ws_deflate() {
    prove_with(
        Fault::DeflateNoInflateLimit,
        &deflate_caps(),
        &[DEFLATE],
        Expect {
            fail: &deflate_ids(&["bomb"]),
            non_strict: &deflate_ids(&["bomb-fail-fast"]),
            skip: ECHO_MATRIX,
            ..Expect::default()
        },
    )
    .await;
}

// ---------------------------------------------------------------------------
// The edges (issue 15): rules checked at their boundaries, on every frame.

/// ws.framing ids of the `server-length-` cases for these lengths (data of
/// both types; `pong`: the pong cases too).
fn server_length(lens: &[usize], pong: bool) -> Vec<&'static str> {
    let mut kinds = vec!["text", "binary"];
    if pong {
        kinds.push("pong");
    }
    let mut v = Vec::new();
    for len in lens {
        for kind in &kinds {
            let id = format!("{FRAMING}.server-length-{kind}-{len}");
            v.extend(cases().iter().filter(|c| c.id == id).map(|c| c.id.as_str()));
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_16_bit_length_for_a_short_frame_fails_ws_framing() {
    let mut fail = server_length(&[0, 1, 125], true);
    assert_eq!(fail.len(), 9, "{fail:?}");
    fail.extend([
        "ws.framing.text-0",
        "ws.framing.binary-0",
        "ws.framing.text-125",
        "ws.framing.binary-125",
        "ws.framing.text-125-chops-of-1",
        "ws.framing.binary-125-chops-of-1",
        "ws.framing.unmasked-after-valid",
    ]);
    prove(Fault::Length16ForShortFrames, &[FRAMING], &fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_bit_length_for_a_medium_frame_fails_ws_framing() {
    let mut fail = server_length(&[126, 127, 65535], false);
    assert_eq!(fail.len(), 6, "{fail:?}");
    fail.extend([
        "ws.framing.text-126",
        "ws.framing.binary-126",
        "ws.framing.text-127",
        "ws.framing.binary-127",
        "ws.framing.text-128",
        "ws.framing.binary-128",
        "ws.framing.text-65535",
        "ws.framing.binary-65535",
        "ws.framing.text-126-chops-of-1",
        "ws.framing.binary-126-chops-of-1",
        "ws.framing.binary-all-byte-values",
    ]);
    prove(Fault::Length64ForMediumFrames, &[FRAMING], &fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_empty_unmasked_frames_fails_ws_framing() {
    prove_with(
        Fault::AcceptsUnmaskedEmpty,
        &caps(),
        &[FRAMING],
        Expect {
            fail: &[
                "ws.framing.unmasked-empty-text",
                "ws.framing.unmasked-empty-binary",
                "ws.framing.unmasked-empty-ping",
                "ws.framing.unmasked-empty-pong",
                "ws.framing.unmasked-empty-continuation",
            ],
            // The empty close is answered with an empty close: a failure
            // without a status code, which §7.1.7 only makes a SHOULD.
            non_strict: &["ws.framing.unmasked-empty-close"],
            ..Expect::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_the_final_fragment_fails_ws_utf8() {
    let mut fail = ids(UTF8, "invalid-only-in-final-fragment-");
    assert_eq!(fail.len(), 8, "{fail:?}");
    fail.extend(ids(UTF8, "incomplete-at-end-of-final-fragment-of-"));
    fail.extend(ids(UTF8, "incomplete-before-empty-final-fragment-"));
    fail.extend([
        "ws.utf8.invalid-truncated-at-end-one-byte-per-frame",
        "ws.utf8.invalid-split-across-frames",
        "ws.utf8.incomplete-at-end-of-last-fragment",
    ]);
    prove(Fault::Utf8SkipsFinalFragment, &[UTF8], &fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_final_fragment_ending_the_message_unchecked_fails_ws_utf8() {
    let fail = ids(UTF8, "incomplete-before-empty-final-fragment-");
    assert_eq!(fail.len(), 7, "{fail:?}");
    prove(Fault::Utf8IgnoresEmptyFinalFragment, &[UTF8], &fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validating_binary_continuations_fails_ws_utf8() {
    let fail = ids(UTF8, "binary-fragments-not-validated-");
    assert_eq!(fail.len(), 10, "{fail:?}");
    prove(Fault::ValidatesBinaryContinuations, &[UTF8], &fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_window_above_the_agreed_one_fails_ws_deflate() {
    let mut fail = ids(DEFLATE, "server-window-");
    assert_eq!(fail.len(), 12, "{fail:?}");
    // The other cases that agree a window below 15 bits and echo enough
    // for the fixture's 32 KiB window to reach past it (deterministic:
    // generated messages, zlib at a fixed level).
    fail.extend(deflate_ids(&[
        "offer-server-max-window-bits-9",
        "offer-server-max-window-bits-10",
        "offer-server-max-window-bits-11",
        "offer-server-max-window-bits-12",
        "offer-server-max-window-bits-13",
        "offer-list-autobahn",
        "params-ctx-w9-256",
    ]));
    for set in ["ctx-w9", "noctx-w9", "list"] {
        for size in [1024, 4096, 8192, 16384, 32768, 65536, 131072] {
            fail.extend(deflate_ids(&[&format!("params-{set}-{size}")]));
        }
    }
    prove_with(
        Fault::DeflateIgnoresServerWindow,
        &deflate_caps(),
        &[DEFLATE],
        Expect {
            fail: &fail,
            // `should` cases: a violation there is non-strict.
            non_strict: &deflate_ids(&["offer-quoted-value", "offer-fallback-list"]),
            skip: &["echo-"],
            ..Expect::default()
        },
    )
    .await;
}

/// python websockets with `max_size=None` and a declared `max_fragments`:
/// the close 1009 arrives while the harness is still writing into a
/// connection the target no longer reads. The close decides the case
/// (`info`, a declared limit), whatever the write was doing at the time.
/// The cases run one at a time: a family run moves tens of MiB at once, and
/// on a loaded machine its own stalls would blur what is tested here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_while_a_write_is_blocked_decides_ws_limits() {
    let mut caps = caps();
    caps.profile.ws.max_fragments = Some(support::broken_ws::FRAGMENT_LIMIT);
    let results = run_ids(
        Fault::Closes1009AfterFragmentsStopsReading,
        &caps,
        OVER_1000_FRAGMENTS,
        64 << 20,
        Duration::from_secs(2),
    )
    .await;
    for r in results.values() {
        assert_eq!(r.outcome, Outcome::Info, "{}", describe(r));
        assert!(
            r.reason.contains("declared limit enforced: close 1009"),
            "{}",
            describe(r)
        );
    }
}

/// Without the declared limit the same close is a failure, and it says so
/// (not "the target stopped reading").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_while_a_write_is_blocked_without_a_declared_limit_fails_ws_limits() {
    let results = run_ids(
        Fault::Closes1009AfterFragmentsStopsReading,
        &caps(),
        OVER_1000_FRAGMENTS,
        64 << 20,
        Duration::from_secs(2),
    )
    .await;
    for r in results.values() {
        assert_eq!(r.outcome, Outcome::Fail, "{}", describe(r));
        assert!(r.reason.contains("close 1009"), "{}", describe(r));
    }
}

// ---------------------------------------------------------------------------
// Messages above the harness's buffer cap stream (issue 8, "Streaming
// payloads").

/// Runs the cases with these ids against the fixture with `fault`, with a
/// buffer cap of `max_message`.
async fn run_ids(
    fault: Fault,
    caps: &Capabilities,
    ids: &[&str],
    max_message: u64,
    timeout: Duration,
) -> BTreeMap<String, CaseResult> {
    let addr = spawn(fault).await;
    let targets = Targets {
        ws: Some(pushspec::target::parse_ws(&format!("ws://{addr}/")).unwrap()),
        sse: None,
    };
    let settings = Settings {
        timeout,
        max_message,
    };
    let mut results = BTreeMap::new();
    for id in ids {
        let case = cases()
            .iter()
            .find(|c| c.id == *id)
            .unwrap_or_else(|| panic!("no case {id}"));
        let r = run_case(case, &targets, settings, caps).await;
        results.insert(r.id.clone(), r);
    }
    results
}

/// `bomb-at-limit` for a target whose limit (100 MiB, Node ws's default)
/// is above the harness's 64 MiB buffer: the bomb is built compressed and
/// the 100 MiB echo inflated and compared as it streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bomb_at_a_100_mib_limit_is_checked_as_it_streams() {
    let mut caps = deflate_caps();
    caps.profile.ws.max_message_size = Some(support::broken_ws::LARGE_LIMIT as u64);
    let results = run_ids(
        Fault::LimitAbove64MiB,
        &caps,
        &["ws.deflate.bomb-at-limit", "ws.deflate.bomb"],
        64 << 20,
        Duration::from_secs(5),
    )
    .await;
    for r in results.values() {
        assert_eq!(r.outcome, Outcome::Pass, "{}", describe(r));
    }
}

/// With a 1 MiB buffer, every ws.limits echo above it is streamed: whole
/// frames above the cap are read piece by piece, reassembled messages are
/// digested, and a wrong echo still fails and says where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_above_the_buffer_cap_are_compared_as_they_stream() {
    let big = [
        "ws.limits.text-4mib",
        "ws.limits.binary-4mib",
        "ws.limits.text-4mib-in-fragments-of-256kib",
        "ws.limits.binary-4mib-in-fragments-of-1mib",
        "ws.utf8.binary-fragments-not-validated-65537-in-fragments-of-65536",
    ];
    let results = run_ids(Fault::None, &caps(), &big, 1 << 20, Duration::from_secs(5)).await;
    for r in results.values() {
        assert_eq!(r.outcome, Outcome::Pass, "{}", describe(r));
    }
    let results = run_ids(
        Fault::CorruptsLongMessages,
        &caps(),
        &big[..4],
        1 << 20,
        Duration::from_secs(5),
    )
    .await;
    for r in results.values() {
        assert_eq!(r.outcome, Outcome::Fail, "{}", describe(r));
        assert!(
            r.reason.contains(
                "4194304 bytes instead of 4194304, first difference in the 1048576 bytes from byte 3145728"
            ),
            "{}",
            describe(r)
        );
    }
}

/// A server that accepts permessage-deflate, tested without a profile: the
/// probe sees it on the wire and the deflate family runs (issue 8, point 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deflate_is_detected_on_a_fixture_without_a_profile() {
    use clap::Parser;
    let addr = spawn(Fault::None).await;
    let json = std::env::temp_dir().join(format!("pushspec-detect-{}.json", std::process::id()));
    let cli = pushspec::cli::Cli::try_parse_from([
        "pushspec",
        "run",
        "--ws",
        &format!("ws://{addr}/"),
        "ws.deflate.offer-*",
        "--json",
        json.to_str().unwrap(),
    ])
    .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = pushspec::cli::execute(cli, &mut out, &mut err).await;
    let stdout = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{stdout}{}", String::from_utf8_lossy(&err));
    assert!(stdout.contains("detected: permessage-deflate"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["summary"]["unsupported"], 0, "{report}");
    assert!(report["summary"]["pass"].as_u64().unwrap() > 0);
    let _ = std::fs::remove_file(&json);
}
