//! TLS for the listener (rustls with the `ring` provider): a certificate
//! and key from PEM files, or a self-signed certificate made at start for
//! local testing. Only `http/1.1` is offered by ALPN: the server speaks
//! nothing else.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{file}: cannot read a PEM certificate chain: {why}")]
    Certificates { file: String, why: String },
    #[error("{file}: cannot read a PEM private key: {why}")]
    Key { file: String, why: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// What the listener needs to serve TLS.
#[derive(Clone)]
pub struct Tls {
    pub(crate) acceptor: TlsAcceptor,
    /// The certificate chain served, as PEM (a client trusts the
    /// self-signed one by pinning it).
    certificate_pem: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// A self-signed certificate for `names` (DNS names or IP addresses),
    /// made now with a fresh key: nothing is read from or written to disk.
    pub fn self_signed(names: &[String]) -> Result<Tls, TlsError> {
        let made = rcgen::generate_simple_self_signed(names.to_vec())?;
        let cert_pem = made.cert.pem();
        let key_pem = made.signing_key.serialize_pem();
        Self::from_pem(cert_pem.as_bytes(), key_pem.as_bytes(), "generated")
    }

    /// The names a locally generated certificate holds: loopback under its
    /// usual names, plus `host` if it is another one.
    pub fn local_names(host: Option<&str>) -> Vec<String> {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(String::from)
            .collect();
        if let Some(h) = host
            && !h.is_empty()
            && !names.iter().any(|n| n == h)
        {
            names.push(h.to_string());
        }
        names
    }

    /// A certificate chain and its private key, both PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let read = |p: &Path| std::fs::read(p);
        let cert_pem = read(cert).map_err(|e| TlsError::Certificates {
            file: cert.display().to_string(),
            why: e.to_string(),
        })?;
        let key_pem = read(key).map_err(|e| TlsError::Key {
            file: key.display().to_string(),
            why: e.to_string(),
        })?;
        Self::from_pem_named(&cert_pem, &key_pem, cert, key)
    }

    fn from_pem_named(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert: &Path,
        key: &Path,
    ) -> Result<Tls, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Certificates {
                file: cert.display().to_string(),
                why: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::Certificates {
                file: cert.display().to_string(),
                why: "no -----BEGIN CERTIFICATE----- block".into(),
            });
        }
        let private = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key {
            file: key.display().to_string(),
            why: e.to_string(),
        })?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(chain, private)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate_pem: String::from_utf8_lossy(cert_pem).into_owned(),
        })
    }

    /// A certificate chain and key given as PEM text.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], label: &str) -> Result<Tls, TlsError> {
        let name = Path::new(label);
        Self::from_pem_named(cert_pem, key_pem, name, name)
    }

    /// The certificate chain served, as PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }
}
