//! Opening a TCP connection to a target, for every driver.

use std::time::Duration;

use tokio::net::TcpStream;

use super::http::authority;

/// Connects to `host:port` within `within`, with `TCP_NODELAY` set: the
/// harness writes frames and requests in deliberate pieces, and Nagle's
/// algorithm would merge or delay them. The error names the target and says
/// why, for a transcript or a one-line probe failure.
pub async fn connect(host: &str, port: u16, within: Duration) -> Result<TcpStream, String> {
    match tokio::time::timeout(within, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(format!("cannot connect to {}: {e}", authority(host, port))),
        Err(_) => Err(format!(
            "cannot connect to {}: no answer within {within:?}",
            authority(host, port)
        )),
    }
}
