//! Server-Sent Events: the event hub (replay buffer + broadcast) and the
//! stream body.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::broadcast;

use crate::SseConfig;

/// One published event, with its wire form computed once.
#[derive(Debug)]
pub(crate) struct Event {
    pub id: String,
    pub wire: Bytes,
}

#[derive(Clone, Debug)]
enum Item {
    Event(Arc<Event>),
    Finish,
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PublishError {
    #[error("Event-Id must not be empty")]
    EmptyId,
    #[error("Event-Id must not contain NUL, CR or LF")]
    BadIdChar,
    #[error("Event-Id must be at most {MAX_ID_LEN} bytes")]
    IdTooLong,
    #[error("Event-Id is already used")]
    DuplicateId,
    #[error("event is larger than the replay buffer")]
    TooLarge,
}

/// Longest explicit `Event-Id`, in bytes. Bounds what the id bookkeeping
/// (and every replayed event) can spend on ids.
pub(crate) const MAX_ID_LEN: usize = 256;

/// How many ids evicted from the replay buffer are still remembered for
/// duplicate detection. Remembering every id ever used would grow forever.
const EVICTED_IDS_REMEMBERED: usize = 4096;

/// What a new subscriber gets.
pub(crate) enum Subscription {
    /// The stream was finished: answer 204.
    Finished,
    Live(SseStream),
}

struct HubInner {
    /// At most the last `replay_capacity` events, oldest first, together at
    /// most `replay_bytes` long.
    buffer: VecDeque<Arc<Event>>,
    /// Sum of `wire.len()` over `buffer`.
    buffer_bytes: usize,
    /// The ids of the last `replay_capacity + EVICTED_IDS_REMEMBERED`
    /// published events, oldest first, and the same as a set. This covers
    /// every id in `buffer` (which never holds more than the last
    /// `replay_capacity`), so a replayable id is never reused, and the most
    /// recently evicted ones, so clients reconnecting shortly after eviction
    /// see no reuse either. Older ids are forgotten to bound memory: ids are
    /// unique within this window, not forever.
    recent_ids: VecDeque<String>,
    recent_id_set: HashSet<String>,
    /// Automatic ids count up from here; one still in `recent_id_set` (an
    /// explicit id that looks like a number) is skipped.
    next_id: u64,
    finished: bool,
    tx: broadcast::Sender<Item>,
}

pub(crate) struct Hub {
    cfg: SseConfig,
    /// One lock orders everything: a publish appends to the buffer and
    /// broadcasts under it, and a subscriber takes its replay snapshot and
    /// subscribes to the broadcast under it. So every event is either in the
    /// snapshot or received live, never both and never neither.
    inner: Mutex<HubInner>,
}

impl Hub {
    pub fn new(cfg: SseConfig) -> Self {
        // A subscriber that falls further behind than this loses events; its
        // stream is then closed (see `SseStream::next_chunk`), never skipped.
        let (tx, _) = broadcast::channel(cfg.replay_capacity.max(16));
        Hub {
            cfg,
            inner: Mutex::new(HubInner {
                buffer: VecDeque::new(),
                buffer_bytes: 0,
                recent_ids: VecDeque::new(),
                recent_id_set: HashSet::new(),
                next_id: 1,
                finished: false,
                tx,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes an event; returns its id.
    pub fn publish(&self, id: Option<String>, data: &str) -> Result<String, PublishError> {
        if let Some(id) = &id {
            if id.is_empty() {
                return Err(PublishError::EmptyId);
            }
            if id.len() > MAX_ID_LEN {
                return Err(PublishError::IdTooLong);
            }
            if id.contains(['\0', '\r', '\n']) {
                return Err(PublishError::BadIdChar);
            }
        }
        // One pass over the data outside the lock; the wire size is known
        // before anything is allocated, stored or broadcast.
        let data_len = data_lines_len(data);
        let mut inner = self.lock();
        // Choose the id without committing it: a refused publish uses none.
        let (id, next_id) = match id {
            Some(id) => {
                if inner.recent_id_set.contains(&id) {
                    return Err(PublishError::DuplicateId);
                }
                (id, inner.next_id)
            }
            None => {
                let mut n = inner.next_id;
                loop {
                    let candidate = n.to_string();
                    n += 1;
                    if !inner.recent_id_set.contains(&candidate) {
                        break (candidate, n);
                    }
                }
            }
        };
        let wire_len = id_line_len(&id) + data_len;
        if wire_len > self.cfg.replay_bytes {
            return Err(PublishError::TooLarge);
        }
        inner.next_id = next_id;
        inner.recent_ids.push_back(id.clone());
        inner.recent_id_set.insert(id.clone());
        if inner.recent_ids.len() > self.cfg.replay_capacity + EVICTED_IDS_REMEMBERED {
            let old = inner.recent_ids.pop_front().expect("not empty");
            inner.recent_id_set.remove(&old);
        }
        let event = Arc::new(Event {
            wire: encode_event(&id, data, wire_len),
            id: id.clone(),
        });
        if self.cfg.replay_capacity > 0 {
            inner.buffer_bytes += wire_len;
            inner.buffer.push_back(event.clone());
            // Evict by count and by size. The new event alone fits (checked
            // above), so it is never evicted itself. An evicted id is then
            // treated like an unknown one by `subscribe`.
            while inner.buffer.len() > self.cfg.replay_capacity
                || inner.buffer_bytes > self.cfg.replay_bytes
            {
                let old = inner.buffer.pop_front().expect("not empty");
                inner.buffer_bytes -= old.wire.len();
            }
        }
        // Err only means there is no subscriber right now.
        let _ = inner.tx.send(Item::Event(event));
        Ok(id)
    }

    /// Marks the stream finished: open streams end, new ones get 204.
    pub fn finish(&self) {
        let mut inner = self.lock();
        if !inner.finished {
            inner.finished = true;
            let _ = inner.tx.send(Item::Finish);
        }
    }

    /// Opens a stream, replaying after `last_event_id` if it is known.
    pub fn subscribe(&self, last_event_id: Option<&[u8]>) -> Subscription {
        let mut pending = VecDeque::new();
        pending.push_back(Bytes::from(format!("retry: {}\n\n", self.cfg.retry_ms)));
        let inner = self.lock();
        if inner.finished {
            return Subscription::Finished;
        }
        if let Some(last) = last_event_id {
            match inner.buffer.iter().position(|e| e.id.as_bytes() == last) {
                Some(pos) => {
                    pending.extend(inner.buffer.iter().skip(pos + 1).map(|e| e.wire.clone()));
                }
                // Never used, or evicted (by count or by size): the events
                // after it cannot all be replayed, so replay none.
                None => {
                    pending.push_back(Bytes::from_static(
                        b": unknown Last-Event-ID, no replay\n\n",
                    ));
                }
            }
        }
        let rx = inner.tx.subscribe();
        drop(inner);
        Subscription::Live(SseStream {
            pending,
            rx,
            keepalive: self.cfg.keepalive,
            done: false,
        })
    }
}

/// Length of the `id:` line of an event.
fn id_line_len(id: &str) -> usize {
    b"id: ".len() + id.len() + 1
}

/// Length of the `data:` lines of an event plus the closing blank line.
fn data_lines_len(data: &str) -> usize {
    let mut len = 1;
    for_each_line(data, |line| len += b"data: ".len() + line.len() + 1);
    len
}

/// Encodes one event: `id:`, one `data:` line per line of `data` (split on
/// CRLF, lone CR and LF), then a blank line. `len` is the exact encoded
/// length (`id_line_len + data_lines_len`), so the output is allocated once:
/// data made of line breaks grows about 7 times when encoded.
pub(crate) fn encode_event(id: &str, data: &str, len: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(len);
    out.put_slice(b"id: ");
    out.put_slice(id.as_bytes());
    out.put_u8(b'\n');
    for_each_line(data, |line| {
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    });
    out.put_u8(b'\n');
    debug_assert_eq!(out.len(), len);
    out.freeze()
}

/// Calls `f` with each line of `s`, split on CRLF, CR and LF, without
/// collecting them first. A trailing terminator yields a final empty line,
/// and an empty string yields one empty line.
fn for_each_line<'a>(s: &'a str, mut f: impl FnMut(&'a str)) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' => {
                f(&s[start..i]);
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            b'\n' => {
                f(&s[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    f(&s[start..]);
}

const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// One open event stream. Each item is one complete chunk (a full event or
/// comment, ending in a blank line), so the stream can end after any of them.
pub(crate) struct SseStream {
    pending: VecDeque<Bytes>,
    rx: broadcast::Receiver<Item>,
    keepalive: Duration,
    done: bool,
}

impl SseStream {
    /// The next chunk, or `None` when the stream ends (finished, hub gone,
    /// or this subscriber lagged and lost events).
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.pending.pop_front() {
            return Some(chunk);
        }
        if self.done {
            return None;
        }
        let received = if self.keepalive.is_zero() {
            Ok(self.rx.recv().await)
        } else {
            tokio::time::timeout(self.keepalive, self.rx.recv()).await
        };
        match received {
            // Idle for `keepalive`: the timer restarts with every chunk.
            Err(_elapsed) => Some(Bytes::from_static(KEEPALIVE)),
            Ok(Ok(Item::Event(event))) => Some(event.wire.clone()),
            // Lagged: events were lost; ending the stream lets the client
            // reconnect with Last-Event-ID instead of silently missing them.
            Ok(Ok(Item::Finish)) | Ok(Err(_)) => {
                self.done = true;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cap: usize) -> SseConfig {
        SseConfig {
            replay_capacity: cap,
            ..SseConfig::default()
        }
    }

    #[test]
    fn encoding() {
        let e = |d| {
            let len = id_line_len("7") + data_lines_len(d);
            String::from_utf8(encode_event("7", d, len).to_vec()).unwrap()
        };
        assert_eq!(e("a"), "id: 7\ndata: a\n\n");
        assert_eq!(e(""), "id: 7\ndata: \n\n");
        assert_eq!(e("a\r\nb"), "id: 7\ndata: a\ndata: b\n\n");
        assert_eq!(e("a\rb"), "id: 7\ndata: a\ndata: b\n\n");
        assert_eq!(e("a\nb"), "id: 7\ndata: a\ndata: b\n\n");
        assert_eq!(e("a\n"), "id: 7\ndata: a\ndata: \n\n");
        assert_eq!(e("a\r\n\r\n"), "id: 7\ndata: a\ndata: \ndata: \n\n");
        assert_eq!(e("\n\r"), "id: 7\ndata: \ndata: \ndata: \n\n");
        assert_eq!(e("x\revent: pwn"), "id: 7\ndata: x\ndata: event: pwn\n\n");
    }

    #[test]
    fn ids() {
        let hub = Hub::new(cfg(4));
        assert_eq!(hub.publish(None, "a").unwrap(), "1");
        assert_eq!(hub.publish(Some("3".into()), "b").unwrap(), "3");
        assert_eq!(hub.publish(None, "c").unwrap(), "2");
        assert_eq!(hub.publish(None, "d").unwrap(), "4");
        assert_eq!(
            hub.publish(Some("3".into()), "e"),
            Err(PublishError::DuplicateId)
        );
        assert_eq!(
            hub.publish(Some("".into()), "e"),
            Err(PublishError::EmptyId)
        );
        assert_eq!(
            hub.publish(Some("a\rb".into()), "e"),
            Err(PublishError::BadIdChar)
        );
        assert_eq!(
            hub.publish(Some("a\0".into()), "e"),
            Err(PublishError::BadIdChar)
        );
    }

    #[test]
    fn id_limits_and_window() {
        let hub = Hub::new(cfg(2));
        assert_eq!(
            hub.publish(Some("x".repeat(MAX_ID_LEN + 1)), "a"),
            Err(PublishError::IdTooLong)
        );
        let long = "x".repeat(MAX_ID_LEN);
        assert_eq!(hub.publish(Some(long.clone()), "a").unwrap(), long);
        // Evicted from the buffer but still remembered: still a duplicate.
        for _ in 0..10 {
            hub.publish(None, "b").unwrap();
        }
        assert_eq!(
            hub.publish(Some(long.clone()), "c"),
            Err(PublishError::DuplicateId)
        );
        // The remembered ids are bounded.
        for _ in 0..EVICTED_IDS_REMEMBERED {
            hub.publish(None, "d").unwrap();
        }
        let inner = hub.lock();
        assert_eq!(inner.recent_ids.len(), 2 + EVICTED_IDS_REMEMBERED);
        assert_eq!(inner.recent_id_set.len(), 2 + EVICTED_IDS_REMEMBERED);
        drop(inner);
        assert_eq!(hub.publish(Some(long.clone()), "e").unwrap(), long);
    }

    #[test]
    fn byte_cap() {
        // "id: N\ndata: xxxx\n\n" is 18 bytes.
        let hub = Hub::new(SseConfig {
            replay_bytes: 40,
            ..SseConfig::default()
        });
        assert_eq!(
            hub.publish(None, &"x".repeat(40)),
            Err(PublishError::TooLarge)
        );
        // Size counts as encoded: 5 line breaks are 6 `data: ` lines, 49
        // bytes in all.
        assert_eq!(hub.publish(None, "\n\n\n\n\n"), Err(PublishError::TooLarge));
        // Refusals used no id.
        for i in 1..=3 {
            assert_eq!(hub.publish(None, "xxxx").unwrap(), i.to_string());
        }
        let inner = hub.lock();
        let ids: Vec<_> = inner.buffer.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["2", "3"]);
        assert_eq!(inner.buffer_bytes, 36);
    }

    #[tokio::test]
    async fn replay_then_live_exactly_once() {
        let hub = Hub::new(cfg(3));
        for i in 0..5 {
            hub.publish(None, &format!("e{i}")).unwrap();
        }
        // Buffer holds ids 3, 4, 5.
        let Subscription::Live(mut s) = hub.subscribe(Some(b"3")) else {
            panic!()
        };
        hub.publish(None, "live").unwrap();
        hub.finish();
        let mut got = Vec::new();
        while let Some(c) = s.next_chunk().await {
            got.push(String::from_utf8(c.to_vec()).unwrap());
        }
        assert_eq!(
            got,
            [
                "retry: 3000\n\n",
                "id: 4\ndata: e3\n\n",
                "id: 5\ndata: e4\n\n",
                "id: 6\ndata: live\n\n"
            ]
        );
        assert!(matches!(hub.subscribe(None), Subscription::Finished));
    }

    #[tokio::test]
    async fn unknown_id_and_eviction() {
        let hub = Hub::new(cfg(2));
        for _ in 0..3 {
            hub.publish(None, "x").unwrap();
        }
        for unknown in [&b"1"[..], b"nope"] {
            let Subscription::Live(mut s) = hub.subscribe(Some(unknown)) else {
                panic!()
            };
            s.next_chunk().await.unwrap();
            assert_eq!(
                &s.next_chunk().await.unwrap()[..],
                b": unknown Last-Event-ID, no replay\n\n"
            );
        }
    }

    #[tokio::test]
    async fn lagging_subscriber_is_closed() {
        let hub = Hub::new(cfg(1));
        let Subscription::Live(mut s) = hub.subscribe(None) else {
            panic!()
        };
        for _ in 0..100 {
            hub.publish(None, "x").unwrap();
        }
        s.next_chunk().await.unwrap(); // retry
        assert_eq!(s.next_chunk().await, None);
    }

    #[tokio::test]
    async fn keepalive_when_idle() {
        let hub = Hub::new(SseConfig {
            keepalive: Duration::from_millis(50),
            ..SseConfig::default()
        });
        let Subscription::Live(mut s) = hub.subscribe(None) else {
            panic!()
        };
        s.next_chunk().await.unwrap();
        assert_eq!(&s.next_chunk().await.unwrap()[..], KEEPALIVE);
    }
}
