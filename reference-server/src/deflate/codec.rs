//! The zlib streams: the server's compressor and the client's inflater,
//! both made on first use and droppable between messages.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::TAIL;
use crate::vocab::Event;

/// Largest inflated chunk handed on as one frame.
pub(super) const STEP: usize = 16 * 1024;

/// Compresses the server's messages frame by frame.
pub(super) struct Deflater {
    window_bits: u8,
    /// Created by the first message that needs it and dropped by
    /// [`Deflater::release`]: a zlib compressor holds about 300 KB, far more
    /// than an idle connection should. Starting a new compressor between
    /// messages is always allowed: context takeover lets the server refer
    /// back to earlier messages, it never obliges it to (RFC 7692 §7.1.1.1).
    zlib: Option<Box<Compress>>,
    no_context_takeover: bool,
}

impl Deflater {
    pub(super) fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        Deflater {
            window_bits,
            zlib: None,
            no_context_takeover,
        }
    }

    /// Drops the compression context (between messages only).
    pub(super) fn release(&mut self) {
        self.zlib = None;
    }

    /// The compressed payload of one frame of a message; `fin` for the last.
    pub(super) fn compress_frame(&mut self, data: &[u8], fin: bool) -> Vec<u8> {
        // An 8-bit window: stored blocks only, no compressor at all.
        if self.window_bits <= 8 {
            let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 6);
            for chunk in data.chunks(65535) {
                let len = chunk.len() as u16;
                out.push(0x00); // BFINAL 0, BTYPE 00 (stored), padding
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&(!len).to_le_bytes());
                out.extend_from_slice(chunk);
            }
            if fin {
                // The first byte of an empty stored block; the stripped tail
                // is the rest of it.
                out.push(0x00);
            }
            return out;
        }
        if data.is_empty() {
            // zlib emits nothing for a flush right after a flush; the
            // stream is at a block boundary either way, so an empty message
            // is the head of an empty stored block (§7.2.3.6) and an empty
            // non-final frame is empty.
            return if fin { vec![0x00] } else { Vec::new() };
        }
        let bits = self.window_bits;
        let c = self.zlib.get_or_insert_with(|| {
            Box::new(Compress::new_with_window_bits(
                Compression::default(),
                false,
                bits,
            ))
        });
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut input = data;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let before = c.total_in();
            c.compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("raw deflate with a sync flush cannot fail");
            input = &input[(c.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if fin {
            debug_assert!(out.ends_with(&TAIL));
            out.truncate(out.len().saturating_sub(TAIL.len()));
            if self.no_context_takeover {
                c.reset();
            }
        }
        out
    }
}

/// Inflates the client's messages, streaming.
pub(super) struct Inflater {
    /// Created when a compressed message arrives and dropped by
    /// [`Inflater::release`] (zlib's state and window are about 40 KB).
    zlib: Option<Decompress>,
    window_bits: u8,
    no_context_takeover: bool,
    /// Recent output (with context takeover), to prime a new stream after
    /// a block with BFINAL set (RFC 7692 §7.2.3.4) or after a release.
    history: Vec<u8>,
    /// A stream ended with BFINAL and no byte of the next one was fed.
    fresh_after_end: bool,
}

pub(super) enum InflateFail {
    TooLarge,
    Corrupt,
    /// Raised by the output callback.
    Output(Event),
}

impl Inflater {
    pub(super) fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        // zlib has no raw 8-bit window; a 9-bit one decodes a superset.
        let window_bits = window_bits.max(9);
        Inflater {
            zlib: None,
            window_bits,
            no_context_takeover,
            history: Vec::new(),
            fresh_after_end: false,
        }
    }

    /// Gives a fresh stream the window the client may refer back to.
    fn prime(zlib: &mut Decompress, history: &[u8], window_bits: u8) {
        if !history.is_empty() {
            let from = history.len().saturating_sub(1 << window_bits);
            let _ = zlib.set_dictionary(&history[from..]);
        }
    }

    /// After a message (and after a BFINAL block): a new stream, primed with
    /// the window when context is taken over.
    fn restart(&mut self, keep_window: bool) {
        self.fresh_after_end = false;
        if !keep_window {
            self.history.clear();
        }
        if let Some(zlib) = &mut self.zlib {
            zlib.reset(false);
            Self::prime(zlib, &self.history, self.window_bits);
        }
    }

    pub(super) fn end_message(&mut self) {
        if self.no_context_takeover {
            self.restart(false);
        }
    }

    /// Drops the zlib state between messages. With context takeover only
    /// the window itself is kept (the client may refer back into it); the
    /// next message starts a stream primed with it, as after BFINAL.
    pub(super) fn release(&mut self) {
        self.zlib = None;
        let w = 1usize << self.window_bits;
        if self.history.len() > w {
            self.history.drain(..self.history.len() - w);
        }
        self.history.shrink_to_fit();
    }

    /// Inflates `input`, handing the output to `emit` in chunks of at most
    /// [`STEP`] bytes; fails with `TooLarge` before producing more than
    /// `allowed` bytes in total.
    pub(super) fn feed(
        &mut self,
        mut input: &[u8],
        mut allowed: usize,
        emit: &mut dyn FnMut(&[u8]) -> Result<(), Event>,
    ) -> Result<(), InflateFail> {
        if self.fresh_after_end && input == TAIL {
            return Ok(());
        }
        let mut buf = [0u8; STEP];
        while !input.is_empty() {
            self.fresh_after_end = false;
            let room = STEP.min(allowed.saturating_add(1));
            let zlib = match &mut self.zlib {
                Some(zlib) => zlib,
                None => {
                    let mut zlib = Decompress::new_with_window_bits(false, self.window_bits);
                    Self::prime(&mut zlib, &self.history, self.window_bits);
                    self.zlib.insert(zlib)
                }
            };
            let (in0, out0) = (zlib.total_in(), zlib.total_out());
            let status = zlib
                .decompress(input, &mut buf[..room], FlushDecompress::Sync)
                .map_err(|_| InflateFail::Corrupt)?;
            let consumed = (zlib.total_in() - in0) as usize;
            let produced = (zlib.total_out() - out0) as usize;
            if produced > allowed {
                return Err(InflateFail::TooLarge);
            }
            allowed -= produced;
            input = &input[consumed..];
            if produced > 0 {
                emit(&buf[..produced]).map_err(InflateFail::Output)?;
                if !self.no_context_takeover {
                    self.history.extend_from_slice(&buf[..produced]);
                    let w = 1usize << self.window_bits;
                    if self.history.len() > 2 * w {
                        self.history.drain(..self.history.len() - w);
                    }
                }
            }
            match status {
                Status::StreamEnd => {
                    self.restart(!self.no_context_takeover);
                    self.fresh_after_end = true;
                }
                Status::Ok | Status::BufError => {
                    if produced < room && input.is_empty() {
                        break;
                    }
                    if consumed == 0 && produced == 0 {
                        return Err(InflateFail::Corrupt);
                    }
                }
            }
        }
        Ok(())
    }
}
