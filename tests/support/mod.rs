//! Fixtures shared by the workspace-level integration tests, the fault
//! tables that say what each fixture fault breaks, and the one prover that
//! runs them.

#![allow(dead_code)]

pub mod broken_client;
pub mod broken_sse;
pub mod broken_ws;
pub mod command;
pub mod prove;
pub mod sse_faults;
pub mod sse_table;
pub mod ws_faults;
pub mod ws_table;
