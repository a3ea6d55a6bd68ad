//! The HTTP client of the webhook senders: `http://` and `https://` (rustls
//! with the ring provider, the system's root certificates plus
//! `webhooks.ca_file`), through the proxies named by `HTTP_PROXY`,
//! `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (curl's rules, hyper-util's
//! matcher).
//!
//! An `https://` endpoint behind a proxy is reached through an HTTP `CONNECT`
//! tunnel (TLS end to end, the proxy sees only the host name); an `http://`
//! endpoint behind a proxy is sent to the proxy in absolute form, as curl does.

use std::error::Error as StdError;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::PROXY_AUTHORIZATION;
use hyper::{Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;

/// Why the webhook client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `webhooks.ca_file` could not be read or holds no usable certificate.
    #[error("webhooks.ca_file {path}: {why}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// The TLS configuration was refused by rustls.
    #[error("webhook TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A proxy variable names a proxy this client cannot speak to.
    #[error("{0}")]
    Proxy(String),
}

/// The pooled client every delivery loop shares.
#[derive(Clone)]
pub(crate) struct HttpClient {
    inner: Client<HttpsConnector<ProxyConnector>, Full<Bytes>>,
    proxy: Arc<Matcher>,
    roots: usize,
}

impl HttpClient {
    /// Builds the client with the proxies of `proxy` and the system's roots
    /// plus those in `ca_file`.
    pub(crate) fn new(ca_file: Option<&Path>, proxy: Matcher) -> Result<Self, ClientError> {
        for probe in [
            "http://proxy.check.invalid/",
            "https://proxy.check.invalid/",
        ] {
            if let Some(p) = proxy.intercept(&Uri::from_static(probe)) {
                if p.uri().scheme_str() != Some("http") {
                    return Err(ClientError::Proxy(format!(
                        "webhook proxy {}://{}: only http:// proxies are supported (an https:// endpoint still gets TLS end to end through CONNECT)",
                        p.uri().scheme_str().unwrap_or(""),
                        p.uri().authority().map_or("", |a| a.host())
                    )));
                }
            }
        }
        let (roots, count) = root_store(ca_file)?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let proxy = Arc::new(proxy);
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(ProxyConnector {
                http,
                proxy: proxy.clone(),
            });
        Ok(Self {
            inner: Client::builder(TokioExecutor::new()).build(connector),
            proxy,
            roots: count,
        })
    }

    /// Root certificates trusted for `https://` endpoints.
    pub(crate) fn root_count(&self) -> usize {
        self.roots
    }

    /// Sends `req`, adding `Proxy-Authorization` when an `http://` request
    /// goes to a proxy with credentials (a CONNECT tunnel carries its own).
    pub(crate) async fn request(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        if req.uri().scheme_str() == Some("http") {
            if let Some(auth) = self
                .proxy
                .intercept(req.uri())
                .and_then(|p| p.basic_auth().cloned())
            {
                req.headers_mut().insert(PROXY_AUTHORIZATION, auth);
            }
        }
        self.inner.request(req).await
    }
}

/// The system's root certificates (an absent or unreadable system store is
/// not an error: `http://` endpoints need none) and those of `ca_file`.
pub(crate) fn root_store(ca_file: Option<&Path>) -> Result<(RootCertStore, usize), ClientError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::debug!("no system root certificates found for https:// webhooks");
    }
    if let Some(path) = ca_file {
        let bad = |why: String| ClientError::CaFile {
            path: path.display().to_string(),
            why,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| bad(e.to_string()))?;
        }
    }
    let n = roots.len();
    Ok((roots, n))
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// Connects straight to the endpoint, or to the proxy the matcher names:
/// a CONNECT tunnel for `https://`, a plain connection marked as proxied
/// (absolute-form requests) for `http://`.
#[derive(Clone)]
struct ProxyConnector {
    http: HttpConnector,
    proxy: Arc<Matcher>,
}

impl tower_service::Service<Uri> for ProxyConnector {
    type Response = ProxyIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ProxyIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let intercept = self.proxy.intercept(&dst);
        let mut http = self.http.clone();
        Box::pin(async move {
            let Some(p) = intercept else {
                let io = http.call(dst).await?;
                return Ok(ProxyIo { io, proxied: false });
            };
            if dst.scheme_str() == Some("https") {
                let mut tunnel = Tunnel::new(p.uri().clone(), http);
                if let Some(auth) = p.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let io = tunnel.call(dst).await?;
                Ok(ProxyIo { io, proxied: false })
            } else {
                let io = http.call(p.uri().clone()).await?;
                Ok(ProxyIo { io, proxied: true })
            }
        })
    }
}

/// A TCP connection that knows whether it leads to a forward proxy.
struct ProxyIo {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for ProxyIo {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl hyper::rt::Read for ProxyIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for ProxyIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_proxies_are_refused_with_a_clear_error() {
        let m = Matcher::builder()
            .https("https://proxy.example:3128")
            .build();
        let e = HttpClient::new(None, m).err().unwrap().to_string();
        assert!(e.contains("only http:// proxies"), "{e}");
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = HttpClient::new(Some(&missing), Matcher::builder().build())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = HttpClient::new(Some(&empty), Matcher::builder().build())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn ca_file_certificates_are_trusted_roots() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, cert.cert.pem()).unwrap();
        let without = HttpClient::new(None, Matcher::builder().build()).unwrap();
        let with = HttpClient::new(Some(&path), Matcher::builder().build()).unwrap();
        assert_eq!(with.root_count(), without.root_count() + 1);
    }
}
