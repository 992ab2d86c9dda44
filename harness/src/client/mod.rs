//! The client suite: the harness plays the server and judges a WebSocket
//! client from what arrives. The `client.ws.*` case language is
//! `case::client_step`; here `request` is the client's opening request, `conn` the checked frame stream,
//! `run` the driver of one case, `serve` Autobahn's client URL protocol.
//!
//! Imports `wire/` (frame codec, `accept_for`), `case`,
//! `outcome` and `transcript`; never the CLI, the engine or reporters.

pub mod conn;
pub mod request;
pub mod run;
pub mod serve;
