//! Prometheus metrics through the `metrics` facade.
//!
//! Per-app counter handles are resolved once, when the app is built
//! ([`AppMetrics`]), so the hot path only adds to an atomic: a publish adds its
//! subscriber count to `hush_messages_out_total` and count × frame length to
//! `hush_bytes_out_total`, never one update per delivery. Gauges (connections,
//! subscriptions, channels) are read from the registries when `/metrics` is
//! scraped, so they cost nothing between scrapes and never drift.
//!
//! The recorder is installed globally once per process ([`install`]); other
//! parts of hush (webhooks) emit through the same facade and appear too.

use std::sync::OnceLock;

use metrics::{
    Counter, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::app::ServerState;

/// Why something was refused by a limit (the `reason` label of
/// `hush_rejections_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The app's connection quota (close 4004).
    AppConnections,
    /// The node's capacity (close 4100).
    NodeConnections,
    /// `max_channels_per_connection` (subscription error `LimitReached`).
    ChannelsPerConnection,
    /// `max_presence_members`.
    PresenceMembers,
    /// `max_subscriptions_per_second` (subscription error `LimitReached`).
    SubscribeRate,
    /// `max_client_events_per_second` (error 4301).
    ClientEventRate,
    /// `max_api_requests_per_second` (HTTP 429).
    ApiRate,
    /// `max_publishes_per_second` (HTTP 429).
    PublishRate,
    /// `max_read_requests_per_second` (HTTP 429).
    ReadRate,
    /// A WebSocket message over `max_message_bytes` (close 1009).
    MessageSize,
    /// Event data over `max_event_data_bytes` (HTTP 413 or a client-event error).
    EventSize,
    /// An origin not in `allowed_origins` (close 4009).
    Origin,
}

impl Rejection {
    const ALL: [Rejection; 12] = [
        Self::AppConnections,
        Self::NodeConnections,
        Self::ChannelsPerConnection,
        Self::PresenceMembers,
        Self::SubscribeRate,
        Self::ClientEventRate,
        Self::ApiRate,
        Self::PublishRate,
        Self::ReadRate,
        Self::MessageSize,
        Self::EventSize,
        Self::Origin,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::AppConnections => "app_connections",
            Self::NodeConnections => "node_connections",
            Self::ChannelsPerConnection => "channels_per_connection",
            Self::PresenceMembers => "presence_members",
            Self::SubscribeRate => "subscribe_rate",
            Self::ClientEventRate => "client_event_rate",
            Self::ApiRate => "api_rate",
            Self::PublishRate => "publish_rate",
            Self::ReadRate => "read_rate",
            Self::MessageSize => "message_size",
            Self::EventSize => "event_size",
            Self::Origin => "origin",
        }
    }
}

/// What failed to authenticate (the `kind` label of `hush_auth_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// A private/presence/encrypted channel subscription.
    Channel,
    /// `pusher:signin`.
    Signin,
    /// An HTTP API request signature (401).
    Api,
}

impl AuthFailure {
    const ALL: [AuthFailure; 3] = [Self::Channel, Self::Signin, Self::Api];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::Signin => "signin",
            Self::Api => "api",
        }
    }
}

/// The counters of one app, resolved once.
#[derive(Debug)]
pub struct AppMetrics {
    /// Connections accepted, ever.
    pub connections_total: Counter,
    /// WebSocket messages received from clients.
    pub messages_in: Counter,
    /// Bytes of those messages.
    pub bytes_in: Counter,
    /// Channel events queued for delivery to sockets.
    pub messages_out: Counter,
    /// Bytes of those events.
    pub bytes_out: Counter,
    /// Connections dropped for not reading: closed with 4100 because their
    /// outgoing queue was full, or cut when a write made no progress within
    /// the write timeout.
    pub slow_client_disconnects: Counter,
    rejections: [Counter; Rejection::ALL.len()],
    auth_failures: [Counter; AuthFailure::ALL.len()],
    http: [Counter; HTTP_STATUSES.len()],
    id: String,
}

/// HTTP API statuses whose counters are resolved up front (others are looked
/// up when they happen).
const HTTP_STATUSES: [u16; 9] = [200, 400, 401, 403, 404, 405, 413, 429, 500];

impl AppMetrics {
    /// Registers (or finds) the counters labelled `app = app_id`.
    pub fn new(app_id: &str) -> Self {
        let app = app_id.to_owned();
        Self {
            connections_total: counter!("hush_connections_total", "app" => app.clone()),
            messages_in: counter!("hush_messages_in_total", "app" => app.clone()),
            bytes_in: counter!("hush_bytes_in_total", "app" => app.clone()),
            messages_out: counter!("hush_messages_out_total", "app" => app.clone()),
            bytes_out: counter!("hush_bytes_out_total", "app" => app.clone()),
            slow_client_disconnects: counter!("hush_slow_client_disconnects_total", "app" => app.clone()),
            rejections: Rejection::ALL.map(
                |r| counter!("hush_rejections_total", "app" => app.clone(), "reason" => r.label()),
            ),
            auth_failures: AuthFailure::ALL.map(
                |k| counter!("hush_auth_failures_total", "app" => app.clone(), "kind" => k.label()),
            ),
            http: HTTP_STATUSES.map(|s| http_counter(&app, s)),
            id: app,
        }
    }

    /// Counts one HTTP API response of this app.
    pub fn http_response(&self, status: u16) {
        match HTTP_STATUSES.iter().position(|s| *s == status) {
            Some(i) => self.http[i].increment(1),
            None => http_counter(&self.id, status).increment(1),
        }
    }

    /// Counts `sockets` deliveries of a `frame_len`-byte frame (one call per publish).
    #[inline]
    pub fn delivered(&self, sockets: usize, frame_len: usize) {
        if sockets > 0 {
            self.messages_out.increment(sockets as u64);
            self.bytes_out.increment((sockets * frame_len) as u64);
        }
    }

    /// Counts one message received from a client.
    #[inline]
    pub fn received(&self, len: usize) {
        self.messages_in.increment(1);
        self.bytes_in.increment(len as u64);
    }

    /// Counts a refusal by a limit.
    pub fn rejected(&self, why: Rejection) {
        let i = Rejection::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.rejections[i].increment(1);
    }

    /// Counts an authentication failure.
    pub fn auth_failed(&self, kind: AuthFailure) {
        let i = AuthFailure::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.auth_failures[i].increment(1);
    }
}

fn http_counter(app: &str, status: u16) -> Counter {
    counter!("hush_http_requests_total", "app" => app.to_owned(), "status" => status.to_string())
}

/// Counts one HTTP API response for a path whose app id is not configured
/// (label `app="unknown"`, so the label set stays bounded).
pub fn http_request_unknown_app(status: u16) {
    http_counter("unknown", status).increment(1);
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global `metrics`
/// recorder, once; later calls return the same handle. `None` when another
/// recorder was installed first (hush embedded in a program with its own).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => {
                describe();
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
                None
            }
        })
        .clone()
}

fn describe() {
    describe_gauge!(
        "hush_build_info",
        "Always 1; the version of the running hush in the `version` label"
    );
    gauge!("hush_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    describe_gauge!("hush_connections", "Open WebSocket connections");
    describe_gauge!(
        "hush_subscriptions",
        "Channel subscriptions (socket × channel)"
    );
    describe_gauge!("hush_channels", "Channels with at least one subscriber");
    describe_gauge!(
        "hush_node_connections",
        "Open WebSocket connections, all apps"
    );
    describe_gauge!("hush_draining", "1 while the node is draining for shutdown");
    describe_gauge!(
        "hush_runtime_alive_tasks",
        "Tasks alive in the server's tokio runtime (a leak shows as growth)"
    );
    describe_counter!("hush_connections_total", "WebSocket connections accepted");
    describe_counter!(
        "hush_cluster_bus_messages_total",
        "Cluster bus messages, by direction (in, out)"
    );
    describe_histogram!(
        "hush_cluster_bus_lag_seconds",
        Unit::Seconds,
        "Time from a bus message's sending to its arrival (sender's clock)"
    );
    describe_counter!(
        "hush_cluster_bus_dropped_total",
        "Cluster bus messages not sent (queue full, Redis unreachable)"
    );
    describe_counter!(
        "hush_cluster_bus_lagged_total",
        "Cluster bus messages the receiver fell behind on (then resynchronised)"
    );
    describe_counter!(
        "hush_cluster_bad_messages_total",
        "Cluster bus messages refused (malformed, oversized, unknown)"
    );
    describe_counter!(
        "hush_cluster_reconnects_total",
        "Reconnections to the cluster's Redis"
    );
    describe_gauge!("hush_cluster_nodes", "Cluster nodes holding a lease");
    describe_counter!(
        "hush_mailbox_queued_total",
        "Mailbox messages queued (each once, whatever its recipient devices)"
    );
    describe_counter!(
        "hush_mailbox_pushed_total",
        "Mailbox messages pushed to a connected recipient device"
    );
    describe_counter!(
        "hush_mailbox_acknowledged_total",
        "Mailbox messages acknowledged (deleted) by a recipient device"
    );
    describe_counter!(
        "hush_mailbox_expired_total",
        "Mailbox messages deleted unread at their expiry"
    );
    describe_counter!(
        "hush_mailbox_purged_total",
        "Mailbox queue entries deleted with a revoked device"
    );
    describe_counter!(
        "hush_mailbox_refused_total",
        "mailbox.send refused, by reason (quota, size, forbidden, bad_request)"
    );
    describe_counter!(
        "hush_messages_in_total",
        "WebSocket messages received from clients"
    );
    describe_counter!(
        "hush_bytes_in_total",
        Unit::Bytes,
        "Bytes of WebSocket messages received from clients"
    );
    describe_counter!(
        "hush_messages_out_total",
        "Channel events queued to sockets"
    );
    describe_counter!(
        "hush_bytes_out_total",
        Unit::Bytes,
        "Bytes of channel events queued to sockets"
    );
    describe_counter!("hush_http_requests_total", "HTTP API responses by status");
    describe_counter!(
        "hush_slow_client_disconnects_total",
        "Connections dropped for not reading: outgoing queue full (4100) or a write timed out"
    );
    describe_counter!(
        "hush_rejections_total",
        "Requests refused by a limit, by reason"
    );
    describe_counter!(
        "hush_auth_failures_total",
        "Failed authentications, by kind"
    );
}

/// Sets the gauges from the live registries, then renders the exposition.
pub fn render(state: &ServerState, handle: &PrometheusHandle) -> String {
    for app in state.apps() {
        let id = app.config.id.clone();
        let (channels, subscriptions) = app.totals();
        gauge!("hush_connections", "app" => id.clone()).set(app.local_connections() as f64);
        gauge!("hush_channels", "app" => id.clone()).set(channels as f64);
        gauge!("hush_subscriptions", "app" => id).set(subscriptions as f64);
    }
    gauge!("hush_node_connections").set(state.connection_count() as f64);
    gauge!("hush_draining").set(if state.is_draining() { 1.0 } else { 0.0 });
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        gauge!("hush_runtime_alive_tasks").set(rt.metrics().num_alive_tasks() as f64);
    }
    handle.render()
}
