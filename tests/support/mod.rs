//! Fixtures shared by the workspace-level integration tests.

pub mod broken_sse;
pub mod broken_ws;
