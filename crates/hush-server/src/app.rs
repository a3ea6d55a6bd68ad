//! Runtime state of each application and of the node.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hush_protocol::{ChannelKind, ChannelName, CloseCode, SocketId, UserId, wire};

use crate::channels::{Channels, Published};
use crate::config::{AppConfig, Config, ServerConfig};
use crate::conn::{ConnHandle, ConnId, Frame};
use crate::fanout;
use crate::lock::lock;
use crate::origin::AllowedOrigins;
use crate::proxy::TrustedProxies;
use crate::ratelimit::SharedRate;
use crate::telemetry::{AppMetrics, Rejection};
use crate::users::Users;
use crate::webhooks::{AppHooks, HookSink};

/// One application at run time.
pub struct App {
    /// Its configuration.
    pub config: AppConfig,
    /// Channel registry.
    pub channels: Channels,
    /// Signed-in users.
    pub users: Users,
    /// Counter handles labelled with this app's id.
    pub metrics: AppMetrics,
    /// Browser origins allowed to connect.
    pub origins: AllowedOrigins,
    /// HTTP API request rate.
    pub api_rate: SharedRate,
    /// Publishing (`POST`) API request rate.
    pub publish_rate: SharedRate,
    /// Reading (`GET`) API request rate.
    pub read_rate: SharedRate,
    /// Webhook events of this app (`None`: no webhook configured).
    pub hooks: Option<AppHooks>,
    connections: AtomicUsize,
}

impl App {
    /// Fresh state for an app whose events feed `hooks`.
    pub fn with_hooks(config: AppConfig, hooks: Option<AppHooks>) -> Self {
        Self {
            metrics: AppMetrics::new(&config.id),
            origins: AllowedOrigins::new(&config.allowed_origins),
            api_rate: SharedRate::new(config.max_api_requests_per_second, Instant::now()),
            publish_rate: SharedRate::new(config.max_publishes_per_second, Instant::now()),
            read_rate: SharedRate::new(config.max_read_requests_per_second, Instant::now()),
            config,
            channels: Channels::with_hooks(hooks.clone()),
            users: Users::default(),
            hooks,
            connections: AtomicUsize::new(0),
        }
    }

    /// Parses a channel name with this app's length limit.
    pub fn parse_channel(&self, s: &str) -> Result<ChannelName, hush_protocol::ChannelNameError> {
        ChannelName::parse_with_max(s, self.config.max_channel_name_length)
    }

    /// Current connections of this app.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Publishes an event (encoded once) to a channel, or to a user for
    /// `#server-to-user-` channels. A large channel is written outside its
    /// lock, split across threads ([`fanout::deliver`]). Returns the sockets
    /// reached, once every one of them was written.
    pub async fn publish(
        &self,
        channel: &ChannelName,
        event: &str,
        data: &str,
        except: Option<&SocketId>,
    ) -> usize {
        let frame = wire::channel_event(event, channel.as_str(), data).into();
        let n = match self.start_publish(channel, &frame, data, except) {
            Published::Sent(n) => n,
            Published::Deferred(rest) => fanout::deliver(rest, &frame).await,
        };
        self.metrics.delivered(n, frame.payload_len());
        n
    }

    /// Writes `frame` to a user's sockets or to a small channel, or returns
    /// a large channel's recipients.
    fn start_publish(
        &self,
        channel: &ChannelName,
        frame: &Frame,
        data: &str,
        except: Option<&SocketId>,
    ) -> Published {
        if channel.kind() == ChannelKind::ServerToUser {
            return Published::Sent(match channel.server_to_user_id().map(UserId::parse) {
                Some(Ok(user)) => self.users.publish(&user, frame, except),
                _ => 0,
            });
        }
        let cache = channel
            .is_cache()
            .then(|| (data, Duration::from_secs(self.config.cache_ttl)));
        self.channels
            .publish_deferred(channel, frame, except, cache)
    }
}

/// Everything the node shares between connections and API requests.
pub struct ServerState {
    /// Listener settings.
    pub server: ServerConfig,
    /// The durable store.
    pub store: hush_store::Store,
    /// The key directory (public keys only).
    pub directory: Arc<crate::directory::Directory>,
    apps_by_key: HashMap<String, Arc<App>>,
    apps_by_id: HashMap<String, Arc<App>>,
    connections: AtomicUsize,
    registry: Mutex<HashMap<ConnId, ConnHandle>>,
    draining: AtomicBool,
    /// Whose `X-Forwarded-For` is believed.
    pub proxies: TrustedProxies,
}

/// Releases a connection's place in the counts and the registry.
pub struct ConnectionGuard {
    state: Arc<ServerState>,
    app: Arc<App>,
    id: ConnId,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.app.connections.fetch_sub(1, Ordering::Relaxed);
        self.state.connections.fetch_sub(1, Ordering::Relaxed);
        lock(&self.state.registry).remove(&self.id);
    }
}

impl ServerState {
    /// Builds the state from a configuration, its store, the key directory
    /// and the webhook queue.
    pub fn new(
        config: &Config,
        store: hush_store::Store,
        directory: Arc<crate::directory::Directory>,
        hooks: &HookSink,
    ) -> Arc<Self> {
        // The metrics recorder is installed by `Server::bind`, before this
        // runs, so the apps' counter handles below are recorded.
        let apps: Vec<Arc<App>> = config
            .effective_apps()
            .into_iter()
            .map(|a| {
                let h = hooks.for_app(&a);
                Arc::new(App::with_hooks(a, h))
            })
            .collect();
        Arc::new(Self {
            server: config.server.clone(),
            store,
            directory,
            apps_by_key: apps
                .iter()
                .map(|a| (a.config.key.clone(), a.clone()))
                .collect(),
            apps_by_id: apps
                .iter()
                .map(|a| (a.config.id.clone(), a.clone()))
                .collect(),
            connections: AtomicUsize::new(0),
            registry: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            proxies: TrustedProxies::new(&config.server.trusted_proxies),
        })
    }

    /// The app with this public key.
    pub fn app_by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.apps_by_key.get(key)
    }

    /// The app with this id.
    pub fn app_by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.apps_by_id.get(id)
    }

    /// All apps.
    pub fn apps(&self) -> impl Iterator<Item = &Arc<App>> {
        self.apps_by_id.values()
    }

    /// Connections open on this node.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Admits a connection to `app`, checking node capacity (4100) and the
    /// app's quota (4004).
    pub fn admit(
        self: &Arc<Self>,
        app: &Arc<App>,
        handle: &ConnHandle,
    ) -> Result<ConnectionGuard, CloseCode> {
        if self.is_draining() {
            return Err(CloseCode::Reconnect);
        }
        let node = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let per_app = app.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let guard = ConnectionGuard {
            state: self.clone(),
            app: app.clone(),
            id: handle.id,
        };
        lock(&self.registry).insert(handle.id, handle.clone());
        if self.server.max_connections > 0 && node > self.server.max_connections {
            app.metrics.rejected(Rejection::NodeConnections);
            return Err(CloseCode::OverCapacity);
        }
        if app.config.max_connections > 0 && per_app > app.config.max_connections {
            app.metrics.rejected(Rejection::AppConnections);
            return Err(CloseCode::OverQuota);
        }
        app.metrics.connections_total.increment(1);
        Ok(guard)
    }

    /// Starts draining: refuses new connections and asks every open one to
    /// reconnect elsewhere (4200).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        for h in lock(&self.registry).values() {
            h.close(CloseCode::Reconnect);
        }
    }
}
