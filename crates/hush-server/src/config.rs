//! Configuration: one definition read from the built-in defaults, `hush.toml`
//! and `HUSH_*` environment variables, in that order of precedence (lowest
//! first).

mod env;

use std::collections::BTreeMap;
use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Toml};
use hush_protocol::limits;
use hush_store::redact_url;
use serde::{Deserialize, Serialize};

/// The built-in defaults (`config/defaults.toml`), compiled in.
pub const DEFAULTS_TOML: &str = include_str!("../../../config/defaults.toml");

/// Everything hush reads at start-up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener and connection settings.
    pub server: ServerConfig,
    /// Applications, by label (`[apps.main]`).
    #[serde(default)]
    pub apps: BTreeMap<String, AppConfig>,
    /// The app used when `apps` is empty (local development only).
    pub development_app: AppConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// The durable store.
    pub store: StoreConfig,
    /// Webhook delivery (the endpoints themselves are per app).
    pub webhooks: WebhooksConfig,
    /// Key directory limits (every app's directory on this node).
    pub directory: DirectoryConfig,
    /// The encrypted mailbox (every app's, on this node).
    pub mailbox: MailboxConfig,
    /// Several nodes as one, over Redis.
    pub cluster: ClusterConfig,
}

/// Several hush nodes as one Pusher app, over Redis (docs/CONFIGURATION.md
/// `[cluster]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The Redis URL (`redis://`, `rediss://`, `redis-cluster://`,
    /// `redis-sentinel://`); absent: this node is alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel.
    pub prefix: String,
    /// This node's id (> 0); absent: random at each start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
    /// Seconds a node's lease lasts (heartbeat every third of it).
    pub lease: u64,
    /// How long the bus may be down before `/ready` answers 503.
    pub ready_grace: ReadyGrace,
    /// PEM file of CA certificates trusted for a TLS Redis (`rediss://`)
    /// besides the system's: a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<std::path::PathBuf>,
}

/// `cluster.ready_grace`: seconds, or `false` (never 503 for Redis). Read
/// from a number, a boolean, or their text (an environment variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ReadyGrace {
    /// Seconds the bus may be unreachable before `/ready` answers 503.
    Seconds(u64),
    /// `false`: `/ready` does not depend on the bus.
    Off(bool),
}

impl<'de> Deserialize<'de> for ReadyGrace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ReadyGrace;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of seconds, or false")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ReadyGrace, E> {
                Ok(ReadyGrace::Seconds(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ReadyGrace, E> {
                u64::try_from(v)
                    .map(ReadyGrace::Seconds)
                    .map_err(|_| E::custom("ready_grace must not be negative"))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ReadyGrace, E> {
                Ok(ReadyGrace::Off(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ReadyGrace, E> {
                match v.trim() {
                    "false" => Ok(ReadyGrace::Off(false)),
                    "true" => Ok(ReadyGrace::Off(true)),
                    n => n
                        .parse()
                        .map(ReadyGrace::Seconds)
                        .map_err(|_| E::custom("a number of seconds, or false")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl ReadyGrace {
    /// The grace period (`None`: `/ready` ignores the bus).
    pub fn grace(self) -> Option<std::time::Duration> {
        match self {
            Self::Seconds(s) => Some(std::time::Duration::from_secs(s)),
            Self::Off(_) => None,
        }
    }
}

impl ClusterConfig {
    /// The Redis URL in force (`None`: alone).
    pub fn url(&self) -> Option<&str> {
        self.redis_url.as_deref().filter(|u| !u.is_empty())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.lease == 0 {
            return Err(ConfigError::Invalid(
                "cluster.lease must be at least 1 (second)".into(),
            ));
        }
        if self.prefix.len() > 64
            || !self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'-'))
        {
            return Err(ConfigError::Invalid(
                "cluster.prefix: at most 64 of A-Z a-z 0-9 : _ . -".into(),
            ));
        }
        if self.node_id == Some(0) {
            return Err(ConfigError::Invalid("cluster.node_id must be > 0".into()));
        }
        if self.ready_grace == ReadyGrace::Off(true) {
            return Err(ConfigError::Invalid(
                "cluster.ready_grace: a number of seconds, or false".into(),
            ));
        }
        if self.tls_ca_file.is_some()
            && !self
                .url()
                .is_some_and(|u| u.starts_with("rediss") || u.contains("tls=true"))
        {
            return Err(ConfigError::Invalid(
                "cluster.tls_ca_file needs a TLS redis_url (rediss://…)".into(),
            ));
        }
        if let Some(url) = self.url() {
            let scheme = url.split("://").next().unwrap_or("");
            if !url.contains("://")
                || !matches!(
                    scheme,
                    "redis"
                        | "rediss"
                        | "redis-cluster"
                        | "rediss-cluster"
                        | "redis-sentinel"
                        | "rediss-sentinel"
                        | "valkey"
                        | "valkeys"
                )
            {
                return Err(ConfigError::Invalid(format!(
                    "cluster.redis_url {}: not a redis://, rediss://, redis-cluster:// or redis-sentinel:// URL",
                    redact_url(url)
                )));
            }
        }
        Ok(())
    }
}

/// The encrypted mailbox: suite 1 envelopes queued for offline devices
/// (docs/CONFIGURATION.md `[mailbox]`, docs/PROTOCOL-EXT.md §4). `Default`
/// is the built-in defaults (`config/defaults.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    /// Answer the `device.*` and `mailbox.*` methods (else `unknown_method`).
    pub enabled: bool,
    /// Messages one device may have waiting; a send beyond it gets
    /// `too_many`.
    pub max_messages_per_device: u64,
    /// Envelope bytes one device may have waiting; likewise.
    pub max_bytes_per_device: u64,
    /// Longest envelope (its base64 text) `mailbox.send` takes
    /// (`bad_request` beyond). In force: at most `server.max_message_bytes`
    /// − 1024, so a queued envelope always fits in a WebSocket frame
    /// ([`Config::mailbox_in_force`]).
    pub max_message_bytes: usize,
    /// Most envelope bytes one `mailbox.fetch` answer carries (at least one
    /// message; `more` says the rest waits).
    pub max_fetch_bytes: usize,
    /// `mailbox.send` per connection per minute (bursts up to the same
    /// number; `rate_limited` beyond); 0 = unlimited.
    pub sends_per_connection_per_minute: u32,
    /// How often expired messages are deleted and the store's write-ahead
    /// log is checkpointed after deletions (milliseconds): an acknowledged
    /// envelope is gone from the disk files at most this long after.
    pub maintenance_interval_ms: u64,
}

impl Default for MailboxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_messages_per_device: 10_000,
            max_bytes_per_device: 64 * 1024 * 1024,
            max_message_bytes: 49_152,
            max_fetch_bytes: 256 * 1024,
            sends_per_connection_per_minute: 600,
            maintenance_interval_ms: 5_000,
        }
    }
}

/// Limits of the key directory, so one signed-in user cannot stall it
/// (docs/CONFIGURATION.md `[directory]`). `Default` is the built-in
/// defaults (`config/defaults.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// Active (published, not revoked) devices one user may have; a card for
    /// one more device is refused with `too_many`.
    pub max_devices_per_user: usize,
    /// Longest card lifetime: `expires_at` at most this many days after
    /// `created_at` (`invalid_record` beyond).
    pub max_card_lifetime_days: u64,
    /// Directory writes (publish, revoke) per user per minute, over all of
    /// the user's connections (bursts up to the same number); 0 = unlimited.
    pub writes_per_user_per_minute: u32,
    /// Directory writes per connection per minute (bursts up to the same
    /// number); 0 = unlimited.
    pub writes_per_connection_per_minute: u32,
    /// Most bytes of records in one lookup answer; users that do not fit are
    /// named in the answer's `more` for the client to ask again.
    pub max_lookup_bytes: usize,
    /// Lookups computed at once, off the async workers (0 = half the CPUs,
    /// at least 1).
    pub workers: usize,
    /// Lookups waiting for a worker, node-wide; beyond it `unavailable`.
    pub max_queued: usize,
    /// How long after a write its epoch is published (milliseconds): writes
    /// within this window share one epoch, and a write is answered (and
    /// visible to lookups) once its epoch is out. 1–2000.
    pub epoch_interval_ms: u64,
    /// Most directory records one `log.audit` over the WebSocket may span
    /// (the append-only proof grows with every record in its epochs; beyond
    /// it `too_many`). The signed HTTP API, for auditors holding the app's
    /// credentials, is not bounded by it.
    pub max_audit_records: u64,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            max_devices_per_user: 16,
            max_card_lifetime_days: 730,
            writes_per_user_per_minute: 20,
            writes_per_connection_per_minute: 10,
            max_lookup_bytes: 1024 * 1024,
            workers: 0,
            max_queued: 256,
            epoch_interval_ms: 250,
            max_audit_records: 10_000,
        }
    }
}

/// The Prometheus `/metrics` listener (plain HTTP on its own port).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics`.
    pub enabled: bool,
    /// Address to bind.
    pub host: String,
    /// Port to bind (0 picks a free one).
    pub port: u16,
}

/// Where the store lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Database URL; absent means `sqlite://{server.data_dir}/hush.sqlite3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Most pooled database connections.
    pub max_connections: u32,
}

/// How webhooks are delivered (all apps share these).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Seconds one delivery request may take (connect, send, answer).
    pub timeout: u64,
    /// Delivery attempts of an event before it becomes a dead letter.
    pub max_attempts: u32,
    /// First retry delay, milliseconds; doubles per attempt (with jitter).
    pub backoff_base_ms: u64,
    /// Longest retry delay, milliseconds.
    pub backoff_max_ms: u64,
    /// While an endpoint's next retry is further away than this, it is
    /// probed this often (milliseconds) with a signed request holding no
    /// events; a 2xx answer retries at once. 0 turns probing off.
    pub probe_interval_ms: u64,
    /// Delivery requests in flight at once, over all endpoints.
    pub concurrency: usize,
    /// Most events per request (1 = one event per request).
    pub batch_size: u32,
    /// Milliseconds events are gathered before being written to the outbox.
    pub batch_window_ms: u64,
    /// Events waiting between the server and the outbox writer; beyond it new
    /// events are dropped (counted in `hush_webhook_events_dropped_total`).
    pub queue_capacity: usize,
    /// Milliseconds `channel_vacated` / `member_removed` are held back; a
    /// re-occupation (re-join) within it cancels both events, like Pusher.
    pub vacate_delay_ms: u64,
    /// Extra root certificates (PEM) trusted for `https://` endpoints, on top
    /// of the system's (a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
}

/// A webhook event type (Pusher's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEventType {
    /// First subscriber of a channel.
    ChannelOccupied,
    /// Last subscriber left.
    ChannelVacated,
    /// A user's first socket joined a presence channel.
    MemberAdded,
    /// A user's last socket left a presence channel.
    MemberRemoved,
    /// A client event was relayed.
    ClientEvent,
    /// A subscription to a cache channel found no cached event.
    CacheMiss,
    /// A channel's subscription count changed.
    SubscriptionCount,
}

impl WebhookEventType {
    /// Every type.
    pub const ALL: [Self; 7] = [
        Self::ChannelOccupied,
        Self::ChannelVacated,
        Self::MemberAdded,
        Self::MemberRemoved,
        Self::ClientEvent,
        Self::CacheMiss,
        Self::SubscriptionCount,
    ];

    /// Pusher's name (`channel_occupied`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::ChannelOccupied => "channel_occupied",
            Self::ChannelVacated => "channel_vacated",
            Self::MemberAdded => "member_added",
            Self::MemberRemoved => "member_removed",
            Self::ClientEvent => "client_event",
            Self::CacheMiss => "cache_miss",
            Self::SubscriptionCount => "subscription_count",
        }
    }

    /// A bit of an [`WebhookConfig::mask`].
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// One webhook endpoint of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are POSTed (`http://` or `https://`).
    pub url: String,
    /// Only these event types; absent = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<WebhookEventType>>,
    /// Most events per request to this endpoint (1 = one event per request,
    /// like Pusher without "batch webhooks"); absent = `webhooks.batch_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Extra HTTP headers sent with every request to this endpoint
    /// (`Authorization`, …); values are masked by `--print-config`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Only events of channels whose name starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_prefix: Option<String>,
    /// Only events of channels whose name ends with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_suffix: Option<String>,
    /// Only events of channels whose name matches this pattern: `*` stands
    /// for any run of characters, `?` for one (`private-*-orders`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_pattern: Option<String>,
}

impl WebhookConfig {
    /// The wanted event types as a bit set ([`WebhookEventType::bit`]).
    pub fn mask(&self) -> u8 {
        match &self.event_types {
            None => WebhookEventType::ALL.iter().fold(0, |m, t| m | t.bit()),
            Some(ts) => ts.iter().fold(0, |m, t| m | t.bit()),
        }
    }
}

/// TLS for the WebSocket gateway and HTTP API (PEM files; re-read on SIGHUP).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM (leaf first).
    pub cert_file: std::path::PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: std::path::PathBuf,
}

/// Listener and per-connection settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind (0 picks a free one).
    pub port: u16,
    /// Seconds advertised as `activity_timeout`.
    pub activity_timeout: u64,
    /// Extra seconds of client silence before the server pings.
    pub ping_grace: u64,
    /// Seconds to wait for any frame after a server ping (then close 4201).
    pub pong_timeout: u64,
    /// Largest inbound WebSocket message, bytes.
    pub max_message_bytes: usize,
    /// Largest HTTP API body, bytes.
    pub max_body_bytes: usize,
    /// Outgoing frames queued per connection before it is closed as slow (4100).
    pub outgoing_queue_frames: usize,
    /// Node capacity over all apps (0 = unlimited); beyond it, close 4100.
    pub max_connections: usize,
    /// Bytes queued for one connection before it counts as a slow reader
    /// and is closed (4100), whatever the number of frames.
    #[serde(default = "default_outgoing_queue_bytes")]
    pub outgoing_queue_bytes: usize,
    /// Seconds allowed for a request's line and headers (a WebSocket
    /// handshake included), and for the idle time between keep-alive
    /// requests; then the connection is closed.
    #[serde(default = "default_http_header_timeout")]
    pub http_header_timeout: u64,
    /// Seconds an HTTP API request may take, its body included (408 after).
    #[serde(default = "default_http_request_timeout")]
    pub http_request_timeout: u64,
    /// Seconds allowed for a TLS handshake.
    #[serde(default = "default_tls_handshake_timeout")]
    pub tls_handshake_timeout: u64,
    /// Largest request head (request line and headers), bytes (at least 8192).
    #[serde(default = "default_max_request_head_bytes")]
    pub max_request_head_bytes: usize,
    /// Connections in the HTTP phase (not yet a WebSocket), node-wide; when
    /// full, the oldest gives way.
    #[serde(default = "default_max_pending_connections")]
    pub max_pending_connections: usize,
    /// Connections in the HTTP phase from one address (0 = no cap; trusted
    /// proxies are exempt); beyond it new ones are closed at once.
    #[serde(default = "default_max_pending_per_ip")]
    pub max_pending_per_ip: usize,
    /// File descriptors kept free for the store, logs and listeners: sockets
    /// beyond the process limit minus this are shed (pending ones first).
    #[serde(default = "default_descriptor_reserve")]
    pub descriptor_reserve: usize,
    /// Seconds to wait for clients to leave on shutdown.
    pub shutdown_timeout: u64,
    /// Seconds the listener stays open after draining starts (readiness 503).
    #[serde(default)]
    pub drain_delay: u64,
    /// Directory for the embedded store (created on first start).
    pub data_dir: String,
    /// Allow the development app's public credentials on a host other than
    /// loopback (`--allow-dev-app`); refused by default.
    #[serde(default)]
    pub allow_development_app: bool,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// Proxies (IP addresses or CIDR ranges) whose `X-Forwarded-For` header
    /// names the client; empty means the header is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Serve TLS (wss:// and https://) instead of plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// One application (tenant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// App id, used in HTTP API paths (a number is read as its digits:
    /// Pusher's ids are numeric).
    #[serde(deserialize_with = "text")]
    pub id: String,
    /// Public key, used by clients in `/app/{key}`.
    #[serde(deserialize_with = "text")]
    pub key: String,
    /// Secret for signatures. Masked by `--print-config`.
    #[serde(deserialize_with = "text")]
    pub secret: String,
    /// Disabled apps refuse connections (4003) and API calls (403).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Allow `client-*` events on private and presence channels.
    #[serde(default)]
    pub client_events: bool,
    /// Seconds a mailbox message waits for its devices before it is
    /// deleted unread (default 30 days).
    #[serde(default = "default_mailbox_ttl")]
    pub mailbox_ttl_secs: u64,
    /// Also allow them on `private-encrypted-` channels (hush extension,
    /// docs/E2EE-CHANNELS.md §3): data must be a string holding an envelope.
    #[serde(default)]
    pub encrypted_client_events: bool,
    /// "Authorized connections": close (4009) connections that neither sign in
    /// nor join a private/presence channel within `user_authentication_timeout`.
    #[serde(default)]
    pub user_authentication: bool,
    /// Seconds allowed for that.
    #[serde(default = "default_user_auth_timeout")]
    pub user_authentication_timeout: u64,
    /// Send `pusher_internal:subscription_count` to subscribers.
    #[serde(default)]
    pub subscription_count: bool,
    /// Connections allowed for this app (0 = unlimited); beyond it, close 4004.
    #[serde(default)]
    pub max_connections: usize,
    /// Client events per second per connection (error 4301 beyond).
    #[serde(default = "default_client_rate")]
    pub max_client_events_per_second: u32,
    /// Channels one connection may be subscribed to at once, so one client
    /// cannot grow the registry without bound.
    #[serde(default = "default_channels_per_connection")]
    pub max_channels_per_connection: usize,
    /// Subscribe frames per second per connection, a repeated one too
    /// (0 = unlimited), with bursts up to `max_channels_per_connection` (a
    /// client may subscribe to all its channels at once, as pusher-js does
    /// on reconnecting).
    /// Each subscribe and unsubscribe changes shared state (on a cluster, a
    /// message to every node), so one client churning them is bounded.
    #[serde(default = "default_subscribe_rate")]
    pub max_subscriptions_per_second: u32,
    /// Distinct users per presence channel.
    #[serde(default = "default_presence_members")]
    pub max_presence_members: usize,
    /// Serialized `user_info` bytes per presence member.
    #[serde(default = "default_user_info_bytes")]
    pub max_presence_user_info_bytes: usize,
    /// Event `data` bytes (HTTP API 413 beyond; client events refused).
    #[serde(default = "default_data_bytes")]
    pub max_event_data_bytes: usize,
    /// Channel name length limit (at most 200).
    #[serde(default = "default_channel_len")]
    pub max_channel_name_length: usize,
    /// Channels per trigger.
    #[serde(default = "default_channels_per_trigger")]
    pub max_channels_per_trigger: usize,
    /// Events per batch.
    #[serde(default = "default_batch")]
    pub max_batch_events: usize,
    /// Seconds a cache channel keeps its last event.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl: u64,
    /// Browser origins allowed to connect (empty = any). Patterns:
    /// `https://app.example.com`, `app.example.com` (any scheme),
    /// `*.example.com`, `https://*.example.com`, `*`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Authenticated HTTP API requests per second for this app (0 = unlimited;
    /// HTTP 429 beyond).
    #[serde(default)]
    pub max_api_requests_per_second: u32,
    /// Publishing API requests per second for this app (`POST` events,
    /// batch events, terminate connections; 0 = unlimited; HTTP 429 beyond).
    /// soketi's `max_backend_events_per_second`, counted per request.
    #[serde(default)]
    pub max_publishes_per_second: u32,
    /// Reading API requests per second for this app (`GET` channels, channel,
    /// users, key directory; 0 = unlimited; HTTP 429 beyond). soketi's
    /// `max_read_requests_per_second`.
    #[serde(default)]
    pub max_read_requests_per_second: u32,
    /// Refuse (400) API publishes to `private-encrypted-` channels whose data is
    /// not a `{nonce, ciphertext}` envelope.
    #[serde(default = "yes")]
    pub require_encrypted_payload: bool,
    /// Webhook endpoints (`[[apps.main.webhooks]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookConfig>,
}

/// A text field that also takes an integer (`id = 412001`) as its digits.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(Text)
}

fn yes() -> bool {
    true
}
fn default_outgoing_queue_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_http_header_timeout() -> u64 {
    10
}
fn default_http_request_timeout() -> u64 {
    30
}
fn default_tls_handshake_timeout() -> u64 {
    10
}
fn default_max_request_head_bytes() -> usize {
    16 * 1024
}
fn default_max_pending_connections() -> usize {
    1024
}
fn default_max_pending_per_ip() -> usize {
    256
}
fn default_descriptor_reserve() -> usize {
    64
}
fn default_user_auth_timeout() -> u64 {
    30
}
fn default_client_rate() -> u32 {
    limits::MAX_CLIENT_EVENTS_PER_SECOND
}
fn default_channels_per_connection() -> usize {
    1_000
}
fn default_subscribe_rate() -> u32 {
    100
}
fn default_presence_members() -> usize {
    limits::MAX_PRESENCE_MEMBERS
}
fn default_user_info_bytes() -> usize {
    limits::MAX_PRESENCE_USER_INFO_BYTES
}
fn default_data_bytes() -> usize {
    limits::MAX_EVENT_DATA_BYTES
}
fn default_channel_len() -> usize {
    hush_protocol::channel::MAX_CHANNEL_NAME_LENGTH
}
fn default_channels_per_trigger() -> usize {
    limits::MAX_CHANNELS_PER_TRIGGER
}
fn default_batch() -> usize {
    limits::MAX_BATCH_EVENTS
}
fn default_cache_ttl() -> u64 {
    limits::CACHE_TTL_SECS
}

/// Longest `mailbox_ttl_secs` (and its default): 30 days. hush-client's
/// mailbox replay window is 31 days, so a message never outlives what its
/// recipients accept.
pub const MAX_MAILBOX_TTL_SECS: u64 = 30 * 24 * 3600;

fn default_mailbox_ttl() -> u64 {
    MAX_MAILBOX_TTL_SECS
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading or merging the sources failed (said once: not also the
    /// error's source, which `{:#}` would print a second time).
    #[error("configuration: {0}")]
    Load(Box<figment::Error>),
    /// A value is not acceptable.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl From<Box<figment::Error>> for ConfigError {
    fn from(e: Box<figment::Error>) -> Self {
        Self::Load(e)
    }
}

/// The development app's built-in secret (`config/defaults.toml`): public,
/// so refused on a non-loopback host unless allowed.
pub const DEVELOPMENT_SECRET: &str = "app-secret";

impl Config {
    /// Loads defaults, then `file` (if given; it must exist), then `HUSH_*`
    /// variables from the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars_os())
    }

    /// Loads defaults, `file`, then the `HUSH_*` variables among `vars`
    /// ([`env`]: a misspelt one is an error naming it; values are text, read
    /// as numbers or booleans where the key wants one).
    pub fn load_from<I>(file: Option<&Path>, vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    {
        let vars = env::config_vars(vars)?;
        let mut fig = Figment::from(Toml::string(DEFAULTS_TOML));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        // Only HUSH_<SECTION>__* are configuration; HUSH_LOG, HUSH_CONFIG and
        // others belong to the CLI.
        for v in vars {
            fig = fig.merge(v);
        }
        // Lossy: the text of a variable is read as a number or a boolean
        // where the key wants one.
        let cfg: Config = fig.extract_lossy().map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a TOML string on top of the defaults (tests and embedding).
    pub fn from_toml(toml: &str) -> Result<Self, ConfigError> {
        let cfg: Config = Figment::from(Toml::string(DEFAULTS_TOML))
            .merge(Toml::string(toml))
            .extract()
            .map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Refuses the development app's public credentials on a host that is not
    /// loopback, unless `server.allow_development_app` or `allow` (the
    /// `--allow-dev-app` flag) says so. Call after `--host` is applied.
    pub fn check_development_exposure(&self, allow: bool) -> Result<(), ConfigError> {
        if allow || self.server.allow_development_app || is_loopback_host(&self.server.host) {
            return Ok(());
        }
        let public = self
            .effective_apps()
            .into_iter()
            .find(|a| a.secret == DEVELOPMENT_SECRET);
        match public {
            None => Ok(()),
            Some(a) => Err(ConfigError::Invalid(format!(
                "app '{}' uses the development app's public secret and server.host is {} (not loopback): \
                 configure your own app ([apps.main] or HUSH_APPS__MAIN__ID / __KEY / __SECRET; `hush keygen` makes them), \
                 or allow it with server.allow_development_app = true or --allow-dev-app",
                a.id, self.server.host
            ))),
        }
    }

    /// This configuration with `stored` apps (kept in the store, managed by
    /// `hush apps`) next to the configured ones, checked as a whole (an id or
    /// key used twice is an error). With any stored app, the development app
    /// is no longer in force.
    pub fn with_stored_apps(&self, stored: Vec<AppConfig>) -> Result<Config, ConfigError> {
        if stored.is_empty() {
            return Ok(self.clone());
        }
        let mut c = self.clone();
        for a in stored {
            c.apps.insert(format!("store:{}", a.id), a);
        }
        c.validate()?;
        Ok(c)
    }

    /// True when no app is configured and the development app is in use.
    pub fn uses_development_app(&self) -> bool {
        self.apps.is_empty()
    }

    /// The apps in force: the configured ones, or the development app.
    pub fn effective_apps(&self) -> Vec<AppConfig> {
        if self.apps.is_empty() {
            vec![self.development_app.clone()]
        } else {
            self.apps.values().cloned().collect()
        }
    }

    /// The mailbox settings in force: `max_message_bytes` lowered to
    /// `server.max_message_bytes` − 1024 when it is above (a server that
    /// takes smaller WebSocket messages takes smaller envelopes).
    pub fn mailbox_in_force(&self) -> MailboxConfig {
        let mut m = self.mailbox.clone();
        m.max_message_bytes = m
            .max_message_bytes
            .min(self.server.max_message_bytes.saturating_sub(1024))
            .max(1);
        m
    }

    /// The store URL in force.
    pub fn store_url(&self) -> String {
        match &self.store.url {
            Some(u) if !u.is_empty() => u.clone(),
            _ => format!(
                "sqlite://{}/hush.sqlite3",
                self.server.data_dir.trim_end_matches('/')
            ),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.cluster.validate()?;
        let apps = self.effective_apps();
        for a in &apps {
            crate::webhooks::validate_endpoints(&a.webhooks)
                .map_err(|why| ConfigError::Invalid(format!("app '{}': {why}", a.id)))?;
            for w in &a.webhooks {
                validate_webhook_url(&a.id, &w.url)?;
                if w.batch_size == Some(0) {
                    return Err(ConfigError::Invalid(format!(
                        "app '{}': webhook {}: batch_size must be > 0",
                        a.id,
                        redact_url(&w.url)
                    )));
                }
                if w.event_types.as_ref().is_some_and(Vec::is_empty) {
                    return Err(ConfigError::Invalid(format!(
                        "app '{}': webhook {}: event_types is empty (omit it for all types)",
                        a.id,
                        redact_url(&w.url)
                    )));
                }
            }
        }
        let w = &self.webhooks;
        if w.max_attempts == 0 || w.batch_size == 0 || w.concurrency == 0 || w.queue_capacity == 0 {
            return Err(ConfigError::Invalid(
                "webhooks.max_attempts, batch_size, concurrency and queue_capacity must be > 0"
                    .into(),
            ));
        }
        if w.timeout == 0 {
            return Err(ConfigError::Invalid("webhooks.timeout must be > 0".into()));
        }
        let m = &self.mailbox;
        if m.max_messages_per_device == 0
            || m.max_bytes_per_device == 0
            || m.max_message_bytes == 0
            || m.max_fetch_bytes == 0
            || m.maintenance_interval_ms == 0
        {
            return Err(ConfigError::Invalid(
                "mailbox.max_messages_per_device, max_bytes_per_device, max_message_bytes, \
                 max_fetch_bytes and maintenance_interval_ms must be > 0"
                    .into(),
            ));
        }
        if apps
            .iter()
            .any(|a| !(1..=MAX_MAILBOX_TTL_SECS).contains(&a.mailbox_ttl_secs))
        {
            return Err(ConfigError::Invalid(format!(
                "mailbox_ttl_secs must be between 1 and {MAX_MAILBOX_TTL_SECS} (30 days: \
                 clients refuse mailbox messages signed longer ago than 31 days)"
            )));
        }
        let d = &self.directory;
        if !(1..=2000).contains(&d.epoch_interval_ms) {
            return Err(ConfigError::Invalid(
                "directory.epoch_interval_ms must be between 1 and 2000".into(),
            ));
        }
        if d.max_audit_records == 0 {
            return Err(ConfigError::Invalid(
                "directory.max_audit_records must be > 0".into(),
            ));
        }
        if d.max_devices_per_user == 0 || d.max_card_lifetime_days == 0 || d.max_lookup_bytes == 0 {
            return Err(ConfigError::Invalid(
                "directory.max_devices_per_user, max_card_lifetime_days and max_lookup_bytes must be > 0"
                    .into(),
            ));
        }
        if self.server.data_dir.is_empty() && self.store.url.as_deref().unwrap_or("").is_empty() {
            return Err(ConfigError::Invalid(
                "server.data_dir must not be empty (or set store.url)".into(),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for a in &apps {
            if a.id.is_empty() || a.key.is_empty() || a.secret.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "app '{}': id, key and secret must not be empty",
                    a.id
                )));
            }
            if a.key.contains(':') || a.key.contains('/') {
                return Err(ConfigError::Invalid(format!(
                    "app '{}': key must not contain ':' or '/'",
                    a.id
                )));
            }
            if a.id.contains('/') {
                return Err(ConfigError::Invalid(format!(
                    "app '{}': id must not contain '/'",
                    a.id
                )));
            }
            if !ids.insert(a.id.clone()) {
                return Err(ConfigError::Invalid(format!("duplicate app id '{}'", a.id)));
            }
            if !keys.insert(a.key.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "duplicate app key '{}'",
                    a.key
                )));
            }
            if let Some(bad) = a.allowed_origins.iter().find(|o| o.trim().is_empty()) {
                return Err(ConfigError::Invalid(format!(
                    "app '{}': allowed_origins contains an empty pattern '{bad}'",
                    a.id
                )));
            }
            if a.max_channel_name_length == 0 || a.max_channel_name_length > 200 {
                return Err(ConfigError::Invalid(format!(
                    "app '{}': max_channel_name_length must be 1..=200",
                    a.id
                )));
            }
        }
        for p in &self.server.trusted_proxies {
            crate::proxy::parse_net(p)
                .map_err(|e| ConfigError::Invalid(format!("server.trusted_proxies: '{p}': {e}")))?;
        }
        if self.server.activity_timeout == 0 {
            return Err(ConfigError::Invalid(
                "server.activity_timeout must be > 0 (pusher-js refuses 0)".into(),
            ));
        }
        if self.server.outgoing_queue_frames == 0 {
            return Err(ConfigError::Invalid(
                "server.outgoing_queue_frames must be > 0".into(),
            ));
        }
        Ok(())
    }

    /// The configuration as TOML with every secret masked.
    pub fn to_masked_toml(&self) -> String {
        let mut c = self.clone();
        for a in c
            .apps
            .values_mut()
            .chain(std::iter::once(&mut c.development_app))
        {
            a.secret = mask(&a.secret);
            for w in &mut a.webhooks {
                w.url = redact_url(&w.url);
                for v in w.headers.values_mut() {
                    *v = mask(v);
                }
            }
        }
        c.store.url = c.store.url.as_deref().map(redact_url);
        c.cluster.redis_url = c.cluster.redis_url.as_deref().map(redact_url);
        toml::to_string_pretty(&c)
            .unwrap_or_else(|e| format!("# could not render configuration: {e}\n"))
    }
}

/// Webhook URLs must be absolute `http://` or `https://` URLs with a host.
fn validate_webhook_url(app: &str, url: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| {
        ConfigError::Invalid(format!(
            "app '{app}': webhook url '{}': {why}",
            redact_url(url)
        ))
    };
    let uri: axum::http::Uri = url.parse().map_err(|_| bad("not a valid URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("must start with http:// or https://"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    Ok(())
}

/// `localhost` or a loopback address (`127.0.0.0/8`, `::1`).
fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Shows at most the first two characters of a secret.
fn mask(secret: &str) -> String {
    let head: String = secret.chars().take(2).collect();
    format!("{head}****")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_use_the_development_app() {
        let c = Config::from_toml("").unwrap();
        assert!(c.uses_development_app());
        assert_eq!(c.effective_apps()[0].key, "app-key");
        assert_eq!(c.server.activity_timeout, 120);
        assert!(!c.metrics.enabled);
        assert!(c.server.tls.is_none());
        assert!(c.server.trusted_proxies.is_empty());
        // The directory's built-in limits are the file's.
        assert_eq!(c.directory, DirectoryConfig::default());
        assert_eq!(c.mailbox, MailboxConfig::default());
        // A server that takes smaller WebSocket messages takes smaller
        // envelopes.
        let small = Config::from_toml("[server]\nmax_message_bytes = 20000\n").unwrap();
        assert_eq!(small.mailbox_in_force().max_message_bytes, 18_976);
        assert_eq!(c.mailbox_in_force().max_message_bytes, 49_152);
        for ttl in ["0", "2592001"] {
            let e = Config::from_toml(&format!(
                "[apps.a]\nid='1'\nkey='k'\nsecret='s'\nmailbox_ttl_secs={ttl}\n"
            ))
            .unwrap_err();
            assert!(e.to_string().contains("mailbox_ttl_secs"), "{e}");
        }
    }

    #[test]
    fn production_example_is_valid() {
        let c = Config::from_toml(include_str!("../../../config/production.example.toml")).unwrap();
        assert_eq!(c.effective_apps().len(), 2);
        assert!(c.metrics.enabled);
        assert_eq!(c.server.log_format, LogFormat::Json);
        assert_eq!(c.apps["main"].max_api_requests_per_second, 200);
    }

    #[test]
    fn operations_keys() {
        let c = Config::from_toml(
            "[server]\ntrusted_proxies=['127.0.0.1','10.0.0.0/8','::1']\n\
             [server.tls]\ncert_file='/etc/hush/cert.pem'\nkey_file='/etc/hush/key.pem'\n\
             [metrics]\nenabled=true\nport=9999\n\
             [apps.a]\nid='1'\nkey='k'\nsecret='s'\nallowed_origins=['https://x.example']\nmax_api_requests_per_second=5\n",
        )
        .unwrap();
        assert_eq!(c.server.trusted_proxies.len(), 3);
        assert!(c.server.tls.is_some());
        assert_eq!(c.metrics.port, 9999);
        let a = &c.effective_apps()[0];
        assert_eq!(a.allowed_origins, vec!["https://x.example".to_owned()]);
        assert_eq!(a.max_api_requests_per_second, 5);
    }

    #[test]
    fn apps_and_defaults() {
        let c = Config::from_toml("[apps.main]\nid='3'\nkey='k'\nsecret='s3cr3t'\n").unwrap();
        let a = &c.effective_apps()[0];
        assert_eq!(a.id, "3");
        assert!(a.enabled);
        assert!(!a.client_events);
        assert_eq!(a.max_presence_members, 100);
        let masked = c.to_masked_toml();
        assert!(!masked.contains("s3cr3t"));
        assert!(masked.contains("s3****"));
    }

    #[test]
    fn rejects_bad_config() {
        assert!(
            Config::from_toml(
                "[apps.a]\nid='1'\nkey='k'\nsecret='s'\n[apps.b]\nid='1'\nkey='k2'\nsecret='s'\n"
            )
            .is_err()
        );
        assert!(Config::from_toml("[apps.a]\nid='1'\nkey='k:x'\nsecret='s'\n").is_err());
        assert!(Config::from_toml("[server]\nactivity_timeout=0\n").is_err());
        assert!(Config::from_toml("[server]\nbogus=1\n").is_err());
        assert!(Config::from_toml("[apps.a]\nid='1'\nkey='k'\n").is_err());
        assert!(Config::from_toml("[server]\ntrusted_proxies=['10.0.0.0/33']\n").is_err());
        assert!(Config::from_toml("[server]\ntrusted_proxies=['nope']\n").is_err());
        assert!(Config::from_toml("[metrics]\nbogus=1\n").is_err());
        assert!(Config::from_toml("[server.tls]\ncert_file='a'\n").is_err());
    }

    #[test]
    fn store_and_webhooks() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.server.data_dir, "./hush-data");
        assert_eq!(c.store_url(), "sqlite://./hush-data/hush.sqlite3");
        assert_eq!(c.webhooks.max_attempts, 10);
        let c = Config::from_toml(
            "[server]\ndata_dir='/var/lib/hush/'\n[apps.main]\nid='3'\nkey='k'\nsecret='s'\n\
             [[apps.main.webhooks]]\nurl='http://u:pw@127.0.0.1:9000/hooks'\n\
             event_types=['channel_occupied','member_added']\n\
             [[apps.main.webhooks]]\nurl='http://127.0.0.1:9001/'\n",
        )
        .unwrap();
        assert_eq!(c.store_url(), "sqlite:///var/lib/hush/hush.sqlite3");
        let hooks = &c.apps["main"].webhooks;
        assert_eq!(
            hooks[0].mask(),
            WebhookEventType::ChannelOccupied.bit() | WebhookEventType::MemberAdded.bit()
        );
        assert_eq!(hooks[1].mask(), 0x7f);
        let masked = c.to_masked_toml();
        assert!(masked.contains("u:****@127.0.0.1:9000"), "{masked}");
        assert!(!masked.contains("pw@"));
        // Round trip of the masked form keeps the structure.
        assert!(masked.contains("[[apps.main.webhooks]]"), "{masked}");
        let c = Config::from_toml("[store]\nurl='postgres://hush:pw@db/hush'\n").unwrap();
        assert!(c.to_masked_toml().contains("postgres://hush:****@db/hush"));
    }

    #[test]
    fn rejects_bad_webhooks() {
        let app = "[apps.main]\nid='3'\nkey='k'\nsecret='s'\n[[apps.main.webhooks]]\n";
        for (hook, why) in [
            ("url='ftp://x/y'", "http://"),
            ("url='not a url'", "valid URL"),
            ("url='/relative'", "http://"),
            ("url='http://x/'\nevent_types=[]", "empty"),
            (
                "url='http://x/'\nevent_types=['channel_exploded']",
                "unknown variant",
            ),
            ("url='http://x/'\nbogus=1", "unknown field"),
            ("url='http://x/'\nbatch_size=0", "batch_size"),
        ] {
            let e = Config::from_toml(&format!("{app}{hook}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{hook}: {e}");
        }
        assert!(Config::from_toml(&format!("{app}url='https://example.com/h'\n")).is_ok());
        assert!(Config::from_toml("[webhooks]\nmax_attempts=0\n").is_err());
        assert!(Config::from_toml("[webhooks]\nbogus=0\n").is_err());
    }

    fn vars(v: &[(&str, &str)]) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        v.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn env_values_are_text_where_text_is_wanted() {
        let c = Config::load_from(
            None,
            vars(&[
                ("HUSH_APPS__MAIN__ID", "412001"),
                ("HUSH_APPS__MAIN__KEY", "true"),
                ("HUSH_APPS__MAIN__SECRET", "0123"),
                ("HUSH_APPS__MAIN__CLIENT_EVENTS", "true"),
                ("HUSH_APPS__MAIN__MAX_CONNECTIONS", "25"),
                ("HUSH_SERVER__PORT", "7001"),
                ("HUSH_SERVER__HOST", "127.0.0.1"),
                ("HUSH_SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/8\", \"::1\"]"),
                ("HUSH_METRICS__ENABLED", "true"),
            ]),
        )
        .unwrap();
        let a = &c.apps["main"];
        assert_eq!((a.id.as_str(), a.key.as_str()), ("412001", "true"));
        assert_eq!(a.secret, "0123", "leading zero kept");
        assert!(a.client_events);
        assert_eq!(a.max_connections, 25);
        assert_eq!(c.server.port, 7001);
        assert_eq!(c.server.trusted_proxies, ["10.0.0.0/8", "::1"]);
        assert!(c.metrics.enabled);
        // A number in a TOML file is read as its digits too.
        let c = Config::from_toml("[apps.main]\nid = 412001\nkey = 'k'\nsecret = 's'\n").unwrap();
        assert_eq!(c.apps["main"].id, "412001");
    }

    #[test]
    fn cluster_section_from_toml_and_env_with_checks() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.cluster.url(), None, "alone by default");
        assert_eq!(c.cluster.prefix, "hush:");
        assert_eq!(c.cluster.lease, 10);
        assert_eq!(
            c.cluster.ready_grace.grace(),
            Some(std::time::Duration::ZERO)
        );
        let c = Config::load_from(
            None,
            vars(&[
                ("HUSH_CLUSTER__REDIS_URL", "redis://10.0.0.5:6379"),
                ("HUSH_CLUSTER__LEASE", "4"),
                ("HUSH_CLUSTER__NODE_ID", "7"),
                ("HUSH_CLUSTER__READY_GRACE", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(c.cluster.url(), Some("redis://10.0.0.5:6379"));
        let c2 = Config::from_toml("[cluster]\nredis_url = 'rediss://u:s3cret@r:6380'\n").unwrap();
        let shown = c2.to_masked_toml();
        assert!(
            shown.contains("[cluster]") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert_eq!((c.cluster.lease, c.cluster.node_id), (4, Some(7)));
        assert_eq!(c.cluster.ready_grace.grace(), None);
        let c = Config::load_from(None, vars(&[("HUSH_CLUSTER__READY_GRACE", "5")])).unwrap();
        assert_eq!(
            c.cluster.ready_grace.grace(),
            Some(std::time::Duration::from_secs(5))
        );
        for bad in [
            "lease = 0",
            "prefix = 'a b'",
            "prefix = '{x}'",
            "node_id = 0",
            "ready_grace = true",
            "redis_url = 'http://x'",
        ] {
            assert!(
                Config::from_toml(&format!("[cluster]\n{bad}\n")).is_err(),
                "{bad}"
            );
        }
        Config::from_toml(
            "[cluster]\nredis_url = 'redis-sentinel://s:26379?sentinelServiceName=m'\n",
        )
        .unwrap();
    }

    #[test]
    fn env_errors_name_the_variable() {
        let e = Config::load_from(None, vars(&[("HUSH_SEVRER__PORT", "7000")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("HUSH_SEVRER__PORT"), "{e}");
        let e = Config::load_from(None, vars(&[("HUSH_SERVER__PROT", "7000")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("HUSH_SERVER__PROT") && e.contains("prot"), "{e}");
        let e = Config::load_from(None, vars(&[("HUSH_SERVER__PORT", "seven")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("HUSH_SERVER__PORT"), "{e}");
        // Said once, also with its sources (as anyhow's `{:#}` shows them).
        let e = Config::load_from(None, vars(&[("HUSH_SERVER__PROT", "1")])).unwrap_err();
        let mut shown = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            shown.push_str(&format!(": {s}"));
            src = s.source();
        }
        assert_eq!(shown.matches("unknown field").count(), 1, "{shown}");
    }

    #[test]
    fn development_credentials_stay_on_loopback() {
        let dev = Config::from_toml("").unwrap();
        assert!(dev.check_development_exposure(false).is_ok());
        for host in ["0.0.0.0", "::", "10.1.2.3", "hush.example.com"] {
            let mut c = dev.clone();
            c.server.host = host.into();
            let e = c.check_development_exposure(false).unwrap_err().to_string();
            assert!(e.contains("--allow-dev-app"), "{e}");
            assert!(c.check_development_exposure(true).is_ok());
            c.server.allow_development_app = true;
            assert!(c.check_development_exposure(false).is_ok());
        }
        for host in ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"] {
            let mut c = dev.clone();
            c.server.host = host.into();
            assert!(c.check_development_exposure(false).is_ok(), "{host}");
        }
        // The public secret under another label is refused too; own apps pass.
        let mut c = Config::from_toml("[apps.x]\nid='1'\nkey='k'\nsecret='app-secret'\n").unwrap();
        c.server.host = "0.0.0.0".into();
        assert!(c.check_development_exposure(false).is_err());
        let mut c = Config::from_toml("[apps.x]\nid='1'\nkey='k'\nsecret='s'\n").unwrap();
        c.server.host = "0.0.0.0".into();
        assert!(c.check_development_exposure(false).is_ok());
        assert_eq!(dev.development_app.secret, DEVELOPMENT_SECRET);
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn env_overrides() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("hush.toml", "[apps.main]\nid='3'\nkey='k'\nsecret='s'\n")?;
            jail.set_env("HUSH_SERVER__PORT", "7777");
            jail.set_env("HUSH_APPS__MAIN__CLIENT_EVENTS", "true");
            jail.set_env("HUSH_LOG", "debug");
            jail.set_env("HUSH_CONFIG", "elsewhere.toml");
            jail.set_env("HUSH_SERVER__DATA_DIR", "/tmp/hd");
            jail.set_env("HUSH_WEBHOOKS__MAX_ATTEMPTS", "3");
            jail.set_env("HUSH_STORE__URL", "sqlite::memory:");
            let c = Config::load(Some(Path::new("hush.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.server.port, 7777);
            assert_eq!(c.server.data_dir, "/tmp/hd");
            assert_eq!(c.webhooks.max_attempts, 3);
            assert_eq!(c.store_url(), "sqlite::memory:");
            assert!(c.apps["main"].client_events);
            Ok(())
        });
    }
}
