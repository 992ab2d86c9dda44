//! The transport flags of `run` and `bench`: which certificates a
//! `wss://` or `https://` target is checked against (`--ca-cert`,
//! `--insecure`), and `--tls` for the embedded reference server. A flag
//! that cannot apply is a configuration error (exit 2), never ignored.

use std::path::PathBuf;

use clap::Args;

use super::ConfigError;
use crate::engine::Targets;
use crate::report::TransportInfo;
use crate::wire::transport::{Tls, Transport, Trust};

#[derive(Clone, Debug, Default, Args)]
pub struct TlsArgs {
    /// Trust only the CA certificates of this PEM file for wss:// and
    /// https:// targets (instead of the platform's root store).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca_cert: Option<PathBuf>,
    /// Do not verify the TLS certificate of wss:// and https:// targets
    /// (said in the console and in the JSON report).
    #[arg(long)]
    pub insecure: bool,
    /// With no target: the embedded reference server serves TLS with a
    /// self-signed certificate made at start (trusted by this run only),
    /// tested over wss:// and https://.
    #[arg(long, conflicts_with_all = ["ca_cert", "insecure"])]
    pub tls: bool,
}

/// The TLS flags of `serve`.
#[derive(Clone, Debug, Default, Args)]
pub struct ServeTls {
    /// Serve TLS with a self-signed certificate made at start (printed, for
    /// clients to trust; it names localhost, 127.0.0.1, ::1 and the
    /// --listen host).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls: bool,
    /// Serve TLS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ServeTls {
    /// The server's TLS setup, if asked for; a self-signed certificate is
    /// printed to standard error (standard output names the URLs).
    pub(super) fn load(
        &self,
        host: Option<&str>,
    ) -> Result<Option<pushspec_reference_server::tls::Tls>, TlsFlagError> {
        use pushspec_reference_server::tls::Tls as ServerTls;
        let made = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => ServerTls::from_files(c, k),
            _ if self.tls => ServerTls::self_signed(&ServerTls::local_names(host)),
            _ => return Ok(None),
        };
        let made = made.map_err(|e| TlsFlagError::Serve(e.to_string()))?;
        if self.tls {
            eprintln!(
                "self-signed certificate (trust it with --ca-cert FILE):\n{}",
                made.certificate_pem().trim_end()
            );
        }
        Ok(Some(made))
    }
}

/// Why a transport flag cannot apply.
#[derive(Debug, thiserror::Error)]
pub enum TlsFlagError {
    #[error(
        "--tls serves the embedded reference server over TLS; with a target, its scheme (wss://, https://) chooses TLS"
    )]
    TlsWithTarget,
    #[error(
        "{0} applies to wss:// and https:// targets, and none is given (for the embedded server over TLS, use --tls)"
    )]
    NoTlsTarget(&'static str),
    #[error(transparent)]
    CaFile(#[from] crate::wire::transport::TlsConfigError),
    #[error("cannot serve the embedded reference server over TLS: {0}")]
    Embedded(String),
    #[error("cannot serve TLS: {0}")]
    Serve(String),
}

impl From<TlsFlagError> for ConfigError {
    fn from(e: TlsFlagError) -> ConfigError {
        ConfigError::Tls(Box::new(e))
    }
}

impl TlsArgs {
    /// The verification `--ca-cert` or `--insecure` asks for, if any.
    fn chosen(&self) -> Result<Option<Tls>, TlsFlagError> {
        Ok(match (&self.ca_cert, self.insecure) {
            (Some(path), _) => Some(Tls::ca_file(path)?),
            (None, true) => Some(Tls::insecure()),
            (None, false) => None,
        })
    }

    fn flag(&self) -> &'static str {
        if self.insecure {
            "--insecure"
        } else {
            "--ca-cert"
        }
    }

    /// Applies the flags to the given targets (`None`: the embedded
    /// server): every TLS target gets the chosen verification.
    pub fn apply(&self, targets: Option<&mut Targets>) -> Result<(), TlsFlagError> {
        let Some(t) = targets else {
            return match self.chosen()? {
                Some(_) => Err(TlsFlagError::NoTlsTarget(self.flag())),
                None => Ok(()),
            };
        };
        if self.tls {
            return Err(TlsFlagError::TlsWithTarget);
        }
        let Some(tls) = self.chosen()? else {
            return Ok(());
        };
        let mut any = false;
        for transport in transports(t) {
            if transport.is_tls() {
                *transport = Transport::Tls(tls.clone());
                any = true;
            }
        }
        if !any {
            return Err(TlsFlagError::NoTlsTarget(self.flag()));
        }
        Ok(())
    }
}

/// Every target's transport, to set or to report.
fn transports(t: &mut Targets) -> Vec<&mut Transport> {
    let mut v = Vec::new();
    if let Some(ws) = &mut t.ws {
        v.push(&mut ws.transport);
    }
    if let Some(sse) = &mut t.sse {
        v.push(&mut sse.stream.transport);
        if let Some(p) = &mut sse.publish {
            v.push(&mut p.transport);
        }
    }
    v
}

/// Starts the embedded reference server, over TLS when asked; the targets
/// trust exactly the certificate it made.
pub(super) async fn embedded(
    tls: bool,
) -> Result<(pushspec_reference_server::ServerHandle, Targets), ConfigError> {
    use pushspec_reference_server::tls::Tls as ServerTls;
    let server = pushspec_reference_server::Server::bind(
        ([127, 0, 0, 1], 0).into(),
        pushspec_reference_server::Config::conformance(),
    )
    .await
    .map_err(ConfigError::Embedded)?;
    let addr = server.local_addr();
    let (server, transport) = if tls {
        let made = ServerTls::self_signed(&ServerTls::local_names(None))
            .map_err(|e| TlsFlagError::Embedded(e.to_string()))?;
        let trusted = Tls::pinned(made.certificate_pem().as_bytes())
            .map_err(|e| TlsFlagError::Embedded(e.to_string()))?;
        (server.with_tls(made), Transport::Tls(trusted))
    } else {
        (server, Transport::Tcp)
    };
    // Its own thread and runtime, like a separate process: the harness's
    // deadlines then measure the server, not contention with the harness.
    let handle = server.spawn_isolated().map_err(ConfigError::Embedded)?;
    Ok((handle, Targets::reference_over(addr, transport)))
}

/// What the reports say about the run's transports.
pub(super) fn transport_info(targets: &Targets) -> TransportInfo {
    let mut t = targets.clone();
    let trust = transports(&mut t).into_iter().find_map(|tr| match tr {
        Transport::Tls(tls) => Some(tls.trust().clone()),
        Transport::Tcp => None,
    });
    TransportInfo {
        ws: targets.ws.as_ref().map(|w| w.transport.word()),
        sse: targets.sse.as_ref().map(|s| s.stream.transport.word()),
        publish: targets
            .sse
            .as_ref()
            .and_then(|s| s.publish.as_ref())
            .map(|p| p.transport.word()),
        tls_verification: trust.as_ref().map(Trust::word),
        insecure: trust == Some(Trust::Insecure),
    }
}
