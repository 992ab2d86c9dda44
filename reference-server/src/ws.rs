//! The echo session run on an upgraded connection.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::ProtocolError};

use crate::WsConfig;
use crate::guard::{self, Event, FrameGuard};
use crate::handshake::Accepted;

/// How long we keep draining a connection after our close frame, and how long
/// writing that close frame may take.
const LINGER: Duration = Duration::from_secs(1);

type Ws = WebSocketStream<FrameGuard<TokioIo<Upgraded>>>;

/// Runs the echo loop until the connection ends.
pub(crate) async fn serve(upgraded: Upgraded, cfg: &WsConfig, accepted: Accepted) {
    let max = cfg.max_message_size;
    // With permessage-deflate the guard inflates compressed messages before
    // tungstenite sees them and compresses the echoes after it wrote them
    // (see `crate::deflate`); tungstenite itself never sees RSV1.
    let agreed = accepted.extensions.deflate.as_ref().map(|d| d.agreed);
    let io = FrameGuard::with_deflate(TokioIo::new(upgraded), max, agreed.as_ref());
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(max))
        // A frame can never be larger than a message. The guard enforces both
        // limits first, at the frame header; these are a second line.
        .max_frame_size(Some(max));
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config)).await;

    let close = loop {
        let item = ws.next().await;
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
                break Closing::Linger;
            }
            Some(Err(err)) => break decide(&ws, err),
            None => break Closing::Drop,
        };
        if result.is_err() {
            // Writing failed: the peer is gone.
            break Closing::Drop;
        }
    };
    finish(ws, close).await;
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

fn decide(ws: &Ws, err: WsError) -> Closing {
    match ws.get_ref().event() {
        // Reply to a valid close by echoing the code only (tungstenite would
        // echo the reason too, and would turn 1014 into 1002).
        Some(Event::PeerClose { code: None }) => Closing::Send(None),
        Some(Event::PeerClose { code: Some(code) }) => Closing::Send(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        })),
        // tungstenite never writes a close frame when it fails a connection;
        // we write one with the code the guard determined.
        Some(Event::Fail { code, reason }) => close_frame(code, reason),
        // Fallbacks, for errors tungstenite finds that the guard did not
        // (there should be none, as the guard checks a superset).
        None => match err {
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Closing::Drop,
            WsError::Protocol(_) => close_frame(guard::PROTOCOL_ERROR, "protocol error"),
            WsError::Utf8(_) => close_frame(guard::INVALID_PAYLOAD, "invalid UTF-8"),
            WsError::Capacity(_) => close_frame(guard::MESSAGE_TOO_BIG, "message too big"),
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
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(Ok(n)) = timeout_at(deadline, io.read(&mut buf)).await {
        if n == 0 {
            break;
        }
    }
}
