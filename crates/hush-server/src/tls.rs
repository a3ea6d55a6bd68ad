//! TLS for the WebSocket gateway and the HTTP API (rustls with the `ring`
//! provider). The certificate is held by a resolver that [`Tls::reload`]
//! swaps atomically: new handshakes use the new certificate, established
//! connections are untouched (`hush serve` calls it on SIGHUP).
//!
//! Handshakes run on their own tasks (bounded in number and time), so a slow
//! or silent client never holds up accepting others.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::lock::{read, write};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds no certificate.
    #[error("TLS certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The key file could not be read or holds no usable key.
    #[error("TLS key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the configuration (e.g. key and certificate do not match).
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain and its private key (PEM) into a checked pair.
pub fn load_certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_err = |reason: String| TlsError::Certificate {
        path: cert_file.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_err("no CERTIFICATE block found".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key {
        path: key_file.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(CertifiedKey::from_der(certs, key, &provider())?)
}

/// The current certificate, swappable at run time.
#[derive(Debug)]
struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(read(&self.current).clone())
    }
}

/// The TLS setup of a server: its acceptor and the files it reloads from.
#[derive(Clone)]
pub struct Tls {
    files: TlsConfig,
    resolver: Arc<Resolver>,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Loads the certificate and key named in `files`.
    pub fn new(files: &TlsConfig) -> Result<Self, TlsError> {
        let key = load_certified_key(&files.cert_file, &files.key_file)?;
        let resolver = Arc::new(Resolver {
            current: RwLock::new(Arc::new(key)),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        // HTTP/2 for API clients that offer it; HTTP/1.1 for the others and
        // for WebSocket upgrades (browsers and pusher-js offer only
        // http/1.1, or no ALPN at all, for a WebSocket connection).
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            files: files.clone(),
            resolver,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Re-reads the certificate and key files. On success new handshakes use
    /// them; on error the old pair stays in force. Open connections are never
    /// affected.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.files.cert_file, &self.files.key_file)?;
        *write(&self.resolver.current) = Arc::new(key);
        Ok(())
    }

    /// The acceptor (for custom listeners).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }
}
