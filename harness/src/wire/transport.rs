//! The byte stream every driver speaks over: plain TCP, or TLS over TCP
//! (rustls with the `ring` provider). Drivers and codecs see one
//! [`Stream`] (or its two halves) and never care which carries their bytes.
//!
//! Owns: how a [`Transport`] is chosen and configured (which certificates
//! are trusted, SNI, ALPN), connecting within a deadline, and telling a
//! certificate problem ([`ConnectError::Certificate`]) from an absent
//! target or a failed handshake, so the pre-run probe can say it in one
//! line. Imports nothing else from the crate.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// The only application protocol the HTTP/1.1 drivers speak, offered by
/// ALPN so a server that also speaks h2 does not pick it.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// How a target is reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    #[default]
    Tcp,
    Tls(Tls),
}

impl Transport {
    /// `tcp` or `tls`, as reports name it.
    pub fn word(&self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls(_) => "tls",
        }
    }

    /// The port a URL means when it gives none (RFC 6455 §3, RFC 9110 §4.2).
    pub fn default_port(&self) -> u16 {
        match self {
            Transport::Tcp => 80,
            Transport::Tls(_) => 443,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }
}

/// Which certificates a TLS connection accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The platform's root store (`SSL_CERT_FILE` / `SSL_CERT_DIR` are
    /// honoured).
    Platform,
    /// Only the CA certificates of a PEM file (`--ca-cert`).
    CaFile(PathBuf),
    /// Only the given certificate: the embedded server's, made at start.
    Pinned,
    /// Nothing is verified (`--insecure`): the handshake signature still is,
    /// so the peer holds the key of the certificate it shows.
    Insecure,
}

impl Trust {
    /// How reports name it.
    pub fn word(&self) -> &'static str {
        match self {
            Trust::Platform => "platform-roots",
            Trust::CaFile(_) => "ca-file",
            Trust::Pinned => "embedded-certificate",
            Trust::Insecure => "none",
        }
    }
}

/// A TLS client configuration: cheap to clone, built once per run.
#[derive(Clone)]
pub struct Tls {
    trust: Trust,
    config: Arc<ClientConfig>,
    /// Root certificates loaded (for a hint when none was found).
    roots: usize,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("trust", &self.trust)
            .field("roots", &self.roots)
            .finish()
    }
}

impl PartialEq for Tls {
    fn eq(&self, other: &Tls) -> bool {
        self.trust == other.trust && Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for Tls {}

/// A `--ca-cert` file that cannot be used: exit 2, before anything runs.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("{file}: cannot read the CA certificates: {source}")]
    Read {
        file: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{0}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file")]
    Empty(String),
    #[error("{file}: the certificate cannot be a trust anchor: {why}")]
    Anchor { file: String, why: String },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(
    verifier: Option<Arc<dyn ServerCertVerifier>>,
    roots: RootCertStore,
) -> ClientConfig {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    let mut config = match verifier {
        Some(v) => builder
            .dangerous()
            .with_custom_certificate_verifier(v)
            .with_no_client_auth(),
        None => builder.with_root_certificates(roots).with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config
}

impl Tls {
    /// Verification against the platform's root store, loaded once per
    /// process. A platform without roots yields a configuration that trusts
    /// nothing: the first connection then says so.
    pub fn platform() -> Tls {
        static PLATFORM: OnceLock<(Arc<ClientConfig>, usize)> = OnceLock::new();
        let (config, roots) = PLATFORM.get_or_init(|| {
            let mut store = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            (Arc::new(client_config(None, store)), added)
        });
        Tls {
            trust: Trust::Platform,
            config: config.clone(),
            roots: *roots,
        }
    }

    /// Verification against the CA certificates of a PEM file only.
    pub fn ca_file(path: &Path) -> Result<Tls, TlsConfigError> {
        let file = path.display().to_string();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|source| TlsConfigError::Read {
                file: file.clone(),
                source,
            })?;
        Self::trusting(certs, Trust::CaFile(path.to_path_buf()), &file)
    }

    /// Verification against exactly the certificates in `pem` (the
    /// embedded server's self-signed certificate).
    pub fn pinned(pem: &[u8]) -> Result<Tls, TlsConfigError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|source| TlsConfigError::Read {
                file: "the embedded certificate".into(),
                source,
            })?;
        Self::trusting(certs, Trust::Pinned, "the embedded certificate")
    }

    fn trusting(
        certs: Vec<CertificateDer<'static>>,
        trust: Trust,
        file: &str,
    ) -> Result<Tls, TlsConfigError> {
        if certs.is_empty() {
            return Err(TlsConfigError::Empty(file.to_string()));
        }
        let mut store = RootCertStore::empty();
        for c in certs {
            store.add(c).map_err(|e| TlsConfigError::Anchor {
                file: file.to_string(),
                why: e.to_string(),
            })?;
        }
        let roots = store.len();
        Ok(Tls {
            trust,
            config: Arc::new(client_config(None, store)),
            roots,
        })
    }

    /// No certificate verification at all (`--insecure`).
    pub fn insecure() -> Tls {
        let verifier = Arc::new(AcceptAnyCertificate(provider()));
        Tls {
            trust: Trust::Insecure,
            config: Arc::new(client_config(Some(verifier), RootCertStore::empty())),
            roots: 0,
        }
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }
}

/// `--insecure`: any certificate chain and name is accepted; handshake
/// signatures are still checked with the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why no stream could be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// No TCP connection (refused, unresolvable, no answer in time).
    #[error("{0}")]
    Tcp(String),
    /// The target's certificate was refused: untrusted issuer, wrong name,
    /// expired, ...
    #[error("{0}")]
    Certificate(String),
    /// The TLS handshake failed for another reason (not a TLS listener, an
    /// alert, no common parameters, timeout).
    #[error("{0}")]
    Handshake(String),
}

/// `host:port`, an IPv6 address bracketed.
fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Opens a stream to `host:port` within `within` (TCP connect, through
/// [`super::connect`], and TLS handshake together). SNI is the host (none for an IP address, RFC 6066 §3); ALPN
/// offers `http/1.1`.
pub async fn connect(
    host: &str,
    port: u16,
    transport: &Transport,
    within: Duration,
) -> Result<Stream, ConnectError> {
    let started = tokio::time::Instant::now();
    let tcp = super::connect::connect(host, port, within)
        .await
        .map_err(ConnectError::Tcp)?;
    let Transport::Tls(tls) = transport else {
        return Ok(Stream::Tcp(tcp));
    };
    let at = endpoint(host, port);
    let deadline = started + within;
    let name = ServerName::try_from(host.to_string()).map_err(|e| {
        ConnectError::Handshake(format!("{host:?} cannot be a TLS server name: {e}"))
    })?;
    let connector = TlsConnector::from(tls.config.clone());
    match tokio::time::timeout_at(deadline, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
        Ok(Err(e)) => Err(classify(&at, tls, &e)),
        Err(_) => Err(ConnectError::Handshake(format!(
            "TLS handshake with {at} not complete within {within:?} (is it a TLS listener? use ws:// or http:// for a plain one)"
        ))),
    }
}

/// What is wrong with a refused certificate, in words (rustls names some
/// problems only by their variant).
fn certificate_problem(c: &CertificateError) -> String {
    match c {
        CertificateError::UnknownIssuer => {
            "it is not issued by a trusted CA (self-signed, or a private CA)".into()
        }
        CertificateError::Expired => "it has expired".into(),
        CertificateError::NotValidYet => "it is not valid yet".into(),
        CertificateError::Revoked => "it has been revoked".into(),
        CertificateError::BadSignature => "its signature does not verify".into(),
        CertificateError::BadEncoding => "it is not a well-formed certificate".into(),
        CertificateError::NotValidForName => "it is not valid for this name".into(),
        other => other.to_string(),
    }
}

/// One line saying why the TLS handshake failed, and what to do about it.
fn classify(at: &str, tls: &Tls, e: &io::Error) -> ConnectError {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(c)) => {
            let hint = match (c, &tls.trust) {
                (CertificateError::UnknownIssuer, Trust::Platform) if tls.roots == 0 => {
                    "no platform root certificate was found: give the CA with --ca-cert FILE"
                }
                (CertificateError::UnknownIssuer, Trust::CaFile(_)) => {
                    "no CA of --ca-cert issued it"
                }
                (CertificateError::UnknownIssuer, _) => {
                    "give its CA with --ca-cert FILE (or --insecure to skip verification)"
                }
                (
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                    _,
                ) => "connect with a name the certificate holds",
                _ => "renew or fix it (or --insecure to skip verification)",
            };
            ConnectError::Certificate(format!(
                "the TLS certificate of {at} is refused: {}; {hint}",
                certificate_problem(c)
            ))
        }
        Some(rustls::Error::InvalidMessage(_))
        | Some(rustls::Error::InappropriateMessage { .. })
        | Some(rustls::Error::InappropriateHandshakeMessage { .. }) => {
            ConnectError::Handshake(format!(
                "TLS handshake with {at} failed ({e}): is it a TLS listener? (use ws:// or http:// for a plain one)"
            ))
        }
        Some(r) => ConnectError::Handshake(format!("TLS handshake with {at} failed: {r}")),
        None => ConnectError::Handshake(format!("TLS handshake with {at} failed: {e}")),
    }
}

/// Whether `bytes` start like a TLS record (an alert or a handshake,
/// RFC 8446 §5.1): what a TLS listener answers to a plaintext request.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15 | 0x16, 0x03, ..])
}

/// An open connection to a target.
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// A reader and a writer that can be used from different tasks.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Stream::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }
}

/// A peer that closes TCP without TLS's `close_notify` ends the stream
/// like a TCP close: rustls reports it as `UnexpectedEof`, but for the
/// harness (as for a browser) it is the end of the stream, and the HTTP or
/// WebSocket framing tells whether anything was cut short.
fn eof_is_end(r: Poll<io::Result<()>>) -> Poll<io::Result<()>> {
    match r {
        Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
        other => other,
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => eof_is_end(Pin::new(s.as_mut()).poll_read(cx, buf)),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The reading half of a [`Stream`].
pub enum ReadHalf {
    Tcp(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// The writing half of a [`Stream`].
pub enum WriteHalf {
    Tcp(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ReadHalf::Tls(s) => eof_is_end(Pin::new(s).poll_read(cx, buf)),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            WriteHalf::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(s) => Pin::new(s).poll_flush(cx),
            WriteHalf::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            WriteHalf::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_records_are_told_from_http() {
        assert!(looks_like_tls(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]));
        assert!(looks_like_tls(&[0x16, 0x03, 0x01]));
        assert!(!looks_like_tls(b"HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(!looks_like_tls(&[0x15]));
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("pushspec-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(
            Tls::ca_file(&empty),
            Err(TlsConfigError::Empty(_))
        ));
        assert!(matches!(
            Tls::ca_file(&dir.join("absent.pem")),
            Err(TlsConfigError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn transports_name_themselves_and_their_default_port() {
        let tls = Transport::Tls(Tls::insecure());
        assert_eq!((tls.word(), tls.default_port()), ("tls", 443));
        assert_eq!(
            (Transport::Tcp.word(), Transport::Tcp.default_port()),
            ("tcp", 80)
        );
        assert_eq!(Tls::insecure().trust().word(), "none");
        assert_eq!(Tls::platform().trust().word(), "platform-roots");
    }
}
