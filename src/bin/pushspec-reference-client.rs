//! The strict reference WebSocket client, driven by Autobahn's client URL
//! protocol: `pushspec clients --exec pushspec-reference-client`.
//!
//! Usage: `pushspec-reference-client [URL] [AGENT]`; the URL defaults to
//! `$PUSHSPEC_URL`, the agent to `pushspec-reference-client`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("PUSHSPEC_URL").ok())
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_string());
    let agent = args
        .next()
        .unwrap_or_else(|| "pushspec-reference-client".to_string());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pushspec-reference-client: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(pushspec_reference_server::client::run_autobahn(
        &url, &agent,
    )) {
        Ok(n) => {
            eprintln!("pushspec-reference-client: ran {n} cases against {url}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pushspec-reference-client: {url}: {e}");
            ExitCode::from(1)
        }
    }
}
