//! Every WebSocket case family is proven both ways: it passes on a correct
//! server and fails on a deliberately broken one.
//!
//! The fixture in `support/broken_ws.rs` is a small raw-TCP echo server
//! that follows RFC 6455 except for one injected [`Fault`]. For each fault
//! the families it concerns are run in-process through the library, and
//! the outcome of every case is checked: the cases that check the broken
//! rule must fail, every other case must still pass (so the failure comes
//! from the fault, not from a fixture bug). With [`Fault::None`] every case
//! of the four families passes (`info` cases report `info`).
//!
//! The 16 MiB echo cases (`*-16777216`) are skipped to keep this fast.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pushspec::case::{Case, Level};
use pushspec::engine::{Targets, run_case};
use pushspec::outcome::{CaseResult, Outcome};
use pushspec::profile::Capabilities;
use pushspec::ws::run::Settings;
use support::broken_ws::{Fault, spawn};
use tokio::sync::Semaphore;

const HANDSHAKE: &str = "ws.handshake";
const FRAMING: &str = "ws.framing";
const CONTROL: &str = "ws.control";
const RESERVED: &str = "ws.reserved";
const FAMILIES: [&str; 4] = [HANDSHAKE, FRAMING, CONTROL, RESERVED];

/// Cases run at once against one fixture: enough to finish in seconds,
/// few enough that a 500 ms timeout never fires on a loaded 2-core machine.
const CONCURRENCY: usize = 16;

fn settings() -> Settings {
    Settings {
        timeout: Duration::from_millis(500),
        max_message: 64 << 20,
    }
}

fn in_family(case: &Case, family: &str) -> bool {
    case.id
        .strip_prefix(family)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// The embedded cases of the four families, without the 16 MiB ones.
fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        pushspec::case::file::load_embedded()
            .expect("embedded cases load")
            .into_iter()
            .filter(|c| FAMILIES.iter().any(|f| in_family(c, f)))
            .filter(|c| !c.id.contains("-16777216"))
            .collect()
    })
}

/// Starts the fixture with `fault` and runs every case of `families`
/// against it, concurrently. Results by case id.
async fn run_families(fault: Fault, families: &[&str]) -> BTreeMap<String, CaseResult> {
    let addr = spawn(fault).await;
    let targets = Arc::new(Targets {
        ws: Some(pushspec::target::parse_ws(&format!("ws://{addr}/")).unwrap()),
        sse: None,
    });
    let caps = Arc::new(Capabilities::default());
    let sem = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = Vec::new();
    for case in cases() {
        if !families.iter().any(|f| in_family(case, f)) {
            continue;
        }
        let (targets, caps, sem) = (targets.clone(), caps.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            run_case(case, &targets, settings(), &caps).await
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

/// What a case that does not check the broken rule must report.
fn passing_outcome(level: Level) -> Outcome {
    match level {
        Level::Info => Outcome::Info,
        Level::Must | Level::Should => Outcome::Pass,
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
        fault == Fault::None || !must_fail.is_empty(),
        "a fault test must expect at least one failure"
    );
    let results = run_families(fault, families).await;
    let mut problems = Vec::new();
    for id in must_fail {
        match results.get(*id) {
            None => problems.push(format!("{id}: no such case in {families:?}")),
            Some(r) if r.outcome != Outcome::Fail => {
                problems.push(format!("should fail but did not: {}", describe(r)));
            }
            Some(_) => {}
        }
    }
    for (id, r) in &results {
        if !must_fail.contains(&id.as_str()) && r.outcome != passing_outcome(r.level) {
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

// ---------------------------------------------------------------------------
// ws.handshake

/// Every handshake case that expects a 101: each checks the whole upgrade
/// response (Accept, and no unoffered subprotocol).
const UPGRADING_HANDSHAKES: &[&str] = &[
    "ws.handshake.valid-upgrade",
    "ws.handshake.header-case-lowercase",
    "ws.handshake.header-case-uppercase",
    "ws.handshake.header-case-mixed-token",
    "ws.handshake.connection-token-list",
    "ws.handshake.split-1-byte-writes",
    "ws.handshake.split-7-byte-writes",
    "ws.handshake.split-64-byte-writes",
    "ws.handshake.subprotocol-not-offered",
    "ws.handshake.subprotocol-none-offered",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_accept_fails_ws_handshake() {
    prove(Fault::WrongAccept, &[HANDSHAKE], UPGRADING_HANDSHAKES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_the_version_fails_ws_handshake() {
    prove(
        Fault::IgnoresVersion,
        &[HANDSHAKE],
        &[
            "ws.handshake.version-8",
            "ws.handshake.version-12",
            "ws.handshake.version-14",
            "ws.handshake.version-99",
            "ws.handshake.version-missing",
        ],
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
        &["ws.handshake.connection-token-list"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selecting_an_unoffered_protocol_fails_ws_handshake() {
    // The fault answers `chat` on every upgrade, so every case expecting a
    // 101 catches it, not only the two subprotocol cases.
    prove(
        Fault::SelectsUnofferedProtocol,
        &[HANDSHAKE],
        UPGRADING_HANDSHAKES,
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
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_unmasked_frames_fails_ws_framing() {
    prove(
        Fault::AcceptsUnmasked,
        &[FRAMING],
        &[
            "ws.framing.unmasked-text",
            "ws.framing.unmasked-binary",
            "ws.framing.unmasked-ping",
            "ws.framing.unmasked-after-valid",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masking_server_frames_fails_ws_framing() {
    // Every frame the server sends is masked, so every `must` case fails;
    // the `info` cases still only report.
    prove(
        Fault::MasksServerFrames,
        &[FRAMING],
        &[
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
        ],
    )
    .await;
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
