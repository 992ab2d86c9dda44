//! Runs SSE case families against the broken fixture
//! ([`super::broken_sse`]) for the generic prover, and names the profiles
//! the SSE fault table judges against.
//!
//! The `finish` case ends the fixture's streams for good, so it runs last,
//! after the others.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pushspec::case::{Case, Dur};
use pushspec::engine::{Targets, run_case};
use pushspec::outcome::CaseResult;
use pushspec::profile::{Capabilities, Profile, SseProfile};
use pushspec::settings::Settings;
use pushspec::sse::run::SseTarget;
use tokio::sync::Semaphore;

use super::broken_sse::{Fault, seed, spawn};
use super::prove::{Fixture, in_family, slug};

pub const RESPONSE: &str = "sse.response";
pub const FRAMING: &str = "sse.framing";
pub const DATA: &str = "sse.data";
pub const DELIVERY: &str = "sse.delivery";
pub const REPLAY: &str = "sse.replay";
pub const KEEPALIVE: &str = "sse.keepalive";
pub const ALL: [&str; 6] = [RESPONSE, FRAMING, DATA, DELIVERY, REPLAY, KEEPALIVE];

pub const FINISH_CASE: &str = "sse.framing.finish";

pub fn settings() -> Settings {
    Settings {
        timeout: Duration::from_secs(2),
        max_message: 64 << 20,
    }
}

/// For hostile fixtures: nothing to wait for, so fail fast.
pub fn hostile_settings() -> Settings {
    Settings {
        timeout: Duration::from_millis(500),
        ..settings()
    }
}

/// The profile an SSE fault is judged against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseProfileKind {
    /// Everything the fixture offers: publish, replay, finish, explicit
    /// event ids, a keep-alive every second (it sends one every 200 ms).
    Full,
}

impl SseProfileKind {
    pub fn capabilities(self) -> Capabilities {
        match self {
            SseProfileKind::Full => Capabilities {
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
            },
        }
    }
}

pub fn caps() -> Capabilities {
    SseProfileKind::Full.capabilities()
}

pub fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        pushspec::case::file::load_embedded()
            .expect("embedded cases load")
            .into_iter()
            .filter(|c| c.id.starts_with("sse."))
            .collect()
    })
}

/// Which cases of the families a run takes.
#[derive(Clone, Copy, Debug)]
pub enum Pick<'a> {
    /// Every case but those whose slug starts with one of these.
    AllBut(&'a [&'a str]),
    /// Only these ids.
    Only(&'a [&'a str]),
}

/// Starts the fixture with `fault` and runs the cases of `families` picked
/// by `pick` against it: all at once, then the finish case. Results by
/// case id.
pub async fn run_cases(
    fault: Fault,
    families: &[&str],
    pick: Pick<'_>,
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
        .filter(|c| match pick {
            Pick::AllBut(skip) => !skip.iter().any(|p| slug(&c.id).starts_with(p)),
            Pick::Only(ids) => ids.contains(&c.id.as_str()),
        })
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
    if let Pick::AllBut(_) = pick {
        for f in families {
            assert!(
                results.keys().any(|id| id.starts_with(&format!("{f}."))),
                "no case of family {f} was run"
            );
        }
    }
    results
}

/// The SSE fixture, for [`super::prove::prove`].
pub struct Sse;

impl Fixture for Sse {
    type Fault = Fault;
    type Profile = SseProfileKind;
    const NO_FAULT: Fault = Fault::None;

    fn cases() -> &'static [Case] {
        cases()
    }

    fn capabilities(profile: SseProfileKind) -> Capabilities {
        profile.capabilities()
    }

    async fn run(
        fault: Fault,
        caps: &Capabilities,
        families: &[&str],
        skip: &[&str],
    ) -> BTreeMap<String, CaseResult> {
        run_cases(
            fault,
            families,
            Pick::AllBut(skip),
            settings(),
            caps.clone(),
        )
        .await
    }
}
