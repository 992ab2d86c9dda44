//! The WebSocket side of the engine: frame codec, handshake and the
//! connection driver that executes WebSocket cases over raw TCP.

pub mod conn;
pub mod deflate;
pub mod digest;
pub mod frame;
pub mod generator;
pub mod handshake;
pub mod lz77;
pub mod run;
pub mod step;
