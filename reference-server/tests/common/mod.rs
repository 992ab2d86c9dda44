//! Raw-TCP helpers: every read has a timeout so no test can hang.
#![allow(dead_code)]

use std::time::Duration;

use pushspec_reference_server::{Config, Server, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

pub const T: Duration = Duration::from_secs(5);

pub async fn start(config: Config) -> ServerHandle {
    Server::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
        .spawn()
}

/// A TCP connection with a read buffer.
pub struct Conn {
    pub tcp: TcpStream,
    pub buf: Vec<u8>,
}

impl Conn {
    pub async fn open(h: &ServerHandle) -> Conn {
        let tcp = timeout(T, TcpStream::connect(h.local_addr()))
            .await
            .unwrap()
            .unwrap();
        tcp.set_nodelay(true).unwrap();
        Conn {
            tcp,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        timeout(T, self.tcp.write_all(bytes))
            .await
            .unwrap()
            .unwrap();
    }

    /// Reads more bytes into the buffer; returns how many (0 at EOF).
    pub async fn fill(&mut self) -> usize {
        let mut tmp = [0u8; 8192];
        let n = timeout(T, self.tcp.read(&mut tmp))
            .await
            .expect("read timed out")
            .expect("read failed");
        self.buf.extend_from_slice(&tmp[..n]);
        n
    }

    pub async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await > 0, "EOF while waiting for {n} bytes");
        }
        self.buf.drain(..n).collect()
    }

    /// Reads an HTTP response head.
    pub async fn head(&mut self) -> Head {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Head::parse(&raw);
            }
            assert!(
                self.fill().await > 0,
                "EOF before the end of the response head"
            );
        }
    }

    /// Reads one chunk of a chunked body; `None` for the last chunk.
    pub async fn chunk(&mut self) -> Option<Vec<u8>> {
        let line = loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).collect();
                break line;
            }
            assert!(self.fill().await > 0, "EOF inside chunked body");
        };
        let size_hex = String::from_utf8(line[..line.len() - 2].to_vec()).unwrap();
        let size = usize::from_str_radix(size_hex.split(';').next().unwrap().trim(), 16).unwrap();
        let data = self.take(size + 2).await;
        assert_eq!(&data[size..], b"\r\n");
        if size == 0 {
            None
        } else {
            Some(data[..size].to_vec())
        }
    }

    /// Reads a server frame: (first byte, payload). Server frames must be
    /// unmasked.
    pub async fn frame(&mut self) -> (u8, Vec<u8>) {
        let h = self.take(2).await;
        assert_eq!(h[1] & 0x80, 0, "server frames must not be masked");
        let len = match h[1] & 0x7F {
            126 => u16::from_be_bytes(self.take(2).await.try_into().unwrap()) as usize,
            127 => u64::from_be_bytes(self.take(8).await.try_into().unwrap()) as usize,
            n => n as usize,
        };
        (h[0], self.take(len).await)
    }

    /// Expects a close frame with this code (None: empty payload).
    pub async fn expect_close(&mut self, code: Option<u16>) {
        let (b0, payload) = self.frame().await;
        assert_eq!(b0, 0x88, "expected a close frame, got {b0:#x} {payload:?}");
        let got = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        assert_eq!(got, code, "close payload {payload:?}");
    }

    /// Expects the server to close TCP cleanly (FIN, not RST) with no more
    /// data.
    pub async fn expect_eof(&mut self) {
        let mut tmp = [0u8; 1024];
        let n = timeout(T, self.tcp.read(&mut tmp))
            .await
            .expect("server did not close the connection")
            .expect("connection reset instead of closed");
        assert_eq!(n, 0, "unexpected data: {:?}", &tmp[..n]);
        assert!(
            self.buf.is_empty(),
            "unexpected buffered data: {:?}",
            self.buf
        );
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug)]
pub struct Head {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: &[u8]) -> Head {
        let text = String::from_utf8(raw.to_vec()).unwrap();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap().to_string();
        let status = parts.next().unwrap().parse().unwrap();
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        Head {
            version,
            status,
            headers,
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Opens a connection and completes a WebSocket handshake.
pub async fn ws(h: &ServerHandle) -> Conn {
    let mut c = Conn::open(h).await;
    c.send(upgrade_request("").as_bytes()).await;
    let head = c.head().await;
    assert_eq!(head.status, 101, "{head:?}");
    c
}

/// A masked client frame with the given first byte.
pub fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0xA1, 0x5B, 0x03, 0xE7];
    let mut out = vec![b0];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend((len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend((len as u64).to_be_bytes());
    }
    out.extend(mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// Waits (at most [`T`]) until the server reports this many parked
/// WebSocket sessions.
pub async fn wait_parked(h: &ServerHandle, n: usize) {
    let deadline = tokio::time::Instant::now() + T;
    while h.stats().parked_websocket_sessions != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {n} parked sessions: {:?}",
            h.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
