//! The smallest WebSocket client the benchmarks need: connect, upgrade,
//! send masked messages, read whole messages. Every wait has a deadline.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::target::WsTarget;
use crate::wire::frame::{self, Frame, Opcode};
use crate::wire::handshake::random_key;
use crate::wire::http::{Request, Response};
use crate::wire::transport::{ReadHalf, WriteHalf};

/// Largest message the benchmarks accept back (they send at most this).
pub use crate::wire::MAX_MESSAGE;

/// Why a connection stopped counting: the error kinds a report groups.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    Connect(String),
    Handshake(String),
    ClosedByTarget,
    Reset,
    Protocol(String),
    Stalled,
    /// An HTTP response other than the one asked for (SSE).
    Response(String),
    /// No pong for a ping in time (ws-hold).
    NoPong,
}

impl Failure {
    /// The kind, for counting errors by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Connect(_) => "connect",
            Failure::Handshake(_) => "handshake",
            Failure::ClosedByTarget => "closed-by-target",
            Failure::Reset => "reset",
            Failure::Protocol(_) => "protocol",
            Failure::Stalled => "stalled",
            Failure::Response(_) => "response",
            Failure::NoPong => "no-pong",
        }
    }
}

pub struct Reader {
    read: ReadHalf,
    buf: BytesMut,
    /// The message being reassembled from fragments.
    partial: Vec<u8>,
}

/// Connects and upgrades; the halves are ready for frames.
pub async fn connect(target: &WsTarget, within: Duration) -> Result<(Reader, WriteHalf), Failure> {
    let stream = target
        .connect(within)
        .await
        .map_err(|e| Failure::Connect(e.to_string()))?;
    let (read, mut write) = stream.into_split();
    let key = random_key();
    let req = Request::upgrade(&target.authority(), &target.path, &key, &[]);
    let mut reader = Reader {
        read,
        buf: BytesMut::with_capacity(4096),
        partial: Vec::new(),
    };
    let exchange = async {
        let sent = async {
            write.write_all(&req.to_bytes()).await?;
            write.flush().await
        };
        sent.await.map_err(|e| Failure::Handshake(e.to_string()))?;
        loop {
            match Response::parse(&reader.buf) {
                Ok(Some((resp, n))) => {
                    reader.buf.advance(n);
                    let problems = resp.upgrade_problems(Some(&key), &[]);
                    return if problems.is_empty() {
                        Ok(())
                    } else {
                        Err(Failure::Handshake(problems.join("; ")))
                    };
                }
                Ok(None) => {}
                Err(e) => return Err(Failure::Handshake(e.to_string())),
            }
            match reader.read.read_buf(&mut reader.buf).await {
                Ok(0) => return Err(Failure::Handshake("closed before answering".into())),
                Ok(_) => {}
                Err(e) => return Err(Failure::Handshake(e.to_string())),
            }
        }
    };
    tokio::time::timeout(within, exchange)
        .await
        .map_err(|_| Failure::Handshake("no complete response head in time".into()))??;
    Ok((reader, write))
}

/// Sends one masked message.
pub async fn send(write: &mut WriteHalf, opcode: Opcode, payload: &[u8]) -> Result<(), Failure> {
    let key = fastrand::u32(..).to_be_bytes();
    let bytes = frame::encode(&Frame::new(opcode, payload.to_vec()).masked(key));
    // The flush hands the last TLS record to the socket (a no-op over TCP).
    let sent = async {
        write.write_all(&bytes).await?;
        write.flush().await
    };
    sent.await.map_err(|_| Failure::Reset)
}

/// Sends a close frame, ignoring errors (the connection is ending anyway).
pub async fn close(write: &mut WriteHalf) {
    let _ = send(write, Opcode::Close, &frame::close_payload(Some(1000), b"")).await;
}

impl Reader {
    /// The next whole data message (its length), ping or pong; the caller
    /// answers pings with its writer.
    pub async fn message(&mut self, stall: Duration) -> Result<Message, Failure> {
        loop {
            match frame::decode(&self.buf, MAX_MESSAGE) {
                Ok(Some((f, n))) => {
                    self.buf.advance(n);
                    match f.opcode {
                        Opcode::Ping => return Ok(Message::Ping(f.payload)),
                        Opcode::Pong => return Ok(Message::Pong(f.payload)),
                        Opcode::Close => return Err(Failure::ClosedByTarget),
                        Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                            if f.fin && self.partial.is_empty() {
                                return Ok(Message::Data(f.payload.len()));
                            }
                            self.partial.extend_from_slice(&f.payload);
                            if f.fin {
                                let len = self.partial.len();
                                self.partial.clear();
                                return Ok(Message::Data(len));
                            }
                        }
                        other => return Err(Failure::Protocol(format!("opcode {other}"))),
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Err(Failure::Protocol(e.to_string())),
            }
            match tokio::time::timeout(stall, self.read.read_buf(&mut self.buf)).await {
                Err(_) => return Err(Failure::Stalled),
                Ok(Ok(0)) => return Err(Failure::ClosedByTarget),
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Err(Failure::Reset),
            }
        }
    }
}

pub enum Message {
    Data(usize),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}
