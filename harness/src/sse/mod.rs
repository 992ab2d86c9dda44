//! The Server-Sent Events side of the engine.

pub mod http;
pub mod run;
