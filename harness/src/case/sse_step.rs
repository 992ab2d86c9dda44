//! The Server-Sent Events case script: what an `sse.*` case file entry may say.
//!
//! A script drives named streams (`GET` requests to the target's stream URL,
//! each read on its own connection) and the target's publish endpoint.
//! Actions: `connect`, `disconnect`, `publish`, `sync`, `finish`, `pause`.
//! Expectations read what a stream sent, each with a deadline:
//! `expect_response`, `expect_events`, `expect_no_event`, `expect_framing`,
//! `expect_bytes_within`, `expect_end`.
//!
//! Expectations about events only look at the events this case published:
//! the target may be shared with other traffic, so any other event is
//! skipped (and listed if the expectation fails). An event is the case's
//! when its data equals the data of one of the case's publishes (with CR
//! and CRLF read as LF, as a client joins `data` lines with LF).
//!
//! Stream names default to `"a"`, so a one-stream case never names it.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer};

use crate::case::file::Validate;
use crate::case::header_check::{HeaderCheck, StatusSpec};
use crate::case::payload::PayloadTable;
use crate::case::{Dur, Payload};

fn default_stream() -> String {
    "a".to_string()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Opens a stream: a `GET` to the stream URL on a new connection. The
    /// step waits (up to the timeout) for the response head, so that events
    /// published afterwards are meant for this stream.
    Connect(Connect),
    /// Closes a stream's connection. What it received stays available to
    /// later `last_event_id` references and framing checks.
    Disconnect(StreamRef),
    /// Publishes an event through the publish endpoint (`--publish`).
    Publish(Publish),
    /// Waits until everything published so far has reached the stream: the
    /// harness publishes a fence event and reads up to it, without judging
    /// what came before (for framing cases, which check bytes, not data).
    Sync(SyncSpec),
    /// POSTs to the profile's `sse.finish` endpoint: the target ends its
    /// streams and answers later `GET`s with 204.
    Finish(FinishSpec),
    Pause(Dur),
    /// The response head of a stream.
    ExpectResponse(ExpectResponse),
    /// Exactly these events of the case, in this order, arrive next on the stream.
    ExpectEvents(ExpectEvents),
    /// The stream's next events are exactly those another stream saw
    /// after one of its events, in its order, with its ids: a replay.
    ExpectReplay(ExpectReplay),
    /// No event of the case arrives on the stream.
    ExpectNoEvent(ExpectNoEvent),
    /// Strict checks over everything the stream sent so far.
    ExpectFraming(ExpectFraming),
    /// An idle stream sends some bytes (a comment or an event) at least this often.
    ExpectBytesWithin(ExpectBytesWithin),
    /// The target ends the stream's response body.
    ExpectEnd(ExpectEnd),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamRef {
    #[serde(default = "default_stream")]
    pub stream: String,
}

#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FinishSpec {}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSpec {
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Skipped when the target has no publish endpoint (see `publish.optional`).
    #[serde(default)]
    pub optional: bool,
}

/// The request is `GET <path> HTTP/1.1` with `Host`, `Accept:
/// text/event-stream` and `Cache-Control: no-cache` (what a browser's
/// EventSource sends), then `headers` and `remove` applied in that order.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    #[serde(default = "default_stream")]
    pub stream: String,
    /// `[name, value]` pairs: replaces a header of that name
    /// (case-insensitively) or adds it.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Header names to leave out.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Sends `Last-Event-ID`.
    #[serde(default)]
    pub last_event_id: Option<LastEventId>,
    /// Waits for the response head before the next step (default). With
    /// `false` the next steps run while the target is still setting the
    /// stream up: events published then must reach it (replayed or live).
    #[serde(default = "yes")]
    pub wait: bool,
    /// The request's `Last-Event-ID` header name, in other letter cases
    /// (HTTP field names are case-insensitive). Default `Last-Event-ID`.
    #[serde(default)]
    pub header_name: Option<String>,
}

fn yes() -> bool {
    true
}

/// Where the `Last-Event-ID` value comes from: `{ from = "a" }` (the last
/// event ID after the case's last event seen on stream `a`, what a browser
/// would send on reconnecting), `{ from = "a", event = 2 }` (after its 2nd
/// event of the case), or `{ value = "..." }` (a literal).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastEventId {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub event: Option<EventPick>,
    #[serde(default)]
    pub value: Option<String>,
}

/// Which of the case's events seen on a stream: `"first"`, `"last"` or a
/// 1-based position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EventPick {
    First,
    #[default]
    Last,
    Nth(usize),
}

impl<'de> Deserialize<'de> for EventPick {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(i64),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) if n >= 1 => Ok(EventPick::Nth(n as usize)),
            Raw::Name(s) if s == "first" => Ok(EventPick::First),
            Raw::Name(s) if s == "last" => Ok(EventPick::Last),
            _ => Err(serde::de::Error::custom(
                "an event is \"first\", \"last\" or a position counted from 1",
            )),
        }
    }
}

impl std::fmt::Display for EventPick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventPick::First => f.write_str("first event"),
            EventPick::Last => f.write_str("last event"),
            EventPick::Nth(n) => write!(f, "event #{n}"),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// The event data (UTF-8 text).
    pub data: Payload,
    /// An explicit event id, sent in the profile's `sse.id_header`. The
    /// harness appends `.` and a per-run nonce, so that ids stay unique on
    /// a target that refuses to reuse one.
    #[serde(default)]
    pub id: Option<String>,
    /// Publishes this many events, with data `<data>-1` .. `<data>-<count>`.
    #[serde(default)]
    pub count: Option<usize>,
    /// With `count`: this many publish requests in flight at once (each
    /// on its own connection), so the target orders concurrent events
    /// itself. Default 1 (one after another, in order).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Skipped (with its `optional` expectations) when the target has no
    /// publish endpoint, instead of making the case unsupported.
    #[serde(default)]
    pub optional: bool,
}

/// What an expected event's `id` field must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdCheck {
    /// Anything, or no id field.
    #[default]
    Any,
    /// The event block sets a non-empty id.
    Present,
    /// The event block sets no id.
    Absent,
    /// The id the case chose in its `publish` (`id = ...`) for this data.
    Published,
    /// The id the event with this data carried when the case first saw it
    /// on another stream: a replayed event keeps its id.
    AsSeen,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedEvent {
    /// The data as a client sees it: `data` lines joined with LF.
    pub data: Payload,
    /// The event type (default `message`).
    #[serde(rename = "type", default)]
    pub event_type: Option<String>,
    #[serde(default)]
    pub id: IdCheck,
    /// Stands for this many events, with data `<data>-1` .. `<data>-<count>`
    /// (as published with `count`).
    #[serde(default)]
    pub count: Option<usize>,
    /// With `count`: the numbering starts here instead of 1
    /// (`from = 3, count = 2` is `<data>-3`, `<data>-4`).
    #[serde(default)]
    pub from: Option<usize>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectEvents {
    #[serde(default = "default_stream")]
    pub stream: String,
    pub events: Vec<ExpectedEvent>,
    /// A hard bound from the start of the step (for timing cases: no fence
    /// is published then, as a fence could flush a buffered event). Without
    /// it, the wait ends after the run's timeout without a byte from the
    /// target, or when a fence published after a short grace arrives first.
    #[serde(default)]
    pub within: Option<Dur>,
    /// The events' ids differ from each other.
    #[serde(default)]
    pub distinct_ids: bool,
    /// The events may arrive in any order (each exactly once): for events
    /// published concurrently, whose order the target decides.
    #[serde(default)]
    pub any_order: bool,
    /// These events arrived in the same order on this stream as on the
    /// named one (which an earlier step read them from).
    #[serde(default)]
    pub same_order_as: Option<String>,
    /// Skipped when the target has no publish endpoint (see `publish.optional`).
    #[serde(default)]
    pub optional: bool,
    /// Set by `expect_replay`: the transcript line summing up the events.
    #[serde(skip)]
    pub summary: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectReplay {
    #[serde(default = "default_stream")]
    pub stream: String,
    /// The stream whose events are replayed (read by an earlier step).
    pub of: String,
    /// After which of the case's events on `of` (the one `last_event_id`
    /// named): `"first"`, `"last"` or a position counted from 1.
    pub after: EventPick,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectNoEvent {
    #[serde(default = "default_stream")]
    pub stream: String,
    /// With a publish endpoint the harness publishes a fence event and
    /// waits for it (at most this long, default the timeout): no event of
    /// the case may come before it. Without one it waits this long
    /// (default 300 ms).
    #[serde(default)]
    pub within: Option<Dur>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectResponse {
    #[serde(default = "default_stream")]
    pub stream: String,
    pub status: Vec<StatusSpec>,
    #[serde(default)]
    pub headers: Vec<HeaderCheck>,
    /// The head arrives within this long of the request (cases use it
    /// before publishing anything: headers must not wait for an event).
    #[serde(default)]
    pub within: Option<Dur>,
}

/// A strict check over a stream's bytes, from the event-stream parser's
/// observations (HTML §9.2.5 grammar, §9.2.6 interpretation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FramingCheck {
    /// The stream is valid UTF-8.
    Utf8,
    /// No U+FEFF at the start of a line (other than the stream's first
    /// character): it becomes part of the field name and the line is lost.
    Bom,
    /// No `Data`, `ID`, `Event`, `Retry`: field names are case-sensitive.
    FieldCase,
    /// No field names other than event, data, id, retry.
    UnknownFields,
    /// No line without a colon other than a bare known field name.
    ColonlessLines,
    /// `retry` values are ASCII digits only.
    Retry,
    /// No `id` value containing U+0000.
    IdNul,
    /// One kind of line ending, and not a lone CR.
    LineEndings,
    /// If the stream ended, it ended after a blank line (no event pending).
    CompleteAtClose,
}

impl FramingCheck {
    /// The level HTML gives the rule (as the `sse.framing.*` cases state it).
    pub fn level(self) -> crate::case::Level {
        use crate::case::Level;
        match self {
            FramingCheck::UnknownFields
            | FramingCheck::ColonlessLines
            | FramingCheck::LineEndings => Level::Should,
            _ => Level::Must,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FramingCheck::Utf8 => "utf8",
            FramingCheck::Bom => "bom",
            FramingCheck::FieldCase => "field-case",
            FramingCheck::UnknownFields => "unknown-fields",
            FramingCheck::ColonlessLines => "colonless-lines",
            FramingCheck::Retry => "retry",
            FramingCheck::IdNul => "id-nul",
            FramingCheck::LineEndings => "line-endings",
            FramingCheck::CompleteAtClose => "complete-at-close",
        }
    }

    pub const ALL: [FramingCheck; 9] = [
        FramingCheck::Utf8,
        FramingCheck::Bom,
        FramingCheck::FieldCase,
        FramingCheck::UnknownFields,
        FramingCheck::ColonlessLines,
        FramingCheck::Retry,
        FramingCheck::IdNul,
        FramingCheck::LineEndings,
        FramingCheck::CompleteAtClose,
    ];
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectFraming {
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Which checks; all of them when left out.
    #[serde(default)]
    pub checks: Option<Vec<FramingCheck>>,
    /// First read until the stream has sent nothing for this long (at most
    /// the run's timeout), for black-box checks of what a server sends
    /// unprompted. Default: check what has arrived.
    #[serde(default)]
    pub settle: Option<Dur>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectBytesWithin {
    #[serde(default = "default_stream")]
    pub stream: String,
    /// The longest allowed silence; default the profile's `sse.keepalive`,
    /// else 15 s. The step passes once bytes arrive at least half of this
    /// after the step began with no silence longer than it (plus a
    /// tolerance of a tenth, at least 250 ms).
    #[serde(default)]
    pub every: Option<Dur>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectEnd {
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Default: the run's timeout without a byte.
    #[serde(default)]
    pub within: Option<Dur>,
}

/// `data` with `count` expanded: `[data]` or `[data-1, .., data-count]`.
pub fn expand_count(data: &str, count: Option<usize>) -> Vec<String> {
    expand_range(data, 1, count)
}

/// `data` with `count` expanded from `from`: `[data-from, .., data-(from+count-1)]`.
pub fn expand_range(data: &str, from: usize, count: Option<usize>) -> Vec<String> {
    match count {
        None => vec![data.to_string()],
        Some(n) => (from..from + n).map(|i| format!("{data}-{i}")).collect(),
    }
}

/// The data a client sees for published data: CRLF and lone CR become LF
/// (the server splits data on all three, the client joins lines with LF).
pub fn as_delivered(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

/// Largest `count` a publish or expectation may use.
pub const MAX_COUNT: usize = 10_000;
/// Most publish requests a step keeps in flight at once.
pub const MAX_CONCURRENCY: usize = 64;

/// Checks that a data payload is UTF-8 text (event data is text).
fn text_payload(p: &Payload) -> Result<(), String> {
    p.validate().map_err(|e| e.to_string())?;
    match p {
        Payload::Text(_) => Ok(()),
        Payload::Table(PayloadTable {
            pattern: Some(_), ..
        }) => Err("event data is text: `pattern` payloads are binary".into()),
        Payload::Table(PayloadTable { code: Some(_), .. }) => {
            Err("event data is text: `code` payloads are WebSocket close bodies".into())
        }
        Payload::Table(PayloadTable {
            repeat: Some(r),
            len: Some(n),
            ..
        }) => {
            let cut = n % r.len();
            if r.is_char_boundary(cut) {
                Ok(())
            } else {
                Err(format!("`len` {n} cuts a character of {r:?} in half"))
            }
        }
        Payload::Table(PayloadTable { hex: Some(_), .. }) => std::str::from_utf8(&p.bytes())
            .map(|_| ())
            .map_err(|e| format!("the hex bytes are not UTF-8: {e}")),
        Payload::Table(_) => Ok(()),
    }
}

impl Script {
    /// Whether any step publishes or finishes (changes what every stream of
    /// the target sees).
    pub fn publishes(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::Publish(_) | Step::Finish(_) | Step::Sync(_)))
    }

    /// Whether the script judges framing itself (`expect_framing`): such a
    /// case checks the one rule it names, and the framing and other-traffic
    /// checks every other case runs over its streams are left out.
    pub fn checks_framing(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::ExpectFraming(_)))
    }

    /// Whether the script measures an idle stream over a long wait.
    pub fn waits_idle(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::ExpectBytesWithin(_)))
    }
}

impl Validate for Script {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.steps.is_empty() {
            return Err(("steps".into(), "a case needs at least one step".into()));
        }
        // Streams ever connected, and those open at this point of the script.
        let mut known: BTreeSet<&str> = BTreeSet::new();
        let mut open: BTreeSet<&str> = BTreeSet::new();
        let mut published_ids = false;
        for (i, s) in self.steps.iter().enumerate() {
            let at = |f: &str| format!("steps[{i}].{f}");
            let name_ok = |name: &str, field: String| -> Result<(), (String, String)> {
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err((
                        field,
                        format!("stream name {name:?}: use letters, digits, `-`, `_`"),
                    ));
                }
                Ok(())
            };
            let must_know = |name: &str, field: String, open_needed: bool| {
                let set = if open_needed { &open } else { &known };
                if set.contains(name) {
                    Ok(())
                } else if known.contains(name) {
                    Err((
                        field,
                        format!("stream {name:?} was disconnected before this step"),
                    ))
                } else {
                    Err((
                        field,
                        format!(
                            "no stream {name:?} is connected before this step (add a `connect` step)"
                        ),
                    ))
                }
            };
            match s {
                Step::Connect(c) => {
                    name_ok(&c.stream, at("connect.stream"))?;
                    if open.contains(c.stream.as_str()) {
                        return Err((
                            at("connect.stream"),
                            format!(
                                "stream {:?} is already open; disconnect it first or use another name",
                                c.stream
                            ),
                        ));
                    }
                    for (n, v) in &c.headers {
                        if n.is_empty() || n.bytes().any(|b| b <= b' ' || b == b':' || b >= 0x7f) {
                            return Err((
                                at("connect.headers"),
                                format!("invalid header name {n:?}"),
                            ));
                        }
                        if v.contains(['\r', '\n']) {
                            return Err((
                                at("connect.headers"),
                                format!("header {n:?}: the value must not contain CR or LF"),
                            ));
                        }
                    }
                    if let Some(h) = &c.header_name
                        && !h.eq_ignore_ascii_case("last-event-id")
                    {
                        return Err((
                            at("connect.header_name"),
                            "`Last-Event-ID` in any letter case".into(),
                        ));
                    }
                    if let Some(l) = &c.last_event_id {
                        match (&l.from, &l.value, &l.event) {
                            (Some(from), None, _) => {
                                must_know(from, at("connect.last_event_id.from"), false)?
                            }
                            (None, Some(v), None) => {
                                if v.contains(['\r', '\n']) {
                                    return Err((
                                        at("connect.last_event_id.value"),
                                        "must not contain CR or LF".into(),
                                    ));
                                }
                            }
                            (None, Some(_), Some(_)) => {
                                return Err((
                                    at("connect.last_event_id.event"),
                                    "`event` goes with `from`, not `value`".into(),
                                ));
                            }
                            _ => {
                                return Err((
                                    at("connect.last_event_id"),
                                    "give exactly one of `from` (a stream) and `value`".into(),
                                ));
                            }
                        }
                    }
                    known.insert(&c.stream);
                    open.insert(&c.stream);
                }
                Step::Disconnect(r) => {
                    must_know(&r.stream, at("disconnect.stream"), true)?;
                    open.remove(r.stream.as_str());
                }
                Step::Publish(p) => {
                    text_payload(&p.data).map_err(|m| (at("publish.data"), m))?;
                    match p.count {
                        Some(0) => return Err((at("publish.count"), "must be at least 1".into())),
                        Some(n) if n > MAX_COUNT => {
                            return Err((at("publish.count"), format!("at most {MAX_COUNT}")));
                        }
                        Some(_) if p.id.is_some() => {
                            return Err((
                                at("publish.id"),
                                "an explicit id and `count` do not go together".into(),
                            ));
                        }
                        _ => {}
                    }
                    if let Some(c) = p.concurrency {
                        if p.count.is_none() {
                            return Err((
                                at("publish.concurrency"),
                                "`concurrency` goes with `count`".into(),
                            ));
                        }
                        if !(1..=MAX_CONCURRENCY).contains(&c) {
                            return Err((
                                at("publish.concurrency"),
                                format!("between 1 and {MAX_CONCURRENCY}"),
                            ));
                        }
                    }
                    if let Some(id) = &p.id {
                        if id.is_empty() || id.contains(['\0', '\r', '\n']) {
                            return Err((
                                at("publish.id"),
                                "an event id is non-empty and has no NUL, CR or LF".into(),
                            ));
                        }
                        published_ids = true;
                    }
                }
                Step::Finish(_) | Step::Pause(_) => {}
                Step::ExpectResponse(r) => {
                    must_know(&r.stream, at("expect_response.stream"), true)?;
                    if r.status.is_empty() {
                        return Err((
                            at("expect_response.status"),
                            "list at least one status".into(),
                        ));
                    }
                    for (j, h) in r.headers.iter().enumerate() {
                        let checks = [
                            h.equals.is_some(),
                            h.essence.is_some(),
                            h.token.is_some(),
                            h.one_of.is_some(),
                            h.absent,
                            !h.directives_absent.is_empty() || h.max_age_at_most.is_some(),
                        ];
                        if checks.iter().filter(|c| **c).count() > 1 {
                            return Err((
                                at(&format!("expect_response.headers[{j}]")),
                                "give one kind of check per entry (`directives_absent` and `max_age_at_most` count as one); add another entry for the same header".into(),
                            ));
                        }
                    }
                }
                Step::ExpectEvents(e) => {
                    must_know(&e.stream, at("expect_events.stream"), true)?;
                    if let Some(o) = &e.same_order_as {
                        must_know(o, at("expect_events.same_order_as"), false)?;
                    }
                    if e.events.is_empty() {
                        return Err((
                            at("expect_events.events"),
                            "list at least one event (use `expect_no_event` for none)".into(),
                        ));
                    }
                    for (j, ev) in e.events.iter().enumerate() {
                        text_payload(&ev.data)
                            .map_err(|m| (at(&format!("expect_events.events[{j}].data")), m))?;
                        match ev.count {
                            Some(0) => {
                                return Err((
                                    at(&format!("expect_events.events[{j}].count")),
                                    "must be at least 1".into(),
                                ));
                            }
                            Some(n) if n > MAX_COUNT => {
                                return Err((
                                    at(&format!("expect_events.events[{j}].count")),
                                    format!("at most {MAX_COUNT}"),
                                ));
                            }
                            _ => {}
                        }
                        if let Some(t) = &ev.event_type
                            && t.contains(['\r', '\n'])
                        {
                            return Err((
                                at(&format!("expect_events.events[{j}].type")),
                                "must not contain CR or LF".into(),
                            ));
                        }
                        if ev.from.is_some() && ev.count.is_none() {
                            return Err((
                                at(&format!("expect_events.events[{j}].from")),
                                "`from` numbers events of a `count`".into(),
                            ));
                        }
                        if ev.from == Some(0) || ev.from.is_some_and(|f| f > MAX_COUNT) {
                            return Err((
                                at(&format!("expect_events.events[{j}].from")),
                                format!("between 1 and {MAX_COUNT}"),
                            ));
                        }
                        if ev.id == IdCheck::Published && !published_ids {
                            return Err((
                                at(&format!("expect_events.events[{j}].id")),
                                "`published` needs an earlier `publish` with an explicit `id`"
                                    .into(),
                            ));
                        }
                    }
                }
                Step::ExpectNoEvent(e) => must_know(&e.stream, at("expect_no_event.stream"), true)?,
                Step::ExpectReplay(e) => {
                    must_know(&e.stream, at("expect_replay.stream"), true)?;
                    must_know(&e.of, at("expect_replay.of"), false)?;
                }
                Step::Sync(e) => must_know(&e.stream, at("sync.stream"), true)?,
                Step::ExpectFraming(f) => {
                    must_know(&f.stream, at("expect_framing.stream"), false)?;
                    if f.checks.as_ref().is_some_and(|c| c.is_empty()) {
                        return Err((
                            at("expect_framing.checks"),
                            "list at least one check, or leave it out for all".into(),
                        ));
                    }
                }
                Step::ExpectBytesWithin(b) => {
                    must_know(&b.stream, at("expect_bytes_within.stream"), true)?;
                    if b.every.is_some_and(|d| d.0.is_zero()) {
                        return Err((
                            at("expect_bytes_within.every"),
                            "must be more than 0".into(),
                        ));
                    }
                }
                Step::ExpectEnd(e) => must_know(&e.stream, at("expect_end.stream"), true)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::file::parse_file;

    fn load(steps: &str) -> Result<usize, String> {
        let text = format!(
            "family = \"sse.t\"\n[[case]]\nslug = \"x\"\ntitle = \"t\"\nspec = \"s\"\nlevel = \"must\"\nsteps = {steps}\n"
        );
        parse_file("t.toml", &text)
            .map(|c| c.len())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_script_loads() {
        load(
            r#"[
  { connect = {} },
  { expect_response = { status = [200, "2xx"], headers = [{ name = "Content-Type", essence = "text/event-stream" }], within = "1s" } },
  { publish = { data = "a\rb" } },
  { publish = { data = "n", count = 3 } },
  { expect_events = { events = [{ data = "a\nb", id = "present" }, { data = "n", count = 3 }], within = "1s" } },
  { disconnect = {} },
  { connect = { stream = "b", last_event_id = { from = "a", event = 2 }, headers = [["Accept", "*/*"]], remove = ["Cache-Control"] } },
  { expect_no_event = { stream = "b" } },
  { sync = { stream = "b", optional = true } },
  { expect_framing = { stream = "a", checks = ["utf8", "complete-at-close"] } },
  { expect_bytes_within = { stream = "b", every = "1s" } },
  { pause = "10ms" },
  { finish = {} },
  { expect_end = { stream = "b" } },
]"#,
        )
        .unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let e = load(r#"[{ expect_events = { events = [{ data = "x" }] } }]"#).unwrap_err();
        assert!(
            e.contains("steps[0].expect_events.stream") && e.contains("add a `connect`"),
            "{e}"
        );
        let e = load(r#"[{ connect = {} }, { disconnect = {} }, { expect_events = { events = [{ data = "x" }] } }]"#)
            .unwrap_err();
        assert!(e.contains("disconnected"), "{e}");
        let e = load(r#"[{ connect = {} }, { connect = {} }]"#).unwrap_err();
        assert!(e.contains("already open"), "{e}");
        let e = load(r#"[{ connect = { last_event_id = { from = "zz" } } }]"#).unwrap_err();
        assert!(e.contains("no stream \"zz\""), "{e}");
        let e = load(r#"[{ publish = { data = { pattern = 3 } } }]"#).unwrap_err();
        assert!(e.contains("binary"), "{e}");
        let e = load(r#"[{ publish = { data = { repeat = "é", len = 3 } } }]"#).unwrap_err();
        assert!(e.contains("cuts a character"), "{e}");
        let e = load(r#"[{ connect = {} }, { expect_events = { events = [{ data = "x", id = "published" }] } }]"#)
            .unwrap_err();
        assert!(e.contains("explicit `id`"), "{e}");
        let e =
            load(r#"[{ connect = {} }, { expect_framing = { checks = ["utf-8"] } }]"#).unwrap_err();
        assert!(e.contains("utf-8"), "{e}");
        let e =
            load(r#"[{ connect = { last_event_id = { value = "x", event = 1 } } }]"#).unwrap_err();
        assert!(e.contains("`event` goes with `from`"), "{e}");
        let e =
            load(r#"[{ connect = { last_event_id = { from = "a", event = 0 } } }]"#).unwrap_err();
        assert!(e.contains("position counted from 1"), "{e}");
        let e = load(r#"[{ connect = {} }, { expect_response = { status = [200], headers = [{ name = "x", absent = true, equals = "y" }] } }]"#)
            .unwrap_err();
        assert!(e.contains("one kind of check"), "{e}");
        let e = load(r#"[{ connect = { strem = "a" } }]"#).unwrap_err();
        assert!(e.contains("strem"), "{e}");
    }

    #[test]
    fn counts_and_delivery() {
        assert_eq!(expand_count("e", None), ["e"]);
        assert_eq!(expand_count("e", Some(2)), ["e-1", "e-2"]);
        assert_eq!(expand_range("e", 9, Some(2)), ["e-9", "e-10"]);
        assert_eq!(as_delivered("a\r\nb\rc\nd\r"), "a\nb\nc\nd\n");
    }
}
