//! Executes one SSE case script against a target.

use crate::outcome::Run;
use crate::profile::Capabilities;
use crate::target::HttpTarget;
use crate::transcript::Transcript;
use crate::ws::run::Settings;

use super::step::Script;

/// The SSE stream and, optionally, the publish endpoint of the target contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseTarget {
    pub stream: HttpTarget,
    pub publish: Option<HttpTarget>,
}

pub async fn run(
    script: &Script,
    _target: &SseTarget,
    _settings: Settings,
    _caps: &Capabilities,
    _t: &Transcript,
) -> Run {
    match script.steps.first() {
        None => Run::default(),
        Some(s) => match *s {},
    }
}
