//! Every `client.ws` family can fail: the broken client fixture, with one
//! injected fault at a time, fails exactly the cases about that rule, and
//! without a fault passes them all.

mod support;

use std::sync::Arc;
use std::time::Duration;

use pushspec::case::select::{Patterns, Selection};
use pushspec::case::{Case, Level, Protocol};
use pushspec::client::run::Ctx;
use pushspec::client::serve::{self, Notice, Suite};
use pushspec::outcome::{CaseResult, Outcome};
use support::broken_client::{self, Fault};

fn cases(patterns: &[&str]) -> Vec<Case> {
    let sel = Selection::new(
        Patterns::new(patterns).unwrap(),
        Patterns::new::<&str>(&[]).unwrap(),
    );
    pushspec::case::file::load_embedded()
        .expect("embedded cases load")
        .into_iter()
        .filter(|c| c.protocol() == Protocol::ClientWs && sel.selects(&c.id))
        .collect()
}

/// Serves `patterns` and runs the fixture with `fault` through them.
async fn run(fault: Fault, patterns: &[&str]) -> Vec<CaseResult> {
    let cases = cases(patterns);
    assert!(!cases.is_empty(), "no case matches {patterns:?}");
    let n = cases.len();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let suite = Arc::new(Suite::new(
        cases,
        Ctx::new(Duration::from_secs(1)),
        None,
        false,
    ));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(serve::serve(listener, suite, tx));
    let ran = tokio::time::timeout(
        Duration::from_secs(120),
        broken_client::run_autobahn(addr, "broken", fault),
    )
    .await
    .expect("the fixture finishes")
    .expect("the protocol works");
    assert_eq!(ran, n);
    let mut results: Vec<Option<CaseResult>> = vec![None; n];
    let mut reported = false;
    while !(reported && results.iter().all(Option::is_some)) {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(Notice::Finished { index, result, .. })) => results[index] = Some(*result),
            Ok(Some(Notice::Reported { .. })) => reported = true,
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    server.abort();
    results
        .into_iter()
        .map(|r| r.expect("every case has a result"))
        .collect()
}

fn glob(pattern: &str) -> Selection {
    Selection::new(
        Patterns::new(&[pattern]).unwrap(),
        Patterns::new::<&str>(&[]).unwrap(),
    )
}

/// Runs `patterns` with `fault`: every case matching `failing` ends with
/// `outcome` (non-strict for a failed `should` case; there is at least
/// one), every other case passes.
async fn fails_exactly(fault: Fault, patterns: &[&str], failing: &[&str], outcome: Outcome) {
    let results = run(fault, patterns).await;
    let sels: Vec<Selection> = failing.iter().map(|p| glob(p)).collect();
    let mut hit = 0;
    let mut wrong = Vec::new();
    for r in &results {
        let expected = if r.level == Level::Info {
            // Reports what the client does, without a verdict.
            Outcome::Info
        } else if sels.iter().any(|s| s.selects(&r.id)) {
            hit += 1;
            // A broken `should` rule is non-strict, not a failure.
            if outcome == Outcome::Fail && r.level == Level::Should {
                Outcome::NonStrict
            } else {
                outcome
            }
        } else {
            Outcome::Pass
        };
        if r.outcome != expected {
            wrong.push(format!(
                "  {} -> {} (expected {expected}): {}",
                r.id, r.outcome, r.reason
            ));
        }
    }
    assert!(hit > 0, "{fault:?}: no case matches {failing:?}");
    assert!(wrong.is_empty(), "{fault:?}:\n{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_fault_every_case_passes() {
    let results = run(Fault::None, &["client.ws.*"]).await;
    let bad: Vec<String> = results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass && r.level != Level::Info)
        .map(|r| format!("  {} -> {}: {}", r.id, r.outcome, r.reason))
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_faults() {
    let hs = &["client.ws.handshake.*"];
    fails_exactly(
        Fault::AcceptsWrongAccept,
        hs,
        &["*.wrong-accept", "*.missing-accept"],
        Outcome::Fail,
    )
    .await;
    fails_exactly(Fault::AcceptsAnyStatus, hs, &["*.status-*"], Outcome::Fail).await;
    fails_exactly(
        Fault::IgnoresUpgradeHeaders,
        hs,
        &["*.missing-upgrade", "*.missing-connection"],
        Outcome::Fail,
    )
    .await;
    fails_exactly(
        Fault::AcceptsUnofferedExtension,
        hs,
        &["*.unoffered-extension"],
        Outcome::Fail,
    )
    .await;
    // A client that takes any extension answer also takes malformed
    // permessage-deflate answers.
    fails_exactly(
        Fault::AcceptsUnofferedExtension,
        &["client.ws.deflate.*"],
        &["*"],
        Outcome::Fail,
    )
    .await;
    fails_exactly(
        Fault::AcceptsUnofferedSubprotocol,
        hs,
        &["*.unoffered-subprotocol"],
        Outcome::Fail,
    )
    .await;
    // The request is judged on every connection: a reused key fails every
    // case after the first connection that used it, a missing Host all.
    fails_exactly(
        Fault::NoHost,
        &[
            "client.ws.handshake.request-valid",
            "client.ws.framing.text-125",
        ],
        &["*"],
        Outcome::Fail,
    )
    .await;
    // (text-125 runs first, in list order, and takes the key.)
    fails_exactly(
        Fault::ReusedKey,
        &[
            "client.ws.handshake.request-valid",
            "client.ws.framing.text-125",
        ],
        &["*.request-valid"],
        Outcome::Fail,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_faults() {
    fails_exactly(
        Fault::Unmasked,
        &["client.ws.framing.text-125", "client.ws.framing.binary-0"],
        &["*"],
        Outcome::Fail,
    )
    .await;
    fails_exactly(
        Fault::ConstantMask,
        &["client.ws.framing.*"],
        &["*.mask-keys-vary"],
        Outcome::Fail,
    )
    .await;
    fails_exactly(
        Fault::AcceptsMaskedFrames,
        &["client.ws.framing.*"],
        &["*.masked-server-frame"],
        Outcome::Fail,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_faults() {
    let ctl = &[
        "client.ws.control.*",
        "client.ws.fragmentation.ping-between-fragments",
    ];
    fails_exactly(
        Fault::NoPong,
        ctl,
        &[
            "*.ping-empty",
            "*.ping-text",
            "*.ping-binary",
            "*.ping-125-byte*",
            "*.three-pings",
            "*.ping-between-fragments",
        ],
        Outcome::Fail,
    )
    .await;
    fails_exactly(
        Fault::EmptyPong,
        ctl,
        &[
            "*.ping-text",
            "*.ping-binary",
            "*.ping-125-byte*",
            "*.three-pings",
            "*.ping-between-fragments",
        ],
        Outcome::Fail,
    )
    .await;
    fails_exactly(
        Fault::AcceptsBigControl,
        ctl,
        &["*.ping-126-byte"],
        Outcome::Fail,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_faults() {
    let rsv = &["client.ws.reserved.*"];
    fails_exactly(Fault::AcceptsRsv, rsv, &["*.rsv-*"], Outcome::Fail).await;
    fails_exactly(
        Fault::IgnoresReservedOpcodes,
        rsv,
        &["*.opcode-*"],
        Outcome::Fail,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmentation_faults() {
    let frag = &["client.ws.fragmentation.*"];
    fails_exactly(
        Fault::NoReassembly,
        frag,
        &[
            "*-fragments-of-*",
            "*.empty-fragments",
            "*.ping-between-fragments",
            "*-while-open",
        ],
        Outcome::Fail,
    )
    .await;
    fails_exactly(
        Fault::IgnoresOrphanContinuation,
        frag,
        &["*.orphan-continuation-*"],
        Outcome::Fail,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf8_faults() {
    let utf8 = &["client.ws.utf8.*"];
    fails_exactly(Fault::SkipsUtf8, utf8, &["*.invalid-*"], Outcome::Fail).await;
    fails_exactly(Fault::Utf8Code1002, utf8, &["*.invalid-*"], Outcome::Fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_faults() {
    let close = &["client.ws.close.*"];
    fails_exactly(
        Fault::NoCloseReply,
        close,
        &[
            "*.payload-empty",
            "*.code-1*",
            "*.code-3*",
            "*.code-4*",
            "*.code-and-*",
            "*.close-in-fragmented-message",
            "*.waits-for-server-tcp-close",
        ],
        Outcome::Fail,
    )
    .await;
    fails_exactly(
        Fault::AcceptsInvalidCloseCode,
        close,
        &["*.invalid-code-*"],
        Outcome::Fail,
    )
    .await;
    // A SHOULD: the client closing TCP first is non-strict.
    fails_exactly(
        Fault::ClosesTcpFirst,
        close,
        &["*.waits-for-server-tcp-close"],
        Outcome::NonStrict,
    )
    .await;
    // Failing by a bare TCP close meets only the SHOULD to send a code.
    fails_exactly(
        Fault::DropsOnError,
        &[
            "client.ws.close.invalid-code-1004",
            "client.ws.close.code-1000",
        ],
        &["*.invalid-code-*"],
        Outcome::NonStrict,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_faults() {
    fails_exactly(
        Fault::SmallMaxMessage,
        &["client.ws.limits.*", "client.ws.framing.text-65536"],
        &["client.ws.limits.*"],
        Outcome::Fail,
    )
    .await;
}
