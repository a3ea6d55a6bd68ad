//! Authorization: the [`Authorizer`] trait, its two implementations
//! ([`HttpAuthorizer`], like pusher-js's default, and [`FnAuthorizer`]), and
//! strict validation of what they return (PROTOCOL.md §6.1).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hush_crypto::ChannelKey;
use hush_protocol::limits::MAX_PRESENCE_USER_INFO_BYTES;
use hush_protocol::presence::{parse_channel_data, parse_user_data};
use hush_protocol::{ChannelKind, ChannelName, SocketId, UserId};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::error::AuthError;

/// Largest authorization answer read (a real one is well under 16 KiB:
/// auth, channel or user data, shared secret).
const MAX_AUTH_RESPONSE_BYTES: usize = 64 * 1024;

/// The future an [`Authorizer`] returns.
pub type AuthFuture<T> = Pin<Box<dyn Future<Output = Result<T, AuthError>> + Send + 'static>>;

/// What the app's endpoints return, as raw JSON text; the client validates it.
///
/// Implementations answer with the **response body** the app's
/// `/pusher/auth` (channels) and `/pusher/user-auth` (users) endpoints would
/// return, e.g. `{"auth":"key:…","shared_secret":"…"}`. The client parses and
/// checks it (see [`ChannelAuthorization::parse`]).
pub trait Authorizer: Send + Sync + 'static {
    /// Authorizes `socket_id` for `channel` (private, presence, encrypted).
    fn authorize_channel(&self, socket_id: &SocketId, channel: &ChannelName) -> AuthFuture<String>;

    /// Authenticates the user of `socket_id` (for `pusher:signin`). The
    /// default refuses with [`AuthError::NoUserAuthentication`].
    fn authenticate_user(&self, socket_id: &SocketId) -> AuthFuture<String> {
        let _ = socket_id;
        Box::pin(async { Err(AuthError::NoUserAuthentication) })
    }
}

/// A validated channel authorization.
#[derive(Clone)]
pub struct ChannelAuthorization {
    /// `"{app_key}:{hex}"`.
    pub auth: String,
    /// Presence: the exact signed `channel_data`.
    pub channel_data: Option<String>,
    /// Presence: the user id from `channel_data`.
    pub user_id: Option<String>,
    /// Presence: the `user_info` from `channel_data` (`null` when absent).
    pub user_info: serde_json::Value,
    /// Encrypted channels: the channel key.
    pub shared_secret: Option<ChannelKey>,
    /// Encrypted channels: the key epoch (0 when absent).
    pub epoch: u64,
}

impl fmt::Debug for ChannelAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelAuthorization")
            .field("auth", &self.auth)
            .field("channel_data", &self.channel_data)
            .field(
                "shared_secret",
                &self.shared_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("epoch", &self.epoch)
            .finish()
    }
}

#[derive(Deserialize)]
struct RawChannelAuth {
    auth: String,
    #[serde(default)]
    channel_data: Option<String>,
    #[serde(default)]
    shared_secret: Option<String>,
    #[serde(default)]
    epoch: Option<u64>,
}

#[derive(Deserialize)]
struct RawUserAuth {
    auth: String,
    user_data: String,
}

/// `auth` must be `"{app_key}:{64 hex digits}"`.
fn check_auth_value(auth: &str, app_key: &str) -> Result<(), AuthError> {
    let (key, hex) = auth.split_once(':').ok_or(AuthError::BadAuthValue)?;
    if key != app_key || hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthError::BadAuthValue);
    }
    Ok(())
}

impl ChannelAuthorization {
    /// Parses and checks an auth response body for `channel`: `auth` for this
    /// app key; presence `channel_data` as the server would accept it;
    /// `shared_secret` (base64, 32 bytes) required on encrypted channels.
    pub fn parse(body: &str, app_key: &str, channel: &ChannelName) -> Result<Self, AuthError> {
        let raw: RawChannelAuth =
            serde_json::from_str(body).map_err(|e| AuthError::BadResponse(e.to_string()))?;
        check_auth_value(&raw.auth, app_key)?;
        let kind = channel.kind();
        let (channel_data, user_id, user_info) = match (kind, raw.channel_data) {
            (ChannelKind::Presence, Some(cd)) => {
                let m = parse_channel_data(&cd, MAX_PRESENCE_USER_INFO_BYTES)
                    .map_err(|e| AuthError::BadMemberData(e.to_string()))?;
                let info = match &m.user_info {
                    Some(raw) => serde_json::from_str(raw.get())
                        .map_err(|e| AuthError::BadMemberData(e.to_string()))?,
                    None => serde_json::Value::Null,
                };
                (Some(cd), Some(m.user_id), info)
            }
            _ => (None, None, serde_json::Value::Null),
        };
        let shared_secret = match (kind, raw.shared_secret) {
            (ChannelKind::Encrypted, Some(s)) => {
                Some(ChannelKey::from_base64(&s).map_err(|_| AuthError::BadSharedSecret)?)
            }
            (ChannelKind::Encrypted, None) => {
                return Err(AuthError::MissingSharedSecret(channel.to_string()));
            }
            _ => None,
        };
        Ok(Self {
            auth: raw.auth,
            channel_data,
            user_id,
            user_info,
            shared_secret,
            epoch: raw.epoch.unwrap_or(0),
        })
    }
}

/// A validated user authentication.
#[derive(Debug, Clone)]
pub struct UserAuthentication {
    /// `"{app_key}:{hex}"`.
    pub auth: String,
    /// The exact signed `user_data`.
    pub user_data: String,
    /// The user's id from `user_data`.
    pub user_id: UserId,
}

impl UserAuthentication {
    /// Parses and checks a user-auth response body.
    pub fn parse(body: &str, app_key: &str) -> Result<Self, AuthError> {
        let raw: RawUserAuth =
            serde_json::from_str(body).map_err(|e| AuthError::BadResponse(e.to_string()))?;
        check_auth_value(&raw.auth, app_key)?;
        let data = parse_user_data(&raw.user_data, MAX_PRESENCE_USER_INFO_BYTES)
            .map_err(|e| AuthError::BadMemberData(e.to_string()))?;
        Ok(Self {
            auth: raw.auth,
            user_data: raw.user_data,
            user_id: data.id,
        })
    }
}

/// Authorizes by POSTing a form to the app's endpoints, as pusher-js does:
/// `socket_id` and `channel_name` to the channel endpoint, `socket_id` to the
/// user endpoint (`application/x-www-form-urlencoded`), expecting HTTP 200
/// and a JSON body. `https://` endpoints need the `tls` feature (on by
/// default; the system's root certificates).
#[derive(Clone)]
pub struct HttpAuthorizer {
    client: HyperClient<Connector, Full<Bytes>>,
    channel_endpoint: Arc<str>,
    user_endpoint: Option<Arc<str>>,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
    params: Arc<Vec<(String, String)>>,
    timeout: Duration,
}

impl fmt::Debug for HttpAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpAuthorizer")
            .field("channel_endpoint", &self.channel_endpoint)
            .field("user_endpoint", &self.user_endpoint)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// The HTTP(S) connector: with the `tls` feature, `https://` through rustls
/// with the system's roots (plain `http://` still allowed). A host without
/// usable system roots can still use `http://` endpoints: only an endpoint
/// that is `https://` needs them (`needs_roots`), and without them
/// `https://` requests fail at the handshake.
fn connector(needs_roots: bool) -> Result<Connector, AuthError> {
    #[cfg(feature = "tls")]
    {
        let tls = match crate::tls::default_config() {
            Ok(tls) => tls,
            Err(e) if needs_roots => return Err(AuthError::Transport(e)),
            Err(_) => crate::tls::config_with_roots(rustls::RootCertStore::empty())
                .map_err(AuthError::Transport)?,
        };
        Ok(https_connector(&tls))
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = needs_roots;
        Ok(HttpConnector::new())
    }
}

#[cfg(feature = "tls")]
fn https_connector(tls: &crate::tls::ClientConfig) -> Connector {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .build()
}

fn check_endpoint(url: &str) -> Result<(), AuthError> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|_| AuthError::Transport(format!("invalid endpoint URL {url:?}")))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(()),
        Some("https") if cfg!(feature = "tls") && uri.host().is_some() => Ok(()),
        Some("https") => Err(AuthError::Transport(
            "https endpoints need hush-client's `tls` feature".into(),
        )),
        _ => Err(AuthError::Transport(format!(
            "invalid endpoint URL {url:?}: expected http(s)://host[:port]/path"
        ))),
    }
}

impl HttpAuthorizer {
    /// An authorizer for the channel endpoint, e.g. `http://127.0.0.1:3000/pusher/auth`.
    pub fn new(channel_endpoint: &str) -> Result<Self, AuthError> {
        check_endpoint(channel_endpoint)?;
        Ok(Self {
            client: HyperClient::builder(TokioExecutor::new())
                .build(connector(channel_endpoint.starts_with("https://"))?),
            channel_endpoint: channel_endpoint.into(),
            user_endpoint: None,
            headers: Arc::new(Vec::new()),
            params: Arc::new(Vec::new()),
            timeout: Duration::from_secs(10),
        })
    }

    /// Uses `config` for `https://` endpoints (a private CA) instead of the
    /// system's root certificates.
    #[cfg(feature = "tls")]
    pub fn with_tls_config(mut self, config: Arc<crate::tls::ClientConfig>) -> Self {
        self.client = HyperClient::builder(TokioExecutor::new()).build(https_connector(&config));
        self
    }

    /// Adds the user authentication endpoint, e.g. `…/pusher/user-auth`.
    pub fn with_user_endpoint(mut self, url: &str) -> Result<Self, AuthError> {
        check_endpoint(url)?;
        self.user_endpoint = Some(url.into());
        Ok(self)
    }

    /// Adds a header to every request (e.g. a session cookie or bearer token).
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, AuthError> {
        let n = HeaderName::try_from(name)
            .map_err(|_| AuthError::Transport(format!("invalid header name {name:?}")))?;
        let v = HeaderValue::try_from(value)
            .map_err(|_| AuthError::Transport(format!("invalid value for header {name}")))?;
        Arc::make_mut(&mut self.headers).push((n, v));
        Ok(self)
    }

    /// Adds a form parameter to every request (pusher-js `params`).
    pub fn with_param(mut self, name: &str, value: &str) -> Self {
        Arc::make_mut(&mut self.params).push((name.to_owned(), value.to_owned()));
        self
    }

    /// Request timeout (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn post(&self, url: Arc<str>, fields: Vec<(&'static str, String)>) -> AuthFuture<String> {
        let this = self.clone();
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &fields {
                form.append_pair(k, v);
            }
            for (k, v) in this.params.iter() {
                form.append_pair(k, v);
            }
            form.finish()
        };
        Box::pin(async move {
            let mut req = Request::post(&*url).header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            for (n, v) in this.headers.iter() {
                req = req.header(n, v);
            }
            let req = req
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| AuthError::Transport(e.to_string()))?;
            let exchange = async {
                let res = this
                    .client
                    .request(req)
                    .await
                    .map_err(|e| AuthError::Transport(e.to_string()))?;
                let status = res.status().as_u16();
                if status != 200 {
                    return Err(AuthError::Status { status });
                }
                // An auth answer is a few hundred bytes; whatever a proxy or
                // portal sends instead is not buffered without bound.
                let body = Limited::new(res.into_body(), MAX_AUTH_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map_err(|e| AuthError::BadResponse(format!("reading the body: {e}")))?
                    .to_bytes();
                String::from_utf8(body.to_vec())
                    .map_err(|_| AuthError::BadResponse("body is not UTF-8".into()))
            };
            tokio::time::timeout(this.timeout, exchange)
                .await
                .map_err(|_| AuthError::Timeout)?
        })
    }
}

impl Authorizer for HttpAuthorizer {
    fn authorize_channel(&self, socket_id: &SocketId, channel: &ChannelName) -> AuthFuture<String> {
        self.post(
            self.channel_endpoint.clone(),
            vec![
                ("socket_id", socket_id.to_string()),
                ("channel_name", channel.to_string()),
            ],
        )
    }

    fn authenticate_user(&self, socket_id: &SocketId) -> AuthFuture<String> {
        match &self.user_endpoint {
            Some(u) => self.post(u.clone(), vec![("socket_id", socket_id.to_string())]),
            None => Box::pin(async { Err(AuthError::NoUserAuthentication) }),
        }
    }
}

type ChannelFn = dyn Fn(SocketId, ChannelName) -> AuthFuture<String> + Send + Sync;
type UserFn = dyn Fn(SocketId) -> AuthFuture<String> + Send + Sync;

/// An authorizer made of closures that return the endpoint's response body —
/// for a backend in the same process (e.g. with `hush_sdk::Client::authorize_channel`)
/// or for tests.
///
/// ```
/// use hush_client::FnAuthorizer;
/// let authorizer = FnAuthorizer::new(|socket_id, channel| async move {
///     // Ask your backend; return its JSON body or an error message.
///     Err::<String, String>(format!("{socket_id} may not join {channel}"))
/// });
/// ```
#[derive(Clone)]
pub struct FnAuthorizer {
    channel: Arc<ChannelFn>,
    user: Option<Arc<UserFn>>,
}

impl fmt::Debug for FnAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnAuthorizer")
            .field("user", &self.user.is_some())
            .finish_non_exhaustive()
    }
}

impl FnAuthorizer {
    /// Channel authorization by `f(socket_id, channel)`; an `Err(message)`
    /// becomes [`AuthError::Refused`].
    pub fn new<F, Fut, E>(f: F) -> Self
    where
        F: Fn(SocketId, ChannelName) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: fmt::Display,
    {
        Self {
            channel: Arc::new(move |s, c| {
                let fut = f(s, c);
                Box::pin(async move { fut.await.map_err(|e| AuthError::Refused(e.to_string())) })
            }),
            user: None,
        }
    }

    /// Adds user authentication by `f(socket_id)`.
    pub fn with_user<F, Fut, E>(mut self, f: F) -> Self
    where
        F: Fn(SocketId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: fmt::Display,
    {
        self.user = Some(Arc::new(move |s| {
            let fut = f(s);
            Box::pin(async move { fut.await.map_err(|e| AuthError::Refused(e.to_string())) })
        }));
        self
    }
}

impl Authorizer for FnAuthorizer {
    fn authorize_channel(&self, socket_id: &SocketId, channel: &ChannelName) -> AuthFuture<String> {
        (self.channel)(socket_id.clone(), channel.clone())
    }

    fn authenticate_user(&self, socket_id: &SocketId) -> AuthFuture<String> {
        match &self.user {
            Some(f) => f(socket_id.clone()),
            None => Box::pin(async { Err(AuthError::NoUserAuthentication) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SIG: &str = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";

    fn ch(s: &str) -> ChannelName {
        ChannelName::parse(s).unwrap()
    }

    #[test]
    fn validates_channel_auth() {
        let ok = format!(r#"{{"auth":"{KEY}:{SIG}"}}"#);
        assert!(ChannelAuthorization::parse(&ok, KEY, &ch("private-a")).is_ok());
        for bad in [
            format!(r#"{{"auth":"other:{SIG}"}}"#),
            format!(r#"{{"auth":"{KEY}:abc"}}"#),
            format!(r#"{{"auth":"{KEY}{SIG}"}}"#),
        ] {
            assert_eq!(
                ChannelAuthorization::parse(&bad, KEY, &ch("private-a")).unwrap_err(),
                AuthError::BadAuthValue
            );
        }
        assert!(matches!(
            ChannelAuthorization::parse("nope", KEY, &ch("private-a")),
            Err(AuthError::BadResponse(_))
        ));
        assert!(matches!(
            ChannelAuthorization::parse(&ok, KEY, &ch("private-encrypted-a")),
            Err(AuthError::MissingSharedSecret(_))
        ));
        let short = format!(r#"{{"auth":"{KEY}:{SIG}","shared_secret":"AAAA"}}"#);
        assert_eq!(
            ChannelAuthorization::parse(&short, KEY, &ch("private-encrypted-a")).unwrap_err(),
            AuthError::BadSharedSecret
        );
        let good = format!(
            r#"{{"auth":"{KEY}:{SIG}","shared_secret":"3x0KbqI7rIgm1LH1vj0MbmQu3a1H1t0DYjzwM8+rKlc=","epoch":3}}"#
        );
        let a = ChannelAuthorization::parse(&good, KEY, &ch("private-encrypted-a")).unwrap();
        assert_eq!(a.epoch, 3);
        assert!(!format!("{a:?}").contains("3x0K"));
        let presence = format!(
            r#"{{"auth":"{KEY}:{SIG}","channel_data":"{{\"user_id\":10,\"user_info\":{{\"n\":1}}}}"}}"#
        );
        let a = ChannelAuthorization::parse(&presence, KEY, &ch("presence-a")).unwrap();
        assert_eq!(a.user_id.as_deref(), Some("10"));
        assert_eq!(a.user_info, serde_json::json!({"n":1}));
        let bad_presence = format!(r#"{{"auth":"{KEY}:{SIG}","channel_data":"{{}}"}}"#);
        assert!(matches!(
            ChannelAuthorization::parse(&bad_presence, KEY, &ch("presence-a")),
            Err(AuthError::BadMemberData(_))
        ));
    }

    #[test]
    fn validates_user_auth() {
        let ok = format!(r#"{{"auth":"{KEY}:{SIG}","user_data":"{{\"id\":\"7\"}}"}}"#);
        assert_eq!(
            UserAuthentication::parse(&ok, KEY)
                .unwrap()
                .user_id
                .as_str(),
            "7"
        );
        let bad = format!(r#"{{"auth":"{KEY}:{SIG}","user_data":"{{\"id\":\"a:b\"}}"}}"#);
        assert!(matches!(
            UserAuthentication::parse(&bad, KEY),
            Err(AuthError::BadMemberData(_))
        ));
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(HttpAuthorizer::new("http://127.0.0.1:3000/pusher/auth").is_ok());
        assert_eq!(
            HttpAuthorizer::new("https://example.com/auth").is_ok(),
            cfg!(feature = "tls")
        );
        assert!(HttpAuthorizer::new("/pusher/auth").is_err());
    }
}
