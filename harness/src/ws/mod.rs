//! The WebSocket side of the engine: frame codec, handshake and the
//! connection driver that executes WebSocket cases over raw TCP.

pub(crate) mod conn;
pub(crate) mod handshake;
pub mod run;
