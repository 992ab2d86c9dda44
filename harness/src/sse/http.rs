//! A raw HTTP/1.1 client for SSE targets, over TCP or TLS, so that the
//! harness sees exactly what the server sends: the response head and when
//! it arrived, how the body is delimited (`Content-Length`, chunked, or the
//! connection closing), and every body byte with its arrival time.
//!
//! A stream connection is read by its own task ([`StreamConn`]); the case
//! script pulls [`Item`]s from it with deadlines. Publish and finish
//! requests are one-shot ([`post`]). Everything is bounded: the response
//! head ([`MAX_RESPONSE_HEAD`](crate::wire::http::MAX_RESPONSE_HEAD)), a chunk-size line, trailers, a stream's
//! total body, a one-shot response body, and decompressed output. A hostile
//! server can make a request fail, never hang or exhaust the harness.

use std::io::Write;
use std::time::{Duration, Instant};

use flate2::write::{GzDecoder, ZlibDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::target::HttpTarget;
use crate::transcript::preview;
use crate::wire::http::{Request, Response};
use crate::wire::transport::{ConnectError, Stream};

/// Longest chunk-size line (size, extensions, CRLF).
const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;
/// Most body bytes kept from a publish or finish response.
const MAX_POST_BODY: usize = 64 * 1024;
/// Compressed bytes fed to the decoder at once, so that one call cannot
/// expand past the output cap by much (deflate expands at most ~1032:1).
const INFLATE_PIECE: usize = 1024;
/// Interim (1xx) responses skipped before the final one.
const MAX_INTERIM: usize = 8;

/// A request for `target` (method, path and `Host` header).
pub fn request(method: &str, target: &HttpTarget) -> Request {
    Request::new(method, &target.authority(), &target.path)
}

/// The request head as text, for the transcript, with a note of the body;
/// `shown` may replace a header's value (e.g. to show where an id came
/// from).
pub fn describe(req: &Request, shown: impl Fn(&str, &[u8]) -> Option<String>) -> String {
    let mut s = req.describe_with(shown);
    if !req.body.is_empty() {
        s.push_str(&format!(
            "\n({} body bytes: {})",
            req.body.len(),
            preview(&req.body)
        ));
    }
    s
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

impl Framing {
    pub fn describe(self) -> String {
        match self {
            Framing::None => "no body".into(),
            Framing::Length(n) => format!("Content-Length: {n}"),
            Framing::Chunked => "chunked".into(),
            Framing::Close => "delimited by the connection closing".into(),
        }
    }
}

/// How a response body ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Its framing says it is complete (last chunk, `Content-Length`
    /// reached, or closed when the body runs to the close).
    Complete,
    /// The connection closed before the framing said the body was complete.
    Truncated(String),
}

/// What a stream connection produced, in order.
#[derive(Debug)]
pub enum Item {
    Head {
        response: Response,
        framing: Framing,
        at: Instant,
    },
    /// Decoded body bytes (transfer- and content-decoded).
    Body {
        bytes: Vec<u8>,
        at: Instant,
    },
    End {
        end: End,
        at: Instant,
    },
    /// The server broke HTTP/1.1 (a malformed head or chunk); nothing follows.
    Invalid(String),
    /// The response uses something the harness cannot decode (e.g.
    /// `Content-Encoding: br`); nothing follows.
    Unsupported(String),
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connecting and writing the request may take this long.
    pub io_timeout: Duration,
    /// The most decoded body bytes read from one stream.
    pub max_body: u64,
}

/// Opens a connection to the target (TCP, then TLS for `https://`) within
/// `within`.
pub async fn connect(target: &HttpTarget, within: Duration) -> Result<Stream, ConnectError> {
    target.connect(within).await
}

/// Writes `bytes`, allowing `io_timeout` plus a second per 8 MiB. The
/// flush hands the last TLS record to the socket.
async fn write_all(sock: &mut Stream, bytes: &[u8], io_timeout: Duration) -> Result<(), String> {
    let within = io_timeout + Duration::from_secs(bytes.len() as u64 / (8 << 20));
    let write = async {
        sock.write_all(bytes).await?;
        sock.flush().await
    };
    match tokio::time::timeout(within, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("writing the request failed: {e}")),
        Err(_) => Err(format!(
            "the target did not read the {}-byte request within {within:?}",
            bytes.len()
        )),
    }
}

/// An open stream: a task reads the connection and hands out [`Item`]s.
/// Dropping it closes the connection.
pub struct StreamConn {
    pub items: mpsc::Receiver<Item>,
    /// When the request was written.
    pub sent_at: Instant,
    task: JoinHandle<()>,
}

impl Drop for StreamConn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StreamConn {
    /// Connects, writes the request and starts reading.
    pub async fn open(
        target: &HttpTarget,
        req: &Request,
        limits: Limits,
    ) -> Result<StreamConn, String> {
        let mut sock = connect(target, limits.io_timeout)
            .await
            .map_err(|e| e.to_string())?;
        write_all(&mut sock, &req.to_bytes(), limits.io_timeout).await?;
        let sent_at = Instant::now();
        let (tx, items) = mpsc::channel(64);
        let head_only = req.method.eq_ignore_ascii_case("HEAD");
        let task = tokio::spawn(async move {
            let mut r = Reader::new(sock, limits.max_body);
            r.stream(tx, head_only).await;
        });
        Ok(StreamConn {
            items,
            sent_at,
            task,
        })
    }
}

/// What the body decoder produced from some input.
struct Decoded {
    body: Vec<u8>,
    done: bool,
}

/// The transfer framing of a body, fed bytes as they come.
enum BodyState {
    Length { left: u64 },
    Chunked(Chunked),
    Close,
}

#[derive(Debug)]
enum Chunked {
    Size {
        line: Vec<u8>,
    },
    Data {
        left: u64,
    },
    /// After a chunk's data: expecting CRLF (`seen_cr` once the CR came).
    DataEnd {
        seen_cr: bool,
    },
    Trailers {
        line: Vec<u8>,
        total: usize,
    },
    Done,
}

impl Chunked {
    fn start() -> Chunked {
        Chunked::Size { line: Vec::new() }
    }

    /// Decodes from `input`; returns the bytes consumed.
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, String> {
        let mut i = 0;
        while i < input.len() {
            match self {
                Chunked::Done => return Ok(i),
                Chunked::Size { line } => {
                    let b = input[i];
                    i += 1;
                    if b != b'\n' {
                        line.push(b);
                        if line.len() > MAX_CHUNK_LINE {
                            return Err(format!(
                                "chunk-size line longer than {MAX_CHUNK_LINE} bytes"
                            ));
                        }
                        continue;
                    }
                    let size = parse_chunk_size(line)?;
                    *self = if size == 0 {
                        Chunked::Trailers {
                            line: Vec::new(),
                            total: 0,
                        }
                    } else {
                        Chunked::Data { left: size }
                    };
                }
                Chunked::Data { left } => {
                    let n = (input.len() - i).min(usize::try_from(*left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    *left -= n as u64;
                    if *left == 0 {
                        *self = Chunked::DataEnd { seen_cr: false };
                    }
                }
                Chunked::DataEnd { seen_cr } => {
                    let b = input[i];
                    i += 1;
                    match (b, *seen_cr) {
                        (b'\r', false) => *seen_cr = true,
                        (b'\n', _) => *self = Chunked::start(),
                        _ => {
                            return Err(format!(
                                "chunk data is not followed by CRLF (found byte 0x{b:02x}): the chunk size does not match its data"
                            ));
                        }
                    }
                }
                Chunked::Trailers { line, total } => {
                    let b = input[i];
                    i += 1;
                    *total += 1;
                    if *total > MAX_TRAILERS {
                        return Err(format!("trailers longer than {MAX_TRAILERS} bytes"));
                    }
                    if b == b'\n' {
                        if line.is_empty() || line == b"\r" {
                            *self = Chunked::Done;
                            return Ok(i);
                        }
                        line.clear();
                    } else {
                        line.push(b);
                    }
                }
            }
        }
        Ok(i)
    }
}

/// `1a;ext=1\r` → 26. Sizes that do not fit 64 bits are an error.
fn parse_chunk_size(line: &[u8]) -> Result<u64, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let size = match line.iter().position(|&b| b == b';') {
        Some(i) => &line[..i],
        None => line,
    };
    let size = trim_ows(size);
    if size.is_empty() || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err(format!("invalid chunk-size line {}", preview(line)));
    }
    let mut n: u64 = 0;
    for &d in size {
        let v = (d as char).to_digit(16).unwrap_or(0) as u64;
        n = n
            .checked_mul(16)
            .and_then(|n| n.checked_add(v))
            .ok_or_else(|| format!("chunk size {} does not fit in 64 bits", preview(size)))?;
    }
    Ok(n)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Content decoding (`Content-Encoding`).
enum Inflate {
    Identity,
    Gzip(Box<GzDecoder<Vec<u8>>>),
    Deflate(Box<ZlibDecoder<Vec<u8>>>),
}

impl Inflate {
    fn for_response(r: &Response) -> Result<Inflate, String> {
        let codings: Vec<String> = r
            .headers("Content-Encoding")
            .flat_map(|v| v.split(','))
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty() && c != "identity")
            .collect();
        match codings.as_slice() {
            [] => Ok(Inflate::Identity),
            [c] if c == "gzip" || c == "x-gzip" => {
                Ok(Inflate::Gzip(Box::new(GzDecoder::new(Vec::new()))))
            }
            [c] if c == "deflate" => Ok(Inflate::Deflate(Box::new(ZlibDecoder::new(Vec::new())))),
            _ => Err(format!(
                "the response uses Content-Encoding {:?}, which the harness cannot decode (it decodes gzip and deflate); \
                 send the stream uncompressed or with gzip",
                codings.join(", ")
            )),
        }
    }

    /// Decodes `input`, failing if the output would exceed `cap` bytes.
    fn decode(&mut self, input: Vec<u8>, cap: u64) -> Result<Vec<u8>, String> {
        match self {
            Inflate::Identity => Ok(input),
            Inflate::Gzip(d) => inflate(d.as_mut(), &input, cap),
            Inflate::Deflate(d) => inflate(d.as_mut(), &input, cap),
        }
    }
}

/// A decompressor writing into a `Vec`.
trait Sink: Write {
    fn out(&mut self) -> &mut Vec<u8>;
}

impl Sink for GzDecoder<Vec<u8>> {
    fn out(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
}

impl Sink for ZlibDecoder<Vec<u8>> {
    fn out(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
}

/// Feeds `input` in small pieces, flushing after each so that everything a
/// sync-flushed stream holds comes out now, and stops past `cap`.
fn inflate(d: &mut impl Sink, input: &[u8], cap: u64) -> Result<Vec<u8>, String> {
    let mut got = Vec::new();
    for piece in input.chunks(INFLATE_PIECE) {
        d.write_all(piece)
            .and_then(|_| d.flush())
            .map_err(|e| format!("the compressed body is corrupt: {e}"))?;
        got.append(d.out());
        if got.len() as u64 > cap {
            return Err(format!("the decompressed body exceeds {cap} bytes"));
        }
    }
    Ok(got)
}

/// The response head's framing (RFC 9112 §6.3), or why it is unusable.
fn framing_of(r: &Response, head_only: bool) -> Result<Framing, Item> {
    if head_only || r.status == 204 || r.status == 304 {
        return Ok(Framing::None);
    }
    let te: Vec<String> = r
        .headers("Transfer-Encoding")
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    if !te.is_empty() {
        return match te.as_slice() {
            [c] if c == "chunked" => Ok(Framing::Chunked),
            _ if te.last().is_some_and(|c| c == "chunked") => Err(Item::Unsupported(format!(
                "the response uses Transfer-Encoding {:?}; the harness only decodes plain `chunked`",
                te.join(", ")
            ))),
            _ => Err(Item::Invalid(format!(
                "Transfer-Encoding {:?} does not end with `chunked` (RFC 9112 §6.3)",
                te.join(", ")
            ))),
        };
    }
    let lengths: Vec<&str> = r
        .headers("Content-Length")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    match lengths.first() {
        None => Ok(Framing::Close),
        Some(first) => {
            if lengths.iter().any(|l| l != first) {
                return Err(Item::Invalid(format!(
                    "conflicting Content-Length values {lengths:?}"
                )));
            }
            match first.parse::<u64>() {
                Ok(n) if first.bytes().all(|b| b.is_ascii_digit()) => Ok(Framing::Length(n)),
                _ => Err(Item::Invalid(format!("invalid Content-Length {first:?}"))),
            }
        }
    }
}

struct Reader {
    sock: Stream,
    buf: Vec<u8>,
    max_body: u64,
}

/// What reading the response head gave.
enum HeadRead {
    Head(Response, Instant),
    /// The connection ended before a head; the message says how.
    Closed(String),
    Invalid(String),
}

impl Reader {
    fn new(sock: Stream, max_body: u64) -> Reader {
        Reader {
            sock,
            buf: Vec::with_capacity(16 * 1024),
            max_body,
        }
    }

    /// Reads more bytes into `buf`: `Ok(0)` at EOF.
    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.sock.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads the final response head, skipping interim 1xx responses.
    async fn head(&mut self) -> HeadRead {
        let mut interim = 0;
        loop {
            match Response::parse(&self.buf) {
                Ok(Some((r, n))) => {
                    self.buf.drain(..n);
                    if (100..200).contains(&r.status) && r.status != 101 {
                        interim += 1;
                        if interim > MAX_INTERIM {
                            return HeadRead::Invalid(format!(
                                "more than {MAX_INTERIM} interim 1xx responses"
                            ));
                        }
                        continue;
                    }
                    return HeadRead::Head(r, Instant::now());
                }
                Ok(None) => {}
                Err(e) => {
                    return HeadRead::Invalid(format!("{e} (first bytes: {})", preview(&self.buf)));
                }
            }
            match self.fill().await {
                Ok(0) if self.buf.is_empty() => {
                    return HeadRead::Closed(
                        "the server closed the connection without a response".into(),
                    );
                }
                Ok(0) => {
                    return HeadRead::Closed(format!(
                        "the server closed the connection inside the response head (got {})",
                        preview(&self.buf)
                    ));
                }
                Ok(_) => {}
                Err(e) => return HeadRead::Closed(format!("reading the response failed: {e}")),
            }
        }
    }

    /// Reads one response and sends its items until the body ends.
    async fn stream(&mut self, tx: mpsc::Sender<Item>, head_only: bool) {
        let (response, at) = match self.head().await {
            HeadRead::Head(r, at) => (r, at),
            HeadRead::Closed(why) => {
                let _ = tx.send(Item::Invalid(why)).await;
                return;
            }
            HeadRead::Invalid(why) => {
                let _ = tx.send(Item::Invalid(why)).await;
                return;
            }
        };
        let framing = match framing_of(&response, head_only) {
            Ok(f) => f,
            Err(item) => {
                let _ = tx
                    .send(Item::Head {
                        response,
                        framing: Framing::Close,
                        at,
                    })
                    .await;
                let _ = tx.send(item).await;
                return;
            }
        };
        let inflate = Inflate::for_response(&response);
        if tx
            .send(Item::Head {
                response,
                framing,
                at,
            })
            .await
            .is_err()
        {
            return;
        }
        let mut inflate = match inflate {
            Ok(i) => i,
            Err(why) => {
                let _ = tx.send(Item::Unsupported(why)).await;
                return;
            }
        };
        let mut state = match framing {
            Framing::None => {
                let _ = tx
                    .send(Item::End {
                        end: End::Complete,
                        at,
                    })
                    .await;
                return;
            }
            Framing::Length(n) => BodyState::Length { left: n },
            Framing::Chunked => BodyState::Chunked(Chunked::start()),
            Framing::Close => BodyState::Close,
        };
        let mut total: u64 = 0;
        loop {
            // Decode what is buffered.
            let input = std::mem::take(&mut self.buf);
            let mut raw = Vec::new();
            let decoded = match &mut state {
                BodyState::Length { left } => {
                    let n = (input.len() as u64).min(*left) as usize;
                    raw.extend_from_slice(&input[..n]);
                    *left -= n as u64;
                    Ok(Decoded {
                        body: raw,
                        done: *left == 0,
                    })
                }
                BodyState::Chunked(c) => match c.feed(&input, &mut raw) {
                    Ok(_) => Ok(Decoded {
                        body: raw,
                        done: matches!(c, Chunked::Done),
                    }),
                    Err(e) => Err(e),
                },
                BodyState::Close => Ok(Decoded {
                    body: input,
                    done: false,
                }),
            };
            let Decoded { body, done } = match decoded {
                Ok(d) => d,
                Err(e) => {
                    let _ = tx.send(Item::Invalid(e)).await;
                    return;
                }
            };
            if !body.is_empty() {
                let at = Instant::now();
                let bytes = match inflate.decode(body, self.max_body.saturating_sub(total)) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Item::Invalid(e)).await;
                        return;
                    }
                };
                total += bytes.len() as u64;
                if total > self.max_body {
                    let _ = tx
                        .send(Item::Invalid(format!(
                            "the stream sent more than {} body bytes",
                            self.max_body
                        )))
                        .await;
                    return;
                }
                if !bytes.is_empty() && tx.send(Item::Body { bytes, at }).await.is_err() {
                    return;
                }
            }
            if done {
                let _ = tx
                    .send(Item::End {
                        end: End::Complete,
                        at: Instant::now(),
                    })
                    .await;
                return;
            }
            match self.fill().await {
                Ok(0) => {
                    let end = match &state {
                        BodyState::Close => End::Complete,
                        BodyState::Length { left } => End::Truncated(format!(
                            "the connection closed {left} bytes short of the Content-Length"
                        )),
                        BodyState::Chunked(_) => End::Truncated(
                            "the connection closed inside the chunked body (no last chunk)".into(),
                        ),
                    };
                    let _ = tx
                        .send(Item::End {
                            end,
                            at: Instant::now(),
                        })
                        .await;
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    let end = End::Truncated(format!("reading failed: {e}"));
                    let _ = tx
                        .send(Item::End {
                            end,
                            at: Instant::now(),
                        })
                        .await;
                    return;
                }
            }
        }
    }
}

/// A complete one-shot response: its head and (up to [`MAX_POST_BODY`]) body.
#[derive(Debug)]
pub struct Reply {
    pub response: Response,
    pub body: Vec<u8>,
}

/// Sends `req` on a new connection and reads the whole response. Each read
/// may wait `io_timeout`; the whole exchange at most `io_timeout * 4` plus
/// the time to write the body.
pub async fn post(
    target: &HttpTarget,
    req: &Request,
    io_timeout: Duration,
) -> Result<Reply, String> {
    let bytes = req.to_bytes();
    let budget = io_timeout * 4 + Duration::from_secs(bytes.len() as u64 / (8 << 20));
    match tokio::time::timeout(budget, exchange(target, &bytes, io_timeout)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no complete response within {budget:?}")),
    }
}

async fn exchange(
    target: &HttpTarget,
    bytes: &[u8],
    io_timeout: Duration,
) -> Result<Reply, String> {
    let mut sock = connect(target, io_timeout)
        .await
        .map_err(|e| e.to_string())?;
    write_all(&mut sock, bytes, io_timeout).await?;
    let mut r = Reader::new(sock, MAX_POST_BODY as u64);
    let response = match tokio::time::timeout(io_timeout, r.head()).await {
        Err(_) => return Err(format!("no response within {io_timeout:?}")),
        Ok(HeadRead::Head(resp, _)) => resp,
        Ok(HeadRead::Closed(why)) | Ok(HeadRead::Invalid(why)) => return Err(why),
    };
    let framing = match framing_of(&response, false) {
        Ok(f) => f,
        // The status is what matters here; keep what the head says.
        Err(_) => Framing::Close,
    };
    let mut body = Vec::new();
    let mut state = match framing {
        Framing::None => return Ok(Reply { response, body }),
        Framing::Length(n) => BodyState::Length { left: n },
        Framing::Chunked => BodyState::Chunked(Chunked::start()),
        Framing::Close => BodyState::Close,
    };
    loop {
        let input = std::mem::take(&mut r.buf);
        let done = match &mut state {
            BodyState::Length { left } => {
                let n = (input.len() as u64).min(*left) as usize;
                body.extend_from_slice(&input[..n]);
                *left -= n as u64;
                *left == 0
            }
            BodyState::Chunked(c) => {
                c.feed(&input, &mut body)?;
                matches!(c, Chunked::Done)
            }
            BodyState::Close => {
                body.extend_from_slice(&input);
                false
            }
        };
        if done || body.len() >= MAX_POST_BODY {
            body.truncate(MAX_POST_BODY);
            return Ok(Reply { response, body });
        }
        match tokio::time::timeout(io_timeout, r.fill()).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(Reply { response, body }),
            Ok(Ok(_)) => {}
            // A server that neither ends the body nor closes: the status is known.
            Err(_) => return Ok(Reply { response, body }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dechunk(input: &[u8], piece: usize) -> Result<(Vec<u8>, bool), String> {
        let mut c = Chunked::start();
        let mut out = Vec::new();
        for p in input.chunks(piece) {
            let n = c.feed(p, &mut out)?;
            if matches!(c, Chunked::Done) {
                assert!(n <= p.len());
                return Ok((out, true));
            }
        }
        Ok((out, false))
    }

    #[test]
    fn chunked_decoding_in_any_pieces() {
        let body = b"5\r\nhello\r\n1;ext=x\r\n \r\n6 \r\nworld!\r\n0\r\nX-T: 1\r\n\r\n";
        for piece in [1, 2, 3, 7, body.len()] {
            assert_eq!(
                dechunk(body, piece).unwrap(),
                (b"hello world!".to_vec(), true)
            );
        }
        assert_eq!(
            dechunk(b"3\nabc\n0\n\n", 1).unwrap(),
            (b"abc".to_vec(), true)
        );
        assert_eq!(dechunk(b"5\r\nhel", 100).unwrap(), (b"hel".to_vec(), false));
    }

    #[test]
    fn hostile_chunking_is_an_error() {
        assert!(
            dechunk(b"zz\r\n", 1)
                .unwrap_err()
                .contains("invalid chunk-size")
        );
        assert!(
            dechunk(b"\r\n", 1)
                .unwrap_err()
                .contains("invalid chunk-size")
        );
        assert!(
            dechunk(b"10000000000000000\r\n", 4)
                .unwrap_err()
                .contains("64 bits")
        );
        // 2^63: a valid size, streamed as it comes.
        let (out, done) = dechunk(b"8000000000000000\r\nabc", 5).unwrap();
        assert_eq!((out.as_slice(), done), (&b"abc"[..], false));
        assert!(
            dechunk(b"2\r\nabc\r\n", 1)
                .unwrap_err()
                .contains("not followed by CRLF")
        );
        let long = vec![b'1'; MAX_CHUNK_LINE + 10];
        assert!(dechunk(&long, 100).unwrap_err().contains("longer than"));
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(b'x', MAX_TRAILERS + 1));
        assert!(dechunk(&trailers, 1000).unwrap_err().contains("trailers"));
    }

    fn head(text: &str) -> Response {
        Response::parse(text.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn framing_and_codings() {
        let f = |t: &str| framing_of(&head(t), false).map_err(|e| format!("{e:?}"));
        assert_eq!(f("HTTP/1.1 200 OK\r\n\r\n").unwrap(), Framing::Close);
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n").unwrap(),
            Framing::Length(12)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")
                .unwrap(),
            Framing::Chunked
        );
        assert_eq!(f("HTTP/1.1 204 No Content\r\n\r\n").unwrap(), Framing::None);
        assert!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .unwrap_err()
                .contains("conflicting")
        );
        assert!(
            f("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")
                .unwrap_err()
                .contains("invalid")
        );
        assert!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")
                .unwrap_err()
                .contains("Invalid")
        );
        assert!(
            Inflate::for_response(&head("HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\n"))
                .is_err()
        );
        assert!(matches!(
            Inflate::for_response(&head("HTTP/1.1 200 OK\r\nContent-Encoding: GZIP\r\n\r\n")),
            Ok(Inflate::Gzip(_))
        ));
    }

    #[test]
    fn gzip_with_sync_flush_decodes_per_event() {
        use flate2::Compression;
        use flate2::write::GzEncoder;
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        let mut d = Inflate::Gzip(Box::new(GzDecoder::new(Vec::new())));
        let mut got = Vec::new();
        for ev in ["data: one\n\n", "data: two\n\n"] {
            enc.write_all(ev.as_bytes()).unwrap();
            enc.flush().unwrap(); // Z_SYNC_FLUSH
            let wire = std::mem::take(enc.get_mut());
            let out = d.decode(wire, 1 << 20).unwrap();
            assert_eq!(
                out,
                ev.as_bytes(),
                "each event decodes as soon as it is flushed"
            );
            got.extend(out);
        }
        assert_eq!(got, b"data: one\n\ndata: two\n\n");
        // A bomb stops at the cap.
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&vec![0u8; 4 << 20]).unwrap();
        let wire = enc.finish().unwrap();
        let mut d = Inflate::Gzip(Box::new(GzDecoder::new(Vec::new())));
        assert!(d.decode(wire, 1 << 20).unwrap_err().contains("exceeds"));
        let mut d = Inflate::Gzip(Box::new(GzDecoder::new(Vec::new())));
        assert!(d.decode(b"not gzip at all".to_vec(), 1 << 20).is_err());
    }

    #[test]
    fn requests_keep_raw_values() {
        let t = crate::target::parse_http("http://127.0.0.1:8080/events?x=1").unwrap();
        let mut r = request("GET", &t);
        r.set("Accept", "text/event-stream");
        r.set("last-event-id", "é…".as_bytes());
        r.set("accept", "*/*");
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert_eq!(
            text,
            "GET /events?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\naccept: */*\r\nlast-event-id: é…\r\n\r\n"
        );
        r.remove("ACCEPT");
        assert!(r.header("accept").is_none());
    }
}
