//! The instrument must not be the bottleneck. Two parts:
//!
//! - criterion micro-benchmarks of what the bench client pays per
//!   message: recording a latency in an HdrHistogram, and encoding a
//!   masked 32 B frame;
//! - a ceiling check: `pushspec bench ws-echo` against a minimal Rust echo
//!   target in this process, as a ratio to ceilings measured in the same
//!   run: one connection at pipeline 1 against the calibration's raw TCP
//!   round trips per second, and pipelined 32 B messages on 4 connections
//!   against raw TCP echoing the same bytes the same way.
//!
//! `cargo bench --bench instrument` prints the ratios (the README keeps
//! them); run as a test (`cargo test --benches`) it only smoke-runs each
//! part briefly.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use pushspec::bench::{self, Config, Plan, Scenario, Target};
use pushspec::wire::frame::{self, Frame, Opcode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

fn micro(c: &mut Criterion) {
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    let mut v = 1u64;
    c.bench_function("hdr_record", |b| {
        b.iter(|| {
            v = v.wrapping_mul(6364136223846793005).wrapping_add(1) % 100_000 + 1;
            h.record(black_box(v)).unwrap();
        })
    });
    let payload = [0x2au8; 32];
    c.bench_function("client_encode_masked_32B", |b| {
        b.iter(|| {
            frame::encode(
                &Frame::new(Opcode::Binary, black_box(&payload[..]).to_vec()).masked([1, 2, 3, 4]),
            )
        })
    });
}

criterion_group!(benches, micro);

/// A minimal WebSocket echo server: upgrade, then echo every data frame,
/// answering everything that arrived in one read with one write.
async fn echo_target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(echo_conn(sock));
        }
    });
    addr
}

async fn echo_conn(mut sock: TcpStream) {
    let _ = sock.set_nodelay(true);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) if buf.len() + n < 8192 => buf.extend_from_slice(&chunk[..n]),
            Ok(_) => return,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let Some(key) = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_string())
    }) else {
        return;
    };
    buf.drain(..head_end);
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        pushspec::wire::handshake::accept_for(&key)
    );
    if sock.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let mut used = 0;
        while let Ok(Some((f, n))) = frame::decode(&buf[used..], 1 << 24) {
            used += n;
            let reply = match f.opcode {
                Opcode::Close => {
                    let _ = sock.write_all(&out).await;
                    let _ = sock
                        .write_all(&frame::encode(&Frame::new(Opcode::Close, f.payload)))
                        .await;
                    return;
                }
                Opcode::Ping => Frame::new(Opcode::Pong, f.payload),
                Opcode::Pong => continue,
                op => Frame::new(op, f.payload).with_fin(f.fin),
            };
            out.extend_from_slice(&frame::encode(&reply));
        }
        buf.drain(..used);
        if !out.is_empty() {
            if sock.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Raw TCP: `connections` connections each keeping `depth` messages of
/// `size` bytes in flight to a byte echo; messages echoed per second.
async fn raw_pipelined(connections: usize, depth: usize, size: usize, span: Duration) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut b = vec![0u8; 64 * 1024];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 || s.write_all(&b[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let echoed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + span;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let echoed = echoed.clone();
        tasks.spawn(async move {
            let s = TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            let (mut r, mut w) = s.into_split();
            let credit = Arc::new(tokio::sync::Semaphore::new(depth));
            let writer = {
                let credit = credit.clone();
                tokio::spawn(async move {
                    let msg = vec![0x2au8; size];
                    while Instant::now() < end {
                        let Ok(p) = credit.acquire().await else { break };
                        p.forget();
                        if w.write_all(&msg).await.is_err() {
                            break;
                        }
                    }
                })
            };
            let mut b = vec![0u8; 64 * 1024];
            let mut bytes = 0usize;
            while Instant::now() < end {
                match tokio::time::timeout_at(end, r.read(&mut b)).await {
                    Ok(Ok(n)) if n > 0 => {
                        bytes += n;
                        let whole = bytes / size;
                        bytes %= size;
                        echoed.fetch_add(whole as u64, Ordering::Relaxed);
                        credit.add_permits(whole);
                    }
                    _ => break,
                }
            }
            credit.close();
            writer.abort();
        });
    }
    while tasks.join_next().await.is_some() {}
    echoed.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn ws_echo(
    addr: SocketAddr,
    connections: usize,
    pipeline: usize,
    span: Duration,
) -> bench::Report {
    let plan = Plan {
        scenario: Scenario::WsEcho,
        target: Target::Ws(pushspec::target::parse_ws(&format!("ws://{addr}/")).unwrap()),
        config: Config {
            connections,
            size: 32,
            pipeline,
            rate: None,
            warmup_ms: (span / 5).as_millis() as u64,
            duration_ms: span.as_millis() as u64,
            shard: None,
        },
        pid: None,
    };
    bench::run(plan, None).await.unwrap()
}

fn ceiling(span: Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let target = echo_target().await;
        let one = ws_echo(target, 1, 1, span).await;
        let raw = raw_pipelined(4, 32, 32, span).await;
        let piped = ws_echo(target, 4, 32, span).await;
        let c = &one.calibration;
        println!(
            "calibration: {:.0} TCP round trips/s, {:.0} MB/s",
            c.tcp_round_trips_per_sec,
            c.tcp_bytes_per_sec / 1e6
        );
        let r1 = one.results.per_connection_to_tcp_round_trips;
        println!(
            "ws-echo, 1 connection, pipeline 1, 32 B: {:.0} messages/s = {r1:.2} of the TCP round-trip rate (want >= 0.80){}",
            one.results.per_sec,
            if r1 >= 0.8 { "" } else { "  BELOW" }
        );
        let r2 = piped.results.per_sec / raw.max(1e-9);
        println!(
            "ws-echo, 4 connections, pipeline 32, 32 B: {:.0} messages/s = {r2:.2} of raw TCP echoing the same ({raw:.0}/s) (want >= 0.80){}",
            piped.results.per_sec,
            if r2 >= 0.8 { "" } else { "  BELOW" }
        );
    });
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    benches();
    Criterion::default().configure_from_args().final_summary();
    ceiling(if measuring {
        Duration::from_secs(3)
    } else {
        Duration::from_millis(200)
    });
}
