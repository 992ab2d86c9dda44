//! The machine's own loopback ceiling, measured in the same run as the
//! target: raw TCP round trips per second on one connection, and bulk
//! bytes per second. Results carry their ratio to it, so figures from
//! noisy or different machines can be compared.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// 1-byte ping-pong round trips per second over loopback TCP.
    pub tcp_round_trips_per_sec: f64,
    /// Bytes per second one connection moves over loopback TCP.
    pub tcp_bytes_per_sec: f64,
}

/// How long each calibration measurement runs.
const SPAN: Duration = Duration::from_millis(500);

pub async fn measure() -> std::io::Result<Calibration> {
    Ok(Calibration {
        tcp_round_trips_per_sec: round_trips().await?,
        tcp_bytes_per_sec: bulk().await?,
    })
}

async fn pair() -> std::io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (client, (server, _)) = (client?, accepted?);
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    Ok((client, server))
}

async fn round_trips() -> std::io::Result<f64> {
    let (mut client, mut server) = pair().await?;
    let echo = tokio::spawn(async move {
        let mut b = [0u8; 1];
        while server.read_exact(&mut b).await.is_ok() {
            if server.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut n = 0u64;
    let mut b = [0u8; 1];
    while start.elapsed() < SPAN {
        client.write_all(&b).await?;
        client.read_exact(&mut b).await?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(client);
    let _ = echo.await;
    Ok(rate)
}

async fn bulk() -> std::io::Result<f64> {
    let (mut client, mut server) = pair().await?;
    let sink = tokio::spawn(async move {
        let mut b = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        while let Ok(n) = server.read(&mut b).await {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let chunk = vec![0x5au8; 256 * 1024];
    let start = Instant::now();
    while start.elapsed() < SPAN {
        client.write_all(&chunk).await?;
    }
    client.shutdown().await?;
    drop(client);
    let total = sink.await.unwrap_or(0);
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
