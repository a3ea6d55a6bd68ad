//! [`ClientBuilder`]: where to connect and how to behave.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Authorizer;
use crate::backoff::Backoff;
use crate::client::Client;
use crate::error::ConfigError;

/// Settings of a client (built by [`ClientBuilder`]).
#[derive(Clone)]
pub(crate) struct Config {
    /// `ws://host:port[/prefix]`, without a trailing `/`.
    pub base_url: String,
    pub app_key: String,
    pub activity_timeout: Duration,
    pub pong_timeout: Duration,
    pub connect_timeout: Duration,
    pub backoff: Backoff,
    pub event_buffer: usize,
    pub authorizer: Option<Arc<dyn Authorizer>>,
    pub refetch_interval: Duration,
    pub epoch_grace: Duration,
    pub sealed_max_age: Duration,
    pub request_timeout: Duration,
    /// TLS settings for `wss://` and `https://` (`None`: the system's roots).
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<crate::tls::ClientConfig>>,
}

/// Builds a [`Client`]. Defaults: `ws://127.0.0.1:6001`, activity timeout
/// 120 s (the smaller of this and the server's is used), pong timeout 30 s,
/// connect timeout 10 s, backoff 1 s doubling to 30 s with full jitter, 1024
/// events of buffer per stream.
#[must_use]
pub struct ClientBuilder {
    url: String,
    config: Config,
}

fn parse_url(url: &str) -> Result<String, ConfigError> {
    let bad = |reason| ConfigError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let (scheme, rest) = if let Some(r) = url.strip_prefix("ws://") {
        ("ws", r)
    } else if let Some(r) = url.strip_prefix("http://") {
        ("ws", r)
    } else if let Some(r) = url
        .strip_prefix("wss://")
        .or_else(|| url.strip_prefix("https://"))
    {
        if !cfg!(feature = "tls") {
            return Err(ConfigError::TlsNotSupported);
        }
        ("wss", r)
    } else {
        return Err(bad("expected ws://host[:port][/prefix] or wss://…"));
    };
    if rest.contains(['?', '#', ' ', '@']) {
        return Err(bad("no query, fragment, spaces or credentials allowed"));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() || authority.starts_with(':') {
        return Err(bad("missing host"));
    }
    if let Some((_, port)) = authority.rsplit_once(':')
        && !authority.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(bad("invalid port"));
    }
    let path = path.trim_end_matches('/');
    let path = path
        .strip_suffix("app")
        .unwrap_or(path)
        .trim_end_matches('/');
    Ok(if path.is_empty() {
        format!("{scheme}://{authority}")
    } else {
        format!("{scheme}://{authority}/{path}")
    })
}

impl ClientBuilder {
    pub(crate) fn new(app_key: &str) -> Self {
        Self {
            url: "ws://127.0.0.1:6001".into(),
            config: Config {
                base_url: String::new(),
                app_key: app_key.to_owned(),
                activity_timeout: Duration::from_secs(120),
                pong_timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(10),
                backoff: Backoff::default(),
                event_buffer: 1024,
                authorizer: None,
                refetch_interval: Duration::from_secs(5),
                epoch_grace: Duration::from_secs(60),
                sealed_max_age: Duration::from_secs(300),
                request_timeout: Duration::from_secs(30),
                #[cfg(feature = "tls")]
                tls: None,
            },
        }
    }

    /// The server: `ws://host[:port][/prefix]` (`http://` is accepted too;
    /// `/app/{key}` is appended).
    pub fn url(mut self, url: &str) -> Self {
        url.clone_into(&mut self.url);
        self
    }

    /// The server as host and port (plain `ws://`).
    pub fn host_port(mut self, host: &str, port: u16) -> Self {
        self.url = format!("ws://{host}:{port}");
        self
    }

    /// The authorizer for private, presence and encrypted channels and sign-in.
    pub fn authorizer(mut self, authorizer: impl Authorizer) -> Self {
        self.config.authorizer = Some(Arc::new(authorizer));
        self
    }

    /// The client's activity timeout: it pings after this much silence (the
    /// server's value is used when smaller).
    pub fn activity_timeout(mut self, d: Duration) -> Self {
        self.config.activity_timeout = d;
        self
    }

    /// How long to wait for a pong before reconnecting.
    pub fn pong_timeout(mut self, d: Duration) -> Self {
        self.config.pong_timeout = d;
        self
    }

    /// How long a connection attempt (TCP, WebSocket handshake and
    /// `pusher:connection_established`) may take.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.connect_timeout = d;
        self
    }

    /// Reconnection backoff: attempt n waits a random time in
    /// `[0, min(cap, base · 2ⁿ)]`.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.config.backoff = Backoff { base, cap };
        self
    }

    /// Capacity of each event stream (events beyond it are dropped for that
    /// stream and counted).
    pub fn event_buffer(mut self, n: usize) -> Self {
        self.config.event_buffer = n;
        self
    }

    /// Encrypted channels with key epochs: how long the previous epochs' keys
    /// are kept after a newer one arrives (default 60 s); after that they are
    /// erased and their events rejected as stale.
    pub fn epoch_grace(mut self, d: Duration) -> Self {
        self.config.epoch_grace = d;
        self
    }

    /// Sealed events: how far the sender's clock may be from this one's
    /// (default 300 s); older or newer events are rejected as expired.
    pub fn sealed_max_age(mut self, d: Duration) -> Self {
        self.config.sealed_max_age = d;
        self
    }

    /// `hush:request`s ([`Client::request`]): how long to wait for the
    /// matching `hush:response` (default 30 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.config.request_timeout = d;
        self
    }

    /// TLS settings for `wss://` servers (a private CA, pinning); by default
    /// the system's root certificates are trusted.
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: Arc<crate::tls::ClientConfig>) -> Self {
        self.config.tls = Some(config);
        self
    }

    /// Validates the settings and starts connecting (on the current tokio runtime).
    pub fn build(mut self) -> Result<Client, ConfigError> {
        let key = &self.config.app_key;
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::BadAppKey);
        }
        self.config.base_url = parse_url(&self.url)?;
        let c = &self.config;
        if c.activity_timeout.is_zero() {
            return Err(ConfigError::BadSetting("activity_timeout"));
        }
        if c.pong_timeout.is_zero() {
            return Err(ConfigError::BadSetting("pong_timeout"));
        }
        if c.connect_timeout.is_zero() {
            return Err(ConfigError::BadSetting("connect_timeout"));
        }
        if c.request_timeout.is_zero() {
            return Err(ConfigError::BadSetting("request_timeout"));
        }
        if c.event_buffer == 0 {
            return Err(ConfigError::BadSetting("event_buffer"));
        }
        if c.backoff.base.is_zero() || c.backoff.cap < c.backoff.base {
            return Err(ConfigError::BadSetting("backoff (base > 0, cap >= base)"));
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        Ok(Client::start(self.config, &handle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("ws://127.0.0.1:6001").unwrap(),
            "ws://127.0.0.1:6001"
        );
        assert_eq!(parse_url("http://h:1/").unwrap(), "ws://h:1");
        assert_eq!(parse_url("ws://h/pre/fix/").unwrap(), "ws://h/pre/fix");
        assert_eq!(parse_url("ws://h:1/app").unwrap(), "ws://h:1");
        if cfg!(feature = "tls") {
            assert_eq!(parse_url("wss://h:443/"), Ok("wss://h:443".into()));
            assert_eq!(parse_url("https://h/app"), Ok("wss://h".into()));
        } else {
            assert_eq!(parse_url("wss://h"), Err(ConfigError::TlsNotSupported));
        }
        assert!(parse_url("h:1").is_err());
        assert!(parse_url("ws://").is_err());
        assert!(parse_url("ws://h:x").is_err());
        assert!(parse_url("ws://h:1?x=1").is_err());
    }
}
