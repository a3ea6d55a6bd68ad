//! The HTTP transport: hyper's client (HTTP/1.1, keep-alive pool), with
//! rustls when the `tls` feature is on.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::{ConfigError, Scheme};
use crate::error::Error;

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

const LIBRARY: &str = concat!("hush-sdk-rust ", env!("CARGO_PKG_VERSION"));

/// One pooled HTTP client.
#[derive(Clone)]
pub(crate) struct Transport {
    client: HyperClient<Connector, Full<Bytes>>,
    timeout: Duration,
}

/// A complete response.
pub(crate) struct Response {
    pub status: u16,
    pub body: Bytes,
}

#[cfg(feature = "tls")]
fn connector(_scheme: Scheme) -> Result<Connector, ConfigError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| ConfigError::Tls(e.to_string()))?;
    Ok(builder.https_or_http().enable_http1().wrap_connector(http))
}

#[cfg(not(feature = "tls"))]
fn connector(scheme: Scheme) -> Result<Connector, ConfigError> {
    match scheme {
        Scheme::Http => Ok(HttpConnector::new()),
        Scheme::Https => Err(ConfigError::TlsNotEnabled),
    }
}

impl Transport {
    pub(crate) fn new(scheme: Scheme, timeout: Duration) -> Result<Self, ConfigError> {
        let client = HyperClient::builder(TokioExecutor::new()).build(connector(scheme)?);
        Ok(Self { client, timeout })
    }

    /// Sends one request and reads the whole response, within the timeout.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, Error> {
        let mut req = Request::builder()
            .method(method)
            .uri(url)
            .header(USER_AGENT, HeaderValue::from_static(LIBRARY))
            .header("x-pusher-library", HeaderValue::from_static(LIBRARY));
        if body.is_some() {
            req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::transport(&e))?;
        let exchange = async {
            let res = self
                .client
                .request(req)
                .await
                .map_err(|e| Error::transport(&e))?;
            let status = res.status().as_u16();
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| Error::transport(&e))?
                .to_bytes();
            Ok(Response { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout(self.timeout))?
    }
}
