//! Runtime state of each application and of the node.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use hush_protocol::msgs::EventData;
use hush_protocol::{ChannelKind, ChannelName, CloseCode, SocketId, UserId, wire};

use hush_protocol::presence::PresenceMember;

use crate::channels::{
    ChannelInfo, Channels, MemberLimit, Published, SubscribeOptions, Subscribed,
};
use crate::cluster::redis::RedisNode;
use crate::cluster::{Cluster, ClusterMsg, NodeId};
use crate::config::{AppConfig, Config, ServerConfig, WebhookEventType};
use crate::conn::{ConnHandle, ConnId, Frame};
use crate::fanout;
use crate::origin::AllowedOrigins;
use crate::proxy::TrustedProxies;
use crate::ratelimit::SharedRate;
use crate::signal::{CloseSignal, Signalled};
use crate::telemetry::{AppMetrics, Rejection};
use crate::users::{Users, WatchlistState};
use crate::webhooks::{AppHooks, HookEvent, HookSink};

/// The longest [`App::settle`] waits for the bus.
pub const SETTLE_LIMIT: Duration = Duration::from_millis(500);

/// One application at run time: its configuration, and the one seam through
/// which every delivery (API publish, client event, server-to-user,
/// `terminate_connections`, a cache channel's last event) and every
/// cluster-scoped question (channel info, occupied channels, presence
/// members, subscription and user counts, the app connection quota) goes.
/// The registries behind it are private; its [`Cluster`] backend decides
/// what other nodes are told ([`Cluster::Local`]: nothing, the node is the
/// cluster).
pub struct App {
    /// Its configuration.
    pub config: AppConfig,
    /// Channel registry (shared with the app's next configuration, see
    /// [`ServerState::reload_apps`]).
    channels: Arc<Channels>,
    /// Signed-in users (shared likewise).
    users: Arc<Users>,
    /// Where this node's changes go, and whence the others' come.
    cluster: Cluster,
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
    hooks: Option<AppHooks>,
    /// Open connections, here and on the other nodes; the same counters for
    /// every configuration of the app.
    connections: Arc<ConnCounts>,
    /// Closes the app's open connections when a reload disables or removes
    /// it; the same signal for every configuration of the app.
    closing: Arc<CloseSignal>,
}

/// An app's open connections: on this node, and on the others as they last
/// reported them.
#[derive(Default)]
struct ConnCounts {
    here: AtomicUsize,
    remote: RemoteLoad,
    /// Those of `here` holding a cluster connection slot
    /// ([`App::reserve_slot`]).
    slots: AtomicUsize,
}

/// The other nodes' open connections of an app, as each last reported it
/// ([`ClusterMsg::Load`], every heartbeat).
#[derive(Default)]
struct RemoteLoad {
    by_node: std::sync::Mutex<HashMap<NodeId, usize>>,
    total: AtomicUsize,
}

impl RemoteLoad {
    fn set(&self, node: NodeId, n: Option<usize>) {
        let mut g = crate::lock::lock(&self.by_node);
        match n {
            Some(n) => {
                g.insert(node, n);
            }
            None => {
                g.remove(&node);
            }
        }
        self.total.store(g.values().sum(), Ordering::Relaxed);
    }
}

impl App {
    /// Fresh state for an app whose events feed `hooks`.
    pub fn with_hooks(config: AppConfig, hooks: Option<AppHooks>) -> Self {
        Self::new(config, hooks, Cluster::Local)
    }

    /// Fresh state for an app whose events feed `hooks`, on this node of
    /// `cluster`.
    pub fn new(config: AppConfig, hooks: Option<AppHooks>, cluster: Cluster) -> Self {
        let channels = Arc::new(Channels::new(cluster.clone(), hooks.clone()));
        let users = Arc::new(Users::new(cluster.clone()));
        Self::from_parts(
            config,
            cluster,
            channels,
            users,
            hooks,
            Arc::default(),
            Arc::default(),
        )
    }

    /// The same app under a new configuration: its channels, signed-in users,
    /// connection count, close signal and webhook queue carry over (a
    /// publish through the
    /// new configuration reaches connections made under the old one); limits,
    /// origins and credentials are the new ones.
    pub fn reconfigured(&self, config: AppConfig) -> Self {
        Self::from_parts(
            config,
            self.cluster.clone(),
            self.channels.clone(),
            self.users.clone(),
            self.hooks.clone(),
            self.connections.clone(),
            self.closing.clone(),
        )
    }

    /// An app of `config` (metrics, origins and rate limits made from it)
    /// around the given shared state.
    fn from_parts(
        config: AppConfig,
        cluster: Cluster,
        channels: Arc<Channels>,
        users: Arc<Users>,
        hooks: Option<AppHooks>,
        connections: Arc<ConnCounts>,
        closing: Arc<CloseSignal>,
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
            cluster,
            hooks,
            connections,
            closing,
        }
    }

    /// Parses a channel name with this app's length limit.
    pub fn parse_channel(&self, s: &str) -> Result<ChannelName, hush_protocol::ChannelNameError> {
        ChannelName::parse_with_max(s, self.config.max_channel_name_length)
    }

    /// Current connections of this app in the cluster (the app connection
    /// quota counts these): this node's, plus the other nodes' as they last
    /// reported them (approximate by one heartbeat, lease/3).
    pub fn connection_count(&self) -> usize {
        self.local_connections() + self.connections.remote.total.load(Ordering::Relaxed)
    }

    /// Current connections of this app on this node.
    pub fn local_connections(&self) -> usize {
        self.connections.here.load(Ordering::Relaxed)
    }

    /// The cluster backend.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Counts one more connection of this app (a [`ConnectionGuard`] takes
    /// it back); false when that exceeds the app's `max_connections` in the
    /// cluster.
    fn count_connection(&self) -> bool {
        let here = self.connections.here.fetch_add(1, Ordering::Relaxed) + 1;
        let limit = self.config.max_connections;
        if limit == 0 {
            return true;
        }
        if self.cluster.is_shared() {
            // Exactly, in Redis: [`App::reserve_slot`] next.
            return true;
        }
        here <= limit
    }

    /// In a cluster, takes one of the app's `max_connections` slots for the
    /// connection of `guard`, exactly across the nodes (one atomic step in
    /// Redis); when Redis cannot be asked, this node's count plus the
    /// others' last reported ([`ClusterMsg::Load`]) decide. Nothing to do
    /// on a node alone or without a quota ([`ServerState::admit`] checked).
    pub async fn reserve_slot(&self, guard: &mut ConnectionGuard) -> Result<(), CloseCode> {
        let limit = self.config.max_connections;
        let Cluster::Shared { sink, .. } = &self.cluster else {
            return Ok(());
        };
        if limit == 0 {
            return Ok(());
        }
        let within = match sink.reserve_connection(limit).await {
            Some(taken) => {
                if taken {
                    guard.slot = true;
                    self.connections.slots.fetch_add(1, Ordering::Relaxed);
                }
                taken
            }
            None => {
                self.connections.here.load(Ordering::Relaxed)
                    + self.connections.remote.total.load(Ordering::Relaxed)
                    <= limit
            }
        };
        if within {
            Ok(())
        } else {
            self.metrics.rejected(Rejection::AppConnections);
            Err(CloseCode::OverQuota)
        }
    }

    /// Subscribes a connection of this node to `name` (see
    /// [`Channels::subscribe`]), with the app's member limit and
    /// `subscription_count` setting.
    pub fn subscribe(
        &self,
        name: &ChannelName,
        handle: &ConnHandle,
        member: Option<PresenceMember>,
    ) -> Result<Subscribed, MemberLimit> {
        let opts = SubscribeOptions {
            max_members: self.config.max_presence_members,
            subscription_count: self.config.subscription_count,
        };
        self.channels.subscribe(name, handle, member, opts)
    }

    /// Unsubscribes a connection of this node from `name`.
    pub fn unsubscribe(&self, name: &ChannelName, conn: ConnId) {
        self.channels
            .unsubscribe(name, conn, self.config.subscription_count);
    }

    /// Relays a client event (encoded once) to the channel's subscribers
    /// except the sender, and emits its `client_event` webhook (built by
    /// `hook` only when some endpoint wants it). Returns the sockets reached
    /// on this node.
    pub fn client_event(
        &self,
        name: &ChannelName,
        frame: &Frame,
        sender: &SocketId,
        hook: impl FnOnce() -> HookEvent,
    ) -> usize {
        let n = self.channels.publish(name, frame, Some(sender), None);
        self.metrics.delivered(n, frame.payload_len());
        if self.cluster.is_shared() {
            self.cluster.send(ClusterMsg::Event {
                channel: name.clone(),
                frame: frame.clone(),
                except: Some(sender.clone()),
                cache: None,
            });
        }
        if let Some(h) = &self.hooks {
            if h.wants(WebhookEventType::ClientEvent) {
                h.emit(hook());
            }
        }
        n
    }

    /// Signs a connection in as `user` watching `watchlist` (see
    /// [`Users::sign_in_then`]: `confirm` runs while the user index is
    /// locked).
    pub fn sign_in_then(
        &self,
        user: &UserId,
        handle: &ConnHandle,
        watchlist: &[UserId],
        confirm: impl FnOnce(&WatchlistState),
    ) -> WatchlistState {
        self.users.sign_in_then(user, handle, watchlist, confirm)
    }

    /// Signs a connection out (see [`Users::sign_out`]).
    pub fn sign_out(&self, user: &UserId, conn: ConnId, watchlist: &[UserId]) {
        self.users.sign_out(user, conn, watchlist);
    }

    /// Closes every connection signed in as `user` with 4009
    /// (`terminate_connections`). Returns how many there were.
    pub fn terminate_user(&self, user: &UserId) -> usize {
        if self.cluster.is_shared() {
            self.cluster
                .send(ClusterMsg::Terminate { user: user.clone() });
        }
        self.users.terminate(user)
    }

    /// Subscription and user counts of a channel, cluster-wide.
    pub fn channel_info(&self, name: &ChannelName) -> ChannelInfo {
        self.channels.info(name)
    }

    /// The live last event of a cache channel (its data and remaining TTL).
    pub fn cached_event(&self, name: &ChannelName) -> Option<(String, Duration)> {
        self.channels.cached(name)
    }

    /// Distinct presence user ids of a channel, cluster-wide.
    pub fn presence_user_ids(&self, name: &ChannelName) -> Vec<String> {
        self.channels.user_ids(name)
    }

    /// Every occupied channel whose name starts with `prefix`, with its
    /// counts, cluster-wide.
    pub fn occupied_channels(&self, prefix: &str) -> Vec<(ChannelName, ChannelInfo)> {
        self.channels.occupied(prefix)
    }

    /// Occupied channels and subscriptions on this node (metrics).
    pub fn totals(&self) -> (usize, usize) {
        self.channels.totals()
    }

    /// Sends the `subscription_count` changes held back on large channels
    /// whose interval has passed (to clients if the app sends counts, and to
    /// the webhooks that want them).
    pub fn flush_counts(&self) {
        let to_clients = self.config.subscription_count;
        if to_clients || self.channels.counts_hooked() {
            self.channels.flush_counts(to_clients);
        }
    }

    /// Drops expired cache entries of channels nobody is subscribed to.
    pub fn sweep(&self) {
        self.channels.sweep();
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
        // The text is only needed (and only unescaped) for cache channels.
        let text = channel.is_cache().then(|| data.text());
        let ttl = Duration::from_secs(self.config.cache_ttl);
        let cache = text.as_deref().map(|data| (data, ttl));
        let started = self.start_publish(channel, &frame, cache, except);
        if self.cluster.is_shared() {
            self.cluster.send(ClusterMsg::Event {
                channel: channel.clone(),
                frame: frame.clone(),
                except: except.cloned(),
                cache: text.map(|t| (t.into_owned(), ttl)),
            });
        }
        let n = match started {
            Published::Sent(n) => n,
            Published::Deferred(rest) => fanout::deliver(rest, &frame).await,
        };
        self.metrics.delivered(n, frame.payload_len());
        n
    }

    /// Applies a message from the app's bus (`origin`: its sender; this
    /// node's own messages come back too): delivers other nodes' events to
    /// the subscribers and users here, applies every membership change to
    /// the channels' views (emitting the webhooks this node's messages
    /// cause), tracks the other nodes' users and loads, answers a
    /// resynchronisation request.
    pub async fn apply_bus(&self, origin: NodeId, msg: ClusterMsg) {
        let me = self.cluster.node();
        match &msg {
            ClusterMsg::Event {
                channel,
                frame,
                except,
                cache,
            } if origin != me => {
                let cache = cache.as_ref().map(|(d, t)| (d.as_str(), *t));
                let n = match self.start_publish(channel, frame, cache, except.as_ref()) {
                    Published::Sent(n) => n,
                    Published::Deferred(rest) => fanout::deliver(rest, frame).await,
                };
                self.metrics.delivered(n, frame.payload_len());
            }
            ClusterMsg::Subscriptions { .. }
            | ClusterMsg::MemberJoined { .. }
            | ClusterMsg::MemberLeft { .. }
            | ClusterMsg::NodeState { .. } => {
                self.channels
                    .apply(origin, &msg, self.config.subscription_count);
            }
            ClusterMsg::Cached {
                channel,
                frame,
                data,
                ttl,
            } if origin != me => self.channels.store_cached(channel, frame, data, *ttl),
            ClusterMsg::Terminate { user } if origin != me => {
                self.users.terminate(user);
            }
            ClusterMsg::Users { .. } | ClusterMsg::UsersState { .. } => self.users.apply(&msg),
            ClusterMsg::Load { node, connections } if *node != me => {
                self.connections.remote.set(*node, Some(*connections));
            }
            ClusterMsg::NodeLeft { node } => {
                if let Cluster::Shared { sink, .. } = &self.cluster {
                    sink.settle_msg(origin, &msg);
                }
                self.channels
                    .apply(origin, &msg, self.config.subscription_count);
                self.users.apply(&msg);
                self.connections.remote.set(*node, None);
            }
            ClusterMsg::SyncRequest => {
                self.republish(origin != me);
                // This node's own request: it (re)joined the bus, and Redis
                // may have lost its connection slots.
                if origin == me {
                    self.refresh_slots();
                }
            }
            ClusterMsg::SettleRequest { .. } | ClusterMsg::SettleAck { .. } => {
                if let Cluster::Shared { sink, .. } = &self.cluster {
                    sink.settle_msg(origin, &msg);
                }
            }
            _ => {}
        }
    }

    /// Makes this node's view of the app at least as new as anything a
    /// client or backend can have been told before now, anywhere in the
    /// cluster: every change any node had made before this call (a join on
    /// another node whose `subscription_succeeded` its client already has,
    /// an API publish already answered 200) is applied here when it
    /// returns. It asks every node it knows through the bus and waits for
    /// each answer, which each node queues behind its own earlier changes.
    /// Cluster-scoped reads (the HTTP API's channel questions, a presence
    /// or cache subscription) call it first. [`Cluster::Local`]: returns at
    /// once; a bus that is down or slower than [`SETTLE_LIMIT`] (or a node
    /// that died and is not yet known gone): returns anyway, and the answer
    /// comes from this node's view as it is.
    pub async fn settle(&self) {
        if !self.cluster.settle(SETTLE_LIMIT).await {
            metrics::counter!("hush_cluster_settle_skipped_total").increment(1);
        }
    }

    /// Sets this node's count in the cluster's store of connection slots
    /// to the slots its connections hold. Called on every heartbeat and when
    /// the node (re)joins the bus: a slot change lost on its way (Redis
    /// restarted empty, a release sent while it was down, another node that
    /// wrongly took this one for gone) is set right within a lease/3.
    pub fn refresh_slots(&self) {
        if self.config.max_connections == 0 {
            return;
        }
        if let Cluster::Shared { sink, .. } = &self.cluster {
            sink.restore_connections(self.connections.slots.load(Ordering::Relaxed));
        }
    }

    /// Stores the cache event another node published on `channel` (its
    /// delivery follows on a delivery lane; a later subscriber here replays
    /// it at once).
    pub fn bus_cache(&self, channel: &ChannelName, frame: &Frame, data: &str, ttl: Duration) {
        self.channels.set_cached(channel, frame, data, ttl);
    }

    /// Republishes this node's whole state of the app on the bus: its
    /// contribution to every channel (zero where the bus-ordered view still
    /// credits it with something it no longer has), its signed-in users,
    /// and with `cache` the live last events of its cache channels.
    pub fn republish(&self, cache: bool) {
        if !self.cluster.is_shared() {
            return;
        }
        self.channels.send_own_states();
        self.users.send_state();
        if cache {
            for m in self.channels.cached_states() {
                self.cluster.send(m);
            }
        }
    }

    /// Writes `frame` to a user's sockets or to a small channel, or returns
    /// a large channel's recipients.
    fn start_publish(
        &self,
        channel: &ChannelName,
        frame: &Frame,
        cache: Option<(&str, Duration)>,
        except: Option<&SocketId>,
    ) -> Published {
        if channel.kind() == ChannelKind::ServerToUser {
            return Published::Sent(match channel.server_to_user_id().map(UserId::parse) {
                Some(Ok(user)) => self.users.publish(&user, frame, except),
                _ => 0,
            });
        }
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
    /// The encrypted mailbox.
    pub mailbox: Arc<crate::mailbox::Mailbox>,
    apps: RwLock<Arc<AppTable>>,
    connections: AtomicUsize,
    draining: AtomicBool,
    /// Asks every open connection to reconnect elsewhere when the node
    /// drains.
    drain_signal: CloseSignal,
    /// Whose `X-Forwarded-For` is believed.
    pub proxies: TrustedProxies,
    /// This node of a Redis-backed cluster (`None`: the node is alone).
    cluster: Option<Arc<RedisNode>>,
    /// How long the bus may be down before `/ready` says 503.
    ready_grace: Option<Duration>,
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

/// The cluster backend of app `id`: its bus on `node`, or alone.
fn app_cluster(node: Option<&Arc<RedisNode>>, id: &str) -> Cluster {
    node.map_or(Cluster::Local, |n| n.app_cluster(id))
}

/// A connection's place in the node's and its app's counts (released on
/// drop).
pub struct ConnectionGuard {
    state: Arc<ServerState>,
    app: Arc<App>,
    /// It holds one of the app's connection slots in the cluster
    /// ([`App::reserve_slot`]).
    slot: bool,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.app.connections.here.fetch_sub(1, Ordering::Relaxed);
        self.state.connections.fetch_sub(1, Ordering::Relaxed);
        if self.slot {
            self.app.connections.slots.fetch_sub(1, Ordering::Relaxed);
            if let Cluster::Shared { sink, .. } = &self.app.cluster {
                sink.release_connection();
            }
        }
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
        Self::with_cluster(config, store, directory, hooks, None)
    }

    /// [`ServerState::new`] for a node of a Redis-backed cluster (`None`:
    /// alone).
    pub fn with_cluster(
        config: &Config,
        store: hush_store::Store,
        directory: Arc<crate::directory::Directory>,
        hooks: &HookSink,
        cluster: Option<Arc<RedisNode>>,
    ) -> Arc<Self> {
        // The metrics recorder is installed by `Server::bind`, before this
        // runs, so the apps' counter handles below are recorded.
        let apps: Vec<Arc<App>> = config
            .effective_apps()
            .into_iter()
            .map(|a| {
                let h = hooks.for_app(&a);
                let c = app_cluster(cluster.as_ref(), &a.id);
                Arc::new(App::new(a, h, c))
            })
            .collect();
        let mailbox = Arc::new(crate::mailbox::Mailbox::new(
            store.clone(),
            directory.clone(),
            config.mailbox_in_force(),
        ));
        Arc::new(Self {
            server: config.server.clone(),
            store,
            directory,
            mailbox,
            apps: RwLock::new(Arc::new(AppTable::new(apps))),
            connections: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            drain_signal: CloseSignal::default(),
            proxies: TrustedProxies::new(&config.server.trusted_proxies),
            cluster,
            ready_grace: config.cluster.ready_grace.grace(),
        })
    }

    /// How long the bus may be unreachable before `/ready` answers 503
    /// (`None`: never).
    pub fn cluster_ready_grace(&self) -> Option<Duration> {
        self.ready_grace
    }

    /// This node of a Redis-backed cluster, if it is one.
    pub fn cluster_node(&self) -> Option<&Arc<RedisNode>> {
        self.cluster.as_ref()
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
                    let c = app_cluster(self.cluster.as_ref(), &cfg.id);
                    if let Some(node) = &self.cluster {
                        tokio::spawn(node.clone().join_app(cfg.id.clone()));
                    }
                    next.push(Arc::new(App::new(cfg, None, c)));
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
        for (app, code) in close {
            report.closed += app.closing.close(code);
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
    /// app's quota (4004). Also returns what closes it from outside: the
    /// node's drain (4200), a reload that disables (4003) or removes (4001)
    /// the app.
    pub fn admit(
        self: &Arc<Self>,
        app: &Arc<App>,
    ) -> Result<(ConnectionGuard, Signalled), CloseCode> {
        // Subscribed before the draining flag is read: a drain that starts
        // after the read reaches this connection through its watch.
        let signalled = Signalled::new(&self.drain_signal, &app.closing);
        if self.is_draining() {
            return Err(CloseCode::Reconnect);
        }
        let node = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let within_quota = app.count_connection();
        let guard = ConnectionGuard {
            state: self.clone(),
            app: app.clone(),
            slot: false,
        };
        if self.server.max_connections > 0 && node > self.server.max_connections {
            app.metrics.rejected(Rejection::NodeConnections);
            return Err(CloseCode::OverCapacity);
        }
        if !within_quota {
            app.metrics.rejected(Rejection::AppConnections);
            return Err(CloseCode::OverQuota);
        }
        app.metrics.connections_total.increment(1);
        Ok((guard, signalled))
    }

    /// Starts draining: refuses new connections and asks every open one to
    /// reconnect elsewhere (4200).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.drain_signal.close(CloseCode::Reconnect);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_testkit::app_toml;

    async fn state(toml: &str) -> (Arc<ServerState>, Config) {
        let config = Config::from_toml(toml).unwrap();
        let store = hush_store::Store::open("sqlite::memory:", &Default::default())
            .await
            .unwrap();
        let directory = Arc::new(
            crate::directory::Directory::open(store.clone())
                .await
                .unwrap(),
        );
        let (_hooks, sink) = crate::webhooks::Webhooks::new(&config, store.clone()).unwrap();
        (ServerState::new(&config, store, directory, &sink), config)
    }

    #[tokio::test]
    async fn a_reload_closes_the_open_connections_of_a_removed_or_disabled_app() {
        let other = "[apps.other]\nid = 'o'\nkey = 'ko'\nsecret = 'so'\n";
        let (state, _) = state(&format!("{}{other}", app_toml(""))).await;
        let main = state.app_by_key(hush_testkit::KEY).unwrap();
        let o = state.app_by_key("ko").unwrap();
        let mut conns: Vec<_> = (0..3).map(|_| state.admit(&main).unwrap()).collect();
        let (_og, mut os) = state.admit(&o).unwrap();
        assert_eq!(state.connection_count(), 4);
        // Disabled: main's three connections are told 4003, other's nothing.
        let disabled =
            Config::from_toml(&format!("{}{other}", app_toml("enabled = false"))).unwrap();
        let r = state.reload_apps(&disabled);
        assert_eq!(r.closed, 3);
        for (_, s) in &mut conns {
            assert_eq!(s.await, CloseCode::AppDisabled);
        }
        let quiet = tokio::time::timeout(Duration::from_millis(20), &mut os).await;
        assert!(quiet.is_err(), "the other app's connection stays");
        drop(conns);
        assert_eq!(state.connection_count(), 1);
        // Removed: 4001.
        let r = state.reload_apps(&Config::from_toml(&app_toml("")).unwrap());
        assert_eq!(r.closed, 1);
        assert_eq!(os.await, CloseCode::AppNotFound);
    }
}
