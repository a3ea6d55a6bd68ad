//! Webhooks: events → bounded queue → outbox in the store → signed, batched,
//! retried delivery.
//!
//! ```text
//!  channels / session (under the channel's shard lock, never awaiting)
//!      │ AppHooks::emit: try_send of a small HookEvent; full queue → dropped + metric
//!      ▼
//!  collector task: debounces vacated/removed (vacate_delay_ms), fans each event
//!      │           out to the app's endpoints that want it, appends in batches
//!      ▼
//!  store: webhook_outbox (durable)  ──►  sender: one loop per (app, endpoint), in
//!                                        order, batch_size events per POST, signed,
//!                                        bounded concurrency, back-off, dead letters
//! ```
//!
//! Delivery is at-least-once: rows leave the outbox only after a 2xx answer.

pub(crate) mod client;
mod collector;
mod event;
mod filter;
mod sender;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hush_store::{Store, Target};
use tokio::sync::{Notify, mpsc, oneshot};

pub use client::ClientError;
pub use event::{HookEvent, client_event_data};
pub use filter::validate_endpoints;

use crate::config::{AppConfig, Config, WebhookEventType, WebhooksConfig};

/// Metric: delivery requests by outcome (`ok`, `retry`, `dead`).
pub const METRIC_DELIVERIES: &str = "hush_webhook_deliveries_total";
/// Metric: events dropped because the queue to the outbox was full.
pub const METRIC_DROPPED: &str = "hush_webhook_events_dropped_total";
/// Metric: dead letters per app.
pub const METRIC_DEAD: &str = "hush_webhook_dead_letters";
/// Metric: events waiting in the outbox per app.
pub const METRIC_PENDING: &str = "hush_webhook_outbox_pending";

/// An event on its way to the collector.
#[derive(Debug)]
pub struct Queued {
    app_id: Arc<str>,
    at_ms: i64,
    event: HookEvent,
}

/// The sending side of the queue, shared by every app.
#[derive(Clone, Debug)]
pub struct HookSink {
    tx: mpsc::Sender<Queued>,
}

/// What one app's channels and sessions use to emit webhook events.
#[derive(Clone, Debug)]
pub struct AppHooks {
    app_id: Arc<str>,
    /// Types some endpoint of the app wants.
    mask: u8,
    tx: mpsc::Sender<Queued>,
    dropped: Arc<AtomicU64>,
}

impl AppHooks {
    /// Whether events of type `t` are needed at all (cheap; check before
    /// building an event). Occupied/vacated and added/removed travel in pairs
    /// when either is wanted: a re-occupation cancels a held-back vacated.
    pub fn wants(&self, t: WebhookEventType) -> bool {
        use WebhookEventType as T;
        let bits = match t {
            T::ChannelOccupied | T::ChannelVacated => {
                T::ChannelOccupied.bit() | T::ChannelVacated.bit()
            }
            T::MemberAdded | T::MemberRemoved => T::MemberAdded.bit() | T::MemberRemoved.bit(),
            _ => t.bit(),
        };
        self.mask & bits != 0
    }

    /// Queues `event` without waiting. When the queue is full the event is
    /// dropped, counted in `hush_webhook_events_dropped_total` and logged.
    pub fn emit(&self, event: HookEvent) {
        if !self.wants(event.kind()) {
            return;
        }
        let q = Queued {
            app_id: self.app_id.clone(),
            at_ms: hush_store::now_ms(),
            event,
        };
        match self.tx.try_send(q) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(q)) => {
                metrics::counter!(METRIC_DROPPED, "app" => self.app_id.to_string()).increment(1);
                let n = self.dropped.fetch_add(1, Ordering::Relaxed);
                // Log the first drop and then every 1000th, not every one.
                if n.is_multiple_of(1000) {
                    tracing::error!(
                        app = %self.app_id,
                        event = q.event.kind().name(),
                        dropped = n + 1,
                        "webhook queue full: event dropped (raise webhooks.queue_capacity or check the store)"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(app = %self.app_id, "webhook queue closed (shutting down)");
            }
        }
    }
}

#[cfg(test)]
impl AppHooks {
    /// Hooks of an app whose one endpoint wants `types` (a TOML list),
    /// with the receiving end of their queue.
    pub(crate) fn for_test(types: &str, capacity: usize) -> (Self, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(capacity);
        let app = crate::Config::from_toml(&format!(
            "[apps.a]\nid='1'\nkey='k'\nsecret='s'\n[[apps.a.webhooks]]\nurl='http://x/'\nevent_types={types}\n"
        ))
        .expect("valid test config")
        .apps["a"]
            .clone();
        let hooks = HookSink { tx }.for_app(&app).expect("a webhook");
        (hooks, rx)
    }
}

#[cfg(test)]
impl Queued {
    /// The event.
    pub(crate) fn event(&self) -> &HookEvent {
        &self.event
    }
}

impl HookSink {
    /// The hooks of `app`, or `None` when it has no webhook.
    pub fn for_app(&self, app: &AppConfig) -> Option<AppHooks> {
        let mask = app.webhooks.iter().fold(0, |m, w| m | w.mask());
        (mask != 0).then(|| AppHooks {
            app_id: Arc::from(app.id.as_str()),
            mask,
            tx: self.tx.clone(),
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }
}

/// One configured endpoint URL of an app: the event types and channels of
/// each `[[apps.X.webhooks]]` entry naming it (listed twice: either wants).
#[derive(Debug, Clone)]
struct Endpoint {
    url: String,
    rules: Vec<(u8, filter::ChannelFilter)>,
}

impl Endpoint {
    /// Whether an event of type `bit` on `channel` goes to this endpoint.
    fn wants(&self, bit: u8, channel: &str) -> bool {
        self.rules
            .iter()
            .any(|(mask, f)| mask & bit != 0 && f.matches(channel))
    }
}

/// How one endpoint is sent to.
#[derive(Debug, Clone)]
struct EndpointOpts {
    /// Events per request.
    batch_size: u32,
    /// Extra headers (`headers = {…}`).
    headers: Arc<hyper::HeaderMap>,
}

/// Credentials used to sign an app's webhooks.
#[derive(Clone)]
struct Signer {
    key: String,
    secret: String,
}

/// The webhook machinery, built but not yet running.
pub struct Webhooks {
    rx: mpsc::Receiver<Queued>,
    client: client::HttpClient,
    store: Store,
    config: WebhooksConfig,
    routes: HashMap<String, Vec<Endpoint>>,
    signers: HashMap<String, Signer>,
    wake: Arc<HashMap<Target, Arc<Notify>>>,
    /// Batch size and headers, per endpoint.
    opts: HashMap<Target, EndpointOpts>,
}

impl Webhooks {
    /// Builds the queue (of `webhooks.queue_capacity` events) for `config`'s
    /// apps and the HTTP client, with the proxies of `HTTP_PROXY`,
    /// `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY`. Fails when `webhooks.ca_file`
    /// is unusable, a proxy is not `http://`, or an `https://` endpoint is
    /// configured on a host without any root certificate.
    pub fn new(config: &Config, store: Store) -> std::io::Result<(Self, HookSink)> {
        let proxy = hyper_util::client::proxy::matcher::Matcher::from_env();
        Self::with_proxy(config, store, proxy)
    }

    fn with_proxy(
        config: &Config,
        store: Store,
        proxy: hyper_util::client::proxy::matcher::Matcher,
    ) -> std::io::Result<(Self, HookSink)> {
        let apps = config.effective_apps();
        let hooks = || apps.iter().flat_map(|a| a.webhooks.iter());
        if hooks().next().is_some() {
            for probe in ["http", "https"] {
                let uri = hyper::Uri::try_from(format!("{probe}://webhook.endpoint.invalid/"));
                if let Some(p) = uri.ok().and_then(|u| proxy.intercept(&u)) {
                    tracing::info!(
                        proxy = %hush_store::redact_url(&p.uri().to_string()),
                        "{probe}:// webhooks go through a proxy (NO_PROXY excepted)"
                    );
                }
            }
        }
        let client = client::HttpClient::new(config.webhooks.ca_file.as_deref(), proxy)
            .map_err(std::io::Error::other)?;
        if client.root_count() == 0 {
            if let Some(w) = hooks().find(|w| w.url.starts_with("https://")) {
                return Err(std::io::Error::other(format!(
                    "webhook {}: no root certificates to verify https:// endpoints (install the system's CA certificates or set webhooks.ca_file)",
                    hush_store::redact_url(&w.url)
                )));
            }
        }
        let (tx, rx) = mpsc::channel(config.webhooks.queue_capacity.max(1));
        let mut routes: HashMap<String, Vec<Endpoint>> = HashMap::new();
        let mut signers = HashMap::new();
        let mut wake = HashMap::new();
        let mut opts: HashMap<Target, EndpointOpts> = HashMap::new();
        for app in &apps {
            for w in &app.webhooks {
                let target = Target {
                    app_id: app.id.clone(),
                    endpoint: w.url.clone(),
                };
                // The same URL twice in one app is one queue with both filters.
                let rule = (w.mask(), filter::ChannelFilter::of(w));
                let eps = routes.entry(app.id.clone()).or_default();
                match eps.iter_mut().find(|e| e.url == w.url) {
                    Some(e) => e.rules.push(rule),
                    None => eps.push(Endpoint {
                        url: w.url.clone(),
                        rules: vec![rule],
                    }),
                }
                // Listed twice with different sizes: the smaller wins (the
                // headers are the same: checked with the configuration).
                let size = w.batch_size.unwrap_or(config.webhooks.batch_size);
                opts.entry(target.clone())
                    .and_modify(|o| o.batch_size = o.batch_size.min(size))
                    .or_insert_with(|| EndpointOpts {
                        batch_size: size,
                        headers: Arc::new(filter::headers(w)),
                    });
                wake.entry(target)
                    .or_insert_with(|| Arc::new(Notify::new()));
            }
            if !app.webhooks.is_empty() {
                signers.insert(
                    app.id.clone(),
                    Signer {
                        key: app.key.clone(),
                        secret: app.secret.clone(),
                    },
                );
            }
        }
        Ok((
            Self {
                rx,
                client,
                store,
                config: config.webhooks.clone(),
                routes,
                signers,
                wake: Arc::new(wake),
                opts,
            },
            HookSink { tx },
        ))
    }

    /// Starts the collector and the senders.
    pub fn spawn(self) -> WebhooksHandle {
        let (stop_tx, stop_rx) = oneshot::channel();
        let collector = tokio::spawn(
            collector::Collector {
                store: self.store.clone(),
                routes: self.routes,
                wake: self.wake.clone(),
                config: self.config.clone(),
            }
            .run(self.rx, stop_rx),
        );
        // On a shared store, queues are leased per node (see sender.rs).
        let holder = self.store.is_shared().then(node_id);
        let release = holder.clone().map(|h| (self.store.clone(), h));
        let sender = tokio::spawn(sender::run(
            self.store,
            holder,
            self.client,
            self.config,
            self.signers,
            self.wake,
            self.opts,
        ));
        WebhooksHandle {
            stop: Some(stop_tx),
            collector,
            sender,
            release,
        }
    }
}

/// A webhook queue lease holder id for this process: host, process id and
/// a random part (a restarted node is a new holder; its old leases run out).
fn node_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "hush".into());
    let nonce: u32 = rand::random();
    format!("{host}-{}-{nonce:08x}", std::process::id())
}

/// The running webhook tasks.
pub struct WebhooksHandle {
    stop: Option<oneshot::Sender<()>>,
    collector: tokio::task::JoinHandle<()>,
    sender: tokio::task::JoinHandle<()>,
    /// On a shared store: the store and this node's lease holder id.
    release: Option<(Store, String)>,
}

impl WebhooksHandle {
    /// Writes every queued and held-back event to the outbox (vacated/removed
    /// without waiting for their delay), then stops delivering. Events still
    /// in the outbox are delivered by the next start.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if tokio::time::timeout(std::time::Duration::from_secs(10), &mut self.collector)
            .await
            .is_err()
        {
            tracing::error!("webhook collector did not finish in 10 s");
            self.collector.abort();
        }
        self.sender.abort();
        let _ = self.sender.await;
        // Other nodes take this node's queues at once instead of after the
        // lease.
        if let Some((store, holder)) = self.release.take() {
            if let Err(e) = store.outbox_release(&holder).await {
                tracing::warn!(error = %e, "webhook queue leases not released; they run out");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_protocol::ChannelName;

    fn hooks(types: &str, capacity: usize) -> (AppHooks, mpsc::Receiver<Queued>) {
        AppHooks::for_test(types, capacity)
    }

    #[test]
    fn pairs_travel_together_and_others_are_filtered() {
        let (h, _rx) = hooks("['channel_vacated']", 8);
        assert!(h.wants(WebhookEventType::ChannelOccupied));
        assert!(h.wants(WebhookEventType::ChannelVacated));
        assert!(!h.wants(WebhookEventType::MemberAdded));
        assert!(!h.wants(WebhookEventType::ClientEvent));
        let app = Config::from_toml("[apps.a]\nid='1'\nkey='k'\nsecret='s'\n")
            .unwrap()
            .apps["a"]
            .clone();
        let (tx, _rx) = mpsc::channel(1);
        assert!(HookSink { tx }.for_app(&app).is_none());
    }

    #[test]
    fn a_full_queue_drops_without_blocking() {
        let (h, mut rx) = hooks("['cache_miss']", 2);
        let ch = ChannelName::parse("cache-x").unwrap();
        for _ in 0..5 {
            h.emit(HookEvent::CacheMiss(ch.clone()));
        }
        // Not wanted: not queued at all.
        h.emit(HookEvent::ChannelOccupied(ch.clone()));
        assert_eq!(h.dropped.load(Ordering::Relaxed), 3);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }
}
