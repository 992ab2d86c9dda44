//! Executes one SSE case script against a target.
//!
//! Each named stream is a `GET` on its own connection, read by a task (see
//! [`super::http`]); the script pulls what arrived with deadlines, feeds the
//! body to the spec-exact [`Parser`] and queues the dispatched events. Every
//! event is classified when parsed: the case's own (its data equals the data
//! of one of the case's publishes), a fence (see below), or other traffic.
//! Expectations about events only consider the case's own events.
//!
//! **Fences.** When an `expect_events` is not met after a short grace
//! period, the harness publishes a fence event (data `pushspec-fence
//! <nonce> <n>`). Events are delivered in publish order, so once the fence
//! arrives everything published before it has arrived too: a missing or
//! mangled event is then reported at once instead of after the timeout.
//! `expect_no_event` uses a fence the same way. Fences never count as the
//! case's events.
//!
//! **Isolation.** Cases against one target share its streams and replay
//! buffer, so they are serialized per stream URL: a case that publishes (or
//! finishes) runs alone; cases that only read run together. A case that
//! measures idle keep-alive gaps holds the lock too (shared when it only
//! reads): no other case publishes meanwhile, so its stream is truly idle
//! and any event on it is a finding.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use super::http::{self, End, Framing, Item, StreamConn};
use crate::case::Payload;
use crate::case::header_check::HeaderCheck;
use crate::case::sse_step::{
    Connect, EventPick, ExpectBytesWithin, ExpectEnd, ExpectEvents, ExpectFraming, ExpectNoEvent,
    ExpectReplay, ExpectResponse, ExpectedEvent, FramingCheck, IdCheck, Publish, Script, Step,
    SyncSpec, as_delivered, expand_count, expand_range,
};
use crate::outcome::{Finding, Run};
use crate::profile::Capabilities;
use crate::settings::{Settings, case_budget};
use crate::target::{HttpTarget, parse_http};
use crate::transcript::{Transcript, preview};
use crate::wire::event_stream::{self as parser, Parser};
use crate::wire::http::Response;

/// The SSE stream and, optionally, the publish endpoint of the target contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseTarget {
    pub stream: HttpTarget,
    pub publish: Option<HttpTarget>,
}

/// Keep-alive interval checked when the profile sets none (HTML §9.2.7
/// suggests a comment "every 15 seconds or so").
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);
/// How long `expect_events` waits before publishing a fence.
const FENCE_GRACE: Duration = Duration::from_millis(250);
/// `expect_no_event` without a publish endpoint waits this long by default.
const NO_EVENT_WAIT: Duration = Duration::from_millis(300);
const FENCE_PREFIX: &str = "pushspec-fence ";
/// Events of other traffic queued per stream at most (the case's own are always kept).
const MAX_QUEUED_OTHER: usize = 4096;
/// Events of any class one stream may hold (queued plus seen): a server
/// flooding the case's own data cannot grow the harness without bound.
const MAX_KEPT_EVENTS: usize = 65_536;
/// Bytes of event data and ids one stream may keep over its life. Every
/// event carries the last event ID, so a 16 MiB id repeated by tiny events
/// would otherwise multiply memory by the event count.
const MAX_KEPT_BYTES: u64 = 512 << 20;
/// Items one `drain` takes before yielding to the caller.
const MAX_DRAIN: usize = 4096;
/// On loopback, an event reaching a stream later than this after its
/// publish was answered is held back (buffering, batching): a `should`
/// finding, once probes confirm it (see [`Driver::latency_check`]).
const SLOW_DELIVERY: Duration = Duration::from_millis(100);
/// Fences published to confirm a slow delivery.
const LATENCY_PROBES: usize = 3;
/// Unrelated events listed in a failure.
const MAX_LISTED: usize = 6;
/// A `publish` with a larger `count` is a bulk publish: its requests and
/// events are transcript notes, summed up in one line each way, so a long
/// history does not drown the transcript (or the snapshots).
const BULK: usize = 100;

/// One lock per stream URL, shared by every case of the process.
static LOCKS: LazyLock<Mutex<HashMap<String, Arc<RwLock<()>>>>> = LazyLock::new(Default::default);

#[allow(dead_code)] // held for its Drop
enum Guard {
    Exclusive(OwnedRwLockWriteGuard<()>),
    Shared(OwnedRwLockReadGuard<()>),
}

async fn lock_for(script: &Script, target: &SseTarget) -> Guard {
    let lock = LOCKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(target.stream.url())
        .or_default()
        .clone();
    if script.publishes() {
        Guard::Exclusive(lock.write_owned().await)
    } else {
        Guard::Shared(lock.read_owned().await)
    }
}

pub async fn run(
    script: &Script,
    target: &SseTarget,
    settings: Settings,
    caps: &Capabilities,
    t: &Transcript,
) -> Run {
    let _guard = lock_for(script, target).await;
    let keepalive = caps
        .profile
        .sse
        .keepalive
        .map_or(Duration::from_secs(15), |d| d.0);
    let budget = case_budget(settings.timeout) + keepalive + Duration::from_secs(5);
    crate::outcome::within(budget, drive(script, target, settings, caps, t)).await
}

async fn drive(
    script: &Script,
    target: &SseTarget,
    settings: Settings,
    caps: &Capabilities,
    t: &Transcript,
) -> Run {
    let mut d = Driver {
        target,
        settings,
        caps,
        t,
        run: Run::default(),
        nonce: format!("{:016x}", fastrand::u64(..)),
        streams: HashMap::new(),
        published: Vec::new(),
        fences: 0,
        first_ids: HashMap::new(),
        skipped_optional: false,
        deadline: Instant::now() + case_budget(settings.timeout),
        budget: case_budget(settings.timeout),
    };
    for step in &script.steps {
        match d.step(step).await {
            Ok(()) => {}
            Err(Stop::Failed(f)) => {
                d.run.failure = Some(f);
                break;
            }
            Err(Stop::Error(e)) => {
                d.run.error = Some(e);
                break;
            }
            Err(Stop::Unsupported(u)) => {
                d.run.unsupported = Some(u);
                break;
            }
        }
    }
    let completed = d.run.failure.is_none() && d.run.error.is_none() && d.run.unsupported.is_none();
    if completed && !script.checks_framing() {
        d.every_stream_checks();
    }
    if completed && d.run.failure.is_none() {
        d.latency_check().await;
    }
    d.run
}

/// Why the script stopped early.
enum Stop {
    /// An expectation at the case's level was not met.
    Failed(Finding),
    /// The harness could not run the case (an unusable publish endpoint,
    /// an encoding it cannot decode).
    Error(String),
    Unsupported(String),
}

fn fail(reason: impl Into<String>, expected: impl Into<String>, actual: impl Into<String>) -> Stop {
    Stop::Failed(Finding::new(reason, expected, actual))
}

/// What a dispatched event is to this case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Its data is the data of one of the case's publishes.
    Ours,
    /// This case's fence number n.
    Fence(u64),
    /// A fence of another case or run.
    ForeignFence,
    /// The first event the case did not publish on a stream opened with an
    /// id the target never issued: the contract's marker event.
    Marker,
    Other,
}

#[derive(Debug)]
struct Ev {
    ev: parser::Event,
    class: Class,
    /// When the bytes completing it arrived.
    at: Instant,
}

/// A published event as a client should see it.
#[derive(Debug)]
struct Published {
    data: String,
    /// The explicit id given with `id_header` (nonce included).
    id: Option<String>,
    /// When its POST began: an event that arrived earlier is not this one.
    at: Instant,
    /// Part of a bulk publish (see [`BULK`]).
    bulk: bool,
    /// When its POST was answered: delivery latency counts from here.
    done: Option<Instant>,
}

struct Stream {
    name: String,
    conn: Option<StreamConn>,
    sent_at: Instant,
    head: Option<(Response, Framing, Instant)>,
    parser: Parser,
    queue: VecDeque<Ev>,
    /// The case's events, in arrival order (for `last_event_id`).
    seen: Vec<parser::Event>,
    /// Data of the case's events taken from the queue by expectations.
    taken: Vec<String>,
    ended: Option<End>,
    /// The response broke HTTP/1.1.
    broken: Option<String>,
    /// The response uses something the harness cannot decode.
    unsupported: Option<String>,
    last_item_at: Instant,
    last_byte_at: Option<Instant>,
    body_bytes: u64,
    logged_retry: Option<u64>,
    logged_comments: u64,
    discarded_at_end: bool,
    /// The parser's line cap.
    max_line: u64,
    /// Bytes of events kept so far (see [`MAX_KEPT_BYTES`]).
    kept_bytes: u64,
    /// Events dropped because a cap was reached.
    overflowed: u64,
    /// Opened with `Last-Event-ID`.
    resumed: bool,
    /// Opened with a literal `Last-Event-ID` the target never issued: the
    /// contract lets it answer with one marker event (the first event the
    /// case did not publish, [`Class::Marker`]); a second one is a finding
    /// (history replayed for an id never issued?).
    never_issued: bool,
    /// The marker event has arrived.
    marker_seen: bool,
    /// Event types the profile says the target sends on its own
    /// (`sse.extra_event_types`: a welcome or status event): set aside,
    /// never a finding and never taken for the case's events.
    declared_extra: Vec<String>,
    /// The framing rules broken by what the stream had sent when the case
    /// last received one of its events or fences there: a verdict that
    /// does not depend on whether bytes sent later (keep-alives) happened to
    /// arrive before the case ended.
    framing_at_sync: Vec<(FramingCheck, Problem)>,
    /// Publish completed to receipt, for each of the case's events this
    /// stream received live.
    latencies: Vec<Duration>,
}

/// `(reason, expected, actual)` of a broken rule.
type Problem = (String, String, String);

/// What applying one item did.
enum Applied {
    Head,
    Body(Instant),
    Ended,
}

/// The result of waiting for the next event.
enum Next {
    Event(Ev),
    Timeout,
    Ended,
}

/// What reading up to a fence does with the events met before it.
#[derive(Clone, Copy)]
enum Before {
    /// Pass over them: the read only makes sure earlier events arrived.
    Skip,
    /// Fail on one of the case's events (none was due) and on a stray one.
    Judge,
}

/// How reading up to a fence ended.
enum FenceRead {
    /// The fence arrived, at this instant.
    Arrived(Instant),
    Timeout,
    Ended,
}

impl Stream {
    fn status(&self) -> Option<u16> {
        self.head.as_ref().map(|(r, _, _)| r.status)
    }

    fn apply(
        &mut self,
        item: Item,
        t: &Transcript,
        published: &[Published],
        nonce: &str,
    ) -> Applied {
        let name = &self.name;
        self.last_item_at = Instant::now();
        match item {
            Item::Head {
                response,
                framing,
                at,
            } => {
                t.inbound(format!("[{name}] {}", response.describe()));
                t.note(format!(
                    "[{name}] response head after {:.1}ms; body {}",
                    at.saturating_duration_since(self.sent_at).as_secs_f64() * 1e3,
                    framing.describe()
                ));
                self.head = Some((response, framing, at));
                Applied::Head
            }
            Item::Body { bytes, at } => {
                self.last_byte_at = Some(at);
                self.body_bytes += bytes.len() as u64;
                if self.status() != Some(200) {
                    return Applied::Body(at);
                }
                // Borrowed events first: only those the case keeps are copied.
                let mut events = Vec::new();
                let room = MAX_KEPT_EVENTS.saturating_sub(self.queue.len() + self.seen.len());
                let (mut kept_bytes, mut overflowed) = (self.kept_bytes, 0u64);
                self.parser.feed_with(&bytes, |e| {
                    let size = (e.data.len() + e.last_event_id.len() + e.event_type.len()) as u64;
                    if events.len() >= room || kept_bytes + size > MAX_KEPT_BYTES {
                        overflowed += 1;
                        return;
                    }
                    kept_bytes += size;
                    events.push(e.to_event());
                });
                self.kept_bytes = kept_bytes;
                if overflowed > 0 {
                    if self.overflowed == 0 {
                        t.note(format!(
                            "[{name}] the stream sent more events than the harness keeps ({MAX_KEPT_EVENTS} events or {} MiB): later ones are dropped",
                            MAX_KEPT_BYTES >> 20
                        ));
                    }
                    self.overflowed += overflowed;
                }
                let obs = self.parser.observations();
                if obs.retry.is_some() && obs.retry != self.logged_retry {
                    self.logged_retry = obs.retry;
                    t.inbound(format!("[{name}] retry: {}", obs.retry.unwrap_or(0)));
                }
                if obs.comments > self.logged_comments {
                    let n = obs.comments - self.logged_comments;
                    self.logged_comments = obs.comments;
                    t.inbound(format!(
                        "[{name}] {n} comment line{}",
                        if n == 1 { "" } else { "s" }
                    ));
                }
                let mut sync_point = false;
                for ev in events {
                    if self.declared_extra.contains(&ev.event_type) {
                        t.note(format!(
                            "[{name}] event {} the profile declares (sse.extra_event_types): set aside",
                            preview(ev.event_type.as_bytes())
                        ));
                        continue;
                    }
                    let mut class = classify(&ev.data, at, published, nonce);
                    if class == Class::Other && self.never_issued && !self.marker_seen {
                        self.marker_seen = true;
                        class = Class::Marker;
                    }
                    sync_point |= matches!(class, Class::Ours | Class::Fence(_));
                    let bulk = class == Class::Ours
                        && published.iter().rev().any(|p| p.bulk && p.data == ev.data);
                    // Events of a bulk publish are summed up by the
                    // expectation that takes them (the transcript is capped).
                    if !bulk {
                        let line = format!("[{name}] {}", describe_event(&ev, class, published));
                        // Fences depend on timing (a slow event triggers one):
                        // notes keep them out of deterministic transcripts.
                        match class {
                            Class::Fence(_) | Class::ForeignFence => t.note(line),
                            _ => t.inbound(line),
                        }
                    }
                    if class == Class::Ours {
                        // Live deliveries only: an event published before
                        // this stream was requested is a replay. Bulk
                        // publishes are left out: the harness reads no
                        // stream while it sends them, so their receipt
                        // times measure the harness.
                        if let Some(p) = published.iter().rev().find(|p| p.data == ev.data)
                            && p.at >= self.sent_at
                            && !p.bulk
                            && self.latencies.len() < MAX_KEPT_EVENTS
                        {
                            let done = p.done.unwrap_or(at);
                            self.latencies.push(at.saturating_duration_since(done));
                        }
                        self.seen.push(ev.clone());
                    }
                    if matches!(class, Class::Other | Class::ForeignFence | Class::Marker)
                        && self.queue.len() >= MAX_QUEUED_OTHER
                    {
                        continue;
                    }
                    self.queue.push_back(Ev { ev, class, at });
                }
                if sync_point {
                    self.framing_at_sync = FramingCheck::ALL
                        .iter()
                        .filter(|c| **c != FramingCheck::CompleteAtClose)
                        .filter_map(|c| framing_problem(*c, self).map(|p| (*c, p)))
                        .collect();
                }
                Applied::Body(at)
            }
            Item::End { end, at } => {
                self.discarded_at_end = self.status() == Some(200) && self.parser.finish();
                let how = match &end {
                    End::Complete => "the body ended".to_string(),
                    End::Truncated(why) => format!("the body ended early: {why}"),
                };
                t.inbound(format!(
                    "[{name}] {how}{}",
                    if self.discarded_at_end {
                        " (an incomplete event was discarded)"
                    } else {
                        ""
                    }
                ));
                t.note(format!(
                    "[{name}] end after {:.1}ms, {} body bytes",
                    at.saturating_duration_since(self.sent_at).as_secs_f64() * 1e3,
                    self.body_bytes
                ));
                self.ended = Some(end);
                self.conn = None;
                Applied::Ended
            }
            Item::Invalid(why) => {
                t.inbound(format!("[{name}] invalid HTTP: {why}"));
                self.broken = Some(why);
                self.conn = None;
                Applied::Ended
            }
            Item::Unsupported(why) => {
                t.note(format!("[{name}] {why}"));
                self.unsupported = Some(why);
                self.conn = None;
                Applied::Ended
            }
        }
    }

    /// Takes everything that has already arrived, without waiting.
    fn drain(&mut self, t: &Transcript, published: &[Published], nonce: &str) {
        let mut taken = 0;
        while let Some(conn) = &mut self.conn {
            if taken == MAX_DRAIN {
                break;
            }
            taken += 1;
            match conn.items.try_recv() {
                Ok(item) => {
                    self.apply(item, t, published, nonce);
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    self.conn = None;
                }
            }
        }
    }

    /// Waits for one item until `until`; `None` on timeout or when the
    /// connection is gone.
    async fn wait_item(
        &mut self,
        until: Instant,
        t: &Transcript,
        published: &[Published],
        nonce: &str,
    ) -> Option<Applied> {
        let conn = self.conn.as_mut()?;
        match tokio::time::timeout_at(until.into(), conn.items.recv()).await {
            Ok(Some(item)) => Some(self.apply(item, t, published, nonce)),
            Ok(None) => {
                self.conn = None;
                if self.ended.is_none() && self.broken.is_none() && self.unsupported.is_none() {
                    self.ended = Some(End::Truncated("the reader stopped".into()));
                }
                Some(Applied::Ended)
            }
            Err(_) => None,
        }
    }

    /// The finding for an event on this stream that the case never
    /// published (`None` where the contract allows one).
    fn stray(&self, ev: &parser::Event, class: Class) -> Option<Stop> {
        // A fence of another case is traffic this suite published: a
        // target may acknowledge a publish before it fans the event out,
        // so a stream opened just after can still get it. Not a finding
        // (and not a verdict that depends on scheduling).
        // The contract lets a stream opened with an id never issued begin
        // with one marker event.
        if matches!(class, Class::ForeignFence | Class::Marker) {
            return None;
        }
        let why = if self.never_issued {
            "a stream opened with an id the target never issued may carry one marker event, not more (history replayed for an id never issued?)"
        } else {
            "a stream carries only the events published to it, unchanged (a published event altered? a keep-alive sent as `data:`? an old event sent again?)"
        };
        Some(fail(
            format!(
                "stream {} dispatched an event this case never published: {}; {why}",
                self.describe_name(),
                describe_plain(ev)
            ),
            "only events this case published (and its fences)",
            describe_plain(ev),
        ))
    }

    /// The stream's name, saying how it was opened when it resumed.
    fn describe_name(&self) -> String {
        if self.resumed {
            format!("{} (resumed with Last-Event-ID)", self.name)
        } else {
            self.name.clone()
        }
    }

    /// A line or event past the parser's caps: no event can be expected any more.
    fn overlong(&self) -> Option<Stop> {
        let o = self.parser.observations();
        // An unterminated line counts as soon as it passes the cap.
        let over = o.totals.overlong_lines > 0
            || o.longest_line > self.max_line
            || o.totals.oversized_events > 0;
        over.then(|| {
            fail(
                format!(
                    "stream {} sent a line or an event larger than the harness keeps (longest line so far: {} bytes): no event can be read from it",
                    self.name, o.longest_line
                ),
                "lines and events of a reasonable size",
                format!("longest line {} bytes", o.longest_line),
            )
        })
    }

    /// A 200 response that is no event stream: an EventSource fails the
    /// connection, so nothing read from it can pass a case (HTML §9.2.2).
    /// Other statuses are each step's business (no events, or a `4xx`
    /// an unknown id may get).
    fn prerequisite(&self) -> Option<Stop> {
        let (resp, _, _) = self.head.as_ref()?;
        if resp.status != 200 {
            return None;
        }
        let ct = resp.header("Content-Type").unwrap_or("");
        if crate::case::header_check::essence(ct) == "text/event-stream" {
            return None;
        }
        let shown = if ct.is_empty() {
            "no Content-Type".to_string()
        } else {
            format!("Content-Type: {ct}")
        };
        Some(fail(
            format!(
                "stream {}: prerequisite not met: the response is 200 with {shown}, not text/event-stream, so an EventSource fails the connection and nothing it sends can be judged (HTML §9.2.2)",
                self.name
            ),
            "a valid event stream: 200 with Content-Type: text/event-stream",
            shown,
        ))
    }

    /// The head did not complete within its own deadline (counted from the
    /// request): a trickled or withheld head must not cost each step a full
    /// wait.
    fn head_overdue(&self, head_deadline: Duration) -> Option<Stop> {
        if self.head.is_some() || self.broken.is_some() || self.conn.is_none() {
            return None;
        }
        let waited = self.sent_at.elapsed();
        (waited >= head_deadline).then(|| {
            fail(
                format!(
                    "stream {}: the response head was not complete {:.1}s after the request (head deadline {head_deadline:?}): a head arriving slowly, or never, leaves a client with no connection",
                    self.name,
                    waited.as_secs_f64()
                ),
                format!("a complete response head within {head_deadline:?}"),
                "no complete head",
            )
        })
    }

    /// Problems that end any wait on this stream.
    fn problem(&self) -> Option<Stop> {
        if let Some(u) = &self.unsupported {
            return Some(Stop::Error(format!("stream {}: {u}", self.name)));
        }
        if let Some(p) = self.prerequisite() {
            return Some(p);
        }
        self.broken.as_ref().map(|b| {
            fail(
                format!(
                    "stream {}: the response is not valid HTTP/1.1: {b}",
                    self.name
                ),
                "a valid HTTP/1.1 response",
                b.clone(),
            )
        })
    }
}

fn classify(data: &str, at: Instant, published: &[Published], nonce: &str) -> Class {
    if let Some(rest) = data.strip_prefix(FENCE_PREFIX) {
        return match rest.split_once(' ') {
            Some((n, k)) if n == nonce => k.parse().map_or(Class::ForeignFence, Class::Fence),
            _ => Class::ForeignFence,
        };
    }
    if published.iter().any(|p| p.data == data && p.at <= at) {
        Class::Ours
    } else {
        Class::Other
    }
}

/// A stable one-line description of an event (no id values: they change
/// from run to run; the transcript notes carry them when it matters).
fn describe_event(ev: &parser::Event, class: Class, published: &[Published]) -> String {
    match class {
        Class::Fence(n) => return format!("fence {n}"),
        Class::ForeignFence => return "fence of another case".into(),
        _ => {}
    }
    let kind = if ev.event_type == "message" {
        String::from("message")
    } else {
        format!("event {}", preview(ev.event_type.as_bytes()))
    };
    let id = match &ev.id {
        None => "no id",
        Some(id)
            if published
                .iter()
                .any(|p| p.id.as_deref() == Some(id.as_str())) =>
        {
            "id as published"
        }
        Some(id) if id.is_empty() => "empty id",
        Some(_) => "id",
    };
    let other = if matches!(class, Class::Other | Class::Marker) {
        "other traffic: "
    } else {
        ""
    };
    format!(
        "{other}{kind} {} ({}, {id})",
        preview(ev.data.as_bytes()),
        crate::text::bytes(ev.data.len())
    )
}

fn describe_plain(ev: &parser::Event) -> String {
    let kind = if ev.event_type == "message" {
        String::new()
    } else {
        format!("event {} ", preview(ev.event_type.as_bytes()))
    };
    let id = match &ev.id {
        None => "no id".to_string(),
        Some(id) => format!("id {}", preview(id.as_bytes())),
    };
    format!("{kind}data {} ({id})", preview(ev.data.as_bytes()))
}

/// One event an `expect_events` step waits for.
struct Want {
    data: String,
    event_type: String,
    id: IdCheck,
}

impl Want {
    fn describe(&self) -> String {
        let kind = if self.event_type == "message" {
            String::new()
        } else {
            format!("event {} ", preview(self.event_type.as_bytes()))
        };
        let id = match self.id {
            IdCheck::Any => "",
            IdCheck::Present => " with an id",
            IdCheck::Absent => " without id",
            IdCheck::Published => " with the published id",
            IdCheck::AsSeen => " with the id first seen",
        };
        format!("{kind}data {}{id}", preview(self.data.as_bytes()))
    }
}

struct Driver<'a> {
    target: &'a SseTarget,
    settings: Settings,
    caps: &'a Capabilities,
    t: &'a Transcript,
    run: Run,
    /// Makes this run's explicit ids and fences unique.
    nonce: String,
    streams: HashMap<String, Stream>,
    published: Vec<Published>,
    fences: u64,
    /// The id each of the case's events carried when an expectation first
    /// took it (by data), for `id = "as-seen"`.
    first_ids: HashMap<String, Option<String>>,
    /// An optional publish was skipped: optional expectations are too.
    skipped_optional: bool,
    deadline: Instant,
    /// The case budget `deadline` was set from.
    budget: Duration,
}

impl Driver<'_> {
    /// Which deadline ended a wait that ends now: the case budget, the
    /// step's hard bound, or the idle wait (nothing arrived for the
    /// timeout). A stream that keeps sending never ends an idle wait, so
    /// its reason names the budget, not silence.
    fn ended_by(&self, hard: Option<Instant>) -> String {
        let now = Instant::now();
        if now >= self.deadline {
            format!(
                "the case budget of {:?} ran out, although the target may still be sending",
                self.budget
            )
        } else if hard.is_some_and(|h| now >= h) {
            "the step's time bound ran out".into()
        } else {
            format!(
                "idle wait: nothing more came for {:?}",
                self.settings.timeout
            )
        }
    }

    /// Reports the delivery latency of the case's live events (publish
    /// answered to receipt): p50 and max in the summary. On loopback, a
    /// max above [`SLOW_DELIVERY`] is a `should` finding, but only if it
    /// is no scheduling accident: a few fences are published one by one
    /// on the slowest stream and timed the same way, and the finding
    /// stands only if one of them is slow too.
    async fn latency_check(&mut self) {
        let mut all: Vec<Duration> = Vec::new();
        let mut slowest: Option<(String, Duration)> = None;
        let mut names: Vec<String> = self.streams.keys().cloned().collect();
        names.sort();
        for name in &names {
            let s = &self.streams[name];
            all.extend(&s.latencies);
            if let Some(m) = s.latencies.iter().max()
                && slowest.as_ref().is_none_or(|(_, d)| m > d)
            {
                slowest = Some((name.clone(), *m));
            }
        }
        let Some((name, max)) = slowest else {
            return;
        };
        all.sort();
        let p50 = all[all.len() / 2];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let line = format!(
            "delivery latency (publish answered to receipt) p50 {:.1}ms, max {:.1}ms over {} event(s)",
            ms(p50),
            ms(max),
            all.len()
        );
        self.t.note(line.clone());
        if self.run.summary.is_none() {
            self.run.summary = Some(line.clone());
        }
        if max <= SLOW_DELIVERY || !is_loopback(&self.target.stream.host) || !self.can_publish() {
            return;
        }
        let mut probes = Vec::new();
        for _ in 0..LATENCY_PROBES {
            match self.probe(&name).await {
                Some(d) => probes.push(d),
                None => {
                    probes.push(Duration::MAX);
                    break;
                }
            }
        }
        let shown: Vec<String> = probes
            .iter()
            .map(|d| {
                if *d == Duration::MAX {
                    "never".into()
                } else {
                    format!("{:.1}ms", ms(*d))
                }
            })
            .collect();
        self.t
            .note(format!("[{name}] latency probes: {}", shown.join(", ")));
        if probes.iter().all(|d| *d <= SLOW_DELIVERY) {
            return;
        }
        self.run.non_strict.push(Finding::new(
            format!(
                "an event reached stream {name} {:.0}ms after its publish was answered, and a probe event was slow too ({}): on loopback events should arrive within {SLOW_DELIVERY:?} (held back or batched?); {line}",
                ms(max),
                shown.join(", ")
            ),
            format!("every event within {SLOW_DELIVERY:?} of its publish"),
            line,
        ));
    }

    /// Publishes a fence and times it on stream `name` from the publish
    /// answer to its arrival (`None` if it does not come).
    async fn probe(&mut self, name: &str) -> Option<Duration> {
        let k = self.publish_fence().await.ok()?;
        let done = Instant::now();
        let hard = done + self.settings.timeout;
        match self
            .read_to_fence(name, Some(k), Some(hard), done, Before::Skip)
            .await
            .ok()?
        {
            FenceRead::Arrived(at) => Some(at.saturating_duration_since(done)),
            FenceRead::Timeout | FenceRead::Ended => None,
        }
    }

    /// Reads stream `name` until fence `fence` arrives (without one, until
    /// the wait ends), treating the events before it as `before` says.
    /// `hard` and `idle_from` bound each wait as in `next_event`.
    async fn read_to_fence(
        &mut self,
        name: &str,
        fence: Option<u64>,
        hard: Option<Instant>,
        idle_from: Instant,
        before: Before,
    ) -> Result<FenceRead, Stop> {
        loop {
            let (ev, class, at) = match self.next_event(name, hard, idle_from).await? {
                Next::Event(Ev { ev, class, at, .. }) => (ev, class, at),
                Next::Timeout => return Ok(FenceRead::Timeout),
                Next::Ended => return Ok(FenceRead::Ended),
            };
            match (class, before) {
                (Class::Fence(k), _) if Some(k) == fence => return Ok(FenceRead::Arrived(at)),
                (Class::Ours, Before::Judge) => {
                    let s = self.stream(name)?;
                    let dup = s.taken[..s.taken.len().saturating_sub(1)].contains(&ev.data);
                    return Err(fail(
                        format!(
                            "stream {name} delivered {}event with data {} where no more event of this case was due",
                            if dup { "a duplicate: an " } else { "an " },
                            preview(ev.data.as_bytes())
                        ),
                        "no further event of this case",
                        describe_plain(&ev),
                    ));
                }
                (Class::Other | Class::ForeignFence | Class::Marker, Before::Judge) => {
                    if let Some(stop) = self.stream(name)?.stray(&ev, class) {
                        return Err(stop);
                    }
                }
                _ => {}
            }
        }
    }

    /// What every case checks over every stream it read, after its own
    /// steps passed (cases with `expect_framing` judge framing themselves):
    /// the framing rules, as of the last event of the case the stream
    /// delivered (fresh and resumed streams alike), each at its own level;
    /// and that no event arrived that the case did not publish, nor one of
    /// its events twice.
    fn every_stream_checks(&mut self) {
        let mut names: Vec<String> = self.streams.keys().cloned().collect();
        names.sort();
        let mut must: Option<Finding> = None;
        let mut should: Vec<Finding> = Vec::new();
        for name in names {
            // Not drained: what arrives after the last step would make the
            // verdict (and the transcript) depend on timing.
            let Some(s) = self.streams.get(&name) else {
                continue;
            };
            let mut issues = s.framing_at_sync.clone();
            if s.ended.is_some()
                && let Some(p) = framing_problem(FramingCheck::CompleteAtClose, s)
            {
                issues.push((FramingCheck::CompleteAtClose, p));
            }
            for (check, (reason, expected, actual)) in issues {
                let f = Finding::new(
                    format!(
                        "stream {}: {reason} (framing rule `{}`, checked on every stream)",
                        s.describe_name(),
                        check.name()
                    ),
                    expected,
                    actual,
                );
                match check.level() {
                    crate::case::Level::Must => {
                        must.get_or_insert(f);
                    }
                    _ => should.push(f),
                }
            }
            if must.is_some() {
                continue;
            }
            // Events that arrived after the case's last expectation.
            let taken = &s.taken;
            for Ev { ev, class, .. } in &s.queue {
                let stop = match class {
                    Class::Other | Class::ForeignFence | Class::Marker => s.stray(ev, *class),
                    Class::Ours if taken.contains(&ev.data) => Some(fail(
                        format!(
                            "stream {} delivered the event with data {} a second time",
                            s.describe_name(),
                            preview(ev.data.as_bytes())
                        ),
                        "each published event once",
                        describe_plain(ev),
                    )),
                    _ => None,
                };
                if let Some(Stop::Failed(f)) = stop {
                    must.get_or_insert(f);
                    break;
                }
            }
        }
        match must {
            Some(f) => self.run.failure = Some(f),
            None => self.run.non_strict.extend(should),
        }
    }

    async fn step(&mut self, step: &Step) -> Result<(), Stop> {
        match step {
            Step::Connect(c) => self.connect(c).await,
            Step::Disconnect(r) => {
                let (t, published, nonce) = (self.t, &self.published, &self.nonce);
                let s = self
                    .streams
                    .get_mut(&r.stream)
                    .ok_or_else(|| missing(&r.stream))?;
                s.drain(t, published, nonce);
                s.conn = None;
                self.t.out(format!("[{}] disconnect", r.stream));
                Ok(())
            }
            Step::Publish(p) => self.publish_step(p).await,
            Step::Finish(_) => self.finish().await,
            Step::Sync(y) => self.sync(y).await,
            Step::Pause(d) => {
                self.t.note(format!("pause {d}"));
                tokio::time::sleep(d.0).await;
                Ok(())
            }
            Step::ExpectResponse(r) => self.expect_response(r).await,
            Step::ExpectEvents(e) => self.expect_events(e).await,
            Step::ExpectNoEvent(e) => self.expect_no_event(e).await,
            Step::ExpectReplay(r) => self.expect_replay(r).await,
            Step::ExpectFraming(f) => self.expect_framing(f).await,
            Step::ExpectBytesWithin(b) => self.expect_bytes_within(b).await,
            Step::ExpectEnd(e) => self.expect_end(e).await,
        }
    }

    fn stream(&mut self, name: &str) -> Result<&mut Stream, Stop> {
        self.streams.get_mut(name).ok_or_else(|| missing(name))
    }

    /// Waits for the stream's next event. Without `hard` the wait ends after
    /// the run's timeout without any item (counted from `idle_from` at the
    /// earliest); with it, at `hard`.
    async fn next_event(
        &mut self,
        name: &str,
        hard: Option<Instant>,
        idle_from: Instant,
    ) -> Result<Next, Stop> {
        let (t, published, nonce, timeout, deadline) = (
            self.t,
            &self.published,
            &self.nonce,
            self.settings.timeout,
            self.deadline,
        );
        let first_ids = &mut self.first_ids;
        let s = self.streams.get_mut(name).ok_or_else(|| missing(name))?;
        loop {
            if let Some(ev) = s.queue.pop_front() {
                if ev.class == Class::Ours {
                    s.taken.push(ev.ev.data.clone());
                    if !first_ids.contains_key(&ev.ev.data) {
                        first_ids.insert(ev.ev.data.clone(), ev.ev.id.clone());
                    }
                }
                return Ok(Next::Event(ev));
            }
            if let Some(p) = s.problem() {
                return Err(p);
            }
            if let Some(p) = s.overlong() {
                return Err(p);
            }
            if s.conn.is_none() {
                return Ok(Next::Ended);
            }
            let until = hard
                .unwrap_or_else(|| s.last_item_at.max(idle_from) + timeout)
                .min(deadline);
            if Instant::now() >= until {
                return Ok(Next::Timeout);
            }
            if s.wait_item(until, t, published, nonce).await.is_none() && Instant::now() >= until {
                return Ok(Next::Timeout);
            }
        }
    }

    /// Waits until the stream's response head is there (or the wait ends,
    /// at the latest at the head deadline).
    async fn wait_head(&mut self, name: &str, until: Instant) {
        let (t, published, nonce) = (self.t, &self.published, &self.nonce);
        let Some(s) = self.streams.get_mut(name) else {
            return;
        };
        let until = until.min(s.sent_at + self.settings.timeout);
        while s.head.is_none() && s.conn.is_some() && Instant::now() < until {
            if s.wait_item(until, t, published, nonce).await.is_none() {
                break;
            }
        }
    }

    async fn connect(&mut self, c: &Connect) -> Result<(), Stop> {
        let mut req = http::request("GET", &self.target.stream);
        req.set("Accept", "text/event-stream");
        req.set("Cache-Control", "no-cache");
        for (n, v) in &c.headers {
            req.set(n, v.as_bytes());
        }
        for n in &c.remove {
            req.remove(n);
        }
        let mut shown_id = None;
        if let Some(l) = &c.last_event_id {
            let value = match (&l.from, &l.value) {
                (Some(from), _) => {
                    let pick = l.event.unwrap_or_default();
                    let src = self.stream(from)?;
                    let ev = match pick {
                        EventPick::First => src.seen.first(),
                        EventPick::Last => src.seen.last(),
                        EventPick::Nth(n) => src.seen.get(n - 1),
                    };
                    let Some(ev) = ev else {
                        return Err(fail(
                            format!(
                                "stream {from} received {} event(s) of this case, so it has no {pick} to resume from",
                                src.seen.len()
                            ),
                            format!("the {pick} on stream {from}"),
                            format!("{} event(s)", src.seen.len()),
                        ));
                    };
                    if ev.last_event_id.is_empty() {
                        return Err(fail(
                            format!(
                                "the {pick} on stream {from} left the last event ID empty (the stream sent no `id`), so a client cannot resume with Last-Event-ID"
                            ),
                            "events with an `id` field",
                            describe_plain(ev),
                        ));
                    }
                    shown_id = Some(format!("<last event ID after the {pick} on stream {from}>"));
                    ev.last_event_id.clone()
                }
                (None, Some(v)) => v.clone(),
                (None, None) => String::new(),
            };
            let header = c.header_name.as_deref().unwrap_or("Last-Event-ID");
            self.t.note(format!("[{}] {header}: {value:?}", c.stream));
            req.set(header, value.into_bytes());
        }
        self.t.out(format!(
            "[{}] {}",
            c.stream,
            http::describe(&req, |n, _| if n.eq_ignore_ascii_case("last-event-id") {
                shown_id.clone()
            } else {
                None
            })
        ));
        let limits = http::Limits {
            io_timeout: self.settings.timeout,
            max_body: self
                .settings
                .max_message
                .saturating_mul(4)
                .max(crate::wire::MAX_MESSAGE),
        };
        let conn = match StreamConn::open(&self.target.stream, &req, limits).await {
            Ok(c) => c,
            Err(e) => {
                self.run.handshake_failed = true;
                return Err(Stop::Error(e));
            }
        };
        let max_data = usize::try_from(self.settings.max_message).unwrap_or(usize::MAX);
        let max_line = max_data.min(parser::DEFAULT_MAX_LINE);
        let stream = Stream {
            name: c.stream.clone(),
            sent_at: conn.sent_at,
            conn: Some(conn),
            head: None,
            parser: Parser::new()
                .with_max_line(max_line)
                .with_max_data(max_data),
            queue: VecDeque::new(),
            seen: Vec::new(),
            taken: Vec::new(),
            ended: None,
            broken: None,
            unsupported: None,
            last_item_at: Instant::now(),
            last_byte_at: None,
            body_bytes: 0,
            logged_retry: None,
            logged_comments: 0,
            discarded_at_end: false,
            kept_bytes: 0,
            overflowed: 0,
            max_line: max_line as u64,
            resumed: c.last_event_id.is_some(),
            never_issued: c.last_event_id.as_ref().is_some_and(|l| l.value.is_some()),
            marker_seen: false,
            declared_extra: self
                .caps
                .profile
                .sse
                .extra_event_types
                .clone()
                .unwrap_or_default(),
            framing_at_sync: Vec::new(),
            latencies: Vec::new(),
        };
        self.streams.insert(c.stream.clone(), stream);
        if !c.wait {
            self.t.note(format!(
                "[{}] going on without waiting for the head",
                c.stream
            ));
            return Ok(());
        }
        // Events published from now on are meant for this stream: wait until
        // the target has answered (a target that holds its headers back
        // until the first event is caught by `expect_response.within`).
        let until = (Instant::now() + self.settings.timeout).min(self.deadline);
        self.wait_head(&c.stream, until).await;
        if self
            .streams
            .get(&c.stream)
            .is_some_and(|s| s.head.is_none())
        {
            self.t
                .note(format!("[{}] no response head yet; going on", c.stream));
        }
        Ok(())
    }

    fn can_publish(&self) -> bool {
        self.target.publish.is_some() && self.caps.publish
    }

    async fn publish_step(&mut self, p: &Publish) -> Result<(), Stop> {
        if !self.can_publish() {
            if p.optional {
                if !self.skipped_optional {
                    self.t
                        .note("no publish endpoint: optional publishes and expectations skipped");
                }
                self.skipped_optional = true;
                return Ok(());
            }
            return Err(Stop::Unsupported(
                "needs a publish endpoint (--publish)".into(),
            ));
        }
        let data = String::from_utf8_lossy(&p.data.bytes()).into_owned();
        let all = expand_count(&data, p.count);
        let bulk = all.len() > BULK;
        let concurrent = p.concurrency.is_some_and(|n| n > 1);
        if bulk && !concurrent {
            self.t.out(format!(
                "publish #{}..#{}: data {} .. {} ({} events)",
                self.published.len() + 1,
                self.published.len() + all.len(),
                preview(all[0].as_bytes()),
                preview(all[all.len() - 1].as_bytes()),
                all.len()
            ));
        }
        let start = Instant::now();
        match p.concurrency {
            Some(n) if concurrent => self.publish_concurrently(all, n).await?,
            _ => {
                for data in all {
                    self.publish(&data, p.id.as_deref(), bulk).await?;
                }
            }
        }
        if bulk {
            self.t.note(format!(
                "bulk publish took {:.1}ms",
                start.elapsed().as_secs_f64() * 1e3
            ));
        }
        Ok(())
    }

    /// POSTs the events with `n` requests in flight at once, each on its
    /// own connection: the target decides their order. All are recorded
    /// as published before the first request, as any may arrive first.
    async fn publish_concurrently(&mut self, all: Vec<String>, n: usize) -> Result<(), Stop> {
        let Some(endpoint) = self.target.publish.clone() else {
            return Err(Stop::Unsupported(
                "needs a publish endpoint (--publish)".into(),
            ));
        };
        let sse = &self.caps.profile.sse;
        self.t.out(format!(
            "publish #{}..#{} concurrently, {n} at a time: data {} .. {}",
            self.published.len() + 1,
            self.published.len() + all.len(),
            preview(all[0].as_bytes()),
            preview(all[all.len() - 1].as_bytes()),
        ));
        let now = Instant::now();
        // Their order is the target's choice: logged per event, it would
        // make the transcript differ from run to run.
        let bulk = true;
        let permits = Arc::new(tokio::sync::Semaphore::new(n));
        let mut tasks = tokio::task::JoinSet::new();
        for data in &all {
            self.published.push(Published {
                data: as_delivered(data),
                id: None,
                at: now,
                bulk,
                done: None,
            });
            let index = self.published.len() - 1;
            let mut req = http::request("POST", &endpoint);
            req.set(
                "Content-Type",
                sse.publish_content_type
                    .as_deref()
                    .unwrap_or("text/plain; charset=utf-8"),
            );
            req.body = publish_body(data, sse.publish_template.as_deref());
            req.set("Content-Length", req.body.len().to_string());
            req.set("Connection", "close");
            let (endpoint, permits, timeout) =
                (endpoint.clone(), permits.clone(), self.settings.timeout);
            let data = data.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let reply = http::post(&endpoint, &req, timeout).await;
                (index, data, reply)
            });
        }
        let mut problem = None;
        while let Some(done) = tasks.join_next().await {
            let why = match done {
                Ok((index, _, Ok(r))) if (200..300).contains(&r.response.status) => {
                    self.published[index].done = Some(Instant::now());
                    continue;
                }
                Ok((_, data, Ok(r))) => format!(
                    "publishing data {}: the publish endpoint {} answered {} {}: {}",
                    preview(data.as_bytes()),
                    endpoint.url(),
                    r.response.status,
                    r.response.reason,
                    preview(&r.body)
                ),
                Ok((_, data, Err(e))) => format!(
                    "publishing data {}: the publish endpoint {} failed: {e}",
                    preview(data.as_bytes()),
                    endpoint.url()
                ),
                Err(e) => format!("a publish task failed: {e}"),
            };
            problem.get_or_insert(why);
        }
        match problem {
            Some(why) => Err(Stop::Error(why)),
            None => Ok(()),
        }
    }

    /// POSTs one event; a publish that does not succeed is a harness error
    /// (the contract's publish endpoint is not usable), not a failure.
    async fn publish(&mut self, data: &str, id: Option<&str>, bulk: bool) -> Result<(), Stop> {
        let Some(endpoint) = self.target.publish.clone() else {
            return Err(Stop::Unsupported(
                "needs a publish endpoint (--publish)".into(),
            ));
        };
        let sse = &self.caps.profile.sse;
        let fence = data.starts_with(FENCE_PREFIX);
        let n = self.published.len() + 1;
        let mut req = http::request("POST", &endpoint);
        req.set(
            "Content-Type",
            sse.publish_content_type
                .as_deref()
                .unwrap_or("text/plain; charset=utf-8"),
        );
        let full_id = match id {
            None => None,
            Some(id) => {
                let Some(h) = &sse.id_header else {
                    return Err(Stop::Unsupported(
                        "the profile declares no sse.id_header for explicit event ids".into(),
                    ));
                };
                let full = format!("{id}.{}", self.nonce);
                req.set(h, full.clone().into_bytes());
                Some(full)
            }
        };
        req.body = publish_body(data, sse.publish_template.as_deref());
        req.set("Content-Length", req.body.len().to_string());
        req.set("Connection", "close");
        let what = if fence {
            format!("publish fence {}", self.fences)
        } else {
            let id = match id {
                Some(id) => format!(", id {} + run nonce", preview(id.as_bytes())),
                None => String::new(),
            };
            format!(
                "publish #{n}: data {} ({}{id})",
                preview(data.as_bytes()),
                crate::text::bytes(data.len())
            )
        };
        if fence {
            self.t.note(what.clone());
        } else if !bulk {
            self.t.out(what.clone());
        }
        // Recorded before the POST: the event may reach a stream before the
        // publish response reaches the harness.
        if !fence {
            self.published.push(Published {
                data: as_delivered(data),
                id: full_id,
                at: Instant::now(),
                bulk,
                done: None,
            });
        }
        let start = Instant::now();
        let reply = http::post(&endpoint, &req, self.settings.timeout)
            .await
            .map_err(|e| {
                Stop::Error(format!(
                    "{what}: the publish endpoint {} failed: {e}",
                    endpoint.url()
                ))
            })?;
        if !bulk {
            self.t.note(format!(
                "{what}: {} {} after {:.1}ms",
                reply.response.status,
                reply.response.reason,
                start.elapsed().as_secs_f64() * 1e3
            ));
        }
        if !fence && let Some(p) = self.published.last_mut() {
            p.done = Some(Instant::now());
        }
        if !(200..300).contains(&reply.response.status) {
            return Err(Stop::Error(format!(
                "{what}: the publish endpoint {} answered {} {}: {}",
                endpoint.url(),
                reply.response.status,
                reply.response.reason,
                preview(&reply.body)
            )));
        }
        Ok(())
    }

    async fn publish_fence(&mut self) -> Result<u64, Stop> {
        self.fences += 1;
        let k = self.fences;
        let data = format!("{FENCE_PREFIX}{} {k}", self.nonce);
        self.publish(&data, None, false).await?;
        Ok(k)
    }

    async fn finish(&mut self) -> Result<(), Stop> {
        let Some(spec) = self.caps.profile.sse.finish.clone() else {
            return Err(Stop::Unsupported(
                "the profile declares no sse.finish endpoint".into(),
            ));
        };
        let endpoint = if spec.starts_with('/') {
            HttpTarget {
                path: spec.clone(),
                ..self.target.stream.clone()
            }
        } else {
            parse_http(&spec).map_err(|e| Stop::Error(format!("sse.finish: {e}")))?
        };
        let mut req = http::request("POST", &endpoint);
        req.set("Content-Length", "0");
        req.set("Connection", "close");
        self.t.out(format!("finish: POST {}", endpoint.path));
        let reply = http::post(&endpoint, &req, self.settings.timeout)
            .await
            .map_err(|e| {
                Stop::Error(format!(
                    "the finish endpoint {} failed: {e}",
                    endpoint.url()
                ))
            })?;
        if !(200..300).contains(&reply.response.status) {
            return Err(Stop::Error(format!(
                "the finish endpoint {} answered {} {}",
                endpoint.url(),
                reply.response.status,
                reply.response.reason
            )));
        }
        Ok(())
    }

    async fn expect_response(&mut self, r: &ExpectResponse) -> Result<(), Stop> {
        let sent_at = self.stream(&r.stream)?.sent_at;
        let until = match r.within {
            Some(w) => sent_at + w.0,
            None => Instant::now() + self.settings.timeout,
        }
        .min(self.deadline);
        self.wait_head(&r.stream, until).await;
        let s = self
            .streams
            .get(&r.stream)
            .ok_or_else(|| missing(&r.stream))?;
        let statuses = r
            .status
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" or ");
        let expected = format!("HTTP status {statuses}");
        let Some((resp, framing, at)) = &s.head else {
            if let Some(b) = &s.broken {
                return Err(fail(format!("no valid response: {b}"), expected, b.clone()));
            }
            let waited = until.saturating_duration_since(sent_at);
            return Err(match r.within {
                Some(w) => fail(
                    format!(
                        "no response head within {w}: headers must be sent at once, before any event (HTML §9.2.2 announces the connection on the response)"
                    ),
                    format!("the response head within {w}"),
                    format!("nothing after {}", crate::text::duration(waited)),
                ),
                None => match s.head_overdue(self.settings.timeout) {
                    Some(p) => p,
                    None => fail(
                        format!(
                            "no response within {} ({})",
                            crate::text::duration(waited),
                            self.ended_by(None)
                        ),
                        expected,
                        "nothing",
                    ),
                },
            });
        };
        let actual = resp.describe();
        if let Some(w) = r.within {
            let took = at.saturating_duration_since(sent_at);
            if took > w.0 {
                return Err(fail(
                    format!(
                        "the response head came {:.0}ms after the request, more than {w}: headers must be sent at once, before any event",
                        took.as_secs_f64() * 1e3
                    ),
                    format!("the response head within {w}"),
                    format!("after {}", crate::text::duration(took)),
                ));
            }
        }
        if !r.status.iter().any(|st| st.matches(resp.status)) {
            let why = match resp.status {
                200 => String::new(),
                204 => " (204 tells an EventSource to stop reconnecting)".into(),
                _ => " (an EventSource fails the connection for good on any status but 200, HTML §9.2.2)".into(),
            };
            return Err(fail(
                format!("status {} instead of {statuses}{why}", resp.status),
                expected,
                actual,
            ));
        }
        for h in &r.headers {
            if let Some(problem) = header_problem(h, resp, *framing) {
                return Err(fail(problem, h.describe(), actual));
            }
        }
        Ok(())
    }

    /// The events stream `of` saw after the picked one, as they were (data,
    /// type, id), in its order: what a replay after that event must be.
    async fn expect_replay(&mut self, r: &ExpectReplay) -> Result<(), Stop> {
        let src = self.streams.get(&r.of).ok_or_else(|| missing(&r.of))?;
        let idx = match r.after {
            EventPick::First => 0,
            EventPick::Last => src.seen.len().saturating_sub(1),
            EventPick::Nth(n) => n - 1,
        };
        if idx >= src.seen.len() {
            return Err(fail(
                format!(
                    "stream {} received {} event(s) of this case, so it has no {} to compare a replay with",
                    r.of,
                    src.seen.len(),
                    r.after
                ),
                format!("the {} on stream {}", r.after, r.of),
                format!("{} event(s)", src.seen.len()),
            ));
        }
        let after = &src.seen[idx + 1..];
        let summary = format!(
            "[{}] the {} event(s) after the {} on stream {}, replayed as first seen, in order",
            r.stream,
            after.len(),
            r.after,
            r.of
        );
        if after.is_empty() {
            self.t.inbound(summary);
            return Ok(());
        }
        let events = after
            .iter()
            .map(|ev| ExpectedEvent {
                data: Payload::Text(ev.data.clone()),
                event_type: Some(ev.event_type.clone()),
                id: IdCheck::AsSeen,
                count: None,
                from: None,
            })
            .collect();
        let e = ExpectEvents {
            stream: r.stream.clone(),
            events,
            within: None,
            distinct_ids: false,
            any_order: false,
            same_order_as: None,
            optional: false,
            summary: Some(summary),
        };
        self.expect_events(&e).await
    }

    async fn expect_events(&mut self, e: &ExpectEvents) -> Result<(), Stop> {
        if e.optional && (self.skipped_optional || !self.can_publish()) {
            return Ok(());
        }
        let mut wants: Vec<Want> = Vec::new();
        for w in &e.events {
            let data = String::from_utf8_lossy(&w.data.bytes()).into_owned();
            for data in expand_range(&data, w.from.unwrap_or(1), w.count) {
                if !self.published.iter().any(|p| p.data == data) {
                    return Err(Stop::Error(format!(
                        "case error: expect_events waits for data {} that no earlier publish step sent",
                        preview(data.as_bytes())
                    )));
                }
                wants.push(Want {
                    data,
                    event_type: w
                        .event_type
                        .clone()
                        .filter(|t| !t.is_empty())
                        .unwrap_or_else(|| "message".into()),
                    id: w.id,
                });
            }
        }
        let name = e.stream.as_str();
        let start = Instant::now();
        let hard = e.within.map(|w| start + w.0);
        let expected = format!(
            "on stream {name}, in this order: {}",
            wants
                .iter()
                .map(Want::describe)
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.wait_head(
            name,
            hard.unwrap_or(start + self.settings.timeout)
                .min(self.deadline),
        )
        .await;
        if let Some(p) = self.stream(name)?.problem() {
            return Err(p);
        }
        let head_deadline = self.settings.timeout;
        let s = self.stream(name)?;
        if let Some(p) = s.head_overdue(head_deadline) {
            return Err(p);
        }
        if s.head.is_none() && s.conn.is_some() {
            let waited = s.sent_at.elapsed();
            return Err(fail(
                format!(
                    "stream {name} got no response head in {waited:?} ({})",
                    self.ended_by(hard)
                ),
                expected,
                "no response",
            ));
        }
        if let Some(st) = s.status()
            && st != 200
        {
            return Err(fail(
                format!(
                    "stream {name} was answered with status {st}, so no event can arrive (an EventSource fails the connection)"
                ),
                expected,
                format!("status {st}"),
            ));
        }
        // With a hard bound the case is about timing: a fence could flush an
        // event a buffering server holds back, so none is published.
        let grace = (self.can_publish() && e.within.is_none()).then(|| start + FENCE_GRACE);
        let mut fence: Option<u64> = None;
        let mut matched: Vec<parser::Event> = Vec::new();
        let mut other: Vec<String> = Vec::new();
        let mut other_count = 0usize;
        let total = wants.len();
        let got = |matched: &[parser::Event], other: &[String], other_count: usize| {
            let mut s = format!("{} of {total} expected event(s)", matched.len());
            if other_count > 0 {
                s.push_str(&format!(
                    "; other events meanwhile ({other_count}): {}{}",
                    other.join(", "),
                    if other_count > other.len() {
                        ", ..."
                    } else {
                        ""
                    }
                ));
            }
            s
        };
        while matched.len() < wants.len() {
            let wait_until = match (grace, fence) {
                (Some(g), None) => Some(hard.map_or(g, |h| h.min(g))),
                _ => hard,
            };
            let next = self.next_event(name, wait_until, start).await?;
            // In any order: the event arriving is the next one wanted if
            // it is still wanted at all.
            if e.any_order
                && let Next::Event(Ev {
                    ev,
                    class: Class::Ours,
                    ..
                }) = &next
                && let Some(j) = wants[matched.len()..]
                    .iter()
                    .position(|w| w.data == ev.data)
            {
                wants.swap(matched.len(), matched.len() + j);
            }
            let want = &wants[matched.len()];
            match next {
                Next::Event(Ev { ev, class, .. }) => match class {
                    Class::Fence(k) if Some(k) == fence => {
                        return Err(fail(
                            format!(
                                "expected {} on stream {name}, but a fence event published after it arrived first: the event was lost or arrived altered",
                                want.describe()
                            ),
                            expected,
                            got(&matched, &other, other_count),
                        ));
                    }
                    Class::Fence(_) => {}
                    Class::Other | Class::ForeignFence | Class::Marker => {
                        if let Some(stop) = self.stream(name)?.stray(&ev, class) {
                            return Err(stop);
                        }
                        other_count += 1;
                        if other.len() < MAX_LISTED {
                            other.push(describe_plain(&ev));
                        }
                    }
                    Class::Ours if ev.data == want.data => {
                        let ty = &ev.event_type;
                        if *ty != want.event_type {
                            return Err(fail(
                                format!(
                                    "the event with data {} arrived as type {} instead of {}",
                                    preview(want.data.as_bytes()),
                                    preview(ty.as_bytes()),
                                    preview(want.event_type.as_bytes())
                                ),
                                expected,
                                describe_plain(&ev),
                            ));
                        }
                        if let Some(problem) = self.id_problem(want, &ev) {
                            return Err(fail(problem, expected, describe_plain(&ev)));
                        }
                        matched.push(ev);
                    }
                    Class::Ours => {
                        let s = self.stream(name)?;
                        let earlier = s.taken[..s.taken.len().saturating_sub(1)].contains(&ev.data);
                        let later = wants[matched.len() + 1..].iter().any(|w| w.data == ev.data);
                        let reason = if earlier {
                            format!(
                                "duplicate: stream {name} delivered the event with data {} again, while {} was expected",
                                preview(ev.data.as_bytes()),
                                want.describe()
                            )
                        } else if later {
                            format!(
                                "out of order: the event with data {} arrived before {}",
                                preview(ev.data.as_bytes()),
                                want.describe()
                            )
                        } else {
                            format!(
                                "unexpected event: stream {name} delivered an event this case published (data {}) that should not be there, while {} was expected",
                                preview(ev.data.as_bytes()),
                                want.describe()
                            )
                        };
                        return Err(fail(reason, expected, describe_plain(&ev)));
                    }
                },
                Next::Timeout => {
                    let now = Instant::now();
                    if fence.is_none()
                        && grace.is_some()
                        && hard.is_none_or(|h| now < h)
                        && now < self.deadline
                    {
                        fence = Some(self.publish_fence().await?);
                        continue;
                    }
                    let waited = now.saturating_duration_since(start);
                    let reason = match e.within {
                        Some(w) if now >= start + w.0 => format!(
                            "{} did not arrive on stream {name} within {w} (events held back: buffering, compression without a flush per event?)",
                            want.describe()
                        ),
                        _ => format!(
                            "{} did not arrive on stream {name} ({})",
                            want.describe(),
                            self.ended_by(hard)
                        ),
                    };
                    self.t.note(format!(
                        "[{name}] gave up after {}",
                        crate::text::duration(waited)
                    ));
                    return Err(fail(reason, expected, got(&matched, &other, other_count)));
                }
                Next::Ended => {
                    let s = self.stream(name)?;
                    let how = match &s.ended {
                        Some(End::Truncated(why)) => format!(" ({why})"),
                        _ => String::new(),
                    };
                    return Err(fail(
                        format!(
                            "stream {name} ended{how} before {} arrived",
                            want.describe()
                        ),
                        expected,
                        got(&matched, &other, other_count),
                    ));
                }
            }
        }
        if let Some(other) = &e.same_order_as {
            self.same_order(name, other, &matched)?;
        }
        if e.distinct_ids {
            for (i, a) in matched.iter().enumerate() {
                if let Some(b) = matched[..i].iter().find(|b| b.id.is_some() && b.id == a.id) {
                    return Err(fail(
                        format!(
                            "two events share the id {}: ids must tell events apart for Last-Event-ID",
                            preview(a.id.as_deref().unwrap_or("").as_bytes())
                        ),
                        "a distinct id per event",
                        format!("{} and {}", describe_plain(b), describe_plain(a)),
                    ));
                }
            }
        }
        let bulk = self
            .published
            .iter()
            .rev()
            .any(|p| p.bulk && p.data == matched[0].data);
        if let Some(line) = &e.summary {
            self.t.inbound(line.clone());
        } else if bulk && e.any_order {
            self.t.inbound(format!(
                "[{name}] {} event(s) as expected, each once{}",
                matched.len(),
                e.same_order_as
                    .as_ref()
                    .map_or(String::new(), |o| format!(", in the order of stream {o}"))
            ));
        } else if bulk {
            self.t.inbound(format!(
                "[{name}] {} event(s) as expected, in order: {} .. {}",
                matched.len(),
                preview(matched[0].data.as_bytes()),
                preview(matched[matched.len() - 1].data.as_bytes())
            ));
        }
        self.t.note(format!(
            "[{name}] {} event(s) as expected after {:.1}ms",
            matched.len(),
            start.elapsed().as_secs_f64() * 1e3
        ));
        Ok(())
    }

    /// The events `matched` on stream `name` arrived in the order stream
    /// `other` received the same events in.
    fn same_order(&self, name: &str, other: &str, matched: &[parser::Event]) -> Result<(), Stop> {
        let src = self.streams.get(other).ok_or_else(|| missing(other))?;
        let set: std::collections::HashSet<&str> =
            matched.iter().map(|e| e.data.as_str()).collect();
        let there: Vec<&str> = src
            .seen
            .iter()
            .map(|e| e.data.as_str())
            .filter(|d| set.contains(d))
            .collect();
        let here: Vec<&str> = matched.iter().map(|e| e.data.as_str()).collect();
        if here == there {
            return Ok(());
        }
        let k = here
            .iter()
            .zip(&there)
            .position(|(a, b)| a != b)
            .unwrap_or(here.len().min(there.len()));
        let at = |v: &[&str]| {
            v.get(k)
                .map_or("nothing".to_string(), |d| preview(d.as_bytes()))
        };
        Err(fail(
            format!(
                "streams {name} and {other} received the same events in different orders (first difference at position {}: {} on {name}, {} on {other}): every subscriber must see one order",
                k + 1,
                at(&here),
                at(&there)
            ),
            format!("the order stream {other} saw"),
            format!("{} on {name}, {} on {other}", at(&here), at(&there)),
        ))
    }

    fn id_problem(&self, want: &Want, ev: &parser::Event) -> Option<String> {
        let data = preview(want.data.as_bytes());
        match want.id {
            IdCheck::Any => None,
            IdCheck::Present => match &ev.id {
                Some(id) if !id.is_empty() => None,
                Some(_) => Some(format!(
                    "the event with data {data} has an empty id, which resets the last event ID"
                )),
                None => Some(format!(
                    "the event with data {data} has no id: a client that reconnects cannot resume after it"
                )),
            },
            IdCheck::Absent => ev.id.as_ref().map(|id| {
                format!(
                    "the event with data {data} has id {} where none was expected",
                    preview(id.as_bytes())
                )
            }),
            IdCheck::Published => {
                let want_id = self
                    .published
                    .iter()
                    .find(|p| p.data == want.data)
                    .and_then(|p| p.id.as_deref());
                match (want_id, ev.id.as_deref()) {
                    (Some(w), Some(got)) if w == got => None,
                    (Some(w), got) => Some(format!(
                        "the event with data {data} has id {} instead of the published {}",
                        got.map_or("(none)".to_string(), |g| preview(g.as_bytes())),
                        preview(w.as_bytes())
                    )),
                    (None, _) => Some(format!(
                        "case error: the event with data {data} was not published with an explicit id"
                    )),
                }
            }
            IdCheck::AsSeen => {
                let first = self.first_ids.get(&want.data)?;
                (first != &ev.id).then(|| {
                    let show = |id: &Option<String>| {
                        id.as_ref()
                            .map_or("(none)".to_string(), |i| preview(i.as_bytes()))
                    };
                    format!(
                        "the event with data {data} came back with id {} but carried id {} when first seen: a replayed event keeps its id",
                        show(&ev.id),
                        show(first)
                    )
                })
            }
        }
    }

    /// Waits (from `start`, up to the timeout) for the head of stream
    /// `name`: an error if it is overdue or the stream is broken; `false`
    /// if it has a status other than 200, so that no event can arrive and
    /// there is nothing to read up to a fence.
    async fn answered_200(&mut self, name: &str, start: Instant) -> Result<bool, Stop> {
        self.wait_head(name, start + self.settings.timeout).await;
        let s = self.streams.get(name).ok_or_else(|| missing(name))?;
        if let Some(p) = s
            .head_overdue(self.settings.timeout)
            .or_else(|| s.problem())
        {
            return Err(p);
        }
        Ok(s.status().is_none_or(|s| s == 200))
    }

    async fn sync(&mut self, y: &SyncSpec) -> Result<(), Stop> {
        if !self.can_publish() {
            if y.optional {
                return Ok(());
            }
            return Err(Stop::Unsupported(
                "needs a publish endpoint (--publish)".into(),
            ));
        }
        let name = y.stream.as_str();
        if !self.answered_200(name, Instant::now()).await? {
            return Ok(());
        }
        let start = Instant::now();
        let k = self.publish_fence().await?;
        let read = self
            .read_to_fence(name, Some(k), None, start, Before::Skip)
            .await?;
        if !matches!(read, FenceRead::Arrived(_)) {
            self.t
                .note(format!("[{name}] the fence did not arrive; going on"));
        }
        Ok(())
    }

    async fn expect_no_event(&mut self, e: &ExpectNoEvent) -> Result<(), Stop> {
        let name = e.stream.as_str();
        let start = Instant::now();
        if !self.answered_200(name, start).await? {
            return Ok(());
        }
        let (fence, hard) = if self.can_publish() {
            let k = self.publish_fence().await?;
            (
                Some(k),
                start + e.within.map_or(self.settings.timeout, |w| w.0),
            )
        } else {
            (None, start + e.within.map_or(NO_EVENT_WAIT, |w| w.0))
        };
        let read = self
            .read_to_fence(name, fence, Some(hard), start, Before::Judge)
            .await?;
        if matches!(read, FenceRead::Timeout) && fence.is_some() {
            self.t.note(format!(
                "[{name}] the fence did not arrive; nothing of this case came either"
            ));
        }
        Ok(())
    }

    async fn expect_framing(&mut self, f: &ExpectFraming) -> Result<(), Stop> {
        let (t, published, nonce) = (self.t, &self.published, &self.nonce);
        let s = self
            .streams
            .get_mut(&f.stream)
            .ok_or_else(|| missing(&f.stream))?;
        s.drain(t, published, nonce);
        if let Some(settle) = f.settle {
            let start = Instant::now();
            let cap = (start + self.settings.timeout).min(self.deadline);
            while s.conn.is_some() {
                let until = (s.last_item_at.max(start) + settle.0).min(cap);
                if s.wait_item(until, t, published, nonce).await.is_none() {
                    break;
                }
            }
        }
        if let Some(p) = s.problem() {
            return Err(p);
        }
        let checks = f.checks.as_deref().unwrap_or(&FramingCheck::ALL);
        let obs = s.parser.observations();
        t.note(format!(
            "[{}] framing over {} bytes, {} lines ({} LF, {} CR, {} CRLF), {} comments, {} events",
            f.stream, obs.bytes, obs.lines, obs.lf, obs.cr, obs.crlf, obs.comments, obs.events
        ));
        for check in checks {
            if let Some((reason, expected, actual)) = framing_problem(*check, s) {
                return Err(fail(
                    format!("stream {}: {reason}", f.stream),
                    expected,
                    actual,
                ));
            }
        }
        Ok(())
    }

    async fn expect_bytes_within(&mut self, b: &ExpectBytesWithin) -> Result<(), Stop> {
        let every = b
            .every
            .map(|d| d.0)
            .or(self.caps.profile.sse.keepalive.map(|d| d.0))
            .unwrap_or(DEFAULT_KEEPALIVE);
        let tolerance = (every / 10).max(Duration::from_millis(250));
        let (t, published, nonce, deadline) = (self.t, &self.published, &self.nonce, self.deadline);
        let name = b.stream.as_str();
        let s = self.streams.get_mut(name).ok_or_else(|| missing(name))?;
        s.drain(t, published, nonce);
        if let Some(p) = s.problem() {
            return Err(p);
        }
        let start = Instant::now();
        let mut last = s
            .last_byte_at
            .or(s.head.as_ref().map(|h| h.2))
            .unwrap_or(s.sent_at);
        let mut longest = start.saturating_duration_since(last);
        let expected = format!("bytes (a comment or an event) at least every {every:?}");
        loop {
            let until = (last + every + tolerance).min(deadline);
            match s.wait_item(until, t, published, nonce).await {
                Some(Applied::Body(at)) => {
                    // An idle stream sends comments; an event nobody
                    // published (a keep-alive sent as `data:`) reaches the
                    // application as a message.
                    while let Some(Ev { ev, class, .. }) = s.queue.pop_front() {
                        if matches!(class, Class::Other | Class::ForeignFence | Class::Marker)
                            && let Some(stop) = s.stray(&ev, class)
                        {
                            return Err(stop);
                        }
                    }
                    let gap = at.saturating_duration_since(last);
                    longest = longest.max(gap);
                    last = at;
                    if at >= start + every / 2 {
                        self.run.summary = Some(format!(
                            "the idle stream sent bytes after at most {:.0}ms of silence (limit {every:?})",
                            longest.as_secs_f64() * 1e3
                        ));
                        return Ok(());
                    }
                }
                Some(Applied::Head) => {}
                Some(Applied::Ended) => {
                    if let Some(p) = s.problem() {
                        return Err(p);
                    }
                    return Err(fail(
                        format!(
                            "stream {name} ended while idle, after {}",
                            crate::text::duration(start.elapsed())
                        ),
                        expected,
                        "the stream ended",
                    ));
                }
                None => {
                    let silent = Instant::now().saturating_duration_since(last);
                    return Err(fail(
                        format!(
                            "the idle stream {name} sent nothing for {:.1}s (limit {every:?}): proxies and load balancers close silent connections; send a comment line such as `: keep-alive` regularly (HTML §9.2.7)",
                            silent.as_secs_f64()
                        ),
                        expected,
                        format!("{:.1}s without a byte", silent.as_secs_f64()),
                    ));
                }
            }
        }
    }

    async fn expect_end(&mut self, e: &ExpectEnd) -> Result<(), Stop> {
        let name = e.stream.as_str();
        let start = Instant::now();
        let (t, published, nonce, timeout, deadline) = (
            self.t,
            &self.published,
            &self.nonce,
            self.settings.timeout,
            self.deadline,
        );
        let budget = self.budget;
        let s = self.streams.get_mut(name).ok_or_else(|| missing(name))?;
        while s.conn.is_some() {
            let until = e
                .within
                .map_or_else(|| s.last_item_at.max(start) + timeout, |w| start + w.0)
                .min(deadline);
            if s.wait_item(until, t, published, nonce).await.is_none() && s.conn.is_some() {
                let why = if Instant::now() >= deadline {
                    format!("the case budget of {budget:?} ran out")
                } else if let Some(w) = e.within {
                    format!("the step's bound of {w}")
                } else {
                    format!("idle wait: nothing came for {timeout:?}")
                };
                return Err(fail(
                    format!(
                        "stream {name} is still open after {} ({why})",
                        crate::text::duration(start.elapsed())
                    ),
                    "the target ends the response body",
                    "still open",
                ));
            }
        }
        if let Some(p) = s.problem() {
            return Err(p);
        }
        Ok(())
    }
}

/// The publish request body: the raw data, or the profile's template with
/// `{data}` replaced by the data JSON-escaped (without the quotes).
fn publish_body(data: &str, template: Option<&str>) -> Vec<u8> {
    match template {
        None => data.as_bytes().to_vec(),
        Some(tpl) => {
            let json = serde_json::to_string(data).unwrap_or_else(|_| "\"\"".into());
            let inner = json
                .strip_prefix('"')
                .and_then(|j| j.strip_suffix('"'))
                .unwrap_or("");
            tpl.replace("{data}", inner).into_bytes()
        }
    }
}

/// Whether a host names this machine (timing thresholds assume loopback).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn missing(name: &str) -> Stop {
    Stop::Error(format!("case error: no stream {name:?}"))
}

/// A header check against an SSE response, with what it means for a stream.
fn header_problem(h: &HeaderCheck, resp: &Response, framing: Framing) -> Option<String> {
    let mut why = h.problem(resp, None)?;
    if h.absent
        && h.name.eq_ignore_ascii_case("content-length")
        && matches!(framing, Framing::Length(_))
    {
        why.push_str(": a stream of unbounded length cannot declare one (clients and proxies stop reading at that length)");
    }
    if h.essence.is_some() {
        why.push_str(" (an EventSource fails the connection)");
    }
    Some(why)
}

fn list<T: std::fmt::Debug>(items: &[T], total: u64) -> String {
    let shown: Vec<String> = items.iter().take(8).map(|i| format!("{i:?}")).collect();
    let more = if total as usize > shown.len() {
        format!(" ({total} in all)")
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(", "))
}

/// One framing check over the stream: `(reason, expected, actual)` when it fails.
fn framing_problem(check: FramingCheck, s: &Stream) -> Option<(String, String, String)> {
    let o = s.parser.observations();
    let tot = &o.totals;
    match check {
        FramingCheck::Utf8 => (tot.invalid_utf8 > 0).then(|| {
            (
                format!("{} invalid UTF-8 sequence(s); event streams are always UTF-8 (HTML §9.2.5), clients replace them with U+FFFD", tot.invalid_utf8),
                "valid UTF-8".into(),
                format!("invalid UTF-8 at byte offsets {}", list(&o.invalid_utf8, tot.invalid_utf8)),
            )
        }),
        FramingCheck::Bom => {
            let lines: Vec<&(u64, String)> = o
                .unknown_fields
                .iter()
                .chain(&o.colonless_lines)
                .filter(|(_, n)| n.starts_with('\u{FEFF}'))
                .collect();
            (!lines.is_empty()).then(|| {
                (
                    "lines begin with U+FEFF (a byte order mark) after the start of the stream: only a BOM at the very start is stripped; elsewhere it becomes part of the field name and clients ignore the line (concatenated streams?)".into(),
                    "a BOM only as the first character of the stream".into(),
                    format!("(line, name): {}", list(&lines, lines.len() as u64)),
                )
            })
        }
        FramingCheck::FieldCase => (tot.miscased_fields > 0).then(|| {
            (
                "field names in the wrong case: names are compared literally, so clients ignore these lines".into(),
                "event, data, id, retry in lowercase".into(),
                format!("(line, name): {}", list(&o.miscased_fields, tot.miscased_fields)),
            )
        }),
        FramingCheck::UnknownFields => {
            let unknown: Vec<&(u64, String)> = o
                .unknown_fields
                .iter()
                // Colon-less lines and lines beginning with a BOM have their own checks.
                .filter(|(line, n)| {
                    !o.miscased_fields.iter().any(|(_, m)| m == n)
                        && !o.colonless_lines.iter().any(|(l, _)| l == line)
                        && !is_known(n)
                        && !n.starts_with('\u{FEFF}')
                })
                .collect();
            (!unknown.is_empty()).then(|| {
                (
                    "unknown field names: clients ignore these lines; they often are payload that escaped a data line".into(),
                    "only event, data, id and retry fields".into(),
                    format!("(line, name): {}", list(&unknown, unknown.len() as u64)),
                )
            })
        }
        FramingCheck::ColonlessLines => {
            let bad: Vec<&(u64, String)> = o
                .colonless_lines
                .iter()
                .filter(|(_, l)| !is_known(l) && !l.starts_with('\u{FEFF}'))
                .collect();
            (!bad.is_empty()).then(|| {
                (
                    "lines without a colon that are not a bare field name: probably a newline inside a value that was not split into data lines".into(),
                    "every line a comment, a field `name: value`, or a bare known field name".into(),
                    format!("(line, text): {}", list(&bad, bad.len() as u64)),
                )
            })
        }
        FramingCheck::Retry => (tot.invalid_retry > 0).then(|| {
            (
                "`retry` values that are not ASCII digits: clients ignore them (the value is milliseconds as an integer)".into(),
                "retry: <digits>".into(),
                format!("(line, value): {}", list(&o.invalid_retry, tot.invalid_retry)),
            )
        }),
        FramingCheck::IdNul => (tot.ids_with_nul > 0).then(|| {
            (
                "`id` values containing U+0000: clients ignore the whole field".into(),
                "ids without NUL".into(),
                format!("on lines {}", list(&o.ids_with_nul, tot.ids_with_nul)),
            )
        }),
        FramingCheck::LineEndings => {
            // A CR ending what has arrived may be the first half of a CRLF
            // whose LF is still in transit: only a complete parse judges it.
            let cr = o.cr - u64::from(s.parser.undecided_cr());
            let kinds = [(o.lf, "LF"), (cr, "CR"), (o.crlf, "CRLF")];
            let used: Vec<String> = kinds.iter().filter(|(n, _)| *n > 0).map(|(n, k)| format!("{n} {k}")).collect();
            if cr > 0 {
                Some((
                    "lines end with a lone CR: legal, but several client parsers mishandle it".into(),
                    "LF (or CRLF) line endings".into(),
                    used.join(", "),
                ))
            } else if used.len() > 1 {
                Some((
                    "mixed line endings: legal, but interop suffers".into(),
                    "one kind of line ending".into(),
                    used.join(", "),
                ))
            } else {
                None
            }
        }
        FramingCheck::CompleteAtClose => s.discarded_at_end.then(|| {
            (
                "the stream ended in the middle of an event (no blank line after its last lines): clients discard that event and its id (HTML §9.2.6)".into(),
                "every event, the last included, ends with a blank line".into(),
                "an incomplete event at the end of the stream".into(),
            )
        }),
    }
}

fn is_known(name: &str) -> bool {
    matches!(name, "event" | "data" | "id" | "retry")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_bodies() {
        assert_eq!(publish_body("a\r\n\"b\"", None), b"a\r\n\"b\"");
        let tpl = Some(r#"{"type":"note","data":"{data}"}"#);
        let body = publish_body("line 1\nsaid \"hi\" \\ é\u{0}", tpl);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"], "line 1\nsaid \"hi\" \\ é\u{0}");
        assert_eq!(v["type"], "note");
    }

    #[test]
    fn classification() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(5);
        let published = [Published {
            data: "x\ny".into(),
            id: None,
            at: later,
            bulk: false,
            done: None,
        }];
        assert_eq!(classify("x\ny", later, &published, "n1"), Class::Ours);
        // Arrived before the publish began: someone else's.
        assert_eq!(classify("x\ny", t0, &published, "n1"), Class::Other);
        assert_eq!(classify("z", later, &published, "n1"), Class::Other);
        assert_eq!(
            classify("pushspec-fence n1 3", t0, &published, "n1"),
            Class::Fence(3)
        );
        assert_eq!(
            classify("pushspec-fence n2 3", t0, &published, "n1"),
            Class::ForeignFence
        );
    }
}
