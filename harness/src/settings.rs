//! Per-run settings every driver shares, and the budget they derive. Sits
//! beside the drivers (which read it) and below the engine and CLI (which
//! set it), so that no driver takes its settings from another.

use std::time::Duration;

/// Per-run knobs the CLI sets.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub timeout: Duration,
    pub max_message: u64,
}

/// The most one case may take, however slowly the target trickles bytes.
pub fn case_budget(timeout: Duration) -> Duration {
    (timeout * 15).max(Duration::from_secs(30))
}
