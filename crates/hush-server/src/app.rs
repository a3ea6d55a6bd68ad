//! Runtime state of each application and of the node.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use hush_protocol::msgs::EventData;
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
    /// Channel registry (shared with the app's next configuration, see
    /// [`ServerState::reload_apps`]).
    pub channels: Arc<Channels>,
    /// Signed-in users (shared likewise).
    pub users: Arc<Users>,
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
    /// Open connections; the same counter for every configuration of the
    /// app, so it also tells the node's registry which app a connection
    /// belongs to (a reload that disables or removes the app closes them).
    connections: Arc<AtomicUsize>,
}

impl App {
    /// Fresh state for an app whose events feed `hooks`.
    pub fn with_hooks(config: AppConfig, hooks: Option<AppHooks>) -> Self {
        let channels = Arc::new(Channels::with_hooks(hooks.clone()));
        Self::from_parts(config, channels, Arc::default(), hooks, Arc::default())
    }

    /// The same app under a new configuration: its channels, signed-in users,
    /// connection count and webhook queue carry over (a publish through the
    /// new configuration reaches connections made under the old one); limits,
    /// origins and credentials are the new ones.
    pub fn reconfigured(&self, config: AppConfig) -> Self {
        Self::from_parts(
            config,
            self.channels.clone(),
            self.users.clone(),
            self.hooks.clone(),
            self.connections.clone(),
        )
    }

    /// An app of `config` (metrics, origins and rate limits made from it)
    /// around the given shared state.
    fn from_parts(
        config: AppConfig,
        channels: Arc<Channels>,
        users: Arc<Users>,
        hooks: Option<AppHooks>,
        connections: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            metrics: AppMetrics::new(&config.id),
            origins: AllowedOrigins::new(&config.allowed_origins),
            api_rate: SharedRate::new(config.max_api_requests_per_second, Instant::now()),
            publish_rate: SharedRate::new(config.max_publishes_per_second, Instant::now()),
            read_rate: SharedRate::new(config.max_read_requests_per_second, Instant::now()),
            config,
            channels,
            users,
            hooks,
            connections,
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
        data: &EventData,
        except: Option<&SocketId>,
    ) -> usize {
        let frame = wire::channel_event_data(event, channel.as_str(), data).into();
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
        data: &EventData,
        except: Option<&SocketId>,
    ) -> Published {
        if channel.kind() == ChannelKind::ServerToUser {
            return Published::Sent(match channel.server_to_user_id().map(UserId::parse) {
                Some(Ok(user)) => self.users.publish(&user, frame, except),
                _ => 0,
            });
        }
        // The text is only needed (and only unescaped) for cache channels.
        let text = channel.is_cache().then(|| data.text());
        let cache = text
            .as_deref()
            .map(|data| (data, Duration::from_secs(self.config.cache_ttl)));
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
    apps: RwLock<Arc<AppTable>>,
    connections: AtomicUsize,
    registry: Mutex<HashMap<ConnId, Registered>>,
    draining: AtomicBool,
    /// Whose `X-Forwarded-For` is believed.
    pub proxies: TrustedProxies,
}

/// The apps in force, by key and by id; replaced whole on a reload.
#[derive(Default)]
struct AppTable {
    by_key: HashMap<String, Arc<App>>,
    by_id: HashMap<String, Arc<App>>,
}

impl AppTable {
    fn new(apps: impl IntoIterator<Item = Arc<App>>) -> Self {
        let mut t = Self::default();
        for a in apps {
            t.by_key.insert(a.config.key.clone(), a.clone());
            t.by_id.insert(a.config.id.clone(), a);
        }
        t
    }
}

/// What [`ServerState::reload_apps`] changed, by app id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AppsReloaded {
    /// Apps that were not there before.
    pub added: Vec<String>,
    /// Apps whose configuration changed (credentials, limits, flags).
    pub changed: Vec<String>,
    /// Apps no longer configured.
    pub removed: Vec<String>,
    /// Apps left as they were.
    pub unchanged: usize,
    /// Apps added or changed whose webhook endpoints were not applied
    /// (endpoints are read at start).
    pub webhooks_not_applied: Vec<String>,
    /// Connections closed because their app was disabled (4003) or removed
    /// (4001).
    pub closed: usize,
}

/// A connection in the node's registry, with its app's connection counter
/// (shared by every configuration of the app: the app's identity).
struct Registered {
    app: Arc<AtomicUsize>,
    handle: ConnHandle,
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
            apps: RwLock::new(Arc::new(AppTable::new(apps))),
            connections: AtomicUsize::new(0),
            registry: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            proxies: TrustedProxies::new(&config.server.trusted_proxies),
        })
    }

    fn table(&self) -> Arc<AppTable> {
        self.apps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The app with this public key.
    pub fn app_by_key(&self, key: &str) -> Option<Arc<App>> {
        self.table().by_key.get(key).cloned()
    }

    /// The app with this id.
    pub fn app_by_id(&self, id: &str) -> Option<Arc<App>> {
        self.table().by_id.get(id).cloned()
    }

    /// All apps.
    pub fn apps(&self) -> Vec<Arc<App>> {
        self.table().by_id.values().cloned().collect()
    }

    /// Applies the apps of `config` (SIGHUP, or apps changed in the store):
    /// new apps are served at once, changed ones take their new settings for
    /// new connections and every API request while their channels and
    /// connections carry on, removed ones refuse new connections (4001) and
    /// API requests (404). Connections already open keep the settings they
    /// were admitted with until they reconnect, except that those of an app
    /// now disabled are closed with 4003 and those of a removed app with 4001
    /// (pusher-js does not reconnect after either). Webhook endpoints are
    /// read at start only.
    pub fn reload_apps(&self, config: &Config) -> AppsReloaded {
        let mut table = self.apps.write().unwrap_or_else(PoisonError::into_inner);
        let old = table.clone();
        let mut report = AppsReloaded::default();
        let mut next = Vec::new();
        // Connections to close, with the code.
        let mut close: Vec<(Arc<App>, CloseCode)> = Vec::new();
        for cfg in config.effective_apps() {
            match old.by_id.get(&cfg.id) {
                Some(app) if app.config == cfg => {
                    report.unchanged += 1;
                    next.push(app.clone());
                }
                Some(app) => {
                    if app.config.webhooks != cfg.webhooks {
                        report.webhooks_not_applied.push(cfg.id.clone());
                    }
                    report.changed.push(cfg.id.clone());
                    if app.config.enabled && !cfg.enabled {
                        close.push((app.clone(), CloseCode::AppDisabled));
                    }
                    next.push(Arc::new(app.reconfigured(cfg)));
                }
                None => {
                    if !cfg.webhooks.is_empty() {
                        report.webhooks_not_applied.push(cfg.id.clone());
                    }
                    report.added.push(cfg.id.clone());
                    next.push(Arc::new(App::with_hooks(cfg, None)));
                }
            }
        }
        let kept: std::collections::HashSet<&str> =
            next.iter().map(|a| a.config.id.as_str()).collect();
        report.removed = old
            .by_id
            .keys()
            .filter(|id| !kept.contains(id.as_str()))
            .cloned()
            .collect();
        for v in [&mut report.added, &mut report.changed, &mut report.removed] {
            v.sort();
        }
        for id in &report.removed {
            if let Some(app) = old.by_id.get(id) {
                close.push((app.clone(), CloseCode::AppNotFound));
            }
        }
        *table = Arc::new(AppTable::new(next));
        drop(table);
        if !close.is_empty() {
            for r in lock(&self.registry).values() {
                if let Some((_, code)) = close
                    .iter()
                    .find(|(app, _)| Arc::ptr_eq(&app.connections, &r.app))
                {
                    r.handle.close(*code);
                    report.closed += 1;
                }
            }
        }
        report
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
        lock(&self.registry).insert(
            handle.id,
            Registered {
                app: app.connections.clone(),
                handle: handle.clone(),
            },
        );
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
        for r in lock(&self.registry).values() {
            r.handle.close(CloseCode::Reconnect);
        }
    }
}
