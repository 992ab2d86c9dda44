//! The Server-Sent Events side of the engine.

pub(crate) mod http;
pub mod run;
