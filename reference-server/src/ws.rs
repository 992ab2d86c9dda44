//! The echo session run on an upgraded connection.

use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::ProtocolError};

use crate::Shared;
use crate::guard::FrameGuard;
use crate::handshake::Accepted;
use crate::stats::Gauge;
use crate::vocab::{self, Event};

/// How long we keep draining a connection after our close frame, and how long
/// writing that close frame may take.
const LINGER: Duration = Duration::from_secs(1);

/// Silence at a message boundary after which a session parks: tungstenite
/// and every buffer and compression context are dropped, and rebuilt from
/// the next bytes the client sends. Short enough that an idle connection
/// costs only its task and socket, long enough that a busy one never pays
/// for the rebuild (a few small allocations; a new compressor with
/// permessage-deflate).
const PARK_AFTER: Duration = Duration::from_millis(500);

/// The largest first read of a parked session. It lives in the session's
/// task while it waits, so it is kept small; tungstenite reads the rest.
const WAKE_READ: usize = 256;

/// tungstenite's read buffer while a session is active: it allocates and
/// zero-fills all of it up front (its default is 128 KiB), and it bounds
/// each socket read, so it trades an active session's memory against the
/// number of reads a large message takes. A parked session holds none.
const READ_BUFFER: usize = 64 * 1024;

type Guarded = FrameGuard<TokioIo<Upgraded>>;
type Ws = WebSocketStream<Guarded>;

/// Runs the echo loop until the connection ends.
pub(crate) async fn serve(upgraded: Upgraded, shared: &Shared, accepted: Accepted) {
    let max = shared.ws.max_message_size;
    // With permessage-deflate the guard inflates compressed messages before
    // tungstenite sees them and compresses the echoes after it wrote them
    // (see `crate::deflate`); tungstenite itself never sees RSV1.
    let agreed = accepted.extensions.deflate.as_ref().map(|d| d.agreed);
    drop(accepted);
    let _session = shared.gauges.hold(Gauge::WebSocketSessions);
    let mut io = FrameGuard::with_deflate(TokioIo::new(upgraded), max, agreed.as_ref());
    // A session starts parked: a client that upgrades and then says nothing
    // costs no buffers at all.
    let (ws, close) = loop {
        let parked = shared.gauges.hold(Gauge::ParkedWebSocketSessions);
        let mut first = [0u8; WAKE_READ];
        let read = io.read(&mut first).await;
        drop(parked);
        let (part, ended) = match read {
            Ok(0) => return, // EOF
            Ok(n) => (first[..n].to_vec(), None),
            Err(_) => match io.event() {
                // A close frame or a violation: tungstenite writes our reply.
                Some(event) => (Vec::new(), Some(event)),
                None => return,
            },
        };
        // Every active state is boxed: a future is as large as its largest
        // state for its whole life, so this one (held while parked) keeps
        // only the guard and `first`; tungstenite and the echo loop are
        // allocated while active and freed when the session parks.
        let mut ws = Box::pin(activate(io, part, max)).await;
        if let Some(event) = ended {
            break (ws, closing_for(event));
        }
        match Box::pin(echo_until_idle(&mut ws)).await {
            Some(close) => break (ws, close),
            None => {
                io = ws.into_inner();
                io.release();
                shared.freed.notify_one();
            }
        }
    };
    Box::pin(finish(*ws, close)).await;
}

/// Puts tungstenite (back) on the connection, starting with the bytes a
/// parked session already read.
async fn activate(io: Guarded, part: Vec<u8>, max: usize) -> Box<Ws> {
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        // Frames go out as they are written; every send flushes anyway.
        .write_buffer_size(0)
        .max_message_size(Some(max))
        // A frame can never be larger than a message. The guard enforces both
        // limits first, at the frame header; these are a second line.
        .max_frame_size(Some(max));
    Box::new(WebSocketStream::from_partially_read(io, part, Role::Server, Some(ws_config)).await)
}

/// Echoes until the session ends (`Some`) or has been silent for
/// [`PARK_AFTER`] with nothing in flight (`None`).
async fn echo_until_idle(ws: &mut Ws) -> Option<Closing> {
    loop {
        let Ok(item) = timeout(PARK_AFTER, ws.next()).await else {
            // `next` is cancel-safe: its state lives in the stream.
            if ws.get_ref().at_rest() && flushed(ws) {
                return None;
            }
            continue;
        };
        let result = match item {
            Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => ws.send(msg).await,
            // tungstenite queues the pong when it reads the ping, but writes
            // it only on the next read, write or flush. The next read may
            // block for a long time (the client waits for its pong), so flush
            // now. We flush after *every* read item: `set_additional` keeps
            // only one pending pong, so a burst of pings would otherwise lose
            // all but the last pong.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => ws.flush().await,
            // Never happens: the guard withholds close frames from
            // tungstenite. If it did, tungstenite already queued its reply;
            // flushing sends it, then we linger.
            Some(Ok(Message::Close(_))) => {
                let _ = ws.flush().await;
                return Some(Closing::Linger);
            }
            Some(Err(err)) => return Some(decide(ws, err)),
            None => return Some(Closing::Drop),
        };
        if result.is_err() {
            // Writing failed: the peer is gone.
            return Some(Closing::Drop);
        }
    }
}

/// True when tungstenite holds nothing unwritten (a queued pong).
fn flushed(ws: &mut Ws) -> bool {
    matches!(ws.flush().now_or_never(), Some(Ok(())))
}

/// How the session ends.
enum Closing {
    /// Send this close frame (`None`: empty payload), then linger.
    Send(Option<CloseFrame>),
    /// Our close frame is already written; linger.
    Linger,
    /// The transport is gone (EOF or I/O error): just drop it.
    Drop,
}

fn close_frame(code: u16, reason: &'static str) -> Closing {
    Closing::Send(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

/// The reply to what the guard found.
fn closing_for(event: Event) -> Closing {
    match event {
        // Reply to a valid close by echoing the code only (tungstenite would
        // echo the reason too, and would turn 1014 into 1002).
        Event::PeerClose { code: None } => Closing::Send(None),
        Event::PeerClose { code: Some(code) } => Closing::Send(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        })),
        // tungstenite never writes a close frame when it fails a connection;
        // we write one with the code the guard determined.
        Event::Fail { code, reason } => close_frame(code, reason),
    }
}

fn decide(ws: &Ws, err: WsError) -> Closing {
    match ws.get_ref().event() {
        Some(event) => closing_for(event),
        // Fallbacks, for errors tungstenite finds that the guard did not
        // (there should be none, as the guard checks a superset).
        None => match err {
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Closing::Drop,
            WsError::Protocol(_) => close_frame(vocab::PROTOCOL_ERROR, "protocol error"),
            WsError::Utf8(_) => close_frame(vocab::INVALID_PAYLOAD, "invalid UTF-8"),
            WsError::Capacity(_) => close_frame(vocab::MESSAGE_TOO_BIG, "message too big"),
            _ => Closing::Drop,
        },
    }
}

async fn finish(mut ws: Ws, close: Closing) {
    match close {
        Closing::Send(frame) => {
            // Anything queued (a pong) goes out before the close frame;
            // tungstenite would otherwise write a pending pong after it.
            let sent = timeout(LINGER, async {
                ws.flush().await?;
                ws.send(Message::Close(frame)).await
            })
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                return;
            }
        }
        Closing::Linger => {}
        Closing::Drop => return,
    }
    // Bypass the guard: it would stop at the first byte of garbage.
    linger(ws.into_inner().into_inner()).await;
}

/// Closes our side of TCP first (RFC 6455 §7.1.1: the server closes first),
/// then reads and discards whatever the client still sends until it closes
/// too, for at most [`LINGER`]. Dropping a socket with unread data makes the
/// kernel send RST, and an RST can make the client discard our close frame
/// before it has read it.
pub(crate) async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    let deadline = Instant::now() + LINGER;
    if !matches!(timeout_at(deadline, io.shutdown()).await, Ok(Ok(()))) {
        return;
    }
    // Small and inside the future: when thousands of clients close at once,
    // each lingering session should not hold a large buffer for a second.
    let mut buf = [0u8; 2048];
    while let Ok(Ok(n)) = timeout_at(deadline, io.read(&mut buf)).await {
        if n == 0 {
            break;
        }
    }
}
