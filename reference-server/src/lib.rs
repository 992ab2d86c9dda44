//! pushspec reference server: a minimal, strictly conforming WebSocket
//! (RFC 6455) echo server and Server-Sent Events (WHATWG HTML §9.2) server.
//!
//! Routes (HTTP/1.1 over TCP, or over TLS with [`Server::with_tls`]; one
//! task per connection):
//! - any path with an `Upgrade` header: WebSocket handshake, then echo
//!   (with permessage-deflate, RFC 7692, when offered; see [`WsConfig::deflate`]);
//! - `GET /events`: an event stream;
//! - `POST /publish`: publish the request body as an event;
//! - `POST /finish`: end all streams; later `GET /events` get 204.
//!
//! Memory: a WebSocket session that is idle at a message boundary for half
//! a second *parks*: tungstenite, every buffer and both compression contexts
//! are dropped (only the last window of a client that keeps its
//! permessage-deflate context is kept, as RFC 7692 requires) and rebuilt
//! from the next bytes. An idle session then costs about 2 KB of heap besides
//! its socket (`tests/memory.rs` keeps it under 8 KiB); an idle event stream
//! about 21 KB, mostly hyper's HTTP/1 buffers. Freed memory is handed back
//! to the OS shortly after connections close (see `trim`).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use pushspec_reference_server::{Config, Server};
//! let server = Server::bind("127.0.0.1:0".parse().unwrap(), Config::default()).await?;
//! let handle = server.spawn();
//! println!("ws://{}/", handle.local_addr());
//! # Ok(()) }
//! ```

pub mod client;
mod deflate;
mod frame_header;
mod guard;
mod handshake;
mod http;
mod sse;
mod stats;
#[cfg(test)]
mod test_frames;
pub mod tls;
mod trim;
mod validator;
mod vocab;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

pub use handshake::accept_key;
use stats::Gauges;
pub use stats::Stats;

/// Server configuration.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub ws: WsConfig,
    pub sse: SseConfig,
}

/// The origin the conformance configuration allows.
pub const CONFORMANCE_ORIGIN: &str = "https://allowed.pushspec.test";

impl Config {
    /// The configuration the conformance suite tests by default: the
    /// defaults plus an origin allow-list, so origin enforcement is
    /// exercised too (requests without `Origin` stay allowed).
    pub fn conformance() -> Config {
        let mut c = Config::default();
        c.ws.allowed_origins = Some(vec![CONFORMANCE_ORIGIN.to_string()]);
        c
    }
}

/// WebSocket settings.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Largest message (and frame) accepted; larger ones fail the connection
    /// with close code 1009. Default 64 MiB.
    pub max_message_size: usize,
    /// Supported subprotocols. The first protocol in the client's offer order
    /// that is in this list is selected. Default: `pushspec.echo`, a name no
    /// real client uses, so the suite can test selection on the default.
    pub subprotocols: Vec<String>,
    /// `None` (default): any origin. `Some(list)`: an `Origin` header not in
    /// the list gets 403 and no upgrade.
    pub allowed_origins: Option<Vec<String>>,
    /// Negotiate permessage-deflate (RFC 7692) when a client offers it.
    /// Default `true`. The first acceptable offer is taken; compressed
    /// messages are inflated (limited by `max_message_size`) and echoed
    /// compressed, uncompressed ones are echoed uncompressed. `false`: offers
    /// are ignored and RSV1 fails the connection like any reserved bit.
    pub deflate: bool,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message_size: 64 << 20,
            subprotocols: vec!["pushspec.echo".to_string()],
            allowed_origins: None,
            deflate: true,
        }
    }
}

/// Server-Sent Events settings.
#[derive(Clone, Debug)]
pub struct SseConfig {
    /// A `: keep-alive` comment is sent when a stream was idle this long.
    /// Default 15 s. Zero disables keep-alives.
    pub keepalive: Duration,
    /// Sent as `retry:` at the start of every stream. Default 3000.
    pub retry_ms: u64,
    /// Events kept for `Last-Event-ID` replay. Default 1024.
    pub replay_capacity: usize,
    /// Total size (encoded, as sent on the wire) of the events kept for
    /// replay. Default 64 MiB. The oldest events are evicted until the rest
    /// fit; an id evicted from the buffer (by count or by size) is treated
    /// like an unknown id: no replay, a comment, then live events. This is
    /// also the largest event accepted: a publish whose encoded event alone
    /// exceeds it gets 413 and is neither stored nor broadcast.
    pub replay_bytes: usize,
    /// How long `POST /publish` may take to send its body; a slower one gets
    /// 408 and the connection is closed. Default 10 s.
    pub publish_timeout: Duration,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            keepalive: Duration::from_secs(15),
            retry_ms: 3000,
            replay_capacity: 1024,
            replay_bytes: 64 << 20,
            publish_timeout: Duration::from_secs(10),
        }
    }
}

struct Shared {
    ws: WsConfig,
    publish_timeout: Duration,
    hub: sse::Hub,
    gauges: Arc<Gauges>,
    /// Woken when memory was freed (a connection closed, a session parked).
    freed: tokio::sync::Notify,
    /// Set: every connection starts with a TLS handshake.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds the listening socket.
    pub async fn bind(addr: SocketAddr, config: Config) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let shared = Arc::new(Shared {
            ws: config.ws,
            publish_timeout: config.sse.publish_timeout,
            hub: sse::Hub::new(config.sse),
            gauges: Arc::default(),
            freed: tokio::sync::Notify::new(),
            tls: None,
        });
        Ok(Server { listener, shared })
    }

    /// Serves TLS on the bound socket: every connection starts with a TLS
    /// handshake, then speaks the same HTTP/1.1 and WebSocket.
    pub fn with_tls(mut self, tls: tls::Tls) -> Server {
        Arc::get_mut(&mut self.shared)
            .expect("a server not yet running is the only owner of its state")
            .tls = Some(tls.acceptor);
        self
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves forever. Connection tasks belong to this future: dropping or
    /// aborting it ends them all.
    pub async fn run(self) {
        let mut conns = JoinSet::new();
        // When to hand freed memory back to the OS (see `trim`).
        let mut trim_at: Option<tokio::time::Instant> = None;
        loop {
            let freed = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, _peer)) => {
                        conns.spawn(http::serve_connection(tcp, self.shared.clone()));
                        false
                    }
                    // E.g. EMFILE: back off instead of spinning.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        false
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => true,
                () = self.shared.freed.notified() => true,
                () = tokio::time::sleep_until(trim_at.unwrap_or_else(tokio::time::Instant::now)),
                    if trim_at.is_some() =>
                {
                    trim_at = None;
                    trim::release_free_memory();
                    false
                }
            };
            if freed && trim_at.is_none() {
                trim_at = Some(tokio::time::Instant::now() + trim::TRIM_AFTER);
            }
        }
    }

    /// Runs the server in the background on the current tokio runtime.
    pub fn spawn(self) -> ServerHandle {
        let local_addr = self.local_addr();
        let gauges = self.shared.gauges.clone();
        ServerHandle {
            running: Running::Task(tokio::spawn(self.run())),
            local_addr,
            gauges,
        }
    }

    /// Runs the server in the background on its own OS thread with its own
    /// single-threaded runtime, so that tasks of the caller's runtime that
    /// block or poll for long cannot delay it (and it cannot delay them).
    /// Use this when the server shares a process with a test client that
    /// enforces deadlines, as the embedded default target does.
    pub fn spawn_isolated(self) -> std::io::Result<ServerHandle> {
        let local_addr = self.local_addr();
        let gauges = self.shared.gauges.clone();
        let Server { listener, shared } = self;
        // Move the socket off the caller's reactor onto the new runtime's.
        let listener = listener.into_std()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("pushspec-reference-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = (Server { listener, shared }).run() => {}
                        // Sent or dropped by ServerHandle::drop.
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime cancels every connection task.
                drop(runtime);
            })?;
        Ok(ServerHandle {
            running: Running::Thread(Some(stop)),
            local_addr,
            gauges,
        })
    }
}

/// A server running in the background; dropping it stops the server and all
/// its connections.
pub struct ServerHandle {
    running: Running,
    local_addr: SocketAddr,
    gauges: Arc<Gauges>,
}

enum Running {
    Task(JoinHandle<()>),
    Thread(Option<tokio::sync::oneshot::Sender<()>>),
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What the server holds right now: open connections, WebSocket
    /// sessions (and how many are parked), event streams.
    pub fn stats(&self) -> Stats {
        self.gauges.snapshot()
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        match &mut self.running {
            Running::Task(task) => task.abort(),
            // The thread then leaves its event loop and drops its runtime.
            // It is not joined: Drop may run inside an async context.
            Running::Thread(stop) => drop(stop.take()),
        }
    }
}
