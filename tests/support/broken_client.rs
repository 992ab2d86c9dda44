//! A deliberately simple WebSocket client over raw TCP with exactly one
//! injected fault, speaking Autobahn's client URL protocol, used to prove
//! that the `client.ws.*` families can fail.
//!
//! Independent of the reference client and of any WebSocket library: the
//! response is parsed with `httparse`, frames are decoded and encoded with
//! `pushspec::wire::frame` (which enforces no protocol rule itself). With
//! [`Fault::None`] it follows RFC 6455 for everything the families check;
//! every other variant breaks exactly one rule.
//!
//! Every read has a deadline, every buffer a cap.

#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pushspec::wire::frame::{self, CloseBody, Frame, Opcode};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The one rule the client breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Behaves correctly.
    None,
    /// Sends every frame unmasked.
    Unmasked,
    /// Masks every frame with the same key.
    ConstantMask,
    /// Sends the same `Sec-WebSocket-Key` on every connection.
    ReusedKey,
    /// Sends no `Host` header.
    NoHost,
    /// Does not check `Sec-WebSocket-Accept`.
    AcceptsWrongAccept,
    /// Takes any status as a completed handshake.
    AcceptsAnyStatus,
    /// Does not check `Upgrade` and `Connection` in the response.
    IgnoresUpgradeHeaders,
    /// Accepts an extension it did not offer.
    AcceptsUnofferedExtension,
    /// Accepts a subprotocol it did not offer.
    AcceptsUnofferedSubprotocol,
    /// Takes masked server frames as valid.
    AcceptsMaskedFrames,
    /// Never answers a ping.
    NoPong,
    /// Answers pings with an empty pong.
    EmptyPong,
    /// Ignores RSV bits.
    AcceptsRsv,
    /// Ignores frames with reserved opcodes.
    IgnoresReservedOpcodes,
    /// Answers pings of any size.
    AcceptsBigControl,
    /// Echoes each data frame as a message of its own (no reassembly).
    NoReassembly,
    /// Ignores a continuation frame with nothing to continue.
    IgnoresOrphanContinuation,
    /// Does not validate UTF-8.
    SkipsUtf8,
    /// Fails invalid UTF-8 with 1002 instead of 1007.
    Utf8Code1002,
    /// Never answers a close frame.
    NoCloseReply,
    /// Answers any close code, even one not allowed on the wire, with 1000.
    AcceptsInvalidCloseCode,
    /// Closes TCP right after replying to a close, before the server does.
    ClosesTcpFirst,
    /// Fails messages above 64 KiB with 1009.
    SmallMaxMessage,
    /// Fails the connection by dropping TCP, without a close frame.
    DropsOnError,
}

/// Reads and writes give up after this long.
const DEADLINE: Duration = Duration::from_secs(5);
const MAX_MESSAGE: u64 = 64 << 20;
const MAX_HEAD: usize = 16 * 1024;
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Autobahn's client protocol: count, every case, reports.
pub async fn run_autobahn(addr: SocketAddr, agent: &str, fault: Fault) -> io::Result<usize> {
    let count: usize = fetch_text(addr, "/getCaseCount")
        .await?
        .trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e}")))?;
    for n in 1..=count {
        if let Ok(mut s) =
            Session::open(addr, &format!("/runCase?case={n}&agent={agent}"), fault).await
        {
            s.echo(true).await;
        }
    }
    let mut s = Session::open(addr, &format!("/updateReports?agent={agent}"), Fault::None).await?;
    s.echo(true).await;
    Ok(count)
}

/// The first text message a protocol path sends (a correct client).
pub async fn fetch_text(addr: SocketAddr, path: &str) -> io::Result<String> {
    let mut s = Session::open(addr, path, Fault::None).await?;
    s.echo(false)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no text message"))
}

struct Session {
    stream: TcpStream,
    buf: Vec<u8>,
    fault: Fault,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

impl Session {
    async fn open(addr: SocketAddr, path: &str, fault: Fault) -> io::Result<Session> {
        let mut stream = timeout(DEADLINE, TcpStream::connect(addr))
            .await
            .map_err(|_| bad("connect timed out"))??;
        let key = if fault == Fault::ReusedKey {
            "dGhlIHNhbXBsZSBub25jZQ==".to_string()
        } else {
            let mut k = [0u8; 16];
            fastrand::fill(&mut k);
            STANDARD.encode(k)
        };
        let host = if fault == Fault::NoHost {
            String::new()
        } else {
            format!("Host: {addr}\r\n")
        };
        let req = format!(
            "GET {path} HTTP/1.1\r\n{host}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let (status, headers, used) = loop {
            let mut h = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut h);
            match resp.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let hs: Vec<(String, String)> = resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    break (resp.code.unwrap_or(0), hs, n);
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                _ => return Err(bad("bad response head")),
            }
            let mut chunk = [0u8; 4096];
            let n = timeout(DEADLINE, stream.read(&mut chunk))
                .await
                .map_err(|_| bad("no response"))??;
            if n == 0 {
                return Err(bad("closed before the response"));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        buf.drain(..used);
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        let token = |n: &str, t: &str| {
            get(n).is_some_and(|v| v.split(',').any(|x| x.trim().eq_ignore_ascii_case(t)))
        };
        if status != 101 && fault != Fault::AcceptsAnyStatus {
            return Err(bad("not 101"));
        }
        if !(token("upgrade", "websocket") && token("connection", "upgrade"))
            && fault != Fault::IgnoresUpgradeHeaders
        {
            return Err(bad("no upgrade"));
        }
        let mut h = Sha1::new();
        h.update(key.as_bytes());
        h.update(GUID.as_bytes());
        let accept = STANDARD.encode(h.finalize());
        if get("sec-websocket-accept") != Some(accept.as_str())
            && fault != Fault::AcceptsWrongAccept
        {
            return Err(bad("wrong accept"));
        }
        if get("sec-websocket-extensions").is_some() && fault != Fault::AcceptsUnofferedExtension {
            return Err(bad("unoffered extension"));
        }
        if get("sec-websocket-protocol").is_some() && fault != Fault::AcceptsUnofferedSubprotocol {
            return Err(bad("unoffered subprotocol"));
        }
        Ok(Session { stream, buf, fault })
    }

    async fn send(&mut self, op: Opcode, payload: &[u8]) {
        let mut f = Frame::new(op, payload.to_vec());
        f = match self.fault {
            Fault::Unmasked => f,
            Fault::ConstantMask => f.masked([0x11, 0x22, 0x33, 0x44]),
            _ => f.masked(fastrand::u32(..).to_be_bytes()),
        };
        let _ = timeout(DEADLINE, self.stream.write_all(&frame::encode(&f))).await;
    }

    /// Fails the connection with `code` (or drops it, for [`Fault::DropsOnError`]).
    async fn fail(&mut self, code: u16) {
        if self.fault != Fault::DropsOnError {
            self.send(Opcode::Close, &code.to_be_bytes()).await;
            self.wait_for_close().await;
        }
    }

    async fn wait_for_close(&mut self) {
        let _ = timeout(DEADLINE, async {
            let mut sink = [0u8; 4096];
            while matches!(self.stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }

    async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match frame::decode(&self.buf, MAX_MESSAGE) {
                Ok(Some((f, used))) => {
                    self.buf.drain(..used);
                    return Some(f);
                }
                Ok(None) => {}
                Err(_) => return None,
            }
            let mut chunk = vec![0u8; 64 * 1024];
            match timeout(DEADLINE, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Echoes messages (when `echo`), answers pings and closes; returns
    /// the last text message.
    async fn echo(&mut self, echo: bool) -> Option<Vec<u8>> {
        let fault = self.fault;
        let mut last = None;
        let mut partial: Option<(Opcode, Vec<u8>)> = None;
        while let Some(f) = self.next_frame().await {
            if f.mask.is_some() && fault != Fault::AcceptsMaskedFrames {
                self.fail(1002).await;
                return last;
            }
            if f.rsv != 0 && fault != Fault::AcceptsRsv {
                self.fail(1002).await;
                return last;
            }
            if f.opcode.is_control()
                && (!f.fin || (f.payload.len() > 125 && fault != Fault::AcceptsBigControl))
            {
                self.fail(1002).await;
                return last;
            }
            match f.opcode {
                Opcode::Reserved(_) if fault == Fault::IgnoresReservedOpcodes => {}
                Opcode::Reserved(_) => {
                    self.fail(1002).await;
                    return last;
                }
                Opcode::Ping => match fault {
                    Fault::NoPong => {}
                    Fault::EmptyPong => self.send(Opcode::Pong, b"").await,
                    _ => self.send(Opcode::Pong, &f.payload).await,
                },
                Opcode::Pong => {}
                Opcode::Close => {
                    let code = match frame::parse_close_payload(&f.payload) {
                        CloseBody::Empty => None,
                        CloseBody::Truncated(_) => {
                            self.fail(1002).await;
                            return last;
                        }
                        CloseBody::Status { code, reason } => {
                            if !frame::is_valid_close_code(code) {
                                if fault == Fault::AcceptsInvalidCloseCode {
                                    Some(1000)
                                } else {
                                    self.fail(1002).await;
                                    return last;
                                }
                            } else if std::str::from_utf8(reason).is_err() {
                                self.fail(1007).await;
                                return last;
                            } else {
                                Some(code)
                            }
                        }
                    };
                    if fault != Fault::NoCloseReply {
                        let body = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
                        self.send(Opcode::Close, &body).await;
                    }
                    if fault != Fault::ClosesTcpFirst {
                        self.wait_for_close().await;
                    }
                    return last;
                }
                Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                    let (op, mut data) = match (f.opcode, partial.take()) {
                        (Opcode::Continuation, Some(p)) => p,
                        (Opcode::Continuation, None)
                            if fault == Fault::IgnoresOrphanContinuation =>
                        {
                            continue;
                        }
                        (Opcode::Continuation, None) | (_, Some(_)) => {
                            self.fail(1002).await;
                            return last;
                        }
                        (op, None) => (op, Vec::new()),
                    };
                    data.extend_from_slice(&f.payload);
                    if fault == Fault::NoReassembly && !f.fin {
                        if echo {
                            self.send(op, &f.payload).await;
                        }
                        partial = Some((op, Vec::new()));
                        continue;
                    }
                    if !f.fin {
                        partial = Some((op, data));
                        continue;
                    }
                    if fault == Fault::SmallMaxMessage && data.len() > 65536 {
                        self.fail(1009).await;
                        return last;
                    }
                    if op == Opcode::Text
                        && fault != Fault::SkipsUtf8
                        && std::str::from_utf8(&data).is_err()
                    {
                        let code = if fault == Fault::Utf8Code1002 {
                            1002
                        } else {
                            1007
                        };
                        self.fail(code).await;
                        return last;
                    }
                    if echo {
                        self.send(op, &data).await;
                    }
                    if op == Opcode::Text {
                        last = Some(data);
                    }
                }
            }
        }
        last
    }
}
