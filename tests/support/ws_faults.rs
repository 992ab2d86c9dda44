//! Runs WebSocket case families against the broken fixture
//! ([`super::broken_ws`]) for the generic prover, and names the profiles
//! the WebSocket fault table judges against.
//!
//! The 8 and 16 MiB echo cases (`*-16777216`, `*-8mib`, `*-16mib`) are
//! left out to keep this fast (see the coverage rule's exemptions).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pushspec::case::{Case, Dur};
use pushspec::engine::{Targets, run_case};
use pushspec::outcome::CaseResult;
use pushspec::profile::{Capabilities, Profile};
use pushspec::settings::Settings;
use tokio::sync::Semaphore;

use super::broken_ws::{
    ALLOWED_ORIGIN, FRAGMENT_LIMIT, Fault, IDLE_CLOSE, MAX_MESSAGE, MESSAGE_LIMIT, spawn,
};
use super::prove::{Fixture, in_family, slug};

pub const HANDSHAKE: &str = "ws.handshake";
pub const FRAMING: &str = "ws.framing";
pub const CONTROL: &str = "ws.control";
pub const RESERVED: &str = "ws.reserved";
pub const FRAGMENTATION: &str = "ws.fragmentation";
pub const UTF8: &str = "ws.utf8";
pub const CLOSE: &str = "ws.close";
pub const LIMITS: &str = "ws.limits";
pub const TIMING: &str = "ws.timing";
pub const ORIGIN: &str = "ws.origin";
pub const DEFLATE: &str = "ws.deflate";
pub const FAMILIES: [&str; 11] = [
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

/// Whether a case is one of the 8 and 16 MiB echoes the tests leave out.
pub fn is_huge(id: &str) -> bool {
    id.contains("-16777216") || id.ends_with("-16mib") || id.ends_with("-8mib")
}

/// Cases run at once against one fixture: enough to finish in seconds,
/// few enough that a 500 ms timeout never fires on a loaded 2-core machine.
const CONCURRENCY: usize = 16;

pub fn settings() -> Settings {
    Settings {
        timeout: Duration::from_millis(500),
        max_message: 64 << 20,
    }
}

/// ws.limits and ws.deflate move tens of MiB per run (ws.deflate inflates
/// 32 MiB bombs): on a loaded 2-core machine an echo can take longer than
/// 500 ms to start.
pub fn settings_for(families: &[&str]) -> Settings {
    if families.contains(&LIMITS) || families.contains(&DEFLATE) {
        Settings {
            timeout: Duration::from_secs(2),
            ..settings()
        }
    } else {
        settings()
    }
}

/// The embedded cases of the families, without the 8 and 16 MiB ones.
pub fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        pushspec::case::file::load_embedded()
            .expect("embedded cases load")
            .into_iter()
            .filter(|c| FAMILIES.iter().any(|f| in_family(c, f)))
            .filter(|c| !is_huge(&c.id))
            .collect()
    })
}

/// The profile a WebSocket fault is judged against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsProfile {
    /// The fixture's origin policy and subprotocol, timing cases on, no
    /// limits, no idle timeout.
    Plain,
    /// [`WsProfile::Plain`] with the fixture's [`MESSAGE_LIMIT`] declared.
    MessageLimit,
    /// [`WsProfile::Plain`] claiming an 8 MiB message limit, above the one
    /// the fixture enforces.
    MessageLimitOverstated,
    /// [`WsProfile::Plain`] with the fixture's [`FRAGMENT_LIMIT`] declared.
    FragmentLimit,
    /// [`WsProfile::Plain`] with an idle timeout of [`IDLE_CLOSE`].
    IdleTimeout,
    /// [`WsProfile::Plain`] with permessage-deflate and the fixture's
    /// message limit (which arms the decompression bomb cases).
    Deflate,
}

impl WsProfile {
    pub fn capabilities(self) -> Capabilities {
        let mut profile = Profile::default();
        profile.ws.allowed_origins = Some(vec![ALLOWED_ORIGIN.to_string()]);
        profile.ws.subprotocols = Some(vec!["chat".to_string()]);
        match self {
            WsProfile::Plain => {}
            WsProfile::MessageLimit => profile.ws.max_message_size = Some(MESSAGE_LIMIT as u64),
            WsProfile::MessageLimitOverstated => profile.ws.max_message_size = Some(8 << 20),
            WsProfile::FragmentLimit => profile.ws.max_fragments = Some(FRAGMENT_LIMIT),
            WsProfile::IdleTimeout => profile.ws.idle_timeout = Some(Dur(IDLE_CLOSE)),
            WsProfile::Deflate => {
                profile.ws.deflate = true;
                profile.ws.max_message_size = Some(MAX_MESSAGE as u64);
            }
        }
        Capabilities {
            profile,
            publish: false,
            skip_timing: false,
        }
    }
}

/// Starts the fixture with `fault` and runs every case of `families`
/// against it, concurrently, but those whose slug starts with one of
/// `skip`. Results by case id.
pub async fn run_some(
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
        if skip.iter().any(|p| slug(&case.id).starts_with(p)) {
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

/// The WebSocket fixture, for [`super::prove::prove`].
pub struct Ws;

impl Fixture for Ws {
    type Fault = Fault;
    type Profile = WsProfile;
    const NO_FAULT: Fault = Fault::None;

    fn cases() -> &'static [Case] {
        cases()
    }

    fn capabilities(profile: WsProfile) -> Capabilities {
        profile.capabilities()
    }

    async fn run(
        fault: Fault,
        caps: &Capabilities,
        families: &[&str],
        skip: &[&str],
    ) -> BTreeMap<String, CaseResult> {
        run_some(fault, caps, families, skip).await
    }
}
