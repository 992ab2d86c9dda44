//! `pushspec-reference-server [ADDR]`: runs the reference server (default
//! 127.0.0.1:9001) until killed.

use std::net::SocketAddr;
use std::process::ExitCode;

use pushspec_reference_server::{Config, Server};

const USAGE: &str = "usage: pushspec-reference-server [ADDR]   (default 127.0.0.1:9001)";

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let arg = args.next();
    if args.next().is_some() || matches!(arg.as_deref(), Some("-h" | "--help")) {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let addr: SocketAddr = match arg.as_deref().unwrap_or("127.0.0.1:9001").parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("invalid address: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::bind(addr, Config::default()).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("cannot bind {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    println!("listening on ws://{addr}/ and http://{addr}/events");
    server.run().await;
    ExitCode::SUCCESS
}
