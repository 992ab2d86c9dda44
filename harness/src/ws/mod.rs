//! The WebSocket side of the engine: frame codec, handshake and the
//! connection driver that executes WebSocket cases over raw TCP.

pub mod conn;
pub mod handshake;
pub mod run;
