//! pushspec: a conformance and reference test suite for WebSocket and
//! Server-Sent Events servers.
//!
//! Three parts that stay apart: [`case`] (cases are data loaded from
//! `cases/`), the engine ([`engine`], [`ws`], [`sse`]) that drives one case
//! against a target over raw sockets, and [`report`] which turns outcomes
//! into console, JSON and JUnit output.

pub mod bench;
pub mod case;
pub mod cli;
pub mod client;
pub mod engine;
pub mod outcome;
pub(crate) mod probe;
pub mod profile;
pub mod report;
pub mod settings;
pub mod sse;
pub mod target;
pub(crate) mod text;
pub mod transcript;
pub mod wire;
pub mod ws;
