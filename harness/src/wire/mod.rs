//! Bytes to values and back, for both protocols: HTTP heads, the WebSocket
//! frame codec and close codes, the accept key, permessage-deflate, the
//! event-stream parser, payload generators, and the streams that carry
//! them (TCP or TLS, [`transport`]).
//!
//! This layer imports nothing else from the crate: cases, drivers, the
//! engine and reporters build on it, never the other way round, so a new
//! carrier or driver can reuse it unchanged.

pub(crate) mod connect;
pub(crate) mod deflate;
pub(crate) mod digest;
pub mod event_stream;
pub mod frame;
pub(crate) mod generator;
pub mod handshake;
pub(crate) mod http;
pub(crate) mod lz77;
pub mod transport;

/// The largest message (WebSocket) or event data (SSE) the harness holds
/// whole by default: 64 MiB. Larger ones are digested as they stream or
/// refused, so that a hostile peer cannot make the harness buffer without
/// bound.
pub const MAX_MESSAGE: u64 = 64 << 20;
