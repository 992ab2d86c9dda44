//! `pushspec-reference-server [--tls | --tls-cert FILE --tls-key FILE] [ADDR]`:
//! runs the reference server (default 127.0.0.1:9001) until killed, over
//! TLS when asked: `--tls` makes a self-signed certificate at start (its
//! PEM is printed, for a client to trust), `--tls-cert/--tls-key` serve
//! the given PEM files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use pushspec_reference_server::tls::Tls;
use pushspec_reference_server::{Config, Server};

const USAGE: &str = "usage: pushspec-reference-server [--tls | --tls-cert FILE --tls-key FILE] [ADDR]   (default 127.0.0.1:9001)";

/// The command line, parsed.
struct Args {
    addr: Option<String>,
    tls: TlsChoice,
}

enum TlsChoice {
    Plain,
    SelfSigned,
    Files { cert: PathBuf, key: PathBuf },
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut addr, mut self_signed, mut cert, mut key) = (None, false, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--tls" => self_signed = true,
            "--tls-cert" => cert = Some(args.next().ok_or("--tls-cert needs a FILE")?),
            "--tls-key" => key = Some(args.next().ok_or("--tls-key needs a FILE")?),
            f if f.starts_with("--") => return Err(format!("unknown flag {f}")),
            _ if addr.is_none() => addr = Some(a),
            _ => return Err("only one ADDR".into()),
        }
    }
    let tls = match (self_signed, cert, key) {
        (false, None, None) => TlsChoice::Plain,
        (true, None, None) => TlsChoice::SelfSigned,
        (false, Some(c), Some(k)) => TlsChoice::Files {
            cert: c.into(),
            key: k.into(),
        },
        (true, _, _) => {
            return Err(
                "--tls makes its own certificate: give it or --tls-cert/--tls-key, not both".into(),
            );
        }
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    Ok(Args { addr, tls })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let addr: SocketAddr = match args.addr.as_deref().unwrap_or("127.0.0.1:9001").parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("invalid address: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let tls = match &args.tls {
        TlsChoice::Plain => None,
        TlsChoice::SelfSigned => Some(Tls::self_signed(&Tls::local_names(Some(
            &addr.ip().to_string(),
        )))),
        TlsChoice::Files { cert, key } => Some(Tls::from_files(cert, key)),
    };
    let tls = match tls.transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
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
    let server = match tls {
        None => {
            println!("listening on ws://{addr}/ and http://{addr}/events");
            server
        }
        Some(tls) => {
            println!("listening on wss://{addr}/ and https://{addr}/events");
            if matches!(args.tls, TlsChoice::SelfSigned) {
                println!(
                    "self-signed certificate (trust it with pushspec --ca-cert FILE):\n{}",
                    tls.certificate_pem().trim_end()
                );
            }
            server.with_tls(tls)
        }
    };
    server.run().await;
    ExitCode::SUCCESS
}
