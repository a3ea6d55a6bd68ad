//! The Redis backend of the cluster seam: one [`RedisNode`] per server
//! process (its clients, its node id, its lease), one [`AppBus`] per app.
//!
//! - **Bus.** Each app's messages go to one pub/sub channel,
//!   `{prefix}{app:<id>}#bus` (sharded pub/sub, `SPUBLISH`/`SSUBSCRIBE`, on
//!   Redis Cluster: the hash tag puts it on one shard). Every subscriber,
//!   the sender included, receives them in one order. Sending never blocks a
//!   request: messages go through a bounded queue (items and bytes) to one
//!   writer task; when it is full they are dropped, counted, and the node
//!   republishes its whole state at the next heartbeat.
//! - **Leases.** A sorted set `{prefix}{nodes}#nodes` of node id → expiry
//!   (ms). Every lease/3 each node refreshes its own entry and removes the
//!   expired ones; only the node whose `ZREM` removed an entry publishes
//!   [`ClusterMsg::NodeLeft`] for it. A node that finds its entry gone
//!   (`ZADD` added it) or receives `NodeLeft` for itself while running
//!   republishes its state. On shutdown a node publishes `NodeLeft` for
//!   itself, waits for it to come back and removes its entry.
//! - **Outages.** fred reconnects with backoff; on every reconnection the
//!   node re-subscribes and sends [`ClusterMsg::SyncRequest`] (every node,
//!   this one included, answers with its whole state). Local clients are
//!   served throughout; [`RedisNode::down_for`] feeds `/ready`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use fred::clients::SubscriberClient;
use fred::prelude::*;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::msg::{Envelope, now_ms};
use super::{Barrier, BusSink, Cluster, ClusterMsg, NodeId, Settles, SlotFuture};
use crate::app::ServerState;
use crate::config::ClusterConfig;
use crate::lock::lock;

/// Most messages waiting for the writer.
const QUEUE_ITEMS: usize = 65_536;
/// Most messages the writer sends in one pipeline.
const WRITE_BATCH: usize = 256;
/// Most bytes waiting for the writer.
const QUEUE_BYTES: usize = 64 << 20;
/// How long one Redis command may take before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a node waits for Redis at start (then starts without it).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a leaving node waits for its goodbye to come back.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the cluster backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL or the connection failed.
    #[error("cluster: Redis {0}")]
    Redis(#[from] fred::error::Error),
    /// `cluster.tls_ca_file` could not be used.
    #[error("cluster.tls_ca_file: {0}")]
    CaFile(String),
}

struct Outgoing {
    bus: Arc<str>,
    payload: String,
}

/// This process as a node of a Redis-backed cluster.
pub struct RedisNode {
    node: NodeId,
    prefix: String,
    lease: Duration,
    sharded: bool,
    publisher: Client,
    subscriber: SubscriberClient,
    out: mpsc::Sender<Outgoing>,
    out_rx: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    /// Other nodes' events, to the delivery lanes ([`LANES`], by app).
    lanes: Vec<mpsc::Sender<Delivery>>,
    lanes_rx: Mutex<Vec<mpsc::Receiver<Delivery>>>,
    queued_bytes: AtomicUsize,
    /// Something was lost: republish the whole state at the next heartbeat.
    resync: AtomicBool,
    /// Shutting down: `NodeLeft` for this node is its own goodbye.
    leaving: AtomicBool,
    /// Goodbyes that came back (one per app).
    left_seen: AtomicUsize,
    left_notify: Notify,
    /// When the bus was found unreachable (`None`: reachable).
    down_since: Mutex<Option<Instant>>,
    /// The subscriber's (re)connections, for the watch task.
    reconnects: Mutex<Option<tokio::sync::broadcast::Receiver<fred::types::config::Server>>>,
    /// Bus channel → app id.
    buses: RwLock<HashMap<String, String>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Bus messages refused.
    bad: std::sync::atomic::AtomicU64,
    /// When each other node was last heard from (any message).
    heard: Mutex<HashMap<NodeId, Instant>>,
    /// When this node last (re)connected to Redis: silence before it says
    /// nothing about the others.
    connected_at: Mutex<Instant>,
}

/// One app's bus on a [`RedisNode`]: the [`BusSink`] of its
/// [`Cluster::Shared`].
pub struct AppBus {
    node: Arc<RedisNode>,
    app: String,
    bus: Arc<str>,
    /// The settles this node waits for on this app's bus.
    settles: Mutex<Settles>,
    /// The other nodes heard on this bus and not seen leave: those that
    /// serve the app, whose answers a settle waits for. Per app, not per
    /// node: while a reload adds an app on one node before another, the
    /// node without it is not waited for (it would never answer).
    peers: Mutex<std::collections::HashSet<NodeId>>,
}

impl AppBus {
    /// Sends the next settle request when readers wait for one and none is
    /// out ([`Settles`]: one request per round trip, however many read).
    fn next_settle(&self, settles: &mut Settles) {
        let now = Instant::now();
        if settles.due(now, crate::app::SETTLE_LIMIT) {
            let peers = lock(&self.peers).iter().copied().collect();
            let request = settles.start(now, peers);
            self.send(request);
        }
    }
}

impl BusSink for AppBus {
    fn send(&self, msg: ClusterMsg) {
        self.node.enqueue(&self.bus, &self.app, msg);
    }

    fn barrier(&self) -> Option<Barrier> {
        if self.node.down_for().is_some() {
            return None;
        }
        // Registered before a request goes out: no answer is missed.
        let mut settles = lock(&self.settles);
        let barrier = settles.join();
        self.next_settle(&mut settles);
        Some(barrier)
    }

    fn heard(&self, origin: NodeId) {
        lock(&self.peers).insert(origin);
    }

    fn settle_msg(&self, origin: NodeId, msg: &ClusterMsg) {
        if let ClusterMsg::NodeLeft { node } = msg {
            lock(&self.peers).remove(node);
        }
        let mut settles = lock(&self.settles);
        if let Some(ack) = settles.apply(self.node.node, origin, msg) {
            // Behind everything this node queued before it saw the request.
            self.send(ack);
        }
        // The round may be done, and readers wait for the next one.
        self.next_settle(&mut settles);
        drop(settles);
        // The node that announced a departure frees the departed node's
        // connection slots (its own on a goodbye).
        if let ClusterMsg::NodeLeft { node } = msg {
            if origin == self.node.node {
                self.node.slots(&self.app, Slots::Drop(*node));
            }
        }
    }

    fn reserve_connection(&self, limit: usize) -> SlotFuture {
        let node = self.node.clone();
        let app = self.app.clone();
        Box::pin(async move { node.reserve(&app, limit).await })
    }

    fn release_connection(&self) {
        self.node.slots(&self.app, Slots::Release);
    }

    fn restore_connections(&self, n: usize) {
        self.node.slots(&self.app, Slots::Set(n));
    }
}

/// Takes a connection slot of an app if the cluster has one left: this
/// node's count in the app's hash goes up by one, and back down when the
/// total is over the limit (1: taken, 0: full).
const RESERVE_SCRIPT: &str = r"
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
if total > tonumber(ARGV[2]) then
  redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
  return 0
end
return 1
";

/// Bus messages the subscriber buffers for the receiving task before it
/// lags (and resynchronises).
const SUBSCRIBER_CAPACITY: usize = 16_384;

/// Delivery lanes: another node's events are delivered by one of these
/// tasks, chosen by app.
const LANES: usize = 4;

/// Events waiting in one lane before the read loop waits.
const LANE_ITEMS: usize = 4096;

/// Another node's event for an app's local subscribers.
type Delivery = (Arc<crate::app::App>, NodeId, ClusterMsg);

/// The lane of `app`'s events: one lane per app, so a client subscribed to
/// several channels gets another node's events in the order they were
/// published (a batch across channels stays in order), as on one node.
fn lane_of(app: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    app.hash(&mut h);
    (h.finish() % LANES as u64) as usize
}

/// Delivers one lane's events in order.
async fn deliver_loop(mut rx: mpsc::Receiver<Delivery>) {
    while let Some((app, origin, msg)) = rx.recv().await {
        app.apply_bus(origin, msg).await;
    }
}

/// How long a connection waits for its slot before the approximate count
/// decides.
const RESERVE_TIMEOUT: Duration = Duration::from_millis(500);

/// A change of the connection slots an app's hash holds.
enum Slots {
    /// This node gives one back.
    Release,
    /// This node holds this many.
    Set(usize),
    /// A departed node's slots are free.
    Drop(NodeId),
}

impl RedisNode {
    /// Connects to the Redis of `cfg` (a `redis://`, `rediss://`,
    /// `redis-cluster://` or `redis-sentinel://` URL; a URL that does not
    /// parse is an error). Waits [`CONNECT_TIMEOUT`] at most: a node whose
    /// Redis is down starts anyway, serves its local clients, answers 503 on
    /// `/ready` and joins the bus when Redis answers.
    pub async fn connect(cfg: &ClusterConfig, url: &str) -> Result<Arc<Self>, ClusterError> {
        let mut config = Config::from_url(url)?;
        if let Some(ca) = &cfg.tls_ca_file {
            // The system's roots and the private CA's, on the rustls/ring
            // the listener already links.
            let (roots, _) = crate::webhooks::client::root_store(Some(ca))
                .map_err(|e| ClusterError::CaFile(e.to_string()))?;
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClusterError::CaFile(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.tls = Some(fred::types::config::TlsConnector::from(tls).into());
        }
        // The first connection is retried like any later one.
        config.fail_fast = false;
        let sharded = config.server.is_clustered();
        let mut builder = Builder::from_config(config);
        builder
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
            })
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.max_command_attempts = 1;
            })
            // Forever, 100 ms doubling up to 2 s.
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        let publisher = builder.build()?;
        // Only the subscriber's channels carry the bus, so only they are
        // deep: every broadcast channel of a client preallocates its
        // capacity (16,384 on both clients cost about 25 MB per node).
        builder.with_performance_config(|p| {
            p.default_command_timeout = COMMAND_TIMEOUT;
            p.broadcast_channel_capacity = SUBSCRIBER_CAPACITY;
        });
        let subscriber = builder.build_subscriber_client()?;
        // Before connecting: no (re)connection goes unseen.
        let reconnects = subscriber.reconnect_rx();
        drop(publisher.connect());
        drop(subscriber.connect());
        let ready = async {
            publisher.wait_for_connect().await?;
            subscriber.wait_for_connect().await
        };
        let node = cfg.node_id.map_or_else(NodeId::random, NodeId);
        let down_since = match tokio::time::timeout(CONNECT_TIMEOUT, ready).await {
            Ok(Ok(())) => {
                tracing::info!(node = %node, sharded, "cluster: connected to Redis");
                None
            }
            Ok(Err(e)) => {
                tracing::warn!(node = %node, error = %e, "cluster: Redis unreachable at start; serving local clients, retrying");
                Some(Instant::now())
            }
            Err(_) => {
                tracing::warn!(node = %node, "cluster: Redis did not answer at start; serving local clients, retrying");
                Some(Instant::now())
            }
        };
        let (out, out_rx) = mpsc::channel(QUEUE_ITEMS);
        let (lanes, lanes_rx) = (0..LANES).map(|_| mpsc::channel(LANE_ITEMS)).unzip();
        Ok(Arc::new(Self {
            node,
            prefix: cfg.prefix.clone(),
            lease: Duration::from_secs(cfg.lease),
            sharded,
            publisher,
            subscriber,
            out,
            out_rx: Mutex::new(Some(out_rx)),
            lanes,
            lanes_rx: Mutex::new(lanes_rx),
            queued_bytes: AtomicUsize::new(0),
            resync: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            left_seen: AtomicUsize::new(0),
            left_notify: Notify::new(),
            down_since: Mutex::new(down_since),
            reconnects: Mutex::new(Some(reconnects)),
            buses: RwLock::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            bad: Default::default(),
            heard: Mutex::new(HashMap::new()),
            connected_at: Mutex::new(Instant::now()),
        }))
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    fn bus_name(&self, app: &str) -> String {
        format!("{}{{app:{app}}}#bus", self.prefix)
    }

    fn nodes_key(&self) -> String {
        format!("{}{{nodes}}#nodes", self.prefix)
    }

    /// The cluster backend of app `app` on this node.
    pub fn app_cluster(self: &Arc<Self>, app: &str) -> Cluster {
        let bus: Arc<str> = self.bus_name(app).into();
        crate::lock::write(&self.buses).insert(bus.to_string(), app.to_owned());
        Cluster::Shared {
            node: self.node,
            sink: Arc::new(AppBus {
                node: self.clone(),
                app: app.to_owned(),
                bus,
                settles: Mutex::new(Settles::default()),
                peers: Mutex::default(),
            }),
        }
    }

    fn enqueue(&self, bus: &Arc<str>, app: &str, msg: ClusterMsg) {
        let payload = Envelope {
            origin: self.node,
            app: app.to_owned(),
            sent_ms: now_ms(),
            msg,
        }
        .encode();
        let len = payload.len();
        let full = self.queued_bytes.fetch_add(len, Ordering::Relaxed) + len > QUEUE_BYTES;
        let sent = !full
            && self
                .out
                .try_send(Outgoing {
                    bus: bus.clone(),
                    payload,
                })
                .is_ok();
        if !sent {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            metrics::counter!("hush_cluster_bus_dropped_total").increment(1);
            if !self.resync.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    node = %self.node,
                    "cluster: bus queue full or closed, message dropped (state republished at the next heartbeat)"
                );
            }
        }
    }

    fn slots_key(&self, app: &str) -> String {
        format!("{}{{app:{app}}}#slots", self.prefix)
    }

    /// Takes a connection slot of `app` (see [`RESERVE_SCRIPT`]); `None`
    /// when Redis is down or does not answer in time.
    async fn reserve(&self, app: &str, limit: usize) -> Option<bool> {
        if self.down_for().is_some() {
            return None;
        }
        let call = self.publisher.eval::<i64, _, _, _>(
            RESERVE_SCRIPT,
            vec![self.slots_key(app)],
            vec![self.node.0.to_string(), limit.to_string()],
        );
        match tokio::time::timeout(RESERVE_TIMEOUT, call).await {
            Ok(Ok(n)) => Some(n == 1),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, app, "cluster: connection slot not checked");
                None
            }
            Err(_) => None,
        }
    }

    /// Applies a change of `app`'s connection slots in the background
    /// (best effort: a lost change is set right by the next [`Slots::Set`]
    /// of a resynchronisation).
    fn slots(self: &Arc<Self>, app: &str, change: Slots) {
        let me = self.clone();
        let key = self.slots_key(app);
        tokio::spawn(async move {
            let field = |n: NodeId| n.0.to_string();
            let r: Result<(), fred::error::Error> = match change {
                Slots::Release => me
                    .publisher
                    .hincrby::<i64, _, _>(&key, field(me.node), -1)
                    .await
                    .map(drop),
                Slots::Set(n) => me
                    .publisher
                    .hset::<i64, _, _>(&key, (field(me.node), n as i64))
                    .await
                    .map(drop),
                Slots::Drop(node) => me
                    .publisher
                    .hdel::<i64, _, _>(&key, field(node))
                    .await
                    .map(drop),
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "cluster: connection slots not updated");
            }
        });
    }

    /// How long the bus has been unreachable (`None`: it is reachable).
    pub fn down_for(&self) -> Option<Duration> {
        lock(&self.down_since).map(|t| t.elapsed())
    }

    /// Subscribes to every app's bus, starts the writer, the receiver, the
    /// heartbeat and the connection watch, and asks every node for its
    /// state.
    pub async fn start(self: &Arc<Self>, state: &Arc<ServerState>) -> Result<(), ClusterError> {
        let buses: Vec<String> = crate::lock::read(&self.buses).keys().cloned().collect();
        // Listening before subscribing: nothing is missed.
        let messages = self.subscriber.message_rx();
        if self.subscriber.is_connected() {
            for bus in &buses {
                self.subscribe(bus).await?;
            }
        }
        let mut tasks = Vec::new();
        if let Some(rx) = lock(&self.out_rx).take() {
            tasks.push(tokio::spawn(self.clone().write_loop(rx)));
        }
        for rx in std::mem::take(&mut *lock(&self.lanes_rx)) {
            tasks.push(tokio::spawn(deliver_loop(rx)));
        }
        let weak = Arc::downgrade(state);
        tasks.push(tokio::spawn(self.clone().read_loop(messages, weak.clone())));
        tasks.push(tokio::spawn(self.clone().heartbeat_loop(weak.clone())));
        tasks.push(tokio::spawn(self.clone().watch_loop(weak)));
        lock(&self.tasks).extend(tasks);
        for app in state.apps() {
            app.cluster().send(ClusterMsg::SyncRequest);
        }
        Ok(())
    }

    async fn subscribe(&self, bus: &str) -> Result<(), fred::error::Error> {
        if self.sharded {
            self.subscriber.ssubscribe(bus.to_owned()).await
        } else {
            self.subscriber.subscribe(bus.to_owned()).await
        }
    }

    /// Subscribes to the bus of an app added by a reload, then asks the
    /// other nodes for their state of it.
    pub async fn join_app(self: Arc<Self>, app: String) {
        let bus = self.bus_name(&app);
        match self.subscribe(&bus).await {
            Ok(()) => self.enqueue(&bus.into(), &app, ClusterMsg::SyncRequest),
            Err(e) => {
                tracing::warn!(error = %e, app, "cluster: cannot subscribe to the app's bus");
                self.resync.store(true, Ordering::Release);
            }
        }
    }

    /// Sends the queued messages in order: what is waiting (up to
    /// [`WRITE_BATCH`]) goes as one pipeline, one round trip.
    async fn write_loop(self: Arc<Self>, mut rx: mpsc::Receiver<Outgoing>) {
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
            let bytes: usize = batch.iter().map(|o| o.payload.len()).sum();
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            let results: Vec<Result<(), fred::error::Error>> = if batch.len() == 1 {
                let o = batch.remove(0);
                vec![self.publish(&self.publisher, o).await]
            } else {
                let pipeline = self.publisher.pipeline();
                for o in batch.drain(..) {
                    // Queued in the pipeline: answers come with `try_all`.
                    let _ = self.publish(&pipeline, o).await;
                }
                pipeline
                    .try_all::<i64>()
                    .await
                    .into_iter()
                    .map(|r| r.map(drop))
                    .collect()
            };
            batch.clear();
            for r in results {
                match r {
                    Ok(()) => metrics::counter!("hush_cluster_bus_messages_total", "dir" => "out")
                        .increment(1),
                    Err(e) => {
                        metrics::counter!("hush_cluster_bus_dropped_total").increment(1);
                        if !self.resync.swap(true, Ordering::AcqRel) {
                            tracing::warn!(error = %e, "cluster: publishing to the bus failed");
                        }
                    }
                }
            }
        }
    }

    /// `PUBLISH` (or `SPUBLISH` on Redis Cluster) of one message through
    /// `client` (the publisher, or a pipeline of it).
    async fn publish<C: PubsubInterface + Sync>(
        &self,
        client: &C,
        o: Outgoing,
    ) -> Result<(), fred::error::Error> {
        let bus: &str = &o.bus;
        let r: Result<fred::types::Value, _> = if self.sharded {
            client.spublish(bus, o.payload).await
        } else {
            client.publish(bus, o.payload).await
        };
        r.map(drop)
    }

    async fn read_loop(
        self: Arc<Self>,
        mut rx: tokio::sync::broadcast::Receiver<fred::types::Message>,
        state: Weak<ServerState>,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let m = match rx.recv().await {
                Ok(m) => m,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(lost = n, "cluster: bus receiver lagged; resynchronising");
                    metrics::counter!("hush_cluster_bus_lagged_total").increment(n);
                    if let Some(state) = state.upgrade() {
                        for app in state.apps() {
                            app.cluster().send(ClusterMsg::SyncRequest);
                        }
                    }
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let Some(state) = state.upgrade() else { return };
            self.receive(&state, m).await;
        }
    }

    async fn receive(&self, state: &Arc<ServerState>, m: fred::types::Message) {
        let app_id = crate::lock::read(&self.buses).get(&*m.channel).cloned();
        let Some(app_id) = app_id else { return };
        metrics::counter!("hush_cluster_bus_messages_total", "dir" => "in").increment(1);
        let env = match m.value.as_bytes().map(Envelope::decode) {
            Some(Ok(env)) if env.app == app_id => env,
            Some(Ok(_)) => {
                self.bad_message(&app_id, "the app of another bus");
                return;
            }
            Some(Err(e)) => {
                self.bad_message(&app_id, &e.to_string());
                return;
            }
            None => {
                self.bad_message(&app_id, "not a string");
                return;
            }
        };
        if env.origin != self.node {
            lock(&self.heard).insert(env.origin, Instant::now());
        }
        if let ClusterMsg::NodeLeft { node } = &env.msg {
            lock(&self.heard).remove(node);
        }
        let lag = now_ms().saturating_sub(env.sent_ms);
        metrics::histogram!("hush_cluster_bus_lag_seconds").record(lag as f64 / 1000.0);
        let Some(app) = state.app_by_id(&app_id) else {
            // An app this node no longer serves (a reload removed it here
            // first): it still answers settles, which the nodes that serve
            // it wait for until they see this node leave.
            if let ClusterMsg::SettleRequest { token } = env.msg {
                if env.origin != self.node {
                    let ack = ClusterMsg::SettleAck {
                        to: env.origin,
                        token,
                    };
                    self.enqueue(&Arc::from(&*m.channel), &app_id, ack);
                }
            }
            return;
        };
        app.cluster().heard(env.origin);
        let mut env = env;
        if let ClusterMsg::Event {
            channel,
            frame,
            cache,
            ..
        } = &mut env.msg
        {
            if env.origin != self.node {
                // The last event is stored at once (a subscription settled
                // after this sees it); the delivery goes to the app's lane,
                // so a large fan-out does not hold up the bus (membership,
                // settles, other apps), and the app's events keep their
                // order across channels.
                if let Some((data, ttl)) = cache.take() {
                    app.bus_cache(channel, frame, &data, ttl);
                }
                let lane = lane_of(&app_id);
                if let Some(tx) = self.lanes.get(lane) {
                    // Full: the read loop waits (the subscriber buffers).
                    let _ = tx.send((app, env.origin, env.msg)).await;
                }
                return;
            }
        }
        let own_goodbye = matches!(env.msg, ClusterMsg::NodeLeft { node } if node == self.node);
        app.apply_bus(env.origin, env.msg).await;
        if own_goodbye {
            if self.leaving.load(Ordering::Acquire) {
                self.left_seen.fetch_add(1, Ordering::AcqRel);
                self.left_notify.notify_waiters();
            } else {
                tracing::warn!(node = %self.node, app = app_id, "cluster: this node was declared gone; republishing its state");
                app.republish(false);
            }
        }
    }

    async fn heartbeat_loop(self: Arc<Self>, state: Weak<ServerState>) {
        let mut tick = tokio::time::interval((self.lease / 3).max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut registered = false;
        loop {
            tick.tick().await;
            let Some(state) = state.upgrade() else { return };
            if self.leaving.load(Ordering::Acquire) {
                return;
            }
            let key = self.nodes_key();
            let now = now_ms();
            let expiry = now + u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
            let me = self.node.0.to_string();
            let added: Result<i64, _> = self
                .publisher
                .zadd(&key, None, None, false, false, (expiry as f64, me.as_str()))
                .await;
            match added {
                Ok(1) if registered => {
                    tracing::warn!(node = %self.node, "cluster: this node's lease had expired; republishing its state");
                    self.resync.store(true, Ordering::Release);
                }
                Ok(_) => registered = true,
                Err(e) => {
                    tracing::debug!(error = %e, "cluster: lease refresh failed");
                    continue;
                }
            }
            for app in state.apps() {
                app.cluster().send(ClusterMsg::Load {
                    node: self.node,
                    connections: app.local_connections(),
                });
                app.refresh_slots();
            }
            self.reap(&state, &key, now).await;
            self.reap_silent(&state);
            if self.resync.swap(false, Ordering::AcqRel) {
                for app in state.apps() {
                    app.republish(false);
                }
            }
        }
    }

    /// Removes expired leases; for each one this node removed, tells every
    /// app's bus that the node is gone.
    async fn reap(&self, state: &ServerState, key: &str, now: u64) {
        let expired: Vec<String> = match self
            .publisher
            .zrangebyscore(key, "-inf", now as f64, false, None)
            .await
        {
            Ok(v) => v,
            Err(_) => return,
        };
        for id in expired {
            let Ok(n) = id.parse::<u64>() else {
                let _: Result<i64, _> = self.publisher.zrem(key, id.as_str()).await;
                continue;
            };
            if NodeId(n) == self.node {
                continue;
            }
            let removed: Result<i64, _> = self.publisher.zrem(key, id.as_str()).await;
            if matches!(removed, Ok(1)) {
                tracing::info!(node = %NodeId(n), "cluster: node lease expired; dropping its members and counts");
                for app in state.apps() {
                    app.cluster().send(ClusterMsg::NodeLeft { node: NodeId(n) });
                }
            }
        }
        if let Ok(n) = self.publisher.zcard::<i64, _>(key).await {
            metrics::gauge!("hush_cluster_nodes").set(n as f64);
        }
    }

    /// Drops the nodes not heard from (every node sends `Load` each
    /// heartbeat) for one and a half leases while this node was connected:
    /// the backstop for a node whose lease entry is gone without a
    /// `NodeLeft` (a Redis restarted empty while it died). Several nodes
    /// may say so; applying `NodeLeft` twice changes nothing.
    fn reap_silent(&self, state: &ServerState) {
        let limit = self.lease + self.lease / 2;
        let since = *lock(&self.connected_at);
        let silent: Vec<NodeId> = {
            let mut heard = lock(&self.heard);
            let silent: Vec<NodeId> = heard
                .iter()
                .filter(|(_, t)| (**t).max(since).elapsed() > limit)
                .map(|(n, _)| *n)
                .collect();
            for n in &silent {
                heard.remove(n);
            }
            silent
        };
        for node in silent {
            tracing::info!(node = %node, "cluster: node silent for longer than its lease; dropping its members and counts");
            for app in state.apps() {
                app.cluster().send(ClusterMsg::NodeLeft { node });
            }
        }
    }

    /// Watches the connections: `down_since` for `/ready`, and on every
    /// reconnection re-subscribes and asks for everyone's state.
    async fn watch_loop(self: Arc<Self>, state: Weak<ServerState>) {
        let Some(mut reconnects) = lock(&self.reconnects).take() else {
            return;
        };
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        // The first event is the connection at start (maybe already seen).
        let mut first = true;
        loop {
            tokio::select! {
                r = reconnects.recv() => {
                    if r.is_err() && !matches!(r, Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) {
                        return;
                    }
                    if !std::mem::take(&mut first) {
                        metrics::counter!("hush_cluster_reconnects_total").increment(1);
                    }
                    *lock(&self.connected_at) = Instant::now();
                    tracing::info!(node = %self.node, "cluster: connected to Redis; (re)subscribing and resynchronising");
                    let buses: Vec<String> = crate::lock::read(&self.buses).keys().cloned().collect();
                    for bus in &buses {
                        if let Err(e) = self.subscribe(bus).await {
                            tracing::warn!(error = %e, bus, "cluster: subscribing failed");
                            self.resync.store(true, Ordering::Release);
                        }
                    }
                    let Some(state) = state.upgrade() else { return };
                    for app in state.apps() {
                        app.cluster().send(ClusterMsg::SyncRequest);
                    }
                }
                _ = poll.tick() => {
                    let up = self.subscriber.is_connected() && self.publisher.is_connected();
                    let mut d = lock(&self.down_since);
                    match (up, d.is_some()) {
                        (false, false) => *d = Some(Instant::now()),
                        (true, true) => {
                            *d = None;
                            *lock(&self.connected_at) = Instant::now();
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Graceful exit: tells every app's bus this node is gone, waits (a
    /// bounded time) until the goodbyes came back (their webhooks are then
    /// queued), removes the lease, stops the tasks.
    pub async fn leave(&self, state: &ServerState) {
        if self.leaving.swap(true, Ordering::AcqRel) {
            return;
        }
        let apps = state.apps();
        for app in &apps {
            app.cluster().send(ClusterMsg::NodeLeft { node: self.node });
        }
        let wait = async {
            loop {
                let notified = self.left_notify.notified();
                if self.left_seen.load(Ordering::Acquire) >= apps.len() {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(LEAVE_TIMEOUT, wait).await.is_err() {
            tracing::warn!(node = %self.node, "cluster: goodbye did not come back from the bus in time");
        }
        let key = self.nodes_key();
        let me = self.node.0.to_string();
        let _: Result<i64, _> = self.publisher.zrem(key.as_str(), me.as_str()).await;
        self.stop();
        let _ = self.subscriber.quit().await;
        let _ = self.publisher.quit().await;
    }

    /// Stops every task of this node at once, without a goodbye: what a
    /// crash (`kill -9`) looks like to the others (tests), and the end of
    /// [`RedisNode::leave`].
    pub fn stop(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }

    /// Bus messages refused since start (malformed, oversized, unknown).
    pub fn bad_messages(&self) -> u64 {
        self.bad.load(Ordering::Relaxed)
    }

    fn bad_message(&self, app: &str, why: &str) {
        self.bad.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("hush_cluster_bad_messages_total").increment(1);
        tracing::warn!(app, why, "cluster: bus message refused");
    }

    /// A crash, for tests: stops the tasks and never says goodbye (the
    /// others notice when the lease expires).
    pub fn crash(&self) {
        self.leaving.store(true, Ordering::Release);
        self.stop();
    }
}
