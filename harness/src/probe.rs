//! Is the target there at all? One quick look before the cases run, so an
//! absent or mute target gets a clear answer in seconds instead of hundreds
//! of identical timeouts.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ws::handshake::{MAX_RESPONSE_HEAD, Request, Response, random_key};
use crate::ws::run::WsTarget;

/// How long the probes wait for a TCP connection.
pub const CONNECT_WITHIN: Duration = Duration::from_secs(3);

/// One standard opening handshake; `Err` says why it did not complete.
/// Tried twice, so one dropped connection does not condemn a target.
pub async fn ws_handshake(target: &WsTarget, within: Duration) -> Result<(), String> {
    match handshake_once(target, within).await {
        Ok(()) => Ok(()),
        Err(_) => handshake_once(target, within).await,
    }
}

async fn handshake_once(target: &WsTarget, within: Duration) -> Result<(), String> {
    let mut stream = target.connect(CONNECT_WITHIN).await?;
    let key = random_key();
    let req = Request::upgrade(&target.authority(), &target.path, &key, &[]);
    let exchange = async {
        stream
            .write_all(&req.to_bytes())
            .await
            .map_err(|e| format!("cannot send the upgrade request: {e}"))?;
        let mut buf = Vec::with_capacity(1024);
        loop {
            if let Some((resp, _)) = Response::parse(&buf).map_err(|e| e.to_string())? {
                return Ok(resp);
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) => {
                    return Err("the target closed the connection without answering".to_string());
                }
                Ok(n) if buf.len() + n <= MAX_RESPONSE_HEAD + 4096 => {
                    buf.extend_from_slice(&chunk[..n])
                }
                Ok(_) => return Err(format!("response head exceeds {MAX_RESPONSE_HEAD} bytes")),
                Err(e) => return Err(format!("connection reset: {e}")),
            }
        }
    };
    let resp = match tokio::time::timeout(within, exchange).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(format!(
                "no response to the upgrade request within {within:?}"
            ));
        }
    };
    let problems = resp.upgrade_problems(Some(&key), &[]);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
