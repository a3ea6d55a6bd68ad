//! Client configuration.

use std::fmt;
use std::time::Duration;

use hush_crypto::MasterKey;
use zeroize::Zeroizing;

/// Port of a hush server with the default configuration.
pub const DEFAULT_PORT: u16 = 6001;
/// Time allowed for one HTTP API request, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// Plain HTTP (a local hush, or one behind a TLS terminator on the same host).
    #[default]
    Http,
    /// HTTPS; needs the `tls` cargo feature.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// Where the HTTP API is and which app to act as.
///
/// `Debug` masks the secret and the master key; the secret is wiped from
/// memory when the config is dropped.
#[derive(Clone)]
pub struct Config {
    /// App id, as in `/apps/{app_id}/…`.
    pub app_id: String,
    /// App key (public).
    pub key: String,
    /// App secret: signs API requests, channel and user authorizations.
    pub secret: Zeroizing<String>,
    /// Server host name or IP address (IPv6 in brackets).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Time allowed for one request, connection included.
    pub timeout: Duration,
    /// The 32-byte key for `private-encrypted-` channels (`None`: such
    /// triggers and authorizations are refused).
    pub encryption_master_key: Option<MasterKey>,
    /// Which key epoch encrypted triggers and authorizations use
    /// (docs/E2EE-CHANNELS.md §1). The default, epoch 0, is Pusher's key.
    pub key_epochs: EpochPolicy,
}

/// How the backend picks the key epoch of encrypted channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochPolicy {
    /// Always this epoch. `Fixed(0)` (the default) is plain Pusher suite 0;
    /// apps with their own rotation counter set its current value here.
    Fixed(u64),
    /// `1 + ⌊(now − origin) / period⌋`: every backend instance with the same
    /// settings agrees on the epoch without shared state. Before `origin`,
    /// epoch 1.
    Periodic {
        /// Unix seconds at which epoch 1 starts.
        origin_unix_secs: u64,
        /// Length of one epoch (at least one second).
        period: Duration,
    },
}

impl Default for EpochPolicy {
    fn default() -> Self {
        Self::Fixed(0)
    }
}

impl EpochPolicy {
    /// The epoch at `unix_secs`.
    pub fn epoch_at(self, unix_secs: u64) -> u64 {
        match self {
            Self::Fixed(epoch) => epoch,
            Self::Periodic {
                origin_unix_secs,
                period,
            } => {
                let period = period.as_secs().max(1);
                1 + unix_secs.saturating_sub(origin_unix_secs) / period
            }
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The app id is empty or holds characters that do not belong in a URL path.
    #[error("invalid app id {0:?}: use letters, digits, '-', '_' or '.'")]
    AppId(String),
    /// Key or secret is empty.
    #[error("the app {0} must not be empty")]
    Empty(&'static str),
    /// The host does not form a valid URL.
    #[error("invalid host {0:?}")]
    Host(String),
    /// The URL given to [`Config::from_url`] is not `http(s)://key:secret@host[:port]/apps/{id}`.
    #[error("invalid URL: {0}")]
    Url(String),
    /// HTTPS was asked for but the `tls` feature is off.
    #[error("https needs hush-sdk's `tls` cargo feature")]
    TlsNotEnabled,
    /// The TLS configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

impl Config {
    /// A config for `http://127.0.0.1:6001` (a local hush), 30 s timeout, no
    /// encryption master key. Change the public fields for anything else.
    pub fn new(
        app_id: impl Into<String>,
        key: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        Self {
            app_id: app_id.into(),
            key: key.into(),
            secret: Zeroizing::new(secret.into()),
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            scheme: Scheme::Http,
            timeout: DEFAULT_TIMEOUT,
            encryption_master_key: None,
            key_epochs: EpochPolicy::default(),
        }
    }

    /// Parses `http://KEY:SECRET@HOST[:PORT]/apps/APP_ID` (Pusher's
    /// `Pusher.forURL` form). The port defaults to 80 or 443.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let bad = |m: &str| ConfigError::Url(m.to_owned());
        let (scheme, rest) = split_scheme(url)?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("missing /apps/APP_ID"))?;
        let app_id = path
            .trim_end_matches('/')
            .strip_prefix("apps/")
            .filter(|id| !id.contains('/'))
            .ok_or_else(|| bad("the path must be /apps/APP_ID"))?;
        let (userinfo, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| bad("missing KEY:SECRET@"))?;
        let (key, secret) = userinfo
            .split_once(':')
            .ok_or_else(|| bad("missing KEY:SECRET@"))?;
        let mut config = Self::new(app_id, key, secret);
        config.set_server(scheme, hostport)?;
        config.check()?;
        Ok(config)
    }

    /// Points the config at `http(s)://HOST[:PORT]` (a trailing `/` is
    /// allowed; the port defaults to 80 or 443).
    pub fn set_base_url(&mut self, url: &str) -> Result<(), ConfigError> {
        let (scheme, rest) = split_scheme(url)?;
        self.set_server(scheme, rest.strip_suffix('/').unwrap_or(rest))
    }

    fn set_server(&mut self, scheme: Scheme, hostport: &str) -> Result<(), ConfigError> {
        let (host, port) = split_host_port(hostport)
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| ConfigError::Url("invalid host or port".into()))?;
        self.scheme = scheme;
        self.host = host.to_owned();
        self.port = port.unwrap_or(match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        });
        Ok(())
    }

    /// Sets the encryption master key (builder style).
    pub fn with_master_key(mut self, key: MasterKey) -> Self {
        self.encryption_master_key = Some(key);
        self
    }

    /// Sets the key epoch policy (builder style).
    pub fn with_key_epochs(mut self, policy: EpochPolicy) -> Self {
        self.key_epochs = policy;
        self
    }

    /// The key epoch in force now.
    pub fn current_epoch(&self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.key_epochs.epoch_at(now)
    }

    /// `scheme://host:port`.
    pub fn base_url(&self) -> String {
        format!("{}://{}:{}", self.scheme.as_str(), self.host, self.port)
    }

    /// Checks the fields that end up in URLs.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let id_ok = !self.app_id.is_empty()
            && self
                .app_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !id_ok {
            return Err(ConfigError::AppId(self.app_id.chars().take(64).collect()));
        }
        if self.key.is_empty() {
            return Err(ConfigError::Empty("key"));
        }
        if self.secret.is_empty() {
            return Err(ConfigError::Empty("secret"));
        }
        let host_ok = !self.host.is_empty()
            && self.host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
            })
            && format!("{}/", self.base_url())
                .parse::<hyper::Uri>()
                .is_ok();
        if !host_ok {
            return Err(ConfigError::Host(self.host.chars().take(64).collect()));
        }
        Ok(())
    }
}

fn split_scheme(url: &str) -> Result<(Scheme, &str), ConfigError> {
    if let Some(r) = url.strip_prefix("http://") {
        Ok((Scheme::Http, r))
    } else if let Some(r) = url.strip_prefix("https://") {
        Ok((Scheme::Https, r))
    } else {
        Err(ConfigError::Url("expected http:// or https://".into()))
    }
}

fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            r => Some((host, Some(r.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("app_id", &self.app_id)
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("scheme", &self.scheme)
            .field("timeout", &self.timeout)
            .field(
                "encryption_master_key",
                &self.encryption_master_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_url() {
        let c = Config::from_url(
            "http://278d425bdf160c739803:7ad3773142a6692b25b8@127.0.0.1:6001/apps/3",
        )
        .unwrap();
        assert_eq!(c.app_id, "3");
        assert_eq!(c.key, "278d425bdf160c739803");
        assert_eq!(c.secret.as_str(), "7ad3773142a6692b25b8");
        assert_eq!(c.base_url(), "http://127.0.0.1:6001");
        let c = Config::from_url("https://k:s@api.example.com/apps/app-1/").unwrap();
        assert_eq!(
            (c.scheme, c.port, c.app_id.as_str()),
            (Scheme::Https, 443, "app-1")
        );
        let c = Config::from_url("http://k:s@[::1]:7000/apps/1").unwrap();
        assert_eq!(c.base_url(), "http://[::1]:7000");
        for bad in [
            "ftp://k:s@h/apps/1",
            "http://h/apps/1",
            "http://k@h/apps/1",
            "http://k:s@h/apps/1/x",
            "http://k:s@h/1",
            "http://k:s@h:99999/apps/1",
            "http://k:s@h/apps/a%2Fb",
            "http://k:s@h h/apps/1",
            "http://:s@h/apps/1",
        ] {
            assert!(Config::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_base_url() {
        let mut c = Config::new("1", "k", "s");
        c.set_base_url("https://example.com/").unwrap();
        assert_eq!(c.base_url(), "https://example.com:443");
        c.set_base_url("http://[::1]:6001").unwrap();
        assert_eq!(c.base_url(), "http://[::1]:6001");
        c.set_base_url("http://127.0.0.1:7000").unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:7000");
        for bad in [
            "127.0.0.1:6001",
            "http://",
            "http://h:x",
            "http://[::1",
            "http://h:70000",
        ] {
            assert!(c.set_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_masks_secrets() {
        let c =
            Config::new("1", "key", "very-secret").with_master_key(MasterKey::from_bytes([7; 32]));
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains(&MasterKey::from_bytes([7; 32]).to_base64()));
    }

    #[test]
    fn check() {
        assert!(Config::new("1", "k", "s").check().is_ok());
        assert_eq!(
            Config::new("", "k", "s").check(),
            Err(ConfigError::AppId(String::new()))
        );
        assert!(matches!(
            Config::new("a/b", "k", "s").check(),
            Err(ConfigError::AppId(_))
        ));
        assert_eq!(
            Config::new("1", "", "s").check(),
            Err(ConfigError::Empty("key"))
        );
        assert_eq!(
            Config::new("1", "k", "").check(),
            Err(ConfigError::Empty("secret"))
        );
        let mut c = Config::new("1", "k", "s");
        c.host = "a b".into();
        assert!(matches!(c.check(), Err(ConfigError::Host(_))));
        c.host = "evil.com/x?".into();
        assert!(matches!(c.check(), Err(ConfigError::Host(_))));
    }
}
