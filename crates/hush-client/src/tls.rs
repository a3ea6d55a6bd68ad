//! TLS for `wss://` servers and `https://` authorization endpoints (the
//! `tls` cargo feature, on by default): rustls with the ring provider, and
//! either the system's root certificates or a `ClientConfig` the application
//! supplies (a private CA, pinning).

use std::sync::{Arc, OnceLock};

pub use rustls::{self, ClientConfig};

/// The default client configuration: ring, safe protocol versions, the
/// system's root certificates (loaded once per process).
pub(crate) fn default_config() -> Result<Arc<ClientConfig>, String> {
    static DEFAULT: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("no usable root certificates found on this system".into());
            }
            config_with_roots(roots)
        })
        .clone()
}

/// A client configuration trusting exactly `roots` (ring provider).
pub fn config_with_roots(roots: rustls::RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|e| e.to_string())
}
