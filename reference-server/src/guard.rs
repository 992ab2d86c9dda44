//! The guard between the socket and tungstenite: every byte the client
//! sends is validated ([`Validator`]) and, with permessage-deflate,
//! inflated ([`Inbound`]) before tungstenite sees it; everything tungstenite
//! writes is, with permessage-deflate, compressed ([`Outbound`]).
//!
//! # Why this exists
//!
//! tungstenite 0.30 detects most framing errors, but it is not strict enough
//! for a reference server:
//!
//! * It never sends a close frame when it fails a connection: `read()` just
//!   returns an error and the caller has to pick the close code.
//! * It checks RSV bits, the mask bit, control-frame length and control-frame
//!   fragmentation only after the *whole* payload has arrived, so a violation
//!   in the header of a frame that announces a large payload is only noticed
//!   (or noticed as a size error, 1009, instead of 1002) much later.
//! * A 64-bit length with the most significant bit set is not treated as a
//!   protocol error: it is reported as a size error (1009), and with an
//!   unlimited frame size it would try to reserve that much memory.
//!   (Non-minimal length encodings are accepted by tungstenite and by us:
//!   RFC 6455 §5.2 obliges the sender and says nothing about the receiver.)
//! * UTF-8 in a text frame is validated only when the frame is complete, so a
//!   message whose first bytes are already invalid is not failed fast
//!   (Autobahn 6.4.3/6.4.4 grade that NON-STRICT).
//! * For a close frame with an invalid code it replies with a close frame
//!   (1002 "Protocol violation") as if it were a normal close reply, and it
//!   treats 1014 (registered by IANA) as invalid. A valid close is echoed
//!   with the peer's reason text as well; we want to echo only the code.
//!
//! So every byte the client sends goes through [`Validator`] first. It tracks
//! frame boundaries and message state and finds the exact byte at which the
//! stream stops being valid. [`FrameGuard`] then hands tungstenite only the
//! bytes *before* that point: every complete frame before the violation is
//! still processed (and echoed) in order, and the next read reports the
//! violation as an I/O error. The session then asks the guard what happened
//! ([`FrameGuard::event`]) and writes the close frame itself.
//!
//! Close frames from the client are never passed to tungstenite: the guard
//! withholds them from their first byte, validates them, and reports
//! [`Event::PeerClose`], so the session controls the close reply completely.
//!
//! Extensions: without permessage-deflate any RSV bit fails the connection.
//! With it ([`Validator::with_deflate`]), RSV1 is legal on the first frame of
//! a data message only (on a continuation or control frame it fails with
//! 1002), and UTF-8 of compressed text messages is checked after inflating,
//! by [`Inbound`], which [`FrameGuard`] runs on the validated
//! bytes before tungstenite sees them. On the write side the guard then
//! compresses the echoes ([`Outbound`]).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::deflate::{Agreed, Inbound, Outbound};
use crate::validator::Validator;
use crate::vocab::Event;

/// Largest socket read on the permessage-deflate path.
const READ_CHUNK: usize = 16 * 1024;

/// Wraps the upgraded connection: reads go through a [`Validator`]; writes
/// pass straight through, or, with permessage-deflate, through
/// [`Outbound`].
pub struct FrameGuard<S> {
    inner: S,
    validator: Validator,
    event: Option<Event>,
    deflate: Option<Box<DeflateIo>>,
}

/// The permessage-deflate state of a guarded connection.
struct DeflateIo {
    inbound: Inbound,
    outbound: Outbound,
    /// Transformed bytes not yet handed to tungstenite.
    read_out: Vec<u8>,
    read_pos: usize,
    /// The validator's event, reported once everything before it was
    /// transformed and handed on.
    validator_event: Option<Event>,
    /// Bytes accepted from tungstenite, not yet written to the socket.
    write_out: Vec<u8>,
    write_pos: usize,
}

impl<S> FrameGuard<S> {
    /// A guard for a connection where permessage-deflate was agreed
    /// (`Some`), or not.
    pub fn with_deflate(inner: S, max_message_size: usize, deflate: Option<&Agreed>) -> Self {
        FrameGuard {
            inner,
            validator: Validator::with_deflate(max_message_size, deflate.is_some()),
            event: None,
            deflate: deflate.map(|agreed| {
                Box::new(DeflateIo {
                    inbound: Inbound::new(agreed, max_message_size),
                    outbound: Outbound::new(agreed),
                    read_out: Vec::new(),
                    read_pos: 0,
                    validator_event: None,
                    write_out: Vec::new(),
                    write_pos: 0,
                })
            }),
        }
    }

    /// Nothing is in flight in either direction: every byte handed to
    /// tungstenite ends a complete frame outside any message, and every
    /// byte tungstenite wrote has been sent. The session may then drop
    /// tungstenite and [`FrameGuard::release`] without losing anything.
    pub fn at_rest(&self) -> bool {
        self.event.is_none()
            && self.validator.at_rest()
            && self.deflate.as_ref().is_none_or(|d| {
                d.read_pos == d.read_out.len()
                    && d.validator_event.is_none()
                    && d.inbound.at_rest()
                    && d.write_pos == d.write_out.len()
                    && d.outbound.at_rest()
                    && d.inbound.echo_compressed.is_empty()
            })
    }

    /// Frees every buffer and compression context; each is made again when
    /// the next bytes need it. Call only [`FrameGuard::at_rest`].
    pub fn release(&mut self) {
        debug_assert!(self.at_rest());
        self.validator.release();
        if let Some(d) = self.deflate.as_mut() {
            d.inbound.release();
            d.outbound.release();
            d.read_out = Vec::new();
            d.read_pos = 0;
            d.write_out = Vec::new();
            d.write_pos = 0;
        }
    }

    /// What ended the frame stream, once it has ended.
    pub fn event(&self) -> Option<Event> {
        self.event
    }

    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn ended(event: Event) -> io::Error {
    // tungstenite reports this as `Error::Io`; the session then calls
    // `event()` to learn the close code.
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("websocket frame stream ended: {event:?}"),
    )
}

impl<S: AsyncRead + Unpin> FrameGuard<S> {
    /// The read path with permessage-deflate: socket -> validator ->
    /// inflater -> tungstenite.
    fn poll_read_deflate(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let d = self.deflate.as_mut().expect("deflate state");
        loop {
            if d.read_pos < d.read_out.len() {
                let n = buf.remaining().min(d.read_out.len() - d.read_pos);
                buf.put_slice(&d.read_out[d.read_pos..d.read_pos + n]);
                d.read_pos += n;
                if d.read_pos == d.read_out.len() {
                    d.read_out.clear();
                    d.read_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if let Some(event) = self.event {
                return Poll::Ready(Err(ended(event)));
            }
            if d.inbound.has_input() {
                if let Err(event) = d.inbound.pump(&mut d.read_out) {
                    // Earlier than any validator event; the output before
                    // it is still handed on.
                    self.event = Some(event);
                    d.validator_event = None;
                }
                continue;
            }
            if let Some(event) = d.validator_event.take() {
                self.event = Some(event);
                continue;
            }
            // On the stack: an idle connection keeps no read buffer.
            let mut raw = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut rb = ReadBuf::uninit(&mut raw);
            ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
            let got = rb.filled();
            if got.is_empty() {
                return Poll::Ready(Ok(())); // EOF
            }
            let feed = self.validator.feed(got);
            d.inbound.push(&got[..feed.pass]);
            d.validator_event = feed.event;
        }
    }
}

impl<S: AsyncWrite + Unpin> FrameGuard<S> {
    /// Writes out everything the outbound transformer produced.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(d) = self.deflate.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while d.write_pos < d.write_out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &d.write_out[d.write_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            d.write_pos += n;
        }
        d.write_out.clear();
        d.write_pos = 0;
        if d.write_out.capacity() > 1 << 20 {
            d.write_out.shrink_to(64 * 1024);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_write_deflate(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_drain(cx))?;
        let d = self.deflate.as_mut().expect("deflate state");
        d.outbound
            .write(buf, &mut d.inbound.echo_compressed, &mut d.write_out);
        // Start sending now; what does not fit goes out on the next write or
        // flush (tungstenite flushes after every message).
        if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.deflate.is_some() {
            return this.poll_read_deflate(cx, buf);
        }
        loop {
            if let Some(event) = this.event {
                return Poll::Ready(Err(ended(event)));
            }
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let got = buf.filled().len() - before;
            if got == 0 {
                return Poll::Ready(Ok(())); // EOF
            }
            let feed = this.validator.feed(&buf.filled()[before..]);
            buf.set_filled(before + feed.pass);
            if feed.event.is_some() {
                this.event = feed.event;
            }
            if feed.pass > 0 {
                // Hand over the valid prefix first; the event (if any) is
                // reported on the next read, after tungstenite has processed
                // every complete frame in that prefix.
                return Poll::Ready(Ok(()));
            }
            // Nothing to hand over: either an event is now set, or a close
            // frame is being withheld and we need more of it.
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.deflate.is_some() {
            return self.poll_write_deflate(cx, buf);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.deflate.is_some() {
            let buf = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_write_deflate(cx, buf);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.deflate.is_none() && self.inner.is_write_vectored()
    }
}
