//! A `text/event-stream` parser that follows WHATWG HTML §9.2.6 ("Interpreting an event stream")
//! to the letter, plus the bookkeeping a strict checker of a *server's* output needs (see
//! `shared/reference/sse.md`, rules C1-C14 for the parser and S4-S13 for what is observed).
//!
//! The parser is fed arbitrary byte chunks. It
//!
//! * strips exactly one leading BOM (`EF BB BF`), even when its bytes arrive in separate chunks
//!   (C2);
//! * splits lines on CRLF, LF and a lone CR, treating a CR that ends one chunk and an LF that
//!   begins the next as one terminator (C3);
//! * decodes every complete line as UTF-8, replacing invalid sequences with U+FFFD (C1). Line
//!   terminators are ASCII, so a line never splits a code point: only the partial trailing line is
//!   buffered;
//! * interprets comments, fields and blank lines exactly as the standard says (C4-C13), and
//!   discards an incomplete event at the end of the stream (C14).
//!
//! [`Parser::feed`] appends owned [`Event`]s; [`Parser::feed_with`] hands out borrowed
//! [`EventRef`]s and allocates nothing per event. [`serialize`] writes events the way a correct
//! server does, for round-trip checks.
//!
//! Memory is bounded whatever the server sends: every list in [`Observations`] is capped at
//! [`LIST_CAP`] entries (the totals keep counting), every stored piece of text at [`TEXT_CAP`]
//! characters, lines longer than [`Parser::with_max_line`] are truncated and an event's data is
//! capped by [`Parser::with_max_data`]. U+FEFF and invalid UTF-8 are only reported within the kept
//! part of a truncated line.

use memchr::{memchr, memchr_iter, memchr2, memrchr2};

/// At most this many entries are kept in each list of [`Observations`]; the totals keep counting.
pub const LIST_CAP: usize = 64;
/// Text stored in [`Observations`] (field names, colon-less lines, retry values) is cut to this
/// many chars.
pub const TEXT_CAP: usize = 80;
/// Default for [`Parser::with_max_line`]: 16 MiB.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024 * 1024;
/// Default for [`Parser::with_max_data`]: [`super::MAX_MESSAGE`] (64 MiB).
pub const DEFAULT_MAX_DATA: usize = super::MAX_MESSAGE as usize;
/// The smallest accepted line cap. Truncation backs off to a code point boundary (at most 3 bytes),
/// so with this minimum a truncated line is never empty and can never turn into a dispatching blank
/// line.
const MIN_MAX_LINE: usize = 4;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
const KNOWN_FIELDS: [&str; 4] = ["event", "data", "id", "retry"];

/// One dispatched event (a `MessageEvent` in a browser).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The event type: `"message"` when there was no `event` field or it was empty.
    pub event_type: String,
    /// The data buffer with its one trailing LF removed.
    pub data: String,
    /// The last event ID buffer at dispatch. It persists across events until an `id` field changes
    /// it.
    pub last_event_id: String,
    /// The `id` field set within this event's block, if any (fields ignored for U+0000 do not
    /// count).
    pub id: Option<String>,
}

/// A dispatched event borrowed from the parser's buffers (see [`Parser::feed_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// The event type: `"message"` when there was no `event` field or it was empty.
    pub event_type: &'a str,
    /// The data buffer with its one trailing LF removed.
    pub data: &'a str,
    /// The last event ID buffer at dispatch.
    pub last_event_id: &'a str,
    /// The `id` field set within this event's block, if any.
    pub id: Option<&'a str>,
}

impl EventRef<'_> {
    /// An owned copy.
    pub fn to_event(&self) -> Event {
        Event {
            event_type: self.event_type.to_owned(),
            data: self.data.to_owned(),
            last_event_id: self.last_event_id.to_owned(),
            id: self.id.map(str::to_owned),
        }
    }
}

/// A line terminator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineEnding {
    /// `\n`
    Lf,
    /// a lone `\r`
    Cr,
    /// `\r\n`
    CrLf,
}

impl LineEnding {
    /// The terminator's bytes.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            LineEnding::Lf => b"\n",
            LineEnding::Cr => b"\r",
            LineEnding::CrLf => b"\r\n",
        }
    }
}

/// How many entries each capped list of [`Observations`] would hold without the cap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListTotals {
    pub bom_not_at_start: u64,
    pub invalid_utf8: u64,
    pub unknown_fields: u64,
    pub miscased_fields: u64,
    pub colonless_lines: u64,
    pub invalid_retry: u64,
    pub ids_with_nul: u64,
    pub overlong_lines: u64,
    pub oversized_events: u64,
}

/// What a strict checker of a *server's* output needs beyond the events. All lists are capped (at
/// most [`LIST_CAP`] entries each; [`Observations::totals`] keeps counting) so a hostile stream
/// cannot grow memory without bound. Byte offsets count every byte fed, including a stripped BOM;
/// line numbers start at 1 and count terminated lines only (blank lines and comments included).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observations {
    /// Bytes fed.
    pub bytes: u64,
    /// Terminated lines.
    pub lines: u64,
    /// Comment lines (starting with `:`).
    pub comments: u64,
    /// Events dispatched (blocks with an empty data buffer fire nothing and are not counted).
    pub events: u64,
    /// Line terminators seen, by kind. A CR that ends a chunk counts as `cr` until the next chunk
    /// shows whether an LF follows it (then it is moved to `crlf`).
    pub lf: u64,
    pub cr: u64,
    pub crlf: u64,
    /// CRLF terminators whose CR was the last byte of a chunk and whose LF was the first byte of
    /// the next.
    pub cr_lf_split_across_chunks: u64,
    /// The stream began with a BOM (which was stripped).
    pub leading_bom: bool,
    /// Byte offsets of U+FEFF anywhere but offset 0 (such a BOM is not stripped; S5).
    pub bom_not_at_start: Vec<u64>,
    /// Byte offsets where invalid UTF-8 was replaced by U+FFFD (one entry per replacement; S4).
    pub invalid_utf8: Vec<u64>,
    /// (line number, field name) of fields other than event/data/id/retry (name cut to [`TEXT_CAP`]
    /// chars).
    pub unknown_fields: Vec<(u64, String)>,
    /// The unknown field names that equal a known one ignoring ASCII case, such as `Data` or `ID`
    /// (S8).
    pub miscased_fields: Vec<(u64, String)>,
    /// Non-empty lines with no colon (text cut to [`TEXT_CAP`] chars). This includes a bare `data`
    /// line, which is legal; a checker filters on the text.
    pub colonless_lines: Vec<(u64, String)>,
    /// `retry` values ignored because they are not a non-empty string of ASCII digits (S13).
    pub invalid_retry: Vec<(u64, String)>,
    /// Line numbers of `id` fields ignored because the value contains U+0000 (S12).
    pub ids_with_nul: Vec<u64>,
    /// The last applied `retry` value, in milliseconds (saturating at `u64::MAX`).
    pub retry: Option<u64>,
    /// Line numbers of lines longer than the parser's line cap (they were truncated).
    pub overlong_lines: Vec<u64>,
    /// Line numbers of the blank lines that dispatched an event whose data exceeded the parser's
    /// data cap (the `data` lines that did not fit were dropped).
    pub oversized_events: Vec<u64>,
    /// The longest line seen so far, in bytes, terminator excluded; a still unterminated line
    /// counts.
    pub longest_line: u64,
    /// [`Parser::finish`] discarded an incomplete event or a partial line (S7).
    pub discarded_at_eof: bool,
    /// Uncapped counts for each list above.
    pub totals: ListTotals,
}

fn push_capped<T>(list: &mut Vec<T>, total: &mut u64, item: impl FnOnce() -> T) {
    *total += 1;
    if list.len() < LIST_CAP {
        list.push(item());
    }
}

/// `s` cut to at most [`TEXT_CAP`] chars.
fn clip(s: &str) -> String {
    match s.char_indices().nth(TEXT_CAP) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

/// `retry` value: base 10, saturating. The caller has checked that `digits` is ASCII digits only.
fn parse_retry(digits: &str) -> u64 {
    digits.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    })
}

/// Drops a trailing incomplete UTF-8 sequence, so a truncated line ends on a code point boundary.
fn cut_incomplete_tail(b: &[u8]) -> &[u8] {
    let n = b.len();
    for back in 1..=n.min(3) {
        let c = b[n - back];
        if c & 0xC0 != 0x80 {
            let need = match c {
                0xF0.. => 4,
                0xE0.. => 3,
                0xC0.. => 2,
                _ => 1,
            };
            return if need > back { &b[..n - back] } else { b };
        }
    }
    b
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of each zero byte of `w` is set (bytes above the first zero byte may be set
/// spuriously, so only the lowest set bit is meaningful).
#[inline(always)]
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(LO) & !w & HI
}

#[inline(always)]
fn word(h: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(h[at..at + 8].try_into().expect("8 bytes"))
}

/// Index of the first CR or LF. Lines are often short (`id: 7`, blank lines), so the first 16 bytes
/// are checked a word at a time (no branch per byte) before handing over to `memchr2`.
#[inline]
fn find_eol(h: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at < 16 && at + 8 <= h.len() {
        let w = word(h, at);
        let m = zero_bytes(w ^ (LO * u64::from(b'\n'))) | zero_bytes(w ^ (LO * u64::from(b'\r')));
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr2(b'\n', b'\r', &h[at..]).map(|i| i + at)
}

/// Index of the first colon. Field names are short, so the first 16 bytes are checked a word at a
/// time.
#[inline]
fn find_colon(h: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at < 16 && at + 8 <= h.len() {
        let m = zero_bytes(word(h, at) ^ (LO * u64::from(b':')));
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr(b':', &h[at..]).map(|i| i + at)
}

/// The interpretation state: the buffers of §9.2.6 and the observations.
#[derive(Default)]
struct Interp {
    /// The data buffer may not grow beyond this many bytes.
    max_data: usize,
    /// A `data` line of the current block was dropped for the cap.
    data_truncated: bool,
    data: String,
    event_type: String,
    /// The "last event ID buffer".
    id_buf: String,
    /// An `id` field was applied in the current block.
    block_has_id: bool,
    /// Field lines (anything but blank lines and comments) since the last blank line.
    pending_fields: bool,
    /// The last event ID as of the last dispatch (what a client would send as `Last-Event-ID`).
    last_event_id: String,
    obs: Observations,
}

impl Interp {
    /// Processes one complete, decoded line (terminator excluded). `n` is its line number.
    fn line<F: FnMut(EventRef<'_>)>(&mut self, line: &str, n: u64, f: &mut F) {
        let bytes = line.as_bytes();
        let Some(&first) = bytes.first() else {
            self.dispatch(f);
            return;
        };
        if first == b':' {
            self.obs.comments += 1;
            return;
        }
        self.pending_fields = true;
        let (name, value) = match find_colon(bytes) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => {
                let o = &mut self.obs;
                push_capped(
                    &mut o.colonless_lines,
                    &mut o.totals.colonless_lines,
                    || (n, clip(line)),
                );
                (line, "")
            }
        };
        match name {
            "data" => {
                if self.data.len() + value.len() < self.max_data {
                    self.data.push_str(value);
                    self.data.push('\n');
                } else {
                    self.data_truncated = true;
                }
            }
            "event" => {
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            "id" => {
                if memchr(0, value.as_bytes()).is_some() {
                    let o = &mut self.obs;
                    push_capped(&mut o.ids_with_nul, &mut o.totals.ids_with_nul, || n);
                } else {
                    self.id_buf.clear();
                    self.id_buf.push_str(value);
                    self.block_has_id = true;
                }
            }
            "retry" => {
                if !value.is_empty() && value.bytes().all(|c| c.is_ascii_digit()) {
                    self.obs.retry = Some(parse_retry(value));
                } else {
                    let o = &mut self.obs;
                    push_capped(&mut o.invalid_retry, &mut o.totals.invalid_retry, || {
                        (n, clip(value))
                    });
                }
            }
            _ => {
                let o = &mut self.obs;
                push_capped(&mut o.unknown_fields, &mut o.totals.unknown_fields, || {
                    (n, clip(name))
                });
                if KNOWN_FIELDS.iter().any(|k| k.eq_ignore_ascii_case(name)) {
                    push_capped(
                        &mut o.miscased_fields,
                        &mut o.totals.miscased_fields,
                        || (n, clip(name)),
                    );
                }
            }
        }
    }

    /// Dispatches the event (§9.2.6 "dispatch the event", steps 1-7).
    fn dispatch<F: FnMut(EventRef<'_>)>(&mut self, f: &mut F) {
        self.pending_fields = false;
        // 1. The last event ID is set from the buffer even when nothing fires.
        // The buffer only changes through an `id` field of this block, so
        // copy only then: a 1 MiB id followed by millions of tiny events
        // must not cost a 1 MiB copy per event.
        let has_id = std::mem::take(&mut self.block_has_id);
        if has_id {
            self.last_event_id.clone_from(&self.id_buf);
        }
        if std::mem::take(&mut self.data_truncated) {
            let o = &mut self.obs;
            let n = o.lines;
            push_capped(
                &mut o.oversized_events,
                &mut o.totals.oversized_events,
                || n,
            );
        }
        // 2. Empty data buffer: reset data and type, fire nothing.
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        // 3. Remove one trailing LF.
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        // 4-6. Fire; the type defaults to "message".
        f(EventRef {
            event_type: if self.event_type.is_empty() {
                "message"
            } else {
                &self.event_type
            },
            data: &self.data,
            last_event_id: &self.last_event_id,
            id: has_id.then_some(self.id_buf.as_str()),
        });
        self.obs.events += 1;
        // 7. Reset data and type (not the last event ID buffer).
        self.data.clear();
        self.event_type.clear();
    }
}

/// The `text/event-stream` parser. Feed it chunks with [`Parser::feed`], then call
/// [`Parser::finish`].
pub struct Parser {
    st: Interp,
    /// Bytes of a leading BOM matched so far (only while `!bom_done`).
    bom_matched: usize,
    /// The start of the body has been passed: no BOM can be stripped any more.
    bom_done: bool,
    /// The previous chunk ended with a CR: an LF at the start of the next chunk belongs to it.
    pending_cr: bool,
    /// The bytes of the unterminated line (at most `max_line`).
    partial: Vec<u8>,
    /// The real length of the unterminated line (may exceed `partial.len()` once truncated).
    partial_len: u64,
    /// Stream offset of the next byte to split into lines.
    offset: u64,
    /// Stream offset of the current line's first byte.
    line_start: u64,
    max_line: usize,
    /// Reused buffer for lines that need U+FFFD replacement.
    lossy: String,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// A parser at the start of a stream, with the default line cap ([`DEFAULT_MAX_LINE`]).
    pub fn new() -> Self {
        Parser {
            st: Interp {
                max_data: DEFAULT_MAX_DATA,
                ..Interp::default()
            },
            bom_matched: 0,
            bom_done: false,
            pending_cr: false,
            partial: Vec::new(),
            partial_len: 0,
            offset: 0,
            line_start: 0,
            max_line: DEFAULT_MAX_LINE,
            lossy: String::new(),
        }
    }

    /// Lines longer than `n` bytes are truncated to at most `n` bytes (backing off to a code point
    /// boundary), still counted and terminated correctly, and recorded in
    /// [`Observations::overlong_lines`]. This bounds memory when a server never sends a newline.
    /// Values below 4 are raised to 4 (so a truncated line is never empty).
    pub fn with_max_line(mut self, n: usize) -> Self {
        self.max_line = n.max(MIN_MAX_LINE);
        self
    }

    /// The data buffer of one event may hold at most `n` bytes: `data` lines that would take it
    /// past the cap are dropped and the event is recorded in [`Observations::oversized_events`].
    /// This bounds memory when a server sends `data` lines and never a blank line. Default
    /// [`DEFAULT_MAX_DATA`].
    pub fn with_max_data(mut self, n: usize) -> Self {
        self.st.max_data = n;
        self
    }

    /// The last event ID as of the last dispatch (the value a client sends as `Last-Event-ID`).
    pub fn last_event_id(&self) -> &str {
        &self.st.last_event_id
    }

    /// Everything observed so far.
    pub fn observations(&self) -> &Observations {
        &self.st.obs
    }

    /// Longest line seen so far, in bytes (terminator excluded; an unterminated line counts).
    pub fn max_line_len(&self) -> u64 {
        self.st.obs.longest_line
    }

    /// Whether the last byte fed was a CR whose follower has not arrived yet: it is counted in
    /// [`Observations::cr`] for now, but an LF at the start of the next chunk makes it half of a
    /// CRLF. A checker that judges line endings before the stream ended must leave it out.
    pub fn undecided_cr(&self) -> bool {
        self.pending_cr
    }

    /// Whether field lines or a partial line are pending, i.e. whether [`Parser::finish`] now would
    /// discard something.
    pub fn has_pending(&self) -> bool {
        self.st.pending_fields || self.partial_len > 0 || (!self.bom_done && self.bom_matched > 0)
    }

    /// Feeds one chunk; dispatched events are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) {
        self.feed_with(chunk, |e| out.push(e.to_event()));
    }

    /// Feeds one chunk and calls `f` with each dispatched event, borrowed from the parser's
    /// buffers. Same semantics as [`Parser::feed`] without allocating per event: use it when the
    /// events are only inspected.
    pub fn feed_with<F: FnMut(EventRef<'_>)>(&mut self, chunk: &[u8], mut f: F) {
        let f = &mut f;
        self.st.obs.bytes += chunk.len() as u64;
        let mut rest = chunk;
        if !self.bom_done {
            while let Some((&b, tail)) = rest.split_first() {
                if b == BOM[self.bom_matched] {
                    self.bom_matched += 1;
                    rest = tail;
                    if self.bom_matched == BOM.len() {
                        self.bom_done = true;
                        self.st.obs.leading_bom = true;
                        self.offset += BOM.len() as u64;
                        self.line_start = self.offset;
                        break;
                    }
                } else {
                    // Not a BOM: the held prefix is ordinary stream content.
                    self.bom_done = true;
                    let held = std::mem::take(&mut self.bom_matched);
                    self.split(&BOM[..held], f);
                    break;
                }
            }
            if !self.bom_done {
                return; // the chunk was a (possibly empty) BOM prefix
            }
            self.bom_matched = 0;
        }
        self.split(rest, f);
    }

    /// End of stream: any incomplete event (pending field lines or a partial line) is discarded, as
    /// §9.2.6 requires; returns true if there was one (also recorded in
    /// [`Observations::discarded_at_eof`]). The last event ID reverts to the value of the last
    /// dispatch. Feeding after `finish` starts a new response body (as after a reconnect): a
    /// leading BOM is stripped again, while the last event ID, retry and observations carry over
    /// (offsets keep counting).
    pub fn finish(&mut self) -> bool {
        let discarded = self.has_pending();
        if discarded {
            self.st.obs.discarded_at_eof = true;
        }
        self.partial.clear();
        self.partial_len = 0;
        self.pending_cr = false;
        self.bom_matched = 0;
        self.bom_done = false;
        // A held BOM prefix was counted in `bytes` but never split.
        self.offset = self.st.obs.bytes;
        self.line_start = self.offset;
        let st = &mut self.st;
        st.data.clear();
        st.event_type.clear();
        st.id_buf.clone_from(&st.last_event_id);
        st.block_has_id = false;
        st.pending_fields = false;
        st.data_truncated = false;
        discarded
    }

    /// Splits BOM-free stream bytes into lines.
    ///
    /// The unterminated line left by the previous chunk is completed first (slow path: joined in
    /// `partial`). Then the region of complete lines, up to the last terminator, is validated as
    /// UTF-8 in one call; if valid (the normal case), its lines are sliced out of the `&str` with
    /// no further validation, and BOMs are found with one scan of the region. Otherwise each line
    /// is decoded on its own. The bytes after the last terminator become the new partial line.
    fn split<F: FnMut(EventRef<'_>)>(&mut self, chunk: &[u8], f: &mut F) {
        if chunk.is_empty() {
            return;
        }
        let base = self.offset;
        let mut pos = 0;
        if std::mem::take(&mut self.pending_cr) && chunk[0] == b'\n' {
            let o = &mut self.st.obs;
            o.cr -= 1;
            o.crlf += 1;
            o.cr_lf_split_across_chunks += 1;
            pos = 1;
            self.line_start = base + 1;
        }
        if self.partial_len > 0 {
            match memchr2(b'\n', b'\r', &chunk[pos..]) {
                None => {}
                Some(rel) => {
                    let end = pos + rel;
                    let next = self.terminator(chunk, end);
                    self.complete_partial(&chunk[pos..end], f);
                    pos = next;
                    self.line_start = base + pos as u64;
                }
            }
        }
        if let Some(last) = memrchr2(b'\n', b'\r', &chunk[pos..]) {
            let region_end = pos + last + 1;
            let valid = std::str::from_utf8(&chunk[pos..region_end]).ok();
            self.split_region(chunk, pos, region_end, valid, f);
            pos = region_end;
        }
        self.append_partial(&chunk[pos..]);
        self.offset = base + chunk.len() as u64;
    }

    /// Counts the terminator at `chunk[end]` (a CR or an LF) and returns the index after it.
    #[inline]
    fn terminator(&mut self, chunk: &[u8], end: usize) -> usize {
        let o = &mut self.st.obs;
        if chunk[end] == b'\n' {
            o.lf += 1;
            end + 1
        } else if end + 1 == chunk.len() {
            o.cr += 1;
            self.pending_cr = true;
            end + 1
        } else if chunk[end + 1] == b'\n' {
            o.crlf += 1;
            end + 2
        } else {
            o.cr += 1;
            end + 1
        }
    }

    /// Processes the complete lines in `chunk[start..end]` (`end` is just past a terminator).
    /// `valid` is that range as a `&str` when it is valid UTF-8.
    fn split_region<F: FnMut(EventRef<'_>)>(
        &mut self,
        chunk: &[u8],
        start: usize,
        end: usize,
        valid: Option<&str>,
        f: &mut F,
    ) {
        let base = self.offset;
        // BOM candidates in the region (valid path only), consumed line by line.
        let mut boms = valid.map(|_| memchr_iter(0xEF, &chunk[start..end]).peekable());
        let mut pos = start;
        while pos < end {
            let eol = pos + find_eol(&chunk[pos..end]).expect("the region ends with a terminator");
            let next = self.terminator(chunk, eol);
            let (n, overlong) = self.count_line((eol - pos) as u64);
            match valid {
                Some(text) => {
                    let mut line = &text[pos - start..eol - start];
                    if overlong {
                        let mut k = self.max_line;
                        while !line.is_char_boundary(k) {
                            k -= 1;
                        }
                        line = &line[..k];
                    }
                    if let Some(boms) = boms.as_mut() {
                        let kept_end = pos - start + line.len();
                        while let Some(&h) = boms.peek() {
                            if h >= eol - start {
                                break;
                            }
                            boms.next();
                            if h + 3 <= kept_end && text.as_bytes()[h + 1..].starts_with(&BOM[1..])
                            {
                                let o = &mut self.st.obs;
                                push_capped(
                                    &mut o.bom_not_at_start,
                                    &mut o.totals.bom_not_at_start,
                                    || base + h as u64 + start as u64,
                                );
                            }
                        }
                    }
                    self.st.line(line, n, f);
                }
                None => {
                    let bytes = &chunk[pos..eol];
                    let bytes = if overlong {
                        cut_incomplete_tail(&bytes[..self.max_line])
                    } else {
                        bytes
                    };
                    self.decode_line(bytes, n, f);
                }
            }
            pos = next;
            self.line_start = base + pos as u64;
        }
    }

    /// Counts a terminated line of `len` bytes; returns its line number and whether it is overlong.
    #[inline]
    fn count_line(&mut self, len: u64) -> (u64, bool) {
        let o = &mut self.st.obs;
        o.lines += 1;
        let n = o.lines;
        o.longest_line = o.longest_line.max(len);
        let overlong = len > self.max_line as u64;
        if overlong {
            push_capped(&mut o.overlong_lines, &mut o.totals.overlong_lines, || n);
        }
        (n, overlong)
    }

    fn append_partial(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let room = self.max_line.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.partial_len += bytes.len() as u64;
        let o = &mut self.st.obs;
        o.longest_line = o.longest_line.max(self.partial_len);
    }

    /// The partial line ended; `tail` is its part in the current chunk.
    fn complete_partial<F: FnMut(EventRef<'_>)>(&mut self, tail: &[u8], f: &mut F) {
        let (n, overlong) = self.count_line(self.partial_len + tail.len() as u64);
        let room = self.max_line.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&tail[..tail.len().min(room)]);
        let buf = std::mem::take(&mut self.partial);
        let bytes = if overlong {
            cut_incomplete_tail(&buf)
        } else {
            &buf[..]
        };
        self.decode_line(bytes, n, f);
        self.partial = buf;
        self.partial.clear();
        self.partial_len = 0;
    }

    /// Records BOMs, decodes (replacing invalid UTF-8) and interprets one line.
    fn decode_line<F: FnMut(EventRef<'_>)>(&mut self, bytes: &[u8], n: u64, f: &mut F) {
        let start = self.line_start;
        let o = &mut self.st.obs;
        for i in memchr_iter(0xEF, bytes) {
            if bytes[i + 1..].starts_with(&BOM[1..]) {
                push_capped(
                    &mut o.bom_not_at_start,
                    &mut o.totals.bom_not_at_start,
                    || start + i as u64,
                );
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(line) => self.st.line(line, n, f),
            Err(_) => {
                let mut text = std::mem::take(&mut self.lossy);
                text.clear();
                let mut at = start;
                for piece in bytes.utf8_chunks() {
                    text.push_str(piece.valid());
                    at += piece.valid().len() as u64;
                    if !piece.invalid().is_empty() {
                        text.push(char::REPLACEMENT_CHARACTER);
                        push_capped(&mut o.invalid_utf8, &mut o.totals.invalid_utf8, || at);
                        at += piece.invalid().len() as u64;
                    }
                }
                self.st.line(&text, n, f);
                self.lossy = text;
            }
        }
    }
}

/// One event for [`serialize`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutEvent<'a> {
    /// Written as an `id` line when `Some` (`Some("")` resets the last event ID). Must not contain
    /// CR, LF or U+0000.
    pub id: Option<&'a str>,
    /// Written as an `event` line unless `None`, empty or `"message"`. Must not contain CR or LF.
    pub event_type: Option<&'a str>,
    /// Split on CR, LF and CRLF into one `data` line per line.
    pub data: &'a str,
}

impl<'a> OutEvent<'a> {
    /// A `message` event with no id.
    pub fn message(data: &'a str) -> Self {
        OutEvent {
            id: None,
            event_type: None,
            data,
        }
    }
}

/// Serialises events the way a correct server should: an `id` line only if `Some`, an `event` line
/// only if the type is not `message` (or empty), the data split on CR, LF and CRLF into one `data`
/// line per line (`data: ` + line, or `data:` for an empty line, so a leading space survives), each
/// line ended with `ending`, and a blank line after each event. Every serialised event fires, with
/// exactly its data once CR and CRLF are normalised to LF. Ids and types containing CR or LF are
/// written as is (they would inject lines); a correct server never sends them.
pub fn serialize(events: &[OutEvent<'_>], ending: LineEnding) -> Vec<u8> {
    let nl = ending.as_bytes();
    let mut out = Vec::with_capacity(events.iter().map(|e| e.data.len() + 32).sum());
    for ev in events {
        if let Some(id) = ev.id {
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(nl);
        }
        if let Some(t) = ev.event_type.filter(|t| !t.is_empty() && *t != "message") {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(nl);
        }
        let data = ev.data.as_bytes();
        let mut start = 0;
        loop {
            let end = memchr2(b'\r', b'\n', &data[start..]).map_or(data.len(), |i| start + i);
            let line = &data[start..end];
            out.extend_from_slice(if line.is_empty() { b"data:" } else { b"data: " });
            out.extend_from_slice(line);
            out.extend_from_slice(nl);
            if end == data.len() {
                break;
            }
            start = if data[end] == b'\r' && data.get(end + 1) == Some(&b'\n') {
                end + 2
            } else {
                end + 1
            };
        }
        out.extend_from_slice(nl);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `chunks`, then finishes. Returns the events, the parser and what `finish` returned.
    fn run(chunks: &[&[u8]]) -> (Vec<Event>, Parser, bool) {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out);
        }
        let discarded = p.finish();
        (out, p, discarded)
    }

    fn events(input: &[u8]) -> Vec<Event> {
        run(&[input]).0
    }

    /// `input` fed one byte at a time.
    fn bytewise(input: &[u8]) -> (Vec<Event>, Parser, bool) {
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        run(&chunks)
    }

    fn ev(event_type: &str, data: &str, last_event_id: &str, id: Option<&str>) -> Event {
        Event {
            event_type: event_type.into(),
            data: data.into(),
            last_event_id: last_event_id.into(),
            id: id.map(Into::into),
        }
    }

    fn msg(data: &str) -> Event {
        ev("message", data, "", None)
    }

    fn datas(evs: &[Event]) -> Vec<&str> {
        evs.iter().map(|e| e.data.as_str()).collect()
    }

    // C2 / S5: BOM.
    #[test]
    fn bom_stripped_once() {
        let (evs, p, _) = run(&[b"\xEF\xBB\xBFdata: a\n\n"]);
        assert_eq!(evs, vec![msg("a")]);
        let o = p.observations();
        assert!(o.leading_bom);
        assert!(o.bom_not_at_start.is_empty());
        assert!(o.unknown_fields.is_empty());
        assert_eq!(o.bytes, 12);
    }

    #[test]
    fn second_bom_is_kept_and_makes_an_unknown_field() {
        let (evs, p, _) = run(&[b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n"]);
        assert_eq!(evs, vec![msg("b")]);
        let o = p.observations();
        assert!(o.leading_bom);
        assert_eq!(o.bom_not_at_start, vec![3]);
        assert_eq!(o.unknown_fields, vec![(1, "\u{FEFF}data".to_string())]);
        assert!(o.miscased_fields.is_empty());
    }

    #[test]
    fn bom_split_across_chunks() {
        let (evs, p, _) = run(&[b"\xEF", b"", b"\xBB", b"\xBF", b"data: a\n\n"]);
        assert_eq!(evs, vec![msg("a")]);
        assert!(p.observations().leading_bom);
        let (evs, p, _) = run(&[b"\xEF\xBB", b"\xBFdata: a\n\n"]);
        assert_eq!(evs, vec![msg("a")]);
        assert!(p.observations().leading_bom);
    }

    #[test]
    fn bom_prefix_that_is_not_a_bom_is_content() {
        // EF BB followed by 'd' is one invalid sequence: one U+FFFD at offset 0.
        let (evs, p, _) = run(&[b"\xEF\xBB", b"data: a\n\ndata: b\n\n"]);
        assert_eq!(evs, vec![msg("b")]);
        let o = p.observations();
        assert!(!o.leading_bom);
        assert_eq!(o.invalid_utf8, vec![0]);
        assert_eq!(o.unknown_fields, vec![(1, "\u{FFFD}data".to_string())]);
        // A lone EF followed by a terminator.
        let (evs, p, _) = run(&[b"\xEF", b"\ndata: a\n\n"]);
        assert_eq!(evs, vec![msg("a")]);
        assert_eq!(p.observations().invalid_utf8, vec![0]);
        assert_eq!(
            p.observations().colonless_lines,
            vec![(1, "\u{FFFD}".to_string())]
        );
    }

    #[test]
    fn bom_in_the_middle_split_across_chunks_is_recorded() {
        let (evs, p, _) = run(&[
            b"data: a\n\n\xEF",
            b"\xBB\xBFdata: b\n\ndata: c\xEF\xBB\xBF\n\n",
        ]);
        assert_eq!(evs, vec![msg("a"), msg("c\u{FEFF}")]);
        assert_eq!(p.observations().bom_not_at_start, vec![9, 28]);
    }

    #[test]
    fn bom_only_stream_and_partial_bom_at_eof() {
        let (evs, _, discarded) = run(&[b"\xEF\xBB\xBF"]);
        assert!(evs.is_empty());
        assert!(!discarded);
        let (_, _, discarded) = run(&[b"\xEF\xBB"]);
        assert!(discarded);
    }

    // C3 / S6: line endings.
    #[test]
    fn all_line_endings_are_equivalent() {
        for (input, lf, cr, crlf) in [
            (&b"data: a\ndata: b\n\n"[..], 3, 0, 0),
            (b"data: a\rdata: b\r\r", 0, 3, 0),
            (b"data: a\r\ndata: b\r\n\r\n", 0, 0, 3),
            (b"data: a\ndata: b\r\r\n", 1, 1, 1),
        ] {
            for (evs, p, _) in [run(&[input]), bytewise(input)] {
                assert_eq!(evs, vec![msg("a\nb")], "{input:?}");
                let o = p.observations();
                assert_eq!(
                    (o.lf, o.cr, o.crlf, o.lines),
                    (lf, cr, crlf, 3),
                    "{input:?}"
                );
            }
        }
    }

    #[test]
    fn cr_lf_split_across_chunks_is_one_terminator() {
        // If the LF were a second terminator it would be a blank line and dispatch "a" alone.
        let (evs, p, _) = run(&[b"data: a\r", b"\ndata: b\r\n\r\n"]);
        assert_eq!(evs, vec![msg("a\nb")]);
        let o = p.observations();
        assert_eq!(
            (o.lf, o.cr, o.crlf, o.cr_lf_split_across_chunks),
            (0, 0, 3, 1)
        );
        // An empty chunk in between changes nothing.
        let (evs, p, _) = run(&[b"data: a\r", b"", b"\ndata: b\r\n\r\n"]);
        assert_eq!(evs, vec![msg("a\nb")]);
        assert_eq!(p.observations().cr_lf_split_across_chunks, 1);
        // The blank line's CR at the end of a chunk dispatches at once.
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(b"data: a\r\n\r", &mut out);
        assert_eq!(out, vec![msg("a")]);
        p.feed(b"\ndata: b\n\n", &mut out);
        assert_eq!(out, vec![msg("a"), msg("b")]);
        assert_eq!(p.observations().crlf, 2);
        assert_eq!(p.observations().cr_lf_split_across_chunks, 1);
    }

    #[test]
    fn a_cr_ending_a_chunk_is_undecided_until_the_next_byte() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(b"data: a\r\n\r", &mut out);
        assert!(p.undecided_cr());
        p.feed(b"\n", &mut out);
        assert!(!p.undecided_cr());
        assert_eq!(p.observations().cr, 0);
        p.feed(b"data: b\r", &mut out);
        assert!(p.undecided_cr());
        p.feed(b"\r", &mut out);
        // The first CR is now known to be lone; the second is undecided.
        assert_eq!(p.observations().cr, 2);
        assert!(p.undecided_cr());
        p.finish();
        assert!(!p.undecided_cr());
    }

    #[test]
    fn cr_at_chunk_end_followed_by_other_bytes() {
        let (evs, p, _) = run(&[b"data: a\r", b"data: b\r", b"\r"]);
        assert_eq!(evs, vec![msg("a\nb")]);
        let o = p.observations();
        assert_eq!((o.cr, o.crlf, o.cr_lf_split_across_chunks), (3, 0, 0));
    }

    // C4: blank lines.
    #[test]
    fn extra_blank_lines_dispatch_nothing() {
        assert_eq!(
            events(b"\n\ndata: a\n\n\n\n\ndata: b\n\n\n"),
            vec![msg("a"), msg("b")]
        );
    }

    // C5: comments.
    #[test]
    fn comments_are_ignored() {
        let long = format!(":{}\n", "x".repeat(100_000));
        let input = [b":\0\n:data: fail\n: ok\ndata: a\n", long.as_bytes(), b"\n"].concat();
        let (evs, p, _) = run(&[&input]);
        assert_eq!(evs, vec![msg("a")]);
        assert_eq!(p.observations().comments, 4);
        assert!(p.observations().unknown_fields.is_empty());
        // A trailing keep-alive comment is not an incomplete event.
        let (_, _, discarded) = run(&[b"data: a\n\n: ping\n"]);
        assert!(!discarded);
    }

    // C6 / S10: colon and space handling.
    #[test]
    fn split_at_first_colon_and_strip_one_space() {
        let cases: [(&[u8], &str); 7] = [
            (b"data:x\n\n", "x"),
            (b"data: x\n\n", "x"),
            (b"data:  x\n\n", " x"),
            (b"data:\tx\n\n", "\tx"),
            (b"data: a:b: c\n\n", "a:b: c"),
            (b"data::x\n\n", ":x"),
            (b"data: \n\n", ""),
        ];
        for (input, data) in cases {
            assert_eq!(events(input), vec![msg(data)], "{input:?}");
        }
    }

    // C7: a line with no colon.
    #[test]
    fn field_without_colon_has_empty_value() {
        assert_eq!(events(b"data\n\n"), vec![msg("")]);
        assert_eq!(events(b"data:\n\n"), vec![msg("")]);
        assert_eq!(events(b"data\ndata\n\n"), vec![msg("\n")]);
        let (_, p, _) = run(&[b"data\nfoo\n\n"]);
        let o = p.observations();
        assert_eq!(
            o.colonless_lines,
            vec![(1, "data".into()), (2, "foo".into())]
        );
        assert_eq!(o.unknown_fields, vec![(2, "foo".into())]);
    }

    #[test]
    fn colonless_text_is_truncated() {
        let line = "é".repeat(200);
        let (_, p, _) = run(&[format!("{line}\n").as_bytes()]);
        assert_eq!(p.observations().colonless_lines, vec![(1, "é".repeat(80))]);
        assert_eq!(p.observations().unknown_fields, vec![(1, "é".repeat(80))]);
    }

    // C8 / S8: field names are literal.
    #[test]
    fn unknown_and_miscased_fields_are_ignored_and_recorded() {
        let input = concat!(
            "Data:1\ndata\0:2\nda-ta:3\n data:4\nfoobar:xxx\n",
            "ID: 9\nEVENT: x\nRetry: 5\ndata: ok\n\n"
        )
        .as_bytes();
        let (evs, p, _) = run(&[input]);
        assert_eq!(evs, vec![msg("ok")]);
        let o = p.observations();
        let names: Vec<&str> = o.unknown_fields.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Data", "data\0", "da-ta", " data", "foobar", "ID", "EVENT", "Retry"
            ]
        );
        assert_eq!(
            o.miscased_fields,
            vec![
                (1, "Data".into()),
                (6, "ID".into()),
                (7, "EVENT".into()),
                (8, "Retry".into())
            ]
        );
        assert_eq!(o.retry, None);
        assert_eq!(p.last_event_id(), "");
    }

    // C9: data.
    #[test]
    fn data_lines_join_with_lf_and_one_trailing_lf_is_removed() {
        assert_eq!(events(b"data: a\ndata: b\n\n"), vec![msg("a\nb")]);
        assert_eq!(events(b"data: a\ndata:\n\n"), vec![msg("a\n")]);
        assert_eq!(events(b"data\n\n"), vec![msg("")]);
        assert_eq!(events(b"data: \0\n\n"), vec![msg("\0")]);
    }

    // C10: event type.
    #[test]
    fn event_type() {
        let evs = events(
            b"event: update\ndata: a\n\ndata: b\n\nevent:\ndata: c\n\nevent:  x\ndata: d\n\n",
        );
        assert_eq!(
            evs,
            vec![
                ev("update", "a", "", None),
                msg("b"),
                msg("c"),
                ev(" x", "d", "", None)
            ]
        );
        // The last event field wins; the type does not leak into an empty block.
        let evs = events(b"event: a\nevent: b\ndata: x\n\nevent: c\n\ndata: y\n\n");
        assert_eq!(evs, vec![ev("b", "x", "", None), msg("y")]);
    }

    // C11 / S12: id.
    #[test]
    fn id_with_nul_is_ignored() {
        for bad in [
            &b"id: \0\0"[..],
            b"id: x\0",
            b"id: \0x",
            b"id: x\0x",
            b"id:  \0",
            b"id:\0",
        ] {
            let input = [b"id: 1\ndata: a\n\n", bad, b"\ndata: b\n\n"].concat();
            let (evs, p, _) = run(&[&input]);
            assert_eq!(
                evs,
                vec![
                    ev("message", "a", "1", Some("1")),
                    ev("message", "b", "1", None)
                ]
            );
            assert_eq!(p.observations().ids_with_nul, vec![4], "{bad:?}");
            assert_eq!(p.last_event_id(), "1");
        }
    }

    #[test]
    fn empty_id_resets() {
        let evs = events(b"id: 1\ndata: a\n\nid\ndata: b\n\nid: 2\ndata: c\n\nid:\ndata: d\n\n");
        assert_eq!(
            evs,
            vec![
                ev("message", "a", "1", Some("1")),
                ev("message", "b", "", Some("")),
                ev("message", "c", "2", Some("2")),
                ev("message", "d", "", Some("")),
            ]
        );
    }

    #[test]
    fn id_persists_across_events() {
        let (evs, p, _) = run(&[b"id: 1\ndata: a\n\ndata: b\n\nid:  x \ndata: c\n\n"]);
        assert_eq!(
            evs,
            vec![
                ev("message", "a", "1", Some("1")),
                ev("message", "b", "1", None),
                ev("message", "c", " x ", Some(" x ")),
            ]
        );
        assert_eq!(p.last_event_id(), " x ");
    }

    #[test]
    fn non_ascii_id() {
        assert_eq!(
            events("id: …\ndata: a\n\n".as_bytes()),
            vec![ev("message", "a", "…", Some("…"))]
        );
    }

    // C12 / S13: retry.
    #[test]
    fn retry() {
        let (_, p, _) = run(&[b"retry: 03000\n\n"]);
        assert_eq!(p.observations().retry, Some(3000));
        assert!(p.observations().invalid_retry.is_empty());
        let (_, p, _) = run(&[b"retry:7\nretry: 99999999999999999999999999\n\n"]);
        assert_eq!(p.observations().retry, Some(u64::MAX));
        let input = concat!(
            "retry: 1000\nretry: 1000x\nretry:\nretry: 1.5\n",
            "retry:  1000\nretry: -1\nretry: +5\nretry\n\n"
        )
        .as_bytes();
        let (evs, p, _) = run(&[input]);
        assert!(evs.is_empty());
        let o = p.observations();
        assert_eq!(o.retry, Some(1000));
        let bad: Vec<&str> = o.invalid_retry.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(bad, ["1000x", "", "1.5", " 1000", "-1", "+5", ""]);
        assert_eq!(o.invalid_retry[0].0, 2);
    }

    // C13 / S15: dispatch.
    #[test]
    fn id_only_block_updates_the_id_but_fires_nothing() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(b"id: 5\n\n", &mut out);
        assert!(out.is_empty());
        assert_eq!(p.last_event_id(), "5");
        assert_eq!(p.observations().events, 0);
        p.feed(b"data: a\n\n", &mut out);
        assert_eq!(out, vec![ev("message", "a", "5", None)]);
        // An id-only block resets a pending event type too.
        assert_eq!(
            events(b"event: x\nid: 1\n\ndata: a\n\n"),
            vec![ev("message", "a", "1", None)]
        );
    }

    #[test]
    fn empty_data_fires_an_empty_message() {
        let (evs, p, _) = run(&[b"id: 1\ndata: \n\n"]);
        assert_eq!(evs, vec![ev("message", "", "1", Some("1"))]);
        assert_eq!(p.observations().events, 1);
    }

    // C14 / S7: end of stream.
    #[test]
    fn incomplete_event_is_discarded_at_eof() {
        let (evs, p, discarded) = run(&[b"data: a\n\ndata: b\n"]);
        assert_eq!(evs, vec![msg("a")]);
        assert!(discarded);
        assert!(p.observations().discarded_at_eof);
        let (evs, _, discarded) = run(&[b"data: a\n\ndata: b"]);
        assert_eq!(evs, vec![msg("a")]);
        assert!(discarded);
        let (evs, p, discarded) = run(&[b"data: a\n\n"]);
        assert_eq!(evs, vec![msg("a")]);
        assert!(!discarded);
        assert!(!p.observations().discarded_at_eof);
        // The pending id is discarded with the event.
        let (_, p, discarded) = run(&[b"id: 1\ndata: a\n\nid: 9\n"]);
        assert!(discarded);
        assert_eq!(p.last_event_id(), "1");
        // An unknown field still makes the final block incomplete.
        assert!(run(&[b"data: a\n\nfoo: bar\n"]).2);
    }

    #[test]
    fn feeding_after_finish_starts_a_new_body() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b", &mut out);
        assert!(p.finish());
        p.feed(b"\xEF\xBB\xBFdata: c\n\n", &mut out);
        assert!(!p.finish());
        assert_eq!(
            out,
            vec![
                ev("message", "a", "1", Some("1")),
                ev("message", "c", "1", None)
            ]
        );
        assert!(p.observations().bom_not_at_start.is_empty());
        // A held BOM prefix at EOF is a discarded partial line; offsets stay right.
        let mut p = Parser::new();
        p.feed(b"\xEF", &mut out);
        assert!(p.finish());
        p.feed(b"data: a\xEF\xBB\xBF\n\n", &mut out);
        assert_eq!(p.observations().bom_not_at_start, vec![8]);
    }

    // C1 / S4: UTF-8.
    #[test]
    fn multibyte_characters_in_single_byte_chunks() {
        let input = "id: ☃\nevent: é\ndata: héllo €𝄞\n\n".as_bytes();
        let (evs, p, _) = bytewise(input);
        assert_eq!(evs, vec![ev("é", "héllo €𝄞", "☃", Some("☃"))]);
        assert!(p.observations().invalid_utf8.is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced_and_recorded() {
        let (evs, p, _) = bytewise(b"data: a\xFFb\n\n");
        assert_eq!(evs, vec![msg("a\u{FFFD}b")]);
        assert_eq!(p.observations().invalid_utf8, vec![7]);
        // A truncated sequence before the terminator is one replacement; the terminator survives.
        let (evs, p, _) = run(&[b"data: \xE2\x82\ndata: \xF0\x9F\x98\r\n\xC3\n\n"]);
        assert_eq!(evs, vec![msg("\u{FFFD}\n\u{FFFD}")]);
        let o = p.observations();
        assert_eq!(o.invalid_utf8, vec![6, 15, 20]);
        assert_eq!(o.unknown_fields, vec![(3, "\u{FFFD}".into())]);
        // Surrogates and overlongs: one replacement per byte (maximal subparts).
        assert_eq!(
            events(b"data: \xED\xA0\x80\xC0\xAF\n\n"),
            vec![msg(&"\u{FFFD}".repeat(5))]
        );
    }

    // Line cap.
    #[test]
    fn overlong_lines_are_truncated() {
        let line = format!("data: {}\n\n", "a".repeat(100));
        for chunk in [1, 7, 1000] {
            let mut p = Parser::new().with_max_line(16);
            let mut out = Vec::new();
            for c in line.as_bytes().chunks(chunk) {
                p.feed(c, &mut out);
            }
            assert!(!p.finish());
            assert_eq!(out, vec![msg(&"a".repeat(10))], "chunk {chunk}");
            let o = p.observations();
            assert_eq!(o.overlong_lines, vec![1]);
            assert_eq!(o.lines, 2);
            assert_eq!(p.max_line_len(), 106);
        }
        // Truncation backs off to a code point boundary.
        let mut p = Parser::new().with_max_line(8);
        let mut out = Vec::new();
        p.feed("data: é€\n\n".as_bytes(), &mut out);
        assert_eq!(out, vec![msg("é")]);
        assert!(p.observations().invalid_utf8.is_empty());
        // The longest line counts an unterminated line.
        let mut p = Parser::new().with_max_line(4);
        p.feed(&[b'x'; 1000], &mut out);
        p.feed(&[b'x'; 1000], &mut out);
        assert_eq!(p.max_line_len(), 2000);
        assert!(p.has_pending());
    }

    #[test]
    fn data_buffer_is_capped() {
        let mut p = Parser::new().with_max_data(10);
        let mut out = Vec::new();
        p.feed(b"data: 1234\ndata: 5678\ndata: 9\n\ndata: ok\n\n", &mut out);
        assert_eq!(out, vec![msg("1234\n5678"), msg("ok")]);
        assert_eq!(p.observations().oversized_events, vec![4]);
        assert_eq!(p.observations().totals.oversized_events, 1);
    }

    #[test]
    fn lists_are_capped_but_counted() {
        let input = "foo: 1\n".repeat(100);
        let (_, p, _) = run(&[input.as_bytes()]);
        let o = p.observations();
        assert_eq!(o.unknown_fields.len(), LIST_CAP);
        assert_eq!(o.totals.unknown_fields, 100);
        assert_eq!(o.unknown_fields[63], (64, "foo".into()));
    }

    #[test]
    fn counts() {
        let (evs, p, _) = run(&[b": hi\nid: 1\ndata: a\n\ndata: b\r\n\r\n", b"\n"]);
        assert_eq!(datas(&evs), ["a", "b"]);
        let o = p.observations();
        assert_eq!((o.bytes, o.lines, o.comments, o.events), (32, 7, 1, 2));
        assert_eq!((o.lf, o.cr, o.crlf), (5, 0, 2));
    }

    #[test]
    fn serialize_output() {
        let evs = [
            OutEvent {
                id: Some("7"),
                event_type: Some("update"),
                data: "a\nb\r\nc\rd",
            },
            OutEvent {
                id: None,
                event_type: Some("message"),
                data: "",
            },
            OutEvent {
                id: Some(""),
                event_type: Some(""),
                data: " x\n",
            },
        ];
        assert_eq!(
            serialize(&evs, LineEnding::Lf),
            concat!(
                "id: 7\nevent: update\ndata: a\ndata: b\ndata: c\ndata: d\n\n",
                "data:\n\n",
                "id: \ndata:  x\ndata:\n\n"
            )
            .as_bytes()
        );
        assert_eq!(
            serialize(&[OutEvent::message("a")], LineEnding::CrLf),
            b"data: a\r\n\r\n"
        );
        assert_eq!(
            serialize(&[OutEvent::message("a")], LineEnding::Cr),
            b"data: a\r\r"
        );
        assert_eq!(
            events(&serialize(&evs, LineEnding::Cr)),
            vec![
                ev("update", "a\nb\nc\nd", "7", Some("7")),
                ev("message", "", "7", None),
                ev("message", " x\n", "", Some("")),
            ]
        );
    }

    /// A deliberately naive transcription of §9.2.6 over the whole input: decode, split the text
    /// character by character, interpret. The parser must agree with it on any input.
    fn reference(input: &[u8]) -> (Vec<Event>, String, Option<u64>) {
        let input = input.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(input);
        let chars: Vec<char> = String::from_utf8_lossy(input).chars().collect();
        let mut lines = Vec::new();
        let mut current = String::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '\r' => {
                    lines.push(std::mem::take(&mut current));
                    if chars.get(i + 1) == Some(&'\n') {
                        i += 1;
                    }
                }
                '\n' => lines.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
            i += 1;
        }
        let (mut data, mut ty, mut id_buf, mut last_id) =
            (String::new(), String::new(), String::new(), String::new());
        let mut block_id: Option<String> = None;
        let mut retry = None;
        let mut out = Vec::new();
        for line in lines {
            if line.is_empty() {
                last_id = id_buf.clone();
                let id = block_id.take();
                if data.is_empty() {
                    ty.clear();
                    continue;
                }
                if data.ends_with('\n') {
                    data.truncate(data.len() - 1);
                }
                let event_type = if ty.is_empty() {
                    "message".to_string()
                } else {
                    ty.clone()
                };
                out.push(Event {
                    event_type,
                    data: data.clone(),
                    last_event_id: last_id.clone(),
                    id,
                });
                data.clear();
                ty.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (name, value) = match line.find(':') {
                Some(c) => {
                    let v = &line[c + 1..];
                    (&line[..c], v.strip_prefix(' ').unwrap_or(v))
                }
                None => (&line[..], ""),
            };
            if name == "event" {
                ty = value.to_string();
            } else if name == "data" {
                data += value;
                data += "\n";
            } else if name == "id" {
                if !value.contains('\0') {
                    id_buf = value.to_string();
                    block_id = Some(id_buf.clone());
                }
            } else if name == "retry"
                && !value.is_empty()
                && value.chars().all(|c| c.is_ascii_digit())
            {
                retry = Some(value.parse::<u64>().unwrap_or(u64::MAX));
            }
        }
        (out, last_id, retry)
    }

    /// Splits `input` at the given points (any order, any count).
    fn chunked<'a>(input: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        at.push(0);
        at.push(input.len());
        at.sort_unstable();
        at.windows(2).map(|w| &input[w[0]..w[1]]).collect()
    }

    /// Byte strings made of the tokens that matter to the grammar.
    fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
        static TOKENS: [&[u8]; 21] = [
            b"data",
            b"id",
            b"event",
            b"retry",
            b"Data",
            b":",
            b": ",
            b" ",
            b"\n",
            b"\n",
            b"\r",
            b"\r\n",
            b"\0",
            b"\xEF\xBB\xBF",
            b"\xEF\xBB",
            b"\xFF",
            "é".as_bytes(),
            "€".as_bytes(),
            b"12",
            b"x",
            b"\t",
        ];
        let token = prop::sample::select(&TOKENS[..]);
        prop::collection::vec(token, 0..60).prop_map(|t| t.concat())
    }

    fn text(extra: &'static [char]) -> impl Strategy<Value = String> {
        let c = prop_oneof![
            4 => any::<char>(),
            1 => prop::sample::select(extra),
        ];
        prop::collection::vec(c, 0..12).prop_map(|v| v.into_iter().collect())
    }

    /// Ids: no U+0000, CR or LF.
    fn round_trip_id() -> impl Strategy<Value = Option<String>> {
        let id = text(&[' ', ':', 'x', '\u{FEFF}', '\t']);
        prop::option::of(id.prop_map(|s| s.replace(['\0', '\r', '\n'], "")))
    }

    /// Event types: no CR or LF.
    fn round_trip_type() -> impl Strategy<Value = Option<String>> {
        prop::option::of(text(&[' ', ':', 'x', '\t']).prop_map(|s| s.replace(['\r', '\n'], "")))
    }

    /// Data: anything, often with line breaks, colons, leading spaces, NUL, BOM, non-ASCII, and
    /// sometimes a trailing line break or an embedded `data: x`.
    fn round_trip_data() -> impl Strategy<Value = String> {
        let endings = vec!["", "\r\n", "\n", "\r", " ", "data: x"];
        text(&['\r', '\n', ':', ' ', '\0', '\u{FEFF}', 'é']).prop_flat_map(move |s| {
            prop::sample::select(endings.clone()).prop_map(move |t| format!("{s}{t}"))
        })
    }

    fn ending() -> impl Strategy<Value = LineEnding> {
        prop_oneof![
            Just(LineEnding::Lf),
            Just(LineEnding::Cr),
            Just(LineEnding::CrLf)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn serialised_events_round_trip(
            evs in prop::collection::vec(
                (round_trip_id(), round_trip_type(), round_trip_data()),
                0..8,
            ),
            ending in ending(),
            bom in any::<bool>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let out: Vec<OutEvent<'_>> = evs
                .iter()
                .map(|(id, t, d)| OutEvent { id: id.as_deref(), event_type: t.as_deref(), data: d })
                .collect();
            let mut stream = if bom { BOM.to_vec() } else { Vec::new() };
            stream.extend(serialize(&out, ending));
            let (parsed, p, discarded) = run(&chunked(&stream, &cuts));
            prop_assert!(!discarded);
            let mut last = String::new();
            let expected: Vec<Event> = evs
                .iter()
                .map(|(id, t, d)| {
                    if let Some(id) = id {
                        last = id.clone();
                    }
                    let t = t.as_deref().filter(|t| !t.is_empty()).unwrap_or("message");
                    ev(t, &d.replace("\r\n", "\n").replace('\r', "\n"), &last, id.as_deref())
                })
                .collect();
            prop_assert_eq!(&parsed, &expected);
            let o = p.observations();
            prop_assert_eq!(o.events, evs.len() as u64);
            prop_assert_eq!(o.leading_bom, bom);
            prop_assert!(o.unknown_fields.is_empty() && o.invalid_utf8.is_empty());
            prop_assert!(o.ids_with_nul.is_empty() && o.colonless_lines.is_empty());
            prop_assert_eq!(p.last_event_id(), last.as_str());
        }

        #[test]
        fn agrees_with_the_reference_in_any_chunking(
            input in sse_bytes(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let (want, want_id, want_retry) = reference(&input);
            let (got, p, _) = run(&chunked(&input, &cuts));
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(p.last_event_id(), want_id.as_str());
            prop_assert_eq!(p.observations().retry, want_retry);
            // Observations do not depend on chunking, except the split-CRLF counter.
            let (_, whole, _) = run(&[&input]);
            let mut a = p.observations().clone();
            let mut b = whole.observations().clone();
            a.cr_lf_split_across_chunks = 0;
            b.cr_lf_split_across_chunks = 0;
            prop_assert_eq!(a, b);
            // The borrowing API fires the same events.
            let mut q = Parser::new();
            let mut borrowed = Vec::new();
            for c in chunked(&input, &cuts) {
                q.feed_with(c, |e| borrowed.push(e.to_event()));
            }
            prop_assert_eq!(&borrowed, &want);
        }

        #[test]
        fn truncation_does_not_depend_on_chunking(
            input in sse_bytes(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            max_line in 0usize..24,
        ) {
            let parse = |chunks: &[&[u8]]| {
                let mut p = Parser::new().with_max_line(max_line);
                let mut out = Vec::new();
                for c in chunks {
                    p.feed(c, &mut out);
                }
                p.finish();
                let mut o = p.observations().clone();
                o.cr_lf_split_across_chunks = 0;
                (out, o)
            };
            let (chunked_events, chunked_obs) = parse(&chunked(&input, &cuts));
            let (whole_events, whole_obs) = parse(&[&input]);
            prop_assert_eq!(chunked_events, whole_events);
            prop_assert_eq!(chunked_obs, whole_obs);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            input in prop::collection::vec(any::<u8>(), 0..2000),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
            max_line in prop::option::of(0usize..64),
        ) {
            let mut p = Parser::new();
            if let Some(n) = max_line {
                p = p.with_max_line(n);
            }
            let mut out = Vec::new();
            for c in chunked(&input, &cuts) {
                p.feed(c, &mut out);
            }
            p.finish();
            let o = p.observations();
            prop_assert_eq!(o.bytes, input.len() as u64);
            prop_assert_eq!(o.events, out.len() as u64);
            prop_assert!(o.invalid_utf8.len() <= LIST_CAP);
            if max_line.is_none() {
                prop_assert_eq!(&out, &reference(&input).0);
            }
        }
    }
}
